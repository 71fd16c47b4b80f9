#!/usr/bin/env bash
# Build the libFuzzer harnesses with clang and run each for SECONDS (default 60).
# Usage: scripts/fuzz.sh [SECONDS] [HARNESS...]
# Corpora live in fuzz/corpus/<harness>/ (seeds committed; new finds are kept
# in build-fuzz/corpus/<harness>/).  A crash leaves its input in build-fuzz/
# and the script exits non-zero; turn every crash into a regression test.
set -euo pipefail
secs=${1:-60}
shift || true
src=$(cd "$(dirname "$0")/.." && pwd)
build="$src/build-fuzz"
CC=clang cmake -S "$src" -B "$build" -DNLSQ_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNLSQ_BUILD_TESTS=OFF -DNLSQ_BUILD_BENCH=OFF > /dev/null
cmake --build "$build" -j2 > /dev/null
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  for f in "$build"/fuzz/fuzz_*; do [ -x "$f" ] && harnesses+=("$(basename "$f")"); done
fi
status=0
for h in "${harnesses[@]}"; do
  mkdir -p "$build/corpus/$h"
  seeds=()
  [ -d "$src/fuzz/corpus/$h" ] && seeds=("$src/fuzz/corpus/$h")
  echo "== $h for ${secs}s"
  if ! (cd "$build" && ASAN_OPTIONS=detect_leaks=1 "./fuzz/$h" "corpus/$h" "${seeds[@]}" \
        -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        > "$build/$h.log" 2>&1); then
    echo "   FAILED: see $build/$h.log"; tail -30 "$build/$h.log"; status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$build/$h.log" | sed 's/^/   /'
  fi
done
exit $status
