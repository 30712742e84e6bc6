/* The broker's event loop: accepting, logins, control messages, the inbox (broker.h). */
#include "broker-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "auth.h"
#include "groups.h"
#include "listener.h"
#include "log.h"
#include "pool-list.h"
#include "reasons.h"
#include "util.h"

#define BROKER_MARGIN_MS 5000      /* on top of the session's own login deadline */
#define BROKER_CLOSE_GRACE_MS 5000 /* a session told to close has this long to exit */
#define BROKER_ACCEPT_BACKOFF_MS 200
#define BROKER_ACCEPT_BURST 64
#define BROKER_LOG_INTERVAL_MS 1000
#define BROKER_INBOX_WAIT_MS 5000

#define TEXT_BUSY "The server is busy checking other logins, please try again in a moment"
#define TEXT_AUTH_TIMEOUT "Authentication took too long"
#define TEXT_STARTING "Starting your desktop..."
#define TEXT_DESKTOP_FAILED "Your desktop could not be started: "
#define TEXT_NOT_ADMIN "Only administrators may watch other sessions"
#define TEXT_SHUTDOWN "The server is shutting down"
#define TEXT_RESTARTING "The server is restarting; please log in again in a moment"
#define TEXT_INTERNAL "Internal server error"

struct duration_text duration_text(uint64_t seconds)
{
    struct duration_text t;

    if (seconds < 120)
        snprintf(t.s, sizeof(t.s), "%llu second%s", (unsigned long long)seconds,
                 seconds == 1 ? "" : "s");
    else if (seconds < 2 * 3600)
        snprintf(t.s, sizeof(t.s), "%llu minutes", (unsigned long long)(seconds + 30) / 60);
    else
        snprintf(t.s, sizeof(t.s), "%llu hours", (unsigned long long)(seconds + 1800) / 3600);
    return t;
}

/* ---- jobs ---- */

struct job *job_new(struct loop *l, enum job_kind kind, const struct connection *c)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    *j = (struct job){.loop = l, .kind = kind, .display_fd = -1};
    if (c) {
        j->connection_id = c->id;
        j->shadow_target = c->shadow_target;
        strcpy(j->user, c->user);
        strcpy(j->pool, c->pool);
        strcpy(j->desktop, c->desktop);
        strcpy(j->address, c->address);
    }
    return j;
}

void job_free(struct job *j)
{
    if (!j)
        return;
    secret_free(j->password);
    safe_close(j->display_fd);
    explicit_bzero(j, sizeof(*j));
    free(j);
}

void job_submit_simple(struct loop *l, enum job_kind kind, uint64_t connection_id,
                       uint64_t session_id, const char *desktop)
{
    struct job *j = job_new(l, kind, NULL);

    if (j) {
        j->connection_id = connection_id;
        j->session_id = session_id;
        snprintf(j->desktop, sizeof(j->desktop), "%s", desktop ? desktop : "");
    }
    if (!j || job_submit(l, j) < 0) {
        log_error("cannot queue a job kind=%d connection=%" PRIu64 " desktop=%s", (int)kind,
                  connection_id, desktop ? desktop : "-");
        job_free(j);
    }
}

/* ---- connections ---- */

void conn_kill(struct loop *l, struct connection *c, const char *why)
{
    if (c->pid > 0) {
        log_warning("session=%" PRIu64 " user=%s client=%s %s, killed", c->id,
                    c->user[0] ? c->user : "-", c->address, why);
        connection_kill(c);
    }
    connection_close_control(c);
    (void)connection_set_state(c, CONNECTION_CLOSING);
    c->deadline_ms = 0;
    (void)l;
}

void conn_protocol_violation(struct loop *l, struct connection *c, const char *what)
{
    log_warning("session=%" PRIu64 " protocol violation client=%s state=%s: %s", c->id, c->address,
                connection_state_to_string(c->state), what);
    conn_kill(l, c, "protocol violation");
}

int conn_send(struct loop *l, struct connection *c, struct proto_message *m)
{
    int r;

    if (c->control_fd < 0)
        return -ENOTCONN;
    r = proto_send(c->control_fd, m);
    if (r < 0) {
        log_warning("session=%" PRIu64 " cannot send %s: %s", c->id, proto_type_name(m->type),
                    strerror(-r));
        conn_kill(l, c, "control socket failed");
    }
    return r;
}

/* The connection is done as far as the broker is concerned: optionally one last message,
 * then close the control socket and give the process a grace period to exit. */
static void conn_finish(struct loop *l, struct connection *c, struct proto_message *last)
{
    if (last && conn_send(l, c, last) < 0)
        return; /* killed */
    connection_close_control(c);
    (void)connection_set_state(c, CONNECTION_CLOSING);
    c->deadline_ms = c->pid > 0 ? now_ms() + BROKER_CLOSE_GRACE_MS : 0;
}

static void conn_textv(struct loop *l, struct connection *c, enum proto_type type, const char *fmt,
                       va_list ap)
{
    struct proto_message m;

    proto_message_init(&m, type);
    vsnprintf(m.text, sizeof(m.text), fmt, ap);
    if (type == PROTO_CLOSE)
        conn_finish(l, c, &m);
    else
        (void)conn_send(l, c, &m);
    proto_message_done(&m);
}

void conn_close(struct loop *l, struct connection *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    conn_textv(l, c, PROTO_CLOSE, fmt, ap);
    va_end(ap);
}

void conn_notice(struct loop *l, struct connection *c, const char *fmt, ...)
{
    va_list ap;

    if (c->state != CONNECTION_DESKTOP_READY || c->control_fd < 0)
        return;
    va_start(ap, fmt);
    conn_textv(l, c, PROTO_NOTICE, fmt, ap);
    va_end(ap);
    log_debug("session=%" PRIu64 " user=%s notice sent", c->id, c->user);
}

void conn_refuse(struct loop *l, struct connection *c, enum proto_type type, const char *text)
{
    struct proto_message m;

    proto_message_init(&m, type);
    (void)proto_set_string(m.text, sizeof(m.text), text);
    conn_finish(l, c, &m);
    proto_message_done(&m);
}

/* ---- jobs: run on worker threads ---- */

static void job_auth_run(struct job *j)
{
    const struct broker_config *cfg = j->loop->cfg;
    struct auth_request req = {
        .service = cfg->pam_service,
        .user = j->user,
        .password = j->password,
        .rhost = j->address,
    };

    j->result = auth_pam_check(&req, j->detail, sizeof(j->detail));
    secret_free(j->password);
    j->password = NULL;
    if (j->result < 0) {
        j->pam_failed = j->result != -EIO;
        return;
    }
    if (j->shadow_target) {
        /* "admin@#42": only members of the admin group may watch. */
        int r = auth_user_in_group(j->user, cfg->admin_group);
        if (r <= 0) {
            j->result = r < 0 ? r : -EPERM;
            snprintf(j->detail, sizeof(j->detail),
                     "not in group %s (shadowing session %" PRIu64 ")", cfg->admin_group,
                     j->shadow_target);
            snprintf(j->user_text, sizeof(j->user_text), "%s", TEXT_NOT_ADMIN);
        }
        return;
    }
    /* Entitlement now, so that the client hears "no desktop" as its login result. */
    struct pools_error err = {"", ""};
    char pool[STORE_NAME_MAX + 1];

    j->result = pools_choose(j->loop->ctx->pools, j->user, j->pool, pool, &err);
    if (j->result == 0)
        snprintf(j->pool, sizeof(j->pool), "%s", pool);
    else {
        snprintf(j->detail, sizeof(j->detail), "%s", err.log);
        snprintf(j->user_text, sizeof(j->user_text), "%s", err.text);
    }
}

static void job_fill_connection(const struct job *j, enum store_session_kind kind,
                                struct pools_connection *pc)
{
    *pc = (struct pools_connection){
        .id = j->connection_id,
        .session_id = j->session_id,
        .kind = kind,
    };
    snprintf(pc->user, sizeof(pc->user), "%s", j->user);
    snprintf(pc->client, sizeof(pc->client), "%s", j->address);
    if (certs_token_hash(j->token, pc->token_hash) < 0)
        pc->token_hash[0] = '\0'; /* cannot re-attach, works otherwise */
}

static void job_desktop_run(struct job *j)
{
    struct pools *pools = j->loop->ctx->pools;
    struct pools_error err = {"", ""};
    struct pools_connection pc;
    struct store_pool pool;
    int r;

    job_fill_connection(j, STORE_SESSION_USER, &pc);
    r = pools_claim(pools, &pc, j->pool, j->desktop, sizeof(j->desktop), &err);
    if (r == 0) {
        r = pools_open_display(pools, j->desktop, &j->display_fd, &err);
        if (r < 0)
            pools_session_end(pools, j->connection_id);
    }
    if (pools_pool_get(pools, j->pool, &pool) == 0)
        policy_from_pool(&pool, &j->policy);
    j->result = r;
    snprintf(j->detail, sizeof(j->detail), "%s", err.log);
    snprintf(j->user_text, sizeof(j->user_text), "%s", err.text);
}

static void job_shadow_run(struct job *j)
{
    struct pools *pools = j->loop->ctx->pools;
    struct pools_error err = {"", ""};
    struct pools_connection pc;

    job_fill_connection(j, STORE_SESSION_SHADOW, &pc);
    j->result = pools_open_display(pools, j->desktop, &j->display_fd, &err);
    if (j->result == 0)
        pools_session_begin(pools, &pc, j->desktop);
    snprintf(j->detail, sizeof(j->detail), "%s", err.log);
    snprintf(j->user_text, sizeof(j->user_text), "%s", err.text);
}

static void job_reattach_run(struct job *j)
{
    struct pools *pools = j->loop->ctx->pools;
    char hash[CERTS_TOKEN_SIZE];
    struct store_pool pool;

    j->result = certs_token_hash(j->token, hash);
    if (j->result == 0)
        j->result = pools_session_reattach(pools, j->reattach_id, hash, &j->row);
    if (j->result == 0 && pools_pool_get(pools, j->row.pool, &pool) == 0)
        policy_from_pool(&pool, &j->policy);
}

static void job_run(void *userdata)
{
    struct job *j = userdata;
    struct pools *pools = j->loop->ctx->pools;

    switch (j->kind) {
    case JOB_AUTH:
        job_auth_run(j);
        break;
    case JOB_DESKTOP:
        job_desktop_run(j);
        break;
    case JOB_SHADOW:
        job_shadow_run(j);
        break;
    case JOB_REATTACH:
        job_reattach_run(j);
        break;
    case JOB_CONNECTION_END:
        pools_session_end(pools, j->connection_id);
        break;
    case JOB_LOGOFF:
        for (size_t i = 0; i < j->n_closing; i++)
            pools_session_end(pools, j->closing[i]);
        j->result = pools_logoff(pools, j->desktop, j->user);
        break;
    case JOB_DESKTOP_STOPPED:
        pools_desktop_stopped(pools, j->desktop, j->event);
        break;
    case JOB_MAINTAIN:
        pools_maintain(pools);
        break;
    }
}

/* ---- jobs: completion on the loop thread ---- */

static void desktop_begin(struct loop *l, struct connection *c)
{
    struct proto_message m;
    struct job *j;

    proto_message_init(&m, PROTO_DESKTOP_STATUS);
    (void)proto_set_string(m.text, sizeof(m.text), TEXT_STARTING);
    if (conn_send(l, c, &m) < 0)
        return;

    j = job_new(l, c->shadow_target ? JOB_SHADOW : JOB_DESKTOP, c);
    c->deadline_ms = now_ms() + (uint64_t)l->cfg->desktop_start_timeout_s * 1000;
    if (j && c->shadow_target) {
        struct session *s = session_table_find(l->sessions, c->shadow_target);
        if (!s || s->state == SESSION_ENDING) {
            job_free(j);
            log_info("shadow refused admin=%s session=%" PRIu64 " reason=no such session", c->user,
                     c->shadow_target);
            conn_close(l, c, "There is no session %" PRIu64 " to watch", c->shadow_target);
            return;
        }
        if (streq(l->cfg->shadow_policy, "deny")) {
            job_free(j);
            log_info("shadow refused admin=%s session=%" PRIu64 " reason=shadow_policy deny",
                     c->user, c->shadow_target);
            conn_close(l, c, "Watching sessions is turned off on this server");
            return;
        }
        j->session_id = s->id;
        snprintf(j->desktop, sizeof(j->desktop), "%s", s->desktop);
    } else if (j)
        j->session_id = sessions_id_for_login(l, c->user, c->pool);
    if (!j || certs_token_new(j->token) < 0 || job_submit(l, j) < 0) {
        job_free(j);
        conn_close(l, c, TEXT_DESKTOP_FAILED "%s", "the server is out of resources");
    }
}

/* "alice@?" and several pools (pool-list.h): the password was right and the answer is
 * the pool list as the refusal reason. Neither a failure for the throttle (a right
 * password clears the counts, as with any login) nor a login for vdi_logins_total (the
 * USER@POOL login that follows is); audited as login.pools, not login.success: no session
 * follows. */
static void job_pool_list_done(struct loop *l, struct job *j, struct connection *c)
{
    struct pool_choice pools[POOL_LIST_MAX];
    int n = pool_list_parse(j->user_text, pools); /* pools_choose() wrote it: well formed */

    if (n < 0)
        n = 0;
    struct audit_field fields[] = {
        AUDIT_STR("user", j->user),
        AUDIT_STR("client", j->address),
        AUDIT_STR("source", "vnc"),
        AUDIT_NUM("listed", n),
        AUDIT_STR("pools", j->user_text + strlen(POOL_LIST_TAG " ")),
    };
    throttle_success(l->ctx->throttle, j->address, j->user);
    log_info("user %s listed %d pools client=%s session=%" PRIu64, j->user, n, j->address,
             j->connection_id);
    (void)audit_event_fields(l->ctx->audit, "login.pools", fields, ARRAY_SIZE(fields));
    if (c)
        conn_refuse(l, c, PROTO_AUTH_RESULT, j->user_text);
}

static void job_auth_done(struct loop *l, struct job *j, struct connection *c)
{
    struct proto_message m;
    const char *source = j->shadow_target ? "shadow" : "vnc";

    if (j->result == -EINVAL && !j->shadow_target && streq(j->pool, POOL_LIST_REQUEST) &&
        reason_classify(j->user_text) == REASON_CLASS_POOL_LIST) {
        job_pool_list_done(l, j, c);
        return;
    }
    pools_count_login(l->ctx->pools, j->result == 0);
    if (j->result < 0) {
        const char *reason = j->detail[0] ? j->detail : strerror(-j->result);

        if (j->pam_failed)
            throttle_failure(l->ctx->throttle, j->address, j->user, now_ms());
        if (j->result == -EIO && !j->user_text[0])
            log_error("login failed user=%s client=%s session=%" PRIu64 " reason=PAM error: %s",
                      j->user, j->address, j->connection_id, reason);
        else
            log_warning("login %s user=%s client=%s session=%" PRIu64 " reason=%s",
                        j->pam_failed ? "failed" : "refused", j->user, j->address, j->connection_id,
                        reason);
        (void)audit_event(l->ctx->audit, "login.failure", "user", j->user, "client", j->address,
                          "source", source, "reason", reason, NULL);
        if (c)
            conn_refuse(l, c, PROTO_AUTH_RESULT,
                        j->user_text[0] ? j->user_text : REASON_AUTH_FAILED);
        return;
    }
    throttle_success(l->ctx->throttle, j->address, j->user);
    (void)audit_event(l->ctx->audit, "login.success", "user", j->user, "client", j->address,
                      "source", source, "pool", j->shadow_target ? NULL : j->pool, NULL);
    if (!c || connection_set_state(c, CONNECTION_AUTHENTICATED) < 0) {
        log_info("login ok user=%s client=%s session=%" PRIu64 " but the connection is gone",
                 j->user, j->address, j->connection_id);
        return;
    }
    strcpy(c->pool, j->pool); /* the pool pools_choose() settled on */
    log_info("login ok user=%s pool=%s client=%s session=%" PRIu64, j->user,
             c->shadow_target ? "-" : j->pool, j->address, c->id);
    proto_message_init(&m, PROTO_AUTH_RESULT);
    m.ok = true;
    if (conn_send(l, c, &m) < 0)
        return;
    desktop_begin(l, c);
}

static void job_done(void *userdata, int status)
{
    struct job *j = userdata;
    struct loop *l = j->loop;
    struct connection *c = NULL;

    if (j->kind == JOB_MAINTAIN)
        l->maintaining = false;
    if (status != 0 || l->stopping) {
        job_free(j);
        return;
    }
    c = connection_registry_find(l->conns, j->connection_id);
    switch (j->kind) {
    case JOB_AUTH:
        job_auth_done(l, j, c && c->state == CONNECTION_CHECKING ? c : NULL);
        break;
    case JOB_DESKTOP:
        sessions_desktop_done(l, j, c && c->state == CONNECTION_AUTHENTICATED ? c : NULL);
        break;
    case JOB_SHADOW:
        sessions_shadow_done(l, j, c && c->state == CONNECTION_AUTHENTICATED ? c : NULL);
        break;
    case JOB_REATTACH:
        reattach_done(l, j, c && c->state == CONNECTION_WAIT_REATTACH ? c : NULL);
        break;
    case JOB_LOGOFF:
        sessions_logoff_done(l, j);
        break;
    case JOB_CONNECTION_END:
    case JOB_DESKTOP_STOPPED:
    case JOB_MAINTAIN:
        break;
    }
    job_free(j);
}

int job_submit(struct loop *l, struct job *j)
{
    return workers_submit(j->kind == JOB_AUTH ? l->auth_workers : l->desktop_workers, job_run,
                          job_done, j);
}

/* ---- control messages ---- */

/* "admin@#42": an admin asks to watch session 42. Returns true when login has that form
 * (then *ret_user and *ret_target are set, or *ret_target is 0 when it is malformed). */
static bool parse_shadow_login(const char *login, char user[STORE_NAME_MAX + 1],
                               uint64_t *ret_target)
{
    const char *mark = strstr(login, "@#");
    size_t n;
    char *end;
    unsigned long long id;

    if (!mark)
        return false;
    *ret_target = 0;
    n = (size_t)(mark - login);
    if (n == 0 || n > STORE_NAME_MAX)
        return true;
    memcpy(user, login, n);
    user[n] = '\0';
    errno = 0;
    id = strtoull(mark + 2, &end, 10);
    if (username_is_valid(user) && errno == 0 && end != mark + 2 && *end == '\0' &&
        mark[2] >= '1' && mark[2] <= '9')
        *ret_target = id;
    return true;
}

static void on_auth_request(struct loop *l, struct connection *c, struct proto_message *m)
{
    char user[STORE_NAME_MAX + 1], pool[STORE_NAME_MAX + 1] = "";
    uint64_t target = 0;
    struct throttle_result t;
    struct job *j;
    bool shadow = parse_shadow_login(m->username, user, &target);

    /* "alice@eng" asks for pool eng: how a standard VNC client picks a pool; "alice@?"
     * (vdi-client) asks for the pool list when there are several (pool-list.h). */
    if ((shadow && !target) || (!shadow && pools_parse_login(m->username, user, pool) < 0)) {
        /* Never log the raw name: it may be a mistyped password or terminal junk. The
         * attempt still counts against the address. */
        log_warning("login failed user=(invalid) client=%s session=%" PRIu64
                    " reason=invalid user name",
                    c->address, c->id);
        (void)audit_event(l->ctx->audit, "login.failure", "user", "(invalid)", "client", c->address,
                          "reason", "invalid user name", NULL);
        throttle_failure(l->ctx->throttle, c->address, "", now_ms());
        (void)connection_set_state(c, CONNECTION_CHECKING);
        conn_refuse(l, c, PROTO_AUTH_RESULT, REASON_AUTH_FAILED);
        return;
    }
    if (connection_set_state(c, CONNECTION_CHECKING) < 0 || connection_set_user(c, user) < 0) {
        conn_protocol_violation(l, c, "unexpected AUTH_REQUEST");
        return;
    }
    strcpy(c->pool, pool);
    c->shadow_target = target;
    c->deadline_ms = now_ms() + (uint64_t)l->cfg->login_timeout_s * 1000 + BROKER_MARGIN_MS;

    /* Brute force: an address or account in its penalty time gets no password check. */
    t = throttle_check(l->ctx->throttle, c->address, c->user, now_ms());
    if (t.verdict != THROTTLE_ALLOW) {
        bool locked = t.verdict == THROTTLE_LOCKED;
        uint64_t secs = (t.wait_ms + 999) / 1000;
        char text[128];

        log_warning("login refused user=%s client=%s session=%" PRIu64
                    " reason=%s by=%s wait=%" PRIu64 "s",
                    c->user, c->address, c->id, locked ? "locked out" : "throttled",
                    t.by_account ? "account" : "address", secs);
        (void)audit_event(l->ctx->audit, locked ? "login.locked" : "login.throttled", "user",
                          c->user, "client", c->address, "by", t.by_account ? "account" : "address",
                          NULL);
        snprintf(text, sizeof(text),
                 locked ? REASON_LOCKED_PREFIX " %s" : REASON_THROTTLED_PREFIX " %s",
                 duration_text(secs).s);
        conn_refuse(l, c, PROTO_AUTH_RESULT, text);
        return;
    }

    /* Bounded queue: PAM checks of connections that already gave up still run, so
     * without a cap a flood of bad logins would grow the queue without limit. */
    if (workers_pending(l->auth_workers) >= (size_t)l->cfg->max_unauthenticated) {
        log_warning("login refused user=%s client=%s session=%" PRIu64
                    " reason=too many logins being checked",
                    c->user, c->address, c->id);
        conn_refuse(l, c, PROTO_AUTH_RESULT, TEXT_BUSY);
        return;
    }

    j = job_new(l, JOB_AUTH, c);
    if (j)
        j->password = strdup(m->password);
    if (!j || !j->password || job_submit(l, j) < 0) {
        log_error("session=%" PRIu64 " cannot queue PAM check", c->id);
        job_free(j);
        conn_close(l, c, "%s", TEXT_INTERNAL);
    }
}

/* A connection is gone for good: its process exited (or, re-attached, closed its
 * control socket); the session hears of it. */
static void conn_gone(struct loop *l, struct connection *c)
{
    if (c->session_id || c->desktop[0])
        sessions_connection_gone(l, c);
    connection_registry_remove(l->conns, c);
}

static void on_control(struct loop *l, struct connection *c, short revents)
{
    struct proto_message m;
    int r;

    proto_message_init(&m, PROTO_CLOSE);
    r = proto_recv(c->control_fd, PROTO_FROM_SESSION, &m);
    if (r == -EAGAIN && !(revents & (POLLHUP | POLLERR)))
        return;
    if (r == -EAGAIN || r == -EPIPE || r == -ECONNRESET) {
        log_debug("session=%" PRIu64 " closed its control socket state=%s", c->id,
                  connection_state_to_string(c->state));
        connection_close_control(c);
        if (c->pidfd >= 0) {
            /* Not our child: the closed socket is all we will learn of its end. */
            conn_gone(l, c);
            return;
        }
        if (c->state == CONNECTION_DESKTOP_READY)
            return; /* reaped soon */
        (void)connection_set_state(c, CONNECTION_CLOSING);
        c->deadline_ms = c->pid > 0 ? now_ms() + BROKER_CLOSE_GRACE_MS : 0;
        return;
    }
    if (r < 0) {
        conn_protocol_violation(l, c, strerror(-r));
        return;
    }
    if (c->state == CONNECTION_WAIT_AUTH && m.type == PROTO_AUTH_REQUEST)
        on_auth_request(l, c, &m);
    else if (c->state == CONNECTION_WAIT_REATTACH && m.type == PROTO_REATTACH)
        reattach_request(l, c, &m);
    else if (c->state == CONNECTION_DESKTOP_READY && m.type == PROTO_ACTIVITY)
        sessions_activity(l, c, &m);
    else if (c->state == CONNECTION_CLOSING && m.type == PROTO_ACTIVITY)
        ; /* sent before it saw our CLOSE */
    else
        conn_protocol_violation(l, c, proto_type_name(m.type));
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

/* xorshift64*: MaxStartups' coin, not a secret. */
static uint32_t loop_random(struct loop *l)
{
    uint64_t x = l->random_state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    l->random_state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

static void on_accept(struct loop *l)
{
    for (int i = 0; i < BROKER_ACCEPT_BURST; i++) {
        char address[LISTENER_ADDRESS_MAX];
        _cleanup_(closep) int fd = -1;
        _cleanup_(closep) int mine = -1;
        _cleanup_(closep) int theirs = -1;
        int sp[2];
        struct connection *c;
        const char *why = NULL;
        size_t unauthenticated, from_address;
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

        if (connection_registry_size(l->conns) >= (size_t)l->cfg->max_sessions) {
            log_refused(l, address, "max_sessions reached");
            continue;
        }
        unauthenticated =
            connection_registry_count_unauthenticated(l->conns, address, &from_address);
        if (unauthenticated >= (size_t)l->cfg->max_unauthenticated)
            why = "max_unauthenticated reached";
        else if (throttle_startup_allowed(&l->startups, unauthenticated, from_address,
                                          loop_random(l), &why))
            why = NULL;
        else if (!why)
            why = "max_startups";
        if (why) {
            log_refused(l, address, why);
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
        r = connection_registry_add(l->conns, pid, -1, mine, address, now_ms(), &c);
        if (r < 0) {
            log_error_errno(r, "cannot register session client=%s pid=%d", address, (int)pid);
            kill(pid, SIGKILL);
            /* Not in the registry, so not reaped on SIGCHLD: reap it now. */
            waitpid(pid, NULL, 0);
            continue;
        }
        mine = -1; /* the registry owns it */
        c->deadline_ms = c->created_ms + (uint64_t)l->cfg->handshake_timeout_s * 1000 +
                         (uint64_t)l->cfg->login_timeout_s * 1000 + BROKER_MARGIN_MS;
        log_info("session=%" PRIu64 " client=%s pid=%d started", c->id, address, (int)pid);
    }
}

/* ---- requests from other threads ---- */

enum inbox_kind { INBOX_SESSIONS, INBOX_SESSION_ACTION, INBOX_DESKTOP_EVENT };

struct inbox_request {
    enum inbox_kind kind;
    uint64_t session_id;
    bool logoff;
    char by[CONNECTION_MAX_USER + 1];
    char desktop[CONNECTION_MAX_NAME + 1];
    enum virt_event event;
    struct session_info *infos; /* INBOX_SESSIONS answer */
    size_t n_infos;
    int result;
    bool done;
    bool owned_by_inbox; /* events: freed by the loop, nobody waits */
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
    pthread_condattr_t attr;

    if (!in)
        return -ENOMEM;
    in->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (in->event_fd < 0) {
        free(in);
        return -errno;
    }
    pthread_mutex_init(&in->lock, NULL);
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
    while (in->head) { /* events nobody took */
        struct inbox_request *req = in->head;
        in->head = req->next;
        if (req->owned_by_inbox)
            free(req);
    }
    safe_close(in->event_fd);
    pthread_cond_destroy(&in->cond);
    pthread_mutex_destroy(&in->lock);
    free(in);
}

/* Queues req for the loop; with wait, blocks until it is answered or the wait is over. */
static int inbox_post(struct broker_inbox *in, struct inbox_request *req, bool wait)
{
    uint64_t one = 1;
    struct timespec until;
    int r = 0;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += BROKER_INBOX_WAIT_MS / 1000;
    pthread_mutex_lock(&in->lock);
    if (in->closed) {
        pthread_mutex_unlock(&in->lock);
        return -ESHUTDOWN;
    }
    req->next = in->head;
    in->head = req;
    (void)!write(in->event_fd, &one, sizeof(one));
    while (wait && !req->done)
        if (pthread_cond_timedwait(&in->cond, &in->lock, &until) == ETIMEDOUT && !req->done) {
            /* Still queued: take it back (it lives on the caller's stack). Taken by the
             * loop: it is being answered right now, wait for that. */
            for (struct inbox_request **q = &in->head; *q; q = &(*q)->next)
                if (*q == req) {
                    *q = req->next;
                    req->done = true;
                    req->result = -ETIMEDOUT;
                    break;
                }
        }
    if (wait)
        r = req->result;
    pthread_mutex_unlock(&in->lock);
    return r;
}

int broker_inbox_sessions(void *inbox, struct session_info **ret, size_t *ret_n)
{
    struct inbox_request req = {.kind = INBOX_SESSIONS};
    int r = inbox_post(inbox, &req, true);

    if (r < 0) {
        free(req.infos);
        return r;
    }
    *ret = req.infos;
    *ret_n = req.n_infos;
    return 0;
}

int broker_inbox_session_action(void *inbox, uint64_t session_id, bool logoff, const char *by_admin)
{
    struct inbox_request req = {
        .kind = INBOX_SESSION_ACTION, .session_id = session_id, .logoff = logoff};

    snprintf(req.by, sizeof(req.by), "%s", by_admin ? by_admin : "");
    return inbox_post(inbox, &req, true);
}

void broker_inbox_desktop_event(void *inbox, const char *desktop, enum virt_event ev)
{
    struct inbox_request *req = calloc(1, sizeof(*req));

    if (!req) {
        log_error("desktop event lost desktop=%s event=%s: out of memory", desktop,
                  virt_event_to_string(ev));
        return;
    }
    req->kind = INBOX_DESKTOP_EVENT;
    req->owned_by_inbox = true;
    req->event = ev;
    snprintf(req->desktop, sizeof(req->desktop), "%s", desktop);
    if (inbox_post(inbox, req, false) < 0)
        free(req);
}

static void inbox_answer(struct loop *l, struct inbox_request *req, bool closing)
{
    if (closing) {
        req->result = -ESHUTDOWN;
        return;
    }
    switch (req->kind) {
    case INBOX_SESSIONS:
        req->result = sessions_snapshot(l, &req->infos, &req->n_infos);
        break;
    case INBOX_SESSION_ACTION:
        req->result = sessions_admin_action(l, req->session_id, req->logoff, req->by);
        break;
    case INBOX_DESKTOP_EVENT:
        sessions_desktop_stopped(l, req->desktop, req->event);
        break;
    }
}

static void on_inbox(struct loop *l, bool closing)
{
    struct broker_inbox *in = l->ctx->inbox;
    struct inbox_request *events = NULL;
    uint64_t count;

    (void)!read(in->event_fd, &count, sizeof(count));
    pthread_mutex_lock(&in->lock);
    in->closed |= closing;
    while (in->head) {
        struct inbox_request *req = in->head;
        in->head = req->next;
        if (req->owned_by_inbox) { /* answered below, outside the lock */
            req->next = events;
            events = req;
            continue;
        }
        inbox_answer(l, req, closing);
        req->done = true;
    }
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->lock);
    while (events) {
        struct inbox_request *req = events;
        events = req->next;
        inbox_answer(l, req, closing);
        free(req);
    }
}

/* ---- signals ---- */

static void reap_connections(struct loop *l)
{
    /* Only our own children by pid: libvirt (qemu:///embed) waits for its own. */
    for (size_t i = connection_registry_size(l->conns); i-- > 0;) {
        struct connection *c = connection_registry_at(l->conns, i);
        int status;
        pid_t r;

        if (c->pidfd >= 0)
            continue;
        r = waitpid(c->pid, &status, WNOHANG);
        if (r != c->pid)
            continue;
        if (WIFEXITED(status))
            log_info("session=%" PRIu64 " user=%s client=%s exited status=%d", c->id,
                     c->user[0] ? c->user : "-", c->address, WEXITSTATUS(status));
        else
            log_info("session=%" PRIu64 " user=%s client=%s exited signal=%d", c->id,
                     c->user[0] ? c->user : "-", c->address,
                     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        c->pid = 0;
        conn_gone(l, c);
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
            reap_connections(l);
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

static void on_deadline(struct loop *l, struct connection *c)
{
    c->deadline_ms = 0;
    switch (c->state) {
    case CONNECTION_WAIT_AUTH:
        conn_kill(l, c, "did not log in in time");
        break;
    case CONNECTION_WAIT_REATTACH:
        conn_kill(l, c, "did not re-attach in time");
        break;
    case CONNECTION_CHECKING:
        log_warning("login failed user=%s client=%s session=%" PRIu64 " reason=PAM timeout",
                    c->user, c->address, c->id);
        conn_close(l, c, "%s", TEXT_AUTH_TIMEOUT);
        break;
    case CONNECTION_AUTHENTICATED:
        log_error("desktop failed user=%s session=%" PRIu64
                  " error=not ready within desktop_start_timeout_s=%d",
                  c->user, c->id, l->cfg->desktop_start_timeout_s);
        conn_close(l, c, TEXT_DESKTOP_FAILED "%s", "it took too long to start");
        break;
    case CONNECTION_CLOSING:
        conn_kill(l, c, "did not exit after close");
        if (c->pidfd >= 0)
            conn_gone(l, c); /* not our child: nothing to reap */
        break;
    case CONNECTION_DESKTOP_READY:
        break;
    }
}

static void earliest(uint64_t *next, uint64_t t)
{
    if (t && (!*next || t < *next))
        *next = t;
}

static int next_timeout(struct loop *l)
{
    uint64_t next = 0;

    for (size_t i = 0; i < connection_registry_size(l->conns); i++)
        earliest(&next, connection_registry_at(l->conns, i)->deadline_ms);
    earliest(&next, l->accept_paused_until);
    if (!l->maintaining)
        earliest(&next, l->maintain_due_ms);
    earliest(&next, sessions_next_deadline(l));
    earliest(&next, l->orphans_due_ms);
    return next ? deadline_left_ms(next) : -1;
}

static void maintain_submit(struct loop *l)
{
    struct job *j = job_new(l, JOB_MAINTAIN, NULL);

    l->maintain_due_ms = now_ms() + (uint64_t)l->cfg->spare_check_interval_s * 1000;
    if (!j || job_submit(l, j) < 0) {
        job_free(j);
        return;
    }
    l->maintaining = true;
}

/* ---- the loop ---- */

/* SIGTERM: with re-attaching on, connections with a desktop are left running (their
 * vdi-session re-attaches to the next broker: closing the control socket is all it takes);
 * the rest hear that the server restarts. */
static void shutdown_connections(struct loop *l)
{
    bool keep = l->cfg->reattach_timeout_s > 0 && l->ctx->reattach_fd >= 0;
    size_t kept = 0;

    for (size_t i = 0; i < connection_registry_size(l->conns); i++) {
        struct connection *c = connection_registry_at(l->conns, i);
        if (c->control_fd >= 0 && !(keep && c->state == CONNECTION_DESKTOP_READY)) {
            struct proto_message m;
            proto_message_init(&m, PROTO_CLOSE);
            (void)proto_set_string(m.text, sizeof(m.text), keep ? TEXT_RESTARTING : TEXT_SHUTDOWN);
            (void)proto_send(c->control_fd, &m); /* best effort */
            proto_message_done(&m);
        } else if (c->control_fd >= 0)
            kept++;
        connection_close_control(c);
    }
    if (kept)
        log_info("%zu connections keep running and re-attach to the next broker within %ds", kept,
                 l->cfg->reattach_timeout_s);
}

int broker_run(const struct broker_context *ctx)
{
    _cleanup_(connection_registry_freep) struct connection_registry *conns = NULL;
    _cleanup_(session_table_freep) struct session_table *sessions = NULL;
    _cleanup_(freep) struct pollfd *fds = NULL;
    _cleanup_(freep) uint64_t *ids = NULL;
    size_t allocated = 0;
    struct loop l = {.ctx = ctx, .cfg = ctx->config};
    enum { FD_SIGNAL, FD_AUTH, FD_DESKTOP, FD_LISTEN, FD_INBOX, FD_REATTACH, FD_FIRST };
    int r;

    r = connection_registry_new(&conns);
    if (r >= 0)
        r = session_table_new(&sessions);
    if (r < 0)
        return r;
    l.conns = conns;
    l.sessions = sessions;
    connection_registry_set_next_id(conns, ctx->first_session_id);
    if (throttle_startups_parse(ctx->config->max_startups, &l.startups) < 0)
        return -EINVAL; /* validated with the config */
    l.startups.per_address = (unsigned)ctx->config->max_startups_per_address;
    if (getrandom(&l.random_state, sizeof(l.random_state), GRND_NONBLOCK) != sizeof(l.random_state))
        l.random_state = now_ms();
    l.random_state |= 1;
    r = workers_new((unsigned)ctx->config->worker_threads, "vdi-auth", &l.auth_workers);
    if (r >= 0)
        r = workers_new((unsigned)ctx->config->worker_threads, "vdi-desktop", &l.desktop_workers);
    if (r < 0) {
        workers_free(l.auth_workers);
        return log_error_errno(r, "cannot start worker threads");
    }
    sessions_rebuild(&l);

    while (!l.stopping) {
        size_t n = 0, want = FD_FIRST + connection_registry_size(l.conns);
        uint64_t now;

        if (want > allocated) {
            struct pollfd *nf = realloc(fds, want * sizeof(*fds));
            uint64_t *ni = nf ? realloc(ids, want * sizeof(*ids)) : NULL;
            if (nf)
                fds = nf;
            if (!ni) {
                r = -ENOMEM;
                break;
            }
            ids = ni;
            allocated = want;
        }
        now = now_ms();
        if (l.accept_paused_until && now >= l.accept_paused_until)
            l.accept_paused_until = 0;
        fds[n++] = (struct pollfd){.fd = ctx->signal_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = workers_fd(l.auth_workers), .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = workers_fd(l.desktop_workers), .events = POLLIN};
        fds[n++] =
            (struct pollfd){.fd = l.accept_paused_until ? -1 : ctx->listen_fd, .events = POLLIN};
        fds[n++] =
            (struct pollfd){.fd = ctx->inbox ? broker_inbox_fd(ctx->inbox) : -1, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = ctx->reattach_fd, .events = POLLIN};
        for (size_t i = 0; i < connection_registry_size(l.conns); i++) {
            struct connection *c = connection_registry_at(l.conns, i);
            if (c->control_fd < 0)
                continue;
            ids[n] = c->id;
            fds[n++] = (struct pollfd){.fd = c->control_fd, .events = POLLIN};
        }

        if (poll(fds, n, next_timeout(&l)) < 0) {
            if (errno == EINTR)
                continue;
            r = log_error_errno(-errno, "poll failed");
            break;
        }

        if (fds[FD_SIGNAL].revents)
            on_signal(&l);
        if (l.stopping)
            break;
        if (fds[FD_AUTH].revents)
            workers_dispatch(l.auth_workers);
        if (fds[FD_DESKTOP].revents)
            workers_dispatch(l.desktop_workers);
        if (fds[FD_INBOX].revents)
            on_inbox(&l, false);
        for (size_t i = FD_FIRST; i < n; i++) {
            struct connection *c;
            if (!fds[i].revents)
                continue;
            c = connection_registry_find(l.conns, ids[i]);
            if (c && c->control_fd == fds[i].fd)
                on_control(&l, c, fds[i].revents);
        }
        if (fds[FD_REATTACH].revents)
            reattach_accept(&l);
        if (fds[FD_LISTEN].revents)
            on_accept(&l);

        now = now_ms();
        for (size_t i = connection_registry_size(l.conns); i-- > 0;) {
            struct connection *c = connection_registry_at(l.conns, i);
            if (c->deadline_ms && now >= c->deadline_ms)
                on_deadline(&l, c);
        }
        sessions_tick(&l, now);
        reattach_orphans_tick(&l, now);
        if (!l.maintaining && now >= l.maintain_due_ms)
            maintain_submit(&l);
    }
    if (ctx->inbox)
        on_inbox(&l, true);

    shutdown_connections(&l);
    l.stopping = true;
    workers_free(l.auth_workers); /* joins; unfinished jobs are dropped */
    workers_free(l.desktop_workers);
    free(l.orphans);
    return r;
}

int broker_inbox_fd(const struct broker_inbox *in)
{
    return in->event_fd;
}
