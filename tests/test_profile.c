/*
 * test_profile.c - nlsq_profile (profile-likelihood intervals).
 *
 *  linear       r = a u + b v + c - y: the interval of every parameter is
 *               x -+ sigma (delta 1) and x -+ 2 sigma (delta 4), sigma from
 *               the covariance, to 1e-4 sigma
 *  bound        b's upper bound inside its 1-sigma interval: upper = the
 *               bound, upper_open = 1; the lower end unchanged
 *  nonlinear    y = a exp(-b t), 12 noisy points: the interval of b against
 *               a brute-force scan (a profiled in closed form, a = sum y e /
 *               sum e^2, on a grid of 200001 b values); the interval is
 *               asymmetric, unlike the linearised x -+ sigma
 *  tied         r = max(a w + c + e u, 0) - y with w = 1 + 0.015 v: a and c
 *               tied (r = -0.9998) and the model floored at 0.  Moving a by
 *               its sigma alone puts every row on the floor (zero gradient:
 *               a solve from there stalls far up); along the profile path
 *               the floor is never reached, so the model is linear there and
 *               the interval must be x -+ sigma exactly, as for test_linear
 *  errors       fixed parameter, j out of range, delta <= 0
 */
#include "common.h"

#define ML 300
#define MN 12

static double lin_u(size_t i) { return (double)i / ML; }
static double lin_v(size_t i) { return cos(0.7 * (double)i); }
static double lin_y(size_t i) { return 1.0 + 2.0 * lin_u(i) - 0.3 * lin_v(i) + 0.05 * sin(2.1 * (double)i * (double)i); }

static int lin_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                    const nlsq_eval_env *env)
{
    (void)env;
    (void)ctx;
    for (size_t k = 0; k < n; k++) {
        size_t i = row0 + k;
        r[k] = x[0] * lin_u(i) + x[1] * lin_v(i) + x[2] - lin_y(i);
        if (J) { J[3 * k] = lin_u(i); J[3 * k + 1] = lin_v(i); J[3 * k + 2] = 1.0; }
    }
    return 0;
}

static const double nl_t[MN] = {0.1, 0.3, 0.5, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0, 3.5, 4.0};
static double nl_y(size_t i) { return 1.5 * exp(-0.9 * nl_t[i]) + 0.12 * sin(3.7 * (double)i + 1.0); }

static int nl_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                   const nlsq_eval_env *env)
{
    (void)env;
    (void)ctx;
    for (size_t k = 0; k < n; k++) {
        size_t i = row0 + k;
        double e = exp(-x[1] * nl_t[i]);
        r[k] = x[0] * e - nl_y(i);
        if (J) { J[2 * k] = e; J[2 * k + 1] = -x[0] * nl_t[i] * e; }
    }
    return 0;
}

static void fit(const nlsq_problem *pb, double *x, double *cov)
{
    nlsq_options o;
    nlsq_options_init(&o);
    o.n_threads = 1;
    o.ftol = o.xtol = o.gtol = 1e-14;
    nlsq_result res;
    memset(&res, 0, sizeof res);
    res.covariance = cov;
    assert_true(nlsq_lm(pb, &o, x, &res) > 0);
}

static void test_linear(void **state)
{
    (void)state;
    nlsq_problem pb = {.n_params = 3, .n_rows = ML, .eval = lin_eval};
    double x[3] = {0, 0, 0}, cov[9];
    fit(&pb, x, cov);
    for (size_t j = 0; j < 3; j++)
        for (int k = 1; k <= 2; k++) {
            nlsq_interval iv;
            assert_int_equal(nlsq_profile(&pb, NULL, x, j, (double)(k * k), &iv), 0);
            double s = sqrt(cov[j * 4]);
            double el = (x[j] - k * s - iv.lower) / s, eu = (iv.upper - x[j] - k * s) / s;
            print_message("  linear x[%zu], %d sigma: [%.10g, %.10g], x -+ %d sigma = [%.10g, %.10g]; "
                          "errors %.1e %.1e sigma, %zu solves\n", j, k, iv.lower, iv.upper, k,
                          x[j] - k * s, x[j] + k * s, el, eu, iv.n_solves);
            assert_true(fabs(el) < 1e-4 && fabs(eu) < 1e-4);
            assert_false(iv.lower_open || iv.upper_open || iv.better_min);
        }
}

static void test_bound(void **state)
{
    (void)state;
    nlsq_problem pb = {.n_params = 3, .n_rows = ML, .eval = lin_eval};
    double x[3] = {0, 0, 0}, cov[9];
    fit(&pb, x, cov);
    double s = sqrt(cov[4]);
    const double lo[3] = {-INFINITY, -INFINITY, -INFINITY};
    const double hi[3] = {INFINITY, x[1] + 0.5 * s, INFINITY};
    pb.lower = lo;
    pb.upper = hi;
    nlsq_interval iv;
    assert_int_equal(nlsq_profile(&pb, NULL, x, 1, 1.0, &iv), 0);
    print_message("  bound at +0.5 sigma: [%.10g, %.10g] open %d %d\n", iv.lower, iv.upper,
                  iv.lower_open, iv.upper_open);
    assert_true(iv.upper == hi[1] && iv.upper_open == 1 && iv.lower_open == 0);
    assert_true(fabs(iv.lower - (x[1] - s)) < 1e-4 * s);
}

/* Profiled cost of b in closed form: min over a of 0.5 sum (a e_i - y_i)^2. */
static double nl_profiled(double b)
{
    double see = 0, sey = 0, syy = 0;
    for (size_t i = 0; i < MN; i++) {
        double e = exp(-b * nl_t[i]), y = nl_y(i);
        see += e * e;
        sey += e * y;
        syy += y * y;
    }
    return 0.5 * (syy - sey * sey / see);
}

static void test_nonlinear(void **state)
{
    (void)state;
    nlsq_problem pb = {.n_params = 2, .n_rows = MN, .eval = nl_eval};
    double x[2] = {1, 1}, cov[4];
    fit(&pb, x, cov);
    double cmin = nl_profiled(x[1]), s2 = 2.0 * cmin / (MN - 2), sb = sqrt(cov[3]);
    /* the scan: crossings of 2 (C(b) - cmin) / s2 = 1 on each side, by linear
     * interpolation between grid points 1e-5 sigma apart */
    double ends[2];
    for (int side = 0; side < 2; side++) {
        double dir = side ? 1.0 : -1.0, prev_b = x[1], prev_d = 0.0;
        ends[side] = NAN;
        for (int k = 1; k <= 200000; k++) {
            double b = x[1] + dir * 2e-5 * sb * k;
            double d = 2.0 * (nl_profiled(b) - cmin) / s2;
            if (d >= 1.0) {
                ends[side] = prev_b + (1.0 - prev_d) * (b - prev_b) / (d - prev_d);
                break;
            }
            prev_b = b;
            prev_d = d;
        }
        assert_false(isnan(ends[side]));
    }
    nlsq_interval iv;
    assert_int_equal(nlsq_profile(&pb, NULL, x, 1, 1.0, &iv), 0);
    print_message("  nonlinear b = %.8g: profile [%.8g, %.8g] (%zu solves), scan [%.8g, %.8g], "
                  "linearised [%.8g, %.8g]\n", x[1], iv.lower, iv.upper, iv.n_solves, ends[0],
                  ends[1], x[1] - sb, x[1] + sb);
    assert_true(fabs(iv.lower - ends[0]) < 1e-3 * sb);
    assert_true(fabs(iv.upper - ends[1]) < 1e-3 * sb);
    /* the case is nonlinear enough that the intervals differ */
    assert_true(fabs((ends[1] - x[1]) - (x[1] - ends[0])) > 0.02 * sb);
}

static double tied_u(size_t i) { return (double)i / ML; }
static double tied_w(size_t i) { return 1.0 + 0.015 * cos(1.3 * (double)i); }
static double tied_y(size_t i)
{
    return 1.0 * tied_w(i) - 0.97 + 0.04 * tied_u(i) + 0.03 * sin(2.1 * (double)i * (double)i);
}

static int tied_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                     const nlsq_eval_env *env)
{
    (void)env;
    (void)ctx;
    for (size_t k = 0; k < n; k++) {
        size_t i = row0 + k;
        double f = x[0] * tied_w(i) + x[1] + x[2] * tied_u(i), on = f > 0;
        r[k] = (on ? f : 0.0) - tied_y(i);
        if (J) { J[3 * k] = on * tied_w(i); J[3 * k + 1] = on; J[3 * k + 2] = on * tied_u(i); }
    }
    return 0;
}

static void test_tied(void **state)
{
    (void)state;
    nlsq_problem pb = {.n_params = 3, .n_rows = ML, .eval = tied_eval};
    double x[3] = {1.0, -0.97, 0.04}, cov[9];
    fit(&pb, x, cov);
    const double s = sqrt(cov[0]);
    double fmax = 0.0;   /* the largest fitted value: a - s alone floors every row */
    for (size_t i = 0; i < ML; i++)
        fmax = fmax > x[0] * tied_w(i) + x[1] + x[2] * tied_u(i)
                   ? fmax : x[0] * tied_w(i) + x[1] + x[2] * tied_u(i);
    print_message("  tied: sigma_a %g, largest fitted value %g\n", s, fmax);
    assert_true(s * 0.98 > fmax);
    nlsq_interval iv;
    assert_int_equal(nlsq_profile(&pb, NULL, x, 0, 1.0, &iv), 0);
    double el = (x[0] - s - iv.lower) / s, eu = (iv.upper - x[0] - s) / s;
    print_message("  tied a: [%.10g, %.10g], x -+ sigma = [%.10g, %.10g]; errors %.1e %.1e "
                  "sigma, %zu solves\n", iv.lower, iv.upper, x[0] - s, x[0] + s, el, eu,
                  iv.n_solves);
    assert_true(fabs(el) < 1e-3 && fabs(eu) < 1e-3);
    assert_false(iv.lower_open || iv.upper_open || iv.better_min);
}

static void test_errors(void **state)
{
    (void)state;
    nlsq_problem pb = {.n_params = 3, .n_rows = ML, .eval = lin_eval};
    double x[3] = {1, 0, 1};
    nlsq_interval iv;
    assert_int_equal(nlsq_profile(&pb, NULL, x, 3, 1.0, &iv), NLSQ_EINVAL);
    assert_int_equal(nlsq_profile(&pb, NULL, x, 0, 0.0, &iv), NLSQ_EINVAL);
    assert_int_equal(nlsq_profile(&pb, NULL, x, 0, 1.0, NULL), NLSQ_EINVAL);
    const double lo[3] = {1, -INFINITY, -INFINITY}, hi[3] = {1, INFINITY, INFINITY};
    pb.lower = lo;
    pb.upper = hi;
    assert_int_equal(nlsq_profile(&pb, NULL, x, 0, 1.0, &iv), NLSQ_EINVAL);
}

TC_MAIN(cmocka_unit_test(test_linear), cmocka_unit_test(test_bound),
        cmocka_unit_test(test_nonlinear), cmocka_unit_test(test_tied),
        cmocka_unit_test(test_errors))
