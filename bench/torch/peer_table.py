#!/usr/bin/env python3
"""Turns bench_peer's Google Benchmark JSON into bench/results/peer.json and a markdown table.

usage: peer_table.py RAW_JSON OUT_JSON OUT_MD [LOAD_BEFORE] [LOAD_AFTER]

One row per benchmark "peer/<op>/<shape>/<grouping>/threads:<t>". bench_peer times the ceiling
pass, ours, torch (and torch_alt) interleaved in every iteration and reports bytes over each one's
median iteration time, so the columns are comparable even on a shared machine. With
--benchmark_repetitions, the median aggregate is used.
"""
import json
import sys


def main():
    raw_path, out_json, out_md = sys.argv[1:4]
    load_before = sys.argv[4] if len(sys.argv) > 4 else ""
    load_after = sys.argv[5] if len(sys.argv) > 5 else ""
    with open(raw_path) as f:
        raw = json.load(f)
    runs = raw["benchmarks"]
    has_median = any(r.get("aggregate_name") == "median" for r in runs)
    rows = []
    for r in runs:
        if has_median and r.get("aggregate_name") != "median":
            continue
        if not has_median and r.get("run_type") == "aggregate":
            continue
        parts = r.get("run_name", r["name"]).split("/")
        if len(parts) < 5 or parts[0] != "peer":
            continue
        op, shape, grouping = parts[1:4]
        threads = int(parts[4].split(":")[1])
        row = {"op": op, "shape": shape, "grouping": grouping, "threads": threads, "iterations": r.get("iterations")}
        for key in ("ours_GBps", "torch_GBps", "torch_alt_GBps", "ceiling_GBps", "ours_over_ceiling",
                    "ours_over_torch", "rel_diff_value"):
            if key in r:
                row[key] = r[key]
        if row.get("torch_alt_GBps"):
            row["ours_over_torch_alt"] = row["ours_GBps"] / row["torch_alt_GBps"]
        rows.append(row)
    doc = {
        "context": raw.get("context", {}),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "rows": rows,
    }
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1)

    def g(v, fmt="{:.3g}"):
        return fmt.format(v) if isinstance(v, (int, float)) else "-"

    lines = [
        "Load average (1, 5, 15 min) before / after: %s / %s; started %s"
        % (load_before, load_after, raw.get("context", {}).get("date", "")),
        "",
        "| op | shape | grouping | threads | ours GB/s | torch GB/s | ceiling GB/s | ours/ceiling | ours/torch | torch alt GB/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            "| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s |"
            % (
                row["op"], row["shape"], row["grouping"], row["threads"],
                g(row.get("ours_GBps")), g(row.get("torch_GBps")), g(row.get("ceiling_GBps")),
                g(row.get("ours_over_ceiling"), "{:.2f}"), g(row.get("ours_over_torch"), "{:.2f}x"),
                g(row.get("torch_alt_GBps")),
            )
        )
    lines += ["", "Against the targets of the peer-benchmark issue (ratios from the rows above):", ""]
    lines += target_lines(rows)
    with open(out_md, "w") as f:
        f.write("\n".join(lines) + "\n")


CONTIGUOUS = {"output_neurons", "filters", "groups_of_1024"}
STRIDED = {"input_neurons", "input_channels"}


def target_lines(rows):
    """One line per target: rows that meet it, the range of the ratio, the rows that miss it."""

    def name(r):
        return "%s %s/%s t%d" % (r["op"], r["shape"], r["grouping"], r["threads"])

    def check(label, selected, ok, ratio, fmt="{:.2f}x", show=6):
        sel = [r for r in selected if isinstance(ratio(r), (int, float))]
        if not sel:
            return "| %s | no rows | - | - |" % label
        met = [r for r in sel if ok(r)]
        values = [ratio(r) for r in sel]
        missed = [r for r in sel if not ok(r)]
        miss = ", ".join("%s (%s)" % (name(r), fmt.format(ratio(r))) for r in missed[:show])
        if len(missed) > show:
            miss += ", ... %d more" % (len(missed) - show)
        return "| %s | %d / %d | %s - %s | %s |" % (label, len(met), len(sel), fmt.format(min(values)),
                                                  fmt.format(max(values)), miss or "-")

    vs_torch = lambda r: r.get("ours_over_torch")
    out = ["| target | rows met | ours/torch (or as named) | rows that miss |", "|---|---:|---|---|"]
    out.append(check("SGL prox >= 3x torch, contiguous groups",
                     [r for r in rows if r["op"] == "sgl_prox" and r["grouping"] in CONTIGUOUS],
                     lambda r: vs_torch(r) >= 3, vs_torch))
    out.append(check("strided groupings (SGL and group-lasso prox and value) >= 3x torch",
                     [r for r in rows if r["op"] in ("sgl_prox", "gl_prox", "sgl_value", "gl_value")
                      and r["grouping"] in STRIDED],
                     lambda r: vs_torch(r) >= 3, vs_torch))
    out.append(check("SGL value >= 3x torch", [r for r in rows if r["op"] == "sgl_value"],
                     lambda r: vs_torch(r) >= 3, vs_torch))
    fused = [r for r in rows if r["op"] in ("l1_prox", "l1_prox_nostats")
             or (r["op"] in ("gl_prox", "gl_value") and r["grouping"] in CONTIGUOUS)]
    out.append(check("one fused torch kernel (softshrink; norm then mul_; vector norm): >= 1x torch", fused,
                     lambda r: vs_torch(r) >= 1, vs_torch))
    out.append(check("the same rows: >= 0.8 of the ceiling", fused,
                     lambda r: r.get("ours_over_ceiling", 0) >= 0.8, lambda r: r.get("ours_over_ceiling"), "{:.2f}"))
    out.append(check("never slower than torch (every row)", rows, lambda r: vs_torch(r) >= 1, vs_torch, show=10))
    out.append(check("KL value + gradient >= 10x torch autograd", [r for r in rows if r["op"] == "kl_value_grad"],
                     lambda r: vs_torch(r) >= 10, vs_torch))
    return out


if __name__ == "__main__":
    main()
