#pragma once
/*
 * Inside the admin API: what api.c (server, authentication, routes, handlers) uses from
 * api-json.c (what request bodies mean, what records look like) and audit-log.c (reading
 * the audit log). Only they and the API's tests include this.
 */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pools.h"
#include "session-info.h"
#include "store.h"

#define API_BODY_MAX (64u * 1024) /* request bodies (413 above) */
#define API_JSON_DEPTH 8          /* nesting accepted in a request body */
#define API_ERROR_MAX 256         /* the sentence of an error response */

/* ---- request bodies ----
 * Each parses body (len bytes, not NUL-terminated; empty or blank = {}) as one JSON
 * object with only the fields API.md gives the resource, each of the right type and
 * valid (names, paths, ranges, enums). Return 0, -ENOMEM, or -EINVAL with a sentence in
 * err naming the field. */

enum api_parse_mode {
    API_PARSE_CREATE, /* required fields must be there, defaults fill the rest */
    API_PARSE_UPDATE, /* every field optional; name and created refused */
};

/* A template to add: defaults os "linux", firmware "bios" (linux) / "uefi" (windows),
 * kernel/initrd/cmdline "". created is left 0. */
int api_template_parse(const char *body, size_t len, struct store_template *ret, char *err,
                       size_t err_size);
/* CREATE: *p becomes the new pool (defaults: size small, kind dedicated, min_spare 0,
 * max_desktops 10, logoff keep/reset by kind, disconnect_grace_s 300, idle_timeout_s 0,
 * max_session_s 0, stop_action none/reset by kind). UPDATE: the given fields change *p.
 * "size" sets vcpus and memory_mib; explicit vcpus/memory_mib override it. */
int api_pool_parse(const char *body, size_t len, enum api_parse_mode mode, struct store_pool *p,
                   char *err, size_t err_size);
int api_entitlement_parse(const char *body, size_t len, struct store_entitlement *ret, char *err,
                          size_t err_size);
/* {"user": "alice"} */
int api_assign_parse(const char *body, size_t len, char user[STORE_NAME_MAX + 1], char *err,
                     size_t err_size);
/* Requests without a body: nothing, or {}. */
int api_empty_parse(const char *body, size_t len, char *err, size_t err_size);

/* ---- responses ----
 * JSON forms of the records (API.md). Each takes a pointer to its record type and
 * returns a new object, or NULL when out of memory. */
struct json_object *api_template_json(const void *store_template);
struct json_object *api_pool_json(const void *store_pool);
struct json_object *api_desktop_json(const void *pools_desktop_info);
struct json_object *api_entitlement_json(const void *store_entitlement);
struct json_object *api_session_json(const void *store_session);     /* history rows */
struct json_object *api_session_info_json(const void *session_info); /* live sessions */
struct json_object *api_usage_json(const void *store_usage_row);

/* {"<key>": [to_json(items[0]), ...]} for n records of item_size bytes; NULL when out of
 * memory. */
struct json_object *api_list_json(const char *key, const void *items, size_t n, size_t item_size,
                                  struct json_object *(*to_json)(const void *));

/* ---- the audit log ---- */

/* Which events GET /api/v1/audit wants. */
struct api_audit_query {
    int64_t since;      /* unix seconds, inclusive; 0: from the start */
    int64_t until;      /* unix seconds, exclusive; INT64_MAX: no end */
    const char *event;  /* "login" matches "login" and "login.*"; NULL: any */
    const char *user;   /* equals the "user" or the "actor" field; NULL: any */
    const char *client; /* the "client" field's address (a port after ':' is ignored) */
    size_t limit;       /* >= 1 */
};

/* Reads the audit log at path backwards: *ret = {"events": [...]} with the newest limit
 * events that match q, newest first, each the line's own object. Lines that are not JSON
 * objects are skipped; a file that does not exist yet gives an empty list. Returns 0,
 * -EINVAL (not a regular file), -ENOMEM or the read's negative errno. */
int api_audit_read(const char *path, const struct api_audit_query *q, struct json_object **ret);

/* {"error": "<text>"}; NULL when out of memory. */
struct json_object *api_error_json(const char *text);

/* Releases *o (NULL is fine) and clears it; also for _cleanup_. */
static inline void api_json_putp(struct json_object **o)
{
    if (*o)
        json_object_put(*o);
    *o = NULL;
}
