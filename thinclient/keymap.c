#include "keymap.h"

#include <stddef.h>
#include <string.h>

#include "cut-text.h"
#include "util.h"

struct special_key {
    SDL_Keycode key;
    uint32_t keysym;
};

/* Keys that do not type text, with their X11 keysyms (X11/keysymdef.h names). */
static const struct special_key special_keys[] = {
    {SDLK_BACKSPACE, 0xff08},    /* BackSpace */
    {SDLK_TAB, 0xff09},          /* Tab */
    {SDLK_CLEAR, 0xff0b},        /* Clear */
    {SDLK_RETURN, 0xff0d},       /* Return */
    {SDLK_RETURN2, 0xff0d},      /* Return */
    {SDLK_PAUSE, 0xff13},        /* Pause */
    {SDLK_SCROLLLOCK, 0xff14},   /* Scroll_Lock */
    {SDLK_SYSREQ, 0xff15},       /* Sys_Req */
    {SDLK_ESCAPE, 0xff1b},       /* Escape */
    {SDLK_DELETE, 0xffff},       /* Delete */
    {SDLK_HOME, 0xff50},         /* Home */
    {SDLK_LEFT, 0xff51},         /* Left */
    {SDLK_UP, 0xff52},           /* Up */
    {SDLK_RIGHT, 0xff53},        /* Right */
    {SDLK_DOWN, 0xff54},         /* Down */
    {SDLK_PAGEUP, 0xff55},       /* Prior */
    {SDLK_PAGEDOWN, 0xff56},     /* Next */
    {SDLK_END, 0xff57},          /* End */
    {SDLK_SELECT, 0xff60},       /* Select */
    {SDLK_PRINTSCREEN, 0xff61},  /* Print */
    {SDLK_EXECUTE, 0xff62},      /* Execute */
    {SDLK_INSERT, 0xff63},       /* Insert */
    {SDLK_UNDO, 0xff65},         /* Undo */
    {SDLK_AGAIN, 0xff66},        /* Redo */
    {SDLK_APPLICATION, 0xff67},  /* Menu */
    {SDLK_MENU, 0xff67},         /* Menu */
    {SDLK_FIND, 0xff68},         /* Find */
    {SDLK_CANCEL, 0xff69},       /* Cancel */
    {SDLK_STOP, 0xff69},         /* Cancel */
    {SDLK_HELP, 0xff6a},         /* Help */
    {SDLK_MODE, 0xff7e},         /* Mode_switch */
    {SDLK_NUMLOCKCLEAR, 0xff7f}, /* Num_Lock */
    {SDLK_KP_SPACE, 0xff80},     /* KP_Space */
    {SDLK_KP_TAB, 0xff89},       /* KP_Tab */
    {SDLK_KP_ENTER, 0xff8d},     /* KP_Enter */
    {SDLK_KP_EQUALS, 0xffbd},    /* KP_Equal */
    {SDLK_KP_MULTIPLY, 0xffaa},  /* KP_Multiply */
    {SDLK_KP_PLUS, 0xffab},      /* KP_Add */
    {SDLK_KP_COMMA, 0xffac},     /* KP_Separator */
    {SDLK_KP_MINUS, 0xffad},     /* KP_Subtract */
    {SDLK_KP_PERIOD, 0xffae},    /* KP_Decimal */
    {SDLK_KP_DECIMAL, 0xffae},   /* KP_Decimal */
    {SDLK_KP_DIVIDE, 0xffaf},    /* KP_Divide */
    {SDLK_KP_0, 0xffb0},         /* KP_0 */
    {SDLK_KP_1, 0xffb1},
    {SDLK_KP_2, 0xffb2},
    {SDLK_KP_3, 0xffb3},
    {SDLK_KP_4, 0xffb4},
    {SDLK_KP_5, 0xffb5},
    {SDLK_KP_6, 0xffb6},
    {SDLK_KP_7, 0xffb7},
    {SDLK_KP_8, 0xffb8},
    {SDLK_KP_9, 0xffb9},
    {SDLK_F1, 0xffbe}, /* F1 .. F24 are consecutive keysyms */
    {SDLK_F2, 0xffbf},
    {SDLK_F3, 0xffc0},
    {SDLK_F4, 0xffc1},
    {SDLK_F5, 0xffc2},
    {SDLK_F6, 0xffc3},
    {SDLK_F7, 0xffc4},
    {SDLK_F8, 0xffc5},
    {SDLK_F9, 0xffc6},
    {SDLK_F10, 0xffc7},
    {SDLK_F11, 0xffc8},
    {SDLK_F12, 0xffc9},
    {SDLK_F13, 0xffca},
    {SDLK_F14, 0xffcb},
    {SDLK_F15, 0xffcc},
    {SDLK_F16, 0xffcd},
    {SDLK_F17, 0xffce},
    {SDLK_F18, 0xffcf},
    {SDLK_F19, 0xffd0},
    {SDLK_F20, 0xffd1},
    {SDLK_F21, 0xffd2},
    {SDLK_F22, 0xffd3},
    {SDLK_F23, 0xffd4},
    {SDLK_F24, 0xffd5},
    {SDLK_LSHIFT, 0xffe1},         /* Shift_L */
    {SDLK_RSHIFT, 0xffe2},         /* Shift_R */
    {SDLK_LCTRL, 0xffe3},          /* Control_L */
    {SDLK_RCTRL, 0xffe4},          /* Control_R */
    {SDLK_CAPSLOCK, 0xffe5},       /* Caps_Lock */
    {SDLK_LALT, 0xffe9},           /* Alt_L */
    {SDLK_RALT, 0xffea},           /* Alt_R */
    {SDLK_LGUI, 0xffeb},           /* Super_L */
    {SDLK_RGUI, 0xffec},           /* Super_R */
    {SDLK_MUTE, 0x1008ff12},       /* XF86AudioMute */
    {SDLK_VOLUMEDOWN, 0x1008ff11}, /* XF86AudioLowerVolume */
    {SDLK_VOLUMEUP, 0x1008ff13},   /* XF86AudioRaiseVolume */
    {SDLK_AUDIOPLAY, 0x1008ff14},  /* XF86AudioPlay */
    {SDLK_AUDIOSTOP, 0x1008ff15},  /* XF86AudioStop */
    {SDLK_AUDIOPREV, 0x1008ff16},  /* XF86AudioPrev */
    {SDLK_AUDIONEXT, 0x1008ff17},  /* XF86AudioNext */
};

uint32_t keymap_special_keysym(SDL_Keycode key)
{
    for (size_t i = 0; i < ARRAY_SIZE(special_keys); i++)
        if (special_keys[i].key == key)
            return special_keys[i].keysym;
    return 0;
}

uint32_t keymap_keysym_from_unicode(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    if (cp <= 0xff)
        return cp;
    return KEYSYM_UNICODE_OFFSET + cp;
}

uint32_t keymap_keysym(SDL_Keycode key)
{
    uint32_t sym = keymap_special_keysym(key);
    if (sym)
        return sym;
    if (key & SDLK_SCANCODE_MASK)
        return 0; /* a key without a character that we have no keysym for */
    return keymap_keysym_from_unicode((uint32_t)key);
}

uint32_t keymap_keysym_case(uint32_t keysym, bool upper)
{
    bool lower_letter =
        (keysym >= 'a' && keysym <= 'z') || (keysym >= 0xe0 && keysym <= 0xfe && keysym != 0xf7);
    bool upper_letter =
        (keysym >= 'A' && keysym <= 'Z') || (keysym >= 0xc0 && keysym <= 0xde && keysym != 0xd7);
    if (upper && lower_letter)
        return keysym - 0x20;
    if (!upper && upper_letter)
        return keysym + 0x20;
    return keysym;
}

/* PC scancode set 1 by key position. Values >= 0x80 stand for 0xE0-prefixed codes. */
static const uint8_t xt_codes[SDL_NUM_SCANCODES] = {
    [SDL_SCANCODE_ESCAPE] = 0x01,
    [SDL_SCANCODE_1] = 0x02,
    [SDL_SCANCODE_2] = 0x03,
    [SDL_SCANCODE_3] = 0x04,
    [SDL_SCANCODE_4] = 0x05,
    [SDL_SCANCODE_5] = 0x06,
    [SDL_SCANCODE_6] = 0x07,
    [SDL_SCANCODE_7] = 0x08,
    [SDL_SCANCODE_8] = 0x09,
    [SDL_SCANCODE_9] = 0x0a,
    [SDL_SCANCODE_0] = 0x0b,
    [SDL_SCANCODE_MINUS] = 0x0c,
    [SDL_SCANCODE_EQUALS] = 0x0d,
    [SDL_SCANCODE_BACKSPACE] = 0x0e,
    [SDL_SCANCODE_TAB] = 0x0f,
    [SDL_SCANCODE_Q] = 0x10,
    [SDL_SCANCODE_W] = 0x11,
    [SDL_SCANCODE_E] = 0x12,
    [SDL_SCANCODE_R] = 0x13,
    [SDL_SCANCODE_T] = 0x14,
    [SDL_SCANCODE_Y] = 0x15,
    [SDL_SCANCODE_U] = 0x16,
    [SDL_SCANCODE_I] = 0x17,
    [SDL_SCANCODE_O] = 0x18,
    [SDL_SCANCODE_P] = 0x19,
    [SDL_SCANCODE_LEFTBRACKET] = 0x1a,
    [SDL_SCANCODE_RIGHTBRACKET] = 0x1b,
    [SDL_SCANCODE_RETURN] = 0x1c,
    [SDL_SCANCODE_LCTRL] = 0x1d,
    [SDL_SCANCODE_A] = 0x1e,
    [SDL_SCANCODE_S] = 0x1f,
    [SDL_SCANCODE_D] = 0x20,
    [SDL_SCANCODE_F] = 0x21,
    [SDL_SCANCODE_G] = 0x22,
    [SDL_SCANCODE_H] = 0x23,
    [SDL_SCANCODE_J] = 0x24,
    [SDL_SCANCODE_K] = 0x25,
    [SDL_SCANCODE_L] = 0x26,
    [SDL_SCANCODE_SEMICOLON] = 0x27,
    [SDL_SCANCODE_APOSTROPHE] = 0x28,
    [SDL_SCANCODE_GRAVE] = 0x29,
    [SDL_SCANCODE_LSHIFT] = 0x2a,
    [SDL_SCANCODE_BACKSLASH] = 0x2b,
    [SDL_SCANCODE_NONUSHASH] = 0x2b, /* same position on ISO keyboards */
    [SDL_SCANCODE_Z] = 0x2c,
    [SDL_SCANCODE_X] = 0x2d,
    [SDL_SCANCODE_C] = 0x2e,
    [SDL_SCANCODE_V] = 0x2f,
    [SDL_SCANCODE_B] = 0x30,
    [SDL_SCANCODE_N] = 0x31,
    [SDL_SCANCODE_M] = 0x32,
    [SDL_SCANCODE_COMMA] = 0x33,
    [SDL_SCANCODE_PERIOD] = 0x34,
    [SDL_SCANCODE_SLASH] = 0x35,
    [SDL_SCANCODE_RSHIFT] = 0x36,
    [SDL_SCANCODE_KP_MULTIPLY] = 0x37,
    [SDL_SCANCODE_LALT] = 0x38,
    [SDL_SCANCODE_SPACE] = 0x39,
    [SDL_SCANCODE_CAPSLOCK] = 0x3a,
    [SDL_SCANCODE_F1] = 0x3b,
    [SDL_SCANCODE_F2] = 0x3c,
    [SDL_SCANCODE_F3] = 0x3d,
    [SDL_SCANCODE_F4] = 0x3e,
    [SDL_SCANCODE_F5] = 0x3f,
    [SDL_SCANCODE_F6] = 0x40,
    [SDL_SCANCODE_F7] = 0x41,
    [SDL_SCANCODE_F8] = 0x42,
    [SDL_SCANCODE_F9] = 0x43,
    [SDL_SCANCODE_F10] = 0x44,
    [SDL_SCANCODE_NUMLOCKCLEAR] = 0x45,
    [SDL_SCANCODE_SCROLLLOCK] = 0x46,
    [SDL_SCANCODE_KP_7] = 0x47,
    [SDL_SCANCODE_KP_8] = 0x48,
    [SDL_SCANCODE_KP_9] = 0x49,
    [SDL_SCANCODE_KP_MINUS] = 0x4a,
    [SDL_SCANCODE_KP_4] = 0x4b,
    [SDL_SCANCODE_KP_5] = 0x4c,
    [SDL_SCANCODE_KP_6] = 0x4d,
    [SDL_SCANCODE_KP_PLUS] = 0x4e,
    [SDL_SCANCODE_KP_1] = 0x4f,
    [SDL_SCANCODE_KP_2] = 0x50,
    [SDL_SCANCODE_KP_3] = 0x51,
    [SDL_SCANCODE_KP_0] = 0x52,
    [SDL_SCANCODE_KP_PERIOD] = 0x53,
    [SDL_SCANCODE_NONUSBACKSLASH] = 0x56, /* the extra key left of Z on ISO keyboards */
    [SDL_SCANCODE_F11] = 0x57,
    [SDL_SCANCODE_F12] = 0x58,
    [SDL_SCANCODE_KP_EQUALS] = 0x59,
    [SDL_SCANCODE_F13] = 0x64,
    [SDL_SCANCODE_F14] = 0x65,
    [SDL_SCANCODE_F15] = 0x66,
    [SDL_SCANCODE_F16] = 0x67,
    [SDL_SCANCODE_F17] = 0x68,
    [SDL_SCANCODE_F18] = 0x69,
    [SDL_SCANCODE_F19] = 0x6a,
    [SDL_SCANCODE_F20] = 0x6b,
    [SDL_SCANCODE_F21] = 0x6c,
    [SDL_SCANCODE_F22] = 0x6d,
    [SDL_SCANCODE_F23] = 0x6e,
    [SDL_SCANCODE_INTERNATIONAL2] = 0x70, /* Katakana/Hiragana */
    [SDL_SCANCODE_INTERNATIONAL1] = 0x73, /* Ro */
    [SDL_SCANCODE_F24] = 0x76,
    [SDL_SCANCODE_INTERNATIONAL4] = 0x79, /* Henkan */
    [SDL_SCANCODE_INTERNATIONAL5] = 0x7b, /* Muhenkan */
    [SDL_SCANCODE_INTERNATIONAL3] = 0x7d, /* Yen */
    [SDL_SCANCODE_KP_COMMA] = 0x7e,
    /* 0xE0-prefixed keys */
    [SDL_SCANCODE_AUDIOPREV] = 0x90,
    [SDL_SCANCODE_AUDIONEXT] = 0x99,
    [SDL_SCANCODE_KP_ENTER] = 0x9c,
    [SDL_SCANCODE_RCTRL] = 0x9d,
    [SDL_SCANCODE_MUTE] = 0xa0,
    [SDL_SCANCODE_AUDIOPLAY] = 0xa2,
    [SDL_SCANCODE_AUDIOSTOP] = 0xa4,
    [SDL_SCANCODE_VOLUMEDOWN] = 0xae,
    [SDL_SCANCODE_VOLUMEUP] = 0xb0,
    [SDL_SCANCODE_KP_DIVIDE] = 0xb5,
    [SDL_SCANCODE_PRINTSCREEN] = 0xb7,
    [SDL_SCANCODE_RALT] = 0xb8,
    [SDL_SCANCODE_PAUSE] = 0xc6, /* QEMU's code for Pause (E1 1D 45 on real hardware) */
    [SDL_SCANCODE_HOME] = 0xc7,
    [SDL_SCANCODE_UP] = 0xc8,
    [SDL_SCANCODE_PAGEUP] = 0xc9,
    [SDL_SCANCODE_LEFT] = 0xcb,
    [SDL_SCANCODE_RIGHT] = 0xcd,
    [SDL_SCANCODE_END] = 0xcf,
    [SDL_SCANCODE_DOWN] = 0xd0,
    [SDL_SCANCODE_PAGEDOWN] = 0xd1,
    [SDL_SCANCODE_INSERT] = 0xd2,
    [SDL_SCANCODE_DELETE] = 0xd3,
    [SDL_SCANCODE_LGUI] = 0xdb,
    [SDL_SCANCODE_RGUI] = 0xdc,
    [SDL_SCANCODE_APPLICATION] = 0xdd,
    [SDL_SCANCODE_POWER] = 0xde,
    [SDL_SCANCODE_SLEEP] = 0xdf,
};

uint32_t keymap_xt_from_scancode(SDL_Scancode scancode)
{
    if ((unsigned)scancode >= ARRAY_SIZE(xt_codes))
        return 0;
    return xt_codes[scancode];
}

uint32_t keymap_utf8_next(const char **s)
{
    if (!**s)
        return 0;
    size_t n; /* a sequence cut by the NUL ends at the NUL: no continuation byte */
    uint32_t cp = cut_text_utf8_decode((const uint8_t *)*s, strnlen(*s, 4), &n);
    *s += n;
    return cp;
}
