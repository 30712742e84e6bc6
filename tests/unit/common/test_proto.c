/* Unit tests for the broker <-> session message codec (common/proto.c). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "proto.h"
#include "util.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_roundtrip_auth_request(void **state)
{
    (void)state;
    struct proto_message m, out;
    proto_message_init(&m, PROTO_AUTH_REQUEST);
    assert_int_equal(proto_set_string(m.username, sizeof(m.username), "alice"), 0);
    assert_int_equal(proto_set_string(m.password, sizeof(m.password), "s3cret"), 0);
    uint8_t buf[PROTO_MAX_PACKET];
    int len = proto_encode(&m, buf, sizeof(buf));
    assert_int_equal(len, 4 + 2 + 5 + 2 + 6);
    assert_int_equal(proto_decode(buf, (size_t)len, -1, PROTO_FROM_SESSION, &out), 0);
    assert_int_equal(out.type, PROTO_AUTH_REQUEST);
    assert_string_equal(out.username, "alice");
    assert_string_equal(out.password, "s3cret");
    proto_message_done(&out);
    assert_string_equal(out.password, "");
}

static void test_roundtrip_auth_result(void **state)
{
    (void)state;
    struct proto_message m, out;
    proto_message_init(&m, PROTO_AUTH_RESULT);
    m.ok = false;
    proto_set_string(m.text, sizeof(m.text), "Authentication failed");
    uint8_t buf[PROTO_MAX_PACKET];
    int len = proto_encode(&m, buf, sizeof(buf));
    assert_true(len > 0);
    assert_int_equal(proto_decode(buf, (size_t)len, -1, PROTO_FROM_BROKER, &out), 0);
    assert_false(out.ok);
    assert_string_equal(out.text, "Authentication failed");
}

static void test_oversize_strings_refused(void **state)
{
    (void)state;
    struct proto_message m;
    proto_message_init(&m, PROTO_AUTH_REQUEST);
    char big[PROTO_MAX_USERNAME + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(proto_set_string(m.username, sizeof(m.username), big), -E2BIG);

    /* A hand-made packet claiming a 300-byte username. */
    uint8_t buf[PROTO_MAX_PACKET] = {PROTO_VERSION, PROTO_AUTH_REQUEST};
    size_t body = 2 + 300 + 2;
    buf[2] = (uint8_t)(body & 0xff);
    buf[3] = (uint8_t)(body >> 8);
    buf[4] = 300 & 0xff;
    buf[5] = 300 >> 8;
    memset(buf + 6, 'a', 300);
    struct proto_message out;
    assert_int_equal(proto_decode(buf, 4 + body, -1, PROTO_FROM_SESSION, &out), -EBADMSG);
}

static void test_malformed_refused(void **state)
{
    (void)state;
    struct proto_message m, out;
    proto_message_init(&m, PROTO_AUTH_REQUEST);
    proto_set_string(m.username, sizeof(m.username), "bob");
    proto_set_string(m.password, sizeof(m.password), "pw");
    uint8_t buf[PROTO_MAX_PACKET];
    int len = proto_encode(&m, buf, sizeof(buf));

    /* Every truncation is refused. */
    for (int cut = 0; cut < len; cut++)
        assert_int_equal(proto_decode(buf, (size_t)cut, -1, PROTO_FROM_SESSION, &out), -EBADMSG);
    /* Trailing garbage (with a consistent header) is refused. */
    uint8_t longer[PROTO_MAX_PACKET];
    memcpy(longer, buf, (size_t)len);
    longer[len] = 'x';
    longer[2]++;
    assert_int_equal(proto_decode(longer, (size_t)len + 1, -1, PROTO_FROM_SESSION, &out),
                     -EBADMSG);
    /* Wrong direction: a session may not send broker messages and vice versa. */
    assert_int_equal(proto_decode(buf, (size_t)len, -1, PROTO_FROM_BROKER, &out), -EBADMSG);
    /* An fd where the type carries none. */
    assert_int_equal(proto_decode(buf, (size_t)len, 0, PROTO_FROM_SESSION, &out), -EBADMSG);
    /* Another version, unknown type, NUL inside a string, bad ok byte. */
    buf[0] = PROTO_VERSION - 1;
    assert_int_equal(proto_decode(buf, (size_t)len, -1, PROTO_FROM_SESSION, &out),
                     -EPROTONOSUPPORT);
    buf[0] = PROTO_VERSION + 1;
    assert_int_equal(proto_decode(buf, (size_t)len, -1, PROTO_FROM_SESSION, &out),
                     -EPROTONOSUPPORT);
    buf[0] = PROTO_VERSION;
    buf[1] = 99;
    assert_int_equal(proto_decode(buf, (size_t)len, -1, PROTO_FROM_SESSION, &out), -EBADMSG);
    buf[1] = PROTO_AUTH_REQUEST;
    buf[7] = '\0'; /* inside "bob" */
    assert_int_equal(proto_decode(buf, (size_t)len, -1, PROTO_FROM_SESSION, &out), -EBADMSG);

    uint8_t result[] = {PROTO_VERSION, PROTO_AUTH_RESULT, 3, 0, 2, 0, 0};
    assert_int_equal(proto_decode(result, sizeof(result), -1, PROTO_FROM_BROKER, &out), -EBADMSG);
    result[4] = 1;
    assert_int_equal(proto_decode(result, sizeof(result), -1, PROTO_FROM_BROKER, &out), 0);
    assert_true(out.ok);
}

static void test_socket_fd_passing(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct proto_message m, out;
    proto_message_init(&m, PROTO_DESKTOP_READY);
    proto_set_string(m.text, sizeof(m.text), "vdi-alice");
    proto_set_string(m.token, sizeof(m.token), TOKEN);
    /* READY without an fd cannot be sent. */
    assert_int_equal(proto_send(sv[0], &m), -EINVAL);
    m.fd = devnull;
    assert_int_equal(proto_send(sv[0], &m), 0);
    assert_int_equal(proto_recv(sv[1], PROTO_FROM_BROKER, &out), 0);
    assert_true(out.fd >= 0);
    assert_true(fcntl(out.fd, F_GETFD) & FD_CLOEXEC);
    struct stat a, b;
    fstat(devnull, &a);
    fstat(out.fd, &b);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    assert_string_equal(out.text, "vdi-alice");
    proto_message_done(&out);
    assert_int_equal(out.fd, -1);

    /* An fd smuggled with a type that carries none: refused and closed. */
    proto_message_init(&m, PROTO_DESKTOP_READY);
    proto_set_string(m.text, sizeof(m.text), "x");
    proto_set_string(m.token, sizeof(m.token), TOKEN);
    m.fd = devnull;
    assert_int_equal(proto_send(sv[0], &m), 0);
    assert_int_equal(proto_recv(sv[1], PROTO_FROM_SESSION, &out), -EBADMSG);

    /* An oversize packet is truncated by the kernel and refused. */
    uint8_t huge[PROTO_MAX_PACKET + 100];
    memset(huge, 0, sizeof(huge));
    huge[0] = PROTO_VERSION;
    huge[1] = PROTO_CLOSE;
    assert_int_equal(send(sv[0], huge, sizeof(huge), 0), (int)sizeof(huge));
    assert_int_equal(proto_recv(sv[1], PROTO_FROM_BROKER, &out), -EBADMSG);

    /* Peer closed. */
    close(sv[0]);
    assert_int_equal(proto_recv(sv[1], PROTO_FROM_BROKER, &out), -EPIPE);
    close(sv[1]);
    close(devnull);
}

/* ---- protocol version 2 ---------------------------------------------------------------- */

/* Encodes m and decodes it again as coming from sender (with fd when the type has one). */
static void roundtrip(const struct proto_message *m, enum proto_sender sender, int fd,
                      struct proto_message *out, uint8_t *buf, int *len)
{
    *len = proto_encode(m, buf, PROTO_MAX_PACKET);
    assert_true(*len > PROTO_HEADER_SIZE);
    assert_int_equal(proto_decode(buf, (size_t)*len, fd, sender, out), 0);
    assert_int_equal(out->type, m->type);
}

/* Every truncation of a valid packet (header length adjusted, so only the body is short)
 * is refused; so is one extra byte. */
static void expect_truncations_refused(const uint8_t *buf, int len, enum proto_sender sender,
                                       int fd)
{
    uint8_t b[PROTO_MAX_PACKET + 1];
    struct proto_message out;
    for (int cut = PROTO_HEADER_SIZE; cut < len; cut++) {
        memcpy(b, buf, (size_t)cut);
        size_t body = (size_t)cut - PROTO_HEADER_SIZE;
        b[2] = (uint8_t)(body & 0xff);
        b[3] = (uint8_t)(body >> 8);
        if (proto_decode(b, (size_t)cut, fd, sender, &out) != -EBADMSG)
            fail_msg("a packet cut to %d of %d bytes was accepted", cut, len);
    }
    memcpy(b, buf, (size_t)len);
    b[len] = 0;
    size_t body = (size_t)len + 1 - PROTO_HEADER_SIZE;
    b[2] = (uint8_t)(body & 0xff);
    b[3] = (uint8_t)(body >> 8);
    assert_int_equal(proto_decode(b, (size_t)len + 1, fd, sender, &out), -EBADMSG);
}

static void test_roundtrip_desktop_ready(void **state)
{
    (void)state;
    struct proto_message m, out;
    uint8_t buf[PROTO_MAX_PACKET];
    int len;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    proto_message_init(&m, PROTO_DESKTOP_READY);
    assert_int_equal(proto_set_string(m.text, sizeof(m.text), "vdi-alice"), 0);
    assert_int_equal(proto_set_string(m.token, sizeof(m.token), TOKEN), 0);
    m.id = 0x8877665544332211ull; /* every byte distinct: byte order is checked */
    m.flags = PROTO_FLAG_VIEW_ONLY;
    roundtrip(&m, PROTO_FROM_BROKER, fd, &out, buf, &len);
    assert_int_equal(len, 4 + 2 + 9 + 8 + 1 + 2 + PROTO_TOKEN_LEN);
    assert_string_equal(out.text, "vdi-alice");
    assert_true(out.id == 0x8877665544332211ull);
    assert_int_equal(out.flags, PROTO_FLAG_VIEW_ONLY);
    assert_string_equal(out.token, TOKEN);
    assert_int_equal(out.fd, fd);
    /* u64 little-endian after the name, as the other integers */
    assert_int_equal(buf[4 + 2 + 9], 0x11);
    assert_int_equal(buf[4 + 2 + 9 + 7], 0x88);
    out.fd = -1;
    proto_message_done(&out);
    assert_string_equal(out.token, ""); /* wiped */

    m.flags = 0;
    m.id = 0;
    roundtrip(&m, PROTO_FROM_BROKER, fd, &out, buf, &len);
    assert_int_equal(out.flags, 0);
    assert_true(out.id == 0);
    out.fd = -1;
    proto_message_done(&out);
    close(fd);
}

static void test_roundtrip_notice(void **state)
{
    (void)state;
    struct proto_message m, out;
    uint8_t buf[PROTO_MAX_PACKET];
    int len;
    proto_message_init(&m, PROTO_NOTICE);
    assert_int_equal(proto_set_string(m.text, sizeof(m.text), "Maintenance at 18:00"), 0);
    roundtrip(&m, PROTO_FROM_BROKER, -1, &out, buf, &len);
    assert_string_equal(out.text, "Maintenance at 18:00");
    proto_message_init(&m, PROTO_NOTICE); /* "": remove the banner */
    roundtrip(&m, PROTO_FROM_BROKER, -1, &out, buf, &len);
    assert_int_equal(len, 4 + 2);
    assert_string_equal(out.text, "");
    /* The longest text fits; one byte more does not. */
    memset(m.text, 'x', PROTO_MAX_TEXT);
    m.text[PROTO_MAX_TEXT] = '\0';
    roundtrip(&m, PROTO_FROM_BROKER, -1, &out, buf, &len);
    assert_int_equal(strlen(out.text), PROTO_MAX_TEXT);
    char big[PROTO_MAX_TEXT + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(proto_set_string(m.text, sizeof(m.text), big), -E2BIG);
}

static void test_roundtrip_activity(void **state)
{
    (void)state;
    struct proto_message m, out;
    uint8_t buf[PROTO_MAX_PACKET];
    int len;
    proto_message_init(&m, PROTO_ACTIVITY);
    m.idle_ms = UINT32_MAX;
    m.bytes_to_client = UINT64_MAX;
    m.bytes_from_client = 0x0102030405060708ull;
    roundtrip(&m, PROTO_FROM_SESSION, -1, &out, buf, &len);
    assert_int_equal(len, 4 + 4 + 8 + 8);
    assert_true(out.idle_ms == UINT32_MAX);
    assert_true(out.bytes_to_client == UINT64_MAX);
    assert_true(out.bytes_from_client == 0x0102030405060708ull);
    m.idle_ms = 1234;
    m.bytes_to_client = 0;
    roundtrip(&m, PROTO_FROM_SESSION, -1, &out, buf, &len);
    assert_true(out.idle_ms == 1234);
    assert_true(out.bytes_to_client == 0);
}

static void test_roundtrip_reattach(void **state)
{
    (void)state;
    struct proto_message m, out;
    uint8_t buf[PROTO_MAX_PACKET];
    int len;
    proto_message_init(&m, PROTO_REATTACH);
    m.id = UINT64_MAX - 1;
    assert_int_equal(proto_set_string(m.token, sizeof(m.token), TOKEN), 0);
    roundtrip(&m, PROTO_FROM_SESSION, -1, &out, buf, &len);
    assert_int_equal(len, 4 + 8 + 2 + PROTO_TOKEN_LEN);
    assert_true(out.id == UINT64_MAX - 1);
    assert_string_equal(out.token, TOKEN);
    proto_message_done(&out);
    assert_string_equal(out.token, "");
    /* No fd with it. */
    len = proto_encode(&m, buf, sizeof(buf));
    assert_int_equal(proto_decode(buf, (size_t)len, 0, PROTO_FROM_SESSION, &out), -EBADMSG);
}

static void test_roundtrip_reattach_result(void **state)
{
    (void)state;
    struct proto_message m, out;
    uint8_t buf[PROTO_MAX_PACKET];
    int len;
    proto_message_init(&m, PROTO_REATTACH_RESULT);
    m.ok = true;
    roundtrip(&m, PROTO_FROM_BROKER, -1, &out, buf, &len);
    assert_true(out.ok);
    assert_string_equal(out.text, "");
    m.ok = false;
    proto_set_string(m.text, sizeof(m.text), "Unknown session");
    roundtrip(&m, PROTO_FROM_BROKER, -1, &out, buf, &len);
    assert_false(out.ok);
    assert_string_equal(out.text, "Unknown session");
    /* ok must be 0 or 1 */
    buf[4] = 2;
    assert_int_equal(proto_decode(buf, (size_t)len, -1, PROTO_FROM_BROKER, &out), -EBADMSG);
}

/* A REATTACH packet built by hand: id, then a token string of tlen bytes. */
static size_t reattach_packet(uint8_t *buf, const char *token, size_t tlen)
{
    size_t body = 8 + 2 + tlen;
    buf[0] = PROTO_VERSION;
    buf[1] = PROTO_REATTACH;
    buf[2] = (uint8_t)(body & 0xff);
    buf[3] = (uint8_t)(body >> 8);
    memset(buf + 4, 0x42, 8);
    buf[12] = (uint8_t)(tlen & 0xff);
    buf[13] = (uint8_t)(tlen >> 8);
    memcpy(buf + 14, token, tlen);
    return 4 + body;
}

static void test_bad_tokens_refused(void **state)
{
    (void)state;
    struct proto_message m, out;
    uint8_t buf[PROTO_MAX_PACKET];
    char t[PROTO_TOKEN_LEN + 2];

    /* The encoder refuses what the decoder would. */
    static const char *const bad[] = {
        "",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",  /* 63 */
        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", /* upper case */
        "0123456789abcdeg0123456789abcdef0123456789abcdef0123456789abcdef", /* 'g' */
        "0123456789abcdef0123456789abcdef 123456789abcdef0123456789abcdef", /* space */
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        proto_message_init(&m, PROTO_REATTACH);
        assert_int_equal(proto_set_string(m.token, sizeof(m.token), bad[i]), 0);
        assert_int_equal(proto_encode(&m, buf, sizeof(buf)), -EINVAL);
        proto_message_init(&m, PROTO_DESKTOP_READY);
        assert_int_equal(proto_set_string(m.token, sizeof(m.token), bad[i]), 0);
        assert_int_equal(proto_encode(&m, buf, sizeof(buf)), -EINVAL);
        size_t len = reattach_packet(buf, bad[i], strlen(bad[i]));
        if (proto_decode(buf, len, -1, PROTO_FROM_SESSION, &out) != -EBADMSG)
            fail_msg("token \"%s\" accepted", bad[i]);
    }
    /* 65 characters, and a NUL inside */
    memset(t, 'a', PROTO_TOKEN_LEN + 1);
    size_t len = reattach_packet(buf, t, PROTO_TOKEN_LEN + 1);
    assert_int_equal(proto_decode(buf, len, -1, PROTO_FROM_SESSION, &out), -EBADMSG);
    memset(t, 'a', PROTO_TOKEN_LEN);
    t[10] = '\0';
    len = reattach_packet(buf, t, PROTO_TOKEN_LEN);
    assert_int_equal(proto_decode(buf, len, -1, PROTO_FROM_SESSION, &out), -EBADMSG);
    /* and the right one */
    len = reattach_packet(buf, TOKEN, PROTO_TOKEN_LEN);
    assert_int_equal(proto_decode(buf, len, -1, PROTO_FROM_SESSION, &out), 0);
    assert_true(out.id == 0x4242424242424242ull);
    assert_string_equal(out.token, TOKEN);
    proto_message_done(&out);
}

static void test_bad_flags_refused(void **state)
{
    (void)state;
    struct proto_message m, out;
    uint8_t buf[PROTO_MAX_PACKET];
    proto_message_init(&m, PROTO_DESKTOP_READY);
    proto_set_string(m.text, sizeof(m.text), "d");
    proto_set_string(m.token, sizeof(m.token), TOKEN);
    int len = proto_encode(&m, buf, sizeof(buf));
    assert_true(len > 0);
    size_t flags_at = 4 + 2 + 1 + 8;
    assert_int_equal(buf[flags_at], 0);
    static const uint8_t bad[] = {0x02, 0x04, 0x80, 0xff, PROTO_FLAG_VIEW_ONLY | 0x02};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        buf[flags_at] = bad[i];
        if (proto_decode(buf, (size_t)len, 0, PROTO_FROM_BROKER, &out) != -EBADMSG)
            fail_msg("flags 0x%02x accepted", bad[i]);
    }
    buf[flags_at] = PROTO_FLAG_VIEW_ONLY;
    assert_int_equal(proto_decode(buf, (size_t)len, 0, PROTO_FROM_BROKER, &out), 0);
    assert_int_equal(out.flags, PROTO_FLAG_VIEW_ONLY);
    out.fd = -1; /* 0 is not ours */
    proto_message_done(&out);
}

/* Truncated u64s (and every other truncation) of the new messages are refused. */
static void test_truncated_v2_messages_refused(void **state)
{
    (void)state;
    struct proto_message m;
    uint8_t buf[PROTO_MAX_PACKET];
    int len;

    proto_message_init(&m, PROTO_DESKTOP_READY);
    proto_set_string(m.text, sizeof(m.text), "desk");
    proto_set_string(m.token, sizeof(m.token), TOKEN);
    m.id = 7;
    len = proto_encode(&m, buf, sizeof(buf));
    expect_truncations_refused(buf, len, PROTO_FROM_BROKER, 0);

    proto_message_init(&m, PROTO_ACTIVITY);
    m.idle_ms = 5;
    m.bytes_to_client = 6;
    m.bytes_from_client = 7;
    len = proto_encode(&m, buf, sizeof(buf));
    expect_truncations_refused(buf, len, PROTO_FROM_SESSION, -1);

    proto_message_init(&m, PROTO_REATTACH);
    proto_set_string(m.token, sizeof(m.token), TOKEN);
    len = proto_encode(&m, buf, sizeof(buf));
    expect_truncations_refused(buf, len, PROTO_FROM_SESSION, -1);

    proto_message_init(&m, PROTO_REATTACH_RESULT);
    proto_set_string(m.text, sizeof(m.text), "no");
    len = proto_encode(&m, buf, sizeof(buf));
    expect_truncations_refused(buf, len, PROTO_FROM_BROKER, -1);

    proto_message_init(&m, PROTO_NOTICE);
    proto_set_string(m.text, sizeof(m.text), "banner");
    len = proto_encode(&m, buf, sizeof(buf));
    expect_truncations_refused(buf, len, PROTO_FROM_BROKER, -1);
}

/* Each new type only from its sender. */
static void test_v2_directions(void **state)
{
    (void)state;
    static const struct {
        enum proto_type type;
        enum proto_sender sender;
        const char *name;
    } t[] = {
        {PROTO_NOTICE, PROTO_FROM_BROKER, "NOTICE"},
        {PROTO_ACTIVITY, PROTO_FROM_SESSION, "ACTIVITY"},
        {PROTO_REATTACH, PROTO_FROM_SESSION, "REATTACH"},
        {PROTO_REATTACH_RESULT, PROTO_FROM_BROKER, "REATTACH_RESULT"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        struct proto_message m, out;
        uint8_t buf[PROTO_MAX_PACKET];
        proto_message_init(&m, t[i].type);
        proto_set_string(m.token, sizeof(m.token), TOKEN);
        int len = proto_encode(&m, buf, sizeof(buf));
        assert_true(len > 0);
        enum proto_sender other =
            t[i].sender == PROTO_FROM_BROKER ? PROTO_FROM_SESSION : PROTO_FROM_BROKER;
        assert_int_equal(proto_decode(buf, (size_t)len, -1, t[i].sender, &out), 0);
        proto_message_done(&out);
        assert_int_equal(proto_decode(buf, (size_t)len, -1, other, &out), -EBADMSG);
        assert_string_equal(proto_type_name(t[i].type), t[i].name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_auth_request),
        cmocka_unit_test(test_roundtrip_auth_result),
        cmocka_unit_test(test_oversize_strings_refused),
        cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_socket_fd_passing),
        cmocka_unit_test(test_roundtrip_desktop_ready),
        cmocka_unit_test(test_roundtrip_notice),
        cmocka_unit_test(test_roundtrip_activity),
        cmocka_unit_test(test_roundtrip_reattach),
        cmocka_unit_test(test_roundtrip_reattach_result),
        cmocka_unit_test(test_bad_tokens_refused),
        cmocka_unit_test(test_bad_flags_refused),
        cmocka_unit_test(test_truncated_v2_messages_refused),
        cmocka_unit_test(test_v2_directions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
