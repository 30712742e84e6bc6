#pragma once
/*
 * One desktop connection after authentication: starts the relay thread (TLS <-> the
 * local socketpair, handoff.h) and the vnc thread (libvncclient), runs the viewer (or,
 * headless, waits for the screenshot or a signal), then stops and joins everything and
 * says how the connection ended. Used by the windowed app and by --headless.
 */
#include <stddef.h>

struct tls_conn;
struct viewer;

enum desktop_end {
    DESKTOP_END_USER_QUIT,  /* window closed, SIGINT/SIGTERM */
    DESKTOP_END_SCREENSHOT, /* --screenshot written */
    DESKTOP_END_CLOSED,     /* the server ended the session on purpose (TLS close_notify):
                               logoff, takeover, admin; its reason is on the last frame */
    DESKTOP_END_DROPPED,    /* the connection broke (EOF without close_notify, reset,
                               timeout): worth reconnecting */
    DESKTOP_END_PROTOCOL,   /* data we cannot handle, or an incomplete --screenshot */
    DESKTOP_END_INTERNAL,   /* local failure: memory, threads, rendering */
};

struct desktop_params {
    int quality, compress;
    const char *screenshot_path; /* headless: write the first complete frame, then end */
    int screenshot_delay_ms;
    struct viewer *viewer; /* NULL: headless */
    int signal_fd;         /* headless: a signalfd that ends the wait, or -1 */
};

/* Takes tls (freed in every case). message receives a sentence for the user and the log
 * (empty for USER_QUIT and SCREENSHOT). */
enum desktop_end desktop_run(struct tls_conn *tls, const struct desktop_params *p, char *message,
                             size_t message_size);
