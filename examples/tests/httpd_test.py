#!/usr/bin/env python3
"""End-to-end tests of examples/httpd with real clients.

Usage: httpd_test.py PATH/TO/httpd TEST [PATH/TO/gen-certs.sh]
(TEST: one of the names in TESTS; the tls_* ones need the certificate script)

Each test starts httpd on 127.0.0.1 port 0 against a temporary ROOT of
generated files, talks to it with Python's http.client, raw sockets (for
what http.client refuses to send) and curl when it is installed, and stops
it with SIGTERM, expecting exit status 0. Waits are on events (a response,
EOF, a log line); the timeouts only bound how long a failure takes.

The tls_* tests run httpd with --tls-cert/--tls-key (the test certificates
of tests/tls/gen-certs.sh): tls_NAME runs test NAME unchanged with every
connection and socket made by Server.conn()/Server.sock() going over TLS,
verified against the test CA; the others are about TLS itself.
"""
import email.utils
import http.client
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import tls_fixture

WAIT = 10.0  # longest any expected event may take


class Server:
    def __init__(self, binary, root, *args, certs=None):
        self.certs = certs
        self.ctx = tls_fixture.client_context(certs.ca) if certs else None
        tls = ["--tls-cert", certs.server[0], "--tls-key", certs.server[1]] if certs else []
        self.proc = subprocess.Popen([binary, "--port", "0", "--root", root, "--loops", "1"]
                                     + list(args) + tls, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self.read_line()
        assert line.startswith("listening on 127.0.0.1:"), line
        self.port = int(line.rsplit(":", 1)[1])
        self.buf = b""

    def read_line(self, timeout=WAIT):
        """One line of stdout (the access log), or fail."""
        out = self.proc.stdout
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            r, _, _ = select.select([out], [], [], max(left, 0))
            if not r:
                raise AssertionError("no line from httpd; got %r" % data)
            ch = os.read(out.fileno(), 1)
            if not ch:
                raise AssertionError("httpd closed its stdout; got %r" % data)
            data += ch
        return data.decode()

    def log_lines(self, n):
        return [self.read_line() for _ in range(n)]

    def conn(self):
        if self.ctx:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=WAIT,
                                               context=self.ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)

    def sock(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        if self.ctx:  # the handshake is done here; verifies 127.0.0.1 (an IP SAN)
            s = self.ctx.wrap_socket(s, server_hostname="127.0.0.1")
        return s

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        rc = self.proc.wait(WAIT)
        err = self.proc.stderr.read().decode()
        assert rc == 0, "httpd exited %d: %s" % (rc, err)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def make_root():
    root = tempfile.mkdtemp(prefix="httpd-root-")
    outside = tempfile.mkdtemp(prefix="httpd-outside-")
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<h1>hello</h1>\n")
    with open(os.path.join(root, "k1.bin"), "wb") as f:
        f.write(bytes(range(256)) * 4)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(10 * 1024 * 1024))
    os.mkdir(os.path.join(root, "sub"))
    with open(os.path.join(root, "sub", "a.txt"), "w") as f:
        f.write("inside\n")
    os.mkdir(os.path.join(root, "noindex"))
    with open(os.path.join(outside, "secret.txt"), "w") as f:
        f.write("SECRET\n")
    os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "abs-link"))
    os.symlink("../" + os.path.basename(outside) + "/secret.txt", os.path.join(root, "rel-link"))
    os.symlink(outside, os.path.join(root, "dir-link"))
    os.symlink("sub/a.txt", os.path.join(root, "good-link"))
    os.mkfifo(os.path.join(root, "fifo"))
    return root, outside


def read_to_eof(s, reset_ends=False):
    """Everything s receives until the peer closes; with reset_ends, a reset
    also ends it (what came before it is returned)."""
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk
    except ConnectionResetError:
        if not reset_ends:
            raise
        return got


def read_response(s, eof_ok=True):
    """What s receives until it holds a full response, or (eof_ok) the
    peer closes first."""
    got = b""
    while not response_complete(got):
        chunk = s.recv(65536)
        assert chunk or eof_ok, got
        if not chunk:
            break
        got += chunk
    return got


def raw(srv, data, expect_close=False):
    """Sends data on a fresh connection; returns everything read until EOF
    (the server closes) or, unless expect_close, until a full response."""
    s = srv.sock()
    s.sendall(data)
    got = read_to_eof(s) if expect_close else read_response(s)
    s.close()
    return got


def response_complete(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
    return True


def status_of(resp_bytes):
    assert resp_bytes.startswith(b"HTTP/1.1 "), resp_bytes[:200]
    return int(resp_bytes[9:12])


def get(srv, path, headers=None, method="GET"):
    c = srv.conn()
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


# ---------------------------------------------------------------- the tests

def test_get_head_keepalive(srv, root):
    c = srv.conn()
    for _ in range(3):  # one connection, several requests
        c.request("GET", "/k1.bin")
        r = c.getresponse()
        body = r.read()
        assert r.status == 200 and body == bytes(range(256)) * 4
        assert r.getheader("Content-Length") == "1024"
        assert r.getheader("Content-Type") == "application/octet-stream"
        assert r.getheader("Date") and r.getheader("Accept-Ranges") == "bytes"
    c.request("HEAD", "/index.html")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b""
    assert r.getheader("Content-Length") == str(len("<h1>hello</h1>\n"))
    assert r.getheader("Content-Type").startswith("text/html")
    c.request("GET", "/")  # a directory: its index.html
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"<h1>hello</h1>\n"
    c.request("GET", "/big.bin")
    r = c.getresponse()
    body = r.read()
    with open(os.path.join(root, "big.bin"), "rb") as f:
        assert body == f.read()
    c.request("GET", "/sub/a.txt?x=1")  # the query is not part of the path
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"inside\n"
    for path, status in [("/nope", 404), ("/noindex/", 403), ("/fifo", 403)]:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        assert r.status == status, (path, r.status)
    c.close()


def test_pipelining(srv, root):
    s = srv.sock()
    reqs = b"".join(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % p
                    for p in (b"index.html", b"sub/a.txt", b"nope", b"k1.bin"))
    s.sendall(reqs)  # all four at once
    got = b""
    want = [b"<h1>hello</h1>\n", b"inside\n", None, bytes(range(256)) * 4]
    for body in want:
        while b"\r\n\r\n" not in got or not response_complete(got):
            chunk = s.recv(65536)
            assert chunk, "EOF after %r" % got[-200:]
            got += chunk
        head, _, rest = got.partition(b"\r\n\r\n")
        n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0]
                .split(b":")[1])
        if body is not None:
            assert status_of(head) == 200 and rest[:n] == body
        else:
            assert status_of(head) == 404
        got = rest[n:]
    s.close()


def test_http10(srv, root):
    got = raw(srv, b"GET /sub/a.txt HTTP/1.0\r\n\r\n", expect_close=True)
    assert status_of(got) == 200 and got.endswith(b"inside\n")
    assert b"Connection: close" in got
    s = srv.sock()
    s.sendall(b"GET /sub/a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    got = read_response(s, eof_ok=False)
    assert b"Connection: keep-alive" in got
    s.sendall(b"GET /sub/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rest = read_to_eof(s)
    assert status_of(rest) == 200 and rest.endswith(b"inside\n")


def test_last_modified(srv, root):
    path = os.path.join(root, "sub", "a.txt")
    mtime = int(os.stat(path).st_mtime)
    r, _ = get(srv, "/sub/a.txt")
    lm = r.getheader("Last-Modified")
    assert email.utils.parsedate_to_datetime(lm).timestamp() == mtime
    r, body = get(srv, "/sub/a.txt", {"If-Modified-Since": lm})
    assert r.status == 304 and body == b"" and r.getheader("Last-Modified") == lm
    later = email.utils.formatdate(mtime + 3600, usegmt=True)
    r, body = get(srv, "/sub/a.txt", {"If-Modified-Since": later})
    assert r.status == 304
    earlier = email.utils.formatdate(mtime - 1, usegmt=True)
    r, body = get(srv, "/sub/a.txt", {"If-Modified-Since": earlier})
    assert r.status == 200 and body == b"inside\n"
    for bad in ["yesterday", "Sun, 99 Foo 1994 08:49:37 GMT", ""]:
        r, body = get(srv, "/sub/a.txt", {"If-Modified-Since": bad})
        assert r.status == 200, bad  # an invalid date is ignored
    # the RFC 850 and asctime forms count too
    t = time.gmtime(mtime)
    r, _ = get(srv, "/sub/a.txt", {"If-Modified-Since": time.strftime("%A, %d-%b-%y %H:%M:%S GMT", t)})
    assert r.status == 304
    r, _ = get(srv, "/sub/a.txt", {"If-Modified-Since": time.strftime("%a %b %e %H:%M:%S %Y", t)})
    assert r.status == 304


def test_range(srv, root):
    data = bytes(range(256)) * 4
    cases = [
        ("bytes=0-3", 206, data[0:4], "bytes 0-3/1024"),
        ("bytes=1000-", 206, data[1000:], "bytes 1000-1023/1024"),
        ("bytes=-5", 206, data[-5:], "bytes 1019-1023/1024"),
        ("bytes=-5000", 206, data, "bytes 0-1023/1024"),
        ("bytes=10-99999999999999999999999", 206, data[10:], "bytes 10-1023/1024"),
        ("bytes=1023-1023", 206, data[1023:], "bytes 1023-1023/1024"),
        ("bytes=1024-", 416, None, "bytes */1024"),
        ("bytes=99999999999999999999999-", 416, None, "bytes */1024"),
        ("bytes=5-2", 416, None, "bytes */1024"),
        ("bytes=-0", 416, None, "bytes */1024"),
        ("bytes=abc", 416, None, "bytes */1024"),
        ("bytes=--1", 416, None, "bytes */1024"),
        ("bytes=0-1,5-6", 200, data, None),  # several ranges: the whole file
        ("pages=1-2", 200, data, None),      # a unit we do not know
    ]
    for value, status, body, content_range in cases:
        r, got = get(srv, "/k1.bin", {"Range": value})
        assert r.status == status, (value, r.status)
        if body is not None:
            assert got == body and int(r.getheader("Content-Length")) == len(body), value
        assert r.getheader("Content-Range") == content_range, (value, r.getheader("Content-Range"))
    lm = get(srv, "/k1.bin")[0].getheader("Last-Modified")
    r, got = get(srv, "/k1.bin", {"Range": "bytes=0-3", "If-Range": lm})
    assert r.status == 206 and got == data[:4]
    r, got = get(srv, "/k1.bin", {"Range": "bytes=0-3", "If-Range": "Sun, 06 Nov 1994 08:49:37 GMT"})
    assert r.status == 200 and got == data  # the file changed since: all of it
    r, got = get(srv, "/big.bin", {"Range": "bytes=5000000-5000099"})
    with open(os.path.join(root, "big.bin"), "rb") as f:
        f.seek(5000000)
        assert r.status == 206 and got == f.read(100)


def test_traversal(srv, root):
    forbidden = [
        b"/../etc/passwd", b"/sub/../../etc/passwd", b"/%2e%2e/etc/passwd",
        b"/%2E%2e/%2e%2E/etc/passwd", b"/sub/%2e%2e/%2e%2e/etc/passwd",
        b"/..%2fetc%2fpasswd", b"/sub%2fa.txt", b"/%2fetc%2fpasswd",
        b"/..\\..\\etc\\passwd", b"/sub\\a.txt", b"/..%5c..%5cetc%5cpasswd",
        b"/abs-link", b"/rel-link", b"/dir-link/secret.txt",
        b"http://x/../etc/passwd", b"/sub/..",
    ]
    for path in forbidden:
        got = raw(srv, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(got) == 403, (path, got[:100])
        assert b"SECRET" not in got and b"root:" not in got
    bad = [b"/%00", b"/index.html%00.txt", b"/%zz", b"/%2", b"/a%0ab", b"*", b"x/y",
           b"/a#frag", b"/\x01"]
    for path in bad:
        got = raw(srv, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n", expect_close=True)
        assert status_of(got) == 400, (path, got[:100])
    # decoded once only: %252e is a file named "%2e"
    got = raw(srv, b"GET /%252e%252e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(got) == 404
    for path in [b"/good-link", b"/sub/./a.txt", b"//sub//a.txt", b"/%73ub/a.txt",
                 b"http://example.com/sub/a.txt"]:
        got = raw(srv, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(got) == 200 and got.endswith(b"inside\n"), (path, got[:100])


def test_errors_and_limits(srv, root):
    cases = [  # (request, status, the connection is closed after it)
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405, False),
        (b"DELETE /index.html HTTP/1.1\r\nHost: x\r\n\r\n", 405, False),
        (b"GET / HTTP/1.1\r\n\r\n", 400, True),                       # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, True),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, True),
        (b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505, True),
        (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, True),
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
        (b"GET / FTP/1.1\r\nHost: x\r\n\r\n", 400, True),
        (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, True),          # space before colon
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n  folded\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400, True),  # bare CR
        (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400, True),
        # smuggling shapes
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 413, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, True),
        # limits
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 100 + b"\r\n", 431, True),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"X: " + b"y" * 8000 + b"\r\n") * 9 + b"\r\n", 431, True),
    ]
    for req, status, closes in cases:
        got = raw(srv, req, expect_close=closes)
        assert status_of(got) == status, (req[:80], got[:120])
        if status == 405:
            assert b"\r\nAllow: GET, HEAD\r\n" in got
        if closes:
            assert b"\r\nConnection: close\r\n" in got, req[:80]
            assert got.count(b"HTTP/1.1 ") == 1
    # A small body is read and skipped: the next request on the connection works.
    s = srv.sock()
    s.sendall(b"GET /sub/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /sub/a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while got.count(b"inside\n") < 2:
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    assert got.count(b"HTTP/1.1 200 OK") == 2
    s.close()
    # 10 MB of header without a newline: 431 and the connection ends, the server is fine.
    s = srv.sock()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX: ")
    try:
        for _ in range(160):
            s.sendall(b"z" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    got = read_to_eof(s, reset_ends=True)
    # 431 as soon as the line is too long (the answer may be lost to the
    # reset our close sends into a peer that is still sending: then nothing)
    assert got == b"" or status_of(got) == 431, got[:100]
    r, body = get(srv, "/sub/a.txt")
    assert r.status == 200 and body == b"inside\n"


def test_slow_headers(srv, root):
    # started with --header-timeout 0.5 --idle-timeout 0.5
    s = srv.sock()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and nothing more
    got = read_to_eof(s)
    assert status_of(got) == 408 and b"Connection: close" in got, got
    # An idle keep-alive connection is closed quietly.
    s = srv.sock()
    assert s.recv(100) == b""
    # A connection that answered one request, then idles: closed quietly too.
    s = srv.sock()
    s.sendall(b"GET /sub/a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    got = read_to_eof(s)
    assert status_of(got) == 200 and got.endswith(b"inside\n")


def test_stalled_reader(srv, root):
    # started with --idle-timeout 0.5: a client that stops reading its
    # answer is let go once the answer has made no progress for that long
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(WAIT)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    line = srv.read_line()  # logged when the server gives up
    assert '"GET /big.bin HTTP/1.1" 200 ' in line, line
    sent = int(line.split()[-1])
    assert 0 < sent < 10 * 1024 * 1024, line
    got = 0
    while True:  # what was sent, then EOF
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    assert got < 10 * 1024 * 1024
    # the server is fine
    r, body = get(srv, "/sub/a.txt")
    assert r.status == 200 and body == b"inside\n"


def test_access_log(srv, root):
    get(srv, "/sub/a.txt")
    get(srv, "/nope")
    raw(srv, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", expect_close=True)
    get(srv, "/k1.bin", {"Range": "bytes=0-9"}, method="HEAD")
    lines = srv.log_lines(4)
    assert lines[0].startswith("127.0.0.1 - - [") and lines[0].endswith('"GET /sub/a.txt HTTP/1.1" 200 7\n'), lines[0]
    assert lines[1].endswith('"GET /nope HTTP/1.1" 404 14\n'), lines[1]
    assert lines[2].endswith('"-" 414 17\n'), lines[2]
    assert lines[3].endswith('"HEAD /k1.bin HTTP/1.1" 206 0\n'), lines[3]
    # control bytes never reach the log as such
    raw(srv, b"GET /a\x1b[31m HTTP/1.1\r\nHost: x\r\n\r\n", expect_close=True)
    line = srv.read_line()
    assert "\x1b" not in line and line.endswith(" 400 16\n"), line


def test_graceful_shutdown(srv, root):
    big = socket.socket()
    big.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    big.settimeout(WAIT)
    big.connect(("127.0.0.1", srv.port))
    big.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    first = big.recv(4096)  # the answer is under way
    assert status_of(first) == 200
    idle = srv.conn()
    idle.request("GET", "/sub/a.txt")
    idle_resp = idle.getresponse()
    assert idle_resp.read() == b"inside\n"  # now idle, kept alive
    srv.proc.send_signal(signal.SIGTERM)
    # The idle connection is closed, the listener too...
    assert idle.sock.recv(100) == b""
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT).close()
        raise AssertionError("still accepting during the shutdown")
    except ConnectionRefusedError:
        pass
    # ...while the answer under way is finished, to the last byte.
    got = first
    while True:
        chunk = big.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    with open(os.path.join(root, "big.bin"), "rb") as f:
        assert body == f.read()
    assert b"Connection: close" not in head  # it was keep-alive when it started
    rc = srv.proc.wait(WAIT)
    assert rc == 0
    return "stopped"


def test_second_signal(srv, root):
    # an answer under way to a client that does not read holds the graceful
    # shutdown; a second signal ends the process at once, by that signal
    big = socket.socket()
    big.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big.settimeout(WAIT)
    big.connect(("127.0.0.1", srv.port))
    big.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(big.recv(4096)) == 200
    srv.proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + WAIT
    while True:  # the first signal was taken: the listener is closed
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT).close()
        except (ConnectionRefusedError, ConnectionResetError):
            break  # refused, or reset: queued when the listener closed
        assert time.monotonic() < deadline, "still accepting after SIGINT"
    assert srv.proc.poll() is None  # still finishing the answer
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(WAIT) == -signal.SIGINT
    big.close()
    return "stopped"


def test_loops(srv, root):
    # started with --loops 2: every connection is served, whichever loop takes it
    conns = [srv.conn() for _ in range(20)]
    for i, c in enumerate(conns):
        c.request("GET", "/sub/a.txt")
    for c in conns:
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"inside\n"
        c.close()


def test_max_conns(srv, root):
    # started with --max-conns 1: a second connection waits in the backlog
    # until the first one ends, then it is served
    first = srv.conn()
    first.request("GET", "/sub/a.txt")
    assert first.getresponse().read() == b"inside\n"  # kept alive, holding the slot
    second = srv.sock()
    second.sendall(b"GET /k1.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    r, _, _ = select.select([second], [], [], 0.3)
    assert not r, "a second connection was served beside the first"
    first.close()
    got = read_response(second, eof_ok=False)
    assert status_of(got) == 200 and got.endswith(bytes(range(256)) * 4)
    second.close()


def test_curl(srv, root):
    curl = shutil.which("curl")
    if not curl:
        print("curl not installed: skipped")
        return
    base = "http://127.0.0.1:%d" % srv.port

    def run(*args):
        p = subprocess.run([curl, "-s", "-S"] + list(args), capture_output=True, timeout=WAIT * 3)
        return p.stdout

    assert run(base + "/sub/a.txt") == b"inside\n"
    assert run("-r", "4-9", base + "/k1.bin") == (bytes(range(256)) * 4)[4:10]
    head = run("-I", base + "/big.bin")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 10485760" in head
    assert run("-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", base + "/../etc/passwd") == b"403"
    assert run("-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", base + "/%2e%2e/%2e%2e/etc/passwd") == b"403"
    # two URLs, one connection
    out = run("-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects}\n",
              base + "/sub/a.txt", base + "/k1.bin")
    assert out.split() == [b"1", b"0"], out
    with open(os.path.join(root, "big.bin"), "rb") as f:
        assert run(base + "/big.bin") == f.read()
    lm = run("-I", base + "/k1.bin").split(b"Last-Modified: ")[1].split(b"\r\n")[0].decode()
    assert run("-o", "/dev/null", "-w", "%{http_code}", "-H", "If-Modified-Since: " + lm,
               base + "/k1.bin") == b"304"


def test_tls_session(srv, root):
    """One TLS connection for many requests (keep-alive), ALPN http/1.1,
    bodies large enough to leave the one-write path (they go through the
    stream, not sendfile), byte-exact; a cleartext client on the TLS port is
    dropped and the TLS connection goes on."""
    ctx = tls_fixture.client_context(srv.certs.ca)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    c = http.client.HTTPSConnection("localhost", srv.port, timeout=WAIT, context=ctx)
    c.request("GET", "/k1.bin")
    r = c.getresponse()
    assert r.status == 200 and r.read() == bytes(range(256)) * 4
    sock, local = c.sock, c.sock.getsockname()
    assert sock.version() in ("TLSv1.2", "TLSv1.3"), sock.version()
    assert sock.selected_alpn_protocol() == "http/1.1", sock.selected_alpn_protocol()
    with open(os.path.join(root, "big.bin"), "rb") as f:
        big = f.read()
    for path, headers, status, body in [
            ("/big.bin", {}, 200, big),
            ("/big.bin", {"Range": "bytes=5000000-5099999"}, 206, big[5000000:5100000]),
            ("/big.bin", {"Range": "bytes=-16385"}, 206, big[-16385:]),
            ("/index.html", {}, 200, b"<h1>hello</h1>\n")]:
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        got = r.read()
        assert r.status == status and got == body, (path, headers, r.status, len(got))
    c.request("HEAD", "/big.bin")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"" and r.getheader("Content-Length") == str(len(big))
    assert c.sock is sock and sock.getsockname() == local, "keep-alive broke: a new connection"

    plain = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    plain.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    got = read_to_eof(plain, reset_ends=True)
    plain.close()
    assert not got.startswith(b"HTTP/") and b"hello" not in got, got

    c.request("GET", "/sub/a.txt")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"inside\n" and c.sock is sock
    c.close()


def test_tls_curl(srv, root):
    """curl, as a user would: --cacert, without it (refused), -k."""
    curl = shutil.which("curl")
    if not curl:
        print("curl not installed: skipped")
        return
    base = "https://localhost:%d" % srv.port

    def run(*args):
        return subprocess.run([curl, "-s", "-S", "--cacert", srv.certs.ca] + list(args),
                              capture_output=True, timeout=WAIT * 3)

    assert run(base + "/sub/a.txt").stdout == b"inside\n"
    with open(os.path.join(root, "big.bin"), "rb") as f:
        assert run(base + "/big.bin").stdout == f.read()
    assert run("-r", "4-9", base + "/k1.bin").stdout == (bytes(range(256)) * 4)[4:10]
    out = run("-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects} %{http_version}\n",
              base + "/sub/a.txt", base + "/k1.bin").stdout
    assert out.split() == [b"1", b"1.1", b"0", b"1.1"], out  # two URLs, one connection
    p = subprocess.run([curl, "-s", base + "/sub/a.txt"], capture_output=True, timeout=WAIT * 3)
    assert p.returncode == 60 and p.stdout == b"", p  # the test CA is not the system's
    p = subprocess.run([curl, "-s", "-k", base + "/sub/a.txt"], capture_output=True, timeout=WAIT * 3)
    assert p.returncode == 0 and p.stdout == b"inside\n", p
    p = subprocess.run([curl, "-s", "http://127.0.0.1:%d/sub/a.txt" % srv.port],
                       capture_output=True, timeout=WAIT * 3)
    assert p.returncode != 0 and b"inside" not in p.stdout, p  # cleartext: no answer


def test_tls_shutdown(srv, root):
    """SIGTERM with a client that connected and never started its handshake,
    one in the middle of a download and an idle keep-alive one: the idle one
    is closed at once, the download finishes, then the silent one is closed
    (it never reached a handler: httpd cannot tell it from a straggler
    before), and httpd exits 0 long before --grace or the handshake
    timeout."""
    silent = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    big = socket.socket()
    big.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big.settimeout(WAIT)
    big.connect(("127.0.0.1", srv.port))
    big = srv.ctx.wrap_socket(big, server_hostname="127.0.0.1")
    big.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    first = big.recv(4096)
    assert status_of(first) == 200
    idle = srv.conn()
    idle.request("GET", "/sub/a.txt")
    assert idle.getresponse().read() == b"inside\n"
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert idle.sock.recv(100) == b""
    got = first
    while True:
        chunk = big.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    with open(os.path.join(root, "big.bin"), "rb") as f:
        assert got.partition(b"\r\n\r\n")[2] == f.read()
    assert silent.recv(100) == b""
    rc = srv.proc.wait(WAIT)
    took = time.monotonic() - t0
    # Neither --grace (60 s) nor the handshake timeout (60 s) was waited for.
    assert rc == 0 and took < 30, (rc, took)
    return "stopped"


def test_tls_handshake_timeout(srv, root):
    """Started with --idle-timeout 0.5: a client that connects and never
    starts its handshake is closed after that, as a plain client that sends
    no request would be (not after the library's 60 s); others are served."""
    silent = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
    t0 = time.monotonic()
    try:
        assert silent.recv(100) == b""
    except ConnectionResetError:
        pass
    took = time.monotonic() - t0
    assert took >= 0.4, "closed after %.2f s, before --idle-timeout" % took
    silent.close()
    r, body = get(srv, "/sub/a.txt")
    assert r.status == 200 and body == b"inside\n"


TESTS = {
    "get_head_keepalive": (test_get_head_keepalive, ["--quiet"]),
    "pipelining": (test_pipelining, ["--quiet"]),
    "http10": (test_http10, ["--quiet"]),
    "last_modified": (test_last_modified, ["--quiet"]),
    "range": (test_range, ["--quiet"]),
    "traversal": (test_traversal, ["--quiet"]),
    "errors_and_limits": (test_errors_and_limits, ["--quiet", "--header-timeout", "2"]),
    "slow_headers": (test_slow_headers, ["--quiet", "--header-timeout", "0.5", "--idle-timeout", "0.5"]),
    "access_log": (test_access_log, []),
    "stalled_reader": (test_stalled_reader, ["--idle-timeout", "0.5"]),
    "graceful_shutdown": (test_graceful_shutdown, ["--quiet"]),
    "second_signal": (test_second_signal, ["--quiet"]),
    "loops": (test_loops, ["--quiet", "--loops", "2"]),
    "max_conns": (test_max_conns, ["--quiet", "--max-conns", "1"]),
    "curl": (test_curl, ["--quiet"]),
    "tls_session": (test_tls_session, ["--quiet"]),
    "tls_curl": (test_tls_curl, ["--quiet"]),
    "tls_shutdown": (test_tls_shutdown, ["--quiet", "--grace", "60"]),
    "tls_handshake_timeout": (test_tls_handshake_timeout, ["--quiet", "--idle-timeout", "0.5"]),
}
# The same tests over TLS: their clients come from Server.conn()/sock().
for _name in ["get_head_keepalive", "pipelining", "http10", "range", "slow_headers", "loops"]:
    TESTS["tls_" + _name] = TESTS[_name]


def main():
    binary, name = sys.argv[1], sys.argv[2]
    fn, args = TESTS[name]
    certs = tls_fixture.Certs(sys.argv[3]) if name.startswith("tls_") else None
    root, outside = make_root()
    srv = None
    try:
        srv = Server(binary, root, *args, certs=certs)
        if fn(srv, root) != "stopped":
            srv.stop()
        print("%s: ok" % name)
    finally:
        if srv:
            srv.kill()
        shutil.rmtree(root)
        shutil.rmtree(outside)
        if certs:
            certs.cleanup()


if __name__ == "__main__":
    main()
