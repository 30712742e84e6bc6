#pragma once
/*
 * The admin API (API.md): HTTPS REST with JSON on its own port, served by libmicrohttpd
 * (GnuTLS inside) on its own threads, one per connection, so a slow libvirt call in one
 * request never holds up the VNC side or other admins. The one place libmicrohttpd and
 * json-c live in the broker.
 *
 * Every request is authenticated with HTTP Basic through PAM plus membership of
 * admin_group, then dispatched to pools.h (changes) or store.h (listings). Everything in
 * a request is hostile: bodies are capped, JSON fields are type- and range-checked,
 * unknown fields are refused, and errors are JSON with a sentence saying what is wrong.
 */
#include <stdint.h>

#include "pools.h"
#include "store.h"

struct api;

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
    /* Asks the broker's event loop to disconnect a session. Thread-safe. Returns 0 or
     * -ENOENT when no such session is connected. */
    int (*disconnect)(void *userdata, uint64_t session_id, const char *by_admin);
    void *userdata;
    unsigned max_connections; /* concurrent HTTPS connections */
    unsigned timeout_s;       /* idle connection timeout */
};

/* Starts listening. *ret_port (may be NULL) gets the bound port. Returns 0, -EADDRINUSE,
 * -EINVAL (bad address), -EIO. */
int api_start(const struct api_options *o, struct api **ret, uint16_t *ret_port);
/* Stops accepting, waits for running requests, frees. NULL ok. */
void api_stop(struct api *a);
