#pragma once
/*
 * System group membership, for entitlements ("group eng may use pool eng") and the admin
 * API's admin group. Uses NSS (getpwnam_r, getgrouplist, getgrgid_r), so LDAP/SSSD
 * groups work where NSS is set up for them. Blocking (NSS may ask a directory server):
 * worker threads only. Thread-safe.
 */
#include <stdbool.h>
#include <stddef.h>

#define AUTH_GROUPS_MAX 1024 /* a user in more groups than this gets the first ones */

/* Names of the groups user belongs to (primary group included), malloc'd array of
 * malloc'd strings; free with auth_groups_free. A user NSS does not know has no groups
 * (0, *ret_n = 0). Returns 0 or -ENOMEM / -EIO. */
int auth_user_groups(const char *user, char ***ret, size_t *ret_n);
void auth_groups_free(char **groups, size_t n);

/* 1 if user is a member of group, 0 if not (or either is unknown), -errno on failure. */
int auth_user_in_group(const char *user, const char *group);
