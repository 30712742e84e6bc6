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

#include "connection.h"

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void test_add_find_remove(void **state)
{
    (void)state;
    struct connection_registry *r = NULL;
    struct connection *a = NULL, *b = NULL;
    int sp[2];

    assert_int_equal(connection_registry_new(&r), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);

    assert_int_equal(connection_registry_add(r, 100, -1, sp[0], "192.0.2.1", 5, &a), 0);
    assert_int_equal(connection_registry_add(r, 101, -1, sp[1], "2001:db8::1", 6, &b), 0);
    assert_int_equal(a->id, 1);
    assert_int_equal(b->id, 2);
    assert_int_equal(a->state, CONNECTION_WAIT_AUTH);
    assert_string_equal(b->address, "2001:db8::1");
    assert_string_equal(a->user, "");
    assert_int_equal(connection_registry_size(r), 2);

    assert_ptr_equal(connection_registry_find(r, 2), b);
    assert_ptr_equal(connection_registry_find_pid(r, 100), a);
    assert_null(connection_registry_find(r, 3));
    assert_null(connection_registry_find_pid(r, 0));
    assert_ptr_equal(connection_registry_at(r, 0), a);
    assert_null(connection_registry_at(r, 2));

    connection_registry_remove(r, a);
    assert_false(fd_is_open(sp[0]));
    assert_int_equal(connection_registry_size(r), 1);
    assert_null(connection_registry_find(r, 1));
    assert_ptr_equal(connection_registry_at(r, 0), b);

    /* ids are never reused */
    int sp2[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp2), 0);
    close(sp2[1]);
    assert_int_equal(connection_registry_add(r, 102, -1, sp2[0], "127.0.0.1", 7, &a), 0);
    assert_int_equal(a->id, 3);

    connection_registry_free(r);
    assert_false(fd_is_open(sp[1]));
    assert_false(fd_is_open(sp2[0]));
}

static void test_add_rejects_bad_input(void **state)
{
    (void)state;
    struct connection_registry *r = NULL;
    char longaddr[CONNECTION_MAX_ADDRESS + 1];

    memset(longaddr, '1', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = 0;
    assert_int_equal(connection_registry_new(&r), 0);
    assert_int_equal(connection_registry_add(r, 0, -1, 5, "127.0.0.1", 0, NULL), -EINVAL);
    assert_int_equal(connection_registry_add(r, 1, -1, -1, "127.0.0.1", 0, NULL), -EINVAL);
    assert_int_equal(connection_registry_add(r, 1, -1, 5, longaddr, 0, NULL), -EINVAL);
    assert_int_equal(connection_registry_size(r), 0);
    connection_registry_free(r);
    connection_registry_free(NULL);
}

static void test_many_and_counts(void **state)
{
    (void)state;
    struct connection_registry *r = NULL;
    struct connection *s;

    assert_int_equal(connection_registry_new(&r), 0);
    for (int i = 0; i < 100; i++) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(connection_registry_add(r, 1000 + i, -1, fd, "127.0.0.1", 0, &s), 0);
        if (i % 2 == 0)
            assert_int_equal(connection_set_state(s, CONNECTION_CHECKING), 0);
        if (i % 4 == 0)
            assert_int_equal(connection_set_state(s, CONNECTION_AUTHENTICATED), 0);
    }
    assert_int_equal(connection_registry_size(r), 100);
    assert_int_equal(connection_registry_count_unauthenticated(r, NULL, NULL), 75);
    size_t from = 99;
    assert_int_equal(connection_registry_count_unauthenticated(r, "127.0.0.1", &from), 75);
    assert_int_equal(from, 75);
    assert_int_equal(connection_registry_count_unauthenticated(r, "127.0.0.2", &from), 75);
    assert_int_equal(from, 0);

    /* a re-attached connection takes its old id back, never one in use */
    s = connection_registry_at(r, 0);
    assert_int_equal(connection_registry_rekey(r, s, connection_registry_at(r, 1)->id), -EEXIST);
    assert_int_equal(connection_registry_rekey(r, s, 5000), 0);
    assert_ptr_equal(connection_registry_find(r, 5000), s);
    assert_true(connection_registry_next_id(r) > 5000);

    /* removing while iterating from the end */
    for (size_t i = connection_registry_size(r); i-- > 0;) {
        s = connection_registry_at(r, i);
        if (s->pid % 3 == 0)
            connection_registry_remove(r, s);
    }
    for (size_t i = 0; i < connection_registry_size(r); i++)
        assert_int_not_equal(connection_registry_at(r, i)->pid % 3, 0);
    assert_int_equal(connection_registry_size(r), 67);
    connection_registry_free(r);
}

static void test_reattach_states(void **state)
{
    (void)state;
    struct connection_registry *r = NULL;
    struct connection *c;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC),
        pidfd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    assert_int_equal(connection_registry_new(&r), 0);
    assert_int_equal(connection_registry_add(r, 77, pidfd, fd, "127.0.0.1", 0, &c), 0);
    assert_int_equal(c->state, CONNECTION_WAIT_REATTACH);
    assert_false(connection_state_is_unauthenticated(c->state));
    assert_int_equal(connection_set_state(c, CONNECTION_CHECKING), -EPERM);
    assert_int_equal(connection_set_state(c, CONNECTION_DESKTOP_READY), 0);
    connection_registry_free(r); /* closes both fds */
}

static void test_state_machine(void **state)
{
    (void)state;
    struct connection s = {.state = CONNECTION_WAIT_AUTH, .control_fd = -1};

    /* no skipping ahead */
    assert_int_equal(connection_set_state(&s, CONNECTION_AUTHENTICATED), -EPERM);
    assert_int_equal(connection_set_state(&s, CONNECTION_DESKTOP_READY), -EPERM);
    assert_int_equal(connection_set_state(&s, CONNECTION_WAIT_AUTH), -EPERM);
    assert_true(connection_state_is_unauthenticated(s.state));
    assert_int_equal(connection_set_state(&s, CONNECTION_CHECKING), 0);
    /* a second AUTH_REQUEST would need CHECKING -> CHECKING */
    assert_int_equal(connection_set_state(&s, CONNECTION_CHECKING), -EPERM);
    assert_int_equal(connection_set_state(&s, CONNECTION_DESKTOP_READY), -EPERM);
    assert_true(connection_state_is_unauthenticated(s.state));
    assert_int_equal(connection_set_state(&s, CONNECTION_AUTHENTICATED), 0);
    assert_false(connection_state_is_unauthenticated(s.state));
    assert_int_equal(connection_set_state(&s, CONNECTION_CHECKING), -EPERM);
    assert_int_equal(connection_set_state(&s, CONNECTION_DESKTOP_READY), 0);
    assert_int_equal(connection_set_state(&s, CONNECTION_AUTHENTICATED), -EPERM);
    assert_int_equal(connection_set_state(&s, CONNECTION_CLOSING), 0);
    /* terminal */
    assert_int_equal(connection_set_state(&s, CONNECTION_CLOSING), -EPERM);
    assert_int_equal(connection_set_state(&s, CONNECTION_WAIT_AUTH), -EPERM);
    assert_string_equal(connection_state_to_string(CONNECTION_CLOSING), "closing");
    assert_string_equal(connection_state_to_string((enum connection_state)99), "invalid");

    /* any live state may close */
    for (int st = CONNECTION_WAIT_AUTH; st < CONNECTION_CLOSING; st++) {
        s.state = (enum connection_state)st;
        assert_int_equal(connection_set_state(&s, CONNECTION_CLOSING), 0);
    }
}

static void test_user(void **state)
{
    (void)state;
    struct connection s = {.control_fd = -1};
    char name[CONNECTION_MAX_USER + 2];

    assert_int_equal(connection_set_user(&s, "alice"), 0);
    assert_string_equal(s.user, "alice");
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    assert_int_equal(connection_set_user(&s, name), -E2BIG);
    assert_string_equal(s.user, "alice");
    name[CONNECTION_MAX_USER] = 0;
    assert_int_equal(connection_set_user(&s, name), 0);
    connection_close_control(&s);
    assert_int_equal(s.control_fd, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_remove), cmocka_unit_test(test_add_rejects_bad_input),
        cmocka_unit_test(test_many_and_counts), cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_reattach_states), cmocka_unit_test(test_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
