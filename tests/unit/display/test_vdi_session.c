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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <rfb/rfbclient.h>

#include "proto.h"
#include "test-pki.h"
#include "util.h"

#define PASSWORD "correct horse battery"

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

/* Starts vdi-session-stub on client_fd (consumed) with extra arguments (NULL-terminated). */
static void session_spawn(struct session *s, int client_fd, ...)
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
    va_list ap;
    va_start(ap, client_fd);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 30)
        argv[n++] = a;
    va_end(ap);
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

static void login_ok(struct session *s, struct vnc *v, const char *user)
{
    session_spawn(s, vnc_start(v, user), NULL);
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
    broker_send(&s, PROTO_DESKTOP_READY, false, "desk1", sv[0]);
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

static void test_broker_closes_control_socket(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    login_ok(&s, &v, "alice");
    s.broker = safe_close(s.broker);
    assert_int_equal(session_wait(&s, 5000), 0);
    vnc_close(&v);
    check_log();
}

static void test_desktop_ready_twice(void **state)
{
    (void)state;
    struct session s;
    struct vnc v;
    int sv[2];
    login_ok(&s, &v, "alice");
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    broker_send(&s, PROTO_DESKTOP_READY, false, "desk1", sv[0]);
    broker_send(&s, PROTO_DESKTOP_READY, false, "desk1", sv[0]);
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
        cmocka_unit_test_setup(test_raw_security_none, setup_log),
        cmocka_unit_test_setup(test_raw_version_33, setup_log),
        cmocka_unit_test_setup(test_raw_silent_client_times_out, setup_log),
        cmocka_unit_test_setup(test_raw_silent_in_tls_handshake, setup_log),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
