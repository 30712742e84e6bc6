#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "session.h"

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void test_add_find_remove(void **state)
{
    (void)state;
    struct session_registry *r = NULL;
    struct session *a = NULL, *b = NULL;
    int sp[2];

    assert_int_equal(session_registry_new(&r), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);

    assert_int_equal(session_registry_add(r, 100, sp[0], "192.0.2.1", 5, &a), 0);
    assert_int_equal(session_registry_add(r, 101, sp[1], "2001:db8::1", 6, &b), 0);
    assert_int_equal(a->id, 1);
    assert_int_equal(b->id, 2);
    assert_int_equal(a->state, SESSION_WAIT_AUTH);
    assert_string_equal(b->address, "2001:db8::1");
    assert_string_equal(a->user, "");
    assert_int_equal(session_registry_size(r), 2);

    assert_ptr_equal(session_registry_find(r, 2), b);
    assert_ptr_equal(session_registry_find_pid(r, 100), a);
    assert_null(session_registry_find(r, 3));
    assert_null(session_registry_find_pid(r, 0));
    assert_ptr_equal(session_registry_at(r, 0), a);
    assert_null(session_registry_at(r, 2));

    session_registry_remove(r, a);
    assert_false(fd_is_open(sp[0]));
    assert_int_equal(session_registry_size(r), 1);
    assert_null(session_registry_find(r, 1));
    assert_ptr_equal(session_registry_at(r, 0), b);

    /* ids are never reused */
    int sp2[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp2), 0);
    close(sp2[1]);
    assert_int_equal(session_registry_add(r, 102, sp2[0], "127.0.0.1", 7, &a), 0);
    assert_int_equal(a->id, 3);

    session_registry_free(r);
    assert_false(fd_is_open(sp[1]));
    assert_false(fd_is_open(sp2[0]));
}

static void test_add_rejects_bad_input(void **state)
{
    (void)state;
    struct session_registry *r = NULL;
    char longaddr[SESSION_MAX_ADDRESS + 1];

    memset(longaddr, '1', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = 0;
    assert_int_equal(session_registry_new(&r), 0);
    assert_int_equal(session_registry_add(r, 0, 5, "127.0.0.1", 0, NULL), -EINVAL);
    assert_int_equal(session_registry_add(r, 1, -1, "127.0.0.1", 0, NULL), -EINVAL);
    assert_int_equal(session_registry_add(r, 1, 5, longaddr, 0, NULL), -EINVAL);
    assert_int_equal(session_registry_size(r), 0);
    session_registry_free(r);
    session_registry_free(NULL);
}

static void test_many_and_counts(void **state)
{
    (void)state;
    struct session_registry *r = NULL;
    struct session *s;

    assert_int_equal(session_registry_new(&r), 0);
    for (int i = 0; i < 100; i++) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(session_registry_add(r, 1000 + i, fd, "127.0.0.1", 0, &s), 0);
        if (i % 2 == 0)
            assert_int_equal(session_set_state(s, SESSION_CHECKING), 0);
        if (i % 4 == 0)
            assert_int_equal(session_set_state(s, SESSION_AUTHENTICATED), 0);
    }
    assert_int_equal(session_registry_size(r), 100);
    assert_int_equal(session_registry_count_unauthenticated(r), 75);

    /* removing while iterating from the end */
    for (size_t i = session_registry_size(r); i-- > 0;) {
        s = session_registry_at(r, i);
        if (s->pid % 3 == 0)
            session_registry_remove(r, s);
    }
    for (size_t i = 0; i < session_registry_size(r); i++)
        assert_int_not_equal(session_registry_at(r, i)->pid % 3, 0);
    assert_int_equal(session_registry_size(r), 67);
    session_registry_free(r);
}

static void test_state_machine(void **state)
{
    (void)state;
    struct session s = {.state = SESSION_WAIT_AUTH, .control_fd = -1};

    /* no skipping ahead */
    assert_int_equal(session_set_state(&s, SESSION_AUTHENTICATED), -EPERM);
    assert_int_equal(session_set_state(&s, SESSION_DESKTOP_READY), -EPERM);
    assert_int_equal(session_set_state(&s, SESSION_WAIT_AUTH), -EPERM);
    assert_true(session_state_is_unauthenticated(s.state));
    assert_int_equal(session_set_state(&s, SESSION_CHECKING), 0);
    /* a second AUTH_REQUEST would need CHECKING -> CHECKING */
    assert_int_equal(session_set_state(&s, SESSION_CHECKING), -EPERM);
    assert_int_equal(session_set_state(&s, SESSION_DESKTOP_READY), -EPERM);
    assert_true(session_state_is_unauthenticated(s.state));
    assert_int_equal(session_set_state(&s, SESSION_AUTHENTICATED), 0);
    assert_false(session_state_is_unauthenticated(s.state));
    assert_int_equal(session_set_state(&s, SESSION_CHECKING), -EPERM);
    assert_int_equal(session_set_state(&s, SESSION_DESKTOP_READY), 0);
    assert_int_equal(session_set_state(&s, SESSION_AUTHENTICATED), -EPERM);
    assert_int_equal(session_set_state(&s, SESSION_CLOSING), 0);
    /* terminal */
    assert_int_equal(session_set_state(&s, SESSION_CLOSING), -EPERM);
    assert_int_equal(session_set_state(&s, SESSION_WAIT_AUTH), -EPERM);
    assert_string_equal(session_state_to_string(SESSION_CLOSING), "closing");
    assert_string_equal(session_state_to_string((enum session_state)99), "invalid");

    /* any live state may close */
    for (int st = SESSION_WAIT_AUTH; st < SESSION_CLOSING; st++) {
        s.state = (enum session_state)st;
        assert_int_equal(session_set_state(&s, SESSION_CLOSING), 0);
    }
}

static void test_user(void **state)
{
    (void)state;
    struct session s = {.control_fd = -1};
    char name[SESSION_MAX_USER + 2];

    assert_int_equal(session_set_user(&s, "alice"), 0);
    assert_string_equal(s.user, "alice");
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    assert_int_equal(session_set_user(&s, name), -E2BIG);
    assert_string_equal(s.user, "alice");
    name[SESSION_MAX_USER] = 0;
    assert_int_equal(session_set_user(&s, name), 0);
    session_close_control(&s);
    assert_int_equal(s.control_fd, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_remove),
        cmocka_unit_test(test_add_rejects_bad_input),
        cmocka_unit_test(test_many_and_counts),
        cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
