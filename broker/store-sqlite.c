/*
 * The SQLite backend of store.h: one connection (WAL, foreign keys on), the schema version
 * in PRAGMA user_version brought up to date by ordered migrations. store.c has validated
 * every record and holds the store's lock around each call (between begin() and end()),
 * so nothing here locks or checks fields; what it does check is everything read back,
 * because the file may have been edited by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "store-internal.h"
#include "util.h"

struct store_sqlite {
    struct store base; /* first: store.c only sees this part */
    sqlite3 *db;
    int version;
};

static struct store_sqlite *to_sqlite(struct store *s)
{
    return (struct store_sqlite *)s;
}

/* Ordered schema steps: migrations[i] takes user_version i to i + 1, each in its own
 * transaction. A step that has shipped is never edited; changes are new steps.
 *
 * Names are plain TEXT keys (they are what admins type and what libvirt sees). History
 * (sessions, usage) has no foreign keys: it must outlive the desktops and pools it
 * names. pool_counters has none either, so that a pool deleted and made again does not
 * hand out the names of its earlier desktops, whose logs may remain. */
static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE templates ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  os TEXT NOT NULL CHECK (os IN ('linux', 'windows')),"
    "  firmware TEXT NOT NULL CHECK (firmware IN ('bios', 'uefi')),"
    "  disk TEXT NOT NULL,"
    "  kernel TEXT NOT NULL DEFAULT '',"
    "  initrd TEXT NOT NULL DEFAULT '',"
    "  cmdline TEXT NOT NULL DEFAULT '',"
    "  created INTEGER NOT NULL"
    ");"
    "CREATE TABLE pools ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  template TEXT NOT NULL REFERENCES templates (name) ON DELETE RESTRICT,"
    "  vcpus INTEGER NOT NULL CHECK (vcpus >= 1),"
    "  memory_mib INTEGER NOT NULL CHECK (memory_mib >= 64),"
    "  kind TEXT NOT NULL CHECK (kind IN ('dedicated', 'floating')),"
    "  min_spare INTEGER NOT NULL CHECK (min_spare >= 0),"
    "  max_desktops INTEGER NOT NULL CHECK (max_desktops >= 1 AND min_spare <= max_desktops),"
    "  logoff TEXT NOT NULL CHECK (logoff IN ('keep', 'suspend', 'shutdown', 'reset')),"
    "  created INTEGER NOT NULL"
    ");"
    /* Foreign key children are searched on every parent delete. */
    "CREATE INDEX pools_template ON pools (template);"
    "CREATE TABLE desktops ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  pool TEXT NOT NULL REFERENCES pools (name) ON DELETE RESTRICT,"
    "  owner TEXT NOT NULL DEFAULT '',"
    "  state TEXT NOT NULL"
    "    CHECK (state IN ('provisioning', 'ready', 'resetting', 'deleting')),"
    "  disk TEXT NOT NULL DEFAULT '',"
    "  created INTEGER NOT NULL,"
    "  assigned INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX desktops_pool ON desktops (pool, name);"
    "CREATE TABLE pool_counters ("
    "  pool TEXT PRIMARY KEY NOT NULL,"
    "  next INTEGER NOT NULL"
    ");"
    "CREATE TABLE entitlements ("
    "  pool TEXT NOT NULL REFERENCES pools (name) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('user', 'group')),"
    "  name TEXT NOT NULL,"
    "  PRIMARY KEY (pool, kind, name)"
    ");"
    /* store_entitled_pools looks up by user or group at every login. */
    "CREATE INDEX entitlements_name ON entitlements (kind, name);"
    "CREATE TABLE sessions ("
    "  id INTEGER PRIMARY KEY NOT NULL,"
    "  username TEXT NOT NULL,"
    "  pool TEXT NOT NULL,"
    "  desktop TEXT NOT NULL,"
    "  client TEXT NOT NULL DEFAULT '',"
    "  started INTEGER NOT NULL,"
    "  ended INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX sessions_started ON sessions (started);"
    "CREATE INDEX sessions_open ON sessions (started) WHERE ended = 0;"
    "CREATE TABLE usage ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind TEXT NOT NULL CHECK (kind IN ('running', 'connected')),"
    "  username TEXT NOT NULL,"
    "  pool TEXT NOT NULL,"
    "  desktop TEXT NOT NULL,"
    "  vcpus INTEGER NOT NULL,"
    "  memory_mib INTEGER NOT NULL,"
    "  started INTEGER NOT NULL,"
    "  ended INTEGER" /* NULL while open */
    ");"
    "CREATE INDEX usage_started ON usage (started);"
    "CREATE INDEX usage_open ON usage (desktop) WHERE ended IS NULL;"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  target TEXT NOT NULL DEFAULT '',"
    "  detail TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE INDEX audit_time ON audit (time);",

    /* 2: session policies and stop actions of pools, the 'failed' desktop state (a CHECK
     * cannot be altered: the table is made again; nothing refers to desktops, so dropping
     * the old one deletes nothing else), desktop sessions and shadows, and the audit table
     * gone (the audit log is a file now: session/audit.h). */
    "ALTER TABLE pools ADD COLUMN disconnect_grace_s INTEGER NOT NULL DEFAULT 300"
    "  CHECK (disconnect_grace_s BETWEEN 0 AND 604800);"
    "ALTER TABLE pools ADD COLUMN idle_timeout_s INTEGER NOT NULL DEFAULT 0"
    "  CHECK (idle_timeout_s BETWEEN 0 AND 604800);"
    "ALTER TABLE pools ADD COLUMN max_session_s INTEGER NOT NULL DEFAULT 0"
    "  CHECK (max_session_s BETWEEN 0 AND 2592000);"
    "ALTER TABLE pools ADD COLUMN stop_action TEXT NOT NULL DEFAULT 'none'"
    "  CHECK (stop_action IN ('none', 'restart', 'reset'));"
    "UPDATE pools SET stop_action = 'reset' WHERE kind = 'floating';"
    "CREATE TABLE desktops_new ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  pool TEXT NOT NULL REFERENCES pools (name) ON DELETE RESTRICT,"
    "  owner TEXT NOT NULL DEFAULT '',"
    "  state TEXT NOT NULL"
    "    CHECK (state IN ('provisioning', 'ready', 'resetting', 'deleting', 'failed')),"
    "  disk TEXT NOT NULL DEFAULT '',"
    "  created INTEGER NOT NULL,"
    "  assigned INTEGER NOT NULL DEFAULT 0"
    ");"
    "INSERT INTO desktops_new (name, pool, owner, state, disk, created, assigned)"
    "  SELECT name, pool, owner, state, disk, created, assigned FROM desktops;"
    "DROP TABLE desktops;"
    "ALTER TABLE desktops_new RENAME TO desktops;"
    "CREATE INDEX desktops_pool ON desktops (pool, name);"
    "ALTER TABLE sessions ADD COLUMN session_id INTEGER NOT NULL DEFAULT 0"
    "  CHECK (session_id >= 0);"
    "ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'user'"
    "  CHECK (kind IN ('user', 'shadow'));"
    "ALTER TABLE sessions ADD COLUMN token_hash TEXT NOT NULL DEFAULT ''"
    "  CHECK (token_hash = '' OR (length(token_hash) = 64"
    "                             AND token_hash NOT GLOB '*[^0-9a-f]*'));"
    "UPDATE sessions SET session_id = id;"
    "CREATE INDEX sessions_session ON sessions (session_id);"
    "DROP TABLE audit;",
};

/* ---- statements ---- */

/* One bound parameter: text (NULL binds SQL NULL) or integer. */
struct param {
    bool is_text;
    const char *text;
    int64_t i;
};
#define P_TEXT(v) ((struct param){.is_text = true, .text = (v)})
#define P_INT(v) ((struct param){.i = (int64_t)(v)})
/* Expands to "array, count" for the functions below, binding ?1, ?2, ... in order. */
#define PARAMS(...)                                                                                \
    (const struct param[]){__VA_ARGS__}, ARRAY_SIZE(((const struct param[]){__VA_ARGS__}))
#define NO_PARAMS NULL, 0

static void stmt_freep(sqlite3_stmt **st)
{
    sqlite3_finalize(*st); /* NULL is a no-op */
}

static int db_fail(struct store_sqlite *s, const char *what)
{
    log_error("store: %s: %s", what, sqlite3_errmsg(s->db));
    return -EIO;
}

static int db_exec(struct store_sqlite *s, const char *sql)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(s, sql);
    return 0;
}

static int db_prepare(struct store_sqlite *s, const char *sql, const struct param *p, size_t n,
                      sqlite3_stmt **ret)
{
    _cleanup_(stmt_freep) sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, sql);
    for (size_t i = 0; i < n; i++) {
        int idx = (int)i + 1, rc;
        if (!p[i].is_text)
            rc = sqlite3_bind_int64(st, idx, p[i].i);
        else if (p[i].text)
            rc = sqlite3_bind_text(st, idx, p[i].text, -1, SQLITE_STATIC);
        else
            rc = sqlite3_bind_null(st, idx);
        if (rc != SQLITE_OK)
            return db_fail(s, sql);
    }
    *ret = TAKE_PTR(st);
    return 0;
}

/* Returns 1 with a row, 0 when done, or -EIO. */
static int db_next(struct store_sqlite *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db_fail(s, sqlite3_sql(st));
}

/* Runs one INSERT, UPDATE or DELETE. Returns the number of rows changed or a negative
 * errno. A foreign key failure means different things by statement, hence fk_error:
 * -ENOENT when a new row refers to a missing one, -EBUSY when a deleted row is still
 * referred to (0: not expected, -EIO). */
static int db_write(struct store_sqlite *s, int fk_error, const char *sql, const struct param *p,
                    size_t n)
{
    _cleanup_(stmt_freep) sqlite3_stmt *st = NULL;
    int r = db_prepare(s, sql, p, n, &st);
    if (r < 0)
        return r;

    int rc = sqlite3_step(st); /* extended result codes are on */
    switch (rc) {
    case SQLITE_DONE:
        return sqlite3_changes(s->db);
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        return -EEXIST;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
    case SQLITE_CONSTRAINT_TRIGGER: /* how SQLite reports ON DELETE RESTRICT; we have no
                                       triggers of our own */
        if (fk_error != 0)
            return fk_error;
        break;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
        /* store.c's validation should have caught it: say which rule disagreed. */
        log_debug("store: %s: %s", sql, sqlite3_errmsg(s->db));
        return -EINVAL;
    default:
        break;
    }
    return db_fail(s, sql);
}

/* 1 when the query returns a row, 0 when it does not, or -EIO. */
static int db_exists(struct store_sqlite *s, const char *sql, const struct param *p, size_t n)
{
    _cleanup_(stmt_freep) sqlite3_stmt *st = NULL;
    int r = db_prepare(s, sql, p, n, &st);
    if (r < 0)
        return r;
    return db_next(s, st);
}

/* Changed rows of an UPDATE or DELETE by key become 0, or -ENOENT when none: the key
 * did not exist. */
static int changed_one(int r)
{
    if (r < 0)
        return r;
    return r == 0 ? -ENOENT : 0;
}

/* ---- reading rows ---- */

/* Text of a column ("" for NULL), valid until the next step. */
static const char *column_str(sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t ? t : "";
}

/* Copies a text column into a fixed array, cut to fit: the DB may hold anything. */
static void column_copy(sqlite3_stmt *st, int col, char *buf, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (n >= size)
        n = size - 1;
    if (n > 0)
        memcpy(buf, t, n);
    buf[n] = '\0';
}
#define COLUMN_COPY(st, col, array) column_copy((st), (col), (array), sizeof(array))

/* The value itself is not logged: it came from the file and may be anything. */
static int bad_value(sqlite3_stmt *st, int col)
{
    log_error("store: unknown value in column '%s': the database was changed outside vdi",
              sqlite3_column_name(st, col));
    return -EIO;
}

#define COLUMN_ENUM(st, col, parse, ret)                                                           \
    ({                                                                                             \
        int _r = parse(column_str((st), (col)), (ret));                                            \
        _r < 0 ? bad_value((st), (col)) : 0;                                                       \
    })

/* A growing array of size-byte elements. */
struct vec {
    void *data;
    size_t n, allocated, size;
};

/* Returns a new zeroed element at the end, or NULL when out of memory. */
static void *vec_push(struct vec *v)
{
    if (v->n == v->allocated) {
        size_t want = v->allocated ? v->allocated * 2 : 16, bytes;
        if (want < v->allocated || !size_mul(want, v->size, &bytes))
            return NULL;
        void *grown = realloc(v->data, bytes);
        if (!grown)
            return NULL;
        v->data = grown;
        v->allocated = want;
    }
    void *e = (char *)v->data + v->n * v->size;
    memset(e, 0, v->size);
    v->n++;
    return e;
}

typedef int (*row_reader)(sqlite3_stmt *st, void *elem);

/* Every row of a query through read, as a malloc'd array (NULL when empty). */
static int db_list(struct store_sqlite *s, const char *sql, const struct param *p, size_t n,
                   size_t size, row_reader read, void **ret, size_t *ret_n)
{
    _cleanup_(stmt_freep) sqlite3_stmt *st = NULL;
    struct vec v = {.size = size};
    int r = db_prepare(s, sql, p, n, &st);
    if (r < 0)
        return r;
    while ((r = db_next(s, st)) > 0) {
        void *e = vec_push(&v);
        if (!e) {
            r = -ENOMEM;
            break;
        }
        r = read(st, e);
        if (r < 0)
            break;
    }
    if (r < 0) {
        free(v.data);
        return r;
    }
    *ret = v.data;
    *ret_n = v.n;
    return 0;
}

/* The first row of a query through read, or -ENOENT. */
static int db_get(struct store_sqlite *s, const char *sql, const struct param *p, size_t n,
                  row_reader read, void *ret)
{
    _cleanup_(stmt_freep) sqlite3_stmt *st = NULL;
    int r = db_prepare(s, sql, p, n, &st);
    if (r < 0)
        return r;
    r = db_next(s, st);
    if (r <= 0)
        return r < 0 ? r : -ENOENT;
    return read(st, ret);
}

static int64_t sql_limit(size_t limit)
{
    return limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit; /* -1: no limit */
}

/* ---- open, close, transactions ---- */

static int sqlite_begin(struct store *base, bool write)
{
    return db_exec(to_sqlite(base), write ? "BEGIN IMMEDIATE" : "BEGIN");
}

static int sqlite_end(struct store *base, int r)
{
    struct store_sqlite *s = to_sqlite(base);
    if (r >= 0) {
        int k = db_exec(s, "COMMIT");
        if (k == 0)
            return r;
        r = k;
    }
    /* SQLite has already rolled back by itself after some errors (I/O, full disk). */
    if (!sqlite3_get_autocommit(s->db))
        (void)db_exec(s, "ROLLBACK");
    return r;
}

static int pragma_int(struct store_sqlite *s, const char *sql, int *ret)
{
    _cleanup_(stmt_freep) sqlite3_stmt *st = NULL;
    int r = db_prepare(s, sql, NO_PARAMS, &st);
    if (r < 0)
        return r;
    r = db_next(s, st);
    if (r <= 0)
        return r < 0 ? r : db_fail(s, sql);
    *ret = sqlite3_column_int(st, 0);
    return 0;
}

/* Brings the schema to the newest version, one transaction per step. The version is read
 * inside the write transaction, so two programs opening the same new file do not both
 * run a step. */
static int migrate(struct store_sqlite *s, const char *path)
{
    const int newest = (int)ARRAY_SIZE(migrations);
    for (;;) {
        int version = 0;
        int r = db_exec(s, "BEGIN IMMEDIATE");
        if (r < 0)
            return r;
        r = pragma_int(s, "PRAGMA user_version", &version);
        if (r < 0)
            return sqlite_end(&s->base, r);
        if (version < 0 || version > newest) {
            /* A newer vdi's data (or another program's): changing it could only corrupt
             * it, and the caller sees only -EIO, so this is the place to say why. */
            log_error("store %s: schema version %d is not one this program knows (0..%d): "
                      "refusing to use it; is it from a newer vdi?",
                      path, version, newest);
            return sqlite_end(&s->base, -EIO);
        }
        if (version == newest) {
            s->version = version;
            return sqlite_end(&s->base, 0);
        }
        if (sqlite3_exec(s->db, migrations[version], NULL, NULL, NULL) != SQLITE_OK) {
            log_error("store %s: migration to schema version %d failed: %s", path, version + 1,
                      sqlite3_errmsg(s->db));
            return sqlite_end(&s->base, -EIO);
        }
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version + 1);
        r = sqlite_end(&s->base, db_exec(s, sql));
        if (r < 0)
            return r;
        log_info("store %s: migrated to schema version %d", path, version + 1);
    }
}

static void sqlite_close(struct store *base)
{
    struct store_sqlite *s = to_sqlite(base);
    if (!s)
        return;
    sqlite3_close_v2(s->db); /* NULL is a no-op */
    free(s);
}

static void sqlite_closep(struct store_sqlite **s)
{
    if (*s)
        sqlite_close(&(*s)->base);
}

/* Creates the file unless it exists, mode 0600 whatever the umask: usage and sessions are
 * not for every local user. SQLite gives -wal and -shm the mode of the database. */
static int create_file(const char *path)
{
    _cleanup_(closep) int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return 0;
        return -errno;
    }
    if (fchmod(fd, 0600) < 0)
        return -errno;
    return 0;
}

static int sqlite_open(const char *path, struct store **ret)
{
    _cleanup_(sqlite_closep) struct store_sqlite *s = NULL;
    int mode = 0, r;

    if (path[0] != '/')
        return -EINVAL;
    r = create_file(path);
    if (r < 0) {
        log_error_errno(r, "store %s: cannot create", path);
        return -EIO;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        log_error("store %s: cannot open: %s", path,
                  s->db ? sqlite3_errmsg(s->db) : "out of memory");
        return -EIO;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* Another process (a second broker, sqlite3 in a shell) may hold the lock briefly. */
    sqlite3_busy_timeout(s->db, 5000);

    r = db_exec(s, "PRAGMA foreign_keys = ON");
    if (r >= 0)
        r = pragma_int(s, "PRAGMA foreign_keys", &mode);
    if (r < 0)
        return r;
    if (mode != 1) {
        log_error("store %s: this SQLite cannot enforce foreign keys", path);
        return -EIO;
    }

    /* WAL: readers never wait for the writer; NORMAL is durable enough with WAL (a power
     * cut may lose the last transactions, never corrupt the file). */
    _cleanup_(stmt_freep) sqlite3_stmt *st = NULL;
    r = db_prepare(s, "PRAGMA journal_mode = WAL", NO_PARAMS, &st);
    if (r >= 0)
        r = db_next(s, st);
    if (r < 0)
        return r;
    if (r == 0 || !streq(column_str(st, 0), "wal")) {
        log_error("store %s: cannot switch to WAL mode", path);
        return -EIO;
    }
    sqlite3_finalize(TAKE_PTR(st));
    r = db_exec(s, "PRAGMA synchronous = NORMAL");
    if (r < 0)
        return r;

    r = migrate(s, path);
    if (r < 0)
        return r;
    *ret = &TAKE_PTR(s)->base;
    return 0;
}

static int sqlite_schema_version(struct store *base)
{
    return to_sqlite(base)->version;
}

/* ---- templates ---- */

#define TEMPLATE_COLUMNS "name, os, firmware, disk, kernel, initrd, cmdline, created"

static int template_read(sqlite3_stmt *st, void *elem)
{
    struct store_template *t = elem;
    COLUMN_COPY(st, 0, t->name);
    COLUMN_COPY(st, 3, t->disk);
    COLUMN_COPY(st, 4, t->kernel);
    COLUMN_COPY(st, 5, t->initrd);
    COLUMN_COPY(st, 6, t->cmdline);
    t->created = sqlite3_column_int64(st, 7);
    int r = COLUMN_ENUM(st, 1, store_os_from_string, &t->os);
    return r < 0 ? r : COLUMN_ENUM(st, 2, store_firmware_from_string, &t->firmware);
}

static int sqlite_template_add(struct store *base, const struct store_template *t)
{
    int r = db_write(to_sqlite(base), 0,
                     "INSERT INTO templates (" TEMPLATE_COLUMNS ") "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                     PARAMS(P_TEXT(t->name), P_TEXT(store_os_to_string(t->os)),
                            P_TEXT(store_firmware_to_string(t->firmware)), P_TEXT(t->disk),
                            P_TEXT(t->kernel), P_TEXT(t->initrd), P_TEXT(t->cmdline),
                            P_INT(t->created)));
    return r < 0 ? r : 0;
}

static int sqlite_template_get(struct store *base, const char *name, struct store_template *ret)
{
    return db_get(to_sqlite(base), "SELECT " TEMPLATE_COLUMNS " FROM templates WHERE name = ?1",
                  PARAMS(P_TEXT(name)), template_read, ret);
}

static int sqlite_template_list(struct store *base, struct store_template **ret, size_t *ret_n)
{
    void *list = NULL;
    int r = db_list(to_sqlite(base), "SELECT " TEMPLATE_COLUMNS " FROM templates ORDER BY name",
                    NO_PARAMS, sizeof(**ret), template_read, &list, ret_n);
    if (r >= 0)
        *ret = list;
    return r;
}

static int sqlite_template_delete(struct store *base, const char *name)
{
    return changed_one(db_write(to_sqlite(base), -EBUSY, "DELETE FROM templates WHERE name = ?1",
                                PARAMS(P_TEXT(name))));
}

/* ---- pools ---- */

#define POOL_COLUMNS                                                                               \
    "name, template, vcpus, memory_mib, kind, min_spare, max_desktops, logoff, created, "          \
    "disconnect_grace_s, idle_timeout_s, max_session_s, stop_action"

static int pool_read(sqlite3_stmt *st, void *elem)
{
    struct store_pool *p = elem;
    COLUMN_COPY(st, 0, p->name);
    COLUMN_COPY(st, 1, p->template_name);
    p->vcpus = sqlite3_column_int(st, 2);
    p->memory_mib = sqlite3_column_int(st, 3);
    p->min_spare = sqlite3_column_int(st, 5);
    p->max_desktops = sqlite3_column_int(st, 6);
    p->created = sqlite3_column_int64(st, 8);
    p->disconnect_grace_s = sqlite3_column_int(st, 9);
    p->idle_timeout_s = sqlite3_column_int(st, 10);
    p->max_session_s = sqlite3_column_int(st, 11);
    int r = COLUMN_ENUM(st, 4, store_pool_kind_from_string, &p->kind);
    if (r >= 0)
        r = COLUMN_ENUM(st, 7, store_logoff_from_string, &p->logoff);
    return r < 0 ? r : COLUMN_ENUM(st, 12, store_stop_action_from_string, &p->stop_action);
}

static int sqlite_pool_add(struct store *base, const struct store_pool *p)
{
    int r = db_write(
        to_sqlite(base), -ENOENT,
        "INSERT INTO pools (" POOL_COLUMNS ") "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        PARAMS(P_TEXT(p->name), P_TEXT(p->template_name), P_INT(p->vcpus), P_INT(p->memory_mib),
               P_TEXT(store_pool_kind_to_string(p->kind)), P_INT(p->min_spare),
               P_INT(p->max_desktops), P_TEXT(store_logoff_to_string(p->logoff)), P_INT(p->created),
               P_INT(p->disconnect_grace_s), P_INT(p->idle_timeout_s), P_INT(p->max_session_s),
               P_TEXT(store_stop_action_to_string(p->stop_action))));
    return r < 0 ? r : 0;
}

static int sqlite_pool_get(struct store *base, const char *name, struct store_pool *ret)
{
    return db_get(to_sqlite(base), "SELECT " POOL_COLUMNS " FROM pools WHERE name = ?1",
                  PARAMS(P_TEXT(name)), pool_read, ret);
}

static int sqlite_pool_list(struct store *base, struct store_pool **ret, size_t *ret_n)
{
    void *list = NULL;
    int r = db_list(to_sqlite(base), "SELECT " POOL_COLUMNS " FROM pools ORDER BY name", NO_PARAMS,
                    sizeof(**ret), pool_read, &list, ret_n);
    if (r >= 0)
        *ret = list;
    return r;
}

static int sqlite_pool_update(struct store *base, const struct store_pool *p)
{
    return changed_one(db_write(
        to_sqlite(base), -ENOENT,
        "UPDATE pools SET template = ?2, vcpus = ?3, memory_mib = ?4, kind = ?5, "
        "min_spare = ?6, max_desktops = ?7, logoff = ?8, disconnect_grace_s = ?9, "
        "idle_timeout_s = ?10, max_session_s = ?11, stop_action = ?12 WHERE name = ?1",
        PARAMS(P_TEXT(p->name), P_TEXT(p->template_name), P_INT(p->vcpus), P_INT(p->memory_mib),
               P_TEXT(store_pool_kind_to_string(p->kind)), P_INT(p->min_spare),
               P_INT(p->max_desktops), P_TEXT(store_logoff_to_string(p->logoff)),
               P_INT(p->disconnect_grace_s), P_INT(p->idle_timeout_s), P_INT(p->max_session_s),
               P_TEXT(store_stop_action_to_string(p->stop_action)))));
}

static int sqlite_pool_delete(struct store *base, const char *name)
{
    /* Desktops restrict, entitlements cascade (schema). */
    return changed_one(db_write(to_sqlite(base), -EBUSY, "DELETE FROM pools WHERE name = ?1",
                                PARAMS(P_TEXT(name))));
}

/* ---- desktops ---- */

#define DESKTOP_COLUMNS "name, pool, owner, state, disk, created, assigned"

static int desktop_read(sqlite3_stmt *st, void *elem)
{
    struct store_desktop *d = elem;
    COLUMN_COPY(st, 0, d->name);
    COLUMN_COPY(st, 1, d->pool);
    COLUMN_COPY(st, 2, d->owner);
    COLUMN_COPY(st, 4, d->disk);
    d->created = sqlite3_column_int64(st, 5);
    d->assigned = sqlite3_column_int64(st, 6);
    return COLUMN_ENUM(st, 3, store_desktop_state_from_string, &d->state);
}

static int sqlite_desktop_add(struct store *base, const struct store_desktop *d)
{
    int r = db_write(to_sqlite(base), -ENOENT,
                     "INSERT INTO desktops (" DESKTOP_COLUMNS ") "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                     PARAMS(P_TEXT(d->name), P_TEXT(d->pool), P_TEXT(d->owner),
                            P_TEXT(store_desktop_state_to_string(d->state)), P_TEXT(d->disk),
                            P_INT(d->created), P_INT(d->assigned)));
    return r < 0 ? r : 0;
}

static int sqlite_desktop_get(struct store *base, const char *name, struct store_desktop *ret)
{
    return db_get(to_sqlite(base), "SELECT " DESKTOP_COLUMNS " FROM desktops WHERE name = ?1",
                  PARAMS(P_TEXT(name)), desktop_read, ret);
}

static int sqlite_desktop_list(struct store *base, const char *pool, struct store_desktop **ret,
                               size_t *ret_n)
{
    void *list = NULL;
    int r = db_list(to_sqlite(base),
                    "SELECT " DESKTOP_COLUMNS " FROM desktops "
                    "WHERE ?1 IS NULL OR pool = ?1 ORDER BY name",
                    PARAMS(P_TEXT(pool)), sizeof(**ret), desktop_read, &list, ret_n);
    if (r >= 0)
        *ret = list;
    return r;
}

static int sqlite_desktop_set_state(struct store *base, const char *name,
                                    enum store_desktop_state state)
{
    return changed_one(
        db_write(to_sqlite(base), 0, "UPDATE desktops SET state = ?2 WHERE name = ?1",
                 PARAMS(P_TEXT(name), P_TEXT(store_desktop_state_to_string(state)))));
}

static int sqlite_desktop_set_owner(struct store *base, const char *name, const char *expected,
                                    const char *new_owner, int64_t assigned)
{
    struct store_sqlite *s = to_sqlite(base);
    int r = db_write(s, 0,
                     "UPDATE desktops SET owner = ?3, assigned = ?4 WHERE name = ?1 AND owner = ?2",
                     PARAMS(P_TEXT(name), P_TEXT(expected), P_TEXT(new_owner), P_INT(assigned)));
    if (r != 0)
        return r < 0 ? r : 0;
    /* Nothing changed: lost the compare, or no such desktop. */
    r = db_exists(s, "SELECT 1 FROM desktops WHERE name = ?1", PARAMS(P_TEXT(name)));
    if (r < 0)
        return r;
    return r ? -EBUSY : -ENOENT;
}

static int sqlite_desktop_delete(struct store *base, const char *name)
{
    return changed_one(
        db_write(to_sqlite(base), 0, "DELETE FROM desktops WHERE name = ?1", PARAMS(P_TEXT(name))));
}

static int sqlite_desktop_next_name(struct store *base, const char *pool, char *buf, size_t size)
{
    struct store_sqlite *s = to_sqlite(base);
    _cleanup_(stmt_freep) sqlite3_stmt *st = NULL;
    char name[STORE_DESKTOP_MAX + 1];
    int64_t next = 1;

    int r = db_exists(s, "SELECT 1 FROM pools WHERE name = ?1", PARAMS(P_TEXT(pool)));
    if (r <= 0)
        return r < 0 ? r : -ENOENT;
    r = db_prepare(s, "SELECT next FROM pool_counters WHERE pool = ?1", PARAMS(P_TEXT(pool)), &st);
    if (r >= 0)
        r = db_next(s, st);
    if (r < 0)
        return r;
    if (r > 0 && sqlite3_column_int64(st, 0) > 1)
        next = sqlite3_column_int64(st, 0);

    /* Skips a name that exists anyway (a desktop added under that name by hand). */
    for (;; next++) {
        if (next == INT64_MAX) {
            log_error("store: desktop counter of pool %s is exhausted", pool);
            return -EIO;
        }
        snprintf(name, sizeof(name), "vdi-%s-%04" PRId64, pool, next);
        r = db_exists(s, "SELECT 1 FROM desktops WHERE name = ?1", PARAMS(P_TEXT(name)));
        if (r < 0)
            return r;
        if (r == 0)
            break;
    }
    if (strlen(name) >= size)
        return -EINVAL; /* rolled back: the number is not used up */

    r = db_write(s, 0,
                 "INSERT INTO pool_counters (pool, next) VALUES (?1, ?2) "
                 "ON CONFLICT (pool) DO UPDATE SET next = excluded.next",
                 PARAMS(P_TEXT(pool), P_INT(next + 1)));
    if (r < 0)
        return r;
    strcpy(buf, name);
    return 0;
}

/* ---- entitlements ---- */

static int entitlement_read(sqlite3_stmt *st, void *elem)
{
    struct store_entitlement *e = elem;
    COLUMN_COPY(st, 0, e->pool);
    COLUMN_COPY(st, 2, e->name);
    return COLUMN_ENUM(st, 1, store_entitlement_kind_from_string, &e->kind);
}

static int sqlite_entitlement_add(struct store *base, const struct store_entitlement *e)
{
    int r = db_write(to_sqlite(base), -ENOENT,
                     "INSERT INTO entitlements (pool, kind, name) VALUES (?1, ?2, ?3)",
                     PARAMS(P_TEXT(e->pool), P_TEXT(store_entitlement_kind_to_string(e->kind)),
                            P_TEXT(e->name)));
    return r < 0 ? r : 0;
}

static int sqlite_entitlement_delete(struct store *base, const struct store_entitlement *e)
{
    return changed_one(db_write(
        to_sqlite(base), 0, "DELETE FROM entitlements WHERE pool = ?1 AND kind = ?2 AND name = ?3",
        PARAMS(P_TEXT(e->pool), P_TEXT(store_entitlement_kind_to_string(e->kind)),
               P_TEXT(e->name))));
}

static int sqlite_entitlement_list(struct store *base, const char *pool,
                                   struct store_entitlement **ret, size_t *ret_n)
{
    void *list = NULL;
    int r = db_list(to_sqlite(base),
                    "SELECT pool, kind, name FROM entitlements "
                    "WHERE ?1 IS NULL OR pool = ?1 ORDER BY pool, kind, name",
                    PARAMS(P_TEXT(pool)), sizeof(**ret), entitlement_read, &list, ret_n);
    if (r >= 0)
        *ret = list;
    return r;
}

typedef char pool_name[STORE_NAME_MAX + 1];

static int pool_name_compare(const void *a, const void *b)
{
    return strcmp(*(const pool_name *)a, *(const pool_name *)b);
}

/* One lookup per name rather than an IN list built at run time: a user may be in any
 * number of groups, and the statement stays a constant. Sorted and made unique here. */
static int sqlite_entitled_pools(struct store *base, const char *user, const char *const *groups,
                                 size_t n_groups, char (**ret)[STORE_NAME_MAX + 1], size_t *ret_n)
{
    struct store_sqlite *s = to_sqlite(base);
    _cleanup_(stmt_freep) sqlite3_stmt *st = NULL;
    struct vec v = {.size = sizeof(pool_name)};
    int r = db_prepare(s, "SELECT pool FROM entitlements WHERE kind = ?1 AND name = ?2", NO_PARAMS,
                       &st);
    if (r < 0)
        return r;

    for (size_t i = 0; i <= n_groups && r >= 0; i++) {
        const char *kind = i == 0 ? "user" : "group";
        const char *name = i == 0 ? user : groups[i - 1];
        sqlite3_reset(st);
        if (sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) != SQLITE_OK) {
            r = db_fail(s, sqlite3_sql(st));
            break;
        }
        while ((r = db_next(s, st)) > 0) {
            pool_name *e = vec_push(&v);
            if (!e) {
                r = -ENOMEM;
                break;
            }
            COLUMN_COPY(st, 0, *e);
        }
    }
    if (r < 0) {
        free(v.data);
        return r;
    }

    pool_name *names = v.data;
    size_t n = 0;
    if (v.n > 0)
        qsort(names, v.n, sizeof(*names), pool_name_compare);
    for (size_t i = 0; i < v.n; i++)
        if (n == 0 || !streq(names[n - 1], names[i]))
            memmove(names[n++], names[i], sizeof(*names));
    *ret = names; /* NULL when there is none */
    *ret_n = n;
    return 0;
}

/* ---- sessions ---- */

#define SESSION_COLUMNS                                                                            \
    "id, username, pool, desktop, client, started, ended, session_id, kind, token_hash"

static int session_read(sqlite3_stmt *st, void *elem)
{
    struct store_session *sess = elem;
    sess->id = (uint64_t)sqlite3_column_int64(st, 0);
    COLUMN_COPY(st, 1, sess->user);
    COLUMN_COPY(st, 2, sess->pool);
    COLUMN_COPY(st, 3, sess->desktop);
    COLUMN_COPY(st, 4, sess->client);
    sess->started = sqlite3_column_int64(st, 5);
    sess->ended = sqlite3_column_int64(st, 6);
    sess->session_id = (uint64_t)sqlite3_column_int64(st, 7);
    COLUMN_COPY(st, 9, sess->token_hash);
    return COLUMN_ENUM(st, 8, store_session_kind_from_string, &sess->kind);
}

static int sqlite_session_begin(struct store *base, const struct store_session *sess)
{
    int r = db_write(
        to_sqlite(base), 0,
        "INSERT INTO sessions (" SESSION_COLUMNS ") "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9)",
        PARAMS(P_INT(sess->id), P_TEXT(sess->user), P_TEXT(sess->pool), P_TEXT(sess->desktop),
               P_TEXT(sess->client), P_INT(sess->started), P_INT(sess->session_id),
               P_TEXT(store_session_kind_to_string(sess->kind)), P_TEXT(sess->token_hash)));
    return r < 0 ? r : 0;
}

static int sqlite_session_get(struct store *base, uint64_t id, struct store_session *ret)
{
    return db_get(to_sqlite(base), "SELECT " SESSION_COLUMNS " FROM sessions WHERE id = ?1",
                  PARAMS(P_INT(id)), session_read, ret);
}

/* Ending twice keeps the first end. */
static int sqlite_session_end(struct store *base, uint64_t id, int64_t ended)
{
    struct store_sqlite *s = to_sqlite(base);
    int r = db_write(s, 0, "UPDATE sessions SET ended = ?2 WHERE id = ?1 AND ended = 0",
                     PARAMS(P_INT(id), P_INT(ended)));
    if (r != 0)
        return r < 0 ? r : 0;
    r = db_exists(s, "SELECT 1 FROM sessions WHERE id = ?1", PARAMS(P_INT(id)));
    if (r < 0)
        return r;
    return r ? 0 : -ENOENT;
}

static int sqlite_session_list(struct store *base, bool active_only, size_t limit,
                               struct store_session **ret, size_t *ret_n)
{
    /* Two constant statements, so that the active one can use the partial index. */
    const char *sql = active_only ? "SELECT " SESSION_COLUMNS " FROM sessions WHERE ended = 0 "
                                    "ORDER BY started DESC, id DESC LIMIT ?1"
                                  : "SELECT " SESSION_COLUMNS " FROM sessions "
                                    "ORDER BY started DESC, id DESC LIMIT ?1";
    void *list = NULL;
    int r = db_list(to_sqlite(base), sql, PARAMS(P_INT(sql_limit(limit))), sizeof(**ret),
                    session_read, &list, ret_n);
    if (r >= 0)
        *ret = list;
    return r;
}

static int sqlite_session_max_id(struct store *base, uint64_t *ret)
{
    struct store_sqlite *s = to_sqlite(base);
    _cleanup_(stmt_freep) sqlite3_stmt *st = NULL;
    /* Two subqueries, so that each MAX() is one index lookup. */
    int r = db_prepare(s,
                       "SELECT MAX(COALESCE((SELECT MAX(id) FROM sessions), 0),"
                       " COALESCE((SELECT MAX(session_id) FROM sessions), 0))",
                       NO_PARAMS, &st);
    if (r >= 0)
        r = db_next(s, st);
    if (r <= 0)
        return r < 0 ? r : db_fail(s, sqlite3_sql(st));
    *ret = (uint64_t)sqlite3_column_int64(st, 0);
    return 0;
}

/* ---- usage ---- */

static int sqlite_usage_begin(struct store *base, enum store_usage_kind kind, const char *user,
                              const char *pool, const char *desktop, int vcpus, int memory_mib,
                              int64_t start, uint64_t *ret_id)
{
    struct store_sqlite *s = to_sqlite(base);
    int r =
        db_write(s, 0,
                 "INSERT INTO usage (kind, username, pool, desktop, vcpus, memory_mib, started) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                 PARAMS(P_TEXT(store_usage_kind_to_string(kind)), P_TEXT(user), P_TEXT(pool),
                        P_TEXT(desktop), P_INT(vcpus), P_INT(memory_mib), P_INT(start)));
    if (r < 0)
        return r;
    *ret_id = (uint64_t)sqlite3_last_insert_rowid(s->db);
    return 0;
}

/* An end before the start (the clock went back) is recorded as the start: an interval is
 * never negative. */
static int sqlite_usage_end(struct store *base, uint64_t id, int64_t end)
{
    struct store_sqlite *s = to_sqlite(base);
    int r =
        db_write(s, 0, "UPDATE usage SET ended = MAX(started, ?2) WHERE id = ?1 AND ended IS NULL",
                 PARAMS(P_INT(id), P_INT(end)));
    if (r != 0)
        return r < 0 ? r : 0;
    r = db_exists(s, "SELECT 1 FROM usage WHERE id = ?1", PARAMS(P_INT(id)));
    if (r < 0)
        return r;
    return r ? 0 : -ENOENT;
}

static int sqlite_usage_end_open_for_desktop(struct store *base, const char *desktop, int kind,
                                             int64_t end)
{
    const char *k = kind < 0 ? NULL : store_usage_kind_to_string((enum store_usage_kind)kind);
    int r = db_write(to_sqlite(base), 0,
                     "UPDATE usage SET ended = MAX(started, ?3) "
                     "WHERE desktop = ?1 AND ended IS NULL AND (?2 IS NULL OR kind = ?2)",
                     PARAMS(P_TEXT(desktop), P_TEXT(k), P_INT(end)));
    return r < 0 ? r : 0;
}

static int usage_row_read(sqlite3_stmt *st, void *elem)
{
    struct store_usage_row *u = elem;
    COLUMN_COPY(st, 0, u->user);
    COLUMN_COPY(st, 1, u->pool);
    u->vcpu_seconds = sqlite3_column_double(st, 2);
    u->memory_mib_seconds = sqlite3_column_double(st, 3);
    u->connected_seconds = sqlite3_column_double(st, 4);
    return 0;
}

static int sqlite_usage_report(struct store *base, int64_t from, int64_t to, int64_t now,
                               const char *user, const char *pool, struct store_usage_row **ret,
                               size_t *ret_n)
{
    /* seconds = overlap of [started, ended or now) with [from, to). TOTAL() sums as
     * floating point, so no product or sum can overflow. */
    void *list = NULL;
    int r = db_list(to_sqlite(base),
                    "SELECT username, pool,"
                    " TOTAL(CASE WHEN kind = 'running' THEN vcpus * seconds END),"
                    " TOTAL(CASE WHEN kind = 'running' THEN memory_mib * seconds END),"
                    " TOTAL(CASE WHEN kind = 'connected' THEN seconds END) "
                    "FROM (SELECT username, pool, kind, vcpus, memory_mib,"
                    "  MIN(COALESCE(ended, ?3), ?2) - MAX(started, ?1) AS seconds"
                    "  FROM usage WHERE started < ?2"
                    "  AND (?4 IS NULL OR username = ?4) AND (?5 IS NULL OR pool = ?5)) "
                    "WHERE seconds > 0 GROUP BY username, pool ORDER BY username, pool",
                    PARAMS(P_INT(from), P_INT(to), P_INT(now), P_TEXT(user), P_TEXT(pool)),
                    sizeof(**ret), usage_row_read, &list, ret_n);
    if (r >= 0)
        *ret = list;
    return r;
}

const struct store_ops store_sqlite_ops = {
    .open = sqlite_open,
    .close = sqlite_close,
    .begin = sqlite_begin,
    .end = sqlite_end,
    .schema_version = sqlite_schema_version,
    .template_add = sqlite_template_add,
    .template_get = sqlite_template_get,
    .template_list = sqlite_template_list,
    .template_delete = sqlite_template_delete,
    .pool_add = sqlite_pool_add,
    .pool_get = sqlite_pool_get,
    .pool_list = sqlite_pool_list,
    .pool_update = sqlite_pool_update,
    .pool_delete = sqlite_pool_delete,
    .desktop_add = sqlite_desktop_add,
    .desktop_get = sqlite_desktop_get,
    .desktop_list = sqlite_desktop_list,
    .desktop_set_state = sqlite_desktop_set_state,
    .desktop_set_owner = sqlite_desktop_set_owner,
    .desktop_delete = sqlite_desktop_delete,
    .desktop_next_name = sqlite_desktop_next_name,
    .entitlement_add = sqlite_entitlement_add,
    .entitlement_delete = sqlite_entitlement_delete,
    .entitlement_list = sqlite_entitlement_list,
    .entitled_pools = sqlite_entitled_pools,
    .session_begin = sqlite_session_begin,
    .session_end = sqlite_session_end,
    .session_get = sqlite_session_get,
    .session_list = sqlite_session_list,
    .session_max_id = sqlite_session_max_id,
    .usage_begin = sqlite_usage_begin,
    .usage_end = sqlite_usage_end,
    .usage_end_open_for_desktop = sqlite_usage_end_open_for_desktop,
    .usage_report = sqlite_usage_report,
};
