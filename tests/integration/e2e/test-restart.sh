#!/usr/bin/env bash
# A broker restart does not drop connected users (DESIGN.md's stretch goal):
#   - alice is connected; the broker is killed with SIGKILL; she keeps working (her keys
#     reach the VM while no broker runs); a new broker starts on the same state dir, her
#     vdi-session re-attaches to it, and the new broker lists her session
#   - the same with SIGTERM then start
#   - the new broker governs the session: an admin disconnect from it closes her
#     connection, and the grace period and logoff follow
#   - a vdi-session presenting a wrong token is refused (unit-tested; here: the audit
#     log has session.reattach lines for the real ones)
source "$(dirname "$0")/lib.sh"
e2e_begin restart
need_jq

broker_start "$T/state" reattach_timeout_s=60
H=127.0.0.1:$PORT
pool_setup r --kind dedicated --logoff shutdown --grace 5
D=vdi-r-0001
SER=$(console_log "$D")
m=$RANDOM$RANDOM

client session "$H" --ca "$CA" --user alice --password "$(password alice)" --timeout 300 \
    --wait-file "$SER:vdi-demo: ready" --settle 1000 \
    --type "echo ONE-$m > /dev/ttyS0\n" --wait-file "$SER:ONE-$m" \
    --wait-file "$T/go-2:yes" --type "echo TWO-$m > /dev/ttyS0\n" --wait-file "$SER:TWO-$m" \
    --wait-file "$T/go-3:yes" --type "echo THREE-$m > /dev/ttyS0\n" --wait-file "$SER:THREE-$m" \
    --wait-file "$T/go-4:yes" --type "echo FOUR-$m > /dev/ttyS0\n" --wait-file "$SER:FOUR-$m" \
    --wait-closed 120000 --save "$T/closed.ppm" >"$T/alice.out" &
apid=$!
E2E_BG_PIDS+=("$apid")
poll_until 120 grep -aq "ONE-$m" "$SER"
check "alice works on $D" test $? -eq 0
SID=$(session_id_of alice)

# --- SIGKILL, typing while no broker runs, restart ------------------------------------------
kill -KILL "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null
BROKER_PID=
echo yes >"$T/go-2"
poll_until 20 grep -aq "TWO-$m" "$SER"
check "with the broker killed, alice's keys still reach her desktop" test $? -eq 0
mv "$BROKER_LOG" "$BROKER_LOG.1"
broker_start "$T/state" reattach_timeout_s=60
poll_until 30 grep -aq "session re-attached id=$SID .*user=alice" "$BROKER_LOG"
check "her vdi-session re-attached to the new broker (session $SID)" test $? -eq 0
check "the new broker lists her session, connected" \
    test "$(vdictl_admin --json session list | jq -r --arg id "$SID" '.sessions[] | select((.id|tostring) == $id) | .state')" = connected
echo yes >"$T/go-3"
poll_until 20 grep -aq "THREE-$m" "$SER"
check "she still works" test $? -eq 0
check "her client never noticed (still running)" kill -0 "$apid"
audit_has "session.reattach of alice" '.event == "session.reattach" and .user == "alice"'

# --- SIGTERM, then start ----------------------------------------------------------------------
broker_stop
check "SIGTERM stops the broker" test $? -eq 0
mv "$BROKER_LOG" "$BROKER_LOG.2"
broker_start "$T/state" reattach_timeout_s=60
poll_until 30 grep -aq "session re-attached id=$SID .*user=alice" "$BROKER_LOG"
check "after SIGTERM and start she re-attached again" test $? -eq 0
echo yes >"$T/go-4"
poll_until 20 grep -aq "FOUR-$m" "$SER"
check "and still works" test $? -eq 0

# --- the new broker governs the session ----------------------------------------------------
vdictl_admin session disconnect "$SID" >/dev/null
check "vdictl session disconnect through the new broker" test $? -eq 0
wait "$apid"
rc=$?
check "alice's client is closed (exit $rc)" test $rc -eq 0
expect_screen "she is told" "$T/closed.ppm" "Your session was disconnected by an administrator"
powered_off() { [ "$(desktop_field "$D" power)" = shutoff ]; }
poll_until 40 powered_off
check "grace period and logoff follow under the new broker" test $? -eq 0

check_no_sanitizer_reports "$BROKER_LOG.1"
check_no_sanitizer_reports
broker_stop
check "the broker stops cleanly" test $? -eq 0
e2e_end
