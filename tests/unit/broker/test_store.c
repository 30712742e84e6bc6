/* The SQLite store on a real file in a temporary directory: schema and file, every table's
 * functions and error codes, the usage arithmetic, a hand-edited file, and many threads. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"

struct fixture {
    char dir[64];
    char path[128];
    char url[160];
    struct store *s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/vdi-test-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/vdi.db", f->dir);
    snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
    assert_int_equal(store_open(f->url, &f->s), 0);
    *state = f;
    return 0;
}

static void remove_file(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    unlink(p);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->s);
    const char *names[] = {"vdi.db",  "vdi.db-wal",  "vdi.db-shm", "junk.db",
                           "mode.db", "mode.db-wal", "mode.db-shm"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        remove_file(f->dir, names[i]);
    assert_int_equal(rmdir(f->dir), 0);
    free(f);
    return 0;
}

/* ---- direct access to the file, as an admin with sqlite3 would ---- */

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
    sqlite3_close(db);
}

static void raw_text(const char *path, const char *sql, char *buf, size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- records ---- */

static struct store_template tmpl(const char *name)
{
    struct store_template t = {.os = STORE_OS_LINUX, .firmware = STORE_FIRMWARE_UEFI};
    snprintf(t.name, sizeof(t.name), "%s", name);
    strcpy(t.disk, "/var/lib/vdi/templates/base.qcow2");
    return t;
}

static struct store_pool pool(const char *name, const char *template_name)
{
    struct store_pool p = {.vcpus = 2,
                           .memory_mib = 2048,
                           .kind = STORE_POOL_FLOATING,
                           .min_spare = 1,
                           .max_desktops = 10,
                           .logoff = STORE_LOGOFF_RESET,
                           .disconnect_grace_s = 300,
                           .stop_action = STORE_STOP_RESET};
    snprintf(p.name, sizeof(p.name), "%s", name);
    snprintf(p.template_name, sizeof(p.template_name), "%s", template_name);
    return p;
}

static struct store_desktop desktop(const char *name, const char *pool_name)
{
    struct store_desktop d = {.state = STORE_DESKTOP_PROVISIONING};
    snprintf(d.name, sizeof(d.name), "%s", name);
    snprintf(d.pool, sizeof(d.pool), "%s", pool_name);
    snprintf(d.disk, sizeof(d.disk), "/var/lib/vdi/disks/%s.qcow2", name);
    return d;
}

static struct store_entitlement entitlement(const char *pool_name, enum store_entitlement_kind kind,
                                            const char *name)
{
    struct store_entitlement e = {.kind = kind};
    snprintf(e.pool, sizeof(e.pool), "%s", pool_name);
    snprintf(e.name, sizeof(e.name), "%s", name);
    return e;
}

static struct store_session session(uint64_t id, const char *user, int64_t started)
{
    struct store_session sess = {.id = id, .session_id = id, .started = started};
    snprintf(sess.user, sizeof(sess.user), "%s", user);
    strcpy(sess.pool, "p1");
    strcpy(sess.desktop, "vdi-p1-0001");
    strcpy(sess.client, "192.0.2.7:50123");
    return sess;
}

/* A template "t1" and a pool "p1" using it. */
static void add_t1_p1(struct store *s)
{
    struct store_template t = tmpl("t1");
    struct store_pool p = pool("p1", "t1");
    assert_int_equal(store_template_add(s, &t), 0);
    assert_int_equal(store_pool_add(s, &p), 0);
}

/* ---- file, schema, URL ---- */

static void test_open_fresh(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    char text[64];

    assert_true(store_schema_version(f->s) >= 1);
    raw_text(f->path, "PRAGMA user_version", text, sizeof(text));
    assert_int_equal(atoi(text), store_schema_version(f->s));
    raw_text(f->path, "PRAGMA journal_mode", text, sizeof(text));
    assert_string_equal(text, "wal");
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    raw_text(f->path,
             "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
             "('templates', 'pools', 'desktops', 'entitlements', 'sessions', 'usage', "
             "'pool_counters')",
             text, sizeof(text));
    assert_string_equal(text, "7");
    raw_text(f->path, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'audit%'", text,
             sizeof(text));
    assert_string_equal(text, "0"); /* the audit log is a file now */
}

/* 0600 whatever the umask, for the database and SQLite's side files. */
static void test_open_mode_ignores_umask(void **state)
{
    struct fixture *f = *state;
    char path[200], url[220];
    struct store *s = NULL;
    struct stat st;

    snprintf(path, sizeof(path), "%s/mode.db", f->dir);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    mode_t old = umask(0277);
    int r = store_open(url, &s);
    umask(old);
    assert_int_equal(r, 0);
    add_t1_p1(s); /* a write, so that the -wal file exists */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(path, sizeof(path), "%s/mode.db-wal", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    store_close(s);

    /* a permissive umask gives no more */
    snprintf(path, sizeof(path), "%s/mode.db", f->dir);
    assert_int_equal(unlink(path), 0);
    old = umask(0);
    r = store_open(url, &s);
    umask(old);
    assert_int_equal(r, 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    store_close(s);
}

static void test_reopen_keeps_data(void **state)
{
    struct fixture *f = *state;
    struct store_pool p;
    int version = store_schema_version(f->s);

    add_t1_p1(f->s);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->url, &f->s), 0);
    assert_int_equal(store_schema_version(f->s), version);
    assert_int_equal(store_pool_get(f->s, "p1", &p), 0);
    assert_string_equal(p.template_name, "t1");
    assert_int_equal(p.memory_mib, 2048);
}

static void test_newer_schema_refused(void **state)
{
    struct fixture *f = *state;
    struct store *s = NULL;

    store_close(f->s);
    f->s = NULL;
    raw_exec(f->path, "PRAGMA user_version = 999");
    assert_int_equal(store_open(f->url, &s), -EIO);
    assert_null(s);

    raw_exec(f->path, "PRAGMA user_version = -1");
    assert_int_equal(store_open(f->url, &s), -EIO);
    assert_null(s);
}

/* A database made by the first schema (as vdi 0.3 left it) is brought to the current one:
 * rows kept, new columns with their defaults (stop action by pool kind), the session id of
 * an old connection is its own id, entitlements survive the desktops table being made
 * again, and the audit table is gone. */
static void test_migrate_from_1(void **state)
{
    struct fixture *f = *state;
    struct store_pool p;
    struct store_desktop d;
    struct store_session sess;
    struct store_entitlement *ents = NULL;
    char text[64];
    size_t n = 0;
    uint64_t max = 0;

    store_close(f->s);
    f->s = NULL;
    assert_int_equal(unlink(f->path), 0);
    remove_file(f->dir, "vdi.db-wal");
    remove_file(f->dir, "vdi.db-shm");
    raw_exec(f->path,
             "BEGIN;"
             "CREATE TABLE templates (name TEXT PRIMARY KEY NOT NULL,"
             "  os TEXT NOT NULL CHECK (os IN ('linux', 'windows')),"
             "  firmware TEXT NOT NULL CHECK (firmware IN ('bios', 'uefi')),"
             "  disk TEXT NOT NULL, kernel TEXT NOT NULL DEFAULT '',"
             "  initrd TEXT NOT NULL DEFAULT '', cmdline TEXT NOT NULL DEFAULT '',"
             "  created INTEGER NOT NULL);"
             "CREATE TABLE pools (name TEXT PRIMARY KEY NOT NULL,"
             "  template TEXT NOT NULL REFERENCES templates (name) ON DELETE RESTRICT,"
             "  vcpus INTEGER NOT NULL CHECK (vcpus >= 1),"
             "  memory_mib INTEGER NOT NULL CHECK (memory_mib >= 64),"
             "  kind TEXT NOT NULL CHECK (kind IN ('dedicated', 'floating')),"
             "  min_spare INTEGER NOT NULL CHECK (min_spare >= 0),"
             "  max_desktops INTEGER NOT NULL"
             "    CHECK (max_desktops >= 1 AND min_spare <= max_desktops),"
             "  logoff TEXT NOT NULL CHECK (logoff IN ('keep', 'suspend', 'shutdown', 'reset')),"
             "  created INTEGER NOT NULL);"
             "CREATE INDEX pools_template ON pools (template);"
             "CREATE TABLE desktops (name TEXT PRIMARY KEY NOT NULL,"
             "  pool TEXT NOT NULL REFERENCES pools (name) ON DELETE RESTRICT,"
             "  owner TEXT NOT NULL DEFAULT '',"
             "  state TEXT NOT NULL"
             "    CHECK (state IN ('provisioning', 'ready', 'resetting', 'deleting')),"
             "  disk TEXT NOT NULL DEFAULT '', created INTEGER NOT NULL,"
             "  assigned INTEGER NOT NULL DEFAULT 0);"
             "CREATE INDEX desktops_pool ON desktops (pool, name);"
             "CREATE TABLE pool_counters (pool TEXT PRIMARY KEY NOT NULL, next INTEGER NOT NULL);"
             "CREATE TABLE entitlements ("
             "  pool TEXT NOT NULL REFERENCES pools (name) ON DELETE CASCADE,"
             "  kind TEXT NOT NULL CHECK (kind IN ('user', 'group')), name TEXT NOT NULL,"
             "  PRIMARY KEY (pool, kind, name));"
             "CREATE INDEX entitlements_name ON entitlements (kind, name);"
             "CREATE TABLE sessions (id INTEGER PRIMARY KEY NOT NULL, username TEXT NOT NULL,"
             "  pool TEXT NOT NULL, desktop TEXT NOT NULL, client TEXT NOT NULL DEFAULT '',"
             "  started INTEGER NOT NULL, ended INTEGER NOT NULL DEFAULT 0);"
             "CREATE INDEX sessions_started ON sessions (started);"
             "CREATE INDEX sessions_open ON sessions (started) WHERE ended = 0;"
             "CREATE TABLE usage (id INTEGER PRIMARY KEY AUTOINCREMENT,"
             "  kind TEXT NOT NULL CHECK (kind IN ('running', 'connected')),"
             "  username TEXT NOT NULL, pool TEXT NOT NULL, desktop TEXT NOT NULL,"
             "  vcpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, started INTEGER NOT NULL,"
             "  ended INTEGER);"
             "CREATE INDEX usage_started ON usage (started);"
             "CREATE INDEX usage_open ON usage (desktop) WHERE ended IS NULL;"
             "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,"
             "  actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL DEFAULT '',"
             "  detail TEXT NOT NULL DEFAULT '');"
             "CREATE INDEX audit_time ON audit (time);"
             "INSERT INTO templates VALUES ('t1', 'linux', 'bios', '/srv/t1.qcow2', '', '', '', 1);"
             "INSERT INTO pools VALUES ('ded', 't1', 2, 2048, 'dedicated', 0, 5, 'suspend', 2);"
             "INSERT INTO pools VALUES ('flo', 't1', 1, 1024, 'floating', 1, 9, 'reset', 3);"
             "INSERT INTO desktops VALUES ('vdi-ded-0001', 'ded', 'alice', 'ready',"
             "  '/srv/d1.qcow2', 4, 5);"
             "INSERT INTO desktops VALUES ('vdi-flo-0001', 'flo', '', 'provisioning', '', 6, 0);"
             "INSERT INTO pool_counters VALUES ('ded', 2);"
             "INSERT INTO entitlements VALUES ('ded', 'user', 'alice');"
             "INSERT INTO entitlements VALUES ('flo', 'group', 'staff');"
             "INSERT INTO sessions VALUES (41, 'alice', 'ded', 'vdi-ded-0001', '192.0.2.1', 7, 8);"
             "INSERT INTO sessions VALUES (42, 'bob', 'flo', 'vdi-flo-0001', '192.0.2.2', 9, 0);"
             "INSERT INTO usage (kind, username, pool, desktop, vcpus, memory_mib, started)"
             "  VALUES ('running', 'alice', 'ded', 'vdi-ded-0001', 2, 2048, 10);"
             "INSERT INTO audit (time, actor, action) VALUES (11, 'root', 'pool.add');"
             "PRAGMA user_version = 1;"
             "COMMIT;");

    assert_int_equal(store_open(f->url, &f->s), 0);
    assert_true(store_schema_version(f->s) >= 2);
    raw_text(f->path, "PRAGMA user_version", text, sizeof(text));
    assert_int_equal(atoi(text), store_schema_version(f->s));

    assert_int_equal(store_pool_get(f->s, "ded", &p), 0);
    assert_int_equal(p.vcpus, 2);
    assert_int_equal(p.logoff, STORE_LOGOFF_SUSPEND);
    assert_int_equal(p.disconnect_grace_s, 300);
    assert_int_equal(p.idle_timeout_s, 0);
    assert_int_equal(p.max_session_s, 0);
    assert_int_equal(p.stop_action, STORE_STOP_NONE);
    assert_int_equal(p.created, 2);
    assert_int_equal(store_pool_get(f->s, "flo", &p), 0);
    assert_int_equal(p.disconnect_grace_s, 300);
    assert_int_equal(p.stop_action, STORE_STOP_RESET);
    assert_int_equal(p.min_spare, 1);

    assert_int_equal(store_desktop_get(f->s, "vdi-ded-0001", &d), 0);
    assert_string_equal(d.owner, "alice");
    assert_int_equal(d.state, STORE_DESKTOP_READY);
    assert_string_equal(d.disk, "/srv/d1.qcow2");
    assert_int_equal(d.assigned, 5);
    assert_int_equal(store_desktop_set_state(f->s, "vdi-ded-0001", STORE_DESKTOP_FAILED), 0);
    assert_int_equal(store_desktop_get(f->s, "vdi-ded-0001", &d), 0);
    assert_int_equal(d.state, STORE_DESKTOP_FAILED);
    assert_int_equal(store_desktop_get(f->s, "vdi-flo-0001", &d), 0);
    assert_int_equal(d.state, STORE_DESKTOP_PROVISIONING);
    /* the foreign key to pools came along with the new desktops table */
    assert_int_equal(store_pool_delete(f->s, "ded"), -EBUSY);
    char name[STORE_DESKTOP_MAX + 1];
    assert_int_equal(store_desktop_next_name(f->s, "ded", name, sizeof(name)), 0);
    assert_string_equal(name, "vdi-ded-0002");

    assert_int_equal(store_entitlement_list(f->s, NULL, &ents, &n), 0);
    assert_int_equal(n, 2);
    free(ents);

    assert_int_equal(store_session_get(f->s, 41, &sess), 0);
    assert_int_equal(sess.session_id, 41);
    assert_int_equal(sess.kind, STORE_SESSION_USER);
    assert_string_equal(sess.token_hash, "");
    assert_string_equal(sess.user, "alice");
    assert_int_equal(sess.ended, 8);
    assert_int_equal(store_session_get(f->s, 42, &sess), 0);
    assert_int_equal(sess.session_id, 42);
    assert_int_equal(sess.ended, 0);
    assert_int_equal(store_session_max_id(f->s, &max), 0);
    assert_int_equal(max, 42);

    raw_text(f->path, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'audit%'", text,
             sizeof(text));
    assert_string_equal(text, "0");
    raw_text(f->path, "SELECT count(*) FROM usage", text, sizeof(text));
    assert_string_equal(text, "1");
    raw_text(f->path, "SELECT count(*) FROM pragma_foreign_key_check", text, sizeof(text));
    assert_string_equal(text, "0");
    raw_text(f->path, "PRAGMA integrity_check", text, sizeof(text));
    assert_string_equal(text, "ok");
}

static void test_bad_urls(void **state)
{
    struct fixture *f = *state;
    struct store *s = NULL;
    char url[220];

    assert_int_equal(store_open("postgresql://db.example.org/vdi", &s), -EINVAL);
    assert_int_equal(store_open("", &s), -EINVAL);
    assert_int_equal(store_open("sqlite:", &s), -EINVAL);
    assert_int_equal(store_open("sqlite:relative.db", &s), -EINVAL);
    assert_int_equal(store_open("SQLITE:/tmp/x.db", &s), -EINVAL);
    assert_int_equal(store_open("/tmp/x.db", &s), -EINVAL);
    assert_int_equal(store_open(NULL, &s), -EINVAL);
    assert_int_equal(store_open("sqlite:/nonexistent-vdi-dir/vdi.db", &s), -EIO);
    assert_null(s);

    /* not a database */
    snprintf(url, sizeof(url), "%s/junk.db", f->dir);
    FILE *junk = fopen(url, "w");
    assert_non_null(junk);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database\n", junk);
    fclose(junk);
    snprintf(url, sizeof(url), "sqlite:%s/junk.db", f->dir);
    assert_int_equal(store_open(url, &s), -EIO);
    assert_null(s);
}

static void test_enum_strings(void **state)
{
    (void)state;
    enum store_os os;
    enum store_firmware fw;
    enum store_pool_kind kind;
    enum store_logoff logoff;
    enum store_entitlement_kind ek;
    enum store_stop_action sa;

    assert_string_equal(store_os_to_string(STORE_OS_WINDOWS), "windows");
    assert_int_equal(store_os_from_string("linux", &os), 0);
    assert_int_equal(os, STORE_OS_LINUX);
    assert_int_equal(store_os_from_string("Linux", &os), -EINVAL);
    assert_null(store_os_to_string((enum store_os)42));
    assert_int_equal(store_firmware_from_string("uefi", &fw), 0);
    assert_int_equal(fw, STORE_FIRMWARE_UEFI);
    assert_string_equal(store_firmware_to_string(STORE_FIRMWARE_BIOS), "bios");
    assert_int_equal(store_pool_kind_from_string("dedicated", &kind), 0);
    assert_int_equal(kind, STORE_POOL_DEDICATED);
    assert_string_equal(store_pool_kind_to_string(STORE_POOL_FLOATING), "floating");
    assert_int_equal(store_logoff_from_string("suspend", &logoff), 0);
    assert_int_equal(logoff, STORE_LOGOFF_SUSPEND);
    assert_int_equal(store_logoff_from_string("", &logoff), -EINVAL);
    assert_string_equal(store_logoff_to_string(STORE_LOGOFF_SHUTDOWN), "shutdown");
    assert_string_equal(store_desktop_state_to_string(STORE_DESKTOP_RESETTING), "resetting");
    assert_int_equal(store_entitlement_kind_from_string("group", &ek), 0);
    assert_int_equal(ek, STORE_ENTITLE_GROUP);
    assert_int_equal(store_entitlement_kind_from_string(NULL, &ek), -EINVAL);
    assert_string_equal(store_entitlement_kind_to_string(STORE_ENTITLE_USER), "user");
    assert_string_equal(store_desktop_state_to_string(STORE_DESKTOP_FAILED), "failed");
    assert_null(
        store_desktop_state_to_string((enum store_desktop_state)(STORE_DESKTOP_FAILED + 1)));
    assert_string_equal(store_stop_action_to_string(STORE_STOP_NONE), "none");
    assert_string_equal(store_stop_action_to_string(STORE_STOP_RESTART), "restart");
    assert_string_equal(store_stop_action_to_string(STORE_STOP_RESET), "reset");
    assert_null(store_stop_action_to_string((enum store_stop_action)3));
    assert_int_equal(store_stop_action_from_string("restart", &sa), 0);
    assert_int_equal(sa, STORE_STOP_RESTART);
    assert_int_equal(store_stop_action_from_string("reset", &sa), 0);
    assert_int_equal(sa, STORE_STOP_RESET);
    assert_int_equal(store_stop_action_from_string("None", &sa), -EINVAL);
    assert_int_equal(store_stop_action_from_string(NULL, &sa), -EINVAL);
    assert_string_equal(store_session_kind_to_string(STORE_SESSION_USER), "user");
    assert_string_equal(store_session_kind_to_string(STORE_SESSION_SHADOW), "shadow");
    assert_null(store_session_kind_to_string((enum store_session_kind)2));

    assert_true(store_name_is_valid("a"));
    assert_true(store_name_is_valid("0-pool-9"));
    assert_true(store_name_is_valid("abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
    assert_false(store_name_is_valid("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
    assert_false(store_name_is_valid(""));
    assert_false(store_name_is_valid("-pool"));
    assert_false(store_name_is_valid("Pool"));
    assert_false(store_name_is_valid("po_ol"));
    assert_false(store_name_is_valid(NULL));
}

/* ---- templates ---- */

static void test_templates(void **state)
{
    struct fixture *f = *state;
    struct store *s = f->s;
    struct store_template t = tmpl("t1"), got, bad;
    struct store_template *list = NULL;
    size_t n = 0;
    time_t before = time(NULL);

    strcpy(t.kernel, "/boot/vmlinuz");
    strcpy(t.initrd, "/boot/initrd.img");
    strcpy(t.cmdline, "console=ttyS0 quiet");
    t.firmware = STORE_FIRMWARE_BIOS;
    assert_int_equal(store_template_add(s, &t), 0);
    assert_int_equal(store_template_add(s, &t), -EEXIST);
    assert_int_equal(store_template_get(s, "t1", &got), 0);
    assert_string_equal(got.name, "t1");
    assert_int_equal(got.os, STORE_OS_LINUX);
    assert_int_equal(got.firmware, STORE_FIRMWARE_BIOS);
    assert_string_equal(got.disk, t.disk);
    assert_string_equal(got.kernel, "/boot/vmlinuz");
    assert_string_equal(got.initrd, "/boot/initrd.img");
    assert_string_equal(got.cmdline, "console=ttyS0 quiet");
    assert_true(got.created >= before && got.created <= time(NULL) + 1); /* 0 = now */

    struct store_template w = tmpl("a-windows");
    w.os = STORE_OS_WINDOWS;
    w.created = 12345;
    assert_int_equal(store_template_add(s, &w), 0);
    assert_int_equal(store_template_get(s, "a-windows", &got), 0);
    assert_int_equal(got.os, STORE_OS_WINDOWS);
    assert_int_equal(got.created, 12345);
    assert_string_equal(got.kernel, "");

    assert_int_equal(store_template_list(s, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "a-windows");
    assert_string_equal(list[1].name, "t1");
    free(list);

    assert_int_equal(store_template_get(s, "nope", &got), -ENOENT);
    assert_int_equal(store_template_delete(s, "nope"), -ENOENT);
    assert_int_equal(store_template_get(s, "Bad Name", &got), -EINVAL);

    /* every invalid field class */
    const char *bad_names[] = {"", "T1", "-t", "t_1", "t.1", "abcdefghijklmnopqrstuvwxyz0123456"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        bad = tmpl("x");
        snprintf(bad.name, sizeof(bad.name), "%s", bad_names[i]);
        if (strlen(bad_names[i]) > STORE_NAME_MAX)
            memcpy(bad.name, bad_names[i], sizeof(bad.name)); /* no NUL at all */
        assert_int_equal(store_template_add(s, &bad), -EINVAL);
    }
    bad = tmpl("x");
    bad.os = (enum store_os)7;
    assert_int_equal(store_template_add(s, &bad), -EINVAL);
    bad = tmpl("x");
    bad.firmware = (enum store_firmware)9;
    assert_int_equal(store_template_add(s, &bad), -EINVAL);
    bad = tmpl("x");
    bad.disk[0] = '\0';
    assert_int_equal(store_template_add(s, &bad), -EINVAL);
    bad = tmpl("x");
    strcpy(bad.disk, "relative/base.qcow2");
    assert_int_equal(store_template_add(s, &bad), -EINVAL);
    bad = tmpl("x");
    strcpy(bad.kernel, "vmlinuz");
    assert_int_equal(store_template_add(s, &bad), -EINVAL);
    bad = tmpl("x");
    strcpy(bad.initrd, "initrd.img");
    assert_int_equal(store_template_add(s, &bad), -EINVAL);
    bad = tmpl("x");
    memset(bad.disk, 'a', sizeof(bad.disk)); /* too long: no NUL within the array */
    bad.disk[0] = '/';
    assert_int_equal(store_template_add(s, &bad), -EINVAL);
    bad = tmpl("x");
    strcpy(bad.cmdline, "console=ttyS0\nroot=/dev/evil");
    assert_int_equal(store_template_add(s, &bad), -EINVAL);
    bad = tmpl("x");
    bad.created = -1;
    assert_int_equal(store_template_add(s, &bad), -EINVAL);
    assert_int_equal(store_template_get(s, "x", &got), -ENOENT); /* nothing slipped in */

    /* in use by a pool: -EBUSY, then free */
    struct store_pool p = pool("p1", "t1");
    assert_int_equal(store_pool_add(s, &p), 0);
    assert_int_equal(store_template_delete(s, "t1"), -EBUSY);
    assert_int_equal(store_template_get(s, "t1", &got), 0);
    assert_int_equal(store_pool_delete(s, "p1"), 0);
    assert_int_equal(store_template_delete(s, "t1"), 0);
    assert_int_equal(store_template_get(s, "t1", &got), -ENOENT);
    assert_int_equal(store_template_delete(s, "t1"), -ENOENT);
}

/* ---- pools ---- */

static void test_pools(void **state)
{
    struct fixture *f = *state;
    struct store *s = f->s;
    struct store_pool p = pool("p1", "t1"), got, bad;
    struct store_pool *list = NULL;
    size_t n = 0;

    assert_int_equal(store_pool_add(s, &p), -ENOENT); /* no template t1 yet */
    struct store_template t1 = tmpl("t1"), t2 = tmpl("t2");
    assert_int_equal(store_template_add(s, &t1), 0);
    assert_int_equal(store_template_add(s, &t2), 0);
    p.kind = STORE_POOL_DEDICATED;
    p.logoff = STORE_LOGOFF_SUSPEND;
    p.disconnect_grace_s = 0;
    p.idle_timeout_s = 900;
    p.max_session_s = 28800;
    p.stop_action = STORE_STOP_RESTART;
    p.created = 777;
    assert_int_equal(store_pool_add(s, &p), 0);
    assert_int_equal(store_pool_add(s, &p), -EEXIST);
    assert_int_equal(store_pool_get(s, "p1", &got), 0);
    assert_string_equal(got.name, "p1");
    assert_string_equal(got.template_name, "t1");
    assert_int_equal(got.vcpus, 2);
    assert_int_equal(got.memory_mib, 2048);
    assert_int_equal(got.kind, STORE_POOL_DEDICATED);
    assert_int_equal(got.min_spare, 1);
    assert_int_equal(got.max_desktops, 10);
    assert_int_equal(got.logoff, STORE_LOGOFF_SUSPEND);
    assert_int_equal(got.disconnect_grace_s, 0);
    assert_int_equal(got.idle_timeout_s, 900);
    assert_int_equal(got.max_session_s, 28800);
    assert_int_equal(got.stop_action, STORE_STOP_RESTART);
    assert_int_equal(got.created, 777);
    assert_int_equal(store_pool_get(s, "p9", &got), -ENOENT);

    /* bounds are inclusive */
    struct store_pool big = pool("big", "t2");
    big.vcpus = 256;
    big.memory_mib = 4194304;
    big.max_desktops = 10000;
    big.min_spare = 10000;
    big.disconnect_grace_s = 604800;
    big.idle_timeout_s = 604800;
    big.max_session_s = 2592000;
    assert_int_equal(store_pool_add(s, &big), 0);
    assert_int_equal(store_pool_get(s, "big", &got), 0);
    assert_int_equal(got.disconnect_grace_s, 604800);
    assert_int_equal(got.idle_timeout_s, 604800);
    assert_int_equal(got.max_session_s, 2592000);
    assert_int_equal(got.stop_action, STORE_STOP_RESET);
    struct store_pool small = pool("0small", "t2");
    small.vcpus = 1;
    small.memory_mib = 64;
    small.max_desktops = 1;
    small.min_spare = 0;
    assert_int_equal(store_pool_add(s, &small), 0);

    /* every invalid field class, on add and on update */
#define BAD_POOL(field, value)                                                                     \
    do {                                                                                           \
        bad = pool("bad", "t1");                                                                   \
        bad.field = (value);                                                                       \
        assert_int_equal(store_pool_add(s, &bad), -EINVAL);                                        \
        bad = p;                                                                                   \
        bad.field = (value);                                                                       \
        assert_int_equal(store_pool_update(s, &bad), -EINVAL);                                     \
    } while (0)
    BAD_POOL(vcpus, 0);
    BAD_POOL(vcpus, 257);
    BAD_POOL(vcpus, -4);
    BAD_POOL(memory_mib, 63);
    BAD_POOL(memory_mib, 4194305);
    BAD_POOL(kind, (enum store_pool_kind)5);
    BAD_POOL(min_spare, -1);
    BAD_POOL(min_spare, 11); /* > max_desktops */
    BAD_POOL(max_desktops, 0);
    BAD_POOL(max_desktops, 10001);
    BAD_POOL(logoff, (enum store_logoff)9);
    BAD_POOL(disconnect_grace_s, -1);
    BAD_POOL(disconnect_grace_s, 604801);
    BAD_POOL(idle_timeout_s, -1);
    BAD_POOL(idle_timeout_s, 604801);
    BAD_POOL(max_session_s, -1);
    BAD_POOL(max_session_s, 2592001);
    BAD_POOL(stop_action, (enum store_stop_action)3);
    BAD_POOL(stop_action, (enum store_stop_action) - 1);
#undef BAD_POOL
    bad = pool("Bad", "t1");
    assert_int_equal(store_pool_add(s, &bad), -EINVAL);
    bad = pool("bad", "t 1");
    assert_int_equal(store_pool_add(s, &bad), -EINVAL);
    assert_int_equal(store_pool_get(s, "bad", &got), -ENOENT);

    /* update replaces everything but name and created */
    struct store_pool u = pool("p1", "t2");
    u.vcpus = 4;
    u.memory_mib = 8192;
    u.min_spare = 3;
    u.max_desktops = 30;
    u.disconnect_grace_s = 60;
    u.idle_timeout_s = 1800;
    u.max_session_s = 3600;
    u.stop_action = STORE_STOP_NONE;
    u.created = 1;
    assert_int_equal(store_pool_update(s, &u), 0);
    assert_int_equal(store_pool_get(s, "p1", &got), 0);
    assert_string_equal(got.template_name, "t2");
    assert_int_equal(got.vcpus, 4);
    assert_int_equal(got.memory_mib, 8192);
    assert_int_equal(got.kind, STORE_POOL_FLOATING);
    assert_int_equal(got.min_spare, 3);
    assert_int_equal(got.max_desktops, 30);
    assert_int_equal(got.logoff, STORE_LOGOFF_RESET);
    assert_int_equal(got.disconnect_grace_s, 60);
    assert_int_equal(got.idle_timeout_s, 1800);
    assert_int_equal(got.max_session_s, 3600);
    assert_int_equal(got.stop_action, STORE_STOP_NONE);
    assert_int_equal(got.created, 777);
    u = pool("p9", "t1");
    assert_int_equal(store_pool_update(s, &u), -ENOENT); /* no such pool */
    u = pool("p1", "t9");
    assert_int_equal(store_pool_update(s, &u), -ENOENT); /* no such template */
    assert_int_equal(store_pool_get(s, "p1", &got), 0);
    assert_string_equal(got.template_name, "t2");

    assert_int_equal(store_pool_list(s, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "0small");
    assert_string_equal(list[1].name, "big");
    assert_string_equal(list[2].name, "p1");
    free(list);

    /* delete: -EBUSY while desktops remain; entitlements go with the pool */
    struct store_desktop d = desktop("vdi-p1-0001", "p1");
    struct store_entitlement e = entitlement("p1", STORE_ENTITLE_USER, "alice");
    struct store_entitlement e2 = entitlement("big", STORE_ENTITLE_GROUP, "staff");
    struct store_entitlement *ents = NULL;
    assert_int_equal(store_desktop_add(s, &d), 0);
    assert_int_equal(store_entitlement_add(s, &e), 0);
    assert_int_equal(store_entitlement_add(s, &e2), 0);
    assert_int_equal(store_pool_delete(s, "p1"), -EBUSY);
    assert_int_equal(store_pool_get(s, "p1", &got), 0);
    assert_int_equal(store_desktop_delete(s, "vdi-p1-0001"), 0);
    assert_int_equal(store_pool_delete(s, "p1"), 0);
    assert_int_equal(store_pool_get(s, "p1", &got), -ENOENT);
    assert_int_equal(store_pool_delete(s, "p1"), -ENOENT);
    assert_int_equal(store_entitlement_list(s, NULL, &ents, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ents[0].pool, "big");
    free(ents);
}

/* ---- desktops ---- */

static void test_desktops(void **state)
{
    struct fixture *f = *state;
    struct store *s = f->s;
    struct store_desktop d = desktop("vdi-p1-0002", "p1"), got, bad;
    struct store_desktop *list = NULL;
    size_t n = 0;

    assert_int_equal(store_desktop_add(s, &d), -ENOENT); /* no pool p1 yet */
    add_t1_p1(s);
    struct store_pool p2 = pool("p2", "t1");
    assert_int_equal(store_pool_add(s, &p2), 0);

    d.created = 4242;
    assert_int_equal(store_desktop_add(s, &d), 0);
    assert_int_equal(store_desktop_add(s, &d), -EEXIST);
    struct store_desktop other = desktop("vdi-p1-0002", "p2"); /* names are global */
    assert_int_equal(store_desktop_add(s, &other), -EEXIST);
    assert_int_equal(store_desktop_get(s, "vdi-p1-0002", &got), 0);
    assert_string_equal(got.name, "vdi-p1-0002");
    assert_string_equal(got.pool, "p1");
    assert_string_equal(got.owner, "");
    assert_int_equal(got.state, STORE_DESKTOP_PROVISIONING);
    assert_string_equal(got.disk, "/var/lib/vdi/disks/vdi-p1-0002.qcow2");
    assert_int_equal(got.created, 4242);
    assert_int_equal(got.assigned, 0);
    assert_int_equal(store_desktop_get(s, "vdi-p1-0009", &got), -ENOENT);

    /* dedicated at birth: assigned is set */
    struct store_desktop mine = desktop("vdi-bob", "p2");
    strcpy(mine.owner, "bob");
    mine.state = STORE_DESKTOP_READY;
    assert_int_equal(store_desktop_add(s, &mine), 0);
    assert_int_equal(store_desktop_get(s, "vdi-bob", &got), 0);
    assert_string_equal(got.owner, "bob");
    assert_true(got.assigned > 0);
    struct store_desktop a = desktop("a.desktop_1", "p1");
    assert_int_equal(store_desktop_add(s, &a), 0);

    /* invalid fields */
    const char *bad_names[] = {"", ".hidden", "-x", "a/b", "a b", "..", "é"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        bad = desktop("x", "p1");
        snprintf(bad.name, sizeof(bad.name), "%s", bad_names[i]);
        assert_int_equal(store_desktop_add(s, &bad), -EINVAL);
    }
    bad = desktop("x", "p1");
    memset(bad.name, 'a', sizeof(bad.name)); /* 65 bytes, no NUL */
    assert_int_equal(store_desktop_add(s, &bad), -EINVAL);
    char longest[STORE_DESKTOP_MAX + 1];
    memset(longest, 'a', STORE_DESKTOP_MAX); /* 64 is the most */
    longest[STORE_DESKTOP_MAX] = '\0';
    bad = desktop(longest, "p1");
    assert_int_equal(store_desktop_add(s, &bad), 0);
    bad = desktop("x", "P1");
    assert_int_equal(store_desktop_add(s, &bad), -EINVAL);
    bad = desktop("x", "p1");
    strcpy(bad.owner, "bad owner");
    assert_int_equal(store_desktop_add(s, &bad), -EINVAL);
    bad = desktop("x", "p1");
    strcpy(bad.owner, "-bob");
    assert_int_equal(store_desktop_add(s, &bad), -EINVAL);
    bad = desktop("x", "p1");
    bad.state = (enum store_desktop_state)17;
    assert_int_equal(store_desktop_add(s, &bad), -EINVAL);
    bad = desktop("x", "p1");
    strcpy(bad.disk, "disks/x.qcow2");
    assert_int_equal(store_desktop_add(s, &bad), -EINVAL);
    bad = desktop("x", "p1");
    bad.created = -5;
    assert_int_equal(store_desktop_add(s, &bad), -EINVAL);
    assert_int_equal(store_desktop_get(s, "x", &got), -ENOENT);

    /* lists: by name, all or one pool */
    assert_int_equal(store_desktop_list(s, NULL, &list, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(list[0].name, "a.desktop_1"); /* '.' sorts before 'a' */
    assert_string_equal(list[1].name, longest);
    assert_string_equal(list[2].name, "vdi-bob");
    assert_string_equal(list[3].name, "vdi-p1-0002");
    free(list);
    assert_int_equal(store_desktop_list(s, "p2", &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "vdi-bob");
    free(list);
    list = (struct store_desktop *)&n; /* must be overwritten */
    assert_int_equal(store_desktop_list(s, "p3", &list, &n), 0);
    assert_int_equal(n, 0);
    assert_null(list);
    assert_int_equal(store_desktop_list(s, "P3", &list, &n), -EINVAL);

    /* state */
    assert_int_equal(store_desktop_set_state(s, "vdi-p1-0002", STORE_DESKTOP_READY), 0);
    assert_int_equal(store_desktop_get(s, "vdi-p1-0002", &got), 0);
    assert_int_equal(got.state, STORE_DESKTOP_READY);
    assert_int_equal(store_desktop_set_state(s, "vdi-p1-0002", STORE_DESKTOP_FAILED), 0);
    assert_int_equal(store_desktop_get(s, "vdi-p1-0002", &got), 0);
    assert_int_equal(got.state, STORE_DESKTOP_FAILED);
    assert_int_equal(store_desktop_set_state(s, "vdi-p1-0002", STORE_DESKTOP_READY), 0);
    assert_int_equal(store_desktop_set_state(s, "vdi-p1-0009", STORE_DESKTOP_READY), -ENOENT);
    assert_int_equal(store_desktop_set_state(s, "vdi-p1-0002", (enum store_desktop_state)8),
                     -EINVAL);

    /* owner compare-and-set */
    assert_int_equal(store_desktop_set_owner(s, "vdi-p1-0002", "", "alice"), 0);
    assert_int_equal(store_desktop_get(s, "vdi-p1-0002", &got), 0);
    assert_string_equal(got.owner, "alice");
    assert_true(got.assigned > 0);
    assert_int_equal(store_desktop_set_owner(s, "vdi-p1-0002", "", "bob"), -EBUSY);
    assert_int_equal(store_desktop_set_owner(s, "vdi-p1-0002", "carol", ""), -EBUSY);
    assert_int_equal(store_desktop_get(s, "vdi-p1-0002", &got), 0);
    assert_string_equal(got.owner, "alice");
    assert_int_equal(store_desktop_set_owner(s, "vdi-p1-0002", "alice", "bob"), 0);
    assert_int_equal(store_desktop_set_owner(s, "vdi-p1-0002", "bob", ""), 0);
    assert_int_equal(store_desktop_get(s, "vdi-p1-0002", &got), 0);
    assert_string_equal(got.owner, "");
    assert_int_equal(got.assigned, 0);
    assert_int_equal(store_desktop_set_owner(s, "vdi-p1-0009", "", "bob"), -ENOENT);
    assert_int_equal(store_desktop_set_owner(s, "vdi-p1-0002", "", "no way"), -EINVAL);
    assert_int_equal(store_desktop_set_owner(s, "vdi-p1-0002", "x y", ""), -EINVAL);

    assert_int_equal(store_desktop_delete(s, "vdi-p1-0002"), 0);
    assert_int_equal(store_desktop_get(s, "vdi-p1-0002", &got), -ENOENT);
    assert_int_equal(store_desktop_delete(s, "vdi-p1-0002"), -ENOENT);
    assert_int_equal(store_desktop_delete(s, "../etc"), -EINVAL);
}

static void test_next_name(void **state)
{
    struct fixture *f = *state;
    struct store *s = f->s;
    char name[STORE_DESKTOP_MAX + 1], small[8];

    assert_int_equal(store_desktop_next_name(s, "p1", name, sizeof(name)), -ENOENT);
    add_t1_p1(s);
    assert_int_equal(store_desktop_next_name(s, "p1", name, sizeof(name)), 0);
    assert_string_equal(name, "vdi-p1-0001");
    struct store_desktop d = desktop(name, "p1");
    assert_int_equal(store_desktop_add(s, &d), 0);
    assert_int_equal(store_desktop_next_name(s, "p1", name, sizeof(name)), 0);
    assert_string_equal(name, "vdi-p1-0002"); /* never handed out, still used up */

    /* deleting does not make the number come back */
    assert_int_equal(store_desktop_delete(s, "vdi-p1-0001"), 0);
    assert_int_equal(store_desktop_next_name(s, "p1", name, sizeof(name)), 0);
    assert_string_equal(name, "vdi-p1-0003");

    /* a name taken by hand is skipped */
    d = desktop("vdi-p1-0004", "p1");
    assert_int_equal(store_desktop_add(s, &d), 0);
    assert_int_equal(store_desktop_next_name(s, "p1", name, sizeof(name)), 0);
    assert_string_equal(name, "vdi-p1-0005");

    /* too small a buffer: refused, and the number is not used up */
    assert_int_equal(store_desktop_next_name(s, "p1", small, sizeof(small)), -EINVAL);
    assert_int_equal(store_desktop_next_name(s, "p1", name, sizeof(name)), 0);
    assert_string_equal(name, "vdi-p1-0006");
    assert_int_equal(store_desktop_next_name(s, "P1", name, sizeof(name)), -EINVAL);

    /* counters are per pool, survive a reopen, and survive the pool being made again */
    struct store_pool p2 = pool("p2", "t1");
    assert_int_equal(store_pool_add(s, &p2), 0);
    assert_int_equal(store_desktop_next_name(s, "p2", name, sizeof(name)), 0);
    assert_string_equal(name, "vdi-p2-0001");
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->url, &f->s), 0);
    s = f->s;
    assert_int_equal(store_desktop_next_name(s, "p2", name, sizeof(name)), 0);
    assert_string_equal(name, "vdi-p2-0002");
    assert_int_equal(store_pool_delete(s, "p2"), 0);
    assert_int_equal(store_pool_add(s, &p2), 0);
    assert_int_equal(store_desktop_next_name(s, "p2", name, sizeof(name)), 0);
    assert_string_equal(name, "vdi-p2-0003");
}

/* ---- entitlements ---- */

static void test_entitlements(void **state)
{
    struct fixture *f = *state;
    struct store *s = f->s;
    struct store_entitlement e = entitlement("p1", STORE_ENTITLE_USER, "alice"), bad;
    struct store_entitlement *list = NULL;
    char(*pools)[STORE_NAME_MAX + 1] = NULL;
    size_t n = 0;

    assert_int_equal(store_entitlement_add(s, &e), -ENOENT); /* no pool */
    add_t1_p1(s);
    struct store_pool p2 = pool("p2", "t1"), p3 = pool("p3", "t1");
    assert_int_equal(store_pool_add(s, &p2), 0);
    assert_int_equal(store_pool_add(s, &p3), 0);

    e = entitlement("p3", STORE_ENTITLE_USER, "alice");
    assert_int_equal(store_entitlement_add(s, &e), 0);
    assert_int_equal(store_entitlement_add(s, &e), -EEXIST);
    struct store_entitlement adds[] = {
        entitlement("p1", STORE_ENTITLE_GROUP, "staff"),
        entitlement("p3", STORE_ENTITLE_GROUP, "staff"),
        entitlement("p2", STORE_ENTITLE_GROUP, "dev"),
        entitlement("p2", STORE_ENTITLE_USER, "dev"), /* same name, other kind */
        entitlement("p1", STORE_ENTITLE_USER, "bob"),
    };
    for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++)
        assert_int_equal(store_entitlement_add(s, &adds[i]), 0);

    bad = entitlement("p1", (enum store_entitlement_kind)3, "alice");
    assert_int_equal(store_entitlement_add(s, &bad), -EINVAL);
    bad = entitlement("p1", STORE_ENTITLE_USER, "al ice");
    assert_int_equal(store_entitlement_add(s, &bad), -EINVAL);
    bad = entitlement("p1", STORE_ENTITLE_GROUP, "");
    assert_int_equal(store_entitlement_add(s, &bad), -EINVAL);
    bad = entitlement("p_1", STORE_ENTITLE_USER, "alice");
    assert_int_equal(store_entitlement_add(s, &bad), -EINVAL);

    assert_int_equal(store_entitlement_list(s, "p2", &list, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].kind, STORE_ENTITLE_GROUP); /* pool, kind, name order */
    assert_int_equal(list[1].kind, STORE_ENTITLE_USER);
    assert_string_equal(list[1].name, "dev");
    free(list);
    assert_int_equal(store_entitlement_list(s, NULL, &list, &n), 0);
    assert_int_equal(n, 6);
    assert_string_equal(list[0].pool, "p1");
    assert_string_equal(list[5].pool, "p3");
    free(list);

    /* user plus groups, unique and sorted; a group name we could not store is skipped */
    const char *groups[] = {"staff", "domain users", "dev", "nobody-here"};
    assert_int_equal(store_entitled_pools(s, "alice", groups, 4, &pools, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(pools[0], "p1");
    assert_string_equal(pools[1], "p2");
    assert_string_equal(pools[2], "p3");
    free(pools);
    assert_int_equal(store_entitled_pools(s, "carol", groups, 1, &pools, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(pools[0], "p1");
    assert_string_equal(pools[1], "p3");
    free(pools);
    /* "dev" as a user entitles user dev only */
    assert_int_equal(store_entitled_pools(s, "dev", NULL, 0, &pools, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(pools[0], "p2");
    free(pools);
    /* a group entitlement is not a user's of the same name */
    assert_int_equal(store_entitled_pools(s, "staff", NULL, 0, &pools, &n), 0);
    assert_int_equal(n, 0);
    assert_null(pools);
    pools = (void *)&n; /* must be overwritten */
    assert_int_equal(store_entitled_pools(s, "carol", NULL, 0, &pools, &n), 0);
    assert_int_equal(n, 0);
    assert_null(pools);
    assert_int_equal(store_entitled_pools(s, "bad user", NULL, 0, &pools, &n), -EINVAL);
    assert_int_equal(store_entitled_pools(s, "carol", NULL, 2, &pools, &n), -EINVAL);

    /* delete */
    assert_int_equal(store_entitlement_delete(s, &adds[1]), 0);
    assert_int_equal(store_entitlement_delete(s, &adds[1]), -ENOENT);
    assert_int_equal(store_entitled_pools(s, "carol", groups, 1, &pools, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(pools[0], "p1");
    free(pools);
}

/* ---- sessions ---- */

static void test_sessions(void **state)
{
    struct fixture *f = *state;
    struct store *s = f->s;
    struct store_session *list = NULL, bad;
    size_t n = 99;
    uint64_t max = 1;

    assert_int_equal(store_session_max_id(s, &max), 0);
    assert_int_equal(max, 0);

    struct store_session a = session(5, "alice", 100), b = session(7, "bob", 300),
                         c = session(6, "carol", 200);
    a.ended = 12345; /* begin ignores it */
    assert_int_equal(store_session_begin(s, &a), 0);
    assert_int_equal(store_session_begin(s, &b), 0);
    assert_int_equal(store_session_begin(s, &c), 0);
    assert_int_equal(store_session_begin(s, &a), -EEXIST);

    bad = session(8, "", 1);
    assert_int_equal(store_session_begin(s, &bad), -EINVAL);
    bad = session(8, "dave", 1);
    strcpy(bad.desktop, "../x");
    assert_int_equal(store_session_begin(s, &bad), -EINVAL);
    bad = session(8, "dave", 1);
    strcpy(bad.client, "1.2.3.4\r\nX");
    assert_int_equal(store_session_begin(s, &bad), -EINVAL);
    bad = session(8, "dave", 1);
    strcpy(bad.pool, "Pool");
    assert_int_equal(store_session_begin(s, &bad), -EINVAL);
    bad = session((uint64_t)INT64_MAX + 1, "dave", 1);
    assert_int_equal(store_session_begin(s, &bad), -EINVAL);
    bad = session(8, "dave", -1);
    assert_int_equal(store_session_begin(s, &bad), -EINVAL);
    bad = session(8, "dave", 1);
    bad.session_id = (uint64_t)INT64_MAX + 1;
    assert_int_equal(store_session_begin(s, &bad), -EINVAL);
    bad = session(8, "dave", 1);
    bad.kind = (enum store_session_kind)2;
    assert_int_equal(store_session_begin(s, &bad), -EINVAL);
    const char *bad_hashes[] = {
        "abc",                                                              /* short */
        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", /* upper case */
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg", /* not hex */
    };
    for (size_t i = 0; i < sizeof(bad_hashes) / sizeof(bad_hashes[0]); i++) {
        bad = session(8, "dave", 1);
        strcpy(bad.token_hash, bad_hashes[i]);
        assert_int_equal(store_session_begin(s, &bad), -EINVAL);
    }
    bad = session(8, "dave", 1);
    memset(bad.token_hash, 'a', sizeof(bad.token_hash)); /* no NUL */
    assert_int_equal(store_session_begin(s, &bad), -EINVAL);
    struct store_session got;
    assert_int_equal(store_session_get(s, 8, &got), -ENOENT);

    assert_int_equal(store_session_list(s, false, 0, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].id, 7); /* newest first */
    assert_int_equal(list[1].id, 6);
    assert_int_equal(list[2].id, 5);
    assert_string_equal(list[2].user, "alice");
    assert_string_equal(list[2].pool, "p1");
    assert_string_equal(list[2].desktop, "vdi-p1-0001");
    assert_string_equal(list[2].client, "192.0.2.7:50123");
    assert_int_equal(list[2].started, 100);
    assert_int_equal(list[2].ended, 0);
    free(list);
    assert_int_equal(store_session_list(s, false, 2, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[1].id, 6);
    free(list);

    assert_int_equal(store_session_end(s, 6, 400), 0);
    assert_int_equal(store_session_end(s, 6, 500), 0); /* the first end stays */
    assert_int_equal(store_session_end(s, 99, 400), -ENOENT);
    assert_int_equal(store_session_end(s, 5, 0), -EINVAL);
    assert_int_equal(store_session_list(s, true, 0, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, 7);
    assert_int_equal(list[1].id, 5);
    free(list);

    assert_int_equal(store_session_end(s, 5, 1000), 0);
    assert_int_equal(store_session_end(s, 7, 1000), 0);
    assert_int_equal(store_session_list(s, true, 0, &list, &n), 0);
    assert_int_equal(n, 0);
    assert_null(list);
    assert_int_equal(store_session_list(s, false, 0, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].ended, 1000);
    assert_int_equal(list[1].ended, 400);
    assert_int_equal(list[2].ended, 1000);
    free(list);

    assert_int_equal(store_session_max_id(s, &max), 0);
    assert_int_equal(max, 7);
    struct store_session empty_pool = session(3, "dave", 50); /* a desktop outside any pool */
    empty_pool.pool[0] = '\0';
    assert_int_equal(store_session_begin(s, &empty_pool), 0);
    assert_int_equal(store_session_max_id(s, &max), 0);
    assert_int_equal(max, 7);

    /* get: every field back; a shadow joins session 7 with a connection id of its own */
    assert_int_equal(store_session_get(s, 5, &got), 0);
    assert_int_equal(got.id, 5);
    assert_int_equal(got.session_id, 5);
    assert_int_equal(got.kind, STORE_SESSION_USER);
    assert_string_equal(got.token_hash, "");
    assert_string_equal(got.user, "alice");
    assert_string_equal(got.client, "192.0.2.7:50123");
    assert_int_equal(got.started, 100);
    assert_int_equal(got.ended, 1000);
    struct store_session shadow = session(9, "admin", 600);
    shadow.session_id = 7;
    shadow.kind = STORE_SESSION_SHADOW;
    struct store_session reattach = session(10, "bob", 700);
    reattach.session_id = 7;
    strcpy(reattach.token_hash, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_int_equal(store_session_begin(s, &shadow), 0);
    assert_int_equal(store_session_begin(s, &reattach), 0);
    assert_int_equal(store_session_get(s, 9, &got), 0);
    assert_int_equal(got.session_id, 7);
    assert_int_equal(got.kind, STORE_SESSION_SHADOW);
    assert_string_equal(got.user, "admin");
    assert_int_equal(got.ended, 0);
    assert_int_equal(store_session_get(s, 10, &got), 0);
    assert_int_equal(got.session_id, 7);
    assert_int_equal(got.kind, STORE_SESSION_USER);
    assert_string_equal(got.token_hash,
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_int_equal(store_session_get(s, 11, &got), -ENOENT);
    assert_int_equal(store_session_get(s, (uint64_t)INT64_MAX + 1, &got), -EINVAL);
    assert_int_equal(store_session_list(s, true, 0, &list, &n), 0);
    assert_int_equal(n, 3); /* and 3, begun after 5 and 7 ended */
    assert_int_equal(list[0].id, 10);
    assert_int_equal(list[0].session_id, 7);
    assert_int_equal(list[1].id, 9);
    assert_int_equal(list[1].kind, STORE_SESSION_SHADOW);
    assert_int_equal(list[2].id, 3);
    free(list);

    /* ids and session ids come from one counter: the max is over both */
    assert_int_equal(store_session_max_id(s, &max), 0);
    assert_int_equal(max, 10);
    struct store_session ahead = session(11, "carol", 800);
    ahead.session_id = 42;
    assert_int_equal(store_session_begin(s, &ahead), 0);
    assert_int_equal(store_session_max_id(s, &max), 0);
    assert_int_equal(max, 42);
}

/* ---- usage ---- */

static uint64_t usage(struct store *s, enum store_usage_kind kind, const char *user,
                      const char *pool_name, const char *desk, int vcpus, int memory_mib,
                      int64_t start, int64_t end)
{
    uint64_t id = 0;
    assert_int_equal(
        store_usage_begin(s, kind, user, pool_name, desk, vcpus, memory_mib, start, &id), 0);
    assert_true(id > 0);
    if (end >= 0)
        assert_int_equal(store_usage_end(s, id, end), 0);
    return id;
}

static void assert_row(const struct store_usage_row *row, const char *user, const char *pool_name,
                       int64_t vcpu_s, int64_t memory_s, int64_t connected_s)
{
    assert_string_equal(row->user, user);
    assert_string_equal(row->pool, pool_name);
    /* whole seconds: exact in a double */
    assert_int_equal((int64_t)row->vcpu_seconds, vcpu_s);
    assert_int_equal((int64_t)row->memory_mib_seconds, memory_s);
    assert_int_equal((int64_t)row->connected_seconds, connected_s);
}

static void test_usage_report(void **state)
{
    struct fixture *f = *state;
    struct store *s = f->s;
    struct store_usage_row *rows = NULL;
    size_t n = 0;
    const enum store_usage_kind R = STORE_USAGE_RUNNING, C = STORE_USAGE_CONNECTED;

    /* Period [1000, 2000). */
    usage(s, R, "alice", "p1", "d1", 2, 1024, 500, 1500);                /* 500 s inside */
    uint64_t open = usage(s, R, "alice", "p1", "d1", 2, 1024, 1800, -1); /* open */
    usage(s, C, "alice", "p1", "d1", 0, 0, 900, 2100);                   /* 1000 s: whole */
    usage(s, C, "alice", "p1", "d1", 0, 0, 100, 1000);                   /* ends at from */
    usage(s, R, "", "p1", "d2", 1, 512, 1900, 2200);                     /* spare: 100 s */
    usage(s, R, "bob", "p2", "d3", 4, 4096, 2000, -1);                   /* starts at to */
    usage(s, C, "bob", "p1", "d4", 0, 0, 1950, -1);                      /* open */
    usage(s, R, "carol", "p1", "d5", 1, 64, 1200, 1100); /* end before start: empty */

    assert_int_equal(store_usage_report(s, 1000, 2000, 2500, NULL, NULL, &rows, &n), 0);
    assert_int_equal(n, 3);
    assert_row(&rows[0], "", "p1", 100, 51200, 0);
    assert_row(&rows[1], "alice", "p1", 500 * 2 + 200 * 2, 500 * 1024 + 200 * 1024, 1000);
    assert_row(&rows[2], "bob", "p1", 0, 0, 50);
    free(rows);

    /* open intervals count up to now when now is inside the period */
    assert_int_equal(store_usage_report(s, 1000, 2000, 1850, NULL, NULL, &rows, &n), 0);
    assert_int_equal(n, 2); /* bob's connection starts after now */
    assert_row(&rows[0], "", "p1", 100, 51200, 0);
    assert_row(&rows[1], "alice", "p1", 500 * 2 + 50 * 2, 500 * 1024 + 50 * 1024, 1000);
    free(rows);

    /* filters */
    assert_int_equal(store_usage_report(s, 1000, 2000, 2500, "alice", NULL, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].user, "alice");
    free(rows);
    assert_int_equal(store_usage_report(s, 1000, 2000, 2500, "", "p1", &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_row(&rows[0], "", "p1", 100, 51200, 0);
    free(rows);
    assert_int_equal(store_usage_report(s, 1000, 2000, 2500, NULL, "p2", &rows, &n), 0);
    assert_int_equal(n, 0);
    assert_null(rows);
    /* a later period sees bob's running desktop, up to now */
    assert_int_equal(store_usage_report(s, 2000, 3000, 2600, "bob", "p2", &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_row(&rows[0], "bob", "p2", 4 * 600, 4096 * 600, 0);
    free(rows);
    assert_int_equal(store_usage_report(s, 2000, 1000, 2500, NULL, NULL, &rows, &n), -EINVAL);
    assert_int_equal(store_usage_report(s, 1000, 2000, 2500, "a b", NULL, &rows, &n), -EINVAL);

    /* end is idempotent */
    assert_int_equal(store_usage_end(s, open, 1900), 0);
    assert_int_equal(store_usage_end(s, open, 1990), 0);
    assert_int_equal(store_usage_end(s, 999999, 1990), -ENOENT);
    assert_int_equal(store_usage_report(s, 1000, 2000, 2500, "alice", "p1", &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_row(&rows[0], "alice", "p1", 500 * 2 + 100 * 2, 500 * 1024 + 100 * 1024, 1000);
    free(rows);

    /* closing a desktop's open intervals, by kind */
    assert_int_equal(store_usage_end_open_for_desktop(s, "d4", R, 1960), 0);
    assert_int_equal(store_usage_report(s, 1000, 2000, 2500, "bob", "p1", &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_row(&rows[0], "bob", "p1", 0, 0, 50); /* still open */
    free(rows);
    assert_int_equal(store_usage_end_open_for_desktop(s, "d4", -1, 1960), 0);
    assert_int_equal(store_usage_report(s, 1000, 2000, 2500, "bob", "p1", &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_row(&rows[0], "bob", "p1", 0, 0, 10);
    free(rows);
    assert_int_equal(store_usage_end_open_for_desktop(s, "d4", 5, 1960), -EINVAL);

    /* invalid intervals */
    uint64_t id = 0;
    assert_int_equal(store_usage_begin(s, R, "alice", "p1", "d1", 0, 1024, 1, &id), -EINVAL);
    assert_int_equal(store_usage_begin(s, R, "alice", "p1", "d1", 2, 32, 1, &id), -EINVAL);
    assert_int_equal(store_usage_begin(s, C, "", "p1", "d1", 0, 0, 1, &id), -EINVAL);
    assert_int_equal(store_usage_begin(s, (enum store_usage_kind)4, "a", "p1", "d1", 1, 64, 1, &id),
                     -EINVAL);
    assert_int_equal(store_usage_begin(s, C, "alice", "p1", "d/1", 0, 0, 1, &id), -EINVAL);
    assert_int_equal(store_usage_begin(s, C, "alice", "p1", "d1", 0, 0, -1, &id), -EINVAL);
    assert_int_equal(store_usage_begin(s, C, "alice", "P1", "d1", 0, 0, 1, &id), -EINVAL);
}

/* ---- a file edited by hand ---- */

static void test_hand_edited(void **state)
{
    struct fixture *f = *state;
    struct store *s = f->s;
    struct store_desktop *list = NULL, got;
    struct store_session sess;
    struct store_pool p;
    size_t n = 0;

    add_t1_p1(s);
    /* hex(zeroblob(k)) is 2k characters */
    raw_exec(f->path, "INSERT INTO sessions (id, username, pool, desktop, client, started, "
                      "session_id, kind, token_hash) VALUES (1, hex(zeroblob(100)), "
                      "hex(zeroblob(100)), hex(zeroblob(100)), hex(zeroblob(100)), 1, 1, "
                      "'user', hex(zeroblob(32)))");
    assert_int_equal(store_session_get(s, 1, &sess), 0);
    assert_int_equal(strlen(sess.user), STORE_NAME_MAX);
    assert_int_equal(strlen(sess.pool), STORE_NAME_MAX);
    assert_int_equal(strlen(sess.desktop), STORE_DESKTOP_MAX);
    assert_int_equal(strlen(sess.client), STORE_ADDRESS_MAX - 1);
    assert_int_equal(strlen(sess.token_hash), 64);

    raw_exec(f->path, "INSERT INTO desktops (name, pool, owner, state, disk, created) VALUES "
                      "(hex(zeroblob(100)), 'p1', hex(zeroblob(50)), 'ready', "
                      "'/' || hex(zeroblob(3000)), 1)");
    assert_int_equal(store_desktop_list(s, "p1", &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(strlen(list[0].name), STORE_DESKTOP_MAX);
    assert_int_equal(strlen(list[0].owner), STORE_NAME_MAX);
    assert_int_equal(strlen(list[0].disk), STORE_PATH_MAX - 1);
    free(list);

    /* an enum the program does not know is an error, not a guess */
    raw_exec(f->path, "PRAGMA ignore_check_constraints = ON;"
                      "INSERT INTO desktops (name, pool, state, created) "
                      "VALUES ('vdi-odd', 'p1', 'bogus', 1)");
    assert_int_equal(store_desktop_get(s, "vdi-odd", &got), -EIO);
    list = NULL;
    assert_int_equal(store_desktop_list(s, "p1", &list, &n), -EIO);
    assert_null(list);

    /* the schema's own checks hold without the program's */
    const char *refused[] = {
        "UPDATE pools SET disconnect_grace_s = -1",
        "UPDATE pools SET idle_timeout_s = 604801",
        "UPDATE pools SET max_session_s = 2592001",
        "UPDATE pools SET stop_action = 'explode'",
        "UPDATE desktops SET state = 'broken'",
        "UPDATE sessions SET kind = 'ghost' WHERE id = 1",
        "UPDATE sessions SET token_hash = 'xyz' WHERE id = 1",
        "UPDATE sessions SET session_id = -1 WHERE id = 1",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        int rc = sqlite3_exec(db, refused[i], NULL, NULL, NULL);
        sqlite3_close(db);
        if (rc != SQLITE_CONSTRAINT)
            fail_msg("%s: %d, expected a constraint failure", refused[i], rc);
    }

    raw_exec(f->path, "PRAGMA ignore_check_constraints = ON;"
                      "UPDATE pools SET stop_action = 'explode' WHERE name = 'p1'");
    assert_int_equal(store_pool_get(s, "p1", &p), -EIO);
    raw_exec(f->path, "PRAGMA ignore_check_constraints = ON;"
                      "INSERT INTO sessions (id, username, pool, desktop, started, session_id, "
                      "kind) VALUES (2, 'eve', 'p1', 'vdi-p1-0001', 1, 2, 'ghost')");
    assert_int_equal(store_session_get(s, 2, &sess), -EIO);
}

/* ---- threads ---- */

#define N_THREADS 4
#define N_ROUNDS 200

struct race {
    struct store *s;
    pthread_barrier_t barrier;
    atomic_int winners;
    atomic_int winner; /* index of this round's winner */
    atomic_int bad_rounds;
    atomic_int errors;
    int wins[N_THREADS];
};

struct racer {
    struct race *race;
    int index;
};

static void *race_run(void *userdata)
{
    struct racer *me = userdata;
    struct race *race = me->race;
    char user[16], winner_name[16];

    snprintf(user, sizeof(user), "user%d", me->index);
    for (int round = 0; round < N_ROUNDS; round++) {
        pthread_barrier_wait(&race->barrier);
        int r = store_desktop_set_owner(race->s, "vdi-p1-0001", "", user);
        if (r == 0) {
            atomic_fetch_add(&race->winners, 1);
            atomic_store(&race->winner, me->index);
            race->wins[me->index]++;
        } else if (r != -EBUSY)
            atomic_fetch_add(&race->errors, 1);
        struct store_session sess = {.id = (uint64_t)(me->index * N_ROUNDS + round + 1),
                                     .started = round + 1};
        sess.session_id = sess.id;
        snprintf(sess.user, sizeof(sess.user), "%s", user);
        strcpy(sess.desktop, "vdi-p1-0001");
        if (store_session_begin(race->s, &sess) < 0)
            atomic_fetch_add(&race->errors, 1);
        pthread_barrier_wait(&race->barrier);

        if (me->index == 0) {
            /* one winner, and the row says who; then free it for the next round */
            struct store_desktop d;
            snprintf(winner_name, sizeof(winner_name), "user%d", atomic_load(&race->winner));
            if (atomic_load(&race->winners) != 1 ||
                store_desktop_get(race->s, "vdi-p1-0001", &d) < 0 ||
                strcmp(d.owner, winner_name) != 0)
                atomic_fetch_add(&race->bad_rounds, 1);
            if (store_desktop_set_owner(race->s, "vdi-p1-0001", winner_name, "") < 0)
                atomic_fetch_add(&race->errors, 1);
            atomic_store(&race->winners, 0);
        }
        pthread_barrier_wait(&race->barrier);
    }
    return NULL;
}

static void test_threads_compare_and_set(void **state)
{
    struct fixture *f = *state;
    struct race race = {.s = f->s};
    struct racer racers[N_THREADS];
    pthread_t threads[N_THREADS];
    struct store_session *list = NULL;
    size_t n = 0;
    uint64_t max = 0;

    add_t1_p1(f->s);
    struct store_desktop d = desktop("vdi-p1-0001", "p1");
    assert_int_equal(store_desktop_add(f->s, &d), 0);
    assert_int_equal(pthread_barrier_init(&race.barrier, NULL, N_THREADS), 0);
    for (int i = 0; i < N_THREADS; i++) {
        racers[i] = (struct racer){.race = &race, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, race_run, &racers[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    pthread_barrier_destroy(&race.barrier);

    assert_int_equal(atomic_load(&race.errors), 0);
    assert_int_equal(atomic_load(&race.bad_rounds), 0);
    int total = 0;
    for (int i = 0; i < N_THREADS; i++)
        total += race.wins[i];
    assert_int_equal(total, N_ROUNDS);
    assert_int_equal(store_session_list(f->s, false, 0, &list, &n), 0);
    assert_int_equal(n, N_THREADS * N_ROUNDS);
    free(list);
    assert_int_equal(store_session_max_id(f->s, &max), 0);
    assert_int_equal(max, N_THREADS * N_ROUNDS);
    assert_int_equal(store_desktop_get(f->s, "vdi-p1-0001", &d), 0);
    assert_string_equal(d.owner, "");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_open_fresh),        T(test_open_mode_ignores_umask),
        T(test_reopen_keeps_data), T(test_newer_schema_refused),
        T(test_bad_urls),          cmocka_unit_test(test_enum_strings),
        T(test_templates),         T(test_pools),
        T(test_desktops),          T(test_next_name),
        T(test_entitlements),      T(test_sessions),
        T(test_usage_report),      T(test_migrate_from_1),
        T(test_hand_edited),       T(test_threads_compare_and_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
