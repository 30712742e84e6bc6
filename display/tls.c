/* GnuTLS wrapper: server and client handshakes, exact reads/writes, the relay pump. */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <arpa/inet.h>

#include "log.h"
#include "util.h"

#define TLS_MAX_PEM_FILE (1024 * 1024)
#define TLS_BYE_TIMEOUT_MS 1000
#define RELAY_BUFFER_SIZE (64 * 1024)
#define RELAY_MAX_RECORD 16384

struct tls_server_credentials {
    gnutls_certificate_credentials_t cred;
};

struct tls_conn {
    gnutls_session_t session;
    gnutls_certificate_credentials_t client_cred; /* client side only: owned */
    int fd;
};

/* ---- small helpers ---------------------------------------------------------------- */

/* Reads a whole regular file of at most max bytes. *ret is NUL-terminated. */
static int map_gnutls_error(int r)
{
    switch (r) {
    case GNUTLS_E_PUSH_ERROR:
    case GNUTLS_E_PULL_ERROR:
    case GNUTLS_E_PREMATURE_TERMINATION:
    case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
        return -ECONNRESET;
    case GNUTLS_E_MEMORY_ERROR:
        return -ENOMEM;
    case GNUTLS_E_INVALID_REQUEST:
        return -EINVAL;
    default:
        return -EPROTO;
    }
}

/* Writes with MSG_NOSIGNAL so a vanished peer is EPIPE, not SIGPIPE; plain writev for
 * fds that are not sockets. errno is what GnuTLS reads back. */
static ssize_t push_vec(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
    int fd = (int)(intptr_t)ptr;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK)
        n = writev(fd, (const struct iovec *)iov, iovcnt);
    return n;
}

static ssize_t pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    return read((int)(intptr_t)ptr, buf, len);
}

/* Waits until the direction GnuTLS was blocked on is ready, or the deadline passes. */
static int wait_io(struct tls_conn *t, uint64_t deadline_ms)
{
    return fd_wait(t->fd, gnutls_record_get_direction(t->session) ? POLLOUT : POLLIN,
                   deadline_ms);
}

static int conn_new(int fd, unsigned flags, const char *priority, struct tls_conn **ret)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->fd = fd;
    int r = gnutls_init(&t->session, flags | GNUTLS_NONBLOCK);
    if (r < 0) {
        free(t);
        return map_gnutls_error(r);
    }
    const char *err_pos = NULL;
    r = gnutls_priority_set_direct(t->session, priority ? priority : TLS_DEFAULT_PRIORITY,
                                   &err_pos);
    if (r < 0) {
        log_debug("Invalid TLS priority string at '%s': %s", err_pos ? err_pos : "",
                  gnutls_strerror(r));
        gnutls_deinit(t->session);
        free(t);
        return -EINVAL;
    }
    gnutls_transport_set_int(t->session, fd);
    gnutls_transport_set_vec_push_function(t->session, push_vec);
    gnutls_transport_set_pull_function(t->session, pull);
    gnutls_handshake_set_timeout(t->session, GNUTLS_INDEFINITE_TIMEOUT);
    *ret = t;
    return 0;
}

/* Frees without touching the fd (a failed handshake leaves the fd with the caller). */
static void conn_abandon(struct tls_conn *t)
{
    if (!t)
        return;
    gnutls_deinit(t->session);
    if (t->client_cred)
        gnutls_certificate_free_credentials(t->client_cred);
    free(t);
}

static int handshake(struct tls_conn *t, uint64_t deadline_ms)
{
    for (;;) {
        int r = gnutls_handshake(t->session);
        if (r == GNUTLS_E_SUCCESS)
            return 0;
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(r)) {
            r = wait_io(t, deadline_ms);
            if (r < 0)
                return r;
            continue;
        }
        log_debug("TLS handshake failed: %s", gnutls_strerror(r));
        return map_gnutls_error(r);
    }
}

static int peer_certificate_sha256(gnutls_session_t s, uint8_t sha[TLS_SHA256_SIZE])
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    if (!certs || n == 0)
        return -ENOENT;
    int r = gnutls_hash_fast(GNUTLS_DIG_SHA256, certs[0].data, certs[0].size, sha);
    return r < 0 ? -EIO : 0;
}

/* ---- server side -------------------------------------------------------------------- */

int tls_server_credentials_new(const char *cert_file, const char *key_file,
                               struct tls_server_credentials **ret)
{
    _cleanup_(freep) char *cert = NULL;
    _cleanup_(secret_freep) char *key = NULL;
    size_t cert_size, key_size;

    int r = read_file_capped(cert_file, TLS_MAX_PEM_FILE, &cert, &cert_size);
    if (r < 0)
        return r;
    r = read_file_capped(key_file, TLS_MAX_PEM_FILE, &key, &key_size);
    if (r < 0)
        return r;

    struct tls_server_credentials *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    r = gnutls_certificate_allocate_credentials(&c->cred);
    if (r < 0) {
        free(c);
        return -ENOMEM;
    }
    gnutls_datum_t cd = {.data = (unsigned char *)cert, .size = (unsigned)cert_size};
    gnutls_datum_t kd = {.data = (unsigned char *)key, .size = (unsigned)key_size};
    /* Parse the chain on its own first: a clear error, and GnuTLS 3.7.9 leaks memory when
     * gnutls_certificate_set_x509_key_mem2() is given an unparsable certificate. */
    gnutls_x509_crt_t *chain = NULL;
    unsigned chain_len = 0;
    r = gnutls_x509_crt_list_import2(&chain, &chain_len, &cd, GNUTLS_X509_FMT_PEM, 0);
    if (r >= 0) {
        for (unsigned i = 0; i < chain_len; i++)
            gnutls_x509_crt_deinit(chain[i]);
        gnutls_free(chain);
    }
    if (r < 0 || chain_len == 0) {
        log_debug("Cannot parse certificate '%s': %s", cert_file, gnutls_strerror(r));
        tls_server_credentials_free(c);
        return -EINVAL;
    }
    r = gnutls_certificate_set_x509_key_mem2(c->cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        log_debug("Cannot load certificate '%s' / key '%s': %s", cert_file, key_file,
                  gnutls_strerror(r));
        tls_server_credentials_free(c);
        return -EINVAL;
    }
    /* RFC 7919 groups for DHE suites: no per-connection parameter generation. */
    gnutls_certificate_set_known_dh_params(c->cred, GNUTLS_SEC_PARAM_MEDIUM);
    *ret = c;
    return 0;
}

void tls_server_credentials_free(struct tls_server_credentials *c)
{
    if (!c)
        return;
    if (c->cred)
        gnutls_certificate_free_credentials(c->cred);
    free(c);
}

int tls_conn_accept(struct tls_server_credentials *c, int fd, const char *priority,
                    uint64_t deadline_ms, struct tls_conn **ret)
{
    struct tls_conn *t = NULL;
    int r = fd_set_nonblock(fd, true);
    if (r < 0)
        return r;
    r = conn_new(fd, GNUTLS_SERVER, priority, &t);
    if (r < 0)
        return r;
    r = gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, c->cred);
    if (r < 0) {
        conn_abandon(t);
        return map_gnutls_error(r);
    }
    gnutls_certificate_server_set_request(t->session, GNUTLS_CERT_IGNORE);
    r = handshake(t, deadline_ms);
    if (r < 0) {
        conn_abandon(t);
        return r;
    }
    *ret = t;
    return 0;
}

/* ---- client side -------------------------------------------------------------------- */

static bool is_ip_address(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int client_verify(struct tls_conn *t, const struct tls_client_trust *trust,
                         const uint8_t sha[TLS_SHA256_SIZE], bool have_sha)
{
    if (trust->ca_file) {
        unsigned status = 0;
        int r = gnutls_certificate_verify_peers3(t->session, trust->hostname, &status);
        if (r < 0) {
            log_debug("Cannot verify server certificate: %s", gnutls_strerror(r));
            return -EPERM;
        }
        if (status != 0) {
            gnutls_datum_t out = {0};
            if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) >=
                0) {
                log_debug("Server certificate not trusted: %s", (const char *)out.data);
                gnutls_free(out.data);
            }
            return -EPERM;
        }
    }
    if (trust->pin_sha256) {
        if (!have_sha || memcmp(sha, trust->pin_sha256, TLS_SHA256_SIZE) != 0) {
            log_debug("Server certificate does not match the pinned fingerprint");
            return -EPERM;
        }
    }
    return 0;
}

int tls_conn_connect(int fd, const struct tls_client_trust *trust, const char *priority,
                     uint64_t deadline_ms, uint8_t peer_sha256[TLS_SHA256_SIZE],
                     struct tls_conn **ret)
{
    struct tls_conn *t = NULL;
    uint8_t sha[TLS_SHA256_SIZE] = {0};

    if (peer_sha256)
        memset(peer_sha256, 0, TLS_SHA256_SIZE);
    if (!trust || (!trust->ca_file && !trust->pin_sha256))
        return -EINVAL;
    if (trust->ca_file && (!trust->hostname || !trust->hostname[0]))
        return -EINVAL;

    int r = fd_set_nonblock(fd, true);
    if (r < 0)
        return r;
    r = conn_new(fd, GNUTLS_CLIENT, priority, &t);
    if (r < 0)
        return r;
    r = gnutls_certificate_allocate_credentials(&t->client_cred);
    if (r < 0) {
        t->client_cred = NULL;
        conn_abandon(t);
        return -ENOMEM;
    }
    if (trust->ca_file) {
        _cleanup_(freep) char *pem = NULL;
        size_t size;
        r = read_file_capped(trust->ca_file, TLS_MAX_PEM_FILE, &pem, &size);
        if (r < 0) {
            conn_abandon(t);
            return r;
        }
        gnutls_datum_t d = {.data = (unsigned char *)pem, .size = (unsigned)size};
        r = gnutls_certificate_set_x509_trust_mem(t->client_cred, &d, GNUTLS_X509_FMT_PEM);
        if (r <= 0) { /* the number of CAs loaded: none is an error too */
            log_debug("No usable CA certificate in '%s'", trust->ca_file);
            conn_abandon(t);
            return -EINVAL;
        }
    }
    r = gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, t->client_cred);
    if (r < 0) {
        conn_abandon(t);
        return map_gnutls_error(r);
    }
    if (trust->hostname && trust->hostname[0] && !is_ip_address(trust->hostname))
        (void)gnutls_server_name_set(t->session, GNUTLS_NAME_DNS, trust->hostname,
                                     strlen(trust->hostname));

    r = handshake(t, deadline_ms);
    if (r < 0) {
        conn_abandon(t);
        return r;
    }
    bool have_sha = peer_certificate_sha256(t->session, sha) == 0;
    if (have_sha && peer_sha256)
        memcpy(peer_sha256, sha, TLS_SHA256_SIZE);

    r = client_verify(t, trust, sha, have_sha);
    if (r < 0) {
        conn_abandon(t);
        return r;
    }
    *ret = t;
    return 0;
}

/* ---- exact reads and writes ----------------------------------------------------------- */

int tls_conn_read_full(struct tls_conn *t, void *buf, size_t len, uint64_t deadline_ms)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = gnutls_record_recv(t->session, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION)
            return -EPIPE;
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(n)) {
            int r = wait_io(t, deadline_ms);
            if (r < 0)
                return r;
            continue;
        }
        log_debug("TLS read failed: %s", gnutls_strerror((int)n));
        return map_gnutls_error((int)n);
    }
    return 0;
}

int tls_conn_write_full(struct tls_conn *t, const void *buf, size_t len, uint64_t deadline_ms)
{
    const uint8_t *p = buf;
    while (len > 0) {
        /* After GNUTLS_E_AGAIN the same (p, len) is passed again, as GnuTLS requires. */
        ssize_t n = gnutls_record_send(t->session, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            int r = wait_io(t, deadline_ms);
            if (r < 0)
                return r;
            continue;
        }
        log_debug("TLS write failed: %s", gnutls_strerror((int)n));
        return map_gnutls_error((int)n);
    }
    return 0;
}

/* ---- relay --------------------------------------------------------------------------- */

struct relay_buffer {
    uint8_t data[RELAY_BUFFER_SIZE];
    size_t start, end;
    uint64_t stalled_since; /* when data started waiting without progress; 0 = empty */
};

static size_t rb_used(const struct relay_buffer *b)
{
    return b->end - b->start;
}

/* Free space at the end; compacts first unless the head is pinned (a TLS record retry). */
static size_t rb_space(struct relay_buffer *b, bool pinned)
{
    if (b->start == b->end && !pinned)
        b->start = b->end = 0;
    else if (b->start > 0 && !pinned && b->end == sizeof(b->data)) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
    return sizeof(b->data) - b->end;
}

static void rb_appended(struct relay_buffer *b, size_t n, uint64_t now)
{
    if (rb_used(b) == 0)
        b->stalled_since = now;
    b->end += n;
}

static void rb_consumed(struct relay_buffer *b, size_t n, uint64_t now)
{
    b->start += n;
    b->stalled_since = rb_used(b) ? now : 0;
}

struct relay {
    struct tls_conn *t;
    int local_fd;
    struct relay_buffer to_local; /* decrypted from TLS, waiting for local_fd */
    struct relay_buffer to_tls;   /* read from local_fd, waiting for gnutls_record_send */
    size_t send_inflight;         /* size of a record_send interrupted by AGAIN, or 0 */
    bool tls_eof, local_eof;
    bool tls_premature; /* tls_eof without close_notify (GNUTLS_E_PREMATURE_TERMINATION) */
    bool recv_blocked, send_blocked; /* last attempt returned AGAIN */
    bool recv_wants_write, send_wants_write;
    struct tls_relay_stats *stats;
};

/* Each step returns 1 on progress, 0 when blocked or nothing to do, or -errno. */

/* Once one side has ended, only the data already buffered for the other side moves. */

static int relay_tls_recv(struct relay *r, uint64_t now)
{
    if (r->tls_eof || r->local_eof)
        return 0;
    size_t space = rb_space(&r->to_local, false);
    if (space == 0)
        return 0;
    ssize_t n = gnutls_record_recv(r->t->session, r->to_local.data + r->to_local.end, space);
    r->recv_blocked = false;
    if (n > 0) {
        rb_appended(&r->to_local, (size_t)n, now);
        __atomic_fetch_add(&r->stats->bytes_from_tls, (uint64_t)n, __ATOMIC_RELAXED);
        return 1;
    }
    if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
        /* 0: the peer sent close_notify; else the transport ended under the TLS session. */
        r->tls_eof = true;
        r->tls_premature = n != 0;
        return 1;
    }
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
        r->recv_blocked = true;
        r->recv_wants_write = gnutls_record_get_direction(r->t->session) == 1;
        return 0;
    }
    if (!gnutls_error_is_fatal(n))
        return 1; /* a warning alert was consumed */
    log_debug("TLS relay receive failed: %s", gnutls_strerror((int)n));
    return map_gnutls_error((int)n);
}

static int relay_tls_send(struct relay *r, uint64_t now)
{
    size_t used = rb_used(&r->to_tls);
    if (used == 0 || r->tls_eof)
        return 0;
    size_t len = r->send_inflight ? r->send_inflight : used;
    if (len > RELAY_MAX_RECORD)
        len = RELAY_MAX_RECORD;
    ssize_t n = gnutls_record_send(r->t->session, r->to_tls.data + r->to_tls.start, len);
    r->send_blocked = false;
    if (n > 0) {
        r->send_inflight = 0;
        rb_consumed(&r->to_tls, (size_t)n, now);
        __atomic_fetch_add(&r->stats->bytes_to_tls, (uint64_t)n, __ATOMIC_RELAXED);
        return 1;
    }
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
        r->send_inflight = len;
        r->send_blocked = true;
        r->send_wants_write = gnutls_record_get_direction(r->t->session) == 1;
        return 0;
    }
    log_debug("TLS relay send failed: %s", gnutls_strerror((int)n));
    return map_gnutls_error((int)n);
}

static int relay_local_read(struct relay *r, uint64_t now)
{
    if (r->local_eof || r->tls_eof)
        return 0;
    size_t space = rb_space(&r->to_tls, r->send_inflight > 0);
    if (space == 0)
        return 0;
    ssize_t n = read(r->local_fd, r->to_tls.data + r->to_tls.end, space);
    if (n > 0) {
        rb_appended(&r->to_tls, (size_t)n, now);
        return 1;
    }
    if (n == 0) {
        r->local_eof = true;
        return 1;
    }
    if (errno == EAGAIN || errno == EINTR)
        return 0;
    if (errno == ECONNRESET) {
        r->local_eof = true;
        return 1;
    }
    return -errno;
}

static int relay_local_write(struct relay *r, uint64_t now)
{
    size_t used = rb_used(&r->to_local);
    if (used == 0)
        return 0;
    ssize_t n = send(r->local_fd, r->to_local.data + r->to_local.start, used, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK)
        n = write(r->local_fd, r->to_local.data + r->to_local.start, used);
    if (n > 0) {
        rb_consumed(&r->to_local, (size_t)n, now);
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
        /* The local side is gone: what is left for it can never be delivered. */
        r->local_eof = true;
        rb_consumed(&r->to_local, used, now);
        return 1;
    }
    return n < 0 ? -errno : -EIO;
}

static bool relay_finished(const struct relay *r)
{
    if (r->tls_eof && rb_used(&r->to_local) == 0)
        return true;
    if (r->local_eof && rb_used(&r->to_tls) == 0)
        return true;
    return false;
}

/* Milliseconds until the oldest stalled buffer exceeds the write timeout; -1 = none. */
static int relay_stall_timeout(const struct relay *r, int write_timeout_ms, uint64_t now)
{
    if (write_timeout_ms <= 0)
        return -1;
    int timeout = -1;
    const struct relay_buffer *bufs[] = {&r->to_local, &r->to_tls};
    for (size_t i = 0; i < ARRAY_SIZE(bufs); i++) {
        if (!bufs[i]->stalled_since)
            continue;
        uint64_t until = bufs[i]->stalled_since + (uint64_t)write_timeout_ms;
        int left = until > now ? (int)(until - now) : 0;
        if (timeout < 0 || left < timeout)
            timeout = left;
    }
    return timeout;
}

int tls_relay_run(struct tls_conn *t, int local_fd, int stop_fd, int write_timeout_ms,
                  struct tls_relay_stats *stats)
{
    struct tls_relay_stats dummy;
    _cleanup_(freep) struct relay *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->t = t;
    r->local_fd = local_fd;
    r->stats = stats ? stats : &dummy;
    *r->stats = (struct tls_relay_stats){0};

    int ret = fd_set_nonblock(local_fd, true);
    if (ret < 0)
        return ret;

    for (;;) {
        /* Pump until nothing moves: this also drains records GnuTLS already buffered
         * (gnutls_record_check_pending), which poll() cannot see. */
        for (;;) {
            uint64_t now = now_ms();
            int progress = 0;
            int steps[4];
            steps[0] = relay_tls_recv(r, now);
            steps[1] = relay_local_write(r, now);
            steps[2] = relay_local_read(r, now);
            steps[3] = relay_tls_send(r, now);
            for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
                if (steps[i] < 0)
                    return steps[i];
                progress |= steps[i];
            }
            if (relay_finished(r)) {
                if (r->tls_eof)
                    (void)shutdown(local_fd, SHUT_WR);
                r->stats->local_closed = !r->tls_eof;
                return r->tls_eof && r->tls_premature ? -ECONNRESET : 0;
            }
            if (!progress)
                break;
        }

        uint64_t now = now_ms();
        int timeout = relay_stall_timeout(r, write_timeout_ms, now);
        if (timeout == 0)
            return -ETIMEDOUT;

        /* Only poll what we can act on: an fd with no interest is left out so that a
         * hang-up on it cannot wake us in a loop. */
        short tls_events = 0, local_events = 0;
        /* (These conditions mirror the relay_* steps: polling for something no step
         * would consume would spin.) */
        bool ended = r->tls_eof || r->local_eof;
        if (!ended && rb_space(&r->to_local, false) > 0)
            tls_events |= r->recv_blocked && r->recv_wants_write ? POLLOUT : POLLIN;
        if (r->send_blocked && !r->tls_eof)
            tls_events |= r->send_wants_write ? POLLOUT : POLLIN;
        if (!ended && rb_space(&r->to_tls, r->send_inflight > 0) > 0)
            local_events |= POLLIN;
        if (rb_used(&r->to_local) > 0)
            local_events |= POLLOUT;

        struct pollfd p[3] = {
            {.fd = tls_events ? t->fd : -1, .events = tls_events},
            {.fd = local_events ? local_fd : -1, .events = local_events},
            {.fd = stop_fd, .events = POLLIN},
        };
        int n = poll(p, 3, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (stop_fd >= 0 && p[2].revents)
            return 0;
        if (n == 0 && relay_stall_timeout(r, write_timeout_ms, now_ms()) == 0)
            return -ETIMEDOUT;
    }
}

/* ---- fingerprints -------------------------------------------------------------------- */

void tls_fingerprint_format(const uint8_t sha[TLS_SHA256_SIZE], char out[96])
{
    fingerprint_format(sha, out);
}

int tls_fingerprint_parse(const char *text, uint8_t sha[TLS_SHA256_SIZE])
{
    return text ? fingerprint_parse(text, strlen(text), sha) : -EINVAL;
}

int tls_fingerprint_of_pem_file(const char *cert_file, uint8_t sha[TLS_SHA256_SIZE])
{
    _cleanup_(freep) char *pem = NULL;
    size_t size;
    int r = read_file_capped(cert_file, TLS_MAX_PEM_FILE, &pem, &size);
    if (r < 0)
        return r;

    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return -ENOMEM;
    gnutls_datum_t in = {.data = (unsigned char *)pem, .size = (unsigned)size};
    gnutls_datum_t der = {0};
    r = gnutls_x509_crt_import(crt, &in, GNUTLS_X509_FMT_PEM);
    if (r >= 0)
        r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der);
    gnutls_x509_crt_deinit(crt);
    if (r < 0)
        return -EINVAL;
    r = gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, sha);
    gnutls_free(der.data);
    return r < 0 ? -EIO : 0;
}

/* ---- teardown ------------------------------------------------------------------------ */

void tls_conn_free(struct tls_conn *t)
{
    if (!t)
        return;
    /* close_notify, bounded: a stalled peer must not hold us up. */
    uint64_t deadline = now_ms() + TLS_BYE_TIMEOUT_MS;
    for (;;) {
        int r = gnutls_bye(t->session, GNUTLS_SHUT_WR);
        if ((r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED) || wait_io(t, deadline) < 0)
            break;
    }
    safe_close(t->fd);
    conn_abandon(t);
}

int tls_conn_fd(const struct tls_conn *t)
{
    return t->fd;
}
