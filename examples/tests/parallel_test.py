#!/usr/bin/env python3
"""parallel's ctest. Runs the example on sh -c children whose output is
known, checks that every output line is whole and tagged with its argument,
in each child's own order, that a hanging child is stopped by --timeout,
that -j bounds the children running at once, and the exit statuses.
Prints "parallel: ok" on success. Wall-time bounds are generous on purpose."""
import re
import subprocess
import sys
import time

BIN = sys.argv[1]


def fail(msg):
    print("parallel: FAIL: " + msg)
    sys.exit(1)


def run(args, stdin=None, timeout=60):
    t0 = time.monotonic()
    p = subprocess.run([BIN] + args, input=stdin, capture_output=True, text=True, timeout=timeout)
    return p, time.monotonic() - t0


TEMPLATE = ("case {} in "
            "hang) echo hanging; sleep 60;; "
            "pieces) printf 'par'; sleep 0.2; printf 'tial\\n'; printf 'no newline';; "
            "*) echo out {}; echo err {} >&2; sleep 0.1; echo done {}; exit {};; esac")

p, secs = run(["-j", "3", "--timeout", "1", TEMPLATE, ":::", "0", "1", "hang", "3", "pieces"])
print(p.stdout, end="")
if p.returncode != 1:
    fail("exit status %d, want 1 (some children failed)" % p.returncode)
if secs > 30:
    fail("took %.1f s: the hanging child was not stopped" % secs)
lines = p.stdout.splitlines()
tagged = {}
for line in lines:
    m = re.match(r"^\[([^\]]+)\] (.*)$", line)
    if m:
        tagged.setdefault(m.group(1), []).append(m.group(2))
    elif not line.startswith("parallel: "):
        fail("untagged line %r" % line)
for n in ("0", "1", "3"):
    if tagged.get(n) != ["out " + n, "err " + n, "done " + n]:
        fail("lines of %s: %r" % (n, tagged.get(n)))
if tagged.get("hang") != ["hanging"]:
    fail("lines of hang: %r" % tagged.get("hang"))
if tagged.get("pieces") != ["partial", "no newline"]:
    fail("a line written in pieces came out as %r" % tagged.get("pieces"))
for n, want in (("0", "exit 0"), ("1", "exit 1"), ("3", "exit 3"), ("pieces", "exit 0")):
    if not re.search(r"^parallel: \[%s\] %s, [0-9.]+ s$" % (n, want), p.stdout, re.M):
        fail("status line of %s" % n)
if not re.search(r"^parallel: \[hang\] killed by signal 15 .* after --timeout", p.stdout, re.M):
    fail("the hanging child's status line")
if not re.search(r"^parallel: 5 job\(s\), 3 failed; wall [0-9.]+ s, children's times summed [0-9.]+ s",
                 p.stdout, re.M):
    fail("summary line")

# arguments from stdin, quoting: the argument reaches the child intact
p, _ = run(["echo \"<\"{}\">\""], stdin="a b\nc'd\n$HOME\n")
print(p.stdout, end="")
if p.returncode != 0:
    fail("stdin run: exit %d" % p.returncode)
for arg in ("a b", "c'd", "$HOME"):
    if "[%s] <%s>" % (arg, arg) not in p.stdout:
        fail("argument %r mangled" % arg)

# -j 2: never more than two children at once (each records its start/end
# in a shared log through the file system, atomically by O_APPEND)
import os
import tempfile
with tempfile.TemporaryDirectory() as d:
    log = os.path.join(d, "log")
    tpl = "echo start >> %s; sleep 0.2; echo end >> %s" % (log, log)
    p, _ = run(["-j", "2", tpl, ":::"] + [str(i) for i in range(6)])
    if p.returncode != 0:
        fail("-j run: exit %d" % p.returncode)
    running = peak = 0
    for ev in open(log).read().split():
        running += 1 if ev == "start" else -1
        peak = max(peak, running)
    if peak > 2:
        fail("-j 2 ran %d at once" % peak)

# A hostile argument is data, never code, whatever quotes the template puts
# around {} (the argument reaches sh as $1): nothing may create a file.
HOSTILE = ["$(touch M1)", "`touch M2`", "'; touch M3; '", "\"; touch M4; \"",
           "a b  c", "*", "\\$(touch M5)"]
for tpl, fmt in (('echo "{}"', "%s"), ("echo '{}'", "%s"), ("echo {}", "%s"),
                 ("echo", "%s"), ('echo "<{}>" \'[{}]\'', "<%s> [%s]")):
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([BIN, "-j", "2", tpl, ":::"] + HOSTILE, cwd=d, capture_output=True,
                           text=True, timeout=60)
        if os.listdir(d):
            fail("template %r ran an argument as code: %r" % (tpl, os.listdir(d)))
        if p.returncode != 0:
            fail("template %r: exit %d" % (tpl, p.returncode))
        for arg in HOSTILE:
            want = "[%s] %s" % (arg, fmt % ((arg,) * fmt.count("%s")))
            if want not in p.stdout.splitlines():
                fail("template %r: argument %r came out as %r" % (tpl, arg, p.stdout))

# usage errors
for args in (["-j", "x", "true"], ["--timeout", "-1", "true"], [], ["true", "notcolons"]):
    p, _ = run(args)
    if p.returncode != 2:
        fail("%r: exit %d, want 2" % (args, p.returncode))
print("parallel: ok")
