/* lm.c - Levenberg-Marquardt on chunk-accumulated normal equations.
 *
 * One iteration:
 *   1. active set: a parameter on a bound whose gradient points outwards is
 *      held fixed; the projected gradient is tested against gtol;
 *   2. "can the model still pay?": the largest reduction the quadratic model
 *      predicts (the Gauss-Newton step on the free set) is compared with ftol
 *      before any trial evaluation, so the solve ends without a tail of
 *      rejected trial steps;
 *   3. step: (A + lambda D^2) dx = -g (step.c), D^2 the running max of
 *      diag(A) (Moré scaling), projected onto the box; lambda is raised until
 *      the scaled step ||D dx|| fits the trust radius delta (MINPACK-style:
 *      halved when rho < 1/4, at least 2 ||D dx|| when rho > 3/4), which keeps
 *      a first step from being thrown onto a distant plateau;
 *   4. trial: one pass at the trial point; gain ratio rho = actual / predicted.
 *      After an accepted step the trial pass also forms J^T J and J^T r
 *      (speculatively: most steps are accepted, and then the new point needs
 *      no second pass); after a rejection it is residual-only;
 *   5. accepted (rho > 1e-4): the trial's normal equations are kept (or one
 *      pass with Jacobian is made), lambda decreased (Nielsen's rule);
 *      rejected: lambda *= nu, nu *= 2.
 * A trial's cost is the same, bit for bit, whichever kind of pass computed
 * it, so the iterates do not depend on the speculation; only the pass counts
 * do.
 * Stops: ftol, xtol and gtol in the MINPACK sense, zero cost, max_iter.
 * x always holds the best point evaluated (accepted steps strictly decrease
 * the cost), also on errors.
 */
#include "nlsq_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct lm_work {
    double *block;          /* the one allocation behind the arrays */
    double *A, *g;          /* J^T J, J^T r at x */
    double *At, *gt;        /* J^T J, J^T r at the trial point (speculative pass) */
    double *A_old, *g_old;  /* kept to undo an accepted point whose Jacobian is bad */
    double *dx, *xt, *step, *x_old, *tmp, *x_nf;
    double *work;           /* p*p + p for the step solver */
    unsigned char *free_;
} lm_work;

static void lm_work_free(const nlsq_allocator *al, lm_work *w)
{
    nlsq__free(al, w->block);
    nlsq__free(al, w->free_);
    memset(w, 0, sizeof *w);
}

static int lm_work_alloc(const nlsq_allocator *al, size_t p, lm_work *w)
{
    memset(w, 0, sizeof *w);
    /* one block: A, A_old, At, work (p*p each, work + p) and 9 vectors */
    size_t n = 4 * p * p + p + 10 * p;
    w->block = nlsq__calloc(al, n, sizeof(double));
    w->free_ = nlsq__calloc(al, p, 1);
    if (!w->block || !w->free_) { lm_work_free(al, w); return NLSQ_ENOMEM; }
    w->A = w->block;
    w->A_old = w->A + p * p;
    w->At = w->A_old + p * p;
    w->work = w->At + p * p;
    double *v = w->work + p * p + p;
    w->g = v; v += p;
    w->g_old = v; v += p;
    w->gt = v; v += p;
    w->dx = v; v += p;
    w->xt = v; v += p;
    w->step = v; v += p;
    w->x_old = v; v += p;
    w->tmp = v; v += p;
    w->x_nf = v;
    return 0;
}

static double lo_of(const nlsq_problem *pb, size_t j) { return pb->lower ? pb->lower[j] : -INFINITY; }
static double hi_of(const nlsq_problem *pb, size_t j) { return pb->upper ? pb->upper[j] : INFINITY; }

static double quad_form(size_t p, const double *A, const double *v)
{
    double s = 0.0;
    for (size_t i = 0; i < p; i++) {
        double t = 0.0;
        for (size_t j = 0; j < p; j++) t += A[i * p + j] * v[j];
        s += v[i] * t;
    }
    return s;
}

static double scaled_norm(size_t p, const double *d2, const double *v)
{
    double s = 0.0;
    for (size_t j = 0; j < p; j++) s += d2[j] * v[j] * v[j];
    return sqrt(s);
}

static double max_abs(size_t p, const double *v)
{
    double m = 0.0;
    for (size_t j = 0; j < p; j++) if (fabs(v[j]) > m) m = fabs(v[j]);
    return m;
}

/* A full pass with Jacobian at x into w->A, w->g; cost to *f. */
static int normal_pass(nlsq__engine *e, const double *x, lm_work *w, double *f,
                       nlsq__lm_state *st, size_t *bad_r, size_t *bad_J)
{
    nlsq__acc acc = {w->A, w->g, 0, 0, 0, 0};
    int rc = nlsq__engine_pass(e, x, NLSQ__PASS_NORMAL, 0, e->pb->n_rows, &acc);
    st->n_jac++;
    if (rc) return rc;
    *f = acc.cost;
    *bad_r = acc.n_nonfinite_r;
    *bad_J = acc.n_nonfinite_J;
    return 0;
}

/* D^2 = running max of diag(J^T J).  When a column's scale grows (a robust
 * loss turning outliers into inliers, say) the trust radius, measured in the
 * scaled norm, grows with it, so it keeps meaning the same step in x. */
static int normal_finite(size_t p, const double *A, const double *g)
{
    for (size_t j = 0; j < p; j++)
        if (!isfinite(A[j * p + j]) || !isfinite(g[j])) return 0;
    return 1;
}

static void update_d2(size_t p, const double *A, nlsq__lm_state *st)
{
    double growth = 1.0;
    for (size_t j = 0; j < p; j++) {
        double d = A[j * p + j];
        if (!st->has_d2) st->d2[j] = (d > 0 && isfinite(d)) ? d : 1.0;
        else if (d > st->d2[j] && isfinite(d)) {
            double g = sqrt(d / st->d2[j]);
            if (g > growth) growth = g;
            st->d2[j] = d;
        }
    }
    if (st->has_d2 && st->delta > 0) st->delta *= growth;
    st->has_d2 = 1;
}

int nlsq__lm_run(nlsq__engine *e, const nlsq_options *opt, double *x,
                 nlsq_result *res, nlsq__lm_state *st, double t_start)
{
    const nlsq_problem *pb = e->pb;
    const size_t p = e->p, m = pb->n_rows;
    lm_work w;
    int status;
    size_t bad_r = 0, bad_J = 0;
    double f = INFINITY;
    int grad_known = 1;    /* w.g is J^T r at x */
    int speculate = opt->trial_jacobian != 0;   /* the next trial pass forms J^T J too */
    size_t nonfinite_run = 0;   /* consecutive trials that were non-finite */
    double f_nf = INFINITY;     /* best point given up because its Jacobian was not finite */

    if (lm_work_alloc(e->al, p, &w) != 0)
        return nlsq__finish(res, NLSQ_ENOMEM, "cannot allocate LM workspace (p = %zu)", p);

    /* Feasible start: project into the box. */
    for (size_t j = 0; j < p; j++) {
        double lo = lo_of(pb, j), hi = hi_of(pb, j);
        if (x[j] < lo) x[j] = lo;
        if (x[j] > hi) x[j] = hi;
    }

    int rc = normal_pass(e, x, &w, &f, st, &bad_r, &bad_J);
    if (rc) {
        status = nlsq__finish(res, rc, rc == NLSQ_ECALLBACK
                                  ? "callback failed at the start point (chunk at row %zu)"
                                  : "pass failed at the start point (row %zu)", e->callback_row);
        goto done;
    }
    if (bad_r || bad_J) {
        status = nlsq__finish(res, NLSQ_ENONFINITE,
                              "non-finite %s at the start point (%zu rows)",
                              bad_r ? "residuals" : "Jacobian", bad_r ? bad_r : bad_J);
        goto done;
    }
    if (!isfinite(f) || !normal_finite(p, w.A, w.g)) {
        /* finite rows whose sums overflow: nothing can be measured here */
        status = nlsq__finish(res, NLSQ_ENONFINITE, "the cost or J^T J overflows at the start point "
                              "(residuals or Jacobian entries too large: rescale the problem)");
        grad_known = 0;
        goto done;
    }
    if (st->iteration == 0) st->initial_cost = f;
    if (res) res->initial_cost = st->initial_cost;
    update_d2(p, w.A, st);
    if (st->iteration == 0 && st->lambda <= 0) {
        st->lambda = opt->lambda0;
        st->nu = 2.0;
    }
    if (st->delta <= 0) {
        double xn = scaled_norm(p, st->d2, x);
        st->delta = opt->step_bound * (xn > 0 ? xn : 1.0);
    }

    for (;;) {
        /* --- 1. active set and the gradient test --- */
        size_t n_free = 0;
        for (size_t j = 0; j < p; j++) {
            double lo = lo_of(pb, j), hi = hi_of(pb, j);
            int at_lo = x[j] <= lo && w.g[j] > 0;   /* descent (-g) would leave the box */
            int at_hi = x[j] >= hi && w.g[j] < 0;
            w.free_[j] = !(at_lo || at_hi) && !(lo == hi);
            n_free += w.free_[j];
        }
        if (f == 0.0) { status = NLSQ_CONVERGED_ZERO; break; }
        {
            double rn = sqrt(2.0 * f), gmax = 0.0;
            for (size_t j = 0; j < p; j++) {
                if (!w.free_[j]) continue;
                double cn = sqrt(w.A[j * p + j]);
                if (cn > 0) {
                    double c = fabs(w.g[j]) / (cn * rn);
                    if (c > gmax) gmax = c;
                }
            }
            if (gmax <= opt->gtol) { status = NLSQ_CONVERGED_GTOL; break; }
        }
        if (n_free == 0) { status = NLSQ_CONVERGED_GTOL; break; }

        /* --- 2. can the quadratic model still pay for a trial pass? --- */
        if (opt->ftol > 0 && st->iteration > 0) {
            double lam_gn = 1e-12;
            if (nlsq__damped_step(p, w.A, w.g, st->d2, w.free_, &lam_gn, w.dx, w.work) == 0) {
                double gd = 0.0;
                for (size_t j = 0; j < p; j++) gd += w.g[j] * w.dx[j];
                double pred_max = -0.5 * gd;  /* exact for the GN step: -g.dx - dx.A.dx/2 */
                if (pred_max >= 0 && pred_max <= opt->ftol * f) {
                    status = NLSQ_CONVERGED_FTOL;
                    break;
                }
            }
        }
        if (st->iteration >= opt->max_iter) { status = NLSQ_MAX_ITER; break; }
        st->iteration++;

        /* --- 3. the damped step inside the trust radius, projected onto the box --- */
        double lambda_used = st->lambda;
        for (int tries = 0;; tries++) {
            rc = nlsq__damped_step(p, w.A, w.g, st->d2, w.free_, &lambda_used, w.dx, w.work);
            if (rc) {
                status = nlsq__finish(res, rc, "damped normal equations could not be solved");
                goto done;
            }
            if (scaled_norm(p, st->d2, w.dx) <= st->delta || tries >= 200) break;
            lambda_used *= 2.0;
        }
        /* Over-damped: a lambda carried over from a region where the model was
         * poor (e.g. all rows outliers of a robust loss) can keep the step far
         * inside the trust radius; lower it while the step still fits. */
        for (int tries = 0; tries < 60 && lambda_used > 1e-12 &&
                            scaled_norm(p, st->d2, w.dx) < 0.1 * st->delta; tries++) {
            double lam_try = lambda_used * 0.1;
            if (nlsq__damped_step(p, w.A, w.g, st->d2, w.free_, &lam_try, w.tmp, w.work) != 0 ||
                scaled_norm(p, st->d2, w.tmp) > 1.0 * st->delta)
                break;
            lambda_used = lam_try;
            memcpy(w.dx, w.tmp, p * sizeof(double));
        }
        st->lambda = lambda_used;
        for (size_t j = 0; j < p; j++) {
            double lo = lo_of(pb, j), hi = hi_of(pb, j), v = x[j] + w.dx[j];
            if (v < lo) v = lo;
            if (v > hi) v = hi;
            w.xt[j] = v;
            w.step[j] = v - x[j];
        }
        double gs = 0.0;
        for (size_t j = 0; j < p; j++) gs += w.g[j] * w.step[j];
        double pred = -(gs + 0.5 * quad_form(p, w.A, w.step));
        double snorm = scaled_norm(p, st->d2, w.step), xnorm = scaled_norm(p, st->d2, x);
        if (snorm <= opt->xtol * xnorm) { status = NLSQ_CONVERGED_XTOL; break; }

        /* --- 4. trial point (with its Jacobian after an accepted step) --- */
        double ft = INFINITY;
        int trial_normal = 0;
        size_t trial_bad_J = 0;
        if (pred > 0) {
            int mode = speculate ? NLSQ__PASS_NORMAL : NLSQ__PASS_COST;
            nlsq__acc acc = {speculate ? w.At : NULL, speculate ? w.gt : NULL, 0, 0, 0, 0};
            rc = nlsq__engine_pass(e, w.xt, mode, 0, m, &acc);
            if (speculate) st->n_jac++;
            else st->n_eval++;
            if (rc) {
                status = nlsq__finish(res, rc, "callback failed at a trial point (chunk at row %zu); "
                                      "x is the best point so far", e->callback_row);
                goto done;
            }
            ft = acc.cost;
            trial_normal = speculate;
            trial_bad_J = acc.n_nonfinite_J;
            if (acc.n_nonfinite_r && res) res->n_nonfinite++;
            nonfinite_run = isfinite(ft) ? 0 : nonfinite_run + 1;
        }
        double actual = f - ft;
        double ratio = pred > 0 ? actual / pred : -1.0;
        if (ratio < 0.25) st->delta *= 0.5;
        else if (ratio > 0.75 && st->delta < 2.0 * snorm) st->delta = 2.0 * snorm;

        if (ratio > 1e-4) {
            /* --- 5a. accept: Jacobian pass at the new point --- */
            memcpy(w.x_old, x, p * sizeof(double));
            memcpy(w.A_old, w.A, p * p * sizeof(double));
            memcpy(w.g_old, w.g, p * sizeof(double));
            double f_old = f;
            memcpy(x, w.xt, p * sizeof(double));
            if (trial_normal) {      /* the trial pass formed them already */
                double *t;
                t = w.A; w.A = w.At; w.At = t;
                t = w.g; w.g = w.gt; w.gt = t;
                f = ft;
                bad_r = 0;
                bad_J = trial_bad_J;
                rc = 0;
            } else {
                rc = normal_pass(e, x, &w, &f, st, &bad_r, &bad_J);
            }
            if (rc) {
                /* The new point was evaluated (cost ft < f_old): it is the best
                 * point, even though its Jacobian could not be formed. */
                status = nlsq__finish(res, rc, "callback failed in a Jacobian pass (chunk at row %zu); "
                                      "x is the best point so far", e->callback_row);
                f = ft;
                grad_known = 0;
                goto done;
            }
            if (bad_r || bad_J || !(f <= f_old)) {
                /* The Jacobian is unusable here: go back and shrink the step,
                 * but remember the point if it is the best seen (x must end
                 * as the best point found). */
                if (res) res->n_nonfinite++;
                double fr = (bad_r || !isfinite(f)) ? INFINITY : f;
                if (fr < f_nf && fr < f_old) {
                    f_nf = fr;
                    memcpy(w.x_nf, x, p * sizeof(double));
                }
                memcpy(x, w.x_old, p * sizeof(double));
                memcpy(w.A, w.A_old, p * p * sizeof(double));
                memcpy(w.g, w.g_old, p * sizeof(double));
                f = f_old;
                st->lambda *= st->nu;
                st->nu *= 2.0;
            } else {
                update_d2(p, w.A, st);
                double t = 2.0 * ratio - 1.0;
                double fac = 1.0 - t * t * t;
                st->lambda *= fac > 1.0 / 3.0 ? fac : 1.0 / 3.0;
                if (st->lambda < 1e-300) st->lambda = 1e-300;
                st->nu = 2.0;
                if (actual <= opt->ftol * f_old && pred <= opt->ftol * f_old) {
                    status = NLSQ_CONVERGED_FTOL;
                    break;
                }
                xnorm = scaled_norm(p, st->d2, x);
                if (snorm <= opt->xtol * xnorm) { status = NLSQ_CONVERGED_XTOL; break; }
            }
        } else {
            /* --- 5b. reject --- */
            if (pred > 0 && fabs(actual) <= opt->ftol * f && pred <= opt->ftol * f) {
                status = NLSQ_CONVERGED_FTOL;
                break;
            }
            st->lambda *= st->nu;
            st->nu = st->nu < 1e8 ? st->nu * 2.0 : st->nu;
            if (!(st->lambda < 1e300)) {
                status = nlsq__finish(res, NLSQ_CONVERGED_XTOL,
                                      "damping exhausted: no reducing step exists at working precision");
                break;
            }
        }

        speculate = opt->trial_jacobian && ratio > 1e-4;
        double gn = max_abs(p, w.g);
        nlsq__log(opt, 0, "lm %4zu  cost %.10e  |g| %.3e  lambda %.3e  rho %+.3f  %s",
                  st->iteration, f, gn, st->lambda, ratio, ratio > 1e-4 ? "accept" : "reject");
        if (opt->progress) {
            nlsq_progress_info info = {NLSQ_PHASE_LM, st->iteration, f, gn, st->lambda,
                                       nlsq__now() - t_start, st->n_eval, st->n_jac, x};
            if (opt->progress(opt->progress_ctx, &info) != 0) {
                status = nlsq__finish(res, NLSQ_EUSER_STOP, "stopped by the progress callback "
                                      "at iteration %zu", st->iteration);
                goto done;
            }
        }
        if (opt->checkpoint_path && opt->checkpoint_every &&
            st->iteration % opt->checkpoint_every == 0) {
            rc = nlsq__checkpoint_save_lm(e, opt, x, st, res);
            if (rc) {
                status = rc;   /* the reason is in res->message */
                goto done;
            }
        }
    }
    /* A stop forced by non-finite trials (the step shrank to nothing around
     * a point where every trial is NaN/Inf) is not convergence. */
    if (status == NLSQ_CONVERGED_XTOL && nonfinite_run > 0) {
        status = nlsq__finish(res, NLSQ_ENONFINITE, "stopped by %zu consecutive trial points with "
                              "non-finite residuals; x is the best point found", nonfinite_run);
    }
    /* A point given up for its non-finite Jacobian that beats the final one
     * is returned instead (x is always the best point found). */
    if (f_nf < f) {
        memcpy(x, w.x_nf, p * sizeof(double));
        f = f_nf;
        grad_known = 0;
        status = nlsq__finish(res, NLSQ_ENONFINITE, "the best point found has a non-finite "
                              "Jacobian; x is that point");
    }
    nlsq__finish(res, status, NULL);

    /* Covariance at the solution from the J^T J of the final pass. */
    if (res && res->covariance && status >= 0 && grad_known) {
        rc = nlsq__covariance_at(pb, opt, e->al, x, w.A, f, res->covariance, res);
        if (rc) status = nlsq__finish(res, rc, "covariance: eigen-decomposition failed");
    }

done:
    if (res) {
        res->cost = f;
        res->grad_norm = isfinite(f) && grad_known ? max_abs(p, w.g) : NAN;
        res->iterations = st->iteration;
        res->n_eval = st->n_eval;
        res->n_jac = st->n_jac;
        double dof = nlsq__dof(pb);
        res->reduced_chi2 = dof > 0 ? 2.0 * f / dof : NAN;
        res->n_active = 0;
        for (size_t j = 0; j < p; j++)
            if (x[j] <= lo_of(pb, j) || x[j] >= hi_of(pb, j)) res->n_active++;
    }
    lm_work_free(e->al, &w);
    return status;
}

int nlsq_lm(const nlsq_problem *pb, const nlsq_options *opt_in, double *x, nlsq_result *res)
{
    double t0 = nlsq__now();
    nlsq_options defaults;
    const nlsq_options *opt;
    int rc0 = nlsq__begin(pb, opt_in, &defaults, &opt, x != NULL, "x", x, res);
    if (rc0) return rc0;

    nlsq__engine e;
    int rc = nlsq__engine_init(&e, pb, opt);
    if (rc) return nlsq__finish(res, rc, "cannot allocate chunk buffers");
    double *d2 = nlsq__calloc(e.al, pb->n_params, sizeof(double));
    if (!d2) { nlsq__engine_free(&e); return nlsq__finish(res, NLSQ_ENOMEM, "out of memory"); }
    nlsq__lm_state st = {0};
    st.d2 = d2;
    int status = nlsq__lm_run(&e, opt, x, res, &st, t0);
    nlsq__free(e.al, d2);
    nlsq__engine_free(&e);
    nlsq__single_phase(res, NLSQ_PHASE_LM, t0);
    return status;
}

int nlsq_covariance(const nlsq_problem *pb, const nlsq_options *opt_in, const double *x,
                    double *cov, nlsq_result *res)
{
    nlsq_options defaults;
    const nlsq_options *opt;
    int rc0 = nlsq__begin(pb, opt_in, &defaults, &opt, x && cov, "x or cov", x, res);
    if (rc0) return rc0;
    nlsq__engine e;
    int rc = nlsq__engine_init(&e, pb, opt);
    if (rc) return nlsq__finish(res, rc, "cannot allocate chunk buffers");
    const size_t p = pb->n_params;
    double *A = nlsq__calloc(e.al, p * p + p, sizeof(double));
    if (!A) { nlsq__engine_free(&e); return nlsq__finish(res, NLSQ_ENOMEM, "out of memory"); }
    nlsq__acc acc = {A, A + p * p, 0, 0, 0, 0};
    rc = nlsq__engine_pass(&e, x, NLSQ__PASS_NORMAL, 0, pb->n_rows, &acc);
    int status = 0;
    if (rc) status = nlsq__finish(res, rc, "pass failed (row %zu)", e.callback_row);
    else if (acc.n_nonfinite_r || acc.n_nonfinite_J || !isfinite(acc.cost) ||
             !normal_finite(p, A, A + p * p))
        status = nlsq__finish(res, NLSQ_ENONFINITE, "non-finite residuals or Jacobian at x "
                              "(or sums that overflow)");
    else {
        double dof = nlsq__dof(pb);
        status = nlsq__finish(res, 0, "covariance computed at x (status 0: success)");
        rc = nlsq__covariance_at(pb, opt, e.al, x, A, acc.cost, cov, res);
        if (rc) status = nlsq__finish(res, rc, "covariance: eigen-decomposition failed");
        if (res) {
            res->cost = acc.cost;
            res->grad_norm = max_abs(p, acc.Jtr);
            res->n_jac = 1;
            res->reduced_chi2 = dof > 0 ? 2.0 * acc.cost / dof : NAN;
        }
    }
    nlsq__free(e.al, A);
    nlsq__engine_free(&e);
    return status;
}
