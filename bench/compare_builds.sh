#!/usr/bin/env bash
# compare_builds.sh - one fit_xpcs command run by two builds in turn (base,
# new, base, new, ...: drifting load hits both alike), on one xpcs_synth
# file: median wall s and max RSS MiB of each, new / base ratios, the load
# before each run, and whether the two builds printed the same JSON (less
# its timings and the file's path).
#
# usage: bench/compare_builds.sh --base DIR --new DIR [--repeat R]
#            [--synth "XPCS_SYNTH ARGS"] [--out DIR] -- FIT_XPCS ARGS...
#   --base, --new  build directories with examples/fit_xpcs (the file is
#                  written by the new build's examples/xpcs_synth)
#   --repeat R     rounds (default 3); medians reported
#   --synth ARGS   xpcs_synth's options (default: the corrprofile coverage
#                  file of seed 1: 200 frames, 6 angles, frame-shared noise)
#   --out DIR      the file, JSON, logs and results.tsv (default a mktemp -d)
# Example (a bootstrap test on the 200-frame file, one thread):
#   bench/compare_builds.sh --base /tmp/old/build --new build -- --dt 2e-3 \
#     --gap 2e6 --threads 1 --errors robust --test gamma_dot_0=0.001 --boot 40
set -euo pipefail
# shellcheck source=bench/time_v.sh
. "$(dirname "$0")/time_v.sh"
BASE="" NEW="" REPEAT=3 OUT=""
SYNTH="--frames 200 --angles 6 --dt 2e-3 --seed 1 --float64 --frame-share 0.5 --noise 0.01"
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE=$2; shift 2 ;;
    --new) NEW=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --synth) SYNTH=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "compare_builds.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for b in "$BASE" "$NEW"; do
  [ -x "$b/examples/fit_xpcs" ] || { echo "compare_builds.sh: no $b/examples/fit_xpcs (--base, --new)" >&2; exit 2; }
done
[ -n "$OUT" ] || OUT=$(mktemp -d)
mkdir -p "$OUT"
FILE="$OUT/bench.h5"
# shellcheck disable=SC2086
"$NEW/examples/xpcs_synth" "$FILE" $SYNTH > /dev/null
RES="$OUT/results.tsv"
printf "build\tround\twall_s\trss_mib\tload\trc\n" > "$RES"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$REPEAT"); do
  for which in base new; do
    dir=$BASE; [ "$which" = new ] && dir=$NEW
    load=$(cut -d' ' -f1 /proc/loadavg)
    rc=0
    /usr/bin/time -v "$dir/examples/fit_xpcs" "$FILE" --json "$@" > "$OUT/$which.$r.json" \
      2> "$OUT/$which.$r.time" || rc=$?
    wall=$(time_v_wall "$OUT/$which.$r.time")
    rss=$(time_v_rss_mib "$OUT/$which.$r.time")
    printf "%s\t%d\t%s\t%s\t%s\t%d\n" "$which" "$r" "$wall" "$rss" "$load" "$rc" >> "$RES"
    echo "[$(date +%H:%M:%S)] $which round $r: ${wall} s, ${rss} MiB, load $load, exit $rc" >&2
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" "$REPEAT" <<'EOF'
import csv, json, statistics, sys
out, R = sys.argv[1], int(sys.argv[2])
rows = list(csv.DictReader(open(out + "/results.tsv"), delimiter="\t"))
def med(b, k): return statistics.median(float(r[k]) for r in rows if r["build"] == b)
def strip(d):   # timings and the file's path differ run to run
    if isinstance(d, dict):
        return {k: strip(v) for k, v in d.items() if k not in ("seconds", "file")}
    if isinstance(d, list): return [strip(v) for v in d]
    return d
def load(b, r):
    try: return strip(json.load(open("%s/%s.%d.json" % (out, b, r))))
    except ValueError: return None
same = all(load("base", r) == load("new", r) for r in range(1, R + 1))
print("| build | runs | wall s (median) | max RSS MiB (median) | loads |")
print("|---|---|---|---|---|")
for b in ("base", "new"):
    print("| %s | %d | %.1f | %.1f | %s |" % (b, R, med(b, "wall_s"), med(b, "rss_mib"),
          " ".join(r["load"] for r in rows if r["build"] == b)))
print("new / base: wall %.2f, RSS %.2f; same JSON (less timings): %s" % (
    med("new", "wall_s") / med("base", "wall_s"), med("new", "rss_mib") / med("base", "rss_mib"),
    "yes" if same else "NO"))
EOF
