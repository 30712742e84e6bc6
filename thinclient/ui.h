#pragma once
/*
 * The one SDL2 window of vdi-client, shared by every screen (login, chooser, trust prompt,
 * messages) and by the desktop viewer, with the fonts (SDL2_ttf) those screens draw in.
 * Main thread only, except ui_post().
 *
 * Drawing is immediate: a screen clears, draws text and boxes, and presents. Text is
 * UTF-8; strings that came from the network must already be sanitised (handshake.h does
 * that for reasons).
 */
#include <stdbool.h>

#include <SDL2/SDL.h>

#define UI_DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#define UI_DEFAULT_BOLD_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
#define UI_DEFAULT_WIDTH 1024
#define UI_DEFAULT_HEIGHT 768

struct ui;

struct ui_options {
    const char *title;
    const char *font_path; /* NULL: UI_DEFAULT_FONT (bold: the -Bold file next to it) */
    bool fullscreen;       /* start in full screen */
    bool kiosk;            /* full screen for good, keyboard grabbed, no way to leave */
};

enum ui_font {
    UI_FONT_SMALL,  /* hints, fingerprints */
    UI_FONT_NORMAL, /* fields, buttons, messages */
    UI_FONT_TITLE,  /* screen titles (bold) */
    UI_N_FONTS,
};

/* House colours. */
extern const SDL_Color ui_color_background, ui_color_panel, ui_color_text, ui_color_dim,
    ui_color_accent, ui_color_error, ui_color_warning, ui_color_field, ui_color_focus;

/* Initialises SDL video + SDL2_ttf, loads the fonts, opens the window (shown at once).
 * Returns 0, -ENOENT (font file missing: the message names it), -EIO (no display). */
int ui_new(const struct ui_options *o, struct ui **ret);
void ui_free(struct ui *u);

SDL_Window *ui_window(struct ui *u);
SDL_Renderer *ui_renderer(struct ui *u);
bool ui_kiosk(const struct ui *u);

/* ui_post() codes, one list so that screens, viewer and app never mix theirs up. */
enum ui_event_code {
    UI_EVENT_FRAME = 1,    /* viewer: the vnc frame changed or the session ended */
    UI_EVENT_CLIPBOARD,    /* viewer: data1 = malloc'd UTF-8 text from the server */
    UI_EVENT_CONNECT_DONE, /* app: the connect worker finished */
};

/* The registered SDL user event type that ui_post() pushes: event.user.code and
 * event.user.data1 carry what the poster gave. */
Uint32 ui_event_type(const struct ui *u);
/* Thread-safe: wakes the main thread with a ui_event_type() event. */
void ui_post(struct ui *u, int code, void *data);

/* Full screen on/off (ignored in kiosk mode, which stays full screen). Off gives the window
 * back its earlier size, or the one ui_fit_window() asked for while it was full screen. */
void ui_set_fullscreen(struct ui *u, bool on);
bool ui_fullscreen(struct ui *u);
/* Resizes the window for a w x h framebuffer: its own size, shrunk (aspect kept) to the
 * usable display area; when full screen, only kept for when it ends; nothing when
 * maximised. */
void ui_fit_window(struct ui *u, int w, int h);

/* Output size in pixels. */
void ui_size(struct ui *u, int *w, int *h);

/* Text. Widths and heights in pixels; ui_draw_text returns the width drawn. */
int ui_font_height(struct ui *u, enum ui_font f);
int ui_text_width(struct ui *u, enum ui_font f, const char *utf8);
int ui_draw_text(struct ui *u, enum ui_font f, int x, int y, SDL_Color c, const char *utf8);
/* Word-wrapped at max_w (long words are broken); returns the height used. */
int ui_draw_text_wrapped(struct ui *u, enum ui_font f, int x, int y, int max_w, SDL_Color c,
                         const char *utf8);
/* Height ui_draw_text_wrapped would use. */
int ui_text_wrapped_height(struct ui *u, enum ui_font f, int max_w, const char *utf8);

void ui_clear(struct ui *u, SDL_Color c);
void ui_fill_rect(struct ui *u, SDL_Rect r, SDL_Color c);
void ui_draw_rect(struct ui *u, SDL_Rect r, SDL_Color c, int thickness);
void ui_present(struct ui *u);
