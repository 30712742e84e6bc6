#pragma once
/* Reading secrets from files (asking on the terminal is tty.h in common/). Returned
 * strings are malloc'd; free passwords with secret_free() (util.h). */
#include <stddef.h>

/* The first line of path (without its newline), at most max bytes. Warns when the file
 * is readable by group or others. Returns 0, -E2BIG, -ENODATA for an empty file, -errno. */
int prompt_secret_from_file(const char *path, size_t max, char **ret);

/* The password given before any prompt: the first line of password_file when set, else
 * $VDI_PASSWORD (then wiped from the environment). Returns 0 with *ret NULL when there
 * is neither, 0 with *ret set, or -E2BIG / -ENODATA / -errno. */
int prompt_preset_password(const char *password_file, size_t max, char **ret);
