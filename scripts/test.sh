#!/usr/bin/env bash
# Builds and runs every test: the Release build (tests, examples' smoke tests, benchmarks compiled),
# then the tests again under AddressSanitizer + UndefinedBehaviorSanitizer. The Release ctest run
# includes the packaging consumers, the compile-fail checks, and the libtorch and MPI tests. This is
# what .ci/run calls.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
jobs=${JOBS:-$(nproc)}

# libtorch (adapter tests, peer benchmark, libtorch example) and MPI (data-parallel example) are
# optional for users but part of CI: installing them takes about a minute here.
bash scripts/install-deps.sh --torch --mpi

echo "== Release build: tests, examples, benchmarks"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$jobs"
ctest --test-dir build/release --output-on-failure -j "$jobs"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer: tests"
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSPARSEREG_SANITIZE=ON \
      -DSPARSEREG_BUILD_BENCHMARKS=OFF -DSPARSEREG_BUILD_EXAMPLES=OFF -DSPARSEREG_WITH_TORCH=OFF \
      -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" >/dev/null
cmake --build build/sanitize -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/sanitize --output-on-failure -j "$jobs"
