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
#include <stdbool.h>
#include <stdint.h>

struct proxy;

struct proxy_options {
    int width, height;     /* status screen size before a VM is attached (e.g. 1024x768) */
    const char *desktop_name; /* sent in ServerInit */
    int client_write_timeout_ms; /* a stalled client is dropped after this */
    int input_wake_ms; /* > 0: proxy_input_fd() wakes for input after this long without any */
};

/* Returns 0 or -errno. *client_fd belongs to the caller. */
int proxy_new(const struct proxy_options *opts, struct proxy **ret, int *client_fd);

/* Shows text centred on the status screen (only while no VM is attached, or after it
 * went away). Thread-safe. */
int proxy_show_status(struct proxy *p, const char *text);

/* Shows text as a banner: a full-width strip at the top of the VM's picture, in the status
 * screen's colours and font, kept on top of the VM's updates. NULL or "" removes it and
 * restores the VM's pixels underneath. Drawn only while a VM display is forwarded (kept
 * for later otherwise). Thread-safe. Returns 0 or -ENOMEM. */
int proxy_show_notice(struct proxy *p, const char *text);

/* Stops forwarding the VM's display for good (its connection is closed, input is dropped)
 * and shows text on the status screen at the current framebuffer size. Does not end the
 * proxy (the event fd stays quiet); the caller lingers and frees it. Works in any state.
 * Call from the thread that attached. Returns 0 or -ENOMEM. */
int proxy_close_desktop(struct proxy *p, const char *text);

/* View-only: every KeyEvent, PointerEvent, QEMU extended key event and ClientCutText of the
 * client is dropped (a shadowing admin watches only), and none counts as input; the VM's
 * clipboard is not sent to it either. Set it before proxy_attach_upstream(). Thread-safe. */
void proxy_set_view_only(struct proxy *p, bool view_only);

/* now_ms() (common/util.h) of the client's last key or pointer event (motion included)
 * that was not dropped as view-only; 0 before any. Thread-safe. */
uint64_t proxy_last_input_ms(struct proxy *p);

/* With options.input_wake_ms > 0: an eventfd that becomes readable when client input
 * arrives after at least input_wake_ms without any (or for the first input); the caller
 * reads it to reset it. Else -1. */
int proxy_input_fd(struct proxy *p);

/* Takes ownership of vnc_fd (a connected RFB stream to QEMU, no auth), does the client
 * handshake, resizes the screen to the VM's and starts forwarding. Returns 0 or -errno
 * (-EPROTO when the VM's VNC server misbehaves). */
int proxy_attach_upstream(struct proxy *p, int vnc_fd);

/* An fd that becomes readable when the proxy ended (the client went away, or the VM's
 * display closed); proxy_end_reason() then says which, in words for the log. */
int proxy_event_fd(struct proxy *p);
const char *proxy_end_reason(struct proxy *p);
/* After the event fd fired: true when the VM's display went away (the client is still
 * connected and sees "The connection to your desktop was lost."), false when the client
 * left. */
bool proxy_desktop_lost(struct proxy *p);

/* Stops threads, closes everything. NULL is fine. */
void proxy_free(struct proxy *p);
