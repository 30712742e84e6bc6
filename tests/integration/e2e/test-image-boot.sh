#!/usr/bin/env bash
# The demo desktop image (packaging/image/build-demo-image.sh) boots under libvirt's
# embedded QEMU driver with TCG, mounts its disk on /home, shows the banner, and runs
# what is typed on its VGA console: keys go in through libvirt (virsh send-key), the
# command's output comes back on the serial log. No vdi component is involved, so a
# failure here is the image's (or the host's), not the broker's.
source "$(dirname "$0")/lib.sh"
e2e_begin image-boot

STATE=$T/state
E2E_STATES+=("$STATE")
mkdir -p "$STATE/libvirt/etc"
chmod 0755 "$STATE"
# No virtlogd here: QEMU writes the serial log file itself.
echo 'stdio_handler = "file"' >"$STATE/libvirt/etc/qemu.conf"
qemu-img create -q -f qcow2 -b "$VDI_IMAGE_DIR/disk.img" -F raw "$STATE/disk.qcow2"
chmod 0644 "$STATE/disk.qcow2"
serial=$STATE/serial.log
cat >"$STATE/domain.xml" <<EOF
<domain type='qemu'>
  <name>imagetest</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$VDI_IMAGE_DIR/vmlinuz</kernel>
    <initrd>$VDI_IMAGE_DIR/initrd.img</initrd>
    <cmdline>$(cat "$VDI_IMAGE_DIR/cmdline")</cmdline>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$STATE/disk.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='$serial'/><target port='0'/></serial>
    <input type='keyboard' bus='ps2'/>
    <graphics type='vnc'><listen type='none'/></graphics>
    <video><model type='vga'/></video>
  </devices>
</domain>
EOF

boot_start=$SECONDS
if virsh_e create "$STATE/domain.xml" >/dev/null; then
    pass "domain starts (type qemu, graphics listen none)"
else
    show_log "$T/logs/virsh.log"
    abort "domain starts" "virsh create failed"
fi
if wait_text "$serial" "vdi-demo: ready" 60; then
    pass "guest reaches its shell ($((SECONDS - boot_start)) s)"
else
    show_log "$serial"
    abort "guest reaches its shell" "no 'vdi-demo: ready' on the serial log within 60 s"
fi
check "banner on the serial log" grep -aq "vdi demo desktop" "$serial"
check "disk mounted on /home" grep -aq "disk: /dev/vda on /home" "$serial"

# Types TEXT with virsh send-key (US layout); only the characters used below.
send_text() {
    local s=$1 c k i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
        [a-z]) k=("KEY_${c^^}") ;;
        [A-Z]) k=(KEY_LEFTSHIFT "KEY_$c") ;;
        [0-9]) k=("KEY_$c") ;;
        ' ') k=(KEY_SPACE) ;;
        /) k=(KEY_SLASH) ;;
        -) k=(KEY_MINUS) ;;
        .) k=(KEY_DOT) ;;
        '>') k=(KEY_LEFTSHIFT KEY_DOT) ;;
        *) echo "send_text: no key for '$c'" >&2; return 1 ;;
        esac
        virsh_e send-key imagetest "${k[@]}" >/dev/null || return 1
    done
    virsh_e send-key imagetest KEY_ENTER >/dev/null
}
marker="image-ok-$RANDOM$RANDOM"
send_text "echo $marker > /dev/ttyS0"
if wait_text "$serial" "$marker" 20; then
    pass "keys typed on the console run a command (marker on the serial log)"
else
    fail "keys typed on the console run a command" "marker $marker not on $serial"
fi

if vm_screenshot imagetest "$T/screen.ppm"; then
    pass "libvirt screenshot of the VGA console"
    # The text console is 720x400; the banner makes it non-blank.
    check "screenshot is the 720x400 text console" \
        grep -aq '^720 400$' <(head -c 20 "$T/screen.ppm")
else
    fail "libvirt screenshot of the VGA console"
fi
e2e_end
