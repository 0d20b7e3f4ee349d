#!/usr/bin/env bash
# Builds examples/mpi/data_parallel.cpp with mpicxx and runs it on 2 ranks (exit status 0 = ok).
# Needs an MPI implementation (Debian: apt-get install libopenmpi-dev openmpi-bin).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/sparsereg-mpi.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# OMPI_SKIP_MPICXX / MPICH_SKIP_MPICXX: the C API only (the deprecated C++ bindings do not compile warning-free).
mpicxx -std=c++17 -O2 -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX -Wall -Wextra -Wpedantic -Werror -I"$src/include" "$here/data_parallel.cpp" -o "$work/data_parallel"
extra=()
if [ "$(id -u)" = 0 ]; then extra+=(--allow-run-as-root); fi
# --oversubscribe: 2 ranks even on a machine that reports fewer slots.
mpirun "${extra[@]}" --oversubscribe -np "${RANKS:-2}" "$work/data_parallel"
