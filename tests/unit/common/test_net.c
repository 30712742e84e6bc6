/* Unit tests for the TCP connect with a deadline (common/net.c), on loopback. */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "net.h"
#include "util.h"

/* A listening socket on 127.0.0.1 with a kernel-chosen port. */
static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void test_connect(void **state)
{
    (void)state;
    int port, gai = -1;
    int l = listen_loopback(&port);
    int fd = net_connect("127.0.0.1", port, now_ms() + 5000, &gai);
    assert_true(fd >= 0);
    assert_int_equal(gai, 0);
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    assert_true(fl & O_NONBLOCK);
    assert_true(fdfl & FD_CLOEXEC);
    int nodelay = 0;
    socklen_t len = sizeof(nodelay);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
    assert_true(nodelay);

    int peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(peer >= 0);
    assert_int_equal(fd_write_full(fd, "ping", 4, now_ms() + 5000), 0);
    char buf[4];
    assert_int_equal(fd_read_full(peer, buf, 4, now_ms() + 5000), 0);
    assert_memory_equal(buf, "ping", 4);
    close(peer);
    close(fd);
    close(l);
}

static void test_refused(void **state)
{
    (void)state;
    int port, gai = -1;
    int l = listen_loopback(&port);
    close(l); /* the port is now closed */
    assert_int_equal(net_connect("127.0.0.1", port, now_ms() + 5000, &gai), -ECONNREFUSED);
    assert_int_equal(gai, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
