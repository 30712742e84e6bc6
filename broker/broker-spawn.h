#pragma once
/* Starting one vdi-session process per client connection. */
#include <sys/types.h>

#define SPAWN_CLIENT_FD 3
#define SPAWN_CONTROL_FD 4

struct spawn_params {
    const char *program; /* absolute path of vdi-session */
    const char *tls_cert;
    const char *tls_key;
    const char *tls_priority;
    const char *session_user;
    int handshake_timeout_s;
    int login_timeout_s;
    const char *log_level;
    /* Re-attach after a broker restart (display/README.md): the abstract SOCK_SEQPACKET
     * socket name the broker listens on (without the leading NUL; NULL or "": the three
     * options are not passed and the session cannot re-attach), the broker's uid, and the
     * window in seconds (0..3600; 0: no re-attach). */
    const char *broker_socket;
    uid_t broker_uid;
    int reattach_timeout_s;
};

/* Finds vdi-session: configured, else next to /proc/self/exe, else installed_path.
 * Returns 0 or -ENOENT; *ret is malloc'd. */
int spawn_find_program(const char *configured, const char *installed_path, char **ret);

/* fork + exec of
 *   vdi-session --client-fd 3 --control-fd 4 --client-address ADDR --tls-cert FILE
 *     --tls-key FILE --tls-priority STR --user USER --handshake-timeout-s N
 *     --login-timeout-s N [--broker-socket NAME --broker-uid UID --reattach-timeout-s N]
 *     --log-level LEVEL
 * with client_fd as fd 3 and control_fd as fd 4 (CLOEXEC cleared by dup2), every other
 * fd above 2 closed, signal mask and dispositions reset. Multithreaded-safe: the child only
 * makes async-signal-safe calls. The caller keeps (and should close) its fds.
 * Returns the pid or -errno. */
pid_t spawn_session(const struct spawn_params *p, const char *client_address, int client_fd,
                    int control_fd);
