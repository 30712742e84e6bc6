#!/usr/bin/env bash
# run-provision-bench.sh: how long the real vdi-broker takes to make desktops (linked
# clones of the demo template on qemu:///embed, TCG), and login-to-first-frame with a warm
# spare vs a cold start. Prints figures; not a test (not in ctest).
#
#   tests/bench/run-provision-bench.sh [N_CLONES [N_LOGINS]]   (defaults 5 and 3; root)
#
# 1. Linked clones: a pool with min_spare = max = N_CLONES makes N desktops one after the
#    other (the broker's spare maintenance, every spare_check_interval_s = 2 s). Per
#    desktop, from the broker's log: "desktop provisioned ... ms=M" (qcow2 overlay with
#    qemu-img + domain defined) and the time from the end of that to "desktop started"
#    (admission check + virDomainCreate: QEMU launched, not yet booted); clone = both.
#    Before that, one throw-away desktop absorbs the embedded driver's one-time QEMU
#    capability probe of a fresh libvirt root (reported on its own line).
# 2. Login to first frame, N_LOGINS times each, with tests/bench/vdi-bench-client (times
#    from just before its TCP connect; see tests/bench/README.md):
#      warm: a pool with min_spare 1 (max 1) whose spare has booted ("vdi-demo: ready" on
#            its serial log) before alice logs in
#      cold: a new pool with min_spare 0: bob's login makes, starts and boots a desktop
#    Figures: the first framebuffer update (the broker's status screen), the first update
#    at the VM's size (the desktop's own picture), and, cold, until the guest writes
#    "vdi-demo: ready" (polled every 100 ms). Each desktop is stopped after its sample.
# Environment: as run-bench.sh (VDI_BUILD_DIR default build-bench, VDI_IMAGE_DIR,
# VDI_BENCH_CLIENT, VDI_E2E_KEEP=1 keeps the temp dir with the broker log).
set -uo pipefail
N_CLONES=${1:-5}
N_LOGINS=${2:-3}

# shellcheck source=bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
command -v jq >/dev/null || { echo "jq is needed (apt-get install jq)" >&2; exit 1; }
e2e_begin provision-bench

STATUS_SIZE=1024x768 # vdi-session's status screen
# stats: numbers (ms) on stdin -> "median min max" (median of an even count: the mean of
# the middle two).
stats() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- - -"; exit }
        med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.0f %.0f %.0f\n", med, v[1], v[NR] }'
}
running_free() {
    vdictl_admin --json desktop list --pool "$1" |
        jq '[.desktops[] | select(.owner == "" and .power == "running")] | length'
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
broker_start "$T/state" log_level=info
template_setup demo

# --- 1. linked clones ---------------------------------------------------------------------
vdictl_admin pool add first --template demo --vcpus 1 --memory 128 --min-spare 1 --max 1 >/dev/null ||
    abort "pool first" "$(tail -n1 "$T/logs/vdictl.log")"
wait_text "$BROKER_LOG" "desktop started name=vdi-first-0001 " 120 || abort "first desktop" "not started"
FIRST_PROV=$(sed -n 's/.*desktop provisioned name=vdi-first-0001 .* ms=\([0-9]*\).*/\1/p' "$BROKER_LOG")
# (min_spare 0 first: the spare check would replace desktops while the delete runs)
pool_drop() {
    vdictl_admin pool set "$1" --min-spare 0 >/dev/null
    vdictl_admin pool delete "$1" >/dev/null || say "pool delete $1: $(tail -n1 "$T/logs/vdictl.log")"
}
pool_drop first

t0=$(now_ms)
vdictl_admin pool add clones --template demo --vcpus 1 --memory 128 --min-spare "$N_CLONES" \
    --max "$N_CLONES" >/dev/null || abort "pool clones" "$(tail -n1 "$T/logs/vdictl.log")"
for ((i = 0; i < 1200; i++)); do
    [ "$(running_free clones)" -ge "$N_CLONES" ] && break
    sleep 0.1
done
ALL_RUNNING_MS=$(($(now_ms) - t0))
[ "$(running_free clones)" -ge "$N_CLONES" ] || abort "clones" "not all $N_CLONES running"
ALL_READY_MS=-
for ((k = 1; k <= N_CLONES; k++)); do
    wait_text "$(console_log "$(printf 'vdi-clones-%04d' "$k")")" "vdi-demo: ready" 300 || break
    [ "$k" -eq "$N_CLONES" ] && ALL_READY_MS=$(($(now_ms) - t0))
done
: >"$T/prov.ms"
: >"$T/start.ms"
: >"$T/clone.ms"
for ((k = 1; k <= N_CLONES; k++)); do
    d=$(printf 'vdi-clones-%04d' "$k")
    p=$(grep -a -m1 "desktop provisioned name=$d " "$BROKER_LOG")
    s=$(grep -a -m1 "desktop started name=$d " "$BROKER_LOG")
    [ -n "$p" ] && [ -n "$s" ] || abort "clones" "no provisioned/started lines for $d"
    ms=${p##*ms=}
    start=$(($(log_ms "$s") - $(log_ms "$p")))
    echo "$ms" >>"$T/prov.ms"
    echo "$start" >>"$T/start.ms"
    echo $((ms + start)) >>"$T/clone.ms"
    say "$d: overlay+define $ms ms, start $start ms"
done
pool_drop clones

# --- 2. login to first frame: warm spare vs cold start ------------------------------------
us2ms() { awk -v u="$1" 'BEGIN { if (u == "" || u < 0) print "-"; else printf "%.0f\n", u / 1000 }'; }
: >"$T/warm.first"
: >"$T/warm.vm"
: >"$T/cold.first"
: >"$T/cold.vm"
: >"$T/cold.ready"
for ((k = 1; k <= N_LOGINS; k++)); do
    # warm: alice's pool wK has its spare booted before she logs in
    vdictl_admin pool add "w$k" --template demo --vcpus 1 --memory 128 --min-spare 1 --max 1 >/dev/null &&
        vdictl_admin entitlement add "w$k" --user alice >/dev/null ||
        abort "pool w$k" "$(tail -n1 "$T/logs/vdictl.log")"
    d=vdi-w$k-0001
    wait_text "$(console_log "$d")" "vdi-demo: ready" 300 || abort "spare $d" "did not boot"
    sleep 2 # the guest's boot work is over
    out=$(bench alice@"w$k" --until-not "$STATUS_SIZE" --timeout 120) ||
        abort "warm login $k" "$(tail -n 3 "$T/logs/bench.err")"
    field first-update-us "$out" >>"$T/warm.first"
    field other-update-us "$out" >>"$T/warm.vm"
    grep -aq "desktop provisioned name=vdi-w$k-0001 pool=w$k owner=alice" "$BROKER_LOG" &&
        say "warm login $k: a desktop was provisioned for it (not warm)"
    say "warm $k ($d): status screen $(us2ms "$(field first-update-us "$out")") ms, VM frame $(us2ms "$(field other-update-us "$out")") ms ($(field other-size "$out"))"
    vdictl_admin desktop stop "$d" >/dev/null

    # cold: bob's pool cK has nothing; his login makes and boots the desktop
    vdictl_admin pool add "c$k" --template demo --vcpus 1 --memory 128 >/dev/null &&
        vdictl_admin entitlement add "c$k" --user bob >/dev/null ||
        abort "pool c$k" "$(tail -n1 "$T/logs/vdictl.log")"
    d=vdi-c$k-0001
    start=$(now_ms)
    out=$(bench bob@"c$k" --until-not "$STATUS_SIZE" --timeout 120) ||
        abort "cold login $k" "$(tail -n 3 "$T/logs/bench.err")"
    if wait_text "$(console_log "$d")" "vdi-demo: ready" 300; then
        echo $(($(now_ms) - start)) >>"$T/cold.ready"
    fi
    field first-update-us "$out" >>"$T/cold.first"
    field other-update-us "$out" >>"$T/cold.vm"
    say "cold $k ($d): status screen $(us2ms "$(field first-update-us "$out")") ms, VM frame $(us2ms "$(field other-update-us "$out")") ms ($(field other-size "$out")), guest ready $(tail -n1 "$T/cold.ready") ms"
    sleep 1
    vdictl_admin desktop stop "$d" >/dev/null
done

# --- report -------------------------------------------------------------------------------
ms_of() { while read -r u; do us2ms "$u"; done <"$1"; }
read -r p_med p_min p_max < <(stats <"$T/prov.ms")
read -r s_med s_min s_max < <(stats <"$T/start.ms")
read -r c_med c_min c_max < <(stats <"$T/clone.ms")
read -r wf_med wf_min wf_max < <(ms_of "$T/warm.first" | stats)
read -r wv_med wv_min wv_max < <(ms_of "$T/warm.vm" | stats)
read -r cf_med cf_min cf_max < <(ms_of "$T/cold.first" | stats)
read -r cv_med cv_min cv_max < <(ms_of "$T/cold.vm" | stats)
read -r cr_med cr_min cr_max < <(stats <"$T/cold.ready")
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
echo
echo "machine: nproc=$(nproc), CPU: $cpu_model, kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "load average at start: $LOAD0; broker log_level=info, virt_type=qemu (TCG), guests 1 vCPU / 128 MiB"
echo "times in ms"
row() { printf '%-62s %8s %8s %8s\n' "$@"; }
row "figure" "median" "min" "max"
row "linked clone ($N_CLONES): overlay + define (log ms=)" "$p_med" "$p_min" "$p_max"
row "linked clone ($N_CLONES): start (provisioned -> started)" "$s_med" "$s_min" "$s_max"
row "linked clone ($N_CLONES): overlay + define + start" "$c_med" "$c_min" "$c_max"
row "first desktop on a fresh libvirt root: overlay + define" "$FIRST_PROV" "" ""
row "pool add -> all $N_CLONES spares running (2 s spare checks)" "$ALL_RUNNING_MS" "" ""
row "pool add -> all $N_CLONES guests 'vdi-demo: ready' (serial)" "$ALL_READY_MS" "" ""
row "warm spare login ($N_LOGINS): status screen (first update)" "$wf_med" "$wf_min" "$wf_max"
row "warm spare login ($N_LOGINS): first frame of the desktop" "$wv_med" "$wv_min" "$wv_max"
row "cold login ($N_LOGINS): status screen (first update)" "$cf_med" "$cf_min" "$cf_max"
row "cold login ($N_LOGINS): first frame of the VM (firmware)" "$cv_med" "$cv_min" "$cv_max"
row "cold login ($N_LOGINS): guest 'vdi-demo: ready' (+-100)" "$cr_med" "$cr_min" "$cr_max"

broker_stop || fail "broker stops"
say "provision bench done in ${SECONDS}s"
exit 0
