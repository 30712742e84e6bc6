#pragma once
/*
 * Keyboard and mouse translation from SDL events to RFB input, independent of the
 * connection (the sink receives the result) so that it is unit tested with synthetic
 * events.
 *
 * Two keyboard modes:
 *  - extended (the server acknowledged QEMU extended key events): every key is sent on
 *    KEYDOWN/KEYUP with its XT key code; the server applies its own layout, so the local
 *    layout does not matter. Text input events are ignored. Letters' keysyms follow
 *    Shift and Caps Lock (QEMU infers Caps Lock from them).
 *  - keysym (plain RFB): keys that do not type text (Return, arrows, modifiers, keypad)
 *    are sent as keysyms at once; keys that type text wait for SDL's TEXTINPUT so that the
 *    keysym is the character the local layout produced (Shift, AltGr, dead keys, input
 *    methods); with Ctrl, Alt or Super held (no AltGr) the key's own character is sent,
 *    since SDL gives no text then. The release sends the keysym the press sent.
 * Each pressed key remembers how it was sent, so a mode change while a key is held (the
 * acknowledgement arrives after the first update) releases it correctly, and
 * input_keyboard_release_all() (focus loss) leaves no key stuck on the server.
 */
#include <stdbool.h>
#include <stdint.h>

#include <SDL2/SDL_events.h>

struct input_sink {
    /* xt_keycode is 0 for a plain KeyEvent, else the QEMU extended key event's code. */
    void (*key)(void *userdata, uint32_t keysym, uint32_t xt_keycode, bool down);
    void *userdata;
};

struct input_pressed_key {
    uint32_t keysym, xt_keycode;
    bool down;
};

struct input_keyboard {
    struct input_pressed_key pressed[SDL_NUM_SCANCODES];
    SDL_Scancode pending; /* key whose text we wait for (keysym mode) */
    bool have_pending;
    bool suppress_text; /* the last KEYDOWN was sent already: drop its TEXTINPUT */
};

void input_keyboard_init(struct input_keyboard *kb);
void input_keyboard_key(struct input_keyboard *kb, const SDL_KeyboardEvent *ev, bool extended,
                        const struct input_sink *sink);
void input_keyboard_text(struct input_keyboard *kb, const char *utf8,
                         const struct input_sink *sink);
void input_keyboard_release_all(struct input_keyboard *kb, const struct input_sink *sink);

/* RFB pointer button bit of an SDL mouse button (1 left, 2 middle, 4 right), 0 for others. */
uint8_t input_button_mask(uint8_t sdl_button);

/* RFB button bit for one wheel step: 8 up, 16 down, 32 left, 64 right (X11 buttons 4-7).
 * dy > 0 is away from the user; flipped is SDL_MOUSEWHEEL_FLIPPED. 0 when no motion. */
uint8_t input_wheel_mask(int dx, int dy, bool flipped);
