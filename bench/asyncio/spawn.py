#!/usr/bin/env python3
"""spawn.py - bench/spawn's workload in Python asyncio (stdlib only):
children per second, create_subprocess_exec("/bin/true") + wait, one at a
time and 16 at once."""
import argparse
import asyncio
import time

CONCURRENT = 16


async def spawner(n):
    for _ in range(n):
        p = await asyncio.create_subprocess_exec("/bin/true")
        if await p.wait() != 0:
            raise SystemExit("spawn.py: /bin/true failed")


async def run(n, tasks):
    t0 = time.monotonic()
    await asyncio.gather(*(spawner(n // tasks) for _ in range(tasks)))
    return (n // tasks * tasks) / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="320 children (default 2000)")
    ap.add_argument("-n", type=int, default=None, help="children")
    args = ap.parse_args()
    n = args.n or (320 if args.quick else 2000)
    seq = asyncio.run(run(n, 1))
    conc = asyncio.run(run(n, CONCURRENT))
    print(f"spawn (asyncio): /bin/true, {n} children")
    print(f"  {'figure':<40} {'child/s':>12}")
    print(f"  {'spawn + wait, one at a time':<40} {seq:>12.0f}")
    print(f"  {'spawn + wait, 16 at once':<40} {conc:>12.0f}")
    print(f"RESULT name=spawn_seq unit=child/s value={seq:.0f}")
    print(f"RESULT name=spawn_16 unit=child/s value={conc:.0f}")


if __name__ == "__main__":
    main()
