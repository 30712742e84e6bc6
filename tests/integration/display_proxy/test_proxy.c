/*
 * Integration test of the RFB proxy (display/proxy.h) with real components: a real QEMU
 * (TCG, no disk, no network; SeaBIOS shows its boot-failure text screen) with its VNC
 * server on a unix socket, libvncserver inside the proxy, and libvncclient as the user's
 * client.
 *
 * The proxy's client_fd speaks RFB from ClientInit on (the real handshake is vdi-session's
 * job), so the test puts a tiny relay in front of it that plays the pre-auth part for
 * libvncclient: "RFB 003.008", security list [None], SecurityResult OK, then copies bytes
 * both ways, like vdi-session's TLS relay does.
 *
 * What is checked:
 *  - before a VM is attached, the client sees the status screen at the configured size,
 *    background in the corner and text pixels in the middle;
 *  - after proxy_attach_upstream(), a DesktopSize to QEMU's size and a picture equal to
 *    QEMU's own screendump (QMP), for Raw, Hextile, ZRLE, Tight and Tight+JPEG each asked
 *    alone by the client (JPEG with a colour tolerance);
 *  - key events (plain and QEMU extended) reach QEMU's PS/2 keyboard (QEMU trace log);
 *  - an upstream that answers the handshake and then sends garbage ends the proxy with a
 *    reason and the status screen; one that sends garbage or an absurd size during the
 *    handshake makes proxy_attach_upstream fail; neither crashes;
 *  - the clipboard (cut text) both ways with a scripted VM: plain clients (Latin-1),
 *    extended-clipboard clients (UTF-8, as TigerVNC sends it), text copied before the VM
 *    is attached, nothing for view-only; and QEMU keeps working after a ClientCutText;
 *  - a VM with QEMU's extended clipboard (Caps, Notify/Request/Provide, zlib'd UTF-8):
 *    the proxy answers its Caps, sends Notify + Provide, requests what the VM notifies,
 *    and survives hostile clipboard messages (oversized, broken zlib, a zip bomb).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <rfb/keysym.h>
#include <rfb/rfbclient.h>
#include <zlib.h>

#include "extclip.h"
#include "log.h"
#include "proxy.h"
#include "status-screen-internal.h"
#include "util.h"

#define STATUS_W 800
#define STATUS_H 600

/* ---------------------------------------------------------------- QEMU */

static struct {
    char dir[64];
    char vnc[128], qmp[128], trace[128], log[128], shot[128];
    pid_t pid;
    int qmp_fd;
} qemu = {.pid = -1, .qmp_fd = -1};

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

/* Reads one line of QMP (JSON objects end with "\r\n"). */
static int qmp_read_line(char *buf, size_t size)
{
    size_t n = 0;
    uint64_t deadline = now_ms() + 10000;
    while (n + 1 < size) {
        int r = fd_read_full(qemu.qmp_fd, buf + n, 1, deadline);
        if (r < 0)
            return r;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
    return 0;
}

/* Sends a command and waits for its "return" (skipping asynchronous events). */
static int qmp_command(const char *json)
{
    char line[4096];
    int r = fd_write_full(qemu.qmp_fd, json, strlen(json), now_ms() + 5000);
    if (r < 0)
        return r;
    for (;;) {
        r = qmp_read_line(line, sizeof(line));
        if (r < 0)
            return r;
        if (strstr(line, "\"return\""))
            return 0;
        if (strstr(line, "\"error\""))
            return -EIO;
    }
}

struct image {
    int w, h;
    uint8_t *rgb;
};

static int qemu_screendump(struct image *img)
{
    char cmd[256];
    unlink(qemu.shot);
    snprintf(cmd, sizeof(cmd), "{\"execute\":\"screendump\",\"arguments\":{\"filename\":\"%s\"}}\n",
             qemu.shot);
    int r = qmp_command(cmd);
    if (r < 0)
        return r;
    FILE *f = fopen(qemu.shot, "re");
    if (!f)
        return -errno;
    int maxval = 0;
    r = -EINVAL;
    if (fscanf(f, "P6 %d %d %d", &img->w, &img->h, &maxval) == 3 && maxval == 255 &&
        fgetc(f) != EOF && img->w > 0 && img->h > 0 && img->w <= 8192 && img->h <= 8192) {
        size_t n = (size_t)img->w * (size_t)img->h * 3;
        img->rgb = malloc(n);
        if (img->rgb && fread(img->rgb, 1, n, f) == n)
            r = 0;
    }
    fclose(f);
    if (r < 0) {
        free(img->rgb);
        img->rgb = NULL;
    }
    return r;
}

static int count_trace_key_events(void)
{
    FILE *f = fopen(qemu.trace, "re");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, "ps2_keyboard_event"))
            n++;
    fclose(f);
    return n;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    strcpy(qemu.dir, "/tmp/vdi-proxy-test-XXXXXX");
    if (!mkdtemp(qemu.dir))
        return -1;
    snprintf(qemu.vnc, sizeof(qemu.vnc), "%s/vnc.sock", qemu.dir);
    snprintf(qemu.qmp, sizeof(qemu.qmp), "%s/qmp.sock", qemu.dir);
    snprintf(qemu.trace, sizeof(qemu.trace), "%s/trace.log", qemu.dir);
    snprintf(qemu.log, sizeof(qemu.log), "%s/qemu.log", qemu.dir);
    snprintf(qemu.shot, sizeof(qemu.shot), "%s/shot.ppm", qemu.dir);

    char vnc_arg[160], qmp_arg[200], trace_arg[200];
    snprintf(vnc_arg, sizeof(vnc_arg), "unix:%s", qemu.vnc);
    snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", qemu.qmp);
    snprintf(trace_arg, sizeof(trace_arg), "enable=ps2_keyboard_event,file=%s", qemu.trace);

    qemu.pid = fork();
    if (qemu.pid < 0)
        return -1;
    if (qemu.pid == 0) {
        /* QEMU must not outlive a crashed test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(qemu.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(QEMU_BINARY, QEMU_BINARY, "-machine", "pc,accel=tcg", "-nodefaults", "-nic", "none",
              "-vga", "std", "-display", "none", "-vnc", vnc_arg, "-qmp", qmp_arg, "-m", "64",
              "-trace", trace_arg, (char *)NULL);
        _exit(127);
    }

    uint64_t deadline = now_ms() + 15000;
    while (now_ms() < deadline) {
        if (access(qemu.vnc, F_OK) == 0 && (qemu.qmp_fd = connect_unix(qemu.qmp)) >= 0)
            break;
        usleep(50 * 1000);
    }
    if (qemu.qmp_fd < 0) {
        fprintf(stderr, "QEMU did not come up, see %s\n", qemu.log);
        return -1;
    }
    char line[4096];
    if (qmp_read_line(line, sizeof(line)) < 0 ||
        qmp_command("{\"execute\":\"qmp_capabilities\"}\n") < 0)
        return -1;

    /* Wait for SeaBIOS's text screen (720x400) rather than the early graphics mode. */
    deadline = now_ms() + 15000;
    while (now_ms() < deadline) {
        struct image img = {0};
        if (qemu_screendump(&img) == 0) {
            bool text_mode = img.w == 720 && img.h == 400;
            free(img.rgb);
            if (text_mode)
                return 0;
        }
        usleep(100 * 1000);
    }
    fprintf(stderr, "QEMU never reached its 720x400 text screen\n");
    return -1;
}

static int group_teardown(void **state)
{
    (void)state;
    qemu.qmp_fd = safe_close(qemu.qmp_fd);
    if (qemu.pid > 0) {
        kill(qemu.pid, SIGTERM);
        waitpid(qemu.pid, NULL, 0);
    }
    unlink(qemu.vnc);
    unlink(qemu.qmp);
    unlink(qemu.trace);
    unlink(qemu.log);
    unlink(qemu.shot);
    rmdir(qemu.dir);
    return 0;
}

/* ------------------------------------------- relay + libvncclient "user" */

struct relay {
    int outer;    /* libvncclient's view: full RFB 3.8 with security None */
    int proxy_fd; /* the proxy's client_fd: RFB from ClientInit on */
    int stop_fd;
    pthread_t thread;
};

static int relay_preamble(int fd)
{
    uint64_t deadline = now_ms() + 5000;
    char version[12];
    uint8_t types[2] = {1, 1}, choice = 0;
    uint32_t ok = 0;
    if (fd_write_full(fd, "RFB 003.008\n", 12, deadline) < 0 ||
        fd_read_full(fd, version, sizeof(version), deadline) < 0 ||
        fd_write_full(fd, types, sizeof(types), deadline) < 0 ||
        fd_read_full(fd, &choice, 1, deadline) < 0 || choice != 1 ||
        fd_write_full(fd, &ok, sizeof(ok), deadline) < 0)
        return -EPROTO;
    return 0;
}

static bool copy_once(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof(buf));
    if (n <= 0)
        return false;
    return fd_write_full(to, buf, (size_t)n, now_ms() + 10000) == 0;
}

static void *relay_thread(void *arg)
{
    struct relay *r = arg;
    if (relay_preamble(r->outer) < 0)
        goto out;
    for (;;) {
        struct pollfd fds[3] = {{.fd = r->outer, .events = POLLIN},
                                {.fd = r->proxy_fd, .events = POLLIN},
                                {.fd = r->stop_fd, .events = POLLIN}};
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[2].revents)
            break;
        if (fds[0].revents && !copy_once(r->outer, r->proxy_fd))
            break;
        if (fds[1].revents && !copy_once(r->proxy_fd, r->outer))
            break;
    }
out:
    shutdown(r->outer, SHUT_RDWR);
    shutdown(r->proxy_fd, SHUT_RDWR);
    return NULL;
}

struct user {
    struct relay relay;
    rfbClient *c;
    int updates;
    int cursor_w, cursor_h; /* last pointer shape received */
    char *cut;              /* the last ServerCutText (malloc'd), cut_len bytes */
    int cut_len, cuts;
};

static int user_tag;

static void on_finished(rfbClient *c)
{
    struct user *u = rfbClientGetClientData(c, &user_tag);
    u->updates++;
}

static void on_cursor_shape(rfbClient *c, int xhot, int yhot, int w, int h, int bpp)
{
    (void)xhot, (void)yhot, (void)bpp;
    struct user *u = rfbClientGetClientData(c, &user_tag);
    u->cursor_w = w;
    u->cursor_h = h;
    /* libvncclient 0.9.14 leaks the previous mask at the next shape: free them here. */
    free(c->rcSource);
    free(c->rcMask);
    c->rcSource = c->rcMask = NULL;
}

static void on_cut_text(rfbClient *c, const char *text, int len)
{
    struct user *u = rfbClientGetClientData(c, &user_tag);
    free(u->cut);
    u->cut = malloc((size_t)len + 1);
    assert_non_null(u->cut);
    memcpy(u->cut, text, (size_t)len);
    u->cut_len = len;
    u->cuts++;
}

static void user_start(struct user *u, int proxy_fd, const char *encodings, bool jpeg)
{
    int sv[2];
    memset(u, 0, sizeof(*u));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    u->relay.outer = sv[0];
    u->relay.proxy_fd = proxy_fd;
    u->relay.stop_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(u->relay.stop_fd >= 0);
    assert_int_equal(pthread_create(&u->relay.thread, NULL, relay_thread, &u->relay), 0);

    rfbClient *c = rfbGetClient(8, 3, 4);
    assert_non_null(c);
    c->sock = sv[1];
    c->listenSpecified = TRUE;
    c->appData.encodingsString = encodings;
    c->appData.enableJPEG = jpeg;
    c->appData.qualityLevel = jpeg ? 6 : -1;
    c->appData.compressLevel = 6;
    c->appData.useRemoteCursor = TRUE; /* the client draws the pointer (RichCursor) */
    c->GotCursorShape = on_cursor_shape;
    c->canHandleNewFBSize = TRUE;
    c->readTimeout = 10;
    c->FinishedFrameBufferUpdate = on_finished;
    c->GotXCutText = on_cut_text;
    rfbClientSetClientData(c, &user_tag, u);
    assert_true(rfbInitClient(c, NULL, NULL));
    u->c = c;
}

static void user_stop(struct user *u)
{
    if (u->c) {
        free(u->c->frameBuffer);
        u->c->frameBuffer = NULL;
        free(u->c->rcSource); /* libvncclient 0.9.14's cleanup forgets these */
        free(u->c->rcMask);
        u->c->rcSource = u->c->rcMask = NULL;
        rfbClientCleanup(u->c); /* closes its socket */
        u->c = NULL;
    }
    uint64_t one = 1;
    (void)!write(u->relay.stop_fd, &one, sizeof(one));
    pthread_join(u->relay.thread, NULL);
    safe_close(u->relay.outer);
    safe_close(u->relay.stop_fd);
    free(u->cut);
    u->cut = NULL;
}

/* Processes server messages for up to ms; returns false when the connection failed. */
static bool user_pump(struct user *u, int ms)
{
    uint64_t deadline = now_ms() + (uint64_t)ms;
    while (now_ms() < deadline) {
        int n = WaitForMessage(u->c, 20000);
        if (n < 0)
            return false;
        if (n == 0 && u->c->buffered == 0)
            continue;
        do {
            if (!HandleRFBServerMessage(u->c))
                return false;
        } while (u->c->buffered > 0);
    }
    return true;
}

static uint32_t px_rgb(const rfbClient *c, int x, int y)
{
    const uint8_t *p = c->frameBuffer + ((size_t)y * (size_t)c->width + (size_t)x) * 4;
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static int channel_diff(uint32_t a, uint32_t b)
{
    int m = 0;
    for (int s = 0; s < 24; s += 8) {
        int d = abs((int)((a >> s) & 0xff) - (int)((b >> s) & 0xff));
        if (d > m)
            m = d;
    }
    return m;
}

/* With VDI_TEST_DUMP=DIR set, saves the client's picture as DIR/name.ppm for a look. */
static void dump_client(const rfbClient *c, const char *name)
{
    const char *dir = getenv("VDI_TEST_DUMP");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.ppm", dir, name);
    FILE *f = fopen(path, "we");
    if (!f)
        return;
    fprintf(f, "P6\n%d %d\n255\n", c->width, c->height);
    for (int y = 0; y < c->height; y++)
        for (int x = 0; x < c->width; x++) {
            uint32_t v = px_rgb(c, x, y);
            fputc((int)(v >> 16), f);
            fputc((int)(v >> 8) & 0xff, f);
            fputc((int)v & 0xff, f);
        }
    fclose(f);
}

/* Waits for the status screen: the configured size, one colour in the corner and text
 * (pixels of another colour) in the middle third. */
static void expect_status_screen(struct user *u, int tolerance)
{
    uint64_t deadline = now_ms() + 10000;
    long text_pixels = 0;
    while (now_ms() < deadline) {
        assert_true(user_pump(u, 100));
        if (u->updates == 0 || u->c->width != STATUS_W || u->c->height != STATUS_H)
            continue;
        uint32_t bg = px_rgb(u->c, 2, 2);
        text_pixels = 0;
        for (int y = STATUS_H / 3; y < 2 * STATUS_H / 3; y++)
            for (int x = 0; x < STATUS_W; x++)
                if (channel_diff(px_rgb(u->c, x, y), bg) > tolerance)
                    text_pixels++;
        if (text_pixels > 200)
            break;
    }
    dump_client(u->c, "status");
    assert_int_equal(u->c->width, STATUS_W);
    assert_int_equal(u->c->height, STATUS_H);
    assert_true(text_pixels > 200);
}

/* Fraction (per mille) of pixels whose colour differs by more than tolerance. */
static long diff_per_mille(const rfbClient *c, const struct image *img, int tolerance)
{
    long bad = 0;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            const uint8_t *q = img->rgb + ((size_t)y * (size_t)img->w + (size_t)x) * 3;
            uint32_t want = (uint32_t)q[0] << 16 | (uint32_t)q[1] << 8 | q[2];
            if (channel_diff(px_rgb(c, x, y), want) > tolerance)
                bad++;
        }
    return bad * 1000 / ((long)img->w * img->h);
}

/* Waits until the client shows what QEMU shows (a blinking text cursor may differ). */
static void expect_matches_qemu(struct user *u, int tolerance)
{
    uint64_t deadline = now_ms() + 15000;
    long per_mille = 1000;
    int w = 0, h = 0;
    while (now_ms() < deadline) {
        assert_true(user_pump(u, 300));
        struct image img = {0};
        assert_int_equal(qemu_screendump(&img), 0);
        w = img.w;
        h = img.h;
        if (u->c->width == img.w && u->c->height == img.h)
            per_mille = diff_per_mille(u->c, &img, tolerance);
        free(img.rgb);
        if (per_mille <= 5)
            break;
    }
    if (per_mille > 5)
        fprintf(stderr, "client %dx%d vs QEMU %dx%d, %ld per mille differ\n", u->c->width,
                u->c->height, w, h, per_mille);
    dump_client(u->c, "vm");
    assert_int_equal(u->c->width, w);
    assert_int_equal(u->c->height, h);
    assert_true(per_mille <= 5);
}

static struct proxy *new_proxy(int *client_fd)
{
    struct proxy_options opts = {.width = STATUS_W,
                                 .height = STATUS_H,
                                 .desktop_name = "test desktop",
                                 .client_write_timeout_ms = 5000,
                                 .input_wake_ms = 60000};
    struct proxy *p = NULL;
    assert_int_equal(proxy_new(&opts, &p, client_fd), 0);
    assert_non_null(p);
    assert_true(*client_fd >= 0);
    assert_int_equal(proxy_show_status(p, "Starting your desktop..."), 0);
    return p;
}

static bool event_fd_fired(struct proxy *p, int timeout_ms)
{
    struct pollfd pfd = {.fd = proxy_event_fd(p), .events = POLLIN};
    return poll(&pfd, 1, timeout_ms) == 1;
}

/* One user session: status screen, attach QEMU, picture equals QEMU's. */
static void run_session(const char *encodings, bool jpeg, int tolerance, bool check_keys)
{
    int client_fd = -1;
    struct proxy *p = new_proxy(&client_fd);
    struct user u;
    user_start(&u, client_fd, encodings, jpeg);
    assert_string_equal(u.c->desktopName, "test desktop");

    expect_status_screen(&u, tolerance);
    assert_false(event_fd_fired(p, 0));
    /* The proxy's own arrow until the VM sends a shape; never drawn into the picture. */
    assert_int_equal(u.cursor_w, 12);
    assert_int_equal(u.cursor_h, 17);

    int vnc = connect_unix(qemu.vnc);
    assert_true(vnc >= 0);
    assert_int_equal(proxy_attach_upstream(p, vnc), 0);
    assert_int_equal(proxy_show_status(p, "hidden"), -EBUSY);
    expect_matches_qemu(&u, tolerance);

    if (check_keys) {
        fprintf(stderr, "pointer shape after attach: %dx%d\n", u.cursor_w, u.cursor_h);
        int before = count_trace_key_events();
        assert_true(SendKeyEvent(u.c, XK_a, TRUE));
        assert_true(SendKeyEvent(u.c, XK_a, FALSE));
        uint64_t deadline = now_ms() + 5000;
        while (count_trace_key_events() < before + 2 && now_ms() < deadline)
            assert_true(user_pump(&u, 50));
        assert_true(count_trace_key_events() >= before + 2);

        /* QEMU extended key events: libvncclient 0.9.14 does not ask for -258 itself, so
         * ask (keeping Raw); the proxy must acknowledge with a -258 pseudo-rectangle. */
        static const uint8_t set_encodings[] = {
            2,    0,    0,    3,    /* SetEncodings, 3 encodings */
            0,    0,    0,    0,    /* Raw */
            0xff, 0xff, 0xff, 0x21, /* DesktopSize -223 */
            0xff, 0xff, 0xfe, 0xfe, /* QEMU extended key event -258 */
        };
        assert_true(WriteToRFBServer(u.c, (char *)set_encodings, sizeof(set_encodings)));
        deadline = now_ms() + 5000;
        while (!SupportsClient2Server(u.c, rfbQemuEvent) && now_ms() < deadline)
            assert_true(user_pump(&u, 50));
        assert_true(SupportsClient2Server(u.c, rfbQemuEvent));
        before = count_trace_key_events();
        /* keysym 0: only the keycode path can deliver it (the proxy drops keysym-less
         * events when QEMU did not acknowledge -258), so this proves it end to end. */
        assert_true(SendExtendedKeyEvent(u.c, 0, 0x30, TRUE));
        assert_true(SendExtendedKeyEvent(u.c, 0, 0x30, FALSE));
        deadline = now_ms() + 5000;
        while (count_trace_key_events() < before + 2 && now_ms() < deadline)
            assert_true(user_pump(&u, 50));
        assert_true(count_trace_key_events() >= before + 2);

        assert_true(SendPointerEvent(u.c, 10, 10, 0));
        assert_true(user_pump(&u, 100));
    }

    assert_false(event_fd_fired(p, 0));
    assert_null(proxy_end_reason(p));

    /* The user leaves: the proxy notices and says why. */
    user_stop(&u);
    assert_true(event_fd_fired(p, 5000));
    assert_non_null(proxy_end_reason(p));
    assert_string_equal(proxy_end_reason(p), "client disconnected");
    assert_false(proxy_desktop_lost(p));
    proxy_free(p);
    safe_close(client_fd);
}

static void test_raw_and_keys(void **state)
{
    (void)state;
    run_session("raw", false, 0, true);
}

static void test_hextile(void **state)
{
    (void)state;
    run_session("hextile", false, 0, false);
}

static void test_zrle(void **state)
{
    (void)state;
    run_session("zrle", false, 0, false);
}

static void test_tight(void **state)
{
    (void)state;
    run_session("tight", false, 0, false);
}

static void test_tight_jpeg(void **state)
{
    (void)state;
    /* Lossy: compare colours with a tolerance. */
    run_session("tight", true, 64, false);
}

/* ------------------------------------------------------ broken upstreams */

/* A smooth colour gradient: JPEG keeps it close, lossless encodings keep it exact. */
static uint32_t gradient_rgb(int x, int y, int w, int h)
{
    uint32_t r = (uint32_t)(x * 255 / (w - 1));
    uint32_t g = (uint32_t)(y * 255 / (h - 1));
    uint32_t b = (uint32_t)((x + y) * 255 / (w + h - 2));
    return r << 16 | g << 8 | b;
}

struct fake_vm {
    int fd;
    int width, height;
    bool garbage_in_handshake;
    bool picture; /* serve a colour gradient instead of breaking the protocol */
    /* Before the picture, as QEMU when its display changed before the client's SetEncodings
     * was read: the extended key event acknowledgement already of this new size, an empty
     * update, then the size announced with ExtendedDesktopSize, screen id 0; the picture
     * then has that size. 0: no resize. */
    int resize_w, resize_h;
    int again_fd; /* eventfd: serve the gradient again, inverted (fake_vm_send_inverted) */
    bool saw_eof; /* atomic: the proxy closed the connection */
    pthread_t thread;
    /* Clipboard (picture mode): fake_vm_send_cut() sends cut_text as ServerCutText; the
     * proxy's messages are parsed and its last ClientCutText kept (under cut_lock; also
     * cut_text once the VM runs: fake_vm_set_cut_text). */
    const char *cut_text;
    int cut_fd;
    pthread_mutex_t cut_lock;
    char *client_cut;
    size_t client_cut_len;
    unsigned client_cuts;
    unsigned keys;     /* KeyEvents received (under cut_lock) */
    unsigned ext_keys; /* QEMU extended key events received (under cut_lock) */
    /* QEMU's extended clipboard: Caps right after the handshake, Notify(text) instead of
     * plain cut text (the proxy must Request it), Provide(text) answering a Request. A
     * Provide from the proxy is kept in client_cut (the parsed text) like a plain cut. */
    bool ext_clipboard;
    uint32_t ext_actions;        /* under cut_lock: every action bit received (of a Caps
                                    only EXTCLIP_CAPS) */
    uint32_t ext_caps;           /* under cut_lock: the flags of the proxy's last Caps */
    unsigned ext_requests;       /* under cut_lock: Request(text) received */
    uint32_t ext_before_provide; /* under cut_lock: flags of the message before the last
                                    Provide */
    char *client_cut_raw;        /* under cut_lock: that Provide's text exactly as sent */
    size_t client_cut_raw_len;
    uint32_t ext_last; /* fake VM thread only: flags of the last message */
    uint8_t *in;       /* unparsed bytes from the proxy (fake VM thread only) */
    size_t in_len;
    bool parse_error;
};

static uint32_t be32(const uint8_t *b);

#define FAKE_VM_CUT_MAX (1024 * 1024)      /* what the fake VM takes, like QEMU */
#define FAKE_VM_MSG_MAX (16 * 1024 * 1024) /* a larger ClientCutText is a parse error */

/* Length of the client message at b[0..len), 0 when incomplete, -1 when unknown. */
static long client_message_size(const uint8_t *b, size_t len)
{
    switch (b[0]) {
    case 0: /* SetPixelFormat */
        return 20;
    case 2: /* SetEncodings */
        return len < 4 ? 0 : 4 + 4 * (long)(b[2] << 8 | b[3]);
    case 3: /* FramebufferUpdateRequest */
        return 10;
    case 4: /* KeyEvent */
        return 8;
    case 5: /* PointerEvent */
        return 6;
    case 6: { /* ClientCutText; a negative length is the extended clipboard's */
        if (len < 8)
            return 0;
        int32_t length = (int32_t)be32(b + 4);
        int64_t n = length < 0 ? -(int64_t)length : (int64_t)length;
        return n > FAKE_VM_MSG_MAX ? -1 : 8 + (long)n;
    }
    case 255: /* QEMU: only the extended key event (subtype 0) */
        return len < 2 ? 0 : b[1] == 0 ? 12 : -1;
    default:
        return -1;
    }
}

/* The text record of an extended Provide exactly as sent (zlib: u32 size, then the bytes,
 * which must be all), NUL-terminated; NULL when the stream is not one whole record. */
static char *provide_raw_text(const uint8_t *payload, size_t len, size_t *ret_len)
{
    uLongf n = 4 + FAKE_VM_CUT_MAX + 2;
    uint8_t *out = malloc(n);
    if (!out)
        return NULL;
    if (len < 4 || uncompress(out, &n, payload + 4, (uLong)(len - 4)) != Z_OK || n < 4 ||
        be32(out) != n - 4) {
        free(out);
        return NULL;
    }
    memmove(out, out + 4, n - 4);
    out[n - 4] = 0;
    *ret_len = n - 4;
    return (char *)out;
}

/* A copy of the text the VM offers (fake_vm_send_cut, answers to Request). */
static char *fake_vm_cut_text_dup(struct fake_vm *f)
{
    pthread_mutex_lock(&f->cut_lock);
    char *text = f->cut_text ? strdup(f->cut_text) : NULL;
    pthread_mutex_unlock(&f->cut_lock);
    return text;
}

/* An extended ClientCutText from the proxy: payload[0..len) after the negative length. */
static void fake_vm_extclip(struct fake_vm *f, const uint8_t *payload, size_t len)
{
    struct extclip_msg m;
    if (extclip_parse(payload, len, FAKE_VM_CUT_MAX, &m) < 0) {
        f->parse_error = true;
        return;
    }
    uint32_t prev = f->ext_last;
    f->ext_last = m.flags;
    size_t raw_len = 0;
    char *raw = m.text ? provide_raw_text(payload, len, &raw_len) : NULL;
    bool request =
        !(m.flags & EXTCLIP_CAPS) && (m.flags & EXTCLIP_REQUEST) && (m.flags & EXTCLIP_TEXT);

    pthread_mutex_lock(&f->cut_lock);
    if (m.flags & EXTCLIP_CAPS) {
        f->ext_actions |= EXTCLIP_CAPS;
        f->ext_caps = m.flags;
    } else {
        f->ext_actions |= m.flags & 0xff000000u;
    }
    if (request)
        f->ext_requests++;
    if (m.text) {
        free(f->client_cut);
        f->client_cut = m.text;
        f->client_cut_len = m.text_len;
        m.text = NULL;
        free(f->client_cut_raw);
        f->client_cut_raw = raw;
        f->client_cut_raw_len = raw_len;
        f->ext_before_provide = prev;
        f->client_cuts++;
    }
    pthread_mutex_unlock(&f->cut_lock);
    extclip_msg_done(&m);

    if (request) {
        char *text = fake_vm_cut_text_dup(f);
        uint8_t *msg;
        size_t msg_len;
        if (text &&
            extclip_build_provide(rfbServerCutText, text, strlen(text), &msg, &msg_len) == 0) {
            (void)fd_write_full(f->fd, msg, msg_len, now_ms() + 5000);
            free(msg);
        }
        free(text);
    }
}

/* Appends what the proxy sent and takes every complete message out. */
static void fake_vm_feed(struct fake_vm *f, const void *data, size_t n)
{
    uint8_t *in = realloc(f->in, f->in_len + n);
    if (!in) {
        f->parse_error = true;
        return;
    }
    f->in = in;
    memcpy(f->in + f->in_len, data, n);
    f->in_len += n;
    size_t at = 0;
    while (!f->parse_error && at < f->in_len) {
        long size = client_message_size(f->in + at, f->in_len - at);
        if (size < 0) {
            f->parse_error = true;
            break;
        }
        if (size == 0 || (size_t)size > f->in_len - at)
            break;
        if (f->in[at] == 4 || f->in[at] == 255) {
            pthread_mutex_lock(&f->cut_lock);
            *(f->in[at] == 4 ? &f->keys : &f->ext_keys) += 1;
            pthread_mutex_unlock(&f->cut_lock);
        } else if (f->in[at] == 6 && (int32_t)be32(f->in + at + 4) < 0) {
            fake_vm_extclip(f, f->in + at + 8, (size_t)size - 8);
        } else if (f->in[at] == 6) {
            size_t len = (size_t)size - 8;
            char *text = malloc(len + 1);
            if (text) {
                memcpy(text, f->in + at + 8, len);
                text[len] = 0;
                pthread_mutex_lock(&f->cut_lock);
                free(f->client_cut);
                f->client_cut = text;
                f->client_cut_len = len;
                f->client_cuts++;
                pthread_mutex_unlock(&f->cut_lock);
            }
        }
        at += (size_t)size;
    }
    memmove(f->in, f->in + at, f->in_len - at);
    f->in_len -= at;
}

/* Plain: cut_text as Latin-1 ServerCutText. Extended: Notify(text), as QEMU does; the text
 * goes out when the proxy requests it. */
static void fake_vm_send_cut_text(struct fake_vm *f)
{
    uint64_t deadline = now_ms() + 5000;
    if (f->ext_clipboard) {
        uint8_t *msg;
        size_t msg_len;
        int r =
            extclip_build_action(rfbServerCutText, EXTCLIP_NOTIFY | EXTCLIP_TEXT, &msg, &msg_len);
        if (r == 0) {
            (void)fd_write_full(f->fd, msg, msg_len, deadline);
            free(msg);
        }
        return;
    }
    char *text = fake_vm_cut_text_dup(f);
    if (!text)
        return;
    size_t len = strlen(text);
    uint8_t hdr[8] = {
        3, 0, 0, 0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    (void)fd_write_full(f->fd, hdr, sizeof(hdr), deadline);
    (void)fd_write_full(f->fd, text, len, deadline);
    free(text);
}

/* The gradient, or its inverse, as one full-screen Raw FramebufferUpdate. */
static void fake_vm_send_picture(struct fake_vm *f, bool inverted, uint64_t deadline)
{
    size_t n = (size_t)f->width * (size_t)f->height * 4;
    uint8_t *msg = malloc(16 + n);
    if (!msg)
        return;
    static const uint8_t hdr[16] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(msg, hdr, sizeof(hdr));
    msg[8] = (uint8_t)(f->width >> 8);
    msg[9] = (uint8_t)f->width;
    msg[10] = (uint8_t)(f->height >> 8);
    msg[11] = (uint8_t)f->height;
    for (int y = 0; y < f->height; y++)
        for (int x = 0; x < f->width; x++) {
            uint8_t *q = msg + 16 + ((size_t)y * (size_t)f->width + (size_t)x) * 4;
            uint32_t rgb = gradient_rgb(x, y, f->width, f->height);
            if (inverted)
                rgb ^= 0xffffff;
            q[0] = (uint8_t)(rgb >> 16);
            q[1] = (uint8_t)(rgb >> 8);
            q[2] = (uint8_t)rgb;
            q[3] = 0;
        }
    (void)fd_write_full(f->fd, msg, 16 + n, deadline);
    free(msg);
}

static void *fake_vm_thread(void *arg)
{
    struct fake_vm *f = arg;
    uint64_t deadline = now_ms() + 10000;
    char buf[4096];

    if (f->garbage_in_handshake) {
        static const char junk[] = "HTTP/1.1 400 Bad Request\r\n\r\n\xff\xfe\x00garbage";
        (void)fd_write_full(f->fd, junk, sizeof(junk), deadline);
        return NULL;
    }

    uint8_t sec[2] = {1, 1}, choice, shared;
    uint32_t ok = 0;
    if (fd_write_full(f->fd, "RFB 003.008\n", 12, deadline) < 0 ||
        fd_read_full(f->fd, buf, 12, deadline) < 0 ||
        fd_write_full(f->fd, sec, sizeof(sec), deadline) < 0 ||
        fd_read_full(f->fd, &choice, 1, deadline) < 0 ||
        fd_write_full(f->fd, &ok, sizeof(ok), deadline) < 0 ||
        fd_read_full(f->fd, &shared, 1, deadline) < 0)
        return NULL;

    /* ServerInit: size, 32 bpp true colour, name "fake". */
    uint8_t si[24 + 4] = {0};
    si[0] = (uint8_t)(f->width >> 8);
    si[1] = (uint8_t)f->width;
    si[2] = (uint8_t)(f->height >> 8);
    si[3] = (uint8_t)f->height;
    si[4] = 32;
    si[5] = 24;
    si[6] = 0;
    si[7] = 1;
    si[8] = 0, si[9] = 255, si[10] = 0, si[11] = 255, si[12] = 0, si[13] = 255;
    si[14] = 0, si[15] = 8, si[16] = 16; /* the proxy's own format: no SetPixelFormat surprise */
    si[23] = 4;
    memcpy(si + 24, "fake", 4);
    if (fd_write_full(f->fd, si, sizeof(si), deadline) < 0)
        return NULL;

    /* Let the proxy send its SetPixelFormat/SetEncodings/update request. */
    usleep(200 * 1000);
    ssize_t k = read(f->fd, buf, sizeof(buf));
    if (f->picture && k > 0)
        fake_vm_feed(f, buf, (size_t)k);

    if (f->picture && f->ext_clipboard) {
        /* QEMU offers the extended clipboard at once: Caps (all actions, text). */
        uint8_t *msg;
        size_t msg_len;
        if (extclip_build_caps(rfbServerCutText,
                               EXTCLIP_REQUEST | EXTCLIP_PEEK | EXTCLIP_NOTIFY | EXTCLIP_PROVIDE,
                               FAKE_VM_CUT_MAX, &msg, &msg_len) == 0) {
            (void)fd_write_full(f->fd, msg, msg_len, deadline);
            free(msg);
        }
    }

    if (f->picture && f->resize_w > 0) {
        /* One part of the messages a line, each with its comment. */
        /* clang-format off */
        uint8_t msg[16 + 4 + 4 + 12 + 4 + 16] = {
            0, 0, 0, 1, 0, 0, 0, 0, /* FramebufferUpdate, 1 rectangle at 0,0 */
            (uint8_t)(f->resize_w >> 8), (uint8_t)f->resize_w, (uint8_t)(f->resize_h >> 8),
            (uint8_t)f->resize_h, 0xff, 0xff, 0xfe, 0xfe, /* -258, no data */
            0, 0, 0, 0,                                   /* an update without rectangles */
            0, 0, 0, 1,                            /* FramebufferUpdate, 1 rectangle */
            0, 0, 0, 0,                            /* reason 0 (the server's), status 0 */
            (uint8_t)(f->resize_w >> 8), (uint8_t)f->resize_w, (uint8_t)(f->resize_h >> 8),
            (uint8_t)f->resize_h, 0xff, 0xff, 0xfe, 0xcc, /* -308 */
            1, 0, 0, 0,                                   /* 1 screen */
            0, 0, 0, 0, 0, 0, 0, 0,                       /* id 0, at 0,0 */
            (uint8_t)(f->resize_w >> 8), (uint8_t)f->resize_w, (uint8_t)(f->resize_h >> 8),
            (uint8_t)f->resize_h, 0, 0, 0, 0, /* flags */
        };
        /* clang-format on */
        (void)fd_write_full(f->fd, msg, sizeof(msg), deadline);
        f->width = f->resize_w;
        f->height = f->resize_h;
    }

    if (f->picture) {
        fake_vm_send_picture(f, false, deadline);

        /* A 8x10 pointer shape (RichCursor, hotspot 1,2): pixels, then a 1-bit mask. */
        uint8_t cur[16 + 8 * 10 * 4 + 10] = {0, 0, 0, 1,  0,    1,    0,    2,
                                             0, 8, 0, 10, 0xff, 0xff, 0xff, 0x11};
        memset(cur + 16, 0xaa, 8 * 10 * 4);
        memset(cur + 16 + 8 * 10 * 4, 0xf0, 10);
        (void)fd_write_full(f->fd, cur, sizeof(cur), deadline);
        for (;;) {
            struct pollfd fds[3] = {{.fd = f->fd, .events = POLLIN},
                                    {.fd = f->again_fd, .events = POLLIN},
                                    {.fd = f->cut_fd, .events = POLLIN}};
            if (poll(fds, 3, -1) < 0 && errno != EINTR)
                return NULL;
            if (fds[1].revents) {
                uint64_t v;
                (void)!read(f->again_fd, &v, sizeof(v));
                fake_vm_send_picture(f, true, now_ms() + 10000);
            }
            if (fds[2].revents) {
                uint64_t v;
                (void)!read(f->cut_fd, &v, sizeof(v));
                fake_vm_send_cut_text(f);
            }
            if (fds[0].revents) {
                k = read(f->fd, buf, sizeof(buf));
                if (k <= 0) {
                    __atomic_store_n(&f->saw_eof, true, __ATOMIC_RELEASE);
                    return NULL;
                }
                fake_vm_feed(f, buf, (size_t)k);
            }
        }
    }

    /* Break the protocol: message type 0x77 does not exist. */
    uint8_t junk[512];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(0x77 + i * 13);
    (void)fd_write_full(f->fd, junk, sizeof(junk), deadline);
    /* Keep the socket open: the proxy must fail on the bytes, not on EOF. */
    while (read(f->fd, buf, sizeof(buf)) > 0)
        ;
    return NULL;
}

static void fake_vm_start(struct fake_vm *f, int *proxy_side)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f->fd = sv[0];
    *proxy_side = sv[1];
    f->again_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(f->again_fd >= 0);
    f->cut_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(f->cut_fd >= 0);
    pthread_mutex_init(&f->cut_lock, NULL);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_vm_thread, f), 0);
}

static void fake_vm_send_cut(struct fake_vm *f)
{
    uint64_t one = 1;
    assert_int_equal(write(f->cut_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

static void fake_vm_set_cut_text(struct fake_vm *f, const char *text)
{
    pthread_mutex_lock(&f->cut_lock);
    f->cut_text = text;
    pthread_mutex_unlock(&f->cut_lock);
}

/* One of the fake VM's counters (keys, ext_keys, client_cuts), read under cut_lock. */
static unsigned fake_vm_count(struct fake_vm *f, const unsigned *counter)
{
    pthread_mutex_lock(&f->cut_lock);
    unsigned n = *counter;
    pthread_mutex_unlock(&f->cut_lock);
    return n;
}

static void fake_vm_send_inverted(struct fake_vm *f)
{
    uint64_t one = 1;
    assert_int_equal(write(f->again_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

static void fake_vm_stop(struct fake_vm *f)
{
    shutdown(f->fd, SHUT_RDWR);
    pthread_join(f->thread, NULL);
    safe_close(f->fd);
    safe_close(f->again_fd);
    safe_close(f->cut_fd);
    pthread_mutex_destroy(&f->cut_lock);
    free(f->client_cut);
    free(f->client_cut_raw);
    free(f->in);
}

/* A user on the status screen, then a scripted VM attached: the setup most tests share.
 * Split in two because tests act before the attach (copy text, set view-only, ...). */
struct vm_run {
    struct proxy *p;
    int client_fd;
    struct user u;
    struct fake_vm f; /* the VM's script: the caller fills it before vm_run_attach() */
};

static void vm_run_start(struct vm_run *r, const char *encodings, bool jpeg, int status_tolerance)
{
    r->client_fd = -1;
    r->p = new_proxy(&r->client_fd);
    user_start(&r->u, r->client_fd, encodings, jpeg);
    expect_status_screen(&r->u, status_tolerance);
}

static void vm_run_attach(struct vm_run *r)
{
    int vm_fd = -1;
    fake_vm_start(&r->f, &vm_fd);
    assert_int_equal(proxy_attach_upstream(r->p, vm_fd), 0);
}

/* The user leaves and the VM goes away: the proxy must report its end. */
static void vm_run_stop(struct vm_run *r)
{
    user_stop(&r->u);
    fake_vm_stop(&r->f);
    assert_true(event_fd_fired(r->p, 5000));
    proxy_free(r->p);
    safe_close(r->client_fd);
}

static void test_garbage_after_handshake(void **state)
{
    (void)state;
    struct vm_run r;
    vm_run_start(&r, "zrle raw", false, 0);

    r.f = (struct fake_vm){.width = 320, .height = 200};
    vm_run_attach(&r);

    assert_true(event_fd_fired(r.p, 10000));
    const char *reason = proxy_end_reason(r.p);
    assert_non_null(reason);
    assert_true(startswith(reason, "VM display:"));
    assert_true(proxy_desktop_lost(r.p));
    fprintf(stderr, "end reason: %s\n", reason);

    /* The client is still connected and gets the status screen at the VM's size. */
    uint64_t deadline = now_ms() + 5000;
    while (now_ms() < deadline && (r.u.c->width != 320 || px_rgb(r.u.c, 2, 2) == 0))
        assert_true(user_pump(&r.u, 100));
    dump_client(r.u.c, "lost");
    assert_int_equal(r.u.c->width, 320);
    assert_int_equal(r.u.c->height, 200);

    /* Not vm_run_stop(): the proxy's end was checked above, with its reason. */
    user_stop(&r.u);
    fake_vm_stop(&r.f);
    proxy_free(r.p);
    safe_close(r.client_fd);
}

static void attach_must_fail(struct fake_vm *f)
{
    int client_fd = -1, vm_fd = -1;
    struct proxy *p = new_proxy(&client_fd);
    fake_vm_start(f, &vm_fd);
    int r = proxy_attach_upstream(p, vm_fd);
    assert_true(r < 0);
    fprintf(stderr, "attach failed as expected: %s\n", strerror(-r));
    /* The status screen stays usable for the caller's message. */
    assert_int_equal(proxy_show_status(p, "Your desktop could not be started."), 0);
    fake_vm_stop(f);
    proxy_free(p);
    safe_close(client_fd);
}

static void test_garbage_in_handshake(void **state)
{
    (void)state;
    struct fake_vm f = {.garbage_in_handshake = true};
    attach_must_fail(&f);
}

static void test_absurd_size(void **state)
{
    (void)state;
    struct fake_vm f = {.width = 65535, .height = 65535};
    attach_must_fail(&f);
}

/* proxy_free with a client still connected and a VM attached ends everything cleanly. */
static void test_free_while_connected(void **state)
{
    (void)state;
    int client_fd = -1;
    struct proxy *p = new_proxy(&client_fd);
    struct user u;
    user_start(&u, client_fd, "tight", false);
    expect_status_screen(&u, 0);
    int vnc = connect_unix(qemu.vnc);
    assert_true(vnc >= 0);
    assert_int_equal(proxy_attach_upstream(p, vnc), 0);
    assert_true(user_pump(&u, 300));
    proxy_free(p);
    /* The client sees the connection end. */
    bool ended = false;
    uint64_t deadline = now_ms() + 5000;
    while (!ended && now_ms() < deadline)
        ended = !user_pump(&u, 100);
    assert_true(ended);
    user_stop(&u);
    safe_close(client_fd);
}

/* A picture with many colours through each encoding; Tight+JPEG must really be lossy
 * (proof that JPEG was used) yet close. */
static void run_gradient(const char *encodings, bool jpeg)
{
    struct vm_run r;
    vm_run_start(&r, encodings, jpeg, jpeg ? 64 : 0);

    r.f = (struct fake_vm){.width = 320, .height = 200, .picture = true};
    vm_run_attach(&r);

    int max_diff = 256;
    long bad = 0;
    uint64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        assert_true(user_pump(&r.u, 100));
        if (r.u.c->width != r.f.width || r.u.c->height != r.f.height)
            continue;
        max_diff = 0;
        bad = 0;
        for (int y = 0; y < r.f.height; y++)
            for (int x = 0; x < r.f.width; x++) {
                int d =
                    channel_diff(px_rgb(r.u.c, x, y), gradient_rgb(x, y, r.f.width, r.f.height));
                if (d > max_diff)
                    max_diff = d;
                if (d > 24)
                    bad++;
            }
        if (jpeg ? (bad == 0 && max_diff > 0) : max_diff == 0)
            break;
    }
    fprintf(stderr, "%s%s: max colour difference %d\n", encodings, jpeg ? "+jpeg" : "", max_diff);
    assert_int_equal(r.u.c->width, r.f.width);
    assert_int_equal(bad, 0);
    if (jpeg)
        assert_true(max_diff > 0);
    else
        assert_int_equal(max_diff, 0);
    assert_false(event_fd_fired(r.p, 0));

    /* The VM's pointer shape is forwarded to the client. */
    deadline = now_ms() + 5000;
    while (r.u.cursor_w != 8 && now_ms() < deadline)
        assert_true(user_pump(&r.u, 50));
    assert_int_equal(r.u.cursor_w, 8);
    assert_int_equal(r.u.cursor_h, 10);

    vm_run_stop(&r);
}

static void test_gradient_raw(void **state)
{
    (void)state;
    run_gradient("raw", false);
}

static void test_gradient_hextile(void **state)
{
    (void)state;
    run_gradient("hextile", false);
}

static void test_gradient_zrle(void **state)
{
    (void)state;
    run_gradient("zrle", false);
}

static void test_gradient_tight(void **state)
{
    (void)state;
    run_gradient("tight", false);
}

static void test_gradient_tight_jpeg(void **state)
{
    (void)state;
    run_gradient("tight", true);
}

/* ------------------------------------------ view-only, notice banner, close */

static bool fd_readable(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, timeout_ms) == 1;
}

/* A shadowing admin: keys, pointer and cut text are dropped and count as no input. */
static void test_view_only(void **state)
{
    (void)state;
    int client_fd = -1;
    struct proxy *p = new_proxy(&client_fd);
    proxy_set_view_only(p, true);
    struct user u;
    user_start(&u, client_fd, "raw", false);
    expect_status_screen(&u, 0);
    int vnc = connect_unix(qemu.vnc);
    assert_true(vnc >= 0);
    assert_int_equal(proxy_attach_upstream(p, vnc), 0);
    expect_matches_qemu(&u, 0);

    int before = count_trace_key_events();
    assert_true(SendKeyEvent(u.c, XK_b, TRUE));
    assert_true(SendKeyEvent(u.c, XK_b, FALSE));
    assert_true(SendPointerEvent(u.c, 30, 30, 1));
    assert_true(SendPointerEvent(u.c, 31, 30, 0));
    char text[] = "secret";
    assert_true(SendClientCutText(u.c, text, (int)strlen(text)));
    assert_true(user_pump(&u, 1000));
    assert_int_equal(count_trace_key_events(), before);
    assert_true(proxy_last_input_ms(p) == 0);
    assert_false(fd_readable(proxy_input_fd(p), 0));

    /* Not view-only any more: the same keys arrive, count, and wake the input fd. A
     * ClientCutText goes to QEMU first (it takes plain cut text; without a qemu-vdagent
     * it has no guest to give it to), and must not disturb the connection. */
    proxy_set_view_only(p, false);
    char for_qemu[] = "clipboard for QEMU";
    assert_true(SendClientCutText(u.c, for_qemu, (int)strlen(for_qemu)));
    uint64_t t0 = now_ms();
    assert_true(SendKeyEvent(u.c, XK_b, TRUE));
    assert_true(SendKeyEvent(u.c, XK_b, FALSE));
    uint64_t deadline = now_ms() + 5000;
    while (count_trace_key_events() < before + 2 && now_ms() < deadline)
        assert_true(user_pump(&u, 50));
    assert_true(count_trace_key_events() >= before + 2);
    assert_true(proxy_last_input_ms(p) >= t0);
    assert_true(fd_readable(proxy_input_fd(p), 0));
    assert_false(event_fd_fired(p, 0));

    user_stop(&u);
    assert_true(event_fd_fired(p, 5000));
    proxy_free(p);
    safe_close(client_fd);
}

/* ------------------------------------------------------------- clipboard */

static bool wait_vm_cuts(struct user *u, struct fake_vm *f, unsigned n)
{
    uint64_t deadline = now_ms() + 5000;
    while (fake_vm_count(f, &f->client_cuts) < n && now_ms() < deadline)
        if (u)
            assert_true(user_pump(u, 20));
        else
            usleep(20 * 1000);
    return fake_vm_count(f, &f->client_cuts) >= n;
}

static void expect_vm_cut(struct fake_vm *f, const char *want)
{
    pthread_mutex_lock(&f->cut_lock);
    assert_int_equal(f->client_cut_len, strlen(want));
    assert_memory_equal(f->client_cut, want, strlen(want));
    pthread_mutex_unlock(&f->cut_lock);
}

/* Cut text both ways between a plain (Latin-1) client and a scripted VM. */
static void test_clipboard(void **state)
{
    (void)state;
    struct vm_run r;
    vm_run_start(&r, "raw", false, 0);

    /* Copied before the VM's display is attached: sent to it once it is. */
    char early[] = "copied before the desktop started";
    assert_true(SendClientCutText(r.u.c, early, (int)strlen(early)));
    assert_true(user_pump(&r.u, 200));
    static const char vm_text[] = "from the VM: caf\xe9 \xbd";
    r.f = (struct fake_vm){.width = 320, .height = 200, .picture = true, .cut_text = vm_text};
    vm_run_attach(&r);
    assert_true(wait_vm_cuts(&r.u, &r.f, 1));
    expect_vm_cut(&r.f, early);

    /* Client -> VM: Latin-1 bytes unchanged. */
    char text[] = "na\xefve \xbd\nline 2";
    assert_true(SendClientCutText(r.u.c, text, (int)strlen(text)));
    assert_true(wait_vm_cuts(&r.u, &r.f, 2));
    expect_vm_cut(&r.f, text);

    /* VM -> client. */
    fake_vm_send_cut(&r.f);
    uint64_t deadline = now_ms() + 5000;
    while (r.u.cuts < 1 && now_ms() < deadline)
        assert_true(user_pump(&r.u, 20));
    assert_int_equal(r.u.cuts, 1);
    assert_int_equal(r.u.cut_len, (int)strlen(vm_text));
    assert_memory_equal(r.u.cut, vm_text, strlen(vm_text));

    /* View-only (a shadowing admin): neither the watcher's clipboard reaches the VM nor
     * the VM's the watcher. Cut text never counts as input. */
    proxy_set_view_only(r.p, true);
    char secret[] = "secret";
    assert_true(SendClientCutText(r.u.c, secret, (int)strlen(secret)));
    fake_vm_send_cut(&r.f);
    assert_true(user_pump(&r.u, 700));
    assert_int_equal(fake_vm_count(&r.f, &r.f.client_cuts), 2);
    assert_int_equal(r.u.cuts, 1);
    assert_true(proxy_last_input_ms(r.p) == 0);
    assert_false(r.f.parse_error);
    assert_false(event_fd_fired(r.p, 0));

    vm_run_stop(&r);
}

/* vdi-client sends its clipboard as soon as the session starts, before the broker's
 * DESKTOP_READY says the connection is view-only: that text must not reach the VM. */
static void test_clipboard_view_only_set_late(void **state)
{
    (void)state;
    struct vm_run r;
    vm_run_start(&r, "raw", false, 0);
    char text[] = "the admin's clipboard";
    assert_true(SendClientCutText(r.u.c, text, (int)strlen(text)));
    assert_true(user_pump(&r.u, 300));
    proxy_set_view_only(r.p, true);
    r.f = (struct fake_vm){.width = 320, .height = 200, .picture = true};
    vm_run_attach(&r);
    assert_true(user_pump(&r.u, 1000));
    assert_int_equal(fake_vm_count(&r.f, &r.f.client_cuts), 0);
    assert_false(r.f.parse_error);

    vm_run_stop(&r);
}

/* A client with the extended clipboard (TigerVNC, noVNC) sends UTF-8: the VM gets Latin-1,
 * '?' for what Latin-1 lacks. libvncclient 0.9.14 has no extended clipboard, so the test
 * writes the messages itself (and stops reading: it could not parse the server's extended
 * Caps message). */
static void test_clipboard_extended_client(void **state)
{
    (void)state;
    struct vm_run r;
    vm_run_start(&r, "raw", false, 0);
    r.f = (struct fake_vm){.width = 320, .height = 200, .picture = true};
    vm_run_attach(&r);

    /* SetEncodings: Raw and the extended clipboard pseudo-encoding (0xC0A1E5CE). */
    static const uint8_t se[] = {2, 0, 0, 2, 0, 0, 0, 0, 0xc0, 0xa1, 0xe5, 0xce};
    assert_true(WriteToRFBServer(r.u.c, (const char *)se, sizeof(se)));

    /* Provide, text: a zlib stream (one stored block, not final, like TigerVNC's
     * sync-flushed stream) holding the text's size (big-endian, with its NUL) and text. */
    static const char utf8[] = "na\xc3\xafve \xe2\x82\xac \xf0\x9f\x98\x80!";
    uint32_t tlen = sizeof(utf8); /* with the NUL */
    size_t plen = 4 + tlen, zlen = 2 + 5 + plen;
    uint8_t msg[12 + 2 + 5 + 4 + sizeof(utf8)];
    assert_int_equal(sizeof(msg), 12 + zlen);
    uint32_t neg = (uint32_t)0 - (uint32_t)(4 + zlen);
    uint8_t *m = msg;
    *m++ = 6, *m++ = 0, *m++ = 0, *m++ = 0;
    *m++ = (uint8_t)(neg >> 24), *m++ = (uint8_t)(neg >> 16), *m++ = (uint8_t)(neg >> 8);
    *m++ = (uint8_t)neg;
    *m++ = 0x10, *m++ = 0, *m++ = 0, *m++ = 0x01; /* Provide | Text */
    *m++ = 0x78, *m++ = 0x01;                     /* zlib header */
    *m++ = 0x00;                                  /* stored block, not the last */
    *m++ = (uint8_t)plen, *m++ = (uint8_t)(plen >> 8);
    *m++ = (uint8_t)~plen, *m++ = (uint8_t)(~plen >> 8);
    *m++ = (uint8_t)(tlen >> 24), *m++ = (uint8_t)(tlen >> 16), *m++ = (uint8_t)(tlen >> 8);
    *m++ = (uint8_t)tlen;
    memcpy(m, utf8, tlen);
    assert_true(WriteToRFBServer(r.u.c, (const char *)msg, sizeof(msg)));

    assert_true(wait_vm_cuts(NULL, &r.f, 1));
    expect_vm_cut(&r.f, "na\xefve ? ?!");
    assert_false(event_fd_fired(r.p, 0));

    vm_run_stop(&r);
}

/* w x h in the framebuffer format (R, G, B, unused). */
static uint8_t *gradient_picture(int w, int h, bool inverted)
{
    uint8_t *fb = malloc((size_t)w * (size_t)h * 4);
    assert_non_null(fb);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t rgb = gradient_rgb(x, y, w, h) ^ (inverted ? 0xffffffu : 0);
            uint8_t *q = fb + ((size_t)y * (size_t)w + (size_t)x) * 4;
            q[0] = (uint8_t)(rgb >> 16);
            q[1] = (uint8_t)(rgb >> 8);
            q[2] = (uint8_t)rgb;
            q[3] = 0;
        }
    return fb;
}

/* What the proxy draws for a notice (the code vdi-render-status uses too). */
static int overlay_banner(uint8_t *fb, int w, int h, const char *text)
{
    int bh = status_screen_banner_height(w, h, text);
    status_screen_render_banner(fb, w, bh, (size_t)w * 4, text);
    return bh;
}

/* Waits until the client shows exactly want (w x h). */
static void expect_picture(struct user *u, const uint8_t *want, int w, int h, const char *name)
{
    long bad = -1;
    uint64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        assert_true(user_pump(u, 100));
        if (u->c->width != w || u->c->height != h)
            continue;
        bad = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const uint8_t *q = want + ((size_t)y * (size_t)w + (size_t)x) * 4;
                uint32_t rgb = (uint32_t)q[0] << 16 | (uint32_t)q[1] << 8 | q[2];
                if (px_rgb(u->c, x, y) != rgb)
                    bad++;
            }
        if (bad == 0)
            break;
    }
    dump_client(u->c, name);
    if (bad != 0)
        fail_msg("%s: client %dx%d, %ld pixels differ from the expected %dx%d", name, u->c->width,
                 u->c->height, bad, w, h);
}

/* NOTICE: a banner over the VM's picture, kept on top while the VM redraws underneath,
 * removed with the VM's pixels restored exactly. */
static void test_notice_banner(void **state)
{
    (void)state;
    static const char notice[] = "Maintenance at 18:00: please save your work";
    struct vm_run r;
    vm_run_start(&r, "raw", false, 0);
    /* A notice before the VM's display is kept for later, not drawn on the status screen. */
    assert_int_equal(proxy_show_notice(r.p, "early"), 0);
    assert_int_equal(proxy_show_notice(r.p, ""), 0);

    r.f = (struct fake_vm){.width = 320, .height = 200, .picture = true};
    vm_run_attach(&r);
    uint8_t *plain = gradient_picture(r.f.width, r.f.height, false);
    expect_picture(&r.u, plain, r.f.width, r.f.height, "notice-0-vm");

    assert_int_equal(proxy_show_notice(r.p, notice), 0);
    uint8_t *want = gradient_picture(r.f.width, r.f.height, false);
    int bh = overlay_banner(want, r.f.width, r.f.height, notice);
    fprintf(stderr, "banner: %d rows at 320x200\n", bh);
    assert_true(bh > 20 && bh < r.f.height / 2);
    expect_picture(&r.u, want, r.f.width, r.f.height, "notice-1-banner");

    /* The VM redraws the whole screen: the banner stays on top. */
    fake_vm_send_inverted(&r.f);
    uint8_t *inverted = gradient_picture(r.f.width, r.f.height, true);
    memcpy(want, inverted, (size_t)r.f.width * (size_t)r.f.height * 4);
    overlay_banner(want, r.f.width, r.f.height, notice);
    expect_picture(&r.u, want, r.f.width, r.f.height, "notice-2-redrawn");

    /* "" removes it: the VM's current pixels come back. */
    assert_int_equal(proxy_show_notice(r.p, ""), 0);
    expect_picture(&r.u, inverted, r.f.width, r.f.height, "notice-3-removed");
    assert_false(event_fd_fired(r.p, 0));

    free(plain);
    free(want);
    free(inverted);
    vm_run_stop(&r);
}

/* CLOSE while the VM is shown: the VM's display is closed and the reason replaces it at
 * the current size; the proxy itself does not end (the session lingers, then frees it). */
static void test_close_desktop(void **state)
{
    (void)state;
    static const char reason[] = "Your session was taken over by another login.";
    struct vm_run r;
    vm_run_start(&r, "zrle", false, 0);
    r.f = (struct fake_vm){.width = 320, .height = 200, .picture = true};
    vm_run_attach(&r);
    uint8_t *want = gradient_picture(r.f.width, r.f.height, false);
    expect_picture(&r.u, want, r.f.width, r.f.height, "close-0-vm");
    assert_int_equal(proxy_show_notice(r.p, "soon"), 0);

    assert_int_equal(proxy_close_desktop(r.p, reason), 0);
    status_screen_render(want, r.f.width, r.f.height, (size_t)r.f.width * 4, reason);
    expect_picture(&r.u, want, r.f.width, r.f.height, "close-1-reason");
    uint64_t deadline = now_ms() + 5000;
    while (!__atomic_load_n(&r.f.saw_eof, __ATOMIC_ACQUIRE) && now_ms() < deadline)
        usleep(20 * 1000);
    assert_true(__atomic_load_n(&r.f.saw_eof, __ATOMIC_ACQUIRE));
    assert_false(event_fd_fired(r.p, 300));
    assert_null(proxy_end_reason(r.p));
    /* Input after the close goes nowhere; the VM's pixels never come back. */
    assert_true(SendKeyEvent(r.u.c, XK_c, TRUE));
    assert_true(user_pump(&r.u, 300));
    expect_picture(&r.u, want, r.f.width, r.f.height, "close-2-still");

    free(want);
    vm_run_stop(&r);
}

static int count_open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

/* A client that asks for a picture and never reads is dropped after the write timeout. */
static void test_stalled_client(void **state)
{
    (void)state;
    struct proxy_options opts = {.width = 1600, .height = 1200, .client_write_timeout_ms = 1000};
    struct proxy *p = NULL;
    int client_fd = -1;
    assert_int_equal(proxy_new(&opts, &p, &client_fd), 0);
    assert_int_equal(proxy_show_status(p, "Starting your desktop..."), 0);

    /* ClientInit (shared), then a full FramebufferUpdateRequest: 7.7 MB of Raw. */
    static const uint8_t msgs[] = {1, 3,         0,           0,         0,          0,
                                   0, 1600 >> 8, 1600 & 0xff, 1200 >> 8, 1200 & 0xff};
    assert_int_equal(fd_write_full(client_fd, msgs, sizeof(msgs), now_ms() + 2000), 0);
    uint64_t start = now_ms();
    assert_true(event_fd_fired(p, 15000));
    fprintf(stderr, "stalled client dropped after %llu ms\n",
            (unsigned long long)(now_ms() - start));
    assert_string_equal(proxy_end_reason(p), "client disconnected");
    proxy_free(p);
    safe_close(client_fd);
}

static uint16_t be16(const uint8_t *b)
{
    return (uint16_t)(b[0] << 8 | b[1]);
}

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Regression: the VM is attached (800x600 -> 720x400) after the client got ServerInit but
 * before its SetEncodings enabled DesktopSize. libvncserver alone never tells such a
 * client; the proxy must send the current size first in the client's next update. Raw RFB
 * on client_fd, so the order of messages is exactly the test's. */
static void test_resize_before_set_encodings(void **state)
{
    (void)state;
    int client_fd = -1;
    struct proxy *p = new_proxy(&client_fd);
    uint64_t deadline = now_ms() + 10000;

    /* ClientInit (shared), then ServerInit: the status screen's size, then skip the rest. */
    uint8_t shared = 1, si[24];
    assert_int_equal(fd_write_full(client_fd, &shared, 1, deadline), 0);
    assert_int_equal(fd_read_full(client_fd, si, sizeof(si), deadline), 0);
    assert_int_equal(be16(si), STATUS_W);
    assert_int_equal(be16(si + 2), STATUS_H);
    uint32_t name_len = be32(si + 20);
    assert_true(name_len < 256);
    char name[256];
    assert_int_equal(fd_read_full(client_fd, name, name_len, deadline), 0);

    /* The VM's display arrives now: the screen becomes QEMU's size (attach resizes it
     * before returning; -EBUSY from the status screen shows the upstream is live). */
    int vnc = connect_unix(qemu.vnc);
    assert_true(vnc >= 0);
    assert_int_equal(proxy_attach_upstream(p, vnc), 0);
    struct image img = {0};
    assert_int_equal(qemu_screendump(&img), 0);
    free(img.rgb);
    assert_true(img.w != STATUS_W || img.h != STATUS_H);
    assert_int_equal(proxy_show_status(p, "hidden"), -EBUSY);

    /* Only now does the client enable DesktopSize, and ask for the size it knows. */
    static const uint8_t set_encodings[] = {
        2,    0,    0,    2,    /* SetEncodings, 2 encodings */
        0,    0,    0,    0,    /* Raw */
        0xff, 0xff, 0xff, 0x21, /* DesktopSize -223 */
    };
    /* FramebufferUpdateRequest, not incremental, 0,0 800x600 */
    static const uint8_t request[] = {
        3, 0, 0, 0, 0, 0, STATUS_W >> 8, STATUS_W & 0xff, STATUS_H >> 8, STATUS_H & 0xff,
    };
    assert_int_equal(fd_write_full(client_fd, set_encodings, sizeof(set_encodings), deadline), 0);
    assert_int_equal(fd_write_full(client_fd, request, sizeof(request), deadline), 0);

    /* The first server message that is an update (skipping any Bell) must start with a
     * DesktopSize rectangle carrying QEMU's size. */
    uint8_t type = 0;
    do
        assert_int_equal(fd_read_full(client_fd, &type, 1, deadline), 0);
    while (type == 2);
    assert_int_equal(type, 0); /* FramebufferUpdate */
    uint8_t hdr[3], rect[12];
    assert_int_equal(fd_read_full(client_fd, hdr, sizeof(hdr), deadline), 0);
    assert_true(be16(hdr + 1) >= 1);
    assert_int_equal(fd_read_full(client_fd, rect, sizeof(rect), deadline), 0);
    int32_t encoding = (int32_t)be32(rect + 8);
    fprintf(stderr, "first rectangle: %ux%u at %u,%u, encoding %d (QEMU %dx%d)\n", be16(rect + 4),
            be16(rect + 6), be16(rect), be16(rect + 2), (int)encoding, img.w, img.h);
    assert_int_equal(encoding, -223);
    assert_int_equal(be16(rect + 4), img.w);
    assert_int_equal(be16(rect + 6), img.h);

    assert_false(event_fd_fired(p, 0));
    client_fd = safe_close(client_fd);
    assert_true(event_fd_fired(p, 5000));
    assert_string_equal(proxy_end_reason(p), "client disconnected");
    proxy_free(p);
}

/* Regression (seen with QEMU under load): the VM's display changed size after ServerInit.
 * QEMU acknowledged extended key events with a rectangle of the new size, then announced
 * the size with ExtendedDesktopSize, screen id 0; libvncclient 0.9.14 fails on the first
 * and ignores the second. The proxy must take both: the picture of the new size is shown,
 * and extended key events reach the VM. */
static void test_vm_resize_before_set_encodings(void **state)
{
    (void)state;
    struct vm_run r;
    vm_run_start(&r, "raw", false, 0);

    r.f = (struct fake_vm){
        .width = 640, .height = 480, .picture = true, .resize_w = 720, .resize_h = 400};
    vm_run_attach(&r);
    uint8_t *want = gradient_picture(720, 400, false);
    expect_picture(&r.u, want, 720, 400, "vm-resized");
    free(want);

    /* keysym 0: only the keycode path can deliver it, when the VM's acknowledgement
     * counted (the proxy drops keysym-less events otherwise). */
    static const uint8_t set_encodings[] = {
        2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xfe, 0xfe, /* Raw, QEMU extended key -258 */
    };
    assert_true(WriteToRFBServer(r.u.c, (char *)set_encodings, sizeof(set_encodings)));
    uint64_t deadline = now_ms() + 5000;
    while (!SupportsClient2Server(r.u.c, rfbQemuEvent) && now_ms() < deadline)
        assert_true(user_pump(&r.u, 50));
    assert_true(SendExtendedKeyEvent(r.u.c, 0, 0x30, TRUE));
    assert_true(SendExtendedKeyEvent(r.u.c, 0, 0x30, FALSE));
    while (fake_vm_count(&r.f, &r.f.ext_keys) < 2 && now_ms() < deadline)
        assert_true(user_pump(&r.u, 50));
    assert_int_equal(fake_vm_count(&r.f, &r.f.ext_keys), 2);
    assert_false(event_fd_fired(r.p, 0));

    vm_run_stop(&r);
}

/* ------------------------------------------------ extended clipboard VM */

/* One ServerCutText with a negative length: payload[0..len) after it. */
static uint8_t *extended_cut(const uint8_t *payload, size_t len, size_t *ret_len)
{
    uint8_t *msg = calloc(1, 8 + len);
    assert_non_null(msg);
    uint32_t neg = (uint32_t)0 - (uint32_t)len;
    msg[0] = 3;
    msg[4] = (uint8_t)(neg >> 24), msg[5] = (uint8_t)(neg >> 16), msg[6] = (uint8_t)(neg >> 8);
    msg[7] = (uint8_t)neg;
    if (len)
        memcpy(msg + 8, payload, len);
    *ret_len = 8 + len;
    return msg;
}

/* A Provide(text) payload: flags, then zdata[0..zlen). */
static uint8_t *provide_payload(const uint8_t *zdata, size_t zlen, size_t *ret_len)
{
    uint8_t *payload = malloc(4 + zlen);
    assert_non_null(payload);
    uint32_t flags = EXTCLIP_PROVIDE | EXTCLIP_TEXT;
    payload[0] = (uint8_t)(flags >> 24), payload[1] = (uint8_t)(flags >> 16);
    payload[2] = (uint8_t)(flags >> 8), payload[3] = (uint8_t)flags;
    memcpy(payload + 4, zdata, zlen);
    *ret_len = 4 + zlen;
    return payload;
}

/* The zlib stream of record[0..len), compress() as QEMU does. */
static uint8_t *zlib_of(const uint8_t *record, size_t len, size_t *ret_len)
{
    uLongf zlen = compressBound((uLong)len);
    uint8_t *z = malloc(zlen);
    assert_non_null(z);
    assert_int_equal(compress(z, &zlen, record, (uLong)len), Z_OK);
    *ret_len = zlen;
    return z;
}

/* After a hostile message from the VM: the proxy is still there, and the clipboard (a new
 * VM text, Notify -> Request -> Provide), keys and the connection to the user still work. */
static void expect_alive(struct proxy *p, struct user *u, struct fake_vm *f, const char *what,
                         const char *utf8, const char *latin1)
{
    fprintf(stderr, "after %s\n", what);
    assert_true(user_pump(u, 200));
    assert_false(event_fd_fired(p, 0));
    assert_null(proxy_end_reason(p));

    int cuts = u->cuts;
    fake_vm_set_cut_text(f, utf8);
    fake_vm_send_cut(f);
    uint64_t deadline = now_ms() + 5000;
    while (u->cuts == cuts && now_ms() < deadline)
        assert_true(user_pump(u, 20));
    assert_int_equal(u->cuts, cuts + 1);
    assert_int_equal(u->cut_len, (int)strlen(latin1));
    assert_memory_equal(u->cut, latin1, strlen(latin1));

    unsigned keys = fake_vm_count(f, &f->keys);
    assert_true(SendKeyEvent(u->c, XK_k, TRUE));
    assert_true(SendKeyEvent(u->c, XK_k, FALSE));
    deadline = now_ms() + 5000;
    while (fake_vm_count(f, &f->keys) < keys + 2 && now_ms() < deadline)
        assert_true(user_pump(u, 20));
    assert_true(fake_vm_count(f, &f->keys) >= keys + 2);
    assert_false(f->parse_error);
    assert_false(event_fd_fired(p, 0));
}

static void vm_write(struct fake_vm *f, const void *msg, size_t len)
{
    assert_int_equal(fd_write_full(f->fd, msg, len, now_ms() + 10000), 0);
}

/* A VM with QEMU's extended clipboard (UTF-8): Caps answered with Caps; the client's text
 * goes as Notify + Provide (UTF-8, LF line ends, no NUL); the VM's Notify is answered with
 * Request, its Provide reaches a plain client as Latin-1. Hostile clipboard messages from
 * the VM are dropped without ending the connection. */
static void test_clipboard_extended_vm(void **state)
{
    (void)state;
    struct vm_run r;
    vm_run_start(&r, "raw", false, 0);
    static const char vm_text[] = "from the VM: caf\xc3\xa9 \xe2\x82\xac";
    r.f = (struct fake_vm){
        .width = 320, .height = 200, .picture = true, .ext_clipboard = true, .cut_text = vm_text};
    vm_run_attach(&r);
    uint8_t *want = gradient_picture(r.f.width, r.f.height, false);
    expect_picture(&r.u, want, r.f.width, r.f.height, "extclip-0-vm");
    free(want);

    /* The proxy answers the VM's Caps with its own: text, and the actions it takes. */
    uint64_t deadline = now_ms() + 5000;
    uint32_t actions = 0, caps = 0;
    while (now_ms() < deadline) {
        pthread_mutex_lock(&r.f.cut_lock);
        actions = r.f.ext_actions;
        caps = r.f.ext_caps;
        pthread_mutex_unlock(&r.f.cut_lock);
        if (actions & EXTCLIP_CAPS)
            break;
        assert_true(user_pump(&r.u, 20));
    }
    fprintf(stderr, "proxy's caps: 0x%08x\n", caps);
    assert_true(actions & EXTCLIP_CAPS);
    assert_int_equal(caps & (EXTCLIP_TEXT | EXTCLIP_NOTIFY | EXTCLIP_PROVIDE | EXTCLIP_REQUEST),
                     EXTCLIP_TEXT | EXTCLIP_NOTIFY | EXTCLIP_PROVIDE | EXTCLIP_REQUEST);

    /* Client (Latin-1) -> VM: Notify, then Provide with UTF-8, CR LF -> LF, no NUL. */
    char text[] = "caf\xe9 \xbd\r\nline 2";
    static const char text_utf8[] = "caf\xc3\xa9 \xc2\xbd\nline 2";
    assert_true(SendClientCutText(r.u.c, text, (int)strlen(text)));
    assert_true(wait_vm_cuts(&r.u, &r.f, 1));
    expect_vm_cut(&r.f, text_utf8);
    pthread_mutex_lock(&r.f.cut_lock);
    actions = r.f.ext_actions;
    uint32_t before_provide = r.f.ext_before_provide;
    char *raw = r.f.client_cut_raw ? strdup(r.f.client_cut_raw) : NULL;
    size_t raw_len = r.f.client_cut_raw_len;
    pthread_mutex_unlock(&r.f.cut_lock);
    assert_true(actions & EXTCLIP_NOTIFY);
    assert_true(actions & EXTCLIP_PROVIDE);
    assert_int_equal(before_provide, EXTCLIP_NOTIFY | EXTCLIP_TEXT);
    assert_non_null(raw); /* one whole zlib stream with one record */
    if (raw_len != strlen(text_utf8) || memcmp(raw, text_utf8, raw_len) != 0) {
        fprintf(stderr, "Provide's text as sent (%zu bytes):", raw_len);
        for (size_t i = 0; i < raw_len; i++)
            fprintf(stderr, " %02x", (uint8_t)raw[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(raw_len, strlen(text_utf8));
    assert_memory_equal(raw, text_utf8, raw_len);
    free(raw);

    /* VM -> client: Notify, the proxy requests, the VM provides; Latin-1 for libvncclient. */
    fake_vm_send_cut(&r.f);
    deadline = now_ms() + 5000;
    while (r.u.cuts < 1 && now_ms() < deadline)
        assert_true(user_pump(&r.u, 20));
    assert_int_equal(r.u.cuts, 1);
    static const char vm_latin1[] = "from the VM: caf\xe9 ?";
    assert_int_equal(r.u.cut_len, (int)strlen(vm_latin1));
    assert_memory_equal(r.u.cut, vm_latin1, strlen(vm_latin1));
    pthread_mutex_lock(&r.f.cut_lock);
    unsigned requests = r.f.ext_requests;
    pthread_mutex_unlock(&r.f.cut_lock);
    assert_int_equal(requests, 1);
    assert_false(r.f.parse_error);

    /* Hostile messages, written here while the VM thread is idle. */
    size_t len, plen, zlen;
    uint8_t *msg, *payload, *z;

    /* (a) A Provide over EXTCLIP_PAYLOAD_MAX(1 MiB): 2 MiB + 1 bytes, read and skipped. */
    plen = 2 * 1024 * 1024 + 1;
    payload = calloc(1, plen);
    assert_non_null(payload);
    payload[0] = (uint8_t)((EXTCLIP_PROVIDE | EXTCLIP_TEXT) >> 24);
    payload[3] = (uint8_t)EXTCLIP_TEXT;
    msg = extended_cut(payload, plen, &len);
    vm_write(&r.f, msg, len);
    free(msg);
    free(payload);
    expect_alive(r.p, &r.u, &r.f, "an oversized Provide", "after (a) \xc3\xa0", "after (a) \xe0");

    /* (b) A Provide whose zlib data is garbage. */
    static const uint8_t garbage[] = "this is not a zlib stream \x01\x02\x03\xff\xfe";
    payload = provide_payload(garbage, sizeof(garbage), &plen);
    msg = extended_cut(payload, plen, &len);
    vm_write(&r.f, msg, len);
    free(msg);
    free(payload);
    expect_alive(r.p, &r.u, &r.f, "a Provide with broken zlib", "after (b)", "after (b)");

    /* (b2) A whole zlib stream shorter than the size its record declares. */
    static const uint8_t short_record[] = {0, 0, 0, 100, 's', 'h', 'o', 'r', 't'};
    z = zlib_of(short_record, sizeof(short_record), &zlen);
    payload = provide_payload(z, zlen, &plen);
    msg = extended_cut(payload, plen, &len);
    vm_write(&r.f, msg, len);
    free(msg);
    free(payload);
    free(z);
    expect_alive(r.p, &r.u, &r.f, "a Provide shorter than declared", "after (b2)", "after (b2)");

    /* (b3) Shorter than its flags. */
    static const uint8_t two[] = {0x10, 0};
    msg = extended_cut(two, sizeof(two), &len);
    vm_write(&r.f, msg, len);
    free(msg);
    expect_alive(r.p, &r.u, &r.f, "a 2-byte extended message", "after (b3)", "after (b3)");

    /* (c) A zip bomb: a few KiB that inflate to 4 MiB of zeros, declared as such. */
    size_t bomb = 4 * 1024 * 1024;
    uint8_t *record = calloc(1, 4 + bomb);
    assert_non_null(record);
    record[0] = (uint8_t)(bomb >> 24), record[1] = (uint8_t)(bomb >> 16);
    record[2] = (uint8_t)(bomb >> 8), record[3] = (uint8_t)bomb;
    z = zlib_of(record, 4 + bomb, &zlen);
    free(record);
    fprintf(stderr, "zip bomb: %zu bytes of zlib for %zu bytes\n", zlen, 4 + bomb);
    assert_true(zlen < EXTCLIP_PAYLOAD_MAX(1024 * 1024));
    payload = provide_payload(z, zlen, &plen);
    msg = extended_cut(payload, plen, &len);
    vm_write(&r.f, msg, len);
    free(msg);
    free(payload);
    free(z);
    expect_alive(r.p, &r.u, &r.f, "a zip bomb", "after (c) \xe2\x82\xac", "after (c) ?");

    /* (d) Plain ServerCutText of 1 MiB + 1 bytes: over PROXY_CUT_TEXT_MAX, skipped. */
    size_t big = 1024 * 1024 + 1;
    msg = malloc(8 + big);
    assert_non_null(msg);
    msg[0] = 3, msg[1] = msg[2] = msg[3] = 0;
    msg[4] = (uint8_t)(big >> 24), msg[5] = (uint8_t)(big >> 16), msg[6] = (uint8_t)(big >> 8);
    msg[7] = (uint8_t)big;
    memset(msg + 8, 'x', big);
    vm_write(&r.f, msg, 8 + big);
    free(msg);
    expect_alive(r.p, &r.u, &r.f, "a plain 1 MiB + 1 cut text", "after (d)", "after (d)");
    assert_int_equal(r.u.cuts, 7); /* none of the hostile messages reached the user */

    /* The VM's display still flows. */
    fake_vm_send_inverted(&r.f);
    want = gradient_picture(r.f.width, r.f.height, true);
    expect_picture(&r.u, want, r.f.width, r.f.height, "extclip-1-inverted");
    free(want);
    assert_false(r.f.parse_error);
    assert_false(event_fd_fired(r.p, 0));

    vm_run_stop(&r);
}

int main(void)
{
    if (getenv("VDI_TEST_DEBUG"))
        log_set_level(LOG_LEVEL_DEBUG);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_and_keys),
        cmocka_unit_test(test_hextile),
        cmocka_unit_test(test_zrle),
        cmocka_unit_test(test_tight),
        cmocka_unit_test(test_tight_jpeg),
        cmocka_unit_test(test_garbage_after_handshake),
        cmocka_unit_test(test_garbage_in_handshake),
        cmocka_unit_test(test_absurd_size),
        cmocka_unit_test(test_free_while_connected),
        cmocka_unit_test(test_gradient_raw),
        cmocka_unit_test(test_gradient_hextile),
        cmocka_unit_test(test_gradient_zrle),
        cmocka_unit_test(test_gradient_tight),
        cmocka_unit_test(test_gradient_tight_jpeg),
        cmocka_unit_test(test_stalled_client),
        cmocka_unit_test(test_resize_before_set_encodings),
        cmocka_unit_test(test_vm_resize_before_set_encodings),
        cmocka_unit_test(test_view_only),
        cmocka_unit_test(test_notice_banner),
        cmocka_unit_test(test_close_desktop),
        cmocka_unit_test(test_clipboard),
        cmocka_unit_test(test_clipboard_view_only_set_late),
        cmocka_unit_test(test_clipboard_extended_client),
        cmocka_unit_test(test_clipboard_extended_vm),
    };
    int fds_before = count_open_fds();
    int r = cmocka_run_group_tests(tests, group_setup, group_teardown);
    int fds_after = count_open_fds();
    if (fds_after != fds_before) {
        fprintf(stderr, "fd leak: %d open before, %d after\n", fds_before, fds_after);
        return 1;
    }
    return r;
}
