/* HTTPS/1.1 client for vdictl: TCP connect with a deadline, TLS through vdi_tls, one
 * request, one response (Content-Length, chunked, or up to EOF), all size-capped. */
#include "http-client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "net.h"
#include "tls.h"
#include "util.h"

#define HTTP_DEFAULT_PORT 8443
#define HTTP_HEADER_MAX (64u * 1024) /* status line + headers (+ trailers), in total */
#define HTTP_CHUNK_LINE_MAX 1024u    /* "1a2b;ext=..." */
#define HTTP_MAX_INTERIM 8           /* interim 1xx responses skipped */

/* Writes the sentence for the user into err and returns r. */
__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t err_size, int r,
                                                      const char *fmt, ...)
{
    if (err && err_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* ---- URL --------------------------------------------------------------------------- */

static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
}

int http_parse_url(const char *url, struct http_target *ret)
{
    static const char scheme[] = "https://";
    if (!url || strncasecmp(url, scheme, strlen(scheme)) != 0)
        return -EINVAL;
    const char *host = url + strlen(scheme), *rest;
    size_t host_len;
    char tmp[sizeof(ret->host)];

    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (!end)
            return -EINVAL;
        host++;
        host_len = (size_t)(end - host);
        if (host_len == 0 || host_len >= sizeof(tmp))
            return -EINVAL;
        memcpy(tmp, host, host_len);
        tmp[host_len] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return -EINVAL;
        rest = end + 1;
    } else {
        host_len = strcspn(host, ":");
        if (host_len == 0 || host_len > 253)
            return -EINVAL;
        for (size_t i = 0; i < host_len; i++)
            if (!host_char_ok(host[i]))
                return -EINVAL;
        if (host[0] == '-' || host[0] == '.')
            return -EINVAL;
        memcpy(tmp, host, host_len);
        tmp[host_len] = '\0';
        rest = host + host_len;
    }

    int port = HTTP_DEFAULT_PORT;
    if (rest[0] == ':') {
        const char *p = rest + 1;
        size_t n = strlen(p);
        if (n == 0 || n > 5)
            return -EINVAL;
        port = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -EINVAL;
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535)
            return -EINVAL;
    } else if (rest[0] != '\0') {
        return -EINVAL; /* a path, a query, user info, junk */
    }

    memcpy(ret->host, tmp, host_len + 1);
    ret->port = port;
    return 0;
}

/* ---- TCP ----------------------------------------------------------------------------- */

static int tcp_connect(const struct http_target *t, uint64_t deadline_ms, char *err,
                       size_t err_size)
{
    int gai_error = 0;
    int r = net_connect(t->host, t->port, deadline_ms, &gai_error);
    if (gai_error != 0)
        return fail(err, err_size, -EHOSTUNREACH, "cannot resolve %s: %s", t->host,
                    gai_error == EAI_SYSTEM ? strerror(-r) : gai_strerror(gai_error));
    if (r == -ETIMEDOUT)
        return fail(err, err_size, r, "cannot connect to %s port %d: timed out", t->host, t->port);
    if (r < 0)
        return fail(err, err_size, r, "cannot connect to %s port %d: %s", t->host, t->port,
                    strerror(-r));
    return r;
}

/* ---- request ------------------------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding. out needs 4 * ((len + 2) / 3) + 1 bytes. */
static void base64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = b64_alphabet[v >> 18 & 63];
        *out++ = b64_alphabet[v >> 12 & 63];
        *out++ = b64_alphabet[v >> 6 & 63];
        *out++ = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        *out++ = b64_alphabet[v >> 18 & 63];
        *out++ = b64_alphabet[v >> 12 & 63];
        *out++ = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
        *out++ = '=';
    }
    *out = '\0';
}

static bool has_ctl_or_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* A request target must already be percent-encoded: visible ASCII only. */
static bool path_ok(const char *s)
{
    if (!s || s[0] != '/')
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static bool method_ok(const char *m)
{
    if (!m || !*m || strlen(m) > 16)
        return false;
    for (; *m; m++)
        if (*m < 'A' || *m > 'Z')
            return false;
    return true;
}

static bool method_may_have_body(const char *m)
{
    return streq(m, "POST") || streq(m, "PUT") || streq(m, "PATCH");
}

/* The request line and headers; like snprintf(), returns the length it needs. */
static int request_head(char *buf, size_t size, const struct http_target *t,
                        const struct http_request *req, const char *auth, const char *length)
{
    bool v6 = strchr(t->host, ':') != NULL;
    return snprintf(buf, size,
                    "%s %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: vdictl\r\n%s%s%s%s"
                    "Connection: close\r\n\r\n",
                    req->method, req->path, v6 ? "[" : "", t->host, v6 ? "]" : "", t->port,
                    auth ? "Authorization: Basic " : "", auth ? auth : "", auth ? "\r\n" : "",
                    length);
}

/* The whole request in one malloc'd buffer, sized up front so that no copy of the
 * credentials is left behind by a realloc (wipe it after use). */
static int request_build(const struct http_target *t, const struct http_request *req, char **ret,
                         size_t *ret_len)
{
    _cleanup_(secret_freep) char *auth = NULL;
    if (req->user) {
        size_t ul = strlen(req->user), pl = req->password ? strlen(req->password) : 0;
        size_t raw_len = ul + 1 + pl;
        if (raw_len > 64 * 1024)
            return -EINVAL;
        _cleanup_(secret_freep) char *raw = malloc(raw_len + 1);
        auth = malloc(4 * ((raw_len + 2) / 3) + 1);
        if (!raw || !auth)
            return -ENOMEM;
        memcpy(raw, req->user, ul);
        raw[ul] = ':';
        if (pl)
            memcpy(raw + ul + 1, req->password, pl);
        raw[raw_len] = '\0';
        base64_encode((const uint8_t *)raw, raw_len, auth);
    }

    size_t body_len = req->body ? strlen(req->body) : 0;
    char length[96] = "";
    if (req->body)
        snprintf(length, sizeof(length),
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    else if (method_may_have_body(req->method))
        snprintf(length, sizeof(length), "Content-Length: 0\r\n");

    int head = request_head(NULL, 0, t, req, auth, length);
    if (head < 0 || body_len > SIZE_MAX - (size_t)head - 1)
        return -EINVAL;
    size_t len = (size_t)head + body_len;
    char *buf = malloc(len + 1);
    if (!buf)
        return -ENOMEM;
    request_head(buf, (size_t)head + 1, t, req, auth, length);
    if (body_len)
        memcpy(buf + head, req->body, body_len);
    buf[len] = '\0';
    *ret = buf;
    *ret_len = len;
    return 0;
}

/* ---- response ------------------------------------------------------------------------ */

struct reader {
    struct tls_conn *conn;
    uint64_t deadline_ms;
    size_t header_left; /* budget for the status line, headers and trailers */
    char *line;         /* HTTP_HEADER_MAX + 1 bytes */
};

/* One line without its CR LF, NUL-terminated, at most cap - 1 bytes (-E2BIG beyond).
 * Returns 0, -EPIPE at EOF, or an error from the connection. */
static int read_line(struct reader *rd, char *buf, size_t cap, size_t *budget)
{
    size_t len = 0;
    for (;;) {
        char c;
        int r = tls_conn_read_full(rd->conn, &c, 1, rd->deadline_ms);
        if (r < 0)
            return r;
        if (budget) {
            if (*budget == 0)
                return -E2BIG;
            (*budget)--;
        }
        if (c == '\n')
            break;
        if (len + 1 >= cap)
            return -E2BIG;
        buf[len++] = c;
    }
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    buf[len] = '\0';
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* "HTTP/1.x NNN reason" */
static int parse_status_line(const char *line, int *status)
{
    if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) || line[8] != ' ')
        return -EPROTO;
    const char *p = line + 9;
    for (int i = 0; i < 3; i++)
        if (!isdigit((unsigned char)p[i]))
            return -EPROTO;
    if (p[3] != '\0' && p[3] != ' ')
        return -EPROTO;
    int v = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    if (v < 100)
        return -EPROTO;
    *status = v;
    return 0;
}

static int parse_content_length(const char *s, uint64_t *ret)
{
    if (!*s)
        return -EPROTO;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EPROTO;
        if (v > (UINT64_MAX - 9) / 10)
            return -E2BIG;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *ret = v;
    return 0;
}

struct framing {
    bool chunked;
    bool have_length;
    uint64_t length;
};

/* Reads header lines up to the empty line. */
static int read_headers(struct reader *rd, struct framing *fr, char *err, size_t err_size)
{
    char *line = rd->line;
    for (;;) {
        int r = read_line(rd, line, HTTP_HEADER_MAX + 1, &rd->header_left);
        if (r == -E2BIG)
            return fail(err, err_size, -EPROTO, "the response headers are larger than %u KiB",
                        HTTP_HEADER_MAX / 1024);
        if (r == -EPIPE)
            return fail(err, err_size, -EPROTO,
                        "the server closed the connection in the middle of the headers");
        if (r < 0)
            return r;
        if (line[0] == '\0')
            return 0;
        if (line[0] == ' ' || line[0] == '\t')
            return fail(err, err_size, -EPROTO, "malformed HTTP header (folded line)");
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
            return fail(err, err_size, -EPROTO, "malformed HTTP header line");
        *colon = '\0';
        const char *name = line;
        if (has_ctl_or_space(name))
            return fail(err, err_size, -EPROTO, "malformed HTTP header name");
        char *value = trim(colon + 1);
        if (strcasecmp(name, "Transfer-Encoding") == 0) {
            if (strcasecmp(value, "chunked") != 0)
                return fail(err, err_size, -EPROTO, "unsupported transfer encoding");
            fr->chunked = true;
        } else if (strcasecmp(name, "Content-Length") == 0) {
            uint64_t v;
            r = parse_content_length(value, &v);
            if (r == -E2BIG || (r == 0 && v > HTTP_RESPONSE_MAX))
                return fail(err, err_size, -E2BIG, "the response is larger than %u MiB",
                            HTTP_RESPONSE_MAX / (1024 * 1024));
            if (r < 0 || (fr->have_length && fr->length != v))
                return fail(err, err_size, -EPROTO, "malformed Content-Length in the response");
            fr->have_length = true;
            fr->length = v;
        }
    }
}

struct body {
    char *data;
    size_t len, cap;
};

static int body_reserve(struct body *b, size_t more, char *err, size_t err_size)
{
    if (more > HTTP_RESPONSE_MAX - b->len)
        return fail(err, err_size, -E2BIG, "the response is larger than %u MiB",
                    HTTP_RESPONSE_MAX / (1024 * 1024));
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    if (cap > HTTP_RESPONSE_MAX + 1)
        cap = HTTP_RESPONSE_MAX + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static int truncated(char *err, size_t err_size)
{
    return fail(err, err_size, -EPROTO,
                "the server closed the connection before the whole response arrived");
}

static int read_exact(struct reader *rd, struct body *b, size_t n, char *err, size_t err_size)
{
    int r = body_reserve(b, n, err, err_size);
    if (r < 0)
        return r;
    r = tls_conn_read_full(rd->conn, b->data + b->len, n, rd->deadline_ms);
    if (r == -EPIPE)
        return truncated(err, err_size);
    if (r < 0)
        return r;
    b->len += n;
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int read_chunked(struct reader *rd, struct body *b, char *err, size_t err_size)
{
    char line[HTTP_CHUNK_LINE_MAX];
    for (;;) {
        int r = read_line(rd, line, sizeof(line), NULL);
        if (r == -EPIPE)
            return truncated(err, err_size);
        if (r == -E2BIG)
            return fail(err, err_size, -EPROTO, "malformed chunk in the response");
        if (r < 0)
            return r;
        const char *p = line;
        uint64_t size = 0;
        if (hex_digit(*p) < 0)
            return fail(err, err_size, -EPROTO, "malformed chunk size in the response");
        for (; hex_digit(*p) >= 0; p++) {
            size = size * 16 + (uint64_t)hex_digit(*p);
            if (size > HTTP_RESPONSE_MAX)
                return fail(err, err_size, -E2BIG, "the response is larger than %u MiB",
                            HTTP_RESPONSE_MAX / (1024 * 1024));
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0' && *p != ';')
            return fail(err, err_size, -EPROTO, "malformed chunk size in the response");
        if (size == 0)
            break;
        r = read_exact(rd, b, (size_t)size, err, err_size);
        if (r < 0)
            return r;
        r = read_line(rd, line, sizeof(line), NULL);
        if (r == -EPIPE)
            return truncated(err, err_size);
        if (r == -E2BIG || (r == 0 && line[0] != '\0'))
            return fail(err, err_size, -EPROTO, "malformed chunk in the response");
        if (r < 0)
            return r;
    }
    /* Trailers, up to the empty line; they share the header budget. */
    for (;;) {
        int r = read_line(rd, line, sizeof(line), &rd->header_left);
        if (r == -EPIPE)
            return truncated(err, err_size);
        if (r == -E2BIG)
            return fail(err, err_size, -EPROTO, "malformed trailer in the response");
        if (r < 0)
            return r;
        if (line[0] == '\0')
            return 0;
    }
}

/* No length given: the body runs to the end of the connection. tls_conn_read_full() only
 * reads exact sizes, so this goes a byte at a time; the admin API always sends a length. */
static int read_to_eof(struct reader *rd, struct body *b, char *err, size_t err_size)
{
    for (;;) {
        char c;
        int r = tls_conn_read_full(rd->conn, &c, 1, rd->deadline_ms);
        if (r == -EPIPE)
            return 0;
        if (r < 0)
            return r;
        r = body_reserve(b, 1, err, err_size);
        if (r < 0)
            return r;
        b->data[b->len++] = c;
    }
}

static int read_response(struct reader *rd, const struct http_request *req,
                         struct http_response *ret, char *err, size_t err_size)
{
    char *line = rd->line;
    struct framing fr;
    int status = 0;

    for (unsigned interim = 0;; interim++) {
        int r = read_line(rd, line, HTTP_HEADER_MAX + 1, &rd->header_left);
        if (r == -EPIPE)
            return fail(err, err_size, -EPROTO,
                        "the server closed the connection without an answer");
        if (r == -E2BIG)
            return fail(err, err_size, -EPROTO, "the response headers are larger than %u KiB",
                        HTTP_HEADER_MAX / 1024);
        if (r < 0)
            return r;
        if (parse_status_line(line, &status) < 0)
            return fail(err, err_size, -EPROTO, "the server did not answer with HTTP/1.x");
        fr = (struct framing){0};
        r = read_headers(rd, &fr, err, err_size);
        if (r < 0)
            return r;
        if (status >= 200)
            break;
        if (interim >= HTTP_MAX_INTERIM)
            return fail(err, err_size, -EPROTO, "too many interim responses");
    }

    _cleanup_(freep) struct body *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    int r = body_reserve(b, 0, err, err_size);
    bool no_body = status == 204 || status == 304 || streq(req->method, "HEAD");
    if (r >= 0 && !no_body) {
        if (fr.chunked)
            r = read_chunked(rd, b, err, err_size);
        else if (fr.have_length)
            r = fr.length > 0 ? read_exact(rd, b, (size_t)fr.length, err, err_size) : 0;
        else
            r = read_to_eof(rd, b, err, err_size);
    }
    if (r < 0) {
        free(b->data);
        return r;
    }
    b->data[b->len] = '\0';
    ret->status = status;
    ret->body = b->data;
    ret->body_len = b->len;
    return 0;
}

/* ---- the whole exchange ---------------------------------------------------------------- */

static int tls_failure(const struct http_target *t, int r, char *err, size_t err_size)
{
    switch (r) {
    case -EPERM:
        return fail(err, err_size, r,
                    "the certificate of %s is not trusted: it does not chain to a CA in %s "
                    "or is not made out to %s",
                    t->host, t->ca_file, t->host);
    case -ETIMEDOUT:
        return fail(err, err_size, r, "timed out in the TLS handshake with %s port %d", t->host,
                    t->port);
    case -ECONNRESET:
        return fail(err, err_size, r, "%s port %d closed the connection in the TLS handshake",
                    t->host, t->port);
    case -EPROTO:
        return fail(err, err_size, r,
                    "the TLS handshake with %s port %d failed (is it the broker's HTTPS "
                    "admin port?)",
                    t->host, t->port);
    case -EINVAL:
        return fail(err, err_size, r, "no usable CA certificate in %s", t->ca_file);
    default:
        return fail(err, err_size, r, "cannot use the CA file %s: %s", t->ca_file, strerror(-r));
    }
}

/* what: "sending the request to", "waiting for the answer from" */
static int io_failure(const struct http_target *t, int r, const char *what, char *err,
                      size_t err_size)
{
    if (r == -ETIMEDOUT)
        return fail(err, err_size, r, "timed out %s %s port %d", what, t->host, t->port);
    if (r == -EPIPE)
        r = -ECONNRESET;
    return fail(err, err_size, r, "connection lost %s %s port %d: %s", what, t->host, t->port,
                strerror(-r));
}

int http_request(const struct http_target *t, const struct http_request *req, uint64_t deadline_ms,
                 struct http_response *ret, char *err, size_t err_size)
{
    *ret = (struct http_response){0};
    if (err && err_size > 0)
        err[0] = '\0';
    if (!t || !req || !t->ca_file || !t->host[0] || t->port < 1 || t->port > 65535 ||
        !method_ok(req->method) || !path_ok(req->path) || (req->user && strchr(req->user, ':')))
        return fail(err, err_size, -EINVAL, "invalid HTTP request");
    if (req->user && (has_ctl_or_space(req->user) || !req->user[0]))
        return fail(err, err_size, -EINVAL, "invalid user name for HTTP Basic authentication");

    _cleanup_(closep) int fd = tcp_connect(t, deadline_ms, err, err_size);
    if (fd < 0)
        return fd;

    struct tls_client_trust trust = {.ca_file = t->ca_file, .hostname = t->host};
    struct tls_conn *conn = NULL;
    int r = tls_conn_connect(fd, &trust, NULL, deadline_ms, NULL, &conn);
    if (r < 0)
        return tls_failure(t, r, err, err_size);
    fd = -1; /* conn owns it now */

    char *wire = NULL;
    size_t wire_len = 0;
    r = request_build(t, req, &wire, &wire_len);
    if (r < 0) {
        tls_conn_free(conn);
        return fail(err, err_size, r, "cannot build the request: %s", strerror(-r));
    }
    r = tls_conn_write_full(conn, wire, wire_len, deadline_ms);
    explicit_bzero(wire, wire_len);
    free(wire);
    if (r < 0) {
        tls_conn_free(conn);
        return io_failure(t, r, "sending the request to", err, err_size);
    }

    _cleanup_(freep) char *line = malloc(HTTP_HEADER_MAX + 1);
    if (!line) {
        tls_conn_free(conn);
        return fail(err, err_size, -ENOMEM, "out of memory");
    }
    struct reader rd = {
        .conn = conn,
        .deadline_ms = deadline_ms,
        .header_left = HTTP_HEADER_MAX,
        .line = line,
    };
    r = read_response(&rd, req, ret, err, err_size);
    tls_conn_free(conn);
    if (r == -ETIMEDOUT || r == -ECONNRESET)
        return io_failure(t, r, "waiting for the answer from", err, err_size);
    if (r == -ENOMEM)
        return fail(err, err_size, r, "out of memory reading the response");
    if (r < 0 && err && err_size > 0 && !err[0])
        return fail(err, err_size, r, "cannot read the response: %s", strerror(-r));
    return r;
}

void http_response_done(struct http_response *r)
{
    if (!r)
        return;
    free(r->body);
    *r = (struct http_response){0};
}
