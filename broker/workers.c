/* Worker thread pool with a completion queue (workers.h). */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"

struct job {
    workers_run_fn run;
    workers_done_fn done;
    void *userdata;
    struct job *next;
};

/* FIFO of jobs. */
struct job_queue {
    struct job *head, *tail;
};

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job_queue queued, finished;
    size_t pending; /* queued + running */
    bool stopping;
    int event_fd;
    pthread_t *threads;
    unsigned n_threads;
};

static void queue_push(struct job_queue *q, struct job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
}

static struct job *queue_pop(struct job_queue *q)
{
    struct job *j = q->head;

    if (j) {
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
    }
    return j;
}

static void *worker_main(void *arg)
{
    struct workers *w = arg;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        struct job *j;

        while (!w->stopping && !w->queued.head)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->stopping)
            break;
        j = queue_pop(&w->queued);
        pthread_mutex_unlock(&w->lock);

        j->run(j->userdata);

        pthread_mutex_lock(&w->lock);
        queue_push(&w->finished, j);
        w->pending--;
        uint64_t one = 1;
        /* Cannot fail short of a counter overflow; the loop drains it every time. */
        if (write(w->event_fd, &one, sizeof(one)) < 0) {
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int workers_new(unsigned n, const char *name, struct workers **ret)
{
    struct workers *w;
    int r;

    if (n == 0 || n > 1024)
        return -EINVAL;
    w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->threads = calloc(n, sizeof(*w->threads));
    if (w->event_fd < 0 || !w->threads) {
        r = w->event_fd < 0 ? -errno : -ENOMEM;
        workers_free(w);
        return r;
    }
    for (unsigned i = 0; i < n; i++) {
        char tname[16];

        r = -pthread_create(&w->threads[i], NULL, worker_main, w);
        if (r < 0) {
            workers_free(w);
            return r;
        }
        w->n_threads++;
        snprintf(tname, sizeof(tname), "%.10s-%u", name, i);
        pthread_setname_np(w->threads[i], tname);
    }
    *ret = w;
    return 0;
}

int workers_fd(const struct workers *w)
{
    return w->event_fd;
}

int workers_submit(struct workers *w, workers_run_fn run, workers_done_fn done, void *userdata)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!j)
        return -ENOMEM;
    j->run = run;
    j->done = done;
    j->userdata = userdata;

    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->lock);
        free(j);
        return -ESHUTDOWN;
    }
    queue_push(&w->queued, j);
    w->pending++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

size_t workers_dispatch(struct workers *w)
{
    struct job_queue done;
    struct job *j;
    uint64_t value;
    size_t n = 0;

    if (read(w->event_fd, &value, sizeof(value)) < 0) {
        /* EAGAIN: nothing signalled; finished jobs are still checked below. */
    }
    pthread_mutex_lock(&w->lock);
    done = w->finished;
    w->finished = (struct job_queue){0};
    pthread_mutex_unlock(&w->lock);

    while ((j = queue_pop(&done))) {
        j->done(j->userdata, 0);
        free(j);
        n++;
    }
    return n;
}

size_t workers_pending(struct workers *w)
{
    size_t n;

    pthread_mutex_lock(&w->lock);
    n = w->pending;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void workers_free(struct workers *w)
{
    struct job *j;

    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < w->n_threads; i++)
        pthread_join(w->threads[i], NULL);

    while ((j = queue_pop(&w->finished))) {
        j->done(j->userdata, 0);
        free(j);
    }
    while ((j = queue_pop(&w->queued))) {
        j->done(j->userdata, -ECANCELED);
        free(j);
    }
    safe_close(w->event_fd);
    free(w->threads);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
