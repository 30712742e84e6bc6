#pragma once
/* A scripted peer on the other end of a socketpair, run in a thread, for the thin client's
 * protocol tests. The script uses fs_read/fs_write/fs_expect; failures are recorded (not
 * asserted in the thread) and checked by fake_server_join(). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

#define FS_TIMEOUT_MS 5000

struct fake_server {
    int fd;      /* the script's end */
    int peer_fd; /* the end under test */
    pthread_t thread;
    void (*script)(struct fake_server *fs);
    void *data;
    char failure[256];
    size_t trailing; /* bytes the peer sent after the script ended, until EOF */
    bool count_trailing;
};

static inline void fs_fail(struct fake_server *fs, const char *what)
{
    if (!fs->failure[0])
        snprintf(fs->failure, sizeof(fs->failure), "%s", what);
}

static inline bool fs_write(struct fake_server *fs, const void *buf, size_t len)
{
    if (fs->failure[0])
        return false;
    if (fd_write_full(fs->fd, buf, len, now_ms() + FS_TIMEOUT_MS) < 0) {
        fs_fail(fs, "write failed");
        return false;
    }
    return true;
}

static inline bool fs_read(struct fake_server *fs, void *buf, size_t len)
{
    if (fs->failure[0])
        return false;
    if (fd_read_full(fs->fd, buf, len, now_ms() + FS_TIMEOUT_MS) < 0) {
        fs_fail(fs, "read failed");
        return false;
    }
    return true;
}

static inline bool fs_expect(struct fake_server *fs, const void *want, size_t len, const char *what)
{
    uint8_t buf[1024];
    if (len > sizeof(buf) || !fs_read(fs, buf, len))
        return false;
    if (memcmp(buf, want, len) != 0) {
        fs_fail(fs, what);
        return false;
    }
    return true;
}

static inline void fs_u32(struct fake_server *fs, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    fs_write(fs, b, 4);
}

static void *fake_server_main(void *arg)
{
    struct fake_server *fs = arg;
    fs->script(fs);
    if (fs->count_trailing) {
        uint8_t buf[256];
        for (;;) {
            ssize_t n = read(fs->fd, buf, sizeof(buf));
            if (n <= 0)
                break;
            fs->trailing += (size_t)n;
        }
    }
    shutdown(fs->fd, SHUT_RDWR);
    return NULL;
}

/* Starts script on a new socketpair; the end under test is fs->peer_fd. */
static inline void fake_server_start(struct fake_server *fs, void (*script)(struct fake_server *),
                                     void *data)
{
    int sv[2];
    memset(fs, 0, sizeof(*fs));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    fs->fd = sv[0];
    fs->peer_fd = sv[1];
    fs->script = script;
    fs->data = data;
    if (pthread_create(&fs->thread, NULL, fake_server_main, fs) != 0)
        abort();
}

/* Closes the end under test (so a trailing-byte count ends), joins, closes. */
static inline void fake_server_join(struct fake_server *fs)
{
    if (fs->peer_fd >= 0)
        shutdown(fs->peer_fd, SHUT_RDWR);
    pthread_join(fs->thread, NULL);
    safe_close(fs->fd);
    safe_close(fs->peer_fd);
    fs->fd = fs->peer_fd = -1;
}
