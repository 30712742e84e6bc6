#pragma once
/*
 * The desktop chooser's pool list, carried in the login refusal reason (RFB 3.8
 * SecurityResult reason, at most PROTO_MAX_TEXT bytes).
 *
 * A login named "USER@?" (POOL_LIST_REQUEST) means: my only pool, or, when I am entitled
 * to several, tell me which. The broker then authenticates the user as usual (PAM,
 * throttling) and, for several pools, refuses the login with
 *
 *     VDI-POOLS/1 eng:linux win10:windows ...
 *
 * (POOL_LIST_TAG, then "name:os" words; pool names are [a-z0-9-], os is linux|windows).
 * Entries that do not fit the reason are left out (the user can still type USER@POOL).
 * Only vdi-client sends "@?": other VNC clients get the human sentence "log in as
 * alice@eng or alice@win10". vdi-client then logs in again as USER@POOL.
 */
#include <stddef.h>

#define POOL_LIST_TAG "VDI-POOLS/1"
#define POOL_LIST_REQUEST "?" /* the pool part of "USER@?" */
#define POOL_LIST_MAX 64      /* entries parsed at most */
#define POOL_LIST_NAME_MAX 32 /* = STORE_NAME_MAX */
#define POOL_LIST_OS_MAX 15

struct pool_choice {
    char name[POOL_LIST_NAME_MAX + 1];
    char os[POOL_LIST_OS_MAX + 1]; /* "linux" or "windows" */
};

/* Writes the reason for pools[0..n) into out (size bytes incl. NUL); returns how many
 * entries fit (0 when not even the tag fits). */
size_t pool_list_format(const struct pool_choice *pools, size_t n, char *out, size_t size);

/* Parses a refusal reason. Returns the number of entries (1..POOL_LIST_MAX, more are
 * dropped), or -EINVAL when text is not a well-formed pool list (bad names or os words
 * make the whole list invalid: it is hostile input). */
int pool_list_parse(const char *text, struct pool_choice out[POOL_LIST_MAX]);
