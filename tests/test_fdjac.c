/*
 * test_fdjac.c - finite-difference Jacobians in the streaming solvers
 * (nlsq_problem.jacobian, src/fdjac.c), against the analytic Jacobian of the
 * same problem as the reference.
 *
 *   lm_matches_analytic  y = a exp(-b t) + c cos(w t) + d + noise, m = 120000
 *                        rows in chunks of 4096 on 2 threads: forward and
 *                        central fits give the analytic fit's parameters to
 *                        1e-6 relative, standard errors to 1e-4
 *   threads_bitwise      central differences on 1 and 3 threads: bitwise equal
 *   pattern_columns      a sparse pattern (rows of block b touch columns 0 and
 *                        1 + b): one Jacobian pass (nlsq_covariance) calls eval
 *                        exactly chunks * (1 + 2 * 2) times, never perturbs a
 *                        column outside the chunk's pattern, and gives the
 *                        analytic covariance to 1e-6
 *   bounds               the optimum lies outside the box: no evaluated point
 *                        is outside it, and the bounded fit matches the
 *                        analytic bounded fit
 *   adam_hybrid          nlsq_adam and nlsq_hybrid with central differences
 *                        match their analytic runs to 1e-6
 *   validate             jacobian out of range, fd_scale <= 0: NLSQ_EINVAL
 */
#include "common.h"

#include <stdatomic.h>

#define M_ROWS 120000
#define P 5

/* deterministic noise in (-0.5, 0.5) per row: fractional part of a scaled sine */
static double noise(uint64_t i)
{
    double v = sin(12.9898 * (double)i) * 43758.5453;
    return v - floor(v) - 0.5;
}

typedef struct prob_ctx {
    const double *lo, *hi;       /* when set: flag any evaluated x outside */
    atomic_int outside;
    atomic_long n_calls;
} prob_ctx;

static const double truth[P] = {2.0, 0.7, 0.5, 3.0, 0.1};

static int eval_exp_cos(void *vctx, const double *x, size_t row0, size_t n, double *r, double *J,
                        const nlsq_eval_env *env)
{
    (void)env;
    prob_ctx *c = vctx;
    atomic_fetch_add(&c->n_calls, 1);
    if (c->lo)
        for (size_t j = 0; j < P; j++)
            if (!(x[j] >= c->lo[j] && x[j] <= c->hi[j])) atomic_store(&c->outside, 1);
    for (size_t i = 0; i < n; i++) {
        const size_t row = row0 + i;
        const double t = 10.0 * (double)row / M_ROWS;
        const double y = truth[0] * exp(-truth[1] * t) + truth[2] * cos(truth[3] * t) + truth[4] +
                         0.05 * noise(row);
        const double e = exp(-x[1] * t), cs = cos(x[3] * t);
        r[i] = x[0] * e + x[2] * cs + x[4] - y;
        if (J) {
            double *g = J + i * P;
            g[0] = e;
            g[1] = -x[0] * t * e;
            g[2] = cs;
            g[3] = -x[2] * t * sin(x[3] * t);
            g[4] = 1.0;
        }
    }
    return 0;
}

static nlsq_problem exp_cos_problem(prob_ctx *c, int jacobian)
{
    nlsq_problem pb = {.n_params = P, .n_rows = M_ROWS, .eval = eval_exp_cos, .ctx = c,
                       .jacobian = jacobian};
    return pb;
}

static nlsq_options test_options(int threads)
{
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.chunk_rows = 4096;
    opt.n_threads = threads;
    return opt;
}

static const double start[P] = {1.5, 0.5, 0.8, 2.9, 0.0};

static void assert_close(const double *a, const double *b, size_t n, double rtol, const char *what)
{
    for (size_t j = 0; j < n; j++) {
        double d = fabs(a[j] - b[j]) / fmax(fabs(b[j]), 1e-300);
        if (!(d <= rtol)) fail_msg("%s[%zu]: %.15g vs %.15g (rel %.2e > %.0e)", what, j, a[j], b[j], d, rtol);
    }
}

static void test_lm_matches_analytic(void **state)
{
    (void)state;
    nlsq_options opt = test_options(2);
    prob_ctx c = {0};
    double xa[P], ca[P * P], sea[P];
    memcpy(xa, start, sizeof xa);
    nlsq_problem pb = exp_cos_problem(&c, NLSQ_JAC_ANALYTIC);
    nlsq_result ra = {0};
    ra.covariance = ca;
    assert_true(nlsq_lm(&pb, &opt, xa, &ra) > 0);
    for (size_t j = 0; j < P; j++) sea[j] = sqrt(ca[j * P + j]);

    static const int modes[2] = {NLSQ_JAC_FORWARD, NLSQ_JAC_CENTRAL};
    for (int k = 0; k < 2; k++) {
        double x[P], cv[P * P], se[P];
        memcpy(x, start, sizeof x);
        pb = exp_cos_problem(&c, modes[k]);
        nlsq_result r = {0};
        r.covariance = cv;
        int st = nlsq_lm(&pb, &opt, x, &r);
        printf("  %s: %s, %zu iterations, %zu+%zu passes, cost %.12g (analytic %.12g, %zu iterations)\n",
               modes[k] == NLSQ_JAC_FORWARD ? "forward" : "central", nlsq_status_name(st),
               r.iterations, r.n_eval, r.n_jac, r.cost, ra.cost, ra.iterations);
        assert_true(st > 0);
        assert_close(x, xa, P, 1e-6, "x");
        for (size_t j = 0; j < P; j++) se[j] = sqrt(cv[j * P + j]);
        assert_close(se, sea, P, 1e-4, "standard error");
    }
    for (size_t j = 0; j < P; j++) assert_true(fabs(xa[j] - truth[j]) < 0.01);
}

static void test_threads_bitwise(void **state)
{
    (void)state;
    prob_ctx c = {0};
    nlsq_problem pb = exp_cos_problem(&c, NLSQ_JAC_CENTRAL);
    double x1[P], x3[P];
    nlsq_options opt = test_options(1);
    nlsq_result r1, r3;
    tc_expect_threads_bitwise(nlsq_lm, &pb, &opt, start, 3, x1, x3, &r1, &r3);
    assert_true(r1.status > 0);
    assert_int_equal(r1.iterations, r3.iterations);
}

/* ---- sparse pattern: B blocks of rows, block b: y = s * exp(-k_b t) ----- */

#define B 6
#define BLOCK_ROWS 1000

typedef struct sparse_ctx {
    const double *base;          /* the point of the Jacobian pass */
    atomic_long n_calls;
    atomic_int foreign;          /* a column outside the pattern was moved */
} sparse_ctx;

static size_t sparse_pattern(void *ctx, size_t row0, size_t nrows, size_t *cols, size_t *k)
{
    (void)ctx;
    const size_t b = row0 / BLOCK_ROWS, end = (b + 1) * BLOCK_ROWS;
    cols[0] = 0;
    cols[1] = 1 + b;
    *k = 2;
    return end - row0 < nrows ? end - row0 : nrows;
}

static int sparse_eval(void *vctx, const double *x, size_t row0, size_t n, double *r, double *J,
                       const nlsq_eval_env *env)
{
    (void)env;
    sparse_ctx *c = vctx;
    atomic_fetch_add(&c->n_calls, 1);
    const size_t b = row0 / BLOCK_ROWS;
    if (c->base)
        for (size_t j = 0; j < 1 + B; j++)
            if (j != 0 && j != 1 + b && x[j] != c->base[j]) atomic_store(&c->foreign, 1);
    for (size_t i = 0; i < n; i++) {
        const size_t row = row0 + i;
        const double t = (double)(row % BLOCK_ROWS) / BLOCK_ROWS;
        const double e = exp(-x[1 + b] * t);
        r[i] = x[0] * e - (1.0 + 0.01 * noise(row));
        if (J) {            /* n x 2 over the pattern's columns {0, 1 + b} */
            J[2 * i] = e;
            J[2 * i + 1] = -x[0] * t * e;
        }
    }
    return 0;
}

static void test_pattern_columns(void **state)
{
    (void)state;
    double x[1 + B] = {1.2, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    sparse_ctx c;
    memset(&c, 0, sizeof c);
    nlsq_problem pb = {.n_params = 1 + B, .n_rows = (size_t)B * BLOCK_ROWS, .eval = sparse_eval,
                       .ctx = &c, .pattern = sparse_pattern};
    nlsq_options opt = test_options(2);
    opt.chunk_rows = 400;          /* 3 chunks per block: 400, 400, 200 */
    double ca[(1 + B) * (1 + B)], cf[(1 + B) * (1 + B)];
    assert_int_equal(nlsq_covariance(&pb, &opt, x, ca, NULL), 0);

    c.base = x;
    atomic_store(&c.n_calls, 0);
    pb.jacobian = NLSQ_JAC_CENTRAL;
    assert_int_equal(nlsq_covariance(&pb, &opt, x, cf, NULL), 0);
    const long calls = atomic_load(&c.n_calls);
    printf("  one Jacobian pass: %ld eval calls for %d chunks of 2 pattern columns (of %d)\n",
           calls, 3 * B, 1 + B);
    assert_int_equal(calls, 3 * B * (1 + 2 * 2));
    assert_int_equal(atomic_load(&c.foreign), 0);
    for (size_t j = 0; j < (1 + B) * (1 + B); j++)
        if (ca[j] != 0.0 || cf[j] != 0.0) assert_close(&cf[j], &ca[j], 1, 1e-6, "covariance");
}

static void test_bounds(void **state)
{
    (void)state;
    /* the box excludes the optimum in b and w (b <= 0.6, w >= 3.05) */
    static const double lo[P] = {0.0, 0.0, 0.0, 3.05, -1.0};
    static const double hi[P] = {5.0, 0.6, 1.0, 4.0, 1.0};
    prob_ctx c = {0};
    nlsq_options opt = test_options(2);
    double xa[P] = {1.5, 0.5, 0.8, 3.1, 0.0}, xf[P];
    memcpy(xf, xa, sizeof xf);
    nlsq_problem pb = exp_cos_problem(&c, NLSQ_JAC_ANALYTIC);
    pb.lower = lo;
    pb.upper = hi;
    nlsq_result ra = {0}, rf = {0};
    assert_true(nlsq_lm(&pb, &opt, xa, &ra) >= 0);
    c.lo = lo;
    c.hi = hi;
    pb.jacobian = NLSQ_JAC_CENTRAL;
    int st = nlsq_lm(&pb, &opt, xf, &rf);
    printf("  bounded: %s, b = %.9f (upper 0.6), w = %.9f (lower 3.05), %zu active\n",
           nlsq_status_name(st), xf[1], xf[3], rf.n_active);
    assert_true(st >= 0);
    assert_int_equal(atomic_load(&c.outside), 0);
    assert_true(xf[1] == hi[1] && xf[3] == lo[3]);
    assert_close(xf, xa, P, 1e-6, "x");
    pb.jacobian = NLSQ_JAC_FORWARD;
    memcpy(xf, xa, sizeof xf);
    xf[0] *= 1.1;
    assert_true(nlsq_lm(&pb, &opt, xf, &rf) >= 0);
    assert_int_equal(atomic_load(&c.outside), 0);
    assert_close(xf, xa, P, 1e-6, "x (forward)");
}

static void test_adam_hybrid(void **state)
{
    (void)state;
    prob_ctx c = {0};
    nlsq_options opt = test_options(2);
    opt.adam.epochs = 6;
    opt.hybrid.adam_epochs = 3;
    for (int solver = 0; solver < 2; solver++) {
        double xa[P], xf[P];
        memcpy(xa, start, sizeof xa);
        memcpy(xf, start, sizeof xf);
        nlsq_problem pa = exp_cos_problem(&c, NLSQ_JAC_ANALYTIC);
        nlsq_problem pf = exp_cos_problem(&c, NLSQ_JAC_CENTRAL);
        nlsq_result ra = {0}, rf = {0};
        int sa = solver ? nlsq_hybrid(&pa, &opt, xa, &ra) : nlsq_adam(&pa, &opt, xa, &ra);
        int sf = solver ? nlsq_hybrid(&pf, &opt, xf, &rf) : nlsq_adam(&pf, &opt, xf, &rf);
        printf("  %s: analytic %s cost %.12g, central %s cost %.12g\n", solver ? "hybrid" : "adam",
               nlsq_status_name(sa), ra.cost, nlsq_status_name(sf), rf.cost);
        assert_true(sa >= 0 && sf >= 0);
        assert_close(xf, xa, P, 1e-6, solver ? "hybrid x" : "adam x");
    }
}

static void test_validate(void **state)
{
    (void)state;
    prob_ctx c = {0};
    nlsq_options opt = test_options(1);
    nlsq_problem pb = exp_cos_problem(&c, 3);
    char msg[160];
    assert_int_equal(nlsq_validate(&pb, &opt, start, msg, sizeof msg), NLSQ_EINVAL);
    assert_non_null(strstr(msg, "jacobian"));
    const double scale[P] = {1, 1, 0, 1, 1};
    pb = exp_cos_problem(&c, NLSQ_JAC_FORWARD);
    pb.fd_scale = scale;
    assert_int_equal(nlsq_validate(&pb, &opt, start, msg, sizeof msg), NLSQ_EINVAL);
    assert_non_null(strstr(msg, "fd_scale[2]"));
    double x[P];
    memcpy(x, start, sizeof x);
    assert_int_equal(nlsq_lm(&pb, &opt, x, NULL), NLSQ_EINVAL);
}

TC_MAIN(cmocka_unit_test(test_lm_matches_analytic), cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_pattern_columns), cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_adam_hybrid), cmocka_unit_test(test_validate))
