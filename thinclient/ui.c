#include "ui.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <SDL2/SDL_ttf.h>

#include "layout.h"
#include "log.h"
#include "util.h"

/* Point sizes: readable on a 1024x768 window and on a 1080p kiosk screen alike. */
static const int font_points[UI_N_FONTS] = {14, 18, 28};

const SDL_Color ui_color_background = {0x1e, 0x26, 0x30, 255};
const SDL_Color ui_color_panel = {0x2b, 0x35, 0x42, 255};
const SDL_Color ui_color_text = {0xf2, 0xf4, 0xf7, 255};
const SDL_Color ui_color_dim = {0xa0, 0xaa, 0xb6, 255};
const SDL_Color ui_color_accent = {0x2f, 0x80, 0xed, 255};
const SDL_Color ui_color_error = {0xff, 0x6b, 0x6b, 255};
const SDL_Color ui_color_warning = {0xff, 0xc1, 0x4d, 255};
const SDL_Color ui_color_field = {0x12, 0x18, 0x20, 255};
const SDL_Color ui_color_focus = {0x56, 0x9c, 0xff, 255};

struct ui {
    SDL_Window *window;
    SDL_Renderer *renderer;
    TTF_Font *fonts[UI_N_FONTS];
    Uint32 event_type;
    bool kiosk;
    bool ttf_up;
    /* The window's size out of full screen: the size it had, or the one ui_fit_window()
     * asked for meanwhile; set again when full screen ends (ui_set_fullscreen()). */
    int windowed_w, windowed_h;
};

/* "X.ttf" -> "X-Bold.ttf" when that file exists, else the regular file. */
static char *bold_variant(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot || dot == path)
        return strdup(path);
    char *bold = NULL;
    if (asprintf(&bold, "%.*s-Bold%s", (int)(dot - path), path, dot) < 0)
        return NULL;
    if (access(bold, R_OK) == 0)
        return bold;
    free(bold);
    return strdup(path);
}

static int open_fonts(struct ui *u, const char *path)
{
    _cleanup_(freep) char *bold = bold_variant(path);
    if (!bold)
        return -ENOMEM;
    for (int i = 0; i < UI_N_FONTS; i++) {
        const char *file = i == UI_FONT_TITLE ? bold : path;
        u->fonts[i] = TTF_OpenFont(file, font_points[i]);
        if (!u->fonts[i]) {
            log_error("Cannot open the font %s: %s (install fonts-dejavu-core or set 'font')", file,
                      TTF_GetError());
            return -ENOENT;
        }
    }
    return 0;
}

int ui_new(const struct ui_options *o, struct ui **ret)
{
    struct ui *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->kiosk = o->kiosk;
    SDL_SetHint(SDL_HINT_RENDER_SCALE_QUALITY, "linear");
    /* Kiosk: window-manager and system shortcuts (Alt+Tab, Super) go to the desktop, not to
     * the host; no screensaver on a device whose only job is this window. */
    /* A window close arrives as SDL_WINDOWEVENT_CLOSE, which each screen decides on (a
     * kiosk ignores it); SDL_QUIT then only means SIGINT/SIGTERM. */
    SDL_SetHint(SDL_HINT_QUIT_ON_LAST_WINDOW_CLOSE, "0");
    if (o->kiosk) {
        SDL_SetHint(SDL_HINT_GRAB_KEYBOARD, "1");
        SDL_SetHint(SDL_HINT_VIDEO_MINIMIZE_ON_FOCUS_LOSS, "0");
    }
    if (SDL_Init(SDL_INIT_VIDEO) < 0) {
        log_error("Cannot open a window: %s", SDL_GetError());
        free(u);
        return -EIO;
    }
    int r = -EIO;
    if (TTF_Init() < 0) {
        log_error("Cannot start the font renderer: %s", TTF_GetError());
        goto fail;
    }
    u->ttf_up = true;
    r = open_fonts(u, o->font_path && o->font_path[0] ? o->font_path : UI_DEFAULT_FONT);
    if (r < 0)
        goto fail;
    r = -EIO;
    u->event_type = SDL_RegisterEvents(1);
    if (u->event_type == (Uint32)-1)
        goto fail;

    Uint32 flags = SDL_WINDOW_RESIZABLE;
    if (o->fullscreen || o->kiosk)
        flags |= SDL_WINDOW_FULLSCREEN_DESKTOP;
    u->window =
        SDL_CreateWindow(o->title ? o->title : "vdi", SDL_WINDOWPOS_CENTERED,
                         SDL_WINDOWPOS_CENTERED, UI_DEFAULT_WIDTH, UI_DEFAULT_HEIGHT, flags);
    if (!u->window) {
        log_error("Cannot create the window: %s", SDL_GetError());
        goto fail;
    }
    /* On KMS/DRM (a kiosk without X) SDL 2.26 picks desktop OpenGL, whose frames never
     * reached the screen with Mesa (only the first clear showed, e2e_kiosk_kms); OpenGL ES
     * 2 is EGL's own API there. A SDL_RENDER_DRIVER set by the user still wins. */
    const char *video = SDL_GetCurrentVideoDriver();
    if (video && SDL_strcasecmp(video, "KMSDRM") == 0 && !SDL_GetHint(SDL_HINT_RENDER_DRIVER))
        SDL_SetHint(SDL_HINT_RENDER_DRIVER, "opengles2");
    u->renderer = SDL_CreateRenderer(u->window, -1, 0);
    if (!u->renderer) {
        log_error("Cannot create a renderer: %s", SDL_GetError());
        goto fail;
    }
    SDL_RendererInfo info;
    int out_w = 0, out_h = 0;
    ui_size(u, &out_w, &out_h);
    if (SDL_GetRendererInfo(u->renderer, &info) == 0)
        log_debug("renderer=%s video=%s size=%dx%d", info.name, SDL_GetCurrentVideoDriver(), out_w,
                  out_h);
    if (o->kiosk) {
        SDL_SetWindowGrab(u->window, SDL_TRUE);
        SDL_DisableScreenSaver();
    }
    SDL_StartTextInput();
    *ret = u;
    return 0;
fail:
    ui_free(u);
    return r;
}

void ui_free(struct ui *u)
{
    if (!u)
        return;
    for (int i = 0; i < UI_N_FONTS; i++)
        if (u->fonts[i])
            TTF_CloseFont(u->fonts[i]);
    if (u->renderer)
        SDL_DestroyRenderer(u->renderer);
    if (u->window)
        SDL_DestroyWindow(u->window);
    if (u->ttf_up)
        TTF_Quit();
    SDL_Quit();
    free(u);
}

SDL_Window *ui_window(struct ui *u)
{
    return u->window;
}

SDL_Renderer *ui_renderer(struct ui *u)
{
    return u->renderer;
}

bool ui_kiosk(const struct ui *u)
{
    return u->kiosk;
}

Uint32 ui_event_type(const struct ui *u)
{
    return u->event_type;
}

void ui_post(struct ui *u, int code, void *data)
{
    SDL_Event e = {.type = u->event_type};
    e.user.code = code;
    e.user.data1 = data;
    if (SDL_PushEvent(&e) < 0)
        log_warning("Cannot wake the window thread: %s", SDL_GetError());
}

bool ui_fullscreen(struct ui *u)
{
    return (SDL_GetWindowFlags(u->window) & SDL_WINDOW_FULLSCREEN) != 0;
}

void ui_set_fullscreen(struct ui *u, bool on)
{
    if (u->kiosk || on == ui_fullscreen(u))
        return;
    if (on)
        SDL_GetWindowSize(u->window, &u->windowed_w, &u->windowed_h);
    if (SDL_SetWindowFullscreen(u->window, on ? SDL_WINDOW_FULLSCREEN_DESKTOP : 0) < 0) {
        log_warning("Cannot switch full screen %s: %s", on ? "on" : "off", SDL_GetError());
        return;
    }
    /* Without a window manager (Xvfb, a bare X server) SDL 2.26 can keep the full-screen
     * size as the window's size after this, while the X window is back at its own: every
     * frame was then drawn for the wrong size (a still desktop stayed out of view). Setting
     * the size makes both agree; with a window manager it is the size it restores anyway. */
    if (!on && u->windowed_w > 0)
        SDL_SetWindowSize(u->window, u->windowed_w, u->windowed_h);
    log_info("full screen %s", on ? "on" : "off");
}

void ui_fit_window(struct ui *u, int w, int h)
{
    Uint32 flags = SDL_GetWindowFlags(u->window);
    if (flags & SDL_WINDOW_MAXIMIZED)
        return;
    SDL_Rect usable;
    int display = SDL_GetWindowDisplayIndex(u->window);
    if (SDL_GetDisplayUsableBounds(display < 0 ? 0 : display, &usable) == 0 &&
        (w > usable.w || h > usable.h)) {
        struct layout l = layout_fit(usable.w, usable.h, w, h);
        w = l.w;
        h = l.h;
    }
    if (flags & SDL_WINDOW_FULLSCREEN) { /* for when full screen ends */
        u->windowed_w = w;
        u->windowed_h = h;
        return;
    }
    SDL_SetWindowSize(u->window, w, h);
}

void ui_size(struct ui *u, int *w, int *h)
{
    if (SDL_GetRendererOutputSize(u->renderer, w, h) < 0)
        SDL_GetWindowSize(u->window, w, h);
}

int ui_font_height(struct ui *u, enum ui_font f)
{
    return TTF_FontHeight(u->fonts[f]);
}

int ui_text_width(struct ui *u, enum ui_font f, const char *utf8)
{
    int w = 0, h = 0;
    if (!utf8[0] || TTF_SizeUTF8(u->fonts[f], utf8, &w, &h) < 0)
        return 0;
    return w;
}

int ui_draw_text(struct ui *u, enum ui_font f, int x, int y, SDL_Color c, const char *utf8)
{
    if (!utf8[0])
        return 0;
    SDL_Surface *s = TTF_RenderUTF8_Blended(u->fonts[f], utf8, c);
    if (!s) {
        log_debug("TTF_RenderUTF8_Blended: %s", TTF_GetError());
        return 0;
    }
    SDL_Texture *t = SDL_CreateTextureFromSurface(u->renderer, s);
    int w = s->w;
    if (t) {
        SDL_Rect dst = {x, y, s->w, s->h};
        SDL_RenderCopy(u->renderer, t, NULL, &dst);
        SDL_DestroyTexture(t);
    }
    SDL_FreeSurface(s);
    return w;
}

/* Length of the UTF-8 sequence starting at s (1 for a stray byte, so we always advance). */
static size_t utf8_step(const char *s)
{
    unsigned char c = (unsigned char)s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    for (size_t i = 1; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            return 1;
    return n;
}

/* The longest prefix of text[0..len) that fits max_w: ends after a space when one is in
 * range, else as many whole characters as fit (at least one). */
static size_t fitting_prefix(struct ui *u, enum ui_font f, const char *text, size_t len, int max_w)
{
    char buf[1024];
    size_t best = 0, last_space = 0;
    for (size_t i = 0; i < len && i < sizeof(buf) - 1;) {
        size_t step = utf8_step(text + i);
        memcpy(buf, text, i + step);
        buf[i + step] = 0;
        if (best > 0 && ui_text_width(u, f, buf) > max_w)
            break;
        i += step;
        best = i;
        if (text[i - 1] == ' ')
            last_space = i;
    }
    if (best < len && last_space > 0)
        return last_space;
    return best;
}

/* Lays out (and, when draw, draws) wrapped text; returns the height. Explicit newlines
 * start new lines. */
static int wrap(struct ui *u, enum ui_font f, int x, int y, int max_w, SDL_Color c,
                const char *utf8, bool draw)
{
    int line_h = ui_font_height(u, f), height = 0;
    const char *p = utf8;
    char line[1024];
    while (*p) {
        size_t para = strcspn(p, "\n");
        const char *q = p;
        do {
            size_t n = para - (size_t)(q - p);
            size_t take = n ? fitting_prefix(u, f, q, n, max_w) : 0;
            if (take >= sizeof(line))
                take = sizeof(line) - 1;
            memcpy(line, q, take);
            line[take] = 0;
            if (draw)
                ui_draw_text(u, f, x, y + height, c, line);
            height += line_h;
            q += take;
            while (q < p + para && *q == ' ')
                q++;
        } while (q < p + para);
        p += para;
        if (*p == '\n')
            p++;
    }
    return height;
}

int ui_draw_text_wrapped(struct ui *u, enum ui_font f, int x, int y, int max_w, SDL_Color c,
                         const char *utf8)
{
    return wrap(u, f, x, y, max_w, c, utf8, true);
}

int ui_text_wrapped_height(struct ui *u, enum ui_font f, int max_w, const char *utf8)
{
    return wrap(u, f, 0, 0, max_w, ui_color_text, utf8, false);
}

void ui_clear(struct ui *u, SDL_Color c)
{
    SDL_SetRenderDrawColor(u->renderer, c.r, c.g, c.b, c.a);
    SDL_RenderClear(u->renderer);
}

void ui_fill_rect(struct ui *u, SDL_Rect r, SDL_Color c)
{
    SDL_SetRenderDrawBlendMode(u->renderer, c.a < 255 ? SDL_BLENDMODE_BLEND : SDL_BLENDMODE_NONE);
    SDL_SetRenderDrawColor(u->renderer, c.r, c.g, c.b, c.a);
    SDL_RenderFillRect(u->renderer, &r);
}

void ui_draw_rect(struct ui *u, SDL_Rect r, SDL_Color c, int thickness)
{
    SDL_SetRenderDrawColor(u->renderer, c.r, c.g, c.b, c.a);
    for (int i = 0; i < thickness && r.w > 2 * i && r.h > 2 * i; i++) {
        SDL_Rect ri = {r.x + i, r.y + i, r.w - 2 * i, r.h - 2 * i};
        SDL_RenderDrawRect(u->renderer, &ri);
    }
}

void ui_present(struct ui *u)
{
    SDL_RenderPresent(u->renderer);
}
