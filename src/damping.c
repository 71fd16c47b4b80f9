/* damping.c - the LM damping, trust-radius and scaling policy.
 *
 * Scaling (Moré): D^2 = running max of diag(J^T J).  When a column's scale
 * grows (a robust loss turning outliers into inliers, say) the trust radius,
 * measured in the scaled norm ||D dx||, grows with it, so it keeps meaning the
 * same step in x.
 *
 * Step: (A + lambda D^2) dx = -g (step.c).  lambda is raised (x2) until the
 * scaled step fits the trust radius delta; a lambda carried over from a
 * region where the model was poor is lowered (x0.1) while the step still
 * fits.  delta starts at step_bound * ||D x0|| (step_bound when x0 = 0), is
 * halved when the gain ratio rho < 1/4 and set to at least 2 ||D dx|| when
 * rho > 3/4 (MINPACK).  A step whose predicted reduction is not positive
 * (the quadratic model cannot be evaluated that far: along a nearly
 * undetermined direction the Gauss-Newton step is huge and g.dx + dx.A.dx/2
 * cancels) sets delta = min(delta, ||D dx||) / 2, so the next step is inside
 * the region the model was last asked about; halving alone took ~50 free
 * iterations from a radius grown to 1e17 before a trial could be evaluated.  lambda after an accepted step: Nielsen's rule,
 * lambda *= max(1/3, 1 - (2 rho - 1)^3), nu = 2; after a rejection
 * lambda *= nu, nu *= 2 (capped at 1e8).
 *
 * The policy owns nothing: its state lives in nlsq__lm_state (checkpointed).
 */
#include "nlsq_internal.h"

#include <math.h>
#include <string.h>

double nlsq__scaled_norm(size_t p, const double *d2, const double *v)
{
    double s = 0.0;
    for (size_t j = 0; j < p; j++) s += d2[j] * v[j] * v[j];
    return sqrt(s);
}

void nlsq__damp_scale(size_t p, const double *A, nlsq__lm_state *st)
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

void nlsq__damp_start(nlsq__lm_state *st, const nlsq_options *opt, size_t p, const double *x)
{
    if (st->iteration == 0 && st->lambda <= 0) {
        st->lambda = opt->lambda0;
        st->nu = 2.0;
    }
    if (st->delta <= 0) {
        double xn = nlsq__scaled_norm(p, st->d2, x);
        st->delta = opt->step_bound * (xn > 0 ? xn : 1.0);
    }
}

int nlsq__damp_step(size_t p, const double *A, const double *g, const double *R,
                    const unsigned char *free_, nlsq__lm_state *st, double *dx, double *tmp,
                    double *work)
{
    double lam = st->lambda;
    for (int tries = 0;; tries++) {
        int rc = nlsq__damped_step(p, A, g, R, st->d2, free_, &lam, dx, work);
        if (rc) return rc;
        if (nlsq__scaled_norm(p, st->d2, dx) <= st->delta || tries >= 200) break;
        lam *= 2.0;
    }
    for (int tries = 0; tries < 60 && lam > 1e-12 &&
                        nlsq__scaled_norm(p, st->d2, dx) < 0.1 * st->delta; tries++) {
        double lam_try = lam * 0.1;
        if (nlsq__damped_step(p, A, g, R, st->d2, free_, &lam_try, tmp, work) != 0 ||
            nlsq__scaled_norm(p, st->d2, tmp) > st->delta)
            break;
        lam = lam_try;
        memcpy(dx, tmp, p * sizeof(double));
    }
    st->lambda = lam;
    return 0;
}

void nlsq__damp_ratio(nlsq__lm_state *st, double ratio, double snorm)
{
    if (ratio < 0.25) st->delta *= 0.5;
    else if (ratio > 0.75 && st->delta < 2.0 * snorm) st->delta = 2.0 * snorm;
}

void nlsq__damp_unmodelled(nlsq__lm_state *st, double snorm)
{
    double r = st->delta < snorm ? st->delta : snorm;
    st->delta = 0.5 * r;
}

void nlsq__damp_accepted(nlsq__lm_state *st, double ratio)
{
    double t = 2.0 * ratio - 1.0;
    double fac = 1.0 - t * t * t;
    st->lambda *= fac > 1.0 / 3.0 ? fac : 1.0 / 3.0;
    if (st->lambda < 1e-300) st->lambda = 1e-300;
    st->nu = 2.0;
}

int nlsq__damp_rejected(nlsq__lm_state *st)
{
    st->lambda *= st->nu;
    st->nu = st->nu < 1e8 ? st->nu * 2.0 : st->nu;
    return st->lambda < 1e300;
}
