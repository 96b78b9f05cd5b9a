#!/usr/bin/env python3
"""The gdb extension (share/aloop/aloop-gdb.py) in batch mode against
tests/gdb/gdb_target.c, whose tasks are suspended in several primitives
while the program waits on stdin, outside its loop:

  live   gdb runs the program itself
  attach gdb -p PID on the running program
  core   a core of it (gcore), read back without the process

Each checks that `aloop tasks` lists every task with its state and wait,
and that `aloop bt` shows a suspended task's stack down to the function it
runs. Exit 77 (ctest: skipped) when gdb is missing or may not trace."""
import os
import subprocess
import sys
import tempfile

SKIP = 77
sanitized = False
mode, gdb_script, target = sys.argv[1], sys.argv[2], sys.argv[3]


def skip(why):
    print("skipped: " + why)
    sys.exit(SKIP)


def run_gdb(args, timeout=120):
    cmd = ["gdb", "-nx", "-batch", "-ex", "set debuginfod enabled off",
           "-ex", "source " + gdb_script] + args
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        skip("gdb is not installed")
    out = p.stdout + p.stderr
    if "ptrace: Operation not permitted" in out or "Could not attach" in out \
            or "Couldn't get registers" in out:
        skip("ptrace is not permitted here")
    return out


COMMANDS = ["aloop tasks", "aloop bt getter", "aloop bt 5", "aloop bt #6", "aloop bt unborn"]


def check(out):
    expect = [
        "7 unfinished task(s)",
        "#1 'napper'", "suspended, in aloop_sleep",
        "#2 'getter'", "#3 'waiter'", "#4 'holder'", "#5 'locker'",
        "#6 'awaiter'", "awaiting task 'napper'",
        "#7 'unborn'", "not started",
        # aloop bt getter: the queue's wait, then the task's own function
        # (an optimised build may tail-call from the public function into
        # its internal wait: either name is the primitive's frame)
        "task #2 'getter': suspended", ("in aloop_queue_get+0x", "in queue_wait+0x"), "in getter+0x",
        "gdb_target.c:",
        # aloop bt 5: the lock's wait
        "task #5 'locker'", ("in aloop_lock_acquire+0x", "in wait_on+0x"), "in locker+0x",
        "task #6 'awaiter'", "in aloop_await+0x", "in awaiter+0x",
        "task #7 'unborn': not started", "(no stack yet)",
    ]
    def found(e):
        return any(a in out for a in e) if isinstance(e, tuple) else e in out
    missing = [e for e in expect if not found(e)]
    if missing:
        print(out)
        print("missing: %r" % missing)
        sys.exit(1)
    # innermost first: the primitive comes before the task's function
    bt = out[out.index("task #2 'getter': suspended"):]
    prim = "aloop_queue_get+0x" if "aloop_queue_get+0x" in bt else "queue_wait+0x"
    assert bt.index(prim) < bt.index("in getter+0x"), bt


def start_target(*args):
    p = subprocess.Popen([target] + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    global sanitized
    line = p.stdout.readline()
    if not line.startswith("ready "):
        p.kill()
        sys.exit("gdb_target did not start: %r" % line)
    sanitized = "sanitized" in line.split()
    return p, int(line.split()[1])


def stop_target(p):
    try:
        p.stdin.close()
    except OSError:
        pass
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


if mode == "live":
    args = ["-ex", "break aloop_gdb_target_ready", "-ex", "run"]
    for c in COMMANDS:
        args += ["-ex", c]
    args += ["-ex", "kill", target]
    out = run_gdb(args)
    if "Breakpoint 1, " not in out:
        print(out)
        skip("gdb could not run the program (ptrace?)")
    check(out)
elif mode == "attach":
    p, pid = start_target()
    try:
        args = ["-p", str(pid)]
        for c in COMMANDS:
            args += ["-ex", c]
        args += ["-ex", "detach"]
        out = run_gdb(args)
    finally:
        stop_target(p)
    check(out)
elif mode == "core":
    with tempfile.TemporaryDirectory() as d:
        core = os.path.join(d, "gdb_target.core")
        # gcore leaves out memory pieces that hold a guard page (see the
        # extension's `help aloop bt`): stacks without them
        p, pid = start_target("--no-guard")
        if sanitized:
            stop_target(p)
            skip("AddressSanitizer's shadow memory makes gcore take minutes")
        try:
            out = run_gdb(["-p", str(pid), "-ex", "gcore " + core, "-ex", "detach"])
        finally:
            stop_target(p)
        if not os.path.exists(core):
            print(out)
            skip("gcore wrote no core file")
        args = []
        for c in COMMANDS:
            args += ["-ex", c]
        out = run_gdb(args + [target, core])
        check(out)
else:
    sys.exit("usage: test_gdb.py live|attach|core SCRIPT TARGET")
print("gdb %s: ok" % mode)
