#include "input.h"

#include <string.h>

#include "keymap.h"

void input_keyboard_init(struct input_keyboard *kb)
{
    memset(kb, 0, sizeof(*kb));
}

static void press(struct input_keyboard *kb, SDL_Scancode sc, uint32_t keysym, uint32_t xt,
                  const struct input_sink *sink)
{
    struct input_pressed_key *p = &kb->pressed[sc];
    /* A held key whose meaning changed (Shift pressed meanwhile): release the old one. */
    if (p->down && (p->keysym != keysym || p->xt_keycode != xt))
        sink->key(sink->userdata, p->keysym, p->xt_keycode, false);
    *p = (struct input_pressed_key){keysym, xt, true};
    sink->key(sink->userdata, keysym, xt, true);
}

void input_keyboard_key(struct input_keyboard *kb, const SDL_KeyboardEvent *ev, bool extended,
                        const struct input_sink *sink)
{
    SDL_Scancode sc = ev->keysym.scancode;
    if ((unsigned)sc >= SDL_NUM_SCANCODES)
        return;

    if (ev->state == SDL_RELEASED) {
        struct input_pressed_key *p = &kb->pressed[sc];
        if (p->down)
            sink->key(sink->userdata, p->keysym, p->xt_keycode, false);
        p->down = false;
        if (kb->have_pending && kb->pending == sc)
            kb->have_pending = false;
        return;
    }

    SDL_Keycode key = ev->keysym.sym;
    uint16_t mod = ev->keysym.mod;
    kb->have_pending = false;
    kb->suppress_text = true;

    if (extended) {
        /* The server types by key code; but QEMU also reads the keysym's case to guess
         * Caps Lock ("lock_key_sync") and toggles it when case and Shift disagree. So a
         * letter's keysym carries the case that Shift and Caps Lock give it. */
        uint32_t xt = keymap_xt_from_scancode(sc);
        bool upper = !!(mod & KMOD_SHIFT) != !!(mod & KMOD_CAPS);
        uint32_t sym = keymap_keysym_case(keymap_keysym(key), upper);
        if (xt != 0 || sym != 0)
            press(kb, sc, sym, xt, sink);
        return;
    }

    uint32_t sym = keymap_special_keysym(key);
    if (sym) {
        press(kb, sc, sym, 0, sink);
        return;
    }
    sym = keymap_keysym(key);
    if (!sym)
        return;
    bool shortcut = (mod & (KMOD_CTRL | KMOD_GUI | KMOD_LALT)) && !(mod & KMOD_RALT);
    if (shortcut) {
        press(kb, sc, sym, 0, sink);
        return;
    }
    /* Wait for the text this key types. */
    kb->pending = sc;
    kb->have_pending = true;
    kb->suppress_text = false;
}

void input_keyboard_text(struct input_keyboard *kb, const char *utf8, const struct input_sink *sink)
{
    if (kb->suppress_text) {
        kb->suppress_text = false;
        return;
    }
    const char *s = utf8;
    uint32_t cp;
    while ((cp = keymap_utf8_next(&s)) != 0) {
        uint32_t sym = keymap_keysym_from_unicode(cp);
        if (!sym)
            continue;
        if (kb->have_pending) {
            /* The key is still down: its release will send the up. */
            press(kb, kb->pending, sym, 0, sink);
            kb->have_pending = false;
        } else {
            /* Composed text (input method, dead key result without a key held). */
            sink->key(sink->userdata, sym, 0, true);
            sink->key(sink->userdata, sym, 0, false);
        }
    }
}

void input_keyboard_release_all(struct input_keyboard *kb, const struct input_sink *sink)
{
    for (size_t i = 0; i < SDL_NUM_SCANCODES; i++) {
        struct input_pressed_key *p = &kb->pressed[i];
        if (p->down)
            sink->key(sink->userdata, p->keysym, p->xt_keycode, false);
        p->down = false;
    }
    kb->have_pending = false;
    kb->suppress_text = false;
}

uint8_t input_button_mask(uint8_t sdl_button)
{
    switch (sdl_button) {
    case SDL_BUTTON_LEFT:
        return 1;
    case SDL_BUTTON_MIDDLE:
        return 2;
    case SDL_BUTTON_RIGHT:
        return 4;
    default:
        return 0;
    }
}

uint8_t input_wheel_mask(int dx, int dy, bool flipped)
{
    if (flipped) {
        dx = -dx;
        dy = -dy;
    }
    if (dy > 0)
        return 8;
    if (dy < 0)
        return 16;
    if (dx < 0)
        return 32;
    if (dx > 0)
        return 64;
    return 0;
}
