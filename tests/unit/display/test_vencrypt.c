/* Unit tests for the RFB 3.8 / VeNCrypt / X509Plain server state machine (display/vencrypt.c). */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"
#include "vencrypt.h"

static const uint8_t client_version[] = "RFB 003.008\n";
static const uint8_t server_types[] = {1, 19};
static const uint8_t server_vencrypt_version[] = {0, 2};
static const uint8_t server_subtypes[] = {0, 1, 0, 0, 1, 6}; /* ok, 1 subtype, 262 */
static const uint8_t client_subtype[] = {0, 0, 1, 6};

/* The whole pre-TLS client stream. */
static size_t client_pre_tls(uint8_t *buf)
{
    size_t n = 0;
    memcpy(buf + n, client_version, 12);
    n += 12;
    buf[n++] = 19;
    buf[n++] = 0;
    buf[n++] = 2;
    memcpy(buf + n, client_subtype, 4);
    n += 4;
    return n;
}

static size_t plain_credentials(uint8_t *buf, const char *user, const char *pass)
{
    uint32_t ul = (uint32_t)strlen(user), pl = (uint32_t)strlen(pass);
    uint8_t *p = buf;
    *p++ = ul >> 24, *p++ = ul >> 16, *p++ = ul >> 8, *p++ = ul;
    *p++ = pl >> 24, *p++ = pl >> 16, *p++ = pl >> 8, *p++ = pl;
    memcpy(p, user, ul);
    p += ul;
    memcpy(p, pass, pl);
    p += pl;
    return (size_t)(p - buf);
}

static void expect_output(struct vencrypt *v, const void *want, size_t len)
{
    const uint8_t *out;
    size_t n = vencrypt_output(v, &out);
    assert_int_equal(n, len);
    if (len)
        assert_memory_equal(out, want, len);
    vencrypt_output_consumed(v, n);
}

static int feed(struct vencrypt *v, const void *buf, size_t len)
{
    size_t consumed = 0;
    int ev = vencrypt_feed(v, buf, len, &consumed);
    assert_int_equal(consumed, len);
    return ev;
}

/* Expected refusal: u32 (or u8) prefix, u32 reason length, reason. */
static void expect_refusal(struct vencrypt *v, const uint8_t *prefix, size_t prefix_len)
{
    const uint8_t *out;
    size_t n = vencrypt_output(v, &out);
    assert_true(n > prefix_len + 4);
    assert_memory_equal(out, prefix, prefix_len);
    const uint8_t *l = out + prefix_len;
    uint32_t len = (uint32_t)l[0] << 24 | (uint32_t)l[1] << 16 | (uint32_t)l[2] << 8 | l[3];
    assert_int_equal(n, prefix_len + 4 + len);
    assert_true(len > 0 && len <= VENCRYPT_MAX_REASON);
    vencrypt_output_consumed(v, n);
}

static struct vencrypt *start(void)
{
    struct vencrypt *v = NULL;
    assert_int_equal(vencrypt_new(&v), 0);
    expect_output(v, "RFB 003.008\n", 12);
    assert_int_equal(vencrypt_bytes_wanted(v), 12);
    assert_false(vencrypt_inside_tls(v));
    return v;
}

/* Drives a fresh machine to the point where TLS starts. */
static struct vencrypt *start_tls(void)
{
    struct vencrypt *v = start();
    uint8_t buf[32];
    size_t n = client_pre_tls(buf);
    assert_int_equal(feed(v, buf, n), VENCRYPT_EVENT_START_TLS);
    const uint8_t *out;
    vencrypt_output_consumed(v, vencrypt_output(v, &out));
    return v;
}

static void test_happy_path(void **state)
{
    (void)state;
    struct vencrypt *v = start();

    assert_int_equal(feed(v, client_version, 12), VENCRYPT_EVENT_NONE);
    expect_output(v, server_types, sizeof(server_types));
    assert_int_equal(vencrypt_bytes_wanted(v), 1);

    assert_int_equal(feed(v, "\x13", 1), VENCRYPT_EVENT_NONE);
    expect_output(v, server_vencrypt_version, 2);
    assert_int_equal(vencrypt_bytes_wanted(v), 2);

    assert_int_equal(feed(v, "\x00\x02", 2), VENCRYPT_EVENT_NONE);
    expect_output(v, server_subtypes, sizeof(server_subtypes));
    assert_int_equal(vencrypt_bytes_wanted(v), 4);

    assert_int_equal(feed(v, client_subtype, 4), VENCRYPT_EVENT_START_TLS);
    expect_output(v, "\x01", 1);
    assert_true(vencrypt_inside_tls(v));
    assert_int_equal(vencrypt_bytes_wanted(v), 8);

    assert_int_equal(feed(v, "\0\0\0\5\0\0\0\6", 8), VENCRYPT_EVENT_NONE);
    assert_int_equal(vencrypt_bytes_wanted(v), 11);
    assert_int_equal(feed(v, "alices3cret", 11), VENCRYPT_EVENT_CREDENTIALS);
    expect_output(v, NULL, 0);
    assert_int_equal(vencrypt_bytes_wanted(v), 0);

    const char *user, *pass;
    assert_int_equal(vencrypt_credentials(v, &user, &pass), 0);
    assert_string_equal(user, "alice");
    assert_string_equal(pass, "s3cret");

    assert_int_equal(vencrypt_verdict(v, true, NULL), VENCRYPT_EVENT_DONE);
    expect_output(v, "\0\0\0\0", 4);
    /* Wiped: the old pointers now see zeroes, and the accessor refuses. */
    assert_int_equal(user[0], 0);
    assert_int_equal(pass[0], 0);
    assert_int_equal(vencrypt_credentials(v, &user, &pass), -EINVAL);
    assert_string_equal(vencrypt_state_name(v), "done");
    assert_null(vencrypt_failure(v));

    size_t consumed = 99;
    assert_int_equal(vencrypt_feed(v, "\1", 1, &consumed), -EINVAL);
    assert_int_equal(consumed, 0);
    assert_int_equal(vencrypt_verdict(v, true, NULL), -EINVAL);
    vencrypt_free(v);
}

/* Everything at once, followed by what would be a TLS ClientHello: the machine must stop
 * at START_TLS and leave the TLS bytes alone. */
static void test_stops_at_start_tls(void **state)
{
    (void)state;
    struct vencrypt *v = start();
    uint8_t buf[64];
    size_t n = client_pre_tls(buf);
    memcpy(buf + n, "\x16\x03\x01\x02\x00", 5);

    size_t consumed = 0;
    assert_int_equal(vencrypt_feed(v, buf, n + 5, &consumed), VENCRYPT_EVENT_START_TLS);
    assert_int_equal(consumed, n);

    uint8_t want[16];
    size_t w = 0;
    memcpy(want + w, server_types, 2), w += 2;
    memcpy(want + w, server_vencrypt_version, 2), w += 2;
    memcpy(want + w, server_subtypes, 6), w += 6;
    want[w++] = 1;
    expect_output(v, want, w);
    vencrypt_free(v);
}

static void test_one_byte_at_a_time(void **state)
{
    (void)state;
    struct vencrypt *v = start();
    uint8_t buf[600];
    size_t n = client_pre_tls(buf);
    size_t tls_at = n;
    n += plain_credentials(buf + n, "bob", "pw with spaces");

    for (size_t i = 0; i < n; i++) {
        size_t consumed = 0;
        int ev = vencrypt_feed(v, buf + i, 1, &consumed);
        assert_int_equal(consumed, 1);
        if (i == tls_at - 1)
            assert_int_equal(ev, VENCRYPT_EVENT_START_TLS);
        else if (i == n - 1)
            assert_int_equal(ev, VENCRYPT_EVENT_CREDENTIALS);
        else
            assert_int_equal(ev, VENCRYPT_EVENT_NONE);
        if (i == 11)
            expect_output(v, server_types, 2);
        else if (i == 12)
            expect_output(v, server_vencrypt_version, 2);
        else if (i == 14)
            expect_output(v, server_subtypes, 6);
        else if (i == tls_at - 1)
            expect_output(v, "\x01", 1);
        else
            expect_output(v, NULL, 0);
    }
    const char *user, *pass;
    assert_int_equal(vencrypt_credentials(v, &user, &pass), 0);
    assert_string_equal(user, "bob");
    assert_string_equal(pass, "pw with spaces");
    vencrypt_free(v);
}

static void test_zero_length_feed(void **state)
{
    (void)state;
    struct vencrypt *v = start();
    size_t consumed = 5;
    assert_int_equal(vencrypt_feed(v, "", 0, &consumed), VENCRYPT_EVENT_NONE);
    assert_int_equal(consumed, 0);
    assert_int_equal(vencrypt_bytes_wanted(v), 12);
    vencrypt_free(v);
}

static void refuse_version(const char *version, const uint8_t *prefix, size_t prefix_len)
{
    struct vencrypt *v = start();
    assert_int_equal(feed(v, version, 12), VENCRYPT_EVENT_FAILED);
    if (prefix)
        expect_refusal(v, prefix, prefix_len);
    else
        expect_output(v, NULL, 0);
    assert_non_null(vencrypt_failure(v));
    assert_int_equal(vencrypt_bytes_wanted(v), 0);
    assert_string_equal(vencrypt_state_name(v), "failed");
    vencrypt_free(v);
}

static void test_version_33(void **state)
{
    (void)state;
    /* RFB 3.3: u32 security type 0 (invalid), then the reason. */
    refuse_version("RFB 003.003\n", (const uint8_t *)"\0\0\0\0", 4);
    refuse_version("RFB 003.005\n", (const uint8_t *)"\0\0\0\0", 4);
}

static void test_version_37(void **state)
{
    (void)state;
    /* RFB 3.7: u8 number of security types 0, then the reason. */
    refuse_version("RFB 003.007\n", (const uint8_t *)"\0", 1);
    refuse_version("RFB 003.889\n", (const uint8_t *)"\0", 1); /* Apple's */
    refuse_version("RFB 004.001\n", (const uint8_t *)"\0", 1);
}

static void test_version_garbage(void **state)
{
    (void)state;
    refuse_version("GET / HTTP/1", NULL, 0);
    refuse_version("RFB 003.008\r", NULL, 0);
    refuse_version("RFB 0x3.008\n", NULL, 0);
    refuse_version("\0\0\0\0\0\0\0\0\0\0\0\0", NULL, 0);
}

static void refuse_security_type(uint8_t type)
{
    struct vencrypt *v = start();
    assert_int_equal(feed(v, client_version, 12), VENCRYPT_EVENT_NONE);
    expect_output(v, server_types, 2);
    assert_int_equal(feed(v, &type, 1), VENCRYPT_EVENT_FAILED);
    expect_refusal(v, (const uint8_t *)"\0\0\0\1", 4); /* SecurityResult failed + reason */
    assert_non_null(vencrypt_failure(v));
    vencrypt_free(v);
}

static void test_security_type_none(void **state)
{
    (void)state;
    refuse_security_type(1);
}

static void test_security_type_vncauth(void **state)
{
    (void)state;
    refuse_security_type(2);
    refuse_security_type(0);
    refuse_security_type(18); /* TLS (anonymous) */
}

static void test_wrong_vencrypt_version(void **state)
{
    (void)state;
    static const uint8_t versions[][2] = {{0, 1}, {0, 3}, {1, 2}, {0, 0}};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        struct vencrypt *v = start();
        feed(v, client_version, 12);
        feed(v, "\x13", 1);
        expect_output(v, "\x01\x13\x00\x02", 4); /* queued output accumulates */
        assert_int_equal(feed(v, versions[i], 2), VENCRYPT_EVENT_FAILED);
        expect_output(v, "\xff", 1);
        vencrypt_free(v);
    }
}

static void test_wrong_subtype(void **state)
{
    (void)state;
    static const uint32_t subtypes[] = {256, 257, 258, 259, 260, 261, 263, 0, 0xFFFFFFFF};
    for (size_t i = 0; i < sizeof(subtypes) / sizeof(subtypes[0]); i++) {
        struct vencrypt *v = start();
        uint8_t buf[32];
        size_t n = client_pre_tls(buf);
        uint32_t s = subtypes[i];
        uint8_t *p = buf + n - 4;
        p[0] = s >> 24, p[1] = s >> 16, p[2] = s >> 8, p[3] = s;
        assert_int_equal(feed(v, buf, n), VENCRYPT_EVENT_FAILED);
        uint8_t want[] = {1, 19, 0, 2, 0, 1, 0, 0, 1, 6, 0};
        expect_output(v, want, sizeof(want));
        assert_false(vencrypt_inside_tls(v));
        vencrypt_free(v);
    }
}

static void refuse_lengths(uint32_t ulen, uint32_t plen)
{
    struct vencrypt *v = start_tls();
    uint8_t b[8] = {ulen >> 24, ulen >> 16, ulen >> 8, ulen,
                    plen >> 24, plen >> 16, plen >> 8, plen};
    struct mallinfo2 before = mallinfo2();
    assert_int_equal(feed(v, b, 8), VENCRYPT_EVENT_FAILED);
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(before.uordblks, after.uordblks); /* nothing allocated for it */
    assert_int_equal(vencrypt_bytes_wanted(v), 0);     /* and nothing more to read */
    expect_refusal(v, (const uint8_t *)"\0\0\0\1", 4);
    vencrypt_free(v);
}

static void test_oversize_credentials(void **state)
{
    (void)state;
    refuse_lengths(0xFFFFFFFF, 1);
    refuse_lengths(1, 0xFFFFFFFF);
    refuse_lengths(PROTO_MAX_USERNAME + 1, 0);
    refuse_lengths(0, PROTO_MAX_PASSWORD + 1);
    refuse_lengths(0x80000000, 0x80000000);
}

static void test_max_size_credentials(void **state)
{
    (void)state;
    char user[PROTO_MAX_USERNAME + 1], pass[PROTO_MAX_PASSWORD + 1];
    memset(user, 'u', PROTO_MAX_USERNAME);
    user[PROTO_MAX_USERNAME] = 0;
    memset(pass, 'p', PROTO_MAX_PASSWORD);
    pass[PROTO_MAX_PASSWORD] = 0;
    struct vencrypt *v = start_tls();
    uint8_t buf[8 + PROTO_MAX_USERNAME + PROTO_MAX_PASSWORD];
    size_t n = plain_credentials(buf, user, pass);
    assert_int_equal(feed(v, buf, n), VENCRYPT_EVENT_CREDENTIALS);
    const char *u, *p;
    assert_int_equal(vencrypt_credentials(v, &u, &p), 0);
    assert_string_equal(u, user);
    assert_string_equal(p, pass);
    vencrypt_free(v);
}

static void test_empty_credentials(void **state)
{
    (void)state;
    struct vencrypt *v = start_tls();
    assert_int_equal(feed(v, "\0\0\0\0\0\0\0\0", 8), VENCRYPT_EVENT_CREDENTIALS);
    const char *u, *p;
    assert_int_equal(vencrypt_credentials(v, &u, &p), 0);
    assert_string_equal(u, "");
    assert_string_equal(p, "");
    vencrypt_free(v);
}

static void test_nul_in_credentials(void **state)
{
    (void)state;
    struct vencrypt *v = start_tls();
    assert_int_equal(feed(v, "\0\0\0\3\0\0\0\2a\0bpw", 13), VENCRYPT_EVENT_FAILED);
    expect_refusal(v, (const uint8_t *)"\0\0\0\1", 4);
    vencrypt_free(v);

    v = start_tls();
    assert_int_equal(feed(v, "\0\0\0\1\0\0\0\2ap\0", 11), VENCRYPT_EVENT_FAILED);
    vencrypt_free(v);
}

static struct vencrypt *at_verdict(void)
{
    struct vencrypt *v = start_tls();
    uint8_t buf[64];
    size_t n = plain_credentials(buf, "carol", "wrong");
    assert_int_equal(feed(v, buf, n), VENCRYPT_EVENT_CREDENTIALS);
    return v;
}

static void test_failure_reason_encoding(void **state)
{
    (void)state;
    struct vencrypt *v = at_verdict();
    assert_int_equal(vencrypt_verdict(v, false, "Wrong password"), VENCRYPT_EVENT_FAILED);
    expect_output(v, "\0\0\0\1\0\0\0\016Wrong password", 8 + 14);
    assert_non_null(vencrypt_failure(v));
    vencrypt_free(v);

    v = at_verdict();
    assert_int_equal(vencrypt_verdict(v, false, NULL), VENCRYPT_EVENT_FAILED);
    expect_output(v, "\0\0\0\1\0\0\0\025Authentication failed", 8 + 21);
    vencrypt_free(v);

    /* Too long: cut to VENCRYPT_MAX_REASON bytes. */
    char longer[400];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = 0;
    v = at_verdict();
    vencrypt_verdict(v, false, longer);
    const uint8_t *out;
    size_t n = vencrypt_output(v, &out);
    assert_int_equal(n, 8 + VENCRYPT_MAX_REASON);
    assert_memory_equal(out + 4, "\0\0\0\xff", 4);
    vencrypt_free(v);

    /* ... never in the middle of a UTF-8 character (254 'a' then a 2-byte 'é'). */
    char utf8[260];
    memset(utf8, 'a', 254);
    memcpy(utf8 + 254, "\xc3\xa9zz", 5);
    v = at_verdict();
    vencrypt_verdict(v, false, utf8);
    n = vencrypt_output(v, &out);
    assert_int_equal(n, 8 + 254);
    vencrypt_free(v);
}

static void test_output_partial_consume(void **state)
{
    (void)state;
    struct vencrypt *v = NULL;
    assert_int_equal(vencrypt_new(&v), 0);
    const uint8_t *out;
    assert_int_equal(vencrypt_output(v, &out), 12);
    vencrypt_output_consumed(v, 4);
    expect_output(v, "003.008\n", 8);
    vencrypt_free(v);
    vencrypt_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_stops_at_start_tls),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_zero_length_feed),
        cmocka_unit_test(test_version_33),
        cmocka_unit_test(test_version_37),
        cmocka_unit_test(test_version_garbage),
        cmocka_unit_test(test_security_type_none),
        cmocka_unit_test(test_security_type_vncauth),
        cmocka_unit_test(test_wrong_vencrypt_version),
        cmocka_unit_test(test_wrong_subtype),
        cmocka_unit_test(test_oversize_credentials),
        cmocka_unit_test(test_max_size_credentials),
        cmocka_unit_test(test_empty_credentials),
        cmocka_unit_test(test_nul_in_credentials),
        cmocka_unit_test(test_failure_reason_encoding),
        cmocka_unit_test(test_output_partial_consume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
