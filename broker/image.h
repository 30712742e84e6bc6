#pragma once
/* Disk image probing for templates: format and virtual size, from the file header. */
#include <stdint.h>

enum image_format { IMAGE_RAW, IMAGE_QCOW2 };

/* Returns 0, -ENOENT/-EACCES/-errno for the file, -EINVAL for a qcow2 header we cannot
 * use (bad version, zero size) or an empty raw file. */
int image_probe(const char *path, enum image_format *ret_format, uint64_t *ret_size);
const char *image_format_to_string(enum image_format format);
