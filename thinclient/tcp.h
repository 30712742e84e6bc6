#pragma once
/* Where to connect: "HOST[:PORT]" parsing and a TCP connect with a deadline. */
#include <stdint.h>

#define TCP_DEFAULT_PORT 5900

/* Parses "host", "host:port", "[v6addr]", "[v6addr]:port" and a bare IPv6 address
 * ("::1", taken whole). *port is left alone when the text has none. Returns 0, or -EINVAL
 * for an empty host, a bad port (not 1..65535) or unbalanced brackets. */
int tcp_parse_target(const char *text, char **ret_host, int *port);

/* Resolves host and connects to each address in turn until one answers, all before the
 * deadline. The socket is blocking, close-on-exec, TCP_NODELAY, with keepalive probes
 * that notice a dead peer in about a minute. Returns the fd, or -ENXIO (name does not
 * resolve; *gai_error says why), -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, ... */
int tcp_connect(const char *host, int port, uint64_t deadline_ms, int *gai_error);
