/* nlsq_problem.jac_col_major and nlsq_eval_env.n_obs.
 *
 * The same Jacobian handed over row-major and column-major must give the same
 * normal equations through every engine path: the small-k kernel (dense p <=
 * 16 and sparse patterns), the BLAS path (dense p > 16), and the careful path
 * (robust loss, non-finite rows).  The observation count eval stores in
 * env->n_obs changes only the degrees of freedom:
 * a problem whose rows each stand for two equal observations (residual scaled
 * by sqrt 2) must give the covariance of the duplicated problem. */
#include "common.h"

typedef struct pctx {
    size_t p;
    int col_major;
    int sparse;       /* pattern: 3 shared columns + 2 per group of 100 rows */
    double weight;    /* residual and Jacobian scale */
    int dup;          /* rows 2i and 2i+1 are the same observation */
    size_t obs;       /* observations per row stored in env->n_obs (0: none stored) */
} pctx;

static double basis(size_t a, double t) { return cos((double)(a + 1) * t) + 0.1 * (double)a; }

/* r_i = sum_a x_a^2 basis_a(t_i) - y(t_i), over the active columns */
static size_t active_cols(const pctx *c, size_t row, size_t *cols)
{
    if (!c->sparse) {
        for (size_t a = 0; a < c->p; a++) cols[a] = a;
        return c->p;
    }
    size_t g = (row / 100) % ((c->p - 3) / 2);
    cols[0] = 0; cols[1] = 1; cols[2] = 2;
    cols[3] = 3 + 2 * g; cols[4] = 4 + 2 * g;
    return 5;
}

static int eval(void *vc, const double *x, size_t row0, size_t n, double *r, double *J,
                const nlsq_eval_env *env)
{
    const pctx *c = vc;
    if (c->obs && env->n_obs) *env->n_obs = c->obs * n;
    size_t cols[64];
    size_t k = active_cols(c, row0, cols);
    for (size_t i = 0; i < n; i++) {
        size_t row = c->dup ? (row0 + i) / 2 : row0 + i;
        double t = 1e-3 * (double)row;
        size_t kk = active_cols(c, row0 + i, cols);
        (void)kk;
        double v = 0.0;
        for (size_t a = 0; a < k; a++) v += x[cols[a]] * x[cols[a]] * basis(cols[a], t);
        r[i] = c->weight * (v - (1.0 + sin(5.0 * t) + 0.3 * cos(17.0 * t)));
        if (J)
            for (size_t a = 0; a < k; a++) {
                double d = c->weight * 2.0 * x[cols[a]] * basis(cols[a], t);
                if (c->col_major) J[a * n + i] = d;
                else J[i * k + a] = d;
            }
    }
    return 0;
}

static size_t pattern(void *vc, size_t row0, size_t nrows, size_t *cols, size_t *k)
{
    const pctx *c = vc;
    *k = active_cols(c, row0, cols);
    size_t end = (row0 / 100 + 1) * 100;
    return end - row0 < nrows ? end - row0 : nrows;
}

static void normal_eq(pctx *c, size_t m, int loss, double *cov, double *x_fit)
{
    nlsq_problem pb = {.n_params = c->p, .n_rows = m, .eval = eval, .ctx = c,
                       .pattern = c->sparse ? pattern : NULL, .jac_col_major = c->col_major};
    nlsq_options o;
    nlsq_options_init(&o);
    o.absolute_sigma = 1;        /* cov = (J^T J)^-1 exactly */
    o.chunk_rows = 77;
    o.loss = loss;
    double x[64];
    for (size_t a = 0; a < c->p; a++) x[a] = 0.7 + 0.01 * (double)a;
    assert_int_equal(nlsq_covariance(&pb, &o, x, cov, NULL), 0);
    nlsq_result res = {0};
    /* x_a^2 terms heading for 0 (a vanishing column) may stall short of it */
    int status = nlsq_lm(&pb, &o, x, &res);
    assert_true(status >= 0 || status == NLSQ_STALLED);
    memcpy(x_fit, x, c->p * sizeof(double));
}

static void compare_layouts(size_t p, int sparse, int loss)
{
    double cr[64 * 64], cc[64 * 64], xr[64], xc[64];
    pctx a = {p, 0, sparse, 1.0, 0, 0}, b = {p, 1, sparse, 1.0, 0, 0};
    normal_eq(&a, 3000, loss, cr, xr);
    normal_eq(&b, 3000, loss, cc, xc);
    double worst = 0.0;
    for (size_t i = 0; i < p * p; i++) {
        double d = fabs(cr[i] - cc[i]) / (fabs(cr[i]) + 1e-300);
        if (d > worst) worst = d;
    }
    printf("  p %2zu %s loss %d: max rel diff of (J^T J)^-1 row- vs column-major %.2e\n", p,
           sparse ? "sparse" : "dense ", loss, worst);
    assert_true(worst < 1e-9);
    for (size_t i = 0; i < p; i++) assert_true(fabs(xr[i] - xc[i]) <= 1e-8 * (1 + fabs(xr[i])));
}

static void test_dense_small(void **s) { (void)s; compare_layouts(6, 0, NLSQ_LOSS_LINEAR); }
static void test_dense_blas(void **s) { (void)s; compare_layouts(20, 0, NLSQ_LOSS_LINEAR); }
static void test_sparse(void **s) { (void)s; compare_layouts(13, 1, NLSQ_LOSS_LINEAR); }
static void test_robust_careful_path(void **s) { (void)s; compare_layouts(13, 1, NLSQ_LOSS_HUBER); }

static void test_n_obs(void **s)
{
    (void)s;
    const size_t p = 5, m = 4000;
    /* duplicated rows: 2m rows, each observation twice */
    pctx dup = {p, 0, 0, 1.0, 1, 0};
    /* weighted: m rows with sqrt(2) weight, 2 observations each */
    pctx wt = {p, 1, 0, sqrt(2.0), 0, 2};
    double cov_d[25], cov_w[25];
    double xd[5], xw[5];
    for (size_t a = 0; a < p; a++) xd[a] = xw[a] = 0.7 + 0.01 * (double)a;
    nlsq_options o;
    nlsq_options_init(&o);
    nlsq_result rd = {0}, rw = {0};
    nlsq_problem pd = {.n_params = p, .n_rows = 2 * m, .eval = eval, .ctx = &dup};
    nlsq_problem pw = {.n_params = p, .n_rows = m, .eval = eval, .ctx = &wt, .jac_col_major = 1};
    rd.covariance = cov_d;
    rw.covariance = cov_w;
    assert_true(nlsq_lm(&pd, &o, xd, &rd) > 0);
    assert_true(nlsq_lm(&pw, &o, xw, &rw) > 0);
    assert_true(fabs(rd.cost - rw.cost) <= 1e-12 * rd.cost);
    assert_true(fabs(rd.reduced_chi2 - rw.reduced_chi2) <= 1e-12 * rd.reduced_chi2);
    for (size_t i = 0; i < p * p; i++)
        assert_true(fabs(cov_d[i] - cov_w[i]) <= 1e-8 * fabs(cov_d[i]) + 1e-30);
    assert_int_equal(rd.n_obs, 2 * m);
    assert_int_equal(rw.n_obs, 2 * m);
    assert_int_equal(rw.n_free, p);
    assert_true(rw.dof == (double)(2 * m - p) && rd.dof == rw.dof);
    printf("  n_obs: duplicated rows vs sqrt(2)-weighted rows of 2 observations: cost %.15g / "
           "%.15g, sd0 %.6e / %.6e, dof %.0f\n", rd.cost, rw.cost, sqrt(cov_d[0]), sqrt(cov_w[0]),
           rw.dof);
}

/* With a binding memory_budget the chunk size must not depend on the thread
 * count, or results would differ in the last bits between thread counts. */
static void test_budget_threads_bitwise(void **s)
{
    (void)s;
    pctx c = {13, 1, 1, 1.0, 0, 0};
    nlsq_problem pb = {.n_params = 13, .n_rows = 20000, .eval = eval, .ctx = &c,
                       .pattern = pattern, .jac_col_major = 1};
    double x1[13], cost1 = 0;
    for (int t = 1; t <= 4; t++) {
        nlsq_options o;
        nlsq_options_init(&o);
        o.memory_budget = 16 << 10;   /* binds: far below the automatic chunk */
        o.n_threads = t;
        double x[13];
        for (size_t a = 0; a < 13; a++) x[a] = 0.7 + 0.01 * (double)a;
        nlsq_result res = {0};
        assert_true(nlsq_lm(&pb, &o, x, &res) > 0);
        if (t == 1) { memcpy(x1, x, sizeof x); cost1 = res.cost; }
        assert_memory_equal(x, x1, sizeof x);
        assert_true(res.cost == cost1);
    }
}

TC_MAIN(cmocka_unit_test(test_dense_small), cmocka_unit_test(test_dense_blas),
        cmocka_unit_test(test_sparse), cmocka_unit_test(test_robust_careful_path),
        cmocka_unit_test(test_n_obs), cmocka_unit_test(test_budget_threads_bitwise))
