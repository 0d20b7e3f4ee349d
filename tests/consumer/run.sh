#!/usr/bin/env bash
# Packaging check: the library as a downstream project sees it.
#   (a) install sparsereg into a temporary prefix and build tests/consumer with find_package
#       (also without Eigen, where the core target must still resolve and sparsereg::eigen must not);
#   (b) build tests/consumer with add_subdirectory(<source tree>);
#   (c) compile the consumer with the flags from the installed pkg-config file.
# Usage: tests/consumer/run.sh [source-dir]   (exit status 0 = all good). Takes ~30 s.
set -euo pipefail

src="$(cd "${1:-$(dirname "$0")/../..}" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/sparsereg-consumer.XXXXXX")"
trap 'rm -rf "$work"' EXIT
gen=()
if command -v ninja > /dev/null 2>&1; then gen=(-G Ninja); fi
cxx="${CXX:-c++}"

step() { printf '\n== %s\n' "$*"; }
quiet() {  # run a command, show its output only if it fails
  local log="$work/log.txt"
  if ! "$@" > "$log" 2>&1; then
    cat "$log"
    echo "FAILED: $*" >&2
    exit 1
  fi
}

step "install sparsereg into $work/prefix"
quiet cmake -S "$src" -B "$work/build" "${gen[@]}" -DCMAKE_INSTALL_PREFIX="$work/prefix" \
  -DSPARSEREG_BUILD_TESTS=OFF -DSPARSEREG_BUILD_BENCHMARKS=OFF -DSPARSEREG_BUILD_EXAMPLES=OFF
quiet cmake --install "$work/build"
test -f "$work/prefix/include/sparsereg/sparsereg.hpp"
test -f "$work/prefix/include/sparsereg/regularizer.hpp"

step "(a) find_package(sparsereg CONFIG REQUIRED) from the installed prefix"
quiet cmake -S "$src/tests/consumer" -B "$work/package" "${gen[@]}" -DCMAKE_PREFIX_PATH="$work/prefix"
if [ -f "$work/prefix/share/sparsereg/cmake/sparsereg-eigen-targets.cmake" ]; then
  # sparsereg was configured with Eigen, so the consumer (which finds Eigen too) must see sparsereg::eigen.
  grep -q "sparsereg::eigen found" "$work/log.txt" || { echo "expected the sparsereg::eigen target"; exit 1; }
fi
quiet cmake --build "$work/package" -j2
"$work/package/consumer"
if [ -x "$work/package/consumer_eigen" ]; then "$work/package/consumer_eigen"; fi

step "(a') the installed package without Eigen: core target only"
quiet cmake -S "$src/tests/consumer" -B "$work/package-noeigen" "${gen[@]}" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_DISABLE_FIND_PACKAGE_Eigen3=ON -DSPARSEREG_CONSUMER_EIGEN=OFF
grep -q "no sparsereg::eigen target" "$work/log.txt" || { echo "sparsereg::eigen must not exist without Eigen3"; exit 1; }

step "(a'') a version the package does not provide is refused"
cp -r "$src/tests/consumer" "$work/consumer-v99"
sed -i 's/find_package(sparsereg 0.1 /find_package(sparsereg 99 /' "$work/consumer-v99/CMakeLists.txt"
if cmake -S "$work/consumer-v99" -B "$work/package-v99" "${gen[@]}" -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/v99.txt" 2>&1; then
  echo "find_package(sparsereg 99) unexpectedly succeeded"; exit 1
fi

step "(b) add_subdirectory(<source tree>)"
quiet cmake -S "$src/tests/consumer" -B "$work/subdir" "${gen[@]}" -DSPARSEREG_CONSUMER_MODE=subdirectory \
  -DSPARSEREG_SOURCE_DIR="$src" -DSPARSEREG_CONSUMER_EIGEN=OFF
quiet cmake --build "$work/subdir" -j2 --target consumer
"$work/subdir/consumer"

step "(c) pkg-config"
export PKG_CONFIG_PATH="$work/prefix/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists sparsereg
version="$(pkg-config --modversion sparsereg)"
cflags="$(pkg-config --cflags sparsereg)"
echo "sparsereg $version: $cflags"
case "$cflags" in *"-I$work/prefix/include"*) ;; *) echo "pkg-config cflags do not point at the prefix"; exit 1 ;; esac
# shellcheck disable=SC2086
"$cxx" $cflags -O1 "$src/tests/consumer/main.cpp" -o "$work/consumer-pc"
"$work/consumer-pc"

echo
echo "consumer checks passed"
