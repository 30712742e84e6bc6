/*
 * Connections of a previous broker run coming back (DESIGN.md's stretch goal): a
 * vdi-session whose broker went away keeps its client and its VM display, and connects to
 * the re-attach socket (common/proto.h). The peer must run as the session user
 * (SO_PEERCRED) and present the token of a connection row that is still open; the store
 * keeps only the token's hash. Rows nobody claims back are closed when the window is over.
 */
#include "broker-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define REATTACH_DEADLINE_MS 10000 /* from accept to REATTACH */
#define REATTACH_ACCEPT_BURST 16

void reattach_accept(struct loop *l)
{
    for (int i = 0; i < REATTACH_ACCEPT_BURST; i++) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        struct connection *c;
        int fd, pidfd, r;

        fd = accept4(l->ctx->reattach_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
            cred.uid != l->ctx->session_uid) {
            log_warning("re-attach refused pid=%d uid=%u: not the session user", (int)cred.pid,
                        (unsigned)cred.uid);
            close(fd);
            continue;
        }
        if (connection_registry_size(l->conns) >= (size_t)l->cfg->max_sessions) {
            log_warning("re-attach refused pid=%d: max_sessions reached", (int)cred.pid);
            close(fd);
            continue;
        }
        /* Not our child: a pidfd signals the right process even if the pid is reused. */
        pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
        if (pidfd < 0) {
            log_warning_errno(-errno, "re-attach refused pid=%d: pidfd_open", (int)cred.pid);
            close(fd);
            continue;
        }
        r = connection_registry_add(l->conns, cred.pid, pidfd, fd, "-", now_ms(), &c);
        if (r < 0) {
            log_error_errno(r, "re-attach refused pid=%d", (int)cred.pid);
            close(pidfd);
            close(fd);
            continue;
        }
        c->deadline_ms = c->created_ms + REATTACH_DEADLINE_MS;
        log_debug("re-attach connection pid=%d temporary id=%" PRIu64, (int)cred.pid, c->id);
    }
}

void reattach_request(struct loop *l, struct connection *c, struct proto_message *m)
{
    struct job *j = job_new(l, JOB_REATTACH, c);

    if (j) {
        j->reattach_id = m->id;
        snprintf(j->token, sizeof(j->token), "%s", m->token);
    }
    if (!j || job_submit(l, j) < 0) {
        job_free(j);
        conn_kill(l, c, "re-attach cannot be checked");
    }
}

static void orphan_claimed(struct loop *l, uint64_t id)
{
    for (size_t i = 0; i < l->n_orphans; i++)
        if (l->orphans[i] == id)
            l->orphans[i] = l->orphans[--l->n_orphans];
}

static void refuse(struct loop *l, struct connection *c, const char *text)
{
    conn_refuse(l, c, PROTO_REATTACH_RESULT, text);
}

void reattach_done(struct loop *l, struct job *j, struct connection *c)
{
    const struct store_session *row = &j->row;
    struct proto_message m;
    const char *refusal;

    if (j->result < 0) {
        log_warning("re-attach refused connection=%" PRIu64 " pid=%d: %s", j->reattach_id,
                    c ? (int)c->pid : 0,
                    j->result == -EPERM    ? "token does not match or the row is closed"
                    : j->result == -ENOENT ? "no such connection"
                    : j->result == -EBUSY  ? "already attached"
                                           : strerror(-j->result));
        if (c)
            refuse(l, c, "Your session cannot be resumed; please log in again");
        return;
    }
    orphan_claimed(l, row->id);
    if (!c || connection_registry_rekey(l->conns, c, row->id) < 0) {
        job_submit_simple(l, JOB_CONNECTION_END, row->id, 0, NULL);
        if (c)
            refuse(l, c, "Your session cannot be resumed; please log in again");
        return;
    }
    (void)connection_set_user(c, row->user);
    snprintf(c->address, sizeof(c->address), "%s", row->client);
    c->started = row->started;
    refusal = sessions_reattached(l, c, row, &j->policy);
    if (refusal) {
        log_info("re-attach refused connection=%" PRIu64 " user=%s: %s", row->id, row->user,
                 refusal);
        job_submit_simple(l, JOB_CONNECTION_END, row->id, 0, NULL);
        refuse(l, c, refusal);
        return;
    }
    proto_message_init(&m, PROTO_REATTACH_RESULT);
    m.ok = true;
    if (conn_send(l, c, &m) == 0)
        c->deadline_ms = 0;
    proto_message_done(&m);
}

void reattach_orphans_tick(struct loop *l, uint64_t now)
{
    if (!l->orphans_due_ms || now < l->orphans_due_ms)
        return;
    for (size_t i = 0; i < l->n_orphans; i++) {
        log_info("connection=%" PRIu64 " of the previous run did not re-attach", l->orphans[i]);
        job_submit_simple(l, JOB_CONNECTION_END, l->orphans[i], 0, NULL);
    }
    l->n_orphans = 0;
    l->orphans_due_ms = 0;
}
