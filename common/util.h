#pragma once
/* Small helpers every module uses: scoped cleanup, overflow-checked sizes, fds, time. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Scoped cleanup: `_cleanup_(freep) char *s = NULL;` frees s when it leaves scope. */
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))

/* Hands a pointer out of a cleanup scope: `*ret = TAKE_PTR(obj);`. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _taken = (p);                                                                \
        (p) = NULL;                                                                                \
        _taken;                                                                                    \
    })
#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _taken_fd = (fd);                                                                      \
        (fd) = -1;                                                                                 \
        _taken_fd;                                                                                 \
    })

static inline void freep(void *p)
{
    free(*(void **)p);
}

/* Closes fd if >= 0, keeping errno; returns -1 so that `fd = safe_close(fd);` resets it. */
int safe_close(int fd);
static inline void closep(int *fd)
{
    safe_close(*fd);
}

/* Wipes then frees a secret string (NULL is fine). */
void secret_free(char *s);
static inline void secret_freep(char **s)
{
    secret_free(*s);
}

/* The first line of path, without its CR LF: a password file. At most max bytes, else
 * -E2BIG; what was read beyond the line is wiped. *exposed_mode gets the permission bits
 * when others than the owner may use a regular file (else 0), for the caller's warning.
 * Returns 0 (free *ret with secret_free()), -ENODATA for an empty line, -ENOMEM, -errno. */
int secret_file_read_line(const char *path, size_t max, unsigned *exposed_mode, char **ret);

/* a * b (* c) without overflow, for sizes taken from the network. Return false on overflow. */
static inline bool size_mul(size_t a, size_t b, size_t *ret)
{
    return !__builtin_mul_overflow(a, b, ret);
}

/* Monotonic clock in milliseconds, for deadlines. */
uint64_t now_ms(void);
/* Milliseconds left until deadline (0 when passed), capped to INT32_MAX for poll(). */
int deadline_left_ms(uint64_t deadline_ms);

int fd_set_nonblock(int fd, bool nonblock);

/* Waits until fd is ready for events (POLLIN / POLLOUT; HUP and errors count as ready:
 * the next read or write reports them) or the monotonic deadline passes.
 * Returns 0, -ETIMEDOUT or -errno. */
int fd_wait(int fd, short events, uint64_t deadline_ms);

/* Reads or writes exactly len bytes on a (blocking or non-blocking) fd before the
 * monotonic deadline. Return 0, -ETIMEDOUT, -EPIPE on EOF (read), or -errno. */
int fd_read_full(int fd, void *buf, size_t len, uint64_t deadline_ms);
int fd_write_full(int fd, const void *buf, size_t len, uint64_t deadline_ms);

static inline bool streq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}
/* A number as text for a call's argument list: u64_text(id).s lives until the end of the
 * full expression (C11 6.2.4p8), e.g. audit_event(a, "x", "session", u64_text(id).s, NULL). */
struct u64_text {
    char s[21];
};
static inline struct u64_text u64_text(uint64_t v)
{
    struct u64_text t;
    snprintf(t.s, sizeof(t.s), "%llu", (unsigned long long)v);
    return t;
}

static inline bool startswith(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A user name we accept anywhere (PAM, VM names, logs): 1..32 of [a-z A-Z 0-9 . _ -],
 * not starting with '-' or '.'. Everything else is refused before it reaches PAM or libvirt. */
bool username_is_valid(const char *name);

/* Reads a whole regular file of at most max bytes into *ret (NUL-terminated; the content
 * may hold NUL bytes, *ret_size counts them; free with free(), or secret_free() for
 * keys). Returns 0, -ENOENT, -EFBIG (larger than max, also when it grows while read),
 * -EINVAL (not a regular file), -ENOMEM, -errno. What was read is wiped on failure. */
int read_file_capped(const char *path, size_t max, char **ret, size_t *ret_size);

/* SHA-256 fingerprints as people read them: "AB:CD:..." (95 characters + NUL), and back
 * from text[0..len) (64 hex digits, case-insensitive; one ':' may follow any byte but the
 * last). Used for certificate pins (display/tls.h) and vdi-client's known_brokers. */
#define FINGERPRINT_SHA256_SIZE 32
#define FINGERPRINT_TEXT_SIZE 96
void fingerprint_format(const uint8_t sha[FINGERPRINT_SHA256_SIZE],
                        char out[FINGERPRINT_TEXT_SIZE]);
int fingerprint_parse(const char *text, size_t len, uint8_t sha[FINGERPRINT_SHA256_SIZE]);

/* A pool (or template) name: 1..32 of [a-z 0-9 -], starting with a letter or digit (the
 * broker's store_name_is_valid() rule). */
bool pool_name_is_valid(const char *name);

/* A VNC login name in one of the forms the broker accepts (broker/README.md): "USER",
 * "USER@POOL", "USER@?" (pool-list.h) or "USER@#ID" (an admin watching session ID, 1..
 * UINT64_MAX without leading zeros), with USER as username_is_valid() wants it. Such a
 * login is safe to log as it is. */
bool login_is_valid(const char *login);
