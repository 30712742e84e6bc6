#include "cut-text.h"

#include <stdbool.h>
#include <stdlib.h>

uint32_t cut_text_utf8_decode(const uint8_t *s, size_t left, size_t *n)
{
    uint32_t cp, min;
    size_t len;
    *n = 1;
    if (s[0] < 0x80)
        return s[0];
    if ((s[0] & 0xe0) == 0xc0)
        len = 2, cp = s[0] & 0x1f, min = 0x80;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3, cp = s[0] & 0x0f, min = 0x800;
    else if ((s[0] & 0xf8) == 0xf0)
        len = 4, cp = s[0] & 0x07, min = 0x10000;
    else
        return 0xfffd;
    if (len > left)
        return 0xfffd;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0xfffd;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
        return 0xfffd;
    *n = len;
    return cp;
}

/* Writes cp as UTF-8 at out + *used if it fits in max; false when it does not. */
static bool put_utf8(char *out, size_t *used, size_t max, uint32_t cp)
{
    uint8_t b[4];
    size_t k;
    if (cp < 0x80)
        b[0] = (uint8_t)cp, k = 1;
    else if (cp < 0x800)
        b[0] = (uint8_t)(0xc0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3f)), k = 2;
    else if (cp < 0x10000)
        b[0] = (uint8_t)(0xe0 | cp >> 12), b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)),
        b[2] = (uint8_t)(0x80 | (cp & 0x3f)), k = 3;
    else
        b[0] = (uint8_t)(0xf0 | cp >> 18), b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f)),
        b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)), b[3] = (uint8_t)(0x80 | (cp & 0x3f)), k = 4;
    if (k > max - *used)
        return false;
    for (size_t i = 0; i < k; i++)
        out[(*used)++] = (char)b[i];
    return true;
}

/* The output buffer for at most max bytes out of an input that can grow by a factor. */
static char *out_alloc(size_t len, size_t factor, size_t max)
{
    size_t cap = len > max / factor ? max : len * factor;
    return malloc(cap + 1);
}

char *cut_text_latin1_to_utf8(const char *text, size_t len, size_t max, size_t *ret_len)
{
    char *out = out_alloc(len, 2, max);
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len && text[i]; i++) {
        if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
            continue;
        if (!put_utf8(out, &n, max, (uint8_t)text[i]))
            break;
    }
    out[n] = '\0';
    *ret_len = n;
    return out;
}

/* The UTF-8 walk both outputs share: decode, drop the CR of CR LF, write Latin-1 ('?'
 * above U+00FF) or clean UTF-8, up to max bytes. */
static char *utf8_convert(const char *text, size_t len, size_t max, bool to_latin1, size_t *ret_len)
{
    /* Latin-1 never grows; each invalid byte may become the 3 bytes of U+FFFD. */
    char *out = out_alloc(len, to_latin1 ? 1 : 3, max);
    if (!out)
        return NULL;
    const uint8_t *in = (const uint8_t *)text;
    size_t i = 0, n = 0, step;
    while (i < len && in[i] && n < max) {
        uint32_t cp = cut_text_utf8_decode(in + i, len - i, &step);
        i += step;
        if (cp == '\r' && i < len && in[i] == '\n')
            continue;
        if (to_latin1)
            out[n++] = cp <= 0xff ? (char)cp : '?';
        else if (!put_utf8(out, &n, max, cp))
            break;
    }
    out[n] = '\0';
    *ret_len = n;
    return out;
}

char *cut_text_utf8_to_latin1(const char *text, size_t len, size_t max, size_t *ret_len)
{
    return utf8_convert(text, len, max, true, ret_len);
}

char *cut_text_utf8_clean(const char *text, size_t len, size_t max, size_t *ret_len)
{
    return utf8_convert(text, len, max, false, ret_len);
}
