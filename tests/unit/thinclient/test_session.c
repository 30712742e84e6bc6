/* The path after authentication without TLS or a display: a scripted RFB server, the
 * handoff (thinclient/handoff.c) plus a plain byte pump standing in for tls_relay_run, and
 * the real libvncclient inside thinclient/vnc.c. Checks the SetEncodings rewrite, the
 * first-frame screenshot, QEMU extended key events, desktop resizes and the clipboard both
 * ways. */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-server.h"
#include "handoff.h"
#include "vnc.h"

#define FB_W 64
#define FB_H 48

/* ---- the stand-in relay: handoff, then pump bytes both ways ----------------------------- */

struct pump {
    int local_fd, upstream_fd;
    pthread_t thread;
    int handoff_error;
};

static void *pump_main(void *arg)
{
    struct pump *p = arg;
    int32_t enc[HANDOFF_DEFAULT_ENCODINGS];
    size_t n = handoff_default_encodings(enc, 7, 2);
    struct rfb_stream up = rfb_stream_from_fd(&p->upstream_fd);
    p->handoff_error = handoff_serve(p->local_fd, &up, enc, n, now_ms() + 5000, NULL);
    if (p->handoff_error == 0) {
        for (;;) {
            struct pollfd fds[2] = {{.fd = p->local_fd, .events = POLLIN},
                                    {.fd = p->upstream_fd, .events = POLLIN}};
            if (poll(fds, 2, 10000) <= 0)
                break;
            uint8_t buf[65536];
            int from = fds[0].revents ? 0 : 1;
            ssize_t k = read(fds[from].fd, buf, sizeof(buf));
            if (k <= 0)
                break;
            if (fd_write_full(fds[1 - from].fd, buf, (size_t)k, now_ms() + 5000) < 0)
                break;
        }
    }
    shutdown(p->local_fd, SHUT_RDWR);
    shutdown(p->upstream_fd, SHUT_RDWR);
    return NULL;
}

/* ---- the fake server -------------------------------------------------------------------- */

struct script_data {
    uint32_t name_len; /* announced desktop name length */
    bool send_key_ack;
    bool resize;         /* after the first frame, resize to 32x16 */
    bool partial;        /* answer the full request with half the screen only */
    uint8_t key_msg[12]; /* the QEMU key event received */
    bool got_key;
    int32_t encodings[64];
    size_t n_encodings;
    const char *cut_text; /* after the first frame: a ServerCutText with these bytes */
    size_t cut_text_len;
    uint32_t cut_text_lie; /* != 0: announce this length instead, send no text */
    uint8_t *client_cut;   /* the last ClientCutText received (malloc'd) */
    size_t client_cut_len;
    unsigned client_cuts;
};

#define CLIENT_CUT_MAX (2 * 1024 * 1024) /* what the script accepts */

static uint32_t pixel(int x, int y)
{
    /* what the client asked for: red at bit 0, green 8, blue 16 (little-endian on the wire) */
    return (uint32_t)(x * 4) | (uint32_t)(y * 5) << 8 | 0x80u << 16;
}

/* Reads one client message; returns its type, or -1. */
static int read_client_message(struct fake_server *fs, uint8_t *out12)
{
    uint8_t t;
    if (!fs_read(fs, &t, 1))
        return -1;
    uint8_t buf[32];
    switch (t) {
    case 0:
        return fs_read(fs, buf, 19) ? 0 : -1;
    case 3:
        return fs_read(fs, buf, 9) ? 3 : -1;
    case 4:
        return fs_read(fs, buf, 7) ? 4 : -1;
    case 5:
        return fs_read(fs, buf, 5) ? 5 : -1;
    case 6: {
        struct script_data *d = fs->data;
        if (!fs_read(fs, buf, 7))
            return -1;
        uint32_t len = rfb_get_u32(buf + 3);
        if (len > CLIENT_CUT_MAX) {
            fs_fail(fs, "ClientCutText too long");
            return -1;
        }
        uint8_t *text = malloc(len ? len : 1);
        if (!text || !fs_read(fs, text, len)) {
            free(text);
            return -1;
        }
        free(d->client_cut);
        d->client_cut = text;
        d->client_cut_len = len;
        __atomic_fetch_add(&d->client_cuts, 1, __ATOMIC_RELEASE);
        return 6;
    }
    case 255:
        if (!fs_read(fs, buf, 11))
            return -1;
        out12[0] = t;
        memcpy(out12 + 1, buf, 11);
        return 255;
    default:
        fs_fail(fs, "unexpected client message");
        return -1;
    }
}

static void send_rect_header(struct fake_server *fs, int x, int y, int w, int h, int32_t enc)
{
    uint8_t b[12];
    rfb_put_u16(b, (uint16_t)x);
    rfb_put_u16(b + 2, (uint16_t)y);
    rfb_put_u16(b + 4, (uint16_t)w);
    rfb_put_u16(b + 6, (uint16_t)h);
    rfb_put_u32(b + 8, (uint32_t)enc);
    fs_write(fs, b, 12);
}

static void send_raw_frame(struct fake_server *fs, int w, int h, bool with_ack)
{
    uint8_t hdr[4] = {0, 0, 0, with_ack ? 2 : 1};
    fs_write(fs, hdr, 4);
    if (with_ack)
        send_rect_header(fs, 0, 0, w, h, RFB_ENCODING_QEMU_EXT_KEY);
    send_rect_header(fs, 0, 0, w, h, RFB_ENCODING_RAW);
    uint32_t *px = malloc((size_t)w * (size_t)h * 4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t v = pixel(x, y);
            uint8_t *p = (uint8_t *)&px[y * w + x];
            p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = 0;
        }
    fs_write(fs, px, (size_t)w * (size_t)h * 4);
    free(px);
}

static void script_server(struct fake_server *fs)
{
    struct script_data *d = fs->data;
    uint8_t init[24] = {0};
    static const uint8_t pf[16] = {32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0};
    if (!fs_expect(fs, (uint8_t[]){1}, 1, "ClientInit shared"))
        return;
    rfb_put_u16(init, FB_W);
    rfb_put_u16(init + 2, FB_H);
    memcpy(init + 4, pf, 16);
    rfb_put_u32(init + 20, d->name_len);
    fs_write(fs, init, 24);
    if (d->name_len > 100)
        return; /* the client must give up without reading it */
    fs_write(fs, "test-desktop", d->name_len);

    uint8_t m[12];
    if (read_client_message(fs, m) != 0) /* SetPixelFormat */
    {
        fs_fail(fs, "no SetPixelFormat");
        return;
    }
    uint8_t se[4];
    if (!fs_read(fs, se, 4) || se[0] != 2) {
        fs_fail(fs, "no SetEncodings");
        return;
    }
    d->n_encodings = rfb_get_u16(se + 2);
    if (d->n_encodings > ARRAY_SIZE(d->encodings)) {
        fs_fail(fs, "too many encodings");
        return;
    }
    for (size_t i = 0; i < d->n_encodings; i++) {
        uint8_t e[4];
        fs_read(fs, e, 4);
        d->encodings[i] = (int32_t)rfb_get_u32(e);
    }
    if (read_client_message(fs, m) != 3) {
        fs_fail(fs, "no FramebufferUpdateRequest");
        return;
    }
    send_raw_frame(fs, FB_W, d->partial ? FB_H / 2 : FB_H, d->send_key_ack);

    if (d->resize) {
        uint8_t hdr[4] = {0, 0, 0, 1};
        fs_write(fs, hdr, 4);
        send_rect_header(fs, 0, 0, 32, 16, RFB_ENCODING_DESKTOP_SIZE);
    }
    if (d->cut_text || d->cut_text_lie) {
        uint8_t hdr[8] = {3, 0, 0, 0};
        rfb_put_u32(hdr + 4, d->cut_text_lie ? d->cut_text_lie : (uint32_t)d->cut_text_len);
        fs_write(fs, hdr, sizeof(hdr));
        if (!d->cut_text_lie)
            fs_write(fs, d->cut_text, d->cut_text_len);
    }
    /* Serve until the client goes away; note a QEMU key event. */
    for (;;) {
        int t = read_client_message(fs, m);
        if (t < 0)
            break;
        if (t == 255 && !d->got_key) {
            memcpy(d->key_msg, m, 12);
            d->got_key = true;
        }
    }
    fs->failure[0] = '\0'; /* the final read failing is the client leaving */
}

struct session {
    struct fake_server fs;
    struct pump pump;
    struct vnc *vnc;
    pthread_mutex_t clip_lock; /* on_clipboard runs on the vnc thread */
    char *clipboard;           /* the last text from on_clipboard */
    unsigned clipboards;
};

static void on_clipboard(void *userdata, const char *utf8)
{
    struct session *s = userdata;
    char *copy = strdup(utf8);
    assert_non_null(copy);
    pthread_mutex_lock(&s->clip_lock);
    free(s->clipboard);
    s->clipboard = copy;
    s->clipboards++;
    pthread_mutex_unlock(&s->clip_lock);
}

static void session_start_timeout(struct session *s, struct script_data *d, const char *screenshot,
                                  int timeout_ms)
{
    int sv[2];
    pthread_mutex_init(&s->clip_lock, NULL);
    s->clipboard = NULL;
    s->clipboards = 0;
    fake_server_start(&s->fs, script_server, d);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    s->pump = (struct pump){.local_fd = sv[0], .upstream_fd = s->fs.peer_fd};
    assert_int_equal(pthread_create(&s->pump.thread, NULL, pump_main, &s->pump), 0);
    struct vnc_params p = {.fd = sv[1],
                           .quality = 7,
                           .compress = 2,
                           .screenshot_path = screenshot,
                           .screenshot_timeout_ms = timeout_ms,
                           .on_clipboard = on_clipboard,
                           .userdata = s};
    assert_int_equal(vnc_start(&p, &s->vnc), 0);
}

static void session_start(struct session *s, struct script_data *d, const char *screenshot)
{
    session_start_timeout(s, d, screenshot, 0);
}

static enum vnc_end session_stop_detail(struct session *s, char *detail, size_t size)
{
    shutdown(s->pump.local_fd, SHUT_RDWR);
    enum vnc_end end = vnc_stop(s->vnc, detail, size);
    shutdown(s->fs.peer_fd, SHUT_RDWR);
    pthread_join(s->pump.thread, NULL);
    close(s->pump.local_fd);
    vnc_free(s->vnc);
    fake_server_join(&s->fs);
    free(s->clipboard);
    s->clipboard = NULL;
    pthread_mutex_destroy(&s->clip_lock);
    return end;
}

static enum vnc_end session_stop(struct session *s)
{
    return session_stop_detail(s, NULL, 0);
}

static bool wait_for(bool (*cond)(struct session *), struct session *s, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (now_ms() < end) {
        if (cond(s))
            return true;
        usleep(10000);
    }
    return cond(s);
}

static bool ended(struct session *s)
{
    return vnc_ended(s->vnc);
}

static bool ext_keys(struct session *s)
{
    return vnc_extended_keys(s->vnc);
}

static void test_screenshot_of_first_frame(void **state)
{
    (void)state;
    char dir[] = "/tmp/vdi-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/shot.ppm", dir);
    struct script_data d = {.name_len = 12, .send_key_ack = true};
    struct session s;
    session_start(&s, &d, path);
    assert_true(wait_for(ended, &s, 5000));
    assert_int_equal(session_stop(&s), VNC_END_SCREENSHOT);
    assert_int_equal(s.pump.handoff_error, 0);

    /* Our encoding list went out, not libvncclient's (no -308 ExtDesktopSize, no -261). */
    int32_t want[HANDOFF_DEFAULT_ENCODINGS];
    size_t n = handoff_default_encodings(want, 7, 2);
    assert_int_equal(d.n_encodings, n);
    assert_memory_equal(d.encodings, want, n * sizeof(int32_t));
    for (size_t i = 0; i < d.n_encodings; i++) {
        assert_int_not_equal(d.encodings[i], RFB_ENCODING_EXT_DESKTOP_SIZE);
        assert_int_not_equal(d.encodings[i], RFB_ENCODING_KEYBOARD_LED);
    }

    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    int w, h, max;
    assert_int_equal(fscanf(f, "P6 %d %d %d", &w, &h, &max), 3);
    fgetc(f);
    assert_int_equal(w, FB_W);
    assert_int_equal(h, FB_H);
    for (int y = 0; y < FB_H; y++)
        for (int x = 0; x < FB_W; x++) {
            uint8_t rgb[3];
            assert_int_equal(fread(rgb, 1, 3, f), 3);
            uint32_t v = pixel(x, y);
            assert_int_equal(rgb[0], v & 0xff);
            assert_int_equal(rgb[1], (v >> 8) & 0xff);
            assert_int_equal(rgb[2], (v >> 16) & 0xff);
        }
    fclose(f);
    unlink(path);
    rmdir(dir);
}

static void test_extended_key_event(void **state)
{
    (void)state;
    struct script_data d = {.name_len = 12, .send_key_ack = true};
    struct session s;
    session_start(&s, &d, NULL);
    assert_true(wait_for(ext_keys, &s, 5000));
    vnc_send_key(s.vnc, 'a', 0x1e, true);
    usleep(200000);
    session_stop(&s);
    assert_true(d.got_key);
    static const uint8_t want[12] = {255, 0, 0, 1, 0, 0, 0, 'a', 0, 0, 0, 0x1e};
    assert_memory_equal(d.key_msg, want, 12);
}

static bool resized(struct session *s)
{
    struct vnc_frame f;
    vnc_frame_lock(s->vnc, &f);
    bool r = f.width == 32 && f.height == 16;
    vnc_frame_unlock(s->vnc);
    return r;
}

static void test_desktop_resize(void **state)
{
    (void)state;
    struct script_data d = {.name_len = 12, .resize = true};
    struct session s;
    session_start(&s, &d, NULL);
    assert_true(wait_for(resized, &s, 5000));
    assert_false(vnc_ended(s.vnc));
    assert_false(vnc_extended_keys(s.vnc)); /* never acknowledged */
    session_stop(&s);
}

/* A server that never sends the whole framebuffer: the screenshot is written anyway after
 * the timeout, and the end says it is incomplete (no hang). */
static void test_incomplete_frame_times_out(void **state)
{
    (void)state;
    char dir[] = "/tmp/vdi-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/shot.ppm", dir);
    struct script_data d = {.name_len = 12, .partial = true};
    struct session s;
    uint64_t start = now_ms();
    session_start_timeout(&s, &d, path, 300);
    assert_true(wait_for(ended, &s, 5000));
    assert_true(now_ms() - start >= 300);
    assert_int_equal(session_stop(&s), VNC_END_INCOMPLETE);
    assert_int_equal(access(path, R_OK), 0);
    unlink(path);
    rmdir(dir);
}

static void test_oversize_desktop_name(void **state)
{
    (void)state;
    struct script_data d = {.name_len = 100000};
    struct session s;
    session_start(&s, &d, NULL);
    assert_true(wait_for(ended, &s, 5000));
    assert_int_equal(session_stop(&s), VNC_END_INIT_FAILED);
    assert_int_equal(s.pump.handoff_error, -EPROTO);
}

static bool got_clipboard(struct session *s)
{
    pthread_mutex_lock(&s->clip_lock);
    bool r = s->clipboards > 0;
    pthread_mutex_unlock(&s->clip_lock);
    return r;
}

/* ServerCutText is Latin-1 on the wire; on_clipboard gets UTF-8. */
static void test_clipboard_from_server(void **state)
{
    (void)state;
    static const char latin1[] = "caf\xe9 \xbd\nline 2 \xff";
    struct script_data d = {.name_len = 12, .cut_text = latin1, .cut_text_len = strlen(latin1)};
    struct session s;
    session_start(&s, &d, NULL);
    assert_true(wait_for(got_clipboard, &s, 5000));
    pthread_mutex_lock(&s.clip_lock);
    assert_string_equal(s.clipboard, "caf\xc3\xa9 \xc2\xbd\nline 2 \xc3\xbf");
    assert_int_equal(s.clipboards, 1);
    pthread_mutex_unlock(&s.clip_lock);
    assert_false(vnc_ended(s.vnc));
    session_stop(&s);
}

static bool server_got_cut(struct session *s)
{
    struct script_data *d = s->fs.data;
    return __atomic_load_n(&d->client_cuts, __ATOMIC_ACQUIRE) > 0;
}

/* vnc_send_clipboard: a ClientCutText with Latin-1 bytes ('?' beyond Latin-1, invalid
 * UTF-8 too; CR LF as LF). */
static void test_clipboard_to_server(void **state)
{
    (void)state;
    struct script_data d = {.name_len = 12};
    struct session s;
    session_start(&s, &d, NULL);
    vnc_send_clipboard(s.vnc, "na\xc3\xafve \xe2\x82\xac \xf0\x9f\x98\x80 x\xffy\r\nline2");
    assert_true(wait_for(server_got_cut, &s, 5000));
    usleep(100 * 1000);
    assert_false(vnc_ended(s.vnc));
    session_stop(&s);
    static const char want[] = "na\xefve ? ? x?y\nline2";
    assert_int_equal(d.client_cuts, 1);
    assert_int_equal(d.client_cut_len, strlen(want));
    assert_memory_equal(d.client_cut, want, strlen(want));
    free(d.client_cut);
}

/* Text beyond VNC_CLIPBOARD_MAX is cut there. */
static void test_clipboard_to_server_capped(void **state)
{
    (void)state;
    size_t n = VNC_CLIPBOARD_MAX + VNC_CLIPBOARD_MAX / 2;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = 0;
    struct script_data d = {.name_len = 12};
    struct session s;
    session_start(&s, &d, NULL);
    vnc_send_clipboard(s.vnc, big);
    assert_true(wait_for(server_got_cut, &s, 5000));
    assert_false(vnc_ended(s.vnc));
    session_stop(&s);
    assert_int_equal(d.client_cut_len, VNC_CLIPBOARD_MAX);
    assert_memory_equal(d.client_cut, big, VNC_CLIPBOARD_MAX);
    free(d.client_cut);
    free(big);
}

/* A ServerCutText announcing almost 4 GiB: libvncclient refuses the length before it
 * allocates or reads anything (it would otherwise wait here for the bytes until its 60 s
 * read timeout), and the session ends. */
static void test_clipboard_oversize_from_server(void **state)
{
    (void)state;
    struct script_data d = {.name_len = 12, .cut_text_lie = 0xfffffff0u};
    struct session s;
    session_start(&s, &d, NULL);
    uint64_t t0 = now_ms();
    assert_true(wait_for(ended, &s, 5000));
    assert_true(now_ms() - t0 < 5000);
    char detail[256];
    assert_int_equal(session_stop_detail(&s, detail, sizeof(detail)), VNC_END_CLOSED);
    assert_non_null(strstr(detail, "too big cut text"));
    assert_int_equal(s.clipboards, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_screenshot_of_first_frame),
        cmocka_unit_test(test_extended_key_event),
        cmocka_unit_test(test_desktop_resize),
        cmocka_unit_test(test_incomplete_frame_times_out),
        cmocka_unit_test(test_oversize_desktop_name),
        cmocka_unit_test(test_clipboard_from_server),
        cmocka_unit_test(test_clipboard_to_server),
        cmocka_unit_test(test_clipboard_to_server_capped),
        cmocka_unit_test(test_clipboard_oversize_from_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
