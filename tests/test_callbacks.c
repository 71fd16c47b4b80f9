/*
 * test_callbacks.c - the callback contract of nlsq.h ("Callbacks"): prepare
 * once per point, per-worker scratch, the callback's status and message in
 * the result.
 *
 *   prepare_once        LM, Adam and hybrid on 1 and 3 threads: every eval
 *                       at a pass point sees env->at_prepared with the state
 *                       prepare wrote for that very x; prepare never runs
 *                       twice in a row at the same x, at most once per pass,
 *                       never while an eval runs; x, cost and the pass counts
 *                       equal bit for bit those of the problem without prepare
 *   prepare_fd          forward differences: the perturbed points come with
 *                       at_prepared 0 and no state, the pass point with them;
 *                       the fit equals the one without prepare
 *   scratch_workers     each worker's scratch has the declared size (written
 *                       whole), double alignment, one address per worker,
 *                       distinct between workers, and keeps what the worker's
 *                       previous call left
 *   scratch_bitwise     a model that computes through its scratch: x, cost,
 *                       covariance bitwise equal on 1, 2 and 3 threads
 *   eval_error          eval returns 42 with a message at one row: status
 *                       NLSQ_ECALLBACK, res.callback_status 42, the message
 *                       begins res.message (LM, Adam, nlsq_covariance,
 *                       nlsq_covariance_robust); NLSQ_ENOMEM stays NLSQ_ENOMEM
 *   prepare_error       prepare fails at its third point with 7 and a message
 *   curve_fit_status    a curve_fit model's nonzero return reaches
 *                       callback_status
 *   validate            prepare_bytes without prepare: NLSQ_EINVAL
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define M_ROWS 20000
#define P 3
#define CHUNK 512
#define SCRATCH_BYTES 1000   /* not a multiple of 8 on purpose; >= 64 doubles */
#define MAX_W 8

/* y = a exp(-b t) + c over t = i / M_ROWS, with a small deterministic wobble */
static double data_y(size_t i)
{
    double t = (double)i / M_ROWS;
    return 3.0 * exp(-2.0 * t) + 0.5 + 1e-3 * sin(12.9898 * (double)i);
}

typedef struct prep_state {
    double x[P];
    double ex_scale;          /* -x[1], what the rows use */
} prep_state;

typedef struct cctx {
    int use_prepare;          /* eval requires the prepared state at pass points */
    int use_scratch;          /* eval computes through its scratch */
    int jacobian;             /* the problem's nlsq_jacobian */
    atomic_int bad;           /* a contract violation seen (a code, 0: none) */
    atomic_int in_eval;       /* evals running now */
    atomic_long n_prepare, n_eval_calls, n_unprepared;
    double last_prepared[P];
    int have_last;
    long fail_row;            /* eval fails on the chunk holding this row (-1: never) */
    int fail_code;
    long prepare_fail_at;     /* prepare fails on its n-th call (0: never) */
    pthread_mutex_t mu;
    void *scratch_of[MAX_W];  /* the address each worker saw */
} cctx;

static void cctx_init(cctx *c)
{
    memset(c, 0, sizeof *c);
    c->fail_row = -1;
    pthread_mutex_init(&c->mu, NULL);
}

static int prepare_cb(void *vc, const double *x, void *state, char *msg, size_t msg_size)
{
    cctx *c = vc;
    long k = atomic_fetch_add(&c->n_prepare, 1) + 1;
    if (atomic_load(&c->in_eval) != 0) atomic_store(&c->bad, 1);
    if (c->have_last && memcmp(c->last_prepared, x, sizeof c->last_prepared) == 0)
        atomic_store(&c->bad, 2);   /* the same point prepared twice in a row */
    if (c->prepare_fail_at && k == c->prepare_fail_at) {
        snprintf(msg, msg_size, "prepare refused point %ld", k);
        return 7;
    }
    memcpy(c->last_prepared, x, sizeof c->last_prepared);
    c->have_last = 1;
    prep_state *s = state;
    memcpy(s->x, x, sizeof s->x);
    s->ex_scale = -x[1];
    return 0;
}

/* the scratch checks: size, alignment, one address per worker, and what the
 * worker's previous call left (a stamp: the worker index + 1) */
static void check_scratch(cctx *c, const nlsq_eval_env *env)
{
    if (env->scratch_bytes != SCRATCH_BYTES || !env->scratch ||
        ((uintptr_t)env->scratch % sizeof(double)) != 0 || env->worker >= MAX_W) {
        atomic_store(&c->bad, 3);
        return;
    }
    unsigned char *s = env->scratch;
    unsigned char stamp = (unsigned char)(env->worker + 1);
    if (s[0] != 0 && s[0] != stamp) atomic_store(&c->bad, 4);
    pthread_mutex_lock(&c->mu);
    if (!c->scratch_of[env->worker]) c->scratch_of[env->worker] = env->scratch;
    else if (c->scratch_of[env->worker] != env->scratch) atomic_store(&c->bad, 5);
    pthread_mutex_unlock(&c->mu);
    memset(s, stamp, SCRATCH_BYTES);   /* all of it: ASan catches a short buffer */
}

static int eval_cb(void *vc, const double *x, size_t row0, size_t n, double *r, double *J,
                   const nlsq_eval_env *env)
{
    cctx *c = vc;
    atomic_fetch_add(&c->in_eval, 1);
    atomic_fetch_add(&c->n_eval_calls, 1);
    double neg_b = -x[1];
    if (c->use_prepare) {
        if (env->at_prepared) {
            const prep_state *s = env->state;
            if (!s || memcmp(s->x, x, sizeof s->x) != 0) atomic_store(&c->bad, 6);
            else neg_b = s->ex_scale;
        } else {
            atomic_fetch_add(&c->n_unprepared, 1);
            if (env->state) atomic_store(&c->bad, 7);
        }
    } else if (env->at_prepared || env->state) {
        atomic_store(&c->bad, 8);
    }
    if (c->use_scratch) check_scratch(c, env);
    if (!env->msg || env->msg_size != NLSQ_CALLBACK_MSG_SIZE || env->msg[0] != '\0')
        atomic_store(&c->bad, 9);
    if (c->fail_row >= 0 && (size_t)c->fail_row >= row0 && (size_t)c->fail_row < row0 + n) {
        snprintf(env->msg, env->msg_size, "row %ld is cursed", c->fail_row);
        atomic_fetch_sub(&c->in_eval, 1);
        return c->fail_code;
    }
    /* exp(-b t) through the scratch when asked: the values go there first */
    double *e = c->use_scratch ? env->scratch : NULL;
    for (size_t i0 = 0; i0 < n; i0 += 64) {
        size_t nb = n - i0 < 64 ? n - i0 : 64;
        double tmp[64];
        double *ev = e ? e : tmp;
        for (size_t i = 0; i < nb; i++) ev[i] = exp(neg_b * (double)(row0 + i0 + i) / M_ROWS);
        for (size_t i = 0; i < nb; i++) {
            size_t row = row0 + i0 + i;
            double t = (double)row / M_ROWS;
            r[i0 + i] = x[0] * ev[i] + x[2] - data_y(row);
            if (J) {
                double *Ji = J + (i0 + i) * P;
                Ji[0] = ev[i];
                Ji[1] = -x[0] * t * ev[i];
                Ji[2] = 1.0;
            }
        }
    }
    if (e) memset(e, (int)(env->worker + 1), SCRATCH_BYTES);   /* the stamp again */
    atomic_fetch_sub(&c->in_eval, 1);
    return 0;
}

static nlsq_problem make_problem(cctx *c)
{
    nlsq_problem pb = {.n_params = P, .n_rows = M_ROWS, .eval = eval_cb, .ctx = c,
                       .jacobian = c->jacobian};
    if (c->use_prepare) {
        pb.prepare = prepare_cb;
        pb.prepare_bytes = sizeof(prep_state);
    }
    if (c->use_scratch) pb.scratch_bytes = SCRATCH_BYTES;
    return pb;
}

static void options(nlsq_options *o, int threads)
{
    nlsq_options_init(o);
    o->n_threads = threads;
    o->chunk_rows = CHUNK;
    o->adam.batch_rows = 2048;
    o->adam.epochs = 3;
    o->hybrid.adam_epochs = 2;
}

typedef int (*solver_fn)(const nlsq_problem *, const nlsq_options *, double *, nlsq_result *);

/* one solve; returns the status, x and res filled */
static int solve(solver_fn fn, cctx *c, int threads, double *x, nlsq_result *res, double *cov)
{
    nlsq_problem pb = make_problem(c);
    nlsq_options o;
    options(&o, threads);
    const double x0[P] = {1.0, 1.0, 0.0};
    memcpy(x, x0, sizeof x0);
    memset(res, 0, sizeof *res);
    res->covariance = cov;
    return fn(&pb, &o, x, res);
}

static void test_prepare_once(void **state)
{
    (void)state;
    const solver_fn fns[3] = {nlsq_lm, nlsq_adam, nlsq_hybrid};
    const char *names[3] = {"lm", "adam", "hybrid"};
    for (int f = 0; f < 3; f++)
        for (int threads = 1; threads <= 3; threads += 2) {
            cctx plain, prep;
            cctx_init(&plain);
            cctx_init(&prep);
            prep.use_prepare = 1;
            double x0[P], x1[P];
            nlsq_result r0, r1;
            int s0 = solve(fns[f], &plain, threads, x0, &r0, NULL);
            int s1 = solve(fns[f], &prep, threads, x1, &r1, NULL);
            long np = atomic_load(&prep.n_prepare);
            print_message("%s, %d threads: status %d, %zu + %zu passes, %ld prepares\n",
                          names[f], threads, s1, r1.n_eval, r1.n_jac, np);
            assert_int_equal(atomic_load(&prep.bad), 0);
            assert_int_equal(atomic_load(&plain.bad), 0);
            assert_true(s1 >= 0);
            assert_int_equal(s0, s1);
            assert_memory_equal(x0, x1, sizeof x0);
            assert_memory_equal(&r0.cost, &r1.cost, sizeof r0.cost);
            assert_int_equal(r0.n_eval, r1.n_eval);
            assert_int_equal(r0.n_jac, r1.n_jac);
            assert_int_equal(r0.iterations, r1.iterations);
            assert_int_equal(atomic_load(&prep.n_unprepared), 0);
            assert_true(np >= 2);
            if (fns[f] == nlsq_lm) {
                /* LM: every pass is over all rows at one point, so prepares
                 * never exceed the passes */
                assert_true((size_t)np <= r1.n_eval + r1.n_jac);
            }
            assert_int_equal(r1.callback_status, 0);
        }
}

static void test_prepare_fd(void **state)
{
    (void)state;
    cctx plain, prep;
    cctx_init(&plain);
    cctx_init(&prep);
    prep.use_prepare = 1;
    plain.jacobian = prep.jacobian = NLSQ_JAC_FORWARD;
    double x0[P], x1[P];
    nlsq_result r0, r1;
    int s0 = solve(nlsq_lm, &plain, 2, x0, &r0, NULL);
    int s1 = solve(nlsq_lm, &prep, 2, x1, &r1, NULL);
    assert_int_equal(atomic_load(&prep.bad), 0);
    assert_true(s1 > 0);
    assert_int_equal(s0, s1);
    assert_memory_equal(x0, x1, sizeof x0);
    /* one unprepared call per perturbed column and chunk of a Jacobian pass */
    long nu = atomic_load(&prep.n_unprepared);
    assert_true(nu >= (long)r1.n_jac * (M_ROWS / CHUNK) * P);
    assert_int_equal(nu % P, 0);
    assert_true(fabs(x1[1] - 2.0) < 1e-2);
}

static void test_scratch_workers(void **state)
{
    (void)state;
    cctx c;
    cctx_init(&c);
    c.use_scratch = 1;
    double x[P];
    nlsq_result res;
    int st = solve(nlsq_lm, &c, 3, x, &res, NULL);
    assert_true(st > 0);
    assert_int_equal(atomic_load(&c.bad), 0);
    size_t seen = 0;
    for (int a = 0; a < MAX_W; a++) {
        if (!c.scratch_of[a]) continue;
        seen++;
        assert_true(a < 3);
        for (int b = 0; b < a; b++) {
            if (!c.scratch_of[b]) continue;
            /* distinct and not overlapping */
            const char *pa = c.scratch_of[a], *pb = c.scratch_of[b];
            assert_true(pa + SCRATCH_BYTES <= pb || pb + SCRATCH_BYTES <= pa);
        }
    }
    assert_true(seen >= 1);
    print_message("scratch: %zu workers seen\n", seen);
}

static void test_scratch_bitwise(void **state)
{
    (void)state;
    double x[3][P], cov[3][P * P];
    nlsq_result res[3];
    for (int t = 0; t < 3; t++) {
        cctx c;
        cctx_init(&c);
        c.use_scratch = 1;
        c.use_prepare = 1;
        assert_true(solve(nlsq_lm, &c, t + 1, x[t], &res[t], cov[t]) > 0);
        assert_int_equal(atomic_load(&c.bad), 0);
    }
    for (int t = 1; t < 3; t++) {
        assert_memory_equal(x[0], x[t], sizeof x[0]);
        assert_memory_equal(cov[0], cov[t], sizeof cov[0]);
        assert_memory_equal(&res[0].cost, &res[t].cost, sizeof(double));
        assert_int_equal(res[0].n_jac, res[t].n_jac);
    }
    assert_true(fabs(x[0][0] - 3.0) < 1e-2 && fabs(x[0][1] - 2.0) < 1e-2);
}

static int ids_cb(void *ctx, size_t row0, size_t n, size_t *a, size_t *b)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        a[i] = (row0 + i) % 10;
        b[i] = NLSQ_NO_CLUSTER;
    }
    return 0;
}

static void expect_failure(const nlsq_result *res, int st, int want_status, int want_cb,
                           const char *msg_start)
{
    print_message("status %d, callback_status %d, message: %s\n", st, res->callback_status,
                  res->message);
    assert_int_equal(st, want_status);
    assert_int_equal(res->status, want_status);
    assert_int_equal(res->callback_status, want_cb);
    assert_int_equal(strncmp(res->message, msg_start, strlen(msg_start)), 0);
    /* the solver's own words follow */
    assert_non_null(strstr(res->message, " - "));
}

static void test_eval_error(void **state)
{
    (void)state;
    for (int t = 1; t <= 3; t += 2) {
        cctx c;
        cctx_init(&c);
        c.use_prepare = 1;
        c.use_scratch = 1;
        c.fail_row = 12345;
        c.fail_code = 42;
        double x[P], cov[P * P];
        nlsq_result res;
        int st = solve(nlsq_lm, &c, t, x, &res, NULL);
        expect_failure(&res, st, NLSQ_ECALLBACK, 42, "row 12345 is cursed");
        assert_non_null(strstr(res.message, "chunk at row"));   /* LM's words */
        st = solve(nlsq_adam, &c, t, x, &res, NULL);
        expect_failure(&res, st, NLSQ_ECALLBACK, 42, "row 12345 is cursed");
        nlsq_problem pb = make_problem(&c);
        nlsq_options o;
        options(&o, t);
        memset(&res, 0, sizeof res);
        st = nlsq_covariance(&pb, &o, x, cov, &res);
        expect_failure(&res, st, NLSQ_ECALLBACK, 42, "row 12345 is cursed");
        nlsq_clusters cl = {10, ids_cb, NULL};
        memset(&res, 0, sizeof res);
        st = nlsq_covariance_robust(&pb, &o, &cl, x, cov, &res);
        expect_failure(&res, st, NLSQ_ECALLBACK, 42, "row 12345 is cursed");
        c.fail_code = NLSQ_ENOMEM;
        st = solve(nlsq_lm, &c, t, x, &res, NULL);
        expect_failure(&res, st, NLSQ_ENOMEM, NLSQ_ENOMEM, "row 12345 is cursed");
    }
}

static void test_prepare_error(void **state)
{
    (void)state;
    cctx c;
    cctx_init(&c);
    c.use_prepare = 1;
    c.prepare_fail_at = 3;
    double x[P];
    nlsq_result res;
    int st = solve(nlsq_lm, &c, 2, x, &res, NULL);
    expect_failure(&res, st, NLSQ_ECALLBACK, 7, "prepare refused point 3");
    assert_int_equal(atomic_load(&c.n_prepare), 3);
    assert_int_equal(atomic_load(&c.bad), 0);
    assert_true(isfinite(res.cost) || isnan(res.cost));
}

static int model_fail(void *ctx, const double *theta, size_t n, const double *xd, double *f,
                      double *df)
{
    (void)ctx;
    (void)df;
    if (theta[0] > 2.5) return 5;   /* refuses part of the parameter space */
    for (size_t i = 0; i < n; i++) f[i] = theta[0] * xd[i];
    return 0;
}

static void test_curve_fit_status(void **state)
{
    (void)state;
    double xd[50], yd[50];
    for (int i = 0; i < 50; i++) {
        xd[i] = i;
        yd[i] = 4.0 * i;
    }
    nlsq_curve_problem cp = {.n_params = 1, .n_points = 50, .xdim = 1, .xdata = xd,
                             .ydata = yd, .model = model_fail};
    double theta = 1.0;
    nlsq_result res;
    memset(&res, 0, sizeof res);
    int st = nlsq_curve_fit(&cp, NULL, &theta, NULL, NULL, &res);
    print_message("curve_fit: status %d, callback_status %d: %s\n", st, res.callback_status,
                  res.message);
    assert_int_equal(st, NLSQ_ECALLBACK);
    assert_int_equal(res.callback_status, 5);
    assert_true(theta <= 2.5);
}

static void test_validate(void **state)
{
    (void)state;
    cctx c;
    cctx_init(&c);
    nlsq_problem pb = make_problem(&c);
    pb.prepare_bytes = 16;
    char msg[160];
    const double x0[P] = {1, 1, 0};
    nlsq_options o;
    options(&o, 1);
    assert_int_equal(nlsq_validate(&pb, &o, x0, msg, sizeof msg), NLSQ_EINVAL);
    assert_non_null(strstr(msg, "prepare"));
}

TC_MAIN(cmocka_unit_test(test_prepare_once), cmocka_unit_test(test_prepare_fd),
        cmocka_unit_test(test_scratch_workers), cmocka_unit_test(test_scratch_bitwise),
        cmocka_unit_test(test_eval_error), cmocka_unit_test(test_prepare_error),
        cmocka_unit_test(test_curve_fit_status), cmocka_unit_test(test_validate))
