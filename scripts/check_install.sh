#!/usr/bin/env bash
# Install nlsq from BUILD_DIR into a temporary prefix, then build and run
# consumer programs against it, as users would:
#   - a C project with CMake find_package(nlsq CONFIG), with the xpcs and mpi
#     components when the build has them;
#   - a C++17-only project (project(x CXX)) asking for the core alone, whose
#     binary must not link libhdf5 or libmpi;
#   - the same C and C++ programs through pkg-config (shared and static).
# Usage: scripts/check_install.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: check_install.sh BUILD_DIR}
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > /dev/null
libdir=$(dirname "$(find "$prefix" -name nlsq.pc | head -1)")/..

# fail when binary $1 needs HDF5 or MPI (directly or through libnlsq)
no_hdf5_mpi() {
  local deps
  deps=$(LD_LIBRARY_PATH="$libdir" ldd "$1")
  if grep -Ei 'libhdf5|libmpi' <<< "$deps"; then
    echo "FAIL: $1 links HDF5 or MPI" >&2
    exit 1
  fi
  echo "   $(basename "$1"): needs neither libhdf5 nor libmpi ($(readelf -d "$1" | grep -c NEEDED) direct NEEDED entries)"
}

echo "-- C consumer via CMake find_package(nlsq CONFIG ... OPTIONAL_COMPONENTS xpcs mpi)"
cmake -S "$src/tests/consumer" -B "$prefix/consumer-cmake" -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$prefix/consumer-cmake" > /dev/null
LD_LIBRARY_PATH="$libdir" "$prefix/consumer-cmake/consumer"
no_hdf5_mpi "$prefix/consumer-cmake/consumer"
if [ -x "$prefix/consumer-cmake/consumer_xpcs" ]; then
  LD_LIBRARY_PATH="$libdir" "$prefix/consumer-cmake/consumer_xpcs"
fi
if [ -x "$prefix/consumer-cmake/consumer_mpi" ]; then
  LD_LIBRARY_PATH="$libdir" "$prefix/consumer-cmake/consumer_mpi"
fi

echo "-- C++17-only consumer via CMake find_package(nlsq CONFIG REQUIRED)"
cmake -S "$src/tests/consumer_cxx" -B "$prefix/consumer-cxx" -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$prefix/consumer-cxx" > /dev/null
LD_LIBRARY_PATH="$libdir" "$prefix/consumer-cxx/consumer_cxx"
no_hdf5_mpi "$prefix/consumer-cxx/consumer_cxx"

echo "-- consumers via pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Wextra -Werror "$src/tests/consumer/main.c" -o "$prefix/consumer-pc" \
   $(pkg-config --cflags --libs nlsq) -lm
LD_LIBRARY_PATH="$libdir" "$prefix/consumer-pc"
cc -std=c11 -Wall -Wextra -Werror "$src/tests/consumer/main.c" -o "$prefix/consumer-pc-static" \
   $(pkg-config --cflags nlsq) "$libdir/libnlsq.a" $(pkg-config --static --libs-only-l nlsq | sed 's/-lnlsq//')
"$prefix/consumer-pc-static"
no_hdf5_mpi "$prefix/consumer-pc-static"
c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror "$src/tests/consumer_cxx/main.cpp" -o "$prefix/consumer-cxx-pc" \
    $(pkg-config --cflags --libs nlsq)
LD_LIBRARY_PATH="$libdir" "$prefix/consumer-cxx-pc"
no_hdf5_mpi "$prefix/consumer-cxx-pc"
if pkg-config --exists nlsq_xpcs 2>/dev/null; then
  cc -std=c11 -Wall -Wextra -Werror "$src/tests/consumer/main_xpcs.c" -o "$prefix/consumer-xpcs-pc" \
     $(pkg-config --cflags --libs nlsq_xpcs)
  LD_LIBRARY_PATH="$libdir" "$prefix/consumer-xpcs-pc"
fi
if pkg-config --exists nlsq_mpi 2>/dev/null; then
  cc -std=c11 -Wall -Wextra -Werror "$src/tests/consumer/main_mpi.c" -o "$prefix/consumer-mpi-pc" \
     $(pkg-config --cflags --libs nlsq_mpi)
  LD_LIBRARY_PATH="$libdir" "$prefix/consumer-mpi-pc"
fi
echo "install check: OK"
