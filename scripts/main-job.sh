#!/usr/bin/env bash
# The main job: install what is missing, build the bundled CNN trainer (Release, -O3 -march=native),
# then train it on Fashion-MNIST three times -- no regularization, sparse group lasso, and sparse
# group lasso + KL variance regularization -- and print the comparison table with each run's
# structural report. Extra arguments go to sparsereg_compare (e.g. --full, --seed 2, --threads 2).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

bash scripts/install-deps.sh
cmake -S . -B build/main -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DSPARSEREG_BUILD_TESTS=OFF -DSPARSEREG_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/main -j "$(nproc)" --target sparsereg_compare sparsereg_train
exec build/main/examples/sparsereg_compare "$@"
