#!/usr/bin/env bash
# vdictl against a running broker: every command, human output and --json, and the exit
# codes that `vdictl --help` documents (and vdictl(1), when packaging/vdictl.1 exists):
#   0 ok; 2 bad arguments (nothing sent) or 400; 3 cannot connect / TLS; 4 wrong password
#   or not an administrator; 5 not found; 6 conflict; 7 capacity (503)
# Commands: template list/show/add/delete, pool list/show/add/set/delete, desktop
# list/show/assign/unassign/start/stop/reset, entitlement list/add/delete, session
# list/disconnect (a live client is cut off), usage (alice's connected and vCPU seconds
# after her session), audit (the admin's changes), metrics.
source "$(dirname "$0")/lib.sh"
e2e_begin vdictl
# vdictl_as writes the password files; made private first, vdictl does not warn.
for u in admin alice bob carol; do install -m 600 /dev/null "$T/pw-$u"; done
need_jq

broker_start "$T/state"
H=127.0.0.1:$PORT
DEAD_URL=https://127.0.0.1:1 # nothing listens there: a request sent would exit 3

# expect CODE NAME vdictl-args...: runs vdictl as admin, checks the exit code; output in
# $OUT (stdout) and $ERR (stderr).
expect() {
    local want=$1 name=$2 rc
    shift 2
    OUT=$(vdictl_admin "$@" 2>"$T/err")
    rc=$?
    ERR=$(cat "$T/err")
    if [ "$rc" -eq "$want" ]; then
        pass "$name (exit $rc)"
    else
        fail "$name" "exit $rc, want $want: $(head -c 300 <<<"$ERR$OUT" | tr '\n' ' ')"
    fi
    return 0
}
# has TEXT NAME: the last output contains TEXT.
has() {
    if grep -qF -- "$1" <<<"$OUT"; then pass "$2"; else fail "$2" "no '$1' in: $(head -c 400 <<<"$OUT")"; fi
}
# jqt EXPR NAME: the last output, as JSON, makes EXPR true.
jqt() {
    if jq -e "$1" <<<"$OUT" >/dev/null 2>&1; then pass "$2"; else
        fail "$2" "jq '$1' false on: $(head -c 400 <<<"$OUT" | tr '\n' ' ')"; fi
}

# --- the exit codes as documented ------------------------------------------------------
help=$("$VDICTL" --help)
check "vdictl --help exits 0" test $? -eq 0
codes=$(sed -n '/^Exit codes:/,/^$/p' <<<"$help")
doc_ok=1
for c in "0 success" "1 other error" "2 usage error" "3 cannot connect" "4 authentication failed" \
    "5 not found" "6 conflict" "7 capacity"; do
    grep -qE "^ +${c%% *} +${c#* }" <<<"$codes" || doc_ok=0
done
check "--help documents exit codes 0-7 as this test expects" test "$doc_ok" = 1
if [ -f "$VDI_SOURCE_DIR/packaging/vdictl.1" ]; then
    # ".SH EXIT STATUS", then ".TP" / ".B N" / "Text..." per code: "N Text...".
    man=$(awk '/^\.SH/ { in_s = ($0 ~ /EXIT STATUS/) } in_s && /^\.B [0-9]+$/ { n = $2; next }
        in_s && n != "" { print n, $0; n = "" }' "$VDI_SOURCE_DIR/packaging/vdictl.1")
    ok=1
    for c in "0 Success" "1 Other error" "2 Usage error" "3 Cannot connect" \
        "4 Authentication failed" "5 Not found" "6 Conflict" "7 Capacity"; do
        grep -qiE "^${c%% *} ${c#* }" <<<"$man" || ok=0
    done
    check "vdictl(1) documents the same exit codes 0-7" test "$ok" = 1 -a "$(wc -l <<<"$man")" -eq 8
else
    fail "vdictl(1) exists" "vdictl --help says 'See vdictl(1)' but packaging/vdictl.1 is missing"
fi

# --- bad arguments: exit 2, nothing sent -------------------------------------------------
# Against a URL where nothing listens (a request would exit 3), then the real broker,
# whose log would show the PAM check of any request.
bad_args=(
    ""
    "frobnicate"
    "template"
    "template add t1"
    "template add t1 --disk relative/path.img"
    "template add Bad_Name --disk /tmp/x.img"
    "template add t1 --disk /tmp/x.img --os plan9"
    "pool add p9 --template demo --memory lots"
    "pool add p9 --template demo --vcpus 0"
    "pool add p9 --template demo --min-spare -1"
    "pool add p9 --template demo --memory 128 --memory 256"
    "pool set p9"
    "pool show"
    "pool show a b"
    "entitlement add p9"
    "entitlement add p9 --user alice --group staff"
    "desktop assign vdi-x-0001"
    "session disconnect notanumber"
    "usage --from yesterday"
    "audit --limit 0"
    "--timeout 0 pool list"
    "pool list --nosuchoption"
)
n_bad=0
for a in "${bad_args[@]}"; do
    # shellcheck disable=SC2086 # word splitting wanted
    vdictl_as admin --url "$DEAD_URL" $a >/dev/null 2>&1
    rc=$?
    [ "$rc" -eq 2 ] || { fail "bad arguments exit 2 without a request: 'vdictl $a'" "exit $rc"; n_bad=$((n_bad + 1)); }
done
[ "$n_bad" -eq 0 ] && pass "${#bad_args[@]} kinds of bad arguments exit 2 before connecting"
lines=$(wc -l <"$BROKER_LOG")
for a in "template add t1" "pool add p9 --template demo --memory lots" "entitlement add p9"; do
    # shellcheck disable=SC2086
    vdictl_admin $a >/dev/null 2>&1
done
sleep 0.3
check "bad arguments against the real broker: no request reached it (log unchanged)" \
    test "$(wc -l <"$BROKER_LOG")" -eq "$lines"
OUT=$("$VDICTL" --url "$DEAD_URL" --ca-file "$CA" --user admin --password-file /nonexistent/pw pool list 2>&1)
rc=$?
check "an unreadable --password-file: no password could be read, exit 2 ($rc)" test $rc -eq 2

# --- connection and authentication ------------------------------------------------------
password admin >"$T/pw-admin"
chmod 600 "$T/pw-admin"
"$VDICTL" --url "$DEAD_URL" --ca-file "$CA" --user admin --password-file "$T/pw-admin" \
    pool list >/dev/null 2>&1
rc=$?
check "nothing listening at --url: exit 3 ($rc)" test $rc -eq 3
certtool --generate-privkey --key-type ecdsa --outfile "$T/other-ca.key" 2>/dev/null
printf 'cn = "Other CA"\nca\ncert_signing_key\nexpiration_days = 2\n' >"$T/other-ca.tmpl"
certtool --generate-self-signed --load-privkey "$T/other-ca.key" --template "$T/other-ca.tmpl" \
    --outfile "$T/other-ca.pem" 2>/dev/null
"$VDICTL" --url "$ADMIN_URL" --ca-file "$T/other-ca.pem" --user admin \
    --password-file "$T/pw-admin" pool list >/dev/null 2>&1
rc=$?
check "a broker certificate from another CA: exit 3 ($rc)" test $rc -eq 3
echo "not-the-password" >"$T/pw-wrong"
chmod 600 "$T/pw-wrong"
"$VDICTL" --url "$ADMIN_URL" --ca-file "$CA" --user admin --password-file "$T/pw-wrong" \
    pool list >/dev/null 2>"$T/err"
rc=$?
check "admin with a wrong password: exit 4 ($rc: $(head -n1 "$T/err"))" test $rc -eq 4
check "the wrong password is reported as such" grep -q "password" "$T/err"
for u in alice carol; do
    password "$u" >"$T/pw-$u"
    chmod 600 "$T/pw-$u"
    "$VDICTL" --url "$ADMIN_URL" --ca-file "$CA" --user "$u" --password-file "$T/pw-$u" \
        pool list >/dev/null 2>"$T/err"
    rc=$?
    check "$u (right password, not in vdi-admins): exit 4 ($rc: $(head -n1 "$T/err"))" \
        test $rc -eq 4 -a -n "$(grep -i 'admin' "$T/err")"
done
echo whatever >"$T/pw-mallory"
"$VDICTL" --url "$ADMIN_URL" --ca-file "$CA" --user mallory --password-file "$T/pw-mallory" \
    metrics >/dev/null 2>&1
rc=$?
check "an unknown user, even for metrics: exit 4 ($rc)" test $rc -eq 4
check "no password or the word 'Secret' in the broker log" \
    bash -c "! grep -aqE 'Secret-|not-the-password' '$BROKER_LOG'"

# --- templates ---------------------------------------------------------------------------
IMG=$VDI_IMAGE_DIR
expect 0 "template add demo" template add demo --disk "$IMG/disk.img" --kernel "$IMG/vmlinuz" \
    --initrd "$IMG/initrd.img" --cmdline "$(cat "$IMG/cmdline")"
has "template demo added" "template add prints a confirmation"
expect 0 "template add spare (raw disk only)" template add spare --disk "$IMG/disk.img"
expect 6 "template add demo again: conflict" template add demo --disk "$IMG/disk.img"
expect 2 "template add with a disk that does not exist: 400" template add t2 --disk /nonexistent.img
expect 0 "template list" template list
has "NAME" "template list: a table header"
has "demo" "template list: demo"
has "spare" "template list: spare"
expect 0 "template list --json" template list --json
jqt '[.templates[].name] | sort == ["demo", "spare"]' "template list --json: both templates"
expect 0 "template show demo" template show demo
has "$IMG/disk.img" "template show: its disk"
has "$IMG/vmlinuz" "template show: its kernel"
expect 0 "template show demo --json" --json template show demo
jqt ".name == \"demo\" and .os == \"linux\" and .firmware == \"bios\" and .disk == \"$IMG/disk.img\" and (.created | type) == \"number\"" \
    "template show --json: the template's fields"
expect 5 "template show nosuch: not found" template show nosuch
expect 0 "template delete spare" template delete spare
has "template spare deleted" "template delete prints a confirmation"
expect 5 "template delete spare again: not found" template delete spare

# --- pools -------------------------------------------------------------------------------
expect 0 "pool add p1" pool add p1 --template demo --vcpus 1 --memory 128 --kind dedicated
has "pool p1 added" "pool add prints a confirmation"
expect 0 "pool add p2 (size medium, floating)" pool add p2 --template demo --size medium --kind floating --max 2
expect 6 "pool add p1 again: conflict" pool add p1 --template demo
expect 5 "pool add with a template that does not exist" pool add p3 --template nosuch
expect 2 "pool add floating with logoff keep: 400" pool add p3 --template demo --kind floating --logoff keep
expect 2 "pool add with min_spare > max: 400" pool add p3 --template demo --min-spare 5 --max 2
expect 0 "pool list" pool list
has "NAME" "pool list: a table header"
has "p1" "pool list: p1"
has "p2" "pool list: p2"
expect 0 "pool list --json" pool list --json
jqt '[.pools[].name] | sort == ["p1", "p2"]' "pool list --json: p1 and p2"
expect 0 "pool show p2 --json" pool show p2 --json
jqt '.size == "medium" and .vcpus == 2 and .memory_mib == 4096 and .kind == "floating" and .logoff == "reset" and .max_desktops == 2 and .min_spare == 0' \
    "pool show --json: size medium = 2/4096, floating -> logoff reset, max 2"
expect 0 "pool show p1" pool show p1
has "dedicated" "pool show p1: its kind"
expect 0 "pool set p1 --max 3 --logoff keep" pool set p1 --max 3 --logoff keep
has "pool p1 changed" "pool set prints a confirmation"
expect 0 "pool show p1 --json" pool show p1 --json
jqt '.max_desktops == 3 and .memory_mib == 128 and .vcpus == 1 and .size == "custom"' \
    "pool set changed only what was given"
expect 2 "pool set p1 --kind floating: the kind cannot change (400)" pool set p1 --kind floating
expect 5 "pool set nosuch: not found" pool set nosuch --max 2
expect 5 "pool show nosuch: not found" pool show nosuch
expect 6 "template delete demo while pools use it: conflict" template delete demo
expect 0 "pool delete p2" pool delete p2
has "pool p2 deleted" "pool delete prints a confirmation"
expect 5 "pool delete p2 again: not found" pool delete p2

# --- entitlements ------------------------------------------------------------------------
expect 0 "entitlement add p1 --group staff" entitlement add p1 --group staff
has "staff" "entitlement add prints a confirmation naming the group"
expect 0 "entitlement add p1 --user carol" entitlement add p1 --user carol
expect 6 "entitlement add p1 --user carol again: conflict" entitlement add p1 --user carol
expect 5 "entitlement add to a pool that does not exist" entitlement add nosuch --user carol
expect 0 "entitlement list" entitlement list
has "staff" "entitlement list: staff"
has "carol" "entitlement list: carol"
expect 0 "entitlement list --pool p1 --json" entitlement list --pool p1 --json
jqt '(.entitlements | length) == 2 and any(.entitlements[]; .kind == "group" and .name == "staff" and .pool == "p1") and any(.entitlements[]; .kind == "user" and .name == "carol")' \
    "entitlement list --json: the group and the user"
expect 0 "entitlement delete p1 --user carol" entitlement delete p1 --user carol
has "carol" "entitlement delete prints a confirmation"
expect 5 "entitlement delete p1 --user carol again: not found" entitlement delete p1 --user carol

# --- a live session: session list/disconnect, desktop commands while connected -----------
D=vdi-p1-0001
client session "$H" --ca "$CA" --user alice --password "$(password alice)" --timeout 180 \
    --wait-file "$(console_log "$D"):vdi-demo: ready" --settle 500 \
    --type "echo CONNECTED > /dev/ttyS0\n" --sleep 150000 >"$T/alice.out" 2>&1 &
cpid=$!
E2E_BG_PIDS+=("$cpid")
wait_text "$(console_log "$D")" CONNECTED 120 || fail "alice's session is up" "$(cat "$T/alice.out")"
sleep 6 # connected seconds > 0 for usage; an activity report (every 5 s) with bytes sent
expect 0 "session list" session list
has "alice" "session list: alice's session"
has "$D" "session list: her desktop"
expect 0 "session list --json" session list --json
jqt "(.sessions | length) == 1 and .sessions[0].user == \"alice\" and .sessions[0].desktop == \"$D\" and .sessions[0].pool == \"p1\" and .sessions[0].state == \"connected\" and .sessions[0].client == \"127.0.0.1\" and .sessions[0].bytes_to_client > 0" \
    "session list --json: alice on $D, connected from 127.0.0.1, bytes sent"
SID=$(jq -r '.sessions[0].id' <<<"$OUT")
expect 0 "desktop list" desktop list
has "$D" "desktop list: $D"
has "running" "desktop list: its power"
expect 0 "desktop show $D --json" desktop show "$D" --json
jqt '.owner == "alice" and .pool == "p1" and .state == "ready" and .power == "running" and .connected == 1' \
    "desktop show --json: alice's, running, 1 client"
expect 6 "desktop reset while connected: conflict" desktop reset "$D"
expect 6 "desktop unassign while connected: conflict" desktop unassign "$D"
expect 6 "desktop assign to bob while alice has it: conflict" desktop assign "$D" bob
expect 6 "pool delete p1 while its desktop is assigned: conflict" pool delete p1
expect 0 "session disconnect $SID" session disconnect "$SID"
has "session $SID disconnected" "session disconnect prints a confirmation"
t0=$SECONDS
for ((i = 0; i < 150; i++)); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$cpid" 2>/dev/null; then
    fail "the disconnected client's connection ends" "still running after 15 s"
else
    wait "$cpid"
    rc=$?
    check "the disconnected client's connection ends within $((SECONDS - t0)) s (client exit $rc: connection lost)" \
        test $rc -eq 2
fi
expect 5 "session disconnect $SID again: not found" session disconnect "$SID"
expect 0 "session list --json after the disconnect" session list --json
jqt "[.sessions[] | select(.state == \"connected\")] | length == 0" "no connected session left"
jqt "any(.sessions[]; .id == $SID and .state == \"disconnected\")" \
    "alice's session waits out its grace period, disconnected"
expect 0 "session list --history --json" session list --history --json
jqt "any(.sessions[]; .session_id == $SID and .user == \"alice\" and .ended > 0)" \
    "session list --history: alice's connection, ended"

# --- usage ---------------------------------------------------------------------------------
expect 0 "usage --user alice --json" usage --user alice --json
jqt 'any(.usage[]; .user == "alice" and .pool == "p1" and .connected_seconds > 0 and .vcpu_seconds > 0 and .memory_mib_seconds > 0)' \
    "usage: alice has connected seconds and vCPU seconds in p1"
jqt '(.to - .from) == 30 * 86400' "usage: the default period is the last 30 days"
expect 0 "usage" usage
has "alice" "usage (table): alice"
has "CONNECTED" "usage (table): a header"
expect 0 "usage for a period before anything happened" usage --from 2001-01-01 --to 2001-01-31 --json
jqt '.usage | length == 0' "usage in 2001: nothing"

# --- desktops --------------------------------------------------------------------------
expect 0 "desktop stop $D" desktop stop "$D"
has "desktop $D stopped" "desktop stop prints a confirmation"
check "after desktop stop, $D is shut off" test "$(desktop_field "$D" power)" = shutoff
expect 0 "pool set p1 --memory 4000000 (more than the host has)" pool set p1 --memory 4000000
expect 7 "desktop start $D beyond the host's capacity: 503" desktop start "$D"
expect 0 "pool set p1 --memory 128" pool set p1 --memory 128
expect 0 "desktop start $D" desktop start "$D"
has "desktop $D started" "desktop start prints a confirmation"
check "after desktop start, $D runs" test "$(desktop_field "$D" power)" = running
expect 0 "desktop unassign $D" desktop unassign "$D"
has "desktop $D unassigned" "desktop unassign prints a confirmation"
check "after unassign, $D has no owner" test -z "$(desktop_field "$D" owner)"
expect 0 "desktop assign $D bob" desktop assign "$D" bob
has "desktop $D assigned to bob" "desktop assign prints a confirmation"
expect 0 "desktop show $D --json" --json desktop show "$D"
jqt '.owner == "bob" and .assigned > 0' "after assign, $D is bob's"
expect 0 "desktop reset $D" desktop reset "$D"
has "desktop $D reset" "desktop reset prints a confirmation"
check "after reset, $D is off and still bob's" \
    test "$(desktop_field "$D" power)/$(desktop_field "$D" owner)" = shutoff/bob
expect 0 "desktop list --pool p1 --json" desktop list --pool p1 --json
jqt ".desktops | length == 1 and .[0].name == \"$D\"" "desktop list --pool p1: just $D"
expect 5 "desktop show nosuch: not found" desktop show vdi-nosuch-0001
expect 5 "desktop start nosuch: not found" desktop start vdi-nosuch-0001
expect 5 "desktop assign nosuch: not found" desktop assign vdi-nosuch-0001 bob

# --- metrics, audit --------------------------------------------------------------------
expect 0 "metrics" metrics
has "vdi_desktops{pool=\"p1\",state=\"shutoff\"} 1" "metrics: p1's desktop, shut off"
has 'vdi_logins_total{result="ok"} 1' "metrics: one login"
has "vdi_admission_refused_total 1" "metrics: the refused start"
has "# TYPE vdi_provision_seconds histogram" "metrics: the provisioning histogram"
expect 0 "metrics with --json: still the Prometheus text" --json metrics
has "vdi_sessions 0" "metrics --json: the text"
expect 0 "audit" audit
has "ACTOR" "audit (table): a header"
has "desktop.reset" "audit (table): the reset"
expect 0 "audit --json --event admin" audit --json --event admin --limit 10000
jqt '[.events[].actor] | unique == ["admin"]' "audit: every admin event's actor is admin"
for a in template.add:demo template.delete:spare pool.add:p1 pool.update:p1 pool.delete:p2 \
    entitlement.add:p1 entitlement.delete:p1 session.disconnect:"$SID" desktop.stop:"$D" \
    desktop.start:"$D" desktop.unassign:"$D" desktop.assign:"$D" desktop.reset:"$D"; do
    jqt "any(.events[]; .event == \"admin.${a%%:*}\" and .target == \"${a#*:}\")" "audit: ${a%%:*} of ${a#*:}"
done
jqt '[.events[] | select(.event == "admin.template.add")] | length == 2' \
    "audit: refused changes are not recorded (2 template.add, not 4)"
jqt '[.events[].time] == ([.events[].time] | sort | reverse)' "audit: newest first"
expect 0 "audit --json --event login --user alice" audit --json --event login --user alice
jqt 'any(.events[]; .event == "login.success" and .user == "alice" and .client == "127.0.0.1")' \
    "audit: alice's login, filtered by event prefix and user"
jqt 'all(.events[]; .user == "alice" and (.event | startswith("login.")))' \
    "audit: the filters leave nothing else"
expect 0 "audit --limit 2 --json" audit --limit 2 --json
jqt '.events | length == 2' "audit --limit 2: two events"
expect 0 "audit --since tomorrow --json" audit --since "$(($(date +%s) + 86400))" --json
jqt '.events | length == 0' "audit --since tomorrow: none"

# --- cleaning up through vdictl ----------------------------------------------------------
expect 6 "pool delete p1 while $D is bob's: conflict" pool delete p1
expect 0 "desktop unassign $D" desktop unassign "$D"
expect 0 "pool delete p1 (its free desktop goes too)" pool delete p1
expect 0 "desktop list --json" desktop list --json
jqt '.desktops | length == 0' "no desktop left"
expect 0 "template delete demo" template delete demo
expect 0 "template list --json" template list --json
jqt '.templates | length == 0' "no template left"

if broker_stop; then pass "broker exits cleanly on SIGTERM"; else fail "broker exits cleanly on SIGTERM"; fi
check_no_sanitizer_reports "$BROKER_LOG"
check "the stopped broker left no domain behind" test -z "$(virsh_e list --all --name | sed '/^$/d')"
e2e_end
