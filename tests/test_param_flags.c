/*
 * test_param_flags.c - per-parameter flags and fixed parameters (nlsq_lm).
 *
 * A linear model r_i = a u_i + b w v_i + c - y_i (m = 400 rows, a
 * deterministic "noise" in y), so that every reference is a closed form:
 * s^2 (X^T X)^-1 by cofactors (no LAPACK), s^2 = RSS / (m - p_free).
 *
 *  fixed          b held by lower == upper: FIXED flag, covariance row and
 *                 column 0, dof m - 2, the (a, c) block equals the closed
 *                 form of the 2-column fit y - b w v ~ a u + c
 *  width_rule     w = 1e-14 with b in [-10, 10]: the eigenvalue cut keeps b
 *                 (its scaled column is fine), but sigma_b ~ 1e13 > the box
 *                 width: UNDETERMINED, variance +INF, covariances NAN, the
 *                 message names x[1]; a and c keep the closed-form sigmas
 *  bound          b pushed against an upper bound: AT_UPPER (not undetermined)
 *  duplicate      two identical columns: both UNDETERMINED by the rank rule
 */
#include "common.h"

#define M 400

typedef struct lin {
    double w;        /* scale of b's column */
    int duplicate;   /* 1: b's column is u (same as a's) */
} lin;

static double u_of(size_t i) { return (double)i / M; }
static double v_of(size_t i) { return sin(0.37 * (double)i); }
static double y_of(size_t i) { return 1.0 + 2.0 * u_of(i) + 0.5 * v_of(i) + 0.01 * cos(1.3 * (double)i * (double)i); }

/* Row i: residual into *r, Jacobian row (3 entries) into J when not NULL. */
static void lin_row(const lin *L, const double *x, size_t i, double *r, double *J)
{
    double col_b = L->duplicate ? u_of(i) : L->w * v_of(i);
    *r = x[0] * u_of(i) + x[1] * col_b + x[2] - y_of(i);
    if (J) { J[0] = u_of(i); J[1] = col_b; J[2] = 1.0; }
}

static int lin_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                    const nlsq_eval_env *env)
{
    (void)env;
    for (size_t k = 0; k < n; k++) lin_row(ctx, x, row0 + k, &r[k], J ? J + 3 * k : NULL);
    return 0;
}

/* (X^T X)^-1 of the design columns cols (2 or 3 of u, w v, 1), by cofactors,
 * and the residual sum of squares of the least-squares fit of target. */
static void closed_form(const lin *L, int q, const int *cols, const double *shift, double *inv,
                        double *rss)
{
    double A[9] = {0}, g[3] = {0};
    for (size_t i = 0; i < M; i++) {
        double c3[3] = {u_of(i), L->w * v_of(i), 1.0}, x[3];
        for (int a = 0; a < q; a++) x[a] = c3[cols[a]];
        double y = y_of(i) - (shift ? shift[i] : 0.0);
        for (int a = 0; a < q; a++) {
            g[a] += x[a] * y;
            for (int b = 0; b < q; b++) A[a * 3 + b] += x[a] * x[b];
        }
    }
    if (q == 2) {
        double det = A[0] * A[4] - A[1] * A[3];
        inv[0] = A[4] / det; inv[1] = -A[1] / det; inv[2] = -A[3] / det; inv[3] = A[0] / det;
    } else {
        tc_inv3(A, inv);
    }
    double beta[3] = {0};
    for (int a = 0; a < q; a++)
        for (int b = 0; b < q; b++) beta[a] += inv[a * q + b] * g[b];
    *rss = 0.0;
    for (size_t i = 0; i < M; i++) {
        double c3[3] = {u_of(i), L->w * v_of(i), 1.0}, f = 0.0;
        for (int a = 0; a < q; a++) f += beta[a] * c3[cols[a]];
        double e = y_of(i) - (shift ? shift[i] : 0.0) - f;
        *rss += e * e;
    }
}

static int fit(lin *L, const double *lo, const double *hi, double *x, double *cov, nlsq_result *res)
{
    nlsq_problem pb = {.n_params = 3, .n_rows = M, .eval = lin_eval, .ctx = L, .lower = lo, .upper = hi};
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = 1;
    opt.ftol = opt.xtol = 1e-15;
    opt.gtol = 1e-15;
    memset(res, 0, sizeof *res);
    res->covariance = cov;
    return nlsq_lm(&pb, &opt, x, res);
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-300); }

static void test_fixed(void **state)
{
    (void)state;
    lin L = {1.0, 0};
    const double lo[3] = {-INFINITY, 0.7, -INFINITY}, hi[3] = {INFINITY, 0.7, INFINITY};
    double x[3] = {0, 0.7, 0}, cov[9];
    nlsq_result res;
    int st = fit(&L, lo, hi, x, cov, &res);
    assert_true(st > 0);
    double shift[M], inv[4], rss;
    for (size_t i = 0; i < M; i++) shift[i] = 0.7 * v_of(i);
    closed_form(&L, 2, (const int[]){0, 2}, shift, inv, &rss);
    double s2 = rss / (M - 2);
    print_message("  fixed b: %s, n_fixed %zu, var(a) %.15g (closed form %.15g), chi2_red %.15g (%.15g)\n",
                  nlsq_status_name(st), res.n_fixed, cov[0], s2 * inv[0], res.reduced_chi2, s2);
    assert_int_equal(res.n_fixed, 1);
    assert_true(rel(res.reduced_chi2, s2) <= 1e-10);
    assert_true(rel(cov[0], s2 * inv[0]) <= 1e-9);
    assert_true(rel(cov[2], s2 * inv[1]) <= 1e-9);
    assert_true(rel(cov[8], s2 * inv[3]) <= 1e-9);
    for (int k = 0; k < 3; k++) assert_true(cov[3 + k] == 0.0 && cov[3 * k + 1] == 0.0);
    unsigned fl[3];
    nlsq_problem pb = {.n_params = 3, .n_rows = M, .lower = lo, .upper = hi};
    assert_int_equal(nlsq_param_flags(&pb, x, cov, fl), 0);
    assert_int_equal(fl[0], 0);
    assert_int_equal(fl[1], NLSQ_PARAM_FIXED);
    assert_int_equal(fl[2], 0);
}

static void test_width_rule(void **state)
{
    (void)state;
    lin L = {1e-14, 0};
    const double lo[3] = {-INFINITY, -10.0, -INFINITY}, hi[3] = {INFINITY, 10.0, INFINITY};
    double x[3] = {0, 0, 0}, cov[9];
    nlsq_result res;
    int st = fit(&L, lo, hi, x, cov, &res);
    double inv[9], rss, inv2[4];
    closed_form(&L, 3, (const int[]){0, 1, 2}, NULL, inv, &rss);
    /* b's column is ~1e-14: the fit is the (a, c) fit whatever b (in its box) */
    closed_form(&L, 2, (const int[]){0, 2}, NULL, inv2, &rss);
    double s2 = rss / (M - 3);
    print_message("  tiny column: %s, rank %zu, n_undetermined %zu, closed-form sigma_b %.3g; "
                  "message '%s'\n", nlsq_status_name(st), res.rank, res.n_undetermined,
                  sqrt(s2 * inv[4]), res.message);
    assert_true(st > 0);
    assert_int_equal(res.rank, 3);               /* the eigenvalue cut keeps it ... */
    assert_true(sqrt(s2 * inv[4]) > 20.0);       /* ... but its sigma is wider than the box */
    assert_int_equal(res.n_undetermined, 1);
    assert_true(isinf(cov[4]) && cov[4] > 0);
    assert_true(isnan(cov[1]) && isnan(cov[3]) && isnan(cov[5]) && isnan(cov[7]));
    assert_non_null(strstr(res.message, "undetermined: x[1])"));
    assert_true(rel(cov[0], s2 * inv[0]) <= 1e-8);
    assert_true(rel(cov[8], s2 * inv[8]) <= 1e-8);
    unsigned fl[3];
    nlsq_problem pb = {.n_params = 3, .n_rows = M, .lower = lo, .upper = hi};
    assert_int_equal(nlsq_param_flags(&pb, x, cov, fl), 1);
    assert_int_equal(fl[1] & NLSQ_PARAM_UNDETERMINED, NLSQ_PARAM_UNDETERMINED);
    assert_int_equal(fl[0] | fl[2], 0);
}

static void test_bound(void **state)
{
    (void)state;
    lin L = {1.0, 0};
    const double lo[3] = {-INFINITY, -1.0, -INFINITY}, hi[3] = {INFINITY, 0.2, INFINITY};
    double x[3] = {0, 0, 0}, cov[9];
    nlsq_result res;
    assert_true(fit(&L, lo, hi, x, cov, &res) > 0);
    unsigned fl[3];
    nlsq_problem pb = {.n_params = 3, .n_rows = M, .lower = lo, .upper = hi};
    assert_int_equal(nlsq_param_flags(&pb, x, cov, fl), 0);
    print_message("  b at its upper bound: x = %g, flags '%s', sigma %g\n", x[1],
                  nlsq_param_flags_name(fl[1]), sqrt(cov[4]));
    assert_true(x[1] == 0.2);
    assert_int_equal(fl[1], NLSQ_PARAM_AT_UPPER);
    assert_string_equal(nlsq_param_flags_name(fl[1]), "at_upper");
    assert_string_equal(nlsq_param_flags_name(NLSQ_PARAM_UNDETERMINED | NLSQ_PARAM_AT_LOWER),
                        "undetermined_at_lower");
    assert_string_equal(nlsq_param_flags_name(0), "free");
}

static void test_duplicate(void **state)
{
    (void)state;
    lin L = {1.0, 1};
    double x[3] = {0, 0, 0}, cov[9];
    nlsq_result res;
    assert_true(fit(&L, NULL, NULL, x, cov, &res) > 0);
    print_message("  duplicate column: rank %zu, n_undetermined %zu, '%s'\n", res.rank,
                  res.n_undetermined, res.message);
    assert_int_equal(res.rank, 2);
    assert_int_equal(res.n_undetermined, 2);
    assert_non_null(strstr(res.message, "(undetermined: x[0], x[1])"));
}

TC_MAIN(cmocka_unit_test(test_fixed), cmocka_unit_test(test_width_rule),
        cmocka_unit_test(test_bound), cmocka_unit_test(test_duplicate))
