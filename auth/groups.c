/* System group membership through NSS (groups.h). */
#include "groups.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "util.h"

/* Big enough for any sane passwd/group entry; grown on ERANGE up to this cap. */
#define NSS_BUFFER_START 4096
#define NSS_BUFFER_MAX (1024 * 1024)

static int lookup_gid_of_user(const char *user, gid_t *ret)
{
    for (size_t size = NSS_BUFFER_START; size <= NSS_BUFFER_MAX; size *= 2) {
        _cleanup_(freep) char *buf = malloc(size);
        struct passwd pw, *found = NULL;
        int r;

        if (!buf)
            return -ENOMEM;
        r = getpwnam_r(user, &pw, buf, size, &found);
        if (r == ERANGE)
            continue;
        if (r != 0 && r != ENOENT && r != ESRCH)
            return -EIO;
        if (!found)
            return -ENOENT;
        *ret = pw.pw_gid;
        return 0;
    }
    return -EIO;
}

static int group_name(gid_t gid, char **ret)
{
    for (size_t size = NSS_BUFFER_START; size <= NSS_BUFFER_MAX; size *= 2) {
        _cleanup_(freep) char *buf = malloc(size);
        struct group gr, *found = NULL;
        int r;

        if (!buf)
            return -ENOMEM;
        r = getgrgid_r(gid, &gr, buf, size, &found);
        if (r == ERANGE)
            continue;
        if (r != 0 && r != ENOENT && r != ESRCH)
            return -EIO;
        if (!found)
            return -ENOENT;
        *ret = strdup(gr.gr_name);
        return *ret ? 0 : -ENOMEM;
    }
    return -EIO;
}

void auth_groups_free(char **groups, size_t n)
{
    if (!groups)
        return;
    for (size_t i = 0; i < n; i++)
        free(groups[i]);
    free(groups);
}

/* getgrouplist() is documented thread-safe, but NSS modules have got it wrong
 * (nss_wrapper 1.1.12 answers wrongly under concurrent calls: 155 of 16000 checks with 8
 * threads; systemd issue #17007 for libnss_systemd): lookups take turns. They happen
 * once per login and per admin request; the cost is nil next to PAM. */
static pthread_mutex_t nss_lock = PTHREAD_MUTEX_INITIALIZER;

static int user_groups_locked(const char *user, char ***ret, size_t *ret_n);

int auth_user_groups(const char *user, char ***ret, size_t *ret_n)
{
    int r;

    pthread_mutex_lock(&nss_lock);
    r = user_groups_locked(user, ret, ret_n);
    pthread_mutex_unlock(&nss_lock);
    return r;
}

static int user_groups_locked(const char *user, char ***ret, size_t *ret_n)
{
    _cleanup_(freep) gid_t *gids = NULL;
    char **names = NULL;
    size_t n = 0;
    int count = 64;
    gid_t primary;
    int r;

    *ret = NULL;
    *ret_n = 0;
    r = lookup_gid_of_user(user, &primary);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;

    for (;;) {
        int want = count;
        gid_t *g = realloc(gids, sizeof(*gids) * (size_t)want);

        if (!g)
            return -ENOMEM;
        gids = g;
        if (getgrouplist(user, primary, gids, &count) >= 0)
            break;
        if (count <= want) /* no progress: give up rather than loop */
            return -EIO;
        if (count > AUTH_GROUPS_MAX) {
            count = AUTH_GROUPS_MAX;
            g = realloc(gids, sizeof(*gids) * (size_t)count);
            if (!g)
                return -ENOMEM;
            gids = g;
            (void)getgrouplist(user, primary, gids, &count);
            break;
        }
    }

    names = calloc((size_t)count + 1, sizeof(*names));
    if (!names)
        return -ENOMEM;
    for (int i = 0; i < count; i++) {
        r = group_name(gids[i], &names[n]);
        if (r == -ENOENT)
            continue; /* a gid without a name cannot be entitled by name */
        if (r < 0) {
            auth_groups_free(names, n);
            return r;
        }
        n++;
    }
    *ret = names;
    *ret_n = n;
    return 0;
}

int auth_user_in_group(const char *user, const char *group)
{
    char **groups;
    size_t n;
    int r = auth_user_groups(user, &groups, &n);

    if (r < 0)
        return r;
    r = 0;
    for (size_t i = 0; i < n && !r; i++)
        r = streq(groups[i], group);
    auth_groups_free(groups, n);
    return r;
}
