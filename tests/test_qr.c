/*
 * test_qr.c - the QR (TSQR) accumulator against the normal equations.
 *
 *  vandermonde     a polynomial least-squares fit in monomials on [0, 1]
 *                  (degree 12, 200 points; max/min |R_kk| 1.3e7, so cond(J)
 *                  >= 1e7 and cond(J^T J) >= 1e14), against an independent
 *                  long-double Householder QR of the same data.  The standard
 *                  errors sqrt(diag (J^T J)^-1) at the same x: QR >= 8 digits
 *                  (seen 9.1, also at the default cut), NORMAL at least 4
 *                  fewer (seen 0.3).  The LM coefficients (tight tolerances,
 *                  gtol off): QR >= 3 digits and not worse than NORMAL (seen
 *                  3.8 and 3.2: each LM iteration refines the step from a
 *                  fresh residual, so the parameters are limited by the
 *                  rounding of the residuals more than by the solver).  AUTO
 *                  must switch at the first pass (bitwise QR's result).
 *  determinism     QR with 4-row chunks (many slots): x, cost, covariance and
 *                  counters bitwise the same for 1, 2, 3 and 4 threads.
 *  covariance      a well-conditioned exponential fit: nlsq_covariance at the
 *                  same x from QR and from the normal equations agree to
 *                  1e-12 relative; the LM solutions to 1e-10; AUTO stays
 *                  NORMAL (bitwise the NORMAL result).
 *  sparse          a two-block problem with a sparse column pattern: QR with
 *                  the pattern, QR dense (zeros written out) and NORMAL with
 *                  the pattern give the same x (1e-10) and covariance (1e-8).
 *  robust_loss     soft_l1 with outliers: QR and NORMAL reach the same x (1e-8).
 *  options         an unknown accumulator and QR with dist.reduce are EINVAL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nlsq.h"

/* ------------------------------------------------------------ polynomial */

#define VM 200          /* rows */
#ifndef VP
#define VP 13           /* coefficients: degree 12 */
#endif

typedef struct poly {
    double t[VM], y[VM];
} poly;

static void poly_data(poly *d)
{
    for (size_t i = 0; i < VM; i++) {
        d->t[i] = (double)i / (VM - 1);
        double f = 0.0, tp = 1.0;
        for (size_t j = 0; j < VP; j++, tp *= d->t[i]) f += tp;   /* all coefficients 1 */
        d->y[i] = f + 1e-3 * sin(37.0 * (double)i);
    }
}

static int poly_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                     const nlsq_eval_env *env)
{
    (void)env;
    const poly *d = ctx;
    for (size_t i = 0; i < n; i++) {
        const double t = d->t[row0 + i];
        double f = 0.0, tp = 1.0;
        for (size_t j = 0; j < VP; j++, tp *= t) {
            f += x[j] * tp;
            if (J) J[i * VP + j] = tp;
        }
        r[i] = f - d->y[row0 + i];
    }
    return 0;
}

/* The least-squares coefficients b and the diagonal of (J^T J)^-1 (vdiag)
 * by Householder QR in long double on the same (double) design matrix and
 * data: an independent reference. */
static void poly_reference(const poly *d, long double *b, long double *vdiag, double *cond_est)
{
    static long double A[VM][VP + 1];
    for (size_t i = 0; i < VM; i++) {
        double tpd = 1.0;   /* the callback's double powers, exactly */
        for (size_t j = 0; j < VP; j++, tpd *= d->t[i]) A[i][j] = tpd;
        A[i][VP] = d->y[i];
    }
    for (size_t k = 0; k < VP; k++) {
        long double nrm = 0.0L;
        for (size_t i = k; i < VM; i++) nrm += A[i][k] * A[i][k];
        nrm = sqrtl(nrm);
        long double alpha = A[k][k] > 0 ? -nrm : nrm;
        long double v0 = A[k][k] - alpha, vn = v0 * v0;
        for (size_t i = k + 1; i < VM; i++) vn += A[i][k] * A[i][k];
        for (size_t j = k + 1; j <= VP; j++) {
            long double s = v0 * A[k][j];
            for (size_t i = k + 1; i < VM; i++) s += A[i][k] * A[i][j];
            s = 2.0L * s / vn;
            A[k][j] -= s * v0;
            for (size_t i = k + 1; i < VM; i++) A[i][j] -= s * A[i][k];
        }
        A[k][k] = alpha;
    }
    long double dmax = 0, dmin = INFINITY;
    for (size_t k = VP; k-- > 0;) {
        long double s = A[k][VP];
        for (size_t j = k + 1; j < VP; j++) s -= A[k][j] * b[j];
        b[k] = s / A[k][k];
        if (fabsl(A[k][k]) > dmax) dmax = fabsl(A[k][k]);
        if (fabsl(A[k][k]) < dmin) dmin = fabsl(A[k][k]);
    }
    *cond_est = (double)(dmax / dmin);
    static long double Ri[VP][VP];   /* R^-1, upper triangular */
    for (size_t c = 0; c < VP; c++)
        for (size_t k = VP; k-- > 0;) {
            long double s = k == c ? 1.0L : 0.0L;
            for (size_t j = k + 1; j < VP; j++) s -= A[k][j] * Ri[j][c];
            Ri[k][c] = s / A[k][k];
        }
    for (size_t i = 0; i < VP; i++) {
        vdiag[i] = 0.0L;
        for (size_t j = 0; j < VP; j++) vdiag[i] += Ri[i][j] * Ri[i][j];
    }
}

static void poly_setup(poly *d, int accum, nlsq_problem *pb, nlsq_options *opt)
{
    memset(pb, 0, sizeof *pb);
    pb->n_params = VP;
    pb->n_rows = VM;
    pb->eval = poly_eval;
    pb->ctx = d;
    nlsq_options_init(opt);
    opt->accumulator = accum;
    opt->n_threads = 1;
}

/* digits of sqrt(diag) of the covariance nlsq_covariance gives at x
 * (absolute_sigma: (J^T J)^-1; rcond: the eigenvalue cut) */
static double poly_cov_digits(poly *d, int accum, double rcond, const double *x,
                              const long double *vdiag)
{
    nlsq_problem pb;
    nlsq_options opt;
    poly_setup(d, accum, &pb, &opt);
    opt.absolute_sigma = 1;
    opt.cov_rcond = rcond;
    static double cov[VP * VP];
    if (nlsq_covariance(&pb, &opt, x, cov, NULL) != 0) return 0.0;
    double worst = 17.0;
    for (size_t j = 0; j < VP; j++) {
        long double ref = sqrtl(vdiag[j]);
        long double e = fabsl((long double)sqrt(cov[j * VP + j]) - ref) / ref;
        double dg = e > 0 ? (double)-log10l(e) : e == 0 ? 17.0 : 0.0;   /* NaN: 0 */
        if (dg < worst) worst = dg > 0 ? dg : 0.0;                        /* inf: 0 */
    }
    return worst;
}

static double poly_fit(poly *d, int accum, double *x, nlsq_result *res)
{
    nlsq_problem pb;
    nlsq_options opt;
    poly_setup(d, accum, &pb, &opt);
    /* the cosine test (gtol) stops where cond(J) * cosine is still large: off */
    opt.gtol = 0.0;
    opt.ftol = 0.0;
    opt.xtol = 1e-15;
    opt.max_iter = 2000;
    for (size_t j = 0; j < VP; j++) x[j] = 0.0;
    memset(res, 0, sizeof *res);
    return nlsq_lm(&pb, &opt, x, res);
}

/* min over coefficients of the digits that agree with the reference */
static double digits(const double *x, const long double *b)
{
    double worst = 17.0;
    for (size_t j = 0; j < VP; j++) {
        long double e = fabsl((long double)x[j] - b[j]) / fabsl(b[j]);
        double dg = e > 0 ? (double)-log10l(e) : e == 0 ? 17.0 : 0.0;
        if (dg < worst) worst = dg > 0 ? dg : 0.0;
    }
    return worst;
}

static void test_vandermonde(void **state)
{
    (void)state;
    static poly d;
    poly_data(&d);
    long double b[VP], vdiag[VP];
    double cond;
    poly_reference(&d, b, vdiag, &cond);
    double xn[VP], xq[VP], xa[VP];
    nlsq_result rn, rq, ra;
    int sn = poly_fit(&d, NLSQ_ACCUM_NORMAL, xn, &rn);
    int sq = poly_fit(&d, NLSQ_ACCUM_QR, xq, &rq);
    int sa = poly_fit(&d, NLSQ_ACCUM_AUTO, xa, &ra);
    double dn = digits(xn, b), dq = digits(xq, b);
    printf("degree %d polynomial, %d rows: max/min |R_kk| of the reference %.2e\n", VP - 1, VM,
           cond);
    printf("  NORMAL: status %s, %zu iterations, %.1f digits\n", nlsq_status_name(sn),
           rn.iterations, dn);
    printf("  QR:     status %s, %zu iterations, %.1f digits\n", nlsq_status_name(sq),
           rq.iterations, dq);
    double cn = poly_cov_digits(&d, NLSQ_ACCUM_NORMAL, 1e-30, xq, vdiag);
    double cq = poly_cov_digits(&d, NLSQ_ACCUM_QR, 1e-30, xq, vdiag);
    double cqd = poly_cov_digits(&d, NLSQ_ACCUM_QR, 0.0, xq, vdiag);
    printf("  standard errors ((J^T J)^-1, cut 1e-30): NORMAL %.1f digits, QR %.1f digits "
           "(QR at the default cut: %.1f)\n", cn, cq, cqd);
    assert_true(sq > 0 || sq == NLSQ_STALLED);
    assert_true(cq >= 8.0);
    assert_true(cqd >= 8.0);
    assert_true(cn <= cq - 4.0);
    assert_true(dq >= 3.0 && dq >= dn);
    assert_int_equal(sa, sq);
    assert_memory_equal(xa, xq, sizeof xq);
}

/* ------------------------------------------------------------ exponential */

#define EM 300

typedef struct expo {
    double t[EM], y[EM];
    int outliers;
} expo;

static void expo_data(expo *d, int outliers)
{
    d->outliers = outliers;
    for (size_t i = 0; i < EM; i++) {
        d->t[i] = 0.02 * (double)i;
        d->y[i] = 3.0 * exp(-0.7 * d->t[i]) + 0.5 + 0.01 * sin(11.0 * (double)i);
        if (outliers && i % 37 == 5) d->y[i] += 2.0;
    }
}

static int expo_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                     const nlsq_eval_env *env)
{
    (void)env;
    const expo *d = ctx;
    for (size_t i = 0; i < n; i++) {
        const double t = d->t[row0 + i], e = exp(-x[1] * t);
        r[i] = x[0] * e + x[2] - d->y[row0 + i];
        if (J) {
            J[i * 3 + 0] = e;
            J[i * 3 + 1] = -x[0] * t * e;
            J[i * 3 + 2] = 1.0;
        }
    }
    return 0;
}

static void expo_problem(nlsq_problem *pb, expo *d)
{
    memset(pb, 0, sizeof *pb);
    pb->n_params = 3;
    pb->n_rows = EM;
    pb->eval = expo_eval;
    pb->ctx = d;
}

static int expo_fit(expo *d, int accum, int threads, size_t chunk, int loss, double *x,
                    double *cov, nlsq_result *res)
{
    nlsq_problem pb;
    expo_problem(&pb, d);
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.accumulator = accum;
    opt.n_threads = threads;
    opt.chunk_rows = chunk;
    opt.loss = loss;
    x[0] = 1.0;
    x[1] = 0.2;
    x[2] = 0.0;
    memset(res, 0, sizeof *res);
    res->covariance = cov;
    return nlsq_lm(&pb, &opt, x, res);
}

static double rel_diff(size_t n, const double *a, const double *b)
{
    double w = 0.0;
    for (size_t i = 0; i < n; i++) {
        double s = fabs(a[i]) > fabs(b[i]) ? fabs(a[i]) : fabs(b[i]);
        double e = s > 0 ? fabs(a[i] - b[i]) / s : 0.0;
        if (!(e <= w)) w = e;
    }
    return w;
}

static void test_determinism(void **state)
{
    (void)state;
    static expo d;
    expo_data(&d, 0);
    double x1[3], c1[9];
    nlsq_result r1;
    int s1 = expo_fit(&d, NLSQ_ACCUM_QR, 1, 4, NLSQ_LOSS_LINEAR, x1, c1, &r1);
    assert_true(s1 > 0);
    for (int t = 2; t <= 4; t++) {
        double x[3], c[9];
        nlsq_result r;
        int s = expo_fit(&d, NLSQ_ACCUM_QR, t, 4, NLSQ_LOSS_LINEAR, x, c, &r);
        assert_int_equal(s, s1);
        assert_memory_equal(x, x1, sizeof x);
        assert_memory_equal(c, c1, sizeof c);
        assert_memory_equal(&r.cost, &r1.cost, sizeof r.cost);
        assert_int_equal(r.iterations, r1.iterations);
        assert_int_equal(r.n_jac, r1.n_jac);
        assert_int_equal(r.n_eval, r1.n_eval);
    }
}

static void test_covariance(void **state)
{
    (void)state;
    static expo d;
    expo_data(&d, 0);
    double xn[3], xq[3], xa[3], cn[9], cq[9], ca[9];
    nlsq_result rn, rq, ra;
    assert_true(expo_fit(&d, NLSQ_ACCUM_NORMAL, 1, 0, NLSQ_LOSS_LINEAR, xn, cn, &rn) > 0);
    assert_true(expo_fit(&d, NLSQ_ACCUM_QR, 1, 0, NLSQ_LOSS_LINEAR, xq, cq, &rq) > 0);
    assert_true(expo_fit(&d, NLSQ_ACCUM_AUTO, 1, 0, NLSQ_LOSS_LINEAR, xa, ca, &ra) > 0);
    printf("LM solutions QR vs NORMAL: %.2e relative\n", rel_diff(3, xq, xn));
    assert_true(rel_diff(3, xq, xn) <= 1e-10);
    assert_memory_equal(xa, xn, sizeof xn);   /* well conditioned: AUTO stays NORMAL */
    assert_memory_equal(ca, cn, sizeof cn);
    /* the same x, both accumulators */
    nlsq_problem pb;
    expo_problem(&pb, &d);
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = 1;
    double c1[9], c2[9];
    assert_int_equal(nlsq_covariance(&pb, &opt, xn, c1, NULL), 0);
    opt.accumulator = NLSQ_ACCUM_QR;
    assert_int_equal(nlsq_covariance(&pb, &opt, xn, c2, NULL), 0);
    printf("covariance at the same x, QR vs NORMAL: %.2e relative\n", rel_diff(9, c1, c2));
    assert_true(rel_diff(9, c1, c2) <= 1e-12);
    assert_true(c1[0] > 0 && c1[4] > 0 && c1[8] > 0);
}

static void test_robust_loss(void **state)
{
    (void)state;
    static expo d;
    expo_data(&d, 1);
    double xn[3], xq[3], cn[9], cq[9];
    nlsq_result rn, rq;
    assert_true(expo_fit(&d, NLSQ_ACCUM_NORMAL, 2, 16, NLSQ_LOSS_SOFT_L1, xn, cn, &rn) > 0);
    assert_true(expo_fit(&d, NLSQ_ACCUM_QR, 2, 16, NLSQ_LOSS_SOFT_L1, xq, cq, &rq) > 0);
    printf("soft_l1: x QR vs NORMAL %.2e, covariance %.2e relative\n", rel_diff(3, xq, xn),
           rel_diff(9, cq, cn));
    assert_true(rel_diff(3, xq, xn) <= 1e-8);
    assert_true(rel_diff(9, cq, cn) <= 1e-6);
    assert_true(fabs(xq[1] - 0.7) < 0.01);   /* the outliers are down-weighted */
}

/* ------------------------------------------------------------ sparse pattern */

/* Rows 0 .. SM/2-1: y = b0 exp(-b1 t); rows SM/2 ..: y = b0 exp(-b2 t) + b3.
 * Column pattern {0, 1} and {0, 2, 3}; `dense` asks for full rows instead. */
#define SM 240

typedef struct blocks {
    double t[SM], y[SM];
} blocks;

static size_t blocks_pattern(void *ctx, size_t row0, size_t n, size_t *cols, size_t *k)
{
    (void)ctx;
    if (row0 < SM / 2) {
        cols[0] = 0;
        cols[1] = 1;
        *k = 2;
        return row0 + n <= SM / 2 ? n : SM / 2 - row0;
    }
    cols[0] = 0;
    cols[1] = 2;
    cols[2] = 3;
    *k = 3;
    return n;
}

static int blocks_eval_k(const blocks *d, const double *x, size_t row0, size_t n, double *r,
                         double *J, int dense)
{
    for (size_t i = 0; i < n; i++) {
        const size_t row = row0 + i;
        const double t = d->t[row];
        const int first = row < SM / 2;
        const double e = exp(-(first ? x[1] : x[2]) * t);
        r[i] = x[0] * e + (first ? 0.0 : x[3]) - d->y[row];
        if (!J) continue;
        double g[4] = {e, first ? -x[0] * t * e : 0.0, first ? 0.0 : -x[0] * t * e,
                       first ? 0.0 : 1.0};
        if (dense) memcpy(J + i * 4, g, sizeof g);
        else if (first) { J[i * 2] = g[0]; J[i * 2 + 1] = g[1]; }
        else { J[i * 3] = g[0]; J[i * 3 + 1] = g[2]; J[i * 3 + 2] = g[3]; }
    }
    return 0;
}

static int blocks_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                       const nlsq_eval_env *env)
{
    (void)env;
    return blocks_eval_k(ctx, x, row0, n, r, J, 0);
}

static int blocks_eval_dense(void *ctx, const double *x, size_t row0, size_t n, double *r,
                             double *J,
                             const nlsq_eval_env *env)
{
    (void)env;
    return blocks_eval_k(ctx, x, row0, n, r, J, 1);
}

static int blocks_fit(blocks *d, int accum, int sparse, double *x, double *cov)
{
    nlsq_problem pb;
    memset(&pb, 0, sizeof pb);
    pb.n_params = 4;
    pb.n_rows = SM;
    pb.eval = sparse ? blocks_eval : blocks_eval_dense;
    pb.pattern = sparse ? blocks_pattern : NULL;
    pb.ctx = d;
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.accumulator = accum;
    opt.n_threads = 2;
    opt.chunk_rows = 50;
    const double x0[4] = {1.0, 0.3, 1.0, 0.0};
    memcpy(x, x0, sizeof x0);
    nlsq_result res;
    memset(&res, 0, sizeof res);
    res.covariance = cov;
    return nlsq_lm(&pb, &opt, x, &res);
}

static void test_sparse(void **state)
{
    (void)state;
    static blocks d;
    for (size_t i = 0; i < SM; i++) {
        d.t[i] = 0.05 * (double)(i % (SM / 2));
        d.y[i] = i < SM / 2 ? 2.0 * exp(-0.5 * d.t[i]) : 2.0 * exp(-1.5 * d.t[i]) + 0.3;
        d.y[i] += 0.005 * cos(13.0 * (double)i);
    }
    double xq[4], xd[4], xn[4], cq[16], cd[16], cn[16];
    assert_true(blocks_fit(&d, NLSQ_ACCUM_QR, 1, xq, cq) > 0);
    assert_true(blocks_fit(&d, NLSQ_ACCUM_QR, 0, xd, cd) > 0);
    assert_true(blocks_fit(&d, NLSQ_ACCUM_NORMAL, 1, xn, cn) > 0);
    printf("sparse: x QR-pattern vs QR-dense %.2e, vs NORMAL-pattern %.2e; covariance %.2e, "
           "%.2e\n", rel_diff(4, xq, xd), rel_diff(4, xq, xn), rel_diff(16, cq, cd),
           rel_diff(16, cq, cn));
    assert_true(rel_diff(4, xq, xd) <= 1e-10);
    assert_true(rel_diff(4, xq, xn) <= 1e-10);
    assert_true(rel_diff(16, cq, cd) <= 1e-8);
    assert_true(rel_diff(16, cq, cn) <= 1e-8);
    assert_true(fabs(xq[1] - 0.5) < 0.01 && fabs(xq[2] - 1.5) < 0.01);
}

/* ------------------------------------------------------------ options */

static int sum_reduce(void *ctx, double *buf, size_t n)
{
    (void)ctx;
    (void)buf;
    (void)n;
    return 0;
}

static void test_options(void **state)
{
    (void)state;
    static expo d;
    expo_data(&d, 0);
    nlsq_problem pb;
    expo_problem(&pb, &d);
    nlsq_options opt;
    nlsq_options_init(&opt);
    assert_int_equal(opt.accumulator, NLSQ_ACCUM_NORMAL);
    double x[3] = {1, 0.2, 0};
    opt.accumulator = 7;
    assert_int_equal(nlsq_lm(&pb, &opt, x, NULL), NLSQ_EINVAL);
    opt.accumulator = NLSQ_ACCUM_QR;
    opt.dist.reduce = sum_reduce;
    opt.dist.row_begin = 0;
    opt.dist.row_end = EM;
    assert_int_equal(nlsq_lm(&pb, &opt, x, NULL), NLSQ_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vandermonde),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_covariance),
        cmocka_unit_test(test_sparse),
        cmocka_unit_test(test_robust_loss),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
