#!/usr/bin/env bash
# A standard third-party viewer through the broker: TigerVNC's vncviewer under Xvfb with
# `-SecurityTypes X509Plain -X509CA <the broker's CA>` (user and password through its
# VNC_USERNAME / VNC_PASSWORD environment, which vncviewer 1.12 reads instead of asking
# in a dialog). Checks: keys typed into the viewer window (xdotool) run in alice's
# desktop (marker on its serial log), and the viewer's window shows the VM's screen
# (libvirt's screenshot of her desktop is found, pixel for pixel, in a screenshot of the
# whole X screen). Then the bundled vdi-client (headless, --screenshot) on the same
# desktop: its picture equals the VM's screen.
source "$(dirname "$0")/lib.sh"
e2e_begin tigervnc

for p in Xvfb vncviewer xdotool import; do
    command -v "$p" >/dev/null || abort "prerequisites" "$p missing (packaging/install-deps.sh)"
done

broker_start "$T/state"
pool_setup desktops --kind dedicated
DESK=vdi-desktops-0001 # alice's first login makes the pool's first desktop
serial=$STATE/console/$DESK.log

# An X server of our own; -displayfd picks a free display number.
Xvfb -displayfd 5 -screen 0 1024x768x24 -nolisten tcp 5>"$T/xdisplay" \
    >"$T/logs/xvfb.log" 2>&1 &
E2E_BG_PIDS+=($!)
for ((i = 0; i < 100; i++)); do
    [ -s "$T/xdisplay" ] && break
    sleep 0.1
done
[ -s "$T/xdisplay" ] || abort "Xvfb starts" "no display number"
export DISPLAY=:$(head -n1 "$T/xdisplay")
say "Xvfb on $DISPLAY"

mkdir -p "$T/home"
HOME=$T/home VNC_USERNAME=alice VNC_PASSWORD=$(password alice) \
    vncviewer -SecurityTypes X509Plain -X509CA "$CA" \
    "127.0.0.1::$PORT" >"$T/logs/vncviewer.log" 2>&1 &
viewer_pid=$!
E2E_BG_PIDS+=("$viewer_pid")

if wait_text "$serial" "vdi-demo: ready" 90; then
    pass "vncviewer logged in; alice's desktop booted"
else
    show_log "$T/logs/vncviewer.log"
    abort "vncviewer logs in and alice's desktop boots" "no 'vdi-demo: ready' on $serial"
fi
check "vncviewer is still connected" kill -0 "$viewer_pid"

# The viewer's window (its title names the desktop), focused for xdotool's keys.
win=
for ((i = 0; i < 100; i++)); do
    win=$(xdotool search --onlyvisible --pid "$viewer_pid" 2>/dev/null | head -n1)
    [ -n "$win" ] && break
    sleep 0.1
done
[ -n "$win" ] || abort "vncviewer window" "no visible window of pid $viewer_pid"
xdotool windowfocus --sync "$win" 2>/dev/null || xdotool windowfocus "$win"
# Keep the X pointer (and so TigerVNC's local cursor) out of the window.
xdotool mousemove 1023 767
sleep 2 # let the guest's shell settle after boot

marker="TIGER-$RANDOM$RANDOM"
xdotool type --delay 60 "echo $marker > /dev/ttyS0"
xdotool key Return
if wait_text "$serial" "$marker" 30; then
    pass "keys typed into vncviewer run in alice's desktop (marker on the serial log)"
else
    fail "keys typed into vncviewer run in alice's desktop" "marker $marker not in $serial"
fi

# Static screen (no cursor), then a screenshot of the whole X screen.
xdotool type --delay 60 "printf '\\033[?25l'; echo seen through TigerVNC; ls /"
xdotool key Return
sleep 3
import -window root "$T/xscreen.png" 2>>"$T/logs/import.log" &&
    convert "$T/xscreen.png" -type TrueColor -depth 8 "ppm:$T/xscreen.ppm"
kill "$viewer_pid" 2>/dev/null
wait "$viewer_pid" 2>/dev/null

# The bundled viewer on the same, now static, desktop: its first complete frame.
VDI_CLIENT=${VDI_CLIENT:-$VDI_BUILD_DIR/thinclient/vdi-client}
if [ -x "$VDI_CLIENT" ]; then
    (umask 077 && password alice >"$T/alice.pw")
    "$VDI_CLIENT" --ca-file "$CA" --user alice --password-file "$T/alice.pw" --headless \
        --screenshot "$T/vdi-client.ppm" --screenshot-delay 1000 "127.0.0.1:$PORT" \
        >"$T/logs/vdi-client.log" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && [ -s "$T/vdi-client.ppm" ]; then
        pass "vdi-client logs in and writes a screenshot"
    else
        fail "vdi-client logs in and writes a screenshot" "exit $rc"
        show_log "$T/logs/vdi-client.log" 20
    fi
else
    fail "vdi-client logs in and writes a screenshot" "$VDI_CLIENT is not built"
fi

if broker_stop; then pass "broker exits cleanly on SIGTERM"; else
    fail "broker exits cleanly on SIGTERM"; fi
check_no_sanitizer_reports "$BROKER_LOG"

if vm_screenshot "$DESK" "$T/vdi-alice.ppm" && [ -f "$T/xscreen.ppm" ]; then
    out=$(client compare "$T/xscreen.ppm" "$T/vdi-alice.ppm" --find --tolerance 50)
    if [ $? -eq 0 ]; then
        pass "the vncviewer window shows alice's desktop ($(tr '\n' ' ' <<<"$out"))"
    else
        fail "the vncviewer window shows alice's desktop" "$(tr '\n' ' ' <<<"$out")"
    fi
else
    fail "the vncviewer window shows alice's desktop" "no screenshot"
fi
if [ -s "$T/vdi-client.ppm" ] && [ -s "$T/vdi-alice.ppm" ]; then
    # vdi-client asks for Tight+JPEG: lossy, so a coarser comparison.
    out=$(client compare "$T/vdi-alice.ppm" "$T/vdi-client.ppm" --fuzz 96 --tolerance 500)
    if [ $? -eq 0 ]; then
        pass "vdi-client's screenshot equals alice's desktop ($(tail -n1 <<<"$out"))"
    else
        fail "vdi-client's screenshot equals alice's desktop" "$(tr '\n' ' ' <<<"$out")"
    fi
fi
grep -aiE 'error|fail' "$T/logs/vncviewer.log" | head -n 5
e2e_end
