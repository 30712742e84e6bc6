#pragma once
/*
 * Desktop sessions: what ties a user, a desktop and the connections to it, and outlives
 * any one connection. The broker keeps one per (user, desktop) in use; this module holds
 * them and decides, from the clocks and the pool's policies, what is due next. It does
 * no I/O: the broker carries the decisions out (messages to vdi-session processes, the
 * logoff job).
 *
 *   ACTIVE        the user's connection is attached (and maybe admins watching)
 *   DISCONNECTED  no user connection: the desktop stays as it is until grace_from_ms +
 *                 grace_s, then the pool's logoff action runs; a login of the same user
 *                 to the same desktop before that re-attaches (reconnect)
 *   ENDING        the logoff action was started (or the desktop stopped): the record
 *                 goes when the broker says it is done; a new login makes a new session
 *
 * Policies (per pool, seconds, 0 = off): idle_timeout_s (no keyboard or pointer input
 * from the user's connection: warn, then disconnect: the grace period follows),
 * max_session_s (from the session's start: warn, then disconnect and log off at once:
 * the grace period would otherwise let the user go on after the limit), grace_s.
 * Warnings come SESSION_WARNING_S before the event (a quarter of the timeout for short
 * ones).
 *
 * Event loop thread only, like the connection registry.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connection.h"

#define SESSION_WARNING_S 60

enum session_state { SESSION_ACTIVE, SESSION_DISCONNECTED, SESSION_ENDING };

struct session_policy {
    int grace_s;
    int idle_timeout_s;
    int max_session_s;
};

struct session {
    uint64_t id;
    char user[CONNECTION_MAX_USER + 1];
    char pool[CONNECTION_MAX_NAME + 1];
    char desktop[CONNECTION_MAX_NAME + 1];
    enum session_state state;
    struct session_policy policy;
    int64_t started;          /* unix seconds */
    uint64_t started_ms;      /* monotonic */
    uint64_t user_connection; /* ACTIVE: the user's connection id; else 0 */
    uint64_t grace_from_ms;   /* DISCONNECTED: the grace period runs from here */
    uint64_t last_input_ms;   /* monotonic: the user's last keyboard/pointer input */
    uint64_t bytes_to_client, bytes_from_client; /* of its connections that ended */
    bool idle_warned, max_warned;
};

/* What is due for a session now, in the order the broker should act. */
enum session_due {
    SESSION_DUE_NOTHING,
    SESSION_DUE_IDLE_WARNING, /* tell the user: disconnect in *ret_seconds */
    SESSION_DUE_IDLE_CLEAR,   /* input came back after a warning: remove it */
    SESSION_DUE_IDLE_TIMEOUT, /* disconnect the user's connection */
    SESSION_DUE_MAX_WARNING,  /* tell the user: session ends in *ret_seconds */
    SESSION_DUE_MAX_TIMEOUT,  /* close every connection and log off now */
    SESSION_DUE_LOGOFF,       /* the grace period is over */
};

const char *session_state_to_string(enum session_state state);

/* Decides what is due at now_ms and updates the warned flags as if the broker did it.
 * *ret_seconds: for warnings, the seconds left. */
enum session_due session_due(struct session *s, uint64_t now_ms, int *ret_seconds);
/* When session_due() next has something to say (monotonic ms), or 0 for never. */
uint64_t session_next_deadline(const struct session *s);

/* The table of sessions. */
struct session_table;

int session_table_new(struct session_table **ret);
void session_table_free(struct session_table *t);
static inline void session_table_freep(struct session_table **t)
{
    session_table_free(*t);
}
/* A new session in DISCONNECTED with grace_from_ms = now_ms (the caller attaches a
 * connection at once, or leaves it waiting for re-attaching connections). Returns it, or
 * NULL (out of memory, invalid names). */
struct session *session_table_add(struct session_table *t, uint64_t id, const char *user,
                                  const char *pool, const char *desktop,
                                  const struct session_policy *policy, int64_t started,
                                  uint64_t now_ms);
void session_table_remove(struct session_table *t, struct session *s);
struct session *session_table_find(const struct session_table *t, uint64_t id);
/* The session of user on desktop that is not ENDING, or NULL. */
struct session *session_table_find_user(const struct session_table *t, const char *user,
                                        const char *desktop);
/* The user's session in pool that is not ENDING (a user has one desktop per pool). */
struct session *session_table_find_pool(const struct session_table *t, const char *user,
                                        const char *pool);
size_t session_table_size(const struct session_table *t);
struct session *session_table_at(const struct session_table *t, size_t i);

/* State changes. attach: the user's connection c (ACTIVE; idle clock from c). detach:
 * the user's connection left at now_ms (DISCONNECTED, grace from now; its byte totals
 * are kept). */
void session_attach(struct session *s, const struct connection *c);
void session_detach(struct session *s, const struct connection *c, uint64_t now_ms);
