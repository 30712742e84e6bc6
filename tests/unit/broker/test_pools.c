/* broker/pools.c with real components: the SQLite store in a temporary directory, libvirt's
 * in-memory test driver (test:///default, which has a storage driver, so overlays are
 * volumes of the "vdi-disks" pool) and NSS through nss_wrapper (pools.cmake writes the
 * passwd/group files: alice, bob, carol; group eng = alice, bob).
 *
 * The test driver keeps one shared state while a test:///default connection is open: each
 * test opens its own (the fixture) and closes it, so each starts from the driver's
 * defaults. The raw connections used here to look behind virt.c are closed right away.
 *
 * Markers: a "marked" overlay is a volume replaced by hand with one of MARK_CAPACITY bytes
 * and no backing file; a fresh one (virt_overlay_create) has the template's size. A domain
 * that is undefined and defined again gets a new UUID. */
#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pool-list.h"
#include "pools.h"
#include "proto.h"
#include "reasons.h"
#include "util.h"

#include "pools-fixture.h"

#define TEST_URI POOLS_ENV_URI
#define BASE_SIZE POOLS_ENV_BASE_SIZE
#define MARK_CAPACITY 4096
#define UUID_LEN VIR_UUID_STRING_BUFLEN

struct fx {
    struct pools_env env;
    char initrd[128];
    struct pools *pools;
    struct virt_host_capacity host;
    struct virt_template vt; /* the "base" template, for desktops made by hand */
};

/* ---- fixture ---- */

static void fx_open_pools(struct fx *f, double cpu_overcommit)
{
    struct pools_options o = {
        .store = f->env.store,
        .virt = f->env.virt,
        .cpu_overcommit = cpu_overcommit,
        .memory_overcommit = 1000,
        .shutdown_timeout_s = 2,
    };
    pools_free(f->pools);
    f->pools = NULL;
    assert_int_equal(pools_new(&o, &f->pools), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct virt_error verr = {""};

    assert_non_null(f);
    pools_env_open(&f->env, "pools");
    snprintf(f->initrd, sizeof(f->initrd), "%s/initrd.img", f->env.dir);
    pools_env_write_file(f->initrd, 4096);
    assert_true(virt_has_storage_api(f->env.virt));
    assert_int_equal(virt_host_capacity(f->env.virt, &f->host, &verr), 0);
    fx_open_pools(f, 1000);
    pools_env_add_template(&f->env, f->pools);
    f->vt = (struct virt_template){.name = "base",
                                   .os = VIRT_OS_LINUX,
                                   .firmware = VIRT_FIRMWARE_BIOS,
                                   .disk = f->env.base,
                                   .disk_format = IMAGE_RAW,
                                   .disk_size = BASE_SIZE};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    pools_free(f->pools);
    pools_env_close(&f->env);
    free(f);
    return 0;
}

/* ---- helpers: configuration ---- */

static struct store_pool pool_spec(const char *name, enum store_pool_kind kind,
                                   enum store_logoff logoff, int max_desktops, int min_spare)
{
    struct store_pool p = {
        .template_name = "base",
        .vcpus = 1,
        .memory_mib = 128,
        .kind = kind,
        .min_spare = min_spare,
        .max_desktops = max_desktops,
        .logoff = logoff,
    };
    snprintf(p.name, sizeof(p.name), "%s", name);
    return p;
}

static void add_pool_spec(struct fx *f, const struct store_pool *p)
{
    struct pools_error err = {"", ""};
    assert_ok(pools_pool_add(f->pools, p, &err), err);
}

static void add_pool(struct fx *f, const char *name, enum store_pool_kind kind,
                     enum store_logoff logoff, int max_desktops, int min_spare)
{
    struct store_pool p = pool_spec(name, kind, logoff, max_desktops, min_spare);
    add_pool_spec(f, &p);
}

static void entitle(struct fx *f, const char *pool, enum store_entitlement_kind kind,
                    const char *name)
{
    struct pools_error err = {"", ""};
    struct store_entitlement e = {.kind = kind};
    snprintf(e.pool, sizeof(e.pool), "%s", pool);
    snprintf(e.name, sizeof(e.name), "%s", name);
    assert_ok(pools_entitlement_add(f->pools, &e, &err), err);
}

/* A pool with the given users entitled directly. */
static void add_pool_for(struct fx *f, const char *name, enum store_pool_kind kind,
                         enum store_logoff logoff, int max_desktops, const char *users)
{
    char list[256], *save = NULL;

    add_pool(f, name, kind, logoff, max_desktops, 0);
    snprintf(list, sizeof(list), "%s", users);
    for (char *u = strtok_r(list, " ", &save); u; u = strtok_r(NULL, " ", &save))
        entitle(f, name, STORE_ENTITLE_USER, u);
}

/* ---- helpers: what exists ---- */

/* Connection ids of claims and of begin(), with the desktop each went to. */
static uint64_t next_connection = 100000;
static struct {
    uint64_t id;
    char desktop[STORE_DESKTOP_MAX + 1];
    char user[STORE_NAME_MAX + 1];
} begun[64];

static struct pools_connection connection(uint64_t id, const char *user, const char *client)
{
    struct pools_connection c = {.id = id, .session_id = id, .kind = STORE_SESSION_USER};

    snprintf(c.user, sizeof(c.user), "%s", user);
    snprintf(c.client, sizeof(c.client), "%s", client);
    return c;
}

/* A claim that stays connected (*ret_id: its connection). */
static int claim_connected(struct fx *f, const char *user, const char *pool, char *desktop,
                           uint64_t *ret_id, struct pools_error *err)
{
    struct pools_connection c = connection(++next_connection, user, "192.0.2.9");

    *ret_id = c.id;
    return pools_claim(f->pools, &c, pool, desktop, STORE_DESKTOP_MAX + 1, err);
}

/* A claim whose connection ends at once (no logoff): the desktop as a login leaves it. */
static int claim(struct fx *f, const char *user, const char *pool, char *desktop,
                 struct pools_error *err)
{
    uint64_t id;
    int r = claim_connected(f, user, pool, desktop, &id, err);

    if (r == 0)
        pools_session_end(f->pools, id);
    return r;
}

/* A client connects to desktop (pools_session_begin) / leaves it: the connection ends
 * and, as the broker does when the grace period is over, the logoff action runs. */
static void begin(struct fx *f, uint64_t id, const char *user, const char *desktop,
                  const char *client)
{
    struct pools_connection c = connection(id, user, client);

    for (size_t i = 0; i < ARRAY_SIZE(begun); i++)
        if (!begun[i].id) {
            begun[i].id = id;
            snprintf(begun[i].desktop, sizeof(begun[i].desktop), "%s", desktop);
            snprintf(begun[i].user, sizeof(begun[i].user), "%s", user);
            break;
        }
    pools_session_begin(f->pools, &c, desktop);
}

static void leave(struct fx *f, uint64_t id)
{
    pools_session_end(f->pools, id);
    for (size_t i = 0; i < ARRAY_SIZE(begun); i++)
        if (begun[i].id == id) {
            begun[i].id = 0;
            (void)pools_logoff(f->pools, begun[i].desktop, begun[i].user);
        }
}

static void claim_ok(struct fx *f, const char *user, const char *pool, char *desktop)
{
    struct pools_error err = {"", ""};
    assert_ok(claim(f, user, pool, desktop, &err), err);
}

static struct store_desktop row(struct fx *f, const char *name)
{
    return pools_env_row(&f->env, name);
}

static bool row_exists(struct fx *f, const char *name)
{
    struct store_desktop d;
    return store_desktop_get(f->env.store, name, &d) == 0;
}

static size_t n_rows(struct fx *f, const char *pool)
{
    struct store_desktop *ds = NULL;
    size_t n = 0;
    assert_int_equal(store_desktop_list(f->env.store, pool, &ds, &n), 0);
    free(ds);
    return n;
}

static enum virt_state power(struct fx *f, const char *name)
{
    return pools_env_power(&f->env, name);
}

/* Our metadata on the domain, as virt_list reports it. */
static bool dom_info(struct fx *f, const char *name, struct virt_domain_info *ret)
{
    struct virt_domain_info *doms = NULL;
    struct virt_error verr = {""};
    size_t n = 0;
    bool found = false;

    assert_int_equal(virt_list(f->env.virt, &doms, &n, &verr), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(doms[i].name, name) == 0) {
            *ret = doms[i];
            found = true;
        }
    free(doms);
    return found;
}

static bool overlay_exists(struct fx *f, const char *name)
{
    struct virt_error verr = {""};
    char **names = NULL;
    size_t n = 0;
    bool found = false;

    assert_int_equal(virt_overlay_list(f->env.virt, &names, &n, &verr), 0);
    for (size_t i = 0; i < n; i++) {
        found |= strcmp(names[i], name) == 0;
        free(names[i]);
    }
    free(names);
    return found;
}

static virStorageVolPtr volume_of(virConnectPtr c, const char *name)
{
    char volname[128];
    virStoragePoolPtr pool = virStoragePoolLookupByName(c, VIRT_POOL_NAME);
    virStorageVolPtr vol;

    assert_non_null(pool);
    snprintf(volname, sizeof(volname), "%s.qcow2", name);
    vol = virStorageVolLookupByName(pool, volname);
    virStoragePoolFree(pool);
    return vol;
}

/* Replaces the overlay with a volume that no fresh overlay looks like (the "user's data"). */
static void overlay_mark(const char *name)
{
    virConnectPtr c = virConnectOpen(TEST_URI);
    virStoragePoolPtr pool;
    virStorageVolPtr vol;
    char xml[512];

    assert_non_null(c);
    vol = volume_of(c, name);
    assert_non_null(vol);
    assert_int_equal(virStorageVolDelete(vol, 0), 0);
    virStorageVolFree(vol);
    snprintf(xml, sizeof(xml),
             "<volume><name>%s.qcow2</name><capacity unit='bytes'>%d</capacity>"
             "<target><format type='qcow2'/></target></volume>",
             name, MARK_CAPACITY);
    pool = virStoragePoolLookupByName(c, VIRT_POOL_NAME);
    assert_non_null(pool);
    vol = virStorageVolCreateXML(pool, xml, 0);
    assert_non_null(vol);
    virStorageVolFree(vol);
    virStoragePoolFree(pool);
    virConnectClose(c);
}

/* Capacity of the overlay volume: BASE_SIZE when fresh, MARK_CAPACITY when marked. */
static unsigned long long overlay_capacity(const char *name)
{
    virConnectPtr c = virConnectOpen(TEST_URI);
    virStorageVolInfo info = {0};
    virStorageVolPtr vol;

    assert_non_null(c);
    vol = volume_of(c, name);
    if (!vol)
        fail_msg("no overlay volume for %s", name);
    assert_int_equal(virStorageVolGetInfo(vol, &info), 0);
    virStorageVolFree(vol);
    virConnectClose(c);
    return info.capacity;
}

static void domain_uuid(const char *name, char uuid[UUID_LEN])
{
    virConnectPtr c = virConnectOpen(TEST_URI);
    virDomainPtr dom;

    assert_non_null(c);
    dom = virDomainLookupByName(c, name);
    if (!dom)
        fail_msg("no domain %s", name);
    assert_int_equal(virDomainGetUUIDString(dom, uuid), 0);
    virDomainFree(dom);
    virConnectClose(c);
}

/* A desktop made by hand (overlay + domain with our metadata), as a crashed broker leaves. */
static void make_domain(struct fx *f, const char *name, const char *pool, const char *owner)
{
    struct virt_error verr = {""};
    struct virt_desktop_spec spec = {
        .name = name,
        .pool = pool,
        .owner = owner,
        .tmpl = &f->vt,
        .vcpus = 1,
        .memory_mib = 128,
        .created = "2024-01-02T03:04:05Z",
    };
    int r = virt_overlay_create(f->env.virt, name, &f->vt, NULL, 0, &verr);
    if (r == 0)
        r = virt_desktop_define(f->env.virt, &spec, &verr);
    if (r < 0)
        fail_msg("making %s by hand: %d %s", name, r, verr.message);
}

static void add_row(struct fx *f, const char *name, const char *pool, const char *owner,
                    enum store_desktop_state state)
{
    struct store_desktop d = {.state = state, .created = 1};
    snprintf(d.name, sizeof(d.name), "%s", name);
    snprintf(d.pool, sizeof(d.pool), "%s", pool);
    snprintf(d.owner, sizeof(d.owner), "%s", owner);
    assert_int_equal(store_desktop_add(f->env.store, &d), 0);
}

/* ---- helpers: metrics ---- */

static char *metrics(struct fx *f)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&buf, &size);

    assert_non_null(m);
    assert_int_equal(pools_metrics_write(f->pools, m), 0);
    assert_int_equal(fclose(m), 0);
    return buf;
}

/* The value of the sample "key" (name with labels, exactly), or -1. */
static long long metric(const char *text, const char *key)
{
    size_t len = strlen(key);
    const char *line = text;

    while (line && *line) {
        if (strncmp(line, key, len) == 0 && line[len] == ' ')
            return strtoll(line + len + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

static long long metric_now(struct fx *f, const char *key)
{
    char *text = metrics(f);
    long long v = metric(text, key);
    free(text);
    return v;
}

/* ---- logins ---- */

static void test_parse_login(void **state)
{
    (void)state;
    char user[STORE_NAME_MAX + 1], pool[STORE_NAME_MAX + 1], login[128];

    assert_int_equal(pools_parse_login("alice", user, pool), 0);
    assert_string_equal(user, "alice");
    assert_string_equal(pool, "");
    assert_int_equal(pools_parse_login("alice@eng", user, pool), 0);
    assert_string_equal(user, "alice");
    assert_string_equal(pool, "eng");
    assert_int_equal(pools_parse_login("a.b_c-d@lab-2", user, pool), 0);
    assert_string_equal(user, "a.b_c-d");
    assert_string_equal(pool, "lab-2");

    assert_int_equal(pools_parse_login("", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("@eng", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("alice@", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("alice@Bad Pool", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("alice@eng@x", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("-x", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("-x@eng", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("al ice", user, pool), -EINVAL);

    /* "user@?": the pool list (pool-list.h); nothing else after the '@' is special */
    assert_int_equal(pools_parse_login("alice@?", user, pool), 0);
    assert_string_equal(user, "alice");
    assert_string_equal(pool, POOL_LIST_REQUEST);
    assert_int_equal(pools_parse_login("alice@?x", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("alice@??", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("alice@x?", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("alice@Eng", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("@?", user, pool), -EINVAL);
    assert_int_equal(pools_parse_login("alice@?@eng", user, pool), -EINVAL);

    /* 32 is the limit on both sides */
    memset(login, 'u', 32);
    strcpy(login + 32, "@");
    memset(login + 33, 'p', 32);
    login[65] = '\0';
    assert_int_equal(pools_parse_login(login, user, pool), 0);
    assert_int_equal(strlen(user), 32);
    assert_int_equal(strlen(pool), 32);
    strcpy(login + 65, "p"); /* pool of 33 */
    assert_int_equal(pools_parse_login(login, user, pool), -EINVAL);
    memset(login, 'u', 33); /* user of 33 */
    login[33] = '\0';
    assert_int_equal(pools_parse_login(login, user, pool), -EINVAL);
}

static void test_choose_no_entitlement(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char pool[STORE_NAME_MAX + 1], desktop[STORE_DESKTOP_MAX + 1];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "bob");
    assert_int_equal(pools_choose(f->pools, "alice", "", pool, &err), -ENOENT);
    assert_contains(err.text, "No desktop");
    assert_int_equal(claim(f, "alice", "", desktop, &err), -ENOENT);
    assert_contains(err.text, "No desktop");
    assert_int_equal(n_rows(f, "p1"), 0);
    /* a user NSS does not know: no groups, no entitlement, no error */
    assert_int_equal(pools_choose(f->pools, "nobody-here", "", pool, &err), -ENOENT);
}

static void test_choose_direct(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char pool[STORE_NAME_MAX + 1];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "alice");
    assert_ok(pools_choose(f->pools, "alice", "", pool, &err), err);
    assert_string_equal(pool, "p1");
    assert_ok(pools_choose(f->pools, "alice", "p1", pool, &err), err);
    assert_string_equal(pool, "p1");
    assert_int_equal(pools_choose(f->pools, "bob", "", pool, &err), -ENOENT);
}

static void test_choose_group(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char pool[STORE_NAME_MAX + 1];
    char(*names)[STORE_NAME_MAX + 1] = NULL;
    size_t n = 0;

    add_pool(f, "eng", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    entitle(f, "eng", STORE_ENTITLE_GROUP, "eng");

    /* alice and bob are in eng (nss_wrapper's group file); carol is not */
    assert_ok(pools_choose(f->pools, "alice", "", pool, &err), err);
    assert_string_equal(pool, "eng");
    assert_ok(pools_choose(f->pools, "bob", "eng", pool, &err), err);
    assert_string_equal(pool, "eng");
    assert_int_equal(pools_choose(f->pools, "carol", "", pool, &err), -ENOENT);

    assert_int_equal(pools_entitled(f->pools, "alice", &names, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "eng");
    free(names);
    names = NULL;
    assert_int_equal(pools_entitled(f->pools, "carol", &names, &n), 0);
    assert_int_equal(n, 0);
    free(names);
}

static void test_choose_several(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char pool[STORE_NAME_MAX + 1], desktop[STORE_DESKTOP_MAX + 1];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "alice");
    add_pool(f, "p2", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    entitle(f, "p2", STORE_ENTITLE_GROUP, "eng");

    assert_int_equal(pools_choose(f->pools, "alice", "", pool, &err), -EINVAL);
    assert_contains(err.text, "alice@p1");
    assert_contains(err.text, "alice@p2");
    assert_int_equal(claim(f, "alice", "", desktop, &err), -EINVAL);
    assert_int_equal(n_rows(f, NULL), 0);

    assert_ok(pools_choose(f->pools, "alice", "p2", pool, &err), err);
    assert_string_equal(pool, "p2");
    claim_ok(f, "alice", "p2", desktop);
    assert_string_equal(row(f, desktop).pool, "p2");
}

static void test_choose_not_entitled(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char pool[STORE_NAME_MAX + 1], desktop[STORE_DESKTOP_MAX + 1];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "alice");
    add_pool_for(f, "p2", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "bob");

    assert_int_equal(pools_choose(f->pools, "alice", "p2", pool, &err), -EPERM);
    assert_contains(err.text, "'p2'");
    assert_int_equal(pools_choose(f->pools, "alice", "nosuch", pool, &err), -EPERM);
    assert_int_equal(claim(f, "alice", "p2", desktop, &err), -EPERM);
    assert_int_equal(n_rows(f, NULL), 0);
}

/* "alice@?" (vdi-client's chooser): the one pool as for "alice", several give the pool
 * list as the reason, none the usual "no desktop". */
static void test_choose_list(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct pool_choice got[POOL_LIST_MAX];
    struct store_template win = {.name = "win", .os = STORE_OS_WINDOWS};
    char pool[STORE_NAME_MAX + 1], desktop[STORE_DESKTOP_MAX + 1];

    /* none */
    assert_int_equal(pools_choose(f->pools, "alice", POOL_LIST_REQUEST, pool, &err), -ENOENT);
    assert_string_equal(err.text, REASON_NO_DESKTOP);
    assert_int_equal(reason_classify(err.text), REASON_CLASS_NO_DESKTOP);

    /* one: that pool */
    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "alice");
    assert_ok(pools_choose(f->pools, "alice", POOL_LIST_REQUEST, pool, &err), err);
    assert_string_equal(pool, "p1");
    claim_ok(f, "alice", POOL_LIST_REQUEST, desktop);
    assert_string_equal(row(f, desktop).pool, "p1");

    /* two (one through the group eng), of a Linux and a Windows template: the list */
    snprintf(win.disk, sizeof(win.disk), "%s", f->env.base);
    assert_ok(pools_template_add(f->pools, &win, &err), err);
    struct store_pool w = pool_spec("win10", STORE_POOL_FLOATING, STORE_LOGOFF_RESET, 5, 0);
    snprintf(w.template_name, sizeof(w.template_name), "win");
    add_pool_spec(f, &w);
    entitle(f, "win10", STORE_ENTITLE_GROUP, "eng");
    memset(&err, 0, sizeof(err));
    assert_int_equal(pools_choose(f->pools, "alice", POOL_LIST_REQUEST, pool, &err), -EINVAL);
    assert_int_equal(reason_classify(err.text), REASON_CLASS_POOL_LIST);
    assert_int_equal(pool_list_parse(err.text, got), 2);
    assert_true(strlen(err.text) <= PROTO_MAX_TEXT);
    /* in the order pools_entitled() gives them */
    bool p1_first = streq(got[0].name, "p1");
    struct pool_choice *p1 = &got[p1_first ? 0 : 1], *w10 = &got[p1_first ? 1 : 0];
    assert_string_equal(p1->name, "p1");
    assert_string_equal(p1->os, "linux");
    assert_string_equal(w10->name, "win10");
    assert_string_equal(w10->os, "windows");
    assert_contains(err.log, "alice");
    /* no desktop for a list */
    assert_int_equal(claim(f, "alice", POOL_LIST_REQUEST, desktop, &err), -EINVAL);
    assert_int_equal(n_rows(f, "win10"), 0);

    /* plain "alice" keeps the sentence, "alice@win10" gets that pool */
    assert_int_equal(pools_choose(f->pools, "alice", "", pool, &err), -EINVAL);
    assert_int_equal(reason_classify(err.text), REASON_CLASS_OTHER);
    assert_contains(err.text, "alice@win10");
    assert_ok(pools_choose(f->pools, "alice", "win10", pool, &err), err);
    assert_string_equal(pool, "win10");
    /* bob (group eng only): one pool */
    assert_ok(pools_choose(f->pools, "bob", POOL_LIST_REQUEST, pool, &err), err);
    assert_string_equal(pool, "win10");
}

/* As many pools as fit the 255 bytes of a reason are listed, in order, and the list
 * still parses. */
static void test_choose_list_long(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct pool_choice got[POOL_LIST_MAX];
    char pool[STORE_NAME_MAX + 1], name[STORE_NAME_MAX + 1];

    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof(name), "pool-%d-%025d", i, 0); /* 32 characters */
        assert_int_equal(strlen(name), STORE_NAME_MAX);
        add_pool_for(f, name, STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "carol");
    }
    assert_int_equal(pools_choose(f->pools, "carol", POOL_LIST_REQUEST, pool, &err), -EINVAL);
    assert_true(strlen(err.text) <= PROTO_MAX_TEXT);
    /* "VDI-POOLS/1" + 6 * " <32>:linux" = 11 + 6 * 39 = 245; a 7th would not fit */
    assert_int_equal(pool_list_parse(err.text, got), 6);
    assert_int_equal(strlen(err.text), 245);
    for (int i = 0; i < 6; i++)
        assert_string_equal(got[i].os, "linux");
    assert_contains(err.log, "8 pools");
}

/* ---- administration: validation ---- */

static void test_template_validation(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct store_template t = {.name = "t1", .os = STORE_OS_LINUX};

    snprintf(t.disk, sizeof(t.disk), "%s/missing.img", f->env.dir);
    assert_int_equal(pools_template_add(f->pools, &t, &err), -EINVAL);
    assert_contains(err.text, "missing.img");

    strcpy(t.disk, "base.img");
    assert_int_equal(pools_template_add(f->pools, &t, &err), -EINVAL);
    assert_contains(err.text, "absolute");

    strcpy(t.disk, f->env.base);
    strcpy(t.initrd, f->initrd); /* readable, but no kernel */
    assert_int_equal(pools_template_add(f->pools, &t, &err), -EINVAL);
    assert_contains(err.text, "kernel");
    t.initrd[0] = '\0';
    strcpy(t.cmdline, "quiet");
    assert_int_equal(pools_template_add(f->pools, &t, &err), -EINVAL);

    /* kernel, initrd and cmdline together are fine; relative kernel is not */
    strcpy(t.kernel, "vmlinuz");
    assert_int_equal(pools_template_add(f->pools, &t, &err), -EINVAL);
    strcpy(t.kernel, f->initrd);
    strcpy(t.initrd, f->initrd);
    assert_ok(pools_template_add(f->pools, &t, &err), err);

    struct store_template bad = t;
    strcpy(bad.name, "Bad Name");
    assert_int_equal(pools_template_add(f->pools, &bad, &err), -EINVAL);

    assert_int_equal(pools_template_add(f->pools, &t, &err), -EEXIST);
    assert_contains(err.text, "t1");

    struct store_template got;
    assert_int_equal(store_template_get(f->env.store, "t1", &got), 0);
    assert_string_equal(got.kernel, f->initrd);
    assert_string_equal(got.cmdline, "quiet");
}

static void test_template_delete(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};

    add_pool(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    assert_int_equal(pools_template_delete(f->pools, "base", &err), -EBUSY);
    assert_contains(err.text, "in use");
    assert_int_equal(pools_template_delete(f->pools, "nosuch", &err), -ENOENT);
    assert_ok(pools_pool_delete(f->pools, "p1", &err), err);
    assert_ok(pools_template_delete(f->pools, "base", &err), err);
    struct store_template got;
    assert_int_equal(store_template_get(f->env.store, "base", &got), -ENOENT);
}

static void test_pool_validation(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct store_pool p;

    p = pool_spec("Bad Name", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    assert_int_equal(pools_pool_add(f->pools, &p, &err), -EINVAL);
    p = pool_spec("p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    p.vcpus = 0;
    assert_int_equal(pools_pool_add(f->pools, &p, &err), -EINVAL);
    assert_contains(err.text, "vcpus");
    p = pool_spec("p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    p.memory_mib = 32;
    assert_int_equal(pools_pool_add(f->pools, &p, &err), -EINVAL);
    p = pool_spec("p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 2, 3);
    assert_int_equal(pools_pool_add(f->pools, &p, &err), -EINVAL);
    assert_contains(err.text, "min_spare");
    p = pool_spec("p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 0, 0);
    assert_int_equal(pools_pool_add(f->pools, &p, &err), -EINVAL);
    p = pool_spec("p1", STORE_POOL_FLOATING, STORE_LOGOFF_KEEP, 5, 0);
    assert_int_equal(pools_pool_add(f->pools, &p, &err), -EINVAL);
    assert_contains(err.text, "reset");
    p = pool_spec("p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    strcpy(p.template_name, "nosuch");
    assert_int_equal(pools_pool_add(f->pools, &p, &err), -ENOENT);
    assert_contains(err.text, "nosuch");
    struct store_pool got;
    assert_int_equal(store_pool_get(f->env.store, "p1", &got), -ENOENT);

    p = pool_spec("p1", STORE_POOL_FLOATING, STORE_LOGOFF_RESET, 5, 1);
    assert_ok(pools_pool_add(f->pools, &p, &err), err);
    assert_int_equal(pools_pool_add(f->pools, &p, &err), -EEXIST);
    assert_contains(err.text, "p1");
}

static void test_pool_update(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct store_pool p = pool_spec("p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0), got;

    add_pool_spec(f, &p);
    p.kind = STORE_POOL_FLOATING;
    p.logoff = STORE_LOGOFF_RESET;
    assert_int_equal(pools_pool_update(f->pools, &p, &err), -EINVAL);
    assert_contains(err.text, "kind");

    p = pool_spec("p1", STORE_POOL_DEDICATED, STORE_LOGOFF_SUSPEND, 8, 2);
    p.vcpus = 2;
    assert_ok(pools_pool_update(f->pools, &p, &err), err);
    assert_int_equal(store_pool_get(f->env.store, "p1", &got), 0);
    assert_int_equal(got.vcpus, 2);
    assert_int_equal(got.max_desktops, 8);
    assert_int_equal(got.logoff, STORE_LOGOFF_SUSPEND);
    assert_int_equal(got.kind, STORE_POOL_DEDICATED);

    p.min_spare = 9; /* > max_desktops: checked on update too */
    assert_int_equal(pools_pool_update(f->pools, &p, &err), -EINVAL);
    p = pool_spec("p9", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    assert_int_equal(pools_pool_update(f->pools, &p, &err), -ENOENT);
}

/* ---- claims ---- */

static void test_claim_dedicated(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct virt_domain_info info;
    char d1[STORE_DESKTOP_MAX + 1], again[STORE_DESKTOP_MAX + 1], d2[STORE_DESKTOP_MAX + 1],
        d3[STORE_DESKTOP_MAX + 1];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 2, "alice bob carol");

    claim_ok(f, "alice", "", d1);
    assert_string_equal(d1, "vdi-p1-0001");
    struct store_desktop d = row(f, d1);
    assert_int_equal(d.state, STORE_DESKTOP_READY);
    assert_string_equal(d.owner, "alice");
    assert_string_equal(d.pool, "p1");
    assert_true(d.assigned > 0);
    assert_true(dom_info(f, d1, &info));
    assert_string_equal(info.pool, "p1");
    assert_string_equal(info.owner, "alice");
    assert_string_equal(info.template_name, "base");
    assert_int_equal(info.vcpus, 1);
    assert_int_equal(info.memory_mib, 128);
    assert_int_equal(info.state, VIRT_STATE_RUNNING);
    assert_true(overlay_exists(f, d1));
    assert_int_equal(overlay_capacity(d1), BASE_SIZE);

    claim_ok(f, "alice", "p1", again);
    assert_string_equal(again, d1);
    assert_int_equal(n_rows(f, "p1"), 1);

    claim_ok(f, "bob", "", d2);
    assert_string_equal(d2, "vdi-p1-0002");
    assert_string_equal(row(f, d2).owner, "bob");
    assert_string_equal(row(f, d1).owner, "alice");

    assert_int_equal(claim(f, "carol", "", d3, &err), -EAGAIN);
    assert_contains(err.text, "'p1'");
    assert_int_equal(n_rows(f, "p1"), 2);
    assert_int_equal(metric_now(f, "vdi_provision_seconds_count"), 2);

    /* a desktop that was stopped is started again by the next claim */
    assert_ok(pools_desktop_stop(f->pools, d1, &err), err);
    assert_power(f, d1, VIRT_STATE_SHUTOFF);
    claim_ok(f, "alice", "", again);
    assert_string_equal(again, d1);
    assert_power(f, d1, VIRT_STATE_RUNNING);
}

static void test_claim_floating(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct virt_domain_info info;
    char d1[STORE_DESKTOP_MAX + 1], d2[STORE_DESKTOP_MAX + 1];
    char uuid_before[UUID_LEN], uuid_after[UUID_LEN];

    add_pool_for(f, "fl", STORE_POOL_FLOATING, STORE_LOGOFF_RESET, 1, "alice bob");

    claim_ok(f, "alice", "", d1);
    assert_string_equal(row(f, d1).owner, "alice");
    assert_power(f, d1, VIRT_STATE_RUNNING);
    assert_int_equal(claim(f, "bob", "", d2, &err), -EAGAIN);

    overlay_mark(d1); /* alice's changes */
    domain_uuid(d1, uuid_before);
    begin(f, 1, "alice", d1, "192.0.2.1");
    assert_int_equal(metric_now(f, "vdi_sessions"), 1);
    leave(f, 1);
    assert_int_equal(metric_now(f, "vdi_sessions"), 0);

    struct store_desktop d = row(f, d1);
    assert_string_equal(d.owner, "");
    assert_int_equal(d.assigned, 0);
    assert_int_equal(d.state, STORE_DESKTOP_READY);
    assert_int_equal(overlay_capacity(d1), BASE_SIZE); /* back to the template */
    domain_uuid(d1, uuid_after);
    assert_string_not_equal(uuid_before, uuid_after);
    assert_true(dom_info(f, d1, &info));
    assert_string_equal(info.owner, "");

    claim_ok(f, "bob", "", d2);
    assert_string_equal(d2, d1);
    assert_string_equal(row(f, d2).owner, "bob");
    assert_true(dom_info(f, d2, &info));
    assert_string_equal(info.owner, "bob");
    assert_power(f, d2, VIRT_STATE_RUNNING);
    assert_int_equal(n_rows(f, "fl"), 1);

    /* the connection was recorded and closed (as were the claims' own) */
    struct store_session one;
    assert_int_equal(store_session_get(f->env.store, 1, &one), 0);
    assert_string_equal(one.user, "alice");
    assert_string_equal(one.pool, "fl");
    assert_string_equal(one.desktop, d1);
    assert_true(one.ended > 0);
    struct store_session *ss = NULL;
    size_t n = 0;
    assert_int_equal(store_session_list(f->env.store, false, 0, &ss, &n), 0);
    assert_int_equal(n, 3); /* alice's claim, connection 1, bob's claim */
    free(ss);
}

/* ---- logoff actions of dedicated pools ---- */

/* alice's desktop in a pool with that logoff action, after one session. */
static void logoff_with(struct fx *f, enum store_logoff logoff, char *desktop,
                        char uuid_before[UUID_LEN])
{
    add_pool_for(f, "p1", STORE_POOL_DEDICATED, logoff, 3, "alice");
    claim_ok(f, "alice", "", desktop);
    overlay_mark(desktop);
    domain_uuid(desktop, uuid_before);
    begin(f, 7, "alice", desktop, "192.0.2.1");
    leave(f, 7);
}

static void test_logoff_keep(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1], before[UUID_LEN], after[UUID_LEN];

    logoff_with(f, STORE_LOGOFF_KEEP, d, before);
    assert_power(f, d, VIRT_STATE_RUNNING);
    assert_string_equal(row(f, d).owner, "alice");
    assert_int_equal(overlay_capacity(d), MARK_CAPACITY);
    domain_uuid(d, after);
    assert_string_equal(before, after);
}

static void test_logoff_shutdown(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1], again[STORE_DESKTOP_MAX + 1], before[UUID_LEN];

    logoff_with(f, STORE_LOGOFF_SHUTDOWN, d, before);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    assert_string_equal(row(f, d).owner, "alice");
    assert_int_equal(overlay_capacity(d), MARK_CAPACITY);

    /* two clients: the action runs when the last one leaves */
    claim_ok(f, "alice", "", again);
    assert_string_equal(again, d);
    assert_power(f, d, VIRT_STATE_RUNNING);
    begin(f, 8, "alice", d, "192.0.2.1");
    begin(f, 9, "alice", d, "192.0.2.2");
    leave(f, 8);
    assert_power(f, d, VIRT_STATE_RUNNING);
    leave(f, 9);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    leave(f, 9); /* unknown by now: nothing */
}

static void test_logoff_suspend(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1], again[STORE_DESKTOP_MAX + 1], before[UUID_LEN];

    logoff_with(f, STORE_LOGOFF_SUSPEND, d, before);
    assert_power(f, d, VIRT_STATE_SAVED);
    assert_string_equal(row(f, d).owner, "alice");
    claim_ok(f, "alice", "", again); /* resumes */
    assert_string_equal(again, d);
    assert_power(f, d, VIRT_STATE_RUNNING);
    assert_int_equal(overlay_capacity(d), MARK_CAPACITY);
}

static void test_logoff_reset(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1], before[UUID_LEN], after[UUID_LEN];
    struct virt_domain_info info;

    logoff_with(f, STORE_LOGOFF_RESET, d, before);
    struct store_desktop r = row(f, d);
    assert_string_equal(r.owner, "alice"); /* dedicated: still hers */
    assert_int_equal(r.state, STORE_DESKTOP_READY);
    assert_int_equal(overlay_capacity(d), BASE_SIZE);
    domain_uuid(d, after);
    assert_string_not_equal(before, after);
    assert_true(dom_info(f, d, &info));
    assert_string_equal(info.owner, "alice");
    assert_int_not_equal(info.state, VIRT_STATE_RUNNING);
}

/* ---- admission control ---- */

/* Pool p1 of 2-vCPU desktops on a host where cpu_overcommit allows 2 of them running. */
static void admission_setup(struct fx *f, enum store_pool_kind kind)
{
    struct store_pool p = pool_spec(
        "p1", kind, kind == STORE_POOL_FLOATING ? STORE_LOGOFF_RESET : STORE_LOGOFF_KEEP, 5, 0);
    p.vcpus = 2;
    assert_true(f->host.cpus > 0);
    fx_open_pools(f, 5.0 / f->host.cpus); /* 5 vCPUs: two desktops, not three */
    add_pool_spec(f, &p);
    entitle(f, "p1", STORE_ENTITLE_USER, "alice");
    entitle(f, "p1", STORE_ENTITLE_USER, "bob");
    entitle(f, "p1", STORE_ENTITLE_USER, "carol");
}

static void test_admission(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char a[STORE_DESKTOP_MAX + 1], b[STORE_DESKTOP_MAX + 1], c[STORE_DESKTOP_MAX + 1];

    admission_setup(f, STORE_POOL_DEDICATED);
    assert_int_equal(metric_now(f, "vdi_admission_refused_total"), 0);
    claim_ok(f, "alice", "", a);
    claim_ok(f, "bob", "", b);
    assert_int_equal(metric_now(f, "vdi_running_vcpus"), 4);

    assert_int_equal(claim(f, "carol", "", c, &err), -ENOSPC);
    assert_contains(err.text, "capacity");
    assert_int_equal(metric_now(f, "vdi_admission_refused_total"), 1);
    assert_power(f, "vdi-p1-0003", VIRT_STATE_SHUTOFF);
    assert_int_equal(metric_now(f, "vdi_running_vcpus"), 4);

    /* room again once one stops */
    assert_ok(pools_desktop_stop(f->pools, a, &err), err);
    claim_ok(f, "carol", "", c);
    assert_string_equal(c, "vdi-p1-0003");
    assert_power(f, c, VIRT_STATE_RUNNING);
    assert_int_equal(pools_desktop_start(f->pools, a, &err), -ENOSPC);
    assert_int_equal(metric_now(f, "vdi_admission_refused_total"), 2);
}

/* A floating desktop is assigned only while used: one that could not start is not kept. */
static void test_admission_floating_released(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char a[STORE_DESKTOP_MAX + 1], b[STORE_DESKTOP_MAX + 1], c[STORE_DESKTOP_MAX + 1];

    admission_setup(f, STORE_POOL_FLOATING);
    claim_ok(f, "alice", "", a);
    claim_ok(f, "bob", "", b);
    assert_int_equal(claim(f, "carol", "", c, &err), -ENOSPC);
    assert_int_equal(n_rows(f, "p1"), 3);
    assert_string_equal(row(f, "vdi-p1-0003").owner, "");
}

/* ---- spares ---- */

static size_t free_running(struct fx *f, const char *pool)
{
    struct store_desktop *ds = NULL;
    size_t n = 0, count = 0;

    assert_int_equal(store_desktop_list(f->env.store, pool, &ds, &n), 0);
    for (size_t i = 0; i < n; i++)
        count += !ds[i].owner[0] && ds[i].state == STORE_DESKTOP_READY &&
                 power(f, ds[i].name) == VIRT_STATE_RUNNING;
    free(ds);
    return count;
}

static void test_spares(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char a[STORE_DESKTOP_MAX + 1], b[STORE_DESKTOP_MAX + 1];

    add_pool(f, "sp", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 3, 2);
    entitle(f, "sp", STORE_ENTITLE_USER, "alice");
    entitle(f, "sp", STORE_ENTITLE_USER, "bob");

    pools_maintain(f->pools);
    assert_int_equal(n_rows(f, "sp"), 2);
    assert_int_equal(free_running(f, "sp"), 2);
    assert_int_equal(metric_now(f, "vdi_provision_seconds_count"), 2);
    pools_maintain(f->pools); /* nothing to do */
    assert_int_equal(n_rows(f, "sp"), 2);

    /* a running spare is taken before a stopped one, and nothing new is made */
    assert_ok(pools_desktop_stop(f->pools, "vdi-sp-0001", &err), err);
    claim_ok(f, "alice", "", a);
    assert_string_equal(a, "vdi-sp-0002");
    assert_int_equal(n_rows(f, "sp"), 2);
    assert_int_equal(metric_now(f, "vdi_provision_seconds_count"), 2);
    assert_int_equal(free_running(f, "sp"), 0);

    /* topped up: the stopped spare starts, one more is made */
    pools_maintain(f->pools);
    assert_int_equal(free_running(f, "sp"), 2);
    assert_int_equal(n_rows(f, "sp"), 3);
    assert_power(f, "vdi-sp-0001", VIRT_STATE_RUNNING);

    /* max_desktops caps it */
    claim_ok(f, "bob", "", b);
    assert_int_equal(n_rows(f, "sp"), 3);
    pools_maintain(f->pools);
    assert_int_equal(n_rows(f, "sp"), 3);
    assert_int_equal(free_running(f, "sp"), 1);
    assert_int_equal(metric_now(f, "vdi_provision_seconds_count"), 3);
}

/* ---- reconciliation ---- */

static void reconcile_ok(struct fx *f)
{
    assert_int_equal(pools_reconcile(f->pools), 0);
}

static void test_reconcile_provisioning_rolled_back(void **state)
{
    struct fx *f = *state;
    struct virt_error verr = {""};

    add_pool(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    add_row(f, "vdi-p1-0001", "p1", "alice", STORE_DESKTOP_PROVISIONING); /* nothing made */
    add_row(f, "vdi-p1-0002", "p1", "", STORE_DESKTOP_PROVISIONING);      /* overlay only */
    assert_int_equal(virt_overlay_create(f->env.virt, "vdi-p1-0002", &f->vt, NULL, 0, &verr), 0);

    reconcile_ok(f);
    assert_false(row_exists(f, "vdi-p1-0001"));
    assert_false(row_exists(f, "vdi-p1-0002"));
    assert_false(overlay_exists(f, "vdi-p1-0002"));
}

static void test_reconcile_provisioning_finished(void **state)
{
    struct fx *f = *state;

    add_pool(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    make_domain(f, "vdi-p1-0001", "p1", "alice");
    add_row(f, "vdi-p1-0001", "p1", "alice", STORE_DESKTOP_PROVISIONING);

    reconcile_ok(f);
    struct store_desktop d = row(f, "vdi-p1-0001");
    assert_int_equal(d.state, STORE_DESKTOP_READY);
    assert_string_equal(d.owner, "alice");
    assert_power(f, "vdi-p1-0001", VIRT_STATE_SHUTOFF);
    assert_true(overlay_exists(f, "vdi-p1-0001"));
}

static void test_reconcile_resetting(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1], before[UUID_LEN], after[UUID_LEN];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "alice");
    claim_ok(f, "alice", "", d);
    overlay_mark(d);
    domain_uuid(d, before);
    assert_int_equal(store_desktop_set_state(f->env.store, d, STORE_DESKTOP_RESETTING), 0);

    reconcile_ok(f);
    struct store_desktop r = row(f, d);
    assert_int_equal(r.state, STORE_DESKTOP_READY);
    assert_string_equal(r.owner, "alice");
    assert_int_equal(overlay_capacity(d), BASE_SIZE);
    domain_uuid(d, after);
    assert_string_not_equal(before, after);
}

static void test_reconcile_deleting(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "alice");
    claim_ok(f, "alice", "", d);
    assert_int_equal(store_desktop_set_owner(f->env.store, d, "alice", ""), 0);
    assert_int_equal(store_desktop_set_state(f->env.store, d, STORE_DESKTOP_DELETING), 0);

    reconcile_ok(f);
    assert_false(row_exists(f, d));
    assert_power(f, d, VIRT_STATE_MISSING);
    assert_false(overlay_exists(f, d));
}

static void test_reconcile_stray_domains(void **state)
{
    struct fx *f = *state;
    struct virt_domain_info info;

    add_pool(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    make_domain(f, "vdi-gone-0001", "gone", "");  /* free, unknown pool: removed */
    make_domain(f, "vdi-p1-0007", "p1", "alice"); /* owned, known pool: adopted */
    make_domain(f, "vdi-old-0001", "old", "bob"); /* owned, unknown pool: left alone */
    make_domain(f, "vdi-p1-0008", "p1", "");      /* free, known pool: adopted */

    reconcile_ok(f);
    assert_power(f, "vdi-gone-0001", VIRT_STATE_MISSING);
    assert_false(overlay_exists(f, "vdi-gone-0001"));

    struct store_desktop d = row(f, "vdi-p1-0007");
    assert_int_equal(d.state, STORE_DESKTOP_READY);
    assert_string_equal(d.owner, "alice");
    assert_string_equal(d.pool, "p1");
    assert_string_equal(row(f, "vdi-p1-0008").owner, "");

    assert_true(dom_info(f, "vdi-old-0001", &info));
    assert_string_equal(info.owner, "bob");
    assert_true(overlay_exists(f, "vdi-old-0001"));
    assert_false(row_exists(f, "vdi-old-0001"));
}

static void test_reconcile_orphan_overlay(void **state)
{
    struct fx *f = *state;
    struct virt_error verr = {""};

    add_pool(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    assert_int_equal(virt_overlay_create(f->env.virt, "vdi-p1-0042", &f->vt, NULL, 0, &verr), 0);
    reconcile_ok(f);
    assert_false(overlay_exists(f, "vdi-p1-0042"));
}

static void test_reconcile_domain_redefined(void **state)
{
    struct fx *f = *state;
    struct virt_error verr = {""};
    struct virt_domain_info info;
    char d[STORE_DESKTOP_MAX + 1];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "alice");
    claim_ok(f, "alice", "", d);
    overlay_mark(d);
    assert_int_equal(virt_desktop_undefine(f->env.virt, d, &verr), 0);
    assert_power(f, d, VIRT_STATE_MISSING);

    reconcile_ok(f);
    assert_true(dom_info(f, d, &info));
    assert_string_equal(info.owner, "alice");
    assert_string_equal(info.pool, "p1");
    assert_int_equal(overlay_capacity(d), MARK_CAPACITY); /* on her disk, not a new one */
    assert_string_equal(row(f, d).owner, "alice");
}

static void test_reconcile_lost_disk(void **state)
{
    struct fx *f = *state;

    add_pool(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    add_row(f, "vdi-p1-0001", "p1", "", STORE_DESKTOP_READY);
    add_row(f, "vdi-p1-0002", "p1", "alice", STORE_DESKTOP_READY);

    reconcile_ok(f);
    assert_false(row_exists(f, "vdi-p1-0001"));                /* free: dropped */
    assert_string_equal(row(f, "vdi-p1-0002").owner, "alice"); /* owned: made again */
    assert_power(f, "vdi-p1-0002", VIRT_STATE_SHUTOFF);
    assert_int_equal(overlay_capacity("vdi-p1-0002"), BASE_SIZE);
}

/* A floating desktop whose connection ended goes back to the pool at a restart; one with
 * an open session row (its vdi-session may re-attach) stays, and the row can re-attach
 * with its token's hash only. */
static void test_reconcile_floating_released(void **state)
{
    struct fx *f = *state;
    struct virt_domain_info info;
    char d[STORE_DESKTOP_MAX + 1], e[STORE_DESKTOP_MAX + 1];
    struct store_session row_back;
    struct pools_connection c = connection(3, "bob", "192.0.2.1");
    struct pools_error err = {"", ""};

    add_pool_for(f, "fl", STORE_POOL_FLOATING, STORE_LOGOFF_RESET, 2, "alice bob");
    claim_ok(f, "alice", "", d);
    overlay_mark(d);
    snprintf(c.token_hash, sizeof(c.token_hash), "%064d", 7);
    assert_ok(pools_claim(f->pools, &c, "", e, sizeof(e), &err), err);
    overlay_mark(e);

    /* the broker "restarts": the connection table is gone, the store and libvirt stay */
    fx_open_pools(f, 1000);
    reconcile_ok(f);
    struct store_desktop r = row(f, d);
    assert_string_equal(r.owner, "");
    assert_int_equal(r.state, STORE_DESKTOP_READY);
    assert_int_equal(overlay_capacity(d), BASE_SIZE);
    assert_true(dom_info(f, d, &info));
    assert_string_equal(info.owner, "");

    assert_string_equal(row(f, e).owner, "bob");
    assert_int_equal(overlay_capacity(e), MARK_CAPACITY);
    assert_int_equal(pools_session_reattach(f->pools, 3, "wrong", &row_back), -EPERM);
    assert_int_equal(pools_session_reattach(f->pools, 4, c.token_hash, &row_back), -ENOENT);
    assert_int_equal(pools_session_reattach(f->pools, 3, c.token_hash, &row_back), 0);
    assert_string_equal(row_back.desktop, e);
    assert_int_equal(pools_session_reattach(f->pools, 3, c.token_hash, &row_back), -EBUSY);
    assert_int_equal(metric_now(f, "vdi_sessions"), 1);

    /* bob's logoff waits for him; gone, the logoff frees the desktop */
    assert_int_equal(pools_logoff(f->pools, e, "bob"), 0);
    assert_string_equal(row(f, e).owner, "bob");
    pools_session_end(f->pools, 3);
    assert_int_equal(pools_session_reattach(f->pools, 3, c.token_hash, &row_back), -EPERM);
    assert_int_equal(pools_logoff(f->pools, e, "carol"), 0); /* not hers: nothing */
    assert_string_equal(row(f, e).owner, "bob");
    assert_int_equal(pools_logoff(f->pools, e, "bob"), 0);
    assert_string_equal(row(f, e).owner, "");
}

/* The same rule for a floating desktop the store lost: adopted, then released. */
static void test_reconcile_stray_floating_released(void **state)
{
    struct fx *f = *state;
    struct virt_domain_info info;

    add_pool(f, "fl", STORE_POOL_FLOATING, STORE_LOGOFF_RESET, 2, 0);
    make_domain(f, "vdi-fl-0001", "fl", "alice");
    overlay_mark("vdi-fl-0001");

    reconcile_ok(f);
    struct store_desktop r = row(f, "vdi-fl-0001");
    assert_int_equal(r.state, STORE_DESKTOP_READY);
    assert_string_equal(r.owner, "");
    assert_int_equal(overlay_capacity("vdi-fl-0001"), BASE_SIZE);
    assert_true(dom_info(f, "vdi-fl-0001", &info));
    assert_string_equal(info.owner, "");
}

static void test_reconcile_owned_untouched(void **state)
{
    struct fx *f = *state;
    struct virt_error verr = {""};
    struct virt_domain_info info;
    char a[STORE_DESKTOP_MAX + 1], b[STORE_DESKTOP_MAX + 1], before[UUID_LEN], after[UUID_LEN];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "alice bob");
    claim_ok(f, "alice", "", a);
    claim_ok(f, "bob", "", b);
    overlay_mark(a);
    domain_uuid(a, before);
    /* bob's metadata says someone else: the store wins, nothing is remade */
    assert_int_equal(virt_desktop_set_owner(f->env.virt, b, "mallory", &verr), 0);

    reconcile_ok(f);
    reconcile_ok(f); /* and again: nothing left to do */
    assert_power(f, a, VIRT_STATE_RUNNING);
    assert_string_equal(row(f, a).owner, "alice");
    assert_int_equal(row(f, a).state, STORE_DESKTOP_READY);
    assert_int_equal(overlay_capacity(a), MARK_CAPACITY);
    domain_uuid(a, after);
    assert_string_equal(before, after);

    assert_true(dom_info(f, b, &info));
    assert_string_equal(info.owner, "bob");
    assert_int_equal(info.state, VIRT_STATE_RUNNING);
    assert_int_equal(n_rows(f, "p1"), 2);
}

/* ---- administration: desktops and pools ---- */

static void test_admin_assign(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct virt_domain_info info;
    char d[STORE_DESKTOP_MAX + 1];

    add_pool(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 3, 1);
    entitle(f, "p1", STORE_ENTITLE_USER, "alice");
    pools_maintain(f->pools);
    assert_int_equal(n_rows(f, "p1"), 1);

    assert_ok(pools_desktop_assign(f->pools, "vdi-p1-0001", "alice", &err), err);
    assert_string_equal(row(f, "vdi-p1-0001").owner, "alice");
    assert_true(dom_info(f, "vdi-p1-0001", &info));
    assert_string_equal(info.owner, "alice");
    assert_ok(pools_desktop_assign(f->pools, "vdi-p1-0001", "alice", &err), err); /* same */
    assert_int_equal(pools_desktop_assign(f->pools, "vdi-p1-0001", "bob", &err), -EBUSY);
    assert_contains(err.text, "alice");
    assert_int_equal(pools_desktop_assign(f->pools, "vdi-p1-9999", "bob", &err), -ENOENT);
    assert_int_equal(pools_desktop_assign(f->pools, "vdi-p1-0001", "-bad", &err), -EINVAL);

    /* alice's next login finds it */
    claim_ok(f, "alice", "", d);
    assert_string_equal(d, "vdi-p1-0001");

    /* floating desktops are not assigned by hand */
    add_pool_for(f, "fl", STORE_POOL_FLOATING, STORE_LOGOFF_RESET, 2, "bob");
    claim_ok(f, "bob", "fl", d);
    assert_int_equal(pools_desktop_unassign(f->pools, d, &err), 0);
    assert_int_equal(pools_desktop_assign(f->pools, d, "bob", &err), -EINVAL);
    assert_string_equal(row(f, d).owner, "");
}

static void test_admin_unassign(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct virt_domain_info info;
    struct pools_desktop_info di;
    char d[STORE_DESKTOP_MAX + 1], b[STORE_DESKTOP_MAX + 1];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 1, "alice bob");
    claim_ok(f, "alice", "", d);
    begin(f, 11, "alice", d, "192.0.2.1");
    assert_ok(pools_desktop_get(f->pools, d, &di, &err), err);
    assert_int_equal(di.connected, 1);
    assert_int_equal(di.power, VIRT_STATE_RUNNING);
    assert_int_equal(pools_desktop_unassign(f->pools, d, &err), -EBUSY);
    assert_string_equal(row(f, d).owner, "alice");

    leave(f, 11);
    assert_ok(pools_desktop_unassign(f->pools, d, &err), err);
    assert_string_equal(row(f, d).owner, "");
    assert_true(dom_info(f, d, &info));
    assert_string_equal(info.owner, "");
    assert_ok(pools_desktop_unassign(f->pools, d, &err), err); /* free already */

    claim_ok(f, "bob", "", b); /* pool of one: bob gets it now */
    assert_string_equal(b, d);
}

static void test_admin_power(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char d[STORE_DESKTOP_MAX + 1], before[UUID_LEN], after[UUID_LEN];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 2, "alice");
    claim_ok(f, "alice", "", d);
    assert_ok(pools_desktop_stop(f->pools, d, &err), err);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    assert_ok(pools_desktop_stop(f->pools, d, &err), err);
    assert_ok(pools_desktop_start(f->pools, d, &err), err);
    assert_power(f, d, VIRT_STATE_RUNNING);
    assert_ok(pools_desktop_start(f->pools, d, &err), err);

    overlay_mark(d);
    domain_uuid(d, before);
    begin(f, 21, "alice", d, "192.0.2.1");
    assert_int_equal(pools_desktop_reset(f->pools, d, &err), -EBUSY);
    assert_int_equal(overlay_capacity(d), MARK_CAPACITY);
    leave(f, 21);

    assert_ok(pools_desktop_reset(f->pools, d, &err), err);
    assert_int_equal(overlay_capacity(d), BASE_SIZE);
    domain_uuid(d, after);
    assert_string_not_equal(before, after);
    assert_string_equal(row(f, d).owner, "alice");
    assert_int_equal(row(f, d).state, STORE_DESKTOP_READY);

    /* the test driver cannot hand out a display fd: the user never sees libvirt's words */
    int fd = -1;
    int r = pools_open_display(f->pools, d, &fd, &err);
    if (r == 0)
        close(fd);
    else {
        assert_contains(err.text, "server log");
        assert_null(strstr(err.text, "libvirt"));
        assert_contains(err.log, d);
    }

    assert_int_equal(pools_desktop_start(f->pools, "vdi-p1-0099", &err), -ENOENT);
    assert_int_equal(pools_desktop_stop(f->pools, "vdi-p1-0099", &err), -ENOENT);
    assert_int_equal(pools_desktop_reset(f->pools, "vdi-p1-0099", &err), -ENOENT);

    /* a desktop in flight is not touched */
    assert_int_equal(store_desktop_set_state(f->env.store, d, STORE_DESKTOP_RESETTING), 0);
    assert_int_equal(pools_desktop_start(f->pools, d, &err), -EBUSY);
}

static void test_admin_pool_delete(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct store_entitlement *es = NULL;
    struct store_pool got;
    size_t n = 0;
    char d[STORE_DESKTOP_MAX + 1];

    add_pool(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 3, 1);
    entitle(f, "p1", STORE_ENTITLE_USER, "alice");
    pools_maintain(f->pools); /* one free spare */
    claim_ok(f, "alice", "", d);
    pools_maintain(f->pools); /* another spare */
    assert_int_equal(n_rows(f, "p1"), 2);

    assert_int_equal(pools_pool_delete(f->pools, "p1", &err), -EBUSY);
    assert_contains(err.text, d);
    assert_int_equal(n_rows(f, "p1"), 2);
    assert_power(f, d, VIRT_STATE_RUNNING);

    assert_ok(pools_desktop_unassign(f->pools, d, &err), err);
    assert_ok(pools_pool_delete(f->pools, "p1", &err), err);
    assert_int_equal(store_pool_get(f->env.store, "p1", &got), -ENOENT);
    assert_int_equal(n_rows(f, NULL), 0);
    assert_power(f, "vdi-p1-0001", VIRT_STATE_MISSING);
    assert_power(f, "vdi-p1-0002", VIRT_STATE_MISSING);
    assert_false(overlay_exists(f, "vdi-p1-0001"));
    assert_false(overlay_exists(f, "vdi-p1-0002"));
    assert_int_equal(store_entitlement_list(f->env.store, NULL, &es, &n), 0);
    assert_int_equal(n, 0);
    free(es);
    assert_int_equal(pools_pool_delete(f->pools, "p1", &err), -ENOENT);
}

/* ---- usage ---- */

/* alice's totals in pool over [0, now + ahead): open intervals count up to now + ahead. */
static struct store_usage_row usage_of(struct fx *f, const char *user, int64_t ahead)
{
    struct store_usage_row *rows = NULL, ret = {.vcpu_seconds = 0};
    int64_t later = (int64_t)time(NULL) + ahead;
    size_t n = 0;

    assert_int_equal(store_usage_report(f->env.store, 0, later, later, user, NULL, &rows, &n), 0);
    assert_true(n <= 1);
    if (n == 1)
        ret = rows[0];
    free(rows);
    return ret;
}

static void test_usage(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    struct store_usage_row u;
    char d[STORE_DESKTOP_MAX + 1];

    add_pool(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 3, 1);
    entitle(f, "p1", STORE_ENTITLE_USER, "alice");
    pools_maintain(f->pools); /* a running spare: its time is nobody's */
    u = usage_of(f, "", 100);
    assert_true(u.vcpu_seconds >= 98 && u.vcpu_seconds <= 102);

    claim_ok(f, "alice", "", d); /* takes the spare: from now on hers */
    begin(f, 41, "alice", d, "192.0.2.1");
    u = usage_of(f, "alice", 100);
    assert_string_equal(u.pool, "p1");
    assert_true(u.vcpu_seconds >= 98 && u.vcpu_seconds <= 102);
    assert_true(u.memory_mib_seconds >= 98 * 128 && u.memory_mib_seconds <= 102 * 128);
    assert_true(u.connected_seconds >= 98 && u.connected_seconds <= 102);
    u = usage_of(f, "", 100);
    assert_true(u.vcpu_seconds <= 2);

    /* stopped and disconnected: nothing more counts */
    leave(f, 41);
    assert_ok(pools_desktop_stop(f->pools, d, &err), err);
    u = usage_of(f, "alice", 100);
    assert_true(u.vcpu_seconds <= 2);
    assert_true(u.connected_seconds <= 2);
}

/* ---- metrics ---- */

static void test_metrics(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char a[STORE_DESKTOP_MAX + 1], b[STORE_DESKTOP_MAX + 1];

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, "alice bob");
    add_pool(f, "p2", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 5, 0);
    claim_ok(f, "alice", "", a);
    claim_ok(f, "bob", "", b);
    assert_ok(pools_desktop_stop(f->pools, b, &err), err);
    pools_count_login(f->pools, true);
    pools_count_login(f->pools, true);
    pools_count_login(f->pools, false);
    begin(f, 31, "alice", a, "192.0.2.1");

    char *text = metrics(f);
    assert_int_equal(metric(text, "vdi_desktops{pool=\"p1\",state=\"running\"}"), 1);
    assert_int_equal(metric(text, "vdi_desktops{pool=\"p1\",state=\"shutoff\"}"), 1);
    assert_int_equal(metric(text, "vdi_desktops{pool=\"p2\",state=\"running\"}"), 0);
    assert_int_equal(metric(text, "vdi_desktops_assigned{pool=\"p1\"}"), 2);
    assert_int_equal(metric(text, "vdi_sessions"), 1);
    assert_int_equal(metric(text, "vdi_logins_total{result=\"ok\"}"), 2);
    assert_int_equal(metric(text, "vdi_logins_total{result=\"failed\"}"), 1);
    assert_int_equal(metric(text, "vdi_provision_seconds_count"), 2);
    assert_int_equal(metric(text, "vdi_provision_seconds_bucket{le=\"+Inf\"}"), 2);
    assert_int_equal(metric(text, "vdi_provision_seconds_bucket{le=\"120\"}"), 2);
    assert_int_equal(metric(text, "vdi_provision_failed_total"), 0);
    assert_int_equal(metric(text, "vdi_host_cpus"), f->host.cpus);
    assert_int_equal(metric(text, "vdi_running_vcpus"), 1);
    assert_int_equal(metric(text, "vdi_running_memory_mib"), 128);
    assert_int_equal(metric(text, "vdi_host_memory_mib"), (long long)f->host.memory_mib);
    assert_contains(text, "# TYPE vdi_provision_seconds histogram\n");
    free(text);
    leave(f, 31);
}

/* ---- concurrency ---- */

struct claimer {
    struct fx *f;
    pthread_barrier_t *start;
    const char *user;
    char desktop[STORE_DESKTOP_MAX + 1];
    struct pools_error err;
    int r;
};

static void *claimer_run(void *arg)
{
    struct claimer *c = arg;

    pthread_barrier_wait(c->start);
    c->r = claim(c->f, c->user, "", c->desktop, &c->err);
    return NULL;
}

/* Runs n claims at once; each must succeed unless may_fail. */
static void claim_together(struct fx *f, struct claimer *cs, size_t n, bool may_fail)
{
    pthread_barrier_t start;
    pthread_t t[8];

    assert_true(n <= 8);
    assert_int_equal(pthread_barrier_init(&start, NULL, (unsigned)n), 0);
    for (size_t i = 0; i < n; i++) {
        cs[i].f = f;
        cs[i].start = &start;
        assert_int_equal(pthread_create(&t[i], NULL, claimer_run, &cs[i]), 0);
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&start);
    for (size_t i = 0; i < n && !may_fail; i++)
        if (cs[i].r != 0)
            fail_msg("claim for %s: %d %s | %s", cs[i].user, cs[i].r, cs[i].err.text,
                     cs[i].err.log);
}

static void test_concurrent_users(void **state)
{
    struct fx *f = *state;
    struct claimer cs[4] = {
        {.user = "alice"}, {.user = "bob"}, {.user = "carol"}, {.user = "dave"}};

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 4, "alice bob carol dave");
    claim_together(f, cs, 4, false);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(row(f, cs[i].desktop).owner, cs[i].user);
        assert_power(f, cs[i].desktop, VIRT_STATE_RUNNING);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(cs[i].desktop, cs[k].desktop);
    }
    assert_int_equal(n_rows(f, "p1"), 4);
    assert_int_equal(metric_now(f, "vdi_provision_seconds_count"), 4);
}

static void test_concurrent_same_user(void **state)
{
    struct fx *f = *state;
    static const char *const users[] = {"alice", "bob", "carol", "dave", "erin"};

    add_pool_for(f, "p1", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, 10, "alice bob carol dave erin");
    for (size_t u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
        struct claimer cs[2] = {{.user = users[u]}, {.user = users[u]}};
        claim_together(f, cs, 2, false);
        assert_string_equal(cs[0].desktop, cs[1].desktop);
        assert_string_equal(row(f, cs[0].desktop).owner, users[u]);
        assert_int_equal(n_rows(f, "p1"), u + 1);
        assert_int_equal(metric_now(f, "vdi_provision_seconds_count"), (long long)u + 1);
    }
}

struct ender {
    struct fx *f;
    pthread_barrier_t *start;
    uint64_t session_id;
};

static void *ender_run(void *arg)
{
    struct ender *e = arg;

    pthread_barrier_wait(e->start);
    leave(e->f, e->session_id);
    return NULL;
}

/* alice logs in again while the logoff of her floating desktop runs. The claim either
 * comes first, and counts her as connected before the logoff can look (so the logoff
 * leaves the desktop alone), or waits for the logoff and then gets a desktop that is hers.
 * Either way she is given a running desktop the store says is hers. */
static void test_claim_during_logoff(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1];

    add_pool_for(f, "fl", STORE_POOL_FLOATING, STORE_LOGOFF_RESET, 2, "alice");
    for (uint64_t round = 1; round <= 20; round++) {
        pthread_barrier_t start;
        pthread_t t;
        struct ender e = {.f = f, .start = &start, .session_id = round};
        struct pools_error err = {"", ""};
        uint64_t again;
        int r;

        claim_ok(f, "alice", "", d);
        begin(f, round, "alice", d, "192.0.2.1");
        assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
        assert_int_equal(pthread_create(&t, NULL, ender_run, &e), 0);
        pthread_barrier_wait(&start);
        r = claim_connected(f, "alice", "", d, &again, &err);
        assert_int_equal(pthread_join(t, NULL), 0);
        pthread_barrier_destroy(&start);
        assert_ok(r, err);
        struct store_desktop now = row(f, d);
        if (power(f, d) != VIRT_STATE_RUNNING || strcmp(now.owner, "alice") != 0)
            fail_msg("round %d: alice was given %s, %s, which the store says belongs to '%s'",
                     (int)round, d, power(f, d) == VIRT_STATE_RUNNING ? "running" : "not running",
                     now.owner);
        /* log off again, for the next round */
        begin(f, 1000 + round, "alice", d, "192.0.2.1");
        pools_session_end(f->pools, again);
        leave(f, 1000 + round);
    }
}

/* Admission holds under concurrent starts: never more running than the limit allows, and
 * no refusal while there is room (a start in flight is counted once). */
static void test_concurrent_admission(void **state)
{
    struct fx *f = *state;

    admission_setup(f, STORE_POOL_DEDICATED);
    entitle(f, "p1", STORE_ENTITLE_USER, "dave");
    for (int round = 0; round < 30; round++) {
        struct claimer cs[4] = {
            {.user = "alice"}, {.user = "bob"}, {.user = "carol"}, {.user = "dave"}};
        struct pools_error err = {"", ""};
        int ok = 0;

        claim_together(f, cs, 4, true);
        for (size_t i = 0; i < 4; i++) {
            if (cs[i].r != 0 && cs[i].r != -ENOSPC)
                fail_msg("claim for %s: %d %s", cs[i].user, cs[i].r, cs[i].err.log);
            ok += cs[i].r == 0;
        }
        if (ok != 2 || metric_now(f, "vdi_running_vcpus") != 4)
            fail_msg("round %d: %d claims admitted, %lld vCPUs running (room for 2 and 4)", round,
                     ok, metric_now(f, "vdi_running_vcpus"));
        for (size_t i = 0; i < 4; i++)
            if (cs[i].r == 0)
                assert_ok(pools_desktop_stop(f->pools, cs[i].desktop, &err), err);
    }
}

#define fx_test(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_login),
        fx_test(test_choose_no_entitlement),
        fx_test(test_choose_direct),
        fx_test(test_choose_group),
        fx_test(test_choose_several),
        fx_test(test_choose_not_entitled),
        fx_test(test_choose_list),
        fx_test(test_choose_list_long),
        fx_test(test_template_validation),
        fx_test(test_template_delete),
        fx_test(test_pool_validation),
        fx_test(test_pool_update),
        fx_test(test_claim_dedicated),
        fx_test(test_claim_floating),
        fx_test(test_claim_during_logoff),
        fx_test(test_logoff_keep),
        fx_test(test_logoff_shutdown),
        fx_test(test_logoff_suspend),
        fx_test(test_logoff_reset),
        fx_test(test_admission),
        fx_test(test_admission_floating_released),
        fx_test(test_spares),
        fx_test(test_reconcile_provisioning_rolled_back),
        fx_test(test_reconcile_provisioning_finished),
        fx_test(test_reconcile_resetting),
        fx_test(test_reconcile_deleting),
        fx_test(test_reconcile_stray_domains),
        fx_test(test_reconcile_orphan_overlay),
        fx_test(test_reconcile_domain_redefined),
        fx_test(test_reconcile_lost_disk),
        fx_test(test_reconcile_floating_released),
        fx_test(test_reconcile_stray_floating_released),
        fx_test(test_reconcile_owned_untouched),
        fx_test(test_admin_assign),
        fx_test(test_admin_unassign),
        fx_test(test_admin_power),
        fx_test(test_admin_pool_delete),
        fx_test(test_usage),
        fx_test(test_metrics),
        fx_test(test_concurrent_users),
        fx_test(test_concurrent_same_user),
        fx_test(test_concurrent_admission),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
