#pragma once
/*
 * The client side of vdi's RFB security handshake, done by hand so that vdi-client decides
 * whom to trust and can say exactly what went wrong (DESIGN.md, "Protocols"):
 *
 *   S: "RFB 003.008\n"                       C: "RFB 003.008\n"
 *   S: u8 n, n x u8 types (must contain 19)  C: u8 19              (VeNCrypt)
 *   S: u8 0, u8 2 (VeNCrypt 0.2 or later)    C: u8 0, u8 2
 *   S: u8 0 (ok), u8 n, n x u32 subtypes     C: u32 262            (X509Plain)
 *   S: u8 1 (accepted)
 *   --- TLS handshake (display/tls.h, the caller runs it) ---
 *                                            C: u32 ulen, u32 plen, user, password
 *   S: SecurityResult u32 0 (ok) | u32 1, u32 len, reason
 *
 * Nothing but VeNCrypt/X509Plain is ever chosen: a server that offers only None, VncAuth
 * or a TLS-less Plain subtype gets no reply and no credentials (-EPROTO). Every length read
 * from the server is capped before use, every phase runs against the caller's deadline.
 *
 * The functions are pure protocol over file descriptors and rfb_stream (no TLS, no
 * libvncclient), so the unit tests drive them against scripted fake servers.
 */
#include <stdbool.h>
#include <stdint.h>

#include "stream.h"

#define HANDSHAKE_SECURITY_VENCRYPT 19
#define HANDSHAKE_VENCRYPT_X509PLAIN 262
/* Reasons longer than this are cut; the rest is never read (the connection closes). */
#define HANDSHAKE_MAX_REASON 1024
/* A failed SecurityResult's reason gets at most this long after the deadline would allow,
 * so that a server that announces a long reason and stalls cannot hold the client. */
#define HANDSHAKE_REASON_TIMEOUT_MS 5000

enum handshake_phase {
    HANDSHAKE_PHASE_CONNECT,  /* TCP connect (set by the caller) */
    HANDSHAKE_PHASE_VERSION,  /* waiting for the server's ProtocolVersion */
    HANDSHAKE_PHASE_SECURITY, /* security type list */
    HANDSHAKE_PHASE_VENCRYPT, /* VeNCrypt version and subtype negotiation */
    HANDSHAKE_PHASE_TLS,      /* TLS handshake and certificate check (caller) */
    HANDSHAKE_PHASE_AUTH,     /* credentials sent, waiting for SecurityResult */
    HANDSHAKE_PHASE_INIT,     /* ClientInit / ServerInit (handoff.h) */
    HANDSHAKE_PHASE_DONE,
};

/* What the handshake learnt, for the messages the user sees. All strings are safe to print:
 * control characters and invalid UTF-8 from the server are replaced by '?'. */
struct handshake_status {
    enum handshake_phase phase;
    char detail[256];                      /* our description of what failed */
    char reason[HANDSHAKE_MAX_REASON + 1]; /* the server's own reason, or "" */
};

/* Does everything before TLS on a connected socket: version, security type, VeNCrypt
 * version and subtype. Returns 0 when the server accepted X509Plain (start TLS now), or
 * -EPROTO (the server does not speak what we require; st->detail says what), -ECONNREFUSED
 * (the server sent an empty security type list: st->reason says why), -ETIMEDOUT, -EPIPE,
 * -ECONNRESET or another -errno from the socket. */
int handshake_pre_tls(int fd, uint64_t deadline_ms, struct handshake_status *st);

/* Sends the Plain credentials over s (the TLS connection) and reads the SecurityResult.
 * Returns 0 (authenticated), -EACCES (refused: st->reason holds the server's reason),
 * -EINVAL (user or password longer than PROTO_MAX_USERNAME / PROTO_MAX_PASSWORD, nothing
 * sent), -EPROTO, or an I/O error. The copy of the password on the stack is wiped. */
int handshake_plain_auth(const struct rfb_stream *s, const char *user, const char *password,
                         uint64_t deadline_ms, struct handshake_status *st);

/* Copies at most dst_size - 1 bytes of untrusted text into dst, NUL-terminated, replacing
 * control characters (C0, DEL, C1), NULs and invalid UTF-8 by '?'. Never cuts a UTF-8
 * sequence in half. */
void handshake_sanitize(char *dst, size_t dst_size, const uint8_t *src, size_t len);

/* vdi-client's exit codes (--help and README.md list them). */
enum client_exit {
    CLIENT_EXIT_OK = 0,          /* normal disconnect by the user (or screenshot taken) */
    CLIENT_EXIT_INTERNAL = 1,    /* out of memory, no display, ... */
    CLIENT_EXIT_USAGE = 2,       /* bad command line */
    CLIENT_EXIT_UNREACHABLE = 3, /* cannot connect: no route, refused, no RFB server */
    CLIENT_EXIT_UNTRUSTED = 4,   /* server certificate not trusted */
    CLIENT_EXIT_AUTH = 5,        /* authentication failed */
    CLIENT_EXIT_LOST = 6,        /* connection lost */
    CLIENT_EXIT_PROTOCOL = 7,    /* protocol error */
};

/* Maps a handshake error (negative errno) and the phase it happened in to an exit code. */
int handshake_exit_code(int error, enum handshake_phase phase);

const char *handshake_phase_to_string(enum handshake_phase phase);
