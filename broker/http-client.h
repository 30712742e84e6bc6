#pragma once
/*
 * A small HTTPS/1.1 client for vdictl (and tests of the admin API): one request per
 * connection (Connection: close), TLS through vdi_tls (display/tls.h) with the CA file
 * and host name check, Basic credentials, a Content-Length body. The response is read
 * to EOF with a cap; chunked transfer encoding is understood. Every phase has the one
 * deadline given.
 */
#include <stddef.h>
#include <stdint.h>

#define HTTP_RESPONSE_MAX (16u * 1024 * 1024)

struct http_target {
    char host[256]; /* name or numeric address, no brackets */
    int port;
    const char *ca_file; /* required: the broker's CA (or a public CA bundle) */
};

struct http_request {
    const char *method; /* "GET", "POST", "PATCH", "DELETE" */
    const char *path;   /* "/api/v1/pools?x=y", already percent-encoded */
    const char *user;   /* Basic credentials; NULL = none */
    const char *password;
    const char *body; /* JSON or NULL */
};

struct http_response {
    int status;
    char *body; /* NUL-terminated, malloc'd */
    size_t body_len;
};

/* Parses "https://host[:port]" (port default 8443; IPv6 as "[::1]:8443"). Anything else
 * (http://, a path, junk) is -EINVAL. */
int http_parse_url(const char *url, struct http_target *ret);

/* Returns 0 (any HTTP status), -ECONNREFUSED/-EHOSTUNREACH/-ETIMEDOUT/-errno for the
 * connection, -EPERM (certificate not trusted), -EPROTO (TLS or HTTP malformed),
 * -E2BIG (response over HTTP_RESPONSE_MAX). err gets a sentence for the user. */
int http_request(const struct http_target *t, const struct http_request *req,
                 uint64_t deadline_ms, struct http_response *ret, char *err, size_t err_size);
void http_response_done(struct http_response *r);
