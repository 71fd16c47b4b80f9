/*
 * test_loss.c - robust losses (opt.loss / opt.f_scale) against scipy.
 *
 * 1. loss_derivatives: nlsq__loss_eval (src/loss.c) against scipy's closed
 *    forms C^2 rho0(z / C^2) and against central finite differences of rho
 *    (rho') and of rho' (rho''), for every loss and several f_scale values.
 * 2. vs_scipy_<loss>: an exponential decay with 10 % gross outliers (m = 80),
 *    solved by scipy.optimize.least_squares(method='trf', loss=L, f_scale=C,
 *    ftol = xtol = gtol = 1e-15) in tests/scipy_refs/losses.py (its output
 *    is tests/scipy_refs/losses.inc) and by nlsq_lm with the same loss: x to
 *    1e-6 relative, cost to 1e-8 relative; the reported cost equals
 *    0.5 sum C^2 rho0(r^2/C^2) recomputed here, and the true gradient
 *    sum rho'(r_i^2) r_i J_i is ~0 at the returned x (so the reweighting
 *    leads to the robust minimum, not to a point of some other objective).
 *    warm_<loss>: the same, started from the linear-loss solution instead of
 *    x0 (the same minimum as scipy's run from x0 is reached).
 * 3. threads_bitwise: a robust solve gives bitwise the same x with 1 and 3
 *    threads (small chunks).
 *
 * The hard cases are huber, cauchy and arctan with f_scale = 0.1 from x0: at
 * x0 every residual is an outlier (u = r^2/C^2 > 1), where rho' + 2 z rho''
 * <= 0, so every Jacobian row is scaled by sqrt(EPS) (scipy's clamp) and
 * J^T J ~ 1e-14; the LM must raise lambda enormously for the first steps and
 * then lower it again once rows become inliers.  An earlier src/lm.c kept
 * the huge lambda and stopped on XTOL at iteration 3; these cases guard that.
 */
#include "common.h"

#include <float.h>

#include "nlsq_internal.h"

/* The data and scipy's answers: the output of tests/scipy_refs/losses.py. */
#include "scipy_refs/losses.inc"

#define N_REFS (sizeof loss_refs / sizeof loss_refs[0])
#define X_RTOL 1e-6
#define COST_RTOL 1e-8

/* ------------------------------------------------------------ closed forms */

/* scipy's rho0(u) (u = z / C^2) and its first two derivatives */
static void rho0_ref(int loss, double u, double r[3])
{
    switch (loss) {
    case NLSQ_LOSS_SOFT_L1:
        r[0] = 2.0 * (sqrt(1.0 + u) - 1.0);
        r[1] = pow(1.0 + u, -0.5);
        r[2] = -0.5 * pow(1.0 + u, -1.5);
        break;
    case NLSQ_LOSS_HUBER:
        if (u <= 1.0) { r[0] = u; r[1] = 1.0; r[2] = 0.0; }
        else { r[0] = 2.0 * sqrt(u) - 1.0; r[1] = pow(u, -0.5); r[2] = -0.5 * pow(u, -1.5); }
        break;
    case NLSQ_LOSS_CAUCHY:
        r[0] = log1p(u);   /* scipy: np.log1p(z) */
        r[1] = 1.0 / (1.0 + u);
        r[2] = -1.0 / ((1.0 + u) * (1.0 + u));
        break;
    case NLSQ_LOSS_ARCTAN:
        r[0] = atan(u);
        r[1] = 1.0 / (1.0 + u * u);
        r[2] = -2.0 * u / ((1.0 + u * u) * (1.0 + u * u));
        break;
    default:
        r[0] = u; r[1] = 1.0; r[2] = 0.0;
        break;
    }
}

/* rho(z) with f_scale C, as scipy's construct_loss_function applies it */
static void rho_ref(int loss, double C, double z, double r[3])
{
    rho0_ref(loss, z / (C * C), r);
    r[0] *= C * C;
    r[2] /= C * C;
}

static double close_rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-300); }

static void test_loss_derivatives(void **state)
{
    (void)state;
    const int losses[] = {NLSQ_LOSS_LINEAR, NLSQ_LOSS_SOFT_L1, NLSQ_LOSS_HUBER,
                          NLSQ_LOSS_CAUCHY, NLSQ_LOSS_ARCTAN};
    const char *names[] = {"linear", "soft_l1", "huber", "cauchy", "arctan"};
    const double scales[] = {0.1, 1.0, 3.7};
    const double us[] = {0.0, 1e-6, 0.01, 0.3, 0.97, 1.03, 2.5, 17.0, 400.0, 1e5};
    for (size_t l = 0; l < 5; l++) {
        double w_val = 0, w_d1 = 0, w_d2 = 0, w_fd1 = 0, w_fd2 = 0;
        for (size_t s = 0; s < 3; s++) {
            double C = scales[s];
            for (size_t k = 0; k < sizeof us / sizeof us[0]; k++) {
                double z = us[k] * C * C;
                double rho, d1, d2, ref[3];
                nlsq__loss_eval(losses[l], C, z, &rho, &d1, &d2);
                rho_ref(losses[l], C, z, ref);
                /* closed forms (scipy's formulas) */
                double e0 = z > 0 ? close_rel(rho, ref[0]) : fabs(rho - ref[0]);
                double e1 = close_rel(d1, ref[1]);
                double e2 = ref[2] != 0 ? close_rel(d2, ref[2]) : fabs(d2);
                if (e0 > w_val) w_val = e0;
                if (e1 > w_d1) w_d1 = e1;
                if (e2 > w_d2) w_d2 = e2;
                assert_true(e0 <= 1e-13);
                assert_true(e1 <= 1e-13);
                assert_true(e2 <= 1e-13);
                /* every loss behaves like z near 0: rho(0) = 0, rho'(0) = 1 */
                if (z == 0.0) {
                    assert_true(rho == 0.0);
                    assert_true(fabs(d1 - 1.0) <= 1e-15);
                    continue;
                }
                /* finite differences of rho and rho' in z (central, relative step) */
                double h = 1e-5 * z;
                double rp, rm, d1p, d1m, t;
                nlsq__loss_eval(losses[l], C, z + h, &rp, &d1p, &t);
                nlsq__loss_eval(losses[l], C, z - h, &rm, &d1m, &t);
                double fd1 = (rp - rm) / (2 * h), fd2 = (d1p - d1m) / (2 * h);
                /* FD error ~ h^2 rho''' + (rounding of rho) / h, and rho carries an
                 * absolute rounding error ~ eps (|rho| + C^2) (soft_l1's
                 * 2 C^2 (sqrt(1 + u) - 1) cancels for small u, as scipy's does). */
                double sc1 = fabs(d1) + (fabs(rho) + C * C) / z;
                double sc2 = fabs(d2) + (fabs(d1) + 1.0) / z;
                double tol1 = 1e-8 * sc1, tol2 = 1e-6 * sc2;
                double a1 = fabs(fd1 - d1), a2 = fabs(fd2 - d2);
                if (a1 / sc1 > w_fd1) w_fd1 = a1 / sc1;
                if (a2 / sc2 > w_fd2) w_fd2 = a2 / sc2;
                assert_true(a1 <= tol1);
                assert_true(a2 <= tol2);
            }
        }
        printf("  %-8s closed form: rho %.1e d1 %.1e d2 %.1e   FD: d1 %.1e d2 %.1e (scaled)\n",
               names[l], w_val, w_d1, w_d2, w_fd1, w_fd2);
    }
    /* huber is C^1 at u = 1 */
    double r1, a1, b1, r2, a2, b2;
    nlsq__loss_eval(NLSQ_LOSS_HUBER, 0.5, 0.25 * (1 - 1e-12), &r1, &a1, &b1);
    nlsq__loss_eval(NLSQ_LOSS_HUBER, 0.5, 0.25 * (1 + 1e-12), &r2, &a2, &b2);
    assert_true(fabs(r1 - r2) <= 1e-12 && fabs(a1 - a2) <= 1e-12);
}

/* ------------------------------------------------------------ the problem */

static int eval_exp(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                    const nlsq_eval_env *env)
{
    (void)env;
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        double t = loss_t[row0 + i], e = exp(-x[1] * t);
        r[i] = x[0] * e + x[2] - loss_y[row0 + i];
        if (J) {
            J[i * 3 + 0] = e;
            J[i * 3 + 1] = -x[0] * t * e;
            J[i * 3 + 2] = 1.0;
        }
    }
    return 0;
}

static nlsq_options loss_options(const loss_ref *ref)
{
    nlsq_options o;
    nlsq_options_init(&o);
    o.ftol = o.xtol = o.gtol = 1e-15;
    o.max_iter = 1000;
    o.n_threads = 1;
    o.loss = ref->loss;
    o.f_scale = ref->f_scale;
    return o;
}

static void solve_and_check(const loss_ref *ref, const double *start, const char *tag)
{
    nlsq_problem pb = {.n_params = 3, .n_rows = LOSS_M, .eval = eval_exp};
    nlsq_options o = loss_options(ref);
    double x[3];
    memcpy(x, start, sizeof x);
    nlsq_result res;
    memset(&res, 0, sizeof res);
    int st = nlsq_lm(&pb, &o, x, &res);

    double ex = 0.0;
    for (int j = 0; j < 3; j++) ex = fmax(ex, fabs(x[j] - ref->x[j]) / fabs(ref->x[j]));
    double ec = fabs(res.cost - ref->cost) / ref->cost;

    /* independent cost and true gradient at x */
    double r[LOSS_M], J[LOSS_M * 3], cost = 0.0, g[3] = {0, 0, 0}, gs[3] = {0, 0, 0};
    eval_exp(NULL, x, 0, LOSS_M, r, J, NULL);
    for (size_t i = 0; i < LOSS_M; i++) {
        double q[3];
        rho_ref(ref->loss, ref->f_scale, r[i] * r[i], q);
        cost += 0.5 * q[0];
        for (int j = 0; j < 3; j++) {
            g[j] += q[1] * r[i] * J[i * 3 + j];
            gs[j] += fabs(q[1] * r[i] * J[i * 3 + j]);
        }
    }
    double eg = 0.0;
    for (int j = 0; j < 3; j++) eg = fmax(eg, fabs(g[j]) / gs[j]);
    double ecost = fabs(res.cost - cost) / cost;

    printf("  %-4s %-8s C=%-4g %-15s it %3zu  x rel err %.2e  cost %.15g (scipy %.15g, rel %.2e)  "
           "cost recomputed rel %.1e  |grad|/sum|terms| %.1e\n",
           tag, ref->name, ref->f_scale, nlsq_status_name(st), res.iterations, ex, res.cost, ref->cost,
           ec, ecost, eg);
    assert_true(st > 0);
    assert_true(ecost <= 1e-13);
    assert_true(eg <= 1e-6);
    assert_true(ex <= X_RTOL);
    assert_true(ec <= COST_RTOL);
}

static void test_vs_scipy(void **state)
{
    solve_and_check(*state, loss_x0, "x0");
}

static void test_warm(void **state)
{
    const loss_ref *ref = *state;
    const double *xlin = loss_refs[0].x;   /* scipy's linear-loss solution */
    assert_int_equal(loss_refs[0].loss, NLSQ_LOSS_LINEAR);
    solve_and_check(ref, xlin, "warm");
}

static void test_threads_bitwise(void **state)
{
    (void)state;
    nlsq_problem pb = {.n_params = 3, .n_rows = LOSS_M, .eval = eval_exp};
    for (size_t k = 0; k < N_REFS; k++) {
        nlsq_options o = loss_options(&loss_refs[k]);
        o.chunk_rows = 7;
        double x1[3], x3[3];
        tc_expect_threads_bitwise(nlsq_lm, &pb, &o, loss_x0, 3, x1, x3, NULL, NULL);
    }
}

int main(void)
{
    struct CMUnitTest tests[2 + 2 * N_REFS];
    char names[2 * N_REFS][64];
    size_t t = 0;
    tc_add_test(tests, &t, "loss_derivatives", test_loss_derivatives, NULL);
    for (size_t k = 0; k < N_REFS; k++) {
        snprintf(names[k], sizeof names[k], "vs_scipy_%s_fscale_%g", loss_refs[k].name,
                 loss_refs[k].f_scale);
        tc_add_test(tests, &t, names[k], test_vs_scipy, (void *)&loss_refs[k]);
    }
    for (size_t k = 0; k < N_REFS; k++) {
        snprintf(names[N_REFS + k], sizeof names[0], "warm_%s_fscale_%g", loss_refs[k].name,
                 loss_refs[k].f_scale);
        tc_add_test(tests, &t, names[N_REFS + k], test_warm, (void *)&loss_refs[k]);
    }
    tc_add_test(tests, &t, "threads_bitwise", test_threads_bitwise, NULL);
    return _cmocka_run_group_tests("loss", tests, t, NULL, NULL);
}
