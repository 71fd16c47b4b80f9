"""fit_xpcs: the C XPCS fit (the fit_xpcs command's code) in-process.

libnlsq_fit_xpcs runs the command's own function (examples/fit_xpcs.c) on
memory streams, so the dict returned here has exactly the keys of
`fit_xpcs --json`.  The GIL is released during the fit (no Python callback
runs); calls from several threads run at once (each C call has its own
streams and state).
"""
import json

from ._lib import _open, ffi

ffi.cdef("""
int nlsq_fit_xpcs_json(int argc, const char *const *argv, char **json, char **messages);
void nlsq_fit_xpcs_free(char *p);
""")

_embed = None


class FitXpcsError(RuntimeError):
    """fit_xpcs refused its input or options (exit code 2): message is its
    one line (without the "fit_xpcs: " prefix)."""

    def __init__(self, exit_code, message):
        self.exit_code = exit_code
        self.message = message
        super().__init__(message)


def _library():
    global _embed
    if _embed is None:
        _embed = _open("nlsq_fit_xpcs", "examples")
    return _embed


def _arguments(path, options):
    args = [str(path)]
    for key, value in options.items():
        if key in ("json", "help", "progress"):
            raise TypeError("fit_xpcs: option %r is not available here" % key)
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif key == "init":
            for name, v in dict(value).items():
                args += [flag, "%s=%r" % (name, float(v))]
        elif key == "frames" and isinstance(value, (tuple, list)):
            first, last = value
            args += [flag, "%d:%s" % (first, "" if last is None else int(last))]
        elif isinstance(value, (tuple, list)):
            args += [flag, ",".join(str(v) for v in value)]
        elif isinstance(value, float):
            args += [flag, repr(value)]
        else:
            args += [flag, str(value)]
    return args


def fit_xpcs(path, **options):
    """Fit an XPCS two-time HDF5 file; returns fit_xpcs --json's object as a dict
    (with q="all": its array, a list of dicts, one per q).

    Options are the command's (docs/xpcs.md), with '_' for '-': dt=1e-3,
    gap=2e6, q=0.01, frames=(first, last) or "first:last", mode='laminar',
    method='lm', triangle='full', threads=0, max_iter=200, sigma=..., k0=...,
    memory_budget=MiB, include_diagonal=True, init={'D0': 1e4, ...},
    errors='robust', profile=['D0', 'alpha'] (names, 'physical', or
    'undetermined': the parameters the fit leaves without a finite error
    bar), profile_level=2, output='result.h5',
    save_fit=True, plot='prefix', checkpoint=..., resume=...
    A fit that stops without converging returns its dict (exit code 1 of the
    command: look at its status); bad input or options raise FitXpcsError
    with the command's message.
    """
    args = _arguments(path, options)
    lib = _library()
    cargs = [ffi.new("char[]", a.encode()) for a in args]
    argv = ffi.new("const char *[]", cargs)
    pj, pm = ffi.new("char **"), ffi.new("char **")
    rc = lib.nlsq_fit_xpcs_json(len(args), argv, pj, pm)
    if rc < 0:
        raise MemoryError("fit_xpcs: out of memory for its output streams")
    try:
        text = ffi.string(pj[0]).decode(errors="replace")
        msg = ffi.string(pm[0]).decode(errors="replace")
    finally:
        lib.nlsq_fit_xpcs_free(pj[0])
        lib.nlsq_fit_xpcs_free(pm[0])
    if rc == 2 or not text.strip():
        lines = [ln[len("fit_xpcs: "):] if ln.startswith("fit_xpcs: ") else ln
                 for ln in msg.splitlines() if ln.strip()]
        raise FitXpcsError(rc, lines[-1] if lines else "fit_xpcs failed (exit %d)" % rc)
    return json.loads(text)
