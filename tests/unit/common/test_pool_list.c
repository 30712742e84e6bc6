/* Unit tests for the desktop chooser's pool list (common/pool-list.c), the classification
 * of the broker's refusal reasons (common/reasons.c) and the login forms both sides accept
 * (login_is_valid, pool_name_is_valid in common/util.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pool-list.h"
#include "proto.h"
#include "reasons.h"
#include "util.h"

#define REASON_SIZE (PROTO_MAX_TEXT + 1)

static struct pool_choice choice(const char *name, const char *os)
{
    struct pool_choice c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    snprintf(c.os, sizeof(c.os), "%s", os);
    return c;
}

/* ---- pool_list_format / pool_list_parse ---- */

static void test_round_trip(void **state)
{
    (void)state;
    struct pool_choice in[] = {choice("eng", "linux"), choice("win10", "windows"),
                               choice("lab-2", "linux")};
    struct pool_choice out[POOL_LIST_MAX];
    char text[REASON_SIZE];

    assert_int_equal(pool_list_format(in, 3, text, sizeof(text)), 3);
    assert_string_equal(text, "VDI-POOLS/1 eng:linux win10:windows lab-2:linux");
    assert_int_equal(pool_list_parse(text, out), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(out[i].name, in[i].name);
        assert_string_equal(out[i].os, in[i].os);
    }

    /* one entry; names at the 32 limit */
    struct pool_choice big = choice("0123456789abcdef0123456789abcdef", "windows");
    assert_int_equal(pool_list_format(&big, 1, text, sizeof(text)), 1);
    assert_string_equal(text, "VDI-POOLS/1 0123456789abcdef0123456789abcdef:windows");
    assert_int_equal(pool_list_parse(text, out), 1);
    assert_string_equal(out[0].name, big.name);
    assert_string_equal(out[0].os, "windows");
}

/* 9 pools of 32-character names take about 9 * 40 bytes: only the first ones fit 255
 * bytes, in their order, and what is written parses back to exactly those. */
static void test_truncated_to_fit(void **state)
{
    (void)state;
    struct pool_choice in[9], out[POOL_LIST_MAX];
    char text[REASON_SIZE];

    for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
        char name[POOL_LIST_NAME_MAX + 1];
        memset(name, 'a' + (int)i, POOL_LIST_NAME_MAX);
        name[POOL_LIST_NAME_MAX] = '\0';
        in[i] = choice(name, i % 2 ? "windows" : "linux");
    }
    size_t fit = pool_list_format(in, ARRAY_SIZE(in), text, sizeof(text));
    /* the tag is 11 bytes, " name:linux" 39 and " name:windows" 41: 11 + 3 * 80 = 251 */
    assert_int_equal(fit, 6);
    assert_true(strlen(text) <= PROTO_MAX_TEXT);
    assert_int_equal(strlen(text), 251);
    assert_int_equal(pool_list_parse(text, out), 6);
    for (size_t i = 0; i < fit; i++)
        assert_string_equal(out[i].name, in[i].name);

    /* exactly at the limit: 251 bytes + NUL fit 252, not 251 */
    assert_int_equal(pool_list_format(in, ARRAY_SIZE(in), text, 252), 6);
    assert_int_equal(pool_list_format(in, ARRAY_SIZE(in), text, 251), 5);
    assert_int_equal(strlen(text), 210);
    assert_int_equal(pool_list_parse(text, out), 5);

    /* the tag alone fits: no entry, out is the tag; not even the tag: "" */
    assert_int_equal(pool_list_format(in, 1, text, sizeof(POOL_LIST_TAG)), 0);
    assert_string_equal(text, POOL_LIST_TAG);
    assert_int_equal(pool_list_format(in, 1, text, 5), 0);
    assert_string_equal(text, "");
    assert_int_equal(pool_list_format(in, 1, text, 0), 0);
    assert_int_equal(pool_list_format(in, 0, text, sizeof(text)), 0);
    assert_int_equal(pool_list_parse(POOL_LIST_TAG, out), -EINVAL);
}

/* Entries the parser would refuse are never written. */
static void test_format_skips_invalid(void **state)
{
    (void)state;
    struct pool_choice in[] = {choice("Eng", "linux"), choice("ok", "beos"), choice("a b", "linux"),
                               choice("good", "windows")};
    char text[REASON_SIZE];

    assert_int_equal(pool_list_format(in, ARRAY_SIZE(in), text, sizeof(text)), 1);
    assert_string_equal(text, "VDI-POOLS/1 good:windows");
}

/* More than POOL_LIST_MAX entries: the first POOL_LIST_MAX are kept, the rest dropped
 * (but still checked). */
static void test_parse_many(void **state)
{
    (void)state;
    struct pool_choice out[POOL_LIST_MAX];
    char text[POOL_LIST_MAX * 16 + 64];
    size_t len = (size_t)snprintf(text, sizeof(text), "%s", POOL_LIST_TAG);

    for (int i = 0; i < POOL_LIST_MAX + 3; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, " p%d:linux", i);
    assert_true(len < sizeof(text));
    assert_int_equal(pool_list_parse(text, out), POOL_LIST_MAX);
    assert_string_equal(out[0].name, "p0");
    assert_string_equal(out[POOL_LIST_MAX - 1].name, "p63");

    /* a bad word after the kept ones still makes the list invalid */
    snprintf(text + len, sizeof(text) - len, " BAD:linux");
    assert_int_equal(pool_list_parse(text, out), -EINVAL);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    struct pool_choice out[POOL_LIST_MAX];
    static const char *const bad[] = {
        "",
        "VDI-POOLS/1",
        "VDI-POOLS/1 ",
        "VDI-POOLS/2 eng:linux",
        "VDI-POOLS/1x eng:linux",
        "vdi-pools/1 eng:linux",
        " VDI-POOLS/1 eng:linux",
        "VDI-POOLS/1  eng:linux",             /* two spaces */
        "VDI-POOLS/1 eng:linux ",             /* trailing space */
        "VDI-POOLS/1 eng:linux  win:windows", /* empty word */
        "VDI-POOLS/1\teng:linux",
        "VDI-POOLS/1 eng:linux\t",
        "VDI-POOLS/1 eng:linux\n",
        "VDI-POOLS/1 eng",                 /* no os */
        "VDI-POOLS/1 eng:",                /* empty os */
        "VDI-POOLS/1 :linux",              /* empty name */
        "VDI-POOLS/1 eng:Linux",           /* os words are exact */
        "VDI-POOLS/1 eng:linuxx",          /* "linux" is only a prefix */
        "VDI-POOLS/1 eng:lin",             /* a prefix of "linux" */
        "VDI-POOLS/1 eng:macos",           /* unknown os */
        "VDI-POOLS/1 eng:linux:x",         /* junk after the os */
        "VDI-POOLS/1 Eng:linux",           /* upper case */
        "VDI-POOLS/1 -eng:linux",          /* starts with '-' */
        "VDI-POOLS/1 e_g:linux",           /* '_' */
        "VDI-POOLS/1 e.g:linux",           /* '.' */
        "VDI-POOLS/1 ../x:linux",          /* path */
        "VDI-POOLS/1 eng:linux eng:linux", /* twice */
        "VDI-POOLS/1 eng:linux \xc3\xa9:linux",
        "VDI-POOLS/1 0123456789abcdef0123456789abcdefX:linux", /* 33 */
        "Authentication failed",
    };

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (pool_list_parse(bad[i], out) != -EINVAL)
            fail_msg("accepted: \"%s\"", bad[i]);
    assert_int_equal(pool_list_parse(NULL, out), -EINVAL);

    /* a very long name cannot overflow anything */
    char text[4096];
    size_t len = (size_t)snprintf(text, sizeof(text), "%s ", POOL_LIST_TAG);
    memset(text + len, 'a', sizeof(text) - len - 1);
    text[sizeof(text) - 1] = '\0';
    assert_int_equal(pool_list_parse(text, out), -EINVAL);
    memcpy(text + sizeof(text) - 7, ":linux", 7);
    assert_int_equal(pool_list_parse(text, out), -EINVAL);
    /* a very long os word neither */
    len = (size_t)snprintf(text, sizeof(text), "%s eng:", POOL_LIST_TAG);
    memset(text + len, 'l', sizeof(text) - len - 1);
    text[sizeof(text) - 1] = '\0';
    assert_int_equal(pool_list_parse(text, out), -EINVAL);

    /* and what is well formed is accepted, with its os words as given */
    assert_int_equal(pool_list_parse("VDI-POOLS/1 a:linux 9-x:windows", out), 2);
    assert_string_equal(out[0].name, "a");
    assert_string_equal(out[1].name, "9-x");
    assert_string_equal(out[1].os, "windows");
}

/* ---- reason_classify: every reason the broker and vdi-session send ---- */

static void test_classify(void **state)
{
    (void)state;
    static const struct {
        const char *reason;
        enum reason_class want;
    } cases[] = {
        /* as broker.c, pools.c and display/ write them */
        {REASON_AUTH_FAILED, REASON_CLASS_AUTH_FAILED},
        {"Authentication failed", REASON_CLASS_AUTH_FAILED},
        {REASON_AUTH_INVALID, REASON_CLASS_AUTH_FAILED},
        {"Invalid username or password", REASON_CLASS_AUTH_FAILED},
        {REASON_THROTTLED_PREFIX " 2 minutes", REASON_CLASS_THROTTLED},
        {"Too many failed logins; try again in 5 seconds", REASON_CLASS_THROTTLED},
        {"Too many failed logins; try again in 1 second", REASON_CLASS_THROTTLED},
        {REASON_LOCKED_PREFIX " 15 minutes", REASON_CLASS_LOCKED},
        {"Too many failed logins; logging in is locked for 2 hours", REASON_CLASS_LOCKED},
        {REASON_NO_DESKTOP, REASON_CLASS_NO_DESKTOP},
        {"No desktop is assigned to you; ask your IT administrator for access",
         REASON_CLASS_NO_DESKTOP},
        {REASON_NOT_ENTITLED_PREFIX " 'eng'", REASON_CLASS_NOT_ENTITLED},
        {"You are not entitled to desktop pool 'nosuch'", REASON_CLASS_NOT_ENTITLED},
        {"VDI-POOLS/1 eng:linux win10:windows", REASON_CLASS_POOL_LIST},
        /* the broker's other refusals: shown as they are */
        {"You can use several desktop pools; log in as alice@eng or alice@win10",
         REASON_CLASS_OTHER},
        {"The server is busy checking other logins, please try again in a moment",
         REASON_CLASS_OTHER},
        {"Authentication took too long", REASON_CLASS_OTHER},
        {"Only administrators may watch other sessions", REASON_CLASS_OTHER},
        {"The server is shutting down", REASON_CLASS_OTHER},
        {"The server is restarting; please log in again in a moment", REASON_CLASS_OTHER},
        {"Internal server error", REASON_CLASS_OTHER},
        {"Your desktop could not be prepared (the server log has the details)", REASON_CLASS_OTHER},
        {"Service unavailable", REASON_CLASS_OTHER},
        /* near misses */
        {"", REASON_CLASS_OTHER},
        {"Authentication failed.", REASON_CLASS_OTHER},
        {"authentication failed", REASON_CLASS_OTHER},
        {" Authentication failed", REASON_CLASS_OTHER},
        {"No desktop is assigned to you", REASON_CLASS_OTHER},
        {REASON_THROTTLED_PREFIX, REASON_CLASS_OTHER},
        {REASON_LOCKED_PREFIX, REASON_CLASS_OTHER},
        {REASON_NOT_ENTITLED_PREFIX, REASON_CLASS_OTHER},
        {"Too many failed logins; try again inX", REASON_CLASS_OTHER},
        {"VDI-POOLS/1", REASON_CLASS_OTHER},
        {"VDI-POOLS/12 eng:linux", REASON_CLASS_OTHER},
        {"VDI-POOLS/2 eng:linux", REASON_CLASS_OTHER},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        if (reason_classify(cases[i].reason) != cases[i].want)
            fail_msg("\"%s\": class %d, expected %d", cases[i].reason,
                     (int)reason_classify(cases[i].reason), (int)cases[i].want);
    assert_int_equal(reason_classify(NULL), REASON_CLASS_OTHER);

    /* what pool_list_format writes is a pool list */
    struct pool_choice in = choice("eng", "linux");
    char text[REASON_SIZE];
    assert_int_equal(pool_list_format(&in, 1, text, sizeof(text)), 1);
    assert_int_equal(reason_classify(text), REASON_CLASS_POOL_LIST);
}

/* ---- login forms (vdi-session logs those as given) ---- */

static void test_login_is_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "alice",
        "a.b_c-D",
        "alice@eng",
        "alice@lab-2",
        "alice@?",
        "admin@#1",
        "admin@#42",
        "admin@#18446744073709551615",
        "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu@pppppppppppppppppppppppppppppppp",
    };
    static const char *const bad[] = {
        "",
        "@eng",
        "-x",
        ".x",
        "al ice",
        "alice@",
        "alice@?x",
        "alice@??",
        "alice@Eng",
        "alice@-eng",
        "alice@eng@x",
        "alice@eng x",
        "alice@#",
        "alice@#0",
        "alice@#042",
        "alice@#-1",
        "alice@#+1",
        "alice@# 1",
        "alice@#1x",
        "alice@#18446744073709551616",
        "Hunter2 secret\" user=root",
        "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu",
        "alice@ppppppppppppppppppppppppppppppppp",
    };

    for (size_t i = 0; i < ARRAY_SIZE(good); i++)
        if (!login_is_valid(good[i]))
            fail_msg("refused: \"%s\"", good[i]);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (login_is_valid(bad[i]))
            fail_msg("accepted: \"%s\"", bad[i]);

    assert_true(pool_name_is_valid("eng"));
    assert_true(pool_name_is_valid("0-a"));
    assert_false(pool_name_is_valid(""));
    assert_false(pool_name_is_valid("-a"));
    assert_false(pool_name_is_valid("a_b"));
    assert_false(pool_name_is_valid("A"));
    assert_false(pool_name_is_valid("?"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),           cmocka_unit_test(test_truncated_to_fit),
        cmocka_unit_test(test_format_skips_invalid), cmocka_unit_test(test_parse_many),
        cmocka_unit_test(test_parse_malformed),      cmocka_unit_test(test_classify),
        cmocka_unit_test(test_login_is_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
