/* profile.c - profile-likelihood intervals (the MINOS idea).
 *
 * For parameter j the profiled cost is C_j(t) = min { cost(x) : x_j = t },
 * each value an LM solve with lower_j = upper_j = t (a fixed parameter) from
 * a warm start.  With C_min the cost at the minimum and s^2 = 2 C_min /
 * (n - p_free) (1 with absolute_sigma), the interval is where
 *     D(t) = 2 (C_j(t) - C_min) / s^2  <=  delta      (delta = 1: 1 sigma)
 * and its ends are searched on each side separately:
 *   h(t) = sqrt(max(D(t), 0)) is close to linear in t (exactly |t - x_j| /
 *   sigma_j for a linear model), so the first try is x_j +- sigma_j sqrt(delta)
 *   and the next ones solve h = sqrt(delta) by the secant through the last
 *   two points (the first from x_j, where h = 0), by regula falsi (Illinois)
 *   once the end is bracketed, bisection when one end moved three times in a
 *   row (a flat profile that ends at a cliff); steps at most double the
 *   distance.  Stop when
 *   |D - delta| <= tol (1e-3 delta, about 1e-4 of sigma), or at the
 *   parameter's bound (the interval is open there), or after max_solves.
 * Every solve starts from the point of the farthest solve inside the
 * interval on its side (x_hat first): a solve beyond the end may end in
 * another valley, or at a limit, from which the next one could not return.
 * Moving x_j alone can leave a narrow curved valley entirely (a parameter
 * tied to others, as gamma_dot_0 to gamma_dot_offset and beta in XPCS,
 * where x_j +- sigma_j alone drives the shear history below its floor and
 * the gradient of the others vanishes): so the others are moved along the
 * predicted profile path too, x_k = x_in_k + T_k (t - x_in_j), with T the
 * path's tangent: Cov_kj / Cov_jj at x_hat (exact for a quadratic cost),
 * then the secant through the last two points inside.  Where the covariance
 * gives no tangent (x_j undetermined) the first solve is a probe at 1 % of
 * the first step, which gives the secant.  A solve that ends outside the
 * interval is repeated from the plain warm start (x_in with x_j = t) and the
 * lower cost kept: an outside verdict ends the search, so it must not come
 * from a bad start.
 * A solve that ends STALLED counts (its cost is an upper bound, as a
 * limit's).  A solve that ends below C_min means x_hat was not the
 * minimum: reported.
 * A threshold that depends on where the profile ends (nlsq_profile_adjust,
 * e.g. the robust widening V_rob / V_mod evaluated at the held fit there):
 * after an end is found the caller's function sees its held point (the
 * solve at the end; at a bound the solve there; after the step limit the
 * farthest solve inside) and may change delta; when it moved by more than
 * rtol the end is searched again, from x_hat, the first try at the old
 * distance times sqrt(new delta / old delta) (exact for a linear model),
 * at most max_rounds searches.  An end at a bound stays there when delta
 * grows, without a search.
 */
#include "nlsq_internal.h"

#include <math.h>
#include <string.h>

#define PROFILE_MAX_SOLVES 16

typedef struct prof {
    const nlsq_problem *pb;
    nlsq_problem fixed;        /* pb with x_j held */
    nlsq_options opt;          /* the caller's, no checkpoints, tighter ftol */
    double *lo, *hi, *x;       /* p each: the bounds of `fixed`, work point */
    double *x_in;              /* p: the point of the farthest solve inside the interval */
    double *x_prev;            /* p: the one before it (the secant of the path) */
    double *tg, *x_alt;        /* p each: the path's tangent (NAN: none), a second start */
    double *cov;               /* p*p: the covariance at x_hat (prof_start) */
    double *x_end;             /* p: the held point at the end last found */
    size_t j;
    double cmin, s2, delta;
    size_t n_solves;
    int better;
} prof;

/* One solve with x_j = t from (and into) xw: its cost. */
static int solve_from(prof *P, double t, double *xw, double *cost)
{
    P->lo[P->j] = P->hi[P->j] = t;
    xw[P->j] = t;
    nlsq_result r;
    memset(&r, 0, sizeof r);
    int st = nlsq_lm(&P->fixed, &P->opt, xw, &r);
    P->n_solves++;
    if (st < 0 && st != NLSQ_STALLED) return st;   /* stalled: a usable cost (an upper bound) */
    *cost = r.cost;
    return 0;
}

/* The start on the predicted path: x_in moved by tg (t - x_in_j) inside the
 * bounds.  0 when there is no tangent. */
static int path_start(const prof *P, double t, double *xw)
{
    const size_t p = P->pb->n_params;
    memcpy(xw, P->x_in, p * sizeof(double));
    if (!isfinite(P->tg[P->j])) return 0;
    const double dt = t - P->x_in[P->j];
    for (size_t k = 0; k < p; k++) {
        if (k == P->j || P->lo[k] == P->hi[k]) continue;
        double v = P->x_in[k] + P->tg[k] * dt;
        if (v < P->lo[k]) v = P->lo[k];
        if (v > P->hi[k]) v = P->hi[k];
        xw[k] = v;
    }
    return 1;
}

/* D(t): a solve from the predicted path; when that ends outside (D > delta),
 * a second one from the plain warm start x_in, the lower cost kept.  xw: the
 * solution. */
static int solve_at(prof *P, double t, double *xw, double *D)
{
    const size_t p = P->pb->n_params;
    double c1, c2;
    int moved = path_start(P, t, xw);
    int rc = solve_from(P, t, xw, &c1);
    if (rc) return rc;
    if (moved && 2.0 * (c1 - P->cmin) / P->s2 > P->delta) {
        memcpy(P->x_alt, P->x_in, p * sizeof(double));
        rc = solve_from(P, t, P->x_alt, &c2);
        if (rc) return rc;
        if (c2 < c1) { c1 = c2; memcpy(xw, P->x_alt, p * sizeof(double)); }
    }
    if (c1 < P->cmin - 1e-9 * P->cmin) P->better = 1;
    *D = 2.0 * (c1 - P->cmin) / P->s2;
    return 0;
}

/* A new farthest point inside, xw at distance d: the tangent becomes the
 * secant from the previous one. */
static void move_inside(prof *P, const double *xw)
{
    const size_t p = P->pb->n_params, j = P->j;
    memcpy(P->x_prev, P->x_in, p * sizeof(double));
    memcpy(P->x_in, xw, p * sizeof(double));
    double dt = P->x_in[j] - P->x_prev[j];
    if (dt == 0.0) return;
    for (size_t k = 0; k < p; k++) P->tg[k] = (P->x_in[k] - P->x_prev[k]) / dt;
}

/* The tangent at x_hat, Cov_kj / Cov_jj, or NAN in tg[j] when the covariance
 * has none (x_j or a parameter tied to it undetermined). */
static void start_tangent(prof *P)
{
    const size_t p = P->pb->n_params, j = P->j;
    double cjj = P->cov[j * p + j];
    P->tg[j] = NAN;
    if (!(isfinite(cjj) && cjj > 0)) return;
    for (size_t k = 0; k < p; k++) {
        double v = P->cov[k * p + j] / cjj;
        if (!isfinite(v)) v = 0.0;   /* an undetermined k: left where it is */
        P->tg[k] = v;
    }
    P->tg[j] = 1.0;
}

/* One end: direction dir = +1 / -1 from x_hat[j], the first try at distance
 * d_first (> 0) or sig sqrt(delta) (sig > 0: the step guess).  *end = the
 * end (or the bound, *open = 1); its held point into P->x_end. */
static int one_side(prof *P, const double *x_hat, double sig, double d_first, int dir,
                    double *end, int *open)
{
    const size_t p = P->pb->n_params, j = P->j;
    const double x0 = x_hat[j], target = sqrt(P->delta), tol = 1e-3 * P->delta;
    const double bound = dir > 0 ? (P->pb->upper ? P->pb->upper[j] : INFINITY)
                                 : (P->pb->lower ? P->pb->lower[j] : -INFINITY);
    double *xw = P->x;
    memcpy(P->x_in, x_hat, p * sizeof(double));
    start_tangent(P);
    double d_in = 0.0, h_in = 0.0;          /* farthest distance with h < target */
    double d_out = INFINITY, h_out = NAN;   /* nearest distance with h > target */
    double d = d_first > 0 ? d_first : sig * target, d_prev = 0.0, h_prev = 0.0;
    int side_new = 0, run = 0;              /* which end the last solve replaced, how often in a row */
    const double room = fabs(bound - x0);
    *open = 0;
    if (!isfinite(P->tg[j]) && room > 0) {  /* no tangent: a probe at 1 % of the step */
        double dp = fmin(0.01 * d, 0.5 * room), D;
        int rc = solve_at(P, x0 + dir * dp, xw, &D);
        if (rc) return rc;
        double h = sqrt(D > 0 ? D : 0.0);
        if (D < P->delta) { d_in = d_prev = dp; h_in = h_prev = h; move_inside(P, xw); }
        else { d_out = dp; h_out = h; d = dp * target / h; }   /* bracketed already */
    }
    for (int it = 0; it < PROFILE_MAX_SOLVES; it++) {
        if (d >= room) { d = room; }
        double D;
        /* from the farthest point inside (moved along the path): a solve beyond
         * the end may have run into another valley (or stopped at a limit)
         * that the next, nearer solve could not leave */
        int rc = solve_at(P, x0 + dir * d, xw, &D);
        if (rc) return rc;
        double h = sqrt(D > 0 ? D : 0.0);
        int hit = fabs(D - P->delta) <= tol;
        if (hit || (h < target && d >= room)) {   /* the end, or the bound before it */
            *open = !hit;
            *end = hit ? x0 + dir * d : bound;
            memcpy(P->x_end, xw, p * sizeof(double));
            return 0;
        }
        if (h < target) {
            if (d > d_in) { d_in = d; h_in = h; move_inside(P, xw); }
            /* Illinois: the outer end kept twice in a row: halve its excess */
            if (side_new == 1) h_out = target + (h_out - target) / 2;
            run = side_new == 1 ? run + 1 : 1;
            side_new = 1;
        } else {
            if (d < d_out) { d_out = d; h_out = h; }
            if (side_new == -1) h_in = target - (target - h_in) / 2;
            run = side_new == -1 ? run + 1 : 1;
            side_new = -1;
        }
        double next;
        if (isfinite(d_out)) {              /* bracketed: regula falsi on h */
            next = d_in + (target - h_in) * (d_out - d_in) / (h_out - h_in);
            /* bisection when outside, or when one end moved 3 times in a row
             * (a flat profile ending at a cliff: Illinois alone creeps) */
            if (!(next > d_in && next < d_out) || run >= 3) next = 0.5 * (d_in + d_out);
        } else {                            /* secant through the last two points */
            next = h > h_prev ? d_prev + (target - h_prev) * (d - d_prev) / (h - h_prev) : 2.0 * d;
            if (!(next > d) || next > 2.0 * d) next = 2.0 * d;
        }
        d_prev = d;
        h_prev = h;
        d = next;
    }
    *end = x0 + dir * (isfinite(d_out) ? 0.5 * (d_in + d_out) : d_in);
    *open = !isfinite(d_out);
    memcpy(P->x_end, P->x_in, p * sizeof(double));
    return 0;
}

/* One end with the caller's threshold rule (adj, may be NULL): searches
 * until the rule's delta stays within rtol, at most max_rounds. */
static int adjusted_side(prof *P, const double *x_hat, double sig, int dir,
                         const nlsq_profile_adjust *adj, double *end, int *open,
                         double *delta_used, int *rounds)
{
    const int use = adj && adj->fn;
    const int max_rounds = use && adj->max_rounds > 0 ? adj->max_rounds : (use ? 3 : 1);
    const double rtol = use && adj->rtol > 0 ? adj->rtol : 0.1, delta0 = P->delta;
    double d_first = 0.0;
    int rc = 0;
    for (int round = 1;; round++) {
        rc = one_side(P, x_hat, sig, d_first, dir, end, open);
        *delta_used = P->delta;
        *rounds = round;
        if (rc || round >= max_rounds) break;
        double nd = P->delta;
        if (adj->fn(adj->ctx, P->j, dir, P->x_end, &nd) != 0 || !(nd > 0) || !isfinite(nd)) {
            rc = NLSQ_ECALLBACK;
            break;
        }
        if (fabs(nd - P->delta) <= rtol * P->delta) break;
        if (*open && nd > P->delta) { *delta_used = nd; break; }   /* still at the bound */
        d_first = fabs(*end - x_hat[P->j]) * sqrt(nd / P->delta);
        P->delta = nd;
    }
    P->delta = delta0;
    return rc;
}

/* C_min (one solve from x_hat, all free) and the step guess sigma_j. */
static int prof_start(prof *P, double *x_hat, double *sig)
{
    const size_t p = P->pb->n_params;
    nlsq_result r;
    memset(&r, 0, sizeof r);
    double *cov = P->cov;
    r.covariance = cov;
    int st = nlsq_lm(P->pb, &P->opt, x_hat, &r);
    P->n_solves++;
    if (st == NLSQ_STALLED) st = 0;   /* usable, like a limit (flat valleys stall) */
    if (st >= 0) {
        double dof = r.dof;   /* the observations its passes counted */
        P->cmin = r.cost;
        P->s2 = P->opt.absolute_sigma ? 1.0 : 2.0 * r.cost / dof;
        double v = cov[P->j * p + P->j];
        *sig = isfinite(v) && v > 0 ? sqrt(v) : 0.1 * fmax(fabs(x_hat[P->j]), 1e-3);
        if (!(P->s2 > 0) || !isfinite(P->s2)) st = NLSQ_EINVAL;
    }
    return st < 0 ? st : 0;
}

int nlsq_profile(const nlsq_problem *pb, const nlsq_options *opt_in, const double *x_hat,
                 size_t j, double delta, const nlsq_profile_adjust *adj, nlsq_interval *out)
{
    nlsq_options defaults;
    const nlsq_options *opt;
    int rc0 = nlsq__begin(pb, opt_in, &defaults, &opt, x_hat && out, "x_hat or out", x_hat, NULL);
    if (rc0) return rc0;
    if (out) memset(out, 0, sizeof *out);
    if (j >= pb->n_params || !(delta > 0) || !isfinite(delta)) return NLSQ_EINVAL;
    if (pb->lower && pb->upper && pb->lower[j] == pb->upper[j]) return NLSQ_EINVAL;
    /* no degrees of freedom: EINVAL once the minimum's solve has counted them */
    const size_t p = pb->n_params;
    prof P;
    memset(&P, 0, sizeof P);
    P.pb = pb;
    P.opt = *opt;
    P.opt.checkpoint_path = NULL;
    P.opt.progress = NULL;
    P.j = j;
    P.delta = delta;
    const nlsq_allocator *al = &opt->allocator;
    double *mem = nlsq__calloc(al, 9 * p + p * p, sizeof(double));
    if (!mem) return NLSQ_ENOMEM;
    P.lo = mem;
    P.hi = mem + p;
    P.x = mem + 2 * p;
    P.x_in = mem + 4 * p;
    P.x_prev = mem + 5 * p;
    P.tg = mem + 6 * p;
    P.x_alt = mem + 7 * p;
    P.x_end = mem + 8 * p;
    P.cov = mem + 9 * p;
    double *xh = mem + 3 * p;
    memcpy(xh, x_hat, p * sizeof(double));
    for (size_t k = 0; k < p; k++) {
        P.lo[k] = pb->lower ? pb->lower[k] : -INFINITY;
        P.hi[k] = pb->upper ? pb->upper[k] : INFINITY;
    }
    P.fixed = *pb;
    P.fixed.lower = P.lo;
    P.fixed.upper = P.hi;
    double sig = 0.0;
    int rc = prof_start(&P, xh, &sig);
    /* the profile's costs must be good to a small part of the rise s^2 delta / 2 */
    double ftol = 1e-3 * 0.5 * P.s2 * delta / (P.cmin > 0 ? P.cmin : 1.0);
    if (ftol < 1e-14) ftol = 1e-14;
    if (!rc && ftol < P.opt.ftol) {        /* C_min to the same precision */
        P.opt.ftol = ftol;
        rc = prof_start(&P, xh, &sig);
    }
    if (!rc)
        rc = adjusted_side(&P, xh, sig, -1, adj, &out->lower, &out->lower_open,
                           &out->delta_lower, &out->rounds_lower);
    if (!rc)
        rc = adjusted_side(&P, xh, sig, +1, adj, &out->upper, &out->upper_open,
                           &out->delta_upper, &out->rounds_upper);
    out->n_solves = P.n_solves;
    out->cost_min = P.cmin;
    out->better_min = P.better;
    out->x_min = xh[j];
    nlsq__free(al, mem);
    return rc;
}
