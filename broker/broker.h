#pragma once
/*
 * The broker's event loop: one thread, poll() over the listening socket, a signalfd
 * (SIGTERM/SIGINT: shut down; SIGCHLD: reap sessions), the worker pools' completion fds,
 * the re-attach socket, the inbox and every connection's control socket. It never
 * blocks: PAM checks and libvirt calls run in the worker pools (workers.h), one job per
 * step.
 */
#include "broker-config.h"
#include "certs.h"
#include "broker-spawn.h"
#include <stdbool.h>
#include <sys/types.h>

#include "audit.h"
#include "pools.h"
#include "session-info.h"
#include "throttle.h"
#include "virt.h"

/* Requests from other threads to the event loop: the admin API's (which wait for the
 * answer, a few seconds at most) and libvirt's events (which do not). */
struct broker_inbox;

int broker_inbox_new(struct broker_inbox **ret);
void broker_inbox_free(struct broker_inbox *inbox);
/* Readable when requests wait (the loop polls it). */
int broker_inbox_fd(const struct broker_inbox *inbox);
/* A copy of every desktop session (malloc'd array). 0, -ENOMEM, -ETIMEDOUT, -ESHUTDOWN. */
int broker_inbox_sessions(void *inbox, struct session_info **ret, size_t *ret_n);
/* Disconnects a session's user (logoff false: the desktop stays for the grace period) or
 * ends it (logoff true: every connection closed, the pool's logoff action now).
 * 0, -ENOENT (no such session, or not connected for a disconnect), -ETIMEDOUT,
 * -ESHUTDOWN. */
int broker_inbox_session_action(void *inbox, uint64_t session_id, bool logoff,
                                const char *by_admin);
/* A libvirt lifecycle event (virt_event_fn; runs on libvirt's event thread and never
 * blocks: the event is queued for the loop, or dropped with a log line if memory is out). */
void broker_inbox_desktop_event(void *inbox, const char *desktop, enum virt_event ev);

struct broker_context {
    const struct broker_config *config;
    const struct spawn_params *spawn; /* program, TLS files ... for vdi-session */
    struct pools *pools;              /* outlives broker_run() */
    struct broker_inbox *inbox;
    struct throttle *throttle; /* shared with the admin API */
    struct audit *audit;       /* may be NULL */
    int listen_fd;             /* non-blocking; owned by the caller */
    int reattach_fd;           /* listening SOCK_SEQPACKET for re-attaching sessions, or -1 */
    int signal_fd;             /* signalfd for SIGTERM, SIGINT, SIGCHLD, SIGHUP */
    uid_t session_uid;         /* vdi-session processes run as this uid (re-attach check) */
    uint64_t first_session_id; /* after the highest id in the store; 0 = 1 */
};

/* Runs until SIGTERM or SIGINT. Then, with reattach_timeout_s > 0, connections with a
 * desktop are left running (their vdi-session re-attaches to the next broker) and the
 * others are told the server restarts; else every connection is told the server shuts
 * down. Joins the workers and returns 0 (VMs are left alone). Returns -errno when the
 * loop cannot run at all. */
int broker_run(const struct broker_context *ctx);
