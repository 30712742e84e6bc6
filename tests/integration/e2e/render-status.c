/*
 * vdi-render-status: draws what vdi-session shows, with vdi-session's own code
 * (display/status-screen.c and the generated font), so that an end-to-end test can compare
 * what a client received (vnc-test-client ... --save) with the exact expected picture
 * (vnc-test-client compare).
 *
 *   vdi-render-status WIDTH HEIGHT TEXT OUT.ppm
 *       the status screen (e.g. a CLOSE reason) at WIDTH x HEIGHT
 *   vdi-render-status --notice TEXT BASE.ppm OUT.ppm
 *       BASE (a saved desktop frame, binary PPM) with the NOTICE banner for TEXT on top;
 *       TEXT "" writes BASE unchanged
 *   vdi-render-status --banner-height WIDTH HEIGHT TEXT
 *       prints the banner's height in rows (the rows below it show the desktop)
 *
 * TEXT is taken literally (a newline in it starts a new line, as in the protocol).
 * Exit codes: 0 ok, 1 usage or I/O error.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status-screen-internal.h"

#define MAX_DIM 8192 /* the proxy's limit (PROXY_MAX_DIM) */

static int usage(void)
{
    fputs("usage: vdi-render-status WIDTH HEIGHT TEXT OUT.ppm\n"
          "       vdi-render-status --notice TEXT BASE.ppm OUT.ppm\n"
          "       vdi-render-status --banner-height WIDTH HEIGHT TEXT\n",
          stderr);
    return 1;
}

static int parse_dim(const char *s, int *ret)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > MAX_DIM)
        return -1;
    *ret = (int)v;
    return 0;
}

/* 4 bytes per pixel: red, green, blue, unused (the proxy's framebuffer format). */
struct picture {
    int w, h;
    uint8_t *px;
};

static int ppm_number(FILE *f)
{
    int c, v = 0, digits = 0;
    while ((c = fgetc(f)) != EOF) {
        if (c == '#') {
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
        } else if (c >= '0' && c <= '9') {
            if (v > 100000)
                return -1;
            v = v * 10 + (c - '0');
            digits++;
        } else if (digits) {
            return v; /* the one whitespace byte after maxval is consumed here */
        }
    }
    return -1;
}

static int picture_load(const char *path, struct picture *p)
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return -errno;
    int r = -EINVAL;
    char magic[2];
    if (fread(magic, 1, 2, f) == 2 && magic[0] == 'P' && magic[1] == '6') {
        int w = ppm_number(f), h = ppm_number(f), max = ppm_number(f);
        if (w >= 1 && h >= 1 && w <= MAX_DIM && h <= MAX_DIM && max == 255) {
            size_t n = (size_t)w * (size_t)h;
            uint8_t *rgb = malloc(n * 3);
            p->px = calloc(n, 4);
            if (rgb && p->px && fread(rgb, 3, n, f) == n) {
                for (size_t i = 0; i < n; i++)
                    memcpy(p->px + i * 4, rgb + i * 3, 3);
                p->w = w;
                p->h = h;
                r = 0;
            } else {
                free(p->px);
                p->px = NULL;
            }
            free(rgb);
        }
    }
    fclose(f);
    return r;
}

static int picture_save(const char *path, const struct picture *p)
{
    FILE *f = fopen(path, "wbe");
    if (!f)
        return -errno;
    fprintf(f, "P6\n%d %d\n255\n", p->w, p->h);
    size_t n = (size_t)p->w * (size_t)p->h;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = fwrite(p->px + i * 4, 1, 3, f) == 3;
    if (fclose(f) != 0 || !ok)
        return -EIO;
    return 0;
}

static int render_status(int w, int h, const char *text, const char *out)
{
    struct picture p = {.w = w, .h = h, .px = calloc((size_t)w * (size_t)h, 4)};
    if (!p.px)
        return 1;
    status_screen_render(p.px, w, h, (size_t)w * 4, text);
    int r = picture_save(out, &p);
    free(p.px);
    if (r < 0) {
        fprintf(stderr, "vdi-render-status: cannot write %s: %s\n", out, strerror(-r));
        return 1;
    }
    return 0;
}

static int render_notice(const char *text, const char *base, const char *out)
{
    struct picture p = {0};
    int r = picture_load(base, &p);
    if (r < 0) {
        fprintf(stderr, "vdi-render-status: cannot read %s (binary PPM, maxval 255): %s\n", base,
                strerror(-r));
        return 1;
    }
    /* As the proxy does: the strip is rendered on its own, then laid over the rows. */
    int bh = status_screen_banner_height(p.w, p.h, text);
    if (bh > 0)
        status_screen_render_banner(p.px, p.w, bh, (size_t)p.w * 4, text);
    r = picture_save(out, &p);
    free(p.px);
    if (r < 0) {
        fprintf(stderr, "vdi-render-status: cannot write %s: %s\n", out, strerror(-r));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int w, h;
    if (argc == 5 && !strcmp(argv[1], "--notice"))
        return render_notice(argv[2], argv[3], argv[4]);
    if (argc == 5 && !strcmp(argv[1], "--banner-height")) {
        if (parse_dim(argv[2], &w) < 0 || parse_dim(argv[3], &h) < 0)
            return usage();
        printf("%d\n", status_screen_banner_height(w, h, argv[4]));
        return 0;
    }
    if (argc == 5 && argv[1][0] != '-') {
        if (parse_dim(argv[1], &w) < 0 || parse_dim(argv[2], &h) < 0)
            return usage();
        return render_status(w, h, argv[3], argv[4]);
    }
    return usage();
}
