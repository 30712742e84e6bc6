#pragma once
/*
 * The SDL2 window: shows the remote framebuffer scaled to the window (aspect kept,
 * letterboxed), follows desktop size changes, and turns keyboard and mouse events into RFB
 * input (input.h) for the vnc thread. Runs on the main thread (SDL's rule). The window
 * opens when the first framebuffer arrives, so a failed session start shows no window.
 */
#include <stdbool.h>

struct vnc;
struct viewer;

struct viewer_options {
    const char *title;
    bool fullscreen;
};

enum viewer_result {
    VIEWER_USER_QUIT = 0, /* window closed, SIGINT/SIGTERM */
    VIEWER_SESSION_ENDED, /* the vnc thread ended (see vnc_stop()) */
};

/* Initialises SDL video. Returns 0 or -EIO (no display; SDL's message is logged). */
int viewer_new(const struct viewer_options *o, struct viewer **ret);

/* Wakes the viewer: the frame changed or the session ended. Thread-safe; pass as
 * vnc_params.on_frame with the viewer as userdata. */
void viewer_notify(void *viewer);

/* The event loop, until the user quits or the session ends. Returns an enum
 * viewer_result, or -errno (rendering failed). */
int viewer_run(struct viewer *w, struct vnc *vnc);

void viewer_free(struct viewer *w);
