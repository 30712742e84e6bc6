#pragma once
/*
 * A snapshot of one desktop session for the admin API (GET /api/v1/sessions): plain
 * data, copied out of the broker's event loop so that API threads never touch the
 * registry itself.
 */
#include <stdint.h>

#define SESSION_INFO_TEXT 64

struct session_info {
    uint64_t id; /* the desktop session's id */
    char user[SESSION_INFO_TEXT + 1];
    char pool[SESSION_INFO_TEXT + 1];
    char desktop[SESSION_INFO_TEXT + 1];
    char state[16];                 /* "connected", "disconnected", "ending" */
    char client[SESSION_INFO_TEXT]; /* the user's current client address; "" when
                                       disconnected */
    int64_t started;                /* unix seconds: the session's first login */
    int64_t idle_s;                 /* since the user's last keyboard/pointer input */
    int64_t disconnected_s;         /* disconnected: for how long; else 0 */
    uint64_t bytes_to_client;       /* over all of the session's connections */
    uint64_t bytes_from_client;
    unsigned shadows; /* admins watching now */
};
