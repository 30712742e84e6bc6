/* The admin API's JSON: checking request bodies against field tables, and the JSON forms
 * of the store's records (api-internal.h, API.md). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api-internal.h"
#include "util.h"

/* A request body is checked against a table of fields: every key must be in the table,
 * of the right JSON type and valid for its kind; required fields must be present. The
 * result is one struct api_value per field, in table order. */
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
    bool fixed;    /* set on create only: refused on update (PATCH) */
    int64_t min, max;
    const char *(*enum_name)(int value);
    int enum_count;
};

struct api_value {
    bool set;
    const char *s; /* string kinds: points into the parsed object */
    int64_t i;     /* INT: the number; ENUM: the value */
};

/* Pool size presets (API.md). */
#define API_N_SIZES 3
struct api_size {
    const char *name;
    int vcpus;
    int memory_mib;
};

/* ---- enum names --------------------------------------------------------------------- */

static const char *api_os_name(int v)
{
    return v >= 0 && v <= STORE_OS_WINDOWS ? store_os_to_string((enum store_os)v) : NULL;
}

static const char *api_firmware_name(int v)
{
    return v >= 0 && v <= STORE_FIRMWARE_UEFI ? store_firmware_to_string((enum store_firmware)v)
                                              : NULL;
}

static const char *api_pool_kind_name(int v)
{
    return v >= 0 && v <= STORE_POOL_FLOATING ? store_pool_kind_to_string((enum store_pool_kind)v)
                                              : NULL;
}

static const char *api_logoff_name(int v)
{
    return v >= 0 && v <= STORE_LOGOFF_RESET ? store_logoff_to_string((enum store_logoff)v) : NULL;
}

static const char *api_stop_action_name(int v)
{
    return v >= 0 && v <= STORE_STOP_RESET ? store_stop_action_to_string((enum store_stop_action)v)
                                           : NULL;
}

static const char *api_entitlement_kind_name(int v)
{
    return v >= 0 && v <= STORE_ENTITLE_GROUP
               ? store_entitlement_kind_to_string((enum store_entitlement_kind)v)
               : NULL;
}

static const struct api_size api_sizes[API_N_SIZES] = {
    {"small", 1, 2048},
    {"medium", 2, 4096},
    {"large", 4, 8192},
};

static const char *api_size_name(int v)
{
    return v >= 0 && v < API_N_SIZES ? api_sizes[v].name : NULL;
}

static const char *api_size_of(int vcpus, int memory_mib)
{
    for (int i = 0; i < API_N_SIZES; i++)
        if (api_sizes[i].vcpus == vcpus && api_sizes[i].memory_mib == memory_mib)
            return api_sizes[i].name;
    return "custom";
}

/* ---- request bodies ----------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t err_size, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static bool has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return true;
    return false;
}

static bool only_space(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/* A key from the request, fit to be quoted in an error sentence. */
static void printable_key(const char *key, char *buf, size_t size)
{
    size_t i = 0;
    for (; key[i] && i + 1 < size; i++)
        buf[i] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
    buf[i] = '\0';
}

static int check_string(const struct api_field *f, struct json_object *v, struct api_value *ret,
                        char *err, size_t err_size)
{
    if (!json_object_is_type(v, json_type_string))
        return fail(err, err_size, "field '%s' must be a string", f->name);
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (strlen(s) != n)
        return fail(err, err_size, "field '%s' must not contain NUL characters", f->name);

    switch (f->kind) {
    case API_FIELD_NAME:
        if (!store_name_is_valid(s))
            return fail(err, err_size,
                        "field '%s' must be 1 to %d characters of a-z, 0-9 and '-', starting "
                        "with a letter or digit",
                        f->name, STORE_NAME_MAX);
        break;
    case API_FIELD_ACCOUNT:
        if (!username_is_valid(s))
            return fail(err, err_size,
                        "field '%s' must be an account name: 1 to %d characters of a-z, A-Z, "
                        "0-9, '.', '_' and '-', not starting with '-' or '.'",
                        f->name, STORE_NAME_MAX);
        break;
    case API_FIELD_PATH:
        if ((int64_t)n < f->min || (int64_t)n > f->max || (n > 0 && s[0] != '/'))
            return fail(err, err_size,
                        "field '%s' must be %san absolute path of at most %" PRId64 " characters",
                        f->name, f->min == 0 ? "\"\" or " : "", f->max);
        if (has_control_chars(s))
            return fail(err, err_size, "field '%s' must not contain control characters", f->name);
        break;
    case API_FIELD_TEXT:
        if ((int64_t)n < f->min || (int64_t)n > f->max)
            return fail(err, err_size,
                        "field '%s' must be %" PRId64 " to %" PRId64 " characters long", f->name,
                        f->min, f->max);
        if (has_control_chars(s))
            return fail(err, err_size, "field '%s' must not contain control characters", f->name);
        break;
    case API_FIELD_ENUM: {
        for (int i = 0; i < f->enum_count; i++) {
            const char *name = f->enum_name(i);
            if (name && streq(name, s)) {
                ret->i = i;
                ret->set = true;
                return 0;
            }
        }
        char list[128] = "";
        size_t used = 0;
        for (int i = 0; i < f->enum_count && used < sizeof(list); i++) {
            const char *name = f->enum_name(i);
            int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
                             name ? name : "?");
            if (w < 0)
                break;
            used += (size_t)w;
        }
        return fail(err, err_size, "field '%s' must be one of: %s", f->name, list);
    }
    default:
        return fail(err, err_size, "field '%s' cannot be given", f->name);
    }
    ret->s = s;
    ret->set = true;
    return 0;
}

static int check_field(const struct api_field *f, enum api_parse_mode mode, struct json_object *v,
                       struct api_value *ret, char *err, size_t err_size)
{
    if (f->kind == API_FIELD_READ_ONLY)
        return fail(err, err_size, "field '%s' is set by the server and cannot be given", f->name);
    if (mode == API_PARSE_UPDATE && f->fixed)
        return fail(err, err_size, "field '%s' cannot be changed", f->name);
    if (f->kind != API_FIELD_INT)
        return check_string(f, v, ret, err, err_size);

    if (!json_object_is_type(v, json_type_int))
        return fail(err, err_size, "field '%s' must be an integer", f->name);
    int64_t i = json_object_get_int64(v);
    /* json-c saturates numbers beyond int64; uint64 ones read as INT64_MAX */
    if (i < f->min || i > f->max)
        return fail(err, err_size, "field '%s' must be between %" PRId64 " and %" PRId64, f->name,
                    f->min, f->max);
    ret->i = i;
    ret->set = true;
    return 0;
}

/* Parses body (len bytes, not NUL-terminated; blank = {}) as one JSON object checked
 * against fields. *ret_obj gets the parsed object (the strings in values point into it),
 * values[i] the value of fields[i]. Returns 0, -ENOMEM, or -EINVAL with a sentence in err
 * naming the field. */
static int body_parse(const char *body, size_t len, const struct api_field *fields, size_t n_fields,
                      enum api_parse_mode mode, struct json_object **ret_obj,
                      struct api_value *values, char *err, size_t err_size)
{
    _cleanup_(api_json_putp) struct json_object *obj = NULL;

    *ret_obj = NULL;
    if (n_fields)
        memset(values, 0, n_fields * sizeof(*values));
    if (len > API_BODY_MAX)
        return fail(err, err_size, "the request body is larger than %u bytes", API_BODY_MAX);

    if (!body || only_space(body, len)) {
        obj = json_object_new_object();
        if (!obj)
            return -ENOMEM;
    } else {
        struct json_tokener *tok = json_tokener_new_ex(API_JSON_DEPTH);
        if (!tok)
            return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        obj = json_tokener_parse_ex(tok, body, (int)len);
        enum json_tokener_error e = json_tokener_get_error(tok);
        size_t end = json_tokener_get_parse_end(tok);
        if (e == json_tokener_continue) {
            /* all of it read: a bare literal ("null", "12") only ends with a NUL */
            obj = json_tokener_parse_ex(tok, "", 1);
            e = json_tokener_get_error(tok);
            end = len;
        }
        json_tokener_free(tok);
        if (e != json_tokener_success)
            return fail(err, err_size, "malformed JSON: %s", json_tokener_error_desc(e));
        if (end > len || !only_space(body + end, len - end))
            return fail(err, err_size, "malformed JSON: text after the object");
    }
    if (!json_object_is_type(obj, json_type_object))
        return fail(err, err_size, "the request body must be a JSON object");

    json_object_object_foreach(obj, key, val)
    {
        size_t i = 0;
        while (i < n_fields && !streq(fields[i].name, key))
            i++;
        if (i == n_fields) {
            char shown[65];
            printable_key(key, shown, sizeof(shown));
            return fail(err, err_size, "unknown field '%s'", shown);
        }
        int r = check_field(&fields[i], mode, val, &values[i], err, err_size);
        if (r < 0)
            return r;
    }
    if (mode == API_PARSE_CREATE)
        for (size_t i = 0; i < n_fields; i++)
            if (fields[i].required && !values[i].set)
                return fail(err, err_size, "missing field '%s'", fields[i].name);
    *ret_obj = TAKE_PTR(obj);
    return 0;
}

/* ---- what request bodies mean ------------------------------------------------------ */

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

enum { T_NAME, T_OS, T_FIRMWARE, T_DISK, T_KERNEL, T_INITRD, T_CMDLINE, T_CREATED, T_COUNT };
static const struct api_field template_fields[T_COUNT] = {
    [T_NAME] = {"name", API_FIELD_NAME, .required = true},
    [T_OS] = {"os", API_FIELD_ENUM, .enum_name = api_os_name, .enum_count = STORE_OS_WINDOWS + 1},
    [T_FIRMWARE] = {"firmware", API_FIELD_ENUM, .enum_name = api_firmware_name,
                    .enum_count = STORE_FIRMWARE_UEFI + 1},
    [T_DISK] = {"disk", API_FIELD_PATH, .required = true, .min = 1, .max = STORE_PATH_MAX - 1},
    [T_KERNEL] = {"kernel", API_FIELD_PATH, .max = STORE_PATH_MAX - 1},
    [T_INITRD] = {"initrd", API_FIELD_PATH, .max = STORE_PATH_MAX - 1},
    [T_CMDLINE] = {"cmdline", API_FIELD_TEXT, .max = STORE_TEXT_MAX - 1},
    [T_CREATED] = {"created", API_FIELD_READ_ONLY},
};

int api_template_parse(const char *body, size_t len, struct store_template *t, char *err,
                       size_t err_size)
{
    _cleanup_(api_json_putp) struct json_object *obj = NULL;
    struct api_value v[T_COUNT];
    int r =
        body_parse(body, len, template_fields, T_COUNT, API_PARSE_CREATE, &obj, v, err, err_size);
    if (r < 0)
        return r;

    *t = (struct store_template){.os = STORE_OS_LINUX};
    copy(t->name, sizeof(t->name), v[T_NAME].s);
    if (v[T_OS].set)
        t->os = (enum store_os)v[T_OS].i;
    if (v[T_FIRMWARE].set)
        t->firmware = (enum store_firmware)v[T_FIRMWARE].i;
    else
        t->firmware = t->os == STORE_OS_WINDOWS ? STORE_FIRMWARE_UEFI : STORE_FIRMWARE_BIOS;
    copy(t->disk, sizeof(t->disk), v[T_DISK].s);
    copy(t->kernel, sizeof(t->kernel), v[T_KERNEL].s);
    copy(t->initrd, sizeof(t->initrd), v[T_INITRD].s);
    copy(t->cmdline, sizeof(t->cmdline), v[T_CMDLINE].s);
    return 0;
}

enum {
    P_NAME,
    P_TEMPLATE,
    P_SIZE,
    P_VCPUS,
    P_MEMORY,
    P_KIND,
    P_MIN_SPARE,
    P_MAX_DESKTOPS,
    P_LOGOFF,
    P_GRACE,
    P_IDLE,
    P_MAX_SESSION,
    P_STOP_ACTION,
    P_CREATED,
    P_COUNT
};
/* Ranges as store.c checks them. */
static const struct api_field pool_fields[P_COUNT] = {
    [P_NAME] = {"name", API_FIELD_NAME, .required = true, .fixed = true},
    [P_TEMPLATE] = {"template", API_FIELD_NAME, .required = true},
    [P_SIZE] = {"size", API_FIELD_ENUM, .enum_name = api_size_name, .enum_count = API_N_SIZES},
    [P_VCPUS] = {"vcpus", API_FIELD_INT, .min = 1, .max = 256},
    [P_MEMORY] = {"memory_mib", API_FIELD_INT, .min = 64, .max = 4 * 1024 * 1024},
    [P_KIND] = {"kind", API_FIELD_ENUM, .enum_name = api_pool_kind_name,
                .enum_count = STORE_POOL_FLOATING + 1},
    [P_MIN_SPARE] = {"min_spare", API_FIELD_INT, .min = 0, .max = 10000},
    [P_MAX_DESKTOPS] = {"max_desktops", API_FIELD_INT, .min = 1, .max = 10000},
    [P_LOGOFF] = {"logoff", API_FIELD_ENUM, .enum_name = api_logoff_name,
                  .enum_count = STORE_LOGOFF_RESET + 1},
    [P_GRACE] = {"disconnect_grace_s", API_FIELD_INT, .min = 0, .max = 7 * 24 * 3600},
    [P_IDLE] = {"idle_timeout_s", API_FIELD_INT, .min = 0, .max = 7 * 24 * 3600},
    [P_MAX_SESSION] = {"max_session_s", API_FIELD_INT, .min = 0, .max = 30 * 24 * 3600},
    [P_STOP_ACTION] = {"stop_action", API_FIELD_ENUM, .enum_name = api_stop_action_name,
                       .enum_count = STORE_STOP_RESET + 1},
    [P_CREATED] = {"created", API_FIELD_READ_ONLY},
};

int api_pool_parse(const char *body, size_t len, enum api_parse_mode mode, struct store_pool *p,
                   char *err, size_t err_size)
{
    _cleanup_(api_json_putp) struct json_object *obj = NULL;
    struct api_value v[P_COUNT];
    int r = body_parse(body, len, pool_fields, P_COUNT, mode, &obj, v, err, err_size);
    if (r < 0)
        return r;

    if (mode == API_PARSE_CREATE) {
        *p = (struct store_pool){
            .vcpus = api_sizes[0].vcpus,
            .memory_mib = api_sizes[0].memory_mib,
            .kind = STORE_POOL_DEDICATED,
            .min_spare = 0,
            .max_desktops = 10,
            .disconnect_grace_s = 300,
        };
        copy(p->name, sizeof(p->name), v[P_NAME].s);
    }
    if (v[P_TEMPLATE].set)
        copy(p->template_name, sizeof(p->template_name), v[P_TEMPLATE].s);
    if (v[P_SIZE].set) {
        p->vcpus = api_sizes[v[P_SIZE].i].vcpus;
        p->memory_mib = api_sizes[v[P_SIZE].i].memory_mib;
    }
    if (v[P_VCPUS].set)
        p->vcpus = (int)v[P_VCPUS].i;
    if (v[P_MEMORY].set)
        p->memory_mib = (int)v[P_MEMORY].i;
    if (v[P_KIND].set)
        p->kind = (enum store_pool_kind)v[P_KIND].i;
    if (v[P_MIN_SPARE].set)
        p->min_spare = (int)v[P_MIN_SPARE].i;
    if (v[P_MAX_DESKTOPS].set)
        p->max_desktops = (int)v[P_MAX_DESKTOPS].i;
    if (v[P_LOGOFF].set)
        p->logoff = (enum store_logoff)v[P_LOGOFF].i;
    else if (mode == API_PARSE_CREATE)
        p->logoff = p->kind == STORE_POOL_FLOATING ? STORE_LOGOFF_RESET : STORE_LOGOFF_KEEP;
    if (v[P_GRACE].set)
        p->disconnect_grace_s = (int)v[P_GRACE].i;
    if (v[P_IDLE].set)
        p->idle_timeout_s = (int)v[P_IDLE].i;
    if (v[P_MAX_SESSION].set)
        p->max_session_s = (int)v[P_MAX_SESSION].i;
    if (v[P_STOP_ACTION].set)
        p->stop_action = (enum store_stop_action)v[P_STOP_ACTION].i;
    else if (mode == API_PARSE_CREATE)
        p->stop_action = p->kind == STORE_POOL_FLOATING ? STORE_STOP_RESET : STORE_STOP_NONE;
    if (p->min_spare > p->max_desktops)
        return fail(err, err_size, "min_spare (%d) cannot exceed max_desktops (%d)", p->min_spare,
                    p->max_desktops);
    return 0;
}

enum { E_POOL, E_KIND, E_NAME, E_COUNT };
static const struct api_field entitlement_fields[E_COUNT] = {
    [E_POOL] = {"pool", API_FIELD_NAME, .required = true},
    [E_KIND] = {"kind", API_FIELD_ENUM, .required = true, .enum_name = api_entitlement_kind_name,
                .enum_count = STORE_ENTITLE_GROUP + 1},
    [E_NAME] = {"name", API_FIELD_ACCOUNT, .required = true},
};

int api_entitlement_parse(const char *body, size_t len, struct store_entitlement *e, char *err,
                          size_t err_size)
{
    _cleanup_(api_json_putp) struct json_object *obj = NULL;
    struct api_value v[E_COUNT];
    int r = body_parse(body, len, entitlement_fields, E_COUNT, API_PARSE_CREATE, &obj, v, err,
                       err_size);
    if (r < 0)
        return r;
    *e = (struct store_entitlement){.kind = (enum store_entitlement_kind)v[E_KIND].i};
    copy(e->pool, sizeof(e->pool), v[E_POOL].s);
    copy(e->name, sizeof(e->name), v[E_NAME].s);
    return 0;
}

static const struct api_field assign_fields[] = {
    {"user", API_FIELD_ACCOUNT, .required = true},
};

int api_assign_parse(const char *body, size_t len, char user[STORE_NAME_MAX + 1], char *err,
                     size_t err_size)
{
    _cleanup_(api_json_putp) struct json_object *obj = NULL;
    struct api_value v[ARRAY_SIZE(assign_fields)];
    int r = body_parse(body, len, assign_fields, ARRAY_SIZE(assign_fields), API_PARSE_CREATE, &obj,
                       v, err, err_size);
    if (r < 0)
        return r;
    copy(user, STORE_NAME_MAX + 1, v[0].s);
    return 0;
}

int api_empty_parse(const char *body, size_t len, char *err, size_t err_size)
{
    _cleanup_(api_json_putp) struct json_object *obj = NULL;
    return body_parse(body, len, NULL, 0, API_PARSE_CREATE, &obj, NULL, err, err_size);
}

/* ---- responses ---------------------------------------------------------------------- */

/* Adds v under key; on failure (v NULL or no memory) releases v and returns false. */
static bool add(struct json_object *o, const char *key, struct json_object *v)
{
    if (!v)
        return false;
    if (json_object_object_add(o, key, v) < 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static struct json_object *str(const char *s)
{
    return json_object_new_string(s ? s : "unknown");
}

static struct json_object *int64(int64_t v)
{
    return json_object_new_int64(v);
}

/* Seconds and the like, to the millisecond, without json-c's 17 significant digits. */
static struct json_object *number(double v)
{
    char buf[64];
    if (!isfinite(v))
        v = 0;
    snprintf(buf, sizeof(buf), "%.3f", v);
    return json_object_new_double_s(v, buf);
}

/* Returns o when every add succeeded, else releases it and returns NULL. */
static struct json_object *done(struct json_object *o, bool ok)
{
    if (ok)
        return o;
    json_object_put(o);
    return NULL;
}

struct json_object *api_error_json(const char *text)
{
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    return done(o, add(o, "error", str(text)));
}

struct json_object *api_template_json(const void *record)
{
    const struct store_template *t = record;
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    bool ok = add(o, "name", str(t->name)) && add(o, "os", str(store_os_to_string(t->os))) &&
              add(o, "firmware", str(store_firmware_to_string(t->firmware))) &&
              add(o, "disk", str(t->disk)) && add(o, "kernel", str(t->kernel)) &&
              add(o, "initrd", str(t->initrd)) && add(o, "cmdline", str(t->cmdline)) &&
              add(o, "created", int64(t->created));
    return done(o, ok);
}

struct json_object *api_pool_json(const void *record)
{
    const struct store_pool *p = record;
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    bool ok = add(o, "name", str(p->name)) && add(o, "template", str(p->template_name)) &&
              add(o, "size", str(api_size_of(p->vcpus, p->memory_mib))) &&
              add(o, "vcpus", int64(p->vcpus)) && add(o, "memory_mib", int64(p->memory_mib)) &&
              add(o, "kind", str(store_pool_kind_to_string(p->kind))) &&
              add(o, "min_spare", int64(p->min_spare)) &&
              add(o, "max_desktops", int64(p->max_desktops)) &&
              add(o, "logoff", str(store_logoff_to_string(p->logoff))) &&
              add(o, "disconnect_grace_s", int64(p->disconnect_grace_s)) &&
              add(o, "idle_timeout_s", int64(p->idle_timeout_s)) &&
              add(o, "max_session_s", int64(p->max_session_s)) &&
              add(o, "stop_action", str(store_stop_action_to_string(p->stop_action))) &&
              add(o, "created", int64(p->created));
    return done(o, ok);
}

struct json_object *api_desktop_json(const void *record)
{
    const struct pools_desktop_info *i = record;
    const struct store_desktop *d = &i->desktop;
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    bool ok = add(o, "name", str(d->name)) && add(o, "pool", str(d->pool)) &&
              add(o, "owner", str(d->owner)) &&
              add(o, "state", str(store_desktop_state_to_string(d->state))) &&
              add(o, "power", str(virt_state_to_string(i->power))) &&
              add(o, "connected", int64(i->connected)) && add(o, "created", int64(d->created)) &&
              add(o, "assigned", int64(d->assigned));
    return done(o, ok);
}

struct json_object *api_entitlement_json(const void *record)
{
    const struct store_entitlement *e = record;
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    bool ok = add(o, "pool", str(e->pool)) &&
              add(o, "kind", str(store_entitlement_kind_to_string(e->kind))) &&
              add(o, "name", str(e->name));
    return done(o, ok);
}

struct json_object *api_session_json(const void *record)
{
    const struct store_session *s = record;
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    bool ok = add(o, "id", json_object_new_uint64(s->id)) &&
              add(o, "session_id", json_object_new_uint64(s->session_id)) &&
              add(o, "kind", str(store_session_kind_to_string(s->kind))) &&
              add(o, "user", str(s->user)) && add(o, "pool", str(s->pool)) &&
              add(o, "desktop", str(s->desktop)) && add(o, "client", str(s->client)) &&
              add(o, "started", int64(s->started)) && add(o, "ended", int64(s->ended));
    return done(o, ok);
}

/* A fixed-size text field, NUL or not. */
#define FIXED(a) json_object_new_string_len((a), (int)strnlen((a), sizeof(a)))

struct json_object *api_session_info_json(const void *record)
{
    const struct session_info *s = record;
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    bool ok = add(o, "id", json_object_new_uint64(s->id)) && add(o, "user", FIXED(s->user)) &&
              add(o, "pool", FIXED(s->pool)) && add(o, "desktop", FIXED(s->desktop)) &&
              add(o, "state", FIXED(s->state)) && add(o, "client", FIXED(s->client)) &&
              add(o, "started", int64(s->started)) && add(o, "idle_s", int64(s->idle_s)) &&
              add(o, "disconnected_s", int64(s->disconnected_s)) &&
              add(o, "bytes_to_client", json_object_new_uint64(s->bytes_to_client)) &&
              add(o, "bytes_from_client", json_object_new_uint64(s->bytes_from_client)) &&
              add(o, "shadows", int64(s->shadows));
    return done(o, ok);
}

struct json_object *api_usage_json(const void *record)
{
    const struct store_usage_row *u = record;
    struct json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    bool ok = add(o, "user", str(u->user)) && add(o, "pool", str(u->pool)) &&
              add(o, "vcpu_seconds", number(u->vcpu_seconds)) &&
              add(o, "memory_mib_seconds", number(u->memory_mib_seconds)) &&
              add(o, "connected_seconds", number(u->connected_seconds));
    return done(o, ok);
}

struct json_object *api_list_json(const char *key, const void *items, size_t n, size_t item_size,
                                  struct json_object *(*to_json)(const void *))
{
    struct json_object *o = json_object_new_object();
    struct json_object *a = json_object_new_array_ext(n > INT_MAX ? INT_MAX : (int)n);
    if (!o || !a) {
        if (a)
            json_object_put(a);
        return done(o, false);
    }
    for (size_t i = 0; i < n; i++) {
        struct json_object *item = to_json((const char *)items + i * item_size);
        if (!item || json_object_array_add(a, item) < 0) {
            if (item)
                json_object_put(item);
            json_object_put(a);
            return done(o, false);
        }
    }
    return done(o, add(o, key, a));
}
