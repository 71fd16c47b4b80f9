/*
 * test_profile_boot.c - nlsq_profile_bootstrap and nlsq_profile_test.
 *
 * Problem: r_i = a u_i + b v_i + c - y_i on an nu x nv grid (row i is cell
 * (i / nv, i % nv)), linear, so every replicate's statistic is known in
 * closed form.  For H0: b = t the held point x_h is the least-squares fit
 * of a and c with b = t, e = y - X x_h its residuals, and a replicate's
 * data are y* = X x_h + m o e; its unconstrained fit moves b by
 * sum_i h_i m_i e_i with h = X (X^T X)^-1 e_b, so
 *     D* = (sum_i h_i m_i e_i)^2 / ((X^T X)^-1_bb s2) * kappa.
 * The weights are the library's own draws, but for a given clustering they
 * take few values: m_i = w_a(i) (+ w_b(i)), w = +-1 per cluster.  The
 * reference lists D* for every sign pattern, and each replicate must be one
 * of them (to 1e-6):
 *
 *  one_way      3 grid-row clusters: 4 values (+-), kappa = 1 exactly (one
 *               cluster a row: the wild covariance is the sandwich), and
 *               more than one value drawn; 7 to 8 solves a replicate (its
 *               fit, then the data's two ways to the held minimum and one
 *               from x_h: the first design's 2, a held solve from x_h and
 *               a free one, fail)
 *  two_way      grid rows and grid columns (CGM): 2^(nu + nv) patterns;
 *               kappa against a dense computation, V_rob,bb (the library's
 *               sandwich, tested in test_robust_cov) over A^-1 (f sum_c S_c
 *               S_c^T) A^-1, the sum over both kinds of cluster without
 *               subtracting the cells
 *  rows         no clusters (a weight per row): the mean of D* over 400
 *               replicates against its expectation sum h_i^2 e_i^2 / (...)
 *               (Rademacher: E m_i m_k = delta_ik), within 4 standard
 *               errors, and every D* >= 0
 *  uncached     the allocator refuses the cache of residuals at x_h (one
 *               block of n_rows doubles): every chunk evaluates them again,
 *               the same D* to 1e-12
 *  test         nlsq_profile_test: D = (b_hat - t)^2 / ((X^T X)^-1_bb s^2)
 *               with s^2 = 2 C_min / dof, the p-value recounted from D*,
 *               and D* as in one_way; from a far x_hat with one iteration
 *               a solve, the held path ends below the minimum's solve:
 *               better_min, D < 0, p = 1
 *  errors       n_boot < 2, j fixed or out of range, s2 <= 0, one cluster,
 *               NULL arguments, t outside the bounds
 */
#include "common.h"

#define MAXM 400

typedef struct grid {
    size_t m, nu, nv;
    double u[MAXM], v[MAXM], y[MAXM];
    int mode;   /* 0 rows, 1 one-way (grid rows), 2 two-way (grid rows, columns) */
    size_t refuse;   /* allocator: refuse a block of exactly this many bytes (0: none) */
} grid;

static void make_grid(grid *G, size_t nu, size_t nv, int mode)
{
    memset(G, 0, sizeof *G);
    G->nu = nu;
    G->nv = nv;
    G->mode = mode;
    for (size_t i = 0; i < nu * nv; i++) {
        size_t a = i / nv, b = i % nv;
        G->u[i] = (double)i / (double)(nu * nv);
        G->v[i] = cos(0.7 * (double)i);
        double noise = 0.04 * tc_uniform_noise(7000 + i) + 0.03 * tc_uniform_noise(8000 + a) +
                       0.03 * tc_uniform_noise(9000 + b);
        G->y[i] = 1.0 + 2.0 * G->u[i] - 0.3 * G->v[i] + noise;
    }
    G->m = nu * nv;
}

static int eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                const nlsq_eval_env *env)
{
    (void)env;
    const grid *G = ctx;
    for (size_t k = 0; k < n; k++) {
        size_t i = row0 + k;
        r[k] = x[0] * G->u[i] + x[1] * G->v[i] + x[2] - G->y[i];
        if (J) { J[3 * k] = G->u[i]; J[3 * k + 1] = G->v[i]; J[3 * k + 2] = 1.0; }
    }
    return 0;
}

static int ids(void *ctx, size_t row0, size_t n, size_t *ia, size_t *ib)
{
    const grid *G = ctx;
    for (size_t k = 0; k < n; k++) {
        size_t i = row0 + k;
        ia[k] = i / G->nv;
        ib[k] = G->mode == 2 ? G->nu + i % G->nv : NLSQ_NO_CLUSTER;
    }
    return 0;
}

static void *refusing_alloc(void *ctx, size_t size)
{
    const grid *G = ctx;
    return size == G->refuse ? NULL : malloc(size);
}
static void plain_free(void *ctx, void *p) { (void)ctx; free(p); }

static double row_x(const grid *G, size_t i, int k) { return k == 0 ? G->u[i] : k == 1 ? G->v[i] : 1.0; }

/* A = X^T X and its inverse. */
static void normal_inverse(const grid *G, double A[9], double Ai[9])
{
    memset(A, 0, 9 * sizeof(double));
    for (size_t i = 0; i < G->m; i++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) A[3 * a + b] += row_x(G, i, a) * row_x(G, i, b);
    tc_inv3(A, Ai);
}

/* |a - b| <= tol, or the test fails naming both. */
#define assert_close(a, b, tol)                                                        \
    do {                                                                               \
        double a_ = (a), b_ = (b);                                                     \
        if (!(fabs(a_ - b_) <= (tol))) fail_msg("%s = %.15g, not %.15g", #a, a_, b_); \
    } while (0)

/* The held point for b = t: a and c from their 2 x 2 normal equations. */
static void held_fit(const grid *G, double t, double xh[3])
{
    double s_uu = 0, s_u1 = 0, s_11 = 0, s_uz = 0, s_1z = 0;
    for (size_t i = 0; i < G->m; i++) {
        double z = G->y[i] - t * G->v[i];
        s_uu += G->u[i] * G->u[i];
        s_u1 += G->u[i];
        s_11 += 1.0;
        s_uz += G->u[i] * z;
        s_1z += z;
    }
    double det = s_uu * s_11 - s_u1 * s_u1;
    xh[0] = (s_11 * s_uz - s_u1 * s_1z) / det;
    xh[1] = t;
    xh[2] = (s_uu * s_1z - s_u1 * s_uz) / det;
}

/* he[i] = h_i e_i at the held point (h = X A^-1 e_b). */
static void influence(const grid *G, const double Ai[9], const double xh[3], double *he)
{
    for (size_t i = 0; i < G->m; i++) {
        double h = 0.0;
        for (int k = 0; k < 3; k++) h += row_x(G, i, k) * Ai[3 * k + 1];
        double e = G->y[i] - (xh[0] * G->u[i] + xh[1] * G->v[i] + xh[2]);
        he[i] = h * e;
    }
}

/* Every value D* can take over the 2^G sign patterns of the G clusters'
 * weights (m_i = w_a + w_b with two ids), divided by kappa, into vals. */
static size_t pattern_values(const grid *G, const double *he, double norm, double *vals)
{
    size_t nc = G->mode == 2 ? G->nu + G->nv : G->nu, n = 0;
    for (size_t pat = 0; pat < ((size_t)1 << nc); pat++) {
        double s = 0.0;
        for (size_t i = 0; i < G->m; i++) {
            size_t a = i / G->nv, b = G->nu + i % G->nv;
            double m = (pat >> a & 1) ? 1.0 : -1.0;
            if (G->mode == 2) m += (pat >> b & 1) ? 1.0 : -1.0;
            s += m * he[i];
        }
        vals[n++] = s * s / norm;
    }
    return n;
}

/* Each D*_b / kappa is one of vals (rel 1e-6 of the largest); returns how
 * many distinct values were drawn. */
static size_t check_members(const double *dstar, size_t B, double kappa, const double *vals,
                            size_t nv)
{
    double vmax = 0.0;
    for (size_t k = 0; k < nv; k++) vmax = fmax(vmax, vals[k]);
    size_t distinct = 0;
    double last = -1.0;
    for (size_t b = 0; b < B; b++) {
        double d = dstar[b] / kappa, best = INFINITY;
        for (size_t k = 0; k < nv; k++) best = fmin(best, fabs(d - vals[k]));
        if (best > 1e-6 * vmax) fail_msg("D*_%zu = %.12g is no sign pattern's value", b, d);
        if (b == 0 || d - last > 1e-6 * vmax) distinct++;
        last = d;
    }
    return distinct;
}

static nlsq_problem problem(grid *G)
{
    return (nlsq_problem){.n_params = 3, .n_rows = G->m, .eval = eval, .ctx = G};
}

static double fit_s2(const grid *G, nlsq_problem *pb, double x[3])
{
    nlsq_options o = tc_strict();
    nlsq_result r;
    memset(&r, 0, sizeof r);
    x[0] = x[1] = x[2] = 0.0;
    assert_true(nlsq_lm(pb, &o, x, &r) > 0);
    (void)G;
    return 2.0 * r.cost / r.dof;
}

/* D* for H0: b = t over B replicates against the sign patterns. */
static void check_patterns(int mode, size_t nu, size_t nv, size_t B, size_t want_distinct)
{
    grid G;
    make_grid(&G, nu, nv, mode);
    nlsq_problem pb = problem(&G);
    nlsq_clusters cl = {.n_clusters = mode == 2 ? nu + nv : nu, .ids = ids, .ctx = &G};
    double x[3], A[9], Ai[9], xh[3], he[MAXM], vals[1 << 12], dstar[400], kappa = 0.0;
    double s2 = fit_s2(&G, &pb, x);
    normal_inverse(&G, A, Ai);
    held_fit(&G, x[1] + 2.0 * sqrt(s2 * Ai[4]), xh);   /* two sigma off */
    influence(&G, Ai, xh, he);
    size_t nvals = pattern_values(&G, he, Ai[4] * s2, vals);
    nlsq_options o = tc_strict();
    nlsq_profile_boot bo = {.n_boot = B, .seed = 42, .clusters = &cl, .s2 = s2};
    size_t solves = 0;
    assert_int_equal(nlsq_profile_bootstrap(&pb, &o, &bo, xh, 1, dstar, &kappa, &solves), 0);
    /* a free solve, the held path's four, the solve with x_j = t alone and
     * the one from x_h per replicate; the free solve once more where the
     * held cost ends below */
    assert_true(solves >= 7 * B && solves <= 8 * B);
    for (size_t b = 1; b < B; b++) assert_true(dstar[b] >= dstar[b - 1]);   /* sorted */
    if (mode == 1) assert_close(kappa, 1.0, 1e-12);
    if (mode == 2) {   /* V_rob,bb / V_wild,bb, the latter by plain loops */
        double Vr[9], S[64][3], Bw[9] = {0};
        memset(S, 0, sizeof S);
        assert_int_equal(nlsq_covariance_robust(&pb, &o, &cl, xh, Vr, NULL), 0);
        for (size_t i = 0; i < G.m; i++) {
            double r = xh[0] * G.u[i] + xh[1] * G.v[i] + xh[2] - G.y[i];
            for (int k = 0; k < 3; k++) {
                S[i / G.nv][k] += row_x(&G, i, k) * r;
                S[G.nu + i % G.nv][k] += row_x(&G, i, k) * r;
            }
        }
        double nc = (double)(nu + nv), n = (double)G.m;
        double f = nc / (nc - 1.0) * (n - 1.0) / (n - 3.0);
        for (size_t c = 0; c < nu + nv; c++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) Bw[3 * a + b] += f * S[c][a] * S[c][b];
        double vw = 0.0;
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) vw += Ai[3 + a] * Bw[3 * a + b] * Ai[3 * b + 1];
        assert_close(kappa, Vr[4] / vw, 1e-9 * kappa);
        assert_true(kappa > 0.2 && kappa < 0.9);   /* the cells counted twice */
    }
    size_t distinct = check_members(dstar, B, kappa, vals, nvals);
    assert_true(distinct >= want_distinct);
}

static void test_one_way(void **state)
{
    (void)state;
    check_patterns(1, 3, 40, 64, 2);
}

static void test_two_way(void **state)
{
    (void)state;
    check_patterns(2, 4, 5, 200, 10);
}

static void test_rows(void **state)
{
    (void)state;
    grid G;
    make_grid(&G, 10, 30, 0);
    nlsq_problem pb = problem(&G);
    double x[3], A[9], Ai[9], xh[3], he[MAXM], dstar[400], kappa = 0.0;
    double s2 = fit_s2(&G, &pb, x);
    normal_inverse(&G, A, Ai);
    held_fit(&G, x[1] - sqrt(s2 * Ai[4]), xh);
    influence(&G, Ai, xh, he);
    double expect = 0.0;
    for (size_t i = 0; i < G.m; i++) expect += he[i] * he[i];
    expect /= Ai[4] * s2;
    nlsq_options o = tc_strict();
    nlsq_profile_boot bo = {.n_boot = 400, .seed = 7, .s2 = s2};
    assert_int_equal(nlsq_profile_bootstrap(&pb, &o, &bo, xh, 1, dstar, &kappa, NULL), 0);
    assert_close(kappa, 1.0, 0.0);
    double mean = 0.0, m2 = 0.0;
    for (size_t b = 0; b < 400; b++) {
        assert_true(dstar[b] >= 0.0);
        mean += dstar[b] / 400;
        m2 += dstar[b] * dstar[b] / 400;
    }
    double se = sqrt((m2 - mean * mean) / 400);
    if (fabs(mean - expect) > 4 * se)
        fail_msg("mean D* %.6g, expected %.6g (se %.3g)", mean, expect, se);
}

static void test_uncached(void **state)
{
    (void)state;
    grid G;
    make_grid(&G, 3, 40, 1);
    nlsq_problem pb = problem(&G);
    nlsq_clusters cl = {.n_clusters = 3, .ids = ids, .ctx = &G};
    double x[3], d1[50], d2[50];
    double s2 = fit_s2(&G, &pb, x);
    double xh[3] = {x[0], x[1] + 0.05, x[2]};
    nlsq_options o = tc_strict();
    o.chunk_rows = 16;   /* several chunks */
    nlsq_profile_boot bo = {.n_boot = 50, .seed = 3, .clusters = &cl, .s2 = s2};
    assert_int_equal(nlsq_profile_bootstrap(&pb, &o, &bo, xh, 1, d1, NULL, NULL), 0);
    G.refuse = G.m * sizeof(double);
    o.allocator = (nlsq_allocator){.alloc_fn = refusing_alloc, .free_fn = plain_free, .ctx = &G};
    assert_int_equal(nlsq_profile_bootstrap(&pb, &o, &bo, xh, 1, d2, NULL, NULL), 0);
    for (size_t b = 0; b < 50; b++) assert_close(d1[b], d2[b], 1e-12 * fmax(1.0, d1[b]));
}

static void test_test(void **state)
{
    (void)state;
    grid G;
    make_grid(&G, 3, 40, 1);
    nlsq_problem pb = problem(&G);
    nlsq_clusters cl = {.n_clusters = 3, .ids = ids, .ctx = &G};
    double x[3], A[9], Ai[9], xh[3], he[MAXM], vals[16], dstar[100];
    double s2 = fit_s2(&G, &pb, x);
    normal_inverse(&G, A, Ai);
    double t = x[1] + 1.5 * sqrt(s2 * Ai[4]);
    nlsq_options o = tc_strict();
    nlsq_profile_boot bo = {.n_boot = 100, .seed = 11, .clusters = &cl};   /* s2 from the fit */
    nlsq_profile_test_result res;
    assert_int_equal(nlsq_profile_test(&pb, &o, &bo, x, 1, t, &res, dstar), 0);
    assert_close(res.s2, s2, 1e-9 * s2);
    assert_close(res.D, (x[1] - t) * (x[1] - t) / (Ai[4] * s2), 1e-6 * res.D);
    assert_close(res.D, 2.25, 1e-6);
    size_t above = 0;
    for (size_t b = 0; b < 100; b++) above += dstar[b] >= res.D;
    assert_close(res.p_value, (double)(above + 1) / 101.0, 1e-15);
    held_fit(&G, t, xh);
    influence(&G, Ai, xh, he);
    size_t nvals = pattern_values(&G, he, Ai[4] * s2, vals);
    check_members(dstar, 100, res.kappa, vals, nvals);
    assert_int_equal(res.better_min, 0);
    /* x_hat far from the minimum and one iteration a solve: the minimum's
     * solve stops short, the held path's five solves go lower, and the test
     * says its x_hat was not the minimum (D < 0, p = 1) */
    double far[3] = {0.0, 0.0, 0.0};
    o.max_iter = 1;
    assert_int_equal(nlsq_profile_test(&pb, &o, &bo, far, 1, t, &res, dstar), 0);
    assert_int_equal(res.better_min, 1);
    assert_true(res.cost_held < res.cost_min);
    assert_true(res.D < 0.0);
    assert_close(res.p_value, 1.0, 1e-15);
}

static void test_errors(void **state)
{
    (void)state;
    grid G;
    make_grid(&G, 3, 40, 1);
    nlsq_problem pb = problem(&G);
    nlsq_clusters cl = {.n_clusters = 3, .ids = ids, .ctx = &G}, one = cl;
    one.n_clusters = 1;
    double x[3] = {1, 2, 3}, d[10];
    nlsq_profile_boot bo = {.n_boot = 10, .seed = 1, .clusters = &cl, .s2 = 1e-3};
    nlsq_profile_test_result res;
    assert_int_equal(nlsq_profile_bootstrap(&pb, NULL, &bo, x, 3, d, NULL, NULL), NLSQ_EINVAL);
    assert_int_equal(nlsq_profile_bootstrap(&pb, NULL, NULL, x, 1, d, NULL, NULL), NLSQ_EINVAL);
    assert_int_equal(nlsq_profile_bootstrap(&pb, NULL, &bo, x, 1, NULL, NULL, NULL), NLSQ_EINVAL);
    bo.n_boot = 1;
    assert_int_equal(nlsq_profile_bootstrap(&pb, NULL, &bo, x, 1, d, NULL, NULL), NLSQ_EINVAL);
    bo.n_boot = 10;
    bo.s2 = 0.0;
    assert_int_equal(nlsq_profile_bootstrap(&pb, NULL, &bo, x, 1, d, NULL, NULL), NLSQ_EINVAL);
    bo.s2 = 1e-3;
    bo.clusters = &one;
    assert_int_equal(nlsq_profile_bootstrap(&pb, NULL, &bo, x, 1, d, NULL, NULL), NLSQ_EINVAL);
    bo.clusters = &cl;
    double lo[3] = {-10, 2, -10}, hi[3] = {10, 2, 10};
    nlsq_problem fixed = pb;
    fixed.lower = lo;
    fixed.upper = hi;
    assert_int_equal(nlsq_profile_bootstrap(&fixed, NULL, &bo, x, 1, d, NULL, NULL), NLSQ_EINVAL);
    assert_int_equal(nlsq_profile_test(&fixed, NULL, &bo, x, 1, 2.0, &res, d), NLSQ_EINVAL);
    hi[1] = 3;
    assert_int_equal(nlsq_profile_test(&fixed, NULL, &bo, x, 1, 3.5, &res, d), NLSQ_EINVAL);
    assert_int_equal(nlsq_profile_test(&pb, NULL, &bo, x, 1, NAN, &res, d), NLSQ_EINVAL);
    assert_int_equal(nlsq_profile_test(&pb, NULL, &bo, x, 1, 2.0, NULL, d), NLSQ_EINVAL);
}

TC_MAIN(cmocka_unit_test(test_one_way), cmocka_unit_test(test_two_way),
        cmocka_unit_test(test_rows), cmocka_unit_test(test_uncached),
        cmocka_unit_test(test_test), cmocka_unit_test(test_errors))
