/* Bounded queue of input events from libvncserver's client thread to the upstream thread,
 * which is the only writer to the VM's connection (proxy-internal.h). */
#include "proxy-internal.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

int proxy_input_queue_init(struct proxy_input_queue *q)
{
    *q = (struct proxy_input_queue){.fd = -1};
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return -ENOMEM;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int r = pthread_cond_init(&q->space, &attr);
    pthread_condattr_destroy(&attr);
    if (r != 0)
        return -r;
    r = pthread_mutex_init(&q->lock, NULL);
    if (r != 0) {
        pthread_cond_destroy(&q->space);
        return -r;
    }
    q->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->fd < 0) {
        r = -errno;
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->space);
        return r;
    }
    return 0;
}

void proxy_input_queue_done(struct proxy_input_queue *q)
{
    if (q->fd < 0)
        return;
    q->fd = safe_close(q->fd);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->space);
}

void proxy_input_queue_set_accepting(struct proxy_input_queue *q, bool accepting)
{
    pthread_mutex_lock(&q->lock);
    q->accepting = accepting;
    if (!accepting) {
        q->count = 0;
        pthread_cond_broadcast(&q->space); /* wake producers waiting for room */
    }
    pthread_mutex_unlock(&q->lock);
}

static void signal_consumer(struct proxy_input_queue *q)
{
    uint64_t one = 1;
    /* EAGAIN only when the counter is saturated: it is readable anyway. */
    (void)!write(q->fd, &one, sizeof(one));
}

int proxy_input_queue_push(struct proxy_input_queue *q, const struct proxy_input *ev)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += PROXY_INPUT_PUSH_TIMEOUT_MS / 1000;
    deadline.tv_nsec += (long)(PROXY_INPUT_PUSH_TIMEOUT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&q->lock);
    for (;;) {
        if (!q->accepting) {
            pthread_mutex_unlock(&q->lock);
            return -ESHUTDOWN;
        }
        if (q->count < PROXY_INPUT_QUEUE_LEN)
            break;
        /* Full: pointer motion only updates the newest pointer position. */
        struct proxy_input *last = &q->ev[(q->head + q->count - 1) % PROXY_INPUT_QUEUE_LEN];
        if (ev->type == PROXY_INPUT_POINTER && last->type == PROXY_INPUT_POINTER &&
            last->buttons == ev->buttons) {
            *last = *ev;
            pthread_mutex_unlock(&q->lock);
            return 0;
        }
        int r = pthread_cond_timedwait(&q->space, &q->lock, &deadline);
        if (r == ETIMEDOUT && q->count >= PROXY_INPUT_QUEUE_LEN) {
            q->dropped++;
            pthread_mutex_unlock(&q->lock);
            return -EAGAIN;
        }
    }
    q->ev[(q->head + q->count) % PROXY_INPUT_QUEUE_LEN] = *ev;
    q->count++;
    pthread_mutex_unlock(&q->lock);
    signal_consumer(q);
    return 0;
}

size_t proxy_input_queue_pop(struct proxy_input_queue *q, struct proxy_input *out, size_t max)
{
    uint64_t v;
    pthread_mutex_lock(&q->lock);
    size_t n = q->count < max ? q->count : max;
    for (size_t i = 0; i < n; i++) {
        out[i] = q->ev[q->head];
        q->head = (q->head + 1) % PROXY_INPUT_QUEUE_LEN;
    }
    q->count -= (unsigned)n;
    if (q->count == 0)
        (void)!read(q->fd, &v, sizeof(v)); /* reset; a later push makes it readable again */
    if (n > 0)
        pthread_cond_broadcast(&q->space);
    pthread_mutex_unlock(&q->lock);
    return n;
}
