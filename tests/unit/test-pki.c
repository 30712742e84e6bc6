#include "test-pki.h"

#include <stdio.h>
#include <stdlib.h>

static int in_dir(const struct test_pki *p, const char *cmd)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "cd %s && %s >/dev/null 2>&1", p->dir, cmd);
    if (system(buf) != 0) {
        fprintf(stderr, "test-pki: failed: %s\n", cmd);
        return -1;
    }
    return 0;
}

int test_pki_write(const struct test_pki *p, const char *name, const char *text, char *path,
                   size_t path_size)
{
    char full[192];
    snprintf(full, sizeof(full), "%s/%s", p->dir, name);
    FILE *f = fopen(full, "we");
    if (!f)
        return -1;
    fputs(text, f);
    if (fclose(f) != 0)
        return -1;
    if (path)
        snprintf(path, path_size, "%s", full);
    return 0;
}

int test_pki_make(struct test_pki *p, const char *dir_template)
{
    static const char *const commands[] = {
        "certtool --generate-privkey --key-type=ecdsa --outfile ca-key.pem",
        "certtool --generate-self-signed --load-privkey ca-key.pem --template ca.tmpl "
        "--outfile ca.pem",
        "certtool --generate-privkey --key-type=ecdsa --outfile other-ca-key.pem",
        "certtool --generate-self-signed --load-privkey other-ca-key.pem --template ca.tmpl "
        "--outfile other-ca.pem",
        "certtool --generate-privkey --key-type=ecdsa --outfile server-key.pem",
        "certtool --generate-certificate --load-privkey server-key.pem --load-ca-certificate "
        "ca.pem --load-ca-privkey ca-key.pem --template server.tmpl --outfile server.pem",
    };

    snprintf(p->dir, sizeof(p->dir), "%s", dir_template);
    if (!mkdtemp(p->dir))
        return -1;
    if (test_pki_write(p, "ca.tmpl",
                       "cn = \"vdi test CA\"\nca\ncert_signing_key\nexpiration_days = 2\n", NULL,
                       0) < 0 ||
        test_pki_write(p, "server.tmpl",
                       "cn = \"vdi.test\"\ndns_name = \"vdi.test\"\ndns_name = \"localhost\"\n"
                       "ip_address = \"127.0.0.1\"\ntls_www_server\nsigning_key\n"
                       "encryption_key\nexpiration_days = 2\n",
                       NULL, 0) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (in_dir(p, commands[i]) < 0)
            return -1;
    snprintf(p->ca, sizeof(p->ca), "%s/ca.pem", p->dir);
    snprintf(p->ca_key, sizeof(p->ca_key), "%s/ca-key.pem", p->dir);
    snprintf(p->other_ca, sizeof(p->other_ca), "%s/other-ca.pem", p->dir);
    snprintf(p->other_ca_key, sizeof(p->other_ca_key), "%s/other-ca-key.pem", p->dir);
    snprintf(p->cert, sizeof(p->cert), "%s/server.pem", p->dir);
    snprintf(p->key, sizeof(p->key), "%s/server-key.pem", p->dir);
    return 0;
}

void test_pki_remove(struct test_pki *p)
{
    if (!p->dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test-pki: could not remove %s\n", p->dir);
    p->dir[0] = '\0';
}
