#!/usr/bin/env bash
# Builds the IDX parser fuzzer with libFuzzer + ASan + UBSan and runs it.
# Usage: tests/fuzz/run.sh [seconds=60]   (needs clang and its libFuzzer runtime:
#        on Debian `apt-get install clang libclang-rt-14-dev` if -fsanitize=fuzzer fails to link)
set -euo pipefail
seconds="${1:-60}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# Build output and the grown corpus stay outside the source tree unless FUZZ_OUT says otherwise.
out="${FUZZ_OUT:-${TMPDIR:-/tmp}/sparsereg-fuzz}"
mkdir -p "$out/corpus" "$out/artifacts"

clang++ -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c++17 \
    -I "$root/examples" "$here/idx_fuzz.cpp" -lz -o "$out/idx_fuzz"

# New inputs go to the build directory's corpus; the checked-in seeds stay read-only.
# -max_len: the interesting structure is in the first few hundred bytes; larger inputs only slow it.
"$out/idx_fuzz" "$out/corpus" "$here/corpus" \
    -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/"
