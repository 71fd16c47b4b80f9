/*
 * test_adam.c - nlsq_adam on easy problems, against nlsq_lm as the reference.
 *
 *   linear          y = a + b t, m = 20000: Adam's cost within ADAM_RTOL of LM's
 *   exp_decay       y = A exp(-D t) + c with D ~ 2e4 and A, c ~ 1 (one
 *                   learning rate for very different scales), m = 50000
 *   bounds          the unconstrained optimum lies outside the box: every
 *                   evaluated point is inside (checked in the callback), the
 *                   result is on the bound, its cost matches bounded LM's
 *   same_seed       two runs with the same seed: bitwise identical; another
 *                   seed: a different path
 *   threads         1 vs 2 threads (several slots per block): bitwise identical
 *   progress_stop   the progress callback stops at epoch 3: NLSQ_EUSER_STOP,
 *                   x = the best point the callback saw, res->cost = its cost
 *   covariance      res->covariance filled at the returned point (vs nlsq_covariance)
 *   scales          exp_decay with residuals x 1e-200 ... 1e200: Adam gives the
 *                   unscaled run's status and epochs, parameters to 1e-9
 *                   relative (only adam.eps sees the power-of-two scale the
 *                   engine works at), cost / s^2 and covariance to 1e-9;
 *                   nlsq_hybrid likewise, parameters to 1e-9
 *
 * Tolerance: Adam is a first-order stochastic method; with its plateau rule
 * and learning-rate decay it gets the cost within ADAM_RTOL = 1e-3 (relative)
 * of the LM optimum here; the numbers are printed.
 */
#include "common.h"

#include <stdatomic.h>

#define ADAM_RTOL 1e-3

typedef struct prob_ctx {
    size_t m;
    int exp_model;               /* 0: linear_row (p = 2), 1: exp_row (p = 3) */
    const double *lo, *hi;       /* when set: flag any evaluated x outside */
    atomic_int outside;
    atomic_long n_calls;
    double scale;                /* residuals and Jacobian times this (0: 1) */
} prob_ctx;

static void check_box(prob_ctx *c, const double *x, size_t p)
{
    atomic_fetch_add(&c->n_calls, 1);
    if (!c->lo) return;
    for (size_t j = 0; j < p; j++)
        if (!(x[j] >= c->lo[j] && x[j] <= c->hi[j])) atomic_store(&c->outside, 1);
}

/* y = 1.5 - 0.7 t + 0.1 tc_gauss_noise, t in [0, 10). */
static void linear_row(const prob_ctx *c, const double *x, size_t row, double *r, double *J)
{
    double t = 10.0 * (double)row / (double)c->m;
    double y = 1.5 - 0.7 * t + 0.1 * tc_gauss_noise(row);
    *r = x[0] + x[1] * t - y;
    if (J) { J[0] = 1.0; J[1] = t; }
}

/* y = 2 exp(-2e4 t) + 0.5 + 0.05 tc_gauss_noise, t in [0, 3e-4). */
static void exp_row(const prob_ctx *c, const double *x, size_t row, double *r, double *J)
{
    double t = 3e-4 * (double)row / (double)c->m;
    double y = 2.0 * exp(-2e4 * t) + 0.5 + 0.05 * tc_gauss_noise(row + 77);
    double e = exp(-x[1] * t), s = c->scale ? c->scale : 1.0;
    *r = s * (x[0] * e + x[2] - y);
    if (J) {
        J[0] = s * e;
        J[1] = s * (-x[0] * t * e);
        J[2] = s;
    }
}

static int eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                const nlsq_eval_env *env)
{
    (void)env;
    prob_ctx *c = ctx;
    size_t p = c->exp_model ? 3 : 2;
    check_box(c, x, p);
    for (size_t i = 0; i < n; i++)
        (c->exp_model ? exp_row : linear_row)(c, x, row0 + i, &r[i], J ? J + p * i : NULL);
    return 0;
}

static void adam_opts(nlsq_options *o)
{
    nlsq_options_init(o);
    o->n_threads = 1;
    o->adam.batch_rows = 2048;
    o->adam.block_rows = 512;
    o->adam.epochs = 400;
}

/* What a test works on: the context, the problem over it, Adam's options. */
typedef struct fixture {
    prob_ctx c;
    nlsq_problem pb;
    nlsq_options o;
} fixture;

/* m rows of the linear (exp_model 0) or exponential (1) problem; adam_opts. */
static void fx_init(fixture *f, size_t m, int exp_model)
{
    memset(f, 0, sizeof *f);
    f->c.m = m;
    f->c.exp_model = exp_model;
    f->pb = (nlsq_problem){.n_params = exp_model ? 3 : 2, .n_rows = m, .eval = eval, .ctx = &f->c};
    adam_opts(&f->o);
}

/* Full cost at x with the chunking of Adam's engine (chunks of batch_rows). */
static double full_cost(const nlsq_problem *pb, const double *x, size_t chunk)
{
    nlsq_options o;
    nlsq_options_init(&o);
    o.n_threads = 1;
    o.chunk_rows = chunk;
    o.max_iter = 0;
    o.gtol = 1e-300;
    o.ftol = o.xtol = 0;
    double xx[8];
    memcpy(xx, x, pb->n_params * sizeof(double));
    nlsq_result r = {0};
    nlsq_lm(pb, &o, xx, &r);
    return r.cost;
}

static void compare_with_lm(const char *name, nlsq_problem *pb, const double *x_start,
                            nlsq_options *o)
{
    size_t p = pb->n_params;
    double xl[8], xa[8];
    memcpy(xl, x_start, p * sizeof(double));
    memcpy(xa, x_start, p * sizeof(double));
    nlsq_options lo;
    nlsq_options_init(&lo);
    lo.n_threads = 1;
    nlsq_result rl = {0}, ra = {0};
    int sl = nlsq_lm(pb, &lo, xl, &rl);
    int sa = nlsq_adam(pb, o, xa, &ra);
    double rel = (ra.cost - rl.cost) / rl.cost;
    printf("%-10s LM: %s cost %.10e (%zu it, %zu+%zu passes)  Adam: %s cost %.10e "
           "(%zu epochs, n_eval %zu, n_jac %zu)  rel diff %.2e\n",
           name, nlsq_status_name(sl), rl.cost, rl.iterations, rl.n_eval, rl.n_jac,
           nlsq_status_name(sa), ra.cost, ra.iterations, ra.n_eval, ra.n_jac, rel);
    printf("%-10s x LM:", name);
    for (size_t j = 0; j < p; j++) printf(" %.8g", xl[j]);
    printf("   x Adam:");
    for (size_t j = 0; j < p; j++) printf(" %.8g", xa[j]);
    printf("\n");
    assert_true(sl > 0);
    assert_true(sa == NLSQ_CONVERGED_ADAM || sa == NLSQ_MAX_ITER);
    assert_int_equal(sa, ra.status);
    assert_true(rel <= ADAM_RTOL);
    assert_true(rel >= -1e-12);                    /* LM is the optimum */
    assert_true(ra.cost < ra.initial_cost);
    /* res->cost is the full cost at the returned x */
    assert_true(ra.cost == full_cost(pb, xa, o->adam.batch_rows));
    assert_int_equal(ra.n_phases, 1);
    assert_int_equal(ra.phases[0].phase, NLSQ_PHASE_ADAM);
    assert_true(ra.n_jac >= ra.iterations);
    assert_true(isfinite(ra.grad_norm));
}

static void test_linear(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f, 20000, 0);
    double x0[2] = {0.0, 0.0};
    compare_with_lm("linear", &f.pb, x0, &f.o);
}

static void test_exp_decay(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f, 50000, 1);
    double x0[3] = {1.0, 5e3, 0.0};
    compare_with_lm("exp_decay", &f.pb, x0, &f.o);
}

static void test_bounds(void **state)
{
    (void)state;
    /* optimum (1.5, -0.7); the box keeps b <= -1 */
    double lo[2] = {-10.0, -3.0}, hi[2] = {10.0, -1.0};
    fixture f;
    fx_init(&f, 20000, 0);
    f.c.lo = f.pb.lower = lo;
    f.c.hi = f.pb.upper = hi;
    prob_ctx *c = &f.c;
    const nlsq_problem *pb = &f.pb;
    const nlsq_options *o = &f.o;
    double x0[2] = {0.0, -2.0};
    compare_with_lm("bounds", &f.pb, x0, &f.o);
    assert_int_equal(atomic_load(&c->outside), 0);
    double xa[2] = {0.0, -2.0};
    nlsq_result ra = {0};
    nlsq_adam(pb, o, xa, &ra);
    assert_true(xa[1] == -1.0);                    /* on the bound, exactly */
    assert_true(xa[0] > lo[0] && xa[0] < hi[0]);
    assert_int_equal(ra.n_active, 1);
    assert_int_equal(atomic_load(&c->outside), 0);
    assert_true(atomic_load(&c->n_calls) > 100);
    /* a start outside the box is projected first */
    double xb[2] = {20.0, 5.0};
    nlsq_adam(pb, o, xb, &ra);
    assert_int_equal(atomic_load(&c->outside), 0);
    assert_true(xb[1] == -1.0);
}

static void test_same_seed(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f, 20000, 1);
    f.o.adam.epochs = 30;
    double xa[3] = {1.0, 5e3, 0.0}, xb[3] = {1.0, 5e3, 0.0}, xc[3] = {1.0, 5e3, 0.0};
    nlsq_result ra = {0}, rb = {0}, rc = {0};
    nlsq_adam(&f.pb, &f.o, xa, &ra);
    nlsq_adam(&f.pb, &f.o, xb, &rb);
    assert_memory_equal(xa, xb, sizeof xa);
    assert_memory_equal(&ra.cost, &rb.cost, sizeof(double));
    assert_int_equal(ra.iterations, rb.iterations);
    f.o.adam.seed = 987654321;
    nlsq_adam(&f.pb, &f.o, xc, &rc);
    assert_true(memcmp(xa, xc, sizeof xa) != 0);
    printf("same seed: cost %.15e twice; other seed: %.15e\n", ra.cost, rc.cost);
}

static void test_threads(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f, 30000, 1);
    f.o.adam.epochs = 25;
    f.o.chunk_rows = 128;                            /* 4 chunks per block: several slots */
    const double x0[3] = {1.0, 5e3, 0.0};
    double x1[3], x2[3];
    nlsq_result r1, r2;
    tc_expect_threads_bitwise(nlsq_adam, &f.pb, &f.o, x0, 2, x1, x2, &r1, &r2);
    assert_memory_equal(&r1.grad_norm, &r2.grad_norm, sizeof(double));
    assert_int_equal(r1.iterations, r2.iterations);
    printf("threads: 1 and 2 threads -> cost %.15e, %zu epochs (bitwise equal)\n", r1.cost,
           r1.iterations);
}

typedef struct stop_ctx {
    size_t stop_at, calls;
    double best[8];
    double lr[64], cost[64];
    int phase_ok;
} stop_ctx;

static int stop_progress(void *ctx, const nlsq_progress_info *info)
{
    stop_ctx *s = ctx;
    s->calls++;
    if (info->phase != NLSQ_PHASE_ADAM || info->iteration != s->calls) s->phase_ok = 0;
    if (s->calls < 64) { s->lr[s->calls] = info->lambda; s->cost[s->calls] = info->cost; }
    memcpy(s->best, info->x, 3 * sizeof(double));
    return info->iteration >= s->stop_at;
}

static void test_progress_stop(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f, 20000, 1);
    stop_ctx s = {.stop_at = 3, .phase_ok = 1};
    f.o.progress = stop_progress;
    f.o.progress_ctx = &s;
    double x[3] = {1.0, 5e3, 0.0};
    nlsq_result r = {0};
    int st = nlsq_adam(&f.pb, &f.o, x, &r);
    assert_int_equal(st, NLSQ_EUSER_STOP);
    assert_int_equal(r.status, NLSQ_EUSER_STOP);
    assert_int_equal(s.calls, 3);
    assert_true(s.phase_ok);
    assert_int_equal(r.iterations, 3);
    assert_memory_equal(x, s.best, sizeof x);      /* x = the best point */
    assert_true(r.cost == full_cost(&f.pb, x, f.o.adam.batch_rows));
    assert_true(r.cost < r.initial_cost);
    for (size_t k = 1; k <= 3; k++) assert_true(s.lr[k] > 0 && s.lr[k] <= f.o.adam.lr);
    printf("progress stop at epoch 3: cost %.10e (start %.10e), lr %.3e %.3e %.3e\n", r.cost,
           r.initial_cost, s.lr[1], s.lr[2], s.lr[3]);
}

static void test_covariance(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f, 20000, 0);
    double x[2] = {0, 0}, cov[4], cov2[4];
    nlsq_result r = {0};
    r.covariance = cov;
    int st = nlsq_adam(&f.pb, &f.o, x, &r);
    assert_true(st >= 0);
    assert_int_equal(r.rank, 2);
    nlsq_options o2;
    nlsq_options_init(&o2);
    o2.n_threads = 1;
    o2.chunk_rows = f.o.adam.batch_rows;
    nlsq_covariance(&f.pb, &o2, x, cov2, NULL);
    for (int i = 0; i < 4; i++) assert_true(fabs(cov[i] - cov2[i]) <= 1e-9 * fabs(cov2[i]));
}

static double max_rel(size_t p, const double *a, const double *b)
{
    double w = 0;
    for (size_t j = 0; j < p; j++) w = fmax(w, fabs(a[j] - b[j]) / fabs(b[j]));
    return w;
}

static void test_scales(void **state)
{
    (void)state;
    static const double scales[] = {1e-200, 1e-150, 1e-100, 1e100, 1e150, 1e200};
    nlsq_options o;
    adam_opts(&o);
    o.adam.epochs = 60;
    for (int hybrid = 0; hybrid < 2; hybrid++) {
        int (*solve)(const nlsq_problem *, const nlsq_options *, double *, nlsq_result *) =
            hybrid ? nlsq_hybrid : nlsq_adam;
        fixture f;
        fx_init(&f, 50000, 1);
        prob_ctx *c = &f.c;
        const nlsq_problem *pb = &f.pb;
        double xr[3] = {1.0, 5e3, 0.0}, covr[9];
        nlsq_result rr = {0};
        rr.covariance = covr;
        int sr = solve(pb, &o, xr, &rr);
        assert_true(sr >= 0);
        for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
            c->scale = scales[k];
            double x[3] = {1.0, 5e3, 0.0}, cov[9];
            nlsq_result r = {0};
            r.covariance = cov;
            int st = solve(pb, &o, x, &r);
            double s2 = scales[k] * scales[k];
            double dcost = isfinite(s2) && s2 > 1e-290 ? fabs(r.cost / s2 - rr.cost) / rr.cost : 0;
            printf("%s x %g: %s %zu it (unscaled %s %zu it), max rel. dx %.2g, cost / s^2 rel. "
                   "%.2g, cov rel. %.2g\n", hybrid ? "hybrid" : "adam", scales[k],
                   nlsq_status_name(st), r.iterations, nlsq_status_name(sr), rr.iterations,
                   max_rel(3, x, xr), dcost, max_rel(9, cov, covr));
            assert_int_equal(st, sr);
            assert_int_equal(r.iterations, rr.iterations);
            assert_true(max_rel(3, x, xr) <= 1e-9);
            assert_true(dcost <= 1e-9);
            assert_true(max_rel(9, cov, covr) <= 1e-9);
        }
    }
}

TC_MAIN(cmocka_unit_test(test_linear),
        cmocka_unit_test(test_exp_decay),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_same_seed),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_progress_stop),
        cmocka_unit_test(test_covariance),
        cmocka_unit_test(test_scales))
