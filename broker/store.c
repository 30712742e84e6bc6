/* The public store functions: validate every field, take the lock, run the backend's
 * function in one transaction. Backends (store-sqlite.c) only store. */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store-internal.h"
#include "util.h"

#define STORE_VCPUS_MAX 256
#define STORE_MEMORY_MIB_MIN 64
#define STORE_MEMORY_MIB_MAX 4194304 /* 4 TiB */
#define STORE_DESKTOPS_MAX 10000
#define STORE_GRACE_MAX 604800      /* 7 days */
#define STORE_IDLE_MAX 604800       /* 7 days */
#define STORE_SESSION_MAX_S 2592000 /* 30 days */

/* ---- enums as text ---- */

static const char *const os_names[] = {
    [STORE_OS_LINUX] = "linux",
    [STORE_OS_WINDOWS] = "windows",
};
static const char *const firmware_names[] = {
    [STORE_FIRMWARE_BIOS] = "bios",
    [STORE_FIRMWARE_UEFI] = "uefi",
};
static const char *const pool_kind_names[] = {
    [STORE_POOL_DEDICATED] = "dedicated",
    [STORE_POOL_FLOATING] = "floating",
};
static const char *const logoff_names[] = {
    [STORE_LOGOFF_KEEP] = "keep",
    [STORE_LOGOFF_SUSPEND] = "suspend",
    [STORE_LOGOFF_SHUTDOWN] = "shutdown",
    [STORE_LOGOFF_RESET] = "reset",
};
static const char *const desktop_state_names[] = {
    [STORE_DESKTOP_PROVISIONING] = "provisioning",
    [STORE_DESKTOP_READY] = "ready",
    [STORE_DESKTOP_RESETTING] = "resetting",
    [STORE_DESKTOP_DELETING] = "deleting",
    [STORE_DESKTOP_FAILED] = "failed",
};
static const char *const stop_action_names[] = {
    [STORE_STOP_NONE] = "none",
    [STORE_STOP_RESTART] = "restart",
    [STORE_STOP_RESET] = "reset",
};
static const char *const session_kind_names[] = {
    [STORE_SESSION_USER] = "user",
    [STORE_SESSION_SHADOW] = "shadow",
};
static const char *const entitlement_kind_names[] = {
    [STORE_ENTITLE_USER] = "user",
    [STORE_ENTITLE_GROUP] = "group",
};
static const char *const usage_kind_names[] = {
    [STORE_USAGE_RUNNING] = "running",
    [STORE_USAGE_CONNECTED] = "connected",
};

/* NULL for a value outside the enum, which is also how validation spots one. */
static const char *enum_to_string(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : NULL;
}

static int enum_from_string(const char *const *names, size_t n, const char *s)
{
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (streq(s, names[i]))
            return (int)i;
    return -EINVAL;
}

#define DEFINE_ENUM_TO_STRING(name, type, names)                                                   \
    const char *name##_to_string(type v)                                                           \
    {                                                                                              \
        return enum_to_string(names, ARRAY_SIZE(names), (int)v);                                   \
    }
#define DEFINE_ENUM_FROM_STRING(name, type, names)                                                 \
    int name##_from_string(const char *s, type *ret)                                               \
    {                                                                                              \
        int r = enum_from_string(names, ARRAY_SIZE(names), s);                                     \
        if (r < 0)                                                                                 \
            return r;                                                                              \
        *ret = (type)r;                                                                            \
        return 0;                                                                                  \
    }
#define DEFINE_ENUM_STRINGS(name, type, names)                                                     \
    DEFINE_ENUM_TO_STRING(name, type, names)                                                       \
    DEFINE_ENUM_FROM_STRING(name, type, names)

DEFINE_ENUM_STRINGS(store_os, enum store_os, os_names)
DEFINE_ENUM_STRINGS(store_firmware, enum store_firmware, firmware_names)
DEFINE_ENUM_STRINGS(store_pool_kind, enum store_pool_kind, pool_kind_names)
DEFINE_ENUM_STRINGS(store_logoff, enum store_logoff, logoff_names)
DEFINE_ENUM_STRINGS(store_desktop_state, enum store_desktop_state, desktop_state_names)
DEFINE_ENUM_STRINGS(store_stop_action, enum store_stop_action, stop_action_names)
DEFINE_ENUM_STRINGS(store_session_kind, enum store_session_kind, session_kind_names)
DEFINE_ENUM_STRINGS(store_entitlement_kind, enum store_entitlement_kind, entitlement_kind_names)
DEFINE_ENUM_STRINGS(store_usage_kind, enum store_usage_kind, usage_kind_names)

/* ---- field validation ---- */

static bool is_lower_or_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_or_digit(c) || (c >= 'A' && c <= 'Z');
}

/* Reads at most STORE_NAME_MAX + 1 bytes, so a name array without a NUL is refused
 * rather than read past. */
bool store_name_is_valid(const char *name)
{
    if (!name)
        return false;
    size_t n = strnlen(name, STORE_NAME_MAX + 1);
    if (n == 0 || n > STORE_NAME_MAX || !is_lower_or_digit(name[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_lower_or_digit(name[i]) && name[i] != '-')
            return false;
    return true;
}

/* A NUL within size bytes and no control characters: what is stored is printed one line
 * per record by vdictl and in logs. */
static bool text_is_valid(const char *s, size_t size, bool allow_empty)
{
    if (!s)
        return false;
    size_t n = strnlen(s, size);
    if (n == size || (n == 0 && !allow_empty))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static bool path_is_valid(const char *s, bool allow_empty)
{
    return text_is_valid(s, STORE_PATH_MAX, true) && (s[0] == '/' || (allow_empty && !s[0]));
}

/* User and group names; "" stands for nobody where allow_empty. */
static bool user_is_valid(const char *s, bool allow_empty)
{
    if (!s || strnlen(s, STORE_NAME_MAX + 1) > STORE_NAME_MAX)
        return false;
    return (allow_empty && !s[0]) || username_is_valid(s);
}

/* Sessions and usage are history: they may name a desktop outside any pool (""). */
static bool pool_ref_is_valid(const char *s, bool allow_empty)
{
    return s && ((allow_empty && !s[0]) || store_name_is_valid(s));
}

/* libvirt domain names, also used in overlay file names: hence the first character may
 * not be '.' or '-' (no "..", no option-looking names). */
static bool desktop_name_is_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strnlen(s, STORE_DESKTOP_MAX + 1);
    if (n == 0 || n > STORE_DESKTOP_MAX || !is_alnum(s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static bool in_range(int64_t v, int64_t min, int64_t max)
{
    return v >= min && v <= max;
}

static int template_check(const struct store_template *t)
{
    if (!t || !store_name_is_valid(t->name) || !store_os_to_string(t->os) ||
        !store_firmware_to_string(t->firmware) || !path_is_valid(t->disk, false) ||
        !path_is_valid(t->kernel, true) || !path_is_valid(t->initrd, true) ||
        !text_is_valid(t->cmdline, sizeof(t->cmdline), true) || t->created < 0)
        return -EINVAL;
    return 0;
}

static int pool_check(const struct store_pool *p)
{
    if (!p || !store_name_is_valid(p->name) || !store_name_is_valid(p->template_name) ||
        !in_range(p->vcpus, 1, STORE_VCPUS_MAX) ||
        !in_range(p->memory_mib, STORE_MEMORY_MIB_MIN, STORE_MEMORY_MIB_MAX) ||
        !store_pool_kind_to_string(p->kind) || !in_range(p->max_desktops, 1, STORE_DESKTOPS_MAX) ||
        !in_range(p->min_spare, 0, p->max_desktops) || !store_logoff_to_string(p->logoff) ||
        !in_range(p->disconnect_grace_s, 0, STORE_GRACE_MAX) ||
        !in_range(p->idle_timeout_s, 0, STORE_IDLE_MAX) ||
        !in_range(p->max_session_s, 0, STORE_SESSION_MAX_S) ||
        !store_stop_action_to_string(p->stop_action) || p->created < 0)
        return -EINVAL;
    return 0;
}

static int desktop_check(const struct store_desktop *d)
{
    if (!d || !desktop_name_is_valid(d->name) || !store_name_is_valid(d->pool) ||
        !user_is_valid(d->owner, true) || !store_desktop_state_to_string(d->state) ||
        !path_is_valid(d->disk, true) || d->created < 0 || d->assigned < 0)
        return -EINVAL;
    return 0;
}

static int entitlement_check(const struct store_entitlement *e)
{
    if (!e || !store_name_is_valid(e->pool) || !store_entitlement_kind_to_string(e->kind) ||
        !user_is_valid(e->name, false))
        return -EINVAL;
    return 0;
}

/* "" or 64 lowercase hex digits (a SHA-256). */
static bool token_hash_is_valid(const char *s)
{
    size_t n = strnlen(s, 65);
    if (n != 0 && n != 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static int session_check(const struct store_session *sess)
{
    if (!sess || sess->id > INT64_MAX || sess->session_id > INT64_MAX ||
        !store_session_kind_to_string(sess->kind) || !token_hash_is_valid(sess->token_hash) ||
        !user_is_valid(sess->user, false) || !pool_ref_is_valid(sess->pool, true) ||
        !desktop_name_is_valid(sess->desktop) ||
        !text_is_valid(sess->client, sizeof(sess->client), true) || sess->started < 0)
        return -EINVAL;
    return 0;
}

static int64_t unix_now(void)
{
    return (int64_t)time(NULL);
}

/* ---- locking and transactions ---- */

static int tx_begin(struct store *s, bool write)
{
    pthread_mutex_lock(&s->lock);
    int r = s->ops->begin(s, write);
    if (r < 0)
        pthread_mutex_unlock(&s->lock);
    return r;
}

static int tx_end(struct store *s, int r)
{
    r = s->ops->end(s, r);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Runs one backend call as one transaction under the lock; call is evaluated only once
 * the transaction has begun. */
#define TX(s, write, call)                                                                         \
    ({                                                                                             \
        int _r = tx_begin((s), (write));                                                           \
        _r < 0 ? _r : tx_end((s), (call));                                                         \
    })

/* ---- open and close ---- */

int store_open(const char *url, struct store **ret)
{
    static const struct {
        const char *scheme;
        const struct store_ops *ops;
    } backends[] = {
        {"sqlite:", &store_sqlite_ops},
    };

    if (!url || !ret)
        return -EINVAL;
    for (size_t i = 0; i < ARRAY_SIZE(backends); i++) {
        if (!startswith(url, backends[i].scheme))
            continue;
        struct store *s = NULL;
        int r = backends[i].ops->open(url + strlen(backends[i].scheme), &s);
        if (r < 0)
            return r;
        s->ops = backends[i].ops;
        pthread_mutex_init(&s->lock, NULL);
        *ret = s;
        return 0;
    }
    return -EINVAL;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    s->ops->close(s);
}

int store_schema_version(struct store *s)
{
    pthread_mutex_lock(&s->lock);
    int v = s->ops->schema_version(s);
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* ---- templates ---- */

int store_template_add(struct store *s, const struct store_template *t)
{
    int r = template_check(t);
    if (r < 0)
        return r;
    struct store_template copy = *t;
    if (copy.created == 0)
        copy.created = unix_now();
    return TX(s, true, s->ops->template_add(s, &copy));
}

int store_template_get(struct store *s, const char *name, struct store_template *ret)
{
    if (!store_name_is_valid(name))
        return -EINVAL;
    return TX(s, false, s->ops->template_get(s, name, ret));
}

int store_template_list(struct store *s, struct store_template **ret, size_t *ret_n)
{
    _cleanup_(freep) struct store_template *list = NULL;
    size_t n = 0;
    int r = TX(s, false, s->ops->template_list(s, &list, &n));
    if (r < 0)
        return r;
    *ret = TAKE_PTR(list);
    *ret_n = n;
    return 0;
}

int store_template_delete(struct store *s, const char *name)
{
    if (!store_name_is_valid(name))
        return -EINVAL;
    return TX(s, true, s->ops->template_delete(s, name));
}

/* ---- pools ---- */

int store_pool_add(struct store *s, const struct store_pool *p)
{
    int r = pool_check(p);
    if (r < 0)
        return r;
    struct store_pool copy = *p;
    if (copy.created == 0)
        copy.created = unix_now();
    return TX(s, true, s->ops->pool_add(s, &copy));
}

int store_pool_get(struct store *s, const char *name, struct store_pool *ret)
{
    if (!store_name_is_valid(name))
        return -EINVAL;
    return TX(s, false, s->ops->pool_get(s, name, ret));
}

int store_pool_list(struct store *s, struct store_pool **ret, size_t *ret_n)
{
    _cleanup_(freep) struct store_pool *list = NULL;
    size_t n = 0;
    int r = TX(s, false, s->ops->pool_list(s, &list, &n));
    if (r < 0)
        return r;
    *ret = TAKE_PTR(list);
    *ret_n = n;
    return 0;
}

int store_pool_update(struct store *s, const struct store_pool *p)
{
    int r = pool_check(p);
    if (r < 0)
        return r;
    return TX(s, true, s->ops->pool_update(s, p));
}

int store_pool_delete(struct store *s, const char *name)
{
    if (!store_name_is_valid(name))
        return -EINVAL;
    return TX(s, true, s->ops->pool_delete(s, name));
}

/* ---- desktops ---- */

int store_desktop_add(struct store *s, const struct store_desktop *d)
{
    int r = desktop_check(d);
    if (r < 0)
        return r;
    struct store_desktop copy = *d;
    int64_t now = unix_now();
    if (copy.created == 0)
        copy.created = now;
    if (!copy.owner[0])
        copy.assigned = 0;
    else if (copy.assigned == 0)
        copy.assigned = now;
    return TX(s, true, s->ops->desktop_add(s, &copy));
}

int store_desktop_get(struct store *s, const char *name, struct store_desktop *ret)
{
    if (!desktop_name_is_valid(name))
        return -EINVAL;
    return TX(s, false, s->ops->desktop_get(s, name, ret));
}

int store_desktop_list(struct store *s, const char *pool, struct store_desktop **ret, size_t *ret_n)
{
    if (pool && !store_name_is_valid(pool))
        return -EINVAL;
    _cleanup_(freep) struct store_desktop *list = NULL;
    size_t n = 0;
    int r = TX(s, false, s->ops->desktop_list(s, pool, &list, &n));
    if (r < 0)
        return r;
    *ret = TAKE_PTR(list);
    *ret_n = n;
    return 0;
}

int store_desktop_set_state(struct store *s, const char *name, enum store_desktop_state state)
{
    if (!desktop_name_is_valid(name) || !store_desktop_state_to_string(state))
        return -EINVAL;
    return TX(s, true, s->ops->desktop_set_state(s, name, state));
}

int store_desktop_set_owner(struct store *s, const char *name, const char *expected,
                            const char *new_owner)
{
    if (!desktop_name_is_valid(name) || !user_is_valid(expected, true) ||
        !user_is_valid(new_owner, true))
        return -EINVAL;
    int64_t assigned = new_owner[0] ? unix_now() : 0;
    return TX(s, true, s->ops->desktop_set_owner(s, name, expected, new_owner, assigned));
}

int store_desktop_delete(struct store *s, const char *name)
{
    if (!desktop_name_is_valid(name))
        return -EINVAL;
    return TX(s, true, s->ops->desktop_delete(s, name));
}

int store_desktop_next_name(struct store *s, const char *pool, char *buf, size_t size)
{
    if (!store_name_is_valid(pool) || !buf || size == 0)
        return -EINVAL;
    return TX(s, true, s->ops->desktop_next_name(s, pool, buf, size));
}

/* ---- entitlements ---- */

int store_entitlement_add(struct store *s, const struct store_entitlement *e)
{
    int r = entitlement_check(e);
    if (r < 0)
        return r;
    return TX(s, true, s->ops->entitlement_add(s, e));
}

int store_entitlement_delete(struct store *s, const struct store_entitlement *e)
{
    int r = entitlement_check(e);
    if (r < 0)
        return r;
    return TX(s, true, s->ops->entitlement_delete(s, e));
}

int store_entitlement_list(struct store *s, const char *pool, struct store_entitlement **ret,
                           size_t *ret_n)
{
    if (pool && !store_name_is_valid(pool))
        return -EINVAL;
    _cleanup_(freep) struct store_entitlement *list = NULL;
    size_t n = 0;
    int r = TX(s, false, s->ops->entitlement_list(s, pool, &list, &n));
    if (r < 0)
        return r;
    *ret = TAKE_PTR(list);
    *ret_n = n;
    return 0;
}

int store_entitled_pools(struct store *s, const char *user, const char *const *groups,
                         size_t n_groups, char (**ret)[STORE_NAME_MAX + 1], size_t *ret_n)
{
    if (!user_is_valid(user, false) || (n_groups > 0 && !groups))
        return -EINVAL;

    /* Group names come from NSS (SSSD may report "domain users"): one we could never have
     * stored an entitlement for is skipped rather than failing the user's login. */
    _cleanup_(freep) const char **valid = NULL;
    size_t n_valid = 0;
    if (n_groups > 0) {
        valid = calloc(n_groups, sizeof(*valid));
        if (!valid)
            return -ENOMEM;
        for (size_t i = 0; i < n_groups; i++)
            if (user_is_valid(groups[i], false))
                valid[n_valid++] = groups[i];
    }

    _cleanup_(freep) char(*list)[STORE_NAME_MAX + 1] = NULL;
    size_t n = 0;
    int r = TX(s, false, s->ops->entitled_pools(s, user, valid, n_valid, &list, &n));
    if (r < 0)
        return r;
    *ret = TAKE_PTR(list);
    *ret_n = n;
    return 0;
}

/* ---- sessions ---- */

int store_session_begin(struct store *s, const struct store_session *sess)
{
    int r = session_check(sess);
    if (r < 0)
        return r;
    return TX(s, true, s->ops->session_begin(s, sess));
}

int store_session_end(struct store *s, uint64_t id, int64_t ended)
{
    /* 0 means "still connected", so it cannot be an end time. */
    if (id > INT64_MAX || ended <= 0)
        return -EINVAL;
    return TX(s, true, s->ops->session_end(s, id, ended));
}

int store_session_get(struct store *s, uint64_t id, struct store_session *ret)
{
    if (id > INT64_MAX || !ret)
        return -EINVAL;
    return TX(s, false, s->ops->session_get(s, id, ret));
}

int store_session_list(struct store *s, bool active_only, size_t limit, struct store_session **ret,
                       size_t *ret_n)
{
    _cleanup_(freep) struct store_session *list = NULL;
    size_t n = 0;
    int r = TX(s, false, s->ops->session_list(s, active_only, limit, &list, &n));
    if (r < 0)
        return r;
    *ret = TAKE_PTR(list);
    *ret_n = n;
    return 0;
}

int store_session_max_id(struct store *s, uint64_t *ret)
{
    return TX(s, false, s->ops->session_max_id(s, ret));
}

/* ---- usage ---- */

int store_usage_begin(struct store *s, enum store_usage_kind kind, const char *user,
                      const char *pool, const char *desktop, int vcpus, int memory_mib,
                      int64_t start, uint64_t *ret_id)
{
    /* Running time of a spare desktop belongs to nobody (""); a connection always has a
     * user but no size of its own (0 is fine). */
    bool running = kind == STORE_USAGE_RUNNING;
    if (!store_usage_kind_to_string(kind) || !user_is_valid(user, running) ||
        !pool_ref_is_valid(pool, true) || !desktop_name_is_valid(desktop) ||
        !in_range(vcpus, running ? 1 : 0, STORE_VCPUS_MAX) ||
        !in_range(memory_mib, running ? STORE_MEMORY_MIB_MIN : 0, STORE_MEMORY_MIB_MAX) ||
        start < 0)
        return -EINVAL;
    uint64_t id = 0;
    int r = TX(s, true,
               s->ops->usage_begin(s, kind, user, pool, desktop, vcpus, memory_mib, start, &id));
    if (r < 0)
        return r;
    if (ret_id)
        *ret_id = id;
    return 0;
}

int store_usage_end(struct store *s, uint64_t id, int64_t end)
{
    if (id > INT64_MAX || end < 0)
        return -EINVAL;
    return TX(s, true, s->ops->usage_end(s, id, end));
}

int store_usage_end_open_for_desktop(struct store *s, const char *desktop, int kind, int64_t end)
{
    if (!desktop_name_is_valid(desktop) ||
        (kind >= 0 && !store_usage_kind_to_string((enum store_usage_kind)kind)) || end < 0)
        return -EINVAL;
    return TX(s, true, s->ops->usage_end_open_for_desktop(s, desktop, kind < 0 ? -1 : kind, end));
}

int store_usage_report(struct store *s, int64_t from, int64_t to, int64_t now, const char *user,
                       const char *pool, struct store_usage_row **ret, size_t *ret_n)
{
    if (from < 0 || to < from || now < 0 || (user && !user_is_valid(user, true)) ||
        (pool && !pool_ref_is_valid(pool, true)))
        return -EINVAL;
    _cleanup_(freep) struct store_usage_row *list = NULL;
    size_t n = 0;
    int r = TX(s, false, s->ops->usage_report(s, from, to, now, user, pool, &list, &n));
    if (r < 0)
        return r;
    *ret = TAKE_PTR(list);
    *ret_n = n;
    return 0;
}
