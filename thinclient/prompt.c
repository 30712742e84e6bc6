#include "prompt.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

int prompt_secret_from_file(const char *path, size_t max, char **ret)
{
    unsigned exposed;
    int r = secret_file_read_line(path, max, &exposed, ret);
    if (exposed)
        log_warning("password file %s is accessible by other users (mode %03o)", path, exposed);
    return r;
}

int prompt_preset_password(const char *password_file, size_t max, char **ret)
{
    *ret = NULL;
    if (password_file)
        return prompt_secret_from_file(password_file, max, ret);
    char *env = getenv("VDI_PASSWORD");
    if (!env)
        return 0;
    size_t len = strlen(env);
    if (len > max)
        return -E2BIG;
    *ret = strdup(env);
    /* Leave no copy in our environment (children, /proc/PID/environ). */
    explicit_bzero(env, len);
    unsetenv("VDI_PASSWORD");
    return *ret ? 0 : -ENOMEM;
}
