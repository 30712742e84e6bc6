#!/usr/bin/env bash
# packaging/demo.sh: the whole demo on a fresh Debian 12, as root, from a checkout:
#   installs the packages, builds vdi (Release), builds the demo desktop image, creates
#   the login "demo" and the administrator "vdiadmin" (group vdi-admins), writes a config,
#   starts vdi-broker, makes the template "demo", the dedicated pool "desktops" (one warm
#   spare) and entitles demo to it through the admin API with vdictl, then prints how to
#   connect. Ctrl-C stops the broker; the desktop VMs keep running and the next run of
#   this script picks them up again.
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

step "Creating the login 'demo' and the administrator 'vdiadmin'"
# make_login USER: a system account with a random password kept in $state/USER-password.
make_login() {
    local pwfile=$state/$1-password
    if [ ! -s "$pwfile" ]; then
        (umask 077 && head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$pwfile")
    fi
    id "$1" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$1"
    echo "$1:$(cat "$pwfile")" | chpasswd
}
make_login demo
make_login vdiadmin
getent group vdi-admins >/dev/null || groupadd --system vdi-admins
usermod -a -G vdi-admins vdiadmin
pwfile=$state/demo-password
password=$(cat "$pwfile")
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
admin_address = 127.0.0.1
admin_port = 8443
admin_group = vdi-admins
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

step "Template 'demo', pool 'desktops', entitlement for demo (vdictl, admin API)"
vdictl() {
    "$build/broker/vdictl" --url https://127.0.0.1:8443 --ca-file "$ca" --user vdiadmin \
        --password-file "$state/vdiadmin-password" "$@"
}
vdictl template show demo >/dev/null 2>&1 ||
    vdictl template add demo --os linux --disk "$state/image/disk.img" \
        --kernel "$state/image/vmlinuz" --initrd "$state/image/initrd.img" \
        --cmdline "$(cat "$state/image/cmdline")"
vdictl pool show desktops >/dev/null 2>&1 ||
    vdictl pool add desktops --template demo --kind dedicated --vcpus 1 --memory 256 \
        --min-spare 1 --max 10 --logoff keep
vdictl entitlement list --pool desktops | grep -qw demo ||
    vdictl entitlement add desktops --user demo
vdictl pool list

fp=$(certtool --fingerprint --hash sha256 --infile "$ca" | tr a-f A-F | sed "s/../&:/g; s/:\$//")
# The server certificate's fingerprint is what vdi-client's first-use prompt shows.
server_fp=$(certtool --fingerprint --hash sha256 --infile "$(dirname "$ca")/server-cert.pem" |
    tr a-f A-F | sed "s/../&:/g; s/:\$//")

cat <<EOF

================================ vdi demo is running ================================
 Address:      $host port $port   (this machine: 127.0.0.1)
 CA:           $ca
               SHA-256 $fp
               (copy it to the client machine; check the fingerprint when you do)
 Login:        user demo, password $password   (also in $pwfile)
 Admin:        $build/broker/vdictl --ca-file $ca --user vdiadmin \\
                   --password-file $state/vdiadmin-password desktop list
               (admin API https://127.0.0.1:8443, API in broker/API.md)

 vdi-client:   $build/thinclient/vdi-client $host:$port
               (a login screen; the first time it shows the server's fingerprint,
               SHA-256 $server_fp;
               or skip that prompt with --ca-file $ca)
 TigerVNC:     vncviewer -SecurityTypes X509Plain -X509CA $ca $host::$port
               (user demo, the password above)

 The pool keeps one desktop booted and waiting, so the first login is quick; the
 next one is made from the template on demand. Ctrl-C stops the broker; the desktop
 VMs keep running.
=====================================================================================

EOF
status=0
while kill -0 "$broker" 2>/dev/null; do
    wait "$broker" || status=$?
done
exit "$status"
