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
 *  2. Grid (global_grid.c).  The physical parameters on a coarse grid (D0
 *     and gamma_dot_0 at half-decade steps, alpha and beta on a few values,
 *     phi0 at four points across its bounds, the offsets 0), each point
 *     scored on every k-th entry of the sample (a few thousand) with each
 *     angle's contrast and offset solved linearly.
 *  3. Refine.  nlsq_lm on the sample, a few iterations each, from the
 *     caller's values (the model's defaults for the rest) and from the best
 *     few grid points (at most one per neighbourhood of the grid), each with
 *     the contrasts and offsets best for it; the best end carried on when it
 *     was still moving, then the best result's phi0 mirrored (-phi0).  (The
 *     data-driven start, nlsq_xpcs_start, is not a candidate: one call
 *     reads all rows, about 60 ms of CPU on the 23M benchmark.)  D_offset and
 *     gamma_dot_offset are held at 0 in these solves: with them free, the
 *     sample's noise moves its minimum far along the model's near-
 *     degenerate valleys (D0 t^alpha + D_offset; gamma_dot_0 t^beta +
 *     gamma_dot_offset, which for beta -> 0 is a + c ln t), which all the
 *     rows then take the full fit a hundred iterations to climb out of
 *     (the 23M benchmark: a start at D_offset -6760, gamma_dot_0 0.04, beta
 *     0.003 where the fit ends at 260, 0.001, 0.19).  Power laws through 0
 *     are a start in the right basin; the full fit frees the offsets.
 *  4. Pick the lowest sample cost.  Ambiguity: another refined end point
 *     whose cost is statistically indistinguishable on ALL rows (the sample's
 *     chi2 difference scaled by rows / sample rows below 1) while some
 *     physical parameter differs by more than 2 of its all-rows sigmas (the
 *     sample covariance scaled the same way): the data do not choose, and
 *     the result says so instead of picking silently.  Four angles 90 degrees
 *     apart make phi0 -> -phi0 an exact symmetry of the model.
 *
 * The caller then runs the full fit from the returned start.  Memory: the
 * sample's rows, the grid's entries and factors (global_grid.h), its costs
 * and the LM's sample workspaces, none of it growing with the data.
 * Everything is a pure function of the data and the arguments (no random
 * numbers, no timing); nlsq_lm is bitwise independent of the thread count.
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include "nlsq_xpcs.h"
#include "global_grid.h"
#include "xpcs_common.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GS_SAMPLE_ROWS 16384   /* default rows of the sample */
#define GS_GRID_ENTRIES 4096 /* entries the grid scores */
#define GS_REFINE 6            /* grid points refined by LM */
#define GS_REFINE_ITER 50      /* LM iterations per refinement (a start in the right basin
                                  converges in under 40 on the sample; beyond, a start
                                  is crawling somewhere worse) */
#define GS_POLISH_ITER 200     /* LM iterations of the best end and of its mirror */
#define GS_MAX_STARTS (GS_REFINE + 3)
#define GS_SEP_SIGMAS 2.0      /* "different parameters": this many all-rows sigmas */
#define GS_SAME_CHI2 1.0       /* "same cost": all-rows delta chi2 below this */

/* The sample: blocks of `len` model rows starting at start[b], inside one
 * angle each; sample row s is model row start[s / len] + s % len. */
typedef struct gs_sample {
    nlsq_problem full;     /* the model's problem */
    size_t np, P, p;       /* physical parameters, angles, all parameters */
    size_t len, n_blocks, n_rows;
    size_t *start;
    double *lo, *hi;       /* the sample problem's bounds: the offsets held at 0 */
    nlsq_problem sub;      /* the sample as a problem (never prepared: see sample_init) */
    char msg[NLSQ_CALLBACK_MSG_SIZE];   /* why a read or a sample solve failed */
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

static void sample_free(gs_sample *s)
{
    free(s->start);
    free(s->lo);
    free(s->hi);
}

static int sample_init(gs_sample *s, nlsq_xpcs_model *m, size_t want)
{
    memset(s, 0, sizeof *s);
    int rc = sample_layout(s, m, want);
    if (rc) return rc;
    s->lo = malloc(sizeof(double) * s->p);
    s->hi = malloc(sizeof(double) * s->p);
    if (!s->lo || !s->hi) return NLSQ_ENOMEM;
    memcpy(s->lo, s->full.lower, sizeof(double) * s->p);
    memcpy(s->hi, s->full.upper, sizeof(double) * s->p);
    for (size_t q = 2; q < s->np; q += 3)   /* D_offset, gamma_dot_offset: step 3 above */
        s->lo[q] = s->hi[q] = xpcs__clamp(0.0, s->lo[q], s->hi[q]);
    s->sub = s->full;
    s->sub.n_rows = s->n_rows;
    s->sub.ctx = s;
    s->sub.eval = sub_eval;
    s->sub.pattern = sub_pattern;
    /* The sample's solves do not call the model's prepare: it builds what
     * EVERY row needs at x (the pair factors of all n(n-1)/2 entries, O(n^2)
     * per point), while the sample evaluates a few blocks of rows.
     * Unprepared, each eval builds the O(n) tables of its block in the
     * worker's scratch; the kernel computes the pair factors it needs per
     * tile with the same code, so the values are the same bits either way
     * (model.c, model_kernel.c). */
    s->sub.prepare = NULL;
    s->sub.prepare_bytes = 0;
    s->sub.normal = NULL;   /* its units are the model's rows, not the sample's */
    s->sub.normal_units = 0;
    s->sub.lower = s->lo;
    s->sub.upper = s->hi;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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
static int refine(gs_run *g, const double *x0, size_t max_iter)
{
    size_t p = g->s->p;
    if (g->n_end >= GS_MAX_STARTS) return 0;
    gs_end *e = &g->end[g->n_end];
    for (size_t q = 0; q < p; q++) e->x[q] = xpcs__clamp(x0[q], g->s->lo[q], g->s->hi[q]);
    nlsq_result res;
    memset(&res, 0, sizeof res);
    res.covariance = g->work;
    for (size_t k = 0; k < p * p; k++) g->work[k] = NAN;
    g->opt.max_iter = max_iter;
    int st = nlsq_lm(&g->s->sub, &g->opt, e->x, &res);
    if (st == NLSQ_ENOMEM || st == NLSQ_ECALLBACK) {   /* the model's words, for the caller */
        xpcs__err(g->s->msg, sizeof g->s->msg, "%s", res.message);
        return st;
    }
    e->status = st;
    e->cost = (st >= 0 || st == NLSQ_STALLED) && isfinite(res.cost) ? res.cost : HUGE_VAL;
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


/* The caller's values (the model's defaults for the rest) and the grid's
 * picks, each with the contrasts and offsets best for it on the grid's
 * entries, for a few iterations; the best end carried on when it was still
 * moving (so that the mirror starts from a minimum); the best's mirror. */
static int refine_all(gs_run *g, const double *phys, const gs_grid *grid, const size_t *picks,
                      size_t n_picks, double *x)
{
    gs_sample *s = g->s;
    int rc;
    for (size_t q = 0; q < s->np; q++) {
        double v = phys && !isnan(phys[q]) ? phys[q] : grid->v.defaults[q];
        if (!isfinite(v)) return NLSQ_EINVAL;
        x[q] = xpcs__clamp(v, s->full.lower[q], s->full.upper[q]);
    }
    nlsq__xpcs_gg_score(grid, x);
    if ((rc = refine(g, x, GS_REFINE_ITER)) != 0) return rc;
    for (size_t k = 0; k < n_picks; k++) {
        nlsq__xpcs_gg_point(grid, picks[k], x);
        nlsq__xpcs_gg_score(grid, x);
        if ((rc = refine(g, x, GS_REFINE_ITER)) != 0) return rc;
    }
    if (g->end[g->best].status == NLSQ_MAX_ITER &&
        (rc = refine(g, g->end[g->best].x, GS_POLISH_ITER)) != 0)
        return rc;
    const double *lo = s->full.lower, *hi = s->full.upper;
    memcpy(x, g->end[g->best].x, sizeof(double) * s->p);
    if (s->np == NLSQ_XPCS_N_PHYS && x[6] != 0.0 && -x[6] >= lo[6] && -x[6] <= hi[6]) {
        x[6] = -x[6];
        nlsq__xpcs_gg_score(grid, x);
        if ((rc = refine(g, x, GS_POLISH_ITER)) != 0) return rc;
    }
    return 0;
}

static int run_init(gs_run *g, gs_sample *s, const nlsq_xpcs_global_options *go)
{
    memset(g, 0, sizeof *g);
    g->s = s;
    size_t p = s->p;
    nlsq_options_init(&g->opt);
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
    memset(&grid, 0, sizeof grid);
    double *gcost = NULL;
    size_t picks[GS_REFINE], n_picks = 0;
    int rc = sample_init(&s, m, want);
    if (rc == 0 && s.n_rows <= s.p) {   /* no degrees of freedom: nothing to compare */
        sample_free(&s);
        snprintf(res->message, sizeof res->message, "global start: too few rows, local start");
        rc = nlsq_xpcs_initial_guess(m, phys, x, s.msg, sizeof s.msg);
        if (rc != 0) snprintf(res->message, sizeof res->message, "%s", s.msg);
        return rc;
    }
    if (rc == 0) rc = run_init(&g, &s, go);
    else memset(&g, 0, sizeof g);
    if (rc == 0)
        rc = nlsq__xpcs_gg_init(&grid, m, s.start, s.n_blocks, s.len, GS_GRID_ENTRIES, s.msg,
                                sizeof s.msg);
    if (rc == 0 && !(gcost = malloc(sizeof(double) * grid.total))) rc = NLSQ_ENOMEM;
    if (rc == 0) rc = nlsq__xpcs_gg_search(&grid, gcost, n_ref, picks, &n_picks);
    if (rc == 0) rc = refine_all(&g, phys, &grid, picks, n_picks, x);
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
    } else {   /* why, for the caller (the sample's reads, the solves) */
        snprintf(res->message, sizeof res->message, "global start: %s",
                 s.msg[0] ? s.msg : nlsq_status_string(rc));
    }
    run_free(&g);
    sample_free(&s);
    nlsq__xpcs_gg_free(&grid);
    free(gcost);
    res->seconds = now_s() - t0;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* After the fit: the phi0 mirror of the fitted point                         */
/* ------------------------------------------------------------------------ */

/* Half the sum of squares of the sample's residuals at x into *f. */
static int sample_cost(gs_sample *s, const double *x, double *r, void *scratch, double *f)
{
    s->msg[0] = '\0';   /* why a read failed, for the caller */
    nlsq_eval_env env = {.scratch = scratch, .scratch_bytes = s->full.scratch_bytes,
                         .msg = s->msg, .msg_size = sizeof s->msg};
    if (sub_eval(s, x, 0, s->n_rows, r, NULL, &env) != 0) return NLSQ_ECALLBACK;
    double c = 0.0;
    for (size_t t = 0; t < s->n_rows; t++) c += 0.5 * r[t] * r[t];
    *f = c;
    return 0;
}

/* The mirror's chi2 above x's, scaled to all rows, into *dchi2. */
static int mirror_dchi2(gs_sample *s, const double *x, double *dchi2)
{
    double *r = malloc(sizeof(double) * s->n_rows), *y = malloc(sizeof(double) * s->p);
    void *scratch = s->full.scratch_bytes ? calloc(1, s->full.scratch_bytes) : NULL;
    int rc = r && y && (scratch || !s->full.scratch_bytes) ? 0 : NLSQ_ENOMEM;
    double f1 = NAN, f2 = NAN;
    if (rc == 0) {
        memcpy(y, x, sizeof(double) * s->p);
        y[6] = -x[6];
        rc = sample_cost(s, x, r, scratch, &f1);
        if (rc == 0) rc = sample_cost(s, y, r, scratch, &f2);
    }
    double dof = (double)s->n_rows - (double)s->p, s2 = 2.0 * f1 / dof;
    *dchi2 = rc == 0 && dof > 0 && s2 > 0
             ? 2.0 * (f2 - f1) / s2 * (double)s->full.n_rows / (double)s->n_rows : NAN;
    free(r);
    free(y);
    free(scratch);
    return rc;
}

int nlsq_xpcs_mirror_check(nlsq_xpcs_model *m, const double *x, const double *err,
                           const nlsq_xpcs_global_options *go, nlsq_xpcs_global_result *res)
{
    if (!m || !x || !err || !res) return NLSQ_EINVAL;
    gs_sample s;
    size_t want = go && go->sample_rows ? go->sample_rows : GS_SAMPLE_ROWS;
    int rc = sample_init(&s, m, want);
    double sig = s.np == NLSQ_XPCS_N_PHYS && err[6] > 0 ? 2.0 * fabs(x[6]) / err[6] : 0.0;
    double dchi2 = NAN;
    if (rc == 0 && s.n_rows > s.p && sig > GS_SEP_SIGMAS && -x[6] >= s.full.lower[6] &&
        -x[6] <= s.full.upper[6])
        rc = mirror_dchi2(&s, x, &dchi2);
    if (rc == 0 && dchi2 < GS_SAME_CHI2) {
        res->ambiguous = 1;
        res->delta_chi2 = dchi2;
        memcpy(res->alt, x, sizeof(double) * s.np);
        res->alt[6] = -x[6];
        snprintf(res->message, sizeof res->message,
                 "the fit's phi0 mirror fits the data equally well (delta chi2 about %.2g on "
                 "all rows): phi0 = %.6g (chosen) and %.6g differ by %.3g sigma",
                 dchi2, x[6], -x[6], sig);
    }
    if (rc != 0)
        snprintf(res->message, sizeof res->message, "mirror check: %s",
                 s.msg[0] ? s.msg : nlsq_status_string(rc));
    sample_free(&s);
    return rc;
}
