/* One client connection: handshake, login through the broker, relay to the RFB proxy. */
#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "log.h"
#include "net.h"
#include "proto.h"
#include "proxy.h"
#include "reasons.h"
#include "tls.h"
#include "util.h"
#include "vencrypt.h"

#define RELAY_WRITE_TIMEOUT_MS 30000 /* a client (or proxy) that takes nothing this long */
#define PROXY_WRITE_TIMEOUT_MS 30000
#define CLOSE_LINGER_MS 2500 /* how long a CLOSE reason stays on the status screen */
/* Re-attaching to a restarted broker: attempts after 0, 1, 2, 4, 5, 5 ... s, each waiting
 * this long for REATTACH_RESULT. */
#define REATTACH_FIRST_DELAY_MS 1000
#define REATTACH_MAX_DELAY_MS 5000
#define REATTACH_REPLY_TIMEOUT_MS 5000
/* The VM's display went away: how long "connection lost" stays up waiting for the broker's
 * CLOSE with the reason (it learns from libvirt why the desktop stopped). */
#define DESKTOP_LOST_WAIT_MS 5000
#define REATTACH_GIVE_UP_TEXT "The desktop server is not available; please log in again"
#define REATTACH_REFUSED_TEXT "Your session could not be resumed; please log in again"

struct session {
    const struct session_options *o;
    struct tls_server_credentials *creds;
    const char *addr;

    int client_fd; /* until the TLS connection owns it */
    struct tls_conn *tls;
    struct vencrypt *v;
    char user[PROTO_MAX_USERNAME + 1]; /* for logs, once the client named it */

    int control_fd; /* the broker's control socket; -1 while re-attaching */

    struct proxy *proxy;
    int proxy_fd;
    bool upstream_attached;          /* DESKTOP_READY arrived */
    bool desktop_live;               /* ... and its display was attached */
    uint64_t attached_ms;            /* when; the idle time before any input counts from here */
    uint64_t conn_id;                /* from DESKTOP_READY, for REATTACH */
    char token[PROTO_TOKEN_LEN + 1]; /* likewise; never logged, wiped at exit */
    bool view_only;

    /* ACTIVITY: the next periodic one, and the idle time the broker last heard. */
    uint64_t activity_next_ms;
    uint32_t idle_reported_ms;

    /* Re-attaching after the control socket closed (README "Re-attach"). */
    bool reattaching;
    int reattach_fd;            /* REATTACH sent, waiting for the result; else -1 */
    uint64_t reattach_until_ms; /* end of the window */
    uint64_t reattach_next_ms;  /* next connect attempt */
    uint64_t reattach_reply_ms; /* deadline for REATTACH_RESULT */
    int reattach_delay_ms;
    unsigned reattach_attempts;

    /* Closing: the reason is on the status screen until linger_until, then exit. */
    uint64_t linger_until;
    int closing_code;
    bool awaiting_close; /* ... the VM's display was lost: a CLOSE may still come */
    bool lost_seen;      /* that proxy event was handled (its fd stays readable) */

    int relay_stop_fd, relay_done_fd, signal_fd;
    pthread_t relay_thread;
    bool relay_started;
    int relay_result;
    /* Written by the relay thread; read with atomic loads for ACTIVITY. */
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
        /* Only a valid login (user, user@pool, user@?, admin@#ID) reaches the logs: a
         * raw one may be a mistyped password or forge key=value fields. The broker
         * applies the same rule. */
        (void)proto_set_string(s->user, sizeof(s->user), login_is_valid(user) ? user : "(invalid)");
        r = proto_send(s->control_fd, &m);
    }
    proto_message_done(&m); /* wipes the password copy */
    return r;
}

/* Waits for one broker message until the deadline. Returns 0, -ETIMEDOUT, -EPIPE, -EBADMSG,
 * or -errno. */
static int broker_recv(struct session *s, uint64_t deadline, struct proto_message *m)
{
    for (;;) {
        int r = fd_wait(s->control_fd, POLLIN, deadline);
        if (r < 0)
            return r;
        r = proto_recv(s->control_fd, PROTO_FROM_BROKER, m);
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
            (void)client_verdict(s, false, m.text[0] ? m.text : REASON_AUTH_FAILED);
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

/* Shows text on the status screen (the VM's picture is no longer forwarded), then the loop
 * ends with code after CLOSE_LINGER_MS (or earlier, when the client leaves). */
static void session_close(struct session *s, const char *text, int code)
{
    int r = proxy_close_desktop(s->proxy, text);
    if (r < 0)
        log_warning_errno(r, "Cannot show the reason client=%s", s->addr);
    s->reattach_fd = safe_close(s->reattach_fd);
    s->reattaching = false;
    s->awaiting_close = false;
    s->linger_until = now_ms() + CLOSE_LINGER_MS;
    s->closing_code = code;
}

/* The VM's display went away while the client is still there. With a broker to hear
 * from, wait a moment for its CLOSE (the reason, e.g. "Your desktop was shut down", then
 * replaces "The connection to your desktop was lost."). Returns true when waiting. */
static bool desktop_lost(struct session *s)
{
    log_info("Desktop display lost client=%s user=%s reason=\"%s\"%s", s->addr, s->user,
             proxy_end_reason(s->proxy),
             s->control_fd >= 0 ? ", waiting for the broker's reason" : "");
    s->desktop_live = false;
    if (s->control_fd < 0)
        return false;
    s->lost_seen = true;
    s->awaiting_close = true;
    s->linger_until = now_ms() + DESKTOP_LOST_WAIT_MS;
    s->closing_code = SESSION_EXIT_OK;
    return true;
}

/* ---- ACTIVITY ------------------------------------------------------------------------ */

/* Sends ACTIVITY now and schedules the next one. Returns 0 (also when the socket is full:
 * this one is skipped) or -errno (the control socket is gone). */
static int activity_send(struct session *s)
{
    uint64_t now = now_ms();
    uint64_t last = proxy_last_input_ms(s->proxy);
    uint64_t since = last > s->attached_ms ? last : s->attached_ms;
    uint64_t idle = now > since ? now - since : 0;
    struct proto_message m;

    proto_message_init(&m, PROTO_ACTIVITY);
    m.idle_ms = idle > UINT32_MAX ? UINT32_MAX : (uint32_t)idle;
    m.bytes_to_client = __atomic_load_n(&s->relay_stats.bytes_to_tls, __ATOMIC_RELAXED);
    m.bytes_from_client = __atomic_load_n(&s->relay_stats.bytes_from_tls, __ATOMIC_RELAXED);
    s->activity_next_ms = now + PROTO_ACTIVITY_INTERVAL_MS;
    int r = proto_send(s->control_fd, &m);
    if (r == -EAGAIN) {
        log_debug("Control socket full, ACTIVITY skipped client=%s", s->addr);
        return 0;
    }
    if (r < 0)
        return r;
    s->idle_reported_ms = m.idle_ms;
    log_debug("ACTIVITY client=%s idle_ms=%" PRIu32 " bytes_to_client=%" PRIu64
              " bytes_from_client=%" PRIu64,
              s->addr, m.idle_ms, m.bytes_to_client, m.bytes_from_client);
    return 0;
}

/* ---- re-attaching to a restarted broker --------------------------------------------- */

static bool reattach_possible(const struct session *s)
{
    return s->desktop_live && s->token[0] && s->o->broker_socket && s->o->broker_socket[0] &&
           s->o->reattach_timeout_s > 0;
}

/* The control socket closed (or failed) with error. Returns true when the session goes on
 * re-attaching, false when it ends (before DESKTOP_READY, or re-attach not configured). */
static bool control_lost(struct session *s, int error)
{
    s->control_fd = safe_close(s->control_fd);
    if (!reattach_possible(s)) {
        if (error == -EPIPE)
            log_info("Broker closed the control socket client=%s user=%s", s->addr, s->user);
        else
            log_errno(LOG_LEVEL_INFO, error, "Control socket failed client=%s user=%s", s->addr,
                      s->user);
        return false;
    }
    uint64_t now = now_ms();
    s->reattaching = true;
    s->reattach_until_ms = now + (uint64_t)s->o->reattach_timeout_s * 1000;
    s->reattach_next_ms = now; /* the first attempt at once */
    s->reattach_delay_ms = REATTACH_FIRST_DELAY_MS;
    s->reattach_attempts = 0;
    log_info("Control socket lost (%s), re-attaching client=%s user=%s connection=%" PRIu64
             " socket=@%s window_s=%d",
             strerror(-error), s->addr, s->user, s->conn_id, s->o->broker_socket,
             s->o->reattach_timeout_s);
    return true;
}

/* Connects to the broker's abstract socket, checks that it runs as the broker's uid and
 * sends REATTACH. Returns the fd, -EPERM for a listener under another uid (*peer_uid set),
 * or -errno. */
static int reattach_connect(struct session *s, uid_t *peer_uid)
{
    struct sockaddr_un sa;
    socklen_t sa_len;
    int r = net_abstract_address(s->o->broker_socket, &sa, &sa_len);
    if (r < 0)
        return r;

    _cleanup_(closep) int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sa_len) < 0)
        return -errno;
    struct ucred cred;
    socklen_t cred_len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0)
        return -errno;
    if (cred.uid != s->o->broker_uid) {
        *peer_uid = cred.uid;
        return -EPERM;
    }

    struct proto_message m;
    proto_message_init(&m, PROTO_REATTACH);
    m.id = s->conn_id;
    memcpy(m.token, s->token, sizeof(m.token));
    r = proto_send(fd, &m);
    proto_message_done(&m); /* wipes the token copy */
    if (r < 0)
        return r;
    return TAKE_FD(fd);
}

/* The attempt in progress failed: the next one after the current delay, which grows. */
static void reattach_retry_later(struct session *s)
{
    s->reattach_fd = safe_close(s->reattach_fd);
    s->reattach_next_ms = now_ms() + (uint64_t)s->reattach_delay_ms;
    s->reattach_delay_ms = s->reattach_delay_ms * 2 > REATTACH_MAX_DELAY_MS
                               ? REATTACH_MAX_DELAY_MS
                               : s->reattach_delay_ms * 2;
}

static void reattach_try(struct session *s)
{
    uid_t peer_uid = 0;
    s->reattach_attempts++;
    int r = reattach_connect(s, &peer_uid);
    if (r == -EPERM) {
        log_warning("Re-attach attempt %u: the listener on @%s runs as uid=%u, not the broker's "
                    "uid=%u; ignoring it client=%s",
                    s->reattach_attempts, s->o->broker_socket, (unsigned)peer_uid,
                    (unsigned)s->o->broker_uid, s->addr);
        reattach_retry_later(s);
        return;
    }
    if (r < 0) {
        log_info("Re-attach attempt %u failed: %s client=%s", s->reattach_attempts, strerror(-r),
                 s->addr);
        reattach_retry_later(s);
        return;
    }
    s->reattach_fd = r;
    s->reattach_reply_ms = now_ms() + REATTACH_REPLY_TIMEOUT_MS;
    log_info("Re-attach attempt %u: connected, REATTACH sent client=%s connection=%" PRIu64,
             s->reattach_attempts, s->addr, s->conn_id);
}

/* The re-attach socket is readable. */
static void reattach_answer(struct session *s)
{
    struct proto_message m;
    proto_message_init(&m, PROTO_REATTACH_RESULT);
    int r = proto_recv(s->reattach_fd, PROTO_FROM_BROKER, &m);
    if (r == -EAGAIN || r == -EINTR)
        return;
    if (r < 0 || m.type != PROTO_REATTACH_RESULT) {
        if (r == -EPIPE)
            log_info("Re-attach attempt %u: the broker closed the connection client=%s",
                     s->reattach_attempts, s->addr);
        else if (r < 0)
            log_errno(LOG_LEVEL_WARNING, r, "Re-attach attempt %u: bad answer client=%s",
                      s->reattach_attempts, s->addr);
        else
            log_warning("Re-attach attempt %u: %s instead of REATTACH_RESULT client=%s",
                        s->reattach_attempts, proto_type_name(m.type), s->addr);
        proto_message_done(&m);
        reattach_retry_later(s);
        return;
    }
    if (!m.ok) {
        log_info("Re-attach refused client=%s user=%s connection=%" PRIu64 " reason=\"%s\"",
                 s->addr, s->user, s->conn_id, m.text);
        session_close(s, m.text[0] ? m.text : REATTACH_REFUSED_TEXT, SESSION_EXIT_OK);
        proto_message_done(&m);
        return;
    }
    proto_message_done(&m);
    s->control_fd = TAKE_FD(s->reattach_fd);
    s->reattaching = false;
    s->activity_next_ms = now_ms(); /* tell the new broker at once */
    log_info("Re-attached to the broker client=%s user=%s connection=%" PRIu64 " attempts=%u",
             s->addr, s->user, s->conn_id, s->reattach_attempts);
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

static int handle_desktop_ready(struct session *s, struct proto_message *m)
{
    if (s->upstream_attached) {
        log_error("Broker protocol violation: second DESKTOP_READY client=%s", s->addr);
        return -SESSION_EXIT_BROKER;
    }
    s->upstream_attached = true;
    s->conn_id = m->id;
    memcpy(s->token, m->token, sizeof(s->token));
    s->view_only = (m->flags & PROTO_FLAG_VIEW_ONLY) != 0;
    proxy_set_view_only(s->proxy, s->view_only); /* before any input can reach the VM */
    int r = proxy_attach_upstream(s->proxy, TAKE_FD(m->fd));
    if (r < 0) {
        log_error_errno(r, "Cannot attach the desktop client=%s user=%s desktop=%s", s->addr,
                        s->user, m->text);
        (void)proxy_show_status(s->proxy, "Your desktop could not be displayed.");
        s->linger_until = now_ms() + CLOSE_LINGER_MS;
        s->closing_code = SESSION_EXIT_DESKTOP;
        return 0;
    }
    s->desktop_live = true;
    s->attached_ms = now_ms();
    s->activity_next_ms = s->attached_ms + PROTO_ACTIVITY_INTERVAL_MS;
    s->idle_reported_ms = 0;
    log_info("Desktop attached client=%s user=%s desktop=%s connection=%" PRIu64 " view_only=%s",
             s->addr, s->user, m->text, s->conn_id, s->view_only ? "yes" : "no");
    return 0;
}

/* One broker message while the session runs. Returns 0 to go on (s->linger_until set:
 * closing), or a negated exit code to end at once. */
static int handle_broker_message(struct session *s, struct proto_message *m)
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
        return handle_desktop_ready(s, m);
    case PROTO_NOTICE:
        if (!s->upstream_attached) {
            log_error("Broker protocol violation: NOTICE before DESKTOP_READY client=%s", s->addr);
            return -SESSION_EXIT_BROKER;
        }
        if (m->text[0])
            log_info("Notice shown client=%s user=%s text=\"%s\"", s->addr, s->user, m->text);
        else
            log_info("Notice removed client=%s user=%s", s->addr, s->user);
        r = proxy_show_notice(s->proxy, m->text);
        if (r < 0)
            log_warning_errno(r, "Cannot show the notice client=%s", s->addr);
        return 0;
    case PROTO_CLOSE:
        log_info("Broker closed the session client=%s user=%s reason=\"%s\"", s->addr, s->user,
                 m->text);
        session_close(s, m->text[0] ? m->text : "Session closed.", SESSION_EXIT_OK);
        return 0;
    default:
        log_error("Broker protocol violation: %s after login client=%s", proto_type_name(m->type),
                  s->addr);
        return -SESSION_EXIT_BROKER;
    }
}

/* The control socket is readable. Returns like handle_broker_message, or 1 when the
 * socket is gone and the session ends normally. */
static int control_readable(struct session *s)
{
    struct proto_message m;
    proto_message_init(&m, PROTO_CLOSE);
    int r = proto_recv(s->control_fd, PROTO_FROM_BROKER, &m);
    if (r == -EAGAIN || r == -EINTR)
        return 0;
    if (r == -EPIPE || r == -ECONNRESET)
        return control_lost(s, r) ? 0 : 1;
    if (r < 0) {
        log_error_errno(r, "Bad message from the broker client=%s", s->addr);
        return -SESSION_EXIT_BROKER;
    }
    r = handle_broker_message(s, &m);
    proto_message_done(&m);
    return r;
}

/* Runs the timers that are due. Returns 0 to go on, 1 when the session ends normally. */
static int session_timers(struct session *s, uint64_t now)
{
    if (s->linger_until)
        return 0;
    if (s->reattaching) {
        if (s->reattach_fd >= 0 && now >= s->reattach_reply_ms) {
            log_warning("Re-attach attempt %u: no answer within %d ms client=%s",
                        s->reattach_attempts, REATTACH_REPLY_TIMEOUT_MS, s->addr);
            reattach_retry_later(s);
        }
        if (s->reattach_fd < 0 && now >= s->reattach_until_ms) {
            log_warning("Re-attach window over after %u attempts, ending client=%s user=%s "
                        "connection=%" PRIu64,
                        s->reattach_attempts, s->addr, s->user, s->conn_id);
            session_close(s, REATTACH_GIVE_UP_TEXT, SESSION_EXIT_BROKER);
            return 0;
        }
        if (s->reattach_fd < 0 && now >= s->reattach_next_ms)
            reattach_try(s);
        return 0;
    }
    if (s->desktop_live && s->control_fd >= 0 && now >= s->activity_next_ms) {
        int r = activity_send(s);
        if (r < 0 && !control_lost(s, r))
            return 1;
    }
    return 0;
}

/* poll() timeout until the next timer. */
static int session_next_timeout(const struct session *s, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    if (s->linger_until)
        next = s->linger_until;
    else if (s->reattaching)
        next = s->reattach_fd >= 0 ? s->reattach_reply_ms
                                   : min_u64(s->reattach_next_ms, s->reattach_until_ms);
    else if (s->desktop_live && s->control_fd >= 0)
        next = s->activity_next_ms;
    if (next == UINT64_MAX)
        return -1;
    return next > now ? deadline_left_ms(next) : 0;
}

/* Client input after a quiet spell: when the broker last heard "idle for at least an
 * interval", tell it at once (its idle warning clears without waiting for the next one). */
static int input_woke(struct session *s)
{
    uint64_t v;
    (void)!read(proxy_input_fd(s->proxy), &v, sizeof(v));
    if (s->linger_until || !s->desktop_live || s->control_fd < 0 ||
        s->idle_reported_ms < PROTO_ACTIVITY_INTERVAL_MS)
        return 0;
    int r = activity_send(s);
    if (r < 0 && !control_lost(s, r))
        return 1;
    return 0;
}

enum loop_fd { FD_CONTROL, FD_REATTACH, FD_PROXY, FD_INPUT, FD_RELAY, FD_SIGNAL, FD_COUNT };

static int session_loop(struct session *s)
{
    int r = fd_set_nonblock(s->control_fd, true); /* a stuck broker never blocks the loop */
    if (r < 0) {
        log_error_errno(r, "Cannot set up the control socket client=%s", s->addr);
        return SESSION_EXIT_SETUP;
    }

    for (;;) {
        uint64_t now = now_ms();
        if (s->linger_until && now >= s->linger_until)
            return s->closing_code;
        if (session_timers(s, now) > 0)
            return SESSION_EXIT_OK;

        bool closing = s->linger_until != 0;
        struct pollfd p[FD_COUNT] = {
            [FD_CONTROL] = {.fd = closing && !s->awaiting_close ? -1 : s->control_fd,
                            .events = POLLIN},
            [FD_REATTACH] = {.fd = closing ? -1 : s->reattach_fd, .events = POLLIN},
            [FD_PROXY] = {.fd = s->lost_seen ? -1 : proxy_event_fd(s->proxy), .events = POLLIN},
            [FD_INPUT] = {.fd = proxy_input_fd(s->proxy), .events = POLLIN},
            [FD_RELAY] = {.fd = s->relay_done_fd, .events = POLLIN},
            [FD_SIGNAL] = {.fd = s->signal_fd, .events = POLLIN},
        };
        int n = poll(p, FD_COUNT, session_next_timeout(s, now_ms()));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_error_errno(-errno, "poll failed client=%s", s->addr);
            return SESSION_EXIT_SETUP;
        }
        if (n == 0)
            continue;

        if (p[FD_SIGNAL].revents) {
            struct signalfd_siginfo si;
            if (read(s->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                log_info("Signal %u, ending session client=%s user=%s", si.ssi_signo, s->addr,
                         s->user);
                return SESSION_EXIT_OK;
            }
        }
        if (p[FD_RELAY].revents) {
            r = s->relay_result;
            if (r < 0 && r != -ECONNRESET && r != -EPIPE) {
                log_errno(LOG_LEVEL_INFO, r, "Client connection failed client=%s user=%s", s->addr,
                          s->user);
                return s->linger_until ? s->closing_code : SESSION_EXIT_CLIENT;
            }
            log_info("Client disconnected client=%s user=%s bytes_in=%" PRIu64
                     " bytes_out=%" PRIu64,
                     s->addr, s->user, s->relay_stats.bytes_from_tls, s->relay_stats.bytes_to_tls);
            return s->linger_until ? s->closing_code : SESSION_EXIT_OK;
        }
        if (p[FD_PROXY].revents) {
            if (!s->linger_until && proxy_desktop_lost(s->proxy) && desktop_lost(s))
                continue;
            log_info("Desktop session ended client=%s user=%s reason=\"%s\"", s->addr, s->user,
                     proxy_end_reason(s->proxy));
            return s->linger_until ? s->closing_code : SESSION_EXIT_OK;
        }
        if (p[FD_INPUT].revents && input_woke(s) > 0)
            return SESSION_EXIT_OK;
        if (p[FD_REATTACH].revents && s->reattach_fd >= 0)
            reattach_answer(s);
        if (p[FD_CONTROL].revents && s->control_fd >= 0) {
            r = control_readable(s);
            if (r < 0)
                return -r;
            if (r > 0)
                return SESSION_EXIT_OK;
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
        .input_wake_ms = PROTO_ACTIVITY_INTERVAL_MS,
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
        .control_fd = o->control_fd,
        .reattach_fd = -1,
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
    safe_close(s.control_fd);
    safe_close(s.reattach_fd);
    explicit_bzero(s.token, sizeof(s.token));
    log_info("Session ended client=%s user=%s exit=%d", s.addr, s.user[0] ? s.user : "-", ret);
    return ret;
}
