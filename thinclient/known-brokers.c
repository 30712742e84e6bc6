#include "known-brokers.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client-state.h"
#include "log.h"
#include "util.h"

/* The longest host a line may name: a DNS name (253) or an IPv6 address with a zone. */
#define KNOWN_BROKERS_HOST_MAX 253

struct known_broker {
    const char *host; /* without brackets; not NUL-terminated */
    size_t host_len;
    int port;
    uint8_t sha[TLS_SHA256_SIZE];
};

int known_brokers_default_path(char **ret)
{
    return client_file_path("XDG_CONFIG_HOME", ".config", "known_brokers", ret);
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A host name or IPv4 address: [A-Za-z0-9.-_]. An IPv6 address (it has a ':'): hex
 * digits, ':' and '.', then optionally "%zone" with [A-Za-z0-9.-_]. */
static bool host_ok(const char *h, size_t len)
{
    if (len == 0 || len > KNOWN_BROKERS_HOST_MAX)
        return false;
    bool v6 = memchr(h, ':', len) != NULL, zone = false;
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        if (v6 && !zone && c == '%' && i > 0 && i + 1 < len)
            zone = true;
        else if (v6 && !zone && !(isxdigit((unsigned char)c) || c == ':' || c == '.'))
            return false;
        else if ((!v6 || zone) && !(is_alnum(c) || c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* 1..65535, digits only, no leading zero (the client writes "%d"). */
static int parse_port(const char *s, size_t len, int *ret)
{
    if (len == 0 || len > 5 || s[0] == '0')
        return -EINVAL;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *ret = v;
    return 0;
}

/* "HOST:PORT" or "[V6]:PORT". */
static int parse_target(const char *s, size_t len, struct known_broker *e)
{
    const char *colon;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || close + 1 == s + len || close[1] != ':')
            return -EINVAL;
        e->host = s + 1;
        e->host_len = (size_t)(close - e->host);
        if (!memchr(e->host, ':', e->host_len))
            return -EINVAL; /* brackets are for IPv6 only */
        colon = close + 1;
    } else {
        colon = memchr(s, ':', len);
        if (!colon)
            return -EINVAL;
        e->host = s;
        e->host_len = (size_t)(colon - s);
        if (memchr(colon + 1, ':', len - e->host_len - 1))
            return -EINVAL; /* IPv6 without brackets */
    }
    if (!host_ok(e->host, e->host_len))
        return -EINVAL;
    return parse_port(colon + 1, len - (size_t)(colon + 1 - s), &e->port);
}

enum line_kind { LINE_ENTRY, LINE_EMPTY, LINE_BAD };

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One line (without '\n'): "TARGET FINGERPRINT", blanks around and between. */
static enum line_kind parse_line(const char *line, size_t len, struct known_broker *e)
{
    if (len > KNOWN_BROKERS_LINE_MAX || memchr(line, '\0', len))
        return LINE_BAD;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    size_t i = 0;
    while (i < len && is_blank(line[i]))
        i++;
    if (i == len || line[i] == '#')
        return LINE_EMPTY;
    size_t target = i;
    while (i < len && !is_blank(line[i]))
        i++;
    size_t target_len = i - target;
    while (i < len && is_blank(line[i]))
        i++;
    size_t fp = i;
    while (i < len && !is_blank(line[i]))
        i++;
    size_t fp_len = i - fp;
    while (i < len && is_blank(line[i]))
        i++;
    if (i != len || fp_len == 0)
        return LINE_BAD;
    if (parse_target(line + target, target_len, e) < 0 ||
        fingerprint_parse(line + fp, fp_len, e->sha) < 0)
        return LINE_BAD;
    return LINE_ENTRY;
}

static bool entry_matches(const struct known_broker *e, const char *host, int port)
{
    return e->port == port && e->host_len == strlen(host) &&
           strncasecmp(e->host, host, e->host_len) == 0;
}

static int check_target(const char *host, int port)
{
    return host_ok(host, strlen(host)) && port >= 1 && port <= 65535 ? 0 : -EINVAL;
}

/* Calls fn for each line of text; warns once per malformed line. fn returns > 0 to stop. */
typedef int (*line_fn)(const char *line, size_t len, enum line_kind kind,
                       const struct known_broker *e, void *userdata);

static int for_each_line(const char *path, const char *text, size_t size, line_fn fn,
                         void *userdata)
{
    unsigned line_no = 0;
    for (const char *p = text, *end = text + size; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
        struct known_broker e = {0};
        enum line_kind kind = parse_line(p, len, &e);
        line_no++;
        if (kind == LINE_BAD)
            log_warning("%s:%u: ignoring a malformed line (expected HOST:PORT SHA256)", path,
                        line_no);
        int r = fn(p, len, kind, &e, userdata);
        if (r != 0)
            return r;
        p = eol ? eol + 1 : end;
    }
    return 0;
}

struct lookup {
    const char *host;
    int port;
    uint8_t *sha;
};

static int lookup_line(const char *line, size_t len, enum line_kind kind,
                       const struct known_broker *e, void *userdata)
{
    (void)line;
    (void)len;
    struct lookup *l = userdata;
    if (kind != LINE_ENTRY || !entry_matches(e, l->host, l->port))
        return 0;
    memcpy(l->sha, e->sha, TLS_SHA256_SIZE);
    return 1;
}

int known_brokers_lookup(const char *path, const char *host, int port, uint8_t sha[TLS_SHA256_SIZE])
{
    if (check_target(host, port) < 0)
        return -EINVAL;
    _cleanup_(freep) char *text = NULL;
    size_t size = 0;
    int r = read_file_capped(path, KNOWN_BROKERS_FILE_MAX, &text, &size);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    struct lookup l = {host, port, sha};
    return for_each_line(path, text, size, lookup_line, &l);
}

struct rewrite {
    const char *host;
    int port;
    FILE *out;
};

static int keep_line(const char *line, size_t len, enum line_kind kind,
                     const struct known_broker *e, void *userdata)
{
    struct rewrite *w = userdata;
    if (kind == LINE_ENTRY && entry_matches(e, w->host, w->port))
        return 0;
    fwrite(line, 1, len, w->out);
    fputc('\n', w->out);
    return 0;
}

int known_brokers_add(const char *path, const char *host, int port,
                      const uint8_t sha[TLS_SHA256_SIZE])
{
    if (check_target(host, port) < 0)
        return -EINVAL;
    _cleanup_(freep) char *old = NULL;
    size_t old_size = 0;
    int r = read_file_capped(path, KNOWN_BROKERS_FILE_MAX, &old, &old_size);
    if (r < 0 && r != -ENOENT)
        return r;

    _cleanup_(freep) char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return -ENOMEM;
    if (!old)
        fputs("# vdi-client: certificates accepted on first use (HOST:PORT SHA256)\n", f);
    struct rewrite w = {host, port, f};
    if (old)
        for_each_line(path, old, old_size, keep_line, &w);
    fprintf(f, strchr(host, ':') ? "[%s]:%d " : "%s:%d ", host, port);
    char fingerprint[FINGERPRINT_TEXT_SIZE];
    fingerprint_format(sha, fingerprint);
    fprintf(f, "%s\n", fingerprint);
    if (fclose(f) != 0)
        return -ENOMEM;
    if (size > KNOWN_BROKERS_FILE_MAX)
        return -EFBIG;
    return client_file_write(path, text, size);
}
