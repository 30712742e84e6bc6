#!/usr/bin/env bash
# Logging in through the real broker, end to end, with libvncclient's own VeNCrypt
# X509Plain code as the client (it verifies the broker's certificate against the CA
# and the host name):
#   - only VeNCrypt is offered; None / VncAuth are refused, even when chosen unoffered
#   - a client that trusts another CA is refused (the certificate is really checked)
#   - a stalled client and a garbage handshake are cut off within the handshake deadline
#     while alice logs in normally at the same time
#   - alice gets her own VM: what she types runs there (marker on its serial log), and
#     her framebuffer equals libvirt's screenshot of her desktop
#   - carol, with the right password but no entitlement, is refused with "no desktop"
#   - bob gets a different VM, with his screen and his serial log
#   - a wrong password and an unknown user are refused with a reason, and no VM is made
#   - SIGTERM stops the broker and leaves the VMs running
source "$(dirname "$0")/lib.sh"
e2e_begin login

HANDSHAKE_TIMEOUT_S=5 # = handshake_timeout_s in tests/data/e2e/broker.conf.in
broker_start "$T/state"
H=127.0.0.1:$PORT
# A dedicated pool for the group staff (alice, bob): the first login of each makes the
# pool's next desktop, so alice gets vdi-desktops-0001 and bob vdi-desktops-0002.
pool_setup desktops --kind dedicated
desk() { case $1 in alice) echo vdi-desktops-0001 ;; bob) echo vdi-desktops-0002 ;;
    *) echo "vdi-desktops-$1" ;; esac; }
console() { echo "$STATE/console/$(desk "$1").log"; }

# --- what a client is offered, and what it may pick ------------------------------------
out=$(client raw-security "$H" --timeout 20)
types=$(sed -n 's/^security-types: //p' <<<"$out")
if [ "$types" = "$(cat "$VDI_TEST_DATA/e2e/security-types.expected")" ]; then
    pass "server offers only VeNCrypt (security types: $types)"
else
    fail "server offers only VeNCrypt" "offered '$types'"
fi
for t in 1:None 2:VncAuth; do
    out=$(client raw-security "$H" --choose "${t%%:*}" --timeout 20)
    rc=$?
    if [ $rc -eq 4 ] && grep -q '^result: refused' <<<"$out"; then
        pass "choosing ${t#*:} although not offered is refused ($(grep '^result' <<<"$out"))"
    else
        fail "choosing ${t#*:} although not offered is refused" "exit $rc: $out"
    fi
done
for s in none vncauth; do
    client session "$H" --security "$s" --user alice --password "$(password alice)" \
        --timeout 30 >/dev/null
    rc=$?
    if [ $rc -eq 4 ]; then
        pass "libvncclient asking for security type $s only is refused"
    else
        fail "libvncclient asking for security type $s only is refused" "exit $rc (want 4)"
    fi
done

# --- the certificate is checked --------------------------------------------------------
cat >"$T/other-ca.tmpl" <<'EOF'
cn = "Some other CA"
ca
cert_signing_key
expiration_days = 2
EOF
certtool --generate-privkey --key-type ecdsa --outfile "$T/other-ca.key" 2>/dev/null &&
    certtool --generate-self-signed --load-privkey "$T/other-ca.key" \
        --template "$T/other-ca.tmpl" --outfile "$T/other-ca.pem" 2>/dev/null
client session "$H" --ca "$T/other-ca.pem" --user alice --password "$(password alice)" \
    --timeout 30 >/dev/null
rc=$?
if [ $rc -eq 5 ]; then
    pass "a client trusting another CA fails the TLS handshake (certificate verified)"
else
    fail "a client trusting another CA fails the TLS handshake" "exit $rc (want 5)"
fi

# --- stalled and garbage clients while alice logs in -----------------------------------
client raw-stall "$H" --timeout 90 >"$T/stall.out" &
stall_pid=$!
client raw-garbage "$H" --timeout 90 >"$T/garbage.out" &
garbage_pid=$!
E2E_BG_PIDS+=("$stall_pid" "$garbage_pid")
sleep 0.3

marker_alice="MARKER-alice-$RANDOM$RANDOM"
marker_bob="MARKER-bob-$RANDOM$RANDOM"
# login_and_work USER MARKER: logs in, waits for the desktop to have booted and the
# screen to be quiet, types the marker command, then makes the screen static (cursor
# off) with content of its own and saves the framebuffer to $T/USER.ppm.
login_and_work() {
    local user=$1 marker=$2 log
    log=$(console "$user")
    client session "$H" --ca "$CA" --user "$user" --password "$(password "$user")" \
        --timeout 180 \
        --wait-file "$log:vdi-demo: ready" --settle 1500 \
        --type "echo $marker > /dev/ttyS0\n" --wait-file "$log:$marker" \
        --type "printf '\\033[?25l'; echo This is the desktop of $user; ls /\n" \
        --settle 2000 --save "$T/$user.ppm" >"$T/$user.out"
}
login_and_work alice "$marker_alice"
rc=$?
cat "$T/alice.out"
if [ $rc -eq 0 ]; then
    pass "alice logs in over VeNCrypt X509Plain, types into her desktop"
else
    fail "alice logs in over VeNCrypt X509Plain, types into her desktop" "exit $rc"
fi
login_ms=$(sed -n 's/^login: ok \([0-9]*\) ms/\1/p' "$T/alice.out")
if [ -n "$login_ms" ] && [ "$login_ms" -lt $((HANDSHAKE_TIMEOUT_S * 1000)) ]; then
    pass "alice's login ($login_ms ms) was not held up by the stalled client"
else
    fail "alice's login was not held up by the stalled client" "login took '${login_ms}' ms"
fi
check "alice's marker is on her desktop's serial log" grep -aqF "$marker_alice" "$(console alice)"
check "the broker says alice's desktop is $(desk alice)" test "$(desktop_of alice)" = "$(desk alice)"

wait "$stall_pid" "$garbage_pid"
for what in stall garbage; do
    ms=$(sed -n 's/^closed-after-ms: //p' "$T/$what.out")
    if [ -n "$ms" ] && [ "$ms" -le $(((HANDSHAKE_TIMEOUT_S + 3) * 1000)) ]; then
        pass "$what client cut off after $ms ms (deadline ${HANDSHAKE_TIMEOUT_S} s)"
    else
        fail "$what client cut off within the deadline" "closed after '${ms}' ms"
    fi
done

# --- bob gets his own desktop ----------------------------------------------------------
login_and_work bob "$marker_bob"
rc=$?
cat "$T/bob.out"
if [ $rc -eq 0 ]; then pass "bob logs in and types into his desktop"; else
    fail "bob logs in and types into his desktop" "exit $rc"; fi
check "bob's marker is on his desktop's serial log" grep -aqF "$marker_bob" "$(console bob)"
check "the broker says bob's desktop is $(desk bob)" test "$(desktop_of bob)" = "$(desk bob)"
check "bob's marker is not on alice's serial log" \
    bash -c "! grep -aqF '$marker_bob' '$(console alice)'"
check "alice's marker is not on bob's serial log" \
    bash -c "! grep -aqF '$marker_alice' '$(console bob)'"

# --- alice again: back on her own, unchanged desktop -----------------------------------
if [ -f "$T/alice.ppm" ]; then
    client session "$H" --ca "$CA" --user alice --password "$(password alice)" \
        --timeout 60 --expect "$T/alice.ppm:20" >"$T/alice2.out"
    rc=$?
    cat "$T/alice2.out"
    if [ $rc -eq 0 ]; then pass "alice logs in again and gets her own desktop back"; else
        fail "alice logs in again and gets her own desktop back" "exit $rc"; fi
fi

# --- refused logins --------------------------------------------------------------------
for who in "carol:wrong-password" "mallory:whatever"; do
    user=${who%%:*}
    out=$(client session "$H" --ca "$CA" --user "$user" --password "${who#*:}" --timeout 60)
    rc=$?
    reason=$(sed -n 's/^reason: //p' <<<"$out")
    if [ $rc -eq 3 ] && [ -n "$reason" ]; then
        pass "$user with a bad password is refused with a reason ('$reason')"
    else
        fail "$user with a bad password is refused with a reason" "exit $rc, reason '$reason'"
    fi
done

# --- right password, no entitlement -----------------------------------------------------
out=$(client session "$H" --ca "$CA" --user carol --password "$(password carol)" --timeout 60)
rc=$?
reason=$(sed -n 's/^reason: //p' <<<"$out")
if [ $rc -eq 3 ] && grep -qi 'no desktop' <<<"$reason"; then
    pass "carol (no entitlement) is refused with '$reason'"
else
    fail "carol (no entitlement) is refused with a 'no desktop' reason" "exit $rc, reason '$reason'"
fi
out=$(client session "$H" --ca "$CA" --user alice@nosuchpool --password "$(password alice)" \
    --timeout 60)
rc=$?
reason=$(sed -n 's/^reason: //p' <<<"$out")
if [ $rc -eq 3 ] && grep -q 'nosuchpool' <<<"$reason"; then
    pass "alice@nosuchpool is refused with '$reason'"
else
    fail "alice@nosuchpool is refused with a reason naming the pool" "exit $rc, reason '$reason'"
fi

# --- stop the broker; the VMs stay; compare with libvirt's own screenshots --------------
if broker_stop; then pass "broker exits cleanly on SIGTERM"; else
    fail "broker exits cleanly on SIGTERM"; fi
check_no_sanitizer_reports "$BROKER_LOG"

all=$(virsh_e list --all --name | sort | tr '\n' ' ')
running=$(virsh_e list --state-running --name | sort | tr '\n' ' ')
say "domains: all=[$all] running=[$running]"
for u in alice bob; do
    check "$(desk "$u") ($u) is still running after the broker stopped" \
        grep -qw "$(desk "$u")" <<<"$running"
done
check "no other VM exists (refused logins made none)" test "$all" = "$(desk alice) $(desk bob) "
ua=$(virsh_e domuuid "$(desk alice)")
ub=$(virsh_e domuuid "$(desk bob)")
check "alice's and bob's desktops are different domains" test -n "$ua" -a -n "$ub" -a "$ua" != "$ub"
da=$(virsh_e domblklist "$(desk alice)" | awk '$1 == "vda" { print $2 }')
db=$(virsh_e domblklist "$(desk bob)" | awk '$1 == "vda" { print $2 }')
check "alice and bob have different disks ($da, $db)" test -n "$da" -a -n "$db" -a "$da" != "$db"

for u in alice bob; do
    d=$(desk "$u")
    if [ -f "$T/$u.ppm" ] && vm_screenshot "$d" "$T/$d.ppm"; then
        out=$(client compare "$T/$d.ppm" "$T/$u.ppm" --tolerance 20)
        rc=$?
        if [ $rc -eq 0 ]; then
            pass "$u's framebuffer equals libvirt's screenshot of $d ($(tail -n1 <<<"$out"))"
        else
            fail "$u's framebuffer equals libvirt's screenshot of $d" "$(tr '\n' ' ' <<<"$out")"
        fi
    else
        fail "$u's framebuffer equals libvirt's screenshot of $d" \
            "no framebuffer or no screenshot"
    fi
done
if [ -f "$T/alice.ppm" ] && [ -f "$T/bob.ppm" ]; then
    out=$(client compare "$T/alice.ppm" "$T/bob.ppm" --tolerance 20)
    check "alice's and bob's screens differ" test $? -ne 0
fi
e2e_end
