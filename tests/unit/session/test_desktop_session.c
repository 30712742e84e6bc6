/* Desktop sessions: the table, attach/detach, and what is due when (session.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "session.h"

#define S 1000ull /* ms per second */

static struct session *add(struct session_table *t, uint64_t id, const char *user,
                           const char *desktop, int grace, int idle, int max, uint64_t now)
{
    struct session_policy p = {.grace_s = grace, .idle_timeout_s = idle, .max_session_s = max};
    struct session *s = session_table_add(t, id, user, "eng", desktop, &p, 1700000000, now);

    assert_non_null(s);
    return s;
}

static struct connection conn(uint64_t id, uint64_t last_input)
{
    return (struct connection){
        .id = id, .last_input_ms = last_input, .bytes_to_client = 100, .bytes_from_client = 10};
}

static enum session_due due(struct session *s, uint64_t now, int *seconds)
{
    int ignored;
    return session_due(s, now, seconds ? seconds : &ignored);
}

static void test_table(void **state)
{
    (void)state;
    struct session_table *t = NULL;
    char long_name[200];

    assert_int_equal(session_table_new(&t), 0);
    struct session *a = add(t, 10, "alice", "vdi-eng-0001", 300, 0, 0, 0);
    struct session *b = add(t, 11, "bob", "vdi-eng-0002", 300, 0, 0, 0);
    assert_ptr_equal(session_table_find(t, 11), b);
    assert_ptr_equal(session_table_find_user(t, "alice", "vdi-eng-0001"), a);
    assert_null(session_table_find_user(t, "alice", "vdi-eng-0002"));
    assert_ptr_equal(session_table_find_pool(t, "bob", "eng"), b);
    /* an ending session is not found by user: a new login makes a new one */
    a->state = SESSION_ENDING;
    assert_null(session_table_find_user(t, "alice", "vdi-eng-0001"));
    assert_null(session_table_find_pool(t, "alice", "eng"));
    assert_ptr_equal(session_table_find(t, 10), a);

    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = 0;
    struct session_policy p = {0};
    assert_null(session_table_add(t, 12, long_name, "eng", "d", &p, 0, 0));

    for (uint64_t i = 0; i < 40; i++)
        add(t, 100 + i, "carol", "d", 0, 0, 0, 0);
    assert_int_equal(session_table_size(t), 42);
    session_table_remove(t, a);
    assert_null(session_table_find(t, 10));
    assert_ptr_equal(session_table_at(t, 0), b);
    assert_null(session_table_at(t, 41));
    session_table_free(t);
    session_table_free(NULL);
}

/* Disconnected: the logoff is due once the grace period is over; a reconnect before
 * that stops the clock, the next disconnect starts it again. */
static void test_grace(void **state)
{
    (void)state;
    struct session_table *t = NULL;
    assert_int_equal(session_table_new(&t), 0);
    struct session *s = add(t, 1, "alice", "d1", 300, 0, 0, 1000 * S);
    struct connection c = conn(5, 1000 * S);

    session_attach(s, &c);
    assert_int_equal(s->state, SESSION_ACTIVE);
    assert_int_equal(s->user_connection, 5);
    assert_int_equal(session_next_deadline(s), 0);
    assert_int_equal(due(s, 5000 * S, NULL), SESSION_DUE_NOTHING);

    session_detach(s, &c, 2000 * S);
    assert_int_equal(s->state, SESSION_DISCONNECTED);
    assert_int_equal(s->bytes_to_client, 100);
    assert_int_equal(session_next_deadline(s), 2300 * S);
    assert_int_equal(due(s, 2299 * S, NULL), SESSION_DUE_NOTHING);

    struct connection again = conn(6, 2100 * S);
    session_attach(s, &again);
    assert_int_equal(due(s, 2400 * S, NULL), SESSION_DUE_NOTHING);
    /* the old connection leaving late changes nothing */
    session_detach(s, &c, 2450 * S);
    assert_int_equal(s->state, SESSION_ACTIVE);

    session_detach(s, &again, 2500 * S);
    assert_int_equal(due(s, 2799 * S, NULL), SESSION_DUE_NOTHING);
    assert_int_equal(due(s, 2800 * S, NULL), SESSION_DUE_LOGOFF);
    assert_int_equal(s->bytes_to_client, 200);

    /* grace 0: the logoff is due at once */
    struct session *z = add(t, 2, "bob", "d2", 0, 0, 0, 0);
    assert_int_equal(due(z, 0, NULL), SESSION_DUE_LOGOFF);
    z->state = SESSION_ENDING;
    assert_int_equal(due(z, 0, NULL), SESSION_DUE_NOTHING);
    assert_int_equal(session_next_deadline(z), 0);
    session_table_free(t);
}

/* Idle: a warning a minute before (a quarter of short timeouts), cleared when input
 * comes back, then the timeout. */
static void test_idle(void **state)
{
    (void)state;
    struct session_table *t = NULL;
    int secs;
    assert_int_equal(session_table_new(&t), 0);
    struct session *s = add(t, 1, "alice", "d1", 300, 600, 0, 0);
    struct connection c = conn(5, 0);

    session_attach(s, &c);
    assert_int_equal(session_next_deadline(s), 540 * S);
    assert_int_equal(due(s, 539 * S, NULL), SESSION_DUE_NOTHING);
    assert_int_equal(due(s, 540 * S, &secs), SESSION_DUE_IDLE_WARNING);
    assert_int_equal(secs, 60);
    assert_int_equal(due(s, 541 * S, NULL), SESSION_DUE_NOTHING); /* once */
    assert_int_equal(session_next_deadline(s), 600 * S);

    s->last_input_ms = 550 * S; /* the user moved the mouse */
    assert_int_equal(due(s, 551 * S, NULL), SESSION_DUE_IDLE_CLEAR);
    assert_int_equal(due(s, 552 * S, NULL), SESSION_DUE_NOTHING);
    assert_int_equal(due(s, 1090 * S, &secs), SESSION_DUE_IDLE_WARNING);
    assert_int_equal(due(s, 1150 * S, NULL), SESSION_DUE_IDLE_TIMEOUT);

    /* short timeout: warned a quarter before */
    struct session *q = add(t, 2, "bob", "d2", 300, 20, 0, 0);
    struct connection d = conn(6, 0);
    session_attach(q, &d);
    assert_int_equal(due(q, 14 * S, NULL), SESSION_DUE_NOTHING);
    assert_int_equal(due(q, 15 * S, &secs), SESSION_DUE_IDLE_WARNING);
    assert_int_equal(secs, 5);
    assert_int_equal(due(q, 20 * S, NULL), SESSION_DUE_IDLE_TIMEOUT);

    /* disconnected sessions are not idle-timed (the grace clock runs) */
    session_detach(q, &d, 21 * S);
    assert_int_equal(due(q, 100 * S, NULL), SESSION_DUE_NOTHING);
    session_table_free(t);
}

/* Maximum session time: warning, then the end; disconnected past the limit, no grace. */
static void test_max(void **state)
{
    (void)state;
    struct session_table *t = NULL;
    int secs;
    assert_int_equal(session_table_new(&t), 0);
    struct session *s = add(t, 1, "alice", "d1", 300, 0, 3600, 0);
    struct connection c = conn(5, 0);

    session_attach(s, &c);
    assert_int_equal(session_next_deadline(s), 3540 * S);
    assert_int_equal(due(s, 3540 * S, &secs), SESSION_DUE_MAX_WARNING);
    assert_int_equal(secs, 60);
    assert_int_equal(due(s, 3599 * S, NULL), SESSION_DUE_NOTHING);
    assert_int_equal(due(s, 3600 * S, NULL), SESSION_DUE_MAX_TIMEOUT);

    /* the user dropped off just before the limit: the logoff comes at the limit */
    session_detach(s, &c, 3590 * S);
    assert_int_equal(session_next_deadline(s), 3600 * S);
    assert_int_equal(due(s, 3600 * S, NULL), SESSION_DUE_LOGOFF);
    session_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_grace),
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
