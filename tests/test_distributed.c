/* The distributed-accumulation hook (nlsq_options.dist) without MPI: R
 * threads play R processes, each with its own contiguous share of the rows,
 * and a reduce that deposits each buffer, waits for all, and sums them in rank
 * order (what nlsq_mpi does over MPI).  Checks: the fit equals the
 * single-process fit to rounding, all ranks return bitwise the same x, cost
 * and covariance, repeated runs are bitwise equal, and a callback failure on
 * one rank ends the solve with NLSQ_ECALLBACK on every rank. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"
#include "decay_cos_problem.h"

#include <pthread.h>

#define MAXR 4
#define P 4
#define M 30011   /* prime: uneven shares */

typedef struct group {
    int R;
    pthread_barrier_t bar;
    double *bufs[MAXR];
    size_t n;
} group;

typedef struct rank_ctx {
    group *g;
    int rank;
    int fail_rank;     /* this rank's callback fails (on its 3rd call) when == rank */
    int calls;
} rank_ctx;

static int reduce_fn(void *vctx, double *buf, size_t n)
{
    rank_ctx *c = vctx;
    group *g = c->g;
    g->bufs[c->rank] = buf;
    g->n = n;
    pthread_barrier_wait(&g->bar);
    /* every rank computes the same sum in rank order into a private copy */
    double *sum = calloc(n, sizeof *sum);
    for (int r = 0; r < g->R; r++)
        for (size_t i = 0; i < n; i++) sum[i] += g->bufs[r][i];
    pthread_barrier_wait(&g->bar);   /* all have read all buffers */
    memcpy(buf, sum, n * sizeof *sum);
    free(sum);
    return 0;
}

static int eval(void *vctx, const double *x, size_t row0, size_t n, double *r, double *J,
                const nlsq_eval_env *env)
{
    (void)env;
    rank_ctx *c = vctx;
    if (c && c->fail_rank == c->rank && ++c->calls == 3) return 1;
    for (size_t i = 0; i < n; i++) tc_decay_cos_row(x, row0 + i, &r[i], J ? J + 4 * i : NULL);
    return 0;
}

typedef struct job {
    rank_ctx ctx;
    int which;           /* 0 lm, 1 adam, 2 hybrid */
    double x[P], cov[P * P];
    nlsq_result res;
} job;

/* The options of every solve here: one thread, chunks of 1000 rows, short
 * Adam phases. */
static void short_options(nlsq_options *o)
{
    nlsq_options_init(o);
    o->n_threads = 1;
    o->chunk_rows = 1000;
    o->adam.epochs = 4;
    o->hybrid.adam_epochs = 2;
}

static void *run_rank(void *arg)
{
    job *j = arg;
    group *g = j->ctx.g;
    size_t r0 = (size_t)M * (size_t)j->ctx.rank / (size_t)g->R;
    size_t r1 = (size_t)M * (size_t)(j->ctx.rank + 1) / (size_t)g->R;
    nlsq_problem pb = {.n_params = P, .n_rows = M, .eval = eval, .ctx = &j->ctx};
    nlsq_options o;
    short_options(&o);
    o.dist = (nlsq_distributed){reduce_fn, &j->ctx, r0, r1, j->ctx.rank == 0};
    double x0[P] = {1, 1, 0, 0};
    memcpy(j->x, x0, sizeof x0);
    memset(&j->res, 0, sizeof j->res);
    j->res.covariance = j->cov;
    if (j->which == 0) nlsq_lm(&pb, &o, j->x, &j->res);
    else if (j->which == 1) nlsq_adam(&pb, &o, j->x, &j->res);
    else nlsq_hybrid(&pb, &o, j->x, &j->res);
    return NULL;
}

static void run_group(int R, int which, int fail_rank, job *jobs)
{
    group g = {.R = R};
    pthread_barrier_init(&g.bar, NULL, (unsigned)R);
    pthread_t t[MAXR];
    for (int r = 0; r < R; r++) {
        jobs[r].ctx = (rank_ctx){&g, r, fail_rank, 0};
        jobs[r].which = which;
        assert_int_equal(pthread_create(&t[r], NULL, run_rank, &jobs[r]), 0);
    }
    for (int r = 0; r < R; r++) pthread_join(t[r], NULL);
    pthread_barrier_destroy(&g.bar);
}

static void single(int which, double *x, double *cov, nlsq_result *res)
{
    nlsq_problem pb = {.n_params = P, .n_rows = M, .eval = eval, .ctx = NULL};
    nlsq_options o;
    short_options(&o);
    double x0[P] = {1, 1, 0, 0};
    memcpy(x, x0, sizeof x0);
    memset(res, 0, sizeof *res);
    res->covariance = cov;
    if (which == 0) nlsq_lm(&pb, &o, x, res);
    else if (which == 1) nlsq_adam(&pb, &o, x, res);
    else nlsq_hybrid(&pb, &o, x, res);
}

static void check_solver(int which, double tol)
{
    double xs[P], covs[P * P];
    nlsq_result rs;
    single(which, xs, covs, &rs);
    for (int R = 2; R <= 3; R++) {
        job a[MAXR], b[MAXR];
        run_group(R, which, -1, a);
        run_group(R, which, -1, b);
        for (int r = 0; r < R; r++) {
            assert_int_equal(a[r].res.status, rs.status);
            /* all ranks identical, and repeatable */
            assert_memory_equal(a[r].x, a[0].x, sizeof a[0].x);
            assert_memory_equal(a[r].x, b[r].x, sizeof a[0].x);
            assert_true(a[r].res.cost == a[0].res.cost);
            assert_true(a[r].res.iterations == a[0].res.iterations);
            if (which != 1) assert_memory_equal(a[r].cov, a[0].cov, sizeof a[0].cov);
        }
        for (int k = 0; k < P; k++)
            assert_true(fabs(a[0].x[k] - xs[k]) <= tol * (1.0 + fabs(xs[k])));
        assert_true(fabs(a[0].res.cost - rs.cost) <= tol * rs.cost);
        if (which != 1)
            for (int k = 0; k < P * P; k++)
                assert_true(fabs(a[0].cov[k] - covs[k]) <= 1e-6 * (fabs(covs[k]) + 1e-300) + 1e-300);
        printf("  %s, %d ranks: status %s, cost %.15g (1 process %.15g), x0 %.15g (%.15g)\n",
               which == 0 ? "lm" : which == 1 ? "adam" : "hybrid", R,
               nlsq_status_name(a[0].res.status), a[0].res.cost, rs.cost, a[0].x[0], xs[0]);
    }
}

static void test_lm_matches_single(void **st) { (void)st; check_solver(0, 1e-9); }
static void test_adam_matches_single(void **st) { (void)st; check_solver(1, 1e-9); }
static void test_hybrid_matches_single(void **st) { (void)st; check_solver(2, 1e-9); }

static void test_failure_on_one_rank(void **st)
{
    (void)st;
    for (int fail = 0; fail < 3; fail++) {
        job a[MAXR];
        run_group(3, 0, fail, a);
        for (int r = 0; r < 3; r++) {
            assert_int_equal(a[r].res.status, NLSQ_ECALLBACK);
            assert_memory_equal(a[r].x, a[0].x, sizeof a[0].x);
            for (int k = 0; k < P; k++) assert_true(isfinite(a[r].x[k]));
        }
    }
}

static void test_bad_rows_rejected(void **st)
{
    (void)st;
    nlsq_problem pb = {.n_params = P, .n_rows = M, .eval = eval};
    nlsq_options o;
    nlsq_options_init(&o);
    o.dist = (nlsq_distributed){reduce_fn, NULL, 10, M + 1, 1};
    double x[P] = {1, 1, 0, 0};
    nlsq_result res;
    assert_int_equal(nlsq_lm(&pb, &o, x, &res), NLSQ_EINVAL);
}

TC_MAIN(cmocka_unit_test(test_lm_matches_single), cmocka_unit_test(test_adam_matches_single),
        cmocka_unit_test(test_hybrid_matches_single), cmocka_unit_test(test_failure_on_one_rank),
        cmocka_unit_test(test_bad_rows_rejected))
