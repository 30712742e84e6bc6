#pragma once
/*
 * From HOST:PORT to an authenticated TLS connection: TCP connect, the pre-TLS RFB and
 * VeNCrypt negotiation, the TLS handshake with vdi's trust rules (display/tls.h), and the
 * Plain credentials. Blocking, with a deadline per phase; the later login screen runs it
 * in a worker thread.
 */
#include <stdbool.h>
#include <stdint.h>

#include "handshake.h"
#include "stream.h"
#include "tls.h"

#define CLIENT_CONNECT_TIMEOUT_MS 15000   /* DNS + TCP connect, all addresses */
#define CLIENT_NEGOTIATE_TIMEOUT_MS 10000 /* version, security type, VeNCrypt */
#define CLIENT_TLS_TIMEOUT_MS 10000       /* TLS handshake */
#define CLIENT_AUTH_TIMEOUT_MS 60000      /* credentials -> SecurityResult (PAM, broker) */

struct client_connect_params {
    const char *host;
    int port;
    const char *ca_file;       /* NULL or a PEM file */
    /* NULL or TLS_SHA256_SIZE bytes. All zero (no certificate has that digest) trusts
     * nothing: the handshake fails with -EPERM after learning the server's fingerprint,
     * before any credentials are sent; that is how trust on first use asks first. */
    const uint8_t *pin_sha256;
    const char *user;
    const char *password;
};

/* Returns 0 with *ret (the authenticated TLS connection, which owns the socket), or a
 * negative errno with st telling the phase and details (handshake_exit_code() maps it):
 * -ENXIO / -ECONNREFUSED / -ETIMEDOUT ... (connect), -EPROTO, -EPERM (certificate not
 * trusted; peer_sha256 holds the server's fingerprint when *have_peer_sha256), -EACCES
 * (credentials refused, st->reason), -EINVAL (the CA file cannot be used). */
int client_connect(const struct client_connect_params *p, struct tls_conn **ret,
                   struct handshake_status *st, uint8_t peer_sha256[TLS_SHA256_SIZE],
                   bool *have_peer_sha256);

/* An rfb_stream over a TLS connection (t must outlive it). */
struct rfb_stream client_tls_stream(struct tls_conn *t);
