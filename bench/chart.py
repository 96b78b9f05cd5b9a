#!/usr/bin/env python3
"""chart.py - turns the RESULT lines collected by bench/run into the
aloop-vs-asyncio table (stdout) and an SVG bar chart. Standard library only.

Input lines look like
    RESULT impl=aloop bench=switch name=yield unit=ns value=20.6
Figures in ns, KiB or MiB are better when lower; req/s when higher. The
"times better" column always reads "how many times better aloop is".
"""
import argparse
import html
import math
import sys

HIGHER_IS_BETTER = {"req/s", "child/s"}

# What each figure means, in the table and the chart, in display order.
LABELS = [
    ("raw_pair", "raw switch pair (floor)"),
    ("yield", "yield ping-pong, per yield"),
    ("spawn_await", "spawn + await, per task"),
    ("spawn_batch", "spawn 1000 + await, per task"),
    ("spawn_cold", "first spawn (fresh stack), per task"),
    ("timers_sleep", "sleeping tasks, CPU per timer"),
    ("timers_sleep_spawn", "  of which spawn"),
    ("timers_sleep_run", "  of which run"),
    ("timers_call_later", "call_later, CPU per timer"),
    ("memory_idle", "RSS per idle task"),
    ("memory_idle_total", "  RSS of all idle tasks"),
    ("memory_million", "RSS per idle task, 1M tasks"),
    ("memory_million_total", "  RSS of 1M idle tasks"),
    ("gather_million", "spawn 1M then gather, per task"),
    ("gather_million_cpu", "  CPU time per task"),
    ("gather_million_rss", "  peak RSS of the process"),
    ("gather_million_pending", "  RSS per pending task"),
    ("gather_100k", "spawn 100k then gather, per task"),
    ("gather_100k_cpu", "  CPU time per task"),
    ("gather_100k_rss", "  peak RSS of the process"),
    ("gather_100k_pending", "  RSS per pending task"),
    ("echo", "TCP echo, 50 connections"),
    ("echo_floor", "  floor: hand-written epoll callbacks"),
    ("echo_vs_floor", "  aloop / floor"),
    ("queue", "bounded queue, per item"),
    ("yield_vs_raw", "yield / raw switch pair"),
    ("spawn_seq", "spawn + wait /bin/true, one at a time"),
    ("spawn_16", "spawn + wait /bin/true, 16 at once"),
]

# The targets: (figure, comparison, bound, what the bound is).
TARGETS = [
    ("yield", "<=", 25, "ns per yield"),
    ("yield_vs_raw", "<=", 1.5, "x the raw switch pair"),
    ("spawn_await", "<=", 50, "ns per task, steady state"),
    ("timers_sleep", "<=", 2300, "ns CPU per timer (libuv callbacks)"),
    ("memory_idle", "<=", 6, "KiB per idle task"),
    ("memory_million_total", "<=", 6144, "MiB for 1M idle tasks"),
    ("echo", ">=", 128000, "req/s (libuv, measured elsewhere)"),
    ("echo_vs_floor", ">=", 1.0, "x hand-written epoll callbacks"),
    ("queue", "<=", 30, "ns per item (Go channel: 42)"),
    ("gather_million", "<=", 100, "ns per task (Go 1.19: 894)"),
    ("gather_million_rss", "<=", 256, "MiB peak for 1M tasks (Go: 101-119)"),
]

# Figures of peers not installed here, quoted from the issues for reference.
REFERENCE = {
    "gather_million": "Go 894-1,069",
    "gather_million_rss": "Go 101-119",
}


def parse(path):
    """{(impl, name): (value, unit)} from the RESULT lines of path."""
    out = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("RESULT "):
                continue
            fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
            try:
                value = float(fields["value"])
            except (KeyError, ValueError):
                continue
            out[(fields.get("impl", "aloop"), fields["name"])] = (value, fields.get("unit", ""))
    return out


def rows_of(results):
    """[(name, label, unit, aloop, asyncio, times_better)] in display order."""
    names = [n for n, _ in LABELS]
    extra = sorted({n for (_, n) in results} - set(names))
    labels = dict(LABELS)
    rows = []
    for name in names + extra:
        a = results.get(("aloop", name))
        p = results.get(("asyncio", name))
        if not a and not p:
            continue
        unit = (a or p)[1]
        av = a[0] if a else None
        pv = p[0] if p else None
        better = None
        if av and pv:
            better = av / pv if unit in HIGHER_IS_BETTER else pv / av
        rows.append((name, labels.get(name, name), unit, av, pv, better))
    return rows


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def better_text(better):
    if not better:
        return "-"
    return f"{better:.1f}x" if better >= 1 else f"{1 / better:.1f}x worse"


def print_table(rows, out=sys.stdout):
    out.write(f"{'figure':<38} {'unit':>6} {'aloop':>12} {'asyncio':>12} {'aloop better':>13}"
              f"  {'reference (issue)'}\n")
    out.write("-" * 104 + "\n")
    for name, label, unit, av, pv, better in rows:
        out.write(f"{label:<38} {unit:>6} {fmt(av):>12} {fmt(pv):>12} {better_text(better):>13}"
                  f"  {REFERENCE.get(name, '')}\n")


def print_targets(results, out=sys.stdout):
    """The issue's targets against this run's aloop figures: value / bound
    (below 1 is inside the bound for <=, above 1 for >=)."""
    out.write(f"\n{'target':<56} {'aloop':>10} {'ratio':>7}  met\n")
    out.write("-" * 80 + "\n")
    for name, op, bound, what in TARGETS:
        got = results.get(("aloop", name))
        if not got:
            continue
        v = got[0]
        met = v <= bound if op == "<=" else v >= bound
        out.write(f"{name + ' ' + op + ' ' + fmt(bound) + ' ' + what:<56} {fmt(v):>10} "
                  f"{v / bound:>7.2f}  {'yes' if met else 'NO'}\n")


def svg_chart(rows, title):
    """Horizontal bars on a log scale: one pair (aloop, asyncio) per figure
    that both sides measured, each bar labelled with its value."""
    pairs = [r for r in rows if r[3] and r[4] and not r[0].endswith("_total")]
    width, left, right, bar, gap, top = 900, 330, 120, 14, 16, 50
    height = top + len(pairs) * (2 * bar + gap) + 40
    vals = [v for r in pairs for v in (r[3], r[4])]
    lo = math.floor(math.log10(min(vals))) if vals else 0
    hi = math.ceil(math.log10(max(vals))) if vals else 1
    if hi == lo:
        hi += 1
    span = width - left - right

    def x_of(v):
        return left + span * (math.log10(v) - lo) / (hi - lo)

    e = html.escape
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{e(title)}</text>',
         f'<rect x="{left}" y="30" width="12" height="10" fill="#2a7ab9"/>'
         f'<text x="{left + 16}" y="39">aloop</text>',
         f'<rect x="{left + 70}" y="30" width="12" height="10" fill="#e39b2d"/>'
         f'<text x="{left + 86}" y="39">asyncio</text>',
         f'<text x="{width - right}" y="39" text-anchor="end" fill="#555">log scale; '
         f'shorter is better except req/s</text>']
    for p in range(lo, hi + 1):
        x = x_of(10 ** p)
        s.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 30}" '
                 f'stroke="#ddd"/>')
        s.append(f'<text x="{x:.1f}" y="{height - 16}" text-anchor="middle" fill="#555">'
                 f'1e{p}</text>')
    y = top
    for _, label, unit, av, pv, better in pairs:
        s.append(f'<text x="{left - 8}" y="{y + bar + 4}" text-anchor="end">{e(label.strip())} '
                 f'({e(unit)})</text>')
        for v, color, dy in ((av, "#2a7ab9", 0), (pv, "#e39b2d", bar)):
            x = x_of(v)
            s.append(f'<rect x="{left}" y="{y + dy}" width="{max(x - left, 1):.1f}" '
                     f'height="{bar - 2}" fill="{color}"/>')
            s.append(f'<text x="{max(x, left) + 4:.1f}" y="{y + dy + bar - 4}">{fmt(v)}</text>')
        if better:
            s.append(f'<text x="{width - 8}" y="{y + bar + 4}" text-anchor="end" '
                     f'font-weight="bold">{e(better_text(better))}</text>')
        y += 2 * bar + gap
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="file with RESULT lines")
    ap.add_argument("--svg", help="write the chart here")
    ap.add_argument("--title", default="libaloop vs Python asyncio")
    args = ap.parse_args()
    results = parse(args.results)
    rows = rows_of(results)
    print_table(rows)
    print_targets(results)
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(svg_chart(rows, args.title))
        print(f"\nchart: {args.svg}")


if __name__ == "__main__":
    main()
