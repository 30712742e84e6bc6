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
 * (POOL_LIST_TAG, then "name:os" words; pool names as pool_name_is_valid() in util.h
 * wants them, os is linux|windows).
 * Entries that do not fit the reason are left out (the user can still type USER@POOL).
 * Only vdi-client sends "@?": other VNC clients get the human sentence "log in as
 * alice@eng or alice@win10". vdi-client then logs in again as USER@POOL. For the broker
 * the list answers a right password: it clears the throttle's counts and is audited as
 * "login.pools", not as a failure (broker/README.md, login forms).
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

/* Writes the reason for pools[0..n) into out (size bytes incl. NUL, normally
 * PROTO_MAX_TEXT + 1) in their order, up to the first entry that does not fit and at most
 * POOL_LIST_MAX of them; entries that pool_list_parse() would refuse (name, os) are
 * skipped. Returns how many entries were written: 0 means out holds no usable list (the
 * tag alone, or "" when not even the tag fits). */
size_t pool_list_format(const struct pool_choice *pools, size_t n, char *out, size_t size);

/* Parses a refusal reason: exactly POOL_LIST_TAG, then one or more " name:os" words
 * (single spaces, nothing after the last word). Returns the number of entries
 * (1..POOL_LIST_MAX; further words are checked, then dropped), or -EINVAL when text (NULL
 * too) is not a well-formed pool list: a bad name or os word, an empty word, a trailing
 * space, a name listed twice, or no entry make the whole list invalid (it is hostile
 * input). out is unspecified after -EINVAL. */
int pool_list_parse(const char *text, struct pool_choice out[POOL_LIST_MAX]);
