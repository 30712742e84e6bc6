/*
 * QEMU extended key events on the downstream (libvncserver) side. libvncserver 0.9.14 does
 * not know pseudo-encoding -258, so this is an rfbProtocolExtension:
 *  - the client lists -258 in SetEncodings -> we acknowledge with a FramebufferUpdate that
 *    holds one pseudo-rectangle of encoding -258 (as QEMU does), written under the client's
 *    sendMutex so it never interleaves with an update from libvncserver's output thread;
 *  - client message type 255 subtype 0 (u8 type, u8 subtype, u16 down, u32 keysym,
 *    u32 keycode) is parsed with exact lengths and queued for the upstream thread, which
 *    forwards it with SendExtendedKeyEvent (or as a plain key event when the VM's display
 *    did not acknowledge -258). Any other subtype has no known length: the client is dropped.
 */
#include "proxy-internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define EXTKEY_ENCODING ((int)rfbEncodingQemuExtendedKeyEvent) /* -258 */
#define EXTKEY_SUBTYPE_KEY 0

static int extkey_encodings[] = {EXTKEY_ENCODING, 0};

static rfbBool extkey_new_client(rfbClientPtr cl, void **data)
{
    /* Every screen in a vdi-session process is a proxy screen (one per process). */
    *data = cl->screen->screenData;
    return *data != NULL;
}

static rfbBool extkey_enable_pseudo_encoding(rfbClientPtr cl, void **data, int encoding)
{
    (void)data;
    if (encoding != EXTKEY_ENCODING)
        return FALSE;

    /* Acknowledge: FramebufferUpdate, 1 rectangle, encoding -258. libvncclient ignores
     * zero-sized rectangles, so give it the screen's size like QEMU does. */
    uint8_t msg[4 + 12];
    uint16_t w = (uint16_t)(cl->screen->width > 0 ? cl->screen->width : 1);
    uint16_t h = (uint16_t)(cl->screen->height > 0 ? cl->screen->height : 1);
    uint16_t v16;
    uint32_t v32;
    msg[0] = rfbFramebufferUpdate;
    msg[1] = 0;
    v16 = htons(1);
    memcpy(msg + 2, &v16, 2);
    memset(msg + 4, 0, 4); /* x, y */
    v16 = htons(w);
    memcpy(msg + 8, &v16, 2);
    v16 = htons(h);
    memcpy(msg + 10, &v16, 2);
    v32 = htonl((uint32_t)EXTKEY_ENCODING);
    memcpy(msg + 12, &v32, 4);

    pthread_mutex_lock(&cl->sendMutex);
    int r = rfbWriteExact(cl, (const char *)msg, (int)sizeof(msg));
    pthread_mutex_unlock(&cl->sendMutex);
    if (r < 0)
        log_debug("proxy: cannot acknowledge QEMU extended key events");
    return TRUE;
}

static rfbBool extkey_handle_message(rfbClientPtr cl, void *data,
                                     const rfbClientToServerMsg *message)
{
    struct proxy *p = data;
    uint8_t buf[sz_rfbQemuExtendedKeyEventMsg];

    if (message->type != rfbQemuEvent)
        return FALSE;

    /* libvncserver has read the type byte; the rest is ours to read. */
    if (rfbReadExact(cl, (char *)buf + 1, 1) <= 0) {
        rfbCloseClient(cl);
        return TRUE;
    }
    if (buf[1] != EXTKEY_SUBTYPE_KEY) {
        log_debug("proxy: client sent QEMU message subtype %u, dropping it", buf[1]);
        rfbCloseClient(cl);
        return TRUE;
    }
    if (rfbReadExact(cl, (char *)buf + 2, (int)sizeof(buf) - 2) <= 0) {
        rfbCloseClient(cl);
        return TRUE;
    }
    if (cl->viewOnly || !p || !proxy_input_allowed(p))
        return TRUE; /* read in full, dropped */

    uint16_t down;
    uint32_t keysym, keycode;
    memcpy(&down, buf + 2, 2);
    memcpy(&keysym, buf + 4, 4);
    memcpy(&keycode, buf + 8, 4);
    struct proxy_input ev = {
        .type = PROXY_INPUT_EXT_KEY,
        .down = ntohs(down) != 0,
        .keysym = ntohl(keysym),
        .keycode = ntohl(keycode),
    };
    (void)proxy_input_queue_push(&p->input, &ev);
    return TRUE;
}

static rfbProtocolExtension extkey_extension = {
    .newClient = extkey_new_client,
    .pseudoEncodings = extkey_encodings,
    .enablePseudoEncoding = extkey_enable_pseudo_encoding,
    .handleMessage = extkey_handle_message,
};

void extkey_client_gone(rfbClientPtr cl)
{
    /* libvncserver 0.9.14 frees neither a client's extension records when it goes nor the
     * record in rfbDisableExtension() (which instead free()s its data: here the proxy).
     * Only this client's thread can be using the list at this point. */
    for (rfbExtensionData **e = &cl->extensions; *e; e = &(*e)->next)
        if ((*e)->extension == &extkey_extension) {
            rfbExtensionData *gone = *e;
            *e = gone->next;
            free(gone);
            break;
        }
}

static void extkey_register_once(void)
{
    rfbRegisterProtocolExtension(&extkey_extension);
}

void extkey_register(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, extkey_register_once);
}
