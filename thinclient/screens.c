/* The drawing half of screens.h. Every screen is a panel centred on the background; its
 * contents are laid out by one function that runs twice, first only measuring (so the
 * panel can be sized and centred) and then drawing. Text stays on flat, high-contrast
 * fills: tests read these screens back with OCR. */
#include "screens.h"

#include <stdio.h>
#include <string.h>

/* Colours only these screens use (the house ones are in ui.c). */
static const SDL_Color color_panel_border = {0x4a, 0x57, 0x68, 255};
static const SDL_Color color_primary_label = {0x6c, 0xa8, 0xff, 255};
static const SDL_Color color_field_border = {0x5a, 0x67, 0x78, 255};
static const SDL_Color color_badge_linux = {0xf0, 0xa0, 0x30, 255};
static const SDL_Color color_badge_windows = {0x3d, 0xa5, 0xf4, 255};
static const SDL_Color color_overlay = {0x00, 0x00, 0x00, 0xe0};

#define BULLET "\xe2\x80\xa2" /* U+2022, what the password field shows per character */

/* ---- layout pen ---- */

struct pen {
    struct ui *u;
    int x, y, w;  /* left edge, top of the next item, usable width */
    bool draw;    /* false: only measure (advance y) */
    bool compact; /* the window is too low for the roomy layout: small body text */
};

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

static enum ui_font body_font(const struct pen *p)
{
    return p->compact ? UI_FONT_SMALL : UI_FONT_NORMAL;
}

static void pen_gap(struct pen *p, int roomy)
{
    p->y += p->compact ? roomy / 2 : roomy;
}

static void pen_wrapped(struct pen *p, enum ui_font f, SDL_Color c, const char *text)
{
    if (p->draw)
        p->y += ui_draw_text_wrapped(p->u, f, p->x, p->y, p->w, c, text);
    else
        p->y += ui_text_wrapped_height(p->u, f, p->w, text);
}

/* Rectangles are stored in window coordinates, which mouse events use: on a HiDPI output
 * the renderer has more pixels than the window has points. */
static SDL_Rect to_window(struct ui *u, SDL_Rect r)
{
    int ow = 0, oh = 0, ww = 0, wh = 0;
    ui_size(u, &ow, &oh);
    SDL_GetWindowSize(ui_window(u), &ww, &wh);
    if (ow <= 0 || oh <= 0 || ww <= 0 || wh <= 0 || (ow == ww && oh == wh))
        return r;
    return (SDL_Rect){r.x * ww / ow, r.y * wh / oh, r.w * ww / ow, r.h * wh / oh};
}

static void pen_store(const struct pen *p, SDL_Rect *store, SDL_Rect r)
{
    if (p->draw && store)
        *store = to_window(p->u, r);
}

/* ---- buttons ---- */

enum button_kind { BUTTON_PRIMARY, BUTTON_SECONDARY, BUTTON_DISABLED };

struct button {
    const char *label;
    enum button_kind kind;
    bool focused;
    SDL_Rect *store; /* where the hit rectangle goes */
};

static int button_height(struct ui *u)
{
    return ui_font_height(u, UI_FONT_NORMAL) + 18;
}

static int button_width(struct ui *u, const struct button *b)
{
    return max_int(120, ui_text_width(u, UI_FONT_NORMAL, b->label) + 48);
}

/* Buttons are flat, dark and without a frame, the primary one told apart by its blue
 * label, the focus by a bar at each side. What looks plainer is what OCR (tests, help desk
 * tools) reads: a word closed in a frame, or on a mid-tone fill, is lost to it. */
static void draw_button(struct ui *u, const struct button *b, SDL_Rect r)
{
    SDL_Color text = b->kind == BUTTON_PRIMARY    ? color_primary_label
                     : b->kind == BUTTON_DISABLED ? ui_color_dim
                                                  : ui_color_text;
    ui_fill_rect(u, r, ui_color_field);
    int tw = ui_text_width(u, UI_FONT_NORMAL, b->label);
    int th = ui_font_height(u, UI_FONT_NORMAL);
    ui_draw_text(u, UI_FONT_NORMAL, r.x + (r.w - tw) / 2, r.y + (r.h - th) / 2, text, b->label);
    if (b->focused) {
        ui_fill_rect(u, (SDL_Rect){r.x - 8, r.y, 4, r.h}, ui_color_focus);
        ui_fill_rect(u, (SDL_Rect){r.x + r.w + 4, r.y, 4, r.h}, ui_color_focus);
    }
}

/* One row: left at the left edge, right (optional) at the right edge. */
static void pen_buttons(struct pen *p, const struct button *left, const struct button *right)
{
    int h = button_height(p->u);
    if (p->draw) {
        SDL_Rect r = {p->x, p->y, button_width(p->u, left), h};
        draw_button(p->u, left, r);
        pen_store(p, left->store, r);
        if (right) {
            int w = button_width(p->u, right);
            r = (SDL_Rect){p->x + p->w - w, p->y, w, h};
            draw_button(p->u, right, r);
            pen_store(p, right->store, r);
        }
    }
    p->y += h;
}

/* ---- panel frame ---- */

struct frame {
    int win_w, win_h;
    int margin;  /* around the panel */
    int pad;     /* inside the panel */
    int panel_w; /* the content is panel_w - 2 * pad wide */
};

/* Tighter spacing below 800x600, so that 640x480 still holds every screen. */
static struct frame frame_for(struct ui *u, int max_w)
{
    struct frame f = {0};
    ui_size(u, &f.win_w, &f.win_h);
    bool small = f.win_w < 800 || f.win_h < 600;
    f.margin = small ? 16 : 40;
    f.pad = small ? 20 : 32;
    f.panel_w = max_int(240, min_int(max_w, f.win_w - 2 * f.margin));
    return f;
}

typedef void layout_fn(struct pen *p, void *screen);

static int measure(struct ui *u, const struct frame *f, layout_fn *layout, void *screen,
                   bool compact)
{
    struct pen m = {u, 0, 0, f->panel_w - 2 * f->pad, false, compact};
    layout(&m, screen);
    return m.y;
}

/* Measures the contents at the panel's width (roomy, or compact when that does not fit the
 * window's height), then clears the window, draws the panel centred and the contents in it.
 * stripe: a coloured band along the panel's top (warnings), alpha 0 for none. */
static void draw_panel_screen(struct ui *u, int max_w, layout_fn *layout, void *screen,
                              SDL_Color stripe)
{
    struct frame f = frame_for(u, max_w);
    bool compact = false;
    int content_h = measure(u, &f, layout, screen, false);
    if (content_h + 2 * f.pad > f.win_h) {
        compact = true;
        content_h = measure(u, &f, layout, screen, true);
    }
    int ph = content_h + 2 * f.pad;
    SDL_Rect panel = {(f.win_w - f.panel_w) / 2, max_int(0, (f.win_h - ph) / 2), f.panel_w, ph};

    /* The panel is a frame, not a lighter fill: OCR binarises a page by its colours, and
     * a large panel a shade off the background made it take the panel for ink and lose
     * all the text in it (seen at 1920x1080). */
    ui_clear(u, ui_color_background);
    ui_draw_rect(u, panel, color_panel_border, 1);
    if (stripe.a)
        ui_fill_rect(u, (SDL_Rect){panel.x, panel.y, panel.w, 6}, stripe);
    struct pen d = {u, panel.x + f.pad, panel.y + f.pad, f.panel_w - 2 * f.pad, true, compact};
    layout(&d, screen);
}

static const SDL_Color no_stripe = {0, 0, 0, 0};

/* ---- login form ---- */

/* The end of text that fits max_w (the cursor is at the end, so that part stays visible). */
static const char *visible_tail(struct ui *u, const char *text, int max_w)
{
    const char *p = text;
    while (*p && ui_text_width(u, UI_FONT_NORMAL, p) > max_w) {
        p++;
        while (((unsigned char)*p & 0xc0) == 0x80)
            p++;
    }
    return p;
}

/* One bullet per character: the length shows typing progress, the text never appears. */
static void password_bullets(const struct text_field *f, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < f->len; i++) {
        if (((unsigned char)f->text[i] & 0xc0) == 0x80)
            continue;
        if (n + sizeof(BULLET) > size)
            break;
        memcpy(out + n, BULLET, sizeof(BULLET) - 1);
        n += sizeof(BULLET) - 1;
    }
    out[n] = 0;
}

static int field_height(struct ui *u)
{
    return ui_font_height(u, UI_FONT_NORMAL) + 16;
}

static void draw_field(struct ui *u, const struct login_screen *s, int f, SDL_Rect r)
{
    bool locked = f == LOGIN_BROKER && s->broker_locked;
    bool focused = s->focus == f && !locked;
    char bullets[sizeof(BULLET) * (SCREEN_FIELD_MAX + 1)];
    const char *text = s->fields[f].text;
    if (f == LOGIN_PASSWORD) {
        password_bullets(&s->fields[f], bullets, sizeof(bullets));
        text = bullets;
    }
    /* A preset (locked) server: dim text on the background, nothing to edit. */
    ui_fill_rect(u, r, locked ? ui_color_background : ui_color_field);
    if (focused)
        ui_draw_rect(u, r, ui_color_focus, 2);
    else
        ui_draw_rect(u, r, locked ? color_panel_border : color_field_border, 1);

    int fh = ui_font_height(u, UI_FONT_NORMAL), inner = r.w - 24;
    const char *tail = visible_tail(u, text, inner - 3);
    int tx = r.x + 12, ty = r.y + (r.h - fh) / 2;
    int tw = ui_draw_text(u, UI_FONT_NORMAL, tx, ty, locked ? ui_color_dim : ui_color_text, tail);
    if (focused && !s->busy)
        ui_fill_rect(u, (SDL_Rect){tx + tw + 1, ty + 2, 2, fh - 4}, ui_color_text);
}

static void pen_field(struct pen *p, struct login_screen *s, int f, const char *label)
{
    if (p->draw)
        ui_draw_text(p->u, UI_FONT_SMALL, p->x, p->y, ui_color_text, label);
    p->y += ui_font_height(p->u, UI_FONT_SMALL) + 6;
    SDL_Rect r = {p->x, p->y, p->w, field_height(p->u)};
    if (p->draw) {
        draw_field(p->u, s, f, r);
        pen_store(p, &s->field_rect[f], r);
    }
    p->y += r.h;
    pen_gap(p, 14);
}

/* "vdi  Remote desktop": the product name, bottoms aligned. */
static void pen_header(struct pen *p)
{
    int th = ui_font_height(p->u, UI_FONT_TITLE), nh = ui_font_height(p->u, UI_FONT_NORMAL);
    if (p->draw) {
        int w = ui_draw_text(p->u, UI_FONT_TITLE, p->x, p->y, ui_color_text, "vdi");
        ui_draw_text(p->u, UI_FONT_NORMAL, p->x + w + 14, p->y + th - nh - 3, ui_color_dim,
                     "Remote desktop");
    }
    p->y += th;
    pen_gap(p, 24);
}

static void login_layout(struct pen *p, void *screen)
{
    struct login_screen *s = screen;
    pen_header(p);
    pen_field(p, s, LOGIN_BROKER, "Server");
    pen_field(p, s, LOGIN_USER, "User name");
    pen_field(p, s, LOGIN_PASSWORD, "Password");
    pen_gap(p, 6);

    struct button connect = {s->busy ? "Connecting\xe2\x80\xa6" : "Connect",
                             s->busy ? BUTTON_DISABLED : BUTTON_PRIMARY,
                             s->focus == LOGIN_FOCUS_CONNECT, &s->connect_rect};
    struct button quit = {"Quit", BUTTON_SECONDARY, s->focus == LOGIN_FOCUS_QUIT, &s->quit_rect};
    pen_buttons(p, &connect, s->kiosk ? NULL : &quit);

    if (s->message[0]) {
        pen_gap(p, 18);
        pen_wrapped(p, UI_FONT_NORMAL, s->message_is_error ? ui_color_error : ui_color_dim,
                    s->message);
    }
    if (s->busy) {
        pen_gap(p, 10);
        pen_wrapped(p, UI_FONT_SMALL, ui_color_dim, "Press Escape to cancel.");
    }
}

static bool sdl_read_clipboard(char *buf, size_t size)
{
    if (size == 0 || !SDL_HasClipboardText())
        return false;
    char *text = SDL_GetClipboardText();
    if (!text)
        return false;
    size_t n = strnlen(text, size - 1);
    memcpy(buf, text, n);
    buf[n] = 0;
    SDL_free(text);
    return n > 0;
}

void login_screen_draw(struct ui *u, struct login_screen *s)
{
    if (!s->read_clipboard)
        s->read_clipboard = sdl_read_clipboard;
    memset(s->field_rect, 0, sizeof(s->field_rect));
    s->connect_rect = s->quit_rect = (SDL_Rect){0, 0, 0, 0};
    draw_panel_screen(u, 480, login_layout, s, no_stripe);
}

/* ---- desktop chooser ---- */

struct chooser_layout {
    struct chooser_screen *s;
    size_t rows; /* rows of the list shown (0 while measuring the rest) */
};

static int row_height(struct ui *u)
{
    return ui_font_height(u, UI_FONT_NORMAL) + 18;
}

#define ROW_GAP 4

/* Integer square root, for drawing a disc without libm. */
static int isqrt(int v)
{
    int r = 0;
    while ((r + 1) * (r + 1) <= v)
        r++;
    return r;
}

static void fill_disc(struct ui *u, int cx, int cy, int radius, SDL_Color c)
{
    for (int dy = -radius; dy <= radius; dy++) {
        int half = isqrt(radius * radius - dy * dy);
        ui_fill_rect(u, (SDL_Rect){cx - half, cy + dy, 2 * half + 1, 1}, c);
    }
}

/* Windows: four panes; Linux: a disc; anything else: an outline. */
static void draw_os_badge(struct ui *u, const char *os, int x, int y, int size)
{
    if (strcmp(os, "windows") == 0) {
        int pane = (size - 3) / 2;
        for (int i = 0; i < 4; i++)
            ui_fill_rect(u,
                         (SDL_Rect){x + (i % 2) * (pane + 3), y + (i / 2) * (pane + 3), pane, pane},
                         color_badge_windows);
    } else if (strcmp(os, "linux") == 0) {
        fill_disc(u, x + size / 2, y + size / 2, size / 2, color_badge_linux);
        fill_disc(u, x + size / 2, y + size / 2, size / 4, ui_color_field);
    } else {
        ui_draw_rect(u, (SDL_Rect){x, y, size, size}, ui_color_dim, 2);
    }
}

static const char *os_label(const char *os)
{
    if (strcmp(os, "linux") == 0)
        return "Linux";
    if (strcmp(os, "windows") == 0)
        return "Windows";
    return os;
}

/* The name first, at the row's left, where OCR and eyes start; the OS with its badge at
 * the right. Every row on the same fill (OCR reads text on a coloured selection badly):
 * the selection is a frame. */
static void draw_pool_row(struct ui *u, const struct pool_choice *pool, bool selected, SDL_Rect r)
{
    ui_fill_rect(u, r, ui_color_field);
    if (selected)
        ui_draw_rect(u, r, ui_color_focus, 3);
    int fh = ui_font_height(u, UI_FONT_NORMAL), badge = fh;
    int ty = r.y + (r.h - fh) / 2;
    ui_draw_text(u, UI_FONT_NORMAL, r.x + 18, ty, ui_color_text, pool->name);
    const char *os = os_label(pool->os);
    int ow = ui_text_width(u, UI_FONT_NORMAL, os);
    int ox = r.x + r.w - 18 - ow;
    ui_draw_text(u, UI_FONT_NORMAL, ox, ty, selected ? ui_color_text : ui_color_dim, os);
    draw_os_badge(u, pool->os, ox - 14 - badge, r.y + (r.h - badge) / 2, badge);
}

static void draw_scrollbar(struct ui *u, const struct chooser_screen *s, size_t rows, SDL_Rect r)
{
    ui_fill_rect(u, r, ui_color_field);
    int thumb_h = max_int(16, (int)((long)r.h * (long)rows / (long)s->n_pools));
    int range = r.h - thumb_h;
    size_t hidden = s->n_pools - rows;
    int y = r.y + (int)((long)range * (long)s->first_visible / (long)hidden);
    ui_fill_rect(u, (SDL_Rect){r.x, y, r.w, thumb_h}, ui_color_dim);
}

static void pen_pool_list(struct pen *p, struct chooser_screen *s, size_t rows)
{
    int rh = row_height(p->u);
    if (s->n_pools == 0) {
        pen_wrapped(p, UI_FONT_NORMAL, ui_color_dim, "No desktops are available to you.");
        return;
    }
    bool scrolls = rows < s->n_pools;
    int list_w = scrolls ? p->w - 14 : p->w;
    for (size_t i = 0; i < rows; i++) {
        size_t k = s->first_visible + i;
        SDL_Rect r = {p->x, p->y + (int)i * (rh + ROW_GAP), list_w, rh};
        if (p->draw && k < s->n_pools) {
            draw_pool_row(p->u, &s->pools[k], k == s->selected, r);
            pen_store(p, &s->item_rect[k], r);
        }
    }
    int list_h = rows > 0 ? (int)rows * (rh + ROW_GAP) - ROW_GAP : 0;
    if (p->draw && scrolls)
        draw_scrollbar(p->u, s, rows, (SDL_Rect){p->x + p->w - 8, p->y, 8, list_h});
    p->y += list_h;
}

static void chooser_layout(struct pen *p, void *screen)
{
    struct chooser_layout *l = screen;
    struct chooser_screen *s = l->s;
    pen_wrapped(p, UI_FONT_TITLE, ui_color_text, "Choose a desktop");
    pen_gap(p, 6);
    if (s->user[0]) {
        char line[SCREEN_FIELD_MAX + 64];
        snprintf(line, sizeof(line), "Desktops for %s", s->user);
        pen_wrapped(p, body_font(p), ui_color_dim, line);
    }
    pen_gap(p, 20);
    pen_pool_list(p, s, l->rows);
    pen_gap(p, 24);
    struct button connect = {"Connect", s->n_pools ? BUTTON_PRIMARY : BUTTON_DISABLED, false,
                             &s->connect_rect};
    struct button back = {"Back", BUTTON_SECONDARY, false, &s->back_rect};
    pen_buttons(p, &connect, &back);
}

#define CHOOSER_WIDTH 640

/* As many rows as the window's height leaves room for (at least one). */
static size_t chooser_fit_rows(struct ui *u, struct chooser_screen *s)
{
    struct frame f = frame_for(u, CHOOSER_WIDTH);
    struct chooser_layout l = {s, 0};
    int rest = measure(u, &f, chooser_layout, &l, false);
    int room = f.win_h - 2 * f.margin - 2 * f.pad - rest;
    int fit = (room + ROW_GAP) / (row_height(u) + ROW_GAP);
    return (size_t)max_int(1, min_int((int)s->n_pools, fit));
}

void chooser_screen_draw(struct ui *u, struct chooser_screen *s)
{
    if (s->n_pools > POOL_LIST_MAX)
        s->n_pools = POOL_LIST_MAX;
    if (s->n_pools > 0 && s->selected >= s->n_pools)
        s->selected = s->n_pools - 1;
    /* The keys keep the selection in view from then on (the wheel may scroll it out); on
     * the first draw, with a selection the app preset (the last pool used), this does. */
    bool first_draw = true;
    for (size_t i = 0; i < s->n_pools; i++)
        first_draw = first_draw && s->item_rect[i].w == 0;
    size_t rows = s->n_pools ? chooser_fit_rows(u, s) : 0;
    if (rows > 0 && first_draw) {
        if (s->selected < s->first_visible)
            s->first_visible = s->selected;
        else if (s->selected >= s->first_visible + rows)
            s->first_visible = s->selected - rows + 1;
    }
    if (s->first_visible + rows > s->n_pools)
        s->first_visible = s->n_pools - rows;

    memset(s->item_rect, 0, sizeof(s->item_rect));
    s->connect_rect = s->back_rect = (SDL_Rect){0, 0, 0, 0};
    struct chooser_layout l = {s, rows};
    draw_panel_screen(u, CHOOSER_WIDTH, chooser_layout, &l, no_stripe);
}

/* ---- trust prompt and warning ---- */

/* "AB:CD:...:EF" in two lines, split at the colon nearest the middle (a SHA-256 one is 95
 * characters: too wide for one line on a small screen, and easier to compare in halves). */
static void split_fingerprint(const char *fp, char *first, char *second, size_t size)
{
    size_t len = strlen(fp), cut = len / 2, best = 0;
    for (size_t i = 0; i < len; i++) {
        size_t d = i > cut ? i - cut : cut - i, bd = best > cut ? best - cut : cut - best;
        if (fp[i] == ':' && (best == 0 || d < bd))
            best = i;
    }
    size_t n1 = best ? best + 1 : cut; /* the colon stays at the end of the first line */
    snprintf(first, size, "%.*s", (int)n1, fp);
    snprintf(second, size, "%s", fp + n1);
}

/* Straight on the background, indented under its label: OCR (the tests', a help desk's)
 * reads hex groups in a box or next to a coloured bar badly. */
static void pen_fingerprint(struct pen *p, const char *label, const char *fp)
{
    enum ui_font f = body_font(p);
    pen_wrapped(p, UI_FONT_SMALL, ui_color_dim, label);
    p->y += p->compact ? 4 : 8;
    int lh = ui_font_height(p->u, f) + 4;
    if (p->draw) {
        char first[96], second[96];
        split_fingerprint(fp, first, second, sizeof(first));
        ui_draw_text(p->u, f, p->x + 18, p->y, ui_color_text, first);
        ui_draw_text(p->u, f, p->x + 18, p->y + lh, ui_color_text, second);
    }
    p->y += 2 * lh - 4;
}

static void trust_first_use_layout(struct pen *p, struct trust_screen *s)
{
    pen_wrapped(p, UI_FONT_TITLE, ui_color_warning, "Unknown server");
    pen_gap(p, 16);
    char line[SCREEN_FIELD_MAX + 128];
    snprintf(line, sizeof(line), "This is the first connection to %s.", s->broker);
    pen_wrapped(p, body_font(p), ui_color_text, line);
    pen_gap(p, 16);
    pen_fingerprint(p, "The server's certificate (SHA-256 fingerprint):", s->fingerprint);
    pen_gap(p, 16);
    pen_wrapped(p, body_font(p), ui_color_text,
                "Check this fingerprint with your IT department before you continue; it is "
                "shown only once. If it matches, choose \xe2\x80\x9cTrust and connect\xe2\x80\x9d "
                "and this computer will remember the server.");
    pen_gap(p, 24);
    struct button cancel = {"Cancel", BUTTON_SECONDARY, s->focus != 1, &s->cancel_rect};
    struct button trust = {"Trust and connect", BUTTON_PRIMARY, s->focus == 1, &s->trust_rect};
    pen_buttons(p, &cancel, &trust);
}

static void trust_mismatch_layout(struct pen *p, struct trust_screen *s)
{
    char text[2 * SCREEN_FIELD_MAX + 384];
    p->y += 6; /* below the warning stripe */
    pen_wrapped(p, UI_FONT_TITLE, ui_color_error, "Warning: the server's identity has changed");
    pen_gap(p, 16);
    snprintf(text, sizeof(text),
             "The certificate of %s is not the one you accepted before. Someone may be "
             "intercepting the connection, so the connection was refused.",
             s->broker);
    pen_wrapped(p, body_font(p), ui_color_text, text);
    pen_gap(p, 16);
    pen_fingerprint(p, "Expected (accepted before):", s->known_fingerprint);
    pen_gap(p, 12);
    pen_fingerprint(p, "Now (sent by the server):", s->fingerprint);
    pen_gap(p, 16);
    snprintf(text, sizeof(text),
             "If your IT department replaced the server's certificate, remove the line for %s "
             "from the file %s and connect again. Otherwise, do not connect: tell your IT "
             "department.",
             s->broker, s->known_brokers_path);
    pen_wrapped(p, body_font(p), ui_color_text, text);
    pen_gap(p, 24);
    struct button back = {"Back", BUTTON_SECONDARY, true, &s->cancel_rect};
    pen_buttons(p, &back, NULL);
}

static void trust_layout(struct pen *p, void *screen)
{
    struct trust_screen *s = screen;
    if (s->mismatch)
        trust_mismatch_layout(p, s);
    else
        trust_first_use_layout(p, s);
}

void trust_screen_draw(struct ui *u, struct trust_screen *s)
{
    if (s->mismatch)
        s->focus = 0;
    s->trust_rect = s->cancel_rect = (SDL_Rect){0, 0, 0, 0};
    draw_panel_screen(u, 720, trust_layout, s, s->mismatch ? ui_color_error : no_stripe);
}

/* ---- message ---- */

static void message_layout(struct pen *p, void *screen)
{
    struct message_screen *s = screen;
    pen_wrapped(p, UI_FONT_TITLE, ui_color_text, s->title);
    pen_gap(p, 16);
    pen_wrapped(p, body_font(p), ui_color_text, s->text);
    pen_gap(p, 24);
    struct button b = {s->button[0] ? s->button : "OK", BUTTON_PRIMARY, true, &s->button_rect};
    pen_buttons(p, &b, NULL);
}

void message_screen_draw(struct ui *u, struct message_screen *s)
{
    s->button_rect = (SDL_Rect){0, 0, 0, 0};
    draw_panel_screen(u, 600, message_layout, s, no_stripe);
}

/* ---- overlay ---- */

void screen_draw_overlay(struct ui *u, const char *text)
{
    int ww = 0, wh = 0;
    ui_size(u, &ww, &wh);
    enum ui_font f = UI_FONT_TITLE;
    int tw = ui_text_width(u, f, text), max_w = ww - 48;
    if (tw > max_w)
        f = UI_FONT_NORMAL;
    int th = ui_text_wrapped_height(u, f, max_w, text);
    int band_h = th + 48;
    /* At the bottom: vdi-session draws its own reasons ("Your session was opened from
     * ...") in the middle of the desktop's picture, and they must stay readable. */
    SDL_Rect band = {0, wh - band_h, ww, band_h};
    ui_fill_rect(u, band, color_overlay);
    tw = min_int(ui_text_width(u, f, text), max_w);
    ui_draw_text_wrapped(u, f, (ww - tw) / 2, band.y + 24, max_w, ui_color_text, text);
}
