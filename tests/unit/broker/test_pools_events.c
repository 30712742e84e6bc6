/* broker/pools-events.c: desktops that stop by themselves (pools_desktop_stopped), with the
 * real store (SQLite in a temporary directory) and libvirt's test driver (test:///default),
 * as test_pools.c. A stop "from outside" is done on a raw connection to the test driver
 * (virsh destroy / a guest powering off), then told to the pools the way the broker does:
 * pools_desktop_stopped(desktop, event). Back-off delays are milliseconds here. */
#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
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

#include "pools.h"

#include "pools-fixture.h"

#define BACKOFF_MS 150
#define TEXT_FAILED                                                                                \
    "Your desktop failed repeatedly and was stopped; your IT administrator has been told"

struct fx {
    struct pools_env env;
    struct pools *pools;
    virConnectPtr raw; /* "someone else" on the same test driver */
};

/* ---- fixture ---- */

static int open_pools(struct fx *f, double cpu_overcommit, int crash_limit)
{
    struct pools_options o = {
        .store = f->env.store,
        .virt = f->env.virt,
        .cpu_overcommit = cpu_overcommit,
        .memory_overcommit = 1000,
        .shutdown_timeout_s = 1,
        .crash_backoff_ms = BACKOFF_MS,
        .crash_limit = crash_limit,
    };
    pools_free(f->pools);
    f->pools = NULL;
    return pools_new(&o, &f->pools);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    pools_env_open(&f->env, "pev");
    assert_int_equal(open_pools(f, 1000, 0), 0);
    f->raw = virConnectOpen(POOLS_ENV_URI);
    assert_non_null(f->raw);
    pools_env_add_template(&f->env, f->pools);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    pools_free(f->pools);
    virConnectClose(f->raw);
    pools_env_close(&f->env);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static void add_pool(struct fx *f, const char *name, enum store_pool_kind kind,
                     enum store_logoff logoff, enum store_stop_action stop, int min_spare)
{
    struct pools_error err = {"", ""};
    struct store_pool p = {
        .template_name = "base",
        .vcpus = 1,
        .memory_mib = 128,
        .kind = kind,
        .min_spare = min_spare,
        .max_desktops = 4,
        .logoff = logoff,
        .disconnect_grace_s = 0,
        .stop_action = stop,
    };
    struct store_entitlement e = {.kind = STORE_ENTITLE_USER};

    snprintf(p.name, sizeof(p.name), "%s", name);
    assert_ok(pools_pool_add(f->pools, &p, &err), err);
    snprintf(e.pool, sizeof(e.pool), "%s", name);
    for (size_t i = 0; i < 2; i++) {
        snprintf(e.name, sizeof(e.name), "%s", i ? "bob" : "alice");
        assert_ok(pools_entitlement_add(f->pools, &e, &err), err);
    }
}

static uint64_t next_id = 1000;

static int claim(struct fx *f, const char *user, const char *pool, char *desktop,
                 struct pools_error *err)
{
    struct pools_connection c = {
        .id = ++next_id, .session_id = next_id, .kind = STORE_SESSION_USER};
    int r;

    snprintf(c.user, sizeof(c.user), "%s", user);
    snprintf(c.client, sizeof(c.client), "192.0.2.7");
    r = pools_claim(f->pools, &c, pool, desktop, STORE_DESKTOP_MAX + 1, err);
    if (r == 0)
        pools_session_end(f->pools, c.id); /* the client left; no logoff action */
    return r;
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

#define assert_state(f, name, want)                                                                \
    assert_string_equal(store_desktop_state_to_string(row((f), (name)).state),                     \
                        store_desktop_state_to_string(want))

/* Someone else powers it off (virsh destroy; the test driver's guest shutdown is the
 * same), then the pools hear about it as from the broker. */
static void stop_outside(struct fx *f, const char *name, enum virt_event ev)
{
    virDomainPtr dom = virDomainLookupByName(f->raw, name);

    assert_non_null(dom);
    if (ev == VIRT_EVENT_SHUTDOWN)
        assert_int_equal(virDomainShutdown(dom), 0);
    else
        assert_int_equal(virDomainDestroy(dom), 0);
    virDomainFree(dom);
    pools_desktop_stopped(f->pools, name, ev);
}

/* The domain's UUID: a new one after a reset (undefined and defined again). */
static void uuid_of(struct fx *f, const char *name, char uuid[VIR_UUID_STRING_BUFLEN])
{
    virDomainPtr dom = virDomainLookupByName(f->raw, name);

    assert_non_null(dom);
    assert_int_equal(virDomainGetUUIDString(dom, uuid), 0);
    virDomainFree(dom);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* An open running interval of desktop (usage counts up to now + 100 s if so). */
static bool usage_running(struct fx *f, const char *user)
{
    struct store_usage_row *rows = NULL;
    int64_t later = (int64_t)time(NULL) + 100;
    size_t n = 0;
    bool running;

    assert_int_equal(store_usage_report(f->env.store, 0, later, later, user, NULL, &rows, &n), 0);
    running = n == 1 && rows[0].vcpu_seconds >= 90;
    free(rows);
    return running;
}

static char *metrics(struct fx *f)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);

    assert_non_null(m);
    assert_int_equal(pools_metrics_write(f->pools, m), 0);
    fclose(m);
    return buf;
}

/* stderr (the log) into a file while capturing. */
static int saved_stderr = -1;
static char capture_path[128];

static void capture_begin(struct fx *f)
{
    snprintf(capture_path, sizeof(capture_path), "%s/log.txt", f->env.dir);
    int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
}

static char *capture_end(void)
{
    static char buf[65536];
    assert_int_equal(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(saved_stderr);
    int fd = open(capture_path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    fputs(buf, stderr); /* still shown */
    return buf;
}

/* ---- stop actions ---- */

static void test_options(void **state)
{
    struct fx *f = *state;

    assert_int_equal(open_pools(f, 1000, 17), -EINVAL);
    assert_null(f->pools);
    assert_int_equal(open_pools(f, 1000, -1), -EINVAL);
    struct pools_options o = {.store = f->env.store,
                              .virt = f->env.virt,
                              .cpu_overcommit = 1,
                              .memory_overcommit = 1,
                              .crash_backoff_ms = -5};
    assert_int_equal(pools_new(&o, &f->pools), -EINVAL);
    o.crash_backoff_ms = 0;
    o.quick_stop_ms = -1;
    assert_int_equal(pools_new(&o, &f->pools), -EINVAL);
    o.quick_stop_ms = 0;
    o.crash_window_ms = -1;
    assert_int_equal(pools_new(&o, &f->pools), -EINVAL);
    o.crash_window_ms = 0; /* all defaults */
    assert_int_equal(pools_new(&o, &f->pools), 0);
}

static void test_stop_none(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1];

    add_pool(f, "p", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, STORE_STOP_NONE, 0);
    claim_ok(f, "alice", "p", d);
    assert_power(f, d, VIRT_STATE_RUNNING);
    assert_true(usage_running(f, "alice"));

    stop_outside(f, d, VIRT_EVENT_SHUTDOWN);
    assert_power(f, d, VIRT_STATE_SHUTOFF); /* left off */
    assert_state(f, d, STORE_DESKTOP_READY);
    assert_string_equal(row(f, d).owner, "alice");
    assert_false(usage_running(f, "alice")); /* the running interval ended */

    /* the next login starts it */
    char again[STORE_DESKTOP_MAX + 1];
    claim_ok(f, "alice", "p", again);
    assert_string_equal(again, d);
    assert_power(f, d, VIRT_STATE_RUNNING);

    /* destroyed from outside, or saved by someone: the same */
    stop_outside(f, d, VIRT_EVENT_DESTROYED);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    claim_ok(f, "alice", "p", again);
    assert_power(f, d, VIRT_STATE_RUNNING);

    /* events that are not stops, or of desktops that are not ours, change nothing */
    pools_desktop_stopped(f->pools, d, VIRT_EVENT_STARTED);
    pools_desktop_stopped(f->pools, "test", VIRT_EVENT_DESTROYED);
    pools_desktop_stopped(f->pools, "no-such-desktop", VIRT_EVENT_CRASHED);
    assert_power(f, d, VIRT_STATE_RUNNING);
}

static void test_stop_restart(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1];

    add_pool(f, "p", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, STORE_STOP_RESTART, 0);
    claim_ok(f, "alice", "p", d);
    stop_outside(f, d, VIRT_EVENT_SHUTDOWN);
    assert_power(f, d, VIRT_STATE_RUNNING); /* started again at once */
    assert_true(usage_running(f, "alice"));
    assert_string_equal(row(f, d).owner, "alice");
}

/* A guest that powers off right after each restart is a crash loop by another name. */
static void test_stop_restart_loop(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1];

    add_pool(f, "p", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, STORE_STOP_RESTART, 0);
    claim_ok(f, "alice", "p", d);
    stop_outside(f, d, VIRT_EVENT_SHUTDOWN); /* after a long run: just the policy */
    assert_power(f, d, VIRT_STATE_RUNNING);
    stop_outside(f, d, VIRT_EVENT_SHUTDOWN); /* right after the restart: counts (1) */
    assert_power(f, d, VIRT_STATE_RUNNING);
    stop_outside(f, d, VIRT_EVENT_SHUTDOWN); /* 2: backed off */
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    pools_maintain(f->pools);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    sleep_ms(BACKOFF_MS + 50);
    pools_maintain(f->pools);
    assert_power(f, d, VIRT_STATE_RUNNING);
    stop_outside(f, d, VIRT_EVENT_SHUTDOWN); /* 3: failed */
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    assert_state(f, d, STORE_DESKTOP_FAILED);
}

static void test_stop_reset_dedicated(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1];
    char before[VIR_UUID_STRING_BUFLEN], after[VIR_UUID_STRING_BUFLEN];

    add_pool(f, "p", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, STORE_STOP_RESET, 0);
    claim_ok(f, "alice", "p", d);
    uuid_of(f, d, before);
    stop_outside(f, d, VIRT_EVENT_SHUTDOWN);
    uuid_of(f, d, after);
    assert_string_not_equal(before, after); /* made again: a fresh disk */
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    assert_state(f, d, STORE_DESKTOP_READY);
    assert_string_equal(row(f, d).owner, "alice"); /* still hers */
}

static void test_stop_reset_floating(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1], e[STORE_DESKTOP_MAX + 1];
    char before[VIR_UUID_STRING_BUFLEN], after[VIR_UUID_STRING_BUFLEN];
    struct virt_domain_info *doms = NULL;
    struct virt_error verr = {""};
    size_t n = 0;

    add_pool(f, "fl", STORE_POOL_FLOATING, STORE_LOGOFF_RESET, STORE_STOP_RESET, 0);
    claim_ok(f, "alice", "fl", d);
    assert_string_equal(row(f, d).owner, "alice");
    uuid_of(f, d, before);
    stop_outside(f, d, VIRT_EVENT_DESTROYED);
    uuid_of(f, d, after);
    assert_string_not_equal(before, after);
    assert_string_equal(row(f, d).owner, ""); /* back to the pool, like a logoff */
    assert_int_equal(virt_list(f->env.virt, &doms, &n, &verr), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(doms[i].name, d) == 0)
            assert_string_equal(doms[i].owner, ""); /* the metadata too */
    free(doms);
    claim_ok(f, "bob", "fl", e); /* the next user gets it, clean */
    assert_string_equal(e, d);
}

/* ---- the pools' own stops ---- */

static void test_expected_stops_ignored(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char d[STORE_DESKTOP_MAX + 1], e[STORE_DESKTOP_MAX + 1];
    char before[VIR_UUID_STRING_BUFLEN], after[VIR_UUID_STRING_BUFLEN];

    add_pool(f, "p", STORE_POOL_DEDICATED, STORE_LOGOFF_SHUTDOWN, STORE_STOP_RESTART, 0);
    add_pool(f, "s", STORE_POOL_DEDICATED, STORE_LOGOFF_SUSPEND, STORE_STOP_RESET, 0);
    claim_ok(f, "alice", "p", d);

    /* admin stop: the event that follows is ours */
    assert_ok(pools_desktop_stop(f->pools, d, &err), err);
    pools_desktop_stopped(f->pools, d, VIRT_EVENT_SHUTDOWN);
    assert_power(f, d, VIRT_STATE_SHUTOFF); /* not restarted */

    /* the mark is used up: the next, real, stop gets the policy */
    assert_ok(pools_desktop_start(f->pools, d, &err), err);
    stop_outside(f, d, VIRT_EVENT_SHUTDOWN);
    assert_power(f, d, VIRT_STATE_RUNNING);

    /* a stop of a desktop that was off leaves no mark behind */
    assert_ok(pools_desktop_stop(f->pools, d, &err), err);
    pools_desktop_stopped(f->pools, d, VIRT_EVENT_SHUTDOWN);
    assert_ok(pools_desktop_stop(f->pools, d, &err), err); /* off already */
    assert_ok(pools_desktop_start(f->pools, d, &err), err);
    stop_outside(f, d, VIRT_EVENT_DESTROYED);
    assert_power(f, d, VIRT_STATE_RUNNING);

    /* logoff shutdown */
    assert_int_equal(pools_logoff(f->pools, d, "alice"), 0);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    pools_desktop_stopped(f->pools, d, VIRT_EVENT_SHUTDOWN);
    assert_power(f, d, VIRT_STATE_SHUTOFF);

    /* admin reset (power off, then a new domain) */
    assert_ok(pools_desktop_start(f->pools, d, &err), err);
    assert_ok(pools_desktop_reset(f->pools, d, &err), err);
    pools_desktop_stopped(f->pools, d, VIRT_EVENT_DESTROYED);
    assert_power(f, d, VIRT_STATE_SHUTOFF);

    /* logoff suspend (managed save), with stop_action reset: the disk stays */
    claim_ok(f, "alice", "s", e);
    uuid_of(f, e, before);
    assert_int_equal(pools_logoff(f->pools, e, "alice"), 0);
    assert_power(f, e, VIRT_STATE_SAVED);
    pools_desktop_stopped(f->pools, e, VIRT_EVENT_STOPPED);
    uuid_of(f, e, after);
    assert_string_equal(before, after);
    assert_power(f, e, VIRT_STATE_SAVED);

    /* an old event of a desktop that runs again is old news */
    claim_ok(f, "alice", "s", e);
    assert_power(f, e, VIRT_STATE_RUNNING);
    pools_desktop_stopped(f->pools, e, VIRT_EVENT_DESTROYED);
    uuid_of(f, e, after);
    assert_string_equal(before, after);
    assert_power(f, e, VIRT_STATE_RUNNING);

    /* nothing of this was counted as an unexpected stop but the two real ones */
    char *m = metrics(f);
    assert_contains(m, "vdi_desktop_stops_total{event=\"shutdown\"} 1\n");
    assert_contains(m, "vdi_desktop_stops_total{event=\"destroyed\"} 1\n");
    assert_contains(m, "vdi_desktop_stops_total{event=\"stopped\"} 0\n");
    free(m);
}

/* ---- crashes ---- */

static void test_crash_backoff_and_failed(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char d[STORE_DESKTOP_MAX + 1], e[STORE_DESKTOP_MAX + 1];

    add_pool(f, "p", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, STORE_STOP_NONE, 0);
    claim_ok(f, "alice", "p", d);

    /* 1st: restarted at once, whatever stop_action says */
    stop_outside(f, d, VIRT_EVENT_CRASHED);
    assert_power(f, d, VIRT_STATE_RUNNING);
    assert_true(usage_running(f, "alice"));

    /* 2nd: after the back-off, by the maintenance round; nobody sleeps */
    stop_outside(f, d, VIRT_EVENT_CRASHED);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    pools_maintain(f->pools);
    assert_power(f, d, VIRT_STATE_SHUTOFF); /* not yet */
    sleep_ms(BACKOFF_MS + 50);
    pools_maintain(f->pools);
    assert_power(f, d, VIRT_STATE_RUNNING);
    pools_maintain(f->pools); /* once */
    assert_power(f, d, VIRT_STATE_RUNNING);

    /* 3rd within the window: failed, told in the log and the metrics */
    capture_begin(f);
    stop_outside(f, d, VIRT_EVENT_CRASHED);
    char *log = capture_end();
    char want[128];
    snprintf(want, sizeof(want), "error: desktop failed name=%s crashes=3 within=600s", d);
    assert_contains(log, want);
    assert_state(f, d, STORE_DESKTOP_FAILED);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    assert_string_equal(row(f, d).owner, "alice"); /* dedicated: still hers */
    sleep_ms(BACKOFF_MS * 5);
    pools_maintain(f->pools);
    assert_power(f, d, VIRT_STATE_SHUTOFF); /* and nothing starts it */

    char *m = metrics(f);
    assert_contains(m, "# TYPE vdi_desktops_failed gauge\n");
    assert_contains(m, "vdi_desktops_failed{pool=\"p\"} 1\n");
    assert_contains(m, "# TYPE vdi_desktop_crashes_total counter\n");
    assert_contains(m, "vdi_desktop_crashes_total 3\n");
    assert_contains(m, "vdi_desktop_failures_total 1\n");
    assert_contains(m, "vdi_desktop_stops_total{event=\"crashed\"} 3\n");
    free(m);

    /* the user hears why */
    assert_int_equal(claim(f, "alice", "p", e, &err), -EIO);
    assert_string_equal(err.text, TEXT_FAILED);
    assert_power(f, d, VIRT_STATE_SHUTOFF);

    /* reconciliation leaves it alone */
    assert_int_equal(pools_reconcile(f->pools), 0);
    assert_state(f, d, STORE_DESKTOP_FAILED);
    assert_string_equal(row(f, d).owner, "alice");

    /* further events change nothing */
    pools_desktop_stopped(f->pools, d, VIRT_EVENT_CRASHED);
    assert_state(f, d, STORE_DESKTOP_FAILED);

    /* an admin start brings it back, with a clean slate */
    assert_ok(pools_desktop_start(f->pools, d, &err), err);
    assert_state(f, d, STORE_DESKTOP_READY);
    assert_power(f, d, VIRT_STATE_RUNNING);
    claim_ok(f, "alice", "p", e);
    assert_string_equal(e, d);
    stop_outside(f, d, VIRT_EVENT_CRASHED); /* a 1st crash again: at once */
    assert_power(f, d, VIRT_STATE_RUNNING);
    m = metrics(f);
    assert_contains(m, "vdi_desktops_failed{pool=\"p\"} 0\n");
    free(m);
}

static void test_failed_reset_clears(void **state)
{
    struct fx *f = *state;
    struct pools_error err = {"", ""};
    char d[STORE_DESKTOP_MAX + 1];

    assert_int_equal(open_pools(f, 1000, 1), 0); /* the first crash fails it */
    add_pool(f, "p", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, STORE_STOP_NONE, 0);
    claim_ok(f, "alice", "p", d);
    stop_outside(f, d, VIRT_EVENT_CRASHED);
    assert_state(f, d, STORE_DESKTOP_FAILED);
    assert_ok(pools_desktop_reset(f->pools, d, &err), err);
    assert_state(f, d, STORE_DESKTOP_READY);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    claim_ok(f, "alice", "p", d);
    assert_power(f, d, VIRT_STATE_RUNNING);
}

/* The user logs in during the back-off: the login starts it, the delayed restart then
 * has nothing to do. */
static void test_backoff_login_first(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1], e[STORE_DESKTOP_MAX + 1];

    add_pool(f, "p", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, STORE_STOP_NONE, 0);
    claim_ok(f, "alice", "p", d);
    stop_outside(f, d, VIRT_EVENT_CRASHED);
    stop_outside(f, d, VIRT_EVENT_CRASHED);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    claim_ok(f, "alice", "p", e);
    assert_string_equal(e, d);
    assert_power(f, d, VIRT_STATE_RUNNING);
    sleep_ms(BACKOFF_MS + 50);
    capture_begin(f);
    pools_maintain(f->pools);
    char *log = capture_end();
    if (strstr(log, "reason=backoff"))
        fail_msg("restarted a running desktop: %s", log);
    assert_power(f, d, VIRT_STATE_RUNNING);
}

/* Old crashes fall out of the window: a desktop that crashes now and then restarts. */
static void test_crash_window(void **state)
{
    struct fx *f = *state;
    struct pools_options o = {
        .store = f->env.store,
        .virt = f->env.virt,
        .cpu_overcommit = 1000,
        .memory_overcommit = 1000,
        .shutdown_timeout_s = 1,
        .crash_backoff_ms = BACKOFF_MS,
        .crash_window_ms = 300,
    };
    char d[STORE_DESKTOP_MAX + 1];

    pools_free(f->pools);
    f->pools = NULL;
    assert_int_equal(pools_new(&o, &f->pools), 0);
    add_pool(f, "p", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, STORE_STOP_NONE, 0);
    claim_ok(f, "alice", "p", d);
    for (int i = 0; i < 4; i++) {
        stop_outside(f, d, VIRT_EVENT_CRASHED);
        assert_power(f, d, VIRT_STATE_RUNNING); /* always the 1st in the window */
        sleep_ms(350);
    }
    assert_state(f, d, STORE_DESKTOP_READY);
}

/* Floating: a failed desktop goes back to the pool; its user gets another one. Spares
 * never start a failed one. */
static void test_failed_floating_and_spares(void **state)
{
    struct fx *f = *state;
    char d[STORE_DESKTOP_MAX + 1], e[STORE_DESKTOP_MAX + 1];
    struct store_desktop *ds = NULL;
    size_t n = 0;

    assert_int_equal(open_pools(f, 1000, 1), 0);
    add_pool(f, "fl", STORE_POOL_FLOATING, STORE_LOGOFF_RESET, STORE_STOP_RESET, 1);
    pools_maintain(f->pools); /* one spare */
    assert_int_equal(store_desktop_list(f->env.store, "fl", &ds, &n), 0);
    assert_int_equal(n, 1);
    snprintf(d, sizeof(d), "%s", ds[0].name);
    free(ds);
    assert_power(f, d, VIRT_STATE_RUNNING);

    /* the spare crashes: failed, and the next round makes another spare */
    stop_outside(f, d, VIRT_EVENT_CRASHED);
    assert_state(f, d, STORE_DESKTOP_FAILED);
    pools_maintain(f->pools);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    assert_int_equal(store_desktop_list(f->env.store, "fl", &ds, &n), 0);
    assert_int_equal(n, 2);
    free(ds);

    /* a user's floating desktop fails: released */
    claim_ok(f, "alice", "fl", e);
    assert_string_not_equal(e, d);
    stop_outside(f, e, VIRT_EVENT_CRASHED);
    assert_state(f, e, STORE_DESKTOP_FAILED);
    assert_string_equal(row(f, e).owner, "");
    /* alice logs in again and gets a working one: a new one, as the failed ones are not
     * handed out even though they are free */
    char g[STORE_DESKTOP_MAX + 1];
    claim_ok(f, "alice", "fl", g);
    assert_string_not_equal(g, d);
    assert_string_not_equal(g, e);
    assert_power(f, g, VIRT_STATE_RUNNING);
    assert_state(f, d, STORE_DESKTOP_FAILED);
    assert_state(f, e, STORE_DESKTOP_FAILED);
}

/* A restart refused by admission control is tried again by the maintenance round. */
static void test_restart_capacity(void **state)
{
    struct fx *f = *state;
    struct virt_host_capacity host;
    struct virt_error verr = {""};
    struct pools_error err = {"", ""};
    char d[STORE_DESKTOP_MAX + 1], e[STORE_DESKTOP_MAX + 1];

    assert_int_equal(virt_host_capacity(f->env.virt, &host, &verr), 0);
    assert_int_equal(open_pools(f, 1.0 / host.cpus, 0), 0); /* room for one vCPU */
    add_pool(f, "p", STORE_POOL_DEDICATED, STORE_LOGOFF_KEEP, STORE_STOP_RESTART, 0);
    claim_ok(f, "alice", "p", d);
    virDomainPtr dom = virDomainLookupByName(f->raw, d);
    assert_non_null(dom);
    assert_int_equal(virDomainDestroy(dom), 0);
    virDomainFree(dom);
    claim_ok(f, "bob", "p", e); /* takes the room meanwhile */
    pools_desktop_stopped(f->pools, d, VIRT_EVENT_SHUTDOWN);
    assert_power(f, d, VIRT_STATE_SHUTOFF);
    assert_ok(pools_desktop_stop(f->pools, e, &err), err);
    pools_desktop_stopped(f->pools, e, VIRT_EVENT_SHUTDOWN); /* ours: ignored */
    sleep_ms(BACKOFF_MS + 50);
    pools_maintain(f->pools);
    assert_power(f, d, VIRT_STATE_RUNNING);
    assert_power(f, e, VIRT_STATE_SHUTOFF);
}

int main(void)
{
#define fx_test(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
    const struct CMUnitTest tests[] = {
        fx_test(test_options),
        fx_test(test_stop_none),
        fx_test(test_stop_restart),
        fx_test(test_stop_restart_loop),
        fx_test(test_stop_reset_dedicated),
        fx_test(test_stop_reset_floating),
        fx_test(test_expected_stops_ignored),
        fx_test(test_crash_backoff_and_failed),
        fx_test(test_failed_reset_clears),
        fx_test(test_backoff_login_first),
        fx_test(test_crash_window),
        fx_test(test_failed_floating_and_spares),
        fx_test(test_restart_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
