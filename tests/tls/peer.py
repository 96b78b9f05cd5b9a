#!/usr/bin/env python3
"""peer.py - TLS peers for tests/test_tls_peers.c, with Python's ssl module.

    peer.py server MODE [options]   listens on --host (127.0.0.1) port 0,
                                    prints "ready PORT"
    peer.py client MODE --port P    connects to 127.0.0.1:P

Every step is reported on stdout, one line each, so that the test can
synchronise on events rather than on time. The payload of the byte-exact
modes is the pattern byte i = i % 251 (the test makes the same).

Server modes (one connection each):
  echo        echo until close_notify, answer with close_notify
  nonotify    send --size bytes, then close the TCP connection without
              close_notify
  truncate    send one record, half of the next one, then close
  silent      read the ClientHello, never answer

Client modes:
  echo        send --size bytes, read them back, close_notify
  garbage     an HTTP request instead of a ClientHello
  stall       half a ClientHello, then nothing until the server closes
  trickle     a ClientHello one byte per 50 ms (slowloris)
  nonotify    send --size bytes in full records, then FIN, no close_notify
  truncate    one record and half of the next one, then FIN
  badrecord   one record, then one whose authentication tag is wrong
  tiny        --size records of 1 byte each in one burst, then read the
              echo back
  halfclose   send --size bytes, close_notify, then read the answer until
              the server's close_notify
Stdin reaching EOF (the test went away) ends the peer at once.
"""
import argparse
import os
import select
import socket
import ssl
import sys
import threading

WAIT = 60.0  # longest any expected event may take


def say(*words):
    print(*words, flush=True)


def pattern(n):
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]


def watch_stdin():
    """Exits the process when the test closes our stdin (or dies)."""
    def run():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os._exit(3)
    threading.Thread(target=run, daemon=True).start()


def versions(ctx, a):
    names = {"1.1": ssl.TLSVersion.TLSv1_1, "1.2": ssl.TLSVersion.TLSv1_2,
             "1.3": ssl.TLSVersion.TLSv1_3}
    if a.tls:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # TLS 1.1 needs SHA-1
        ctx.minimum_version = names[a.tls]
        ctx.maximum_version = names[a.tls]


def make_ctx(a, server):
    if server:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        if a.ca:
            ctx.load_verify_locations(a.ca)
        if a.require_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.sni_callback = lambda sock, name, c: setattr(sock, "sni_seen", name)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if a.ca:
            ctx.load_verify_locations(a.ca)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if a.cert:
            ctx.load_cert_chain(a.cert, a.key)
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    versions(ctx, a)
    return ctx


class Raw:
    """TLS over memory BIOs: we see and send the records ourselves."""

    def __init__(self, sock, ctx, server_side, name=None):
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.outg = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.outg, server_side=server_side,
                                server_hostname=name)

    def pending_out(self):
        return self.outg.read()

    def flush(self):
        data = self.outg.read()
        if data:
            self.sock.sendall(data)

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            self.inc.write_eof()
        else:
            self.inc.write(data)
        return bool(data)

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                if not self.fill():
                    raise EOFError("EOF in the handshake")

    def records(self, data, size=None):
        """data as records of at most size bytes (raw bytes, not sent)."""
        size = size or len(data)
        for i in range(0, len(data), size):
            self.obj.write(data[i:i + size])
        return self.outg.read()

    def read(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                self.flush()
                self.fill()
            except ssl.SSLZeroReturnError:
                return b""


def wait_closed(sock):
    """Reads until the other side closes: 'closed eof', 'closed reset', or
    'timeout' (the test fails on that)."""
    sock.settimeout(WAIT)
    got = 0
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                say("closed", "eof", got)
                return
            got += len(data)
    except ConnectionResetError:
        say("closed", "reset", got)
    except socket.timeout:
        say("timeout")


def read_exactly(s, n):
    buf = bytearray()
    while len(buf) < n:
        data = s.recv(n - len(buf))
        if not data:
            break
        buf += data
    return bytes(buf)


def describe(s):
    say("handshake", "version=%s" % s.version(),
        "alpn=%s" % (s.selected_alpn_protocol() or "-"),
        "sni=%s" % (getattr(s, "sni_seen", None) or "-"))


# ---- servers

def serve(a):
    ctx = make_ctx(a, server=True)
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.bind((a.host, 0))
    lsock.listen(8)
    say("ready", lsock.getsockname()[1])
    conn, _ = lsock.accept()
    conn.settimeout(WAIT)
    if a.mode == "silent":  # reads the ClientHello, never answers
        say("accepted")
        wait_closed(conn)
        return
    if a.mode in ("nonotify", "truncate"):
        raw = Raw(conn, ctx, server_side=True)
        try:
            raw.handshake()
        except (ssl.SSLError, EOFError, OSError) as e:
            say("handshake-error", e)
            return
        describe(raw.obj)
        if a.mode == "truncate":
            first = raw.records(b"x")
            data = first + raw.records(b"y" * 100)
            data = data[:len(first) + 40]
        else:
            data = raw.records(pattern(a.size), 1000)
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        say("sent", len(data))
        wait_closed(conn)
        return
    try:
        s = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
    except (ssl.SSLError, OSError) as e:
        say("handshake-error", e)
        return
    describe(s)
    total = 0
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            s.sendall(data)
            total += len(data)
        say("eof", "clean", total)
        s.unwrap()
        say("done", total)
    except (ssl.SSLError, OSError) as e:
        say("error", total, e)


# ---- clients

def connect(a):
    sock = socket.create_connection((a.host, a.port), timeout=WAIT)
    return sock


def client(a):
    ctx = make_ctx(a, server=False)
    sock = connect(a)
    name = a.name if a.ca else None
    if a.mode == "garbage":
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" + bytes(range(256)) * 4)
        say("sent")
        wait_closed(sock)
        return
    if a.mode == "trickle":
        raw = Raw(sock, ctx, server_side=False, name=name)
        try:
            raw.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = raw.pending_out()
        say("trickling", len(hello))
        for i in range(len(hello)):
            try:
                sock.sendall(hello[i:i + 1])
                if select.select([sock], [], [], 0.05)[0] and not sock.recv(4096):
                    say("closed", "eof", i + 1)
                    return
            except OSError as e:
                say("closed", "error", i + 1, e)
                return
        say("completed")  # the server let a 0.05 s/byte ClientHello through
        return
    if a.mode == "stall":
        raw = Raw(sock, ctx, server_side=False, name=name)
        try:
            raw.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = raw.pending_out()
        sock.sendall(hello[:len(hello) // 2])
        say("stalled", len(hello) // 2)
        wait_closed(sock)
        return
    if a.mode in ("nonotify", "truncate", "tiny", "halfclose", "badrecord"):
        raw = Raw(sock, ctx, server_side=False, name=name)
        try:
            raw.handshake()
        except (ssl.SSLError, EOFError, OSError) as e:
            say("handshake-error", e)
            return
        describe(raw.obj)
        if a.mode == "nonotify":
            data = raw.records(pattern(a.size), 1000)
        elif a.mode == "truncate":
            first = raw.records(b"x")
            data = first + raw.records(b"y" * 100)
            data = data[:len(first) + 40]
        elif a.mode == "badrecord":
            data = raw.records(b"x")
            bad = bytearray(raw.records(b"y" * 100))
            bad[-1] ^= 1  # its authentication tag no longer matches
            data += bytes(bad)
        elif a.mode == "tiny":
            data = raw.records(pattern(a.size), 1)
        else:
            data = raw.records(pattern(a.size))
            try:
                raw.obj.unwrap()  # close_notify out; theirs not yet in
            except ssl.SSLWantReadError:
                pass
            data += raw.pending_out()
        sock.sendall(data)
        say("sent", len(data))
        if a.mode == "halfclose":
            reply = bytearray()
            try:
                while True:
                    chunk = raw.read(65536)
                    if not chunk:
                        break
                    reply += chunk
                say("reply", len(reply), reply.decode(errors="replace").strip())
                say("eof", "clean")
            except (ssl.SSLError, OSError) as e:
                say("reply", len(reply), reply.decode(errors="replace").strip())
                say("error", e)
            return
        if a.mode == "tiny":
            back = bytearray()
            while len(back) < a.size:
                chunk = raw.read(a.size - len(back))
                if not chunk:
                    break
                back += chunk
            say("echo", "ok" if bytes(back) == pattern(a.size) else "bad", len(back))
            return
        if a.mode != "badrecord":
            sock.shutdown(socket.SHUT_WR)
        wait_closed(sock)
        return
    # echo
    try:
        s = ctx.wrap_socket(sock, server_hostname=name, suppress_ragged_eofs=False)
    except (ssl.SSLError, OSError) as e:
        say("handshake-error", e)
        return
    describe(s)
    data = pattern(a.size)
    try:
        s.sendall(data)
        back = read_exactly(s, a.size)
        say("echo", "ok" if back == data else "bad", len(back))
        s.unwrap()
        say("done")
    except (ssl.SSLError, OSError) as e:
        say("error", e)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("mode")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--name", default="localhost")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--require-cert", action="store_true")
    p.add_argument("--alpn")
    p.add_argument("--tls", choices=["1.1", "1.2", "1.3"])
    p.add_argument("--size", type=int, default=100000)
    a = p.parse_args()
    watch_stdin()
    try:
        serve(a) if a.role == "server" else client(a)
    except Exception as e:  # reported, so that the test shows it
        say("exception", type(e).__name__, e)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
