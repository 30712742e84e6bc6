#pragma once
/*
 * The RFB proxy inside one vdi-session: an in-process libvncserver screen (never a
 * listener) that the authenticated client talks to, fed by a libvncclient connection to
 * the VM's display. Until a VM display is attached, the screen shows a status text
 * ("Starting your desktop...").
 *
 * proxy_new() returns client_fd, the local end of a socketpair on which the screen speaks
 * RFB 3.8 from ClientInit on: the real client has already done version, security and
 * authentication with vdi-session, so the proxy answers libvncserver's own version and
 * security-None exchange itself (DESIGN.md). The caller relays client_fd <-> TLS.
 *
 * Threads: libvncserver's per-client threads, plus one upstream thread that is the only
 * writer to the VM's connection (ENVIRONMENT.md: libvncclient writes are unlocked).
 */
#include <stdint.h>

struct proxy;

struct proxy_options {
    int width, height;     /* status screen size before a VM is attached (e.g. 1024x768) */
    const char *desktop_name; /* sent in ServerInit */
    int client_write_timeout_ms; /* a stalled client is dropped after this */
};

/* Returns 0 or -errno. *client_fd belongs to the caller. */
int proxy_new(const struct proxy_options *opts, struct proxy **ret, int *client_fd);

/* Shows text centred on the status screen (only while no VM is attached, or after it
 * went away). Thread-safe. */
int proxy_show_status(struct proxy *p, const char *text);

/* Takes ownership of vnc_fd (a connected RFB stream to QEMU, no auth), does the client
 * handshake, resizes the screen to the VM's and starts forwarding. Returns 0 or -errno
 * (-EPROTO when the VM's VNC server misbehaves). */
int proxy_attach_upstream(struct proxy *p, int vnc_fd);

/* An fd that becomes readable when the proxy ended (the client went away, or the VM's
 * display closed); proxy_end_reason() then says which, in words for the log. */
int proxy_event_fd(struct proxy *p);
const char *proxy_end_reason(struct proxy *p);

/* Stops threads, closes everything. NULL is fine. */
void proxy_free(struct proxy *p);
