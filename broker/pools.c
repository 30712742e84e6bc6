/*
 * Desktop pools (pools.h).
 *
 * Locks, always taken in this order:
 *   1. a desktop's own lock (desktop_lock: a busy list, so different desktops run in
 *      parallel) around every multi-step change of one desktop;
 *   2. p->lock, held only for short bookkeeping: choosing a desktop and writing its new
 *      owner, the admission reservation, the table of connected clients. Never across a
 *      libvirt call that can take seconds (start, shutdown, overlay creation).
 *
 * Reconciliation rules (pools_reconcile), store vs libvirt, after any crash:
 *   store PROVISIONING  never started, so holds no user data: finish it if domain and
 *                       overlay both exist, else roll back (domain, overlay, row).
 *   store RESETTING     the old disk was being thrown away on purpose: finish the reset.
 *   store DELETING      finish the deletion.
 *   store FAILED        left alone (crashed too often; an admin starts or resets it).
 *   store READY         missing domain: redefine it on the existing overlay; missing
 *                       overlay too: a free desktop's row is dropped, an owned one is
 *                       made again from the template (logged as an error: its disk is gone).
 *                       Metadata owner differing from the store: the store wins.
 *   libvirt domain with our metadata but no row: adopted when it has an owner or a
 *                       known pool; otherwise (free, unknown pool) removed.
 *   overlay file with neither row nor domain: removed.
 *   floating desktops still assigned: released (reset) unless a user connection row on
 *                       them is still open: that connection may re-attach, and the
 *                       broker logs the session off if it does not.
 *   open session rows stay open (the broker closes those that do not re-attach); usage
 *                       intervals are closed at the restart time and running desktops
 *                       start new ones.
 */
#include "pools.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "groups.h"
#include "image.h"
#include "log.h"
#include "pool-list.h"
#include "pools-internal.h"
#include "proto.h"
#include "reasons.h"
#include "util.h"

#define TEXT_NO_CAPACITY                                                                           \
    "The server has no capacity to start your desktop right now; try again later"
#define TEXT_INTERNAL "Your desktop could not be prepared (the server log has the details)"

static const double provision_buckets[N_BUCKETS] = {1, 2, 5, 10, 20, 30, 60, 120};

/* ---- small helpers ---- */

static void fail(struct pools_error *err, const char *text, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct pools_error *err, const char *text, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    snprintf(err->text, sizeof(err->text), "%s", text);
    va_start(ap, fmt);
    vsnprintf(err->log, sizeof(err->log), fmt, ap);
    va_end(ap);
}

static int64_t unix_now(void)
{
    return (int64_t)time(NULL);
}

static void iso8601_now(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Bounded copy that always terminates (names from libvirt may be longer than ours). */
static void copy(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;

    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void desktop_lock(struct pools *p, struct busy_name *node, const char *name)
{
    pthread_mutex_lock(&p->lock);
    for (;;) {
        bool taken = false;
        for (struct busy_name *b = p->busy; b; b = b->next)
            taken |= streq(b->name, name);
        if (!taken)
            break;
        pthread_cond_wait(&p->cond, &p->lock);
    }
    node->name = name;
    node->next = p->busy;
    p->busy = node;
    pthread_mutex_unlock(&p->lock);
}

void desktop_unlock(struct pools *p, struct busy_name *node)
{
    pthread_mutex_lock(&p->lock);
    for (struct busy_name **b = &p->busy; *b; b = &(*b)->next)
        if (*b == node) {
            *b = node->next;
            break;
        }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Users connected to desktop (shadowing admins do not count: they never keep a desktop
 * from its logoff); caller holds p->lock. */
static unsigned connected_locked(struct pools *p, const char *desktop)
{
    unsigned n = 0;

    for (size_t i = 0; i < p->n_conns; i++)
        n += p->conns[i].kind == STORE_SESSION_USER && streq(p->conns[i].desktop, desktop);
    return n;
}

unsigned connected(struct pools *p, const char *desktop)
{
    unsigned n;

    pthread_mutex_lock(&p->lock);
    n = connected_locked(p, desktop);
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* ---- lifecycle ---- */

int pools_new(const struct pools_options *o, struct pools **ret)
{
    struct virt_error verr = {""};
    struct pools *p;
    int r;

    if (!o->store || !o->virt || o->cpu_overcommit <= 0 || o->memory_overcommit <= 0 ||
        o->shutdown_timeout_s < 0)
        return -EINVAL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->store = o->store;
    p->virt = o->virt;
    p->cpu_overcommit = o->cpu_overcommit;
    p->memory_overcommit = o->memory_overcommit;
    p->shutdown_timeout_s = o->shutdown_timeout_s;
    r = pools_events_init(&p->events, o);
    if (r < 0) {
        free(p);
        return r;
    }
    r = virt_host_capacity(p->virt, &p->host, &verr);
    if (r < 0) {
        log_error_errno(r, "cannot read the host's capacity: %s", verr.message);
        free(p);
        return r;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->admission, NULL);
    pthread_cond_init(&p->cond, NULL);
    log_info("capacity host_cpus=%u host_memory_mib=%" PRIu64 " cpu_overcommit=%.2f"
             " memory_overcommit=%.2f",
             p->host.cpus, p->host.memory_mib, p->cpu_overcommit, p->memory_overcommit);
    *ret = p;
    return 0;
}

void pools_free(struct pools *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->admission);
    pthread_cond_destroy(&p->cond);
    pools_events_done(&p->events);
    free(p->conns);
    free(p);
}

/* ---- templates → virt ---- */

/* What virt needs to make a desktop of a pool. Strings point into *t. */
struct recipe {
    struct store_pool pool;
    struct store_template tmpl;
    struct virt_template vt;
};

static int recipe_load(struct pools *p, const char *pool, struct recipe *rc,
                       struct pools_error *err)
{
    int r = store_pool_get(p->store, pool, &rc->pool);

    if (r < 0) {
        fail(err, r == -ENOENT ? "No such pool" : TEXT_INTERNAL, "pool %s: %s", pool,
             strerror(-r));
        return r;
    }
    r = store_template_get(p->store, rc->pool.template_name, &rc->tmpl);
    if (r < 0) {
        fail(err, TEXT_INTERNAL, "pool %s: template %s: %s", pool, rc->pool.template_name,
             strerror(-r));
        return r;
    }
    rc->vt = (struct virt_template){
        .name = rc->tmpl.name,
        .os = rc->tmpl.os == STORE_OS_WINDOWS ? VIRT_OS_WINDOWS : VIRT_OS_LINUX,
        .firmware = rc->tmpl.firmware == STORE_FIRMWARE_UEFI ? VIRT_FIRMWARE_UEFI
                                                              : VIRT_FIRMWARE_BIOS,
        .disk = rc->tmpl.disk,
        .kernel = rc->tmpl.kernel,
        .initrd = rc->tmpl.initrd,
        .cmdline = rc->tmpl.cmdline,
    };
    r = image_probe(rc->tmpl.disk, &rc->vt.disk_format, &rc->vt.disk_size);
    if (r < 0) {
        fail(err, TEXT_INTERNAL, "template %s: disk %s is not usable: %s", rc->tmpl.name,
             rc->tmpl.disk, strerror(-r));
        return -EIO;
    }
    return 0;
}

/* Overlay and domain for a desktop row; both left behind on failure (the caller rolls
 * back). */
static int desktop_make(struct pools *p, const struct recipe *rc, const char *name,
                        const char *owner, struct pools_error *err)
{
    struct virt_error verr = {""};
    char created[64];
    struct virt_desktop_spec spec = {
        .name = name,
        .pool = rc->pool.name,
        .owner = owner,
        .tmpl = &rc->vt,
        .vcpus = rc->pool.vcpus,
        .memory_mib = rc->pool.memory_mib,
        .created = created,
    };
    int r;

    iso8601_now(created, sizeof(created));
    r = virt_overlay_create(p->virt, name, &rc->vt, NULL, 0, &verr);
    if (r == 0)
        r = virt_desktop_define(p->virt, &spec, &verr);
    if (r < 0)
        fail(err, TEXT_INTERNAL, "desktop %s: %s", name, verr.message);
    return r;
}

static void desktop_unmake(struct pools *p, const char *name)
{
    struct virt_error verr = {""};

    /* No stop mark: the row is gone or not READY by now, so its event changes nothing. */
    if (virt_desktop_undefine(p->virt, name, &verr) < 0)
        log_warning("desktop %s: cannot undefine: %s", name, verr.message);
    if (virt_overlay_delete(p->virt, name, &verr) < 0)
        log_warning("desktop %s: cannot delete overlay: %s", name, verr.message);
}

static void provision_observe(struct pools *p, uint64_t start_ms, bool ok)
{
    uint64_t ms = now_ms() - start_ms;

    if (!ok) {
        p->provision_failed++;
        return;
    }
    p->provisioned++;
    p->provision_ms_sum += ms;
    for (size_t i = 0; i < N_BUCKETS; i++)
        if ((double)ms / 1000.0 <= provision_buckets[i])
            p->provision_bucket[i]++;
}

/* Under p->lock: records a new desktop row (PROVISIONING) for owner ("" = spare) and
 * marks its name busy, so that nothing can use it before desktop_build() is done and a
 * second login of the same user waits for it instead of making another. A crash from
 * here on leaves the PROVISIONING row to reconciliation. */
static int desktop_reserve_locked(struct pools *p, const struct recipe *rc, const char *owner,
                                  struct store_desktop *d, struct busy_name *node,
                                  struct pools_error *err)
{
    int r;

    *d = (struct store_desktop){.state = STORE_DESKTOP_PROVISIONING, .created = unix_now()};
    r = store_desktop_next_name(p->store, rc->pool.name, d->name, sizeof(d->name));
    if (r == 0) {
        copy(d->pool, sizeof(d->pool), rc->pool.name);
        copy(d->owner, sizeof(d->owner), owner);
        r = store_desktop_add(p->store, d);
    }
    if (r < 0) {
        fail(err, TEXT_INTERNAL, "pool %s: cannot record a new desktop: %s", rc->pool.name,
             strerror(-r));
        return r;
    }
    node->name = d->name;
    node->next = p->busy;
    p->busy = node;
    return 0;
}

/* Makes the reserved desktop (overlay + domain) and marks it READY, or rolls it all back.
 * Releases the busy mark either way. */
static int desktop_build(struct pools *p, const struct recipe *rc, struct store_desktop *d,
                         struct busy_name *node, struct pools_error *err)
{
    uint64_t start = now_ms();
    int r = desktop_make(p, rc, d->name, d->owner, err);

    if (r == 0)
        r = store_desktop_set_state(p->store, d->name, STORE_DESKTOP_READY);
    if (r < 0) {
        desktop_unmake(p, d->name);
        (void)store_desktop_delete(p->store, d->name);
    } else
        d->state = STORE_DESKTOP_READY;
    desktop_unlock(p, node);
    provision_observe(p, start, r == 0);
    if (r == 0)
        log_info("desktop provisioned name=%s pool=%s owner=%s ms=%" PRIu64, d->name,
                 rc->pool.name, d->owner[0] ? d->owner : "-", now_ms() - start);
    return r;
}

/* ---- power and usage ---- */

static void usage_running_begin(struct pools *p, const struct store_desktop *d,
                                const struct store_pool *pool)
{
    uint64_t id;
    int64_t now = unix_now();

    (void)store_usage_end_open_for_desktop(p->store, d->name, STORE_USAGE_RUNNING, now);
    if (store_usage_begin(p->store, STORE_USAGE_RUNNING, d->owner, pool->name, d->name,
                          pool->vcpus, pool->memory_mib, now, &id) < 0)
        log_warning("desktop %s: cannot record usage", d->name);
}

void usage_running_end(struct pools *p, const char *desktop)
{
    (void)store_usage_end_open_for_desktop(p->store, desktop, STORE_USAGE_RUNNING, unix_now());
}

/* vCPUs and memory of our running desktops, but those in skip. */
static int running_totals(struct pools *p, const struct busy_name *skip, int *ret_vcpus,
                          uint64_t *ret_memory_mib)
{
    struct virt_domain_info *doms = NULL;
    struct virt_error verr = {""};
    size_t n = 0;
    int r = virt_list(p->virt, &doms, &n, &verr);

    if (r < 0) {
        log_error("cannot list desktops: %s", verr.message);
        return r;
    }
    *ret_vcpus = 0;
    *ret_memory_mib = 0;
    for (size_t i = 0; i < n; i++) {
        bool skipped = false;
        for (const struct busy_name *b = skip; b; b = b->next)
            skipped |= streq(b->name, doms[i].name);
        if (!skipped && (doms[i].state == VIRT_STATE_RUNNING ||
                         doms[i].state == VIRT_STATE_PAUSED || doms[i].state == VIRT_STATE_OTHER)) {
            *ret_vcpus += doms[i].vcpus;
            *ret_memory_mib += (uint64_t)doms[i].memory_mib;
        }
    }
    free(doms);
    return 0;
}

/* Starts a desktop unless running, within the overcommit limits. Caller holds its
 * desktop lock. */
int desktop_power_on(struct pools *p, const struct store_desktop *d, const struct store_pool *pool,
                     struct pools_error *err)
{
    struct virt_error verr = {""};
    struct busy_name me;
    enum virt_state state;
    uint64_t memory, mem_limit;
    int vcpus, r;
    double cpu_limit;
    bool started = false;

    r = virt_desktop_state(p->virt, d->name, &state, &verr);
    if (r < 0) {
        fail(err, TEXT_INTERNAL, "desktop %s: %s", d->name, verr.message);
        return r;
    }
    if (state == VIRT_STATE_RUNNING)
        return 0;
    if (state == VIRT_STATE_PAUSED) {
        r = virt_desktop_start(p->virt, d->name, NULL, &verr); /* resumes */
        if (r < 0)
            fail(err, TEXT_INTERNAL, "desktop %s: %s", d->name, verr.message);
        return r;
    }

    /* Admission control: what runs, plus starts in flight, plus this one. Listing,
     * checking and reserving are one step under p->admission. */
    cpu_limit = p->cpu_overcommit * p->host.cpus;
    mem_limit = (uint64_t)(p->memory_overcommit * (double)p->host.memory_mib);
    pthread_mutex_lock(&p->admission);
    r = running_totals(p, p->starting, &vcpus, &memory);
    if (r < 0) {
        pthread_mutex_unlock(&p->admission);
        fail(err, TEXT_INTERNAL, "desktop %s: cannot list running desktops", d->name);
        return -EIO;
    }
    vcpus += p->reserved_vcpus + pool->vcpus;
    memory += p->reserved_memory_mib + (uint64_t)pool->memory_mib;
    if ((double)vcpus > cpu_limit || memory > mem_limit) {
        pthread_mutex_unlock(&p->admission);
        p->admission_refused++;
        fail(err, TEXT_NO_CAPACITY,
             "desktop %s refused by admission control: vcpus %d > %.1f or memory_mib %" PRIu64
             " > %" PRIu64,
             d->name, vcpus, cpu_limit, memory, mem_limit);
        return -ENOSPC;
    }
    p->reserved_vcpus += pool->vcpus;
    p->reserved_memory_mib += (uint64_t)pool->memory_mib;
    me.name = d->name;
    me.next = p->starting;
    p->starting = &me;
    pthread_mutex_unlock(&p->admission);

    r = virt_desktop_start(p->virt, d->name, &started, &verr);

    pthread_mutex_lock(&p->admission);
    p->reserved_vcpus -= pool->vcpus;
    p->reserved_memory_mib -= (uint64_t)pool->memory_mib;
    for (struct busy_name **b = &p->starting; *b; b = &(*b)->next)
        if (*b == &me) {
            *b = me.next;
            break;
        }
    pthread_mutex_unlock(&p->admission);
    if (r < 0) {
        fail(err, TEXT_INTERNAL, "desktop %s: cannot start: %s", d->name, verr.message);
        return r;
    }
    usage_running_begin(p, d, pool);
    log_info("desktop started name=%s pool=%s owner=%s%s", d->name, pool->name,
             d->owner[0] ? d->owner : "-", state == VIRT_STATE_SAVED ? " resumed=yes" : "");
    return 0;
}

/* Off now (reset, delete) or gracefully (stop, logoff). Caller holds the desktop lock. */
static int desktop_power_off(struct pools *p, const char *name, bool graceful,
                             struct pools_error *err)
{
    struct virt_error verr = {""};
    int r;

    pools_expect_stop(p, name);
    r = graceful ? virt_desktop_shutdown(p->virt, name, p->shutdown_timeout_s * 1000, &verr)
                 : virt_desktop_destroy(p->virt, name, &verr);
    if (r < 0) {
        (void)pools_expect_stop_take(p, name); /* else it would hide the next real stop */
        fail(err, TEXT_INTERNAL, "desktop %s: cannot power off: %s", name, verr.message);
        return r;
    }
    usage_running_end(p, name);
    return 0;
}

/* Back to the template: power off, new overlay, (re)define. Caller holds the desktop lock.
 * The RESETTING state makes a crash in the middle finish the reset at the next start. */
int desktop_reset_locked(struct pools *p, const struct store_desktop *d, struct pools_error *err)
{
    struct recipe rc;
    int r;

    r = store_desktop_set_state(p->store, d->name, STORE_DESKTOP_RESETTING);
    if (r < 0) {
        fail(err, TEXT_INTERNAL, "desktop %s: cannot record reset: %s", d->name, strerror(-r));
        return r;
    }
    r = desktop_power_off(p, d->name, false, err);
    if (r == 0)
        r = recipe_load(p, d->pool, &rc, err);
    if (r == 0) {
        desktop_unmake(p, d->name);
        r = desktop_make(p, &rc, d->name, d->owner, err);
    }
    if (r == 0)
        r = store_desktop_set_state(p->store, d->name, STORE_DESKTOP_READY);
    if (r < 0)
        return r; /* stays RESETTING: retried by reconciliation */
    log_info("desktop reset name=%s pool=%s owner=%s", d->name, d->pool,
             d->owner[0] ? d->owner : "-");
    return 0;
}

/* Sets a new owner in the store (compare-and-set) and in the metadata; keeps usage
 * intervals attributed right. Caller holds the desktop lock. */
int desktop_change_owner(struct pools *p, struct store_desktop *d, const struct store_pool *pool,
                         const char *owner, struct pools_error *err)
{
    struct virt_error verr = {""};
    enum virt_state state = VIRT_STATE_MISSING;
    int r = store_desktop_set_owner(p->store, d->name, d->owner, owner);

    if (r < 0) {
        fail(err, r == -EBUSY ? "The desktop was assigned to someone else meanwhile"
                              : TEXT_INTERNAL,
             "desktop %s: cannot set owner %s: %s", d->name, owner, strerror(-r));
        return r;
    }
    copy(d->owner, sizeof(d->owner), owner);
    if (virt_desktop_set_owner(p->virt, d->name, owner, &verr) < 0)
        log_warning("desktop %s: metadata owner not updated: %s", d->name, verr.message);
    if (virt_desktop_state(p->virt, d->name, &state, &verr) == 0 && state == VIRT_STATE_RUNNING)
        usage_running_begin(p, d, pool);
    return 0;
}

static const struct virt_domain_info *find_domain(const struct virt_domain_info *doms, size_t n,
                                                  const char *name);

/* ---- logins ---- */

int pools_parse_login(const char *login, char user[STORE_NAME_MAX + 1],
                      char pool[STORE_NAME_MAX + 1])
{
    const char *at = strchr(login, '@');
    size_t n = at ? (size_t)(at - login) : strlen(login);

    if (n == 0 || n > STORE_NAME_MAX)
        return -EINVAL;
    memcpy(user, login, n);
    user[n] = '\0';
    if (!username_is_valid(user))
        return -EINVAL;
    pool[0] = '\0';
    if (!at)
        return 0;
    if (!streq(at + 1, POOL_LIST_REQUEST) &&
        (strlen(at + 1) > STORE_NAME_MAX || !store_name_is_valid(at + 1)))
        return -EINVAL;
    strcpy(pool, at + 1);
    return 0;
}

int pools_entitled(struct pools *p, const char *user, char (**ret)[STORE_NAME_MAX + 1],
                   size_t *ret_n)
{
    char **groups = NULL;
    size_t n_groups = 0;
    int r = auth_user_groups(user, &groups, &n_groups);

    if (r < 0)
        return r;
    r = store_entitled_pools(p->store, user, (const char *const *)groups, n_groups, ret, ret_n);
    auth_groups_free(groups, n_groups);
    return r;
}

/* "log in as alice@eng or alice@win10" in err, for several pools and none named. */
static void choose_sentence(const char *user, char (*names)[STORE_NAME_MAX + 1], size_t n,
                            struct pools_error *err)
{
    char text[256];
    size_t len =
        (size_t)snprintf(text, sizeof(text), "You can use several desktop pools; log in as");

    for (size_t i = 0; i < n && len < sizeof(text); i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s %s@%s", i ? " or" : "", user,
                                names[i]);
    fail(err, text, "user %s is entitled to %zu pools and named none", user, n);
}

/* The pool list for "user@?" (pool-list.h) in err: the entitled pools (names[0..n)) with
 * their template's OS. Returns how many it lists (0: none, err untouched), or a negative
 * errno (err says it). A pool or template deleted meanwhile is left out. */
static int choose_list(struct pools *p, const char *user, char (*names)[STORE_NAME_MAX + 1],
                       size_t n, struct pools_error *err)
{
    _cleanup_(freep) struct pool_choice *choices = calloc(n, sizeof(*choices));
    char text[PROTO_MAX_TEXT + 1]; /* a SecurityResult reason */
    size_t n_choices = 0, fit;

    if (!choices) {
        fail(err, TEXT_INTERNAL, "user %s: cannot list pools: out of memory", user);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct store_pool pool;
        struct store_template tmpl;
        int r = store_pool_get(p->store, names[i], &pool);
        if (r == 0)
            r = store_template_get(p->store, pool.template_name, &tmpl);
        if (r == -ENOENT)
            continue;
        if (r < 0) {
            fail(err, TEXT_INTERNAL, "user %s: cannot look up pool %s: %s", user, names[i],
                 strerror(-r));
            return r;
        }
        copy(choices[n_choices].name, sizeof(choices[n_choices].name), names[i]);
        copy(choices[n_choices].os, sizeof(choices[n_choices].os), store_os_to_string(tmpl.os));
        n_choices++;
    }
    fit = pool_list_format(choices, n_choices, text, sizeof(text));
    if (fit > 0)
        fail(err, text, "user %s is entitled to %zu pools and asked for the list (%zu listed)",
             user, n, fit);
    return (int)fit;
}

int pools_choose(struct pools *p, const char *user, const char *wanted,
                 char pool[STORE_NAME_MAX + 1], struct pools_error *err)
{
    char(*names)[STORE_NAME_MAX + 1] = NULL;
    size_t n = 0;
    bool list = streq(wanted, POOL_LIST_REQUEST);
    int r = pools_entitled(p, user, &names, &n);

    if (r < 0) {
        fail(err, TEXT_INTERNAL, "user %s: cannot look up entitlements: %s", user, strerror(-r));
        return r;
    }
    if (list)
        wanted = ""; /* "user@?": as no pool named, but several give the pool list */
    r = -ENOENT;
    if (n == 0)
        fail(err, REASON_NO_DESKTOP, "user %s has no entitlement", user);
    else if (wanted[0]) {
        for (size_t i = 0; i < n && r < 0; i++)
            if (streq(names[i], wanted))
                r = 0;
        if (r < 0) {
            char text[256];
            snprintf(text, sizeof(text), REASON_NOT_ENTITLED_PREFIX " '%s'", wanted);
            fail(err, text, "user %s is not entitled to pool %s", user, wanted);
            r = -EPERM;
        } else
            copy(pool, STORE_NAME_MAX + 1, wanted);
    } else if (n == 1) {
        copy(pool, STORE_NAME_MAX + 1, names[0]);
        r = 0;
    } else {
        /* Several pools and none named: the list for "user@?" (vdi-client's chooser), else
         * (and should none fit the list) say how to pick one (user@pool). */
        r = list ? choose_list(p, user, names, n, err) : 0;
        if (r == 0)
            choose_sentence(user, names, n, err);
        if (r >= 0)
            r = -EINVAL;
    }
    free(names);
    return r;
}

/* Under p->lock: the user's desktop in the pool, else a free one (running first, per
 * doms, listed before the lock), which becomes the user's. *ret_mine says the user
 * already had it. -EAGAIN: none. */
static int claim_choose_locked(struct pools *p, const struct store_pool *pool, const char *user,
                               const struct virt_domain_info *doms, size_t n_doms,
                               struct store_desktop *ret, bool *ret_mine, size_t *ret_total)
{
    struct store_desktop *ds = NULL;
    size_t n = 0;
    ssize_t free_any = -1, free_running = -1;
    int r = store_desktop_list(p->store, pool->name, &ds, &n);

    if (r < 0)
        return r;
    *ret_total = n;
    for (size_t i = 0; i < n; i++)
        if (streq(ds[i].owner, user) && ds[i].state != STORE_DESKTOP_DELETING) {
            *ret = ds[i];
            *ret_mine = true;
            free(ds);
            return 0;
        }
    for (size_t i = 0; i < n; i++) {
        const struct virt_domain_info *dom = find_domain(doms, n_doms, ds[i].name);
        if (ds[i].owner[0] || ds[i].state != STORE_DESKTOP_READY)
            continue;
        if (free_any < 0)
            free_any = (ssize_t)i;
        if (free_running < 0 && dom && dom->state == VIRT_STATE_RUNNING)
            free_running = (ssize_t)i;
    }
    if (free_running >= 0)
        free_any = free_running;
    r = -EAGAIN;
    if (free_any >= 0) {
        *ret = ds[free_any];
        *ret_mine = false;
        /* Claimed in the store under p->lock: no other login can take it now. */
        r = store_desktop_set_owner(p->store, ret->name, "", user);
    }
    free(ds);
    return r;
}

static void connection_begin(struct pools *p, const struct pools_connection *c, const char *desktop,
                             const char *pool);

int pools_claim(struct pools *p, const struct pools_connection *c, const char *wanted,
                char *ret_desktop, size_t size, struct pools_error *err)
{
    const char *user = c->user;
    char pool_name[STORE_NAME_MAX + 1];
    char name[STORE_DESKTOP_MAX + 1];
    struct store_desktop d;
    struct busy_name node;
    struct recipe rc;
    _cleanup_(freep) struct virt_domain_info *doms = NULL;
    struct virt_error verr = {""};
    size_t total = 0, n_doms = 0;
    bool mine, made;
    int r, attempts = 0;

    r = pools_choose(p, user, wanted ? wanted : "", pool_name, err);
    if (r < 0)
        return r;
    r = recipe_load(p, pool_name, &rc, err);
    if (r < 0)
        return r;

again:
    mine = made = false;
    /* libvirt is asked before p->lock is taken: that lock is never held across libvirt. */
    free(doms);
    doms = NULL;
    n_doms = 0;
    (void)virt_list(p->virt, &doms, &n_doms, &verr);
    pthread_mutex_lock(&p->lock);
    r = claim_choose_locked(p, &rc.pool, user, doms, n_doms, &d, &mine, &total);
    if (r == -EAGAIN && total < (size_t)rc.pool.max_desktops) {
        r = desktop_reserve_locked(p, &rc, user, &d, &node, err);
        pthread_mutex_unlock(&p->lock);
        if (r < 0)
            return r;
        r = desktop_build(p, &rc, &d, &node, err);
        if (r < 0)
            return r;
        mine = made = true;
    } else
        pthread_mutex_unlock(&p->lock);
    if (r == -EAGAIN) {
        char text[256];
        snprintf(text, sizeof(text), "All desktops of pool '%s' are in use; try again later",
                 pool_name);
        fail(err, text, "pool %s: all %zu desktops in use (max_desktops=%d)", pool_name, total,
             rc.pool.max_desktops);
        return r;
    }
    if (r < 0) {
        fail(err, TEXT_INTERNAL, "pool %s: cannot choose a desktop: %s", pool_name, strerror(-r));
        return r;
    }

    copy(name, sizeof(name), d.name); /* the lock's name: d is rewritten under it */
    desktop_lock(p, &node, name);
    r = store_desktop_get(p->store, name, &d); /* fresh, after any reset in flight */
    if (r == 0 && !streq(d.owner, user) && ++attempts < 5) {
        /* Taken from the user while we waited (logoff of a floating desktop, unassign). */
        desktop_unlock(p, &node);
        goto again;
    }
    if (r == 0 && !streq(d.owner, user))
        r = -EAGAIN;
    if (r == 0 && d.state == STORE_DESKTOP_FAILED) {
        desktop_unlock(p, &node);
        fail(err, POOLS_TEXT_FAILED, "desktop %s for %s: failed (crashed repeatedly)", d.name,
             user);
        return -EIO;
    }
    if (r == 0 && d.state != STORE_DESKTOP_READY)
        r = -EAGAIN;
    if (r < 0) {
        desktop_unlock(p, &node);
        fail(err, "Your desktop is being prepared; try again in a minute",
             "desktop %s for %s: state %s", d.name, user,
             r == -EAGAIN ? store_desktop_state_to_string(d.state) : strerror(-r));
        return r;
    }
    if (!mine) {
        enum virt_state state;

        /* Was a free desktop: the metadata and the usage now name the user. */
        if (virt_desktop_set_owner(p->virt, d.name, user, &verr) < 0)
            log_warning("desktop %s: metadata owner not updated: %s", d.name, verr.message);
        if (virt_desktop_state(p->virt, d.name, &state, &verr) == 0 &&
            state == VIRT_STATE_RUNNING)
            usage_running_begin(p, &d, &rc.pool);
        log_info("desktop assigned name=%s pool=%s owner=%s", d.name, pool_name, user);
    }
    r = desktop_power_on(p, &d, &rc.pool, err);
    if (r < 0 && (!mine || made) && rc.pool.kind == STORE_POOL_FLOATING)
        (void)desktop_change_owner(p, &d, &rc.pool, "", NULL); /* give it back */
    /* Counted as connected before the desktop lock goes: a logoff waiting for the lock
     * sees the client and leaves the desktop alone. */
    if (r == 0)
        connection_begin(p, c, d.name, rc.pool.name);
    desktop_unlock(p, &node);
    if (r < 0)
        return r;
    copy(ret_desktop, size, d.name);
    return 0;
}

int pools_open_display(struct pools *p, const char *desktop, int *ret_fd, struct pools_error *err)
{
    struct virt_error verr = {""};
    int r = virt_desktop_open_display(p->virt, desktop, ret_fd, &verr);

    if (r < 0)
        fail(err, TEXT_INTERNAL, "desktop %s: cannot open display: %s", desktop, verr.message);
    return r;
}

/* Counts a connection to desktop and opens its usage interval; record: also write its
 * session row (not when it re-attaches: the row is there). -EBUSY when a connection with
 * that id is counted already (two re-attaches of one row), -ENOMEM. */
static int connection_track(struct pools *p, const struct store_session *s, bool record)
{
    struct connection c = {.id = s->id, .kind = s->kind};
    int r = 0;

    copy(c.user, sizeof(c.user), s->user);
    copy(c.pool, sizeof(c.pool), s->pool);
    copy(c.desktop, sizeof(c.desktop), s->desktop);
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_conns && r == 0; i++)
        if (p->conns[i].id == c.id)
            r = -EBUSY;
    if (r == 0)
        r = pools_grow((void **)&p->conns, p->n_conns, &p->allocated_conns, sizeof(*p->conns));
    if (r == 0)
        p->conns[p->n_conns++] = c;
    pthread_mutex_unlock(&p->lock);
    if (r == -ENOMEM)
        log_error("session=%" PRIu64 " out of memory tracking it", c.id);
    if (r < 0)
        return r;

    if (record && store_session_begin(p->store, s) < 0)
        log_warning("session=%" PRIu64 " cannot be recorded", c.id);
    /* The usage interval's id is filled in afterwards: until then an end finds none. */
    if (s->kind == STORE_SESSION_USER &&
        store_usage_begin(p->store, STORE_USAGE_CONNECTED, s->user, s->pool, s->desktop, 0, 0,
                          unix_now(), &c.usage_id) < 0)
        log_warning("session=%" PRIu64 " usage cannot be recorded", c.id);
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_conns; i++)
        if (p->conns[i].id == c.id)
            p->conns[i].usage_id = c.usage_id;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* c is connected to desktop of pool: its row, its count, its usage. */
static void connection_begin(struct pools *p, const struct pools_connection *c, const char *desktop,
                             const char *pool)
{
    struct store_session s = {
        .id = c->id,
        .session_id = c->session_id,
        .kind = c->kind,
        .started = unix_now(),
    };

    copy(s.token_hash, sizeof(s.token_hash), c->token_hash);
    copy(s.user, sizeof(s.user), c->user);
    copy(s.desktop, sizeof(s.desktop), desktop);
    copy(s.client, sizeof(s.client), c->client);
    copy(s.pool, sizeof(s.pool), pool);
    (void)connection_track(p, &s, true);
}

void pools_session_begin(struct pools *p, const struct pools_connection *c, const char *desktop)
{
    struct store_desktop d;

    connection_begin(p, c, desktop, store_desktop_get(p->store, desktop, &d) == 0 ? d.pool : "");
}

/* Constant time: the hash is a secret's stand-in. */
static bool hash_equal(const char *a, const char *b)
{
    size_t n = strlen(a);
    unsigned char diff = n != strlen(b) || n == 0;

    for (size_t i = 0; i < n && i < strlen(b); i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int pools_session_reattach(struct pools *p, uint64_t id, const char *token_hash,
                           struct store_session *ret)
{
    int r = store_session_get(p->store, id, ret);

    if (r < 0)
        return r;
    if (ret->ended || !hash_equal(ret->token_hash, token_hash))
        return -EPERM;
    return connection_track(p, ret, false);
}

int pools_open_sessions(struct pools *p, struct store_session **ret, size_t *ret_n)
{
    return store_session_list(p->store, true, 0, ret, ret_n);
}

int pools_pool_get(struct pools *p, const char *name, struct store_pool *ret)
{
    return store_pool_get(p->store, name, ret);
}

/* The pool's logoff action, when the last client left. */
int pools_logoff(struct pools *p, const char *name, const char *user)
{
    bool skipped = false;
    struct pools_error err = {"", ""};
    struct store_desktop d;
    struct store_pool pool;
    struct virt_error verr = {""};
    struct busy_name node;
    int r = 0;

    desktop_lock(p, &node, name);
    if (connected(p, name) > 0 || store_desktop_get(p->store, name, &d) < 0 ||
        !streq(d.owner, user) || store_pool_get(p->store, d.pool, &pool) < 0) {
        /* Someone came back meanwhile, an admin gave the desktop to someone else, or it
         * is gone. */
        skipped = true;
        goto out;
    }

    if (pool.kind == STORE_POOL_FLOATING) {
        /* Floating: back to the template and to the pool, whatever the action. */
        r = desktop_reset_locked(p, &d, &err);
        if (r == 0)
            r = desktop_change_owner(p, &d, &pool, "", &err);
        goto out;
    }
    switch (pool.logoff) {
    case STORE_LOGOFF_KEEP:
        break;
    case STORE_LOGOFF_SUSPEND:
        pools_expect_stop(p, name);
        r = virt_desktop_suspend(p->virt, name, &verr);
        if (r < 0) {
            (void)pools_expect_stop_take(p, name);
            fail(&err, "", "desktop %s: managed save failed: %s", name, verr.message);
        } else
            usage_running_end(p, name);
        break;
    case STORE_LOGOFF_SHUTDOWN:
        r = desktop_power_off(p, name, true, &err);
        break;
    case STORE_LOGOFF_RESET:
        r = desktop_reset_locked(p, &d, &err);
        break;
    }
out:
    desktop_unlock(p, &node);
    if (r < 0)
        log_error("logoff of desktop %s failed: %s", name, err.log);
    else if (skipped)
        log_info("logoff skipped name=%s user=%s: connected again, no longer theirs, or gone", name,
                 user);
    else
        log_info("logoff done name=%s", name);
    return r;
}

void pools_session_end(struct pools *p, uint64_t connection_id)
{
    struct connection c = {0};
    bool found = false;

    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_conns; i++)
        if (p->conns[i].id == connection_id) {
            c = p->conns[i];
            p->conns[i] = p->conns[--p->n_conns];
            found = true;
            break;
        }
    pthread_mutex_unlock(&p->lock);
    /* Also rows of a previous broker run that never re-attached. */
    (void)store_session_end(p->store, connection_id, unix_now());
    if (found && c.usage_id)
        (void)store_usage_end(p->store, c.usage_id, unix_now());
}

/* ---- spares ---- */

/* Free READY desktops of a pool: how many run (per doms, this round's listing), and
 * those that do not. */
static int spares_survey(struct pools *p, const char *pool, const struct virt_domain_info *doms,
                         size_t n_doms, int *ret_running, struct store_desktop **ret_off,
                         size_t *ret_n_off)
{
    struct store_desktop *ds = NULL;
    size_t n = 0, n_off = 0;
    int r = store_desktop_list(p->store, pool, &ds, &n);

    if (r < 0)
        return r;
    *ret_running = 0;
    for (size_t i = 0; i < n; i++) {
        const struct virt_domain_info *dom = find_domain(doms, n_doms, ds[i].name);
        if (ds[i].owner[0] || ds[i].state != STORE_DESKTOP_READY)
            continue;
        if (dom && dom->state == VIRT_STATE_RUNNING)
            (*ret_running)++;
        else
            ds[n_off++] = ds[i]; /* compacts in place: n_off <= i */
    }
    *ret_off = ds;
    *ret_n_off = n_off;
    return 0;
}

/* Starts a free desktop that is off, or makes a new one. Returns 0, -EAGAIN when the
 * pool is full, or the error of the start (capacity, libvirt). */
static int spare_add(struct pools *p, const struct recipe *rc, const struct store_desktop *off,
                     size_t n_off, struct pools_error *err)
{
    struct busy_name node;
    struct store_desktop d;
    struct store_desktop *ds = NULL;
    size_t total = 0;
    int r;

    for (size_t i = 0; i < n_off; i++) {
        desktop_lock(p, &node, off[i].name);
        r = store_desktop_get(p->store, off[i].name, &d);
        if (r == 0 && !d.owner[0] && d.state == STORE_DESKTOP_READY) {
            r = desktop_power_on(p, &d, &rc->pool, err);
            desktop_unlock(p, &node);
            return r;
        }
        desktop_unlock(p, &node); /* taken meanwhile: try the next */
    }

    pthread_mutex_lock(&p->lock);
    r = store_desktop_list(p->store, rc->pool.name, &ds, &total);
    free(ds);
    if (r == 0 && total >= (size_t)rc->pool.max_desktops)
        r = -EAGAIN;
    if (r == 0)
        r = desktop_reserve_locked(p, rc, "", &d, &node, err);
    pthread_mutex_unlock(&p->lock);
    if (r == 0)
        r = desktop_build(p, rc, &d, &node, err);
    if (r == 0) {
        desktop_lock(p, &node, d.name);
        r = desktop_power_on(p, &d, &rc->pool, err);
        desktop_unlock(p, &node);
    }
    return r;
}

static void maintain_pool(struct pools *p, const struct store_pool *pool,
                          const struct virt_domain_info *doms, size_t n_doms)
{
    struct pools_error err = {"", ""};
    struct store_desktop *off = NULL;
    size_t n_off = 0;
    struct recipe rc;
    int running = 0, r;

    if (pool->min_spare == 0)
        return;
    if (spares_survey(p, pool->name, doms, n_doms, &running, &off, &n_off) < 0)
        return;
    if (running < pool->min_spare && recipe_load(p, pool->name, &rc, &err) < 0) {
        log_warning("pool %s: cannot make spares: %s", pool->name, err.log);
        running = pool->min_spare;
    }
    for (size_t i = 0; running < pool->min_spare; running++) {
        r = spare_add(p, &rc, off + i, n_off - i, &err);
        if (r == -EAGAIN)
            break; /* max_desktops reached: nothing to log every round */
        if (r < 0) {
            log_warning("pool %s: spare not started: %s", pool->name, err.log);
            break; /* capacity or libvirt: try again at the next round */
        }
        if (i < n_off)
            i++;
    }
    free(off);
}

/* Desktops that stopped by themselves (guest power-off, crash) stop counting as running.
 * Until libvirt's lifecycle events drive this, the end is noticed at the next round, so
 * a running interval can be up to spare_check_interval_s too long. */
static void usage_sync(struct pools *p, const struct virt_domain_info *doms, size_t n_doms)
{
    struct store_desktop *ds = NULL;
    size_t n = 0;

    if (store_desktop_list(p->store, NULL, &ds, &n) == 0)
        for (size_t i = 0; i < n; i++) {
            const struct virt_domain_info *dom = find_domain(doms, n_doms, ds[i].name);
            if (!dom || dom->state == VIRT_STATE_SHUTOFF || dom->state == VIRT_STATE_SAVED)
                usage_running_end(p, ds[i].name);
        }
    free(ds);
}

void pools_maintain(struct pools *p)
{
    struct store_pool *pools = NULL;
    struct virt_domain_info *doms = NULL;
    struct virt_error verr = {""};
    size_t n = 0, n_doms = 0;

    if (atomic_exchange(&p->maintaining, true))
        return; /* one round at a time */
    pools_events_maintain(p); /* restarts after a crash back-off that are due */
    /* One listing of libvirt per round, shared by every pool. */
    if (virt_list(p->virt, &doms, &n_doms, &verr) < 0)
        log_warning("maintenance: cannot list desktops: %s", verr.message);
    else {
        usage_sync(p, doms, n_doms);
        if (store_pool_list(p->store, &pools, &n) == 0)
            for (size_t i = 0; i < n; i++)
                maintain_pool(p, &pools[i], doms, n_doms);
    }
    free(pools);
    free(doms);
    atomic_store(&p->maintaining, false);
}

/* ---- reconciliation ---- */

static const struct virt_domain_info *find_domain(const struct virt_domain_info *doms, size_t n,
                                                  const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (streq(doms[i].name, name))
            return &doms[i];
    return NULL;
}

static bool find_name(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (streq(names[i], name))
            return true;
    return false;
}

/* A user connection row among the open ones is on desktop (it may re-attach). */
static bool session_open_on(const struct store_session *open, size_t n, const char *desktop)
{
    for (size_t i = 0; i < n; i++)
        if (open[i].kind == STORE_SESSION_USER && streq(open[i].desktop, desktop))
            return true;
    return false;
}

/* Brings one store row in line with libvirt (open: the open session rows). Returns 0 or
 * -errno (logged). */
static int reconcile_desktop(struct pools *p, struct store_desktop *d,
                             const struct virt_domain_info *dom, bool has_overlay,
                             const struct store_session *open, size_t n_open)
{
    struct pools_error err = {"", ""};
    struct virt_error verr = {""};
    struct recipe rc;
    struct store_pool pool;
    int r = 0;

    switch (d->state) {
    case STORE_DESKTOP_FAILED:
        /* Left as it is, owner included, until an admin starts or resets it. */
        log_info("reconcile: desktop %s is failed; left alone", d->name);
        return 0;
    case STORE_DESKTOP_PROVISIONING:
        if (dom && has_overlay) {
            log_info("reconcile: desktop %s was provisioned, marking ready", d->name);
            r = store_desktop_set_state(p->store, d->name, STORE_DESKTOP_READY);
            d->state = STORE_DESKTOP_READY;
            break;
        }
        log_info("reconcile: desktop %s was half provisioned, rolling back", d->name);
        desktop_unmake(p, d->name);
        return store_desktop_delete(p->store, d->name);
    case STORE_DESKTOP_DELETING:
        log_info("reconcile: finishing the deletion of desktop %s", d->name);
        desktop_unmake(p, d->name);
        return store_desktop_delete(p->store, d->name);
    case STORE_DESKTOP_RESETTING:
        log_info("reconcile: finishing the reset of desktop %s", d->name);
        r = desktop_reset_locked(p, d, &err);
        d->state = STORE_DESKTOP_READY;
        break;
    case STORE_DESKTOP_READY:
        if (dom) {
            if (!streq(dom->owner, d->owner)) {
                log_warning("reconcile: desktop %s owner in libvirt '%s', in the store '%s': "
                            "the store wins",
                            d->name, dom->owner, d->owner);
                (void)virt_desktop_set_owner(p->virt, d->name, d->owner, &verr);
            }
            break;
        }
        if (!has_overlay && !d->owner[0]) {
            log_warning("reconcile: free desktop %s has neither domain nor disk, dropped",
                        d->name);
            return store_desktop_delete(p->store, d->name);
        }
        r = recipe_load(p, d->pool, &rc, &err);
        if (r == 0 && has_overlay) {
            char created[64];
            struct virt_desktop_spec spec = {
                .name = d->name,
                .pool = d->pool,
                .owner = d->owner,
                .tmpl = &rc.vt,
                .vcpus = rc.pool.vcpus,
                .memory_mib = rc.pool.memory_mib,
                .created = created,
            };
            iso8601_now(created, sizeof(created));
            log_warning("reconcile: desktop %s lost its domain, redefining it on its disk",
                        d->name);
            r = virt_desktop_define(p->virt, &spec, &verr);
            if (r < 0)
                fail(&err, "", "%s", verr.message);
        } else if (r == 0) {
            log_error("reconcile: desktop %s of %s lost its disk; making a new one from the "
                      "template",
                      d->name, d->owner);
            desktop_unmake(p, d->name);
            r = desktop_make(p, &rc, d->name, d->owner, &err);
        }
        break;
    }
    if (r < 0)
        return log_error_errno(r, "reconcile: desktop %s: %s", d->name, err.log);

    /* A floating desktop goes back to the pool unless its user's connection may still
     * re-attach (an open session row: the broker logs it off if it does not). */
    if (d->owner[0] && store_pool_get(p->store, d->pool, &pool) == 0 &&
        pool.kind == STORE_POOL_FLOATING && !session_open_on(open, n_open, d->name)) {
        log_info("reconcile: floating desktop %s of %s released", d->name, d->owner);
        r = desktop_reset_locked(p, d, &err);
        if (r == 0)
            r = desktop_change_owner(p, d, &pool, "", &err);
        if (r < 0)
            return log_error_errno(r, "reconcile: desktop %s: %s", d->name, err.log);
    }
    return 0;
}

/* A domain of ours that the store does not know. */
static void reconcile_stray_domain(struct pools *p, const struct virt_domain_info *dom)
{
    struct store_pool pool;
    struct store_desktop d = {.state = STORE_DESKTOP_READY, .created = unix_now()};
    bool pool_known = dom->pool[0] && store_pool_get(p->store, dom->pool, &pool) == 0;
    int r;

    if (!pool_known && !dom->owner[0]) {
        log_info("reconcile: removing orphan desktop %s (no owner, no pool)", dom->name);
        desktop_unmake(p, dom->name);
        return;
    }
    if (!pool_known) {
        log_warning("reconcile: desktop %s of %s belongs to no known pool; left alone",
                    dom->name, dom->owner);
        return;
    }
    copy(d.name, sizeof(d.name), dom->name);
    copy(d.pool, sizeof(d.pool), dom->pool);
    copy(d.owner, sizeof(d.owner), dom->owner);
    r = store_desktop_add(p->store, &d);
    if (r < 0) {
        log_error_errno(r, "reconcile: cannot adopt desktop %s", dom->name);
        return;
    }
    log_warning("reconcile: adopted desktop %s pool=%s owner=%s", dom->name, dom->pool,
                dom->owner[0] ? dom->owner : "-");
    if (d.owner[0] && pool.kind == STORE_POOL_FLOATING) {
        /* As for rows: no client survives a restart. */
        struct pools_error err = {"", ""};
        struct busy_name node;

        desktop_lock(p, &node, d.name);
        r = desktop_reset_locked(p, &d, &err);
        if (r == 0)
            r = desktop_change_owner(p, &d, &pool, "", &err);
        desktop_unlock(p, &node);
        if (r < 0)
            log_error_errno(r, "reconcile: desktop %s: %s", d.name, err.log);
    }
}

int pools_reconcile(struct pools *p)
{
    struct store_desktop *ds = NULL;
    struct virt_domain_info *doms = NULL;
    struct virt_error verr = {""};
    char **overlays = NULL;
    _cleanup_(freep) struct store_session *open = NULL;
    size_t n = 0, n_doms = 0, n_overlays = 0, n_open = 0;
    int64_t now = unix_now();
    int r, failures = 0;

    /* Open session rows stay open: their vdi-session processes may re-attach (the broker
     * ends the rows of those that do not). */
    r = store_session_list(p->store, true, 0, &open, &n_open);
    if (r == 0)
        r = store_desktop_list(p->store, NULL, &ds, &n);
    if (r == 0)
        r = virt_list(p->virt, &doms, &n_doms, &verr);
    if (r == 0)
        r = virt_overlay_list(p->virt, &overlays, &n_overlays, &verr);
    if (r < 0) {
        log_error_errno(r, "reconcile: cannot read state: %s", verr.message);
        goto out;
    }

    for (size_t i = 0; i < n; i++) {
        struct busy_name node;
        desktop_lock(p, &node, ds[i].name);
        (void)store_usage_end_open_for_desktop(p->store, ds[i].name, -1, now);
        if (reconcile_desktop(p, &ds[i], find_domain(doms, n_doms, ds[i].name),
                              find_name(overlays, n_overlays, ds[i].name), open, n_open) < 0)
            failures++;
        desktop_unlock(p, &node);
    }
    for (size_t i = 0; i < n_doms; i++) {
        bool known = false;
        for (size_t k = 0; k < n && !known; k++)
            known = streq(ds[k].name, doms[i].name);
        if (!known)
            reconcile_stray_domain(p, &doms[i]);
    }
    /* Again: rolling back and resetting above removed or replaced some. */
    for (size_t i = 0; i < n_overlays; i++)
        free(overlays[i]);
    free(overlays);
    overlays = NULL;
    n_overlays = 0;
    free(doms);
    doms = NULL;
    n_doms = 0;
    if (virt_overlay_list(p->virt, &overlays, &n_overlays, &verr) < 0 ||
        virt_list(p->virt, &doms, &n_doms, &verr) < 0)
        log_warning("reconcile: cannot list disks and domains again: %s", verr.message);
    for (size_t i = 0; i < n_overlays; i++) {
        struct store_desktop d;
        if (find_domain(doms, n_doms, overlays[i]) ||
            store_desktop_get(p->store, overlays[i], &d) == 0)
            continue;
        log_info("reconcile: removing orphan disk %s.qcow2", overlays[i]);
        if (virt_overlay_delete(p->virt, overlays[i], &verr) < 0)
            log_warning("reconcile: %s", verr.message);
    }

    /* Usage restarts now for what runs now. */
    free(doms);
    doms = NULL;
    free(ds);
    ds = NULL;
    if (virt_list(p->virt, &doms, &n_doms, &verr) == 0 &&
        store_desktop_list(p->store, NULL, &ds, &n) == 0)
        for (size_t i = 0; i < n; i++) {
            const struct virt_domain_info *dom = find_domain(doms, n_doms, ds[i].name);
            struct store_pool pool;
            if (dom && dom->state == VIRT_STATE_RUNNING &&
                store_pool_get(p->store, ds[i].pool, &pool) == 0)
                usage_running_begin(p, &ds[i], &pool);
        }
    log_info("reconcile: %zu desktops in the store, %zu domains, %d failures", n, n_doms,
             failures);
    r = failures ? -EIO : 0;
out:
    free(ds);
    free(doms);
    for (size_t i = 0; i < n_overlays; i++)
        free(overlays[i]);
    free(overlays);
    return r;
}

/* ---- administration ---- */

static int store_fail(struct pools_error *err, int r, const char *what, const char *name)
{
    char text[256];

    switch (r) {
    case -ENOENT:
        snprintf(text, sizeof(text), "No such %s '%s'", what, name);
        break;
    case -EEXIST:
        snprintf(text, sizeof(text), "The %s '%s' exists already", what, name);
        break;
    case -EBUSY:
        snprintf(text, sizeof(text), "The %s '%s' is in use", what, name);
        break;
    case -EINVAL:
        snprintf(text, sizeof(text), "Invalid %s '%s'", what, name);
        break;
    default:
        snprintf(text, sizeof(text), "The %s '%s' could not be changed (see the server log)",
                 what, name);
        break;
    }
    fail(err, text, "%s %s: %s", what, name, strerror(-r));
    return r;
}

static int invalid(struct pools_error *err, const char *text)
{
    fail(err, text, "invalid request: %s", text);
    return -EINVAL;
}

static bool readable_file(const char *path)
{
    return path[0] == '/' && access(path, R_OK) == 0;
}

int pools_template_add(struct pools *p, const struct store_template *t, struct pools_error *err)
{
    enum image_format format;
    uint64_t size;
    int r;

    if (!store_name_is_valid(t->name))
        return invalid(err, "A template name is 1 to 32 of a-z, 0-9 and '-'");
    if (t->disk[0] != '/')
        return invalid(err, "The template disk must be an absolute path");
    r = image_probe(t->disk, &format, &size);
    if (r < 0) {
        char text[256];
        snprintf(text, sizeof(text), "The disk %.200s is not a readable raw or qcow2 image",
                 t->disk);
        return invalid(err, text);
    }
    if ((t->kernel[0] && !readable_file(t->kernel)) || (t->initrd[0] && !readable_file(t->initrd)))
        return invalid(err, "kernel and initrd must be absolute paths of readable files");
    if (!t->kernel[0] && (t->initrd[0] || t->cmdline[0]))
        return invalid(err, "initrd and cmdline need a kernel");
    if (t->firmware == STORE_FIRMWARE_UEFI && !virt_uefi_firmware(NULL, NULL))
        return invalid(err, "UEFI firmware (OVMF, Debian package ovmf) is not installed");
    r = store_template_add(p->store, t);
    return r < 0 ? store_fail(err, r, "template", t->name) : 0;
}

int pools_template_delete(struct pools *p, const char *name, struct pools_error *err)
{
    int r = store_template_delete(p->store, name);
    return r < 0 ? store_fail(err, r, "template", name) : 0;
}

static int pool_check(struct pools *p, const struct store_pool *pool, struct pools_error *err)
{
    struct store_template t;

    if (!store_name_is_valid(pool->name))
        return invalid(err, "A pool name is 1 to 32 of a-z, 0-9 and '-'");
    if (pool->vcpus < 1 || pool->vcpus > 256)
        return invalid(err, "vcpus must be between 1 and 256");
    if (pool->memory_mib < 64 || pool->memory_mib > 4194304)
        return invalid(err, "memory_mib must be between 64 and 4194304");
    if (pool->max_desktops < 1 || pool->max_desktops > 10000)
        return invalid(err, "max_desktops must be between 1 and 10000");
    if (pool->min_spare < 0 || pool->min_spare > pool->max_desktops)
        return invalid(err, "min_spare must be between 0 and max_desktops");
    if (pool->kind == STORE_POOL_FLOATING && pool->logoff != STORE_LOGOFF_RESET)
        return invalid(err, "A floating pool always resets its desktops at logoff "
                            "(logoff must be reset)");
    if (store_template_get(p->store, pool->template_name, &t) < 0)
        return store_fail(err, -ENOENT, "template", pool->template_name);
    return 0;
}

int pools_pool_add(struct pools *p, const struct store_pool *pool, struct pools_error *err)
{
    int r = pool_check(p, pool, err);

    if (r < 0)
        return r;
    r = store_pool_add(p->store, pool);
    return r < 0 ? store_fail(err, r, "pool", pool->name) : 0;
}

int pools_pool_update(struct pools *p, const struct store_pool *pool, struct pools_error *err)
{
    struct store_pool old;
    int r = store_pool_get(p->store, pool->name, &old);

    if (r < 0)
        return store_fail(err, r, "pool", pool->name);
    if (old.kind != pool->kind)
        return invalid(err, "The kind of a pool cannot change (make a new pool)");
    r = pool_check(p, pool, err);
    if (r < 0)
        return r;
    r = store_pool_update(p->store, pool);
    return r < 0 ? store_fail(err, r, "pool", pool->name) : 0;
}

int pools_pool_delete(struct pools *p, const char *name, struct pools_error *err)
{
    struct store_desktop *ds = NULL;
    struct store_pool pool;
    size_t n = 0;
    int r = store_desktop_list(p->store, name, &ds, &n);

    if (r < 0)
        return store_fail(err, r, "pool", name);
    for (size_t i = 0; i < n; i++)
        if (ds[i].owner[0] || connected(p, ds[i].name)) {
            char text[256];
            snprintf(text, sizeof(text), "Pool '%s' has assigned desktops (%s): unassign them first",
                     name, ds[i].name);
            fail(err, text, "pool %s: desktop %s is assigned", name, ds[i].name);
            free(ds);
            return -EBUSY;
        }
    /* No new spares while its desktops go: maintenance would make them as fast as we
     * delete them. */
    if (store_pool_get(p->store, name, &pool) == 0 && pool.min_spare > 0) {
        pool.min_spare = 0;
        r = store_pool_update(p->store, &pool);
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        struct busy_name node;
        struct store_desktop d;

        desktop_lock(p, &node, ds[i].name);
        r = store_desktop_get(p->store, ds[i].name, &d);
        if (r == 0 && d.owner[0])
            r = -EBUSY; /* assigned meanwhile */
        if (r == 0)
            r = store_desktop_set_state(p->store, d.name, STORE_DESKTOP_DELETING);
        if (r == 0) {
            desktop_unmake(p, d.name);
            usage_running_end(p, d.name);
            r = store_desktop_delete(p->store, d.name);
        }
        desktop_unlock(p, &node);
    }
    free(ds);
    if (r == 0)
        r = store_pool_delete(p->store, name);
    return r < 0 ? store_fail(err, r, "pool", name) : 0;
}

int pools_entitlement_add(struct pools *p, const struct store_entitlement *e,
                          struct pools_error *err)
{
    int r;

    if (!username_is_valid(e->name))
        return invalid(err, "Invalid user or group name");
    r = store_entitlement_add(p->store, e);
    if (r == -ENOENT)
        return store_fail(err, r, "pool", e->pool);
    return r < 0 ? store_fail(err, r, "entitlement", e->name) : 0;
}

int pools_entitlement_delete(struct pools *p, const struct store_entitlement *e,
                             struct pools_error *err)
{
    int r = store_entitlement_delete(p->store, e);
    return r < 0 ? store_fail(err, r, "entitlement", e->name) : 0;
}

static void desktop_info_fill(struct pools *p, const struct store_desktop *d,
                              const struct virt_domain_info *doms, size_t n_doms,
                              struct pools_desktop_info *ret)
{
    const struct virt_domain_info *dom = find_domain(doms, n_doms, d->name);

    ret->desktop = *d;
    ret->power = dom ? dom->state : VIRT_STATE_MISSING;
    ret->connected = connected(p, d->name);
}

int pools_desktop_list(struct pools *p, const char *pool, struct pools_desktop_info **ret,
                       size_t *ret_n, struct pools_error *err)
{
    struct store_desktop *ds = NULL;
    struct virt_domain_info *doms = NULL;
    struct virt_error verr = {""};
    struct pools_desktop_info *out;
    size_t n = 0, n_doms = 0;
    int r = store_desktop_list(p->store, pool, &ds, &n);

    if (r < 0)
        return store_fail(err, r, "pool", pool ? pool : "*");
    r = virt_list(p->virt, &doms, &n_doms, &verr);
    if (r < 0) {
        free(ds);
        fail(err, "The virtualization host did not answer (see the server log)", "%s",
             verr.message);
        return r;
    }
    out = calloc(n ? n : 1, sizeof(*out));
    if (!out) {
        free(ds);
        free(doms);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        desktop_info_fill(p, &ds[i], doms, n_doms, &out[i]);
    free(ds);
    free(doms);
    *ret = out;
    *ret_n = n;
    return 0;
}

int pools_desktop_get(struct pools *p, const char *name, struct pools_desktop_info *ret,
                      struct pools_error *err)
{
    struct store_desktop d;
    struct virt_error verr = {""};
    struct virt_domain_info dom = {.state = VIRT_STATE_MISSING};
    int r = store_desktop_get(p->store, name, &d);

    if (r < 0)
        return store_fail(err, r, "desktop", name);
    copy(dom.name, sizeof(dom.name), name);
    if (virt_desktop_state(p->virt, name, &dom.state, &verr) < 0)
        dom.state = VIRT_STATE_MISSING;
    desktop_info_fill(p, &d, &dom, 1, ret);
    return 0;
}

/* Runs op on a desktop under its lock, with its row and pool. */
typedef int (*desktop_op)(struct pools *p, struct store_desktop *d, const struct store_pool *pool,
                          const char *arg, struct pools_error *err);

static int desktop_do(struct pools *p, const char *name, desktop_op op, const char *arg,
                      struct pools_error *err)
{
    struct busy_name node;
    struct store_desktop d;
    struct store_pool pool;
    int r;

    if (strlen(name) > STORE_DESKTOP_MAX)
        return store_fail(err, -ENOENT, "desktop", name);
    desktop_lock(p, &node, name);
    r = store_desktop_get(p->store, name, &d);
    if (r < 0)
        r = store_fail(err, r, "desktop", name);
    else if (store_pool_get(p->store, d.pool, &pool) < 0)
        r = store_fail(err, -EIO, "desktop", name);
    else if (d.state != STORE_DESKTOP_READY && d.state != STORE_DESKTOP_FAILED) {
        /* FAILED is fine: starting or resetting it is how an admin brings it back. */
        fail(err, "The desktop is being changed; try again in a moment", "desktop %s: state %s",
             name, store_desktop_state_to_string(d.state));
        r = -EBUSY;
    } else
        r = op(p, &d, &pool, arg, err);
    desktop_unlock(p, &node);
    return r;
}

static int op_assign(struct pools *p, struct store_desktop *d, const struct store_pool *pool,
                     const char *user, struct pools_error *err)
{
    if (pool->kind != STORE_POOL_DEDICATED)
        return invalid(err, "Only desktops of dedicated pools can be assigned");
    if (streq(d->owner, user))
        return 0;
    if (d->owner[0]) {
        char text[256];
        snprintf(text, sizeof(text), "Desktop %s is assigned to %s; unassign it first", d->name,
                 d->owner);
        fail(err, text, "desktop %s: owned by %s", d->name, d->owner);
        return -EBUSY;
    }
    return desktop_change_owner(p, d, pool, user, err);
}

static int op_unassign(struct pools *p, struct store_desktop *d, const struct store_pool *pool,
                       const char *arg, struct pools_error *err)
{
    int r = 0;

    (void)arg;
    if (connected(p, d->name)) {
        fail(err, "A user is connected to the desktop; disconnect the session first",
             "desktop %s: connected", d->name);
        return -EBUSY;
    }
    if (!d->owner[0])
        return 0;
    if (pool->kind == STORE_POOL_FLOATING)
        r = desktop_reset_locked(p, d, err); /* the next user gets a clean one */
    return r < 0 ? r : desktop_change_owner(p, d, pool, "", err);
}

static int op_start(struct pools *p, struct store_desktop *d, const struct store_pool *pool,
                    const char *arg, struct pools_error *err)
{
    int r;

    (void)arg;
    r = desktop_power_on(p, d, pool, err);
    if (r == 0 && d->state == STORE_DESKTOP_FAILED) {
        r = store_desktop_set_state(p->store, d->name, STORE_DESKTOP_READY);
        if (r < 0)
            return store_fail(err, r, "desktop", d->name);
        d->state = STORE_DESKTOP_READY;
        log_info("desktop recovered name=%s by=start", d->name);
    }
    if (r == 0)
        pools_events_forget(p, d->name); /* a fresh count of crashes */
    return r;
}

static int op_stop(struct pools *p, struct store_desktop *d, const struct store_pool *pool,
                   const char *arg, struct pools_error *err)
{
    (void)arg;
    (void)pool;
    return desktop_power_off(p, d->name, true, err);
}

static int op_reset(struct pools *p, struct store_desktop *d, const struct store_pool *pool,
                    const char *arg, struct pools_error *err)
{
    int r;

    (void)arg;
    (void)pool;
    if (connected(p, d->name)) {
        fail(err, "A user is connected to the desktop; disconnect the session first",
             "desktop %s: connected", d->name);
        return -EBUSY;
    }
    r = desktop_reset_locked(p, d, err); /* READY at the end, FAILED or not */
    if (r == 0 && d->state == STORE_DESKTOP_FAILED)
        log_info("desktop recovered name=%s by=reset", d->name);
    if (r == 0)
        pools_events_forget(p, d->name);
    return r;
}

int pools_desktop_assign(struct pools *p, const char *name, const char *user,
                         struct pools_error *err)
{
    if (!username_is_valid(user))
        return invalid(err, "Invalid user name");
    return desktop_do(p, name, op_assign, user, err);
}

int pools_desktop_unassign(struct pools *p, const char *name, struct pools_error *err)
{
    return desktop_do(p, name, op_unassign, NULL, err);
}

int pools_desktop_start(struct pools *p, const char *name, struct pools_error *err)
{
    return desktop_do(p, name, op_start, NULL, err);
}

int pools_desktop_stop(struct pools *p, const char *name, struct pools_error *err)
{
    return desktop_do(p, name, op_stop, NULL, err);
}

int pools_desktop_reset(struct pools *p, const char *name, struct pools_error *err)
{
    return desktop_do(p, name, op_reset, NULL, err);
}

/* ---- metrics ---- */

void pools_count_login(struct pools *p, bool ok)
{
    if (ok)
        p->logins_ok++;
    else
        p->logins_failed++;
}

int pools_metrics_write(struct pools *p, FILE *f)
{
    static const enum virt_state powers[] = {VIRT_STATE_SHUTOFF, VIRT_STATE_SAVED,
                                             VIRT_STATE_RUNNING, VIRT_STATE_PAUSED,
                                             VIRT_STATE_OTHER, VIRT_STATE_MISSING};
    struct pools_desktop_info *ds = NULL;
    struct store_pool *pools = NULL;
    struct pools_error err;
    size_t n = 0, n_pools = 0, sessions;
    int vcpus = 0;
    uint64_t memory = 0;
    int r;

    r = store_pool_list(p->store, &pools, &n_pools);
    if (r == 0)
        r = pools_desktop_list(p, NULL, &ds, &n, &err);
    if (r == 0)
        r = running_totals(p, NULL, &vcpus, &memory);
    if (r < 0) {
        free(pools);
        free(ds);
        return r;
    }
    fputs("# HELP vdi_desktops Desktops by pool and power state.\n"
          "# TYPE vdi_desktops gauge\n",
          f);
    for (size_t i = 0; i < n_pools; i++)
        for (size_t k = 0; k < ARRAY_SIZE(powers); k++) {
            unsigned count = 0;
            for (size_t d = 0; d < n; d++)
                count += streq(ds[d].desktop.pool, pools[i].name) && ds[d].power == powers[k];
            fprintf(f, "vdi_desktops{pool=\"%s\",state=\"%s\"} %u\n", pools[i].name,
                    virt_state_to_string(powers[k]), count);
        }
    fputs("# HELP vdi_desktops_assigned Desktops that have an owner, by pool.\n"
          "# TYPE vdi_desktops_assigned gauge\n",
          f);
    for (size_t i = 0; i < n_pools; i++) {
        unsigned count = 0;
        for (size_t d = 0; d < n; d++)
            count += streq(ds[d].desktop.pool, pools[i].name) && ds[d].desktop.owner[0];
        fprintf(f, "vdi_desktops_assigned{pool=\"%s\"} %u\n", pools[i].name, count);
    }
    pthread_mutex_lock(&p->lock);
    sessions = p->n_conns;
    pthread_mutex_unlock(&p->lock);
    fprintf(f,
            "# HELP vdi_sessions Clients connected to desktops.\n# TYPE vdi_sessions gauge\n"
            "vdi_sessions %zu\n",
            sessions);
    fprintf(f,
            "# HELP vdi_logins_total Logins by result.\n# TYPE vdi_logins_total counter\n"
            "vdi_logins_total{result=\"ok\"} %" PRIuFAST64 "\n"
            "vdi_logins_total{result=\"failed\"} %" PRIuFAST64 "\n",
            (uint_fast64_t)p->logins_ok, (uint_fast64_t)p->logins_failed);
    fprintf(f,
            "# HELP vdi_admission_refused_total Desktop starts refused by admission control.\n"
            "# TYPE vdi_admission_refused_total counter\nvdi_admission_refused_total %" PRIuFAST64
            "\n",
            (uint_fast64_t)p->admission_refused);
    fputs("# HELP vdi_provision_seconds Time to make a desktop (overlay and domain).\n"
          "# TYPE vdi_provision_seconds histogram\n",
          f);
    for (size_t i = 0; i < N_BUCKETS; i++)
        fprintf(f, "vdi_provision_seconds_bucket{le=\"%g\"} %" PRIuFAST64 "\n",
                provision_buckets[i], (uint_fast64_t)p->provision_bucket[i]);
    fprintf(f,
            "vdi_provision_seconds_bucket{le=\"+Inf\"} %" PRIuFAST64 "\n"
            "vdi_provision_seconds_sum %.3f\nvdi_provision_seconds_count %" PRIuFAST64 "\n",
            (uint_fast64_t)p->provisioned, (double)p->provision_ms_sum / 1000.0,
            (uint_fast64_t)p->provisioned);
    fprintf(f,
            "# HELP vdi_provision_failed_total Desktops that could not be made.\n"
            "# TYPE vdi_provision_failed_total counter\nvdi_provision_failed_total %" PRIuFAST64
            "\n",
            (uint_fast64_t)p->provision_failed);
    fprintf(f,
            "# HELP vdi_host_cpus Logical CPUs of the host.\n# TYPE vdi_host_cpus gauge\n"
            "vdi_host_cpus %u\n"
            "# HELP vdi_host_memory_mib Memory of the host.\n# TYPE vdi_host_memory_mib gauge\n"
            "vdi_host_memory_mib %" PRIu64 "\n"
            "# HELP vdi_running_vcpus vCPUs of running desktops.\n"
            "# TYPE vdi_running_vcpus gauge\nvdi_running_vcpus %d\n"
            "# HELP vdi_running_memory_mib Memory of running desktops.\n"
            "# TYPE vdi_running_memory_mib gauge\nvdi_running_memory_mib %" PRIu64 "\n",
            p->host.cpus, p->host.memory_mib, vcpus, memory);
    pools_events_metrics_write(p, f, pools, n_pools, ds, n);
    free(pools);
    free(ds);
    return ferror(f) ? -EIO : 0;
}
