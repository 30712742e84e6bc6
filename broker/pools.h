#pragma once
/*
 * Desktop pools: which desktop a user gets, making and resetting desktops (linked clones),
 * keeping spares warm, admission control against the host's capacity, logoff actions,
 * usage intervals, and converging the store with libvirt after a crash.
 *
 * The store (store.h) is the record of what exists and who owns it; libvirt (virt.h) is
 * what runs. Every operation that changes both writes the store first with a state that
 * says what is in flight (PROVISIONING, RESETTING, DELETING), so that a broker killed in
 * the middle finds the half-done work at pools_reconcile() and finishes or rolls it back.
 *
 * Thread-safe; every function may block on libvirt (seconds): call from worker threads or
 * the admin API's threads, never from the broker's event loop. Operations on one desktop
 * are serialised; different desktops proceed in parallel.
 *
 * Errors: negative errno, and struct pools_error with a sentence for the end user or the
 * admin (no secrets, no libvirt internals) and a line for the log.
 *   -EINVAL  bad input (names, sizes, paths)
 *   -ENOENT  no such template/pool/desktop; for pools_claim: no entitlement
 *   -EPERM   pools_claim: not entitled to the requested pool
 *   -EEXIST  already exists
 *   -EBUSY   in use (desktop assigned or connected, pool with assigned desktops)
 *   -ENOSPC  admission control: starting it would exceed the overcommit limits
 *   -EAGAIN  the pool is at max_desktops and none is free
 *   -EIO     libvirt or the store failed (details in the log line)
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"
#include "virt.h"

struct pools;

struct pools_error {
    char text[256]; /* for the user / admin */
    char log[768];  /* for the log */
};

struct pools_options {
    struct store *store;
    struct virt *virt;
    double cpu_overcommit;    /* running vCPUs <= ratio * host CPUs */
    double memory_overcommit; /* running memory <= ratio * host memory */
    int shutdown_timeout_s;   /* ACPI shutdown before power off */
    /* Desktops that stop by themselves (pools_desktop_stopped); 0 = the default. The
     * first crash restarts at once, the next after crash_backoff_ms, x4 for each further
     * one; crash_limit crashes within crash_window_ms mark the desktop FAILED. A desktop
     * that its stop_action restarted and that stops again within quick_stop_ms counts as
     * crashed (no restart loop). */
    int crash_backoff_ms; /* default 5000 */
    int crash_limit;      /* default 3, 1..16 */
    int crash_window_ms;  /* default 600000 */
    int quick_stop_ms;    /* default 60000 */
};

int pools_new(const struct pools_options *o, struct pools **ret);
void pools_free(struct pools *p);
static inline void pools_freep(struct pools **p)
{
    pools_free(*p);
}

/* At broker start, before logins: compares the store with libvirt's domains that carry
 * our metadata and converges (see pools.c for the rules). Never deletes a desktop that
 * has an owner in the store or in its metadata. Returns 0 or -EIO. */
int pools_reconcile(struct pools *p);

/* Keeps min_spare free desktops running in every pool (within max_desktops and the
 * capacity limits), and restarts crashed desktops whose back-off is over. Run
 * periodically (every few seconds) from a worker. */
void pools_maintain(struct pools *p);

/* A desktop stopped without the pools asking (libvirt's lifecycle event, virt_watch):
 * the broker calls this from a worker once it has closed the desktop's connections.
 * Stops the pools cause themselves (logoff, reset, admin stop, deletion, reconciliation)
 * and stale events (the desktop runs again) are ignored. Otherwise the running usage
 * interval ends and the pool's stop_action applies: none leaves it off (the next login
 * starts it), restart starts it again (admission control applies), reset gives it a
 * fresh disk (floating: also releases it). A crash restarts it, at once the first time,
 * then after a back-off (pools_maintain runs the delayed restart); crash_limit crashes
 * within crash_window_ms mark it FAILED: logged as an error, counted in the metrics, and
 * neither handed out nor started until an admin starts or resets it. VIRT_EVENT_STARTED
 * is ignored. May block on libvirt (a start, a reset). */
void pools_desktop_stopped(struct pools *p, const char *desktop, enum virt_event ev);

/* ---- logins ---- */

/* Splits a VNC login name "user@pool" into its parts (pool "" when there is no '@';
 * POOL_LIST_REQUEST "?" for "user@?", common/pool-list.h). Returns 0 or -EINVAL when
 * either part is not a valid name. ("admin@#ID" is the broker's own, parsed before.) */
int pools_parse_login(const char *login, char user[STORE_NAME_MAX + 1],
                      char pool[STORE_NAME_MAX + 1]);

/* Names of the pools user is entitled to, directly or through one of its system groups
 * (getgrouplist). */
int pools_entitled(struct pools *p, const char *user, char (**ret)[STORE_NAME_MAX + 1],
                   size_t *ret_n);

/* The pool a login goes to: wanted (from "user@pool") if the user is entitled to it,
 * else the one pool the user is entitled to. -ENOENT no entitlement, -EPERM not entitled
 * to wanted, -EINVAL several pools and none named (err.text says how to name one). wanted
 * POOL_LIST_REQUEST ("user@?") is as "" except that several pools give, still as -EINVAL,
 * the pool list as err.text (POOL_LIST_TAG first, common/pool-list.h): the pools with
 * their template's OS, as many as fit a SecurityResult reason.
 * Called right after PAM, so that the client hears the reason in its SecurityResult. */
int pools_choose(struct pools *p, const char *user, const char *wanted,
                 char ret[STORE_NAME_MAX + 1], struct pools_error *err);

/* One client connection to a desktop, as the store records it (a session row). */
struct pools_connection {
    uint64_t id;         /* the connection's id */
    uint64_t session_id; /* the desktop session it belongs to */
    enum store_session_kind kind;
    char user[STORE_NAME_MAX + 1];
    char client[STORE_ADDRESS_MAX];
    char token_hash[65]; /* of its re-attach token; "" = none */
};

/* Finds or makes the desktop for c->user (in pool, or "" = the one pool the user is
 * entitled to), starts it, records c as connected to it, and returns its name. Dedicated
 * pools: the user's desktop, or a free one (a running spare first) that becomes theirs.
 * Floating: the desktop the user is using, or any free one that is assigned until
 * logoff. Makes a new desktop when none is free and the pool is below max_desktops.
 * The connection is counted before the desktop's lock is released, so that a logoff
 * racing this login leaves the desktop alone. On failure nothing is recorded. */
int pools_claim(struct pools *p, const struct pools_connection *c, const char *pool,
                char *ret_desktop, size_t size, struct pools_error *err);
int pools_open_display(struct pools *p, const char *desktop, int *ret_fd,
                       struct pools_error *err);

/* A connection to desktop that did not go through pools_claim (an admin shadowing) /
 * a connection ended (its row is closed; also rows of a previous broker run that never
 * re-attached). Neither runs the logoff action: the broker decides when (grace). */
void pools_session_begin(struct pools *p, const struct pools_connection *c, const char *desktop);
void pools_session_end(struct pools *p, uint64_t connection_id);
/* A connection of a previous broker run comes back: its row must be open and its token
 * hash match (constant-time). Counts it as connected again and fills *ret with the row.
 * Returns 0, -ENOENT, -EPERM (ended, or the token does not match), -EBUSY (already
 * connected), -EIO. */
int pools_session_reattach(struct pools *p, uint64_t connection_id, const char *token_hash,
                           struct store_session *ret);
/* Session rows still open (at start: those of the previous run). */
int pools_open_sessions(struct pools *p, struct store_session **ret, size_t *ret_n);
/* The pool's logoff action on user's desktop, unless a user is connected to it again or
 * it is no longer user's (an admin unassigned it meanwhile). Blocks for it (a shutdown can
 * take shutdown_timeout_s). Returns 0 or -errno (logged). */
int pools_logoff(struct pools *p, const char *desktop, const char *user);
/* A pool's record, for its session policies. 0, -ENOENT, -EIO. */
int pools_pool_get(struct pools *p, const char *name, struct store_pool *ret);

/* ---- administration (the admin API) ---- */

/* Checks the disk (and kernel/initrd) exist and are usable images. */
int pools_template_add(struct pools *p, const struct store_template *t, struct pools_error *err);
int pools_template_delete(struct pools *p, const char *name, struct pools_error *err);
int pools_pool_add(struct pools *p, const struct store_pool *pool, struct pools_error *err);
/* Changes take effect for desktops made or started afterwards. */
int pools_pool_update(struct pools *p, const struct store_pool *pool, struct pools_error *err);
/* Deletes the pool's free desktops (domain and overlay) and the pool; -EBUSY while any
 * desktop is assigned or connected. */
int pools_pool_delete(struct pools *p, const char *name, struct pools_error *err);

int pools_entitlement_add(struct pools *p, const struct store_entitlement *e,
                          struct pools_error *err);
int pools_entitlement_delete(struct pools *p, const struct store_entitlement *e,
                             struct pools_error *err);

struct pools_desktop_info {
    struct store_desktop desktop;
    enum virt_state power; /* what libvirt says */
    unsigned connected;    /* clients connected now */
};
int pools_desktop_list(struct pools *p, const char *pool, struct pools_desktop_info **ret,
                       size_t *ret_n, struct pools_error *err);
int pools_desktop_get(struct pools *p, const char *name, struct pools_desktop_info *ret,
                      struct pools_error *err);
/* assign: dedicated pools only (-EINVAL otherwise); -EBUSY if owned by someone else.
 * unassign: -EBUSY while a client is connected. */
int pools_desktop_assign(struct pools *p, const char *name, const char *user,
                         struct pools_error *err);
int pools_desktop_unassign(struct pools *p, const char *name, struct pools_error *err);
int pools_desktop_start(struct pools *p, const char *name, struct pools_error *err);
/* ACPI shutdown with the timeout, then power off. */
int pools_desktop_stop(struct pools *p, const char *name, struct pools_error *err);
/* Power off and replace the overlay with a fresh one (the disk goes back to the
 * template). -EBUSY while a client is connected. */
int pools_desktop_reset(struct pools *p, const char *name, struct pools_error *err);

/* Prometheus text: vdi_desktops{pool,state}, vdi_sessions, vdi_logins_total{result},
 * vdi_provision_seconds histogram, vdi_host_* capacity gauges, vdi_desktops_failed{pool},
 * vdi_desktop_crashes_total, vdi_desktop_failures_total, vdi_desktop_stops_total{event}. */
int pools_metrics_write(struct pools *p, FILE *f);
/* Counters the broker feeds. */
void pools_count_login(struct pools *p, bool ok);
