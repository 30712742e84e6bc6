#include "prompt.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>

#include "log.h"
#include "util.h"

/* Restores the terminal when a signal ends the process during a hidden prompt. */
static int saved_tty_fd = -1;
static struct termios saved_tty;

static void restore_tty_and_reraise(int sig)
{
    if (saved_tty_fd >= 0)
        tcsetattr(saved_tty_fd, TCSAFLUSH, &saved_tty);
    signal(sig, SIG_DFL);
    raise(sig);
}

static const int tty_signals[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGTSTP};

int prompt_line(const char *prompt, bool echo, size_t max, char **ret)
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
            return -errno;
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
            for (size_t i = 0; i < ARRAY_SIZE(tty_signals); i++)
                sigaction(tty_signals[i], &old[i], NULL);
            saved_tty_fd = -1;
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

int prompt_secret_from_file(const char *path, size_t max, char **ret)
{
    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode) && (st.st_mode & 077))
        log_warning("password file %s is accessible by other users (mode %03o)", path,
                    (unsigned)(st.st_mode & 0777));

    /* Room for max bytes, a line end, and one more to notice an over-long line. */
    size_t cap = max + 2;
    _cleanup_(secret_freep) char *buf = calloc(1, cap + 1);
    if (!buf)
        return -ENOMEM;
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t)n;
        if (memchr(buf, '\n', len))
            break;
    }
    char *nl = memchr(buf, '\n', len);
    size_t line = nl ? (size_t)(nl - buf) : len;
    if (line > 0 && buf[line - 1] == '\r')
        line--;
    if (line > max) {
        explicit_bzero(buf, cap);
        return -E2BIG;
    }
    explicit_bzero(buf + line, cap - line);
    if (line == 0)
        return -ENODATA;
    *ret = TAKE_PTR(buf);
    return 0;
}
