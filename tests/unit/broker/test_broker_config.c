/* The broker's config table: defaults, bad values with file:line, cross-field rules. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker-config.h"

static char template_path[] = "/tmp/vdi-test-template-XXXXXX";

static int setup(void **state)
{
    (void)state;
    int fd = mkstemp(template_path);
    if (fd < 0 || write(fd, "disk", 4) != 4)
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(template_path);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    struct broker_config c;
    struct config_error err = {""};
    char *uri = NULL;

    assert_int_equal(broker_config_init(&c, &err), 0);
    assert_string_equal(c.listen_address, "0.0.0.0");
    assert_int_equal(c.listen_port, 5900);
    assert_string_equal(c.state_dir, "/var/lib/vdi");
    assert_string_equal(c.libvirt_uri, "");
    assert_string_equal(c.virt_type, "kvm");
    assert_string_equal(c.tls_cert, "");
    assert_string_equal(c.tls_key, "");
    assert_string_equal(c.tls_hostnames, "");
    assert_string_equal(c.tls_priority, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2");
    assert_string_equal(c.pam_service, "vdi");
    assert_string_equal(c.session_program, "");
    assert_string_equal(c.session_user, "nobody");
    assert_int_equal(c.handshake_timeout_s, 10);
    assert_int_equal(c.login_timeout_s, 60);
    assert_int_equal(c.max_unauthenticated, 64);
    assert_int_equal(c.max_sessions, 256);
    assert_int_equal(c.desktop_start_timeout_s, 120);
    assert_string_equal(c.database, "");
    assert_string_equal(c.cpu_overcommit, "4.0");
    assert_string_equal(c.memory_overcommit, "1.0");
    assert_int_equal(c.shutdown_timeout_s, 60);
    assert_int_equal(c.spare_check_interval_s, 10);
    assert_string_equal(c.admin_address, "127.0.0.1");
    assert_int_equal(c.admin_port, 8443);
    assert_string_equal(c.admin_group, "vdi-admins");
    assert_int_equal(c.worker_threads, 4);
    assert_string_equal(c.log_level, "info");

    assert_int_equal(broker_config_libvirt_uri(&c, &uri), 0);
    assert_string_equal(uri, "qemu:///embed?root=/var/lib/vdi/libvirt");
    free(uri);

    assert_int_equal(broker_config_database(&c, &uri), 0);
    assert_string_equal(uri, "sqlite:/var/lib/vdi/vdi.db");
    free(uri);

    /* The defaults are a working configuration (pools live in the database). */
    assert_int_equal(broker_config_validate(&c, &err), 0);
    broker_config_done(&c);
}

static void test_every_key_parses(void **state)
{
    (void)state;
    struct broker_config c;
    struct config_error err = {""};
    char text[2048];
    char *uri = NULL;

    snprintf(text, sizeof(text),
             "# comment\n"
             "listen_address = ::\n"
             "listen_port = 0\n"
             "state_dir = /srv/vdi\n"
             "libvirt_uri = qemu:///system\n"
             "virt_type = qemu\n"
             "tls_hostnames = vdi.example.com, 192.0.2.1\n"
             "tls_priority = SECURE256\n"
             "pam_service = vdi-test\n"
             "session_user = nobody\n"
             "handshake_timeout_s = 5\n"
             "login_timeout_s = 30\n"
             "max_unauthenticated = 8\n"
             "max_sessions = 16\n"
             "desktop_start_timeout_s = 60\n"
             "database = sqlite:/srv/vdi/state.db\n"
             "cpu_overcommit = 2.5\n"
             "memory_overcommit = 0.9\n"
             "shutdown_timeout_s = 30\n"
             "spare_check_interval_s = 5\n"
             "admin_address = ::1\n"
             "admin_port = 9443\n"
             "admin_group = wheel\n"
             "worker_threads = 2\n"
             "log_level = debug\n");
    assert_int_equal(broker_config_init(&c, &err), 0);
    assert_int_equal(config_parse_string(broker_config_table, broker_config_table_size, &c, text,
                                         "t.conf", &err),
                     0);
    assert_string_equal(c.listen_address, "::");
    assert_int_equal(c.listen_port, 0);
    assert_string_equal(c.virt_type, "qemu");
    assert_string_equal(c.cpu_overcommit, "2.5");
    assert_int_equal(c.admin_port, 9443);
    assert_int_equal(broker_config_validate(&c, &err), 0);
    {
        double ratio = 0;
        assert_int_equal(broker_config_ratio(c.cpu_overcommit, &ratio), 0);
        assert_true(ratio > 2.49 && ratio < 2.51);
    }
    assert_int_equal(broker_config_database(&c, &uri), 0);
    assert_string_equal(uri, "sqlite:/srv/vdi/state.db");
    free(uri);
    assert_int_equal(broker_config_libvirt_uri(&c, &uri), 0);
    assert_string_equal(uri, "qemu:///system");
    free(uri);
    broker_config_done(&c);
}

/* Each bad file must fail, and the message must name file:line and the key. */
static void expect_parse_error(const char *text, const char *where, const char *needle)
{
    struct broker_config c;
    struct config_error err = {""};

    assert_int_equal(broker_config_init(&c, &err), 0);
    assert_int_equal(config_parse_string(broker_config_table, broker_config_table_size, &c, text,
                                         "bad.conf", &err),
                     -EINVAL);
    if (!strstr(err.message, where) || (needle && !strstr(err.message, needle)))
        fail_msg("message '%s' lacks '%s' / '%s'", err.message, where, needle ? needle : "");
    broker_config_done(&c);
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_parse_error("listen_port = 70000\n", "bad.conf:1", "listen_port");
    expect_parse_error("\n# x\nlisten_port = -1\n", "bad.conf:3", "listen_port");
    expect_parse_error("listen_port = 59x\n", "bad.conf:1", "listen_port");
    expect_parse_error("virt_type = xen\n", "bad.conf:1", "virt_type");
    expect_parse_error("log_level = loud\n", "bad.conf:1", "log_level");
    expect_parse_error("max_sessions = 0\n", "bad.conf:1", "max_sessions");
    expect_parse_error("worker_threads = 1000\n", "bad.conf:1", "worker_threads");
    expect_parse_error("admin_port = 65536\n", "bad.conf:1", "admin_port");
    expect_parse_error("template_disk = /x.img\n", "bad.conf:1", "template_disk");
    expect_parse_error("listen_port = 1\nlisten_port = 2\n", "bad.conf:2", "listen_port");
    expect_parse_error("no_such_key = 1\n", "bad.conf:1", "no_such_key");
    expect_parse_error("state_dir\n", "bad.conf:1", NULL);
}

static void expect_invalid(const char *key, const char *value, const char *needle)
{
    struct broker_config c;
    struct config_error err = {""};

    assert_int_equal(broker_config_init(&c, &err), 0);
    assert_int_equal(broker_config_validate(&c, &err), 0);
    assert_int_equal(
        config_set(broker_config_table, broker_config_table_size, &c, key, value, &err), 0);
    assert_int_equal(broker_config_validate(&c, &err), -EINVAL);
    if (!strstr(err.message, needle))
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    broker_config_done(&c);
}

static void test_cross_field(void **state)
{
    (void)state;
    expect_invalid("database", "postgres://db/vdi", "database");
    expect_invalid("database", "sqlite:relative.db", "database");
    expect_invalid("cpu_overcommit", "lots", "cpu_overcommit");
    expect_invalid("cpu_overcommit", "0", "cpu_overcommit");
    expect_invalid("memory_overcommit", "1.5x", "memory_overcommit");
    expect_invalid("memory_overcommit", "1000", "memory_overcommit");
    expect_invalid("admin_address", "localhost", "admin_address");
    expect_invalid("admin_group", "bad group", "admin_group");
    expect_invalid("tls_cert", template_path, "tls_cert");
    expect_invalid("tls_key", template_path, "tls_key");
    expect_invalid("listen_address", "localhost", "listen_address");
    expect_invalid("listen_address", "1.2.3.4.5", "listen_address");
    expect_invalid("state_dir", "var/lib/vdi", "state_dir");
    expect_invalid("state_dir", "/tmp/a?b", "state_dir");
    expect_invalid("pam_service", "../etc/passwd", "pam_service");
    expect_invalid("session_program", "vdi-session", "session_program");
    expect_invalid("max_unauthenticated", "1000", "max_unauthenticated");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key_parses),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_cross_field),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
