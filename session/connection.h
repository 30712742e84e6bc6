#pragma once
/*
 * The broker's registry of client connections: one record per vdi-session process (one
 * per client connection), with the state of that connection in the broker <-> session
 * control protocol (common/proto.h). A connection belongs to at most one desktop session
 * (session.h) once its desktop is ready.
 *
 * States, in the only order a connection may move through them:
 *
 *   WAIT_AUTH      process started, no message yet; the only message it may send is
 *                  one AUTH_REQUEST
 *   CHECKING       AUTH_REQUEST received: throttling, then PAM, off the event loop
 *   AUTHENTICATED  PAM said yes, the desktop is being provisioned
 *   WAIT_REATTACH  a vdi-session of a previous broker run connected to the re-attach
 *                  socket; the only message it may send is one REATTACH
 *   DESKTOP_READY  the VM display fd was handed over (or the connection re-attached)
 *   CLOSING        the broker gave up on it (failed login, protocol violation, error,
 *                  shutdown); terminal, waiting for the process to exit
 *
 * WAIT_AUTH and CHECKING count as unauthenticated (MaxStartups). The registry owns each
 * record's control fd (and pidfd). Runs inside vdi-broker, on its event loop thread only
 * (not thread-safe); worker jobs refer to connections by id, never by pointer.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONNECTION_MAX_ADDRESS 64 /* numeric IPv4/IPv6 text, NUL included */
#define CONNECTION_MAX_USER 32    /* username_is_valid() cap */
#define CONNECTION_MAX_NAME 64    /* pool and desktop names */

enum connection_state {
    CONNECTION_WAIT_AUTH,
    CONNECTION_CHECKING,
    CONNECTION_AUTHENTICATED,
    CONNECTION_WAIT_REATTACH,
    CONNECTION_DESKTOP_READY,
    CONNECTION_CLOSING,
};

enum connection_role {
    CONNECTION_USER,   /* the user's own connection to their desktop */
    CONNECTION_SHADOW, /* an admin watching someone's session, view-only */
};

struct connection {
    uint64_t id;    /* unique across broker runs (continues after the store's highest) */
    pid_t pid;      /* vdi-session process; 0 once reaped */
    int pidfd;      /* re-attached processes are not our children: signalled through
                       this; -1 for our own */
    int control_fd; /* broker's end of the control socket, or -1 */
    char address[CONNECTION_MAX_ADDRESS];  /* client address, numeric */
    char user[CONNECTION_MAX_USER + 1];    /* set from CHECKING on; "" before */
    char pool[CONNECTION_MAX_NAME + 1];    /* asked for with "user@pool"; "" = any */
    char desktop[CONNECTION_MAX_NAME + 1]; /* from DESKTOP_READY on: the desktop in use */
    enum connection_state state;
    enum connection_role role;
    uint64_t shadow_target; /* SHADOW: the session id asked for ("admin@#42") */
    uint64_t session_id;    /* the desktop session, from DESKTOP_READY on; 0 before */
    uint64_t created_ms;    /* monotonic (now_ms) */
    int64_t started;        /* unix seconds */
    uint64_t deadline_ms;   /* monotonic; the broker acts when it passes; 0 = none */
    /* From ACTIVITY reports (the session process's own totals). */
    uint64_t last_input_ms; /* monotonic: now - idle_ms at the last report; created_ms
                               before any */
    uint64_t bytes_to_client, bytes_from_client;
};

const char *connection_state_to_string(enum connection_state state);
/* True for WAIT_AUTH and CHECKING. */
bool connection_state_is_unauthenticated(enum connection_state state);
/* Moves c to `to` if the table above allows it (any state may go to CLOSING, CLOSING
 * goes nowhere; WAIT_REATTACH goes to DESKTOP_READY only). Returns 0 or -EPERM. */
int connection_set_state(struct connection *c, enum connection_state to);
/* Sets c->user from a name the caller validated. Returns 0 or -E2BIG. */
int connection_set_user(struct connection *c, const char *user);
/* Closes the control fd (idempotent). */
void connection_close_control(struct connection *c);
/* SIGKILL to the process: through the pidfd when it is not our child. */
void connection_kill(struct connection *c);

struct connection_registry;

int connection_registry_new(struct connection_registry **ret);
/* Ids continue from first_id (> 0): the broker starts after the highest id it ever
 * recorded, so ids stay unique across restarts (the store keys connections by id). */
void connection_registry_set_next_id(struct connection_registry *r, uint64_t first_id);
/* A fresh id from the same counter (desktop sessions take theirs from it too). */
uint64_t connection_registry_next_id(struct connection_registry *r);
/* Frees every record and closes their fds; does not signal processes. NULL ok. */
void connection_registry_free(struct connection_registry *r);
static inline void connection_registry_freep(struct connection_registry **r)
{
    connection_registry_free(*r);
}

/* Adds a record in WAIT_AUTH (pidfd -1: our child), or in WAIT_REATTACH when pidfd >= 0.
 * Takes ownership of control_fd and pidfd on success only. Returns 0, -EINVAL (bad
 * pid/fd, address too long), -ENOMEM. */
int connection_registry_add(struct connection_registry *r, pid_t pid, int pidfd, int control_fd,
                            const char *address, uint64_t created_ms, struct connection **ret);
/* A re-attached connection takes back the id it had. -EEXIST when another record has it. */
int connection_registry_rekey(struct connection_registry *r, struct connection *c, uint64_t id);
/* Removes and frees c (closing its fds). Pointers to c become invalid. */
void connection_registry_remove(struct connection_registry *r, struct connection *c);

struct connection *connection_registry_find(const struct connection_registry *r, uint64_t id);
struct connection *connection_registry_find_pid(const struct connection_registry *r, pid_t pid);

/* Iteration in insertion order: for (i = n; i-- > 0;) lets the loop remove the current
 * record; connection_registry_at() returns NULL past the end. */
size_t connection_registry_size(const struct connection_registry *r);
struct connection *connection_registry_at(const struct connection_registry *r, size_t i);
/* Records in WAIT_AUTH or CHECKING, in total and from one address. */
size_t connection_registry_count_unauthenticated(const struct connection_registry *r,
                                                 const char *address, size_t *ret_from_address);
