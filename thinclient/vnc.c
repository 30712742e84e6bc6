#include "vnc.h"

#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include <rfb/rfbclient.h>

#include "handoff.h"
#include "cut-text.h"
#include "log.h"
#include "ppm.h"
#include "util.h"

#define VNC_QUEUE_SIZE 4096

enum vnc_input_type { VNC_INPUT_KEY, VNC_INPUT_POINTER };

struct vnc_input {
    enum vnc_input_type type;
    bool down;
    uint8_t mask;
    uint32_t keysym, xt;
    int x, y;
};

struct vnc {
    struct vnc_params params;
    char *screenshot_path;
    int fd;
    int wake_fd; /* eventfd: input queued or stop requested */
    int end_fd;  /* eventfd: the thread ended */
    pthread_t thread;
    bool joined;
    atomic_bool stop;
    atomic_bool ext_keys;
    _Atomic enum vnc_end end;

    /* input queue (UI thread -> vnc thread) */
    pthread_mutex_t queue_lock;
    struct vnc_input queue[VNC_QUEUE_SIZE];
    size_t queue_head, queue_len;
    bool queue_overflow_logged;
    char *clipboard_out; /* Latin-1 text waiting for ClientCutText, or NULL */
    size_t clipboard_out_len;

    /* shared frame (vnc thread -> UI thread) */
    pthread_mutex_t frame_lock;
    uint32_t *frame;
    int frame_w, frame_h;
    bool frame_resized;
    int frame_x0, frame_y0, frame_x1, frame_y1; /* dirty box, x1 <= x0 means empty */

    /* vnc thread only */
    rfbClient *client;
    uint32_t *fb; /* libvncclient's framebuffer (ours to free) */
    int fb_w, fb_h;
    int dirty_x0, dirty_y0, dirty_x1, dirty_y1;
    bool qemu_ack_expected;
    uint8_t *coverage; /* screenshot mode: which pixels have been received */
    size_t covered;
    uint64_t complete_ms; /* when coverage became complete, 0 before */
    uint64_t started_ms;  /* rfbInitClient done */
};

static int vnc_tag;

/* ---- libvncclient's logging, into ours ------------------------------------------------- */

static pthread_mutex_t last_message_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_message[256];

static void vnc_log_v(bool error, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_debug("libvncclient: %s", line);
    if (error || strstr(line, "rror") || strstr(line, "nvalid") || strstr(line, "too")) {
        pthread_mutex_lock(&last_message_lock);
        size_t len = n < sizeof(last_message) - 1 ? n : sizeof(last_message) - 1;
        memcpy(last_message, line, len);
        last_message[len] = '\0';
        pthread_mutex_unlock(&last_message_lock);
    }
}

static void vnc_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vnc_log_v(false, fmt, ap);
    va_end(ap);
}

static void vnc_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vnc_log_v(true, fmt, ap);
    va_end(ap);
}

/* ---- callbacks (vnc thread) ------------------------------------------------------------ */

static struct vnc *vnc_of(rfbClient *c)
{
    return rfbClientGetClientData(c, &vnc_tag);
}

static rfbBool cb_malloc_framebuffer(rfbClient *c)
{
    struct vnc *v = vnc_of(c);
    int w = c->width, h = c->height;
    size_t pixels;
    if (w <= 0 || h <= 0 || w > HANDOFF_MAX_FB_SIDE || h > HANDOFF_MAX_FB_SIDE ||
        !size_mul((size_t)w, (size_t)h, &pixels)) {
        log_warning("server announced an unusable framebuffer size %dx%d", w, h);
        return FALSE;
    }
    uint32_t *fb = calloc(pixels, sizeof(uint32_t));
    uint32_t *shared = calloc(pixels, sizeof(uint32_t));
    uint8_t *coverage = v->screenshot_path ? calloc(pixels, 1) : NULL;
    if (!fb || !shared || (v->screenshot_path && !coverage)) {
        free(fb);
        free(shared);
        free(coverage);
        return FALSE;
    }
    free(v->fb);
    v->fb = fb;
    v->fb_w = w;
    v->fb_h = h;
    c->frameBuffer = (uint8_t *)fb;
    v->dirty_x0 = v->dirty_y0 = v->dirty_x1 = v->dirty_y1 = 0;
    free(v->coverage);
    v->coverage = coverage;
    v->covered = 0;
    v->complete_ms = 0;

    pthread_mutex_lock(&v->frame_lock);
    free(v->frame);
    v->frame = shared;
    v->frame_w = w;
    v->frame_h = h;
    v->frame_resized = true;
    v->frame_x0 = v->frame_y0 = 0;
    v->frame_x1 = w;
    v->frame_y1 = h;
    pthread_mutex_unlock(&v->frame_lock);

    log_info("desktop size %dx%d", w, h);
    if (v->params.on_frame)
        v->params.on_frame(v->params.userdata);
    return TRUE;
}

static void cb_update(rfbClient *c, int x, int y, int w, int h)
{
    struct vnc *v = vnc_of(c);

    /* libvncclient reports the QEMU extended key event acknowledgement (a pseudo
     * rectangle without pixels) through this callback right after enabling the message. */
    if (v->qemu_ack_expected && SupportsClient2Server(c, rfbQemuEvent)) {
        v->qemu_ack_expected = false;
        atomic_store(&v->ext_keys, true);
        log_info("server supports QEMU extended key events: sending scancodes");
        return;
    }

    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > v->fb_w ? v->fb_w : x + w, y1 = y + h > v->fb_h ? v->fb_h : y + h;
    if (x1 <= x0 || y1 <= y0)
        return;
    if (v->dirty_x1 <= v->dirty_x0) {
        v->dirty_x0 = x0, v->dirty_y0 = y0, v->dirty_x1 = x1, v->dirty_y1 = y1;
    } else {
        if (x0 < v->dirty_x0)
            v->dirty_x0 = x0;
        if (y0 < v->dirty_y0)
            v->dirty_y0 = y0;
        if (x1 > v->dirty_x1)
            v->dirty_x1 = x1;
        if (y1 > v->dirty_y1)
            v->dirty_y1 = y1;
    }
    if (v->coverage) {
        for (int yy = y0; yy < y1; yy++) {
            uint8_t *row = v->coverage + (size_t)yy * (size_t)v->fb_w;
            for (int xx = x0; xx < x1; xx++)
                if (!row[xx]) {
                    row[xx] = 1;
                    v->covered++;
                }
        }
    }
}

static void cb_finished(rfbClient *c)
{
    struct vnc *v = vnc_of(c);
    if (v->dirty_x1 > v->dirty_x0) {
        pthread_mutex_lock(&v->frame_lock);
        if (v->frame && v->frame_w == v->fb_w && v->frame_h == v->fb_h) {
            size_t n = (size_t)(v->dirty_x1 - v->dirty_x0) * sizeof(uint32_t);
            for (int y = v->dirty_y0; y < v->dirty_y1; y++) {
                size_t off = (size_t)y * (size_t)v->fb_w + (size_t)v->dirty_x0;
                memcpy(v->frame + off, v->fb + off, n);
            }
            if (v->frame_x1 <= v->frame_x0) {
                v->frame_x0 = v->dirty_x0, v->frame_y0 = v->dirty_y0;
                v->frame_x1 = v->dirty_x1, v->frame_y1 = v->dirty_y1;
            } else {
                if (v->dirty_x0 < v->frame_x0)
                    v->frame_x0 = v->dirty_x0;
                if (v->dirty_y0 < v->frame_y0)
                    v->frame_y0 = v->dirty_y0;
                if (v->dirty_x1 > v->frame_x1)
                    v->frame_x1 = v->dirty_x1;
                if (v->dirty_y1 > v->frame_y1)
                    v->frame_y1 = v->dirty_y1;
            }
        }
        pthread_mutex_unlock(&v->frame_lock);
        v->dirty_x0 = v->dirty_y0 = v->dirty_x1 = v->dirty_y1 = 0;
        if (v->params.on_frame)
            v->params.on_frame(v->params.userdata);
    }
    if (v->coverage && v->complete_ms == 0 && v->covered == (size_t)v->fb_w * (size_t)v->fb_h) {
        v->complete_ms = now_ms();
        log_debug("first complete frame received");
    }
}

/* ServerCutText. libvncclient 0.9.14 has already refused (ended the session on) a length
 * above 1 MiB before allocating anything, so len <= VNC_CLIPBOARD_MAX here. */
static void cb_cut_text(rfbClient *c, const char *text, int len)
{
    struct vnc *v = vnc_of(c);
    if (!v->params.on_clipboard || len < 0)
        return;
    size_t n;
    char *utf8 = cut_text_latin1_to_utf8(text, (size_t)len, 2 * VNC_CLIPBOARD_MAX, &n);
    if (!utf8) {
        log_warning("no memory for %d bytes of clipboard text from the server", len);
        return;
    }
    log_debug("clipboard from the server bytes=%zu", n);
    v->params.on_clipboard(v->params.userdata, utf8);
    free(utf8);
}

/* ---- the thread ----------------------------------------------------------------------- */

static void set_end(struct vnc *v, enum vnc_end end)
{
    enum vnc_end expected = VNC_RUNNING;
    atomic_compare_exchange_strong(&v->end, &expected, end);
}

/* Returns false when the connection failed. */
static bool flush_input(struct vnc *v)
{
    struct vnc_input batch[64];

    /* The clipboard first: keys queued after it (Ctrl+V) must find it there. */
    pthread_mutex_lock(&v->queue_lock);
    char *clip = TAKE_PTR(v->clipboard_out);
    size_t clip_len = v->clipboard_out_len;
    pthread_mutex_unlock(&v->queue_lock);
    if (clip) {
        log_debug("clipboard to the server bytes=%zu", clip_len);
        rfbBool ok = SendClientCutText(v->client, clip, (int)clip_len);
        free(clip);
        if (!ok)
            return false;
    }

    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&v->queue_lock);
        while (n < ARRAY_SIZE(batch) && v->queue_len > 0) {
            batch[n++] = v->queue[v->queue_head];
            v->queue_head = (v->queue_head + 1) % VNC_QUEUE_SIZE;
            v->queue_len--;
        }
        pthread_mutex_unlock(&v->queue_lock);
        if (n == 0)
            return true;
        for (size_t i = 0; i < n; i++) {
            const struct vnc_input *in = &batch[i];
            rfbBool ok;
            if (in->type == VNC_INPUT_POINTER)
                ok = SendPointerEvent(v->client, in->x, in->y, in->mask);
            else if (in->xt && SupportsClient2Server(v->client, rfbQemuEvent))
                ok = SendExtendedKeyEvent(v->client, in->keysym, in->xt, in->down);
            else if (in->keysym)
                ok = SendKeyEvent(v->client, in->keysym, in->down);
            else
                ok = TRUE; /* a key with a scan code only, and no extended events */
            if (!ok)
                return false;
        }
    }
}

/* When the screenshot is due: the delay after the first complete frame, or (a server that
 * never sends the whole framebuffer) VNC_SCREENSHOT_TIMEOUT_MS plus the delay after the
 * session started. */
static uint64_t screenshot_due_ms(struct vnc *v)
{
    uint64_t delay = (uint64_t)v->params.screenshot_delay_ms;
    uint64_t give_up = v->started_ms + delay + (uint64_t)v->params.screenshot_timeout_ms;
    if (v->complete_ms == 0)
        return give_up;
    return v->complete_ms + delay;
}

static int screenshot_wait_ms(struct vnc *v)
{
    if (!v->screenshot_path || !v->fb)
        return -1;
    uint64_t due = screenshot_due_ms(v), now = now_ms();
    return now >= due ? 0 : (int)(due - now);
}

static bool screenshot_maybe(struct vnc *v)
{
    if (screenshot_wait_ms(v) != 0)
        return false;
    bool complete = v->complete_ms != 0;
    int r = ppm_write(v->screenshot_path, v->fb, v->fb_w, v->fb_h, (size_t)v->fb_w, VNC_RED_SHIFT,
                      VNC_GREEN_SHIFT, VNC_BLUE_SHIFT);
    if (r < 0) {
        log_error_errno(r, "Cannot write screenshot %s", v->screenshot_path);
        set_end(v, VNC_END_ERROR);
    } else if (!complete) {
        log_warning("the server sent only %zu of %dx%d pixels within %d ms; wrote them to %s",
                    v->covered, v->fb_w, v->fb_h,
                    v->params.screenshot_delay_ms + v->params.screenshot_timeout_ms,
                    v->screenshot_path);
        set_end(v, VNC_END_INCOMPLETE);
    } else {
        log_info("screenshot written file=%s size=%dx%d", v->screenshot_path, v->fb_w, v->fb_h);
        set_end(v, VNC_END_SCREENSHOT);
    }
    return true;
}

static void *vnc_thread(void *arg)
{
    struct vnc *v = arg;
    rfbClient *c = rfbGetClient(8, 3, 4);
    if (!c) {
        safe_close(v->fd);
        set_end(v, VNC_END_ERROR);
        goto out;
    }
    rfbClientSetClientData(c, &vnc_tag, v);
    c->MallocFrameBuffer = cb_malloc_framebuffer;
    c->GotFrameBufferUpdate = cb_update;
    c->FinishedFrameBufferUpdate = cb_finished;
    c->GotXCutText = cb_cut_text;
    c->canHandleNewFBSize = TRUE;
    c->programName = "vdi-client";
    c->format.bitsPerPixel = 32;
    c->format.depth = 24;
    c->format.redMax = c->format.greenMax = c->format.blueMax = 255;
    c->format.redShift = VNC_RED_SHIFT;
    c->format.greenShift = VNC_GREEN_SHIFT;
    c->format.blueShift = VNC_BLUE_SHIFT;
    /* What libvncclient would ask for; relay.h replaces its SetEncodings with ours anyway. */
    c->appData.encodingsString = "tight zrle hextile copyrect raw";
    c->appData.compressLevel = v->params.compress;
    c->appData.qualityLevel = v->params.quality;
    c->appData.enableJPEG = TRUE;
    c->appData.useRemoteCursor = FALSE;
    c->appData.shareDesktop = TRUE;
    c->readTimeout = VNC_READ_TIMEOUT_S;
    c->sock = v->fd;
    c->listenSpecified = TRUE;
    v->fd = -1; /* libvncclient closes it from now on */
    (void)fd_set_nonblock(c->sock, true);

    if (!rfbInitClient(c, NULL, NULL)) {
        /* rfbInitClient freed c and closed the socket. */
        log_debug("rfbInitClient failed");
        set_end(v, VNC_END_INIT_FAILED);
        goto out;
    }
    v->client = c;
    v->started_ms = now_ms();
    v->qemu_ack_expected = !SupportsClient2Server(c, rfbQemuEvent);
    log_debug("vnc session started desktop=\"%s\"", c->desktopName ? c->desktopName : "");

    while (!atomic_load(&v->stop)) {
        int timeout = c->buffered > 0 ? 0 : screenshot_wait_ms(v);
        struct pollfd p[2] = {
            {.fd = c->sock, .events = POLLIN},
            {.fd = v->wake_fd, .events = POLLIN},
        };
        int n = poll(p, 2, timeout);
        if (n < 0 && errno != EINTR) {
            set_end(v, VNC_END_ERROR);
            break;
        }
        if (atomic_load(&v->stop))
            break;
        if (n > 0 && p[1].revents) {
            uint64_t dummy;
            if (read(v->wake_fd, &dummy, sizeof(dummy)) < 0 && errno != EAGAIN)
                log_debug("cannot read the wake eventfd: %m");
            if (!flush_input(v)) {
                set_end(v, VNC_END_CLOSED);
                break;
            }
        }
        if (c->buffered > 0 || (n > 0 && p[0].revents)) {
            bool ok = HandleRFBServerMessage(c);
            /* Bytes libvncclient already read from the socket are invisible to poll(). */
            while (ok && c->buffered > 0 && !atomic_load(&v->stop))
                ok = HandleRFBServerMessage(c);
            if (!ok) {
                set_end(v, VNC_END_CLOSED);
                break;
            }
        }
        if (screenshot_maybe(v))
            break;
    }
    set_end(v, VNC_END_STOPPED);
    rfbClientCleanup(c);
    v->client = NULL;

out : {
    uint64_t one = 1;
    if (write(v->end_fd, &one, sizeof(one)) < 0)
        log_debug("cannot signal the end of the vnc thread: %m");
    if (v->params.on_frame)
        v->params.on_frame(v->params.userdata);
}
    return NULL;
}

/* ---- public ---------------------------------------------------------------------------- */

int vnc_start(const struct vnc_params *p, struct vnc **ret)
{
    struct vnc *v = calloc(1, sizeof(*v));
    if (!v) {
        safe_close(p->fd);
        return -ENOMEM;
    }
    v->params = *p;
    v->fd = p->fd;
    v->joined = true;
    v->wake_fd = v->end_fd = -1;
    pthread_mutex_init(&v->queue_lock, NULL);
    pthread_mutex_init(&v->frame_lock, NULL);
    atomic_init(&v->end, VNC_RUNNING);
    if (p->screenshot_path) {
        v->screenshot_path = strdup(p->screenshot_path);
        if (!v->screenshot_path) {
            vnc_free(v);
            return -ENOMEM;
        }
    }
    v->params.screenshot_path = v->screenshot_path;
    if (v->params.screenshot_timeout_ms <= 0)
        v->params.screenshot_timeout_ms = VNC_SCREENSHOT_TIMEOUT_MS;
    v->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    v->end_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (v->wake_fd < 0 || v->end_fd < 0) {
        int e = -errno;
        vnc_free(v);
        return e;
    }

    rfbClientLog = vnc_log;
    rfbClientErr = vnc_err;

    int e = pthread_create(&v->thread, NULL, vnc_thread, v);
    if (e != 0) {
        vnc_free(v);
        return -e;
    }
    v->joined = false;
    pthread_setname_np(v->thread, "vdi-vnc");
    *ret = v;
    return 0;
}

bool vnc_ended(struct vnc *v)
{
    return atomic_load(&v->end) != VNC_RUNNING;
}

int vnc_end_fd(struct vnc *v)
{
    return v->end_fd;
}

bool vnc_extended_keys(struct vnc *v)
{
    return atomic_load(&v->ext_keys);
}

static void enqueue(struct vnc *v, const struct vnc_input *in)
{
    bool queued = false;
    pthread_mutex_lock(&v->queue_lock);
    /* Coalesce pointer motion: replace a queued pointer event with the same buttons. */
    if (in->type == VNC_INPUT_POINTER && v->queue_len > 0) {
        struct vnc_input *last = &v->queue[(v->queue_head + v->queue_len - 1) % VNC_QUEUE_SIZE];
        if (last->type == VNC_INPUT_POINTER && last->mask == in->mask) {
            *last = *in;
            queued = true;
        }
    }
    if (!queued && v->queue_len < VNC_QUEUE_SIZE) {
        v->queue[(v->queue_head + v->queue_len) % VNC_QUEUE_SIZE] = *in;
        v->queue_len++;
        queued = true;
    }
    bool log_overflow = !queued && !v->queue_overflow_logged;
    if (log_overflow)
        v->queue_overflow_logged = true;
    pthread_mutex_unlock(&v->queue_lock);
    if (log_overflow)
        log_warning("input queue full: the server does not take input, dropping events");
    uint64_t one = 1;
    if (write(v->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_debug("cannot wake the vnc thread: %m");
}

void vnc_send_key(struct vnc *v, uint32_t keysym, uint32_t xt_keycode, bool down)
{
    struct vnc_input in = {.type = VNC_INPUT_KEY, .keysym = keysym, .xt = xt_keycode, .down = down};
    enqueue(v, &in);
}

void vnc_send_pointer(struct vnc *v, int x, int y, uint8_t button_mask)
{
    struct vnc_input in = {.type = VNC_INPUT_POINTER, .x = x, .y = y, .mask = button_mask};
    enqueue(v, &in);
}

void vnc_send_clipboard(struct vnc *v, const char *utf8)
{
    size_t len;
    char *latin1 = cut_text_utf8_to_latin1(utf8, strlen(utf8), VNC_CLIPBOARD_MAX, &len);
    if (!latin1) {
        log_warning("no memory for the clipboard text");
        return;
    }
    pthread_mutex_lock(&v->queue_lock);
    free(v->clipboard_out);
    v->clipboard_out = latin1;
    v->clipboard_out_len = len;
    pthread_mutex_unlock(&v->queue_lock);
    uint64_t one = 1;
    if (write(v->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_debug("cannot wake the vnc thread: %m");
}

void vnc_frame_lock(struct vnc *v, struct vnc_frame *f)
{
    pthread_mutex_lock(&v->frame_lock);
    *f = (struct vnc_frame){
        .pixels = v->frame,
        .width = v->frame_w,
        .height = v->frame_h,
        .resized = v->frame_resized,
    };
    if (v->frame_x1 > v->frame_x0) {
        f->dirty_x = v->frame_x0;
        f->dirty_y = v->frame_y0;
        f->dirty_w = v->frame_x1 - v->frame_x0;
        f->dirty_h = v->frame_y1 - v->frame_y0;
    }
}

void vnc_frame_unlock(struct vnc *v)
{
    v->frame_resized = false;
    v->frame_x0 = v->frame_y0 = v->frame_x1 = v->frame_y1 = 0;
    pthread_mutex_unlock(&v->frame_lock);
}

enum vnc_end vnc_stop(struct vnc *v, char *detail, size_t detail_size)
{
    if (!v->joined) {
        atomic_store(&v->stop, true);
        uint64_t one = 1;
        if (write(v->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_debug("cannot wake the vnc thread: %m");
        pthread_join(v->thread, NULL);
        v->joined = true;
    }
    if (detail && detail_size > 0) {
        pthread_mutex_lock(&last_message_lock);
        snprintf(detail, detail_size, "%s", last_message);
        pthread_mutex_unlock(&last_message_lock);
    }
    return atomic_load(&v->end);
}

void vnc_free(struct vnc *v)
{
    if (!v)
        return;
    (void)vnc_stop(v, NULL, 0);
    safe_close(v->fd);
    safe_close(v->wake_fd);
    safe_close(v->end_fd);
    free(v->fb);
    free(v->frame);
    free(v->coverage);
    free(v->screenshot_path);
    free(v->clipboard_out);
    pthread_mutex_destroy(&v->queue_lock);
    pthread_mutex_destroy(&v->frame_lock);
    free(v);
}
