#pragma once
/*
 * The broker's registry of client sessions: one record per vdi-session process (one per
 * client connection), with the state of that connection in the broker <-> session
 * control protocol (common/proto.h).
 *
 * States, in the only order a session may move through them:
 *
 *   WAIT_AUTH      process started, no message yet; the only message it may send is
 *                  one AUTH_REQUEST
 *   CHECKING       AUTH_REQUEST received, PAM running off the event loop
 *   AUTHENTICATED  PAM said yes, the desktop is being provisioned
 *   DESKTOP_READY  the VM display fd was handed over
 *   CLOSING        the broker gave up on it (failed login, protocol violation, error,
 *                  shutdown); terminal, waiting for the process to exit
 *
 * WAIT_AUTH and CHECKING count as unauthenticated (max_unauthenticated). The registry
 * owns each record's control fd. Runs inside vdi-broker, on its event loop thread only
 * (not thread-safe); worker jobs refer to sessions by id, never by pointer.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SESSION_MAX_ADDRESS 64 /* numeric IPv4/IPv6 text, NUL included */
#define SESSION_MAX_USER 32    /* username_is_valid() cap */
#define SESSION_MAX_NAME 64    /* pool and desktop names */

enum session_state {
    SESSION_WAIT_AUTH,
    SESSION_CHECKING,
    SESSION_AUTHENTICATED,
    SESSION_DESKTOP_READY,
    SESSION_CLOSING,
};

struct session {
    uint64_t id;                       /* unique for the broker's lifetime, from 1 */
    pid_t pid;                         /* vdi-session process; 0 once reaped */
    int control_fd;                    /* broker's end of the control socket, or -1 */
    char address[SESSION_MAX_ADDRESS]; /* client address, numeric */
    char user[SESSION_MAX_USER + 1];   /* set from CHECKING on; "" before */
    char pool[SESSION_MAX_NAME + 1];   /* asked for with "user@pool"; "" = any */
    char desktop[SESSION_MAX_NAME + 1]; /* from DESKTOP_READY on: the desktop in use */
    enum session_state state;
    uint64_t created_ms;  /* monotonic (now_ms) */
    uint64_t deadline_ms; /* monotonic; the broker ends the session when it
                             passes; 0 = none */
};

const char *session_state_to_string(enum session_state state);
/* True for WAIT_AUTH and CHECKING. */
bool session_state_is_unauthenticated(enum session_state state);
/* Moves s to `to` if the table above allows it (any state may go to CLOSING, CLOSING
 * goes nowhere). Returns 0 or -EPERM. */
int session_set_state(struct session *s, enum session_state to);
/* Sets s->user from a name the caller validated. Returns 0 or -E2BIG. */
int session_set_user(struct session *s, const char *user);
/* Closes the control fd (idempotent). */
void session_close_control(struct session *s);

struct session_registry;

int session_registry_new(struct session_registry **ret);
/* Ids continue from first_id (> 0): the broker starts after the highest id it ever
 * recorded, so ids stay unique across restarts (the store keys sessions by id). */
void session_registry_set_next_id(struct session_registry *r, uint64_t first_id);
/* Frees every record and closes their control fds; does not signal processes. NULL ok. */
void session_registry_free(struct session_registry *r);
static inline void session_registry_freep(struct session_registry **r)
{
    session_registry_free(*r);
}

/* Adds a record in WAIT_AUTH. Takes ownership of control_fd on success only.
 * Returns 0, -EINVAL (bad pid/fd, address too long), -ENOMEM. */
int session_registry_add(struct session_registry *r, pid_t pid, int control_fd, const char *address,
                         uint64_t created_ms, struct session **ret);
/* Removes and frees s (closing its control fd). Pointers to s become invalid. */
void session_registry_remove(struct session_registry *r, struct session *s);

struct session *session_registry_find(const struct session_registry *r, uint64_t id);
struct session *session_registry_find_pid(const struct session_registry *r, pid_t pid);

/* Iteration in insertion order: for (i = n; i-- > 0;) lets the loop remove the current
 * record; session_registry_at() returns NULL past the end. */
size_t session_registry_size(const struct session_registry *r);
struct session *session_registry_at(const struct session_registry *r, size_t i);
/* Records in WAIT_AUTH or CHECKING. */
size_t session_registry_count_unauthenticated(const struct session_registry *r);
