/* The audit log on a real file in a temporary directory: every line is one JSON object
 * (parsed with json-c), hostile strings stay inside their field, long values are cut
 * within the line cap, concurrent writers never mix lines, and the file is 0600. */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/vdi-test-audit-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/audit.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    unlink(f->path);
    assert_int_equal(rmdir(f->dir), 0);
    free(f);
    return 0;
}

/* The one object of a line (which must end in its only newline). */
static struct json_object *parse_line(const char *line, size_t len)
{
    assert_true(len > 0);
    assert_int_equal(line[len - 1], '\n');
    assert_null(memchr(line, '\n', len - 1));
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, line, (int)len - 1);
    if (!o || json_tokener_get_parse_end(tok) != len - 1)
        fail_msg("not one JSON object: %.*s", (int)len, line);
    json_tokener_free(tok);
    assert_true(json_object_is_type(o, json_type_object));
    return o;
}

static const char *get_str(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        fail_msg("no string field '%s' in %s", key, json_object_to_json_string(o));
    return json_object_get_string(v);
}

static bool has(struct json_object *o, const char *key)
{
    return json_object_object_get_ex(o, key, NULL);
}

static void test_format(void **state)
{
    (void)state;
    char buf[AUDIT_LINE_MAX + 1];
    struct audit_field fields[] = {
        AUDIT_STR("user", "alice"),   AUDIT_STR("client", "192.0.2.7"), AUDIT_NUM("wait_s", 30),
        AUDIT_NUM("neg", -5),         AUDIT_STR("skipped", NULL),       AUDIT_STR("time", "forged"),
        AUDIT_STR("event", "forged"), AUDIT_STR("source", "api"),
    };

    int len = audit_format(buf, 1795494565123, "login.failure", fields, 8);
    assert_true(len > 0);
    /* the order is fixed: time, event, then the caller's fields as given */
    assert_string_equal(buf, "{\"time\":\"2026-11-24T04:29:25.123Z\",\"event\":\"login.failure\","
                             "\"user\":\"alice\",\"client\":\"192.0.2.7\",\"wait_s\":30,"
                             "\"neg\":-5,\"source\":\"api\"}\n");
    struct json_object *o = parse_line(buf, (size_t)len);
    assert_int_equal(json_object_object_length(o), 7);
    json_object_put(o);

    assert_int_equal(audit_format(buf, 0, "x", NULL, 0), 48);
    assert_string_equal(buf, "{\"time\":\"1970-01-01T00:00:00.000Z\",\"event\":\"x\"}\n");
    assert_int_equal(audit_format(buf, 0, "", NULL, 0), -EINVAL);
    assert_int_equal(audit_format(buf, 0, NULL, NULL, 0), -EINVAL);
    assert_int_equal(audit_format(buf, 0, "x", NULL, 1), -EINVAL);
}

static void test_escaping(void **state)
{
    (void)state;
    /* what an attacker controls: a user name or client string with quotes, newlines (a
     * forged second line), control bytes and broken UTF-8 */
    const char *hostile = "a\"b\\c\nd\r\te\x01\x1f\x7f"
                          "\xff"             /* never valid */
                          "\xc0\xaf"         /* overlong '/' */
                          "\xed\xa0\x80"     /* a surrogate */
                          "\xf4\x90\x80\x80" /* above U+10FFFF */
                          "\xe2\x82"         /* cut short, then plain text */
                          "z\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/";
    const char *decoded = "a\"b\\c\nd\r\te\x01\x1f\x7f"
                          "\xef\xbf\xbd"
                          "\xef\xbf\xbd\xef\xbf\xbd"
                          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                          "\xef\xbf\xbd\xef\xbf\xbd"
                          "z\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/";
    struct audit_field fields[] = {AUDIT_STR("user", hostile), AUDIT_STR("key\"\n", "v")};
    char buf[AUDIT_LINE_MAX + 1];

    int len = audit_format(buf, 0, "login.failure\n{\"event\":\"x\"}", fields, 2);
    assert_true(len > 0);
    for (int i = 0; i < len - 1; i++) /* no raw control bytes at all */
        assert_true((unsigned char)buf[i] >= 0x20 && buf[i] != 0x7f);
    assert_non_null(strstr(buf, "\\u0001\\u001f\\u007f"));
    struct json_object *o = parse_line(buf, (size_t)len);
    assert_string_equal(get_str(o, "user"), decoded);
    assert_string_equal(get_str(o, "event"), "login.failure\n{\"event\":\"x\"}");
    assert_string_equal(get_str(o, "key\"\n"), "v");
    json_object_put(o);
}

/* Runs of one 2-byte character: a cut value must end on a character boundary. */
static void test_long_values_cut(void **state)
{
    (void)state;
    size_t big = 3 * AUDIT_LINE_MAX;
    char *x = malloc(big + 1), *e = malloc(2 * big + 1), *q = malloc(big + 1);
    assert_non_null(x);
    assert_non_null(e);
    assert_non_null(q);
    memset(x, 'x', big);
    x[big] = '\0';
    for (size_t i = 0; i < big; i++)
        memcpy(e + 2 * i, "\xc3\xa9", 2);
    e[2 * big] = '\0';
    memset(q, '"', big); /* each takes two bytes escaped */
    q[big] = '\0';

    const char *values[] = {x, e, q};
    for (size_t v = 0; v < 3; v++) {
        struct audit_field fields[] = {AUDIT_STR("user", "alice"), AUDIT_STR("detail", values[v]),
                                       AUDIT_STR("after", "dropped")};
        char buf[AUDIT_LINE_MAX + 1];
        int len = audit_format(buf, 0, "admin.pool.add", fields, 3);
        assert_true(len > AUDIT_LINE_MAX - 40 && len <= AUDIT_LINE_MAX);
        struct json_object *o = parse_line(buf, (size_t)len);
        assert_string_equal(get_str(o, "user"), "alice");
        const char *d = get_str(o, "detail");
        size_t n = strlen(d);
        assert_true(n > AUDIT_LINE_MAX / 3);
        assert_memory_equal(d, values[v], n); /* a prefix, on a character boundary */
        assert_false(has(o, "after"));
        struct json_object *t = NULL;
        assert_true(json_object_object_get_ex(o, "truncated", &t));
        assert_true(json_object_get_boolean(t));
        json_object_put(o);
    }

    /* a line that just fits is not marked */
    struct audit_field fields[] = {AUDIT_STR("detail", "short")};
    char buf[AUDIT_LINE_MAX + 1];
    int len = audit_format(buf, 0, "a", fields, 1);
    struct json_object *o = parse_line(buf, (size_t)len);
    assert_false(has(o, "truncated"));
    json_object_put(o);

    /* 40 fields that fit one by one: the line stops before the one that does not */
    struct audit_field many[40];
    char keys[40][8];
    char *part = malloc(201);
    assert_non_null(part);
    memset(part, 'p', 200);
    part[200] = '\0';
    for (int i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        many[i] = AUDIT_STR(keys[i], part);
    }
    len = audit_format(buf, 0, "a", many, 40);
    assert_true(len <= AUDIT_LINE_MAX);
    o = parse_line(buf, (size_t)len);
    assert_true(has(o, "k0"));
    assert_true(has(o, "k15"));
    assert_false(has(o, "k39"));
    assert_true(has(o, "truncated"));
    json_object_put(o);
    free(part);
    free(x);
    free(e);
    free(q);
}

/* Reads the whole file; each line checked and counted through on_line. */
static size_t read_lines(const char *path, void (*on_line)(struct json_object *, void *),
                         void *userdata)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char *line = NULL;
    size_t cap = 0, n = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, fp)) > 0) {
        struct json_object *o = parse_line(line, (size_t)len);
        if (on_line)
            on_line(o, userdata);
        json_object_put(o);
        n++;
    }
    free(line);
    fclose(fp);
    return n;
}

static void test_file(void **state)
{
    struct fixture *f = *state;
    struct audit *a = NULL;
    struct stat st;

    mode_t old = umask(0);
    int r = audit_open(f->path, false, &a);
    umask(old);
    assert_int_equal(r, 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    assert_int_equal(audit_event(a, "admin.pool.add", "actor", "root", "target", "p1", "detail",
                                 "vcpus=2", "client", "192.0.2.9", NULL),
                     0);
    assert_int_equal(audit_event(a, "login.success", "user", "alice", "client", NULL, NULL), 0);
    struct audit_field fields[] = {AUDIT_STR("user", "bob"), AUDIT_NUM("wait_s", 8)};
    assert_int_equal(audit_event_fields(a, "login.throttled", fields, 2), 0);
    assert_int_equal(audit_event(a, "", NULL), -EINVAL);
    audit_close(a);

    /* appended, never overwritten */
    assert_int_equal(audit_open(f->path, false, &a), 0);
    assert_int_equal(audit_event(a, "login.failure", "user", "carol", NULL), 0);
    audit_close(a);
    assert_int_equal(read_lines(f->path, NULL, NULL), 4);

    /* NULL is a no-op for every call */
    assert_int_equal(audit_event(NULL, "login.failure", "user", "x", NULL), 0);
    assert_int_equal(audit_event_fields(NULL, "login.failure", fields, 2), 0);
    audit_close(NULL);

    char missing[200];
    snprintf(missing, sizeof(missing), "%s/no/such/dir/audit.log", f->dir);
    a = NULL;
    assert_int_equal(audit_open(missing, false, &a), -ENOENT);
    assert_null(a);
    assert_int_equal(audit_open(f->dir, false, &a), -EISDIR);
}

/* logrotate's copytruncate: the file is emptied under the open descriptor; the next event
 * starts the file again, with no hole of zero bytes before it. */
static void test_truncated_under_us(void **state)
{
    struct fixture *f = *state;
    struct audit *a = NULL;
    struct stat st;

    assert_int_equal(audit_open(f->path, false, &a), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(audit_event(a, "test.before", "user", "alice", NULL), 0);
    assert_int_equal(truncate(f->path, 0), 0);
    assert_int_equal(audit_event(a, "test.after", "user", "bob", NULL), 0);
    audit_close(a);
    assert_int_equal(read_lines(f->path, NULL, NULL), 1);
    assert_int_equal(stat(f->path, &st), 0);
    char buf[AUDIT_LINE_MAX + 1];
    struct audit_field fields[] = {AUDIT_STR("user", "bob")};
    assert_int_equal(st.st_size, audit_format(buf, 0, "test.after", fields, 1));
}

#define N_WRITERS 4
#define N_EVENTS 500

struct writer {
    struct audit *a;
    int index;
};

static void *writer_run(void *userdata)
{
    struct writer *w = userdata;
    char who[16], seq[16];
    char *pad = malloc(3001);
    if (!pad)
        return (void *)1;
    memset(pad, 'a' + w->index, 3000); /* close to the cap: many pages, many writes */
    pad[3000] = '\0';
    snprintf(who, sizeof(who), "writer%d", w->index);
    for (int i = 0; i < N_EVENTS; i++) {
        snprintf(seq, sizeof(seq), "%d", i);
        if (audit_event(w->a, "test.race", "user", who, "seq", seq, "detail", pad, NULL) < 0) {
            free(pad);
            return (void *)1;
        }
    }
    free(pad);
    return NULL;
}

struct tally {
    int seen[N_WRITERS][N_EVENTS];
};

static void tally_line(struct json_object *o, void *userdata)
{
    struct tally *t = userdata;
    int w = -1, i = atoi(get_str(o, "seq"));
    assert_int_equal(sscanf(get_str(o, "user"), "writer%d", &w), 1);
    assert_true(w >= 0 && w < N_WRITERS && i >= 0 && i < N_EVENTS);
    const char *d = get_str(o, "detail");
    assert_int_equal(strlen(d), 3000);
    assert_int_equal(strspn(d, (char[]){(char)('a' + w), 0}), 3000);
    t->seen[w][i]++;
}

static void test_concurrent_writers(void **state)
{
    struct fixture *f = *state;
    struct audit *a = NULL;
    struct audit *b = NULL; /* a second descriptor on the same file, as a second process */
    struct writer writers[N_WRITERS];
    pthread_t threads[N_WRITERS];

    assert_int_equal(audit_open(f->path, false, &a), 0);
    assert_int_equal(audit_open(f->path, false, &b), 0);
    for (int i = 0; i < N_WRITERS; i++) {
        writers[i] = (struct writer){.a = i % 2 ? b : a, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, writer_run, &writers[i]), 0);
    }
    for (int i = 0; i < N_WRITERS; i++) {
        void *ret = (void *)1;
        assert_int_equal(pthread_join(threads[i], &ret), 0);
        assert_null(ret);
    }
    audit_close(a);
    audit_close(b);

    struct tally *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    assert_int_equal(read_lines(f->path, tally_line, t), N_WRITERS * N_EVENTS);
    for (int w = 0; w < N_WRITERS; w++)
        for (int i = 0; i < N_EVENTS; i++)
            assert_int_equal(t->seen[w][i], 1);
    free(t);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_long_values_cut),
        T(test_file),
        T(test_truncated_under_us),
        T(test_concurrent_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
