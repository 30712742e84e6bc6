#pragma once
/*
 * The admin API (API.md): HTTPS REST with JSON on its own port, served by libmicrohttpd
 * (GnuTLS inside) on its own threads, one per connection, so a slow libvirt call in one
 * request never holds up the VNC side or other admins. The one place libmicrohttpd and
 * json-c live in the broker.
 *
 * Every request is authenticated with HTTP Basic through PAM plus membership of
 * admin_group (failed checks slowed down and locked out by throttle.h), then dispatched
 * to pools.h (changes), store.h (listings) or the broker's callbacks (live sessions).
 * Every change is an audit event (audit.h), and GET /api/v1/audit reads the audit log
 * back. Everything in a request is hostile: bodies are capped, JSON fields are type- and
 * range-checked, unknown fields are refused, and errors are JSON with a sentence saying
 * what is wrong.
 */
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "pools.h"
#include "session-info.h"
#include "store.h"
#include "throttle.h"

struct api;

enum api_session_action {
    API_SESSION_DISCONNECT, /* close its connections; the desktop stays for the grace period */
    API_SESSION_LOGOFF,     /* close them and run the pool's logoff action now */
};

struct api_options {
    const char *address; /* numeric IP to listen on */
    int port;            /* 0 = any free port (tests) */
    const char *cert_file;
    const char *key_file;
    const char *tls_priority;
    const char *pam_service;
    const char *admin_group;
    struct pools *pools;
    struct store *store;
    struct audit *audit;       /* where changes and API logins are recorded; NULL: nowhere */
    const char *audit_path;    /* the file GET /api/v1/audit reads; NULL: 404 */
    struct throttle *throttle; /* failed admin logins; NULL: no throttling */
    /* The broker's live desktop sessions, as a malloc'd array the API frees. Thread-safe.
     * Returns 0 or a negative errno (-ESHUTDOWN while the broker stops). */
    int (*sessions)(void *userdata, struct session_info **ret, size_t *ret_n);
    /* Asks the broker's event loop to act on a desktop session; by_admin is the admin's
     * name for its log. Thread-safe. Returns 0, -ENOENT (no such live session),
     * -ETIMEDOUT (the loop did not answer in time), -ESHUTDOWN (the broker stops). */
    int (*session_action)(void *userdata, uint64_t session_id, enum api_session_action action,
                          const char *by_admin);
    void *userdata;
    unsigned max_connections; /* concurrent HTTPS connections */
    unsigned timeout_s;       /* idle connection timeout */
};

/* Starts listening. *ret_port (may be NULL) gets the bound port. Returns 0, -EADDRINUSE,
 * -EINVAL (bad address), -EIO. */
int api_start(const struct api_options *o, struct api **ret, uint16_t *ret_port);
/* Stops accepting, waits for running requests, frees. NULL ok. */
void api_stop(struct api *a);
