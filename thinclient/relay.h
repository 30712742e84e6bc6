#pragma once
/*
 * The thread between libvncclient's socketpair and the TLS connection ("vdi-relay"): it
 * first runs handoff_serve() (the local RFB handshake toward libvncclient and the
 * SetEncodings rewrite), then tls_relay_run() until either side closes, an error happens
 * or relay_stop() is called. When it ends on its own it shuts its end of the socketpair
 * down, so libvncclient sees end-of-stream.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls.h"

#define RELAY_HANDOFF_TIMEOUT_MS 30000 /* local handshake, ServerInit from the server */
#define RELAY_WRITE_TIMEOUT_MS 30000   /* a peer that takes no bytes for this long is dead */

struct relay;

/* Takes ownership of t and local_fd; starts the thread. Returns 0 or -errno (then t and
 * local_fd are freed). */
int relay_start(struct tls_conn *t, int local_fd, const int32_t *encodings, size_t n_encodings,
                struct relay **ret);

/* True once the relay ended because of the server's side: it closed (cleanly or not), a
 * TLS error, a timeout, or a failed handoff. False while it runs, and also when it ended
 * because libvncclient closed its end first (the vnc thread's own failure: see
 * vnc_stop()) or relay_stop() stopped it. */
bool relay_finished(struct relay *r);

/* Stops the thread (if still running) and joins it. *handoff_error and *relay_error get
 * the results (0 when fine or not reached). NULL is fine for r.
 * *relay_error (tls_relay_run()) tells a deliberate end from a broken connection:
 *   0   the server closed the session cleanly (TLS close_notify: logoff, takeover, admin
 *       disconnect; vdi-session shows its reason first), or relay_stop() was called, or
 *       libvncclient closed its end first. Only with relay_finished() true before the
 *       stop does 0 mean "the server closed".
 *   <0  dropped: -ECONNRESET (the TCP connection ended without close_notify, or was
 *       reset: the network or the server process went away), -ETIMEDOUT (the server took
 *       no bytes for RELAY_WRITE_TIMEOUT_MS), -EPROTO (TLS error), other -errno. Worth
 *       reconnecting. */
void relay_stop(struct relay *r, int *handoff_error, int *relay_error);

/* Stops, joins, frees, closes. NULL is fine. */
void relay_free(struct relay *r);
