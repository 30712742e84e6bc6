/* The whole client connect (thinclient/connect.c) over real TCP and TLS (display/tls.c)
 * against a scripted server: certificates made by certtool in a temporary directory; trust
 * by CA file and by pinned fingerprint; wrong CA and wrong pin end in -EPERM (exit code 4)
 * with the server's fingerprint reported. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "connect.h"
#include "fake-server.h"
#include "test-pki.h"

static struct test_pki pki;
static char not_pem[128];
/* Names the tests below use. */
#define ca_pem pki.ca
#define other_ca_pem pki.other_ca
#define srv_pem pki.cert
#define srv_key pki.key

static int group_setup(void **state)
{
    (void)state;
    if (test_pki_make(&pki, "/tmp/vdi-tls-test-XXXXXX") < 0)
        return -1;
    return test_pki_write(&pki, "not.pem", "this is not a certificate\n", not_pem,
                          sizeof(not_pem));
}

static int group_teardown(void **state)
{
    (void)state;
    test_pki_remove(&pki);
    return 0;
}

/* ---- the server: one connection, pre-TLS script, TLS, Plain, verdict -------------------- */

struct server {
    int listen_fd;
    int port;
    pthread_t thread;
    const char *password; /* the one accepted for "alice" */
    char failure[256];
    bool authenticated;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    struct fake_server fs = {.fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC), .peer_fd = -1};
    static const uint8_t v38[12] = "RFB 003.008\n";
    static const uint8_t subs[] = {0, 1, 0, 0, 1, 6};
    struct tls_server_credentials *creds = NULL;
    struct tls_conn *t = NULL;

    if (fs.fd < 0 || tls_server_credentials_new(srv_pem, srv_key, &creds) < 0) {
        fs_fail(&fs, "setup");
        goto out;
    }
    if (!(fs_write(&fs, v38, 12) && fs_expect(&fs, v38, 12, "version") &&
          fs_write(&fs, (uint8_t[]){1, 19}, 2) && fs_expect(&fs, (uint8_t[]){19}, 1, "type") &&
          fs_write(&fs, (uint8_t[]){0, 2}, 2) && fs_expect(&fs, (uint8_t[]){0, 2}, 2, "vv") &&
          fs_write(&fs, subs, sizeof(subs)) &&
          fs_expect(&fs, (uint8_t[]){0, 0, 1, 6}, 4, "subtype") &&
          fs_write(&fs, (uint8_t[]){1}, 1)))
        goto out;
    if (tls_conn_accept(creds, fs.fd, TLS_DEFAULT_PRIORITY, now_ms() + 5000, &t) < 0)
        goto out; /* expected when the client distrusts us */
    fs.fd = -1;   /* t owns it */
    uint8_t hdr[8], buf[512];
    if (tls_conn_read_full(t, hdr, 8, now_ms() + 5000) < 0) {
        fs_fail(&fs, "no credentials");
        goto out;
    }
    uint32_t ulen = rfb_get_u32(hdr), plen = rfb_get_u32(hdr + 4);
    if (ulen + plen > sizeof(buf) - 1 ||
        tls_conn_read_full(t, buf, ulen + plen, now_ms() + 5000) < 0) {
        fs_fail(&fs, "bad credentials");
        goto out;
    }
    buf[ulen + plen] = 0;
    bool ok = ulen == 5 && memcmp(buf, "alice", 5) == 0 && plen == strlen(s->password) &&
              memcmp(buf + 5, s->password, plen) == 0;
    uint8_t result[4 + 4 + 32] = {0};
    size_t rlen = 4;
    if (!ok) {
        static const char reason[] = "Invalid username or password";
        rfb_put_u32(result, 1);
        rfb_put_u32(result + 4, sizeof(reason) - 1);
        memcpy(result + 8, reason, sizeof(reason) - 1);
        rlen = 8 + sizeof(reason) - 1;
    }
    s->authenticated = ok;
    if (tls_conn_write_full(t, result, rlen, now_ms() + 5000) < 0)
        fs_fail(&fs, "cannot send result");
out:
    snprintf(s->failure, sizeof(s->failure), "%s", fs.failure);
    tls_conn_free(t);
    safe_close(fs.fd);
    tls_server_credentials_free(creds);
    return NULL;
}

static void server_start_on(struct server *s, const char *password, uint32_t addr)
{
    memset(s, 0, sizeof(*s));
    s->password = password;
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(addr)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->listen_fd, 1), 0);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_start(struct server *s, const char *password)
{
    server_start_on(s, password, INADDR_LOOPBACK);
}

static void server_join(struct server *s)
{
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
}

struct outcome {
    int r;
    struct handshake_status st;
    uint8_t sha[TLS_SHA256_SIZE];
    bool have_sha;
};

static void connect_to(struct server *s, const char *host, const char *ca, const uint8_t *pin,
                       const char *password, struct outcome *o)
{
    struct client_connect_params p = {.host = host,
                                      .port = s->port,
                                      .ca_file = ca,
                                      .pin_sha256 = pin,
                                      .user = "alice",
                                      .password = password};
    struct tls_conn *t = NULL;
    o->r = client_connect(&p, &t, &o->st, o->sha, &o->have_sha);
    tls_conn_free(t);
}

static void test_trusted_by_ca(void **state)
{
    (void)state;
    struct server s;
    struct outcome o;
    server_start(&s, "pw");
    connect_to(&s, "localhost", ca_pem, NULL, "pw", &o);
    server_join(&s);
    assert_int_equal(o.r, 0);
    assert_int_equal(o.st.phase, HANDSHAKE_PHASE_INIT);
    assert_true(s.authenticated);
    assert_string_equal(s.failure, "");
}

static void test_wrong_ca_is_untrusted(void **state)
{
    (void)state;
    struct server s;
    struct outcome o;
    uint8_t want[TLS_SHA256_SIZE];
    assert_int_equal(tls_fingerprint_of_pem_file(srv_pem, want), 0);
    server_start(&s, "pw");
    connect_to(&s, "localhost", other_ca_pem, NULL, "pw", &o);
    server_join(&s);
    assert_int_equal(o.r, -EPERM);
    assert_int_equal(o.st.phase, HANDSHAKE_PHASE_TLS);
    assert_int_equal(handshake_exit_code(o.r, o.st.phase), CLIENT_EXIT_UNTRUSTED);
    assert_true(o.have_sha);
    assert_memory_equal(o.sha, want, TLS_SHA256_SIZE);
    assert_false(s.authenticated);
}

static void test_wrong_host_name_is_untrusted(void **state)
{
    (void)state;
    struct server s;
    struct outcome o;
    /* The certificate names localhost and 127.0.0.1, not 127.0.0.2 (also loopback). */
    server_start_on(&s, "pw", 0x7f000002);
    connect_to(&s, "127.0.0.2", ca_pem, NULL, "pw", &o);
    server_join(&s);
    assert_int_equal(o.r, -EPERM);
    assert_false(s.authenticated);
}

static void test_pinned_fingerprint(void **state)
{
    (void)state;
    uint8_t pin[TLS_SHA256_SIZE];
    assert_int_equal(tls_fingerprint_of_pem_file(srv_pem, pin), 0);
    struct server s;
    struct outcome o;
    server_start(&s, "pw");
    connect_to(&s, "127.0.0.1", NULL, pin, "pw", &o);
    server_join(&s);
    assert_int_equal(o.r, 0);
    assert_true(s.authenticated);
}

static void test_wrong_pin_is_untrusted(void **state)
{
    (void)state;
    uint8_t pin[TLS_SHA256_SIZE];
    assert_int_equal(tls_fingerprint_of_pem_file(srv_pem, pin), 0);
    pin[0] ^= 0xff;
    struct server s;
    struct outcome o;
    server_start(&s, "pw");
    connect_to(&s, "127.0.0.1", NULL, pin, "pw", &o);
    server_join(&s);
    assert_int_equal(o.r, -EPERM);
    assert_int_equal(handshake_exit_code(o.r, o.st.phase), CLIENT_EXIT_UNTRUSTED);
    assert_true(o.have_sha);
    assert_false(s.authenticated);
}

static void test_wrong_password(void **state)
{
    (void)state;
    struct server s;
    struct outcome o;
    server_start(&s, "pw");
    connect_to(&s, "localhost", ca_pem, NULL, "nope", &o);
    server_join(&s);
    assert_int_equal(o.r, -EACCES);
    assert_string_equal(o.st.reason, "Invalid username or password");
    assert_int_equal(handshake_exit_code(o.r, o.st.phase), CLIENT_EXIT_AUTH);
}

static void test_unusable_ca_file(void **state)
{
    (void)state;
    struct server s;
    struct outcome o;
    server_start(&s, "pw");
    connect_to(&s, "localhost", not_pem, NULL, "pw", &o);
    server_join(&s);
    assert_int_equal(o.r, -EINVAL);
    assert_int_equal(handshake_exit_code(o.r, o.st.phase), CLIENT_EXIT_USAGE);
}

static void test_connection_refused(void **state)
{
    (void)state;
    /* A port nobody listens on: bind one, close it, connect to it. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    struct client_connect_params p = {.host = "127.0.0.1",
                                      .port = ntohs(a.sin_port),
                                      .ca_file = "/nonexistent",
                                      .user = "alice",
                                      .password = "pw"};
    struct tls_conn *t = NULL;
    struct handshake_status st;
    uint8_t sha[TLS_SHA256_SIZE];
    bool have;
    int r = client_connect(&p, &t, &st, sha, &have);
    assert_int_equal(r, -ECONNREFUSED);
    assert_int_equal(st.phase, HANDSHAKE_PHASE_CONNECT);
    assert_int_equal(handshake_exit_code(r, st.phase), CLIENT_EXIT_UNREACHABLE);
    assert_non_null(strstr(st.detail, "127.0.0.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trusted_by_ca),
        cmocka_unit_test(test_wrong_ca_is_untrusted),
        cmocka_unit_test(test_wrong_host_name_is_untrusted),
        cmocka_unit_test(test_pinned_fingerprint),
        cmocka_unit_test(test_wrong_pin_is_untrusted),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_unusable_ca_file),
        cmocka_unit_test(test_connection_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
