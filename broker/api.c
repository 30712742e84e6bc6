/*
 * The admin API server (api.h, API.md): libmicrohttpd with GnuTLS, one thread per
 * connection. Each request goes through the same steps, in order:
 *   1. headers in: authenticate (PAM + admin group), find the route (404, 405), check
 *      the query parameters and the announced body size (413); a refused request is
 *      answered before its body (refuse_at_once) or after reading and dropping it, so no
 *      body of a refused request is ever kept;
 *   2. body in: kept up to API_BODY_MAX (413 beyond);
 *   3. the route's handler: checks the body (api-json.c), calls pools.h (changes, desktop
 *      listings), store.h (plain listings) or the broker's callbacks (live sessions),
 *      records each change in the audit log (audit.h) with the admin's name and address,
 *      and answers JSON.
 * Authentication goes through the throttle (throttle.h) first: an address or account with
 * too many recent failures is answered 429 without a PAM check.
 * The routes are one table (routes[]); handlers return the HTTP status they answered.
 */
#include "api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "api-internal.h"
#include "auth.h"
#include "groups.h"
#include "listener.h"
#include "log.h"
#include "util.h"

#define API_REALM "vdi"
#define API_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define API_DEFAULT_CONNECTIONS 32u
#define API_DEFAULT_TIMEOUT_S 30u
#define API_PEM_MAX (1024 * 1024)
#define API_DISCARD_MAX (1024u * 1024) /* body bytes read (and dropped) to answer 413 */
#define API_ARG_MAX 128                /* the {} segment of a path */
#define API_ADDRESS_MAX 64
#define API_SESSIONS_HISTORY_MAX 1000
#define API_AUDIT_LIMIT_DEFAULT 100
#define API_AUDIT_LIMIT_MAX 10000
#define API_USAGE_PERIOD_S (30 * 24 * 3600)

struct api {
    struct MHD_Daemon *daemon;
    struct pools *pools;
    struct store *store;
    struct audit *audit;
    char *audit_path;
    struct throttle *throttle;
    char *pam_service;
    char *admin_group;
    int (*sessions)(void *userdata, struct session_info **ret, size_t *ret_n);
    int (*session_action)(void *userdata, uint64_t session_id, enum api_session_action action,
                          const char *by_admin);
    void *userdata;
    atomic_bool starting; /* libmicrohttpd's messages are warnings while starting */
};

struct api_call;
typedef unsigned (*api_handler)(struct api_call *c);

struct api_route {
    const char *method;
    const char *pattern; /* "{}" stands for one path segment (the call's arg) */
    api_handler handler;
    bool body;                /* takes a JSON body; others accept only none or {} */
    const char *const *query; /* allowed query parameters, NULL-terminated; NULL: none */
    const void *data;         /* for the handler */
};

/* One request: what its handler gets and what it answers. */
struct api_call {
    struct api *api;
    struct MHD_Connection *conn;
    const struct api_route *route;
    char client[API_ADDRESS_MAX];
    char user[STORE_NAME_MAX + 1]; /* the authenticated admin */
    char arg[API_ARG_MAX];
    char *body;
    size_t body_len;
    size_t body_seen; /* bytes received, kept or not */
    bool answered;    /* a response is queued */
    /* the answer */
    unsigned status;
    struct json_object *reply;
    char *text; /* /metrics */
    size_t text_len;
    char allow[64]; /* 405 */
    uint64_t retry_after_s; /* 429 */
};

/* ---- answers ------------------------------------------------------------------------ */

static unsigned answer(struct api_call *c, unsigned status, struct json_object *reply)
{
    api_json_putp(&c->reply);
    c->status = reply ? status : MHD_HTTP_INTERNAL_SERVER_ERROR;
    c->reply = reply ? reply : api_error_json("out of memory");
    return c->status;
}

__attribute__((format(printf, 3, 4))) static unsigned
answer_error(struct api_call *c, unsigned status, const char *fmt, ...)
{
    char text[API_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return answer(c, status, api_error_json(text));
}

static unsigned answer_no_content(struct api_call *c)
{
    api_json_putp(&c->reply);
    c->status = MHD_HTTP_NO_CONTENT;
    return c->status;
}

/* Maps a pools.h / store.h error to its status (API.md). */
static unsigned status_of(int r)
{
    switch (r) {
    case -EINVAL:
        return MHD_HTTP_BAD_REQUEST;
    case -ENOENT:
    case -EPERM:
        return MHD_HTTP_NOT_FOUND;
    case -EEXIST:
    case -EBUSY:
    case -EAGAIN:
        return MHD_HTTP_CONFLICT;
    case -ENOSPC:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

/* Answers a failed pools.h call: its sentence for 4xx/503, a generic one (and the details
 * in the log) for anything else. */
static unsigned answer_failure(struct api_call *c, int r, const struct pools_error *err,
                               const char *action, const char *target)
{
    unsigned status = status_of(r);
    if (status == MHD_HTTP_INTERNAL_SERVER_ERROR) {
        log_error("admin user=%s action=%s target=%s failed: %s", c->user, action, target,
                  err && err->log[0] ? err->log : strerror(-r));
        return answer_error(c, status, "internal error (the broker's log has the details)");
    }
    log_debug("admin user=%s action=%s target=%s refused: %s", c->user, action, target,
              err && err->text[0] ? err->text : strerror(-r));
    if (err && err->text[0])
        return answer_error(c, status, "%s", err->text);
    if (status == MHD_HTTP_NOT_FOUND)
        return answer_error(c, status, "'%s' not found", target);
    if (status == MHD_HTTP_CONFLICT)
        return answer_error(c, status, "'%s' is in use or exists already", target);
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        return answer_error(c, status, "not enough capacity on the host");
    return answer_error(c, status, "invalid request");
}

/* Answers a failed store.h read of kind ("template", "pool", ...) named target. */
static unsigned answer_store_failure(struct api_call *c, int r, const char *kind,
                                     const char *target)
{
    if (r == -ENOENT)
        return answer_error(c, MHD_HTTP_NOT_FOUND, "no %s named '%s'", kind, target);
    struct pools_error err = {.text = ""};
    snprintf(err.log, sizeof(err.log), "store: %s", strerror(-r));
    return answer_failure(c, r == -EINVAL ? -EINVAL : -EIO, &err, kind, target);
}

/* A change went through: one log line and one audit event "admin.<action>" with the
 * admin's name and address. */
__attribute__((format(printf, 4, 5))) static void changed(struct api_call *c, const char *action,
                                                          const char *target, const char *fmt, ...)
{
    char detail[STORE_TEXT_MAX], event[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);

    log_info("admin user=%s action=%s target=%s", c->user, action, target);
    snprintf(event, sizeof(event), "admin.%s", action);
    (void)audit_event(c->api->audit, event, "actor", c->user, "target", target, "detail", detail,
                      "client", c->client, NULL);
}

/* ---- request helpers ---------------------------------------------------------------- */

/* Whether a body parsed (r from api_*_parse); else it has answered 400 with err (or 500). */
static bool parsed(struct api_call *c, int r, const char *err)
{
    if (r == -EINVAL)
        answer_error(c, MHD_HTTP_BAD_REQUEST, "%s", err);
    else if (r < 0)
        answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
    return r >= 0;
}

static const char *query(struct api_call *c, const char *name)
{
    return MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* A decimal integer query parameter in [min, max] (def when absent); false when it has
 * answered 400. */
static bool query_int(struct api_call *c, const char *name, int64_t min, int64_t max, int64_t def,
                      int64_t *ret)
{
    const char *s = query(c, name);
    char *end = NULL;

    *ret = def;
    if (!s)
        return true;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if ((s[0] != '-' && (s[0] < '0' || s[0] > '9')) || *end || errno == ERANGE || v < min ||
        v > max) {
        answer_error(c, MHD_HTTP_BAD_REQUEST,
                     "query parameter '%s' must be an integer between %" PRId64 " and %" PRId64,
                     name, min, max);
        return false;
    }
    *ret = v;
    return true;
}

/* A query parameter that must pass valid() (NULL when absent); false when it has
 * answered 400. */
static bool query_name(struct api_call *c, const char *name, bool (*valid)(const char *),
                       const char **ret)
{
    *ret = query(c, name);
    if (*ret && !valid(*ret)) {
        answer_error(c, MHD_HTTP_BAD_REQUEST, "query parameter '%s' is not a valid name", name);
        return false;
    }
    return true;
}

/* Desktop (libvirt domain) names: 1..STORE_DESKTOP_MAX of [A-Za-z0-9._-]. */
static bool desktop_name_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > STORE_DESKTOP_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* ---- templates ---------------------------------------------------------------------- */

static unsigned on_template_list(struct api_call *c)
{
    _cleanup_(freep) struct store_template *list = NULL;
    size_t n = 0;
    int r = store_template_list(c->api->store, &list, &n);
    if (r < 0)
        return answer_store_failure(c, r, "template", "*");
    return answer(c, MHD_HTTP_OK,
                  api_list_json("templates", list, n, sizeof(*list), api_template_json));
}

static unsigned on_template_get(struct api_call *c)
{
    struct store_template t;
    int r = store_name_is_valid(c->arg) ? store_template_get(c->api->store, c->arg, &t) : -ENOENT;
    if (r < 0)
        return answer_store_failure(c, r, "template", c->arg);
    return answer(c, MHD_HTTP_OK, api_template_json(&t));
}

static unsigned on_template_add(struct api_call *c)
{
    char e[API_ERROR_MAX];
    struct store_template t;
    struct pools_error err = {.text = ""};

    if (!parsed(c, api_template_parse(c->body, c->body_len, &t, e, sizeof(e)), e))
        return c->status;
    t.created = time(NULL);
    int r = pools_template_add(c->api->pools, &t, &err);
    if (r < 0)
        return answer_failure(c, r, &err, "template.add", t.name);
    changed(c, "template.add", t.name, "os=%s firmware=%s disk=%s kernel=%s",
            store_os_to_string(t.os), store_firmware_to_string(t.firmware), t.disk, t.kernel);
    (void)store_template_get(c->api->store, t.name, &t); /* as stored; else as sent */
    return answer(c, MHD_HTTP_CREATED, api_template_json(&t));
}

static unsigned on_template_delete(struct api_call *c)
{
    struct pools_error err = {.text = ""};
    if (!store_name_is_valid(c->arg))
        return answer_store_failure(c, -ENOENT, "template", c->arg);
    int r = pools_template_delete(c->api->pools, c->arg, &err);
    if (r < 0)
        return answer_failure(c, r, &err, "template.delete", c->arg);
    changed(c, "template.delete", c->arg, "%s", "");
    return answer_no_content(c);
}

/* ---- pools -------------------------------------------------------------------------- */

static void pool_changed(struct api_call *c, const char *action, const struct store_pool *p)
{
    changed(c, action, p->name,
            "template=%s vcpus=%d memory_mib=%d kind=%s min_spare=%d max_desktops=%d logoff=%s "
            "disconnect_grace_s=%d idle_timeout_s=%d max_session_s=%d stop_action=%s",
            p->template_name, p->vcpus, p->memory_mib, store_pool_kind_to_string(p->kind),
            p->min_spare, p->max_desktops, store_logoff_to_string(p->logoff), p->disconnect_grace_s,
            p->idle_timeout_s, p->max_session_s, store_stop_action_to_string(p->stop_action));
}

static unsigned on_pool_list(struct api_call *c)
{
    _cleanup_(freep) struct store_pool *list = NULL;
    size_t n = 0;
    int r = store_pool_list(c->api->store, &list, &n);
    if (r < 0)
        return answer_store_failure(c, r, "pool", "*");
    return answer(c, MHD_HTTP_OK, api_list_json("pools", list, n, sizeof(*list), api_pool_json));
}

static unsigned on_pool_get(struct api_call *c)
{
    struct store_pool p;
    int r = store_name_is_valid(c->arg) ? store_pool_get(c->api->store, c->arg, &p) : -ENOENT;
    if (r < 0)
        return answer_store_failure(c, r, "pool", c->arg);
    return answer(c, MHD_HTTP_OK, api_pool_json(&p));
}

static unsigned on_pool_add(struct api_call *c)
{
    char e[API_ERROR_MAX];
    struct store_pool p;
    struct pools_error err = {.text = ""};

    if (!parsed(c, api_pool_parse(c->body, c->body_len, API_PARSE_CREATE, &p, e, sizeof(e)), e))
        return c->status;
    p.created = time(NULL);
    int r = pools_pool_add(c->api->pools, &p, &err);
    if (r < 0)
        return answer_failure(c, r, &err, "pool.add", p.name);
    pool_changed(c, "pool.add", &p);
    (void)store_pool_get(c->api->store, p.name, &p);
    return answer(c, MHD_HTTP_CREATED, api_pool_json(&p));
}

/* Read, change, write: of two concurrent PATCHes of one pool the last one wins. */
static unsigned on_pool_update(struct api_call *c)
{
    char e[API_ERROR_MAX];
    struct store_pool p;
    struct pools_error err = {.text = ""};

    int r = store_name_is_valid(c->arg) ? store_pool_get(c->api->store, c->arg, &p) : -ENOENT;
    if (r < 0)
        return answer_store_failure(c, r, "pool", c->arg);
    if (!parsed(c, api_pool_parse(c->body, c->body_len, API_PARSE_UPDATE, &p, e, sizeof(e)), e))
        return c->status;
    r = pools_pool_update(c->api->pools, &p, &err);
    if (r < 0)
        return answer_failure(c, r, &err, "pool.update", p.name);
    pool_changed(c, "pool.update", &p);
    (void)store_pool_get(c->api->store, p.name, &p);
    return answer(c, MHD_HTTP_OK, api_pool_json(&p));
}

static unsigned on_pool_delete(struct api_call *c)
{
    struct pools_error err = {.text = ""};
    if (!store_name_is_valid(c->arg))
        return answer_store_failure(c, -ENOENT, "pool", c->arg);
    int r = pools_pool_delete(c->api->pools, c->arg, &err);
    if (r < 0)
        return answer_failure(c, r, &err, "pool.delete", c->arg);
    changed(c, "pool.delete", c->arg, "%s", "");
    return answer_no_content(c);
}

/* ---- desktops ----------------------------------------------------------------------- */

static unsigned on_desktop_list(struct api_call *c)
{
    _cleanup_(freep) struct pools_desktop_info *list = NULL;
    struct pools_error err = {.text = ""};
    const char *pool;
    size_t n = 0;

    if (!query_name(c, "pool", store_name_is_valid, &pool))
        return c->status;
    int r = pools_desktop_list(c->api->pools, pool, &list, &n, &err);
    if (r < 0)
        return answer_failure(c, r, &err, "desktop.list", pool ? pool : "*");
    return answer(c, MHD_HTTP_OK,
                  api_list_json("desktops", list, n, sizeof(*list), api_desktop_json));
}

/* Answers the desktop c->arg as it is now (status 200). */
static unsigned answer_desktop(struct api_call *c)
{
    struct pools_desktop_info d;
    struct pools_error err = {.text = ""};
    int r = desktop_name_is_valid(c->arg) ? pools_desktop_get(c->api->pools, c->arg, &d, &err)
                                          : -ENOENT;
    if (r == -ENOENT && !err.text[0])
        return answer_error(c, MHD_HTTP_NOT_FOUND, "no desktop named '%s'", c->arg);
    if (r < 0)
        return answer_failure(c, r, &err, "desktop.get", c->arg);
    return answer(c, MHD_HTTP_OK, api_desktop_json(&d));
}

static unsigned on_desktop_get(struct api_call *c)
{
    return answer_desktop(c);
}

static unsigned on_desktop_assign(struct api_call *c)
{
    char e[API_ERROR_MAX], user[STORE_NAME_MAX + 1];
    struct pools_error err = {.text = ""};

    if (!parsed(c, api_assign_parse(c->body, c->body_len, user, e, sizeof(e)), e))
        return c->status;
    if (!desktop_name_is_valid(c->arg))
        return answer_error(c, MHD_HTTP_NOT_FOUND, "no desktop named '%s'", c->arg);
    int r = pools_desktop_assign(c->api->pools, c->arg, user, &err);
    if (r < 0)
        return answer_failure(c, r, &err, "desktop.assign", c->arg);
    changed(c, "desktop.assign", c->arg, "user=%s", user);
    return answer_desktop(c);
}

/* unassign, start, stop, reset: no body, the desktop as it is afterwards. */
struct desktop_action {
    const char *action;
    int (*run)(struct pools *p, const char *name, struct pools_error *err);
};
static const struct desktop_action desktop_unassign = {"desktop.unassign", pools_desktop_unassign};
static const struct desktop_action desktop_start = {"desktop.start", pools_desktop_start};
static const struct desktop_action desktop_stop = {"desktop.stop", pools_desktop_stop};
static const struct desktop_action desktop_reset = {"desktop.reset", pools_desktop_reset};

static unsigned on_desktop_action(struct api_call *c)
{
    const struct desktop_action *a = c->route->data;
    struct pools_error err = {.text = ""};

    if (!desktop_name_is_valid(c->arg))
        return answer_error(c, MHD_HTTP_NOT_FOUND, "no desktop named '%s'", c->arg);
    int r = a->run(c->api->pools, c->arg, &err);
    if (r < 0)
        return answer_failure(c, r, &err, a->action, c->arg);
    changed(c, a->action, c->arg, "%s", "");
    return answer_desktop(c);
}

/* ---- entitlements ------------------------------------------------------------------- */

static unsigned on_entitlement_list(struct api_call *c)
{
    _cleanup_(freep) struct store_entitlement *list = NULL;
    const char *pool;
    size_t n = 0;

    if (!query_name(c, "pool", store_name_is_valid, &pool))
        return c->status;
    int r = store_entitlement_list(c->api->store, pool, &list, &n);
    if (r < 0)
        return answer_store_failure(c, r, "pool", pool ? pool : "*");
    return answer(c, MHD_HTTP_OK,
                  api_list_json("entitlements", list, n, sizeof(*list), api_entitlement_json));
}

static unsigned on_entitlement_change(struct api_call *c)
{
    bool add = streq(c->route->method, "POST");
    const char *action = add ? "entitlement.add" : "entitlement.delete";
    char e[API_ERROR_MAX];
    struct store_entitlement ent;
    struct pools_error err = {.text = ""};

    if (!parsed(c, api_entitlement_parse(c->body, c->body_len, &ent, e, sizeof(e)), e))
        return c->status;
    int r = add ? pools_entitlement_add(c->api->pools, &ent, &err)
                : pools_entitlement_delete(c->api->pools, &ent, &err);
    if (r < 0)
        return answer_failure(c, r, &err, action, ent.pool);
    changed(c, action, ent.pool, "%s=%s", store_entitlement_kind_to_string(ent.kind), ent.name);
    return add ? answer(c, MHD_HTTP_CREATED, api_entitlement_json(&ent)) : answer_no_content(c);
}

/* ---- sessions, usage, audit, metrics ------------------------------------------------ */

/* ?history=1: the store's connection rows (ended ones too); else the live desktop
 * sessions from the broker. */
static unsigned on_session_list(struct api_call *c)
{
    struct api *a = c->api;
    int64_t history;

    if (!query_int(c, "history", 0, 1, 0, &history))
        return c->status;
    if (history) {
        _cleanup_(freep) struct store_session *list = NULL;
        size_t n = 0;
        int r = store_session_list(a->store, false, API_SESSIONS_HISTORY_MAX, &list, &n);
        if (r < 0)
            return answer_store_failure(c, r, "session", "*");
        return answer(c, MHD_HTTP_OK,
                      api_list_json("sessions", list, n, sizeof(*list), api_session_json));
    }

    _cleanup_(freep) struct session_info *list = NULL;
    size_t n = 0;
    int r = a->sessions ? a->sessions(a->userdata, &list, &n) : 0;
    if (r == -ESHUTDOWN)
        return answer_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the broker is shutting down");
    if (r < 0)
        return answer_failure(c, r, NULL, "session.list", "*");
    return answer(c, MHD_HTTP_OK,
                  api_list_json("sessions", list, n, sizeof(*list), api_session_info_json));
}

/* The id in c->arg; false (having answered 404) when it is not a session number. */
static bool session_id_arg(struct api_call *c, uint64_t *ret)
{
    char *end = NULL;
    errno = 0;
    if (c->arg[0] >= '0' && c->arg[0] <= '9') {
        unsigned long long v = strtoull(c->arg, &end, 10);
        if (!*end && errno == 0 && v <= INT64_MAX) {
            *ret = v;
            return true;
        }
    }
    answer_error(c, MHD_HTTP_NOT_FOUND, "no live session with id '%s'", c->arg);
    return false;
}

/* One live session, as in the list (vdictl session shadow checks it exists). */
static unsigned on_session_get(struct api_call *c)
{
    struct api *a = c->api;
    _cleanup_(freep) struct session_info *list = NULL;
    size_t n = 0;
    uint64_t id;

    if (!session_id_arg(c, &id))
        return c->status;
    int r = a->sessions ? a->sessions(a->userdata, &list, &n) : 0;
    if (r == -ESHUTDOWN)
        return answer_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the broker is shutting down");
    if (r < 0)
        return answer_failure(c, r, NULL, "session.get", c->arg);
    for (size_t i = 0; i < n; i++)
        if (list[i].id == id)
            return answer(c, MHD_HTTP_OK, api_session_info_json(&list[i]));
    return answer_error(c, MHD_HTTP_NOT_FOUND, "no live session with id '%s'", c->arg);
}

struct session_action {
    const char *action;
    enum api_session_action what;
};
static const struct session_action session_disconnect = {"session.disconnect",
                                                         API_SESSION_DISCONNECT};
static const struct session_action session_logoff = {"session.logoff", API_SESSION_LOGOFF};

static unsigned on_session_action(struct api_call *c)
{
    const struct session_action *sa = c->route->data;
    struct api *a = c->api;
    uint64_t id;

    if (!session_id_arg(c, &id))
        return c->status;
    int r = a->session_action ? a->session_action(a->userdata, id, sa->what, c->user) : -ENOENT;
    if (r == -ENOENT)
        return answer_error(c, MHD_HTTP_NOT_FOUND, "no live session with id '%s'", c->arg);
    if (r == -ESHUTDOWN)
        return answer_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the broker is shutting down");
    if (r == -ETIMEDOUT)
        return answer_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "the broker did not answer in time; try again");
    if (r < 0)
        return answer_failure(c, r, NULL, sa->action, c->arg);
    changed(c, sa->action, c->arg, "%s", "");
    return answer_no_content(c);
}

static bool add_int64(struct json_object *o, const char *key, int64_t v)
{
    struct json_object *j = json_object_new_int64(v);
    if (!j || json_object_object_add(o, key, j) < 0) {
        api_json_putp(&j);
        return false;
    }
    return true;
}

static unsigned on_usage(struct api_call *c)
{
    _cleanup_(freep) struct store_usage_row *rows = NULL;
    const char *user, *pool;
    int64_t now = time(NULL), from, to;
    size_t n = 0;

    if (!query_int(c, "to", 0, INT64_MAX / 2, now, &to) ||
        !query_int(c, "from", 0, INT64_MAX / 2,
                   to > API_USAGE_PERIOD_S ? to - API_USAGE_PERIOD_S : 0, &from) ||
        !query_name(c, "user", username_is_valid, &user) ||
        !query_name(c, "pool", store_name_is_valid, &pool))
        return c->status;
    if (from >= to)
        return answer_error(c, MHD_HTTP_BAD_REQUEST,
                            "'from' (%" PRId64 ") must be before 'to' (%" PRId64 ")", from, to);
    int r = store_usage_report(c->api->store, from, to, now, user, pool, &rows, &n);
    if (r < 0)
        return answer_store_failure(c, r, "usage", "*");

    struct json_object *o = api_list_json("usage", rows, n, sizeof(*rows), api_usage_json);
    if (o && !(add_int64(o, "from", from) && add_int64(o, "to", to)))
        api_json_putp(&o);
    return answer(c, MHD_HTTP_OK, o);
}

/* Event names as audit.h has them: what a filter may look for. */
static bool event_filter_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
              s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

/* Client addresses: IPv4, IPv6 (with or without brackets), or a host name. */
static bool client_filter_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= API_ADDRESS_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr(".:-_[]%", s[i])))
            return false;
    return true;
}

static unsigned on_audit(struct api_call *c)
{
    struct api_audit_query q = {0};
    struct json_object *o = NULL;
    int64_t limit;

    if (!query_int(c, "since", 0, INT64_MAX / 2, 0, &q.since) ||
        !query_int(c, "until", 0, INT64_MAX, INT64_MAX, &q.until) ||
        !query_int(c, "limit", 1, API_AUDIT_LIMIT_MAX, API_AUDIT_LIMIT_DEFAULT, &limit) ||
        !query_name(c, "event", event_filter_is_valid, &q.event) ||
        !query_name(c, "user", username_is_valid, &q.user) ||
        !query_name(c, "client", client_filter_is_valid, &q.client))
        return c->status;
    if (q.since >= q.until)
        return answer_error(c, MHD_HTTP_BAD_REQUEST,
                            "'since' (%" PRId64 ") must be before 'until' (%" PRId64 ")", q.since,
                            q.until);
    if (!c->api->audit_path)
        return answer_error(c, MHD_HTTP_NOT_FOUND, "this broker keeps no audit log file");
    q.limit = (size_t)limit;
    int r = api_audit_read(c->api->audit_path, &q, &o);
    if (r < 0) {
        log_error_errno(r, "admin user=%s cannot read the audit log %s", c->user,
                        c->api->audit_path);
        return answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "internal error (the broker's log has the details)");
    }
    return answer(c, MHD_HTTP_OK, o);
}

static unsigned on_metrics(struct api_call *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
    int r = pools_metrics_write(c->api->pools, f);
    if (fclose(f) != 0 && r >= 0)
        r = -EIO;
    if (r < 0) {
        free(buf);
        return answer_failure(c, r, NULL, "metrics", "*");
    }
    c->text = buf;
    c->text_len = len;
    c->status = MHD_HTTP_OK;
    return c->status;
}

/* ---- routes ------------------------------------------------------------------------- */

static const char *const query_pool[] = {"pool", NULL};
static const char *const query_sessions[] = {"history", NULL};
static const char *const query_usage[] = {"from", "to", "user", "pool", NULL};
static const char *const query_audit[] = {"since",  "until", "event", "user",
                                          "client", "limit", NULL};

#define ROUTE(m, p, h, ...)                                                                        \
    {                                                                                              \
        .method = (m), .pattern = (p), .handler = (h), __VA_ARGS__                                 \
    }
static const struct api_route routes[] = {
    ROUTE("GET", "/api/v1/templates", on_template_list),
    ROUTE("POST", "/api/v1/templates", on_template_add, .body = true),
    ROUTE("GET", "/api/v1/templates/{}", on_template_get),
    ROUTE("DELETE", "/api/v1/templates/{}", on_template_delete),
    ROUTE("GET", "/api/v1/pools", on_pool_list),
    ROUTE("POST", "/api/v1/pools", on_pool_add, .body = true),
    ROUTE("GET", "/api/v1/pools/{}", on_pool_get),
    ROUTE("PATCH", "/api/v1/pools/{}", on_pool_update, .body = true),
    ROUTE("DELETE", "/api/v1/pools/{}", on_pool_delete),
    ROUTE("GET", "/api/v1/desktops", on_desktop_list, .query = query_pool),
    ROUTE("GET", "/api/v1/desktops/{}", on_desktop_get),
    ROUTE("POST", "/api/v1/desktops/{}/assign", on_desktop_assign, .body = true),
    ROUTE("POST", "/api/v1/desktops/{}/unassign", on_desktop_action, .data = &desktop_unassign),
    ROUTE("POST", "/api/v1/desktops/{}/start", on_desktop_action, .data = &desktop_start),
    ROUTE("POST", "/api/v1/desktops/{}/stop", on_desktop_action, .data = &desktop_stop),
    ROUTE("POST", "/api/v1/desktops/{}/reset", on_desktop_action, .data = &desktop_reset),
    ROUTE("GET", "/api/v1/entitlements", on_entitlement_list, .query = query_pool),
    ROUTE("POST", "/api/v1/entitlements", on_entitlement_change, .body = true),
    ROUTE("DELETE", "/api/v1/entitlements", on_entitlement_change, .body = true),
    ROUTE("GET", "/api/v1/sessions", on_session_list, .query = query_sessions),
    ROUTE("GET", "/api/v1/sessions/{}", on_session_get),
    ROUTE("POST", "/api/v1/sessions/{}/disconnect", on_session_action, .data = &session_disconnect),
    ROUTE("POST", "/api/v1/sessions/{}/logoff", on_session_action, .data = &session_logoff),
    ROUTE("GET", "/api/v1/usage", on_usage, .query = query_usage),
    ROUTE("GET", "/api/v1/audit", on_audit, .query = query_audit),
    ROUTE("GET", "/metrics", on_metrics),
};

/* Whether path fits pattern; arg gets the segment "{}" stood for. */
static bool path_match(const char *pattern, const char *path, char *arg, size_t arg_size)
{
    for (;;) {
        if (startswith(pattern, "{}")) {
            size_t n = strcspn(path, "/");
            if (n == 0 || n >= arg_size)
                return false;
            memcpy(arg, path, n);
            arg[n] = '\0';
            pattern += 2;
            path += n;
            continue;
        }
        if (*pattern != *path)
            return false;
        if (!*pattern)
            return true;
        pattern++;
        path++;
    }
}

/* Finds the route; when none has this method, answers 404 or 405 (with Allow). */
static bool route(struct api_call *c, const char *method, const char *path)
{
    bool known = false;

    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        char arg[API_ARG_MAX] = "";
        if (!path_match(routes[i].pattern, path, arg, sizeof(arg)))
            continue;
        known = true;
        if (streq(routes[i].method, method)) {
            c->route = &routes[i];
            memcpy(c->arg, arg, sizeof(arg));
            return true;
        }
        if (!strstr(c->allow, routes[i].method)) {
            size_t used = strlen(c->allow);
            snprintf(c->allow + used, sizeof(c->allow) - used, "%s%s", used ? ", " : "",
                     routes[i].method);
        }
    }
    if (known)
        answer_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed here (allowed: %s)", method,
                     c->allow);
    else
        answer_error(c, MHD_HTTP_NOT_FOUND, "no such path");
    return false;
}

struct query_check {
    const char *const *allowed;
    unsigned seen; /* bit i: allowed[i] was given */
    char bad[API_ERROR_MAX];
};

static enum MHD_Result query_check_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    struct query_check *q = cls;
    (void)kind;

    for (unsigned i = 0; q->allowed && q->allowed[i]; i++) {
        if (!streq(q->allowed[i], key))
            continue;
        if (q->seen & (1u << i))
            snprintf(q->bad, sizeof(q->bad), "query parameter '%s' is given twice", key);
        else if (!value)
            snprintf(q->bad, sizeof(q->bad), "query parameter '%s' needs a value", key);
        q->seen |= 1u << i;
        return q->bad[0] ? MHD_NO : MHD_YES;
    }
    char shown[33];
    size_t n = 0;
    for (; key[n] && n + 1 < sizeof(shown); n++)
        shown[n] = key[n] >= 0x20 && key[n] < 0x7f ? key[n] : '?';
    shown[n] = '\0';
    snprintf(q->bad, sizeof(q->bad), "unknown query parameter '%s'", shown);
    return MHD_NO;
}

/* ---- authentication ----------------------------------------------------------------- */

static void client_address(struct MHD_Connection *conn, char *buf, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    snprintf(buf, size, "unknown");
    if (!ci || !ci->client_addr)
        return;
    if (ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ci->client_addr;
        inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)size);
    } else if (ci->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ci->client_addr;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, (socklen_t)size);
        else
            inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)size);
    }
}

/* Whether the throttle lets this login attempt be checked; else it has answered 429
 * with Retry-After, logged and recorded it. user is "" when the name is not valid. */
static bool throttle_allows(struct api_call *c, const char *user)
{
    struct api *a = c->api;
    if (!a->throttle)
        return true;
    struct throttle_result t = throttle_check(a->throttle, c->client, user, now_ms());
    if (t.verdict == THROTTLE_ALLOW)
        return true;

    bool locked = t.verdict == THROTTLE_LOCKED;
    uint64_t wait_s = t.wait_ms / 1000 + (t.wait_ms % 1000 ? 1 : 0);
    if (wait_s == 0)
        wait_s = 1;
    log_warning("admin denied user=%s client=%s reason=%s by=%s wait_s=%" PRIu64,
                user[0] ? user : "(invalid)", c->client, locked ? "locked-out" : "throttled",
                t.by_account ? "account" : "address", wait_s);
    struct audit_field fields[] = {
        AUDIT_STR("user", user[0] ? user : NULL),
        AUDIT_STR("client", c->client),
        AUDIT_STR("source", "api"),
        AUDIT_STR("by", t.by_account ? "account" : "address"),
        AUDIT_NUM("wait_s", wait_s),
    };
    (void)audit_event_fields(a->audit, locked ? "login.locked" : "login.throttled", fields,
                             ARRAY_SIZE(fields));
    c->retry_after_s = wait_s;
    answer_error(c, MHD_HTTP_TOO_MANY_REQUESTS,
                 "Too many failed logins; try again in %" PRIu64 " seconds", wait_s);
    return false;
}

/* A refused login: its audit event (user NULL: not a valid name, so not recorded: it may
 * be a password typed into the wrong field) and, when counts, a failure for the throttle. */
static void login_failed(struct api_call *c, const char *user, const char *reason, bool counts)
{
    struct api *a = c->api;
    if (counts && a->throttle)
        throttle_failure(a->throttle, c->client, user ? user : "", now_ms());
    (void)audit_event(a->audit, "login.failure", "user", user, "client", c->client, "source", "api",
                      "reason", reason, NULL);
}

/* The throttle, PAM, then the admin group. True when c->user is an admin; else it has
 * answered 401, 403, 429 or 500 and logged the refusal (never the password). */
static bool authenticate(struct api_call *c)
{
    struct api *a = c->api;
    char *password = NULL;
    char *user = MHD_basic_auth_get_username_password(c->conn, &password);
    char detail[AUTH_DETAIL_MAX] = "";
    bool ok = false;

    if (!user || !password) {
        log_info("admin denied user=(none) client=%s reason=no-credentials", c->client);
        answer_error(c, MHD_HTTP_UNAUTHORIZED,
                     "this API needs the user name and password of an admin (HTTP Basic)");
    } else if (!throttle_allows(c, username_is_valid(user) ? user : "")) {
        /* answered */
    } else if (!username_is_valid(user)) {
        log_warning("admin denied user=(invalid) client=%s reason=bad-user-name", c->client);
        login_failed(c, NULL, "bad-user-name", true);
        answer_error(c, MHD_HTTP_UNAUTHORIZED, "wrong user name or password");
    } else {
        struct auth_request req = {
            .service = a->pam_service,
            .user = user,
            .password = password,
            .rhost = streq(c->client, "unknown") ? NULL : c->client,
        };
        int r = auth_pam_check(&req, detail, sizeof(detail));
        if (r == 0 && a->throttle) /* the password was right, admin or not */
            throttle_success(a->throttle, c->client, user);
        if (r == -EIO) {
            log_error("admin denied user=%s client=%s reason=pam-error: %s", user, c->client,
                      detail);
            answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                         "internal error (the broker's log has the details)");
        } else if (r < 0) {
            const char *reason = r == -EPERM ? "account-not-allowed" : "wrong-password";
            log_warning("admin denied user=%s client=%s reason=%s", user, c->client, reason);
            log_debug("admin user=%s pam: %s", user, detail);
            login_failed(c, user, reason, true);
            answer_error(c, MHD_HTTP_UNAUTHORIZED, "wrong user name or password");
        } else if ((r = auth_user_in_group(user, a->admin_group)) < 0) {
            log_error_errno(r, "admin denied user=%s client=%s reason=group-lookup", user,
                            c->client);
            answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                         "internal error (the broker's log has the details)");
        } else if (r == 0) {
            log_warning("admin denied user=%s client=%s reason=not-in-group group=%s", user,
                        c->client, a->admin_group);
            login_failed(c, user, "not-an-admin", false);
            answer_error(c, MHD_HTTP_FORBIDDEN, "user '%s' is not a member of the admin group",
                         user);
        } else {
            copy(c->user, sizeof(c->user), user);
            ok = true;
        }
    }
    if (password) {
        explicit_bzero(password, strlen(password));
        MHD_free(password);
    }
    if (user)
        MHD_free(user);
    return ok;
}

/* ---- libmicrohttpd glue ------------------------------------------------------------- */

static enum MHD_Result queue_answer(struct api_call *c)
{
    static const char oom[] = "{\"error\":\"out of memory\"}";
    const char *data = "", *type = NULL;
    size_t len = 0;
    unsigned status = c->status;
    char retry[24];

    snprintf(retry, sizeof(retry), "%" PRIu64, c->retry_after_s);
    if (c->text) {
        data = c->text;
        len = c->text_len;
        type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (c->reply) {
        data = json_object_to_json_string_length(
            c->reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!data) {
            data = oom;
            len = sizeof(oom) - 1;
            status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        }
        type = "application/json";
    }
    c->answered = true;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if ((type && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES) ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES ||
        (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, c->allow) != MHD_YES) ||
        (status == MHD_HTTP_TOO_MANY_REQUESTS &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry) != MHD_YES)) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    enum MHD_Result ret = status == MHD_HTTP_UNAUTHORIZED
                              ? MHD_queue_basic_auth_fail_response(c->conn, API_REALM, resp)
                              : MHD_queue_response(c->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Headers are in: who, where to, how much. Sets the answer when the request is refused
 * (status 0 when it goes on). */
static void request_begin(struct api_call *c, const char *method, const char *url)
{
    client_address(c->conn, c->client, sizeof(c->client));
    if (!authenticate(c) || !route(c, method, url))
        return;

    struct query_check q = {.allowed = c->route->query};
    MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, query_check_one, &q);
    if (q.bad[0]) {
        answer_error(c, MHD_HTTP_BAD_REQUEST, "%s", q.bad);
        return;
    }
    const char *length =
        MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > API_BODY_MAX)
        answer_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is larger than %u bytes",
                     API_BODY_MAX);
}

/* Whether a refusal goes out before the body. Closing a TCP connection with unread bytes
 * resets it, and the client may lose the answer; so a body of up to API_DISCARD_MAX is
 * read and dropped first, unless the client waits for "100 Continue" or sends none. */
static bool refuse_at_once(struct api_call *c)
{
    const char *expect =
        MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    const char *length =
        MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *chunked =
        MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

    if (expect && strcasecmp(expect, "100-continue") == 0)
        return true;
    if (length) {
        unsigned long long n = strtoull(length, NULL, 10);
        return n == 0 || n > API_DISCARD_MAX;
    }
    return !chunked;
}

/* A piece of the body. Beyond API_BODY_MAX the answer is 413; libmicrohttpd 0.9.75 takes
 * no response in the middle of a body, so the rest is read and dropped, up to
 * API_DISCARD_MAX: false beyond that (the connection is closed without an answer). */
static bool request_body(struct api_call *c, const char *data, size_t size)
{
    c->body_seen = size > SIZE_MAX - c->body_seen ? SIZE_MAX : c->body_seen + size;
    if (c->body_seen > API_DISCARD_MAX)
        return false;
    if (c->status)
        return true; /* answer ready: dropping */
    if (c->body_seen > API_BODY_MAX) {
        free(c->body);
        c->body = NULL;
        c->body_len = 0;
        answer_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is larger than %u bytes",
                     API_BODY_MAX);
        return true;
    }
    char *b = realloc(c->body, c->body_len + size + 1);
    if (!b) {
        answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
        return true;
    }
    memcpy(b + c->body_len, data, size);
    c->body = b;
    c->body_len += size;
    c->body[c->body_len] = '\0';
    return true;
}

static void request_run(struct api_call *c)
{
    char err[API_ERROR_MAX];

    /* requests without a body take nothing or {} (no stray fields) */
    if (!c->route->body && !parsed(c, api_empty_parse(c->body, c->body_len, err, sizeof(err)), err))
        return;
    c->route->handler(c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct api_call *c = *req_cls;
    (void)version;

    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c)
            return MHD_NO;
        c->api = cls;
        c->conn = conn;
        *req_cls = c;
        request_begin(c, method, url);
        return c->status && refuse_at_once(c) ? queue_answer(c) : MHD_YES;
    }
    if (c->answered) {
        *upload_data_size = 0; /* answered early: drop the rest */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        bool ok = request_body(c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    if (!c->status) /* else the body has been refused */
        request_run(c);
    return queue_answer(c);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct api_call *c = *req_cls;
    (void)cls;
    (void)conn;
    (void)toe;

    if (!c)
        return;
    api_json_putp(&c->reply);
    free(c->text);
    free(c->body);
    free(c);
    *req_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct api *a = cls;
    char buf[512];

    vsnprintf(buf, sizeof(buf), fmt, ap);
    buf[strcspn(buf, "\r\n")] = '\0';
    /* at run time these are about single connections (TLS handshakes of port scanners,
     * clients going away): debug; while starting they say why it failed */
    log_message(atomic_load(&a->starting) ? LOG_LEVEL_WARNING : LOG_LEVEL_DEBUG, "admin api: %s",
                buf);
}

/* ---- start and stop ----------------------------------------------------------------- */

static int read_pem(const char *path, char **ret)
{
    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size > API_PEM_MAX)
        return -EINVAL;
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf)
        return -ENOMEM;
    int r = fd_read_full(fd, buf, size, now_ms() + 5000);
    if (r < 0) {
        explicit_bzero(buf, size);
        free(buf);
        return r == -EPIPE ? -EIO : r;
    }
    buf[size] = '\0';
    *ret = buf;
    return 0;
}

static void api_stopp(struct api **a)
{
    api_stop(*a);
}

int api_start(const struct api_options *o, struct api **ret, uint16_t *ret_port)
{
    _cleanup_(api_stopp) struct api *a = NULL;
    _cleanup_(freep) char *cert = NULL;
    _cleanup_(secret_freep) char *key = NULL;
    uint16_t port = 0;
    int r;

    if (!o || !ret || !o->address || !o->cert_file || !o->key_file || !o->pam_service ||
        !o->admin_group || !o->pools || !o->store)
        return -EINVAL;
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        log_error("admin api: libmicrohttpd has no TLS support");
        return -EIO;
    }

    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->pools = o->pools;
    a->store = o->store;
    a->audit = o->audit;
    a->throttle = o->throttle;
    a->sessions = o->sessions;
    a->session_action = o->session_action;
    a->userdata = o->userdata;
    a->pam_service = strdup(o->pam_service);
    a->admin_group = strdup(o->admin_group);
    a->audit_path = o->audit_path ? strdup(o->audit_path) : NULL;
    if (!a->pam_service || !a->admin_group || (o->audit_path && !a->audit_path))
        return -ENOMEM;

    r = read_pem(o->cert_file, &cert);
    if (r < 0)
        return log_error_errno(r == -EINVAL || r == -ENOMEM ? r : -EIO,
                               "admin api: cannot read certificate %s: %s", o->cert_file,
                               strerror(-r));
    r = read_pem(o->key_file, &key);
    if (r < 0)
        return log_error_errno(r == -EINVAL || r == -ENOMEM ? r : -EIO,
                               "admin api: cannot read key %s: %s", o->key_file, strerror(-r));

    /* A listening socket of our own, so that a taken port is reported as such (and
     * without SO_REUSEPORT, which would let a second broker share the port). */
    int fd = listener_open(o->address, o->port, &port);
    if (fd < 0) {
        if (fd == -EADDRNOTAVAIL) /* not an address of this host */
            fd = -EINVAL;
        if (fd != -EADDRINUSE && fd != -EINVAL)
            fd = -EIO;
        return log_error_errno(fd, "admin api: cannot listen on %s port %d", o->address, o->port);
    }

    atomic_store(&a->starting, true);
    /* libmicrohttpd owns fd from here on, and has closed it when it fails */
    a->daemon = MHD_start_daemon(
        MHD_USE_TLS | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
            MHD_USE_POLL | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY,
        key, MHD_OPTION_HTTPS_PRIORITIES,
        o->tls_priority && o->tls_priority[0] ? o->tls_priority : API_DEFAULT_PRIORITY,
        MHD_OPTION_CONNECTION_LIMIT,
        o->max_connections ? o->max_connections : API_DEFAULT_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s ? o->timeout_s : API_DEFAULT_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_END);
    atomic_store(&a->starting, false);
    if (!a->daemon)
        return log_error_errno(-EIO, "admin api: cannot start the HTTPS server on %s port %u",
                               o->address, port);

    if (ret_port)
        *ret_port = port;
    *ret = TAKE_PTR(a);
    return 0;
}

void api_stop(struct api *a)
{
    if (!a)
        return;
    if (a->daemon)
        MHD_stop_daemon(a->daemon);
    free(a->pam_service);
    free(a->admin_group);
    free(a->audit_path);
    free(a);
}
