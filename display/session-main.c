/*
 * vdi-session: one process per client connection, fork+exec'd by vdi-broker.
 * See display/README.md for the command line, the exit codes and the thread model.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "session.h"
#include "tls.h"
#include "util.h"

struct arguments {
    struct session_options session;
    const char *tls_cert, *tls_key, *user;
    bool broker_uid_set;
};

static void usage(FILE *f)
{
    fputs("Usage: vdi-session --client-fd N --control-fd N --client-address ADDR\n"
          "                   --tls-cert FILE --tls-key FILE [--tls-priority STR]\n"
          "                   [--user NAME] [--handshake-timeout-s N] [--login-timeout-s N]\n"
          "                   [--broker-socket NAME] [--broker-uid UID]\n"
          "                   [--reattach-timeout-s N] [--log-level error|warning|info|debug]\n"
          "One client connection of the vdi broker; not meant to be started by hand.\n",
          f);
}

static int parse_int(const char *s, int min, int max, int *ret)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != 0 || v < min || v > max)
        return -EINVAL;
    *ret = (int)v;
    return 0;
}

static int parse_uid(const char *s, uid_t *ret)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    /* (uid_t)-1 means "no change" to the set*id calls: never a real uid. */
    if (errno != 0 || end == s || *end != 0 || s[0] == '-' || v >= (unsigned long)(uid_t)-1)
        return -EINVAL;
    *ret = (uid_t)v;
    return 0;
}

/* An abstract socket name: 1..107 printable ASCII characters without spaces (it is also
 * logged as socket=@NAME). */
static int parse_socket_name(const char *s)
{
    struct sockaddr_un sa;
    socklen_t len;
    if (net_abstract_address(s, &sa, &len) < 0)
        return -EINVAL;
    for (size_t i = 0; s[i]; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return -EINVAL;
    return 0;
}

static int parse_arguments(int argc, char **argv, struct arguments *a)
{
    enum {
        OPT_CLIENT_FD = 0x100,
        OPT_CONTROL_FD,
        OPT_CLIENT_ADDRESS,
        OPT_TLS_CERT,
        OPT_TLS_KEY,
        OPT_TLS_PRIORITY,
        OPT_USER,
        OPT_HANDSHAKE_TIMEOUT,
        OPT_LOGIN_TIMEOUT,
        OPT_BROKER_SOCKET,
        OPT_BROKER_UID,
        OPT_REATTACH_TIMEOUT,
        OPT_LOG_LEVEL,
        OPT_HELP,
    };
    static const struct option options[] = {
        {"client-fd", required_argument, NULL, OPT_CLIENT_FD},
        {"control-fd", required_argument, NULL, OPT_CONTROL_FD},
        {"client-address", required_argument, NULL, OPT_CLIENT_ADDRESS},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"tls-priority", required_argument, NULL, OPT_TLS_PRIORITY},
        {"user", required_argument, NULL, OPT_USER},
        {"handshake-timeout-s", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
        {"login-timeout-s", required_argument, NULL, OPT_LOGIN_TIMEOUT},
        {"broker-socket", required_argument, NULL, OPT_BROKER_SOCKET},
        {"broker-uid", required_argument, NULL, OPT_BROKER_UID},
        {"reattach-timeout-s", required_argument, NULL, OPT_REATTACH_TIMEOUT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, OPT_HELP},
        {0},
    };
    *a = (struct arguments){
        .session =
            {
                .client_fd = -1,
                .control_fd = -1,
                .handshake_timeout_s = 10,
                .login_timeout_s = 60,
                .status_width = 1024,
                .status_height = 768,
                .reattach_timeout_s = 120,
            },
    };

    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
        int r = 0;
        switch (c) {
        case OPT_CLIENT_FD:
            r = parse_int(optarg, 3, INT_MAX, &a->session.client_fd);
            break;
        case OPT_CONTROL_FD:
            r = parse_int(optarg, 3, INT_MAX, &a->session.control_fd);
            break;
        case OPT_CLIENT_ADDRESS:
            a->session.client_address = optarg;
            break;
        case OPT_TLS_CERT:
            a->tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            a->tls_key = optarg;
            break;
        case OPT_TLS_PRIORITY:
            a->session.tls_priority = optarg;
            break;
        case OPT_USER:
            a->user = optarg;
            break;
        case OPT_HANDSHAKE_TIMEOUT:
            r = parse_int(optarg, 1, 600, &a->session.handshake_timeout_s);
            break;
        case OPT_LOGIN_TIMEOUT:
            r = parse_int(optarg, 1, 3600, &a->session.login_timeout_s);
            break;
        case OPT_BROKER_SOCKET:
            r = parse_socket_name(optarg);
            a->session.broker_socket = optarg;
            break;
        case OPT_BROKER_UID:
            r = parse_uid(optarg, &a->session.broker_uid);
            a->broker_uid_set = true;
            break;
        case OPT_REATTACH_TIMEOUT:
            r = parse_int(optarg, 0, 3600, &a->session.reattach_timeout_s);
            break;
        case OPT_LOG_LEVEL: {
            enum log_level level;
            r = log_level_from_string(optarg, &level);
            if (r >= 0)
                log_set_level(level);
            break;
        }
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return -EINVAL;
        }
        if (r < 0) {
            log_error("Invalid value '%s' for option --%s", optarg,
                      options[c - OPT_CLIENT_FD].name);
            return r;
        }
    }
    if (optind < argc) {
        log_error("Unexpected argument '%s'", argv[optind]);
        return -EINVAL;
    }
    if (a->session.client_fd < 0 || a->session.control_fd < 0 || !a->session.client_address ||
        !a->tls_cert || !a->tls_key) {
        log_error("--client-fd, --control-fd, --client-address, --tls-cert and --tls-key are "
                  "required");
        return -EINVAL;
    }
    if (a->session.client_fd == a->session.control_fd) {
        log_error("--client-fd and --control-fd must differ");
        return -EINVAL;
    }
    /* The broker started us: by default it runs as the uid we were started with. */
    if (!a->broker_uid_set)
        a->session.broker_uid = getuid();
    return 1;
}

/* The inherited fd must be a socket of the given type; it is marked close-on-exec. */
static int check_socket(int fd, int type, const char *what)
{
    int t = 0;
    socklen_t len = sizeof(t);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return log_error_errno(-errno, "%s fd %d is not open", what, fd);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &len) < 0)
        return log_error_errno(-errno, "%s fd %d is not a socket", what, fd);
    if (t != type) {
        log_error("%s fd %d has the wrong socket type %d", what, fd, t);
        return -EINVAL;
    }
    return 0;
}

/* Anything the broker leaked to us besides stdio and our two sockets is closed. */
static void close_other_fds(int keep_a, int keep_b)
{
    int lo = keep_a < keep_b ? keep_a : keep_b, hi = keep_a < keep_b ? keep_b : keep_a;
    if (lo > 3)
        (void)close_range(3, (unsigned)lo - 1, 0);
    if (hi > lo + 1)
        (void)close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
    (void)close_range((unsigned)hi + 1, ~0U, 0);
}

/* As root: become user for good (no supplementary groups, no way back). Not root: stay.
 * Either way: no new privileges through exec, no ptrace/core dumps by the same uid. */
static int drop_privileges(const char *user)
{
    if (geteuid() == 0) {
        if (!user) {
            log_error("Refusing to run as root without --user");
            return -EPERM;
        }
        struct passwd pwbuf, *pw = NULL;
        char buf[4096];
        int r = getpwnam_r(user, &pwbuf, buf, sizeof(buf), &pw);
        if (r != 0)
            return log_error_errno(-r, "Cannot look up user '%s'", user);
        if (!pw) {
            log_error("No such user '%s'", user);
            return -ESRCH;
        }
        if (pw->pw_uid == 0 || pw->pw_gid == 0) {
            log_error("User '%s' is root: refusing it as the session user", user);
            return -EPERM;
        }
        uid_t uid = pw->pw_uid;
        gid_t gid = pw->pw_gid;
        if (setgroups(0, NULL) < 0)
            return log_error_errno(-errno, "setgroups failed");
        if (setresgid(gid, gid, gid) < 0)
            return log_error_errno(-errno, "setresgid(%u) failed", (unsigned)gid);
        if (setresuid(uid, uid, uid) < 0)
            return log_error_errno(-errno, "setresuid(%u) failed", (unsigned)uid);
        /* Verify: no way back to root, ids as asked. */
        if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 || getuid() != uid ||
            geteuid() != uid || getgid() != gid || getegid() != gid || getgroups(0, NULL) != 0) {
            log_error("Privilege drop to '%s' did not stick", user);
            return -EPERM;
        }
        log_debug("Running as user=%s uid=%u gid=%u", user, (unsigned)uid, (unsigned)gid);
    } else if (user) {
        log_debug("Not root: --user %s ignored, running as uid=%u", user, (unsigned)getuid());
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return log_error_errno(-errno, "PR_SET_NO_NEW_PRIVS failed");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return log_error_errno(-errno, "PR_SET_DUMPABLE failed");
    return 0;
}

int main(int argc, char **argv)
{
    struct arguments a;
    struct tls_server_credentials *creds = NULL;

    log_set_ident("vdi-session");
    signal(SIGPIPE, SIG_IGN);

    int r = parse_arguments(argc, argv, &a);
    if (r <= 0)
        return r < 0 ? SESSION_EXIT_SETUP : 0;
    close_other_fds(a.session.client_fd, a.session.control_fd);
    if (check_socket(a.session.client_fd, SOCK_STREAM, "client") < 0 ||
        check_socket(a.session.control_fd, SOCK_SEQPACKET, "control") < 0)
        return SESSION_EXIT_SETUP;

    /* Credentials first (the key may be readable by root only), then drop root. */
    r = tls_server_credentials_new(a.tls_cert, a.tls_key, &creds);
    if (r < 0) {
        log_error_errno(r, "Cannot load TLS certificate '%s' and key '%s'", a.tls_cert, a.tls_key);
        return SESSION_EXIT_SETUP;
    }
    if (drop_privileges(a.user) < 0) {
        tls_server_credentials_free(creds);
        return SESSION_EXIT_SETUP;
    }

    int ret = session_run(&a.session, creds);
    tls_server_credentials_free(creds);
    return ret;
}
