#!/usr/bin/env python3
"""timers.py - bench/timers's workloads in Python asyncio (stdlib only).

  timers_sleep       N tasks each sleeping a random 0-1 s: CPU ns per timer
                     (time.process_time: user + system, the whole process)
  timers_call_later  M loop.call_later callbacks at random 0-1 s
"""
import argparse
import asyncio
import random
import time


async def sleeper(delay, woke):
    await asyncio.sleep(delay)
    woke[0] += 1


async def sleep_tasks(n):
    rng = random.Random(1)
    delays = [rng.random() for _ in range(n)]
    woke = [0]
    c0 = time.process_time_ns()
    tasks = [asyncio.create_task(sleeper(d, woke)) for d in delays]
    c1 = time.process_time_ns()
    await asyncio.gather(*tasks)
    c2 = time.process_time_ns()
    assert woke[0] == n
    return (c2 - c0) / n, (c1 - c0) / n, (c2 - c1) / n


async def call_later(m):
    rng = random.Random(2)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    fired = [0]

    def on_timer():
        fired[0] += 1
        if fired[0] == m:
            done.set_result(None)

    c0 = time.process_time_ns()
    for _ in range(m):
        loop.call_later(rng.random(), on_timer)
    await done
    return (time.process_time_ns() - c0) / m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 tasks, 200,000 callbacks")
    ap.add_argument("-n", type=int, default=None, help="sleeping tasks (default 100,000)")
    ap.add_argument("-m", type=int, default=None, help="call_later callbacks (default 1,000,000)")
    args = ap.parse_args()
    n = args.n or (20000 if args.quick else 100000)
    m = args.m or (200000 if args.quick else 1000000)
    total, spawn, run = asyncio.run(sleep_tasks(n))
    cb = asyncio.run(call_later(m))
    print(f"timers (asyncio): {n} sleeping tasks, {m} call_later callbacks, delays 0-1 s")
    print(f"  {'figure':<40} {'CPU ns/timer':>12}")
    print(f"  {'sleeping tasks, total':<40} {total:>12.0f}")
    print(f"  {'  of which create_task':<40} {spawn:>12.0f}")
    print(f"  {'  of which run':<40} {run:>12.0f}")
    print(f"  {'call_later callbacks':<40} {cb:>12.0f}")
    print(f"RESULT name=timers_sleep unit=ns value={total:.0f}")
    print(f"RESULT name=timers_sleep_spawn unit=ns value={spawn:.0f}")
    print(f"RESULT name=timers_sleep_run unit=ns value={run:.0f}")
    print(f"RESULT name=timers_call_later unit=ns value={cb:.0f}")


if __name__ == "__main__":
    main()
