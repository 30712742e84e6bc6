/* RFB 3.8 + VeNCrypt 0.2 + X509Plain, server side, as a byte-driven state machine. */
#include "vencrypt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "reasons.h"
#include "util.h"

#define RFB_VERSION_SIZE 12
static const char rfb_version_38[RFB_VERSION_SIZE + 1] = "RFB 003.008\n";

enum vencrypt_state {
    STATE_VERSION,
    STATE_SECURITY_TYPE,
    STATE_VENCRYPT_VERSION,
    STATE_SUBTYPE,
    STATE_PLAIN_LENGTHS,
    STATE_PLAIN_DATA,
    STATE_VERDICT,
    STATE_DONE,
    STATE_FAILED,
};

/* Output never holds more than the pre-TLS replies plus one refusal with its reason. */
#define OUTPUT_MAX 512

struct vencrypt {
    enum vencrypt_state state;
    bool inside_tls;

    /* Input of the current step: fixed size, the largest step is the Plain data. */
    uint8_t in[PROTO_MAX_USERNAME + PROTO_MAX_PASSWORD];
    size_t in_len, in_want;
    uint32_t username_len, password_len;

    char username[PROTO_MAX_USERNAME + 1];
    char password[PROTO_MAX_PASSWORD + 1];

    uint8_t out[OUTPUT_MAX];
    size_t out_len;

    char failure[160]; /* for the log only */
};

static const char *const state_names[] = {
    [STATE_VERSION] = "version",
    [STATE_SECURITY_TYPE] = "security-type",
    [STATE_VENCRYPT_VERSION] = "vencrypt-version",
    [STATE_SUBTYPE] = "subtype",
    [STATE_PLAIN_LENGTHS] = "credentials",
    [STATE_PLAIN_DATA] = "credentials",
    [STATE_VERDICT] = "verdict",
    [STATE_DONE] = "done",
    [STATE_FAILED] = "failed",
};

static bool state_takes_input(enum vencrypt_state s)
{
    return s <= STATE_PLAIN_DATA;
}

static void wipe_secrets(struct vencrypt *v)
{
    explicit_bzero(v->in, sizeof(v->in));
    explicit_bzero(v->username, sizeof(v->username));
    explicit_bzero(v->password, sizeof(v->password));
    v->in_len = 0;
}

static void expect(struct vencrypt *v, enum vencrypt_state s, size_t want)
{
    v->state = s;
    v->in_len = 0;
    v->in_want = want;
}

/* The queue is sized for the worst case of the protocol; overflowing it is a bug. */
static void out_bytes(struct vencrypt *v, const void *p, size_t n)
{
    if (n > sizeof(v->out) - v->out_len)
        abort();
    memcpy(v->out + v->out_len, p, n);
    v->out_len += n;
}

static void out_u8(struct vencrypt *v, uint8_t x)
{
    out_bytes(v, &x, 1);
}

static void out_u32(struct vencrypt *v, uint32_t x)
{
    uint8_t b[4] = {x >> 24, x >> 16, x >> 8, x};
    out_bytes(v, b, sizeof(b));
}

static uint32_t get_u32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* u32 length + bytes, cut to VENCRYPT_MAX_REASON without splitting a UTF-8 sequence. */
static void out_reason(struct vencrypt *v, const char *reason)
{
    size_t n = strlen(reason);
    if (n > VENCRYPT_MAX_REASON) {
        n = VENCRYPT_MAX_REASON;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    out_u32(v, (uint32_t)n);
    out_bytes(v, reason, n);
}

static int fail(struct vencrypt *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct vencrypt *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->failure, sizeof(v->failure), fmt, ap);
    va_end(ap);
    wipe_secrets(v);
    expect(v, STATE_FAILED, 0);
    return VENCRYPT_EVENT_FAILED;
}

/* SecurityResult failed, RFB 3.8 form (the only form reachable after the version step). */
static void out_security_failed(struct vencrypt *v, const char *reason)
{
    out_u32(v, 1);
    out_reason(v, reason);
}

/* Parses "RFB xxx.yyy\n"; false for anything that is not an RFB version string. */
static bool parse_version(const uint8_t *b, unsigned *major, unsigned *minor)
{
    if (memcmp(b, "RFB ", 4) != 0 || b[7] != '.' || b[11] != '\n')
        return false;
    unsigned v[2] = {0, 0};
    for (int part = 0; part < 2; part++)
        for (int i = 0; i < 3; i++) {
            uint8_t c = b[4 + part * 4 + i];
            if (c < '0' || c > '9')
                return false;
            v[part] = v[part] * 10 + (c - '0');
        }
    *major = v[0];
    *minor = v[1];
    return true;
}

static const char reason_version[] = "Unsupported RFB protocol version: this server requires "
                                     "RFB 3.8 with VeNCrypt (X509Plain)";

static int step_version(struct vencrypt *v)
{
    unsigned major, minor;
    if (memcmp(v->in, rfb_version_38, RFB_VERSION_SIZE) == 0) {
        out_u8(v, 1);
        out_u8(v, VENCRYPT_SECURITY_TYPE);
        expect(v, STATE_SECURITY_TYPE, 1);
        return VENCRYPT_EVENT_NONE;
    }
    if (!parse_version(v->in, &major, &minor))
        return fail(v, "client did not send an RFB version string");

    if (major < 3 || (major == 3 && minor < 7)) {
        /* RFB 3.3: the server picks the type; type 0 (invalid) carries a reason. */
        out_u32(v, 0);
        out_reason(v, reason_version);
    } else {
        /* RFB 3.7 and later: an empty type list carries a reason. */
        out_u8(v, 0);
        out_reason(v, reason_version);
    }
    return fail(v, "unsupported client RFB version %u.%u", major, minor);
}

static int step_security_type(struct vencrypt *v)
{
    uint8_t type = v->in[0];
    if (type != VENCRYPT_SECURITY_TYPE) {
        out_security_failed(v, "Unsupported security type: this server requires VeNCrypt "
                               "(X509Plain)");
        return fail(v, "client chose security type %u", type);
    }
    out_u8(v, 0);
    out_u8(v, 2);
    expect(v, STATE_VENCRYPT_VERSION, 2);
    return VENCRYPT_EVENT_NONE;
}

static int step_vencrypt_version(struct vencrypt *v)
{
    if (v->in[0] != 0 || v->in[1] != 2) {
        out_u8(v, 0xFF); /* version refused; VeNCrypt has no reason string here */
        return fail(v, "client chose VeNCrypt version %u.%u", v->in[0], v->in[1]);
    }
    out_u8(v, 0); /* version ok */
    out_u8(v, 1); /* one subtype */
    out_u32(v, VENCRYPT_SUBTYPE_X509PLAIN);
    expect(v, STATE_SUBTYPE, 4);
    return VENCRYPT_EVENT_NONE;
}

static int step_subtype(struct vencrypt *v)
{
    uint32_t subtype = get_u32(v->in);
    if (subtype != VENCRYPT_SUBTYPE_X509PLAIN) {
        out_u8(v, 0); /* subtype refused */
        return fail(v, "client chose VeNCrypt subtype %u", subtype);
    }
    out_u8(v, 1); /* accepted: TLS handshake next */
    v->inside_tls = true;
    expect(v, STATE_PLAIN_LENGTHS, 8);
    return VENCRYPT_EVENT_START_TLS;
}

static int finish_credentials(struct vencrypt *v)
{
    const uint8_t *user = v->in, *pass = v->in + v->username_len;
    if (memchr(user, 0, v->username_len) || memchr(pass, 0, v->password_len)) {
        out_security_failed(v, REASON_AUTH_INVALID);
        return fail(v, "NUL byte inside username or password");
    }
    memcpy(v->username, user, v->username_len);
    v->username[v->username_len] = 0;
    memcpy(v->password, pass, v->password_len);
    v->password[v->password_len] = 0;
    explicit_bzero(v->in, sizeof(v->in));
    expect(v, STATE_VERDICT, 0);
    return VENCRYPT_EVENT_CREDENTIALS;
}

static int step_plain_lengths(struct vencrypt *v)
{
    /* Caps before anything else: the lengths decide how much we read next. */
    uint32_t ulen = get_u32(v->in), plen = get_u32(v->in + 4);
    if (ulen > PROTO_MAX_USERNAME || plen > PROTO_MAX_PASSWORD) {
        out_security_failed(v, "Username or password too long");
        return fail(v, "credentials too long (username %u bytes, password %u bytes)", ulen, plen);
    }
    v->username_len = ulen;
    v->password_len = plen;
    expect(v, STATE_PLAIN_DATA, (size_t)ulen + plen);
    if (v->in_want == 0)
        return finish_credentials(v);
    return VENCRYPT_EVENT_NONE;
}

static int step(struct vencrypt *v)
{
    switch (v->state) {
    case STATE_VERSION:
        return step_version(v);
    case STATE_SECURITY_TYPE:
        return step_security_type(v);
    case STATE_VENCRYPT_VERSION:
        return step_vencrypt_version(v);
    case STATE_SUBTYPE:
        return step_subtype(v);
    case STATE_PLAIN_LENGTHS:
        return step_plain_lengths(v);
    case STATE_PLAIN_DATA:
        return finish_credentials(v);
    default:
        return -EINVAL;
    }
}

int vencrypt_new(struct vencrypt **ret)
{
    struct vencrypt *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    out_bytes(v, rfb_version_38, RFB_VERSION_SIZE);
    expect(v, STATE_VERSION, RFB_VERSION_SIZE);
    *ret = v;
    return 0;
}

void vencrypt_free(struct vencrypt *v)
{
    if (!v)
        return;
    explicit_bzero(v, sizeof(*v));
    free(v);
}

size_t vencrypt_bytes_wanted(const struct vencrypt *v)
{
    return state_takes_input(v->state) ? v->in_want - v->in_len : 0;
}

int vencrypt_feed(struct vencrypt *v, const void *buf, size_t len, size_t *consumed)
{
    const uint8_t *p = buf;
    size_t used = 0;
    int event = VENCRYPT_EVENT_NONE;

    *consumed = 0;
    if (!state_takes_input(v->state))
        return -EINVAL;

    while (used < len && state_takes_input(v->state)) {
        size_t n = v->in_want - v->in_len;
        if (n > len - used)
            n = len - used;
        memcpy(v->in + v->in_len, p + used, n);
        v->in_len += n;
        used += n;
        if (v->in_len < v->in_want)
            break;
        event = step(v);
        if (event != VENCRYPT_EVENT_NONE)
            break;
    }
    *consumed = used;
    return event;
}

size_t vencrypt_output(const struct vencrypt *v, const uint8_t **data)
{
    *data = v->out;
    return v->out_len;
}

void vencrypt_output_consumed(struct vencrypt *v, size_t n)
{
    if (n >= v->out_len) {
        v->out_len = 0;
        return;
    }
    memmove(v->out, v->out + n, v->out_len - n);
    v->out_len -= n;
}

int vencrypt_credentials(const struct vencrypt *v, const char **username, const char **password)
{
    if (v->state != STATE_VERDICT)
        return -EINVAL;
    *username = v->username;
    *password = v->password;
    return 0;
}

int vencrypt_verdict(struct vencrypt *v, bool ok, const char *reason)
{
    if (v->state != STATE_VERDICT)
        return -EINVAL;
    wipe_secrets(v);
    if (ok) {
        out_u32(v, 0);
        expect(v, STATE_DONE, 0);
        return VENCRYPT_EVENT_DONE;
    }
    out_security_failed(v, reason && reason[0] ? reason : REASON_AUTH_FAILED);
    return fail(v, "authentication refused");
}

const char *vencrypt_failure(const struct vencrypt *v)
{
    return v->state == STATE_FAILED ? v->failure : NULL;
}

const char *vencrypt_state_name(const struct vencrypt *v)
{
    return state_names[v->state];
}

bool vencrypt_inside_tls(const struct vencrypt *v)
{
    return v->inside_tls;
}
