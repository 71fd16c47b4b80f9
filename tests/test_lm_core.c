/*
 * test_lm_core.c - nlsq_lm core behaviour.
 *
 *  validation       invalid problems/options -> NLSQ_EINVAL with a message,
 *                   the callback never called, x untouched;
 *                   nlsq_status_string/name never NULL on [-30, 30]
 *  linear_vs_qr     a polynomial fit (m = 1000 rows made in the callback)
 *                   equals LAPACK's QR solution (dgels) to 1e-10, and the
 *                   covariance equals s^2 (X^T X)^-1 from dpotrf/dpotri
 *  callback_error   the callback fails on its k-th call, for every k of a
 *                   run: NLSQ_ECALLBACK, and x is the best point evaluated
 *  determinism      threads 1/2/3, same chunks: bitwise identical x, cost,
 *                   covariance; other chunk sizes: the same to 1e-10
 *  sparse_pattern   20 groups x (3 shared + 2 own columns), p = 43: pattern
 *                   vs dense Jacobian give the same J^T J and solution;
 *                   invalid patterns -> NLSQ_ECALLBACK
 *  rank_deficient   duplicated column -> both variances +INF, the rest equal
 *                   to the reduced model; zero column -> +INF
 *  allocations      counting allocator: peak bytes the same for m = 1e4 and
 *                   1e6 (1 and 2 threads), everything freed
 *  nonfinite        NaN residuals at a trial point are stepped around
 *                   (res.n_nonfinite > 0, same answer); NaN at the start ->
 *                   NLSQ_ENONFINITE
 */
#include "common.h"

#include <lapacke.h>
#include <pthread.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* A nonlinear test problem made on the fly:                                 */
/*   y_i = 2.5 exp(-1.3 t_i) + 0.4 - 0.05 t_i + 0.02 noise(i),  t_i = 5 i/m   */
/*   r_i = a exp(-b t_i) + c + d t_i - y_i                                   */
/* ------------------------------------------------------------------------ */

typedef struct efit {
    size_t m;
    double nan_b_below;     /* residuals NaN where b < this (-INFINITY: never) */
    int nan_J_at_start;     /* Jacobian NaN while b == start_b */
    double start_b;
    /* failure injection and tracking (single thread, one chunk per pass) */
    long fail_on_call;      /* 1-based; 0 = never fail */
    long n_calls, n_jac_calls;
    int track;
    double min_cost;        /* smallest full cost of any successful call */
    int failed_with_J;      /* the failing call was a Jacobian call */
} efit;

/* A clean problem of m rows: no NaN, no failure injection, no tracking. */
static efit efit_make(size_t m)
{
    efit c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.nan_b_below = -INFINITY;
    c.min_cost = INFINITY;
    return c;
}

static void efit_row(const efit *c, const double *x, size_t i, double *r, double *J)
{
    double t = 5.0 * (double)i / (double)c->m;
    double y = 2.5 * exp(-1.3 * t) + 0.4 - 0.05 * t + 0.02 * tc_uniform_noise(i);
    double e = exp(-x[1] * t);
    *r = x[0] * e + x[2] + x[3] * t - y;
    if (J) {
        J[0] = e;
        J[1] = -x[0] * t * e;
        J[2] = 1.0;
        J[3] = t;
    }
}

static int efit_eval(void *vctx, const double *x, size_t row0, size_t n, double *r, double *J,
                     const nlsq_eval_env *env)
{
    (void)env;
    efit *c = vctx;
    if (c->track) {
        long k = ++c->n_calls;
        if (J) c->n_jac_calls++;
        if (k == c->fail_on_call) {
            c->failed_with_J = J != NULL;
            return 1;
        }
    }
    int nan_r = x[1] < c->nan_b_below;
    int nan_J = c->nan_J_at_start && x[1] == c->start_b;
    for (size_t i = 0; i < n; i++) {
        efit_row(c, x, row0 + i, &r[i], J ? J + 4 * i : NULL);
        if (nan_r) r[i] = NAN;
        if (nan_J && J) J[4 * i + 1] = NAN;
    }
    if (c->track) {
        /* one chunk per pass here, so this is the full cost at x */
        if (row0 != 0 || n != c->m) return 2;
        double s = 0.0;
        for (size_t i = 0; i < n; i++) s += r[i] * r[i];
        s *= 0.5;
        if (s < c->min_cost) c->min_cost = s;
    }
    return 0;
}

static double efit_cost(const efit *c, const double *x)
{
    double s = 0.0, r;
    for (size_t i = 0; i < c->m; i++) {
        efit_row(c, x, i, &r, NULL);
        s += r * r;
    }
    return 0.5 * s;
}

static const double efit_x0[4] = {1.0, 0.2, 0.0, 0.0};

/* ------------------------------------------------------------------------ */
/* (a) validation                                                            */
/* ------------------------------------------------------------------------ */

static int never_called;
static int counting_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                         const nlsq_eval_env *env)
{
    (void)env;
    (void)ctx; (void)x; (void)row0; (void)J;
    never_called++;
    for (size_t i = 0; i < n; i++) r[i] = 1.0;
    return 0;
}

static void *a_alloc(void *ctx, size_t n) { (void)ctx; return malloc(n); }
static void a_free(void *ctx, void *p) { (void)ctx; free(p); }

/* Runs nlsq_lm and nlsq_validate on an invalid setup; pb/opt/x may be NULL. */
static void expect_einval(const char *what, const nlsq_problem *pb, const nlsq_options *opt,
                          double *x)
{
    double before[3] = {0, 0, 0};
    if (x) memcpy(before, x, sizeof before);
    nlsq_result res;
    memset(&res, 0, sizeof res);
    never_called = 0;
    int st = nlsq_lm(pb, opt, x, &res);
    if (st != NLSQ_EINVAL) fail_msg("%s: status %d, expected NLSQ_EINVAL", what, st);
    assert_int_equal(res.status, NLSQ_EINVAL);
    if (res.message[0] == '\0') fail_msg("%s: empty res.message", what);
    assert_int_equal(never_called, 0);
    if (x) assert_memory_equal(before, x, sizeof before);
    if (x && pb && opt) {
        char msg[160] = "";
        if (nlsq_validate(pb, opt, x, msg, sizeof msg) != NLSQ_EINVAL)
            fail_msg("%s: nlsq_validate accepted it", what);
        assert_true(msg[0] != '\0');
    }
    print_message("  %-28s -> %s\n", what, res.message);
}

static void test_validation(void **state)
{
    (void)state;
    double lo[3] = {0, 0, 0}, hi[3] = {1, 1, 1};
    double x[3] = {0.5, 0.5, 0.5};
    nlsq_problem good = {.n_params = 3, .n_rows = 10, .eval = counting_eval};
    nlsq_options opt;
    nlsq_options_init(&opt);

    /* The baseline is valid. */
    {
        char msg[160];
        assert_int_equal(nlsq_validate(&good, &opt, x, msg, sizeof msg), 0);
        nlsq_problem b = good;
        b.lower = lo; b.upper = hi;
        assert_int_equal(nlsq_validate(&b, &opt, x, msg, sizeof msg), 0);
    }

    nlsq_problem pb;
    pb = good; pb.n_params = 0;             expect_einval("p = 0", &pb, &opt, x);
    pb = good; pb.n_rows = 2;               expect_einval("m < p", &pb, &opt, x);
    pb = good; pb.n_rows = 0;               expect_einval("m = 0", &pb, &opt, x);
    pb = good; pb.eval = NULL;              expect_einval("NULL callback", &pb, &opt, x);
    expect_einval("NULL x", &good, &opt, NULL);
    expect_einval("NULL problem", NULL, &opt, x);
    {
        double l2[3] = {0, 2, 0};
        pb = good; pb.lower = l2; pb.upper = hi;
        expect_einval("lower > upper", &pb, &opt, x);
        double ln[3] = {0, NAN, 0};
        pb = good; pb.lower = ln; pb.upper = hi;
        expect_einval("NaN lower bound", &pb, &opt, x);
        double hn[3] = {1, 1, NAN};
        pb = good; pb.lower = lo; pb.upper = hn;
        expect_einval("NaN upper bound", &pb, &opt, x);
        double lp[3] = {INFINITY, 0, 0}, hp[3] = {INFINITY, 1, 1};
        pb = good; pb.lower = lp; pb.upper = hp;
        expect_einval("lower = upper = +inf", &pb, &opt, x);
    }
    {
        double xn[3] = {0.5, NAN, 0.5};
        expect_einval("NaN start", &good, &opt, xn);
        double xi[3] = {0.5, 0.5, -INFINITY};
        expect_einval("infinite start", &good, &opt, xi);
    }
    {
        nlsq_options o;
        o = opt; o.ftol = -1e-8;            expect_einval("ftol < 0", &good, &o, x);
        o = opt; o.xtol = NAN;              expect_einval("xtol NaN", &good, &o, x);
        o = opt; o.gtol = INFINITY;         expect_einval("gtol inf", &good, &o, x);
        o = opt; o.ftol = o.xtol = o.gtol = 0; o.max_iter = 0;
        expect_einval("no stopping rule", &good, &o, x);
        o = opt; o.n_threads = -1;          expect_einval("n_threads < 0", &good, &o, x);
        o = opt; o.allocator.alloc_fn = a_alloc;
        expect_einval("allocator: alloc only", &good, &o, x);
        o = opt; o.allocator.free_fn = a_free;
        expect_einval("allocator: free only", &good, &o, x);
    }

    for (int s = -30; s <= 30; s++) {
        const char *t = nlsq_status_string(s), *n = nlsq_status_name(s);
        assert_non_null(t);
        assert_non_null(n);
        assert_true(t[0] != '\0');
        assert_true(n[0] != '\0');
    }
}

/* ------------------------------------------------------------------------ */
/* (b) linear least squares vs QR                                            */
/* ------------------------------------------------------------------------ */

#define LIN_M 1000
#define LIN_P 5

static void lin_row(size_t i, double *xrow, double *y)
{
    double t = -1.0 + 2.0 * (double)i / (LIN_M - 1);
    double v = 1.0;
    for (int j = 0; j < LIN_P; j++) { xrow[j] = v; v *= t; }
    *y = 1.0 - 0.5 * t + 0.25 * t * t + 0.8 * t * t * t - 0.3 * t * t * t * t
         + 0.05 * tc_uniform_noise(i + 1000003);
}

static int lin_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                    const nlsq_eval_env *env)
{
    (void)env;
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        double xr[LIN_P], y, s = 0.0;
        lin_row(row0 + i, xr, &y);
        for (int j = 0; j < LIN_P; j++) s += xr[j] * x[j];
        r[i] = s - y;
        if (J) memcpy(J + i * LIN_P, xr, sizeof xr);
    }
    return 0;
}

static void test_linear_vs_qr(void **state)
{
    (void)state;
    const int m = LIN_M, p = LIN_P;
    /* The independent solution: QR (dgels) on the full design matrix. */
    double *X = malloc(sizeof(double) * m * p), *X2 = malloc(sizeof(double) * m * p);
    double *b = malloc(sizeof(double) * m);
    assert_non_null(X); assert_non_null(X2); assert_non_null(b);
    for (int i = 0; i < m; i++) {
        double xr[LIN_P];
        lin_row((size_t)i, xr, &b[i]);
        for (int j = 0; j < p; j++) X[j * m + i] = X2[j * m + i] = xr[j];  /* column major */
    }
    assert_int_equal(LAPACKE_dgels(LAPACK_COL_MAJOR, 'N', m, p, 1, X, m, b, m), 0);
    double xq[LIN_P];
    memcpy(xq, b, sizeof xq);
    double rss = 0.0;                   /* rows p.. of b hold Q^T y's residual part */
    for (int i = p; i < m; i++) rss += b[i] * b[i];
    /* s^2 (X^T X)^-1 by Cholesky (dpotrf + dpotri) on X^T X formed here. */
    double XtX[LIN_P * LIN_P];
    for (int a = 0; a < p; a++)
        for (int c = 0; c < p; c++) {
            double s = 0.0;
            for (int i = 0; i < m; i++) s += X2[a * m + i] * X2[c * m + i];
            XtX[a * p + c] = s;
        }
    assert_int_equal(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', p, XtX, p), 0);
    assert_int_equal(LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', p, XtX, p), 0);
    double s2 = rss / (m - p), covq[LIN_P * LIN_P];
    for (int a = 0; a < p; a++)
        for (int c = a; c < p; c++)
            covq[a * p + c] = covq[c * p + a] = s2 * XtX[a * p + c];

    double cov[LIN_P * LIN_P];
    for (int chunk = 0; chunk <= 1; chunk++) {
        nlsq_problem pb = {.n_params = LIN_P, .n_rows = LIN_M, .eval = lin_eval};
        nlsq_options opt;
        tc_strict_options(&opt);
        opt.chunk_rows = chunk ? 64 : 0;
        opt.n_threads = chunk ? 2 : 1;
        double x[LIN_P] = {0, 0, 0, 0, 0};
        nlsq_result res;
        memset(&res, 0, sizeof res);
        res.covariance = cov;
        int st = nlsq_lm(&pb, &opt, x, &res);
        print_message("  chunk %s: %s, %zu iterations, cost %.17g (QR: %.17g)\n",
                      chunk ? "64" : "auto", nlsq_status_name(st), res.iterations, res.cost,
                      0.5 * rss);
        assert_true(st > 0);
        for (int j = 0; j < p; j++)
            if (!(fabs(x[j] - xq[j]) <= 1e-10 * fmax(1.0, fabs(xq[j]))))
                fail_msg("x[%d] = %.17g, QR %.17g", j, x[j], xq[j]);
        assert_true(tc_rel_diff(res.cost, 0.5 * rss) <= 1e-10);
        assert_int_equal(res.rank, LIN_P);
        for (int a = 0; a < p; a++)
            for (int c = 0; c < p; c++) {
                double tol = 1e-8 * sqrt(covq[a * p + a] * covq[c * p + c]);
                if (a == c) tol = 1e-8 * covq[a * p + a];
                if (!(fabs(cov[a * p + c] - covq[a * p + c]) <= tol))
                    fail_msg("cov[%d][%d] = %.17g, dpotri %.17g", a, c, cov[a * p + c],
                             covq[a * p + c]);
            }
    }
    free(X); free(X2); free(b);
}

/* ------------------------------------------------------------------------ */
/* (c) the callback fails on its k-th call                                   */
/* ------------------------------------------------------------------------ */

/* trial_jac: the LM option trial_jacobian (1: trial passes after an accepted
 * step also ask for the Jacobian, so a clean run may make only Jacobian
 * calls; 0: trial passes are residual-only, so both kinds of call occur) */
static void callback_error_sweep(int trial_jac)
{
    nlsq_options opt;
    tc_strict_options(&opt);
    opt.chunk_rows = 0;    /* m = 60 < the automatic chunk: one call per pass */
    opt.trial_jacobian = trial_jac;

    /* A clean run first: how many calls does it make? */
    efit c0 = efit_make(60);
    c0.track = 1;
    nlsq_problem pb = {.n_params = 4, .n_rows = 60, .eval = efit_eval, .ctx = &c0};
    double x[4];
    memcpy(x, efit_x0, sizeof x);
    nlsq_result res;
    memset(&res, 0, sizeof res);
    int st = nlsq_lm(&pb, &opt, x, &res);
    assert_true(st > 0);
    const long n_total = c0.n_calls;
    print_message("  clean run: %zu iterations, %ld calls (%ld with Jacobian)\n",
                  res.iterations, n_total, c0.n_jac_calls);
    assert_true(n_total >= 8);
    assert_true(c0.n_jac_calls >= 3);
    if (!trial_jac) assert_true(c0.n_jac_calls < n_total);  /* both kinds of call */

    int failures = 0;
    for (long k = 1; k <= n_total; k++) {
        efit c = efit_make(60);
        c.track = 1;
        c.fail_on_call = k;
        pb.ctx = &c;
        memcpy(x, efit_x0, sizeof x);
        memset(&res, 0, sizeof res);
        st = nlsq_lm(&pb, &opt, x, &res);
        assert_int_equal(st, NLSQ_ECALLBACK);
        assert_int_equal(res.status, NLSQ_ECALLBACK);
        assert_true(res.message[0] != '\0');
        assert_int_equal(c.n_calls, k);          /* nothing called after the failure */
        if (k == 1) {                             /* nothing evaluated: x is the start */
            assert_memory_equal(x, efit_x0, sizeof x);
            continue;
        }
        double fx = efit_cost(&c, x);
        /* x must be the best point evaluated so far.  This includes a trial
         * point that was just accepted on its residual-only pass when the
         * callback then fails in the Jacobian pass at that point (every odd
         * k >= 3 here): an earlier version of src/lm.c went back to the
         * previous, worse point in that case. */
        if (fx != c.min_cost) {
            print_message("  FAIL k = %ld (%s call): cost(x) = %.17g, best evaluated %.17g; "
                          "res.cost %.17g; %s\n", k, c.failed_with_J ? "Jacobian" : "residual",
                          fx, c.min_cost, res.cost, res.message);
            failures++;
        } else if (!(tc_rel_diff(res.cost, fx) <= 1e-13)) {
            print_message("  FAIL k = %ld: res.cost %.17g != cost(x) %.17g\n", k, res.cost, fx);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_callback_error(void **state)
{
    (void)state;
    callback_error_sweep(0);
    callback_error_sweep(1);
}

/* ------------------------------------------------------------------------ */
/* (d) determinism                                                           */
/* ------------------------------------------------------------------------ */

typedef struct fit_out {
    int status;
    double x[4], cost, cov[16];
    size_t iterations;
} fit_out;

/* tc_strict_options with threads threads and chunks of chunk rows. */
static nlsq_options efit_options(int threads, size_t chunk)
{
    nlsq_options opt;
    tc_strict_options(&opt);
    opt.n_threads = threads;
    opt.chunk_rows = chunk;
    return opt;
}

static fit_out efit_solve(size_t m, int threads, size_t chunk)
{
    efit c = efit_make(m);
    nlsq_problem pb = {.n_params = 4, .n_rows = m, .eval = efit_eval, .ctx = &c};
    nlsq_options opt = efit_options(threads, chunk);
    fit_out o;
    memset(&o, 0, sizeof o);
    memcpy(o.x, efit_x0, sizeof o.x);
    nlsq_result res;
    memset(&res, 0, sizeof res);
    res.covariance = o.cov;
    o.status = nlsq_lm(&pb, &opt, o.x, &res);
    o.cost = res.cost;
    o.iterations = res.iterations;
    return o;
}

static void test_determinism(void **state)
{
    (void)state;
    const size_t m = 20000;
    fit_out ref = efit_solve(m, 1, 256);
    assert_true(ref.status > 0);
    print_message("  threads 1, chunk 256: %zu it, cost %.17g, x = %.17g %.17g %.17g %.17g\n",
                  ref.iterations, ref.cost, ref.x[0], ref.x[1], ref.x[2], ref.x[3]);
    assert_true(fabs(ref.x[1] - 1.3) < 0.01);
    for (int th = 2; th <= 3; th++) {
        fit_out o = efit_solve(m, th, 256);
        assert_int_equal(o.status, ref.status);
        assert_int_equal(o.iterations, ref.iterations);
        assert_memory_equal(o.x, ref.x, sizeof o.x);
        assert_memory_equal(&o.cost, &ref.cost, sizeof o.cost);
        assert_memory_equal(o.cov, ref.cov, sizeof o.cov);
    }
    static const size_t chunks[] = {100, 1000, 7777, 0};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        fit_out o = efit_solve(m, 2, chunks[k]);
        assert_true(o.status > 0);
        for (int j = 0; j < 4; j++)
            if (!(tc_rel_diff(o.x[j], ref.x[j]) <= 1e-10))
                fail_msg("chunk %zu: x[%d] = %.17g vs %.17g", chunks[k], j, o.x[j], ref.x[j]);
        assert_true(tc_rel_diff(o.cost, ref.cost) <= 1e-10);
        for (int j = 0; j < 16; j++)
            if (!(tc_rel_diff(o.cov[j], ref.cov[j]) <= 1e-10))
                fail_msg("chunk %zu: cov[%d] = %.17g vs %.17g", chunks[k], j, o.cov[j], ref.cov[j]);
    }
}

/* ------------------------------------------------------------------------ */
/* (e) sparse pattern vs dense                                               */
/* ------------------------------------------------------------------------ */

#define SP_G 20          /* groups */
#define SP_R 30          /* rows per group */
#define SP_M (SP_G * SP_R)
#define SP_P (3 + 2 * SP_G)

enum { PAT_OK, PAT_UNSORTED, PAT_RANGE, PAT_K0, PAT_KBIG, PAT_DUP, PAT_RET0, PAT_RETBIG };

typedef struct sctx {
    int dense;           /* 1: eval fills the full n x p rows */
    int bad;             /* a PAT_* mode */
    size_t bad_group;    /* the group whose pattern is broken */
    int misuse;          /* eval got rows from several groups in sparse mode */
} sctx;

/* Row i: group g = i / R, t in [-1, 1];
 *   r = u_g cos(s0 t) + v_g + s1 t + s2 sin(3 t) - y
 * shared columns 0..2 (s0, s1, s2), own columns 3 + 2g (u_g), 4 + 2g (v_g).
 * Near s0 = 3 the scaled J^T J has condition number ~20, so the two
 * accumulation orders may differ only by a few ulps. */
static void sp_row(const double *x, size_t i, double *r, double *jl)
{
    size_t g = i / SP_R, l = i % SP_R;
    double t = -1.0 + 2.0 * (double)l / (SP_R - 1);
    double u = x[3 + 2 * g], v = x[4 + 2 * g];
    double ug = 1.0 + 0.05 * (double)g, vg = 0.5 - 0.03 * (double)g;
    double y = ug * cos(3.0 * t) + vg + 0.2 * t - 0.1 * sin(3.0 * t) + 0.01 * tc_uniform_noise(i + 77);
    double cs = cos(x[0] * t), sn = sin(x[0] * t);
    *r = u * cs + v + x[1] * t + x[2] * sin(3.0 * t) - y;
    if (jl) {   /* the 5 non-zero entries, in column order 0, 1, 2, 3+2g, 4+2g */
        jl[0] = -u * t * sn;
        jl[1] = t;
        jl[2] = sin(3.0 * t);
        jl[3] = cs;
        jl[4] = 1.0;
    }
}

static size_t sp_pattern(void *vctx, size_t row0, size_t nrows, size_t *cols, size_t *k)
{
    const sctx *c = vctx;
    size_t g = row0 / SP_R, end = (g + 1) * SP_R;
    size_t n = end - row0 < nrows ? end - row0 : nrows;
    cols[0] = 0; cols[1] = 1; cols[2] = 2; cols[3] = 3 + 2 * g; cols[4] = 4 + 2 * g;
    *k = 5;
    if (c->bad == PAT_OK || g != c->bad_group) return n;
    switch (c->bad) {
    case PAT_UNSORTED: cols[0] = 1; cols[1] = 0; break;
    case PAT_RANGE:    cols[4] = SP_P; break;
    case PAT_K0:       *k = 0; break;
    case PAT_KBIG:     *k = SP_P + 1; break;
    case PAT_DUP:      cols[2] = 1; break;
    case PAT_RET0:     return 0;
    case PAT_RETBIG:   return nrows + 1;
    default: break;
    }
    return n;
}

static int sp_eval(void *vctx, const double *x, size_t row0, size_t n, double *r, double *J,
                   const nlsq_eval_env *env)
{
    (void)env;
    sctx *c = vctx;
    if (!c->dense && n > 0 && row0 / SP_R != (row0 + n - 1) / SP_R) {
        c->misuse = 1;
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        double jl[5];
        sp_row(x, row0 + i, &r[i], J ? jl : NULL);
        if (!J) continue;
        if (c->dense) {
            size_t g = (row0 + i) / SP_R;
            double *row = J + i * SP_P;
            memset(row, 0, SP_P * sizeof(double));
            row[0] = jl[0]; row[1] = jl[1]; row[2] = jl[2];
            row[3 + 2 * g] = jl[3]; row[4 + 2 * g] = jl[4];
        } else {
            memcpy(J + i * 5, jl, sizeof jl);
        }
    }
    return 0;
}

static void sp_start(double *x)
{
    x[0] = 2.7; x[1] = 0.0; x[2] = 0.0;
    for (size_t g = 0; g < SP_G; g++) { x[3 + 2 * g] = 1.0; x[4 + 2 * g] = 0.0; }
}

static void test_sparse_pattern(void **state)
{
    (void)state;
    static double cov_s[SP_P * SP_P], cov_d[SP_P * SP_P];
    sctx cs = {0, PAT_OK, 0, 0}, cd = {1, PAT_OK, 0, 0};
    nlsq_problem ps = {.n_params = SP_P, .n_rows = SP_M, .eval = sp_eval, .ctx = &cs, .pattern = sp_pattern};
    nlsq_problem pd = {.n_params = SP_P, .n_rows = SP_M, .eval = sp_eval, .ctx = &cd};
    nlsq_options opt;
    tc_strict_options(&opt);
    opt.chunk_rows = 64;          /* chunks cross group boundaries in the dense run */
    opt.absolute_sigma = 1;       /* covariance = (J^T J)^-1 */

    /* J^T J at a fixed point, through the covariance. */
    double x[SP_P];
    sp_start(x);
    x[0] = 2.9; x[1] = 0.1;
    for (size_t g = 0; g < SP_G; g++) x[3 + 2 * g] = 1.0 + 0.04 * (double)g;
    nlsq_result rs, rd;
    assert_int_equal(nlsq_covariance(&ps, &opt, x, cov_s, &rs), 0);
    assert_int_equal(nlsq_covariance(&pd, &opt, x, cov_d, &rd), 0);
    assert_int_equal(rs.rank, SP_P);
    assert_int_equal(rd.rank, SP_P);
    assert_true(tc_rel_diff(rs.cost, rd.cost) <= 1e-14);
    double worst = 0.0;
    for (size_t a = 0; a < SP_P; a++)
        for (size_t b = 0; b < SP_P; b++) {
            double d = fabs(cov_s[a * SP_P + b] - cov_d[a * SP_P + b]) /
                       sqrt(cov_d[a * SP_P + a] * cov_d[b * SP_P + b]);
            if (d > worst) worst = d;
        }
    print_message("  covariance at a fixed x: max relative difference %.3g\n", worst);
    assert_true(worst < 1e-12);

    /* The fits. */
    double xs[SP_P], xd[SP_P];
    sp_start(xs);
    sp_start(xd);
    opt.absolute_sigma = 0;
    rs.covariance = cov_s;
    rd.covariance = cov_d;
    int sts = nlsq_lm(&ps, &opt, xs, &rs);
    int std_ = nlsq_lm(&pd, &opt, xd, &rd);
    print_message("  sparse: %s %zu it cost %.17g; dense: %s %zu it cost %.17g\n",
                  nlsq_status_name(sts), rs.iterations, rs.cost, nlsq_status_name(std_),
                  rd.iterations, rd.cost);
    assert_true(sts > 0);
    assert_true(std_ > 0);
    assert_int_equal(cs.misuse, 0);
    assert_true(fabs(xs[0] - 3.0) < 0.05);
    for (size_t j = 0; j < SP_P; j++)
        if (!(fabs(xs[j] - xd[j]) <= 1e-10 * fmax(1.0, fabs(xd[j]))))
            fail_msg("x[%zu]: sparse %.17g, dense %.17g", j, xs[j], xd[j]);
    assert_true(tc_rel_diff(rs.cost, rd.cost) <= 1e-10);

    /* Invalid patterns, at the start point and for a group in the middle. */
    static const struct { int mode; const char *name; } bad[] = {
        {PAT_UNSORTED, "unsorted"}, {PAT_RANGE, "column out of range"}, {PAT_K0, "k = 0"},
        {PAT_KBIG, "k > p"}, {PAT_DUP, "duplicate column"}, {PAT_RET0, "returns 0"},
        {PAT_RETBIG, "returns > nrows"},
    };
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        static const size_t groups[2] = {0, 13};
        for (int gi = 0; gi < 2; gi++) {
            const size_t grp = groups[gi];
            sctx cb = {0, bad[b].mode, grp, 0};
            nlsq_problem pbad = {.n_params = SP_P, .n_rows = SP_M, .eval = sp_eval, .ctx = &cb, .pattern = sp_pattern};
            double xb[SP_P], x0[SP_P];
            sp_start(xb);
            sp_start(x0);
            nlsq_result rb;
            memset(&rb, 0, sizeof rb);
            for (int th = 1; th <= 2; th++) {
                opt.n_threads = th;
                int st = nlsq_lm(&pbad, &opt, xb, &rb);
                if (st != NLSQ_ECALLBACK)
                    fail_msg("pattern %s (group %zu): status %d", bad[b].name, grp, st);
                assert_true(rb.message[0] != '\0');
                assert_memory_equal(xb, x0, sizeof xb);
                assert_int_equal(cb.misuse, 0);
            }
            opt.n_threads = 1;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* (f) rank-deficient covariance                                             */
/* ------------------------------------------------------------------------ */

#define RD_M 50

/* kind 0: a u + b u + c     (columns 0 and 1 identical)
 * kind 1: a u + c           (the reduced model)
 * kind 2: a u + 0 d + c     (column 1 zero)                 u in [0.5, 2.5] */
typedef struct rdctx { int kind; } rdctx;

/* Row k of model `kind`: residual into *r, Jacobian row (2 or 3 entries)
 * into J when not NULL. */
static void rd_row(int kind, const double *x, size_t k, double *r, double *J)
{
    double u = 0.5 + 2.0 * (double)k / (RD_M - 1);
    double y = 1.5 * u + 0.3 + 0.05 * tc_uniform_noise(k + 4242);
    if (kind == 1) {
        *r = x[0] * u + x[1] - y;
        if (J) { J[0] = u; J[1] = 1.0; }
    } else if (kind == 0) {
        *r = x[0] * u + x[1] * u + x[2] - y;
        if (J) { J[0] = u; J[1] = u; J[2] = 1.0; }
    } else {
        *r = x[0] * u + x[2] - y;
        if (J) { J[0] = u; J[1] = 0.0; J[2] = 1.0; }
    }
}

static int rd_eval(void *vctx, const double *x, size_t row0, size_t n, double *r, double *J,
                   const nlsq_eval_env *env)
{
    (void)env;
    const rdctx *c = vctx;
    size_t p = c->kind == 1 ? 2 : 3;
    for (size_t i = 0; i < n; i++) rd_row(c->kind, x, row0 + i, &r[i], J ? J + p * i : NULL);
    return 0;
}

static int rd_fit(int kind, int absolute_sigma, double *x, double *cov, nlsq_result *res)
{
    rdctx c = {kind};
    size_t p = kind == 1 ? 2 : 3;
    nlsq_problem pb = {.n_params = p, .n_rows = RD_M, .eval = rd_eval, .ctx = &c};
    nlsq_options opt;
    tc_strict_options(&opt);
    opt.absolute_sigma = absolute_sigma;
    for (size_t j = 0; j < p; j++) x[j] = 0.1 * (double)(j + 1);
    memset(res, 0, sizeof *res);
    res->covariance = cov;
    return nlsq_lm(&pb, &opt, x, res);
}

static void test_rank_deficient(void **state)
{
    (void)state;
    for (int abs_sigma = 1; abs_sigma >= 0; abs_sigma--) {
        double xr[2], cr[4], xf[3], cf[9], xz[3], cz[9];
        nlsq_result rr, rf, rz;
        assert_true(rd_fit(1, abs_sigma, xr, cr, &rr) > 0);
        int st = rd_fit(0, abs_sigma, xf, cf, &rf);
        print_message("  duplicated column (absolute_sigma %d): %s, %zu it, rank %zu, "
                      "a + b = %.17g (reduced %.17g), var = %g %g %.17g (reduced c %.17g)\n",
                      abs_sigma, nlsq_status_name(st), rf.iterations, rf.rank, xf[0] + xf[1],
                      xr[0], cf[0], cf[4], cf[8], cr[3]);
        assert_true(st > 0);
        /* Same fit.  (ftol = 1e-15 bounds the cost, not x: here x is good to
         * about sqrt(1e-15 cost / m) ~ 1e-10 absolute, hence 1e-8.) */
        assert_true(tc_rel_diff(rf.cost, rr.cost) <= 1e-12);
        assert_true(fabs(xf[0] + xf[1] - xr[0]) <= 1e-8 * fabs(xr[0]));
        assert_true(fabs(xf[2] - xr[1]) <= 1e-8 * fmax(1.0, fabs(xr[1])));
        assert_int_equal(rf.rank, 2);
        assert_true(isinf(cf[0]) && cf[0] > 0);
        assert_true(isinf(cf[4]) && cf[4] > 0);
        assert_true(isnan(cf[1]) && isnan(cf[3]));
        assert_true(isnan(cf[2]) && isnan(cf[6]));
        assert_true(isfinite(cf[8]) && cf[8] > 0);
        /* s^2 = 2 cost / (m - p): with s^2 the dof differ (m - 3 vs m - 2). */
        double dof_ratio = abs_sigma ? 1.0 : (double)(RD_M - 2) / (RD_M - 3);
        if (!(tc_rel_diff(cf[8], cr[3] * dof_ratio) <= 1e-9))
            fail_msg("var(c) %.17g, reduced model %.17g", cf[8], cr[3] * dof_ratio);

        st = rd_fit(2, abs_sigma, xz, cz, &rz);
        print_message("  zero column: %s, rank %zu, var = %.17g %g %.17g\n", nlsq_status_name(st),
                      rz.rank, cz[0], cz[4], cz[8]);
        assert_true(st > 0);
        assert_int_equal(rz.rank, 2);
        assert_true(isinf(cz[4]) && cz[4] > 0);
        assert_true(isnan(cz[1]) && isnan(cz[3]) && isnan(cz[5]) && isnan(cz[7]));
        assert_true(tc_rel_diff(rz.cost, rr.cost) <= 1e-12);
        assert_true(fabs(xz[0] - xr[0]) <= 1e-8 * fabs(xr[0]));
        assert_true(fabs(xz[2] - xr[1]) <= 1e-8 * fmax(1.0, fabs(xr[1])));
        if (!(tc_rel_diff(cz[0], cr[0] * dof_ratio) <= 1e-9 && tc_rel_diff(cz[8], cr[3] * dof_ratio) <= 1e-9 &&
              tc_rel_diff(cz[2], cr[1] * dof_ratio) <= 1e-9))
            fail_msg("zero column: cov %.17g %.17g %.17g, reduced %.17g %.17g %.17g", cz[0], cz[2],
                     cz[8], cr[0] * dof_ratio, cr[1] * dof_ratio, cr[3] * dof_ratio);
    }
}

/* ------------------------------------------------------------------------ */
/* (g) allocation counting                                                   */
/* ------------------------------------------------------------------------ */

typedef struct alloc_stats {
    pthread_mutex_t mu;
    size_t live, peak, n_alloc, n_free;
} alloc_stats;

#define HDR 16   /* keeps malloc's alignment */

static void *c_alloc(void *ctx, size_t n)
{
    alloc_stats *s = ctx;
    unsigned char *p = malloc(n + HDR);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    pthread_mutex_lock(&s->mu);
    s->live += n;
    if (s->live > s->peak) s->peak = s->live;
    s->n_alloc++;
    pthread_mutex_unlock(&s->mu);
    return p + HDR;
}

static void c_free(void *ctx, void *ptr)
{
    alloc_stats *s = ctx;
    if (!ptr) return;
    unsigned char *p = (unsigned char *)ptr - HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    pthread_mutex_lock(&s->mu);
    s->live -= n;
    s->n_free++;
    pthread_mutex_unlock(&s->mu);
    free(p);
}

static alloc_stats counted_fit(size_t m, int threads, size_t chunk, size_t max_iter, double *x)
{
    alloc_stats s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    efit c = efit_make(m);
    nlsq_problem pb = {.n_params = 4, .n_rows = m, .eval = efit_eval, .ctx = &c};
    nlsq_options opt = efit_options(threads, chunk);
    opt.max_iter = max_iter;
    opt.allocator = (nlsq_allocator){c_alloc, c_free, &s};
    double cov[16];
    memcpy(x, efit_x0, 4 * sizeof(double));
    nlsq_result res;
    memset(&res, 0, sizeof res);
    res.covariance = cov;
    int st = nlsq_lm(&pb, &opt, x, &res);
    assert_true(st >= 0);
    assert_true(isfinite(cov[0]));
    pthread_mutex_destroy(&s.mu);
    return s;
}

static void test_allocations(void **state)
{
    (void)state;
    /* chunk_rows 256: both m have at least 32 chunks, the engine's fixed
     * maximum number of partial-sum slots (m = 1e4 has 40 chunks).  With
     * fewer chunks than that the engine uses fewer slots, i.e. less memory. */
    const size_t chunk = 256;
    double x[4];
    for (int th = 1; th <= 2; th++) {
        alloc_stats small = counted_fit(10000, th, chunk, 30, x);
        alloc_stats big = counted_fit(1000000, th, chunk, 30, x);
        alloc_stats tiny = counted_fit(1000, th, chunk, 30, x);
        print_message("  threads %d: peak bytes m=1e3 %zu, m=1e4 %zu, m=1e6 %zu "
                      "(%zu / %zu / %zu allocations)\n", th, tiny.peak, small.peak, big.peak,
                      tiny.n_alloc, small.n_alloc, big.n_alloc);
        assert_true(small.n_alloc > 0);
        assert_int_equal(small.peak, big.peak);
        assert_true(tiny.peak <= small.peak);
        assert_true(big.peak < ((size_t)1 << 20));
        const alloc_stats *all[3] = {&small, &big, &tiny};
        for (int k = 0; k < 3; k++) {
            assert_int_equal(all[k]->live, 0);
            assert_int_equal(all[k]->n_alloc, all[k]->n_free);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* (h) non-finite residuals                                                  */
/* ------------------------------------------------------------------------ */

static void test_nonfinite(void **state)
{
    (void)state;
    const size_t m = 200;
    nlsq_options opt;
    tc_strict_options(&opt);
    /* From b = 3 the first trial step lands at b = 0.395 (the optimum is
     * b = 1.3): residuals are made NaN below b = 0.8. */
    static const double start[4] = {1.0, 3.0, 0.0, 0.0};
    efit clean = efit_make(m);
    nlsq_problem pb = {.n_params = 4, .n_rows = m, .eval = efit_eval, .ctx = &clean};
    double xc[4];
    memcpy(xc, start, sizeof xc);
    nlsq_result rc;
    memset(&rc, 0, sizeof rc);
    assert_true(nlsq_lm(&pb, &opt, xc, &rc) > 0);
    assert_int_equal(rc.n_nonfinite, 0);

    efit holey = efit_make(m);
    holey.nan_b_below = 0.8;
    pb.ctx = &holey;
    double x[4];
    memcpy(x, start, sizeof x);
    nlsq_result res;
    memset(&res, 0, sizeof res);
    int st = nlsq_lm(&pb, &opt, x, &res);
    print_message("  NaN where b < 0.8: %s, %zu it, %zu non-finite trials, b = %.17g (clean %.17g)\n",
                  nlsq_status_name(st), res.iterations, res.n_nonfinite, x[1], xc[1]);
    assert_true(st > 0);
    assert_true(res.n_nonfinite > 0);
    for (int j = 0; j < 4; j++)
        if (!(tc_rel_diff(x[j], xc[j]) <= 1e-8))
            fail_msg("x[%d] = %.17g, clean fit %.17g", j, x[j], xc[j]);
    assert_true(tc_rel_diff(res.cost, rc.cost) <= 1e-10);

    /* NaN residuals at the start point. */
    efit bad0 = efit_make(m);
    bad0.nan_b_below = 0.5;     /* the start has b = 0.2 */
    pb.ctx = &bad0;
    memcpy(x, efit_x0, sizeof x);
    st = nlsq_lm(&pb, &opt, x, &res);
    print_message("  NaN at the start: %s (%s)\n", nlsq_status_name(st), res.message);
    assert_int_equal(st, NLSQ_ENONFINITE);
    assert_true(res.message[0] != '\0');
    assert_memory_equal(x, efit_x0, sizeof x);

    /* NaN Jacobian (finite residuals) at the start point. */
    efit badJ = efit_make(m);
    badJ.nan_J_at_start = 1;
    badJ.start_b = efit_x0[1];
    pb.ctx = &badJ;
    memcpy(x, efit_x0, sizeof x);
    st = nlsq_lm(&pb, &opt, x, &res);
    print_message("  NaN Jacobian at the start: %s (%s)\n", nlsq_status_name(st), res.message);
    assert_int_equal(st, NLSQ_ENONFINITE);
    assert_memory_equal(x, efit_x0, sizeof x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_linear_vs_qr),
        cmocka_unit_test(test_callback_error),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_sparse_pattern),
        cmocka_unit_test(test_rank_deficient),
        cmocka_unit_test(test_allocations),
        cmocka_unit_test(test_nonfinite),
    };
    return cmocka_run_group_tests_name("lm_core", tests, NULL, NULL);
}
