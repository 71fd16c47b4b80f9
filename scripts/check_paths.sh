#!/usr/bin/env bash
# Fail when a tracked file names a path of the machine it was written on or
# reaches outside the repository: users have neither. Checked:
#   - the folder that holds this checkout (where it is specific: not /, /tmp, ...),
#   - home directories (/home/NAME, /root/),
#   - the shared/ folder one level up (beside the checkout; users lack it).
# Temporaries made at run time (mkdtemp, mktemp -d) are fine; this script and
# the binary test data are not scanned.
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cd "$top"
parent=$(dirname "$top")
pats=(-e '/home/[A-Za-z_][A-Za-z0-9_.-]*/' -e '/root/' -e '\.\./shared')
case "$parent" in
  /|/tmp|/var/tmp|/usr|/opt|/srv|/mnt|/home) ;;
  *) pats+=(-e "$(printf '%s' "$parent/" | sed 's/[][\.*^$]/\\&/g')") ;;
esac
hits=$(git grep -n -I "${pats[@]}" -- . ':!scripts/check_paths.sh' ':!tests/data' || true)
if [ -n "$hits" ]; then
  echo "check_paths: tracked files name a machine path or reach outside the repository:" >&2
  printf '%s\n' "$hits" | head -n 20 >&2
  exit 1
fi
echo "check_paths: no machine paths, nothing outside the repository"
