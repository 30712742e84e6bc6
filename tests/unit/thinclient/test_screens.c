/* The event logic of the screens (thinclient/screen-events.c): SDL events built by hand,
 * no SDL_Init, no window. The rectangles the draw functions would store are set here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "screens.h"
#include "util.h"

#define EURO "\xe2\x82\xac"         /* 3 bytes */
#define E_ACUTE "\xc3\xa9"          /* 2 bytes */
#define GRINNING "\xf0\x9f\x98\x80" /* 4 bytes */

static SDL_Event key_mod(SDL_Keycode sym, Uint16 mod)
{
    SDL_Event e;
    memset(&e, 0, sizeof(e));
    e.type = SDL_KEYDOWN;
    e.key.state = SDL_PRESSED;
    e.key.keysym.sym = sym;
    e.key.keysym.mod = mod;
    return e;
}

static SDL_Event key(SDL_Keycode sym)
{
    return key_mod(sym, KMOD_NONE);
}

static SDL_Event key_repeat(SDL_Keycode sym)
{
    SDL_Event e = key(sym);
    e.key.repeat = 1;
    return e;
}

static SDL_Event text(const char *utf8)
{
    SDL_Event e;
    memset(&e, 0, sizeof(e));
    e.type = SDL_TEXTINPUT;
    snprintf(e.text.text, sizeof(e.text.text), "%s", utf8);
    return e;
}

static SDL_Event click_n(int x, int y, Uint8 clicks)
{
    SDL_Event e;
    memset(&e, 0, sizeof(e));
    e.type = SDL_MOUSEBUTTONDOWN;
    e.button.button = SDL_BUTTON_LEFT;
    e.button.state = SDL_PRESSED;
    e.button.clicks = clicks;
    e.button.x = x;
    e.button.y = y;
    return e;
}

static SDL_Event click(int x, int y)
{
    return click_n(x, y, 1);
}

static SDL_Event wheel(int y, bool flipped)
{
    SDL_Event e;
    memset(&e, 0, sizeof(e));
    e.type = SDL_MOUSEWHEEL;
    e.wheel.y = y;
    e.wheel.direction = flipped ? SDL_MOUSEWHEEL_FLIPPED : SDL_MOUSEWHEEL_NORMAL;
    return e;
}

static enum screen_action login(struct login_screen *s, SDL_Event e)
{
    return login_screen_event(s, &e);
}

static enum screen_action chooser(struct chooser_screen *s, SDL_Event e)
{
    return chooser_screen_event(s, &e);
}

static enum screen_action trust(struct trust_screen *s, SDL_Event e)
{
    return trust_screen_event(s, &e);
}

/* Strictly well-formed UTF-8 without control characters, as every field must stay. */
static bool clean_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : 4;
        if (*p < 0x20 || *p == 0x7f || (*p & 0xc0) == 0x80 || *p > 0xf4)
            return false;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

/* Bytes after the end of the text are zero: nothing of a deleted password lingers. */
static bool tail_wiped(const struct text_field *f)
{
    for (size_t i = f->len; i < sizeof(f->text); i++)
        if (f->text[i])
            return false;
    return true;
}

static void login_filled(struct login_screen *s, bool kiosk)
{
    login_screen_init(s, kiosk);
    login_screen_set_field(s, LOGIN_BROKER, "vdi.example:5900");
    login_screen_set_field(s, LOGIN_USER, "alice");
    login_screen_set_field(s, LOGIN_PASSWORD, "secret");
}

static void test_login_init_and_first_empty(void **state)
{
    (void)state;
    struct login_screen s;
    login_screen_init(&s, false);
    assert_int_equal(s.focus, LOGIN_BROKER);
    assert_false(s.kiosk);
    assert_false(s.busy);
    assert_string_equal(s.message, "");
    login_screen_focus_first_empty(&s);
    assert_int_equal(s.focus, LOGIN_BROKER);

    login_screen_set_field(&s, LOGIN_BROKER, "vdi.example");
    login_screen_focus_first_empty(&s);
    assert_int_equal(s.focus, LOGIN_USER);
    login_screen_set_field(&s, LOGIN_USER, "alice");
    login_screen_focus_first_empty(&s);
    assert_int_equal(s.focus, LOGIN_PASSWORD);
    login_screen_set_field(&s, LOGIN_PASSWORD, "pw");
    login_screen_focus_first_empty(&s);
    assert_int_equal(s.focus, LOGIN_FOCUS_CONNECT);

    /* A locked broker is never the focus, even when empty. */
    login_screen_init(&s, true);
    s.broker_locked = true;
    login_screen_focus_first_empty(&s);
    assert_int_equal(s.focus, LOGIN_USER);
    assert_true(s.kiosk);
}

static void test_login_set_field_sanitises(void **state)
{
    (void)state;
    struct login_screen s;
    login_screen_init(&s, false);
    login_screen_set_field(&s, LOGIN_USER, "al\nice\x1b[31m");
    assert_string_equal(s.fields[LOGIN_USER].text, "alice[31m");
    assert_int_equal(s.fields[LOGIN_USER].len, strlen("alice[31m"));
    login_screen_set_field(&s, LOGIN_USER, NULL);
    assert_int_equal(s.fields[LOGIN_USER].len, 0);
    assert_true(tail_wiped(&s.fields[LOGIN_USER]));

    /* Too long: cut at a character boundary, never in the middle of one. */
    char longer[400] = "";
    for (int i = 0; i < 150; i++)
        strcat(longer, E_ACUTE);
    login_screen_set_field(&s, LOGIN_BROKER, longer);
    assert_int_equal(s.fields[LOGIN_BROKER].len, 254);
    assert_true(clean_utf8(s.fields[LOGIN_BROKER].text));
}

static void test_login_typing(void **state)
{
    (void)state;
    struct login_screen s;
    login_screen_init(&s, false);
    s.focus = LOGIN_USER;
    assert_int_equal(login(&s, text("al")), SCREEN_REDRAW);
    assert_int_equal(login(&s, text("ice")), SCREEN_REDRAW);
    assert_string_equal(s.fields[LOGIN_USER].text, "alice");
    assert_int_equal(s.fields[LOGIN_USER].len, 5);
    assert_int_equal(s.fields[LOGIN_BROKER].len, 0);
    /* The key event that comes with the text changes nothing by itself. */
    assert_int_equal(login(&s, key(SDLK_a)), SCREEN_NONE);
    assert_int_equal(login(&s, key(SDLK_SPACE)), SCREEN_NONE);
    assert_string_equal(s.fields[LOGIN_USER].text, "alice");

    /* Text typed while a button has the focus goes nowhere. */
    s.focus = LOGIN_FOCUS_CONNECT;
    assert_int_equal(login(&s, text("x")), SCREEN_NONE);
    assert_string_equal(s.fields[LOGIN_USER].text, "alice");
}

static void test_login_utf8_backspace(void **state)
{
    (void)state;
    struct login_screen s;
    login_screen_init(&s, false);
    s.focus = LOGIN_PASSWORD;
    assert_int_equal(login(&s, text("Zo" E_ACUTE EURO GRINNING)), SCREEN_REDRAW);
    struct text_field *f = &s.fields[LOGIN_PASSWORD];
    assert_int_equal(f->len, 2 + 2 + 3 + 4);

    assert_int_equal(login(&s, key(SDLK_BACKSPACE)), SCREEN_REDRAW);
    assert_string_equal(f->text, "Zo" E_ACUTE EURO);
    assert_true(tail_wiped(f));
    assert_int_equal(login(&s, key_repeat(SDLK_BACKSPACE)), SCREEN_REDRAW);
    assert_string_equal(f->text, "Zo" E_ACUTE);
    assert_int_equal(login(&s, key(SDLK_BACKSPACE)), SCREEN_REDRAW);
    assert_string_equal(f->text, "Zo");
    assert_int_equal(login(&s, key(SDLK_BACKSPACE)), SCREEN_REDRAW);
    assert_int_equal(login(&s, key(SDLK_BACKSPACE)), SCREEN_REDRAW);
    assert_int_equal(f->len, 0);
    assert_true(tail_wiped(f));
    assert_int_equal(login(&s, key(SDLK_BACKSPACE)), SCREEN_NONE);
    assert_int_equal(f->len, 0);
}

static void test_login_field_max(void **state)
{
    (void)state;
    struct login_screen s;
    login_screen_init(&s, false);
    s.focus = LOGIN_USER;
    struct text_field *f = &s.fields[LOGIN_USER];
    for (int i = 0; i < 127; i++)
        assert_int_equal(login(&s, text(E_ACUTE)), SCREEN_REDRAW);
    assert_int_equal(f->len, 254);
    /* One byte left: a 2-, 3- or 4-byte character does not fit and is not cut. */
    assert_int_equal(login(&s, text(E_ACUTE)), SCREEN_NONE);
    assert_int_equal(login(&s, text(EURO)), SCREEN_NONE);
    assert_int_equal(login(&s, text(GRINNING)), SCREEN_NONE);
    assert_int_equal(f->len, 254);
    assert_int_equal(login(&s, text("a")), SCREEN_REDRAW);
    assert_int_equal(f->len, SCREEN_FIELD_MAX);
    assert_int_equal(login(&s, text("b")), SCREEN_NONE);
    assert_int_equal(f->len, SCREEN_FIELD_MAX);
    assert_int_equal(f->text[SCREEN_FIELD_MAX], 0);
    assert_true(clean_utf8(f->text));

    /* Text that only partly fits: what fits goes in, in order, and stops there. */
    assert_int_equal(login(&s, key(SDLK_BACKSPACE)), SCREEN_REDRAW);
    assert_int_equal(login(&s, key(SDLK_BACKSPACE)), SCREEN_REDRAW);
    assert_int_equal(f->len, 252);
    assert_int_equal(login(&s, text("x" EURO "y")), SCREEN_REDRAW);
    assert_int_equal(f->len, 253);
    assert_int_equal(f->text[252], 'x');
    assert_true(clean_utf8(f->text));

    /* A 3-byte character exactly filling the field. */
    login_screen_set_field(&s, LOGIN_USER, NULL);
    for (int i = 0; i < 85; i++)
        login(&s, text(EURO));
    assert_int_equal(f->len, 255);
    assert_true(clean_utf8(f->text));
}

static void test_login_refuses_control_and_invalid(void **state)
{
    (void)state;
    static const char *refused[] = {
        "\t",
        "\r",
        "\n",
        "\x1b",
        "\x7f",
        "\xc2\x85",         /* C1 NEL */
        "\xe2\x80\xa8",     /* LINE SEPARATOR */
        "\xff",             /* never valid */
        "\xc3",             /* cut */
        "\x80",             /* stray continuation */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong '/' */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* beyond U+10FFFF */
    };
    struct login_screen s;
    login_screen_init(&s, false);
    s.focus = LOGIN_BROKER;
    for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
        assert_int_equal(login(&s, text(refused[i])), SCREEN_NONE);
        assert_int_equal(s.fields[LOGIN_BROKER].len, 0);
    }
    assert_int_equal(login(&s, text("x\xffy\x01z"
                                    "\xc3"
                                    "!")),
                     SCREEN_REDRAW);
    assert_string_equal(s.fields[LOGIN_BROKER].text, "xyz!");
    /* Printable non-ASCII (no-break space, U+10FFFF itself) is kept. */
    assert_int_equal(login(&s, text("\xc2\xa0\xf4\x8f\xbf\xbf")), SCREEN_REDRAW);
    assert_int_equal(s.fields[LOGIN_BROKER].len, 4 + 2 + 4);
    assert_true(clean_utf8(s.fields[LOGIN_BROKER].text));
}

static const char *fake_clipboard;
static int clipboard_reads;

static bool read_fake_clipboard(char *buf, size_t size)
{
    clipboard_reads++;
    if (!fake_clipboard)
        return false;
    snprintf(buf, size, "%s", fake_clipboard);
    return true;
}

static void test_login_ctrl_u_and_paste(void **state)
{
    (void)state;
    struct login_screen s;
    login_filled(&s, false);

    s.focus = LOGIN_USER;
    assert_int_equal(login(&s, key_mod(SDLK_u, KMOD_LCTRL)), SCREEN_REDRAW);
    assert_int_equal(s.fields[LOGIN_USER].len, 0);
    assert_true(tail_wiped(&s.fields[LOGIN_USER]));
    assert_int_equal(login(&s, key_mod(SDLK_u, KMOD_LCTRL)), SCREEN_NONE);
    assert_string_equal(s.fields[LOGIN_BROKER].text, "vdi.example:5900");

    s.focus = LOGIN_PASSWORD;
    assert_int_equal(login(&s, key_mod(SDLK_u, KMOD_RCTRL)), SCREEN_REDRAW);
    assert_int_equal(s.fields[LOGIN_PASSWORD].len, 0);
    assert_true(tail_wiped(&s.fields[LOGIN_PASSWORD]));

    /* Without a clipboard reader nothing happens. */
    s.focus = LOGIN_USER;
    assert_null(s.read_clipboard);
    assert_int_equal(login(&s, key_mod(SDLK_v, KMOD_LCTRL)), SCREEN_NONE);

    s.read_clipboard = read_fake_clipboard;
    fake_clipboard = " \r\n bob \t\nsecond line";
    clipboard_reads = 0;
    assert_int_equal(login(&s, key_mod(SDLK_v, KMOD_LCTRL)), SCREEN_REDRAW);
    assert_string_equal(s.fields[LOGIN_USER].text, "bob");
    assert_int_equal(clipboard_reads, 1);

    /* Never into the password (and the clipboard is not even read). */
    s.focus = LOGIN_PASSWORD;
    assert_int_equal(login(&s, key_mod(SDLK_v, KMOD_LCTRL)), SCREEN_NONE);
    assert_int_equal(s.fields[LOGIN_PASSWORD].len, 0);
    assert_int_equal(clipboard_reads, 1);

    /* A locked broker is not pasted into either. */
    s.broker_locked = true;
    s.focus = LOGIN_BROKER;
    assert_int_equal(login(&s, key_mod(SDLK_v, KMOD_LCTRL)), SCREEN_NONE);
    assert_string_equal(s.fields[LOGIN_BROKER].text, "vdi.example:5900");

    fake_clipboard = NULL;
    s.focus = LOGIN_USER;
    assert_int_equal(login(&s, key_mod(SDLK_v, KMOD_LCTRL)), SCREEN_NONE);
    assert_string_equal(s.fields[LOGIN_USER].text, "bob");

    /* Other Ctrl combinations do nothing. */
    assert_int_equal(login(&s, key_mod(SDLK_a, KMOD_LCTRL)), SCREEN_NONE);
    assert_int_equal(login(&s, key_mod(SDLK_BACKSPACE, KMOD_LCTRL)), SCREEN_NONE);
    assert_string_equal(s.fields[LOGIN_USER].text, "bob");
}

static void test_login_paste_caps(void **state)
{
    (void)state;
    struct login_screen s;
    login_screen_init(&s, false);
    s.read_clipboard = read_fake_clipboard;
    char big[900] = "";
    for (int i = 0; i < 290; i++)
        strcat(big, EURO);
    fake_clipboard = big;
    assert_int_equal(login(&s, key_mod(SDLK_v, KMOD_LCTRL)), SCREEN_REDRAW);
    assert_int_equal(s.fields[LOGIN_BROKER].len, 255);
    assert_true(clean_utf8(s.fields[LOGIN_BROKER].text));
}

static void test_login_focus_order(void **state)
{
    (void)state;
    struct login_screen s;
    login_filled(&s, false);
    s.focus = LOGIN_BROKER;
    static const int forward[] = {LOGIN_USER, LOGIN_PASSWORD, LOGIN_FOCUS_CONNECT, LOGIN_FOCUS_QUIT,
                                  LOGIN_BROKER};
    for (size_t i = 0; i < ARRAY_SIZE(forward); i++) {
        assert_int_equal(login(&s, key(SDLK_TAB)), SCREEN_REDRAW);
        assert_int_equal(s.focus, forward[i]);
    }
    assert_int_equal(login(&s, key_mod(SDLK_TAB, KMOD_LSHIFT)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_FOCUS_QUIT);
    assert_int_equal(login(&s, key_mod(SDLK_TAB, KMOD_RSHIFT)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_FOCUS_CONNECT);

    /* Arrows stop at the ends. */
    assert_int_equal(login(&s, key(SDLK_DOWN)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_FOCUS_QUIT);
    assert_int_equal(login(&s, key(SDLK_DOWN)), SCREEN_NONE);
    assert_int_equal(s.focus, LOGIN_FOCUS_QUIT);
    s.focus = LOGIN_BROKER;
    assert_int_equal(login(&s, key(SDLK_UP)), SCREEN_NONE);
    assert_int_equal(login(&s, key(SDLK_DOWN)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_USER);
    assert_int_equal(login(&s, key(SDLK_UP)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_BROKER);

    /* Left/Right move between the buttons only. */
    assert_int_equal(login(&s, key(SDLK_RIGHT)), SCREEN_NONE);
    assert_int_equal(s.focus, LOGIN_BROKER);
    s.focus = LOGIN_FOCUS_CONNECT;
    assert_int_equal(login(&s, key(SDLK_RIGHT)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_FOCUS_QUIT);
    assert_int_equal(login(&s, key(SDLK_LEFT)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_FOCUS_CONNECT);
}

static void test_login_focus_kiosk_locked(void **state)
{
    (void)state;
    struct login_screen s;
    login_filled(&s, true);
    s.broker_locked = true;
    s.focus = LOGIN_USER;
    static const int forward[] = {LOGIN_PASSWORD, LOGIN_FOCUS_CONNECT, LOGIN_USER};
    for (size_t i = 0; i < ARRAY_SIZE(forward); i++) {
        assert_int_equal(login(&s, key(SDLK_TAB)), SCREEN_REDRAW);
        assert_int_equal(s.focus, forward[i]);
    }
    assert_int_equal(login(&s, key_mod(SDLK_TAB, KMOD_LSHIFT)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_FOCUS_CONNECT);
    assert_int_equal(login(&s, key(SDLK_RIGHT)), SCREEN_NONE);
    assert_int_equal(login(&s, key(SDLK_DOWN)), SCREEN_NONE);
    assert_int_equal(s.focus, LOGIN_FOCUS_CONNECT);
    s.focus = LOGIN_USER;
    assert_int_equal(login(&s, key(SDLK_UP)), SCREEN_NONE);
    assert_int_equal(s.focus, LOGIN_USER);

    /* The locked broker takes no text even if the focus was left on it. */
    s.focus = LOGIN_BROKER;
    assert_int_equal(login(&s, text("x")), SCREEN_NONE);
    assert_int_equal(login(&s, key(SDLK_BACKSPACE)), SCREEN_NONE);
    assert_int_equal(login(&s, key_mod(SDLK_u, KMOD_LCTRL)), SCREEN_NONE);
    assert_string_equal(s.fields[LOGIN_BROKER].text, "vdi.example:5900");
    assert_int_equal(login(&s, key(SDLK_TAB)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_USER);

    /* Not busy, Escape does nothing (and there is no quitting in kiosk mode). */
    assert_int_equal(login(&s, key(SDLK_ESCAPE)), SCREEN_NONE);
}

static void test_login_enter(void **state)
{
    (void)state;
    struct login_screen s;
    login_screen_init(&s, false);
    login_screen_set_field(&s, LOGIN_BROKER, "vdi.example");

    /* In a text field Enter goes on to the next one. */
    s.focus = LOGIN_BROKER;
    assert_int_equal(login(&s, key(SDLK_RETURN)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_USER);
    assert_int_equal(login(&s, key(SDLK_KP_ENTER)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_PASSWORD);

    /* On the password it connects: refused while the user name is empty. */
    assert_int_equal(login(&s, key(SDLK_RETURN)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_USER);
    assert_true(s.message_is_error);
    assert_string_equal(s.message, "Enter your user name.");

    login_screen_set_field(&s, LOGIN_USER, "alice");
    s.focus = LOGIN_PASSWORD;
    /* A held Enter (repeat) does not connect. */
    assert_int_equal(login(&s, key_repeat(SDLK_RETURN)), SCREEN_NONE);
    /* An empty password is the broker's business. */
    assert_int_equal(login(&s, key(SDLK_RETURN)), SCREEN_SUBMIT);

    login_screen_set_field(&s, LOGIN_BROKER, "");
    s.focus = LOGIN_FOCUS_CONNECT;
    assert_int_equal(login(&s, key(SDLK_RETURN)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_BROKER);
    assert_string_equal(s.message, "Enter the server's address.");
    assert_true(s.message_is_error);

    login_screen_set_field(&s, LOGIN_BROKER, "vdi.example");
    s.focus = LOGIN_FOCUS_CONNECT;
    assert_int_equal(login(&s, key(SDLK_SPACE)), SCREEN_SUBMIT);
    assert_int_equal(login(&s, key(SDLK_RETURN)), SCREEN_SUBMIT);
    s.focus = LOGIN_FOCUS_QUIT;
    assert_int_equal(login(&s, key(SDLK_RETURN)), SCREEN_QUIT);
    assert_int_equal(login(&s, key(SDLK_SPACE)), SCREEN_QUIT);
}

static void test_login_busy(void **state)
{
    (void)state;
    struct login_screen s;
    login_filled(&s, false);
    s.connect_rect = (SDL_Rect){10, 300, 100, 40};
    s.quit_rect = (SDL_Rect){300, 300, 100, 40};
    s.field_rect[LOGIN_USER] = (SDL_Rect){10, 100, 400, 40};
    s.busy = true;
    s.focus = LOGIN_PASSWORD;
    assert_int_equal(login(&s, text("x")), SCREEN_NONE);
    assert_int_equal(login(&s, key(SDLK_BACKSPACE)), SCREEN_NONE);
    assert_int_equal(login(&s, key_mod(SDLK_u, KMOD_LCTRL)), SCREEN_NONE);
    assert_string_equal(s.fields[LOGIN_PASSWORD].text, "secret");
    assert_int_equal(login(&s, key(SDLK_RETURN)), SCREEN_NONE);
    assert_int_equal(login(&s, key(SDLK_TAB)), SCREEN_NONE);
    assert_int_equal(s.focus, LOGIN_PASSWORD);
    assert_int_equal(login(&s, click(20, 310)), SCREEN_NONE);
    assert_int_equal(login(&s, click(20, 110)), SCREEN_NONE);
    assert_int_equal(s.focus, LOGIN_PASSWORD);
    assert_int_equal(login(&s, key(SDLK_ESCAPE)), SCREEN_CANCEL);
    assert_int_equal(login(&s, click(310, 310)), SCREEN_QUIT);

    s.busy = false;
    assert_int_equal(login(&s, key(SDLK_ESCAPE)), SCREEN_NONE);
    assert_int_equal(login(&s, text("x")), SCREEN_REDRAW);
    assert_string_equal(s.fields[LOGIN_PASSWORD].text, "secretx");
}

static void test_login_clicks(void **state)
{
    (void)state;
    struct login_screen s;
    login_filled(&s, false);
    /* Not drawn yet: zero-sized rectangles never match. */
    assert_int_equal(login(&s, click(0, 0)), SCREEN_NONE);

    for (int f = 0; f < LOGIN_N_FIELDS; f++)
        s.field_rect[f] = (SDL_Rect){100, 100 + 60 * f, 400, 40};
    s.connect_rect = (SDL_Rect){100, 300, 120, 40};
    s.quit_rect = (SDL_Rect){380, 300, 120, 40};
    s.focus = LOGIN_BROKER;

    assert_int_equal(login(&s, click(150, 175)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_USER);
    assert_int_equal(login(&s, click(150, 175)), SCREEN_NONE);
    /* Edges: x + w and y + h are outside. */
    assert_int_equal(login(&s, click(500, 235)), SCREEN_NONE);
    assert_int_equal(login(&s, click(499, 239)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_PASSWORD);
    assert_int_equal(login(&s, click(50, 50)), SCREEN_NONE);

    /* Another button than the left one does nothing. */
    SDL_Event right = click(110, 310);
    right.button.button = SDL_BUTTON_RIGHT;
    assert_int_equal(login(&s, right), SCREEN_NONE);

    assert_int_equal(login(&s, click(110, 310)), SCREEN_SUBMIT);
    assert_int_equal(s.focus, LOGIN_FOCUS_CONNECT);
    login_screen_set_field(&s, LOGIN_USER, "");
    assert_int_equal(login(&s, click(110, 310)), SCREEN_REDRAW);
    assert_int_equal(s.focus, LOGIN_USER);
    assert_true(s.message_is_error);
    assert_int_equal(login(&s, click(390, 310)), SCREEN_QUIT);

    /* Locked broker: a click does not focus it. Kiosk: a stale Quit rect does nothing. */
    s.broker_locked = true;
    s.kiosk = true;
    assert_int_equal(login(&s, click(150, 110)), SCREEN_NONE);
    assert_int_equal(s.focus, LOGIN_USER);
    assert_int_equal(login(&s, click(390, 310)), SCREEN_NONE);
}

static void test_login_message_and_password(void **state)
{
    (void)state;
    struct login_screen s;
    login_screen_init(&s, false);
    login_screen_message(&s, true, "Wrong user name or password (%d)", 5);
    assert_string_equal(s.message, "Wrong user name or password (5)");
    assert_true(s.message_is_error);
    login_screen_message(&s, false, "%s", "Connecting\xe2\x80\xa6");
    assert_false(s.message_is_error);

    /* Cut at the buffer's end without leaving half a character. */
    char *big = malloc(3 * 1000 + 2);
    assert_non_null(big);
    big[0] = 'x';
    for (int i = 0; i < 1000; i++)
        memcpy(big + 1 + 3 * i, EURO, 3);
    big[1 + 3 * 1000] = 0;
    login_screen_message(&s, true, "%s", big);
    free(big);
    assert_true(strlen(s.message) < SCREEN_MESSAGE_MAX);
    assert_true(strlen(s.message) >= SCREEN_MESSAGE_MAX - 3);
    assert_true(clean_utf8(s.message));

    login_screen_set_field(&s, LOGIN_PASSWORD, "hunter2");
    login_screen_clear_password(&s);
    assert_int_equal(s.fields[LOGIN_PASSWORD].len, 0);
    assert_true(tail_wiped(&s.fields[LOGIN_PASSWORD]));
}

static void test_window_events_redraw(void **state)
{
    (void)state;
    SDL_Event e;
    memset(&e, 0, sizeof(e));
    e.type = SDL_WINDOWEVENT;
    e.window.event = SDL_WINDOWEVENT_SIZE_CHANGED;
    struct login_screen l;
    login_screen_init(&l, false);
    struct chooser_screen c = {0};
    struct trust_screen t = {0};
    struct message_screen m = {0};
    assert_int_equal(login_screen_event(&l, &e), SCREEN_REDRAW);
    assert_int_equal(chooser_screen_event(&c, &e), SCREEN_REDRAW);
    assert_int_equal(trust_screen_event(&t, &e), SCREEN_REDRAW);
    assert_int_equal(message_screen_event(&m, &e), SCREEN_REDRAW);
    e.window.event = SDL_WINDOWEVENT_MOVED;
    assert_int_equal(login_screen_event(&l, &e), SCREEN_NONE);
    e.type = SDL_MOUSEMOTION;
    assert_int_equal(message_screen_event(&m, &e), SCREEN_NONE);
}

/* Ten pools, the last draw showed four rows (0..3). */
static void chooser_ten(struct chooser_screen *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->user, sizeof(s->user), "alice");
    s->n_pools = 10;
    for (size_t i = 0; i < s->n_pools; i++) {
        snprintf(s->pools[i].name, sizeof(s->pools[i].name), "pool%zu", i);
        snprintf(s->pools[i].os, sizeof(s->pools[i].os), i % 2 ? "windows" : "linux");
    }
    for (size_t i = 0; i < 4; i++)
        s->item_rect[i] = (SDL_Rect){100, 100 + 50 * (int)i, 400, 46};
    s->connect_rect = (SDL_Rect){100, 320, 120, 40};
    s->back_rect = (SDL_Rect){380, 320, 120, 40};
}

static void test_chooser_keys(void **state)
{
    (void)state;
    struct chooser_screen s;
    chooser_ten(&s);
    assert_int_equal(chooser(&s, key(SDLK_UP)), SCREEN_NONE);
    assert_int_equal(chooser(&s, key(SDLK_HOME)), SCREEN_NONE);
    for (int i = 0; i < 5; i++)
        assert_int_equal(chooser(&s, key(SDLK_DOWN)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 5);
    assert_int_equal(s.first_visible, 2); /* rows 2..5 shown */
    assert_int_equal(chooser(&s, key(SDLK_END)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 9);
    assert_int_equal(s.first_visible, 6);
    assert_int_equal(chooser(&s, key(SDLK_DOWN)), SCREEN_NONE);
    assert_int_equal(chooser(&s, key(SDLK_PAGEDOWN)), SCREEN_NONE);
    assert_int_equal(chooser(&s, key(SDLK_UP)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 8);
    assert_int_equal(s.first_visible, 6);
    assert_int_equal(chooser(&s, key(SDLK_HOME)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 0);
    assert_int_equal(s.first_visible, 0);
    /* A page is the rows shown minus one, so one row stays for orientation. */
    assert_int_equal(chooser(&s, key(SDLK_PAGEDOWN)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 3);
    assert_int_equal(s.first_visible, 0);
    assert_int_equal(chooser(&s, key(SDLK_PAGEDOWN)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 6);
    assert_int_equal(s.first_visible, 3);
    assert_int_equal(chooser(&s, key(SDLK_PAGEUP)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 3);
    assert_int_equal(s.first_visible, 3);
    assert_int_equal(chooser(&s, key(SDLK_PAGEUP)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 0);
    assert_int_equal(s.first_visible, 0);

    assert_int_equal(chooser(&s, key(SDLK_RETURN)), SCREEN_SUBMIT);
    assert_int_equal(chooser(&s, key(SDLK_KP_ENTER)), SCREEN_SUBMIT);
    assert_int_equal(chooser(&s, key_repeat(SDLK_RETURN)), SCREEN_NONE);
    assert_int_equal(chooser(&s, key(SDLK_ESCAPE)), SCREEN_CANCEL);
    assert_int_equal(chooser(&s, key(SDLK_a)), SCREEN_NONE);

    /* A selection past the end (the app shrank the list) is pulled back. */
    s.selected = 42;
    assert_int_equal(chooser(&s, key(SDLK_UP)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 8);

    s.n_pools = 0;
    s.selected = 0;
    assert_int_equal(chooser(&s, key(SDLK_DOWN)), SCREEN_NONE);
    assert_int_equal(chooser(&s, key(SDLK_RETURN)), SCREEN_NONE);
    assert_int_equal(chooser(&s, click(110, 330)), SCREEN_NONE);
    assert_int_equal(chooser(&s, key(SDLK_ESCAPE)), SCREEN_CANCEL);
}

static void test_chooser_before_first_draw(void **state)
{
    (void)state;
    struct chooser_screen s;
    chooser_ten(&s);
    memset(s.item_rect, 0, sizeof(s.item_rect));
    /* Nothing known about the view: the page is one row, the view follows upward moves. */
    assert_int_equal(chooser(&s, key(SDLK_PAGEDOWN)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 1);
    s.first_visible = 5;
    assert_int_equal(chooser(&s, key(SDLK_UP)), SCREEN_REDRAW);
    assert_int_equal(s.first_visible, 0);
    assert_int_equal(chooser(&s, wheel(-1, false)), SCREEN_NONE);
}

static void test_chooser_wheel(void **state)
{
    (void)state;
    struct chooser_screen s;
    chooser_ten(&s);
    s.selected = 1;
    assert_int_equal(chooser(&s, wheel(-1, false)), SCREEN_REDRAW);
    assert_int_equal(s.first_visible, 1);
    assert_int_equal(chooser(&s, wheel(-20, false)), SCREEN_REDRAW);
    assert_int_equal(s.first_visible, 6);
    assert_int_equal(chooser(&s, wheel(-1, false)), SCREEN_NONE);
    assert_int_equal(chooser(&s, wheel(3, false)), SCREEN_REDRAW);
    assert_int_equal(s.first_visible, 3);
    assert_int_equal(chooser(&s, wheel(1, true)), SCREEN_REDRAW);
    assert_int_equal(s.first_visible, 4);
    assert_int_equal(chooser(&s, wheel(20, false)), SCREEN_REDRAW);
    assert_int_equal(s.first_visible, 0);
    assert_int_equal(chooser(&s, wheel(1, false)), SCREEN_NONE);
    assert_int_equal(s.selected, 1); /* the wheel scrolls, it does not select */

    /* Everything visible: nothing to scroll. */
    s.n_pools = 3;
    assert_int_equal(chooser(&s, wheel(-1, false)), SCREEN_NONE);
}

static void test_chooser_clicks(void **state)
{
    (void)state;
    struct chooser_screen s;
    chooser_ten(&s);
    assert_int_equal(chooser(&s, click(110, 210)), SCREEN_REDRAW);
    assert_int_equal(s.selected, 2);
    assert_int_equal(chooser(&s, click(110, 210)), SCREEN_NONE);
    assert_int_equal(chooser(&s, click_n(110, 210, 2)), SCREEN_SUBMIT);
    assert_int_equal(s.selected, 2);
    /* A double click's second press on another row (fast hands) submits that row. */
    assert_int_equal(chooser(&s, click_n(110, 260, 2)), SCREEN_SUBMIT);
    assert_int_equal(s.selected, 3);
    /* Between rows, and rows not shown (w 0), are not hits. */
    assert_int_equal(chooser(&s, click(110, 147)), SCREEN_NONE);
    assert_int_equal(chooser(&s, click(110, 400)), SCREEN_NONE);
    assert_int_equal(s.selected, 3);

    assert_int_equal(chooser(&s, click(110, 330)), SCREEN_SUBMIT);
    assert_int_equal(chooser(&s, click(390, 330)), SCREEN_CANCEL);
    SDL_Event right = click(110, 210);
    right.button.button = SDL_BUTTON_RIGHT;
    assert_int_equal(chooser(&s, right), SCREEN_NONE);
}

static void trust_first_use(struct trust_screen *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->broker, sizeof(t->broker), "vdi.example:5900");
    snprintf(t->fingerprint, sizeof(t->fingerprint), "AB:CD:EF");
    t->trust_rect = (SDL_Rect){400, 400, 200, 40};
    t->cancel_rect = (SDL_Rect){100, 400, 120, 40};
}

static void test_trust_first_use(void **state)
{
    (void)state;
    struct trust_screen t;
    trust_first_use(&t);
    assert_int_equal(t.focus, 0);
    /* The default is Cancel, and a held Enter does nothing. */
    assert_int_equal(trust(&t, key_repeat(SDLK_RETURN)), SCREEN_NONE);
    assert_int_equal(trust(&t, key(SDLK_RETURN)), SCREEN_CANCEL);
    assert_int_equal(trust(&t, key(SDLK_TAB)), SCREEN_REDRAW);
    assert_int_equal(t.focus, 1);
    assert_int_equal(trust(&t, key_repeat(SDLK_RETURN)), SCREEN_NONE);
    assert_int_equal(trust(&t, key(SDLK_RETURN)), SCREEN_SUBMIT);
    assert_int_equal(trust(&t, key(SDLK_SPACE)), SCREEN_SUBMIT);
    assert_int_equal(trust(&t, key(SDLK_ESCAPE)), SCREEN_CANCEL);
    assert_int_equal(trust(&t, key_mod(SDLK_TAB, KMOD_LSHIFT)), SCREEN_REDRAW);
    assert_int_equal(t.focus, 0);
    assert_int_equal(trust(&t, key(SDLK_LEFT)), SCREEN_NONE);
    assert_int_equal(trust(&t, key(SDLK_RIGHT)), SCREEN_REDRAW);
    assert_int_equal(t.focus, 1);
    assert_int_equal(trust(&t, key(SDLK_RIGHT)), SCREEN_NONE);
    assert_int_equal(trust(&t, key(SDLK_LEFT)), SCREEN_REDRAW);
    assert_int_equal(t.focus, 0);
    assert_int_equal(trust(&t, key(SDLK_DOWN)), SCREEN_REDRAW);
    assert_int_equal(t.focus, 1);
    assert_int_equal(trust(&t, key(SDLK_a)), SCREEN_NONE);

    assert_int_equal(trust(&t, click(410, 410)), SCREEN_SUBMIT);
    assert_int_equal(trust(&t, click(110, 410)), SCREEN_CANCEL);
    assert_int_equal(trust(&t, click(300, 410)), SCREEN_NONE);
}

static void test_trust_mismatch(void **state)
{
    (void)state;
    struct trust_screen t;
    trust_first_use(&t);
    t.mismatch = true;
    t.focus = 1; /* whatever the app left there, there is only Back */
    assert_int_equal(trust(&t, key(SDLK_TAB)), SCREEN_NONE);
    assert_int_equal(t.focus, 0);
    assert_int_equal(trust(&t, key(SDLK_RIGHT)), SCREEN_NONE);
    assert_int_equal(t.focus, 0);
    assert_int_equal(trust(&t, key(SDLK_RETURN)), SCREEN_CANCEL);
    assert_int_equal(trust(&t, key(SDLK_SPACE)), SCREEN_CANCEL);
    assert_int_equal(trust(&t, key(SDLK_ESCAPE)), SCREEN_CANCEL);
    /* A stale Trust rectangle is not a way to accept a changed certificate. */
    assert_int_equal(trust(&t, click(410, 410)), SCREEN_NONE);
    assert_int_equal(trust(&t, click(110, 410)), SCREEN_CANCEL);
}

static void test_message_screen(void **state)
{
    (void)state;
    struct message_screen m;
    memset(&m, 0, sizeof(m));
    snprintf(m.title, sizeof(m.title), "Disconnected");
    m.button_rect = (SDL_Rect){200, 300, 160, 40};
    assert_int_equal(message_screen_event(&m, &(SDL_Event){0}), SCREEN_NONE);
    SDL_Event e = key(SDLK_RETURN);
    assert_int_equal(message_screen_event(&m, &e), SCREEN_SUBMIT);
    e = key(SDLK_ESCAPE);
    assert_int_equal(message_screen_event(&m, &e), SCREEN_SUBMIT);
    e = key(SDLK_SPACE);
    assert_int_equal(message_screen_event(&m, &e), SCREEN_SUBMIT);
    e = key(SDLK_KP_ENTER);
    assert_int_equal(message_screen_event(&m, &e), SCREEN_SUBMIT);
    e = key_repeat(SDLK_RETURN);
    assert_int_equal(message_screen_event(&m, &e), SCREEN_NONE);
    e = key(SDLK_x);
    assert_int_equal(message_screen_event(&m, &e), SCREEN_NONE);
    e = click(210, 310);
    assert_int_equal(message_screen_event(&m, &e), SCREEN_SUBMIT);
    e = click(10, 10);
    assert_int_equal(message_screen_event(&m, &e), SCREEN_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_init_and_first_empty),
        cmocka_unit_test(test_login_set_field_sanitises),
        cmocka_unit_test(test_login_typing),
        cmocka_unit_test(test_login_utf8_backspace),
        cmocka_unit_test(test_login_field_max),
        cmocka_unit_test(test_login_refuses_control_and_invalid),
        cmocka_unit_test(test_login_ctrl_u_and_paste),
        cmocka_unit_test(test_login_paste_caps),
        cmocka_unit_test(test_login_focus_order),
        cmocka_unit_test(test_login_focus_kiosk_locked),
        cmocka_unit_test(test_login_enter),
        cmocka_unit_test(test_login_busy),
        cmocka_unit_test(test_login_clicks),
        cmocka_unit_test(test_login_message_and_password),
        cmocka_unit_test(test_window_events_redraw),
        cmocka_unit_test(test_chooser_keys),
        cmocka_unit_test(test_chooser_before_first_draw),
        cmocka_unit_test(test_chooser_wheel),
        cmocka_unit_test(test_chooser_clicks),
        cmocka_unit_test(test_trust_first_use),
        cmocka_unit_test(test_trust_mismatch),
        cmocka_unit_test(test_message_screen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
