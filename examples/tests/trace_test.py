#!/usr/bin/env python3
"""examples/trace: the file is valid trace-event JSON, every task has a
named row, run slices never overlap (one task runs at a time), and there is
one slice per switch that aloop_metrics counted."""
import json, os, re, subprocess, sys, tempfile

exe = sys.argv[1]
with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "t.json")
    p = subprocess.run([exe, out], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "logger: 30 items, sum 465" in p.stdout, p.stdout
    with open(out) as f:
        events = json.load(f)["traceEvents"]
rows = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M"}
assert sorted(rows.values()) == sorted(
    ["pipeline", "producer", "worker-1", "worker-2", "worker-3", "logger"]), rows
slices = sorted((e["ts"], e["dur"], e["tid"], e["name"]) for e in events if e["ph"] == "X")
for (ts, dur, tid, name) in slices:
    assert dur >= 0 and rows[tid] == name, (ts, dur, tid, name)
for a, b in zip(slices, slices[1:]):
    assert a[0] + a[1] <= b[0] + 1e-3, ("overlapping slices", a, b)
m = re.search(r"(\d+) switches", p.stderr)
assert m and int(m.group(1)) == len(slices), (p.stderr, len(slices))
print("trace: ok (%d slices)" % len(slices))
