/* CA and server certificate generation with GnuTLS's x509 API (certs.h). */
#include "certs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define CA_DAYS 3650
#define SERVER_DAYS 825
#define RENEW_BEFORE_S (30 * 24 * 3600)
#define MAX_NAMES 32
#define MAX_PEM (256 * 1024)

static int set_error(char *error, size_t size, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int set_error(char *error, size_t size, int r, const char *fmt, ...)
{
    va_list ap;

    if (error && size > 0) {
        va_start(ap, fmt);
        vsnprintf(error, size, fmt, ap);
        va_end(ap);
    }
    return r;
}

static int gnutls_to_errno(int g)
{
    switch (g) {
    case GNUTLS_E_MEMORY_ERROR:
        return -ENOMEM;
    case GNUTLS_E_FILE_ERROR:
        return -EIO;
    default:
        return -EINVAL;
    }
}

static void datum_wipe_free(gnutls_datum_t *d)
{
    if (d->data) {
        explicit_bzero(d->data, d->size);
        gnutls_free(d->data);
    }
    d->data = NULL;
    d->size = 0;
}

static int read_file(const char *path, gnutls_datum_t *ret)
{
    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    unsigned char *buf;
    size_t got = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > MAX_PEM)
        return -EINVAL;
    buf = gnutls_malloc((size_t)st.st_size);
    if (!buf)
        return -ENOMEM;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int r = n < 0 ? -errno : -EIO;
            explicit_bzero(buf, got);
            gnutls_free(buf);
            return r;
        }
        got += (size_t)n;
    }
    ret->data = buf;
    ret->size = (unsigned)got;
    return 0;
}

/* Writes atomically (temp file + rename) with mode. */
static int write_file(const char *path, const gnutls_datum_t *d, mode_t mode)
{
    _cleanup_(freep) char *tmp = NULL;
    int fd, r = 0;
    size_t done = 0;

    if (asprintf(&tmp, "%s.tmp", path) < 0) {
        tmp = NULL;
        return -ENOMEM;
    }
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -errno;
    while (done < d->size) {
        ssize_t n = write(fd, d->data + done, d->size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        done += (size_t)n;
    }
    if (r == 0 && fchmod(fd, mode) < 0)
        r = -errno;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

static void fingerprint(gnutls_x509_crt_t crt, char out[CERTS_FINGERPRINT_SIZE])
{
    unsigned char sha[32];
    size_t size = sizeof(sha);
    char *p = out;

    out[0] = 0;
    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, sha, &size) < 0 ||
        size != sizeof(sha))
        return;
    for (size_t i = 0; i < size; i++)
        p += sprintf(p, i ? ":%02X" : "%02X", sha[i]);
}

static int load_crt(const char *path, gnutls_x509_crt_t *ret)
{
    gnutls_datum_t d = {0};
    gnutls_x509_crt_t crt;
    int r, g;

    r = read_file(path, &d);
    if (r < 0)
        return r;
    g = gnutls_x509_crt_init(&crt);
    if (g < 0) {
        gnutls_free(d.data);
        return gnutls_to_errno(g);
    }
    g = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
    gnutls_free(d.data);
    if (g < 0) {
        gnutls_x509_crt_deinit(crt);
        return gnutls_to_errno(g);
    }
    *ret = crt;
    return 0;
}

static int load_key(const char *path, gnutls_x509_privkey_t *ret)
{
    gnutls_datum_t d = {0};
    gnutls_x509_privkey_t key;
    int r, g;

    r = read_file(path, &d);
    if (r < 0)
        return r;
    g = gnutls_x509_privkey_init(&key);
    if (g < 0) {
        datum_wipe_free(&d);
        return gnutls_to_errno(g);
    }
    g = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
    datum_wipe_free(&d);
    if (g < 0) {
        gnutls_x509_privkey_deinit(key);
        return gnutls_to_errno(g);
    }
    *ret = key;
    return 0;
}

void certs_done(struct certs *c)
{
    if (!c)
        return;
    free(c->cert_file);
    free(c->key_file);
    free(c->ca_file);
    memset(c, 0, sizeof(*c));
}

int certs_load(const char *cert_file, const char *key_file, struct certs *ret, char *error,
               size_t error_size)
{
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_x509_crt_t crt = NULL;
    int r, g;

    memset(ret, 0, sizeof(*ret));
    r = load_crt(cert_file, &crt);
    if (r < 0)
        return set_error(error, error_size, r, "tls_cert: cannot load '%s': %s", cert_file,
                         strerror(-r));
    fingerprint(crt, ret->server_sha256);
    gnutls_x509_crt_deinit(crt);

    /* Does the key belong to the certificate? GnuTLS checks when loading both. */
    g = gnutls_certificate_allocate_credentials(&cred);
    if (g < 0)
        return gnutls_to_errno(g);
    g = gnutls_certificate_set_x509_key_file2(cred, cert_file, key_file, GNUTLS_X509_FMT_PEM, NULL,
                                              0);
    gnutls_certificate_free_credentials(cred);
    if (g < 0)
        return set_error(error, error_size, -EINVAL, "tls_key: '%s' does not load with '%s': %s",
                         key_file, cert_file, gnutls_strerror(g));

    ret->cert_file = strdup(cert_file);
    ret->key_file = strdup(key_file);
    if (!ret->cert_file || !ret->key_file) {
        certs_done(ret);
        return -ENOMEM;
    }
    return 0;
}

/* ---- generation ---- */

struct names {
    char *dns[MAX_NAMES];
    size_t n_dns;
    unsigned char ip[MAX_NAMES][16];
    unsigned ip_len[MAX_NAMES];
    size_t n_ip;
    char *ip_text[MAX_NAMES];
    char *storage;
};

static int names_add(struct names *n, char *name)
{
    unsigned char buf[16];

    if (!*name)
        return 0;
    if (inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1) {
        if (n->n_ip == MAX_NAMES)
            return -E2BIG;
        bool v4 = inet_pton(AF_INET, name, buf) == 1;
        memcpy(n->ip[n->n_ip], buf, v4 ? 4 : 16);
        n->ip_len[n->n_ip] = v4 ? 4 : 16;
        n->ip_text[n->n_ip++] = name;
        return 0;
    }
    for (const char *p = name; *p; p++)
        if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
              *p == '-' || *p == '.' || *p == '*'))
            return -EINVAL;
    if (n->n_dns == MAX_NAMES)
        return -E2BIG;
    n->dns[n->n_dns++] = name;
    return 0;
}

/* localhost, the host name, 127.0.0.1, ::1 and the configured extras. */
static int names_build(struct names *n, const char *extra, char *error, size_t error_size)
{
    char host[256] = "";
    size_t len;
    char *p;
    int r;

    memset(n, 0, sizeof(*n));
    if (gethostname(host, sizeof(host) - 1) < 0)
        host[0] = 0;
    len = strlen(host) + strlen(extra ? extra : "") + 64;
    n->storage = calloc(1, len);
    if (!n->storage)
        return -ENOMEM;
    snprintf(n->storage, len, "localhost,127.0.0.1,::1,%s,%s", host, extra ? extra : "");
    p = n->storage;
    while (p) {
        char *name = p;
        p = strchr(p, ',');
        if (p)
            *p++ = 0;
        while (*name == ' ')
            name++;
        for (char *e = name + strlen(name); e > name && e[-1] == ' ';)
            *--e = 0;
        bool dup = false;
        for (size_t i = 0; i < n->n_dns; i++)
            dup |= strcasecmp(n->dns[i], name) == 0;
        for (size_t i = 0; i < n->n_ip; i++)
            dup |= streq(n->ip_text[i], name);
        if (dup)
            continue;
        r = names_add(n, name);
        if (r < 0)
            return set_error(error, error_size, r,
                             "tls_hostnames: '%s' is not a host name or "
                             "address (or too many names)",
                             name);
    }
    return 0;
}

static void names_done(struct names *n)
{
    free(n->storage);
}

static int random_serial(gnutls_x509_crt_t crt)
{
    unsigned char serial[16];
    int g = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));

    if (g < 0)
        return g;
    serial[0] &= 0x7f; /* positive */
    serial[0] |= 0x01; /* no leading zero byte */
    return gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
}

static int new_key(gnutls_x509_privkey_t *ret)
{
    gnutls_x509_privkey_t key;
    int g = gnutls_x509_privkey_init(&key);

    if (g < 0)
        return g;
    g = gnutls_x509_privkey_generate2(key, GNUTLS_PK_ECDSA,
                                      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0);
    if (g < 0) {
        gnutls_x509_privkey_deinit(key);
        return g;
    }
    *ret = key;
    return 0;
}

static int sign(gnutls_x509_crt_t crt, gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key)
{
    gnutls_privkey_t pk;
    int g = gnutls_privkey_init(&pk);

    if (g < 0)
        return g;
    g = gnutls_privkey_import_x509(pk, issuer_key, 0);
    if (g >= 0)
        g = gnutls_x509_crt_privkey_sign(crt, issuer, pk, GNUTLS_DIG_SHA256, 0);
    gnutls_privkey_deinit(pk);
    return g;
}

static int set_key_ids(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
    unsigned char id[64];
    size_t size = sizeof(id);
    int g = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA1, id, &size);

    if (g < 0)
        return g;
    return gnutls_x509_crt_set_subject_key_id(crt, id, size);
}

/* A CA (issuer == NULL, self-signed) or a server certificate for names. */
static int make_crt(gnutls_x509_privkey_t key, gnutls_x509_crt_t issuer,
                    gnutls_x509_privkey_t issuer_key, const struct names *names,
                    gnutls_x509_crt_t *ret)
{
    gnutls_x509_crt_t crt;
    time_t now = time(NULL);
    bool ca = !issuer;
    const char *cn = ca ? "vdi broker CA" : (names->n_dns > 0 ? names->dns[0] : "localhost");
    int g;

    g = gnutls_x509_crt_init(&crt);
    if (g < 0)
        return g;
#define TRY(x)                                                                                     \
    do {                                                                                           \
        g = (x);                                                                                   \
        if (g < 0)                                                                                 \
            goto fail;                                                                             \
    } while (0)
    TRY(gnutls_x509_crt_set_version(crt, 3));
    TRY(random_serial(crt));
    TRY(gnutls_x509_crt_set_activation_time(crt, now - 3600));
    TRY(gnutls_x509_crt_set_expiration_time(crt, now + (time_t)(ca ? CA_DAYS : SERVER_DAYS) * 24 *
                                                           3600));
    TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)));
    TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, "vdi", 3));
    TRY(gnutls_x509_crt_set_key(crt, key));
    TRY(set_key_ids(crt, key));
    if (ca) {
        TRY(gnutls_x509_crt_set_basic_constraints(crt, 1, 0));
        TRY(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN));
        TRY(sign(crt, crt, key));
    } else {
        unsigned char aki[64];
        size_t aki_size = sizeof(aki);

        TRY(gnutls_x509_crt_set_basic_constraints(crt, 0, -1));
        TRY(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE));
        TRY(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
        for (size_t i = 0; i < names->n_dns; i++)
            TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, names->dns[i],
                                                     strlen(names->dns[i]), GNUTLS_FSAN_APPEND));
        for (size_t i = 0; i < names->n_ip; i++)
            TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, names->ip[i],
                                                     names->ip_len[i], GNUTLS_FSAN_APPEND));
        TRY(gnutls_x509_crt_get_subject_key_id(issuer, aki, &aki_size, NULL));
        TRY(gnutls_x509_crt_set_authority_key_id(crt, aki, aki_size));
        TRY(sign(crt, issuer, issuer_key));
    }
#undef TRY
    *ret = crt;
    return 0;
fail:
    gnutls_x509_crt_deinit(crt);
    return g;
}

static int save_crt(gnutls_x509_crt_t crt, const char *path)
{
    gnutls_datum_t d = {0};
    int g = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d);
    int r;

    if (g < 0)
        return gnutls_to_errno(g);
    r = write_file(path, &d, 0644);
    gnutls_free(d.data);
    return r;
}

static int save_key(gnutls_x509_privkey_t key, const char *path)
{
    gnutls_datum_t d = {0};
    int g =
        gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d);
    int r;

    if (g < 0)
        return gnutls_to_errno(g);
    r = write_file(path, &d, 0600);
    datum_wipe_free(&d);
    return r;
}

/* Whether an existing server certificate can stay: signed by ca, valid for a while,
 * and covering every wanted name. */
static bool server_crt_usable(gnutls_x509_crt_t crt, gnutls_x509_crt_t ca, const struct names *n)
{
    unsigned status = 0;
    time_t expires = gnutls_x509_crt_get_expiration_time(crt);

    if (expires == (time_t)-1 || expires < time(NULL) + RENEW_BEFORE_S)
        return false;
    if (gnutls_x509_crt_verify(crt, &ca, 1, 0, &status) < 0 || status != 0)
        return false;
    for (size_t i = 0; i < n->n_dns; i++)
        if (!gnutls_x509_crt_check_hostname(crt, n->dns[i]))
            return false;
    for (size_t i = 0; i < n->n_ip; i++)
        if (!gnutls_x509_crt_check_ip(crt, n->ip[i], n->ip_len[i], 0))
            return false;
    return true;
}

int certs_ensure(const char *tls_dir, const char *hostnames, struct certs *ret, char *error,
                 size_t error_size)
{
    _cleanup_(freep) char *ca_key_file = NULL;
    gnutls_x509_privkey_t ca_key = NULL, key = NULL;
    gnutls_x509_crt_t ca = NULL, crt = NULL;
    struct names names;
    int r, g;

    memset(ret, 0, sizeof(*ret));
    r = names_build(&names, hostnames, error, error_size);
    if (r < 0)
        goto out;
    if (asprintf(&ret->ca_file, "%s/ca-cert.pem", tls_dir) < 0 ||
        asprintf(&ca_key_file, "%s/ca-key.pem", tls_dir) < 0 ||
        asprintf(&ret->cert_file, "%s/server-cert.pem", tls_dir) < 0 ||
        asprintf(&ret->key_file, "%s/server-key.pem", tls_dir) < 0) {
        r = -ENOMEM;
        goto out;
    }

    /* The CA: load, or make a new one (which invalidates any server certificate). */
    r = load_crt(ret->ca_file, &ca);
    if (r == 0)
        r = load_key(ca_key_file, &ca_key);
    if (r == -ENOENT) {
        if (ca) {
            gnutls_x509_crt_deinit(ca);
            ca = NULL;
        }
        g = new_key(&ca_key);
        if (g >= 0)
            g = make_crt(ca_key, NULL, NULL, &names, &ca);
        if (g < 0) {
            r = set_error(error, error_size, gnutls_to_errno(g), "cannot generate CA: %s",
                          gnutls_strerror(g));
            goto out;
        }
        r = save_key(ca_key, ca_key_file);
        if (r == 0)
            r = save_crt(ca, ret->ca_file);
        if (r < 0) {
            set_error(error, error_size, r, "cannot write CA in %s: %s", tls_dir, strerror(-r));
            goto out;
        }
        unlink(ret->cert_file);
    } else if (r < 0) {
        set_error(error, error_size, r, "cannot load CA %s / %s: %s", ret->ca_file, ca_key_file,
                  strerror(-r));
        goto out;
    }

    /* The server certificate. */
    r = load_crt(ret->cert_file, &crt);
    if (r == 0 && access(ret->key_file, R_OK) == 0 && server_crt_usable(crt, ca, &names)) {
        r = 0;
    } else {
        if (crt) {
            gnutls_x509_crt_deinit(crt);
            crt = NULL;
        }
        g = new_key(&key);
        if (g >= 0)
            g = make_crt(key, ca, ca_key, &names, &crt);
        if (g < 0) {
            r = set_error(error, error_size, gnutls_to_errno(g),
                          "cannot generate server certificate: %s", gnutls_strerror(g));
            goto out;
        }
        /* Key first: a certificate on disk always has its key. */
        r = save_key(key, ret->key_file);
        if (r == 0)
            r = save_crt(crt, ret->cert_file);
        if (r < 0) {
            set_error(error, error_size, r, "cannot write server certificate in %s: %s", tls_dir,
                      strerror(-r));
            goto out;
        }
        ret->generated = 1;
    }
    fingerprint(crt, ret->server_sha256);
    fingerprint(ca, ret->ca_sha256);
    r = 0;
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (ca)
        gnutls_x509_crt_deinit(ca);
    if (key)
        gnutls_x509_privkey_deinit(key);
    if (ca_key)
        gnutls_x509_privkey_deinit(ca_key);
    names_done(&names);
    if (r < 0)
        certs_done(ret);
    return r;
}

/* ---- re-attach tokens ---- */

static void hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

int certs_token_new(char token[CERTS_TOKEN_SIZE])
{
    unsigned char raw[32];

    if (gnutls_rnd(GNUTLS_RND_KEY, raw, sizeof(raw)) < 0)
        return -EIO;
    hex(raw, sizeof(raw), token);
    explicit_bzero(raw, sizeof(raw));
    return 0;
}

int certs_token_hash(const char *token, char hash[CERTS_TOKEN_SIZE])
{
    unsigned char digest[32];

    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), digest) < 0)
        return -EIO;
    hex(digest, sizeof(digest), hash);
    return 0;
}
