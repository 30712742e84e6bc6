#!/usr/bin/env bash
# vdi-client in kiosk mode straight on KMS/DRM, no X server: a QEMU TCG guest
# (tests/image/build-kiosk-image.sh) boots Debian's kernel with the bochs DRM driver on
# QEMU's standard VGA, udev, Mesa (EGL/GBM, llvmpipe) and vdi-client with
# SDL_VIDEODRIVER=kmsdrm, as packaging/vdi-kiosk.service runs it on a thin client. The
# test reads the guest's screen through QEMU's screendump (OCR with tesseract) and types
# on the guest's PS/2 keyboard (QMP send-key), as a person at the kiosk would:
#   the login screen is drawn on the DRM device, keys reach it through evdev, a login
#   attempt shows its error (the guest has no network: "Cannot reach the server"), and
#   the kiosk's own keys (Ctrl+Alt+Enter, Escape) do not leave it.
# The desktop part of a session is the same code as under X11 (e2e_client_ui).
source "$(dirname "$0")/lib.sh"
e2e_begin kiosk_kms

VDI_CLIENT=${VDI_CLIENT:-$VDI_BUILD_DIR/thinclient/vdi-client}
for p in qemu-system-x86_64 tesseract socat convert; do
    command -v "$p" >/dev/null || abort "prerequisites" "$p missing (packaging/install-deps.sh)"
done
[ -x "$VDI_CLIENT" ] || abort "prerequisites" "$VDI_CLIENT is not built"

if "$VDI_SOURCE_DIR/tests/image/build-kiosk-image.sh" "$VDI_CLIENT" "$T/image" \
    >"$T/logs/image.log" 2>&1; then
    pass "kiosk guest image built ($(tail -n1 "$T/logs/image.log" | sed 's/.*(//; s/)//'))"
else
    show_log "$T/logs/image.log"
    abort "kiosk guest image" "build-kiosk-image.sh failed"
fi

serial=$T/serial.log
qmp_sock=$T/qmp.sock
# No network device at all; the standard VGA is what bochs-drm drives.
qemu-system-x86_64 -machine pc -accel tcg -m 1536 -smp 1 -nodefaults -vga std \
    -display none -nic none -kernel "$T/image/vmlinuz" -initrd "$T/image/initrd.cpio" \
    -append "$(cat "$T/image/cmdline")" -serial "file:$serial" \
    -qmp "unix:$qmp_sock,server=on,wait=off" >"$T/logs/qemu.log" 2>&1 &
E2E_BG_PIDS+=($!)

# qmp COMMAND-JSON: one QMP command after the capabilities handshake.
qmp() {
    printf '{"execute":"qmp_capabilities"}\n%s\n' "$1" |
        socat -t 5 - "UNIX-CONNECT:$qmp_sock" >>"$T/logs/qmp.log" 2>&1
}
# keys QCODE...: one key press (with modifiers: "ctrl-alt-ret") each.
keys() {
    local k j
    for k in "$@"; do
        j=$(printf '%s' "$k" | sed 's/\([^-]*\)/{"type":"qcode","data":"\1"}/g; s/-/,/g')
        qmp "{\"execute\":\"send-key\",\"arguments\":{\"keys\":[$j]}}"
        sleep 0.3
    done
}
# type_word WORD: lower-case letters and digits only.
type_word() {
    local i
    for ((i = 0; i < ${#1}; i++)); do keys "${1:i:1}"; done
}
shot=0
# screen NAME: QEMU's screendump -> $T/NAME.png and its OCR text -> $T/NAME.txt.
screen() {
    shot=$((shot + 1))
    rm -f "$T/$1.ppm"
    qmp "{\"execute\":\"screendump\",\"arguments\":{\"filename\":\"$T/$1.ppm\"}}"
    poll_until 5 test -s "$T/$1.ppm" || return 1
    convert "$T/$1.ppm" "$T/$1.png" 2>>"$T/logs/convert.log"
    convert "$T/$1.ppm" -negate -resize 200% "$T/$1.ocr.png" 2>>"$T/logs/convert.log"
    tesseract "$T/$1.ocr.png" - 2>/dev/null | tr -s ' \n' ' ' >"$T/$1.txt"
}
# expect NAME SECONDS REGEX DESCRIPTION: screendumps until the OCR text matches.
expect() {
    local i
    for ((i = 0; i < $2; i += 2)); do
        screen "$1" && grep -qEi -- "$3" "$T/$1.txt" && { pass "$4"; return 0; }
        sleep 2
    done
    fail "$4" "not on screen: /$3/ (see $T/$1.png); OCR: $(cut -c1-200 "$T/$1.txt" 2>/dev/null)"
    return 1
}

if poll_until 180 grep -aqs "video=KMSDRM" "$serial"; then
    pass "vdi-client starts on SDL's kmsdrm backend ($(grep -ao 'renderer=[^ ]* video=KMSDRM size=[0-9x]*' "$serial" | head -n1))"
else
    show_log "$serial" 40
    abort "vdi-client starts on KMS/DRM" "no 'video=KMSDRM' in the guest's log"
fi
check "no X server in the guest: the DRM device is vdi-client's" grep -aq "kiosk: dri card0" "$serial"
expect login 120 'User name.*Password' "the login screen is drawn on the DRM device" ||
    abort "login screen on KMS" "see $T/login.png"
check "the broker from client.conf is shown" grep -q '127.0.0.1:1' "$T/login.txt"

# The kiosk's keys do nothing: no full screen toggle, no way out.
keys ctrl-alt-ret esc
sleep 3
expect still 20 'User name.*Password' "Ctrl+Alt+Enter and Escape leave the kiosk on its login screen"
check "the client still runs" bash -c "! grep -aq 'kiosk: vdi-client exited' '$serial'"

# Focus starts on the user name (the server is preset). Keys go through evdev.
type_word alice
keys tab
type_word secret
keys ret
expect unreachable 60 'Cannot reach' "a login typed on the kiosk's keyboard runs: 'Cannot reach the server'"
check "the client logged the attempt for alice" grep -aq 'connecting host=127.0.0.1 port=1 login=alice' "$serial"
check "no sanitizer report in the guest" bash -c "! grep -aqE 'ERROR: AddressSanitizer|runtime error:' '$serial'"
e2e_end
