/* What vdi-client remembers between runs (thinclient/client-state.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "client-state.h"
#include "log.h"
#include "util.h"

static char scratch[64];

static int group_setup(void **state)
{
    (void)state;
    snprintf(scratch, sizeof(scratch), "/tmp/vdi-test-state-XXXXXX");
    log_set_level(LOG_LEVEL_ERROR); /* an unreadable file's warning is expected */
    return mkdtemp(scratch) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_default_path(void **state)
{
    (void)state;
    char *path = NULL;
    setenv("XDG_STATE_HOME", "/x/state", 1);
    setenv("HOME", "/home/u", 1);
    assert_int_equal(client_state_default_path(&path), 0);
    assert_string_equal(path, "/x/state/vdi/client-state");
    free(path);
    unsetenv("XDG_STATE_HOME");
    assert_int_equal(client_state_default_path(&path), 0);
    assert_string_equal(path, "/home/u/.local/state/vdi/client-state");
    free(path);
    setenv("XDG_STATE_HOME", "relative", 1);
    assert_int_equal(client_state_default_path(&path), 0);
    assert_string_equal(path, "/home/u/.local/state/vdi/client-state");
    free(path);
    unsetenv("XDG_STATE_HOME");
    unsetenv("HOME");
    assert_int_equal(client_state_default_path(&path), -ENOENT);
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/a/b/client-state", scratch);
    struct client_state *s = NULL;
    char broker[CLIENT_STATE_BROKER_MAX + 1], user[CLIENT_STATE_USER_MAX + 1];
    char pool[CLIENT_STATE_POOL_MAX + 1];

    /* a missing file is an empty state */
    assert_int_equal(client_state_load(path, &s), 0);
    client_state_last_login(s, broker, user);
    assert_string_equal(broker, "");
    assert_string_equal(user, "");
    assert_false(client_state_pool(s, "b", "u", pool));

    assert_int_equal(client_state_set_last_login(s, "vdi.example.com:5901", "alice"), 0);
    assert_int_equal(client_state_set_last_login(s, "[::1]:5900", "bob"), 0);
    assert_int_equal(client_state_set_pool(s, "vdi.example.com:5901", "alice", "office"), 0);
    assert_int_equal(client_state_set_pool(s, "vdi.example.com:5901", "bob", "dev"), 0);
    assert_int_equal(client_state_set_pool(s, "other", "alice", "lab-2"), 0);
    assert_int_equal(client_state_set_pool(s, "vdi.example.com:5901", "alice", "office-2"), 0);
    assert_int_equal(client_state_save(s), 0);
    client_state_free(s);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(path, sizeof(path), "%s/a/b", scratch);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    snprintf(path, sizeof(path), "%s/a/b/client-state", scratch);

    assert_int_equal(client_state_load(path, &s), 0);
    client_state_last_login(s, broker, user);
    assert_string_equal(broker, "[::1]:5900");
    assert_string_equal(user, "bob");
    assert_true(client_state_pool(s, "vdi.example.com:5901", "alice", pool));
    assert_string_equal(pool, "office-2");
    assert_true(client_state_pool(s, "vdi.example.com:5901", "bob", pool));
    assert_string_equal(pool, "dev");
    assert_true(client_state_pool(s, "other", "alice", pool));
    assert_string_equal(pool, "lab-2");
    /* the broker as typed: another spelling is another broker */
    assert_false(client_state_pool(s, "vdi.example.com", "alice", pool));
    assert_false(client_state_pool(s, "other", "bob", pool));

    /* forget a pool */
    assert_int_equal(client_state_set_pool(s, "other", "alice", ""), 0);
    assert_false(client_state_pool(s, "other", "alice", pool));
    assert_int_equal(client_state_set_pool(s, "never", "alice", ""), 0);
    assert_int_equal(client_state_save(s), 0);
    client_state_free(s);
    assert_int_equal(client_state_load(path, &s), 0);
    assert_false(client_state_pool(s, "other", "alice", pool));
    assert_true(client_state_pool(s, "vdi.example.com:5901", "bob", pool));
    client_state_free(s);
    client_state_free(NULL);
}

static void test_malformed_lines_ignored(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/malformed", scratch);
    char text[4096];
    size_t len = (size_t)snprintf(text, sizeof(text),
                                  "# comment\n"
                                  "last\n"
                                  "last b\n"
                                  "last b u extra\n"
                                  "last b bad/user\n"
                                  "pool b u\n"
                                  "pool b u Bad_Pool\n"
                                  "pool b u -x\n"
                                  "pool b u p extra\n"
                                  "pool b -u p\n"
                                  "pool b\x1b[0m u p\n"
                                  "unknown b u p\n"
                                  "\n"
                                  "   last   good:1\tcarol  \r\n"
                                  "pool good:1 carol desk\n"
                                  "pool b\xc3\xa9 u p\n"
                                  "pool %0300d u p\n",
                                  0);
    /* a NUL inside a line, then an overlong line, then a good one */
    memcpy(text + len, "pool z u\0p\n", 11);
    len += 11;
    memset(text + len, 'x', 600);
    len += 600;
    len += (size_t)snprintf(text + len, sizeof(text) - len, " pool z u p2\npool z u p3");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);

    struct client_state *s = NULL;
    char broker[CLIENT_STATE_BROKER_MAX + 1], user[CLIENT_STATE_USER_MAX + 1];
    char pool[CLIENT_STATE_POOL_MAX + 1];
    assert_int_equal(client_state_load(path, &s), 0);
    client_state_last_login(s, broker, user);
    assert_string_equal(broker, "good:1");
    assert_string_equal(user, "carol");
    assert_true(client_state_pool(s, "good:1", "carol", pool));
    assert_string_equal(pool, "desk");
    assert_false(client_state_pool(s, "b", "u", pool));
    assert_true(client_state_pool(s, "z", "u", pool));
    assert_string_equal(pool, "p3");
    client_state_free(s);

    /* a file that cannot be read: empty state, no error */
    assert_int_equal(client_state_load(scratch, &s), 0);
    client_state_last_login(s, broker, user);
    assert_string_equal(broker, "");
    client_state_free(s);
    /* larger than 64 KiB: the same */
    f = fopen(path, "w");
    for (int i = 0; i < 3000; i++)
        fputs("last big:1 someone-else\n", f);
    fclose(f);
    assert_int_equal(client_state_load(path, &s), 0);
    client_state_last_login(s, broker, user);
    assert_string_equal(broker, "");
    client_state_free(s);
}

static void test_values_refused(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/refused", scratch);
    struct client_state *s = NULL;
    assert_int_equal(client_state_load(path, &s), 0);

    char long_broker[CLIENT_STATE_BROKER_MAX + 2];
    memset(long_broker, 'b', sizeof(long_broker) - 1);
    long_broker[sizeof(long_broker) - 1] = '\0';
    char max_broker[CLIENT_STATE_BROKER_MAX + 1];
    memset(max_broker, 'b', sizeof(max_broker) - 1);
    max_broker[sizeof(max_broker) - 1] = '\0';
    static const char long_user[] = "u23456789012345678901234567890123"; /* 33 */
    static const char long_pool[] = "p23456789012345678901234567890123"; /* 33 */
    static const char max_pool[] = "p2345678901234567890123456789012";   /* 32 */

    assert_int_equal(client_state_set_last_login(s, long_broker, "u"), -EINVAL);
    assert_int_equal(client_state_set_last_login(s, "b", long_user), -EINVAL);
    assert_int_equal(client_state_set_last_login(s, "", "u"), -EINVAL);
    assert_int_equal(client_state_set_last_login(s, "b c", "u"), -EINVAL);
    assert_int_equal(client_state_set_last_login(s, "b\n", "u"), -EINVAL);
    assert_int_equal(client_state_set_last_login(s, "b", "a b"), -EINVAL);
    assert_int_equal(client_state_set_pool(s, long_broker, "u", "p"), -EINVAL);
    assert_int_equal(client_state_set_pool(s, "b", long_user, "p"), -EINVAL);
    assert_int_equal(client_state_set_pool(s, "b", "u", long_pool), -EINVAL);
    assert_int_equal(client_state_set_pool(s, "b", "u", "P"), -EINVAL);
    assert_int_equal(client_state_set_pool(s, "b", "u", "p q"), -EINVAL);

    /* the longest values fit and come back */
    assert_int_equal(client_state_set_last_login(s, max_broker, "u"), 0);
    assert_int_equal(client_state_set_pool(s, max_broker, "u", max_pool), 0);
    assert_int_equal(client_state_save(s), 0);
    client_state_free(s);
    assert_int_equal(client_state_load(path, &s), 0);
    char broker[CLIENT_STATE_BROKER_MAX + 1], user[CLIENT_STATE_USER_MAX + 1];
    char pool[CLIENT_STATE_POOL_MAX + 1];
    client_state_last_login(s, broker, user);
    assert_string_equal(broker, max_broker);
    assert_true(client_state_pool(s, max_broker, "u", pool));
    assert_string_equal(pool, max_pool);
    client_state_free(s);
}

/* At most CLIENT_STATE_POOLS_MAX choices: the oldest go, the file stays under its cap. */
static void test_pool_cap(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/cap", scratch);
    struct client_state *s = NULL;
    assert_int_equal(client_state_load(path, &s), 0);
    char max_broker[CLIENT_STATE_BROKER_MAX + 1];
    memset(max_broker, 'b', sizeof(max_broker) - 1);
    max_broker[sizeof(max_broker) - 1] = '\0';
    assert_int_equal(client_state_set_last_login(s, max_broker, "u2345678901234567890123456789012"),
                     0);
    for (int i = 0; i < CLIENT_STATE_POOLS_MAX + 10; i++) {
        char user[33];
        snprintf(user, sizeof(user), "user%028d", i);
        assert_int_equal(
            client_state_set_pool(s, max_broker, user, "p2345678901234567890123456789012"), 0);
    }
    /* choosing again refreshes a choice */
    assert_int_equal(
        client_state_set_pool(s, max_broker, "user0000000000000000000000000010", "again"), 0);
    assert_int_equal(client_state_set_pool(s, max_broker, "user0000000000000000000000000200", "x"),
                     0);
    assert_int_equal(client_state_save(s), 0);
    client_state_free(s);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size <= CLIENT_STATE_FILE_MAX);
    assert_int_equal(client_state_load(path, &s), 0);
    char pool[CLIENT_STATE_POOL_MAX + 1];
    assert_false(client_state_pool(s, max_broker, "user0000000000000000000000000000", pool));
    assert_false(client_state_pool(s, max_broker, "user0000000000000000000000000011", pool));
    assert_true(client_state_pool(s, max_broker, "user0000000000000000000000000010", pool));
    assert_string_equal(pool, "again");
    assert_true(client_state_pool(s, max_broker, "user0000000000000000000000000137", pool));
    assert_true(client_state_pool(s, max_broker, "user0000000000000000000000000200", pool));
    client_state_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_malformed_lines_ignored),
        cmocka_unit_test(test_values_refused),
        cmocka_unit_test(test_pool_cap),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
