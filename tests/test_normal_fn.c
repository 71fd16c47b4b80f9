/* The engine's use of a normal-equation callback (nlsq.h nlsq_normal_fn) on
 * a problem of its own: rows in G = 3 groups of U units, row (g, u) with
 * residual w (y_gu - (x0 + x1 t_u + x2 exp(-x3 t_u) + x4 g)); the callback
 * adds up the rows of its units in plain loops.  Against the same problem
 * without the callback (every row through eval):
 *   - weight 1: the same iterations, cost to 1e-12, parameters to 1e-10
 *     relative; 1 and 3 threads bitwise the same with the callback;
 *   - weight 1e70: residuals past 2^200, so the solver works in units
 *     scaled by a power of two (nlsq__engine_autoscale), which the engine
 *     applies to the callback's sums; the same fit;
 *   - weight 1e170: r^2 overflows in the callback's sums, every chunk is
 *     redone row by row (scaled before squaring): the same fit (its
 *     reported cost, unscaled, is past DBL_MAX on both paths);
 *   - weight 1e-200: r^2 would underflow in the callback's sums; the
 *     solver scales residuals up, and scaled-up passes go through eval: the
 *     same fit;
 *   - nlsq_validate refuses normal_units that do not divide n_rows. */

#include "common.h"

#define G 3
#define U 700
#define NP 5

typedef struct toy {
    double w, t[U], y[G * U];
} toy;

static void row_of(const toy *T, const double *x, size_t row, double *r, double *J)
{
    const size_t g = row / U, u = row % U;
    const double t = T->t[u], e = exp(-x[3] * t);
    *r = T->w * (T->y[row] - (x[0] + x[1] * t + x[2] * e + x[4] * (double)g));
    const double d[NP] = {-1.0, -t, -e, x[2] * t * e, -(double)g};
    for (int k = 0; J && k < NP; k++) J[k] = T->w * d[k];
}

static int toy_eval(void *ctx, const double *x, size_t row0, size_t nrows, double *r, double *J,
                    const nlsq_eval_env *env)
{
    (void)env;
    for (size_t i = 0; i < nrows; i++) row_of(ctx, x, row0 + i, r + i, J ? J + i * NP : NULL);
    return 0;
}

static int toy_normal(void *ctx, const double *x, size_t u0, size_t nu, nlsq_normal_sums *out,
                      const nlsq_eval_env *env)
{
    (void)env;
    for (size_t g = 0; g < G; g++)
        for (size_t u = u0; u < u0 + nu; u++) {
            double r, J[NP];
            row_of(ctx, x, g * U + u, &r, J);
            out->rr += r * r;
            out->rmax = fmax(out->rmax, fabs(r));
            for (size_t a = 0; a < NP; a++) {
                out->Jtr[a] += J[a] * r;
                for (size_t b = a; b < NP; b++) out->JtJ[a * NP + b] += J[a] * J[b];
            }
        }
    out->n_obs = G * nu;
    return 0;
}

static void toy_init(toy *T, double w)
{
    T->w = w;
    const double truth[NP] = {1.0, 0.3, 2.0, 1.7, -0.4};
    for (size_t u = 0; u < U; u++) T->t[u] = 3.0 * (double)u / U;
    for (size_t row = 0; row < G * U; row++) {
        const size_t g = row / U, u = row % U;
        double t = T->t[u];
        T->y[row] = truth[0] + truth[1] * t + truth[2] * exp(-truth[3] * t) + truth[4] * (double)g +
                    0.01 * sin(7.0 * (double)row);
    }
}

static int solve(toy *T, int with, int threads, double *x, nlsq_result *res)
{
    nlsq_problem pb = {.n_params = NP, .n_rows = G * U, .eval = toy_eval, .ctx = T};
    if (with) {
        pb.normal = toy_normal;
        pb.normal_units = U;
    }
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = threads;
    opt.chunk_rows = 64;   /* many chunks and slots */
    const double x0[NP] = {0.5, 0.0, 1.0, 1.0, 0.0};
    memcpy(x, x0, sizeof x0);
    memset(res, 0, sizeof *res);
    return nlsq_lm(&pb, &opt, x, res);
}

static void test_with_and_without(void **st)
{
    (void)st;
    static toy T;
    const double w[4] = {1.0, 1e70, 1e170, 1e-200};
    for (int k = 0; k < 4; k++) {
        toy_init(&T, w[k]);
        double xa[NP], xb[NP], xc[NP];
        nlsq_result ra, rb, rc;
        int sa = solve(&T, 1, 1, xa, &ra), sb = solve(&T, 1, 3, xb, &rb);
        int sc = solve(&T, 0, 2, xc, &rc);
        double dx = 0;
        for (int q = 0; q < NP; q++) dx = fmax(dx, fabs(xa[q] - xc[q]) / fabs(xc[q]));
        printf("  w %g: with %s %zu it cost %.17g; rows %s %zu it cost %.17g; x %.1e\n", w[k],
               nlsq_status_name(sa), ra.iterations, ra.cost, nlsq_status_name(sc), rc.iterations,
               rc.cost, dx);
        assert_true(sa > 0 && sc > 0);
        assert_int_equal(sa, sb);
        assert_true(ra.cost == rb.cost);
        assert_memory_equal(xa, xb, sizeof xa);
        assert_int_equal(ra.iterations, rc.iterations);
        if (isfinite(rc.cost)) assert_true(fabs(ra.cost - rc.cost) <= 1e-12 * rc.cost);
        else assert_true(ra.cost == rc.cost);   /* 0.5 sum r^2 past DBL_MAX in both */
        assert_true(dx <= 1e-10);
        assert_int_equal(ra.n_obs, rc.n_obs);
    }
}

static void test_units_must_divide(void **st)
{
    (void)st;
    static toy T;
    toy_init(&T, 1.0);
    nlsq_problem pb = {.n_params = NP, .n_rows = G * U, .eval = toy_eval, .ctx = &T,
                       .normal = toy_normal, .normal_units = U + 1};
    nlsq_options opt;
    nlsq_options_init(&opt);
    double x[NP] = {0.5, 0.0, 1.0, 1.0, 0.0};
    char msg[256] = "";
    assert_int_equal(nlsq_validate(&pb, &opt, x, msg, sizeof msg), NLSQ_EINVAL);
    assert_non_null(strstr(msg, "normal_units"));
    pb.normal_units = 0;
    assert_int_equal(nlsq_validate(&pb, &opt, x, msg, sizeof msg), NLSQ_EINVAL);
}

TC_MAIN(cmocka_unit_test(test_with_and_without), cmocka_unit_test(test_units_must_divide))
