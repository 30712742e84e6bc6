#pragma once
/*
 * The one place libvirt lives in vdi: the connection (with libvirt's event loop in its
 * own joinable thread, needed by qemu:///embed), desktop VMs, their disks and the host's
 * capacity.
 *
 * A desktop is a libvirt domain (name chosen by the caller, "vdi-<pool>-NNNN") made from
 * a template: a qcow2 overlay <disk_dir>/<name>.qcow2 on the template's base image
 * (linked clone), a VNC display with no listener (<listen type='none'/>), no network, a
 * serial log <console_dir>/<name>.log, per-OS device defaults, and our <metadata>
 * (VIRT_METADATA_URI: pool, owner, template, created). A domain without our metadata is
 * never touched (-EEXIST).
 *
 * Overlays go through libvirt's storage API (a "dir" pool VIRT_POOL_NAME on disk_dir)
 * when the connection has a storage driver (qemu:///system, remote URIs, test:///).
 * qemu:///embed has none in libvirt 9.0 ("Driver does not support embedded mode"), so
 * there they are made with `qemu-img create -b` (fixed argv, no shell) and removed with
 * unlink(): same file, same place.
 *
 * Thread-safe: worker threads call these concurrently; calls for the same domain name
 * are serialised. Blocking (start, shutdown can take seconds): never from the event
 * loop. Functions return negative errno and, where they take one, fill struct virt_error
 * with libvirt's own words for the log (not for end users).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

#define VIRT_POOL_NAME "vdi-disks"
#define VIRT_METADATA_URI "urn:vdi:desktop:1"
#define VIRT_METADATA_PREFIX "vdi"
#define VIRT_NAME_MAX 64

struct virt;

struct virt_error {
    char message[512];
};

enum virt_os { VIRT_OS_LINUX, VIRT_OS_WINDOWS };
enum virt_firmware { VIRT_FIRMWARE_BIOS, VIRT_FIRMWARE_UEFI };

/* What a desktop is made of. */
struct virt_template {
    const char *name; /* for the metadata */
    enum virt_os os;
    enum virt_firmware firmware;
    const char *disk; /* base image, absolute path */
    enum image_format disk_format;
    uint64_t disk_size; /* virtual size in bytes (image_probe) */
    const char *kernel; /* "" or NULL: boot from disk */
    const char *initrd;
    const char *cmdline;
};

struct virt_desktop_spec {
    const char *name;  /* domain name, 1..VIRT_NAME_MAX-1 of [A-Za-z0-9._-] */
    const char *pool;  /* metadata */
    const char *owner; /* metadata; "" = free */
    const struct virt_template *tmpl;
    int vcpus;
    int memory_mib;
    const char *created; /* ISO-8601, metadata */
};

enum virt_state {
    VIRT_STATE_MISSING, /* no such domain */
    VIRT_STATE_SHUTOFF, /* defined, not running, no saved state */
    VIRT_STATE_SAVED,   /* not running, has a managed save image (resumes on start) */
    VIRT_STATE_RUNNING,
    VIRT_STATE_PAUSED,
    VIRT_STATE_OTHER, /* shutting down, crashed, ... */
};
const char *virt_state_to_string(enum virt_state s);

/* One of our domains as libvirt sees it (virt_list). */
struct virt_domain_info {
    char name[VIRT_NAME_MAX];
    char pool[64];
    char owner[64];
    char template_name[64];
    char created[64];
    enum virt_state state;
    int vcpus;
    int memory_mib;
};

struct virt_host_capacity {
    unsigned cpus;       /* logical CPUs */
    uint64_t memory_mib; /* physical memory */
};

/* Where desktops' files go and how they run; copied by virt_new. */
struct virt_options {
    const char *uri;
    const char *virt_type;   /* domain type: "kvm" or "qemu" */
    const char *disk_dir;    /* overlays (and the storage pool's target) */
    const char *console_dir; /* serial logs */
};

/* For qemu:///embed?root=ROOT: makes ROOT and, unless present, ROOT/etc/qemu.conf with
 * stdio_handler = "file" so QEMU writes serial logs itself and no virtlogd daemon is needed.
 * Returns 0 or -errno. */
int virt_embed_prepare(const char *root, struct virt_error *err);

/* Opens the connection (starting libvirt's event loop thread first) and makes sure the
 * storage pool VIRT_POOL_NAME exists on disk_dir and is active when the connection has
 * a storage driver. Returns 0, -EEXIST (the pool exists with another directory), -EIO. */
int virt_new(const struct virt_options *o, struct virt **ret, struct virt_error *err);
/* Closes the connection and joins the event thread. Never touches domains. NULL ok. */
void virt_free(struct virt *v);
static inline void virt_freep(struct virt **v)
{
    virt_free(*v);
}
/* ---- lifecycle events ----
 * What a domain of ours went through, from libvirt's lifecycle events (details mapped;
 * other events such as suspend, resume, define are not reported). */
enum virt_event {
    VIRT_EVENT_STARTED,   /* booted, restored from a managed save, woken up, migrated in */
    VIRT_EVENT_SHUTDOWN,  /* the guest powered off */
    VIRT_EVENT_DESTROYED, /* killed from outside (virsh destroy, virDomainDestroy) */
    VIRT_EVENT_CRASHED,   /* guest crash (panic device, on_crash=destroy) or QEMU failure
                             (QEMU killed or died) */
    VIRT_EVENT_STOPPED,   /* other stops: managed save, migrated away, snapshot revert */
};
const char *virt_event_to_string(enum virt_event ev);

/* Runs on libvirt's event thread: must not block and must not call libvirt (or virt.h);
 * hand the event over to a worker. domain is only valid during the call. */
typedef void (*virt_event_fn)(void *userdata, const char *domain, enum virt_event ev);

/* Reports lifecycle events of domains that carry our metadata to fn (fn NULL: stop);
 * a second call replaces the first. Events of every domain of ours come, whoever caused
 * them (virt_desktop_destroy too): telling own stops apart is the caller's business.
 * The registration survives reconnections (see below). After virt_watch(v, NULL, NULL)
 * or virt_free returns, fn is not running and is never called again.
 * Returns 0, -EIO (libvirt refused the registration; nothing changed).
 *
 * The connection: keepalive (5 s x 3) where the driver has it (remote URIs; local and
 * embedded drivers say "unsupported", which is fine). When libvirt closes it (libvirtd
 * restarted, keepalive timeout), an error is logged and the next call reopens it and
 * registers again; calls in flight on the old connection fail with -EIO. Events missed
 * in between are not replayed (pools_maintain's checks catch up). */
int virt_watch(struct virt *v, virt_event_fn fn, void *userdata);

/* Whether overlays go through the storage API (false: qemu-img). */
bool virt_has_storage_api(const struct virt *v);

/* UEFI firmware (OVMF code + vars template) on this host, or false. Paths are static. */
bool virt_uefi_firmware(const char **ret_code, const char **ret_vars);

/* Overlay <disk_dir>/<name>.qcow2 on the template's base image. create: -EEXIST if it
 * exists. delete: 0 also when it did not exist. ret_path (may be NULL) gets the path. */
int virt_overlay_create(struct virt *v, const char *name, const struct virt_template *t,
                        char *ret_path, size_t size, struct virt_error *err);
int virt_overlay_delete(struct virt *v, const char *name, struct virt_error *err);
/* Names (without .qcow2) of overlays in disk_dir, for reconciliation. */
int virt_overlay_list(struct virt *v, char ***ret, size_t *ret_n, struct virt_error *err);

/* Defines the domain for an overlay made by virt_overlay_create. -EEXIST if a domain of
 * that name exists (ours or not). */
int virt_desktop_define(struct virt *v, const struct virt_desktop_spec *spec,
                        struct virt_error *err);
/* Destroys if running, removes managed save and NVRAM, undefines. Not the overlay.
 * 0 also when it did not exist; -EEXIST if not ours. */
int virt_desktop_undefine(struct virt *v, const char *name, struct virt_error *err);
/* Starts (restoring a managed save) or resumes; *ret_started (may be NULL) says whether
 * it was not running before. -ENOENT, -EEXIST (not ours), -EIO. */
int virt_desktop_start(struct virt *v, const char *name, bool *ret_started,
                       struct virt_error *err);
/* ACPI shutdown, then power off if still running after timeout_ms. 0 when off. */
int virt_desktop_shutdown(struct virt *v, const char *name, int timeout_ms,
                          struct virt_error *err);
/* Power off now (data not flushed by the guest is lost). 0 also when already off. */
int virt_desktop_destroy(struct virt *v, const char *name, struct virt_error *err);
/* Managed save: the RAM goes to disk, the domain stops; the next start resumes it.
 * 0 also when not running. */
int virt_desktop_suspend(struct virt *v, const char *name, struct virt_error *err);
/* Rewrites the owner in the metadata (persistent config and, if running, live). */
int virt_desktop_set_owner(struct virt *v, const char *name, const char *owner,
                           struct virt_error *err);
int virt_desktop_state(struct virt *v, const char *name, enum virt_state *ret,
                       struct virt_error *err);
/* A connected fd to the running desktop's VNC display (no auth), O_CLOEXEC.
 * Returns 0, -ENOENT, -EEXIST, -ENOTCONN (not running), -EIO. */
int virt_desktop_open_display(struct virt *v, const char *name, int *ret_fd,
                              struct virt_error *err);

/* Every domain that carries our metadata, sorted by name. */
int virt_list(struct virt *v, struct virt_domain_info **ret, size_t *ret_n,
              struct virt_error *err);
int virt_host_capacity(struct virt *v, struct virt_host_capacity *ret, struct virt_error *err);

/* Domain XML (exposed for tests; reads nothing but whether OVMF is installed).
 * disk_path: the overlay; console_dir: where the serial log goes; virt_type "kvm"/"qemu"
 * (Hyper-V enlightenments only with kvm: QEMU's TCG refuses vpindex/synic/stimer).
 * -EINVAL for missing or bad fields, -ENOENT for UEFI without OVMF. */
int virt_desktop_xml(const struct virt_desktop_spec *spec, const char *virt_type,
                     const char *disk_path, const char *console_dir, char **ret);
