#pragma once
/*
 * A fixed pool of joinable, named worker threads for the blocking work of the broker
 * (PAM checks, libvirt calls), and a completion queue back to the event loop.
 *
 * The loop submits a job (run + done callbacks and a pointer). A worker calls run(); the
 * job then waits in the completion queue, and the loop, when workers_fd() is readable,
 * calls workers_dispatch(), which calls done() on the loop thread. One slow job occupies
 * one worker; the others keep going. Jobs start in submission order.
 */
#include <stddef.h>

struct workers;

/* Runs on a worker thread. */
typedef void (*workers_run_fn)(void *userdata);
/* Runs on the loop thread (workers_dispatch or workers_free). status is 0 when run()
 * ran, -ECANCELED when the pool was freed before the job started. Must free userdata. */
typedef void (*workers_done_fn)(void *userdata, int status);

/* Starts n threads named "<name>-<i>" (name at most 10 characters). Returns 0 or -errno. */
int workers_new(unsigned n, const char *name, struct workers **ret);
/* Stops taking jobs, lets running ones finish, joins the threads, then calls done() for
 * finished jobs (status 0) and never started ones (-ECANCELED). NULL ok. */
void workers_free(struct workers *w);

/* An eventfd, readable while finished jobs wait for workers_dispatch(). */
int workers_fd(const struct workers *w);
/* Queues a job. Returns 0, -ENOMEM, -ESHUTDOWN. On error, done() is not called. */
int workers_submit(struct workers *w, workers_run_fn run, workers_done_fn done, void *userdata);
/* Calls done() for every finished job. Returns how many. Loop thread only. */
size_t workers_dispatch(struct workers *w);
/* Jobs queued or running (for tests and logs). */
size_t workers_pending(struct workers *w);
