/* TCP connect with a deadline (net.h). */
#include "net.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "util.h"

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
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return TAKE_FD(fd);
}

int net_connect(const char *host, int port, uint64_t deadline_ms, int *ret_gai_error)
{
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL;
    *ret_gai_error = 0;
    int g = getaddrinfo(host, service, &hints, &res);
    if (g != 0) {
        *ret_gai_error = g;
        return g == EAI_SYSTEM && errno > 0 ? -errno : -ENXIO;
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

int net_abstract_address(const char *name, struct sockaddr_un *ret, socklen_t *ret_len)
{
    size_t n = strlen(name);

    if (n == 0)
        return -EINVAL;
    if (n + 1 > sizeof(ret->sun_path))
        return -ENAMETOOLONG;
    memset(ret, 0, sizeof(*ret));
    ret->sun_family = AF_UNIX;
    memcpy(ret->sun_path + 1, name, n);
    *ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    return 0;
}
