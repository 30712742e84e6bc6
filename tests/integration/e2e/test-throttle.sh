#!/usr/bin/env bash
# Brute-force protection with the real broker and PAM (pam_wrapper):
#   - 20 wrong passwords for bob from one address (127.0.0.2): the first ones are checked
#     and fail, then the address is throttled ("try again in N seconds"), then locked out
#   - meanwhile alice, from another address, logs in normally and gets her desktop
#   - bob's account is locked from any address for the lockout; the right password does
#     not get through while locked, and does once the lockout is over
#   - the admin API answers 429 with Retry-After to a locked address
#   - MaxStartups: unauthenticated connections from one address beyond the limit are
#     refused at once while others still connect
#   - audit lines login.failure, login.throttled, login.locked, login.success
source "$(dirname "$0")/lib.sh"
e2e_begin throttle
need_jq

# Short delays and lockout so that the test waits seconds, not minutes.
broker_start "$T/state" throttle_delay_ms=500 throttle_delay_max_ms=2000 lockout_s=12 \
    max_startups_per_address=4
H=127.0.0.1:$PORT
pool_setup t --kind dedicated
D=vdi-t-0001
SER=$(console_log "$D")

# attempt USER PASSWORD SOURCE: one login; prints the client's exit code and the reason.
attempt() {
    local out rc
    out=$(client session "$H" --ca "$CA" --user "$1" --password "$2" --source "$3" --timeout 30 \
        --settle 200 2>&1)
    rc=$?
    echo "$rc $(grep -aoE 'Too many failed logins[^"]*|Authentication failed' <<<"$out" | head -n1)"
}

client session "$H" --ca "$CA" --user alice --password "$(password alice)" --timeout 120 \
    --wait-file "$SER:vdi-demo: ready" --wait-file "$T/go:yes" --settle 500 >"$T/alice.out" &
apid=$!
E2E_BG_PIDS+=("$apid")

: >"$T/attempts"
for i in $(seq 1 20); do
    attempt bob "wrong-$i" 127.0.0.2 >>"$T/attempts"
done
say "attempts: $(cut -c1-60 "$T/attempts" | tr '\n' '|')"
failed=$(grep -c 'Authentication failed' "$T/attempts")
throttled=$(grep -c 'try again in' "$T/attempts")
locked=$(grep -c 'locked for' "$T/attempts")
check "all 20 attempts were refused" test "$(grep -c '^3 ' "$T/attempts")" -eq 20
check "the first ones were checked and failed ($failed)" test "$failed" -ge 3
check "then the address was throttled ($throttled)" test "$throttled" -ge 1
check "then locked out ($locked)" test "$locked" -ge 1
check "no password was checked once locked: the last attempt is refused as locked" \
    grep -q 'locked for' <(tail -n1 "$T/attempts")
pam_checks=$(grep -ac "login failed user=bob " "$BROKER_LOG")
check "PAM saw far fewer than 20 of them ($pam_checks)" test "$pam_checks" -le 12

echo yes >"$T/go"
wait "$apid"
rc=$?
check "meanwhile alice logged in normally from 127.0.0.1 and got her desktop (exit $rc)" \
    test $rc -eq 0

r=$(attempt bob "$(password bob)" 127.0.0.3)
check "bob's account is locked from another address too ($r)" grep -q 'locked for' <<<"$r"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -u "bob:wrong" \
    --interface 127.0.0.2 "$ADMIN_URL/api/v1/pools")
check "the admin API refuses the locked address with 429 ($code)" test "$code" = 429

say "waiting for the lockout (12 s) to end"
sleep 14
client session "$H" --ca "$CA" --user bob --password "$(password bob)" --source 127.0.0.2 \
    --timeout 120 --wait-file "$(console_log vdi-t-0002):vdi-demo: ready" >"$T/bob.out"
rc=$?
check "after the lockout bob logs in with his password (exit $rc)" test $rc -eq 0

audit_has "login.failure of bob from 127.0.0.2" \
    '.event == "login.failure" and .user == "bob" and .client == "127.0.0.2"'
audit_has "login.throttled" '.event == "login.throttled" and .client == "127.0.0.2"'
audit_has "login.locked" '.event == "login.locked"'
audit_has "login.success of alice" '.event == "login.success" and .user == "alice"'
if grep -aq "wrong-" "$STATE/audit.log" "$BROKER_LOG"; then
    fail "no password in the audit log or the broker log"
else
    pass "no password in the audit log or the broker log"
fi

# --- MaxStartups per address ------------------------------------------------------------------
for i in 1 2 3 4 5 6; do
    client raw-stall "$H" --timeout 30 >"$T/stall-$i.out" &
    E2E_BG_PIDS+=($!)
done
sleep 2
refused=$(grep -ac "connection refused client=127.0.0.1 reason=" "$BROKER_LOG")
check "connections from one address beyond max_startups_per_address=4 are refused" \
    grep -aq "connection refused client=127.0.0.1" "$BROKER_LOG"
out=$(client raw-security "$H" --source 127.0.0.4 --timeout 10 2>&1)
check "another address still connects (${refused} refused from 127.0.0.1)" \
    grep -q '^security-types: ' <<<"$out"

check_no_sanitizer_reports
broker_stop
check "the broker stops cleanly" test $? -eq 0
e2e_end
