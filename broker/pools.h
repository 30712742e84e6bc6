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
 * capacity limits). Run periodically from a worker. */
void pools_maintain(struct pools *p);

/* ---- logins ---- */

/* Splits a VNC login name "user@pool" into its parts (pool "" when there is no '@').
 * Returns 0 or -EINVAL when either part is not a valid name. */
int pools_parse_login(const char *login, char user[STORE_NAME_MAX + 1],
                      char pool[STORE_NAME_MAX + 1]);

/* Names of the pools user is entitled to, directly or through one of its system groups
 * (getgrouplist). */
int pools_entitled(struct pools *p, const char *user, char (**ret)[STORE_NAME_MAX + 1],
                   size_t *ret_n);

/* The pool a login goes to: wanted (from "user@pool") if the user is entitled to it,
 * else the one pool the user is entitled to. -ENOENT no entitlement, -EPERM not entitled
 * to wanted, -EINVAL several pools and none named (err.text says how to name one).
 * Called right after PAM, so that the client hears the reason in its SecurityResult. */
int pools_choose(struct pools *p, const char *user, const char *wanted,
                 char ret[STORE_NAME_MAX + 1], struct pools_error *err);

/* Finds or makes the desktop for user (in pool, or "" = the one pool the user is
 * entitled to), starts it, and returns its name. Dedicated pools: the user's desktop, or
 * a free one (a running spare first) that becomes theirs. Floating: the desktop the user
 * is using, or any free one that is assigned until logoff. Makes a new desktop when none
 * is free and the pool is below max_desktops. */
int pools_claim(struct pools *p, const char *user, const char *pool, char *ret_desktop,
                size_t size, struct pools_error *err);
int pools_open_display(struct pools *p, const char *desktop, int *ret_fd,
                       struct pools_error *err);

/* A client is connected to desktop / has left it. When the last one leaves, the pool's
 * logoff action runs (end blocks for it). */
void pools_session_begin(struct pools *p, uint64_t session_id, const char *user,
                         const char *desktop, const char *client);
void pools_session_end(struct pools *p, uint64_t session_id);

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
 * vdi_provision_seconds histogram, vdi_host_* capacity gauges. */
int pools_metrics_write(struct pools *p, FILE *f);
/* Counters the broker feeds. */
void pools_count_login(struct pools *p, bool ok);
