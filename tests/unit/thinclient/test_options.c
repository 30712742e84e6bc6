/* Settings (thinclient/options.c: config files, command line, --help, --print-config and
 * the packaging files made from them), HOST[:PORT] parsing (tcp.c), password files
 * (prompt.c) and the PPM writer (ppm.c). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "options.h"
#include "ppm.h"
#include "prompt.h"
#include "tcp.h"
#include "util.h"

#define ARGV(...) ((char *[]){"vdi-client", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"vdi-client", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, ...) client_options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o))
#define PARSE0(o) client_options_parse(1, ((char *[]){"vdi-client", NULL}), (o))

/* A scratch directory; XDG_CONFIG_HOME and HOME point into it so that the user's own
 * config never takes part. The tests that rely on the built-in defaults skip themselves
 * when this machine has an /etc/vdi/client.conf. */
static char scratch[64];
static char xdg_dir[128], home_dir[128];
static bool system_config_exists;

static void write_file(const char *path, const char *text)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0700);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(scratch, sizeof(scratch), "/tmp/vdi-test-options-XXXXXX");
    if (!mkdtemp(scratch))
        return -1;
    snprintf(xdg_dir, sizeof(xdg_dir), "%s/config", scratch);
    snprintf(home_dir, sizeof(home_dir), "%s/home", scratch);
    setenv("XDG_CONFIG_HOME", xdg_dir, 1);
    setenv("HOME", home_dir, 1);
    system_config_exists = access(CLIENT_SYSTEM_CONFIG, F_OK) == 0;
    if (system_config_exists)
        fprintf(stderr, "note: %s exists; tests of the built-in defaults are skipped\n",
                CLIENT_SYSTEM_CONFIG);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
    return system(cmd) == 0 ? 0 : -1;
}

static void needs_builtin_defaults(void)
{
    if (system_config_exists)
        skip();
}

/* Captures what is written to stdout or stderr between begin and end. */
struct capture {
    FILE *stream;
    int saved_fd;
    FILE *tmp;
};

static void capture_begin(struct capture *c, FILE *stream)
{
    fflush(stream);
    c->stream = stream;
    c->saved_fd = dup(fileno(stream));
    c->tmp = tmpfile();
    assert_true(c->saved_fd >= 0 && c->tmp);
    assert_true(dup2(fileno(c->tmp), fileno(stream)) >= 0);
}

static char *capture_end(struct capture *c)
{
    fflush(c->stream);
    assert_true(dup2(c->saved_fd, fileno(c->stream)) >= 0);
    close(c->saved_fd);
    long size = ftell(c->tmp);
    assert_true(size >= 0);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    rewind(c->tmp);
    assert_int_equal(fread(text, 1, (size_t)size, c->tmp), (size_t)size);
    fclose(c->tmp);
    return text;
}

/* Parses and returns what went to stderr (the caller frees). */
#define PARSE_ERR(r, o, ...)                                                                       \
    ({                                                                                             \
        struct capture _c;                                                                         \
        capture_begin(&_c, stderr);                                                                \
        (r) = PARSE(o, __VA_ARGS__);                                                               \
        capture_end(&_c);                                                                          \
    })

static void test_parse_full(void **state)
{
    (void)state;
    needs_builtin_defaults();
    struct client_options o;
    assert_int_equal(PARSE(&o, "--user", "alice", "--ca-file", "/ca.pem", "--fullscreen",
                           "--quality", "3", "--log-level", "debug", "vdi.example.com:5901"),
                     0);
    assert_string_equal(o.broker, "vdi.example.com:5901");
    assert_string_equal(o.host, "vdi.example.com");
    assert_int_equal(o.port, 5901);
    assert_string_equal(o.user, "alice");
    assert_string_equal(o.ca_file, "/ca.pem");
    assert_true(o.fullscreen);
    assert_false(o.kiosk);
    assert_int_equal(o.quality, 3);
    assert_int_equal(o.compress, 2);
    assert_int_equal(o.reconnect_max_s, CLIENT_RECONNECT_MAX_S_DEFAULT);
    assert_int_equal(o.log_level, LOG_LEVEL_DEBUG);
    assert_null(o.pool);
    assert_null(o.fingerprint);
    assert_null(o.known_brokers);
    assert_null(o.font);
    client_options_done(&o);

    assert_int_equal(PARSE(&o, "-p", "6000", "--fingerprint", "AB:CD", "-u", "bob", "-f", "[::1]"),
                     0);
    assert_string_equal(o.broker, "[::1]");
    assert_string_equal(o.host, "::1");
    assert_int_equal(o.port, 6000);
    assert_string_equal(o.fingerprint, "AB:CD");
    assert_string_equal(o.user, "bob");
    assert_true(o.fullscreen);
    client_options_done(&o);

    assert_int_equal(PARSE(&o, "--ca-file", "x", "--screenshot", "/tmp/s.ppm", "--headless",
                           "--screenshot-delay", "500", "--user", "carol", "host"),
                     0);
    assert_int_equal(o.port, TCP_DEFAULT_PORT);
    assert_true(o.headless);
    assert_string_equal(o.screenshot, "/tmp/s.ppm");
    assert_int_equal(o.screenshot_delay_ms, 500);
    client_options_done(&o);

    /* the new settings; kiosk implies full screen */
    assert_int_equal(PARSE(&o, "--pool", "dev-desktops", "--kiosk", "--font", "/f.ttf",
                           "--known-brokers", "/kb", "--reconnect-max-s", "120", "--compress", "9",
                           "--password-file", "/pw", "--log-level", "warning"),
                     0);
    assert_string_equal(o.pool, "dev-desktops");
    assert_true(o.kiosk);
    assert_true(o.fullscreen);
    assert_string_equal(o.font, "/f.ttf");
    assert_string_equal(o.known_brokers, "/kb");
    assert_int_equal(o.reconnect_max_s, 120);
    assert_int_equal(o.compress, 9);
    assert_string_equal(o.password_file, "/pw");
    assert_int_equal(o.log_level, LOG_LEVEL_WARNING);
    client_options_done(&o);
}

static void test_parse_nothing(void **state)
{
    (void)state;
    needs_builtin_defaults();
    struct client_options o;
    /* no broker, no user, no trust: the login screen and TOFU take over */
    assert_int_equal(PARSE0(&o), 0);
    assert_null(o.broker);
    assert_null(o.host);
    assert_null(o.user);
    assert_null(o.ca_file);
    assert_null(o.fingerprint);
    assert_int_equal(o.port, TCP_DEFAULT_PORT);
    assert_int_equal(o.quality, 7);
    assert_int_equal(o.compress, 2);
    assert_int_equal(o.reconnect_max_s, CLIENT_RECONNECT_MAX_S_DEFAULT);
    assert_int_equal(o.log_level, LOG_LEVEL_INFO);
    assert_false(o.fullscreen || o.kiosk || o.headless);
    client_options_done(&o);

    /* a user and a broker without a way to check it: trust on first use */
    assert_int_equal(PARSE(&o, "--user", "alice", "host"), 0);
    assert_string_equal(o.host, "host");
    client_options_done(&o);

    /* an empty value means "not set" */
    assert_int_equal(PARSE(&o, "--user", "", ""), 0);
    assert_null(o.user);
    assert_null(o.broker);
    client_options_done(&o);
}

static void test_parse_errors(void **state)
{
    (void)state;
    needs_builtin_defaults();
    struct client_options o;
    const struct {
        int argc;
        char **argv;
        const char *message;
    } cases[] = {
#define CASE(message, ...) {ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), message}
        CASE("too many arguments", "a", "b"),
        CASE("--port: port must be between 1 and 65535", "--port", "70000", "h"),
        CASE("--port: port must be an integer", "--port", "x", "h"),
        CASE("the port is given twice (h:5902 and --port 5901)", "--port", "5901", "h:5902"),
        CASE("--user: not a valid user name", "--user", "bad user", "h"),
        CASE("--pool: not a valid pool name", "--pool", "Bad_Pool", "h"),
        CASE("--pool: not a valid pool name", "--pool", "-x", "h"),
        CASE("--quality: quality must be between 0 and 9", "--quality", "10", "h"),
        CASE("--compress: compress must be between 0 and 9", "--compress", "-1", "h"),
        CASE("--reconnect-max-s: reconnect_max_s must be between 1 and 3600", "--reconnect-max-s",
             "0"),
        CASE("--reconnect-max-s: reconnect_max_s must be between 1 and 3600", "--reconnect-max-s",
             "3601"),
        CASE("--log-level: log_level must be one of: error, warning, info, debug", "--log-level",
             "loud", "h"),
        CASE("--headless needs --screenshot", "--headless", "--user", "a", "h"),
        CASE("--headless needs a broker", "--headless", "--screenshot", "s", "--user", "a"),
        CASE("--headless needs a broker", "--headless", "--screenshot", "s", "h"),
        CASE("--kiosk and --headless exclude each other", "--kiosk", "--headless", "--screenshot",
             "s", "--user", "a", "h"),
        CASE("--screenshot-delay needs --screenshot", "--screenshot-delay", "5", "h"),
        CASE("unknown option --bogus", "--bogus", "h"),
        CASE("unknown option -z", "-z", "h"),
        CASE("option --ca-file needs an argument", "--ca-file"),
        CASE("not a valid HOST[:PORT]: h:", "h:"),
        CASE("not a valid HOST[:PORT]: [::1", "[::1"),
        CASE("--config is given twice", "--config", "a", "--config", "b"),
        CASE("/nonexistent/client.conf: No such file", "--config", "/nonexistent/client.conf"),
        CASE("--fullscreen", "--fullscreen=yes"),
#undef CASE
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct capture c;
        capture_begin(&c, stderr);
        int r = client_options_parse(cases[i].argc, cases[i].argv, &o);
        _cleanup_(freep) char *err = capture_end(&c);
        client_options_done(&o);
        if (r != -EINVAL || !strstr(err, cases[i].message)) {
            fprintf(stderr, "case %zu: r=%d, stderr: %s(want %s)\n", i, r, err, cases[i].message);
            fail();
        }
    }
}

static void test_help_version_print_config(void **state)
{
    (void)state;
    struct client_options o;
    static const char *const actions[][2] = {
        {"--help", "Usage: vdi-client"},
        {"-h", "Usage: vdi-client"},
        {"--version", "vdi-client "},
        {"-V", "vdi-client "},
        {"--print-config", "#reconnect_max_s = "},
    };
    for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
        struct capture c;
        capture_begin(&c, stdout);
        /* printed before any config file is read: a broken one does not matter */
        int r = PARSE(&o, "--config", "/nonexistent", (char *)actions[i][0]);
        _cleanup_(freep) char *out = capture_end(&c);
        client_options_done(&o);
        assert_int_equal(r, 1);
        assert_non_null(strstr(out, actions[i][1]));
    }
}

static void test_help_lists_every_option(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    client_options_help(f);
    fclose(f);
    static const char *const names[] = {
        "[HOST[:PORT]]",
        "-u, --user NAME",
        "-p, --port PORT",
        "-f, --fullscreen",
        "--pool NAME",
        "--password-file FILE",
        "--ca-file FILE",
        "--fingerprint SHA256",
        "--known-brokers FILE",
        "--kiosk",
        "--font FILE",
        "--reconnect-max-s SECONDS",
        "(default 30)",
        "--quality 0-9",
        "--compress 0-9",
        "--screenshot FILE",
        "--screenshot-delay MS",
        "--headless",
        "--log-level LEVEL",
        "(default), debug",
        "--config FILE",
        "--print-config",
        "-h, --help",
        "-V, --version",
        "/etc/vdi/client.conf",
        "~/.config/vdi/client.conf",
        " broker port user pool password_file ca_file fingerprint",
        "log_level\n",
        "VDI_PASSWORD",
        "Ctrl+Alt+Enter",
        "not in kiosk mode",
        "Exit codes",
        "  0  the user quit",
        "  2  usage error (also a malformed config file)",
        "  4  server certificate not trusted",
        "  7  protocol error",
        "exits 0 when\nthe user quits",
        "only exits on SIGTERM or SIGINT",
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (!strstr(buf, names[i])) {
            fprintf(stderr, "--help lacks '%s':\n%s", names[i], buf);
            fail();
        }
    /* every line fits in 80 columns */
    for (char *line = buf; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        char *eol = strchr(line, '\n');
        assert_true((eol ? (size_t)(eol - line) : strlen(line)) <= 80);
    }
    free(buf);
}

/* ---- config files ---- */

static void user_config(const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/vdi/client.conf", xdg_dir);
    write_file(path, text);
}

static void remove_user_configs(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/vdi/client.conf", xdg_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/.config/vdi/client.conf", home_dir);
    unlink(path);
}

static void test_config_user_file(void **state)
{
    (void)state;
    needs_builtin_defaults();
    struct client_options o;
    user_config("# comment\n"
                "broker = vdi.example.org:6001\n"
                "user = alice\n"
                "pool = office\n"
                "fingerprint = AB:CD\n"
                "known_brokers = /kb\n"
                "kiosk = yes\n"
                "font = /f.ttf\n"
                "reconnect_max_s = 5\n"
                "quality = 4\n"
                "compress = 8\n"
                "log_level = error\n"
                "password_file = /pw\n"
                "ca_file = /ca\n");
    assert_int_equal(PARSE0(&o), 0);
    assert_string_equal(o.broker, "vdi.example.org:6001");
    assert_string_equal(o.host, "vdi.example.org");
    assert_int_equal(o.port, 6001);
    assert_string_equal(o.user, "alice");
    assert_string_equal(o.pool, "office");
    assert_string_equal(o.fingerprint, "AB:CD");
    assert_string_equal(o.known_brokers, "/kb");
    assert_true(o.kiosk);
    assert_true(o.fullscreen);
    assert_string_equal(o.font, "/f.ttf");
    assert_int_equal(o.reconnect_max_s, 5);
    assert_int_equal(o.quality, 4);
    assert_int_equal(o.compress, 8);
    assert_int_equal(o.log_level, LOG_LEVEL_ERROR);
    assert_string_equal(o.password_file, "/pw");
    assert_string_equal(o.ca_file, "/ca");
    client_options_done(&o);

    /* the command line wins; an empty value clears */
    assert_int_equal(PARSE(&o, "--quality", "1", "--user", "bob", "--pool", "", "other:7000"), 0);
    assert_string_equal(o.broker, "other:7000");
    assert_int_equal(o.port, 7000);
    assert_int_equal(o.quality, 1);
    assert_int_equal(o.compress, 8);
    assert_string_equal(o.user, "bob");
    assert_null(o.pool);
    client_options_done(&o);

    /* without XDG_CONFIG_HOME: ~/.config/vdi/client.conf */
    remove_user_configs();
    char path[256];
    snprintf(path, sizeof(path), "%s/.config/vdi/client.conf", home_dir);
    write_file(path, "user = dave\n");
    unsetenv("XDG_CONFIG_HOME");
    assert_int_equal(PARSE0(&o), 0);
    assert_string_equal(o.user, "dave");
    client_options_done(&o);
    /* a relative XDG_CONFIG_HOME is ignored (XDG base directory rule) */
    setenv("XDG_CONFIG_HOME", "relative/dir", 1);
    assert_int_equal(PARSE0(&o), 0);
    assert_string_equal(o.user, "dave");
    client_options_done(&o);
    /* neither: no user file, still fine */
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("HOME");
    assert_int_equal(PARSE0(&o), 0);
    assert_null(o.user);
    client_options_done(&o);
    setenv("XDG_CONFIG_HOME", xdg_dir, 1);
    setenv("HOME", home_dir, 1);
    remove_user_configs();
}

static void test_config_option_file(void **state)
{
    (void)state;
    struct client_options o;
    char path[256];
    snprintf(path, sizeof(path), "%s/only.conf", scratch);
    write_file(path, "broker = a.example\nuser = erin\nquality = 2\n");
    /* --config replaces the default files: the user file is not read */
    user_config("pool = should-not-be-read\nquality = 5\n");
    assert_int_equal(PARSE(&o, "--config", path, "--quality", "3"), 0);
    assert_string_equal(o.host, "a.example");
    assert_int_equal(o.port, TCP_DEFAULT_PORT);
    assert_string_equal(o.user, "erin");
    assert_null(o.pool);
    assert_int_equal(o.quality, 3);
    client_options_done(&o);
    remove_user_configs();
}

/* A port in the broker's text and a port key: the later level wins, one level must agree. */
static void test_config_port_levels(void **state)
{
    (void)state;
    struct client_options o;
    char path[256];
    snprintf(path, sizeof(path), "%s/port.conf", scratch);

    write_file(path, "broker = h:5901\n");
    assert_int_equal(PARSE(&o, "--config", path, "--port", "6000"), 0);
    assert_string_equal(o.broker, "h:5901");
    assert_int_equal(o.port, 6000);
    client_options_done(&o);

    write_file(path, "port = 6000\n");
    assert_int_equal(PARSE(&o, "--config", path, "h:5901"), 0);
    assert_int_equal(o.port, 5901);
    client_options_done(&o);
    assert_int_equal(PARSE(&o, "--config", path, "h"), 0);
    assert_string_equal(o.broker, "h");
    assert_int_equal(o.port, 6000);
    client_options_done(&o);

    write_file(path, "broker = h:5901\nport = 5901\n");
    assert_int_equal(PARSE(&o, "--config", path), 0);
    assert_int_equal(o.port, 5901);
    client_options_done(&o);

    write_file(path, "broker = h:5901\nport = 5902\n");
    int r;
    _cleanup_(freep) char *err = PARSE_ERR(r, &o, "--config", path);
    client_options_done(&o);
    assert_int_equal(r, -EINVAL);
    assert_non_null(strstr(err, "the port is given twice (h:5901 and port 5902)"));
}

static void test_config_errors(void **state)
{
    (void)state;
    struct client_options o;
    char path[256];
    snprintf(path, sizeof(path), "%s/bad.conf", scratch);
    static const struct {
        const char *text;
        const char *message; /* after "PATH:" */
    } cases[] = {
        {"user = alice\n\nthis is not a setting\n", ":3: expected 'key = value'"},
        {"# old\nscreenshot = x\n", ":2: unknown key 'screenshot'"},
        {"headless = true\n", ":1: unknown key 'headless'"},
        {"quality = 11\n", ":1: quality must be between 0 and 9"},
        {"kiosk = maybe\n", ":1: kiosk must be true or false"},
        {"log_level = loud\n", ":1: log_level must be one of"},
        {"user = a\nuser = b\n", ":2: 'user' is set twice"},
        {"user = bad user\n", ": user: not a valid user name"},
        {"pool = UPPER\n", ": pool: not a valid pool name"},
        {"broker = [::1\n", ": broker: not a valid HOST[:PORT]: [::1"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        write_file(path, cases[i].text);
        int r;
        _cleanup_(freep) char *err = PARSE_ERR(r, &o, "--config", path, "--user", "x");
        client_options_done(&o);
        char want[512];
        snprintf(want, sizeof(want), "%s%s", path, cases[i].message);
        if (r != -EINVAL || !strstr(err, want)) {
            fprintf(stderr, "case %zu: r=%d, stderr: %s(want %s)\n", i, r, err, want);
            fail();
        }
    }
    /* the same in the user file: named, not silently skipped */
    if (!system_config_exists) {
        user_config("quality = x\n");
        int r;
        _cleanup_(freep) char *err = PARSE_ERR(r, &o, "h");
        client_options_done(&o);
        assert_int_equal(r, -EINVAL);
        assert_non_null(strstr(err, "/vdi/client.conf:1: quality must be an integer"));
        remove_user_configs();
    }
    /* not a regular file */
    int r;
    _cleanup_(freep) char *err = PARSE_ERR(r, &o, "--config", scratch);
    client_options_done(&o);
    assert_int_equal(r, -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
}

static char *print_config_text(void)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    client_options_print_config(f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* --print-config parses back: as printed (all commented out) and with every key
 * uncommented, which must give the built-in defaults. */
static void test_print_config_parses_back(void **state)
{
    (void)state;
    _cleanup_(freep) char *text = print_config_text();
    struct config_error err = {""};
    assert_int_equal(config_parse_string(NULL, 0, NULL, text, "sample", &err), 0);

    char path[256];
    snprintf(path, sizeof(path), "%s/sample.conf", scratch);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    size_t keys = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z') {
            line++; /* "#key = default" */
            keys++;
        }
        fprintf(f, "%s\n", line);
    }
    fclose(f);
    static const char *const want_keys[] = {
        "broker",      "port",          "user",       "pool",  "password_file", "ca_file",
        "fingerprint", "known_brokers", "fullscreen", "kiosk", "font",          "reconnect_max_s",
        "quality",     "compress",      "log_level"};
    assert_int_equal(keys, ARRAY_SIZE(want_keys));

    struct client_options o;
    assert_int_equal(PARSE(&o, "--config", path), 0);
    assert_null(o.broker);
    assert_null(o.user);
    assert_int_equal(o.port, TCP_DEFAULT_PORT);
    assert_int_equal(o.reconnect_max_s, CLIENT_RECONNECT_MAX_S_DEFAULT);
    assert_int_equal(o.quality, 7);
    assert_int_equal(o.compress, 2);
    assert_int_equal(o.log_level, LOG_LEVEL_INFO);
    assert_false(o.fullscreen || o.kiosk);
    client_options_done(&o);
    unlink(path);
}

static char *read_source_file(const char *relative)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", VDI_SOURCE_DIR, relative);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        fail();
    }
    char *buf = calloc(1, 256 * 1024);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 256 * 1024 - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* packaging/client.conf is `vdi-client --print-config`. */
static void test_packaging_sample_config(void **state)
{
    (void)state;
    _cleanup_(freep) char *want = print_config_text();
    _cleanup_(freep) char *file = read_source_file("packaging/client.conf");
    if (!streq(file, want)) {
        fprintf(stderr, "packaging/client.conf is stale: regenerate it with "
                        "vdi-client --print-config > packaging/client.conf\n");
        fail();
    }
}

/* Every long option (from --help) and every config key is in the man page. */
static void test_man_page_lists_every_option(void **state)
{
    (void)state;
    _cleanup_(freep) char *man = read_source_file("packaging/vdi-client.1");
    char *help = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&help, &size);
    assert_non_null(f);
    client_options_help(f);
    fclose(f);
    size_t options = 0;
    for (const char *p = help; (p = strstr(p, "--"));) {
        p += 2;
        size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyz-");
        if (len == 0)
            continue;
        char roff[96] = "\\-\\-"; /* roff: every '-' is "\-" */
        for (size_t i = 0, o = 4; i < len && o + 3 < sizeof(roff); i++) {
            if (p[i] == '-')
                roff[o++] = '\\';
            roff[o++] = p[i];
            roff[o] = '\0';
        }
        if (!strstr(man, roff)) {
            fprintf(stderr, "packaging/vdi-client.1 lacks %s\n", roff);
            fail();
        }
        options++;
        p += len;
    }
    assert_true(options >= 20);
    free(help);

    _cleanup_(freep) char *sample = print_config_text();
    for (char *line = strtok(sample, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != '#' || line[1] < 'a' || line[1] > 'z')
            continue;
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)strcspn(line + 1, " "), line + 1);
        char roff[80];
        snprintf(roff, sizeof(roff), ".B %s\n", key);
        if (!strstr(man, roff)) {
            fprintf(stderr, "packaging/vdi-client.1 lacks the key %s (as '.B %s')\n", key, key);
            fail();
        }
    }
    static const char *const more[] = {"known_brokers",        "client-state",    "VDI_PASSWORD",
                                       "Ctrl+Alt+Enter",       "XDG_CONFIG_HOME", "XDG_STATE_HOME",
                                       "/etc/vdi/client.conf", "EXIT STATUS"};
    for (size_t i = 0; i < ARRAY_SIZE(more); i++)
        if (!strstr(man, more[i])) {
            fprintf(stderr, "packaging/vdi-client.1 lacks %s\n", more[i]);
            fail();
        }
}

static void test_parse_target(void **state)
{
    (void)state;
    char *host = NULL;
    int port = 5900;
    assert_int_equal(tcp_parse_target("example.org", &host, &port), 0);
    assert_string_equal(host, "example.org");
    assert_int_equal(port, 5900);
    free(host);
    assert_int_equal(tcp_parse_target("10.0.0.1:443", &host, &port), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 443);
    free(host);
    port = 5900;
    assert_int_equal(tcp_parse_target("fe80::1", &host, &port), 0);
    assert_string_equal(host, "fe80::1");
    assert_int_equal(port, 5900);
    free(host);
    assert_int_equal(tcp_parse_target("[fe80::1]:5999", &host, &port), 0);
    assert_string_equal(host, "fe80::1");
    assert_int_equal(port, 5999);
    free(host);
    static const char *const bad[] = {"",        ":5900", "[::1", "[::1]x", "h:0",
                                      "h:65536", "h:12a", "h:-1", "[]:5900"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(tcp_parse_target(bad[i], &host, &port), -EINVAL);
}

static void test_password_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/vdi-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/pw", dir);
    char *pw = NULL;

    FILE *f = fopen(path, "w");
    fputs("s3cret word\r\nsecond line\n", f);
    fclose(f);
    chmod(path, 0600);
    assert_int_equal(prompt_secret_from_file(path, 255, &pw), 0);
    assert_string_equal(pw, "s3cret word");
    secret_free(pw);

    f = fopen(path, "w");
    fputs("no-newline", f);
    fclose(f);
    assert_int_equal(prompt_secret_from_file(path, 255, &pw), 0);
    assert_string_equal(pw, "no-newline");
    secret_free(pw);

    f = fopen(path, "w");
    for (int i = 0; i < 300; i++)
        fputc('x', f);
    fclose(f);
    assert_int_equal(prompt_secret_from_file(path, 255, &pw), -E2BIG);

    f = fopen(path, "w");
    fputs("\n", f);
    fclose(f);
    assert_int_equal(prompt_secret_from_file(path, 255, &pw), -ENODATA);

    unlink(path);
    assert_int_equal(prompt_secret_from_file(path, 255, &pw), -ENOENT);
    rmdir(dir);
}

static void test_ppm(void **state)
{
    (void)state;
    char dir[] = "/tmp/vdi-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/a.ppm", dir);
    /* 2x2 in a stride of 3, red at bit 0, green 8, blue 16 */
    const uint32_t px[] = {0x000000ff, 0x0000ff00, 0xdeadbeef, 0x00ff0000, 0x00102030, 0xdeadbeef};
    assert_int_equal(ppm_write(path, px, 2, 2, 3, 0, 8, 16), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[64];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    static const char want[] = "P6\n2 2\n255\n"
                               "\xff\x00\x00"
                               "\x00\xff\x00"
                               "\x00\x00\xff"
                               "\x30\x20\x10";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(buf, want, n);
    assert_int_equal(ppm_write(path, px, 0, 2, 3, 0, 8, 16), -EINVAL);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_nothing),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_help_version_print_config),
        cmocka_unit_test(test_help_lists_every_option),
        cmocka_unit_test(test_config_user_file),
        cmocka_unit_test(test_config_option_file),
        cmocka_unit_test(test_config_port_levels),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_print_config_parses_back),
        cmocka_unit_test(test_packaging_sample_config),
        cmocka_unit_test(test_man_page_lists_every_option),
        cmocka_unit_test(test_parse_target),
        cmocka_unit_test(test_password_file),
        cmocka_unit_test(test_ppm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
