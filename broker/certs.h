#pragma once
/*
 * The broker's TLS identity. With no configured certificate, a private CA and a server
 * certificate signed by it are generated on first start in <state_dir>/tls (ECDSA P-256,
 * keys 0600) and reused later; the server certificate is reissued from the same CA when
 * it is missing, expires within 30 days, or lacks one of the wanted names.
 * The broker never speaks TLS itself; vdi-session loads the files it is given.
 */
#include <stddef.h>

#define CERTS_FINGERPRINT_SIZE 96 /* "AB:CD:..." for SHA-256, NUL included */

struct certs {
    char *cert_file; /* what vdi-session gets */
    char *key_file;
    char *ca_file; /* NULL when cert/key came from the config */
    char server_sha256[CERTS_FINGERPRINT_SIZE];
    char ca_sha256[CERTS_FINGERPRINT_SIZE]; /* "" without ca_file */
    int generated; /* 1 when the server certificate was (re)issued on this start */
};

/* Configured files: checks that they load and belong together, fills fingerprints.
 * Returns 0, -ENOENT/-EACCES, -EINVAL (unparsable, key does not match). */
int certs_load(const char *cert_file, const char *key_file, struct certs *ret, char *error,
               size_t error_size);
/* Generated files in tls_dir (which must exist, 0700). hostnames: comma separated
 * extra DNS names or IP addresses (may be NULL). Returns 0 or -errno, error filled. */
int certs_ensure(const char *tls_dir, const char *hostnames, struct certs *ret, char *error,
                 size_t error_size);
void certs_done(struct certs *c);

/* Re-attach tokens (common/proto.h): 32 random bytes as 64 lowercase hex characters, and
 * the hex SHA-256 of one (what the store keeps). Both return 0 or -EIO. */
#define CERTS_TOKEN_SIZE 65 /* hex, NUL included; also the size of a hash */
int certs_token_new(char token[CERTS_TOKEN_SIZE]);
int certs_token_hash(const char *token, char hash[CERTS_TOKEN_SIZE]);
