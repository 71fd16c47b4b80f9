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
 *   parameter's bound (the interval is open there), or after 24 solves.
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
 * from a bad start.  Both starts can still be bad when the path curves (a
 * far first try, or a probe, on the XPCS shear valley lands where the shear
 * history is floored: D = 3126 for every t there, while the profile stays
 * at D = 0.0003): an outside verdict that came from a start more than four
 * times farther back than the inside point now is, is solved again from
 * there; if that is inside, the search goes on outwards (a right verdict
 * costs one solve more).  While the outside h is more than four times the
 * target the bracket is bisected: regula falsi would creep next to the
 * inside end.
 * A solve that ends STALLED counts (its cost is an upper bound, as a
 * limit's), and so does one that reaches 10 (p + 1) iterations: warm-started
 * next to their answer, held solves that need more creep along a curved
 * valley (up to the default 100 (p + 1) = 2000 on XPCS, 12,000 of one
 * profile's 15,000 iterations).  The costs are upper bounds either way: the
 * search can only find an interval narrower than the true one, never wider.
 * A solve that ends below C_min means x_hat was not the minimum: reported.
 * A threshold that depends on where the profile ends (nlsq_profile_adjust,
 * e.g. the robust widening V_rob / V_mod evaluated at the held fit there,
 * or a bootstrap quantile): after an end is found the caller's function
 * sees its held point (the solve at the end; at a bound the solve there;
 * after the step limit the farthest solve inside) and gives the threshold
 * q that applies there; the end is the first point outwards where D > q,
 * searched in rounds (adjusted_side) that go on from the last search's
 * points (side_resume: its end, or its farthest or second farthest point
 * inside, whichever lies inside the new interval; afresh from x_hat when
 * none does, the first try at the old distance times sqrt(new delta / old
 * delta), exact for a linear model), at most max_rounds searches.
 */
#include "nlsq_internal.h"

#include <math.h>
#include <string.h>

#define PROFILE_MAX_SOLVES 24

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
    if (nlsq__below_min(c1, P->cmin)) P->better = 1;
    *D = 2.0 * (c1 - P->cmin) / P->s2;
    return 0;
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

/* The search along one side, kept between rounds (a new threshold resumes
 * it): the farthest solve inside (its point P->x_in), the nearest outside,
 * and the end last found (its held point P->x_end).  Distances from x_hat_j,
 * h = sqrt(D), which does not depend on the threshold. */
typedef struct side {
    double d_in, h_in;
    double d_pv, h_pv;     /* the one inside before it (its point P->x_prev) */
    double d_out, h_out;   /* INFINITY, NAN: none */
    double d_from;         /* d_in when the outside solve was made: how far its start was */
    double d_end, h_end;
} side;

/* A new farthest point inside: x at distance d, h there.  The one before
 * becomes x_prev, and the path's tangent the secant between the two. */
static void side_inside(prof *P, side *S, const double *x, double d, double h)
{
    const size_t p = P->pb->n_params, j = P->j;
    S->d_pv = S->d_in;
    S->h_pv = S->h_in;
    S->d_in = d;
    S->h_in = h;
    memcpy(P->x_prev, P->x_in, p * sizeof(double));
    memcpy(P->x_in, x, p * sizeof(double));
    double dt = P->x_in[j] - P->x_prev[j];
    if (dt == 0.0) return;
    for (size_t k = 0; k < p; k++) P->tg[k] = (P->x_in[k] - P->x_prev[k]) / dt;
}

/* A fresh search from x_hat: the path's tangent from the covariance, or a
 * probe at 1 % of the first step where it has none.  *d: the first try. */
static int side_fresh(prof *P, const double *x_hat, double d_first, int dir, double room,
                      side *S, double *d)
{
    const size_t p = P->pb->n_params, j = P->j;
    S->d_in = S->h_in = S->d_pv = S->h_pv = 0.0;
    S->d_out = INFINITY;
    S->h_out = NAN;
    S->d_from = 0.0;
    memcpy(P->x_in, x_hat, p * sizeof(double));
    start_tangent(P);
    *d = d_first;
    if (isfinite(P->tg[j]) || !(room > 0)) return 0;
    double dp = fmin(0.01 * d_first, 0.5 * room), D;
    int rc = solve_at(P, x_hat[j] + dir * dp, P->x, &D);
    if (rc) return rc;
    double h = sqrt(D > 0 ? D : 0.0);
    if (D < P->delta) side_inside(P, S, P->x, dp, h);
    else { S->d_out = dp; S->h_out = h; *d = dp * sqrt(P->delta) / h; }   /* bracketed already */
    return 0;
}

/* The search for a new threshold, from what the last one found: 0 when it
 * can go on (*d: the next try), 1 when it must start afresh (neither of the
 * two farthest points inside the old interval is inside the new one). */
static int side_resume(prof *P, side *S, double *d)
{
    const size_t p = P->pb->n_params;
    const double target = sqrt(P->delta);
    if (!(S->h_in < target)) {            /* back to the point before the farthest */
        if (!(S->h_pv < target) || !(S->d_pv > 0)) return 1;
        S->d_out = S->d_in;
        S->h_out = S->h_in;
        S->d_from = S->d_pv;
        S->d_in = S->d_pv;
        S->h_in = S->h_pv;
        memcpy(P->x_in, P->x_prev, p * sizeof(double));   /* the path's tangent kept */
    }
    if (S->h_end < target) {              /* the last end lies inside now */
        if (S->d_end > S->d_in) side_inside(P, S, P->x_end, S->d_end, S->h_end);
    } else if (S->d_end < S->d_out) {     /* outside: the nearest known */
        S->d_out = S->d_end;
        S->h_out = S->h_end;
        S->d_from = S->d_in;
    }
    if (!(S->h_out > target)) { S->d_out = INFINITY; S->h_out = NAN; }
    if (!(S->d_in > 0) && !isfinite(S->d_out)) return 1;   /* nothing to go on from */
    if (isfinite(S->d_out))               /* regula falsi on h */
        *d = S->d_in + (target - S->h_in) * (S->d_out - S->d_in) / (S->h_out - S->h_in);
    else                                  /* h linear in d through x_hat, at most doubling */
        *d = S->h_in > 0 ? fmin(S->d_in * target / S->h_in, 2.0 * S->d_in) : 2.0 * S->d_in;
    return 0;
}

/* One end: direction dir = +1 / -1 from x_hat[j] at threshold P->delta, the
 * first try at distance d_first (> 0), or resuming S (resume: S holds the
 * last search on this side).  *end = the end (or the bound, *open = 1); its
 * held point into P->x_end. */
static int one_side(prof *P, const double *x_hat, double d_first, int dir, int resume,
                    side *S, double *end, int *open)
{
    const size_t p = P->pb->n_params, j = P->j;
    const double x0 = x_hat[j], target = sqrt(P->delta), tol = 1e-3 * P->delta;
    const double bound = dir > 0 ? (P->pb->upper ? P->pb->upper[j] : INFINITY)
                                 : (P->pb->lower ? P->pb->lower[j] : -INFINITY);
    const double room = fabs(bound - x0);
    double *xw = P->x, d;
    int rc = 0;
    if (!resume || side_resume(P, S, &d)) rc = side_fresh(P, x_hat, d_first, dir, room, S, &d);
    if (rc) return rc;
    double d_prev = S->d_in, h_prev = S->h_in;
    double hi = S->h_in, ho = S->h_out;     /* as S's, Illinois-scaled */
    int side_new = 0, run = 0;              /* which end the last solve replaced, how often in a row */
    *open = 0;
    for (int it = 0; it < PROFILE_MAX_SOLVES; it++) {
        if (d >= room) { d = room; }
        double D;
        /* from the farthest point inside (moved along the path): a solve beyond
         * the end may have run into another valley (or stopped at a limit)
         * that the next, nearer solve could not leave */
        rc = solve_at(P, x0 + dir * d, xw, &D);
        if (rc) return rc;
        double h = sqrt(D > 0 ? D : 0.0);
        int hit = fabs(D - P->delta) <= tol;
        if (hit || (h < target && d >= room)) {   /* the end, or the bound before it */
            *open = !hit;
            *end = hit ? x0 + dir * d : bound;
            S->d_end = d;
            S->h_end = h;
            memcpy(P->x_end, xw, p * sizeof(double));
            return 0;
        }
        if (h < target) {
            if (d > S->d_in) { side_inside(P, S, xw, d, h); hi = h; }
            if (d >= S->d_out) { S->d_out = INFINITY; S->h_out = ho = NAN; }   /* the re-test passed */
            /* Illinois: the outer end kept twice in a row: halve its excess */
            if (side_new == 1) ho = target + (ho - target) / 2;
            run = side_new == 1 ? run + 1 : 1;
            side_new = 1;
        } else {
            if (d <= S->d_out) { S->d_out = d; S->h_out = ho = h; S->d_from = S->d_in; }
            if (side_new == -1) hi = target - (target - hi) / 2;
            run = side_new == -1 ? run + 1 : 1;
            side_new = -1;
        }
        double next;
        if (isfinite(S->d_out)) {           /* bracketed: regula falsi on h */
            next = S->d_in + (target - hi) * (S->d_out - S->d_in) / (ho - hi);
            /* bisection when outside, when one end moved 3 times in a row
             * (a flat profile ending at a cliff: Illinois alone creeps), or
             * when the outside h is far above the target (a jump: regula
             * falsi would creep next to the inside end) */
            if (!(next > S->d_in && next < S->d_out) || run >= 3 || S->h_out > 4.0 * target)
                next = 0.5 * (S->d_in + S->d_out);
            /* The outside verdict came from a start far back: a solve from
             * there can stop on a floor of the model, where the other
             * parameters' gradient vanishes.  Solved again once the inside
             * point is four times nearer (at most one solve more where the
             * verdict was right) */
            if (S->d_out - S->d_in < 0.25 * (S->d_out - S->d_from)) next = S->d_out;
        } else {                            /* secant through the last two points */
            next = h > h_prev ? d_prev + (target - h_prev) * (d - d_prev) / (h - h_prev) : 2.0 * d;
            if (!(next > d) || next > 2.0 * d) next = 2.0 * d;
        }
        d_prev = d;
        h_prev = h;
        d = next;
    }
    *end = x0 + dir * (isfinite(S->d_out) ? 0.5 * (S->d_in + S->d_out) : S->d_in);
    *open = !isfinite(S->d_out);
    S->d_end = S->d_in;
    S->h_end = S->h_in;
    memcpy(P->x_end, P->x_in, p * sizeof(double));
    return 0;
}

/* The rounds of one end under a threshold rule q(t) (nlsq_profile_adjust):
 * t is accepted where D(t) <= q(t), and the end is the first change from
 * accepted to rejected going out from x_hat (where D = 0: accepted).  Each
 * round finds where D reaches a target (one_side) and asks the rule for q
 * there.  In h = sqrt(D), which grows along the side, g(h) = h - sqrt(q) is
 * < 0 where accepted: the rounds look for its first root.  They keep the
 * nearest rejected point and the farthest accepted one before it (x_hat
 * first, its q guessed as the first delta, which the rule's value at x_hat
 * is for fit_xpcs's robust threshold); with both the next target is regula
 * falsi on g between them (bisection where that falls outside), with only
 * accepted points the rule's q at the last (the fixed point h = sqrt(q),
 * going outward).  A rejection is never passed over: a farther accepted
 * point does not count once a nearer one rejects (the set where the test
 * accepts need not be an interval; the one reported is the piece around
 * x_hat that the rounds saw).  It stops when q and D agree to rtol, at a
 * bound that is accepted, or after max_rounds (the last search's end, not
 * checked, inside the bracket). */
typedef struct verdict {
    double h, g;          /* h = sqrt(D) at the point; g = h - sqrt(q) */
} verdict;

/* The next target h between the accepted a and the rejected r (g_a < 0 <
 * g_r): regula falsi, bisection when that is not well inside. */
static double bracket_target(const verdict *a, const verdict *r)
{
    double h = a->h - a->g * (r->h - a->h) / (r->g - a->g);
    double w = r->h - a->h;
    if (!(h > a->h + 0.1 * w && h < r->h - 0.1 * w)) h = 0.5 * (a->h + r->h);
    return h;
}

/* One end with the caller's threshold rule (adj, may be NULL): rounds as
 * above, at most max_rounds; each goes on from the last one's points
 * (side_resume), not from x_hat: a long first step from there can start on
 * the wall of a curved valley. */
static int adjusted_side(prof *P, const double *x_hat, double sig, int dir,
                         const nlsq_profile_adjust *adj, double *end, int *open,
                         double *delta_used, int *rounds)
{
    const int use = adj && adj->fn;
    const int max_rounds = use && adj->max_rounds > 0 ? adj->max_rounds : (use ? 3 : 1);
    const double rtol = use && adj->rtol > 0 ? adj->rtol : 0.1, delta0 = P->delta;
    double d_first = sig * sqrt(P->delta);
    verdict acc = {0.0, -sqrt(delta0)}, rej = {INFINITY, NAN};
    int kept = 0;   /* rounds in a row that replaced rej and kept acc */
    side S;
    int rc = 0;
    for (int round = 1;; round++) {
        rc = one_side(P, x_hat, d_first, dir, round > 1, &S, end, open);
        *delta_used = P->delta;
        *rounds = round;
        if (rc || round >= max_rounds) break;
        double q = P->delta;
        if (adj->fn(adj->ctx, P->j, dir, P->x_end, &q) != 0 || !(q >= 0) || !isfinite(q)) {
            rc = NLSQ_ECALLBACK;
            break;
        }
        const double h = S.h_end, D = h * h;   /* D at the end: delta, or less at a bound */
        if (fabs(q - D) <= rtol * q) break;
        verdict v = {h, h - sqrt(q)};
        if (D < q) {                           /* accepted */
            if (h < rej.h && h > acc.h) { acc = v; kept = 0; }
            if (*open) { *delta_used = q; break; }   /* accepted at the bound */
        } else if (h < rej.h) {                /* rejected, the nearest so far */
            rej = v;
            if (acc.h >= h) acc = (verdict){0.0, -sqrt(delta0)};
            /* Illinois: acc kept twice in a row (its g, at x_hat a guess,
             * too far below 0): halve it, or regula falsi creeps from rej */
            if (++kept >= 2) acc.g *= 0.5;
        }
        double target = isfinite(rej.h) ? bracket_target(&acc, &rej) : sqrt(q);
        double nd = target * target;
        /* afresh (side_resume refused): the first try at the old distance
         * times sqrt(nd / delta), exact for a linear model */
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
    /* A held solve starts next to its answer: one that needs more than
     * 10 (p + 1) iterations creeps along a curved valley (thousands of
     * iterations at the default limit), and its cost, an upper bound, serves
     * the search as a STALLED one's does */
    const size_t cap = 10 * (p + 1);
    const size_t mi = nlsq__max_iter(&P.opt, p);
    if (mi == 0 || mi > cap) P.opt.max_iter = cap;
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
