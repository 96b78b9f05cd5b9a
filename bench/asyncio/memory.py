#!/usr/bin/env python3
"""memory.py - bench/memory's workload in Python asyncio (stdlib only):
resident memory per idle task, N tasks awaiting one future, RSS read from
/proc/self/statm before and after they all reached the await."""
import argparse
import asyncio
import os


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


async def idler(gate, idle):
    idle[0] += 1
    await gate
    idle[0] -= 1


async def measure(n):
    gate = asyncio.get_running_loop().create_future()
    idle = [0]
    before = rss_bytes()
    tasks = [asyncio.create_task(idler(gate, idle)) for _ in range(n)]
    await asyncio.sleep(0)  # FIFO: every idler runs up to its await first
    assert idle[0] == n
    after = rss_bytes()
    gate.set_result(None)
    await asyncio.gather(*tasks)
    return before, after


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 tasks")
    ap.add_argument("--million", action="store_true", help="1,000,000 tasks")
    ap.add_argument("-n", type=int, default=None, help="tasks (default 100,000)")
    args = ap.parse_args()
    n = args.n or (1000000 if args.million else 20000 if args.quick else 100000)
    before, after = asyncio.run(measure(n))
    per = (after - before) / n / 1024
    name = "memory_million" if n >= 1000000 else "memory_idle"
    print(f"memory (asyncio): {n} idle tasks")
    print(f"  {'RSS per idle task':<36} {per:>12.2f} KiB")
    print(f"RESULT name={name} unit=KiB value={per:.2f}")
    print(f"RESULT name={name}_total unit=MiB value={(after - before) / 1048576:.1f}")


if __name__ == "__main__":
    main()
