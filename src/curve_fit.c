/* curve_fit.c - scipy.optimize.curve_fit on top of nlsq_lm.
 *
 * nlsq_curve_fit wraps the data arrays into an nlsq_problem whose rows are the
 * data points: eval() of rows [row0, row0 + n) calls the model on points
 * row0 .. row0 + n - 1 (xdata + row0 * xdim), then forms
 *     r_i = (f_i - y_i) / sigma_i,   J_ij = (d f_i / d theta_j) / sigma_i.
 * Everything else (chunking, threads, robust loss, bounds, covariance) is
 * nlsq_lm's.
 *
 * Finite differences (analytic_jacobian == 0): see nlsq.h for the step rule.
 * eval() may run in several threads at once, so each call takes its own
 * scratch block (theta copy + two chunks of model values) from a small pool
 * guarded by a mutex; blocks are reused across calls and freed at the end, so
 * the pool holds at most one block per concurrently running callback.
 */
#define _POSIX_C_SOURCE 200809L
#include "nlsq_internal.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct fd_block {
    struct fd_block *next;
    size_t cap;              /* doubles in buf */
    double *buf;
} fd_block;

typedef struct cf_ctx {
    const nlsq_curve_problem *cp;
    const nlsq_allocator *al;
    pthread_mutex_t lock;    /* guards pool, nomem and every allocator call */
    fd_block *pool;          /* idle scratch blocks */
    int nomem;               /* a scratch allocation failed */
} cf_ctx;

static fd_block *fd_acquire(cf_ctx *c, size_t need)
{
    pthread_mutex_lock(&c->lock);
    fd_block *b = c->pool;
    if (b) c->pool = b->next;
    else {
        b = nlsq__calloc(c->al, 1, sizeof *b);
        if (!b) goto fail;
    }
    if (b->cap < need) {
        nlsq__free(c->al, b->buf);
        b->cap = 0;
        b->buf = nlsq__calloc(c->al, need, sizeof(double));
        if (!b->buf) {
            nlsq__free(c->al, b);
            goto fail;
        }
        b->cap = need;
    }
    pthread_mutex_unlock(&c->lock);
    return b;
fail:
    c->nomem = 1;
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static void fd_release(cf_ctx *c, fd_block *b)
{
    pthread_mutex_lock(&c->lock);
    b->next = c->pool;
    c->pool = b;
    pthread_mutex_unlock(&c->lock);
}

static void fd_pool_free(cf_ctx *c)
{
    while (c->pool) {
        fd_block *b = c->pool;
        c->pool = b->next;
        nlsq__free(c->al, b->buf);
        nlsq__free(c->al, b);
    }
}

/* Finite-difference Jacobian of the model (unweighted) at theta for n points
 * at xd into J (n x p); f0 holds the model values at theta. */
static int fd_jacobian(cf_ctx *c, const double *theta, size_t n, const double *xd,
                       const double *f0, double *J)
{
    const nlsq_curve_problem *cp = c->cp;
    const size_t p = cp->n_params;
    size_t need;
    if (nlsq__mul_size(n, 2, &need) != 0 || need > SIZE_MAX - p) return -1;
    fd_block *b = fd_acquire(c, need + p);
    if (!b) return -1;
    double *th = b->buf, *f1 = th + p, *f2 = f1 + n;
    memcpy(th, theta, p * sizeof(double));
    const double h0 = cbrt(DBL_EPSILON);
    int rc = 0;

    for (size_t j = 0; j < p && rc == 0; j++) {
        const double t = theta[j];
        const double lo = cp->lower ? cp->lower[j] : -INFINITY;
        const double hi = cp->upper ? cp->upper[j] : INFINITY;
        const double h = h0 * fmax(1.0, fabs(t));
        if (t - h >= lo && t + h <= hi) {
            /* central difference */
            double xp = t + h, xm = t - h;
            th[j] = xp;
            rc = cp->model(cp->ctx, th, n, xd, f1, NULL);
            if (rc == 0) {
                th[j] = xm;
                rc = cp->model(cp->ctx, th, n, xd, f2, NULL);
            }
            th[j] = t;
            double inv = 1.0 / (xp - xm);
            for (size_t i = 0; i < n; i++) J[i * p + j] = (f1[i] - f2[i]) * inv;
            continue;
        }
        /* One-sided, second order, towards the side with more room. */
        double room_hi = hi - t, room_lo = t - lo;
        double s = room_hi >= room_lo ? 1.0 : -1.0;
        double room = s > 0 ? room_hi : room_lo;
        double d = fmin(h, 0.5 * room);
        double x1 = t + s * d;
        double d1 = x1 - t;
        if (!(d > 0) || d1 == 0.0) {
            for (size_t i = 0; i < n; i++) J[i * p + j] = 0.0;
            continue;
        }
        double x2 = t + 2.0 * d1;
        if (x2 > hi) x2 = hi;
        if (x2 < lo) x2 = lo;
        double d2 = x2 - t;
        th[j] = x1;
        rc = cp->model(cp->ctx, th, n, xd, f1, NULL);
        if (rc == 0) {
            th[j] = x2;
            rc = cp->model(cp->ctx, th, n, xd, f2, NULL);
        }
        th[j] = t;
        /* derivative at 0 of the parabola through (0, f0), (d1, f1), (d2, f2) */
        double a0 = -(d1 + d2) / (d1 * d2);
        double a1 = d2 / (d1 * (d2 - d1));
        double a2 = -d1 / (d2 * (d2 - d1));
        for (size_t i = 0; i < n; i++) J[i * p + j] = a0 * f0[i] + a1 * f1[i] + a2 * f2[i];
    }
    fd_release(c, b);
    return rc;
}

static int cf_eval(void *vctx, const double *theta, size_t row0, size_t n, double *r, double *J)
{
    cf_ctx *c = vctx;
    const nlsq_curve_problem *cp = c->cp;
    const size_t p = cp->n_params;
    const double *xd = cp->xdata + row0 * cp->xdim;
    int rc;
    if (J && cp->analytic_jacobian) {
        rc = cp->model(cp->ctx, theta, n, xd, r, J);
    } else {
        rc = cp->model(cp->ctx, theta, n, xd, r, NULL);
        if (rc == 0 && J) rc = fd_jacobian(c, theta, n, xd, r, J);
    }
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

int nlsq_curve_fit(const nlsq_curve_problem *cp, const nlsq_options *opt_in,
                   double *theta, double *cov, nlsq_fit_stats *stats, nlsq_result *res)
{
    nlsq_result local;
    nlsq_result *R = res ? res : &local;
    R->covariance = cov;
    nlsq__result_reset(R, cp ? cp->n_points : 0);
    stats_nan(stats, cp);

    nlsq_options defaults;
    const nlsq_options *opt = opt_in;
    if (!opt) { nlsq_options_init(&defaults); opt = &defaults; }

    int status = 0;
    cf_ctx c;
    memset(&c, 0, sizeof c);
    int have_lock = 0;

    if (!cp) FAIL("curve problem is NULL");
    if (!theta) FAIL("theta is NULL");
    if (!cp->model) FAIL("model is NULL");
    if (!cp->xdata || !cp->ydata) FAIL("xdata or ydata is NULL");
    if (cp->n_params == 0) FAIL("n_params is 0");
    if (cp->xdim == 0) FAIL("xdim is 0");
    if (cp->n_points < cp->n_params)
        FAIL("fewer points (%zu) than parameters (%zu)", cp->n_points, cp->n_params);
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

    nlsq_problem pb = {.n_params = cp->n_params, .n_rows = cp->n_points, .eval = cf_eval, .ctx = &c,
                       .lower = cp->lower, .upper = cp->upper};
    {
        char msg[160];
        if (nlsq_validate(&pb, opt, theta, msg, sizeof msg) != 0) FAIL("%s", msg);
    }

    c.cp = cp;
    c.al = &opt->allocator;
    if (pthread_mutex_init(&c.lock, NULL) != 0) {
        status = nlsq__finish(R, NLSQ_ENOMEM, "cannot create a mutex");
        goto out;
    }
    have_lock = 1;

    status = nlsq_lm(&pb, opt, theta, R);
    if (status == NLSQ_ECALLBACK && c.nomem)
        status = nlsq__finish(R, NLSQ_ENOMEM, "out of memory for finite-difference scratch");
    R->covariance = cov;
    if (status < 0) goto out;

    const size_t n = cp->n_points, p = cp->n_params;
    if (cov && !opt->absolute_sigma && n == p)
        for (size_t k = 0; k < p * p; k++) cov[k] = INFINITY;

    if (stats) {
        double chi2;
        if (opt->loss == NLSQ_LOSS_LINEAR) {
            chi2 = 2.0 * R->cost;
        } else {
            /* one residual-only pass without the loss */
            nlsq_options lin = *opt;
            lin.loss = NLSQ_LOSS_LINEAR;
            lin.checkpoint_path = NULL;
            nlsq__engine e;
            int rc = nlsq__engine_init(&e, &pb, &lin);
            if (rc) {
                status = nlsq__finish(R, rc, "cannot allocate chunk buffers for the statistics");
                goto out;
            }
            nlsq__acc acc = {NULL, NULL, 0, 0, 0, 0};
            rc = nlsq__engine_pass(&e, theta, NLSQ__PASS_COST, 0, n, &acc);
            size_t bad_row = e.callback_row;
            nlsq__engine_free(&e);
            if (rc) {
                status = nlsq__finish(R, rc, "model failed in the statistics pass (chunk at row %zu)",
                                      bad_row);
                goto out;
            }
            chi2 = acc.cost * 2.0;
        }
        double dn = (double)n, dp = (double)p;
        stats->n_points = n;
        stats->dof = n - p;
        stats->chi2 = chi2;
        stats->reduced_chi2 = n > p ? chi2 / (dn - dp) : NAN;
        double st = ss_tot(cp);
        stats->r_squared = st > 0 ? 1.0 - chi2 / st : NAN;
        double ll = chi2 > 0 ? dn * log(chi2 / dn) : -INFINITY;
        stats->aic = ll + 2.0 * dp;
        stats->bic = ll + dp * log(dn);
    }

out:
    if (have_lock) {
        fd_pool_free(&c);
        pthread_mutex_destroy(&c.lock);
    }
    R->covariance = cov;
    return status;
}
