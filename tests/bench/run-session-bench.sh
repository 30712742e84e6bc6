#!/usr/bin/env bash
# run-session-bench.sh: what sessions cost a user, with the real vdi-broker on
# qemu:///embed (TCG): reconnecting to a running session, taking a session over from
# another device, and a broker restart under a connected user. Prints figures; not a
# test (not in ctest).
#
#   tests/bench/run-session-bench.sh [N]   (default 5 rounds of each; root)
#
# 1. Reconnect: alice's session is disconnected (grace 10 min); she logs in again with
#    tests/bench/vdi-bench-client: time to the first frame of her desktop (an update at
#    the VM's size), from just before the TCP connect.
# 2. Takeover: alice is connected (a client holding the connection); she logs in again
#    from a second client: time to that client's first desktop frame (the broker closes
#    the first connection on the way).
# 3. Broker restart with alice connected: SIGKILL, then a new vdi-broker on the same state
#    directory; from the new broker's "listening" line to "session re-attached" (the
#    vdi-session's retry back-off decides most of it), and from the kill to that line.
# Environment: as run-bench.sh (VDI_BUILD_DIR default build-bench, VDI_IMAGE_DIR,
# VDI_BENCH_CLIENT, VDI_E2E_KEEP=1 keeps the temp dir with the broker logs).
set -uo pipefail
N=${1:-5}

# shellcheck source=bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
e2e_begin session-bench

stats() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- - -"; exit }
        med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.0f %.0f %.0f\n", med, v[1], v[NR] }'
}
us2ms() { awk -v u="$1" 'BEGIN { if (u == "" || u < 0) print "-"; else printf "%.0f\n", u / 1000 }'; }
ready_lines() { grep -ac "desktop ready name=.* user=alice " "$BROKER_LOG"; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
broker_start "$T/state" log_level=info reattach_timeout_s=60
pool_setup b --kind dedicated --grace 600
D=vdi-b-0001
bench alice --timeout 120 >/dev/null || abort "first login" "$(tail -n 3 "$T/logs/bench.err")"
wait_text "$(console_log "$D")" "vdi-demo: ready" 120 || abort "desktop" "did not boot"
sleep 2

# --- 1. reconnect ----------------------------------------------------------------------------
: >"$T/reconnect"
for ((k = 1; k <= N; k++)); do
    out=$(bench alice --until-not 1024x768 --timeout 60) || abort "reconnect $k" "$(tail -n 3 "$T/logs/bench.err")"
    us2ms "$(field other-update-us "$out")" >>"$T/reconnect"
    say "reconnect $k: desktop frame $(tail -n1 "$T/reconnect") ms"
done

# --- 2. takeover -----------------------------------------------------------------------------
: >"$T/takeover"
for ((k = 1; k <= N; k++)); do
    before=$(ready_lines)
    bench alice --hold 60000 --timeout 90 >/dev/null &
    holder=$!
    E2E_BG_PIDS+=("$holder")
    for ((i = 0; i < 300; i++)); do [ "$(ready_lines)" -gt "$before" ] && break; sleep 0.1; done
    sleep 1
    out=$(bench alice --until-not 1024x768 --timeout 60) || abort "takeover $k" "$(tail -n 3 "$T/logs/bench.err")"
    us2ms "$(field other-update-us "$out")" >>"$T/takeover"
    wait "$holder" 2>/dev/null
    say "takeover $k: desktop frame $(tail -n1 "$T/takeover") ms"
done

# --- 3. broker restart under a connected user ------------------------------------------------
: >"$T/reattach"
: >"$T/reattach.kill"
for ((k = 1; k <= N; k++)); do
    before=$(ready_lines)
    bench alice --hold 120000 --timeout 150 >/dev/null &
    holder=$!
    E2E_BG_PIDS+=("$holder")
    for ((i = 0; i < 300; i++)); do [ "$(ready_lines)" -gt "$before" ] && break; sleep 0.1; done
    sleep 1
    t_kill=$(now_ms)
    kill -KILL "$BROKER_PID"
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=
    mv "$BROKER_LOG" "$BROKER_LOG.$k"
    broker_start "$T/state" log_level=info reattach_timeout_s=60
    wait_text "$BROKER_LOG" "session re-attached" 60 || abort "re-attach $k" "no re-attach line"
    listen=$(grep -a -m1 "vdi-broker listening on" "$BROKER_LOG")
    back=$(grep -a -m1 "session re-attached" "$BROKER_LOG")
    echo $(($(log_ms "$back") - $(log_ms "$listen"))) >>"$T/reattach"
    echo $(($(log_ms "$back") - t_kill)) >>"$T/reattach.kill"
    say "restart $k: listening -> re-attached $(tail -n1 "$T/reattach") ms, kill -> re-attached $(tail -n1 "$T/reattach.kill") ms"
    kill "$holder" 2>/dev/null
    wait "$holder" 2>/dev/null
done
broker_stop

row() {
    local m
    read -r med lo hi < <(stats <"$2")
    printf '| %s | %s | %s | %s |\n' "$1" "$med" "$lo" "$hi"
}
echo
echo "load average at start: $LOAD0; N=$N; $(nproc) CPUs"
echo "| figure (ms) | median | min | max |"
echo "|---|---:|---:|---:|"
row "reconnect ($N): login to the desktop's first frame" "$T/reconnect"
row "takeover ($N): second device's first desktop frame" "$T/takeover"
row "broker SIGKILL + start ($N): new broker listening -> session re-attached" "$T/reattach"
row "broker SIGKILL + start ($N): kill -> session re-attached" "$T/reattach.kill"
e2e_end
