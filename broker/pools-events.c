/*
 * Desktops that stop by themselves (pools_desktop_stopped in pools.h): the pools' own
 * stops told apart, the pool's stop_action, crash back-off and the FAILED state.
 *
 * Own stops: pools.c calls pools_expect_stop() right before it powers off, saves or
 * undefines a running desktop (logoff, reset, admin stop, deletion, reconciliation); the
 * event that follows takes the mark away and changes nothing. A mark whose event never
 * came is forgotten after the shutdown timeout plus EXPECT_GRACE_MS.
 *
 * Back-off: per desktop, the times of the stops that count (crashes; stops within
 * quick_stop_ms of a restart by the stop policy) within crash_window_ms. The first
 * restarts at once, the n-th after crash_backoff_ms * 4^(n-2), scheduled as a time that
 * pools_maintain (every few seconds) picks up: no worker sleeps. At crash_limit the
 * desktop is FAILED.
 *
 * Locks: the desktop's own lock around each decision and its libvirt calls; p->lock only
 * for the tables below (never across libvirt).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pools-internal.h"
#include "util.h"

#define DEFAULT_CRASH_BACKOFF_MS 5000
#define DEFAULT_CRASH_LIMIT 3
#define DEFAULT_CRASH_WINDOW_MS (10 * 60 * 1000)
#define DEFAULT_QUICK_STOP_MS (60 * 1000)
#define BACKOFF_FACTOR 4
/* An expected stop whose event never came (the desktop stopped by itself just before)
 * is forgotten this long after the shutdown timeout; long, so that events queued behind
 * busy workers still find their mark. */
#define EXPECT_GRACE_MS (10 * 60 * 1000)

int pools_events_init(struct pools_events *e, const struct pools_options *o)
{
    if (o->crash_backoff_ms < 0 || o->crash_limit < 0 || o->crash_limit > POOLS_CRASH_LIMIT_MAX ||
        o->crash_window_ms < 0 || o->quick_stop_ms < 0)
        return -EINVAL;
    *e = (struct pools_events){
        .crash_backoff_ms = o->crash_backoff_ms ? o->crash_backoff_ms : DEFAULT_CRASH_BACKOFF_MS,
        .crash_limit = o->crash_limit ? o->crash_limit : DEFAULT_CRASH_LIMIT,
        .crash_window_ms = o->crash_window_ms ? o->crash_window_ms : DEFAULT_CRASH_WINDOW_MS,
        .quick_stop_ms = o->quick_stop_ms ? o->quick_stop_ms : DEFAULT_QUICK_STOP_MS,
    };
    return 0;
}

void pools_events_done(struct pools_events *e)
{
    free(e->expected);
    free(e->health);
    e->expected = NULL;
    e->health = NULL;
    e->n_expected = e->n_health = 0;
}

static void copy_name(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

int pools_grow(void **array, size_t n, size_t *allocated, size_t size)
{
    void *a;
    size_t want;

    if (n < *allocated)
        return 0;
    want = *allocated ? *allocated * 2 : 8;
    a = reallocarray(*array, want, size);
    if (!a)
        return -ENOMEM;
    *array = a;
    *allocated = want;
    return 0;
}

/* ---- expected stops ---- */

/* Under p->lock: drops marks whose time is over. */
static void expected_expire_locked(struct pools_events *e, uint64_t now)
{
    for (size_t i = 0; i < e->n_expected;)
        if (e->expected[i].until_ms <= now)
            e->expected[i] = e->expected[--e->n_expected];
        else
            i++;
}

void pools_expect_stop(struct pools *p, const char *desktop)
{
    struct pools_events *e = &p->events;
    struct virt_error verr = {""};
    enum virt_state state = VIRT_STATE_OTHER;
    uint64_t now = now_ms();
    size_t i;

    /* Off already: no event will come, and a mark would hide the next real stop. When
     * libvirt cannot say, mark it: acting on our own stop is the worse mistake. */
    if (virt_desktop_state(p->virt, desktop, &state, &verr) == 0 &&
        (state == VIRT_STATE_MISSING || state == VIRT_STATE_SHUTOFF || state == VIRT_STATE_SAVED))
        return;
    pthread_mutex_lock(&p->lock);
    expected_expire_locked(e, now);
    for (i = 0; i < e->n_expected && !streq(e->expected[i].name, desktop); i++)
        ;
    if (i == e->n_expected) {
        if (pools_grow((void **)&e->expected, e->n_expected, &e->allocated_expected,
                       sizeof(*e->expected)) < 0) {
            pthread_mutex_unlock(&p->lock);
            log_warning("desktop %s: out of memory noting an own stop", desktop);
            return;
        }
        copy_name(e->expected[i].name, sizeof(e->expected[i].name), desktop);
        e->n_expected++;
    }
    e->expected[i].until_ms = now + (uint64_t)p->shutdown_timeout_s * 1000 + EXPECT_GRACE_MS;
    pthread_mutex_unlock(&p->lock);
}

bool pools_expect_stop_take(struct pools *p, const char *desktop)
{
    struct pools_events *e = &p->events;
    bool found = false;

    pthread_mutex_lock(&p->lock);
    expected_expire_locked(e, now_ms());
    for (size_t i = 0; i < e->n_expected && !found; i++)
        if (streq(e->expected[i].name, desktop)) {
            e->expected[i] = e->expected[--e->n_expected];
            found = true;
        }
    pthread_mutex_unlock(&p->lock);
    return found;
}

/* ---- health ---- */

/* Under p->lock: desktop's entry, made when create; NULL when none (or no memory). */
static struct desktop_health *health_get_locked(struct pools_events *e, const char *desktop,
                                                bool create)
{
    for (size_t i = 0; i < e->n_health; i++)
        if (streq(e->health[i].name, desktop))
            return &e->health[i];
    if (!create ||
        pools_grow((void **)&e->health, e->n_health, &e->allocated_health, sizeof(*e->health)) < 0)
        return NULL;
    struct desktop_health *h = &e->health[e->n_health++];
    *h = (struct desktop_health){0};
    copy_name(h->name, sizeof(h->name), desktop);
    return h;
}

/* Under p->lock: forgets stops older than the window. */
static void health_trim_locked(const struct pools_events *e, struct desktop_health *h, uint64_t now)
{
    size_t keep = 0;

    for (size_t i = 0; i < h->n_stops; i++)
        if (now - h->stops_ms[i] < (uint64_t)e->crash_window_ms)
            h->stops_ms[keep++] = h->stops_ms[i];
    h->n_stops = keep;
}

/* Under p->lock: whether an entry still says anything. */
static bool health_idle(const struct pools_events *e, const struct desktop_health *h, uint64_t now)
{
    return h->n_stops == 0 && h->restart_after_ms == 0 &&
           (h->restarted_ms == 0 || now - h->restarted_ms >= (uint64_t)e->quick_stop_ms);
}

void pools_events_forget(struct pools *p, const char *desktop)
{
    struct pools_events *e = &p->events;

    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < e->n_health; i++)
        if (streq(e->health[i].name, desktop)) {
            e->health[i] = e->health[--e->n_health];
            break;
        }
    pthread_mutex_unlock(&p->lock);
}

/* Records a stop that counts; returns how many count now (this one included). */
static size_t health_count_stop(struct pools *p, const char *desktop)
{
    struct pools_events *e = &p->events;
    uint64_t now = now_ms();
    struct desktop_health *h;
    size_t n = 1;

    pthread_mutex_lock(&p->lock);
    h = health_get_locked(e, desktop, true);
    if (h) {
        health_trim_locked(e, h, now);
        if (h->n_stops == POOLS_CRASH_LIMIT_MAX) { /* crash_limit is at most that */
            memmove(h->stops_ms, h->stops_ms + 1, (h->n_stops - 1) * sizeof(h->stops_ms[0]));
            h->n_stops--;
        }
        h->stops_ms[h->n_stops++] = now;
        h->restart_after_ms = 0;
        n = h->n_stops;
    }
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* Whether the stop policy restarted desktop less than quick_stop_ms ago. */
static bool health_restarted_recently(struct pools *p, const char *desktop)
{
    struct pools_events *e = &p->events;
    struct desktop_health *h;
    bool recent = false;

    pthread_mutex_lock(&p->lock);
    h = health_get_locked(e, desktop, false);
    if (h && h->restarted_ms)
        recent = now_ms() - h->restarted_ms < (uint64_t)e->quick_stop_ms;
    pthread_mutex_unlock(&p->lock);
    return recent;
}

static void health_set(struct pools *p, const char *desktop, uint64_t restarted_ms,
                       uint64_t restart_after_ms)
{
    struct desktop_health *h;

    pthread_mutex_lock(&p->lock);
    h = health_get_locked(&p->events, desktop, true);
    if (h) {
        if (restarted_ms)
            h->restarted_ms = restarted_ms;
        h->restart_after_ms = restart_after_ms;
    }
    pthread_mutex_unlock(&p->lock);
}

/* ---- actions (caller holds the desktop lock) ---- */

/* Starts it again through the normal path (admission control). Capacity refused: tried
 * again after the back-off, from pools_maintain. */
static void desktop_restart(struct pools *p, const struct store_desktop *d,
                            const struct store_pool *pool, const char *why)
{
    struct pools_error err = {"", ""};
    int r = desktop_power_on(p, d, pool, &err);

    if (r == -ENOSPC) {
        log_warning("desktop restart postponed name=%s reason=%s: %s", d->name, why, err.log);
        health_set(p, d->name, 0, now_ms() + (uint64_t)p->events.crash_backoff_ms);
        return;
    }
    if (r < 0) {
        log_error("desktop restart failed name=%s reason=%s: %s", d->name, why, err.log);
        health_set(p, d->name, 0, 0);
        return;
    }
    health_set(p, d->name, now_ms(), 0);
    log_info("desktop restarted name=%s pool=%s owner=%s reason=%s", d->name, d->pool,
             d->owner[0] ? d->owner : "-", why);
}

/* Reset to the template; floating: back to the pool too. */
static void desktop_stop_reset(struct pools *p, struct store_desktop *d,
                               const struct store_pool *pool)
{
    struct pools_error err = {"", ""};
    int r = desktop_reset_locked(p, d, &err);

    if (r == 0 && pool->kind == STORE_POOL_FLOATING && d->owner[0]) {
        char owner[STORE_NAME_MAX + 1];
        copy_name(owner, sizeof(owner), d->owner);
        r = desktop_change_owner(p, d, pool, "", &err);
        if (r == 0)
            log_info("desktop released name=%s pool=%s owner=%s reason=stopped", d->name,
                     pool->name, owner);
    }
    if (r < 0)
        log_error("desktop %s: reset after it stopped failed: %s", d->name, err.log);
}

/* Too many crashes: FAILED until an admin starts or resets it. A floating desktop goes
 * back to the pool (its user gets another one); a dedicated one stays its owner's. */
static void desktop_fail(struct pools *p, struct store_desktop *d, const struct store_pool *pool,
                         size_t crashes)
{
    struct pools_error err = {"", ""};
    int r = store_desktop_set_state(p->store, d->name, STORE_DESKTOP_FAILED);

    if (r < 0) {
        log_error_errno(r, "desktop %s: cannot record the failed state", d->name);
        return;
    }
    d->state = STORE_DESKTOP_FAILED;
    p->events.failed++;
    health_set(p, d->name, 0, 0);
    log_error("desktop failed name=%s crashes=%zu within=%ds pool=%s owner=%s: not restarted "
              "until an admin starts or resets it",
              d->name, crashes, p->events.crash_window_ms / 1000, pool->name,
              d->owner[0] ? d->owner : "-");
    if (pool->kind == STORE_POOL_FLOATING && d->owner[0] &&
        desktop_change_owner(p, d, pool, "", &err) < 0)
        log_warning("desktop %s: failed and not released: %s", d->name, err.log);
}

void pools_desktop_stopped(struct pools *p, const char *desktop, enum virt_event ev)
{
    struct pools_events *e = &p->events;
    struct virt_error verr = {""};
    enum virt_state state = VIRT_STATE_OTHER;
    struct busy_name node;
    struct store_desktop d;
    struct store_pool pool;
    const char *what = virt_event_to_string(ev);
    bool counts;

    if (ev == VIRT_EVENT_STARTED || !desktop || strlen(desktop) > STORE_DESKTOP_MAX)
        return;
    desktop_lock(p, &node, desktop);
    if (pools_expect_stop_take(p, desktop)) {
        log_debug("desktop %s: %s, as the broker asked", desktop, what);
        goto out;
    }
    if (store_desktop_get(p->store, desktop, &d) < 0 || store_pool_get(p->store, d.pool, &pool) < 0)
        goto out; /* not a desktop of ours (any more) */
    if (d.state != STORE_DESKTOP_READY) {
        log_debug("desktop %s: %s while %s: left alone", desktop, what,
                  store_desktop_state_to_string(d.state));
        goto out;
    }
    /* Started again meanwhile (a login, an admin): the event is old news. */
    if (virt_desktop_state(p->virt, desktop, &state, &verr) < 0) {
        log_warning("desktop %s: %s, and its state is unknown: %s", desktop, what, verr.message);
        goto out;
    }
    if (state == VIRT_STATE_RUNNING || state == VIRT_STATE_PAUSED) {
        log_debug("desktop %s: %s, but it runs again", desktop, what);
        goto out;
    }

    usage_running_end(p, desktop);
    e->stops[ev]++;
    counts = ev == VIRT_EVENT_CRASHED ||
             (pool.stop_action == STORE_STOP_RESTART && health_restarted_recently(p, desktop));
    log_warning("desktop stopped name=%s pool=%s owner=%s event=%s action=%s", desktop, d.pool,
                d.owner[0] ? d.owner : "-", what,
                counts ? "restart" : store_stop_action_to_string(pool.stop_action));

    if (counts) {
        size_t n = health_count_stop(p, desktop);
        uint64_t delay = 0;

        if (n >= (size_t)e->crash_limit) {
            desktop_fail(p, &d, &pool, n);
            goto out;
        }
        for (size_t i = 1; i < n; i++)
            delay = i == 1 ? (uint64_t)e->crash_backoff_ms : delay * BACKOFF_FACTOR;
        if (delay == 0) {
            desktop_restart(p, &d, &pool, what);
        } else {
            health_set(p, desktop, 0, now_ms() + delay);
            log_warning("desktop restart delayed name=%s crashes=%zu delay_ms=%" PRIu64, desktop, n,
                        delay);
        }
        goto out;
    }
    switch (pool.stop_action) {
    case STORE_STOP_NONE:
        break; /* the next login starts it */
    case STORE_STOP_RESTART:
        desktop_restart(p, &d, &pool, what);
        break;
    case STORE_STOP_RESET:
        desktop_stop_reset(p, &d, &pool);
        break;
    }
out:
    desktop_unlock(p, &node);
}

void pools_events_maintain(struct pools *p)
{
    struct pools_events *e = &p->events;
    char(*due)[STORE_DESKTOP_MAX + 1] = NULL;
    size_t n_due = 0;
    uint64_t now = now_ms();

    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < e->n_health; i++)
        if (e->health[i].restart_after_ms && e->health[i].restart_after_ms <= now)
            n_due++;
    if (n_due)
        due = calloc(n_due, sizeof(*due));
    n_due = 0;
    for (size_t i = 0; i < e->n_health;) {
        struct desktop_health *h = &e->health[i];
        health_trim_locked(e, h, now);
        if (due && h->restart_after_ms && h->restart_after_ms <= now) {
            copy_name(due[n_due++], sizeof(due[0]), h->name);
            h->restart_after_ms = 0;
        }
        if (health_idle(e, h, now))
            *h = e->health[--e->n_health];
        else
            i++;
    }
    pthread_mutex_unlock(&p->lock);

    for (size_t i = 0; i < n_due; i++) {
        struct virt_error verr = {""};
        enum virt_state state = VIRT_STATE_OTHER;
        struct busy_name node;
        struct store_desktop d;
        struct store_pool pool;

        desktop_lock(p, &node, due[i]);
        /* Still ours and still wanted: not FAILED, deleted or being reset meanwhile, and
         * not started by a login in between. */
        if (store_desktop_get(p->store, due[i], &d) == 0 && d.state == STORE_DESKTOP_READY &&
            store_pool_get(p->store, d.pool, &pool) == 0 &&
            virt_desktop_state(p->virt, d.name, &state, &verr) == 0 &&
            state != VIRT_STATE_RUNNING && state != VIRT_STATE_PAUSED)
            desktop_restart(p, &d, &pool, "backoff");
        desktop_unlock(p, &node);
    }
    free(due);
}

void pools_events_metrics_write(struct pools *p, FILE *f, const struct store_pool *pools,
                                size_t n_pools, const struct pools_desktop_info *ds, size_t n)
{
    static const enum virt_event stops[] = {VIRT_EVENT_SHUTDOWN, VIRT_EVENT_DESTROYED,
                                            VIRT_EVENT_CRASHED, VIRT_EVENT_STOPPED};
    struct pools_events *e = &p->events;

    fputs("# HELP vdi_desktops_failed Desktops stopped for good after repeated crashes, by "
          "pool (an admin start or reset clears it).\n"
          "# TYPE vdi_desktops_failed gauge\n",
          f);
    for (size_t i = 0; i < n_pools; i++) {
        unsigned count = 0;
        for (size_t k = 0; k < n; k++)
            count += streq(ds[k].desktop.pool, pools[i].name) &&
                     ds[k].desktop.state == STORE_DESKTOP_FAILED;
        fprintf(f, "vdi_desktops_failed{pool=\"%s\"} %u\n", pools[i].name, count);
    }
    fprintf(f,
            "# HELP vdi_desktop_crashes_total Desktop crashes (guest panic, QEMU failure).\n"
            "# TYPE vdi_desktop_crashes_total counter\nvdi_desktop_crashes_total %" PRIuFAST64 "\n",
            (uint_fast64_t)e->stops[VIRT_EVENT_CRASHED]);
    fprintf(f,
            "# HELP vdi_desktop_failures_total Desktops marked failed.\n"
            "# TYPE vdi_desktop_failures_total counter\nvdi_desktop_failures_total %" PRIuFAST64
            "\n",
            (uint_fast64_t)e->failed);
    fputs("# HELP vdi_desktop_stops_total Desktops that stopped without the broker asking, by "
          "libvirt's reason.\n"
          "# TYPE vdi_desktop_stops_total counter\n",
          f);
    for (size_t i = 0; i < ARRAY_SIZE(stops); i++)
        fprintf(f, "vdi_desktop_stops_total{event=\"%s\"} %" PRIuFAST64 "\n",
                virt_event_to_string(stops[i]), (uint_fast64_t)e->stops[stops[i]]);
}
