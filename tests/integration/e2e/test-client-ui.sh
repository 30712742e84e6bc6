#!/usr/bin/env bash
# vdi-client driven as a person would: under Xvfb, xdotool types into its window and
# clicks nothing else; ImageMagick's `import` takes screenshots, which tesseract reads
# back (OCR) or which are compared with libvirt's own screenshot of the desktop.
#
#   1. the login screen (broker preset by a config file, trust on first use);
#   2. unreachable broker, then the TOFU prompt with the broker's real SHA-256
#      fingerprint, accepted; wrong password -> error; no desktop assigned -> error;
#   3. right password -> chooser (two pools: names and OS) -> desktop: keys typed in the
#      window reach the VM, the window shows the VM's screen; the choice is remembered;
#   4. network drop (the TCP forwarder in between is killed) -> "Reconnecting", then
#      back on the same session when the forwarder returns;
#   5. admin disconnect -> "The session has ended" (no reconnect), Enter -> login screen;
#      logging in again goes straight to the remembered pool;
#   6. the broker's certificate "changes" (known_brokers edited) -> warning, refused;
#   7. kiosk mode: full screen, window close ignored, back to the login screen after the
#      session ends.
source "$(dirname "$0")/lib.sh"
e2e_begin client_ui

VDI_CLIENT=${VDI_CLIENT:-$VDI_BUILD_DIR/thinclient/vdi-client}
for p in Xvfb xdotool import tesseract socat; do
    command -v "$p" >/dev/null || abort "prerequisites" "$p missing (packaging/install-deps.sh)"
done
[ -x "$VDI_CLIENT" ] || abort "prerequisites" "$VDI_CLIENT is not built"
need_jq

broker_start "$T/state"
# A grace period, so that a dropped connection finds its session again.
pool_setup desktops --kind dedicated --grace 300
# A second pool (Windows template, never started here) so that alice gets the chooser.
vdictl_admin template add office --os windows --disk "$VDI_IMAGE_DIR/disk.img" \
    --kernel "$VDI_IMAGE_DIR/vmlinuz" --initrd "$VDI_IMAGE_DIR/initrd.img" \
    --cmdline "$(cat "$VDI_IMAGE_DIR/cmdline")" >/dev/null &&
    vdictl_admin pool add office --template office --vcpus 1 --memory 128 >/dev/null &&
    vdictl_admin entitlement add office --group staff >/dev/null ||
    abort "pool setup" "office pool: $(tail -n1 "$T/logs/vdictl.log")"
DESK=vdi-desktops-0001
serial=$STATE/console/$DESK.log
FP=$(certtool --certificate-info --infile "$STATE/tls/server-cert.pem" 2>/dev/null |
    sed -n 's/^[[:space:]]*sha256:\([0-9a-f]\{64\}\)$/\1/p' | head -n1 | tr a-f A-F)
[ ${#FP} -eq 64 ] || abort "broker fingerprint" "cannot read it from $STATE/tls/server-cert.pem"

# The client reaches the broker through a TCP forwarder, so that a test can cut the line.
FWD_PORT=$((20000 + RANDOM % 20000))
forwarder_start() {
    setsid socat "TCP-LISTEN:$FWD_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$PORT" \
        2>>"$T/logs/socat.log" &
    FWD_PID=$!
    E2E_BG_PIDS+=("$FWD_PID")
    poll_until 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$FWD_PORT" 2>/dev/null
}
# Kills the forwarder and its per-connection children: the client's TCP connection ends
# without a TLS close_notify, as when a network drops.
forwarder_kill() { kill -KILL -- "-$FWD_PID" 2>/dev/null; wait "$FWD_PID" 2>/dev/null; }
forwarder_start

Xvfb -displayfd 5 -screen 0 1024x768x24 -nolisten tcp 5>"$T/xdisplay" \
    >"$T/logs/xvfb.log" 2>&1 &
E2E_BG_PIDS+=($!)
poll_until 10 test -s "$T/xdisplay" || abort "Xvfb starts" "no display number"
export DISPLAY=:$(head -n1 "$T/xdisplay")

# A fresh home: no known brokers, no remembered choices.
export HOME=$T/home XDG_CONFIG_HOME= XDG_STATE_HOME=
unset XDG_CONFIG_HOME XDG_STATE_HOME
mkdir -p "$HOME"
KNOWN=$HOME/.config/vdi/known_brokers
CLIENT_STATE=$HOME/.local/state/vdi/client-state
printf 'broker = 127.0.0.1:%s\n' "$FWD_PORT" >"$T/client.conf"

shot=0
# screen NAME: a screenshot of the whole X screen -> $T/NAME.png, its OCR text ->
# $T/NAME.txt (negated and enlarged first: tesseract reads dark text on light best).
# Only the client's window: tesseract finds no text at all in a screen that is half black.
screen() {
    shot=$((shot + 1))
    find_window
    import -window "${client_window:-root}" "$T/$1.png" 2>>"$T/logs/import.log"
    convert "$T/$1.png" -negate -resize 200% "$T/$1.ocr.png" 2>>"$T/logs/import.log"
    tesseract "$T/$1.ocr.png" - 2>/dev/null | tr -s ' \n' ' ' >"$T/$1.txt"
}
# shows NAME SECONDS REGEX: takes screenshots until the OCR text matches (grep -Ei).
shows() {
    local name=$1 secs=$2 re=$3 i
    for ((i = 0; i < secs; i++)); do
        screen "$name"
        grep -qEi -- "$re" "$T/$name.txt" && return 0
        sleep 1
    done
    say "OCR of $name: $(cut -c1-300 "$T/$name.txt")"
    return 1
}
# expect NAME SECONDS REGEX DESCRIPTION
expect() {
    if shows "$1" "$2" "$3"; then pass "$4"; else fail "$4" "not on screen: /$3/ (see $T/$1.png)"; fi
}

client_window=
client_start() {
    # Leaks in the sanitizer build are libvncclient's (its Tight JPEG decompressor, one
    # per connection), libdbus's and the GL driver's, not vdi's: not checked (as for
    # vnc-test-client in lib.sh). Memory errors still are.
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        "$VDI_CLIENT" --config "$T/client.conf" --log-level debug "$@" \
        >>"$T/logs/vdi-client.log" 2>&1 &
    CLIENT_PID=$!
    E2E_BG_PIDS+=("$CLIENT_PID")
    poll_until 10 find_window || abort "vdi-client window" "no visible window of pid $CLIENT_PID"
    focus
}
# find_window: the client's visible window -> client_window (looked up each time: SDL may
# replace its window, e.g. around full screen changes).
find_window() {
    client_window=$(xdotool search --onlyvisible --pid "$CLIENT_PID" 2>/dev/null | tail -n1)
    [ -n "$client_window" ]
}
# No window manager: give the window the keyboard focus ourselves.
focus() {
    find_window
    xdotool windowfocus --sync "$client_window" 2>/dev/null || xdotool windowfocus "$client_window"
    # SDL resets its keyboard state on focus-in: keys typed in that moment can be lost
    # (seen with the kiosk's keyboard grab).
    sleep 0.5
}
# window_size: WIDTHxHEIGHT of the client's window.
window_size() {
    find_window
    xdotool getwindowgeometry "$client_window" 2>/dev/null | awk '/Geometry/ { print $2 }'
}
type_text() { xdotool type --delay 40 -- "$1"; }
key() { xdotool key --delay 60 "$@"; }

# --- 1. the login screen --------------------------------------------------------------
client_start
expect login 10 'User name.*Password|Password.*User name' "the login screen shows its fields"
check "the broker from client.conf is preset" grep -qF "127.0.0.1:$FWD_PORT" "$T/login.txt"

# --- 2. errors and the trust prompt -----------------------------------------------------
# Focus starts on the first empty field (User name). Unreachable: point the server
# field somewhere nobody listens (Ctrl+U clears a field).
key shift+Tab ctrl+u
type_text "127.0.0.1:1"
key Tab
type_text "alice"
key Tab
type_text "nothing"
key Return
expect unreachable 20 'Cannot reach' "an unreachable broker is reported"

key shift+Tab shift+Tab ctrl+u
type_text "127.0.0.1:$FWD_PORT"
key Tab Tab
key ctrl+u
type_text "wrong-password"
key Return
expect tofu 20 'Unknown server' "first contact: the trust prompt"
# The fingerprint's first groups, as OCR reads them (colons may come out as anything).
fp_start=$(tr -cd '0-9A-F' <"$T/tofu.txt" | grep -o "${FP:0:12}" | head -n1)
if [ -n "$fp_start" ]; then
    pass "the prompt shows the broker's SHA-256 fingerprint (${FP:0:12}...)"
else
    fail "the prompt shows the broker's SHA-256 fingerprint" "${FP:0:12} not in: $(cat "$T/tofu.txt")"
fi
check "nothing recorded before the user accepts" test ! -s "$KNOWN"
key Tab Return # focus moves from Cancel to "Trust and connect"
expect wrongpw 30 'Wrong user name or password' "a wrong password shows an error"
if grep -qi "$FP" <(tr -d ':' <"$KNOWN" 2>/dev/null); then
    pass "the accepted fingerprint is stored in known_brokers"
else
    fail "the accepted fingerprint is stored in known_brokers" "$(cat "$KNOWN" 2>&1)"
fi
audit_has "the wrong password is audited" '.event == "login.failure" and .user == "alice"'

# No desktop assigned: admin has no entitlement.
key shift+Tab ctrl+u
type_text "admin"
key Tab ctrl+u
type_text "$(password admin)"
key Return
expect nodesk 30 'No desktop is assigned' "a user without a desktop is told so"

# --- 3. chooser, then the desktop ------------------------------------------------------
key shift+Tab ctrl+u
type_text "alice"
key Tab ctrl+u
type_text "$(password alice)"
key Return
expect chooser 30 'Choose a desktop' "several pools: the chooser"
if grep -qi 'desktops' "$T/chooser.txt" && grep -qi 'office' "$T/chooser.txt" &&
    grep -qi 'linux' "$T/chooser.txt" && grep -qi 'windows' "$T/chooser.txt"; then
    pass "the chooser lists both pools with their OS"
else
    fail "the chooser lists both pools with their OS" "$(cat "$T/chooser.txt")"
fi
key Home Return # "desktops" (the list is sorted)
if wait_text "$serial" "vdi-demo: ready" 120; then
    pass "alice's desktop boots from the chooser"
else
    show_log "$T/logs/vdi-client.log" 30
    abort "alice's desktop boots" "no 'vdi-demo: ready' on $serial"
fi
poll_until 10 grep -q "pool 127.0.0.1:$FWD_PORT alice desktops" "$CLIENT_STATE" &&
    pass "the chosen pool is remembered" ||
    fail "the chosen pool is remembered" "$(cat "$CLIENT_STATE" 2>&1)"

focus
xdotool mousemove 1023 767
sleep 2
marker="VDICLIENT-$RANDOM$RANDOM"
type_text "echo $marker > /dev/ttyS0"
key Return
if wait_text "$serial" "$marker" 30; then
    pass "keys typed into vdi-client reach the desktop"
else
    fail "keys typed into vdi-client reach the desktop" "marker $marker not in $serial"
fi
type_text "printf '\\033[?25l'; clear; echo seen through vdi-client; ls /"
key Return
expect desk1 20 'seen through vdi-client' "the window shows alice's desktop (what she typed)"
# The clipboard both ways, through QEMU's qemu-vdagent channel and the demo desktop's
# guest agent (vdi-clip): copied in the desktop -> the local X clipboard, and back.
clip_vm="copied-in-the-desktop-$RANDOM"
type_text "vdi-clip copy $clip_vm"
key Return
if poll_until 20 bash -c "[ \"\$(xclip -o -selection clipboard 2>/dev/null)\" = '$clip_vm' ]"; then
    pass "text copied in the desktop lands on the local clipboard"
else
    fail "text copied in the desktop lands on the local clipboard" \
        "local clipboard: $(xclip -o -selection clipboard 2>&1 | head -c 200)"
fi
clip_home="copied-at-home-$RANDOM"
printf '%s' "$clip_home" | xclip -i -selection clipboard
sleep 1
type_text "vdi-clip paste > /dev/ttyS0; echo > /dev/ttyS0"
key Return
if wait_text "$serial" "$clip_home" 20; then
    pass "text copied at home can be pasted in the desktop"
else
    fail "text copied at home can be pasted in the desktop" "$clip_home not in $serial"
fi
# Ctrl+Alt+Enter: SDL asks the window manager for full screen; Xvfb has none, so the
# request is checked in the client's log, not by the window's size.
key ctrl+alt+Return
poll_until 5 grep -q 'full screen on' "$T/logs/vdi-client.log" &&
    pass "Ctrl+Alt+Enter switches full screen on" || fail "Ctrl+Alt+Enter switches full screen on"
key ctrl+alt+Return
poll_until 5 grep -q 'full screen off' "$T/logs/vdi-client.log" &&
    pass "... and off again" || fail "Ctrl+Alt+Enter switches full screen off"
# Without a window manager SDL once kept drawing for the full-screen size afterwards: the
# top of the desktop, where the text is, was out of view.
expect fsoff 10 'seen through vdi-client' "the desktop is in view after full screen"

# --- 4. network drop -> reconnect -----------------------------------------------------
SID=$(session_id_of alice)
forwarder_kill
expect reconnecting 20 'Reconnecting' "after a network drop: 'Reconnecting'"
forwarder_start
if poll_until 60 grep -qaE "desktop ready name=$DESK user=alice .*event=session\.(reconnect|takeover)" "$BROKER_LOG" &&
    shows back 30 'seen through vdi-client'; then
    pass "reconnected to the same desktop once the network is back"
else
    fail "reconnected to the same desktop" "$(cut -c1-200 "$T/back.txt")"
fi
check "the same session (id $SID)" test "$(session_id_of alice)" = "$SID"
audit_has "the reconnect is audited" '.event == "session.reconnect" and .user == "alice"'

# --- 5. ended on purpose -> no reconnect; the pool is remembered -----------------------
vdictl_admin session disconnect "$SID" >/dev/null
expect ended 20 'session has ended' "an admin disconnect ends the session (no reconnect)"
sleep 3
screen ended2
if grep -qi 'Reconnecting' "$T/ended2.txt"; then
    fail "no reconnection after a deliberate close" "$(cat "$T/ended2.txt")"
else
    pass "no reconnection after a deliberate close"
fi
focus
key Return
expect relogin 10 'Password' "Enter goes back to the login screen"
check "the user name is remembered" grep -qi 'alice' "$T/relogin.txt"
# The window still shows the last picture: wait for a new login, not for any.
logins=$(grep -ac 'authenticated .*login=alice@desktops' "$T/logs/vdi-client.log")
type_text "$(password alice)"
key Return
if poll_until 60 bash -c "[ \$(grep -ac 'authenticated .*login=alice@desktops' '$T/logs/vdi-client.log') -gt $logins ]" &&
    shows again 30 'seen through vdi-client'; then
    pass "logging in again goes straight to the remembered pool"
else
    fail "logging in again goes straight to the remembered pool" "$(tail -n5 "$T/logs/vdi-client.log")"
fi
kill "$CLIENT_PID"
wait "$CLIENT_PID" 2>/dev/null
check "the client exits 0 on SIGTERM" test $? -eq 0

# --- 6. certificate mismatch ----------------------------------------------------------
# Another first byte (a fingerprint may well begin with 00).
if [ "${FP:0:2}" = 00 ]; then BAD_FP=11${FP:2}; else BAD_FP=00${FP:2}; fi
sed -i "s/ .*/ $BAD_FP/" "$KNOWN"
client_start # alice is remembered: the focus is on the password
type_text "$(password alice)"
key Return
expect mismatch 20 "identity has changed" "a changed certificate shows the warning"
audit_count=$(grep -ac '"login.success"' "$STATE/audit.log")
key Return
expect refused 10 'Refused' "... and the login is refused (back to the login screen)"
check "no credentials were sent to the changed server" \
    test "$(grep -ac '"login.success"' "$STATE/audit.log")" = "$audit_count"
kill "$CLIENT_PID"
wait "$CLIENT_PID" 2>/dev/null
sed -i "s/ .*/ $FP/" "$KNOWN"

# --- 7. kiosk ---------------------------------------------------------------------------
client_start --kiosk
size=$(window_size)
check "kiosk: full screen ($size)" test "$size" = "1024x768"
key ctrl+alt+Return Escape
sleep 1
size=$(window_size)
check "kiosk: Ctrl+Alt+Enter and Escape do not leave full screen ($size)" test "$size" = "1024x768"
check "kiosk: ... nor end the client" kill -0 "$CLIENT_PID"
expect kiosk-login 10 'Password' "kiosk: the login screen"
if grep -qi 'Quit' "$T/kiosk-login.txt"; then fail "kiosk: no Quit button"; else pass "kiosk: no Quit button"; fi
# No windowfocus here: the kiosk grabs the keyboard, and re-focusing a grabbing window
# made SDL drop the first keys in CI. (Under the grab the typed text can show only with
# the next key event: not checked on screen before Tab.)
type_text "alice"
key Tab
type_text "$(password alice)"
key Return
shows kiosk-desk 60 'seen through vdi-client' && pass "kiosk: alice's desktop" ||
    fail "kiosk: alice's desktop" "$(cut -c1-200 "$T/kiosk-desk.txt")"
vdictl_admin session logoff "$(session_id_of alice)" >/dev/null
expect kiosk-back 40 'Password' "kiosk: back to the login screen after the logoff"
if grep -qi 'alice' "$T/kiosk-back.txt"; then
    fail "kiosk: the next person does not see the last user name" "$(cat "$T/kiosk-back.txt")"
else
    pass "kiosk: the next person does not see the last user name"
fi
kill "$CLIENT_PID"
wait "$CLIENT_PID" 2>/dev/null

if grep -aE 'ERROR: AddressSanitizer|runtime error:' "$T/logs/vdi-client.log" >/dev/null; then
    fail "no sanitizer reports from vdi-client" "$(grep -aE -m3 'ERROR: |runtime error:' "$T/logs/vdi-client.log")"
else
    pass "no sanitizer reports from vdi-client"
fi
broker_stop || fail "broker exits cleanly on SIGTERM"
check_no_sanitizer_reports "$BROKER_LOG"
e2e_end
