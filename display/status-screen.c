#include "status-screen-internal.h"

#include <stdbool.h>
#include <string.h>

#define STATUS_MAX_LINES 32

struct line {
    const char *start;
    size_t len;
    int width;
};

static const struct status_glyph *glyph_for(unsigned char c)
{
    if (c < status_font.first || c >= status_font.first + status_font.count)
        c = '?';
    return &status_font.glyphs[c - status_font.first];
}

/* Skips UTF-8 continuation bytes so that one multi-byte character shows as one '?'. */
static bool is_continuation(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

static int text_width(const char *s, size_t len)
{
    int w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_continuation(c))
            w += glyph_for(c)->advance;
    }
    return w;
}

/* Splits text into lines at '\n' and at spaces so that each fits max_width (a single word
 * wider than that gets a line of its own and is clipped). Returns the number of lines. */
static size_t layout(const char *text, size_t len, int max_width, struct line *lines,
                     size_t max_lines)
{
    size_t n = 0;
    size_t para = 0;
    while (para <= len && n < max_lines) {
        size_t para_end = para;
        while (para_end < len && text[para_end] != '\n')
            para_end++;

        size_t pos = para;
        while (pos < para_end && text[pos] == ' ')
            pos++;
        if (pos == para_end) /* an empty paragraph keeps its blank line */
            lines[n++] = (struct line){.start = text + pos, .len = 0, .width = 0};
        while (pos < para_end && n < max_lines) {
            size_t fit = pos;
            for (;;) {
                size_t word_end = fit;
                while (word_end < para_end && text[word_end] == ' ')
                    word_end++;
                while (word_end < para_end && text[word_end] != ' ')
                    word_end++;
                if (word_end == fit)
                    break;
                if (fit > pos && text_width(text + pos, word_end - pos) > max_width)
                    break;
                fit = word_end;
            }
            lines[n++] = (struct line){
                .start = text + pos, .len = fit - pos, .width = text_width(text + pos, fit - pos)};
            pos = fit;
            while (pos < para_end && text[pos] == ' ')
                pos++;
        }
        para = para_end + 1;
    }
    return n;
}

static void put_pixel(uint8_t *px, uint32_t rgb)
{
    px[0] = (uint8_t)(rgb >> 16);
    px[1] = (uint8_t)(rgb >> 8);
    px[2] = (uint8_t)rgb;
    px[3] = 0;
}

static uint8_t blend(uint8_t bg, uint8_t fg, unsigned alpha)
{
    return (uint8_t)((bg * (255u - alpha) + fg * alpha + 127u) / 255u);
}

static void draw_glyph(uint8_t *fb, int width, int height, size_t stride, int pen_x, int baseline,
                       const struct status_glyph *g)
{
    const uint8_t fg[3] = {(uint8_t)(STATUS_SCREEN_FOREGROUND >> 16),
                           (uint8_t)(STATUS_SCREEN_FOREGROUND >> 8),
                           (uint8_t)STATUS_SCREEN_FOREGROUND};
    if ((size_t)g->offset + (size_t)g->width * g->rows > status_font.bitmap_size)
        return;
    const uint8_t *src = status_font.bitmap + g->offset;
    for (int gy = 0; gy < g->rows; gy++) {
        int y = baseline - g->top + gy;
        if (y < 0 || y >= height)
            continue;
        for (int gx = 0; gx < g->width; gx++) {
            int x = pen_x + g->left + gx;
            unsigned a = src[(size_t)gy * g->width + (size_t)gx];
            if (x < 0 || x >= width || a == 0)
                continue;
            uint8_t *px = fb + (size_t)y * stride + (size_t)x * 4;
            for (int c = 0; c < 3; c++)
                px[c] = blend(px[c], fg[c], a);
        }
    }
}

/* Draws lines centred horizontally, the first line's top at top. */
static void draw_lines(uint8_t *fb, int width, int height, size_t stride, const struct line *lines,
                       size_t n, int top)
{
    int lh = status_font.line_height;
    for (size_t i = 0; i < n; i++) {
        int baseline = top + (int)i * lh + status_font.ascent;
        int pen_x = (width - lines[i].width) / 2;
        for (size_t k = 0; k < lines[i].len; k++) {
            unsigned char c = (unsigned char)lines[i].start[k];
            if (is_continuation(c))
                continue;
            const struct status_glyph *g = glyph_for(c);
            draw_glyph(fb, width, height, stride, pen_x, baseline, g);
            pen_x += g->advance;
        }
    }
}

static void fill(uint8_t *fb, int width, int y0, int y1, size_t stride, uint32_t rgb)
{
    for (int y = y0; y < y1; y++) {
        uint8_t *row = fb + (size_t)y * stride;
        for (int x = 0; x < width; x++)
            put_pixel(row + (size_t)x * 4, rgb);
    }
}

void status_screen_render(uint8_t *fb, int width, int height, size_t stride, const char *text)
{
    if (!fb || width <= 0 || height <= 0)
        return;
    fill(fb, width, 0, height, stride, STATUS_SCREEN_BACKGROUND);
    if (!text)
        return;

    size_t len = strnlen(text, STATUS_SCREEN_TEXT_MAX);
    int margin = width / 10;
    int max_width = width - 2 * margin;
    if (max_width < 1)
        max_width = 1;

    struct line lines[STATUS_MAX_LINES];
    size_t n = layout(text, len, max_width, lines, STATUS_MAX_LINES);
    int total = (int)n * status_font.line_height;
    draw_lines(fb, width, height, stride, lines, n, (height - total) / 2);
}

/* ---- the notice banner ---- */

static size_t banner_layout(int width, const char *text, struct line *lines)
{
    int max_width = width - 2 * STATUS_BANNER_MARGIN;
    if (max_width < 1)
        max_width = 1;
    return layout(text, strnlen(text, STATUS_SCREEN_TEXT_MAX), max_width, lines,
                  STATUS_BANNER_MAX_LINES);
}

static int banner_padding(void)
{
    return status_font.line_height / 2;
}

int status_screen_banner_height(int width, int height, const char *text)
{
    if (width <= 0 || height <= 0 || !text || !text[0])
        return 0;
    struct line lines[STATUS_BANNER_MAX_LINES];
    size_t n = banner_layout(width, text, lines);
    int h = 2 * banner_padding() + (int)n * status_font.line_height + STATUS_BANNER_BORDER;
    return h < height ? h : height;
}

void status_screen_render_banner(uint8_t *fb, int width, int height, size_t stride,
                                 const char *text)
{
    if (!fb || width <= 0 || height <= 0)
        return;
    int border = height > STATUS_BANNER_BORDER ? STATUS_BANNER_BORDER : 0;
    fill(fb, width, 0, height - border, stride, STATUS_SCREEN_BACKGROUND);
    fill(fb, width, height - border, height, stride, STATUS_SCREEN_FOREGROUND);
    if (!text)
        return;
    struct line lines[STATUS_BANNER_MAX_LINES];
    size_t n = banner_layout(width, text, lines);
    /* Clipped to the strip: glyphs never reach the border or below. */
    draw_lines(fb, width, height - border, stride, lines, n, banner_padding());
}
