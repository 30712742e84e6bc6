/* The broker's session registry (session.h). */
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct session_registry {
    struct session **items;
    size_t n, allocated;
    uint64_t next_id;
};

static const char *const state_names[] = {
    [SESSION_WAIT_AUTH] = "wait-auth",
    [SESSION_CHECKING] = "checking",
    [SESSION_AUTHENTICATED] = "authenticated",
    [SESSION_DESKTOP_READY] = "desktop-ready",
    [SESSION_CLOSING] = "closing",
};

const char *session_state_to_string(enum session_state state)
{
    if ((size_t)state >= ARRAY_SIZE(state_names))
        return "invalid";
    return state_names[state];
}

bool session_state_is_unauthenticated(enum session_state state)
{
    return state == SESSION_WAIT_AUTH || state == SESSION_CHECKING;
}

int session_set_state(struct session *s, enum session_state to)
{
    bool ok;

    if (s->state == SESSION_CLOSING)
        ok = false;
    else if (to == SESSION_CLOSING)
        ok = true;
    else
        ok = (s->state == SESSION_WAIT_AUTH && to == SESSION_CHECKING) ||
             (s->state == SESSION_CHECKING && to == SESSION_AUTHENTICATED) ||
             (s->state == SESSION_AUTHENTICATED && to == SESSION_DESKTOP_READY);
    if (!ok)
        return -EPERM;
    s->state = to;
    return 0;
}

int session_set_user(struct session *s, const char *user)
{
    size_t len = strlen(user);

    if (len >= sizeof(s->user))
        return -E2BIG;
    memcpy(s->user, user, len + 1);
    return 0;
}

void session_close_control(struct session *s)
{
    s->control_fd = safe_close(s->control_fd);
}

int session_registry_new(struct session_registry **ret)
{
    struct session_registry *r = calloc(1, sizeof(*r));

    if (!r)
        return -ENOMEM;
    r->next_id = 1;
    *ret = r;
    return 0;
}

void session_registry_set_next_id(struct session_registry *r, uint64_t first_id)
{
    if (first_id > 0)
        r->next_id = first_id;
}

static void session_free(struct session *s)
{
    if (!s)
        return;
    safe_close(s->control_fd);
    free(s);
}

void session_registry_free(struct session_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        session_free(r->items[i]);
    free(r->items);
    free(r);
}

int session_registry_add(struct session_registry *r, pid_t pid, int control_fd, const char *address,
                         uint64_t created_ms, struct session **ret)
{
    if (pid <= 0 || control_fd < 0 || !address || strlen(address) >= SESSION_MAX_ADDRESS)
        return -EINVAL;

    if (r->n == r->allocated) {
        size_t n = r->allocated ? r->allocated * 2 : 16, bytes;
        if (!size_mul(n, sizeof(*r->items), &bytes))
            return -ENOMEM;
        struct session **items = realloc(r->items, bytes);
        if (!items)
            return -ENOMEM;
        r->items = items;
        r->allocated = n;
    }

    struct session *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->id = r->next_id++;
    s->pid = pid;
    s->control_fd = control_fd;
    strcpy(s->address, address);
    s->state = SESSION_WAIT_AUTH;
    s->created_ms = created_ms;
    r->items[r->n++] = s;
    if (ret)
        *ret = s;
    return 0;
}

void session_registry_remove(struct session_registry *r, struct session *s)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->items[i] != s)
            continue;
        memmove(&r->items[i], &r->items[i + 1], (r->n - i - 1) * sizeof(*r->items));
        r->n--;
        session_free(s);
        return;
    }
}

struct session *session_registry_find(const struct session_registry *r, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i]->id == id)
            return r->items[i];
    return NULL;
}

struct session *session_registry_find_pid(const struct session_registry *r, pid_t pid)
{
    if (pid <= 0)
        return NULL;
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i]->pid == pid)
            return r->items[i];
    return NULL;
}

size_t session_registry_size(const struct session_registry *r)
{
    return r->n;
}

struct session *session_registry_at(const struct session_registry *r, size_t i)
{
    return i < r->n ? r->items[i] : NULL;
}

size_t session_registry_count_unauthenticated(const struct session_registry *r)
{
    size_t count = 0;

    for (size_t i = 0; i < r->n; i++)
        if (session_state_is_unauthenticated(r->items[i]->state))
            count++;
    return count;
}
