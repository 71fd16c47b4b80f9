"""curve_fit with scipy.optimize.curve_fit's semantics, over chunks of xdata.

The model f(xdata, *p) (and jac(xdata, *p), if given) is called on slices
xdata[..., i0:i1] of at most chunk_rows points (the last axis of xdata holds
the points, as in scipy), so the solver's memory beyond the data arrays is
bounded by the chunk size, not by the number of points.
"""
import inspect
import warnings

import numpy as np

from ._lib import ffi, lib, new
from ._solve import NlsqError, _Callbacks, _dvec, _Errors, _options, finish, set_common, solve


def _n_params(f, p0):
    if p0 is not None:
        return np.atleast_1d(np.asarray(p0, dtype=np.float64))
    sig = inspect.signature(f)
    args = [p for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(args) < 2:
        raise ValueError("cannot determine the number of parameters: give p0")
    return np.ones(len(args) - 1)


class _Chunks:
    """fun / jac of least_squares for the weighted residuals (f - y) / sigma."""

    def __init__(self, f, jac, xdata, ydata, sigma):
        self.f, self.jacf, self.x, self.y, self.s = f, jac, xdata, ydata, sigma

    def fun(self, p, row0, n):
        r = np.asarray(self.f(self.x[..., row0:row0 + n], *p), dtype=np.float64) - self.y[row0:row0 + n]
        return r if self.s is None else r / self.s[row0:row0 + n]

    def jac(self, p, row0, n):
        J = np.asarray(self.jacf(self.x[..., row0:row0 + n], *p), dtype=np.float64)
        J = J.reshape(n, p.size)
        return J if self.s is None else J / self.s[row0:row0 + n, None]


class _Model(_Errors):
    """nlsq_model_fn for nlsq_curve_fit: finds the chunk's first point from
    the xdata pointer and calls f (and jac) on xdata[..., i0:i0 + n]."""

    def __init__(self, f, jac, xdata, xpm, p):
        super().__init__()
        self.f, self.jacf, self.x, self.p = f, jac, xdata, p
        self.base = int(ffi.cast("uintptr_t", ffi.from_buffer("double[]", xpm)))
        self.stride = 8 * xpm.shape[1]
        self.c_model = ffi.callback(
            "int(void *, const double *, size_t, const double *, double *, double *)", self._model)

    def _model(self, ctx, theta, n, xptr, fptr, dptr):
        try:
            i0 = (int(ffi.cast("uintptr_t", xptr)) - self.base) // self.stride
            th = _dvec(theta, self.p).copy()
            xc = self.x[..., i0:i0 + n]
            _dvec(fptr, n)[:] = np.asarray(self.f(xc, *th), dtype=np.float64).reshape(n)
            if dptr != ffi.NULL:
                J = np.asarray(self.jacf(xc, *th), dtype=np.float64).reshape(n, self.p)
                _dvec(dptr, n * self.p).reshape(n, self.p)[:] = J
            return 0
        except BaseException as exc:  # noqa: B902 - re-raised after the fit
            return self._fail(exc)


def _fit_with_data_covariance(f, jac, xdata, ydata, C, x0, bounds, opt, param_names):
    """scipy's 2-D sigma through nlsq_curve_fit's sigma_cov (Cholesky
    whitening in C; the model sees all points at once, as C has n^2 values)."""
    m, p = ydata.size, x0.size
    if C.shape != (m, m):
        raise ValueError("a 2-D sigma must be %d x %d" % (m, m))
    xpm = np.ascontiguousarray(xdata.reshape(-1, m).T)      # point-major, as C wants
    C = np.ascontiguousarray(C, dtype=np.float64)
    model = _Model(f, jac, xdata, xpm, p)
    keep = []
    cp, cbuf = new("nlsq_curve_problem")
    keep.append(cbuf)
    cp.n_params, cp.n_points, cp.xdim = p, m, xpm.shape[1]
    cp.xdata, cp.ydata = ffi.from_buffer("double[]", xpm), ffi.from_buffer("double[]", ydata)
    cp.sigma_cov = ffi.from_buffer("double[]", C)
    cp.model, cp.analytic_jacobian = model.c_model, 1 if jac is not None else 0
    set_common(cp, p, bounds, param_names, keep)
    pb, pbuf = new("nlsq_problem")                            # for the flags
    keep.append(pbuf)
    pb.n_params, pb.n_rows, pb.lower, pb.upper = p, m, cp.lower, cp.upper
    x = ffi.new("double[]", x0.tolist())
    cov = ffi.new("double[]", p * p)
    res, rbuf = new("nlsq_result")
    keep.append(rbuf)
    status = lib.nlsq_curve_fit(cp, opt, x, cov, ffi.NULL, res)
    return finish(model, status, pb, x, cov, res, p)


def curve_fit(f, xdata, ydata, p0=None, sigma=None, absolute_sigma=False, check_finite=True,
              bounds=(-np.inf, np.inf), jac=None, chunk_rows=65536, full_output=False,
              loss="linear", f_scale=1.0, ftol=1e-8, xtol=1e-8, gtol=1e-8, max_nfev=None,
              n_threads=1, param_names=None):
    """Fit f(xdata, *p) to ydata; returns (popt, pcov), as scipy.optimize.curve_fit.

    xdata: array whose last axis indexes the M points (shape (M,) or (k, M));
      f(xdata_chunk, *p) must return the model on that chunk (and jac, if
      given, an (m, p) array of derivatives), m <= chunk_rows.
    sigma: None, M standard deviations of ydata, or the M x M covariance of
      ydata (scipy's 2-D sigma: whitened by its Cholesky factor in C; the
      model is then called once on all points, since C holds M^2 values).
    bounds, loss, f_scale, ftol, xtol, gtol, max_nfev: as in scipy
      (max_nfev caps LM iterations).  Without jac, the library forms central
      differences with scipy's step cbrt(eps) * max(1, |p_j|).
    pcov: s^2 (J^T J)^-1 with s^2 = chi2 / (M - p) (absolute_sigma False) or
      (J^T J)^-1 (True); +inf everywhere when M == p and absolute_sigma is
      False; undetermined parameters get +inf variance (where scipy would
      return a pseudo-inverse).
    full_output: also return an info dict (the least_squares result).
    Raises NlsqError when the fit fails or does not converge (scipy raises
    RuntimeError: NlsqError is one), or the exception the model raised.
    """
    x0 = _n_params(f, p0)
    p = x0.size
    xdata = np.asarray(xdata, dtype=np.float64)
    ydata = np.asarray(ydata, dtype=np.float64).ravel()
    m = ydata.size
    if xdata.shape[-1] != m:
        raise ValueError("xdata's last axis has %d points, ydata %d" % (xdata.shape[-1], m))
    if sigma is not None:
        sigma = np.asarray(sigma, dtype=np.float64)
        if sigma.shape != (m,) and sigma.ndim != 2:
            raise ValueError("sigma must have one value per point, or be the %d x %d "
                             "covariance of ydata" % (m, m))
    if check_finite and not (np.all(np.isfinite(xdata)) and np.all(np.isfinite(ydata))):
        raise ValueError("xdata or ydata contain non-finite values")
    if m < p:
        raise TypeError("Improper input: func parameters=%d must not exceed data points=%d" % (p, m))
    opt, keep = _options(ftol, xtol, gtol, max_nfev, loss, f_scale, chunk_rows, n_threads,
                         {"absolute_sigma": 1 if absolute_sigma else 0})
    if sigma is not None and sigma.ndim == 2:
        info = _fit_with_data_covariance(f, jac, xdata, ydata, sigma, x0, bounds, opt, param_names)
    else:
        ch = _Chunks(f, jac, xdata, ydata, sigma)
        cb = _Callbacks(ch.fun, ch.jac if jac is not None else None, p)
        info = solve(cb, p, m, x0, 0 if jac is not None else 2, None if jac is not None else 1.0,
                     bounds, opt, "lm", param_names)
    del keep
    x, cov = info.x, info.covariance
    if info.status <= 0:
        raise NlsqError(info.status, "Optimal parameters not found: " + info.message)
    if m == p and not absolute_sigma:
        cov = np.full((p, p), np.inf)
        warnings.warn("Covariance of the parameters could not be estimated", RuntimeWarning)
    return (x, cov, info) if full_output else (x, cov)
