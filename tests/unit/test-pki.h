#pragma once
/*
 * A throwaway PKI for tests, made with certtool (gnutls-bin) in a fresh temp dir:
 * a CA, a second unrelated CA, and a server certificate signed by the first for the
 * names "vdi.test", "localhost" and 127.0.0.1 (ECDSA keys, valid two days).
 */
#include <stddef.h>

struct test_pki {
    char dir[64];
    char ca[128], ca_key[128];             /* ca.pem, ca-key.pem */
    char other_ca[128], other_ca_key[128]; /* other-ca.pem, other-ca-key.pem */
    char cert[128], key[128];              /* server.pem, server-key.pem */
};

/* dir_template is a mkdtemp() template ("/tmp/vdi-test-x-XXXXXX"). Returns 0 or -1. */
int test_pki_make(struct test_pki *p, const char *dir_template);
/* Writes text to dir/name and stores the full path in path (may be NULL). 0 or -1. */
int test_pki_write(const struct test_pki *p, const char *name, const char *text, char *path,
                   size_t path_size);
/* Removes the directory and everything in it. */
void test_pki_remove(struct test_pki *p);
