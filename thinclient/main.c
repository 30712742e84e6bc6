/*
 * vdi-client: connects to a vdi server, authenticates (VeNCrypt X509Plain, our own code on
 * GnuTLS), then shows the desktop through libvncclient and SDL2.
 *
 *   main thread   options, credentials, connect + handshake, then the SDL event loop
 *   vdi-relay     local RFB handshake toward libvncclient, then TLS <-> socketpair pump
 *   vdi-vnc       libvncclient: decoding, and the only writer of client messages
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connect.h"
#include "handoff.h"
#include "log.h"
#include "options.h"
#include "prompt.h"
#include "proto.h"
#include "relay.h"
#include "tls.h"
#include "tty.h"
#include "util.h"
#include "viewer.h"
#include "vnc.h"

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vdi-client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int get_user(const struct client_options *o, char **ret)
{
    if (o->user) {
        *ret = strdup(o->user);
        return *ret ? 0 : -ENOMEM;
    }
    _cleanup_(freep) char *user = NULL;
    int r = tty_read_line("Username: ", true, PROTO_MAX_USERNAME, &user);
    if (r == -ENXIO) {
        say("no --user given and no terminal to ask on");
        return -EINVAL;
    }
    if (r < 0) {
        say("cannot read the user name: %s", strerror(-r));
        return -EINVAL;
    }
    if (!username_is_valid(user)) {
        say("not a valid user name (1-32 of A-Z a-z 0-9 . _ -)");
        return -EINVAL;
    }
    *ret = TAKE_PTR(user);
    return 0;
}

static int get_password(const struct client_options *o, const char *user, char **ret)
{
    int r;
    if (o->password_file) {
        r = prompt_secret_from_file(o->password_file, PROTO_MAX_PASSWORD, ret);
        if (r < 0) {
            say("cannot read the password from %s: %s", o->password_file,
                r == -E2BIG     ? "longer than 255 bytes"
                : r == -ENODATA ? "the file is empty"
                                : strerror(-r));
            return -EINVAL;
        }
        return 0;
    }
    char *env = getenv("VDI_PASSWORD");
    if (env) {
        size_t len = strlen(env);
        if (len > PROTO_MAX_PASSWORD) {
            say("VDI_PASSWORD is longer than %d bytes", PROTO_MAX_PASSWORD);
            return -EINVAL;
        }
        *ret = strdup(env);
        /* Leave no copy in our environment (children, /proc/PID/environ). */
        explicit_bzero(env, len);
        unsetenv("VDI_PASSWORD");
        return *ret ? 0 : -ENOMEM;
    }
    char prompt[PROTO_MAX_USERNAME + 32];
    snprintf(prompt, sizeof(prompt), "Password for %s: ", user);
    r = tty_read_line(prompt, false, PROTO_MAX_PASSWORD, ret);
    if (r == -ENXIO) {
        say("no password: give --password-file, set VDI_PASSWORD, or run on a terminal");
        return -EINVAL;
    }
    if (r < 0) {
        say("cannot read the password: %s", r == -E2BIG ? "longer than 255 bytes" : strerror(-r));
        return -EINVAL;
    }
    return 0;
}

static int report_connect_failure(int r, const struct handshake_status *st,
                                  const struct client_connect_params *p, const uint8_t *sha,
                                  bool have_sha)
{
    int code = handshake_exit_code(r, st->phase);
    char fp[96] = "";
    if (have_sha)
        tls_fingerprint_format(sha, fp);

    switch (code) {
    case CLIENT_EXIT_UNTRUSTED:
        say("the server's certificate is not trusted: %s", st->detail);
        if (have_sha) {
            fprintf(stderr, "  The server's SHA-256 fingerprint is %s\n", fp);
            fprintf(stderr,
                    "  If your administrator confirms it, connect with "
                    "--fingerprint %s\n",
                    fp);
        }
        break;
    case CLIENT_EXIT_AUTH:
        say("authentication failed for user %s: %s", p->user,
            st->reason[0] ? st->reason : "the server gave no reason");
        break;
    case CLIENT_EXIT_UNREACHABLE:
        if (r == -ECONNREFUSED && st->phase > HANDSHAKE_PHASE_CONNECT)
            say("cannot connect: the server at %s port %d refused the connection: %s", p->host,
                p->port, st->reason[0] ? st->reason : "no reason given");
        else if (st->phase == HANDSHAKE_PHASE_CONNECT)
            say("cannot connect: %s", st->detail);
        else
            say("cannot connect to %s port %d: %s (%s)", p->host, p->port, st->detail,
                strerror(-r));
        break;
    case CLIENT_EXIT_LOST:
        say("connection lost during the %s: %s (%s)", handshake_phase_to_string(st->phase),
            st->detail, strerror(-r));
        break;
    case CLIENT_EXIT_PROTOCOL:
        say("protocol error during the %s: %s", handshake_phase_to_string(st->phase),
            st->detail[0] ? st->detail : strerror(-r));
        break;
    case CLIENT_EXIT_USAGE:
        say("%s", st->detail[0] ? st->detail : strerror(-r));
        break;
    default:
        say("cannot connect: %s", strerror(-r));
        break;
    }
    return code;
}

/* Waits (no window) until the session ends or SIGINT/SIGTERM/SIGHUP. Returns true on a
 * signal. */
static bool wait_headless(struct vnc *vnc, int sig_fd)
{
    struct pollfd p[2] = {
        {.fd = vnc_end_fd(vnc), .events = POLLIN},
        {.fd = sig_fd, .events = POLLIN},
    };
    for (;;) {
        int n = poll(p, sig_fd >= 0 ? 2 : 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || p[0].revents)
            return false;
        if (p[1].revents)
            return true;
    }
}

static int run_session(const struct client_options *o, struct tls_conn *tls, const char *user)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        tls_conn_free(tls);
        say("cannot create a socket pair: %m");
        return CLIENT_EXIT_INTERNAL;
    }

    int sig_fd = -1;
    if (o->headless) {
        /* Before any thread starts, so that they all inherit the mask. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
    }

    int32_t encodings[HANDOFF_DEFAULT_ENCODINGS];
    size_t n = handoff_default_encodings(encodings, o->quality, o->compress);
    struct relay *relay = NULL;
    int r = relay_start(tls, sv[0], encodings, n, &relay);
    if (r < 0) {
        safe_close(sv[1]);
        safe_close(sig_fd);
        say("cannot start the relay thread: %s", strerror(-r));
        return CLIENT_EXIT_INTERNAL;
    }

    struct viewer *viewer = NULL;
    if (!o->headless) {
        char title[512];
        snprintf(title, sizeof(title), "%s@%s - vdi", user, o->host);
        struct viewer_options vo = {.title = title, .fullscreen = o->fullscreen};
        r = viewer_new(&vo, &viewer);
        if (r < 0) {
            safe_close(sv[1]);
            relay_free(relay);
            say("cannot open a window (is DISPLAY set?)");
            return CLIENT_EXIT_INTERNAL;
        }
    }

    struct vnc_params vp = {
        .fd = sv[1],
        .quality = o->quality,
        .compress = o->compress,
        .screenshot_path = o->screenshot,
        .screenshot_delay_ms = o->screenshot_delay_ms,
        .on_frame = viewer ? viewer_notify : NULL,
        .userdata = viewer,
    };
    struct vnc *vnc = NULL;
    r = vnc_start(&vp, &vnc);
    if (r < 0) {
        viewer_free(viewer);
        relay_free(relay);
        safe_close(sig_fd);
        say("cannot start the vnc thread: %s", strerror(-r));
        return CLIENT_EXIT_INTERNAL;
    }

    bool user_quit;
    int code;
    if (viewer) {
        r = viewer_run(viewer, vnc);
        user_quit = r == VIEWER_USER_QUIT;
        if (r < 0) {
            say("display failure: %s", strerror(-r));
            user_quit = true; /* not the server's fault */
        }
    } else {
        user_quit = wait_headless(vnc, sig_fd);
    }

    bool relay_ended_first = relay_finished(relay);
    int handoff_error = 0, relay_error = 0;
    relay_stop(relay, &handoff_error, &relay_error);
    char detail[256];
    enum vnc_end end = vnc_stop(vnc, detail, sizeof(detail));

    if (r < 0) {
        code = CLIENT_EXIT_INTERNAL;
    } else if (user_quit) {
        log_info("disconnected by the user");
        code = CLIENT_EXIT_OK;
    } else if (end == VNC_END_SCREENSHOT) {
        code = CLIENT_EXIT_OK;
    } else if (end == VNC_END_INCOMPLETE) {
        say("protocol error: the server never sent the whole framebuffer (the screenshot "
            "holds what arrived)");
        code = CLIENT_EXIT_PROTOCOL;
    } else if (end == VNC_END_ERROR) {
        code = CLIENT_EXIT_INTERNAL;
    } else if (handoff_error == -EPROTO) {
        say("protocol error during the session start (see --log-level debug)");
        code = CLIENT_EXIT_PROTOCOL;
    } else if (handoff_error < 0) {
        say("connection lost during the session start: %s", strerror(-handoff_error));
        code = CLIENT_EXIT_LOST;
    } else if (relay_ended_first) {
        if (relay_error < 0)
            say("connection lost: %s", strerror(-relay_error));
        else
            say("connection lost: the server closed the connection");
        code = CLIENT_EXIT_LOST;
    } else {
        say("protocol error: the server sent data the viewer cannot handle%s%s%s",
            detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
        code = CLIENT_EXIT_PROTOCOL;
    }

    vnc_free(vnc);
    relay_free(relay);
    viewer_free(viewer);
    safe_close(sig_fd);
    return code;
}

int main(int argc, char **argv)
{
    struct client_options o;
    _cleanup_(freep) char *user = NULL;
    _cleanup_(secret_freep) char *password = NULL;
    uint8_t pin[TLS_SHA256_SIZE];
    int r, code;

    log_set_ident("vdi-client");
    signal(SIGPIPE, SIG_IGN);

    r = client_options_parse(argc, argv, &o);
    if (r != 0) {
        client_options_done(&o);
        return r > 0 ? CLIENT_EXIT_OK : r == -ENOMEM ? CLIENT_EXIT_INTERNAL : CLIENT_EXIT_USAGE;
    }
    log_set_level(o.log_level);

    if (o.fingerprint && tls_fingerprint_parse(o.fingerprint, pin) < 0) {
        say("--fingerprint: expected a SHA-256 fingerprint (64 hex digits, colons optional)");
        code = CLIENT_EXIT_USAGE;
        goto out;
    }
    if (o.ca_file && access(o.ca_file, R_OK) < 0) {
        say("--ca-file %s: %m", o.ca_file);
        code = CLIENT_EXIT_USAGE;
        goto out;
    }
    if (get_user(&o, &user) < 0 || get_password(&o, user, &password) < 0) {
        code = CLIENT_EXIT_USAGE;
        goto out;
    }

    struct client_connect_params p = {
        .host = o.host,
        .port = o.port,
        .ca_file = o.ca_file,
        .pin_sha256 = o.fingerprint ? pin : NULL,
        .user = user,
        .password = password,
    };
    struct handshake_status st;
    struct tls_conn *tls = NULL;
    uint8_t peer_sha[TLS_SHA256_SIZE];
    bool have_peer_sha = false;
    log_info("connecting host=%s port=%d user=%s", o.host, o.port, user);
    r = client_connect(&p, &tls, &st, peer_sha, &have_peer_sha);
    secret_free(TAKE_PTR(password));
    if (r < 0) {
        code = report_connect_failure(r, &st, &p, peer_sha, have_peer_sha);
        goto out;
    }
    log_info("authenticated host=%s user=%s", o.host, user);
    code = run_session(&o, tls, user);

out:
    client_options_done(&o);
    return code;
}
