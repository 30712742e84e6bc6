#pragma once
/*
 * Key translation tables: SDL key codes to X11 keysyms (what RFB KeyEvent carries), SDL
 * scancodes (USB HID positions) to the QEMU "XT" key codes of the QEMU extended key event
 * (PC scancode set 1; keys with an 0xE0 prefix are sent as 0x80 | code), and Unicode text
 * to keysyms. Pure functions, no SDL calls.
 */
#include <stdbool.h>
#include <stdint.h>

#include <SDL2/SDL_keycode.h>
#include <SDL2/SDL_scancode.h>

#define KEYSYM_UNICODE_OFFSET 0x01000000u

/* Keysym of a key that does not produce text (Return, arrows, F1, Shift, keypad keys, ...),
 * or 0 for keys that type a character (and unknown keys). */
uint32_t keymap_special_keysym(SDL_Keycode key);

/* Keysym for any key: the special keysym, else the key's (unshifted) character. 0 when the
 * key has neither. */
uint32_t keymap_keysym(SDL_Keycode key);

/* Keysym of a Unicode character: Latin-1 maps to itself, the rest to 0x01000000 + code
 * point (X11 convention). 0 for control characters and invalid code points. */
uint32_t keymap_keysym_from_unicode(uint32_t codepoint);

/* The keysym of a letter in upper (or lower) case: a-z and the Latin-1 letters; other
 * keysyms unchanged. */
uint32_t keymap_keysym_case(uint32_t keysym, bool upper);

/* QEMU XT key code of a scancode, or 0 when the key has none. */
uint32_t keymap_xt_from_scancode(SDL_Scancode scancode);

/* Decodes the next UTF-8 character of s (advancing *s). Returns the code point, or 0 at
 * the end of the string; invalid bytes yield U+FFFD. */
uint32_t keymap_utf8_next(const char **s);
