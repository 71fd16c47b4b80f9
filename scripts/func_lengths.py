#!/usr/bin/env python3
"""func_lengths.py - the longest C functions in a tree (lines from the line of
the name to the closing brace), for the "no function over ~100 lines" rule.

usage: scripts/func_lengths.py [--top N] [--over L] DIR_OR_FILE...

Assumes the project's style: a definition's closing brace is a lone "}" in
column 0 and its body opens with "{" (alone or at the end of the signature).
Data tables (initialisers ending in "};") are not functions and are skipped.
"""
import re
import sys
from pathlib import Path

NAME = re.compile(r'^[A-Za-z_][\w \*]*?\b([A-Za-z_]\w*)\s*\(')


def functions(path):
    lines = path.read_text(errors='replace').splitlines()
    start, name = None, None
    for i, line in enumerate(lines):
        if start is None:
            m = NAME.match(line)
            if m and not line.rstrip().endswith(';') and '=' not in line.split('(')[0]:
                start, name = i, m.group(1)
        elif line.startswith('}'):
            if line.strip() == '}':
                yield name, start + 1, i - start + 1
            start = None
        elif line.rstrip().endswith(';') and line[:1] not in (' ', '\t', '{', ''):
            start = None


def main(argv):
    top, over, roots = 15, 0, []
    it = iter(argv)
    for a in it:
        if a == '--top':
            top = int(next(it))
        elif a == '--over':
            over = int(next(it))
        else:
            roots.append(Path(a))
    rows = []
    for root in roots or [Path('.')]:
        files = [root] if root.is_file() else sorted(root.rglob('*.c'))
        for f in files:
            rows += [(n, f, s, name) for name, s, n in functions(f)]
    rows.sort(reverse=True)
    for n, f, s, name in rows if over else rows[:top]:
        if n > over:
            print(f'{n:5d}  {f}:{s}  {name}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
