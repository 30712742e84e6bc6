#pragma once
/*
 * client_connect() (connect.h, blocking, with deadlines) in a worker thread, so the login
 * screen stays responsive: the job copies everything it needs, and when it finishes it
 * posts UI_EVENT_CONNECT_DONE with itself as data1. A job the app no longer wants
 * (Escape) is abandoned: it finishes on its own (within connect.h's deadlines) and is
 * freed by whoever receives its event; after connect_jobs_shutdown() (the window is going
 * away) a finishing job frees itself.
 */
#include <stdbool.h>
#include <stdint.h>

#include "handshake.h"
#include "tls.h"

struct ui;

struct connect_request {
    const char *host;
    int port;
    const char *ca_file;       /* NULL or a PEM file */
    const uint8_t *pin_sha256; /* NULL or TLS_SHA256_SIZE bytes; all zero = learn only */
    const char *login;         /* "user", "user@pool", "user@?" */
    const char *password;
};

struct connect_job {
    /* Results, valid once the UI_EVENT_CONNECT_DONE event arrived. */
    int result; /* 0 or client_connect()'s -errno */
    struct handshake_status status;
    uint8_t peer_sha256[TLS_SHA256_SIZE];
    bool have_peer_sha256;
    struct tls_conn *tls; /* on success; taken with TAKE_PTR or freed with the job */
    bool learn_only;      /* the request trusted nothing (first contact, TOFU) */

    /* Private. */
    char *host, *ca_file, *login, *password;
    int port;
    bool use_pin;
    uint8_t pin[TLS_SHA256_SIZE];
};

/* Copies req and starts the thread (detached). Returns 0 or -errno. */
int connect_job_start(struct ui *ui, const struct connect_request *req, struct connect_job **ret);

/* No more events: jobs still running free themselves when they finish. Call before the
 * ui is freed, then drain the UI_EVENT_CONNECT_DONE events already queued. */
void connect_jobs_shutdown(void);

/* After its event: frees the job (and a TLS connection nobody took). */
void connect_job_free(struct connect_job *j);
