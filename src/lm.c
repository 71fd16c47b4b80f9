/* lm.c - Levenberg-Marquardt on chunk-accumulated normal equations: the skeleton.
 *
 *   iteration_zero   x0 projected into the box; one pass with Jacobian (and a
 *                    second one if the residuals need a power-of-two scale);
 *                    damping and scaling started (damping.c)
 *   loop:
 *     stopping_tests the only place a CONVERGED status comes from, each a test
 *                    of stationarity at x: every residual exactly zero; the
 *                    gradient test (max cosine between r and a free column of
 *                    J <= gtol); the undamped Gauss-Newton step on the free set
 *                    (lambda <= 1e-8 in the scaled variables): its predicted
 *                    reduction <= ftol * cost ("the model cannot pay for
 *                    another pass"), or its length ||C dx|| <= xtol ||C x||
 *                    (C: the current column norms of J);
 *                    then the iteration limit
 *     compute_step   the damped step inside the trust radius, projected onto
 *                    the box; a step that no longer changes x ends the run
 *                    NLSQ_STALLED (not converged: x is the best point found)
 *     evaluate_trial one pass at the trial point; after an accepted step it
 *                    forms J^T J and J^T r too (speculatively: most steps are
 *                    accepted, and then the new point needs no second pass)
 *     accept         rho > 1e-4: the trial's normal equations are kept (or one
 *                    pass with Jacobian is made); a point whose Jacobian is not
 *                    finite is undone; damping lowered
 *     reject         damping raised; when it overflows: NLSQ_STALLED
 *     report         log line, progress callback, checkpoint
 *   finish           best-point rules, covariance, result fields
 *
 * A small damped step proves nothing about x (it is small because lambda is
 * large), so no test of a damped step can end the run as converged.
 * A trial's cost is the same, bit for bit, whichever kind of pass computed
 * it, so the iterates do not depend on the speculation; only the pass counts
 * do.  x always holds the best point evaluated (accepted steps strictly
 * decrease the cost), also on errors.  Costs, gradients and J^T J are kept in
 * the engine's scaled units (nlsq__engine_autoscale) and unscaled for the
 * caller only.
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
    double *work;           /* nlsq__step_work(p) for the step solver */
    double *rblock;         /* QR engines: the allocation behind R, Rt, R_old, the */
    double *R, *Rt, *R_old; /* factors (nlsq__acc.R) beside A, At, A_old */
    int r_ok, rt_ok, r_old_ok; /* which of them the last passes filled */
    unsigned char *free_;
} lm_work;

/* What the named steps share. */
typedef struct lm_ctx {
    nlsq__engine *e;
    const nlsq_options *opt;
    nlsq_result *res;
    nlsq__lm_state *st;
    double *x;
    size_t p;
    lm_work w;
    double f;               /* cost at x (scaled units) */
    double rmax;            /* max |r_i| at x (scaled units) */
    size_t bad_r, bad_J;    /* non-finite rows of the last pass with Jacobian */
    int grad_known;         /* w.g is J^T r at x */
    int speculate;          /* the next trial pass forms J^T J too */
    size_t nonfinite_run;   /* consecutive trials that were non-finite */
    double f_nf;            /* best point given up because its Jacobian was not finite */
    double t_start;
    int started;            /* iteration zero succeeded */
    int status;
    /* the current iteration */
    double pred, snorm, ft, ratio;
    int trial_normal;
    size_t trial_bad_J;
    double trial_rmax;
} lm_ctx;

/* A damped step shorter than xtol / 100 times ||D x|| (at least DBL_EPSILON
 * times it) is a stall: it is far below the precision asked for in x, it can
 * change the cost by little more than rounding, and the trials it makes no
 * longer tell anything about x. */
static double stall_step(const nlsq_options *opt)
{
    double t = 1e-2 * opt->xtol;
    return t > DBL_EPSILON ? t : DBL_EPSILON;
}

/* A step's verdict: go on, stop (then covariance and the best-point rules),
 * or fail (an error: straight to the result fields). */
enum { LM_NEXT = 0, LM_STOP = 1, LM_FAIL = 2 };

static void lm_work_free(const nlsq_allocator *al, lm_work *w)
{
    nlsq__free(al, w->block);
    nlsq__free(al, w->rblock);
    nlsq__free(al, w->free_);
    memset(w, 0, sizeof *w);
}

static int lm_work_alloc(const nlsq_allocator *al, size_t p, int qr, lm_work *w)
{
    memset(w, 0, sizeof *w);
    /* one block: A, A_old, At (p*p each), 9 vectors, work; the factors apart */
    size_t n = 3 * p * p + 10 * p + nlsq__step_work(p), nr = NLSQ__R_SIZE(p);
    w->block = nlsq__calloc(al, n, sizeof(double));
    w->free_ = nlsq__calloc(al, p, 1);
    if (qr) w->rblock = nlsq__calloc(al, 3 * nr, sizeof(double));
    if (!w->block || !w->free_ || (qr && !w->rblock)) { lm_work_free(al, w); return NLSQ_ENOMEM; }
    if (qr) {
        w->R = w->rblock;
        w->Rt = w->R + nr;
        w->R_old = w->Rt + nr;
    }
    w->A = w->block;
    w->A_old = w->A + p * p;
    w->At = w->A_old + p * p;
    double *v = w->At + p * p;
    w->g = v; v += p;
    w->g_old = v; v += p;
    w->gt = v; v += p;
    w->dx = v; v += p;
    w->xt = v; v += p;
    w->step = v; v += p;
    w->x_old = v; v += p;
    w->tmp = v; v += p;
    w->x_nf = v; v += p;
    w->work = v;
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

static double dot(size_t p, const double *a, const double *b)
{
    double s = 0.0;
    for (size_t j = 0; j < p; j++) s += a[j] * b[j];
    return s;
}

static double max_abs(size_t p, const double *v)
{
    double m = 0.0;
    for (size_t j = 0; j < p; j++) if (fabs(v[j]) > m) m = fabs(v[j]);
    return m;
}

static int normal_finite(size_t p, const double *A, const double *g)
{
    for (size_t j = 0; j < p; j++)
        if (!isfinite(A[j * p + j]) || !isfinite(g[j])) return 0;
    return 1;
}

/* The QR factor at x when the last pass there made one, else NULL (the
 * step and the covariance then use J^T J). */
static const double *lm_factor(const lm_ctx *L) { return L->w.r_ok ? L->w.R : NULL; }

/* Unscaled value of a cost-like quantity (scaled by 4^scale_exp). */
static double unscale2(const lm_ctx *L, double v) { return ldexp(v, -2 * L->e->scale_exp); }

/* ------------------------------------------------------------ passes */

/* A full pass with Jacobian at x into w.A, w.g, L->f. */
static int normal_pass(lm_ctx *L)
{
    nlsq__acc acc = {.JtJ = L->w.A, .Jtr = L->w.g, .R = L->w.R};
    int rc = nlsq__engine_pass(L->e, L->x, NLSQ__PASS_NORMAL, 0, L->e->pb->n_rows, &acc);
    L->st->n_jac += 1 + (size_t)acc.switched;
    if (rc) return rc;
    L->w.r_ok = acc.has_R && L->w.R;
    L->f = acc.cost;
    L->rmax = acc.rmax;
    L->bad_r = acc.n_nonfinite_r;
    L->bad_J = acc.n_nonfinite_J;
    return 0;
}

/* Residuals too large or too small for their squares: rescale the engine by a
 * power of two, redo the pass at x and bring the kept state to the new units
 * (D^2 and costs by 4^k, the trust radius by 2^k). */
static int rescale_if_needed(lm_ctx *L)
{
    nlsq__acc probe = {.rmax = L->rmax};
    int k = nlsq__engine_autoscale(L->e, &probe);
    if (k == 0) return 0;
    nlsq__lm_state *st = L->st;
    if (st->has_d2)
        for (size_t j = 0; j < L->p; j++) st->d2[j] = ldexp(st->d2[j], 2 * k);
    st->delta = ldexp(st->delta, k);
    st->initial_cost = ldexp(st->initial_cost, 2 * k);
    st->scale_exp = L->e->scale_exp;
    L->f_nf = ldexp(L->f_nf, 2 * k);
    nlsq__log(L->opt, 0, "lm: residuals rescaled by 2^%d (largest |r| %.3e)", L->e->scale_exp,
              ldexp(L->rmax, k - L->e->scale_exp));
    return normal_pass(L);
}

/* ------------------------------------------------------------ iteration zero */

static int iteration_zero(lm_ctx *L)
{
    const nlsq_problem *pb = L->e->pb;
    for (size_t j = 0; j < L->p; j++) {   /* feasible start */
        double lo = lo_of(pb, j), hi = hi_of(pb, j);
        if (L->x[j] < lo) L->x[j] = lo;
        if (L->x[j] > hi) L->x[j] = hi;
    }
    int rc = normal_pass(L);
    if (!rc && !L->bad_r && !L->bad_J) rc = rescale_if_needed(L);
    if (rc) {
        L->status = nlsq__finish(L->res, rc, rc == NLSQ_ECALLBACK
                                 ? "callback failed at the start point (chunk at row %zu)"
                                 : "pass failed at the start point (row %zu)", L->e->callback_row);
        return LM_FAIL;
    }
    if (L->bad_r || L->bad_J) {
        L->status = nlsq__finish(L->res, NLSQ_ENONFINITE, "non-finite %s at the start point (%zu rows)",
                                 L->bad_r ? "residuals" : "Jacobian", L->bad_r ? L->bad_r : L->bad_J);
        return LM_FAIL;
    }
    if (!isfinite(L->f) || !normal_finite(L->p, L->w.A, L->w.g)) {
        L->status = nlsq__finish(L->res, NLSQ_ENONFINITE, "J^T J overflows at the start point "
                                 "(Jacobian entries too large: rescale the parameters)");
        L->grad_known = 0;
        return LM_FAIL;
    }
    nlsq__lm_state *st = L->st;
    if (st->iteration == 0) st->initial_cost = L->f;
    nlsq__damp_scale(L->p, L->w.A, st);
    nlsq__damp_start(st, L->opt, L->p, L->x);
    L->started = 1;
    return LM_NEXT;
}

/* ------------------------------------------------------------ stopping tests */

/* The free set: a parameter on a bound whose gradient points outwards (or
 * with lo == hi) is held fixed.  Returns the number of free parameters. */
static size_t active_set(lm_ctx *L)
{
    const nlsq_problem *pb = L->e->pb;
    size_t n_free = 0;
    for (size_t j = 0; j < L->p; j++) {
        double lo = lo_of(pb, j), hi = hi_of(pb, j);
        int at_lo = L->x[j] <= lo && L->w.g[j] > 0;   /* descent (-g) would leave the box */
        int at_hi = L->x[j] >= hi && L->w.g[j] < 0;
        L->w.free_[j] = !(at_lo || at_hi) && !(lo == hi);
        n_free += L->w.free_[j];
    }
    return n_free;
}

/* max over free j of |g_j| / (||J_j|| ||r||): the cosine of the angle between
 * the residual vector and a free column of J. */
static double gradient_cosine(const lm_ctx *L)
{
    const size_t p = L->p;
    double rn = sqrt(2.0 * L->f), gmax = 0.0;
    for (size_t j = 0; j < p; j++) {
        double cn = sqrt(L->w.A[j * p + j]);
        if (!L->w.free_[j] || !(cn > 0)) continue;
        double c = fabs(L->w.g[j]) / (cn * rn);
        if (!(c <= gmax)) gmax = c;   /* NaN (f == 0 with g != 0) counts as large */
    }
    return gmax;
}

/* The Gauss-Newton step on the free set: NLSQ_CONVERGED_FTOL when the
 * reduction it predicts is at most ftol * cost, NLSQ_CONVERGED_XTOL when its
 * length is at most xtol ||C x||, else -1.  C = diag(J^T J)^1/2, the current
 * column norms (not D, a running maximum that can keep the scale of a column
 * from far away and so hide a step or a gradient in the others); a zero
 * column counts for nothing in ||C x||.
 * The step is solved in the variables scaled by C with a trace of damping,
 * lambda = 1e-12 on the unit diagonal (raised by the solver only where J^T J
 * is not positive definite to working precision; beyond 1e-8 nothing is
 * concluded).  Directions with curvature w >> lambda get the Gauss-Newton
 * reduction; along a direction v that J^T J cannot resolve the predicted
 * reduction is about (v.C^-1 g)^2 / (2 lambda), so "pred <= ftol cost" there
 * means a gradient cosine of at most sqrt(2 lambda ftol) (4.5e-13 at the
 * defaults): x is stationary either way.  A free column whose square
 * underflowed (C_j = 0 but g_j != 0) cannot be measured: no conclusion. */
static int gauss_newton_test(lm_ctx *L)
{
    const size_t p = L->p;
    const nlsq_options *opt = L->opt;
    double *c2 = L->w.tmp, *s2 = L->w.step, lam = 1e-12;
    for (size_t j = 0; j < p; j++) {
        double a = L->w.A[j * p + j];
        if (L->w.free_[j] && a == 0.0 && L->w.g[j] != 0.0) return -1;
        c2[j] = a;
        s2[j] = a > 0 ? a : 1.0;   /* a zero column: g_j = 0, its step 0 */
    }
    if (nlsq__damped_step(p, L->w.A, L->w.g, lm_factor(L), s2, L->w.free_, &lam, L->w.dx,
                          L->w.work) != 0 ||
        lam > 1e-8)
        return -1;
    double pred = -0.5 * dot(p, L->w.g, L->w.dx);
    if (opt->ftol > 0 && pred >= 0 && pred <= opt->ftol * L->f) return NLSQ_CONVERGED_FTOL;
    double sn = nlsq__scaled_norm(p, c2, L->w.dx);
    if (opt->xtol > 0 && sn <= opt->xtol * nlsq__scaled_norm(p, c2, L->x))
        return NLSQ_CONVERGED_XTOL;
    return -1;
}

static int stopping_tests(lm_ctx *L)
{
    size_t n_free = active_set(L);
    if (L->rmax == 0.0 && L->f == 0.0) { L->status = NLSQ_CONVERGED_ZERO; return LM_STOP; }
    if (n_free == 0 || gradient_cosine(L) <= L->opt->gtol) {
        L->status = NLSQ_CONVERGED_GTOL;
        return LM_STOP;
    }
    int gn = gauss_newton_test(L);
    if (gn > 0) { L->status = gn; return LM_STOP; }
    if (L->st->iteration >= nlsq__max_iter(L->opt, L->p)) { L->status = NLSQ_MAX_ITER; return LM_STOP; }
    return LM_NEXT;
}

/* ------------------------------------------------------------ the step */

static int stall(lm_ctx *L, const char *why)
{
    L->status = nlsq__finish(L->res, NLSQ_STALLED, "stalled: %s, and x is not stationary to the "
                             "tolerances; x is the best point found", why);
    return LM_STOP;
}

static int compute_step(lm_ctx *L)
{
    const size_t p = L->p;
    const nlsq_problem *pb = L->e->pb;
    lm_work *w = &L->w;
    int rc = nlsq__damp_step(p, w->A, w->g, lm_factor(L), w->free_, L->st, w->dx, w->tmp,
                             w->work);
    if (rc) {
        L->status = nlsq__finish(L->res, rc, "damped normal equations could not be solved");
        return LM_FAIL;
    }
    int moves = 0;
    for (size_t j = 0; j < p; j++) {
        double lo = lo_of(pb, j), hi = hi_of(pb, j), v = L->x[j] + w->dx[j];
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        w->xt[j] = v;
        w->step[j] = v - L->x[j];
        moves |= w->step[j] != 0.0;
    }
    L->pred = -(dot(p, w->g, w->step) + 0.5 * quad_form(p, w->A, w->step));
    L->snorm = nlsq__scaled_norm(p, L->st->d2, w->step);
    if (!moves || L->snorm <= stall_step(L->opt) * nlsq__scaled_norm(p, L->st->d2, L->x))
        return stall(L, "the damped step no longer changes x at working precision");
    return LM_NEXT;
}

/* One pass at the trial point (with its Jacobian after an accepted step). */
static int evaluate_trial(lm_ctx *L)
{
    L->ft = INFINITY;
    L->trial_normal = 0;
    L->trial_bad_J = 0;
    if (L->pred > 0) {
        const int spec = L->speculate;
        nlsq__acc acc = {.JtJ = spec ? L->w.At : NULL, .Jtr = spec ? L->w.gt : NULL,
                         .R = spec ? L->w.Rt : NULL};
        int rc = nlsq__engine_pass(L->e, L->w.xt, spec ? NLSQ__PASS_NORMAL : NLSQ__PASS_COST, 0,
                                   L->e->pb->n_rows, &acc);
        if (spec) L->st->n_jac += 1 + (size_t)acc.switched;
        else L->st->n_eval++;
        if (rc) {
            L->status = nlsq__finish(L->res, rc, "callback failed at a trial point (chunk at row "
                                     "%zu); x is the best point so far", L->e->callback_row);
            return LM_FAIL;
        }
        L->ft = acc.cost;
        L->trial_rmax = acc.rmax;
        L->trial_normal = spec;
        L->w.rt_ok = acc.has_R && L->w.Rt;
        L->trial_bad_J = acc.n_nonfinite_J;
        if (acc.n_nonfinite_r && L->res) L->res->n_nonfinite++;
        L->nonfinite_run = isfinite(L->ft) ? 0 : L->nonfinite_run + 1;
    }
    L->ratio = L->pred > 0 ? (L->f - L->ft) / L->pred : -1.0;
    if (L->pred > 0) nlsq__damp_ratio(L->st, L->ratio, L->snorm);
    else nlsq__damp_unmodelled(L->st, L->snorm);
    return LM_NEXT;
}

static void swap_ptr(double **a, double **b) { double *t = *a; *a = *b; *b = t; }

/* The new point's Jacobian is unusable: go back and raise the damping, but
 * remember the point if it is the best seen (x must end as the best point). */
static void undo_accept(lm_ctx *L, double f_old)
{
    const size_t p = L->p;
    lm_work *w = &L->w;
    if (L->res) L->res->n_nonfinite++;
    double fr = (L->bad_r || !isfinite(L->f)) ? INFINITY : L->f;
    if (fr < L->f_nf && fr < f_old) {
        L->f_nf = fr;
        memcpy(w->x_nf, L->x, p * sizeof(double));
    }
    memcpy(L->x, w->x_old, p * sizeof(double));
    memcpy(w->A, w->A_old, p * p * sizeof(double));
    memcpy(w->g, w->g_old, p * sizeof(double));
    if (w->R) memcpy(w->R, w->R_old, NLSQ__R_SIZE(p) * sizeof(double));
    w->r_ok = w->r_old_ok;
    L->f = f_old;
    nlsq__damp_rejected(L->st);
}

static int accept(lm_ctx *L)
{
    const size_t p = L->p;
    lm_work *w = &L->w;
    memcpy(w->x_old, L->x, p * sizeof(double));
    memcpy(w->A_old, w->A, p * p * sizeof(double));
    memcpy(w->g_old, w->g, p * sizeof(double));
    if (w->R) memcpy(w->R_old, w->R, NLSQ__R_SIZE(p) * sizeof(double));
    w->r_old_ok = w->r_ok;
    double f_old = L->f;
    memcpy(L->x, w->xt, p * sizeof(double));
    int rc = 0;
    if (L->trial_normal) {      /* the trial pass formed them already */
        swap_ptr(&w->A, &w->At);
        swap_ptr(&w->g, &w->gt);
        swap_ptr(&w->R, &w->Rt);
        w->r_ok = w->rt_ok;
        L->f = L->ft;
        L->rmax = L->trial_rmax;
        L->bad_r = 0;
        L->bad_J = L->trial_bad_J;
    } else {
        rc = normal_pass(L);
    }
    if (rc) {
        /* The new point was evaluated (cost ft < f_old): it is the best point,
         * even though its Jacobian could not be formed. */
        L->status = nlsq__finish(L->res, rc, "callback failed in a Jacobian pass (chunk at row "
                                 "%zu); x is the best point so far", L->e->callback_row);
        L->f = L->ft;
        L->grad_known = 0;
        return LM_FAIL;
    }
    if (L->bad_r || L->bad_J || !(L->f <= f_old)) {
        undo_accept(L, f_old);
        return LM_NEXT;
    }
    nlsq__damp_scale(p, w->A, L->st);
    nlsq__damp_accepted(L->st, L->ratio);
    rc = rescale_if_needed(L);
    if (rc) {
        L->status = nlsq__finish(L->res, rc, "pass failed after rescaling (chunk at row %zu)",
                                 L->e->callback_row);
        L->grad_known = 0;
        return LM_FAIL;
    }
    return LM_NEXT;
}

static int reject(lm_ctx *L)
{
    if (!nlsq__damp_rejected(L->st))
        return stall(L, "damping exhausted, no reducing step at working precision");
    return LM_NEXT;
}

/* Log line, progress callback, checkpoint. */
static int report(lm_ctx *L)
{
    const nlsq_options *opt = L->opt;
    nlsq__lm_state *st = L->st;
    int accepted = L->ratio > 1e-4;
    double gn = unscale2(L, max_abs(L->p, L->w.g)), fu = unscale2(L, L->f);
    nlsq__log(opt, 0, "lm %4zu  cost %.10e  |g| %.3e  lambda %.3e  rho %+.3f  %s",
              st->iteration, fu, gn, st->lambda, L->ratio, accepted ? "accept" : "reject");
    if (opt->progress) {
        nlsq_progress_info info = {NLSQ_PHASE_LM, st->iteration, fu, gn, st->lambda,
                                   nlsq__now() - L->t_start, st->n_eval, st->n_jac, L->x};
        if (opt->progress(opt->progress_ctx, &info) != 0) {
            L->status = nlsq__finish(L->res, NLSQ_EUSER_STOP, "stopped by the progress callback "
                                     "at iteration %zu", st->iteration);
            return LM_FAIL;
        }
    }
    if (opt->checkpoint_path && opt->checkpoint_every && st->iteration % opt->checkpoint_every == 0) {
        int rc = nlsq__checkpoint_save_lm(L->e, opt, L->x, st, L->res);
        if (rc) {
            L->status = rc;   /* the reason is in res->message */
            return LM_FAIL;
        }
    }
    return LM_NEXT;
}

/* One iteration after the stopping tests: step, trial, accept or reject. */
static int iterate(lm_ctx *L)
{
    L->st->iteration++;
    int v = compute_step(L);
    if (v == LM_NEXT) v = evaluate_trial(L);
    if (v != LM_NEXT) return v;
    v = L->ratio > 1e-4 ? accept(L) : reject(L);
    L->speculate = L->opt->trial_jacobian && L->ratio > 1e-4;
    return v == LM_NEXT ? report(L) : v;
}

/* ------------------------------------------------------------ finish */

/* (J^T J)^-1 from scaled sums is 4^-k times the unscaled one. */
void nlsq__unscale_cov(size_t p, int k, double *cov)
{
    for (size_t i = 0; k && i < p * p; i++) cov[i] = ldexp(cov[i], 2 * k);
}

/* The best-point rules after a stop, then the covariance from J^T J. */
static void finish_stop(lm_ctx *L)
{
    const size_t p = L->p;
    /* A stall forced by non-finite trials (the step shrank to nothing around
     * a point where every trial is NaN/Inf) is a non-finite failure. */
    if (L->status == NLSQ_STALLED && L->nonfinite_run > 0)
        L->status = nlsq__finish(L->res, NLSQ_ENONFINITE, "stopped by %zu consecutive trial points "
                                 "with non-finite residuals; x is the best point found",
                                 L->nonfinite_run);
    if (L->f_nf < L->f) {   /* a point given up for its Jacobian beats the final one */
        memcpy(L->x, L->w.x_nf, p * sizeof(double));
        L->f = L->f_nf;
        L->grad_known = 0;
        L->status = nlsq__finish(L->res, NLSQ_ENONFINITE, "the best point found has a non-finite "
                                 "Jacobian; x is that point");
    }
    nlsq__finish(L->res, L->status, NULL);
    nlsq_result *res = L->res;
    if (res && res->covariance && (L->status >= 0 || L->status == NLSQ_STALLED) && L->grad_known) {
        int rc = nlsq__covariance_at(L->e->pb, L->opt, L->e->al, L->x, L->w.A, lm_factor(L),
                                     L->f, L->e->n_obs, res->covariance, res);
        if (rc) L->status = nlsq__finish(res, rc, "covariance: eigen-decomposition failed");
        else if (L->opt->absolute_sigma) nlsq__unscale_cov(p, L->e->scale_exp, res->covariance);
    }
}

static void fill_result(lm_ctx *L)
{
    nlsq_result *res = L->res;
    if (!res) return;
    const nlsq_problem *pb = L->e->pb;
    res->cost = unscale2(L, L->f);
    if (L->started) res->initial_cost = unscale2(L, L->st->initial_cost);
    res->grad_norm = isfinite(L->f) && L->grad_known ? unscale2(L, max_abs(L->p, L->w.g)) : NAN;
    res->iterations = L->st->iteration;
    res->n_eval = L->st->n_eval;
    res->n_jac = L->st->n_jac;
    nlsq__result_dof(res, pb, L->e->n_obs, res->cost);
    res->n_active = 0;
    for (size_t j = 0; j < L->p; j++)
        if (L->x[j] <= lo_of(pb, j) || L->x[j] >= hi_of(pb, j)) res->n_active++;
}

int nlsq__lm_run(nlsq__engine *e, const nlsq_options *opt, double *x,
                 nlsq_result *res, nlsq__lm_state *st, double t_start)
{
    lm_ctx L;
    memset(&L, 0, sizeof L);
    L.e = e; L.opt = opt; L.res = res; L.st = st; L.x = x; L.p = e->p;
    L.f = INFINITY; L.f_nf = INFINITY; L.t_start = t_start;
    L.grad_known = 1;
    L.speculate = opt->trial_jacobian != 0;
    st->cost = NAN;
    if (lm_work_alloc(e->al, L.p, e->qr || e->accum_auto, &L.w) != 0)
        return nlsq__finish(res, NLSQ_ENOMEM, "cannot allocate LM workspace (p = %zu)", L.p);
    nlsq__engine_set_scale(e, st->scale_exp);   /* the units of the state */
    int v = iteration_zero(&L);
    while (v == LM_NEXT) {
        v = stopping_tests(&L);
        if (v == LM_NEXT) v = iterate(&L);
    }
    if (v == LM_STOP) finish_stop(&L);
    fill_result(&L);
    st->cost = L.f;
    lm_work_free(e->al, &L.w);
    nlsq__engine_set_scale(e, 0);   /* the engine is the caller's again */
    return L.status;
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
    nlsq__engine_report(&e, res);
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
    double *A = nlsq__calloc(e.al, p * p + p + NLSQ__R_SIZE(p), sizeof(double));
    if (!A) { nlsq__engine_free(&e); return nlsq__finish(res, NLSQ_ENOMEM, "out of memory"); }
    nlsq__acc acc = {.JtJ = A, .Jtr = A + p * p, .R = A + p * p + p};
    rc = nlsq__engine_pass(&e, x, NLSQ__PASS_NORMAL, 0, pb->n_rows, &acc);
    if (!rc && nlsq__engine_autoscale(&e, &acc) != 0)   /* r^2 out of range: scaled units */
        rc = nlsq__engine_pass(&e, x, NLSQ__PASS_NORMAL, 0, pb->n_rows, &acc);
    int status = 0;
    if (rc) status = nlsq__finish(res, rc, "pass failed (row %zu)", e.callback_row);
    else if (acc.n_nonfinite_r || acc.n_nonfinite_J || !isfinite(acc.cost) ||
             !normal_finite(p, A, A + p * p))
        status = nlsq__finish(res, NLSQ_ENONFINITE, "non-finite residuals or Jacobian at x "
                              "(or sums that overflow)");
    else {
        status = nlsq__finish(res, 0, "covariance computed at x (status 0: success)");
        rc = nlsq__covariance_at(pb, opt, e.al, x, A, acc.has_R ? acc.R : NULL, acc.cost,
                                 e.n_obs, cov, res);
        if (rc) status = nlsq__finish(res, rc, "covariance: eigen-decomposition failed");
        else if (opt->absolute_sigma) nlsq__unscale_cov(p, e.scale_exp, cov);
        if (res) {
            res->cost = ldexp(acc.cost, -2 * e.scale_exp);
            res->grad_norm = ldexp(max_abs(p, acc.Jtr), -2 * e.scale_exp);
            res->n_jac = (e.scale_exp ? 2 : 1) + (size_t)acc.switched;
            nlsq__result_dof(res, pb, e.n_obs, res->cost);
        }
    }
    nlsq__free(e.al, A);
    nlsq__engine_report(&e, res);
    nlsq__engine_free(&e);
    return status;
}
