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
# optional for users but part of CI: installing them takes about a minute here. clang compiles the
# public headers once more (tests/CMakeLists.txt, clang_headers_*).
bash scripts/install-deps.sh --torch --mpi --clang

# CI must stay under 30 minutes on 2 cores, and compiling is most of it. The Release build uses -O2
# rather than CMake's -O3 (40% less compile time for the template-heavy tests: coupled_test 29 s
# against 49 s); without -ffast-math both give the same results for every test. The main job
# (scripts/main-job.sh) and the benchmarks' documented numbers use -O3 -march=native builds of their own.
echo "== Release build (-O2): tests, examples, benchmarks"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" >/dev/null
cmake --build build/release -j "$jobs"
ctest --test-dir build/release --output-on-failure -j "$jobs"

# -O0 (the trainer test alone at -O1, tests/CMakeLists.txt): a third of the compile time of -O1.
echo "== AddressSanitizer + UndefinedBehaviorSanitizer: tests"
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSPARSEREG_SANITIZE=ON \
      -DSPARSEREG_BUILD_BENCHMARKS=OFF -DSPARSEREG_BUILD_EXAMPLES=OFF -DSPARSEREG_WITH_TORCH=OFF \
      -DCMAKE_CXX_FLAGS_DEBUG="-g -O0" >/dev/null
cmake --build build/sanitize -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/sanitize --output-on-failure -j "$jobs"
