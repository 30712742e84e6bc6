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
#include "virt.h"

struct broker_context {
    const struct broker_config *config;
    const struct spawn_params *spawn;     /* program, TLS files ... for vdi-session */
    const struct virt_template *template; /* the desktop template */
    struct virt *virt;                    /* outlives broker_run() */
    int listen_fd;                        /* non-blocking; owned by the caller */
    int signal_fd;                        /* signalfd for SIGTERM, SIGINT, SIGCHLD, SIGHUP */
};

/* Runs until SIGTERM or SIGINT, then tells sessions, joins the workers and returns 0
 * (VMs are left alone). Returns -errno when the loop cannot run at all. */
int broker_run(const struct broker_context *ctx);

/* Text for the user when a desktop could not be started (after "...: "). */
const char *broker_desktop_error_text(int error);
