/*
 * vdi-session end to end, without a VM and without the real broker: the test plays the
 * broker on a SOCK_SEQPACKET socketpair (common/proto.h) and the client with a real
 * libvncclient (VeNCrypt X509Plain, CA checked against 127.0.0.1) or raw bytes. The
 * program under test is vdi-session-stub: display/session*.c linked with stub-proxy.c
 * instead of the libvncserver proxy, so ServerInit comes from the stub and carries the
 * status text vdi-session last asked the proxy to show.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <rfb/rfbclient.h>

#include "proto.h"
#include "test-pki.h"
#include "util.h"

#define PASSWORD "correct horse battery"
#define TOKEN "0123456789abcdef00112233445566778899aabbccddeeff0f1e2d3c4b5a6978"
#define CONN_ID 0x1122334455667788ull

static char client_log[8192];

static char ca_file[128], cert_file[128], key_file[128], log_file[128];

/* libvncclient 0.9.14 never frees the X.509 credentials it makes for VeNCrypt (nor does
 * it free them in rfbClientCleanup); that is its leak, not ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:gnutls_certificate_allocate_credentials\n";
}

/* ---- fixtures ------------------------------------------------------------------------ */

static struct test_pki pki;

static int group_setup(void **state)
{
    (void)state;
    /* 0755: the session under test drops to nobody and writes its log here. */
    if (test_pki_make(&pki, "/tmp/vdi-test-session-XXXXXX") < 0 || chmod(pki.dir, 0755) < 0)
        return -1;
    snprintf(ca_file, sizeof(ca_file), "%s", pki.ca);
    snprintf(cert_file, sizeof(cert_file), "%s", pki.cert);
    snprintf(key_file, sizeof(key_file), "%s", pki.key);
    snprintf(log_file, sizeof(log_file), "%s/session.log", pki.dir);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    test_pki_remove(&pki);
    return 0;
}

/* ---- the session process ----------------------------------------------------------- */

/* VDI_SESSION_BINARY=path/to/vdi-session runs the same checks against the real program
 * (with the libvncserver proxy); ServerInit then carries the proxy's own desktop name. */
static const char *session_binary(void)
{
    const char *b = getenv("VDI_SESSION_BINARY");
    return b && b[0] ? b : VDI_SESSION_STUB;
}

static bool using_stub(void)
{
    return session_binary() == (const char *)VDI_SESSION_STUB;
}

struct session {
    pid_t pid;
    int broker; /* our end of the control socket */
};

/* Starts vdi-session-stub on client_fd (consumed) with extra arguments (NULL-terminated
 * array, may be NULL). */
static void session_spawnv(struct session *s, int client_fd, const char *const *extra)
{
    int ctrl[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctrl), 0);
    const char *argv[32] = {
        session_binary(),   "--client-fd",    "3",          "--control-fd", "4",
        "--client-address", "127.0.0.1:4242", "--tls-cert", cert_file,      "--tls-key",
        key_file,           "--log-level",    "debug"};
    size_t n = 13;
    if (geteuid() == 0) {
        argv[n++] = "--user";
        argv[n++] = "nobody";
    }
    for (size_t i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int logfd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        int c = fcntl(client_fd, F_DUPFD_CLOEXEC, 10), k = fcntl(ctrl[1], F_DUPFD_CLOEXEC, 10);
        if (logfd < 0 || c < 0 || k < 0 || dup2(c, 3) < 0 || dup2(k, 4) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(client_fd);
    close(ctrl[1]);
    s->pid = pid;
    s->broker = ctrl[0];
}

/* The same with extra arguments as a NULL-terminated list. */
static void session_spawn(struct session *s, int client_fd, ...)
{
    const char *extra[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, client_fd);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 31)
        extra[n++] = a;
    va_end(ap);
    extra[n] = NULL;
    session_spawnv(s, client_fd, extra);
}

/* Waits for the exit code; kills and fails after timeout_ms. */
static int session_wait(struct session *s, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    int status;
    for (;;) {
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid)
            break;
        if (now_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            fail_msg("vdi-session did not exit within %d ms", timeout_ms);
        }
        usleep(10 * 1000);
    }
    safe_close(s->broker);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static char *read_log(void);

static void broker_recv(struct session *s, struct proto_message *m)
{
    struct pollfd p = {.fd = s->broker, .events = POLLIN};
    int r = poll(&p, 1, 10000);
    if (r == 1)
        r = proto_recv(s->broker, PROTO_FROM_SESSION, m);
    else
        r = -ETIMEDOUT;
    if (r < 0) {
        close(s->broker);
        usleep(300 * 1000); /* let the client finish its log */
    }
    if (r < 0)
        fail_msg("no message from vdi-session (%d); its log:\n%s\nclient log:\n%s", r, read_log(),
                 client_log);
}

static void broker_send(struct session *s, enum proto_type type, bool ok, const char *text, int fd)
{
    struct proto_message m;
    proto_message_init(&m, type);
    m.ok = ok;
    m.fd = fd;
    assert_int_equal(proto_set_string(m.text, sizeof(m.text), text), 0);
    assert_int_equal(proto_send(s->broker, &m), 0);
    m.fd = -1;
    proto_message_done(&m);
}

/* DESKTOP_READY with the connection id, flags and reattach token. */
static void broker_send_ready(struct session *s, uint8_t flags, int fd)
{
    struct proto_message m;
    proto_message_init(&m, PROTO_DESKTOP_READY);
    m.fd = fd;
    m.id = CONN_ID;
    m.flags = flags;
    assert_int_equal(proto_set_string(m.text, sizeof(m.text), "desk1"), 0);
    assert_int_equal(proto_set_string(m.token, sizeof(m.token), TOKEN), 0);
    assert_int_equal(proto_send(s->broker, &m), 0);
    m.fd = -1;
    proto_message_done(&m);
}

/* Waits for an ACTIVITY; returns it in *m and when it came. */
static uint64_t broker_expect_activity(struct session *s, struct proto_message *m)
{
    proto_message_init(m, PROTO_ACTIVITY);
    broker_recv(s, m);
    assert_int_equal(m->type, PROTO_ACTIVITY);
    print_message("ACTIVITY idle_ms=%u bytes_to_client=%llu bytes_from_client=%llu\n",
                  (unsigned)m->idle_ms, (unsigned long long)m->bytes_to_client,
                  (unsigned long long)m->bytes_from_client);
    return now_ms();
}

static void broker_expect_login(struct session *s, const char *user)
{
    struct proto_message m;
    proto_message_init(&m, PROTO_AUTH_REQUEST);
    broker_recv(s, &m);
    assert_int_equal(m.type, PROTO_AUTH_REQUEST);
    assert_string_equal(m.username, user);
    assert_string_equal(m.password, PASSWORD);
    proto_message_done(&m);
}

static char *read_log(void)
{
    static char buf[65536];
    int fd = open(log_file, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    buf[n > 0 ? n : 0] = 0;
    safe_close(fd);
    return buf;
}

/* The log never holds the password and always names the client. */
static void check_log(void)
{
    const char *log = read_log();
    assert_null(strstr(log, PASSWORD));
    assert_non_null(strstr(log, "client=127.0.0.1:4242"));
}

static int setup_log(void **state)
{
    (void)state;
    unlink(log_file);
    return 0;
}

/* ---- a libvncclient client in a thread ---------------------------------------------- */

static pthread_mutex_t client_log_lock = PTHREAD_MUTEX_INITIALIZER;

static void client_log_line(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&client_log_lock);
    size_t n = strlen(client_log);
    va_start(ap, fmt);
    vsnprintf(client_log + n, sizeof(client_log) - n, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&client_log_lock);
}

struct vnc {
    pthread_t thread;
    int port;
    const char *user;
    rfbClient *client; /* after a successful init */
    bool ok;
    char name[256];
    int width, height;
};

static rfbCredential *get_credential(rfbClient *client, int type)
{
    struct vnc *v = rfbClientGetClientData(client, get_credential);
    rfbCredential *c = calloc(1, sizeof(*c));
    if (type == rfbCredentialTypeX509) {
        c->x509Credential.x509CACertFile = strdup(ca_file);
        return c;
    }
    if (type == rfbCredentialTypeUser) {
        c->userCredential.username = strdup(v->user);
        c->userCredential.password = strdup(PASSWORD);
        return c;
    }
    free(c);
    return NULL;
}

static void *vnc_main(void *userdata)
{
    struct vnc *v = userdata;
    rfbClient *client = rfbGetClient(8, 3, 4);
    uint32_t schemes[] = {rfbVeNCrypt};
    SetClientAuthSchemes(client, schemes, 1);
    rfbClientSetClientData(client, get_credential, v);
    client->GetCredential = get_credential;
    free(client->serverHost);
    client->serverHost = strdup("127.0.0.1");
    client->serverPort = v->port;
    client->canHandleNewFBSize = FALSE;
    v->ok = rfbInitClient(client, NULL, NULL); /* cleans up by itself on failure */
    if (v->ok) {
        snprintf(v->name, sizeof(v->name), "%s", client->desktopName);
        v->width = client->width;
        v->height = client->height;
        v->client = client;
    }
    return NULL;
}

/* Listens on loopback, starts the client, accepts: returns the accepted fd. */
static int vnc_start(struct vnc *v, const char *user)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *v = (struct vnc){.port = ntohs(a.sin_port), .user = user};
    client_log[0] = 0;
    rfbClientLog = rfbClientErr = client_log_line;
    assert_int_equal(pthread_create(&v->thread, NULL, vnc_main, v), 0);
    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fd >= 0);
    close(l);
    return fd;
}

static void vnc_join(struct vnc *v)
{
    pthread_join(v->thread, NULL);
}

static void vnc_close(struct vnc *v)
{
    if (v->client) {
        free(v->client->frameBuffer); /* rfbClientCleanup() leaves it to us */
        rfbClientCleanup(v->client);
    }
    v->client = NULL;
}

/* ---- tests with libvncclient --------------------------------------------------------- */

static void login_ok_with(struct session *s, struct vnc *v, const char *user,
                          const char *const *extra)
{
    session_spawnv(s, vnc_start(v, user), extra);
    broker_expect_login(s, user);
    broker_send(s, PROTO_AUTH_RESULT, true, "", -1);
    vnc_join(v);
    if (!v->ok)
        fail_msg("client failed; its log:\n%s\nsession log:\n%s", client_log, read_log());
    if (using_stub())
        assert_string_equal(v->name, "Starting your desktop...");
    else
        print_message("ServerInit from %s: %dx%d \"%s\"\n", session_binary(), v->width, v->height,
                      v->name);
    assert_int_equal(v->width, 1024);
    assert_int_equal(v->height, 768);
}

static void login_ok(struct session *s, struct vnc *v, const char *user)
{
    login_ok_with(s, v, user, NULL);
}

static void test_login_ok_then_broker_close(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    login_ok(&s, &v, "alice");
    broker_send(&s, PROTO_DESKTOP_STATUS, false, "Booting", -1);
    uint64_t t0 = now_ms();
    broker_send(&s, PROTO_CLOSE, false, "Maintenance window", -1);
    assert_int_equal(session_wait(&s, 10000), 0);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 2000 && took < 5000); /* the reason stays up for a moment */
    vnc_close(&v);
    check_log();
    assert_non_null(strstr(read_log(), "Login ok client=127.0.0.1:4242 user=alice"));
}

static void test_login_refused(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    session_spawn(&s, vnc_start(&v, "mallory"), NULL);
    broker_expect_login(&s, "mallory");
    broker_send(&s, PROTO_AUTH_RESULT, false, "Wrong user name or password", -1);
    vnc_join(&v);
    assert_false(v.ok);
    assert_int_equal(session_wait(&s, 5000), 3);
    assert_non_null(strstr(client_log, "Wrong user name or password"));
    check_log();
}

/* A user name that is not a valid account name (here: a password typed into the name
 * field, with spaces and quotes that would forge key=value fields) never reaches the log. */
static void test_invalid_user_name_not_logged(void **state)
{
    (void)state;
    static const char typed[] = "Hunter2 secret\" user=root";
    struct session s;
    struct vnc v;
    session_spawn(&s, vnc_start(&v, typed), NULL);
    broker_expect_login(&s, typed); /* the broker gets it as typed and decides */
    broker_send(&s, PROTO_AUTH_RESULT, false, "Authentication failed", -1);
    vnc_join(&v);
    assert_false(v.ok);
    assert_int_equal(session_wait(&s, 5000), 3);
    const char *log = read_log();
    assert_null(strstr(log, "Hunter2"));
    assert_non_null(strstr(log, "user=(invalid)"));
}

static void test_ready_before_auth_result(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    int sv[2];
    session_spawn(&s, vnc_start(&v, "alice"), NULL);
    broker_expect_login(&s, "alice");
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    broker_send_ready(&s, 0, sv[0]);
    close(sv[0]);
    close(sv[1]);
    vnc_join(&v);
    assert_false(v.ok);
    assert_int_equal(session_wait(&s, 5000), 4);
    assert_non_null(strstr(client_log, "Internal server error"));
    check_log();
}

static void test_client_disconnects(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    login_ok(&s, &v, "alice");
    uint64_t t0 = now_ms();
    vnc_close(&v);
    assert_int_equal(session_wait(&s, 5000), 0);
    assert_true(now_ms() - t0 < 2000);
    check_log();
}

/* Before DESKTOP_READY a closed control socket ends the session, re-attach configured or
 * not (there is nothing to re-attach to yet). */
static void test_broker_closes_control_socket(void **state)
{
    (void)state;
    static const char *const extra[] = {"--broker-socket", "vdi-test-none", "--reattach-timeout-s",
                                        "30", NULL};
    struct session s;
    struct vnc v;
    login_ok_with(&s, &v, "alice", extra);
    s.broker = safe_close(s.broker);
    uint64_t t0 = now_ms();
    assert_int_equal(session_wait(&s, 5000), 0);
    assert_true(now_ms() - t0 < 2000);
    vnc_close(&v);
    check_log();
    assert_null(strstr(read_log(), "re-attaching"));
}

static void test_desktop_ready_twice(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    int sv[2];
    login_ok(&s, &v, "alice");
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    broker_send_ready(&s, 0, sv[0]);
    broker_send_ready(&s, 0, sv[0]);
    close(sv[0]);
    close(sv[1]);
    int code = session_wait(&s, 5000);
    /* The real proxy fails to attach the fake display first (5) and ignores the rest. */
    if (using_stub() || code != 5)
        assert_int_equal(code, 4);
    vnc_close(&v);
    check_log();
}

static void test_sigterm_ends_cleanly(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    login_ok(&s, &v, "alice");
    kill(s.pid, SIGTERM);
    assert_int_equal(session_wait(&s, 5000), 0);
    vnc_close(&v);
    check_log();
}

/* ---- the desktop: DESKTOP_READY, ACTIVITY, view-only, NOTICE, CLOSE ------------------ */

/* A VM display for DESKTOP_READY: the RFB server side up to ServerInit (320x200, name
 * "fake"), then it reads until EOF. The stub proxy never talks to it; the real proxy
 * (VDI_SESSION_BINARY) gets a black desktop. */
struct fake_vm {
    int fd;
    pthread_t thread;
};

static void *fake_vm_main(void *userdata)
{
    struct fake_vm *f = userdata;
    uint64_t deadline = now_ms() + 60000;
    uint8_t buf[256], sec[2] = {1, 1}, choice, shared, ok[4] = {0};
    static const uint8_t server_init[24 + 4] = {
        320 >> 8, 320 & 0xff, 0,  200, 32, 24, 0, 1, 0, 255, 0,   255, 0,   255,
        0,        8,          16, 0,   0,  0,  0, 0, 0, 4,   'f', 'a', 'k', 'e'};
    if (fd_write_full(f->fd, "RFB 003.008\n", 12, deadline) < 0 ||
        fd_read_full(f->fd, buf, 12, deadline) < 0 ||
        fd_write_full(f->fd, sec, sizeof(sec), deadline) < 0 ||
        fd_read_full(f->fd, &choice, 1, deadline) < 0 ||
        fd_write_full(f->fd, ok, sizeof(ok), deadline) < 0 ||
        fd_read_full(f->fd, &shared, 1, deadline) < 0 ||
        fd_write_full(f->fd, server_init, sizeof(server_init), deadline) < 0)
        return NULL;
    while (read(f->fd, buf, sizeof(buf)) > 0)
        ;
    return NULL;
}

/* Returns the fd to pass with DESKTOP_READY (the caller closes its copy after sending). */
static int fake_vm_start(struct fake_vm *f)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f->fd = sv[0];
    assert_int_equal(pthread_create(&f->thread, NULL, fake_vm_main, f), 0);
    return sv[1];
}

static void fake_vm_stop(struct fake_vm *f)
{
    shutdown(f->fd, SHUT_RDWR);
    pthread_join(f->thread, NULL);
    close(f->fd);
}

/* Logs in and attaches the fake desktop with flags. */
static void desktop_ready(struct session *s, struct vnc *v, struct fake_vm *f, uint8_t flags,
                          const char *const *extra)
{
    login_ok_with(s, v, "alice", extra);
    int fd = fake_vm_start(f);
    broker_send_ready(s, flags, fd);
    close(fd);
}

static void wait_for_log(const char *text, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (!strstr(read_log(), text) && now_ms() < deadline)
        usleep(20 * 1000);
    if (!strstr(read_log(), text))
        fail_msg("'%s' not in the session log:\n%s", text, read_log());
}

static void end_with_close(struct session *s, struct vnc *v, struct fake_vm *f)
{
    broker_send(s, PROTO_CLOSE, false, "Bye", -1);
    assert_int_equal(session_wait(s, 10000), 0);
    vnc_close(v);
    fake_vm_stop(f);
    check_log();
    assert_null(strstr(read_log(), TOKEN)); /* never logged */
}

/* ACTIVITY every PROTO_ACTIVITY_INTERVAL_MS from the attach on, with the idle time since
 * the last input and the relay's byte counts; input after an idle report brings one at once. */
static void test_activity(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    struct fake_vm f;
    struct proto_message m;
    desktop_ready(&s, &v, &f, 0, NULL);
    uint64_t t0 = now_ms();

    /* No input yet: idle since the attach. */
    uint64_t t1 = broker_expect_activity(&s, &m);
    assert_true(t1 - t0 >= PROTO_ACTIVITY_INTERVAL_MS - 100);
    assert_true(t1 - t0 < PROTO_ACTIVITY_INTERVAL_MS + 1000);
    assert_true(m.idle_ms >= PROTO_ACTIVITY_INTERVAL_MS - 100);
    assert_true(m.idle_ms < PROTO_ACTIVITY_INTERVAL_MS + 1000);
    assert_true(m.bytes_to_client > 24);   /* ServerInit at least */
    assert_true(m.bytes_from_client > 10); /* ClientInit, SetPixelFormat, SetEncodings ... */
    uint64_t to_client = m.bytes_to_client, from_client = m.bytes_from_client;

    /* The broker heard "idle for an interval": pointer motion brings an ACTIVITY at once. */
    usleep(200 * 1000);
    uint64_t t2 = now_ms();
    assert_true(SendPointerEvent(v.client, 10, 10, 0));
    uint64_t t3 = broker_expect_activity(&s, &m);
    assert_true(t3 - t2 < 1000);
    assert_true(m.idle_ms < 1000);
    assert_true(m.bytes_from_client >= from_client + 6);
    assert_true(m.bytes_to_client >= to_client);

    /* A key a second later counts too: the next periodic one (an interval after the last
     * ACTIVITY) reports about interval - 1 s. */
    usleep(1000 * 1000);
    assert_true(SendKeyEvent(v.client, 'a', TRUE));
    assert_true(SendKeyEvent(v.client, 'a', FALSE));
    uint64_t t4 = broker_expect_activity(&s, &m);
    assert_true(t4 - t3 >= PROTO_ACTIVITY_INTERVAL_MS - 100);
    assert_true(m.idle_ms >= PROTO_ACTIVITY_INTERVAL_MS - 1500);
    assert_true(m.idle_ms < PROTO_ACTIVITY_INTERVAL_MS - 500);
    end_with_close(&s, &v, &f);
    assert_non_null(strstr(read_log(), "Desktop attached client=127.0.0.1:4242 user=alice "
                                       "desktop=desk1 connection=1234605616436508552 "
                                       "view_only=no"));
}

/* PROTO_FLAG_VIEW_ONLY: the client's input is dropped and does not count as activity. */
static void test_view_only(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    struct fake_vm f;
    struct proto_message m;
    desktop_ready(&s, &v, &f, PROTO_FLAG_VIEW_ONLY, NULL);
    usleep(500 * 1000);
    assert_true(SendKeyEvent(v.client, 'a', TRUE));
    assert_true(SendKeyEvent(v.client, 'a', FALSE));
    assert_true(SendPointerEvent(v.client, 10, 10, 1));
    broker_expect_activity(&s, &m);
    assert_true(m.idle_ms >= PROTO_ACTIVITY_INTERVAL_MS - 100);
    end_with_close(&s, &v, &f);
    const char *log = read_log();
    assert_non_null(strstr(log, "view_only=yes"));
    if (using_stub())
        assert_non_null(strstr(log, "stub-proxy: freed dropped_input=3"));
}

/* NOTICE shows and removes the banner; CLOSE after the attach replaces the desktop by the
 * reason (proxy_close_desktop) and ends after the linger time. */
static void test_notice_and_close_after_attach(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    struct fake_vm f;
    desktop_ready(&s, &v, &f, 0, NULL);
    broker_send(&s, PROTO_NOTICE, false, "Maintenance at 18:00", -1);
    wait_for_log("Notice shown client=127.0.0.1:4242 user=alice text=\"Maintenance at 18:00\"",
                 5000);
    broker_send(&s, PROTO_NOTICE, false, "", -1);
    wait_for_log("Notice removed client=127.0.0.1:4242 user=alice", 5000);
    uint64_t t0 = now_ms();
    broker_send(&s, PROTO_CLOSE, false, "Taken over by another login", -1);
    assert_int_equal(session_wait(&s, 10000), 0);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 2000 && took < 5000);
    vnc_close(&v);
    fake_vm_stop(&f);
    check_log();
    if (using_stub()) {
        const char *log = read_log();
        const char *a = strstr(log, "stub-proxy: notice text=\"Maintenance at 18:00\"");
        const char *b = strstr(log, "stub-proxy: notice text=\"\"");
        assert_non_null(a);
        assert_non_null(b);
        assert_true(a < b);
        assert_non_null(strstr(log, "stub-proxy: close_desktop text=\"Taken over by another "
                                    "login\""));
    }
}

/* The VM's display goes away (guest powered off): "connection lost" stays up while the
 * broker may still send its CLOSE with the reason, which then replaces it. */
static void test_desktop_lost_then_close(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    struct fake_vm f;
    desktop_ready(&s, &v, &f, 0, NULL);
    wait_for_log("Desktop attached", 5000);
    fake_vm_stop(&f);
    wait_for_log("Desktop display lost client=127.0.0.1:4242 user=alice", 5000);
    usleep(500 * 1000);
    uint64_t t0 = now_ms();
    broker_send(&s, PROTO_CLOSE, false, "Your desktop was shut down", -1);
    assert_int_equal(session_wait(&s, 10000), 0);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 2000 && took < 5000);
    vnc_close(&v);
    check_log();
    if (using_stub())
        assert_non_null(
            strstr(read_log(), "stub-proxy: close_desktop text=\"Your desktop was shut down\""));
}

/* ... and without a word from the broker the session ends a few seconds later. */
static void test_desktop_lost_no_close(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    struct fake_vm f;
    desktop_ready(&s, &v, &f, 0, NULL);
    wait_for_log("Desktop attached", 5000);
    uint64_t t0 = now_ms();
    fake_vm_stop(&f);
    assert_int_equal(session_wait(&s, 10000), 0);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 4500 && took < 8000);
    vnc_close(&v);
    check_log();
    assert_non_null(strstr(read_log(), "waiting for the broker's reason"));
}

static void test_notice_before_ready(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    login_ok(&s, &v, "alice");
    broker_send(&s, PROTO_NOTICE, false, "Too early", -1);
    assert_int_equal(session_wait(&s, 5000), 4);
    vnc_close(&v);
    assert_non_null(strstr(read_log(), "NOTICE before DESKTOP_READY"));
}

/* ---- re-attach after a broker restart ------------------------------------------------ */

static char reattach_name[64];
static char reattach_timeout[16] = "20";
static char broker_uid[16];

/* A SOCK_SEQPACKET listener on an abstract name (what the new broker would open). */
static int reattach_listen(void)
{
    snprintf(reattach_name, sizeof(reattach_name), "vdi-test-reattach-%d", (int)getpid());
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(reattach_name);
    memcpy(sa.sun_path + 1, reattach_name, len);
    int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&sa,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)),
                     0);
    assert_int_equal(listen(l, 4), 0);
    return l;
}

static int reattach_accept(int l, int timeout_ms)
{
    struct pollfd p = {.fd = l, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        fail_msg("vdi-session did not connect to @%s; its log:\n%s", reattach_name, read_log());
    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* Logs in with re-attach configured, attaches, then "restarts the broker": closes the
 * control socket. Returns the listener. */
static int desktop_then_broker_gone(struct session *s, struct vnc *v, struct fake_vm *f, uid_t uid,
                                    bool listen_first)
{
    snprintf(broker_uid, sizeof(broker_uid), "%u", (unsigned)uid);
    int l = listen_first ? reattach_listen() : -1;
    if (!listen_first)
        snprintf(reattach_name, sizeof(reattach_name), "vdi-test-nobody-%d", (int)getpid());
    const char *const extra[] = {
        "--broker-socket", reattach_name, "--broker-uid", broker_uid, "--reattach-timeout-s",
        reattach_timeout,  NULL};
    desktop_ready(s, v, f, 0, extra);
    wait_for_log("Desktop attached", 5000);
    s->broker = safe_close(s->broker);
    return l;
}

/* The new broker's side: accept, read REATTACH, check it. */
static void expect_reattach(struct session *s, int l)
{
    s->broker = reattach_accept(l, 5000);
    struct proto_message m;
    proto_message_init(&m, PROTO_REATTACH);
    broker_recv(s, &m);
    assert_int_equal(m.type, PROTO_REATTACH);
    assert_true(m.id == CONN_ID);
    assert_string_equal(m.token, TOKEN);
    proto_message_done(&m);
}

static void test_reattach_ok(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    struct fake_vm f;
    struct proto_message m;
    snprintf(reattach_timeout, sizeof(reattach_timeout), "20");
    int l = desktop_then_broker_gone(&s, &v, &f, getuid(), true);
    expect_reattach(&s, l);
    /* The client noticed nothing: its input still goes through while the broker is away. */
    assert_true(SendPointerEvent(v.client, 20, 20, 0));
    usleep(100 * 1000);
    uint64_t t0 = now_ms();
    broker_send(&s, PROTO_REATTACH_RESULT, true, "", -1);
    /* The new control socket works like the old one: an ACTIVITY at once, NOTICE, CLOSE. */
    uint64_t t1 = broker_expect_activity(&s, &m);
    assert_true(t1 - t0 < 1000);
    assert_true(m.idle_ms < 1500);
    assert_true(m.bytes_from_client > 0);
    broker_send(&s, PROTO_NOTICE, false, "Welcome back", -1);
    wait_for_log("Notice shown client=127.0.0.1:4242 user=alice text=\"Welcome back\"", 5000);
    end_with_close(&s, &v, &f);
    close(l);
    const char *log = read_log();
    assert_non_null(strstr(log, "re-attaching client=127.0.0.1:4242 user=alice"));
    assert_non_null(strstr(log, "Re-attached to the broker client=127.0.0.1:4242 user=alice "
                                "connection=1234605616436508552 attempts=1"));
}

static void test_reattach_refused(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    struct fake_vm f;
    snprintf(reattach_timeout, sizeof(reattach_timeout), "20");
    int l = desktop_then_broker_gone(&s, &v, &f, getuid(), true);
    expect_reattach(&s, l);
    uint64_t t0 = now_ms();
    broker_send(&s, PROTO_REATTACH_RESULT, false, "Unknown session", -1);
    assert_int_equal(session_wait(&s, 10000), 0);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 2000 && took < 5000); /* the reason stays up for a moment */
    vnc_close(&v);
    fake_vm_stop(&f);
    close(l);
    check_log();
    const char *log = read_log();
    assert_null(strstr(log, TOKEN));
    assert_non_null(strstr(log, "Re-attach refused client=127.0.0.1:4242 user=alice "
                                "connection=1234605616436508552 reason=\"Unknown session\""));
    if (using_stub())
        assert_non_null(strstr(log, "stub-proxy: close_desktop text=\"Unknown session\""));
}

/* A listener under another uid than --broker-uid may be a squatter: the session hangs up
 * without sending the token, and keeps trying until the window is over. */
static void test_reattach_wrong_uid(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    struct fake_vm f;
    snprintf(reattach_timeout, sizeof(reattach_timeout), "3");
    int l = desktop_then_broker_gone(&s, &v, &f, getuid() + 1, true);
    uint64_t t0 = now_ms();
    for (int i = 0; i < 2; i++) { /* the first attempt at once, the next a second later */
        int fd = reattach_accept(l, 3000);
        struct proto_message m;
        proto_message_init(&m, PROTO_REATTACH);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 3000), 1);
        assert_int_equal(proto_recv(fd, PROTO_FROM_SESSION, &m), -EPIPE); /* nothing sent */
        close(fd);
    }
    assert_true(now_ms() - t0 >= 900);
    assert_int_equal(session_wait(&s, 10000), 4);
    vnc_close(&v);
    fake_vm_stop(&f);
    close(l);
    const char *log = read_log();
    assert_non_null(strstr(log, "not the broker's uid"));
    assert_non_null(strstr(log, "Re-attach window over"));
}

/* No broker comes back: after the window the user is told, then the session ends. */
static void test_reattach_window_over(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    struct fake_vm f;
    snprintf(reattach_timeout, sizeof(reattach_timeout), "2");
    desktop_then_broker_gone(&s, &v, &f, getuid(), false);
    uint64_t t0 = now_ms();
    assert_int_equal(session_wait(&s, 10000), 4);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 4000 && took < 7000); /* 2 s window + 2.5 s showing the reason */
    vnc_close(&v);
    fake_vm_stop(&f);
    check_log();
    const char *log = read_log();
    assert_non_null(strstr(log, "Re-attach attempt 1 failed: Connection refused"));
    assert_non_null(strstr(log, "Re-attach attempt 2 failed"));
    assert_non_null(strstr(log, "Re-attach window over"));
    if (using_stub())
        assert_non_null(strstr(log, "stub-proxy: close_desktop text=\"The desktop server is not "
                                    "available; please log in again\""));
}

/* ---- raw clients ------------------------------------------------------------------- */

static int raw_start(struct session *s, const char *timeout)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    session_spawn(s, sv[0], "--handshake-timeout-s", timeout, NULL);
    return sv[1];
}

static uint32_t read_u32(int fd)
{
    uint8_t b[4];
    assert_int_equal(fd_read_full(fd, b, 4, now_ms() + 5000), 0);
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void read_reason(int fd, char *buf, size_t size)
{
    uint32_t len = read_u32(fd);
    assert_true(len > 0 && len < size);
    assert_int_equal(fd_read_full(fd, buf, len, now_ms() + 5000), 0);
    buf[len] = 0;
}

static void test_raw_security_none(void **state)
{
    (void)state;
    struct session s;
    int fd = raw_start(&s, "5");
    char buf[256];
    assert_int_equal(fd_read_full(fd, buf, 12, now_ms() + 5000), 0);
    assert_memory_equal(buf, "RFB 003.008\n", 12);
    assert_int_equal(fd_write_full(fd, "RFB 003.008\n", 12, now_ms() + 5000), 0);
    assert_int_equal(fd_read_full(fd, buf, 2, now_ms() + 5000), 0);
    assert_memory_equal(buf, "\x01\x13", 2); /* VeNCrypt only */
    assert_int_equal(fd_write_full(fd, "\x01", 1, now_ms() + 5000), 0);
    assert_int_equal(read_u32(fd), 1); /* SecurityResult failed */
    read_reason(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "VeNCrypt"));
    assert_int_equal(session_wait(&s, 5000), 2);
    close(fd);
    check_log();
}

static void test_raw_version_33(void **state)
{
    (void)state;
    struct session s;
    int fd = raw_start(&s, "5");
    char buf[256];
    assert_int_equal(fd_read_full(fd, buf, 12, now_ms() + 5000), 0);
    assert_int_equal(fd_write_full(fd, "RFB 003.003\n", 12, now_ms() + 5000), 0);
    assert_int_equal(read_u32(fd), 0); /* 3.3: security type 0 = failed */
    read_reason(fd, buf, sizeof(buf));
    assert_non_null(strstr(buf, "3.8"));
    assert_int_equal(session_wait(&s, 5000), 2);
    close(fd);
}

static void test_raw_silent_client_times_out(void **state)
{
    (void)state;
    struct session s;
    int fd = raw_start(&s, "1");
    uint64_t t0 = now_ms();
    assert_int_equal(session_wait(&s, 5000), 2);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 900 && took < 3000);
    assert_non_null(strstr(read_log(), "step=version"));
    close(fd);
}

/* TLS starts, then the client sends nothing: the TLS handshake has its own deadline. */
static void test_raw_silent_in_tls_handshake(void **state)
{
    (void)state;
    struct session s;
    int fd = raw_start(&s, "1");
    uint8_t buf[64];
    assert_int_equal(fd_read_full(fd, buf, 12, now_ms() + 5000), 0);
    assert_int_equal(fd_write_full(fd, "RFB 003.008\n\x13", 13, now_ms() + 5000), 0);
    assert_int_equal(fd_read_full(fd, buf, 4, now_ms() + 5000), 0); /* types, vencrypt 0.2 */
    assert_int_equal(fd_write_full(fd, "\x00\x02", 2, now_ms() + 5000), 0);
    assert_int_equal(fd_read_full(fd, buf, 6, now_ms() + 5000), 0);
    assert_memory_equal(buf, "\x00\x01\x00\x00\x01\x06", 6);
    assert_int_equal(fd_write_full(fd, "\x00\x00\x01\x06", 4, now_ms() + 5000), 0);
    assert_int_equal(fd_read_full(fd, buf, 1, now_ms() + 5000), 0);
    assert_int_equal(buf[0], 1);
    uint64_t t0 = now_ms();
    assert_int_equal(session_wait(&s, 5000), 2);
    assert_true(now_ms() - t0 < 3000);
    assert_non_null(strstr(read_log(), "TLS handshake failed"));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_login_ok_then_broker_close, setup_log),
        cmocka_unit_test_setup(test_login_refused, setup_log),
        cmocka_unit_test_setup(test_invalid_user_name_not_logged, setup_log),
        cmocka_unit_test_setup(test_ready_before_auth_result, setup_log),
        cmocka_unit_test_setup(test_client_disconnects, setup_log),
        cmocka_unit_test_setup(test_broker_closes_control_socket, setup_log),
        cmocka_unit_test_setup(test_desktop_ready_twice, setup_log),
        cmocka_unit_test_setup(test_sigterm_ends_cleanly, setup_log),
        cmocka_unit_test_setup(test_activity, setup_log),
        cmocka_unit_test_setup(test_view_only, setup_log),
        cmocka_unit_test_setup(test_notice_and_close_after_attach, setup_log),
        cmocka_unit_test_setup(test_notice_before_ready, setup_log),
        cmocka_unit_test_setup(test_desktop_lost_then_close, setup_log),
        cmocka_unit_test_setup(test_desktop_lost_no_close, setup_log),
        cmocka_unit_test_setup(test_reattach_ok, setup_log),
        cmocka_unit_test_setup(test_reattach_refused, setup_log),
        cmocka_unit_test_setup(test_reattach_wrong_uid, setup_log),
        cmocka_unit_test_setup(test_reattach_window_over, setup_log),
        cmocka_unit_test_setup(test_raw_security_none, setup_log),
        cmocka_unit_test_setup(test_raw_version_33, setup_log),
        cmocka_unit_test_setup(test_raw_silent_client_times_out, setup_log),
        cmocka_unit_test_setup(test_raw_silent_in_tls_handshake, setup_log),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
