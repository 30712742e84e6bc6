#include "tcp.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "net.h"
#include "util.h"

static int parse_port(const char *s, int *port)
{
    if (!*s || strlen(s) > 5)
        return -EINVAL;
    int v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return -EINVAL;
    *port = v;
    return 0;
}

int tcp_parse_target(const char *text, char **ret_host, int *port)
{
    const char *host = text, *port_text = NULL;
    size_t host_len;

    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end)
            return -EINVAL;
        host = text + 1;
        host_len = (size_t)(end - host);
        if (end[1] == ':')
            port_text = end + 2;
        else if (end[1] != '\0')
            return -EINVAL;
    } else {
        const char *colon = strchr(text, ':');
        if (colon && strchr(colon + 1, ':')) {
            host_len = strlen(text); /* bare IPv6 address */
        } else if (colon) {
            host_len = (size_t)(colon - text);
            port_text = colon + 1;
        } else {
            host_len = strlen(text);
        }
    }
    if (host_len == 0 || host_len > 253)
        return -EINVAL;
    int p = *port;
    if (port_text && parse_port(port_text, &p) < 0)
        return -EINVAL;
    char *h = strndup(host, host_len);
    if (!h)
        return -ENOMEM;
    *ret_host = h;
    *port = p;
    return 0;
}

/* Keepalive probes that notice a dead peer in about a minute. */
static void socket_keepalive(int fd)
{
    int one = 1, idle = 30, intvl = 10, cnt = 3;
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

int tcp_connect(const char *host, int port, uint64_t deadline_ms, int *gai_error)
{
    _cleanup_(closep) int fd = net_connect(host, port, deadline_ms, gai_error);
    if (fd < 0)
        return fd;
    int r = fd_set_nonblock(fd, false);
    if (r < 0)
        return r;
    socket_keepalive(fd);
    return TAKE_FD(fd);
}
