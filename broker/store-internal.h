#pragma once
/*
 * Between store.c (the public functions: validation, locking, one transaction per call)
 * and a storage backend (store-sqlite.c today). A backend only stores: every record it
 * receives has already been validated and has its times filled in, and every call runs
 * between its own begin() and end() with the store's lock held, so a backend needs no
 * locking of its own. Adding PostgreSQL means one more struct store_ops and one line in
 * store_open()'s table.
 */
#include <pthread.h>
#include <stdbool.h>

#include "store.h"

/* The part every backend shares; a backend's own struct starts with it. */
struct store {
    const struct store_ops *ops;
    pthread_mutex_t lock; /* held for the whole of each public function */
};

/* Return 0 or a negative errno as documented in store.h; list functions allocate *ret only
 * on success. */
struct store_ops {
    /* location is the URL after "scheme:". Returns the backend's struct (ops and lock are
     * set by store_open). */
    int (*open)(const char *location, struct store **ret);
    void (*close)(struct store *s);
    /* Starts a transaction (write: takes the write lock at once, so that a read-modify-write
     * cannot fail halfway on another writer). end() commits when r >= 0, else rolls back,
     * and returns r or the commit's error. */
    int (*begin)(struct store *s, bool write);
    int (*end)(struct store *s, int r);
    int (*schema_version)(struct store *s);

    int (*template_add)(struct store *s, const struct store_template *t);
    int (*template_get)(struct store *s, const char *name, struct store_template *ret);
    int (*template_list)(struct store *s, struct store_template **ret, size_t *ret_n);
    int (*template_delete)(struct store *s, const char *name);

    int (*pool_add)(struct store *s, const struct store_pool *p);
    int (*pool_get)(struct store *s, const char *name, struct store_pool *ret);
    int (*pool_list)(struct store *s, struct store_pool **ret, size_t *ret_n);
    int (*pool_update)(struct store *s, const struct store_pool *p);
    int (*pool_delete)(struct store *s, const char *name);

    int (*desktop_add)(struct store *s, const struct store_desktop *d);
    int (*desktop_get)(struct store *s, const char *name, struct store_desktop *ret);
    int (*desktop_list)(struct store *s, const char *pool, struct store_desktop **ret,
                        size_t *ret_n);
    int (*desktop_set_state)(struct store *s, const char *name, enum store_desktop_state state);
    /* assigned: the time to record (0 when new_owner is ""). */
    int (*desktop_set_owner)(struct store *s, const char *name, const char *expected,
                             const char *new_owner, int64_t assigned);
    int (*desktop_delete)(struct store *s, const char *name);
    /* -EINVAL (nothing consumed) when the name does not fit in size. */
    int (*desktop_next_name)(struct store *s, const char *pool, char *buf, size_t size);

    int (*entitlement_add)(struct store *s, const struct store_entitlement *e);
    int (*entitlement_delete)(struct store *s, const struct store_entitlement *e);
    int (*entitlement_list)(struct store *s, const char *pool, struct store_entitlement **ret,
                            size_t *ret_n);
    /* groups holds only valid names. */
    int (*entitled_pools)(struct store *s, const char *user, const char *const *groups,
                          size_t n_groups, char (**ret)[STORE_NAME_MAX + 1], size_t *ret_n);

    int (*session_begin)(struct store *s, const struct store_session *sess);
    int (*session_end)(struct store *s, uint64_t id, int64_t ended);
    int (*session_get)(struct store *s, uint64_t id, struct store_session *ret);
    /* limit 0 = no limit. */
    int (*session_list)(struct store *s, bool active_only, size_t limit, struct store_session **ret,
                        size_t *ret_n);
    int (*session_max_id)(struct store *s, uint64_t *ret);

    int (*usage_begin)(struct store *s, enum store_usage_kind kind, const char *user,
                       const char *pool, const char *desktop, int vcpus, int memory_mib,
                       int64_t start, uint64_t *ret_id);
    int (*usage_end)(struct store *s, uint64_t id, int64_t end);
    /* kind < 0: both kinds. */
    int (*usage_end_open_for_desktop)(struct store *s, const char *desktop, int kind, int64_t end);
    int (*usage_report)(struct store *s, int64_t from, int64_t to, int64_t now, const char *user,
                        const char *pool, struct store_usage_row **ret, size_t *ret_n);
};

extern const struct store_ops store_sqlite_ops;

/* Text forms of the enums store.h has no public parser for; 0 or -EINVAL. */
int store_desktop_state_from_string(const char *s, enum store_desktop_state *ret);
const char *store_usage_kind_to_string(enum store_usage_kind v);
int store_usage_kind_from_string(const char *s, enum store_usage_kind *ret);
int store_session_kind_from_string(const char *s, enum store_session_kind *ret);
