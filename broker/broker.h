#pragma once
/*
 * The broker's event loop: one thread, poll() over the listening socket, a signalfd
 * (SIGTERM/SIGINT: shut down; SIGCHLD: reap sessions), the worker pool's completion fd
 * and every session's control socket. It never blocks: PAM checks and libvirt calls run
 * in the worker pool (workers.h), one job per login step.
 */
#include "broker-config.h"
#include "certs.h"
#include "broker-spawn.h"
#include "pools.h"

/* Requests from other threads (the admin API) to the event loop. */
struct broker_inbox;

int broker_inbox_new(struct broker_inbox **ret);
void broker_inbox_free(struct broker_inbox *inbox);
/* Asks the loop to disconnect a session, and waits (at most a few seconds) for the answer:
 * 0, -ENOENT when no such session has a desktop, -ETIMEDOUT, -ESHUTDOWN. Thread-safe; the
 * signature fits api_options.disconnect. */
int broker_inbox_disconnect(void *inbox, uint64_t session_id, const char *by_admin);

struct broker_context {
    const struct broker_config *config;
    const struct spawn_params *spawn; /* program, TLS files ... for vdi-session */
    struct pools *pools;              /* outlives broker_run() */
    struct broker_inbox *inbox;
    int listen_fd; /* non-blocking; owned by the caller */
    int signal_fd; /* signalfd for SIGTERM, SIGINT, SIGCHLD, SIGHUP */
    uint64_t first_session_id; /* after the highest id in the store; 0 = 1 */
};

/* Runs until SIGTERM or SIGINT, then tells sessions, joins the workers and returns 0
 * (VMs are left alone). Returns -errno when the loop cannot run at all. */
int broker_run(const struct broker_context *ctx);

