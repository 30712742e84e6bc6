/* The broker's event loop and control protocol handling (broker.h). */
#include "broker.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "auth.h"
#include "listener.h"
#include "log.h"
#include "proto.h"
#include "session.h"
#include "util.h"
#include "workers.h"

#define BROKER_MARGIN_MS 5000      /* on top of the session's own login deadline */
#define BROKER_CLOSE_GRACE_MS 5000 /* a session told to close has this long to exit */
#define BROKER_ACCEPT_BACKOFF_MS 200
#define BROKER_ACCEPT_BURST 64
#define BROKER_LOG_INTERVAL_MS 1000

#define TEXT_AUTH_FAILED "Authentication failed"
#define TEXT_BUSY "The server is busy checking other logins, please try again in a moment"
#define TEXT_AUTH_TIMEOUT "Authentication took too long"
#define TEXT_STARTING "Starting your desktop..."
#define TEXT_DESKTOP_FAILED "Your desktop could not be started: "
#define TEXT_DISCONNECTED "Your session was disconnected by an administrator"
#define BROKER_INBOX_WAIT_MS 5000
#define TEXT_SHUTDOWN "The server is shutting down"
#define TEXT_INTERNAL "Internal server error"

struct loop {
    const struct broker_context *ctx;
    const struct broker_config *cfg;
    struct session_registry *sessions;
    /* Two pools, so that slow or stuck libvirt calls never hold up PAM checks and a
     * flood of PAM checks never holds up a desktop start. */
    struct workers *auth_workers;
    struct workers *desktop_workers;
    bool listening;
    bool stopping;
    uint64_t accept_paused_until;
    uint64_t refused_logged_ms;
    unsigned refused_suppressed;
    bool maintaining;             /* a JOB_MAINTAIN is queued or running */
    uint64_t maintain_due_ms;     /* next spare check */
};

enum job_kind {
    JOB_AUTH,        /* PAM check */
    JOB_DESKTOP,     /* claim, start and open a desktop */
    JOB_SESSION_END, /* a client left its desktop: logoff action */
    JOB_MAINTAIN,    /* spare desktops */
};

struct job {
    struct loop *loop;
    enum job_kind kind;
    uint64_t session_id;
    char user[SESSION_MAX_USER + 1];
    char pool[SESSION_MAX_NAME + 1];
    char address[SESSION_MAX_ADDRESS];
    char *password; /* JOB_AUTH; wiped */
    int result;
    char detail[768];    /* for the log */
    char user_text[256]; /* failure text for the user (entitlement, desktop) */
    bool entitlement_failed;
    /* JOB_DESKTOP */
    char desktop[SESSION_MAX_NAME + 1];
    int display_fd;
};

static void job_free(struct job *j)
{
    if (!j)
        return;
    secret_free(j->password);
    safe_close(j->display_fd);
    explicit_bzero(j, sizeof(*j));
    free(j);
}

static struct job *job_new(struct loop *l, enum job_kind kind, const struct session *s)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    *j = (struct job){.loop = l, .kind = kind, .display_fd = -1};
    if (s) {
        j->session_id = s->id;
        strcpy(j->user, s->user);
        strcpy(j->pool, s->pool);
        strcpy(j->address, s->address);
    }
    return j;
}

/* ---- sessions ---- */

static void session_kill(struct loop *l, struct session *s, const char *why)
{
    if (s->pid > 0) {
        log_warning("session=%" PRIu64 " user=%s client=%s %s, killed", s->id,
                    s->user[0] ? s->user : "-", s->address, why);
        kill(s->pid, SIGKILL);
    }
    session_close_control(s);
    (void)session_set_state(s, SESSION_CLOSING);
    s->deadline_ms = 0;
    (void)l;
}

static void protocol_violation(struct loop *l, struct session *s, const char *what)
{
    log_warning("session=%" PRIu64 " protocol violation client=%s state=%s: %s", s->id, s->address,
                session_state_to_string(s->state), what);
    session_kill(l, s, "protocol violation");
}

/* Sends m; a session that cannot take a message is killed. Returns 0 or -errno. */
static int session_send(struct loop *l, struct session *s, struct proto_message *m)
{
    int r;

    if (s->control_fd < 0)
        return -ENOTCONN;
    r = proto_send(s->control_fd, m);
    if (r < 0) {
        log_warning("session=%" PRIu64 " cannot send %s: %s", s->id, proto_type_name(m->type),
                    strerror(-r));
        session_kill(l, s, "control socket failed");
    }
    return r;
}

/* The session is done as far as the broker is concerned: optionally one last message,
 * then close the control socket and give the process a grace period to exit. */
static void session_finish(struct loop *l, struct session *s, struct proto_message *last)
{
    if (last && session_send(l, s, last) < 0)
        return; /* killed */
    session_close_control(s);
    (void)session_set_state(s, SESSION_CLOSING);
    s->deadline_ms = s->pid > 0 ? now_ms() + BROKER_CLOSE_GRACE_MS : 0;
}

static void session_finish_close(struct loop *l, struct session *s, const char *prefix,
                                 const char *text)
{
    struct proto_message m;

    proto_message_init(&m, PROTO_CLOSE);
    snprintf(m.text, sizeof(m.text), "%s%s", prefix, text);
    session_finish(l, s, &m);
    proto_message_done(&m);
}

/* ---- jobs: run on worker threads ---- */

static void job_auth_run(void *userdata)
{
    struct job *j = userdata;
    struct auth_request req = {
        .service = j->loop->cfg->pam_service,
        .user = j->user,
        .password = j->password,
        .rhost = j->address,
    };

    j->result = auth_pam_check(&req, j->detail, sizeof(j->detail));
    secret_free(j->password);
    j->password = NULL;
    if (j->result == 0) {
        /* Entitlement now, so that the client hears "no desktop" as its login result. */
        struct pools_error err = {"", ""};
        char pool[STORE_NAME_MAX + 1];

        j->result = pools_choose(j->loop->ctx->pools, j->user, j->pool, pool, &err);
        if (j->result == 0)
            snprintf(j->pool, sizeof(j->pool), "%s", pool);
        else {
            j->entitlement_failed = true;
            snprintf(j->detail, sizeof(j->detail), "%s", err.log);
            snprintf(j->user_text, sizeof(j->user_text), "%s", err.text);
        }
    }
}

static void job_desktop_run(void *userdata)
{
    struct job *j = userdata;
    struct pools *pools = j->loop->ctx->pools;
    struct pools_error err = {"", ""};
    int r;

    r = pools_claim(pools, j->user, j->pool, j->desktop, sizeof(j->desktop), &err);
    if (r == 0)
        r = pools_open_display(pools, j->desktop, &j->display_fd, &err);
    if (r == 0)
        pools_session_begin(pools, j->session_id, j->user, j->desktop, j->address);
    j->result = r;
    snprintf(j->detail, sizeof(j->detail), "%s", err.log);
    snprintf(j->user_text, sizeof(j->user_text), "%s", err.text);
}

static void job_session_end_run(void *userdata)
{
    struct job *j = userdata;

    pools_session_end(j->loop->ctx->pools, j->session_id);
}

static void job_maintain_run(void *userdata)
{
    struct job *j = userdata;

    pools_maintain(j->loop->ctx->pools);
}

/* ---- jobs: completion on the loop thread ---- */

static int submit(struct loop *l, struct job *j);

static void desktop_begin(struct loop *l, struct session *s)
{
    struct proto_message m;
    struct job *j;

    proto_message_init(&m, PROTO_DESKTOP_STATUS);
    (void)proto_set_string(m.text, sizeof(m.text), TEXT_STARTING);
    if (session_send(l, s, &m) < 0)
        return;

    j = job_new(l, JOB_DESKTOP, s);
    s->deadline_ms = now_ms() + (uint64_t)l->cfg->desktop_start_timeout_s * 1000;
    if (!j || submit(l, j) < 0) {
        job_free(j);
        session_finish_close(l, s, TEXT_DESKTOP_FAILED, "the server is out of memory");
    }
}

/* The desktop's client count goes down (and its logoff action runs) off the loop. */
static void session_end_submit(struct loop *l, uint64_t session_id)
{
    struct job *j = job_new(l, JOB_SESSION_END, NULL);

    if (j)
        j->session_id = session_id;
    if (!j || submit(l, j) < 0) {
        log_error("session=%" PRIu64 " cannot queue its logoff", session_id);
        job_free(j);
    }
}

static void job_auth_done(struct loop *l, struct job *j, struct session *s)
{
    struct proto_message m;

    proto_message_init(&m, PROTO_AUTH_RESULT);
    pools_count_login(l->ctx->pools, j->result == 0);
    if (j->result < 0) {
        if (j->entitlement_failed)
            log_warning("login refused user=%s client=%s session=%" PRIu64 " reason=%s", j->user,
                        j->address, j->session_id, j->detail);
        else if (j->result == -EIO)
            log_error("login failed user=%s client=%s session=%" PRIu64 " reason=PAM error: %s",
                      j->user, j->address, j->session_id, j->detail);
        else
            log_warning("login failed user=%s client=%s session=%" PRIu64 " reason=%s", j->user,
                        j->address, j->session_id, j->detail[0] ? j->detail : strerror(-j->result));
        if (!s)
            return;
        m.ok = false;
        (void)proto_set_string(m.text, sizeof(m.text),
                               j->entitlement_failed ? j->user_text : TEXT_AUTH_FAILED);
        session_finish(l, s, &m);
        return;
    }
    if (!s || session_set_state(s, SESSION_AUTHENTICATED) < 0) {
        log_info("login ok user=%s client=%s session=%" PRIu64 " but the session is gone", j->user,
                 j->address, j->session_id);
        return;
    }
    strcpy(s->pool, j->pool); /* the pool pools_choose() settled on */
    log_info("login ok user=%s pool=%s client=%s session=%" PRIu64, j->user, j->pool, j->address,
             s->id);
    m.ok = true;
    if (session_send(l, s, &m) < 0)
        return;
    desktop_begin(l, s);
}

static void job_desktop_done(struct loop *l, struct job *j, struct session *s)
{
    struct proto_message m;

    if (j->result < 0) {
        log_error("desktop failed user=%s pool=%s session=%" PRIu64 " error=%s: %s", j->user,
                  j->pool[0] ? j->pool : "-", j->session_id, strerror(-j->result), j->detail);
        if (s)
            session_finish_close(l, s, "", j->user_text[0] ? j->user_text : TEXT_INTERNAL);
        return;
    }
    if (!s || session_set_state(s, SESSION_DESKTOP_READY) < 0) {
        log_info("session=%" PRIu64 " went away before its desktop %s was ready", j->session_id,
                 j->desktop);
        session_end_submit(l, j->session_id);
        return;
    }
    strcpy(s->desktop, j->desktop);
    proto_message_init(&m, PROTO_DESKTOP_READY);
    (void)proto_set_string(m.text, sizeof(m.text), j->desktop);
    m.fd = TAKE_FD(j->display_fd);
    if (session_send(l, s, &m) == 0) {
        s->deadline_ms = 0;
        log_info("desktop ready name=%s user=%s session=%" PRIu64, j->desktop, j->user, s->id);
    }
    proto_message_done(&m); /* closes the broker's copy of the display fd */
}

static void job_done(void *userdata, int status)
{
    struct job *j = userdata;
    struct loop *l = j->loop;
    struct session *s = NULL;

    if (j->kind == JOB_MAINTAIN)
        l->maintaining = false;
    if (j->kind == JOB_SESSION_END || j->kind == JOB_MAINTAIN) {
        job_free(j);
        return;
    }
    if (status == 0 && !l->stopping) {
        s = session_registry_find(l->sessions, j->session_id);
        /* A session that timed out or was killed meanwhile gets nothing more. */
        if (s && (s->state != (j->kind == JOB_AUTH ? SESSION_CHECKING : SESSION_AUTHENTICATED)))
            s = NULL;
        if (j->kind == JOB_AUTH)
            job_auth_done(l, j, s);
        else
            job_desktop_done(l, j, s);
    }
    job_free(j);
}

static int submit(struct loop *l, struct job *j)
{
    static void (*const run[])(void *) = {
        [JOB_AUTH] = job_auth_run,
        [JOB_DESKTOP] = job_desktop_run,
        [JOB_SESSION_END] = job_session_end_run,
        [JOB_MAINTAIN] = job_maintain_run,
    };

    return workers_submit(j->kind == JOB_AUTH ? l->auth_workers : l->desktop_workers,
                          run[j->kind], job_done, j);
}

/* ---- control messages ---- */

static void on_auth_request(struct loop *l, struct session *s, struct proto_message *m)
{
    char user[STORE_NAME_MAX + 1], pool[STORE_NAME_MAX + 1];
    struct job *j;

    /* "alice@eng" asks for pool eng: how a standard VNC client picks a pool. */
    if (pools_parse_login(m->username, user, pool) < 0) {
        struct proto_message reply;

        /* Never log the raw name: it may be a mistyped password or terminal junk. */
        log_warning("login failed user=(invalid) client=%s session=%" PRIu64
                    " reason=invalid user name",
                    s->address, s->id);
        proto_message_init(&reply, PROTO_AUTH_RESULT);
        (void)proto_set_string(reply.text, sizeof(reply.text), TEXT_AUTH_FAILED);
        (void)session_set_state(s, SESSION_CHECKING);
        session_finish(l, s, &reply);
        return;
    }
    if (session_set_state(s, SESSION_CHECKING) < 0 || session_set_user(s, user) < 0) {
        protocol_violation(l, s, "unexpected AUTH_REQUEST");
        return;
    }
    strcpy(s->pool, pool);
    s->deadline_ms = now_ms() + (uint64_t)l->cfg->login_timeout_s * 1000 + BROKER_MARGIN_MS;

    /* Bounded queue: PAM checks of connections that already gave up still run, so
     * without a cap a flood of bad logins would grow the queue without limit. */
    if (workers_pending(l->auth_workers) >= (size_t)l->cfg->max_unauthenticated) {
        struct proto_message reply;

        log_warning("login refused user=%s client=%s session=%" PRIu64
                    " reason=too many logins being checked",
                    s->user, s->address, s->id);
        proto_message_init(&reply, PROTO_AUTH_RESULT);
        (void)proto_set_string(reply.text, sizeof(reply.text), TEXT_BUSY);
        session_finish(l, s, &reply);
        return;
    }

    j = job_new(l, JOB_AUTH, s);
    if (j)
        j->password = strdup(m->password);
    if (!j || !j->password || submit(l, j) < 0) {
        log_error("session=%" PRIu64 " cannot queue PAM check", s->id);
        job_free(j);
        session_finish_close(l, s, "", TEXT_INTERNAL);
    }
}

static void on_control(struct loop *l, struct session *s, short revents)
{
    struct proto_message m;
    int r;

    proto_message_init(&m, PROTO_CLOSE);
    r = proto_recv(s->control_fd, PROTO_FROM_SESSION, &m);
    if (r == -EAGAIN && !(revents & (POLLHUP | POLLERR)))
        return;
    if (r == -EAGAIN || r == -EPIPE || r == -ECONNRESET) {
        log_debug("session=%" PRIu64 " closed its control socket state=%s", s->id,
                  session_state_to_string(s->state));
        session_close_control(s);
        if (s->state == SESSION_DESKTOP_READY)
            return; /* the session runs on without us */
        (void)session_set_state(s, SESSION_CLOSING);
        s->deadline_ms = s->pid > 0 ? now_ms() + BROKER_CLOSE_GRACE_MS : 0;
        return;
    }
    if (r < 0) {
        protocol_violation(l, s, strerror(-r));
        return;
    }
    if (s->state != SESSION_WAIT_AUTH || m.type != PROTO_AUTH_REQUEST)
        protocol_violation(l, s, proto_type_name(m.type));
    else
        on_auth_request(l, s, &m);
    proto_message_done(&m);
}

/* ---- accept ---- */

static void log_refused(struct loop *l, const char *address, const char *why)
{
    uint64_t now = now_ms();

    if (now - l->refused_logged_ms < BROKER_LOG_INTERVAL_MS && l->refused_logged_ms) {
        l->refused_suppressed++;
        return;
    }
    if (l->refused_suppressed)
        log_warning("connection refused client=%s reason=%s (and %u more not logged)", address, why,
                    l->refused_suppressed);
    else
        log_warning("connection refused client=%s reason=%s", address, why);
    l->refused_logged_ms = now;
    l->refused_suppressed = 0;
}

static void on_accept(struct loop *l)
{
    for (int i = 0; i < BROKER_ACCEPT_BURST; i++) {
        char address[LISTENER_ADDRESS_MAX];
        _cleanup_(closep) int fd = -1;
        _cleanup_(closep) int mine = -1;
        _cleanup_(closep) int theirs = -1;
        int sp[2];
        struct session *s;
        pid_t pid;
        int r;

        fd = listener_accept(l->ctx->listen_fd, address);
        if (fd == -EAGAIN)
            return;
        if (fd == -ECONNABORTED || fd == -EINTR || fd == -EPROTO)
            continue;
        if (fd < 0) {
            /* EMFILE, ENFILE, ENOBUFS: pause instead of spinning on a readable socket. */
            log_warning_errno(fd, "accept failed, pausing new connections");
            l->accept_paused_until = now_ms() + BROKER_ACCEPT_BACKOFF_MS;
            return;
        }

        if (session_registry_size(l->sessions) >= (size_t)l->cfg->max_sessions) {
            log_refused(l, address, "max_sessions reached");
            continue;
        }
        if (session_registry_count_unauthenticated(l->sessions) >=
            (size_t)l->cfg->max_unauthenticated) {
            log_refused(l, address, "max_unauthenticated reached");
            continue;
        }

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
            log_warning_errno(-errno, "socketpair failed client=%s", address);
            continue;
        }
        mine = sp[0];
        theirs = sp[1];
        r = fd_set_nonblock(mine, true);
        if (r < 0) {
            log_warning_errno(r, "cannot make control socket non-blocking client=%s", address);
            continue;
        }

        pid = spawn_session(l->ctx->spawn, address, fd, theirs);
        if (pid < 0) {
            log_error_errno(pid, "cannot start %s client=%s", l->ctx->spawn->program, address);
            continue;
        }
        r = session_registry_add(l->sessions, pid, mine, address, now_ms(), &s);
        if (r < 0) {
            log_error_errno(r, "cannot register session client=%s pid=%d", address, (int)pid);
            kill(pid, SIGKILL);
            /* reaped on SIGCHLD? no: not in the registry. Reap now, it is about to die. */
            waitpid(pid, NULL, 0);
            continue;
        }
        mine = -1; /* the registry owns it */
        s->deadline_ms = s->created_ms + (uint64_t)l->cfg->handshake_timeout_s * 1000 +
                         (uint64_t)l->cfg->login_timeout_s * 1000 + BROKER_MARGIN_MS;
        log_info("session=%" PRIu64 " client=%s pid=%d started", s->id, address, (int)pid);
    }
}

/* ---- requests from other threads ---- */

struct inbox_request {
    uint64_t session_id;
    char by[SESSION_MAX_USER + 1];
    int result;
    bool done;
    struct inbox_request *next;
};

struct broker_inbox {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int event_fd;
    bool closed;
    struct inbox_request *head;
};

int broker_inbox_new(struct broker_inbox **ret)
{
    struct broker_inbox *in = calloc(1, sizeof(*in));

    if (!in)
        return -ENOMEM;
    in->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (in->event_fd < 0) {
        free(in);
        return -errno;
    }
    pthread_mutex_init(&in->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&in->cond, &attr);
    pthread_condattr_destroy(&attr);
    *ret = in;
    return 0;
}

void broker_inbox_free(struct broker_inbox *in)
{
    if (!in)
        return;
    safe_close(in->event_fd);
    pthread_cond_destroy(&in->cond);
    pthread_mutex_destroy(&in->lock);
    free(in);
}

int broker_inbox_disconnect(void *userdata, uint64_t session_id, const char *by_admin)
{
    struct broker_inbox *in = userdata;
    struct inbox_request req = {.session_id = session_id};
    uint64_t one = 1;
    struct timespec until;
    int r;

    snprintf(req.by, sizeof(req.by), "%s", by_admin ? by_admin : "");
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += BROKER_INBOX_WAIT_MS / 1000;
    pthread_mutex_lock(&in->lock);
    if (in->closed) {
        pthread_mutex_unlock(&in->lock);
        return -ESHUTDOWN;
    }
    req.next = in->head;
    in->head = &req;
    (void)!write(in->event_fd, &one, sizeof(one));
    while (!req.done)
        if (pthread_cond_timedwait(&in->cond, &in->lock, &until) == ETIMEDOUT && !req.done) {
            /* Still queued: take it back (it lives on this stack). Taken by the loop:
             * it is being answered right now, wait for that. */
            for (struct inbox_request **q = &in->head; *q; q = &(*q)->next)
                if (*q == &req) {
                    *q = req.next;
                    req.done = true;
                    req.result = -ETIMEDOUT;
                    break;
                }
        }
    r = req.result;
    pthread_mutex_unlock(&in->lock);
    return r;
}

static int inbox_disconnect(struct loop *l, const struct inbox_request *req)
{
    struct session *s = session_registry_find(l->sessions, req->session_id);

    if (!s || s->state != SESSION_DESKTOP_READY)
        return -ENOENT;
    log_info("session=%" PRIu64 " user=%s desktop=%s disconnected by admin=%s", s->id, s->user,
             s->desktop, req->by);
    session_finish_close(l, s, "", TEXT_DISCONNECTED);
    return 0;
}

static void on_inbox(struct loop *l, bool closing)
{
    struct broker_inbox *in = l->ctx->inbox;
    uint64_t count;

    (void)!read(in->event_fd, &count, sizeof(count));
    pthread_mutex_lock(&in->lock);
    in->closed |= closing;
    while (in->head) {
        struct inbox_request *req = in->head;
        in->head = req->next;
        req->result = closing ? -ESHUTDOWN : inbox_disconnect(l, req);
        req->done = true;
    }
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->lock);
}

/* ---- signals ---- */

static void reap_sessions(struct loop *l)
{
    /* Only our own children by pid: libvirt (qemu:///embed) waits for its own. */
    for (size_t i = session_registry_size(l->sessions); i-- > 0;) {
        struct session *s = session_registry_at(l->sessions, i);
        int status;
        pid_t r = waitpid(s->pid, &status, WNOHANG);

        if (r != s->pid)
            continue;
        if (WIFEXITED(status))
            log_info("session=%" PRIu64 " user=%s client=%s exited status=%d", s->id,
                     s->user[0] ? s->user : "-", s->address, WEXITSTATUS(status));
        else
            log_info("session=%" PRIu64 " user=%s client=%s exited signal=%d", s->id,
                     s->user[0] ? s->user : "-", s->address,
                     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        s->pid = 0;
        if (s->desktop[0] && !l->stopping)
            session_end_submit(l, s->id);
        session_registry_remove(l->sessions, s);
    }
}

static void on_signal(struct loop *l)
{
    struct signalfd_siginfo si;

    for (;;) {
        ssize_t n = read(l->ctx->signal_fd, &si, sizeof(si));
        if (n != (ssize_t)sizeof(si))
            return;
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap_sessions(l);
            break;
        case SIGTERM:
        case SIGINT:
            if (!l->stopping)
                log_info("received %s, shutting down", strsignal((int)si.ssi_signo));
            l->stopping = true;
            break;
        case SIGHUP:
            log_info("SIGHUP ignored: restart vdi-broker to apply a new configuration");
            break;
        default:
            break;
        }
    }
}

/* ---- deadlines ---- */

static void on_deadline(struct loop *l, struct session *s)
{
    s->deadline_ms = 0;
    switch (s->state) {
    case SESSION_WAIT_AUTH:
        session_kill(l, s, "did not log in in time");
        break;
    case SESSION_CHECKING:
        log_warning("login failed user=%s client=%s session=%" PRIu64 " reason=PAM timeout",
                    s->user, s->address, s->id);
        session_finish_close(l, s, "", TEXT_AUTH_TIMEOUT);
        break;
    case SESSION_AUTHENTICATED:
        log_error("desktop failed user=%s session=%" PRIu64
                  " error=not ready within desktop_start_timeout_s=%d",
                  s->user, s->id, l->cfg->desktop_start_timeout_s);
        session_finish_close(l, s, TEXT_DESKTOP_FAILED, "it took too long to start");
        break;
    case SESSION_CLOSING:
        session_kill(l, s, "did not exit after close");
        break;
    case SESSION_DESKTOP_READY:
        break;
    }
}

static int next_timeout(struct loop *l)
{
    uint64_t next = 0;

    for (size_t i = 0; i < session_registry_size(l->sessions); i++) {
        uint64_t d = session_registry_at(l->sessions, i)->deadline_ms;
        if (d && (!next || d < next))
            next = d;
    }
    if (l->accept_paused_until && (!next || l->accept_paused_until < next))
        next = l->accept_paused_until;
    if (!l->maintaining && (!next || l->maintain_due_ms < next))
        next = l->maintain_due_ms;
    return next ? deadline_left_ms(next) : -1;
}

static void maintain_submit(struct loop *l)
{
    struct job *j = job_new(l, JOB_MAINTAIN, NULL);

    l->maintain_due_ms = now_ms() + (uint64_t)l->cfg->spare_check_interval_s * 1000;
    if (!j || submit(l, j) < 0) {
        job_free(j);
        return;
    }
    l->maintaining = true;
}

/* ---- the loop ---- */

static void shutdown_sessions(struct loop *l)
{
    for (size_t i = 0; i < session_registry_size(l->sessions); i++) {
        struct session *s = session_registry_at(l->sessions, i);
        if (s->control_fd >= 0) {
            struct proto_message m;
            proto_message_init(&m, PROTO_CLOSE);
            (void)proto_set_string(m.text, sizeof(m.text), TEXT_SHUTDOWN);
            (void)proto_send(s->control_fd, &m); /* best effort */
            proto_message_done(&m);
        }
        session_close_control(s);
    }
}

int broker_run(const struct broker_context *ctx)
{
    _cleanup_(session_registry_freep) struct session_registry *sessions = NULL;
    _cleanup_(freep) struct pollfd *fds = NULL;
    _cleanup_(freep) uint64_t *ids = NULL;
    size_t allocated = 0;
    struct loop l = {.ctx = ctx, .cfg = ctx->config};
    int r;

    r = session_registry_new(&sessions);
    if (r < 0)
        return r;
    l.sessions = sessions;
    session_registry_set_next_id(sessions, ctx->first_session_id);
    r = workers_new((unsigned)ctx->config->worker_threads, "vdi-auth", &l.auth_workers);
    if (r >= 0)
        r = workers_new((unsigned)ctx->config->worker_threads, "vdi-desktop", &l.desktop_workers);
    if (r < 0) {
        workers_free(l.auth_workers);
        return log_error_errno(r, "cannot start worker threads");
    }

    while (!l.stopping) {
        size_t n = 0, want = 5 + session_registry_size(l.sessions);
        uint64_t now;

        if (want > allocated) {
            struct pollfd *nf = realloc(fds, want * sizeof(*fds));
            if (!nf) {
                r = -ENOMEM;
                break;
            }
            fds = nf;
            uint64_t *ni = realloc(ids, want * sizeof(*ids));
            if (!ni) {
                r = -ENOMEM;
                break;
            }
            ids = ni;
            allocated = want;
        }
        fds[n++] = (struct pollfd){.fd = ctx->signal_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = workers_fd(l.auth_workers), .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = workers_fd(l.desktop_workers), .events = POLLIN};
        now = now_ms();
        if (l.accept_paused_until && now >= l.accept_paused_until)
            l.accept_paused_until = 0;
        fds[n++] =
            (struct pollfd){.fd = l.accept_paused_until ? -1 : ctx->listen_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = ctx->inbox->event_fd, .events = POLLIN};
        for (size_t i = 0; i < session_registry_size(l.sessions); i++) {
            struct session *s = session_registry_at(l.sessions, i);
            if (s->control_fd < 0)
                continue;
            ids[n] = s->id;
            fds[n++] = (struct pollfd){.fd = s->control_fd, .events = POLLIN};
        }

        if (poll(fds, n, next_timeout(&l)) < 0) {
            if (errno == EINTR)
                continue;
            r = log_error_errno(-errno, "poll failed");
            break;
        }

        if (fds[0].revents)
            on_signal(&l);
        if (l.stopping)
            break;
        if (fds[1].revents)
            workers_dispatch(l.auth_workers);
        if (fds[2].revents)
            workers_dispatch(l.desktop_workers);
        if (fds[4].revents)
            on_inbox(&l, false);
        for (size_t i = 5; i < n; i++) {
            struct session *s;
            if (!fds[i].revents)
                continue;
            s = session_registry_find(l.sessions, ids[i]);
            if (s && s->control_fd == fds[i].fd)
                on_control(&l, s, fds[i].revents);
        }
        if (fds[3].revents)
            on_accept(&l);

        now = now_ms();
        for (size_t i = 0; i < session_registry_size(l.sessions); i++) {
            struct session *s = session_registry_at(l.sessions, i);
            if (s->deadline_ms && now >= s->deadline_ms)
                on_deadline(&l, s);
        }
        if (!l.maintaining && now >= l.maintain_due_ms)
            maintain_submit(&l);
    }
    on_inbox(&l, true);

    shutdown_sessions(&l);
    l.stopping = true;
    workers_free(l.auth_workers); /* joins; unfinished jobs are dropped */
    workers_free(l.desktop_workers);
    return r;
}
