/* The desktop chooser's pool list in a refusal reason (pool-list.h). */
#include "pool-list.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "util.h"

static bool os_is_valid(const char *os, size_t len)
{
    return (len == 5 && memcmp(os, "linux", 5) == 0) || (len == 7 && memcmp(os, "windows", 7) == 0);
}

static bool choice_is_valid(const struct pool_choice *c)
{
    size_t n = strnlen(c->name, sizeof(c->name));
    size_t o = strnlen(c->os, sizeof(c->os));

    return n < sizeof(c->name) && pool_name_is_valid(c->name) && o < sizeof(c->os) &&
           os_is_valid(c->os, o);
}

size_t pool_list_format(const struct pool_choice *pools, size_t n, char *out, size_t size)
{
    size_t len = strlen(POOL_LIST_TAG), fit = 0;

    if (size == 0)
        return 0;
    out[0] = '\0';
    if (len >= size)
        return 0;
    memcpy(out, POOL_LIST_TAG, len + 1);
    for (size_t i = 0; i < n && fit < POOL_LIST_MAX; i++) {
        if (!choice_is_valid(&pools[i]))
            continue;
        size_t name = strlen(pools[i].name), os = strlen(pools[i].os);
        size_t word = 1 + name + 1 + os; /* " name:os" */
        if (word >= size - len)
            break; /* keeps the order: the entries that fit are the first ones */
        out[len] = ' ';
        memcpy(out + len + 1, pools[i].name, name);
        out[len + 1 + name] = ':';
        memcpy(out + len + 2 + name, pools[i].os, os);
        len += word;
        out[len] = '\0';
        fit++;
    }
    return fit;
}

/* One "name:os" word at s (up to the next space or the end). Returns the word's length,
 * or 0 when it is not a valid entry; fills *ret when ret is not NULL. */
static size_t parse_entry(const char *s, struct pool_choice *ret)
{
    size_t word = strcspn(s, " ");
    const char *colon = memchr(s, ':', word);
    size_t name, os;

    if (!colon)
        return 0;
    name = (size_t)(colon - s);
    os = word - name - 1;
    if (name == 0 || name > POOL_LIST_NAME_MAX || os > POOL_LIST_OS_MAX ||
        !os_is_valid(colon + 1, os))
        return 0;
    char buf[POOL_LIST_NAME_MAX + 1];
    memcpy(buf, s, name);
    buf[name] = '\0';
    if (!pool_name_is_valid(buf))
        return 0;
    if (ret) {
        memcpy(ret->name, buf, name + 1);
        memcpy(ret->os, colon + 1, os);
        ret->os[os] = '\0';
    }
    return word;
}

int pool_list_parse(const char *text, struct pool_choice out[POOL_LIST_MAX])
{
    size_t tag = strlen(POOL_LIST_TAG);
    const char *s;
    int n = 0;

    if (!text || strncmp(text, POOL_LIST_TAG, tag) != 0 || text[tag] != ' ')
        return -EINVAL;
    s = text + tag;
    /* Every word is checked, also those past POOL_LIST_MAX: a list is valid or not as a
     * whole. */
    while (*s == ' ') {
        s++;
        size_t word = parse_entry(s, n < POOL_LIST_MAX ? &out[n] : NULL);
        if (word == 0)
            return -EINVAL; /* also "  " and a trailing space: an empty word */
        if (n < POOL_LIST_MAX) {
            for (int i = 0; i < n; i++)
                if (streq(out[i].name, out[n].name))
                    return -EINVAL;
            n++;
        }
        s += word;
    }
    if (*s != '\0' || n == 0)
        return -EINVAL;
    return n;
}
