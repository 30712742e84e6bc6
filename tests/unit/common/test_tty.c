/* Unit tests for reading a line from the controlling terminal (common/tty.c), on a
 * pseudo-terminal that a child process takes as its controlling terminal. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "tty.h"
#include "util.h"

struct outcome {
    int r;
    int echo_after; /* ECHO flag of the terminal after the call */
    char line[64];
    char shown[256]; /* what the terminal displayed (filled in by the parent) */
};

/* Reads from the pty master until text appears in what was read (or, with text NULL,
 * until the child closes its side). Returns what was read, NUL-terminated. */
static size_t read_master(int master, const char *text, char *buf, size_t size, size_t len)
{
    uint64_t deadline = now_ms() + 10000;
    while (len + 1 < size) {
        buf[len] = '\0';
        if (text && strstr(buf, text))
            break;
        if (fd_wait(master, POLLIN, deadline) < 0)
            break;
        ssize_t n = read(master, buf + len, size - 1 - len);
        if (n <= 0)
            break; /* EIO once the child has closed the slave */
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

/* Runs tty_read_line("Secret: ", echo, max) in a child whose controlling terminal is a new
 * pty, and types input once the prompt is shown. */
static void run(const char *input, bool echo, size_t max, struct outcome *out)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    const char *slave_name = ptsname(master);
    assert_non_null(slave_name);
    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct outcome o = {.echo_after = -1};
        close(pipefd[0]);
        if (setsid() < 0)
            _exit(2);
        int slave = open(slave_name, O_RDWR); /* becomes the controlling terminal */
        if (slave < 0)
            _exit(3);
        char *line = NULL;
        o.r = tty_read_line("Secret: ", echo, max, &line);
        if (line)
            snprintf(o.line, sizeof(o.line), "%s", line);
        secret_free(line);
        struct termios t;
        if (tcgetattr(slave, &t) == 0)
            o.echo_after = !!(t.c_lflag & ECHO);
        if (write(pipefd[1], &o, sizeof(o)) != (ssize_t)sizeof(o))
            _exit(4);
        _exit(0);
    }
    close(pipefd[1]);
    char shown[sizeof(out->shown)];
    size_t len = read_master(master, "Secret: ", shown, sizeof(shown), 0);
    assert_non_null(strstr(shown, "Secret: "));
    assert_int_equal(write(master, input, strlen(input)), (ssize_t)strlen(input));
    read_master(master, NULL, shown, sizeof(shown), len);

    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(read(pipefd[0], out, sizeof(*out)), (ssize_t)sizeof(*out));
    memcpy(out->shown, shown, sizeof(shown));
    close(pipefd[0]);
    close(master);
}

static void test_hidden_line(void **state)
{
    (void)state;
    struct outcome o;
    run("hunter2\n", false, 32, &o);
    assert_int_equal(o.r, 0);
    assert_string_equal(o.line, "hunter2");
    assert_null(strstr(o.shown, "hunter2")); /* not echoed */
    assert_int_equal(o.echo_after, 1);       /* and echo is back on */
}

static void test_echoed_line(void **state)
{
    (void)state;
    struct outcome o;
    run("alice\n", true, 32, &o);
    assert_int_equal(o.r, 0);
    assert_string_equal(o.line, "alice");
    assert_non_null(strstr(o.shown, "alice"));
}

static void test_too_long(void **state)
{
    (void)state;
    struct outcome o;
    run("0123456789\n", false, 9, &o);
    assert_int_equal(o.r, -E2BIG);
    assert_string_equal(o.line, "");
    assert_int_equal(o.echo_after, 1);
}

static void test_end_of_input(void **state)
{
    (void)state;
    struct outcome o;
    run("\x04", false, 32, &o); /* ^D at the start of a line */
    assert_int_equal(o.r, -EPIPE);
    assert_int_equal(o.echo_after, 1);
}

static void test_no_terminal(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *line = NULL;
        if (setsid() < 0) /* a new session has no controlling terminal */
            _exit(2);
        _exit(tty_read_line("Secret: ", false, 32, &line) == -ENXIO && !line ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hidden_line), cmocka_unit_test(test_echoed_line),
        cmocka_unit_test(test_too_long),    cmocka_unit_test(test_end_of_input),
        cmocka_unit_test(test_no_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
