#pragma once
/*
 * Inside the broker's event loop (broker.h), shared by broker.c (the loop, accepting,
 * logins, control messages), broker-sessions.c (desktop sessions: reconnect, takeover,
 * grace, timeouts, shadowing, admin actions, desktop events) and broker-reattach.c
 * (connections of a previous broker run coming back).
 */
#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "broker.h"
#include "certs.h"
#include "connection.h"
#include "proto.h"
#include "session-info.h"
#include "session.h"
#include "throttle.h"
#include "virt.h"
#include "workers.h"

struct loop {
    const struct broker_context *ctx;
    const struct broker_config *cfg;
    struct connection_registry *conns;
    struct session_table *sessions;
    /* Two pools, so that slow or stuck libvirt calls never hold up PAM checks and a
     * flood of PAM checks never holds up a desktop start. */
    struct workers *auth_workers;
    struct workers *desktop_workers;
    struct throttle_startups startups;
    uint64_t random_state;
    bool stopping;
    uint64_t accept_paused_until;
    uint64_t refused_logged_ms;
    unsigned refused_suppressed;
    bool maintaining;         /* a JOB_MAINTAIN is queued or running */
    uint64_t maintain_due_ms; /* next spare check */
    /* Connection rows of the previous broker run that may still re-attach; ended when
     * orphans_due_ms passes without them. */
    uint64_t *orphans;
    size_t n_orphans;
    uint64_t orphans_due_ms;
};

enum job_kind {
    JOB_AUTH,            /* throttled PAM check, then entitlement or admin group */
    JOB_DESKTOP,         /* claim, start and open a desktop for a user's connection */
    JOB_SHADOW,          /* open a session's desktop for an admin, view-only */
    JOB_REATTACH,        /* check a re-attach token against the store */
    JOB_CONNECTION_END,  /* a connection ended: its row and usage */
    JOB_LOGOFF,          /* the grace period is over: the pool's logoff action */
    JOB_DESKTOP_STOPPED, /* a desktop stopped on its own: the pool's policy */
    JOB_MAINTAIN,        /* spare desktops, delayed restarts */
};

struct job {
    struct loop *loop;
    enum job_kind kind;
    uint64_t connection_id;
    uint64_t session_id;
    uint64_t shadow_target;
    uint64_t reattach_id; /* JOB_REATTACH: the connection id the session claims */
    char user[CONNECTION_MAX_USER + 1];
    char pool[CONNECTION_MAX_NAME + 1];
    char desktop[CONNECTION_MAX_NAME + 1];
    char address[CONNECTION_MAX_ADDRESS];
    char *password;               /* JOB_AUTH; wiped */
    char token[CERTS_TOKEN_SIZE]; /* JOB_DESKTOP, JOB_SHADOW, JOB_REATTACH; wiped */
    int result;
    bool pam_failed;              /* JOB_AUTH: PAM said no (counts for throttling) */
    char detail[768];             /* for the log */
    char user_text[256];          /* failure text for the user */
    int display_fd;               /* JOB_DESKTOP, JOB_SHADOW */
    enum virt_event event;        /* JOB_DESKTOP_STOPPED */
    struct store_session row;     /* JOB_REATTACH */
    struct session_policy policy; /* JOB_DESKTOP, JOB_REATTACH: of the desktop's pool */
    uint64_t closing[4];          /* JOB_LOGOFF: user connections told to close (their
                                     process may linger a moment): ended first */
    size_t n_closing;
};

struct job *job_new(struct loop *l, enum job_kind kind, const struct connection *c);
void job_free(struct job *j);
/* Queues j on the right worker pool; on failure the caller still owns j. */
int job_submit(struct loop *l, struct job *j);
/* Queues a job that needs nothing back (logged when it cannot be queued). */
void job_submit_simple(struct loop *l, enum job_kind kind, uint64_t connection_id,
                       uint64_t session_id, const char *desktop);

/* "1 second", "90 seconds", "5 minutes", "2 hours": durations in texts users read. */
struct duration_text {
    char s[32];
};
struct duration_text duration_text(uint64_t seconds);

/* ---- connections (broker.c) ---- */

void conn_kill(struct loop *l, struct connection *c, const char *why);
void conn_protocol_violation(struct loop *l, struct connection *c, const char *what);
/* Sends m; a connection that cannot take a message is killed. 0 or -errno. */
int conn_send(struct loop *l, struct connection *c, struct proto_message *m);
/* Sends CLOSE with text (a printf format), closes the control socket and gives the
 * process a grace period to exit. */
void conn_close(struct loop *l, struct connection *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The answer to a login (AUTH_RESULT) or re-attach (REATTACH_RESULT): no, because text;
 * then as conn_close. */
void conn_refuse(struct loop *l, struct connection *c, enum proto_type type, const char *text);
/* Sends a NOTICE ("" removes the banner). */
void conn_notice(struct loop *l, struct connection *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- desktop sessions (broker-sessions.c) ---- */

/* The policy of a pool, from its store record. */
void policy_from_pool(const struct store_pool *pool, struct session_policy *ret);
/* JOB_DESKTOP / JOB_SHADOW finished for a connection (NULL when it went away meanwhile). */
void sessions_desktop_done(struct loop *l, struct job *j, struct connection *c);
void sessions_shadow_done(struct loop *l, struct job *j, struct connection *c);
/* The session a user login in pool would continue (its id), else a fresh id. */
uint64_t sessions_id_for_login(struct loop *l, const char *user, const char *pool);
/* A connection with a desktop is gone (process exited, or its control socket closed for
 * a re-attached one): the session learns of it, the row is closed off the loop. */
void sessions_connection_gone(struct loop *l, struct connection *c);
/* An ACTIVITY report. */
void sessions_activity(struct loop *l, struct connection *c, const struct proto_message *m);
/* Timers: what is due now, and when next. */
void sessions_tick(struct loop *l, uint64_t now);
uint64_t sessions_next_deadline(struct loop *l);
/* JOB_LOGOFF finished. */
void sessions_logoff_done(struct loop *l, struct job *j);
/* Admin requests (through the inbox). */
int sessions_admin_action(struct loop *l, uint64_t session_id, bool logoff, const char *by);
int sessions_snapshot(struct loop *l, struct session_info **ret, size_t *ret_n);
/* A desktop stopped without the broker asking. */
void sessions_desktop_stopped(struct loop *l, const char *desktop, enum virt_event ev);
/* A session record for c's desktop session, made if needed (re-attach, rebuild). */
struct session *sessions_ensure(struct loop *l, uint64_t id, const char *user, const char *pool,
                                const char *desktop, const struct session_policy *policy,
                                int64_t started);
/* A connection of the previous run re-attached as row says: it joins its session (made
 * if needed). Returns NULL, or why it cannot (a text for the user). */
const char *sessions_reattached(struct loop *l, struct connection *c,
                                const struct store_session *row,
                                const struct session_policy *policy);
/* Every session at the start of a run (rows of the previous one). */
void sessions_rebuild(struct loop *l);

/* ---- re-attaching connections (broker-reattach.c) ---- */

void reattach_accept(struct loop *l);
void reattach_request(struct loop *l, struct connection *c, struct proto_message *m);
void reattach_done(struct loop *l, struct job *j, struct connection *c);
/* Rows of the previous run that did not come back in time are closed. */
void reattach_orphans_tick(struct loop *l, uint64_t now);
