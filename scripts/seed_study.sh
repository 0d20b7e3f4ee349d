#!/usr/bin/env bash
# The variance regularizer's effect over several seeds: runs sparsereg_compare (baseline, SGL,
# SGL + KL variance regularizer) once per seed, PARALLEL (default 2) seeds at a time with one
# thread each (the machine has 2 cores), keeps every log, and prints per-seed rows plus mean and
# standard deviation of test accuracy and parameters removed per model.
#
#   scripts/seed_study.sh [--seeds "1 2 3"] [--out DIR] [sparsereg_compare flags...]
#   e.g. scripts/seed_study.sh --seeds "1 2 3" --epochs 3 --finetune-epochs 1
# Needs the trainer built (scripts/main-job.sh builds it in build/main; BUILD=dir overrides).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD:-$here/build/main}
seeds="1 2 3"
out=$here/build/seed-study
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seeds) seeds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
exe=$build/examples/sparsereg_compare
if [[ ! -x $exe ]]; then
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEREG_BUILD_TESTS=OFF \
    -DSPARSEREG_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$build" --target sparsereg_compare
fi
mkdir -p "$out"
echo "seed study: seeds $seeds, flags: ${args[*]:-(defaults)}; logs in $out" >&2
running=0
for s in $seeds; do
  "$exe" --seed "$s" --threads 1 --no-progress "${args[@]}" >"$out/seed$s.log" 2>&1 &
  running=$((running + 1))
  if [[ $running -ge ${PARALLEL:-2} ]]; then wait -n; running=$((running - 1)); fi
done
wait
python3 - "$out" $seeds <<'PY'
import re, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
rows = {}
print("| seed | model | test accuracy (compacted) | parameters after | % removed | train img/s | sparsereg share |")
print("|---|---|---|---|---|---|---|")
for s in seeds:
    for line in open(f"{out}/seed{s}.log"):
        m = re.match(r"\| (\S+) \| [\d.]+% \(compacted ([\d.]+)%\) \| [\d,]+ -> ([\d,]+) \| ([\d.]+)% \| .*? \| (\d+) \| ([\d.]+)% \|", line)
        if m:
            name, acc, params, removed, ips, share = m.groups()
            rows.setdefault(name, []).append((float(acc), int(params.replace(",", "")), float(removed)))
            print(f"| {s} | {name} | {acc}% | {params} | {removed}% | {ips} | {share}% |")
print("\n| model | seeds | test accuracy mean ± sd | parameters after, mean | % removed mean ± sd |")
print("|---|---|---|---|---|")
def ms(v):
    return (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0)
for name, v in rows.items():
    a, r = ms([x[0] for x in v]), ms([x[2] for x in v])
    print(f"| {name} | {len(v)} | {a[0]:.2f}% ± {a[1]:.2f} | {statistics.mean(x[1] for x in v):,.0f} | {r[0]:.1f}% ± {r[1]:.1f} |")
PY
