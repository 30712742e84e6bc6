/* The one place libvirt lives (virt.h). */
#include "virt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

/* An overlay is <disk_dir>/<name>.qcow2 (also its volume name in the pool). */
#define VIRT_OVERLAY_SUFFIX ".qcow2"
/* How often virt_desktop_shutdown looks whether the guest has powered off. */
#define VIRT_SHUTDOWN_POLL_MS 100
/* Longest metadata text virt_list can hand back whole (struct virt_domain_info). */
#define VIRT_META_MAX 64
/* Keepalive on the connection (remote drivers): a probe every 5 s, closed after 3 lost. */
#define VIRT_KEEPALIVE_INTERVAL_S 5
#define VIRT_KEEPALIVE_COUNT 3u
/* After a failed reopen of a lost connection, calls fail at once for this long. */
#define VIRT_REOPEN_INTERVAL_MS 1000

/* Names of desktops a thread is working on; the nodes live on those threads' stacks. */
struct busy_name {
    char name[VIRT_NAME_MAX];
    struct busy_name *next;
};

/* virt_watch's callback; shared by libvirt's registrations (one reference each, dropped
 * by libvirt's free callback) and the virt (one), so that an event in flight on libvirt's
 * thread never sees it freed. */
struct watch {
    pthread_mutex_t lock; /* held while fn runs: clearing fn waits for a call in flight */
    virt_event_fn fn;
    void *userdata;
    atomic_int refs;
};

struct virt {
    /* The connection: replaced when libvirt closed it (conn_get). Users take a reference
     * (virConnectRef) under conn_lock, so calls in flight keep a lost one alive. */
    pthread_mutex_t conn_lock;
    virConnectPtr conn;
    atomic_bool conn_lost;    /* set by the close callback */
    uint64_t reopen_after_ms; /* no reopen attempt before then */
    struct watch *watch;      /* virt_watch, or NULL */
    int event_id;             /* libvirt's id of the lifecycle registration on conn, or -1 */
    char *uri;
    char *virt_type;
    char *disk_dir;
    char *console_dir;
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

/* Fills err with our words only and returns r. */
static int set_error(struct virt_error *err, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_error(struct virt_error *err, int r, const char *fmt, ...)
{
    va_list ap;

    if (err) {
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return r;
}

/* Fills err with our words and libvirt's (its last error in this thread), returns r. */
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

/* Every public entry point starts clean: no stale libvirt error, no stale message.
 * libvirt's per-thread error slot exists only once libvirt is initialised (virInitialize
 * is idempotent and cheap after the first call); before that, virResetLastError frees
 * whatever another library keeps in the same thread-specific key. */
static void error_reset(struct virt_error *err)
{
    if (virInitialize() == 0)
        virResetLastError();
    if (err)
        err->message[0] = 0;
}

static bool empty(const char *s)
{
    return !s || !*s;
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

/* ---- names and text ---- */

static bool name_is_valid(const char *name)
{
    size_t n;

    if (empty(name))
        return false;
    n = strlen(name);
    if (n >= VIRT_NAME_MAX)
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* Text that may go into our XML: no control characters (XML 1.0 cannot carry most of
 * them, and they have no business in names and paths), shorter than max when max > 0. */
static bool text_is_valid(const char *s, size_t max)
{
    size_t n = 0;

    for (; s && s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
            return false;
    return max == 0 || n < max;
}

/* ---- XML out ---- */

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

/* <tag>escaped text</tag> on its own line. */
static void xml_element(FILE *f, const char *indent, const char *tag, const char *text)
{
    fprintf(f, "%s<%s>", indent, tag);
    xml_escape(f, text);
    fprintf(f, "</%s>\n", tag);
}

/* Closes a memstream, handing out its buffer; -ENOMEM if anything failed on the way. */
static int memstream_finish(FILE *f, char **buf, char **ret)
{
    bool failed = ferror(f);

    if (fclose(f) != 0 || failed) {
        free(*buf);
        *buf = NULL;
        return -ENOMEM;
    }
    *ret = TAKE_PTR(*buf);
    return 0;
}

struct desktop_meta {
    char pool[VIRT_META_MAX];
    char owner[VIRT_META_MAX];
    char template_name[VIRT_META_MAX];
    char created[VIRT_META_MAX];
};

/* Our metadata element. With prefixed, the form used in domain XML (prefix and namespace
 * on every element); without, the form virDomainSetMetadata wants (libvirt puts the
 * namespace on itself and refuses an element that already declares it). */
static void metadata_write(FILE *f, const char *indent, bool prefixed, const char *pool,
                           const char *owner, const char *template_name, const char *created)
{
    const char *p = prefixed ? VIRT_METADATA_PREFIX ":" : "";
    char tag[32], inner[64];

    snprintf(inner, sizeof(inner), "%s  ", indent);
    if (prefixed)
        fprintf(f, "%s<%sdesktop xmlns:" VIRT_METADATA_PREFIX "='" VIRT_METADATA_URI "'>\n", indent,
                p);
    else
        fprintf(f, "%s<desktop>\n", indent);
    snprintf(tag, sizeof(tag), "%spool", p);
    xml_element(f, inner, tag, pool);
    snprintf(tag, sizeof(tag), "%sowner", p);
    xml_element(f, inner, tag, owner);
    snprintf(tag, sizeof(tag), "%stemplate", p);
    xml_element(f, inner, tag, template_name);
    snprintf(tag, sizeof(tag), "%screated", p);
    xml_element(f, inner, tag, created);
    fprintf(f, "%s</%sdesktop>\n", indent, p);
}

/* ---- XML in: metadata libvirt hands back (hostile-ish: anyone with libvirt access
 * can write it), read with bounded copies and no allocation. ---- */

static void utf8_put(uint32_t c, char *out, size_t *len, size_t size, bool *full)
{
    char b[4];
    size_t n;

    if (c == 0 || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) || c < 0x20 || c == 0x7f)
        c = '?';
    if (c < 0x80) {
        b[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        b[0] = (char)(0xc0 | (c >> 6));
        b[1] = (char)(0x80 | (c & 0x3f));
        n = 2;
    } else if (c < 0x10000) {
        b[0] = (char)(0xe0 | (c >> 12));
        b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        b[2] = (char)(0x80 | (c & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (c >> 18));
        b[1] = (char)(0x80 | ((c >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((c >> 6) & 0x3f));
        b[3] = (char)(0x80 | (c & 0x3f));
        n = 4;
    }
    if (*full || *len + n >= size) {
        *full = true;
        return;
    }
    memcpy(out + *len, b, n);
    *len += n;
}

/* Decodes one entity at s (which starts with '&', end bounds it) into *ret; returns its
 * length, or 0 when it is not one we know (the '&' is then taken literally). */
static size_t xml_entity(const char *s, const char *end, uint32_t *ret)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    size_t avail = (size_t)(end - s);

    for (size_t i = 0; i < ARRAY_SIZE(named); i++) {
        size_t n = strlen(named[i].name);
        if (avail >= n && memcmp(s, named[i].name, n) == 0) {
            *ret = (unsigned char)named[i].c;
            return n;
        }
    }
    if (avail >= 4 && s[1] == '#') {
        bool hex = s[2] == 'x' || s[2] == 'X';
        const char *p = s + (hex ? 3 : 2);
        uint32_t c = 0;
        size_t digits = 0;

        for (; p < end && digits < 8; p++, digits++) {
            int d;
            if (*p >= '0' && *p <= '9')
                d = *p - '0';
            else if (hex && *p >= 'a' && *p <= 'f')
                d = *p - 'a' + 10;
            else if (hex && *p >= 'A' && *p <= 'F')
                d = *p - 'A' + 10;
            else
                break;
            c = c * (hex ? 16 : 10) + (uint32_t)d;
        }
        if (digits > 0 && p < end && *p == ';') {
            *ret = c; /* range checked by utf8_put */
            return (size_t)(p + 1 - s);
        }
    }
    return 0;
}

/* Copies the text s..end into out (size > 0), unescaping entities; control characters
 * become '?'; a copy cut short never ends in the middle of a UTF-8 sequence. */
static void xml_unescape(const char *s, const char *end, char *out, size_t size)
{
    size_t len = 0;
    bool full = false;

    while (s < end && !full) {
        uint32_t c;
        size_t n = *s == '&' ? xml_entity(s, end, &c) : 0;
        if (n > 0) {
            utf8_put(c, out, &len, size, &full);
            s += n;
            continue;
        }
        unsigned char b = (unsigned char)*s++;
        if (b < 0x80) {
            utf8_put(b, out, &len, size, &full);
        } else if (len + 1 < size) {
            out[len++] = (char)b; /* UTF-8 as libxml2 wrote it */
        } else {
            full = true;
        }
    }
    if (full && len > 0) {
        /* Drop a trailing sequence cut short. */
        size_t start = len;
        while (start > 0 && ((unsigned char)out[start - 1] & 0xc0) == 0x80)
            start--;
        if (start > 0 && (unsigned char)out[start - 1] >= 0xc0) {
            unsigned char lead = (unsigned char)out[start - 1];
            size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (len - (start - 1) < want)
                len = start - 1;
        }
    }
    out[len] = 0;
}

/* Text of the first element whose local name is local (any or no prefix), searched from
 * xml on; "" when missing, empty or malformed. Returns where the search stopped (to find
 * a nested element: <target> then <path>), or NULL when not found. */
static const char *xml_find_text(const char *xml, const char *local, char *out, size_t size)
{
    static const char name_chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-:";
    size_t local_len = strlen(local);
    const char *p = xml;

    out[0] = 0;
    while (p && (p = strchr(p, '<'))) {
        const char *name = ++p;
        const char *name_end = name + strspn(name, name_chars);
        const char *ln = name;

        for (const char *q = name; q < name_end; q++)
            if (*q == ':')
                ln = q + 1;
        if ((size_t)(name_end - ln) != local_len || memcmp(ln, local, local_len) != 0)
            continue;
        if (*name_end != '>' && *name_end != '/' && *name_end != ' ' && *name_end != '\t' &&
            *name_end != '\n' && *name_end != '\r')
            continue;
        const char *gt = strchr(name_end, '>');
        if (!gt)
            return NULL;
        if (gt[-1] == '/') /* <owner/> */
            return gt + 1;
        const char *text = gt + 1;
        const char *text_end = strchr(text, '<');
        if (!text_end)
            return NULL;
        xml_unescape(text, text_end, out, size);
        return text_end;
    }
    return NULL;
}

static void metadata_parse(const char *xml, struct desktop_meta *m)
{
    xml_find_text(xml, "pool", m->pool, sizeof(m->pool));
    xml_find_text(xml, "owner", m->owner, sizeof(m->owner));
    xml_find_text(xml, "template", m->template_name, sizeof(m->template_name));
    xml_find_text(xml, "created", m->created, sizeof(m->created));
}

/* ---- domain XML ---- */

bool virt_uefi_firmware(const char **ret_code, const char **ret_vars)
{
    /* Debian's ovmf package (4 MiB flash first, then the older 2 MiB pair), Fedora's
     * edk2-ovmf. Code and vars must come from the same build size. */
    static const char *const pairs[][2] = {
        {"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
        {"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
        {"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(pairs); i++)
        if (access(pairs[i][0], R_OK) == 0 && access(pairs[i][1], R_OK) == 0) {
            if (ret_code)
                *ret_code = pairs[i][0];
            if (ret_vars)
                *ret_vars = pairs[i][1];
            return true;
        }
    return false;
}

static void iso8601_now(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;

    if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "1970-01-01T00:00:00Z");
}

static void xml_os(FILE *f, const struct virt_template *t, const char *code, const char *vars)
{
    bool uefi = t->firmware == VIRT_FIRMWARE_UEFI;
    /* Linux with BIOS keeps i440fx ('pc'): the demo/test image is built for it. Windows
     * and UEFI guests get q35 (PCIe, AHCI built in, what OVMF is tested with). */
    const char *machine = t->os == VIRT_OS_WINDOWS || uefi ? "q35" : "pc";

    fprintf(f, "  <os>\n    <type arch='x86_64' machine='%s'>hvm</type>\n", machine);
    if (uefi) {
        fputs("    <loader readonly='yes' type='pflash'>", f);
        xml_escape(f, code);
        fputs("</loader>\n    <nvram template='", f);
        xml_escape(f, vars);
        fputs("'/>\n", f);
    }
    if (!empty(t->kernel)) {
        xml_element(f, "    ", "kernel", t->kernel);
        if (!empty(t->initrd))
            xml_element(f, "    ", "initrd", t->initrd);
        if (!empty(t->cmdline))
            xml_element(f, "    ", "cmdline", t->cmdline);
    } else {
        fputs("    <boot dev='hd'/>\n", f);
    }
    fputs("  </os>\n", f);
}

static void xml_features_clock(FILE *f, const struct virt_template *t, const char *virt_type)
{
    if (t->os != VIRT_OS_WINDOWS) {
        fputs("  <features>\n    <acpi/>\n  </features>\n  <clock offset='utc'/>\n", f);
        return;
    }
    /* Hyper-V enlightenments are what makes Windows usable on KVM. They are KVM features:
     * under TCG (virt_type qemu) QEMU 7.2 refuses to start with vpindex/synic/stimer
     * ("kernel doesn't allow setting HyperV VP_INDEX"), so they are left out there. */
    bool kvm = streq(virt_type, "kvm");
    fputs("  <features>\n    <acpi/>\n    <apic/>\n", f);
    if (kvm)
        fputs("    <hyperv mode='custom'>\n"
              "      <relaxed state='on'/>\n"
              "      <vapic state='on'/>\n"
              "      <spinlocks state='on' retries='8191'/>\n"
              "      <vpindex state='on'/>\n"
              "      <synic state='on'/>\n"
              "      <stimer state='on'/>\n"
              "      <reset state='on'/>\n"
              "      <frequencies state='on'/>\n"
              "    </hyperv>\n",
              f);
    /* Windows keeps the RTC in local time. */
    fputs("  </features>\n"
          "  <clock offset='localtime'>\n"
          "    <timer name='rtc' tickpolicy='catchup'/>\n"
          "    <timer name='pit' tickpolicy='delay'/>\n"
          "    <timer name='hpet' present='no'/>\n",
          f);
    if (kvm)
        fputs("    <timer name='hypervclock' present='yes'/>\n", f);
    fputs("  </clock>\n", f);
}

static void xml_devices(FILE *f, const struct virt_desktop_spec *spec, const char *disk_path,
                        const char *console_dir)
{
    bool windows = spec->tmpl->os == VIRT_OS_WINDOWS;

    fputs("  <devices>\n    <disk type='file' device='disk'>\n"
          "      <driver name='qemu' type='qcow2'/>\n      <source file='",
          f);
    xml_escape(f, disk_path);
    /* Windows has no virtio driver out of the box: SATA (AHCI) it can boot from. */
    fputs(windows ? "'/>\n      <target dev='sda' bus='sata'/>\n    </disk>\n"
                  : "'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n",
          f);
    /* No VNC listener at all: the broker reaches the display with OpenGraphicsFD. */
    fputs("    <graphics type='vnc'>\n      <listen type='none'/>\n    </graphics>\n", f);
    /* Plain VGA: the Linux test image shows a VGA text console, and Windows drives it
     * without extra drivers (OVMF's GOP supports it too). */
    fputs("    <video>\n      <model type='vga'/>\n    </video>\n", f);
    fputs("    <input type='keyboard' bus='ps2'/>\n    <input type='tablet' bus='usb'/>\n", f);
    /* The guest agent's port (spice-vdagent in Linux, the SPICE guest tools in Windows):
     * QEMU's own vdagent backend trades the clipboard with it and offers it to VNC clients
     * as the extended clipboard (display/README.md "Clipboard"). The agent's mouse stays
     * off: the tablet already points absolutely. */
    fputs("    <channel type='qemu-vdagent'>\n      <source>\n"
          "        <clipboard copypaste='yes'/>\n        <mouse mode='server'/>\n"
          "      </source>\n      <target type='virtio' name='com.redhat.spice.0'/>\n"
          "    </channel>\n",
          f);
    /* The serial log (a second channel for tests, boot messages for admins) is appended
     * to, so a restart or a managed-save restore does not wipe what came before. */
    for (int i = 0; i < 2; i++) {
        fputs(i == 0 ? "    <serial type='file'>\n" : "    <console type='file'>\n", f);
        fputs("      <source path='", f);
        xml_escape(f, console_dir);
        fputc('/', f);
        xml_escape(f, spec->name);
        fputs(".log' append='on'/>\n", f);
        fputs(i == 0 ? "      <target port='0'/>\n    </serial>\n"
                     : "      <target type='serial' port='0'/>\n    </console>\n",
              f);
    }
    /* pvpanic: a guest kernel panic (Linux has the driver built in, Windows with the
     * virtio-win one) ends the domain as crashed (on_crash=destroy), which the lifecycle
     * events report, instead of leaving a hung VM. */
    fputs("    <panic model='isa'/>\n", f);
    if (windows)
        fputs("    <memballoon model='none'/>\n", f);
    else
        fputs("    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n"
              "    </rng>\n    <memballoon model='virtio'/>\n",
              f);
    fputs("  </devices>\n", f);
}

/* -EINVAL unless the spec (and what goes into the metadata) can be written and read back. */
static int spec_check(const struct virt_desktop_spec *spec)
{
    const struct virt_template *t = spec ? spec->tmpl : NULL;

    if (!spec || !t || !name_is_valid(spec->name) || empty(spec->pool) ||
        !text_is_valid(spec->pool, VIRT_META_MAX) || !text_is_valid(spec->owner, VIRT_META_MAX) ||
        empty(t->name) || !text_is_valid(t->name, VIRT_META_MAX) ||
        !text_is_valid(spec->created, VIRT_META_MAX) || spec->vcpus <= 0 || spec->memory_mib <= 0)
        return -EINVAL;
    if (t->os != VIRT_OS_LINUX && t->os != VIRT_OS_WINDOWS)
        return -EINVAL;
    if (t->firmware != VIRT_FIRMWARE_BIOS && t->firmware != VIRT_FIRMWARE_UEFI)
        return -EINVAL;
    if (!text_is_valid(t->kernel, 0) || !text_is_valid(t->initrd, 0) ||
        !text_is_valid(t->cmdline, 0))
        return -EINVAL;
    return 0;
}

int virt_desktop_xml(const struct virt_desktop_spec *spec, const char *virt_type,
                     const char *disk_path, const char *console_dir, char **ret)
{
    const char *code = NULL, *vars = NULL;
    char now[32];
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    int r;

    r = spec_check(spec);
    if (r < 0)
        return r;
    if (empty(virt_type) || !text_is_valid(virt_type, 0) || empty(disk_path) ||
        !text_is_valid(disk_path, 0) || empty(console_dir) || !text_is_valid(console_dir, 0))
        return -EINVAL;
    if (spec->tmpl->firmware == VIRT_FIRMWARE_UEFI && !virt_uefi_firmware(&code, &vars))
        return -ENOENT;
    if (empty(spec->created))
        iso8601_now(now, sizeof(now));

    f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;

    fputs("<domain type='", f);
    xml_escape(f, virt_type);
    fputs("'>\n", f);
    xml_element(f, "  ", "name", spec->name);
    fputs("  <metadata>\n", f);
    metadata_write(f, "    ", true, spec->pool, spec->owner, spec->tmpl->name,
                   empty(spec->created) ? now : spec->created);
    fputs("  </metadata>\n", f);
    fprintf(f, "  <memory unit='MiB'>%d</memory>\n  <vcpu>%d</vcpu>\n", spec->memory_mib,
            spec->vcpus);
    xml_os(f, spec->tmpl, code, vars);
    xml_features_clock(f, spec->tmpl, virt_type);
    fputs("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n"
          "  <on_crash>destroy</on_crash>\n",
          f);
    xml_devices(f, spec, disk_path, console_dir);
    fputs("</domain>\n", f);
    return memstream_finish(f, &buf, ret);
}

/* ---- connection and storage pool ---- */

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
        return set_error(err, -errno, "cannot create %s: %s", root, strerror(errno));
    if (mkdir(etc, 0755) < 0 && errno != EEXIST)
        return set_error(err, -errno, "cannot create %s: %s", etc, strerror(errno));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && errno == EEXIST)
        return 0;
    if (fd < 0)
        return set_error(err, -errno, "cannot create %s: %s", path, strerror(errno));
    if (write(fd, conf, sizeof(conf) - 1) != (ssize_t)(sizeof(conf) - 1)) {
        unlink(path);
        return set_error(err, -EIO, "cannot write %s", path);
    }
    return 0;
}

/* Same directory, ignoring trailing slashes. */
static bool same_dir(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    while (la > 1 && a[la - 1] == '/')
        la--;
    while (lb > 1 && b[lb - 1] == '/')
        lb--;
    return la == lb && memcmp(a, b, la) == 0;
}

/* On v->conn (which the caller holds): *ret_has_storage says whether there is a storage
 * driver at all. */
static int pool_ensure(struct virt *v, bool *ret_has_storage, struct virt_error *err)
{
    virStoragePoolPtr pool;
    int r = 0, active;

    pool = virStoragePoolLookupByName(v->conn, VIRT_POOL_NAME);
    if (!pool && last_error_is(VIR_ERR_NO_SUPPORT)) {
        /* qemu:///embed: no storage driver. */
        virResetLastError();
        *ret_has_storage = false;
        return 0;
    }
    *ret_has_storage = true;

    if (!pool) {
        _cleanup_(freep) char *xml = NULL;
        char *buf = NULL;
        size_t len = 0;
        FILE *f;

        if (!last_error_is(VIR_ERR_NO_STORAGE_POOL))
            return virt_fail(err, -EIO, "cannot look up storage pool %s", VIRT_POOL_NAME);
        virResetLastError();
        f = open_memstream(&buf, &len);
        if (!f)
            return -ENOMEM;
        fputs("<pool type='dir'>\n  <name>" VIRT_POOL_NAME "</name>\n  <target>\n", f);
        xml_element(f, "    ", "path", v->disk_dir);
        fputs("  </target>\n</pool>\n", f);
        r = memstream_finish(f, &buf, &xml);
        if (r < 0)
            return r;
        pool = virStoragePoolDefineXML(v->conn, xml, 0);
        if (!pool)
            return virt_fail(err, -EIO, "cannot define storage pool %s", VIRT_POOL_NAME);
        if (virStoragePoolSetAutostart(pool, 1) < 0)
            virResetLastError(); /* nice to have */
    } else {
        /* Ours only if it points at our directory. */
        _cleanup_(freep) char *desc = virStoragePoolGetXMLDesc(pool, 0);
        char path[4096];
        const char *target;

        if (!desc) {
            r = virt_fail(err, -EIO, "cannot read storage pool %s", VIRT_POOL_NAME);
            goto out;
        }
        target = strstr(desc, "<target>");
        if (!target || !xml_find_text(target, "path", path, sizeof(path)) ||
            !same_dir(path, v->disk_dir)) {
            r = set_error(err, -EEXIST, "storage pool %s exists and does not use %s",
                          VIRT_POOL_NAME, v->disk_dir);
            goto out;
        }
    }

    active = virStoragePoolIsActive(pool);
    if (active < 0) {
        r = virt_fail(err, -EIO, "cannot query storage pool %s", VIRT_POOL_NAME);
        goto out;
    }
    if (!active) {
        /* Makes the directory when missing (a dir pool's build is mkdir -p). */
        if (virStoragePoolBuild(pool, 0) < 0)
            log_debug("building storage pool %s: %s", VIRT_POOL_NAME, virGetLastErrorMessage());
        virResetLastError();
        if (virStoragePoolCreate(pool, 0) < 0) {
            r = virt_fail(err, -EIO, "cannot start storage pool %s", VIRT_POOL_NAME);
            goto out;
        }
    } else if (virStoragePoolRefresh(pool, 0) < 0) {
        virResetLastError();
    }
out:
    virStoragePoolFree(pool);
    return r;
}

/* ---- the connection and lifecycle events ---- */

static void watch_unref(void *opaque)
{
    struct watch *w = opaque;

    if (atomic_fetch_sub(&w->refs, 1) == 1) {
        pthread_mutex_destroy(&w->lock);
        free(w);
    }
}

const char *virt_event_to_string(enum virt_event ev)
{
    static const char *const names[] = {
        [VIRT_EVENT_STARTED] = "started",     [VIRT_EVENT_SHUTDOWN] = "shutdown",
        [VIRT_EVENT_DESTROYED] = "destroyed", [VIRT_EVENT_CRASHED] = "crashed",
        [VIRT_EVENT_STOPPED] = "stopped",
    };

    if ((unsigned)ev >= ARRAY_SIZE(names) || !names[ev])
        return "unknown";
    return names[ev];
}

/* libvirt's lifecycle event and detail as ours; false for those we do not report. */
static bool event_map(int event, int detail, enum virt_event *ret)
{
    switch (event) {
    case VIR_DOMAIN_EVENT_STARTED:
        *ret = VIRT_EVENT_STARTED;
        return true;
    case VIR_DOMAIN_EVENT_STOPPED:
        switch (detail) {
        case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
            *ret = VIRT_EVENT_SHUTDOWN;
            break;
        case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
            *ret = VIRT_EVENT_DESTROYED;
            break;
        case VIR_DOMAIN_EVENT_STOPPED_CRASHED: /* guest panic, on_crash=destroy */
        case VIR_DOMAIN_EVENT_STOPPED_FAILED:  /* QEMU died or was killed */
            *ret = VIRT_EVENT_CRASHED;
            break;
        default: /* saved, migrated, from snapshot */
            *ret = VIRT_EVENT_STOPPED;
            break;
        }
        return true;
    default:
        /* Not VIR_DOMAIN_EVENT_CRASHED either: with our <on_crash>destroy</on_crash> a
         * guest panic is followed by STOPPED_CRASHED, and one crash must count once. */
        return false;
    }
}

/* On libvirt's event thread. */
static int lifecycle_event(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                           void *opaque)
{
    struct watch *w = opaque;
    const char *name = virDomainGetName(dom);
    enum virt_event ev;
    char *meta;

    (void)conn;
    if (!event_map(event, detail, &ev) || !name_is_valid(name))
        return 0;
    /* Ours only (a local look-up for embedded drivers, one round trip for remote ones).
     * A domain undefined meanwhile has no metadata left: not reported. */
    meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VIRT_METADATA_URI, 0);
    if (!meta) {
        virResetLastError();
        return 0;
    }
    free(meta);
    pthread_mutex_lock(&w->lock);
    if (w->fn)
        w->fn(w->userdata, name, ev);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

/* On libvirt's event thread (libvirtd restarted, keepalive timeout, socket error). */
static void connection_closed(virConnectPtr conn, int reason, void *opaque)
{
    static const char *const reasons[] = {
        [VIR_CONNECT_CLOSE_REASON_ERROR] = "error",
        [VIR_CONNECT_CLOSE_REASON_EOF] = "end of file",
        [VIR_CONNECT_CLOSE_REASON_KEEPALIVE] = "keepalive timeout",
        [VIR_CONNECT_CLOSE_REASON_CLIENT] = "closed",
    };
    struct virt *v = opaque;

    (void)conn;
    atomic_store(&v->conn_lost, true);
    log_error("libvirt connection %s lost (%s); reopening it at the next call", v->uri,
              reason >= 0 && (size_t)reason < ARRAY_SIZE(reasons) ? reasons[reason] : "unknown");
}

/* Under conn_lock: registers the lifecycle callback on v->conn. */
static int watch_register_locked(struct virt *v)
{
    atomic_fetch_add(&v->watch->refs, 1); /* libvirt's, dropped by watch_unref */
    v->event_id = virConnectDomainEventRegisterAny(v->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                   VIR_DOMAIN_EVENT_CALLBACK(lifecycle_event),
                                                   v->watch, watch_unref);
    if (v->event_id < 0) {
        /* A failed registration never calls the free callback. */
        atomic_fetch_sub(&v->watch->refs, 1);
        log_debug("cannot register for libvirt lifecycle events on %s: %s", v->uri,
                  virGetLastErrorMessage());
        virResetLastError();
        return -EIO;
    }
    return 0;
}

/* Under conn_lock (or before anyone else has v): opens v->conn, keepalive, close callback
 * and, when watching, the lifecycle callback. */
static int conn_open_locked(struct virt *v, struct virt_error *err)
{
    int r;

    v->conn = virConnectOpen(v->uri);
    if (!v->conn)
        return virt_fail(err, -EIO, "cannot open libvirt connection %s", v->uri);
    atomic_store(&v->conn_lost, false);
    /* Only remote drivers know keepalive; local and embedded ones say "not supported". */
    r = virConnectSetKeepAlive(v->conn, VIRT_KEEPALIVE_INTERVAL_S, VIRT_KEEPALIVE_COUNT);
    if (r != 0)
        log_debug("libvirt keepalive not used for %s: %s", v->uri,
                  r < 0 ? virGetLastErrorMessage() : "the server does not support it");
    virResetLastError();
    if (virConnectRegisterCloseCallback(v->conn, connection_closed, v, NULL) < 0) {
        log_debug("no close callback on %s: %s", v->uri, virGetLastErrorMessage());
        virResetLastError();
    }
    if (v->watch && watch_register_locked(v) < 0)
        log_error("libvirt connection %s: lifecycle events are not watched any more", v->uri);
    return 0;
}

/* Under conn_lock: lets go of v->conn (users in flight keep their references). */
static void conn_drop_locked(struct virt *v)
{
    if (!v->conn)
        return;
    if (v->event_id >= 0 && virConnectDomainEventDeregisterAny(v->conn, v->event_id) < 0)
        log_debug("deregistering lifecycle events on %s: %s", v->uri, virGetLastErrorMessage());
    v->event_id = -1;
    if (virConnectUnregisterCloseCallback(v->conn, connection_closed) < 0)
        log_debug("unregistering the close callback on %s: %s", v->uri, virGetLastErrorMessage());
    virResetLastError();
    virConnectClose(v->conn);
    v->conn = NULL;
}

/* A reference to the connection (conn_put when done), reopened first when libvirt closed
 * it. NULL (err filled) when there is none. */
static virConnectPtr conn_get(struct virt *v, struct virt_error *err)
{
    virConnectPtr c = NULL;
    int r = 0;

    pthread_mutex_lock(&v->conn_lock);
    if (!v->conn || atomic_load(&v->conn_lost) || virConnectIsAlive(v->conn) == 0) {
        uint64_t now = now_ms();
        if (now < v->reopen_after_ms) {
            r = set_error(err, -EIO, "libvirt connection %s lost, not reopened yet", v->uri);
        } else {
            v->reopen_after_ms = now + VIRT_REOPEN_INTERVAL_MS;
            conn_drop_locked(v);
            r = conn_open_locked(v, err);
            if (r == 0) {
                struct virt_error perr = {""};
                bool has_storage;
                log_info("libvirt connection %s reopened", v->uri);
                /* A restarted libvirtd may have left the pool inactive. */
                if (v->has_storage && pool_ensure(v, &has_storage, &perr) < 0)
                    log_warning("libvirt connection %s: %s", v->uri, perr.message);
            }
        }
    }
    if (r == 0 && virConnectRef(v->conn) == 0)
        c = v->conn;
    else if (r == 0)
        virt_fail(err, -EIO, "cannot use libvirt connection %s", v->uri);
    pthread_mutex_unlock(&v->conn_lock);
    virResetLastError();
    return c;
}

/* After the caller has read libvirt's error (closing resets it). */
static void conn_put(virConnectPtr c)
{
    if (c)
        virConnectClose(c);
}

/* Under conn_lock: no more calls of the watch's fn, and libvirt's registration gone. */
static void watch_stop_locked(struct virt *v)
{
    struct watch *w = v->watch;

    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->fn = NULL;
    w->userdata = NULL;
    pthread_mutex_unlock(&w->lock);
    if (v->conn && v->event_id >= 0 &&
        virConnectDomainEventDeregisterAny(v->conn, v->event_id) < 0) {
        log_debug("deregistering lifecycle events on %s: %s", v->uri, virGetLastErrorMessage());
        virResetLastError();
    }
    v->event_id = -1;
    v->watch = NULL;
    watch_unref(w);
}

int virt_watch(struct virt *v, virt_event_fn fn, void *userdata)
{
    struct watch *w;
    int r = 0;

    error_reset(NULL);
    pthread_mutex_lock(&v->conn_lock);
    if (!fn) {
        watch_stop_locked(v);
        goto out;
    }
    if (v->watch) {
        pthread_mutex_lock(&v->watch->lock);
        v->watch->fn = fn;
        v->watch->userdata = userdata;
        pthread_mutex_unlock(&v->watch->lock);
        goto out;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        r = -ENOMEM;
        goto out;
    }
    pthread_mutex_init(&w->lock, NULL);
    w->fn = fn;
    w->userdata = userdata;
    atomic_init(&w->refs, 1);
    v->watch = w;
    /* A lost connection gets its registration when it is reopened. */
    if (v->conn && !atomic_load(&v->conn_lost) && watch_register_locked(v) < 0) {
        v->watch = NULL;
        watch_unref(w);
        r = -EIO;
    }
out:
    pthread_mutex_unlock(&v->conn_lock);
    return r;
}

int virt_new(const struct virt_options *o, struct virt **ret, struct virt_error *err)
{
    struct virt *v;
    int r;

    error_reset(err);
    *ret = NULL;
    if (!o || empty(o->uri) || empty(o->virt_type) || empty(o->disk_dir) || empty(o->console_dir) ||
        o->disk_dir[0] != '/' || o->console_dir[0] != '/' || !text_is_valid(o->virt_type, 0) ||
        !text_is_valid(o->disk_dir, 0) || !text_is_valid(o->console_dir, 0))
        return set_error(err, -EINVAL,
                         "invalid libvirt options (uri, virt_type, absolute "
                         "disk_dir and console_dir are needed)");

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
    pthread_mutex_init(&v->conn_lock, NULL);
    v->event_id = -1;
    v->uri = strdup(o->uri);
    v->virt_type = strdup(o->virt_type);
    v->disk_dir = strdup(o->disk_dir);
    v->console_dir = strdup(o->console_dir);
    if (!v->uri || !v->virt_type || !v->disk_dir || !v->console_dir) {
        virt_free(v);
        return -ENOMEM;
    }

    r = conn_open_locked(v, err);
    if (r < 0) {
        virt_free(v);
        return r;
    }
    r = pool_ensure(v, &v->has_storage, err);
    if (r < 0) {
        virt_free(v);
        return r;
    }
    *ret = v;
    return 0;
}

void virt_free(struct virt *v)
{
    if (!v)
        return;
    /* Callbacks go first, while libvirt's event thread still runs. */
    pthread_mutex_lock(&v->conn_lock);
    watch_stop_locked(v);
    conn_drop_locked(v);
    pthread_mutex_unlock(&v->conn_lock);
    free(v->uri);
    free(v->virt_type);
    free(v->disk_dir);
    free(v->console_dir);
    pthread_mutex_destroy(&v->conn_lock);
    pthread_cond_destroy(&v->cond);
    pthread_mutex_destroy(&v->lock);
    free(v);
    event_loop_unref();
}

bool virt_has_storage_api(const struct virt *v)
{
    return v->has_storage;
}

/* ---- per-desktop serialisation ---- */

static void desktop_lock(struct virt *v, struct busy_name *node, const char *name)
{
    snprintf(node->name, sizeof(node->name), "%s", name);
    pthread_mutex_lock(&v->lock);
    for (;;) {
        bool taken = false;
        for (struct busy_name *b = v->busy; b && !taken; b = b->next)
            taken = streq(b->name, node->name);
        if (!taken)
            break;
        pthread_cond_wait(&v->cond, &v->lock);
    }
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

/* ---- overlays ---- */

static int overlay_path(const struct virt *v, const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s" VIRT_OVERLAY_SUFFIX, v->disk_dir, name);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int volume_xml(const struct virt_template *t, const char *volname, char **ret)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return -ENOMEM;
    fputs("<volume>\n", f);
    xml_element(f, "  ", "name", volname);
    fprintf(f, "  <capacity unit='bytes'>%" PRIu64 "</capacity>\n", t->disk_size);
    /* 0600, owned by whoever runs the storage driver: libvirt hands the file to the QEMU
     * user (DAC relabel) when the domain starts, and back when it stops. */
    fputs("  <target>\n    <format type='qcow2'/>\n"
          "    <permissions><mode>0600</mode></permissions>\n  </target>\n"
          "  <backingStore>\n",
          f);
    xml_element(f, "    ", "path", t->disk);
    fprintf(f, "    <format type='%s'/>\n  </backingStore>\n</volume>\n",
            image_format_to_string(t->disk_format));
    return memstream_finish(f, &buf, ret);
}

/* Runs `qemu-img create -q -f qcow2 -b BASE -F FMT PATH` (fixed argv, no shell, clean
 * environment) on the file path, which the caller made empty with mode 0600: qemu-img
 * rewrites it in place, so it is never readable by others, and libvirt relabels it for
 * the QEMU user when the domain starts. */
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
        return set_error(err, -ENOENT, "no storage driver and qemu-img not found");

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return set_error(err, -errno, "pipe2 failed: %s", strerror(errno));

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
        return set_error(err, r, "cannot run %s: %s", qemu_img, strerror(-r));
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
            return set_error(err, -errno, "waitpid for qemu-img failed: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        out[strcspn(out, "\n")] = 0;
        return set_error(err, -EIO, "qemu-img create %s failed: %s", path, out);
    }
    return 0;
}

static int overlay_create_file(const struct virt_template *t, const char *path,
                               struct virt_error *err)
{
    int fd, r;

    /* O_EXCL: the existence check and the creation are one step. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        r = -errno;
        return set_error(err, r, "cannot create %s: %s", path, strerror(-r));
    }
    /* Whatever the umask allowed, the file is ours alone until libvirt relabels it. */
    if (fchmod(fd, 0600) < 0) {
        r = -errno;
        safe_close(fd);
        unlink(path);
        return set_error(err, r, "cannot chmod %s: %s", path, strerror(-r));
    }
    safe_close(fd);
    r = overlay_create_qemu_img(t, path, err);
    if (r < 0)
        unlink(path);
    return r;
}

static int pool_lookup(struct virt *v, virStoragePoolPtr *ret, struct virt_error *err)
{
    virConnectPtr c = conn_get(v, err);
    int r = 0;

    if (!c)
        return -EIO;
    *ret = virStoragePoolLookupByName(c, VIRT_POOL_NAME);
    if (!*ret)
        r = virt_fail(err, -EIO, "cannot look up storage pool %s", VIRT_POOL_NAME);
    conn_put(c);
    return r;
}

/* The volume name of an overlay, or -ENOENT (after a pool refresh, which picks up files
 * made or removed behind libvirt's back). */
static int volume_lookup(virStoragePoolPtr pool, const char *volname, virStorageVolPtr *ret,
                         struct virt_error *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        *ret = virStorageVolLookupByName(pool, volname);
        if (*ret)
            return 0;
        if (!last_error_is(VIR_ERR_NO_STORAGE_VOL))
            return virt_fail(err, -EIO, "cannot look up volume %s", volname);
        virResetLastError();
        if (attempt == 0 && virStoragePoolRefresh(pool, 0) < 0)
            return virt_fail(err, -EIO, "cannot refresh storage pool %s", VIRT_POOL_NAME);
    }
    return set_error(err, -ENOENT, "no volume %s in storage pool %s", volname, VIRT_POOL_NAME);
}

static int overlay_create_locked(struct virt *v, const char *name, const struct virt_template *t,
                                 const char *path, struct virt_error *err)
{
    char volname[VIRT_NAME_MAX + sizeof(VIRT_OVERLAY_SUFFIX)];
    virStoragePoolPtr pool = NULL;
    virStorageVolPtr vol = NULL;
    _cleanup_(freep) char *xml = NULL;
    struct stat st;
    int r;

    if (!v->has_storage)
        return overlay_create_file(t, path, err);

    snprintf(volname, sizeof(volname), "%s" VIRT_OVERLAY_SUFFIX, name);
    if (lstat(path, &st) == 0)
        return set_error(err, -EEXIST, "%s exists", path);
    r = pool_lookup(v, &pool, err);
    if (r < 0)
        return r;
    r = volume_lookup(pool, volname, &vol, err);
    if (r == 0) {
        r = set_error(err, -EEXIST, "volume %s exists in storage pool %s", volname, VIRT_POOL_NAME);
        goto out;
    }
    if (r != -ENOENT)
        goto out;
    r = volume_xml(t, volname, &xml);
    if (r < 0)
        goto out;
    vol = virStorageVolCreateXML(pool, xml, 0);
    if (!vol)
        r = virt_fail(err, -EIO, "cannot create volume %s", volname);
    else
        r = 0;
out:
    if (vol)
        virStorageVolFree(vol);
    virStoragePoolFree(pool);
    return r;
}

int virt_overlay_create(struct virt *v, const char *name, const struct virt_template *t,
                        char *ret_path, size_t size, struct virt_error *err)
{
    char path[4096];
    struct busy_name node;
    int r;

    error_reset(err);
    if (!name_is_valid(name))
        return set_error(err, -EINVAL, "invalid desktop name");
    if (!t || empty(t->disk) || t->disk[0] != '/' || t->disk_size == 0 ||
        (t->disk_format != IMAGE_RAW && t->disk_format != IMAGE_QCOW2))
        return set_error(err, -EINVAL, "template needs an absolute base image path and size");
    r = overlay_path(v, name, path, sizeof(path));
    if (r < 0 || (ret_path && strlen(path) >= size))
        return set_error(err, -ENAMETOOLONG, "overlay path for %s too long", name);

    desktop_lock(v, &node, name);
    r = overlay_create_locked(v, name, t, path, err);
    desktop_unlock(v, &node);
    if (r == 0 && ret_path)
        snprintf(ret_path, size, "%s", path);
    return r;
}

int virt_overlay_delete(struct virt *v, const char *name, struct virt_error *err)
{
    char volname[VIRT_NAME_MAX + sizeof(VIRT_OVERLAY_SUFFIX)];
    char path[4096];
    struct busy_name node;
    virStoragePoolPtr pool = NULL;
    virStorageVolPtr vol = NULL;
    int r;

    error_reset(err);
    if (!name_is_valid(name))
        return set_error(err, -EINVAL, "invalid desktop name");
    r = overlay_path(v, name, path, sizeof(path));
    if (r < 0)
        return set_error(err, r, "overlay path for %s too long", name);
    snprintf(volname, sizeof(volname), "%s" VIRT_OVERLAY_SUFFIX, name);

    desktop_lock(v, &node, name);
    if (!v->has_storage) {
        if (unlink(path) < 0 && errno != ENOENT)
            r = set_error(err, -errno, "cannot remove %s: %s", path, strerror(errno));
        goto out;
    }
    r = pool_lookup(v, &pool, err);
    if (r < 0)
        goto out;
    r = volume_lookup(pool, volname, &vol, err);
    if (r == -ENOENT) {
        r = 0;
        if (err)
            err->message[0] = 0;
        goto out;
    }
    if (r < 0)
        goto out;
    if (virStorageVolDelete(vol, 0) < 0)
        r = virt_fail(err, -EIO, "cannot delete volume %s", volname);
out:
    if (vol)
        virStorageVolFree(vol);
    if (pool)
        virStoragePoolFree(pool);
    desktop_unlock(v, &node);
    return r;
}

static int strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct name_list {
    char **names;
    size_t n, allocated;
};

static void name_list_done(struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    *l = (struct name_list){0};
}

/* Adds file (NAME.qcow2) as NAME if NAME is a desktop name; ignores anything else. */
static int name_list_add_overlay(struct name_list *l, const char *file)
{
    size_t n = strlen(file), sl = strlen(VIRT_OVERLAY_SUFFIX);
    char name[VIRT_NAME_MAX];

    if (n <= sl || n - sl >= sizeof(name) || !streq(file + n - sl, VIRT_OVERLAY_SUFFIX))
        return 0;
    memcpy(name, file, n - sl);
    name[n - sl] = 0;
    if (!name_is_valid(name))
        return 0;
    if (l->n + 2 > l->allocated) {
        size_t want = l->allocated ? l->allocated * 2 : 16;
        char **p = reallocarray(l->names, want, sizeof(*p));
        if (!p)
            return -ENOMEM;
        l->names = p;
        l->allocated = want;
    }
    l->names[l->n] = strdup(name);
    if (!l->names[l->n])
        return -ENOMEM;
    l->n++;
    l->names[l->n] = NULL;
    return 0;
}

static int overlay_list_dir(struct virt *v, struct name_list *l, struct virt_error *err)
{
    DIR *d = opendir(v->disk_dir);
    struct dirent *de;
    int r = 0;

    if (!d)
        return set_error(err, -errno, "cannot open %s: %s", v->disk_dir, strerror(errno));
    while (r == 0 && (errno = 0, de = readdir(d))) {
        struct stat st;
        if (de->d_type == DT_REG ||
            (de->d_type == DT_UNKNOWN &&
             fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)))
            r = name_list_add_overlay(l, de->d_name);
    }
    if (r == 0 && errno != 0)
        r = set_error(err, -errno, "cannot read %s: %s", v->disk_dir, strerror(errno));
    closedir(d);
    return r;
}

static int overlay_list_pool(struct virt *v, struct name_list *l, struct virt_error *err)
{
    virStoragePoolPtr pool = NULL;
    virStorageVolPtr *vols = NULL;
    int n, r;

    r = pool_lookup(v, &pool, err);
    if (r < 0)
        return r;
    if (virStoragePoolRefresh(pool, 0) < 0)
        virResetLastError(); /* list what libvirt knows */
    n = virStoragePoolListAllVolumes(pool, &vols, 0);
    if (n < 0)
        r = virt_fail(err, -EIO, "cannot list volumes of storage pool %s", VIRT_POOL_NAME);
    for (int i = 0; i < n; i++) {
        const char *vn = virStorageVolGetName(vols[i]);
        if (r == 0 && vn)
            r = name_list_add_overlay(l, vn);
        virStorageVolFree(vols[i]);
    }
    free(vols);
    virStoragePoolFree(pool);
    return r;
}

int virt_overlay_list(struct virt *v, char ***ret, size_t *ret_n, struct virt_error *err)
{
    struct name_list l = {0};
    int r;

    error_reset(err);
    r = v->has_storage ? overlay_list_pool(v, &l, err) : overlay_list_dir(v, &l, err);
    if (r < 0) {
        name_list_done(&l);
        return r;
    }
    if (!l.names) {
        l.names = calloc(1, sizeof(*l.names));
        if (!l.names)
            return -ENOMEM;
    }
    qsort(l.names, l.n, sizeof(*l.names), strcmp_p);
    *ret = l.names;
    *ret_n = l.n;
    return 0;
}

/* ---- domains ---- */

/* Our metadata of dom, parsed. -EEXIST when dom has none (not ours), -EIO. */
static int domain_meta(virDomainPtr dom, const char *name, unsigned flags, struct desktop_meta *m,
                       struct virt_error *err)
{
    _cleanup_(freep) char *xml =
        virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VIRT_METADATA_URI, flags);

    if (!xml) {
        if (last_error_is(VIR_ERR_NO_DOMAIN_METADATA))
            return virt_fail(err, -EEXIST, "domain %s exists and is not managed by vdi", name);
        if (last_error_is(VIR_ERR_NO_DOMAIN))
            return virt_fail(err, -ENOENT, "domain %s is gone", name);
        return virt_fail(err, -EIO, "cannot read metadata of domain %s", name);
    }
    if (m)
        metadata_parse(xml, m);
    return 0;
}

/* Looks up one of our domains. -ENOENT when missing, -EEXIST when not ours, -EIO. */
static int domain_lookup(struct virt *v, const char *name, virDomainPtr *ret,
                         struct virt_error *err)
{
    virConnectPtr c = conn_get(v, err);
    virDomainPtr dom;
    int r;

    if (!c)
        return -EIO;
    dom = virDomainLookupByName(c, name);
    if (!dom) {
        if (last_error_is(VIR_ERR_NO_DOMAIN))
            r = virt_fail(err, -ENOENT, "domain %s is not defined", name);
        else
            r = virt_fail(err, -EIO, "cannot look up domain %s", name);
        conn_put(c);
        return r;
    }
    conn_put(c); /* dom holds its own reference */
    r = domain_meta(dom, name, 0, NULL, err);
    if (r < 0) {
        virDomainFree(dom);
        return r;
    }
    *ret = dom;
    return 0;
}

static int domain_state(virDomainPtr dom, const char *name, enum virt_state *ret,
                        struct virt_error *err)
{
    int state, reason, saved;

    if (virDomainGetState(dom, &state, &reason, 0) < 0)
        return virt_fail(err, last_error_is(VIR_ERR_NO_DOMAIN) ? -ENOENT : -EIO,
                         "cannot get state of domain %s", name);
    switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:
        *ret = VIRT_STATE_RUNNING;
        break;
    case VIR_DOMAIN_PAUSED:
        *ret = VIRT_STATE_PAUSED;
        break;
    case VIR_DOMAIN_SHUTOFF:
        saved = virDomainHasManagedSaveImage(dom, 0);
        if (saved < 0)
            return virt_fail(err, last_error_is(VIR_ERR_NO_DOMAIN) ? -ENOENT : -EIO,
                             "cannot query managed save of domain %s", name);
        *ret = saved ? VIRT_STATE_SAVED : VIRT_STATE_SHUTOFF;
        break;
    default: /* shutting down, crashed (preserved), pm-suspended, no state */
        *ret = VIRT_STATE_OTHER;
        break;
    }
    return 0;
}

/* One operation on one of our domains, with the name serialised. */
typedef int (*domain_op)(struct virt *v, virDomainPtr dom, const char *name, void *arg,
                         struct virt_error *err);

static int domain_call(struct virt *v, const char *name, domain_op op, void *arg,
                       struct virt_error *err)
{
    struct busy_name node;
    virDomainPtr dom = NULL;
    int r;

    error_reset(err);
    if (!name_is_valid(name))
        return set_error(err, -EINVAL, "invalid desktop name");
    desktop_lock(v, &node, name);
    r = domain_lookup(v, name, &dom, err);
    if (r == 0) {
        r = op(v, dom, name, arg, err);
        virDomainFree(dom);
    }
    desktop_unlock(v, &node);
    return r;
}

/* -EEXIST: a domain of that name (ours or not); -ENOENT: no overlay (or firmware). */
int virt_desktop_define(struct virt *v, const struct virt_desktop_spec *spec,
                        struct virt_error *err)
{
    char path[4096], volname[VIRT_NAME_MAX + sizeof(VIRT_OVERLAY_SUFFIX)];
    _cleanup_(freep) char *xml = NULL;
    _cleanup_(freep) char *volpath = NULL;
    struct busy_name node;
    virConnectPtr c = NULL;
    virDomainPtr dom;
    struct stat st;
    int r;

    error_reset(err);
    r = spec_check(spec);
    if (r < 0)
        return set_error(err, r, "invalid desktop spec");
    if (overlay_path(v, spec->name, path, sizeof(path)) < 0)
        return set_error(err, -ENAMETOOLONG, "overlay path for %s too long", spec->name);

    desktop_lock(v, &node, spec->name);
    c = conn_get(v, err);
    if (!c) {
        r = -EIO;
        goto out;
    }
    dom = virDomainLookupByName(c, spec->name);
    if (dom) {
        virDomainFree(dom);
        r = set_error(err, -EEXIST, "domain %s exists", spec->name);
        goto out;
    }
    if (!last_error_is(VIR_ERR_NO_DOMAIN)) {
        r = virt_fail(err, -EIO, "cannot look up domain %s", spec->name);
        goto out;
    }
    virResetLastError();

    if (v->has_storage) {
        virStoragePoolPtr pool = NULL;
        virStorageVolPtr vol = NULL;

        snprintf(volname, sizeof(volname), "%s" VIRT_OVERLAY_SUFFIX, spec->name);
        r = pool_lookup(v, &pool, err);
        if (r < 0)
            goto out;
        r = volume_lookup(pool, volname, &vol, err);
        virStoragePoolFree(pool);
        if (r < 0)
            goto out;
        volpath = virStorageVolGetPath(vol);
        virStorageVolFree(vol);
        if (!volpath) {
            r = virt_fail(err, -EIO, "cannot get path of volume %s", volname);
            goto out;
        }
    } else if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        r = set_error(err, -ENOENT, "overlay %s missing", path);
        goto out;
    }

    r = virt_desktop_xml(spec, v->virt_type, volpath ? volpath : path, v->console_dir, &xml);
    if (r == -ENOENT) {
        r = set_error(err, r,
                      "template %s wants UEFI and no OVMF firmware is installed "
                      "(/usr/share/OVMF/OVMF_CODE_4M.fd: install the ovmf package)",
                      spec->tmpl->name);
        goto out;
    }
    if (r < 0) {
        r = set_error(err, r, "cannot write domain XML for %s", spec->name);
        goto out;
    }
    dom = virDomainDefineXML(c, xml);
    if (!dom) {
        r = virt_fail(err, -EIO, "cannot define domain %s", spec->name);
        goto out;
    }
    virDomainFree(dom);
out:
    conn_put(c);
    desktop_unlock(v, &node);
    return r;
}

/* Destroys dom unless it is off. 0 when off. */
static int domain_power_off(virDomainPtr dom, const char *name, struct virt_error *err)
{
    int active = virDomainIsActive(dom);

    if (active < 0)
        return virt_fail(err, -EIO, "cannot query domain %s", name);
    if (!active)
        return 0;
    if (virDomainDestroy(dom) < 0) {
        /* It may have stopped by itself in between. */
        if (last_error_is(VIR_ERR_OPERATION_INVALID) && virDomainIsActive(dom) == 0) {
            virResetLastError();
            return 0;
        }
        return virt_fail(err, -EIO, "cannot power off domain %s", name);
    }
    return 0;
}

static bool unsupported_flags_error(void)
{
    return last_error_is(VIR_ERR_INVALID_ARG) || last_error_is(VIR_ERR_NO_SUPPORT) ||
           last_error_is(VIR_ERR_ARGUMENT_UNSUPPORTED);
}

static int undefine_op(struct virt *v, virDomainPtr dom, const char *name, void *arg,
                       struct virt_error *err)
{
    (void)v;
    (void)arg;
    int r = domain_power_off(dom, name, err);
    if (r < 0)
        return r;
    if (virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_NVRAM) ==
        0)
        return 0;
    if (!unsupported_flags_error())
        return virt_fail(err, -EIO, "cannot undefine domain %s", name);
    /* A driver without NVRAM support (the test driver) has no NVRAM to remove. */
    virResetLastError();
    if (virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE) == 0)
        return 0;
    if (!unsupported_flags_error())
        return virt_fail(err, -EIO, "cannot undefine domain %s", name);
    virResetLastError();
    if (virDomainHasManagedSaveImage(dom, 0) > 0 && virDomainManagedSaveRemove(dom, 0) < 0)
        return virt_fail(err, -EIO, "cannot remove managed save of domain %s", name);
    virResetLastError();
    if (virDomainUndefine(dom) < 0)
        return virt_fail(err, -EIO, "cannot undefine domain %s", name);
    return 0;
}

int virt_desktop_undefine(struct virt *v, const char *name, struct virt_error *err)
{
    int r = domain_call(v, name, undefine_op, NULL, err);
    if (r == -ENOENT) {
        error_reset(err);
        return 0;
    }
    return r;
}

static int start_op(struct virt *v, virDomainPtr dom, const char *name, void *arg,
                    struct virt_error *err)
{
    (void)v;
    bool *ret_started = arg;
    int state, reason;
    bool started = false;

    if (virDomainGetState(dom, &state, &reason, 0) < 0)
        return virt_fail(err, -EIO, "cannot get state of domain %s", name);
    switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED:
        break;
    case VIR_DOMAIN_PAUSED:
        if (virDomainResume(dom) < 0)
            return virt_fail(err, -EIO, "cannot resume domain %s", name);
        started = true;
        break;
    case VIR_DOMAIN_PMSUSPENDED:
        if (virDomainPMWakeup(dom, 0) < 0)
            return virt_fail(err, -EIO, "cannot wake domain %s", name);
        started = true;
        break;
    case VIR_DOMAIN_SHUTDOWN:
        return set_error(err, -EIO, "domain %s is shutting down", name);
    default: /* shut off (with or without managed save), crashed, no state */
        /* Restores a managed save image when there is one (and removes it). */
        if (virDomainCreate(dom) < 0)
            return virt_fail(err, -EIO, "cannot start domain %s", name);
        started = true;
        break;
    }
    if (ret_started)
        *ret_started = started;
    return 0;
}

int virt_desktop_start(struct virt *v, const char *name, bool *ret_started, struct virt_error *err)
{
    return domain_call(v, name, start_op, ret_started, err);
}

static int shutdown_op(struct virt *v, virDomainPtr dom, const char *name, void *arg,
                       struct virt_error *err)
{
    (void)v;
    int timeout_ms = *(const int *)arg;
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    int active = virDomainIsActive(dom);

    if (active < 0)
        return virt_fail(err, -EIO, "cannot query domain %s", name);
    if (!active)
        return 0;
    /* A guest that ignores ACPI (or a driver that cannot send it) is powered off below. */
    if (virDomainShutdown(dom) < 0) {
        log_debug("ACPI shutdown of %s failed: %s", name, virGetLastErrorMessage());
        virResetLastError();
    }
    for (;;) {
        active = virDomainIsActive(dom);
        if (active < 0)
            return virt_fail(err, -EIO, "cannot query domain %s", name);
        if (!active)
            return 0;
        int left = deadline_left_ms(deadline);
        if (left == 0)
            break;
        struct timespec ts = {
            .tv_nsec =
                (long)(left < VIRT_SHUTDOWN_POLL_MS ? left : VIRT_SHUTDOWN_POLL_MS) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return domain_power_off(dom, name, err);
}

int virt_desktop_shutdown(struct virt *v, const char *name, int timeout_ms, struct virt_error *err)
{
    return domain_call(v, name, shutdown_op, &timeout_ms, err);
}

static int destroy_op(struct virt *v, virDomainPtr dom, const char *name, void *arg,
                      struct virt_error *err)
{
    (void)v;
    (void)arg;
    return domain_power_off(dom, name, err);
}

int virt_desktop_destroy(struct virt *v, const char *name, struct virt_error *err)
{
    return domain_call(v, name, destroy_op, NULL, err);
}

static int suspend_op(struct virt *v, virDomainPtr dom, const char *name, void *arg,
                      struct virt_error *err)
{
    (void)v;
    (void)arg;
    int active = virDomainIsActive(dom);

    if (active < 0)
        return virt_fail(err, -EIO, "cannot query domain %s", name);
    if (!active)
        return 0;
    /* SAVE_RUNNING: a desktop paused when saved still comes back running. */
    if (virDomainManagedSave(dom, VIR_DOMAIN_SAVE_RUNNING) == 0)
        return 0;
    if (!unsupported_flags_error())
        return virt_fail(err, -EIO, "cannot save domain %s", name);
    virResetLastError();
    if (virDomainManagedSave(dom, 0) < 0)
        return virt_fail(err, -EIO, "cannot save domain %s", name);
    return 0;
}

int virt_desktop_suspend(struct virt *v, const char *name, struct virt_error *err)
{
    return domain_call(v, name, suspend_op, NULL, err);
}

static int set_owner_op(struct virt *v, virDomainPtr dom, const char *name, void *arg,
                        struct virt_error *err)
{
    (void)v;
    const char *owner = arg;
    struct desktop_meta m;
    unsigned flags = VIR_DOMAIN_AFFECT_CONFIG;
    char *buf = NULL;
    size_t len = 0;
    _cleanup_(freep) char *xml = NULL;
    FILE *f;
    int r, active;

    /* The persistent definition is the one that stays; rewrite it from its own fields. */
    r = domain_meta(dom, name, VIR_DOMAIN_AFFECT_CONFIG, &m, err);
    if (r < 0)
        return r;
    active = virDomainIsActive(dom);
    if (active < 0)
        return virt_fail(err, -EIO, "cannot query domain %s", name);
    if (active)
        flags |= VIR_DOMAIN_AFFECT_LIVE;

    f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    metadata_write(f, "", false, m.pool, owner, m.template_name, m.created);
    r = memstream_finish(f, &buf, &xml);
    if (r < 0)
        return r;
    if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, VIRT_METADATA_PREFIX,
                             VIRT_METADATA_URI, flags) < 0)
        return virt_fail(err, -EIO, "cannot set owner of domain %s", name);
    return 0;
}

int virt_desktop_set_owner(struct virt *v, const char *name, const char *owner,
                           struct virt_error *err)
{
    if (!text_is_valid(owner, VIRT_META_MAX)) {
        error_reset(err);
        return set_error(err, -EINVAL, "invalid owner for %s", name ? name : "?");
    }
    return domain_call(v, name, set_owner_op, (void *)(owner ? owner : ""), err);
}

static int state_op(struct virt *v, virDomainPtr dom, const char *name, void *arg,
                    struct virt_error *err)
{
    (void)v;
    return domain_state(dom, name, arg, err);
}

/* A read-only look at one of our domains, without waiting for the name's lock: a state
 * query must not wait for a shutdown of the same desktop (seconds) in another thread. */
static int domain_peek(struct virt *v, const char *name, domain_op op, void *arg,
                       struct virt_error *err)
{
    virDomainPtr dom = NULL;
    int r;

    error_reset(err);
    if (!name_is_valid(name))
        return set_error(err, -EINVAL, "invalid desktop name");
    r = domain_lookup(v, name, &dom, err);
    if (r == 0) {
        r = op(v, dom, name, arg, err);
        virDomainFree(dom);
    }
    return r;
}

int virt_desktop_state(struct virt *v, const char *name, enum virt_state *ret,
                       struct virt_error *err)
{
    int r = domain_peek(v, name, state_op, ret, err);
    if (r == -ENOENT) {
        error_reset(err);
        *ret = VIRT_STATE_MISSING;
        return 0;
    }
    return r;
}

static int open_display_op(struct virt *v, virDomainPtr dom, const char *name, void *arg,
                           struct virt_error *err)
{
    (void)v;
    int *ret_fd = arg;
    int active, fd;

    active = virDomainIsActive(dom);
    if (active < 0)
        return virt_fail(err, -EIO, "cannot query domain %s", name);
    if (!active)
        return set_error(err, -ENOTCONN, "domain %s is not running", name);
    fd = virDomainOpenGraphicsFD(dom, 0, VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH);
    if (fd < 0)
        return virt_fail(err, -EIO, "cannot open display of domain %s", name);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int r = -errno;
        safe_close(fd);
        return set_error(err, r, "cannot set FD_CLOEXEC on display of %s", name);
    }
    *ret_fd = fd;
    return 0;
}

int virt_desktop_open_display(struct virt *v, const char *name, int *ret_fd, struct virt_error *err)
{
    return domain_call(v, name, open_display_op, ret_fd, err);
}

/* ---- the whole host ---- */

static int info_cmp(const void *a, const void *b)
{
    return strcmp(((const struct virt_domain_info *)a)->name,
                  ((const struct virt_domain_info *)b)->name);
}

/* Fills i from dom. 1 when dom is ours, 0 when not ours or gone meanwhile, -errno. */
static int domain_info(virDomainPtr dom, struct virt_domain_info *i, struct virt_error *err)
{
    const char *name = virDomainGetName(dom);
    struct desktop_meta m;
    virDomainInfo di;
    int r;

    if (!name || strlen(name) >= sizeof(i->name))
        return 0; /* never one of ours */
    r = domain_meta(dom, name, 0, &m, err);
    if (r == -EEXIST || r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    if (virDomainGetInfo(dom, &di) < 0) {
        if (last_error_is(VIR_ERR_NO_DOMAIN)) {
            virResetLastError();
            return 0;
        }
        return virt_fail(err, -EIO, "cannot get info of domain %s", name);
    }
    r = domain_state(dom, name, &i->state, err);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    snprintf(i->name, sizeof(i->name), "%s", name);
    snprintf(i->pool, sizeof(i->pool), "%s", m.pool);
    snprintf(i->owner, sizeof(i->owner), "%s", m.owner);
    snprintf(i->template_name, sizeof(i->template_name), "%s", m.template_name);
    snprintf(i->created, sizeof(i->created), "%s", m.created);
    i->vcpus = di.nrVirtCpu;
    i->memory_mib = (int)(di.maxMem / 1024);
    return 1;
}

int virt_list(struct virt *v, struct virt_domain_info **ret, size_t *ret_n, struct virt_error *err)
{
    virConnectPtr c;
    virDomainPtr *doms = NULL;
    struct virt_domain_info *infos;
    size_t n = 0;
    int count, r = 0;

    error_reset(err);
    c = conn_get(v, err);
    if (!c)
        return -EIO;
    count = virConnectListAllDomains(c, &doms, 0);
    if (count < 0)
        r = virt_fail(err, -EIO, "cannot list domains");
    conn_put(c); /* the domains hold their own references */
    if (count < 0)
        return r;
    infos = calloc((size_t)count + 1, sizeof(*infos));
    if (!infos)
        r = -ENOMEM;
    for (int i = 0; i < count; i++) {
        if (r >= 0) {
            r = domain_info(doms[i], &infos[n], err);
            if (r > 0)
                n++;
        }
        virDomainFree(doms[i]);
    }
    free(doms);
    if (r < 0) {
        free(infos);
        return r;
    }
    qsort(infos, n, sizeof(*infos), info_cmp);
    error_reset(err); /* domains that are not ours are no error */
    *ret = infos;
    *ret_n = n;
    return 0;
}

int virt_host_capacity(struct virt *v, struct virt_host_capacity *ret, struct virt_error *err)
{
    virConnectPtr c;
    virNodeInfo ni;
    int r = 0;

    error_reset(err);
    c = conn_get(v, err);
    if (!c)
        return -EIO;
    if (virNodeGetInfo(c, &ni) < 0)
        r = virt_fail(err, -EIO, "cannot get host information");
    conn_put(c);
    if (r < 0)
        return r;
    ret->cpus = ni.cpus;
    ret->memory_mib = (uint64_t)ni.memory / 1024;
    return 0;
}

const char *virt_state_to_string(enum virt_state s)
{
    static const char *const names[] = {
        [VIRT_STATE_MISSING] = "missing", [VIRT_STATE_SHUTOFF] = "shutoff",
        [VIRT_STATE_SAVED] = "saved",     [VIRT_STATE_RUNNING] = "running",
        [VIRT_STATE_PAUSED] = "paused",   [VIRT_STATE_OTHER] = "other",
    };

    if ((unsigned)s >= ARRAY_SIZE(names) || !names[s])
        return "other";
    return names[s];
}
