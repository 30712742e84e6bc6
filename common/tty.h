#pragma once
/* Asking on the controlling terminal. The returned line is malloc'd; free a secret with
 * secret_free() (util.h), which wipes it first. */
#include <stdbool.h>
#include <stddef.h>

/* Writes prompt to the controlling terminal (/dev/tty) and reads one line (without its
 * CR/LF) of at most max bytes. With echo false, what is typed is not shown; the terminal
 * is restored afterwards, also when SIGINT, SIGTERM, SIGQUIT, SIGHUP or SIGTSTP arrives
 * meanwhile (the signal then takes its default action). Returns 0, -ENXIO when there is
 * no terminal, -E2BIG for a longer line, -EPIPE at end of input, -ENOMEM, -errno. */
int tty_read_line(const char *prompt, bool echo, size_t max, char **ret);
