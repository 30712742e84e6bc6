#include "viewer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <SDL2/SDL.h>

#include "input.h"
#include "layout.h"
#include "log.h"
#include "screens.h"
#include "ui.h"
#include "util.h"
#include "vnc.h"

struct viewer {
    struct ui *ui;
    atomic_bool frame_pending; /* a UI_EVENT_FRAME is queued: do not post another */

    SDL_Texture *texture; /* the last frame; kept after the session ended */
    int fb_w, fb_h;
    bool have_frame;
    char *overlay;

    struct vnc *vnc; /* the session viewer_run() runs, NULL before the first */
    struct input_keyboard keyboard;
    uint8_t buttons;
    int pointer_x, pointer_y;
    bool swallowed[SDL_NUM_SCANCODES]; /* our shortcut's key is down: its release is ours */

    /* The clipboard text both sides agree on (last received from the server, or last
     * sent): a local clipboard update with this text is not sent back. */
    char *clipboard_last;

    /* ui_post() events of other codes, seen while viewer_run() runs: pushed back onto the
     * queue, in order, when it returns. */
    SDL_Event *deferred;
    size_t n_deferred, deferred_size;
    bool render_again; /* the window was resized: draw once more after it settled */
};

int viewer_new(struct ui *ui, struct viewer **ret)
{
    struct viewer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->ui = ui;
    atomic_init(&w->frame_pending, false);
    input_keyboard_init(&w->keyboard);
    *ret = w;
    return 0;
}

void viewer_notify(void *userdata)
{
    struct viewer *w = userdata;
    if (atomic_exchange(&w->frame_pending, true))
        return;
    ui_post(w->ui, UI_EVENT_FRAME, NULL);
}

void viewer_clipboard_from_server(void *userdata, const char *utf8)
{
    struct viewer *w = userdata;
    char *copy = strdup(utf8);
    if (!copy) {
        log_warning("no memory for the clipboard text from the server");
        return;
    }
    ui_post(w->ui, UI_EVENT_CLIPBOARD, copy);
}

void viewer_set_overlay(struct viewer *w, const char *text)
{
    free(w->overlay);
    w->overlay = text ? strdup(text) : NULL;
}

bool viewer_has_frame(const struct viewer *w)
{
    return w->have_frame;
}

/* ---- the frame ------------------------------------------------------------------------ */

/* Brings the texture up to date with the vnc frame. Returns 1 when something changed,
 * 0 when not, -EIO when no texture could be made. */
static int update_frame(struct viewer *w)
{
    struct vnc_frame f;
    int changed = 0, r = 0;
    vnc_frame_lock(w->vnc, &f);
    if (!f.pixels)
        goto out;
    if (!w->texture || f.width != w->fb_w || f.height != w->fb_h) {
        SDL_Texture *t = SDL_CreateTexture(ui_renderer(w->ui), SDL_PIXELFORMAT_XBGR8888,
                                           SDL_TEXTUREACCESS_STREAMING, f.width, f.height);
        if (!t) {
            log_error("Cannot create a %dx%d texture: %s", f.width, f.height, SDL_GetError());
            r = -EIO;
            goto out;
        }
        if (w->texture)
            SDL_DestroyTexture(w->texture);
        w->texture = t;
        w->fb_w = f.width;
        w->fb_h = f.height;
        ui_fit_window(w->ui, f.width, f.height); /* not when full screen or maximised */
        /* A window resize can take effect after the next present (seen with Mesa on
         * Xvfb: that frame went to the old-size buffer), and a still desktop sends no
         * further updates: draw once more shortly after. */
        w->render_again = true;
        f.dirty_x = f.dirty_y = 0;
        f.dirty_w = f.width;
        f.dirty_h = f.height;
    }
    /* A new session's first frame of the same size reuses the texture: vnc.c marks all of
     * it dirty (resized), so every pixel is replaced. */
    if (f.dirty_w > 0 && f.dirty_h > 0) {
        SDL_Rect rect = {f.dirty_x, f.dirty_y, f.dirty_w, f.dirty_h};
        const uint32_t *src = f.pixels + (size_t)f.dirty_y * (size_t)f.width + (size_t)f.dirty_x;
        if (SDL_UpdateTexture(w->texture, &rect, src, f.width * 4) < 0)
            log_debug("SDL_UpdateTexture: %s", SDL_GetError());
        w->have_frame = true;
        changed = 1;
    }
out:
    vnc_frame_unlock(w->vnc);
    return r < 0 ? r : changed;
}

void viewer_render(struct viewer *w)
{
    SDL_Renderer *renderer = ui_renderer(w->ui);
    int ow, oh;
    SDL_SetRenderDrawColor(renderer, 0, 0, 0, 255);
    SDL_RenderClear(renderer);
    if (w->texture && w->have_frame) {
        ui_size(w->ui, &ow, &oh);
        struct layout l = layout_fit(ow, oh, w->fb_w, w->fb_h);
        SDL_Rect dst = {l.x, l.y, l.w, l.h};
        SDL_RenderCopy(renderer, w->texture, NULL, &dst);
    }
    if (w->overlay)
        screen_draw_overlay(w->ui, w->overlay);
    ui_present(w->ui);
}

/* ---- input ---------------------------------------------------------------------------- */

static void sink_key(void *userdata, uint32_t keysym, uint32_t xt, bool down)
{
    struct viewer *w = userdata;
    vnc_send_key(w->vnc, keysym, xt, down);
}

static void pointer_to_fb(struct viewer *w, int wx, int wy)
{
    int ww, wh;
    if (w->fb_w == 0)
        return;
    SDL_GetWindowSize(ui_window(w->ui), &ww, &wh);
    struct layout l = layout_fit(ww, wh, w->fb_w, w->fb_h);
    layout_window_to_fb(&l, w->fb_w, w->fb_h, wx, wy, &w->pointer_x, &w->pointer_y);
}

/* Ctrl+Alt+Enter toggles full screen (not in kiosk mode, where it goes to the desktop).
 * Returns true when the event was ours: the press, its repeats and its release. */
static bool shortcut_key(struct viewer *w, const SDL_KeyboardEvent *k)
{
    SDL_Scancode sc = k->keysym.scancode;
    if ((unsigned)sc >= SDL_NUM_SCANCODES)
        return false;
    if (k->type == SDL_KEYUP) {
        bool ours = w->swallowed[sc];
        w->swallowed[sc] = false;
        return ours;
    }
    if (w->swallowed[sc])
        return true; /* key repeat */
    bool enter = k->keysym.sym == SDLK_RETURN || k->keysym.sym == SDLK_KP_ENTER;
    if (!enter || !(k->keysym.mod & KMOD_CTRL) || !(k->keysym.mod & KMOD_ALT) || ui_kiosk(w->ui))
        return false;
    w->swallowed[sc] = true;
    ui_set_fullscreen(w->ui, !ui_fullscreen(w->ui));
    return true;
}

static void handle_input(struct viewer *w, const SDL_Event *e)
{
    struct input_sink sink = {sink_key, w};
    switch (e->type) {
    case SDL_KEYDOWN:
    case SDL_KEYUP:
        if (!shortcut_key(w, &e->key))
            input_keyboard_key(&w->keyboard, &e->key, vnc_extended_keys(w->vnc), &sink);
        break;
    case SDL_TEXTINPUT:
        if (!vnc_extended_keys(w->vnc))
            input_keyboard_text(&w->keyboard, e->text.text, &sink);
        break;
    case SDL_MOUSEMOTION:
        pointer_to_fb(w, e->motion.x, e->motion.y);
        vnc_send_pointer(w->vnc, w->pointer_x, w->pointer_y, w->buttons);
        break;
    case SDL_MOUSEBUTTONDOWN:
    case SDL_MOUSEBUTTONUP: {
        uint8_t bit = input_button_mask(e->button.button);
        if (!bit)
            break;
        if (e->type == SDL_MOUSEBUTTONDOWN)
            w->buttons |= bit;
        else
            w->buttons &= (uint8_t)~bit;
        pointer_to_fb(w, e->button.x, e->button.y);
        vnc_send_pointer(w->vnc, w->pointer_x, w->pointer_y, w->buttons);
        break;
    }
    case SDL_MOUSEWHEEL: {
        bool flipped = e->wheel.direction == SDL_MOUSEWHEEL_FLIPPED;
        int steps_y = abs(e->wheel.y), steps_x = abs(e->wheel.x);
        for (int i = 0; i < steps_y && i < 10; i++) {
            uint8_t bit = input_wheel_mask(0, e->wheel.y, flipped);
            vnc_send_pointer(w->vnc, w->pointer_x, w->pointer_y, w->buttons | bit);
            vnc_send_pointer(w->vnc, w->pointer_x, w->pointer_y, w->buttons);
        }
        for (int i = 0; i < steps_x && i < 10; i++) {
            uint8_t bit = input_wheel_mask(e->wheel.x, 0, flipped);
            vnc_send_pointer(w->vnc, w->pointer_x, w->pointer_y, w->buttons | bit);
            vnc_send_pointer(w->vnc, w->pointer_x, w->pointer_y, w->buttons);
        }
        break;
    }
    default:
        break;
    }
}

static void release_everything(struct viewer *w)
{
    struct input_sink sink = {sink_key, w};
    input_keyboard_release_all(&w->keyboard, &sink);
    if (w->buttons) {
        w->buttons = 0;
        vnc_send_pointer(w->vnc, w->pointer_x, w->pointer_y, 0);
    }
}

/* ---- clipboard -------------------------------------------------------------------------- */

static void clipboard_remember(struct viewer *w, const char *text)
{
    free(w->clipboard_last);
    w->clipboard_last = strdup(text); /* NULL on no memory: at worst one echo */
}

/* Text from the server (UI_EVENT_CLIPBOARD; takes text). */
static void clipboard_from_server(struct viewer *w, char *text)
{
    if (SDL_SetClipboardText(text) < 0)
        log_warning("Cannot set the local clipboard: %s", SDL_GetError());
    clipboard_remember(w, text);
    free(text);
}

/* The local clipboard changed (SDL_CLIPBOARDUPDATE), or a session starts (always):
 * sends it unless it is what the server sent us last. */
static void clipboard_to_server(struct viewer *w, bool always)
{
    if (!SDL_HasClipboardText())
        return;
    char *text = SDL_GetClipboardText();
    if (text && text[0] && (always || !w->clipboard_last || strcmp(text, w->clipboard_last) != 0)) {
        vnc_send_clipboard(w->vnc, text);
        clipboard_remember(w, text);
    }
    SDL_free(text);
}

/* ---- the loop ------------------------------------------------------------------------- */

static int defer_event(struct viewer *w, const SDL_Event *e)
{
    if (w->n_deferred == w->deferred_size) {
        size_t size = w->deferred_size ? 2 * w->deferred_size : 8;
        SDL_Event *d = reallocarray(w->deferred, size, sizeof(*d));
        if (!d)
            return -ENOMEM;
        w->deferred = d;
        w->deferred_size = size;
    }
    w->deferred[w->n_deferred++] = *e;
    return 0;
}

/* Pushes the deferred events back for the caller's loop, and returns r. */
static int viewer_leave(struct viewer *w, int r)
{
    for (size_t i = 0; i < w->n_deferred; i++)
        if (SDL_PushEvent(&w->deferred[i]) < 0)
            log_warning("Cannot requeue an event: %s", SDL_GetError());
    w->n_deferred = 0;
    return r;
}

/* A session starts in this viewer: fresh input state, our clipboard to the server. */
static void session_start(struct viewer *w, struct vnc *vnc)
{
    w->vnc = vnc;
    input_keyboard_init(&w->keyboard);
    w->buttons = 0;
    memset(w->swallowed, 0, sizeof(w->swallowed));
    clipboard_to_server(w, true);
}

int viewer_run(struct viewer *w, struct vnc *vnc)
{
    if (w->vnc != vnc)
        session_start(w, vnc);
    /* The caller's loop (the "Reconnecting" screen, the session handoff) may have taken a
     * UI_EVENT_FRAME of this session: allow the next notification, then take what the frame
     * already holds. Otherwise a still desktop, which sends nothing more, stays black. */
    atomic_store(&w->frame_pending, false);
    int r = update_frame(w);
    if (r < 0)
        return viewer_leave(w, r);
    if (vnc_ended(vnc))
        return VIEWER_SESSION_ENDED;

    Uint32 ui_type = ui_event_type(w->ui);
    bool redraw = true;
    for (;;) {
        if (redraw) {
            viewer_render(w);
            redraw = false;
        }
        SDL_Event e;
        if (w->render_again) {
            if (!SDL_WaitEventTimeout(&e, 200)) {
                w->render_again = false;
                redraw = true;
                continue;
            }
        } else if (!SDL_WaitEvent(&e)) {
            log_error("SDL_WaitEvent: %s", SDL_GetError());
            return viewer_leave(w, -EIO);
        }
        do {
            if (e.type == ui_type) {
                if (e.user.code == UI_EVENT_FRAME) {
                    atomic_store(&w->frame_pending, false);
                    r = update_frame(w);
                    if (r < 0)
                        return viewer_leave(w, r);
                    redraw |= r > 0;
                    if (vnc_ended(vnc)) {
                        viewer_render(w); /* the server's last picture, e.g. its reason */
                        return viewer_leave(w, VIEWER_SESSION_ENDED);
                    }
                } else if (e.user.code == UI_EVENT_CLIPBOARD) {
                    clipboard_from_server(w, e.user.data1);
                } else if (defer_event(w, &e) < 0) {
                    log_error("no memory to keep event code=%d for later: dropped", e.user.code);
                }
                continue;
            }
            switch (e.type) {
            case SDL_QUIT: /* also SIGINT/SIGTERM */
                return viewer_leave(w, VIEWER_USER_QUIT);
            case SDL_WINDOWEVENT:
                switch (e.window.event) {
                case SDL_WINDOWEVENT_CLOSE:
                    if (!ui_kiosk(w->ui))
                        return viewer_leave(w, VIEWER_USER_QUIT);
                    break;
                case SDL_WINDOWEVENT_FOCUS_LOST:
                    release_everything(w);
                    break;
                case SDL_WINDOWEVENT_SIZE_CHANGED:
                case SDL_WINDOWEVENT_EXPOSED:
                    redraw = true;
                    break;
                default:
                    break;
                }
                break;
            case SDL_CLIPBOARDUPDATE:
                clipboard_to_server(w, false);
                break;
            default:
                handle_input(w, &e);
                break;
            }
        } while (SDL_PollEvent(&e));
    }
}

void viewer_free(struct viewer *w)
{
    if (!w)
        return;
    if (w->texture)
        SDL_DestroyTexture(w->texture);
    free(w->deferred); /* empty: viewer_run() hands them back when it returns */
    free(w->overlay);
    free(w->clipboard_last);
    free(w);
}
