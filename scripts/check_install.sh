#!/usr/bin/env bash
# Install nlsq from BUILD_DIR into a temporary prefix, then build and run a
# consumer program against it twice: with CMake (find_package) and with
# pkg-config.  Usage: scripts/check_install.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: check_install.sh BUILD_DIR}
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > /dev/null
libdir=$(dirname "$(find "$prefix" -name nlsq.pc | head -1)")/..

echo "-- consumer via CMake find_package(nlsq CONFIG)"
cmake -S "$src/tests/consumer" -B "$prefix/consumer-cmake" -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$prefix/consumer-cmake" > /dev/null
LD_LIBRARY_PATH="$libdir" "$prefix/consumer-cmake/consumer"
if [ -x "$prefix/consumer-cmake/consumer_xpcs" ]; then
  LD_LIBRARY_PATH="$libdir" "$prefix/consumer-cmake/consumer_xpcs"
fi

echo "-- consumer via pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Wextra -Werror "$src/tests/consumer/main.c" -o "$prefix/consumer-pc" \
   $(pkg-config --cflags --libs nlsq) -lm
LD_LIBRARY_PATH="$libdir" "$prefix/consumer-pc"
cc -std=c11 -Wall -Wextra -Werror "$src/tests/consumer/main.c" -o "$prefix/consumer-pc-static" \
   $(pkg-config --cflags nlsq) "$libdir/libnlsq.a" $(pkg-config --static --libs-only-l nlsq | sed 's/-lnlsq//')
"$prefix/consumer-pc-static"
if pkg-config --exists nlsq_xpcs 2>/dev/null; then
  cc -std=c11 -Wall -Wextra -Werror "$src/tests/consumer/main_xpcs.c" -o "$prefix/consumer-xpcs-pc" \
     $(pkg-config --cflags --libs nlsq_xpcs)
  LD_LIBRARY_PATH="$libdir" "$prefix/consumer-xpcs-pc"
fi
echo "install check: OK"
