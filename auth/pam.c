/* The one place PAM lives (auth.h). */
#include "auth.h"

#include <errno.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct conv_data {
    const char *user;
    const char *password;
};

static void responses_free(struct pam_response *resp, int n)
{
    if (!resp)
        return;
    for (int i = 0; i < n; i++)
        secret_free(resp[i].resp);
    free(resp);
}

static int conversation(int n, const struct pam_message **msg, struct pam_response **ret,
                        void *userdata)
{
    const struct conv_data *d = userdata;
    struct pam_response *resp;

    if (n <= 0 || n > PAM_MAX_NUM_MSG)
        return PAM_CONV_ERR;
    resp = calloc((size_t)n, sizeof(*resp));
    if (!resp)
        return PAM_BUF_ERR;

    for (int i = 0; i < n; i++) {
        const char *answer = NULL;

        switch (msg[i]->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
            answer = d->password;
            break;
        case PAM_PROMPT_ECHO_ON:
            answer = d->user;
            break;
        case PAM_ERROR_MSG:
        case PAM_TEXT_INFO:
            log_debug("pam message user=%s style=%d text=%s", d->user, msg[i]->msg_style,
                      msg[i]->msg ? msg[i]->msg : "");
            continue;
        default:
            responses_free(resp, n);
            return PAM_CONV_ERR;
        }
        resp[i].resp = strdup(answer);
        if (!resp[i].resp) {
            responses_free(resp, n);
            return PAM_BUF_ERR;
        }
    }
    *ret = resp;
    return PAM_SUCCESS;
}

static int pam_to_errno(int r)
{
    switch (r) {
    case PAM_SUCCESS:
        return 0;
    case PAM_AUTH_ERR:
    case PAM_USER_UNKNOWN:
    case PAM_CRED_INSUFFICIENT:
    case PAM_MAXTRIES:
        return -EACCES;
    case PAM_ACCT_EXPIRED:
    case PAM_NEW_AUTHTOK_REQD:
    case PAM_PERM_DENIED:
    case PAM_AUTHTOK_EXPIRED:
        return -EPERM;
    default:
        return -EIO;
    }
}

static void set_detail(char *detail, size_t size, pam_handle_t *h, const char *step, int r)
{
    if (detail && size > 0)
        snprintf(detail, size, "%s: %s", step, pam_strerror(h, r));
}

int auth_pam_check(const struct auth_request *req, char *detail, size_t detail_size)
{
    struct conv_data data;
    struct pam_conv conv = {.conv = conversation, .appdata_ptr = &data};
    pam_handle_t *h = NULL;
    const void *item = NULL;
    int r;

    if (detail && detail_size > 0)
        detail[0] = 0;
    if (!req || !req->service || !req->user || !req->password || !*req->service || !*req->user)
        return -EINVAL;
    data = (struct conv_data){.user = req->user, .password = req->password};

    r = pam_start(req->service, req->user, &conv, &h);
    if (r != PAM_SUCCESS) {
        set_detail(detail, detail_size, h, "pam_start", r);
        if (h)
            pam_end(h, r);
        return -EIO;
    }

    if (req->rhost) {
        r = pam_set_item(h, PAM_RHOST, req->rhost);
        if (r != PAM_SUCCESS) {
            set_detail(detail, detail_size, h, "pam_set_item", r);
            goto finish;
        }
    }

    r = pam_authenticate(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
    if (r != PAM_SUCCESS) {
        set_detail(detail, detail_size, h, "pam_authenticate", r);
        goto finish;
    }
    r = pam_acct_mgmt(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
    if (r != PAM_SUCCESS) {
        set_detail(detail, detail_size, h, "pam_acct_mgmt", r);
        goto finish;
    }

    /* A module may map the name; we only ever let in the user that asked. */
    r = pam_get_item(h, PAM_USER, &item);
    if (r != PAM_SUCCESS || !item || !streq((const char *)item, req->user)) {
        if (detail && detail_size > 0)
            snprintf(detail, detail_size, "PAM changed the user name");
        r = PAM_PERM_DENIED;
        goto finish;
    }

finish:
    pam_end(h, r);
    return pam_to_errno(r);
}
