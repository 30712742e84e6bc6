/* Unit tests for the clipboard text conversions (common/cut-text.c): single-character
 * decoding, Latin-1 <-> UTF-8, UTF-8 cleaning, CR LF, NUL, invalid UTF-8 and output caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cut-text.h"

#define NO_CAP ((size_t)1 << 20)
#define FFFD "\xef\xbf\xbd" /* U+FFFD in UTF-8 */

typedef char *(*convert_fn)(const char *text, size_t len, size_t max, size_t *ret_len);

/* Runs f on in[0..len) with max and checks the exact output bytes, length and terminator. */
static void check(convert_fn f, const char *in, size_t len, size_t max, const char *want)
{
    size_t out_len = (size_t)-1;
    char *out = f(in, len, max, &out_len);
    assert_non_null(out);
    assert_int_equal(out_len, strlen(want));
    assert_memory_equal(out, want, out_len + 1); /* NUL terminator included */
    assert_true(out_len <= max);
    free(out);
}

/* in is a string literal: its bytes up to (not including) the literal's own terminator. */
#define CHECK(f, in, max, want) check(f, in, sizeof(in) - 1, max, want)

/* Decodes s[0..left) and checks the code point and the number of bytes consumed. */
static void check_decode(const char *s, size_t left, uint32_t want_cp, size_t want_n)
{
    size_t n = 0;
    uint32_t cp = cut_text_utf8_decode((const uint8_t *)s, left, &n);
    assert_int_equal(cp, want_cp);
    assert_int_equal(n, want_n);
}

static void test_decode_valid(void **state)
{
    (void)state;
    check_decode("A", 1, 'A', 1);
    check_decode("\x7f", 1, 0x7f, 1);
    check_decode("\xc2\x80", 2, 0x80, 2);
    check_decode("\xc3\xa9", 2, 0xe9, 2);
    check_decode("\xe2\x82\xac", 3, 0x20ac, 3);
    check_decode("\xef\xbf\xbf", 3, 0xffff, 3);
    check_decode("\xf0\x9f\x98\x80", 4, 0x1f600, 4);
    check_decode("\xf4\x8f\xbf\xbf", 4, 0x10ffff, 4);
    /* Only the first character is decoded. */
    check_decode("\xc3\xa9xyz", 5, 0xe9, 2);
}

static void test_decode_invalid(void **state)
{
    (void)state;
    check_decode("\x80", 1, 0xfffd, 1); /* lone continuation byte */
    check_decode("\xbf", 1, 0xfffd, 1);
    check_decode("\xc3", 1, 0xfffd, 1);                 /* truncated by left */
    check_decode("\xe2\x82\xac", 2, 0xfffd, 1);         /* truncated by left */
    check_decode("\xc3Z", 2, 0xfffd, 1);                /* continuation missing */
    check_decode("\xc0\xaf", 2, 0xfffd, 1);             /* overlong '/' */
    check_decode("\xe0\x80\xaf", 3, 0xfffd, 1);         /* overlong '/' */
    check_decode("\xf0\x80\x80\xaf", 4, 0xfffd, 1);     /* overlong '/' */
    check_decode("\xed\xa0\x80", 3, 0xfffd, 1);         /* surrogate U+D800 */
    check_decode("\xed\xbf\xbf", 3, 0xfffd, 1);         /* surrogate U+DFFF */
    check_decode("\xf4\x90\x80\x80", 4, 0xfffd, 1);     /* U+110000 */
    check_decode("\xf8\x88\x80\x80\x80", 5, 0xfffd, 1); /* 5-byte form */
    check_decode("\xff", 1, 0xfffd, 1);
}

static void test_latin1_to_utf8(void **state)
{
    (void)state;
    CHECK(cut_text_latin1_to_utf8, "hello, world\n", NO_CAP, "hello, world\n");
    CHECK(cut_text_latin1_to_utf8, "caf\xe9", NO_CAP, "caf\xc3\xa9");
    CHECK(cut_text_latin1_to_utf8, "\xff\x80\xa0", NO_CAP, "\xc3\xbf\xc2\x80\xc2\xa0");
    CHECK(cut_text_latin1_to_utf8, "", NO_CAP, "");
}

static void test_utf8_to_latin1(void **state)
{
    (void)state;
    CHECK(cut_text_utf8_to_latin1, "hello, world\n", NO_CAP, "hello, world\n");
    CHECK(cut_text_utf8_to_latin1, "caf\xc3\xa9", NO_CAP, "caf\xe9");
    CHECK(cut_text_utf8_to_latin1, "\xc3\xbf\xc2\x80", NO_CAP, "\xff\x80");
    CHECK(cut_text_utf8_to_latin1, "", NO_CAP, "");
}

static void test_latin1_round_trip(void **state)
{
    (void)state;
    /* Every Latin-1 byte but NUL survives Latin-1 -> UTF-8 -> Latin-1 unchanged (CR is
     * not followed by LF here). */
    char all[255];
    for (int i = 0; i < 255; i++)
        all[i] = (char)(i + 1);
    size_t utf8_len, back_len;
    char *utf8 = cut_text_latin1_to_utf8(all, sizeof(all), NO_CAP, &utf8_len);
    assert_non_null(utf8);
    assert_int_equal(utf8_len, 127 + 2 * 128);
    char *back = cut_text_utf8_to_latin1(utf8, utf8_len, NO_CAP, &back_len);
    assert_non_null(back);
    assert_int_equal(back_len, sizeof(all));
    assert_memory_equal(back, all, sizeof(all));
    free(utf8);
    free(back);
}

static void test_above_latin1_becomes_question_mark(void **state)
{
    (void)state;
    CHECK(cut_text_utf8_to_latin1, "5\xe2\x82\xac", NO_CAP, "5?");            /* € */
    CHECK(cut_text_utf8_to_latin1, "\xc4\x80", NO_CAP, "?");                  /* U+0100 */
    CHECK(cut_text_utf8_to_latin1, "a\xf0\x9f\x98\x80z", NO_CAP, "a?z");      /* U+1F600 */
    CHECK(cut_text_utf8_to_latin1, "\xe4\xb8\xad\xe6\x96\x87", NO_CAP, "??"); /* 中文 */
}

static void test_crlf_becomes_lf(void **state)
{
    (void)state;
    CHECK(cut_text_utf8_to_latin1, "a\r\nb\r\n", NO_CAP, "a\nb\n");
    CHECK(cut_text_utf8_clean, "a\r\nb\r\n", NO_CAP, "a\nb\n");
    CHECK(cut_text_utf8_clean, "\r\r\n", NO_CAP, "\r\n");
    CHECK(cut_text_latin1_to_utf8, "caf\xe9\r\nb\r\n", NO_CAP, "caf\xc3\xa9\nb\n");
}

static void test_lone_cr_stays(void **state)
{
    (void)state;
    CHECK(cut_text_utf8_to_latin1, "a\rb", NO_CAP, "a\rb");
    CHECK(cut_text_utf8_to_latin1, "a\r", NO_CAP, "a\r");
    CHECK(cut_text_utf8_clean, "a\rb", NO_CAP, "a\rb");
    CHECK(cut_text_utf8_clean, "a\r", NO_CAP, "a\r");
    CHECK(cut_text_utf8_clean, "\n\r", NO_CAP, "\n\r");
    CHECK(cut_text_latin1_to_utf8, "a\rb\r", NO_CAP, "a\rb\r");
}

static void test_nul_ends_text(void **state)
{
    (void)state;
    CHECK(cut_text_latin1_to_utf8, "ab\0cd", NO_CAP, "ab");
    CHECK(cut_text_utf8_to_latin1, "ab\0cd", NO_CAP, "ab");
    CHECK(cut_text_utf8_clean, "ab\0cd", NO_CAP, "ab");
    CHECK(cut_text_utf8_clean, "\0abc", NO_CAP, "");
    /* A CR right before the NUL is a lone CR. */
    CHECK(cut_text_utf8_clean, "a\r\0\n", NO_CAP, "a\r");
}

static void test_clean_keeps_valid_utf8(void **state)
{
    (void)state;
    const char *s = "plain ASCII, caf\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x98\x80, \xf4\x8f\xbf\xbf";
    check(cut_text_utf8_clean, s, strlen(s), NO_CAP, s);
}

static void test_clean_invalid_becomes_fffd(void **state)
{
    (void)state;
    /* One U+FFFD per byte not part of a valid character. */
    CHECK(cut_text_utf8_clean, "a\x80z", NO_CAP, "a" FFFD "z");
    CHECK(cut_text_utf8_clean, "ab\xc3", NO_CAP, "ab" FFFD);
    CHECK(cut_text_utf8_clean, "ab\xe2\x82", NO_CAP, "ab" FFFD FFFD);
    CHECK(cut_text_utf8_clean, "\xc0\xaf", NO_CAP, FFFD FFFD);
    CHECK(cut_text_utf8_clean, "\xed\xa0\x80", NO_CAP, FFFD FFFD FFFD);
    CHECK(cut_text_utf8_clean, "\xf4\x90\x80\x80", NO_CAP, FFFD FFFD FFFD FFFD);
    CHECK(cut_text_utf8_clean, "\xc3Z", NO_CAP, FFFD "Z");
    CHECK(cut_text_utf8_clean, "\xff\xfe", NO_CAP, FFFD FFFD);
}

static void test_to_latin1_invalid_becomes_question_mark(void **state)
{
    (void)state;
    CHECK(cut_text_utf8_to_latin1, "a\x80z", NO_CAP, "a?z");
    CHECK(cut_text_utf8_to_latin1, "ab\xc3", NO_CAP, "ab?");
    CHECK(cut_text_utf8_to_latin1, "\xc0\xaf", NO_CAP, "??");
    CHECK(cut_text_utf8_to_latin1, "\xed\xa0\x80", NO_CAP, "???");
    CHECK(cut_text_utf8_to_latin1, "\xf4\x90\x80\x80", NO_CAP, "????");
    /* Raw Latin-1 sent as if it were UTF-8. */
    CHECK(cut_text_utf8_to_latin1, "caf\xe9", NO_CAP, "caf?");
}

static void test_cap_latin1_to_utf8(void **state)
{
    (void)state;
    CHECK(cut_text_latin1_to_utf8, "\xe9", 1, "");
    CHECK(cut_text_latin1_to_utf8, "a\xe9", 2, "a");
    CHECK(cut_text_latin1_to_utf8, "a\xe9", 3, "a\xc3\xa9");
    CHECK(cut_text_latin1_to_utf8, "abcdef", 4, "abcd");
    CHECK(cut_text_latin1_to_utf8, "abc", 0, "");
}

static void test_cap_utf8_to_latin1(void **state)
{
    (void)state;
    CHECK(cut_text_utf8_to_latin1, "abcdef", 4, "abcd");
    CHECK(cut_text_utf8_to_latin1, "\xc3\xa9\xc3\xa9\xc3\xa9", 2, "\xe9\xe9");
    CHECK(cut_text_utf8_to_latin1, "a\r\nb", 2, "a\n");
    CHECK(cut_text_utf8_to_latin1, "abc", 0, "");
}

static void test_cap_clean(void **state)
{
    (void)state;
    CHECK(cut_text_utf8_clean, "\xc3\xa9", 1, "");
    CHECK(cut_text_utf8_clean, "a\xc3\xa9", 2, "a");
    CHECK(cut_text_utf8_clean, "a\xe2\x82\xac", 3, "a");
    CHECK(cut_text_utf8_clean, "a\xe2\x82\xac", 4, "a\xe2\x82\xac");
    CHECK(cut_text_utf8_clean, "\xf0\x9f\x98\x80", 3, "");
    CHECK(cut_text_utf8_clean, "a\x80", 3, "a"); /* U+FFFD does not fit */
    CHECK(cut_text_utf8_clean, "abcdef", 4, "abcd");
    CHECK(cut_text_utf8_clean, "abc", 0, "");
    /* The cap stops at the first character that does not fit, even if a later one would. */
    CHECK(cut_text_utf8_clean, "\xe2\x82\xacz", 2, "");
}

static void test_cap_invalid_input_expands(void **state)
{
    (void)state;
    /* 1000 invalid bytes would be 3000 bytes of U+FFFD: the output stays within max and
     * ends on a whole character. */
    char bad[1000];
    memset(bad, 0x80, sizeof(bad));
    for (size_t max = 0; max <= 3010; max += 7) {
        size_t out_len;
        char *out = cut_text_utf8_clean(bad, sizeof(bad), max, &out_len);
        assert_non_null(out);
        size_t want = max / 3 < sizeof(bad) ? max / 3 * 3 : sizeof(bad) * 3;
        assert_int_equal(out_len, want);
        assert_int_equal(strlen(out), out_len);
        for (size_t i = 0; i < out_len; i += 3)
            assert_memory_equal(out + i, FFFD, 3);
        free(out);
    }
}

static void test_empty_input(void **state)
{
    (void)state;
    check(cut_text_latin1_to_utf8, "", 0, NO_CAP, "");
    check(cut_text_utf8_to_latin1, "", 0, NO_CAP, "");
    check(cut_text_utf8_clean, "", 0, NO_CAP, "");
    check(cut_text_latin1_to_utf8, "", 0, 0, "");
    check(cut_text_utf8_to_latin1, "", 0, 0, "");
    check(cut_text_utf8_clean, "", 0, 0, "");
}

static void test_len_bounds_input(void **state)
{
    (void)state;
    /* Only text[0..len) is read: no NUL is needed within it. */
    check(cut_text_latin1_to_utf8, "abc\xe9", 2, NO_CAP, "ab");
    check(cut_text_utf8_to_latin1, "ab\r\n", 3, NO_CAP, "ab\r");
    check(cut_text_utf8_clean, "ab\xc3\xa9", 3, NO_CAP, "ab" FFFD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_valid),
        cmocka_unit_test(test_decode_invalid),
        cmocka_unit_test(test_latin1_to_utf8),
        cmocka_unit_test(test_utf8_to_latin1),
        cmocka_unit_test(test_latin1_round_trip),
        cmocka_unit_test(test_above_latin1_becomes_question_mark),
        cmocka_unit_test(test_crlf_becomes_lf),
        cmocka_unit_test(test_lone_cr_stays),
        cmocka_unit_test(test_nul_ends_text),
        cmocka_unit_test(test_clean_keeps_valid_utf8),
        cmocka_unit_test(test_clean_invalid_becomes_fffd),
        cmocka_unit_test(test_to_latin1_invalid_becomes_question_mark),
        cmocka_unit_test(test_cap_latin1_to_utf8),
        cmocka_unit_test(test_cap_utf8_to_latin1),
        cmocka_unit_test(test_cap_clean),
        cmocka_unit_test(test_cap_invalid_input_expands),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_len_bounds_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
