/*
 * The admin API (broker/api.c) over real HTTPS, with real components behind it: the
 * SQLite store on a temporary file, pools on libvirt's in-memory test driver
 * (test:///default), PAM through pam_wrapper (pam_matrix: vdiadmin / admin-pw and
 * plain / plain-pw), the audit log in a file, the throttle (auth/throttle.c), group membership
 * through nss_wrapper (vdiadmin is in vdi-admins, plain is not), and vdictl's own HTTPS client
 * (http-client.h). Headers the client does not return (WWW-Authenticate, Allow, Content-Type) and a
 * chunked body are checked with curl (skipped without it), TLS versions with gnutls-cli (from
 * gnutls-bin, like the certtool that makes the test PKI).
 *
 * The tests share one server and run in order: later ones use what earlier ones made.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api-internal.h"
#include "api.h"
#include "http-client.h"
#include "test-pki.h"
#include "util.h"

#define ADMIN "vdiadmin"
#define ADMIN_PW "admin-pw"
#define PLAIN "plain"
#define PLAIN_PW "plain-pw"

static struct {
    struct test_pki pki;
    char disk[192];
    char disk_dir[192];
    char console_dir[192];
    struct store *store;
    struct virt *virt;
    struct pools *pools;
    struct api *api;
    uint16_t port;
    struct http_target target;
    char audit_path[192];
    struct audit *audit;
    struct throttle *throttle;
    pthread_mutex_t lock;
    uint64_t acted_id;
    enum api_session_action acted;
    char acted_by[64];
    bool have_curl;
} T = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- fixtures ----------------------------------------------------------------------- */

/* The broker's live sessions: 7 (alice, connected, watched by one admin) and 12 (bob,
 * disconnected). Session 13 makes the action fail as in a shutdown, 14 as a timeout. */
static int fake_sessions(void *userdata, struct session_info **ret, size_t *ret_n)
{
    (void)userdata;
    struct session_info *list = calloc(2, sizeof(*list));
    if (!list)
        return -ENOMEM;
    list[0] = (struct session_info){.id = 7,
                                    .started = 1800000000,
                                    .idle_s = 42,
                                    .bytes_to_client = 5 * 1024 * 1024,
                                    .bytes_from_client = 900,
                                    .shadows = 1};
    snprintf(list[0].user, sizeof(list[0].user), "alice");
    snprintf(list[0].pool, sizeof(list[0].pool), "eng");
    snprintf(list[0].desktop, sizeof(list[0].desktop), "vdi-eng-0001");
    snprintf(list[0].state, sizeof(list[0].state), "connected");
    snprintf(list[0].client, sizeof(list[0].client), "192.0.2.1");
    list[1] = (struct session_info){
        .id = 12, .started = 1800000100, .idle_s = 600, .disconnected_s = 120};
    snprintf(list[1].user, sizeof(list[1].user), "bob");
    snprintf(list[1].pool, sizeof(list[1].pool), "float");
    snprintf(list[1].desktop, sizeof(list[1].desktop), "vdi-float-0003");
    snprintf(list[1].state, sizeof(list[1].state), "disconnected");
    *ret = list;
    *ret_n = 2;
    return 0;
}

static int fake_session_action(void *userdata, uint64_t id, enum api_session_action action,
                               const char *by_admin)
{
    (void)userdata;
    if (id == 13)
        return -ESHUTDOWN;
    if (id == 14)
        return -ETIMEDOUT;
    if (id != 7 && id != 12)
        return -ENOENT;
    pthread_mutex_lock(&T.lock);
    T.acted_id = id;
    T.acted = action;
    snprintf(T.acted_by, sizeof(T.acted_by), "%s", by_admin);
    pthread_mutex_unlock(&T.lock);
    return 0;
}

static int start_api_with(const char *address, int port, struct audit *audit,
                          const char *audit_path, struct throttle *throttle, struct api **ret,
                          uint16_t *ret_port)
{
    struct api_options o = {
        .address = address,
        .port = port,
        .cert_file = T.pki.cert,
        .key_file = T.pki.key,
        .pam_service = "vdi-api-test",
        .admin_group = "vdi-admins",
        .pools = T.pools,
        .store = T.store,
        .audit = audit,
        .audit_path = audit_path,
        .throttle = throttle,
        .sessions = fake_sessions,
        .session_action = fake_session_action,
        .max_connections = 16,
        .timeout_s = 10,
    };
    return api_start(&o, ret, ret_port);
}

static int start_api(const char *address, int port, struct api **ret, uint16_t *ret_port)
{
    return start_api_with(address, port, T.audit, T.audit_path, T.throttle, ret, ret_port);
}

static int group_setup(void **state)
{
    (void)state;
    char url[256], path[256];

    if (test_pki_make(&T.pki, "/tmp/vdi-test-api-XXXXXX") < 0)
        return -1;
    /* a 1 MiB raw template disk */
    snprintf(T.disk, sizeof(T.disk), "%s/base.img", T.pki.dir);
    int fd = open(T.disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, 1 << 20) < 0 || close(fd) < 0)
        return -1;
    snprintf(T.disk_dir, sizeof(T.disk_dir), "%s/disks", T.pki.dir);
    snprintf(T.console_dir, sizeof(T.console_dir), "%s/console", T.pki.dir);
    if (mkdir(T.disk_dir, 0755) < 0 || mkdir(T.console_dir, 0755) < 0)
        return -1;

    snprintf(url, sizeof(url), "sqlite:%s/vdi.db", T.pki.dir);
    if (store_open(url, &T.store) < 0)
        return -1;
    struct virt_options vo = {
        .uri = "test:///default",
        .virt_type = "qemu",
        .disk_dir = T.disk_dir,
        .console_dir = T.console_dir,
    };
    struct virt_error verr = {""};
    if (virt_new(&vo, &T.virt, &verr) < 0) {
        fprintf(stderr, "virt_new: %s\n", verr.message);
        return -1;
    }
    struct pools_options po = {
        .store = T.store,
        .virt = T.virt,
        .cpu_overcommit = 4,
        .memory_overcommit = 4,
        .shutdown_timeout_s = 1,
    };
    if (pools_new(&po, &T.pools) < 0)
        return -1;
    snprintf(T.audit_path, sizeof(T.audit_path), "%s/audit.log", T.pki.dir);
    if (audit_open(T.audit_path, false, &T.audit) < 0)
        return -1;
    struct throttle_options to;
    throttle_options_default(&to);
    if (throttle_new(&to, &T.throttle) < 0)
        return -1;
    if (start_api("127.0.0.1", 0, &T.api, &T.port) < 0)
        return -1;

    snprintf(T.target.host, sizeof(T.target.host), "127.0.0.1");
    T.target.port = T.port;
    T.target.ca_file = T.pki.ca;
    snprintf(path, sizeof(path), "curl --version >/dev/null 2>&1");
    T.have_curl = system(path) == 0;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    api_stop(T.api);
    audit_close(T.audit);
    throttle_free(T.throttle);
    pools_free(T.pools);
    virt_free(T.virt);
    store_close(T.store);
    test_pki_remove(&T.pki);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

/* One request to target; returns the status, *ret_body (may be NULL) the body to free. */
static int call_at(const struct http_target *target, const char *user, const char *password,
                   const char *method, const char *path, const char *body, char **ret_body)
{
    struct http_request req = {
        .method = method, .path = path, .user = user, .password = password, .body = body};
    struct http_response resp = {0};
    char err[256] = "";

    int r = http_request(target, &req, now_ms() + 20000, &resp, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "http_request %s %s: %s\n", method, path, err);
        return r;
    }
    int status = resp.status;
    if (ret_body)
        *ret_body = TAKE_PTR(resp.body);
    http_response_done(&resp);
    return status;
}

static int call_as(const char *user, const char *password, const char *method, const char *path,
                   const char *body, char **ret_body)
{
    return call_at(&T.target, user, password, method, path, body, ret_body);
}

static int call(const char *method, const char *path, const char *body, char **ret_body)
{
    return call_as(ADMIN, ADMIN_PW, method, path, body, ret_body);
}

/* Asserts the status and returns the parsed JSON body (put it). */
static struct json_object *expect(int status, const char *method, const char *path,
                                  const char *body)
{
    char *text = NULL;
    int got = call(method, path, body, &text);
    if (got != status)
        fprintf(stderr, "%s %s -> %d: %s\n", method, path, got, text ? text : "");
    assert_int_equal(got, status);
    struct json_object *o = text && text[0] ? json_tokener_parse(text) : NULL;
    if (status != 204)
        assert_non_null(o);
    free(text);
    return o;
}

/* Asserts an error status whose {"error"} contains words. */
static void expect_error(int status, const char *method, const char *path, const char *body,
                         const char *words)
{
    struct json_object *o = expect(status, method, path, body), *e;
    assert_true(json_object_object_get_ex(o, "error", &e));
    if (words && !strstr(json_object_get_string(e), words)) {
        fprintf(stderr, "error '%s' lacks '%s'\n", json_object_get_string(e), words);
        fail();
    }
    json_object_put(o);
}

static const char *str(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) {
        fprintf(stderr, "no '%s' in %s\n", key, json_object_to_json_string(o));
        fail();
    }
    return json_object_get_string(v);
}

static int64_t num(struct json_object *o, const char *key)
{
    struct json_object *v;
    assert_true(json_object_object_get_ex(o, key, &v));
    return json_object_get_int64(v);
}

static struct json_object *list(struct json_object *o, const char *key)
{
    struct json_object *v;
    assert_true(json_object_object_get_ex(o, key, &v));
    assert_true(json_object_is_type(v, json_type_array));
    return v;
}

/* The element of array a whose key equals value, or NULL. */
static struct json_object *find(struct json_object *a, const char *key, const char *value)
{
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        struct json_object *e = json_object_array_get_idx(a, i), *v;
        if (json_object_object_get_ex(e, key, &v) && streq(json_object_get_string(v), value))
            return e;
    }
    return NULL;
}

/* curl's response headers (-D -) for a request to port, into buf; false without curl. */
static bool curl_headers_at(uint16_t port, const char *args, const char *path, char *buf,
                            size_t size)
{
    char cmd[1024];
    if (!T.have_curl)
        return false;
    snprintf(cmd, sizeof(cmd), "curl -s -o /dev/null -D - --cacert %s %s https://127.0.0.1:%u%s",
             T.pki.ca, args, port, path);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    assert_int_equal(pclose(f), 0);
    return true;
}

static bool curl_headers(const char *args, const char *path, char *buf, size_t size)
{
    return curl_headers_at(T.port, args, path, buf, size);
}

/* ---- request bodies, without the server --------------------------------------------- */

static void test_parse(void **state)
{
    (void)state;
    char err[API_ERROR_MAX];
    struct store_template t;
    struct store_pool p;
    struct store_entitlement e;
    char user[STORE_NAME_MAX + 1];

#define BODY(s) s, strlen(s)
    assert_int_equal(api_template_parse(BODY("{\"name\":\"w\",\"os\":\"windows\",\"disk\":\"/d\"}"),
                                        &t, err, sizeof(err)),
                     0);
    assert_int_equal(t.os, STORE_OS_WINDOWS);
    assert_int_equal(t.firmware, STORE_FIRMWARE_UEFI);
    assert_string_equal(t.kernel, "");
    assert_int_equal(
        api_template_parse(BODY(" {\"name\":\"l\",\"disk\":\"/d\"}\n"), &t, err, sizeof(err)), 0);
    assert_int_equal(t.os, STORE_OS_LINUX);
    assert_int_equal(t.firmware, STORE_FIRMWARE_BIOS);

    static const struct {
        const char *body, *words;
    } bad_templates[] = {
        {"", "missing field 'name'"},
        {"{\"name\":\"x\"}", "missing field 'disk'"},
        {"{\"name\":\"x\",\"disk\":\"relative\"}", "absolute path"},
        {"{\"name\":\"x\",\"disk\":\"/d\",\"kernel\":\"k\"}", "'kernel'"},
        {"{\"name\":\"x\",\"disk\":\"/d\\n\"}", "control characters"},
        {"{\"name\":\"x\",\"disk\":\"/d\\u0000x\"}", "NUL"},
        {"{\"name\":\"x\",\"disk\":\"/d\",\"created\":1}", "set by the server"},
        {"{\"name\":\"x\",\"disk\":\"/d\",\"os\":\"beos\"}", "one of: linux, windows"},
        {"{\"name\":\"-x\",\"disk\":\"/d\"}", "'name'"},
        {"{\"name\":\"x\",\"disk\":\"/d\",\"cmdline\":5}", "must be a string"},
        {"{\"name\":\"x\",\"disk\":\"/d\",\"colour\":\"red\"}", "unknown field 'colour'"},
        {"{\"name\":\"x\",\"disk\":\"/d\"} {}", "malformed JSON"},
        {"{\"name\":\"x\",\"disk\":\"/d\"} x", "malformed JSON"},
        {"{\"name\":\"x\",", "malformed JSON"},
        {"{'name':'x'}", "malformed JSON"},
        {"[1, 2]", "must be a JSON object"},
        {"null", "must be a JSON object"},
        {"{\"a\":[[[[[[[[[[1]]]]]]]]]]}", "malformed JSON"},
        {"{\"name\":\"\xff\xfe\",\"disk\":\"/d\"}", "malformed JSON"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad_templates); i++) {
        err[0] = '\0';
        int r = api_template_parse(BODY(bad_templates[i].body), &t, err, sizeof(err));
        if (r != -EINVAL || !strstr(err, bad_templates[i].words))
            fprintf(stderr, "body %s: %d '%s'\n", bad_templates[i].body, r, err);
        assert_int_equal(r, -EINVAL);
        assert_non_null(strstr(err, bad_templates[i].words));
    }

    /* pools: defaults, presets, overrides, kinds */
    assert_int_equal(api_pool_parse(BODY("{\"name\":\"eng\",\"template\":\"deb\"}"),
                                    API_PARSE_CREATE, &p, err, sizeof(err)),
                     0);
    assert_int_equal(p.vcpus, 1);
    assert_int_equal(p.memory_mib, 2048);
    assert_int_equal(p.kind, STORE_POOL_DEDICATED);
    assert_int_equal(p.logoff, STORE_LOGOFF_KEEP);
    assert_int_equal(p.min_spare, 0);
    assert_int_equal(p.max_desktops, 10);
    assert_int_equal(p.disconnect_grace_s, 300);
    assert_int_equal(p.idle_timeout_s, 0);
    assert_int_equal(p.max_session_s, 0);
    assert_int_equal(p.stop_action, STORE_STOP_NONE);
    assert_int_equal(api_pool_parse(BODY("{\"name\":\"f\",\"template\":\"deb\",\"kind\":"
                                         "\"floating\",\"size\":\"large\",\"memory_mib\":1000}"),
                                    API_PARSE_CREATE, &p, err, sizeof(err)),
                     0);
    assert_int_equal(p.vcpus, 4);
    assert_int_equal(p.memory_mib, 1000);
    assert_int_equal(p.logoff, STORE_LOGOFF_RESET);
    assert_int_equal(p.stop_action, STORE_STOP_RESET); /* by kind */
    /* session policies: given, bounds inclusive, and an update keeps what it does not name */
    assert_int_equal(api_pool_parse(BODY("{\"name\":\"g\",\"template\":\"deb\","
                                         "\"kind\":\"floating\",\"stop_action\":\"none\","
                                         "\"disconnect_grace_s\":0,\"idle_timeout_s\":604800,"
                                         "\"max_session_s\":2592000}"),
                                    API_PARSE_CREATE, &p, err, sizeof(err)),
                     0);
    assert_int_equal(p.stop_action, STORE_STOP_NONE);
    assert_int_equal(p.disconnect_grace_s, 0);
    assert_int_equal(p.idle_timeout_s, 604800);
    assert_int_equal(p.max_session_s, 2592000);
    assert_int_equal(api_pool_parse(BODY("{\"stop_action\":\"restart\",\"idle_timeout_s\":60}"),
                                    API_PARSE_UPDATE, &p, err, sizeof(err)),
                     0);
    assert_int_equal(p.stop_action, STORE_STOP_RESTART);
    assert_int_equal(p.idle_timeout_s, 60);
    assert_int_equal(p.max_session_s, 2592000);
    assert_int_equal(p.disconnect_grace_s, 0);
    static const struct {
        const char *body, *words;
    } bad_policies[] = {
        {"{\"disconnect_grace_s\":-1}", "between 0 and 604800"},
        {"{\"disconnect_grace_s\":604801}", "between 0 and 604800"},
        {"{\"idle_timeout_s\":604801}", "'idle_timeout_s' must be between 0 and 604800"},
        {"{\"max_session_s\":2592001}", "between 0 and 2592000"},
        {"{\"max_session_s\":\"8h\"}", "must be an integer"},
        {"{\"idle_timeout_s\":1.5}", "must be an integer"},
        {"{\"stop_action\":\"explode\"}", "one of: none, restart, reset"},
        {"{\"stop_action\":0}", "must be a string"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad_policies); i++) {
        err[0] = '\0';
        int r = api_pool_parse(BODY(bad_policies[i].body), API_PARSE_UPDATE, &p, err, sizeof(err));
        if (r != -EINVAL || !strstr(err, bad_policies[i].words))
            fprintf(stderr, "body %s: %d '%s'\n", bad_policies[i].body, r, err);
        assert_int_equal(r, -EINVAL);
        assert_non_null(strstr(err, bad_policies[i].words));
    }
    assert_int_equal(api_pool_parse(BODY("{\"name\":\"f\",\"template\":\"deb\",\"kind\":"
                                         "\"floating\",\"size\":\"large\",\"memory_mib\":1000}"),
                                    API_PARSE_CREATE, &p, err, sizeof(err)),
                     0);
    assert_int_equal(
        api_pool_parse(BODY("{\"size\":\"medium\"}"), API_PARSE_UPDATE, &p, err, sizeof(err)), 0);
    assert_int_equal(p.vcpus, 2);
    assert_int_equal(p.memory_mib, 4096);
    assert_string_equal(p.name, "f"); /* untouched */
    assert_int_equal(p.logoff, STORE_LOGOFF_RESET);
    assert_int_equal(
        api_pool_parse(BODY("{\"name\":\"g\"}"), API_PARSE_UPDATE, &p, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "cannot be changed"));
    assert_int_equal(api_pool_parse(BODY("{\"vcpus\":0}"), API_PARSE_UPDATE, &p, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "between 1 and 256"));
    assert_int_equal(
        api_pool_parse(BODY("{\"vcpus\":1.5}"), API_PARSE_UPDATE, &p, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "must be an integer"));
    assert_int_equal(api_pool_parse(BODY("{\"vcpus\":99999999999999999999}"), API_PARSE_UPDATE, &p,
                                    err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(
        api_pool_parse(BODY("{\"min_spare\":11}"), API_PARSE_UPDATE, &p, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "cannot exceed max_desktops"));
    assert_int_equal(
        api_pool_parse(BODY("{\"size\":\"custom\"}"), API_PARSE_UPDATE, &p, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "small, medium, large"));

    assert_int_equal(api_entitlement_parse(BODY("{\"pool\":\"eng\",\"kind\":\"group\",\"name\":"
                                                "\"Domain.Users\"}"),
                                           &e, err, sizeof(err)),
                     0);
    assert_int_equal(e.kind, STORE_ENTITLE_GROUP);
    assert_string_equal(e.name, "Domain.Users");
    assert_int_equal(
        api_entitlement_parse(BODY("{\"pool\":\"eng\",\"name\":\"a\"}"), &e, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "missing field 'kind'"));
    assert_int_equal(api_assign_parse(BODY("{\"user\":\"al ice\"}"), user, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(api_assign_parse(BODY("{\"user\":\"alice\"}"), user, err, sizeof(err)), 0);
    assert_string_equal(user, "alice");
    assert_int_equal(api_empty_parse(BODY(""), err, sizeof(err)), 0);
    assert_int_equal(api_empty_parse(BODY(" {} "), err, sizeof(err)), 0);
    assert_int_equal(api_empty_parse(BODY("{\"force\":true}"), err, sizeof(err)), -EINVAL);
#undef BODY
}

/* ---- over HTTPS --------------------------------------------------------------------- */

static void test_auth(void **state)
{
    (void)state;
    char *body = NULL, headers[4096];

    assert_int_equal(call_as(NULL, NULL, "GET", "/api/v1/pools", NULL, &body), 401);
    assert_non_null(strstr(body, "\"error\""));
    free(body);
    assert_int_equal(call_as(ADMIN, "wrong", "GET", "/api/v1/pools", NULL, NULL), 401);
    assert_int_equal(call_as("nobody", "x", "GET", "/api/v1/pools", NULL, NULL), 401);
    /* right password, not an admin */
    assert_int_equal(call_as(PLAIN, PLAIN_PW, "GET", "/api/v1/pools", NULL, &body), 403);
    assert_non_null(strstr(body, "admin group"));
    free(body);
    /* answered before the body is read */
    assert_int_equal(
        call_as(NULL, NULL, "POST", "/api/v1/pools", "{\"name\":\"x\",\"template\":\"deb\"}", NULL),
        401);
    /* nothing is answered before authentication, not even a 404 or a 405 */
    assert_int_equal(call_as(NULL, NULL, "GET", "/nowhere", NULL, NULL), 401);
    assert_int_equal(call_as(PLAIN, PLAIN_PW, "DELETE", "/metrics", NULL, NULL), 403);
    assert_int_equal(call_as(ADMIN, ADMIN_PW, "GET", "/api/v1/pools", NULL, NULL), 200);

    if (curl_headers("", "/api/v1/pools", headers, sizeof(headers))) {
        assert_non_null(strstr(headers, " 401"));
        assert_non_null(strstr(headers, "WWW-Authenticate: Basic realm=\"vdi\""));
        assert_non_null(strstr(headers, "Content-Type: application/json"));
        /* a name PAM must never see (vdictl's client refuses to send it) */
        assert_true(curl_headers("-u 'bad name!:x'", "/api/v1/pools", headers, sizeof(headers)));
        assert_non_null(strstr(headers, " 401"));
    }
}

static void test_templates(void **state)
{
    (void)state;
    char body[512];
    struct json_object *o;

    snprintf(body, sizeof(body), "{\"name\":\"deb\",\"disk\":\"%s\"}", T.disk);
    o = expect(201, "POST", "/api/v1/templates", body);
    assert_string_equal(str(o, "name"), "deb");
    assert_string_equal(str(o, "os"), "linux");
    assert_string_equal(str(o, "firmware"), "bios");
    assert_string_equal(str(o, "disk"), T.disk);
    assert_string_equal(str(o, "kernel"), "");
    assert_true(num(o, "created") > 1700000000);
    json_object_put(o);
    expect_error(409, "POST", "/api/v1/templates", body, "deb");

    /* windows defaults to UEFI (OVMF is installed here; pools.c refuses it otherwise) */
    snprintf(body, sizeof(body), "{\"name\":\"win\",\"os\":\"windows\",\"disk\":\"%s\"}", T.disk);
    if (virt_uefi_firmware(NULL, NULL)) {
        o = expect(201, "POST", "/api/v1/templates", body);
        assert_string_equal(str(o, "firmware"), "uefi");
        json_object_put(o);
        o = expect(204, "DELETE", "/api/v1/templates/win", NULL);
        expect_error(404, "GET", "/api/v1/templates/win", NULL, "win");
        expect_error(404, "DELETE", "/api/v1/templates/win", NULL, "win");
    } else
        expect_error(400, "POST", "/api/v1/templates", body, "UEFI");

    /* the disk must be an image that exists */
    expect_error(400, "POST", "/api/v1/templates", "{\"name\":\"gone\",\"disk\":\"/nonexistent\"}",
                 "/nonexistent");

    o = expect(200, "GET", "/api/v1/templates", NULL);
    assert_non_null(find(list(o, "templates"), "name", "deb"));
    assert_null(find(list(o, "templates"), "name", "win"));
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/templates/deb", NULL);
    assert_string_equal(str(o, "disk"), T.disk);
    json_object_put(o);
    expect_error(404, "GET", "/api/v1/templates/Not_A_Name", NULL, NULL);
}

static void test_pools(void **state)
{
    (void)state;
    struct json_object *o;

    o = expect(201, "POST", "/api/v1/pools", "{\"name\":\"eng\",\"template\":\"deb\"}");
    assert_string_equal(str(o, "size"), "small");
    assert_int_equal(num(o, "vcpus"), 1);
    assert_int_equal(num(o, "memory_mib"), 2048);
    assert_string_equal(str(o, "kind"), "dedicated");
    assert_string_equal(str(o, "logoff"), "keep");
    assert_int_equal(num(o, "min_spare"), 0);
    assert_int_equal(num(o, "max_desktops"), 10);
    assert_int_equal(num(o, "disconnect_grace_s"), 300);
    assert_int_equal(num(o, "idle_timeout_s"), 0);
    assert_int_equal(num(o, "max_session_s"), 0);
    assert_string_equal(str(o, "stop_action"), "none");
    assert_true(num(o, "created") > 1700000000);
    json_object_put(o);
    expect_error(409, "POST", "/api/v1/pools", "{\"name\":\"eng\",\"template\":\"deb\"}", "eng");

    o = expect(201, "POST", "/api/v1/pools",
               "{\"name\":\"float\",\"template\":\"deb\",\"kind\":\"floating\",\"size\":"
               "\"large\",\"memory_mib\":256}");
    assert_string_equal(str(o, "size"), "custom");
    assert_int_equal(num(o, "vcpus"), 4);
    assert_int_equal(num(o, "memory_mib"), 256);
    assert_string_equal(str(o, "logoff"), "reset");
    assert_string_equal(str(o, "stop_action"), "reset");
    json_object_put(o);
    /* the policies as stored: a PATCH changes only what it names */
    o = expect(200, "PATCH", "/api/v1/pools/float",
               "{\"idle_timeout_s\":900,\"max_session_s\":28800,\"stop_action\":\"restart\"}");
    assert_int_equal(num(o, "idle_timeout_s"), 900);
    assert_int_equal(num(o, "max_session_s"), 28800);
    assert_string_equal(str(o, "stop_action"), "restart");
    assert_int_equal(num(o, "disconnect_grace_s"), 300);
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/pools/float", NULL);
    assert_int_equal(num(o, "idle_timeout_s"), 900);
    assert_string_equal(str(o, "stop_action"), "restart");
    json_object_put(o);
    expect_error(400, "PATCH", "/api/v1/pools/float", "{\"disconnect_grace_s\":604801}",
                 "'disconnect_grace_s'");

    expect_error(404, "POST", "/api/v1/pools", "{\"name\":\"x\",\"template\":\"nope\"}", "nope");
    expect_error(400, "POST", "/api/v1/pools", "{\"name\":\"x\",\"template\":\"deb\",\"kind\":7}",
                 "'kind' must be a string");

    o = expect(200, "PATCH", "/api/v1/pools/eng", "{\"size\":\"medium\",\"min_spare\":1}");
    assert_string_equal(str(o, "size"), "medium");
    assert_int_equal(num(o, "vcpus"), 2);
    assert_int_equal(num(o, "memory_mib"), 4096);
    assert_int_equal(num(o, "min_spare"), 1);
    assert_string_equal(str(o, "template"), "deb");
    json_object_put(o);
    /* small desktops keep the test driver's host within its capacity */
    o = expect(200, "PATCH", "/api/v1/pools/eng", "{\"memory_mib\":256}");
    assert_string_equal(str(o, "size"), "custom");
    json_object_put(o);
    expect_error(400, "PATCH", "/api/v1/pools/eng", "{\"name\":\"other\"}", "cannot be changed");
    expect_error(400, "PATCH", "/api/v1/pools/eng", "{\"created\":5}", "set by the server");
    expect_error(404, "PATCH", "/api/v1/pools/nope", "{}", "nope");
    expect_error(404, "GET", "/api/v1/pools/nope", NULL, "nope");
    /* a template in use stays */
    expect_error(409, "DELETE", "/api/v1/templates/deb", NULL, NULL);

    o = expect(201, "POST", "/api/v1/pools", "{\"name\":\"tmp\",\"template\":\"deb\"}");
    json_object_put(o);
    o = expect(204, "DELETE", "/api/v1/pools/tmp", NULL);
    expect_error(404, "DELETE", "/api/v1/pools/tmp", NULL, "tmp");

    o = expect(200, "GET", "/api/v1/pools", NULL);
    assert_int_equal(json_object_array_length(list(o, "pools")), 2);
    assert_non_null(find(list(o, "pools"), "name", "float"));
    json_object_put(o);
}

static void test_bad_requests(void **state)
{
    (void)state;
    char *big, headers[4096];

    expect_error(400, "POST", "/api/v1/pools", "{\"name\":", "malformed JSON");
    expect_error(400, "POST", "/api/v1/pools", "[\"eng\"]", "JSON object");
    expect_error(400, "POST", "/api/v1/pools", "{\"name\":\"a\",\"template\":\"deb\",\"colour\":1}",
                 "unknown field 'colour'");
    expect_error(400, "POST", "/api/v1/pools", "{\"name\":\"Eng!\",\"template\":\"deb\"}",
                 "'name'");
    expect_error(400, "POST", "/api/v1/pools",
                 "{\"name\":\"a\",\"template\":\"deb\",\"vcpus\":\"2\"}", "must be an integer");
    expect_error(400, "POST", "/api/v1/pools",
                 "{\"name\":\"a\",\"template\":\"deb\",\"logoff\":\"explode\"}",
                 "keep, suspend, shutdown, reset");
    /* actions take no fields */
    expect_error(400, "POST", "/api/v1/desktops/vdi-eng-0001/start", "{\"force\":1}",
                 "unknown field 'force'");
    /* query parameters */
    expect_error(400, "GET", "/api/v1/audit?limit=0", NULL, "'limit'");
    expect_error(400, "GET", "/api/v1/audit?limit=abc", NULL, "'limit'");
    expect_error(400, "GET", "/api/v1/audit?colour=red", NULL, "unknown query parameter 'colour'");
    expect_error(400, "GET", "/api/v1/audit?limit=1&limit=2", NULL, "twice");
    expect_error(400, "GET", "/api/v1/pools?pool=eng", NULL, "unknown query parameter");
    expect_error(400, "GET", "/api/v1/desktops?pool=Bad_Pool", NULL, "'pool'");
    expect_error(400, "GET", "/api/v1/sessions?history=2", NULL, "'history'");
    expect_error(400, "GET", "/api/v1/sessions?all=1", NULL, "unknown query parameter 'all'");
    expect_error(400, "GET", "/api/v1/audit?event=Login!", NULL, "'event'");
    expect_error(400, "GET", "/api/v1/audit?user=no%20body", NULL, "'user'");
    expect_error(400, "GET", "/api/v1/audit?client=a%20b", NULL, "'client'");
    expect_error(400, "GET", "/api/v1/audit?since=100&until=100", NULL, "before");
    expect_error(400, "GET", "/api/v1/audit?limit=10001", NULL, "'limit'");

    /* 413: a body over 64 KiB, announced by Content-Length */
    size_t n = API_BODY_MAX + 100;
    big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "{\"name\":\"x\",\"disk\":\"", 20);
    memcpy(big + n - 3, "\"}\n", 3);
    big[n] = '\0';
    expect_error(413, "POST", "/api/v1/templates", big, "larger than");
    /* exactly at the limit it is read and parsed */
    big[API_BODY_MAX - 3] = '\"';
    big[API_BODY_MAX - 2] = '}';
    big[API_BODY_MAX - 1] = '\0';
    expect_error(400, "POST", "/api/v1/templates", big, "'disk'");

    /* 413 for a chunked body (no Content-Length): counted as it comes */
    if (T.have_curl) {
        char file[192], args[512];
        memset(big, ' ', n);
        big[n] = '\0';
        assert_int_equal(test_pki_write(&T.pki, "big.json", big, file, sizeof(file)), 0);
        snprintf(args, sizeof(args),
                 "-u " ADMIN ":" ADMIN_PW " -H 'Transfer-Encoding: chunked' "
                 "-H 'Content-Type: application/json' --data-binary @%s",
                 file);
        assert_true(curl_headers(args, "/api/v1/templates", headers, sizeof(headers)));
        assert_non_null(strstr(headers, " 413"));
    }
    free(big);
}

static void test_routes(void **state)
{
    (void)state;
    char headers[4096];

    expect_error(404, "GET", "/", NULL, "no such path");
    expect_error(404, "GET", "/api/v1/templates/deb/extra", NULL, "no such path");
    expect_error(404, "GET", "/api/v1/pools/", NULL, "no such path");
    expect_error(404, "GET", "/api/v2/pools", NULL, "no such path");
    expect_error(405, "DELETE", "/api/v1/pools", NULL, "GET, POST");
    expect_error(405, "PATCH", "/metrics", NULL, "GET");
    expect_error(405, "GET", "/api/v1/desktops/x/start", NULL, "POST");
    if (curl_headers("-u " ADMIN ":" ADMIN_PW " -X DELETE", "/api/v1/templates", headers,
                     sizeof(headers))) {
        assert_non_null(strstr(headers, " 405"));
        assert_non_null(strstr(headers, "Allow: GET, POST"));
    }
}

static void test_desktops(void **state)
{
    (void)state;
    struct json_object *o, *d;
    char name[STORE_DESKTOP_MAX + 1], path[256];

    /* min_spare 1 (test_pools): one round of maintenance makes a running spare */
    pools_maintain(T.pools);
    o = expect(200, "GET", "/api/v1/desktops?pool=eng", NULL);
    assert_int_equal(json_object_array_length(list(o, "desktops")), 1);
    d = json_object_array_get_idx(list(o, "desktops"), 0);
    snprintf(name, sizeof(name), "%s", str(d, "name"));
    assert_string_equal(str(d, "pool"), "eng");
    assert_string_equal(str(d, "owner"), "");
    assert_string_equal(str(d, "state"), "ready");
    assert_string_equal(str(d, "power"), "running");
    assert_int_equal(num(d, "connected"), 0);
    assert_int_equal(num(d, "assigned"), 0);
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/desktops", NULL);
    assert_non_null(find(list(o, "desktops"), "name", name));
    json_object_put(o);

    snprintf(path, sizeof(path), "/api/v1/desktops/%s", name);
    o = expect(200, "GET", path, NULL);
    assert_string_equal(str(o, "name"), name);
    json_object_put(o);
    expect_error(404, "GET", "/api/v1/desktops/vdi-nope-0001", NULL, "vdi-nope-0001");
    expect_error(404, "POST", "/api/v1/desktops/vdi-nope-0001/start", NULL, NULL);

    snprintf(path, sizeof(path), "/api/v1/desktops/%s/assign", name);
    o = expect(200, "POST", path, "{\"user\":\"alice\"}");
    assert_string_equal(str(o, "owner"), "alice");
    assert_true(num(o, "assigned") > 0);
    json_object_put(o);
    expect_error(409, "POST", path, "{\"user\":\"bob\"}", "alice");
    expect_error(400, "POST", path, "{}", "missing field 'user'");
    expect_error(400, "POST", path, "{\"user\":\"-x\"}", "'user'");

    snprintf(path, sizeof(path), "/api/v1/desktops/%s/stop", name);
    o = expect(200, "POST", path, NULL);
    assert_string_equal(str(o, "power"), "shutoff");
    json_object_put(o);

    /* admission control: a start that does not fit is 503 */
    o = expect(200, "PATCH", "/api/v1/pools/eng", "{\"memory_mib\":4194304}");
    json_object_put(o);
    snprintf(path, sizeof(path), "/api/v1/desktops/%s/start", name);
    expect_error(503, "POST", path, NULL, NULL);
    o = expect(200, "PATCH", "/api/v1/pools/eng", "{\"memory_mib\":256}");
    json_object_put(o);
    o = expect(200, "POST", path, "{}");
    assert_string_equal(str(o, "power"), "running");
    json_object_put(o);

    snprintf(path, sizeof(path), "/api/v1/desktops/%s/reset", name);
    o = expect(200, "POST", path, NULL);
    assert_string_equal(str(o, "owner"), "alice");
    assert_string_equal(str(o, "state"), "ready");
    json_object_put(o);

    /* an assigned desktop keeps its pool */
    expect_error(409, "DELETE", "/api/v1/pools/eng", NULL, "assigned");

    snprintf(path, sizeof(path), "/api/v1/desktops/%s/unassign", name);
    o = expect(200, "POST", path, NULL);
    assert_string_equal(str(o, "owner"), "");
    json_object_put(o);
}

static void test_entitlements(void **state)
{
    (void)state;
    static const char alice[] = "{\"pool\":\"eng\",\"kind\":\"user\",\"name\":\"alice\"}";
    struct json_object *o, *e;

    o = expect(201, "POST", "/api/v1/entitlements", alice);
    assert_string_equal(str(o, "pool"), "eng");
    assert_string_equal(str(o, "kind"), "user");
    assert_string_equal(str(o, "name"), "alice");
    json_object_put(o);
    expect_error(409, "POST", "/api/v1/entitlements", alice, NULL);
    o = expect(201, "POST", "/api/v1/entitlements",
               "{\"pool\":\"float\",\"kind\":\"group\",\"name\":\"eng\"}");
    json_object_put(o);
    expect_error(404, "POST", "/api/v1/entitlements",
                 "{\"pool\":\"nope\",\"kind\":\"user\",\"name\":\"alice\"}", "nope");
    expect_error(400, "POST", "/api/v1/entitlements",
                 "{\"pool\":\"eng\",\"kind\":\"team\",\"name\":\"alice\"}", "user, group");

    o = expect(200, "GET", "/api/v1/entitlements?pool=eng", NULL);
    assert_int_equal(json_object_array_length(list(o, "entitlements")), 1);
    e = json_object_array_get_idx(list(o, "entitlements"), 0);
    assert_string_equal(str(e, "name"), "alice");
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/entitlements", NULL);
    assert_int_equal(json_object_array_length(list(o, "entitlements")), 2);
    json_object_put(o);

    o = expect(204, "DELETE", "/api/v1/entitlements", alice);
    assert_null(o);
    expect_error(404, "DELETE", "/api/v1/entitlements", alice, NULL);
    expect_error(400, "DELETE", "/api/v1/entitlements", NULL, "missing field");
}

static void test_sessions(void **state)
{
    (void)state;
    struct json_object *o, *s;
    int64_t now = time(NULL);
    struct store_session live = {.id = 7, .session_id = 7, .started = now - 60}, gone, shadow;

    /* live: what the broker says, every field of session_info */
    o = expect(200, "GET", "/api/v1/sessions", NULL);
    assert_int_equal(json_object_array_length(list(o, "sessions")), 2);
    s = json_object_array_get_idx(list(o, "sessions"), 0);
    assert_int_equal(num(s, "id"), 7);
    assert_string_equal(str(s, "user"), "alice");
    assert_string_equal(str(s, "pool"), "eng");
    assert_string_equal(str(s, "desktop"), "vdi-eng-0001");
    assert_string_equal(str(s, "state"), "connected");
    assert_string_equal(str(s, "client"), "192.0.2.1");
    assert_int_equal(num(s, "started"), 1800000000);
    assert_int_equal(num(s, "idle_s"), 42);
    assert_int_equal(num(s, "disconnected_s"), 0);
    assert_int_equal(num(s, "bytes_to_client"), 5 * 1024 * 1024);
    assert_int_equal(num(s, "bytes_from_client"), 900);
    assert_int_equal(num(s, "shadows"), 1);
    s = json_object_array_get_idx(list(o, "sessions"), 1);
    assert_string_equal(str(s, "state"), "disconnected");
    assert_string_equal(str(s, "client"), "");
    assert_int_equal(num(s, "disconnected_s"), 120);
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/sessions/12", NULL);
    assert_string_equal(str(o, "user"), "bob");
    json_object_put(o);
    expect_error(404, "GET", "/api/v1/sessions/99", NULL, "99");
    expect_error(404, "GET", "/api/v1/sessions/x", NULL, "x");

    /* history: the store's connection rows, newest first, with session ids and kinds */
    snprintf(live.user, sizeof(live.user), "alice");
    snprintf(live.pool, sizeof(live.pool), "eng");
    snprintf(live.desktop, sizeof(live.desktop), "vdi-eng-0001");
    snprintf(live.client, sizeof(live.client), "192.0.2.1");
    gone = live;
    gone.id = gone.session_id = 5;
    gone.started = now - 600;
    shadow = live;
    shadow.id = 8;
    shadow.kind = STORE_SESSION_SHADOW;
    shadow.started = now - 30;
    snprintf(shadow.user, sizeof(shadow.user), ADMIN);
    assert_int_equal(store_session_begin(T.store, &gone), 0);
    assert_int_equal(store_session_end(T.store, 5, now - 300), 0);
    assert_int_equal(store_session_begin(T.store, &live), 0);
    assert_int_equal(store_session_begin(T.store, &shadow), 0);
    o = expect(200, "GET", "/api/v1/sessions?history=1", NULL);
    assert_int_equal(json_object_array_length(list(o, "sessions")), 3);
    s = json_object_array_get_idx(list(o, "sessions"), 0);
    assert_int_equal(num(s, "id"), 8);
    assert_int_equal(num(s, "session_id"), 7);
    assert_string_equal(str(s, "kind"), "shadow");
    assert_string_equal(str(s, "user"), ADMIN);
    s = json_object_array_get_idx(list(o, "sessions"), 2);
    assert_int_equal(num(s, "id"), 5);
    assert_int_equal(num(s, "session_id"), 5);
    assert_string_equal(str(s, "kind"), "user");
    assert_int_equal(num(s, "ended"), now - 300);
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/sessions?history=0", NULL);
    assert_int_equal(json_object_array_length(list(o, "sessions")), 2); /* live again */
    json_object_put(o);

    /* actions reach the broker with the admin's name */
    assert_null(expect(204, "POST", "/api/v1/sessions/7/disconnect", NULL));
    pthread_mutex_lock(&T.lock);
    assert_int_equal(T.acted_id, 7);
    assert_int_equal(T.acted, API_SESSION_DISCONNECT);
    assert_string_equal(T.acted_by, ADMIN);
    pthread_mutex_unlock(&T.lock);
    assert_null(expect(204, "POST", "/api/v1/sessions/12/logoff", "{}"));
    pthread_mutex_lock(&T.lock);
    assert_int_equal(T.acted_id, 12);
    assert_int_equal(T.acted, API_SESSION_LOGOFF);
    pthread_mutex_unlock(&T.lock);
    expect_error(404, "POST", "/api/v1/sessions/99/disconnect", NULL, "99");
    expect_error(404, "POST", "/api/v1/sessions/99/logoff", NULL, "99");
    expect_error(404, "POST", "/api/v1/sessions/abc/disconnect", NULL, "abc");
    expect_error(404, "POST", "/api/v1/sessions/99999999999999999999999/disconnect", NULL, NULL);
    expect_error(404, "POST", "/api/v1/sessions/-1/logoff", NULL, NULL);
    expect_error(503, "POST", "/api/v1/sessions/13/logoff", NULL, "shutting down");
    expect_error(503, "POST", "/api/v1/sessions/14/disconnect", NULL, "in time");
    expect_error(405, "GET", "/api/v1/sessions/7/logoff", NULL, "POST");
    expect_error(400, "POST", "/api/v1/sessions/7/logoff", "{\"now\":true}", "unknown field");
}

static void test_usage(void **state)
{
    (void)state;
    int64_t now = time(NULL);
    uint64_t id;
    char path[256];
    struct json_object *o, *u, *v;

    assert_int_equal(store_usage_begin(T.store, STORE_USAGE_RUNNING, "carol", "eng", "vdi-eng-0099",
                                       2, 1024, now - 1000, &id),
                     0);
    assert_int_equal(store_usage_end(T.store, id, now - 900), 0);

    snprintf(path, sizeof(path), "/api/v1/usage?from=%lld&to=%lld&user=carol",
             (long long)(now - 2000), (long long)now);
    o = expect(200, "GET", path, NULL);
    assert_int_equal(num(o, "from"), now - 2000);
    assert_int_equal(num(o, "to"), now);
    assert_int_equal(json_object_array_length(list(o, "usage")), 1);
    u = json_object_array_get_idx(list(o, "usage"), 0);
    assert_string_equal(str(u, "user"), "carol");
    assert_string_equal(str(u, "pool"), "eng");
    assert_true(json_object_object_get_ex(u, "vcpu_seconds", &v));
    assert_true(json_object_get_double(v) > 199.9 && json_object_get_double(v) < 200.1);
    assert_true(json_object_object_get_ex(u, "memory_mib_seconds", &v));
    assert_true(json_object_get_double(v) > 102399.9 && json_object_get_double(v) < 102400.1);
    json_object_put(o);

    /* defaults: the last 30 days up to now */
    o = expect(200, "GET", "/api/v1/usage", NULL);
    assert_true(num(o, "to") >= now);
    assert_int_equal(num(o, "to") - num(o, "from"), 30 * 24 * 3600);
    assert_non_null(find(list(o, "usage"), "user", "carol"));
    json_object_put(o);

    expect_error(400, "GET", "/api/v1/usage?from=10&to=5", NULL, "before");
    expect_error(400, "GET", "/api/v1/usage?user=no%20body", NULL, "'user'");
}

/* Appends raw text to the audit log, as another writer or a damaged disk would. */
static void audit_append(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

static void test_audit(void **state)
{
    (void)state;
    struct json_object *o, *events, *e;
    char path[256];

    o = expect(200, "GET", "/api/v1/audit?limit=1000", NULL);
    events = list(o, "events");
    static const char *const actions[] = {
        "admin.template.add",       "admin.template.delete", "admin.pool.add",
        "admin.pool.update",        "admin.pool.delete",     "admin.desktop.assign",
        "admin.desktop.stop",       "admin.desktop.start",   "admin.desktop.reset",
        "admin.desktop.unassign",   "admin.entitlement.add", "admin.entitlement.delete",
        "admin.session.disconnect", "admin.session.logoff",
    };
    for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
        e = find(events, "event", actions[i]);
        if (!e)
            fprintf(stderr, "no audit event %s\n", actions[i]);
        assert_non_null(e);
        assert_string_equal(str(e, "actor"), ADMIN);
        assert_string_equal(str(e, "client"), "127.0.0.1");
        assert_true(strlen(str(e, "time")) == 24 && str(e, "time")[23] == 'Z');
    }
    e = find(events, "event", "admin.desktop.assign");
    assert_string_equal(str(e, "detail"), "user=alice");
    e = find(events, "event", "admin.session.logoff");
    assert_string_equal(str(e, "target"), "12");
    bool eng_added = false;
    for (size_t i = 0; i < json_object_array_length(events); i++) {
        e = json_object_array_get_idx(events, i);
        eng_added |= streq(str(e, "event"), "admin.pool.add") && streq(str(e, "target"), "eng") &&
                     strstr(str(e, "detail"), "template=deb vcpus=1 memory_mib=2048") &&
                     strstr(str(e, "detail"), "disconnect_grace_s=300");
    }
    assert_true(eng_added);
    /* refused requests leave no admin event; failed logins are there (test_auth) */
    for (size_t i = 0; i < json_object_array_length(events); i++) {
        e = json_object_array_get_idx(events, i);
        if (startswith(str(e, "event"), "admin."))
            assert_string_not_equal(str(e, "target"), "x");
    }
    e = find(events, "event", "login.failure");
    assert_non_null(e);
    assert_string_equal(str(e, "source"), "api");
    assert_string_equal(str(e, "client"), "127.0.0.1");
    json_object_put(o);

    /* newest first, limit */
    audit_append(T.audit_path, "{\"time\":\"2099-01-01T00:00:00.000Z\",\"event\":\"test.last\","
                               "\"user\":\"zed\",\"client\":\"198.51.100.9:4242\"}\n");
    o = expect(200, "GET", "/api/v1/audit?limit=2", NULL);
    assert_int_equal(json_object_array_length(list(o, "events")), 2);
    assert_string_equal(str(json_object_array_get_idx(list(o, "events"), 0), "event"), "test.last");
    json_object_put(o);

    /* filters: event prefix by component, user or actor, client without port, time */
    o = expect(200, "GET", "/api/v1/audit?event=admin.pool&limit=1000", NULL);
    events = list(o, "events");
    assert_true(json_object_array_length(events) >= 3);
    for (size_t i = 0; i < json_object_array_length(events); i++)
        assert_true(startswith(str(json_object_array_get_idx(events, i), "event"), "admin.pool."));
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/audit?event=admin.poo", NULL);
    assert_int_equal(json_object_array_length(list(o, "events")), 0);
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/audit?event=login&user=nobody", NULL);
    assert_true(json_object_array_length(list(o, "events")) >= 1);
    assert_string_equal(str(json_object_array_get_idx(list(o, "events"), 0), "event"),
                        "login.failure");
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/audit?user=" ADMIN "&limit=10000", NULL);
    assert_true(json_object_array_length(list(o, "events")) >= ARRAY_SIZE(actions));
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/audit?client=198.51.100.9", NULL);
    assert_int_equal(json_object_array_length(list(o, "events")), 1);
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/audit?since=4070908800", NULL); /* 2099-01-01 */
    assert_int_equal(json_object_array_length(list(o, "events")), 1);
    json_object_put(o);
    o = expect(200, "GET", "/api/v1/audit?since=4070908801", NULL);
    assert_int_equal(json_object_array_length(list(o, "events")), 0);
    json_object_put(o);
    snprintf(path, sizeof(path), "/api/v1/audit?until=4070908800&limit=1");
    o = expect(200, "GET", path, NULL);
    assert_int_equal(json_object_array_length(list(o, "events")), 1);
    assert_string_not_equal(str(json_object_array_get_idx(list(o, "events"), 0), "event"),
                            "test.last");
    json_object_put(o);

    /* a line that is not a JSON object is skipped, not fatal */
    audit_append(T.audit_path, "not json\n[1,2]\n{\"event\":\n\n");
    o = expect(200, "GET", "/api/v1/audit?limit=1", NULL);
    assert_string_equal(str(json_object_array_get_idx(list(o, "events"), 0), "event"), "test.last");
    json_object_put(o);
}

/* The reader on its own: long and broken lines, a missing file, the limit over many lines. */
static void test_audit_read(void **state)
{
    (void)state;
    char path[256];
    struct json_object *o = NULL, *events;
    struct api_audit_query q = {.until = INT64_MAX, .limit = 100};

    snprintf(path, sizeof(path), "%s/read.log", T.pki.dir);
    unlink(path);
    assert_int_equal(api_audit_read(path, &q, &o), 0); /* nothing recorded yet */
    assert_int_equal(json_object_array_length(list(o, "events")), 0);
    json_object_put(o);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 3000; i++) /* 3000 * ~80 bytes: several read blocks */
        fprintf(f, "{\"time\":\"2026-11-21T04:29:25.%03dZ\",\"event\":\"t.%s\",\"n\":%d}\n",
                i % 1000, i % 2 ? "odd" : "even", i);
    /* a 2 MiB line, then one without its newline at the end */
    fputs("{\"event\":\"t.huge\",\"x\":\"", f);
    for (int i = 0; i < 2 * 1024 * 1024; i++)
        fputc('x', f);
    fputs("\"}\n", f);
    fputs("{\"time\":\"2026-11-21T05:00:00Z\",\"event\":\"t.even\",\"n\":3000}", f);
    assert_int_equal(fclose(f), 0);

    q.limit = 5;
    assert_int_equal(api_audit_read(path, &q, &o), 0);
    events = list(o, "events");
    assert_int_equal(json_object_array_length(events), 5);
    assert_int_equal(num(json_object_array_get_idx(events, 0), "n"), 3000);
    assert_int_equal(num(json_object_array_get_idx(events, 1), "n"), 2999);
    assert_int_equal(num(json_object_array_get_idx(events, 4), "n"), 2996);
    json_object_put(o);

    q = (struct api_audit_query){.until = INT64_MAX, .limit = 10000, .event = "t.odd"};
    assert_int_equal(api_audit_read(path, &q, &o), 0);
    events = list(o, "events");
    assert_int_equal(json_object_array_length(events), 1500);
    assert_int_equal(num(json_object_array_get_idx(events, 0), "n"), 2999);
    assert_int_equal(num(json_object_array_get_idx(events, 1499), "n"), 1);
    json_object_put(o);

    /* everything (the huge line skipped: it has no time and is over the line cap) */
    q = (struct api_audit_query){.until = INT64_MAX, .limit = 10000, .event = "t"};
    assert_int_equal(api_audit_read(path, &q, &o), 0);
    assert_int_equal(json_object_array_length(list(o, "events")), 3001);
    assert_int_equal(num(json_object_array_get_idx(list(o, "events"), 3000), "n"), 0);
    json_object_put(o);

    /* time: 2026-11-21T05:00:00Z is 1795237200 */
    q = (struct api_audit_query){.since = 1795237200, .until = INT64_MAX, .limit = 10};
    assert_int_equal(api_audit_read(path, &q, &o), 0);
    assert_int_equal(json_object_array_length(list(o, "events")), 1);
    json_object_put(o);
    q = (struct api_audit_query){.until = 1795237200, .limit = 10000, .event = "t.even"};
    assert_int_equal(api_audit_read(path, &q, &o), 0);
    assert_int_equal(json_object_array_length(list(o, "events")), 1500);
    json_object_put(o);

    assert_int_equal(api_audit_read(T.pki.dir, &q, &o), -EINVAL); /* a directory */
    unlink(path);
}

/* Brute force on the admin API: a server of its own with a strict throttle (a second
 * failure costs a minute, the fourth locks for five), so the shared one stays usable. */
static void test_throttle(void **state)
{
    (void)state;
    char audit_path[256], *body = NULL, headers[4096];
    struct audit *audit = NULL;
    struct throttle *throttle = NULL;
    struct api *a = NULL;
    uint16_t port = 0;
    struct throttle_options to;

    throttle_options_default(&to);
    to.free_failures = 1;
    to.delay_base_ms = 60000;
    to.delay_max_ms = 60000;
    to.lockout_failures = 4;
    to.lockout_s = 300;
    assert_int_equal(throttle_new(&to, &throttle), 0);
    snprintf(audit_path, sizeof(audit_path), "%s/throttle-audit.log", T.pki.dir);
    assert_int_equal(audit_open(audit_path, false, &audit), 0);
    assert_int_equal(start_api_with("127.0.0.1", 0, audit, audit_path, throttle, &a, &port), 0);
    struct http_target t = T.target;
    t.port = port;

    /* two wrong passwords are checked; the second costs a minute */
    assert_int_equal(call_at(&t, "nobody", "x", "GET", "/api/v1/pools", NULL, NULL), 401);
    assert_int_equal(call_at(&t, "nobody", "y", "GET", "/api/v1/pools", NULL, NULL), 401);
    /* then even the right password from that address is refused unchecked */
    assert_int_equal(call_at(&t, ADMIN, ADMIN_PW, "GET", "/api/v1/pools", NULL, &body), 429);
    assert_non_null(strstr(body, "Too many failed logins; try again in 60 seconds"));
    free(body);
    body = NULL;
    /* the refusal counts: the fourth attempt locks the address for five minutes */
    assert_int_equal(call_at(&t, ADMIN, ADMIN_PW, "GET", "/api/v1/pools", NULL, &body), 429);
    assert_non_null(strstr(body, "try again in 300 seconds"));
    free(body);
    /* no credentials: nothing to throttle, the usual 401 */
    assert_int_equal(call_at(&t, NULL, NULL, "GET", "/api/v1/pools", NULL, NULL), 401);
    if (curl_headers_at(port, "-u " ADMIN ":" ADMIN_PW, "/api/v1/pools", headers,
                        sizeof(headers))) {
        assert_non_null(strstr(headers, " 429"));
        char *retry = strstr(headers, "Retry-After: ");
        assert_non_null(retry);
        long secs = strtol(retry + 13, NULL, 10);
        assert_true(secs > 0 && secs <= 300);
    }
    api_stop(a);
    audit_close(audit);
    struct throttle_stats st;
    throttle_stats(throttle, &st);
    assert_true(st.delayed >= 1);
    assert_true(st.locked >= 1);
    throttle_free(throttle);

    /* what the audit log has: two failures, a throttled and a locked attempt, from "api" */
    struct api_audit_query q = {.until = INT64_MAX, .limit = 100, .event = "login"};
    struct json_object *o = NULL, *events, *e;
    assert_int_equal(api_audit_read(audit_path, &q, &o), 0);
    events = list(o, "events");
    e = find(events, "event", "login.failure");
    assert_non_null(e);
    assert_string_equal(str(e, "user"), "nobody");
    assert_string_equal(str(e, "reason"), "wrong-password");
    assert_string_equal(str(e, "source"), "api");
    e = find(events, "event", "login.throttled");
    assert_non_null(e);
    assert_string_equal(str(e, "user"), ADMIN);
    assert_string_equal(str(e, "client"), "127.0.0.1");
    assert_string_equal(str(e, "source"), "api");
    assert_string_equal(str(e, "by"), "address");
    assert_int_equal(num(e, "wait_s"), 60);
    e = find(events, "event", "login.locked");
    assert_non_null(e);
    assert_int_equal(num(e, "wait_s"), 300);
    size_t failures = 0;
    for (size_t i = 0; i < json_object_array_length(events); i++)
        failures += streq(str(json_object_array_get_idx(events, i), "event"), "login.failure");
    assert_int_equal(failures, 2);
    json_object_put(o);
    unlink(audit_path);
}

static void test_metrics(void **state)
{
    (void)state;
    char *body = NULL, headers[4096];

    assert_int_equal(call("GET", "/metrics", NULL, &body), 200);
    assert_non_null(strstr(body, "\nvdi_desktops{pool=\"eng\""));
    size_t lines = 0;
    for (const char *l = body; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
        if (startswith(l, "vdi_"))
            lines++;
    assert_true(lines >= 3);
    free(body);
    assert_int_equal(call_as(PLAIN, PLAIN_PW, "GET", "/metrics", NULL, NULL), 403);
    if (curl_headers("-u " ADMIN ":" ADMIN_PW, "/metrics", headers, sizeof(headers)))
        assert_non_null(strstr(headers, "Content-Type: text/plain; version=0.0.4"));
}

#define THREADS 4
#define PER_THREAD 6

struct worker {
    int index;
    int status[PER_THREAD * 2];
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char body[512];

    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(body, sizeof(body), "{\"name\":\"t%d-%d\",\"disk\":\"%s\"}", w->index, i, T.disk);
        w->status[2 * i] = call("POST", "/api/v1/templates", body, NULL);
        w->status[2 * i + 1] = call("GET", i % 2 ? "/metrics" : "/api/v1/pools", NULL, NULL);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    struct json_object *o;

    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){.index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, worker_run, &workers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < PER_THREAD; k++) {
            assert_int_equal(workers[i].status[2 * k], 201);
            assert_int_equal(workers[i].status[2 * k + 1], 200);
        }
    o = expect(200, "GET", "/api/v1/templates", NULL);
    assert_int_equal(json_object_array_length(list(o, "templates")), 1 + THREADS * PER_THREAD);
    json_object_put(o);
}

/* Whether gnutls-cli completes a handshake with only the given TLS version. */
static bool handshake_with(const char *version)
{
    char cmd[512], line[256];
    bool done = false;

    snprintf(cmd, sizeof(cmd),
             "echo | timeout 10 gnutls-cli --x509cafile %s --priority 'NORMAL:-VERS-ALL:+VERS-%s' "
             "-p %u 127.0.0.1 2>&1",
             T.pki.ca, version, T.port);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        done |= strstr(line, "Handshake was completed") != NULL;
    pclose(f);
    return done;
}

/* The default priority: TLS 1.2 and 1.3 only (gnutls-cli comes with certtool). */
static void test_tls_versions(void **state)
{
    (void)state;
    assert_true(handshake_with("TLS1.3"));
    assert_true(handshake_with("TLS1.2"));
    assert_false(handshake_with("TLS1.1"));
    assert_false(handshake_with("TLS1.0"));
}

static void test_start_errors(void **state)
{
    (void)state;
    struct api *a = NULL;
    uint16_t port = 0;

    assert_int_equal(start_api("127.0.0.1", T.port, &a, &port), -EADDRINUSE);
    assert_null(a);
    assert_int_equal(start_api("not-an-address", 0, &a, &port), -EINVAL);
    assert_int_equal(start_api("192.0.2.1", 0, &a, &port), -EINVAL); /* not on this host */

    /* IPv6, then the same port again once stopped */
    int r = start_api("::1", 0, &a, &port);
    if (r == -EINVAL)
        return; /* no IPv6 loopback in this container */
    assert_int_equal(r, 0);
    struct http_target t6 = {.host = "::1", .port = port, .ca_file = T.pki.ca};
    struct http_request req = {.method = "GET", .path = "/api/v1/pools"};
    struct http_response resp = {0};
    char err[256];
    /* the test certificate names 127.0.0.1 and localhost, not ::1: refused, but by TLS */
    r = http_request(&t6, &req, now_ms() + 10000, &resp, err, sizeof(err));
    assert_true(r == -EPERM || (r == 0 && resp.status == 401));
    http_response_done(&resp);
    api_stop(a);
    uint16_t again = 0;
    assert_int_equal(start_api("::1", port, &a, &again), 0);
    assert_int_equal(again, port);
    api_stop(a);
    api_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_templates),    cmocka_unit_test(test_pools),
        cmocka_unit_test(test_bad_requests), cmocka_unit_test(test_routes),
        cmocka_unit_test(test_desktops),     cmocka_unit_test(test_entitlements),
        cmocka_unit_test(test_sessions),     cmocka_unit_test(test_usage),
        cmocka_unit_test(test_audit),        cmocka_unit_test(test_audit_read),
        cmocka_unit_test(test_throttle),     cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_concurrent),   cmocka_unit_test(test_tls_versions),
        cmocka_unit_test(test_start_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
