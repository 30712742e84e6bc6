/* The worker pool: completions come back through the fd, a slow job never holds up
 * another, shutdown joins and cancels. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "workers.h"

struct item {
    int id;
    sem_t *gate; /* run() waits on it when set */
    int *ran;    /* run() sets *ran = 1 */
    int *done_count;
    int *last_status;
    int *done_order; /* appends id */
    size_t *n_order;
};

static void item_run(void *userdata)
{
    struct item *it = userdata;
    if (it->gate)
        sem_wait(it->gate);
    if (it->ran)
        *it->ran = 1;
}

static void item_done(void *userdata, int status)
{
    struct item *it = userdata;
    (*it->done_count)++;
    if (it->last_status)
        *it->last_status = status;
    if (it->done_order)
        it->done_order[(*it->n_order)++] = it->id;
    free(it);
}

static struct item *item_new(int id, int *done_count)
{
    struct item *it = calloc(1, sizeof(*it));
    assert_non_null(it);
    it->id = id;
    it->done_count = done_count;
    return it;
}

static bool wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1;
}

static void test_many_jobs(void **state)
{
    (void)state;
    struct workers *w = NULL;
    int done = 0;

    assert_int_equal(workers_new(4, "test", &w), 0);
    for (int i = 0; i < 200; i++)
        assert_int_equal(workers_submit(w, item_run, item_done, item_new(i, &done)), 0);
    for (int tries = 0; done < 200 && tries < 500; tries++) {
        if (wait_readable(workers_fd(w), 100))
            workers_dispatch(w);
    }
    assert_int_equal(done, 200);
    assert_int_equal(workers_pending(w), 0);
    /* nothing left: dispatch is harmless */
    assert_int_equal(workers_dispatch(w), 0);
    workers_free(w);
}

static void test_slow_job_does_not_block_others(void **state)
{
    (void)state;
    struct workers *w = NULL;
    sem_t gate;
    int done = 0, slow_ran = 0, fast_ran = 0;
    int order[4];
    size_t n_order = 0;
    struct item *slow = item_new(1, &done), *fast = item_new(2, &done);

    assert_int_equal(sem_init(&gate, 0, 0), 0);
    slow->gate = &gate;
    slow->ran = &slow_ran;
    fast->ran = &fast_ran;
    slow->done_order = fast->done_order = order;
    slow->n_order = fast->n_order = &n_order;

    assert_int_equal(workers_new(2, "test", &w), 0);
    /* The slow one (a PAM check that sleeps) goes first. */
    assert_int_equal(workers_submit(w, item_run, item_done, slow), 0);
    assert_int_equal(workers_submit(w, item_run, item_done, fast), 0);

    assert_true(wait_readable(workers_fd(w), 5000));
    assert_int_equal(workers_dispatch(w), 1);
    assert_int_equal(n_order, 1);
    assert_int_equal(order[0], 2);
    assert_int_equal(fast_ran, 1);
    assert_int_equal(slow_ran, 0);
    assert_int_equal(workers_pending(w), 1);

    sem_post(&gate);
    assert_true(wait_readable(workers_fd(w), 5000));
    assert_int_equal(workers_dispatch(w), 1);
    assert_int_equal(order[1], 1);
    assert_int_equal(slow_ran, 1);
    workers_free(w);
    sem_destroy(&gate);
}

static void *release_later(void *arg)
{
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    sem_post(arg);
    return NULL;
}

static void test_free_joins_and_cancels(void **state)
{
    (void)state;
    struct workers *w = NULL;
    sem_t gate;
    pthread_t t;
    int done = 0, status_busy = 1, status_queued = 1, ran_queued = 0;
    struct item *busy = item_new(1, &done);

    assert_int_equal(sem_init(&gate, 0, 0), 0);
    busy->gate = &gate;
    busy->last_status = &status_busy;
    assert_int_equal(workers_new(1, "test", &w), 0);
    assert_int_equal(workers_submit(w, item_run, item_done, busy), 0);
    for (int i = 0; i < 3; i++) {
        struct item *q = item_new(10 + i, &done);
        q->last_status = &status_queued;
        q->ran = &ran_queued;
        assert_int_equal(workers_submit(w, item_run, item_done, q), 0);
    }
    {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* the busy job is running by now */
    }
    assert_int_equal(pthread_create(&t, NULL, release_later, &gate), 0);
    workers_free(w); /* blocks until the busy job ends */
    pthread_join(t, NULL);
    assert_int_equal(done, 4);
    assert_int_equal(status_busy, 0);
    assert_int_equal(status_queued, -ECANCELED);
    assert_int_equal(ran_queued, 0);
    sem_destroy(&gate);
    workers_free(NULL);
}

static void test_bad_args(void **state)
{
    (void)state;
    struct workers *w = NULL;
    assert_int_equal(workers_new(0, "test", &w), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_jobs),
        cmocka_unit_test(test_slow_job_does_not_block_others),
        cmocka_unit_test(test_free_joins_and_cancels),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
