"""nlsqc: Python bindings of nlsq, the memory-bounded nonlinear least-squares C library.

    curve_fit(f, xdata, ydata, p0, ...)          scipy.optimize.curve_fit semantics,
                                                 f called on chunks of xdata
    least_squares(fun, x0, n_rows, ...)          fun(x, row0, nrows) -> residual chunk
    fit_xpcs(path, **options)                    the C XPCS fit, fit_xpcs --json's keys
    NlsqError                                    library errors (status, name, message)

The package loads libnlsq (and libnlsq_xpcs for fit_xpcs) through cffi in
ABI mode: see nlsqc._lib for where it looks (NLSQC_LIBDIR first).
"""
from ._curve import curve_fit
from ._solve import NlsqError, OptimizeResult, least_squares


def fit_xpcs(path, **options):
    """The C XPCS fit in-process (see nlsqc._xpcs.fit_xpcs); loads
    libnlsq_fit_xpcs on first use."""
    from ._xpcs import fit_xpcs as _fit
    return _fit(path, **options)


def __getattr__(name):
    if name == "FitXpcsError":
        from ._xpcs import FitXpcsError
        return FitXpcsError
    raise AttributeError(name)

__version__ = "0.1.0"
__all__ = ["curve_fit", "least_squares", "fit_xpcs", "FitXpcsError", "NlsqError", "OptimizeResult"]
