#include "prompt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

int prompt_secret_from_file(const char *path, size_t max, char **ret)
{
    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode) && (st.st_mode & 077))
        log_warning("password file %s is accessible by other users (mode %03o)", path,
                    (unsigned)(st.st_mode & 0777));

    /* Room for max bytes, a line end, and one more to notice an over-long line. */
    size_t cap = max + 2;
    _cleanup_(secret_freep) char *buf = calloc(1, cap + 1);
    if (!buf)
        return -ENOMEM;
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t)n;
        if (memchr(buf, '\n', len))
            break;
    }
    char *nl = memchr(buf, '\n', len);
    size_t line = nl ? (size_t)(nl - buf) : len;
    if (line > 0 && buf[line - 1] == '\r')
        line--;
    if (line > max) {
        explicit_bzero(buf, cap);
        return -E2BIG;
    }
    explicit_bzero(buf + line, cap - line);
    if (line == 0)
        return -ENODATA;
    *ret = TAKE_PTR(buf);
    return 0;
}

int prompt_preset_password(const char *password_file, size_t max, char **ret)
{
    *ret = NULL;
    if (password_file)
        return prompt_secret_from_file(password_file, max, ret);
    char *env = getenv("VDI_PASSWORD");
    if (!env)
        return 0;
    size_t len = strlen(env);
    if (len > max)
        return -E2BIG;
    *ret = strdup(env);
    /* Leave no copy in our environment (children, /proc/PID/environ). */
    explicit_bzero(env, len);
    unsetenv("VDI_PASSWORD");
    return *ret ? 0 : -ENOMEM;
}
