#include "connect-job.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "connect.h"
#include "log.h"
#include "ui.h"
#include "util.h"

/* Where finished jobs are posted: the window, until connect_jobs_shutdown(). A job that
 * finishes later frees itself instead of touching a freed window. */
static pthread_mutex_t post_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ui *post_ui;

static void *job_thread(void *userdata)
{
    struct connect_job *j = userdata;
    struct client_connect_params p = {
        .host = j->host,
        .port = j->port,
        .ca_file = j->ca_file,
        .pin_sha256 = j->use_pin ? j->pin : NULL,
        .user = j->login,
        .password = j->password,
    };
    j->result = client_connect(&p, &j->tls, &j->status, j->peer_sha256, &j->have_peer_sha256);
    /* The password is needed no longer in this copy. */
    secret_free(TAKE_PTR(j->password));
    pthread_mutex_lock(&post_lock);
    if (post_ui)
        ui_post(post_ui, UI_EVENT_CONNECT_DONE, j);
    else
        connect_job_free(j);
    pthread_mutex_unlock(&post_lock);
    return NULL;
}

int connect_job_start(struct ui *ui, const struct connect_request *req, struct connect_job **ret)
{
    static const uint8_t zero[TLS_SHA256_SIZE];
    struct connect_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    pthread_mutex_lock(&post_lock);
    post_ui = ui;
    pthread_mutex_unlock(&post_lock);
    j->port = req->port;
    j->host = strdup(req->host);
    j->login = strdup(req->login);
    j->password = strdup(req->password);
    j->ca_file = req->ca_file ? strdup(req->ca_file) : NULL;
    if (!j->host || !j->login || !j->password || (req->ca_file && !j->ca_file)) {
        connect_job_free(j);
        return -ENOMEM;
    }
    if (req->pin_sha256) {
        j->use_pin = true;
        memcpy(j->pin, req->pin_sha256, TLS_SHA256_SIZE);
        j->learn_only = !req->ca_file && memcmp(j->pin, zero, sizeof(zero)) == 0;
    }

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int r = pthread_create(&thread, &attr, job_thread, j);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        connect_job_free(j);
        return -r;
    }
    *ret = j;
    return 0;
}

void connect_job_free(struct connect_job *j)
{
    if (!j)
        return;
    tls_conn_free(j->tls);
    free(j->host);
    free(j->ca_file);
    free(j->login);
    secret_free(j->password);
    free(j);
}

void connect_jobs_shutdown(void)
{
    pthread_mutex_lock(&post_lock);
    post_ui = NULL;
    pthread_mutex_unlock(&post_lock);
}
