#!/usr/bin/env bash
# uncertainty_cost.sh - what fit_xpcs's uncertainty options cost on the 23M
# benchmark file, as ratios against the plain fit run in the same script.
#
# Configurations, each one fit_xpcs process under /usr/bin/time -v, run in
# turn (plain, then each option, R rounds, so drifting load hits all alike):
#   plain     the fit and its default covariance
#   robust    --errors robust (one more Jacobian pass)
#   test      --test gamma_dot_0=<truth> --boot B (nlsq_profile_test: B
#             replicates, 7 or 8 solves each, on 23M rows: beyond the
#             bootstrap's cache of 2^23 rows, so each chunk evaluates the
#             model at the held point again)
#   test_rob  the same with --errors robust (frame clusters)
# and, asked by --configs:
#   start_a, start_b  --start global from issue 14's two bad starts (a:
#             D0=1000 alpha=0.5 gamma_dot_0=0.02 beta=-0.5 phi0=-6; b:
#             D0=5e4 gamma_dot_0=5e-3): the global stage, then the fit
#   profile, profile_rob  --profile physical (and with --errors robust)
# Reported per configuration: median wall s and max RSS MiB, their ratios
# to plain, the test's solves, the global stage's own seconds (its JSON
# start.seconds), and the 1-minute load before each run.
#
# usage: bench/uncertainty_cost.sh [--repeat R] [--boot B] [--threads T]
#                                  [--configs "plain ..."] [--build-dir DIR] [--out DIR]
#   --repeat R   rounds (default 3); medians reported
#   --configs L  the configurations run (default "plain robust test
#                test_rob"; plain is always run, first in each round)
#   --boot B     replicates of the test (default 10, fit_xpcs's least)
#   --threads T  fit_xpcs --threads (default 2)
#   --build-dir  build directory (default build-bench; configured Release if
#                new, fit_xpcs and xpcs_synth rebuilt from the tree)
#   --out DIR    the file, logs and results.tsv (default a mktemp -d)
set -euo pipefail
# shellcheck source=bench/time_v.sh
. "$(dirname "$0")/time_v.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPEAT=3 BOOT=10 THREADS=2 BUILD="$ROOT/build-bench" OUT="" CONFIGS="robust test test_rob"
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) REPEAT=$2; shift 2 ;;
    --boot) BOOT=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --configs) CONFIGS=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "uncertainty_cost.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || OUT=$(mktemp -d)
mkdir -p "$OUT"
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target fit_xpcs xpcs_synth >/dev/null   # up to date with the tree
FILE="$OUT/bench.h5"
[ -f "$FILE" ] || "$BUILD/examples/xpcs_synth" "$FILE" --frames 1001 >/dev/null
# gamma_dot_0's truth, from the file's nlsq_synth group (the fit's JSON "truth")
BASE=("$BUILD/examples/fit_xpcs" "$FILE" --dt 1e-3 --gap 2e6 --triangle full
      --include-diagonal --threads "$THREADS" --json)
truth=$("${BASE[@]}" --max-iter 1 | python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["truth"]["params"]["gamma_dot_0"]))' || true)
[ -n "$truth" ] || { echo "uncertainty_cost.sh: no truth in $FILE" >&2; exit 1; }
declare -A EXTRA=(
  [plain]=""
  [robust]="--errors robust"
  [test]="--test gamma_dot_0=$truth --boot $BOOT"
  [test_rob]="--errors robust --test gamma_dot_0=$truth --boot $BOOT"
  [start_a]="--start global --init D0=1000 --init alpha=0.5 --init gamma_dot_0=0.02 --init beta=-0.5 --init phi0=-6"
  [start_b]="--start global --init D0=5e4 --init gamma_dot_0=5e-3"
  [profile]="--profile physical"
  [profile_rob]="--errors robust --profile physical"
)
ORDER="plain"
for c in $CONFIGS; do
  [ "$c" = plain ] && continue
  [ -n "${EXTRA[$c]+set}" ] || { echo "uncertainty_cost.sh: unknown configuration $c" >&2; exit 2; }
  ORDER="$ORDER $c"
done
RES="$OUT/results.tsv"
printf "config\tround\twall_s\trss_mib\tload\tsolves\tstatus\tstart_s\n" > "$RES"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$REPEAT"); do
  for c in $ORDER; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2086
    /usr/bin/time -v "${BASE[@]}" ${EXTRA[$c]} > "$OUT/$c.$r.json" 2> "$OUT/$c.$r.time" || true
    wall=$(time_v_wall "$OUT/$c.$r.time")
    rss=$(time_v_rss_mib "$OUT/$c.$r.time")
    read -r solves status start_s < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
t = d.get("tests", {}).get("gamma_dot_0")
st = d.get("start", {})
print(t["n_solves"] if t else 0, d["status"], "%.3f" % st["seconds"] if "seconds" in st else "-")' "$OUT/$c.$r.json")
    printf "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n" "$c" "$r" "$wall" "$rss" "$load" "$solves" "$status" "$start_s" >> "$RES"
    echo "[$(date +%H:%M:%S)] $c round $r: ${wall} s, ${rss} MiB, load $load, solves $solves, $status, stage $start_s s" >&2
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RES" "$ORDER" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
order = sys.argv[2].split()
med = {c: (statistics.median(float(r["wall_s"]) for r in rows if r["config"] == c),
           statistics.median(float(r["rss_mib"]) for r in rows if r["config"] == c))
       for c in order}
print("| config | runs | wall s (median) | wall / plain | max RSS MiB (median) | RSS / plain | test solves | global stage s (median) | status | loads |")
print("|---|---|---|---|---|---|---|---|---|---|")
for c in order:
    rs = [r for r in rows if r["config"] == c]
    st = [float(r["start_s"]) for r in rs if r["start_s"] != "-"]
    print("| %s | %d | %.2f | %.2f | %.0f | %.2f | %s | %s | %s | %s |" % (
        c, len(rs), med[c][0], med[c][0] / med["plain"][0], med[c][1], med[c][1] / med["plain"][1],
        rs[0]["solves"], "%.3f" % statistics.median(st) if st else "-",
        " ".join(sorted(set(r["status"] for r in rs))), " ".join(r["load"] for r in rs)))
EOF
