/* Listening socket and the fork+exec of vdi-session: fd 3 = client, fd 4 = control, the
 * exact command line, nothing else inherited. A shell script stands in for vdi-session. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker-spawn.h"
#include "listener.h"
#include "util.h"

static char script[] = "/tmp/vdi-test-session-XXXXXX";

static int setup(void **state)
{
    (void)state;
    int fd = mkstemp(script);
    /* Reports its arguments on the control socket and its open fds on the client one. */
    const char *text = "#!/bin/sh\n"
                       "printf '%s|' \"$@\" >&4\n"
                       "exec ls /proc/self/fd >&3\n";
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        return -1;
    fchmod(fd, 0755);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(script);
    return 0;
}

static void test_listener(void **state)
{
    (void)state;
    char addr[LISTENER_ADDRESS_MAX], text[80];
    uint16_t port = 0;
    struct sockaddr_in in = {.sin_family = AF_INET};
    int l, c, a;

    l = listener_open("::", 0, &port);
    assert_true(l >= 0);
    assert_true(port > 0);
    assert_int_equal(listener_accept(l, addr), -EAGAIN);

    /* IPv4 client on the dual-stack socket shows as plain IPv4 */
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    in.sin_port = htons(port);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c, (struct sockaddr *)&in, sizeof(in)), 0);
    for (int i = 0; i < 100 && (a = listener_accept(l, addr)) == -EAGAIN; i++)
        usleep(10000);
    assert_true(a >= 0);
    assert_string_equal(addr, "127.0.0.1");
    assert_true(fcntl(a, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(a, F_GETFL) & O_NONBLOCK);
    close(a);
    close(c);
    close(l);

    listener_format("::", 5900, text, sizeof(text));
    assert_string_equal(text, "[::]:5900");
    listener_format("127.0.0.1", 5900, text, sizeof(text));
    assert_string_equal(text, "127.0.0.1:5900");
    assert_int_equal(listener_open("localhost", 0, &port), -EINVAL);
}

/* Spawns the stand-in with p; its arguments, joined with '|', must be want_args. */
static void spawn_and_check(const struct spawn_params *p, const char *want_args)
{
    int client[2], control[2], status;
    char buf[1024];
    ssize_t n;
    pid_t pid;

    int sp1[2], sp2[2];
    struct timeval tv = {.tv_sec = 10};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp1), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp2), 0);
    /* Keep everything above 10 so that 3 and 4 are free to play with. */
    client[0] = fcntl(sp1[0], F_DUPFD_CLOEXEC, 10);
    client[1] = fcntl(sp1[1], F_DUPFD_CLOEXEC, 10);
    control[0] = fcntl(sp2[0], F_DUPFD_CLOEXEC, 10);
    control[1] = fcntl(sp2[1], F_DUPFD_CLOEXEC, 10);
    close(sp1[0]);
    close(sp1[1]);
    close(sp2[0]);
    close(sp2[1]);
    setsockopt(control[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(client[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    /* Worst case: the parent's client fd is 4 and its control fd is 3. */
    int saved3 = fcntl(3, F_DUPFD_CLOEXEC, 20), saved4 = fcntl(4, F_DUPFD_CLOEXEC, 20);
    assert_true(dup3(client[1], 4, O_CLOEXEC) == 4);
    assert_true(dup3(control[1], 3, O_CLOEXEC) == 3);
    /* The parent's own copies must not keep the sockets open: only the child's count. */
    close(client[1]);
    close(control[1]);
    /* and a stray fd without O_CLOEXEC must not leak either */
    int stray = open("/dev/null", O_RDONLY);
    assert_true(stray > 4);

    pid = spawn_session(p, "192.0.2.9", 4, 3);
    assert_true(pid > 0);
    close(stray);

    n = recv(control[0], buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = 0;
    assert_string_equal(buf, want_args);
    n = read(client[0], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = 0;
    /* 0-2 inherited, 3 and 4 ours, 5 is ls reading /proc/self/fd; a leak would show */
    if (!streq(buf, "0\n1\n2\n3\n4\n5\n"))
        fail_msg("child fds: %s", buf);

    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    if (saved3 >= 0) {
        dup2(saved3, 3);
        close(saved3);
    } else
        close(3);
    if (saved4 >= 0) {
        dup2(saved4, 4);
        close(saved4);
    } else
        close(4);
    close(client[0]);
    close(control[0]);
}

#define BASE_ARGS                                                                                  \
    "--client-fd|3|--control-fd|4|--client-address|192.0.2.9|"                                     \
    "--tls-cert|/st/tls/server-cert.pem|--tls-key|/st/tls/server-key.pem|--tls-priority|"          \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3|--user|nobody|--handshake-timeout-s|10|--login-timeout-s|60|"   \
    "--log-level|info|"

static void test_spawn(void **state)
{
    (void)state;
    struct spawn_params p = {
        .program = script,
        .tls_cert = "/st/tls/server-cert.pem",
        .tls_key = "/st/tls/server-key.pem",
        .tls_priority = "NORMAL:-VERS-ALL:+VERS-TLS1.3",
        .session_user = "nobody",
        .handshake_timeout_s = 10,
        .login_timeout_s = 60,
        .log_level = "info",
    };
    /* No re-attach socket: no re-attach options. */
    spawn_and_check(&p, BASE_ARGS);
    p.broker_socket = "";
    spawn_and_check(&p, BASE_ARGS);

    p.broker_socket = "vdi-broker-reattach";
    p.broker_uid = 0;
    p.reattach_timeout_s = 120;
    spawn_and_check(&p, BASE_ARGS "--broker-socket|vdi-broker-reattach|--broker-uid|0|"
                                  "--reattach-timeout-s|120|");
    p.broker_uid = 4294967294u;
    p.reattach_timeout_s = 0;
    spawn_and_check(&p, BASE_ARGS "--broker-socket|vdi-broker-reattach|--broker-uid|4294967294|"
                                  "--reattach-timeout-s|0|");
}

static void test_find_program(void **state)
{
    (void)state;
    char *s = NULL;

    assert_int_equal(spawn_find_program("/bin/true", NULL, &s), 0);
    assert_string_equal(s, "/bin/true");
    free(s);
    assert_int_equal(spawn_find_program("", "/bin/true", &s), 0);
    assert_string_equal(s, "/bin/true");
    free(s);
    assert_int_equal(spawn_find_program(NULL, "/nonexistent/vdi-session", &s), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listener),
        cmocka_unit_test(test_spawn),
        cmocka_unit_test(test_find_program),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
