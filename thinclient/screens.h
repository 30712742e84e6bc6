#pragma once
/*
 * The screens vdi-client shows outside a desktop session, drawn with ui.h: the login form,
 * the desktop chooser, the trust prompt (first use) and warning (changed certificate), a
 * message screen, and the overlay drawn over a desktop ("Reconnecting..."). Each screen is
 * a struct the app fills, a draw function, and an event function that edits the struct
 * and says what the user asked for. Draw functions do not present (the caller does,
 * after any overlay). Main thread only.
 *
 * Keys: Tab / Shift+Tab / Up / Down move between fields and buttons, Enter activates
 * (in a text field: next field, on the password: Connect), Escape cancels (back / stop
 * connecting); mouse clicks focus fields and press buttons.
 */
#include <stdbool.h>
#include <stddef.h>

#include <SDL2/SDL.h>

#include "pool-list.h"
#include "ui.h"

enum screen_action {
    SCREEN_NONE,   /* nothing visible changed */
    SCREEN_REDRAW, /* draw again */
    SCREEN_SUBMIT, /* login: Connect; chooser: the selected pool; trust: Trust */
    SCREEN_CANCEL, /* login: stop connecting; chooser/trust/message: back */
    SCREEN_QUIT,   /* login: Quit button (never in kiosk mode) */
};

#define SCREEN_FIELD_MAX 255 /* bytes of UTF-8 per text field */
#define SCREEN_MESSAGE_MAX 1024

struct text_field {
    char text[SCREEN_FIELD_MAX + 1];
    size_t len;
};

enum login_field { LOGIN_BROKER, LOGIN_USER, LOGIN_PASSWORD, LOGIN_N_FIELDS };
/* login_screen.focus values after the fields. */
enum { LOGIN_FOCUS_CONNECT = LOGIN_N_FIELDS, LOGIN_FOCUS_QUIT };

struct login_screen {
    struct text_field fields[LOGIN_N_FIELDS];
    int focus;                        /* a field, or LOGIN_N_FIELDS + 0 = Connect, + 1 = Quit */
    bool broker_locked;               /* preset (kiosk): shown, not editable, skipped by Tab */
    bool kiosk;                       /* no Quit button */
    bool busy;                        /* connecting: fields read-only, Escape = SCREEN_CANCEL */
    char message[SCREEN_MESSAGE_MAX]; /* under the form; "" for none */
    bool message_is_error;
    /* Filled by login_screen_draw, for clicks. */
    SDL_Rect field_rect[LOGIN_N_FIELDS], connect_rect, quit_rect;
    /* Ctrl+V in the server or user field: copies the clipboard's text into buf (size bytes
     * incl. NUL), false when there is none. login_screen_draw sets SDL's when NULL (the
     * event logic links no SDL); tests set their own. Never used for the password. */
    bool (*read_clipboard)(char *buf, size_t size);
};

/* Empties the form; focus goes to the first empty editable field once fields are set
 * (call login_screen_focus_first_empty after filling them). */
void login_screen_init(struct login_screen *s, bool kiosk);
void login_screen_set_field(struct login_screen *s, enum login_field f, const char *text);
void login_screen_focus_first_empty(struct login_screen *s);
/* Sets the message (printf-style); error picks the colour. */
void login_screen_message(struct login_screen *s, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Wipes the password field (explicit_bzero). */
void login_screen_clear_password(struct login_screen *s);
void login_screen_draw(struct ui *u, struct login_screen *s);
/* SUBMIT only when broker and user are non-empty (else focus + message). */
enum screen_action login_screen_event(struct login_screen *s, const SDL_Event *e);

struct chooser_screen {
    char user[SCREEN_FIELD_MAX + 1];
    struct pool_choice pools[POOL_LIST_MAX];
    size_t n_pools;
    size_t selected;
    size_t first_visible;              /* scrolling */
    SDL_Rect item_rect[POOL_LIST_MAX]; /* filled by draw; w 0 when not visible */
    SDL_Rect connect_rect, back_rect;
};
void chooser_screen_draw(struct ui *u, struct chooser_screen *s);
/* Up/Down/Home/End/PageUp/PageDown select; Enter or a double click = SUBMIT; Escape or
 * Back = CANCEL. The wheel scrolls without selecting. */
enum screen_action chooser_screen_event(struct chooser_screen *s, const SDL_Event *e);

struct trust_screen {
    char broker[SCREEN_FIELD_MAX + 1];             /* "HOST:PORT" */
    char fingerprint[96];                          /* the server's, AB:CD:... */
    bool mismatch;                                 /* warning: differs from known_fingerprint */
    char known_fingerprint[96];                    /* mismatch: the accepted one */
    char known_brokers_path[SCREEN_FIELD_MAX + 1]; /* mismatch: where to remove the line */
    int focus; /* 0 = Cancel/Back (the default), 1 = Trust (first use only) */
    SDL_Rect trust_rect, cancel_rect;
};
void trust_screen_draw(struct ui *u, struct trust_screen *s);
/* First use: SUBMIT = trust it, CANCEL = do not; Tab/Up/Down switch, Left = Cancel,
 * Right = Trust. Mismatch: only CANCEL (Back). A held key (repeat) activates nothing. */
enum screen_action trust_screen_event(struct trust_screen *s, const SDL_Event *e);

struct message_screen {
    char title[256];
    char text[SCREEN_MESSAGE_MAX];
    char button[64]; /* e.g. "Log in again" */
    SDL_Rect button_rect;
};
void message_screen_draw(struct ui *u, struct message_screen *s);
/* Enter, Escape, Space or the button = SUBMIT. */
enum screen_action message_screen_event(struct message_screen *s, const SDL_Event *e);

/* Over whatever is drawn (call before ui_present): a translucent band across the bottom
 * with text in it, e.g. "Reconnecting...". */
void screen_draw_overlay(struct ui *u, const char *text);
