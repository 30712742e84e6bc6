/* Unit tests for vdictl's HTTPS client (broker/http-client.c) against a real local HTTPS
 * server in a thread (vdi_tls's server side, throwaway PKI from tests/unit/test-pki.h)
 * that records the request and answers canned bytes; and vdictl_run() end to end over it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http-client.h"
#include "test-pki.h"
#include "tls.h"
#include "util.h"
#include "vdictl-cli.h"

static struct test_pki pki;
static struct tls_server_credentials *creds;

static int group_setup(void **state)
{
    (void)state;
    if (test_pki_make(&pki, "/tmp/vdi-test-http-XXXXXX") < 0)
        return -1;
    return tls_server_credentials_new(pki.cert, pki.key, &creds) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tls_server_credentials_free(creds);
    test_pki_remove(&pki);
    return 0;
}

/* ---- the canned server ---------------------------------------------------------------- */

enum server_mode {
    SERVE_ANSWER,        /* read the request, write the answer, close_notify, close */
    SERVE_ANSWER_NO_BYE, /* the same, then close the TCP connection without close_notify */
    SERVE_SILENT_TLS,    /* handshake, read the request, then say nothing until stopped */
    SERVE_SILENT_TCP,    /* accept, then not even a TLS handshake until stopped */
};

#define REQUEST_MAX (128 * 1024)

struct server {
    pthread_t thread;
    int listen_fd, stop_fd, port;
    enum server_mode mode;
    const char *answer;
    size_t answer_len;
    char request[REQUEST_MAX + 1];
    size_t request_len;
};

static bool wait_readable(int fd, int stop_fd, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
    return poll(p, 2, timeout_ms) > 0 && p[0].revents && !p[1].revents;
}

/* Reads the request head byte by byte, then a Content-Length body. */
static int server_read_request(struct server *s, struct tls_conn *c)
{
    uint64_t deadline = now_ms() + 5000;
    while (s->request_len < REQUEST_MAX) {
        int r = tls_conn_read_full(c, s->request + s->request_len, 1, deadline);
        if (r < 0)
            return r;
        s->request_len++;
        s->request[s->request_len] = '\0';
        if (s->request_len >= 4 && memcmp(s->request + s->request_len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    const char *cl = strstr(s->request, "Content-Length: ");
    size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
    if (body > REQUEST_MAX - s->request_len)
        return -E2BIG;
    int r = body ? tls_conn_read_full(c, s->request + s->request_len, body, deadline) : 0;
    if (r == 0) {
        s->request_len += body;
        s->request[s->request_len] = '\0';
    }
    return r;
}

static void *server_main(void *userdata)
{
    struct server *s = userdata;
    if (!wait_readable(s->listen_fd, s->stop_fd, 10000))
        return NULL;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (s->mode == SERVE_SILENT_TCP) {
        wait_readable(s->stop_fd, -1, 10000);
        close(fd);
        return NULL;
    }
    struct tls_conn *c = NULL;
    if (tls_conn_accept(creds, fd, NULL, now_ms() + 5000, &c) < 0) {
        close(fd);
        return NULL;
    }
    if (server_read_request(s, c) == 0) {
        if (s->mode == SERVE_SILENT_TLS)
            wait_readable(s->stop_fd, -1, 10000);
        else
            (void)tls_conn_write_full(c, s->answer, s->answer_len, now_ms() + 5000);
        if (s->mode == SERVE_ANSWER_NO_BYE)
            shutdown(tls_conn_fd(c), SHUT_RDWR); /* the close_notify gets nowhere */
    }
    tls_conn_free(c);
    return NULL;
}

static void server_start_at(struct server *s, enum server_mode mode, const char *answer,
                            size_t answer_len, const char *address)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    s->answer = answer;
    s->answer_len = answer_len;
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, address, &a.sin_addr);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->listen_fd, 4), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(s->stop_fd >= 0);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_start(struct server *s, enum server_mode mode, const char *answer)
{
    server_start_at(s, mode, answer, answer ? strlen(answer) : 0, "127.0.0.1");
}

static void server_stop(struct server *s)
{
    uint64_t one = 1;
    assert_int_equal(write(s->stop_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    pthread_join(s->thread, NULL);
    close(s->stop_fd);
    close(s->listen_fd);
}

static struct http_target target_of(const struct server *s, const char *ca_file)
{
    struct http_target t = {.port = s->port, .ca_file = ca_file};
    snprintf(t.host, sizeof(t.host), "127.0.0.1");
    return t;
}

/* One GET of / against a server answering `answer`; returns http_request()'s result. */
static int fetch(enum server_mode mode, const char *answer, size_t answer_len, uint64_t timeout_ms,
                 struct http_response *resp, char *err, size_t err_size)
{
    struct server s;
    server_start_at(&s, mode, answer, answer_len, "127.0.0.1");
    struct http_target t = target_of(&s, pki.ca);
    struct http_request req = {.method = "GET", .path = "/", .user = "admin", .password = "pw"};
    int r = http_request(&t, &req, now_ms() + timeout_ms, resp, err, err_size);
    server_stop(&s);
    return r;
}

static int fetch_text(const char *answer, struct http_response *resp)
{
    char err[256];
    int r = fetch(SERVE_ANSWER, answer, strlen(answer), 5000, resp, err, sizeof(err));
    if (r < 0)
        assert_true(err[0] != '\0'); /* every failure comes with a sentence */
    return r;
}

/* ---- URLs ------------------------------------------------------------------------------ */

static void test_parse_url(void **state)
{
    (void)state;
    struct http_target t;
    assert_int_equal(http_parse_url("https://127.0.0.1:8443", &t), 0);
    assert_string_equal(t.host, "127.0.0.1");
    assert_int_equal(t.port, 8443);
    assert_int_equal(http_parse_url("https://vdi.example.com", &t), 0);
    assert_string_equal(t.host, "vdi.example.com");
    assert_int_equal(t.port, 8443);
    assert_int_equal(http_parse_url("HTTPS://broker:1", &t), 0);
    assert_string_equal(t.host, "broker");
    assert_int_equal(t.port, 1);
    assert_int_equal(http_parse_url("https://[::1]:9000", &t), 0);
    assert_string_equal(t.host, "::1");
    assert_int_equal(t.port, 9000);
    assert_int_equal(http_parse_url("https://[2001:db8::1]", &t), 0);
    assert_string_equal(t.host, "2001:db8::1");
    assert_int_equal(t.port, 8443);

    static const char *const bad[] = {
        "http://127.0.0.1:8443",
        "https://",
        "https://:8443",
        "https://host:",
        "https://host:0",
        "https://host:65536",
        "https://host:8a",
        "https://host:123456",
        "https://host/",
        "https://host:8443/api",
        "https://host?x=1",
        "https://user@host",
        "https://[::1",
        "https://[]:1",
        "https://[nothex]:1",
        "https://[::1]x",
        "https://::1",
        "ftp://host",
        "host:8443",
        "https://-host",
        "https://ho st",
        "",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (http_parse_url(bad[i], &t) != -EINVAL)
            fail_msg("accepted '%s'", bad[i]);
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    memcpy(longname, "https://", 8);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(http_parse_url(longname, &t), -EINVAL);
}

/* ---- the request on the wire ------------------------------------------------------------ */

static void expect_request(const char *method, const char *path, const char *user,
                           const char *password, const char *body, const char *const *want,
                           const char *const *absent)
{
    struct server s;
    server_start(&s, SERVE_ANSWER, "HTTP/1.1 204 No Content\r\n\r\n");
    struct http_target t = target_of(&s, pki.ca);
    struct http_request req = {
        .method = method, .path = path, .user = user, .password = password, .body = body};
    struct http_response resp;
    char err[256];
    assert_int_equal(http_request(&t, &req, now_ms() + 5000, &resp, err, sizeof(err)), 0);
    assert_int_equal(resp.status, 204);
    http_response_done(&resp);
    server_stop(&s);

    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", s.port);
    assert_non_null(strstr(s.request, host));
    for (size_t i = 0; want[i]; i++)
        if (!strstr(s.request, want[i]))
            fail_msg("request lacks '%s':\n%s", want[i], s.request);
    for (size_t i = 0; absent && absent[i]; i++)
        if (strstr(s.request, absent[i]))
            fail_msg("request has '%s':\n%s", absent[i], s.request);
}

static void test_request_bytes(void **state)
{
    (void)state;
    const char *body = "{\"name\":\"eng\",\"template\":\"deb\"}";
    char cl[64];
    snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", strlen(body));
    expect_request("POST", "/api/v1/pools", "admin", "s3cret", body,
                   (const char *const[]){"POST /api/v1/pools HTTP/1.1\r\n",
                                         "\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\n",
                                         "\r\nContent-Type: application/json\r\n", cl,
                                         "\r\nConnection: close\r\n",
                                         "\r\n\r\n{\"name\":\"eng\",\"template\":\"deb\"}", NULL},
                   NULL);
    /* Base64 padding both ways; a password with ':' and UTF-8. */
    expect_request("GET", "/api/v1/pools?x=1", "a", "", NULL,
                   (const char *const[]){"GET /api/v1/pools?x=1 HTTP/1.1\r\n",
                                         "Authorization: Basic YTo=\r\n", NULL},
                   (const char *const[]){"Content-Length", "Content-Type", NULL});
    expect_request(
        "DELETE", "/x", "ab", "c", "{}",
        (const char *const[]){"Authorization: Basic YWI6Yw==\r\n", "Content-Length: 2\r\n", NULL},
        NULL);
    expect_request("GET", "/", "admin", "p\xc3\xa4ss:w0rd", NULL,
                   (const char *const[]){"Authorization: Basic YWRtaW46cMOkc3M6dzByZA==\r\n", NULL},
                   NULL);
    /* A POST without a body says so; no credentials, no Authorization. */
    expect_request("POST", "/api/v1/desktops/d/start", NULL, NULL, NULL,
                   (const char *const[]){"Content-Length: 0\r\n", NULL},
                   (const char *const[]){"Authorization", "Content-Type", NULL});
}

static void test_request_refused_locally(void **state)
{
    (void)state;
    struct http_target t = {.port = 1, .ca_file = pki.ca};
    snprintf(t.host, sizeof(t.host), "127.0.0.1");
    struct http_response resp;
    char err[256];
    static const struct http_request bad[] = {
        {.method = "GET", .path = "no-slash"},
        {.method = "GET", .path = "/a b"},
        {.method = "GET", .path = "/p\xc3\xa4ss"},
        {.method = "GET", .path = NULL},
        {.method = "GET", .path = "/a\r\nX-Injected: 1"},
        {.method = "get", .path = "/"},
        {.method = "GE T", .path = "/"},
        {.method = "GET", .path = "/", .user = "a:b", .password = "c"},
        {.method = "GET", .path = "/", .user = "a\r\nb", .password = "c"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(http_request(&t, &bad[i], now_ms() + 1000, &resp, err, sizeof(err)),
                         -EINVAL);
        assert_null(resp.body);
    }
}

/* ---- answers ----------------------------------------------------------------------------- */

static void test_content_length(void **state)
{
    (void)state;
    struct http_response resp;
    assert_int_equal(fetch_text("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "content-length:  13 \r\n\r\n{\"pools\": []}",
                                &resp),
                     0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, 13);
    assert_string_equal(resp.body, "{\"pools\": []}");
    http_response_done(&resp);
    assert_null(resp.body);

    /* Bare LF line ends, and no body for 204 whatever the headers say. */
    assert_int_equal(fetch_text("HTTP/1.0 404 Not Found\nContent-Length: 2\n\n{}", &resp), 0);
    assert_int_equal(resp.status, 404);
    assert_string_equal(resp.body, "{}");
    http_response_done(&resp);
    assert_int_equal(fetch_text("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", &resp), 0);
    assert_int_equal(resp.status, 204);
    assert_non_null(resp.body);
    assert_int_equal(resp.body_len, 0);
    http_response_done(&resp);

    /* An interim 100 Continue is skipped. */
    assert_int_equal(fetch_text("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                                "Content-Length: 3\r\n\r\nabc",
                                &resp),
                     0);
    assert_int_equal(resp.status, 201);
    assert_string_equal(resp.body, "abc");
    http_response_done(&resp);

    /* No length, not chunked: up to the end of the connection. */
    assert_int_equal(fetch_text("HTTP/1.1 200 OK\r\n\r\nuntil the end", &resp), 0);
    assert_string_equal(resp.body, "until the end");
    http_response_done(&resp);
}

static void test_close_without_close_notify(void **state)
{
    (void)state;
    struct http_response resp;
    char err[256];
    const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    assert_int_equal(fetch(SERVE_ANSWER_NO_BYE, a, strlen(a), 5000, &resp, err, sizeof(err)), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body, "hello");
    http_response_done(&resp);

    a = "HTTP/1.1 200 OK\r\n\r\nto EOF";
    assert_int_equal(fetch(SERVE_ANSWER_NO_BYE, a, strlen(a), 5000, &resp, err, sizeof(err)), 0);
    assert_string_equal(resp.body, "to EOF");
    http_response_done(&resp);

    /* But a body shorter than its Content-Length is an error. */
    a = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello";
    assert_int_equal(fetch(SERVE_ANSWER_NO_BYE, a, strlen(a), 5000, &resp, err, sizeof(err)),
                     -EPROTO);
    assert_null(resp.body);
    assert_non_null(strstr(err, "before the whole response"));
}

static void test_chunked(void **state)
{
    (void)state;
    struct http_response resp;
    assert_int_equal(fetch_text("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                "Content-Length: 999\r\n\r\n"
                                "5;ext=1\r\nhello\r\n7\r\n, world\r\n"
                                "A \r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n",
                                &resp),
                     0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, 22);
    assert_string_equal(resp.body, "hello, world0123456789");
    http_response_done(&resp);

    assert_int_equal(
        fetch_text("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n0\r\n\r\n", &resp), 0);
    assert_int_equal(resp.body_len, 0);
    assert_string_equal(resp.body, "");
    http_response_done(&resp);

    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(fetch_text(bad[i], &resp), -EPROTO);
        assert_null(resp.body);
    }
}

static void test_too_big(void **state)
{
    (void)state;
    struct http_response resp;
    char a[256];
    snprintf(a, sizeof(a), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", HTTP_RESPONSE_MAX + 1);
    assert_int_equal(fetch_text(a, &resp), -E2BIG);
    assert_null(resp.body);
    assert_int_equal(fetch_text("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n"
                                "\r\n",
                                &resp),
                     -E2BIG);
    snprintf(a, sizeof(a), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n",
             HTTP_RESPONSE_MAX + 1);
    assert_int_equal(fetch_text(a, &resp), -E2BIG);
    assert_int_equal(fetch_text("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "fffffffffffffffffffffffff\r\n",
                                &resp),
                     -E2BIG);

    /* Chunks that are each fine but together too much: two of 9 MiB. */
    size_t chunk = 9u << 20;
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t len = strlen(head) + 2 * (16 + chunk + 2) + 8;
    char *big = malloc(len);
    assert_non_null(big);
    size_t o = (size_t)sprintf(big, "%s", head);
    for (int i = 0; i < 2; i++) {
        o += (size_t)sprintf(big + o, "%zx\r\n", chunk);
        memset(big + o, 'x', chunk);
        o += chunk;
        o += (size_t)sprintf(big + o, "\r\n");
    }
    o += (size_t)sprintf(big + o, "0\r\n\r\n");
    char err[256];
    assert_int_equal(fetch(SERVE_ANSWER, big, o, 20000, &resp, err, sizeof(err)), -E2BIG);
    assert_null(resp.body);
    assert_non_null(strstr(err, "larger than 16 MiB"));
    free(big);
}

static void test_malformed(void **state)
{
    (void)state;
    struct http_response resp;
    static const char *const bad[] = {
        "HELLO WORLD\r\n\r\n",
        "SSH-2.0-OpenSSH_9.2\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\n folded: header\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", /* ends in the headers */
        "",                                         /* closes without a word */
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (fetch_text(bad[i], &resp) != -EPROTO)
            fail_msg("accepted answer %zu", i);
        assert_null(resp.body);
    }

    /* Headers over 64 KiB. */
    size_t n = 70 * 1024;
    char *a = malloc(n + 64);
    assert_non_null(a);
    size_t o = (size_t)sprintf(a, "HTTP/1.1 200 OK\r\n");
    while (o < n)
        o += (size_t)sprintf(a + o, "X-Filler: %0100d\r\n", 0);
    o += (size_t)sprintf(a + o, "\r\n");
    char err[256];
    assert_int_equal(fetch(SERVE_ANSWER, a, o, 5000, &resp, err, sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "64 KiB"));
    free(a);
}

/* ---- connection failures --------------------------------------------------------------- */

static void test_deadline(void **state)
{
    (void)state;
    struct http_response resp;
    char err[256];
    uint64_t start = now_ms();
    assert_int_equal(fetch(SERVE_SILENT_TLS, NULL, 0, 300, &resp, err, sizeof(err)), -ETIMEDOUT);
    assert_true(now_ms() - start < 3000);
    assert_non_null(strstr(err, "timed out"));
    assert_null(resp.body);

    start = now_ms();
    assert_int_equal(fetch(SERVE_SILENT_TCP, NULL, 0, 300, &resp, err, sizeof(err)), -ETIMEDOUT);
    assert_true(now_ms() - start < 3000);
    assert_non_null(strstr(err, "timed out"));
}

static void test_untrusted(void **state)
{
    (void)state;
    struct http_response resp;
    char err[256];

    /* A certificate from another CA. */
    struct server s;
    server_start(&s, SERVE_ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    struct http_target t = target_of(&s, pki.other_ca);
    struct http_request req = {.method = "GET", .path = "/", .user = "admin", .password = "pw"};
    assert_int_equal(http_request(&t, &req, now_ms() + 5000, &resp, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "not trusted"));
    server_stop(&s);
    /* The password never left: the server saw no request. */
    assert_int_equal(s.request_len, 0);

    /* The right CA, but the certificate is not made out to this address. */
    server_start_at(&s, SERVE_ANSWER, "", 0, "127.0.0.2");
    t = target_of(&s, pki.ca);
    snprintf(t.host, sizeof(t.host), "127.0.0.2");
    assert_int_equal(http_request(&t, &req, now_ms() + 5000, &resp, err, sizeof(err)), -EPERM);
    server_stop(&s);
    assert_int_equal(s.request_len, 0);

    /* A CA file that is missing or holds no certificate. */
    server_start(&s, SERVE_ANSWER, "");
    t = target_of(&s, "/nonexistent/ca.pem");
    assert_int_equal(http_request(&t, &req, now_ms() + 5000, &resp, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    server_stop(&s);
}

static void test_refused(void **state)
{
    (void)state;
    /* A port that was just free. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);

    struct http_target t = {.port = ntohs(a.sin_port), .ca_file = pki.ca};
    snprintf(t.host, sizeof(t.host), "127.0.0.1");
    struct http_request req = {.method = "GET", .path = "/"};
    struct http_response resp;
    char err[256];
    assert_int_equal(http_request(&t, &req, now_ms() + 5000, &resp, err, sizeof(err)),
                     -ECONNREFUSED);
    assert_non_null(strstr(err, "cannot connect to 127.0.0.1 port"));
    assert_null(resp.body);
    assert_int_equal(vdictl_exit_code_from_error(-ECONNREFUSED), VDICTL_EXIT_CONNECT);

    /* A name that does not resolve. */
    snprintf(t.host, sizeof(t.host), "no-such-host.invalid");
    assert_int_equal(http_request(&t, &req, now_ms() + 5000, &resp, err, sizeof(err)),
                     -EHOSTUNREACH);
    assert_non_null(strstr(err, "no-such-host.invalid"));
}

/* ---- vdictl over the wire -------------------------------------------------------------- */

struct run {
    int code;
    char *out, *err;
    struct server s;
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Runs vdictl against a server answering `answer`, with the password in a file. */
static void run_vdictl(struct run *run, const char *answer, const char *ca, const char *const *args)
{
    server_start(&run->s, SERVE_ANSWER, answer);
    char url[64], pwfile[192];
    snprintf(url, sizeof(url), "https://localhost:%d", run->s.port);
    assert_int_equal(
        test_pki_write(&pki, "password", "s3cret\nsecond line ignored\n", pwfile, sizeof(pwfile)),
        0);
    chmod(pwfile, 0600);
    char *argv[32] = {"vdictl", "--url",           url,    "--ca-file", (char *)ca, "--user",
                      "admin",  "--password-file", pwfile, "--timeout", "5"};
    int argc = 11;
    for (size_t i = 0; args[i]; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;

    FILE *out = open_memstream(&run->out, &(size_t){0});
    FILE *err = open_memstream(&run->err, &(size_t){0});
    assert_non_null(out);
    assert_non_null(err);
    run->code = vdictl_run(argc, argv, out, err);
    fclose(out);
    fclose(err);
    server_stop(&run->s);
}

static void test_vdictl_run(void **state)
{
    (void)state;
    struct run r;
    run_vdictl(&r,
               "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 31\r\n"
               "\r\n{\"name\":\"eng\",\"template\":\"deb\"}",
               pki.ca, (const char *const[]){"pool", "add", "eng", "--template", "deb", NULL});
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "pool eng added\n");
    assert_string_equal(r.err, "");
    assert_true(startswith(r.s.request, "POST /api/v1/pools HTTP/1.1\r\n"));
    assert_non_null(strstr(r.s.request, "Authorization: Basic YWRtaW46czNjcmV0\r\n"));
    assert_non_null(strstr(r.s.request, "\r\n\r\n{\"name\":\"eng\",\"template\":\"deb\"}"));
    run_free(&r);

    run_vdictl(&r,
               "HTTP/1.1 404 Not Found\r\nContent-Length: 33\r\n\r\n"
               "{\"error\": \"No pool named 'eng'.\"}",
               pki.ca, (const char *const[]){"pool", "show", "eng", NULL});
    assert_int_equal(r.code, VDICTL_EXIT_NOT_FOUND);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "vdictl: No pool named 'eng'.\n");
    assert_true(startswith(r.s.request, "GET /api/v1/pools/eng HTTP/1.1\r\n"));
    run_free(&r);

    run_vdictl(&r,
               "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"vdi\"\r\n"
               "Content-Length: 35\r\n\r\n{\"error\": \"Authentication failed.\"}",
               pki.ca, (const char *const[]){"metrics", NULL});
    assert_int_equal(r.code, VDICTL_EXIT_AUTH);
    assert_string_equal(r.err, "vdictl: Authentication failed.\n");
    run_free(&r);

    run_vdictl(&r,
               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nm 1\nx "
               "\r\n3\r\n2\n\n\r\n0\r\n\r\n",
               pki.ca, (const char *const[]){"metrics", NULL});
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "m 1\nx 2\n\n");
    run_free(&r);

    /* Untrusted certificate: exit 3, and no request was sent. */
    run_vdictl(&r, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", pki.other_ca,
               (const char *const[]){"pool", "list", NULL});
    assert_int_equal(r.code, VDICTL_EXIT_CONNECT);
    assert_true(startswith(r.err, "vdictl: the certificate of localhost is not trusted"));
    assert_int_equal(r.s.request_len, 0);
    run_free(&r);

    /* Garbage instead of HTTP: exit 3 too (not the admin API). */
    run_vdictl(&r, "garbage\r\n\r\n", pki.ca, (const char *const[]){"pool", "list", NULL});
    assert_int_equal(r.code, VDICTL_EXIT_CONNECT);
    run_free(&r);

    /* The password from $VDI_PASSWORD, which is then wiped from the environment. */
    struct server s;
    server_start(&s, SERVE_ANSWER, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"pools\":[]}");
    char url[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", s.port);
    setenv("VDI_URL", url, 1);
    setenv("VDI_CA_FILE", pki.ca, 1);
    setenv("VDI_USER", "ab", 1);
    setenv("VDI_PASSWORD", "c", 1);
    char *argv[] = {"vdictl", "pool", "list", NULL};
    char *out_text = NULL;
    size_t out_len = 0;
    FILE *out = open_memstream(&out_text, &out_len);
    assert_int_equal(vdictl_run(3, argv, out, stderr), 0);
    fclose(out);
    server_stop(&s);
    assert_non_null(strstr(s.request, "Authorization: Basic YWI6Yw==\r\n"));
    assert_null(getenv("VDI_PASSWORD"));
    assert_true(startswith(out_text, "NAME  TEMPLATE"));
    free(out_text);
    unsetenv("VDI_URL");
    unsetenv("VDI_CA_FILE");
    unsetenv("VDI_USER");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_request_bytes),
        cmocka_unit_test(test_request_refused_locally),
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_close_without_close_notify),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_untrusted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_vdictl_run),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
