#!/usr/bin/env python3
"""summary.py - the table of bench/tls/run: medians over the rounds of each
case and server, and aloop's ratio to openssl and to Go. Standard library
only.

Input lines (one per case, server and round):
    round=1 case=new13 server=aloop ops=... rate=... MBps=... server_cpu=...
--results FILE appends RESULT lines for bench/run (aloop's medians and the
ratios).
"""
import argparse
import statistics

CASES = [
    # case, what, figure key, unit, cpu unit
    ("new13", "full handshakes, TLS 1.3", "rate", "hs/s", "us/hs"),
    ("reuse13", "resumed handshakes, TLS 1.3", "rate", "hs/s", "us/hs"),
    ("new12", "full handshakes, TLS 1.2", "rate", "hs/s", "us/hs"),
    ("reuse12", "resumed handshakes, TLS 1.2", "rate", "hs/s", "us/hs"),
    ("bulk", "bulk, server -> client, AES-128-GCM", "MBps", "MB/s", "ms/MB"),
    ("stime_new", "s_time -new (TLS 1.3, one at a time)", "rate", "hs/s", "us/hs"),
    ("stime_reuse", "s_time -reuse (TLS 1.3, one at a time)", "rate", "hs/s", "us/hs"),
    # the client side: "aloop" = tlsclient (aloop-tls), "openssl" = tlsload
    ("client_new13", "client: full handshakes, TLS 1.3", "rate", "hs/s", "us/hs"),
    ("client_reuse13", "client: resumed handshakes, TLS 1.3", "rate", "hs/s", "us/hs"),
    ("client_bulk", "client: bulk, reading, AES-128-GCM", "MBps", "MB/s", "ms/MB"),
]
SERVERS = ["aloop", "openssl", "go"]


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            d = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            rows.append(d)
    return rows


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def median_of(rows, case, server, key):
    vals = [num(r.get(key)) for r in rows if r.get("case") == case and r.get("server") == server]
    vals = [v for v in vals if v is not None and v > 0]
    return statistics.median(vals) if vals else None


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--results")
    a = ap.parse_args()
    rows = parse(a.raw)
    present = [s for s in SERVERS if any(r.get("server") == s for r in rows)]
    out = []
    print("\n== TLS: medians over the rounds; ratio = aloop / peer (rates: higher is better;"
          " server CPU: lower is better)")
    head = f"{'case':<38} {'unit':>6}" + "".join(f" {s:>9}" for s in present)
    if "aloop" in present:
        head += "".join(f" {'x ' + s:>10}" for s in present if s != "aloop")
    print(head)
    print("-" * len(head))
    for case, what, key, unit, cpu_unit in CASES:
        cpu_key = "client_cpu" if case.startswith("client_") else "server_cpu"
        for label, k, u, better_high in ((what, key, unit, True),
                                         ("  " + cpu_key.replace("_cpu", " CPU"), cpu_key,
                                          cpu_unit, False)):
            if not u:
                continue
            meds = {s: median_of(rows, case, s, k) for s in present}
            if all(v is None for v in meds.values()):
                continue
            line = f"{label:<38} {u:>6}" + "".join(f" {fmt(meds[s]):>9}" for s in present)
            if "aloop" in present:
                for s in present:
                    if s == "aloop":
                        continue
                    r = meds["aloop"] / meds[s] if meds["aloop"] and meds[s] else None
                    line += f" {('%.2f' % r) if r else '-':>10}"
                    if r:
                        name = f"tls_{case}{'_cpu' if k.endswith('_cpu') else ''}_vs_{s}"
                        out.append(f"RESULT name={name} unit=x value={r:.3f}")
                if meds["aloop"]:
                    name = f"tls_{case}{'_cpu' if k.endswith('_cpu') else ''}"
                    out.append(f"RESULT name={name} unit={u} value={meds['aloop']:.2f}")
            print(line)
    if "aloop" in present and len(present) > 1:
        print("\nper round, aloop's CPU / the peer's (below 1: aloop spends less; client_*:"
              " tlsclient / tlsload)")
        for case, what, key, unit, cpu_unit in CASES:
            if not cpu_unit:
                continue
            parts = []
            for s in present:
                if s == "aloop":
                    continue
                ratios = []
                for rnd in sorted({r.get("round") for r in rows}, key=lambda x: int(x or 0)):
                    ck = "client_cpu" if case.startswith("client_") else "server_cpu"
                    mine = [num(r.get(ck)) for r in rows if r.get("case") == case
                         and r.get("server") == "aloop" and r.get("round") == rnd]
                    peer = [num(r.get(ck)) for r in rows if r.get("case") == case
                         and r.get("server") == s and r.get("round") == rnd]
                    if mine and peer and mine[0] and peer[0]:
                        ratios.append(mine[0] / peer[0])
                if ratios:
                    parts.append(f"x {s}: " + " ".join(f"{x:.2f}" for x in ratios))
            if parts:
                print(f"  {case:<12} " + ";  ".join(parts))
    print()
    for line in out:
        print(line)
    if a.results:
        with open(a.results, "a") as f:
            f.write("".join(line + "\n" for line in out))


if __name__ == "__main__":
    main()
