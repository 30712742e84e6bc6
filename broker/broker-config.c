/* The broker's config table and cross-field rules (broker-config.h). */
#include "broker-config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "throttle.h"
#include "util.h"

#define OPT(field, type_, def, doc_)                                                               \
    {                                                                                              \
        .name = #field, .type = (type_), .offset = offsetof(struct broker_config, field),          \
        .default_value = (def), .doc = (doc_)                                                      \
    }
#define OPT_INT(field, def, min_, max_, doc_)                                                      \
    {                                                                                              \
        .name = #field, .type = CONFIG_INT, .offset = offsetof(struct broker_config, field),       \
        .default_value = (def), .min = (min_), .max = (max_), .doc = (doc_)                        \
    }
#define OPT_ENUM(field, def, choices_, doc_)                                                       \
    {                                                                                              \
        .name = #field, .type = CONFIG_ENUM, .offset = offsetof(struct broker_config, field),      \
        .default_value = (def), .choices = (choices_), .doc = (doc_)                               \
    }

static const char *const virt_types[] = {"kvm", "qemu", NULL};
static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};
static const char *const shadow_policies[] = {"notify", "silent", "deny", NULL};

const struct config_option broker_config_table[] = {
    OPT(listen_address, CONFIG_STRING, "0.0.0.0",
        "Numeric IPv4 or IPv6 address to accept clients on (\"::\" = all, both families)"),
    OPT_INT(listen_port, "5900", 0, 65535, "TCP port for clients (0 = any free port, printed)"),
    OPT(state_dir, CONFIG_STRING, "/var/lib/vdi",
        "Directory for certificates, disks, console logs and the embedded libvirt"),
    OPT(libvirt_uri, CONFIG_STRING, "",
        "libvirt connection (empty = qemu:///embed?root=<state_dir>/libvirt, no daemon)"),
    OPT_ENUM(virt_type, "kvm", virt_types,
             "Domain type: kvm (hardware virtualisation) or qemu (TCG emulation)"),
    OPT(tls_cert, CONFIG_STRING, "",
        "Server certificate chain, PEM (empty = generated in <state_dir>/tls)"),
    OPT(tls_key, CONFIG_STRING, "", "Server private key, PEM (set together with tls_cert)"),
    OPT(tls_hostnames, CONFIG_STRING, "",
        "Extra names or addresses for the generated certificate, comma separated"),
    OPT(tls_priority, CONFIG_STRING, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
        "GnuTLS priority string for client connections"),
    OPT(pam_service, CONFIG_STRING, "vdi", "PAM service that checks user passwords"),
    OPT(session_program, CONFIG_STRING, "",
        "vdi-session binary (empty = next to vdi-broker, else the installed one)"),
    OPT(session_user, CONFIG_STRING, "nobody", "Unprivileged user vdi-session runs as"),
    OPT_INT(handshake_timeout_s, "10", 1, 3600, "Seconds a client has for the TLS handshake"),
    OPT_INT(login_timeout_s, "60", 1, 3600, "Seconds a client has to log in"),
    OPT_INT(max_unauthenticated, "64", 1, 65536,
            "Concurrent connections not logged in yet; more are closed at once"),
    OPT(max_startups, CONFIG_STRING, "10:30:64",
        "Unauthenticated connections, sshd-style start:rate:full: from start on, new ones are "
        "refused with rate% chance, rising to 100% at full"),
    OPT_INT(max_startups_per_address, "10", 0, 65536,
            "Unauthenticated connections from one client address (0 = no limit)"),
    OPT_INT(max_sessions, "256", 1, 65536, "Concurrent connections in all"),
    OPT_INT(desktop_start_timeout_s, "120", 1, 3600,
            "Seconds to get a desktop running before the user is told it failed"),
    OPT(database, CONFIG_STRING, "",
        "State database (empty = sqlite:<state_dir>/vdi.db; only sqlite: exists today)"),
    OPT(cpu_overcommit, CONFIG_STRING, "4.0",
        "Running desktops' vCPUs may total this many times the host's CPUs"),
    OPT(memory_overcommit, CONFIG_STRING, "1.0",
        "Running desktops' memory may total this many times the host's memory"),
    OPT_INT(shutdown_timeout_s, "60", 0, 3600,
            "Seconds a desktop has to shut down (ACPI) before it is powered off"),
    OPT_INT(spare_check_interval_s, "10", 1, 3600,
            "Seconds between checks that every pool has its spare desktops running"),
    OPT(admin_address, CONFIG_STRING, "127.0.0.1",
        "Numeric address of the HTTPS admin API (empty = no admin API)"),
    OPT_INT(admin_port, "8443", 0, 65535, "TCP port of the admin API (0 = any free port, printed)"),
    OPT(admin_group, CONFIG_STRING, "vdi-admins",
        "System group whose members may use the admin API (password checked by PAM)"),
    OPT_INT(throttle_free_failures, "3", 0, 1000,
            "Failed logins of an address or account before each further one adds a delay"),
    OPT_INT(throttle_delay_ms, "1000", 1, 3600000,
            "First delay (ms) before the next attempt; doubles with each failure"),
    OPT_INT(throttle_delay_max_ms, "30000", 1, 3600000, "Longest delay (ms) between attempts"),
    OPT_INT(lockout_failures, "10", 1, 100000,
            "Failed logins of an address or account that lock it out for lockout_s"),
    OPT_INT(lockout_s, "300", 1, 86400,
            "Seconds a lockout lasts (temporary on purpose: a permanent one is a denial of "
            "service anyone can cause)"),
    OPT_INT(throttle_window_s, "900", 1, 86400,
            "Seconds after its last failure before an address or account starts afresh"),
    OPT_INT(reattach_timeout_s, "120", 0, 3600,
            "After a broker restart, seconds connected users' sessions have to re-attach "
            "(0 = a restart disconnects everyone)"),
    OPT_ENUM(shadow_policy, "notify", shadow_policies,
             "Admins watching a session (\"admin@#ID\"): notify (the user sees a banner), "
             "silent, or deny"),
    OPT(audit_syslog, CONFIG_BOOL, "yes",
        "Also send audit events (<state_dir>/audit.log) to syslog/journald (LOG_AUTHPRIV)"),
    OPT_INT(worker_threads, "4", 1, 64,
            "Threads for PAM checks, and as many again for libvirt calls"),
    OPT_ENUM(log_level, "info", log_levels, "error, warning, info or debug"),
};
const size_t broker_config_table_size = ARRAY_SIZE(broker_config_table);

int broker_config_init(struct broker_config *c, struct config_error *err)
{
    memset(c, 0, sizeof(*c));
    return config_set_defaults(broker_config_table, broker_config_table_size, c, err);
}

void broker_config_done(struct broker_config *c)
{
    config_done(broker_config_table, broker_config_table_size, c);
}

static int fail(struct config_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct config_error *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static bool empty(const char *s)
{
    return !s || !*s;
}

/* An absolute path to a regular file this process can read. */
static int check_file(struct config_error *err, const char *key, const char *path)
{
    if (path[0] != '/')
        return fail(err, "%s: '%s' is not an absolute path", key, path);
    if (access(path, R_OK) < 0)
        return fail(err, "%s: cannot read '%s': %s", key, path, strerror(errno));
    return 0;
}

int broker_config_validate(const struct broker_config *c, struct config_error *err)
{
    unsigned char addr[sizeof(struct in6_addr)];
    int r;

    if (inet_pton(AF_INET, c->listen_address, addr) != 1 &&
        inet_pton(AF_INET6, c->listen_address, addr) != 1)
        return fail(err, "listen_address: '%s' is not a numeric IPv4 or IPv6 address",
                    c->listen_address);

    if (c->state_dir[0] != '/')
        return fail(err, "state_dir: '%s' is not an absolute path", c->state_dir);
    /* It becomes part of a libvirt URI and of paths in domain XML. */
    if (strpbrk(c->state_dir, "?#&%=;\\\"' \t\n"))
        return fail(err, "state_dir: '%s' contains characters not allowed in a state path",
                    c->state_dir);

    if (empty(c->tls_cert) != empty(c->tls_key))
        return fail(err, "%s: tls_cert and tls_key must be set together",
                    empty(c->tls_cert) ? "tls_cert" : "tls_key");
    if (!empty(c->tls_cert)) {
        r = check_file(err, "tls_cert", c->tls_cert);
        if (r < 0)
            return r;
        r = check_file(err, "tls_key", c->tls_key);
        if (r < 0)
            return r;
    }
    if (empty(c->tls_priority))
        return fail(err, "tls_priority: must not be empty");

    struct throttle_startups startups;
    if (throttle_startups_parse(c->max_startups, &startups) < 0)
        return fail(err,
                    "max_startups: '%s' is not start:rate:full (like 10:30:64, start <= "
                    "full, rate 1..100) or a single number",
                    c->max_startups);
    if (c->lockout_failures <= c->throttle_free_failures)
        return fail(err, "lockout_failures: must be more than throttle_free_failures (%d)",
                    c->throttle_free_failures);
    if (c->throttle_delay_max_ms < c->throttle_delay_ms)
        return fail(err, "throttle_delay_max_ms: must be at least throttle_delay_ms (%d)",
                    c->throttle_delay_ms);
    if (empty(c->pam_service) || strchr(c->pam_service, '/'))
        return fail(err, "pam_service: '%s' is not a PAM service name", c->pam_service);
    if (empty(c->session_user))
        return fail(err, "session_user: must not be empty");
    if (!empty(c->session_program) && c->session_program[0] != '/')
        return fail(err, "session_program: '%s' is not an absolute path", c->session_program);
    if (!empty(c->session_program) && access(c->session_program, X_OK) < 0)
        return fail(err, "session_program: cannot execute '%s': %s", c->session_program,
                    strerror(errno));

    if (!empty(c->database) && !startswith(c->database, "sqlite:/"))
        return fail(err, "database: '%s' is not sqlite:/absolute/path", c->database);
    r = broker_config_ratio(c->cpu_overcommit, NULL);
    if (r < 0)
        return fail(err, "cpu_overcommit: '%s' is not a number between 0.1 and 100",
                    c->cpu_overcommit);
    r = broker_config_ratio(c->memory_overcommit, NULL);
    if (r < 0)
        return fail(err, "memory_overcommit: '%s' is not a number between 0.1 and 100",
                    c->memory_overcommit);
    if (!empty(c->admin_address) && inet_pton(AF_INET, c->admin_address, addr) != 1 &&
        inet_pton(AF_INET6, c->admin_address, addr) != 1)
        return fail(err, "admin_address: '%s' is not a numeric IPv4 or IPv6 address",
                    c->admin_address);
    if (!empty(c->admin_address) && !username_is_valid(c->admin_group))
        return fail(err, "admin_group: '%s' is not a group name", c->admin_group);

    if (c->max_unauthenticated > c->max_sessions)
        return fail(err, "max_unauthenticated: %d is more than max_sessions (%d)",
                    c->max_unauthenticated, c->max_sessions);
    return 0;
}

int broker_config_libvirt_uri(const struct broker_config *c, char **ret)
{
    char *s;

    if (!empty(c->libvirt_uri))
        s = strdup(c->libvirt_uri);
    else if (asprintf(&s, "qemu:///embed?root=%s/libvirt", c->state_dir) < 0)
        s = NULL;
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

int broker_config_ratio(const char *text, double *ret)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= 0.1 && v <= 100))
        return -EINVAL;
    if (ret)
        *ret = v;
    return 0;
}

int broker_config_database(const struct broker_config *c, char **ret)
{
    char *s;

    if (!empty(c->database))
        s = strdup(c->database);
    else if (asprintf(&s, "sqlite:%s/vdi.db", c->state_dir) < 0)
        s = NULL;
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

void broker_config_throttle(const struct broker_config *c, struct throttle_options *ret)
{
    throttle_options_default(ret);
    ret->free_failures = c->throttle_free_failures;
    ret->delay_base_ms = c->throttle_delay_ms;
    ret->delay_max_ms = c->throttle_delay_max_ms;
    ret->lockout_failures = c->lockout_failures;
    ret->lockout_s = c->lockout_s;
    ret->window_s = c->throttle_window_s;
}
