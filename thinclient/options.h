#pragma once
/*
 * vdi-client's settings: built-in defaults, then the config files (/etc/vdi/client.conf,
 * then ~/.config/vdi/client.conf; or only the file given with --config), then the
 * command line. One table (options.c) gives the config keys, getopt_long's list, --help
 * (with the exit codes) and --print-config.
 */
#include <stdbool.h>
#include <stdio.h>

#include "log.h"

#define CLIENT_SYSTEM_CONFIG "/etc/vdi/client.conf"
#define CLIENT_RECONNECT_MAX_S_DEFAULT 30

struct client_options {
    /* Where: NULL host when neither the command line nor a config file names a broker
     * (the login screen asks). broker is the text as given ("HOST", "HOST:PORT",
     * "[v6]:PORT"), host/port its parsed form. */
    char *broker;
    char *host;          /* without brackets */
    int port;            /* 1..65535 */
    char *user;          /* NULL: ask on the login screen (--headless requires one) */
    char *pool;          /* NULL: the remembered one, else the chooser when there are several */
    char *password_file; /* --headless / automatic login: first line of the file */
    /* Trust: a CA bundle, a pinned fingerprint, or (neither) trust on first use with the
     * known_brokers file (known-brokers.h). */
    char *ca_file;
    char *fingerprint;   /* "AB:CD:..." as given (parsed by the caller) */
    char *known_brokers; /* NULL: known_brokers_default_path() */
    bool fullscreen;
    bool kiosk;          /* full screen, no way out, back to the login screen after a session
                          * (sets fullscreen too) */
    char *font;          /* NULL: UI_DEFAULT_FONT */
    int reconnect_max_s; /* the longest wait between reconnection attempts */
    bool headless;       /* no window (with --screenshot, for tests) */
    char *screenshot;    /* write the first complete frame here (PPM) and exit 0 */
    int screenshot_delay_ms;
    int quality;  /* Tight JPEG quality 0..9 */
    int compress; /* Tight compression level 0..9 */
    enum log_level log_level;
};

/* Parses config files and argv into o (call client_options_done() in every case).
 * Returns 0 to go on, 1 when --help, --version or --print-config was printed (exit 0),
 * or -EINVAL after printing a usage or config error to stderr (exit 2), -ENOMEM.
 * A missing default config file is fine; a file given with --config must exist.
 * An empty value ("user =", --user "") means "not set" and clears a value from an
 * earlier file. --headless needs a broker and a user (whether a TOFU fingerprint is
 * known for --headless is checked at run time). */
int client_options_parse(int argc, char **argv, struct client_options *o);
void client_options_done(struct client_options *o);
void client_options_help(FILE *f);
/* The documented sample config, every key at its default (--print-config,
 * packaging/client.conf). */
void client_options_print_config(FILE *f);
