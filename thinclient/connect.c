#include "connect.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "tcp.h"

static int tls_stream_read(void *userdata, void *buf, size_t len, uint64_t deadline_ms)
{
    return tls_conn_read_full(userdata, buf, len, deadline_ms);
}

static int tls_stream_write(void *userdata, const void *buf, size_t len, uint64_t deadline_ms)
{
    return tls_conn_write_full(userdata, buf, len, deadline_ms);
}

struct rfb_stream client_tls_stream(struct tls_conn *t)
{
    return (struct rfb_stream){tls_stream_read, tls_stream_write, t};
}

static void tls_conn_freep(struct tls_conn **t)
{
    tls_conn_free(*t);
}

int client_connect(const struct client_connect_params *p, struct tls_conn **ret,
                   struct handshake_status *st, uint8_t peer_sha256[TLS_SHA256_SIZE],
                   bool *have_peer_sha256)
{
    int gai_error = 0, r;
    *have_peer_sha256 = false;
    memset(st, 0, sizeof(*st));

    st->phase = HANDSHAKE_PHASE_CONNECT;
    _cleanup_(closep) int fd =
        tcp_connect(p->host, p->port, now_ms() + CLIENT_CONNECT_TIMEOUT_MS, &gai_error);
    if (fd < 0) {
        if (gai_error)
            snprintf(st->detail, sizeof(st->detail), "cannot resolve %s: %s", p->host,
                     gai_strerror(gai_error));
        else
            snprintf(st->detail, sizeof(st->detail), "cannot connect to %s port %d: %s", p->host,
                     p->port, strerror(-fd));
        return fd;
    }
    log_debug("tcp connected host=%s port=%d", p->host, p->port);

    r = handshake_pre_tls(fd, now_ms() + CLIENT_NEGOTIATE_TIMEOUT_MS, st);
    if (r < 0)
        return r;

    struct tls_client_trust trust = {
        .ca_file = p->ca_file,
        .hostname = p->host,
        .pin_sha256 = p->pin_sha256,
    };
    _cleanup_(tls_conn_freep) struct tls_conn *t = NULL;
    uint8_t sha[TLS_SHA256_SIZE];
    r = tls_conn_connect(fd, &trust, TLS_DEFAULT_PRIORITY, now_ms() + CLIENT_TLS_TIMEOUT_MS, sha,
                         &t);
    static const uint8_t zero[TLS_SHA256_SIZE];
    if (memcmp(sha, zero, sizeof(zero)) != 0) {
        memcpy(peer_sha256, sha, TLS_SHA256_SIZE);
        *have_peer_sha256 = true;
    }
    if (r < 0) {
        switch (r) {
        case -EPERM:
            if (p->ca_file && p->pin_sha256)
                snprintf(st->detail, sizeof(st->detail),
                         "the certificate does not chain to %s for host %s, or does not "
                         "match the pinned fingerprint",
                         p->ca_file, p->host);
            else if (p->ca_file)
                snprintf(st->detail, sizeof(st->detail),
                         "the certificate is not signed by a CA in %s, or is not valid for "
                         "host %s (expired, wrong name)",
                         p->ca_file, p->host);
            else
                snprintf(st->detail, sizeof(st->detail),
                         "the certificate does not match the pinned fingerprint");
            return r;
        case -ENOENT:
        case -EACCES:
        case -EINVAL:
        case -EFBIG:
            snprintf(st->detail, sizeof(st->detail), "cannot use the CA file %s: %s",
                     p->ca_file ? p->ca_file : "(none)",
                     r == -EINVAL ? "no usable PEM certificate in it" : strerror(-r));
            return -EINVAL;
        default:
            snprintf(st->detail, sizeof(st->detail), "TLS handshake failed: %s",
                     r == -EPROTO ? "no common protocol version or cipher, or not TLS"
                                  : strerror(-r));
            return r;
        }
    }
    TAKE_FD(fd); /* t owns it now */

    struct rfb_stream s = client_tls_stream(t);
    r = handshake_plain_auth(&s, p->user, p->password, now_ms() + CLIENT_AUTH_TIMEOUT_MS, st);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(t);
    return 0;
}
