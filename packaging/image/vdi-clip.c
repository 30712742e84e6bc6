/*
 * vdi-clip: the demo desktop's clipboard, a tiny guest agent for the busybox guest (which
 * has no X session for spice-vdagent). It speaks the SPICE agent protocol on the virtio
 * port com.redhat.spice.0, where QEMU's qemu-vdagent backend (the domain's
 * <channel type='qemu-vdagent'>) exchanges the clipboard with VNC clients.
 *
 *   vdi-clip agent        run the agent (started by /init when the port exists)
 *   vdi-clip copy TEXT..  put TEXT (the words joined by spaces) on the clipboard
 *   vdi-clip paste        print the clipboard last received from the client
 *
 * The agent announces clipboard-by-demand only (no selections, no grab serials), so every
 * message is the plain form: a grab lists types, a request names one, data is the type
 * then the bytes; only UTF-8 text (type 1) is used. copy/paste talk to the agent through
 * files in /tmp/vdi-clip and SIGUSR1. Built static by build-demo-image.sh; libc only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORT_NAME "com.redhat.spice.0"
#define RUN_DIR "/tmp/vdi-clip"
#define CLIP_MAX (1024 * 1024)

enum {
    MSG_CLIPBOARD = 4,
    MSG_ANNOUNCE_CAPABILITIES = 6,
    MSG_CLIPBOARD_GRAB = 7,
    MSG_CLIPBOARD_REQUEST = 8,
    MSG_CLIPBOARD_RELEASE = 9,
    CAP_CLIPBOARD_BY_DEMAND = 5,
    TYPE_UTF8_TEXT = 1,
    HEADER_SIZE = 20, /* protocol, type, opaque (8), size */
};

static int port_fd = -1;
static char *clip_out; /* our clipboard (from copy), offered to the client */
static size_t clip_out_len;

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* All of buf through fd, write or read: -1 on an error or the end of the stream. */
static int io_all(int fd, void *buf, size_t len, int writing)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t k = writing ? write(fd, p, len) : read(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k, len -= (size_t)k;
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
    return io_all(fd, (void *)buf, len, 1);
}

static int read_all(int fd, void *buf, size_t len)
{
    return io_all(fd, buf, len, 0);
}

/* One message: chunk header (port, size), message header, then a u32 head (unless
 * has_head is 0) and data. One chunk: QEMU reassembles any size. */
static int send_msg(uint32_t type, int has_head, uint32_t head, const void *data, size_t len)
{
    size_t body = (has_head ? 4 : 0) + len;
    uint8_t *m = calloc(1, 8 + HEADER_SIZE + body);
    if (!m)
        return -1;
    put32(m, 1); /* VDP_CLIENT_PORT */
    put32(m + 4, (uint32_t)(HEADER_SIZE + body));
    put32(m + 8, 1); /* VD_AGENT_PROTOCOL */
    put32(m + 12, type);
    put32(m + 24, (uint32_t)body);
    if (has_head)
        put32(m + 28, head);
    if (len)
        memcpy(m + 28 + (has_head ? 4 : 0), data, len);
    int r = write_all(port_fd, m, 8 + HEADER_SIZE + body);
    free(m);
    return r;
}

static int send_caps(int request)
{
    uint32_t caps = 1u << CAP_CLIPBOARD_BY_DEMAND;
    uint8_t c[4];
    put32(c, caps);
    return send_msg(MSG_ANNOUNCE_CAPABILITIES, 1, (uint32_t)request, c, sizeof(c));
}

/* The client's clipboard, kept where `vdi-clip paste` reads it (replaced atomically). */
static void store_received(const uint8_t *text, size_t len)
{
    int fd = open(RUN_DIR "/in.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    int r = write_all(fd, text, len);
    close(fd);
    if (r == 0)
        rename(RUN_DIR "/in.tmp", RUN_DIR "/in");
}

static void handle_msg(uint32_t type, const uint8_t *d, size_t len)
{
    switch (type) {
    case MSG_ANNOUNCE_CAPABILITIES:
        if (len >= 4 && get32(d))
            send_caps(0);
        break;
    case MSG_CLIPBOARD_GRAB: /* the client has a new clipboard: ask for its text */
        for (size_t i = 0; i + 4 <= len; i += 4)
            if (get32(d + i) == TYPE_UTF8_TEXT) {
                send_msg(MSG_CLIPBOARD_REQUEST, 1, TYPE_UTF8_TEXT, NULL, 0);
                break;
            }
        break;
    case MSG_CLIPBOARD:
        if (len >= 4 && get32(d) == TYPE_UTF8_TEXT)
            store_received(d + 4, len - 4);
        break;
    case MSG_CLIPBOARD_REQUEST:
        if (len >= 4 && get32(d) == TYPE_UTF8_TEXT)
            send_msg(MSG_CLIPBOARD, 1, TYPE_UTF8_TEXT, clip_out, clip_out ? clip_out_len : 0);
        break;
    default:
        break;
    }
}

/* Reads one chunk and, once a message is whole, handles it. Returns -1 when the port is
 * gone or sends something that does not fit. */
static int read_chunk(uint8_t **msg, size_t *have)
{
    uint8_t ch[8];
    if (read_all(port_fd, ch, sizeof(ch)) < 0)
        return -1;
    size_t size = get32(ch + 4);
    if (size > HEADER_SIZE + CLIP_MAX + 64 || *have + size > HEADER_SIZE + CLIP_MAX + 64)
        return -1;
    uint8_t *m = realloc(*msg, *have + size + 1);
    if (!m)
        return -1;
    *msg = m;
    if (read_all(port_fd, m + *have, size) < 0)
        return -1;
    *have += size;
    if (*have < HEADER_SIZE)
        return 0;
    size_t body = get32(m + 16);
    if (*have < HEADER_SIZE + body)
        return 0; /* continued in the next chunk */
    handle_msg(get32(m + 4), m + HEADER_SIZE, body);
    *have = 0;
    return 0;
}

/* copy -> agent: RUN_DIR/out holds the text; grab the clipboard with it. */
static void take_copied(void)
{
    FILE *f = fopen(RUN_DIR "/out", "re");
    if (!f)
        return;
    char *text = malloc(CLIP_MAX);
    size_t n = text ? fread(text, 1, CLIP_MAX, f) : 0;
    fclose(f);
    if (!text)
        return;
    free(clip_out);
    clip_out = text;
    clip_out_len = n;
    send_msg(MSG_CLIPBOARD_GRAB, 1, TYPE_UTF8_TEXT, NULL, 0);
}

static int find_port(char *path, size_t size)
{
    glob_t g;
    int found = -1;
    if (glob("/sys/class/virtio-ports/*/name", 0, NULL, &g) != 0)
        return -1;
    for (size_t i = 0; i < g.gl_pathc && found < 0; i++) {
        char name[64] = "";
        FILE *f = fopen(g.gl_pathv[i], "re");
        if (!f)
            continue;
        if (fgets(name, sizeof(name), f) && strncmp(name, PORT_NAME, strlen(PORT_NAME)) == 0) {
            const char *dev = strrchr(g.gl_pathv[i], '/');
            const char *start = g.gl_pathv[i] + strlen("/sys/class/virtio-ports/");
            snprintf(path, size, "/dev/%.*s", (int)(dev - start), start);
            found = 0;
        }
        fclose(f);
    }
    globfree(&g);
    return found;
}

static int run_agent(void)
{
    char path[128];
    for (int i = 0; find_port(path, sizeof(path)) < 0; i++) {
        if (i == 50) {
            fprintf(stderr, "vdi-clip: no %s port\n", PORT_NAME);
            return 1;
        }
        usleep(100 * 1000);
    }
    port_fd = open(path, O_RDWR | O_CLOEXEC);
    if (port_fd < 0) {
        fprintf(stderr, "vdi-clip: %s: %m\n", path);
        return 1;
    }
    mkdir(RUN_DIR, 0755);
    FILE *pf = fopen(RUN_DIR "/pid", "we");
    if (pf) {
        fprintf(pf, "%d\n", (int)getpid());
        fclose(pf);
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0 || send_caps(1) < 0)
        return 1;
    uint8_t *msg = NULL;
    size_t have = 0;
    for (;;) {
        struct pollfd fds[2] = {{.fd = port_fd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            return 1;
        if (fds[1].revents) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                take_copied();
        }
        if (fds[0].revents && read_chunk(&msg, &have) < 0) {
            fprintf(stderr, "vdi-clip: the agent port closed or sent a bad message\n");
            return 1;
        }
    }
}

static int copy(int argc, char **argv)
{
    FILE *f = fopen(RUN_DIR "/out.tmp", "we");
    if (!f) {
        fprintf(stderr, "vdi-clip: no agent running (%s: %m)\n", RUN_DIR);
        return 1;
    }
    for (int i = 0; i < argc; i++)
        fprintf(f, "%s%s", i ? " " : "", argv[i]);
    if (fclose(f) != 0 || rename(RUN_DIR "/out.tmp", RUN_DIR "/out") < 0)
        return 1;
    FILE *pf = fopen(RUN_DIR "/pid", "re");
    int pid = 0;
    if (!pf || fscanf(pf, "%d", &pid) != 1 || pid <= 1 || kill(pid, SIGUSR1) < 0) {
        fprintf(stderr, "vdi-clip: no agent running\n");
        if (pf)
            fclose(pf);
        return 1;
    }
    fclose(pf);
    return 0;
}

static int paste(void)
{
    FILE *f = fopen(RUN_DIR "/in", "re");
    if (!f)
        return 1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "agent") == 0)
        return run_agent();
    if (argc >= 2 && strcmp(argv[1], "copy") == 0)
        return copy(argc - 2, argv + 2);
    if (argc == 2 && strcmp(argv[1], "paste") == 0)
        return paste();
    fprintf(stderr, "usage: vdi-clip agent | copy TEXT... | paste\n");
    return 2;
}
