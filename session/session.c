/* Desktop sessions and their policy clocks (session.h). */
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct session_table {
    struct session **items;
    size_t n, allocated;
};

const char *session_state_to_string(enum session_state state)
{
    static const char *const names[] = {
        [SESSION_ACTIVE] = "connected",
        [SESSION_DISCONNECTED] = "disconnected",
        [SESSION_ENDING] = "ending",
    };

    return (size_t)state < ARRAY_SIZE(names) ? names[state] : "invalid";
}

/* How long before a timeout of timeout_s the user is warned. */
static uint64_t warning_ms(int timeout_s)
{
    int s = timeout_s >= 4 * SESSION_WARNING_S ? SESSION_WARNING_S : timeout_s / 4;
    return (uint64_t)s * 1000;
}

static int seconds_left(uint64_t deadline, uint64_t now)
{
    return deadline > now ? (int)((deadline - now + 999) / 1000) : 0;
}

static uint64_t idle_deadline(const struct session *s)
{
    return s->last_input_ms + (uint64_t)s->policy.idle_timeout_s * 1000;
}

static uint64_t max_deadline(const struct session *s)
{
    return s->started_ms + (uint64_t)s->policy.max_session_s * 1000;
}

enum session_due session_due(struct session *s, uint64_t now, int *ret_seconds)
{
    *ret_seconds = 0;
    switch (s->state) {
    case SESSION_ENDING:
        return SESSION_DUE_NOTHING;
    case SESSION_DISCONNECTED:
        if (s->policy.max_session_s && now >= max_deadline(s))
            return SESSION_DUE_LOGOFF; /* no grace past the limit */
        return now >= s->grace_from_ms + (uint64_t)s->policy.grace_s * 1000 ? SESSION_DUE_LOGOFF
                                                                            : SESSION_DUE_NOTHING;
    case SESSION_ACTIVE:
        break;
    }
    if (s->policy.max_session_s) {
        uint64_t end = max_deadline(s);
        if (now >= end)
            return SESSION_DUE_MAX_TIMEOUT;
        if (!s->max_warned && now + warning_ms(s->policy.max_session_s) >= end) {
            s->max_warned = true;
            *ret_seconds = seconds_left(end, now);
            return SESSION_DUE_MAX_WARNING;
        }
    }
    if (s->policy.idle_timeout_s) {
        uint64_t end = idle_deadline(s);
        if (now >= end)
            return SESSION_DUE_IDLE_TIMEOUT;
        bool in_warning = now + warning_ms(s->policy.idle_timeout_s) >= end;
        if (in_warning && !s->idle_warned) {
            s->idle_warned = true;
            *ret_seconds = seconds_left(end, now);
            return SESSION_DUE_IDLE_WARNING;
        }
        if (!in_warning && s->idle_warned) {
            s->idle_warned = false;
            return SESSION_DUE_IDLE_CLEAR;
        }
    }
    return SESSION_DUE_NOTHING;
}

static void earliest(uint64_t *next, uint64_t t)
{
    if (!*next || t < *next)
        *next = t;
}

uint64_t session_next_deadline(const struct session *s)
{
    uint64_t next = 0;

    switch (s->state) {
    case SESSION_ENDING:
        return 0;
    case SESSION_DISCONNECTED:
        earliest(&next, s->grace_from_ms + (uint64_t)s->policy.grace_s * 1000);
        if (s->policy.max_session_s)
            earliest(&next, max_deadline(s));
        return next;
    case SESSION_ACTIVE:
        break;
    }
    if (s->policy.max_session_s) {
        uint64_t end = max_deadline(s);
        earliest(&next, s->max_warned ? end : end - warning_ms(s->policy.max_session_s));
    }
    if (s->policy.idle_timeout_s) {
        /* Input arrives in activity reports, which wake the loop anyway: the idle clock
         * only needs the deadlines as they stand. */
        uint64_t end = idle_deadline(s);
        earliest(&next, s->idle_warned ? end : end - warning_ms(s->policy.idle_timeout_s));
    }
    return next;
}

int session_table_new(struct session_table **ret)
{
    *ret = calloc(1, sizeof(**ret));
    return *ret ? 0 : -ENOMEM;
}

void session_table_free(struct session_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->items[i]);
    free(t->items);
    free(t);
}

static bool copy_name(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

struct session *session_table_add(struct session_table *t, uint64_t id, const char *user,
                                  const char *pool, const char *desktop,
                                  const struct session_policy *policy, int64_t started,
                                  uint64_t now_ms)
{
    struct session *s;

    if (t->n == t->allocated) {
        size_t n = t->allocated ? t->allocated * 2 : 16, bytes;
        struct session **items;
        if (!size_mul(n, sizeof(*items), &bytes) || !(items = realloc(t->items, bytes)))
            return NULL;
        t->items = items;
        t->allocated = n;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (!copy_name(s->user, sizeof(s->user), user) || !copy_name(s->pool, sizeof(s->pool), pool) ||
        !copy_name(s->desktop, sizeof(s->desktop), desktop)) {
        free(s);
        return NULL;
    }
    s->id = id;
    s->state = SESSION_DISCONNECTED;
    s->policy = *policy;
    s->started = started;
    s->started_ms = now_ms;
    s->grace_from_ms = now_ms;
    s->last_input_ms = now_ms;
    t->items[t->n++] = s;
    return s;
}

void session_table_remove(struct session_table *t, struct session *s)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->items[i] == s) {
            memmove(&t->items[i], &t->items[i + 1], (t->n - i - 1) * sizeof(*t->items));
            t->n--;
            free(s);
            return;
        }
}

struct session *session_table_find(const struct session_table *t, uint64_t id)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->items[i]->id == id)
            return t->items[i];
    return NULL;
}

struct session *session_table_find_user(const struct session_table *t, const char *user,
                                        const char *desktop)
{
    for (size_t i = 0; i < t->n; i++) {
        struct session *s = t->items[i];
        if (s->state != SESSION_ENDING && streq(s->user, user) && streq(s->desktop, desktop))
            return s;
    }
    return NULL;
}

struct session *session_table_find_pool(const struct session_table *t, const char *user,
                                        const char *pool)
{
    for (size_t i = 0; i < t->n; i++) {
        struct session *s = t->items[i];
        if (s->state != SESSION_ENDING && streq(s->user, user) && streq(s->pool, pool))
            return s;
    }
    return NULL;
}

size_t session_table_size(const struct session_table *t)
{
    return t->n;
}

struct session *session_table_at(const struct session_table *t, size_t i)
{
    return i < t->n ? t->items[i] : NULL;
}

void session_attach(struct session *s, const struct connection *c)
{
    s->state = SESSION_ACTIVE;
    s->user_connection = c->id;
    s->last_input_ms = c->last_input_ms;
    s->idle_warned = false;
}

void session_detach(struct session *s, const struct connection *c, uint64_t now_ms)
{
    if (s->user_connection != c->id)
        return;
    s->bytes_to_client += c->bytes_to_client;
    s->bytes_from_client += c->bytes_from_client;
    s->user_connection = 0;
    s->state = SESSION_DISCONNECTED;
    s->grace_from_ms = now_ms;
    s->idle_warned = false;
}
