#!/usr/bin/env python3
"""End-to-end test of examples/fetch against a local HTTP server of its own.

Usage: fetch_test.py PATH/TO/fetch

Starts a threaded HTTP/1.1 server on 127.0.0.1, port 0, serving a temporary
directory of generated files (one of 20 MB, sent at a limited rate so that it
is still downloading when the deadline of the next URL passes), chunked
responses, a URL that never answers, and a port that refuses. Runs
`fetch -c 5 -t TIMEOUT` on 20 URLs and checks every line of its report and
the total. Then a raw server answers with interim (1xx) responses and
bad framing, and each must be a clear error or the right final response,
never a 2xx with a guessed length. Loopback only; everything is torn down
at the end.
"""
import os
import re
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

TIMEOUT = 5.0              # fetch -t
BIG = 20 * 1024 * 1024     # the 20 MB file
BIG_RATE = 16 * 1024 * 1024  # bytes per second the big file is sent at
SIZES = [0, 1, 100, 1000, 4095, 4096, 4097, 10000, 65536, 100000, 300000,
         1000000, 2000000, 5000000, 8000000]
CHUNKED = [0, 123457]
stop = threading.Event()


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/hang":
            stop.wait(60)  # never answers (until the test ends)
            self.close_connection = True
            return
        m = re.fullmatch(r"/chunked/(\d+)", self.path)
        if m:
            return self.send_chunked(int(m.group(1)))
        if self.path == "/big.bin":
            return self.send_big()
        return super().do_GET()

    def send_chunked(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent, size, first = 0, 1, True
        while sent < n:
            k = min(size, n - sent)
            ext = ";name=value" if first else ""
            self.wfile.write(b"%x%s\r\n" % (k, ext.encode()) + b"x" * k + b"\r\n")
            sent, size, first = sent + k, size * 3 + 1, False
        self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        self.close_connection = True

    def send_big(self):
        path = os.path.join(self.directory, "big.bin")
        self.send_response(200)
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.end_headers()
        piece = 256 * 1024
        with open(path, "rb") as f:
            while not stop.is_set():
                data = f.read(piece)
                if not data:
                    break
                self.wfile.write(data)
                time.sleep(piece / BIG_RATE)
        self.close_connection = True


# Raw responses, by path: (the response bytes, what fetch must report: a
# (status, bytes) pair, or a fragment of its error message).
HOSTILE = {
    "/early-hints": (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", (200, 5)),
    "/continue": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
                  b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", (200, 3)),
    "/same-length-twice": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
                           b"hello", (200, 5)),
    "/length-list": (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", (200, 5)),
    "/empty-length": (b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nhello", "Content-Length"),
    "/conflicting-lengths": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                             b"hello!", "Content-Length"),
    "/conflicting-list": (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
                          "Content-Length"),
    "/signed-length": (b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "Content-Length"),
    "/space-before-colon": (b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
                            "malformed header"),
    "/folded": (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n Content-Length: 5\r\n\r\nhello", "folding"),
    "/gzip-chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                      b"5\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding"),
    "/chunked-twice": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                       "Transfer-Encoding"),
    "/chunked-and-length": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                            b"Content-Length: 100\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                            "both Transfer-Encoding and Content-Length"),
    "/switching": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nhello", "101"),
    "/endless-interim": (b"HTTP/1.1 100 Continue\r\n\r\n" * 40
                         + b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", "interim"),
}


class RawHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data = b""
        while b"\r\n\r\n" not in data:
            more = self.request.recv(4096)
            if not more:
                return
            data += more
        path = data.split(b" ")[1].decode()
        self.request.sendall(HOSTILE[path][0])


def hostile_run(fetch):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RawHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        out = subprocess.run([fetch, "-c", "4", "-t", str(TIMEOUT)] +
                             [base + p for p in HOSTILE],
                             capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    print(out.stdout, end="")
    fail = []
    by_url = {line.split()[-1]: line for line in out.stdout.splitlines()[:-1]}
    for path, (_, want) in HOSTILE.items():
        line = by_url.get(base + path, "")
        if isinstance(want, tuple):
            m = re.match(r"(\d+) +(\d+) B ", line)
            if not m or (int(m.group(1)), int(m.group(2))) != want:
                fail.append("%s: want %d and %d bytes: %s" % (path, want[0], want[1], line))
        elif not line.startswith("ERR ") or want not in line:
            fail.append("%s: want an error about %r: %s" % (path, want, line))
    return fail


def refused_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def main():
    fetch = sys.argv[1]
    with tempfile.TemporaryDirectory() as www:
        with open(os.path.join(www, "big.bin"), "wb") as f:
            block = os.urandom(1024 * 1024)
            for _ in range(BIG // len(block)):
                f.write(block)
        for size in SIZES:
            with open(os.path.join(www, "f%d.bin" % size), "wb") as f:
                f.write(os.urandom(size))

        def handler(*a, **kw):
            return Handler(*a, directory=www, **kw)

        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = "http://127.0.0.1:%d" % server.server_address[1]
        expect = {base + "/big.bin": BIG, base + "/hang": None}
        for size in SIZES:
            expect[base + "/f%d.bin" % size] = size
        for n in CHUNKED:
            expect[base + "/chunked/%d" % n] = n
        refused = "http://127.0.0.1:%d/x" % refused_port()
        expect[refused] = None
        urls = list(expect)  # big and hang first: they run side by side
        assert len(urls) == 20, len(urls)
        try:
            t0 = time.monotonic()
            out = subprocess.run([fetch, "-c", "5", "-t", str(TIMEOUT)] + urls,
                                 capture_output=True, text=True, timeout=60)
            wall = time.monotonic() - t0
        finally:
            stop.set()
            server.shutdown()
            server.server_close()
    print(out.stdout, end="")
    print(out.stderr, end="", file=sys.stderr)
    fail = []
    if out.returncode != 1:
        fail.append("exit status %d, want 1 (two URLs fail)" % out.returncode)
    lines = out.stdout.splitlines()
    by_url = {}
    for line in lines[:-1]:
        url = line.split()[-1]
        if url in by_url:
            fail.append("two lines for " + url)
        by_url[url] = line
    for url, size in expect.items():
        line = by_url.get(url)
        if line is None:
            fail.append("no line for " + url)
            continue
        if size is not None:
            m = re.match(r"200 +(\d+) B +[\d.]+ s +[\d.]+ MB/s  ", line)
            if not m or int(m.group(1)) != size:
                fail.append("want 200 and %d bytes: %s" % (size, line))
    hang = by_url.get(base + "/hang", "")
    m = re.match(r"ERR timed out after ([\d.]+) s", hang)
    if not m or not TIMEOUT <= float(m.group(1)) < TIMEOUT + 2.0:
        fail.append("the never-answering URL did not time out on time: " + hang)
    if not by_url.get(refused, "").startswith("ERR Connection refused"):
        fail.append("the refused port: " + by_url.get(refused, ""))
    # The 20 MB download was under way beside the hanging request and
    # completed before its deadline passed.
    order = [line.split()[-1] for line in lines[:-1]]
    if base + "/big.bin" in order and base + "/hang" in order and \
            order.index(base + "/big.bin") > order.index(base + "/hang"):
        fail.append("the 20 MB download finished after the hanging URL timed out")
    total = lines[-1] if lines else ""
    m = re.match(r"total: 20 URLs, 18 ok, 2 failed, (\d+) bytes in ([\d.]+) s, [\d.]+ MB/s$", total)
    if not m or int(m.group(1)) != sum(v for v in expect.values() if v):
        fail.append("total line: " + total)
    if wall > 40:
        fail.append("took %.1f s" % wall)
    fail += hostile_run(fetch)
    for f in fail:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
