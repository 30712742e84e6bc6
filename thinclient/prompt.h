#pragma once
/* Reading secrets from files (asking on the terminal is tty.h in common/). Returned
 * strings are malloc'd; free passwords with secret_free() (util.h). */
#include <stddef.h>

/* The first line of path (without its newline), at most max bytes. Warns when the file
 * is readable by group or others. Returns 0, -E2BIG, -ENODATA for an empty file, -errno. */
int prompt_secret_from_file(const char *path, size_t max, char **ret);
