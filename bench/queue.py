#!/usr/bin/env python3
"""queue.py - bench/queue's workload in Python asyncio (stdlib only).

One producer task puts N integers into an asyncio.Queue(maxsize=64), one
consumer task gets them. Prints CPU ns per item (producer start to
consumer done; CPU time, as bench/queue measures it) and a
`RESULT name=queue unit=ns value=...` line, like bench/queue.

  queue.py                 1,000,000 items
  queue.py --quick         100,000 items
  queue.py --items N --maxsize M
"""
import argparse
import asyncio
import time


async def producer(q, n):
    for i in range(n):
        await q.put(i)


async def consumer(q, n):
    for _ in range(n):
        await q.get()


async def run(n, maxsize):
    q = asyncio.Queue(maxsize=maxsize)
    t0 = time.process_time_ns()
    await asyncio.gather(producer(q, n), consumer(q, n))
    return (time.process_time_ns() - t0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--maxsize", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="100,000 items")
    args = ap.parse_args()
    n = 100_000 if args.quick else args.items
    ns = asyncio.run(run(n, args.maxsize))
    print(f"asyncio.Queue(maxsize={args.maxsize}), {n:,} items: {ns:.1f} CPU ns/item")
    print(f"RESULT name=queue unit=ns value={ns:.1f}")


if __name__ == "__main__":
    main()
