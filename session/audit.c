/* The audit log (audit.h): JSON lines built by hand (no json-c in this layer), one write()
 * each on an O_APPEND descriptor. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define AUDIT_FIELDS_MAX 32 /* string pairs audit_event() takes */

static const char truncated_mark[] = ",\"truncated\":true";

struct audit {
    int fd; /* -1: syslog only */
    bool to_syslog;
    atomic_bool failing; /* the last write failed (logged once) */
    char *path;
};

int audit_open(const char *path, bool to_syslog, struct audit **ret)
{
    _cleanup_(closep) int fd = -1;

    if (!ret)
        return -EINVAL;
    if (path) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
            return -errno;
    }
    struct audit *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->path = strdup(path ? path : "syslog");
    if (!a->path) {
        free(a);
        return -ENOMEM;
    }
    a->fd = TAKE_FD(fd);
    a->to_syslog = to_syslog;
    *ret = a;
    return 0;
}

void audit_close(struct audit *a)
{
    if (!a)
        return;
    safe_close(a->fd);
    free(a->path);
    free(a);
}

/* ---- building a line ---- */

/* Content goes up to limit; the closing "}\n" (and the truncated mark) always fit after. */
struct line {
    char *buf;
    size_t len, limit;
    bool truncated;
};

static bool put(struct line *l, const char *s, size_t n)
{
    if (n > l->limit - l->len)
        return false;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one: overlong forms,
 * surrogates and code points above U+10FFFF are invalid too. A NUL ends a sequence. */
static size_t utf8_sequence(const unsigned char *s)
{
    unsigned c = s[0], cp, min;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* A JSON string. cut: a value too long for the line is cut at a character boundary (and
 * the line marked); else it goes in whole or not at all (false). */
static bool put_string(struct line *l, const char *s, bool cut)
{
    size_t start = l->len;
    const unsigned char *p = (const unsigned char *)s;

    if (!put(l, "\"", 1))
        return false;
    while (*p) {
        char esc[8];
        const char *out = esc;
        size_t n = 0, used = 1;

        switch (*p) {
        case '"':
            out = "\\\"", n = 2;
            break;
        case '\\':
            out = "\\\\", n = 2;
            break;
        case '\n':
            out = "\\n", n = 2;
            break;
        case '\r':
            out = "\\r", n = 2;
            break;
        case '\t':
            out = "\\t", n = 2;
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
            } else if ((used = utf8_sequence(p)) > 0) {
                out = (const char *)p, n = used;
            } else {
                out = "\\ufffd", n = 6, used = 1;
            }
            break;
        }
        /* room for this character and the closing quote */
        if (n + 1 > l->limit - l->len) {
            if (!cut) {
                l->len = start;
                return false;
            }
            l->truncated = true;
            break;
        }
        put(l, out, n);
        p += used;
    }
    return put(l, "\"", 1); /* always fits: reserved above */
}

/* ,"key":value; false (and nothing added) when even a cut value does not fit. */
static bool put_field(struct line *l, const struct audit_field *f)
{
    size_t start = l->len;
    char num[24];

    if (!put(l, ",", 1) || !put_string(l, f->key, false) || !put(l, ":", 1))
        goto undo;
    if (f->is_num) {
        int n = snprintf(num, sizeof(num), "%" PRId64, f->num);
        if (!put(l, num, (size_t)n))
            goto undo;
        return true;
    }
    if (l->limit - l->len < 2) /* not even "" */
        goto undo;
    return put_string(l, f->str, true);
undo:
    l->len = start;
    l->truncated = true;
    return false;
}

int audit_format(char *buf, int64_t time_ms, const char *event, const struct audit_field *fields,
                 size_t n)
{
    struct line l = {
        .buf = buf, .limit = AUDIT_LINE_MAX - (sizeof(truncated_mark) - 1) - 2, /* mark, "}\n" */
    };
    char stamp[64];
    struct tm tm;

    if (!buf || !event || !event[0] || (n > 0 && !fields))
        return -EINVAL;
    if (time_ms < 0)
        time_ms = 0;
    time_t secs = (time_t)(time_ms / 1000);
    if (!gmtime_r(&secs, &tm))
        return -EINVAL;
    size_t k = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + k, sizeof(stamp) - k, ".%03dZ", (int)(time_ms % 1000));

    put(&l, "{\"time\":\"", 9);
    put(&l, stamp, strlen(stamp));
    put(&l, "\",\"event\":", 10);
    put_string(&l, event, true);
    for (size_t i = 0; i < n; i++) {
        const struct audit_field *f = &fields[i];
        if (!f->key || (!f->is_num && !f->str) || streq(f->key, "time") || streq(f->key, "event"))
            continue;
        if (!put_field(&l, f))
            break;
    }
    if (l.truncated) {
        memcpy(buf + l.len, truncated_mark, sizeof(truncated_mark) - 1);
        l.len += sizeof(truncated_mark) - 1;
    }
    memcpy(buf + l.len, "}\n", 3);
    return (int)(l.len + 2);
}

/* ---- writing ---- */

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int audit_event_fields(struct audit *a, const char *event, const struct audit_field *fields,
                       size_t n)
{
    char buf[AUDIT_LINE_MAX + 1];
    int r = 0;

    if (!a)
        return 0;
    int len = audit_format(buf, unix_ms(), event, fields, n);
    if (len < 0)
        return len;

    if (a->fd >= 0) {
        ssize_t k;
        do
            k = write(a->fd, buf, (size_t)len);
        while (k < 0 && errno == EINTR);
        if (k < 0)
            r = -errno;
        else if (k != len)
            r = -EIO; /* a short write: the file system is full */
    }
    if (a->to_syslog)
        syslog(LOG_AUTHPRIV | LOG_INFO, "%.*s", len - 1, buf);

    if (r < 0) {
        if (!atomic_exchange(&a->failing, true))
            log_error_errno(r, "Cannot write to the audit log %s", a->path);
    } else if (atomic_load(&a->failing) && atomic_exchange(&a->failing, false))
        log_info("The audit log %s is written again", a->path);
    return r;
}

int audit_event(struct audit *a, const char *event, ...)
{
    struct audit_field fields[AUDIT_FIELDS_MAX];
    size_t n = 0;
    va_list ap;

    if (!a)
        return 0;
    va_start(ap, event);
    for (const char *key; (key = va_arg(ap, const char *));) {
        const char *value = va_arg(ap, const char *);
        if (n < ARRAY_SIZE(fields))
            fields[n++] = AUDIT_STR(key, value);
    }
    va_end(ap);
    return audit_event_fields(a, event, fields, n);
}
