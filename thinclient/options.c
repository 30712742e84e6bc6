#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcp.h"
#include "util.h"

enum option_id {
    OPT_HELP = 'h',
    OPT_VERSION = 'V',
    OPT_PORT = 'p',
    OPT_USER = 'u',
    OPT_FULLSCREEN = 'f',
    OPT_PASSWORD_FILE = 0x100,
    OPT_CA_FILE,
    OPT_FINGERPRINT,
    OPT_LOG_LEVEL,
    OPT_QUALITY,
    OPT_COMPRESS,
    OPT_SCREENSHOT,
    OPT_SCREENSHOT_DELAY,
    OPT_HEADLESS,
};

struct option_doc {
    const char *name;
    int id;
    const char *arg; /* metavar, NULL for flags */
    const char *doc;
};

static const struct option_doc option_table[] = {
    {"user", OPT_USER, "NAME", "User name (asked on the terminal when missing)"},
    {"password-file", OPT_PASSWORD_FILE, "FILE",
     "Read the password from the first line of FILE; otherwise $VDI_PASSWORD, otherwise "
     "asked on the terminal without echo"},
    {"ca-file", OPT_CA_FILE, "FILE",
     "Trust the server when its certificate chains to a CA in FILE (PEM) and matches HOST"},
    {"fingerprint", OPT_FINGERPRINT, "SHA256",
     "Trust the server whose certificate has this SHA-256 fingerprint (AB:CD:... form)"},
    {"port", OPT_PORT, "PORT", "Server TCP port (default 5900; or HOST:PORT)"},
    {"fullscreen", OPT_FULLSCREEN, NULL, "Start in full screen"},
    {"quality", OPT_QUALITY, "0-9", "JPEG quality for Tight encoding (default 7)"},
    {"compress", OPT_COMPRESS, "0-9", "Compression level for Tight encoding (default 2)"},
    {"screenshot", OPT_SCREENSHOT, "FILE",
     "Write the first complete frame to FILE (PPM) and exit 0 (for tests)"},
    {"screenshot-delay", OPT_SCREENSHOT_DELAY, "MS",
     "With --screenshot: take it no earlier than MS milliseconds after the first frame"},
    {"headless", OPT_HEADLESS, NULL, "Open no window (with --screenshot, for tests)"},
    {"log-level", OPT_LOG_LEVEL, "LEVEL", "error, warning, info (default) or debug"},
    {"help", OPT_HELP, NULL, "Show this help and exit"},
    {"version", OPT_VERSION, NULL, "Show the version and exit"},
};

void client_options_help(FILE *f)
{
    fprintf(f, "Usage: vdi-client [OPTIONS] HOST[:PORT]\n"
               "Connects to a vdi server (RFB 3.8, VeNCrypt X509Plain over TLS) and shows the\n"
               "remote desktop. One of --ca-file or --fingerprint is required.\n\nOptions:\n");
    for (size_t i = 0; i < ARRAY_SIZE(option_table); i++) {
        const struct option_doc *d = &option_table[i];
        char left[64];
        if (d->id < 0x100)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", d->id, d->name, d->arg ? " " : "",
                     d->arg ? d->arg : "");
        else
            snprintf(left, sizeof(left), "    --%s%s%s", d->name, d->arg ? " " : "",
                     d->arg ? d->arg : "");
        fprintf(f, "  %-28s %s\n", left, d->doc);
    }
    fprintf(f, "\nEnvironment:\n"
               "  VDI_PASSWORD                 Password, when --password-file is not given\n"
               "\nExit codes:\n"
               "  0  disconnected by the user (window closed), or --screenshot written\n"
               "  1  internal error (out of memory, no display, ...)\n"
               "  2  usage error\n"
               "  3  cannot connect: server unreachable, refused, or not a vdi server\n"
               "  4  server certificate not trusted (its SHA-256 fingerprint is printed)\n"
               "  5  authentication failed (the server's reason is printed)\n"
               "  6  connection lost\n"
               "  7  protocol error\n");
}

static int parse_int(const char *s, int min, int max, int *ret)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -EINVAL;
    *ret = (int)v;
    return 0;
}

static int set_string(char **field, const char *value)
{
    char *s = strdup(value);
    if (!s)
        return -ENOMEM;
    free(*field);
    *field = s;
    return 0;
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

int client_options_parse(int argc, char **argv, struct client_options *o)
{
    struct option longopts[ARRAY_SIZE(option_table) + 1];
    char shortopts[3 * ARRAY_SIZE(option_table) + 3] = "+:";
    size_t s = 2;
    bool port_given = false;
    int r;

    *o = (struct client_options){
        .port = TCP_DEFAULT_PORT,
        .quality = 7,
        .compress = 2,
        .log_level = LOG_LEVEL_INFO,
    };
    for (size_t i = 0; i < ARRAY_SIZE(option_table); i++) {
        const struct option_doc *d = &option_table[i];
        longopts[i] =
            (struct option){d->name, d->arg ? required_argument : no_argument, NULL, d->id};
        if (d->id < 0x100) {
            shortopts[s++] = (char)d->id;
            if (d->arg)
                shortopts[s++] = ':';
        }
    }
    longopts[ARRAY_SIZE(option_table)] = (struct option){0};
    shortopts[s] = '\0';

    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        r = 0;
        switch (c) {
        case OPT_HELP:
            client_options_help(stdout);
            return 1;
        case OPT_VERSION:
            printf("vdi-client %s\n", VDI_VERSION);
            return 1;
        case OPT_PORT:
            if (parse_int(optarg, 1, 65535, &o->port) < 0)
                return usage_error("--port: not a port number: %s", optarg);
            port_given = true;
            break;
        case OPT_USER:
            if (!username_is_valid(optarg))
                return usage_error("--user: not a valid user name (1-32 of A-Z a-z 0-9 . _ -)");
            r = set_string(&o->user, optarg);
            break;
        case OPT_FULLSCREEN:
            o->fullscreen = true;
            break;
        case OPT_PASSWORD_FILE:
            r = set_string(&o->password_file, optarg);
            break;
        case OPT_CA_FILE:
            r = set_string(&o->ca_file, optarg);
            break;
        case OPT_FINGERPRINT:
            r = set_string(&o->fingerprint, optarg);
            break;
        case OPT_LOG_LEVEL:
            if (log_level_from_string(optarg, &o->log_level) < 0)
                return usage_error("--log-level: expected error, warning, info or debug");
            break;
        case OPT_QUALITY:
            if (parse_int(optarg, 0, 9, &o->quality) < 0)
                return usage_error("--quality: expected 0..9");
            break;
        case OPT_COMPRESS:
            if (parse_int(optarg, 0, 9, &o->compress) < 0)
                return usage_error("--compress: expected 0..9");
            break;
        case OPT_SCREENSHOT:
            r = set_string(&o->screenshot, optarg);
            break;
        case OPT_SCREENSHOT_DELAY:
            if (parse_int(optarg, 0, 3600 * 1000, &o->screenshot_delay_ms) < 0)
                return usage_error("--screenshot-delay: expected milliseconds (0..3600000)");
            break;
        case OPT_HEADLESS:
            o->headless = true;
            break;
        case ':':
            return usage_error("option %s needs an argument", argv[optind - 1]);
        default:
            if (optopt > 0 && optopt < 0x100)
                return usage_error("unknown option -%c", optopt);
            return usage_error("unknown option %s", argv[optind - 1]);
        }
        if (r < 0)
            return r;
    }

    if (optind != argc - 1)
        return usage_error(optind >= argc ? "missing HOST[:PORT]" : "too many arguments");
    int target_port = -1;
    r = tcp_parse_target(argv[optind], &o->host, &target_port);
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        return usage_error("not a valid HOST[:PORT]: %s", argv[optind]);
    if (target_port > 0) {
        if (port_given && target_port != o->port)
            return usage_error("the port is given twice (%d and --port %d)", target_port, o->port);
        o->port = target_port;
    }
    if (!o->ca_file && !o->fingerprint)
        return usage_error("refusing to connect without a way to check the server: give "
                           "--ca-file FILE or --fingerprint SHA256");
    if (o->headless && !o->screenshot)
        return usage_error("--headless needs --screenshot");
    if (o->screenshot_delay_ms && !o->screenshot)
        return usage_error("--screenshot-delay needs --screenshot");
    return 0;
}

void client_options_done(struct client_options *o)
{
    free(o->host);
    free(o->user);
    free(o->password_file);
    free(o->ca_file);
    free(o->fingerprint);
    free(o->screenshot);
    *o = (struct client_options){0};
}
