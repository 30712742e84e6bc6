#pragma once
/*
 * The one place libvirt lives in vdi: the connection (with libvirt's event loop in its
 * own joinable thread, needed by qemu:///embed), desktop VMs and their disks.
 *
 * A desktop is the domain "vdi-<user>", defined on first use from a template: a qcow2
 * overlay on the template disk (libvirt's storage API, pool VIRT_POOL_NAME, when the
 * connection has a storage driver; qemu-img otherwise, e.g. for qemu:///embed which has
 * none), a VNC display with no listener (<listen type='none'/>), no network, a serial log
 * file, and our <metadata> (VIRT_METADATA_URI) with owner, template and creation time.
 * A domain with that name but without our metadata, or with another owner, is never
 * touched.
 *
 * Thread-safe: worker threads call these concurrently; calls for the same desktop are
 * serialised. Blocking (domain start can take seconds): never from the event loop.
 * Functions return negative errno and, where they take one, fill struct virt_error with
 * libvirt's own words for the log (not for end users).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

#define VIRT_POOL_NAME "vdi-disks"
#define VIRT_METADATA_URI "urn:vdi:desktop:1"
#define VIRT_METADATA_PREFIX "vdi"
#define VIRT_NAME_PREFIX "vdi-"
#define VIRT_NAME_MAX 64

struct virt;

struct virt_error {
    char message[512];
};

struct virt_template {
    const char *virt_type; /* domain type: "kvm" or "qemu" */
    const char *disk;      /* base image, absolute path */
    enum image_format disk_format;
    uint64_t disk_size; /* virtual size in bytes (image_probe) */
    const char *kernel; /* "" or NULL: boot from disk */
    const char *initrd;
    const char *cmdline;
    int memory_mib;
    int vcpus;
    const char *disk_dir;    /* overlay directory = pool VIRT_POOL_NAME's target */
    const char *console_dir; /* serial logs: <console_dir>/vdi-<user>.log */
};

/* For qemu:///embed?root=ROOT: makes ROOT and, unless present, ROOT/etc/qemu.conf with
 * stdio_handler = "file" so QEMU writes serial logs itself and no virtlogd daemon is needed.
 * Returns 0 or -errno. */
int virt_embed_prepare(const char *root, struct virt_error *err);

/* Opens uri (starting libvirt's event loop thread first). Returns 0, -EIO. */
int virt_new(const char *uri, struct virt **ret, struct virt_error *err);
/* Closes the connection and joins the event thread. Never touches domains. NULL ok. */
void virt_free(struct virt *v);
static inline void virt_freep(struct virt **v)
{
    virt_free(*v);
}

/* Makes sure the storage pool VIRT_POOL_NAME exists, targets disk_dir and is active
 * (defines, builds and starts it when missing). A connection without a storage driver is
 * fine: overlays are then made with qemu-img. Returns 0, -EEXIST when the pool exists
 * with another directory, -EIO. */
int virt_pool_ensure(struct virt *v, const char *disk_dir, struct virt_error *err);

/* "vdi-<user>"; -EINVAL when user is not username_is_valid(). */
int virt_desktop_name(const char *user, char *buf, size_t size);

/* Defines vdi-<user> (and its overlay) unless it exists. *ret_created (may be NULL) says
 * whether it was defined now. Returns 0, -EINVAL (bad user), -EEXIST (a domain of that
 * name that is not ours), -EIO. */
int virt_desktop_define(struct virt *v, const struct virt_template *t, const char *user,
                        bool *ret_created, struct virt_error *err);
/* Starts (or resumes) vdi-<user> unless running. *ret_started (may be NULL) says whether
 * it was started now. Returns 0, -ENOENT (not defined), -EEXIST (not ours), -EIO. */
int virt_desktop_start(struct virt *v, const char *user, bool *ret_started, struct virt_error *err);
/* A connected fd to the running desktop's VNC display (no auth), O_CLOEXEC.
 * Returns 0, -ENOENT, -EEXIST, -ENOTCONN (not running), -EIO. */
int virt_desktop_open_display(struct virt *v, const char *user, int *ret_fd,
                              struct virt_error *err);

/* Domain XML for a desktop (pure; exposed for tests). created is ISO-8601. */
int virt_desktop_xml(const struct virt_template *t, const char *user, const char *disk_path,
                     const char *created, char **ret);
