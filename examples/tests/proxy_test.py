#!/usr/bin/env python3
"""proxy's ctest: a Python upstream on port 0 behind the proxy. 100 MB each
way checked by SHA-256; a client that half-closes first still gets its
answer; an upstream nobody listens on closes the client's connection;
--max-conns holds; SIGINT stops the proxy (exit 0). Prints "proxy: ok"."""
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

BIN = sys.argv[1]
MB = 1 << 20


def fail(msg):
    print("proxy: FAIL: " + msg, flush=True)
    sys.exit(1)


def serve(lsock, handler):
    def loop():
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=handler, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def echo(c):
    """Sends back every byte as it comes; at EOF, half-closes too."""
    with c:
        while data := c.recv(MB):
            c.sendall(data)
        c.shutdown(socket.SHUT_WR)


def answer_at_eof(c):
    """Reads to EOF, then answers with the SHA-256 of what it read."""
    with c:
        h = hashlib.sha256()
        while data := c.recv(MB):
            h.update(data)
        c.sendall(("sha256 " + h.hexdigest() + "\n").encode())


def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def start_proxy(upstream_port, *extra):
    p = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", "--to", "127.0.0.1:%d" % upstream_port,
                          *extra], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.match(r"proxy: listening on 127\.0\.0\.1:(\d+)$", line.strip())
    if not m:
        p.kill()
        fail("proxy said %r" % line)
    return p, int(m.group(1))


def stop_proxy(p):
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        fail("no exit after SIGINT")
    if rc != 0:
        fail("exit status %d after SIGINT" % rc)


def big_transfer(port):
    """100 MB through the proxy to the echo upstream and back."""
    total = 100 * MB
    block = os.urandom(MB)
    sent_hash = hashlib.sha256()
    got_hash = hashlib.sha256()
    got = [0]
    c = socket.create_connection(("127.0.0.1", port))

    def reader():
        while data := c.recv(MB):
            got_hash.update(data)
            got[0] += len(data)
    t = threading.Thread(target=reader)
    t.start()
    for i in range(total // MB):
        chunk = i.to_bytes(8, "big") + block[8:]  # every block differs
        sent_hash.update(chunk)
        c.sendall(chunk)
    c.shutdown(socket.SHUT_WR)  # the echo half-closes back: reader ends
    t.join(timeout=120)
    c.close()
    if t.is_alive():
        fail("the echo did not end after our half-close")
    if got[0] != total:
        fail("%d bytes back, not %d" % (got[0], total))
    if got_hash.hexdigest() != sent_hash.hexdigest():
        fail("SHA-256 differs")


def half_close_first(port):
    msg = b"question " * 1000
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(msg)
    c.shutdown(socket.SHUT_WR)  # we are done talking; the answer comes after
    c.settimeout(30)
    data = b""
    while chunk := c.recv(4096):
        data += chunk
    c.close()
    want = ("sha256 " + hashlib.sha256(msg).hexdigest() + "\n").encode()
    if data != want:
        fail("half-closing client got %r" % data[:80])


def main():
    up = listener()
    serve(up, echo)
    p, port = start_proxy(up.getsockname()[1])
    t0 = time.monotonic()
    big_transfer(port)
    print("proxy: 100 MB each way in %.2f s, SHA-256 equal" % (time.monotonic() - t0), flush=True)
    stop_proxy(p)

    up2 = listener()
    serve(up2, answer_at_eof)
    p, port = start_proxy(up2.getsockname()[1], "--max-conns", "2")
    half_close_first(port)
    # --max-conns 2: three half-closing clients at once are all answered
    ts = [threading.Thread(target=half_close_first, args=(port,)) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop_proxy(p)

    # nobody listens upstream: the client's connection is closed, promptly
    dead = listener()
    dead_port = dead.getsockname()[1]
    dead.close()
    p, port = start_proxy(dead_port)
    c = socket.create_connection(("127.0.0.1", port))
    c.settimeout(30)
    if c.recv(10) != b"":
        fail("expected EOF when the upstream refuses")
    c.close()
    stop_proxy(p)
    print("proxy: ok", flush=True)


main()
