#!/usr/bin/env python3
"""proxy.py - examples/proxy.c in Python asyncio, for comparing the two: a
TCP relay, both directions, the half-close passed on, a connect deadline,
a connection limit, graceful SIGINT/SIGTERM.

    python3 proxy.py --listen HOST:PORT --to HOST:PORT [--max-conns N]

asyncio's start_server has no connection limit: a semaphore in the handler
bounds the relays, but every connection is still accepted.
"""
import argparse
import asyncio
import signal

CONNECT_TIMEOUT = 5.0
GRACE = 10.0


# ---- main loop (compared with examples/proxy.c) ----
async def pump(reader, writer, other):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
    except OSError:
        other.cancel()


async def relay(creader, cwriter, to, slots):
    async with slots:
        try:
            ureader, uwriter = await asyncio.wait_for(asyncio.open_connection(*to),
                                                      CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            cwriter.close()
            return
        back = asyncio.ensure_future(pump(ureader, cwriter, asyncio.current_task()))
        try:
            await pump(creader, uwriter, back)
            await back
        finally:
            back.cancel()
            uwriter.close()
            cwriter.close()


async def main(listen, to, max_conns):
    slots = asyncio.Semaphore(max_conns or 1 << 30)
    conns = set()

    async def handle(reader, writer):
        conns.add(asyncio.current_task())
        try:
            await relay(reader, writer, to, slots)
        finally:
            conns.discard(asyncio.current_task())
    server = await asyncio.start_server(handle, *listen)
    print("proxy: listening on %s:%d" % (listen[0], server.sockets[0].getsockname()[1]), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    if conns:
        _, late = await asyncio.wait(conns, timeout=GRACE)
        for t in late:
            t.cancel()
        await asyncio.gather(*late, return_exceptions=True)
# ---- end of the main loop ----


def hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=hostport, required=True)
    ap.add_argument("--to", type=hostport, required=True)
    ap.add_argument("--max-conns", type=int, default=0)
    a = ap.parse_args()
    asyncio.run(main(a.listen, a.to, a.max_conns))
