#!/usr/bin/env bash
# A broker killed with SIGKILL in the middle of making a desktop, restarted on the same
# state dir, converges (pools.c, "Reconciliation rules"):
#   - rounds, each: a new user's first login starts, and the broker is killed -9
#       1. as soon as the new desktop's row is in the store as PROVISIONING (rolled back)
#       2. as soon as that row is READY (the VM is being started)
#       3. at a random 0-2 s after the login was accepted (provisioning, start, attach)
#     (the broker is slowed down by SIGSTOP/SIGCONT during a round, so that these points
#     can be hit: making a desktop takes ~20 ms; 1 and 2 are retried with the next user
#     until the kill lands in the wanted state, and must land there);
#     then, after the restart: reconciliation reports no failure; every desktop in
#     `vdictl desktop list` is ready and has a domain (power != missing); the user's
#     desktop either exists and is theirs or does not exist at all; and once the broker is
#     stopped, the domains libvirt has and the overlays in <state>/disks are exactly the
#     desktops of the store (no orphan domain, no orphan qcow2, no desktop without either)
#   - the crash states no kill can be aimed at, made by hand in the store (sqlite3) and
#     libvirt (virsh) with the broker stopped, each converge by its rule: PROVISIONING
#     with domain and overlay (finished), DELETING (finished), RESETTING (finished: new
#     overlay, owner kept), READY without domain (redefined on its disk), READY without
#     domain and disk (free: dropped; owned: made again), a stray overlay (removed), a
#     file in disks/ that is no overlay (left alone)
#   - alice's desktop (with a file on it) and the free spare of a min_spare pool live
#     through all of it; after the rounds a login works, and alice still has her file
#   - the store lost altogether (vdi.db moved away): a domain with an owner is never
#     deleted (left alone while its pool is unknown, adopted once the pool exists again,
#     and alice gets her desktop and file back); the free spare of the unknown pool is
#     removed with its overlay
source "$(dirname "$0")/lib.sh"
e2e_begin reconcile
# vdictl_as writes the password files; made private first, vdictl does not warn.
for u in admin alice bob carol; do install -m 600 /dev/null "$T/pw-$u"; done
need_jq
command -v sqlite3 >/dev/null || abort "prerequisites" "sqlite3 is not installed (apt-get install sqlite3)"

# Each kill round needs a user without a desktop: more users than tests/data/e2e has.
KILL_USERS="bob carol dave erin frank gina hank ivan"
pam_setup
nss_setup
uid=2100
for u in $KILL_USERS; do
    grep -q "^$u:" "$T/passdb" && continue
    uid=$((uid + 1))
    echo "$u:$u-Secret-$uid:vdi" >>"$T/passdb"
    echo "$u:x:$uid:$uid:$u:/nonexistent:/usr/sbin/nologin" >>"$T/nss-passwd"
    echo "$u:x:$uid:" >>"$T/nss-group"
done
password() { awk -F: -v u="$1" '$1 == u { print $2 }' "$T/passdb"; }
for u in $KILL_USERS; do install -m 600 /dev/null "$T/pw-$u"; done

broker_start "$T/state"
H=127.0.0.1:$PORT
pool_setup rec --kind dedicated
for u in $KILL_USERS; do
    [ "$u" = bob ] && continue # in staff
    vdictl_admin entitlement add rec --user "$u" >/dev/null || abort "entitle $u"
done
# A pool nobody is entitled to, with one free spare: a free domain during the kills.
vdictl_admin pool add spr --template demo --vcpus 1 --memory 128 --min-spare 1 >/dev/null ||
    abort "pool spr" "$(tail -n1 "$T/logs/vdictl.log")"

A=vdi-rec-0001
data="DATA-rec-$RANDOM$RANDOM"
client session "$H" --ca "$CA" --user alice --password "$(password alice)" --timeout 120 \
    --wait-file "$(console_log "$A"):vdi-demo: ready" --settle 1000 \
    --type "echo $data > /home/f; sync; echo SAVED > /dev/ttyS0\n" \
    --wait-file "$(console_log "$A"):SAVED" >"$T/alice1.out"
rc=$?
check "alice logs in to $A and saves a file (exit $rc)" test $rc -eq 0
# running_in POOL N: N desktops of POOL run.
running_in() {
    [ "$(vdictl_admin --json desktop list --pool "$1" | jq '[.desktops[] | select(.power == "running")] | length')" -eq "$2" ]
}
poll_until 30 running_in spr 1
check "pool spr has its running spare" test $? -eq 0

disks() { (cd "$STATE/disks" && ls -- *.qcow2 2>/dev/null) | sed 's/\.qcow2$//' | sort; }
# The store's view, as vdictl gives it (needs a running broker).
store_desktops() { vdictl_admin --json desktop list | jq -r '.desktops[].name' | sort; }

# Each start of the broker on $STATE truncates its log: move each run's log aside (also so
# that broker_start cannot read the previous run's "listening on" line).
NLOG=0
keep_log() { NLOG=$((NLOG + 1)); mv "$BROKER_LOG" "$T/logs/run-$NLOG.log"; }
kill_broker() {
    kill -KILL "$BROKER_PID"
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=
    keep_log
}
stop_broker() {
    if broker_stop; then pass "$1: broker exits cleanly on SIGTERM"; else
        fail "$1: broker exits cleanly on SIGTERM"; fi
    keep_log
}

# The store as the broker left it (read-only; fine while it runs: SQLite WAL).
rows() {
    sqlite3 -readonly -cmd '.timeout 2000' "$STATE/vdi.db" \
        "SELECT name || ':' || state || ':' || owner FROM desktops ORDER BY name" 2>/dev/null
}
# row_of USER: "name:state" of the user's desktop row, if any.
row_of() { rows | awk -F: -v u="$1" '$3 == u { print $1 ":" $2 }'; }

# Making a desktop takes ~20 ms here: too short to aim a kill at. While a round runs, the
# broker is slowed down by stopping it for 100 ms out of every ~102 ms (its qemu-img and
# QEMU children run at full speed), so that the store and the disks dir can be watched;
# the sleeps are bash's own `read -t` on a FIFO nobody writes (no fork: a fork-exec of
# sleep would take longer than the 2 ms). A kill then lands while the broker is stopped,
# in the state that was seen.
mkfifo "$T/never"
exec {NEVER}<>"$T/never"
nap() { read -r -t "$1" -u "$NEVER" _; }
THROTTLE_PID=
throttle_start() {
    local pid=$1
    (while kill -STOP "$pid" 2>/dev/null; do
        nap 0.1
        kill -CONT "$pid" 2>/dev/null
        nap 0.002
    done) &
    THROTTLE_PID=$!
    E2E_BG_PIDS+=("$THROTTLE_PID")
}
throttle_stop() {
    [ -n "$THROTTLE_PID" ] && kill "$THROTTLE_PID" 2>/dev/null && wait "$THROTTLE_PID" 2>/dev/null
    THROTTLE_PID=
    [ -n "$BROKER_PID" ] && kill -CONT "$BROKER_PID" 2>/dev/null
    return 0
}

# converged ROUND USER [DESKTOP STATE_AT_KILL]: the checks after a restart (broker
# running), then stops it and compares with libvirt and the disks dir.
converged() {
    local round=$1 user=$2 desk=${3:-} was=${4:-} line n json names doms
    line=$(grep -a 'reconcile: .* desktops in the store' "$BROKER_LOG" | tail -n1)
    check "$round: reconciliation had no failures (${line#*reconcile: })" \
        grep -q ' 0 failures$' <<<"$line"
    json=$(vdictl_admin --json desktop list)
    n=$(jq '[.desktops[] | select(.power == "missing" or .state != "ready")] | length' <<<"$json")
    check "$round: every desktop is ready and has a domain ($(jq -r '[.desktops[] | "\(.name):\(.state)/\(.power)/\(.owner)"] | join(" ")' <<<"$json"))" \
        test "$n" = 0
    check "$round: $A is still alice's" \
        test "$(jq -r ".desktops[] | select(.name == \"$A\") | .owner" <<<"$json")" = alice
    n=$(jq '[.desktops[] | select(.pool == "spr")] | length' <<<"$json")
    check "$round: pool spr still has one desktop ($n)" test "$n" = 1
    n=$(jq "[.desktops[] | select(.owner == \"$user\")] | length" <<<"$json")
    check "$round: $user has one desktop or none ($n)" test "$n" -le 1
    if [ "$was" = provisioning ]; then
        if grep -aq "reconcile: desktop $desk was half provisioned, rolling back" "$BROKER_LOG"; then
            pass "$round: $desk (provisioning at the kill) was rolled back"
            check "$round: $desk is gone from the store" \
                test -z "$(jq -r ".desktops[] | select(.name == \"$desk\") | .name" <<<"$json")"
        elif grep -aq "reconcile: desktop $desk was provisioned, marking ready" "$BROKER_LOG"; then
            pass "$round: $desk (provisioning at the kill, domain and overlay made) was finished"
            check "$round: $desk is $user's" \
                test "$(jq -r ".desktops[] | select(.name == \"$desk\") | .owner" <<<"$json")" = "$user"
        else
            fail "$round: reconciliation finished or rolled back $desk (provisioning at the kill)"
        fi
    fi
    names=$(jq -r '.desktops[].name' <<<"$json" | sort)
    stop_broker "$round"
    doms=$(virsh_e list --all --name | sed '/^$/d' | sort)
    check "$round: libvirt's domains are the store's desktops ([$(tr "\n" " " <<<"$doms")] vs [$(tr "\n" " " <<<"$names")])" \
        test "$doms" = "$names"
    check "$round: the overlays in disks/ are the store's desktops ([$(disks | tr '\n' ' ')])" \
        test "$(disks)" = "$names"
}

# round ROUND USER MODE: USER's first login is under way when the broker is killed -9:
#   row      as soon as the user's row is in the store as provisioning
#   ready    as soon as the user's row is ready (provisioned; the VM is being started)
#   random   0-2 s after the login was accepted (anywhere: provisioning, start, attach)
round() {
    local round=$1 user=$2 mode=$3 i delay='' at row desk='' was=''
    client session "$H" --ca "$CA" --user "$user" --password "$(password "$user")" --timeout 60 \
        --sleep 100 >"$T/$user.out" 2>&1 &
    local cpid=$!
    E2E_BG_PIDS+=("$cpid")
    throttle_start "$BROKER_PID"
    case $mode in
    row)
        for ((i = 0; i < 3000; i++)); do
            row=$(row_of "$user")
            [ "${row#*:}" = provisioning ] && break
            [ "${row#*:}" = ready ] && break # missed it
            nap 0.005
        done ;;
    ready)
        for ((i = 0; i < 3000; i++)); do
            row=$(row_of "$user")
            [ "${row#*:}" = ready ] && break
            nap 0.005
        done ;;
    random)
        wait_text "$BROKER_LOG" "login ok user=$user " 60 || fail "$round: $user's login was accepted"
        delay=$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", (r % 2000) / 1000 }')
        nap "$delay" ;;
    esac
    kill -KILL "$BROKER_PID"
    throttle_stop
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=
    keep_log
    # What the kill left behind (no broker holds the root now).
    row=$(row_of "$user")
    desk=${row%%:*}
    was=${row#*:}
    at="store [$(rows | tr '\n' ' ')] overlays [$(disks | tr '\n' ' ')] domains [$(virsh_e list --all --name | sed '/^$/d' | tr '\n' ' ')]"
    say "$round: killed -9 ($mode${delay:+ $delay s}), $user's row ${row:-none}; $at"
    case $mode in
    row) [ "$was" = provisioning ] ;;
    ready) [ "$was" = ready ] ;;
    esac
    HIT=$(($? == 0))

    wait "$cpid" 2>/dev/null
    broker_start "$STATE"
    H=127.0.0.1:$PORT
    grep -a 'reconcile: ' "$BROKER_LOG" | grep -av 'in the store' | sed 's/.*reconcile: /    reconcile: /'
    converged "$round" "$user" "$desk" "$was"
    broker_start "$STATE"
    H=127.0.0.1:$PORT
}

# Round 0: a kill -9 with nothing in flight (alice's desktop and the spare running).
kill_broker
broker_start "$STATE"
H=127.0.0.1:$PORT
converged "round 0 (idle)" nobody
broker_start "$STATE"
H=127.0.0.1:$PORT

# aim ROUND MODE WHAT USER...: rounds with the next user until the kill hits the state
# (the timing is not exact: a round that misses still checks convergence).
aim() {
    local label=$1 mode=$2 what=$3 u n=0
    shift 3
    HIT=0
    for u in "$@"; do
        n=$((n + 1))
        round "$label, $u" "$u" "$mode"
        [ "$HIT" = 1 ] && break
    done
    check "$label: a kill came $what (attempt $n)" test "$HIT" = 1
}
aim "round 1" row "while the desktop's row was provisioning" bob carol dave
aim "round 2" ready "when the desktop had just been made" erin frank
USED=$(grep -ao 'login ok user=[a-z]*' "$T"/logs/run-*.log | sed 's/.*user=//' | sort -u)
for u in $KILL_USERS; do grep -qx "$u" <<<"$USED" || break; done
round "round 3, $u" "$u" random

# --- crash states made by hand ---------------------------------------------------------------
# A kill between "domain defined" and "row READY" is a window of well under a millisecond
# (both happen in one 2 ms run of the slowed-down broker), so that state and the others a
# crash can leave are made directly: six free desktops of pool cons (spares), then, with
# the broker stopped, the store and libvirt are changed as a crash in the middle of each
# operation would leave them.
vdictl_admin pool add cons --template demo --vcpus 1 --memory 128 --min-spare 6 --max 6 >/dev/null ||
    abort "pool cons" "$(tail -n1 "$T/logs/vdictl.log")"
cons() { printf 'vdi-cons-%04d' "$1"; }
poll_until 90 running_in cons 6 ||
    abort "pool cons" "no 6 spares: $(vdictl_admin desktop list --pool cons)"
vdictl_admin pool set cons --min-spare 0 >/dev/null
vdictl_admin desktop assign "$(cons 3)" dave >/dev/null &&
    vdictl_admin desktop assign "$(cons 6)" erin >/dev/null || abort "assign cons" "$(tail -n1 "$T/logs/vdictl.log")"
stop_broker "crash states"
vms_destroy
console_rotate "$A" # alice's VM is off now: her next login boots it again
sql() { sqlite3 -cmd '.timeout 2000' "$STATE/vdi.db" "$1"; }
disk() { echo "$STATE/disks/$1.qcow2"; }
ln "$(disk "$(cons 3)")" "$T/cons3-old.qcow2" # keeps the old inode in use
ln "$(disk "$(cons 4)")" "$T/cons4-old.qcow2"
sql "UPDATE desktops SET state = 'provisioning' WHERE name = '$(cons 1)'"
sql "UPDATE desktops SET state = 'deleting' WHERE name = '$(cons 2)'"
sql "UPDATE desktops SET state = 'resetting' WHERE name = '$(cons 3)'"
virsh_e undefine "$(cons 4)" >/dev/null
virsh_e undefine "$(cons 5)" >/dev/null && rm -f "$(disk "$(cons 5)")"
virsh_e undefine "$(cons 6)" >/dev/null && rm -f "$(disk "$(cons 6)")"
cp "$(disk "$(cons 1)")" "$(disk vdi-rec-9999)"
echo "not a disk of ours" >"$STATE/disks/notes.txt"
broker_start "$STATE"
H=127.0.0.1:$PORT
grep -a 'reconcile: ' "$BROKER_LOG" | grep -av 'in the store' | sed 's/.*reconcile: /    reconcile: /'
rlog() { grep -aqF "reconcile: $1" "$BROKER_LOG"; }
json=$(vdictl_admin --json desktop list --pool cons)
dfield() { jq -r ".desktops[] | select(.name == \"$1\") | .$2" <<<"$json"; }
check "provisioning row with domain and overlay: finished ($(cons 1) ready)" \
    rlog "desktop $(cons 1) was provisioned, marking ready"
check "deleting row: the deletion is finished ($(cons 2) gone from the store)" \
    test "$(rlog "finishing the deletion of desktop $(cons 2)" && dfield "$(cons 2)" name)" = ""
check "resetting row: the reset is finished ($(cons 3))" rlog "finishing the reset of desktop $(cons 3)"
check "resetting row: $(cons 3) is ready and still dave's" \
    test "$(dfield "$(cons 3)" state)/$(dfield "$(cons 3)" owner)" = ready/dave
check "resetting row: $(cons 3) has a new overlay (the old disk was thrown away)" \
    test "$(stat -c %i "$(disk "$(cons 3)")")" != "$(stat -c %i "$T/cons3-old.qcow2")"
check "ready row, domain lost: redefined on its own disk ($(cons 4))" \
    rlog "desktop $(cons 4) lost its domain, redefining it on its disk"
check "$(cons 4) kept its overlay" \
    test "$(stat -c %i "$(disk "$(cons 4)")")" = "$(stat -c %i "$T/cons4-old.qcow2")"
check "free desktop without domain and disk: its row is dropped ($(cons 5))" \
    test "$(rlog "free desktop $(cons 5) has neither domain nor disk, dropped" && dfield "$(cons 5)" name)" = ""
check "erin's desktop without domain and disk: made again from the template ($(cons 6))" \
    test "$(rlog "desktop $(cons 6) of erin lost its disk" && dfield "$(cons 6)" owner)" = erin
check "an overlay with neither row nor domain is removed (vdi-rec-9999.qcow2)" \
    test ! -e "$(disk vdi-rec-9999)"
check "a file in disks/ that is no overlay is left alone" test -f "$STATE/disks/notes.txt"
rm -f "$STATE/disks/notes.txt"
converged "crash states" nobody
broker_start "$STATE"
H=127.0.0.1:$PORT

# --- after all that: a login works, alice's file is still there -------------------------
# login_any USER OUT ACTIONS...: a session whose desktop is not known beforehand: its
# serial log is reached through $T/USER-console.log, a symlink made as soon as the broker
# says which desktop it is.
login_any() {
    local user=$1 out=$2 link=$T/$1-console.log n i d
    shift 2
    rm -f "$link"
    n=$(grep -ac "desktop ready name=.* user=$user " "$BROKER_LOG")
    client session "$H" --ca "$CA" --user "$user" --password "$(password "$user")" \
        --timeout 120 --wait-file "$link:vdi-demo: ready" --settle 1000 "$@" >"$out" &
    local cpid=$!
    for ((i = 0; i < 600; i++)); do
        if [ "$(grep -ac "desktop ready name=.* user=$user " "$BROKER_LOG")" -gt "$n" ]; then
            d=$(desktop_of "$user")
            ln -sf "$(console_log "$d")" "$link"
            break
        fi
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$cpid"
}
marker="MARK-$RANDOM$RANDOM"
login_any bob "$T/bob-final.out" --type "echo $marker > /dev/ttyS0\n" \
    --wait-file "$T/bob-console.log:$marker"
rc=$?
B=$(desktop_of bob)
check "bob logs in after the kills and what he types runs on his desktop ('$B', exit $rc)" \
    test $rc -eq 0 -a -n "$B"
check "bob's marker is on $B's serial log" grep -aqF "$marker" "$(console_log "$B")"
# Session ids start at 1 again in every broker run; the session history must still have
# this one (it is what `vdictl session list` shows while it is connected).
n=$(vdictl_admin --json session list --history |
    jq "[.sessions[] | select(.user == \"bob\" and .desktop == \"$B\")] | length")
check "bob's session on $B (after the restarts) is in the session history ($n)" test "${n:-0}" -ge 1

# alice_has_file OUT: alice logs in, prints her file with a fresh prefix on the serial log.
alice_has_file() {
    local tag="FILE-$RANDOM$RANDOM"
    client session "$H" --ca "$CA" --user alice --password "$(password alice)" --timeout 120 \
        --wait-file "$(console_log "$A"):vdi-demo: ready" --settle 1000 \
        --type "echo $tag:\$(cat /home/f) > /dev/ttyS0\n" \
        --wait-file "$(console_log "$A"):$tag:$data" >"$1"
}
alice_has_file "$T/alice2.out"
rc=$?
check "alice logs in and her file is on $A (exit $rc)" test $rc -eq 0
check "alice got $A" test "$(desktop_of alice)" = "$A"

# --- the store lost: owned domains are never deleted -------------------------------------
stop_broker "before the store is lost"
spare=$(virsh_e list --all --name | grep '^vdi-spr-' | head -n1)
mkdir -p "$T/db-lost"
mv "$STATE"/vdi.db* "$T/db-lost/"
broker_start "$STATE"
H=127.0.0.1:$PORT
check "with an empty store, $A (owner alice, pool unknown) is left alone" \
    grep -aq "reconcile: desktop $A of alice belongs to no known pool; left alone" "$BROKER_LOG"
check "with an empty store, the free spare '$spare' (no owner, pool unknown) is removed" \
    grep -aq "reconcile: removing orphan desktop $spare " "$BROKER_LOG"
pool_setup rec --kind dedicated
stop_broker "empty store"
doms=$(virsh_e list --all --name | sed '/^$/d')
check "$A's domain is still defined ([$(tr "\n" " " <<<"$doms")])" grep -qx "$A" <<<"$doms"
check "$A's overlay is still there" test -f "$STATE/disks/$A.qcow2"
check "$spare's domain is gone" bash -c "! grep -qx '$spare' <<<'$doms'"
check "$spare's overlay is gone" test ! -e "$STATE/disks/$spare.qcow2"
broker_start "$STATE"
H=127.0.0.1:$PORT
check "once pool rec exists again, $A is adopted with its owner" \
    grep -aq "reconcile: adopted desktop $A pool=rec owner=alice" "$BROKER_LOG"
check "vdictl shows $A as alice's" test "$(desktop_field "$A" owner)" = alice
alice_has_file "$T/alice3.out"
rc=$?
check "alice logs in and her file is still on $A (exit $rc)" test $rc -eq 0
check "alice got $A" test "$(desktop_of alice)" = "$A"

stop_broker "end"
for f in "$T"/logs/run-*.log; do check_no_sanitizer_reports "$f"; done
e2e_end
