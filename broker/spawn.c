/* fork + exec of vdi-session (spawn.h). */
#include "broker-spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define SESSION_PROGRAM_NAME "vdi-session"

int spawn_find_program(const char *configured, const char *installed_path, char **ret)
{
    char self[PATH_MAX], *slash, *s = NULL;
    ssize_t n;

    if (configured && *configured) {
        s = strdup(configured);
        goto found;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        slash = strrchr(self, '/');
        if (slash) {
            slash[1] = 0;
            if (asprintf(&s, "%s" SESSION_PROGRAM_NAME, self) < 0)
                return -ENOMEM;
            if (access(s, X_OK) == 0)
                goto found;
            free(s);
            s = NULL;
        }
    }
    if (installed_path && access(installed_path, X_OK) == 0) {
        s = strdup(installed_path);
        goto found;
    }
    return -ENOENT;
found:
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

pid_t spawn_session(const struct spawn_params *p, const char *client_address, int client_fd,
                    int control_fd)
{
    char handshake[16], login[16], uid[16], reattach[16];
    sigset_t none;
    pid_t pid;

    snprintf(handshake, sizeof(handshake), "%d", p->handshake_timeout_s);
    snprintf(login, sizeof(login), "%d", p->login_timeout_s);
    snprintf(uid, sizeof(uid), "%u", (unsigned)p->broker_uid);
    snprintf(reattach, sizeof(reattach), "%d", p->reattach_timeout_s);
    /* Everything the child needs is built before fork(). */
    const char *argv[] = {
        SESSION_PROGRAM_NAME,
        "--client-fd",
        "3",
        "--control-fd",
        "4",
        "--client-address",
        client_address,
        "--tls-cert",
        p->tls_cert,
        "--tls-key",
        p->tls_key,
        "--tls-priority",
        p->tls_priority,
        "--user",
        p->session_user,
        "--handshake-timeout-s",
        handshake,
        "--login-timeout-s",
        login,
        "--log-level",
        p->log_level,
        NULL, /* the re-attach options go here, when configured */
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
        NULL,
    };
    if (p->broker_socket && p->broker_socket[0]) {
        const char **o = argv + ARRAY_SIZE(argv) - 7;
        o[0] = "--broker-socket";
        o[1] = p->broker_socket;
        o[2] = "--broker-uid";
        o[3] = uid;
        o[4] = "--reattach-timeout-s";
        o[5] = reattach;
    }
    sigemptyset(&none);

    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        return pid;

    /* Child: async-signal-safe calls only (the broker has threads). */
    {
        int c, k;
        struct sigaction dfl = {.sa_handler = SIG_DFL};

        /* Move both above 4 first so dup2 never clobbers one with the other and always
         * makes a new descriptor (dup2 onto itself would keep O_CLOEXEC). */
        c = fcntl(client_fd, F_DUPFD_CLOEXEC, SPAWN_CONTROL_FD + 1);
        k = fcntl(control_fd, F_DUPFD_CLOEXEC, SPAWN_CONTROL_FD + 1);
        if (c < 0 || k < 0)
            _exit(127);
        if (dup2(c, SPAWN_CLIENT_FD) < 0 || dup2(k, SPAWN_CONTROL_FD) < 0)
            _exit(127);
        close_range(SPAWN_CONTROL_FD + 1, ~0U, 0);

        for (int sig = 1; sig < _NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                sigaction(sig, &dfl, NULL);
        sigprocmask(SIG_SETMASK, &none, NULL);

        execv(p->program, (char *const *)argv);
        _exit(127);
    }
}
