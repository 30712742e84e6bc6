#pragma once
/*
 * A byte stream with deadlines, so that the RFB handshake code reads the same whether it
 * talks to a plain socket (before VeNCrypt starts TLS, and in unit tests) or to the TLS
 * connection (display/tls.h). Both functions move exactly len bytes before the monotonic
 * deadline and return 0, -ETIMEDOUT, -EPIPE (peer closed), or another negative errno.
 */
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct rfb_stream {
    int (*read_full)(void *userdata, void *buf, size_t len, uint64_t deadline_ms);
    int (*write_full)(void *userdata, const void *buf, size_t len, uint64_t deadline_ms);
    void *userdata;
};

static inline int rfb_stream_read(const struct rfb_stream *s, void *buf, size_t len,
                                  uint64_t deadline_ms)
{
    return s->read_full(s->userdata, buf, len, deadline_ms);
}

static inline int rfb_stream_write(const struct rfb_stream *s, const void *buf, size_t len,
                                   uint64_t deadline_ms)
{
    return s->write_full(s->userdata, buf, len, deadline_ms);
}

static inline int rfb_stream_fd_read(void *userdata, void *buf, size_t len, uint64_t deadline_ms)
{
    return fd_read_full(*(const int *)userdata, buf, len, deadline_ms);
}

static inline int rfb_stream_fd_write(void *userdata, const void *buf, size_t len,
                                      uint64_t deadline_ms)
{
    return fd_write_full(*(const int *)userdata, buf, len, deadline_ms);
}

/* A stream over *fd (which must outlive the stream). */
static inline struct rfb_stream rfb_stream_from_fd(int *fd)
{
    return (struct rfb_stream){rfb_stream_fd_read, rfb_stream_fd_write, fd};
}

/* Big-endian helpers for the wire. */
static inline uint32_t rfb_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t rfb_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void rfb_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void rfb_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
