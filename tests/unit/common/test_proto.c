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
    buf[0] = 2;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_auth_request),
        cmocka_unit_test(test_roundtrip_auth_result),
        cmocka_unit_test(test_oversize_strings_refused),
        cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_socket_fd_passing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
