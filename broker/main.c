/* vdi-broker: configuration, state directory, TLS identity, libvirt, then the loop. */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker-config.h"
#include "broker.h"
#include "certs.h"
#include "api.h"
#include "listener.h"
#include "log.h"
#include "broker-spawn.h"
#include "util.h"
#include "pools.h"
#include "store.h"
#include "throttle.h"
#include "virt.h"

#ifndef VDI_LIBEXECDIR
#define VDI_LIBEXECDIR "/usr/libexec/vdi"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vdi-broker [--config FILE] [--set KEY=VALUE]... [--print-config] [--help]\n"
            "\n"
            "The vdi connection broker: accepts VNC clients, checks passwords with PAM and\n"
            "hands each user their own desktop VM.\n"
            "\n"
            "  --config FILE     configuration file (default %s; a missing\n"
            "                    default file is fine, a missing named file is an error)\n"
            "  --set KEY=VALUE   override one key after the file (repeatable)\n"
            "  --print-config    print a documented sample configuration and exit\n"
            "  --help            show this help and exit\n"
            "\n"
            "Keys:\n",
            BROKER_CONFIG_DEFAULT_FILE);
    for (size_t i = 0; i < broker_config_table_size; i++)
        fprintf(f, "  %-24s %s\n", broker_config_table[i].name, broker_config_table[i].doc);
}

/* The admin API's session actions, through the loop's inbox. */
static int api_session_action(void *inbox, uint64_t session_id, enum api_session_action action,
                              const char *by_admin)
{
    return broker_inbox_session_action(inbox, session_id, action == API_SESSION_LOGOFF, by_admin);
}

static int make_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return log_error_errno(-errno, "cannot create directory %s", path);
    /* Existing directories get the mode too: QEMU's user must reach files below the
     * state directory, nobody else may read the TLS keys. */
    if (chmod(path, mode) < 0)
        return log_error_errno(-errno, "cannot set mode %04o on %s", (unsigned)mode, path);
    return 0;
}

static int join_path(char **ret, const char *dir, const char *name)
{
    if (asprintf(ret, "%s/%s", dir, name) < 0) {
        *ret = NULL;
        return log_error_errno(-ENOMEM, "out of memory");
    }
    return 0;
}

static int load_config(int argc, char **argv, struct broker_config *cfg, bool *ret_print)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"print-config", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {},
    };
    const char *config_file = NULL;
    struct config_error err = {""};
    int c, r;

    *ret_print = false;
    r = broker_config_init(cfg, &err);
    if (r < 0)
        return log_error_errno(r, "config table: %s", err.message);

    /* First pass: options, the file; second pass: --set on top of the file. */
    while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
        switch (c) {
        case 'c':
            config_file = optarg;
            break;
        case 's':
            break;
        case 'p':
            *ret_print = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        log_error("unexpected argument '%s' (see --help)", argv[optind]);
        return -EINVAL;
    }
    if (*ret_print)
        return 0;

    r = config_parse_file(broker_config_table, broker_config_table_size, cfg,
                          config_file ? config_file : BROKER_CONFIG_DEFAULT_FILE, &err);
    if (r == -ENOENT && !config_file)
        log_debug("no %s, using defaults", BROKER_CONFIG_DEFAULT_FILE);
    else if (r == -ENOENT)
        return log_error_errno(r, "cannot read config file %s", config_file);
    else if (r == -EINVAL)
        return log_error_errno(r, "%s", err.message);
    else if (r < 0)
        return log_error_errno(r, "cannot read config file %s",
                               config_file ? config_file : BROKER_CONFIG_DEFAULT_FILE);

    optind = 0;
    while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
        char *eq, *key;

        if (c != 's')
            continue;
        eq = strchr(optarg, '=');
        if (!eq) {
            log_error("--set %s: expected KEY=VALUE", optarg);
            return -EINVAL;
        }
        key = strndup(optarg, (size_t)(eq - optarg));
        if (!key)
            return log_error_errno(-ENOMEM, "out of memory");
        r = config_set(broker_config_table, broker_config_table_size, cfg, key, eq + 1, &err);
        free(key);
        if (r < 0)
            return log_error_errno(r, "--set %s: %s", optarg, err.message);
    }

    r = broker_config_validate(cfg, &err);
    if (r < 0)
        return log_error_errno(r, "invalid configuration: %s", err.message);
    return 0;
}

static int run(int argc, char **argv)
{
    struct broker_config cfg = {0};
    struct certs certs = {0};
    _cleanup_(freep) char *tls_dir = NULL, *disk_dir = NULL, *console_dir = NULL;
    _cleanup_(freep) char *uri = NULL, *program = NULL;
    _cleanup_(virt_freep) struct virt *virt = NULL;
    _cleanup_(closep) int signal_fd = -1;
    _cleanup_(closep) int listen_fd = -1;
    _cleanup_(closep) int reattach_fd = -1;
    _cleanup_(freep) char *audit_path = NULL;
    _cleanup_(audit_closep) struct audit *audit = NULL;
    struct throttle *throttle = NULL;
    struct throttle_options topts;
    char reattach_name[LISTENER_REATTACH_NAME_MAX];
    uid_t session_uid = getuid();
    _cleanup_(freep) char *database = NULL;
    _cleanup_(store_closep) struct store *store = NULL;
    _cleanup_(pools_freep) struct pools *pools = NULL;
    struct broker_inbox *inbox = NULL;
    struct api *api = NULL;
    struct virt_error verr = {""};
    enum log_level level;
    char error[512] = "", where[LISTENER_ADDRESS_MAX + 16];
    uint16_t port;
    sigset_t mask;
    bool print;
    int r;

    r = load_config(argc, argv, &cfg, &print);
    if (r != 0)
        goto out;
    if (print) {
        config_print(broker_config_table, broker_config_table_size, stdout);
        goto out;
    }
    if (log_level_from_string(cfg.log_level, &level) == 0)
        log_set_level(level);

    r = spawn_find_program(cfg.session_program, VDI_LIBEXECDIR "/vdi-session", &program);
    if (r < 0) {
        log_error_errno(
            r, "session_program: vdi-session not found next to vdi-broker nor in " VDI_LIBEXECDIR);
        goto out;
    }
    struct passwd *pw = getpwnam(cfg.session_user);
    if (!pw) {
        r = -ENOENT;
        log_error("session_user: no such user '%s'", cfg.session_user);
        goto out;
    }
    if (geteuid() == 0) /* vdi-session drops to it; unprivileged, it stays as we are */
        session_uid = pw->pw_uid;

    /* State directory layout. */
    if ((r = make_dir(cfg.state_dir, 0755)) < 0 ||
        (r = join_path(&tls_dir, cfg.state_dir, "tls")) < 0 ||
        (r = join_path(&disk_dir, cfg.state_dir, "disks")) < 0 ||
        (r = join_path(&console_dir, cfg.state_dir, "console")) < 0 ||
        (r = make_dir(tls_dir, 0700)) < 0 || (r = make_dir(disk_dir, 0755)) < 0 ||
        (r = make_dir(console_dir, 0755)) < 0)
        goto out;

    /* One broker per state directory: the re-attach socket's name says which. */
    listener_reattach_name(cfg.state_dir, reattach_name);
    reattach_fd = listener_open_abstract(reattach_name);
    if (reattach_fd == -EADDRINUSE) {
        r = reattach_fd;
        log_error("another vdi-broker is running on state_dir %s (socket @%s is taken)",
                  cfg.state_dir, reattach_name);
        goto out;
    }
    if (reattach_fd < 0) {
        r = log_error_errno(reattach_fd, "cannot listen on the re-attach socket @%s",
                            reattach_name);
        goto out;
    }

    /* Audit log and brute-force protection. */
    if ((r = join_path(&audit_path, cfg.state_dir, "audit.log")) < 0)
        goto out;
    r = audit_open(audit_path, cfg.audit_syslog, &audit);
    if (r < 0) {
        log_error_errno(r, "cannot open the audit log %s", audit_path);
        goto out;
    }
    broker_config_throttle(&cfg, &topts);
    r = throttle_new(&topts, &throttle);
    if (r < 0) {
        log_error_errno(r, "cannot set up login throttling");
        goto out;
    }

    /* TLS identity. */
    if (cfg.tls_cert[0])
        r = certs_load(cfg.tls_cert, cfg.tls_key, &certs, error, sizeof(error));
    else
        r = certs_ensure(tls_dir, cfg.tls_hostnames, &certs, error, sizeof(error));
    if (r < 0) {
        log_error_errno(r, "TLS: %s", error);
        goto out;
    }
    if (certs.generated)
        log_info("tls generated server certificate %s", certs.cert_file);
    if (certs.ca_file) {
        log_info("tls ca=%s cert=%s server_sha256=%s ca_sha256=%s", certs.ca_file, certs.cert_file,
                 certs.server_sha256, certs.ca_sha256);
        printf("tls ca=%s cert=%s server_sha256=%s ca_sha256=%s\n", certs.ca_file, certs.cert_file,
               certs.server_sha256, certs.ca_sha256);
    } else {
        log_info("tls cert=%s server_sha256=%s", certs.cert_file, certs.server_sha256);
        printf("tls cert=%s server_sha256=%s\n", certs.cert_file, certs.server_sha256);
    }
    fflush(stdout);

    /* Signals: blocked in every thread (set before any thread starts), read via signalfd. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
        r = log_error_errno(-errno, "sigprocmask failed");
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd < 0) {
        r = log_error_errno(-errno, "signalfd failed");
        goto out;
    }

    /* libvirt. */
    r = broker_config_libvirt_uri(&cfg, &uri);
    if (r < 0)
        goto out;
    if (!cfg.libvirt_uri[0]) {
        _cleanup_(freep) char *root = NULL;
        if ((r = join_path(&root, cfg.state_dir, "libvirt")) < 0)
            goto out;
        r = virt_embed_prepare(root, &verr);
        if (r < 0) {
            log_error_errno(r, "libvirt: %s", verr.message);
            goto out;
        }
    }
    struct virt_options vopts = {
        .uri = uri,
        .virt_type = cfg.virt_type,
        .disk_dir = disk_dir,
        .console_dir = console_dir,
    };
    r = virt_new(&vopts, &virt, &verr);
    if (r < 0) {
        log_error_errno(r, "libvirt: %s", verr.message);
        goto out;
    }
    log_info("libvirt uri=%s virt_type=%s disks=%s", uri, cfg.virt_type,
             virt_has_storage_api(virt) ? "storage pool " VIRT_POOL_NAME : "qemu-img (no storage driver)");

    /* State: the store, then pools converge it with what libvirt runs. */
    if ((r = broker_config_database(&cfg, &database)) < 0)
        goto out;
    r = store_open(database, &store);
    if (r < 0) {
        log_error_errno(r, "cannot open the database %s", database);
        goto out;
    }
    struct pools_options popts = {
        .store = store,
        .virt = virt,
        .shutdown_timeout_s = cfg.shutdown_timeout_s,
    };
    (void)broker_config_ratio(cfg.cpu_overcommit, &popts.cpu_overcommit);
    (void)broker_config_ratio(cfg.memory_overcommit, &popts.memory_overcommit);
    r = pools_new(&popts, &pools);
    if (r < 0)
        goto out;
    r = pools_reconcile(pools);
    if (r < 0)
        log_warning("reconciliation left some desktops as they were (see above); continuing");

    listen_fd = listener_open(cfg.listen_address, cfg.listen_port, &port);
    if (listen_fd < 0) {
        r = log_error_errno(listen_fd, "cannot listen on %s port %d", cfg.listen_address,
                            cfg.listen_port);
        goto out;
    }
    listener_format(cfg.listen_address, port, where, sizeof(where));

    struct spawn_params spawn = {
        .program = program,
        .tls_cert = certs.cert_file,
        .tls_key = certs.key_file,
        .tls_priority = cfg.tls_priority,
        .session_user = cfg.session_user,
        .handshake_timeout_s = cfg.handshake_timeout_s,
        .login_timeout_s = cfg.login_timeout_s,
        .log_level = cfg.log_level,
        .broker_socket = reattach_name,
        .broker_uid = getuid(),
        .reattach_timeout_s = cfg.reattach_timeout_s,
    };
    uint64_t last_session_id = 0;
    if (store_session_max_id(store, &last_session_id) < 0)
        log_warning("cannot read the last session id; ids may repeat those of earlier runs");
    r = broker_inbox_new(&inbox);
    if (r < 0) {
        log_error_errno(r, "cannot set up the admin request queue");
        goto out;
    }
    struct broker_context ctx = {
        .config = &cfg,
        .spawn = &spawn,
        .pools = pools,
        .inbox = inbox,
        .throttle = throttle,
        .audit = audit,
        .listen_fd = listen_fd,
        .reattach_fd = reattach_fd,
        .signal_fd = signal_fd,
        .session_uid = session_uid,
        .first_session_id = last_session_id + 1,
    };
    /* Desktops that stop by themselves reach the loop through the inbox. */
    r = virt_watch(virt, broker_inbox_desktop_event, inbox);
    if (r < 0)
        log_warning("libvirt lifecycle events unavailable (%s): desktops that stop by "
                    "themselves are noticed at the next maintenance round only",
                    strerror(-r));
    if (cfg.admin_address[0]) {
        struct api_options aopts = {
            .address = cfg.admin_address,
            .port = cfg.admin_port,
            .cert_file = certs.cert_file,
            .key_file = certs.key_file,
            .tls_priority = cfg.tls_priority,
            .pam_service = cfg.pam_service,
            .admin_group = cfg.admin_group,
            .pools = pools,
            .store = store,
            .sessions = broker_inbox_sessions,
            .session_action = api_session_action,
            .userdata = inbox,
            .throttle = throttle,
            .audit = audit,
            .audit_path = audit_path,
            .max_connections = 16,
            .timeout_s = 60,
        };
        char admin_where[LISTENER_ADDRESS_MAX + 16];
        uint16_t admin_port;

        r = api_start(&aopts, &api, &admin_port);
        if (r < 0) {
            log_error_errno(r, "cannot start the admin API on %s port %d", cfg.admin_address,
                            cfg.admin_port);
            goto out;
        }
        listener_format(cfg.admin_address, admin_port, admin_where, sizeof(admin_where));
        log_info("admin API on https://%s", admin_where);
        printf("vdi-broker admin API on https://%s\n", admin_where);
    }

    log_info("vdi-broker listening on %s session_program=%s", where, program);
    printf("vdi-broker listening on %s\n", where);
    fflush(stdout);

    (void)audit_event(audit, "broker.start", "listen", where, NULL);
    r = broker_run(&ctx);
    listen_fd = safe_close(listen_fd);
    if (r == 0)
        log_info("stopped; desktop VMs keep running");
    (void)audit_event(audit, "broker.stop", NULL);
out:
    api_stop(api); /* before pools and store go */
    if (virt)
        (void)virt_watch(virt, NULL, NULL); /* no more events into the inbox */
    broker_inbox_free(inbox);
    throttle_free(throttle);
    certs_done(&certs);
    broker_config_done(&cfg);
    return r;
}

int main(int argc, char **argv)
{
    int r;

    log_set_ident("vdi-broker");
    r = run(argc, argv);
    if (r == 1) /* --help */
        return EXIT_SUCCESS;
    return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
