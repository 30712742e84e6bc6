# shellcheck shell=bash
# Shared helpers for the end-to-end tests (sourced, bash).
#
# Each test file: source lib.sh; e2e_begin NAME; then broker_start, client runs and
# `check`/`pass`/`fail` lines; e2e_end. Everything lives in one temp dir ($T) that is
# removed afterwards (kept when a check failed or VDI_E2E_KEEP=1); VMs started by the
# broker are destroyed on exit, whatever happened.
#
# Environment (CMake sets these; defaults let you run a script by hand from the tree):
#   VDI_SOURCE_DIR, VDI_BUILD_DIR   source and build trees
#   VDI_BROKER, VDICTL, VNC_TEST_CLIENT  programs under test / the test client
#   VDI_IMAGE_DIR                   where the demo image is built (once, then reused)
#   VDI_E2E_KEEP=1                  keep $T even when everything passed
set -uo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VDI_SOURCE_DIR=${VDI_SOURCE_DIR:-$(cd "$E2E_DIR/../../.." && pwd)}
VDI_BUILD_DIR=${VDI_BUILD_DIR:-$VDI_SOURCE_DIR/build}
VDI_BROKER=${VDI_BROKER:-$VDI_BUILD_DIR/broker/vdi-broker}
VDICTL=${VDICTL:-$VDI_BUILD_DIR/broker/vdictl}
VNC_TEST_CLIENT=${VNC_TEST_CLIENT:-$VDI_BUILD_DIR/tests/integration/e2e/vnc-test-client}
VDI_IMAGE_DIR=${VDI_IMAGE_DIR:-$VDI_BUILD_DIR/tests/image}
VDI_TEST_DATA=${VDI_TEST_DATA:-$VDI_SOURCE_DIR/tests/data}
PAM_MATRIX=/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so
PAM_WRAPPER_LIB=libpam_wrapper.so
NSS_WRAPPER_LIB=libnss_wrapper.so

E2E_CHECKS=0
E2E_FAILS=0
E2E_BG_PIDS=()
E2E_STATES=()
BROKER_PID=
SECONDS=0

say() { printf '[%3ds] %s\n' "$SECONDS" "$*"; }

pass() {
    E2E_CHECKS=$((E2E_CHECKS + 1))
    say "ok   - $1"
}

# fail NAME [DETAILS...]
fail() {
    E2E_CHECKS=$((E2E_CHECKS + 1))
    E2E_FAILS=$((E2E_FAILS + 1))
    local name=$1
    shift
    say "FAIL - $name${*:+: $*}"
}

# check NAME CMD...: passes when CMD exits 0.
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name" "command failed: $*"; fi
}

# Fatal: the rest of the file cannot run.
abort() {
    fail "$1" "${*:2}"
    say "aborting ${E2E_NAME:-test}: later checks depend on this one"
    exit 1
}

# Prints the last lines of a log file, indented, for the CI output.
show_log() {
    local f=$1 n=${2:-40}
    [ -f "$f" ] || return 0
    echo "----- last $n lines of $f -----"
    tail -n "$n" "$f" | sed 's/^/    /'
    echo "-----"
}

e2e_begin() {
    E2E_NAME=$1
    say "== $E2E_NAME"
    T=$(mktemp -d "${TMPDIR:-/tmp}/vdi-e2e-$E2E_NAME.XXXXXX")
    # QEMU runs as libvirt-qemu and must reach disks and logs below here.
    chmod 0755 "$T"
    mkdir -p "$T/logs"
    trap e2e_cleanup EXIT
    trap 'exit 130' INT TERM
    image_build
}

# Builds the demo image once (later runs find it up to date in well under a second).
image_build() {
    mkdir -p "$VDI_IMAGE_DIR"
    if ! flock "$VDI_IMAGE_DIR/.lock" "$VDI_SOURCE_DIR/packaging/image/build-demo-image.sh" \
        "$VDI_IMAGE_DIR" >"$T/logs/image.log" 2>&1; then
        show_log "$T/logs/image.log"
        abort "demo image" "build-demo-image.sh failed"
    fi
}

# pam_setup: a PAM service dir for pam_wrapper with the users of tests/data/e2e/passdb.
pam_setup() {
    mkdir -p "$T/pam"
    cp "$VDI_TEST_DATA/e2e/passdb" "$T/passdb"
    sed -e "s|@PAM_MATRIX@|$PAM_MATRIX|g" -e "s|@PASSDB@|$T/passdb|g" \
        "$VDI_TEST_DATA/e2e/pam-service.in" >"$T/pam/vdi"
}

# nss_setup: users and groups for nss_wrapper: the system's own (QEMU's user, nobody...)
# plus the test users of tests/data/e2e/passwd and group (staff = alice, bob;
# vdi-admins = admin).
nss_setup() {
    cat /etc/passwd "$VDI_TEST_DATA/e2e/passwd" >"$T/nss-passwd"
    cat /etc/group "$VDI_TEST_DATA/e2e/group" >"$T/nss-group"
}

# password USER: the test password from the passdb.
password() { awk -F: -v u="$1" '$1 == u { print $2 }' "$VDI_TEST_DATA/e2e/passdb"; }

# broker_start STATE_DIR [key=value...]: starts vdi-broker in the background with its own
# state dir, waits for "vdi-broker listening on ADDR:PORT", sets PORT, CA, STATE.
broker_start() {
    STATE=$1
    shift
    [ -x "$VDI_BROKER" ] || abort "prerequisites" "$VDI_BROKER is not built"
    mkdir -p "$STATE"
    chmod 0755 "$STATE"
    E2E_STATES+=("$STATE")
    [ -f "$T/pam/vdi" ] || pam_setup
    [ -f "$T/nss-passwd" ] || nss_setup
    sed -e "s|@STATE_DIR@|$STATE|g" "$VDI_TEST_DATA/e2e/broker.conf.in" >"$STATE.conf"
    local sets=() kv
    for kv in "$@"; do sets+=(--set "$kv"); done
    BROKER_LOG=$T/logs/broker-$(basename "$STATE").log
    : >"$BROKER_LOG" # a restart on the same state dir must not read the last run's lines
    # pam_wrapper dlopen()s libpam with RTLD_DEEPBIND, which ASan refuses (the broker
    # dies in its first PAM call); pam_wrapper 1.1.4 reads the switch under uid_wrapper's
    # name, later versions under their own.
    LD_PRELOAD="$PAM_WRAPPER_LIB $NSS_WRAPPER_LIB" PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=$T/pam \
        NSS_WRAPPER_PASSWD=$T/nss-passwd NSS_WRAPPER_GROUP=$T/nss-group NSS_WRAPPER_DISABLE_DEEPBIND=1 \
        PAM_WRAPPER_DISABLE_DEEPBIND=1 UID_WRAPPER_DISABLE_DEEPBIND=1 \
        ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$VDI_BROKER" --config "$STATE.conf" "${sets[@]}" >"$BROKER_LOG" 2>&1 &
    BROKER_PID=$!
    local i line
    for ((i = 0; i < 600; i++)); do
        line=$(grep -a -m1 'vdi-broker listening on' "$BROKER_LOG" 2>/dev/null) && break
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "${line:-}" ]; then
        show_log "$BROKER_LOG"
        abort "broker starts" "no 'vdi-broker listening on' line (pid $BROKER_PID)"
    fi
    line=${line##*listening on }
    line=${line%% *}
    PORT=${line##*:}
    ADDR=${line%:*}
    CA=$STATE/tls/ca-cert.pem
    [ -r "$CA" ] || abort "broker starts" "no CA certificate at $CA"
    ADMIN_URL=$(grep -a -m1 'vdi-broker admin API on' "$BROKER_LOG" | sed 's/.* on //')
    say "broker pid $BROKER_PID listening on $ADDR:$PORT, admin API $ADMIN_URL, CA $CA"
}

# vdictl_as USER ARGS...: vdictl against the running broker as USER (password from the
# passdb, through a file: never on the command line).
vdictl_as() {
    local user=$1
    shift
    [ -x "$VDICTL" ] || abort "prerequisites" "$VDICTL is not built"
    (umask 077 && password "$user" >"$T/pw-$user")
    "$VDICTL" --url "$ADMIN_URL" --ca-file "$CA" --user "$user" --password-file "$T/pw-$user" \
        "$@" 2>>"$T/logs/vdictl.log"
}
vdictl_admin() { vdictl_as admin "$@"; }

# template_setup [NAME]: the demo image as a template (default name "demo").
template_setup() {
    vdictl_admin template add "${1:-demo}" --disk "$VDI_IMAGE_DIR/disk.img" \
        --kernel "$VDI_IMAGE_DIR/vmlinuz" --initrd "$VDI_IMAGE_DIR/initrd.img" \
        --cmdline "$(cat "$VDI_IMAGE_DIR/cmdline")" >/dev/null ||
        abort "template setup" "vdictl template add failed: $(tail -n1 "$T/logs/vdictl.log")"
}

# pool_setup NAME [vdictl pool add options...]: a pool of the demo template sized for
# TCG (1 vCPU, 128 MiB), with no grace period unless the options give one (the logoff
# action runs when the user leaves); the group staff (alice, bob) is entitled to it.
pool_setup() {
    local name=$1 grace=(--grace 0)
    shift
    [[ " $* " == *" --grace "* ]] && grace=()
    vdictl_admin template show demo >/dev/null 2>&1 || template_setup demo
    vdictl_admin pool add "$name" --template demo --vcpus 1 --memory 128 "${grace[@]}" "$@" >/dev/null &&
        vdictl_admin entitlement add "$name" --group staff >/dev/null ||
        abort "pool setup" "vdictl pool/entitlement add failed: $(tail -n1 "$T/logs/vdictl.log")"
}

# desktop_of USER: the desktop the broker last handed to USER (from its log).
desktop_of() {
    grep -a "desktop ready name=.* user=$1 " "$BROKER_LOG" | tail -n1 |
        sed 's/.*desktop ready name=\([^ ]*\).*/\1/'
}

# broker_stop: SIGTERM; returns non-zero when it does not exit within 15 s or exits
# with a failure status.
broker_stop() {
    [ -n "$BROKER_PID" ] || return 0
    local pid=$BROKER_PID i status
    BROKER_PID=
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        say "broker $pid did not exit within 15 s of SIGTERM"
        return 1
    fi
    wait "$pid"
    status=$?
    [ "$status" -eq 0 ] || say "broker $pid exited with status $status"
    return "$status"
}

# virsh on the broker's embedded libvirt (only while no broker holds it).
virsh_e() { virsh -q -c "qemu:///embed?root=$STATE/libvirt" "$@" 2>>"$T/logs/virsh.log"; }

# vm_screenshot DOMAIN OUT.ppm: libvirt's own screenshot of the domain's display.
vm_screenshot() {
    virsh_e screenshot "$1" "$2.virsh" >/dev/null &&
        convert "$2.virsh" -type TrueColor -depth 8 "ppm:$2"
}

# client ARGS...: vnc-test-client; its output goes to stdout and $T/logs/clients.log.
client() {
    [ -x "$VNC_TEST_CLIENT" ] || abort "prerequisites" "$VNC_TEST_CLIENT is not built"
    # Leaks in the sanitizer build are libvncclient's/GnuTLS's, not vdi's: not checked.
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        "$VNC_TEST_CLIENT" "$@" 2>&1 | tee -a "$T/logs/clients.log"
    return "${PIPESTATUS[0]}"
}

# wait_text FILE TEXT SECONDS
wait_text() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -aqF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# Sanitizer and crash reports of the broker or its session processes.
check_no_sanitizer_reports() {
    local f=${1:-$BROKER_LOG}
    if grep -aE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|Segmentation fault' \
        "$f" >/dev/null; then
        fail "no sanitizer reports in $(basename "$f")" \
            "$(grep -aE -m3 'ERROR: |runtime error:' "$f")"
        show_log "$f" 80
    else
        pass "no sanitizer reports in $(basename "$f")"
    fi
}

e2e_cleanup() {
    local status=$? pid s d qpid
    for pid in "${E2E_BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    [ -n "$BROKER_PID" ] && broker_stop
    for s in "${E2E_STATES[@]}"; do
        [ -d "$s/libvirt" ] || continue
        STATE=$s
        for d in $(virsh_e list --all --name); do
            virsh_e destroy "$d" >/dev/null
        done
        # virsh destroy of a transient domain can report "not found" after killing it;
        # make sure no QEMU of ours survives, by its pid file.
        for qpid in $(cat "$s"/libvirt/run/qemu/*.pid 2>/dev/null); do
            kill -0 "$qpid" 2>/dev/null && kill -KILL "$qpid"
        done
    done
    if [ "$E2E_FAILS" -gt 0 ] || [ "$status" -ne 0 ]; then
        [ -n "${BROKER_LOG:-}" ] && show_log "$BROKER_LOG" 60
        say "kept $T for inspection"
    elif [ "${VDI_E2E_KEEP:-0}" = 1 ]; then
        say "kept $T (VDI_E2E_KEEP=1)"
    else
        rm -rf "$T"
    fi
}

e2e_end() {
    say "== $E2E_NAME: $((E2E_CHECKS - E2E_FAILS))/$E2E_CHECKS checks passed in ${SECONDS}s"
    [ "$E2E_FAILS" -eq 0 ]
    exit $?
}

# ---- pools, reconciliation and vdictl tests (test-pools.sh, test-reconcile.sh,
# test-vdictl.sh) ----

# need_jq: the tests that read vdictl --json use jq (Debian package jq).
need_jq() { command -v jq >/dev/null || abort "prerequisites" "jq is not installed (apt-get install jq)"; }

# poll_until SECONDS CMD...: runs CMD every 0.5 s until it succeeds; fails after SECONDS.
# CMD's arguments are expanded once, by the caller: poll a function, not "$(...)".
poll_until() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 2; i++)); do
        "$@" && return 0
        sleep 0.5
    done
    "$@"
}

# desktop_field DESKTOP FIELD: one field of `vdictl desktop show --json` ("" on error).
desktop_field() { vdictl_admin --json desktop show "$1" | jq -r ".$2 // empty" 2>/dev/null; }

# console_log DESKTOP: the desktop's serial log.
console_log() { echo "$STATE/console/$1.log"; }

# console_rotate DESKTOP: moves the serial log aside (only while the VM is off), so that
# waiting for "vdi-demo: ready" after the next start sees only the new boot.
console_rotate() { [ ! -f "$(console_log "$1")" ] || mv -f "$(console_log "$1")" "$(console_log "$1").old"; }

# vms_destroy: destroys the domains of $STATE (no broker may hold it).
vms_destroy() {
    local d
    for d in $(virsh_e list --name); do virsh_e destroy "$d" >/dev/null; done
}

# ---- sessions tests (test-sessions.sh, test-lifecycle.sh, test-throttle.sh,
# test-restart.sh) ----

RENDER_STATUS=${RENDER_STATUS:-$VDI_BUILD_DIR/tests/integration/e2e/vdi-render-status}

# expect_screen NAME FRAME.ppm TEXT: FRAME (what a client saw last, e.g. when it was
# closed) is the status screen showing TEXT, as vdi-session draws it.
expect_screen() {
    local name=$1 frame=$2 text=$3 w h out n
    [ -x "$RENDER_STATUS" ] || abort "prerequisites" "$RENDER_STATUS is not built"
    if [ ! -s "$frame" ]; then
        fail "$name" "no frame saved in $frame"
        return
    fi
    read -r w h < <(identify -format '%w %h\n' "$frame")
    "$RENDER_STATUS" "$w" "$h" "$text" "$frame.expected.ppm" || abort "$name" "render failed"
    # Tight/JPEG on the way is lossy at the anti-aliased edges of the letters: a few
    # dozen pixels differ; another text differs in thousands.
    out=$(client compare "$frame" "$frame.expected.ppm")
    n=$(sed -n 's/^differing-pixels: //p' <<<"$out")
    if [ "${n:-999999}" -le 200 ]; then
        pass "$name: \"$text\""
    else
        fail "$name" "the screen is not \"$text\" ($out; see $frame)"
    fi
}

# audit_has NAME JQ-FILTER: some line of the audit log matches (jq -e on each line).
audit_has() {
    local name=$1 filter=$2
    if [ -n "$(jq -c "select($filter)" "$STATE/audit.log" 2>/dev/null)" ]; then
        pass "audit: $name"
    else
        fail "audit: $name" "no line matches $filter in $STATE/audit.log"
    fi
}

# session_id_of USER: the live desktop session of USER (vdictl session list --json).
session_id_of() {
    vdictl_admin --json session list | jq -r --arg u "$1" '[.sessions[] | select(.user == $u)][0].id // empty'
}

# system_libvirt_up: makes sure libvirtd answers on qemu:///system (starting virtlogd and
# libvirtd when none does; stopped again by system_libvirt_down).
SYS=qemu:///system
STARTED_DAEMONS=()
virsh_s() { virsh -q -c "$SYS" "$@" 2>>"$T/logs/virsh.log"; }
system_libvirt_up() {
    local i
    if ! virsh -c "$SYS" version >/dev/null 2>&1; then
        command -v libvirtd >/dev/null || abort "prerequisites" "libvirtd missing (libvirt-daemon-system)"
        mkdir -p /var/log/libvirt /var/run/libvirt
        if ! pgrep -x virtlogd >/dev/null; then
            virtlogd -d && STARTED_DAEMONS+=(virtlogd)
        fi
        libvirtd -d && STARTED_DAEMONS+=(libvirtd)
        for ((i = 0; i < 100; i++)); do
            virsh -c "$SYS" version >/dev/null 2>&1 && break
            sleep 0.1
        done
    fi
    virsh -c "$SYS" version >/dev/null 2>&1 || abort "libvirtd answers" "qemu:///system unreachable"
    pass "libvirtd answers on $SYS${STARTED_DAEMONS[*]:+ (started: ${STARTED_DAEMONS[*]})}"
}
# system_libvirt_down PREFIX: removes the domains named PREFIX* and the vdi-disks pool of
# this test, and stops the daemons system_libvirt_up started.
system_libvirt_down() {
    local d
    for d in $(virsh_s list --all --name | grep "^$1"); do
        virsh_s destroy "$d" >/dev/null
        virsh_s undefine "$d" --nvram >/dev/null || virsh_s undefine "$d" >/dev/null
    done
    if virsh_s pool-dumpxml vdi-disks 2>/dev/null | grep -q "<path>/tmp/vdi-e2e-"; then
        virsh_s pool-destroy vdi-disks >/dev/null
        virsh_s pool-undefine vdi-disks >/dev/null
    fi
    for d in "${STARTED_DAEMONS[@]}"; do pkill -x "$d"; done
}
