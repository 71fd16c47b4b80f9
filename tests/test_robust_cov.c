/*
 * test_robust_cov.c - nlsq_covariance_robust against a dense reference.
 *
 * Problem: r_i = a exp(-b t_i) + c - y_i, m = 360 rows on a 20 x 18 grid
 * (row i is cell (u, v) = (i / 18, i % 18)), y with noise shared by the
 * grid's rows and columns.  At the LM solution the reference builds the
 * whole m x 3 Jacobian, A = J^T J, A^-1 by cofactors, the per-cluster sums
 * S_c and B by plain loops, and compares A^-1 B A^-1 * correction:
 *
 *  one_way       clusters = grid rows (20)
 *  two_way_cgm   grid rows 0..19 and grid columns 20..37 (disjoint ranges):
 *                B_row + B_col - B_cell
 *  two_way_frames a square 24 x 24 upper triangle, cell (i, j) in frames i
 *                and j of one range (the two-time case)
 *  fixed         c fixed: its row/column 0, the rest as the 2-parameter
 *                reference with p_free = 2 in the correction
 *  pattern       the same one-way problem through a sparse pattern (k = 3 of
 *                p = 4, the 4th column never used: undetermined, +INF)
 *  redundant     (a + d) in place of a: a and d undetermined, b and c as in
 *                the 3-parameter problem (the sandwich over kept directions)
 *  units         two-way on a small grid, where the covariance is clipped:
 *                the same in other parameter units
 *  errors        n_clusters < 2, id out of range, NULL arguments, no degrees
 *                of freedom, all rows in one cluster
 */
#include "common.h"

#define MAXM 600

typedef struct prob {
    size_t m, nu, nv;        /* grid: row i is (u_i, v_i) */
    size_t u[MAXM], v[MAXM];
    double t[MAXM], y[MAXM];
    int mode;                /* 0 one-way, 1 CGM, 2 frames */
    int bad_id;              /* 1: return an out-of-range id */
} prob;

static double hash01(size_t k)
{
    uint64_t z = (uint64_t)k * 0x9E3779B97F4A7C15ull + 12345;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0 - 0.5;
}

static void make_grid(prob *P, size_t nu, size_t nv, int triangle)
{
    memset(P, 0, sizeof *P);
    P->nu = nu;
    P->nv = nv;
    for (size_t a = 0; a < nu; a++)
        for (size_t b = triangle ? a + 1 : 0; b < nv; b++) {
            size_t i = P->m++;
            P->u[i] = a;
            P->v[i] = b;
            P->t[i] = 0.05 * (double)(b > a ? b - a : a - b) + 0.01 * (double)a;
            double noise = 0.03 * hash01(1000 + a) + 0.03 * hash01(5000 + b) + 0.02 * hash01(i);
            P->y[i] = 2.0 * exp(-1.5 * P->t[i]) + 0.5 + noise;
        }
}

static int eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                const nlsq_eval_env *env)
{
    (void)env;
    const prob *P = ctx;
    for (size_t k = 0; k < n; k++) {
        size_t i = row0 + k;
        double e = exp(-x[1] * P->t[i]);
        r[k] = x[0] * e + x[2] - P->y[i];
        if (J) { J[3 * k] = e; J[3 * k + 1] = -x[0] * P->t[i] * e; J[3 * k + 2] = 1.0; }
    }
    return 0;
}

static int ids(void *ctx, size_t row0, size_t n, size_t *ia, size_t *ib)
{
    const prob *P = ctx;
    for (size_t k = 0; k < n; k++) {
        size_t i = row0 + k;
        ia[k] = P->u[i];
        ib[k] = P->mode == 0 ? NLSQ_NO_CLUSTER : P->mode == 1 ? P->nu + P->v[i] : P->v[i];
        if (P->bad_id) ia[k] = 1000000;
    }
    return 0;
}

static size_t n_clusters(const prob *P) { return P->mode == 1 ? P->nu + P->nv : P->nv > P->nu ? P->nv : P->nu; }

/* The dense reference over the q free columns cols[] (q = 2 or 3). */
static void reference_any(const prob *P, const double *x, int q, const int *cols, double *V,
                          int need_pd)
{
    static double Jf[MAXM][3], g[MAXM][3];
    static double S[64][3];
    double A[9] = {0}, B[9] = {0}, Ai[9] = {0};
    size_t G = n_clusters(P);
    unsigned char used[64] = {0};
    memset(S, 0, sizeof S);
    for (size_t i = 0; i < P->m; i++) {
        double r, J[3];
        eval((void *)P, x, i, 1, &r, J, NULL);
        for (int a = 0; a < q; a++) { Jf[i][a] = J[cols[a]]; g[i][a] = J[cols[a]] * r; }
        for (int a = 0; a < q; a++)
            for (int b = 0; b < q; b++) A[a * 3 + b] += Jf[i][a] * Jf[i][b];
        size_t ia, ib;
        ids((void *)P, i, 1, &ia, &ib);
        if (ia >= 64 || (ib != NLSQ_NO_CLUSTER && ib >= 64)) fail_msg("id out of range");
        for (int a = 0; a < q; a++) S[ia][a] += g[i][a];
        used[ia] = 1;
        if (ib != NLSQ_NO_CLUSTER && ib != ia) {
            for (int a = 0; a < q; a++) S[ib][a] += g[i][a];
            used[ib] = 1;
            for (int a = 0; a < q; a++)
                for (int b = 0; b < q; b++) B[a * 3 + b] -= g[i][a] * g[i][b];
        }
    }
    size_t Gu = 0;
    for (size_t c = 0; c < G; c++) {
        Gu += used[c];
        for (int a = 0; a < q; a++)
            for (int b = 0; b < q; b++) B[a * 3 + b] += S[c][a] * S[c][b];
    }
    double corr = (double)Gu / (double)(Gu - 1) * (double)(P->m - 1) / (double)(P->m - (size_t)q);
    if (q == 3) tc_inv3(A, Ai);
    else {
        double d = A[0] * A[4] - A[1] * A[3];
        Ai[0] = A[4] / d; Ai[1] = -A[1] / d; Ai[3] = -A[3] / d; Ai[4] = A[0] / d;
    }
    /* B must be positive definite here (no clipping in the reference) */
    double d1 = B[0], d2 = B[0] * B[4] - B[1] * B[3];
    if (need_pd) assert_true(d1 > 0 && d2 > 0);
    for (int a = 0; a < q; a++)
        for (int b = 0; b < q; b++) {
            double s = 0;
            for (int e = 0; e < q; e++)
                for (int f = 0; f < q; f++) s += Ai[a * 3 + e] * B[e * 3 + f] * Ai[f * 3 + b];
            V[a * 3 + b] = s * corr;
        }
}

static void reference(const prob *P, const double *x, int q, const int *cols, double *V)
{
    reference_any(P, x, q, cols, V, 1);
}

static void fit(prob *P, const double *lo, const double *hi, double *x)
{
    nlsq_problem pb = {.n_params = 3, .n_rows = P->m, .eval = eval, .ctx = P, .lower = lo, .upper = hi};
    nlsq_options o;
    nlsq_options_init(&o);
    o.n_threads = 1;
    nlsq_result res;
    memset(&res, 0, sizeof res);
    assert_true(nlsq_lm(&pb, &o, x, &res) > 0);
}

static double check(prob *P, const double *lo, const double *hi, const double *x, int q,
                    const int *cols, double *cov)
{
    nlsq_problem pb = {.n_params = 3, .n_rows = P->m, .eval = eval, .ctx = P, .lower = lo, .upper = hi};
    nlsq_options o;
    nlsq_options_init(&o);
    o.chunk_rows = 7;             /* many chunks */
    nlsq_clusters cl = {n_clusters(P), ids, P};
    nlsq_result res;
    memset(&res, 0, sizeof res);
    int st = nlsq_covariance_robust(&pb, &o, &cl, x, cov, &res);
    assert_int_equal(st, 0);
    double V[9];
    reference(P, x, q, cols, V);
    double worst = 0;
    for (int a = 0; a < q; a++)
        for (int b = 0; b < q; b++) {
            double ref = V[a * 3 + b], sc = sqrt(V[a * 3 + a] * V[b * 3 + b]);
            double d = fabs(cov[cols[a] * 3 + cols[b]] - ref) / sc;
            if (d > worst) worst = d;
        }
    print_message("  mode %d, q %d: %s; robust sigma %.4g %.4g %.4g, worst rel err %.2e\n",
                  P->mode, q, res.message, sqrt(cov[0]), sqrt(cov[4]), sqrt(cov[8]), worst);
    return worst;
}

static void test_one_way(void **state)
{
    (void)state;
    static prob P;
    make_grid(&P, 20, 18, 0);
    double x[3] = {1, 1, 0}, cov[9];
    fit(&P, NULL, NULL, x);
    assert_true(check(&P, NULL, NULL, x, 3, (const int[]){0, 1, 2}, cov) < 1e-10);
}

static void test_two_way_cgm(void **state)
{
    (void)state;
    static prob P;
    make_grid(&P, 20, 18, 0);
    P.mode = 1;
    double x[3] = {1, 1, 0}, cov[9];
    fit(&P, NULL, NULL, x);
    assert_true(check(&P, NULL, NULL, x, 3, (const int[]){0, 1, 2}, cov) < 1e-10);
}

static void test_two_way_frames(void **state)
{
    (void)state;
    static prob P;
    make_grid(&P, 24, 24, 1);
    P.mode = 2;
    double x[3] = {1, 1, 0}, cov[9];
    fit(&P, NULL, NULL, x);
    assert_true(check(&P, NULL, NULL, x, 3, (const int[]){0, 1, 2}, cov) < 1e-10);
}

static void test_fixed(void **state)
{
    (void)state;
    static prob P;
    make_grid(&P, 20, 18, 0);
    const double lo[3] = {-INFINITY, -INFINITY, 0.5}, hi[3] = {INFINITY, INFINITY, 0.5};
    double x[3] = {1, 1, 0.5}, cov[9];
    fit(&P, lo, hi, x);
    assert_true(check(&P, lo, hi, x, 2, (const int[]){0, 1}, cov) < 1e-10);
    for (int k = 0; k < 3; k++) assert_true(cov[2 * 3 + k] == 0.0 && cov[k * 3 + 2] == 0.0);
}

/* The one-way robust covariance of a 4-parameter problem over P's rows. */
static void robust4(prob *P, const nlsq_problem *pb, size_t chunk, const double *x, double *cov,
                    nlsq_result *res)
{
    nlsq_options o;
    nlsq_options_init(&o);
    o.chunk_rows = chunk;
    nlsq_clusters cl = {20, ids, P};
    memset(res, 0, sizeof *res);
    assert_int_equal(nlsq_covariance_robust(pb, &o, &cl, x, cov, res), 0);
}

/* The same rows through a sparse pattern with a 4th, unused parameter. */
static size_t pat4(void *ctx, size_t row0, size_t n, size_t *cols, size_t *k)
{
    (void)ctx; (void)row0;
    cols[0] = 0; cols[1] = 1; cols[2] = 2;
    *k = 3;
    return n;
}

static void test_pattern(void **state)
{
    (void)state;
    static prob P;
    make_grid(&P, 20, 18, 0);
    double x[4] = {1, 1, 0, 7}, cov3[9], cov4[16];
    fit(&P, NULL, NULL, x);
    nlsq_problem pb = {.n_params = 4, .n_rows = P.m, .eval = eval, .ctx = &P, .pattern = pat4};
    nlsq_result res;
    robust4(&P, &pb, 11, x, cov4, &res);
    print_message("  pattern: %s\n", res.message);
    assert_int_equal(res.n_undetermined, 1);
    assert_true(isinf(cov4[15]));
    check(&P, NULL, NULL, x, 3, (const int[]){0, 1, 2}, cov3);
    /* the 3 used parameters: the same as the dense one-way result, except
     * the correction factor's (n - 1) / (n - p_free): p_free is 4 here.
     * The two are summed in different orders (chunks of 11 rows through a
     * pattern, against dense rows) and both go through an inverse of A, so
     * they agree to rounding times A's condition: 1e-12 relative was seen
     * with single-threaded OpenBLAS (CI's setting), hence 1e-10. */
    double f = (double)(P.m - 3) / (double)(P.m - 4);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            assert_true(fabs(cov4[a * 4 + b] - f * cov3[a * 3 + b]) <= 1e-10 * sqrt(cov3[a * 4] * cov3[b * 4]));
}

/* r = (a + d) exp(-b t) + c - y: a and d enter only as their sum, so A has an
 * exact null direction (1, 0, 0, -1) that the rank rule cuts and a, d are
 * undetermined.  b and c are determined, and their robust covariance is that
 * of the 3-parameter problem in (a + d, b, c) (times the (n - 1) / (n -
 * p_free) factor, p_free = 4 here): the sandwich has to be taken over the
 * kept directions with a's and d's rows of A^+ in it, not over the
 * determined parameters' block alone (which gave b and c other values). */
static int eval_sum(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                    const nlsq_eval_env *env)
{
    const double x3[3] = {x[0] + x[3], x[1], x[2]};
    double J3[3 * 64];
    if (n > 64) return 1;
    int rc = eval(ctx, x3, row0, n, r, J ? J3 : NULL, env);
    for (size_t k = 0; J && k < n; k++) {
        J[4 * k] = J3[3 * k]; J[4 * k + 1] = J3[3 * k + 1];
        J[4 * k + 2] = J3[3 * k + 2]; J[4 * k + 3] = J3[3 * k];
    }
    return rc;
}

static void test_redundant(void **state)
{
    (void)state;
    static prob P;
    make_grid(&P, 20, 18, 0);
    double x[3] = {1, 1, 0}, cov3[9], cov4[16];
    fit(&P, NULL, NULL, x);
    check(&P, NULL, NULL, x, 3, (const int[]){0, 1, 2}, cov3);
    double x4[4] = {x[0] - 0.3, x[1], x[2], 0.3};
    nlsq_problem pb = {.n_params = 4, .n_rows = P.m, .eval = eval_sum, .ctx = &P};
    nlsq_result res;
    robust4(&P, &pb, 13, x4, cov4, &res);
    print_message("  redundant: %s (rank %zu)\n", res.message, res.rank);
    assert_int_equal(res.n_undetermined, 2);
    assert_int_equal(res.rank, 3);
    assert_true(isinf(cov4[0]) && isinf(cov4[15]));
    double f = (double)(P.m - 3) / (double)(P.m - 4);
    for (int a = 1; a < 3; a++)
        for (int b = 1; b < 3; b++) {
            double ref = f * cov3[a * 3 + b];
            print_message("  cov[%d][%d] %.10g, 3-parameter problem %.10g\n", a, b, cov4[a * 4 + b], ref);
            assert_true(fabs(cov4[a * 4 + b] - ref) <= 1e-8 * sqrt(cov3[a * 4] * cov3[b * 4]) * f);
        }
}

/* The same problem in other units: a' = 1000 a, c' = c / 1000. */
static int eval_units(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                      const nlsq_eval_env *env)
{
    const double xs[3] = {x[0] / 1000.0, x[1], x[2] * 1000.0};
    int rc = eval(ctx, xs, row0, n, r, J, env);
    for (size_t k = 0; J && k < n; k++) { J[3 * k] /= 1000.0; J[3 * k + 2] *= 1000.0; }
    return rc;
}

/* Two-way CGM on a small grid, where the subtracted cells leave the
 * covariance with a negative eigenvalue: the result is the clipped one
 * (it differs from the unclipped reference and is positive semi-definite),
 * and the clipping does not depend on the parameters' units (before
 * 3f3055b it was done on B in the parameters' own units). */
static void test_units(void **state)
{
    (void)state;
    static prob P;
    make_grid(&P, 4, 6, 0);
    P.mode = 1;
    double x[3] = {1, 1, 0}, V[9], cov[9], cov_u[9];
    fit(&P, NULL, NULL, x);
    reference_any(&P, x, 3, (const int[]){0, 1, 2}, V, 0);
    nlsq_problem pb = {.n_params = 3, .n_rows = P.m, .eval = eval, .ctx = &P};
    nlsq_clusters cl = {n_clusters(&P), ids, &P};
    nlsq_result res;
    assert_int_equal(nlsq_covariance_robust(&pb, NULL, &cl, x, cov, &res), 0);
    double diff = 0;
    for (int t = 0; t < 9; t++) diff = fmax(diff, fabs(cov[t] - V[t]) / sqrt(fabs(V[0] * V[8])));
    double det2 = cov[0] * cov[4] - cov[1] * cov[3];
    print_message("  units: clipped vs unclipped %.3g; 2x2 minor %.3g\n", diff, det2);
    assert_true(diff > 1e-6);
    assert_true(cov[0] >= 0 && cov[4] >= 0 && cov[8] >= 0 && det2 >= -1e-12 * cov[0] * cov[4]);
    const double xu[3] = {x[0] * 1000.0, x[1], x[2] / 1000.0}, su[3] = {1000.0, 1.0, 1e-3};
    nlsq_problem pu = {.n_params = 3, .n_rows = P.m, .eval = eval_units, .ctx = &P};
    assert_int_equal(nlsq_covariance_robust(&pu, NULL, &cl, xu, cov_u, &res), 0);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double want = su[a] * su[b] * cov[a * 3 + b];
            double scale = su[a] * su[b] * sqrt(cov[a * 4] * cov[b * 4]);
            assert_true(fabs(cov_u[a * 3 + b] - want) <= 1e-9 * scale);
        }
}

static void test_errors(void **state)
{
    (void)state;
    static prob P;
    make_grid(&P, 20, 18, 0);
    double x[3] = {2, 1.5, 0.5}, cov[9];
    nlsq_problem pb = {.n_params = 3, .n_rows = P.m, .eval = eval, .ctx = &P};
    nlsq_clusters one = {1, ids, &P}, ok = {20, ids, &P};
    nlsq_result res;
    memset(&res, 0, sizeof res);
    assert_int_equal(nlsq_covariance_robust(&pb, NULL, &one, x, cov, &res), NLSQ_EINVAL);
    assert_int_equal(nlsq_covariance_robust(&pb, NULL, NULL, x, cov, &res), NLSQ_EINVAL);
    assert_int_equal(nlsq_covariance_robust(&pb, NULL, &ok, x, NULL, &res), NLSQ_EINVAL);
    P.bad_id = 1;
    assert_int_equal(nlsq_covariance_robust(&pb, NULL, &ok, x, cov, &res), NLSQ_ECALLBACK);
    print_message("  bad id: %s\n", res.message);
    /* no degrees of freedom (3 rows, 3 parameters), and every row in one
     * cluster: no correction factor, an error rather than NAN */
    make_grid(&P, 3, 1, 0);
    pb.n_rows = P.m;
    assert_int_equal(nlsq_covariance_robust(&pb, NULL, &ok, x, cov, &res), NLSQ_EINVAL);
    print_message("  3 rows: %s\n", res.message);
    make_grid(&P, 1, 18, 0);
    pb.n_rows = P.m;
    assert_int_equal(nlsq_covariance_robust(&pb, NULL, &ok, x, cov, &res), NLSQ_EINVAL);
    print_message("  one cluster: %s\n", res.message);
}

TC_MAIN(cmocka_unit_test(test_one_way), cmocka_unit_test(test_two_way_cgm),
        cmocka_unit_test(test_two_way_frames), cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_pattern), cmocka_unit_test(test_redundant),
        cmocka_unit_test(test_units), cmocka_unit_test(test_errors))
