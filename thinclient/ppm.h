#pragma once
/* Writes a framebuffer as a binary PPM (P6) image, for --screenshot and tests. */
#include <stddef.h>
#include <stdint.h>

/* pixels: width x height 32-bit values, stride in pixels, colour channels at the given bit
 * shifts (8 bits each). Writes path atomically (temporary file, then rename). Returns 0,
 * -EINVAL for an empty image, or -errno. */
int ppm_write(const char *path, const uint32_t *pixels, int width, int height, size_t stride,
              int red_shift, int green_shift, int blue_shift);
