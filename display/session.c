/* One client connection: handshake, login through the broker, relay to the RFB proxy. */
#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include "log.h"
#include "proto.h"
#include "proxy.h"
#include "tls.h"
#include "util.h"
#include "vencrypt.h"

#define RELAY_WRITE_TIMEOUT_MS 30000 /* a client (or proxy) that takes nothing this long */
#define PROXY_WRITE_TIMEOUT_MS 30000
#define CLOSE_LINGER_MS 2500 /* how long a CLOSE reason stays on the status screen */

struct session {
    const struct session_options *o;
    struct tls_server_credentials *creds;
    const char *addr;

    int client_fd; /* until the TLS connection owns it */
    struct tls_conn *tls;
    struct vencrypt *v;
    char user[PROTO_MAX_USERNAME + 1]; /* for logs, once the client named it */

    struct proxy *proxy;
    int proxy_fd;
    bool upstream_attached;

    int relay_stop_fd, relay_done_fd, signal_fd;
    pthread_t relay_thread;
    bool relay_started;
    int relay_result;
    struct tls_relay_stats relay_stats;
};

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- client handshake ------------------------------------------------------------ */

static int client_flush(struct session *s, uint64_t deadline)
{
    const uint8_t *data;
    size_t n = vencrypt_output(s->v, &data);
    if (n == 0)
        return 0;
    int r = s->tls ? tls_conn_write_full(s->tls, data, n, deadline)
                   : fd_write_full(s->client_fd, data, n, deadline);
    vencrypt_output_consumed(s->v, n);
    return r;
}

/* Runs the handshake up to the credentials. Logs its own failures (once). */
static int client_handshake(struct session *s, uint64_t login_deadline)
{
    uint8_t buf[PROTO_MAX_USERNAME + PROTO_MAX_PASSWORD];
    int event = VENCRYPT_EVENT_NONE;

    for (;;) {
        /* Each pre-authentication step has its own deadline; the credentials (the user
         * may be typing) only the overall login deadline. */
        uint64_t deadline =
            s->tls ? login_deadline
                   : min_u64(now_ms() + (uint64_t)s->o->handshake_timeout_s * 1000, login_deadline);
        const char *step = vencrypt_state_name(s->v);
        int r = client_flush(s, deadline);
        if (r < 0)
            return log_errno(LOG_LEVEL_INFO, r, "Client write failed client=%s step=%s", s->addr,
                             step);

        switch (event) {
        case VENCRYPT_EVENT_NONE:
            break;
        case VENCRYPT_EVENT_START_TLS:
            r = tls_conn_accept(s->creds, s->client_fd, s->o->tls_priority, deadline, &s->tls);
            if (r < 0)
                return log_errno(LOG_LEVEL_INFO, r, "TLS handshake failed client=%s", s->addr);
            s->client_fd = -1; /* the TLS connection owns it now */
            log_debug("TLS established client=%s", s->addr);
            event = VENCRYPT_EVENT_NONE;
            continue; /* re-evaluate the deadline: credentials come next */
        case VENCRYPT_EVENT_CREDENTIALS:
            return 0;
        case VENCRYPT_EVENT_FAILED:
            log_info("Handshake refused client=%s reason=\"%s\"", s->addr, vencrypt_failure(s->v));
            return -EPROTO;
        default:
            return log_error_errno(-EINVAL, "Unexpected handshake event %d client=%s", event,
                                   s->addr);
        }

        size_t want = vencrypt_bytes_wanted(s->v);
        if (want == 0 || want > sizeof(buf))
            return log_error_errno(-EINVAL, "Handshake wants %zu bytes client=%s", want, s->addr);
        r = s->tls ? tls_conn_read_full(s->tls, buf, want, deadline)
                   : fd_read_full(s->client_fd, buf, want, deadline);
        if (r < 0) {
            explicit_bzero(buf, sizeof(buf));
            if (r == -ETIMEDOUT)
                log_info("Client timed out client=%s step=%s", s->addr, step);
            else if (r == -EPIPE)
                log_info("Client closed the connection client=%s step=%s", s->addr, step);
            else
                log_errno(LOG_LEVEL_INFO, r, "Client read failed client=%s step=%s", s->addr, step);
            return r;
        }
        size_t consumed;
        event = vencrypt_feed(s->v, buf, want, &consumed);
        explicit_bzero(buf, sizeof(buf));
        if (event < 0)
            return log_error_errno(event, "Handshake state machine misused client=%s", s->addr);
    }
}

/* Sends the client its SecurityResult. Returns 0 or -errno (logged at info). */
static int client_verdict(struct session *s, bool ok, const char *reason)
{
    int r = vencrypt_verdict(s->v, ok, reason);
    if (r < 0)
        return r;
    uint64_t deadline = now_ms() + (uint64_t)s->o->handshake_timeout_s * 1000;
    r = client_flush(s, deadline);
    if (r < 0)
        log_errno(LOG_LEVEL_INFO, r, "Cannot send the login result client=%s user=%s", s->addr,
                  s->user);
    return r;
}

/* ---- broker ------------------------------------------------------------------------- */

static int broker_send_credentials(struct session *s)
{
    const char *user, *password;
    struct proto_message m;
    int r = vencrypt_credentials(s->v, &user, &password);
    if (r < 0)
        return r;

    proto_message_init(&m, PROTO_AUTH_REQUEST);
    r = proto_set_string(m.username, sizeof(m.username), user);
    if (r >= 0)
        r = proto_set_string(m.password, sizeof(m.password), password);
    if (r >= 0) {
        /* Only a valid name reaches the logs: a raw one may be a mistyped password or
         * forge key=value fields. The broker applies the same rule. */
        (void)proto_set_string(s->user, sizeof(s->user),
                               username_is_valid(user) ? user : "(invalid)");
        r = proto_send(s->o->control_fd, &m);
    }
    proto_message_done(&m); /* wipes the password copy */
    return r;
}

/* Waits for one broker message until the deadline. Returns 0, -ETIMEDOUT, -EPIPE, -EBADMSG,
 * or -errno. */
static int broker_recv(struct session *s, uint64_t deadline, struct proto_message *m)
{
    for (;;) {
        int r = fd_wait(s->o->control_fd, POLLIN, deadline);
        if (r < 0)
            return r;
        r = proto_recv(s->o->control_fd, PROTO_FROM_BROKER, m);
        if (r == -EAGAIN || r == -EINTR)
            continue;
        return r;
    }
}

/* Credentials -> broker -> SecurityResult. Returns an exit code; *logged_in tells whether
 * the client got SecurityResult ok. */
static int session_login(struct session *s, bool *logged_in)
{
    struct proto_message m;
    int r = broker_send_credentials(s);
    if (r < 0) {
        log_error_errno(r, "Cannot send the login request to the broker client=%s", s->addr);
        (void)client_verdict(s, false, "Service unavailable");
        return SESSION_EXIT_BROKER;
    }
    log_info("Login requested client=%s user=%s", s->addr, s->user);

    proto_message_init(&m, PROTO_AUTH_RESULT);
    r = broker_recv(s, now_ms() + (uint64_t)s->o->login_timeout_s * 1000, &m);
    if (r < 0) {
        if (r == -EPIPE)
            log_error("Broker closed the control socket during login client=%s", s->addr);
        else
            log_errno(LOG_LEVEL_ERROR, r, "No login result from the broker client=%s", s->addr);
        (void)client_verdict(s, false, "Service unavailable");
        return SESSION_EXIT_BROKER;
    }

    int ret;
    switch (m.type) {
    case PROTO_AUTH_RESULT:
        if (m.ok) {
            r = client_verdict(s, true, NULL);
            if (r >= 0)
                log_info("Login ok client=%s user=%s", s->addr, s->user);
            *logged_in = r >= 0;
            ret = r < 0 ? SESSION_EXIT_CLIENT : SESSION_EXIT_OK;
        } else {
            log_info("Login refused client=%s user=%s reason=\"%s\"", s->addr, s->user, m.text);
            (void)client_verdict(s, false, m.text[0] ? m.text : "Authentication failed");
            ret = SESSION_EXIT_AUTH_FAILED;
        }
        break;
    case PROTO_CLOSE:
        log_info("Broker closed the session during login client=%s user=%s reason=\"%s\"", s->addr,
                 s->user, m.text);
        (void)client_verdict(s, false, m.text[0] ? m.text : "Session closed");
        ret = SESSION_EXIT_OK;
        break;
    default:
        log_error("Broker protocol violation: %s before the login result client=%s",
                  proto_type_name(m.type), s->addr);
        (void)client_verdict(s, false, "Internal server error");
        ret = SESSION_EXIT_BROKER;
        break;
    }
    proto_message_done(&m);
    return ret;
}

/* ---- relay thread ------------------------------------------------------------------ */

static void *relay_main(void *userdata)
{
    struct session *s = userdata;
    s->relay_result = tls_relay_run(s->tls, s->proxy_fd, s->relay_stop_fd, RELAY_WRITE_TIMEOUT_MS,
                                    &s->relay_stats);
    (void)eventfd_write(s->relay_done_fd, 1);
    return NULL;
}

static int relay_start(struct session *s)
{
    s->relay_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->relay_done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->relay_stop_fd < 0 || s->relay_done_fd < 0)
        return -errno;
    int r = pthread_create(&s->relay_thread, NULL, relay_main, s);
    if (r != 0)
        return -r;
    (void)pthread_setname_np(s->relay_thread, "relay");
    s->relay_started = true;
    return 0;
}

static void relay_stop(struct session *s)
{
    if (!s->relay_started)
        return;
    (void)eventfd_write(s->relay_stop_fd, 1);
    pthread_join(s->relay_thread, NULL);
    s->relay_started = false;
}

/* ---- the running session ----------------------------------------------------------- */

static int signals_block(struct session *s)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    int r = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (r != 0)
        return -r;
    s->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return s->signal_fd < 0 ? -errno : 0;
}

enum loop_fd { FD_CONTROL, FD_PROXY, FD_RELAY, FD_SIGNAL, FD_COUNT };

/* One broker message while the session runs. Returns < 0 (an exit code, negated) to end
 * at once, 0 to go on, 1 to linger (closing_code set) and then end. */
static int handle_broker_message(struct session *s, struct proto_message *m, int *closing_code)
{
    int r;
    switch (m->type) {
    case PROTO_DESKTOP_STATUS:
        log_info("Desktop status client=%s user=%s status=\"%s\"", s->addr, s->user, m->text);
        r = proxy_show_status(s->proxy, m->text);
        if (r < 0)
            log_warning_errno(r, "Cannot show the status client=%s", s->addr);
        return 0;
    case PROTO_DESKTOP_READY:
        if (s->upstream_attached) {
            log_error("Broker protocol violation: second DESKTOP_READY client=%s", s->addr);
            return -SESSION_EXIT_BROKER;
        }
        s->upstream_attached = true;
        r = proxy_attach_upstream(s->proxy, TAKE_FD(m->fd));
        if (r < 0) {
            log_error_errno(r, "Cannot attach the desktop client=%s user=%s desktop=%s", s->addr,
                            s->user, m->text);
            (void)proxy_show_status(s->proxy, "Your desktop could not be displayed.");
            *closing_code = SESSION_EXIT_DESKTOP;
            return 1;
        }
        log_info("Desktop attached client=%s user=%s desktop=%s", s->addr, s->user, m->text);
        return 0;
    case PROTO_CLOSE:
        log_info("Broker closed the session client=%s user=%s reason=\"%s\"", s->addr, s->user,
                 m->text);
        (void)proxy_show_status(s->proxy, m->text[0] ? m->text : "Session closed.");
        *closing_code = SESSION_EXIT_OK;
        return 1;
    default:
        log_error("Broker protocol violation: %s after login client=%s", proto_type_name(m->type),
                  s->addr);
        return -SESSION_EXIT_BROKER;
    }
}

static int session_loop(struct session *s)
{
    uint64_t linger_until = 0; /* set once the session is closing */
    int closing_code = SESSION_EXIT_OK;

    for (;;) {
        struct pollfd p[FD_COUNT] = {
            [FD_CONTROL] = {.fd = linger_until ? -1 : s->o->control_fd, .events = POLLIN},
            [FD_PROXY] = {.fd = proxy_event_fd(s->proxy), .events = POLLIN},
            [FD_RELAY] = {.fd = s->relay_done_fd, .events = POLLIN},
            [FD_SIGNAL] = {.fd = s->signal_fd, .events = POLLIN},
        };
        int timeout = linger_until ? deadline_left_ms(linger_until) : -1;
        if (linger_until && timeout == 0)
            return closing_code;
        int n = poll(p, FD_COUNT, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_error_errno(-errno, "poll failed client=%s", s->addr);
            return SESSION_EXIT_SETUP;
        }

        if (p[FD_SIGNAL].revents) {
            struct signalfd_siginfo si;
            if (read(s->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                log_info("Signal %u, ending session client=%s user=%s", si.ssi_signo, s->addr,
                         s->user);
                return SESSION_EXIT_OK;
            }
        }
        if (p[FD_RELAY].revents) {
            int r = s->relay_result;
            if (r < 0 && r != -ECONNRESET && r != -EPIPE) {
                log_errno(LOG_LEVEL_INFO, r, "Client connection failed client=%s user=%s", s->addr,
                          s->user);
                return linger_until ? closing_code : SESSION_EXIT_CLIENT;
            }
            log_info("Client disconnected client=%s user=%s bytes_in=%" PRIu64
                     " bytes_out=%" PRIu64,
                     s->addr, s->user, s->relay_stats.bytes_from_tls, s->relay_stats.bytes_to_tls);
            return linger_until ? closing_code : SESSION_EXIT_OK;
        }
        if (p[FD_PROXY].revents) {
            log_info("Desktop session ended client=%s user=%s reason=\"%s\"", s->addr, s->user,
                     proxy_end_reason(s->proxy));
            return linger_until ? closing_code : SESSION_EXIT_OK;
        }
        if (p[FD_CONTROL].revents) {
            struct proto_message m;
            proto_message_init(&m, PROTO_CLOSE);
            int r = proto_recv(s->o->control_fd, PROTO_FROM_BROKER, &m);
            if (r == -EAGAIN || r == -EINTR)
                continue;
            if (r == -EPIPE) {
                log_info("Broker closed the control socket client=%s user=%s", s->addr, s->user);
                return SESSION_EXIT_OK;
            }
            if (r < 0) {
                log_error_errno(r, "Bad message from the broker client=%s", s->addr);
                return SESSION_EXIT_BROKER;
            }
            r = handle_broker_message(s, &m, &closing_code);
            proto_message_done(&m);
            if (r < 0)
                return -r;
            if (r > 0)
                linger_until = now_ms() + CLOSE_LINGER_MS;
        }
    }
}

static int session_start_desktop(struct session *s)
{
    struct proxy_options po = {
        .width = s->o->status_width,
        .height = s->o->status_height,
        .desktop_name = "vdi",
        .client_write_timeout_ms = PROXY_WRITE_TIMEOUT_MS,
    };
    int r = signals_block(s);
    if (r < 0) {
        log_error_errno(r, "Cannot set up signal handling client=%s", s->addr);
        return SESSION_EXIT_SETUP;
    }
    r = proxy_new(&po, &s->proxy, &s->proxy_fd);
    if (r < 0) {
        log_error_errno(r, "Cannot start the RFB proxy client=%s", s->addr);
        return SESSION_EXIT_DESKTOP;
    }
    r = proxy_show_status(s->proxy, "Starting your desktop...");
    if (r < 0)
        log_warning_errno(r, "Cannot show the status client=%s", s->addr);
    r = relay_start(s);
    if (r < 0) {
        log_error_errno(r, "Cannot start the relay thread client=%s", s->addr);
        return SESSION_EXIT_SETUP;
    }
    return session_loop(s);
}

int session_run(const struct session_options *o, struct tls_server_credentials *creds)
{
    struct session s = {
        .o = o,
        .creds = creds,
        .addr = o->client_address,
        .client_fd = o->client_fd,
        .proxy_fd = -1,
        .relay_stop_fd = -1,
        .relay_done_fd = -1,
        .signal_fd = -1,
    };
    int ret;
    uint64_t login_deadline = now_ms() + (uint64_t)o->login_timeout_s * 1000;

    log_info("Connection client=%s", s.addr);
    int r = vencrypt_new(&s.v);
    if (r < 0) {
        log_error_errno(r, "Cannot start the handshake client=%s", s.addr);
        ret = SESSION_EXIT_SETUP;
        goto out;
    }
    r = client_handshake(&s, login_deadline);
    if (r < 0) {
        ret = SESSION_EXIT_CLIENT;
        goto out;
    }
    bool logged_in = false;
    ret = session_login(&s, &logged_in);
    vencrypt_free(TAKE_PTR(s.v)); /* wipes whatever is left of the credentials */
    if (!logged_in)
        goto out;
    ret = session_start_desktop(&s);

out:
    relay_stop(&s);
    safe_close(s.proxy_fd);
    proxy_free(s.proxy);
    tls_conn_free(s.tls);
    vencrypt_free(s.v);
    safe_close(s.client_fd);
    safe_close(s.relay_stop_fd);
    safe_close(s.relay_done_fd);
    safe_close(s.signal_fd);
    safe_close(o->control_fd);
    log_info("Session ended client=%s user=%s exit=%d", s.addr, s.user[0] ? s.user : "-", ret);
    return ret;
}
