/* The event half of screens.h: what keys, text and clicks do to each screen's struct.
 * Pure logic over SDL_Event values (no window, no fonts), so it is unit tested directly;
 * the rectangles it hit-tests are the ones the draw functions in screens.c stored. */
#include "screens.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cut-text.h"

/* ---- UTF-8 text fields ---- */

/* Bytes of the well-formed UTF-8 character at s[0..n) (n >= 1), storing its code point;
 * 0 when the bytes are not one (cut_text_utf8_decode's U+FFFD for one invalid byte; a
 * real U+FFFD takes three). */
static size_t utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    size_t len;
    *cp = cut_text_utf8_decode((const uint8_t *)s, n, &len);
    return *cp == 0xfffd && len == 1 ? 0 : len;
}

/* C0, DEL, C1 and the Unicode line/paragraph separators: nothing a one-line field (or the
 * server name the broker logs) should hold. */
static bool codepoint_is_control(uint32_t c)
{
    return c < 0x20 || (c >= 0x7f && c < 0xa0) || c == 0x2028 || c == 0x2029;
}

/* Appends the printable characters of utf8[0..n), skipping invalid bytes and control
 * characters, and stopping at the first character that would not fit (so a field never
 * holds a cut character and never overflows). Returns whether anything was added. */
static bool field_append(struct text_field *f, const char *utf8, size_t n)
{
    bool changed = false;
    size_t i = 0;
    while (i < n && utf8[i]) {
        uint32_t c;
        size_t step = utf8_decode(utf8 + i, n - i, &c);
        if (step == 0) {
            i++;
            continue;
        }
        if (!codepoint_is_control(c)) {
            if (f->len + step > SCREEN_FIELD_MAX)
                break;
            memcpy(f->text + f->len, utf8 + i, step);
            f->len += step;
            f->text[f->len] = 0;
            changed = true;
        }
        i += step;
    }
    return changed;
}

/* Removes the last character; the freed bytes are wiped, they may be part of a password. */
static bool field_backspace(struct text_field *f)
{
    if (f->len == 0)
        return false;
    size_t end = f->len;
    f->len--;
    while (f->len > 0 && ((unsigned char)f->text[f->len] & 0xc0) == 0x80)
        f->len--;
    explicit_bzero(f->text + f->len, end - f->len);
    return true;
}

static bool field_clear(struct text_field *f)
{
    bool changed = f->len > 0;
    explicit_bzero(f->text, sizeof(f->text));
    f->len = 0;
    return changed;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The clipboard as one line: a server name or user name copied from a mail or a terminal
 * often comes with a line break or blanks around it, which would only cause a confusing
 * "cannot resolve" later. Takes the first non-blank line, trimmed. */
static bool field_paste(struct text_field *f, const char *clip)
{
    while (is_space(*clip))
        clip++;
    size_t n = strcspn(clip, "\r\n");
    while (n > 0 && is_space(clip[n - 1]))
        n--;
    return field_append(f, clip, n);
}

/* ---- shared key and window handling ---- */

static bool key_is_enter(SDL_Keycode k)
{
    return k == SDLK_RETURN || k == SDLK_KP_ENTER || k == SDLK_RETURN2;
}

static bool key_has_ctrl(const SDL_Keysym *k)
{
    return (k->mod & KMOD_CTRL) != 0;
}

/* A resized or uncovered window needs the screen again (the layout depends on the size). */
static enum screen_action window_action(const SDL_WindowEvent *w)
{
    switch (w->event) {
    case SDL_WINDOWEVENT_SHOWN:
    case SDL_WINDOWEVENT_EXPOSED:
    case SDL_WINDOWEVENT_RESIZED:
    case SDL_WINDOWEVENT_SIZE_CHANGED:
    case SDL_WINDOWEVENT_MAXIMIZED:
    case SDL_WINDOWEVENT_RESTORED:
        return SCREEN_REDRAW;
    default:
        return SCREEN_NONE;
    }
}

static bool hit(SDL_Rect r, int x, int y)
{
    SDL_Point p = {x, y};
    return SDL_PointInRect(&p, &r);
}

static bool left_click(const SDL_Event *e)
{
    return e->type == SDL_MOUSEBUTTONDOWN && e->button.button == SDL_BUTTON_LEFT;
}

/* ---- login form ---- */

void login_screen_init(struct login_screen *s, bool kiosk)
{
    explicit_bzero(s, sizeof(*s));
    s->kiosk = kiosk;
    s->focus = LOGIN_BROKER;
}

void login_screen_set_field(struct login_screen *s, enum login_field f, const char *text)
{
    if ((unsigned)f >= LOGIN_N_FIELDS)
        return;
    field_clear(&s->fields[f]);
    if (text)
        field_append(&s->fields[f], text, strlen(text));
}

static bool focus_usable(const struct login_screen *s, int f)
{
    switch (f) {
    case LOGIN_BROKER:
        return !s->broker_locked;
    case LOGIN_USER:
    case LOGIN_PASSWORD:
    case LOGIN_FOCUS_CONNECT:
        return true;
    case LOGIN_FOCUS_QUIT:
        return !s->kiosk;
    default:
        return false;
    }
}

static bool focus_is_editable(const struct login_screen *s)
{
    return s->focus < LOGIN_N_FIELDS && focus_usable(s, s->focus);
}

void login_screen_focus_first_empty(struct login_screen *s)
{
    for (int f = 0; f < LOGIN_N_FIELDS; f++) {
        if (focus_usable(s, f) && s->fields[f].len == 0) {
            s->focus = f;
            return;
        }
    }
    s->focus = LOGIN_FOCUS_CONNECT;
}

/* Cuts a vsnprintf result that ended inside a multi-byte character back to the last whole
 * one, so that the message stays valid UTF-8 for the font renderer. */
static void utf8_trim_cut(char *s, size_t len)
{
    size_t start = len;
    while (start > 0 && ((unsigned char)s[start - 1] & 0xc0) == 0x80)
        start--;
    if (start == 0)
        return;
    uint32_t c;
    if (utf8_decode(s + start - 1, len - (start - 1), &c) != len - (start - 1))
        s[start - 1] = 0;
}

void login_screen_message(struct login_screen *s, bool error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->message, sizeof(s->message), fmt, ap);
    va_end(ap);
    if (n < 0)
        s->message[0] = 0;
    else if ((size_t)n >= sizeof(s->message))
        utf8_trim_cut(s->message, sizeof(s->message) - 1);
    s->message_is_error = error;
}

void login_screen_clear_password(struct login_screen *s)
{
    field_clear(&s->fields[LOGIN_PASSWORD]);
}

/* Next (dir 1) or previous (dir -1) usable focus; Tab wraps around, arrows stop at the
 * ends. */
static bool focus_move(struct login_screen *s, int dir, bool wrap)
{
    const int n = LOGIN_FOCUS_QUIT + 1;
    int f = s->focus;
    for (int tries = 0; tries < n; tries++) {
        f += dir;
        if (f < 0 || f >= n) {
            if (!wrap)
                return false;
            f = (f + n) % n;
        }
        if (focus_usable(s, f)) {
            s->focus = f;
            return true;
        }
    }
    return false;
}

static enum screen_action redraw_if(bool changed)
{
    return changed ? SCREEN_REDRAW : SCREEN_NONE;
}

/* Connect: both the server and the user name are needed (the password may be empty, the
 * broker decides); otherwise the missing one gets the focus and the reason. */
static enum screen_action login_submit(struct login_screen *s)
{
    if (s->fields[LOGIN_BROKER].len == 0) {
        if (!s->broker_locked)
            s->focus = LOGIN_BROKER;
        login_screen_message(s, true, "Enter the server's address.");
        return SCREEN_REDRAW;
    }
    if (s->fields[LOGIN_USER].len == 0) {
        s->focus = LOGIN_USER;
        login_screen_message(s, true, "Enter your user name.");
        return SCREEN_REDRAW;
    }
    return SCREEN_SUBMIT;
}

static enum screen_action login_activate(struct login_screen *s)
{
    switch (s->focus) {
    case LOGIN_BROKER:
    case LOGIN_USER:
        return redraw_if(focus_move(s, 1, false));
    case LOGIN_FOCUS_QUIT:
        return s->kiosk ? SCREEN_NONE : SCREEN_QUIT;
    default:
        return login_submit(s);
    }
}

static enum screen_action login_paste(struct login_screen *s)
{
    if (!focus_is_editable(s) || s->focus == LOGIN_PASSWORD || !s->read_clipboard)
        return SCREEN_NONE;
    char clip[1024];
    if (!s->read_clipboard(clip, sizeof(clip)))
        return SCREEN_NONE;
    clip[sizeof(clip) - 1] = 0;
    return redraw_if(field_paste(&s->fields[s->focus], clip));
}

/* Ctrl shortcuts; other Ctrl combinations do nothing (they type no text either). */
static enum screen_action login_ctrl_key(struct login_screen *s, SDL_Keycode k)
{
    if (k == SDLK_u && focus_is_editable(s))
        return redraw_if(field_clear(&s->fields[s->focus]));
    if (k == SDLK_v)
        return login_paste(s);
    return SCREEN_NONE;
}

static bool focus_on_button(const struct login_screen *s)
{
    return s->focus >= LOGIN_FOCUS_CONNECT;
}

static enum screen_action login_key(struct login_screen *s, const SDL_KeyboardEvent *k)
{
    SDL_Keycode sym = k->keysym.sym;
    if (sym == SDLK_ESCAPE)
        return s->busy ? SCREEN_CANCEL : SCREEN_NONE;
    if (s->busy)
        return SCREEN_NONE;
    if (key_is_enter(sym))
        return k->repeat ? SCREEN_NONE : login_activate(s);
    if (key_has_ctrl(&k->keysym))
        return login_ctrl_key(s, sym);
    switch (sym) {
    case SDLK_TAB:
        return redraw_if(focus_move(s, (k->keysym.mod & KMOD_SHIFT) ? -1 : 1, true));
    case SDLK_DOWN:
        return redraw_if(focus_move(s, 1, false));
    case SDLK_UP:
        return redraw_if(focus_move(s, -1, false));
    case SDLK_LEFT:
    case SDLK_RIGHT:
        /* Between the two buttons, which sit side by side. */
        if (!focus_on_button(s))
            return SCREEN_NONE;
        return redraw_if(focus_move(s, sym == SDLK_RIGHT ? 1 : -1, false));
    case SDLK_SPACE:
        /* In a field, the space arrives as text. */
        return focus_on_button(s) && !k->repeat ? login_activate(s) : SCREEN_NONE;
    case SDLK_BACKSPACE:
        return focus_is_editable(s) ? redraw_if(field_backspace(&s->fields[s->focus]))
                                    : SCREEN_NONE;
    default:
        return SCREEN_NONE;
    }
}

static enum screen_action login_text(struct login_screen *s, const char *text)
{
    if (s->busy || !focus_is_editable(s))
        return SCREEN_NONE;
    size_t n = strnlen(text, SDL_TEXTINPUTEVENT_TEXT_SIZE);
    return redraw_if(field_append(&s->fields[s->focus], text, n));
}

static enum screen_action login_click(struct login_screen *s, int x, int y)
{
    if (!s->kiosk && hit(s->quit_rect, x, y))
        return SCREEN_QUIT; /* also while connecting: the app stops the attempt */
    if (s->busy)
        return SCREEN_NONE;
    if (hit(s->connect_rect, x, y)) {
        s->focus = LOGIN_FOCUS_CONNECT;
        return login_submit(s);
    }
    for (int f = 0; f < LOGIN_N_FIELDS; f++) {
        if (hit(s->field_rect[f], x, y) && focus_usable(s, f)) {
            bool changed = s->focus != f;
            s->focus = f;
            return redraw_if(changed);
        }
    }
    return SCREEN_NONE;
}

enum screen_action login_screen_event(struct login_screen *s, const SDL_Event *e)
{
    switch (e->type) {
    case SDL_KEYDOWN:
        return login_key(s, &e->key);
    case SDL_TEXTINPUT:
        return login_text(s, e->text.text);
    case SDL_MOUSEBUTTONDOWN:
        return left_click(e) ? login_click(s, e->button.x, e->button.y) : SCREEN_NONE;
    case SDL_WINDOWEVENT:
        return window_action(&e->window);
    default:
        return SCREEN_NONE;
    }
}

/* ---- desktop chooser ---- */

/* Rows the last draw showed (0 before the first draw). */
static size_t chooser_visible_rows(const struct chooser_screen *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_pools && i < POOL_LIST_MAX; i++)
        if (s->item_rect[i].w > 0)
            n++;
    return n;
}

/* Scrolls just enough that the selection is on screen. */
static void chooser_follow_selection(struct chooser_screen *s)
{
    size_t rows = chooser_visible_rows(s);
    if (s->selected < s->first_visible)
        s->first_visible = s->selected;
    else if (rows > 0 && s->selected >= s->first_visible + rows)
        s->first_visible = s->selected - rows + 1;
}

static enum screen_action chooser_select(struct chooser_screen *s, long target)
{
    if (s->n_pools == 0)
        return SCREEN_NONE;
    long last = (long)s->n_pools - 1;
    size_t sel = (size_t)(target < 0 ? 0 : target > last ? last : target);
    size_t old_sel = s->selected, old_first = s->first_visible;
    s->selected = sel;
    chooser_follow_selection(s);
    return redraw_if(sel != old_sel || s->first_visible != old_first);
}

static enum screen_action chooser_key(struct chooser_screen *s, const SDL_KeyboardEvent *k)
{
    long sel = (long)s->selected;
    size_t rows = chooser_visible_rows(s);
    long page = rows > 1 ? (long)rows - 1 : 1;
    switch (k->keysym.sym) {
    case SDLK_ESCAPE:
        return SCREEN_CANCEL;
    case SDLK_UP:
        return chooser_select(s, sel - 1);
    case SDLK_DOWN:
        return chooser_select(s, sel + 1);
    case SDLK_HOME:
        return chooser_select(s, 0);
    case SDLK_END:
        return chooser_select(s, (long)s->n_pools - 1);
    case SDLK_PAGEUP:
        return chooser_select(s, sel - page);
    case SDLK_PAGEDOWN:
        return chooser_select(s, sel + page);
    default:
        break;
    }
    if (key_is_enter(k->keysym.sym) && !k->repeat)
        return s->n_pools > 0 ? SCREEN_SUBMIT : SCREEN_NONE;
    return SCREEN_NONE;
}

/* The wheel scrolls the view; the selection stays where it is. */
static enum screen_action chooser_wheel(struct chooser_screen *s, const SDL_MouseWheelEvent *w)
{
    size_t rows = chooser_visible_rows(s);
    if (rows == 0 || s->n_pools <= rows)
        return SCREEN_NONE;
    long dy = w->direction == SDL_MOUSEWHEEL_FLIPPED ? -w->y : w->y;
    long first = (long)s->first_visible - dy, max = (long)(s->n_pools - rows);
    first = first < 0 ? 0 : first > max ? max : first;
    bool changed = (size_t)first != s->first_visible;
    s->first_visible = (size_t)first;
    return redraw_if(changed);
}

static enum screen_action chooser_click(struct chooser_screen *s, const SDL_MouseButtonEvent *b)
{
    if (hit(s->back_rect, b->x, b->y))
        return SCREEN_CANCEL;
    if (hit(s->connect_rect, b->x, b->y))
        return s->n_pools > 0 ? SCREEN_SUBMIT : SCREEN_NONE;
    for (size_t i = 0; i < s->n_pools && i < POOL_LIST_MAX; i++) {
        if (!hit(s->item_rect[i], b->x, b->y))
            continue;
        bool changed = s->selected != i;
        s->selected = i;
        if (b->clicks == 2)
            return SCREEN_SUBMIT;
        return redraw_if(changed);
    }
    return SCREEN_NONE;
}

enum screen_action chooser_screen_event(struct chooser_screen *s, const SDL_Event *e)
{
    if (s->n_pools > POOL_LIST_MAX)
        s->n_pools = POOL_LIST_MAX;
    if (s->n_pools > 0 && s->selected >= s->n_pools)
        s->selected = s->n_pools - 1;
    switch (e->type) {
    case SDL_KEYDOWN:
        return chooser_key(s, &e->key);
    case SDL_MOUSEWHEEL:
        return chooser_wheel(s, &e->wheel);
    case SDL_MOUSEBUTTONDOWN:
        return left_click(e) ? chooser_click(s, &e->button) : SCREEN_NONE;
    case SDL_WINDOWEVENT:
        return window_action(&e->window);
    default:
        return SCREEN_NONE;
    }
}

/* ---- trust prompt / warning ---- */

/* Focus starts on Cancel, and a held key (repeat) activates nothing: an Enter still down
 * from the login form must not trust a certificate the user has not read. */
static enum screen_action trust_key(struct trust_screen *s, const SDL_KeyboardEvent *k)
{
    SDL_Keycode sym = k->keysym.sym;
    if (sym == SDLK_ESCAPE)
        return SCREEN_CANCEL;
    if (key_is_enter(sym) || sym == SDLK_SPACE) {
        if (k->repeat)
            return SCREEN_NONE;
        return !s->mismatch && s->focus == 1 ? SCREEN_SUBMIT : SCREEN_CANCEL;
    }
    if (s->mismatch)
        return SCREEN_NONE;
    int focus = s->focus;
    switch (sym) {
    case SDLK_TAB:
    case SDLK_UP:
    case SDLK_DOWN:
        focus = s->focus == 1 ? 0 : 1;
        break;
    case SDLK_LEFT: /* Cancel is drawn left of Trust */
        focus = 0;
        break;
    case SDLK_RIGHT:
        focus = 1;
        break;
    default:
        break;
    }
    bool changed = focus != s->focus;
    s->focus = focus;
    return redraw_if(changed);
}

enum screen_action trust_screen_event(struct trust_screen *s, const SDL_Event *e)
{
    if (s->mismatch)
        s->focus = 0;
    switch (e->type) {
    case SDL_KEYDOWN:
        return trust_key(s, &e->key);
    case SDL_MOUSEBUTTONDOWN:
        if (!left_click(e))
            return SCREEN_NONE;
        if (hit(s->cancel_rect, e->button.x, e->button.y))
            return SCREEN_CANCEL;
        if (!s->mismatch && hit(s->trust_rect, e->button.x, e->button.y))
            return SCREEN_SUBMIT;
        return SCREEN_NONE;
    case SDL_WINDOWEVENT:
        return window_action(&e->window);
    default:
        return SCREEN_NONE;
    }
}

/* ---- message ---- */

enum screen_action message_screen_event(struct message_screen *s, const SDL_Event *e)
{
    switch (e->type) {
    case SDL_KEYDOWN: {
        SDL_Keycode sym = e->key.keysym.sym;
        bool activates = key_is_enter(sym) || sym == SDLK_ESCAPE || sym == SDLK_SPACE;
        return activates && !e->key.repeat ? SCREEN_SUBMIT : SCREEN_NONE;
    }
    case SDL_MOUSEBUTTONDOWN:
        return left_click(e) && hit(s->button_rect, e->button.x, e->button.y) ? SCREEN_SUBMIT
                                                                              : SCREEN_NONE;
    case SDL_WINDOWEVENT:
        return window_action(&e->window);
    default:
        return SCREEN_NONE;
    }
}
