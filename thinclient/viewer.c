#include "viewer.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <SDL2/SDL.h>

#include "input.h"
#include "layout.h"
#include "log.h"
#include "util.h"
#include "vnc.h"

struct viewer {
    char *title;
    bool fullscreen;
    Uint32 event_type; /* our SDL user event: "look at the vnc frame" */
    atomic_bool event_pending;

    SDL_Window *window;
    SDL_Renderer *renderer;
    SDL_Texture *texture;
    int fb_w, fb_h;

    struct vnc *vnc;
    struct input_keyboard keyboard;
    uint8_t buttons;
    int pointer_x, pointer_y;
};

int viewer_new(const struct viewer_options *o, struct viewer **ret)
{
    struct viewer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->title = strdup(o->title ? o->title : "vdi-client");
    if (!w->title) {
        free(w);
        return -ENOMEM;
    }
    w->fullscreen = o->fullscreen;
    SDL_SetHint(SDL_HINT_RENDER_SCALE_QUALITY, "linear");
    if (SDL_Init(SDL_INIT_VIDEO) < 0) {
        log_error("Cannot open a window: %s", SDL_GetError());
        free(w->title);
        free(w);
        return -EIO;
    }
    w->event_type = SDL_RegisterEvents(1);
    if (w->event_type == (Uint32)-1) {
        SDL_Quit();
        free(w->title);
        free(w);
        return -EIO;
    }
    input_keyboard_init(&w->keyboard);
    *ret = w;
    return 0;
}

void viewer_notify(void *userdata)
{
    struct viewer *w = userdata;
    if (atomic_exchange(&w->event_pending, true))
        return;
    SDL_Event e = {.type = w->event_type};
    if (SDL_PushEvent(&e) < 0)
        atomic_store(&w->event_pending, false);
}

static void sink_key(void *userdata, uint32_t keysym, uint32_t xt, bool down)
{
    struct viewer *w = userdata;
    vnc_send_key(w->vnc, keysym, xt, down);
}

/* The window size for a framebuffer: its own size, shrunk (aspect kept) to fit the
 * usable area of the display the window is on. */
static void window_size_for(struct viewer *w, int fb_w, int fb_h, int *ww, int *wh)
{
    SDL_Rect usable;
    int display = w->window ? SDL_GetWindowDisplayIndex(w->window) : 0;
    *ww = fb_w;
    *wh = fb_h;
    if (SDL_GetDisplayUsableBounds(display < 0 ? 0 : display, &usable) == 0 &&
        (fb_w > usable.w || fb_h > usable.h)) {
        struct layout l = layout_fit(usable.w, usable.h, fb_w, fb_h);
        *ww = l.w;
        *wh = l.h;
    }
}

static int create_window(struct viewer *w, int fb_w, int fb_h)
{
    int ww, wh;
    window_size_for(w, fb_w, fb_h, &ww, &wh);
    Uint32 flags = SDL_WINDOW_RESIZABLE | (w->fullscreen ? SDL_WINDOW_FULLSCREEN_DESKTOP : 0);
    w->window =
        SDL_CreateWindow(w->title, SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED, ww, wh, flags);
    if (!w->window)
        return log_error("Cannot create the window: %s", SDL_GetError()), -EIO;
    w->renderer = SDL_CreateRenderer(w->window, -1, 0);
    if (!w->renderer)
        return log_error("Cannot create a renderer: %s", SDL_GetError()), -EIO;
    SDL_RendererInfo info;
    if (SDL_GetRendererInfo(w->renderer, &info) == 0)
        log_debug("renderer=%s", info.name);
    SDL_StartTextInput();
    return 0;
}

/* Brings the texture up to date with the vnc frame. Returns 1 when something changed. */
static int update_frame(struct viewer *w)
{
    struct vnc_frame f;
    int changed = 0, r = 0;
    vnc_frame_lock(w->vnc, &f);
    if (!f.pixels)
        goto out;
    if (!w->window) {
        r = create_window(w, f.width, f.height);
        if (r < 0)
            goto out;
    }
    if (!w->texture || f.resized || f.width != w->fb_w || f.height != w->fb_h) {
        if (w->texture)
            SDL_DestroyTexture(w->texture);
        w->texture = SDL_CreateTexture(w->renderer, SDL_PIXELFORMAT_XBGR8888,
                                       SDL_TEXTUREACCESS_STREAMING, f.width, f.height);
        if (!w->texture) {
            log_error("Cannot create a %dx%d texture: %s", f.width, f.height, SDL_GetError());
            r = -EIO;
            goto out;
        }
        bool resize_window = w->fb_w != 0 && !(SDL_GetWindowFlags(w->window) &
                                               (SDL_WINDOW_FULLSCREEN | SDL_WINDOW_MAXIMIZED));
        w->fb_w = f.width;
        w->fb_h = f.height;
        if (resize_window) {
            int ww, wh;
            window_size_for(w, f.width, f.height, &ww, &wh);
            SDL_SetWindowSize(w->window, ww, wh);
        }
        f.dirty_x = f.dirty_y = 0;
        f.dirty_w = f.width;
        f.dirty_h = f.height;
    }
    if (f.dirty_w > 0 && f.dirty_h > 0) {
        SDL_Rect rect = {f.dirty_x, f.dirty_y, f.dirty_w, f.dirty_h};
        const uint32_t *src = f.pixels + (size_t)f.dirty_y * (size_t)f.width + (size_t)f.dirty_x;
        if (SDL_UpdateTexture(w->texture, &rect, src, f.width * 4) < 0)
            log_debug("SDL_UpdateTexture: %s", SDL_GetError());
        changed = 1;
    }
out:
    vnc_frame_unlock(w->vnc);
    return r < 0 ? r : changed;
}

static void render(struct viewer *w)
{
    if (!w->renderer)
        return;
    int ow, oh;
    SDL_SetRenderDrawColor(w->renderer, 0, 0, 0, 255);
    SDL_RenderClear(w->renderer);
    if (w->texture && SDL_GetRendererOutputSize(w->renderer, &ow, &oh) == 0) {
        struct layout l = layout_fit(ow, oh, w->fb_w, w->fb_h);
        SDL_Rect dst = {l.x, l.y, l.w, l.h};
        SDL_RenderCopy(w->renderer, w->texture, NULL, &dst);
    }
    SDL_RenderPresent(w->renderer);
}

static void pointer_to_fb(struct viewer *w, int wx, int wy)
{
    int ww, wh;
    if (!w->window || w->fb_w == 0)
        return;
    SDL_GetWindowSize(w->window, &ww, &wh);
    struct layout l = layout_fit(ww, wh, w->fb_w, w->fb_h);
    layout_window_to_fb(&l, w->fb_w, w->fb_h, wx, wy, &w->pointer_x, &w->pointer_y);
}

static void handle_input(struct viewer *w, const SDL_Event *e)
{
    struct input_sink sink = {sink_key, w};
    switch (e->type) {
    case SDL_KEYDOWN:
    case SDL_KEYUP:
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

int viewer_run(struct viewer *w, struct vnc *vnc)
{
    w->vnc = vnc;
    bool redraw = false;
    for (;;) {
        SDL_Event e;
        if (!SDL_WaitEvent(&e))
            return log_error("SDL_WaitEvent: %s", SDL_GetError()), -EIO;
        do {
            if (e.type == w->event_type) {
                atomic_store(&w->event_pending, false);
                if (vnc_ended(vnc))
                    return VIEWER_SESSION_ENDED;
                int r = update_frame(w);
                if (r < 0)
                    return r;
                if (r > 0)
                    redraw = true;
                continue;
            }
            switch (e.type) {
            case SDL_QUIT:
                return VIEWER_USER_QUIT;
            case SDL_WINDOWEVENT:
                switch (e.window.event) {
                case SDL_WINDOWEVENT_CLOSE:
                    return VIEWER_USER_QUIT;
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
            default:
                handle_input(w, &e);
                break;
            }
        } while (SDL_PollEvent(&e));
        if (redraw) {
            render(w);
            redraw = false;
        }
    }
}

void viewer_free(struct viewer *w)
{
    if (!w)
        return;
    if (w->texture)
        SDL_DestroyTexture(w->texture);
    if (w->renderer)
        SDL_DestroyRenderer(w->renderer);
    if (w->window)
        SDL_DestroyWindow(w->window);
    SDL_Quit();
    free(w->title);
    free(w);
}
