#!/usr/bin/env bash
# Desktops that stop without the broker asking, through libvirt's lifecycle events, on
# libvirtd (qemu:///system: there `virsh destroy` can run next to the broker; the
# embedded driver admits one process only):
#   - `poweroff` inside the guest closes alice's session with "Your desktop was shut
#     down", the store and the audit log record it, the next login starts the desktop
#   - `virsh destroy` closes it with "Your desktop was powered off"
#   - with stop_action restart, a destroyed desktop is started again by the broker
source "$(dirname "$0")/lib.sh"
e2e_begin lifecycle
need_jq

life_exit() {
    local status=$?
    system_libvirt_down vdi-life-
    (exit "$status")
    e2e_cleanup
}
trap life_exit EXIT
system_libvirt_up
(STARTED_DAEMONS=() && system_libvirt_down vdi-life-) # leftovers of a killed run

broker_start "$T/state" libvirt_uri=$SYS
H=127.0.0.1:$PORT
pool_setup life --kind dedicated --stop-action none
D=vdi-life-0001
SER=$(console_log "$D")
alice=(--ca "$CA" --user alice --password "$(password alice)")
power_is() { [ "$(desktop_field "$D" power)" = "$1" ]; }

# --- the guest powers itself off ------------------------------------------------------------
client session "$H" "${alice[@]}" --timeout 120 --wait-file "$SER:vdi-demo: ready" --settle 1000 \
    --type "poweroff -f\n" --wait-closed 60000 --save "$T/poweroff.ppm" >"$T/a1.out"
rc=$?
check "alice powers her desktop off from inside; her connection closes (exit $rc)" test $rc -eq 0
expect_screen "she is told why" "$T/poweroff.ppm" "Your desktop was shut down"
poll_until 20 power_is shutoff
check "the desktop is off, and stays off (stop_action none)" test $? -eq 0
audit_has "session.end: desktop shutdown" \
    '.event == "session.end" and .user == "alice" and (.reason | test("shutdown"))'
audit_has "desktop.stopped shutdown" '.event == "desktop.stopped" and .kind == "shutdown" and .desktop == "'"$D"'"'
check "no session is left for alice" test -z "$(session_id_of alice)"

# --- virsh destroy --------------------------------------------------------------------------
mv -f "$SER" "$SER.1" 2>/dev/null
client session "$H" "${alice[@]}" --timeout 120 --wait-file "$SER:vdi-demo: ready" --settle 1000 \
    --wait-file "$T/go:yes" --wait-closed 60000 --save "$T/destroy.ppm" >"$T/a2.out" &
cpid=$!
E2E_BG_PIDS+=("$cpid")
poll_until 120 grep -aq "vdi-demo: ready" "$SER"
check "the next login starts the desktop again" test $? -eq 0
echo yes >"$T/go"
sleep 1
check "virsh destroy $D" virsh_s destroy "$D"
wait "$cpid"
rc=$?
check "alice's connection closes (exit $rc)" test $rc -eq 0
expect_screen "she is told why" "$T/destroy.ppm" "Your desktop was powered off"
audit_has "session.end: desktop destroyed" \
    '.event == "session.end" and .user == "alice" and (.reason | test("destroy"))'

# --- stop_action restart ----------------------------------------------------------------------
vdictl_admin pool set life --stop-action restart >/dev/null ||
    fail "pool set --stop-action restart" "$(tail -n1 "$T/logs/vdictl.log")"
mv -f "$SER" "$SER.2" 2>/dev/null
client session "$H" "${alice[@]}" --timeout 120 --wait-file "$SER:vdi-demo: ready" \
    >"$T/a3.out"
check "alice logs in once more" test $? -eq 0
mv -f "$SER" "$SER.3" 2>/dev/null
check "virsh destroy $D" virsh_s destroy "$D"
poll_until 60 grep -aq "vdi-demo: ready" "$SER"
check "the broker started it again by itself (stop_action restart)" test $? -eq 0
check "it runs" power_is running

check_no_sanitizer_reports
broker_stop
check "the broker stops cleanly" test $? -eq 0
e2e_end
