#include "ppm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

static void fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

int ppm_write(const char *path, const uint32_t *pixels, int width, int height, size_t stride,
              int red_shift, int green_shift, int blue_shift)
{
    size_t row_bytes;
    if (width <= 0 || height <= 0 || stride < (size_t)width ||
        !size_mul((size_t)width, 3, &row_bytes))
        return -EINVAL;

    _cleanup_(freep) char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0)
        return -ENOMEM;
    _cleanup_(freep) uint8_t *row = malloc(row_bytes);
    if (!row)
        return -ENOMEM;

    _cleanup_(fclosep) FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f, "P6\n%d %d\n255\n", width, height);
    for (int y = 0; y < height; y++) {
        const uint32_t *src = pixels + (size_t)y * stride;
        for (int x = 0; x < width; x++) {
            row[3 * x] = (uint8_t)(src[x] >> red_shift);
            row[3 * x + 1] = (uint8_t)(src[x] >> green_shift);
            row[3 * x + 2] = (uint8_t)(src[x] >> blue_shift);
        }
        fwrite(row, 1, row_bytes, f);
    }
    int r = 0;
    if (fflush(f) != 0 || ferror(f))
        r = -(errno ? errno : EIO);
    if (fclose(TAKE_PTR(f)) != 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}
