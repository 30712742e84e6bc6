#pragma once
/*
 * The one place GnuTLS lives for vdi's RFB traffic: the server side (vdi-session) and
 * the client side (vdi-client) of a TLS 1.2+ connection on an already connected socket,
 * and the relay that pumps decrypted bytes between that connection and a local fd.
 * Every phase takes a deadline (monotonic ms, see common/util.h now_ms()).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TLS_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define TLS_SHA256_SIZE 32

struct tls_server_credentials;
struct tls_conn;

/* Loads a PEM certificate chain and key once per process. Returns 0 or -errno
 * (-ENOENT, -EACCES, -EINVAL for unparsable PEM). */
int tls_server_credentials_new(const char *cert_file, const char *key_file,
                               struct tls_server_credentials **ret);
void tls_server_credentials_free(struct tls_server_credentials *c);

/* Server handshake on fd (ownership stays with the caller until tls_conn_free, which
 * closes it). Returns 0, -ETIMEDOUT, -ECONNRESET, -EPROTO for a TLS-level failure. */
int tls_conn_accept(struct tls_server_credentials *c, int fd, const char *priority,
                    uint64_t deadline_ms, struct tls_conn **ret);

/* How the client side decides to trust the server: a CA file (the certificate must chain
 * to it and match hostname), or a SHA-256 pin of the server certificate (DER), or both.
 * At least one must be set. */
struct tls_client_trust {
    const char *ca_file;
    const char *hostname;
    const uint8_t *pin_sha256; /* TLS_SHA256_SIZE bytes, or NULL */
};

/* Client handshake. peer_sha256 (may be NULL) receives the server certificate's SHA-256
 * even when trust fails, so a viewer can show it (trust on first use).
 * Returns 0, -ETIMEDOUT, -ECONNRESET, -EPROTO (TLS failure), -EPERM (certificate not
 * trusted: wrong CA, wrong host name, pin mismatch). */
int tls_conn_connect(int fd, const struct tls_client_trust *trust, const char *priority,
                     uint64_t deadline_ms, uint8_t peer_sha256[TLS_SHA256_SIZE],
                     struct tls_conn **ret);

/* Exactly len bytes, before the deadline. Return 0, -ETIMEDOUT, -EPIPE (peer closed),
 * -ECONNRESET / -EPROTO. */
int tls_conn_read_full(struct tls_conn *t, void *buf, size_t len, uint64_t deadline_ms);
int tls_conn_write_full(struct tls_conn *t, const void *buf, size_t len, uint64_t deadline_ms);

/* Pumps bytes both ways between t and local_fd until either side closes, an error
 * happens, or stop_fd (may be -1) becomes readable. Blocks; run it in its own thread.
 * write_timeout_ms bounds how long a peer may refuse to take bytes (stalled client).
 * When the TLS side ends, what is buffered for local_fd is still delivered, then local_fd
 * is shut down for writing.
 * Returns 0 when the TLS peer closed with close_notify (a deliberate close), when the
 * local side closed first (stats->local_closed), or on stop; -ECONNRESET when the TLS
 * connection ended without close_notify (EOF under the session: the peer process died or
 * the network dropped) or was reset; -ETIMEDOUT for a stalled peer; another negative
 * errno (-EPROTO: TLS error) otherwise. */
struct tls_relay_stats {
    uint64_t bytes_from_tls; /* client -> local; updated atomically (read while it runs) */
    uint64_t bytes_to_tls;   /* local -> client */
    bool local_closed;       /* on return 0: local_fd ended first (not the TLS peer, not stop) */
};
int tls_relay_run(struct tls_conn *t, int local_fd, int stop_fd, int write_timeout_ms,
                  struct tls_relay_stats *stats);

/* Formats a SHA-256 as "AB:CD:..." (96 bytes incl. NUL) and parses it back (colons
 * optional, case-insensitive). */
void tls_fingerprint_format(const uint8_t sha[TLS_SHA256_SIZE], char out[96]);
int tls_fingerprint_parse(const char *text, uint8_t sha[TLS_SHA256_SIZE]);
/* SHA-256 of the first certificate of a PEM file, for logs and pinning. */
int tls_fingerprint_of_pem_file(const char *cert_file, uint8_t sha[TLS_SHA256_SIZE]);

/* Sends close_notify (best effort, bounded), frees, closes the fd. NULL is fine. */
void tls_conn_free(struct tls_conn *t);
int tls_conn_fd(const struct tls_conn *t);
