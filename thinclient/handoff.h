#pragma once
/*
 * Hands an authenticated RFB stream to libvncclient. vdi-client did the real security
 * handshake itself (handshake.h); libvncclient gets the local end of a socketpair, and on
 * the other end handoff_serve() plays a minimal RFB 3.8 server toward it:
 *
 *   L: "RFB 003.008\n"           libvncclient: "RFB 003.008\n"
 *   L: u8 1, u8 1 (None)         libvncclient: u8 1
 *   L: SecurityResult u32 0
 *
 * then forwards the real exchange between libvncclient and the server (the upstream
 * stream, i.e. the TLS connection): ClientInit up, ServerInit down (the name length is
 * capped), and libvncclient's SetPixelFormat up. libvncclient's SetEncodings is replaced by
 * the caller's list: libvncclient 0.9.14 always announces ExtDesktopSize (-308), whose
 * screen-id-0 answer it then rejects (ENVIRONMENT.md), and it cannot be told to ask for
 * QEMU extended key events only when we want them. Rewriting the one message before the
 * relay starts is race-free, unlike sending a second SetEncodings after rfbInitClient.
 *
 * After handoff_serve() returns 0 the caller relays bytes both ways unchanged
 * (tls_relay_run, see relay.h).
 */
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

#define HANDOFF_MAX_NAME 4096      /* desktop name bytes accepted in ServerInit */
#define HANDOFF_MAX_ENCODINGS 1024 /* encodings accepted in the client's SetEncodings */
#define HANDOFF_MAX_FB_SIDE 16384  /* framebuffer width/height accepted in ServerInit */

/* RFB encoding numbers vdi-client uses. */
#define RFB_ENCODING_RAW 0
#define RFB_ENCODING_COPYRECT 1
#define RFB_ENCODING_HEXTILE 5
#define RFB_ENCODING_TIGHT 7
#define RFB_ENCODING_ZRLE 16
#define RFB_ENCODING_COMPRESS_LEVEL0 (-256)
#define RFB_ENCODING_QUALITY_LEVEL0 (-32)
#define RFB_ENCODING_LAST_RECT (-224)
#define RFB_ENCODING_DESKTOP_SIZE (-223)
#define RFB_ENCODING_QEMU_EXT_KEY (-258)
#define RFB_ENCODING_EXT_DESKTOP_SIZE (-308)
#define RFB_ENCODING_KEYBOARD_LED (-261)

struct handoff_result {
    uint16_t width, height; /* from the server's ServerInit */
};

/* Runs the exchange above on local_fd (libvncclient's peer) and upstream, all before
 * deadline_ms. Returns 0, -EPROTO (libvncclient or the server sent something unexpected,
 * or a cap was exceeded), or an I/O error from either side. */
int handoff_serve(int local_fd, const struct rfb_stream *upstream, const int32_t *encodings,
                  size_t n_encodings, uint64_t deadline_ms, struct handoff_result *result);

/* Fills encodings (room for HANDOFF_DEFAULT_ENCODINGS entries) with the list vdi-client
 * asks for: Tight (with JPEG quality and compression levels), ZRLE, Hextile, CopyRect,
 * Raw, LastRect, DesktopSize and QEMU extended key events. Returns the count. quality and
 * compress are 0..9. */
#define HANDOFF_DEFAULT_ENCODINGS 10
size_t handoff_default_encodings(int32_t *encodings, int quality, int compress);
