#!/usr/bin/env bash
# packaging/demo.sh: the whole demo on a fresh Debian 12, as root, from a checkout:
#   installs the packages, builds vdi (Release), builds the demo desktop image, creates
#   the login "demo", writes a config and runs vdi-broker in the foreground, printing
#   how to connect. Ctrl-C stops the broker; the demo desktop VM keeps running and the
#   next run of this script picks it up again.
#
# Environment: VDI_DEMO_STATE (default /var/lib/vdi-demo), VDI_DEMO_PORT (5900),
# VDI_DEMO_VIRT_TYPE (qemu: KVM hangs Linux guests on some hosts, TCG always works),
# VDI_DEMO_BUILD (build directory, default build-release/).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
state=${VDI_DEMO_STATE:-/var/lib/vdi-demo}
port=${VDI_DEMO_PORT:-5900}
virt_type=${VDI_DEMO_VIRT_TYPE:-qemu}
build=${VDI_DEMO_BUILD:-$src/build-release}
step() { printf '\n==> %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (it installs packages and a user)" >&2; exit 1; }

step "Installing packages (packaging/install-deps.sh)"
"$src/packaging/install-deps.sh"

step "Building vdi (Release) in $build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVDI_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)"

step "Building the demo desktop image in $state/image"
mkdir -p "$state"
chmod 0755 "$state" # QEMU runs as libvirt-qemu and opens the disks below it
"$src/packaging/image/build-demo-image.sh" "$state/image"

step "Creating the login 'demo'"
pwfile=$state/demo-password
if [ ! -s "$pwfile" ]; then
    (umask 077 && head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$pwfile")
fi
password=$(cat "$pwfile")
if ! id demo >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin demo
fi
echo "demo:$password" | chpasswd
if [ ! -e /etc/pam.d/vdi ]; then
    if [ -f "$src/packaging/vdi.pam" ]; then
        install -m 0644 "$src/packaging/vdi.pam" /etc/pam.d/vdi
    else
        printf 'auth required pam_unix.so\naccount required pam_unix.so\n' >/etc/pam.d/vdi
    fi
fi

# Names and addresses clients may use; the generated certificate carries them all.
host=$(hostname -I 2>/dev/null | awk '{ print $1 }')
host=${host:-127.0.0.1}
names="localhost,127.0.0.1,$(hostname)"
for a in $(hostname -I 2>/dev/null); do names="$names,$a"; done

conf=$state/vdi.conf
cat >"$conf" <<EOF
# Written by packaging/demo.sh; all keys: vdi-broker --help / packaging/vdi.conf.
listen_address = 0.0.0.0
listen_port = $port
state_dir = $state
virt_type = $virt_type
tls_hostnames = $names
pam_service = vdi
template_disk = $state/image/disk.img
template_kernel = $state/image/vmlinuz
template_initrd = $state/image/initrd.img
template_cmdline = $(cat "$state/image/cmdline")
template_memory_mib = 256
template_vcpus = 1
EOF

step "Starting vdi-broker ($conf)"
log=$state/broker.log
: >"$log"
"$build/broker/vdi-broker" --config "$conf" > >(tee -a "$log") 2>&1 &
broker=$!
trap 'kill -TERM "$broker" 2>/dev/null' INT TERM
for ((i = 0; i < 300; i++)); do
    grep -q 'vdi-broker listening on' "$log" && break
    kill -0 "$broker" 2>/dev/null || { wait "$broker"; exit 1; }
    sleep 0.1
done
if ! grep -q "vdi-broker listening on" "$log"; then
    echo "demo.sh: vdi-broker did not start listening within 30 s (log: $log)" >&2
    kill -TERM "$broker" 2>/dev/null
    exit 1
fi
ca=$state/tls/ca-cert.pem
fp=$(certtool --fingerprint --hash sha256 --infile "$ca" | tr a-f A-F | sed "s/../&:/g; s/:\$//")

cat <<EOF

================================ vdi demo is running ================================
 Address:      $host port $port   (this machine: 127.0.0.1)
 CA:           $ca
               SHA-256 $fp
               (copy it to the client machine; check the fingerprint when you do)
 Login:        user demo, password $password   (also in $pwfile)

 vdi-client:   $build/thinclient/vdi-client --ca-file $ca --user demo \\
                   --password-file $pwfile $host:$port
 TigerVNC:     vncviewer -SecurityTypes X509Plain -X509CA $ca $host::$port
               (user demo, the password above)

 The first login boots the desktop (a few seconds); "Starting your desktop..." shows
 until then. Ctrl-C stops the broker; the desktop VM keeps running.
=====================================================================================

EOF
status=0
while kill -0 "$broker" 2>/dev/null; do
    wait "$broker" || status=$?
done
exit "$status"
