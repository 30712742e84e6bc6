/* Unit tests for the GnuTLS wrapper (display/tls.c): real handshakes on socketpairs, with a
 * throwaway CA and server certificate made by certtool in a temporary directory. */
#include <errno.h>
#include <fcntl.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test-pki.h"
#include "tls.h"
#include "util.h"

static char ca_file[128], other_ca_file[128], cert_file[128], key_file[128], bad_file[128];
static struct tls_server_credentials *creds;

static struct test_pki pki;

static int group_setup(void **state)
{
    (void)state;
    if (test_pki_make(&pki, "/tmp/vdi-test-tls-XXXXXX") < 0 ||
        test_pki_write(&pki, "garbage.pem",
                       "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                       "-----END CERTIFICATE-----\n",
                       bad_file, sizeof(bad_file)) < 0)
        return -1;
    snprintf(ca_file, sizeof(ca_file), "%s", pki.ca);
    snprintf(other_ca_file, sizeof(other_ca_file), "%s", pki.other_ca);
    snprintf(cert_file, sizeof(cert_file), "%s", pki.cert);
    snprintf(key_file, sizeof(key_file), "%s", pki.key);
    return tls_server_credentials_new(cert_file, key_file, &creds) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tls_server_credentials_free(creds);
    test_pki_remove(&pki);
    return 0;
}

/* ---- a server in a thread ------------------------------------------------------------ */

struct server {
    pthread_t thread;
    int fd;
    int timeout_ms;
    int result;
    struct tls_conn *conn;
};

static void *server_main(void *userdata)
{
    struct server *s = userdata;
    s->result = tls_conn_accept(creds, s->fd, NULL, now_ms() + (uint64_t)s->timeout_ms, &s->conn);
    if (s->result < 0)
        safe_close(s->fd);
    return NULL;
}

/* Starts a server on one end of a fresh socketpair; returns the client end. */
static int server_start(struct server *s)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    *s = (struct server){.fd = sv[0], .timeout_ms = 5000};
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    return sv[1];
}

static int server_join(struct server *s)
{
    pthread_join(s->thread, NULL);
    return s->result;
}

static int client_connect(int fd, const struct tls_client_trust *trust, uint8_t sha[32],
                          struct tls_conn **ret)
{
    return tls_conn_connect(fd, trust, NULL, now_ms() + 5000, sha, ret);
}

static void expected_fingerprint(uint8_t sha[TLS_SHA256_SIZE])
{
    assert_int_equal(tls_fingerprint_of_pem_file(cert_file, sha), 0);
}

/* ---- trust ----------------------------------------------------------------------------- */

static void test_ca_and_hostname_ok(void **state)
{
    (void)state;
    struct server s;
    int fd = server_start(&s);
    struct tls_conn *c = NULL;
    uint8_t sha[TLS_SHA256_SIZE], want[TLS_SHA256_SIZE];
    struct tls_client_trust trust = {.ca_file = ca_file, .hostname = "vdi.test"};
    assert_int_equal(client_connect(fd, &trust, sha, &c), 0);
    assert_int_equal(server_join(&s), 0);
    expected_fingerprint(want);
    assert_memory_equal(sha, want, sizeof(want));
    assert_int_equal(tls_conn_fd(c), fd);

    /* Bytes both ways. */
    char buf[6] = {0};
    assert_int_equal(tls_conn_write_full(c, "hello", 5, now_ms() + 2000), 0);
    assert_int_equal(tls_conn_read_full(s.conn, buf, 5, now_ms() + 2000), 0);
    assert_string_equal(buf, "hello");
    assert_int_equal(tls_conn_write_full(s.conn, "world", 5, now_ms() + 2000), 0);
    assert_int_equal(tls_conn_read_full(c, buf, 5, now_ms() + 2000), 0);
    assert_string_equal(buf, "world");

    /* Close: the other side sees EOF. */
    tls_conn_free(c);
    assert_int_equal(tls_conn_read_full(s.conn, buf, 1, now_ms() + 2000), -EPIPE);
    tls_conn_free(s.conn);
}

static void test_ip_address_hostname_ok(void **state)
{
    (void)state;
    struct server s;
    int fd = server_start(&s);
    struct tls_conn *c = NULL;
    struct tls_client_trust trust = {.ca_file = ca_file, .hostname = "127.0.0.1"};
    assert_int_equal(client_connect(fd, &trust, NULL, &c), 0);
    assert_int_equal(server_join(&s), 0);
    tls_conn_free(c);
    tls_conn_free(s.conn);
}

static void expect_untrusted(const struct tls_client_trust *trust)
{
    struct server s;
    int fd = server_start(&s);
    struct tls_conn *c = NULL;
    uint8_t sha[TLS_SHA256_SIZE], want[TLS_SHA256_SIZE];
    assert_int_equal(client_connect(fd, trust, sha, &c), -EPERM);
    assert_null(c);
    /* The fingerprint is reported even though trust failed (trust on first use). */
    expected_fingerprint(want);
    assert_memory_equal(sha, want, sizeof(want));
    close(fd);
    server_join(&s);
    tls_conn_free(s.conn);
}

static void test_wrong_hostname(void **state)
{
    (void)state;
    struct tls_client_trust trust = {.ca_file = ca_file, .hostname = "evil.example"};
    expect_untrusted(&trust);
    struct tls_client_trust trust_ip = {.ca_file = ca_file, .hostname = "127.0.0.2"};
    expect_untrusted(&trust_ip);
}

static void test_wrong_ca(void **state)
{
    (void)state;
    struct tls_client_trust trust = {.ca_file = other_ca_file, .hostname = "vdi.test"};
    expect_untrusted(&trust);
}

static void test_pin_ok(void **state)
{
    (void)state;
    uint8_t pin[TLS_SHA256_SIZE];
    expected_fingerprint(pin);
    struct server s;
    int fd = server_start(&s);
    struct tls_conn *c = NULL;
    /* A pin needs no CA and no host name. */
    struct tls_client_trust trust = {.pin_sha256 = pin};
    assert_int_equal(client_connect(fd, &trust, NULL, &c), 0);
    assert_int_equal(server_join(&s), 0);
    tls_conn_free(c);
    tls_conn_free(s.conn);

    /* Both: both must hold. */
    fd = server_start(&s);
    struct tls_client_trust both = {.ca_file = ca_file, .hostname = "vdi.test", .pin_sha256 = pin};
    assert_int_equal(client_connect(fd, &both, NULL, &c), 0);
    assert_int_equal(server_join(&s), 0);
    tls_conn_free(c);
    tls_conn_free(s.conn);
}

static void test_pin_wrong(void **state)
{
    (void)state;
    uint8_t pin[TLS_SHA256_SIZE];
    expected_fingerprint(pin);
    pin[7] ^= 1;
    struct tls_client_trust trust = {.pin_sha256 = pin};
    expect_untrusted(&trust);
    /* Right CA but wrong pin: still refused. */
    struct tls_client_trust both = {.ca_file = ca_file, .hostname = "vdi.test", .pin_sha256 = pin};
    expect_untrusted(&both);
}

static void test_trust_required(void **state)
{
    (void)state;
    struct tls_conn *c = NULL;
    uint8_t sha[TLS_SHA256_SIZE];
    struct tls_client_trust none = {0};
    assert_int_equal(tls_conn_connect(-1, &none, NULL, now_ms() + 100, sha, &c), -EINVAL);
    assert_int_equal(tls_conn_connect(-1, NULL, NULL, now_ms() + 100, sha, &c), -EINVAL);
    struct tls_client_trust no_host = {.ca_file = ca_file};
    assert_int_equal(tls_conn_connect(-1, &no_host, NULL, now_ms() + 100, sha, &c), -EINVAL);
}

static void test_bad_priority(void **state)
{
    (void)state;
    int sv[2];
    struct tls_conn *c = NULL;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(tls_conn_accept(creds, sv[0], "NOT-A-PRIORITY", now_ms() + 100, &c), -EINVAL);
    close(sv[0]);
    close(sv[1]);
}

/* ---- deadlines ------------------------------------------------------------------------- */

static void test_server_handshake_timeout(void **state)
{
    (void)state;
    int sv[2];
    struct tls_conn *c = NULL;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uint64_t t0 = now_ms();
    assert_int_equal(tls_conn_accept(creds, sv[0], NULL, t0 + 300, &c), -ETIMEDOUT);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 290 && took < 1000);
    assert_null(c);
    close(sv[0]);
    close(sv[1]);
}

static void test_client_handshake_timeout(void **state)
{
    (void)state;
    int sv[2];
    struct tls_conn *c = NULL;
    uint8_t pin[TLS_SHA256_SIZE] = {0};
    struct tls_client_trust trust = {.pin_sha256 = pin};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uint64_t t0 = now_ms();
    assert_int_equal(tls_conn_connect(sv[0], &trust, NULL, t0 + 300, NULL, &c), -ETIMEDOUT);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 290 && took < 1000);
    close(sv[0]);
    close(sv[1]);
}

static void test_handshake_peer_closes(void **state)
{
    (void)state;
    int sv[2];
    struct tls_conn *c = NULL;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[1]);
    assert_int_equal(tls_conn_accept(creds, sv[0], NULL, now_ms() + 2000, &c), -ECONNRESET);
    close(sv[0]);

    /* Not TLS at all: a TLS-level failure. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[1], "GET / HTTP/1.0\r\n\r\n", 18), 18);
    int r = tls_conn_accept(creds, sv[0], NULL, now_ms() + 2000, &c);
    assert_true(r == -EPROTO || r == -ECONNRESET);
    close(sv[0]);
    close(sv[1]);
}

/* A connected pair: *client and *server. */
static void connected_pair(struct tls_conn **client, struct tls_conn **server)
{
    uint8_t pin[TLS_SHA256_SIZE];
    expected_fingerprint(pin);
    struct server s;
    int fd = server_start(&s);
    struct tls_client_trust trust = {.pin_sha256 = pin};
    assert_int_equal(client_connect(fd, &trust, NULL, client), 0);
    assert_int_equal(server_join(&s), 0);
    *server = s.conn;
}

static void test_read_timeout(void **state)
{
    (void)state;
    struct tls_conn *c, *s;
    connected_pair(&c, &s);
    char buf[4];
    uint64_t t0 = now_ms();
    assert_int_equal(tls_conn_read_full(s, buf, sizeof(buf), t0 + 200), -ETIMEDOUT);
    assert_true(now_ms() - t0 >= 190);
    tls_conn_free(c);
    tls_conn_free(s);
}

/* ---- relay ----------------------------------------------------------------------------- */

struct relay_run {
    pthread_t thread;
    struct tls_conn *conn;
    int local_fd, stop_fd, write_timeout_ms;
    int result;
    struct tls_relay_stats stats;
    uint64_t cpu_ms;
};

static void *relay_main(void *userdata)
{
    struct relay_run *r = userdata;
    r->result = tls_relay_run(r->conn, r->local_fd, r->stop_fd, r->write_timeout_ms, &r->stats);
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    r->cpu_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    return NULL;
}

/* Server-side relay between s and local[0]; the test plays the local side on *local. */
static void relay_start(struct relay_run *r, struct tls_conn *s, int stop_fd, int timeout_ms,
                        int *local)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    *r = (struct relay_run){
        .conn = s, .local_fd = sv[0], .stop_fd = stop_fd, .write_timeout_ms = timeout_ms};
    *local = sv[1];
    assert_int_equal(pthread_create(&r->thread, NULL, relay_main, r), 0);
}

static int relay_join(struct relay_run *r)
{
    pthread_join(r->thread, NULL);
    close(r->local_fd);
    return r->result;
}

#define BULK (2 * 1024 * 1024)

static uint8_t pattern(size_t i, unsigned seed)
{
    return (uint8_t)((i * 31 + seed) ^ (i >> 9));
}

struct bulk {
    int fd;
    unsigned seed;
    int result;
};

/* Reads BULK bytes from a plain fd and checks the pattern. */
static void *bulk_reader(void *userdata)
{
    struct bulk *b = userdata;
    static uint8_t buf[BULK];
    b->result = fd_read_full(b->fd, buf, BULK, now_ms() + 10000);
    for (size_t i = 0; b->result == 0 && i < BULK; i++)
        if (buf[i] != pattern(i, b->seed))
            b->result = -EILSEQ;
    return NULL;
}

static void *bulk_writer(void *userdata)
{
    struct bulk *b = userdata;
    static uint8_t buf[BULK];
    for (size_t i = 0; i < BULK; i++)
        buf[i] = pattern(i, b->seed);
    b->result = fd_write_full(b->fd, buf, BULK, now_ms() + 10000);
    return NULL;
}

static void test_relay_both_ways(void **state)
{
    (void)state;
    struct tls_conn *c, *s;
    struct relay_run r;
    int local;
    connected_pair(&c, &s);
    relay_start(&r, s, -1, 5000, &local);

    /* Small messages each way. */
    char buf[16] = {0};
    assert_int_equal(tls_conn_write_full(c, "ping", 4, now_ms() + 2000), 0);
    assert_int_equal(fd_read_full(local, buf, 4, now_ms() + 2000), 0);
    assert_string_equal(buf, "ping");
    assert_int_equal(fd_write_full(local, "pong!", 5, now_ms() + 2000), 0);
    assert_int_equal(tls_conn_read_full(c, buf, 5, now_ms() + 2000), 0);
    assert_string_equal(buf, "pong!");

    /* Bulk client -> local. */
    static uint8_t big[BULK];
    for (size_t i = 0; i < BULK; i++)
        big[i] = pattern(i, 1);
    struct bulk rd = {.fd = local, .seed = 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bulk_reader, &rd), 0);
    assert_int_equal(tls_conn_write_full(c, big, BULK, now_ms() + 10000), 0);
    pthread_join(t, NULL);
    assert_int_equal(rd.result, 0);

    /* Bulk local -> client. */
    struct bulk wr = {.fd = local, .seed = 2};
    assert_int_equal(pthread_create(&t, NULL, bulk_writer, &wr), 0);
    assert_int_equal(tls_conn_read_full(c, big, BULK, now_ms() + 10000), 0);
    pthread_join(t, NULL);
    assert_int_equal(wr.result, 0);
    for (size_t i = 0; i < BULK; i++)
        if (big[i] != pattern(i, 2))
            fail_msg("byte %zu differs", i);

    /* Local side closes: the relay ends cleanly, the client then sees close_notify. */
    close(local);
    assert_int_equal(relay_join(&r), 0);
    assert_true(r.stats.local_closed);
    assert_int_equal(r.stats.bytes_from_tls, 4 + BULK);
    assert_int_equal(r.stats.bytes_to_tls, 5 + BULK);
    tls_conn_free(s);
    assert_int_equal(tls_conn_read_full(c, buf, 1, now_ms() + 2000), -EPIPE);
    tls_conn_free(c);
}

static void test_relay_ends_when_client_closes(void **state)
{
    (void)state;
    struct tls_conn *c, *s;
    struct relay_run r;
    int local;
    connected_pair(&c, &s);
    relay_start(&r, s, -1, 5000, &local);

    /* Data sent just before the close still arrives, then EOF on the local side. */
    assert_int_equal(tls_conn_write_full(c, "last words", 10, now_ms() + 2000), 0);
    tls_conn_free(c);
    assert_int_equal(relay_join(&r), 0);
    char buf[16] = {0};
    /* relay_join closed the relay's end; what it wrote is still readable. */
    assert_int_equal(fd_read_full(local, buf, 10, now_ms() + 2000), 0);
    assert_string_equal(buf, "last words");
    assert_int_equal(fd_read_full(local, buf, 1, now_ms() + 2000), -EPIPE);
    close(local);
    tls_conn_free(s);
}

/* How the peer ended the TLS connection decides the result, as vdi-client needs it: a
 * deliberate close (close_notify, what tls_conn_free() sends) is 0, a TCP end under the
 * session (the peer process died, the network dropped) is -ECONNRESET. Either way the
 * bytes sent before still reach the local side, then end-of-stream. The relay runs on the
 * client's connection here, as in vdi-client. */
static void relay_peer_ends(bool close_notify)
{
    struct tls_conn *c, *s;
    struct relay_run r;
    int local;
    connected_pair(&c, &s);
    relay_start(&r, c, -1, 5000, &local);

    assert_int_equal(tls_conn_write_full(s, "bye now", 7, now_ms() + 2000), 0);
    if (close_notify)
        tls_conn_free(TAKE_PTR(s));
    else
        assert_int_equal(shutdown(tls_conn_fd(s), SHUT_RDWR), 0); /* a FIN, no alert */
    assert_int_equal(relay_join(&r), close_notify ? 0 : -ECONNRESET);
    char buf[8] = {0};
    assert_int_equal(fd_read_full(local, buf, 7, now_ms() + 2000), 0);
    assert_string_equal(buf, "bye now");
    assert_int_equal(fd_read_full(local, buf, 1, now_ms() + 2000), -EPIPE);
    assert_int_equal(r.stats.bytes_from_tls, 7);
    assert_false(r.stats.local_closed);
    close(local);
    tls_conn_free(s);
    tls_conn_free(c);
}

static void test_relay_peer_close_notify(void **state)
{
    (void)state;
    relay_peer_ends(true);
}

static void test_relay_peer_drops(void **state)
{
    (void)state;
    relay_peer_ends(false);
}

static void test_relay_stop_fd(void **state)
{
    (void)state;
    struct tls_conn *c, *s;
    struct relay_run r;
    int local;
    int stop = eventfd(0, EFD_CLOEXEC);
    connected_pair(&c, &s);
    relay_start(&r, s, stop, 5000, &local);
    usleep(100 * 1000);
    assert_int_equal(eventfd_write(stop, 1), 0);
    assert_int_equal(relay_join(&r), 0);
    assert_false(r.stats.local_closed);
    assert_true(r.cpu_ms < 50); /* idle relay: no spinning */
    close(local);
    close(stop);
    tls_conn_free(s);
    tls_conn_free(c);
}

/* The client stops reading: the relay gives up after the write timeout and, while it
 * waits, does not burn CPU. */
static void test_relay_stalled_client(void **state)
{
    (void)state;
    struct tls_conn *c, *s;
    struct relay_run r;
    int local;
    connected_pair(&c, &s);
    relay_start(&r, s, -1, 700, &local);

    /* Fill everything between the local side and the (non-reading) client. */
    assert_int_equal(fd_set_nonblock(local, true), 0);
    static uint8_t chunk[65536];
    uint64_t t0 = now_ms(), last_write = t0;
    while (now_ms() - last_write < 300 && now_ms() - t0 < 5000) {
        ssize_t n = write(local, chunk, sizeof(chunk));
        if (n > 0)
            last_write = now_ms();
        else
            usleep(10 * 1000);
    }
    assert_int_equal(relay_join(&r), -ETIMEDOUT);
    uint64_t took = now_ms() - t0;
    assert_true(took < 700 + 3000);
    assert_true(r.cpu_ms < 300);
    close(local);
    tls_conn_free(s);
    tls_conn_free(c);
}

/* A local side that takes nothing (the proxy hung) also times out. */
static void test_relay_stalled_local(void **state)
{
    (void)state;
    struct tls_conn *c, *s;
    struct relay_run r;
    int local;
    connected_pair(&c, &s);
    relay_start(&r, s, -1, 500, &local);
    static uint8_t chunk[65536];
    uint64_t t0 = now_ms();
    /* The client writes until its own writes stall (the relay stops reading). */
    int w = 0;
    for (int i = 0; i < 200 && w == 0; i++)
        w = tls_conn_write_full(c, chunk, sizeof(chunk), now_ms() + 300);
    assert_int_equal(w, -ETIMEDOUT);
    assert_int_equal(relay_join(&r), -ETIMEDOUT);
    assert_true(now_ms() - t0 < 5000);
    assert_true(r.cpu_ms < 300);
    close(local);
    tls_conn_free(s);
    tls_conn_free(c);
}

/* ---- fingerprints and credentials ---------------------------------------------------- */

static void test_fingerprint_format_parse(void **state)
{
    (void)state;
    uint8_t sha[TLS_SHA256_SIZE], back[TLS_SHA256_SIZE];
    for (size_t i = 0; i < sizeof(sha); i++)
        sha[i] = (uint8_t)(i * 37 + 5);
    char text[96];
    tls_fingerprint_format(sha, text);
    assert_int_equal(strlen(text), 95);
    assert_memory_equal(text, "05:2A:4F", 8);
    assert_int_equal(tls_fingerprint_parse(text, back), 0);
    assert_memory_equal(sha, back, sizeof(sha));

    /* Lower case, no colons. */
    char plain[65];
    size_t n = 0;
    for (size_t i = 0; i < 95; i++)
        if (text[i] != ':')
            plain[n++] = (char)(text[i] | 0x20);
    plain[n] = 0;
    memset(back, 0, sizeof(back));
    assert_int_equal(tls_fingerprint_parse(plain, back), 0);
    assert_memory_equal(sha, back, sizeof(sha));

    assert_int_equal(tls_fingerprint_parse("", back), -EINVAL);
    assert_int_equal(tls_fingerprint_parse("AB:CD", back), -EINVAL);
    plain[63] = 0; /* odd number of digits */
    assert_int_equal(tls_fingerprint_parse(plain, back), -EINVAL);
    char longer[100];
    snprintf(longer, sizeof(longer), "%s:00", text);
    assert_int_equal(tls_fingerprint_parse(longer, back), -EINVAL);
    char bad[96];
    memcpy(bad, text, sizeof(bad));
    bad[4] = 'G';
    assert_int_equal(tls_fingerprint_parse(bad, back), -EINVAL);
    assert_int_equal(tls_fingerprint_parse(":05:2A", back), -EINVAL);
    assert_int_equal(tls_fingerprint_parse(NULL, back), -EINVAL);
}

static void test_fingerprint_matches_certtool(void **state)
{
    (void)state;
    uint8_t sha[TLS_SHA256_SIZE], want[TLS_SHA256_SIZE];
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "certtool --fingerprint --hash=sha256 --infile %s", cert_file);
    /* certtool --fingerprint prints the hash of the DER certificate as hex. */
    FILE *p = popen(cmd, "re");
    assert_non_null(p);
    char line[256] = {0};
    assert_non_null(fgets(line, sizeof(line), p));
    pclose(p);
    line[strcspn(line, "\n")] = 0;
    assert_int_equal(tls_fingerprint_parse(line, want), 0);
    assert_int_equal(tls_fingerprint_of_pem_file(cert_file, sha), 0);
    assert_memory_equal(sha, want, sizeof(sha));
    assert_int_equal(tls_fingerprint_of_pem_file(bad_file, sha), -EINVAL);
    assert_int_equal(tls_fingerprint_of_pem_file("/nonexistent/x.pem", sha), -ENOENT);
}

static void test_server_credentials_errors(void **state)
{
    (void)state;
    struct tls_server_credentials *c = NULL;
    assert_int_equal(tls_server_credentials_new("/nonexistent/c.pem", key_file, &c), -ENOENT);
    assert_int_equal(tls_server_credentials_new(cert_file, "/nonexistent/k.pem", &c), -ENOENT);
    assert_int_equal(tls_server_credentials_new(bad_file, key_file, &c), -EINVAL);
    assert_int_equal(tls_server_credentials_new(cert_file, bad_file, &c), -EINVAL);
    /* A key that does not belong to the certificate. */
    assert_int_equal(tls_server_credentials_new(cert_file, pki.other_ca_key, &c), -EINVAL);
    assert_int_equal(tls_server_credentials_new(pki.dir, key_file, &c), -EINVAL); /* a directory */
    assert_null(c);
    tls_server_credentials_free(NULL);
    tls_conn_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_and_hostname_ok),
        cmocka_unit_test(test_ip_address_hostname_ok),
        cmocka_unit_test(test_wrong_hostname),
        cmocka_unit_test(test_wrong_ca),
        cmocka_unit_test(test_pin_ok),
        cmocka_unit_test(test_pin_wrong),
        cmocka_unit_test(test_trust_required),
        cmocka_unit_test(test_bad_priority),
        cmocka_unit_test(test_server_handshake_timeout),
        cmocka_unit_test(test_client_handshake_timeout),
        cmocka_unit_test(test_handshake_peer_closes),
        cmocka_unit_test(test_read_timeout),
        cmocka_unit_test(test_relay_both_ways),
        cmocka_unit_test(test_relay_ends_when_client_closes),
        cmocka_unit_test(test_relay_peer_close_notify),
        cmocka_unit_test(test_relay_peer_drops),
        cmocka_unit_test(test_relay_stop_fd),
        cmocka_unit_test(test_relay_stalled_client),
        cmocka_unit_test(test_relay_stalled_local),
        cmocka_unit_test(test_fingerprint_format_parse),
        cmocka_unit_test(test_fingerprint_matches_certtool),
        cmocka_unit_test(test_server_credentials_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
