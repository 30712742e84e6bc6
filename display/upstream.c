/*
 * The proxy's upstream side: libvncclient on the fd to QEMU's VNC server (from
 * virDomainOpenGraphicsFD with SKIPAUTH, so security type None). One thread, the only
 * reader and the only writer of that connection (libvncclient's writes are unlocked):
 * it decodes updates into its own framebuffer, copies changed rectangles into the
 * downstream screen row by row (same 32 bpp pixel format on both sides) and forwards
 * the input events that libvncserver's client thread queued, and the clipboard both ways
 * (README "Clipboard"): QEMU's extended clipboard (UTF-8, extclip.h) when it offers it,
 * plain Latin-1 cut text otherwise. ServerCutText is read here, not by libvncclient
 * 0.9.14, which knows no extended clipboard and ends the connection on its negative length;
 * so are two pseudo-rectangles it mishandles while the display changes size at attach
 * (read_ext_desktop_size(), read_ext_key_ack()).
 *
 * libvncclient 0.9.14 workarounds (ENVIRONMENT.md): our own SetEncodings right after the
 * handshake, without ExtDesktopSize (-308) and LED state (-261), so QEMU announces resizes
 * with plain DesktopSize; HandleRFBServerMessage is repeated while client->buffered holds
 * bytes that poll() cannot see; readTimeout on a non-blocking socket bounds a stalled read.
 */
#include "proxy-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rfb/rfbclient.h>

#include "cut-text.h"
#include "extclip.h"
#include "log.h"
#include "util.h"

#define UPSTREAM_INPUT_BATCH 64

struct upstream {
    struct proxy *p;
    rfbClient *client;
    uint8_t *fb; /* client->frameBuffer; libvncclient never frees it */
    bool live;   /* copying into the downstream screen */
    bool stopping; /* atomic: upstream_free() is stopping the thread; failures are expected */
    bool vm_extclip; /* the VM announced the extended clipboard: text goes to it that way */
    pthread_t thread;
    bool thread_started;
    int stop_fd;
    char error[PROXY_REASON_MAX]; /* set by callbacks before they make libvncclient fail */
};

static int upstream_tag;

static struct upstream *upstream_of(rfbClient *c)
{
    return rfbClientGetClientData(c, &upstream_tag);
}

/* ServerInit and every DesktopSize: c->width/height are the VM's new size. */
static rfbBool on_malloc_framebuffer(rfbClient *c)
{
    struct upstream *u = upstream_of(c);
    size_t bytes;
    int r = proxy_fb_size(c->width, c->height, &bytes);
    if (r < 0) {
        snprintf(u->error, sizeof(u->error), "display size %dx%d out of range", c->width,
                 c->height);
        return FALSE;
    }
    uint8_t *fb = calloc(1, bytes);
    if (!fb) {
        snprintf(u->error, sizeof(u->error), "out of memory for %dx%d", c->width, c->height);
        return FALSE;
    }
    free(u->fb);
    u->fb = fb;
    c->frameBuffer = fb;

    if (u->live) {
        pthread_mutex_lock(&u->p->fb_lock);
        r = proxy_resize_locked(u->p, c->width, c->height);
        pthread_mutex_unlock(&u->p->fb_lock);
        if (r < 0) {
            snprintf(u->error, sizeof(u->error), "cannot resize to %dx%d", c->width, c->height);
            return FALSE;
        }
    }
    return TRUE;
}

static void on_framebuffer_update(rfbClient *c, int x, int y, int w, int h)
{
    struct upstream *u = upstream_of(c);
    struct proxy *p = u->p;

    if (!u->live || x < 0 || y < 0 || w <= 0 || h <= 0 || (long)x + w > c->width ||
        (long)y + h > c->height)
        return;

    pthread_mutex_lock(&p->fb_lock);
    if (p->upstream_live && p->width == c->width && p->height == c->height) {
        size_t stride = (size_t)c->width * PROXY_BYTES_PER_PIXEL;
        size_t off = (size_t)y * stride + (size_t)x * PROXY_BYTES_PER_PIXEL;
        size_t len = (size_t)w * PROXY_BYTES_PER_PIXEL;
        /* Rows under the notice banner: the VM's pixels go to notice_under (same layout as
         * the framebuffer's first rows); the banner already in fb stays, unchanged, so
         * those rows are not sent again. */
        int first_visible = y > p->notice_h ? y : p->notice_h;
        for (int row = y; row < y + h; row++, off += stride)
            memcpy((row < p->notice_h ? p->notice_under : p->fb) + off, u->fb + off, len);
        if (first_visible < y + h)
            rfbMarkRectAsModified(p->screen, x, first_visible, x + w, y + h);
    }
    pthread_mutex_unlock(&p->fb_lock);
}

/* QEMU's pointer shape (RichCursor): pixels in our format in rcSource, one mask byte per
 * pixel in rcMask. Handed to the clients that draw the pointer themselves. */
/* libvncclient 0.9.14 overwrites rcMask without freeing it at the next shape and frees
 * neither at cleanup; it does not use them after this callback, so we free them here. */
static void release_shape_buffers(rfbClient *c)
{
    free(c->rcSource);
    free(c->rcMask);
    c->rcSource = c->rcMask = NULL;
}

static void on_cursor_shape(rfbClient *c, int xhot, int yhot, int w, int h, int bpp)
{
    struct upstream *u = upstream_of(c);
    if (w <= 0 || h <= 0) {
        proxy_set_cursor(u->p, NULL);
        release_shape_buffers(c);
        return;
    }
    if (w > 256 || h > 256 || bpp != PROXY_BYTES_PER_PIXEL || !c->rcSource || !c->rcMask ||
        xhot < 0 || yhot < 0 || xhot >= w || yhot >= h) {
        release_shape_buffers(c);
        return;
    }
    size_t row_bytes = ((size_t)w + 7) / 8;
    rfbCursorPtr cur = calloc(1, sizeof(*cur));
    if (!cur) {
        release_shape_buffers(c);
        return;
    }
    cur->richSource = malloc((size_t)w * (size_t)h * PROXY_BYTES_PER_PIXEL);
    cur->mask = calloc(row_bytes, (size_t)h);
    if (!cur->richSource || !cur->mask) {
        free(cur->richSource);
        free(cur->mask);
        free(cur);
        release_shape_buffers(c);
        return;
    }
    memcpy(cur->richSource, c->rcSource, (size_t)w * (size_t)h * PROXY_BYTES_PER_PIXEL);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (c->rcMask[(size_t)y * (size_t)w + (size_t)x])
                cur->mask[(size_t)y * row_bytes + (size_t)x / 8] |= (uint8_t)(0x80 >> (x % 8));
    cur->width = (unsigned short)w;
    cur->height = (unsigned short)h;
    cur->xhot = (unsigned short)xhot;
    cur->yhot = (unsigned short)yhot;
    cur->cleanup = cur->cleanupRichSource = cur->cleanupMask = cur->cleanupSource = TRUE;
    proxy_set_cursor(u->p, cur);
    release_shape_buffers(c);
}

static void on_bell(rfbClient *c)
{
    rfbSendBell(upstream_of(c)->p->screen);
}

/* ---- clipboard ---- */

static bool write_and_free(rfbClient *c, uint8_t *msg, size_t len)
{
    bool ok = WriteToRFBServer(c, (const char *)msg, (unsigned int)len);
    free(msg);
    return ok;
}

static bool send_extclip_action(rfbClient *c, uint32_t flags)
{
    uint8_t *msg;
    size_t len;
    return extclip_build_action(rfbClientCutText, flags, &msg, &len) < 0 ||
           write_and_free(c, msg, len);
}

/* The client's clipboard (UTF-8), if some waits. Returns false when the write failed. */
static bool send_cut_text(struct upstream *u)
{
    size_t len;
    _cleanup_(freep) char *text = proxy_cut_to_vm_take(u->p, &len);
    if (!text)
        return true;
    log_debug("proxy: clipboard to the desktop bytes=%zu%s", len, u->vm_extclip ? " extended" : "");
    if (u->vm_extclip) {
        /* Notify makes the text QEMU's clipboard (and the guest agent's, which is told it
         * changed); provide right after gives the data, so no request needs answering. */
        uint8_t *msg;
        size_t msg_len;
        if (!send_extclip_action(u->client, EXTCLIP_NOTIFY | EXTCLIP_TEXT))
            return false;
        return extclip_build_provide(rfbClientCutText, text, len, &msg, &msg_len) < 0 ||
               write_and_free(u->client, msg, msg_len);
    }
    size_t n;
    _cleanup_(freep) char *latin1 = cut_text_utf8_to_latin1(text, len, PROXY_CUT_TEXT_MAX, &n);
    return !latin1 || SendClientCutText(u->client, latin1, (int)n);
}

/* An extended clipboard message from the VM. A malformed or oversized one is dropped (the
 * stream stays in step); returns false only when a reply could not be written. */
static bool handle_extclip(struct upstream *u, const uint8_t *payload, size_t len)
{
    struct extclip_msg m;
    int r = extclip_parse(payload, len, PROXY_CUT_TEXT_MAX, &m);
    if (r < 0) {
        log_info("proxy: clipboard from the desktop dropped: %s", strerror(-r));
        return true;
    }
    bool ok = true;
    if (m.flags & EXTCLIP_CAPS) {
        /* We send notify + provide and answer notify with request: the VM must take all. */
        const uint32_t needed = EXTCLIP_TEXT | EXTCLIP_NOTIFY | EXTCLIP_PROVIDE | EXTCLIP_REQUEST;
        u->vm_extclip = (m.flags & needed) == needed;
        if (u->vm_extclip) {
            uint8_t *msg;
            size_t msg_len;
            ok = extclip_build_caps(rfbClientCutText,
                                    EXTCLIP_NOTIFY | EXTCLIP_PROVIDE | EXTCLIP_REQUEST,
                                    PROXY_CUT_TEXT_MAX, &msg, &msg_len) < 0 ||
                 write_and_free(u->client, msg, msg_len);
        }
    } else if ((m.flags & EXTCLIP_NOTIFY) && (m.flags & EXTCLIP_TEXT)) {
        ok = send_extclip_action(u->client, EXTCLIP_REQUEST | EXTCLIP_TEXT);
    } else if (m.text) {
        log_debug("proxy: clipboard from the desktop bytes=%zu extended", m.text_len);
        proxy_cut_from_vm(u->p, m.text, m.text_len);
    }
    extclip_msg_done(&m);
    return ok;
}

/* Reads and drops n bytes (a message too large to keep), staying in step with the stream. */
static bool skip_bytes(rfbClient *c, size_t n)
{
    char buf[4096];
    while (n > 0) {
        size_t k = n < sizeof(buf) ? n : sizeof(buf);
        if (!ReadFromRFBServer(c, buf, (unsigned int)k))
            return false;
        n -= k;
    }
    return true;
}

/* One ServerCutText from the VM: plain (Latin-1) or extended (negative length). Returns
 * false when reading failed (readTimeout bounds each read). */
static bool read_cut_text(struct upstream *u)
{
    rfbClient *c = u->client;
    uint8_t hdr[8]; /* type, 3 padding, s32 length */
    if (!ReadFromRFBServer(c, (char *)hdr, sizeof(hdr)))
        return false;
    int32_t length =
        (int32_t)((uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | (uint32_t)hdr[6] << 8 | hdr[7]);
    bool extended = length < 0;
    size_t n = extended ? (size_t)(-(int64_t)length) : (size_t)length;
    size_t max = extended ? EXTCLIP_PAYLOAD_MAX(PROXY_CUT_TEXT_MAX) : PROXY_CUT_TEXT_MAX;
    if (n > max) {
        log_info("proxy: clipboard from the desktop dropped: %zu bytes, over the limit", n);
        return skip_bytes(c, n);
    }
    _cleanup_(freep) uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return skip_bytes(c, n);
    if (!ReadFromRFBServer(c, (char *)buf, (unsigned int)n))
        return false;
    if (extended)
        return handle_extclip(u, buf, n);
    size_t len;
    _cleanup_(freep) char *utf8 =
        cut_text_latin1_to_utf8((const char *)buf, n, PROXY_CUT_TEXT_MAX, &len);
    if (utf8) {
        log_debug("proxy: clipboard from the desktop bytes=%zu", len);
        proxy_cut_from_vm(u->p, utf8, len);
    }
    return true;
}

/* Makes libvncclient's read buffer (public in rfbclient.h) hold at least n bytes of the
 * stream, reading more as libvncclient itself would, so that the start of the next
 * message can be looked at before deciding who reads it. Waits at most the read timeout.
 * Returns 0, -ECONNRESET at the end of the stream, -ETIMEDOUT or -errno. */
static int buffer_at_least(rfbClient *c, unsigned n)
{
    if (c->buffered >= n)
        return 0;
    memmove(c->buf, c->bufoutptr, c->buffered);
    c->bufoutptr = c->buf;
    uint64_t deadline = now_ms() + PROXY_UPSTREAM_READ_TIMEOUT_S * 1000;
    while (c->buffered < n) {
        ssize_t k = read(c->sock, c->buf + c->buffered, RFB_BUF_SIZE - c->buffered);
        if (k > 0) {
            c->buffered += (unsigned)k;
            continue;
        }
        if (k == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        uint64_t now = now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->sock, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) < 0 && errno != EINTR)
            return -errno;
    }
    return 0;
}

#define EXT_DESKTOP_SIZE_ENCODING (-308)

/* The encoding of the next message when it is a FramebufferUpdate with exactly one
 * rectangle, as QEMU sends its pseudo-rectangles: header (type, padding, u16 count) and
 * rectangle (u16 x, y, w, h, s32 encoding). Returns 1 and *encoding, 0 for any other
 * update (one without rectangles is not waited past), or -errno. */
static int next_lone_rectangle(rfbClient *c, int32_t *encoding)
{
    int r = buffer_at_least(c, 4);
    if (r < 0)
        return r;
    const uint8_t *b = (const uint8_t *)c->bufoutptr;
    if ((b[2] << 8 | b[3]) != 1)
        return 0;
    r = buffer_at_least(c, 16);
    if (r < 0)
        return r;
    b = (const uint8_t *)c->bufoutptr;
    *encoding =
        (int32_t)((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
    return 1;
}

/* QEMU's new display size as an ExtendedDesktopSize rectangle, which it sends when it
 * changed after ServerInit but before our own SetEncodings (libvncclient's asks for it).
 * libvncclient 0.9.14 ignores QEMU's screen id 0 and then fails on the first rectangle of
 * the new size, so it is read here, and applied as a DesktopSize would be. */
static bool read_ext_desktop_size(struct upstream *u)
{
    rfbClient *c = u->client;
    uint8_t hdr[4 + 12 + 4]; /* update header, rectangle, screen count and padding */
    if (!ReadFromRFBServer(c, (char *)hdr, sizeof(hdr)) || !skip_bytes(c, (size_t)hdr[16] * 16))
        return false;
    int status = hdr[6] << 8 | hdr[7]; /* y: 0 unless refusing a client's request */
    int w = hdr[8] << 8 | hdr[9], h = hdr[10] << 8 | hdr[11];
    if (status != 0 || (w == c->width && h == c->height))
        return true;
    log_debug("proxy: display size %dx%d (extended desktop size)", w, h);
    c->width = w;
    c->height = h;
    c->updateRect.x = c->updateRect.y = 0;
    c->updateRect.w = w;
    c->updateRect.h = h;
    return on_malloc_framebuffer(c) && SendFramebufferUpdateRequest(c, 0, 0, w, h, FALSE);
}

/* QEMU's acknowledgement of extended key events: a rectangle without data, sized as its
 * display is now, which may not be the size we know yet (the resize is announced after
 * it). libvncclient 0.9.14 checks that size before the encoding and would fail, so the
 * acknowledgement is taken here: the bit SupportsClient2Server(rfbQemuEvent) reads. */
static bool read_ext_key_ack(struct upstream *u)
{
    rfbClient *c = u->client;
    uint8_t hdr[4 + 12];
    if (!ReadFromRFBServer(c, (char *)hdr, sizeof(hdr)))
        return false;
    c->supportedMessages.client2server[rfbQemuEvent / 8] |= (uint8_t)(1 << (rfbQemuEvent % 8));
    return true;
}

/* The next message from the VM: cut text and the two pseudo-rectangles above here, the
 * rest in libvncclient. Returns false when reading failed or the VM broke the protocol. */
static bool handle_server_message(struct upstream *u)
{
    rfbClient *c = u->client;
    int32_t encoding = 0; /* of a lone rectangle; 0 (Raw) is not one we take */
    int r = buffer_at_least(c, 1);
    if (r >= 0 && (uint8_t)c->bufoutptr[0] == rfbServerCutText)
        return read_cut_text(u);
    if (r >= 0 && (uint8_t)c->bufoutptr[0] == rfbFramebufferUpdate)
        r = next_lone_rectangle(c, &encoding);
    if (r == -ECONNRESET)
        snprintf(u->error, sizeof(u->error), "connection closed");
    else if (r < 0)
        snprintf(u->error, sizeof(u->error), "read failed: %s", strerror(-r));
    if (r < 0)
        return false;
    if (encoding == EXT_DESKTOP_SIZE_ENCODING)
        return read_ext_desktop_size(u);
    if (encoding == (int32_t)rfbEncodingQemuExtendedKeyEvent)
        return read_ext_key_ack(u);
    return HandleRFBServerMessage(c);
}

/* SetEncodings that QEMU should use from now on. Raw: QEMU's display fd is local (libvirt
 * passes it on this host), where raw costs least CPU on both sides; the client-facing
 * encoding is chosen by libvncserver per client. */
static int send_encodings(rfbClient *c)
{
    static const int32_t encodings[] = {
        rfbEncodingRaw,
        rfbEncodingCopyRect,
        (int32_t)rfbEncodingNewFBSize,            /* DesktopSize, -223 */
        (int32_t)rfbEncodingLastRect,             /* -224 */
        (int32_t)rfbEncodingQemuExtendedKeyEvent, /* -258 */
        (int32_t)rfbEncodingRichCursor,           /* -239: pointer shape, forwarded */
        EXTCLIP_ENCODING,                         /* UTF-8 clipboard, QEMU's only one */
    };
    uint8_t msg[4 + sizeof(encodings)];
    uint16_t n = htons((uint16_t)ARRAY_SIZE(encodings));
    msg[0] = rfbSetEncodings;
    msg[1] = 0;
    memcpy(msg + 2, &n, 2);
    for (size_t i = 0; i < ARRAY_SIZE(encodings); i++) {
        uint32_t e = htonl((uint32_t)encodings[i]);
        memcpy(msg + 4 + 4 * i, &e, 4);
    }
    return WriteToRFBServer(c, (char *)msg, (int)sizeof(msg)) ? 0 : -EIO;
}

static bool send_input(struct upstream *u, const struct proxy_input *ev)
{
    rfbClient *c = u->client;
    switch (ev->type) {
    case PROXY_INPUT_EXT_KEY:
        /* Needs QEMU's acknowledgement of -258 (SupportsClient2Server(rfbQemuEvent)). */
        if (SupportsClient2Server(c, rfbQemuEvent))
            return SendExtendedKeyEvent(c, ev->keysym, ev->keycode, ev->down);
        return ev->keysym == 0 || SendKeyEvent(c, ev->keysym, ev->down);
    case PROXY_INPUT_KEY:
        return SendKeyEvent(c, ev->keysym, ev->down);
    case PROXY_INPUT_POINTER: {
        int x = ev->x < c->width ? ev->x : c->width - 1;
        int y = ev->y < c->height ? ev->y : c->height - 1;
        return SendPointerEvent(c, x, y, ev->buttons);
    }
    }
    return true;
}

/* The VM's display is gone or broke the protocol: show it and end the proxy. */
static void upstream_fail(struct upstream *u, const char *reason)
{
    struct proxy *p = u->p;
    u->live = false;
    if (__atomic_load_n(&u->stopping, __ATOMIC_ACQUIRE))
        return; /* upstream_free() broke the connection on purpose (proxy_close_desktop) */
    proxy_input_queue_set_accepting(&p->input, false);
    pthread_mutex_lock(&p->fb_lock);
    p->upstream_live = false;
    free(p->status_text);
    p->status_text = strdup("The connection to your desktop was lost.");
    proxy_draw_status_locked(p);
    pthread_mutex_unlock(&p->fb_lock);
    proxy_end_desktop_lost(p, reason);
}

static void *upstream_thread(void *arg)
{
    struct upstream *u = arg;
    rfbClient *c = u->client;
    struct proxy_input batch[UPSTREAM_INPUT_BATCH];

    pthread_setname_np(pthread_self(), "vdi-upstream");
    for (;;) {
        struct pollfd fds[4] = {
            {.fd = c->sock, .events = POLLIN},
            {.fd = u->p->input.fd, .events = POLLIN},
            {.fd = u->stop_fd, .events = POLLIN},
            {.fd = u->p->cut_fd, .events = POLLIN},
        };
        if (poll(fds, ARRAY_SIZE(fds), -1) < 0) {
            if (errno == EINTR)
                continue;
            upstream_fail(u, "poll failed");
            return NULL;
        }
        if (fds[2].revents)
            return NULL;

        if (fds[3].revents && !send_cut_text(u)) {
            upstream_fail(u, "write failed");
            return NULL;
        }

        if (fds[1].revents) {
            size_t n;
            while ((n = proxy_input_queue_pop(&u->p->input, batch, ARRAY_SIZE(batch))) > 0)
                for (size_t i = 0; i < n; i++)
                    if (!send_input(u, &batch[i])) {
                        upstream_fail(u, "write failed");
                        return NULL;
                    }
        }

        if (fds[0].revents) {
            do {
                if (!handle_server_message(u)) {
                    upstream_fail(u, u->error[0] ? u->error : "protocol error or timeout");
                    return NULL;
                }
            } while (c->buffered > 0);
        }
    }
}

void upstream_global_init(void)
{
    rfbClientLog = proxy_rfb_log;
    rfbClientErr = proxy_rfb_log;
}

int upstream_start(struct proxy *p, int fd, struct upstream **ret)
{
    int r;
    if (fd < 0)
        return -EBADF;
    if (fd >= FD_SETSIZE) { /* libvncclient select()s on it */
        safe_close(fd);
        return -EMFILE;
    }
    r = fd_set_nonblock(fd, true); /* so that readTimeout applies to partial messages */
    if (r < 0) {
        safe_close(fd);
        return r;
    }

    struct upstream *u = calloc(1, sizeof(*u));
    if (!u) {
        safe_close(fd);
        return -ENOMEM;
    }
    u->p = p;
    u->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rfbClient *c = rfbGetClient(8, 3, PROXY_BYTES_PER_PIXEL);
    if (u->stop_fd < 0 || !c) {
        safe_close(fd);
        safe_close(u->stop_fd);
        free(u);
        if (c)
            rfbClientCleanup(c);
        return -ENOMEM;
    }

    /* The VM's pixels must land in the downstream format unchanged (memcpy per row). */
    const rfbPixelFormat *sf = &p->screen->serverFormat;
    c->format.bitsPerPixel = sf->bitsPerPixel;
    c->format.bigEndian = sf->bigEndian;
    c->format.trueColour = TRUE;
    c->format.redMax = sf->redMax;
    c->format.greenMax = sf->greenMax;
    c->format.blueMax = sf->blueMax;
    c->format.redShift = sf->redShift;
    c->format.greenShift = sf->greenShift;
    c->format.blueShift = sf->blueShift;

    c->sock = fd; /* libvncclient owns it now: rfbClientCleanup closes it */
    c->listenSpecified = TRUE;
    c->appData.shareDesktop = TRUE;
    c->appData.encodingsString = "raw copyrect"; /* lossless from the first update on */
    c->appData.enableJPEG = FALSE;
    c->appData.useRemoteCursor = FALSE;
    c->canHandleNewFBSize = TRUE;
    c->readTimeout = PROXY_UPSTREAM_READ_TIMEOUT_S;
    c->MallocFrameBuffer = on_malloc_framebuffer;
    c->GotFrameBufferUpdate = on_framebuffer_update;
    c->Bell = on_bell;
    c->GotCursorShape = on_cursor_shape;
    rfbClientSetClientData(c, &upstream_tag, u);

    if (!rfbInitClient(c, NULL, NULL)) { /* frees c and closes fd on failure */
        r = startswith(u->error, "display size") ? -E2BIG : -EPROTO;
        log_debug("proxy: upstream handshake failed: %s", u->error[0] ? u->error : "protocol");
        free(u->fb);
        safe_close(u->stop_fd);
        free(u);
        return r;
    }
    u->client = c;

    r = send_encodings(c);
    if (r < 0) {
        upstream_free(u);
        return -EPROTO;
    }

    pthread_mutex_lock(&p->fb_lock);
    r = proxy_resize_locked(p, c->width, c->height);
    if (r >= 0) {
        u->live = true;
        p->upstream_live = true;
        proxy_notice_apply_locked(p); /* a notice set before the VM's display arrived */
    }
    pthread_mutex_unlock(&p->fb_lock);
    if (r < 0) {
        upstream_free(u);
        return r;
    }

    proxy_input_queue_set_accepting(&p->input, true);
    r = pthread_create(&u->thread, NULL, upstream_thread, u);
    if (r != 0) {
        upstream_fail(u, "cannot start thread");
        upstream_free(u);
        return -r;
    }
    u->thread_started = true;
    log_debug("proxy: upstream attached, display %dx%d name='%s'", c->width, c->height,
              c->desktopName ? c->desktopName : "");
    *ret = u;
    return 0;
}

void upstream_free(struct upstream *u)
{
    if (!u)
        return;
    if (u->thread_started) {
        uint64_t one = 1;
        __atomic_store_n(&u->stopping, true, __ATOMIC_RELEASE);
        (void)!write(u->stop_fd, &one, sizeof(one));
        /* Also wakes it inside HandleRFBServerMessage/WriteToRFBServer (which can wait for
         * up to readTimeout, or for ever on a write to a VM display that stopped reading). */
        shutdown(u->client->sock, SHUT_RDWR);
        pthread_join(u->thread, NULL);
    }
    if (u->client) {
        u->client->frameBuffer = NULL;
        release_shape_buffers(u->client);
        rfbClientCleanup(u->client);
    }
    free(u->fb);
    safe_close(u->stop_fd);
    free(u);
}
