#!/usr/bin/env python3
"""switch.py - bench/switch's workloads in Python asyncio (stdlib only).

  yield        two tasks doing `await asyncio.sleep(0)` in turn: ns per yield
  spawn_await  `await asyncio.create_task(trivial())`, one at a time
  spawn_batch  create 1,000 tasks, then await them all

Each figure is the median of 3 rounds. Prints a human table and one
`RESULT name=... unit=ns value=...` line per figure, like the C program.
"""
import argparse
import asyncio
import statistics
import time


async def yielder(n):
    for _ in range(n):
        await asyncio.sleep(0)


async def bench_yield(n):
    each = n // 2
    t0 = time.perf_counter_ns()
    await asyncio.gather(yielder(each), yielder(each))
    return (time.perf_counter_ns() - t0) / (2 * each)


async def trivial():
    return None


async def bench_spawn(n, batch):
    # a warm-up round, as in the C benchmark
    for _ in range(4):
        await asyncio.gather(*[asyncio.create_task(trivial()) for _ in range(batch)])
    t0 = time.perf_counter_ns()
    if batch == 1:
        for _ in range(n):
            await asyncio.create_task(trivial())
    else:
        for _ in range(n // batch):
            tasks = [asyncio.create_task(trivial()) for _ in range(batch)]
            for t in tasks:
                await t
        n = n - n % batch
    return (time.perf_counter_ns() - t0) / n


def median_of(rounds, fn, *args):
    return statistics.median(asyncio.run(fn(*args)) for _ in range(rounds))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("-n", type=int, default=None, help="iterations (default 200,000)")
    args = ap.parse_args()
    n = args.n or (20000 if args.quick else 200000)
    rounds = 3
    figs = [
        ("yield", "sleep(0), 2 tasks", median_of(rounds, bench_yield, 2 * n)),
        ("spawn_await", "create_task + await, one at a time", median_of(rounds, bench_spawn, n, 1)),
        ("spawn_batch", "create 1000, await 1000", median_of(rounds, bench_spawn, n, 1000)),
    ]
    print(f"switch (asyncio): n={n}, median of {rounds} rounds")
    print(f"  {'figure':<36} {'ns':>10}")
    for _, what, ns in figs:
        print(f"  {what:<36} {ns:>10.1f}")
    for name, _, ns in figs:
        print(f"RESULT name={name} unit=ns value={ns:.1f}")


if __name__ == "__main__":
    main()
