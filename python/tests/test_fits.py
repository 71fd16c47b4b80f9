"""nlsqc.curve_fit and nlsqc.least_squares against scipy on small problems."""
import numpy as np
import pytest
from scipy import optimize

import nlsqc

T = np.linspace(0.0, 5.0, 401)
Y = 3.0 * np.exp(-1.3 * T) + 0.5 + 0.02 * np.sin(37.0 * T)
S = 0.02 * (1.0 + 0.1 * T)


def model(t, a, b, c):
    return a * np.exp(-b * t) + c


def model_jac(t, a, b, c):
    e = np.exp(-b * t)
    return np.column_stack([e, -a * t * e, np.ones_like(t)])


@pytest.mark.parametrize("absolute_sigma", [False, True])
@pytest.mark.parametrize("jac", [None, model_jac])
def test_curve_fit_matches_scipy(absolute_sigma, jac):
    kw = dict(p0=[1.0, 1.0, 0.0], sigma=S, absolute_sigma=absolute_sigma, jac=jac)
    ref, rcov = optimize.curve_fit(model, T, Y, ftol=1e-14, xtol=1e-14, gtol=1e-14, **kw)
    got, cov = nlsqc.curve_fit(model, T, Y, chunk_rows=37, ftol=1e-14, xtol=1e-14, gtol=1e-14, **kw)
    np.testing.assert_allclose(got, ref, rtol=1e-7)
    np.testing.assert_allclose(cov, rcov, rtol=1e-5)


def test_curve_fit_bounds_and_2d_xdata():
    # z = a x + b y + c exp(-d x y) on a grid, xdata of shape (2, M)
    gx, gy = np.meshgrid(np.linspace(0, 1, 30), np.linspace(0, 2, 20))
    X = np.vstack([gx.ravel(), gy.ravel()])

    def f(xy, a, b, c, d):
        return a * xy[0] + b * xy[1] + c * np.exp(-d * xy[0] * xy[1])

    Z = f(X, 1.0, -0.5, 2.0, 1.5) + 0.01 * np.cos(13.0 * np.arange(X.shape[1]))
    bounds = ([0, -1, 0, 0], [0.9, 1, 5, 5])  # a capped below its best value
    ref, rcov = optimize.curve_fit(f, X, Z, p0=[0.5, 0, 1, 1], bounds=bounds,
                                   ftol=1e-15, xtol=1e-15, gtol=1e-15)
    got, cov, info = nlsqc.curve_fit(f, X, Z, p0=[0.5, 0, 1, 1], bounds=bounds, chunk_rows=100,
                                     ftol=1e-15, xtol=1e-15, gtol=1e-15, full_output=True)
    assert got[0] == 0.9 and info.flags[0] == "at_upper"
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
    # scipy's pcov keeps the capped parameter; compare the free block
    np.testing.assert_allclose(cov[1:, 1:], rcov[1:, 1:], rtol=1e-3)


def test_curve_fit_p0_from_signature_and_errors():
    got, _ = nlsqc.curve_fit(model, T, Y, sigma=S)
    ref, _ = optimize.curve_fit(model, T, Y, sigma=S)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    with pytest.raises(RuntimeError, match="MAX_ITER"):
        nlsqc.curve_fit(model, T, Y, p0=[1, 1, 0], max_nfev=1)
    with pytest.raises(ValueError, match="last axis"):
        nlsqc.curve_fit(model, T[:-1], Y)

    def broken(t, a, b, c):
        if a > 2.0:
            raise ZeroDivisionError("model refuses a > 2")
        return model(t, a, b, c)

    with pytest.raises(ZeroDivisionError, match="refuses"):
        nlsqc.curve_fit(broken, T, Y, p0=[1, 1, 0])


def rows(x, row0, n):
    t = T[row0:row0 + n]
    return model(t, *x) - Y[row0:row0 + n]


def rows_jac(x, row0, n):
    return model_jac(T[row0:row0 + n], *x)


@pytest.mark.parametrize("loss", ["linear", "soft_l1", "cauchy"])
def test_least_squares_matches_scipy(loss):
    ref = optimize.least_squares(lambda x: model(T, *x) - Y, [1, 1, 0],
                                 jac=lambda x: model_jac(T, *x), loss=loss, f_scale=0.05,
                                 ftol=1e-15, xtol=1e-15, gtol=1e-15)
    for jac in (rows_jac, "3-point", "2-point"):
        r = nlsqc.least_squares(rows, [1, 1, 0], T.size, jac=jac, loss=loss, f_scale=0.05,
                                chunk_rows=50, ftol=1e-15, xtol=1e-15, gtol=1e-15)
        assert r.success, r.message
        np.testing.assert_allclose(r.x, ref.x, rtol=1e-6)
        assert abs(r.cost - ref.cost) <= 1e-9 * ref.cost


def test_least_squares_bounds_methods_and_errors():
    ref = optimize.least_squares(lambda x: model(T, *x) - Y, [1, 1.5, 0], bounds=([0, 1.4, 0], 10),
                                 ftol=1e-15, xtol=1e-15, gtol=1e-15)
    r = nlsqc.least_squares(rows, [1, 1.5, 0], T.size, jac=rows_jac, bounds=([0, 1.4, 0], 10),
                            ftol=1e-15, xtol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(r.x, ref.x, rtol=1e-6)
    assert list(r.active_mask) == list(ref.active_mask) == [0, -1, 0]
    h = nlsqc.least_squares(rows, [1, 1, 0], T.size, method="hybrid",
                            options={"hybrid.adam_epochs": 3, "adam.batch_rows": 64})
    assert h.success
    np.testing.assert_allclose(h.x, [3.0, 1.3, 0.5], rtol=0.02)
    with pytest.raises(nlsqc.NlsqError, match="lower") as e:
        nlsqc.least_squares(rows, [1, 1, 0], T.size, bounds=([2, 0, 0], [1, 5, 5]))
    assert e.value.status == -1 and e.value.name == "EINVAL"
    with pytest.raises(ValueError, match="shape"):
        nlsqc.least_squares(lambda x, r0, n: np.zeros(n + 1), [1, 1, 0], T.size)
    with pytest.raises(TypeError, match="unknown option"):
        nlsqc.least_squares(rows, [1, 1, 0], T.size, options={"no_such_field": 1})


@pytest.mark.parametrize("jac", [None, model_jac])
def test_curve_fit_2d_sigma_matches_scipy(jac):
    n = T.size
    C = np.outer(S, S) * 0.6 ** np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    for absolute_sigma in (False, True):
        kw = dict(p0=[1.0, 1.0, 0.0], sigma=C, absolute_sigma=absolute_sigma, jac=jac,
                  ftol=1e-14, xtol=1e-14, gtol=1e-14)
        ref, rcov = optimize.curve_fit(model, T, Y, **kw)
        got, cov = nlsqc.curve_fit(model, T, Y, **kw)
        np.testing.assert_allclose(got, ref, rtol=1e-7)
        np.testing.assert_allclose(cov, rcov, rtol=1e-5)
    bad = C.copy()
    bad[3, 3] = -1.0
    with pytest.raises(nlsqc.NlsqError, match="positive definite"):
        nlsqc.curve_fit(model, T, Y, p0=[1, 1, 0], sigma=bad)
