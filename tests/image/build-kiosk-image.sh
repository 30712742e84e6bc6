#!/usr/bin/env bash
# build-kiosk-image.sh VDI_CLIENT OUTDIR: a thin-client kiosk guest for e2e_kiosk_kms,
# from the host's Debian packages: Debian's kernel, an uncompressed initramfs holding
# busybox, vdi-client with every library it loads (SDL2's kmsdrm backend dlopens libdrm,
# libgbm, libEGL and libGLESv2; Mesa's kms_swrast driver draws with llvmpipe), DejaVu
# fonts, systemd-udevd (SDL finds keyboards through libudev) and the bochs DRM driver for
# QEMU's standard VGA. No X server, no desktop environment: vdi-client runs on the DRM
# device itself, as packaging/vdi-kiosk.service runs it on a real thin client.
#
# OUTDIR/vmlinuz, OUTDIR/initrd.cpio, OUTDIR/cmdline. The guest's /init brings up udev,
# then runs vdi-client with SDL_VIDEODRIVER=kmsdrm and /etc/vdi/client.conf (kiosk = yes,
# broker 127.0.0.1:1), logging to the serial port, and powers off when it exits.
set -euo pipefail

die() { echo "build-kiosk-image: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: $0 VDI_CLIENT OUTDIR"
client=$1
out=$2
[ -x "$client" ] || die "$client is not built"

kernel=${VDI_IMAGE_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[ -r "$kernel" ] || die "no readable /boot/vmlinuz-*"
kver=${kernel##*/vmlinuz-}
multiarch=/usr/lib/x86_64-linux-gnu
udevd=/lib/systemd/systemd-udevd
for f in /bin/busybox "$udevd" /bin/udevadm "$multiarch/dri/kms_swrast_dri.so" \
    "$multiarch/libEGL_mesa.so.0" /usr/share/glvnd/egl_vendor.d/50_mesa.json \
    /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf; do
    [ -e "$f" ] || die "$f missing (packaging/install-deps.sh)"
done

mkdir -p "$out"
root=$(mktemp -d "${TMPDIR:-/tmp}/vdi-kiosk-image.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc/vdi,root,lib/modules,usr/bin}

# A file at the same path in the guest (symlinks followed: the guest gets real files).
put() { mkdir -p "$root$(dirname "$1")" && cp -L "$1" "$root$1"; }
# A program or library and every library it links, at their host paths.
put_with_libs() {
    put "$1"
    ldd "$1" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' |
        while read -r lib; do [ -e "$root$lib" ] || put "$lib"; done
}

put_with_libs "$client"
cp -L "$client" "$root/usr/bin/vdi-client"
# What SDL2 and Mesa dlopen (names as they ask for them).
for lib in libdrm.so.2 libgbm.so.1 libEGL.so.1 libGLESv2.so.2 libudev.so.1 libEGL_mesa.so.0 \
    libglapi.so.0; do
    put_with_libs "$multiarch/$lib"
done
put_with_libs "$multiarch/dri/kms_swrast_dri.so"
put /usr/share/glvnd/egl_vendor.d/50_mesa.json
for f in /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
    /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf \
    /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf; do
    [ -e "$f" ] && put "$f"
done
put_with_libs "$udevd"
put_with_libs /bin/udevadm
put /lib/udev/rules.d/60-input-id.rules
put /lib/udev/rules.d/50-udev-default.rules
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

# Kernel modules: DRM for QEMU's standard VGA, evdev for the keyboard, in load order.
: >"$root/lib/modules/load-order"
for m in bochs evdev; do
    modprobe -S "$kver" --show-depends "$m" | while read -r kind path _; do
        [ "$kind" = insmod ] || continue
        name=$(basename "$path")
        case $path in
        *.ko.xz) name=${name%.xz}; xz -dc "$path" >"$root/lib/modules/$name" ;;
        *.ko.zst) name=${name%.zst}; zstd -qdc "$path" >"$root/lib/modules/$name" ;;
        *) cp "$path" "$root/lib/modules/$name" ;;
        esac
        grep -qxF "$name" "$root/lib/modules/load-order" || echo "$name" >>"$root/lib/modules/load-order"
    done
done

cat >"$root/etc/vdi/client.conf" <<'EOF'
# The kiosk's broker: nobody listens there in the test (the guest has no network), so a
# login attempt shows "Cannot reach the server".
broker = 127.0.0.1:1
kiosk = yes
EOF
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
echo "input:x:101:" >>"$root/etc/group"

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
exec </dev/console >/dev/ttyS0 2>&1
while read -r m; do insmod /lib/modules/"$m" 2>/dev/null; done </lib/modules/load-order
ip link set lo up
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle --timeout=30
echo "kiosk: dri $(ls /dev/dri 2>&1 | tr '\n' ' ')input $(ls /dev/input 2>&1 | tr '\n' ' ')"
echo "kiosk: starting vdi-client"
HOME=/root XDG_RUNTIME_DIR=/run SDL_VIDEODRIVER=kmsdrm \
    vdi-client --config /etc/vdi/client.conf --log-level debug
echo "kiosk: vdi-client exited $?"
poweroff -f
EOF
chmod 0755 "$root/init"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out/initrd.cpio.tmp"
mv -f "$out/initrd.cpio.tmp" "$out/initrd.cpio"
cp "$kernel" "$out/vmlinuz"
echo "console=ttyS0 quiet loglevel=3 panic=-1" >"$out/cmdline"
echo "build-kiosk-image: built $out ($(du -sh "$out/initrd.cpio" | cut -f1) initramfs)"
