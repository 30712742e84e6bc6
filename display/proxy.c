/*
 * The RFB proxy (proxy.h): the downstream side. One libvncserver screen per process, never
 * a listener; its single client is fed through a local socketpair whose other end the
 * caller relays to the real, already authenticated client. See README.md ("The RFB proxy").
 */
#include "proxy-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cut-text.h"
#include "log.h"
#include "status-screen-internal.h"
#include "util.h"

#if !defined(LIBVNCSERVER_HAVE_LIBJPEG) || !defined(LIBVNCSERVER_HAVE_LIBZ) ||                     \
    !defined(LIBVNCSERVER_HAVE_LIBPTHREAD)
#error "libvncserver must be built with libjpeg(-turbo), zlib and pthreads (Tight/JPEG, ZRLE)"
#endif

#define RFB_VERSION_3_8 "RFB 003.008\n"
#define RFB_SECURITY_NONE 1
#define RFB_REASON_MAX 1024

/* ---- logging: libvncserver/libvncclient log through process-global hooks ---- */

void proxy_rfb_log(const char *fmt, ...)
{
    if (log_get_level() < LOG_LEVEL_DEBUG)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    buf[strcspn(buf, "\n")] = '\0';
    log_debug("libvnc: %s", buf);
}

static void proxy_global_init_once(void)
{
    rfbLog = proxy_rfb_log;
    rfbErr = proxy_rfb_log;
    upstream_global_init();

    /* libvncserver and libvncclient write() to sockets; a peer that went away must give
     * EPIPE, not kill the session (what rfbInitServer() would do, which we never call). */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        sigaction(SIGPIPE, &sa, NULL);
    }
    extkey_register();
}

/* ---- end of the proxy ---- */

static void proxy_vend(struct proxy *p, bool desktop_lost, const char *fmt, va_list ap)
{
    pthread_mutex_lock(&p->end_lock);
    if (!p->ended) {
        vsnprintf(p->end_reason, sizeof(p->end_reason), fmt, ap);
        p->ended = true;
        p->end_desktop_lost = desktop_lost;
        uint64_t one = 1;
        (void)!write(p->event_fd, &one, sizeof(one));
    }
    pthread_mutex_unlock(&p->end_lock);
    proxy_input_queue_set_accepting(&p->input, false);
}

void proxy_end(struct proxy *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    proxy_vend(p, false, fmt, ap);
    va_end(ap);
}

static void proxy_end_lost(struct proxy *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void proxy_end_lost(struct proxy *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    proxy_vend(p, true, fmt, ap);
    va_end(ap);
}

void proxy_end_desktop_lost(struct proxy *p, const char *reason)
{
    proxy_end_lost(p, "VM display: %s", reason);
}

bool proxy_desktop_lost(struct proxy *p)
{
    pthread_mutex_lock(&p->end_lock);
    bool lost = p->ended && p->end_desktop_lost;
    pthread_mutex_unlock(&p->end_lock);
    return lost;
}

int proxy_event_fd(struct proxy *p)
{
    return p->event_fd;
}

const char *proxy_end_reason(struct proxy *p)
{
    pthread_mutex_lock(&p->end_lock);
    const char *r = p->ended ? p->end_reason : NULL;
    pthread_mutex_unlock(&p->end_lock);
    return r;
}

/* ---- framebuffer ---- */

int proxy_fb_size(int w, int h, size_t *ret_bytes)
{
    size_t bytes;
    if (w <= 0 || h <= 0 || w > PROXY_MAX_DIM || h > PROXY_MAX_DIM)
        return -E2BIG;
    if (!size_mul((size_t)w, (size_t)h, &bytes) || !size_mul(bytes, PROXY_BYTES_PER_PIXEL, &bytes))
        return -E2BIG;
    *ret_bytes = bytes;
    return 0;
}

/* ---- the notice banner (all with fb_lock held) ---- */

/* Forgets the drawn banner without touching the framebuffer (which is being redrawn). */
static void notice_forget_locked(struct proxy *p)
{
    free(p->notice_px);
    free(p->notice_under);
    p->notice_px = p->notice_under = NULL;
    p->notice_h = 0;
}

/* Puts the VM's pixels back where the banner was. */
static void notice_remove_locked(struct proxy *p)
{
    if (p->notice_h > 0) {
        memcpy(p->fb, p->notice_under,
               (size_t)p->width * PROXY_BYTES_PER_PIXEL * (size_t)p->notice_h);
        rfbMarkRectAsModified(p->screen, 0, 0, p->width, p->notice_h);
    }
    notice_forget_locked(p);
}

void proxy_notice_apply_locked(struct proxy *p)
{
    notice_remove_locked(p);
    if (!p->upstream_live || !p->notice_text)
        return;
    int h = status_screen_banner_height(p->width, p->height, p->notice_text);
    if (h <= 0)
        return;
    /* Rows 0..h-1 are contiguous: the framebuffer's stride is its width. */
    size_t stride = (size_t)p->width * PROXY_BYTES_PER_PIXEL, bytes = stride * (size_t)h;
    uint8_t *px = malloc(bytes), *under = malloc(bytes);
    if (!px || !under) {
        free(px);
        free(under);
        log_debug("proxy: no memory for the notice banner");
        return;
    }
    status_screen_render_banner(px, p->width, h, stride, p->notice_text);
    memcpy(under, p->fb, bytes);
    memcpy(p->fb, px, bytes);
    p->notice_px = px;
    p->notice_under = under;
    p->notice_h = h;
    rfbMarkRectAsModified(p->screen, 0, 0, p->width, h);
}

int proxy_show_notice(struct proxy *p, const char *text)
{
    char *copy = NULL;
    if (text && text[0] && !(copy = strndup(text, STATUS_SCREEN_TEXT_MAX)))
        return -ENOMEM;
    pthread_mutex_lock(&p->fb_lock);
    notice_remove_locked(p);
    free(p->notice_text);
    p->notice_text = copy;
    proxy_notice_apply_locked(p);
    pthread_mutex_unlock(&p->fb_lock);
    return 0;
}

/* ---- framebuffer size ---- */

int proxy_resize_locked(struct proxy *p, int w, int h)
{
    size_t bytes;
    int r = proxy_fb_size(w, h, &bytes);
    if (r < 0)
        return r;
    if (w == p->width && h == p->height) {
        notice_forget_locked(p);
        memset(p->fb, 0, bytes);
        rfbMarkRectAsModified(p->screen, 0, 0, w, h);
        proxy_notice_apply_locked(p);
        return 0;
    }
    uint8_t *fb = calloc(1, bytes);
    if (!fb)
        return -ENOMEM;
    notice_forget_locked(p);
    /* rfbNewFramebuffer takes every client's sendMutex, so once it returns no encoder
     * reads the old buffer any more and it can be freed. Clients that announced
     * DesktopSize get the new size with the next update. */
    rfbNewFramebuffer(p->screen, (char *)fb, w, h, 8, 3, PROXY_BYTES_PER_PIXEL);
    free(p->fb);
    p->fb = fb;
    p->width = w;
    p->height = h;
    proxy_notice_apply_locked(p); /* at the new width, over the cleared picture */
    return 0;
}

void proxy_draw_status_locked(struct proxy *p)
{
    notice_forget_locked(p); /* the status screen covers everything */
    status_screen_render(p->fb, p->width, p->height, (size_t)p->width * PROXY_BYTES_PER_PIXEL,
                         p->status_text);
    rfbMarkRectAsModified(p->screen, 0, 0, p->width, p->height);
}

int proxy_show_status(struct proxy *p, const char *text)
{
    char *copy = strndup(text ? text : "", STATUS_SCREEN_TEXT_MAX);
    if (!copy)
        return -ENOMEM;
    pthread_mutex_lock(&p->fb_lock);
    free(p->status_text);
    p->status_text = copy;
    bool live = p->upstream_live;
    if (!live)
        proxy_draw_status_locked(p);
    pthread_mutex_unlock(&p->fb_lock);
    return live ? -EBUSY : 0;
}

int proxy_close_desktop(struct proxy *p, const char *text)
{
    char *copy = strndup(text ? text : "", STATUS_SCREEN_TEXT_MAX);

    /* The upstream thread is joined first: after this nothing copies the VM's pixels. */
    upstream_free(TAKE_PTR(p->upstream));
    proxy_input_queue_set_accepting(&p->input, false);
    pthread_mutex_lock(&p->fb_lock);
    p->upstream_live = false;
    if (copy) {
        free(p->status_text);
        p->status_text = copy;
    }
    proxy_draw_status_locked(p);
    pthread_mutex_unlock(&p->fb_lock);
    return copy ? 0 : -ENOMEM;
}

/* ---- input bookkeeping ---- */

void proxy_set_view_only(struct proxy *p, bool view_only)
{
    __atomic_store_n(&p->view_only, view_only, __ATOMIC_RELEASE);
    if (!view_only)
        return;
    /* Clipboard text the client sent before it became view-only (vdi-client sends its
     * clipboard at once, before DESKTOP_READY says "view-only") never reaches the VM. */
    pthread_mutex_lock(&p->cut_lock);
    free(TAKE_PTR(p->cut_to_vm));
    pthread_mutex_unlock(&p->cut_lock);
}

uint64_t proxy_last_input_ms(struct proxy *p)
{
    return __atomic_load_n(&p->last_input_ms, __ATOMIC_ACQUIRE);
}

int proxy_input_fd(struct proxy *p)
{
    return p->input_fd;
}

bool proxy_input_allowed(struct proxy *p)
{
    if (__atomic_load_n(&p->view_only, __ATOMIC_ACQUIRE))
        return false;
    uint64_t now = now_ms();
    uint64_t prev = __atomic_exchange_n(&p->last_input_ms, now, __ATOMIC_ACQ_REL);
    if (p->input_fd >= 0 && (prev == 0 || now - prev >= (uint64_t)p->input_wake_ms)) {
        uint64_t one = 1;
        (void)!write(p->input_fd, &one, sizeof(one));
    }
    return true;
}

/* ---- pointer shape ---- */

static rfbCursorPtr get_cursor(rfbClientPtr cl)
{
    struct proxy *p = cl->screen->screenData;
    return __atomic_load_n(&p->cursor, __ATOMIC_ACQUIRE);
}

void proxy_set_cursor(struct proxy *p, rfbCursorPtr c)
{
    rfbCursorPtr old = __atomic_exchange_n(&p->cursor, c, __ATOMIC_ACQ_REL);
    rfbClientIteratorPtr it = rfbGetClientIterator(p->screen);
    rfbClientPtr cl;
    while ((cl = rfbClientIteratorNext(it))) {
        /* A client's output thread encodes (and reads the shape) under its sendMutex: once
         * we held it, nobody uses the old shape any more. */
        pthread_mutex_lock(&cl->sendMutex);
        cl->cursorWasChanged = TRUE;
        pthread_mutex_unlock(&cl->sendMutex);
    }
    rfbReleaseClientIterator(it);
    if (old)
        rfbFreeCursor(old);
    /* Wake the output threads (an update is pending for cursorWasChanged). */
    rfbMarkRectAsModified(p->screen, 0, 0, 1, 1);
}

/* A plain arrow until the VM's display sends its own shape. */
static rfbCursorPtr default_cursor(void)
{
    static char shape[] = "X           "
                          "XX          "
                          "X.X         "
                          "X..X        "
                          "X...X       "
                          "X....X      "
                          "X.....X     "
                          "X......X    "
                          "X.......X   "
                          "X........X  "
                          "X.....XXXXX "
                          "X..X..X     "
                          "X.X X..X    "
                          "XX  X..X    "
                          "X    X..X   "
                          "     X..X   "
                          "      XX    ";
    char mask[sizeof(shape)];
    for (size_t i = 0; i + 1 < sizeof(shape); i++)
        mask[i] = shape[i] == ' ' ? ' ' : 'x';
    mask[sizeof(shape) - 1] = '\0';
    char source[sizeof(shape)];
    for (size_t i = 0; i < sizeof(shape); i++)
        source[i] = shape[i] == '.' ? 'x' : ' ';
    source[sizeof(shape) - 1] = '\0';
    /* rfbMakeXCursor: foreground white where source is set; background (black) elsewhere
     * inside the mask, so the outline is black and the inside white. */
    rfbCursorPtr c = rfbMakeXCursor(12, 17, source, mask);
    if (c) {
        c->foreRed = c->foreGreen = c->foreBlue = 0xffff;
        c->backRed = c->backGreen = c->backBlue = 0;
    }
    return c;
}

/* ---- downstream input: libvncserver's client thread ---- */

static void on_key(rfbBool down, rfbKeySym keysym, rfbClientPtr cl)
{
    struct proxy *p = cl->screen->screenData;
    if (!proxy_input_allowed(p))
        return;
    struct proxy_input ev = {.type = PROXY_INPUT_KEY, .down = down, .keysym = keysym};
    (void)proxy_input_queue_push(&p->input, &ev);
}

static void on_pointer(int buttons, int x, int y, rfbClientPtr cl)
{
    struct proxy *p = cl->screen->screenData;
    if (!proxy_input_allowed(p))
        return;
    struct proxy_input ev = {
        .type = PROXY_INPUT_POINTER,
        .buttons = (uint8_t)buttons,
        .x = (uint16_t)(x < 0            ? 0
                        : x > UINT16_MAX ? UINT16_MAX
                                         : x),
        .y = (uint16_t)(y < 0            ? 0
                        : y > UINT16_MAX ? UINT16_MAX
                                         : y),
    };
    (void)proxy_input_queue_push(&p->input, &ev);
}

/* ---- clipboard (cut text) ---- */

static bool view_only(struct proxy *p)
{
    return __atomic_load_n(&p->view_only, __ATOMIC_ACQUIRE);
}

/* Makes utf8 (taken) the text waiting for the VM; it replaces one still waiting. */
static void cut_to_vm_put(struct proxy *p, char *utf8, size_t len)
{
    pthread_mutex_lock(&p->cut_lock);
    free(p->cut_to_vm);
    p->cut_to_vm = utf8;
    p->cut_to_vm_len = len;
    pthread_mutex_unlock(&p->cut_lock);
    uint64_t one = 1;
    (void)!write(p->cut_fd, &one, sizeof(one));
}

char *proxy_cut_to_vm_take(struct proxy *p, size_t *len)
{
    uint64_t v;
    (void)!read(p->cut_fd, &v, sizeof(v));
    pthread_mutex_lock(&p->cut_lock);
    char *text = TAKE_PTR(p->cut_to_vm);
    *len = p->cut_to_vm_len;
    pthread_mutex_unlock(&p->cut_lock);
    if (text && view_only(p)) {
        free(text);
        return NULL;
    }
    return text;
}

void proxy_cut_from_vm(struct proxy *p, const char *utf8, size_t len)
{
    if (view_only(p) || len > PROXY_CUT_TEXT_MAX)
        return;
    size_t latin1_len;
    _cleanup_(freep) char *latin1 = cut_text_utf8_to_latin1(utf8, len, len, &latin1_len);
    if (!latin1)
        return;
    /* Plain Latin-1 to every client, extended-clipboard ones too: libvncserver 0.9.14's
     * rfbSendServerCutTextUTF8 sends plain clients the Latin-1 text under the UTF-8
     * length (README "Clipboard"). rfbSendServerCutText only reads the text (its parameter
     * is not const) and writes under each client's sendMutex, so it may run beside the
     * client's output thread. */
    rfbSendServerCutText(p->screen, latin1, (int)latin1_len);
}

/* ClientCutText of a plain client: Latin-1. libvncserver has already dropped a client
 * that announced more than 1 MiB. A view-only client's clipboard is dropped (and counts
 * as no input either way). */
static void on_cut_text(char *text, int len, rfbClientPtr cl)
{
    struct proxy *p = cl->screen->screenData;
    if (view_only(p) || len < 0 || len > PROXY_CUT_TEXT_MAX)
        return;
    size_t n;
    char *utf8 = cut_text_latin1_to_utf8(text, (size_t)len, PROXY_CUT_TEXT_MAX, &n);
    if (utf8)
        cut_to_vm_put(p, utf8, n);
}

/* The same from a client that enabled the extended clipboard (TigerVNC, noVNC): UTF-8,
 * usually NUL-terminated; invalid sequences are replaced before it goes further. */
static void on_cut_text_utf8(char *text, int len, rfbClientPtr cl)
{
    struct proxy *p = cl->screen->screenData;
    if (view_only(p) || len < 0 || len > PROXY_CUT_TEXT_MAX)
        return;
    size_t n;
    char *utf8 = cut_text_utf8_clean(text, (size_t)len, PROXY_CUT_TEXT_MAX, &n);
    if (utf8)
        cut_to_vm_put(p, utf8, n);
}

/* Runs in the client's output thread just before each framebuffer update. The VM may
 * resize the screen after ServerInit but before the client's SetEncodings enabled
 * DesktopSize; libvncserver then never tells that client. So the first update after the
 * client enabled it always carries the current size (a repeated size is harmless). */
static void on_display_hook(rfbClientPtr cl)
{
    struct proxy *p = cl->clientData;
    if (!p || p->size_announced || !cl->useNewFBSize)
        return;
    p->size_announced = true;
    LOCK(cl->updateMutex);
    cl->newFBSizePending = TRUE;
    UNLOCK(cl->updateMutex);
}

static void on_client_gone(rfbClientPtr cl)
{
    struct proxy *p = cl->clientData;
    extkey_client_gone(cl);
    proxy_end(p, "client disconnected");
}

/* ---- the local preamble: version and security None, answered on our end ---- */

static int preamble(int fd, uint64_t deadline)
{
    char version[sizeof(RFB_VERSION_3_8) - 1];
    uint8_t n, types[255];
    uint32_t result;

    int r = fd_read_full(fd, version, sizeof(version), deadline);
    if (r < 0)
        return r;
    if (memcmp(version, RFB_VERSION_3_8, sizeof(version)) != 0)
        return -EPROTO;
    r = fd_read_full(fd, &n, 1, deadline);
    if (r < 0)
        return r;
    if (n == 0)
        return -EPROTO; /* the screen refused us: a reason string follows */
    r = fd_read_full(fd, types, n, deadline);
    if (r < 0)
        return r;
    if (!memchr(types, RFB_SECURITY_NONE, n))
        return -EPROTO;
    uint8_t choice = RFB_SECURITY_NONE;
    r = fd_write_full(fd, &choice, 1, deadline);
    if (r < 0)
        return r;
    r = fd_read_full(fd, &result, sizeof(result), deadline);
    if (r < 0)
        return r;
    return result == 0 ? 0 : -EPROTO;
}

/* ---- lifecycle ---- */

static void proxy_freep(struct proxy **p)
{
    proxy_free(*p);
}

int proxy_new(const struct proxy_options *opts, struct proxy **ret, int *client_fd)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    _cleanup_(proxy_freep) struct proxy *p = NULL;
    _cleanup_(closep) int our_end = -1;
    int sv[2], r;
    size_t bytes;

    if (opts && (opts->width < 0 || opts->height < 0 || opts->client_write_timeout_ms < 0 ||
                 opts->input_wake_ms < 0))
        return -EINVAL;
    int w = opts && opts->width > 0 ? opts->width : PROXY_DEFAULT_WIDTH;
    int h = opts && opts->height > 0 ? opts->height : PROXY_DEFAULT_HEIGHT;
    r = proxy_fb_size(w, h, &bytes);
    if (r < 0)
        return -EINVAL;
    int write_timeout = opts && opts->client_write_timeout_ms > 0
                            ? opts->client_write_timeout_ms
                            : PROXY_DEFAULT_CLIENT_WRITE_TIMEOUT_MS;

    pthread_once(&once, proxy_global_init_once);

    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->event_fd = -1;
    p->server_sock_ref = -1;
    p->input.fd = -1;
    p->input_fd = -1;
    p->cut_fd = -1;
    pthread_mutex_init(&p->fb_lock, NULL);
    pthread_mutex_init(&p->end_lock, NULL);
    pthread_mutex_init(&p->cut_lock, NULL);
    r = proxy_input_queue_init(&p->input);
    if (r < 0)
        return r;
    p->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->event_fd < 0)
        return -errno;
    p->cut_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->cut_fd < 0)
        return -errno;
    if (opts && opts->input_wake_ms > 0) {
        p->input_wake_ms = opts->input_wake_ms;
        p->input_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->input_fd < 0)
            return -errno;
    }
    p->desktop_name = strdup(opts && opts->desktop_name ? opts->desktop_name : "vdi");
    p->fb = calloc(1, bytes);
    if (!p->desktop_name || !p->fb)
        return -ENOMEM;
    p->width = w;
    p->height = h;
    status_screen_render(p->fb, w, h, (size_t)w * PROXY_BYTES_PER_PIXEL, NULL);

    /* rfbGetScreen re-initialises a global mutex: created before any proxy thread runs. */
    int argc = 1;
    char arg0[] = "vdi-session";
    char *argv[] = {arg0, NULL};
    p->screen = rfbGetScreen(&argc, argv, w, h, 8, 3, PROXY_BYTES_PER_PIXEL);
    if (!p->screen)
        return -ENOMEM;
    rfbScreenInfoPtr s = p->screen;
    s->port = 0;
    s->ipv6port = 0;
    s->autoPort = FALSE;
    s->httpPort = 0;
    s->http6Port = 0;
    s->httpDir = NULL;
    s->backgroundLoop = TRUE; /* rfbStartOnHoldClient starts the client's own threads */
    s->frameBuffer = (char *)p->fb;
    s->desktopName = p->desktop_name;
    s->alwaysShared = TRUE;
    s->screenData = p;
    s->kbdAddEvent = on_key;
    s->ptrAddEvent = on_pointer;
    s->setXCutText = on_cut_text;
    s->setXCutTextUTF8 = on_cut_text_utf8;
    s->deferPtrUpdateTime = 0; /* deferred pointer events are only flushed by rfbProcessEvents */
    s->maxClientWait = write_timeout;
    s->cursor = NULL; /* never composited into the picture: see proxy-internal.h */
    s->getCursorPtr = get_cursor;
    s->displayHook = on_display_hook;
    p->cursor = default_cursor();
    rfbMaxClientWait = write_timeout;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    our_end = sv[0];
    /* The client's version goes first, so libvncserver's websocket sniffing sees "RFB ". */
    uint64_t deadline = now_ms() + PROXY_PREAMBLE_TIMEOUT_MS;
    r = fd_write_full(our_end, RFB_VERSION_3_8, strlen(RFB_VERSION_3_8), deadline);
    if (r < 0) {
        safe_close(sv[1]);
        return r;
    }
    if (sv[1] >= FD_SETSIZE) { /* libvncserver FD_SETs it: fortify aborts beyond */
        safe_close(sv[1]);
        return -EMFILE;
    }
    p->server_sock_ref = fcntl(sv[1], F_DUPFD_CLOEXEC, 3);
    if (p->server_sock_ref < 0) {
        r = -errno;
        safe_close(sv[1]);
        return r;
    }

    rfbClientPtr cl = rfbNewClient(s, sv[1]); /* owns sv[1] from here, even on failure */
    if (!cl)
        return -EPROTO;
    cl->clientData = p;
    cl->clientGoneHook = on_client_gone;
    rfbStartOnHoldClient(cl);
    /* The thread cannot finish before the preamble below answers it, so cl is alive.
     * (rfbStartOnHoldClient ignores a pthread_create failure; cl was calloc'ed, so the id
     * stays 0 then, and rfbScreenCleanup() in proxy_free() disposes of the client.) */
    if (cl->client_thread == 0)
        return -EAGAIN;
    p->client_thread = cl->client_thread;
    p->client_thread_started = true;

    r = preamble(our_end, deadline);
    if (r < 0)
        return r;

    *client_fd = TAKE_FD(our_end);
    *ret = TAKE_PTR(p);
    return 0;
}

int proxy_attach_upstream(struct proxy *p, int vnc_fd)
{
    pthread_mutex_lock(&p->fb_lock);
    bool busy = p->upstream_attached;
    p->upstream_attached = true;
    pthread_mutex_unlock(&p->fb_lock);
    if (busy) {
        safe_close(vnc_fd);
        return -EBUSY;
    }
    if (proxy_end_reason(p)) {
        safe_close(vnc_fd);
        return -ESHUTDOWN;
    }

    int r = upstream_start(p, vnc_fd, &p->upstream);
    if (r < 0) {
        pthread_mutex_lock(&p->fb_lock);
        p->upstream_attached = false;
        pthread_mutex_unlock(&p->fb_lock);
    }
    return r;
}

void proxy_free(struct proxy *p)
{
    if (!p)
        return;

    /* 1. The upstream thread: the only caller of rfbMarkRectAsModified/rfbNewFramebuffer
     *    besides proxy_show_status. */
    upstream_free(p->upstream);
    if (p->input.fd >= 0)
        proxy_input_queue_set_accepting(&p->input, false);

    /* 2. The client's threads: shutdown() on our dup of its socket wakes its select() with
     *    EOF (the dup keeps the fd number from being reused under it); the input thread
     *    then joins the output thread, runs rfbClientConnectionGone and frees the client. */
    if (p->client_thread_started) {
        shutdown(p->server_sock_ref, SHUT_RDWR);
        pthread_join(p->client_thread, NULL);
    }
    safe_close(p->server_sock_ref);

    if (p->cursor)
        rfbFreeCursor(p->cursor); /* no client threads left */
    if (p->screen) {
        p->screen->frameBuffer = NULL;
        p->screen->desktopName = NULL;
        rfbScreenCleanup(p->screen);
    }
    free(p->fb);
    free(p->status_text);
    free(p->notice_text);
    free(p->notice_px);
    free(p->notice_under);
    safe_close(p->input_fd);
    free(p->desktop_name);
    safe_close(p->event_fd);
    safe_close(p->cut_fd);
    free(p->cut_to_vm);
    proxy_input_queue_done(&p->input);
    pthread_mutex_destroy(&p->fb_lock);
    pthread_mutex_destroy(&p->end_lock);
    pthread_mutex_destroy(&p->cut_lock);
    free(p);
}
