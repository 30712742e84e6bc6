/* The viewer with a real vnc session (a scripted RFB server, libvncclient in thinclient/
 * vnc.c) in an SDL window on the dummy video driver and the software renderer.
 *
 * Guards against the black window after a reconnect (commit 207a9eb): viewer_notify()
 * posts one UI_EVENT_FRAME and no other until viewer_run() takes it, and the app's loop
 * before viewer_run() (the "Reconnecting" screen) drops it. A still desktop sends nothing
 * more, so viewer_run() must take the picture the frame already holds when it starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake-server.h"
#include "stream.h"
#include "ui.h"
#include "viewer.h"
#include "vnc.h"

#define FB_W 64
#define FB_H 48
#define COLOUR 0xc08020u /* red 0x20, green 0x80, blue 0xc0, in vnc.h's pixel layout */

static void skip_bytes(struct fake_server *fs, size_t n)
{
    uint8_t buf[256];
    while (n > 0 && !fs->failure[0]) {
        size_t k = n < sizeof(buf) ? n : sizeof(buf);
        fs_read(fs, buf, k);
        n -= k;
    }
}

/* An RFB 3.8 server without security whose desktop is one colour; it sends the picture
 * once, as a still desktop does, then reads (fake_server_main) until the client leaves. */
static void script_still_desktop(struct fake_server *fs)
{
    static const uint8_t none[2] = {1, 1}, pf[16] = {32, 24, 0, 1, 0, 255, 0, 255, 0, 255};
    fs_write(fs, "RFB 003.008\n", 12);
    fs_expect(fs, "RFB 003.008\n", 12, "client version");
    fs_write(fs, none, sizeof(none));
    fs_expect(fs, (uint8_t[]){1}, 1, "security type None");
    fs_u32(fs, 0); /* SecurityResult */
    fs_expect(fs, (uint8_t[]){1}, 1, "ClientInit shared");

    uint8_t init[24] = {0};
    rfb_put_u16(init, FB_W);
    rfb_put_u16(init + 2, FB_H);
    memcpy(init + 4, pf, sizeof(pf));
    fs_write(fs, init, sizeof(init)); /* name length 0 */

    /* SetPixelFormat (red at bit 0, vnc.h), SetEncodings, the first update request. */
    uint8_t se[4] = {0};
    skip_bytes(fs, 20);
    fs_read(fs, se, sizeof(se));
    skip_bytes(fs, 4 * (size_t)rfb_get_u16(se + 2) + 10);

    uint8_t update[16] = {0, 0, 0, 1};
    rfb_put_u16(update + 8, FB_W);
    rfb_put_u16(update + 10, FB_H); /* at 0,0, encoding 0: Raw */
    fs_write(fs, update, sizeof(update));
    static const uint8_t pixel[4] = {COLOUR & 0xff, COLOUR >> 8 & 0xff, COLOUR >> 16, 0};
    uint8_t px[FB_W * FB_H * 4];
    for (size_t i = 0; i < sizeof(px); i += 4)
        memcpy(px + i, pixel, 4);
    fs_write(fs, px, sizeof(px));
    fs->count_trailing = true;
}

static bool picture_arrived(struct vnc *vnc)
{
    struct vnc_frame f;
    vnc_frame_lock(vnc, &f);
    bool r = f.pixels && f.pixels[FB_W * FB_H - 1] == COLOUR;
    vnc_frame_unlock(vnc); /* clears the dirty area: the viewer has no texture yet, so it
                            * takes the whole frame anyway */
    return r;
}

static Uint32 push_quit(Uint32 interval, void *unused)
{
    (void)interval, (void)unused;
    SDL_Event e = {.type = SDL_QUIT};
    SDL_PushEvent(&e);
    return 0;
}

static void test_frame_taken_by_caller_loop_is_shown(void **state)
{
    (void)state;
    struct ui *ui;
    struct viewer *w;
    assert_int_equal(ui_new(&(struct ui_options){.title = "test_viewer"}, &ui), 0);
    assert_int_equal(viewer_new(ui, &w), 0);

    struct fake_server fs;
    struct vnc *vnc;
    fake_server_start(&fs, script_still_desktop, NULL);
    struct vnc_params p = {.fd = fs.peer_fd, .on_frame = viewer_notify, .userdata = w};
    fs.peer_fd = -1; /* vnc_start takes it */
    assert_int_equal(vnc_start(&p, &vnc), 0);

    uint64_t deadline = now_ms() + 5000;
    while (!picture_arrived(vnc) && now_ms() < deadline)
        usleep(10000);
    assert_true(picture_arrived(vnc));

    /* The app's loop: it takes the session's only UI_EVENT_FRAME and drops it. */
    Uint32 ui_type = ui_event_type(ui);
    int dropped = 0;
    SDL_Event e;
    while (SDL_PollEvent(&e))
        dropped += e.type == ui_type && e.user.code == UI_EVENT_FRAME;
    assert_int_equal(dropped, 1);

    /* The session stays up; the user closes the window a while later. */
    SDL_TimerID timer = SDL_AddTimer(300, push_quit, NULL);
    assert_int_not_equal(timer, 0);
    assert_int_equal(viewer_run(w, vnc), VIEWER_USER_QUIT);
    assert_false(vnc_ended(vnc));

    assert_true(viewer_has_frame(w));
    viewer_render(w); /* the software renderer keeps what it presented: read it back */
    int out_w, out_h;
    ui_size(ui, &out_w, &out_h);
    SDL_Rect centre = {out_w / 2, out_h / 2, 1, 1};
    uint32_t shown = 0;
    SDL_Renderer *r = ui_renderer(ui);
    assert_int_equal(SDL_RenderReadPixels(r, &centre, SDL_PIXELFORMAT_XBGR8888, &shown, 4), 0);
    assert_int_equal(shown & 0xffffffu, COLOUR);

    vnc_free(vnc);
    fake_server_join(&fs);
    assert_string_equal(fs.failure, "");
    viewer_free(w);
    ui_free(ui);
}

int main(void)
{
    /* No display needed. The software renderer draws into the window surface and keeps it
     * after presenting, so the picture can be read back (a GL back buffer could not). */
    setenv("SDL_VIDEODRIVER", "dummy", 1);
    setenv("SDL_RENDER_DRIVER", "software", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_taken_by_caller_loop_is_shown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
