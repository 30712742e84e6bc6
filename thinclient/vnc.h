#pragma once
/*
 * The one place libvncclient lives in vdi-client. A thread ("vdi-vnc") owns the rfbClient:
 * it runs rfbInitClient on the local socketpair end (relay.h plays the server there), then
 * reads and decodes server messages and is the only writer (libvncclient 0.9.14 writes are
 * unlocked, ENVIRONMENT.md): input from the UI thread goes through a queue and an eventfd.
 *
 * Decoded pixels are copied, per FramebufferUpdate, into a shared frame that the UI thread
 * reads under vnc_frame_lock(); so rendering never waits for the network and never sees a
 * half-decoded rectangle. Pixels are 32-bit values with red at bit 0, green at 8, blue at
 * 16 (SDL_PIXELFORMAT_XBGR8888).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VNC_READ_TIMEOUT_S 60 /* a message stalled halfway for this long ends the session */
/* --screenshot: a server that has not sent every pixel this long (plus the delay) after
 * the session started gets what arrived written, and VNC_END_INCOMPLETE. */
#define VNC_SCREENSHOT_TIMEOUT_MS 15000
#define VNC_RED_SHIFT 0
#define VNC_GREEN_SHIFT 8
#define VNC_BLUE_SHIFT 16
/* Clipboard text is capped at this many bytes each way (Latin-1 on the wire; libvncclient
 * 0.9.14 itself ends the session on a ServerCutText longer than 1 MiB, without reading or
 * allocating it). */
#define VNC_CLIPBOARD_MAX (1024 * 1024)

struct vnc;

struct vnc_params {
    int fd; /* the local socketpair end; taken, also on failure */
    int quality, compress;
    const char *screenshot_path; /* NULL, or: write the first complete frame, then end */
    int screenshot_delay_ms;
    int screenshot_timeout_ms; /* 0: VNC_SCREENSHOT_TIMEOUT_MS */
    /* Called on the vnc thread when the shared frame changed; keep it cheap (post an
     * event). May be NULL. */
    void (*on_frame)(void *userdata);
    /* Called on the vnc thread with the text the server put on its clipboard (ServerCutText,
     * Latin-1 on the wire, converted to UTF-8; NUL bytes end it). The string is valid only
     * during the call: copy it. May be NULL. */
    void (*on_clipboard)(void *userdata, const char *utf8);
    void *userdata; /* for on_frame and on_clipboard */
};

enum vnc_end {
    VNC_RUNNING,
    VNC_END_STOPPED,     /* vnc_stop() */
    VNC_END_SCREENSHOT,  /* --screenshot written */
    VNC_END_INCOMPLETE,  /* --screenshot written, but the server never sent every pixel */
    VNC_END_INIT_FAILED, /* rfbInitClient failed */
    VNC_END_CLOSED,      /* reading or writing failed: server gone or protocol error */
    VNC_END_ERROR,       /* local failure (memory, screenshot file) */
};

int vnc_start(const struct vnc_params *p, struct vnc **ret);

/* True once the vnc thread ended (or is about to: the end reason is final). */
bool vnc_ended(struct vnc *v);

/* An eventfd that becomes readable when the vnc thread ended by itself. */
int vnc_end_fd(struct vnc *v);

/* Input, from any thread (queued; the vnc thread sends). xt_keycode != 0 sends a QEMU
 * extended key event when the server acknowledged them, else a plain KeyEvent. */
void vnc_send_key(struct vnc *v, uint32_t keysym, uint32_t xt_keycode, bool down);
void vnc_send_pointer(struct vnc *v, int x, int y, uint8_t button_mask);
/* Puts utf8 on the server's clipboard (ClientCutText), from any thread. RFB 3.8 cut text
 * is Latin-1 (libvncclient 0.9.14 has no extended/UTF-8 clipboard): characters outside
 * Latin-1 and invalid UTF-8 become '?', and the text is cut at VNC_CLIPBOARD_MAX bytes. Only
 * the latest text waits to be sent (the vnc thread sends it before queued input). */
void vnc_send_clipboard(struct vnc *v, const char *utf8);
/* True once the server acknowledged QEMU extended key events. */
bool vnc_extended_keys(struct vnc *v);

struct vnc_frame {
    const uint32_t *pixels; /* width * height, stride = width; NULL before ServerInit */
    int width, height;
    bool resized;                           /* size changed since the last unlock */
    int dirty_x, dirty_y, dirty_w, dirty_h; /* changed since the last unlock (w 0: none) */
};

/* Locks the shared frame and describes it; vnc_frame_unlock() clears dirty and resized. */
void vnc_frame_lock(struct vnc *v, struct vnc_frame *f);
void vnc_frame_unlock(struct vnc *v);

/* Stops the thread (if running) and joins it. Returns why it ended; detail (may be NULL)
 * receives libvncclient's last complaint, if any. */
enum vnc_end vnc_stop(struct vnc *v, char *detail, size_t detail_size);

/* Stops and frees. NULL is fine. */
void vnc_free(struct vnc *v);
