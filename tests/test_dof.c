/* The degrees of freedom and the scaled covariance the library reports
 * (nlsq_eval_env.n_obs, res.n_obs / n_free / dof / reduced_chi2, the
 * covariance s^2 (J^T J)^-1).
 *
 * A quadratic y = b0 + b1 t + b2 t^2 over m rows, of which some are excluded
 * (residual and Jacobian row 0, 0 observations declared) and some stand for
 * two equal observations (residual scaled by sqrt 2, 2 declared).  The
 * reference is independent of the library: the dense least-squares fit of
 * the data with the excluded rows removed and the double rows written twice,
 * solved in closed form here (3x3 normal equations, cofactor inverse), with
 * s^2 = SS / (N - p) over those N observations.  Checked through LM at 1 and
 * 3 threads with small chunks, forward differences (whose shifted points get
 * no count), nlsq_covariance, the hybrid solver, a fixed parameter (not
 * counted) and absolute_sigma (the unscaled covariance). */
#include "common.h"

#define M 600

typedef struct lin {
    double t[M], y[M];
    size_t w[M];          /* observations of each row: 0 (excluded), 1, 2 */
} lin;

static void lin_make(lin *d)
{
    for (size_t i = 0; i < M; i++) {
        double t = (double)i / M;
        d->t[i] = t;
        double noise = 0.05 * ((double)((i * 7919u) % 1000) / 1000.0 - 0.5);
        d->y[i] = 1.5 - 2.0 * t + 0.75 * t * t + noise;
        d->w[i] = i % 7 == 3 ? 0 : (i % 11 == 5 ? 2 : 1);
        if (d->w[i] == 0) d->y[i] = NAN;   /* what an excluded entry looks like */
    }
}

static int lin_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                    const nlsq_eval_env *env)
{
    const lin *d = ctx;
    size_t obs = 0;
    for (size_t q = 0; q < n; q++) {
        size_t i = row0 + q;
        double t = d->t[i], s = d->w[i] == 2 ? sqrt(2.0) : (double)d->w[i];
        obs += d->w[i];
        r[q] = d->w[i] ? s * (x[0] + x[1] * t + x[2] * t * t - d->y[i]) : 0.0;
        if (J) {
            J[q * 3 + 0] = s;
            J[q * 3 + 1] = s * t;
            J[q * 3 + 2] = s * t * t;
        }
    }
    if (env->n_obs) *env->n_obs = obs;
    return 0;
}

/* The dense reference over the N observations: beta, s^2 (or 1), the
 * covariance of the k = 2 or 3 free parameters (b2 held at b2_fixed when k
 * is 2), and N. */
typedef struct ref {
    double beta[3], s2, cov[9];
    size_t N;
} ref;

/* inv = A^-1 for the leading k x k block (k = 2 or 3) of a row-major 3 x 3 A. */
static void inverse_k(const double *A, double *inv, size_t k)
{
    if (k == 3) {
        tc_inv3(A, inv);
        return;
    }
    double det = A[0] * A[4] - A[1] * A[3];
    memset(inv, 0, 9 * sizeof *inv);
    inv[0] = A[4] / det;
    inv[4] = A[0] / det;
    inv[1] = inv[3] = -A[1] / det;
}

static void reference(const lin *d, size_t k, double b2_fixed, ref *out)
{
    double A[9] = {0}, c[3] = {0}, inv[9];
    out->N = 0;
    for (size_t i = 0; i < M; i++)
        for (size_t rep = 0; rep < d->w[i]; rep++) {   /* excluded rows removed, doubles twice */
            double t = d->t[i], f[3] = {1.0, t, t * t};
            double y = k == 2 ? d->y[i] - b2_fixed * t * t : d->y[i];
            for (size_t a = 0; a < 3; a++) {
                c[a] += f[a] * y;
                for (size_t b = 0; b < 3; b++) A[a * 3 + b] += f[a] * f[b];
            }
            out->N++;
        }
    inverse_k(A, inv, k);
    for (size_t a = 0; a < 3; a++) {
        out->beta[a] = 0.0;
        for (size_t b = 0; b < k; b++) out->beta[a] += inv[a * 3 + b] * c[b];
    }
    if (k == 2) out->beta[2] = b2_fixed;
    double ss = 0.0;
    for (size_t i = 0; i < M; i++) {
        if (!d->w[i]) continue;
        double t = d->t[i], e = out->beta[0] + out->beta[1] * t + out->beta[2] * t * t - d->y[i];
        ss += (double)d->w[i] * e * e;
    }
    out->s2 = ss / (double)(out->N - k);
    for (size_t a = 0; a < 9; a++) out->cov[a] = out->s2 * inv[a];
}

static void check(const char *what, const nlsq_result *res, const double *x, const double *cov,
                  const ref *rf, size_t k, double scale)
{
    printf("  %-22s n_obs %zu (reference N %zu), n_free %zu, dof %.0f, reduced chi2 %.15g / %.15g,"
           " sd(b1) %.6e / %.6e\n", what, res->n_obs, rf->N, res->n_free, res->dof,
           res->reduced_chi2, rf->s2, sqrt(cov[4]), sqrt(scale * rf->cov[4]));
    assert_int_equal(res->n_obs, rf->N);
    assert_int_equal(res->n_free, k);
    assert_true(res->dof == (double)rf->N - (double)k);
    assert_true(fabs(res->reduced_chi2 - rf->s2) <= 1e-10 * rf->s2);
    for (size_t a = 0; a < 3; a++) {
        if (x) assert_true(fabs(x[a] - rf->beta[a]) <= 1e-9 * (1.0 + fabs(rf->beta[a])));
        for (size_t b = 0; b < 3; b++) {
            double want = a < k && b < k ? scale * rf->cov[a * 3 + b] : 0.0;
            assert_true(fabs(cov[a * 3 + b] - want) <= 1e-9 * sqrt(scale * rf->cov[a * 3 + a] *
                                                                   rf->cov[b * 3 + b] * scale));
        }
    }
}

static lin g_d;

static void test_lm_excluded_rows(void **st)
{
    (void)st;
    lin_make(&g_d);
    ref rf;
    reference(&g_d, 3, 0.0, &rf);
    assert_true(rf.N < M);   /* the data do exclude rows, and count double ones */
    nlsq_problem pb = {.n_params = 3, .n_rows = M, .eval = lin_eval, .ctx = &g_d};
    int threads[2] = {1, 3};
    for (int v = 0; v < 2; v++) {
        nlsq_options o;
        nlsq_options_init(&o);
        o.n_threads = threads[v];
        o.chunk_rows = 17;
        double x[3] = {0, 0, 0}, cov[9];
        nlsq_result res = {.covariance = cov};
        assert_true(nlsq_lm(&pb, &o, x, &res) > 0);
        check(v ? "lm, 3 threads" : "lm, 1 thread", &res, x, cov, &rf, 3, 1.0);
        /* nlsq_covariance at the solution: the same count and scale */
        double cov2[9];
        nlsq_result r2;
        assert_int_equal(nlsq_covariance(&pb, &o, x, cov2, &r2), 0);
        check("covariance", &r2, NULL, cov2, &rf, 3, 1.0);
        /* absolute_sigma: the unscaled (J^T J)^-1, the same dof */
        o.absolute_sigma = 1;
        assert_int_equal(nlsq_covariance(&pb, &o, x, cov2, &r2), 0);
        check("covariance, absolute", &r2, NULL, cov2, &rf, 3, 1.0 / rf.s2);
    }
}

static void test_fd_and_hybrid(void **st)
{
    (void)st;
    lin_make(&g_d);
    ref rf;
    reference(&g_d, 3, 0.0, &rf);
    nlsq_problem pb = {.n_params = 3, .n_rows = M, .eval = lin_eval, .ctx = &g_d,
                       .jacobian = NLSQ_JAC_FORWARD};
    nlsq_options o;
    nlsq_options_init(&o);
    o.n_threads = 2;
    o.chunk_rows = 50;
    double x[3] = {0, 0, 0}, cov[9];
    nlsq_result res = {.covariance = cov};
    assert_true(nlsq_lm(&pb, &o, x, &res) > 0);
    /* forward differences: the Jacobian to ~1e-8, the count exact */
    assert_int_equal(res.n_obs, rf.N);
    assert_true(res.dof == (double)rf.N - 3.0);
    assert_true(fabs(res.reduced_chi2 - rf.s2) <= 1e-8 * rf.s2);
    assert_true(fabs(cov[4] - rf.cov[4]) <= 1e-5 * rf.cov[4]);
    pb.jacobian = NLSQ_JAC_ANALYTIC;
    double xh[3] = {0, 0, 0};
    nlsq_result rh = {.covariance = cov};
    o.hybrid.adam_epochs = 3;
    assert_true(nlsq_hybrid(&pb, &o, xh, &rh) > 0);
    check("hybrid", &rh, xh, cov, &rf, 3, 1.0);
}

static void test_fixed_parameter(void **st)
{
    (void)st;
    lin_make(&g_d);
    ref rf;
    const double b2 = 0.6;
    reference(&g_d, 2, b2, &rf);
    const double lo[3] = {-INFINITY, -INFINITY, b2}, hi[3] = {INFINITY, INFINITY, b2};
    nlsq_problem pb = {.n_params = 3, .n_rows = M, .eval = lin_eval, .ctx = &g_d,
                       .lower = lo, .upper = hi};
    nlsq_options o;
    nlsq_options_init(&o);
    double x[3] = {0, 0, b2}, cov[9];
    nlsq_result res = {.covariance = cov};
    assert_true(nlsq_lm(&pb, &o, x, &res) > 0);
    check("lm, b2 fixed", &res, x, cov, &rf, 2, 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_lm_excluded_rows),
                                       cmocka_unit_test(test_fd_and_hybrid),
                                       cmocka_unit_test(test_fixed_parameter)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
