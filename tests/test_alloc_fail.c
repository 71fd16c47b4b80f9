/* Allocation-failure injection: fail the 1st, 2nd, ... N-th allocation of a
 * complete solve in turn; every run must return NLSQ_ENOMEM (or succeed once
 * N is past the last allocation), keep x finite, and free everything it
 * allocated (live bytes back to 0; ASan/LSan also watch this file).  The
 * same for nlsq_covariance, nlsq_covariance_robust (its message says
 * memory) and nlsq_profile_test, whose bootstrap may instead succeed with
 * the clean answer when the failed block was its optional cache. */
#include "common.h"

typedef struct counting_alloc {
    size_t n_calls;      /* allocations attempted */
    size_t fail_at;      /* 1-based index of the allocation to fail; 0 = never */
    size_t live;         /* bytes currently allocated */
    size_t n_failed;
} counting_alloc;

/* Each block carries its size in a 16-byte header (keeps double alignment). */
static void *ca_alloc(void *ctx, size_t size)
{
    counting_alloc *c = ctx;
    c->n_calls++;
    if (c->fail_at && c->n_calls == c->fail_at) { c->n_failed++; return NULL; }
    unsigned char *p = malloc(size + 16);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size);
    c->live += size;
    return p + 16;
}

static void ca_free(void *ctx, void *ptr)
{
    counting_alloc *c = ctx;
    if (!ptr) return;
    unsigned char *base = (unsigned char *)ptr - 16;
    size_t old;
    memcpy(&old, base, sizeof old);
    c->live -= old;
    free(base);
}

/* y = a exp(-b t) + c sin(t) + d, m rows generated on the fly. */
static int eval4(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                 const nlsq_eval_env *env)
{
    (void)env;
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        double t = 0.01 * (double)(row0 + i);
        double y = 2.0 * exp(-0.7 * t) + 0.3 * sin(t) + 1.0 + 1e-3 * cos(37.0 * t);
        double e = exp(-x[1] * t);
        r[i] = x[0] * e + x[2] * sin(t) + x[3] - y;
        if (J) {
            double *Ji = J + 4 * i;
            Ji[0] = e;
            Ji[1] = -x[0] * t * e;
            Ji[2] = sin(t);
            Ji[3] = 1.0;
        }
    }
    return 0;
}

/* Default options whose allocations go through c. */
static nlsq_options counted_options(counting_alloc *c)
{
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.allocator = (nlsq_allocator){ca_alloc, ca_free, c};
    return opt;
}

typedef int (*solver_fn)(const nlsq_problem *, const nlsq_options *, double *, nlsq_result *);

static int g_accumulator = NLSQ_ACCUM_NORMAL;   /* opt.accumulator of the sweeps */

/* Run solver with allocation k failing, for k = 1, 2, ... until a run makes
 * no failing call; returns how many failure points were exercised. */
static size_t sweep(solver_fn solve, int n_threads, int want_cov, int expect_ok_status)
{
    nlsq_problem pb = {.n_params = 4, .n_rows = 20000, .eval = eval4};
    double lower[4] = {0, 0, -10, -10}, upper[4] = {10, 10, 10, 10};
    pb.lower = lower;
    pb.upper = upper;
    size_t exercised = 0;
    for (size_t k = 1; k < 10000; k++) {
        counting_alloc c = {.fail_at = k};
        nlsq_options opt = counted_options(&c);
        tc_short_runs(&opt, n_threads, 1000, 3, 2);
        opt.accumulator = g_accumulator;
        double x[4] = {1, 1, 0, 0}, cov[16];
        nlsq_result res = {0};
        res.covariance = want_cov ? cov : NULL;
        int st = solve(&pb, &opt, x, &res);
        assert_int_equal(st, res.status);
        assert_int_equal(c.live, 0);                 /* nothing leaked */
        for (int j = 0; j < 4; j++) assert_true(isfinite(x[j]));
        if (c.n_failed == 0) {                       /* past the last allocation */
            if (expect_ok_status) assert_true(st >= 0);
            break;
        }
        exercised++;
        if (st != NLSQ_ENOMEM) {
            fprintf(stderr, "allocation %zu failed but status %d (%s): %s\n", k, st,
                    nlsq_status_name(st), res.message);
        }
        assert_int_equal(st, NLSQ_ENOMEM);
        assert_true(res.message[0] != '\0');
    }
    return exercised;
}

static void test_lm_alloc_failures(void **state)
{
    (void)state;
    size_t n1 = sweep(nlsq_lm, 1, 1, 1);
    size_t n2 = sweep(nlsq_lm, 2, 1, 1);
    printf("LM: %zu allocation failure points (1 thread), %zu (2 threads), all NLSQ_ENOMEM, no leak\n",
           n1, n2);
    assert_true(n1 >= 3);
    assert_true(n2 >= n1);
    g_accumulator = NLSQ_ACCUM_QR;
    size_t q1 = sweep(nlsq_lm, 1, 1, 1), q2 = sweep(nlsq_lm, 2, 1, 1);
    g_accumulator = NLSQ_ACCUM_AUTO;
    size_t a1 = sweep(nlsq_lm, 2, 1, 1);
    g_accumulator = NLSQ_ACCUM_NORMAL;
    printf("LM with QR: %zu (1 thread), %zu (2 threads); AUTO: %zu (2 threads)\n", q1, q2, a1);
    assert_true(q1 > n1);   /* the QR buffers are allocations of their own */
    assert_true(q2 >= q1 && a1 > n2);
}

static void test_covariance_alloc_failures(void **state)
{
    (void)state;
    nlsq_problem pb = {.n_params = 4, .n_rows = 5000, .eval = eval4};
    size_t exercised = 0;
    for (size_t k = 1; k < 1000; k++) {
        counting_alloc c = {.fail_at = k};
        nlsq_options opt = counted_options(&c);
        double x[4] = {2, 0.7, 0.3, 1}, cov[16];
        int st = nlsq_covariance(&pb, &opt, x, cov, NULL);
        assert_int_equal(c.live, 0);
        if (c.n_failed == 0) { assert_int_equal(st, 0); break; }
        exercised++;
        assert_int_equal(st, NLSQ_ENOMEM);
    }
    assert_true(exercised >= 2);
}

/* Clusters of 100 rows, and a second id per row (row % 7 of another 7). */
static int ids2(void *ctx, size_t row0, size_t n, size_t *ia, size_t *ib)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        ia[i] = (row0 + i) / 100;
        ib[i] = 20 + (row0 + i) % 7;
    }
    return 0;
}

/* nlsq_covariance_robust (two-way clusters): every failure NLSQ_ENOMEM with
 * a message that says memory, nothing leaked. */
static void test_robust_alloc_failures(void **state)
{
    (void)state;
    nlsq_problem pb = {.n_params = 4, .n_rows = 2000, .eval = eval4};
    nlsq_clusters cl = {.n_clusters = 27, .ids = ids2};
    size_t exercised = 0;
    for (size_t k = 1; k < 1000; k++) {
        counting_alloc c = {.fail_at = k};
        nlsq_options opt = counted_options(&c);
        double x[4] = {2, 0.7, 0.3, 1}, cov[16];
        nlsq_result res = {0};
        int st = nlsq_covariance_robust(&pb, &opt, &cl, x, cov, &res);
        assert_int_equal(c.live, 0);
        if (c.n_failed == 0) { assert_int_equal(st, 0); break; }
        exercised++;
        assert_int_equal(st, NLSQ_ENOMEM);
        if (!strstr(res.message, "memory") && !strstr(res.message, "allocate"))
            fail_msg("allocation %zu: message \"%s\" does not say memory", k, res.message);
    }
    printf("robust covariance: %zu allocation failure points, all NLSQ_ENOMEM, no leak\n",
           exercised);
    assert_true(exercised >= 4);
}

/* nlsq_profile_test (3 replicates, clusters): every failure either
 * NLSQ_ENOMEM or, where the failed block was the bootstrap's cache of
 * residuals (it evaluates them again instead), the clean run's D and
 * replicates exactly; nothing leaked. */
static void test_bootstrap_alloc_failures(void **state)
{
    (void)state;
    nlsq_problem pb = {.n_params = 4, .n_rows = 2000, .eval = eval4};
    nlsq_clusters cl = {.n_clusters = 27, .ids = ids2};
    nlsq_profile_boot bo = {.n_boot = 3, .seed = 9, .clusters = &cl};
    const double x[4] = {2.0, 0.7, 0.3, 1.0};
    double clean[3], cleanD = NAN;
    size_t exercised = 0, fell_back = 0;
    for (size_t k = 0; k < 5000; k++) {   /* k = 0: the clean run */
        counting_alloc c = {.fail_at = k};
        nlsq_options opt = counted_options(&c);
        double xh[4], d[3];
        memcpy(xh, x, sizeof xh);
        nlsq_profile_test_result out;
        int st = nlsq_profile_test(&pb, &opt, &bo, xh, 1, 0.72, &out, d);
        assert_int_equal(c.live, 0);
        if (k == 0) {
            assert_int_equal(st, 0);
            memcpy(clean, d, sizeof clean);
            cleanD = out.D;
            continue;
        }
        if (c.n_failed == 0) { assert_int_equal(st, 0); break; }
        exercised++;
        if (st == 0) {   /* the cache refused: the same answer the long way */
            fell_back++;
            assert_true(out.D == cleanD);
            for (int b = 0; b < 3; b++)
                if (fabs(d[b] - clean[b]) > 1e-9 * fmax(1.0, clean[b]))
                    fail_msg("allocation %zu: D*_%d %.15g, clean %.15g", k, b, d[b], clean[b]);
        } else {
            assert_int_equal(st, NLSQ_ENOMEM);
        }
    }
    printf("bootstrap test: %zu allocation failure points (%zu fell back to re-evaluation), "
           "the rest NLSQ_ENOMEM, no leak\n", exercised, fell_back);
    assert_true(exercised >= 10 && fell_back >= 1);
}

static int adam_or_skip(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res)
{
    return nlsq_adam(pb, opt, x, res);
}

static int hybrid_or_skip(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res)
{
    return nlsq_hybrid(pb, opt, x, res);
}

static void test_adam_hybrid_alloc_failures(void **state)
{
    (void)state;
    size_t na = sweep(adam_or_skip, 1, 0, 0);
    size_t nh = sweep(hybrid_or_skip, 1, 1, 0);
    printf("Adam: %zu, hybrid: %zu allocation failure points, all NLSQ_ENOMEM, no leak\n", na, nh);
    assert_true(na >= 1);
    assert_true(nh >= 1);
}

TC_MAIN(cmocka_unit_test(test_lm_alloc_failures), cmocka_unit_test(test_covariance_alloc_failures),
        cmocka_unit_test(test_robust_alloc_failures), cmocka_unit_test(test_bootstrap_alloc_failures),
        cmocka_unit_test(test_adam_hybrid_alloc_failures))
