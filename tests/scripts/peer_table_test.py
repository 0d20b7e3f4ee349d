#!/usr/bin/env python3
"""Checks bench/torch/peer_table.py: the verdict per target that ends peer.md counts the right rows.

Synthetic rows on both sides of every threshold, then the whole script on a small Google
Benchmark JSON. Exits non-zero with a message on the first mismatch.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "bench", "torch"))
import peer_table  # noqa: E402


def row(op, grouping, ratio, ceiling=0.5, shape="s", threads=1):
    return {"op": op, "shape": shape, "grouping": grouping, "threads": threads,
            "ours_over_torch": ratio, "ours_over_ceiling": ceiling}


def verdict(lines, label):
    """(met, total) of the line whose target starts with label."""
    for line in lines:
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 2 and cells[1].startswith(label):
            met, total = cells[2].split(" / ")
            return int(met), int(total)
    raise AssertionError("no verdict line for %r in:\n%s" % (label, "\n".join(lines)))


def expect(got, want, what):
    if got != want:
        sys.exit("peer_table_test: %s: got %s, want %s" % (what, got, want))


def main():
    rows = [
        row("sgl_prox", "filters", 3.01), row("sgl_prox", "output_neurons", 2.99),
        row("sgl_prox", "input_channels", 2.5),  # strided: not a contiguous SGL prox row
        row("gl_value", "input_neurons", 3.5), row("sgl_value", "input_channels", 4.0),
        row("sgl_value", "groups_of_1024", 2.0),
        row("l1_prox", "groups_of_1024", 0.99, ceiling=0.9), row("l1_prox_nostats", "groups_of_1024", 1.2, ceiling=0.7),
        row("gl_prox", "filters", 1.5, ceiling=0.85), row("gl_value", "groups_of_1024", 1.0, ceiling=0.8),
        row("gl_prox", "input_neurons", 1.1),  # strided: not a fused-kernel row
        row("kl_value_grad", "weights", 10.0), row("kl_value_grad", "weights", 9.99),
    ]
    lines = peer_table.target_lines(rows)
    expect(verdict(lines, "SGL prox"), (1, 2), "SGL prox on contiguous groups")
    expect(verdict(lines, "strided"), (2, 4), "strided groupings")
    expect(verdict(lines, "SGL value"), (1, 2), "SGL values")
    expect(verdict(lines, "one fused"), (3, 4), "fused kernels against torch")
    expect(verdict(lines, "the same rows"), (3, 4), "fused kernels against the ceiling")
    expect(verdict(lines, "never slower"), (12, 13), "never slower")
    expect(verdict(lines, "KL"), (1, 2), "KL")
    missed = [line for line in lines if line.startswith("| KL")][0]
    if "kl_value_grad s/weights t1 (9.99x)" not in missed or "(10.00x)" in missed:
        sys.exit("peer_table_test: the KL line names the wrong rows: " + missed)

    # The whole script: a raw benchmark file in, the table and the verdicts out.
    raw = {"context": {"date": "2026-12-06"}, "benchmarks": [
        {"name": "peer/kl_value_grad/flat64K/weights/threads:1/manual_time", "run_name":
         "peer/kl_value_grad/flat64K/weights/threads:1/manual_time", "run_type": "iteration",
         "iterations": 5, "ours_GBps": 9.0, "torch_GBps": 1.0, "ceiling_GBps": 40.0,
         "ours_over_ceiling": 0.225, "ours_over_torch": 9.0}]}
    with tempfile.TemporaryDirectory() as d:
        paths = [os.path.join(d, n) for n in ("raw.json", "peer.json", "peer.md")]
        with open(paths[0], "w") as f:
            json.dump(raw, f)
        script = os.path.join(ROOT, "bench", "torch", "peer_table.py")
        subprocess.run([sys.executable, script, *paths, "1 1 1", "2 2 2"], check=True)
        with open(paths[2]) as f:
            md = f.read()
        with open(paths[1]) as f:
            doc = json.load(f)
    expect(len(doc["rows"]), 1, "rows in peer.json")
    expect("| kl_value_grad | flat64K | weights | 1 | 9 | 1 | 40 | 0.23 | 9.00x | - |" in md, True, "table row")
    expect("| KL value + gradient >= 10x torch autograd | 0 / 1 | 9.00x - 9.00x |" in md, True, "KL verdict in peer.md")
    print("peer_table_test: all checks passed")


if __name__ == "__main__":
    main()
