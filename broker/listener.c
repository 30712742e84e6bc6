/* The broker's listening socket (listener.h). */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "net.h"
#include "util.h"

int listener_open(const char *address, int port, uint16_t *ret_port)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } sa = {0};
    socklen_t len;
    int one = 1, zero = 0;
    _cleanup_(closep) int fd = -1;

    if (port < 0 || port > 65535)
        return -EINVAL;
    if (inet_pton(AF_INET, address, &sa.in.sin_addr) == 1) {
        sa.in.sin_family = AF_INET;
        sa.in.sin_port = htons((uint16_t)port);
        len = sizeof(sa.in);
    } else if (inet_pton(AF_INET6, address, &sa.in6.sin6_addr) == 1) {
        sa.in6.sin6_family = AF_INET6;
        sa.in6.sin6_port = htons((uint16_t)port);
        len = sizeof(sa.in6);
    } else
        return -EINVAL;

    fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        return -errno;
    if (sa.sa.sa_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&sa.in6.sin6_addr) &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0)
        return -errno;
    if (bind(fd, &sa.sa, len) < 0)
        return -errno;
    if (listen(fd, SOMAXCONN) < 0)
        return -errno;
    len = sizeof(sa);
    if (getsockname(fd, &sa.sa, &len) < 0)
        return -errno;
    *ret_port = ntohs(sa.sa.sa_family == AF_INET ? sa.in.sin_port : sa.in6.sin6_port);
    return TAKE_FD(fd);
}

int listener_accept(int listen_fd, char address[LISTENER_ADDRESS_MAX])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd;

    fd = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;

    strcpy(address, "unknown");
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, address, LISTENER_ADDRESS_MAX);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], address, LISTENER_ADDRESS_MAX);
        else
            inet_ntop(AF_INET6, &in6->sin6_addr, address, LISTENER_ADDRESS_MAX);
    }
    return fd;
}

void listener_format(const char *address, uint16_t port, char *buf, size_t size)
{
    if (strchr(address, ':'))
        snprintf(buf, size, "[%s]:%u", address, port);
    else
        snprintf(buf, size, "%s:%u", address, port);
}

void listener_reattach_name(const char *state_dir, char name[LISTENER_REATTACH_NAME_MAX])
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a: a name, not a secret */

    for (const char *p = state_dir; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    snprintf(name, LISTENER_REATTACH_NAME_MAX, "vdi-broker-%016llx", (unsigned long long)h);
}

int listener_open_abstract(const char *name)
{
    struct sockaddr_un sa;
    socklen_t len;
    int fd, r = net_abstract_address(name, &sa, &len);

    if (r < 0)
        return r;
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 64) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}
