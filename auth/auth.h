#pragma once
/*
 * User authentication for vdi-broker: a PAM check (pam_authenticate + pam_acct_mgmt)
 * with a conversation that answers the password to hidden prompts and the user name to
 * echoed ones. Blocking (PAM modules may sleep for seconds): call it from a worker
 * thread, never from the event loop. Thread-safe as far as the PAM modules are.
 *
 * Only names that passed username_is_valid() (common/util.h) should get here. The
 * password is never logged nor kept: the conversation's copies are wiped.
 */
#include <stddef.h>

#define AUTH_DETAIL_MAX 128

struct auth_request {
    const char *service; /* PAM service name, e.g. "vdi" (/etc/pam.d/vdi) */
    const char *user;
    const char *password;
    const char *rhost; /* client address, set as PAM_RHOST; may be NULL */
};

/* Returns 0 when PAM accepted the user, -EACCES for a failed authentication (wrong
 * password, unknown user: the caller must not tell the two apart to the client),
 * -EPERM when the account is not allowed in (expired, locked, needs a new password),
 * -EINVAL for a bad request, -EIO for a PAM or module error (broken service file).
 * detail (may be NULL) receives PAM's words for the log, never the password. */
int auth_pam_check(const struct auth_request *req, char *detail, size_t detail_size);
