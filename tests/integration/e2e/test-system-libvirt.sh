#!/usr/bin/env bash
# The broker on libvirtd (qemu:///system, the production setup) instead of the embedded
# driver. There the desktops' disks are made through libvirt's storage API: a "dir" pool
# vdi-disks on <state_dir>/disks and one qcow2 volume per desktop whose backing store is
# the template (qemu:///embed has no storage driver, so the other tests cover the
# qemu-img path). Checks: the pool and the volume exist as libvirt objects with the
# right target and backing store, alice's login boots her desktop on that volume and
# her keys reach it, and deleting the pool removes the volume through the same API.
# Starts virtlogd and libvirtd for the test when none answers, and stops what it started.
source "$(dirname "$0")/lib.sh"
e2e_begin system_libvirt

sys_exit() {
    local status=$?
    system_libvirt_down vdi-sys-
    (exit "$status")
    e2e_cleanup
}
trap sys_exit EXIT
system_libvirt_up
(STARTED_DAEMONS=() && system_libvirt_down vdi-sys-) # leftovers of an earlier run that was killed

broker_start "$T/state" libvirt_uri=$SYS
H=127.0.0.1:$PORT
if grep -aq 'disks=storage pool vdi-disks' "$BROKER_LOG"; then
    pass "the broker makes disks through the storage API on $SYS"
else
    fail "the broker makes disks through the storage API on $SYS" \
        "$(grep -a 'libvirt uri=' "$BROKER_LOG")"
fi
check "storage pool vdi-disks targets $STATE/disks" \
    bash -c "virsh -q -c $SYS pool-dumpxml vdi-disks | grep -q '<path>$STATE/disks</path>'"
check "storage pool vdi-disks is active" \
    bash -c "virsh -q -c $SYS pool-info vdi-disks | grep -q 'State:.*running'"

pool_setup sys --kind dedicated
DESK=vdi-sys-0001
serial=$STATE/console/$DESK.log
marker="MARKER-sys-$RANDOM$RANDOM"
client session "$H" --ca "$CA" --user alice --password "$(password alice)" --timeout 180 \
    --wait-file "$serial:vdi-demo: ready" --settle 1000 \
    --type "echo $marker > /dev/ttyS0\n" --wait-file "$serial:$marker" >"$T/alice.out"
rc=$?
if [ $rc -eq 0 ]; then pass "alice logs in and types into $DESK"; else
    fail "alice logs in and types into $DESK" "exit $rc: $(tail -n3 "$T/alice.out")"; fi

virsh_s pool-refresh vdi-disks >/dev/null
vol=$(virsh_s vol-path --pool vdi-disks "$DESK.qcow2")
check "the desktop's disk is volume $DESK.qcow2 of pool vdi-disks" test "$vol" = "$STATE/disks/$DESK.qcow2"
volxml=$(virsh_s vol-dumpxml --pool vdi-disks "$DESK.qcow2")
check "the volume is qcow2 backed by the template's disk" bash -c \
    "grep -q \"<format type='qcow2'/>\" <<<\"\$0\" && grep -q '<path>$VDI_IMAGE_DIR/disk.img</path>' <<<\"\$0\"" \
    "$volxml"
check "$DESK runs on that volume" \
    bash -c "virsh -q -c $SYS domblklist $DESK | grep -q '$STATE/disks/$DESK.qcow2'"
check "$DESK carries our metadata (pool sys, owner alice)" bash -c \
    "virsh -q -c $SYS metadata $DESK urn:vdi:desktop:1 | grep -q '<vdi:owner>alice</vdi:owner>\\|<owner>alice</owner>'"

# Deleting the pool (after unassigning) removes the domain and the volume through libvirt.
vdictl_admin desktop stop "$DESK" >/dev/null
vdictl_admin desktop unassign "$DESK" >/dev/null
if vdictl_admin pool delete sys >/dev/null; then pass "pool sys deleted"; else
    fail "pool sys deleted" "$(tail -n1 "$T/logs/vdictl.log")"; fi
virsh_s pool-refresh vdi-disks >/dev/null
check "the volume is gone" bash -c "! virsh -q -c $SYS vol-list vdi-disks | grep -q '$DESK'"
check "the domain is gone" bash -c "! virsh -q -c $SYS list --all --name | grep -qx '$DESK'"

if broker_stop; then pass "broker exits cleanly on SIGTERM"; else
    fail "broker exits cleanly on SIGTERM"; fi
check_no_sanitizer_reports "$BROKER_LOG"
e2e_end
