/* broker/virt.c: domain XML (compared with tests/data/virt/), and everything else against
 * libvirt's in-memory test driver (test:///default). That driver keeps one shared state
 * per process while at least one test:///default connection is open, so a raw connection
 * opened by a test sees what virt.c did; every test uses its own domain names. The
 * qemu-img path (no storage driver) is checked with the real QEMU driver in embedded mode
 * when it is available here; no VM is started. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "virt.h"

#define TEST_URI "test:///default"
#define DISK_DIR "/vdi-test/disks"
#define CONSOLE_DIR "/vdi-test/console"
#define CREATED "2024-01-02T03:04:05Z"

static const struct virt_options test_opts = {
    .uri = TEST_URI,
    .virt_type = "qemu",
    .disk_dir = DISK_DIR,
    .console_dir = CONSOLE_DIR,
};

static const struct virt_template linux_tmpl = {
    .name = "demo",
    .os = VIRT_OS_LINUX,
    .firmware = VIRT_FIRMWARE_BIOS,
    .disk = "/srv/templates/base & co.img",
    .disk_format = IMAGE_RAW,
    .disk_size = 64 << 20,
    .kernel = "/boot/vmlinuz",
    .initrd = "/boot/initrd.img",
    .cmdline = "console=tty0 <x>",
};

static const struct virt_template windows_tmpl = {
    .name = "win11",
    .os = VIRT_OS_WINDOWS,
    .firmware = VIRT_FIRMWARE_BIOS,
    .disk = "/srv/templates/win.qcow2",
    .disk_format = IMAGE_QCOW2,
    .disk_size = 40ull << 30,
};

static struct virt_desktop_spec spec_for(const char *name, const struct virt_template *t)
{
    return (struct virt_desktop_spec){
        .name = name,
        .pool = "lab",
        .owner = "",
        .tmpl = t,
        .vcpus = 2,
        .memory_mib = 256,
        .created = CREATED,
    };
}

/* ---- helpers ---- */

static char *read_data_file(const char *name)
{
    /* tests/unit/broker/test_virt.c -> tests/data/virt/NAME */
    char path[4096];
    const char *slash = strrchr(__FILE__, '/');
    int dirlen = slash ? (int)(slash - __FILE__) : 1;
    snprintf(path, sizeof(path), "%.*s/../../data/virt/%s", dirlen, slash ? __FILE__ : ".", name);
    FILE *f = fopen(path, "re");
    if (!f)
        fail_msg("cannot open expected output %s", path);
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

static void assert_xml_matches(const char *xml, const char *expected_file)
{
    char *expected = read_data_file(expected_file);
    if (strcmp(xml, expected) != 0) {
        print_error("got:\n%s\nexpected (%s):\n%s\n", xml, expected_file, expected);
        free(expected);
        fail();
    }
    free(expected);
}

static virConnectPtr raw_conn(void)
{
    virConnectPtr c = virConnectOpen(TEST_URI);
    assert_non_null(c);
    return c;
}

static struct virt *open_virt(void)
{
    struct virt *v = NULL;
    struct virt_error err = {""};
    int r = virt_new(&test_opts, &v, &err);
    if (r < 0)
        fail_msg("virt_new: %d %s", r, err.message);
    return v;
}

/* Overlay and domain for spec, checked. */
static void make_desktop(struct virt *v, const struct virt_desktop_spec *spec)
{
    struct virt_error err = {""};
    int r = virt_overlay_create(v, spec->name, spec->tmpl, NULL, 0, &err);
    if (r < 0 && r != -EEXIST)
        fail_msg("virt_overlay_create %s: %d %s", spec->name, r, err.message);
    r = virt_desktop_define(v, spec, &err);
    if (r < 0)
        fail_msg("virt_desktop_define %s: %d %s", spec->name, r, err.message);
}

static enum virt_state state_of(struct virt *v, const char *name)
{
    struct virt_error err = {""};
    enum virt_state s = VIRT_STATE_OTHER;
    int r = virt_desktop_state(v, name, &s, &err);
    if (r < 0)
        fail_msg("virt_desktop_state %s: %d %s", name, r, err.message);
    return s;
}

static const struct virt_domain_info *find_info(const struct virt_domain_info *infos, size_t n,
                                                const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(infos[i].name, name) == 0)
            return &infos[i];
    return NULL;
}

/* ---- XML (pure) ---- */

static void test_xml_linux_direct_boot(void **state)
{
    (void)state;
    struct virt_desktop_spec spec = spec_for("vdi-lab-0001", &linux_tmpl);
    spec.owner = "alice";
    char *xml = NULL;

    assert_int_equal(
        virt_desktop_xml(&spec, "qemu", DISK_DIR "/vdi-lab-0001.qcow2", CONSOLE_DIR, &xml), 0);
    assert_xml_matches(xml, "linux-direct-boot.xml");

    /* What the expected file says, spelled out. */
    assert_non_null(strstr(xml, "<domain type='qemu'>"));
    assert_non_null(strstr(xml, "<graphics type='vnc'>\n      <listen type='none'/>"));
    assert_null(strstr(xml, "<interface"));
    assert_null(strstr(xml, "autoport"));
    assert_null(strstr(xml, "passwd"));
    assert_non_null(strstr(xml, "<vdi:desktop xmlns:vdi='urn:vdi:desktop:1'>"));
    assert_non_null(strstr(xml, "<vdi:pool>lab</vdi:pool>"));
    assert_non_null(strstr(xml, "<vdi:owner>alice</vdi:owner>"));
    assert_non_null(strstr(xml, "<vdi:template>demo</vdi:template>"));
    assert_non_null(strstr(xml, "<vdi:created>" CREATED "</vdi:created>"));
    assert_non_null(strstr(xml, "machine='pc'"));
    assert_non_null(strstr(xml, "<kernel>/boot/vmlinuz</kernel>"));
    assert_non_null(strstr(xml, "<initrd>/boot/initrd.img</initrd>"));
    assert_non_null(strstr(xml, "<cmdline>console=tty0 &lt;x&gt;</cmdline>"));
    assert_null(strstr(xml, "<boot dev"));
    assert_non_null(strstr(xml, "<target dev='vda' bus='virtio'/>"));
    assert_non_null(strstr(xml, "<model type='vga'/>"));
    assert_non_null(strstr(xml, "<input type='keyboard' bus='ps2'/>"));
    assert_non_null(strstr(xml, "<input type='tablet' bus='usb'/>"));
    assert_non_null(strstr(xml, "<backend model='random'>/dev/urandom</backend>"));
    assert_non_null(strstr(xml, "<memballoon model='virtio'/>"));
    assert_non_null(strstr(xml, "<acpi/>"));
    assert_non_null(strstr(xml, "<serial type='file'>\n      <source path='" CONSOLE_DIR
                                "/vdi-lab-0001.log' append='on'/>"));
    assert_non_null(strstr(xml, "<console type='file'>\n      <source path='" CONSOLE_DIR
                                "/vdi-lab-0001.log' append='on'/>"));
    assert_null(strstr(xml, "hyperv"));
    assert_null(strstr(xml, "<loader"));
    /* a stop or crash ends the domain (lifecycle events say which); a panic is seen */
    assert_non_null(strstr(xml, "<on_poweroff>destroy</on_poweroff>"));
    assert_non_null(strstr(xml, "<on_reboot>restart</on_reboot>"));
    assert_non_null(strstr(xml, "<on_crash>destroy</on_crash>"));
    assert_non_null(strstr(xml, "<panic model='isa'/>"));
    free(xml);
}

static void test_xml_linux_disk_boot(void **state)
{
    (void)state;
    struct virt_template t = linux_tmpl;
    t.kernel = "";
    t.initrd = NULL;
    t.cmdline = "";
    struct virt_desktop_spec spec = spec_for("vdi-lab-0002", &t);
    char *xml = NULL;

    assert_int_equal(virt_desktop_xml(&spec, "kvm", "/d/vdi-lab-0002.qcow2", "/c", &xml), 0);
    assert_xml_matches(xml, "linux-disk-boot.xml");
    assert_non_null(strstr(xml, "<domain type='kvm'>"));
    assert_non_null(strstr(xml, "<boot dev='hd'/>"));
    assert_null(strstr(xml, "<kernel>"));
    assert_null(strstr(xml, "<initrd>"));
    assert_null(strstr(xml, "<cmdline>"));
    assert_non_null(strstr(xml, "<vdi:owner></vdi:owner>")); /* free */
    free(xml);
}

static void test_xml_windows(void **state)
{
    (void)state;
    struct virt_desktop_spec spec = spec_for("vdi-win-0001", &windows_tmpl);
    char *xml = NULL;

    assert_int_equal(virt_desktop_xml(&spec, "kvm", "/d/vdi-win-0001.qcow2", "/c", &xml), 0);
    assert_xml_matches(xml, "windows-kvm-bios.xml");
    assert_non_null(strstr(xml, "machine='q35'"));
    assert_non_null(strstr(xml, "<hyperv mode='custom'>"));
    assert_non_null(strstr(xml, "<spinlocks state='on' retries='8191'/>"));
    assert_non_null(strstr(xml, "<frequencies state='on'/>"));
    assert_non_null(strstr(xml, "<clock offset='localtime'>"));
    assert_non_null(strstr(xml, "<timer name='rtc' tickpolicy='catchup'/>"));
    assert_non_null(strstr(xml, "<timer name='pit' tickpolicy='delay'/>"));
    assert_non_null(strstr(xml, "<timer name='hpet' present='no'/>"));
    assert_non_null(strstr(xml, "<timer name='hypervclock' present='yes'/>"));
    assert_non_null(strstr(xml, "<target dev='sda' bus='sata'/>"));
    assert_non_null(strstr(xml, "<apic/>"));
    assert_non_null(strstr(xml, "<memballoon model='none'/>"));
    assert_non_null(strstr(xml, "<input type='tablet' bus='usb'/>"));
    assert_non_null(strstr(xml, "<model type='vga'/>"));
    assert_non_null(strstr(xml, "<boot dev='hd'/>"));
    assert_non_null(strstr(xml, "<listen type='none'/>"));
    /* No virtio device Windows would need a driver to boot with; only the guest agent's
     * channel, inert until the SPICE guest tools are installed. */
    const char *agent_target = "<target type='virtio' name='com.redhat.spice.0'/>";
    const char *agent = strstr(xml, agent_target);
    assert_non_null(agent);
    assert_true(strstr(xml, "virtio") == agent + strlen("<target type='"));
    assert_null(strstr(agent + strlen(agent_target), "virtio"));
    assert_null(strstr(xml, "<interface"));
    assert_null(strstr(xml, "<loader"));
    free(xml);

    /* Under TCG QEMU refuses the Hyper-V features: left out, the rest stays. */
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/vdi-win-0001.qcow2", "/c", &xml), 0);
    assert_null(strstr(xml, "hyperv"));
    assert_non_null(strstr(xml, "<clock offset='localtime'>"));
    assert_non_null(strstr(xml, "<target dev='sda' bus='sata'/>"));
    free(xml);
}

static void test_xml_uefi(void **state)
{
    (void)state;
    const char *code = NULL, *vars = NULL;
    struct virt_template w = windows_tmpl, l = linux_tmpl;
    w.firmware = VIRT_FIRMWARE_UEFI;
    l.firmware = VIRT_FIRMWARE_UEFI;
    struct virt_desktop_spec spec = spec_for("vdi-win-0002", &w);
    char want[512];
    char *xml = NULL;

    if (!virt_uefi_firmware(&code, &vars)) {
        /* No OVMF on this host: the XML cannot be written. */
        assert_int_equal(virt_desktop_xml(&spec, "kvm", "/d/x.qcow2", "/c", &xml), -ENOENT);
        assert_null(xml);
        skip();
    }
    assert_non_null(strstr(code, "OVMF_CODE"));
    assert_non_null(strstr(vars, "OVMF_VARS"));
    assert_int_equal(access(code, R_OK), 0);
    assert_int_equal(access(vars, R_OK), 0);
    /* Debian's ovmf has the 4M pair: it is preferred. */
    if (access("/usr/share/OVMF/OVMF_CODE_4M.fd", R_OK) == 0 &&
        access("/usr/share/OVMF/OVMF_VARS_4M.fd", R_OK) == 0) {
        assert_string_equal(code, "/usr/share/OVMF/OVMF_CODE_4M.fd");
        assert_string_equal(vars, "/usr/share/OVMF/OVMF_VARS_4M.fd");
    }
    assert_true(virt_uefi_firmware(NULL, NULL));

    assert_int_equal(virt_desktop_xml(&spec, "kvm", "/d/x.qcow2", "/c", &xml), 0);
    snprintf(want, sizeof(want), "<loader readonly='yes' type='pflash'>%s</loader>", code);
    assert_non_null(strstr(xml, want));
    snprintf(want, sizeof(want), "<nvram template='%s'/>", vars);
    assert_non_null(strstr(xml, want));
    assert_non_null(strstr(xml, "machine='q35'"));
    assert_non_null(strstr(xml, "<hyperv mode='custom'>"));
    free(xml);

    /* UEFI Linux: q35 too, still virtio and direct boot. */
    spec.tmpl = &l;
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x.qcow2", "/c", &xml), 0);
    snprintf(want, sizeof(want), "<loader readonly='yes' type='pflash'>%s</loader>", code);
    assert_non_null(strstr(xml, want));
    assert_non_null(strstr(xml, "machine='q35'"));
    assert_non_null(strstr(xml, "<target dev='vda' bus='virtio'/>"));
    assert_non_null(strstr(xml, "<kernel>/boot/vmlinuz</kernel>"));
    free(xml);
}

static void test_xml_escaping(void **state)
{
    (void)state;
    struct virt_template t = linux_tmpl;
    t.name = "t'<x>\"&";
    struct virt_desktop_spec spec = spec_for("vdi-lab-0003", &t);
    spec.pool = "</vdi:pool><evil/>";
    spec.owner = "a&b'c\"d<e>";
    spec.created = "2024<";
    char *xml = NULL;

    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/it's & <x>.qcow2", "/c&'", &xml), 0);
    assert_non_null(strstr(xml, "<vdi:pool>&lt;/vdi:pool&gt;&lt;evil/&gt;</vdi:pool>"));
    assert_non_null(strstr(xml, "<vdi:owner>a&amp;b&apos;c&quot;d&lt;e&gt;</vdi:owner>"));
    assert_non_null(strstr(xml, "<vdi:template>t&apos;&lt;x&gt;&quot;&amp;</vdi:template>"));
    assert_non_null(strstr(xml, "<vdi:created>2024&lt;</vdi:created>"));
    assert_non_null(strstr(xml, "<source file='/d/it&apos;s &amp; &lt;x&gt;.qcow2'/>"));
    assert_non_null(strstr(xml, "<source path='/c&amp;&apos;/vdi-lab-0003.log' append='on'/>"));
    assert_non_null(strstr(xml, "<kernel>/boot/vmlinuz</kernel>"));
    assert_null(strstr(xml, "<evil"));
    free(xml);

    /* no created: now */
    spec = spec_for("vdi-lab-0003", &linux_tmpl);
    spec.created = NULL;
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x.qcow2", "/c", &xml), 0);
    assert_non_null(strstr(xml, "<vdi:created>20"));
    free(xml);
    xml = NULL;

    /* What cannot be written (or read back whole) is refused. */
    static const char *const bad_names[] = {
        "",
        "a b",
        "../x",
        "a/b",
        "x'y",
        "é",
        "0123456789012345678901234567890123456789012345678901234567890123", /* 64 */
    };
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        spec = spec_for(bad_names[i], &linux_tmpl);
        assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x", "/c", &xml), -EINVAL);
    }
    spec = spec_for("012345678901234567890123456789012345678901234567890123456789012", &linux_tmpl);
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x", "/c", &xml), 0); /* 63: fine */
    free(xml);
    xml = NULL;
    spec = spec_for("ok", &linux_tmpl);
    spec.owner = "new\nline";
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x", "/c", &xml), -EINVAL);
    spec.owner = "0123456789012345678901234567890123456789012345678901234567890123";
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x", "/c", &xml), -EINVAL);
    spec = spec_for("ok", &linux_tmpl);
    spec.pool = "";
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x", "/c", &xml), -EINVAL);
    spec = spec_for("ok", &linux_tmpl);
    spec.memory_mib = 0;
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x", "/c", &xml), -EINVAL);
    spec = spec_for("ok", &linux_tmpl);
    spec.vcpus = -1;
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x", "/c", &xml), -EINVAL);
    spec = spec_for("ok", NULL);
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x", "/c", &xml), -EINVAL);
    spec = spec_for("ok", &linux_tmpl);
    assert_int_equal(virt_desktop_xml(&spec, "", "/d/x", "/c", &xml), -EINVAL);
    assert_int_equal(virt_desktop_xml(&spec, "qemu", NULL, "/c", &xml), -EINVAL);
    assert_int_equal(virt_desktop_xml(&spec, "qemu", "/d/x", "", &xml), -EINVAL);
    assert_null(xml);
}

/* UEFI wanted, no OVMF: -ENOENT with a clear message. Hides /usr/share/OVMF (and
 * Fedora's directory) in a private mount namespace of a child process. */
static void test_uefi_missing(void **state)
{
    (void)state;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Child: no cmocka here (a failed assertion would run the rest of the suite). */
        static const char *const dirs[] = {"/usr/share/OVMF", "/usr/share/edk2"};
        char msg[600];
        close(pipefd[0]);
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            _exit(77);
        for (size_t i = 0; i < 2; i++)
            if (access(dirs[i], F_OK) == 0 && mount("none", dirs[i], "tmpfs", 0, NULL) < 0)
                _exit(77);
        if (virt_uefi_firmware(NULL, NULL))
            _exit(10);
        struct virt_template w = windows_tmpl;
        w.firmware = VIRT_FIRMWARE_UEFI;
        struct virt_desktop_spec spec = spec_for("vdi-uefi-0001", &w);
        char *xml = NULL;
        if (virt_desktop_xml(&spec, "kvm", "/d/x.qcow2", "/c", &xml) != -ENOENT || xml)
            _exit(11);
        struct virt *v = NULL;
        struct virt_error err = {""};
        if (virt_new(&test_opts, &v, &err) < 0)
            _exit(12);
        if (virt_overlay_create(v, spec.name, &w, NULL, 0, &err) < 0)
            _exit(13);
        int r = virt_desktop_define(v, &spec, &err);
        snprintf(msg, sizeof(msg), "%d %s", r, err.message);
        if (write(pipefd[1], msg, strlen(msg)) < 0)
            _exit(14);
        enum virt_state s;
        if (virt_desktop_state(v, spec.name, &s, &err) < 0 || s != VIRT_STATE_MISSING)
            _exit(15);
        virt_free(v);
        _exit(0);
    }
    close(pipefd[1]);
    char msg[600] = "";
    ssize_t n = read(pipefd[0], msg, sizeof(msg) - 1);
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        skip(); /* no mount namespaces for us (not root, or a container) */
    if (WEXITSTATUS(status) != 0)
        fail_msg("child check %d failed (message: %s)", WEXITSTATUS(status), msg);
    assert_true(n > 0);
    msg[n] = 0;
    char want[32];
    snprintf(want, sizeof(want), "%d ", -ENOENT);
    assert_true(strncmp(msg, want, strlen(want)) == 0);
    assert_non_null(strstr(msg, "UEFI"));
    assert_non_null(strstr(msg, "OVMF"));
}

/* ---- test:///default ---- */

static void test_connection(void **state)
{
    (void)state;
    struct virt *v = NULL, *v2 = NULL;
    struct virt_error err = {""};

    assert_int_equal(virt_new(&test_opts, &v, &err), 0);
    assert_true(virt_has_storage_api(v));

    /* the pool, on disk_dir, active */
    virConnectPtr c = raw_conn();
    virStoragePoolPtr pool = virStoragePoolLookupByName(c, VIRT_POOL_NAME);
    assert_non_null(pool);
    assert_int_equal(virStoragePoolIsActive(pool), 1);
    char *desc = virStoragePoolGetXMLDesc(pool, 0);
    assert_non_null(strstr(desc, "<path>" DISK_DIR "</path>"));
    assert_non_null(strstr(desc, "<pool type='dir'>"));
    free(desc);

    /* a second broker connection finds it (trailing slash is the same directory) */
    struct virt_options o = test_opts;
    o.disk_dir = DISK_DIR "/";
    assert_int_equal(virt_new(&o, &v2, &err), 0);
    virt_free(v2);
    v2 = NULL;

    /* inactive: started again */
    assert_int_equal(virStoragePoolDestroy(pool), 0);
    assert_int_equal(virt_new(&test_opts, &v2, &err), 0);
    assert_int_equal(virStoragePoolIsActive(pool), 1);
    virt_free(v2);
    v2 = NULL;
    virStoragePoolFree(pool);

    /* someone else's pool of that name elsewhere */
    o.disk_dir = "/somewhere/else";
    assert_int_equal(virt_new(&o, &v2, &err), -EEXIST);
    assert_non_null(strstr(err.message, VIRT_POOL_NAME));
    assert_null(v2);

    /* bad options, bad URI */
    o = test_opts;
    o.disk_dir = "relative/dir";
    assert_int_equal(virt_new(&o, &v2, &err), -EINVAL);
    o = test_opts;
    o.console_dir = NULL;
    assert_int_equal(virt_new(&o, &v2, &err), -EINVAL);
    o = test_opts;
    o.uri = "nosuchdriver:///x";
    assert_int_equal(virt_new(&o, &v2, &err), -EIO);
    assert_non_null(strstr(err.message, "nosuchdriver"));
    assert_null(v2);

    struct virt_host_capacity cap = {0};
    assert_int_equal(virt_host_capacity(v, &cap, &err), 0);
    assert_true(cap.cpus > 0);
    assert_true(cap.memory_mib > 0);
    virNodeInfo ni;
    assert_int_equal(virNodeGetInfo(c, &ni), 0);
    assert_int_equal(cap.cpus, ni.cpus);
    assert_int_equal(cap.memory_mib, ni.memory / 1024);

    virt_free(v);
    virt_free(NULL);
    virConnectClose(c);
}

static void test_overlays(void **state)
{
    (void)state;
    struct virt *v = open_virt();
    struct virt_error err = {""};
    char path[256];
    char **names = NULL;
    size_t n = 0;

    assert_int_equal(virt_overlay_create(v, "ov-b", &linux_tmpl, path, sizeof(path), &err), 0);
    assert_string_equal(path, DISK_DIR "/ov-b.qcow2");
    assert_int_equal(virt_overlay_create(v, "ov-a", &windows_tmpl, NULL, 0, &err), 0);
    assert_int_equal(virt_overlay_create(v, "ov-b", &linux_tmpl, path, sizeof(path), &err),
                     -EEXIST);
    assert_int_equal(virt_overlay_create(v, "ov-c", &linux_tmpl, path, 10, &err), -ENAMETOOLONG);
    assert_int_equal(virt_overlay_create(v, "../ov", &linux_tmpl, NULL, 0, &err), -EINVAL);
    struct virt_template t = linux_tmpl;
    t.disk = "relative.img";
    assert_int_equal(virt_overlay_create(v, "ov-d", &t, NULL, 0, &err), -EINVAL);

    /* what libvirt made: a qcow2 volume backed by the template, 0600 */
    virConnectPtr c = raw_conn();
    virStoragePoolPtr pool = virStoragePoolLookupByName(c, VIRT_POOL_NAME);
    assert_non_null(pool);
    virStorageVolPtr vol = virStorageVolLookupByName(pool, "ov-b.qcow2");
    assert_non_null(vol);
    char *vxml = virStorageVolGetXMLDesc(vol, 0);
    assert_non_null(vxml);
    assert_non_null(strstr(vxml, "<format type='qcow2'/>"));
    assert_non_null(strstr(vxml, "/srv/templates/base &amp; co.img"));
    assert_non_null(strstr(vxml, "<capacity unit='bytes'>67108864</capacity>"));
    free(vxml);
    virStorageVolFree(vol);

    /* a volume that is not an overlay is not listed */
    vol = virStorageVolCreateXML(
        pool, "<volume><name>notes.txt</name><capacity>1</capacity></volume>", 0);
    assert_non_null(vol);

    assert_int_equal(virt_overlay_list(v, &names, &n, &err), 0);
    assert_true(n >= 2);
    bool seen_a = false, seen_b = false;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(names[i - 1], names[i]) >= 0)
            fail_msg("not sorted: %s then %s", names[i - 1], names[i]);
        assert_null(strstr(names[i], ".qcow2"));
        assert_string_not_equal(names[i], "notes.txt");
        seen_a |= strcmp(names[i], "ov-a") == 0;
        seen_b |= strcmp(names[i], "ov-b") == 0;
    }
    assert_null(names[n]);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    assert_true(seen_a && seen_b);

    assert_int_equal(virt_overlay_delete(v, "ov-b", &err), 0);
    assert_int_equal(virt_overlay_delete(v, "ov-b", &err), 0);
    assert_int_equal(virt_overlay_delete(v, "ov-a", &err), 0);
    assert_int_equal(virt_overlay_delete(v, "a b", &err), -EINVAL);
    virStorageVolPtr gone = virStorageVolLookupByName(pool, "ov-b.qcow2");
    assert_null(gone);
    assert_int_equal(virt_overlay_list(v, &names, &n, &err), 0);
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(names[i], "ov-a");
        assert_string_not_equal(names[i], "ov-b");
        free(names[i]);
    }
    free(names);

    assert_int_equal(virStorageVolDelete(vol, 0), 0);
    virStorageVolFree(vol);
    virStoragePoolFree(pool);
    virConnectClose(c);
    virt_free(v);
}

static void test_lifecycle(void **state)
{
    (void)state;
    struct virt *v = open_virt();
    struct virt_error err = {""};
    struct virt_desktop_spec spec = spec_for("life-1", &linux_tmpl);
    bool started = false;
    int fd = -1;

    /* no overlay, no domain */
    assert_int_equal(virt_desktop_define(v, &spec, &err), -ENOENT);
    assert_non_null(strstr(err.message, "life-1.qcow2"));
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_MISSING);
    assert_int_equal(virt_desktop_start(v, "life-1", NULL, &err), -ENOENT);
    assert_int_equal(virt_desktop_open_display(v, "life-1", &fd, &err), -ENOENT);

    make_desktop(v, &spec);
    assert_int_equal(virt_desktop_define(v, &spec, &err), -EEXIST);
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_SHUTOFF);

    /* what libvirt stored */
    virConnectPtr c = raw_conn();
    virDomainPtr dom = virDomainLookupByName(c, "life-1");
    assert_non_null(dom);
    char *xml = virDomainGetXMLDesc(dom, 0);
    assert_non_null(strstr(xml, "<source file='" DISK_DIR "/life-1.qcow2'/>"));
    assert_non_null(strstr(xml, "<listen type='none'/>"));
    assert_null(strstr(xml, "<interface"));
    assert_non_null(strstr(xml, "<vdi:template>demo</vdi:template>"));
    free(xml);

    /* not running: no display */
    assert_int_equal(virt_desktop_open_display(v, "life-1", &fd, &err), -ENOTCONN);
    assert_int_equal(fd, -1);

    assert_int_equal(virt_desktop_start(v, "life-1", &started, &err), 0);
    assert_true(started);
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_RUNNING);
    assert_int_equal(virt_desktop_start(v, "life-1", &started, &err), 0);
    assert_false(started);

    /* The test driver has no OpenGraphicsFD: -EIO with libvirt's words. */
    int r = virt_desktop_open_display(v, "life-1", &fd, &err);
    if (r == 0) {
        assert_true(fd >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
    } else {
        assert_int_equal(r, -EIO);
        assert_non_null(strstr(err.message, "not supported"));
    }

    /* suspend: saved, and the next start resumes it */
    assert_int_equal(virt_desktop_suspend(v, "life-1", &err), 0);
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_SAVED);
    assert_int_equal(virDomainHasManagedSaveImage(dom, 0), 1);
    assert_int_equal(virt_desktop_suspend(v, "life-1", &err), 0); /* not running: no-op */
    assert_int_equal(virt_desktop_start(v, "life-1", &started, &err), 0);
    assert_true(started);
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_RUNNING);
    assert_int_equal(virDomainHasManagedSaveImage(dom, 0), 0);

    /* paused (by someone): start resumes */
    assert_int_equal(virDomainSuspend(dom), 0);
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_PAUSED);
    assert_int_equal(virt_desktop_start(v, "life-1", &started, &err), 0);
    assert_true(started);
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_RUNNING);

    /* shutdown ends off, and is a no-op when off */
    assert_int_equal(virt_desktop_shutdown(v, "life-1", 2000, &err), 0);
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_SHUTOFF);
    assert_int_equal(virt_desktop_shutdown(v, "life-1", 0, &err), 0);
    assert_int_equal(virt_desktop_destroy(v, "life-1", &err), 0);

    /* destroy */
    assert_int_equal(virt_desktop_start(v, "life-1", &started, &err), 0);
    assert_int_equal(virt_desktop_destroy(v, "life-1", &err), 0);
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_SHUTOFF);

    /* undefine a saved desktop: the save image goes too; the overlay stays */
    assert_int_equal(virt_desktop_start(v, "life-1", &started, &err), 0);
    assert_int_equal(virt_desktop_suspend(v, "life-1", &err), 0);
    assert_int_equal(virt_desktop_undefine(v, "life-1", &err), 0);
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_MISSING);
    assert_int_equal(virt_desktop_undefine(v, "life-1", &err), 0);
    char **names = NULL;
    size_t n = 0;
    bool overlay_left = false;
    assert_int_equal(virt_overlay_list(v, &names, &n, &err), 0);
    for (size_t i = 0; i < n; i++) {
        overlay_left |= strcmp(names[i], "life-1") == 0;
        free(names[i]);
    }
    free(names);
    assert_true(overlay_left);

    /* running desktop: undefine powers it off first */
    make_desktop(v, &spec);
    assert_int_equal(virt_desktop_start(v, "life-1", NULL, &err), 0);
    assert_int_equal(virt_desktop_undefine(v, "life-1", &err), 0);
    assert_int_equal(state_of(v, "life-1"), VIRT_STATE_MISSING);
    assert_int_equal(virt_overlay_delete(v, "life-1", &err), 0);

    /* invalid names never reach libvirt */
    assert_int_equal(virt_desktop_start(v, "a'b", NULL, &err), -EINVAL);
    enum virt_state s;
    assert_int_equal(virt_desktop_state(v, "", &s, &err), -EINVAL);

    virDomainFree(dom);
    virConnectClose(c);
    virt_free(v);
}

static void test_owner_and_list(void **state)
{
    (void)state;
    struct virt *v = open_virt();
    struct virt_error err = {""};
    struct virt_template t = linux_tmpl;
    t.name = "tmpl <&> 'x' \"y\"";
    struct virt_desktop_spec a = spec_for("list-b", &t);
    struct virt_desktop_spec b = spec_for("list-a", &windows_tmpl);
    struct virt_domain_info *infos = NULL;
    size_t n = 0;
    const struct virt_domain_info *i;

    a.pool = "pool & <co>";
    a.owner = "alice";
    b.pool = "win";
    b.vcpus = 4;
    b.memory_mib = 1024;
    make_desktop(v, &a);
    make_desktop(v, &b);

    assert_int_equal(virt_list(v, &infos, &n, &err), 0);
    i = find_info(infos, n, "list-b");
    assert_non_null(i);
    assert_string_equal(i->pool, "pool & <co>");
    assert_string_equal(i->owner, "alice");
    assert_string_equal(i->template_name, "tmpl <&> 'x' \"y\"");
    assert_string_equal(i->created, CREATED);
    assert_int_equal(i->state, VIRT_STATE_SHUTOFF);
    assert_int_equal(i->vcpus, 2);
    assert_int_equal(i->memory_mib, 256);
    i = find_info(infos, n, "list-a");
    assert_non_null(i);
    assert_string_equal(i->owner, "");
    assert_string_equal(i->template_name, "win11");
    assert_int_equal(i->vcpus, 4);
    assert_int_equal(i->memory_mib, 1024);
    for (size_t k = 1; k < n; k++)
        assert_true(strcmp(infos[k - 1].name, infos[k].name) < 0);
    free(infos);

    /* owner changes: stopped (config) and running (config and live) */
    assert_int_equal(virt_desktop_set_owner(v, "list-b", "bob & 'eve'", &err), 0);
    assert_int_equal(virt_desktop_start(v, "list-a", NULL, &err), 0);
    assert_int_equal(virt_desktop_set_owner(v, "list-a", "carol", &err), 0);
    assert_int_equal(virt_list(v, &infos, &n, &err), 0);
    i = find_info(infos, n, "list-b");
    assert_string_equal(i->owner, "bob & 'eve'");
    assert_string_equal(i->pool, "pool & <co>"); /* the rest kept */
    assert_string_equal(i->template_name, "tmpl <&> 'x' \"y\"");
    assert_string_equal(i->created, CREATED);
    i = find_info(infos, n, "list-a");
    assert_string_equal(i->owner, "carol");
    assert_string_equal(i->pool, "win");
    assert_int_equal(i->state, VIRT_STATE_RUNNING);
    free(infos);

    virConnectPtr c = raw_conn();
    virDomainPtr dom = virDomainLookupByName(c, "list-a");
    assert_non_null(dom);
    for (int k = 0; k < 2; k++) {
        unsigned flags = k == 0 ? VIR_DOMAIN_AFFECT_LIVE : VIR_DOMAIN_AFFECT_CONFIG;
        char *m = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VIRT_METADATA_URI, flags);
        assert_non_null(m);
        assert_non_null(strstr(m, "carol"));
        free(m);
    }
    virDomainFree(dom);

    /* free again; bad owners refused */
    assert_int_equal(virt_desktop_set_owner(v, "list-a", "", &err), 0);
    assert_int_equal(virt_desktop_set_owner(v, "list-a", "x\ty", &err), -EINVAL);
    assert_int_equal(virt_desktop_set_owner(v, "nope-none", "x", &err), -ENOENT);
    assert_int_equal(virt_list(v, &infos, &n, &err), 0);
    assert_string_equal(find_info(infos, n, "list-a")->owner, "");
    free(infos);

    assert_int_equal(virt_desktop_undefine(v, "list-a", &err), 0);
    assert_int_equal(virt_desktop_undefine(v, "list-b", &err), 0);
    assert_int_equal(virt_overlay_delete(v, "list-a", &err), 0);
    assert_int_equal(virt_overlay_delete(v, "list-b", &err), 0);
    assert_int_equal(virt_list(v, &infos, &n, &err), 0);
    assert_null(find_info(infos, n, "list-a"));
    assert_null(find_info(infos, n, "list-b"));
    free(infos);
    virConnectClose(c);
    virt_free(v);
}

static void test_foreign_domains(void **state)
{
    (void)state;
    struct virt *v = open_virt();
    struct virt_error err = {""};
    virConnectPtr c = raw_conn();
    struct virt_domain_info *infos = NULL;
    size_t n = 0;
    int fd = -1;

    /* A VM someone else made, no metadata. */
    virDomainPtr dom = virDomainDefineXML(c, "<domain type='test'><name>foreign-1</name>"
                                             "<memory>65536</memory><os><type>hvm</type></os>"
                                             "</domain>");
    assert_non_null(dom);
    char *before = virDomainGetXMLDesc(dom, 0);

    assert_int_equal(virt_list(v, &infos, &n, &err), 0);
    assert_null(find_info(infos, n, "foreign-1"));
    free(infos);
    assert_int_equal(virt_desktop_undefine(v, "foreign-1", &err), -EEXIST);
    assert_non_null(strstr(err.message, "not managed by vdi"));
    assert_int_equal(virt_desktop_start(v, "foreign-1", NULL, &err), -EEXIST);
    assert_int_equal(virt_desktop_set_owner(v, "foreign-1", "x", &err), -EEXIST);
    assert_int_equal(virt_desktop_suspend(v, "foreign-1", &err), -EEXIST);
    assert_int_equal(virt_desktop_destroy(v, "foreign-1", &err), -EEXIST);
    assert_int_equal(virt_desktop_shutdown(v, "foreign-1", 0, &err), -EEXIST);
    assert_int_equal(virt_desktop_open_display(v, "foreign-1", &fd, &err), -EEXIST);
    enum virt_state s;
    assert_int_equal(virt_desktop_state(v, "foreign-1", &s, &err), -EEXIST);
    struct virt_desktop_spec spec = spec_for("foreign-1", &linux_tmpl);
    assert_int_equal(virt_overlay_create(v, "foreign-1", &linux_tmpl, NULL, 0, &err), 0);
    assert_int_equal(virt_desktop_define(v, &spec, &err), -EEXIST);
    assert_int_equal(virt_overlay_delete(v, "foreign-1", &err), 0);
    assert_int_equal(virDomainIsActive(dom), 0);
    char *after = virDomainGetXMLDesc(dom, 0);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_int_equal(virDomainUndefine(dom), 0);
    virDomainFree(dom);

    /* Ours, but written by someone hostile or sloppy: missing elements are "", long
     * text is cut (never mid-character), entities are decoded. */
    char long_text[300], xml[2048];
    memset(long_text, 'A', 200);
    long_text[200] = 0;
    char utf8[200] = "";
    for (int k = 0; k < 40; k++)
        strcat(utf8, "\xc3\xa9"); /* é: 80 bytes */
    snprintf(xml, sizeof(xml),
             "<domain type='test'><name>odd-1</name><metadata>"
             "<x:desktop xmlns:x='urn:vdi:desktop:1'>"
             "<x:pool attr='1'>a&amp;b &#x263A; &#65;&quot;&apos;&lt;&gt; &amp;amp;</x:pool>"
             "<x:owner/><x:template>%s</x:template><x:note>%s</x:note>"
             "</x:desktop></metadata>"
             "<memory>65536</memory><os><type>hvm</type></os></domain>",
             long_text, utf8);
    dom = virDomainDefineXML(c, xml);
    assert_non_null(dom);
    virDomainFree(dom);
    snprintf(xml, sizeof(xml),
             "<domain type='test'><name>odd-2</name><metadata>"
             "<desktop xmlns='urn:vdi:desktop:1'><created>%s</created></desktop></metadata>"
             "<memory>65536</memory><os><type>hvm</type></os></domain>",
             utf8);
    dom = virDomainDefineXML(c, xml);
    assert_non_null(dom);
    virDomainFree(dom);

    assert_int_equal(virt_list(v, &infos, &n, &err), 0);
    const struct virt_domain_info *i = find_info(infos, n, "odd-1");
    assert_non_null(i);
    assert_string_equal(i->pool, "a&b \xe2\x98\xba A\"'<> &amp;");
    assert_string_equal(i->owner, "");
    assert_string_equal(i->created, "");
    assert_int_equal(strlen(i->template_name), 63);
    assert_int_equal(strspn(i->template_name, "A"), 63);
    i = find_info(infos, n, "odd-2");
    assert_non_null(i);
    assert_string_equal(i->pool, "");
    assert_int_equal(strlen(i->created), 62); /* 31 whole é, not 63 bytes */
    assert_int_equal(memcmp(i->created, utf8, 62), 0);
    free(infos);

    /* ours: undefine works */
    assert_int_equal(virt_desktop_undefine(v, "odd-1", &err), 0);
    assert_int_equal(virt_desktop_undefine(v, "odd-2", &err), 0);
    virConnectClose(c);
    virt_free(v);
}

/* ---- concurrency ---- */

struct worker {
    struct virt *v;
    int unexpected;
    char what[256];
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct virt_desktop_spec spec = spec_for("race-1", &linux_tmpl);
    struct virt_error err = {""};

    for (int i = 0; i < 200 && !w->unexpected; i++) {
        enum virt_state s;
        bool started;
        int r = virt_desktop_define(w->v, &spec, &err);
        if (r != 0 && r != -EEXIST)
            goto bad;
        r = virt_desktop_start(w->v, "race-1", &started, &err);
        if (r != 0 && r != -ENOENT)
            goto bad;
        r = virt_desktop_set_owner(w->v, "race-1", i % 2 ? "a" : "b", &err);
        if (r != 0 && r != -ENOENT)
            goto bad;
        r = virt_desktop_state(w->v, "race-1", &s, &err);
        if (r != 0)
            goto bad;
        r = virt_desktop_suspend(w->v, "race-1", &err);
        if (r != 0 && r != -ENOENT)
            goto bad;
        r = virt_desktop_undefine(w->v, "race-1", &err);
        if (r != 0)
            goto bad;
        continue;
    bad:
        w->unexpected = r ? r : -1;
        snprintf(w->what, sizeof(w->what), "step %d: %d %.200s", i, r, err.message);
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    struct virt *v = open_virt();
    struct virt_error err = {""};
    struct worker w[2] = {{.v = v}, {.v = v}};
    pthread_t t[2];

    assert_int_equal(virt_overlay_create(v, "race-1", &linux_tmpl, NULL, 0, &err), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++)
        if (w[i].unexpected)
            fail_msg("thread %d: %s", i, w[i].what);
    assert_int_equal(state_of(v, "race-1"), VIRT_STATE_MISSING);
    assert_int_equal(virt_overlay_delete(v, "race-1", &err), 0);
    virt_free(v);
}

/* ---- lifecycle events ---- */

#define MAX_EVENTS 64
/* libvirt's event thread delivers within milliseconds; this only bounds a failure. */
#define EVENT_WAIT_MS 5000
/* How long "no event" is watched for. */
#define QUIET_MS 300

struct recorder {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t n;
    struct {
        char name[VIRT_NAME_MAX];
        enum virt_event ev;
    } events[MAX_EVENTS];
    bool blocked_thread_ok; /* the callback ran on another thread than the test's */
    pthread_t test_thread;
};

static void recorder_init(struct recorder *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->test_thread = pthread_self();
    r->blocked_thread_ok = true;
}

static void recorder_done(struct recorder *r)
{
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
}

static void recorder_clear(struct recorder *r)
{
    pthread_mutex_lock(&r->lock);
    r->n = 0;
    pthread_mutex_unlock(&r->lock);
}

static void record_event(void *userdata, const char *domain, enum virt_event ev)
{
    struct recorder *r = userdata;

    pthread_mutex_lock(&r->lock);
    if (pthread_equal(pthread_self(), r->test_thread))
        r->blocked_thread_ok = false;
    if (r->n < MAX_EVENTS) {
        snprintf(r->events[r->n].name, sizeof(r->events[r->n].name), "%s", domain);
        r->events[r->n].ev = ev;
    }
    r->n++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* How many events (name, ev) were recorded. */
static size_t count_locked(struct recorder *r, const char *name, int ev)
{
    size_t c = 0;

    for (size_t i = 0; i < r->n && i < MAX_EVENTS; i++)
        c += strcmp(r->events[i].name, name) == 0 && (ev < 0 || (int)r->events[i].ev == ev);
    return c;
}

/* Waits (bounded) until (name, ev) was recorded; ev -1 = any event of name. */
static bool wait_event(struct recorder *r, const char *name, int ev, int timeout_ms)
{
    struct timespec deadline;
    bool found;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->lock);
    while (!(found = count_locked(r, name, ev) > 0))
        if (pthread_cond_timedwait(&r->cond, &r->lock, &deadline) != 0) {
            found = count_locked(r, name, ev) > 0;
            break;
        }
    pthread_mutex_unlock(&r->lock);
    return found;
}

static size_t events_of(struct recorder *r, const char *name)
{
    size_t c;

    pthread_mutex_lock(&r->lock);
    c = count_locked(r, name, -1);
    pthread_mutex_unlock(&r->lock);
    return c;
}

static void expect_event(struct recorder *r, const char *name, enum virt_event ev)
{
    if (!wait_event(r, name, (int)ev, EVENT_WAIT_MS))
        fail_msg("no %s event for %s within %d ms", virt_event_to_string(ev), name, EVENT_WAIT_MS);
}

static void test_event_names(void **state)
{
    (void)state;
    assert_string_equal(virt_event_to_string(VIRT_EVENT_STARTED), "started");
    assert_string_equal(virt_event_to_string(VIRT_EVENT_SHUTDOWN), "shutdown");
    assert_string_equal(virt_event_to_string(VIRT_EVENT_DESTROYED), "destroyed");
    assert_string_equal(virt_event_to_string(VIRT_EVENT_CRASHED), "crashed");
    assert_string_equal(virt_event_to_string(VIRT_EVENT_STOPPED), "stopped");
    assert_string_equal(virt_event_to_string((enum virt_event)42), "unknown");
}

/* The test driver emits lifecycle events for what any of its connections does. */
static void test_watch(void **state)
{
    (void)state;
    struct virt *v = open_virt();
    struct virt_error err = {""};
    struct virt_desktop_spec spec = spec_for("ev-1", &linux_tmpl);
    struct recorder rec, other;
    virConnectPtr c = raw_conn();

    recorder_init(&rec);
    recorder_init(&other);
    make_desktop(v, &spec);
    virDomainPtr dom = virDomainLookupByName(c, "ev-1");
    assert_non_null(dom);
    virDomainPtr foreign = virDomainDefineXML(c, "<domain type='test'><name>ev-foreign</name>"
                                                 "<memory>65536</memory><os><type>hvm</type>"
                                                 "</os></domain>");
    assert_non_null(foreign);

    /* nothing before virt_watch */
    assert_int_equal(virt_desktop_start(v, "ev-1", NULL, &err), 0);
    assert_int_equal(virt_desktop_destroy(v, "ev-1", &err), 0);

    assert_int_equal(virt_watch(v, record_event, &other), 0);
    assert_int_equal(virt_watch(v, record_event, &rec), 0); /* replaces */

    /* started, by us or by anyone */
    assert_int_equal(virt_desktop_start(v, "ev-1", NULL, &err), 0);
    expect_event(&rec, "ev-1", VIRT_EVENT_STARTED);
    /* destroyed from outside (virsh destroy) */
    assert_int_equal(virDomainDestroy(dom), 0);
    expect_event(&rec, "ev-1", VIRT_EVENT_DESTROYED);
    /* the guest powered off (the test driver's shutdown stops it at once) */
    assert_int_equal(virDomainCreate(dom), 0);
    assert_int_equal(virDomainShutdown(dom), 0);
    expect_event(&rec, "ev-1", VIRT_EVENT_SHUTDOWN);
    /* managed save: another kind of stop; virt's own stops are reported too */
    assert_int_equal(virt_desktop_start(v, "ev-1", NULL, &err), 0);
    recorder_clear(&rec);
    assert_int_equal(virt_desktop_suspend(v, "ev-1", &err), 0);
    expect_event(&rec, "ev-1", VIRT_EVENT_STOPPED);
    assert_int_equal(virt_desktop_start(v, "ev-1", NULL, &err), 0); /* restores */
    expect_event(&rec, "ev-1", VIRT_EVENT_STARTED);
    recorder_clear(&rec);
    assert_int_equal(virt_desktop_destroy(v, "ev-1", &err), 0);
    expect_event(&rec, "ev-1", VIRT_EVENT_DESTROYED);
    /* one destroy, one event (restoring may report "started" twice: the test driver) */
    assert_false(wait_event(&rec, "ev-1", VIRT_EVENT_SHUTDOWN, 0));
    pthread_mutex_lock(&rec.lock);
    assert_int_equal(count_locked(&rec, "ev-1", VIRT_EVENT_DESTROYED), 1);
    pthread_mutex_unlock(&rec.lock);

    /* a domain without our metadata is not reported */
    assert_int_equal(virDomainCreate(foreign), 0);
    assert_int_equal(virDomainDestroy(foreign), 0);
    assert_int_equal(virt_desktop_start(v, "ev-1", NULL, &err), 0);
    expect_event(&rec, "ev-1", VIRT_EVENT_STARTED); /* came after the foreign ones */
    assert_int_equal(events_of(&rec, "ev-foreign"), 0);
    assert_true(rec.blocked_thread_ok); /* on libvirt's event thread, not ours */
    assert_int_equal(events_of(&other, "ev-1"), 0);

    /* two virts (two connections) each get their own */
    struct virt *v2 = open_virt();
    assert_int_equal(virt_watch(v2, record_event, &other), 0);
    recorder_clear(&rec);
    assert_int_equal(virDomainDestroy(dom), 0);
    expect_event(&rec, "ev-1", VIRT_EVENT_DESTROYED);
    expect_event(&other, "ev-1", VIRT_EVENT_DESTROYED);
    /* virt_free stops the watch: nothing arrives after it returns */
    virt_free(v2);
    recorder_clear(&other);

    /* stopped watching: nothing more */
    assert_int_equal(virt_watch(v, NULL, NULL), 0);
    assert_int_equal(virt_watch(v, NULL, NULL), 0); /* twice is fine */
    recorder_clear(&rec);
    assert_int_equal(virDomainCreate(dom), 0);
    assert_int_equal(virDomainDestroy(dom), 0);
    assert_false(wait_event(&rec, "ev-1", -1, QUIET_MS));
    assert_int_equal(events_of(&other, "ev-1"), 0);

    /* and again */
    assert_int_equal(virt_watch(v, record_event, &rec), 0);
    assert_int_equal(virDomainCreate(dom), 0);
    expect_event(&rec, "ev-1", VIRT_EVENT_STARTED);

    /* virt_free while watching, with the domain still going */
    virt_free(v);
    recorder_clear(&rec);
    assert_int_equal(virDomainDestroy(dom), 0);
    assert_false(wait_event(&rec, "ev-1", -1, QUIET_MS));

    assert_int_equal(virDomainUndefine(foreign), 0);
    virDomainFree(foreign);
    v = open_virt();
    assert_int_equal(virt_desktop_undefine(v, "ev-1", &err), 0);
    assert_int_equal(virt_overlay_delete(v, "ev-1", &err), 0);
    virt_free(v);
    virDomainFree(dom);
    virConnectClose(c);
    recorder_done(&rec);
    recorder_done(&other);
}

/* Events flowing while another thread starts and stops desktops and watches come and go:
 * no crash, no call after virt_watch(NULL) returned (ASan/TSan-style check by hand). */
struct churn {
    struct virt *v;
    atomic_bool stop;
    int failures;
};

static void *churn_run(void *arg)
{
    struct churn *ch = arg;
    struct virt_error err = {""};

    while (!atomic_load(&ch->stop)) {
        if (virt_desktop_start(ch->v, "ev-2", NULL, &err) < 0 ||
            virt_desktop_destroy(ch->v, "ev-2", &err) < 0)
            ch->failures++;
    }
    return NULL;
}

static void count_event(void *userdata, const char *domain, enum virt_event ev)
{
    (void)domain;
    (void)ev;
    atomic_int *n = userdata;
    atomic_fetch_add(n, 1);
}

static void test_watch_churn(void **state)
{
    (void)state;
    struct virt *v = open_virt();
    struct virt_desktop_spec spec = spec_for("ev-2", &linux_tmpl);
    struct churn ch = {.v = v};
    pthread_t t;
    atomic_int *counters[25];
    int total = 0;

    make_desktop(v, &spec);
    assert_int_equal(pthread_create(&t, NULL, churn_run, &ch), 0);
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        counters[i] = calloc(1, sizeof(*counters[i]));
        assert_non_null(counters[i]);
        assert_int_equal(virt_watch(v, count_event, counters[i]), 0);
        /* The last watcher stays until something came (bounded): events do flow. */
        bool last = i + 1 == sizeof(counters) / sizeof(counters[0]);
        for (int k = 0; k < (last && total == 0 ? 250 : 1); k++) {
            struct timespec ts = {.tv_nsec = 20 * 1000000L};
            nanosleep(&ts, NULL);
            if (atomic_load(counters[i]) > 0)
                break;
        }
        assert_int_equal(virt_watch(v, NULL, NULL), 0);
        int seen = atomic_load(counters[i]);
        total += seen;
        free(counters[i]); /* a late call would write freed memory */
    }
    atomic_store(&ch.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(ch.failures, 0);
    assert_true(total > 0);
    struct virt_error err = {""};
    assert_int_equal(virt_desktop_undefine(v, "ev-2", &err), 0);
    assert_int_equal(virt_overlay_delete(v, "ev-2", &err), 0);
    virt_free(v);
}

/* ---- qemu:///embed: no storage driver, overlays by qemu-img ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* One qemu:///embed root for the whole run (libvirt opens one embedded driver per
 * process): made by the first test that wants it, removed after the last test. QEMU runs
 * as libvirt-qemu, so the directories are 0755 (disks, serial logs). */
static char embed_root[64];

/* Fills the shared root's URI, disk directory and a 1 MiB raw base image. False when QEMU
 * is not installed. */
static bool embed_paths(char *uri, size_t usize, char *disks, size_t dsize, char *base,
                        size_t bsize)
{
    struct virt_error err = {""};
    char path[128];

    if (access("/usr/bin/qemu-img", X_OK) != 0 || access("/usr/bin/qemu-system-x86_64", X_OK) != 0)
        return false;
    if (embed_root[0]) {
        snprintf(uri, usize, "qemu:///embed?root=%s/libvirt", embed_root);
        snprintf(disks, dsize, "%s/disks", embed_root);
        snprintf(base, bsize, "%s/base.img", embed_root);
        return true;
    }
    strcpy(embed_root, "/tmp/vdi-test-virt-XXXXXX");
    assert_non_null(mkdtemp(embed_root));
    assert_int_equal(chmod(embed_root, 0755), 0);
    snprintf(uri, usize, "qemu:///embed?root=%s/libvirt", embed_root);
    snprintf(disks, dsize, "%s/disks", embed_root);
    snprintf(base, bsize, "%s/base.img", embed_root);
    assert_int_equal(mkdir(disks, 0755), 0);
    int fd = open(base, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/libvirt", embed_root);
    assert_int_equal(virt_embed_prepare(path, &err), 0);
    return true;
}

static int embed_cleanup(void **state)
{
    (void)state;
    if (embed_root[0])
        nftw(embed_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void test_embed_qemu_img(void **state)
{
    (void)state;
    char uri[256], disks[300], base[300], path[400], cmd[1024];
    struct virt *v = NULL;
    struct virt_error err = {""};
    struct stat st;
    int fd;

    if (!embed_paths(uri, sizeof(uri), disks, sizeof(disks), base, sizeof(base)))
        skip();
    struct virt_options o = {
        .uri = uri, .virt_type = "qemu", .disk_dir = disks, .console_dir = embed_root};
    int r = virt_new(&o, &v, &err);
    if (r < 0) {
        print_message("qemu:///embed not usable here (%s): skipped\n", err.message);
        skip();
    }
    assert_false(virt_has_storage_api(v));

    struct virt_template t = linux_tmpl;
    t.disk = base;
    t.disk_size = 1 << 20;
    assert_int_equal(virt_overlay_create(v, "emb-1", &t, path, sizeof(path), &err), 0);
    snprintf(cmd, sizeof(cmd), "%s/emb-1.qcow2", disks);
    assert_string_equal(path, cmd);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(cmd, sizeof(cmd), "qemu-img info -U '%s' | grep -q 'backing file: %s'", path, base);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "qemu-img info -U '%s' | grep -q 'file format: qcow2'", path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(virt_overlay_create(v, "emb-1", &t, NULL, 0, &err), -EEXIST);

    /* a bad base: qemu-img's words, no file left behind */
    struct virt_template bad = t;
    bad.disk = "/nonexistent/base.img";
    assert_int_equal(virt_overlay_create(v, "emb-2", &bad, NULL, 0, &err), -EIO);
    assert_non_null(strstr(err.message, "qemu-img"));
    snprintf(cmd, sizeof(cmd), "%s/emb-2.qcow2", disks);
    assert_int_equal(access(cmd, F_OK), -1);

    /* a file that is not an overlay */
    snprintf(cmd, sizeof(cmd), "%s/readme.txt", disks);
    fd = open(cmd, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(virt_overlay_list(v, &names, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "emb-1");
    free(names[0]);
    free(names);

    /* the real QEMU driver takes our XML (no VM is started) */
    struct virt_desktop_spec spec = spec_for("emb-1", &t);
    spec.memory_mib = 128;
    spec.vcpus = 1;
    r = virt_desktop_define(v, &spec, &err);
    if (r < 0)
        fail_msg("define on qemu:///embed: %s", err.message);
    assert_int_equal(state_of(v, "emb-1"), VIRT_STATE_SHUTOFF);
    struct virt_desktop_spec missing = spec_for("emb-3", &t);
    assert_int_equal(virt_desktop_define(v, &missing, &err), -ENOENT);
    struct virt_desktop_spec win = spec_for("emb-w", &windows_tmpl);
    assert_int_equal(virt_overlay_create(v, "emb-w", &t, NULL, 0, &err), 0);
    r = virt_desktop_define(v, &win, &err);
    if (r < 0)
        fail_msg("windows define on qemu:///embed: %s", err.message);
    if (virt_uefi_firmware(NULL, NULL)) {
        struct virt_template wu = windows_tmpl;
        wu.firmware = VIRT_FIRMWARE_UEFI;
        struct virt_desktop_spec winu = spec_for("emb-wu", &wu);
        assert_int_equal(virt_overlay_create(v, "emb-wu", &t, NULL, 0, &err), 0);
        r = virt_desktop_define(v, &winu, &err);
        if (r < 0)
            fail_msg("UEFI define on qemu:///embed: %s", err.message);
        assert_int_equal(virt_desktop_undefine(v, "emb-wu", &err), 0);
        assert_int_equal(virt_overlay_delete(v, "emb-wu", &err), 0);
    }
    assert_int_equal(virt_desktop_undefine(v, "emb-w", &err), 0);
    assert_int_equal(virt_desktop_undefine(v, "emb-1", &err), 0);

    assert_int_equal(virt_overlay_delete(v, "emb-1", &err), 0);
    assert_int_equal(virt_overlay_delete(v, "emb-1", &err), 0);
    assert_int_equal(virt_overlay_delete(v, "emb-w", &err), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(unlink(cmd), 0);
    virt_free(v);
}

/* The pid of the QEMU process running domain name, or -1. */
static pid_t qemu_pid_of(const char *name)
{
    char want[128], path[64], buf[4096];
    DIR *d = opendir("/proc");
    struct dirent *de;
    pid_t found = -1;

    snprintf(want, sizeof(want), "guest=%s,", name);
    assert_non_null(d);
    while (found < 0 && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == 0)
                buf[i] = ' ';
        buf[n] = 0;
        if (strstr(buf, "qemu-system") && strstr(buf, want))
            found = (pid_t)pid;
    }
    closedir(d);
    return found;
}

/* The real QEMU driver, one small VM (TCG, 128 MiB, SeaBIOS finding no bootable disk):
 * started, QEMU killed (a crash), started again, destroyed through a second connection. */
static void test_embed_events(void **state)
{
    (void)state;
    char uri[256], disks[300], base[300];
    struct virt *v = NULL;
    struct virt_error err = {""};
    struct recorder rec;

    if (!embed_paths(uri, sizeof(uri), disks, sizeof(disks), base, sizeof(base)))
        skip();
    struct virt_options o = {
        .uri = uri, .virt_type = "qemu", .disk_dir = disks, .console_dir = embed_root};
    if (virt_new(&o, &v, &err) < 0) {
        print_message("qemu:///embed not usable here (%s): skipped\n", err.message);
        skip();
    }
    recorder_init(&rec);
    assert_int_equal(virt_watch(v, record_event, &rec), 0);

    struct virt_template t = {.name = "empty",
                              .os = VIRT_OS_LINUX,
                              .firmware = VIRT_FIRMWARE_BIOS,
                              .disk = base,
                              .disk_format = IMAGE_RAW,
                              .disk_size = 1 << 20};
    struct virt_desktop_spec spec = spec_for("emb-ev", &t);
    spec.vcpus = 1;
    spec.memory_mib = 128;
    make_desktop(v, &spec);
    int r = virt_desktop_start(v, "emb-ev", NULL, &err);
    if (r < 0)
        fail_msg("start on qemu:///embed: %s", err.message);
    expect_event(&rec, "emb-ev", VIRT_EVENT_STARTED);

    /* QEMU dies: a crash */
    pid_t pid = qemu_pid_of("emb-ev");
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    expect_event(&rec, "emb-ev", VIRT_EVENT_CRASHED);
    assert_int_equal(state_of(v, "emb-ev"), VIRT_STATE_SHUTOFF);

    /* destroyed by someone else (virsh destroy is another connection) */
    recorder_clear(&rec);
    assert_int_equal(virt_desktop_start(v, "emb-ev", NULL, &err), 0);
    expect_event(&rec, "emb-ev", VIRT_EVENT_STARTED);
    virConnectPtr c = virConnectOpen(uri);
    if (c) {
        virDomainPtr dom = virDomainLookupByName(c, "emb-ev");
        assert_non_null(dom);
        assert_int_equal(virDomainDestroy(dom), 0);
        virDomainFree(dom);
        virConnectClose(c);
    } else {
        print_message("second qemu:///embed connection refused (%s): destroyed through virt\n",
                      virGetLastErrorMessage());
        assert_int_equal(virt_desktop_destroy(v, "emb-ev", &err), 0);
    }
    expect_event(&rec, "emb-ev", VIRT_EVENT_DESTROYED);
    pthread_mutex_lock(&rec.lock);
    assert_int_equal(count_locked(&rec, "emb-ev", VIRT_EVENT_CRASHED), 0);
    pthread_mutex_unlock(&rec.lock);

    assert_int_equal(virt_desktop_undefine(v, "emb-ev", &err), 0);
    assert_int_equal(virt_overlay_delete(v, "emb-ev", &err), 0);
    virt_free(v);
    recorder_done(&rec);
}

/* ---- the connection: libvirtd goes away and comes back ---- */

/* A private libvirtd (session mode, as user nobody, in dir), serving test:///default on
 * dir/run/libvirt/libvirt-sock. Returns its pid, or -1 when that cannot be done here. */
static pid_t daemon_start(const char *dir, const char *sock)
{
    struct passwd *pw = getpwnam("nobody");
    char env_home[160], env_run[160], env_cfg[160], env_cache[160], log[160];
    pid_t pid;

    if (geteuid() != 0 || !pw || access("/usr/sbin/libvirtd", X_OK) != 0)
        return -1;
    snprintf(env_home, sizeof(env_home), "HOME=%s", dir);
    snprintf(env_run, sizeof(env_run), "XDG_RUNTIME_DIR=%s/run", dir);
    snprintf(env_cfg, sizeof(env_cfg), "XDG_CONFIG_HOME=%s/config", dir);
    snprintf(env_cache, sizeof(env_cache), "XDG_CACHE_HOME=%s/cache", dir);
    snprintf(log, sizeof(log), "%s/libvirtd.log", dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"libvirtd", "--timeout", "120", NULL};
        char *envp[] = {env_home, env_run, env_cfg, env_cache, "PATH=/usr/sbin:/usr/bin", NULL};
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || setgroups(0, NULL) < 0 ||
            setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
            _exit(126);
        execve("/usr/sbin/libvirtd", argv, envp);
        _exit(127);
    }
    /* Up when the socket answers (bounded). */
    for (int i = 0; i < 200; i++) {
        char uri[300];
        snprintf(uri, sizeof(uri), "test+unix:///default?socket=%s", sock);
        virConnectPtr c = access(sock, F_OK) == 0 ? virConnectOpen(uri) : NULL;
        if (c) {
            virConnectClose(c);
            return pid;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return -1;
        struct timespec ts = {.tv_nsec = 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void daemon_stop(pid_t pid)
{
    int status;

    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

/* libvirtd restarts under a broker: calls fail while it is away, the next call after it is
 * back reopens the connection, and lifecycle events flow again. */
static void test_reconnect(void **state)
{
    (void)state;
    char dir[] = "/tmp/vdi-test-virt-rc-XXXXXX";
    char sock[128], uri[256], disks[160];
    struct passwd *pw = getpwnam("nobody");
    struct virt *v = NULL;
    struct virt_error err = {""};
    struct recorder rec;
    enum virt_state st;
    pid_t pid;
    int r;

    assert_non_null(mkdtemp(dir));
    if (pw)
        assert_int_equal(chown(dir, pw->pw_uid, pw->pw_gid), 0);
    snprintf(sock, sizeof(sock), "%s/run/libvirt/libvirt-sock", dir);
    snprintf(uri, sizeof(uri), "test+unix:///default?socket=%s", sock);
    snprintf(disks, sizeof(disks), "%s/disks", dir);
    pid = daemon_start(dir, sock);
    if (pid < 0) {
        print_message("no private libvirtd here (needs root, libvirtd, user nobody): skipped\n");
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        skip();
    }
    struct virt_options o = {
        .uri = uri, .virt_type = "qemu", .disk_dir = disks, .console_dir = dir};
    r = virt_new(&o, &v, &err);
    if (r < 0)
        fail_msg("virt_new on %s: %s", uri, err.message);
    recorder_init(&rec);
    assert_int_equal(virt_watch(v, record_event, &rec), 0);
    struct virt_desktop_spec spec = spec_for("rc-1", &linux_tmpl);
    make_desktop(v, &spec);
    assert_int_equal(virt_desktop_start(v, "rc-1", NULL, &err), 0);
    expect_event(&rec, "rc-1", VIRT_EVENT_STARTED);

    /* away: calls fail (the close is noticed by libvirt's event thread) */
    daemon_stop(pid);
    r = 0;
    for (int i = 0; i < 100 && r == 0; i++) {
        r = virt_desktop_state(v, "rc-1", &st, &err);
        if (r == 0) {
            struct timespec ts = {.tv_nsec = 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(r, -EIO);
    assert_non_null(strstr(err.message, "libvirt"));
    assert_int_equal(virt_desktop_start(v, "rc-1", NULL, &err), -EIO);

    /* back (a new test driver: empty) */
    pid = daemon_start(dir, sock);
    assert_true(pid > 0);
    r = -EIO;
    for (int i = 0; i < 100 && r == -EIO; i++) { /* reopens at most once a second */
        r = virt_desktop_state(v, "rc-1", &st, &err);
        if (r == -EIO) {
            struct timespec ts = {.tv_nsec = 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (r != 0)
        fail_msg("not reconnected: %d %s", r, err.message);
    assert_int_equal(st, VIRT_STATE_MISSING);
    /* the storage pool is back, and events are watched on the new connection */
    recorder_clear(&rec);
    make_desktop(v, &spec);
    assert_int_equal(virt_desktop_start(v, "rc-1", NULL, &err), 0);
    expect_event(&rec, "rc-1", VIRT_EVENT_STARTED);
    assert_int_equal(virt_desktop_destroy(v, "rc-1", &err), 0);
    expect_event(&rec, "rc-1", VIRT_EVENT_DESTROYED);

    virt_free(v);
    daemon_stop(pid);
    recorder_done(&rec);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(virt_state_to_string(VIRT_STATE_MISSING), "missing");
    assert_string_equal(virt_state_to_string(VIRT_STATE_SHUTOFF), "shutoff");
    assert_string_equal(virt_state_to_string(VIRT_STATE_SAVED), "saved");
    assert_string_equal(virt_state_to_string(VIRT_STATE_RUNNING), "running");
    assert_string_equal(virt_state_to_string(VIRT_STATE_PAUSED), "paused");
    assert_string_equal(virt_state_to_string(VIRT_STATE_OTHER), "other");
    assert_string_equal(virt_state_to_string((enum virt_state)99), "other");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xml_linux_direct_boot),
        cmocka_unit_test(test_xml_linux_disk_boot),
        cmocka_unit_test(test_xml_windows),
        cmocka_unit_test(test_xml_uefi),
        cmocka_unit_test(test_xml_escaping),
        cmocka_unit_test(test_uefi_missing),
        cmocka_unit_test(test_connection),
        cmocka_unit_test(test_overlays),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_owner_and_list),
        cmocka_unit_test(test_foreign_domains),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_watch_churn),
        cmocka_unit_test(test_embed_qemu_img),
        cmocka_unit_test(test_embed_events),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, embed_cleanup);
}
