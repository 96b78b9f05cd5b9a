#!/usr/bin/env python3
"""Test for examples/embed-glib: runs it and checks that both the GLib side
and the aloop side made progress, interleaved, in causal order.

usage: embed_glib.py PATH/TO/embed-glib
"""
import subprocess
import sys


def main():
    out = subprocess.run([sys.argv[1]], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out
    lines = out.stdout.splitlines()
    at = {line: i for i, line in enumerate(lines)}

    def before(a, b):
        assert a in at and b in at and at[a] < at[b], f"{a!r} before {b!r}:\n{out.stdout}"

    # the echo conversation: each reply follows its echo, each ping its reply
    before("glib: connected", "aloop: echo accepted a connection")
    for n in (1, 2, 3):
        before(f"aloop: echo ping {n}", f"glib: reply ping {n}")
        if n < 3:
            before(f"glib: reply ping {n}", f"aloop: echo ping {n + 1}")
    before("glib: reply ping 3", "aloop: echo connection closed")
    # the countdown, in order, with GLib's own ticks running in between
    before("aloop: countdown 3", "aloop: countdown 2")
    before("aloop: countdown 2", "aloop: countdown 1")
    before("aloop: countdown 1", "aloop: countdown done")
    ticks = [i for i, line in enumerate(lines) if line.startswith("glib: tick ")]
    assert [lines[i] for i in ticks] == [f"glib: tick {k + 1}" for k in range(len(ticks))], out.stdout
    assert any(at["aloop: countdown 3"] < i < at["aloop: countdown 1"] for i in ticks), out.stdout
    # GLib's loop ends only once both aloop tasks are through
    before("aloop: countdown done", "glib: main loop done after %d ticks" % len(ticks))
    before("glib: reply ping 3", "glib: main loop done after %d ticks" % len(ticks))
    assert lines[-1] == "done", out.stdout
    print("embed-glib: ok")


if __name__ == "__main__":
    main()
