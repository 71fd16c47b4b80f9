"""The cffi declarations (nlsqc._lib.CDEF) against include/nlsq.h as the C
compiler lays it out: every declared field at the same offset, every struct
the same size (so a field added to the header without updating the
declarations fails here)."""
import os
import shutil
import subprocess

import pytest

from nlsqc._lib import ffi

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STRUCTS = ["nlsq_problem", "nlsq_options", "nlsq_adam_options", "nlsq_hybrid_options",
           "nlsq_result", "nlsq_allocator", "nlsq_distributed",
           "nlsq_curve_problem", "nlsq_fit_stats",
           "nlsq_progress_info", "nlsq_phase_stats", "nlsq_eval_env"]


def test_struct_layout_matches_header(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to check the layout"
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include \"nlsq.h\"", "int main(void) {"]
    expect = []
    for s in STRUCTS:
        t = ffi.typeof(s)
        lines.append('printf("%%zu\\n", sizeof(%s));' % s)
        expect.append(("sizeof " + s, ffi.sizeof(t)))
        for name, field in t.fields:
            lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (s, name))
            expect.append(("%s.%s" % (s, name), field.offset))
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", os.path.join(REPO, "include"), str(src), "-o", str(exe)],
                   check=True)
    got = [int(v) for v in subprocess.run([str(exe)], check=True, capture_output=True,
                                          text=True).stdout.split()]
    assert len(got) == len(expect)
    bad = ["%s: C %d, cffi %d" % (what, g, e) for (what, e), g in zip(expect, got) if g != e]
    assert not bad, "nlsqc._lib.CDEF differs from include/nlsq.h: " + "; ".join(bad)
