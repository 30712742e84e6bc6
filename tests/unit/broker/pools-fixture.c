/* The pools tests' world (pools-fixture.h). */
#include "pools-fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

void pools_env_write_file(const char *path, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(pwrite(fd, "vdi", 3, 0), 3);
    close(fd);
}

void pools_env_open(struct pools_env *e, const char *name)
{
    struct virt_error verr = {""};
    char url[128];
    int r;

    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/vdi-test-%s-XXXXXX", name);
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->disk_dir, sizeof(e->disk_dir), "%s/disks", e->dir);
    snprintf(e->console_dir, sizeof(e->console_dir), "%s/console", e->dir);
    snprintf(e->base, sizeof(e->base), "%s/base.img", e->dir);
    assert_int_equal(mkdir(e->disk_dir, 0700), 0);
    assert_int_equal(mkdir(e->console_dir, 0700), 0);
    pools_env_write_file(e->base, POOLS_ENV_BASE_SIZE);

    snprintf(url, sizeof(url), "sqlite:%s/vdi.db", e->dir);
    assert_int_equal(store_open(url, &e->store), 0);
    /* The test driver accepts domain type "qemu" (test_virt.c defines such domains). */
    struct virt_options vo = {.uri = POOLS_ENV_URI,
                              .virt_type = "qemu",
                              .disk_dir = e->disk_dir,
                              .console_dir = e->console_dir};
    r = virt_new(&vo, &e->virt, &verr);
    if (r < 0)
        fail_msg("virt_new: %d %s", r, verr.message);
}

void pools_env_add_template(struct pools_env *e, struct pools *p)
{
    struct pools_error err = {"", ""};
    struct store_template t = {.name = "base", .os = STORE_OS_LINUX};

    snprintf(t.disk, sizeof(t.disk), "%s", e->base);
    assert_ok(pools_template_add(p, &t, &err), err);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void pools_env_close(struct pools_env *e)
{
    virt_free(e->virt);
    store_close(e->store);
    nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

struct store_desktop pools_env_row(struct pools_env *e, const char *name)
{
    struct store_desktop d;
    int r = store_desktop_get(e->store, name, &d);
    if (r < 0)
        fail_msg("no store row for %s: %d", name, r);
    return d;
}

enum virt_state pools_env_power(struct pools_env *e, const char *name)
{
    struct virt_error verr = {""};
    enum virt_state s = VIRT_STATE_OTHER;
    int r = virt_desktop_state(e->virt, name, &s, &verr);
    if (r == -ENOENT)
        return VIRT_STATE_MISSING;
    if (r < 0)
        fail_msg("virt_desktop_state %s: %d %s", name, r, verr.message);
    return s;
}
