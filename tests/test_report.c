/*
 * test_report.c - fit reports, correlation matrices and nlsq_curve_fit with a
 * full covariance of the data (sigma_cov).
 *
 *   sigma2d_scipy      sigma_cov against scipy.optimize.curve_fit with a 2-D
 *                      sigma (tests/scipy_refs/sigma2d.py; its output is
 *                      copied below): popt to 1e-7, pcov to 1e-5 relative, chi2,
 *                      absolute_sigma 0 and 1, analytic and finite differences
 *   sigma2d_diagonal   a diagonal sigma_cov = sigma^2 gives the 1-D sigma fit
 *   sigma2d_invalid    not positive definite, non-finite, sigma and sigma_cov
 *                      together: NLSQ_EINVAL with a message
 *   correlation        against cov_ij / sqrt(cov_ii cov_jj) by hand; NAN rows
 *                      for fixed and undetermined parameters; bad arguments
 *   report_curve       the curve-fit report: status words, names, values,
 *                      errors (sqrt of pcov), flags, the correlations in order
 *   report_fixed       nlsq_report of an nlsq_lm fit with a fixed parameter
 *                      and one at a bound: their flags; a write error: EIO
 */
#include "common.h"

/* scipy 1.10.1, numpy 1.24.2: tests/scipy_refs/sigma2d.py */
static const double s2d_popt_rel[] = {2.5100144412062884, 1.3036936354689892, 0.39859723936118435};
static const double s2d_pcov_rel[] = {0.0002863753940702626, -0.00019821499691579663, -0.00021640048502321043, -0.00019821499691579663, 0.00044530565498333629, 0.00027281025820349554, -0.00021640048502321043, 0.00027281025820349554, 0.00023979759271077091};
static const double s2d_chi2_rel[] = {6.5219608057216423};
static const double s2d_popt_abs[] = {2.5100144412062884, 1.3036936354689892, 0.39859723936118435};
static const double s2d_pcov_abs[] = {0.0011855538342263228, -0.00082058219546971684, -0.00089586755726910343, -0.00082058219546971684, 0.0018435027505841826, 0.0011293960805517842, -0.00089586755726910343, 0.0011293960805517842, 0.00099272829077886801};
static const double s2d_chi2_abs[] = {6.5219608057216423};

#define N 30
static double g_t[N], g_y[N], g_C[N * N], g_s[N];

static void make_data(void)
{
    for (int i = 0; i < N; i++) {
        g_t[i] = 0.1 * i;
        g_y[i] = 2.5 * exp(-1.3 * g_t[i]) + 0.4 + 0.02 * sin(7.3 * i + 0.4);
        g_s[i] = 0.02 * (1.0 + 0.05 * i);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) g_C[i * N + j] = g_s[i] * g_s[j] * pow(0.6, abs(i - j));
}

static int model_exp(void *ctx, const double *th, size_t n, const double *x, double *f, double *d)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        const double e = exp(-th[1] * x[i]);
        f[i] = th[0] * e + th[2];
        if (d) {
            d[3 * i] = e;
            d[3 * i + 1] = -th[0] * x[i] * e;
            d[3 * i + 2] = 1.0;
        }
    }
    return 0;
}

static const char *const names[3] = {"amplitude", "rate", "offset"};

static nlsq_curve_problem problem(int analytic)
{
    nlsq_curve_problem cp;
    memset(&cp, 0, sizeof cp);
    cp.n_params = 3;
    cp.n_points = N;
    cp.xdim = 1;
    cp.xdata = g_t;
    cp.ydata = g_y;
    cp.sigma_cov = g_C;
    cp.model = model_exp;
    cp.analytic_jacobian = analytic;
    cp.param_names = names;
    return cp;
}

static nlsq_options tight(int absolute)
{
    nlsq_options o;
    nlsq_options_init(&o);
    o.ftol = o.xtol = o.gtol = 1e-15;
    o.absolute_sigma = absolute;
    return o;
}

static void rel_close(double a, double b, double tol, const char *what, size_t k)
{
    if (!(fabs(a - b) <= tol * fabs(b)))
        fail_msg("%s[%zu] = %.15g, scipy %.15g (rel %.2e > %.0e)", what, k, a, b, fabs(a - b) / fabs(b), tol);
}

static void test_sigma2d_scipy(void **state)
{
    (void)state;
    make_data();
    for (int absolute = 0; absolute < 2; absolute++)
        for (int analytic = 0; analytic < 2; analytic++) {
            nlsq_curve_problem cp = problem(analytic);
            nlsq_options o = tight(absolute);
            double th[3] = {1, 1, 0}, cov[9];
            nlsq_fit_stats st;
            int s = nlsq_curve_fit(&cp, &o, th, cov, &st, NULL);
            assert_true(s > 0);
            const double *popt = absolute ? s2d_popt_abs : s2d_popt_rel;
            const double *pcov = absolute ? s2d_pcov_abs : s2d_pcov_rel;
            for (size_t j = 0; j < 3; j++) rel_close(th[j], popt[j], 1e-7, "popt", j);
            for (size_t k = 0; k < 9; k++) rel_close(cov[k], pcov[k], 1e-5, "pcov", k);
            rel_close(st.chi2, (absolute ? s2d_chi2_abs : s2d_chi2_rel)[0], 1e-9, "chi2", 0);
            assert_true(st.r_squared > 0.99 && st.r_squared < 1.0);
        }
}

static void test_sigma2d_diagonal(void **state)
{
    (void)state;
    make_data();
    double D[N * N] = {0};
    for (int i = 0; i < N; i++) D[i * N + i] = g_s[i] * g_s[i];
    nlsq_curve_problem cp = problem(1);
    cp.sigma_cov = D;
    nlsq_options o = tight(0);
    double a[3] = {1, 1, 0}, b[3] = {1, 1, 0}, ca[9], cb[9];
    nlsq_fit_stats sa, sb;
    assert_true(nlsq_curve_fit(&cp, &o, a, ca, &sa, NULL) > 0);
    cp.sigma_cov = NULL;
    cp.sigma = g_s;
    assert_true(nlsq_curve_fit(&cp, &o, b, cb, &sb, NULL) > 0);
    for (size_t j = 0; j < 3; j++) rel_close(a[j], b[j], 1e-10, "theta", j);
    for (size_t k = 0; k < 9; k++) rel_close(ca[k], cb[k], 1e-7, "cov", k);
    rel_close(sa.chi2, sb.chi2, 1e-10, "chi2", 0);
    rel_close(sa.r_squared, sb.r_squared, 1e-10, "r_squared", 0);
}

static void test_sigma2d_invalid(void **state)
{
    (void)state;
    make_data();
    nlsq_curve_problem cp = problem(1);
    double th[3] = {1, 1, 0};
    nlsq_result r;
    double bad[N * N];
    memcpy(bad, g_C, sizeof bad);
    bad[5 * N + 5] = -1.0;
    cp.sigma_cov = bad;
    assert_int_equal(nlsq_curve_fit(&cp, NULL, th, NULL, NULL, &r), NLSQ_EINVAL);
    assert_non_null(strstr(r.message, "positive definite"));
    bad[5 * N + 5] = g_C[5 * N + 5];
    bad[7 * N + 2] = NAN;
    assert_int_equal(nlsq_curve_fit(&cp, NULL, th, NULL, NULL, &r), NLSQ_EINVAL);
    assert_non_null(strstr(r.message, "sigma_cov[7][2]"));
    cp.sigma_cov = g_C;
    cp.sigma = g_s;
    assert_int_equal(nlsq_curve_fit(&cp, NULL, th, NULL, NULL, &r), NLSQ_EINVAL);
    assert_non_null(strstr(r.message, "both"));
}

static void test_correlation(void **state)
{
    (void)state;
    double corr[9];
    assert_int_equal(nlsq_correlation(3, s2d_pcov_rel, corr), 0);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++) {
            double want = s2d_pcov_rel[i * 3 + j] / sqrt(s2d_pcov_rel[i * 4] * s2d_pcov_rel[j * 4]);
            assert_true(fabs(corr[i * 3 + j] - want) < 1e-15);
        }
    assert_true(corr[0] == 1.0 && corr[4] == 1.0 && corr[8] == 1.0);
    /* parameter 1 fixed (zero row), parameter 2 undetermined (+inf variance) */
    const double c2[9] = {4, 0, NAN, 0, 0, 0, NAN, 0, INFINITY};
    assert_int_equal(nlsq_correlation(3, c2, corr), 0);
    assert_true(corr[0] == 1.0);
    for (size_t k = 1; k < 9; k++) assert_true(isnan(corr[k]));
    assert_int_equal(nlsq_correlation(3, NULL, corr), NLSQ_EINVAL);
    assert_int_equal(nlsq_correlation(0, c2, corr), NLSQ_EINVAL);
    assert_int_equal(nlsq_correlation(3, corr, corr), NLSQ_EINVAL);
}

/* The report of `write` as a string (static buffer). */
static char *report_text(FILE *f)
{
    static char buf[8192];
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_report_curve(void **state)
{
    (void)state;
    make_data();
    nlsq_curve_problem cp = problem(1);
    nlsq_options o = tight(0);
    double th[3] = {1, 1, 0}, cov[9];
    nlsq_fit_stats st;
    nlsq_result res;
    assert_true(nlsq_curve_fit(&cp, &o, th, cov, &st, &res) > 0);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(nlsq_curve_report(f, &cp, th, &res, &st), 0);
    char *txt = report_text(f);
    printf("%s", txt);
    assert_non_null(strstr(txt, "status:        converged"));
    assert_non_null(strstr(txt, "reduced chi2:"));
    assert_non_null(strstr(txt, "chi2:          6.52196080"));
    for (size_t j = 0; j < 3; j++) {
        char *line = strstr(txt, names[j]);
        assert_non_null(line);
        double v, se;
        char flags[32];
        assert_int_equal(sscanf(line + strlen(names[j]), "%lf %lf %*s %31s", &v, &se, flags), 3);
        rel_close(v, s2d_popt_rel[j], 1e-7, "report value", j);
        rel_close(se, sqrt(s2d_pcov_rel[j * 4]), 1e-4, "report error", j);
        assert_string_equal(flags, "free");
    }
    /* |r|: rate-offset 0.834, amplitude-offset -0.826, amplitude-rate -0.555 */
    char *c1 = strstr(txt, "rate             offset");
    char *c2 = strstr(txt, "amplitude        offset");
    char *c3 = strstr(txt, "amplitude        rate ");
    assert_true(c1 && c2 && c3 && c1 < c2 && c2 < c3);
    double r1;
    assert_int_equal(sscanf(c1 + 33, "%lf", &r1), 1);
    double want = s2d_pcov_rel[5] / sqrt(s2d_pcov_rel[4] * s2d_pcov_rel[8]);
    assert_true(fabs(r1 - want) < 6e-5);
}

static int eval_line(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                     const nlsq_eval_env *env)
{
    (void)env;
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        const double t = 0.01 * (double)(row0 + i);
        r[i] = x[0] + x[1] * t + x[2] * t * t - (1.0 + 2.0 * t + 0.05 * sin(40.0 * t));
        if (J) { J[3 * i] = 1.0; J[3 * i + 1] = t; J[3 * i + 2] = t * t; }
    }
    return 0;
}

static void test_report_fixed(void **state)
{
    (void)state;
    /* x0 fixed at 1.1, x1 capped at 1.5 (would be ~2), x2 free */
    const double lo[3] = {1.1, -10, -10}, hi[3] = {1.1, 1.5, 10};
    nlsq_problem pb = {.n_params = 3, .n_rows = 200, .eval = eval_line, .lower = lo, .upper = hi};
    nlsq_options o;
    nlsq_options_init(&o);
    double x[3] = {1.1, 0, 0}, cov[9];
    nlsq_result res;
    memset(&res, 0, sizeof res);
    res.covariance = cov;
    assert_true(nlsq_lm(&pb, &o, x, &res) >= 0);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(nlsq_report(f, &pb, x, &res), 0);
    char *txt = report_text(f);
    printf("%s", txt);
    char fl[3][32];
    for (size_t j = 0; j < 3; j++) {
        char key[8];
        snprintf(key, sizeof key, "x[%zu]", j);
        char *line = strstr(txt, key);
        assert_non_null(line);
        assert_int_equal(sscanf(line + strlen(key), "%*s %*s %*s %31s", fl[j]), 1);
    }
    assert_string_equal(fl[0], "fixed");
    assert_string_equal(fl[1], "at_upper");
    assert_string_equal(fl[2], "free");
    assert_non_null(strstr(txt, "2 free parameters"));
    /* a stream that cannot be written */
    FILE *ro = fopen("/dev/null", "r");
    if (ro) {
        assert_int_equal(nlsq_report(ro, &pb, x, &res), NLSQ_EIO);
        fclose(ro);
    }
    assert_int_equal(nlsq_report(NULL, &pb, x, &res), NLSQ_EINVAL);
}

TC_MAIN(cmocka_unit_test(test_sigma2d_scipy), cmocka_unit_test(test_sigma2d_diagonal),
        cmocka_unit_test(test_sigma2d_invalid), cmocka_unit_test(test_correlation),
        cmocka_unit_test(test_report_curve), cmocka_unit_test(test_report_fixed))
