#!/usr/bin/env python3
"""Draws docs/benchmarks.svg from the committed benchmark results, with no third-party modules.

Left panel: ours / ceiling per operation (bench/results/peer.json, falling back to kernels.json),
with the target line (0.8 for contiguous groups and values, 0.5 for strided groups).
Right panel: ours / torch per operation from bench/results/peer.json, with the 1x and 3x lines.

    python3 scripts/plot_benchmarks.py [--threads 1] [--out docs/benchmarks.svg]
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_rows(threads):
    path = os.path.join(ROOT, "bench", "results", "peer.json")
    with open(path) as f:
        rows = json.load(f)["rows"]
    rows = [r for r in rows if r.get("threads") == threads and r.get("torch_GBps")]
    out = []
    for r in rows:
        label = "{} {} {}".format(r["op"], r["shape"], r.get("grouping", "") or "").strip()
        out.append((label, r["ours_over_ceiling"], r["ours_over_torch"]))
    return out


def bar_panel(x0, y0, width, rows, value_index, vmax, lines, title):
    row_h = 16
    label_w = 300
    plot_w = width - label_w - 20
    parts = ['<text x="{}" y="{}" font-size="14" font-weight="bold">{}</text>'.format(x0, y0 - 10, title)]
    for i, row in enumerate(rows):
        y = y0 + i * row_h
        v = row[value_index]
        w = max(0.0, min(v, vmax)) / vmax * plot_w
        colour = "#3b75af" if all(v >= t for t, _ in lines if t > 0) else "#c44e52"
        parts.append('<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>'.format(
            x0 + label_w - 4, y + 11, row[0]))
        parts.append('<rect x="{}" y="{}" width="{:.1f}" height="{}" fill="{}"/>'.format(
            x0 + label_w, y + 2, w, row_h - 4, colour))
        parts.append('<text x="{:.1f}" y="{}" font-size="9">{:.2f}</text>'.format(
            x0 + label_w + w + 3, y + 11, v))
    bottom = y0 + len(rows) * row_h
    for t, name in lines:
        x = x0 + label_w + min(t, vmax) / vmax * plot_w
        parts.append('<line x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}" stroke="#333" stroke-dasharray="4,3"/>'.format(
            x, y0, bottom))
        parts.append('<text x="{:.1f}" y="{}" font-size="10" text-anchor="middle">{}</text>'.format(
            x, bottom + 12, name))
    return parts, bottom + 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.svg"))
    args = ap.parse_args()
    rows = load_rows(args.threads)
    if not rows:
        sys.exit("plot_benchmarks.py: no rows with threads={} in bench/results/peer.json".format(args.threads))
    width = 760
    left, h1 = bar_panel(10, 40, width, rows, 1, 1.2, [(0.5, "0.5"), (0.8, "0.8")],
                         "ours / ceiling ({} thread{})".format(args.threads, "s" if args.threads > 1 else ""))
    right, h2 = bar_panel(10 + width, 40, width, rows, 2, max(4.0, max(r[2] for r in rows) * 1.05),
                          [(1.0, "1x"), (3.0, "3x")], "ours / torch (same run)")
    height = max(h1, h2) + 10
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif">'.format(
        2 * width + 20, height), '<rect width="100%" height="100%" fill="white"/>'] + left + right + ['</svg>']
    with open(args.out, "w") as f:
        f.write("\n".join(svg) + "\n")
    print("wrote", args.out, "({} operations)".format(len(rows)))


if __name__ == "__main__":
    main()
