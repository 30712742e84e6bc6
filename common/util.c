#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "pool-list.h"

int safe_close(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return -1;
}

void secret_free(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

int secret_file_read_line(const char *path, size_t max, unsigned *exposed_mode, char **ret)
{
    *exposed_mode = 0;
    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode) && (st.st_mode & 077))
        *exposed_mode = (unsigned)(st.st_mode & 0777);

    /* Room for max bytes, a line end, and one more to notice an over-long line. */
    size_t cap = max + 2;
    _cleanup_(secret_freep) char *buf = calloc(1, cap + 1);
    if (!buf)
        return -ENOMEM;
    size_t len = 0;
    while (len < cap && !memchr(buf, '\n', len)) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    char *nl = memchr(buf, '\n', len);
    size_t line = nl ? (size_t)(nl - buf) : len;
    if (line > 0 && buf[line - 1] == '\r')
        line--;
    explicit_bzero(buf + line, cap - line);
    if (line > max)
        return -E2BIG;
    if (line == 0)
        return -ENODATA;
    *ret = TAKE_PTR(buf);
    return 0;
}

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int deadline_left_ms(uint64_t deadline_ms)
{
    uint64_t now = now_ms();
    if (now >= deadline_ms)
        return 0;
    uint64_t left = deadline_ms - now;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

int fd_set_nonblock(int fd, bool nonblock)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    int nflags = nonblock ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    if (nflags != flags && fcntl(fd, F_SETFL, nflags) < 0)
        return -errno;
    return 0;
}

int fd_wait(int fd, short events, uint64_t deadline_ms)
{
    for (;;) {
        int left = deadline_left_ms(deadline_ms);
        if (left == 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r > 0)
            return 0;
    }
}

int fd_read_full(int fd, void *buf, size_t len, uint64_t deadline_ms)
{
    uint8_t *p = buf;
    while (len > 0) {
        int r = fd_wait(fd, POLLIN, deadline_ms);
        if (r < 0)
            return r;
        ssize_t n = read(fd, p, len);
        if (n == 0)
            return -EPIPE;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fd_write_full(int fd, const void *buf, size_t len, uint64_t deadline_ms)
{
    const uint8_t *p = buf;
    while (len > 0) {
        int r = fd_wait(fd, POLLOUT, deadline_ms);
        if (r < 0)
            return r;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

bool username_is_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 32 || name[0] == '-' || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool pool_name_is_valid(const char *name)
{
    size_t len = strnlen(name, 33);
    if (len == 0 || len > 32)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
        if (!ok)
            return false;
    }
    return true;
}

bool login_is_valid(const char *login)
{
    const char *at = strchr(login, '@');
    char user[33];
    size_t n = at ? (size_t)(at - login) : strlen(login);

    if (n == 0 || n >= sizeof(user))
        return false;
    memcpy(user, login, n);
    user[n] = '\0';
    if (!username_is_valid(user))
        return false;
    if (!at)
        return true;
    if (streq(at + 1, POOL_LIST_REQUEST))
        return true;
    if (at[1] == '#') {
        char *end;
        errno = 0;
        unsigned long long id = strtoull(at + 2, &end, 10);
        return at[2] >= '1' && at[2] <= '9' && errno == 0 && *end == '\0' && id > 0;
    }
    return pool_name_is_valid(at + 1);
}

void fingerprint_format(const uint8_t sha[FINGERPRINT_SHA256_SIZE], char out[FINGERPRINT_TEXT_SIZE])
{
    static const char hex[] = "0123456789ABCDEF";
    char *p = out;
    for (size_t i = 0; i < FINGERPRINT_SHA256_SIZE; i++) {
        if (i > 0)
            *p++ = ':';
        *p++ = hex[sha[i] >> 4];
        *p++ = hex[sha[i] & 15];
    }
    *p = 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int fingerprint_parse(const char *text, size_t len, uint8_t sha[FINGERPRINT_SHA256_SIZE])
{
    uint8_t tmp[FINGERPRINT_SHA256_SIZE];
    size_t i = 0;
    for (size_t b = 0; b < FINGERPRINT_SHA256_SIZE; b++) {
        if (b > 0 && i < len && text[i] == ':')
            i++;
        if (i + 2 > len)
            return -EINVAL;
        int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        tmp[b] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    if (i != len)
        return -EINVAL;
    memcpy(sha, tmp, sizeof(tmp));
    return 0;
}

int read_file_capped(const char *path, size_t max, char **ret, size_t *ret_size)
{
    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if ((uint64_t)st.st_size > max)
        return -EFBIG;
    /* Read one byte more than the cap: the file may grow between fstat and read. */
    _cleanup_(freep) char *buf = malloc(max + 2);
    if (!buf)
        return -ENOMEM;
    size_t got = 0;
    int r = 0;
    while (got <= max) {
        ssize_t k = read(fd, buf + got, max + 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r = -errno;
            break;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    if (r == 0 && got > max)
        r = -EFBIG;
    if (r < 0) {
        explicit_bzero(buf, got);
        return r;
    }
    buf[got] = '\0';
    *ret = TAKE_PTR(buf);
    *ret_size = got;
    return 0;
}
