#include "client-state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* The longest line worth reading: "pool " + broker + user + pool + blanks. */
#define CLIENT_STATE_LINE_MAX 512

struct pool_choice {
    char broker[CLIENT_STATE_BROKER_MAX + 1];
    char user[CLIENT_STATE_USER_MAX + 1];
    char pool[CLIENT_STATE_POOL_MAX + 1];
};

struct client_state {
    char *path;
    char last_broker[CLIENT_STATE_BROKER_MAX + 1];
    char last_user[CLIENT_STATE_USER_MAX + 1];
    /* oldest first; a choice made again moves to the end */
    struct pool_choice pools[CLIENT_STATE_POOLS_MAX];
    size_t n_pools;
};

/* ---- the shared file discipline ---- */

int client_file_path(const char *xdg_var, const char *home_dir, const char *name, char **ret)
{
    const char *xdg = getenv(xdg_var);
    const char *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = asprintf(ret, "%s/vdi/%s", xdg, name);
    else if (home && home[0] == '/')
        n = asprintf(ret, "%s/%s/vdi/%s", home, home_dir, name);
    else
        return -ENOENT;
    if (n < 0) {
        *ret = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* Creates the directories above path that are missing, 0700 each. */
static int mkdir_parents(const char *path)
{
    _cleanup_(freep) char *dir = strdup(path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0; /* in the working directory, or in / */
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            int r = -errno;
            struct stat st;
            if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return r;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int fsync_directory_of(const char *path)
{
    _cleanup_(freep) char *dir = strdup(path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    const char *name = ".";
    if (slash == dir)
        name = "/";
    else if (slash) {
        *slash = '\0';
        name = dir;
    }
    _cleanup_(closep) int fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return fsync(fd) < 0 ? -errno : 0;
}

int client_file_write(const char *path, const char *data, size_t size)
{
    int r = mkdir_parents(path);
    if (r < 0)
        return r;
    _cleanup_(freep) char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0) {
        tmp = NULL;
        return -ENOMEM;
    }
    /* mkostemp opens with O_CREAT|O_EXCL (and here O_NOFOLLOW): never an existing file or
     * a planted link; mode 0600. */
    int fd = mkostemp(tmp, O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    if (fchmod(fd, 0600) < 0)
        goto fail;
    for (size_t done = 0; done < size;) {
        ssize_t k = write(fd, data + done, size - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            goto fail;
        done += (size_t)k;
    }
    if (fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto fail;
    /* The rename is done; a failing directory fsync only weakens crash safety. */
    (void)fsync_directory_of(path);
    return 0;

fail:
    r = -errno;
    safe_close(fd);
    unlink(tmp);
    return r;
}

/* ---- the state ---- */

int client_state_default_path(char **ret)
{
    return client_file_path("XDG_STATE_HOME", ".local/state", "client-state", ret);
}

/* A broker as typed: printable ASCII without blanks, 1..CLIENT_STATE_BROKER_MAX bytes. */
static bool broker_ok(const char *broker)
{
    size_t len = strnlen(broker, CLIENT_STATE_BROKER_MAX + 1);
    if (len == 0 || len > CLIENT_STATE_BROKER_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)broker[i] <= ' ' || (unsigned char)broker[i] >= 0x7f)
            return false;
    return true;
}

/* The index of user's choice on broker, or n_pools when there is none. */
static size_t pool_find(const struct client_state *s, const char *broker, const char *user)
{
    size_t i = 0;
    while (i < s->n_pools && !(streq(s->pools[i].broker, broker) && streq(s->pools[i].user, user)))
        i++;
    return i;
}

static void pool_remove(struct client_state *s, size_t i)
{
    memmove(&s->pools[i], &s->pools[i + 1], (s->n_pools - i - 1) * sizeof(s->pools[0]));
    s->n_pools--;
}

int client_state_set_pool(struct client_state *s, const char *broker, const char *user,
                          const char *pool)
{
    if (!broker_ok(broker) || !username_is_valid(user) ||
        (pool[0] != '\0' && !pool_name_is_valid(pool)))
        return -EINVAL;
    size_t old = pool_find(s, broker, user);
    if (old < s->n_pools)
        pool_remove(s, old);
    if (pool[0] == '\0')
        return 0;
    if (s->n_pools == CLIENT_STATE_POOLS_MAX)
        pool_remove(s, 0);
    struct pool_choice *c = &s->pools[s->n_pools++];
    /* lengths were checked above */
    snprintf(c->broker, sizeof(c->broker), "%s", broker);
    snprintf(c->user, sizeof(c->user), "%s", user);
    snprintf(c->pool, sizeof(c->pool), "%s", pool);
    return 0;
}

bool client_state_pool(const struct client_state *s, const char *broker, const char *user,
                       char pool[CLIENT_STATE_POOL_MAX + 1])
{
    size_t i = pool_find(s, broker, user);
    if (i == s->n_pools)
        return false;
    memcpy(pool, s->pools[i].pool, sizeof(s->pools[i].pool));
    return true;
}

int client_state_set_last_login(struct client_state *s, const char *broker, const char *user)
{
    if (!broker_ok(broker) || !username_is_valid(user))
        return -EINVAL;
    snprintf(s->last_broker, sizeof(s->last_broker), "%s", broker);
    snprintf(s->last_user, sizeof(s->last_user), "%s", user);
    return 0;
}

void client_state_last_login(const struct client_state *s, char broker[CLIENT_STATE_BROKER_MAX + 1],
                             char user[CLIENT_STATE_USER_MAX + 1])
{
    memcpy(broker, s->last_broker, sizeof(s->last_broker));
    memcpy(user, s->last_user, sizeof(s->last_user));
}

/* Splits line at blanks into at most max fields; returns how many there are (max + 1
 * when there are more). */
static size_t split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *f = strtok_r(line, " \t", &save); f;
         f = strtok_r(NULL, " \t", &save)) {
        if (n == max)
            return max + 1;
        fields[n++] = f;
    }
    return n;
}

static void parse_line(struct client_state *s, char *line)
{
    char *f[4];
    size_t n = split_fields(line, f, ARRAY_SIZE(f));
    /* the setters check every value: a malformed line is one they refuse */
    if (n == 3 && streq(f[0], "last"))
        (void)client_state_set_last_login(s, f[1], f[2]);
    else if (n == 4 && streq(f[0], "pool") && f[3][0] != '\0')
        (void)client_state_set_pool(s, f[1], f[2], f[3]);
}

static void parse_text(struct client_state *s, const char *text, size_t size)
{
    const char *p = text, *end = text + size;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
        const char *next = eol ? eol + 1 : end;
        if (len < CLIENT_STATE_LINE_MAX && !memchr(p, '\0', len)) {
            char line[CLIENT_STATE_LINE_MAX];
            memcpy(line, p, len);
            line[len] = '\0';
            if (len > 0 && line[len - 1] == '\r')
                line[len - 1] = '\0';
            parse_line(s, line);
        }
        p = next;
    }
}

int client_state_load(const char *path, struct client_state **ret)
{
    struct client_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->path = strdup(path);
    if (!s->path) {
        client_state_free(s);
        return -ENOMEM;
    }
    _cleanup_(freep) char *text = NULL;
    size_t size = 0;
    int r = read_file_capped(path, CLIENT_STATE_FILE_MAX, &text, &size);
    if (r == -ENOMEM) {
        client_state_free(s);
        return r;
    }
    if (r == 0)
        parse_text(s, text, size);
    else if (r != -ENOENT)
        log_warning("Cannot read %s (%s); nothing remembered", path,
                    r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
    *ret = s;
    return 0;
}

void client_state_free(struct client_state *s)
{
    if (!s)
        return;
    free(s->path);
    free(s);
}

int client_state_save(const struct client_state *s)
{
    _cleanup_(freep) char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return -ENOMEM;
    fputs("# vdi-client: the last login and the desktop pools chosen (safe to delete)\n", f);
    if (s->last_broker[0])
        fprintf(f, "last %s %s\n", s->last_broker, s->last_user);
    for (size_t i = 0; i < s->n_pools; i++)
        fprintf(f, "pool %s %s %s\n", s->pools[i].broker, s->pools[i].user, s->pools[i].pool);
    if (fclose(f) != 0)
        return -ENOMEM;
    return client_file_write(s->path, text, size);
}
