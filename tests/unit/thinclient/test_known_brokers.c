/* Trust on first use: the known_brokers file (thinclient/known-brokers.c), including
 * hostile content and the atomic rewrite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "client-state.h"
#include "known-brokers.h"
#include "log.h"
#include "util.h"

static char scratch[64];

static int group_setup(void **state)
{
    (void)state;
    snprintf(scratch, sizeof(scratch), "/tmp/vdi-test-kb-XXXXXX");
    log_set_level(LOG_LEVEL_ERROR); /* the malformed lines' warnings are expected */
    return mkdtemp(scratch) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
    return system(cmd) == 0 ? 0 : -1;
}

static void sha_fill(uint8_t sha[TLS_SHA256_SIZE], uint8_t first)
{
    for (size_t i = 0; i < TLS_SHA256_SIZE; i++)
        sha[i] = (uint8_t)(first + i);
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path)
{
    char *text = NULL;
    size_t size = 0;
    assert_int_equal(read_file_capped(path, 1 << 20, &text, &size), 0);
    return text;
}

static size_t count(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_default_path(void **state)
{
    (void)state;
    char *path = NULL;
    setenv("XDG_CONFIG_HOME", "/x/config", 1);
    setenv("HOME", "/home/u", 1);
    assert_int_equal(known_brokers_default_path(&path), 0);
    assert_string_equal(path, "/x/config/vdi/known_brokers");
    free(path);
    setenv("XDG_CONFIG_HOME", "", 1);
    assert_int_equal(known_brokers_default_path(&path), 0);
    assert_string_equal(path, "/home/u/.config/vdi/known_brokers");
    free(path);
    setenv("XDG_CONFIG_HOME", "not/absolute", 1);
    assert_int_equal(known_brokers_default_path(&path), 0);
    assert_string_equal(path, "/home/u/.config/vdi/known_brokers");
    free(path);
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("HOME");
    assert_int_equal(known_brokers_default_path(&path), -ENOENT);
}

static void test_add_and_lookup(void **state)
{
    (void)state;
    char path[192], dir[128];
    snprintf(dir, sizeof(dir), "%s/new/vdi", scratch);
    snprintf(path, sizeof(path), "%s/known_brokers", dir);
    uint8_t a[TLS_SHA256_SIZE], b[TLS_SHA256_SIZE], got[TLS_SHA256_SIZE];
    sha_fill(a, 0x10);
    sha_fill(b, 0xc0);

    /* no file yet: not known */
    assert_int_equal(known_brokers_lookup(path, "vdi.example.com", 5900, got), 0);

    mode_t old_umask = umask(0);
    assert_int_equal(known_brokers_add(path, "vdi.example.com", 5900, a), 0);
    umask(old_umask);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    snprintf(dir, sizeof(dir), "%s/new", scratch);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);

    assert_int_equal(known_brokers_lookup(path, "vdi.example.com", 5900, got), 1);
    assert_memory_equal(got, a, TLS_SHA256_SIZE);
    /* names match without regard to case; the port must match */
    assert_int_equal(known_brokers_lookup(path, "VDI.Example.COM", 5900, got), 1);
    assert_int_equal(known_brokers_lookup(path, "vdi.example.com", 5901, got), 0);
    assert_int_equal(known_brokers_lookup(path, "vdi.example", 5900, got), 0);
    assert_int_equal(known_brokers_lookup(path, "vdi.example.com.evil", 5900, got), 0);

    /* IPv6 in brackets */
    assert_int_equal(known_brokers_add(path, "fe80::1%eth0", 443, b), 0);
    assert_int_equal(known_brokers_add(path, "10.0.0.1", 5900, b), 0);
    _cleanup_(freep) char *text = read_file(path);
    assert_non_null(strstr(text, "\n[fe80::1%eth0]:443 C0:C1:C2:"));
    assert_non_null(strstr(text, "\n10.0.0.1:5900 C0:"));
    assert_non_null(strstr(text, "\nvdi.example.com:5900 10:11:12:13:"));
    assert_int_equal(known_brokers_lookup(path, "FE80::1%eth0", 443, got), 1);
    assert_memory_equal(got, b, TLS_SHA256_SIZE);
    assert_int_equal(known_brokers_lookup(path, "10.0.0.1", 5900, got), 1);
    assert_int_equal(known_brokers_lookup(path, "10.0.0.2", 5900, got), 0);

    /* replacing: one line for the broker, the others stay */
    assert_int_equal(known_brokers_add(path, "VDI.example.com", 5900, b), 0);
    free(text);
    text = read_file(path);
    assert_int_equal(count(text, "example.com:5900"), 1);
    assert_int_equal(count(text, "\n"), 4); /* the comment line and three brokers */
    assert_int_equal(known_brokers_lookup(path, "vdi.example.com", 5900, got), 1);
    assert_memory_equal(got, b, TLS_SHA256_SIZE);
    assert_int_equal(known_brokers_lookup(path, "fe80::1%eth0", 443, got), 1);

    /* no temporary files left behind */
    snprintf(dir, sizeof(dir), "%s/new/vdi", scratch);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_hostile_content(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/hostile", scratch);
    static const char fp[] = "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:"
                             "10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
    static const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    char text[8192];
    size_t len = 0;
#define LINE(...) len += (size_t)snprintf(text + len, sizeof(text) - len, __VA_ARGS__)
    LINE("# a comment h1:1 %s\n", fp);
    LINE("   \t\n");
    LINE("h1:0 %s\n", fp);        /* port 0 */
    LINE("h1:65536 %s\n", fp);    /* port too big */
    LINE("h1:01 %s\n", fp);       /* leading zero */
    LINE("h1 %s\n", fp);          /* no port */
    LINE("h1:1 %.94s\n", fp);     /* short fingerprint */
    LINE("h1:1 %s:20\n", fp);     /* long fingerprint */
    LINE("h1:1 %.62sZZ\n", hex);  /* not hex */
    LINE("h1:1 :%s\n", fp);       /* leading colon */
    LINE("h1:1 %s extra\n", fp);  /* a third field */
    LINE("h1:1\n");               /* no fingerprint */
    LINE("::1:1 %s\n", fp);       /* IPv6 without brackets */
    LINE("[::1:1 %s\n", fp);      /* unbalanced */
    LINE("[h1]:1 %s\n", fp);      /* brackets around a name */
    LINE("h 1:1 %s\n", fp);       /* blank in the host */
    LINE("h\x1b[31m:1 %s\n", fp); /* escape sequence */
    LINE("h1:+1 %s\n", fp);       /* sign */
    LINE("h1:1%s\n", fp);         /* no blank */
    text[len++] = 'h';            /* a NUL inside a line */
    text[len++] = '\0';
    LINE("1:1 %s\n", fp);
    LINE("%s:1 %s\n", "a123456789a123456789a123456789a123456789a123456789", fp); /* fine */
    for (int i = 0; i < 1100; i++)                                               /* too long */
        text[len++] = i < 2 ? "h1"[i] : ' ';
    LINE(":1 %s\n", fp);
    /* the good ones: colons or none, CRLF, blanks around */
    LINE("h1:1 %s\n", hex);
    LINE("  h2:22\t%s \r\n", fp);
    LINE("[::1]:5900 %s", fp); /* no final newline */
#undef LINE
    write_file(path, text, len);

    uint8_t got[TLS_SHA256_SIZE], want[TLS_SHA256_SIZE];
    sha_fill(want, 0);
    assert_int_equal(known_brokers_lookup(path, "h1", 1, got), 1);
    assert_memory_equal(got, want, TLS_SHA256_SIZE);
    assert_int_equal(known_brokers_lookup(path, "h2", 22, got), 1);
    assert_memory_equal(got, want, TLS_SHA256_SIZE);
    assert_int_equal(known_brokers_lookup(path, "::1", 5900, got), 1);
    assert_int_equal(known_brokers_lookup(path, "::1", 1, got), 0);
    assert_int_equal(known_brokers_lookup(path, "h", 1, got), 0);
    assert_int_equal(known_brokers_lookup(path, "1", 1, got), 0);
    assert_int_equal(
        known_brokers_lookup(path, "a123456789a123456789a123456789a123456789a123456789", 1, got),
        1);

    /* adding keeps every line but the replaced one, bad ones included */
    uint8_t other[TLS_SHA256_SIZE];
    sha_fill(other, 0x80);
    assert_int_equal(known_brokers_add(path, "h1", 1, other), 0);
    _cleanup_(freep) char *after = NULL;
    size_t size = 0;
    assert_int_equal(read_file_capped(path, 1 << 20, &after, &size), 0);
    /* the hex line replaced by a colon one; a '\n' added after the unterminated last line */
    assert_int_equal(size, len - strlen(hex) + (TLS_SHA256_SIZE * 3 - 1) + 1);
#define HAS(s) (memmem(after, size, (s), strlen(s)) != NULL)
    assert_false(HAS(hex));
    assert_true(HAS("h1:0 "));
    assert_non_null(memmem(after, size, "h\0001:1 ", 6));
    assert_true(HAS("\n[::1]:5900 "));
    assert_true(HAS("# a comment"));
    assert_true(HAS("\nh1:1 80:81:82:"));
#undef HAS
    assert_int_equal(known_brokers_lookup(path, "h1", 1, got), 1);
    assert_memory_equal(got, other, TLS_SHA256_SIZE);
    assert_int_equal(known_brokers_lookup(path, "h2", 22, got), 1);
}

static void test_refusals(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/refusals", scratch);
    uint8_t sha[TLS_SHA256_SIZE];
    sha_fill(sha, 1);
    /* hosts and ports the file cannot hold */
    static const char *const bad_hosts[] = {"", "a b", "a\nb", "h:1", "[::1]", "a/b", "a#b"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_hosts); i++) {
        assert_int_equal(known_brokers_add(path, bad_hosts[i], 1, sha), -EINVAL);
        assert_int_equal(known_brokers_lookup(path, bad_hosts[i], 1, sha), -EINVAL);
    }
    char long_host[300];
    memset(long_host, 'a', sizeof(long_host) - 1);
    long_host[sizeof(long_host) - 1] = '\0';
    assert_int_equal(known_brokers_add(path, long_host, 1, sha), -EINVAL);
    assert_int_equal(known_brokers_add(path, "h", 0, sha), -EINVAL);
    assert_int_equal(known_brokers_add(path, "h", 65536, sha), -EINVAL);
    assert_int_equal(access(path, F_OK), -1);

    /* larger than 1 MiB: refused, left alone */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i <= KNOWN_BROKERS_FILE_MAX / 8; i++)
        fputs("# ......", f);
    fclose(f);
    assert_int_equal(known_brokers_lookup(path, "h", 1, sha), -EFBIG);
    assert_int_equal(known_brokers_add(path, "h", 1, sha), -EFBIG);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > KNOWN_BROKERS_FILE_MAX);

    /* not a regular file */
    assert_int_equal(known_brokers_lookup(scratch, "h", 1, sha), -EINVAL);
    /* a file where the directory should be */
    char under[192];
    snprintf(under, sizeof(under), "%s/known_brokers", path);
    assert_int_equal(known_brokers_add(under, "h", 1, sha), -ENOTDIR);
}

/* The rewrite replaces a planted link instead of writing through it, and leaves 0600. */
static void test_rewrite_is_atomic_and_private(void **state)
{
    (void)state;
    char path[128], target[128];
    snprintf(path, sizeof(path), "%s/linked", scratch);
    snprintf(target, sizeof(target), "%s/target", scratch);
    write_file(target, "precious\n", 9);
    chmod(target, 0644);
    assert_int_equal(symlink(target, path), 0);
    uint8_t sha[TLS_SHA256_SIZE];
    sha_fill(sha, 7);
    assert_int_equal(known_brokers_add(path, "h", 1, sha), 0);
    _cleanup_(freep) char *t = read_file(target);
    assert_string_equal(t, "precious\n");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    /* the old content (read through the link) was kept */
    _cleanup_(freep) char *p = read_file(path);
    assert_non_null(strstr(p, "precious\nh:1 07:08:"));

    /* an existing 0644 file comes back 0600 */
    chmod(path, 0644);
    assert_int_equal(known_brokers_add(path, "h2", 1, sha), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_add_and_lookup),
        cmocka_unit_test(test_hostile_content),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_rewrite_is_atomic_and_private),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
