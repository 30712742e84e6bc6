#pragma once
/*
 * Internals of the RFB proxy (proxy.h), shared by proxy.c (downstream libvncserver screen,
 * lifecycle), upstream.c (libvncclient side and its thread), extkey.c (QEMU extended key
 * events on the downstream side) and input-queue.c. Only display/ and its tests include it.
 *
 * Locks, in the only order they may nest:
 *   fb_lock   -> libvncserver's own locks (rfbMarkRectAsModified, rfbNewFramebuffer)
 *   end_lock, input.lock, cut_lock: leaves, never held while calling into
 *   libvncserver/libvncclient.
 * libvncserver's client threads only ever take the leaf locks (input callbacks, client gone
 * hook), so they can never wait for a thread that holds fb_lock and waits for them.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <rfb/rfb.h>

#include "proxy.h"

/* Framebuffer limits in each dimension, for the status screen and for the VM's display. */
#define PROXY_MAX_DIM 8192
#define PROXY_DEFAULT_WIDTH 1024
#define PROXY_DEFAULT_HEIGHT 768
#define PROXY_BYTES_PER_PIXEL 4
/* Deadline for the local version/security exchange with libvncserver in proxy_new(). */
#define PROXY_PREAMBLE_TIMEOUT_MS 5000
#define PROXY_DEFAULT_CLIENT_WRITE_TIMEOUT_MS 20000
/* Upstream (QEMU) read timeout, seconds: a VM display that stops mid-message is dropped. */
#define PROXY_UPSTREAM_READ_TIMEOUT_S 30
#define PROXY_REASON_MAX 256
/* Clipboard text (cut text) is forwarded up to this many bytes each way: libvncserver drops
 * a client that sends more, libvncclient (ours upstream, vdi-client downstream) ends the
 * connection on more. */
#define PROXY_CUT_TEXT_MAX (1024 * 1024)

/* ---- input queue: libvncserver's client thread -> upstream thread ---- */

enum proxy_input_type {
    PROXY_INPUT_KEY,     /* keysym */
    PROXY_INPUT_EXT_KEY, /* QEMU extended key event: keysym + XT keycode */
    PROXY_INPUT_POINTER,
};

struct proxy_input {
    enum proxy_input_type type;
    bool down;
    uint8_t buttons;
    uint16_t x, y;
    uint32_t keysym, keycode;
};

#define PROXY_INPUT_QUEUE_LEN 256
/* How long the producer waits for room before dropping an event (never forever). */
#define PROXY_INPUT_PUSH_TIMEOUT_MS 1000

struct proxy_input_queue {
    pthread_mutex_t lock;
    pthread_cond_t space;
    struct proxy_input ev[PROXY_INPUT_QUEUE_LEN];
    unsigned head, count;
    bool accepting;   /* false: events are dropped (no VM attached, or ended) */
    uint64_t dropped; /* events lost because the consumer was stuck */
    int fd;           /* eventfd: readable while events are queued */
};

int proxy_input_queue_init(struct proxy_input_queue *q);
void proxy_input_queue_done(struct proxy_input_queue *q);
void proxy_input_queue_set_accepting(struct proxy_input_queue *q, bool accepting);
/* Queues ev. When full, pointer motion with unchanged buttons replaces the newest queued
 * pointer event; anything else waits up to PROXY_INPUT_PUSH_TIMEOUT_MS for room, then is
 * dropped. Returns 0, -EAGAIN when dropped, -ESHUTDOWN when not accepting. */
int proxy_input_queue_push(struct proxy_input_queue *q, const struct proxy_input *ev);
/* Moves up to max queued events to out and resets the eventfd when empty. Returns count. */
size_t proxy_input_queue_pop(struct proxy_input_queue *q, struct proxy_input *out, size_t max);

/* ---- the proxy ---- */

struct upstream;

struct proxy {
    rfbScreenInfoPtr screen;
    char *desktop_name;

    pthread_mutex_t fb_lock; /* the fields below up to end_lock */
    uint8_t *fb;             /* screen->frameBuffer, PROXY_BYTES_PER_PIXEL per pixel */
    int width, height;
    char *status_text;
    bool upstream_attached; /* proxy_attach_upstream() succeeded once */
    bool upstream_live;     /* the VM's display is being forwarded (status screen hidden) */
    /* The notice banner (proxy_show_notice): drawn over rows 0..notice_h-1 while
     * upstream_live. notice_px is the rendered strip, notice_under the VM's pixels it
     * covers (kept current by the upstream thread), so removing it restores them exactly. */
    char *notice_text; /* NULL: no notice */
    uint8_t *notice_px, *notice_under;
    int notice_h; /* 0: nothing drawn */

    pthread_mutex_t end_lock;
    bool ended;
    bool end_desktop_lost; /* it ended because the VM's display went away */
    char end_reason[PROXY_REASON_MAX];
    int event_fd; /* eventfd, readable once ended */

    /* The one downstream client (libvncserver threads). */
    pthread_t client_thread;
    bool client_thread_started;
    int server_sock_ref; /* dup of libvncserver's socketpair end, for shutdown() */
    /* Set by the client's output thread once it announced the current size after the client
     * enabled DesktopSize (see on_display_hook in proxy.c). */
    bool size_announced;

    /* The pointer shape sent to clients that draw it themselves (RichCursor/XCursor), via
     * screen->getCursorPtr. screen->cursor stays NULL so that libvncserver never composites
     * a pointer into the framebuffer the upstream thread writes. Atomic pointer; replaced
     * only by proxy_set_cursor(). */
    rfbCursorPtr cursor;

    struct proxy_input_queue input;
    struct upstream *upstream;

    /* Input bookkeeping (atomics: libvncserver's client thread writes, anyone reads). */
    bool view_only;         /* drop every input event of the client */
    uint64_t last_input_ms; /* now_ms() of the last key/pointer event that counted; 0: none */
    int input_wake_ms;      /* options.input_wake_ms */
    int input_fd;           /* eventfd for input after a quiet spell, or -1 */

    /* The client's clipboard for the VM (UTF-8, converted from Latin-1 ClientCutText or
     * taken from the extended clipboard), from libvncserver's
     * client thread to the upstream thread, which sends it. Only the latest text waits;
     * text that arrives before a VM is attached is sent once it is. */
    pthread_mutex_t cut_lock; /* leaf: the two fields below */
    char *cut_to_vm;          /* NULL: nothing waiting */
    size_t cut_to_vm_len;
    int cut_fd; /* eventfd: readable while text waits */
};

/* Records why the proxy ended (first reason wins) and makes the event fd readable.
 * proxy_end_desktop_lost() is the same for the VM's display going away. */
void proxy_end(struct proxy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void proxy_end_desktop_lost(struct proxy *p, const char *reason);

/* With fb_lock held: replaces the downstream framebuffer with a cleared one of w x h
 * (overflow-checked, capped at PROXY_MAX_DIM) and tells the client (DesktopSize).
 * Returns 0, -E2BIG, -ENOMEM. */
int proxy_resize_locked(struct proxy *p, int w, int h);
/* With fb_lock held: draws the status text over the whole framebuffer and marks it. */
void proxy_draw_status_locked(struct proxy *p);
/* With fb_lock held, after the VM's display became live or was resized: draws the notice
 * banner (if any) over the framebuffer, saving what it covers. */
void proxy_notice_apply_locked(struct proxy *p);
/* From the client thread for each key, pointer or extended key event: false when the
 * client is view-only (drop the event); else records the time (proxy_last_input_ms) and
 * wakes input_fd after a quiet spell. */
bool proxy_input_allowed(struct proxy *p);
/* For the upstream thread: takes the clipboard text (UTF-8) waiting for the VM (NULL if
 * none) and resets cut_fd. The caller frees it. */
char *proxy_cut_to_vm_take(struct proxy *p, size_t *len);
/* For the upstream thread: the VM's clipboard (UTF-8) to the clients as Latin-1 cut
 * text, unless view-only. */
void proxy_cut_from_vm(struct proxy *p, const char *utf8, size_t len);
/* Replaces the pointer shape (c may be NULL: none) and frees the old one once no client
 * thread can be sending it. Called from one thread at a time (upstream thread or setup). */
void proxy_set_cursor(struct proxy *p, rfbCursorPtr c);
/* Size check shared by both sides: 1..PROXY_MAX_DIM each, byte size fits size_t. */
int proxy_fb_size(int w, int h, size_t *ret_bytes);

/* libvncserver/libvncclient log lines, routed to log_debug (library code logs at debug). */
void proxy_rfb_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- upstream.c ---- */

/* Process-global libvncclient settings (its log hooks). Called once. */
void upstream_global_init(void);

/* Does the RFB client handshake with the VM's display on fd (ownership taken), resizes the
 * screen and starts the upstream thread. Returns 0, -EPROTO, -E2BIG, -ENOMEM. */
int upstream_start(struct proxy *p, int fd, struct upstream **ret);
/* Stops and joins the upstream thread, closes the connection. NULL is fine. */
void upstream_free(struct upstream *u);

/* ---- extkey.c ---- */

/* Registers the process-global libvncserver extension for QEMU extended key events
 * (pseudo-encoding -258, client message 255/0). Idempotent and thread-safe. */
void extkey_register(void);
/* From the client-gone hook: frees the client's extension record. */
void extkey_client_gone(rfbClientPtr cl);
