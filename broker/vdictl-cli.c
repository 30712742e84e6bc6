/* vdictl: command line -> admin API request (tables below), answer -> table or JSON. */
#include "vdictl-cli.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tty.h"
#include "util.h"

#define DAY_SECONDS (24 * 3600)
#define USAGE_DEFAULT_DAYS 30
#define TEXT_MAX 4096  /* --cmdline, paths */
#define CELL_MAX 60    /* characters of a table cell before "..." */
#define FIELD_MAX 4096 /* characters of a value in a "show" listing */
#define JSON_DEPTH 32
#define WRAP_COLUMN 79

/* ---- global options ------------------------------------------------------------------ */

enum global_id { G_URL, G_CA_FILE, G_USER, G_PASSWORD_FILE, G_JSON, G_TIMEOUT, G_HELP };

struct global_def {
    const char *name;
    enum global_id id;
    const char *metavar; /* NULL for flags */
    const char *doc;
};

static const struct global_def global_table[] = {
    {"url", G_URL, "URL",
     "The admin API, https://HOST[:PORT] (default: $VDI_URL, else " VDICTL_DEFAULT_URL ")"},
    {"ca-file", G_CA_FILE, "FILE",
     "CA certificate(s) (PEM) the broker's certificate must chain to (default: $VDI_CA_FILE, "
     "else " VDICTL_DEFAULT_CA_FILE ")"},
    {"user", G_USER, "NAME",
     "Administrator to log in as (default: $VDI_USER, else the login name)"},
    {"password-file", G_PASSWORD_FILE, "FILE",
     "Read the password from the first line of FILE (default: $VDI_PASSWORD, else ask on the "
     "terminal without echo)"},
    {"json", G_JSON, NULL,
     "Print the API's JSON (pretty-printed) instead of tables and confirmations; also "
     "accepted after COMMAND"},
    {"timeout", G_TIMEOUT, "SECONDS", "Give up on the request after SECONDS (1-3600, default 30)"},
    {"help", G_HELP, NULL, "Show this help and exit (also -h, and after COMMAND)"},
};

/* ---- command options ------------------------------------------------------------------ */

enum opt_id {
    OPT_DISK,
    OPT_OS,
    OPT_FIRMWARE,
    OPT_KERNEL,
    OPT_INITRD,
    OPT_CMDLINE,
    OPT_TEMPLATE,
    OPT_SIZE,
    OPT_VCPUS,
    OPT_MEMORY,
    OPT_KIND,
    OPT_MIN_SPARE,
    OPT_MAX,
    OPT_LOGOFF,
    OPT_GRACE,
    OPT_IDLE_TIMEOUT,
    OPT_MAX_SESSION,
    OPT_STOP_ACTION,
    OPT_FROM,
    OPT_TO,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_EVENT,
    OPT_USER,
    OPT_GROUP,
    OPT_POOL,
    OPT_CLIENT,
    OPT_LIMIT,
    OPT_HISTORY,
    OPT_COUNT
};
/* (The order is the order of body fields, query parameters and help text.) */
#define BIT(o) (1u << (o))

enum value_type {
    V_PATH,     /* absolute path */
    V_TEXT,     /* printable text */
    V_ENUM,     /* one of choices */
    V_NUMBER,   /* decimal in min..max */
    V_NAME,     /* template or pool name: [a-z0-9-]{1,32}, first a letter or digit */
    V_ACCOUNT,  /* user or group name (username_is_valid) */
    V_DATE,     /* YYYY-MM-DD or unix seconds */
    V_TIME,     /* V_DATE, YYYY-MM-DDTHH:MM[:SS][Z], or N[smhdw] ago */
    V_DURATION, /* seconds, or N with s, m, h or d; in min..max seconds */
    V_EVENT,    /* an audit event name or prefix: [a-z0-9._-]{1,64} */
    V_ADDRESS,  /* a client address: IPv4, IPv6 or a host name */
    V_FLAG,
};

static const char *const os_values[] = {"linux", "windows", NULL};
static const char *const firmware_values[] = {"bios", "uefi", NULL};
static const char *const size_values[] = {"small", "medium", "large", NULL};
static const char *const kind_values[] = {"dedicated", "floating", NULL};
static const char *const logoff_values[] = {"keep", "suspend", "shutdown", "reset", NULL};
static const char *const stop_action_values[] = {"none", "restart", "reset", NULL};

struct opt_def {
    const char *name;
    enum value_type type;
    const char *metavar;
    const char *field; /* JSON body field or query parameter */
    const char *const *choices;
    long long min, max;
    const char *doc;
};

static const struct opt_def opt_table[OPT_COUNT] = {
    [OPT_DISK] = {"disk", V_PATH, "PATH", "disk", NULL, 0, 0,
                  "template: the disk image (absolute path on the broker)"},
    [OPT_OS] = {"os", V_ENUM, NULL, "os", os_values, 0, 0, "template: guest OS (default linux)"},
    [OPT_FIRMWARE] = {"firmware", V_ENUM, NULL, "firmware", firmware_values, 0, 0,
                      "template: firmware (default bios for linux, uefi for windows)"},
    [OPT_KERNEL] = {"kernel", V_PATH, "PATH", "kernel", NULL, 0, 0,
                    "template: boot this kernel directly (absolute path)"},
    [OPT_INITRD] = {"initrd", V_PATH, "PATH", "initrd", NULL, 0, 0,
                    "template: initrd for --kernel (absolute path)"},
    [OPT_CMDLINE] = {"cmdline", V_TEXT, "TEXT", "cmdline", NULL, 0, 0,
                     "template: kernel command line for --kernel"},
    [OPT_TEMPLATE] = {"template", V_NAME, "TEMPLATE", "template", NULL, 0, 0,
                      "pool: the template its desktops are made from"},
    [OPT_SIZE] = {"size", V_ENUM, NULL, "size", size_values, 0, 0,
                  "pool: small = 1 vCPU 2048 MiB, medium = 2/4096, large = 4/8192 "
                  "(default small)"},
    [OPT_VCPUS] = {"vcpus", V_NUMBER, "N", "vcpus", NULL, 1, 1024,
                   "pool: virtual CPUs per desktop (overrides --size)"},
    [OPT_MEMORY] = {"memory", V_NUMBER, "MIB", "memory_mib", NULL, 1, 16 * 1024 * 1024,
                    "pool: memory per desktop in MiB (overrides --size)"},
    [OPT_KIND] = {"kind", V_ENUM, NULL, "kind", kind_values, 0, 0,
                  "pool: dedicated (a desktop per user, kept) or floating (any free desktop) "
                  "(default dedicated)"},
    [OPT_MIN_SPARE] = {"min-spare", V_NUMBER, "N", "min_spare", NULL, 0, 100000,
                       "pool: free desktops kept ready (default 0)"},
    [OPT_MAX] = {"max", V_NUMBER, "N", "max_desktops", NULL, 1, 100000,
                 "pool: most desktops the pool may have (default 10)"},
    [OPT_LOGOFF] = {"logoff", V_ENUM, NULL, "logoff", logoff_values, 0, 0,
                    "pool: what happens to a desktop when its user leaves (default keep for "
                    "dedicated, reset for floating)"},
    [OPT_GRACE] = {"grace", V_DURATION, "DURATION", "disconnect_grace_s", NULL, 0, 7 * DAY_SECONDS,
                   "pool: how long a disconnected session waits for its user before the "
                   "logoff action (0 = at once; default 5m)"},
    [OPT_IDLE_TIMEOUT] = {"idle-timeout", V_DURATION, "DURATION", "idle_timeout_s", NULL, 0,
                          7 * DAY_SECONDS,
                          "pool: disconnect a session without keyboard or mouse input for "
                          "this long (0 = never, the default)"},
    [OPT_MAX_SESSION] = {"max-session", V_DURATION, "DURATION", "max_session_s", NULL, 0,
                         30 * DAY_SECONDS,
                         "pool: end a session (disconnect and log off) this long after it "
                         "began (0 = never, the default)"},
    [OPT_STOP_ACTION] = {"stop-action", V_ENUM, NULL, "stop_action", stop_action_values, 0, 0,
                         "pool: when a desktop stops by itself (guest shutdown): leave it, "
                         "start it again, or reset it (default none for dedicated, reset for "
                         "floating)"},
    [OPT_POOL] = {"pool", V_NAME, "POOL", "pool", NULL, 0, 0, "only this pool"},
    [OPT_USER] = {"user", V_ACCOUNT, "USER", "user", NULL, 0, 0,
                  "entitlement: this user; usage: only this user; audit: only events by or "
                  "about this user"},
    [OPT_GROUP] = {"group", V_ACCOUNT, "GROUP", "group", NULL, 0, 0,
                   "entitlement: members of this system group"},
    [OPT_CLIENT] = {"client", V_ADDRESS, "ADDRESS", "client", NULL, 0, 0,
                    "audit: only events from this client address"},
    [OPT_HISTORY] = {"history", V_FLAG, NULL, "history", NULL, 0, 0,
                     "session list: the connection history instead (every client "
                     "connection, ended ones too, newest first, at most 1000)"},
    [OPT_FROM] = {"from", V_DATE, "DATE", "from", NULL, 0, 0,
                  "usage: start of the period (default 30 days before --to)"},
    [OPT_TO] = {"to", V_DATE, "DATE", "to", NULL, 0, 0,
                "usage: end of the period, a day given as YYYY-MM-DD included (default now)"},
    [OPT_SINCE] = {"since", V_TIME, "TIME", "since", NULL, 0, 0,
                   "audit: only events at or after TIME"},
    [OPT_UNTIL] = {"until", V_TIME, "TIME", "until", NULL, 0, 0,
                   "audit: only events before TIME (a day given as YYYY-MM-DD included)"},
    [OPT_EVENT] = {"event", V_EVENT, "EVENT", "event", NULL, 0, 0,
                   "audit: only this event, or those under it (login: login.success, "
                   "login.failure, ...)"},
    [OPT_LIMIT] = {"limit", V_NUMBER, "N", "limit", NULL, 1, 10000,
                   "audit: at most N events, the newest (1-10000, default 100)"},
};

/* ---- commands -------------------------------------------------------------------------- */

enum arg_type { A_NAME, A_DESKTOP, A_ACCOUNT, A_SESSION };

enum shape {
    SHAPE_PLAIN = 0,   /* no body; options (if any) become the query */
    SHAPE_CREATE,      /* body {"name": ARG1, options...} */
    SHAPE_PATCH,       /* body {options...}, at least one */
    SHAPE_ASSIGN,      /* body {"user": ARG2} */
    SHAPE_ENTITLEMENT, /* body {"pool": ARG1, "kind": "user"|"group", "name": ...} */
    SHAPE_USAGE,       /* query from/to/user/pool with the 30-day default */
};

#define TEMPLATE_OPTS                                                                              \
    (BIT(OPT_DISK) | BIT(OPT_OS) | BIT(OPT_FIRMWARE) | BIT(OPT_KERNEL) | BIT(OPT_INITRD) |         \
     BIT(OPT_CMDLINE))
#define POOL_OPTS                                                                                  \
    (BIT(OPT_TEMPLATE) | BIT(OPT_SIZE) | BIT(OPT_VCPUS) | BIT(OPT_MEMORY) | BIT(OPT_KIND) |        \
     BIT(OPT_MIN_SPARE) | BIT(OPT_MAX) | BIT(OPT_LOGOFF) | BIT(OPT_GRACE) |                        \
     BIT(OPT_IDLE_TIMEOUT) | BIT(OPT_MAX_SESSION) | BIT(OPT_STOP_ACTION))

struct command_def {
    const char *noun, *verb; /* verb NULL: a one-word command */
    const char *args[2];     /* positional metavars */
    enum arg_type arg_types[2];
    uint32_t opts, required, one_of; /* BIT(opt_id) masks; one_of: exactly one of them */
    const char *method;
    const char *path; /* "@1" = first argument, percent-encoded */
    enum shape shape;
    enum vdictl_view view; /* VDICTL_VIEW_CONFIRM: a change */
    uint32_t alt_opts;     /* when one of these options is given, alt_view instead */
    enum vdictl_view alt_view;
    const char *confirm; /* "@1"/"@2" = arguments, "@k"/"@w" = entitlement kind/name */
    const char *doc;
};

/* clang-format off */
static const struct command_def command_table[] = {
    {.noun = "template", .verb = "list", .method = "GET", .path = "/api/v1/templates",
     .view = VDICTL_VIEW_TEMPLATES, .doc = "List the templates."},
    {.noun = "template", .verb = "show", .args = {"NAME"}, .arg_types = {A_NAME},
     .method = "GET", .path = "/api/v1/templates/@1", .view = VDICTL_VIEW_TEMPLATE,
     .doc = "Show one template."},
    {.noun = "template", .verb = "add", .args = {"NAME"}, .arg_types = {A_NAME},
     .opts = TEMPLATE_OPTS, .required = BIT(OPT_DISK),
     .method = "POST", .path = "/api/v1/templates", .shape = SHAPE_CREATE,
     .view = VDICTL_VIEW_CONFIRM, .confirm = "template @1 added",
     .doc = "Add a template: a disk image desktops are made from."},
    {.noun = "template", .verb = "delete", .args = {"NAME"}, .arg_types = {A_NAME},
     .method = "DELETE", .path = "/api/v1/templates/@1",
     .view = VDICTL_VIEW_CONFIRM, .confirm = "template @1 deleted",
     .doc = "Delete a template no pool uses."},

    {.noun = "pool", .verb = "list", .method = "GET", .path = "/api/v1/pools",
     .view = VDICTL_VIEW_POOLS, .doc = "List the pools."},
    {.noun = "pool", .verb = "show", .args = {"NAME"}, .arg_types = {A_NAME},
     .method = "GET", .path = "/api/v1/pools/@1", .view = VDICTL_VIEW_POOL,
     .doc = "Show one pool."},
    {.noun = "pool", .verb = "add", .args = {"NAME"}, .arg_types = {A_NAME},
     .opts = POOL_OPTS, .required = BIT(OPT_TEMPLATE),
     .method = "POST", .path = "/api/v1/pools", .shape = SHAPE_CREATE,
     .view = VDICTL_VIEW_CONFIRM, .confirm = "pool @1 added", .doc = "Add a pool."},
    {.noun = "pool", .verb = "set", .args = {"NAME"}, .arg_types = {A_NAME}, .opts = POOL_OPTS,
     .method = "PATCH", .path = "/api/v1/pools/@1", .shape = SHAPE_PATCH,
     .view = VDICTL_VIEW_CONFIRM, .confirm = "pool @1 changed",
     .doc = "Change a pool: only the options given."},
    {.noun = "pool", .verb = "delete", .args = {"NAME"}, .arg_types = {A_NAME},
     .method = "DELETE", .path = "/api/v1/pools/@1",
     .view = VDICTL_VIEW_CONFIRM, .confirm = "pool @1 deleted",
     .doc = "Delete a pool and its free desktops (refused while a desktop is assigned or "
            "in use)."},

    {.noun = "desktop", .verb = "list", .opts = BIT(OPT_POOL),
     .method = "GET", .path = "/api/v1/desktops", .view = VDICTL_VIEW_DESKTOPS,
     .doc = "List the desktops."},
    {.noun = "desktop", .verb = "show", .args = {"NAME"}, .arg_types = {A_DESKTOP},
     .method = "GET", .path = "/api/v1/desktops/@1", .view = VDICTL_VIEW_DESKTOP,
     .doc = "Show one desktop."},
    {.noun = "desktop", .verb = "assign", .args = {"NAME", "USER"},
     .arg_types = {A_DESKTOP, A_ACCOUNT},
     .method = "POST", .path = "/api/v1/desktops/@1/assign", .shape = SHAPE_ASSIGN,
     .view = VDICTL_VIEW_CONFIRM, .confirm = "desktop @1 assigned to @2",
     .doc = "Give a desktop of a dedicated pool to a user."},
    {.noun = "desktop", .verb = "unassign", .args = {"NAME"}, .arg_types = {A_DESKTOP},
     .method = "POST", .path = "/api/v1/desktops/@1/unassign",
     .view = VDICTL_VIEW_CONFIRM, .confirm = "desktop @1 unassigned",
     .doc = "Take a desktop back from its user."},
    {.noun = "desktop", .verb = "start", .args = {"NAME"}, .arg_types = {A_DESKTOP},
     .method = "POST", .path = "/api/v1/desktops/@1/start",
     .view = VDICTL_VIEW_CONFIRM, .confirm = "desktop @1 started",
     .doc = "Start a desktop's VM (refused when the host is at capacity)."},
    {.noun = "desktop", .verb = "stop", .args = {"NAME"}, .arg_types = {A_DESKTOP},
     .method = "POST", .path = "/api/v1/desktops/@1/stop",
     .view = VDICTL_VIEW_CONFIRM, .confirm = "desktop @1 stopped",
     .doc = "Stop a desktop's VM."},
    {.noun = "desktop", .verb = "reset", .args = {"NAME"}, .arg_types = {A_DESKTOP},
     .method = "POST", .path = "/api/v1/desktops/@1/reset",
     .view = VDICTL_VIEW_CONFIRM, .confirm = "desktop @1 reset",
     .doc = "Put a desktop's disk back to its template (refused while connected)."},

    {.noun = "entitlement", .verb = "list", .opts = BIT(OPT_POOL),
     .method = "GET", .path = "/api/v1/entitlements", .view = VDICTL_VIEW_ENTITLEMENTS,
     .doc = "List who may use which pool."},
    {.noun = "entitlement", .verb = "add", .args = {"POOL"}, .arg_types = {A_NAME},
     .opts = BIT(OPT_USER) | BIT(OPT_GROUP), .one_of = BIT(OPT_USER) | BIT(OPT_GROUP),
     .method = "POST", .path = "/api/v1/entitlements", .shape = SHAPE_ENTITLEMENT,
     .view = VDICTL_VIEW_CONFIRM, .confirm = "@k @w entitled to pool @1",
     .doc = "Let a user, or the members of a group, use a pool."},
    {.noun = "entitlement", .verb = "delete", .args = {"POOL"}, .arg_types = {A_NAME},
     .opts = BIT(OPT_USER) | BIT(OPT_GROUP), .one_of = BIT(OPT_USER) | BIT(OPT_GROUP),
     .method = "DELETE", .path = "/api/v1/entitlements", .shape = SHAPE_ENTITLEMENT,
     .view = VDICTL_VIEW_CONFIRM, .confirm = "@k @w no longer entitled to pool @1",
     .doc = "Remove an entitlement."},

    {.noun = "session", .verb = "list", .opts = BIT(OPT_HISTORY),
     .method = "GET", .path = "/api/v1/sessions", .view = VDICTL_VIEW_SESSIONS,
     .alt_opts = BIT(OPT_HISTORY), .alt_view = VDICTL_VIEW_SESSION_HISTORY,
     .doc = "List the desktop sessions, connected or waiting for their user to come back "
            "(IDLE: since the last input, SENT: bytes to the client)."},
    {.noun = "session", .verb = "disconnect", .args = {"ID"}, .arg_types = {A_SESSION},
     .method = "POST", .path = "/api/v1/sessions/@1/disconnect",
     .view = VDICTL_VIEW_CONFIRM, .confirm = "session @1 disconnected",
     .doc = "Close a session's connections; its desktop waits for the user for the pool's "
            "grace period."},
    {.noun = "session", .verb = "logoff", .args = {"ID"}, .arg_types = {A_SESSION},
     .method = "POST", .path = "/api/v1/sessions/@1/logoff",
     .view = VDICTL_VIEW_CONFIRM, .confirm = "session @1 logged off",
     .doc = "Close a session's connections and run the pool's logoff action now."},
    {.noun = "session", .verb = "shadow", .args = {"ID"}, .arg_types = {A_SESSION},
     .method = "GET", .path = "/api/v1/sessions/@1", .view = VDICTL_VIEW_SHADOW,
     .doc = "Check that a session exists and say how to watch it with a VNC client (view "
            "only)."},

    {.noun = "usage", .opts = BIT(OPT_FROM) | BIT(OPT_TO) | BIT(OPT_USER) | BIT(OPT_POOL),
     .method = "GET", .path = "/api/v1/usage", .shape = SHAPE_USAGE, .view = VDICTL_VIEW_USAGE,
     .doc = "Resource use per user and pool over a period (default: the last 30 days); "
            "a user \"(spare)\" is the running time of free spare desktops."},
    {.noun = "audit",
     .opts = BIT(OPT_SINCE) | BIT(OPT_UNTIL) | BIT(OPT_EVENT) | BIT(OPT_USER) | BIT(OPT_CLIENT) |
             BIT(OPT_LIMIT),
     .method = "GET", .path = "/api/v1/audit", .view = VDICTL_VIEW_AUDIT,
     .doc = "The audit log, newest first: logins, sessions, and changes made through the "
            "API."},
    {.noun = "metrics", .method = "GET", .path = "/metrics", .view = VDICTL_VIEW_METRICS,
     .doc = "Print the Prometheus metrics as the broker serves them."},
};
/* clang-format on */

/* ---- small helpers ---------------------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static int usage_error(FILE *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vdictl: ", err);
    vfprintf(err, fmt, ap);
    fputs("\nTry 'vdictl --help'.\n", err);
    va_end(ap);
    return -EINVAL;
}

/* "pool add", "usage" */
static const char *command_name(const struct command_def *c, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s", c->noun, c->verb ? " " : "", c->verb ? c->verb : "");
    return buf;
}

static unsigned command_nargs(const struct command_def *c)
{
    return c->args[1] ? 2 : c->args[0] ? 1 : 0;
}

static bool is_printable_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* Template and pool names, as API.md has them. */
static bool resource_name_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* Desktop names ("vdi-eng-0001", "vdi-alice"): what VM names are made of. */
static bool desktop_name_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static int parse_number(const char *s, long long min, long long max, long long *ret)
{
    if (!*s || strlen(s) > 19)
        return -EINVAL;
    long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        return -ERANGE;
    *ret = v;
    return 0;
}

/* "YYYY-MM-DD" (local midnight; with end_of_day the next midnight) or unix seconds. */
static int parse_date(const char *s, bool end_of_day, long long *ret)
{
    if (s[0] >= '0' && s[0] <= '9' && strspn(s, "0123456789") == strlen(s))
        return parse_number(s, 0, 253402300799LL /* 9999-12-31 */, ret);
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -EINVAL;
    int f[3] = {0};
    const int offs[3] = {0, 5, 8}, lens[3] = {4, 2, 2};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < lens[i]; j++) {
            char c = s[offs[i] + j];
            if (c < '0' || c > '9')
                return -EINVAL;
            f[i] = f[i] * 10 + (c - '0');
        }
    if (f[0] < 1970 || f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31)
        return -EINVAL;
    struct tm tm = {.tm_year = f[0] - 1900, .tm_mon = f[1] - 1, .tm_mday = f[2], .tm_isdst = -1};
    if (mktime(&tm) == (time_t)-1 || tm.tm_year != f[0] - 1900 || tm.tm_mon != f[1] - 1 ||
        tm.tm_mday != f[2])
        return -EINVAL; /* 2024-02-30 */
    tm = (struct tm){.tm_year = f[0] - 1900,
                     .tm_mon = f[1] - 1,
                     .tm_mday = f[2] + (end_of_day ? 1 : 0),
                     .tm_isdst = -1};
    time_t t = mktime(&tm);
    if (t == (time_t)-1 || t < 0)
        return -EINVAL;
    *ret = (long long)t;
    return 0;
}

/* Seconds per unit suffix: s, m, h, d, w; 0 for anything else. */
static long long unit_seconds(char c)
{
    switch (c) {
    case 's':
        return 1;
    case 'm':
        return 60;
    case 'h':
        return 3600;
    case 'd':
        return DAY_SECONDS;
    case 'w':
        return 7LL * DAY_SECONDS;
    default:
        return 0;
    }
}

/* "300", "30s", "5m", "8h", "2d" (and "1w" when weeks) as seconds in min..max. */
static int parse_duration(const char *s, bool weeks, long long min, long long max, long long *ret)
{
    size_t digits = strspn(s, "0123456789");
    long long unit = 1, n;
    if (digits == 0 || digits > 9)
        return -EINVAL;
    if (s[digits]) {
        unit = unit_seconds(s[digits]);
        if (unit == 0 || s[digits + 1] || (!weeks && s[digits] == 'w'))
            return -EINVAL;
    }
    char num[10];
    memcpy(num, s, digits);
    num[digits] = '\0';
    int r = parse_number(num, 0, 999999999, &n);
    if (r < 0)
        return r;
    if (n * unit < min || n * unit > max)
        return -ERANGE;
    *ret = n * unit;
    return 0;
}

/* Reads exactly n digits at s. */
static bool fixed_digits(const char *s, int n, int *ret)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return true;
}

/* A point in time: what parse_date() takes, "YYYY-MM-DDTHH:MM[:SS]" (local time, or UTC
 * with a trailing "Z"), or "N" + s/m/h/d/w for that long before now. */
static int parse_time(const char *s, bool end_of_day, long long *ret)
{
    size_t digits = strspn(s, "0123456789");
    if (digits > 0 && s[digits] && !s[digits + 1] && unit_seconds(s[digits])) {
        long long ago;
        int r = parse_duration(s, true, 0, 100LL * 365 * DAY_SECONDS, &ago);
        if (r < 0)
            return r;
        long long now = (long long)time(NULL);
        *ret = now > ago ? now - ago : 0;
        return 0;
    }
    size_t n = strlen(s);
    if (n < 16 || s[10] != 'T')
        return parse_date(s, end_of_day, ret);

    int f[6] = {0};
    bool utc = s[n - 1] == 'Z';
    size_t body = utc ? n - 1 : n;
    if ((body != 16 && body != 19) || s[4] != '-' || s[7] != '-' || s[13] != ':' ||
        (body == 19 && s[16] != ':') || !fixed_digits(s, 4, &f[0]) ||
        !fixed_digits(s + 5, 2, &f[1]) || !fixed_digits(s + 8, 2, &f[2]) ||
        !fixed_digits(s + 11, 2, &f[3]) || !fixed_digits(s + 14, 2, &f[4]) ||
        (body == 19 && !fixed_digits(s + 17, 2, &f[5])))
        return -EINVAL;
    if (f[0] < 1970 || f[0] > 9999 || f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 ||
        f[4] > 59 || f[5] > 59)
        return -EINVAL;
    struct tm tm = {.tm_year = f[0] - 1900,
                    .tm_mon = f[1] - 1,
                    .tm_mday = f[2],
                    .tm_hour = f[3],
                    .tm_min = f[4],
                    .tm_sec = f[5],
                    .tm_isdst = -1};
    time_t t = utc ? timegm(&tm) : mktime(&tm);
    if (t == (time_t)-1 || t < 0 || tm.tm_mday != f[2] || tm.tm_mon != f[1] - 1)
        return -EINVAL; /* 2024-02-30 */
    *ret = (long long)t;
    return 0;
}

/* Audit event names and prefixes. */
static bool event_name_is_valid(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* IPv4, IPv6 (brackets allowed) or a host name. */
static bool address_is_valid(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:-_[]%") == n;
}

/* Percent-encodes everything but RFC 3986's unreserved characters. */
static int append_encoded(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            fputc(c, f);
        else
            fprintf(f, "%%%02X", c);
    }
    return 0;
}

/* Replaces "@1", "@2", "@k", "@w" in tmpl. encode: percent-encode the substitutions. */
static char *expand(const char *tmpl, const char *const subst[4], bool encode)
{
    static const char keys[4] = {'1', '2', 'k', 'w'};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    for (const char *p = tmpl; *p; p++) {
        const char *s = NULL;
        if (p[0] == '@')
            for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                if (p[1] == keys[i] && subst[i])
                    s = subst[i];
        if (!s) {
            fputc(*p, f);
            continue;
        }
        if (encode)
            append_encoded(f, s);
        else
            fputs(s, f);
        p++;
    }
    bool bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- parsing ------------------------------------------------------------------------------ */

struct parsed {
    const struct command_def *cmd;
    const char *args[2];
    const char *values[OPT_COUNT]; /* as given, NULL = absent; flags "1", computed "" */
    long long numbers[OPT_COUNT];  /* V_NUMBER and V_DATE */
};

static const struct global_def *global_find(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE(global_table); i++)
        if (strlen(global_table[i].name) == len && strncmp(global_table[i].name, name, len) == 0)
            return &global_table[i];
    return NULL;
}

static int opt_find(const struct command_def *c, const char *name, size_t len)
{
    for (int i = 0; i < OPT_COUNT; i++)
        if ((c->opts & BIT(i)) && strlen(opt_table[i].name) == len &&
            strncmp(opt_table[i].name, name, len) == 0)
            return i;
    return -1;
}

/* Splits "--name=value" / "--name value". *i is at the option; moves past its value. */
static int take_value(int argc, char *const *argv, int *i, const char *eq, bool wants_value,
                      const char *opt, const char **ret, FILE *err)
{
    if (!wants_value) {
        if (eq)
            return usage_error(err, "--%s takes no value", opt);
        *ret = NULL;
        return 0;
    }
    if (eq) {
        *ret = eq + 1;
        return 0;
    }
    if (*i + 1 >= argc)
        return usage_error(err, "--%s needs a value", opt);
    *ret = argv[++*i];
    return 0;
}

static int global_apply(struct vdictl_request *r, const struct global_def *g, const char *value,
                        FILE *err)
{
    long long n;
    switch (g->id) {
    case G_URL: {
        struct http_target t;
        if (http_parse_url(value, &t) < 0)
            return usage_error(err, "--url: expected https://HOST[:PORT], not '%s'", value);
        r->url = value;
        return 0;
    }
    case G_CA_FILE:
        if (!*value)
            return usage_error(err, "--ca-file: empty file name");
        r->ca_file = value;
        return 0;
    case G_USER:
        if (!*value || strchr(value, ':') || !is_printable_text(value))
            return usage_error(err, "--user: not a valid user name");
        r->user = value;
        return 0;
    case G_PASSWORD_FILE:
        if (!*value)
            return usage_error(err, "--password-file: empty file name");
        r->password_file = value;
        return 0;
    case G_JSON:
        r->json = true;
        return 0;
    case G_TIMEOUT:
        if (parse_number(value, 1, VDICTL_MAX_TIMEOUT_S, &n) < 0)
            return usage_error(err, "--timeout: expected seconds (1-%d), not '%s'",
                               VDICTL_MAX_TIMEOUT_S, value);
        r->timeout_s = (int)n;
        return 0;
    case G_HELP:
        r->help = true;
        return 0;
    }
    return -EINVAL;
}

static int choices_error(FILE *err, const struct opt_def *o, const char *value)
{
    char list[128] = "";
    for (size_t i = 0; o->choices[i]; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "%s%s",
                 i == 0              ? ""
                 : o->choices[i + 1] ? ", "
                                     : " or ",
                 o->choices[i]);
    }
    return usage_error(err, "--%s: expected %s, not '%s'", o->name, list, value);
}

static int opt_apply(struct parsed *p, int id, const char *value, FILE *err)
{
    const struct opt_def *o = &opt_table[id];
    if (p->values[id])
        return usage_error(err, "--%s is given twice", o->name);
    int r;
    switch (o->type) {
    case V_PATH:
        if (value[0] != '/' || strlen(value) > TEXT_MAX || !is_printable_text(value))
            return usage_error(err, "--%s: expected an absolute path, not '%s'", o->name, value);
        break;
    case V_TEXT:
        if (strlen(value) > TEXT_MAX || !is_printable_text(value))
            return usage_error(err, "--%s: expected printable text of at most %d bytes", o->name,
                               TEXT_MAX);
        break;
    case V_ENUM: {
        bool ok = false;
        for (size_t i = 0; o->choices[i]; i++)
            ok |= streq(o->choices[i], value);
        if (!ok)
            return choices_error(err, o, value);
        break;
    }
    case V_NUMBER:
        r = parse_number(value, o->min, o->max, &p->numbers[id]);
        if (r < 0)
            return usage_error(err, "--%s: expected a whole number from %lld to %lld, not '%s'",
                               o->name, o->min, o->max, value);
        break;
    case V_NAME:
        if (!resource_name_is_valid(value))
            return usage_error(err,
                               "--%s: '%s' is not a valid name (1-32 of a-z 0-9 -, not "
                               "starting with -)",
                               o->name, value);
        break;
    case V_ACCOUNT:
        if (!username_is_valid(value))
            return usage_error(err,
                               "--%s: '%s' is not a valid account name (1-32 of A-Z a-z 0-9 . _ "
                               "-)",
                               o->name, value);
        break;
    case V_DATE:
        if (parse_date(value, id == OPT_TO, &p->numbers[id]) < 0)
            return usage_error(err, "--%s: expected YYYY-MM-DD or unix seconds, not '%s'", o->name,
                               value);
        break;
    case V_TIME:
        if (parse_time(value, id == OPT_UNTIL, &p->numbers[id]) < 0)
            return usage_error(err,
                               "--%s: expected unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z] "
                               "or a time ago such as 30m, 8h, 2d; not '%s'",
                               o->name, value);
        break;
    case V_DURATION:
        if (parse_duration(value, false, o->min, o->max, &p->numbers[id]) < 0)
            return usage_error(err,
                               "--%s: expected seconds, or a number with s, m, h or d, up to "
                               "%lld seconds; not '%s'",
                               o->name, o->max, value);
        break;
    case V_EVENT:
        if (!event_name_is_valid(value))
            return usage_error(err, "--%s: '%s' is not an event name (a-z 0-9 . _ -)", o->name,
                               value);
        break;
    case V_ADDRESS:
        if (!address_is_valid(value))
            return usage_error(err, "--%s: '%s' is not an address", o->name, value);
        break;
    case V_FLAG:
        value = "1";
        p->numbers[id] = 1;
        break;
    }
    p->values[id] = value;
    return 0;
}

static int arg_check(const struct command_def *c, unsigned i, const char *value, FILE *err)
{
    const char *what = c->args[i];
    long long n;
    switch (c->arg_types[i]) {
    case A_NAME:
        if (!resource_name_is_valid(value))
            return usage_error(err,
                               "%s '%s' is not a valid name (1-32 of a-z 0-9 -, not "
                               "starting with -)",
                               what, value);
        return 0;
    case A_DESKTOP:
        if (!desktop_name_is_valid(value))
            return usage_error(err, "%s '%s' is not a valid desktop name", what, value);
        return 0;
    case A_ACCOUNT:
        if (!username_is_valid(value))
            return usage_error(err, "%s '%s' is not a valid user name (1-32 of A-Z a-z 0-9 . _ -)",
                               what, value);
        return 0;
    case A_SESSION:
        if (parse_number(value, 1, INT64_MAX, &n) < 0)
            return usage_error(err, "%s: expected a session number, not '%s'", what, value);
        return 0;
    }
    return -EINVAL;
}

/* "list, show, add, set or delete" */
static void verbs_of(const char *noun, char *buf, size_t size)
{
    size_t n = 0, count = 0, total = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(command_table); i++)
        total += streq(command_table[i].noun, noun);
    for (size_t i = 0; i < ARRAY_SIZE(command_table) && n < size; i++) {
        if (!streq(command_table[i].noun, noun))
            continue;
        count++;
        n += (size_t)snprintf(buf + n, size - n, "%s%s",
                              count == 1       ? ""
                              : count == total ? " or "
                                               : ", ",
                              command_table[i].verb);
    }
}

/* The command's own words: arguments and options (and --json, --help). */
static int parse_command_words(int argc, char *const *argv, int i, struct vdictl_request *r,
                               struct parsed *p, FILE *err)
{
    const struct command_def *c = p->cmd;
    unsigned nargs = 0, want = command_nargs(c);
    bool only_args = false;
    char cname[64];
    command_name(c, cname, sizeof(cname));

    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!only_args && streq(a, "--")) {
            only_args = true;
            continue;
        }
        if (!only_args && (streq(a, "-h") || streq(a, "--help"))) {
            r->help = true;
            return 0;
        }
        if (!only_args && a[0] == '-' && a[1] != '\0') {
            if (a[1] != '-')
                return usage_error(err, "unknown option '%s'", a);
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            int id = opt_find(c, name, len);
            const char *value;
            if (id >= 0) {
                int k = take_value(argc, argv, &i, eq, opt_table[id].type != V_FLAG,
                                   opt_table[id].name, &value, err);
                if (k < 0)
                    return k;
                k = opt_apply(p, id, value, err);
                if (k < 0)
                    return k;
                continue;
            }
            if (len == 4 && strncmp(name, "json", 4) == 0) {
                if (eq)
                    return usage_error(err, "--json takes no value");
                r->json = true;
                continue;
            }
            return usage_error(err, "%s has no option '--%.*s'", cname, (int)len, name);
        }
        if (nargs >= want)
            return usage_error(err, "too many arguments for %s: '%s'", cname, a);
        int k = arg_check(c, nargs, a, err);
        if (k < 0)
            return k;
        p->args[nargs++] = a;
    }
    if (nargs < want)
        return usage_error(err, "%s: missing %s", cname, c->args[nargs]);
    for (int id = 0; id < OPT_COUNT; id++)
        if ((c->required & BIT(id)) && !p->values[id])
            return usage_error(err, "%s: --%s is required", cname, opt_table[id].name);
    if (c->one_of) {
        unsigned given = 0;
        for (int id = 0; id < OPT_COUNT; id++)
            given += (c->one_of & BIT(id)) && p->values[id];
        if (given != 1)
            return usage_error(err, "%s: give exactly one of --user and --group", cname);
    }
    return 0;
}

/* ---- building the request ------------------------------------------------------------------ */

static int json_add_string(struct json_object *o, const char *key, const char *value)
{
    struct json_object *v = json_object_new_string(value);
    if (!v || json_object_object_add(o, key, v) < 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    return 0;
}

static int json_add_int(struct json_object *o, const char *key, long long value)
{
    struct json_object *v = json_object_new_int64(value);
    if (!v || json_object_object_add(o, key, v) < 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    return 0;
}

static void json_putp(struct json_object **o)
{
    if (*o)
        json_object_put(*o);
}

static int json_take_text(struct json_object *o, char **ret)
{
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    *ret = s ? strdup(s) : NULL;
    return *ret ? 0 : -ENOMEM;
}

static int build_body(const struct parsed *p, struct vdictl_request *r, FILE *err)
{
    const struct command_def *c = p->cmd;
    _cleanup_(json_putp) struct json_object *o = json_object_new_object();
    if (!o)
        return -ENOMEM;
    int k = 0;

    switch (c->shape) {
    case SHAPE_CREATE:
    case SHAPE_PATCH: {
        if (c->shape == SHAPE_CREATE)
            k = json_add_string(o, "name", p->args[0]);
        unsigned given = 0;
        for (int id = 0; id < OPT_COUNT && k >= 0; id++) {
            if (!(c->opts & BIT(id)) || !p->values[id])
                continue;
            given++;
            if (opt_table[id].type == V_NUMBER || opt_table[id].type == V_DURATION)
                k = json_add_int(o, opt_table[id].field, p->numbers[id]);
            else
                k = json_add_string(o, opt_table[id].field, p->values[id]);
        }
        char cname[64];
        if (k >= 0 && c->shape == SHAPE_PATCH && given == 0)
            return usage_error(err, "%s: nothing to change (give at least one option)",
                               command_name(c, cname, sizeof(cname)));
        break;
    }
    case SHAPE_ASSIGN:
        k = json_add_string(o, "user", p->args[1]);
        break;
    case SHAPE_ENTITLEMENT: {
        bool user = p->values[OPT_USER] != NULL;
        k = json_add_string(o, "pool", p->args[0]);
        if (k >= 0)
            k = json_add_string(o, "kind", user ? "user" : "group");
        if (k >= 0)
            k = json_add_string(o, "name", user ? p->values[OPT_USER] : p->values[OPT_GROUP]);
        break;
    }
    case SHAPE_PLAIN:
    case SHAPE_USAGE:
        return 0;
    }
    if (k < 0)
        return k;
    return json_take_text(o, &r->body);
}

static void query_add(FILE *f, bool *first, const char *key, const char *value)
{
    fputc(*first ? '?' : '&', f);
    *first = false;
    fputs(key, f);
    fputc('=', f);
    append_encoded(f, value);
}

static int build_path(struct parsed *p, struct vdictl_request *r, FILE *err)
{
    const struct command_def *c = p->cmd;
    const char *subst[4] = {p->args[0], p->args[1], NULL, NULL};
    _cleanup_(freep) char *base = expand(c->path, subst, true);
    if (!base)
        return -ENOMEM;

    if (c->shape == SHAPE_USAGE) {
        /* Only --to: the 30 days before it. Neither: the server's default, up to now. */
        if (p->values[OPT_TO] && !p->values[OPT_FROM]) {
            long long from = p->numbers[OPT_TO] - (long long)USAGE_DEFAULT_DAYS * DAY_SECONDS;
            p->numbers[OPT_FROM] = from < 0 ? 0 : from;
            p->values[OPT_FROM] = "";
        }
        if (p->values[OPT_TO] && p->numbers[OPT_FROM] >= p->numbers[OPT_TO])
            return usage_error(err, "usage: --from must be before --to");
    }
    if (p->values[OPT_SINCE] && p->values[OPT_UNTIL] &&
        p->numbers[OPT_SINCE] >= p->numbers[OPT_UNTIL])
        return usage_error(err, "audit: --since must be before --until");

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    fputs(base, f);
    bool first = true;
    bool query = c->shape == SHAPE_PLAIN || c->shape == SHAPE_USAGE; /* else: the body */
    if (query)
        for (int id = 0; id < OPT_COUNT; id++) {
            if (!(c->opts & BIT(id)) || !p->values[id])
                continue;
            char num[32];
            const char *v = p->values[id];
            enum value_type t = opt_table[id].type;
            if (t == V_NUMBER || t == V_DATE || t == V_TIME || t == V_DURATION || t == V_FLAG) {
                snprintf(num, sizeof(num), "%lld", p->numbers[id]);
                v = num;
            }
            query_add(f, &first, opt_table[id].field, v);
        }
    bool bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(buf);
        return -ENOMEM;
    }
    r->path = buf;
    return 0;
}

static int build_request(struct parsed *p, struct vdictl_request *r, FILE *err)
{
    const struct command_def *c = p->cmd;
    r->method = c->method;
    r->view = c->view;
    for (int id = 0; id < OPT_COUNT; id++)
        if ((c->alt_opts & BIT(id)) && p->values[id])
            r->view = c->alt_view;
    int k = build_path(p, r, err);
    if (k < 0)
        return k;
    k = build_body(p, r, err);
    if (k < 0)
        return k;
    if (c->confirm) {
        const char *who = p->values[OPT_USER] ? p->values[OPT_USER] : p->values[OPT_GROUP];
        const char *subst[4] = {p->args[0], p->args[1], p->values[OPT_USER] ? "user" : "group",
                                who};
        r->confirm = expand(c->confirm, subst, false);
        if (!r->confirm)
            return -ENOMEM;
    }
    return 0;
}

int vdictl_parse(int argc, char *const *argv, struct vdictl_request *r, FILE *err)
{
    *r = (struct vdictl_request){0};
    struct parsed p = {0};
    int i = 1, k;

    /* Global options, up to COMMAND. */
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (streq(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;
        if (streq(a, "-h")) {
            r->help = true;
            return 0;
        }
        if (a[1] != '-')
            return usage_error(err, "unknown option '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        const struct global_def *g = global_find(name, eq ? (size_t)(eq - name) : strlen(name));
        if (!g)
            return usage_error(err, "unknown option '%s'", a);
        const char *value;
        k = take_value(argc, argv, &i, eq, g->metavar != NULL, g->name, &value, err);
        if (k < 0)
            return k;
        k = global_apply(r, g, value, err);
        if (k < 0)
            return k;
        if (r->help)
            return 0;
    }
    if (i >= argc)
        return usage_error(err, "missing COMMAND");

    const char *noun = argv[i++];
    bool noun_known = false;
    for (size_t c = 0; c < ARRAY_SIZE(command_table); c++) {
        if (!streq(command_table[c].noun, noun))
            continue;
        noun_known = true;
        if (!command_table[c].verb) {
            p.cmd = &command_table[c];
            break;
        }
        if (i >= argc)
            break;
        if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
            r->help = true;
            return 0;
        }
        if (streq(command_table[c].verb, argv[i])) {
            p.cmd = &command_table[c];
            i++;
            break;
        }
    }
    if (!noun_known)
        return usage_error(err, "unknown command '%s'", noun);
    if (!p.cmd) {
        char verbs[128];
        verbs_of(noun, verbs, sizeof(verbs));
        if (i >= argc)
            return usage_error(err, "%s: missing a command (%s)", noun, verbs);
        return usage_error(err, "%s: unknown command '%s' (expected %s)", noun, argv[i], verbs);
    }

    k = parse_command_words(argc, argv, i, r, &p, err);
    if (k < 0 || r->help)
        return k;
    k = build_request(&p, r, err);
    if (k < 0) {
        vdictl_request_done(r);
        return k;
    }
    return 0;
}

void vdictl_request_done(struct vdictl_request *r)
{
    if (!r)
        return;
    free(r->path);
    free(r->body);
    free(r->confirm);
    r->path = r->body = r->confirm = NULL;
    r->method = NULL;
}

/* ---- help ------------------------------------------------------------------------------- */

/* Prints words wrapped at WRAP_COLUMN, continuation lines indented by indent. */
struct wrap {
    FILE *f;
    size_t col, indent;
    bool line_start; /* nothing written since the indent */
};

static void wrap_word(struct wrap *w, const char *word)
{
    size_t n = strlen(word);
    if (!w->line_start && w->col + 1 + n > WRAP_COLUMN) {
        fprintf(w->f, "\n%*s", (int)w->indent, "");
        w->col = w->indent;
        w->line_start = true;
    }
    if (!w->line_start) {
        fputc(' ', w->f);
        w->col++;
    }
    fputs(word, w->f);
    w->col += n;
    w->line_start = false;
}

static void opt_synopsis(const struct opt_def *o, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "--%s", o->name);
    if (o->type == V_FLAG || n >= size)
        return;
    if (o->choices) {
        for (size_t i = 0; o->choices[i] && n < size; i++)
            n += (size_t)snprintf(buf + n, size - n, "%c%s", i ? '|' : ' ', o->choices[i]);
    } else {
        snprintf(buf + n, size - n, " %s", o->metavar);
    }
}

static void command_synopsis(FILE *f, const struct command_def *c)
{
    char head[64], word[100];
    snprintf(head, sizeof(head), "  %s%s%s", c->noun, c->verb ? " " : "", c->verb ? c->verb : "");
    fputs(head, f);
    struct wrap w = {.f = f, .col = strlen(head), .indent = strlen(head) + 1};
    for (unsigned i = 0; i < command_nargs(c); i++) {
        fputc(' ', f);
        w.col++;
        fputs(c->args[i], f);
        w.col += strlen(c->args[i]);
    }
    if (c->one_of) {
        char alt[256] = "(";
        size_t n = 1;
        for (int id = 0; id < OPT_COUNT && n < sizeof(alt); id++) {
            if (!(c->one_of & BIT(id)))
                continue;
            opt_synopsis(&opt_table[id], word, sizeof(word));
            n += (size_t)snprintf(alt + n, sizeof(alt) - n, "%s%s", n > 1 ? " | " : "", word);
        }
        if (n + 1 < sizeof(alt))
            memcpy(alt + n, ")", 2);
        wrap_word(&w, alt);
    }
    for (int id = 0; id < OPT_COUNT; id++) {
        if (!(c->opts & BIT(id)) || (c->one_of & BIT(id)))
            continue;
        char syn[96];
        opt_synopsis(&opt_table[id], syn, sizeof(syn));
        if (c->required & BIT(id))
            snprintf(word, sizeof(word), "%s", syn);
        else
            snprintf(word, sizeof(word), "[%s]", syn);
        wrap_word(&w, word);
    }
    fputc('\n', f);
}

/* Prints text word-wrapped; the cursor is at column indent, and so are continuations. */
static void text_wrapped(FILE *f, size_t indent, const char *text)
{
    struct wrap w = {.f = f, .col = indent, .indent = indent, .line_start = true};
    char word[256];
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, " ");
        if (n > 0 && n < sizeof(word)) {
            memcpy(word, p, n);
            word[n] = '\0';
            wrap_word(&w, word);
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    fputc('\n', f);
}

void vdictl_help(FILE *f)
{
    fputs("Usage: vdictl [OPTIONS] COMMAND [ARGUMENTS...]\n"
          "The command-line client of the vdi broker's admin API (HTTPS, JSON). The user\n"
          "must be a member of the broker's admin group.\n\nOptions:\n",
          f);
    for (size_t i = 0; i < ARRAY_SIZE(global_table); i++) {
        const struct global_def *g = &global_table[i];
        char left[40];
        snprintf(left, sizeof(left), "  --%s%s%s", g->name, g->metavar ? " " : "",
                 g->metavar ? g->metavar : "");
        fprintf(f, "%-24s", left);
        if (strlen(left) >= 24)
            fprintf(f, "\n%24s", "");
        text_wrapped(f, 24, g->doc);
    }

    fputs("\nCommands:\n", f);
    for (size_t i = 0; i < ARRAY_SIZE(command_table); i++) {
        command_synopsis(f, &command_table[i]);
        fprintf(f, "%6s", "");
        text_wrapped(f, 6, command_table[i].doc);
    }

    fputs("\nCommand options:\n", f);
    for (int id = 0; id < OPT_COUNT; id++) {
        char syn[96];
        opt_synopsis(&opt_table[id], syn, sizeof(syn));
        fprintf(f, "  %s\n%6s", syn, "");
        text_wrapped(f, 6, opt_table[id].doc);
    }

    fputs("\nDATE is YYYY-MM-DD (local time; as --to the whole day counts) or unix seconds.\n"
          "TIME is a DATE, YYYY-MM-DDTHH:MM[:SS] (local time; UTC with a final Z), or a\n"
          "time ago: a number with s, m, h, d or w (30m, 8h, 2d).\n"
          "DURATION is seconds, or a number with s, m, h or d (90s, 5m, 8h, 1d).\n"
          "Output: aligned tables (times in local time, usage in hours); changes print one\n"
          "line. --json prints the API's JSON instead (usage in seconds), for scripts;\n"
          "metrics prints the Prometheus text either way.\n"
          "\nEnvironment:\n"
          "  VDI_URL, VDI_CA_FILE, VDI_USER  defaults for --url, --ca-file, --user\n"
          "  VDI_PASSWORD                    the password, without --password-file\n"
          "\nExit codes:\n"
          "  0  success\n"
          "  1  other error: server error (5xx), unexpected answer, local failure\n"
          "  2  usage error: bad arguments (nothing was sent), or the server refused the\n"
          "     request as invalid (400)\n"
          "  3  cannot connect: unreachable, refused, timed out, TLS or certificate\n"
          "     failure, or the server does not speak HTTPS\n"
          "  4  authentication failed, the user is not an administrator, or too many\n"
          "     failed logins from this address or for this user (401, 403, 429)\n"
          "  5  not found (404)\n"
          "  6  conflict: already exists, in use, pool full (409)\n"
          "  7  capacity: the broker refused to start a desktop now, or is shutting down\n"
          "     or busy (503)\n"
          "\nSee vdictl(1).\n",
          f);
}

/* ---- exit codes -------------------------------------------------------------------------- */

int vdictl_exit_code_from_status(int status)
{
    if (status >= 200 && status <= 299)
        return VDICTL_EXIT_OK;
    switch (status) {
    case 400:
    case 413:
        return VDICTL_EXIT_USAGE;
    case 401:
    case 403:
    case 429:
        return VDICTL_EXIT_AUTH;
    case 404:
        return VDICTL_EXIT_NOT_FOUND;
    case 409:
        return VDICTL_EXIT_CONFLICT;
    case 503:
        return VDICTL_EXIT_CAPACITY;
    default:
        return VDICTL_EXIT_ERROR;
    }
}

int vdictl_exit_code_from_error(int error)
{
    switch (error) {
    case 0:
        return VDICTL_EXIT_OK;
    case -E2BIG:
    case -ENOMEM:
        return VDICTL_EXIT_ERROR;
    default:
        return VDICTL_EXIT_CONNECT; /* connect, TLS, CA file, not an HTTPS server */
    }
}

/* ---- output ------------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t utf8_length(const unsigned char *p)
{
    size_t len;
    if (p[0] < 0x80)
        return 1;
    else if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4;
    else
        return 0;
    for (size_t k = 1; k < len; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) || /* overlong, UTF-16 */
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return len;
}

/* Characters that would let a server play tricks on a terminal: C0, DEL, C1, and the
 * bidirectional overrides and isolates. */
static bool is_control(const unsigned char *p, size_t len)
{
    if (len == 1)
        return p[0] < 0x20 || p[0] == 0x7f;
    if (len == 2)
        return p[0] == 0xc2 && p[1] < 0xa0;
    if (len == 3 && p[0] == 0xe2)
        return (p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
               (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9);
    return false;
}

/* Copies s for a terminal: invalid UTF-8 and control characters become '?', and at most
 * max (>= 3) characters are kept, the last three "..." when cut. *ret_width (may be NULL)
 * gets the width in characters. Returns malloc'd text or NULL. */
static char *sanitize(const char *s, size_t max, size_t *ret_width)
{
    size_t n = strlen(s);
    char *out = malloc((n < max * 4 ? n : max * 4) + 4);
    if (!out)
        return NULL;
    size_t o = 0, width = 0, cut = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (width + 3 == max)
            cut = o;
        if (width == max) {
            o = cut;
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        size_t len = utf8_length(p);
        if (len == 0 || is_control(p, len)) {
            out[o++] = '?';
            p += len ? len : 1;
        } else {
            memcpy(out + o, p, len);
            o += len;
            p += len;
        }
        width++;
    }
    out[o] = '\0';
    if (ret_width)
        *ret_width = width;
    return out;
}

enum cell_kind {
    CELL_TEXT,       /* string; "" prints as "-" */
    CELL_INT,        /* integer */
    CELL_TIME,       /* unix seconds as local "YYYY-MM-DD HH:MM"; 0 prints as "-" */
    CELL_HOURS,      /* seconds as hours, 2 decimals */
    CELL_USAGE_USER, /* "" = free spare desktops */
    CELL_DURATION,   /* seconds as "45s", "5m", "2h30m", "3d4h" */
    CELL_TIMEOUT,    /* the same, 0 as "off" */
    CELL_BYTES,      /* bytes as "512 B", "1.5 KiB", "20.0 MiB" */
    CELL_ISO_TIME,   /* "2026-11-21T04:29:25.123Z" as local "YYYY-MM-DD HH:MM:SS" */
    CELL_ACTOR,      /* the "actor" field, else "user" */
    CELL_DETAILS,    /* every field but time, event, actor, user, client: key=value ... */
};

struct column {
    const char *header;
    const char *field;
    enum cell_kind kind;
};

static const struct column template_columns[] = {
    {"NAME", "name", CELL_TEXT},         {"OS", "os", CELL_TEXT},
    {"FIRMWARE", "firmware", CELL_TEXT}, {"DISK", "disk", CELL_TEXT},
    {"KERNEL", "kernel", CELL_TEXT},     {"INITRD", "initrd", CELL_TEXT},
    {"CMDLINE", "cmdline", CELL_TEXT},   {"CREATED", "created", CELL_TIME},
};
static const struct column pool_columns[] = {
    {"NAME", "name", CELL_TEXT},
    {"TEMPLATE", "template", CELL_TEXT},
    {"SIZE", "size", CELL_TEXT},
    {"VCPUS", "vcpus", CELL_INT},
    {"MEMORY_MIB", "memory_mib", CELL_INT},
    {"KIND", "kind", CELL_TEXT},
    {"MIN_SPARE", "min_spare", CELL_INT},
    {"MAX_DESKTOPS", "max_desktops", CELL_INT},
    {"LOGOFF", "logoff", CELL_TEXT},
    {"GRACE", "disconnect_grace_s", CELL_DURATION},
    {"IDLE_TIMEOUT", "idle_timeout_s", CELL_TIMEOUT},
    {"MAX_SESSION", "max_session_s", CELL_TIMEOUT},
    {"STOP_ACTION", "stop_action", CELL_TEXT},
    {"CREATED", "created", CELL_TIME},
};
static const struct column desktop_columns[] = {
    {"NAME", "name", CELL_TEXT},         {"POOL", "pool", CELL_TEXT},
    {"OWNER", "owner", CELL_TEXT},       {"STATE", "state", CELL_TEXT},
    {"POWER", "power", CELL_TEXT},       {"CONNECTED", "connected", CELL_INT},
    {"ASSIGNED", "assigned", CELL_TIME}, {"CREATED", "created", CELL_TIME},
};
static const struct column entitlement_columns[] = {
    {"POOL", "pool", CELL_TEXT},
    {"KIND", "kind", CELL_TEXT},
    {"NAME", "name", CELL_TEXT},
};
static const struct column session_columns[] = {
    {"ID", "id", CELL_INT},
    {"USER", "user", CELL_TEXT},
    {"POOL", "pool", CELL_TEXT},
    {"DESKTOP", "desktop", CELL_TEXT},
    {"STATE", "state", CELL_TEXT},
    {"CLIENT", "client", CELL_TEXT},
    {"STARTED", "started", CELL_TIME},
    {"IDLE", "idle_s", CELL_DURATION},
    {"SENT", "bytes_to_client", CELL_BYTES},
    {"SHADOWS", "shadows", CELL_INT},
};
static const struct column session_history_columns[] = {
    {"ID", "id", CELL_INT},          {"SESSION", "session_id", CELL_INT},
    {"KIND", "kind", CELL_TEXT},     {"USER", "user", CELL_TEXT},
    {"POOL", "pool", CELL_TEXT},     {"DESKTOP", "desktop", CELL_TEXT},
    {"CLIENT", "client", CELL_TEXT}, {"STARTED", "started", CELL_TIME},
    {"ENDED", "ended", CELL_TIME},
};
static const struct column usage_columns[] = {
    {"USER", "user", CELL_USAGE_USER},
    {"POOL", "pool", CELL_TEXT},
    {"VCPU_HOURS", "vcpu_seconds", CELL_HOURS},
    {"MEMORY_MIB_HOURS", "memory_mib_seconds", CELL_HOURS},
    {"CONNECTED_HOURS", "connected_seconds", CELL_HOURS},
};
static const struct column audit_columns[] = {
    {"TIME", "time", CELL_ISO_TIME},  {"EVENT", "event", CELL_TEXT},
    {"USER/ACTOR", NULL, CELL_ACTOR}, {"CLIENT", "client", CELL_TEXT},
    {"DETAILS", NULL, CELL_DETAILS},
};

struct view_def {
    const char *list_key; /* NULL: the answer is one object, shown as NAME value lines */
    const struct column *columns;
    size_t n_columns; /* in a list, only the first n_list_columns */
    size_t n_list_columns;
};

static const struct view_def view_table[] = {
    [VDICTL_VIEW_TEMPLATES] = {"templates", template_columns, ARRAY_SIZE(template_columns), 4},
    [VDICTL_VIEW_TEMPLATE] = {NULL, template_columns, ARRAY_SIZE(template_columns), 0},
    [VDICTL_VIEW_POOLS] = {"pools", pool_columns, ARRAY_SIZE(pool_columns), 13},
    [VDICTL_VIEW_POOL] = {NULL, pool_columns, ARRAY_SIZE(pool_columns), 0},
    [VDICTL_VIEW_DESKTOPS] = {"desktops", desktop_columns, ARRAY_SIZE(desktop_columns), 7},
    [VDICTL_VIEW_DESKTOP] = {NULL, desktop_columns, ARRAY_SIZE(desktop_columns), 0},
    [VDICTL_VIEW_ENTITLEMENTS] = {"entitlements", entitlement_columns,
                                  ARRAY_SIZE(entitlement_columns), ARRAY_SIZE(entitlement_columns)},
    [VDICTL_VIEW_SESSIONS] = {"sessions", session_columns, ARRAY_SIZE(session_columns),
                              ARRAY_SIZE(session_columns)},
    [VDICTL_VIEW_SESSION_HISTORY] = {"sessions", session_history_columns,
                                     ARRAY_SIZE(session_history_columns),
                                     ARRAY_SIZE(session_history_columns)},
    [VDICTL_VIEW_USAGE] = {"usage", usage_columns, ARRAY_SIZE(usage_columns),
                           ARRAY_SIZE(usage_columns)},
    [VDICTL_VIEW_AUDIT] = {"events", audit_columns, ARRAY_SIZE(audit_columns),
                           ARRAY_SIZE(audit_columns)},
};

static void format_time(long long t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t == 0 || !localtime_r(&tt, &tm) || tm.tm_year > 9999 - 1900 || tm.tm_year < -1900 ||
        strftime(buf, size, "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(buf, size, "-");
}

static void format_duration(long long secs, bool zero_off, char *buf, size_t size)
{
    static const struct {
        long long seconds;
        char unit;
    } units[] = {{DAY_SECONDS, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};

    if (secs < 0) {
        snprintf(buf, size, "-");
        return;
    }
    if (secs == 0) {
        snprintf(buf, size, zero_off ? "off" : "0s");
        return;
    }
    /* the two largest units: 3d4h, 2h30m, 5m12s */
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (secs < units[i].seconds)
            continue;
        long long big = secs / units[i].seconds, rest = secs % units[i].seconds;
        if (i + 1 < ARRAY_SIZE(units) && rest / units[i + 1].seconds > 0)
            snprintf(buf, size, "%lld%c%lld%c", big, units[i].unit, rest / units[i + 1].seconds,
                     units[i + 1].unit);
        else
            snprintf(buf, size, "%lld%c", big, units[i].unit);
        return;
    }
}

static void format_bytes(uint64_t n, char *buf, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (n < 1024) {
        snprintf(buf, size, "%llu B", (unsigned long long)n);
        return;
    }
    double v = (double)n;
    size_t i = 0;
    for (v /= 1024; v >= 1024 && i + 1 < ARRAY_SIZE(units); i++)
        v /= 1024;
    snprintf(buf, size, "%.1f %s", v, units[i]);
}

/* "2026-11-21T04:29:25.123Z" (fraction optional) in local time, or "-". */
static void format_iso_time(const char *s, char *buf, size_t size)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "-");
    if (!end)
        return;
    if (*end == '.')
        end += 1 + strspn(end + 1, "0123456789");
    if (strcmp(end, "Z") != 0)
        return;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || !localtime_r(&t, &tm) ||
        strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, size, "-");
}

static const char *string_field(struct json_object *row, const char *key)
{
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(row, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* The fields an audit table shows in columns of their own. */
static bool audit_column_field(const char *key)
{
    static const char *const shown[] = {"time", "event", "actor", "user", "client"};
    for (size_t i = 0; i < ARRAY_SIZE(shown); i++)
        if (streq(key, shown[i]))
            return true;
    return false;
}

/* "key=value key=value" of the fields no other column shows; malloc'd, or NULL. */
static char *audit_details(struct json_object *row)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    bool first = true;
    json_object_object_foreach(row, key, v)
    {
        if (audit_column_field(key))
            continue;
        fprintf(f, "%s%s=", first ? "" : " ", key);
        first = false;
        if (json_object_is_type(v, json_type_string))
            fputs(json_object_get_string(v), f);
        else
            fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), f);
    }
    bool bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The text of one cell, sanitized (malloc'd), and its width. */
static char *cell_text(struct json_object *row, const struct column *col, size_t max, size_t *width)
{
    struct json_object *v = NULL;
    char buf[64];
    snprintf(buf, sizeof(buf), "-");
    if (!json_object_is_type(row, json_type_object))
        return sanitize(buf, max, width);
    if (col->kind == CELL_ACTOR) {
        const char *s = string_field(row, "actor");
        if (!s || !*s)
            s = string_field(row, "user");
        return sanitize(s && *s ? s : "-", max, width);
    }
    if (col->kind == CELL_DETAILS) {
        _cleanup_(freep) char *d = audit_details(row);
        if (!d)
            return NULL;
        return sanitize(*d ? d : "-", max, width);
    }
    if (json_object_object_get_ex(row, col->field, &v) && v) {
        switch (col->kind) {
        case CELL_TEXT:
        case CELL_USAGE_USER:
            if (json_object_is_type(v, json_type_string)) {
                const char *s = json_object_get_string(v);
                if (s && *s)
                    return sanitize(s, max, width);
                if (s && col->kind == CELL_USAGE_USER)
                    snprintf(buf, sizeof(buf), "(spare)");
            }
            break;
        case CELL_INT:
            if (json_object_is_type(v, json_type_int))
                snprintf(buf, sizeof(buf), "%lld", (long long)json_object_get_int64(v));
            break;
        case CELL_TIME:
            if (json_object_is_type(v, json_type_int))
                format_time((long long)json_object_get_int64(v), buf, sizeof(buf));
            break;
        case CELL_HOURS:
            if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
                double d = json_object_get_double(v);
                if (isfinite(d) && fabs(d) < 1e15)
                    snprintf(buf, sizeof(buf), "%.2f", d / 3600.0);
            }
            break;
        case CELL_DURATION:
        case CELL_TIMEOUT:
            if (json_object_is_type(v, json_type_int))
                format_duration((long long)json_object_get_int64(v), col->kind == CELL_TIMEOUT, buf,
                                sizeof(buf));
            break;
        case CELL_BYTES:
            if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
                format_bytes(json_object_get_uint64(v), buf, sizeof(buf));
            break;
        case CELL_ISO_TIME:
            if (json_object_is_type(v, json_type_string))
                format_iso_time(json_object_get_string(v), buf, sizeof(buf));
            break;
        case CELL_ACTOR:
        case CELL_DETAILS:
            break;
        }
    }
    return sanitize(buf, max, width);
}

static bool right_aligned(enum cell_kind k)
{
    return k == CELL_INT || k == CELL_HOURS || k == CELL_DURATION || k == CELL_TIMEOUT ||
           k == CELL_BYTES;
}

struct cells {
    char **text;
    size_t *width;
    size_t n;
};

static void cells_free(struct cells *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->text[i]);
    free(c->text);
    free(c->width);
}

static int print_table(FILE *out, struct json_object *list, const struct view_def *v)
{
    size_t rows = json_object_array_length(list), cols = v->n_list_columns, n;
    if (!size_mul(rows + 1, cols, &n))
        return -ENOMEM;
    _cleanup_(cells_free) struct cells c = {
        .text = calloc(n, sizeof(char *)),
        .width = calloc(n, sizeof(size_t)),
    };
    size_t colw[16] = {0};
    if (!c.text || !c.width || cols > ARRAY_SIZE(colw))
        return -ENOMEM;
    for (size_t j = 0; j < cols; j++) {
        c.text[c.n] = strdup(v->columns[j].header);
        if (!c.text[c.n])
            return -ENOMEM;
        c.width[c.n++] = strlen(v->columns[j].header);
    }
    for (size_t i = 0; i < rows; i++) {
        struct json_object *row = json_object_array_get_idx(list, i);
        for (size_t j = 0; j < cols; j++) {
            c.text[c.n] = cell_text(row, &v->columns[j], CELL_MAX, &c.width[c.n]);
            if (!c.text[c.n])
                return -ENOMEM;
            c.n++;
        }
    }
    for (size_t k = 0; k < c.n; k++)
        if (c.width[k] > colw[k % cols])
            colw[k % cols] = c.width[k];
    for (size_t i = 0; i <= rows; i++) {
        for (size_t j = 0; j < cols; j++) {
            size_t k = i * cols + j, pad = colw[j] - c.width[k];
            bool last = j + 1 == cols;
            if (j > 0)
                fputs("  ", out);
            if (right_aligned(v->columns[j].kind))
                fprintf(out, "%*s%s", (int)pad, "", c.text[k]);
            else
                fprintf(out, "%s%*s", c.text[k], last ? 0 : (int)pad, "");
        }
        fputc('\n', out);
    }
    return 0;
}

static int print_object(FILE *out, struct json_object *o, const struct view_def *v)
{
    size_t keyw = 0;
    for (size_t j = 0; j < v->n_columns; j++)
        if (strlen(v->columns[j].header) > keyw)
            keyw = strlen(v->columns[j].header);
    for (size_t j = 0; j < v->n_columns; j++) {
        _cleanup_(freep) char *s = cell_text(o, &v->columns[j], FIELD_MAX, NULL);
        if (!s)
            return -ENOMEM;
        fprintf(out, "%-*s  %s\n", (int)keyw, v->columns[j].header, s);
    }
    return 0;
}

/* Strict parse of a whole body; NULL when it is not JSON. */
static struct json_object *parse_json(const struct http_response *resp)
{
    if (!resp->body || resp->body_len == 0 || resp->body_len > INT32_MAX)
        return NULL;
    struct json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *o = json_tokener_parse_ex(tok, resp->body, (int)resp->body_len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success;
    if (ok) {
        for (size_t i = json_tokener_get_parse_end(tok); i < resp->body_len; i++)
            if (!strchr(" \t\r\n", resp->body[i]))
                ok = false;
    }
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static const char *status_sentence(int status)
{
    switch (status) {
    case 400:
        return "the server refused the request as invalid";
    case 401:
        return "authentication failed";
    case 403:
        return "not an administrator";
    case 404:
        return "not found";
    case 409:
        return "conflict";
    case 413:
        return "the request is too large";
    case 429:
        return "too many failed logins; try again later";
    case 503:
        return "the broker is at capacity";
    default:
        return status >= 500 ? "internal server error" : "unexpected answer from the server";
    }
}

static int print_error(const struct http_response *resp, FILE *err)
{
    _cleanup_(json_putp) struct json_object *o = parse_json(resp);
    struct json_object *e = NULL;
    if (o && json_object_is_type(o, json_type_object) &&
        json_object_object_get_ex(o, "error", &e) && json_object_is_type(e, json_type_string) &&
        json_object_get_string_len(e) > 0) {
        _cleanup_(freep) char *s = sanitize(json_object_get_string(e), FIELD_MAX, NULL);
        if (!s)
            return VDICTL_EXIT_ERROR;
        fprintf(err, "vdictl: %s\n", s);
    } else {
        fprintf(err, "vdictl: %s (HTTP %d)\n", status_sentence(resp->status), resp->status);
    }
    return vdictl_exit_code_from_status(resp->status);
}

static int unexpected(FILE *err, const char *why)
{
    fprintf(err, "vdictl: unexpected answer from the server: %s\n", why);
    return VDICTL_EXIT_ERROR;
}

/* session shadow: the session, and how an admin watches it. */
static int print_shadow(FILE *out, struct json_object *o, const char *admin)
{
    static const struct column id = {"ID", "id", CELL_INT}, user = {"USER", "user", CELL_TEXT},
                               desktop = {"DESKTOP", "desktop", CELL_TEXT},
                               state = {"STATE", "state", CELL_TEXT};
    _cleanup_(freep) char *i = cell_text(o, &id, CELL_MAX, NULL);
    _cleanup_(freep) char *u = cell_text(o, &user, CELL_MAX, NULL);
    _cleanup_(freep) char *d = cell_text(o, &desktop, CELL_MAX, NULL);
    _cleanup_(freep) char *st = cell_text(o, &state, CELL_MAX, NULL);
    _cleanup_(freep) char *me = sanitize(admin ? admin : "<your-admin-name>", CELL_MAX, NULL);
    if (!i || !u || !d || !st || !me)
        return -ENOMEM;
    fprintf(out,
            "Session %s: %s on %s (%s)\n"
            "Connect a VNC client to the broker's VNC port and log in as %s@#%s with your own\n"
            "password (view only; the user is told unless shadow_policy = silent).\n",
            i, u, d, st, me, i);
    return 0;
}

static int print_usage_period(FILE *out, struct json_object *o)
{
    static const struct column from = {"FROM", "from", CELL_TIME}, to = {"TO", "to", CELL_TIME};
    _cleanup_(freep) char *a = cell_text(o, &from, CELL_MAX, NULL);
    _cleanup_(freep) char *b = cell_text(o, &to, CELL_MAX, NULL);
    if (!a || !b)
        return -ENOMEM;
    fprintf(out, "Usage from %s to %s\n", a, b);
    return 0;
}

int vdictl_print_response(const struct vdictl_request *r, const struct http_response *resp,
                          FILE *out, FILE *err)
{
    if (resp->status < 200 || resp->status > 299)
        return print_error(resp, err);

    if (r->view == VDICTL_VIEW_METRICS) {
        if (resp->body_len > 0)
            fwrite(resp->body, 1, resp->body_len, out);
        return VDICTL_EXIT_OK;
    }
    if (r->view == VDICTL_VIEW_CONFIRM && !r->json) {
        _cleanup_(freep) char *s = sanitize(r->confirm ? r->confirm : "done", FIELD_MAX, NULL);
        if (!s)
            return VDICTL_EXIT_ERROR;
        fprintf(out, "%s\n", s);
        return VDICTL_EXIT_OK;
    }
    if (r->view == VDICTL_VIEW_CONFIRM && resp->body_len == 0)
        return VDICTL_EXIT_OK; /* --json and 204: nothing to show */

    _cleanup_(json_putp) struct json_object *o = parse_json(resp);
    if (!o)
        return unexpected(err, "not JSON");
    if (r->json) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
            return VDICTL_EXIT_ERROR;
        fprintf(out, "%s\n", s);
        return VDICTL_EXIT_OK;
    }
    if (!json_object_is_type(o, json_type_object))
        return unexpected(err, "not a JSON object");

    const struct view_def *v = &view_table[r->view];
    int k;
    if (r->view == VDICTL_VIEW_SHADOW) {
        k = print_shadow(out, o, r->user);
    } else if (v->list_key) {
        struct json_object *list = NULL;
        if (!json_object_object_get_ex(o, v->list_key, &list) ||
            !json_object_is_type(list, json_type_array))
            return unexpected(err, "no list");
        if (r->view == VDICTL_VIEW_USAGE) {
            k = print_usage_period(out, o);
            if (k < 0)
                return VDICTL_EXIT_ERROR;
        }
        k = print_table(out, list, v);
    } else {
        k = print_object(out, o, v);
    }
    if (k < 0) {
        fprintf(err, "vdictl: out of memory\n");
        return VDICTL_EXIT_ERROR;
    }
    return VDICTL_EXIT_OK;
}

/* ---- credentials ----------------------------------------------------------------------- */

/* The first line of path. Returns 0, -E2BIG, -ENODATA (empty), -errno. */
static int password_from_file(const char *path, FILE *err, char **ret)
{
    unsigned exposed;
    int r = secret_file_read_line(path, VDICTL_MAX_PASSWORD, &exposed, ret);
    if (exposed)
        fprintf(err, "vdictl: warning: %s is accessible by other users (mode %03o)\n", path,
                exposed);
    return r;
}

static int get_password(const char *file, const char *user, FILE *err, char **ret)
{
    int r;
    if (file) {
        r = password_from_file(file, err, ret);
        if (r < 0)
            fprintf(err, "vdictl: cannot read the password from %s: %s\n", file,
                    r == -E2BIG     ? "the first line is too long"
                    : r == -ENODATA ? "the first line is empty"
                                    : strerror(-r));
        return r;
    }
    char *env = getenv("VDI_PASSWORD");
    if (env) {
        size_t len = strlen(env);
        *ret = strdup(env);
        /* No copy left in our environment (children, /proc/PID/environ). */
        explicit_bzero(env, len);
        unsetenv("VDI_PASSWORD");
        return *ret ? 0 : -ENOMEM;
    }
    _cleanup_(freep) char *clean = sanitize(user, 64, NULL);
    char prompt[128];
    snprintf(prompt, sizeof(prompt), "Password for %s: ", clean ? clean : "");
    r = tty_read_line(prompt, false, VDICTL_MAX_PASSWORD, ret);
    if (r == -ENXIO)
        fprintf(err, "vdictl: no password: give --password-file, set VDI_PASSWORD, or run on a "
                     "terminal\n");
    else if (r < 0)
        fprintf(err, "vdictl: cannot read the password: %s\n",
                r == -E2BIG   ? "too long"
                : r == -EPIPE ? "end of input"
                              : strerror(-r));
    return r;
}

/* ---- the program --------------------------------------------------------------------------- */

static const char *env_or(const char *given, const char *name, const char *fallback)
{
    if (given)
        return given;
    const char *e = getenv(name);
    return e && *e ? e : fallback;
}

int vdictl_run(int argc, char **argv, FILE *out, FILE *err)
{
    _cleanup_(vdictl_request_done) struct vdictl_request rq = {0};
    int r = vdictl_parse(argc, argv, &rq, err);
    if (r == -ENOMEM) {
        fprintf(err, "vdictl: out of memory\n");
        return VDICTL_EXIT_ERROR;
    }
    if (r < 0)
        return VDICTL_EXIT_USAGE;
    if (rq.help) {
        vdictl_help(out);
        if (fflush(out) == 0)
            return VDICTL_EXIT_OK;
        fprintf(err, "vdictl: cannot write the output: %s\n", strerror(errno));
        return VDICTL_EXIT_ERROR;
    }

    const char *url = env_or(rq.url, "VDI_URL", VDICTL_DEFAULT_URL);
    struct http_target target = {0};
    if (http_parse_url(url, &target) < 0) {
        usage_error(err, "not a valid URL (expected https://HOST[:PORT]): '%s'", url);
        return VDICTL_EXIT_USAGE;
    }
    target.ca_file = env_or(rq.ca_file, "VDI_CA_FILE", VDICTL_DEFAULT_CA_FILE);

    const char *user = env_or(rq.user, "VDI_USER", NULL);
    if (!user) {
        struct passwd *pw = getpwuid(getuid());
        user = pw && pw->pw_name && *pw->pw_name ? pw->pw_name : NULL;
    }
    if (!user || strchr(user, ':') || !is_printable_text(user)) {
        usage_error(err, "no valid user name: give --user NAME or set VDI_USER");
        return VDICTL_EXIT_USAGE;
    }
    _cleanup_(freep) char *user_copy = strdup(user); /* getpwuid's buffer is not ours */
    if (!user_copy)
        return VDICTL_EXIT_ERROR;
    rq.user = user_copy;

    _cleanup_(secret_freep) char *password = NULL;
    r = get_password(rq.password_file, user_copy, err, &password);
    if (r == -ENOMEM)
        return VDICTL_EXIT_ERROR;
    if (r < 0)
        return VDICTL_EXIT_USAGE;

    struct http_request req = {
        .method = rq.method,
        .path = rq.path,
        .user = user_copy,
        .password = password,
        .body = rq.body,
    };
    int timeout = rq.timeout_s > 0 ? rq.timeout_s : VDICTL_DEFAULT_TIMEOUT_S;
    struct http_response resp = {0};
    char msg[512];
    r = http_request(&target, &req, now_ms() + (uint64_t)timeout * 1000, &resp, msg, sizeof(msg));
    secret_free(TAKE_PTR(password));
    if (r < 0) {
        _cleanup_(freep) char *s = sanitize(msg[0] ? msg : strerror(-r), FIELD_MAX, NULL);
        fprintf(err, "vdictl: %s\n", s ? s : "request failed");
        return vdictl_exit_code_from_error(r);
    }
    int code = vdictl_print_response(&rq, &resp, out, err);
    http_response_done(&resp);
    if (fflush(out) != 0) {
        fprintf(err, "vdictl: cannot write the output: %s\n", strerror(errno));
        return VDICTL_EXIT_ERROR;
    }
    return code;
}
