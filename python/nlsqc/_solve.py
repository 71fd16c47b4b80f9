"""least_squares over row chunks: the Python side of nlsq_lm / nlsq_adam / nlsq_hybrid.

The residual callback fun(x, row0, nrows) returns the residuals of rows
[row0, row0 + nrows); the library asks for the rows chunk by chunk, so at
most chunk_rows residuals (and Jacobian rows) exist at a time, whatever
n_rows is.  Exceptions raised in callbacks stop the solve and are re-raised
from the call; library errors become NlsqError with the library's message.
cffi releases the GIL around every C call; callbacks take it back.
"""
import threading

import numpy as np

from ._lib import ffi, lib, new

_LOSSES = {"linear": 0, "soft_l1": 1, "huber": 2, "cauchy": 3, "arctan": 4}
_METHODS = {"lm": "nlsq_lm", "adam": "nlsq_adam", "hybrid": "nlsq_hybrid"}
_JAC_MODES = {"2-point": 1, "forward": 1, "3-point": 2, "central": 2}


class NlsqError(RuntimeError):
    """A solve that ended with an error status (or, in curve_fit, without
    convergence).  status: the nlsq status code; name: its symbolic name;
    message: the library's one-line message."""

    def __init__(self, status, message):
        self.status = int(status)
        self.name = ffi.string(lib.nlsq_status_name(self.status)).decode()
        self.message = message
        super().__init__("%s: %s" % (self.name, message))


class OptimizeResult(dict):
    """The outcome of a solve, a dict whose keys are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    __setattr__ = dict.__setitem__

    def __repr__(self):
        keys = sorted(self)
        return "\n".join("%12s: %r" % (k, self[k]) for k in keys)


def _dvec(ptr, n):
    """A numpy view of n doubles at a C pointer (valid during the callback)."""
    return np.frombuffer(ffi.buffer(ptr, n * 8), dtype=np.float64)


class _Errors:
    """The first exception a callback raised (re-raised after the C call)."""

    def __init__(self):
        self.error = None
        self.lock = threading.Lock()

    def _fail(self, exc):
        with self.lock:
            if self.error is None:
                self.error = exc
        return 1


class _Callbacks(_Errors):
    """The eval callback around fun / jac."""

    def __init__(self, fun, jac, p):
        super().__init__()
        self.fun, self.jac, self.p = fun, jac, p
        self.c_eval = ffi.callback("int(void *, const double *, size_t, size_t, double *, double *,"
                                   " const nlsq_eval_env *)", self._eval)

    def _eval(self, ctx, x, row0, nrows, r, J, env):
        try:
            xv = _dvec(x, self.p).copy()
            rv = np.asarray(self.fun(xv, row0, nrows), dtype=np.float64)
            if rv.shape != (nrows,):
                raise ValueError("fun(x, %d, %d) returned shape %s, expected (%d,)"
                                 % (row0, nrows, rv.shape, nrows))
            _dvec(r, nrows)[:] = rv
            if J != ffi.NULL:
                jv = np.asarray(self.jac(xv, row0, nrows), dtype=np.float64)
                if jv.shape != (nrows, self.p):
                    raise ValueError("jac(x, %d, %d) returned shape %s, expected (%d, %d)"
                                     % (row0, nrows, jv.shape, nrows, self.p))
                _dvec(J, nrows * self.p).reshape(nrows, self.p)[:] = jv
            return 0
        except BaseException as exc:  # noqa: B902 - re-raised after the solve
            _say(env, exc)
            return self._fail(exc)


def _say(env, exc):
    """The exception's one line into the callback's message buffer (it then
    begins the result's message)."""
    if env == ffi.NULL or env.msg == ffi.NULL or env.msg_size == 0:
        return
    text = ("%s: %s" % (type(exc).__name__, exc)).encode("utf-8", "replace")
    text = text.replace(b"\n", b" ")[:env.msg_size - 1]
    ffi.memmove(env.msg, text + b"\0", len(text) + 1)


def _bounds(bounds, p):
    lo, hi = bounds
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (p,)).copy()
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (p,)).copy()
    if np.all(np.isneginf(lo)) and np.all(np.isposinf(hi)):
        return None, None
    return lo, hi


def _options(ftol, xtol, gtol, max_iter, loss, f_scale, chunk_rows, n_threads, extra):
    opt, keep = new("nlsq_options")
    lib.nlsq_options_init(opt)
    opt.ftol, opt.xtol, opt.gtol = ftol, xtol, gtol
    if max_iter is not None:
        opt.max_iter = int(max_iter)
    if loss not in _LOSSES:
        raise ValueError("loss must be one of %s" % ", ".join(_LOSSES))
    opt.loss = _LOSSES[loss]
    opt.f_scale = f_scale
    opt.chunk_rows = int(chunk_rows)
    opt.n_threads = int(n_threads)
    for k, v in (extra or {}).items():
        *path, name = k.split(".")   # "adam.batch_rows": a field of a sub-struct
        target = opt
        for part in path:
            if not hasattr(target, part):
                raise TypeError("unknown option %r" % k)
            target = getattr(target, part)
        if not path and not hasattr(opt, name) or path and not hasattr(target, name):
            raise TypeError("unknown option %r" % k)
        setattr(target, name, v)
    return opt, keep


def set_common(st, p, bounds, param_names, keep):
    """Bounds and names on an nlsq_problem or nlsq_curve_problem (C arrays in keep)."""
    lo, hi = _bounds(bounds, p)
    if lo is not None:
        clo, chi = ffi.new("double[]", lo.tolist()), ffi.new("double[]", hi.tolist())
        keep += [clo, chi]
        st.lower, st.upper = clo, chi
    if param_names is not None:
        if len(param_names) != p:
            raise ValueError("param_names has %d names for %d parameters" % (len(param_names), p))
        cnames = [ffi.new("char[]", str(s).encode()) for s in param_names]
        carr = ffi.new("const char *[]", cnames)
        keep += [cnames, carr]
        st.param_names = carr


def finish(cb, status, pb, x, cov, res, p):
    """The OptimizeResult of a finished call, or its exception (res must still live)."""
    if cb.error is not None:
        raise cb.error
    if status < 0:
        raise NlsqError(status, ffi.string(res.message).decode(errors="replace"))
    flags = ffi.new("unsigned[]", p)
    lib.nlsq_param_flags(pb, x, cov, flags)
    names = [ffi.string(lib.nlsq_param_flags_name(flags[j])).decode() for j in range(p)]
    return _result(np.array(_dvec(x, p)), np.array(_dvec(cov, p * p)).reshape(p, p), res, names,
                   status)


def solve(cb, p, n_rows, x0, jacobian, fd_scale, bounds, opt, method, param_names=None):
    """Run one solver on an eval callback; returns its OptimizeResult."""
    keep = []
    pb, pbuf = new("nlsq_problem")
    keep.append(pbuf)
    pb.n_params, pb.n_rows, pb.eval = p, n_rows, cb.c_eval
    pb.jacobian = jacobian
    set_common(pb, p, bounds, param_names, keep)
    if fd_scale is not None:
        cs = ffi.new("double[]", np.broadcast_to(np.asarray(fd_scale, float), (p,)).tolist())
        keep.append(cs)
        pb.fd_scale = cs
    x = ffi.new("double[]", np.asarray(x0, dtype=np.float64).tolist())
    cov = ffi.new("double[]", p * p)
    res, rbuf = new("nlsq_result")
    keep.append(rbuf)
    res.covariance = cov
    status = getattr(lib, _METHODS[method])(pb, opt, x, res)
    return finish(cb, status, pb, x, cov, res, p)


def _result(x, cov, res, flags, status):
    active = np.array([-1 if "at_lower" in f else 1 if "at_upper" in f else 0 for f in flags])
    return OptimizeResult(
        x=x, cost=res.cost, covariance=cov, status=status,
        status_name=ffi.string(lib.nlsq_status_name(status)).decode(),
        message=ffi.string(res.message).decode(errors="replace"),
        success=status > 0, nfev=res.n_eval + res.n_jac, njev=res.n_jac,
        iterations=res.iterations, grad_norm=res.grad_norm, initial_cost=res.initial_cost,
        reduced_chi2=res.reduced_chi2, flags=flags, active_mask=active, seconds=res.seconds)


def least_squares(fun, x0, n_rows, jac=None, bounds=(-np.inf, np.inf), loss="linear",
                  f_scale=1.0, method="lm", ftol=1e-8, xtol=1e-8, gtol=1e-8, max_nfev=None,
                  diff_step=None, chunk_rows=0, n_threads=1, param_names=None, options=None):
    """Minimise 0.5 * sum rho(r_i(x)^2) over n_rows residuals produced by chunks.

    fun(x, row0, nrows) -> nrows residuals of rows [row0, row0 + nrows).
    jac: callable jac(x, row0, nrows) -> (nrows, p) array; or '2-point' /
      '3-point' (also 'forward' / 'central', and None = '3-point'): the
      library differences fun chunk by chunk (nlsq_problem.jacobian).
    bounds: (lower, upper), scalars or p values each, +-inf allowed.
    loss: 'linear', 'soft_l1', 'huber', 'cauchy', 'arctan' (scipy's), f_scale.
    method: 'lm' (nlsq_lm), 'adam', 'hybrid'.
    diff_step: the step scale s_j of the finite differences (fd_scale).
    max_nfev: LM iteration cap (nlsq_options.max_iter).
    chunk_rows: rows per callback (0 = automatic); n_threads: solver threads
      (callbacks then run concurrently, each holding the GIL in turn).
    options: a dict of further nlsq_options fields, sub-struct fields dotted
             (e.g. {"adam.epochs": 50}).

    Returns an OptimizeResult: x, cost, covariance (s^2 (J^T J)^-1), status,
    status_name, message, success (converged), nfev, njev, iterations,
    grad_norm, reduced_chi2, flags (per parameter: 'free', 'at_upper', ...),
    active_mask (scipy's -1 / 0 / 1).  Raises NlsqError on a library error,
    or the exception a callback raised.
    """
    x0 = np.atleast_1d(np.asarray(x0, dtype=np.float64))
    p = x0.size
    if method not in _METHODS:
        raise ValueError("method must be one of %s" % ", ".join(_METHODS))
    if callable(jac):
        jacobian, jfun = 0, jac
    else:
        mode = "3-point" if jac is None else jac
        if mode not in _JAC_MODES:
            raise ValueError("jac must be callable or one of %s" % ", ".join(_JAC_MODES))
        jacobian, jfun = _JAC_MODES[mode], None
    opt, keep = _options(ftol, xtol, gtol, max_nfev, loss, f_scale, chunk_rows, n_threads, options)
    cb = _Callbacks(fun, jfun, p)
    out = solve(cb, p, int(n_rows), x0, jacobian, diff_step, bounds, opt, method, param_names)
    del keep
    return out


__all__ = ["least_squares", "NlsqError", "OptimizeResult"]
