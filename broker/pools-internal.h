#pragma once
/*
 * Inside the pools module: struct pools and the helpers pools.c shares with
 * pools-events.c (lifecycle events: policies, crash back-off, FAILED). Not for other
 * modules; tests may include it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pools.h"

#define N_BUCKETS 8 /* provision_buckets in pools.c */

struct busy_name {
    const char *name;
    struct busy_name *next;
};

/* A client connected to a desktop (pools_claim, pools_session_begin). */
struct connection {
    uint64_t id; /* the connection's id (a session row) */
    enum store_session_kind kind;
    char user[STORE_NAME_MAX + 1];
    char pool[STORE_NAME_MAX + 1];
    char desktop[STORE_DESKTOP_MAX + 1];
    uint64_t usage_id;
};

/* A stop the pools cause themselves (pools_expect_stop): its event is not acted on. */
struct expected_stop {
    char name[STORE_DESKTOP_MAX + 1];
    uint64_t until_ms; /* forgotten then, if no event came */
};

#define POOLS_CRASH_LIMIT_MAX 16
#define POOLS_N_EVENTS (VIRT_EVENT_STOPPED + 1)
/* pools_claim's answer for a FAILED desktop. */
#define POOLS_TEXT_FAILED                                                                          \
    "Your desktop failed repeatedly and was stopped; your IT administrator has been told"

/* Unexpected stops that count towards the back-off (crashes; stops soon after a restart
 * by the stop policy), per desktop. */
struct desktop_health {
    char name[STORE_DESKTOP_MAX + 1];
    uint64_t stops_ms[POOLS_CRASH_LIMIT_MAX]; /* within the window, oldest first */
    size_t n_stops;
    uint64_t restarted_ms;     /* the policy started it then; 0 = not by the policy */
    uint64_t restart_after_ms; /* a delayed restart is due (pools_maintain); 0 = none */
};

/* pools-events.c's state; under pools.lock. */
struct pools_events {
    int crash_backoff_ms;
    int crash_limit;
    int crash_window_ms;
    int quick_stop_ms;
    struct expected_stop *expected;
    size_t n_expected, allocated_expected;
    struct desktop_health *health;
    size_t n_health, allocated_health;
    atomic_uint_fast64_t failed;                /* desktops marked FAILED */
    atomic_uint_fast64_t stops[POOLS_N_EVENTS]; /* by enum virt_event */
};

struct pools {
    struct store *store;
    struct virt *virt;
    double cpu_overcommit;
    double memory_overcommit;
    int shutdown_timeout_s;
    struct virt_host_capacity host;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct busy_name *busy;
    struct connection *conns;
    size_t n_conns, allocated_conns;
    /* Admission: vCPUs and memory of starts in flight (names in starting), counted once
     * whether or not libvirt already shows them running. Under admission. */
    pthread_mutex_t admission;
    struct busy_name *starting;
    int reserved_vcpus;
    uint64_t reserved_memory_mib;
    atomic_bool maintaining;
    struct pools_events events;

    atomic_uint_fast64_t logins_ok, logins_failed, admission_refused;
    atomic_uint_fast64_t provisioned, provision_failed;
    atomic_uint_fast64_t provision_bucket[N_BUCKETS];
    atomic_uint_fast64_t provision_ms_sum;
};

/* ---- pools.c, for pools-events.c ---- */

/* Serialises operations on one desktop; node lives on the caller's stack. */
void desktop_lock(struct pools *p, struct busy_name *node, const char *name);
void desktop_unlock(struct pools *p, struct busy_name *node);
/* Clients connected to desktop now. */
unsigned connected(struct pools *p, const char *desktop);
/* Ends the desktop's open running usage interval. */
void usage_running_end(struct pools *p, const char *desktop);
/* Caller holds the desktop lock for these. Start unless running, within admission
 * control (-ENOSPC). */
int desktop_power_on(struct pools *p, const struct store_desktop *d, const struct store_pool *pool,
                     struct pools_error *err);
/* Power off, fresh overlay, defined again; READY at the end. */
int desktop_reset_locked(struct pools *p, const struct store_desktop *d, struct pools_error *err);
/* New owner in the store (compare-and-set from d->owner) and in the metadata. */
int desktop_change_owner(struct pools *p, struct store_desktop *d, const struct store_pool *pool,
                         const char *owner, struct pools_error *err);

/* ---- pools-events.c, for pools.c ---- */

/* -EINVAL for out-of-range event options; fills defaults for 0. */
int pools_events_init(struct pools_events *e, const struct pools_options *o);
void pools_events_done(struct pools_events *e);
/* Right before the pools stop a desktop themselves (power off, managed save, undefine):
 * its stop event will be ignored. Caller holds the desktop lock; does nothing when the
 * desktop is not running. */
void pools_expect_stop(struct pools *p, const char *desktop);
/* Takes the mark of desktop away (its event came, or the stop failed); whether there was
 * one. */
bool pools_expect_stop_take(struct pools *p, const char *desktop);
/* Grows an array of n elements of size each (allocated of them) to hold one more.
 * 0 or -ENOMEM. */
int pools_grow(void **array, size_t n, size_t *allocated, size_t size);
/* An admin started or reset the desktop: its crash history is forgotten. */
void pools_events_forget(struct pools *p, const char *desktop);
/* pools_maintain: runs the delayed restarts that are due. */
void pools_events_maintain(struct pools *p);
/* pools_metrics_write: vdi_desktops_failed{pool}, vdi_desktop_crashes_total,
 * vdi_desktop_failures_total, vdi_desktop_stops_total{event}. */
void pools_events_metrics_write(struct pools *p, FILE *f, const struct store_pool *pools,
                                size_t n_pools, const struct pools_desktop_info *ds, size_t n);
