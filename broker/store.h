#pragma once
/*
 * The broker's durable state: templates, pools, desktops, entitlements, sessions and usage
 * intervals (audit events go to the audit log, session/audit.h). The one place SQL lives.
 *
 * The interface is deliberately narrow (plain records in, plain records out, every
 * function one transaction) so that a PostgreSQL backend for several brokers can be
 * added behind it later: store_open() picks the backend from the URL, and only
 * "sqlite:PATH" exists today (store-sqlite.c: WAL, foreign keys, schema version in
 * PRAGMA user_version with ordered migrations).
 *
 * Thread-safe: every function may be called from any thread; each runs as one
 * transaction under the store's own lock. Functions return 0 or negative errno:
 *   -ENOENT  the named record (or one it refers to) does not exist
 *   -EEXIST  a record with that key exists
 *   -EBUSY   a compare-and-set lost (the record changed meanwhile), or the record is
 *            still referenced (e.g. a pool that has desktops)
 *   -EINVAL  a field is out of range (names, enums, negative numbers)
 *   -EIO     the database failed (logged with SQLite's message)
 * Lists are returned as malloc'd arrays (free with free()); *ret_n may be 0 with
 * *ret == NULL.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_NAME_MAX 32    /* template, pool, user and group names (without NUL) */
#define STORE_DESKTOP_MAX 64 /* desktop (libvirt domain) names */
#define STORE_PATH_MAX 1024
#define STORE_TEXT_MAX 1024 /* kernel cmdline */
#define STORE_ADDRESS_MAX 64

enum store_os { STORE_OS_LINUX, STORE_OS_WINDOWS };
enum store_firmware { STORE_FIRMWARE_BIOS, STORE_FIRMWARE_UEFI };
enum store_pool_kind { STORE_POOL_DEDICATED, STORE_POOL_FLOATING };
enum store_logoff {
    STORE_LOGOFF_KEEP,     /* leave it running */
    STORE_LOGOFF_SUSPEND,  /* managed save: RAM to disk, resumes on next login */
    STORE_LOGOFF_SHUTDOWN, /* ACPI shutdown, power off after a timeout */
    STORE_LOGOFF_RESET,    /* power off and go back to the template (new overlay) */
};
enum store_desktop_state {
    STORE_DESKTOP_PROVISIONING, /* row written, overlay/domain being made */
    STORE_DESKTOP_READY,        /* overlay and domain exist */
    STORE_DESKTOP_RESETTING,    /* overlay being replaced with a fresh one */
    STORE_DESKTOP_DELETING,     /* being removed */
    STORE_DESKTOP_FAILED,       /* crashed too often: not started or handed out until an
                                   admin starts or resets it */
};
/* What happens when a desktop stops without the broker asking (guest poweroff, virsh
 * destroy): nothing (it starts at the next login), start it again, or reset it to the
 * template (and, floating, release it). Crashes always restart, with back-off. */
enum store_stop_action { STORE_STOP_NONE, STORE_STOP_RESTART, STORE_STOP_RESET };
enum store_session_kind {
    STORE_SESSION_USER,   /* the user's own connection */
    STORE_SESSION_SHADOW, /* an admin watching, view-only */
};
enum store_entitlement_kind { STORE_ENTITLE_USER, STORE_ENTITLE_GROUP };
enum store_usage_kind {
    STORE_USAGE_RUNNING,   /* a desktop ran: vcpus/memory count for its owner */
    STORE_USAGE_CONNECTED, /* a user was connected to a desktop */
};

/* Text forms used in the API, vdictl and the DB ("linux", "windows", "bios", "uefi",
 * "dedicated", "floating", "keep", "suspend", "shutdown", "reset", "provisioning",
 * "ready", "resetting", "deleting", "failed", "user", "group", "running", "connected",
 * "none", "restart", "reset" (stop actions), "user", "shadow" (session kinds)).
 * *_from_string return 0 or -EINVAL. */
const char *store_os_to_string(enum store_os v);
int store_os_from_string(const char *s, enum store_os *ret);
const char *store_firmware_to_string(enum store_firmware v);
int store_firmware_from_string(const char *s, enum store_firmware *ret);
const char *store_pool_kind_to_string(enum store_pool_kind v);
int store_pool_kind_from_string(const char *s, enum store_pool_kind *ret);
const char *store_logoff_to_string(enum store_logoff v);
int store_logoff_from_string(const char *s, enum store_logoff *ret);
const char *store_desktop_state_to_string(enum store_desktop_state v);
const char *store_stop_action_to_string(enum store_stop_action v);
int store_stop_action_from_string(const char *s, enum store_stop_action *ret);
const char *store_session_kind_to_string(enum store_session_kind v);
const char *store_entitlement_kind_to_string(enum store_entitlement_kind v);
int store_entitlement_kind_from_string(const char *s, enum store_entitlement_kind *ret);

/* Template and pool names: 1..32 of [a-z0-9-], starting with a letter or digit. */
bool store_name_is_valid(const char *name);

struct store_template {
    char name[STORE_NAME_MAX + 1];
    enum store_os os;
    enum store_firmware firmware;
    char disk[STORE_PATH_MAX];    /* base image, absolute path */
    char kernel[STORE_PATH_MAX];  /* "" = boot from disk */
    char initrd[STORE_PATH_MAX];  /* "" = none */
    char cmdline[STORE_TEXT_MAX]; /* "" = none */
    int64_t created;              /* unix seconds */
};

struct store_pool {
    char name[STORE_NAME_MAX + 1];
    char template_name[STORE_NAME_MAX + 1];
    int vcpus;      /* >= 1 */
    int memory_mib; /* >= 64 */
    enum store_pool_kind kind;
    int min_spare;    /* >= 0: free desktops kept running */
    int max_desktops; /* >= 1 */
    enum store_logoff logoff;
    /* Session policies (issue 4), seconds; 0 = off (grace 0: logoff at once). */
    int disconnect_grace_s; /* after the last client left, before the logoff action;
                               0..604800, default 300 */
    int idle_timeout_s;     /* no keyboard/pointer input: disconnect; 0..604800, default 0 */
    int max_session_s;      /* from session start: disconnect and log off; 0..2592000,
                               default 0 */
    enum store_stop_action stop_action; /* default: none (dedicated), reset (floating) */
    int64_t created;
};

struct store_desktop {
    char name[STORE_DESKTOP_MAX + 1]; /* libvirt domain name */
    char pool[STORE_NAME_MAX + 1];
    char owner[STORE_NAME_MAX + 1]; /* "" = free */
    enum store_desktop_state state;
    char disk[STORE_PATH_MAX]; /* overlay path */
    int64_t created;
    int64_t assigned; /* when owner was set; 0 when free */
};

struct store_entitlement {
    char pool[STORE_NAME_MAX + 1];
    enum store_entitlement_kind kind;
    char name[STORE_NAME_MAX + 1]; /* user or group */
};

/* One row per client connection (a vdi-session process). Connections of one desktop
 * session (reconnects, takeovers, shadows) share session_id. */
struct store_session {
    uint64_t id;         /* the connection id (unique across broker runs) */
    uint64_t session_id; /* the desktop session it belongs to */
    enum store_session_kind kind;
    char token_hash[65]; /* hex SHA-256 of the reattach token; "" = cannot reattach */
    char user[STORE_NAME_MAX + 1];
    char pool[STORE_NAME_MAX + 1];
    char desktop[STORE_DESKTOP_MAX + 1];
    char client[STORE_ADDRESS_MAX];
    int64_t started; /* unix seconds */
    int64_t ended;   /* 0 while connected */
};

/* One line of a usage report: totals for a user in a pool over [from, to). Intervals
 * that overlap the period count only for the overlapping part; open intervals count up
 * to min(now, to). */
struct store_usage_row {
    char user[STORE_NAME_MAX + 1]; /* "" for running time of free (spare) desktops */
    char pool[STORE_NAME_MAX + 1];
    double vcpu_seconds;
    double memory_mib_seconds;
    double connected_seconds;
};

struct store;

/* url: "sqlite:/path/to/vdi.db" (created with mode 0600, migrated to the current schema).
 * Returns 0, -EINVAL (unknown scheme), -EIO (cannot open, or the schema is newer than
 * this program knows: refuse rather than corrupt). */
int store_open(const char *url, struct store **ret);
void store_close(struct store *s);
static inline void store_closep(struct store **s)
{
    store_close(*s);
}
/* Schema version of the open database (for tests and --version output). */
int store_schema_version(struct store *s);

/* Templates. add: -EEXIST, -EINVAL. delete: -ENOENT, -EBUSY while a pool uses it. */
int store_template_add(struct store *s, const struct store_template *t);
int store_template_get(struct store *s, const char *name, struct store_template *ret);
int store_template_list(struct store *s, struct store_template **ret, size_t *ret_n);
int store_template_delete(struct store *s, const char *name);

/* Pools. add: -EEXIST, -ENOENT (template), -EINVAL. update replaces every field but
 * name and created. delete: -ENOENT, -EBUSY while desktops remain (delete them first);
 * removes the pool's entitlements. */
int store_pool_add(struct store *s, const struct store_pool *p);
int store_pool_get(struct store *s, const char *name, struct store_pool *ret);
int store_pool_list(struct store *s, struct store_pool **ret, size_t *ret_n);
int store_pool_update(struct store *s, const struct store_pool *p);
int store_pool_delete(struct store *s, const char *name);

/* Desktops. add (state as given, usually PROVISIONING): -EEXIST, -ENOENT (pool).
 * list: pool NULL = all pools; ordered by name. */
int store_desktop_add(struct store *s, const struct store_desktop *d);
int store_desktop_get(struct store *s, const char *name, struct store_desktop *ret);
int store_desktop_list(struct store *s, const char *pool, struct store_desktop **ret,
                       size_t *ret_n);
int store_desktop_set_state(struct store *s, const char *name, enum store_desktop_state state);
/* Compare-and-set of the owner: succeeds only if the current owner equals expected
 * ("" = free), else -EBUSY. Sets assigned to now (or 0 when new_owner is ""). */
int store_desktop_set_owner(struct store *s, const char *name, const char *expected,
                            const char *new_owner);
int store_desktop_delete(struct store *s, const char *name);
/* The next free "vdi-<pool>-NNNN" name for a pool (a per-pool counter that never goes
 * back, so a deleted desktop's name is not reused while its logs may remain). */
int store_desktop_next_name(struct store *s, const char *pool, char *buf, size_t size);

/* Entitlements. add: -EEXIST, -ENOENT (pool), -EINVAL. delete: -ENOENT.
 * list: pool NULL = all. */
int store_entitlement_add(struct store *s, const struct store_entitlement *e);
int store_entitlement_delete(struct store *s, const struct store_entitlement *e);
int store_entitlement_list(struct store *s, const char *pool, struct store_entitlement **ret,
                           size_t *ret_n);
/* Names (sorted, unique) of the pools that user, or any of groups, is entitled to. */
int store_entitled_pools(struct store *s, const char *user, const char *const *groups,
                         size_t n_groups, char (**ret)[STORE_NAME_MAX + 1], size_t *ret_n);

/* Sessions (connection rows): begin inserts (ended = 0); end sets ended. list: active_only
 * or all, newest first, at most limit rows (0 = no limit). Rows a previous broker run left
 * open stay open until their connection re-attaches or the broker gives up on it. */
int store_session_begin(struct store *s, const struct store_session *sess);
int store_session_end(struct store *s, uint64_t id, int64_t ended);
/* -ENOENT when no row has that id. */
int store_session_get(struct store *s, uint64_t id, struct store_session *ret);
int store_session_list(struct store *s, bool active_only, size_t limit,
                       struct store_session **ret, size_t *ret_n);
/* The highest id or session_id ever stored: both come from one counter, which keeps
 * growing across broker restarts. */
int store_session_max_id(struct store *s, uint64_t *ret);

/* Usage intervals. begin returns the interval id; end closes it (idempotent: an
 * already closed interval stays as it was). end_open_for_desktop closes every open
 * interval of a desktop (kind or both if kind < 0). */
int store_usage_begin(struct store *s, enum store_usage_kind kind, const char *user,
                      const char *pool, const char *desktop, int vcpus, int memory_mib,
                      int64_t start, uint64_t *ret_id);
int store_usage_end(struct store *s, uint64_t id, int64_t end);
int store_usage_end_open_for_desktop(struct store *s, const char *desktop, int kind, int64_t end);
/* Report over [from, to): one row per (user, pool) with any time in the period,
 * ordered by user then pool. user / pool NULL = all. */
int store_usage_report(struct store *s, int64_t from, int64_t to, int64_t now, const char *user,
                       const char *pool, struct store_usage_row **ret, size_t *ret_n);
