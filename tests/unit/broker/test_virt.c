/* broker/virt.c against libvirt's in-memory test driver (test:///default). */
#include <errno.h>
#include <libvirt/libvirt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "virt.h"

#define TEST_URI "test:///default"

static const struct virt_template tmpl = {
    .virt_type = "qemu",
    .disk = "/srv/templates/base & co.img",
    .disk_format = IMAGE_RAW,
    .disk_size = 64 << 20,
    .kernel = "/boot/vmlinuz",
    .initrd = "/boot/initrd.img",
    .cmdline = "console=ttyS0 <x>",
    .memory_mib = 128,
    .vcpus = 1,
    .disk_dir = "/vdi-test/disks",
    .console_dir = "/vdi-test/console",
};

static void test_xml(void **state)
{
    (void)state;
    char *xml = NULL;

    assert_int_equal(virt_desktop_xml(&tmpl, "alice", "/vdi-test/disks/vdi-alice.qcow2",
                                      "2024-01-02T03:04:05Z", &xml),
                     0);
    assert_non_null(strstr(xml, "<domain type='qemu'>"));
    assert_non_null(strstr(xml, "<name>vdi-alice</name>"));
    assert_non_null(strstr(xml, "<graphics type='vnc'><listen type='none'/></graphics>"));
    assert_null(strstr(xml, "<interface"));
    assert_null(strstr(xml, "<graphics type='vnc' port"));
    assert_null(strstr(xml, "autoport"));
    assert_null(strstr(xml, "passwd"));
    assert_non_null(strstr(xml, "<vdi:desktop xmlns:vdi='urn:vdi:desktop:1'>"));
    assert_non_null(strstr(xml, "<vdi:owner>alice</vdi:owner>"));
    assert_non_null(strstr(xml, "<vdi:template>/srv/templates/base &amp; co.img</vdi:template>"));
    assert_non_null(strstr(xml, "<vdi:created>2024-01-02T03:04:05Z</vdi:created>"));
    assert_non_null(strstr(xml, "<kernel>/boot/vmlinuz</kernel>"));
    assert_non_null(strstr(xml, "<initrd>/boot/initrd.img</initrd>"));
    assert_non_null(strstr(xml, "<cmdline>console=ttyS0 &lt;x&gt;</cmdline>"));
    assert_non_null(strstr(xml, "machine='pc'"));
    assert_non_null(strstr(xml, "<source file='/vdi-test/disks/vdi-alice.qcow2'/>"));
    assert_non_null(strstr(xml, "<driver name='qemu' type='qcow2'/>"));
    assert_non_null(strstr(xml, "bus='virtio'"));
    assert_non_null(strstr(xml, "<model type='vga'/>"));
    assert_non_null(strstr(xml, "<input type='keyboard' bus='ps2'/>"));
    assert_non_null(strstr(xml, "<input type='tablet' bus='usb'/>"));
    assert_non_null(strstr(xml, "<serial type='file'>"));
    assert_non_null(strstr(xml, "<source path='/vdi-test/console/vdi-alice.log'/>"));
    assert_non_null(strstr(xml, "<on_crash>destroy</on_crash>"));
    assert_non_null(strstr(xml, "<memory unit='MiB'>128</memory>"));
    free(xml);

    /* without a kernel: boot from the disk */
    struct virt_template t2 = tmpl;
    t2.kernel = "";
    t2.initrd = "";
    t2.cmdline = "";
    t2.virt_type = "kvm";
    assert_int_equal(virt_desktop_xml(&t2, "bob", "/d/vdi-bob.qcow2", "x", &xml), 0);
    assert_non_null(strstr(xml, "<domain type='kvm'>"));
    assert_non_null(strstr(xml, "<boot dev='hd'/>"));
    assert_null(strstr(xml, "<kernel>"));
    free(xml);

    /* names that are not user names never reach XML */
    xml = NULL;
    assert_int_equal(virt_desktop_xml(&tmpl, "a'b", "/d", "x", &xml), -EINVAL);
    assert_int_equal(virt_desktop_xml(&tmpl, "../x", "/d", "x", &xml), -EINVAL);
    assert_int_equal(virt_desktop_xml(&tmpl, "", "/d", "x", &xml), -EINVAL);
    assert_null(xml);
}

static void test_name(void **state)
{
    (void)state;
    char name[VIRT_NAME_MAX];

    assert_int_equal(virt_desktop_name("alice", name, sizeof(name)), 0);
    assert_string_equal(name, "vdi-alice");
    assert_int_equal(virt_desktop_name("-x", name, sizeof(name)), -EINVAL);
    assert_int_equal(virt_desktop_name("a b", name, sizeof(name)), -EINVAL);
    assert_int_equal(virt_desktop_name("alice", name, 5), -EINVAL);
}

static virConnectPtr raw_conn(void)
{
    virConnectPtr c = virConnectOpen(TEST_URI);
    assert_non_null(c);
    return c;
}

static void test_define_start_idempotent(void **state)
{
    (void)state;
    struct virt *v = NULL;
    struct virt_error err = {""};
    bool created = false, started = false;

    assert_int_equal(virt_new(TEST_URI, &v, &err), 0);
    assert_int_equal(virt_pool_ensure(v, tmpl.disk_dir, &err), 0);
    /* again: exists, same directory */
    assert_int_equal(virt_pool_ensure(v, tmpl.disk_dir, &err), 0);

    assert_int_equal(virt_desktop_define(v, &tmpl, "alice", &created, &err), 0);
    assert_true(created);
    assert_int_equal(virt_desktop_define(v, &tmpl, "alice", &created, &err), 0);
    assert_false(created);

    assert_int_equal(virt_desktop_start(v, "alice", &started, &err), 0);
    assert_true(started);
    assert_int_equal(virt_desktop_start(v, "alice", &started, &err), 0);
    assert_false(started);

    /* what libvirt stored */
    virConnectPtr c = raw_conn();
    virDomainPtr dom = virDomainLookupByName(c, "vdi-alice");
    assert_non_null(dom);
    assert_int_equal(virDomainIsActive(dom), 1);
    char *xml = virDomainGetXMLDesc(dom, 0);
    assert_non_null(xml);
    assert_non_null(strstr(xml, "urn:vdi:desktop:1"));
    assert_non_null(strstr(xml, "alice</vdi:owner>"));
    assert_non_null(strstr(xml, "<listen type='none'/>"));
    assert_null(strstr(xml, "<interface"));
    assert_non_null(strstr(xml, "/vdi-test/disks/vdi-alice.qcow2"));
    free(xml);

    /* its overlay volume, backed by the template */
    virStoragePoolPtr pool = virStoragePoolLookupByName(c, VIRT_POOL_NAME);
    assert_non_null(pool);
    virStorageVolPtr vol = virStorageVolLookupByName(pool, "vdi-alice.qcow2");
    assert_non_null(vol);
    virStorageVolFree(vol);
    virStoragePoolFree(pool);

    /* a stopped desktop is started again */
    assert_int_equal(virDomainDestroy(dom), 0);
    assert_int_equal(virt_desktop_start(v, "alice", &started, &err), 0);
    assert_true(started);
    /* a paused one is resumed */
    assert_int_equal(virDomainSuspend(dom), 0);
    assert_int_equal(virt_desktop_start(v, "alice", &started, &err), 0);
    assert_true(started);
    int st, reason;
    assert_int_equal(virDomainGetState(dom, &st, &reason, 0), 0);
    assert_int_equal(st, VIR_DOMAIN_RUNNING);
    virDomainFree(dom);
    virConnectClose(c);

    /* a user with no desktop */
    assert_int_equal(virt_desktop_start(v, "nobody-here", NULL, &err), -ENOENT);
    int fd = -1;
    assert_int_equal(virt_desktop_open_display(v, "nobody-here", &fd, &err), -ENOENT);
    assert_int_equal(virt_desktop_define(v, &tmpl, "bad name", NULL, &err), -EINVAL);
    virt_free(v);
}

static void test_foreign_domain_untouched(void **state)
{
    (void)state;
    struct virt *v = NULL;
    struct virt_error err = {""};
    virConnectPtr c = raw_conn();
    virDomainPtr dom;
    char *before, *after;
    int fd = -1;

    /* A VM someone else made, with the name we would use. */
    dom = virDomainDefineXML(c, "<domain type='test'><name>vdi-mallory</name>"
                                "<memory>65536</memory><os><type>hvm</type></os></domain>");
    assert_non_null(dom);
    before = virDomainGetXMLDesc(dom, 0);

    assert_int_equal(virt_new(TEST_URI, &v, &err), 0);
    assert_int_equal(virt_pool_ensure(v, tmpl.disk_dir, &err), 0);
    assert_int_equal(virt_desktop_define(v, &tmpl, "mallory", NULL, &err), -EEXIST);
    assert_non_null(strstr(err.message, "not managed by vdi"));
    assert_int_equal(virt_desktop_start(v, "mallory", NULL, &err), -EEXIST);
    assert_int_equal(virt_desktop_open_display(v, "mallory", &fd, &err), -EEXIST);
    assert_int_equal(fd, -1);
    assert_int_equal(virDomainIsActive(dom), 0);
    after = virDomainGetXMLDesc(dom, 0);
    assert_string_equal(before, after);
    free(before);
    free(after);
    virDomainFree(dom);

    /* Ours, but another user's: also refused. */
    dom = virDomainDefineXML(c, "<domain type='test'><name>vdi-eve</name>"
                                "<metadata><vdi:desktop xmlns:vdi='urn:vdi:desktop:1'>"
                                "<vdi:owner>alice</vdi:owner></vdi:desktop></metadata>"
                                "<memory>65536</memory><os><type>hvm</type></os></domain>");
    assert_non_null(dom);
    assert_int_equal(virt_desktop_start(v, "eve", NULL, &err), -EEXIST);
    assert_int_equal(virDomainIsActive(dom), 0);
    virDomainFree(dom);
    virt_free(v);
    virConnectClose(c);
}

static void test_pool_elsewhere(void **state)
{
    (void)state;
    struct virt *v = NULL;
    struct virt_error err = {""};

    assert_int_equal(virt_new(TEST_URI, &v, &err), 0);
    assert_int_equal(virt_pool_ensure(v, tmpl.disk_dir, &err), 0);
    assert_int_equal(virt_pool_ensure(v, "/somewhere/else", &err), -EEXIST);
    virt_free(v);
}

static void test_bad_uri(void **state)
{
    (void)state;
    struct virt *v = NULL;
    struct virt_error err = {""};

    assert_int_equal(virt_new("nosuchdriver:///x", &v, &err), -EIO);
    assert_non_null(strstr(err.message, "nosuchdriver"));
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xml),
        cmocka_unit_test(test_name),
        cmocka_unit_test(test_define_start_idempotent),
        cmocka_unit_test(test_foreign_domain_untouched),
        cmocka_unit_test(test_pool_elsewhere),
        cmocka_unit_test(test_bad_uri),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
