#include "handshake.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

static const char rfb_version_38[12] = {'R', 'F', 'B', ' ', '0', '0',
                                        '3', '.', '0', '0', '8', '\n'};

const char *handshake_phase_to_string(enum handshake_phase phase)
{
    static const char *const names[] = {
        [HANDSHAKE_PHASE_CONNECT] = "connect",
        [HANDSHAKE_PHASE_VERSION] = "protocol version",
        [HANDSHAKE_PHASE_SECURITY] = "security type",
        [HANDSHAKE_PHASE_VENCRYPT] = "VeNCrypt negotiation",
        [HANDSHAKE_PHASE_TLS] = "TLS handshake",
        [HANDSHAKE_PHASE_AUTH] = "authentication",
        [HANDSHAKE_PHASE_INIT] = "session start",
        [HANDSHAKE_PHASE_DONE] = "done",
    };
    if ((size_t)phase >= ARRAY_SIZE(names) || !names[phase])
        return "unknown";
    return names[phase];
}

void handshake_sanitize(char *dst, size_t dst_size, const uint8_t *src, size_t len)
{
    size_t o = 0;
    if (dst_size == 0)
        return;
    for (size_t i = 0; i < len && o + 1 < dst_size;) {
        uint8_t c = src[i];
        if (c < 0x80) {
            dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad;
        }
        if (n > len - i)
            goto bad;
        for (size_t k = 1; k < n; k++) {
            if ((src[i + k] & 0xC0) != 0x80)
                goto bad;
            cp = cp << 6 | (src[i + k] & 0x3F);
        }
        /* Overlong forms, surrogates, beyond Unicode, and C1 controls (U+0080..U+009F,
         * which some terminals obey like ESC sequences). */
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp <= 0x9F)
            goto bad;
        if (o + n + 1 > dst_size)
            break;
        memcpy(dst + o, src + i, n);
        o += n;
        i += n;
        continue;
    bad:
        dst[o++] = '?';
        i++;
    }
    dst[o] = '\0';
}

static void status_set(struct handshake_status *st, enum handshake_phase phase)
{
    st->phase = phase;
}

__attribute__((format(printf, 3, 4))) static int fail(struct handshake_status *st, int error,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->detail, sizeof(st->detail), fmt, ap);
    va_end(ap);
    return error;
}

/* Reads a u32 length and then at most HANDSHAKE_MAX_REASON bytes of reason text into
 * st->reason. A server that stalls or closes halfway leaves what arrived. */
static int read_reason(const struct rfb_stream *s, uint64_t deadline_ms,
                       struct handshake_status *st)
{
    uint8_t lenbuf[4];
    uint64_t reason_deadline = now_ms() + HANDSHAKE_REASON_TIMEOUT_MS;
    if (reason_deadline > deadline_ms)
        reason_deadline = deadline_ms;

    st->reason[0] = '\0';
    int r = rfb_stream_read(s, lenbuf, sizeof(lenbuf), reason_deadline);
    if (r < 0)
        return r;
    uint32_t len = rfb_get_u32(lenbuf);
    size_t want = len > HANDSHAKE_MAX_REASON ? HANDSHAKE_MAX_REASON : len;
    uint8_t text[HANDSHAKE_MAX_REASON];
    r = rfb_stream_read(s, text, want, reason_deadline);
    if (r < 0)
        return r;
    handshake_sanitize(st->reason, sizeof(st->reason), text, want);
    return 0;
}

/* Parses "RFB xxx.yyy\n". */
static bool parse_version(const uint8_t v[12], int *major, int *minor)
{
    if (memcmp(v, "RFB ", 4) != 0 || v[7] != '.' || v[11] != '\n')
        return false;
    int a = 0, b = 0;
    for (int i = 4; i < 7; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        a = a * 10 + (v[i] - '0');
    }
    for (int i = 8; i < 11; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        b = b * 10 + (v[i] - '0');
    }
    *major = a;
    *minor = b;
    return true;
}

int handshake_pre_tls(int fd, uint64_t deadline_ms, struct handshake_status *st)
{
    struct rfb_stream s = rfb_stream_from_fd(&fd);
    uint8_t buf[12];
    int r, major, minor;

    st->detail[0] = st->reason[0] = '\0';

    status_set(st, HANDSHAKE_PHASE_VERSION);
    r = rfb_stream_read(&s, buf, 12, deadline_ms);
    if (r < 0)
        return fail(st, r, "no RFB greeting from the server");
    if (!parse_version(buf, &major, &minor)) {
        char shown[16];
        handshake_sanitize(shown, sizeof(shown), buf, 11);
        return fail(st, -EPROTO, "the server is not an RFB server (it sent \"%s\")", shown);
    }
    if (major < 3 || (major == 3 && minor < 8))
        return fail(st, -EPROTO, "the server speaks RFB %d.%d; vdi-client requires 3.8", major,
                    minor);
    r = rfb_stream_write(&s, rfb_version_38, sizeof(rfb_version_38), deadline_ms);
    if (r < 0)
        return fail(st, r, "cannot send the protocol version");

    status_set(st, HANDSHAKE_PHASE_SECURITY);
    uint8_t n;
    r = rfb_stream_read(&s, &n, 1, deadline_ms);
    if (r < 0)
        return fail(st, r, "no security types from the server");
    if (n == 0) {
        (void)read_reason(&s, deadline_ms, st);
        return fail(st, -ECONNREFUSED, "the server refused the connection");
    }
    uint8_t types[255];
    r = rfb_stream_read(&s, types, n, deadline_ms);
    if (r < 0)
        return fail(st, r, "truncated security type list");
    bool have_vencrypt = false;
    char offered[255 * 4 + 1] = "";
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        if (types[i] == HANDSHAKE_SECURITY_VENCRYPT)
            have_vencrypt = true;
        off +=
            (size_t)snprintf(offered + off, sizeof(offered) - off, "%s%u", i ? "," : "", types[i]);
    }
    if (!have_vencrypt)
        return fail(st, -EPROTO,
                    "the server does not offer VeNCrypt (security types offered: %s); "
                    "refusing to send credentials without TLS",
                    offered);
    uint8_t choice = HANDSHAKE_SECURITY_VENCRYPT;
    r = rfb_stream_write(&s, &choice, 1, deadline_ms);
    if (r < 0)
        return fail(st, r, "cannot choose the security type");

    status_set(st, HANDSHAKE_PHASE_VENCRYPT);
    r = rfb_stream_read(&s, buf, 2, deadline_ms);
    if (r < 0)
        return fail(st, r, "no VeNCrypt version from the server");
    if (buf[0] == 0 && buf[1] < 2)
        return fail(st, -EPROTO, "the server speaks VeNCrypt %u.%u; vdi-client requires 0.2",
                    buf[0], buf[1]);
    static const uint8_t vencrypt_02[2] = {0, 2};
    r = rfb_stream_write(&s, vencrypt_02, 2, deadline_ms);
    if (r < 0)
        return fail(st, r, "cannot send the VeNCrypt version");
    uint8_t ack;
    r = rfb_stream_read(&s, &ack, 1, deadline_ms);
    if (r < 0)
        return fail(st, r, "no answer to the VeNCrypt version");
    if (ack != 0)
        return fail(st, -EPROTO, "the server refused VeNCrypt 0.2 (it announced %u.%u)", buf[0],
                    buf[1]);
    r = rfb_stream_read(&s, &n, 1, deadline_ms);
    if (r < 0)
        return fail(st, r, "no VeNCrypt subtype list");
    if (n == 0)
        return fail(st, -EPROTO, "the server offers no VeNCrypt subtypes");
    uint8_t subtypes[255 * 4];
    r = rfb_stream_read(&s, subtypes, (size_t)n * 4, deadline_ms);
    if (r < 0)
        return fail(st, r, "truncated VeNCrypt subtype list");
    bool have_x509plain = false;
    off = 0;
    offered[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        uint32_t t = rfb_get_u32(subtypes + 4 * i);
        if (t == HANDSHAKE_VENCRYPT_X509PLAIN)
            have_x509plain = true;
        if (off < sizeof(offered))
            off += (size_t)snprintf(offered + off, sizeof(offered) - off, "%s%u", i ? "," : "", t);
    }
    if (!have_x509plain)
        return fail(st, -EPROTO,
                    "the server does not offer VeNCrypt X509Plain (subtypes offered: %s)", offered);
    uint8_t sub[4];
    rfb_put_u32(sub, HANDSHAKE_VENCRYPT_X509PLAIN);
    r = rfb_stream_write(&s, sub, 4, deadline_ms);
    if (r < 0)
        return fail(st, r, "cannot choose the VeNCrypt subtype");
    r = rfb_stream_read(&s, &ack, 1, deadline_ms);
    if (r < 0)
        return fail(st, r, "no answer to the VeNCrypt subtype");
    if (ack != 1)
        return fail(st, -EPROTO, "the server rejected VeNCrypt X509Plain");

    status_set(st, HANDSHAKE_PHASE_TLS);
    return 0;
}

int handshake_plain_auth(const struct rfb_stream *s, const char *user, const char *password,
                         uint64_t deadline_ms, struct handshake_status *st)
{
    size_t ulen = strlen(user), plen = strlen(password);
    st->detail[0] = st->reason[0] = '\0';
    status_set(st, HANDSHAKE_PHASE_AUTH);
    if (ulen > PROTO_MAX_USERNAME || plen > PROTO_MAX_PASSWORD)
        return fail(st, -EINVAL, "user name or password too long (at most %d bytes each)",
                    PROTO_MAX_USERNAME);

    uint8_t msg[8 + PROTO_MAX_USERNAME + PROTO_MAX_PASSWORD];
    rfb_put_u32(msg, (uint32_t)ulen);
    rfb_put_u32(msg + 4, (uint32_t)plen);
    memcpy(msg + 8, user, ulen);
    memcpy(msg + 8 + ulen, password, plen);
    int r = rfb_stream_write(s, msg, 8 + ulen + plen, deadline_ms);
    explicit_bzero(msg, sizeof(msg));
    if (r < 0)
        return fail(st, r, "cannot send the credentials");

    uint8_t result[4];
    r = rfb_stream_read(s, result, 4, deadline_ms);
    if (r < 0)
        return fail(st, r, "no authentication result from the server");
    uint32_t v = rfb_get_u32(result);
    if (v == 0) {
        status_set(st, HANDSHAKE_PHASE_INIT);
        return 0;
    }
    if (read_reason(s, deadline_ms, st) < 0)
        st->reason[0] = '\0';
    return fail(st, -EACCES, "the server refused the credentials");
}

int handshake_exit_code(int error, enum handshake_phase phase)
{
    switch (error) {
    case 0:
        return CLIENT_EXIT_OK;
    case -EPERM:
        return CLIENT_EXIT_UNTRUSTED;
    case -EACCES:
        return CLIENT_EXIT_AUTH;
    case -EPROTO:
    case -EBADMSG:
        return CLIENT_EXIT_PROTOCOL;
    case -EINVAL:
        return CLIENT_EXIT_USAGE;
    case -ENOMEM:
        return CLIENT_EXIT_INTERNAL;
    case -ECONNREFUSED:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -EHOSTDOWN:
    case -EADDRNOTAVAIL:
    case -ENXIO:
        return CLIENT_EXIT_UNREACHABLE;
    default:
        /* Timeouts, resets, EOF: before the server said anything it is unreachable (or
         * not a server at all); afterwards the connection was lost. */
        return phase <= HANDSHAKE_PHASE_VERSION ? CLIENT_EXIT_UNREACHABLE : CLIENT_EXIT_LOST;
    }
}
