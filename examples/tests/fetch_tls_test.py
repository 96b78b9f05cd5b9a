#!/usr/bin/env python3
"""examples/fetch over TLS, against local HTTPS servers of its own.

Usage: fetch_tls_test.py PATH/TO/fetch PATH/TO/gen-certs.sh [PATH/TO/httpd]

Makes the test certificates (tests/tls/gen-certs.sh), starts Python's
http.server wrapped in ssl on 127.0.0.1 port 0 (one per certificate: good,
expired, wrong name, untrusted) plus a plain one, and runs fetch the way a
user would: with --cacert, without it (the system's CAs do not know the test
CA), with --insecure. The per-URL lines must read exactly as for http://.
Then the hostile servers: one that accepts and never says a word (the
deadline covers the handshake), a plain HTTP server behind an https:// URL,
a body cut short without close_notify. Given examples/httpd, fetch also
gets files from it over TLS: aloop-tls at both ends. Loopback only;
everything is torn down at the end.
"""
import os
import re
import socket
import select
import signal
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import tls_fixture

SIZES = [0, 1, 4096, 16383, 16384, 16385, 100000, 4 * 1024 * 1024]
TIMEOUT = 1.5  # fetch -t for the server that never answers
stop = threading.Event()


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/alpn":  # 200 only when fetch asked for http/1.1
            proto = self.connection.selected_alpn_protocol()
            body = (proto or "none").encode()
            self.send_response(200 if proto == "http/1.1" else 421)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/resumed":  # 200 only on an abbreviated handshake
            self.send_response(200 if self.connection.session_reused else 409)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/truncated":  # 1000 of 100000 bytes, then no close_notify
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"t" * 1000)
            self.wfile.flush()
            raw = socket.socket(fileno=os.dup(self.connection.fileno()))
            raw.shutdown(socket.SHUT_RDWR)  # FIN at the TCP level, no TLS alert
            raw.close()
            self.close_connection = True
            return
        return super().do_GET()


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ctx, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.ctx = ctx

    def finish_request(self, request, client_address):
        # The handshake in the connection's own thread: a client that stalls
        # in it holds only that thread.
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


class Silent(socketserver.BaseRequestHandler):
    def handle(self):  # accepts, never answers (not even the handshake)
        stop.wait(60)


class PlainText(socketserver.BaseRequestHandler):
    def handle(self):  # an HTTP server answering a ClientHello
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def start(server):
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def fetch(binary, *args):
    p = subprocess.run([binary] + list(args), capture_output=True, text=True, timeout=60)
    print("$ fetch " + " ".join(args))
    print(p.stdout + p.stderr, end="")
    lines = p.stdout.splitlines()
    by_url = {line.split()[-1]: line for line in lines[:-1]}
    return p.returncode, by_url, lines[-1] if lines else "", p.stderr


def ok_line(line, size):
    m = re.match(r"200 +(\d+) B +[\d.]+ s +[\d.]+ MB/s  \S+$", line or "")
    return m is not None and int(m.group(1)) == size


def from_httpd(binary, httpd, certs, www):
    """fetch -> examples/httpd, both on aloop-tls: every size byte-counted,
    by name and by address, in one run; httpd stops cleanly after."""
    cert, key = certs.server
    srv = subprocess.Popen([httpd, "--port", "0", "--root", www, "--loops", "1", "--quiet",
                            "--tls-cert", cert, "--tls-key", key],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fail = []
    try:
        if not select.select([srv.stdout], [], [], 10)[0]:
            return ["httpd did not start"]
        port = int(srv.stdout.readline().decode().rsplit(":", 1)[1])
        urls = ["https://127.0.0.1:%d/f%d.bin" % (port, n) for n in SIZES]
        urls.append("https://localhost:%d/f100000.bin" % port)
        rc, by_url, total, _ = fetch(binary, "-c", "3", "--cacert", certs.ca, *urls)
        if rc != 0:
            fail.append("from httpd: exit %d" % rc)
        for u, n in zip(urls, SIZES + [100000]):
            if not ok_line(by_url.get(u), n):
                fail.append("from httpd: %s" % by_url.get(u))
        srv.send_signal(signal.SIGTERM)
        if srv.wait(10) != 0:
            fail.append("httpd exited %d: %s" % (srv.returncode, srv.stderr.read().decode()))
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    return fail


def main():
    binary, gen = sys.argv[1], sys.argv[2]
    httpd = sys.argv[3] if len(sys.argv) > 3 else None
    certs = tls_fixture.Certs(gen)
    www = tempfile.mkdtemp(prefix="fetch-tls-www-")
    for size in SIZES:
        with open(os.path.join(www, "f%d.bin" % size), "wb") as f:
            f.write(os.urandom(size))

    def handler(*a, **kw):
        return Handler(*a, directory=www, **kw)

    def tls_server(pair):
        return start(TLSServer(tls_fixture.server_context(pair, ["http/1.1"]), handler))

    servers = [tls_server(certs.server), tls_server(certs.expired),
               tls_server(certs.wrong_name), tls_server(certs.untrusted),
               start(ThreadingHTTPServer(("127.0.0.1", 0), handler)),
               start(socketserver.ThreadingTCPServer(("127.0.0.1", 0), Silent)),
               start(socketserver.ThreadingTCPServer(("127.0.0.1", 0), PlainText))]
    good, expired, wrong, untrusted, plain, silent, text = \
        ["127.0.0.1:%d" % s.server_address[1] for s in servers]
    fail = []

    def check(cond, what):
        if not cond:
            fail.append(what)

    try:
        # 1. Verified against the test CA, by IP address and by name, beside
        # plain http://: the same lines, exit 0.
        urls = ["https://%s/f%d.bin" % (good, n) for n in SIZES]
        urls += ["https://localhost:%s/f4096.bin" % good.split(":")[1],
                 "https://%s/alpn" % good, "http://%s/f100000.bin" % plain]
        rc, by_url, total, _ = fetch(binary, "-c", "4", "--cacert", certs.ca, *urls)
        check(rc == 0, "verified run: exit %d, want 0" % rc)
        for n in SIZES:
            check(ok_line(by_url.get("https://%s/f%d.bin" % (good, n)), n), "size %d" % n)
        check(ok_line(by_url.get(urls[-3]), 4096), "by name (localhost)")
        check(ok_line(by_url.get(urls[-2]), len("http/1.1")), "ALPN http/1.1 was not offered")
        check(ok_line(by_url.get(urls[-1]), 100000), "http:// beside https://")
        check(re.match(r"total: %d URLs, %d ok, 0 failed, %d bytes in " %
                       (len(urls), len(urls), sum(SIZES) + 4096 + 8 + 100000), total),
              "total line: " + total)

        # One after the other (-c 1), the second and third connection to the
        # same server resume the first one's session (fetch shares one
        # config between its requests).
        urls = ["https://%s/f1.bin" % good] + ["https://%s/resumed" % good] * 2
        rc, _, total, _ = fetch(binary, "-c", "1", "--cacert", certs.ca, *urls)
        check(rc == 0 and total.startswith("total: 3 URLs, 3 ok"), "session resumption: " + total)

        # 2. Refused certificates: a clear error line, exit 1.
        other_ca = certs.other_ca  # not the CA that signed the good server
        for what, args, url, words in [
                ("the wrong CA", ["--cacert", other_ca], good, "certificate"),
                ("the system's CAs only", [], good, "certificate"),
                ("an expired certificate", ["--cacert", certs.ca], expired, "expired"),
                ("a certificate for another address", ["--cacert", certs.ca], wrong, "ip address"),
                ("a certificate for another name", ["--cacert", certs.ca],
                 "localhost:" + wrong.split(":")[1], "hostname"),
                ("an untrusted issuer", ["--cacert", certs.ca], untrusted, "certificate")]:
            u = "https://%s/f1.bin" % url
            rc, by_url, _, _ = fetch(binary, "-t", "10", *(args + [u]))
            line = by_url.get(u, "")
            check(rc == 1, "%s: exit %d, want 1" % (what, rc))
            check(line.startswith("ERR TLS: ") and words in line.lower(),
                  "%s: want 'ERR TLS: ...%s...': %s" % (what, words, line))

        # 3. --insecure accepts what verification refused.
        urls = ["https://%s/f16385.bin" % h for h in (untrusted, expired, wrong)]
        rc, by_url, _, _ = fetch(binary, "--insecure", *urls)
        check(rc == 0, "--insecure: exit %d, want 0" % rc)
        for u in urls:
            check(ok_line(by_url.get(u), 16385), "--insecure: " + u)

        # 4. Hostile servers: the deadline covers the handshake; a plain
        # server is a TLS error; a body cut short without close_notify is an
        # error with the bytes that did arrive.
        hang, bogus, cut = ("https://%s/x" % silent, "https://%s/x" % text,
                            "https://%s/truncated" % good)
        rc, by_url, _, _ = fetch(binary, "-t", str(TIMEOUT), "-k", hang, bogus, cut)
        check(rc == 1, "hostile: exit %d, want 1" % rc)
        m = re.match(r"ERR timed out after ([\d.]+) s", by_url.get(hang, ""))
        check(m and TIMEOUT <= float(m.group(1)) < TIMEOUT + 2, "silent server: %s" % by_url.get(hang))
        check(by_url.get(bogus, "").startswith("ERR TLS: "), "plain server: %s" % by_url.get(bogus))
        line = by_url.get(cut, "")
        check(line.startswith("ERR ") and "(1000 B)" in line, "truncated body: %s" % line)

        if httpd:
            fail += from_httpd(binary, httpd, certs, www)

        # 5. Bad --cacert files: bad usage (2), the file named.
        junk = os.path.join(www, "f100000.bin")
        for path in ["/nonexistent/ca.pem", junk]:
            rc, _, _, err = fetch(binary, "--cacert", path, "https://%s/f1.bin" % good)
            check(rc == 2 and path in err, "--cacert %s: exit %d, %s" % (path, rc, err.strip()))
    finally:
        stop.set()
        for s in servers:
            s.shutdown()
            s.server_close()
        for name in os.listdir(www):
            os.unlink(os.path.join(www, name))
        os.rmdir(www)
        certs.cleanup()
    for f in fail:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
