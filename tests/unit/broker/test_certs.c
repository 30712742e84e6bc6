/* Generated TLS identity: CA + server certificate, reuse, reissue on new names. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "certs.h"

static char dir[] = "/tmp/vdi-test-certs-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static gnutls_x509_crt_t load(const char *path)
{
    gnutls_datum_t d;
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_load_file(path, &d), 0);
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    gnutls_free(d.data);
    return crt;
}

static void test_generate_and_reuse(void **state)
{
    (void)state;
    struct certs a, b, c;
    char error[256] = "";
    char ca_key[256];

    assert_int_equal(certs_ensure(dir, NULL, &a, error, sizeof(error)), 0);
    assert_int_equal(a.generated, 1);
    assert_int_equal(strlen(a.server_sha256), 95);
    assert_int_equal(strlen(a.ca_sha256), 95);
    assert_int_equal(a.server_sha256[2], ':');
    assert_string_not_equal(a.server_sha256, a.ca_sha256);
    snprintf(ca_key, sizeof(ca_key), "%s/ca-key.pem", dir);
    assert_int_equal(mode_of(ca_key), 0600);
    assert_int_equal(mode_of(a.key_file), 0600);
    assert_int_equal(mode_of(a.cert_file), 0644);

    /* the server certificate chains to the CA and names this host */
    gnutls_x509_crt_t ca = load(a.ca_file), crt = load(a.cert_file);
    unsigned status = 1;
    assert_int_equal(gnutls_x509_crt_verify(crt, &ca, 1, 0, &status), 0);
    assert_int_equal(status, 0);
    assert_true(gnutls_x509_crt_check_hostname(crt, "localhost"));
    assert_true(gnutls_x509_crt_check_hostname(crt, "127.0.0.1"));
    assert_true(gnutls_x509_crt_check_hostname(crt, "::1"));
    assert_false(gnutls_x509_crt_check_hostname(crt, "vdi.example.com"));
    assert_int_equal(gnutls_x509_crt_get_ca_status(ca, NULL), 1);
    assert_int_equal(gnutls_x509_crt_get_ca_status(crt, NULL), 0);
    gnutls_x509_crt_deinit(crt);

    /* second start: same files */
    assert_int_equal(certs_ensure(dir, NULL, &b, error, sizeof(error)), 0);
    assert_int_equal(b.generated, 0);
    assert_string_equal(a.server_sha256, b.server_sha256);
    assert_string_equal(a.ca_sha256, b.ca_sha256);

    /* a new name: reissued by the same CA */
    assert_int_equal(certs_ensure(dir, "vdi.example.com, 192.0.2.5", &c, error, sizeof(error)), 0);
    assert_int_equal(c.generated, 1);
    assert_string_equal(a.ca_sha256, c.ca_sha256);
    assert_string_not_equal(a.server_sha256, c.server_sha256);
    crt = load(c.cert_file);
    assert_true(gnutls_x509_crt_check_hostname(crt, "vdi.example.com"));
    assert_true(gnutls_x509_crt_check_hostname(crt, "192.0.2.5"));
    assert_true(gnutls_x509_crt_check_hostname(crt, "localhost"));
    assert_int_equal(gnutls_x509_crt_verify(crt, &ca, 1, 0, &status), 0);
    assert_int_equal(status, 0);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_crt_deinit(ca);

    /* the generated pair loads as a configured one */
    struct certs d;
    assert_int_equal(certs_load(c.cert_file, c.key_file, &d, error, sizeof(error)), 0);
    assert_string_equal(d.server_sha256, c.server_sha256);
    assert_null(d.ca_file);
    certs_done(&d);
    /* a key that does not belong to the certificate */
    assert_int_equal(certs_load(c.cert_file, ca_key, &d, error, sizeof(error)), -EINVAL);
    assert_non_null(strstr(error, "tls_key"));
    assert_int_equal(certs_load("/nonexistent.pem", c.key_file, &d, error, sizeof(error)), -ENOENT);

    certs_done(&a);
    certs_done(&b);
    certs_done(&c);
}

static void test_bad_hostnames(void **state)
{
    (void)state;
    struct certs a;
    char error[256] = "";

    assert_int_equal(certs_ensure(dir, "bad name!", &a, error, sizeof(error)), -EINVAL);
    assert_non_null(strstr(error, "tls_hostnames"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_and_reuse),
        cmocka_unit_test(test_bad_hostnames),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
