#pragma once
/* The RFB extended clipboard (pseudo-encoding 0xC0A1E5CE, "Extended Clipboard" in the
 * community rfbproto), text format only: the only clipboard QEMU's VNC server sends, and
 * UTF-8 instead of Latin-1. A ServerCutText/ClientCutText whose length is negative
 * carries -length bytes: a u32 of flags (one action bit, format bits), then per action:
 *   caps     a u32 size limit per format bit set
 *   notify   nothing (the formats the peer now has)
 *   request  nothing (the formats wanted)
 *   provide  a zlib stream of, per format bit set: u32 size, then the data; text is UTF-8,
 *            usually NUL-terminated
 * The builders write whole messages; the parser takes the -length payload, as hostile
 * input (caps before allocation, zlib output bounded). */
#include <stddef.h>
#include <stdint.h>

#define EXTCLIP_ENCODING ((int32_t)0xC0A1E5CE)

#define EXTCLIP_TEXT (1u << 0)
#define EXTCLIP_CAPS (1u << 24)
#define EXTCLIP_REQUEST (1u << 25)
#define EXTCLIP_PEEK (1u << 26)
#define EXTCLIP_NOTIFY (1u << 27)
#define EXTCLIP_PROVIDE (1u << 28)

/* The largest payload worth reading for text_max bytes of text (a deflate stream of
 * incompressible text is a little longer than the text). */
#define EXTCLIP_PAYLOAD_MAX(text_max) (8 + (size_t)(text_max) + (size_t)(text_max) / 256 + 64)

struct extclip_msg {
    uint32_t flags;  /* as sent: action and format bits */
    char *text;      /* provide with text: NUL-terminated UTF-8 (cleaned, LF line ends,
                        without the terminating NUL), malloc'd; otherwise NULL */
    size_t text_len; /* strlen(text) */
};

/* Parses payload[0..len), the bytes after a negative length. Returns 0, -EBADMSG for a
 * malformed message (shorter than its flags, a provide whose zlib stream is broken or
 * shorter than the sizes it declares), -E2BIG for text longer than text_max bytes, or
 * -ENOMEM. */
int extclip_parse(const uint8_t *payload, size_t len, size_t text_max, struct extclip_msg *ret);
void extclip_msg_done(struct extclip_msg *m);

/* Whole messages of type msg_type (rfbClientCutText 6 or rfbServerCutText 3), malloc'd in
 * *ret with their size in *ret_len. Return 0 or -ENOMEM (-EINVAL for text too long).
 * An action without data (notify, request, peek), flags = action | formats: */
int extclip_build_action(uint8_t msg_type, uint32_t flags, uint8_t **ret, size_t *ret_len);
/* Caps: the actions we take, text only, at most text_max bytes. */
int extclip_build_caps(uint8_t msg_type, uint32_t actions, uint32_t text_max, uint8_t **ret,
                       size_t *ret_len);
/* Provide text[0..len) (UTF-8). Sent without a terminating NUL, as QEMU sends it: QEMU
 * hands the bytes to the guest's clipboard unchanged, where a NUL would be pasted too. */
int extclip_build_provide(uint8_t msg_type, const char *text, size_t len, uint8_t **ret,
                          size_t *ret_len);
