/* Unit tests for vdictl's logic (broker/vdictl-cli.c): every command line into the request
 * it stands for, every usage error (exit 2, nothing sent), tables from canned answers
 * (hostile ones too), and exit codes. No network: test_http_client.c covers that. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "util.h"
#include "vdictl-cli.h"

#define ARGV(...) ((const char *const[]){"vdictl", __VA_ARGS__, NULL})

static int argv_count(const char *const *argv)
{
    int n = 0;
    while (argv[n])
        n++;
    return n;
}

/* Captures a FILE's output. */
struct capture {
    FILE *f;
    char *text;
    size_t len;
};

static void capture_open(struct capture *c)
{
    *c = (struct capture){0};
    c->f = open_memstream(&c->text, &c->len);
    assert_non_null(c->f);
}

static const char *capture_text(struct capture *c)
{
    fflush(c->f);
    return c->text;
}

static void capture_close(struct capture *c)
{
    fclose(c->f);
    free(c->text);
}

/* ---- command line -> request ------------------------------------------------------------ */

struct parse_case {
    const char *const *argv;
    const char *method;
    const char *path;
    const char *body; /* NULL: none */
    enum vdictl_view view;
    const char *confirm; /* NULL: none */
};

static const struct parse_case parse_cases[] = {
    {ARGV("template", "list"), "GET", "/api/v1/templates", NULL, VDICTL_VIEW_TEMPLATES, NULL},
    {ARGV("template", "show", "deb"), "GET", "/api/v1/templates/deb", NULL, VDICTL_VIEW_TEMPLATE,
     NULL},
    {ARGV("template", "add", "deb", "--disk", "/var/lib/vdi/deb.qcow2"), "POST",
     "/api/v1/templates", "{\"name\":\"deb\",\"disk\":\"/var/lib/vdi/deb.qcow2\"}",
     VDICTL_VIEW_CONFIRM, "template deb added"},
    {ARGV("template", "add", "--disk=/d/w.qcow2", "win", "--os", "windows", "--firmware", "uefi",
          "--kernel", "/boot/vmlinuz", "--initrd", "/boot/initrd", "--cmdline",
          "console=ttyS0 quiet \"x\""),
     "POST", "/api/v1/templates",
     "{\"name\":\"win\",\"disk\":\"/d/w.qcow2\",\"os\":\"windows\",\"firmware\":\"uefi\","
     "\"kernel\":\"/boot/vmlinuz\",\"initrd\":\"/boot/initrd\","
     "\"cmdline\":\"console=ttyS0 quiet \\\"x\\\"\"}",
     VDICTL_VIEW_CONFIRM, "template win added"},
    {ARGV("template", "delete", "deb"), "DELETE", "/api/v1/templates/deb", NULL,
     VDICTL_VIEW_CONFIRM, "template deb deleted"},

    {ARGV("pool", "list"), "GET", "/api/v1/pools", NULL, VDICTL_VIEW_POOLS, NULL},
    {ARGV("pool", "show", "eng"), "GET", "/api/v1/pools/eng", NULL, VDICTL_VIEW_POOL, NULL},
    {ARGV("pool", "add", "eng", "--template", "deb"), "POST", "/api/v1/pools",
     "{\"name\":\"eng\",\"template\":\"deb\"}", VDICTL_VIEW_CONFIRM, "pool eng added"},
    {ARGV("pool", "add", "eng-2", "--template", "deb", "--size", "large", "--vcpus", "8",
          "--memory", "16384", "--kind", "floating", "--min-spare", "0", "--max", "25", "--logoff",
          "reset"),
     "POST", "/api/v1/pools",
     "{\"name\":\"eng-2\",\"template\":\"deb\",\"size\":\"large\",\"vcpus\":8,"
     "\"memory_mib\":16384,\"kind\":\"floating\",\"min_spare\":0,\"max_desktops\":25,"
     "\"logoff\":\"reset\"}",
     VDICTL_VIEW_CONFIRM, "pool eng-2 added"},
    {ARGV("pool", "set", "eng", "--max", "40", "--logoff=suspend"), "PATCH", "/api/v1/pools/eng",
     "{\"max_desktops\":40,\"logoff\":\"suspend\"}", VDICTL_VIEW_CONFIRM, "pool eng changed"},
    {ARGV("pool", "set", "eng", "--template", "deb12"), "PATCH", "/api/v1/pools/eng",
     "{\"template\":\"deb12\"}", VDICTL_VIEW_CONFIRM, "pool eng changed"},
    {ARGV("pool", "add", "f", "--template", "deb", "--kind", "floating", "--grace", "10m",
          "--idle-timeout", "1800", "--max-session", "8h", "--stop-action", "restart"),
     "POST", "/api/v1/pools",
     "{\"name\":\"f\",\"template\":\"deb\",\"kind\":\"floating\",\"disconnect_grace_s\":600,"
     "\"idle_timeout_s\":1800,\"max_session_s\":28800,\"stop_action\":\"restart\"}",
     VDICTL_VIEW_CONFIRM, "pool f added"},
    {ARGV("pool", "set", "eng", "--grace", "0", "--max-session=30d", "--idle-timeout", "7d",
          "--stop-action", "none"),
     "PATCH", "/api/v1/pools/eng",
     "{\"disconnect_grace_s\":0,\"idle_timeout_s\":604800,\"max_session_s\":2592000,"
     "\"stop_action\":\"none\"}",
     VDICTL_VIEW_CONFIRM, "pool eng changed"},
    {ARGV("pool", "set", "eng", "--grace", "45s"), "PATCH", "/api/v1/pools/eng",
     "{\"disconnect_grace_s\":45}", VDICTL_VIEW_CONFIRM, "pool eng changed"},
    {ARGV("pool", "delete", "0eng"), "DELETE", "/api/v1/pools/0eng", NULL, VDICTL_VIEW_CONFIRM,
     "pool 0eng deleted"},

    {ARGV("desktop", "list"), "GET", "/api/v1/desktops", NULL, VDICTL_VIEW_DESKTOPS, NULL},
    {ARGV("desktop", "list", "--pool", "eng"), "GET", "/api/v1/desktops?pool=eng", NULL,
     VDICTL_VIEW_DESKTOPS, NULL},
    {ARGV("desktop", "show", "vdi-eng-0001"), "GET", "/api/v1/desktops/vdi-eng-0001", NULL,
     VDICTL_VIEW_DESKTOP, NULL},
    {ARGV("desktop", "show", "vdi-a.b_c"), "GET", "/api/v1/desktops/vdi-a.b_c", NULL,
     VDICTL_VIEW_DESKTOP, NULL},
    {ARGV("desktop", "assign", "vdi-eng-0001", "alice"), "POST",
     "/api/v1/desktops/vdi-eng-0001/assign", "{\"user\":\"alice\"}", VDICTL_VIEW_CONFIRM,
     "desktop vdi-eng-0001 assigned to alice"},
    {ARGV("desktop", "unassign", "vdi-eng-0001"), "POST", "/api/v1/desktops/vdi-eng-0001/unassign",
     NULL, VDICTL_VIEW_CONFIRM, "desktop vdi-eng-0001 unassigned"},
    {ARGV("desktop", "start", "vdi-eng-0001"), "POST", "/api/v1/desktops/vdi-eng-0001/start", NULL,
     VDICTL_VIEW_CONFIRM, "desktop vdi-eng-0001 started"},
    {ARGV("desktop", "stop", "vdi-eng-0001"), "POST", "/api/v1/desktops/vdi-eng-0001/stop", NULL,
     VDICTL_VIEW_CONFIRM, "desktop vdi-eng-0001 stopped"},
    {ARGV("desktop", "reset", "vdi-eng-0001"), "POST", "/api/v1/desktops/vdi-eng-0001/reset", NULL,
     VDICTL_VIEW_CONFIRM, "desktop vdi-eng-0001 reset"},

    {ARGV("entitlement", "list"), "GET", "/api/v1/entitlements", NULL, VDICTL_VIEW_ENTITLEMENTS,
     NULL},
    {ARGV("entitlement", "list", "--pool=eng"), "GET", "/api/v1/entitlements?pool=eng", NULL,
     VDICTL_VIEW_ENTITLEMENTS, NULL},
    {ARGV("entitlement", "add", "eng", "--user", "alice"), "POST", "/api/v1/entitlements",
     "{\"pool\":\"eng\",\"kind\":\"user\",\"name\":\"alice\"}", VDICTL_VIEW_CONFIRM,
     "user alice entitled to pool eng"},
    {ARGV("entitlement", "add", "--group", "staff", "eng"), "POST", "/api/v1/entitlements",
     "{\"pool\":\"eng\",\"kind\":\"group\",\"name\":\"staff\"}", VDICTL_VIEW_CONFIRM,
     "group staff entitled to pool eng"},
    {ARGV("entitlement", "delete", "eng", "--group", "staff"), "DELETE", "/api/v1/entitlements",
     "{\"pool\":\"eng\",\"kind\":\"group\",\"name\":\"staff\"}", VDICTL_VIEW_CONFIRM,
     "group staff no longer entitled to pool eng"},

    {ARGV("session", "list"), "GET", "/api/v1/sessions", NULL, VDICTL_VIEW_SESSIONS, NULL},
    {ARGV("session", "list", "--history"), "GET", "/api/v1/sessions?history=1", NULL,
     VDICTL_VIEW_SESSION_HISTORY, NULL},
    {ARGV("session", "disconnect", "12"), "POST", "/api/v1/sessions/12/disconnect", NULL,
     VDICTL_VIEW_CONFIRM, "session 12 disconnected"},
    {ARGV("session", "logoff", "12"), "POST", "/api/v1/sessions/12/logoff", NULL,
     VDICTL_VIEW_CONFIRM, "session 12 logged off"},
    {ARGV("session", "shadow", "12"), "GET", "/api/v1/sessions/12", NULL, VDICTL_VIEW_SHADOW, NULL},

    {ARGV("usage"), "GET", "/api/v1/usage", NULL, VDICTL_VIEW_USAGE, NULL},
    {ARGV("usage", "--from", "1700000000", "--to", "1700086400", "--user", "alice", "--pool",
          "eng"),
     "GET", "/api/v1/usage?from=1700000000&to=1700086400&user=alice&pool=eng", NULL,
     VDICTL_VIEW_USAGE, NULL},
    /* Days are local (TZ=UTC here); --to counts the whole day. */
    {ARGV("usage", "--from", "2024-01-01", "--to", "2024-01-31"), "GET",
     "/api/v1/usage?from=1704067200&to=1706745600", NULL, VDICTL_VIEW_USAGE, NULL},
    /* Only --to: the 30 days before it. */
    {ARGV("usage", "--to", "1702592000"), "GET", "/api/v1/usage?from=1700000000&to=1702592000",
     NULL, VDICTL_VIEW_USAGE, NULL},
    {ARGV("usage", "--from", "2024-01-01"), "GET", "/api/v1/usage?from=1704067200", NULL,
     VDICTL_VIEW_USAGE, NULL},

    {ARGV("audit"), "GET", "/api/v1/audit", NULL, VDICTL_VIEW_AUDIT, NULL},
    {ARGV("audit", "--since", "2024-01-01", "--limit", "50"), "GET",
     "/api/v1/audit?since=1704067200&limit=50", NULL, VDICTL_VIEW_AUDIT, NULL},
    {ARGV("audit", "--limit", "10000"), "GET", "/api/v1/audit?limit=10000", NULL, VDICTL_VIEW_AUDIT,
     NULL},
    /* TIME: ISO 8601 in UTC with Z; a plain date as --until counts the whole day */
    {ARGV("audit", "--since", "2026-11-21T10:00:00Z", "--until", "2026-11-21T10:30Z", "--event",
          "login", "--user", "alice", "--client", "192.0.2.7"),
     "GET",
     "/api/v1/audit?since=1795255200&until=1795257000&event=login&user=alice&client=192.0.2.7",
     NULL, VDICTL_VIEW_AUDIT, NULL},
    {ARGV("audit", "--until", "2024-01-01", "--client", "2001:db8::1", "--event", "admin.pool"),
     "GET", "/api/v1/audit?until=1704153600&event=admin.pool&client=2001%3Adb8%3A%3A1", NULL,
     VDICTL_VIEW_AUDIT, NULL},
    {ARGV("audit", "--since", "2026-11-21T11:00"), "GET", "/api/v1/audit?since=1795258800", NULL,
     VDICTL_VIEW_AUDIT, NULL},
    {ARGV("metrics"), "GET", "/metrics", NULL, VDICTL_VIEW_METRICS, NULL},
};

static void test_parse_commands(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
        const struct parse_case *t = &parse_cases[i];
        struct capture err;
        capture_open(&err);
        struct vdictl_request r;
        int k = vdictl_parse(argv_count(t->argv), (char *const *)t->argv, &r, err.f);
        if (k != 0 || !r.method || strcmp(r.path, t->path) != 0)
            fprintf(stderr, "case %zu (%s %s): k=%d path=%s err=%s\n", i, t->argv[1],
                    t->argv[2] ? t->argv[2] : "", k, r.path ? r.path : "(null)",
                    capture_text(&err));
        assert_int_equal(k, 0);
        assert_false(r.help);
        assert_string_equal(r.method, t->method);
        assert_string_equal(r.path, t->path);
        if (t->body)
            assert_string_equal(r.body, t->body);
        else
            assert_null(r.body);
        assert_int_equal(r.view, t->view);
        if (t->confirm)
            assert_string_equal(r.confirm, t->confirm);
        else
            assert_null(r.confirm);
        assert_string_equal(capture_text(&err), "");
        assert_false(r.json);
        vdictl_request_done(&r);
        capture_close(&err);
    }
}

static void test_parse_global_options(void **state)
{
    (void)state;
    const char *const *argv =
        ARGV("--url", "https://vdi.example:9443", "--ca-file=/etc/ca.pem", "--user", "bob",
             "--password-file", "/run/pw", "--timeout", "5", "--json", "pool", "list");
    struct vdictl_request r;
    assert_int_equal(vdictl_parse(argv_count(argv), (char *const *)argv, &r, stderr), 0);
    assert_string_equal(r.url, "https://vdi.example:9443");
    assert_string_equal(r.ca_file, "/etc/ca.pem");
    assert_string_equal(r.user, "bob");
    assert_string_equal(r.password_file, "/run/pw");
    assert_int_equal(r.timeout_s, 5);
    assert_true(r.json);
    assert_string_equal(r.path, "/api/v1/pools");
    vdictl_request_done(&r);

    /* Defaults are left to vdictl_run(): nothing set. */
    argv = ARGV("pool", "list");
    assert_int_equal(vdictl_parse(argv_count(argv), (char *const *)argv, &r, stderr), 0);
    assert_null(r.url);
    assert_null(r.ca_file);
    assert_null(r.user);
    assert_null(r.password_file);
    assert_int_equal(r.timeout_s, 0);
    assert_false(r.json);
    vdictl_request_done(&r);

    /* --json after the command; --user there is the command's own option. */
    argv = ARGV("--user", "admin", "usage", "--user", "alice", "--json");
    assert_int_equal(vdictl_parse(argv_count(argv), (char *const *)argv, &r, stderr), 0);
    assert_true(r.json);
    assert_string_equal(r.user, "admin");
    assert_string_equal(r.path, "/api/v1/usage?user=alice");
    vdictl_request_done(&r);

    /* "--" ends the global options. */
    argv = ARGV("--timeout=7", "--", "metrics");
    assert_int_equal(vdictl_parse(argv_count(argv), (char *const *)argv, &r, stderr), 0);
    assert_int_equal(r.timeout_s, 7);
    assert_string_equal(r.path, "/metrics");
    vdictl_request_done(&r);
}

static void test_parse_help(void **state)
{
    (void)state;
    const char *const *cases[] = {
        ARGV("--help"),
        ARGV("-h"),
        ARGV("pool", "--help"),
        ARGV("pool", "add", "--help"),
        ARGV("pool", "add", "-h"),
        ARGV("--json", "--help", "bogus"),
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct vdictl_request r;
        assert_int_equal(vdictl_parse(argv_count(cases[i]), (char *const *)cases[i], &r, stderr),
                         0);
        assert_true(r.help);
        assert_null(r.method);
        assert_null(r.path);
        vdictl_request_done(&r);
    }

    struct capture out;
    capture_open(&out);
    vdictl_help(out.f);
    const char *h = capture_text(&out);
    /* Every command and option is documented, and the exit codes. */
    static const char *const expected[] = {
        "template add NAME --disk PATH",
        "pool set NAME",
        "desktop assign NAME USER",
        "entitlement add POOL (--user USER | --group GROUP)",
        "session disconnect ID",
        "session logoff ID",
        "session shadow ID",
        "session list [--history]",
        "[--idle-timeout DURATION] [--max-session DURATION]",
        "--stop-action none|restart|reset",
        "usage [--from DATE] [--to DATE] [--user USER] [--pool POOL]",
        "audit [--since TIME] [--until TIME] [--event EVENT] [--user USER]",
        "[--client ADDRESS] [--limit N]",
        "TIME is a DATE",
        "metrics",
        "--password-file FILE",
        "VDI_PASSWORD",
        "--timeout SECONDS",
        "--logoff keep|suspend|shutdown|reset",
        "7  capacity",
        "3  cannot connect",
        "4  authentication failed",
        "(401, 403, 429)",
    };
    for (size_t i = 0; i < ARRAY_SIZE(expected); i++)
        if (!strstr(h, expected[i]))
            fail_msg("--help lacks '%s'", expected[i]);
    /* No line wider than 80 columns. */
    for (const char *line = h; *line;) {
        size_t n = strcspn(line, "\n");
        assert_true(n < 80);
        line += n + (line[n] ? 1 : 0);
    }
    capture_close(&out);
}

static const char *const *const usage_errors[] = {
    ARGV(""),
    ARGV("frob"),
    ARGV("pool"),
    ARGV("pool", "frob"),
    ARGV("pool", "show"),
    ARGV("pool", "show", "a", "b"),
    ARGV("pool", "show", "Eng"),
    ARGV("pool", "show", "-eng"),
    ARGV("pool", "show", "this-name-is-far-too-long-for-a-pool"),
    ARGV("pool", "show", "eng", "-x"),
    ARGV("pool", "list", "--pool", "eng"),
    ARGV("pool", "add", "eng"),
    ARGV("pool", "add", "eng", "--template"),
    ARGV("pool", "add", "eng", "--template", "deb", "--vcpus", "two"),
    ARGV("pool", "add", "eng", "--template", "deb", "--vcpus", "0"),
    ARGV("pool", "add", "eng", "--template", "deb", "--vcpus", "-1"),
    ARGV("pool", "add", "eng", "--template", "deb", "--vcpus", "99999999999999999999999"),
    ARGV("pool", "add", "eng", "--template", "deb", "--memory", "12abc"),
    ARGV("pool", "add", "eng", "--template", "deb", "--memory", ""),
    ARGV("pool", "add", "eng", "--template", "deb", "--min-spare", "+1"),
    ARGV("pool", "add", "eng", "--template", "deb", "--kind", "weird"),
    ARGV("pool", "add", "eng", "--template", "deb", "--size", "huge"),
    ARGV("pool", "add", "eng", "--template", "deb", "--logoff", "never"),
    ARGV("pool", "add", "eng", "--template", "deb", "--template", "deb2"),
    ARGV("pool", "add", "eng", "--template", "deb", "--disk", "/x"),
    ARGV("pool", "add", "eng", "--template", "Deb"),
    ARGV("pool", "set", "eng"),
    ARGV("pool", "set", "eng", "--json"),
    ARGV("template", "add", "deb"),
    ARGV("template", "add", "deb", "--disk", "relative.qcow2"),
    ARGV("template", "add", "deb", "--disk", "/x", "--os", "beos"),
    ARGV("template", "add", "deb", "--disk", "/x", "--firmware", "coreboot"),
    ARGV("template", "add", "deb", "--disk", "/x", "--cmdline", "a\nb"),
    ARGV("template", "add", "deb", "--disk", "/x\033[2J"),
    ARGV("template", "add", "deb", "--disk", "/x", "--kernel", "vmlinuz"),
    ARGV("desktop", "assign", "vdi-eng-0001"),
    ARGV("desktop", "assign", "vdi-eng-0001", "bad user"),
    ARGV("desktop", "assign", "vdi-eng-0001", "-alice"),
    ARGV("desktop", "show", ".."),
    ARGV("desktop", "show", "a/b"),
    ARGV("desktop", "start"),
    ARGV("desktop", "list", "--pool"),
    ARGV("entitlement", "add", "eng"),
    ARGV("entitlement", "add", "eng", "--user", "alice", "--group", "staff"),
    ARGV("entitlement", "delete", "eng"),
    ARGV("entitlement", "add", "--user", "alice"),
    ARGV("entitlement", "add", "eng", "--group", "st aff"),
    ARGV("session", "disconnect", "abc"),
    ARGV("session", "disconnect", "0"),
    ARGV("session", "disconnect", "-5"),
    ARGV("session", "disconnect"),
    ARGV("session", "list", "--all"),
    ARGV("session", "list", "--history=1"),
    ARGV("session", "logoff"),
    ARGV("session", "logoff", "x"),
    ARGV("session", "shadow", "0"),
    ARGV("session", "shadow", "12", "13"),
    ARGV("pool", "set", "eng", "--grace", "-1"),
    ARGV("pool", "set", "eng", "--grace", "8d"),
    ARGV("pool", "set", "eng", "--grace", "604801"),
    ARGV("pool", "set", "eng", "--grace", "1w"),
    ARGV("pool", "set", "eng", "--grace", "5 m"),
    ARGV("pool", "set", "eng", "--grace", "m"),
    ARGV("pool", "set", "eng", "--grace", "5mm"),
    ARGV("pool", "set", "eng", "--idle-timeout", "1y"),
    ARGV("pool", "set", "eng", "--max-session", "31d"),
    ARGV("pool", "set", "eng", "--max-session", "9999999999"),
    ARGV("pool", "set", "eng", "--stop-action", "reboot"),
    ARGV("pool", "add", "eng", "--template", "deb", "--stop-action", "Reset"),
    ARGV("usage", "--from", "yesterday"),
    ARGV("usage", "--from", "2024-02-30"),
    ARGV("usage", "--from", "2024-13-01"),
    ARGV("usage", "--from", "24-01-01"),
    ARGV("usage", "--from", "-5"),
    ARGV("usage", "--from", "2024-01-02", "--to", "2024-01-01"),
    ARGV("usage", "--from", "1700000000", "--to", "1700000000"),
    ARGV("usage", "extra"),
    ARGV("audit", "--limit", "0"),
    ARGV("audit", "--limit", "10001"),
    ARGV("audit", "--limit", "x"),
    ARGV("audit", "--since", "2024-1-1"),
    ARGV("audit", "--since", "yesterday"),
    ARGV("audit", "--since", "2024-02-30T10:00Z"),
    ARGV("audit", "--since", "2024-01-01T25:00Z"),
    ARGV("audit", "--since", "2024-01-01T10:00:00+02:00"),
    ARGV("audit", "--since", "2024-01-01 10:00"),
    ARGV("audit", "--since", "5x"),
    ARGV("audit", "--since", "2024-01-02", "--until", "2024-01-01"),
    ARGV("audit", "--event", "Login"),
    ARGV("audit", "--event", "a b"),
    ARGV("audit", "--user", "no body"),
    ARGV("audit", "--client", "1.2.3.4 x"),
    ARGV("audit", "--client", ""),
    ARGV("audit", "--pool", "eng"),
    ARGV("metrics", "extra"),
    ARGV("--timeout", "0", "metrics"),
    ARGV("--timeout", "abc", "metrics"),
    ARGV("--timeout", "3601", "metrics"),
    ARGV("--timeout"),
    ARGV("--url", "http://127.0.0.1:8443", "metrics"),
    ARGV("--url", "https://127.0.0.1:8443/api", "metrics"),
    ARGV("--user", "a:b", "metrics"),
    ARGV("--user", "", "metrics"),
    ARGV("--ca-file=", "metrics"),
    ARGV("--bogus", "metrics"),
    ARGV("-x", "metrics"),
    ARGV("--json=1", "metrics"),
    ARGV("--password", "secret", "metrics"),
    ARGV("--json"),
};

static void test_usage_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(usage_errors); i++) {
        const char *const *argv = usage_errors[i];
        int argc = argv_count(argv);
        if (argc == 2 && argv[1][0] == '\0')
            argc = 1; /* ARGV("") stands for no arguments at all */
        struct capture err;
        capture_open(&err);
        struct vdictl_request r;
        int k = vdictl_parse(argc, (char *const *)argv, &r, err.f);
        if (k != -EINVAL)
            fprintf(stderr, "case %zu (%s %s) was accepted\n", i, argv[1], argv[2] ? argv[2] : "");
        assert_int_equal(k, -EINVAL);
        /* No request... */
        assert_null(r.method);
        assert_null(r.path);
        assert_null(r.body);
        assert_false(r.help);
        /* ...and a message saying why, pointing at --help. */
        const char *e = capture_text(&err);
        assert_true(startswith(e, "vdictl: "));
        assert_non_null(strstr(e, "Try 'vdictl --help'."));
        vdictl_request_done(&r);
        capture_close(&err);

        /* The program exits 2 without touching the network (the URL would refuse). */
        struct capture out;
        capture_open(&out);
        capture_open(&err);
        assert_int_equal(vdictl_run(argc, (char **)argv, out.f, err.f), VDICTL_EXIT_USAGE);
        assert_string_equal(capture_text(&out), "");
        capture_close(&out);
        capture_close(&err);
    }
}

static void test_usage_error_messages(void **state)
{
    (void)state;
    const struct {
        const char *const *argv;
        const char *message;
    } cases[] = {
        {ARGV("pool", "add", "eng", "--template", "deb", "--kind", "weird"),
         "--kind: expected dedicated or floating, not 'weird'"},
        {ARGV("pool", "add", "eng", "--template", "deb", "--logoff", "x"),
         "expected keep, suspend, shutdown or reset"},
        {ARGV("pool", "frob"), "unknown command 'frob' (expected list, show, add, set or delete)"},
        {ARGV("pool", "add", "eng"), "pool add: --template is required"},
        {ARGV("entitlement", "add", "eng"), "give exactly one of --user and --group"},
        {ARGV("pool", "show", "eng", "--disk", "/x"), "pool show has no option '--disk'"},
        {ARGV("pool", "set", "eng"), "nothing to change"},
        {ARGV("pool", "add", "eng", "--template", "deb", "--vcpus", "two"),
         "--vcpus: expected a whole number from 1 to 1024, not 'two'"},
        {ARGV("desktop", "assign", "d"), "desktop assign: missing USER"},
        {ARGV("usage", "--from", "2024-01-02", "--to", "2024-01-01"), "--from must be before --to"},
        {ARGV("--password", "x", "metrics"), "unknown option '--password'"},
        {ARGV("pool", "set", "eng", "--grace", "8d"),
         "--grace: expected seconds, or a number with s, m, h or d, up to 604800 seconds; not "
         "'8d'"},
        {ARGV("pool", "set", "eng", "--stop-action", "x"), "expected none, restart or reset"},
        {ARGV("audit", "--since", "yesterday"), "or a time ago such as 30m, 8h, 2d"},
        {ARGV("audit", "--since", "2024-01-02", "--until", "2024-01-01"),
         "--since must be before --until"},
        {ARGV("session", "frob"),
         "unknown command 'frob' (expected list, disconnect, logoff or shadow)"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct capture err;
        capture_open(&err);
        struct vdictl_request r;
        assert_int_equal(
            vdictl_parse(argv_count(cases[i].argv), (char *const *)cases[i].argv, &r, err.f),
            -EINVAL);
        if (!strstr(capture_text(&err), cases[i].message))
            fail_msg("expected '%s' in '%s'", cases[i].message, capture_text(&err));
        vdictl_request_done(&r);
        capture_close(&err);
    }
}

/* ---- exit codes ------------------------------------------------------------------------- */

static void test_exit_codes(void **state)
{
    (void)state;
    static const int statuses[][2] = {
        {200, 0}, {201, 0}, {204, 0}, {400, 2}, {413, 2}, {401, 4}, {403, 4}, {429, 4}, {404, 5},
        {409, 6}, {503, 7}, {500, 1}, {502, 1}, {405, 1}, {302, 1}, {418, 1}, {0, 1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(statuses); i++)
        assert_int_equal(vdictl_exit_code_from_status(statuses[i][0]), statuses[i][1]);

    static const int errors[][2] = {
        {-ECONNREFUSED, 3}, {-EHOSTUNREACH, 3}, {-ETIMEDOUT, 3}, {-EPERM, 3},  {-EPROTO, 3},
        {-ECONNRESET, 3},   {-ENOENT, 3},       {-E2BIG, 1},     {-ENOMEM, 1}, {0, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(errors); i++)
        assert_int_equal(vdictl_exit_code_from_error(errors[i][0]), errors[i][1]);
}

/* ---- output ------------------------------------------------------------------------------- */

struct printed {
    int code;
    char *out, *err;
};

static void printed_free(struct printed *p)
{
    free(p->out);
    free(p->err);
}

/* Runs vdictl_print_response() for argv's request on a canned answer. */
static struct printed print_answer(const char *const *argv, int status, const char *body)
{
    struct vdictl_request r;
    assert_int_equal(vdictl_parse(argv_count(argv), (char *const *)argv, &r, stderr), 0);
    struct http_response resp = {
        .status = status,
        .body = (char *)(body ? body : ""),
        .body_len = body ? strlen(body) : 0,
    };
    struct capture out, err;
    capture_open(&out);
    capture_open(&err);
    struct printed p = {.code = vdictl_print_response(&r, &resp, out.f, err.f)};
    p.out = strdup(capture_text(&out));
    p.err = strdup(capture_text(&err));
    capture_close(&out);
    capture_close(&err);
    vdictl_request_done(&r);
    assert_non_null(p.out);
    assert_non_null(p.err);
    return p;
}

static void expect_output(const char *const *argv, int status, const char *body, int code,
                          const char *out, const char *err)
{
    struct printed p = print_answer(argv, status, body);
    if (strcmp(p.out, out) != 0)
        fprintf(stderr, "got:\n%s\nwant:\n%s\n", p.out, out);
    assert_int_equal(p.code, code);
    assert_string_equal(p.out, out);
    assert_string_equal(p.err, err);
    printed_free(&p);
}

static void test_print_lists(void **state)
{
    (void)state;
    expect_output(
        ARGV("pool", "list"), 200,
        "{\"pools\": [{\"name\": \"eng\", \"template\": \"deb\", \"size\": \"small\", "
        "\"vcpus\": 1, \"memory_mib\": 2048, \"kind\": \"dedicated\", \"min_spare\": 0, "
        "\"max_desktops\": 10, \"logoff\": \"keep\", \"disconnect_grace_s\": 300, "
        "\"idle_timeout_s\": 0, \"max_session_s\": 0, \"stop_action\": \"none\", "
        "\"created\": 1700000000},"
        "{\"name\": \"sales-floating\", \"template\": \"win11\", \"size\": \"custom\", "
        "\"vcpus\": 12, \"memory_mib\": 32768, \"kind\": \"floating\", \"min_spare\": 2, "
        "\"max_desktops\": 150, \"logoff\": \"reset\", \"disconnect_grace_s\": 0, "
        "\"idle_timeout_s\": 5400, \"max_session_s\": 100800, \"stop_action\": \"reset\", "
        "\"created\": 1700000000}]}",
        0,
        "NAME            TEMPLATE  SIZE    VCPUS  MEMORY_MIB  KIND       MIN_SPARE  "
        "MAX_DESKTOPS  LOGOFF  GRACE  IDLE_TIMEOUT  MAX_SESSION  STOP_ACTION\n"
        "eng             deb       small       1        2048  dedicated          0  "
        "          10  keep       5m           off          off  none\n"
        "sales-floating  win11     custom     12       32768  floating           2  "
        "         150  reset      0s         1h30m         1d4h  reset\n",
        "");

    expect_output(ARGV("template", "list"), 200,
                  "{\"templates\": [{\"name\": \"deb\", \"os\": \"linux\", \"firmware\": "
                  "\"bios\", \"disk\": \"/var/lib/vdi/deb.qcow2\", \"kernel\": \"\", "
                  "\"initrd\": \"\", \"cmdline\": \"\", \"created\": 1700000000}]}",
                  0,
                  "NAME  OS     FIRMWARE  DISK\n"
                  "deb   linux  bios      /var/lib/vdi/deb.qcow2\n",
                  "");

    /* owner "" and assigned 0 print as "-"; a desktop that crashed too often is "failed". */
    expect_output(ARGV("desktop", "list", "--pool", "eng"), 200,
                  "{\"desktops\": [{\"name\": \"vdi-eng-0001\", \"pool\": \"eng\", \"owner\": "
                  "\"alice\", \"state\": \"ready\", \"power\": \"running\", \"connected\": 1, "
                  "\"created\": 1700000000, \"assigned\": 1700003600},"
                  "{\"name\": \"vdi-eng-0002\", \"pool\": \"eng\", \"owner\": \"\", \"state\": "
                  "\"provisioning\", \"power\": \"shutoff\", \"connected\": 0, "
                  "\"created\": 1700000000, \"assigned\": 0},"
                  "{\"name\": \"vdi-eng-0003\", \"pool\": \"eng\", \"owner\": \"bob\", \"state\": "
                  "\"failed\", \"power\": \"shutoff\", \"connected\": 0, "
                  "\"created\": 1700000000, \"assigned\": 1700003600}]}",
                  0,
                  "NAME          POOL  OWNER  STATE         POWER    CONNECTED  ASSIGNED\n"
                  "vdi-eng-0001  eng   alice  ready         running          1  "
                  "2023-11-14 23:13\n"
                  "vdi-eng-0002  eng   -      provisioning  shutoff          0  -\n"
                  "vdi-eng-0003  eng   bob    failed        shutoff          0  "
                  "2023-11-14 23:13\n",
                  "");

    expect_output(ARGV("entitlement", "list"), 200,
                  "{\"entitlements\": [{\"pool\": \"eng\", \"kind\": \"user\", \"name\": "
                  "\"alice\"}, {\"pool\": \"eng\", \"kind\": \"group\", \"name\": \"staff\"}]}",
                  0,
                  "POOL  KIND   NAME\n"
                  "eng   user   alice\n"
                  "eng   group  staff\n",
                  "");

    /* live sessions: idle time and bytes in human units */
    expect_output(ARGV("session", "list"), 200,
                  "{\"sessions\": [{\"id\": 12, \"user\": \"alice\", \"pool\": \"eng\", "
                  "\"desktop\": \"vdi-eng-0001\", \"state\": \"connected\", \"client\": "
                  "\"192.0.2.1\", \"started\": 1700000000, \"idle_s\": 42, \"disconnected_s\": 0, "
                  "\"bytes_to_client\": 5767168, \"bytes_from_client\": 900, \"shadows\": 1},"
                  "{\"id\": 3, \"user\": \"bob\", \"pool\": \"eng\", \"desktop\": "
                  "\"vdi-eng-0002\", \"state\": \"disconnected\", \"client\": \"\", "
                  "\"started\": 1699990000, \"idle_s\": 7260, \"disconnected_s\": 60, "
                  "\"bytes_to_client\": 1000, \"bytes_from_client\": 0, \"shadows\": 0}]}",
                  0,
                  "ID  USER   POOL  DESKTOP       STATE         CLIENT     STARTED           "
                  "IDLE     SENT  SHADOWS\n"
                  "12  alice  eng   vdi-eng-0001  connected     192.0.2.1  2023-11-14 22:13   "
                  "42s  5.5 MiB        1\n"
                  " 3  bob    eng   vdi-eng-0002  disconnected  -          2023-11-14 19:26  "
                  "2h1m   1000 B        0\n",
                  "");
    /* the history: every connection, with its desktop session and kind */
    expect_output(
        ARGV("session", "list", "--history"), 200,
        "{\"sessions\": [{\"id\": 13, \"session_id\": 12, \"kind\": \"shadow\", "
        "\"user\": \"root\", \"pool\": \"eng\", \"desktop\": \"vdi-eng-0001\", "
        "\"client\": \"192.0.2.9\", \"started\": 1700000060, \"ended\": 0},"
        "{\"id\": 3, \"session_id\": 3, \"kind\": \"user\", \"user\": \"bob\", "
        "\"pool\": \"eng\", \"desktop\": \"vdi-eng-0002\", \"client\": \"2001:db8::7\", "
        "\"started\": 1699990000, \"ended\": 1699993600}]}",
        0,
        "ID  SESSION  KIND    USER  POOL  DESKTOP       CLIENT       STARTED           "
        "ENDED\n"
        "13       12  shadow  root  eng   vdi-eng-0001  192.0.2.9    2023-11-14 22:14  -\n"
        " 3        3  user    bob   eng   vdi-eng-0002  2001:db8::7  2023-11-14 19:26  "
        "2023-11-14 20:26\n",
        "");

    /* Seconds as hours with two decimals; user "" is the spare desktops. */
    expect_output(ARGV("usage"), 200,
                  "{\"from\": 1697408000, \"to\": 1700000000, \"usage\": ["
                  "{\"user\": \"alice\", \"pool\": \"eng\", \"vcpu_seconds\": 7200.0, "
                  "\"memory_mib_seconds\": 14745600, \"connected_seconds\": 5400.5},"
                  "{\"user\": \"\", \"pool\": \"eng\", \"vcpu_seconds\": 36, "
                  "\"memory_mib_seconds\": 0.0, \"connected_seconds\": 0}]}",
                  0,
                  "Usage from 2023-10-15 22:13 to 2023-11-14 22:13\n"
                  "USER     POOL  VCPU_HOURS  MEMORY_MIB_HOURS  CONNECTED_HOURS\n"
                  "alice    eng         2.00           4096.00             1.50\n"
                  "(spare)  eng         0.01              0.00             0.00\n",
                  "");

    /* the audit log: the actor, else the user; the other fields as key=value */
    expect_output(ARGV("audit"), 200,
                  "{\"events\": [{\"time\": \"2026-11-21T04:29:25.123Z\", \"event\": "
                  "\"admin.pool.add\", \"actor\": \"root\", \"target\": \"eng\", \"detail\": "
                  "\"size=small\", \"client\": \"192.0.2.9\"},"
                  "{\"time\": \"2026-11-21T04:00:00Z\", \"event\": \"login.throttled\", "
                  "\"user\": \"alice\", \"client\": \"192.0.2.7\", \"source\": \"api\", "
                  "\"wait_s\": 8},"
                  "{\"time\": \"2026-11-21T03:00:00Z\", \"event\": \"broker.start\"}]}",
                  0,
                  "TIME                 EVENT            USER/ACTOR  CLIENT     DETAILS\n"
                  "2026-11-21 04:29:25  admin.pool.add   root        192.0.2.9  target=eng "
                  "detail=size=small\n"
                  "2026-11-21 04:00:00  login.throttled  alice       192.0.2.7  source=api "
                  "wait_s=8\n"
                  "2026-11-21 03:00:00  broker.start     -           -          -\n",
                  "");

    /* An empty list: the header only. */
    expect_output(ARGV("pool", "list"), 200, "{\"pools\": []}", 0,
                  "NAME  TEMPLATE  SIZE  VCPUS  MEMORY_MIB  KIND  MIN_SPARE  MAX_DESKTOPS  "
                  "LOGOFF  GRACE  IDLE_TIMEOUT  MAX_SESSION  STOP_ACTION\n",
                  "");
}

static void test_print_show(void **state)
{
    (void)state;
    expect_output(ARGV("template", "show", "deb"), 200,
                  "{\"name\": \"deb\", \"os\": \"linux\", \"firmware\": \"bios\", \"disk\": "
                  "\"/var/lib/vdi/deb.qcow2\", \"kernel\": \"/boot/vmlinuz\", \"initrd\": \"\", "
                  "\"cmdline\": \"console=ttyS0\", \"created\": 1700000000}",
                  0,
                  "NAME      deb\n"
                  "OS        linux\n"
                  "FIRMWARE  bios\n"
                  "DISK      /var/lib/vdi/deb.qcow2\n"
                  "KERNEL    /boot/vmlinuz\n"
                  "INITRD    -\n"
                  "CMDLINE   console=ttyS0\n"
                  "CREATED   2023-11-14 22:13\n",
                  "");
    expect_output(ARGV("desktop", "show", "vdi-eng-0001"), 200,
                  "{\"name\": \"vdi-eng-0001\", \"pool\": \"eng\", \"owner\": \"\", \"state\": "
                  "\"ready\", \"power\": \"saved\", \"connected\": 0, \"created\": 1700000000, "
                  "\"assigned\": 0}",
                  0,
                  "NAME       vdi-eng-0001\n"
                  "POOL       eng\n"
                  "OWNER      -\n"
                  "STATE      ready\n"
                  "POWER      saved\n"
                  "CONNECTED  0\n"
                  "ASSIGNED   -\n"
                  "CREATED    2023-11-14 22:13\n",
                  "");
    expect_output(ARGV("pool", "show", "eng"), 200,
                  "{\"name\": \"eng\", \"template\": \"deb\", \"size\": \"small\", \"vcpus\": 1, "
                  "\"memory_mib\": 2048, \"kind\": \"dedicated\", \"min_spare\": 0, "
                  "\"max_desktops\": 10, \"logoff\": \"keep\", \"disconnect_grace_s\": 3600, "
                  "\"idle_timeout_s\": 900, \"max_session_s\": 0, \"stop_action\": \"restart\", "
                  "\"created\": 1700000000}",
                  0,
                  "NAME          eng\n"
                  "TEMPLATE      deb\n"
                  "SIZE          small\n"
                  "VCPUS         1\n"
                  "MEMORY_MIB    2048\n"
                  "KIND          dedicated\n"
                  "MIN_SPARE     0\n"
                  "MAX_DESKTOPS  10\n"
                  "LOGOFF        keep\n"
                  "GRACE         1h\n"
                  "IDLE_TIMEOUT  15m\n"
                  "MAX_SESSION   off\n"
                  "STOP_ACTION   restart\n"
                  "CREATED       2023-11-14 22:13\n",
                  "");
}

/* session shadow: the session as the server has it, and how to watch it. */
static void test_print_shadow(void **state)
{
    (void)state;
    const char *body = "{\"id\": 12, \"user\": \"alice\", \"pool\": \"eng\", \"desktop\": "
                       "\"vdi-eng-0001\", \"state\": \"connected\", \"client\": \"192.0.2.1\", "
                       "\"started\": 1700000000, \"idle_s\": 4, \"shadows\": 0}";
    expect_output(ARGV("session", "shadow", "12"), 200, body, 0,
                  "Session 12: alice on vdi-eng-0001 (connected)\n"
                  "Connect a VNC client to the broker's VNC port and log in as "
                  "<your-admin-name>@#12 with your own\n"
                  "password (view only; the user is told unless shadow_policy = silent).\n",
                  "");
    /* with the admin's name, as vdictl_run() sets it */
    struct vdictl_request r;
    const char *const *argv = ARGV("session", "shadow", "12");
    assert_int_equal(vdictl_parse(argv_count(argv), (char *const *)argv, &r, stderr), 0);
    r.user = "root";
    struct http_response resp = {.status = 200, .body = (char *)body, .body_len = strlen(body)};
    struct capture out;
    capture_open(&out);
    assert_int_equal(vdictl_print_response(&r, &resp, out.f, stderr), 0);
    assert_non_null(strstr(capture_text(&out), "log in as root@#12 with"));
    capture_close(&out);
    vdictl_request_done(&r);
    /* gone: the server's 404 */
    expect_output(ARGV("session", "shadow", "99"), 404,
                  "{\"error\": \"no live session with id '99'\"}", 5, "",
                  "vdictl: no live session with id '99'\n");
    /* --json: the object */
    struct printed p = print_answer(ARGV("--json", "session", "shadow", "12"), 200, body);
    assert_int_equal(p.code, 0);
    assert_non_null(strstr(p.out, "\"desktop\":\"vdi-eng-0001\""));
    assert_null(strstr(p.out, "VNC"));
    printed_free(&p);
}

/* --since 2h: two hours before now. */
static void test_parse_relative_time(void **state)
{
    (void)state;
    const char *const *argv = ARGV("audit", "--since", "2h", "--until", "30m");
    struct vdictl_request r;
    long long before = (long long)time(NULL);
    assert_int_equal(vdictl_parse(argv_count(argv), (char *const *)argv, &r, stderr), 0);
    long long after = (long long)time(NULL);
    long long since = 0, until = 0;
    assert_int_equal(sscanf(r.path, "/api/v1/audit?since=%lld&until=%lld", &since, &until), 2);
    assert_true(since >= before - 7200 && since <= after - 7200);
    assert_true(until >= before - 1800 && until <= after - 1800);
    vdictl_request_done(&r);
    argv = ARGV("audit", "--since", "1w");
    assert_int_equal(vdictl_parse(argv_count(argv), (char *const *)argv, &r, stderr), 0);
    assert_int_equal(sscanf(r.path, "/api/v1/audit?since=%lld", &since), 1);
    assert_true(since >= before - 7 * 86400 && since <= after - 7 * 86400);
    vdictl_request_done(&r);
}

static void test_print_json(void **state)
{
    (void)state;
    /* --json: the API's JSON as is, pretty-printed; seconds stay seconds. */
    struct printed p = print_answer(ARGV("--json", "usage"), 200,
                                    "{\"from\":1,\"to\":2,\"usage\":[{\"user\":\"a/b\","
                                    "\"vcpu_seconds\":7200.5}]}");
    assert_int_equal(p.code, 0);
    assert_non_null(strstr(p.out, "\"vcpu_seconds\":7200.5"));
    assert_non_null(strstr(p.out, "\"user\":\"a/b\""));
    assert_non_null(strstr(p.out, "\n  \"from\":1,\n"));
    assert_string_equal(p.err, "");
    printed_free(&p);

    /* A change in --json prints the object... */
    p = print_answer(ARGV("pool", "add", "eng", "--template", "deb", "--json"), 201,
                     "{\"name\":\"eng\",\"vcpus\":1}");
    assert_int_equal(p.code, 0);
    assert_non_null(strstr(p.out, "\"name\":\"eng\""));
    assert_null(strstr(p.out, "added"));
    printed_free(&p);
    /* ...and nothing for 204. */
    expect_output(ARGV("--json", "pool", "delete", "eng"), 204, NULL, 0, "", "");
    /* --json and not JSON: an unexpected answer. */
    p = print_answer(ARGV("--json", "pool", "list"), 200, "<html>");
    assert_int_equal(p.code, VDICTL_EXIT_ERROR);
    assert_string_equal(p.out, "");
    assert_true(startswith(p.err, "vdictl: unexpected answer"));
    printed_free(&p);
}

static void test_print_confirm_and_metrics(void **state)
{
    (void)state;
    expect_output(ARGV("pool", "add", "eng", "--template", "deb"), 201, "{\"name\":\"eng\"}", 0,
                  "pool eng added\n", "");
    expect_output(ARGV("pool", "delete", "eng"), 204, NULL, 0, "pool eng deleted\n", "");
    expect_output(ARGV("desktop", "assign", "vdi-eng-0001", "alice"), 200, "{}", 0,
                  "desktop vdi-eng-0001 assigned to alice\n", "");
    expect_output(ARGV("session", "disconnect", "12"), 204, NULL, 0, "session 12 disconnected\n",
                  "");
    expect_output(ARGV("session", "logoff", "12"), 204, NULL, 0, "session 12 logged off\n", "");
    const char *metrics = "# HELP vdi_sessions Connected sessions.\n# TYPE vdi_sessions gauge\n"
                          "vdi_sessions 3\n";
    expect_output(ARGV("metrics"), 200, metrics, 0, metrics, "");
    expect_output(ARGV("--json", "metrics"), 200, metrics, 0, metrics, "");
}

static void test_print_errors(void **state)
{
    (void)state;
    expect_output(ARGV("pool", "show", "eng"), 404, "{\"error\": \"No pool named 'eng'.\"}", 5, "",
                  "vdictl: No pool named 'eng'.\n");
    expect_output(ARGV("pool", "add", "eng", "--template", "deb"), 409,
                  "{\"error\": \"Pool 'eng' exists.\"}", 6, "", "vdictl: Pool 'eng' exists.\n");
    expect_output(ARGV("desktop", "start", "d"), 503, "{\"error\": \"The host is at capacity.\"}",
                  7, "", "vdictl: The host is at capacity.\n");
    expect_output(ARGV("pool", "list"), 401, "{\"error\": \"Authentication failed.\"}", 4, "",
                  "vdictl: Authentication failed.\n");
    expect_output(ARGV("pool", "list"), 403, "{\"error\": \"alice is not an administrator.\"}", 4,
                  "", "vdictl: alice is not an administrator.\n");
    expect_output(ARGV("pool", "list"), 429,
                  "{\"error\": \"Too many failed logins; try again in 8 seconds\"}", 4, "",
                  "vdictl: Too many failed logins; try again in 8 seconds\n");
    expect_output(ARGV("pool", "list"), 429, NULL, 4, "",
                  "vdictl: too many failed logins; try again later (HTTP 429)\n");
    expect_output(ARGV("session", "logoff", "3"), 503,
                  "{\"error\": \"the broker is shutting down\"}", 7, "",
                  "vdictl: the broker is shutting down\n");
    expect_output(ARGV("pool", "set", "eng", "--max", "1"), 400,
                  "{\"error\": \"max_desktops is below the pool's desktops.\"}", 2, "",
                  "vdictl: max_desktops is below the pool's desktops.\n");
    /* Errors in --json go to stderr just the same. */
    expect_output(ARGV("--json", "pool", "list"), 500, "{\"error\": \"Internal error.\"}", 1, "",
                  "vdictl: Internal error.\n");
    /* No usable sentence: the status says it. */
    expect_output(ARGV("pool", "list"), 502, "<html>bad gateway</html>", 1, "",
                  "vdictl: internal server error (HTTP 502)\n");
    expect_output(ARGV("pool", "show", "eng"), 404, NULL, 5, "", "vdictl: not found (HTTP 404)\n");
    expect_output(ARGV("pool", "add", "eng", "--template", "deb"), 409, "{\"error\": 17}", 6, "",
                  "vdictl: conflict (HTTP 409)\n");
    expect_output(ARGV("pool", "list"), 302, "", 1, "",
                  "vdictl: unexpected answer from the server (HTTP 302)\n");
    /* A hostile sentence cannot drive the terminal. */
    expect_output(ARGV("pool", "list"), 400,
                  "{\"error\": \"bad\\u001b]0;owned\\u0007\\r\\nvdictl: fake\"}", 2, "",
                  "vdictl: bad?]0;owned???vdictl: fake\n");
}

static void test_print_hostile(void **state)
{
    (void)state;
    /* Wrong types and missing fields print as "-"; a row that is no object is all "-". */
    expect_output(ARGV("pool", "list"), 200,
                  "{\"pools\": [{\"name\": 5, \"template\": null, \"size\": [\"x\"], "
                  "\"vcpus\": \"2\", \"memory_mib\": 1.5, \"kind\": {}, \"min_spare\": true, "
                  "\"logoff\": \"keep\"}, 42, null, \"eng\"], \"extra\": 1}",
                  0,
                  "NAME  TEMPLATE  SIZE  VCPUS  MEMORY_MIB  KIND  MIN_SPARE  MAX_DESKTOPS  "
                  "LOGOFF  GRACE  IDLE_TIMEOUT  MAX_SESSION  STOP_ACTION\n"
                  "-     -         -         -           -  -             -             -  "
                  "keep        -             -            -  -\n"
                  "-     -         -         -           -  -             -             -  "
                  "-           -             -            -  -\n"
                  "-     -         -         -           -  -             -             -  "
                  "-           -             -            -  -\n"
                  "-     -         -         -           -  -             -             -  "
                  "-           -             -            -  -\n",
                  "");
    /* Times that are not times; hours that are not numbers. */
    expect_output(ARGV("audit"), 200,
                  "{\"events\": [{\"time\": 99999999999999999, \"event\": 5, \"actor\": \"\", "
                  "\"user\": [\"x\"], \"client\": null, \"n\": {\"a\": 1}, \"s\": \"a\\u001bb\"},"
                  "{\"time\": \"2024-01-01\", \"actor\": 7, \"user\": \"bob\"},"
                  "{\"time\": \"2024-13-01T00:00:00Z\"}, 3]}",
                  0,
                  "TIME  EVENT  USER/ACTOR  CLIENT  DETAILS\n"
                  "-     -      -           -       n={\"a\":1} s=a?b\n"
                  "-     -      bob         -       -\n"
                  "-     -      -           -       -\n"
                  "-     -      -           -       -\n",
                  "");
    /* sessions: negative or mistyped numbers */
    expect_output(ARGV("session", "list"), 200,
                  "{\"sessions\": [{\"id\": 1, \"idle_s\": -5, \"bytes_to_client\": -1, "
                  "\"shadows\": \"2\"}, {\"id\": 2, \"idle_s\": 1.5, \"bytes_to_client\": "
                  "18446744073709551615}]}",
                  0,
                  "ID  USER  POOL  DESKTOP  STATE  CLIENT  STARTED  IDLE      SENT  SHADOWS\n"
                  " 1  -     -     -        -      -       -           -         -        -\n"
                  " 2  -     -     -        -      -       -           -  16.0 EiB        -\n",
                  "");
    expect_output(ARGV("usage"), 200,
                  "{\"usage\": [{\"user\": \"a\", \"pool\": \"p\", \"vcpu_seconds\": \"7200\", "
                  "\"memory_mib_seconds\": 1e300, \"connected_seconds\": null}]}",
                  0,
                  "Usage from - to -\n"
                  "USER  POOL  VCPU_HOURS  MEMORY_MIB_HOURS  CONNECTED_HOURS\n"
                  "a     p              -                 -                -\n",
                  "");
    /* Control characters and invalid UTF-8 are replaced; UTF-8 counts as one column. */
    expect_output(ARGV("entitlement", "list"), 200,
                  "{\"entitlements\": [{\"pool\": \"e\\u001b[31mng\", \"kind\": \"us\\u0000er\", "
                  "\"name\": \"j\\u00fcrgen\\u202e\\u0085\"}, {\"pool\": \"p\", \"kind\": \"k\", "
                  "\"name\": \"n\"}]}",
                  0,
                  "POOL      KIND  NAME\n"
                  "e?[31mng  us    j\xc3\xbcrgen??\n"
                  "p         k     n\n",
                  "");

    /* A huge string is cut to 60 columns in a table. */
    size_t huge = 100000;
    char *body = malloc(huge + 64);
    assert_non_null(body);
    int n = snprintf(body, huge + 64, "{\"entitlements\": [{\"pool\": \"");
    memset(body + n, 'x', huge);
    strcpy(body + n + huge, "\", \"kind\": \"user\", \"name\": \"a\"}]}");
    struct printed p = print_answer(ARGV("entitlement", "list"), 200, body);
    assert_int_equal(p.code, 0);
    const char *row = strchr(p.out, '\n') + 1;
    assert_int_equal(strspn(row, "x"), 57);
    assert_true(startswith(row + 57, "...  user  a\n"));
    printed_free(&p);
    free(body);

    /* Answers that are not what the view expects: exit 1, nothing on stdout. */
    static const char *const bad[] = {
        "",
        "not json",
        "[1, 2]",
        "{\"pools\": 7}",
        "{\"templates\": []}",
        "{\"pools\": []} trailing",
        "{\"pools\": [}",
        "{\"pools\": [\"\xff\xfe\"]}",
        "\"a string\"",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        p = print_answer(ARGV("pool", "list"), 200, bad[i]);
        assert_int_equal(p.code, VDICTL_EXIT_ERROR);
        assert_string_equal(p.out, "");
        assert_true(startswith(p.err, "vdictl: unexpected answer from the server"));
        printed_free(&p);
    }

    /* Nesting deeper than the parser allows is refused, not recursed into. */
    char deep[2 * 1000 + 32];
    size_t o = (size_t)snprintf(deep, sizeof(deep), "{\"pools\": ");
    for (int i = 0; i < 1000; i++)
        deep[o++] = '[';
    for (int i = 0; i < 1000; i++)
        deep[o++] = ']';
    deep[o++] = '}';
    deep[o] = '\0';
    p = print_answer(ARGV("pool", "list"), 200, deep);
    assert_int_equal(p.code, VDICTL_EXIT_ERROR);
    printed_free(&p);

    /* "show" of something that is no object. */
    p = print_answer(ARGV("pool", "show", "eng"), 200, "[]");
    assert_int_equal(p.code, VDICTL_EXIT_ERROR);
    printed_free(&p);
}

int main(void)
{
    /* Times in tables are local: make them predictable. */
    setenv("TZ", "UTC", 1);
    tzset();
    /* vdictl_run() in test_usage_errors must never get as far as a request. */
    setenv("VDI_URL", "https://127.0.0.1:1", 1);
    setenv("VDI_PASSWORD", "unused", 1);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_commands),
        cmocka_unit_test(test_parse_global_options),
        cmocka_unit_test(test_parse_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_usage_error_messages),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_print_lists),
        cmocka_unit_test(test_print_show),
        cmocka_unit_test(test_print_shadow),
        cmocka_unit_test(test_parse_relative_time),
        cmocka_unit_test(test_print_json),
        cmocka_unit_test(test_print_confirm_and_metrics),
        cmocka_unit_test(test_print_errors),
        cmocka_unit_test(test_print_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
