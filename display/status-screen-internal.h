#pragma once
/*
 * The proxy's status screen: centred text on a plain background, drawn straight into the
 * 32 bpp downstream framebuffer; and the notice banner, a full-width strip of the same
 * colours and font at the top of the VM's picture. The font is generated at build time (fontgen.c)
 * from a TrueType font into 8-bit coverage bitmaps, so text is anti-aliased and needs no files at
 * run time. Internal to display/ and its tests.
 */
#include <stddef.h>
#include <stdint.h>

struct status_glyph {
    int16_t left, top;    /* bitmap offset from the pen position (top: above baseline) */
    uint16_t width, rows; /* bitmap size */
    uint16_t advance;     /* pen advance in pixels */
    uint32_t offset;      /* into status_font.bitmap */
};

struct status_font {
    int ascent, descent, line_height;
    unsigned first, count; /* characters first .. first+count-1 */
    const struct status_glyph *glyphs;
    const uint8_t *bitmap;
    size_t bitmap_size;
};

extern const struct status_font status_font;

/* Background and text colours as 0xRRGGBB. */
#define STATUS_SCREEN_BACKGROUND 0x1d2330u
#define STATUS_SCREEN_FOREGROUND 0xe8ecf2u

/* Largest text drawn; longer text is cut. */
#define STATUS_SCREEN_TEXT_MAX 1024

/*
 * Fills fb (width x height pixels, stride bytes per row, 4 bytes per pixel in the server
 * pixel format: byte 0 red, 1 green, 2 blue) with the background and draws text centred,
 * split at '\n' and word-wrapped to the width. Non-ASCII bytes show as '?'.
 */
void status_screen_render(uint8_t *fb, int width, int height, size_t stride, const char *text);

/* The notice banner: word-wrapped lines (at most STATUS_BANNER_MAX_LINES, the rest is cut),
 * centred, with half a line of padding above and below, then a border line in the text
 * colour. */
#define STATUS_BANNER_MAX_LINES 4
#define STATUS_BANNER_MARGIN 16 /* pixels left and right of the text */
#define STATUS_BANNER_BORDER 2  /* rows of the bottom border */

/* Height in rows of the banner for text on a width x height screen (capped at height);
 * 0 for NULL or "" (no banner). */
int status_screen_banner_height(int width, int height, const char *text);
/*
 * Renders the banner into fb (width x height: height as returned by
 * status_screen_banner_height, same pixel format as status_screen_render). The proxy and
 * the test tool vdi-render-status both draw through this, so tests can compare exactly.
 */
void status_screen_render_banner(uint8_t *fb, int width, int height, size_t stride,
                                 const char *text);
