#include "handoff.h"

#include <string.h>

#include "log.h"

#define RFB_MSG_SET_PIXEL_FORMAT 0
#define RFB_MSG_SET_ENCODINGS 2
#define RFB_MSG_FB_UPDATE_REQUEST 3
#define RFB_SERVER_INIT_SIZE 24

size_t handoff_default_encodings(int32_t *encodings, int quality, int compress)
{
    size_t n = 0;
    encodings[n++] = RFB_ENCODING_TIGHT;
    encodings[n++] = RFB_ENCODING_ZRLE;
    encodings[n++] = RFB_ENCODING_HEXTILE;
    encodings[n++] = RFB_ENCODING_COPYRECT;
    encodings[n++] = RFB_ENCODING_RAW;
    encodings[n++] = RFB_ENCODING_QUALITY_LEVEL0 + quality;
    encodings[n++] = RFB_ENCODING_COMPRESS_LEVEL0 + compress;
    encodings[n++] = RFB_ENCODING_LAST_RECT;
    encodings[n++] = RFB_ENCODING_DESKTOP_SIZE;
    encodings[n++] = RFB_ENCODING_QEMU_EXT_KEY;
    return n;
}

static int send_encodings(const struct rfb_stream *upstream, const int32_t *encodings, size_t n,
                          uint64_t deadline_ms)
{
    uint8_t msg[4 + 4 * HANDOFF_MAX_ENCODINGS];
    if (n > HANDOFF_MAX_ENCODINGS)
        return -EINVAL;
    msg[0] = RFB_MSG_SET_ENCODINGS;
    msg[1] = 0;
    rfb_put_u16(msg + 2, (uint16_t)n);
    for (size_t i = 0; i < n; i++)
        rfb_put_u32(msg + 4 + 4 * i, (uint32_t)encodings[i]);
    return rfb_stream_write(upstream, msg, 4 + 4 * n, deadline_ms);
}

int handoff_serve(int local_fd, const struct rfb_stream *upstream, const int32_t *encodings,
                  size_t n_encodings, uint64_t deadline_ms, struct handoff_result *result)
{
    struct rfb_stream local = rfb_stream_from_fd(&local_fd);
    uint8_t buf[RFB_SERVER_INIT_SIZE];
    int r;

    /* Our side of the local handshake: version, security None, SecurityResult ok. */
    r = rfb_stream_write(&local, "RFB 003.008\n", 12, deadline_ms);
    if (r < 0)
        return r;
    r = rfb_stream_read(&local, buf, 12, deadline_ms);
    if (r < 0)
        return r;
    if (memcmp(buf, "RFB 003.008\n", 12) != 0) {
        log_debug("handoff: libvncclient answered an unexpected protocol version");
        return -EPROTO;
    }
    static const uint8_t types[2] = {1, 1};
    r = rfb_stream_write(&local, types, sizeof(types), deadline_ms);
    if (r < 0)
        return r;
    r = rfb_stream_read(&local, buf, 1, deadline_ms);
    if (r < 0)
        return r;
    if (buf[0] != 1) {
        log_debug("handoff: libvncclient chose security type %u", buf[0]);
        return -EPROTO;
    }
    static const uint8_t ok[4] = {0, 0, 0, 0};
    r = rfb_stream_write(&local, ok, sizeof(ok), deadline_ms);
    if (r < 0)
        return r;

    /* ClientInit (shared flag) up, ServerInit down. */
    r = rfb_stream_read(&local, buf, 1, deadline_ms);
    if (r < 0)
        return r;
    r = rfb_stream_write(upstream, buf, 1, deadline_ms);
    if (r < 0)
        return r;
    r = rfb_stream_read(upstream, buf, RFB_SERVER_INIT_SIZE, deadline_ms);
    if (r < 0)
        return r;
    uint16_t w = rfb_get_u16(buf), h = rfb_get_u16(buf + 2);
    uint32_t name_len = rfb_get_u32(buf + 20);
    if (w == 0 || h == 0 || w > HANDOFF_MAX_FB_SIDE || h > HANDOFF_MAX_FB_SIDE) {
        log_debug("handoff: server announced a %ux%u framebuffer", w, h);
        return -EPROTO;
    }
    if (name_len > HANDOFF_MAX_NAME) {
        log_debug("handoff: server announced a %u byte desktop name", name_len);
        return -EPROTO;
    }
    uint8_t init[RFB_SERVER_INIT_SIZE + HANDOFF_MAX_NAME];
    memcpy(init, buf, RFB_SERVER_INIT_SIZE);
    r = rfb_stream_read(upstream, init + RFB_SERVER_INIT_SIZE, name_len, deadline_ms);
    if (r < 0)
        return r;
    r = rfb_stream_write(&local, init, RFB_SERVER_INIT_SIZE + name_len, deadline_ms);
    if (r < 0)
        return r;
    if (result)
        *result = (struct handoff_result){.width = w, .height = h};

    /* libvncclient's first messages: SetPixelFormat (forwarded), SetEncodings (replaced).
     * rfbInitClient sends exactly these two before its first update request. */
    for (;;) {
        r = rfb_stream_read(&local, buf, 1, deadline_ms);
        if (r < 0)
            return r;
        switch (buf[0]) {
        case RFB_MSG_SET_PIXEL_FORMAT:
            r = rfb_stream_read(&local, buf + 1, 19, deadline_ms);
            if (r < 0)
                return r;
            r = rfb_stream_write(upstream, buf, 20, deadline_ms);
            if (r < 0)
                return r;
            break;
        case RFB_MSG_SET_ENCODINGS: {
            r = rfb_stream_read(&local, buf + 1, 3, deadline_ms);
            if (r < 0)
                return r;
            uint16_t n = rfb_get_u16(buf + 2);
            if (n > HANDOFF_MAX_ENCODINGS)
                return -EPROTO;
            uint8_t discard[4 * HANDOFF_MAX_ENCODINGS];
            r = rfb_stream_read(&local, discard, 4 * (size_t)n, deadline_ms);
            if (r < 0)
                return r;
            return send_encodings(upstream, encodings, n_encodings, deadline_ms);
        }
        default:
            log_debug("handoff: libvncclient sent message type %u before SetEncodings", buf[0]);
            return -EPROTO;
        }
    }
}
