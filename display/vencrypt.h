#pragma once
/*
 * The server side of the client-facing handshake, as a pure byte-driven state machine:
 * RFB 3.8 version exchange, security type list [19] (VeNCrypt) only, VeNCrypt 0.2 with
 * the one subtype X509Plain (262), then (inside TLS, which the caller runs) the Plain
 * credentials and the SecurityResult. No I/O, no allocation after vencrypt_new(): the
 * caller feeds bytes it read, sends the bytes the machine queued, and acts on events.
 *
 * Wire format (all integers big-endian; verified against QEMU ui/vnc-auth-vencrypt.c,
 * TigerVNC SSecurityVeNCrypt/CSecurityVeNCrypt/CSecurityPlain and libvncclient):
 *
 *   S: "RFB 003.008\n"                 C: "RFB 003.008\n" (nothing else accepted)
 *   S: u8 1, u8 19                     C: u8 19
 *   S: u8 0, u8 2 (VeNCrypt 0.2)       C: u8 0, u8 2
 *   S: u8 0 (version ok), u8 1, u32 262
 *                                      C: u32 262
 *   S: u8 1 (subtype accepted)         -> VENCRYPT_EVENT_START_TLS, TLS handshake
 *   (inside TLS)                       C: u32 ulen, u32 plen, ulen bytes, plen bytes
 *                                      -> VENCRYPT_EVENT_CREDENTIALS
 *   S: SecurityResult u32 0            -> VENCRYPT_EVENT_DONE (ClientInit follows)
 *   or u32 1, u32 len, reason          -> VENCRYPT_EVENT_FAILED
 *
 * Refusals, each followed by close (VENCRYPT_EVENT_FAILED):
 *   client version 3.3 (or 3.4-3.6, 0.x-2.x): u32 0 (invalid), u32 len, reason
 *   client version 3.7 or above 3.8:           u8 0 (no types), u32 len, reason
 *   not an RFB version string:                 nothing
 *   security type other than 19:               SecurityResult u32 1, u32 len, reason
 *   VeNCrypt version other than 0.2:           u8 0xFF
 *   subtype other than 262:                    u8 0
 *   username/password over the caps, or a NUL inside: SecurityResult failed with reason
 *
 * Usage (the caller owns the transport and the deadlines):
 *
 *     for (;;) {
 *         flush vencrypt_output() to the current transport (clear or TLS), then
 *         vencrypt_output_consumed();
 *         act on the last event (START_TLS: handshake; CREDENTIALS: ask, then
 *         vencrypt_verdict(); DONE / FAILED: stop after the flush);
 *         read exactly vencrypt_bytes_wanted() bytes (never more: after START_TLS the
 *         next bytes are TLS records) and vencrypt_feed() them.
 *     }
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VENCRYPT_SECURITY_TYPE 19
#define VENCRYPT_SUBTYPE_X509PLAIN 262
#define VENCRYPT_MAX_REASON 255 /* longer reasons are cut at a UTF-8 character boundary */

struct vencrypt;

enum vencrypt_event {
    VENCRYPT_EVENT_NONE,        /* needs more input (vencrypt_bytes_wanted() > 0) */
    VENCRYPT_EVENT_START_TLS,   /* flush the accept byte in clear, then run the TLS server
                                   handshake; feed the decrypted bytes from then on */
    VENCRYPT_EVENT_CREDENTIALS, /* vencrypt_credentials() is valid; call vencrypt_verdict() */
    VENCRYPT_EVENT_DONE,        /* SecurityResult ok queued: flush, then RFB ClientInit */
    VENCRYPT_EVENT_FAILED,      /* a refusal may be queued: flush it (best effort), close */
};

/* Allocates the machine and queues the server's "RFB 003.008\n". Returns 0 or -ENOMEM. */
int vencrypt_new(struct vencrypt **ret);
/* Wipes the credentials and frees. NULL is fine. */
void vencrypt_free(struct vencrypt *v);
static inline void vencrypt_freep(struct vencrypt **v)
{
    vencrypt_free(*v);
}

/* Bytes the current step still needs (0 while waiting for the caller or when finished).
 * Reading exactly this many is always safe. */
size_t vencrypt_bytes_wanted(const struct vencrypt *v);

/* Consumes input until an event happens or the input runs out; *consumed tells how much
 * was taken (bytes after an event are left for the caller). Returns the event (>= 0), or
 * -EINVAL when called while the machine waits for the caller or has finished. */
int vencrypt_feed(struct vencrypt *v, const void *buf, size_t len, size_t *consumed);

/* Bytes queued for the client; valid until the next call on v. */
size_t vencrypt_output(const struct vencrypt *v, const uint8_t **data);
void vencrypt_output_consumed(struct vencrypt *v, size_t n);

/* After VENCRYPT_EVENT_CREDENTIALS: NUL-terminated strings without NULs inside, at most
 * PROTO_MAX_USERNAME / PROTO_MAX_PASSWORD bytes. Valid until vencrypt_verdict() (which
 * wipes them) or vencrypt_free(). Returns 0 or -EINVAL in any other state. */
int vencrypt_credentials(const struct vencrypt *v, const char **username, const char **password);

/* The authentication verdict: queues SecurityResult ok, or failed with reason (NULL:
 * "Authentication failed"). Wipes the credentials. Returns VENCRYPT_EVENT_DONE or
 * VENCRYPT_EVENT_FAILED, or -EINVAL when no credentials are pending. */
int vencrypt_verdict(struct vencrypt *v, bool ok, const char *reason);

/* Why the handshake failed (for the log; never contains credentials), or NULL. */
const char *vencrypt_failure(const struct vencrypt *v);
/* The current step, for logs: "version", "security-type", "vencrypt-version", "subtype",
 * "credentials", "verdict", "done", "failed". */
const char *vencrypt_state_name(const struct vencrypt *v);
/* True from START_TLS on: the caller's transport must be the TLS connection. */
bool vencrypt_inside_tls(const struct vencrypt *v);
