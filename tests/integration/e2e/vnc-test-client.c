/*
 * vnc-test-client: a scriptable VNC client for the end-to-end tests.
 *
 * The "session" command logs in through libvncclient's own VeNCrypt X509Plain code (a
 * third-party implementation: it checks the server certificate against --ca and the
 * host name), then runs the actions given on the command line in order. The "raw-*"
 * commands speak just enough RFB on a plain socket to test what a hostile or broken
 * client gets. "compare" compares two images.
 *
 *   vnc-test-client session HOST:PORT --ca FILE --user U (--password P | --password-file F)
 *                   [--security vencrypt|none|vncauth] [--timeout S] [--encodings E]
 *                   [--quality N] [--source ADDR] [ACTION]...
 *     --encodings E        libvncclient's encodings string (default: its own list, Tight
 *                          first)
 *     --quality N          0..9: allow lossy JPEG in Tight at this quality. Without it no
 *                          quality level is sent, so the server never uses JPEG and every
 *                          picture is lossless: saved frames compare exactly with
 *                          vdi-render-status output
 *     --source ADDR        connect from this local address (e.g. 127.0.0.2: another
 *                          "client" as the server sees it); the socket is bound and
 *                          connected here, then handed to libvncclient
 *     --settle MS          wait until the picture has not changed for MS milliseconds
 *     --wait-file F:TEXT   wait until file F contains TEXT (the connection stays serviced)
 *     --wait-size WxH      wait until the framebuffer has this size
 *     --expect P[:TOL]     wait until the framebuffer matches image P (PPM/PGM) with at
 *                          most TOL differing pixels (default 0)
 *     --type TEXT          type TEXT as key events; "\n" is Return, "\\" a backslash
 *     --sleep MS           keep servicing the connection for MS milliseconds
 *     --wait-closed MS     keep servicing until the server closes the connection (prints
 *                          "closed: after N ms"); exit 6 when it is still open after MS.
 *                          Later --save/--expect use the last picture received before the
 *                          close (e.g. the reason screen); other actions then fail (exit 2)
 *     --save FILE          write the framebuffer as a binary PPM
 *   vnc-test-client raw-security HOST:PORT [--choose N] [--timeout S] [--source ADDR]
 *     prints "version: ...", "security-types: 19 ..." and with --choose, sends type N even
 *     when it was not offered and prints "result: accepted" or "result: refused[: reason]"
 *   vnc-test-client raw-stall HOST:PORT [--timeout S] [--source ADDR]
 *     connects, sends nothing, prints "closed-after-ms: N" when the server hangs up
 *   vnc-test-client raw-garbage HOST:PORT [--timeout S] [--source ADDR]
 *     reads the server version, sends garbage, prints "closed-after-ms: N"
 *   vnc-test-client compare A B [--tolerance N] [--fuzz N] [--find]
 *     prints "differing-pixels: N" (pixels where a channel differs by more than the fuzz,
 *     default 24); with --find, B is searched inside A (e.g. a viewer's window in a
 *     screenshot of the whole X screen) and "offset: X,Y" is printed
 *
 * Exit codes: 0 ok, 1 usage or local error, 2 connection or protocol failure,
 * 3 authentication failed (credentials sent, server said no), 4 security type refused,
 * 5 TLS or certificate failure, 6 a wait/expectation did not come true in time,
 * 7 overall timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <rfb/keysym.h>
#include <rfb/rfbclient.h>

enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1,
    EXIT_CONNECT = 2,
    EXIT_AUTH = 3,
    EXIT_SECURITY = 4,
    EXIT_TLS = 5,
    EXIT_EXPECT = 6,
    EXIT_TIMEOUT = 7,
};

/* In the sanitizer build this tool is instrumented too; the leaks LeakSanitizer finds in
 * it are libvncclient's and GnuTLS's (the reference client, not vdi code), so leak
 * checking is off for this program only. Unused without ASan. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}

/* ---- small helpers ----------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((noreturn, format(printf, 2, 3))) static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vnc-test-client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "vnc-test-client: overall timeout\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)r;
    _exit(EXIT_TIMEOUT);
}

static void set_deadline(int seconds)
{
    signal(SIGALRM, on_alarm);
    alarm((unsigned)seconds);
}

static char *read_file_trimmed(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        die(EXIT_USAGE, "cannot open %s: %s", path, strerror(errno));
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return strdup(buf);
}

static void split_host_port(const char *arg, char **host, int *port)
{
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg)
        die(EXIT_USAGE, "expected HOST:PORT, got '%s'", arg);
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535)
        die(EXIT_USAGE, "bad port in '%s'", arg);
    *host = strndup(arg, (size_t)(colon - arg));
    *port = (int)p;
}

/* ---- images ------------------------------------------------------------------------- */

struct image {
    int w, h;
    uint8_t *rgb; /* w * h * 3 */
};

static int ppm_token(FILE *f)
{
    int c, v = 0, digits = 0;
    while ((c = fgetc(f)) != EOF) {
        if (c == '#') {
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            continue;
        }
        if (c >= '0' && c <= '9') {
            v = v * 10 + (c - '0');
            digits++;
            if (v > 100000)
                return -1;
        } else if (digits) {
            return v;
        }
    }
    return digits ? v : -1;
}

/* Reads a binary PPM (P6) or PGM (P5) with maxval 255. */
static bool image_load(const char *path, struct image *img)
{
    FILE *f = fopen(path, "rbe");
    if (!f)
        return false;
    char magic[2];
    bool ok = false;
    if (fread(magic, 1, 2, f) == 2 && magic[0] == 'P' && (magic[1] == '5' || magic[1] == '6')) {
        int w = ppm_token(f), h = ppm_token(f), max = ppm_token(f);
        if (w > 0 && h > 0 && max == 255 && (size_t)w * (size_t)h <= 64u * 1024 * 1024) {
            size_t n = (size_t)w * (size_t)h, ch = magic[1] == '6' ? 3 : 1;
            uint8_t *raw = malloc(n * ch);
            img->rgb = malloc(n * 3);
            if (raw && img->rgb && fread(raw, ch, n, f) == n) {
                for (size_t i = 0; i < n; i++)
                    for (size_t c = 0; c < 3; c++)
                        img->rgb[i * 3 + c] = raw[i * ch + (ch == 3 ? c : 0)];
                img->w = w;
                img->h = h;
                ok = true;
            }
            free(raw);
            if (!ok) {
                free(img->rgb);
                img->rgb = NULL;
            }
        }
    }
    fclose(f);
    return ok;
}

static bool image_save(const char *path, const struct image *img)
{
    FILE *f = fopen(path, "wbe");
    if (!f)
        return false;
    fprintf(f, "P6\n%d %d\n255\n", img->w, img->h);
    size_t n = (size_t)img->w * (size_t)img->h * 3;
    bool ok = fwrite(img->rgb, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Per-channel slack: a little for colour conversions; compare --fuzz raises it for
 * lossy (JPEG) pictures. */
static int pixel_fuzz = 24;

static bool pixel_differs(const uint8_t *a, const uint8_t *b)
{
    for (int c = 0; c < 3; c++)
        if (abs((int)a[c] - (int)b[c]) > pixel_fuzz)
            return true;
    return false;
}

/* Pixels of b that differ from a at offset (ox, oy); b must fit inside a there. Stops
 * counting above limit. */
static long image_diff_at(const struct image *a, const struct image *b, int ox, int oy, long limit)
{
    long diff = 0;
    for (int y = 0; y < b->h; y++)
        for (int x = 0; x < b->w; x++) {
            const uint8_t *pa = a->rgb + ((size_t)(y + oy) * a->w + (x + ox)) * 3;
            const uint8_t *pb = b->rgb + ((size_t)y * b->w + x) * 3;
            if (pixel_differs(pa, pb) && ++diff > limit)
                return diff;
        }
    return diff;
}

static long image_diff(const struct image *a, const struct image *b)
{
    if (a->w != b->w || a->h != b->h)
        return -1;
    return image_diff_at(a, b, 0, 0, (long)a->w * a->h);
}

/* Finds b inside a with at most tol differing pixels: tries the offsets where a few
 * distinctive pixels of b match first, then checks the whole picture. */
static bool image_find(const struct image *a, const struct image *b, long tol, int *rx, int *ry,
                       long *rdiff)
{
    if (b->w > a->w || b->h > a->h)
        return false;
    enum { NPROBE = 64 };
    int px[NPROBE], py[NPROBE], np = 0;
    const uint8_t *bg = b->rgb;
    for (int y = 0; y < b->h && np < NPROBE; y += 3)
        for (int x = 0; x < b->w && np < NPROBE; x += 5)
            if (pixel_differs(b->rgb + ((size_t)y * b->w + x) * 3, bg)) {
                px[np] = x;
                py[np] = y;
                np++;
            }
    long best = -1;
    for (int oy = 0; oy + b->h <= a->h; oy++)
        for (int ox = 0; ox + b->w <= a->w; ox++) {
            int miss = 0;
            for (int i = 0; i < np && miss <= np / 8; i++)
                if (pixel_differs(a->rgb + ((size_t)(oy + py[i]) * a->w + ox + px[i]) * 3,
                                  b->rgb + ((size_t)py[i] * b->w + px[i]) * 3))
                    miss++;
            if (miss > np / 8)
                continue;
            long d = image_diff_at(a, b, ox, oy, tol);
            if (d <= tol && (best < 0 || d < best)) {
                best = d;
                *rx = ox;
                *ry = oy;
                if (d == 0)
                    goto done;
            }
        }
done:
    *rdiff = best;
    return best >= 0;
}

/* ---- libvncclient session ----------------------------------------------------------- */

static struct {
    const char *ca, *user;
    char *password;
    bool asked_x509, asked_user;
    char reason[1024];
    char last_log[1024];
    uint8_t *ref; /* the picture at the last change */
    int ref_w, ref_h;
    int64_t last_change_ms;
    long updates;
    bool closed; /* the server closed the connection (--wait-closed) */
} st;

__attribute__((format(printf, 1, 2))) static void client_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    line[strcspn(line, "\n")] = '\0';
    if (getenv("VNC_TEST_VERBOSE"))
        fprintf(stderr, "libvncclient: %s\n", line);
    snprintf(st.last_log, sizeof(st.last_log), "%s", line);
    static const char failed[] = "VNC connection failed: ";
    if (strncmp(line, failed, sizeof(failed) - 1) == 0)
        snprintf(st.reason, sizeof(st.reason), "%s", line + sizeof(failed) - 1);
}

static rfbCredential *get_credential(rfbClient *client, int type)
{
    (void)client;
    rfbCredential *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (type == rfbCredentialTypeX509) {
        st.asked_x509 = true;
        c->x509Credential.x509CACertFile = strdup(st.ca);
        c->x509Credential.x509CrlVerifyMode = rfbX509CrlVerifyNone;
        return c;
    }
    if (type == rfbCredentialTypeUser) {
        st.asked_user = true;
        c->userCredential.username = strdup(st.user ? st.user : "");
        c->userCredential.password = strdup(st.password ? st.password : "");
        return c;
    }
    free(c);
    return NULL;
}

static char *get_password(rfbClient *client)
{
    (void)client;
    return strdup(st.password ? st.password : "");
}

/* A change is more than SETTLE_PIXELS pixels differing from the picture at the last
 * change, or a new size: a blinking text cursor does not count, new text does. */
#define SETTLE_PIXELS 200

static void finished_update(rfbClient *cl)
{
    st.updates++;
    size_t bpp = (size_t)cl->format.bitsPerPixel / 8, n = (size_t)cl->width * cl->height;
    if (cl->width != st.ref_w || cl->height != st.ref_h || !st.ref) {
        free(st.ref);
        st.ref = malloc(n * bpp);
        if (!st.ref)
            die(EXIT_USAGE, "out of memory");
        st.ref_w = cl->width;
        st.ref_h = cl->height;
        memcpy(st.ref, cl->frameBuffer, n * bpp);
        st.last_change_ms = now_ms();
        return;
    }
    long diff = 0;
    for (size_t i = 0; i < n && diff <= SETTLE_PIXELS; i++)
        if (memcmp(st.ref + i * bpp, cl->frameBuffer + i * bpp, bpp))
            diff++;
    if (diff > SETTLE_PIXELS) {
        memcpy(st.ref, cl->frameBuffer, n * bpp);
        st.last_change_ms = now_ms();
    }
}

static void fb_to_image(rfbClient *cl, struct image *img)
{
    size_t n = (size_t)cl->width * cl->height;
    img->w = cl->width;
    img->h = cl->height;
    img->rgb = realloc(img->rgb, n * 3);
    if (!img->rgb)
        die(EXIT_USAGE, "out of memory");
    const rfbPixelFormat *f = &cl->format;
    int bpp = f->bitsPerPixel / 8;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = cl->frameBuffer + i * bpp;
        uint32_t v = 0;
        for (int b = 0; b < bpp; b++)
            v |= (uint32_t)p[b] << (f->bigEndian ? 8 * (bpp - 1 - b) : 8 * b);
        uint32_t r = (v >> f->redShift) & f->redMax, g = (v >> f->greenShift) & f->greenMax,
                 bl = (v >> f->blueShift) & f->blueMax;
        img->rgb[i * 3 + 0] = (uint8_t)(f->redMax ? r * 255 / f->redMax : 0);
        img->rgb[i * 3 + 1] = (uint8_t)(f->greenMax ? g * 255 / f->greenMax : 0);
        img->rgb[i * 3 + 2] = (uint8_t)(f->blueMax ? bl * 255 / f->blueMax : 0);
    }
}

/* Services the connection for up to ms milliseconds (0: just what is pending). Returns
 * false when the connection is lost (the framebuffer keeps the last picture). */
static bool pump_until_lost(rfbClient *cl, int ms)
{
    int64_t end = now_ms() + ms;
    do {
        int64_t left = end - now_ms();
        int r = WaitForMessage(cl, (unsigned)(left > 0 ? (left > 100 ? 100 : left) : 0) * 1000);
        if (r < 0)
            return false;
        if (r > 0 || cl->buffered) {
            if (!HandleRFBServerMessage(cl))
                return false;
            /* 0.9.14: WaitForMessage does not see bytes already buffered. */
            while (cl->buffered)
                if (!HandleRFBServerMessage(cl))
                    return false;
        }
    } while (now_ms() < end);
    return true;
}

static void pump(rfbClient *cl, int ms)
{
    if (st.closed)
        die(EXIT_CONNECT, "the server closed the connection");
    if (!pump_until_lost(cl, ms))
        die(EXIT_CONNECT, "connection lost: %s", st.last_log);
}

/* A TCP socket bound to source, connected to host:port within timeout_s (blocking again
 * afterwards), for libvncclient (client->sock with listenSpecified). */
static int connect_from(const char *source, const char *host, int port, int timeout_s)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM}, *src, *dst;
    char ports[16];
    if (getaddrinfo(source, NULL, &hints, &src) != 0)
        die(EXIT_USAGE, "--source %s is not a numeric address", source);
    hints = (struct addrinfo){.ai_family = src->ai_family, .ai_socktype = SOCK_STREAM};
    snprintf(ports, sizeof(ports), "%d", port);
    if (getaddrinfo(host, ports, &hints, &dst) != 0)
        die(EXIT_CONNECT, "cannot resolve %s for --source %s", host, source);
    int fd = socket(src->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, src->ai_addr, src->ai_addrlen) < 0)
        die(EXIT_CONNECT, "cannot bind to %s: %s", source, strerror(errno));
    if (connect(fd, dst->ai_addr, dst->ai_addrlen) < 0) {
        if (errno != EINPROGRESS)
            die(EXIT_CONNECT, "cannot connect to %s:%d from %s: %s", host, port, source,
                strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof(err);
        if (poll(&p, 1, timeout_s * 1000) != 1)
            die(EXIT_CONNECT, "cannot connect to %s:%d from %s: timeout", host, port, source);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
            die(EXIT_CONNECT, "cannot connect to %s:%d from %s: %s", host, port, source,
                strerror(err));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
        die(EXIT_CONNECT, "fcntl: %s", strerror(errno));
    freeaddrinfo(src);
    freeaddrinfo(dst);
    return fd;
}

static bool file_contains(const char *path, const char *text)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t cap = 1 << 20, n;
    char *buf = malloc(cap + 1);
    bool found = false;
    if (buf) {
        n = fread(buf, 1, cap, f);
        buf[n] = '\0';
        /* The file may hold NUL bytes (serial logs): search piecewise. */
        for (size_t off = 0; off < n && !found; off += strlen(buf + off) + 1)
            found = strstr(buf + off, text) != NULL;
        free(buf);
    }
    fclose(f);
    return found;
}

/* US layout: which printable characters need Shift (a real keyboard sends it). */
static void type_char(rfbClient *cl, unsigned char c)
{
    static const char shifted[] = "~!@#$%^&*()_+{}|:\"<>?";
    uint32_t ks;
    bool shift = false;
    if (c == '\n')
        ks = XK_Return;
    else if (c == '\t')
        ks = XK_Tab;
    else if (c >= 0x20 && c < 0x7f) {
        ks = c;
        shift = (c >= 'A' && c <= 'Z') || strchr(shifted, c) != NULL;
    } else
        die(EXIT_USAGE, "cannot type character 0x%02x", c);
    if (shift)
        SendKeyEvent(cl, XK_Shift_L, TRUE);
    SendKeyEvent(cl, ks, TRUE);
    SendKeyEvent(cl, ks, FALSE);
    if (shift)
        SendKeyEvent(cl, XK_Shift_L, FALSE);
    /* The guest is emulated (TCG) and its keyboard buffer small: pace the keys. */
    pump(cl, 15);
}

static void type_text(rfbClient *cl, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' && s[1] == 'n') {
            type_char(cl, '\n');
            s++;
        } else if (*s == '\\' && s[1] == '\\') {
            type_char(cl, '\\');
            s++;
        } else {
            type_char(cl, (unsigned char)*s);
        }
    }
}

static int session_fail_code(void)
{
    if (strstr(st.last_log, "Unknown authentication scheme") ||
        strstr(st.last_log, "Unknown VeNCrypt authentication scheme") ||
        strstr(st.last_log, "refused VeNCrypt") || strstr(st.last_log, "List of security types is ZERO") ||
        (st.reason[0] && !st.asked_user && !st.asked_x509))
        return EXIT_SECURITY;
    if (st.asked_user)
        return st.reason[0] || strstr(st.last_log, "authentication failed") ? EXIT_AUTH
                                                                             : EXIT_CONNECT;
    if (st.asked_x509)
        return EXIT_TLS;
    return EXIT_CONNECT;
}

static int cmd_session(int argc, char **argv)
{
    if (argc < 1)
        die(EXIT_USAGE, "session: HOST:PORT missing");
    char *host;
    int port, timeout = 120;
    split_host_port(argv[0], &host, &port);
    const char *security = "vencrypt", *encodings = NULL, *source = NULL;
    int quality = -1;
    int i = 1;
    /* Connection options come first; the rest are actions. */
    for (; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--ca") && v)
            st.ca = v;
        else if (!strcmp(a, "--user") && v)
            st.user = v;
        else if (!strcmp(a, "--password") && v)
            st.password = strdup(v);
        else if (!strcmp(a, "--password-file") && v)
            st.password = read_file_trimmed(v);
        else if (!strcmp(a, "--security") && v)
            security = v;
        else if (!strcmp(a, "--timeout") && v)
            timeout = atoi(v);
        else if (!strcmp(a, "--encodings") && v)
            encodings = v;
        else if (!strcmp(a, "--source") && v)
            source = v;
        else if (!strcmp(a, "--quality") && v && atoi(v) >= 0 && atoi(v) <= 9)
            quality = atoi(v);
        else
            break;
        i++;
    }
    set_deadline(timeout);

    uint32_t scheme;
    if (!strcmp(security, "vencrypt"))
        scheme = rfbVeNCrypt;
    else if (!strcmp(security, "none"))
        scheme = rfbNoAuth;
    else if (!strcmp(security, "vncauth"))
        scheme = rfbVncAuth;
    else
        die(EXIT_USAGE, "unknown --security %s", security);
    if (scheme == rfbVeNCrypt && !st.ca)
        die(EXIT_USAGE, "--ca is required for VeNCrypt X509");

    rfbClientLog = client_log;
    rfbClientErr = client_log;
    rfbClient *cl = rfbGetClient(8, 3, 4);
    if (!cl)
        die(EXIT_USAGE, "rfbGetClient failed");
    cl->serverHost = host;
    cl->serverPort = port;
    cl->GetCredential = get_credential;
    cl->GetPassword = get_password;
    cl->FinishedFrameBufferUpdate = finished_update;
    cl->canHandleNewFBSize = TRUE;
    cl->connectTimeout = 10;
    cl->readTimeout = (unsigned)timeout;
    if (encodings)
        cl->appData.encodingsString = encodings;
    /* libvncclient sends a JPEG quality level by default, which makes libvncserver's Tight
     * lossy; the tests compare pictures, so only --quality asks for it. */
    cl->appData.enableJPEG = quality >= 0;
    cl->appData.qualityLevel = quality >= 0 ? quality : 5;
    uint32_t schemes[] = {scheme, 0};
    SetClientAuthSchemes(cl, schemes, 1);
    if (source) {
        /* serverHost stays set: VeNCrypt X509 checks the certificate against it. */
        cl->sock = connect_from(source, host, port, cl->connectTimeout);
        cl->listenSpecified = TRUE;
    }

    int64_t t0 = now_ms();
    if (!rfbInitClient(cl, NULL, NULL)) { /* frees cl */
        int code = session_fail_code();
        printf("login: failed\n");
        if (st.reason[0])
            printf("reason: %s\n", st.reason);
        fprintf(stderr, "vnc-test-client: login failed (exit %d): %s\n", code, st.last_log);
        return code;
    }
    printf("login: ok %" PRId64 " ms\n", now_ms() - t0);
    printf("desktop-name: %s\n", cl->desktopName ? cl->desktopName : "");
    st.last_change_ms = now_ms();
    fflush(stdout);

    struct image img = {0};
    for (; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v)
            die(EXIT_USAGE, "%s needs a value", a);
        if (!strcmp(a, "--settle")) {
            int ms = atoi(v);
            while (now_ms() - st.last_change_ms < ms || st.updates == 0)
                pump(cl, 50);
            printf("settled: %dx%d after %ld updates\n", cl->width, cl->height, st.updates);
        } else if (!strcmp(a, "--wait-file")) {
            const char *colon = strchr(v, ':');
            if (!colon)
                die(EXIT_USAGE, "--wait-file FILE:TEXT");
            char *path = strndup(v, (size_t)(colon - v));
            while (!file_contains(path, colon + 1))
                pump(cl, 100);
            printf("found: %s\n", colon + 1);
            free(path);
        } else if (!strcmp(a, "--wait-size")) {
            int w, h;
            if (sscanf(v, "%dx%d", &w, &h) != 2)
                die(EXIT_USAGE, "--wait-size WxH");
            while (cl->width != w || cl->height != h)
                pump(cl, 100);
            printf("size: %dx%d\n", w, h);
        } else if (!strcmp(a, "--expect")) {
            char *path = strdup(v), *colon = strrchr(path, ':');
            long tol = 0;
            if (colon) {
                *colon = '\0';
                tol = atol(colon + 1);
            }
            struct image want = {0};
            if (!image_load(path, &want))
                die(EXIT_USAGE, "cannot read image %s", path);
            long d = -1;
            int64_t end = now_ms() + 15000;
            for (;;) {
                fb_to_image(cl, &img);
                d = image_diff(&img, &want);
                if ((d >= 0 && d <= tol) || now_ms() > end || st.closed)
                    break;
                pump(cl, 200);
            }
            printf("expect %s: %ld differing pixels (%dx%d vs %dx%d)\n", path, d, img.w, img.h,
                   want.w, want.h);
            if (d < 0 || d > tol) {
                char fail[4096];
                snprintf(fail, sizeof(fail), "%s.actual.ppm", path);
                image_save(fail, &img);
                die(EXIT_EXPECT, "framebuffer does not match %s (saved %s)", path, fail);
            }
            free(want.rgb);
            free(path);
        } else if (!strcmp(a, "--type")) {
            type_text(cl, v);
            printf("typed: %zu chars\n", strlen(v));
        } else if (!strcmp(a, "--sleep")) {
            pump(cl, atoi(v));
        } else if (!strcmp(a, "--wait-closed")) {
            int64_t since = now_ms(), end = since + atoi(v);
            while (!st.closed && now_ms() < end) {
                int64_t left = end - now_ms();
                st.closed = !pump_until_lost(cl, left > 100 ? 100 : (int)left);
            }
            if (!st.closed)
                die(EXIT_EXPECT, "the server did not close the connection within %s ms", v);
            printf("closed: after %" PRId64 " ms\n", now_ms() - since);
        } else if (!strcmp(a, "--save")) {
            if (!st.closed)
                pump(cl, 0);
            fb_to_image(cl, &img);
            if (!image_save(v, &img))
                die(EXIT_USAGE, "cannot write %s", v);
            printf("saved: %s %dx%d\n", v, img.w, img.h);
        } else {
            die(EXIT_USAGE, "unknown action %s", a);
        }
        fflush(stdout);
    }
    free(img.rgb);
    rfbClientCleanup(cl);
    free(st.password);
    return EXIT_OK;
}

/* ---- raw RFB ----------------------------------------------------------------------- */

static const char *option_value(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

/* Connects to argv[0] (HOST:PORT), from --source ADDR when given. */
static int raw_connect(int argc, char **argv)
{
    const char *hostport = argv[0], *source = option_value(argc, argv, "--source");
    char *host;
    int port;
    split_host_port(hostport, &host, &port);
    if (source) {
        int fd = connect_from(source, host, port, 10);
        free(host);
        return fd;
    }
    char ports[16];
    snprintf(ports, sizeof(ports), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, ports, &hints, &res) != 0)
        die(EXIT_CONNECT, "cannot resolve %s", host);
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0)
        die(EXIT_CONNECT, "cannot connect to %s: %s", hostport, strerror(errno));
    freeaddrinfo(res);
    free(host);
    return fd;
}

/* Reads exactly n bytes; returns false on EOF or error. */
static bool read_full(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static bool write_full(int fd, const void *buf, size_t n)
{
    return send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n;
}

/* Waits until the server closes (EOF or reset), discarding what it sends. */
static int64_t wait_closed(int fd, int64_t t0)
{
    char buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return now_ms() - t0;
    }
}

static int parse_timeout(int argc, char **argv, int def)
{
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--timeout"))
            return atoi(argv[i + 1]);
    return def;
}

static int cmd_raw_stall(int argc, char **argv)
{
    if (argc < 1)
        die(EXIT_USAGE, "raw-stall: HOST:PORT missing");
    set_deadline(parse_timeout(argc, argv, 120));
    int64_t t0 = now_ms();
    int fd = raw_connect(argc, argv);
    printf("closed-after-ms: %" PRId64 "\n", wait_closed(fd, t0));
    close(fd);
    return EXIT_OK;
}

static int cmd_raw_garbage(int argc, char **argv)
{
    if (argc < 1)
        die(EXIT_USAGE, "raw-garbage: HOST:PORT missing");
    set_deadline(parse_timeout(argc, argv, 120));
    int64_t t0 = now_ms();
    int fd = raw_connect(argc, argv);
    char version[12];
    if (read_full(fd, version, sizeof(version))) {
        /* Not a version string, then a huge "length" and binary noise. */
        static const uint8_t garbage[] = "GET / HTTP/1.1\r\n\xff\xff\xff\xff\x00\x13\x37"
                                         "\x00\x00\x01\x06\xde\xad\xbe\xef";
        write_full(fd, garbage, sizeof(garbage));
    }
    printf("closed-after-ms: %" PRId64 "\n", wait_closed(fd, t0));
    close(fd);
    return EXIT_OK;
}

static int cmd_raw_security(int argc, char **argv)
{
    if (argc < 1)
        die(EXIT_USAGE, "raw-security: HOST:PORT missing");
    set_deadline(parse_timeout(argc, argv, 60));
    int choose = -1;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--choose"))
            choose = atoi(argv[i + 1]);
    int fd = raw_connect(argc, argv);
    char version[13] = {0};
    if (!read_full(fd, version, 12))
        die(EXIT_CONNECT, "no version from server");
    printf("version: %.11s\n", version);
    if (!write_full(fd, "RFB 003.008\n", 12))
        die(EXIT_CONNECT, "write failed");
    uint8_t count;
    if (!read_full(fd, &count, 1))
        die(EXIT_CONNECT, "no security type list");
    uint8_t types[256];
    if (!read_full(fd, types, count))
        die(EXIT_CONNECT, "short security type list");
    printf("security-types:");
    for (int i = 0; i < count; i++)
        printf(" %u", types[i]);
    printf("\n");
    if (count == 0) {
        uint32_t len;
        char reason[1024] = {0};
        if (read_full(fd, &len, 4)) {
            len = ntohl(len);
            if (len < sizeof(reason) && read_full(fd, reason, len))
                printf("reason: %s\n", reason);
        }
        return EXIT_SECURITY;
    }
    if (choose < 0)
        return EXIT_OK;
    uint8_t c = (uint8_t)choose;
    if (!write_full(fd, &c, 1))
        die(EXIT_CONNECT, "write failed");
    /* For None the next message is SecurityResult; for anything else a refusing server
     * sends a failed SecurityResult or closes. Any other reply counts as accepted. */
    uint32_t result;
    if (!read_full(fd, &result, 4)) {
        printf("result: refused (closed)\n");
        return EXIT_SECURITY;
    }
    result = ntohl(result);
    if (result == 0 && choose == rfbNoAuth) {
        printf("result: accepted\n");
        return EXIT_OK;
    }
    if (result == 1) {
        uint32_t len;
        char reason[1024] = {0};
        if (read_full(fd, &len, 4)) {
            len = ntohl(len);
            if (len < sizeof(reason) && read_full(fd, reason, len))
                printf("result: refused: %s\n", reason);
            else
                printf("result: refused\n");
        } else {
            printf("result: refused\n");
        }
        return EXIT_SECURITY;
    }
    printf("result: accepted (reply 0x%08x)\n", result);
    return EXIT_OK;
}

/* ---- compare ----------------------------------------------------------------------- */

static int cmd_compare(int argc, char **argv)
{
    if (argc < 2)
        die(EXIT_USAGE, "compare: A B [--tolerance N] [--fuzz N] [--find]");
    long tol = 0;
    bool find = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--tolerance") && i + 1 < argc)
            tol = atol(argv[++i]);
        else if (!strcmp(argv[i], "--find"))
            find = true;
        else if (!strcmp(argv[i], "--fuzz") && i + 1 < argc)
            pixel_fuzz = atoi(argv[++i]);
        else
            die(EXIT_USAGE, "compare: unknown option %s", argv[i]);
    }
    struct image a = {0}, b = {0};
    if (!image_load(argv[0], &a))
        die(EXIT_USAGE, "cannot read image %s (binary PPM/PGM, maxval 255)", argv[0]);
    if (!image_load(argv[1], &b))
        die(EXIT_USAGE, "cannot read image %s (binary PPM/PGM, maxval 255)", argv[1]);
    printf("sizes: %dx%d %dx%d\n", a.w, a.h, b.w, b.h);
    long d;
    if (find) {
        int x = 0, y = 0;
        if (!image_find(&a, &b, tol, &x, &y, &d)) {
            printf("not-found\n");
            return EXIT_EXPECT;
        }
        printf("offset: %d,%d\n", x, y);
    } else {
        d = image_diff(&a, &b);
        if (d < 0) {
            printf("differing-size\n");
            return EXIT_EXPECT;
        }
    }
    printf("differing-pixels: %ld\n", d);
    free(a.rgb);
    free(b.rgb);
    return d <= tol ? EXIT_OK : EXIT_EXPECT;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: vnc-test-client session|raw-security|raw-stall|raw-garbage|"
                        "compare ... (see the comment at the top of vnc-test-client.c)\n");
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "session"))
        return cmd_session(argc - 2, argv + 2);
    if (!strcmp(cmd, "raw-security"))
        return cmd_raw_security(argc - 2, argv + 2);
    if (!strcmp(cmd, "raw-stall"))
        return cmd_raw_stall(argc - 2, argv + 2);
    if (!strcmp(cmd, "raw-garbage"))
        return cmd_raw_garbage(argc - 2, argv + 2);
    if (!strcmp(cmd, "compare"))
        return cmd_compare(argc - 2, argv + 2);
    die(EXIT_USAGE, "unknown command %s", cmd);
}
