#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-state.h"
#include "config.h"
#include "tcp.h"
#include "util.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* The settings as the config parser fills them: strings are "" when unset, the log level
 * is text. client_options_parse() turns them into struct client_options. */
struct settings {
    char *broker;
    int port;
    char *user;
    char *pool;
    char *password_file;
    char *ca_file;
    char *fingerprint;
    char *known_brokers;
    bool fullscreen;
    bool kiosk;
    char *font;
    int reconnect_max_s;
    int quality;
    int compress;
    char *log_level;
    /* command line only */
    char *screenshot;
    int screenshot_delay_ms;
    bool headless;
};

enum row_kind {
    ROW_SETTING,    /* a config file key and (unless positional) a command-line option */
    ROW_POSITIONAL, /* a config file key given on the command line as an argument */
    ROW_CLI,        /* a command-line option only */
    ROW_ACTION,     /* a command-line option that is no setting (--help, --config, ...) */
};

enum action { ACTION_NONE, ACTION_CONFIG, ACTION_PRINT_CONFIG, ACTION_HELP, ACTION_VERSION };

/* One row per setting or option. c.name is the config key; the long option is the same
 * with '-' for '_'. */
struct client_option {
    struct config_option c;
    enum row_kind kind;
    char short_name;     /* 0: none */
    const char *metavar; /* NULL: a flag (a boolean set to true, or an action) */
    enum action action;
};

static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};

#define STRING(field, doc) CONFIG_STRING, offsetof(struct settings, field), NULL, 0, 0, NULL, doc
#define BOOL(field, doc) CONFIG_BOOL, offsetof(struct settings, field), "false", 0, 0, NULL, doc
#define INT(field, def, lo, hi, doc)                                                               \
    CONFIG_INT, offsetof(struct settings, field), def, lo, hi, NULL, doc
#define ROW(kind_, short_, metavar_, key, ...)                                                     \
    {                                                                                              \
        .c = {key, __VA_ARGS__}, .kind = kind_, .short_name = short_, .metavar = metavar_          \
    }
#define ACTION(short_, metavar_, name_, action_, doc_)                                             \
    {                                                                                              \
        .c = {.name = name_, .doc = doc_}, .kind = ROW_ACTION, .short_name = short_,               \
        .metavar = metavar_, .action = action_                                                     \
    }

static const struct client_option option_table[] = {
    ROW(ROW_POSITIONAL, 0, "HOST[:PORT]", "broker",
        STRING(broker, "The broker: HOST, HOST:PORT or [IPv6]:PORT (empty: typed on the login "
                       "screen)")),
    ROW(ROW_SETTING, 'p', "PORT", "port",
        INT(port, STRINGIFY(TCP_DEFAULT_PORT), 1, 65535,
            "The broker's TCP port, when the broker names none")),
    ROW(ROW_SETTING, 'u', "NAME", "user",
        STRING(user, "User name (empty: typed on the login screen)")),
    ROW(ROW_SETTING, 0, "NAME", "pool",
        STRING(pool, "Desktop pool to open (empty: the one chosen last time, else a choice "
                     "when there are several)")),
    ROW(ROW_SETTING, 0, "FILE", "password_file",
        STRING(password_file, "Log in with the password on the first line of this file (else "
                              "$VDI_PASSWORD, else typed)")),
    ROW(ROW_SETTING, 0, "FILE", "ca_file",
        STRING(ca_file, "Trust the broker when its certificate chains to a CA in this PEM "
                        "file and matches its name")),
    ROW(ROW_SETTING, 0, "SHA256", "fingerprint",
        STRING(fingerprint,
               "Trust the broker whose certificate has this SHA-256 fingerprint (AB:CD:...)")),
    ROW(ROW_SETTING, 0, "FILE", "known_brokers",
        STRING(known_brokers,
               "Trust on first use: the brokers accepted (empty: ~/.config/vdi/known_brokers)")),
    ROW(ROW_SETTING, 'f', NULL, "fullscreen",
        BOOL(fullscreen, "Start in full screen (Ctrl+Alt+Enter switches)")),
    ROW(ROW_SETTING, 0, NULL, "kiosk",
        BOOL(kiosk, "Kiosk mode: full screen, no way to quit, back to the login screen after "
                    "each session")),
    ROW(ROW_SETTING, 0, "FILE", "font",
        STRING(font, "TrueType font for the login screens (empty: DejaVu Sans)")),
    ROW(ROW_SETTING, 0, "SECONDS", "reconnect_max_s",
        INT(reconnect_max_s, STRINGIFY(CLIENT_RECONNECT_MAX_S_DEFAULT), 1, 3600,
            "Longest wait in seconds between attempts to reconnect after a lost connection")),
    ROW(ROW_SETTING, 0, "0-9", "quality",
        INT(quality, "7", 0, 9, "JPEG quality for Tight encoding")),
    ROW(ROW_SETTING, 0, "0-9", "compress",
        INT(compress, "2", 0, 9, "Compression level for Tight encoding")),
    ROW(ROW_SETTING, 0, "LEVEL", "log_level", CONFIG_ENUM, offsetof(struct settings, log_level),
        "info", 0, 0, log_levels, "How much to log on stderr"),
    ROW(ROW_CLI, 0, "FILE", "screenshot",
        STRING(screenshot, "Write the first complete frame to FILE (PPM) and exit 0 (for tests)")),
    ROW(ROW_CLI, 0, "MS", "screenshot_delay",
        INT(screenshot_delay_ms, "0", 0, 3600 * 1000,
            "With --screenshot: take it no earlier than MS milliseconds after the first complete "
            "frame")),
    ROW(ROW_CLI, 0, NULL, "headless",
        BOOL(headless, "Open no window (with --screenshot, for tests; needs a broker and a user)")),
    ACTION(0, "FILE", "config", ACTION_CONFIG,
           "Read only FILE instead of " CLIENT_SYSTEM_CONFIG " and ~/.config/vdi/client.conf"),
    ACTION(0, NULL, "print_config", ACTION_PRINT_CONFIG,
           "Print a documented sample config file and exit"),
    ACTION('h', NULL, "help", ACTION_HELP, "Show this help and exit"),
    ACTION('V', NULL, "version", ACTION_VERSION, "Show the version and exit"),
};

#define N_OPTIONS ARRAY_SIZE(option_table)

/* The long option of a row: the key with '-' for '_'. */
struct long_name {
    char s[32];
};

static struct long_name long_name(const struct client_option *row)
{
    struct long_name n;
    snprintf(n.s, sizeof(n.s), "%s", row->c.name);
    for (char *p = n.s; *p; p++)
        if (*p == '_')
            *p = '-';
    return n;
}

static bool row_is_key(const struct client_option *row)
{
    return row->kind == ROW_SETTING || row->kind == ROW_POSITIONAL;
}

/* The config tables: every setting (defaults, command line), and the file keys only. */
struct tables {
    struct config_option all[N_OPTIONS];
    size_t n_all;
    struct config_option keys[N_OPTIONS];
    size_t n_keys;
};

static void tables_init(struct tables *t)
{
    t->n_all = t->n_keys = 0;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (option_table[i].kind != ROW_ACTION)
            t->all[t->n_all++] = option_table[i].c;
        if (row_is_key(&option_table[i]))
            t->keys[t->n_keys++] = option_table[i].c;
    }
}

void client_options_print_config(FILE *f)
{
    struct tables t;
    tables_init(&t);
    fprintf(f,
            "# vdi-client settings; this sample is the output of vdi-client --print-config.\n"
            "# Read from %s, then from ~/.config/vdi/client.conf (or\n"
            "# $XDG_CONFIG_HOME/vdi/client.conf); the command line overrides both.\n"
            "# One \"key = value\" per line; every key is shown at its default, commented out.\n"
            "# An empty value means \"not set\".\n\n",
            CLIENT_SYSTEM_CONFIG);
    config_print(t.keys, t.n_keys, f);
}

/* Writes text from column col on, breaking lines at blanks before column 80 and going on
 * at column indent. Returns the column after the text. */
static size_t print_wrapped(FILE *f, const char *text, size_t col, size_t indent)
{
    while (*text) {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + word > 80) {
            fprintf(f, "\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fwrite(text, 1, word, f);
        col += word;
        text += word;
        text += strspn(text, " ");
    }
    return col;
}

void client_options_help(FILE *f)
{
    enum { DOC_COLUMN = 29 };
    fprintf(f, "Usage: vdi-client [OPTIONS] [HOST[:PORT]]\n"
               "Connects to a vdi broker (RFB 3.8, VeNCrypt X509Plain over TLS) and shows the\n"
               "remote desktop. HOST[:PORT] or [IPv6]:PORT names the broker (or the config key\n"
               "broker). Without a broker or a user the login screen asks for them.\n"
               "Trust: --ca-file, --fingerprint, or (neither) trust on first use: the first\n"
               "time, the login screen shows the broker's fingerprint to accept.\n\nOptions:\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct client_option *row = &option_table[i];
        if (row->kind == ROW_POSITIONAL)
            continue;
        char left[64], doc[512];
        const char *sep = row->metavar ? " " : "", *metavar = row->metavar ? row->metavar : "";
        if (row->short_name)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", row->short_name, long_name(row).s, sep,
                     metavar);
        else
            snprintf(left, sizeof(left), "    --%s%s%s", long_name(row).s, sep, metavar);
        size_t len = (size_t)snprintf(doc, sizeof(doc), "%s", row->c.doc);
        if (row->kind != ROW_ACTION && row->c.type == CONFIG_INT)
            snprintf(doc + len, sizeof(doc) - len, " (default %s)", row->c.default_value);
        else if (row->kind != ROW_ACTION && row->c.type == CONFIG_ENUM)
            for (const char *const *c = row->c.choices; *c && len < sizeof(doc); c++)
                len += (size_t)snprintf(doc + len, sizeof(doc) - len, "%s %s%s",
                                        c == row->c.choices ? ":" : ",", *c,
                                        streq(*c, row->c.default_value) ? " (default)" : "");
        if (strlen(left) <= DOC_COLUMN - 3)
            fprintf(f, "  %-*s ", DOC_COLUMN - 3, left);
        else
            fprintf(f, "  %s\n%*s", left, DOC_COLUMN, "");
        print_wrapped(f, doc, DOC_COLUMN, DOC_COLUMN);
        fputc('\n', f);
    }
    fprintf(f,
            "\nConfig files: %s, then ~/.config/vdi/client.conf\n"
            "($XDG_CONFIG_HOME/vdi/client.conf), then the command line. Keys (the long\n"
            "options with '_' for '-'; --print-config shows a documented sample):\n  ",
            CLIENT_SYSTEM_CONFIG);
    size_t col = 2;
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (row_is_key(&option_table[i]))
            col = print_wrapped(f, option_table[i].c.name, col, 2);
    fprintf(f, "\n\nEnvironment:\n"
               "  VDI_PASSWORD      the password, when no --password-file is given\n"
               "\nKeys vdi-client keeps for itself:\n"
               "  Ctrl+Alt+Enter    full screen on/off (not in kiosk mode)\n"
               "\nExit codes:\n"
               "  0  the user quit (window closed, SIGINT/SIGTERM), or --screenshot written\n"
               "  1  internal error (out of memory, no display, ...)\n"
               "  2  usage error (also a malformed config file)\n"
               "  3  cannot connect: broker unreachable, refused, or not a vdi broker\n"
               "  4  server certificate not trusted (its SHA-256 fingerprint is printed)\n"
               "  5  authentication failed (the server's reason is printed)\n"
               "  6  connection lost\n"
               "  7  protocol error\n"
               "With a window, errors are shown on the login screen and vdi-client exits 0 when\n"
               "the user quits; in kiosk mode it only exits on SIGTERM or SIGINT.\n");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vdi-client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'vdi-client --help'.\n", stderr);
    va_end(ap);
    return -EINVAL;
}

static const struct client_option *row_of_key(const char *key)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (streq(option_table[i].c.name, key))
            return &option_table[i];
    return NULL;
}

/* Who set the broker and the port: 0 defaults, then one per file, the command line last.
 * A port in the broker's text and a port key set at the same level must agree; across
 * levels the later one wins. */
enum { LEVEL_DEFAULT = 0, LEVEL_COMMAND_LINE = 3 };

struct merge {
    struct settings s;
    int broker_level, port_level;
};

/* Checks what config.h cannot: user and pool names and the broker's form. where names
 * the source for messages ("FILE" or NULL for the command line). */
static int settings_check(const struct settings *s, const char *where)
{
    char prefix[300];
    if (where)
        snprintf(prefix, sizeof(prefix), "%s: ", where);
    else
        prefix[0] = '\0';
    if (s->user[0] && !username_is_valid(s->user))
        return usage_error("%s%s: not a valid user name (1-32 of A-Z a-z 0-9 . _ -)", prefix,
                           where ? "user" : "--user");
    if (s->pool[0] && !pool_name_is_valid(s->pool))
        return usage_error("%s%s: not a valid pool name (1-32 of a-z 0-9 -)", prefix,
                           where ? "pool" : "--pool");
    if (s->broker[0]) {
        _cleanup_(freep) char *host = NULL;
        int port = -1;
        int r = tcp_parse_target(s->broker, &host, &port);
        if (r == -ENOMEM)
            return r;
        if (r < 0)
            return usage_error("%s%snot a valid HOST[:PORT]: %s", prefix, where ? "broker: " : "",
                               s->broker);
    }
    return 0;
}

/* Parses one config file over m at the given level. missing_ok: the default files. */
static int merge_file(struct merge *m, const struct tables *t, const char *path, int level,
                      bool missing_ok)
{
    struct config_error err = {""};
    /* Tell whether this file sets the broker or the port: unset them first (0 is no port). */
    _cleanup_(freep) char *broker = TAKE_PTR(m->s.broker);
    int port = m->s.port;
    m->s.port = 0;
    int r = config_parse_file(t->keys, t->n_keys, &m->s, path, &err);
    if (m->s.broker) {
        m->broker_level = level;
    } else {
        m->s.broker = TAKE_PTR(broker);
    }
    if (m->s.port)
        m->port_level = level;
    else
        m->s.port = port;
    if (r == -ENOENT && missing_ok)
        return 0;
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        return usage_error("%s", err.message[0] ? err.message : strerror(-r));
    return settings_check(&m->s, path);
}

/* Sets a command-line value through the config table (same checks as in a file). */
static int merge_argument(struct merge *m, const struct tables *t, const struct client_option *row,
                          const char *value)
{
    struct config_error err = {""};
    int r = config_set(t->all, t->n_all, &m->s, row->c.name, value, &err);
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        /* "command line: key must be ..." -> "--key: key must be ..." */
        const char *why = strchr(err.message, ':');
        return usage_error("--%s: %s", long_name(row).s, why ? why + 2 : err.message);
    }
    if (streq(row->c.name, "broker"))
        m->broker_level = LEVEL_COMMAND_LINE;
    if (streq(row->c.name, "port"))
        m->port_level = LEVEL_COMMAND_LINE;
    return 0;
}

static char *take_string(char **s)
{
    if (!*s || !**s)
        return NULL;
    return TAKE_PTR(*s);
}

/* The merged settings -> o. */
static int settings_finish(struct merge *m, struct client_options *o)
{
    struct settings *s = &m->s;
    int r;

    if (s->broker[0]) {
        int port = -1;
        r = tcp_parse_target(s->broker, &o->host, &port);
        if (r < 0)
            return r == -ENOMEM ? r : usage_error("not a valid HOST[:PORT]: %s", s->broker);
        if (port < 0 || m->port_level > m->broker_level)
            o->port = s->port;
        else if (m->port_level == m->broker_level && port != s->port)
            return usage_error("the port is given twice (%s and %s %d)", s->broker,
                               m->port_level == LEVEL_COMMAND_LINE ? "--port" : "port", s->port);
        else
            o->port = port;
    } else {
        o->port = s->port;
    }
    if (s->kiosk && s->headless)
        return usage_error("--kiosk and --headless exclude each other");
    if (s->headless && !s->screenshot[0])
        return usage_error("--headless needs --screenshot");
    if (s->headless && (!s->broker[0] || !s->user[0]))
        return usage_error("--headless needs a broker (HOST[:PORT]) and a user (--user)");
    if (s->screenshot_delay_ms && !s->screenshot[0])
        return usage_error("--screenshot-delay needs --screenshot");
    if (log_level_from_string(s->log_level, &o->log_level) < 0)
        return usage_error("log_level: %s", s->log_level); /* the table's choices */

    o->broker = take_string(&s->broker);
    o->user = take_string(&s->user);
    o->pool = take_string(&s->pool);
    o->password_file = take_string(&s->password_file);
    o->ca_file = take_string(&s->ca_file);
    o->fingerprint = take_string(&s->fingerprint);
    o->known_brokers = take_string(&s->known_brokers);
    o->font = take_string(&s->font);
    o->screenshot = take_string(&s->screenshot);
    o->kiosk = s->kiosk;
    o->fullscreen = s->fullscreen || s->kiosk;
    o->headless = s->headless;
    o->reconnect_max_s = s->reconnect_max_s;
    o->quality = s->quality;
    o->compress = s->compress;
    o->screenshot_delay_ms = s->screenshot_delay_ms;
    return 0;
}

/* A command-line setting, applied after the files. */
struct argument {
    const struct client_option *row;
    const char *value;
};

static int parse_with(int argc, char **argv, struct client_options *o, struct merge *m,
                      const struct tables *t, struct argument *args)
{
    struct option longopts[N_OPTIONS + 1];
    struct long_name names[N_OPTIONS];
    char shortopts[3 * N_OPTIONS + 3] = "+:";
    size_t n_long = 0, n_short = 2, n_args = 0;
    const char *config_file = NULL;
    int r;

    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct client_option *row = &option_table[i];
        if (row->kind == ROW_POSITIONAL)
            continue;
        names[i] = long_name(row);
        longopts[n_long++] = (struct option){
            names[i].s, row->metavar ? required_argument : no_argument, NULL, 0x100 + (int)i};
        if (row->short_name) {
            shortopts[n_short++] = row->short_name;
            if (row->metavar)
                shortopts[n_short++] = ':';
        }
    }
    longopts[n_long] = (struct option){0};
    shortopts[n_short] = '\0';

    optind = 0; /* glibc: start over, whatever an earlier scan left behind */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const struct client_option *row = NULL;
        if (c >= 0x100 && c < 0x100 + (int)N_OPTIONS)
            row = &option_table[c - 0x100];
        for (size_t i = 0; !row && c != '?' && c != ':' && i < N_OPTIONS; i++)
            if (option_table[i].short_name == c)
                row = &option_table[i];
        if (!row) {
            if (c == ':')
                return usage_error("option %s needs an argument", argv[optind - 1]);
            if (optopt > 0 && optopt < 0x100)
                return usage_error("unknown option -%c", optopt);
            return usage_error("unknown option %s", argv[optind - 1]);
        }
        switch (row->action) {
        case ACTION_HELP:
            client_options_help(stdout);
            return 1;
        case ACTION_VERSION:
            printf("vdi-client %s\n", VDI_VERSION);
            return 1;
        case ACTION_PRINT_CONFIG:
            client_options_print_config(stdout);
            return 1;
        case ACTION_CONFIG:
            if (config_file)
                return usage_error("--config is given twice");
            config_file = optarg;
            break;
        case ACTION_NONE:
            args[n_args++] = (struct argument){row, row->metavar ? optarg : "true"};
            break;
        }
    }
    if (argc - optind > 1)
        return usage_error("too many arguments (one HOST[:PORT] at most)");
    if (optind < argc)
        args[n_args++] = (struct argument){row_of_key("broker"), argv[optind]};

    /* defaults < system file < user file < command line */
    if (config_file) {
        r = merge_file(m, t, config_file, 1, false);
        if (r < 0)
            return r;
    } else {
        r = merge_file(m, t, CLIENT_SYSTEM_CONFIG, 1, true);
        if (r < 0)
            return r;
        _cleanup_(freep) char *user_file = NULL;
        r = client_file_path("XDG_CONFIG_HOME", ".config", "client.conf", &user_file);
        if (r == -ENOMEM)
            return r;
        if (r == 0) {
            r = merge_file(m, t, user_file, 2, true);
            if (r < 0)
                return r;
        }
    }
    for (size_t i = 0; i < n_args; i++) {
        r = merge_argument(m, t, args[i].row, args[i].value);
        if (r < 0)
            return r;
    }
    r = settings_check(&m->s, NULL);
    if (r < 0)
        return r;
    return settings_finish(m, o);
}

int client_options_parse(int argc, char **argv, struct client_options *o)
{
    struct tables t;
    struct merge m = {.broker_level = LEVEL_DEFAULT, .port_level = LEVEL_DEFAULT};
    struct config_error err = {""};

    *o = (struct client_options){0};
    tables_init(&t);
    int r = config_set_defaults(t.all, t.n_all, &m.s, &err);
    if (r == 0) {
        /* every argv entry is at most one argument */
        struct argument *args = calloc((size_t)argc + 1, sizeof(*args));
        r = args ? parse_with(argc, argv, o, &m, &t, args) : -ENOMEM;
        free(args);
    }
    config_done(t.all, t.n_all, &m.s);
    if (r == -ENOMEM)
        fputs("vdi-client: out of memory\n", stderr);
    return r;
}

void client_options_done(struct client_options *o)
{
    free(o->broker);
    free(o->host);
    free(o->user);
    free(o->pool);
    free(o->password_file);
    free(o->ca_file);
    free(o->fingerprint);
    free(o->known_brokers);
    free(o->font);
    free(o->screenshot);
    *o = (struct client_options){0};
}
