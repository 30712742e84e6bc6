/* The one place libvirt lives (virt.h). */
#include "virt.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Volume name of a user's overlay in the pool. */
#define VIRT_VOLUME_SUFFIX ".qcow2"

/* Names of desktops a thread is working on; the list nodes live on those threads' stacks. */
struct busy_name {
    const char *name;
    struct busy_name *next;
};

struct virt {
    virConnectPtr conn;
    bool has_storage;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct busy_name *busy;
};

/* ---- errors ---- */

static void virt_error_silent(void *userdata, virErrorPtr error)
{
    (void)userdata;
    (void)error; /* libvirt would print to stderr; callers report with its message instead */
}

static int virt_fail(struct virt_error *err, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int virt_fail(struct virt_error *err, int r, const char *fmt, ...)
{
    va_list ap;
    char what[256];
    const virError *e = virGetLastError();

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (err) {
        if (e && e->message)
            snprintf(err->message, sizeof(err->message), "%s: %s", what, e->message);
        else
            snprintf(err->message, sizeof(err->message), "%s", what);
    }
    virResetLastError();
    return r;
}

static bool last_error_is(int code)
{
    const virError *e = virGetLastError();
    return e && e->code == code;
}

/* ---- libvirt's event loop: one joinable thread per process while any virt is open ---- */

static pthread_mutex_t event_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned event_users;
static bool event_registered;
static pthread_t event_thread;
static atomic_bool event_quit;

static void *event_thread_run(void *arg)
{
    (void)arg;
    while (!atomic_load(&event_quit))
        if (virEventRunDefaultImpl() < 0)
            log_debug("libvirt event loop iteration failed: %s", virGetLastErrorMessage());
    return NULL;
}

static void event_wakeup(int timer, void *opaque)
{
    (void)opaque;
    virEventRemoveTimeout(timer);
}

static int event_loop_ref(void)
{
    int r = 0;

    pthread_mutex_lock(&event_lock);
    if (!event_registered) {
        virSetErrorFunc(NULL, virt_error_silent);
        if (virEventRegisterDefaultImpl() < 0) {
            r = -EIO;
            goto out;
        }
        event_registered = true;
    }
    if (event_users == 0) {
        atomic_store(&event_quit, false);
        r = -pthread_create(&event_thread, NULL, event_thread_run, NULL);
        if (r < 0)
            goto out;
        pthread_setname_np(event_thread, "vdi-libvirt-ev");
    }
    event_users++;
out:
    pthread_mutex_unlock(&event_lock);
    return r;
}

static void event_loop_unref(void)
{
    pthread_mutex_lock(&event_lock);
    if (event_users > 0 && --event_users == 0) {
        atomic_store(&event_quit, true);
        /* A zero timeout makes virEventRunDefaultImpl() return at once. */
        if (virEventAddTimeout(0, event_wakeup, NULL, NULL) < 0)
            log_debug("cannot wake libvirt event loop: %s", virGetLastErrorMessage());
        pthread_join(event_thread, NULL);
    }
    pthread_mutex_unlock(&event_lock);
}

/* ---- connection ---- */

int virt_embed_prepare(const char *root, struct virt_error *err)
{
    static const char conf[] =
        "# Written by vdi-broker for its embedded libvirt (qemu:///embed); edit freely.\n"
        "# No virtlogd: QEMU writes serial console logs itself.\n"
        "stdio_handler = \"file\"\n";
    _cleanup_(freep) char *etc = NULL;
    _cleanup_(freep) char *path = NULL;
    _cleanup_(closep) int fd = -1;

    if (asprintf(&etc, "%s/etc", root) < 0 || asprintf(&path, "%s/qemu.conf", etc) < 0)
        return -ENOMEM;
    if (mkdir(root, 0755) < 0 && errno != EEXIST)
        return virt_fail(err, -errno, "cannot create %s: %s", root, strerror(errno));
    if (mkdir(etc, 0755) < 0 && errno != EEXIST)
        return virt_fail(err, -errno, "cannot create %s: %s", etc, strerror(errno));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && errno == EEXIST)
        return 0;
    if (fd < 0)
        return virt_fail(err, -errno, "cannot create %s: %s", path, strerror(errno));
    if (write(fd, conf, sizeof(conf) - 1) != (ssize_t)(sizeof(conf) - 1)) {
        unlink(path);
        return virt_fail(err, -EIO, "cannot write %s", path);
    }
    return 0;
}

int virt_new(const char *uri, struct virt **ret, struct virt_error *err)
{
    struct virt *v;
    int r;

    r = event_loop_ref();
    if (r < 0)
        return virt_fail(err, r, "cannot start libvirt event loop");

    v = calloc(1, sizeof(*v));
    if (!v) {
        event_loop_unref();
        return -ENOMEM;
    }
    pthread_mutex_init(&v->lock, NULL);
    pthread_cond_init(&v->cond, NULL);

    v->conn = virConnectOpen(uri);
    if (!v->conn) {
        r = virt_fail(err, -EIO, "cannot open libvirt connection %s", uri);
        virt_free(v);
        return r;
    }
    /* Only remote drivers know keepalive; local ones report "not supported". */
    if (virConnectSetKeepAlive(v->conn, 5, 3) < 0) {
        log_debug("libvirt keepalive not used for %s: %s", uri, virGetLastErrorMessage());
        virResetLastError();
    }
    *ret = v;
    return 0;
}

void virt_free(struct virt *v)
{
    if (!v)
        return;
    if (v->conn)
        virConnectClose(v->conn);
    pthread_cond_destroy(&v->cond);
    pthread_mutex_destroy(&v->lock);
    free(v);
    event_loop_unref();
}

/* ---- per-desktop serialisation ---- */

static void desktop_lock(struct virt *v, struct busy_name *node, const char *name)
{
    pthread_mutex_lock(&v->lock);
    for (;;) {
        bool taken = false;
        for (struct busy_name *b = v->busy; b; b = b->next)
            if (streq(b->name, name))
                taken = true;
        if (!taken)
            break;
        pthread_cond_wait(&v->cond, &v->lock);
    }
    node->name = name;
    node->next = v->busy;
    v->busy = node;
    pthread_mutex_unlock(&v->lock);
}

static void desktop_unlock(struct virt *v, struct busy_name *node)
{
    pthread_mutex_lock(&v->lock);
    for (struct busy_name **p = &v->busy; *p; p = &(*p)->next)
        if (*p == node) {
            *p = node->next;
            break;
        }
    pthread_cond_broadcast(&v->cond);
    pthread_mutex_unlock(&v->lock);
}

/* ---- XML ---- */

static void xml_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static bool empty(const char *s)
{
    return !s || !*s;
}

int virt_desktop_name(const char *user, char *buf, size_t size)
{
    if (!user || !username_is_valid(user))
        return -EINVAL;
    int n = snprintf(buf, size, VIRT_NAME_PREFIX "%s", user);
    if (n < 0 || (size_t)n >= size)
        return -EINVAL;
    return 0;
}

int virt_desktop_xml(const struct virt_template *t, const char *user, const char *disk_path,
                     const char *created, char **ret)
{
    char name[VIRT_NAME_MAX];
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    int r;

    r = virt_desktop_name(user, name, sizeof(name));
    if (r < 0)
        return r;
    if (empty(t->virt_type) || empty(t->disk) || empty(disk_path) || empty(t->console_dir) ||
        t->memory_mib <= 0 || t->vcpus <= 0)
        return -EINVAL;

    f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;

    fputs("<domain type='", f);
    xml_escape(f, t->virt_type);
    fputs("'>\n  <name>", f);
    xml_escape(f, name);
    fputs("</name>\n", f);

    fputs("  <metadata>\n    <" VIRT_METADATA_PREFIX ":desktop xmlns:" VIRT_METADATA_PREFIX
          "='" VIRT_METADATA_URI "'>\n      <" VIRT_METADATA_PREFIX ":owner>",
          f);
    xml_escape(f, user);
    fputs("</" VIRT_METADATA_PREFIX ":owner>\n      <" VIRT_METADATA_PREFIX ":template>", f);
    xml_escape(f, t->disk);
    fputs("</" VIRT_METADATA_PREFIX ":template>\n      <" VIRT_METADATA_PREFIX ":created>", f);
    xml_escape(f, created);
    fputs("</" VIRT_METADATA_PREFIX ":created>\n    </" VIRT_METADATA_PREFIX ":desktop>\n"
          "  </metadata>\n",
          f);

    fprintf(f, "  <memory unit='MiB'>%d</memory>\n  <vcpu>%d</vcpu>\n", t->memory_mib, t->vcpus);
    fputs("  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n", f);
    if (!empty(t->kernel)) {
        fputs("    <kernel>", f);
        xml_escape(f, t->kernel);
        fputs("</kernel>\n", f);
        if (!empty(t->initrd)) {
            fputs("    <initrd>", f);
            xml_escape(f, t->initrd);
            fputs("</initrd>\n", f);
        }
        if (!empty(t->cmdline)) {
            fputs("    <cmdline>", f);
            xml_escape(f, t->cmdline);
            fputs("</cmdline>\n", f);
        }
    } else
        fputs("    <boot dev='hd'/>\n", f);
    fputs("  </os>\n  <features><acpi/></features>\n", f);
    fputs("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n"
          "  <on_crash>destroy</on_crash>\n",
          f);

    fputs("  <devices>\n    <disk type='file' device='disk'>\n"
          "      <driver name='qemu' type='qcow2'/>\n      <source file='",
          f);
    xml_escape(f, disk_path);
    fputs("'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n", f);
    fputs("    <graphics type='vnc'><listen type='none'/></graphics>\n", f);
    fputs("    <video><model type='vga'/></video>\n", f);
    fputs("    <input type='keyboard' bus='ps2'/>\n    <input type='tablet' bus='usb'/>\n", f);
    for (int i = 0; i < 2; i++) {
        fputs(i == 0 ? "    <serial type='file'>\n" : "    <console type='file'>\n", f);
        fputs("      <source path='", f);
        xml_escape(f, t->console_dir);
        fputc('/', f);
        xml_escape(f, name);
        fputs(".log'/>\n", f);
        fputs(i == 0 ? "      <target port='0'/>\n    </serial>\n"
                     : "      <target type='serial' port='0'/>\n    </console>\n",
              f);
    }
    fputs("    <memballoon model='none'/>\n  </devices>\n</domain>\n", f);

    if (ferror(f)) {
        fclose(f);
        free(buf);
        return -ENOMEM;
    }
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    *ret = buf;
    return 0;
}

static int volume_xml(const struct virt_template *t, const char *volname, char **ret)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return -ENOMEM;
    fputs("<volume>\n  <name>", f);
    xml_escape(f, volname);
    fprintf(f, "</name>\n  <capacity unit='bytes'>%" PRIu64 "</capacity>\n", t->disk_size);
    fputs("  <target>\n    <format type='qcow2'/>\n"
          "    <permissions><mode>0600</mode></permissions>\n  </target>\n"
          "  <backingStore>\n    <path>",
          f);
    xml_escape(f, t->disk);
    fprintf(f, "</path>\n    <format type='%s'/>\n  </backingStore>\n</volume>\n",
            image_format_to_string(t->disk_format));
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    *ret = buf;
    return 0;
}

/* ---- storage ---- */

int virt_pool_ensure(struct virt *v, const char *disk_dir, struct virt_error *err)
{
    virStoragePoolPtr pool;
    char *xml = NULL;
    size_t len = 0;
    int r = 0, active;

    pool = virStoragePoolLookupByName(v->conn, VIRT_POOL_NAME);
    if (!pool && last_error_is(VIR_ERR_NO_SUPPORT)) {
        virResetLastError();
        v->has_storage = false;
        return 0;
    }
    v->has_storage = true;

    if (!pool) {
        if (!last_error_is(VIR_ERR_NO_STORAGE_POOL))
            return virt_fail(err, -EIO, "cannot look up storage pool %s", VIRT_POOL_NAME);
        virResetLastError();

        FILE *f = open_memstream(&xml, &len);
        if (!f)
            return -ENOMEM;
        fputs("<pool type='dir'>\n  <name>" VIRT_POOL_NAME "</name>\n  <target>\n    <path>", f);
        xml_escape(f, disk_dir);
        fputs("</path>\n  </target>\n</pool>\n", f);
        if (fclose(f) != 0) {
            free(xml);
            return -ENOMEM;
        }
        pool = virStoragePoolDefineXML(v->conn, xml, 0);
        free(xml);
        if (!pool)
            return virt_fail(err, -EIO, "cannot define storage pool %s", VIRT_POOL_NAME);
        if (virStoragePoolBuild(pool, 0) < 0) {
            r = virt_fail(err, -EIO, "cannot build storage pool %s", VIRT_POOL_NAME);
            goto out;
        }
        if (virStoragePoolSetAutostart(pool, 1) < 0)
            virResetLastError(); /* nice to have */
    } else {
        /* Ours only if it points at our directory. */
        _cleanup_(freep) char *desc = virStoragePoolGetXMLDesc(pool, 0);
        _cleanup_(freep) char *want = NULL;
        if (!desc) {
            r = virt_fail(err, -EIO, "cannot read storage pool %s", VIRT_POOL_NAME);
            goto out;
        }
        if (asprintf(&want, "<path>%s</path>", disk_dir) < 0) {
            want = NULL;
            r = -ENOMEM;
            goto out;
        }
        if (!strstr(desc, want)) {
            r = virt_fail(err, -EEXIST, "storage pool %s exists and does not use %s",
                          VIRT_POOL_NAME, disk_dir);
            goto out;
        }
    }

    active = virStoragePoolIsActive(pool);
    if (active < 0) {
        r = virt_fail(err, -EIO, "cannot query storage pool %s", VIRT_POOL_NAME);
        goto out;
    }
    if (!active && virStoragePoolCreate(pool, 0) < 0) {
        r = virt_fail(err, -EIO, "cannot start storage pool %s", VIRT_POOL_NAME);
        goto out;
    }
    if (active && virStoragePoolRefresh(pool, 0) < 0)
        virResetLastError();
out:
    virStoragePoolFree(pool);
    return r;
}

/* Without a storage driver: qemu-img create -f qcow2 -b BASE -F FMT PATH, no shell. */
static int overlay_create_qemu_img(const struct virt_template *t, const char *path,
                                   struct virt_error *err)
{
    static const char *const candidates[] = {"/usr/bin/qemu-img", "/usr/local/bin/qemu-img"};
    const char *qemu_img = NULL;
    char *argv[] = {"qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-b",
                    (char *)t->disk,
                    "-F",
                    (char *)image_format_to_string(t->disk_format),
                    (char *)path,
                    NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int pipefd[2], r, status;
    pid_t pid;
    char out[256];
    size_t got = 0;

    for (size_t i = 0; i < ARRAY_SIZE(candidates) && !qemu_img; i++)
        if (access(candidates[i], X_OK) == 0)
            qemu_img = candidates[i];
    if (!qemu_img)
        return virt_fail(err, -ENOENT, "no storage driver and qemu-img not found");

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return virt_fail(err, -errno, "pipe2 failed");

    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);

    r = -posix_spawn(&pid, qemu_img, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    safe_close(pipefd[1]);
    if (r < 0) {
        safe_close(pipefd[0]);
        return virt_fail(err, r, "cannot run %s", qemu_img);
    }

    for (;;) {
        ssize_t n = read(pipefd[0], out + got, sizeof(out) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof(out) - 1) {
            char sink[256]; /* drain the rest so the child never blocks */
            while (read(pipefd[0], sink, sizeof(sink)) > 0)
                ;
            break;
        }
    }
    out[got] = 0;
    safe_close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return virt_fail(err, -errno, "waitpid for qemu-img failed");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        out[strcspn(out, "\n")] = 0;
        unlink(path);
        return virt_fail(err, -EIO, "qemu-img create %s failed: %s", path, out);
    }
    if (chmod(path, 0600) < 0)
        return virt_fail(err, -errno, "chmod %s failed", path);
    return 0;
}

/* The overlay for name: existing or new. *ret_path is malloc'd. */
static int overlay_ensure(struct virt *v, const struct virt_template *t, const char *name,
                          char **ret_path, struct virt_error *err)
{
    char volname[VIRT_NAME_MAX + sizeof(VIRT_VOLUME_SUFFIX)];
    virStoragePoolPtr pool = NULL;
    virStorageVolPtr vol = NULL;
    char *path = NULL;
    int r = 0;

    snprintf(volname, sizeof(volname), "%s" VIRT_VOLUME_SUFFIX, name);

    if (!v->has_storage) {
        struct stat st;
        if (asprintf(&path, "%s/%s", t->disk_dir, volname) < 0)
            return -ENOMEM;
        if (lstat(path, &st) == 0) {
            if (!S_ISREG(st.st_mode)) {
                r = virt_fail(err, -EEXIST, "%s exists and is not a regular file", path);
                free(path);
                return r;
            }
        } else {
            r = overlay_create_qemu_img(t, path, err);
            if (r < 0) {
                free(path);
                return r;
            }
        }
        *ret_path = path;
        return 0;
    }

    pool = virStoragePoolLookupByName(v->conn, VIRT_POOL_NAME);
    if (!pool)
        return virt_fail(err, -EIO, "cannot look up storage pool %s", VIRT_POOL_NAME);
    vol = virStorageVolLookupByName(pool, volname);
    if (!vol) {
        _cleanup_(freep) char *xml = NULL;
        if (!last_error_is(VIR_ERR_NO_STORAGE_VOL)) {
            r = virt_fail(err, -EIO, "cannot look up volume %s", volname);
            goto out;
        }
        virResetLastError();
        r = volume_xml(t, volname, &xml);
        if (r < 0)
            goto out;
        vol = virStorageVolCreateXML(pool, xml, 0);
        if (!vol) {
            r = virt_fail(err, -EIO, "cannot create volume %s", volname);
            goto out;
        }
    }
    path = virStorageVolGetPath(vol);
    if (!path) {
        r = virt_fail(err, -EIO, "cannot get path of volume %s", volname);
        goto out;
    }
    *ret_path = path;
out:
    if (vol)
        virStorageVolFree(vol);
    virStoragePoolFree(pool);
    return r;
}

/* ---- domains ---- */

/* 0 when dom carries our metadata with owner user; -EEXIST otherwise. */
static int domain_check_ours(virDomainPtr dom, const char *name, const char *user,
                             struct virt_error *err)
{
    _cleanup_(freep) char *meta = NULL;
    _cleanup_(freep) char *plain = NULL;
    _cleanup_(freep) char *prefixed = NULL;

    meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VIRT_METADATA_URI, 0);
    if (!meta) {
        if (last_error_is(VIR_ERR_NO_DOMAIN_METADATA))
            return virt_fail(err, -EEXIST, "domain %s exists and is not managed by vdi", name);
        return virt_fail(err, -EIO, "cannot read metadata of domain %s", name);
    }
    /* libvirt returns the element without our prefix; user names need no escaping
     * (username_is_valid), so a plain search is exact. */
    if (asprintf(&plain, "<owner>%s</owner>", user) < 0) {
        plain = NULL;
        return -ENOMEM;
    }
    if (asprintf(&prefixed, "<" VIRT_METADATA_PREFIX ":owner>%s</" VIRT_METADATA_PREFIX ":owner>",
                 user) < 0) {
        prefixed = NULL;
        return -ENOMEM;
    }
    if (!strstr(meta, plain) && !strstr(meta, prefixed))
        return virt_fail(err, -EEXIST, "domain %s is managed by vdi for another owner", name);
    return 0;
}

/* Looks up our domain vdi-<user>. -ENOENT when missing. */
static int domain_lookup(struct virt *v, const char *name, const char *user, virDomainPtr *ret,
                         struct virt_error *err)
{
    virDomainPtr dom = virDomainLookupByName(v->conn, name);
    int r;

    if (!dom) {
        if (last_error_is(VIR_ERR_NO_DOMAIN)) {
            virResetLastError();
            return -ENOENT;
        }
        return virt_fail(err, -EIO, "cannot look up domain %s", name);
    }
    r = domain_check_ours(dom, name, user, err);
    if (r < 0) {
        virDomainFree(dom);
        return r;
    }
    *ret = dom;
    return 0;
}

static void iso8601_now(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;

    if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "1970-01-01T00:00:00Z");
}

static int desktop_define_locked(struct virt *v, const struct virt_template *t, const char *name,
                                 const char *user, bool *ret_created, struct virt_error *err)
{
    _cleanup_(freep) char *path = NULL;
    _cleanup_(freep) char *xml = NULL;
    virDomainPtr dom = NULL;
    char created[32];
    int r;

    r = domain_lookup(v, name, user, &dom, err);
    if (r == 0) {
        virDomainFree(dom);
        if (ret_created)
            *ret_created = false;
        return 0;
    }
    if (r != -ENOENT)
        return r;

    r = overlay_ensure(v, t, name, &path, err);
    if (r < 0)
        return r;
    iso8601_now(created, sizeof(created));
    r = virt_desktop_xml(t, user, path, created, &xml);
    if (r < 0)
        return virt_fail(err, r, "cannot write domain XML for %s", name);
    dom = virDomainDefineXML(v->conn, xml);
    if (!dom)
        return virt_fail(err, -EIO, "cannot define domain %s", name);
    virDomainFree(dom);
    if (ret_created)
        *ret_created = true;
    return 0;
}

int virt_desktop_define(struct virt *v, const struct virt_template *t, const char *user,
                        bool *ret_created, struct virt_error *err)
{
    char name[VIRT_NAME_MAX];
    struct busy_name node;
    int r;

    r = virt_desktop_name(user, name, sizeof(name));
    if (r < 0)
        return virt_fail(err, r, "invalid user name");
    desktop_lock(v, &node, name);
    r = desktop_define_locked(v, t, name, user, ret_created, err);
    desktop_unlock(v, &node);
    return r;
}

static int desktop_start_locked(struct virt *v, const char *name, const char *user,
                                bool *ret_started, struct virt_error *err)
{
    virDomainPtr dom = NULL;
    int r, state, reason;
    bool started = false;

    r = domain_lookup(v, name, user, &dom, err);
    if (r == -ENOENT)
        return virt_fail(err, r, "domain %s is not defined", name);
    if (r < 0)
        return r;

    if (virDomainGetState(dom, &state, &reason, 0) < 0) {
        r = virt_fail(err, -EIO, "cannot get state of domain %s", name);
        goto out;
    }
    switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:
        break;
    case VIR_DOMAIN_PAUSED:
        if (virDomainResume(dom) < 0)
            r = virt_fail(err, -EIO, "cannot resume domain %s", name);
        else
            started = true;
        break;
    case VIR_DOMAIN_PMSUSPENDED:
        if (virDomainPMWakeup(dom, 0) < 0)
            r = virt_fail(err, -EIO, "cannot wake domain %s", name);
        else
            started = true;
        break;
    default: /* shut off, crashed, shutting down, no state */
        if (virDomainCreate(dom) < 0)
            r = virt_fail(err, -EIO, "cannot start domain %s", name);
        else
            started = true;
        break;
    }
    if (r == 0 && ret_started)
        *ret_started = started;
out:
    virDomainFree(dom);
    return r;
}

int virt_desktop_start(struct virt *v, const char *user, bool *ret_started, struct virt_error *err)
{
    char name[VIRT_NAME_MAX];
    struct busy_name node;
    int r;

    r = virt_desktop_name(user, name, sizeof(name));
    if (r < 0)
        return virt_fail(err, r, "invalid user name");
    desktop_lock(v, &node, name);
    r = desktop_start_locked(v, name, user, ret_started, err);
    desktop_unlock(v, &node);
    return r;
}

int virt_desktop_open_display(struct virt *v, const char *user, int *ret_fd, struct virt_error *err)
{
    char name[VIRT_NAME_MAX];
    virDomainPtr dom = NULL;
    int r, fd, active;

    r = virt_desktop_name(user, name, sizeof(name));
    if (r < 0)
        return virt_fail(err, r, "invalid user name");
    r = domain_lookup(v, name, user, &dom, err);
    if (r == -ENOENT)
        return virt_fail(err, r, "domain %s is not defined", name);
    if (r < 0)
        return r;

    active = virDomainIsActive(dom);
    if (active <= 0) {
        r = active < 0 ? virt_fail(err, -EIO, "cannot query domain %s", name)
                       : virt_fail(err, -ENOTCONN, "domain %s is not running", name);
        goto out;
    }
    fd = virDomainOpenGraphicsFD(dom, 0, VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH);
    if (fd < 0) {
        r = virt_fail(err, last_error_is(VIR_ERR_NO_SUPPORT) ? -EOPNOTSUPP : -EIO,
                      "cannot open display of domain %s", name);
        goto out;
    }
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        r = virt_fail(err, -errno, "cannot set FD_CLOEXEC on display of %s", name);
        safe_close(fd);
        goto out;
    }
    *ret_fd = fd;
out:
    virDomainFree(dom);
    return r;
}
