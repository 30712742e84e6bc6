#include "extclip.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "cut-text.h"

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Inflates exactly len bytes into out from the stream. Returns 0, or -EBADMSG when the
 * stream is broken or ends first. */
static int inflate_exact(z_stream *z, uint8_t *out, size_t len)
{
    z->next_out = out;
    z->avail_out = (uInt)len;
    while (z->avail_out > 0) {
        int r = inflate(z, Z_SYNC_FLUSH);
        if (r == Z_STREAM_END && z->avail_out > 0)
            return -EBADMSG;
        if (r != Z_OK && r != Z_STREAM_END)
            return -EBADMSG; /* Z_BUF_ERROR here: input used up before the data */
    }
    return 0;
}

/* The text of a provide: the first record of the zlib stream (text is format bit 0). */
static int parse_provided_text(const uint8_t *data, size_t len, size_t text_max,
                               struct extclip_msg *m)
{
    z_stream z = {.next_in = (Bytef *)data, .avail_in = (uInt)len};
    if (inflateInit(&z) != Z_OK)
        return -ENOMEM;
    uint8_t size_be[4];
    int r = inflate_exact(&z, size_be, sizeof(size_be));
    uint8_t *raw = NULL;
    if (r >= 0) {
        size_t size = get_u32(size_be);
        /* One byte more than text_max for the terminating NUL most senders add. */
        if (size > text_max + 1)
            r = -E2BIG;
        else if (!(raw = malloc(size ? size : 1)))
            r = -ENOMEM;
        else
            r = inflate_exact(&z, raw, size);
        if (r >= 0 && size == text_max + 1 && raw[size - 1] != '\0')
            r = -E2BIG;
        if (r >= 0) {
            m->text = cut_text_utf8_clean((const char *)raw, size, text_max, &m->text_len);
            if (!m->text)
                r = -ENOMEM;
        }
    }
    free(raw);
    inflateEnd(&z);
    return r;
}

int extclip_parse(const uint8_t *payload, size_t len, size_t text_max, struct extclip_msg *ret)
{
    struct extclip_msg m = {0};
    if (len < 4 || len > EXTCLIP_PAYLOAD_MAX(text_max))
        return len < 4 ? -EBADMSG : -E2BIG;
    m.flags = get_u32(payload);
    /* Caps also has the provide bit set (the actions it takes): only a provide has data. */
    if ((m.flags & EXTCLIP_PROVIDE) && (m.flags & EXTCLIP_TEXT) && !(m.flags & EXTCLIP_CAPS)) {
        int r = parse_provided_text(payload + 4, len - 4, text_max, &m);
        if (r < 0)
            return r;
    }
    *ret = m;
    return 0;
}

void extclip_msg_done(struct extclip_msg *m)
{
    free(m->text);
    m->text = NULL;
    m->text_len = 0;
}

/* A message with room for payload_len bytes after its 8-byte header, which is filled in. */
static uint8_t *msg_new(uint8_t msg_type, size_t payload_len)
{
    uint8_t *msg = calloc(1, 8 + payload_len);
    if (msg) {
        msg[0] = msg_type;
        put_u32(msg + 4, (uint32_t)(-(int32_t)payload_len));
    }
    return msg;
}

int extclip_build_action(uint8_t msg_type, uint32_t flags, uint8_t **ret, size_t *ret_len)
{
    uint8_t *msg = msg_new(msg_type, 4);
    if (!msg)
        return -ENOMEM;
    put_u32(msg + 8, flags);
    *ret = msg;
    *ret_len = 12;
    return 0;
}

int extclip_build_caps(uint8_t msg_type, uint32_t actions, uint32_t text_max, uint8_t **ret,
                       size_t *ret_len)
{
    uint8_t *msg = msg_new(msg_type, 8);
    if (!msg)
        return -ENOMEM;
    put_u32(msg + 8, EXTCLIP_CAPS | actions | EXTCLIP_TEXT);
    put_u32(msg + 12, text_max);
    *ret = msg;
    *ret_len = 16;
    return 0;
}

int extclip_build_provide(uint8_t msg_type, const char *text, size_t len, uint8_t **ret,
                          size_t *ret_len)
{
    if (len > UINT32_MAX / 2)
        return -EINVAL;
    uint8_t *record = malloc(4 + len);
    if (!record)
        return -ENOMEM;
    put_u32(record, (uint32_t)len);
    memcpy(record + 4, text, len);
    uLong bound = compressBound((uLong)(4 + len));
    uint8_t *msg = msg_new(msg_type, 4 + bound);
    if (!msg) {
        free(record);
        return -ENOMEM;
    }
    uLongf zlen = bound;
    int z = compress(msg + 12, &zlen, record, (uLong)(4 + len));
    free(record);
    if (z != Z_OK) {
        free(msg);
        return -ENOMEM;
    }
    put_u32(msg + 4, (uint32_t)(-(int32_t)(4 + zlen)));
    put_u32(msg + 8, EXTCLIP_PROVIDE | EXTCLIP_TEXT);
    *ret = msg;
    *ret_len = 12 + zlen;
    return 0;
}
