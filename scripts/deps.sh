#!/usr/bin/env bash
# Install the Debian packages nlsq needs, only those that are missing.
# Usage: scripts/deps.sh [--ci] [--bench]
#   --ci     adds the tools the CI job uses
#   --bench  adds what bench/run_bench.sh needs for its peer and timings (GSL, GNU time)
set -euo pipefail
# liblzf-dev: the LZF filter nlsq_xpcs carries (APS 8-ID-I files are LZF);
# hdf5-filter-plugin: LZ4 and bzip2 HDF5 plugins, found by HDF5 in its
# compiled-in plugin folder (no HDF5_PLUGIN_PATH needed); libyaml-dev: fit_xpcs --config.
# python3-numpy, -scipy, -cffi, -pytest: the Python bindings (python/) and their ctest.
pkgs=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev libcmocka-dev
      libhdf5-dev hdf5-tools libpng-dev libopenmpi-dev openmpi-bin
      liblzf-dev hdf5-filter-plugin libyaml-dev
      python3-numpy python3-scipy python3-cffi python3-pytest)
for opt in "$@"; do
  case "$opt" in
    --ci) pkgs+=(valgrind clang libclang-rt-14-dev) ;;
    --bench) pkgs+=(libgsl-dev time) ;;
    *) echo "deps.sh: unknown option $opt (--ci, --bench)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
