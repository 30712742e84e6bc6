#include "proto.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/* Which side may send each type, and whether it carries an fd: the single table that
 * proto_decode enforces (see the message table in proto.h). */
static const struct {
    const char *name;
    enum proto_sender sender;
    bool has_fd;
} proto_types[] = {
    [PROTO_AUTH_REQUEST] = {"AUTH_REQUEST", PROTO_FROM_SESSION, false},
    [PROTO_AUTH_RESULT] = {"AUTH_RESULT", PROTO_FROM_BROKER, false},
    [PROTO_DESKTOP_STATUS] = {"DESKTOP_STATUS", PROTO_FROM_BROKER, false},
    [PROTO_DESKTOP_READY] = {"DESKTOP_READY", PROTO_FROM_BROKER, true},
    [PROTO_CLOSE] = {"CLOSE", PROTO_FROM_BROKER, false},
    [PROTO_NOTICE] = {"NOTICE", PROTO_FROM_BROKER, false},
    [PROTO_ACTIVITY] = {"ACTIVITY", PROTO_FROM_SESSION, false},
    [PROTO_REATTACH] = {"REATTACH", PROTO_FROM_SESSION, false},
    [PROTO_REATTACH_RESULT] = {"REATTACH_RESULT", PROTO_FROM_BROKER, false},
};

/* Exactly PROTO_TOKEN_LEN lowercase hex digits. */
static bool token_is_valid(const char *t)
{
    size_t n = strnlen(t, PROTO_TOKEN_LEN + 1);

    if (n != PROTO_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
            return false;
    return true;
}

static bool proto_type_known(unsigned type)
{
    return type < ARRAY_SIZE(proto_types) && proto_types[type].name != NULL;
}

const char *proto_type_name(enum proto_type type)
{
    return proto_type_known(type) ? proto_types[type].name : "UNKNOWN";
}

void proto_message_init(struct proto_message *m, enum proto_type type)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->fd = -1;
}

void proto_message_done(struct proto_message *m)
{
    m->fd = safe_close(m->fd);
    explicit_bzero(m->password, sizeof(m->password));
    explicit_bzero(m->token, sizeof(m->token));
}

int proto_set_string(char *field, size_t field_size, const char *value)
{
    size_t len = strlen(value);
    if (len >= field_size)
        return -E2BIG;
    memcpy(field, value, len + 1);
    return 0;
}

/* --- encoding: a cursor over a fixed buffer --- */

struct writer {
    uint8_t *buf;
    size_t size, len;
    bool overflow;
};

static void put_bytes(struct writer *w, const void *p, size_t n)
{
    if (w->overflow || n > w->size - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_u8(struct writer *w, uint8_t v)
{
    put_bytes(w, &v, 1);
}

static void put_u16(struct writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v & 0xff), (uint8_t)(v >> 8)};
    put_bytes(w, b, 2);
}

static void put_u32(struct writer *w, uint32_t v)
{
    put_u16(w, (uint16_t)(v & 0xffff));
    put_u16(w, (uint16_t)(v >> 16));
}

static void put_u64(struct writer *w, uint64_t v)
{
    put_u32(w, (uint32_t)(v & 0xffffffffu));
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_string(struct writer *w, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap + 1);
    if (n > cap) {
        w->overflow = true;
        return;
    }
    put_u16(w, (uint16_t)n);
    put_bytes(w, s, n);
}

int proto_encode(const struct proto_message *m, uint8_t *buf, size_t size)
{
    if (!proto_type_known(m->type))
        return -EINVAL;
    struct writer w = {.buf = buf, .size = size};
    put_u8(&w, PROTO_VERSION);
    put_u8(&w, (uint8_t)m->type);
    put_u16(&w, 0); /* body length, patched below */
    switch (m->type) {
    case PROTO_AUTH_REQUEST:
        put_string(&w, m->username, PROTO_MAX_USERNAME);
        put_string(&w, m->password, PROTO_MAX_PASSWORD);
        break;
    case PROTO_AUTH_RESULT:
    case PROTO_REATTACH_RESULT:
        put_u8(&w, m->ok ? 1 : 0);
        put_string(&w, m->text, PROTO_MAX_TEXT);
        break;
    case PROTO_DESKTOP_READY:
        if (!token_is_valid(m->token))
            return -EINVAL;
        put_string(&w, m->text, PROTO_MAX_TEXT);
        put_u64(&w, m->id);
        put_u8(&w, m->flags);
        put_string(&w, m->token, PROTO_TOKEN_LEN);
        break;
    case PROTO_DESKTOP_STATUS:
    case PROTO_CLOSE:
    case PROTO_NOTICE:
        put_string(&w, m->text, PROTO_MAX_TEXT);
        break;
    case PROTO_ACTIVITY:
        put_u32(&w, m->idle_ms);
        put_u64(&w, m->bytes_to_client);
        put_u64(&w, m->bytes_from_client);
        break;
    case PROTO_REATTACH:
        if (!token_is_valid(m->token))
            return -EINVAL;
        put_u64(&w, m->id);
        put_string(&w, m->token, PROTO_TOKEN_LEN);
        break;
    }
    if (w.overflow || w.len > PROTO_MAX_PACKET)
        return -EINVAL;
    size_t body = w.len - PROTO_HEADER_SIZE;
    buf[2] = (uint8_t)(body & 0xff);
    buf[3] = (uint8_t)(body >> 8);
    return (int)w.len;
}

/* --- decoding: every read is bounds-checked; any violation poisons the reader --- */

struct reader {
    const uint8_t *buf;
    size_t len, pos;
    bool bad;
};

static const uint8_t *get_bytes(struct reader *r, size_t n)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->buf + r->pos;
    r->pos += n;
    return p;
}

static uint8_t get_u8(struct reader *r)
{
    const uint8_t *p = get_bytes(r, 1);
    return p ? p[0] : 0;
}

static uint16_t get_u16(struct reader *r)
{
    const uint8_t *p = get_bytes(r, 2);
    return p ? (uint16_t)(p[0] | (p[1] << 8)) : 0;
}

static uint32_t get_u32(struct reader *r)
{
    uint32_t lo = get_u16(r);
    return lo | ((uint32_t)get_u16(r) << 16);
}

static uint64_t get_u64(struct reader *r)
{
    uint64_t lo = get_u32(r);
    return lo | ((uint64_t)get_u32(r) << 32);
}

/* Reads a string into field (cap bytes + NUL). Strings with NUL bytes are malformed. */
static void get_string(struct reader *r, char *field, size_t cap)
{
    uint16_t n = get_u16(r);
    if (n > cap) {
        r->bad = true;
        return;
    }
    const uint8_t *p = get_bytes(r, n);
    if (!p)
        return;
    if (memchr(p, '\0', n)) {
        r->bad = true;
        return;
    }
    memcpy(field, p, n);
    field[n] = '\0';
}

int proto_decode(const uint8_t *buf, size_t len, int fd, enum proto_sender sender,
                 struct proto_message *m)
{
    if (len < PROTO_HEADER_SIZE || len > PROTO_MAX_PACKET)
        return -EBADMSG;
    if (buf[0] != PROTO_VERSION)
        return -EPROTONOSUPPORT;
    unsigned type = buf[1];
    if (!proto_type_known(type) || proto_types[type].sender != sender ||
        proto_types[type].has_fd != (fd >= 0))
        return -EBADMSG;
    size_t body = (size_t)buf[2] | ((size_t)buf[3] << 8);
    if (body != len - PROTO_HEADER_SIZE)
        return -EBADMSG;

    proto_message_init(m, (enum proto_type)type);
    struct reader r = {.buf = buf, .len = len, .pos = PROTO_HEADER_SIZE};
    switch (m->type) {
    case PROTO_AUTH_REQUEST:
        get_string(&r, m->username, PROTO_MAX_USERNAME);
        get_string(&r, m->password, PROTO_MAX_PASSWORD);
        break;
    case PROTO_AUTH_RESULT:
    case PROTO_REATTACH_RESULT: {
        uint8_t ok = get_u8(&r);
        if (ok > 1)
            r.bad = true;
        m->ok = ok == 1;
        get_string(&r, m->text, PROTO_MAX_TEXT);
        break;
    }
    case PROTO_DESKTOP_READY:
        get_string(&r, m->text, PROTO_MAX_TEXT);
        m->id = get_u64(&r);
        m->flags = get_u8(&r);
        if (m->flags & ~PROTO_FLAG_VIEW_ONLY)
            r.bad = true;
        get_string(&r, m->token, PROTO_TOKEN_LEN);
        r.bad |= !token_is_valid(m->token);
        break;
    case PROTO_DESKTOP_STATUS:
    case PROTO_CLOSE:
    case PROTO_NOTICE:
        get_string(&r, m->text, PROTO_MAX_TEXT);
        break;
    case PROTO_ACTIVITY:
        m->idle_ms = get_u32(&r);
        m->bytes_to_client = get_u64(&r);
        m->bytes_from_client = get_u64(&r);
        break;
    case PROTO_REATTACH:
        m->id = get_u64(&r);
        get_string(&r, m->token, PROTO_TOKEN_LEN);
        r.bad |= !token_is_valid(m->token);
        break;
    }
    if (r.bad || r.pos != r.len) {
        proto_message_done(m); /* wipes a partly decoded password; fd is not ours yet */
        return -EBADMSG;
    }
    m->fd = fd;
    return 0;
}

int proto_send(int sock, const struct proto_message *m)
{
    uint8_t buf[PROTO_MAX_PACKET];
    int len = proto_encode(m, buf, sizeof(buf));
    if (len < 0)
        return len;

    struct iovec iov = {.iov_base = buf, .iov_len = (size_t)len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    union {
        struct cmsghdr align;
        uint8_t buf[CMSG_SPACE(sizeof(int))];
    } control;
    if (proto_types[m->type].has_fd) {
        if (m->fd < 0)
            return -EINVAL;
        memset(&control, 0, sizeof(control));
        mh.msg_control = control.buf;
        mh.msg_controllen = sizeof(control.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &m->fd, sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    explicit_bzero(buf, sizeof(buf));
    if (n < 0)
        return -errno;
    return n == len ? 0 : -EIO;
}

/* Room for a few descriptors so that a peer sending several is seen and all of them
 * closed, rather than silently truncated by the kernel. */
#define PROTO_MAX_RECV_FDS 4

int proto_recv(int sock, enum proto_sender sender, struct proto_message *m)
{
    uint8_t buf[PROTO_MAX_PACKET + 1];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    union {
        struct cmsghdr align;
        uint8_t buf[CMSG_SPACE(PROTO_MAX_RECV_FDS * sizeof(int))];
    } control;
    struct msghdr mh = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;

    /* Collect every fd that came along, whatever the packet says. */
    int fds[PROTO_MAX_RECV_FDS];
    size_t nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k && nfds < PROTO_MAX_RECV_FDS; i++)
            memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }

    int r;
    if (n == 0 && nfds == 0)
        r = -EPIPE;
    else if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || nfds > 1)
        r = -EBADMSG;
    else
        r = proto_decode(buf, (size_t)n, nfds == 1 ? fds[0] : -1, sender, m);
    explicit_bzero(buf, sizeof(buf));
    if (r < 0)
        for (size_t i = 0; i < nfds; i++)
            safe_close(fds[i]);
    return r;
}
