#pragma once
/*
 * vdi-client's command line: one table (options.c) gives getopt_long's list and --help,
 * including the exit codes.
 */
#include <stdbool.h>
#include <stdio.h>

#include "log.h"

struct client_options {
    char *host;          /* without brackets */
    int port;            /* 1..65535 */
    char *user;          /* NULL: ask on the terminal */
    char *password_file; /* NULL: $VDI_PASSWORD, else ask on the terminal */
    char *ca_file;       /* trust: CA bundle (PEM) the server certificate must chain to */
    char *fingerprint;   /* trust: SHA-256 pin, "AB:CD:..." as given (parsed by the caller) */
    bool fullscreen;
    bool headless;    /* no window (with --screenshot, for tests) */
    char *screenshot; /* write the first complete frame here (PPM) and exit 0 */
    int screenshot_delay_ms;
    int quality;  /* Tight JPEG quality 0..9 */
    int compress; /* Tight compression level 0..9 */
    enum log_level log_level;
};

/* Parses argv into o (call client_options_done() in every case). Returns 0 to go on, 1
 * when --help or --version was printed (exit 0), or -EINVAL after printing a usage error
 * to stderr (exit 2). */
int client_options_parse(int argc, char **argv, struct client_options *o);
void client_options_done(struct client_options *o);
void client_options_help(FILE *f);
