#pragma once
/*
 * vdictl, the command-line client of the admin API (API.md), apart from its main() so
 * that tests can call every step:
 *
 *   vdictl_parse()           argv -> the one HTTP request it stands for (method, path,
 *                            JSON body), how to show the answer, and the global options.
 *                            Pure: no network, no environment, no terminal.
 *   vdictl_print_response()  an HTTP answer -> a table, the pretty-printed JSON, or a
 *                            one-line confirmation on out; the API's error sentence on err.
 *   vdictl_run()             the whole program: defaults, password, HTTPS, output.
 *
 * Everything from the server is untrusted: types are checked, missing or mistyped fields
 * print as "-", control characters never reach the terminal.
 */
#include <stdbool.h>
#include <stdio.h>

#include "http-client.h"

/* Exit codes; scripts rely on them (--help and vdictl(1) list them). */
enum vdictl_exit {
    VDICTL_EXIT_OK = 0,
    VDICTL_EXIT_ERROR = 1,     /* 5xx, unexpected answer, local failure */
    VDICTL_EXIT_USAGE = 2,     /* bad arguments, or 400 from the server */
    VDICTL_EXIT_CONNECT = 3,   /* cannot connect, TLS or certificate failure */
    VDICTL_EXIT_AUTH = 4,      /* 401 / 403, and 429 (too many failed logins) */
    VDICTL_EXIT_NOT_FOUND = 5, /* 404 */
    VDICTL_EXIT_CONFLICT = 6,  /* 409 */
    VDICTL_EXIT_CAPACITY = 7,  /* 503: at capacity, shutting down, busy */
};

#define VDICTL_DEFAULT_URL "https://127.0.0.1:8443"
#define VDICTL_DEFAULT_CA_FILE "/var/lib/vdi/tls/ca-cert.pem"
#define VDICTL_DEFAULT_TIMEOUT_S 30
#define VDICTL_MAX_TIMEOUT_S 3600
#define VDICTL_MAX_PASSWORD 1024

/* How an answer is shown. */
enum vdictl_view {
    VDICTL_VIEW_CONFIRM, /* a change: the confirmation line (--json: the object, if any) */
    VDICTL_VIEW_TEMPLATES,
    VDICTL_VIEW_TEMPLATE,
    VDICTL_VIEW_POOLS,
    VDICTL_VIEW_POOL,
    VDICTL_VIEW_DESKTOPS,
    VDICTL_VIEW_DESKTOP,
    VDICTL_VIEW_ENTITLEMENTS,
    VDICTL_VIEW_SESSIONS,        /* live desktop sessions */
    VDICTL_VIEW_SESSION_HISTORY, /* the store's connection rows */
    VDICTL_VIEW_SHADOW,          /* one live session: how to watch it */
    VDICTL_VIEW_USAGE,
    VDICTL_VIEW_AUDIT,
    VDICTL_VIEW_METRICS, /* text, as is */
};

struct vdictl_request {
    /* Global options as given (pointers into argv), NULL / 0 when absent: vdictl_run()
     * then takes $VDI_URL, $VDI_CA_FILE, $VDI_USER, the login name, the defaults (and sets
     * user to the name it logs in with, which the shadow view prints). */
    const char *url;
    const char *ca_file;
    const char *user;
    const char *password_file;
    int timeout_s;
    bool json;
    bool help; /* --help: print vdictl_help() and do nothing else */

    /* The call (all NULL with help). */
    const char *method; /* static string */
    char *path;         /* percent-encoded, with the query */
    char *body;         /* JSON text or NULL */
    enum vdictl_view view;
    char *confirm; /* the line printed after a successful change */
};

/* Parses argv (argv[0] is the program). Returns 0, -EINVAL after writing a usage message
 * to err (exit VDICTL_EXIT_USAGE), or -ENOMEM. Call vdictl_request_done() in every case. */
int vdictl_parse(int argc, char *const *argv, struct vdictl_request *ret, FILE *err);
void vdictl_request_done(struct vdictl_request *r);

void vdictl_help(FILE *f);

/* Exit code for an HTTP status (2xx is VDICTL_EXIT_OK). */
int vdictl_exit_code_from_status(int status);
/* Exit code for a negative errno from http_request(). */
int vdictl_exit_code_from_error(int error);

/* Shows resp as r->view and r->json ask. Returns the exit code. */
int vdictl_print_response(const struct vdictl_request *r, const struct http_response *resp,
                          FILE *out, FILE *err);

/* The program: returns the exit code. Reads the environment, may ask for the password on
 * /dev/tty. */
int vdictl_run(int argc, char **argv, FILE *out, FILE *err);
