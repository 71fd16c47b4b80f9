#!/usr/bin/env bash
# run_bench.sh - nlsq (bench_xpcs) against the GSL peer (bench/peers/gsl_xpcs)
# on the 23M-point XPCS benchmark, one fit per process, each under
# /usr/bin/time -v.  Fit wall time comes from the programs' JSON (data
# generation excluded), max RSS from time -v.  What each time includes:
#   fit s         nlsq: nlsq_lm and the covariance; GSL peer: its solve and its
#                 covariance (both from the same x0)
#   start s       init_s of both programs: the data-driven start point
#                 (nlsq_xpcs_start on an nlsq model of the same data: the peer
#                 computes it with the same code, so it is the same work)
#   start + fit   what a user waits for after the data are in memory; the
#                 "GSL / nlsq" line gives the ratio of both
#
# usage: bench/run_bench.sh [--repeat R] [--scale F] [--threads T] [--file PATH]
#                           [--scales "1/16 1/4 1"] [--repeat-4x R4] [--no-gsl-4x] [--no-threads] [--no-scaling]
#                           [--no-peer] [--no-floor] [--no-stream] [--stream-scales "1 2 4"]
#                           [--build-dir DIR] [--out DIR]
#
#   --repeat R     fits per program and configuration (default 3); medians reported
#   --scale F      size of the main comparison (default 1 = 23,046,023 rows; 1/16, 1/4 ...)
#   --threads T    threads of both programs in the main comparison (default 2)
#   --file PATH    an xpcs_synth file with 4x the rows (xpcs_synth PATH --frames 2002):
#                  adds a "4x" row to the scaling table, nlsq streaming it through the
#                  reader (--memory-budget 64 MiB), the GSL peer loading it into memory
#   --repeat-4x R4 fits per program at 4x (default 1)
#   --no-gsl-4x    do not run the GSL peer at 4x (it holds ~2 GB)
#   --no-threads   skip nlsq 1 thread vs T threads
#   --no-scaling   skip the scaling table (1/16, 1/4, 1[, 4x])
#   --scales "LIST" the scales of the scaling table (default "1/16 1/4 1")
#   --no-peer      nlsq only
#   --no-floor     skip the floor program (bench/floor_xpcs: one fused pass, the unit of
#                  "floor passes": fit time / floor pass time)
#   --no-stream    skip fit_xpcs on a generated benchmark file, cached against streamed
#                  (--memory-budget 16), end-to-end wall time and max RSS
#   --no-dense     skip the oversubscription check: bench_engine on a dense problem with
#                  103 parameters, 1 against T engine threads, OpenBLAS's own threads
#                  left at their default (OPENBLAS_NUM_THREADS unset)
#   --stream-scales "LIST"  sizes (1 = N 1001, 2 = N 1416, 4 = N 2002) of the streamed
#                  fit_xpcs table (default "1"; files are generated in OUT and deleted)
#   --build-dir    build directory (default build-bench; configured Release and built if needed)
#   --out DIR      where raw JSON, time -v logs and results.tsv go
#                  (default DIR = <build-dir>/bench-results/<date>)
#   --summarize DIR  only print the tables of earlier runs (DIR/results.tsv;
#                  repeatable: the runs of several DIRs are pooled)
#
# Runs alternate nlsq / GSL / floor so that drifting machine load hits all alike;
# every run's 1-minute load average is recorded (results.tsv, tables).
# OPENBLAS_NUM_THREADS=1 is set for the peer and the floor (nlsq's solves set
# OpenBLAS to one thread themselves: the engine's workers are the parallelism).
set -euo pipefail
# shellcheck source=bench/time_v.sh
. "$(dirname "$0")/time_v.sh"
export OPENBLAS_NUM_THREADS=1

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPEAT=3 SCALE=1 SCALES="1/16 1/4 1" THREADS=2 FILE4X="" REPEAT4X=1 GSL4X=1 DO_THREADS=1 DO_SCALING=1 DO_PEER=1
DO_FLOOR=1 DO_STREAM=1 DO_DENSE=1 STREAM_SCALES="1"
BUILD="$ROOT/build-bench" OUT="" SUMMARIZE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) REPEAT=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --scales) SCALES=$2; shift 2 ;;
    --file) FILE4X=$2; shift 2 ;;
    --repeat-4x) REPEAT4X=$2; shift 2 ;;
    --no-gsl-4x) GSL4X=0; shift ;;
    --no-threads) DO_THREADS=0; shift ;;
    --no-scaling) DO_SCALING=0; shift ;;
    --no-peer) DO_PEER=0; shift ;;
    --no-floor) DO_FLOOR=0; shift ;;
    --no-stream) DO_STREAM=0; shift ;;
    --no-dense) DO_DENSE=0; shift ;;
    --stream-scales) STREAM_SCALES=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --summarize) SUMMARIZE="$SUMMARIZE $2/results.tsv"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "run_bench.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$SUMMARIZE" ]; then
  [ -n "$OUT" ] || OUT="$BUILD/bench-results/$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$OUT"
fi

# ---------------------------------------------------------------- tables
# medians per (program, scale, threads) over every group
summary() {
  awk -F'\t' '$1 != "group" && ($2 == "nlsq" || $2 == "gsl") {
      k = $2 "\t" $3 "\t" $4; n[k]++
      fit[k, n[k]] = $6; rss[k, n[k]] = $10
      m[k] = $5; it[k] = $7; nj[k] = $8; ne[k] = $9; cost[k] = $12; st[k] = $13
      if (!(k in order)) { order[k] = ++nk; keys[nk] = k }
    }
    function med(arr, k, c,   i, j, t, v) {
      for (i = 1; i <= c; i++) v[i] = arr[k, i] + 0
      for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    }
    END {
      printf "| program | scale | threads | m | fits | fit s (median) | fit s (min) | iterations | passes J + r | rows/s per pass (median) | max RSS MiB (median) | final cost | status |\n"
      printf "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
      for (i = 1; i <= nk; i++) {
        k = keys[i]; split(k, f, "\t")
        F = med(fit, k, n[k]); R = med(rss, k, n[k]); lo = fit[k, 1] + 0
        for (j = 2; j <= n[k]; j++) if (fit[k, j] + 0 < lo) lo = fit[k, j] + 0
        printf "| %s | %s | %s | %d | %d | %.2f | %.2f | %s | %s + %s | %.2f M | %.0f | %.10e | %s |\n", \
          f[1] == "gsl" ? "GSL peer" : "nlsq", f[2], f[3], m[k], n[k], F, lo, it[k], nj[k], ne[k], \
          m[k] * (nj[k] + ne[k]) / F / 1e6, R, cost[k], st[k]
        MF[f[1], f[2], f[3]] = F; MR[f[1], f[2], f[3]] = R; C[f[1], f[2], f[3]] = cost[k]
        if (!((f[2] "\t" f[3]) in S)) { S[f[2] "\t" f[3]] = 1; so[++ns] = f[2] "\t" f[3] }
      }
      printf "\n| scale | threads | GSL/nlsq fit time | GSL/nlsq max RSS | cost (GSL - nlsq) / nlsq |\n|---|---|---:|---:|---:|\n"
      for (q = 1; q <= ns; q++) { split(so[q], g, "\t")
        if ((("nlsq", g[1], g[2]) in MF) && (("gsl", g[1], g[2]) in MF))
          printf "| %s | %s | %.2f | %.2f | %.2e |\n", g[1], g[2], MF["gsl", g[1], g[2]] / MF["nlsq", g[1], g[2]], \
            MR["gsl", g[1], g[2]] / MR["nlsq", g[1], g[2]], \
            (C["gsl", g[1], g[2]] - C["nlsq", g[1], g[2]]) / C["nlsq", g[1], g[2]]
      }
    }' "$@"
}

# floor passes of the main comparison and fit_xpcs cached / streamed (medians)
summary_floor() {
  awk -F'\t' '
    function med(arr, k, c,   i, j, t, v) {
      for (i = 1; i <= c; i++) v[i] = arr[k, i] + 0
      for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    }
    $1 == "group" { next }
    $1 == "main" || $1 == "stream" {
      k = $1 "\t" $2 "\t" $3 "\t" $4; n[k]++
      fit[k, n[k]] = $6; rss[k, n[k]] = $10; wall[k, n[k]] = $15; ld[k, n[k]] = $16
      ini[k, n[k]] = $17 + 0; sf[k, n[k]] = $6 + $17
      it[k] = $7; nj[k] = $8; ne[k] = $9; cost[k] = $12; st[k] = $13
      if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
    }
    END {
      for (q = 1; q <= nk; q++) { k = keys[q]; split(k, f, "\t")
        F[k] = med(fit, k, n[k]); R[k] = med(rss, k, n[k]); W[k] = med(wall, k, n[k])
        I[k] = med(ini, k, n[k]); SF[k] = med(sf, k, n[k])
        lmin[k] = ld[k, 1]; lmax[k] = ld[k, 1]
        for (i = 2; i <= n[k]; i++) { if (ld[k, i] + 0 < lmin[k] + 0) lmin[k] = ld[k, i]; if (ld[k, i] + 0 > lmax[k] + 0) lmax[k] = ld[k, i] }
        if (f[1] == "main" && f[2] == "floor") { FP = F[k]; FK = k }
      }
      if (FP > 0) {
        printf "\n| main comparison | threads | runs | time s (median) | start s (median) | start + fit s (median) | passes J + r | floor passes (time / floor pass) | per pass / floor pass | max RSS MiB | load | final cost (floor: at x0) |\n"
        printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n"
        printf "| floor pass (bench/floor_xpcs) | %s | %d | %.4f | - | - | 1 | 1 | 1 | %.0f | %s-%s | %.10e |\n", \
          substr(FK, length(FK)), n[FK], FP, R[FK], lmin[FK], lmax[FK], cost[FK]
        for (q = 1; q <= nk; q++) { k = keys[q]; split(k, f, "\t")
          if (f[1] != "main" || f[2] == "floor") continue
          np = nj[k] + ne[k]
          printf "| %s | %s | %d | %.3f | %.3f | %.3f | %s + %s | %.1f | %.2f | %.0f | %s-%s | %.10e |\n", \
            (f[2] == "gsl" ? "GSL peer" : "nlsq bench_xpcs"), f[4], n[k], F[k], I[k], SF[k], nj[k], ne[k], F[k] / FP, \
            (np > 0 ? F[k] / np / FP : 0), R[k], lmin[k], lmax[k], cost[k]
          if (f[2] == "nlsq") NL = k; if (f[2] == "gsl") GL = k
        }
        if (NL != "" && GL != "")
          printf "\nGSL / nlsq: %.2fx the fit time, %.2fx the start + fit time, %.2fx the max RSS\n", \
            F[GL] / F[NL], SF[GL] / SF[NL], R[GL] / R[NL]
      }
      hdr = 0
      for (q = 1; q <= nk; q++) { k = keys[q]; split(k, f, "\t")
        if (f[1] != "stream") continue
        if (!hdr) {
          printf "\n| fit_xpcs on the benchmark file | scale | threads | runs | wall s (median) | fit s (median) | passes J + r | max RSS MiB | load | final cost |\n"
          printf "|---|---|---:|---:|---:|---:|---:|---:|---|---:|\n"; hdr = 1
        }
        printf "| %s | %s | %s | %d | %.3f | %.3f | %s + %s | %.0f | %s-%s | %.10e |\n", \
          (f[2] == "fitx-cached" ? "cached (default budget)" : "streamed (--memory-budget 16)"), f[3], f[4], \
          n[k], W[k], F[k], nj[k], ne[k], R[k], lmin[k], lmax[k], cost[k]
        if (f[2] == "fitx-streamed" && (("stream\tfitx-cached\t" f[3] "\t" f[4]) in F))
          ratio[f[3]] = F[k] / F["stream\tfitx-cached\t" f[3] "\t" f[4]]
      }
      for (s in ratio) printf "streamed / cached fit time at scale %s: %.2f\n", s, ratio[s]
    }' "$@"
}

if [ -n "$SUMMARIZE" ]; then   # tables of earlier runs, results.tsv files
  summary $SUMMARIZE
  summary_floor $SUMMARIZE
  exit 0
fi

# ---------------------------------------------------------------- build
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DNLSQ_WERROR=ON >&2
fi
cmake --build "$BUILD" -j2 --target bench_xpcs >&2
NLSQ="$BUILD/bench/bench_xpcs"
GSL="$BUILD/bench/peers/gsl_xpcs"
FLOOR="$BUILD/bench/floor_xpcs"
FITX="$BUILD/examples/fit_xpcs"
SYNTH="$BUILD/examples/xpcs_synth"
if [ "$DO_FLOOR" = 1 ]; then
  cmake --build "$BUILD" -j2 --target floor_xpcs >&2 || true
  if [ ! -x "$FLOOR" ]; then
    echo "run_bench.sh: the floor program was not built (x86_64 + libmvec only): no floor passes" >&2
    DO_FLOOR=0
  fi
fi
if [ "$DO_STREAM" = 1 ]; then
  cmake --build "$BUILD" -j2 --target fit_xpcs xpcs_synth >&2 || true
  if [ ! -x "$FITX" ] || [ ! -x "$SYNTH" ]; then
    echo "run_bench.sh: fit_xpcs / xpcs_synth were not built: no cached vs streamed runs" >&2
    DO_STREAM=0
  fi
fi
if [ "$DO_PEER" = 1 ]; then
  cmake --build "$BUILD" -j2 --target gsl_xpcs >&2 || true
  if [ ! -x "$GSL" ]; then
    echo "run_bench.sh: the GSL peer was not built (pkg-config gsl? libgsl-dev): nlsq only" >&2
    DO_PEER=0
  fi
fi

# ---------------------------------------------------------------- /usr/bin/time
TIME=/usr/bin/time
if [ ! -x "$TIME" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "run_bench.sh: installing GNU time (/usr/bin/time)" >&2
  $SUDO apt-get install -y -qq time >&2 || { $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq time >&2; }
fi

# ---------------------------------------------------------------- one run
RES="$OUT/results.tsv"
printf 'group\tprogram\tscale\tthreads\tm\tfit_s\titerations\tn_jac\tn_eval\tmaxrss_mib\tvmhwm_mib\tcost\tstatus\tgen_s\twall_s\tload1\tinit_s\n' > "$RES"
RUN=0

jget() {   # jget KEY JSON -> the value (numbers, strings without quotes)
  printf '%s' "$2" | grep -o "\"$1\": *[^,}]*" | head -1 | cut -d: -f2- | tr -d '" ' || true
}

# run_one GROUP PROGRAM SCALE-LABEL THREADS ARGS...
#   PROGRAM: nlsq (bench_xpcs), gsl (the peer), floor (floor_xpcs: fit_s is its median
#   pass), fitx-cached / fitx-streamed (fit_xpcs on a file: fit_s its "seconds")
run_one() {
  local group=$1 prog=$2 slabel=$3 thr=$4; shift 4
  local exe=$NLSQ
  case "$prog" in gsl) exe=$GSL ;; floor) exe=$FLOOR ;; fitx-*) exe=$FITX ;; esac
  RUN=$((RUN + 1))
  local tag; tag=$(printf '%03d-%s-%s' "$RUN" "$group" "$prog")
  local rc=0
  echo "[$(date +%H:%M:%S)] $prog $* --threads $thr (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  local t0; t0=$(date +%s%N)
  "$TIME" -v -o "$OUT/$tag.time" "$exe" "$@" --json --threads "$thr" > "$OUT/$tag.json" 2> "$OUT/$tag.err" || rc=$?
  local wall; wall=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
  local json; json=$(grep '^{' "$OUT/$tag.json" | tail -1 || true)
  if [ -z "$json" ]; then
    echo "run_bench.sh: $prog $* failed (rc $rc), see $OUT/$tag.err" >&2
    return 0
  fi
  local rss; rss=$(time_v_rss_mib "$OUT/$tag.time")
  local fit; fit=$(jget fit_s "$json")
  case "$prog" in floor) fit=$(jget pass_s "$json") ;; fitx-*) fit=$(jget seconds "$json") ;; esac
  local m; m=$(jget m "$json"); [ -n "$m" ] || m=$(jget n_rows "$json")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$group" "$prog" "$slabel" "$thr" \
    "$m" "$fit" "$(jget iterations "$json")" "$(jget n_jac "$json")" \
    "$(jget n_eval "$json")" "$rss" \
    "$(jget peak_rss_mib "$json")" "$(jget cost "$json")" "$(jget status "$json")" \
    "$(jget gen_s "$json")" "$wall" "$(cut -d' ' -f1 /proc/loadavg)" "$(jget init_s "$json")" >> "$RES"
  tail -1 "$RES" | awk -F'\t' '{printf "    m %s  fit %.3f s  wall %.2f s  it %s  passes %s+%s  maxRSS %s MiB  cost %s  %s\n", $5, $6, $15, $7, $8, $9, $10, $12, $13}' >&2
}

# ---------------------------------------------------------------- runs
echo "run_bench.sh: results in $OUT" >&2
{
  echo "date: $(date -Iseconds)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ local changes)')"
  echo "host: $(uname -srm), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "cpu: $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')"
  echo "compiler: $(${CC:-cc} --version | head -1)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"

# 1. main comparison, alternating
for r in $(seq 1 "$REPEAT"); do
  run_one main nlsq "$SCALE" "$THREADS" --scale "$SCALE"
  if [ "$DO_PEER" = 1 ]; then run_one main gsl "$SCALE" "$THREADS" --scale "$SCALE"; fi
  if [ "$DO_FLOOR" = 1 ]; then run_one main floor "$SCALE" "$THREADS" --scale "$SCALE" --repeat 5; fi
done

# 2. nlsq threads: 1 vs THREADS (THREADS from the main runs)
if [ "$DO_THREADS" = 1 ] && [ "$THREADS" != 1 ]; then
  for r in $(seq 1 "$REPEAT"); do
    run_one threads nlsq "$SCALE" 1 --scale "$SCALE"
  done
fi

# 3. scaling in m
if [ "$DO_SCALING" = 1 ]; then
  for s in $SCALES; do
    if [ "$s" = "$SCALE" ]; then continue; fi   # already in the main comparison
    for r in $(seq 1 "$REPEAT"); do
      run_one scaling nlsq "$s" "$THREADS" --scale "$s"
      if [ "$DO_PEER" = 1 ]; then run_one scaling gsl "$s" "$THREADS" --scale "$s"; fi
    done
  done
  if [ -n "$FILE4X" ]; then
    for r in $(seq 1 "$REPEAT4X"); do
      run_one scaling nlsq 4x-file "$THREADS" --file "$FILE4X" --memory-budget 64
      if [ "$DO_PEER" = 1 ] && [ "$GSL4X" = 1 ]; then
        run_one scaling gsl 4x-file "$THREADS" --file "$FILE4X"
      fi
    done
  fi
fi
# 4. fit_xpcs end to end on generated benchmark files: cached against streamed
if [ "$DO_STREAM" = 1 ]; then
  for s in $STREAM_SCALES; do
    frames=$(awk -v s="$s" 'BEGIN {n = split(s, q, "/"); v = n == 2 ? q[1] / q[2] : s; printf "%d", 1001 * sqrt(v) + 0.5}')
    f="$OUT/bench-x$(printf '%s' "$s" | tr / _).h5"
    echo "[$(date +%H:%M:%S)] xpcs_synth $f --frames $frames" >&2
    "$SYNTH" "$f" --frames "$frames" > /dev/null
    # the generator's 54 MiB (1x) are written back to disk before the timed
    # runs, not during the first of them (which ran 20-40 % slower, cached
    # and streamed alike)
    sync "$f" 2> /dev/null || sync
    for r in $(seq 1 "$REPEAT"); do
      if [ "$s" = 1 ]; then   # the cached run needs the rows in memory: 1x only
        run_one stream fitx-cached "$s" "$THREADS" "$f" --dt 1e-3 --gap 2e6 --triangle full --include-diagonal
      fi
      run_one stream fitx-streamed "$s" "$THREADS" "$f" --dt 1e-3 --gap 2e6 --triangle full \
        --include-diagonal --memory-budget 16
      [ "$s" = 1 ] || break   # larger files: one streamed run each
    done
    rm -f "$f"
  done
fi
# 5. no oversubscription: a dense 103-parameter pass, 1 vs THREADS engine threads,
#    OpenBLAS's threads at their default (the library sets 1 inside a solve)
if [ "$DO_DENSE" = 1 ] && cmake --build "$BUILD" -j2 --target bench_engine >&2; then
  for r in $(seq 1 "$REPEAT"); do
    echo "[$(date +%H:%M:%S)] bench_engine --params 103 --threads $THREADS --only dense (OPENBLAS_NUM_THREADS unset)" >&2
    env -u OPENBLAS_NUM_THREADS "$BUILD/bench/bench_engine" --params 103 --threads "$THREADS" \
      --only dense --repeat 3 > "$OUT/dense-$r.txt" 2>&1 || true
    awk -v r="$r" -v l="$(cut -d' ' -f1 /proc/loadavg)" '/nlsq dense, 1 thread/ {one = $(NF - 2)}
      /nlsq dense, threads/ {t = $(NF - 2)} END {print r "\t" one "\t" t "\t" l}' "$OUT/dense-$r.txt" >> "$OUT/dense.tsv"
  done
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

{
  cat "$OUT/machine.txt"
  echo
  summary "$RES"
  summary_floor "$RES"
  if [ -s "$OUT/dense.tsv" ]; then
    printf '\n| dense pass, p = 103 (bench_engine, OpenBLAS threads at default) | run | 1 thread s | %s threads s | load |\n|---|---:|---:|---:|---|\n' "$THREADS"
    awk -F'\t' '{printf "| | %s | %s | %s | %s |\n", $1, $2, $3, $4}' "$OUT/dense.tsv"
  fi
} | tee "$OUT/summary.md"
