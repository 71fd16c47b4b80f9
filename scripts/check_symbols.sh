#!/bin/sh
# check_symbols.sh LIB... - fail when a library defines an external symbol
# whose name does not start with "nlsq" (docs/api.md "Header comments and
# the code": a library's namespace is nlsq*).  Shared libraries: the dynamic
# symbols they export; static archives: every global symbol of their objects
# (hidden visibility does not keep a name out of an archive, so internal
# functions are named nlsq__*).  Prints each offending symbol with its library.
set -u
status=0
for lib in "$@"; do
    if [ ! -f "$lib" ]; then
        echo "check_symbols: $lib: no such file" >&2
        status=1
        continue
    fi
    case "$lib" in
        *.a) syms=$(nm -g --defined-only "$lib") || { echo "check_symbols: nm failed on $lib" >&2; status=1; continue; } ;;
        *)   syms=$(nm -D --defined-only "$lib") || { echo "check_symbols: nm failed on $lib" >&2; status=1; continue; } ;;
    esac
    bad=$(printf '%s\n' "$syms" | awk 'NF == 3 && $3 !~ /^nlsq/ { print $3 }' | sort -u)
    if [ -n "$bad" ]; then
        for s in $bad; do echo "$lib: external symbol without the nlsq prefix: $s"; done
        status=1
    fi
    n=$(printf '%s\n' "$syms" | awk 'NF == 3' | wc -l)
    if [ "$n" -eq 0 ]; then
        echo "check_symbols: $lib defines no external symbol (not a library?)" >&2
        status=1
    fi
done
exit $status
