/*
 * test_curve_fit.c - nlsq_curve_fit against scipy.optimize.curve_fit.
 *
 * Reference values: tests/scipy_refs/curve_fit.py (scipy 1.10.1, tolerances
 * ftol = xtol = gtol = 1e-15), in tests/scipy_refs/curve_fit.inc (its output).
 * Here: the same tolerances, n_threads = 1 unless a test says otherwise.
 *
 * Tests (cmocka):
 *   absolute_sigma         absolute_sigma 0 and 1 (the covariances differ by
 *                          chi2 / dof) on cf1: per-point sigma, analytic jac;
 *                          cf2: xdim 1, bounds (inactive), no sigma;
 *                          cf3: xdim 2, per-point sigma
 *   logistic_fd            cf4: finite differences vs scipy's 2-point FD fit and
 *                          vs scipy's analytic-jac fit
 *   robust_loss_cov        cf5: cf1 with loss cauchy: reweighted covariance
 *   stats                  chi2, reduced chi2, weighted R^2, AIC, BIC vs plain loops
 *   fd_threads_bitwise     FD with 2 threads and small chunks == 1 thread, bitwise
 *   fd_active_bound        an active bound: one-sided differences, the model is
 *                          never evaluated outside the box, popt == the fit with
 *                          that parameter fixed
 *   defaults_and_nulls     opt/res/cov/stats NULL; default tolerances
 *   n_equals_p             dof 0: cov all +INFINITY (absolute_sigma 0), as scipy
 *   allocator              custom allocator with FD + threads: balanced, used
 *   errors                 EINVAL cases, ECALLBACK
 *
 * Comparison rules: popt |a - b| <= tol |b|; pcov entries are compared on the
 * correlation scale, |a_ij - b_ij| <= tol sqrt(b_ii b_jj).
 */
#include "common.h"

#include <float.h>
#include <stdatomic.h>

/* The data and scipy's answers: the output of tests/scipy_refs/curve_fit.py. */
#include "scipy_refs/curve_fit.inc"

#define POPT_RTOL 1e-7
#define PCOV_RTOL 1e-5
#define MAXP 4

/* ------------------------------------------------------------------ models */

typedef struct model_ctx {
    const double *lower, *upper;   /* when set, any evaluation outside counts */
    atomic_int outside;
    atomic_int calls;
    int fail_after;                /* > 0: return 1 on that call */
} model_ctx;

static int check_box(void *vctx, const double *th, size_t p)
{
    model_ctx *c = vctx;
    if (!c) return 0;
    int k = atomic_fetch_add(&c->calls, 1) + 1;
    if (c->fail_after > 0 && k >= c->fail_after) return 1;
    for (size_t j = 0; j < p; j++) {
        if (c->lower && th[j] < c->lower[j]) atomic_fetch_add(&c->outside, 1);
        if (c->upper && th[j] > c->upper[j]) atomic_fetch_add(&c->outside, 1);
    }
    return 0;
}

static double f1_point(const double *th, double t) { return th[0] * exp(-th[1] * t) + th[2]; }

static int model_exp(void *ctx, const double *th, size_t n, const double *x, double *f, double *df)
{
    if (check_box(ctx, th, 3)) return 1;
    for (size_t i = 0; i < n; i++) {
        double e = exp(-th[1] * x[i]);
        f[i] = th[0] * e + th[2];
        if (df) {
            df[i * 3 + 0] = e;
            df[i * 3 + 1] = -th[0] * x[i] * e;
            df[i * 3 + 2] = 1.0;
        }
    }
    return 0;
}

static double f2_point(const double *th, double x)
{
    double u = x - th[1];
    return th[0] * exp(-u * u / (2 * th[2] * th[2])) + th[3];
}

static int model_gauss(void *ctx, const double *th, size_t n, const double *x, double *f, double *df)
{
    if (check_box(ctx, th, 4)) return 1;
    for (size_t i = 0; i < n; i++) {
        double a = th[0], mu = th[1], s = th[2], u = x[i] - mu;
        double e = exp(-u * u / (2 * s * s));
        f[i] = a * e + th[3];
        if (df) {
            df[i * 4 + 0] = e;
            df[i * 4 + 1] = a * e * u / (s * s);
            df[i * 4 + 2] = a * e * u * u / (s * s * s);
            df[i * 4 + 3] = 1.0;
        }
    }
    return 0;
}

static double f3_point(const double *th, const double *xy)
{
    return th[0] * xy[0] + th[1] * xy[1] + th[2] * exp(-xy[0] * xy[1]);
}

static int model_plane(void *ctx, const double *th, size_t n, const double *x, double *f, double *df)
{
    if (check_box(ctx, th, 3)) return 1;
    for (size_t i = 0; i < n; i++) {
        const double *xy = x + 2 * i;
        double e = exp(-xy[0] * xy[1]);
        f[i] = th[0] * xy[0] + th[1] * xy[1] + th[2] * e;
        if (df) {
            df[i * 3 + 0] = xy[0];
            df[i * 3 + 1] = xy[1];
            df[i * 3 + 2] = e;
        }
    }
    return 0;
}

static double f4_point(const double *th, double x)
{
    return th[0] / (1.0 + exp(-(x - th[1]) / th[2])) + th[3];
}

static int model_logistic(void *ctx, const double *th, size_t n, const double *x, double *f, double *df)
{
    if (check_box(ctx, th, 4)) return 1;
    for (size_t i = 0; i < n; i++) {
        double a = th[0], x0 = th[1], w = th[2];
        double e = exp(-(x[i] - x0) / w), q = 1.0 / (1.0 + e), dq = q * q * e;
        f[i] = a * q + th[3];
        if (df) {
            df[i * 4 + 0] = q;
            df[i * 4 + 1] = -a * dq / w;
            df[i * 4 + 2] = -a * dq * (x[i] - x0) / (w * w);
            df[i * 4 + 3] = 1.0;
        }
    }
    return 0;
}

/* logistic with d fixed at g_fixed_d (3 parameters) */
static double g_fixed_d;
static int model_logistic3(void *ctx, const double *th, size_t n, const double *x, double *f, double *df)
{
    double t4[4] = {th[0], th[1], th[2], g_fixed_d};
    double J4[64 * 4];
    assert_true(n <= 64);
    int rc = model_logistic(ctx, t4, n, x, f, df ? J4 : NULL);
    if (rc == 0 && df)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < 3; j++) df[i * 3 + j] = J4[i * 4 + j];
    return rc;
}

/* ------------------------------------------------------------------ helpers */

static nlsq_options tight_options(void)
{
    nlsq_options o;
    nlsq_options_init(&o);
    o.ftol = o.xtol = o.gtol = 1e-15;
    o.max_iter = 1000;
    o.n_threads = 1;
    return o;
}

static double max_rel_popt(size_t p, const double *a, const double *b)
{
    double m = 0.0;
    for (size_t j = 0; j < p; j++) {
        double e = fabs(a[j] - b[j]) / fabs(b[j]);
        if (e > m) m = e;
    }
    return m;
}

/* max_ij |a_ij - b_ij| / sqrt(b_ii b_jj) */
static double max_rel_pcov(size_t p, const double *a, const double *b)
{
    double m = 0.0;
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < p; j++) {
            double e = fabs(a[i * p + j] - b[i * p + j]) / sqrt(b[i * p + i] * b[j * p + j]);
            if (!(e <= m)) m = e;
        }
    return m;
}

typedef struct fit_out {
    double theta[MAXP], cov[MAXP * MAXP];
    nlsq_fit_stats st;
    nlsq_result res;
    int status;
} fit_out;

static void run_fit(const nlsq_curve_problem *cp, const nlsq_options *o, const double *p0, fit_out *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->theta, p0, cp->n_params * sizeof(double));
    out->status = nlsq_curve_fit(cp, o, out->theta, out->cov, &out->st, &out->res);
}

static void check_vs_scipy(const char *name, const nlsq_curve_problem *cp, const nlsq_options *o,
                           const double *p0, const double *popt, const double *pcov,
                           double popt_tol, double pcov_tol, fit_out *out)
{
    run_fit(cp, o, p0, out);
    size_t p = cp->n_params;
    double ep = max_rel_popt(p, out->theta, popt);
    double ec = max_rel_pcov(p, out->cov, pcov);
    printf("  %-22s abs_sigma %d  status %-15s it %3zu  popt rel err %.2e  pcov rel err %.2e\n",
           name, o->absolute_sigma, nlsq_status_name(out->status), out->res.iterations, ep, ec);
    assert_true(out->status > 0);
    assert_true(ep <= popt_tol);
    assert_true(ec <= pcov_tol);
    assert_true(out->res.covariance == out->cov);
}

/* Independent statistics by plain loops over point values fx. */
static void check_stats(const nlsq_fit_stats *st, size_t n, size_t p, const double *y,
                        const double *sigma, const double *fx)
{
    double chi2 = 0.0, sw = 0.0, swy = 0.0;
    for (size_t i = 0; i < n; i++) {
        double s = sigma ? sigma[i] : 1.0;
        double r = (y[i] - fx[i]) / s;
        chi2 += r * r;
        sw += 1.0 / (s * s);
        swy += y[i] / (s * s);
    }
    double ybar = swy / sw, sst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double s = sigma ? sigma[i] : 1.0;
        sst += (y[i] - ybar) * (y[i] - ybar) / (s * s);
    }
    double r2 = 1.0 - chi2 / sst;
    double aic = (double)n * log(chi2 / (double)n) + 2.0 * (double)p;
    double bic = (double)n * log(chi2 / (double)n) + (double)p * log((double)n);
    printf("    stats: chi2 %.10g (loops %.10g)  red %.6g  R2 %.10f  AIC %.6f  BIC %.6f\n",
           st->chi2, chi2, st->reduced_chi2, st->r_squared, st->aic, st->bic);
    assert_int_equal(st->n_points, n);
    assert_int_equal(st->dof, n - p);
    assert_true(fabs(st->chi2 - chi2) <= 1e-12 * chi2);
    assert_true(fabs(st->reduced_chi2 - chi2 / (double)(n - p)) <= 1e-12 * chi2 / (double)(n - p));
    assert_true(fabs(st->r_squared - r2) <= 1e-12);
    assert_true(fabs(st->aic - aic) <= 1e-10 * (fabs(aic) + 1.0));
    assert_true(fabs(st->bic - bic) <= 1e-10 * (fabs(bic) + 1.0));
}

/* ------------------------------------------------------------------ problems */

/* Problem cf<k> of tests/scipy_refs/curve_fit.py, k = 1 .. 4. */
static nlsq_curve_problem cf_problem(int k)
{
    const nlsq_curve_problem cps[4] = {
        {3, CF1_N, 1, cf1_t, cf1_y, cf1_sigma, model_exp, NULL, 1, NULL, NULL, NULL, NULL},
        {4, CF2_N, 1, cf2_x, cf2_y, NULL, model_gauss, NULL, 1, cf2_lo, cf2_hi, NULL, NULL},
        {3, CF3_N, 2, cf3_xy, cf3_z, cf3_sigma, model_plane, NULL, 1, NULL, NULL, NULL, NULL},
        {4, CF4_N, 1, cf4_x, cf4_y, NULL, model_logistic, NULL, 0, NULL, NULL, NULL, NULL},
    };
    assert_true(k >= 1 && k <= 4);
    return cps[k - 1];
}

/* ------------------------------------------------------------------ tests */

/* cf1 .. cf3, each with absolute_sigma 0 and 1, against scipy; then the two
 * covariances differ exactly by chi2 / dof, and no bound is active (cf2's
 * bounds are inactive at the solution). */
static void test_absolute_sigma(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const double *p0, *popt[2], *pcov[2];
    } cases[3] = {
        {"cf1 exp decay", cf1_p0, {cf1_abs0_popt, cf1_abs1_popt}, {cf1_abs0_pcov, cf1_abs1_pcov}},
        {"cf2 gaussian+bounds", cf2_p0, {cf2_abs0_popt, cf2_abs1_popt}, {cf2_abs0_pcov, cf2_abs1_pcov}},
        {"cf3 plane xdim=2", cf3_p0, {cf3_abs0_popt, cf3_abs1_popt}, {cf3_abs0_pcov, cf3_abs1_pcov}},
    };
    for (int k = 0; k < 3; k++) {
        nlsq_curve_problem cp = cf_problem(k + 1);
        nlsq_options o = tight_options();
        fit_out fits[2];
        for (int abs_sigma = 0; abs_sigma < 2; abs_sigma++) {
            o.absolute_sigma = abs_sigma;
            check_vs_scipy(cases[k].name, &cp, &o, cases[k].p0, cases[k].popt[abs_sigma],
                           cases[k].pcov[abs_sigma], POPT_RTOL, PCOV_RTOL, &fits[abs_sigma]);
            assert_int_equal(fits[abs_sigma].res.n_active, 0);
        }
        const fit_out *a = &fits[0], *b = &fits[1];
        double s2 = a->st.chi2 / (double)a->st.dof;
        size_t p = cp.n_params;
        for (size_t j = 0; j < p * p; j++)
            assert_true(fabs(a->cov[j] - s2 * b->cov[j]) <= 1e-12 * fabs(a->cov[j]) + 1e-300);
    }
}

static void test_logistic_fd(void **state)
{
    (void)state;
    nlsq_curve_problem cp = cf_problem(4);
    nlsq_options o = tight_options();
    fit_out a, e;
    /* scipy's own FD answer is 2e-9 (popt) / 1.6e-7 (pcov) from its exact one */
    check_vs_scipy("cf4 logistic FD/scipyFD", &cp, &o, cf4_p0, cf4_fd_popt, cf4_fd_pcov, POPT_RTOL, PCOV_RTOL, &a);
    /* central differences are closer to the exact answer than that */
    double ep = max_rel_popt(4, a.theta, cf4_exact_popt), ec = max_rel_pcov(4, a.cov, cf4_exact_pcov);
    printf("  cf4 logistic FD vs scipy exact-jac fit: popt %.2e  pcov %.2e\n", ep, ec);
    assert_true(ep <= 2e-8);
    assert_true(ec <= 1e-6);
    /* and the analytic Jacobian through nlsq_curve_fit */
    cp.analytic_jacobian = 1;
    check_vs_scipy("cf4 logistic exact", &cp, &o, cf4_p0, cf4_exact_popt, cf4_exact_pcov, POPT_RTOL, PCOV_RTOL, &e);
    printf("  cf4 FD vs analytic (nlsq): popt %.2e  pcov %.2e\n",
           max_rel_popt(4, a.theta, e.theta), max_rel_pcov(4, a.cov, e.cov));
}

static void test_robust_loss_cov(void **state)
{
    (void)state;
    nlsq_curve_problem cp = cf_problem(1);
    nlsq_options o = tight_options();
    o.loss = NLSQ_LOSS_CAUCHY;
    o.f_scale = 1.0;
    fit_out a;
    o.absolute_sigma = 0;
    check_vs_scipy("cf5 cauchy", &cp, &o, cf1_p0, cf5_abs0_popt, cf5_abs0_pcov, POPT_RTOL, PCOV_RTOL, &a);
    /* chi2 is the plain sum of squares, not 2 * robust cost */
    double fx[CF1_N];
    for (size_t i = 0; i < CF1_N; i++) fx[i] = f1_point(a.theta, cf1_t[i]);
    check_stats(&a.st, CF1_N, 3, cf1_y, cf1_sigma, fx);
    assert_true(a.st.chi2 > 2.0 * a.res.cost);
    o.absolute_sigma = 1;
    check_vs_scipy("cf5 cauchy", &cp, &o, cf1_p0, cf5_abs1_popt, cf5_abs1_pcov, POPT_RTOL, PCOV_RTOL, &a);
}

static void test_stats(void **state)
{
    (void)state;
    nlsq_options o = tight_options();
    fit_out a;
    double fx[64];

    nlsq_curve_problem cp = cf_problem(1);
    run_fit(&cp, &o, cf1_p0, &a);
    for (size_t i = 0; i < CF1_N; i++) fx[i] = f1_point(a.theta, cf1_t[i]);
    check_stats(&a.st, CF1_N, 3, cf1_y, cf1_sigma, fx);
    assert_true(fabs(a.st.reduced_chi2 - a.res.reduced_chi2) <= 1e-14 * a.st.reduced_chi2);

    cp = cf_problem(2);
    run_fit(&cp, &o, cf2_p0, &a);
    for (size_t i = 0; i < CF2_N; i++) fx[i] = f2_point(a.theta, cf2_x[i]);
    check_stats(&a.st, CF2_N, 4, cf2_y, NULL, fx);
    assert_true(a.st.r_squared > 0.99);

    cp = cf_problem(3);
    run_fit(&cp, &o, cf3_p0, &a);
    for (size_t i = 0; i < CF3_N; i++) fx[i] = f3_point(a.theta, cf3_xy + 2 * i);
    check_stats(&a.st, CF3_N, 3, cf3_z, cf3_sigma, fx);

    cp = cf_problem(4);
    run_fit(&cp, &o, cf4_p0, &a);
    for (size_t i = 0; i < CF4_N; i++) fx[i] = f4_point(a.theta, cf4_x[i]);
    check_stats(&a.st, CF4_N, 4, cf4_y, NULL, fx);

    /* bic - aic = p (ln n - 2) by the definitions */
    assert_true(fabs((a.st.bic - a.st.aic) - 4.0 * (log((double)CF4_N) - 2.0)) <= 1e-10);
}

static void test_fd_threads_bitwise(void **state)
{
    (void)state;
    nlsq_curve_problem cp = cf_problem(4);
    nlsq_options o = tight_options();
    o.chunk_rows = 4;
    fit_out a, b;
    o.n_threads = 1;
    run_fit(&cp, &o, cf4_p0, &a);
    o.n_threads = 3;
    run_fit(&cp, &o, cf4_p0, &b);
    printf("  FD 1 thread: %s it %zu; 3 threads: %s it %zu\n", nlsq_status_name(a.status),
           a.res.iterations, nlsq_status_name(b.status), b.res.iterations);
    assert_true(a.status > 0);
    assert_int_equal(a.status, b.status);
    assert_memory_equal(a.theta, b.theta, sizeof a.theta);
    assert_memory_equal(a.cov, b.cov, sizeof a.cov);
    assert_memory_equal(&a.st, &b.st, sizeof a.st);
    assert_true(max_rel_popt(4, a.theta, cf4_exact_popt) <= 2e-8);
}

static void test_fd_active_bound(void **state)
{
    (void)state;
    /* d <= -0.6 (unconstrained optimum -0.48): the solution sits on the bound */
    const double lo[4] = {0.0, -INFINITY, 0.05, -INFINITY};
    const double hi[4] = {INFINITY, INFINITY, INFINITY, -0.6};
    model_ctx mc;
    memset(&mc, 0, sizeof mc);
    mc.lower = lo;
    mc.upper = hi;
    nlsq_curve_problem cp = cf_problem(4);
    cp.ctx = &mc;
    cp.lower = lo;
    cp.upper = hi;
    nlsq_options o = tight_options();
    const double p0[4] = {1.0, 0.0, 1.0, -0.6}; /* start on the bound too */
    fit_out a;
    run_fit(&cp, &o, p0, &a);
    printf("  active bound: %s it %zu  theta %.12g %.12g %.12g %.12g  model calls %d outside %d\n",
           nlsq_status_name(a.status), a.res.iterations, a.theta[0], a.theta[1], a.theta[2],
           a.theta[3], atomic_load(&mc.calls), atomic_load(&mc.outside));
    assert_true(a.status > 0);
    assert_int_equal(atomic_load(&mc.outside), 0);
    assert_true(a.theta[3] == -0.6);
    assert_int_equal(a.res.n_active, 1);

    /* the same as a 3-parameter fit with d fixed at -0.6 (analytic) */
    g_fixed_d = -0.6;
    nlsq_curve_problem c3 = {3, CF4_N, 1, cf4_x, cf4_y, NULL, model_logistic3, NULL, 1, NULL, NULL, NULL, NULL};
    o.chunk_rows = 64;
    fit_out b;
    run_fit(&c3, &o, p0, &b);
    assert_true(b.status > 0);
    double e = max_rel_popt(3, a.theta, b.theta);
    printf("  active bound vs fixed-d fit: popt rel err %.2e\n", e);
    assert_true(e <= 2e-8);

    /* a box narrower than 2h around the start: one-sided with d = room / 2 */
    const double lo2[4] = {0.0, -INFINITY, 0.05, -0.6 - 1e-7};
    const double hi2[4] = {INFINITY, INFINITY, INFINITY, -0.6};
    mc.lower = lo2;
    mc.upper = hi2;
    atomic_store(&mc.outside, 0);
    cp.lower = lo2;
    cp.upper = hi2;
    o.chunk_rows = 0;
    run_fit(&cp, &o, p0, &a);
    assert_true(a.status > 0);
    assert_int_equal(atomic_load(&mc.outside), 0);
    assert_true(max_rel_popt(3, a.theta, b.theta) <= 2e-8);

    /* lower == upper: a fixed parameter.  It is no parameter of the fit: its
     * covariance row and column are 0 and the degrees of freedom are n - 3,
     * so the covariance of the others is the 3-parameter fit's (b, with d
     * fixed in the model and an analytic Jacobian) */
    const double lo3[4] = {0.0, -INFINITY, 0.05, -0.6};
    cp.lower = lo3;
    mc.lower = lo3;
    run_fit(&cp, &o, p0, &a);
    assert_true(a.status > 0);
    assert_int_equal(atomic_load(&mc.outside), 0);
    assert_true(a.theta[3] == -0.6);
    assert_true(max_rel_popt(3, a.theta, b.theta) <= 2e-8);
    assert_int_equal(a.res.n_fixed, 1);
    assert_int_equal(a.res.n_undetermined, 0);
    for (int k = 0; k < 4; k++) assert_true(a.cov[3 * 4 + k] == 0.0 && a.cov[k * 4 + 3] == 0.0);
    double worst = 0.0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double ref = b.cov[i * 3 + j], sc = sqrt(b.cov[i * 3 + i] * b.cov[j * 3 + j]);
            double d = fabs(a.cov[i * 4 + j] - ref) / sc;
            if (d > worst) worst = d;
        }
    printf("  fixed d vs 3-parameter fit: covariance rel err %.2e, reduced chi2 %.12g vs %.12g\n",
           worst, a.res.reduced_chi2, b.res.reduced_chi2);
    assert_true(worst <= 1e-6);
    assert_true(fabs(a.res.reduced_chi2 - b.res.reduced_chi2) <= 1e-8 * b.res.reduced_chi2);
    unsigned fl[4];
    assert_int_equal(nlsq_param_flags(&(nlsq_problem){.n_params = 4, .lower = lo3, .upper = hi2},
                                      a.theta, a.cov, fl), 0);
    assert_int_equal(fl[3], NLSQ_PARAM_FIXED);
    assert_int_equal(fl[0] | fl[1] | fl[2], 0);
    assert_string_equal(nlsq_param_flags_name(fl[3]), "fixed");
}

static void test_defaults_and_nulls(void **state)
{
    (void)state;
    nlsq_curve_problem cp = cf_problem(1);
    double th[3];
    memcpy(th, cf1_p0, sizeof th);
    int st = nlsq_curve_fit(&cp, NULL, th, NULL, NULL, NULL);
    printf("  defaults: %s  popt rel err %.2e\n", nlsq_status_name(st), max_rel_popt(3, th, cf1_abs0_popt));
    assert_true(st > 0);
    assert_true(max_rel_popt(3, th, cf1_abs0_popt) <= 1e-6);

    /* res with a stale covariance pointer: ignored, replaced by cov (NULL) */
    nlsq_result res;
    double junk[9];
    memset(&res, 0, sizeof res);
    res.covariance = junk;
    memcpy(th, cf1_p0, sizeof th);
    st = nlsq_curve_fit(&cp, NULL, th, NULL, NULL, &res);
    assert_true(st > 0);
    assert_int_equal(res.status, st);
    assert_null(res.covariance);
}

static void test_n_equals_p(void **state)
{
    (void)state;
    /* 3 points, 3 parameters: exact interpolation */
    const double t[3] = {0.0, 1.0, 3.0};
    const double th_true[3] = {2.0, 0.5, 0.25};
    double y[3];
    for (int i = 0; i < 3; i++) y[i] = f1_point(th_true, t[i]);
    nlsq_curve_problem cp = {3, 3, 1, t, y, NULL, model_exp, NULL, 1, NULL, NULL, NULL, NULL};
    nlsq_options o = tight_options();
    fit_out a;
    const double p0[3] = {1.5, 0.7, 0.0};
    run_fit(&cp, &o, p0, &a);
    assert_true(a.status > 0);
    assert_true(max_rel_popt(3, a.theta, th_true) <= 1e-8);
    for (int k = 0; k < 9; k++) assert_true(isinf(a.cov[k]) && a.cov[k] > 0);
    assert_int_equal(a.st.dof, 0);
    assert_true(isnan(a.st.reduced_chi2));
    o.absolute_sigma = 1;
    run_fit(&cp, &o, p0, &a);
    assert_true(a.status > 0);
    for (int k = 0; k < 9; k++) assert_true(isfinite(a.cov[k]));
}

typedef struct count_alloc {
    atomic_long live, total;
} count_alloc;
static void *ca_alloc(void *ctx, size_t n)
{
    count_alloc *c = ctx;
    atomic_fetch_add(&c->live, 1);
    atomic_fetch_add(&c->total, 1);
    return malloc(n);
}
static void ca_free(void *ctx, void *p)
{
    count_alloc *c = ctx;
    if (p) atomic_fetch_sub(&c->live, 1);
    free(p);
}

static void test_allocator(void **state)
{
    (void)state;
    count_alloc ca;
    atomic_init(&ca.live, 0);
    atomic_init(&ca.total, 0);
    nlsq_options o = tight_options();
    o.allocator = (nlsq_allocator){ca_alloc, ca_free, &ca};
    o.n_threads = 2;
    o.chunk_rows = 8;
    nlsq_curve_problem cp = cf_problem(4);
    fit_out a;
    run_fit(&cp, &o, cf4_p0, &a);
    printf("  allocator: %ld allocations, %ld live after\n", atomic_load(&ca.total), atomic_load(&ca.live));
    assert_true(a.status > 0);
    assert_true(atomic_load(&ca.total) > 0);
    assert_int_equal(atomic_load(&ca.live), 0);
    assert_true(max_rel_popt(4, a.theta, cf4_exact_popt) <= 2e-8);
}

static void expect_einval(const nlsq_curve_problem *cp, double *th, const char *what)
{
    nlsq_result res;
    nlsq_fit_stats st;
    memset(&res, 0, sizeof res);
    int rc = nlsq_curve_fit(cp, NULL, th, NULL, &st, &res);
    printf("  %-28s -> %s: %s\n", what, nlsq_status_name(rc), res.message);
    assert_int_equal(rc, NLSQ_EINVAL);
    assert_int_equal(res.status, NLSQ_EINVAL);
    assert_true(isnan(st.chi2));
}

static void test_errors(void **state)
{
    (void)state;
    double th[3] = {3.0, 1.0, 0.0};
    double sig[CF1_N], y[CF1_N], x[CF1_N];
    nlsq_curve_problem cp;

    expect_einval(NULL, th, "NULL problem");
    cp = cf_problem(1);
    expect_einval(&cp, NULL, "NULL theta");
    cp = cf_problem(1); cp.model = NULL;          expect_einval(&cp, th, "NULL model");
    cp = cf_problem(1); cp.xdata = NULL;          expect_einval(&cp, th, "NULL xdata");
    cp = cf_problem(1); cp.ydata = NULL;          expect_einval(&cp, th, "NULL ydata");
    cp = cf_problem(1); cp.n_params = 0;          expect_einval(&cp, th, "p = 0");
    cp = cf_problem(1); cp.xdim = 0;              expect_einval(&cp, th, "xdim = 0");
    cp = cf_problem(1); cp.n_points = 2;          expect_einval(&cp, th, "n < p");
    cp = cf_problem(1); cp.xdim = SIZE_MAX / 2;   expect_einval(&cp, th, "n * xdim overflow");
    memcpy(sig, cf1_sigma, sizeof sig);
    sig[7] = 0.0;
    cp = cf_problem(1); cp.sigma = sig;           expect_einval(&cp, th, "sigma = 0");
    sig[7] = -1.0;                                expect_einval(&cp, th, "sigma < 0");
    sig[7] = NAN;                                 expect_einval(&cp, th, "sigma NaN");
    sig[7] = INFINITY;                            expect_einval(&cp, th, "sigma inf");
    memcpy(y, cf1_y, sizeof y);
    y[3] = NAN;
    cp = cf_problem(1); cp.ydata = y;             expect_einval(&cp, th, "ydata NaN");
    memcpy(x, cf1_t, sizeof x);
    x[5] = INFINITY;
    cp = cf_problem(1); cp.xdata = x;             expect_einval(&cp, th, "xdata inf");
    const double lo[3] = {0, 0, 0}, hi[3] = {1, -1, 1};
    cp = cf_problem(1); cp.lower = lo; cp.upper = hi; expect_einval(&cp, th, "lower > upper");
    double thn[3] = {NAN, 1.0, 0.0};
    cp = cf_problem(1);                           expect_einval(&cp, thn, "theta NaN");
    nlsq_options bad;
    nlsq_options_init(&bad);
    bad.f_scale = -1.0;
    nlsq_result res;
    assert_int_equal(nlsq_curve_fit(&cp, &bad, th, NULL, NULL, &res), NLSQ_EINVAL);

    /* the model fails on its 5th call: ECALLBACK, theta = best point so far */
    model_ctx mc;
    memset(&mc, 0, sizeof mc);
    mc.fail_after = 5;
    cp = cf_problem(1);
    cp.ctx = &mc;
    nlsq_options o = tight_options();
    double th2[3] = {3.0, 1.0, 0.0};
    nlsq_fit_stats st;
    int rc = nlsq_curve_fit(&cp, &o, th2, NULL, &st, &res);
    printf("  model failure -> %s: %s\n", nlsq_status_name(rc), res.message);
    assert_int_equal(rc, NLSQ_ECALLBACK);
    assert_true(isfinite(th2[0]) && isfinite(th2[1]) && isfinite(th2[2]));
    assert_true(isnan(st.chi2));
    /* also with finite differences, failing inside a difference */
    memset(&mc, 0, sizeof mc);
    mc.fail_after = 3;
    cp.analytic_jacobian = 0;
    rc = nlsq_curve_fit(&cp, &o, th2, NULL, NULL, &res);
    assert_int_equal(rc, NLSQ_ECALLBACK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absolute_sigma),
        cmocka_unit_test(test_logistic_fd),
        cmocka_unit_test(test_robust_loss_cov),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_fd_threads_bitwise),
        cmocka_unit_test(test_fd_active_bound),
        cmocka_unit_test(test_defaults_and_nulls),
        cmocka_unit_test(test_n_equals_p),
        cmocka_unit_test(test_allocator),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("curve_fit", tests, NULL, NULL);
}
