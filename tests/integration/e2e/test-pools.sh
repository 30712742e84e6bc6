#!/usr/bin/env bash
# Pool behaviour through the real broker, with real logins and the desktops' own disks:
#   a) dedicated pool, logoff shutdown: alice's file on /home survives logoff (the VM is
#      powered off: the busybox guest ignores ACPI, shutdown_timeout_s = 3) and logon
#   b) floating pool (logoff reset): after alice's logoff the same desktop is free again
#      and bob gets it without alice's file (the disk went back to the template)
#   c) min_spare 2: two free desktops run without any login; a login takes one of them
#      without provisioning, and the spares are topped up again; deleting the pool
#      removes its free desktops and no spare is made again meanwhile
#   d) admission control: with memory_overcommit so low that one desktop fits, alice gets
#      hers, bob is refused with the capacity message, the log says why, and
#      vdi_admission_refused_total counts it (vdictl desktop start then exits 7)
#   0) "alice@?" (vdi-client's desktop chooser) with two pools is refused with the pool
#      list "VDI-POOLS/1 ded:linux flt:linux" as the reason (common/pool-list.h): audited
#      as login.pools, no desktop made, and vdi-session logs the login as given
source "$(dirname "$0")/lib.sh"
e2e_begin pools
# vdictl_as writes the password files; made private first, vdictl does not warn.
for u in admin alice bob carol; do install -m 600 /dev/null "$T/pw-$u"; done
need_jq

broker_start "$T/state"
H=127.0.0.1:$PORT
# staff (alice, bob) is entitled to every pool here, so logins name one: user@pool.
pool_setup ded --kind dedicated --logoff shutdown
pool_setup flt --kind floating

# login USER@POOL DESKTOP OUT ACTIONS...: a session that waits for the desktop's guest to
# be up (its serial log says so), then runs ACTIONS.
login() {
    local who=$1 desk=$2 out=$3
    shift 3
    client session "$H" --ca "$CA" --user "$who" --password "$(password "${who%@*}")" \
        --timeout 120 --wait-file "$(console_log "$desk"):vdi-demo: ready" --settle 1000 \
        "$@" >"$out"
}

# --- 0) "USER@?": the pool list for vdi-client's chooser -------------------------------
out=$(client session "$H" --ca "$CA" --user 'alice@?' --password "$(password alice)" --timeout 30)
rc=$?
reason=$(sed -n 's/^reason: //p' <<<"$out")
words=$(tr ' ' '\n' <<<"${reason#VDI-POOLS/1 }" | sort | tr '\n' ' ')
check "0: alice@? (two pools) is refused (exit $rc, want 3)" test $rc -eq 3
check "0: the reason is the pool list 'VDI-POOLS/1 ded:linux flt:linux' in some order ('$reason')" \
    test "${reason%% *}" = VDI-POOLS/1 -a "$words" = "ded:linux flt:linux "
check "0: the broker logged the list" grep -aq "user alice listed 2 pools " "$BROKER_LOG"
check "0: vdi-session logged the login as given (user=alice@?, not (invalid))" \
    grep -aqF 'Login refused client=127.0.0.1 user=alice@? reason="VDI-POOLS/1 ' "$BROKER_LOG"
audit_has "login.pools of alice, 2 listed" \
    '.event == "login.pools" and .user == "alice" and .listed == 2 and .source == "vnc"'
check "0: no desktop was made for the list" \
    bash -c "! grep -aq 'desktop provisioned' '$BROKER_LOG'"

# --- a) dedicated + logoff shutdown: the disk is kept ----------------------------------
D=vdi-ded-0001
data="DATA-xyz-$RANDOM$RANDOM"
login alice@ded "$D" "$T/a1.out" \
    --type "echo $data > /home/f; sync; echo SAVED > /dev/ttyS0\n" \
    --wait-file "$(console_log "$D"):SAVED"
rc=$?
check "a: alice@ded logs in to $D and saves a file on /home (exit $rc)" test $rc -eq 0
check "a: the broker handed $D to alice" test "$(desktop_of alice)" = "$D"
t0=$SECONDS
power_is() { [ "$(desktop_field "$1" power)" = "$2" ]; }
if poll_until 30 power_is "$D" shutoff; then
    pass "a: after alice left, the logoff action shut $D off ($((SECONDS - t0)) s; vdictl power shutoff)"
else
    fail "a: after alice left, the logoff action shut $D off" \
        "power '$(desktop_field "$D" power)' after 30 s"
fi
check "a: the broker logged the logoff of $D" grep -aq "logoff done name=$D" "$BROKER_LOG"
check "a: $D still belongs to alice" test "$(desktop_field "$D" owner)" = alice
console_rotate "$D"
login alice@ded "$D" "$T/a2.out" --type "cat /home/f > /dev/ttyS0\n" \
    --wait-file "$(console_log "$D"):$data"
rc=$?
check "a: alice logs in again, $D boots again (exit $rc)" test $rc -eq 0
check "a: her file survived logoff + shutdown + logon ('$data' on the serial log)" \
    grep -aqF "$data" "$(console_log "$D")"
check "a: a fresh boot of $D, not the old serial log" test -f "$(console_log "$D").old"

# --- b) floating: the disk goes back to the template at logoff ------------------------
F=vdi-flt-0001
data="DATA-flt-$RANDOM$RANDOM"
login alice@flt "$F" "$T/b1.out" \
    --type "echo $data > /home/f; sync; echo SAVED > /dev/ttyS0\n" \
    --wait-file "$(console_log "$F"):SAVED"
rc=$?
check "b: alice@flt logs in to $F and saves a file on /home (exit $rc)" test $rc -eq 0
free_again() { [ "$(vdictl_admin --json desktop show "$F" | jq -r '"\(.owner)/\(.state)"')" = /ready ]; }
t0=$SECONDS
if poll_until 30 free_again; then
    pass "b: after alice left, $F is free and ready again ($((SECONDS - t0)) s)"
else
    fail "b: after alice left, $F is free and ready again" \
        "$(vdictl_admin --json desktop show "$F" | tr -d '\n ')"
fi
check "b: the broker logged the reset of $F" grep -aq "desktop reset name=$F " "$BROKER_LOG"
console_rotate "$F"
marker="CHECKED-$RANDOM$RANDOM"
login bob@flt "$F" "$T/b2.out" \
    --type "cat /home/f > /dev/ttyS0 2>&1; echo $marker > /dev/ttyS0\n" \
    --wait-file "$(console_log "$F"):$marker"
rc=$?
check "b: bob@flt logs in and types into his desktop (exit $rc)" test $rc -eq 0
check "b: bob got the desktop alice used ($F)" test "$(desktop_of bob)" = "$F"
check "b: alice's file is gone from $F ('No such file' on the serial log)" \
    grep -aq "No such file" "$(console_log "$F")"
check "b: alice's data is not on bob's serial log" \
    bash -c "! grep -aqF '$data' '$(console_log "$F")'"

# --- c) warm spares ------------------------------------------------------------------
spares() {
    vdictl_admin --json desktop list --pool warm |
        jq -r '.desktops[] | select(.owner == "" and .state == "ready" and .power == "running") | .name'
}
n_spares() { [ "$(spares | wc -l)" -eq "$1" ]; }
t0=$SECONDS
pool_setup warm --kind dedicated --min-spare 2
if poll_until 60 n_spares 2; then
    pass "c: 2 free desktops run in pool warm $((SECONDS - t0)) s after it was made (check every 2 s)"
else
    fail "c: 2 free desktops run in pool warm" "$(vdictl_admin desktop list --pool warm)"
fi
mapfile -t before < <(spares)
check "c: the spares were provisioned without an owner" \
    test "$(grep -ac 'desktop provisioned name=vdi-warm-[0-9]* pool=warm owner=- ' "$BROKER_LOG")" -ge 2
for d in "${before[@]}"; do wait_text "$(console_log "$d")" "vdi-demo: ready" 60; done
client session "$H" --ca "$CA" --user alice@warm --password "$(password alice)" --timeout 60 \
    --sleep 300 >"$T/c.out"
rc=$?
got=$(desktop_of alice)
check "c: alice@warm logs in (exit $rc)" test $rc -eq 0
check "c: alice got one of the running spares (${before[*]}), got '$got'" \
    grep -qxF -- "$got" <(printf '%s\n' "${before[@]}")
check "c: no desktop was provisioned for alice's login" \
    bash -c "! grep -aq 'desktop provisioned name=.* pool=warm owner=alice' '$BROKER_LOG'"
check "c: $got now belongs to alice" test "$(desktop_field "$got" owner)" = alice
t0=$SECONDS
if poll_until 60 n_spares 2; then
    pass "c: the spares were topped up to 2 again in $((SECONDS - t0)) s ($(spares | tr '\n' ' '))"
else
    fail "c: the spares were topped up to 2 again" "$(vdictl_admin desktop list --pool warm)"
fi
check "c: pool warm has 3 desktops (alice's + 2 spares)" \
    test "$(vdictl_admin --json desktop list --pool warm | jq '.desktops | length')" -eq 3
# Deleting a pool that keeps spares: its free desktops go, and the spare check (every 2 s)
# must not make new ones while the deletion runs (each VM takes a moment to destroy).
vdictl_admin desktop unassign "$got" >/dev/null
vdictl_admin pool delete warm >/dev/null
rc=$?
check "c: pool warm (min_spare 2) is deleted with its 3 free desktops (exit $rc: $(tail -n1 "$T/logs/vdictl.log"))" \
    test $rc -eq 0
sleep 3 # more than spare_check_interval_s
n=$(vdictl_admin --json desktop list | jq '[.desktops[] | select(.pool == "warm")] | length')
check "c: no desktop of pool warm is left or made again ($n)" test "$n" = 0

# --- d) admission control ------------------------------------------------------------
# The broker's idea of the host's memory (libvirt's node info, which is what admission
# control uses; it can be less than MemTotal: on these VMs only NUMA node 0's memory).
host_mib=$(vdictl_admin metrics | awk '$1 == "vdi_host_memory_mib" { print $2 }')
if broker_stop; then pass "first broker exits cleanly on SIGTERM"; else fail "first broker exits cleanly on SIGTERM"; fi
check_no_sanitizer_reports "$BROKER_LOG"
vms_destroy # their CPU is not needed any more

# Ratio: 200 MiB of the host's memory, but the broker accepts no ratio below 0.1; then the
# pool's desktops are made bigger instead, so that exactly one fits: M <= limit < 2 M.
ratio=$(awk -v h="$host_mib" 'BEGIN { r = 200 / h; if (r < 0.1) r = 0.1; printf "%.4f", r }')
limit=$(awk -v h="$host_mib" -v r="$ratio" 'BEGIN { printf "%d", r * h }')
if [ "$limit" -ge 128 ] && [ "$limit" -lt 256 ]; then mem=128; else mem=$((limit * 2 / 3)); fi
say "host memory $host_mib MiB (broker), memory_overcommit=$ratio: limit $limit MiB, desktops of $mem MiB"
broker_start "$T/state2" "memory_overcommit=$ratio"
H=127.0.0.1:$PORT
template_setup demo
vdictl_admin pool add big --template demo --vcpus 1 --memory "$mem" >/dev/null &&
    vdictl_admin entitlement add big --group staff >/dev/null ||
    abort "pool setup" "pool big: $(tail -n1 "$T/logs/vdictl.log")"
client session "$H" --ca "$CA" --user alice --password "$(password alice)" --timeout 60 \
    --wait-file "$(console_log vdi-big-0001):vdi-demo: ready" >"$T/d1.out"
rc=$?
check "d: alice logs in to pool big (exit $rc)" test $rc -eq 0
check "d: alice's desktop vdi-big-0001 runs" test "$(desktop_field vdi-big-0001 power)" = running
client session "$H" --ca "$CA" --user bob --password "$(password bob)" --timeout 60 \
    --sleep 30000 >"$T/d2.out"
rc=$?
# The capacity refusal comes after the login (the user sees it on the status screen,
# then the session ends): the client loses the connection (exit 2).
check "d: bob's session is ended by the broker (client exit $rc, want 2)" test $rc -eq 2
check "d: the broker refused bob's desktop start by admission control" \
    grep -aqE "desktop failed user=bob .*refused by admission control: .*memory_mib [0-9]+ > $limit" \
    "$BROKER_LOG"
check "d: bob was told 'no capacity' (the status text his session showed)" \
    grep -aqE 'Broker closed the session .*user=bob reason=".*no capacity to start your desktop' \
    "$BROKER_LOG"
refused=$(vdictl_admin metrics | awk '$1 == "vdi_admission_refused_total" { print $2 }')
check "d: vdi_admission_refused_total is 1 ('$refused')" test "$refused" = 1
bd=$(desktop_of bob)
bd=${bd:-$(vdictl_admin --json desktop list --pool big | jq -r '.desktops[] | select(.owner == "bob") | .name')}
check "d: bob's desktop ($bd) is not running" test "$(desktop_field "$bd" power)" = shutoff
vdictl_admin desktop start "$bd" >/dev/null
rc=$?
check "d: vdictl desktop start $bd is refused as capacity (exit $rc, want 7)" test $rc -eq 7
refused=$(vdictl_admin metrics | awk '$1 == "vdi_admission_refused_total" { print $2 }')
check "d: vdi_admission_refused_total is 2 after that ('$refused')" test "$refused" = 2

if broker_stop; then pass "second broker exits cleanly on SIGTERM"; else fail "second broker exits cleanly on SIGTERM"; fi
check_no_sanitizer_reports "$BROKER_LOG"
e2e_end
