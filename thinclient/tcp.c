#include "tcp.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
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

static void socket_tune(int fd)
{
    int one = 1, idle = 30, intvl = 10, cnt = 3;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static int connect_one(const struct addrinfo *ai, uint64_t deadline_ms)
{
    _cleanup_(closep) int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS)
            return -errno;
        int r = fd_wait(fd, POLLOUT, deadline_ms);
        if (r < 0)
            return r;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            return -errno;
        if (err != 0)
            return -err;
    }
    int r = fd_set_nonblock(fd, false);
    if (r < 0)
        return r;
    socket_tune(fd);
    return TAKE_FD(fd);
}

int tcp_connect(const char *host, int port, uint64_t deadline_ms, int *gai_error)
{
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL;
    *gai_error = 0;
    int g = getaddrinfo(host, service, &hints, &res);
    if (g != 0) {
        *gai_error = g;
        return g == EAI_SYSTEM ? -errno : -ENXIO;
    }
    int r = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        r = connect_one(ai, deadline_ms);
        if (r >= 0)
            break;
        log_debug("connect to %s port %d (family %d) failed: %s", host, port, ai->ai_family,
                  strerror(-r));
        if (r == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return r;
}
