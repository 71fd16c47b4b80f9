/* curve_fit.c - scipy.optimize.curve_fit on top of nlsq_lm.
 *
 * nlsq_curve_fit wraps the data arrays into an nlsq_problem whose rows are the
 * data points: eval() of rows [row0, row0 + n) calls the model on points
 * row0 .. row0 + n - 1 (xdata + row0 * xdim), then forms
 *     r_i = (f_i - y_i) / sigma_i,   J_ij = (d f_i / d theta_j) / sigma_i.
 * Everything else (chunking, threads, robust loss, bounds, covariance) is
 * nlsq_lm's.
 *
 * Finite differences (analytic_jacobian == 0): the problem declares
 * NLSQ_JAC_CENTRAL with fd_scale 1 (scipy's step) and the engine differences
 * the residuals (src/fdjac.c); r is linear in f, so that is the model's
 * difference divided by sigma_i.
 */
#define _POSIX_C_SOURCE 200809L
#include "nlsq_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct cf_ctx {
    const nlsq_curve_problem *cp;
    double *L;               /* Cholesky factor of sigma_cov (n x n), or NULL */
} cf_ctx;

static int cf_eval(void *vctx, const double *theta, size_t row0, size_t n, double *r, double *J,
                   const nlsq_eval_env *env)
{
    (void)env;   /* the model has its own contract (nlsq_model_fn) */
    cf_ctx *c = vctx;
    const nlsq_curve_problem *cp = c->cp;
    const size_t p = cp->n_params;
    const double *xd = cp->xdata + row0 * cp->xdim;
    /* J is only asked for with analytic_jacobian: otherwise the problem
     * declares NLSQ_JAC_CENTRAL and fdjac.c differences the residuals. */
    int rc = cp->model(cp->ctx, theta, n, xd, r, J);
    if (rc != 0) return rc;

    const double *y = cp->ydata + row0;
    if (cp->sigma) {
        const double *sg = cp->sigma + row0;
        for (size_t i = 0; i < n; i++) {
            r[i] = (r[i] - y[i]) / sg[i];
            if (J) {
                double w = 1.0 / sg[i];
                double *row = J + i * p;
                for (size_t j = 0; j < p; j++) row[j] *= w;
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) r[i] -= y[i];
        /* sigma_cov: the fit runs as one chunk of all points (nlsq_curve_fit) */
        if (c->L) {
            if (row0 != 0 || n != cp->n_points) return NLSQ_ECALLBACK;
            nlsq__whiten_apply(c->L, n, p, r, J);
        }
    }
    return 0;
}

#define FAIL(...) do { status = nlsq__finish(R, NLSQ_EINVAL, __VA_ARGS__); goto out; } while (0)

static void stats_nan(nlsq_fit_stats *st, const nlsq_curve_problem *cp)
{
    if (!st) return;
    st->chi2 = st->reduced_chi2 = st->r_squared = st->aic = st->bic = NAN;
    st->n_points = cp ? cp->n_points : 0;
    st->dof = cp && cp->n_points >= cp->n_params ? cp->n_points - cp->n_params : 0;
}

/* Weighted total sum of squares of y about its weighted mean. */
static double ss_tot(const nlsq_curve_problem *cp)
{
    const size_t n = cp->n_points;
    double sw = 0.0, swy = 0.0;
    for (size_t i = 0; i < n; i++) {
        double w = cp->sigma ? 1.0 / (cp->sigma[i] * cp->sigma[i]) : 1.0;
        sw += w;
        swy += w * cp->ydata[i];
    }
    double ybar = swy / sw, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double w = cp->sigma ? 1.0 / (cp->sigma[i] * cp->sigma[i]) : 1.0;
        double d = cp->ydata[i] - ybar;
        s += w * d * d;
    }
    return s;
}

/* The argument checks of nlsq_curve_fit; 0 or NLSQ_EINVAL with R's message. */
static int check_problem(const nlsq_curve_problem *cp, const double *theta, nlsq_result *R)
{
    int status = 0;
    if (!cp) FAIL("curve problem is NULL");
    if (!theta) FAIL("theta is NULL");
    if (!cp->model) FAIL("model is NULL");
    if (!cp->xdata || !cp->ydata) FAIL("xdata or ydata is NULL");
    if (cp->n_params == 0) FAIL("n_params is 0");
    if (cp->xdim == 0) FAIL("xdim is 0");
    if (cp->n_points < cp->n_params)
        FAIL("fewer points (%zu) than parameters (%zu)", cp->n_points, cp->n_params);
    if (cp->sigma && cp->sigma_cov) FAIL("sigma and sigma_cov are both set");
    {
        size_t nx;
        if (nlsq__mul_size(cp->n_points, cp->xdim, &nx) != 0) FAIL("n_points * xdim overflows");
        for (size_t i = 0; i < nx; i++)
            if (!isfinite(cp->xdata[i])) FAIL("xdata[%zu] is not finite", i);
    }
    for (size_t i = 0; i < cp->n_points; i++) {
        if (!isfinite(cp->ydata[i])) FAIL("ydata[%zu] is not finite", i);
        if (cp->sigma && !(cp->sigma[i] > 0 && isfinite(cp->sigma[i])))
            FAIL("sigma[%zu] = %g: must be finite and > 0", i, cp->sigma[i]);
    }
out:
    return status;
}

/* chi2 at theta: 2 cost, or one residual-only pass without the robust loss. */
static int chi2_at(const nlsq_problem *pb, const nlsq_options *opt, const double *theta,
                   double cost, nlsq_result *R, double *chi2)
{
    if (opt->loss == NLSQ_LOSS_LINEAR) {
        *chi2 = 2.0 * cost;
        return 0;
    }
    nlsq_options lin = *opt;
    lin.loss = NLSQ_LOSS_LINEAR;
    lin.checkpoint_path = NULL;
    nlsq__engine e;
    int rc = nlsq__engine_init(&e, pb, &lin);
    if (rc) return nlsq__finish(R, rc, "cannot allocate chunk buffers for the statistics");
    nlsq__acc acc = {0};
    rc = nlsq__engine_pass(&e, theta, NLSQ__PASS_COST, 0, pb->n_rows, &acc);
    size_t bad_row = e.callback_row;
    if (rc) {
        nlsq__finish(R, rc, "model failed in the statistics pass (chunk at row %zu)", bad_row);
        nlsq__engine_report(&e, R);
    }
    nlsq__engine_free(&e);
    if (rc) return rc;
    *chi2 = acc.cost * 2.0;
    return 0;
}

static int fill_stats(const nlsq_curve_problem *cp, const nlsq_problem *pb, const nlsq_options *opt,
                      const double *theta, const double *L, nlsq_result *R, nlsq_fit_stats *stats)
{
    double chi2 = NAN;
    int rc = chi2_at(pb, opt, theta, R->cost, R, &chi2);
    if (rc) return rc;
    const size_t n = cp->n_points, p = cp->n_params;
    double dn = (double)n, dp = (double)p;
    stats->n_points = n;
    stats->dof = n - p;
    stats->chi2 = chi2;
    stats->reduced_chi2 = n > p ? chi2 / (dn - dp) : NAN;
    double st = L ? nlsq__whiten_ss_tot(&opt->allocator, L, n, cp->ydata) : ss_tot(cp);
    stats->r_squared = st > 0 ? 1.0 - chi2 / st : NAN;
    double ll = chi2 > 0 ? dn * log(chi2 / dn) : -INFINITY;
    stats->aic = ll + 2.0 * dp;
    stats->bic = ll + dp * log(dn);
    return 0;
}

int nlsq_curve_fit(const nlsq_curve_problem *cp, const nlsq_options *opt_in,
                   double *theta, double *cov, nlsq_fit_stats *stats, nlsq_result *res)
{
    nlsq_result local;
    nlsq_result *R = res ? res : &local;
    R->covariance = cov;
    nlsq__result_reset(R, cp ? cp->n_points : 0);
    stats_nan(stats, cp);

    nlsq_options o;
    if (opt_in) o = *opt_in;
    else nlsq_options_init(&o);
    const nlsq_allocator *al = &o.allocator;
    cf_ctx c = {cp, NULL};
    double *ones = NULL;
    int status = check_problem(cp, theta, R);
    if (status) goto out;

    nlsq_problem pb = {.n_params = cp->n_params, .n_rows = cp->n_points, .eval = cf_eval, .ctx = &c,
                       .lower = cp->lower, .upper = cp->upper, .param_names = cp->param_names,
                       .jacobian = cp->analytic_jacobian ? NLSQ_JAC_ANALYTIC : NLSQ_JAC_CENTRAL};
    char msg[160];
    if (nlsq_validate(&pb, &o, theta, msg, sizeof msg) != 0) FAIL("%s", msg);
    if (cp->sigma_cov) {
        /* whitening mixes rows: one chunk of all n points (whiten.c) */
        int rc = nlsq__whiten_init(al, cp->n_points, cp->sigma_cov, &c.L, msg, sizeof msg);
        if (rc) { status = nlsq__finish(R, rc, "%s", msg); goto out; }
        o.chunk_rows = cp->n_points;
        o.memory_budget = 0;
        o.n_threads = 1;
    }
    if (!cp->analytic_jacobian) {
        /* scipy's step, cbrt(DBL_EPSILON) * max(1, |theta_j|): fd_scale 1 */
        ones = nlsq__calloc(al, cp->n_params, sizeof(double));
        if (!ones) {
            status = nlsq__finish(R, NLSQ_ENOMEM, "out of memory for the finite-difference steps");
            goto out;
        }
        for (size_t j = 0; j < cp->n_params; j++) ones[j] = 1.0;
        pb.fd_scale = ones;
    }
    status = nlsq_lm(&pb, &o, theta, R);
    R->covariance = cov;
    if (status < 0 && status != NLSQ_STALLED) goto out;

    const size_t n = cp->n_points, p = cp->n_params;
    if (cov && !o.absolute_sigma && n == p)
        for (size_t k = 0; k < p * p; k++) cov[k] = INFINITY;
    if (stats) {
        int rc = fill_stats(cp, &pb, &o, theta, c.L, R, stats);
        if (rc) status = rc;
    }
out:
    nlsq__free(al, ones);
    nlsq__free(al, c.L);
    R->covariance = cov;
    return status;
}
