# shellcheck shell=bash
# time_v.sh - sourced by the bench scripts: figures from a /usr/bin/time -v log.
# time_v_wall FILE: the elapsed wall clock in seconds ("h:mm:ss" or "m:ss.ss")
time_v_wall() {
  awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0;
      for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$1"
}
# time_v_rss_mib FILE: the maximum resident set size in MiB, one decimal
time_v_rss_mib() {
  awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); printf "%.1f", $2 / 1024}' "$1"
}
