#!/usr/bin/env python3
"""echo.py - bench/echo's server in Python asyncio (stdlib only): a TCP echo
server on loopback with a coroutine per connection (asyncio streams). It
prints `PORT <n>` once listening and serves until killed (or --seconds).
Load it with the C load generator: `bench/echo --connect 127.0.0.1:<n>`."""
import argparse
import asyncio
import sys


async def serve_one(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(port, seconds):
    server = await asyncio.start_server(serve_one, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        if seconds > 0:
            await asyncio.sleep(seconds)
        else:
            await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any)")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0 = never)")
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.port, args.seconds))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
