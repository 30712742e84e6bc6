/*
 * A stand-in for display/proxy.c (proxy.h) so vdi-session can be tested end to end
 * without libvncserver: it speaks just enough RFB from ClientInit on for a client to get
 * its ServerInit, then discards what the client sends. The latest status text becomes
 * the desktop name in ServerInit, so a test can see what vdi-session asked to show.
 * Test-only: linked into vdi-session-stub, never into the real program.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

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
    int upstream_fd;
};

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
        if (fd_write_full(p->fd, msg, 24 + name_len, now_ms() + 5000) == 0) {
            uint8_t buf[4096];
            ssize_t n;
            while ((n = read(p->fd, buf, sizeof(buf))) > 0)
                ; /* discard client messages */
        }
    } else {
        reason = "no ClientInit";
    }
    pthread_mutex_lock(&p->lock);
    snprintf(p->end_reason, sizeof(p->end_reason), "%s", reason);
    pthread_mutex_unlock(&p->lock);
    (void)eventfd_write(p->event_fd, 1);
    return NULL;
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
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int proxy_attach_upstream(struct proxy *p, int vnc_fd)
{
    if (p->upstream_fd >= 0) {
        close(vnc_fd);
        return -EBUSY;
    }
    p->upstream_fd = vnc_fd;
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

void proxy_free(struct proxy *p)
{
    if (!p)
        return;
    shutdown(p->fd, SHUT_RDWR);
    pthread_join(p->thread, NULL);
    close(p->fd);
    close(p->event_fd);
    safe_close(p->upstream_fd);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
