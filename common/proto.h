#pragma once
/*
 * Broker <-> vdi-session control protocol.
 *
 * Transport: one AF_UNIX SOCK_SEQPACKET socketpair per client connection, made by the
 * broker before it fork+execs vdi-session. One message is one packet of at most
 * PROTO_MAX_PACKET bytes:
 *
 *     u8 version (PROTO_VERSION) | u8 type | u16 length of body (LE) | body
 *
 * Bodies are sequences of fields; a string is u16 length (LE) + bytes (no NUL, no NUL
 * inside), each string with its own cap below. A file descriptor travels as SCM_RIGHTS
 * ancillary data, and only with the types marked "fd" below; an fd arriving with any
 * other type is closed and the message rejected. Each side treats everything it
 * receives as hostile: proto_decode() checks version, type, direction, lengths, caps and
 * trailing bytes, and the receiver enforces the order (see the table).
 *
 * Allowed messages, in order (the openssh monitor table, for vdi):
 *
 *   type                     direction          when                      body
 *   PROTO_AUTH_REQUEST       session -> broker  once, first message       username, password
 *   PROTO_AUTH_RESULT        broker -> session  answer to AUTH_REQUEST    u8 ok, reason
 *   PROTO_DESKTOP_STATUS     broker -> session  after AUTH_RESULT ok      text ("Starting your
 * desktop") PROTO_DESKTOP_READY (fd) broker -> session  after AUTH_RESULT ok      desktop name; fd
 * = VM display PROTO_CLOSE              broker -> session  any time                  reason shown
 * to the user PROTO_NOTICE             broker -> session  after DESKTOP_READY       banner text
 * over the desktop
 *                                                                         ("" removes it)
 *   PROTO_ACTIVITY           session -> broker  after DESKTOP_READY,      u32 idle_ms, u64
 * bytes_to_client, every PROTO_ACTIVITY_     u64 bytes_from_client INTERVAL_MS
 *
 * DESKTOP_READY's body: desktop name, u64 connection id, u8 flags (PROTO_FLAG_VIEW_ONLY:
 * a shadowing admin; the session drops every input event of its client), reattach token
 * (PROTO_TOKEN_LEN lowercase hex characters; the broker keeps only its hash).
 *
 * Re-attaching after a broker restart (DESIGN.md's stretch goal). A session whose
 * control socket closes while its desktop is attached keeps relaying and connects to the
 * broker's reattach socket (a SOCK_SEQPACKET unix socket named on its command line); it
 * checks that the listener runs as the broker's uid (SO_PEERCRED) and sends:
 *
 *   PROTO_REATTACH           session -> broker  first message on the new  u64 connection id, token
 *                                               socket
 *   PROTO_REATTACH_RESULT    broker -> session  answer                    u8 ok, reason
 *
 * After REATTACH_RESULT ok the new socket is the control socket, in the state after
 * DESKTOP_READY (NOTICE, CLOSE; ACTIVITY). Not ok: the session ends with the reason.
 *
 * The username may carry a pool as "user@pool", or a session to watch as "admin@#42"
 * (view-only shadowing); the broker splits it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 2
#define PROTO_HEADER_SIZE 4
#define PROTO_MAX_USERNAME 255 /* bytes; also the cap the VeNCrypt Plain reader uses */
#define PROTO_MAX_PASSWORD 255
#define PROTO_MAX_TEXT 255 /* reasons, status lines, desktop names */
#define PROTO_MAX_PACKET 1024
#define PROTO_TOKEN_LEN 64 /* hex characters: 32 random bytes */
#define PROTO_ACTIVITY_INTERVAL_MS 5000
#define PROTO_FLAG_VIEW_ONLY 0x01u

enum proto_type {
    PROTO_AUTH_REQUEST = 1,
    PROTO_AUTH_RESULT = 2,
    PROTO_DESKTOP_STATUS = 3,
    PROTO_DESKTOP_READY = 4,
    PROTO_CLOSE = 5,
    PROTO_NOTICE = 6,
    PROTO_ACTIVITY = 7,
    PROTO_REATTACH = 8,
    PROTO_REATTACH_RESULT = 9,
};

enum proto_sender { PROTO_FROM_SESSION, PROTO_FROM_BROKER };

struct proto_message {
    enum proto_type type;
    bool ok;                                 /* AUTH_RESULT, REATTACH_RESULT */
    char username[PROTO_MAX_USERNAME + 1];   /* AUTH_REQUEST */
    char password[PROTO_MAX_PASSWORD + 1];   /* AUTH_REQUEST; wipe with proto_message_wipe */
    char text[PROTO_MAX_TEXT + 1];           /* AUTH_RESULT and REATTACH_RESULT reason,
                                                STATUS, READY name, CLOSE, NOTICE */
    uint64_t id;                             /* READY, REATTACH: connection id */
    uint8_t flags;                           /* READY: PROTO_FLAG_* */
    char token[PROTO_TOKEN_LEN + 1];         /* READY, REATTACH: exactly PROTO_TOKEN_LEN hex */
    uint32_t idle_ms;                        /* ACTIVITY: since the client's last input */
    uint64_t bytes_to_client, bytes_from_client; /* ACTIVITY: totals on the client socket */
    int fd;                                  /* DESKTOP_READY: owned by the message; else -1 */
};

/* Initialises m for type: zeroed strings, fd = -1. */
void proto_message_init(struct proto_message *m, enum proto_type type);
/* Wipes secrets (password, token) and closes an fd the message still owns. */
void proto_message_done(struct proto_message *m);

/* Copies a string into a fixed field; -E2BIG when it does not fit (never truncates). */
int proto_set_string(char *field, size_t field_size, const char *value);

/* Encodes m into buf (at least PROTO_MAX_PACKET bytes). Returns the length or -EINVAL. */
int proto_encode(const struct proto_message *m, uint8_t *buf, size_t size);
/* Decodes one packet that `sender` sent; `fd` is the descriptor that came with it or -1
 * (on success m owns it; on failure the caller still does). Returns 0, -EBADMSG for any
 * malformed, oversize, truncated or misdirected packet, -EPROTONOSUPPORT for another version. */
int proto_decode(const uint8_t *buf, size_t len, int fd, enum proto_sender sender,
                 struct proto_message *m);

/* Sends one message (with m->fd when the type carries one). Returns 0 or -errno. */
int proto_send(int sock, const struct proto_message *m);
/* Receives and decodes one message from a peer playing `sender`. Blocks unless the socket
 * is non-blocking. Returns 0, -EPIPE when the peer closed, -EBADMSG (truncated packets and
 * stray fds included; stray fds are closed), -EAGAIN, or -errno. */
int proto_recv(int sock, enum proto_sender sender, struct proto_message *m);

const char *proto_type_name(enum proto_type type);
