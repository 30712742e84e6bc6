/*
 * vdi-fontgen: build-time tool. Rasterises printable ASCII of a TrueType font (DejaVu Sans
 * from Debian's fonts-dejavu-core) with FreeType into 8-bit coverage bitmaps and writes them
 * as a C source file for the status screen (status-screen.c). Runs only during the build;
 * vdi-session itself neither links FreeType nor opens font files.
 *
 *     vdi-fontgen FONT.ttf PIXEL_SIZE OUT.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ft2build.h>
#include FT_FREETYPE_H

#define FIRST_CHAR 32
#define LAST_CHAR 126

struct glyph {
    int left, top, width, rows, advance;
    size_t offset;
};

static int emit(FILE *out, FT_Face face, const char *font_name, int px)
{
    struct glyph glyphs[LAST_CHAR - FIRST_CHAR + 1];
    size_t offset = 0;

    fprintf(out, "/* Generated at build time by vdi-fontgen from %s at %d px. Do not edit. */\n",
            font_name, px);
    fprintf(out, "#include \"status-screen-internal.h\"\n\n");
    fprintf(out, "static const uint8_t status_font_bitmap[] = {\n");
    for (int c = FIRST_CHAR; c <= LAST_CHAR; c++) {
        if (FT_Load_Char(face, (FT_ULong)c, FT_LOAD_RENDER | FT_LOAD_TARGET_LIGHT) != 0) {
            fprintf(stderr, "vdi-fontgen: cannot render character %d\n", c);
            return -EINVAL;
        }
        FT_GlyphSlot g = face->glyph;
        if (g->bitmap.pixel_mode != FT_PIXEL_MODE_GRAY) {
            fprintf(stderr, "vdi-fontgen: unexpected pixel mode for character %d\n", c);
            return -EINVAL;
        }
        struct glyph *gl = &glyphs[c - FIRST_CHAR];
        gl->left = g->bitmap_left;
        gl->top = g->bitmap_top;
        gl->width = (int)g->bitmap.width;
        gl->rows = (int)g->bitmap.rows;
        gl->advance = (int)((g->advance.x + 32) >> 6);
        gl->offset = offset;
        for (int y = 0; y < gl->rows; y++) {
            const uint8_t *row = g->bitmap.buffer + (ptrdiff_t)y * g->bitmap.pitch;
            fprintf(out, "   ");
            for (int x = 0; x < gl->width; x++)
                fprintf(out, " %u,", row[x]);
            fprintf(out, "\n");
        }
        offset += (size_t)gl->width * (size_t)gl->rows;
    }
    if (offset == 0)
        fprintf(out, "    0,\n");
    fprintf(out, "};\n\n");

    fprintf(out, "static const struct status_glyph status_font_glyphs[] = {\n");
    for (int c = FIRST_CHAR; c <= LAST_CHAR; c++) {
        const struct glyph *gl = &glyphs[c - FIRST_CHAR];
        fprintf(out, "    {%d, %d, %d, %d, %d, %zu}, /* %d */\n", gl->left, gl->top, gl->width,
                gl->rows, gl->advance, gl->offset, c);
    }
    fprintf(out, "};\n\n");

    int ascent = (int)((face->size->metrics.ascender + 63) >> 6);
    int descent = (int)((-face->size->metrics.descender + 63) >> 6);
    int line_height = (int)((face->size->metrics.height + 63) >> 6);
    fprintf(out,
            "const struct status_font status_font = {\n"
            "    .ascent = %d,\n"
            "    .descent = %d,\n"
            "    .line_height = %d,\n"
            "    .first = %d,\n"
            "    .count = %d,\n"
            "    .glyphs = status_font_glyphs,\n"
            "    .bitmap = status_font_bitmap,\n"
            "    .bitmap_size = %zu,\n"
            "};\n",
            ascent, descent, line_height, FIRST_CHAR, LAST_CHAR - FIRST_CHAR + 1, offset);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: vdi-fontgen FONT.ttf PIXEL_SIZE OUT.c\n");
        return 2;
    }
    char *end = NULL;
    long px = strtol(argv[2], &end, 10);
    if (!end || *end || px < 8 || px > 96) {
        fprintf(stderr, "vdi-fontgen: bad pixel size '%s'\n", argv[2]);
        return 2;
    }

    FT_Library lib;
    FT_Face face;
    if (FT_Init_FreeType(&lib) != 0) {
        fprintf(stderr, "vdi-fontgen: FreeType init failed\n");
        return 1;
    }
    if (FT_New_Face(lib, argv[1], 0, &face) != 0) {
        fprintf(stderr, "vdi-fontgen: cannot load font '%s'\n", argv[1]);
        FT_Done_FreeType(lib);
        return 1;
    }
    int ret = 1;
    if (FT_Set_Pixel_Sizes(face, 0, (FT_UInt)px) != 0) {
        fprintf(stderr, "vdi-fontgen: cannot set size %ld\n", px);
        goto out;
    }

    /* Write to a temporary name, then rename, so an interrupted build leaves no half file. */
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", argv[3]) >= (int)sizeof(tmp))
        goto out;
    FILE *f = fopen(tmp, "we");
    if (!f) {
        fprintf(stderr, "vdi-fontgen: cannot write '%s': %s\n", tmp, strerror(errno));
        goto out;
    }
    const char *base = strrchr(argv[1], '/');
    int r = emit(f, face, base ? base + 1 : argv[1], (int)px);
    if (fclose(f) != 0 || r < 0 || rename(tmp, argv[3]) != 0) {
        fprintf(stderr, "vdi-fontgen: failed to write '%s'\n", argv[3]);
        remove(tmp);
        goto out;
    }
    ret = 0;
out:
    FT_Done_Face(face);
    FT_Done_FreeType(lib);
    return ret;
}
