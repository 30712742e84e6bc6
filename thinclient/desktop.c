#include "desktop.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "handoff.h"
#include "log.h"
#include "relay.h"
#include "tls.h"
#include "util.h"
#include "viewer.h"
#include "vnc.h"

/* Waits (no window) until the session ends or signal_fd is readable. Returns true on a
 * signal. */
static bool wait_headless(struct vnc *vnc, int signal_fd)
{
    struct pollfd p[2] = {
        {.fd = vnc_end_fd(vnc), .events = POLLIN},
        {.fd = signal_fd, .events = POLLIN},
    };
    for (;;) {
        int n = poll(p, signal_fd >= 0 ? 2 : 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || p[0].revents)
            return false;
        if (p[1].revents)
            return true;
    }
}

enum desktop_end desktop_run(struct tls_conn *tls, const struct desktop_params *p, char *message,
                             size_t message_size)
{
    message[0] = 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        tls_conn_free(tls);
        snprintf(message, message_size, "cannot create a socket pair: %s", strerror(errno));
        return DESKTOP_END_INTERNAL;
    }

    int32_t encodings[HANDOFF_DEFAULT_ENCODINGS];
    size_t n = handoff_default_encodings(encodings, p->quality, p->compress);
    struct relay *relay = NULL;
    int r = relay_start(tls, sv[0], encodings, n, &relay);
    if (r < 0) {
        safe_close(sv[1]);
        snprintf(message, message_size, "cannot start the relay thread: %s", strerror(-r));
        return DESKTOP_END_INTERNAL;
    }

    struct vnc_params vp = {
        .fd = sv[1],
        .quality = p->quality,
        .compress = p->compress,
        .screenshot_path = p->screenshot_path,
        .screenshot_delay_ms = p->screenshot_delay_ms,
        .on_frame = p->viewer ? viewer_notify : NULL,
        .on_clipboard = p->viewer ? viewer_clipboard_from_server : NULL,
        .userdata = p->viewer,
    };
    struct vnc *vnc = NULL;
    r = vnc_start(&vp, &vnc);
    if (r < 0) {
        relay_free(relay);
        snprintf(message, message_size, "cannot start the vnc thread: %s", strerror(-r));
        return DESKTOP_END_INTERNAL;
    }

    bool user_quit;
    if (p->viewer) {
        r = viewer_run(p->viewer, vnc);
        user_quit = r == VIEWER_USER_QUIT;
    } else {
        r = 0;
        user_quit = wait_headless(vnc, p->signal_fd);
    }

    bool relay_ended_first = relay_finished(relay);
    int handoff_error = 0, relay_error = 0;
    relay_stop(relay, &handoff_error, &relay_error);
    char detail[256];
    enum vnc_end end = vnc_stop(vnc, detail, sizeof(detail));
    vnc_free(vnc);
    relay_free(relay);

    if (r < 0) {
        snprintf(message, message_size, "display failure: %s", strerror(-r));
        return DESKTOP_END_INTERNAL;
    }
    if (user_quit)
        return DESKTOP_END_USER_QUIT;
    switch (end) {
    case VNC_END_SCREENSHOT:
        return DESKTOP_END_SCREENSHOT;
    case VNC_END_INCOMPLETE:
        snprintf(message, message_size,
                 "protocol error: the server never sent the whole framebuffer (the screenshot "
                 "holds what arrived)");
        return DESKTOP_END_PROTOCOL;
    case VNC_END_ERROR:
        snprintf(message, message_size, "internal error in the vnc thread");
        return DESKTOP_END_INTERNAL;
    default:
        break;
    }
    if (handoff_error == -EPROTO) {
        snprintf(message, message_size, "protocol error during the session start");
        return DESKTOP_END_PROTOCOL;
    }
    if (handoff_error < 0) {
        snprintf(message, message_size, "connection lost during the session start: %s",
                 strerror(-handoff_error));
        return DESKTOP_END_DROPPED;
    }
    if (relay_ended_first) {
        if (relay_error < 0) {
            snprintf(message, message_size, "connection lost: %s", strerror(-relay_error));
            return DESKTOP_END_DROPPED;
        }
        snprintf(message, message_size, "the server ended the session");
        return DESKTOP_END_CLOSED;
    }
    snprintf(message, message_size,
             "protocol error: the server sent data the viewer cannot handle%s%s%s",
             detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
    return DESKTOP_END_PROTOCOL;
}
