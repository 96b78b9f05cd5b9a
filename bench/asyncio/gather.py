#!/usr/bin/env python3
"""gather.py - bench/gather's workload in Python asyncio (stdlib only):
spawn N trivial tasks with create_task, then gather them; ns per task
(median of the rounds), peak RSS of the process, RSS per pending task."""
import argparse
import asyncio
import os
import resource
import time


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


async def one(i):
    return i + 1


async def spawn_then_gather(n):
    before = rss_bytes()
    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    t1, c1 = time.perf_counter_ns(), time.process_time_ns()
    pending = rss_bytes()
    t2, c2 = time.perf_counter_ns(), time.process_time_ns()
    results = await asyncio.gather(*tasks)
    t3, c3 = time.perf_counter_ns(), time.process_time_ns()
    assert results[-1] == n and results[0] == 1
    return ((t1 - t0) + (t3 - t2)) / n, ((c1 - c0) + (c3 - c2)) / n, (pending - before) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100,000 tasks, 3 rounds")
    ap.add_argument("-n", type=int, default=None, help="tasks (default 1,000,000)")
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    n = args.n or (100000 if args.quick else 1000000)
    rounds = args.rounds or 3
    per, cpu, pend = [], [], None
    for r in range(rounds):
        ns, c, p = asyncio.run(spawn_then_gather(n))
        per.append(ns)
        cpu.append(c)
        if pend is None:
            pend = p
    per.sort()
    cpu.sort()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    name = "gather_million" if n >= 1000000 else "gather_100k" if args.quick else "gather"
    print(f"gather (asyncio): spawn {n} trivial tasks, then gather them (median of {rounds})")
    print(f"  {'per task (spawn + run + gather)':<36} {per[len(per) // 2]:>12.1f} ns")
    print(f"  {'  CPU time per task':<36} {cpu[len(cpu) // 2]:>12.1f} ns")
    print(f"  {'peak RSS of the process':<36} {peak:>12.1f} MiB")
    print(f"  {'RSS per pending task':<36} {pend:>12.1f} bytes")
    print(f"RESULT name={name} unit=ns value={per[len(per) // 2]:.1f}")
    print(f"RESULT name={name}_cpu unit=ns value={cpu[len(cpu) // 2]:.1f}")
    print(f"RESULT name={name}_rss unit=MiB value={peak:.1f}")
    print(f"RESULT name={name}_pending unit=B value={pend:.1f}")


if __name__ == "__main__":
    main()
