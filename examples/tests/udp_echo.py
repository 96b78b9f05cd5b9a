#!/usr/bin/env python3
"""udp-echo's ctest: a server on port 0, a client measuring round trips
against it, a client against a port where nobody listens, SIGINT stops the
server. Prints "udp-echo: ok" on success."""
import re
import signal
import socket
import subprocess
import sys

BIN = sys.argv[1]


def fail(msg):
    print("udp-echo: FAIL: " + msg)
    sys.exit(1)


server = subprocess.Popen([BIN, "--port", "0"], stdout=subprocess.PIPE, text=True)
try:
    line = server.stdout.readline()
    m = re.match(r"listening on 127\.0\.0\.1:(\d+)$", line.strip())
    if not m:
        fail("server said %r" % line)
    port = m.group(1)

    c = subprocess.run([BIN, "--client", "--port", port, "-n", "5", "--size", "100",
                        "--interval", "0.01"], capture_output=True, text=True, timeout=60)
    print(c.stdout, end="")
    if c.returncode != 0:
        fail("client exit %d: %s" % (c.returncode, c.stderr))
    seqs = re.findall(r"^100 bytes from 127\.0\.0\.1:%s: seq=(\d) time=[0-9.]+ ms$" % port,
                      c.stdout, re.M)
    if seqs != ["0", "1", "2", "3", "4"]:
        fail("echo lines: %r" % seqs)
    if "5 sent, 5 received, 0% lost" not in c.stdout or "rtt min/avg/max = " not in c.stdout:
        fail("summary missing")

    # a datagram of our own: echoed byte for byte to its sender
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    s.sendto(b"hello udp", ("127.0.0.1", int(port)))
    data, _ = s.recvfrom(100)
    if data != b"hello udp":
        fail("echoed %r" % data)
    s.close()

    # nobody there: every datagram refused or lost, exit 1
    gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gone.bind(("127.0.0.1", 0))
    free_port = str(gone.getsockname()[1])
    gone.close()
    c = subprocess.run([BIN, "--client", "--port", free_port, "-n", "2", "--interval", "0",
                        "--timeout", "0.5"], capture_output=True, text=True, timeout=60)
    print(c.stdout, end="")
    if c.returncode != 1 or "2 sent, 0 received, 100% lost" not in c.stdout:
        fail("client without a server: exit %d" % c.returncode)

    server.send_signal(signal.SIGINT)
    out, _ = server.communicate(timeout=30)
    if server.returncode != 0 or "echoed 6 datagrams" not in out:
        fail("server exit %d, said %r" % (server.returncode, out))
finally:
    if server.poll() is None:
        server.kill()


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# Bound to ::1, the server echoes the largest datagrams IPv6 carries:
# 65,509..65,527 bytes, beyond IPv4's 65,507.
if ipv6_loopback():
    server = subprocess.Popen([BIN, "--host", "::1", "--port", "0"], stdout=subprocess.PIPE,
                              text=True)
    try:
        line = server.stdout.readline()
        m = re.match(r"listening on \[::1\]:(\d+)$", line.strip())
        if not m:
            fail("server on ::1 said %r" % line)
        port = int(m.group(1))
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.settimeout(10)
        for size in (65507, 65508, 65509, 65520, 65527):
            payload = bytes((i * 7 + size) & 0xFF for i in range(size))
            s.sendto(payload, ("::1", port))
            data, _ = s.recvfrom(70000)
            if data != payload:
                fail("%d-byte datagram on ::1: echoed %d bytes" % (size, len(data)))
        s.close()
        c = subprocess.run([BIN, "--client", "--host", "::1", "--port", str(port), "-n", "2",
                            "--size", "65527", "--interval", "0"],
                           capture_output=True, text=True, timeout=60)
        print(c.stdout, end="")
        if c.returncode != 0 or "2 sent, 2 received, 0% lost" not in c.stdout:
            fail("client of 65527 bytes on ::1: exit %d: %s" % (c.returncode, c.stderr))
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
else:
    print("udp-echo: no IPv6 loopback here; the ::1 part is skipped")
print("udp-echo: ok")
