/* The broker's connection registry (connection.h). */
#include "connection.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct connection_registry {
    struct connection **items;
    size_t n, allocated;
    uint64_t next_id;
};

static const char *const state_names[] = {
    [CONNECTION_WAIT_AUTH] = "wait-auth",         [CONNECTION_CHECKING] = "checking",
    [CONNECTION_AUTHENTICATED] = "authenticated", [CONNECTION_WAIT_REATTACH] = "wait-reattach",
    [CONNECTION_DESKTOP_READY] = "desktop-ready", [CONNECTION_CLOSING] = "closing",
};

const char *connection_state_to_string(enum connection_state state)
{
    if ((size_t)state >= ARRAY_SIZE(state_names))
        return "invalid";
    return state_names[state];
}

bool connection_state_is_unauthenticated(enum connection_state state)
{
    return state == CONNECTION_WAIT_AUTH || state == CONNECTION_CHECKING;
}

int connection_set_state(struct connection *s, enum connection_state to)
{
    bool ok;

    if (s->state == CONNECTION_CLOSING)
        ok = false;
    else if (to == CONNECTION_CLOSING)
        ok = true;
    else
        ok = (s->state == CONNECTION_WAIT_AUTH && to == CONNECTION_CHECKING) ||
             (s->state == CONNECTION_CHECKING && to == CONNECTION_AUTHENTICATED) ||
             (s->state == CONNECTION_AUTHENTICATED && to == CONNECTION_DESKTOP_READY) ||
             (s->state == CONNECTION_WAIT_REATTACH && to == CONNECTION_DESKTOP_READY);
    if (!ok)
        return -EPERM;
    s->state = to;
    return 0;
}

int connection_set_user(struct connection *s, const char *user)
{
    size_t len = strlen(user);

    if (len >= sizeof(s->user))
        return -E2BIG;
    memcpy(s->user, user, len + 1);
    return 0;
}

void connection_close_control(struct connection *s)
{
    s->control_fd = safe_close(s->control_fd);
}

void connection_kill(struct connection *c)
{
    if (c->pid <= 0)
        return;
    if (c->pidfd >= 0)
        (void)syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
    else
        (void)kill(c->pid, SIGKILL);
}

int connection_registry_new(struct connection_registry **ret)
{
    struct connection_registry *r = calloc(1, sizeof(*r));

    if (!r)
        return -ENOMEM;
    r->next_id = 1;
    *ret = r;
    return 0;
}

void connection_registry_set_next_id(struct connection_registry *r, uint64_t first_id)
{
    if (first_id > 0)
        r->next_id = first_id;
}

uint64_t connection_registry_next_id(struct connection_registry *r)
{
    return r->next_id++;
}

static void connection_free(struct connection *s)
{
    if (!s)
        return;
    safe_close(s->control_fd);
    safe_close(s->pidfd);
    free(s);
}

void connection_registry_free(struct connection_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        connection_free(r->items[i]);
    free(r->items);
    free(r);
}

int connection_registry_add(struct connection_registry *r, pid_t pid, int pidfd, int control_fd,
                            const char *address, uint64_t created_ms, struct connection **ret)
{
    if (pid <= 0 || control_fd < 0 || !address || strlen(address) >= CONNECTION_MAX_ADDRESS)
        return -EINVAL;

    if (r->n == r->allocated) {
        size_t n = r->allocated ? r->allocated * 2 : 16, bytes;
        if (!size_mul(n, sizeof(*r->items), &bytes))
            return -ENOMEM;
        struct connection **items = realloc(r->items, bytes);
        if (!items)
            return -ENOMEM;
        r->items = items;
        r->allocated = n;
    }

    struct connection *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->id = r->next_id++;
    s->pid = pid;
    s->pidfd = pidfd;
    s->control_fd = control_fd;
    strcpy(s->address, address);
    s->state = pidfd >= 0 ? CONNECTION_WAIT_REATTACH : CONNECTION_WAIT_AUTH;
    s->created_ms = created_ms;
    s->last_input_ms = created_ms;
    s->started = (int64_t)time(NULL);
    r->items[r->n++] = s;
    if (ret)
        *ret = s;
    return 0;
}

int connection_registry_rekey(struct connection_registry *r, struct connection *c, uint64_t id)
{
    struct connection *other = connection_registry_find(r, id);

    if (other && other != c)
        return -EEXIST;
    c->id = id;
    if (id >= r->next_id)
        r->next_id = id + 1;
    return 0;
}

void connection_registry_remove(struct connection_registry *r, struct connection *s)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->items[i] != s)
            continue;
        memmove(&r->items[i], &r->items[i + 1], (r->n - i - 1) * sizeof(*r->items));
        r->n--;
        connection_free(s);
        return;
    }
}

struct connection *connection_registry_find(const struct connection_registry *r, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i]->id == id)
            return r->items[i];
    return NULL;
}

struct connection *connection_registry_find_pid(const struct connection_registry *r, pid_t pid)
{
    if (pid <= 0)
        return NULL;
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i]->pid == pid)
            return r->items[i];
    return NULL;
}

size_t connection_registry_size(const struct connection_registry *r)
{
    return r->n;
}

struct connection *connection_registry_at(const struct connection_registry *r, size_t i)
{
    return i < r->n ? r->items[i] : NULL;
}

size_t connection_registry_count_unauthenticated(const struct connection_registry *r,
                                                 const char *address, size_t *ret_from_address)
{
    size_t count = 0, from = 0;

    for (size_t i = 0; i < r->n; i++)
        if (connection_state_is_unauthenticated(r->items[i]->state)) {
            count++;
            from += address && streq(r->items[i]->address, address);
        }
    if (ret_from_address)
        *ret_from_address = from;
    return count;
}
