#!/usr/bin/env bash
# Installs, from Debian 12's packages only, everything vdi needs to build, run its
# demo and run its whole test suite. Idempotent: packages already present are skipped.
set -euo pipefail

BUILD_PKGS="build-essential cmake pkg-config clang-format
  libvncserver-dev libvirt-dev libgnutls28-dev libturbojpeg0-dev libjpeg62-turbo-dev
  libpam0g-dev libsdl2-dev libsdl2-ttf-dev libcmocka-dev libsqlite3-dev libfreetype-dev fonts-dejavu-core
  libmicrohttpd-dev libjson-c-dev zlib1g-dev"
RUN_PKGS="libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils
  gnutls-bin linux-image-amd64 busybox-static e2fsprogs cpio fonts-dejavu-core ovmf"
TEST_PKGS="libpam-wrapper libnss-wrapper tigervnc-viewer xvfb xdotool imagemagick jq sqlite3
  tesseract-ocr tesseract-ocr-eng socat xclip udev libgl1-mesa-dri libegl-mesa0 libegl1 libgbm1
  libgles2"

missing=""
for p in $BUILD_PKGS $RUN_PKGS $TEST_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
        missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# libvirt-daemon-system's postinst may fail to start services without systemd; the
# packages are still unpacked and configured enough for qemu:///embed.
apt-get install -y -qq --no-install-recommends $missing
