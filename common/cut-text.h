#pragma once
/* Clipboard (RFB cut text) encodings: plain RFB cut text is Latin-1 with LF line ends, the
 * extended clipboard and every desktop clipboard are UTF-8. One set of conversions for
 * vdi-session (proxy, upstream) and vdi-client. Every input is hostile: invalid UTF-8
 * never passes through, outputs are capped before allocation. */
#include <stddef.h>
#include <stdint.h>

/* One UTF-8 character at s[0..left) (left >= 1): its code point, or U+FFFD for an invalid,
 * overlong, surrogate or truncated sequence (then one byte is consumed). *n gets the
 * number of bytes consumed. */
uint32_t cut_text_utf8_decode(const uint8_t *s, size_t left, size_t *n);

/* Latin-1 text[0..len) to UTF-8, up to the first NUL, CR LF becoming LF, keeping at most
 * max bytes of output (never a partial character). Returns a NUL-terminated malloc'd string and its
 * length in *ret_len, or NULL when out of memory. */
char *cut_text_latin1_to_utf8(const char *text, size_t len, size_t max, size_t *ret_len);

/* UTF-8 text[0..len) to Latin-1, up to the first NUL: code points above U+00FF and invalid
 * bytes become '?', CR LF becomes LF. At most max bytes of output. NUL-terminated,
 * malloc'd; NULL when out of memory. */
char *cut_text_utf8_to_latin1(const char *text, size_t len, size_t max, size_t *ret_len);

/* UTF-8 text[0..len) made safe to pass on, up to the first NUL: invalid sequences become
 * U+FFFD, CR LF becomes LF. At most max bytes of output (never a partial character).
 * NUL-terminated, malloc'd; NULL when out of memory. */
char *cut_text_utf8_clean(const char *text, size_t len, size_t max, size_t *ret_len);
