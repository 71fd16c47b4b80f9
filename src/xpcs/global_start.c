/*
 * global_start.c - a start point in the global minimum's basin for the XPCS
 * model (nlsq_xpcs_global_start in nlsq_xpcs.h).
 *
 * A local fit (LM) ends in whichever basin its start lies in; for this model
 * a plausible bad start ends on a wrong minimum (D0 at its bound, phi0 at the
 * wrong sign).  The stage, on a fixed-size deterministic subsample of rows:
 *
 *  1. Sample.  Per angle, blocks of about n consecutive rows (one matrix row:
 *     every lag), evenly spaced through the angle's rows, each angle's blocks
 *     shifted by a fraction a/P of the spacing so that the angles together
 *     see many more frames (t1) than one angle does.  About sample_rows rows
 *     in all, whatever the size of the data.
 *  2. Grid.  The physical parameters on a coarse grid: D0 and gamma_dot_0 at
 *     half-decade steps between their bounds, alpha and beta on a few values,
 *     phi0 at four points across its bounds (both signs), D_offset and
 *     gamma_dot_offset 0 (clamped into the bounds).  The model is linear in
 *     each angle's contrast and offset: r = r00 + c dc + o do, where r00 (the
 *     residual at c = o = 0) and do depend on the data only and dc on the
 *     physical point; so each candidate costs one residual pass over the
 *     sample and a 2 x 2 least-squares solve per angle (clamped to the
 *     bounds).
 *  3. Refine.  nlsq_lm on the sample from the best few grid points (at most
 *     one per neighbourhood of the grid), from the caller's start
 *     (nlsq_xpcs_initial_guess), from the data-driven start
 *     (nlsq_xpcs_start, with and without the caller's values) and from
 *     the best result's phi0 mirrored (-phi0).
 *  4. Pick the lowest sample cost.  Ambiguity: another refined end point
 *     whose cost is statistically indistinguishable on ALL rows (the sample's
 *     chi2 difference scaled by rows / sample rows below 1) while some
 *     physical parameter differs by more than 2 of its all-rows sigmas (the
 *     sample covariance scaled the same way): the data do not choose, and
 *     the result says so instead of picking silently.  Four angles 90 degrees
 *     apart make phi0 -> -phi0 an exact symmetry of the model.
 *
 * The caller then runs the full fit from the returned start.  Memory: four
 * sample-length vectors, the grid's costs and the LM's sample workspaces.
 * Everything is a pure function of the data and the arguments (no random
 * numbers, no timing); nlsq_lm is bitwise independent of the thread count.
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include "nlsq_xpcs.h"
#include "xpcs_common.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GS_SAMPLE_ROWS 16384   /* default rows of the sample */
#define GS_REFINE 6            /* grid points refined by LM */
#define GS_REFINE_ITER 200     /* LM iterations per refinement */
#define GS_MAX_STARTS (GS_REFINE + 4)
#define GS_SEP_SIGMAS 2.0      /* "different parameters": this many all-rows sigmas */
#define GS_SAME_CHI2 1.0       /* "same cost": all-rows delta chi2 below this */

/* The sample: blocks of `len` model rows starting at start[b], inside one
 * angle each; sample row s is model row start[s / len] + s % len. */
typedef struct gs_sample {
    nlsq_problem full;     /* the model's problem */
    size_t np, P, p;       /* physical parameters, angles, all parameters */
    size_t len, n_blocks, n_rows;
    size_t *start;
    double *r00, *dof_, *dc;   /* residual at c = o = 0; d r / d offset; d r / d contrast */
    nlsq_problem sub;      /* the sample as a problem (never prepared: see sample_pass) */
    void *scratch;         /* the model's scratch, for direct passes */
    char msg[NLSQ_CALLBACK_MSG_SIZE];
} gs_sample;

static size_t sub_pattern(void *ctx, size_t row0, size_t nrows, size_t *cols, size_t *k)
{
    const gs_sample *s = ctx;
    size_t b = row0 / s->len, off = row0 % s->len, left = s->len - off;
    if (b >= s->n_blocks) return 0;
    size_t n = s->full.pattern(s->full.ctx, s->start[b] + off, nrows < left ? nrows : left, cols, k);
    return n;
}

/* Rows of the sample; a range with a Jacobian lies inside one block (the
 * pattern cuts there), a residual-only range may span blocks (their
 * observation counts added up). */
static int sub_eval(void *ctx, const double *x, size_t row0, size_t nrows, double *r, double *J,
                    const nlsq_eval_env *env_in)
{
    const gs_sample *s = ctx;
    size_t done = 0, obs = 0, piece = 0;
    nlsq_eval_env own = env_in ? *env_in : (nlsq_eval_env){0};
    const nlsq_eval_env *env = env_in ? &own : NULL;
    own.n_obs = env_in && env_in->n_obs ? &piece : NULL;
    while (done < nrows) {
        size_t g = row0 + done, b = g / s->len, off = g % s->len, n = s->len - off;
        if (b >= s->n_blocks) return 1;
        if (n > nrows - done) n = nrows - done;
        if (J && n != nrows) return 1;
        piece = n;
        int rc = s->full.eval(s->full.ctx, x, s->start[b] + off, n, r + done, J, env);
        if (rc) return rc;
        obs += piece;
        done += n;
    }
    if (own.n_obs) *env_in->n_obs = obs;
    return 0;
}

/* Angles, physical parameters and the block layout of the sample. */
static int sample_layout(gs_sample *s, nlsq_xpcs_model *m, size_t want)
{
    size_t cols[NLSQ_XPCS_N_PHYS + 2], k = 0;
    nlsq_xpcs_model_problem(m, &s->full);
    s->p = s->full.n_params;
    if (s->full.pattern(s->full.ctx, 0, 1, cols, &k) != 1 || k < 3 || k - 2 > NLSQ_XPCS_N_PHYS)
        return NLSQ_EINVAL;
    s->np = k - 2;
    s->P = (s->p - s->np) / 2;
    if (s->P == 0 || s->full.n_rows % s->P) return NLSQ_EINVAL;
    size_t R = s->full.n_rows / s->P;         /* rows per angle */
    size_t per = want / s->P;                 /* sample rows per angle */
    size_t n = 2;                             /* frames: R = n(n-1)/2 or about */
    while (n * (n - 1) / 2 < R && n < ((size_t)1 << 31)) n++;
    s->len = n < R && s->full.n_rows > want ? n : R;    /* small data: all rows */
    size_t nb = per / s->len;
    if (nb < 1) nb = 1;
    if (nb > R / s->len) nb = R / s->len;
    s->n_blocks = nb * s->P;
    s->n_rows = s->n_blocks * s->len;
    s->start = malloc(sizeof(size_t) * s->n_blocks);
    if (!s->start) return NLSQ_ENOMEM;
    double space = (double)(R - s->len) / (double)nb;
    for (size_t a = 0; a < s->P; a++)
        for (size_t q = 0; q < nb; q++) {
            double pos = space * ((double)q + ((double)a + 0.5) / (double)s->P);
            size_t l = (size_t)pos;
            if (l > R - s->len) l = R - s->len;
            s->start[a * nb + q] = a * R + l;
        }
    return 0;
}

/* A residual pass over the sample at x, outside a solve.  Neither this pass
 * nor the sample's LM solves call the model's prepare: it builds what EVERY
 * row needs at x (the pair factors of all n(n-1)/2 entries, O(n^2) per
 * point), while the sample evaluates a few blocks of rows.  Unprepared, each
 * eval builds the O(n) tables of its block in the scratch; the kernel
 * computes the pair factors it needs per tile with the same code, so the
 * values are the same bits either way (model.c, model_kernel.c). */
static int sample_pass(gs_sample *s, const double *x, double *r)
{
    nlsq_eval_env env = {0, NULL, s->scratch, s->full.scratch_bytes, 0, s->msg, sizeof s->msg, NULL};
    s->msg[0] = '\0';
    return sub_eval(s, x, 0, s->n_rows, r, NULL, &env) != 0 ? NLSQ_ECALLBACK : 0;
}

/* r00 and d r / d offset over the sample (they do not depend on the
 * physical parameters: at contrast 0 the model is the offset). */
static int sample_data(gs_sample *s, double *x)
{
    for (size_t q = 0; q < s->p; q++)   /* any physical point: contrast 0 hides it */
        x[q] = q < s->np ? xpcs__clamp(0.0, s->full.lower[q], s->full.upper[q]) : 0.0;
    int rc = sample_pass(s, x, s->r00);
    for (size_t a = 0; a < s->P && rc == 0; a++) x[s->np + 2 * a + 1] = 1.0;
    if (rc == 0) rc = sample_pass(s, x, s->dof_);
    for (size_t t = 0; t < s->n_rows && rc == 0; t++) s->dof_[t] -= s->r00[t];
    return rc ? NLSQ_ECALLBACK : 0;
}

static void sample_free(gs_sample *s)
{
    free(s->start);
    free(s->r00);
    free(s->dof_);
    free(s->dc);
    free(s->scratch);
}

static int sample_init(gs_sample *s, nlsq_xpcs_model *m, size_t want, double *x)
{
    memset(s, 0, sizeof *s);
    int rc = sample_layout(s, m, want);
    if (rc) return rc;
    s->r00 = malloc(sizeof(double) * s->n_rows);
    s->dof_ = malloc(sizeof(double) * s->n_rows);
    s->dc = malloc(sizeof(double) * s->n_rows);
    if (!s->r00 || !s->dof_ || !s->dc) return NLSQ_ENOMEM;
    /* zeroed, aligned for double (malloc), as the solvers hand it */
    if (s->full.scratch_bytes && !(s->scratch = calloc(1, s->full.scratch_bytes)))
        return NLSQ_ENOMEM;
    s->sub = s->full;
    s->sub.n_rows = s->n_rows;
    s->sub.ctx = s;
    s->sub.eval = sub_eval;
    s->sub.pattern = sub_pattern;
    s->sub.prepare = NULL;   /* see sample_pass */
    s->sub.prepare_bytes = 0;
    return sample_data(s, x);
}

/* ------------------------------------------------------------------------ */
/* One candidate: its cost with the best contrast and offset per angle       */
/* ------------------------------------------------------------------------ */

/* Minimise sum (r00 + c dc + o do)^2 over one angle's sample rows [t0, t1),
 * c and o in their bounds; the cost (half the sum) is returned. */
static double linear_fit(const gs_sample *s, size_t t0, size_t t1, const double *lo,
                         const double *hi, double *c, double *o)
{
    double cc = 0, co = 0, oo = 0, cr = 0, or_ = 0, rr = 0;
    for (size_t t = t0; t < t1; t++) {
        double u = s->dc[t], w = s->dof_[t], r = s->r00[t];
        cc += u * u; co += u * w; oo += w * w; cr += u * r; or_ += w * r; rr += r * r;
    }
    double det = cc * oo - co * co, cv = 0.0, ov;
    if (det > 1e-12 * cc * oo && det > 0) cv = (-cr * oo + or_ * co) / det;
    cv = xpcs__clamp(cv, lo[0], hi[0]);
    ov = oo > 0 ? -(or_ + cv * co) / oo : 0.0;
    ov = xpcs__clamp(ov, lo[1], hi[1]);
    *c = cv;
    *o = ov;
    double f = rr + 2 * cv * cr + 2 * ov * or_ + cv * cv * cc + 2 * cv * ov * co + ov * ov * oo;
    return 0.5 * (f > 0 ? f : 0);
}

/* Cost over the sample at the physical point x[0..np) (contrasts and offsets
 * best for it, written into x).  NAN when the model cannot be evaluated. */
static double candidate_cost(gs_sample *s, double *x)
{
    for (size_t a = 0; a < s->P; a++) {
        x[s->np + 2 * a] = 1.0;
        x[s->np + 2 * a + 1] = 0.0;
    }
    if (sample_pass(s, x, s->dc) != 0) return NAN;
    for (size_t t = 0; t < s->n_rows; t++) s->dc[t] -= s->r00[t];
    size_t per = s->n_rows / s->P;
    double f = 0.0;
    for (size_t a = 0; a < s->P; a++) {
        size_t ic = s->np + 2 * a;
        double lo[2] = {s->full.lower[ic], s->full.lower[ic + 1]};
        double hi[2] = {s->full.upper[ic], s->full.upper[ic + 1]};
        f += linear_fit(s, a * per, (a + 1) * per, lo, hi, &x[ic], &x[ic + 1]);
    }
    return f;
}

/* ------------------------------------------------------------------------ */
/* The grid                                                                   */
/* ------------------------------------------------------------------------ */

#define GS_DIMS 5   /* D0, alpha, gamma_dot_0, beta, phi0 */
static const size_t k_dim_param[GS_DIMS] = {0, 1, 3, 4, 6};

typedef struct gs_grid {
    size_t n[GS_DIMS], total;
    double v[GS_DIMS][16];
} gs_grid;

/* Half-decade steps from lo to hi (lo <= 0: from hi / 1e4), at most 13. */
static size_t log_axis(double lo, double hi, double *out)
{
    if (!(hi > 0) || !isfinite(hi)) return 0;
    double l = lo > 0 ? lo : hi * 1e-4;
    if (!(hi > l)) { out[0] = hi; return 1; }
    size_t n = (size_t)(2.0 * log10(hi / l) + 0.5) + 1;
    n = n < 2 ? 2 : (n > 13 ? 13 : n);
    for (size_t k = 0; k < n; k++) out[k] = l * pow(hi / l, (double)k / (double)(n - 1));
    return n;
}

/* The listed values clamped into [lo, hi], repeats dropped. */
static size_t list_axis(const double *vals, size_t n, double lo, double hi, double *out)
{
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        double v = xpcs__clamp(vals[k], lo, hi);
        if (m == 0 || v != out[m - 1]) out[m++] = v;
    }
    return m;
}

static void grid_init(gs_grid *g, const gs_sample *s)
{
    static const double alphas[] = {-1.0, -0.5, 0.0, 0.5, 1.0}, betas[] = {-0.5, 0.0, 0.5};
    const double *lo = s->full.lower, *hi = s->full.upper;
    memset(g, 0, sizeof *g);
    g->n[0] = log_axis(lo[0], hi[0], g->v[0]);
    g->n[1] = list_axis(alphas, 5, lo[1], hi[1], g->v[1]);
    g->n[2] = g->n[3] = g->n[4] = 1;              /* static: no shear */
    if (s->np == NLSQ_XPCS_N_PHYS) {
        g->n[2] = log_axis(lo[3], hi[3], g->v[2]);
        g->n[3] = list_axis(betas, 3, lo[4], hi[4], g->v[3]);
        double quarter[4];
        int finite = isfinite(lo[6]) && isfinite(hi[6]);
        for (int k = 0; k < 4; k++)
            quarter[k] = finite ? lo[6] + (k + 0.5) * (hi[6] - lo[6]) / 4.0 : -7.5 + 5.0 * k;
        g->n[4] = list_axis(quarter, 4, lo[6], hi[6], g->v[4]);
    }
    g->total = 1;
    for (int d = 0; d < GS_DIMS; d++) g->total *= g->n[d] ? g->n[d] : 0;
}

/* Grid point `idx` -> its per-dimension indices and the physical values. */
static void grid_point(const gs_grid *g, const gs_sample *s, size_t idx, size_t *ix, double *x)
{
    const double *lo = s->full.lower, *hi = s->full.upper;
    for (size_t q = 0; q < s->np; q++) x[q] = xpcs__clamp(0.0, lo[q], hi[q]);   /* offsets 0 */
    for (int d = GS_DIMS - 1; d >= 0; d--) {
        ix[d] = idx % g->n[d];
        idx /= g->n[d];
        if (k_dim_param[d] < s->np) x[k_dim_param[d]] = g->v[d][ix[d]];
    }
}

typedef struct gs_rank { double f; size_t idx; } gs_rank;

static int rank_cmp(const void *pa, const void *pb)
{
    const gs_rank *a = pa, *b = pb;
    if (a->f < b->f) return -1;
    if (a->f > b->f) return 1;
    return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

/* Every grid point's cost; the best `want` points, at most one per grid
 * neighbourhood (indices within 1 in every dimension), into picks. */
static int grid_search(gs_sample *s, const gs_grid *g, double *x, size_t want, size_t *picks,
                       size_t *n_picks)
{
    gs_rank *rk = malloc(sizeof(gs_rank) * g->total);
    if (!rk) return NLSQ_ENOMEM;
    size_t ix[GS_DIMS], jx[GS_DIMS];
    for (size_t c = 0; c < g->total; c++) {
        grid_point(g, s, c, ix, x);
        double f = candidate_cost(s, x);
        rk[c].f = isfinite(f) ? f : HUGE_VAL;
        rk[c].idx = c;
    }
    qsort(rk, g->total, sizeof *rk, rank_cmp);
    *n_picks = 0;
    for (size_t c = 0; c < g->total && *n_picks < want; c++) {
        if (!(rk[c].f < HUGE_VAL)) break;
        grid_point(g, s, rk[c].idx, ix, x);
        int near = 0;
        for (size_t q = 0; q < *n_picks && !near; q++) {
            grid_point(g, s, picks[q], jx, x);
            near = 1;
            for (int d = 0; d < GS_DIMS; d++)
                if (ix[d] + 1 < jx[d] || jx[d] + 1 < ix[d]) near = 0;
        }
        if (!near) picks[(*n_picks)++] = rk[c].idx;
    }
    free(rk);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Refinement on the sample and the choice                                   */
/* ------------------------------------------------------------------------ */

typedef struct gs_end {
    double *x;       /* p values */
    double cost;
    int status;
} gs_end;

typedef struct gs_run {
    gs_sample *s;
    nlsq_options opt;
    gs_end end[GS_MAX_STARTS];
    size_t n_end, best;
    double *cov;     /* p x p: the best end's sample covariance */
    double *work;    /* p x p */
} gs_run;

/* LM on the sample from x0 (p values, feasible): one more end point; the
 * best end's covariance kept.  A hard error (memory, data) is returned. */
static int refine(gs_run *g, const double *x0)
{
    size_t p = g->s->p;
    if (g->n_end >= GS_MAX_STARTS) return 0;
    gs_end *e = &g->end[g->n_end];
    memcpy(e->x, x0, sizeof(double) * p);
    nlsq_result res;
    memset(&res, 0, sizeof res);
    res.covariance = g->work;
    for (size_t k = 0; k < p * p; k++) g->work[k] = NAN;
    int st = nlsq_lm(&g->s->sub, &g->opt, e->x, &res);
    if (st == NLSQ_ENOMEM || st == NLSQ_ECALLBACK) return st;
    e->status = st;
    e->cost = (st >= 0 || st == NLSQ_STALLED) && isfinite(res.cost) ? res.cost : HUGE_VAL;
#ifdef GS_DEBUG
    fprintf(stderr, "refine %zu: st %d it %zu cost %.6f ->", g->n_end, st, res.iterations, e->cost);
    for (size_t q = 0; q < g->s->np; q++) fprintf(stderr, " %.5g", e->x[q]);
    fprintf(stderr, "  from");
    for (size_t q = 0; q < g->s->np; q++) fprintf(stderr, " %.4g", x0[q]);
    fprintf(stderr, "\n");
#endif
    if (g->n_end == 0 || e->cost < g->end[g->best].cost) {
        g->best = g->n_end;
        memcpy(g->cov, g->work, sizeof(double) * p * p);
    }
    g->n_end++;
    return 0;
}

/* The physical parameter that differs most between ends a and b, in
 * all-rows sigmas of the best end (scale = sample rows / all rows); the
 * number of sigmas into *sig. */
static size_t most_different(const gs_run *g, const double *xa, const double *xb, double scale,
                             double *sig)
{
    size_t arg = 0, p = g->s->p;
    *sig = 0.0;
    for (size_t q = 0; q < g->s->np; q++) {
        double v = g->cov[q * p + q] * scale, d = fabs(xa[q] - xb[q]);
        /* undetermined (or fixed) parameters do not tell minima apart: the
         * fit's flags report them */
        double z = v > 0 && isfinite(v) ? d / sqrt(v) : 0.0;
        if (z > *sig) { *sig = z; arg = q; }
    }
    return arg;
}

/* Another end as good on all rows with different parameters: res->ambiguous. */
static void ambiguity(const gs_run *g, nlsq_xpcs_global_result *res)
{
    const gs_sample *s = g->s;
    const gs_end *b = &g->end[g->best];
    double dof = (double)s->n_rows - (double)s->p;
    double s2 = dof > 0 ? 2.0 * b->cost / dof : NAN, ratio = (double)s->full.n_rows / (double)s->n_rows;
    if (!(s2 > 0)) return;
    for (size_t k = 0; k < g->n_end; k++) {
        const gs_end *e = &g->end[k];
        if (k == g->best || !(e->cost < HUGE_VAL)) continue;
        double dchi2 = 2.0 * (e->cost - b->cost) / s2 * ratio, sig;
        size_t q = most_different(g, b->x, e->x, 1.0 / ratio, &sig);
        if (dchi2 >= GS_SAME_CHI2 || sig <= GS_SEP_SIGMAS) continue;
        if (res->ambiguous && dchi2 >= res->delta_chi2) continue;
        res->ambiguous = 1;
        res->delta_chi2 = dchi2;
        memcpy(res->alt, e->x, sizeof(double) * s->np);
        snprintf(res->message, sizeof res->message,
                 "two minima fit the data equally well (delta chi2 about %.2g on all rows): "
                 "%s = %.6g (chosen) and %s = %.6g differ by %.3g sigma",
                 dchi2, nlsq_xpcs_param_name(q), b->x[q], nlsq_xpcs_param_name(q), e->x[q], sig);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The given values (fixed defaults for the rest), the data-driven start
 * with and without them, the grid's picks, the best's mirror. */
static int refine_all(gs_run *g, nlsq_xpcs_model *m, const double *phys, const gs_grid *grid,
                      const size_t *picks, size_t n_picks, double *x)
{
    gs_sample *s = g->s;
    int given = 0, rc;
    for (size_t q = 0; phys && q < s->np; q++) given |= !isnan(phys[q]);
    if ((rc = nlsq_xpcs_initial_guess(m, phys, x)) != 0 || (rc = refine(g, x)) != 0) return rc;
    if ((rc = nlsq_xpcs_start(m, phys, NULL, x)) != 0 || (rc = refine(g, x)) != 0) return rc;
    if (given && ((rc = nlsq_xpcs_start(m, NULL, NULL, x)) != 0 || (rc = refine(g, x)) != 0))
        return rc;
    size_t ix[GS_DIMS];
    for (size_t k = 0; k < n_picks; k++) {
        grid_point(grid, s, picks[k], ix, x);
        candidate_cost(s, x);
        if ((rc = refine(g, x)) != 0) return rc;
    }
    const double *lo = s->full.lower, *hi = s->full.upper;
    memcpy(x, g->end[g->best].x, sizeof(double) * s->p);
    if (s->np == NLSQ_XPCS_N_PHYS && x[6] != 0.0 && -x[6] >= lo[6] && -x[6] <= hi[6]) {
        x[6] = -x[6];
        if ((rc = refine(g, x)) != 0) return rc;
    }
    return 0;
}

static int run_init(gs_run *g, gs_sample *s, const nlsq_xpcs_global_options *go)
{
    memset(g, 0, sizeof *g);
    g->s = s;
    size_t p = s->p;
    nlsq_options_init(&g->opt);
    g->opt.max_iter = GS_REFINE_ITER;
    g->opt.n_threads = go ? go->n_threads : 0;
    g->cov = malloc(sizeof(double) * p * p);
    g->work = malloc(sizeof(double) * p * p);
    if (!g->cov || !g->work) return NLSQ_ENOMEM;
    for (size_t k = 0; k < GS_MAX_STARTS; k++)
        if (!(g->end[k].x = malloc(sizeof(double) * p))) return NLSQ_ENOMEM;
    return 0;
}

static void run_free(gs_run *g)
{
    free(g->cov);
    free(g->work);
    for (size_t k = 0; k < GS_MAX_STARTS; k++) free(g->end[k].x);
}

int nlsq_xpcs_global_start(nlsq_xpcs_model *m, const double *phys,
                           const nlsq_xpcs_global_options *go, double *x,
                           nlsq_xpcs_global_result *res)
{
    if (!m || !x || !res) return NLSQ_EINVAL;
    if (go && (go->n_threads < 0 || go->n_threads > NLSQ_MAX_THREADS)) return NLSQ_EINVAL;
    double t0 = now_s();
    memset(res, 0, sizeof *res);
    size_t want = go && go->sample_rows ? go->sample_rows : GS_SAMPLE_ROWS;
    size_t n_ref = go && go->n_refine ? go->n_refine : GS_REFINE;
    if (n_ref > GS_REFINE) n_ref = GS_REFINE;
    gs_sample s;
    gs_run g;
    gs_grid grid;
    size_t picks[GS_REFINE], n_picks = 0;
    int rc = sample_init(&s, m, want, x);
    if (rc == 0 && s.n_rows <= s.p) {   /* no degrees of freedom: nothing to compare */
        sample_free(&s);
        snprintf(res->message, sizeof res->message, "global start: too few rows, local start");
        return nlsq_xpcs_initial_guess(m, phys, x);
    }
    if (rc == 0) rc = run_init(&g, &s, go);
    else memset(&g, 0, sizeof g);
    if (rc == 0) {
        grid_init(&grid, &s);
        rc = grid_search(&s, &grid, x, n_ref, picks, &n_picks);
    }
    if (rc == 0) rc = refine_all(&g, m, phys, &grid, picks, n_picks, x);
    if (rc == 0 && !(g.end[g.best].cost < HUGE_VAL)) rc = NLSQ_ECALLBACK;
    if (rc == 0) {
        memcpy(x, g.end[g.best].x, sizeof(double) * s.p);
        res->n_grid = grid.total;
        res->n_refined = g.n_end;
        res->sample_rows = s.n_rows;
        res->sample_cost = g.end[g.best].cost;
        snprintf(res->message, sizeof res->message,
                 "global start: %zu grid points and %zu LM solves on %zu sample rows",
                 res->n_grid, res->n_refined, res->sample_rows);
        ambiguity(&g, res);
    }
    run_free(&g);
    sample_free(&s);
    res->seconds = now_s() - t0;
    return rc;
}
