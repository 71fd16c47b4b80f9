#!/usr/bin/python3
"""Reference for tests/test_report.c: scipy.optimize.curve_fit with a 2-D sigma.

Run with Debian's interpreter (python3-scipy):

    /usr/bin/python3 tests/scipy_refs/sigma2d.py

Model y = a exp(-b t) + c at n = 30 points t_i = 0.1 i.  The data are the
model at (2.5, 1.3, 0.4) plus a fixed trigonometric "noise" 0.02 sin(7.3 i +
0.4) (no RNG).  The covariance of y is an AR(1)-like kernel with a diagonal
that grows with t:

    C_ij = s_i s_j 0.6^|i - j|,  s_i = 0.02 (1 + 0.05 i)

curve_fit is run with sigma = C (2-D: scipy whitens with its Cholesky factor),
p0 = (1, 1, 0), analytic Jacobian, ftol = xtol = gtol = 1e-15, with
absolute_sigma False and True.  It prints popt, pcov and chi2 = r^T C^-1 r as
C initialisers (%.17g); test_report.c holds a copy of them.
"""
import numpy as np
import scipy
from scipy.optimize import curve_fit

N = 30
t = 0.1 * np.arange(N)
truth = (2.5, 1.3, 0.4)


def f(t, a, b, c):
    return a * np.exp(-b * t) + c


def jac(t, a, b, c):
    e = np.exp(-b * t)
    return np.column_stack([e, -a * t * e, np.ones_like(t)])


y = f(t, *truth) + 0.02 * np.sin(7.3 * np.arange(N) + 0.4)
s = 0.02 * (1.0 + 0.05 * np.arange(N))
C = np.outer(s, s) * 0.6 ** np.abs(np.subtract.outer(np.arange(N), np.arange(N)))


def emit(name, v):
    print("static const double %s[] = {%s};" % (name, ", ".join("%.17g" % x for x in np.ravel(v))))


print("/* scipy %s, numpy %s: tests/scipy_refs/sigma2d.py */" % (scipy.__version__, np.__version__))
for absolute in (False, True):
    popt, pcov = curve_fit(f, t, y, p0=(1.0, 1.0, 0.0), sigma=C, absolute_sigma=absolute, jac=jac,
                           ftol=1e-15, xtol=1e-15, gtol=1e-15, method="lm")
    r = y - f(t, *popt)
    chi2 = r @ np.linalg.solve(C, r)
    tag = "abs" if absolute else "rel"
    emit("s2d_popt_" + tag, popt)
    emit("s2d_pcov_" + tag, pcov)
    emit("s2d_chi2_" + tag, [chi2])
