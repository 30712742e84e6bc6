#pragma once
/* Outgoing TCP connections, and the address of an abstract unix socket. */
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Resolves host (a name or a numeric address) and port, and connects to each address in
 * turn until one answers, all before the monotonic deadline (now_ms(), util.h). The socket
 * is non-blocking, close-on-exec, with TCP_NODELAY. Returns the fd, or -ENXIO when the name
 * does not resolve (-errno for EAI_SYSTEM; *ret_gai_error gets the getaddrinfo() code, and
 * is 0 otherwise),
 * -ETIMEDOUT (no further address is tried), or the last address's -errno
 * (-ECONNREFUSED, -EHOSTUNREACH, ...). */
int net_connect(const char *host, int port, uint64_t deadline_ms, int *ret_gai_error);

/* The address of the abstract unix socket NAME (a NUL, then the name, no NUL after), for
 * bind() and connect(); *ret_len is the length to pass. -ENAMETOOLONG when it does not
 * fit, -EINVAL when empty. */
int net_abstract_address(const char *name, struct sockaddr_un *ret, socklen_t *ret_len);
