#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "vdi";
static enum log_level log_max_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARNING] = "warning",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

void log_set_ident(const char *ident)
{
    log_ident = ident;
}

void log_set_level(enum log_level level)
{
    log_max_level = level;
}

enum log_level log_get_level(void)
{
    return log_max_level;
}

int log_level_from_string(const char *s, enum log_level *ret)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(s, level_names[i]) == 0) {
            *ret = (enum log_level)i;
            return 0;
        }
    return -EINVAL;
}

/* One write() per line so that lines of concurrent threads and processes sharing stderr
 * do not interleave. */
static void log_write(enum log_level level, const char *fmt, va_list ap, int error)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);

    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ld %s[%d] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), log_ident, (int)getpid(),
                     level_names[level]);
    if (n < 0)
        return;
    size_t len = (size_t)n;
    if (len < sizeof(line)) {
        n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
        if (n > 0)
            len += (size_t)n;
    }
    if (error != 0 && len < sizeof(line)) {
        char buf[128];
        n = snprintf(line + len, sizeof(line) - len, ": %s",
                     strerror_r(error < 0 ? -error : error, buf, sizeof(buf)));
        if (n > 0)
            len += (size_t)n;
    }
    if (len >= sizeof(line) - 1)
        len = sizeof(line) - 2; /* truncated: still end the line */
    /* Control characters from hostile input would forge log lines: replace them. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[len++] = '\n';
    if (write(STDERR_FILENO, line, len) < 0) {
        /* nowhere left to report it */
    }
}

void log_message(enum log_level level, const char *fmt, ...)
{
    if (level > log_max_level)
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    log_write(level, fmt, ap, 0);
    va_end(ap);
    errno = saved;
}

int log_errno(enum log_level level, int error, const char *fmt, ...)
{
    if (level <= log_max_level) {
        int saved = errno;
        va_list ap;
        va_start(ap, fmt);
        log_write(level, fmt, ap, error);
        va_end(ap);
        errno = saved;
    }
    return error;
}
