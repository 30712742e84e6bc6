#pragma once
/*
 * One client connection inside vdi-session: the RFB/VeNCrypt handshake on the client
 * socket, the login question to the broker over the control socket, then the relay
 * between TLS and the in-process RFB proxy until someone ends the session.
 * session-main.c does the command line and the privilege drop around it.
 */
#include <stdint.h>
#include <sys/types.h>

struct tls_server_credentials;

/* Exit codes of vdi-session (documented in display/README.md for the broker). */
enum session_exit {
    SESSION_EXIT_OK = 0,          /* ended normally: client, broker CLOSE, desktop closed */
    SESSION_EXIT_SETUP = 1,       /* bad command line, credentials, privilege drop, no memory */
    SESSION_EXIT_CLIENT = 2,      /* client protocol error, TLS failure, pre-auth timeout */
    SESSION_EXIT_AUTH_FAILED = 3, /* the broker refused the login */
    SESSION_EXIT_BROKER = 4,      /* control socket error or broker protocol violation */
    SESSION_EXIT_DESKTOP = 5,     /* the RFB proxy or the VM display failed */
};

struct session_options {
    int client_fd;              /* connected TCP socket; the session closes it */
    int control_fd;             /* SOCK_SEQPACKET to the broker; the session closes it */
    const char *client_address; /* for logs */
    const char *tls_priority;   /* NULL: TLS_DEFAULT_PRIORITY */
    int handshake_timeout_s;    /* each pre-authentication step */
    int login_timeout_s;        /* connect -> credentials, and credentials -> verdict */
    int status_width, status_height;
    /* Re-attach after a broker restart (README "Re-attach"): the broker's abstract unix
     * socket name (without the leading NUL; NULL: no re-attach), the uid it must run as,
     * and how long to keep trying (0: no re-attach). */
    const char *broker_socket;
    uid_t broker_uid;
    int reattach_timeout_s;
};

/* Runs the whole session on already loaded credentials (the caller keeps them).
 * Blocks SIGTERM/SIGINT/SIGHUP once the relay starts (they end the session cleanly).
 * Returns an enum session_exit value. */
int session_run(const struct session_options *o, struct tls_server_credentials *creds);
