/* Key tables (thinclient/keymap.c), the keyboard state machine (input.c) and the window
 * to framebuffer mapping (layout.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "input.h"
#include "keymap.h"
#include "layout.h"
#include "util.h"

static void test_special_keysyms(void **state)
{
    (void)state;
    assert_int_equal(keymap_keysym(SDLK_RETURN), 0xff0d);
    assert_int_equal(keymap_keysym(SDLK_ESCAPE), 0xff1b);
    assert_int_equal(keymap_keysym(SDLK_BACKSPACE), 0xff08);
    assert_int_equal(keymap_keysym(SDLK_TAB), 0xff09);
    assert_int_equal(keymap_keysym(SDLK_DELETE), 0xffff);
    assert_int_equal(keymap_keysym(SDLK_LEFT), 0xff51);
    assert_int_equal(keymap_keysym(SDLK_F1), 0xffbe);
    assert_int_equal(keymap_keysym(SDLK_F12), 0xffc9);
    assert_int_equal(keymap_keysym(SDLK_LSHIFT), 0xffe1);
    assert_int_equal(keymap_keysym(SDLK_RCTRL), 0xffe4);
    assert_int_equal(keymap_keysym(SDLK_LGUI), 0xffeb);
    assert_int_equal(keymap_keysym(SDLK_KP_ENTER), 0xff8d);
    assert_int_equal(keymap_keysym(SDLK_KP_5), 0xffb5);
    /* Characters are not special, and map to themselves. */
    assert_int_equal(keymap_special_keysym(SDLK_a), 0);
    assert_int_equal(keymap_keysym(SDLK_a), 'a');
    assert_int_equal(keymap_keysym(SDLK_SPACE), 0x20);
    assert_int_equal(keymap_keysym(SDLK_1), '1');
    /* A key without character or keysym. */
    assert_int_equal(keymap_keysym(SDLK_BRIGHTNESSUP), 0);
}

/* Every F key in order: the table has no typo in the consecutive range. */
static void test_function_keys_consecutive(void **state)
{
    (void)state;
    static const SDL_Keycode f[] = {SDLK_F1,  SDLK_F2,  SDLK_F3,  SDLK_F4,  SDLK_F5,  SDLK_F6,
                                    SDLK_F7,  SDLK_F8,  SDLK_F9,  SDLK_F10, SDLK_F11, SDLK_F12,
                                    SDLK_F13, SDLK_F14, SDLK_F15, SDLK_F16, SDLK_F17, SDLK_F18,
                                    SDLK_F19, SDLK_F20, SDLK_F21, SDLK_F22, SDLK_F23, SDLK_F24};
    for (size_t i = 0; i < ARRAY_SIZE(f); i++)
        assert_int_equal(keymap_keysym(f[i]), 0xffbe + i);
}

static void test_unicode_keysyms(void **state)
{
    (void)state;
    assert_int_equal(keymap_keysym_from_unicode('A'), 0x41);
    assert_int_equal(keymap_keysym_from_unicode(0xe4), 0xe4);          /* ä: Latin-1 */
    assert_int_equal(keymap_keysym_from_unicode(0x20ac), 0x010020ac);  /* € */
    assert_int_equal(keymap_keysym_from_unicode(0x1f600), 0x0101f600); /* emoji */
    assert_int_equal(keymap_keysym_from_unicode(0x0a), 0);             /* control */
    assert_int_equal(keymap_keysym_from_unicode(0x85), 0);             /* C1 */
    assert_int_equal(keymap_keysym_from_unicode(0xd800), 0);           /* surrogate */
    assert_int_equal(keymap_keysym_from_unicode(0x110000), 0);
}

static void test_xt_scancodes(void **state)
{
    (void)state;
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_ESCAPE), 0x01);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_1), 0x02);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_0), 0x0b);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_Q), 0x10);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_A), 0x1e);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_Z), 0x2c);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_RETURN), 0x1c);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_SPACE), 0x39);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_F1), 0x3b);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_F10), 0x44);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_F11), 0x57);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_NONUSBACKSLASH), 0x56);
    /* 0xE0-prefixed keys: high bit set */
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_RCTRL), 0x9d);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_RALT), 0xb8);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_KP_ENTER), 0x9c);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_KP_DIVIDE), 0xb5);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_UP), 0xc8);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_LEFT), 0xcb);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_RIGHT), 0xcd);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_DOWN), 0xd0);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_INSERT), 0xd2);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_DELETE), 0xd3);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_LGUI), 0xdb);
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_APPLICATION), 0xdd);
    /* unknown, and out of range */
    assert_int_equal(keymap_xt_from_scancode(SDL_SCANCODE_UNKNOWN), 0);
    assert_int_equal(keymap_xt_from_scancode((SDL_Scancode)100000), 0);
}

/* No two positions share an XT code, except the documented ISO alias. */
static void test_xt_codes_unique(void **state)
{
    (void)state;
    SDL_Scancode seen[256] = {0};
    for (int sc = 0; sc < SDL_NUM_SCANCODES; sc++) {
        uint32_t xt = keymap_xt_from_scancode((SDL_Scancode)sc);
        if (!xt)
            continue;
        assert_true(xt < 256);
        if (seen[xt] && !(xt == 0x2b && (sc == SDL_SCANCODE_NONUSHASH))) {
            fprintf(stderr, "scancodes %d and %d both map to 0x%02x\n", seen[xt], sc, xt);
            fail();
        }
        seen[xt] = (SDL_Scancode)sc;
    }
}

static void test_keysym_case(void **state)
{
    (void)state;
    assert_int_equal(keymap_keysym_case('a', true), 'A');
    assert_int_equal(keymap_keysym_case('A', false), 'a');
    assert_int_equal(keymap_keysym_case('a', false), 'a');
    assert_int_equal(keymap_keysym_case(0xe4, true), 0xc4);  /* ä -> Ä */
    assert_int_equal(keymap_keysym_case(0xf7, true), 0xf7);  /* ÷ is no letter */
    assert_int_equal(keymap_keysym_case(0xd7, false), 0xd7); /* × neither */
    assert_int_equal(keymap_keysym_case('1', true), '1');
    assert_int_equal(keymap_keysym_case(0xff0d, true), 0xff0d);
}

static void test_utf8_next(void **state)
{
    (void)state;
    const char *s = "a\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80\xff";
    assert_int_equal(keymap_utf8_next(&s), 'a');
    assert_int_equal(keymap_utf8_next(&s), 0xe4);
    assert_int_equal(keymap_utf8_next(&s), 0x20ac);
    assert_int_equal(keymap_utf8_next(&s), 0x1f600);
    assert_int_equal(keymap_utf8_next(&s), 0xfffd);
    assert_int_equal(keymap_utf8_next(&s), 0);
}

/* ---- input state machine ---------------------------------------------------------------- */

struct recorded {
    uint32_t keysym, xt;
    bool down;
};

struct recorder {
    struct recorded ev[32];
    size_t n;
};

static void record_key(void *userdata, uint32_t keysym, uint32_t xt, bool down)
{
    struct recorder *r = userdata;
    assert_true(r->n < ARRAY_SIZE(r->ev));
    r->ev[r->n++] = (struct recorded){keysym, xt, down};
}

static SDL_KeyboardEvent key_event(bool down, SDL_Scancode sc, SDL_Keycode sym, uint16_t mod)
{
    SDL_KeyboardEvent e = {0};
    e.type = down ? SDL_KEYDOWN : SDL_KEYUP;
    e.state = down ? SDL_PRESSED : SDL_RELEASED;
    e.keysym.scancode = sc;
    e.keysym.sym = sym;
    e.keysym.mod = mod;
    return e;
}

static void assert_event(const struct recorder *r, size_t i, uint32_t keysym, uint32_t xt,
                         bool down)
{
    assert_true(i < r->n);
    assert_int_equal(r->ev[i].keysym, keysym);
    assert_int_equal(r->ev[i].xt, xt);
    assert_int_equal(r->ev[i].down, down);
}

/* Keysym mode: Shift+1 types '!' (from the text event), released as '!'. */
static void test_keysym_mode_text(void **state)
{
    (void)state;
    struct input_keyboard kb;
    struct recorder rec = {0};
    struct input_sink sink = {record_key, &rec};
    input_keyboard_init(&kb);

    SDL_KeyboardEvent e = key_event(true, SDL_SCANCODE_LSHIFT, SDLK_LSHIFT, 0);
    input_keyboard_key(&kb, &e, false, &sink);
    e = key_event(true, SDL_SCANCODE_1, SDLK_1, KMOD_LSHIFT);
    input_keyboard_key(&kb, &e, false, &sink);
    assert_int_equal(rec.n, 1); /* waits for the text */
    input_keyboard_text(&kb, "!", &sink);
    e = key_event(false, SDL_SCANCODE_1, SDLK_1, KMOD_LSHIFT);
    input_keyboard_key(&kb, &e, false, &sink);
    e = key_event(false, SDL_SCANCODE_LSHIFT, SDLK_LSHIFT, 0);
    input_keyboard_key(&kb, &e, false, &sink);

    assert_int_equal(rec.n, 4);
    assert_event(&rec, 0, 0xffe1, 0, true);
    assert_event(&rec, 1, '!', 0, true);
    assert_event(&rec, 2, '!', 0, false);
    assert_event(&rec, 3, 0xffe1, 0, false);
}

/* Keysym mode: special keys go out at once, and the keypad's text event is dropped. */
static void test_keysym_mode_special_and_keypad(void **state)
{
    (void)state;
    struct input_keyboard kb;
    struct recorder rec = {0};
    struct input_sink sink = {record_key, &rec};
    input_keyboard_init(&kb);

    SDL_KeyboardEvent e = key_event(true, SDL_SCANCODE_KP_1, SDLK_KP_1, KMOD_NUM);
    input_keyboard_key(&kb, &e, false, &sink);
    input_keyboard_text(&kb, "1", &sink);
    e = key_event(false, SDL_SCANCODE_KP_1, SDLK_KP_1, KMOD_NUM);
    input_keyboard_key(&kb, &e, false, &sink);
    assert_int_equal(rec.n, 2);
    assert_event(&rec, 0, 0xffb1, 0, true);
    assert_event(&rec, 1, 0xffb1, 0, false);
}

/* Keysym mode: Ctrl+C sends 'c' itself (SDL gives no text with Ctrl). */
static void test_keysym_mode_ctrl_shortcut(void **state)
{
    (void)state;
    struct input_keyboard kb;
    struct recorder rec = {0};
    struct input_sink sink = {record_key, &rec};
    input_keyboard_init(&kb);

    SDL_KeyboardEvent e = key_event(true, SDL_SCANCODE_C, SDLK_c, KMOD_LCTRL);
    input_keyboard_key(&kb, &e, false, &sink);
    e = key_event(false, SDL_SCANCODE_C, SDLK_c, KMOD_LCTRL);
    input_keyboard_key(&kb, &e, false, &sink);
    assert_int_equal(rec.n, 2);
    assert_event(&rec, 0, 'c', 0, true);
    assert_event(&rec, 1, 'c', 0, false);
}

/* Keysym mode: AltGr+q on a German layout types '@' through text. */
static void test_keysym_mode_altgr(void **state)
{
    (void)state;
    struct input_keyboard kb;
    struct recorder rec = {0};
    struct input_sink sink = {record_key, &rec};
    input_keyboard_init(&kb);
    SDL_KeyboardEvent e = key_event(true, SDL_SCANCODE_Q, SDLK_q, KMOD_RALT);
    input_keyboard_key(&kb, &e, false, &sink);
    input_keyboard_text(&kb, "@", &sink);
    e = key_event(false, SDL_SCANCODE_Q, SDLK_q, KMOD_RALT);
    input_keyboard_key(&kb, &e, false, &sink);
    assert_int_equal(rec.n, 2);
    assert_event(&rec, 0, '@', 0, true);
    assert_event(&rec, 1, '@', 0, false);
}

/* Text without a key (input method): down and up for each character. */
static void test_keysym_mode_composed_text(void **state)
{
    (void)state;
    struct input_keyboard kb;
    struct recorder rec = {0};
    struct input_sink sink = {record_key, &rec};
    input_keyboard_init(&kb);
    input_keyboard_text(&kb, "\xc3\xa9\xe2\x82\xac", &sink); /* é€ */
    assert_int_equal(rec.n, 4);
    assert_event(&rec, 0, 0xe9, 0, true);
    assert_event(&rec, 1, 0xe9, 0, false);
    assert_event(&rec, 2, 0x010020ac, 0, true);
    assert_event(&rec, 3, 0x010020ac, 0, false);
}

/* Extended mode: scan codes, no waiting for text, text events ignored by the caller. */
static void test_extended_mode(void **state)
{
    (void)state;
    struct input_keyboard kb;
    struct recorder rec = {0};
    struct input_sink sink = {record_key, &rec};
    input_keyboard_init(&kb);
    SDL_KeyboardEvent e = key_event(true, SDL_SCANCODE_A, SDLK_a, 0);
    input_keyboard_key(&kb, &e, true, &sink);
    e = key_event(true, SDL_SCANCODE_RALT, SDLK_RALT, 0);
    input_keyboard_key(&kb, &e, true, &sink);
    e = key_event(false, SDL_SCANCODE_RALT, SDLK_RALT, 0);
    input_keyboard_key(&kb, &e, true, &sink);
    e = key_event(false, SDL_SCANCODE_A, SDLK_a, 0);
    input_keyboard_key(&kb, &e, true, &sink);
    assert_int_equal(rec.n, 4);
    assert_event(&rec, 0, 'a', 0x1e, true);
    assert_event(&rec, 1, 0xffea, 0xb8, true);
    assert_event(&rec, 2, 0xffea, 0xb8, false);
    assert_event(&rec, 3, 'a', 0x1e, false);

    /* Shift+a is 'A', Caps Lock+a is 'A', Shift with Caps Lock is 'a' (QEMU's Caps Lock
     * guess must not toggle anything). */
    rec.n = 0;
    e = key_event(true, SDL_SCANCODE_A, SDLK_a, KMOD_LSHIFT);
    input_keyboard_key(&kb, &e, true, &sink);
    e = key_event(false, SDL_SCANCODE_A, SDLK_a, 0);
    input_keyboard_key(&kb, &e, true, &sink);
    e = key_event(true, SDL_SCANCODE_A, SDLK_a, KMOD_CAPS);
    input_keyboard_key(&kb, &e, true, &sink);
    e = key_event(false, SDL_SCANCODE_A, SDLK_a, KMOD_CAPS);
    input_keyboard_key(&kb, &e, true, &sink);
    e = key_event(true, SDL_SCANCODE_A, SDLK_a, KMOD_CAPS | KMOD_RSHIFT);
    input_keyboard_key(&kb, &e, true, &sink);
    assert_int_equal(rec.n, 5);
    assert_event(&rec, 0, 'A', 0x1e, true);
    assert_event(&rec, 1, 'A', 0x1e, false); /* released as pressed */
    assert_event(&rec, 2, 'A', 0x1e, true);
    assert_event(&rec, 4, 'a', 0x1e, true);
}

/* A key pressed in keysym mode and released after the switch to extended mode is released
 * the way it was pressed. */
static void test_mode_switch_while_held(void **state)
{
    (void)state;
    struct input_keyboard kb;
    struct recorder rec = {0};
    struct input_sink sink = {record_key, &rec};
    input_keyboard_init(&kb);
    SDL_KeyboardEvent e = key_event(true, SDL_SCANCODE_LCTRL, SDLK_LCTRL, 0);
    input_keyboard_key(&kb, &e, false, &sink);
    e = key_event(false, SDL_SCANCODE_LCTRL, SDLK_LCTRL, 0);
    input_keyboard_key(&kb, &e, true, &sink);
    assert_int_equal(rec.n, 2);
    assert_event(&rec, 1, 0xffe3, 0, false);
}

/* Focus loss releases everything still held, once. */
static void test_release_all(void **state)
{
    (void)state;
    struct input_keyboard kb;
    struct recorder rec = {0};
    struct input_sink sink = {record_key, &rec};
    input_keyboard_init(&kb);
    SDL_KeyboardEvent e = key_event(true, SDL_SCANCODE_LALT, SDLK_LALT, 0);
    input_keyboard_key(&kb, &e, true, &sink);
    e = key_event(true, SDL_SCANCODE_TAB, SDLK_TAB, KMOD_LALT);
    input_keyboard_key(&kb, &e, true, &sink);
    input_keyboard_release_all(&kb, &sink);
    input_keyboard_release_all(&kb, &sink);
    assert_int_equal(rec.n, 4);
    assert_false(rec.ev[2].down);
    assert_false(rec.ev[3].down);
    /* The later key-up events from SDL send nothing more. */
    e = key_event(false, SDL_SCANCODE_TAB, SDLK_TAB, 0);
    input_keyboard_key(&kb, &e, true, &sink);
    assert_int_equal(rec.n, 4);
}

static void test_mouse_masks(void **state)
{
    (void)state;
    assert_int_equal(input_button_mask(SDL_BUTTON_LEFT), 1);
    assert_int_equal(input_button_mask(SDL_BUTTON_MIDDLE), 2);
    assert_int_equal(input_button_mask(SDL_BUTTON_RIGHT), 4);
    assert_int_equal(input_button_mask(SDL_BUTTON_X1), 0);
    assert_int_equal(input_wheel_mask(0, 1, false), 8);   /* button 4 */
    assert_int_equal(input_wheel_mask(0, -2, false), 16); /* button 5 */
    assert_int_equal(input_wheel_mask(0, 1, true), 16);
    assert_int_equal(input_wheel_mask(-1, 0, false), 32);
    assert_int_equal(input_wheel_mask(1, 0, false), 64);
    assert_int_equal(input_wheel_mask(0, 0, false), 0);
}

/* ---- layout ------------------------------------------------------------------------------ */

static void test_layout_fit(void **state)
{
    (void)state;
    struct layout l = layout_fit(800, 600, 800, 600);
    assert_int_equal(l.x, 0), assert_int_equal(l.y, 0);
    assert_int_equal(l.w, 800), assert_int_equal(l.h, 600);
    /* wider window: pillarbox */
    l = layout_fit(1600, 600, 800, 600);
    assert_int_equal(l.w, 800), assert_int_equal(l.h, 600), assert_int_equal(l.x, 400);
    /* taller window: letterbox, scaled down by 2 */
    l = layout_fit(400, 1000, 800, 600);
    assert_int_equal(l.w, 400), assert_int_equal(l.h, 300), assert_int_equal(l.y, 350);
    l = layout_fit(0, 100, 800, 600);
    assert_int_equal(l.w, 0);
}

static void test_layout_window_to_fb(void **state)
{
    (void)state;
    /* 1024x768 framebuffer in a 2048x2000 window: scale 2, 232 px black bars top and bottom */
    struct layout l = layout_fit(2048, 2000, 1024, 768);
    assert_int_equal(l.y, 232);
    int x, y;
    layout_window_to_fb(&l, 1024, 768, 0, 232, &x, &y);
    assert_int_equal(x, 0), assert_int_equal(y, 0);
    layout_window_to_fb(&l, 1024, 768, 1000, 232 + 600, &x, &y);
    assert_int_equal(x, 500), assert_int_equal(y, 300);
    layout_window_to_fb(&l, 1024, 768, 2047, 232 + 1535, &x, &y);
    assert_int_equal(x, 1023), assert_int_equal(y, 767);
    /* clicks on the bars land on the edge */
    layout_window_to_fb(&l, 1024, 768, 5, 10, &x, &y);
    assert_int_equal(x, 2), assert_int_equal(y, 0);
    layout_window_to_fb(&l, 1024, 768, 5, 1990, &x, &y);
    assert_int_equal(y, 767);
    layout_window_to_fb(&l, 1024, 768, -50, 5000, &x, &y);
    assert_int_equal(x, 0), assert_int_equal(y, 767);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_special_keysyms),
        cmocka_unit_test(test_function_keys_consecutive),
        cmocka_unit_test(test_unicode_keysyms),
        cmocka_unit_test(test_xt_scancodes),
        cmocka_unit_test(test_xt_codes_unique),
        cmocka_unit_test(test_keysym_case),
        cmocka_unit_test(test_utf8_next),
        cmocka_unit_test(test_keysym_mode_text),
        cmocka_unit_test(test_keysym_mode_special_and_keypad),
        cmocka_unit_test(test_keysym_mode_ctrl_shortcut),
        cmocka_unit_test(test_keysym_mode_altgr),
        cmocka_unit_test(test_keysym_mode_composed_text),
        cmocka_unit_test(test_extended_mode),
        cmocka_unit_test(test_mode_switch_while_held),
        cmocka_unit_test(test_release_all),
        cmocka_unit_test(test_mouse_masks),
        cmocka_unit_test(test_layout_fit),
        cmocka_unit_test(test_layout_window_to_fb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
