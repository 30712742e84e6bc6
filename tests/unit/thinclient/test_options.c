/* Command line (thinclient/options.c), HOST[:PORT] parsing (tcp.c), password files
 * (prompt.c) and the PPM writer (ppm.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "options.h"
#include "ppm.h"
#include "prompt.h"
#include "tcp.h"
#include "util.h"

#define ARGV(...) ((char *[]){"vdi-client", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"vdi-client", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, ...) client_options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o))

static void test_parse_full(void **state)
{
    (void)state;
    struct client_options o;
    assert_int_equal(PARSE(&o, "--user", "alice", "--ca-file", "/ca.pem", "--fullscreen",
                           "--quality", "3", "--log-level", "debug", "vdi.example.com:5901"),
                     0);
    assert_string_equal(o.host, "vdi.example.com");
    assert_int_equal(o.port, 5901);
    assert_string_equal(o.user, "alice");
    assert_string_equal(o.ca_file, "/ca.pem");
    assert_true(o.fullscreen);
    assert_int_equal(o.quality, 3);
    assert_int_equal(o.compress, 2);
    assert_int_equal(o.log_level, LOG_LEVEL_DEBUG);
    client_options_done(&o);

    assert_int_equal(PARSE(&o, "-p", "6000", "--fingerprint", "AB:CD", "[::1]"), 0);
    assert_string_equal(o.host, "::1");
    assert_int_equal(o.port, 6000);
    assert_string_equal(o.fingerprint, "AB:CD");
    client_options_done(&o);

    assert_int_equal(PARSE(&o, "--ca-file", "x", "--screenshot", "/tmp/s.ppm", "--headless",
                           "--screenshot-delay", "500", "host"),
                     0);
    assert_int_equal(o.port, TCP_DEFAULT_PORT);
    assert_true(o.headless);
    assert_int_equal(o.screenshot_delay_ms, 500);
    client_options_done(&o);
}

static void test_parse_errors(void **state)
{
    (void)state;
    struct client_options o;
    /* no trust anchor: refuse */
    assert_int_equal(PARSE(&o, "--user", "alice", "host"), -EINVAL);
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file", "x"), -EINVAL); /* no host */
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file", "x", "a", "b"), -EINVAL);
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file", "x", "--port", "70000", "h"), -EINVAL);
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file", "x", "--port", "5901", "h:5902"), -EINVAL);
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file", "x", "--user", "bad user", "h"), -EINVAL);
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file", "x", "--quality", "10", "h"), -EINVAL);
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file", "x", "--log-level", "loud", "h"), -EINVAL);
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file", "x", "--headless", "h"), -EINVAL);
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file", "x", "--bogus", "h"), -EINVAL);
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file"), -EINVAL); /* missing argument */
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--ca-file", "x", "h:"), -EINVAL);
    client_options_done(&o);
}

static void test_help_lists_every_option(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    client_options_help(f);
    fclose(f);
    static const char *const names[] = {"--user",
                                        "--password-file",
                                        "--ca-file",
                                        "--fingerprint",
                                        "--port",
                                        "--fullscreen",
                                        "--quality",
                                        "--compress",
                                        "--screenshot",
                                        "--screenshot-delay",
                                        "--headless",
                                        "--log-level",
                                        "--help",
                                        "--version",
                                        "VDI_PASSWORD",
                                        "Exit codes",
                                        "  4  server certificate not trusted",
                                        "  7  protocol error"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (!strstr(buf, names[i])) {
            fprintf(stderr, "--help lacks %s\n", names[i]);
            fail();
        }
    free(buf);
}

static void test_parse_target(void **state)
{
    (void)state;
    char *host = NULL;
    int port = 5900;
    assert_int_equal(tcp_parse_target("example.org", &host, &port), 0);
    assert_string_equal(host, "example.org");
    assert_int_equal(port, 5900);
    free(host);
    assert_int_equal(tcp_parse_target("10.0.0.1:443", &host, &port), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 443);
    free(host);
    port = 5900;
    assert_int_equal(tcp_parse_target("fe80::1", &host, &port), 0);
    assert_string_equal(host, "fe80::1");
    assert_int_equal(port, 5900);
    free(host);
    assert_int_equal(tcp_parse_target("[fe80::1]:5999", &host, &port), 0);
    assert_string_equal(host, "fe80::1");
    assert_int_equal(port, 5999);
    free(host);
    static const char *const bad[] = {"",        ":5900", "[::1", "[::1]x", "h:0",
                                      "h:65536", "h:12a", "h:-1", "[]:5900"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(tcp_parse_target(bad[i], &host, &port), -EINVAL);
}

static void test_password_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/vdi-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/pw", dir);
    char *pw = NULL;

    FILE *f = fopen(path, "w");
    fputs("s3cret word\r\nsecond line\n", f);
    fclose(f);
    chmod(path, 0600);
    assert_int_equal(prompt_secret_from_file(path, 255, &pw), 0);
    assert_string_equal(pw, "s3cret word");
    secret_free(pw);

    f = fopen(path, "w");
    fputs("no-newline", f);
    fclose(f);
    assert_int_equal(prompt_secret_from_file(path, 255, &pw), 0);
    assert_string_equal(pw, "no-newline");
    secret_free(pw);

    f = fopen(path, "w");
    for (int i = 0; i < 300; i++)
        fputc('x', f);
    fclose(f);
    assert_int_equal(prompt_secret_from_file(path, 255, &pw), -E2BIG);

    f = fopen(path, "w");
    fputs("\n", f);
    fclose(f);
    assert_int_equal(prompt_secret_from_file(path, 255, &pw), -ENODATA);

    unlink(path);
    assert_int_equal(prompt_secret_from_file(path, 255, &pw), -ENOENT);
    rmdir(dir);
}

static void test_ppm(void **state)
{
    (void)state;
    char dir[] = "/tmp/vdi-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/a.ppm", dir);
    /* 2x2 in a stride of 3, red at bit 0, green 8, blue 16 */
    const uint32_t px[] = {0x000000ff, 0x0000ff00, 0xdeadbeef, 0x00ff0000, 0x00102030, 0xdeadbeef};
    assert_int_equal(ppm_write(path, px, 2, 2, 3, 0, 8, 16), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[64];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    static const char want[] = "P6\n2 2\n255\n"
                               "\xff\x00\x00"
                               "\x00\xff\x00"
                               "\x00\x00\xff"
                               "\x30\x20\x10";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(buf, want, n);
    assert_int_equal(ppm_write(path, px, 0, 2, 3, 0, 8, 16), -EINVAL);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_help_lists_every_option),
        cmocka_unit_test(test_parse_target),
        cmocka_unit_test(test_password_file),
        cmocka_unit_test(test_ppm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
