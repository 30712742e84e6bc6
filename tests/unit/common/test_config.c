/* Unit tests for the declarative config parser (common/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "util.h"

struct sample {
    char *name;
    int port;
    bool verbose;
    char *mode;
};

static const char *const mode_choices[] = {"kvm", "qemu", NULL};

static const struct config_option sample_table[] = {
    {"name", CONFIG_STRING, offsetof(struct sample, name), "vdi", 0, 0, NULL, "A name"},
    {"port", CONFIG_INT, offsetof(struct sample, port), "5900", 1, 65535, NULL, "TCP port"},
    {"verbose", CONFIG_BOOL, offsetof(struct sample, verbose), "false", 0, 0, NULL, "Chatty"},
    {"mode", CONFIG_ENUM, offsetof(struct sample, mode), "kvm", 0, 0, mode_choices, "Virt"},
};
#define N ARRAY_SIZE(sample_table)

static int setup(void **state)
{
    struct sample *s = calloc(1, sizeof(*s));
    struct config_error err;
    assert_int_equal(config_set_defaults(sample_table, N, s, &err), 0);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    config_done(sample_table, N, *state);
    free(*state);
    return 0;
}

static void test_defaults(void **state)
{
    struct sample *s = *state;
    assert_string_equal(s->name, "vdi");
    assert_int_equal(s->port, 5900);
    assert_false(s->verbose);
    assert_string_equal(s->mode, "kvm");
}

static void test_parse_ok(void **state)
{
    struct sample *s = *state;
    struct config_error err;
    const char *text = "# comment\n\n  name =  my host  \nport=6000\r\nverbose = yes\nmode = qemu";
    assert_int_equal(config_parse_string(sample_table, N, s, text, "t.conf", &err), 0);
    assert_string_equal(s->name, "my host");
    assert_int_equal(s->port, 6000);
    assert_true(s->verbose);
    assert_string_equal(s->mode, "qemu");
}

/* Each bad input must be refused with the file and line in the message. */
static void test_errors_name_file_and_line(void **state)
{
    static const struct {
        const char *text;
        const char *expect;
    } cases[] = {
        {"name = a\nbogus = 1\n", "t.conf:2: unknown key 'bogus'"},
        {"port = 0\n", "t.conf:1: port must be between 1 and 65535 (got 0)"},
        {"port = 99999999999\n", "t.conf:1: port must be an integer"},
        {"port = 12abc\n", "t.conf:1: port must be an integer"},
        {"\n\nverbose = maybe\n", "t.conf:3: verbose must be true or false"},
        {"mode = xen\n", "t.conf:1: mode must be one of: kvm, qemu (got 'xen')"},
        {"just some words\n", "t.conf:1: expected 'key = value'"},
        {"port = 1\nport = 2\n", "t.conf:2: 'port' is set twice"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct config_error err = {{0}};
        assert_int_equal(config_parse_string(sample_table, N, *state, cases[i].text, "t.conf", &err),
                         -EINVAL);
        if (!startswith(err.message, cases[i].expect))
            fail_msg("case %zu: got '%s', expected '%s'", i, err.message, cases[i].expect);
    }
}

static void test_long_line_refused(void **state)
{
    size_t len = CONFIG_MAX_LINE + 10;
    char *text = malloc(len + 1);
    memset(text, 'a', len);
    text[len] = '\0';
    struct config_error err;
    assert_int_equal(config_parse_string(sample_table, N, *state, text, "t.conf", &err), -EINVAL);
    assert_non_null(strstr(err.message, "t.conf:1: line longer"));
    free(text);
}

static void test_file(void **state)
{
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "port = 7000\nname = x\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    struct config_error err;
    assert_int_equal(config_parse_file(sample_table, N, *state, path, &err), 0);
    assert_int_equal(((struct sample *)*state)->port, 7000);
    unlink(path);
    assert_int_equal(config_parse_file(sample_table, N, *state, path, &err), -ENOENT);
}

static void test_set_and_print(void **state)
{
    struct config_error err;
    assert_int_equal(config_set(sample_table, N, *state, "port", "1234", &err), 0);
    assert_int_equal(((struct sample *)*state)->port, 1234);
    assert_int_equal(config_set(sample_table, N, *state, "nope", "1", &err), -EINVAL);

    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    config_print(sample_table, N, f);
    fclose(f);
    assert_non_null(strstr(out, "# TCP port\n# (integer, 1 to 65535)\n#port = 5900\n"));
    assert_non_null(strstr(out, "# (one of: kvm qemu)\n#mode = kvm\n"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_file_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_and_print, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
