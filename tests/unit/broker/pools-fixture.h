#pragma once
/*
 * The world test_pools.c and test_pools_events.c run the pools in: a temporary directory
 * with disks/, console/ and a raw base image, the real SQLite store in it, and libvirt's
 * in-memory test driver (test:///default) through virt.c, with assertions both use.
 */
#include <stddef.h>

#include "pools.h"

#define POOLS_ENV_URI "test:///default"
#define POOLS_ENV_BASE_SIZE (1024 * 1024)

struct pools_env {
    char dir[64];
    char disk_dir[128];
    char console_dir[128];
    char base[128]; /* POOLS_ENV_BASE_SIZE bytes */
    struct store *store;
    struct virt *virt;
};

/* Makes /tmp/vdi-test-<name>-XXXXXX and everything in it (fails the test on error). */
void pools_env_open(struct pools_env *e, const char *name);
/* Frees the virt and the store and removes the directory. */
void pools_env_close(struct pools_env *e);
/* The template "base" on e->base, through the pools. */
void pools_env_add_template(struct pools_env *e, struct pools *p);
/* A file of size bytes starting with "vdi". */
void pools_env_write_file(const char *path, size_t size);
/* The store's row of a desktop (fails the test when there is none). */
struct store_desktop pools_env_row(struct pools_env *e, const char *name);
/* What libvirt says of a desktop; VIRT_STATE_MISSING when it has no such domain. */
enum virt_state pools_env_power(struct pools_env *e, const char *name);

#define assert_ok(call, err)                                                                       \
    do {                                                                                           \
        int r_ = (call);                                                                           \
        if (r_ != 0)                                                                               \
            fail_msg("%s = %d: %s | %s", #call, r_, (err).text, (err).log);                        \
    } while (0)

#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        if (!strstr((haystack), (needle)))                                                         \
            fail_msg("'%s' does not contain '%s'", (haystack), (needle));                          \
    } while (0)

#define assert_power(f, name, want)                                                                \
    do {                                                                                           \
        enum virt_state s_ = pools_env_power(&(f)->env, (name));                                   \
        if (s_ != (want))                                                                          \
            fail_msg("%s is %s, expected %s", (name), virt_state_to_string(s_),                    \
                     virt_state_to_string(want));                                                  \
    } while (0)
