/* Reading the audit log (session/audit.h) for GET /api/v1/audit: backwards from the end of
 * the file, so the newest events come first and the work stops after `limit` matches;
 * memory is one read block, the line being assembled and the answer. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api-internal.h"
#include "util.h"

#define AUDIT_READ_BLOCK (64 * 1024)
#define AUDIT_READ_LINE_MAX (1024 * 1024) /* longer lines are skipped */

/* "2026-11-21T04:29:25.123Z" (fraction optional) as unix seconds; false if it is not one. */
static bool iso_time_parse(const char *s, int64_t *ret)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return false;
    if (*end == '.') {
        end++;
        if (*end < '0' || *end > '9')
            return false;
        while (*end >= '0' && *end <= '9')
            end++;
    }
    if (end[0] != 'Z' || end[1] != '\0')
        return false;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *ret = (int64_t)t;
    return true;
}

static const char *field(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* "login" matches "login" and "login.failure", not "logins"; "admin.pool." matches
 * "admin.pool.add". */
static bool event_matches(const char *event, const char *want)
{
    size_t n = strlen(want);
    if (!event || strncmp(event, want, n) != 0)
        return false;
    return event[n] == '\0' || event[n] == '.' || (n > 0 && want[n - 1] == '.');
}

/* The address, with or without a port: "192.0.2.7", "192.0.2.7:50123", "[::1]:50123". */
static bool client_matches(const char *client, const char *want)
{
    size_t n = strlen(want);
    if (!client)
        return false;
    if (strncmp(client, want, n) == 0 && (client[n] == '\0' || client[n] == ':'))
        return true;
    return client[0] == '[' && strncmp(client + 1, want, n) == 0 && client[n + 1] == ']';
}

static bool event_wanted(struct json_object *o, const struct api_audit_query *q)
{
    if (q->event && !event_matches(field(o, "event"), q->event))
        return false;
    if (q->user) {
        const char *u = field(o, "user"), *a = field(o, "actor");
        if (!(u && streq(u, q->user)) && !(a && streq(a, q->user)))
            return false;
    }
    if (q->client && !client_matches(field(o, "client"), q->client))
        return false;
    if (q->since > 0 || q->until < INT64_MAX) {
        const char *t = field(o, "time");
        int64_t secs;
        if (!t || !iso_time_parse(t, &secs) || secs < q->since || secs >= q->until)
            return false;
    }
    return true;
}

/* One line (without its newline): added to events when it is a JSON object that matches.
 * Returns 1 when added, 0 when not, -ENOMEM. */
static int line_take(struct json_tokener *tok, const char *line, size_t len,
                     const struct api_audit_query *q, struct json_object *events)
{
    if (len == 0 || len > INT32_MAX)
        return 0;
    json_tokener_reset(tok);
    struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              json_tokener_get_parse_end(tok) == len && json_object_is_type(o, json_type_object);
    if (!ok || !event_wanted(o, q)) {
        api_json_putp(&o);
        return 0;
    }
    if (json_object_array_add(events, o) < 0) {
        json_object_put(o);
        return -ENOMEM;
    }
    return 1;
}

static void tokener_freep(struct json_tokener **tok)
{
    if (*tok)
        json_tokener_free(*tok);
}

/* Reads fd backwards. buf holds file bytes [off, off + len): whole lines, except that the
 * first one may still be missing its beginning. */
static int scan_backwards(int fd, off_t size, const struct api_audit_query *q,
                          struct json_object *events)
{
    _cleanup_(freep) char *buf = NULL;
    size_t len = 0, cap = 0, found = 0;
    off_t off = size;
    bool skipping = false; /* the bytes before off belong to a line that is too long */
    /* One parser for every line of the scan. */
    _cleanup_(tokener_freep) struct json_tokener *tok = json_tokener_new_ex(API_JSON_DEPTH);

    if (!tok)
        return -ENOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);

    while (found < q->limit) {
        size_t end = len > 0 && buf[len - 1] == '\n' ? len - 1 : len;
        char *nl = end > 0 ? memrchr(buf, '\n', end) : NULL;
        if (nl || (off == 0 && end > 0)) {
            size_t start = nl ? (size_t)(nl - buf) + 1 : 0;
            int r = line_take(tok, buf + start, end - start, q, events);
            if (r < 0)
                return r;
            found += (size_t)r;
            len = start;
            continue;
        }
        if (off == 0)
            break;
        if (len > AUDIT_READ_LINE_MAX) {
            len = 0;
            skipping = true;
        }

        size_t n = off > AUDIT_READ_BLOCK ? AUDIT_READ_BLOCK : (size_t)off;
        if (len + n > cap) {
            char *grown = realloc(buf, len + n);
            if (!grown)
                return -ENOMEM;
            buf = grown;
            cap = len + n;
        }
        memmove(buf + n, buf, len);
        off -= (off_t)n;
        ssize_t k = pread(fd, buf, n, off);
        if (k < 0 && errno == EINTR) {
            off += (off_t)n;
            memmove(buf, buf + n, len);
            continue;
        }
        if (k < 0)
            return -errno;
        if ((size_t)k != n)
            break; /* truncated meanwhile (rotation): what was read is the answer */
        len += n;
        if (skipping) {
            /* drop the rest of the long line: everything after the block's last newline */
            char *last = memrchr(buf, '\n', n);
            if (!last) {
                len = 0;
                continue;
            }
            len = (size_t)(last - buf) + 1;
            skipping = false;
        }
    }
    return 0;
}

int api_audit_read(const char *path, const struct api_audit_query *q, struct json_object **ret)
{
    _cleanup_(api_json_putp) struct json_object *o = json_object_new_object();
    struct json_object *events = json_object_new_array();
    if (!o || !events || json_object_object_add(o, "events", events) < 0) {
        api_json_putp(&events);
        return -ENOMEM;
    }
    if (!path || !q || q->limit == 0)
        return -EINVAL;

    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno != ENOENT)
            return -errno;
        *ret = TAKE_PTR(o); /* nothing recorded yet */
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    int r = scan_backwards(fd, st.st_size, q, events);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(o);
    return 0;
}
