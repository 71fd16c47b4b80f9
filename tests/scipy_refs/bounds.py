#!/usr/bin/python3
"""Reference solutions for tests/test_lm_bounds.c.

Run with Debian's interpreter (it has scipy; the pyenv python3 on PATH does not):

    /usr/bin/python3 tests/scipy_refs/bounds.py > /tmp/bounds_ref.c

It defines five small bounded least-squares problems, generates their data
deterministically (no RNG: the "noise" is a fixed trigonometric sequence), solves
each with scipy.optimize.least_squares(method='trf') with analytic Jacobians
and ftol = xtol = gtol = 1e-15, and prints C initialisers: the data (%.17g),
x, cost and the active mask.  test_lm_bounds.c holds a copy of that output.

A parameter with lower == upper (pinned) cannot be given to scipy (it wants
lb < ub): it is substituted as a constant and the remaining problem solved.

Each solution is cross-checked by an independent solve: the parameters that
TRF reports active are fixed at their bounds and the rest is solved without
bounds by MINPACK (method='lm') from TRF's point, then polished with plain
Gauss-Newton steps (MINPACK and TRF stop early, ~1e-8, on the large-residual
problems where Gauss-Newton converges only linearly); TRF and the polished
point must agree to 1e-7.  The reference written out is the polished point (active parameters exactly
on their bound: TRF stops a hair inside it), and its cost.
"""
import sys

import numpy as np
import scipy
from scipy.optimize import least_squares

TOL = 1e-15


def noise(n, amp, phase):
    i = np.arange(n, dtype=float)
    return amp * np.sin(2.7 * i + phase) * np.cos(1.3 * i * i + 0.5)


# ---------------------------------------------------------------- problems
# Each: name, p, residual(x, t, y), jac(x, t, y), t, y, lb, ub, x0 (feasible).

def rosen_f(x, t, y):
    return np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def rosen_j(x, t, y):
    return np.array([[-20.0 * x[0], 10.0], [-1.0, 0.0]])


def exp3_f(x, t, y):
    return x[0] * np.exp(-x[1] * t) + x[2] - y


def exp3_j(x, t, y):
    e = np.exp(-x[1] * t)
    return np.column_stack([e, -x[0] * t * e, np.ones_like(t)])


def gauss_f(x, t, y):
    return x[0] * np.exp(-(t - x[1]) ** 2 / (2 * x[2] ** 2)) + x[3] - y


def gauss_j(x, t, y):
    d = t - x[1]
    e = np.exp(-d ** 2 / (2 * x[2] ** 2))
    return np.column_stack([e, x[0] * e * d / x[2] ** 2,
                            x[0] * e * d ** 2 / x[2] ** 3, np.ones_like(t)])


def expl_f(x, t, y):
    return x[0] * np.exp(-x[1] * t) + x[2] * t + x[3] - y


def expl_j(x, t, y):
    e = np.exp(-x[1] * t)
    return np.column_stack([e, -x[0] * t * e, t, np.ones_like(t)])


def make_problems():
    P = []
    # 1. Rosenbrock as residuals; the bound x1 <= 0.5 cuts off the optimum (1, 1).
    P.append(dict(name="rosen", p=2, f=rosen_f, j=rosen_j,
                  t=np.zeros(0), y=np.zeros(0),
                  lb=[-2.0, -1.0], ub=[2.0, 0.5], x0=[-1.2, 0.3]))
    # 2. Exponential decay, offset c with lower bound 0 active (data made with
    #    c = -0.05); one-sided infinite bounds.
    t = np.linspace(0.0, 4.0, 30)
    y = 2.5 * np.exp(-1.3 * t) - 0.05 + noise(30, 0.02, 0.3)
    P.append(dict(name="expdecay", p=3, f=exp3_f, j=exp3_j, t=t, y=y,
                  lb=[-np.inf, 0.0, 0.0], ub=[10.0, np.inf, np.inf], x0=[1.0, 0.5, 0.5]))
    # 3. Gaussian peak, amplitude with upper bound 2.5 active (data made with 3).
    t = np.linspace(-5.0, 5.0, 41)
    y = 3.0 * np.exp(-(t - 0.4) ** 2 / (2 * 1.2 ** 2)) + 0.5 + noise(41, 0.03, 1.1)
    P.append(dict(name="gauss", p=4, f=gauss_f, j=gauss_j, t=t, y=y,
                  lb=[0.0, -2.0, 0.1, -1.0], ub=[2.5, 2.0, 5.0, 1.0], x0=[1.0, 0.0, 2.0, 0.0]))
    # 4. a exp(-b t) + c t + d: a at its upper bound, c at its lower bound,
    #    d pinned (lower == upper), b free.
    t = np.linspace(0.0, 3.0, 25)
    y = 2.0 * np.exp(-0.7 * t) - 0.3 * t + 0.5 + noise(25, 0.02, 2.0)
    P.append(dict(name="pinned", p=4, f=expl_f, j=expl_j, t=t, y=y,
                  lb=[0.0, 0.05, 0.0, 0.5], ub=[1.5, 5.0, 1.0, 0.5], x0=[1.0, 1.0, 0.5, 0.5]))
    # 5. Exponential decay whose optimum is interior: no bound active.
    t = np.linspace(0.0, 5.0, 35)
    y = 1.7 * np.exp(-0.8 * t) + 0.3 + noise(35, 0.02, 0.7)
    P.append(dict(name="interior", p=3, f=exp3_f, j=exp3_j, t=t, y=y,
                  lb=[0.0, 0.0, -1.0], ub=[10.0, 5.0, 1.0], x0=[1.0, 1.0, 0.0]))
    return P


def solve(pr):
    lb = np.array(pr["lb"], float)
    ub = np.array(pr["ub"], float)
    p = pr["p"]
    pinned = lb == ub
    freeidx = np.where(~pinned)[0]
    t, y = pr["t"], pr["y"]

    def full(z):
        x = lb.copy()
        x[freeidx] = z
        return x

    f = lambda z: pr["f"](full(z), t, y)
    j = lambda z: pr["j"](full(z), t, y)[:, freeidx]
    z0 = np.array(pr["x0"], float)[freeidx]
    sol = least_squares(f, z0, jac=j, bounds=(lb[freeidx], ub[freeidx]), method="trf",
                        ftol=TOL, xtol=TOL, gtol=TOL, max_nfev=10000)
    x = full(sol.x)
    active = np.zeros(p, int)
    active[freeidx] = sol.active_mask
    active[pinned] = 2          # pinned: reported as 2 (on both bounds)
    # snap active parameters onto their bound
    xs = x.copy()
    for k in range(p):
        if active[k] == -1:
            assert abs(x[k] - lb[k]) < 1e-8, (pr["name"], k, x[k])
            xs[k] = lb[k]
        elif active[k] == 1:
            assert abs(x[k] - ub[k]) < 1e-8, (pr["name"], k, x[k])
            xs[k] = ub[k]
    # cross-check: active fixed at bounds, the rest unconstrained MINPACK LM
    fr = np.where(active == 0)[0]
    if len(fr):
        def g(z):
            xx = xs.copy(); xx[fr] = z; return pr["f"](xx, t, y)

        def gj(z):
            xx = xs.copy(); xx[fr] = z; return pr["j"](xx, t, y)[:, fr]
        chk = least_squares(g, xs[fr], jac=gj, method="lm", ftol=TOL, xtol=TOL, gtol=TOL,
                            max_nfev=10000)
        xs[fr] = chk.x
        # MINPACK stops early on large-residual problems, where Gauss-Newton
        # converges only linearly: polish with plain Gauss-Newton steps.
        for _ in range(2000):
            dx = np.linalg.lstsq(gj(xs[fr]), -g(xs[fr]), rcond=None)[0]
            xs[fr] += dx
            if np.all(np.abs(dx) <= 1e-16 * (1 + np.abs(xs[fr]))):
                break
    dev = np.max(np.abs(xs - x) / np.maximum(1.0, np.abs(xs)))
    assert dev < 1e-7, (pr["name"], xs, x)
    cost = 0.5 * np.sum(pr["f"](xs, t, y) ** 2)
    # KKT at the snapped point
    grad = pr["j"](xs, t, y).T @ pr["f"](xs, t, y)
    return xs, cost, active, sol, grad, dev


def cvec(a):
    return "{" + ", ".join("%.17g" % v if np.isfinite(v) else ("INFINITY" if v > 0 else "-INFINITY")
                           for v in a) + "}"


def main():
    print("/* generated by tests/scipy_refs/bounds.py: scipy %s, numpy %s, python %s */"
          % (scipy.__version__, np.__version__, sys.version.split()[0]))
    for pr in make_problems():
        xs, cost, active, sol, grad, dev = solve(pr)
        n = pr["name"]
        print("/* %s: trf status %d, nfev %d, cost %.17g; reference x differs from trf's x by"
              " %.2g (relative); J^T r at the reference x: %s */"
              % (n, sol.status, sol.nfev, sol.cost, dev, " ".join("%.3g" % g for g in grad)))
        if len(pr["t"]):
            print("static const double %s_t[%d] = %s;" % (n, len(pr["t"]), cvec(pr["t"])))
            print("static const double %s_y[%d] = %s;" % (n, len(pr["y"]), cvec(pr["y"])))
        print("static const double %s_lb[%d] = %s;" % (n, pr["p"], cvec(pr["lb"])))
        print("static const double %s_ub[%d] = %s;" % (n, pr["p"], cvec(pr["ub"])))
        print("static const double %s_x0[%d] = %s;" % (n, pr["p"], cvec(pr["x0"])))
        print("static const double %s_xref[%d] = %s;" % (n, pr["p"], cvec(xs)))
        print("static const double %s_costref = %.17g;" % (n, cost))
        print("static const int %s_active[%d] = {%s}; /* -1 lower, 1 upper, 2 pinned */"
              % (n, pr["p"], ", ".join(str(int(a)) for a in active)))
        print()


if __name__ == "__main__":
    main()
