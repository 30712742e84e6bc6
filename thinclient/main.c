/*
 * vdi-client: connects to a vdi server, authenticates (VeNCrypt X509Plain, our own code on
 * GnuTLS), then shows the desktop through libvncclient and SDL2.
 *
 *   main thread   options; the window (app.c): login, chooser, trust, desktop; or, with
 *                 --headless, terminal prompts and one connection (tests, scripts)
 *   vdi-connect   connect + handshake behind the login screen (connect-job.h)
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

#include "app.h"
#include "connect.h"
#include "desktop.h"
#include "known-brokers.h"
#include "log.h"
#include "options.h"
#include "prompt.h"
#include "proto.h"
#include "tls.h"
#include "tty.h"
#include "util.h"

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vdi-client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* --headless: --password-file, $VDI_PASSWORD, else asked on the terminal. */
static int get_password(const struct client_options *o, const char *user, char **ret)
{
    int r = prompt_preset_password(o->password_file, PROTO_MAX_PASSWORD, ret);
    if (r < 0) {
        say("cannot read the password from %s: %s",
            o->password_file ? o->password_file : "VDI_PASSWORD",
            r == -E2BIG     ? "longer than 255 bytes"
            : r == -ENODATA ? "the file is empty"
                            : strerror(-r));
        return -EINVAL;
    }
    if (*ret)
        return 0;
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

/* --headless: the session until the screenshot is written or a signal arrives. */
static int run_headless_session(const struct client_options *o, struct tls_conn *tls)
{
    /* Before any thread starts, so that they all inherit the mask. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    _cleanup_(closep) int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);

    struct desktop_params p = {
        .quality = o->quality,
        .compress = o->compress,
        .screenshot_path = o->screenshot,
        .screenshot_delay_ms = o->screenshot_delay_ms,
        .signal_fd = sig_fd,
    };
    char message[512];
    switch (desktop_run(tls, &p, message, sizeof(message))) {
    case DESKTOP_END_USER_QUIT:
        log_info("disconnected by the user");
        return CLIENT_EXIT_OK;
    case DESKTOP_END_SCREENSHOT:
        return CLIENT_EXIT_OK;
    case DESKTOP_END_CLOSED:
    case DESKTOP_END_DROPPED:
        say("%s", message);
        return CLIENT_EXIT_LOST;
    case DESKTOP_END_PROTOCOL:
        say("%s", message);
        return CLIENT_EXIT_PROTOCOL;
    default:
        say("%s", message);
        return CLIENT_EXIT_INTERNAL;
    }
}

/* The pin for --headless: --fingerprint, else the one accepted earlier on the trust
 * screen (known_brokers). NULL (with a message) when there is neither and no CA file. */
static const uint8_t *headless_pin(const struct client_options *o, uint8_t pin[TLS_SHA256_SIZE])
{
    if (o->fingerprint)
        return pin; /* parsed in main() */
    if (o->ca_file)
        return NULL;
    _cleanup_(freep) char *path = NULL;
    if (o->known_brokers)
        path = strdup(o->known_brokers);
    else
        (void)known_brokers_default_path(&path);
    if (path && known_brokers_lookup(path, o->host, o->port, pin) > 0)
        return pin;
    return NULL;
}

/* --headless: terminal prompts, one connection, no window (tests, scripts). */
static int run_headless(const struct client_options *o)
{
    const char *user = o->user; /* --headless requires it (options.c) */
    _cleanup_(secret_freep) char *password = NULL;
    uint8_t pin[TLS_SHA256_SIZE];

    if (o->fingerprint && tls_fingerprint_parse(o->fingerprint, pin) < 0) {
        say("--fingerprint: expected a SHA-256 fingerprint (64 hex digits, colons optional)");
        return CLIENT_EXIT_USAGE;
    }
    const uint8_t *pin_ptr = headless_pin(o, pin);
    if (!o->ca_file && !pin_ptr) {
        say("refusing to connect without a way to check the server: give --ca-file FILE or "
            "--fingerprint SHA256, or accept the server once in the window");
        return CLIENT_EXIT_USAGE;
    }
    if (get_password(o, user, &password) < 0)
        return CLIENT_EXIT_USAGE;

    struct client_connect_params p = {
        .host = o->host,
        .port = o->port,
        .ca_file = o->ca_file,
        .pin_sha256 = pin_ptr,
        .user = user,
        .password = password,
    };
    struct handshake_status st;
    struct tls_conn *tls = NULL;
    uint8_t peer_sha[TLS_SHA256_SIZE];
    bool have_peer_sha = false;
    log_info("connecting host=%s port=%d user=%s", o->host, o->port, user);
    int r = client_connect(&p, &tls, &st, peer_sha, &have_peer_sha);
    secret_free(TAKE_PTR(password));
    if (r < 0)
        return report_connect_failure(r, &st, &p, peer_sha, have_peer_sha);
    log_info("authenticated host=%s user=%s", o->host, user);
    return run_headless_session(o, tls);
}

int main(int argc, char **argv)
{
    struct client_options o;
    int code;

    log_set_ident("vdi-client");
    signal(SIGPIPE, SIG_IGN);

    int r = client_options_parse(argc, argv, &o);
    if (r != 0) {
        client_options_done(&o);
        return r > 0 ? CLIENT_EXIT_OK : r == -ENOMEM ? CLIENT_EXIT_INTERNAL : CLIENT_EXIT_USAGE;
    }
    log_set_level(o.log_level);

    uint8_t pin[TLS_SHA256_SIZE];
    if (o.fingerprint && tls_fingerprint_parse(o.fingerprint, pin) < 0) {
        say("--fingerprint: expected a SHA-256 fingerprint (64 hex digits, colons optional)");
        code = CLIENT_EXIT_USAGE;
    } else if (o.ca_file && access(o.ca_file, R_OK) < 0) {
        say("--ca-file %s: %m", o.ca_file);
        code = CLIENT_EXIT_USAGE;
    } else if (o.headless) {
        code = run_headless(&o);
    } else {
        code = app_run(&o);
    }
    client_options_done(&o);
    return code;
}
