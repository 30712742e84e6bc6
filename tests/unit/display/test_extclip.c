/* Unit tests for the RFB extended clipboard messages (display/extclip.c): the exact bytes
 * of the builders, provide round trips through the parser, provides made by hand with
 * zlib, and hostile payloads (short, broken zlib, truncated streams, oversized or
 * zip-bomb sizes, oversized payloads). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "extclip.h"

#define CLIENT_CUT_TEXT 6
#define SERVER_CUT_TEXT 3
#define TEXT_MAX ((size_t)1 << 20)

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A payload by hand: flags, then compress() of [u32 declared][data[0..data_len)].
 * malloc'd, its size in *ret_len. */
static uint8_t *make_provide(uint32_t flags, uint32_t declared, const void *data, size_t data_len,
                             size_t *ret_len)
{
    uint8_t *record = malloc(4 + data_len);
    assert_non_null(record);
    put_u32(record, declared);
    if (data_len)
        memcpy(record + 4, data, data_len);
    uLongf zlen = compressBound((uLong)(4 + data_len));
    uint8_t *payload = malloc(4 + zlen);
    assert_non_null(payload);
    put_u32(payload, flags);
    assert_int_equal(compress(payload + 4, &zlen, record, (uLong)(4 + data_len)), Z_OK);
    free(record);
    *ret_len = 4 + zlen;
    return payload;
}

/* A text provide whose record is exactly the text (declared size = its length). */
static uint8_t *make_text_provide(const char *text, size_t len, size_t *ret_len)
{
    return make_provide(EXTCLIP_PROVIDE | EXTCLIP_TEXT, (uint32_t)len, text, len, ret_len);
}

/* Parses payload with text_max and expects 0 and exactly the text want. */
static void parse_expect_text(const uint8_t *payload, size_t len, size_t text_max, const char *want)
{
    struct extclip_msg m;
    assert_int_equal(extclip_parse(payload, len, text_max, &m), 0);
    assert_int_equal(m.flags, get_u32(payload));
    assert_non_null(m.text);
    assert_int_equal(m.text_len, strlen(want));
    assert_memory_equal(m.text, want, m.text_len + 1);
    extclip_msg_done(&m);
    assert_null(m.text);
    assert_int_equal(m.text_len, 0);
}

/* Parses payload with text_max and expects the error err. */
static void parse_expect_error(const uint8_t *payload, size_t len, size_t text_max, int err)
{
    struct extclip_msg m = {0};
    assert_int_equal(extclip_parse(payload, len, text_max, &m), err);
    assert_null(m.text);
}

static void test_build_action_bytes(void **state)
{
    (void)state;
    uint8_t *msg = NULL;
    size_t len = 0;
    assert_int_equal(
        extclip_build_action(CLIENT_CUT_TEXT, EXTCLIP_NOTIFY | EXTCLIP_TEXT, &msg, &len), 0);
    const uint8_t notify[] = {6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0x08, 0, 0, 0x01};
    assert_int_equal(len, sizeof(notify));
    assert_memory_equal(msg, notify, sizeof(notify));
    free(msg);

    assert_int_equal(
        extclip_build_action(SERVER_CUT_TEXT, EXTCLIP_REQUEST | EXTCLIP_TEXT, &msg, &len), 0);
    const uint8_t request[] = {3, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0x02, 0, 0, 0x01};
    assert_int_equal(len, sizeof(request));
    assert_memory_equal(msg, request, sizeof(request));
    free(msg);

    assert_int_equal(extclip_build_action(SERVER_CUT_TEXT, EXTCLIP_PEEK, &msg, &len), 0);
    const uint8_t peek[] = {3, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 0x04, 0, 0, 0};
    assert_int_equal(len, sizeof(peek));
    assert_memory_equal(msg, peek, sizeof(peek));
    free(msg);
}

static void test_build_caps_bytes(void **state)
{
    (void)state;
    uint8_t *msg = NULL;
    size_t len = 0;
    uint32_t actions = EXTCLIP_REQUEST | EXTCLIP_NOTIFY | EXTCLIP_PROVIDE;
    assert_int_equal(extclip_build_caps(SERVER_CUT_TEXT, actions, 0x00123456, &msg, &len), 0);
    /* caps | request | notify | provide = 0x1b000000, text = bit 0, one size for text. */
    const uint8_t want[] = {3,    0,    0,    0,    0xff, 0xff, 0xff, 0xf8,
                            0x1b, 0x00, 0x00, 0x01, 0x00, 0x12, 0x34, 0x56};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(msg, want, sizeof(want));
    free(msg);
}

static void test_build_provide_bytes(void **state)
{
    (void)state;
    const char *text = "caf\xc3\xa9\nline 2";
    size_t text_len = strlen(text);
    uint8_t *msg = NULL;
    size_t len = 0;
    assert_int_equal(extclip_build_provide(CLIENT_CUT_TEXT, text, text_len, &msg, &len), 0);
    assert_true(len > 12);
    const uint8_t head[] = {6, 0, 0, 0};
    assert_memory_equal(msg, head, sizeof(head));
    assert_int_equal(get_u32(msg + 4), (uint32_t) - (int32_t)(len - 8));
    assert_int_equal(get_u32(msg + 8), EXTCLIP_PROVIDE | EXTCLIP_TEXT);

    /* The zlib stream holds [u32 size][text], without a NUL. */
    uint8_t record[64];
    uLongf rlen = sizeof(record);
    assert_int_equal(uncompress(record, &rlen, msg + 12, (uLong)(len - 12)), Z_OK);
    assert_int_equal(rlen, 4 + text_len);
    assert_int_equal(get_u32(record), text_len);
    assert_memory_equal(record + 4, text, text_len);
    free(msg);
}

static void test_build_provide_round_trip(void **state)
{
    (void)state;
    const char *text = "Hello, \xe2\x82\xac \xf0\x9f\x98\x80\nsecond line\n";
    uint8_t *msg = NULL;
    size_t len = 0;
    assert_int_equal(extclip_build_provide(SERVER_CUT_TEXT, text, strlen(text), &msg, &len), 0);
    parse_expect_text(msg + 8, len - 8, TEXT_MAX, text);
    free(msg);
}

static void test_build_provide_round_trip_large(void **state)
{
    (void)state;
    /* Incompressible-ish text of exactly TEXT_MAX bytes fits EXTCLIP_PAYLOAD_MAX. */
    char *text = malloc(TEXT_MAX + 1);
    assert_non_null(text);
    uint32_t x = 12345;
    for (size_t i = 0; i < TEXT_MAX; i++) {
        x = x * 1103515245u + 12345u;
        text[i] = (char)(' ' + (x >> 16) % 95);
    }
    text[TEXT_MAX] = '\0';
    uint8_t *msg = NULL;
    size_t len = 0;
    assert_int_equal(extclip_build_provide(SERVER_CUT_TEXT, text, TEXT_MAX, &msg, &len), 0);
    assert_true(len - 8 <= EXTCLIP_PAYLOAD_MAX(TEXT_MAX));
    parse_expect_text(msg + 8, len - 8, TEXT_MAX, text);
    free(msg);
    free(text);
}

static void test_build_provide_empty(void **state)
{
    (void)state;
    uint8_t *msg = NULL;
    size_t len = 0;
    assert_int_equal(extclip_build_provide(SERVER_CUT_TEXT, "", 0, &msg, &len), 0);
    parse_expect_text(msg + 8, len - 8, TEXT_MAX, "");
    free(msg);
}

static void test_parse_hand_made_provide_with_nul(void **state)
{
    (void)state;
    /* As most senders do: the text with its terminating NUL, counted in the size. */
    const char text[] = "from the desktop \xc3\xa9";
    size_t len;
    uint8_t *payload = make_text_provide(text, sizeof(text), &len);
    parse_expect_text(payload, len, TEXT_MAX, "from the desktop \xc3\xa9");
    free(payload);
}

static void test_parse_provide_crlf_to_lf(void **state)
{
    (void)state;
    const char text[] = "one\r\ntwo\r\nthree\rfour";
    size_t len;
    uint8_t *payload = make_text_provide(text, sizeof(text), &len);
    parse_expect_text(payload, len, TEXT_MAX, "one\ntwo\nthree\rfour");
    free(payload);
}

static void test_parse_provide_invalid_utf8_cleaned(void **state)
{
    (void)state;
    const char text[] = "caf\xe9 \xed\xa0\x80!";
    size_t len;
    uint8_t *payload = make_text_provide(text, sizeof(text) - 1, &len);
    parse_expect_text(payload, len, TEXT_MAX,
                      "caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!");
    free(payload);
}

static void test_parse_provide_stops_at_nul(void **state)
{
    (void)state;
    const char text[] = "visible\0hidden";
    size_t len;
    uint8_t *payload = make_text_provide(text, sizeof(text), &len);
    parse_expect_text(payload, len, TEXT_MAX, "visible");
    free(payload);
}

static void test_parse_provide_more_formats(void **state)
{
    (void)state;
    /* Text (bit 0) comes first; the records of other formats after it are ignored. */
    uint8_t record[4 + 6 + 4 + 5];
    put_u32(record, 6);
    memcpy(record + 4, "plain", 6);
    put_u32(record + 10, 5);
    memcpy(record + 14, "{rtf}", 5);
    uLongf zlen = compressBound(sizeof(record));
    uint8_t *payload = malloc(4 + zlen);
    assert_non_null(payload);
    put_u32(payload, EXTCLIP_PROVIDE | EXTCLIP_TEXT | (1u << 1));
    assert_int_equal(compress(payload + 4, &zlen, record, sizeof(record)), Z_OK);
    parse_expect_text(payload, 4 + zlen, TEXT_MAX, "plain");
    free(payload);
}

static void test_parse_actions_without_text(void **state)
{
    (void)state;
    const uint32_t all[] = {EXTCLIP_NOTIFY | EXTCLIP_TEXT, EXTCLIP_REQUEST | EXTCLIP_TEXT,
                            EXTCLIP_PEEK, EXTCLIP_NOTIFY};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        uint8_t payload[4];
        put_u32(payload, all[i]);
        struct extclip_msg m;
        assert_int_equal(extclip_parse(payload, sizeof(payload), TEXT_MAX, &m), 0);
        assert_int_equal(m.flags, all[i]);
        assert_null(m.text);
        assert_int_equal(m.text_len, 0);
        extclip_msg_done(&m);
    }
}

static void test_parse_built_action(void **state)
{
    (void)state;
    uint8_t *msg = NULL;
    size_t len = 0;
    struct extclip_msg m;
    assert_int_equal(
        extclip_build_action(CLIENT_CUT_TEXT, EXTCLIP_REQUEST | EXTCLIP_TEXT, &msg, &len), 0);
    assert_int_equal(extclip_parse(msg + 8, len - 8, TEXT_MAX, &m), 0);
    assert_int_equal(m.flags, EXTCLIP_REQUEST | EXTCLIP_TEXT);
    assert_null(m.text);
    extclip_msg_done(&m);
    free(msg);
}

static void test_parse_caps(void **state)
{
    (void)state;
    /* Caps list the actions a peer takes, provide among them: the u32 after the flags is
     * a size limit, not a zlib stream. This is QEMU's vnc_server_cut_text_caps() exactly:
     * provide | notify | request | caps | text, size 0. */
    const uint8_t qemu[] = {0x1b, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    struct extclip_msg m;
    assert_int_equal(extclip_parse(qemu, sizeof(qemu), TEXT_MAX, &m), 0);
    assert_int_equal(m.flags, EXTCLIP_CAPS | EXTCLIP_PROVIDE | EXTCLIP_NOTIFY | EXTCLIP_REQUEST |
                                  EXTCLIP_TEXT);
    assert_null(m.text);
    extclip_msg_done(&m);

    /* Our own caps parse back the same way. */
    uint8_t *msg = NULL;
    size_t len = 0;
    assert_int_equal(extclip_build_caps(SERVER_CUT_TEXT, EXTCLIP_PROVIDE, 4096, &msg, &len), 0);
    assert_int_equal(extclip_parse(msg + 8, len - 8, TEXT_MAX, &m), 0);
    assert_int_equal(m.flags, EXTCLIP_CAPS | EXTCLIP_PROVIDE | EXTCLIP_TEXT);
    assert_null(m.text);
    extclip_msg_done(&m);
    free(msg);
}

static void test_parse_provide_without_text_bit(void **state)
{
    (void)state;
    /* A provide of another format only (RTF, bit 1): nothing to inflate, no text. */
    uint8_t payload[4 + 8];
    put_u32(payload, EXTCLIP_PROVIDE | (1u << 1));
    memset(payload + 4, 0xa5, 8); /* not zlib: must not be looked at */
    struct extclip_msg m;
    assert_int_equal(extclip_parse(payload, sizeof(payload), TEXT_MAX, &m), 0);
    assert_int_equal(m.flags, EXTCLIP_PROVIDE | (1u << 1));
    assert_null(m.text);
    assert_int_equal(m.text_len, 0);
    extclip_msg_done(&m);
}

static void test_parse_short_payload(void **state)
{
    (void)state;
    const uint8_t payload[4] = {0x10, 0, 0, 0x01};
    for (size_t len = 0; len < 4; len++)
        parse_expect_error(payload, len, TEXT_MAX, -EBADMSG);
    /* A provide of text with nothing after the flags. */
    parse_expect_error(payload, 4, TEXT_MAX, -EBADMSG);
}

static void test_parse_provide_garbage(void **state)
{
    (void)state;
    uint8_t payload[4 + 32];
    put_u32(payload, EXTCLIP_PROVIDE | EXTCLIP_TEXT);
    for (size_t i = 4; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 37 + 11);
    parse_expect_error(payload, sizeof(payload), TEXT_MAX, -EBADMSG);
}

static void test_parse_provide_truncated(void **state)
{
    (void)state;
    size_t len;
    /* The stream ends properly but holds 10 bytes of the 100 it declares. */
    uint8_t *payload = make_provide(EXTCLIP_PROVIDE | EXTCLIP_TEXT, 100, "0123456789", 10, &len);
    parse_expect_error(payload, len, TEXT_MAX, -EBADMSG);
    free(payload);

    /* The stream ends inside the size field. */
    uLongf zlen = compressBound(2);
    uint8_t *short_size = malloc(4 + zlen);
    assert_non_null(short_size);
    put_u32(short_size, EXTCLIP_PROVIDE | EXTCLIP_TEXT);
    assert_int_equal(compress(short_size + 4, &zlen, (const Bytef *)"\0\0", 2), Z_OK);
    parse_expect_error(short_size, 4 + zlen, TEXT_MAX, -EBADMSG);
    free(short_size);

    /* A good stream cut short: the bytes stop well before the data does (random letters
     * barely compress, so the last 16 bytes of the stream hold data, not only the
     * checksum, which the parser need not read). */
    char text[2000];
    uint32_t x = 1;
    for (size_t i = 0; i < sizeof(text); i++) {
        x = x * 1103515245u + 12345u;
        text[i] = (char)('a' + (x >> 16) % 26);
    }
    payload = make_text_provide(text, sizeof(text), &len);
    assert_true(len > 1000);
    for (size_t cut = 4; cut < len - 16; cut += 61)
        parse_expect_error(payload, cut, TEXT_MAX, -EBADMSG);
    parse_expect_error(payload, len - 16, TEXT_MAX, -EBADMSG);
    free(payload);
}

static void test_parse_declared_size_too_big(void **state)
{
    (void)state;
    size_t len;
    /* 4 GiB declared, a few bytes held: refused on the size alone (an attempt to allocate
     * and inflate would end in -EBADMSG or -ENOMEM instead). */
    uint8_t *payload = make_provide(EXTCLIP_PROVIDE | EXTCLIP_TEXT, 0xffffffff, "abc", 3, &len);
    parse_expect_error(payload, len, TEXT_MAX, -E2BIG);
    free(payload);

    /* One over the limit (text_max + 1 for a NUL): refused before inflating. */
    payload = make_provide(EXTCLIP_PROVIDE | EXTCLIP_TEXT, 16 + 2, "abc", 3, &len);
    parse_expect_error(payload, len, 16, -E2BIG);
    free(payload);
}

static void test_parse_text_max_boundary(void **state)
{
    (void)state;
    size_t len;
    /* text_max bytes plus the NUL: accepted whole. */
    const char exact[] = "0123456789abcdef"; /* 16 + NUL */
    uint8_t *payload = make_text_provide(exact, sizeof(exact), &len);
    parse_expect_text(payload, len, 16, exact);
    free(payload);

    /* text_max bytes without a NUL: accepted whole. */
    payload = make_text_provide(exact, 16, &len);
    parse_expect_text(payload, len, 16, exact);
    free(payload);
}

static void test_parse_text_max_plus_one_refused(void **state)
{
    (void)state;
    /* text_max + 1 bytes of text without a NUL is text longer than text_max: -E2BIG per
     * extclip.h, not text cut to text_max. */
    const char text[] = "0123456789abcdefX"; /* 17 bytes */
    size_t len;
    uint8_t *payload = make_text_provide(text, sizeof(text) - 1, &len);
    parse_expect_error(payload, len, 16, -E2BIG);
    free(payload);
}

static void test_parse_zip_bomb(void **state)
{
    (void)state;
    /* 4 MiB of zeros compress to a few KiB, well within the payload limit. */
    size_t big = (size_t)4 << 20;
    uint8_t *zeros = calloc(1, big);
    assert_non_null(zeros);
    size_t len;
    uint8_t *payload =
        make_provide(EXTCLIP_PROVIDE | EXTCLIP_TEXT, (uint32_t)big, zeros, big, &len);
    free(zeros);
    assert_true(len <= EXTCLIP_PAYLOAD_MAX(TEXT_MAX));
    parse_expect_error(payload, len, TEXT_MAX, -E2BIG);
    free(payload);
}

static void test_parse_payload_too_long(void **state)
{
    (void)state;
    size_t max = EXTCLIP_PAYLOAD_MAX(16);
    uint8_t *payload = calloc(1, max + 1);
    assert_non_null(payload);
    put_u32(payload, EXTCLIP_NOTIFY | EXTCLIP_TEXT);
    parse_expect_error(payload, max + 1, 16, -E2BIG);

    /* Exactly the limit is read. */
    struct extclip_msg m;
    assert_int_equal(extclip_parse(payload, max, 16, &m), 0);
    assert_int_equal(m.flags, EXTCLIP_NOTIFY | EXTCLIP_TEXT);
    assert_null(m.text);
    extclip_msg_done(&m);
    free(payload);
}

static void test_msg_done_twice(void **state)
{
    (void)state;
    size_t len;
    uint8_t *payload = make_text_provide("x", 1, &len);
    struct extclip_msg m;
    assert_int_equal(extclip_parse(payload, len, TEXT_MAX, &m), 0);
    extclip_msg_done(&m);
    extclip_msg_done(&m);
    assert_null(m.text);
    free(payload);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_action_bytes),
        cmocka_unit_test(test_build_caps_bytes),
        cmocka_unit_test(test_build_provide_bytes),
        cmocka_unit_test(test_build_provide_round_trip),
        cmocka_unit_test(test_build_provide_round_trip_large),
        cmocka_unit_test(test_build_provide_empty),
        cmocka_unit_test(test_parse_hand_made_provide_with_nul),
        cmocka_unit_test(test_parse_provide_crlf_to_lf),
        cmocka_unit_test(test_parse_provide_invalid_utf8_cleaned),
        cmocka_unit_test(test_parse_provide_stops_at_nul),
        cmocka_unit_test(test_parse_provide_more_formats),
        cmocka_unit_test(test_parse_actions_without_text),
        cmocka_unit_test(test_parse_built_action),
        cmocka_unit_test(test_parse_caps),
        cmocka_unit_test(test_parse_provide_without_text_bit),
        cmocka_unit_test(test_parse_short_payload),
        cmocka_unit_test(test_parse_provide_garbage),
        cmocka_unit_test(test_parse_provide_truncated),
        cmocka_unit_test(test_parse_declared_size_too_big),
        cmocka_unit_test(test_parse_text_max_boundary),
        cmocka_unit_test(test_parse_text_max_plus_one_refused),
        cmocka_unit_test(test_parse_zip_bomb),
        cmocka_unit_test(test_parse_payload_too_long),
        cmocka_unit_test(test_msg_done_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
