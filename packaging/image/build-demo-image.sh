#!/usr/bin/env bash
# build-demo-image.sh OUTDIR: builds the demo/test desktop VM from Debian packages only
# (linux-image-amd64, busybox-static, e2fsprogs, cpio, kmod, gcc with libc6-dev for the
# static vdi-clip), no downloads, no root needed except to read /boot.
#
# OUTDIR/vmlinuz     the host's Debian kernel (/boot/vmlinuz-*)
# OUTDIR/initrd.img  gzip'd cpio: busybox + /init + the modules for a virtio disk and ext4
# OUTDIR/disk.img    16 MiB raw ext4 image, mounted at /home in the guest (the template
#                    disk: each desktop gets a qcow2 overlay of it)
# OUTDIR/cmdline     the kernel command line to use (one line)
# OUTDIR/.stamp      what the outputs were built from; a re-run with the same inputs
#                    returns at once
#
# The guest: /init mounts proc/sys/devtmpfs, loads the modules, mounts /dev/vda on /home
# if present, prints the banner "vdi demo desktop" on the VGA console (tty1) and on the
# serial port, then runs a shell on tty1 forever (a new one when it exits). The serial
# port ttyS0 stays free for tests: `echo MARK > /dev/ttyS0` typed into the desktop lands
# in the domain's serial log. Under TCG it reaches the shell in a few seconds.
# The clipboard: vdi-clip (vdi-clip.c, built static here) runs as the guest agent on the
# com.redhat.spice.0 port of the domain's qemu-vdagent channel; in the shell,
# `vdi-clip copy TEXT` puts TEXT on the user's clipboard and `vdi-clip paste` prints what
# the user copied last.
#
# Environment: VDI_IMAGE_KERNEL=/boot/vmlinuz-X picks another kernel (default: newest).
set -euo pipefail

die() { echo "build-demo-image: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
out=$1
self=$(readlink -f "$0")

kernel=${VDI_IMAGE_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[ -n "$kernel" ] && [ -r "$kernel" ] ||
    die "no readable /boot/vmlinuz-* (install linux-image-amd64)"
kver=${kernel##*/vmlinuz-}
moddir=/lib/modules/$kver
[ -d "$moddir" ] || die "$moddir missing for kernel $kernel"
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox missing (install busybox-static)"
clip_src=$(dirname "$self")/vdi-clip.c
[ -r "$clip_src" ] || die "$clip_src missing"
command -v cc >/dev/null || die "cc missing (install gcc, libc6-dev)"
command -v mke2fs >/dev/null || die "mke2fs missing (install e2fsprogs)"
command -v cpio >/dev/null || die "cpio missing (install cpio)"
command -v modprobe >/dev/null || die "modprobe missing (install kmod)"

cmdline="console=ttyS0 console=tty0 nokaslr quiet loglevel=3 consoleblank=0 panic=-1"

# Everything the outputs depend on; unchanged means nothing to do.
stamp="kernel=$kernel $(stat -c '%s %Y' "$kernel")
busybox=$(stat -c '%s %Y' "$busybox")
script=$(sha256sum "$self" | cut -d' ' -f1)
clip=$(sha256sum "$clip_src" | cut -d' ' -f1)
cmdline=$cmdline"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] &&
    [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ -s "$out/disk.img" ] &&
    [ -s "$out/cmdline" ]; then
    echo "build-demo-image: $out is up to date"
    exit 0
fi

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/vdi-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- modules: virtio disk + ext4, in load order --------------------------------------
# `modprobe --show-depends` resolves what `modinfo -F depends` lists, recursively, plus
# soft dependencies (ext4 and jbd2 want "crypto-crc32c", a module alias) and prints
# them in insmod order; "builtin" lines are parts of the kernel image, nothing to load.
want="virtio_pci virtio_blk ext4 virtio_console"
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,home,tmp,etc,lib/modules,root}
: >"$work/order"
for m in $want; do
    modprobe -S "$kver" --show-depends "$m" >"$work/deps" ||
        die "modprobe cannot resolve module $m for $kver"
    while read -r kind path _; do
        [ "$kind" = insmod ] || continue
        name=$(basename "$path")
        grep -qxF "$name" "$work/order" && continue
        case $path in
        *.ko) cp "$path" "$root/lib/modules/$name" ;;
        *.ko.xz) xz -dc "$path" >"$root/lib/modules/${name%.xz}"; name=${name%.xz} ;;
        *.ko.zst) zstd -qdc "$path" >"$root/lib/modules/${name%.zst}"; name=${name%.zst} ;;
        *) die "unexpected module file $path" ;;
        esac
        echo "$name" >>"$work/order"
    done <"$work/deps"
done
cp "$work/order" "$root/lib/modules/load-order"

# --- busybox + /init -------------------------------------------------------------------
cp "$busybox" "$root/bin/busybox"
for app in sh ash; do ln -s busybox "$root/bin/$app"; done
cc -static -Os -std=gnu11 -Wall -Wextra -Werror -o "$root/bin/vdi-clip" "$clip_src" ||
    die "cannot build vdi-clip (static libc: install libc6-dev)"
strip "$root/bin/vdi-clip" 2>/dev/null || true

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# vdi demo desktop: PID 1 of the guest.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
hostname desktop
# Modules in dependency order; one that does not apply here (crc32c-intel without
# SSE4.2 under TCG) fails harmlessly.
while read -r m; do
    insmod /lib/modules/"$m" 2>/dev/null
done </lib/modules/load-order
# The desktop's disk, when the VM has one.
i=0
while [ ! -b /dev/vda ] && [ $i -lt 20 ] && grep -q '^virtio' /proc/modules; do
    sleep 0.1; i=$((i + 1))
done
if [ -b /dev/vda ] && mount -t ext4 /dev/vda /home; then
    disk="disk: /dev/vda on /home"
else
    disk="disk: none"
fi
# The clipboard agent, when the domain has the agent channel (it waits for the port).
vdi-clip agent 2>/dev/ttyS0 &
cat >/etc/profile <<'P'
export PATH=/bin HOME=/home PS1='desktop:\w\$ '
cd /home
P
banner() {
    echo
    echo "  vdi demo desktop"
    echo "  kernel $(uname -r), $disk"
    echo
}
printf "\033[H\033[2J" >/dev/tty1
banner >/dev/tty1
banner >/dev/ttyS0
echo "vdi-demo: ready" >/dev/ttyS0
# A login shell on tty1 (the VGA screen) with tty1 as its controlling terminal, so
# Ctrl-C and job control work; a new one whenever it exits.
while true; do
    setsid -c sh -l </dev/tty1 >/dev/tty1 2>&1
    sleep 1
done
EOF
chmod 0755 "$root/init"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    gzip -9n >"$work/initrd.img"

# --- the disk ------------------------------------------------------------------------
mkdir -p "$work/disk"
cat >"$work/disk/README" <<'EOF'
This is the home disk of your vdi demo desktop (a copy-on-write overlay of the
template disk). Files you write here stay until your desktop is deleted.
EOF
truncate -s 16M "$work/disk.img"
mke2fs -q -F -t ext4 -L vdi-home -d "$work/disk" -E root_owner=0:0 "$work/disk.img"

# --- install ---------------------------------------------------------------------------
cp "$kernel" "$work/vmlinuz"
echo "$cmdline" >"$work/cmdline"
for f in vmlinuz initrd.img disk.img cmdline; do
    chmod 0644 "$work/$f"
    mv -f "$work/$f" "$out/$f"
done
chmod 0755 "$out"
echo "$stamp" >"$out/.stamp"
echo "build-demo-image: built $out (kernel $kver, modules: $(tr '\n' ' ' <"$work/order"))"
