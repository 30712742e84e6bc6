/* auth_pam_check through pam_wrapper + pam_matrix (environment set by CMakeLists.txt). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

static int check(const char *service, const char *user, const char *password, char *detail,
                 size_t size)
{
    struct auth_request req = {
        .service = service,
        .user = user,
        .password = password,
        .rhost = "192.0.2.7",
    };
    return auth_pam_check(&req, detail, size);
}

static int setup(void **state)
{
    (void)state;
    /* Without pam_wrapper these tests would talk to the real /etc/pam.d. */
    if (!getenv("PAM_WRAPPER_SERVICE_DIR"))
        return -1;
    return 0;
}

static void test_right_password(void **state)
{
    (void)state;
    char detail[AUTH_DETAIL_MAX];

    assert_int_equal(check("vdi", "alice", "secret", detail, sizeof(detail)), 0);
    assert_string_equal(detail, "");
    assert_int_equal(check("vdi", "bob", "hunter2", NULL, 0), 0);
}

static void test_wrong_password(void **state)
{
    (void)state;
    char detail[AUTH_DETAIL_MAX];

    assert_int_equal(check("vdi", "alice", "Secret", detail, sizeof(detail)), -EACCES);
    assert_non_null(strstr(detail, "pam_authenticate"));
    assert_null(strstr(detail, "Secret"));
    /* another user's password */
    assert_int_equal(check("vdi", "alice", "hunter2", NULL, 0), -EACCES);
    /* empty password */
    assert_int_equal(check("vdi", "alice", "", NULL, 0), -EACCES);
}

static void test_unknown_user(void **state)
{
    (void)state;
    /* same answer as a wrong password */
    assert_int_equal(check("vdi", "mallory", "secret", NULL, 0), -EACCES);
}

static void test_bad_requests(void **state)
{
    (void)state;
    struct auth_request req = {.service = "vdi", .user = "", .password = "x"};
    char detail[AUTH_DETAIL_MAX] = "junk";

    assert_int_equal(auth_pam_check(&req, detail, sizeof(detail)), -EINVAL);
    assert_string_equal(detail, "");
    req.user = "alice";
    req.password = NULL;
    assert_int_equal(auth_pam_check(&req, NULL, 0), -EINVAL);
    assert_int_equal(auth_pam_check(NULL, NULL, 0), -EINVAL);
}

static void test_broken_service(void **state)
{
    (void)state;
    char detail[AUTH_DETAIL_MAX];
    int r = check("vdi-broken", "alice", "secret", detail, sizeof(detail));

    /* never success; a module that cannot load is a PAM error, not a wrong password */
    assert_true(r == -EIO || r == -EACCES);
    assert_int_not_equal(r, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_right_password), cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_unknown_user),   cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_broken_service),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
