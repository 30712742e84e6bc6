#include "relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "connect.h"
#include "handoff.h"
#include "log.h"
#include "util.h"

struct relay {
    struct tls_conn *tls;
    int local_fd;
    int stop_fd; /* eventfd: readable = stop */
    int32_t encodings[HANDOFF_MAX_ENCODINGS];
    size_t n_encodings;
    pthread_t thread;
    bool joined;
    atomic_bool finished;
    int handoff_error, relay_error;
    struct tls_relay_stats stats;
};

static void *relay_thread(void *arg)
{
    struct relay *r = arg;
    struct rfb_stream up = client_tls_stream(r->tls);
    struct handoff_result hr;

    r->handoff_error = handoff_serve(r->local_fd, &up, r->encodings, r->n_encodings,
                                     now_ms() + RELAY_HANDOFF_TIMEOUT_MS, &hr);
    if (r->handoff_error == 0) {
        log_debug("handoff done width=%u height=%u", hr.width, hr.height);
        r->relay_error =
            tls_relay_run(r->tls, r->local_fd, r->stop_fd, RELAY_WRITE_TIMEOUT_MS, &r->stats);
        log_debug("relay ended r=%d (%s) from_server=%llu to_server=%llu", r->relay_error,
                  r->relay_error == -ECONNRESET ? "dropped without close_notify"
                  : r->relay_error < 0          ? strerror(-r->relay_error)
                                                : "closed",
                  (unsigned long long)r->stats.bytes_from_tls,
                  (unsigned long long)r->stats.bytes_to_tls);
    } else {
        log_debug("handoff failed: %s", strerror(-r->handoff_error));
    }
    /* libvncclient closing its end first is its own ending, not the server's. */
    if (!(r->handoff_error == 0 && r->relay_error == 0 && r->stats.local_closed))
        atomic_store(&r->finished, true);
    /* libvncclient must notice that the server is gone. */
    shutdown(r->local_fd, SHUT_RDWR);
    return NULL;
}

int relay_start(struct tls_conn *t, int local_fd, const int32_t *encodings, size_t n_encodings,
                struct relay **ret)
{
    struct relay *r = calloc(1, sizeof(*r));
    if (!r || n_encodings > HANDOFF_MAX_ENCODINGS) {
        free(r);
        tls_conn_free(t);
        safe_close(local_fd);
        return r ? -EINVAL : -ENOMEM;
    }
    r->tls = t;
    r->local_fd = local_fd;
    r->joined = true;
    memcpy(r->encodings, encodings, n_encodings * sizeof(*encodings));
    r->n_encodings = n_encodings;
    r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->stop_fd < 0) {
        int e = -errno;
        relay_free(r);
        return e;
    }
    int e = pthread_create(&r->thread, NULL, relay_thread, r);
    if (e != 0) {
        relay_free(r);
        return -e;
    }
    r->joined = false;
    pthread_setname_np(r->thread, "vdi-relay");
    *ret = r;
    return 0;
}

bool relay_finished(struct relay *r)
{
    return atomic_load(&r->finished);
}

void relay_stop(struct relay *r, int *handoff_error, int *relay_error)
{
    if (!r)
        return;
    if (!r->joined) {
        uint64_t one = 1;
        if (write(r->stop_fd, &one, sizeof(one)) < 0)
            log_debug("cannot signal the relay thread: %m");
        /* The handoff does not watch stop_fd; unblock it by closing the local side. */
        shutdown(r->local_fd, SHUT_RDWR);
        pthread_join(r->thread, NULL);
        r->joined = true;
    }
    if (handoff_error)
        *handoff_error = r->handoff_error;
    if (relay_error)
        *relay_error = r->relay_error;
}

void relay_free(struct relay *r)
{
    if (!r)
        return;
    relay_stop(r, NULL, NULL);
    tls_conn_free(r->tls);
    safe_close(r->local_fd);
    safe_close(r->stop_fd);
    free(r);
}
