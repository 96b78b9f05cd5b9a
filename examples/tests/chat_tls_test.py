#!/usr/bin/env python3
"""examples/chat over TLS (--tls-cert/--tls-key), with real TLS clients.

Usage: chat_tls_test.py PATH/TO/chat PATH/TO/gen-certs.sh

Starts chat on 127.0.0.1 port 0 with the test server certificate, then: one
client is `openssl s_client` (what the chat's usage text tells people to
use), the other Python's ssl module, both verifying the server against the
test CA. They pick names, chat both ways, /who; meanwhile a plain-TCP client
that speaks cleartext to the TLS port is dropped without a byte of the chat
reaching it, a joined client that sends a forged record and one that
vanishes without close_notify are told apart from the room ("left"), and a
client that connects and never starts its handshake sits there: none of
them disturbs the others nor the shutdown (SIGTERM: everyone is told, exit
0). Waits are on lines and EOF; WAIT only bounds a failure.
"""
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time

import tls_fixture

WAIT = 10.0


class LineReader:
    """Lines from a file descriptor (a pipe or a socket's fileno), with a
    deadline per line."""

    def __init__(self, read, fileno, name):
        self.read, self.fileno, self.name, self.buf = read, fileno, name, b""

    def line(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fileno], [], [], left)[0]:
                raise AssertionError("%s: no line in %.0f s; have %r" % (self.name, timeout, self.buf))
            data = self.read()
            if not data:
                raise AssertionError("%s: EOF; have %r" % (self.name, self.buf))
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def expect(self, prefix, timeout=WAIT):
        """Skips lines until one starts with prefix (the bot is off, so only
        joins and leaves of others can come in between)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(deadline - time.monotonic(), 0.01))
            if line.startswith(prefix):
                return line
            seen.append(line)
            if len(seen) > 20:
                raise AssertionError("%s: no %r in %r" % (self.name, prefix, seen))


class SClient:
    """openssl s_client, as a person would run it."""

    def __init__(self, port, ca):
        self.proc = subprocess.Popen(
            ["openssl", "s_client", "-quiet", "-connect", "127.0.0.1:%d" % port,
             "-servername", "localhost", "-verify_hostname", "localhost",
             "-CAfile", ca, "-verify_return_error"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = self.proc.stdout
        self.r = LineReader(lambda: os.read(out.fileno(), 4096), out.fileno(), "s_client")

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class PyClient:
    def __init__(self, port, ca):
        ctx = tls_fixture.client_context(ca)
        raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.sock.setblocking(False)

        def read():
            while True:
                try:
                    return self.sock.recv(4096)
                except ssl.SSLWantReadError:
                    if not select.select([self.sock], [], [], WAIT)[0]:
                        raise
        self.r = LineReader(read, self.sock.fileno(), "python ssl")

    def send(self, text):
        self.sock.setblocking(True)
        self.sock.sendall(text.encode())
        self.sock.setblocking(False)


def plain_client_is_dropped(port):
    """A cleartext client on the TLS port: the server ends the connection
    (its handshake fails) and nothing of the chat reaches it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    s.sendall(b"mallory\r\nhello everyone\r\n")
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("the plain client was not dropped; got %r" % got)
    s.close()
    assert b"Welcome" not in got and b"mallory" not in got, got


def handshake_deadline(binary, certs):
    """--name-timeout bounds the handshake too: a client that connects and
    never sends a ClientHello is closed after it (not after the library's
    60 s), while a real client is served."""
    cert, key = certs.server
    srv = subprocess.Popen([binary, "--port", "0", "--bot-interval", "0", "--name-timeout", "0.5",
                            "--tls-cert", cert, "--tls-key", key],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = srv.stdout
        line = LineReader(lambda: os.read(out.fileno(), 4096), out.fileno(), "chat").line()
        port = int(line.rsplit(":", 1)[1])
        silent = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        t0 = time.monotonic()
        try:
            assert silent.recv(100) == b"", "the silent client got bytes"
        except socket.timeout:
            raise AssertionError("a silent client was not closed after --name-timeout")
        except ConnectionResetError:
            pass
        took = time.monotonic() - t0
        assert took >= 0.4, "closed after %.2f s, before --name-timeout" % took
        silent.close()
        c = PyClient(port, certs.ca)
        c.r.expect("Welcome to aloop chat!")
        srv.send_signal(signal.SIGTERM)
        assert srv.wait(WAIT) == 0
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def main():
    binary, gen = sys.argv[1], sys.argv[2]
    certs = tls_fixture.Certs(gen)
    cert, key = certs.server
    srv = subprocess.Popen([binary, "--port", "0", "--bot-interval", "0",
                            "--tls-cert", cert, "--tls-key", key],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    clients = []
    try:
        out = srv.stdout
        line = LineReader(lambda: os.read(out.fileno(), 4096), out.fileno(), "chat").line()
        assert line.startswith("listening on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])

        # Connects and never sends a ClientHello: holds one handshake.
        silent = socket.create_connection(("127.0.0.1", port), timeout=WAIT)

        a = SClient(port, certs.ca)
        clients.append(a)
        a.r.expect("Welcome to aloop chat!")
        a.send("alice\n")
        assert a.r.expect("* welcome alice").startswith("* welcome alice (1 online")

        b = PyClient(port, certs.ca)
        assert b.sock.version() in ("TLSv1.2", "TLSv1.3"), b.sock.version()
        b.r.expect("Welcome to aloop chat!")
        b.send("bob\n")
        assert b.r.expect("* welcome bob").startswith("* welcome bob (2 online")
        a.r.expect("* bob joined")

        plain_client_is_dropped(port)

        a.send("hello from s_client\n")
        assert b.r.expect("alice:") == "alice: hello from s_client"
        b.send("hi alice, from python\n")
        assert a.r.expect("bob:") == "bob: hi alice, from python"
        b.send("/who\n")
        who = b.r.expect("* online")
        assert who in ("* online (2): alice, bob", "* online (2): bob, alice"), who

        # Joined clients that misbehave below TLS: a forged application-data
        # record (the server cannot decrypt it: -EPROTO), and a TCP close
        # without close_notify (-ECONNRESET). Each just leaves.
        for name, misbehave in [
                ("eve", lambda raw: raw.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)),
                ("mallory", lambda raw: raw.shutdown(socket.SHUT_RDWR))]:
            c = PyClient(port, certs.ca)
            c.r.expect("Welcome to aloop chat!")
            c.send(name + "\n")
            c.r.expect("* welcome " + name)
            a.r.expect("* %s joined" % name)
            raw = socket.socket(fileno=os.dup(c.sock.fileno()))
            misbehave(raw)
            a.r.expect("* %s left" % name)
            raw.close()
            c.sock.close()
        a.send("still here?\n")
        assert b.r.expect("alice:") == "alice: still here?"

        b.send("/quit\n")
        b.r.expect("* bye bob")
        a.r.expect("* bob left")

        srv.send_signal(signal.SIGTERM)
        a.r.expect("* server shutting down, bye")
        rc = srv.wait(WAIT)
        assert rc == 0, "chat exited %d: %s" % (rc, srv.stderr.read().decode())
        silent.close()
        handshake_deadline(binary, certs)
        print("chat over TLS: ok")
    finally:
        for c in clients:
            c.close()
        if srv.poll() is None:
            srv.kill()
            srv.wait()
        certs.cleanup()


if __name__ == "__main__":
    main()
