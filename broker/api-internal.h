#pragma once
/*
 * Inside the admin API: what api.c (server, authentication, routes, handlers) and
 * api-json.c (request bodies, JSON forms of the records) share. Only they and the API's
 * tests include this.
 *
 * A request body is checked against a table of fields (struct api_field): every key must
 * be in the table, of the right JSON type, valid for its kind (names, paths, ranges,
 * enums); required fields must be present. The result is one struct api_value per field,
 * in table order, which the handler turns into a store record.
 */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pools.h"
#include "store.h"

#define API_BODY_MAX (64u * 1024) /* request bodies (413 above) */
#define API_JSON_DEPTH 8          /* nesting accepted in a request body */
#define API_ERROR_MAX 256         /* the sentence of an error response */

enum api_field_kind {
    API_FIELD_NAME,      /* template or pool name (store_name_is_valid) */
    API_FIELD_ACCOUNT,   /* user or group name (username_is_valid) */
    API_FIELD_PATH,      /* absolute path; length in [min, max] ("" only when min is 0) */
    API_FIELD_TEXT,      /* printable text, length in [min, max] */
    API_FIELD_INT,       /* JSON integer in [min, max] */
    API_FIELD_ENUM,      /* one of enum_name(0) .. enum_name(enum_count - 1) */
    API_FIELD_READ_ONLY, /* part of the resource, but set by the server */
};

struct api_field {
    const char *name;
    enum api_field_kind kind;
    bool required; /* on create */
    bool fixed;    /* set on create only: read-only on update (PATCH) */
    int64_t min, max;
    const char *(*enum_name)(int value);
    int enum_count;
};

struct api_value {
    bool set;
    const char *s; /* string kinds: points into the parsed object */
    int64_t i;     /* INT: the number; ENUM: the value */
};

enum api_parse_mode {
    API_PARSE_CREATE, /* required fields must be there */
    API_PARSE_UPDATE, /* every field optional, fixed ones refused */
};

/* Parses body (len bytes, not NUL-terminated; empty = {}) as one JSON object checked
 * against fields. *ret_obj gets the parsed object (the strings in values point into it;
 * release with json_object_put), values[i] the value of fields[i]. Returns 0, or -EINVAL
 * with a sentence in err naming the field. */
int api_body_parse(const char *body, size_t len, const struct api_field *fields,
                   size_t n_fields, enum api_parse_mode mode, struct json_object **ret_obj,
                   struct api_value *values, char *err, size_t err_size);

static inline void api_json_putp(struct json_object **o)
{
    if (*o)
        json_object_put(*o);
}

/* Enum names for field tables (store.h's text forms; NULL when out of range). */
const char *api_os_name(int v);
const char *api_firmware_name(int v);
const char *api_pool_kind_name(int v);
const char *api_logoff_name(int v);
const char *api_entitlement_kind_name(int v);

/* Pool size presets (API.md): "small", "medium", "large". */
struct api_size {
    const char *name;
    int vcpus;
    int memory_mib;
};
extern const struct api_size api_sizes[];
extern const int api_n_sizes;
const char *api_size_name(int v);
/* The preset with exactly these values, or "custom". */
const char *api_size_of(int vcpus, int memory_mib);

/* JSON forms of the records (API.md). Each takes a pointer to its record type and
 * returns a new object, or NULL when out of memory. */
struct json_object *api_template_json(const void *store_template);
struct json_object *api_pool_json(const void *store_pool);
struct json_object *api_desktop_json(const void *pools_desktop_info);
struct json_object *api_entitlement_json(const void *store_entitlement);
struct json_object *api_session_json(const void *store_session);
struct json_object *api_usage_json(const void *store_usage_row);
struct json_object *api_audit_json(const void *store_audit_event);

/* {"<key>": [to_json(items[0]), ...]} for n records of item_size bytes; NULL when out of
 * memory. */
struct json_object *api_list_json(const char *key, const void *items, size_t n,
                                  size_t item_size, struct json_object *(*to_json)(const void *));

/* {"error": "<text>"}; NULL when out of memory. */
struct json_object *api_error_json(const char *text);
