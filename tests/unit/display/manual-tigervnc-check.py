#!/usr/bin/env python3
"""Manual check (not run by ctest): TigerVNC's vncviewer logs in through vdi-session.

Plays the broker on a SOCK_SEQPACKET socketpair (common/proto.h wire format), starts
vncviewer under Xvfb with -SecurityTypes X509Plain (credentials from VNC_USERNAME /
VNC_PASSWORD), waits for the status screen, takes a screenshot, then sends CLOSE and
checks the exit code. Needs: Xvfb, vncviewer (tigervnc-viewer), certtool, ImageMagick.

    tests/unit/display/manual-tigervnc-check.py build-h1/display/vdi-session [OUT.png]
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

USER, PASSWORD = "alice", "tiger pass"


def certs(d):
    def w(name, text):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    w("ca.tmpl", 'cn = "vdi test CA"\nca\ncert_signing_key\nexpiration_days = 2\n')
    w("server.tmpl", 'cn = "vdi.test"\ndns_name = "vdi.test"\nip_address = "127.0.0.1"\n'
      "tls_www_server\nsigning_key\nencryption_key\nexpiration_days = 2\n")
    for cmd in (
        "certtool --generate-privkey --key-type=ecdsa --outfile ca-key.pem",
        "certtool --generate-self-signed --load-privkey ca-key.pem --template ca.tmpl --outfile ca.pem",
        "certtool --generate-privkey --key-type=ecdsa --outfile key.pem",
        "certtool --generate-certificate --load-privkey key.pem --load-ca-certificate ca.pem "
        "--load-ca-privkey ca-key.pem --template server.tmpl --outfile cert.pem",
    ):
        subprocess.run(cmd, shell=True, cwd=d, check=True, capture_output=True)


def pstr(s):
    b = s.encode()
    return struct.pack("<H", len(b)) + b


def send(sock, mtype, body):
    sock.send(struct.pack("<BBH", 1, mtype, len(body)) + body)


def recv_auth(sock):
    pkt = sock.recv(2048)
    version, mtype, length = struct.unpack("<BBH", pkt[:4])
    assert (version, mtype, length) == (1, 1, len(pkt) - 4), pkt[:4]
    body = pkt[4:]
    ul = struct.unpack("<H", body[:2])[0]
    user = body[2:2 + ul].decode()
    pl = struct.unpack("<H", body[2 + ul:4 + ul])[0]
    password = body[4 + ul:4 + ul + pl].decode()
    return user, password


def main():
    session = os.path.abspath(sys.argv[1])
    shot = sys.argv[2] if len(sys.argv) > 2 else None
    d = tempfile.mkdtemp(prefix="vdi-tigervnc-")
    os.chmod(d, 0o755)
    certs(d)

    xvfb = subprocess.Popen(["Xvfb", ":57", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            stderr=subprocess.DEVNULL)
    time.sleep(1)
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    port = lst.getsockname()[1]
    env = dict(os.environ, DISPLAY=":57", VNC_USERNAME=USER, VNC_PASSWORD=PASSWORD,
               HOME=d)
    viewer = subprocess.Popen(["vncviewer", "-SecurityTypes", "X509Plain", "-X509CA",
                               os.path.join(d, "ca.pem"), "127.0.0.1::%d" % port],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    conn, _ = lst.accept()
    broker, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def child_fds():
        # Via fresh copies: dup2 onto 3 and 4 then clears close-on-exec even when the
        # socket already sits on 3 or 4.
        a, b = os.dup(conn.fileno()), os.dup(theirs.fileno())
        os.dup2(a, 3)
        os.dup2(b, 4)

    args = [session, "--client-fd", "3", "--control-fd", "4", "--client-address",
            "127.0.0.1:%d" % conn.getpeername()[1], "--tls-cert", os.path.join(d, "cert.pem"),
            "--tls-key", os.path.join(d, "key.pem"), "--log-level", "debug"]
    if os.geteuid() == 0:
        args += ["--user", "nobody"]
    proc = subprocess.Popen(args, preexec_fn=child_fds, close_fds=False,
                            stderr=subprocess.PIPE, text=True)
    conn.close()
    theirs.close()

    broker.settimeout(20)
    try:
        user, password = recv_auth(broker)
    except Exception as e:
        print("no AUTH_REQUEST:", e)
        proc.kill()
        viewer.kill()
        xvfb.kill()
        print(proc.communicate()[1])
        print(viewer.communicate()[0].decode(errors="replace"))
        return 1
    print("broker: AUTH_REQUEST user=%s password %s" % (user, "ok" if password == PASSWORD else "WRONG"))
    send(broker, 2, b"\x01" + pstr(""))                      # AUTH_RESULT ok
    send(broker, 3, pstr("Starting your desktop (TigerVNC check)..."))  # DESKTOP_STATUS
    time.sleep(3)
    if shot:
        subprocess.run(["import", "-display", ":57", "-window", "root", shot], check=False)
        print("screenshot:", shot)
    t0 = time.time()
    send(broker, 5, pstr("Demo over"))                       # CLOSE
    code = proc.wait(timeout=15)
    print("vdi-session exit=%d after CLOSE in %.1f s" % (code, time.time() - t0))
    log = proc.stderr.read()
    print(log)
    assert PASSWORD not in log, "password in the log!"
    viewer.terminate()
    out = viewer.communicate(timeout=5)[0].decode(errors="replace")
    print("vncviewer said:\n" + out)
    xvfb.terminate()
    subprocess.run(["rm", "-rf", d])
    ok = user == USER and password == PASSWORD and code == 0
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
