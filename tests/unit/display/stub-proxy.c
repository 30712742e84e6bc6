/*
 * A stand-in for display/proxy.c (proxy.h) so vdi-session can be tested end to end
 * without libvncserver: it speaks just enough RFB from ClientInit on for a client to get
 * its ServerInit, then parses (and drops) the client's messages, counting key, pointer and
 * QEMU extended key events as input unless view-only, like the real proxy; EOF on the
 * VM display fd ends it as "desktop lost", like the real proxy. The latest
 * status text becomes the desktop name in ServerInit, and every call vdi-session makes
 * that changes the picture is logged ("stub-proxy: ..."), so a test can see what
 * vdi-session asked to show. Test-only: linked into vdi-session-stub, never into the real
 * program.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "proxy.h"
#include "util.h"

struct proxy {
    int fd; /* our end of the socketpair */
    int event_fd;
    int width, height;
    pthread_t thread;
    pthread_mutex_t lock;
    char status[256];
    char end_reason[64];
    bool ended, desktop_lost;
    int upstream_fd;
    pthread_t watch_thread; /* EOF on upstream_fd: "the VM's display went away" */
    bool watching;
    int watch_stop;
    bool view_only;         /* atomic */
    uint64_t last_input_ms; /* atomic */
    uint64_t dropped;       /* atomic: input dropped as view-only */
    int input_wake_ms;
    int input_fd;
};

static void note_input(struct proxy *p)
{
    if (__atomic_load_n(&p->view_only, __ATOMIC_ACQUIRE)) {
        __atomic_fetch_add(&p->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    uint64_t now = now_ms();
    uint64_t prev = __atomic_exchange_n(&p->last_input_ms, now, __ATOMIC_ACQ_REL);
    if (p->input_fd >= 0 && (prev == 0 || now - prev >= (uint64_t)p->input_wake_ms))
        (void)eventfd_write(p->input_fd, 1);
}

/* Reads and drops one client message; returns false at EOF or on an unknown type. */
static bool client_message(struct proxy *p)
{
    uint64_t deadline = now_ms() + 60000;
    uint8_t type, buf[64];
    if (fd_read_full(p->fd, &type, 1, deadline) < 0)
        return false;
    switch (type) {
    case 0: /* SetPixelFormat */
        return fd_read_full(p->fd, buf, 19, deadline) == 0;
    case 2: { /* SetEncodings */
        if (fd_read_full(p->fd, buf, 3, deadline) < 0)
            return false;
        for (unsigned n = (unsigned)buf[1] << 8 | buf[2]; n > 0; n--)
            if (fd_read_full(p->fd, buf, 4, deadline) < 0)
                return false;
        return true;
    }
    case 3: /* FramebufferUpdateRequest */
        return fd_read_full(p->fd, buf, 9, deadline) == 0;
    case 4: /* KeyEvent */
    case 5: /* PointerEvent */
        if (fd_read_full(p->fd, buf, type == 4 ? 7 : 5, deadline) < 0)
            return false;
        note_input(p);
        return true;
    case 6: { /* ClientCutText */
        if (fd_read_full(p->fd, buf, 7, deadline) < 0)
            return false;
        uint32_t len =
            (uint32_t)buf[3] << 24 | (uint32_t)buf[4] << 16 | (uint32_t)buf[5] << 8 | buf[6];
        for (; len > 0; len--)
            if (fd_read_full(p->fd, buf, 1, deadline) < 0)
                return false;
        return true;
    }
    case 255: /* QEMU: only the extended key event (subtype 0) */
        if (fd_read_full(p->fd, buf, 11, deadline) < 0 || buf[0] != 0)
            return false;
        note_input(p);
        return true;
    default:
        return false;
    }
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = (uint8_t)v;
}

static void stub_end(struct proxy *p, const char *reason, bool desktop_lost)
{
    pthread_mutex_lock(&p->lock);
    bool first = !p->ended;
    if (first) {
        snprintf(p->end_reason, sizeof(p->end_reason), "%s", reason);
        p->ended = true;
        p->desktop_lost = desktop_lost;
    }
    pthread_mutex_unlock(&p->lock);
    if (first)
        (void)eventfd_write(p->event_fd, 1);
}

static void *stub_main(void *userdata)
{
    struct proxy *p = userdata;
    uint8_t shared;
    const char *reason = "client closed";

    if (fd_read_full(p->fd, &shared, 1, now_ms() + 60000) == 0) { /* ClientInit */
        uint8_t msg[24 + 256];
        pthread_mutex_lock(&p->lock);
        size_t name_len = strlen(p->status);
        memcpy(msg + 24, p->status, name_len);
        pthread_mutex_unlock(&p->lock);
        put_u16(msg, (uint16_t)p->width);
        put_u16(msg + 2, (uint16_t)p->height);
        uint8_t pf[16] = {32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0};
        memcpy(msg + 4, pf, sizeof(pf));
        put_u32(msg + 20, (uint32_t)name_len);
        if (fd_write_full(p->fd, msg, 24 + name_len, now_ms() + 5000) == 0)
            while (client_message(p))
                ;
    } else {
        reason = "no ClientInit";
    }
    stub_end(p, reason, false);
    return NULL;
}

static void *watch_main(void *userdata)
{
    struct proxy *p = userdata;
    char buf[256];
    for (;;) {
        struct pollfd f[2] = {{.fd = p->upstream_fd, .events = POLLIN},
                              {.fd = p->watch_stop, .events = POLLIN}};
        if (poll(f, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (f[1].revents)
            return NULL;
        ssize_t n = read(p->upstream_fd, buf, sizeof(buf));
        if (n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN)))
            continue;
        break;
    }
    log_info("stub-proxy: desktop lost");
    stub_end(p, "VM display: connection closed", true);
    return NULL;
}

static void watch_stop(struct proxy *p)
{
    if (!p->watching)
        return;
    (void)eventfd_write(p->watch_stop, 1);
    pthread_join(p->watch_thread, NULL);
    p->watching = false;
}

int proxy_new(const struct proxy_options *opts, struct proxy **ret, int *client_fd)
{
    int sv[2];
    struct proxy *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        free(p);
        return -errno;
    }
    p->fd = sv[0];
    p->width = opts->width;
    p->height = opts->height;
    p->upstream_fd = -1;
    p->input_fd = -1;
    p->watch_stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (opts->input_wake_ms > 0) {
        p->input_wake_ms = opts->input_wake_ms;
        p->input_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    p->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&p->lock, NULL);
    if (pthread_create(&p->thread, NULL, stub_main, p) != 0) {
        close(sv[0]);
        close(sv[1]);
        close(p->event_fd);
        free(p);
        return -EAGAIN;
    }
    *client_fd = sv[1];
    *ret = p;
    return 0;
}

int proxy_show_status(struct proxy *p, const char *text)
{
    pthread_mutex_lock(&p->lock);
    snprintf(p->status, sizeof(p->status), "%s", text);
    bool live = p->upstream_fd >= 0;
    pthread_mutex_unlock(&p->lock);
    log_info("stub-proxy: status text=\"%s\"%s", text, live ? " (hidden)" : "");
    return live ? -EBUSY : 0;
}

int proxy_show_notice(struct proxy *p, const char *text)
{
    (void)p;
    log_info("stub-proxy: notice text=\"%s\"", text ? text : "");
    return 0;
}

int proxy_close_desktop(struct proxy *p, const char *text)
{
    watch_stop(p);
    pthread_mutex_lock(&p->lock);
    snprintf(p->status, sizeof(p->status), "%s", text);
    p->upstream_fd = safe_close(p->upstream_fd);
    pthread_mutex_unlock(&p->lock);
    log_info("stub-proxy: close_desktop text=\"%s\"", text);
    return 0;
}

void proxy_set_view_only(struct proxy *p, bool view_only)
{
    __atomic_store_n(&p->view_only, view_only, __ATOMIC_RELEASE);
    log_info("stub-proxy: view_only=%d", view_only);
}

uint64_t proxy_last_input_ms(struct proxy *p)
{
    return __atomic_load_n(&p->last_input_ms, __ATOMIC_ACQUIRE);
}

int proxy_input_fd(struct proxy *p)
{
    return p->input_fd;
}

int proxy_attach_upstream(struct proxy *p, int vnc_fd)
{
    pthread_mutex_lock(&p->lock);
    bool busy = p->upstream_fd >= 0;
    if (!busy)
        p->upstream_fd = vnc_fd;
    pthread_mutex_unlock(&p->lock);
    if (busy) {
        close(vnc_fd);
        return -EBUSY;
    }
    p->watching = pthread_create(&p->watch_thread, NULL, watch_main, p) == 0;
    return 0;
}

int proxy_event_fd(struct proxy *p)
{
    return p->event_fd;
}

const char *proxy_end_reason(struct proxy *p)
{
    return p->end_reason;
}

bool proxy_desktop_lost(struct proxy *p)
{
    pthread_mutex_lock(&p->lock);
    bool lost = p->desktop_lost;
    pthread_mutex_unlock(&p->lock);
    return lost;
}

void proxy_free(struct proxy *p)
{
    if (!p)
        return;
    watch_stop(p);
    shutdown(p->fd, SHUT_RDWR);
    pthread_join(p->thread, NULL);
    log_info("stub-proxy: freed dropped_input=%" PRIu64,
             __atomic_load_n(&p->dropped, __ATOMIC_RELAXED));
    safe_close(p->input_fd);
    safe_close(p->watch_stop);
    close(p->fd);
    close(p->event_fd);
    safe_close(p->upstream_fd);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
