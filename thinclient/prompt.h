#pragma once
/* Asking the user on the terminal, and reading secrets from files. Returned strings are
 * malloc'd; free passwords with secret_free() (util.h). */
#include <stdbool.h>
#include <stddef.h>

/* Writes prompt to the controlling terminal (/dev/tty) and reads one line of at most max
 * bytes; echo off hides what is typed (and is restored even on SIGINT/SIGTERM). Returns
 * 0, -ENXIO when there is no terminal, -E2BIG for a longer line, -EPIPE at end of input. */
int prompt_line(const char *prompt, bool echo, size_t max, char **ret);

/* The first line of path (without its newline), at most max bytes. Warns when the file
 * is readable by group or others. Returns 0, -E2BIG, -ENODATA for an empty file, -errno. */
int prompt_secret_from_file(const char *path, size_t max, char **ret);
