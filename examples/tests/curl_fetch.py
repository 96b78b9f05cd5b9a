#!/usr/bin/env python3
"""Test for examples/curl-fetch: serves a temporary directory with Python's
http.server on 127.0.0.1, port 0 (the kernel picks a free one), runs
curl-fetch on many URLs at once and checks every line of its output.

usage: curl_fetch.py PATH/TO/curl-fetch
"""
import http.server
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":  # answers long after curl-fetch gave up
            time.sleep(30)
        return super().do_GET()

    def log_message(self, *args):
        pass


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as root:
        sizes = {}
        for i in range(20):
            size = 1000 * (i + 1) * (i + 1)  # 1 kB .. 400 kB
            name = f"f{i}.bin"
            with open(os.path.join(root, name), "wb") as f:
                f.write(os.urandom(size))
            sizes[name] = size

        handler = lambda *a, **kw: Handler(*a, directory=root, **kw)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()

        # a port nobody listens on: bind one, note it, close it
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        s.close()

        base = f"http://127.0.0.1:{port}"
        urls = [f"{base}/{n}" for n in sizes] + [f"{base}/missing", f"http://127.0.0.1:{dead}/x"]
        out = subprocess.run([exe] + urls, capture_output=True, text=True, timeout=60)
        lines = out.stdout.splitlines()
        assert len(lines) == len(urls), out.stdout + out.stderr
        for name, line in zip(sizes, lines):
            assert line == f"{base}/{name}: HTTP 200, {sizes[name]} bytes", line
        assert lines[-2].startswith(f"{base}/missing: HTTP 404"), lines[-2]
        assert lines[-1].startswith(f"http://127.0.0.1:{dead}/x: error: "), lines[-1]
        assert out.returncode == 1, out.returncode

        # all good => exit 0; a transfer that outlives --timeout is cancelled
        ok = subprocess.run([exe, f"{base}/f0.bin"], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and ok.stdout == f"{base}/f0.bin: HTTP 200, 1000 bytes\n", ok
        slow = subprocess.run([exe, "--timeout", "0.5", f"{base}/slow", f"{base}/f1.bin"],
                              capture_output=True, text=True, timeout=20)
        assert slow.stdout == (f"{base}/slow: timed out after 0.5 s (transfer cancelled)\n"
                               f"{base}/f1.bin: HTTP 200, 4000 bytes\n"), slow
        server.shutdown()
    print("curl-fetch: ok")


if __name__ == "__main__":
    main()
