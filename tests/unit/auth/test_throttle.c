/* Brute-force throttling and MaxStartups (throttle.h), driven by a fake clock. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "throttle.h"

/* free 3, delays 1 s doubling up to 8 s, lock at 10 failures for 60 s, window 600 s */
#define DELAY_MAX_MS 8000
#define LOCKOUT_MS 60000
#define WINDOW_MS 600000

static struct throttle_options fixture_options(void)
{
    struct throttle_options o;

    throttle_options_default(&o);
    o.delay_max_ms = DELAY_MAX_MS;
    o.lockout_s = LOCKOUT_MS / 1000;
    o.window_s = WINDOW_MS / 1000;
    return o;
}

static struct throttle *new_throttle(size_t max_entries)
{
    struct throttle_options o = fixture_options();
    struct throttle *t = NULL;

    o.max_entries = max_entries;
    assert_int_equal(throttle_new(&o, &t), 0);
    assert_non_null(t);
    return t;
}

static void fail_n(struct throttle *t, const char *address, const char *user, int n, uint64_t now)
{
    for (int i = 0; i < n; i++)
        throttle_failure(t, address, user, now);
}

static void assert_verdict(struct throttle *t, const char *address, const char *user, uint64_t now,
                           enum throttle_verdict verdict, bool by_account, uint64_t wait_ms)
{
    struct throttle_result r = throttle_check(t, address, user, now);

    assert_int_equal(r.verdict, verdict);
    if (verdict != THROTTLE_ALLOW) {
        assert_int_equal(r.by_account, by_account);
        assert_int_equal(r.wait_ms, wait_ms);
    }
}

static void assert_allowed(struct throttle *t, const char *address, const char *user, uint64_t now)
{
    assert_verdict(t, address, user, now, THROTTLE_ALLOW, false, 0);
}

/* The penalty after n failures: 0 for the free ones, then 1, 2, 4, 8, 8 ... s. */
static uint64_t expected_delay(int n)
{
    uint64_t d;

    if (n <= 3)
        return 0;
    d = 1000ULL << (n - 4);
    return d < DELAY_MAX_MS ? d : DELAY_MAX_MS;
}

static void test_free_failures(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(100);
    struct throttle_stats st;

    for (int i = 0; i < 3; i++) {
        assert_allowed(t, "192.0.2.1", "alice", 0);
        throttle_failure(t, "192.0.2.1", "alice", 0);
    }
    /* three failures are free: the fourth attempt is checked right away */
    assert_allowed(t, "192.0.2.1", "alice", 0);
    throttle_failure(t, "192.0.2.1", "alice", 0);
    assert_verdict(t, "192.0.2.1", "alice", 0, THROTTLE_DELAYED, true, 2000);

    throttle_stats(t, &st);
    assert_int_equal(st.delayed, 1);
    assert_int_equal(st.locked, 0);
    assert_int_equal(st.addresses, 1);
    assert_int_equal(st.accounts, 1);
    throttle_free(t);
}

static void test_delays_double_and_cap(void **state)
{
    (void)state;

    /* after n failures at 0 the key is refused until expected_delay(n), then allowed */
    for (int n = 1; n <= 9; n++) {
        uint64_t d = expected_delay(n);
        struct throttle *t = new_throttle(100);

        fail_n(t, "192.0.2.1", "", n, 0);
        /* the refusal counts: failure n + 1 at d - 1, the tenth locks */
        if (d > 0 && n + 1 < 10)
            assert_verdict(t, "192.0.2.1", "", d - 1, THROTTLE_DELAYED, false,
                           expected_delay(n + 1));
        else if (d > 0)
            assert_verdict(t, "192.0.2.1", "", d - 1, THROTTLE_LOCKED, false, LOCKOUT_MS);
        throttle_free(t);

        t = new_throttle(100);
        fail_n(t, "192.0.2.1", "", n, 0);
        assert_allowed(t, "192.0.2.1", "", d);
        throttle_free(t);
    }
    assert_int_equal(expected_delay(7), DELAY_MAX_MS);
    assert_int_equal(expected_delay(9), DELAY_MAX_MS);
}

static void test_attempt_during_penalty(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(100);
    struct throttle_stats st;

    fail_n(t, "192.0.2.1", "alice", 4, 0); /* refused until 1000 */
    /* each early attempt is the next failure, counted from its own time */
    assert_verdict(t, "192.0.2.1", "alice", 500, THROTTLE_DELAYED, true, 2000);
    assert_verdict(t, "192.0.2.1", "alice", 2499, THROTTLE_DELAYED, true, 4000);
    assert_verdict(t, "192.0.2.1", "alice", 6498, THROTTLE_DELAYED, true, 8000);
    assert_verdict(t, "192.0.2.1", "alice", 14497, THROTTLE_DELAYED, true, 8000);
    assert_allowed(t, "192.0.2.1", "alice", 22497);

    throttle_stats(t, &st);
    assert_int_equal(st.delayed, 4);
    assert_int_equal(st.locked, 0);
    assert_int_equal(st.lockouts, 0);
    throttle_free(t);
}

static void test_lockout(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(100);
    struct throttle_stats st;

    fail_n(t, "192.0.2.1", "alice", 8, 0);
    assert_verdict(t, "192.0.2.1", "alice", 0, THROTTLE_DELAYED, true, 8000);
    throttle_stats(t, &st);
    assert_int_equal(st.lockouts, 0);

    /* that refusal was failure 10: locked for 60 s; hammering moves the end */
    assert_verdict(t, "192.0.2.1", "alice", 1000, THROTTLE_LOCKED, true, LOCKOUT_MS);
    assert_verdict(t, "192.0.2.1", "alice", 2000, THROTTLE_LOCKED, true, LOCKOUT_MS);
    throttle_stats(t, &st);
    assert_int_equal(st.lockouts, 2); /* address and account */
    assert_int_equal(st.locked, 2);
    assert_int_equal(st.delayed, 1);

    assert_verdict(t, "192.0.2.1", "alice", 2000 + LOCKOUT_MS - 1, THROTTLE_LOCKED, true,
                   LOCKOUT_MS);
    assert_allowed(t, "192.0.2.1", "alice", 2 * LOCKOUT_MS + 1999);

    /* one more failure within the window locks again, counted as a new lockout */
    throttle_failure(t, "192.0.2.1", "", 2 * LOCKOUT_MS + 1999);
    assert_verdict(t, "192.0.2.1", "", 2 * LOCKOUT_MS + 2000, THROTTLE_LOCKED, false, LOCKOUT_MS);
    throttle_stats(t, &st);
    assert_int_equal(st.lockouts, 3);
    throttle_free(t);
}

static void test_window_forgets(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(100);

    fail_n(t, "192.0.2.1", "", 3, 0);
    fail_n(t, "192.0.2.2", "", 3, 0);
    /* just inside the window: the fourth failure gets a delay */
    throttle_failure(t, "192.0.2.1", "", WINDOW_MS - 1);
    assert_verdict(t, "192.0.2.1", "", WINDOW_MS - 1, THROTTLE_DELAYED, false, 2000);
    /* after it: the old failures are gone, this one is the first */
    throttle_failure(t, "192.0.2.2", "", WINDOW_MS);
    assert_allowed(t, "192.0.2.2", "", WINDOW_MS);
    fail_n(t, "192.0.2.2", "", 2, WINDOW_MS);
    assert_allowed(t, "192.0.2.2", "", WINDOW_MS);

    /* a lockout also ends, and the window then forgets it */
    fail_n(t, "192.0.2.3", "", 10, 0);
    assert_allowed(t, "192.0.2.3", "", WINDOW_MS);
    throttle_failure(t, "192.0.2.3", "", WINDOW_MS);
    assert_allowed(t, "192.0.2.3", "", WINDOW_MS);
    throttle_free(t);
}

static void test_success_resets(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(100);
    struct throttle_stats st;

    fail_n(t, "192.0.2.1", "alice", 10, 0);
    assert_verdict(t, "192.0.2.9", "alice", 1, THROTTLE_LOCKED, true, LOCKOUT_MS);
    assert_verdict(t, "192.0.2.1", "bob", 1, THROTTLE_LOCKED, false, LOCKOUT_MS);

    throttle_success(t, "192.0.2.1", "alice");
    throttle_stats(t, &st);
    assert_int_equal(st.addresses, 0);
    assert_int_equal(st.accounts, 0);
    assert_allowed(t, "192.0.2.9", "alice", 2);
    assert_allowed(t, "192.0.2.1", "bob", 2);
    /* counting starts over */
    fail_n(t, "192.0.2.1", "alice", 3, 2);
    assert_allowed(t, "192.0.2.1", "alice", 2);

    /* success of an unknown key is harmless */
    throttle_success(t, "198.51.100.1", "nobody");
    throttle_success(t, "198.51.100.1", "");
    throttle_free(t);
}

static void test_account_decides(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(100);

    /* alice failed from several addresses, each below its own free limit */
    fail_n(t, "192.0.2.1", "alice", 2, 0);
    fail_n(t, "192.0.2.2", "alice", 2, 0);
    assert_verdict(t, "192.0.2.3", "alice", 1, THROTTLE_DELAYED, true, 2000);
    assert_allowed(t, "192.0.2.1", "bob", 1);

    /* both refuse: the lockout decides over the delay */
    fail_n(t, "198.51.100.1", "", 10, 0);
    assert_verdict(t, "198.51.100.1", "alice", 2, THROTTLE_LOCKED, false, LOCKOUT_MS);
    /* both delayed: the longer wait decides */
    fail_n(t, "198.51.100.2", "", 7, 0);
    fail_n(t, "198.51.100.3", "carol", 4, 0);
    assert_verdict(t, "198.51.100.2", "carol", 3, THROTTLE_DELAYED, false, 8000);
    throttle_free(t);
}

static void test_empty_user(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(100);
    struct throttle_stats st;

    fail_n(t, "192.0.2.1", "", 10, 0);
    throttle_stats(t, &st);
    assert_int_equal(st.addresses, 1);
    assert_int_equal(st.accounts, 0);
    assert_allowed(t, "192.0.2.2", "", 1);
    assert_verdict(t, "192.0.2.1", "", 1, THROTTLE_LOCKED, false, LOCKOUT_MS);

    /* refused by the address: the account tried is not charged */
    for (int i = 0; i < 20; i++)
        assert_verdict(t, "192.0.2.1", "alice", 2, THROTTLE_LOCKED, false, LOCKOUT_MS);
    throttle_stats(t, &st);
    assert_int_equal(st.accounts, 0);
    assert_allowed(t, "192.0.2.2", "alice", 2);
    throttle_free(t);
}

static void test_attacker_does_not_lock_others(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(100);
    uint64_t now = 0;
    int checked = 0;

    /* 20 wrong passwords (or refused attempts) for alice from one address */
    for (int i = 0; i < 20; i++, now += 100) {
        if (throttle_check(t, "203.0.113.66", "alice", now).verdict != THROTTLE_ALLOW)
            continue;
        throttle_failure(t, "203.0.113.66", "alice", now);
        checked++;
    }
    assert_int_equal(checked, 4); /* 3 free, then the delays refuse */

    assert_allowed(t, "192.0.2.10", "bob", now);
    assert_allowed(t, "192.0.2.11", "", now);
    /* alice herself is penalised from anywhere, the attacker for anybody */
    assert_int_not_equal(throttle_check(t, "192.0.2.10", "alice", now).verdict, THROTTLE_ALLOW);
    assert_int_not_equal(throttle_check(t, "203.0.113.66", "carol", now).verdict, THROTTLE_ALLOW);
    assert_allowed(t, "192.0.2.12", "carol", now);
    throttle_free(t);
}

static void test_eviction(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(3);
    struct throttle_stats st;

    fail_n(t, "192.0.2.1", "u1", 4, 0);
    fail_n(t, "192.0.2.2", "u2", 4, 1);
    fail_n(t, "192.0.2.3", "u3", 4, 2);
    fail_n(t, "192.0.2.1", "u1", 1, 3); /* now .2 / u2 have the oldest last failure */
    fail_n(t, "192.0.2.4", "u4", 4, 4);

    throttle_stats(t, &st);
    assert_int_equal(st.addresses, 3);
    assert_int_equal(st.accounts, 3);
    assert_allowed(t, "192.0.2.2", "u2", 5);
    assert_verdict(t, "192.0.2.1", "", 5, THROTTLE_DELAYED, false, 4000);
    assert_verdict(t, "192.0.2.3", "", 5, THROTTLE_DELAYED, false, 2000);
    assert_verdict(t, "192.0.2.4", "", 5, THROTTLE_DELAYED, false, 2000);
    assert_verdict(t, "192.0.2.99", "u4", 5, THROTTLE_DELAYED, true, 2000);
    throttle_free(t);
}

static void test_full_table(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(10000);
    struct throttle_stats st;
    char address[64];

    for (int i = 0; i < 10001; i++) {
        snprintf(address, sizeof(address), "2001:db8::%x", i);
        fail_n(t, address, "", 4, 0);
    }
    throttle_stats(t, &st);
    assert_int_equal(st.addresses, 10000);
    assert_allowed(t, "2001:db8::0", "", 1);
    for (int i = 1; i < 10001; i++) {
        snprintf(address, sizeof(address), "2001:db8::%x", i);
        assert_int_equal(throttle_check(t, address, "", 1).verdict, THROTTLE_DELAYED);
    }
    throttle_free(t);
}

static void test_stats_and_purge(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(100);
    struct throttle_stats st;

    fail_n(t, "192.0.2.1", "alice", 1, 0);
    fail_n(t, "192.0.2.2", "bob", 1, 0);
    fail_n(t, "192.0.2.3", "", 10, 0);
    throttle_stats(t, &st);
    assert_int_equal(st.addresses, 3);
    assert_int_equal(st.accounts, 2);
    assert_int_equal(st.lockouts, 1);
    assert_verdict(t, "192.0.2.3", "", 1, THROTTLE_LOCKED, false, LOCKOUT_MS);
    assert_verdict(t, "192.0.2.1", "bob", 1, THROTTLE_ALLOW, false, 0);
    throttle_stats(t, &st);
    assert_int_equal(st.locked, 1);
    assert_int_equal(st.delayed, 0);

    /* any later call drops what the window has forgotten */
    assert_allowed(t, "198.51.100.1", "", WINDOW_MS + 1);
    throttle_stats(t, &st);
    assert_int_equal(st.addresses, 0);
    assert_int_equal(st.accounts, 0);
    assert_int_equal(st.locked, 1); /* counters stay */
    throttle_free(t);
    throttle_free(NULL);
}

static void test_keys(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(100);
    struct throttle_stats st;
    char long1[200], long2[200], long_upper[200];

    /* account names are case-insensitive */
    fail_n(t, "192.0.2.1", "Alice", 2, 0);
    fail_n(t, "192.0.2.2", "ALICE", 2, 0);
    assert_verdict(t, "192.0.2.3", "alice", 1, THROTTLE_DELAYED, true, 2000);

    /* long names: same prefix, different ends stay apart; the same name matches */
    memset(long1, 'x', sizeof(long1) - 1);
    long1[sizeof(long1) - 1] = '\0';
    memcpy(long2, long1, sizeof(long2));
    long2[150] = 'y';
    memcpy(long_upper, long1, sizeof(long_upper));
    long_upper[0] = 'X';
    fail_n(t, "192.0.2.4", long1, 3, 0);
    fail_n(t, "192.0.2.5", long2, 3, 0);
    throttle_stats(t, &st);
    assert_int_equal(st.accounts, 3);
    assert_allowed(t, "192.0.2.6", long2, 1);
    throttle_failure(t, "192.0.2.6", long_upper, 1);
    assert_verdict(t, "192.0.2.7", long1, 2, THROTTLE_DELAYED, true, 2000);
    assert_allowed(t, "192.0.2.7", long2, 2);

    /* long addresses likewise, and they are not folded */
    long1[100] = '\0';
    long2[100] = '\0';
    long2[80] = 'y';
    fail_n(t, long1, "", 4, 0);
    assert_allowed(t, long2, "", 1);
    assert_verdict(t, long1, "", 1, THROTTLE_DELAYED, false, 2000);
    assert_allowed(t, "FE80::1", "", 1);
    fail_n(t, "fe80::1", "", 4, 0);
    assert_allowed(t, "FE80::1", "", 1);
    throttle_free(t);
}

static void test_options(void **state)
{
    (void)state;
    struct throttle_options o, bad;
    struct throttle *t = NULL;

    throttle_options_default(&o);
    assert_int_equal(o.free_failures, 3);
    assert_int_equal(o.delay_base_ms, 1000);
    assert_int_equal(o.delay_max_ms, 30000);
    assert_int_equal(o.lockout_failures, 10);
    assert_int_equal(o.lockout_s, 300);
    assert_int_equal(o.window_s, 900);
    assert_int_equal(o.max_entries, 10000);
    assert_int_equal(throttle_new(&o, &t), 0);
    throttle_free(t);

#define BAD(field, value)                                                                          \
    do {                                                                                           \
        bad = o;                                                                                   \
        bad.field = (value);                                                                       \
        t = NULL;                                                                                  \
        assert_int_equal(throttle_new(&bad, &t), -EINVAL);                                         \
        assert_null(t);                                                                            \
    } while (0)
    BAD(free_failures, -1);
    BAD(delay_base_ms, -1);
    BAD(delay_max_ms, -1);
    BAD(delay_max_ms, 999);
    BAD(lockout_failures, 3);
    BAD(lockout_failures, -5);
    BAD(lockout_s, 0);
    BAD(lockout_s, -1);
    BAD(window_s, 0);
    BAD(max_entries, 0);
    BAD(max_entries, (size_t)THROTTLE_ENTRIES_MAX + 1);
#undef BAD

    /* edges that are fine: no free failures, no delays, one entry */
    o.free_failures = 0;
    o.delay_base_ms = 0;
    o.delay_max_ms = 0;
    o.lockout_failures = 1;
    o.max_entries = 1;
    assert_int_equal(throttle_new(&o, &t), 0);
    throttle_failure(t, "192.0.2.1", "alice", 0);
    assert_verdict(t, "192.0.2.1", "", 0, THROTTLE_LOCKED, false, 300000);
    throttle_free(t);

    /* a huge lockout count never overflows the delay */
    throttle_options_default(&o);
    o.lockout_failures = 1000;
    assert_int_equal(throttle_new(&o, &t), 0);
    fail_n(t, "192.0.2.1", "", 100, 0);
    assert_verdict(t, "192.0.2.1", "", 0, THROTTLE_DELAYED, false, 30000);
    throttle_free(t);
}

static void test_startups_parse(void **state)
{
    (void)state;
    struct throttle_startups s = {.per_address = 7};
    static const char *const bad[] = {
        "",        "0",        "a",          "10:",         "10:30",      "10:30:",
        ":30:1",   "10:0:100", "10:101:100", "20:30:10",    "0:30:10",    "-1",
        "+5",      " 10",      "10 ",        "10:30:100:5", "4294967296", "99999999999",
        "10::100", "1e3",      "0x10",       "10:30:100\n",
    };

    assert_int_equal(throttle_startups_parse("10:30:100", &s), 0);
    assert_int_equal(s.start, 10);
    assert_int_equal(s.rate, 30);
    assert_int_equal(s.full, 100);
    assert_int_equal(s.per_address, 7);

    assert_int_equal(throttle_startups_parse("10", &s), 0);
    assert_int_equal(s.start, 10);
    assert_int_equal(s.rate, 100);
    assert_int_equal(s.full, 10);

    assert_int_equal(throttle_startups_parse("5:100:5", &s), 0);
    assert_int_equal(throttle_startups_parse("1:1:4294967295", &s), 0);
    assert_int_equal(s.full, 4294967295u);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = (struct throttle_startups){.start = 42, .rate = 42, .full = 42};
        assert_int_equal(throttle_startups_parse(bad[i], &s), -EINVAL);
        assert_int_equal(s.start, 42); /* untouched */
        assert_int_equal(s.full, 42);
    }
    assert_int_equal(throttle_startups_parse(NULL, &s), -EINVAL);
}

static void test_startups_allowed(void **state)
{
    (void)state;
    struct throttle_startups s = {.start = 10, .rate = 30, .full = 100};
    const char *reason = "stale";
    uint32_t at_start = (uint32_t)(0.30 * 4294967296.0);
    uint32_t halfway = (uint32_t)(0.65 * 4294967296.0);

    /* below start: always */
    assert_true(throttle_startup_allowed(&s, 0, 0, 0, &reason));
    assert_null(reason);
    assert_true(throttle_startup_allowed(&s, 9, 9, 0, NULL));
    /* at and above full: never */
    assert_false(throttle_startup_allowed(&s, 100, 0, UINT32_MAX, &reason));
    assert_non_null(reason);
    assert_false(throttle_startup_allowed(&s, 5000, 0, UINT32_MAX, NULL));
    /* at start: refused with 30% */
    assert_false(throttle_startup_allowed(&s, 10, 0, 0, NULL));
    assert_false(throttle_startup_allowed(&s, 10, 0, at_start - 2, &reason));
    assert_non_null(strstr(reason, "MaxStartups"));
    assert_true(throttle_startup_allowed(&s, 10, 0, at_start + 2, &reason));
    assert_null(reason);
    /* halfway from 10 to 100: 65% */
    assert_false(throttle_startup_allowed(&s, 55, 0, halfway - 2, NULL));
    assert_true(throttle_startup_allowed(&s, 55, 0, halfway + 2, NULL));
    /* just below full: nearly always */
    assert_false(throttle_startup_allowed(&s, 99, 0, UINT32_MAX - 40000000u, NULL));
    assert_true(throttle_startup_allowed(&s, 99, 0, UINT32_MAX, NULL));

    /* "N" means refuse everything from N on */
    assert_int_equal(throttle_startups_parse("10", &s), 0);
    assert_true(throttle_startup_allowed(&s, 9, 0, 0, NULL));
    assert_false(throttle_startup_allowed(&s, 10, 0, UINT32_MAX, NULL));
    /* rate 100 below full */
    s = (struct throttle_startups){.start = 10, .rate = 100, .full = 20};
    assert_false(throttle_startup_allowed(&s, 10, 0, UINT32_MAX, NULL));
    assert_true(throttle_startup_allowed(&s, 9, 0, UINT32_MAX, NULL));
    /* extremes do not overflow */
    s = (struct throttle_startups){.start = 1, .rate = 1, .full = UINT32_MAX};
    assert_true(throttle_startup_allowed(&s, UINT32_MAX - 1, 0, UINT32_MAX, NULL));
    assert_false(throttle_startup_allowed(&s, UINT32_MAX - 1, 0, UINT32_MAX - 2, NULL));

    /* per address */
    s = (struct throttle_startups){.start = 10, .rate = 30, .full = 100, .per_address = 3};
    assert_true(throttle_startup_allowed(&s, 2, 2, 0, &reason));
    assert_false(throttle_startup_allowed(&s, 3, 3, UINT32_MAX, &reason));
    assert_non_null(strstr(reason, "address"));
    s.per_address = 0;
    assert_true(throttle_startup_allowed(&s, 9, 9, 0, NULL));
}

/* ---- threads ---- */

#define THREADS 4
#define ROUNDS 20000

static atomic_uint_fast64_t clock_ms;

struct worker {
    pthread_t thread;
    struct throttle *t;
    unsigned seed;
    uint64_t refused, allowed;
};

static unsigned next_random(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char address[32], user[16];

    for (int i = 0; i < ROUNDS; i++) {
        uint64_t now = atomic_fetch_add(&clock_ms, 7);
        unsigned r = next_random(&w->seed);

        snprintf(address, sizeof(address), "10.0.0.%u", r % 50);
        if ((r >> 6) % 8)
            snprintf(user, sizeof(user), "user%u", (r >> 9) % 20);
        else
            user[0] = '\0';
        if (throttle_check(w->t, address, user, now).verdict != THROTTLE_ALLOW) {
            w->refused++;
            continue;
        }
        w->allowed++;
        if ((r >> 14) % 10 == 0)
            throttle_success(w->t, address, user);
        else
            throttle_failure(w->t, address, user, now);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct throttle *t = new_throttle(32);
    struct worker w[THREADS];
    struct throttle_stats st;
    uint64_t refused = 0, allowed = 0;

    atomic_store(&clock_ms, 0);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.t = t, .seed = 1234u + (unsigned)i};
        assert_int_equal(pthread_create(&w[i].thread, NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
        refused += w[i].refused;
        allowed += w[i].allowed;
    }
    throttle_stats(t, &st);
    assert_int_equal(refused + allowed, THREADS * ROUNDS);
    assert_int_equal(st.delayed + st.locked, refused);
    assert_true(refused > 0);
    assert_true(allowed > 0);
    assert_true(st.addresses <= 32);
    assert_true(st.accounts <= 32);
    throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_failures),
        cmocka_unit_test(test_delays_double_and_cap),
        cmocka_unit_test(test_attempt_during_penalty),
        cmocka_unit_test(test_lockout),
        cmocka_unit_test(test_window_forgets),
        cmocka_unit_test(test_success_resets),
        cmocka_unit_test(test_account_decides),
        cmocka_unit_test(test_empty_user),
        cmocka_unit_test(test_attacker_does_not_lock_others),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_full_table),
        cmocka_unit_test(test_stats_and_purge),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_startups_parse),
        cmocka_unit_test(test_startups_allowed),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
