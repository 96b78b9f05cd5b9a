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
print("udp-echo: ok")
