#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static __attribute__((format(printf, 2, 3))) int config_fail(struct config_error *err,
                                                             const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static const struct config_option *config_find(const struct config_option *table, size_t n,
                                               const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (streq(table[i].name, key))
            return &table[i];
    return NULL;
}

static int parse_bool(const char *v, bool *ret)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (streq(v, yes[i])) {
            *ret = true;
            return 0;
        }
        if (streq(v, no[i])) {
            *ret = false;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_int(const char *v, int *ret)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < INT_MIN || x > INT_MAX)
        return -EINVAL;
    *ret = (int)x;
    return 0;
}

static bool enum_has(const char *const *choices, const char *v)
{
    for (; *choices; choices++)
        if (streq(*choices, v))
            return true;
    return false;
}

/* Stores value into the field of o; `where` prefixes error messages ("FILE:LINE"). */
static int option_assign(const struct config_option *o, void *obj, const char *value,
                         const char *where, struct config_error *err)
{
    void *field = (uint8_t *)obj + o->offset;
    switch (o->type) {
    case CONFIG_STRING:
    case CONFIG_ENUM: {
        if (o->type == CONFIG_ENUM && !enum_has(o->choices, value)) {
            char list[256] = "";
            for (const char *const *c = o->choices; *c; c++) {
                if (c != o->choices)
                    strncat(list, ", ", sizeof(list) - strlen(list) - 1);
                strncat(list, *c, sizeof(list) - strlen(list) - 1);
            }
            return config_fail(err, "%s: %s must be one of: %s (got '%s')", where, o->name, list,
                               value);
        }
        char *copy = strdup(value);
        if (!copy)
            return -ENOMEM;
        char **slot = field;
        free(*slot);
        *slot = copy;
        return 0;
    }
    case CONFIG_INT: {
        int x;
        if (parse_int(value, &x) < 0)
            return config_fail(err, "%s: %s must be an integer (got '%s')", where, o->name, value);
        if (x < o->min || x > o->max)
            return config_fail(err, "%s: %s must be between %d and %d (got %d)", where, o->name,
                               o->min, o->max, x);
        *(int *)field = x;
        return 0;
    }
    case CONFIG_BOOL:
        if (parse_bool(value, (bool *)field) < 0)
            return config_fail(err, "%s: %s must be true or false (got '%s')", where, o->name,
                               value);
        return 0;
    }
    return config_fail(err, "%s: %s has an unknown type", where, o->name);
}

int config_set_defaults(const struct config_option *table, size_t n, void *obj,
                        struct config_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct config_option *o = &table[i];
        const char *def = o->default_value;
        if (!def)
            def = (o->type == CONFIG_INT || o->type == CONFIG_BOOL) ? "0" : "";
        int r = option_assign(o, obj, def, "default", err);
        if (r < 0)
            return r;
    }
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
        s[--len] = '\0';
    return s;
}

int config_parse_string(const struct config_option *table, size_t n, void *obj, const char *text,
                        const char *name, struct config_error *err)
{
    /* Which keys this text already set: a repeated key is almost always a mistake. */
    _cleanup_(freep) bool *seen = calloc(n ? n : 1, sizeof(bool));
    if (!seen)
        return -ENOMEM;

    unsigned line_no = 0;
    const char *p = text;
    while (*p) {
        line_no++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len >= CONFIG_MAX_LINE)
            return config_fail(err, "%s:%u: line longer than %d bytes", name, line_no,
                               CONFIG_MAX_LINE);
        char buf[CONFIG_MAX_LINE];
        memcpy(buf, p, len);
        buf[len] = '\0';
        p += len + (eol ? 1 : 0);

        if (memchr(buf, '\0', len))
            return config_fail(err, "%s:%u: NUL byte in line", name, line_no);
        char *line = trim(buf);
        if (*line == '\0' || *line == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq)
            return config_fail(err, "%s:%u: expected 'key = value'", name, line_no);
        *eq = '\0';
        char *key = trim(line), *value = trim(eq + 1);

        const struct config_option *o = config_find(table, n, key);
        if (!o)
            return config_fail(err, "%s:%u: unknown key '%s'", name, line_no, key);
        size_t idx = (size_t)(o - table);
        if (seen[idx])
            return config_fail(err, "%s:%u: '%s' is set twice", name, line_no, key);
        seen[idx] = true;

        char where[300];
        snprintf(where, sizeof(where), "%s:%u", name, line_no);
        int r = option_assign(o, obj, value, where, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int config_parse_file(const struct config_option *table, size_t n, void *obj, const char *path,
                      struct config_error *err)
{
    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int r = -errno;
        if (err)
            snprintf(err->message, sizeof(err->message), "%s: %s", path, strerror(-r));
        return r;
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode)) {
        config_fail(err, "%s: not a regular file", path);
        return -EINVAL;
    }
    if (st.st_size > CONFIG_MAX_FILE) {
        config_fail(err, "%s: larger than %d bytes", path, CONFIG_MAX_FILE);
        return -EFBIG;
    }
    _cleanup_(freep) char *text = malloc((size_t)st.st_size + 1);
    if (!text)
        return -ENOMEM;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, text + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            break;
        got += (size_t)k;
    }
    text[got] = '\0';
    if (strlen(text) != got)
        return config_fail(err, "%s: contains a NUL byte", path);
    return config_parse_string(table, n, obj, text, path, err);
}

int config_set(const struct config_option *table, size_t n, void *obj, const char *key,
               const char *value, struct config_error *err)
{
    const struct config_option *o = config_find(table, n, key);
    if (!o)
        return config_fail(err, "unknown key '%s'", key);
    return option_assign(o, obj, value, "command line", err);
}

void config_done(const struct config_option *table, size_t n, void *obj)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].type == CONFIG_STRING || table[i].type == CONFIG_ENUM) {
            char **slot = (char **)((uint8_t *)obj + table[i].offset);
            free(*slot);
            *slot = NULL;
        }
}

void config_print(const struct config_option *table, size_t n, FILE *f)
{
    for (size_t i = 0; i < n; i++) {
        const struct config_option *o = &table[i];
        fprintf(f, "# %s\n", o->doc ? o->doc : o->name);
        if (o->type == CONFIG_INT)
            fprintf(f, "# (integer, %d to %d)\n", o->min, o->max);
        else if (o->type == CONFIG_ENUM) {
            fprintf(f, "# (one of:");
            for (const char *const *c = o->choices; *c; c++)
                fprintf(f, " %s", *c);
            fprintf(f, ")\n");
        } else if (o->type == CONFIG_BOOL)
            fprintf(f, "# (true or false)\n");
        fprintf(f, "#%s = %s\n\n", o->name, o->default_value ? o->default_value : "");
    }
}
