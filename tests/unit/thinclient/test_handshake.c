/* The client side of the VeNCrypt handshake (thinclient/handshake.c) against scripted
 * fake servers. TLS itself is left out here (test_connect.c covers it): the Plain
 * credentials and SecurityResult run over the same plain socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-server.h"
#include "handshake.h"

static const uint8_t version_38[12] = "RFB 003.008\n";

/* Server side up to the VeNCrypt subtype acceptance, offering X509Plain. */
static bool serve_pre_tls(struct fake_server *fs)
{
    static const uint8_t types[] = {1, 19};
    static const uint8_t vv[] = {0, 2};
    static const uint8_t sub_list[] = {0, 2, 0, 0, 1, 4, 0, 0, 1, 6}; /* ok, [260, 262] */
    static const uint8_t choice[] = {0, 0, 1, 6};
    static const uint8_t accept[] = {1};
    return fs_write(fs, version_38, 12) && fs_expect(fs, version_38, 12, "client version") &&
           fs_write(fs, types, 2) && fs_expect(fs, (uint8_t[]){19}, 1, "security type") &&
           fs_write(fs, vv, 2) && fs_expect(fs, vv, 2, "vencrypt version") &&
           fs_write(fs, sub_list, sizeof(sub_list)) && fs_expect(fs, choice, 4, "subtype choice") &&
           fs_write(fs, accept, 1);
}

/* Reads the Plain credentials; fs->data must be "user\0password". */
static bool expect_credentials(struct fake_server *fs)
{
    const char *user = fs->data;
    const char *pass = user + strlen(user) + 1;
    uint8_t hdr[8];
    if (!fs_read(fs, hdr, 8))
        return false;
    uint32_t ulen = rfb_get_u32(hdr), plen = rfb_get_u32(hdr + 4);
    if (ulen != strlen(user) || plen != strlen(pass)) {
        fs_fail(fs, "credential lengths");
        return false;
    }
    return fs_expect(fs, user, ulen, "user") && fs_expect(fs, pass, plen, "password");
}

static void script_happy(struct fake_server *fs)
{
    if (serve_pre_tls(fs) && expect_credentials(fs))
        fs_u32(fs, 0);
}

static void test_happy_path(void **state)
{
    (void)state;
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_happy, "alice\0s3cret pass");

    assert_int_equal(handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st), 0);
    assert_int_equal(st.phase, HANDSHAKE_PHASE_TLS);
    struct rfb_stream s = rfb_stream_from_fd(&fs.peer_fd);
    assert_int_equal(handshake_plain_auth(&s, "alice", "s3cret pass", now_ms() + 5000, &st), 0);
    assert_int_equal(st.phase, HANDSHAKE_PHASE_INIT);

    fake_server_join(&fs);
    assert_string_equal(fs.failure, "");
}

/* A server offering only None (or VncAuth) must get no reply at all: no type choice, and
 * certainly no credentials. */
static void script_only_none(struct fake_server *fs)
{
    static const uint8_t types[] = {2, 1, 2};
    fs->count_trailing = true;
    if (fs_write(fs, version_38, 12) && fs_expect(fs, version_38, 12, "client version"))
        fs_write(fs, types, sizeof(types));
}

static void test_server_offers_only_none(void **state)
{
    (void)state;
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_only_none, NULL);

    int r = handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st);
    assert_int_equal(r, -EPROTO);
    assert_int_equal(st.phase, HANDSHAKE_PHASE_SECURITY);
    assert_non_null(strstr(st.detail, "VeNCrypt"));
    assert_non_null(strstr(st.detail, "1,2"));
    assert_int_equal(handshake_exit_code(r, st.phase), CLIENT_EXIT_PROTOCOL);

    fake_server_join(&fs);
    assert_string_equal(fs.failure, "");
    assert_int_equal(fs.trailing, 0);
}

/* VeNCrypt with only the TLS-less Plain subtype (256): refused before any credential. */
static void script_plain_without_tls(struct fake_server *fs)
{
    static const uint8_t types[] = {1, 19};
    static const uint8_t vv[] = {0, 2};
    static const uint8_t subs[] = {0, 1, 0, 0, 1, 0};
    fs->count_trailing = true;
    if (fs_write(fs, version_38, 12) && fs_expect(fs, version_38, 12, "version") &&
        fs_write(fs, types, 2) && fs_expect(fs, (uint8_t[]){19}, 1, "type") &&
        fs_write(fs, vv, 2) && fs_expect(fs, vv, 2, "vencrypt version"))
        fs_write(fs, subs, sizeof(subs));
}

static void test_plain_without_tls_refused(void **state)
{
    (void)state;
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_plain_without_tls, NULL);
    int r = handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st);
    assert_int_equal(r, -EPROTO);
    assert_int_equal(st.phase, HANDSHAKE_PHASE_VENCRYPT);
    assert_non_null(strstr(st.detail, "X509Plain"));
    fake_server_join(&fs);
    assert_string_equal(fs.failure, "");
    assert_int_equal(fs.trailing, 0);
}

struct auth_fail {
    const char *creds; /* "user\0password" */
    const uint8_t *reason;
    size_t reason_len;
    uint32_t announced_len;
};

static void script_auth_fails(struct fake_server *fs)
{
    struct auth_fail *af = fs->data;
    fs->data = (void *)af->creds;
    if (serve_pre_tls(fs) && expect_credentials(fs)) {
        fs_u32(fs, 1);
        fs_u32(fs, af->announced_len);
        fs_write(fs, af->reason, af->reason_len);
    }
}

static void test_auth_failure_reason(void **state)
{
    (void)state;
    static const char reason[] = "Invalid username or password";
    struct auth_fail af = {"bob\0wrong", (const uint8_t *)reason, strlen(reason),
                           (uint32_t)strlen(reason)};
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_auth_fails, &af);

    assert_int_equal(handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st), 0);
    struct rfb_stream s = rfb_stream_from_fd(&fs.peer_fd);
    int r = handshake_plain_auth(&s, "bob", "wrong", now_ms() + 5000, &st);
    assert_int_equal(r, -EACCES);
    assert_string_equal(st.reason, reason);
    assert_int_equal(st.phase, HANDSHAKE_PHASE_AUTH);
    assert_int_equal(handshake_exit_code(r, st.phase), CLIENT_EXIT_AUTH);
    fake_server_join(&fs);
    assert_string_equal(fs.failure, "");
}

/* A reason length of almost 4 GiB: capped at HANDSHAKE_MAX_REASON, nothing allocated from
 * it (ASan would see a huge allocation), and the client does not wait for the rest. */
static void test_oversize_reason_capped(void **state)
{
    (void)state;
    static uint8_t reason[3000];
    memset(reason, 'A', sizeof(reason));
    struct auth_fail af = {"bob\0wrong", reason, sizeof(reason), 0xfffffff0u};
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_auth_fails, &af);

    assert_int_equal(handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st), 0);
    struct rfb_stream s = rfb_stream_from_fd(&fs.peer_fd);
    uint64_t start = now_ms();
    assert_int_equal(handshake_plain_auth(&s, "bob", "wrong", now_ms() + 5000, &st), -EACCES);
    assert_true(now_ms() - start < 2000);
    assert_int_equal(strlen(st.reason), HANDSHAKE_MAX_REASON);
    fake_server_join(&fs);
}

/* The announced reason is longer than what is sent before the server goes quiet: the
 * verdict is still "authentication failed", within the reason timeout. */
static void test_truncated_reason(void **state)
{
    (void)state;
    static const uint8_t reason[] = "short";
    struct auth_fail af = {"bob\0wrong", reason, 5, 100};
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_auth_fails, &af);
    assert_int_equal(handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st), 0);
    struct rfb_stream s = rfb_stream_from_fd(&fs.peer_fd);
    assert_int_equal(handshake_plain_auth(&s, "bob", "wrong", now_ms() + 5000, &st), -EACCES);
    fake_server_join(&fs);
}

/* Terminal escape sequences in a reason are neutralised. */
static void test_reason_sanitized(void **state)
{
    (void)state;
    static const uint8_t reason[] = "\x1b]0;pwned\x07 bad\xc2\x9b"
                                    "31m \xff ok \xc3\xa4";
    struct auth_fail af = {"bob\0wrong", reason, sizeof(reason) - 1, sizeof(reason) - 1};
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_auth_fails, &af);
    assert_int_equal(handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st), 0);
    struct rfb_stream s = rfb_stream_from_fd(&fs.peer_fd);
    assert_int_equal(handshake_plain_auth(&s, "bob", "wrong", now_ms() + 5000, &st), -EACCES);
    assert_string_equal(st.reason, "?]0;pwned? bad??31m ? ok \xc3\xa4");
    fake_server_join(&fs);
}

static void script_vencrypt_01(struct fake_server *fs)
{
    static const uint8_t types[] = {1, 19};
    static const uint8_t vv[] = {0, 1};
    fs->count_trailing = true;
    if (fs_write(fs, version_38, 12) && fs_expect(fs, version_38, 12, "version") &&
        fs_write(fs, types, 2) && fs_expect(fs, (uint8_t[]){19}, 1, "type"))
        fs_write(fs, vv, 2);
}

static void test_wrong_vencrypt_version(void **state)
{
    (void)state;
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_vencrypt_01, NULL);
    int r = handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st);
    assert_int_equal(r, -EPROTO);
    assert_int_equal(st.phase, HANDSHAKE_PHASE_VENCRYPT);
    assert_non_null(strstr(st.detail, "0.1"));
    fake_server_join(&fs);
    assert_string_equal(fs.failure, "");
    assert_int_equal(fs.trailing, 0);
}

static void script_vencrypt_refused(struct fake_server *fs)
{
    static const uint8_t types[] = {1, 19};
    static const uint8_t vv[] = {0, 2};
    if (fs_write(fs, version_38, 12) && fs_expect(fs, version_38, 12, "version") &&
        fs_write(fs, types, 2) && fs_expect(fs, (uint8_t[]){19}, 1, "type") &&
        fs_write(fs, vv, 2) && fs_expect(fs, vv, 2, "vencrypt version"))
        fs_write(fs, (uint8_t[]){0xff}, 1);
}

static void test_vencrypt_version_refused(void **state)
{
    (void)state;
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_vencrypt_refused, NULL);
    assert_int_equal(handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st), -EPROTO);
    fake_server_join(&fs);
    assert_string_equal(fs.failure, "");
}

static void script_subtype_rejected(struct fake_server *fs)
{
    static const uint8_t types[] = {1, 19};
    static const uint8_t vv[] = {0, 2};
    static const uint8_t subs[] = {0, 1, 0, 0, 1, 6};
    if (fs_write(fs, version_38, 12) && fs_expect(fs, version_38, 12, "version") &&
        fs_write(fs, types, 2) && fs_expect(fs, (uint8_t[]){19}, 1, "type") &&
        fs_write(fs, vv, 2) && fs_expect(fs, vv, 2, "vencrypt version") &&
        fs_write(fs, subs, sizeof(subs)) && fs_expect(fs, (uint8_t[]){0, 0, 1, 6}, 4, "subtype"))
        fs_write(fs, (uint8_t[]){0}, 1);
}

static void test_subtype_rejected(void **state)
{
    (void)state;
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_subtype_rejected, NULL);
    assert_int_equal(handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st), -EPROTO);
    assert_non_null(strstr(st.detail, "rejected"));
    fake_server_join(&fs);
    assert_string_equal(fs.failure, "");
}

static void script_refused_with_reason(struct fake_server *fs)
{
    static const char reason[] = "Too many connections from your address";
    if (fs_write(fs, version_38, 12) && fs_expect(fs, version_38, 12, "version") &&
        fs_write(fs, (uint8_t[]){0}, 1)) {
        fs_u32(fs, sizeof(reason) - 1);
        fs_write(fs, reason, sizeof(reason) - 1);
    }
}

static void test_refused_with_reason(void **state)
{
    (void)state;
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_refused_with_reason, NULL);
    int r = handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st);
    assert_int_equal(r, -ECONNREFUSED);
    assert_string_equal(st.reason, "Too many connections from your address");
    assert_int_equal(handshake_exit_code(r, st.phase), CLIENT_EXIT_UNREACHABLE);
    fake_server_join(&fs);
}

static void script_silent(struct fake_server *fs)
{
    uint8_t b;
    (void)fd_read_full(fs->fd, &b, 1, now_ms() + 2000); /* until the client gives up */
}

static void test_silent_server_times_out(void **state)
{
    (void)state;
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_silent, NULL);
    uint64_t start = now_ms();
    int r = handshake_pre_tls(fs.peer_fd, now_ms() + 200, &st);
    assert_int_equal(r, -ETIMEDOUT);
    assert_true(now_ms() - start < 1500);
    assert_int_equal(st.phase, HANDSHAKE_PHASE_VERSION);
    assert_int_equal(handshake_exit_code(r, st.phase), CLIENT_EXIT_UNREACHABLE);
    fake_server_join(&fs);
}

static void script_close_after_version(struct fake_server *fs)
{
    if (fs_write(fs, version_38, 12))
        fs_expect(fs, version_38, 12, "version");
}

static void test_close_after_version_is_lost(void **state)
{
    (void)state;
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_close_after_version, NULL);
    int r = handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st);
    assert_int_equal(r, -EPIPE);
    assert_int_equal(st.phase, HANDSHAKE_PHASE_SECURITY);
    assert_int_equal(handshake_exit_code(r, st.phase), CLIENT_EXIT_LOST);
    fake_server_join(&fs);
}

static void script_send_text(struct fake_server *fs)
{
    fs_write(fs, fs->data, strlen(fs->data));
}

static void test_not_rfb_or_old_version(void **state)
{
    (void)state;
    static const char *const greetings[] = {"HTTP/1.1 400 Bad Request\r\n", "RFB 003.003\n",
                                            "RFB 003.007\n", "RFB 0x3.008\n"};
    for (size_t i = 0; i < ARRAY_SIZE(greetings); i++) {
        struct fake_server fs;
        struct handshake_status st;
        fake_server_start(&fs, script_send_text, (void *)greetings[i]);
        assert_int_equal(handshake_pre_tls(fs.peer_fd, now_ms() + 5000, &st), -EPROTO);
        assert_int_equal(st.phase, HANDSHAKE_PHASE_VERSION);
        fake_server_join(&fs);
    }
}

static void script_newer_version(struct fake_server *fs)
{
    if (fs_write(fs, "RFB 004.001\n", 12) && fs_expect(fs, version_38, 12, "our 3.8"))
        script_silent(fs);
}

static void test_newer_server_version_accepted(void **state)
{
    (void)state;
    /* A server announcing a later version gets our 3.8 (the server then decides). */
    struct fake_server fs;
    struct handshake_status st;
    fake_server_start(&fs, script_newer_version, NULL);
    int r = handshake_pre_tls(fs.peer_fd, now_ms() + 300, &st);
    assert_int_equal(r, -ETIMEDOUT); /* the script sends nothing after the version */
    assert_int_equal(st.phase, HANDSHAKE_PHASE_SECURITY);
    fake_server_join(&fs);
    assert_string_equal(fs.failure, "");
}

static void test_overlong_credentials_not_sent(void **state)
{
    (void)state;
    char longpass[300];
    memset(longpass, 'x', sizeof(longpass) - 1);
    longpass[sizeof(longpass) - 1] = '\0';
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct rfb_stream s = rfb_stream_from_fd(&sv[0]);
    struct handshake_status st;
    assert_int_equal(handshake_plain_auth(&s, "bob", longpass, now_ms() + 1000, &st), -EINVAL);
    assert_int_equal(fd_set_nonblock(sv[1], true), 0);
    uint8_t b;
    assert_true(read(sv[1], &b, 1) < 0 && errno == EAGAIN);
    close(sv[0]);
    close(sv[1]);
}

static void test_sanitize(void **state)
{
    (void)state;
    char out[16];
    static const uint8_t utf8[] = "caf\xc3\xa9";
    handshake_sanitize(out, sizeof(out), utf8, sizeof(utf8) - 1);
    assert_string_equal(out, "caf\xc3\xa9");
    /* Overlong encoding of '/', a lone continuation byte, a surrogate, a NUL. */
    static const uint8_t bad[] = {0xc0, 0xaf, 0x80, 0xed, 0xa0, 0x80, 'a', 0, 'b'};
    handshake_sanitize(out, sizeof(out), bad, sizeof(bad));
    assert_string_equal(out, "??????a?b");
    /* A multi-byte character never gets cut in half at the end of the buffer. */
    static const uint8_t euro[] = "abc\xe2\x82\xac";
    handshake_sanitize(out, 6, euro, sizeof(euro) - 1);
    assert_string_equal(out, "abc");
    handshake_sanitize(out, 7, euro, sizeof(euro) - 1);
    assert_string_equal(out, "abc\xe2\x82\xac");
}

static void test_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(handshake_exit_code(0, HANDSHAKE_PHASE_DONE), CLIENT_EXIT_OK);
    assert_int_equal(handshake_exit_code(-ECONNREFUSED, HANDSHAKE_PHASE_CONNECT), 3);
    assert_int_equal(handshake_exit_code(-ENXIO, HANDSHAKE_PHASE_CONNECT), 3);
    assert_int_equal(handshake_exit_code(-ETIMEDOUT, HANDSHAKE_PHASE_CONNECT), 3);
    assert_int_equal(handshake_exit_code(-EPERM, HANDSHAKE_PHASE_TLS), 4);
    assert_int_equal(handshake_exit_code(-EACCES, HANDSHAKE_PHASE_AUTH), 5);
    assert_int_equal(handshake_exit_code(-ECONNRESET, HANDSHAKE_PHASE_TLS), 6);
    assert_int_equal(handshake_exit_code(-ETIMEDOUT, HANDSHAKE_PHASE_AUTH), 6);
    assert_int_equal(handshake_exit_code(-EPROTO, HANDSHAKE_PHASE_TLS), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_server_offers_only_none),
        cmocka_unit_test(test_plain_without_tls_refused),
        cmocka_unit_test(test_auth_failure_reason),
        cmocka_unit_test(test_oversize_reason_capped),
        cmocka_unit_test(test_truncated_reason),
        cmocka_unit_test(test_reason_sanitized),
        cmocka_unit_test(test_wrong_vencrypt_version),
        cmocka_unit_test(test_vencrypt_version_refused),
        cmocka_unit_test(test_subtype_rejected),
        cmocka_unit_test(test_refused_with_reason),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_close_after_version_is_lost),
        cmocka_unit_test(test_not_rfb_or_old_version),
        cmocka_unit_test(test_newer_server_version_accepted),
        cmocka_unit_test(test_overlong_credentials_not_sent),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_exit_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
