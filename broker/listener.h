#pragma once
/* The broker's listening sockets: TCP for clients and the admin API, and the abstract
 * unix socket vdi-session processes re-attach through. */
#include <stddef.h>
#include <stdint.h>

#define LISTENER_ADDRESS_MAX 64

/* Binds and listens on a numeric address ("::" also takes IPv4) and port (0 = any).
 * *ret_port receives the bound port. SO_REUSEADDR but never SO_REUSEPORT: a second broker
 * on the same port gets -EADDRINUSE. Returns fd (O_CLOEXEC|O_NONBLOCK) or -errno. */
int listener_open(const char *address, int port, uint16_t *ret_port);
/* Accepts one connection: fd (O_CLOEXEC|O_NONBLOCK) and the peer's numeric address
 * (IPv4-mapped IPv6 shown as IPv4). Returns fd, -EAGAIN when none is waiting, -errno. */
int listener_accept(int listen_fd, char address[LISTENER_ADDRESS_MAX]);
/* "1.2.3.4:5900" or "[::]:5900". */
void listener_format(const char *address, uint16_t port, char *buf, size_t size);

/* The re-attach socket's abstract name for a state directory: "vdi-broker-" + 16 hex
 * digits of a hash of the path (one broker per state directory). */
#define LISTENER_REATTACH_NAME_MAX 32
void listener_reattach_name(const char *state_dir, char name[LISTENER_REATTACH_NAME_MAX]);
/* Listens (SOCK_SEQPACKET, non-blocking, close-on-exec) on the abstract unix name (given
 * without the leading NUL). Returns fd, -EADDRINUSE when another broker holds it, -errno. */
int listener_open_abstract(const char *name);
