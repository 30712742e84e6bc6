#!/usr/bin/env bash
# run-bench.sh: login latency, pre-auth handshake cost and memory of the real vdi-broker +
# vdi-session + QEMU (TCG) on loopback. Prints figures; not a test (not in ctest).
#
#   tests/bench/run-bench.sh [N_WARM [N_HANDSHAKE]]      (defaults 10 and 20; needs root)
#
# Uses the end-to-end harness (tests/integration/e2e/lib.sh): pam_wrapper users of
# tests/data/e2e/passdb, its broker.conf (listen_port = 0, virt_type = qemu, own state
# dir in a temp dir), the demo image. Timings come from tests/bench/vdi-bench-client
# (libvncclient's VeNCrypt X509Plain code, microseconds from just before the TCP connect);
# see tests/bench/README.md. Environment: VDI_BUILD_DIR (default build-bench),
# VDI_IMAGE_DIR (default build/tests/image when it exists), VDI_BENCH_CLIENT.
set -uo pipefail
N_WARM=${1:-10}
N_HS=${2:-20}

# shellcheck source=bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
e2e_begin bench

STATUS_SIZE=1024x768 # vdi-session's status screen (display/session-main.c)
CLK_TCK=$(getconf CLK_TCK)

us2ms() { awk -v u="$1" 'BEGIN { if (u < 0) print "-"; else printf "%.1f", u / 1000 }'; }
# stats: reads numbers (us) on stdin, prints "median p90 min max" in ms (p90: nearest rank).
stats() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- - - -"; exit }
        med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        r = int(0.9 * NR); if (r < 0.9 * NR) r++
        printf "%.1f %.1f %.1f %.1f\n", med / 1000, v[r] / 1000, v[1] / 1000, v[NR] / 1000 }'
}
# cpu_ticks PID: "self children" CPU ticks (utime+stime, cutime+cstime) from /proc/PID/stat.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13, $14 + $15 }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# The dedicated pool "desktops" makes one desktop per user in login order.
console() { case $1 in alice) n=0001 ;; *) n=0002 ;; esac; echo "$STATE/console/vdi-desktops-$n.log"; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
broker_start "$T/state" log_level=info
pool_setup desktops --kind dedicated
RSS_BROKER_IDLE=$(rss_kib "$BROKER_PID")

# --- cold logins: the first login of a user defines and boots the VM -------------------
declare -A COLD
for u in alice bob; do
    start=$(now_ms)
    out=$(bench "$u" --until-not "$STATUS_SIZE" --timeout 240) ||
        abort "cold login of $u" "vdi-bench-client failed: $(tail -n 3 "$T/logs/bench.err")"
    COLD[$u.status]=$(field first-update-us "$out")
    COLD[$u.status_size]=$(field first-size "$out")
    COLD[$u.vm]=$(field other-update-us "$out")
    COLD[$u.vm_size]=$(field other-size "$out")
    # The guest's own "ready" line on its serial console (polled every 100 ms).
    if wait_text "$(console "$u")" "vdi-demo: ready" 240; then
        COLD[$u.ready]=$((($(now_ms) - start) * 1000))
    else
        COLD[$u.ready]=-1
    fi
    say "cold $u: status screen $(us2ms "${COLD[$u.status]}") ms (${COLD[$u.status_size]}), VM screen $(us2ms "${COLD[$u.vm]}") ms (${COLD[$u.vm_size]}), guest ready $(us2ms "${COLD[$u.ready]}") ms"
done
sleep 2 # let both guests finish their boot work before the warm figures

# --- warm logins: alice's VM is running ----------------------------------------------
rm -f "$T/warm.first" "$T/warm.vm" "$T/warm.serverinit" "$T/warm.sizes"
for ((i = 1; i <= N_WARM; i++)); do
    out=$(bench alice --until-not "$STATUS_SIZE" --timeout 60) ||
        abort "warm login $i" "vdi-bench-client failed: $(tail -n 3 "$T/logs/bench.err")"
    field first-update-us "$out" >>"$T/warm.first"
    field other-update-us "$out" >>"$T/warm.vm"
    field serverinit-us "$out" >>"$T/warm.serverinit"
    field first-size "$out" >>"$T/warm.sizes"
    sleep 0.3 # the previous vdi-session ends and is reaped
done
say "warm: $N_WARM logins done"

# --- pre-auth handshake and broker CPU per login --------------------------------------
sleep 0.5
read -r b_self0 b_child0 < <(cpu_ticks "$BROKER_PID")
rm -f "$T/hs.secresult" "$T/hs.tls" "$T/hs.version"
hs_start=$(now_ms)
for ((i = 1; i <= N_HS; i++)); do
    out=$(bench alice --timeout 60) ||
        abort "handshake login $i" "vdi-bench-client failed: $(tail -n 3 "$T/logs/bench.err")"
    field secresult-us "$out" >>"$T/hs.secresult"
    field tls-us "$out" >>"$T/hs.tls"
    field version-us "$out" >>"$T/hs.version"
done
sleep 1 # the last vdi-session exits and is reaped (its CPU lands in cutime)
hs_wall=$(($(now_ms) - hs_start))
read -r b_self1 b_child1 < <(cpu_ticks "$BROKER_PID")
CPU_BROKER_MS=$(awk -v d=$((b_self1 - b_self0)) -v n="$N_HS" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.2f", d * 1000 / hz / n }')
CPU_SESSION_MS=$(awk -v d=$((b_child1 - b_child0)) -v n="$N_HS" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.2f", d * 1000 / hz / n }')
say "handshake: $N_HS logins in $hs_wall ms"

# --- memory while a client is connected ------------------------------------------------
bench alice --hold 4000 --timeout 60 >"$T/hold.out" &
hold_pid=$!
E2E_BG_PIDS+=("$hold_pid")
wait_text "$T/hold.out" "holding:" 30 || abort "memory" "client did not log in"
sleep 1
SESSION_PID=$(pgrep -P "$BROKER_PID" -x vdi-session | head -n1)
RSS_BROKER=$(rss_kib "$BROKER_PID")
RSS_SESSION=$( [ -n "$SESSION_PID" ] && rss_kib "$SESSION_PID")
QEMU_PID=$(cat "$STATE/libvirt/run/qemu/"*desktops-0001*.pid 2>/dev/null | head -n1)
RSS_QEMU=$( [ -n "$QEMU_PID" ] && rss_kib "$QEMU_PID")
wait "$hold_pid"

# --- report ----------------------------------------------------------------------------
WARM_FIRST_SIZE=$(sort "$T/warm.sizes" | uniq -c | awk '{ printf "%s%dx %s", (NR > 1 ? ", " : ""), $1, $2 }')
read -r wf_med wf_p90 wf_min wf_max < <(stats <"$T/warm.first")
read -r wv_med wv_p90 wv_min wv_max < <(stats <"$T/warm.vm")
read -r ws_med ws_p90 ws_min ws_max < <(stats <"$T/warm.serverinit")
read -r hs_med hs_p90 hs_min hs_max < <(stats <"$T/hs.secresult")
read -r ht_med ht_p90 _ _ < <(stats <"$T/hs.tls")
read -r hv_med hv_p90 _ _ < <(stats <"$T/hs.version")
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
echo
echo "machine: nproc=$(nproc), CPU: $cpu_model, kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "load average at start: $LOAD0 (2 guests booted by this run; other load on the host counts too)"
echo "times in ms from just before the TCP connect; memory in MiB (VmRSS)"
printf '%-58s %9s %9s %9s %9s\n' "figure" "median" "p90" "min" "max"
row() { printf '%-58s %9s %9s %9s %9s\n' "$@"; }
row "warm login ($N_WARM): ServerInit" "$ws_med" "$ws_p90" "$ws_min" "$ws_max"
row "warm login ($N_WARM): first framebuffer update" \
    "$wf_med" "$wf_p90" "$wf_min" "$wf_max"
echo "warm first update sizes: $WARM_FIRST_SIZE (1024x768 = status screen, then the VM's)"
row "warm login ($N_WARM): first update at VM size" "$wv_med" "$wv_p90" "$wv_min" "$wv_max"
for u in alice bob; do
    row "cold login $u: status screen (${COLD[$u.status_size]})" \
        "$(us2ms "${COLD[$u.status]}")" "" "" ""
    row "cold login $u: VM's own screen (${COLD[$u.vm_size]})" \
        "$(us2ms "${COLD[$u.vm]}")" "" "" ""
    row "cold login $u: guest 'vdi-demo: ready' on serial (+-100)" \
        "$(us2ms "${COLD[$u.ready]}")" "" "" ""
done
row "handshake ($N_HS seq.): RFB version read" "$hv_med" "$hv_p90" "" ""
row "handshake ($N_HS seq.): TLS done" "$ht_med" "$ht_p90" "" ""
row "handshake ($N_HS seq.): SecurityResult ok" "$hs_med" "$hs_p90" "$hs_min" "$hs_max"
row "CPU per login: vdi-broker itself (utime+stime)" "$CPU_BROKER_MS" "" "" ""
row "CPU per login: its vdi-session (cutime+cstime)" "$CPU_SESSION_MS" "" "" ""
mib() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f", k / 1024 }'; }
row "RSS vdi-broker, idle before any login" "$(mib "$RSS_BROKER_IDLE")" "" "" ""
row "RSS vdi-broker, 2 VMs, 1 client connected" "$(mib "$RSS_BROKER")" "" "" ""
row "RSS vdi-session (pid $SESSION_PID), client connected" "$(mib "$RSS_SESSION")" "" "" ""
row "RSS qemu of alice's desktop (128 MiB guest, TCG), for reference" "$(mib "$RSS_QEMU")" "" "" ""
echo "CPU ticks are ${CLK_TCK} Hz: per-login CPU resolution $(awk -v n="$N_HS" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", 1000 / hz / n }') ms"

broker_stop || fail "broker stops"
say "bench done in ${SECONDS}s"
exit 0
