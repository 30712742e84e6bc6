#pragma once
/*
 * The desktop in the ui.h window: shows the remote framebuffer scaled to the window
 * (aspect kept, letterboxed; so a desktop larger than the screen is scaled down), follows
 * desktop size changes, turns keyboard and mouse events into RFB input (input.h) for the
 * vnc thread, and keeps the clipboard in step both ways. Main thread only, except
 * viewer_notify().
 *
 * A viewer outlives one connection: after the session ends, the last frame stays, so
 * the app can draw "Reconnecting..." over it (viewer_set_overlay + viewer_render) and
 * run the next connection's vnc in the same viewer.
 *
 * Keys the viewer keeps for itself (documented in --help): Ctrl+Alt+Enter toggles full
 * screen (not in kiosk mode: there it goes to the desktop like everything else). Everything
 * else goes to the desktop; focus loss releases every held key and button there.
 *
 * Clipboard (text): the server's ServerCutText (vnc_params.on_clipboard =
 * viewer_clipboard_from_server) becomes the local clipboard, on the main thread through a
 * UI_EVENT_CLIPBOARD whose data1 is a malloc'd copy (whoever takes such an event off the
 * queue frees data1: viewer_run() does; the app's loop must between sessions). A local
 * clipboard change (SDL_CLIPBOARDUPDATE) goes to the server with vnc_send_clipboard(),
 * unless it is the text the server just sent; and the local clipboard is sent once when
 * a session starts. RFB cut text is Latin-1 (vnc.h): other characters arrive as '?'.
 *
 * Kiosk mode (ui_kiosk()): a window close request is ignored (viewer_new() also tells SDL
 * not to turn it into SDL_QUIT); only SDL_QUIT (SIGINT/SIGTERM) quits.
 */
#include <stdbool.h>

struct ui;
struct vnc;
struct viewer;

enum viewer_result {
    VIEWER_USER_QUIT = 0, /* window closed, SIGINT/SIGTERM (kiosk: SIGINT/SIGTERM only) */
    VIEWER_SESSION_ENDED, /* the vnc thread ended (see vnc_stop()) */
};

/* The ui must outlive the viewer. Returns 0 or -ENOMEM. */
int viewer_new(struct ui *ui, struct viewer **ret);

/* Wakes the viewer: the frame changed or the session ended. Thread-safe; pass as
 * vnc_params.on_frame with the viewer as userdata. */
void viewer_notify(void *viewer);

/* vnc_params.on_clipboard (thread-safe): text the server put on its clipboard. */
void viewer_clipboard_from_server(void *viewer, const char *utf8);

/* The event loop with vnc, until the user quits or the session ends. Returns an enum
 * viewer_result, or -errno (rendering failed). It returns VIEWER_SESSION_ENDED only once
 * vnc ended; the frame stays (with the server's last picture) for viewer_render().
 * Events of other ui_post() codes than the viewer's (UI_EVENT_FRAME, UI_EVENT_CLIPBOARD)
 * that arrive meanwhile are kept and pushed back onto the SDL queue, in their order,
 * when it returns: the caller's loop sees them after the session (none is lost).
 * Call it again with the next connection's vnc: the texture is reused (a new frame of
 * the same size just replaces its pixels), input state starts fresh, and the local
 * clipboard is sent to the new session. */
int viewer_run(struct viewer *w, struct vnc *vnc);

/* Text drawn over the desktop (screen_draw_overlay) by viewer_render() and while
 * viewer_run() runs; NULL for none. The text is copied. */
void viewer_set_overlay(struct viewer *w, const char *text);
/* Draws the last frame (black when none yet) and the overlay, and presents. */
void viewer_render(struct viewer *w);
/* True once a frame has been shown. */
bool viewer_has_frame(const struct viewer *w);

void viewer_free(struct viewer *w);
