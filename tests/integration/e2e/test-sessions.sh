#!/usr/bin/env bash
# Desktop sessions as users feel them, with the real broker, vdi-session, QEMU (TCG) and
# libvncclient clients:
#   - reconnect: after a drop, logging in again returns the same desktop with its running
#     programs (a `cat` started before the drop still echoes; the screen is as it was)
#   - takeover: a login from another address (127.0.0.2) takes the session; the first
#     client is closed with "Your session was opened from 127.0.0.2" on its screen
#   - an admin watches with "admin@#ID" (view only: typed keys never reach the VM) and the
#     user sees the banner; a non-admin cannot; `vdictl session disconnect` closes the
#     user's connection with the reason
#   - the grace period: the desktop stays as it is, then the pool's logoff (shutdown) runs
#   - idle timeout and maximum session time close the connection with the reason
#   - audit lines for each of these
source "$(dirname "$0")/lib.sh"
e2e_begin sessions
need_jq

broker_start "$T/state"
H=127.0.0.1:$PORT
pool_setup s --kind dedicated --logoff shutdown --grace 6
D=vdi-s-0001
SER=$(console_log "$D")
m=$RANDOM$RANDOM
alice=(--ca "$CA" --user alice --password "$(password alice)")
# ready_count USER: how many times USER was handed a desktop so far.
ready_count() { grep -ac "desktop ready name=.* user=$1 " "$BROKER_LOG"; }
# wait_ready USER N: until USER was handed a desktop N times.
wait_ready() {
    local i
    for ((i = 0; i < 1200; i++)); do
        [ "$(ready_count "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# --- reconnect ----------------------------------------------------------------------------
client session "$H" "${alice[@]}" --timeout 120 --wait-file "$SER:vdi-demo: ready" --settle 1000 \
    --type "echo RUN-$m > /dev/ttyS0; cat > /dev/ttyS0\n" --wait-file "$SER:RUN-$m" \
    --settle 1500 --save "$T/before.ppm" >"$T/a1.out"
rc=$?
check "alice logs in to $D and starts a program (exit $rc)" test $rc -eq 0
# The client is gone (as after a network drop); within the grace period she comes back.
client session "$H" "${alice[@]}" --timeout 60 --settle 1500 --save "$T/after.ppm" \
    --type "SAME-$m\n" --wait-file "$SER:SAME-$m" >"$T/a2.out"
rc=$?
check "alice logs in again and her running program reads what she types (exit $rc)" test $rc -eq 0
check "she got the same desktop ($(desktop_of alice))" test "$(desktop_of alice)" = "$D"
out=$(client compare "$T/before.ppm" "$T/after.ppm" --tolerance 40)
check "her screen is as she left it, the command she typed still on it ($out)" \
    grep -q '^differing-pixels: ' <<<"$out"
n=$(sed -n 's/^differing-pixels: //p' <<<"$out")
check "  ... at most a blinking cursor differs ($n pixels)" test "${n:-99999}" -le 40
check "the broker logged a reconnect" grep -aq "user=alice .*event=session.reconnect" "$BROKER_LOG"
audit_has "session.reconnect of alice" '.event == "session.reconnect" and .user == "alice"'

# --- takeover -----------------------------------------------------------------------------
before=$(ready_count alice)
client session "$H" "${alice[@]}" --timeout 60 --settle 500 --wait-closed 60000 \
    --save "$T/taken.ppm" >"$T/a3.out" &
first=$!
E2E_BG_PIDS+=("$first")
wait_ready alice $((before + 1)) || fail "alice's first device is connected"
client session "$H" "${alice[@]}" --source 127.0.0.2 --timeout 60 --settle 1000 \
    --type "TAKEN-$m\n" --wait-file "$SER:TAKEN-$m" >"$T/a4.out"
rc=$?
check "alice logs in from 127.0.0.2 and works there (exit $rc)" test $rc -eq 0
wait "$first"
rc=$?
check "her first device was closed (exit $rc)" test $rc -eq 0
expect_screen "the first device shows why" "$T/taken.ppm" "Your session was opened from 127.0.0.2"
audit_has "session.takeover from 127.0.0.1 to 127.0.0.2" \
    '.event == "session.takeover" and .previous == "127.0.0.1" and .client == "127.0.0.2"'

# --- an admin watches; admin disconnect -----------------------------------------------------
before=$(ready_count alice)
client session "$H" "${alice[@]}" --timeout 120 --settle 1000 --wait-file "$T/go-save:yes" \
    --save "$T/alice-watched.ppm" --wait-closed 90000 --save "$T/alice-disconnected.ppm" \
    >"$T/a5.out" &
watched=$!
E2E_BG_PIDS+=("$watched")
wait_ready alice $((before + 1)) || fail "alice is connected again"
SID=$(session_id_of alice)
check "vdictl lists alice's session ($SID)" test -n "$SID"
client session "$H" --ca "$CA" --user "bob@#$SID" --password "$(password bob)" --timeout 30 \
    --settle 500 >"$T/bob-watch.out"
rc=$?
check "bob (not an admin) cannot watch alice (exit $rc)" test $rc -eq 3
client session "$H" --ca "$CA" --user "admin@#$SID" --password "$(password admin)" --timeout 60 \
    --settle 1500 --save "$T/admin.ppm" --type "SHADOW-$m\n" --wait-file "$T/go-admin:yes" \
    >"$T/admin.out" &
admin=$!
E2E_BG_PIDS+=("$admin")
poll_until 30 test -s "$T/admin.ppm"
check "the admin sees alice's desktop" test -s "$T/admin.ppm"
sleep 2 # the admin's keys would have reached the VM by now
echo yes >"$T/go-save"
poll_until 30 test -s "$T/alice-watched.ppm"
if grep -aq "SHADOW-$m" "$SER"; then
    fail "the admin's keys never reach alice's desktop" "SHADOW-$m is on the serial console"
else
    pass "the admin's keys never reach alice's desktop (view only)"
fi
if [ -x "$RENDER_STATUS" ]; then
    "$RENDER_STATUS" --notice "An administrator (admin) is watching your screen" \
        "$T/admin.ppm" "$T/banner.expected.ppm"
    out=$(client compare "$T/alice-watched.ppm" "$T/banner.expected.ppm")
    n=$(sed -n 's/^differing-pixels: //p' <<<"$out")
    check "alice sees the banner over her desktop ($n pixels differ)" test "${n:-99999}" -le 200
fi
audit_has "session.shadow.start by admin, alice notified" \
    '.event == "session.shadow.start" and .actor == "admin" and .user == "alice" and .notified == "yes"'
echo yes >"$T/go-admin"
wait "$admin"
vdictl_admin session disconnect "$SID" >/dev/null
rc=$?
check "vdictl session disconnect $SID (exit $rc)" test $rc -eq 0
wait "$watched"
rc=$?
check "alice's client was closed (exit $rc)" test $rc -eq 0
expect_screen "alice is told" "$T/alice-disconnected.ppm" \
    "Your session was disconnected by an administrator"
audit_has "admin.session.disconnect by admin" '.event == "admin.session.disconnect" and .actor == "admin"'

# --- the grace period, then the logoff action ---------------------------------------------
sleep 2
check "2 s after the disconnect $D still runs (grace 6 s)" test "$(desktop_field "$D" power)" = running
powered_off() { [ "$(desktop_field "$D" power)" = shutoff ]; }
poll_until 40 powered_off
check "after the grace period the pool's logoff (shutdown) ran" test $? -eq 0
audit_has "session.end after the grace period" \
    '.event == "session.end" and .user == "alice" and .reason == "grace period over"'

# --- idle timeout ---------------------------------------------------------------------------
vdictl_admin pool set s --idle-timeout 8 >/dev/null ||
    fail "pool set --idle-timeout" "$(tail -n1 "$T/logs/vdictl.log")"
console_rotate "$D"
client session "$H" "${alice[@]}" --timeout 120 --wait-file "$SER:vdi-demo: ready" \
    --wait-closed 60000 --save "$T/idle.ppm" >"$T/a6.out"
rc=$?
check "alice, doing nothing, is disconnected (exit $rc)" test $rc -eq 0
expect_screen "she is told why" "$T/idle.ppm" \
    "You were disconnected after 8 seconds without keyboard or mouse input"
check "she was warned first (a notice was sent)" grep -aq "user=alice notice sent" "$BROKER_LOG"
audit_has "session.timeout idle" '.event == "session.timeout" and .kind == "idle"'
poll_until 40 powered_off

# --- maximum session time -------------------------------------------------------------------
vdictl_admin pool set s --idle-timeout 0 --max-session 25 >/dev/null ||
    fail "pool set --max-session" "$(tail -n1 "$T/logs/vdictl.log")"
console_rotate "$D"
client session "$H" "${alice[@]}" --timeout 120 --wait-file "$SER:vdi-demo: ready" \
    --type "echo busy\n" --wait-closed 60000 --save "$T/max.ppm" >"$T/a7.out"
rc=$?
check "alice's session ends at its time limit (exit $rc)" test $rc -eq 0
expect_screen "she is told why" "$T/max.ppm" "Your session reached its time limit of 25 seconds and was ended"
audit_has "session.timeout max" '.event == "session.timeout" and .kind == "max"'
poll_until 40 powered_off
check "the logoff ran at once after the time limit" test $? -eq 0

check_no_sanitizer_reports
broker_stop
check "the broker stops cleanly" test $? -eq 0
e2e_end
