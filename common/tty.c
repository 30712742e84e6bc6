/* Reading a line, possibly hidden, from the controlling terminal (tty.h). */
#include "tty.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <termios.h>

#include "util.h"

/* Restores the terminal when a signal ends the process during a hidden prompt. */
static int saved_tty_fd = -1;
static struct termios saved_tty;
static const int tty_signals[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGTSTP};

static void restore_tty_and_reraise(int sig)
{
    if (saved_tty_fd >= 0)
        tcsetattr(saved_tty_fd, TCSAFLUSH, &saved_tty);
    signal(sig, SIG_DFL);
    raise(sig);
}

int tty_read_line(const char *prompt, bool echo, size_t max, char **ret)
{
    _cleanup_(closep) int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -ENXIO;
    _cleanup_(secret_freep) char *buf = calloc(1, max + 1);
    if (!buf)
        return -ENOMEM;

    struct sigaction old[ARRAY_SIZE(tty_signals)];
    bool hidden = false;
    if (!echo) {
        struct termios t;
        if (tcgetattr(fd, &t) < 0)
            return -ENXIO;
        saved_tty = t;
        saved_tty_fd = fd;
        struct sigaction sa = {.sa_handler = restore_tty_and_reraise};
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ARRAY_SIZE(tty_signals); i++)
            sigaction(tty_signals[i], &sa, &old[i]);
        t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        t.c_lflag |= ICANON;
        if (tcsetattr(fd, TCSAFLUSH, &t) < 0) {
            int e = -errno;
            tcsetattr(fd, TCSAFLUSH, &saved_tty); /* it may have applied part of it */
            saved_tty_fd = -1;
            for (size_t i = 0; i < ARRAY_SIZE(tty_signals); i++)
                sigaction(tty_signals[i], &old[i], NULL);
            return e;
        }
        hidden = true;
    }

    int r = fd_write_full(fd, prompt, strlen(prompt), now_ms() + 5000);
    size_t len = 0;
    bool too_long = false, eof = false;
    while (r >= 0) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0) {
            eof = true;
            break;
        }
        if (c == '\n' || c == '\r')
            break;
        if (len < max)
            buf[len++] = c;
        else
            too_long = true;
        c = 0;
    }

    if (hidden) {
        tcsetattr(fd, TCSAFLUSH, &saved_tty);
        saved_tty_fd = -1;
        for (size_t i = 0; i < ARRAY_SIZE(tty_signals); i++)
            sigaction(tty_signals[i], &old[i], NULL);
        /* the user's Enter was not echoed either */
        (void)fd_write_full(fd, "\n", 1, now_ms() + 1000);
    }
    if (r < 0)
        return r;
    if (too_long)
        return -E2BIG;
    if (eof && len == 0)
        return -EPIPE;
    buf[len] = '\0';
    *ret = TAKE_PTR(buf);
    return 0;
}
