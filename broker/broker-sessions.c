/*
 * Desktop sessions in the broker's loop (broker-internal.h): a login to a desktop that
 * already has a session continues it (reconnect after a drop, takeover from another
 * device), the grace period after a disconnect, idle and maximum session time, admins
 * watching (shadowing), admin actions and desktops that stop by themselves. The clocks
 * and rules are in session/session.h; this file carries them out.
 */
#include "broker-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

#define TEXT_TAKEOVER "Your session was opened from %s"
#define TEXT_DISCONNECTED "Your session was disconnected by an administrator"
#define TEXT_ENDED_BY_ADMIN "Your session was ended by an administrator"
#define TEXT_IDLE_WARNING                                                                          \
    "No keyboard or mouse input: you will be disconnected in %d seconds unless you use them"
#define TEXT_IDLE_TIMEOUT "You were disconnected after %s without keyboard or mouse input"
#define TEXT_MAX_WARNING "Your session reaches its time limit in %d seconds and will then end"
#define TEXT_MAX_TIMEOUT "Your session reached its time limit of %s and was ended"
#define TEXT_WATCHED "An administrator (%s) is watching your screen"
#define TEXT_WATCH_ENDED "The session you were watching ended"
#define TEXT_SESSION_GONE "The session you asked to watch has ended"

void policy_from_pool(const struct store_pool *pool, struct session_policy *ret)
{
    *ret = (struct session_policy){
        .grace_s = pool->disconnect_grace_s,
        .idle_timeout_s = pool->idle_timeout_s,
        .max_session_s = pool->max_session_s,
    };
}

static struct connection *user_connection(struct loop *l, const struct session *s)
{
    return s->user_connection ? connection_registry_find(l->conns, s->user_connection) : NULL;
}

static bool is_shadow_of(const struct connection *c, const struct session *s)
{
    return c->role == CONNECTION_SHADOW && c->session_id == s->id &&
           c->state == CONNECTION_DESKTOP_READY;
}

static unsigned shadows_of(struct loop *l, const struct session *s)
{
    unsigned n = 0;

    for (size_t i = 0; i < connection_registry_size(l->conns); i++)
        n += is_shadow_of(connection_registry_at(l->conns, i), s);
    return n;
}

/* The banner over the user's desktop, one at a time, most urgent first: the idle warning,
 * the time-limit warning, "an administrator is watching" (shadow_policy notify), else
 * none. Sent whenever one of them may have changed; skip: a shadow that is leaving. */
static void banner_refresh(struct loop *l, struct session *s, const struct connection *skip)
{
    struct connection *u = user_connection(l, s);
    uint64_t now = now_ms();
    const char *admin = NULL;

    if (!u)
        return;
    if (s->idle_warned) {
        uint64_t end = s->last_input_ms + (uint64_t)s->policy.idle_timeout_s * 1000;
        conn_notice(l, u, TEXT_IDLE_WARNING, end > now ? (int)((end - now + 999) / 1000) : 0);
        return;
    }
    if (s->max_warned) {
        uint64_t end = s->started_ms + (uint64_t)s->policy.max_session_s * 1000;
        conn_notice(l, u, TEXT_MAX_WARNING, end > now ? (int)((end - now + 999) / 1000) : 0);
        return;
    }
    for (size_t i = 0; i < connection_registry_size(l->conns) && !admin; i++) {
        const struct connection *c = connection_registry_at(l->conns, i);
        if (c != skip && is_shadow_of(c, s))
            admin = c->user;
    }
    if (admin && streq(l->cfg->shadow_policy, "notify"))
        conn_notice(l, u, TEXT_WATCHED, admin);
    else
        conn_notice(l, u, "%s", "");
}

uint64_t sessions_id_for_login(struct loop *l, const char *user, const char *pool)
{
    struct session *s = session_table_find_pool(l->sessions, user, pool);

    return s ? s->id : connection_registry_next_id(l->conns);
}

struct session *sessions_ensure(struct loop *l, uint64_t id, const char *user, const char *pool,
                                const char *desktop, const struct session_policy *policy,
                                int64_t started)
{
    struct session *s = session_table_find(l->sessions, id);

    if (s)
        return s;
    s = session_table_add(l->sessions, id, user, pool, desktop, policy, started, now_ms());
    if (!s)
        log_error("session=%" PRIu64 " user=%s desktop=%s cannot be tracked: out of memory", id,
                  user, desktop);
    return s;
}

/* The user's connection leaves the session now (closed by the broker or gone). */
static void detach_user(struct loop *l, struct session *s, struct connection *c, const char *reason)
{
    if (s->user_connection != c->id)
        return;
    session_detach(s, c, now_ms());
    log_info("session disconnected id=%" PRIu64 " user=%s desktop=%s client=%s reason=%s "
             "grace=%ds",
             s->id, s->user, s->desktop, c->address, reason, s->policy.grace_s);
    (void)audit_event(l->ctx->audit, "session.disconnect", "session", u64_text(s->id).s, "user",
                      s->user, "desktop", s->desktop, "client", c->address, "reason", reason, NULL);
}

/* Closes every connection of s (the user's and the watching admins') with a reason. */
static void close_all(struct loop *l, struct session *s, const char *user_text, const char *reason)
{
    struct connection *u = user_connection(l, s);

    if (u) {
        detach_user(l, s, u, reason);
        conn_close(l, u, "%s", user_text);
    }
    for (size_t i = 0; i < connection_registry_size(l->conns); i++) {
        struct connection *c = connection_registry_at(l->conns, i);
        if (is_shadow_of(c, s))
            conn_close(l, c, "%s", TEXT_WATCH_ENDED);
    }
}

/* The session is over: the pool's logoff action runs now. */
static void logoff(struct loop *l, struct session *s, const char *reason)
{
    close_all(l, s, "Your session ended", reason); /* only watching admins are left */
    s->state = SESSION_ENDING;
    log_info("session ended id=%" PRIu64 " user=%s desktop=%s reason=%s", s->id, s->user,
             s->desktop, reason);
    (void)audit_event(l->ctx->audit, "session.end", "session", u64_text(s->id).s, "user", s->user,
                      "desktop", s->desktop, "reason", reason, NULL);
    struct job *j = job_new(l, JOB_LOGOFF, NULL);
    if (!j) {
        log_error("session=%" PRIu64 " cannot queue its logoff: out of memory", s->id);
        return;
    }
    j->session_id = s->id;
    snprintf(j->desktop, sizeof(j->desktop), "%s", s->desktop);
    snprintf(j->user, sizeof(j->user), "%s", s->user);
    /* A user connection just told to close still counts as connected until its process
     * exits; the logoff must not wait for that (nor skip because of it). */
    for (size_t i = 0; i < connection_registry_size(l->conns); i++) {
        const struct connection *c = connection_registry_at(l->conns, i);
        if (c->role == CONNECTION_USER && c->session_id == s->id &&
            j->n_closing < ARRAY_SIZE(j->closing))
            j->closing[j->n_closing++] = c->id;
    }
    if (job_submit(l, j) < 0) {
        log_error("session=%" PRIu64 " cannot queue its logoff", s->id);
        job_free(j);
    }
}

void sessions_logoff_done(struct loop *l, struct job *j)
{
    struct session *s = session_table_find(l->sessions, j->session_id);

    if (s && s->state == SESSION_ENDING)
        session_table_remove(l->sessions, s);
}

static int send_ready(struct loop *l, struct connection *c, struct job *j, uint8_t flags)
{
    struct proto_message m;
    int r;

    proto_message_init(&m, PROTO_DESKTOP_READY);
    (void)proto_set_string(m.text, sizeof(m.text), j->desktop);
    (void)proto_set_string(m.token, sizeof(m.token), j->token);
    m.id = c->id;
    m.flags = flags;
    m.fd = TAKE_FD(j->display_fd);
    r = conn_send(l, c, &m);
    proto_message_done(&m); /* closes the broker's copy of the display fd, wipes the token */
    if (r == 0)
        c->deadline_ms = 0;
    return r;
}

/* c becomes a connection of s: common to logins and re-attaches. */
static void connection_joins(struct connection *c, const struct session *s,
                             enum connection_role role)
{
    c->role = role;
    c->session_id = s->id;
    snprintf(c->desktop, sizeof(c->desktop), "%s", s->desktop);
    snprintf(c->pool, sizeof(c->pool), "%s", s->pool);
    c->last_input_ms = now_ms();
}

void sessions_desktop_done(struct loop *l, struct job *j, struct connection *c)
{
    struct session *s;
    struct connection *previous;
    const char *event;

    if (j->result < 0) {
        log_error("desktop failed user=%s pool=%s session=%" PRIu64 " error=%s: %s", j->user,
                  j->pool[0] ? j->pool : "-", j->connection_id, strerror(-j->result), j->detail);
        if (c)
            conn_close(l, c, "%s", j->user_text[0] ? j->user_text : "Internal server error");
        return;
    }
    /* The session this login continues: same user, same desktop, not being logged off. */
    s = session_table_find(l->sessions, j->session_id);
    if (!s || s->state == SESSION_ENDING || !streq(s->desktop, j->desktop))
        s = session_table_find_user(l->sessions, j->user, j->desktop);
    event = s ? (s->state == SESSION_ACTIVE ? "session.takeover" : "session.reconnect")
              : "session.start";
    if (!s)
        s = sessions_ensure(l,
                            session_table_find(l->sessions, j->session_id)
                                ? connection_registry_next_id(l->conns)
                                : j->session_id,
                            j->user, j->pool, j->desktop, &j->policy, (int64_t)time(NULL));
    if (!c || connection_set_state(c, CONNECTION_DESKTOP_READY) < 0) {
        /* The client gave up while its desktop started: the session waits out its grace
         * period like any disconnected one, so the desktop is logged off in the end. */
        log_info("session=%" PRIu64 " went away before its desktop %s was ready", j->connection_id,
                 j->desktop);
        job_submit_simple(l, JOB_CONNECTION_END, j->connection_id, 0, NULL);
        return;
    }
    if (!s) {
        conn_close(l, c, "%s", "Internal server error");
        return;
    }
    connection_joins(c, s, CONNECTION_USER);
    previous = user_connection(l, s);
    if (previous) {
        /* Takeover: the newest login wins; the other device hears from where. */
        log_info("session takeover id=%" PRIu64 " user=%s desktop=%s from=%s to=%s", s->id, s->user,
                 s->desktop, previous->address, c->address);
        detach_user(l, s, previous, "takeover");
        conn_close(l, previous, TEXT_TAKEOVER, c->address);
    }
    session_attach(s, c);
    if (send_ready(l, c, j, 0) < 0)
        return;
    log_info("desktop ready name=%s user=%s session=%" PRIu64 " connection=%" PRIu64 " event=%s",
             j->desktop, j->user, s->id, c->id, event);
    (void)audit_event(l->ctx->audit, event, "session", u64_text(s->id).s, "user", s->user,
                      "desktop", s->desktop, "pool", s->pool, "client", c->address, "previous",
                      previous ? previous->address : NULL, NULL);
    if (s->max_warned || shadows_of(l, s))
        banner_refresh(l, s, NULL); /* what the previous device showed */
}

void sessions_shadow_done(struct loop *l, struct job *j, struct connection *c)
{
    struct session *s = session_table_find(l->sessions, j->session_id);

    if (j->result < 0 || !c || !s || s->state == SESSION_ENDING ||
        connection_set_state(c, CONNECTION_DESKTOP_READY) < 0) {
        if (j->result < 0)
            log_error("shadow failed admin=%s session=%" PRIu64 " error=%s: %s", j->user,
                      j->session_id, strerror(-j->result), j->detail);
        else
            job_submit_simple(l, JOB_CONNECTION_END, j->connection_id, 0, NULL);
        if (c && c->state != CONNECTION_CLOSING)
            conn_close(l, c, "%s",
                       j->result < 0 ? "The session's desktop cannot be shown" : TEXT_SESSION_GONE);
        return;
    }
    connection_joins(c, s, CONNECTION_SHADOW);
    if (send_ready(l, c, j, PROTO_FLAG_VIEW_ONLY) < 0)
        return;
    log_info("shadow started admin=%s session=%" PRIu64 " user=%s desktop=%s client=%s", c->user,
             s->id, s->user, s->desktop, c->address);
    (void)audit_event(l->ctx->audit, "session.shadow.start", "actor", c->user, "session",
                      u64_text(s->id).s, "user", s->user, "desktop", s->desktop, "client",
                      c->address, "notified", streq(l->cfg->shadow_policy, "notify") ? "yes" : "no",
                      NULL);
    banner_refresh(l, s, NULL);
}

const char *sessions_reattached(struct loop *l, struct connection *c,
                                const struct store_session *row,
                                const struct session_policy *policy)
{
    struct session *s = sessions_ensure(l, row->session_id ? row->session_id : row->id, row->user,
                                        row->pool, row->desktop, policy, row->started);
    struct connection *other;

    if (!s || s->state == SESSION_ENDING || !streq(s->desktop, row->desktop))
        return "Your session has ended; please log in again";
    other = user_connection(l, s);
    if (row->kind == STORE_SESSION_USER && other && other != c)
        return "Your session was opened from another device";
    if (connection_set_state(c, CONNECTION_DESKTOP_READY) < 0)
        return "Internal server error";
    connection_joins(c, s, row->kind == STORE_SESSION_SHADOW ? CONNECTION_SHADOW : CONNECTION_USER);
    if (c->role == CONNECTION_USER)
        session_attach(s, c);
    log_info("session re-attached id=%" PRIu64 " connection=%" PRIu64 " user=%s desktop=%s "
             "client=%s",
             s->id, c->id, c->user, s->desktop, c->address);
    (void)audit_event(l->ctx->audit, "session.reattach", "session", u64_text(s->id).s, "user",
                      c->user, "desktop", s->desktop, "client", c->address, "kind",
                      store_session_kind_to_string(row->kind), NULL);
    return NULL;
}

void sessions_connection_gone(struct loop *l, struct connection *c)
{
    struct session *s = session_table_find(l->sessions, c->session_id);

    if (c->role == CONNECTION_USER && s)
        detach_user(l, s, c, "client left");
    else if (c->role == CONNECTION_SHADOW) {
        log_info("shadow ended admin=%s session=%" PRIu64, c->user, c->session_id);
        (void)audit_event(l->ctx->audit, "session.shadow.end", "actor", c->user, "session",
                          u64_text(c->session_id).s, NULL);
        if (s)
            banner_refresh(l, s, c);
    }
    job_submit_simple(l, JOB_CONNECTION_END, c->id, 0, NULL);
}

void sessions_activity(struct loop *l, struct connection *c, const struct proto_message *m)
{
    uint64_t now = now_ms();
    struct session *s;

    c->last_input_ms = m->idle_ms < now ? now - m->idle_ms : 0;
    c->bytes_to_client = m->bytes_to_client;
    c->bytes_from_client = m->bytes_from_client;
    s = session_table_find(l->sessions, c->session_id);
    if (s && c->role == CONNECTION_USER && s->user_connection == c->id)
        s->last_input_ms = c->last_input_ms;
}

void sessions_tick(struct loop *l, uint64_t now)
{
    for (size_t i = session_table_size(l->sessions); i-- > 0;) {
        struct session *s = session_table_at(l->sessions, i);
        struct connection *u = user_connection(l, s);
        char text[256];
        int secs;

        switch (session_due(s, now, &secs)) {
        case SESSION_DUE_NOTHING:
            break;
        case SESSION_DUE_IDLE_WARNING:
        case SESSION_DUE_IDLE_CLEAR:
        case SESSION_DUE_MAX_WARNING:
            banner_refresh(l, s, NULL);
            break;
        case SESSION_DUE_IDLE_TIMEOUT:
            log_info("session idle timeout id=%" PRIu64 " user=%s idle_timeout_s=%d", s->id,
                     s->user, s->policy.idle_timeout_s);
            (void)audit_event(l->ctx->audit, "session.timeout", "session", u64_text(s->id).s,
                              "user", s->user, "desktop", s->desktop, "kind", "idle", NULL);
            if (u) {
                detach_user(l, s, u, "idle timeout");
                conn_close(l, u, TEXT_IDLE_TIMEOUT, duration_text(s->policy.idle_timeout_s).s);
            }
            break;
        case SESSION_DUE_MAX_TIMEOUT:
            log_info("session time limit id=%" PRIu64 " user=%s max_session_s=%d", s->id, s->user,
                     s->policy.max_session_s);
            (void)audit_event(l->ctx->audit, "session.timeout", "session", u64_text(s->id).s,
                              "user", s->user, "desktop", s->desktop, "kind", "max", NULL);
            snprintf(text, sizeof(text), TEXT_MAX_TIMEOUT,
                     duration_text(s->policy.max_session_s).s);
            close_all(l, s, text, "time limit");
            logoff(l, s, "time limit");
            break;
        case SESSION_DUE_LOGOFF:
            logoff(l, s,
                   s->policy.max_session_s &&
                           now >= s->started_ms + (uint64_t)s->policy.max_session_s * 1000
                       ? "time limit"
                       : "grace period over");
            break;
        }
    }
}

uint64_t sessions_next_deadline(struct loop *l)
{
    uint64_t next = 0;

    for (size_t i = 0; i < session_table_size(l->sessions); i++) {
        uint64_t d = session_next_deadline(session_table_at(l->sessions, i));
        if (d && (!next || d < next))
            next = d;
    }
    return next;
}

int sessions_admin_action(struct loop *l, uint64_t id, bool end, const char *by)
{
    struct session *s = session_table_find(l->sessions, id);
    struct connection *u;
    char reason[64];

    if (!s || s->state == SESSION_ENDING)
        return -ENOENT;
    snprintf(reason, sizeof(reason), "admin %s", by);
    if (end) {
        close_all(l, s, TEXT_ENDED_BY_ADMIN, reason);
        logoff(l, s, reason);
        return 0;
    }
    u = user_connection(l, s);
    if (!u)
        return -ENOENT;
    detach_user(l, s, u, reason);
    conn_close(l, u, "%s", TEXT_DISCONNECTED);
    return 0;
}

int sessions_snapshot(struct loop *l, struct session_info **ret, size_t *ret_n)
{
    size_t n = session_table_size(l->sessions);
    struct session_info *infos = calloc(n ? n : 1, sizeof(*infos));
    uint64_t now = now_ms();

    if (!infos)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct session *s = session_table_at(l->sessions, i);
        const struct connection *u = user_connection(l, s);
        struct session_info *info = &infos[i];

        info->id = s->id;
        snprintf(info->user, sizeof(info->user), "%s", s->user);
        snprintf(info->pool, sizeof(info->pool), "%s", s->pool);
        snprintf(info->desktop, sizeof(info->desktop), "%s", s->desktop);
        snprintf(info->state, sizeof(info->state), "%s", session_state_to_string(s->state));
        snprintf(info->client, sizeof(info->client), "%s", u ? u->address : "");
        info->started = s->started;
        info->idle_s = now > s->last_input_ms ? (int64_t)((now - s->last_input_ms) / 1000) : 0;
        if (s->state == SESSION_DISCONNECTED && now > s->grace_from_ms)
            info->disconnected_s = (int64_t)((now - s->grace_from_ms) / 1000);
        info->bytes_to_client = s->bytes_to_client + (u ? u->bytes_to_client : 0);
        info->bytes_from_client = s->bytes_from_client + (u ? u->bytes_from_client : 0);
        info->shadows = shadows_of(l, s);
    }
    *ret = infos;
    *ret_n = n;
    return 0;
}

static const char *stopped_text(enum virt_event ev)
{
    switch (ev) {
    case VIRT_EVENT_SHUTDOWN:
        return "Your desktop was shut down";
    case VIRT_EVENT_DESTROYED:
        return "Your desktop was powered off";
    case VIRT_EVENT_CRASHED:
        return "Your desktop stopped unexpectedly; log in again in a moment";
    default:
        return "Your desktop was stopped";
    }
}

void sessions_desktop_stopped(struct loop *l, const char *desktop, enum virt_event ev)
{
    if (ev == VIRT_EVENT_STARTED)
        return;
    for (size_t i = session_table_size(l->sessions); i-- > 0;) {
        struct session *s = session_table_at(l->sessions, i);
        char reason[64];

        if (!streq(s->desktop, desktop) || s->state == SESSION_ENDING)
            continue;
        snprintf(reason, sizeof(reason), "desktop %s", virt_event_to_string(ev));
        close_all(l, s, stopped_text(ev), reason);
        log_info("session ended id=%" PRIu64 " user=%s desktop=%s reason=%s", s->id, s->user,
                 desktop, reason);
        (void)audit_event(l->ctx->audit, "session.end", "session", u64_text(s->id).s, "user",
                          s->user, "desktop", desktop, "reason", reason, NULL);
        session_table_remove(l->sessions, s);
    }
    (void)audit_event(l->ctx->audit, "desktop.stopped", "desktop", desktop, "kind",
                      virt_event_to_string(ev), NULL);
    struct job *j = job_new(l, JOB_DESKTOP_STOPPED, NULL);
    if (j) {
        snprintf(j->desktop, sizeof(j->desktop), "%s", desktop);
        j->event = ev;
    }
    if (!j || job_submit(l, j) < 0) {
        log_error("desktop %s stopped (%s) but its policy cannot be queued", desktop,
                  virt_event_to_string(ev));
        job_free(j);
    }
}

void sessions_rebuild(struct loop *l)
{
    _cleanup_(freep) struct store_session *rows = NULL;
    size_t n = 0;
    uint64_t now = now_ms(), window = (uint64_t)l->cfg->reattach_timeout_s * 1000;

    if (pools_open_sessions(l->ctx->pools, &rows, &n) < 0) {
        log_error("cannot read the sessions of the previous run");
        return;
    }
    if (!n)
        return;
    l->orphans = calloc(n, sizeof(*l->orphans));
    for (size_t i = 0; i < n; i++) {
        const struct store_session *row = &rows[i];
        struct session_policy policy = {.grace_s = 300};
        struct store_pool pool;
        struct session *s;

        if (l->orphans)
            l->orphans[l->n_orphans++] = row->id;
        if (row->kind != STORE_SESSION_USER)
            continue;
        if (pools_pool_get(l->ctx->pools, row->pool, &pool) == 0)
            policy_from_pool(&pool, &policy);
        s = sessions_ensure(l, row->session_id ? row->session_id : row->id, row->user, row->pool,
                            row->desktop, &policy, row->started);
        /* The grace period starts once the connection had its chance to re-attach. */
        if (s)
            s->grace_from_ms = now + window;
    }
    /* A few seconds on top: a session retrying every 5 s may come just at the end. */
    l->orphans_due_ms = now + (window ? window + 10000 : 0) + 1;
    log_info("%zu connections of the previous run may re-attach within %ds; %zu sessions kept", n,
             l->cfg->reattach_timeout_s, session_table_size(l->sessions));
}
