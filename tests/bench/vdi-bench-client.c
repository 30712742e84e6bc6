/*
 * vdi-bench-client: one timed login through libvncclient's own VeNCrypt X509Plain code
 * (the same third-party client code as tests/integration/e2e/vnc-test-client), for
 * tests/bench/run-bench.sh.
 *
 *   vdi-bench-client HOST:PORT --ca FILE --user U --password P
 *                    [--until-not WxH] [--hold MS] [--timeout S]
 *
 * Every time is in microseconds since just before rfbInitClient() (which does the TCP
 * connect), printed as "NAME: US" lines:
 *   version-us        the server's RFB version string has been read (connect + 12 bytes)
 *   tls-us            TLS handshake done (libvncclient asks for the Plain credentials)
 *   secresult-us      SecurityResult "ok" read (libvncclient logs "authentication succeeded")
 *   serverinit-us     rfbInitClient() returned: ServerInit read, SetPixelFormat,
 *                     SetEncodings and the first FramebufferUpdateRequest sent
 *   first-update-us   the first FramebufferUpdate is complete (any picture: for a cold
 *                     login that is the broker's status screen); also "first-size: WxH"
 *   other-update-us   with --until-not WxH: the first complete update whose framebuffer size
 *                     is not WxH (the status screen is 1024x768, the VM's text console
 *                     720x400), also "other-size: WxH"
 * --hold MS keeps the connection serviced for MS more milliseconds (then prints "held"),
 * so a caller can look at the processes while a client is connected.
 * Exit: 0 ok, 1 usage, 2 connection/login failure, 7 timeout.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rfb/rfbclient.h>

static int64_t t0;
static int64_t t_version = -1, t_tls = -1, t_secresult = -1, t_first = -1, t_other = -1;
static int first_w, first_h, other_w, other_h, not_w = -1, not_h = -1;
static const char *ca_file, *user, *password;
static char last_log[512];

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "vdi-bench-client: timeout\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)r;
    _exit(7);
}

static void client_log(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    line[strcspn(line, "\n")] = '\0';
    int64_t t = now_us() - t0;
    if (t_version < 0 && strstr(line, "supports protocol version"))
        t_version = t;
    if (t_secresult < 0 && strstr(line, "authentication succeeded"))
        t_secresult = t;
    if (getenv("VDI_BENCH_VERBOSE"))
        fprintf(stderr, "[%8.3f ms] libvncclient: %s\n", t / 1000.0, line);
    snprintf(last_log, sizeof(last_log), "%s", line);
}

static rfbCredential *get_credential(rfbClient *cl, int type)
{
    (void)cl;
    rfbCredential *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (type == rfbCredentialTypeX509) {
        c->x509Credential.x509CACertFile = strdup(ca_file);
        c->x509Credential.x509CrlVerifyMode = rfbX509CrlVerifyNone;
        return c;
    }
    if (type == rfbCredentialTypeUser) {
        if (t_tls < 0)
            t_tls = now_us() - t0;
        c->userCredential.username = strdup(user);
        c->userCredential.password = strdup(password);
        return c;
    }
    free(c);
    return NULL;
}

static void finished_update(rfbClient *cl)
{
    int64_t t = now_us() - t0;
    if (t_first < 0) {
        t_first = t;
        first_w = cl->width;
        first_h = cl->height;
    }
    if (t_other < 0 && not_w >= 0 && (cl->width != not_w || cl->height != not_h)) {
        t_other = t;
        other_w = cl->width;
        other_h = cl->height;
    }
}

static int pump_until(rfbClient *cl, int64_t *flag, int64_t hold_end_us)
{
    for (;;) {
        if (flag && *flag >= 0)
            return 0;
        if (!flag && now_us() >= hold_end_us)
            return 0;
        int r = WaitForMessage(cl, 20000);
        if (r < 0)
            return -1;
        if (r > 0 || cl->buffered) {
            if (!HandleRFBServerMessage(cl))
                return -1;
            while (cl->buffered)
                if (!HandleRFBServerMessage(cl))
                    return -1;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: vdi-bench-client HOST:PORT --ca FILE --user U --password P "
                        "[--until-not WxH] [--hold MS] [--timeout S]\n");
        return 1;
    }
    char *host = strdup(argv[1]), *colon = strrchr(host, ':');
    if (!colon)
        return 1;
    *colon = '\0';
    int port = atoi(colon + 1), timeout = 120, hold_ms = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--ca"))
            ca_file = v;
        else if (!strcmp(a, "--user"))
            user = v;
        else if (!strcmp(a, "--password"))
            password = v;
        else if (!strcmp(a, "--until-not")) {
            if (sscanf(v, "%dx%d", &not_w, &not_h) != 2)
                return 1;
        } else if (!strcmp(a, "--hold"))
            hold_ms = atoi(v);
        else if (!strcmp(a, "--timeout"))
            timeout = atoi(v);
        else {
            fprintf(stderr, "vdi-bench-client: unknown option %s\n", a);
            return 1;
        }
    }
    if (!ca_file || !user || !password) {
        fprintf(stderr, "vdi-bench-client: --ca, --user and --password are required\n");
        return 1;
    }
    signal(SIGALRM, on_alarm);
    alarm((unsigned)timeout);

    rfbClientLog = client_log;
    rfbClientErr = client_log;
    rfbClient *cl = rfbGetClient(8, 3, 4);
    cl->serverHost = host;
    cl->serverPort = port;
    cl->GetCredential = get_credential;
    cl->FinishedFrameBufferUpdate = finished_update;
    cl->canHandleNewFBSize = TRUE;
    cl->connectTimeout = 10;
    cl->readTimeout = (unsigned)timeout;
    uint32_t schemes[] = {rfbVeNCrypt, 0};
    SetClientAuthSchemes(cl, schemes, 1);

    t0 = now_us();
    if (!rfbInitClient(cl, NULL, NULL)) {
        fprintf(stderr, "vdi-bench-client: login failed: %s\n", last_log);
        return 2;
    }
    int64_t t_init = now_us() - t0;
    int rc = pump_until(cl, &t_first, 0);
    if (rc == 0 && not_w >= 0)
        rc = pump_until(cl, &t_other, 0);
    if (rc == 0 && hold_ms > 0) {
        printf("holding: %d ms\n", hold_ms);
        fflush(stdout);
        rc = pump_until(cl, NULL, now_us() + (int64_t)hold_ms * 1000);
        if (rc == 0)
            printf("held\n");
    }
    printf("version-us: %lld\ntls-us: %lld\nsecresult-us: %lld\nserverinit-us: %lld\n",
           (long long)t_version, (long long)t_tls, (long long)t_secresult, (long long)t_init);
    printf("first-update-us: %lld\nfirst-size: %dx%d\n", (long long)t_first, first_w, first_h);
    if (not_w >= 0)
        printf("other-update-us: %lld\nother-size: %dx%d\n", (long long)t_other, other_w,
               other_h);
    rfbClientCleanup(cl);
    free(host);
    if (rc != 0) {
        fprintf(stderr, "vdi-bench-client: connection lost: %s\n", last_log);
        return 2;
    }
    return 0;
}
