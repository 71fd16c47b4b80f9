/*
 * adam.c - mini-batch Adam over shuffled row blocks (memory O(batch_rows * p)).
 *
 * Batches.  The m rows are cut into nb = ceil(m / B) blocks of B rows
 * (B = adam.block_rows, 0: the engine chunk, which for Adam is at most
 * adam.batch_rows; B is clamped to adam.batch_rows).  A mini-batch is
 * k = adam.batch_rows / B (>= 1) consecutive blocks of the epoch's order; the
 * order is a Fisher-Yates shuffle of 0..nb-1 drawn each epoch from a
 * xoshiro256** generator seeded (through splitmix64) with opt->adam.seed, so every
 * row is used exactly once per epoch.  The blocks of a batch are sorted and
 * adjacent ones merged, so a file-backed callback reads contiguous rows.  The
 * gradient of a batch is J^T r over its rows (one NLSQ__PASS_GRAD engine pass
 * per contiguous run, summed in row order), scaled by m / rows to estimate the
 * full gradient.  Deterministic: same seed and options => bitwise the same
 * result, for any thread count (the engine's property).
 *
 * Normalisation.  Adam runs on u_j = (x_j - x0_j) / s_j with s_j = upper_j -
 * lower_j where both bounds are finite, else |x0_j|, else 1 (0 for a fixed
 * parameter), capped by the curvature scale sqrt(2 f0 / (J^T J)_jj) at the
 * start (the change of x_j that alone would move the residuals by about
 * their norm), so adam.lr is a fraction of each parameter's scale per step
 * and one learning rate fits D0 ~ 1e4 and phi0 ~ 1 alike, also when a
 * parameter's bounds are far wider than its effect (XPCS's gamma_dot_offset
 * in [-0.1, 0.1] acts on the scale of 1e-4).  The start pass forms
 * diag(J^T J) anyway; a resumed run recomputes it at x0 (one extra pass).
 * Bounds: x is projected onto the box after every step (every evaluated point
 * is feasible).
 *
 * Learning-rate schedule and plateau (stopping) rule: src/adam_policy.c.
 *
 * Scale-free arithmetic.  The start pass measures the largest residual; when
 * it lies outside [2^-200, 2^200] the engine multiplies residuals and
 * Jacobian by the power of two that brings it to [1, 2)
 * (nlsq__engine_autoscale) and the pass is redone (n_jac counts both).  The
 * whole run then works in those units: every cost, gradient and moment is
 * 4^k times the caller's, J^T r enters the moments through m1 / sqrt(v),
 * which a power of two does not change, so only adam.eps sees the scale (it
 * guards sqrt(v) of a gradient of order one instead of the caller's order).
 * The scale is fixed for the run (a run that moves its residuals by 2^200
 * from the start is not rescaled).  Costs, gradients and the covariance are
 * unscaled for the caller; the scale is part of the checkpointed state.
 *
 * Returned point: the end-of-epoch iterate of the epoch with the lowest
 * estimate (the start point, with its full cost, at first).  One full pass at
 * that point gives res->cost (and grad_norm); if that full cost is not <= the
 * full cost at the start, the start point is returned instead, so the result
 * is never worse than the start.
 *
 * Counting.  n_jac = ceil(rows through gradient passes / m) and n_eval =
 * ceil(rows through residual-only passes / m): full-pass equivalents.  The
 * start pass (gradient, full) and the final pass count as one each; an epoch
 * costs exactly one gradient pass.
 *
 * Progress: opt->progress once per epoch, phase NLSQ_PHASE_ADAM, cost = the
 * epoch estimate (sum of the batch costs, each row once), grad_norm = max of
 * the last batch's scaled gradient, lambda = the learning rate of the next
 * step, x = best point.  Checkpoints every checkpoint_every epochs.
 */
#include "nlsq_internal.h"
#include "nlsq_rng.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ RNG */

/* xoshiro256** seeded through splitmix64: nlsq_rng.h */

/* Uniform in [0, n), n >= 1, without modulo bias. */
static uint64_t rng_below(uint64_t s[4], uint64_t n)
{
    const uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = nlsq__xoshiro_next(s); while (v >= lim);
    return v % n;
}

/* ------------------------------------------------------------------ plan */

typedef struct adam_plan {
    size_t m, p;
    size_t B, nb, k, n_batches;
    size_t *perm;            /* nb: this epoch's block order */
    size_t *tmp;             /* k: one batch's blocks, sorted */
    double *s;               /* p: parameter scales */
    double *lo, *hi;         /* p: bounds */
    double *g, *gp;          /* p: batch gradient, one run's gradient */
} adam_plan;

static void plan_free(const nlsq_allocator *al, adam_plan *pl)
{
    nlsq__free(al, pl->perm);
    nlsq__free(al, pl->s);
    memset(pl, 0, sizeof *pl);
}

static void sort_small(size_t *v, size_t n)   /* insertion sort (k is small) */
{
    for (size_t i = 1; i < n; i++) {
        size_t t = v[i], j = i;
        while (j > 0 && v[j - 1] > t) { v[j] = v[j - 1]; j--; }
        v[j] = t;
    }
}

/* Batch plan for block size B and batch size k blocks (functions of m, the
 * engine chunk and the options only).  x0 must be set for the scales. */
static int plan_init(const nlsq__engine *e, const nlsq_options *opt, const double *x0,
                     adam_plan *pl)
{
    const nlsq_allocator *al = e->al;
    const nlsq_problem *pb = e->pb;
    memset(pl, 0, sizeof *pl);
    pl->m = pb->n_rows;
    pl->p = e->p;
    size_t B = opt->adam.block_rows ? opt->adam.block_rows : e->chunk_rows;
    if (B > opt->adam.batch_rows) B = opt->adam.batch_rows;
    if (B > pl->m) B = pl->m;
    if (B < 1) B = 1;
    pl->B = B;
    pl->nb = pl->m / B + (pl->m % B != 0);
    pl->k = opt->adam.batch_rows / B;
    if (pl->k < 1) pl->k = 1;
    if (pl->k > pl->nb) pl->k = pl->nb;
    pl->n_batches = pl->nb / pl->k + (pl->nb % pl->k != 0);

    /* size_t arrays: perm (nb), tmp (k) */
    size_t bytes;
    if (nlsq__mul_size(pl->nb + pl->k, sizeof(size_t), &bytes) != 0) return NLSQ_ENOMEM;
    pl->perm = nlsq__malloc(al, bytes);
    pl->s = nlsq__calloc(al, 5 * pl->p, sizeof(double));
    if (!pl->perm || !pl->s) { plan_free(al, pl); return NLSQ_ENOMEM; }
    pl->tmp = pl->perm + pl->nb;
    pl->lo = pl->s + pl->p;
    pl->hi = pl->lo + pl->p;
    pl->g = pl->hi + pl->p;
    pl->gp = pl->g + pl->p;

    for (size_t j = 0; j < pl->p; j++) {
        double lo = pb->lower ? pb->lower[j] : -INFINITY;
        double hi = pb->upper ? pb->upper[j] : INFINITY;
        pl->lo[j] = lo;
        pl->hi[j] = hi;
        double w = hi - lo;
        if (lo == hi) pl->s[j] = 0.0;
        else if (isfinite(w) && w > 0) pl->s[j] = w;
        else if (x0[j] != 0.0 && isfinite(x0[j])) pl->s[j] = fabs(x0[j]);
        else pl->s[j] = 1.0;
    }

    return 0;
}

/* ------------------------------------------------------------------ state */

int nlsq__adam_state_init(const nlsq_allocator *al, size_t p, nlsq__adam_state *st)
{
    memset(st, 0, sizeof *st);
    st->x = nlsq__calloc(al, 5 * p, sizeof(double));
    if (!st->x) return NLSQ_ENOMEM;
    st->x0 = st->x + p;
    st->m1 = st->x0 + p;
    st->v = st->m1 + p;
    st->best_x = st->v + p;
    st->lr_factor = 1.0;
    return 0;
}

void nlsq__adam_state_free(const nlsq_allocator *al, nlsq__adam_state *st)
{
    if (!st) return;
    nlsq__free(al, st->x);
    memset(st, 0, sizeof *st);
}

int nlsq__adam_engine_init(nlsq__engine *e, nlsq_options *eopt, const nlsq_problem *pb,
                           const nlsq_options *opt)
{
    *eopt = *opt;
    int rc = nlsq__engine_init(e, pb, eopt);
    if (rc == 0 && e->chunk_rows > opt->adam.batch_rows) {
        /* Chunks never larger than a batch: memory O(batch_rows * p). */
        nlsq__engine_free(e);
        eopt->chunk_rows = opt->adam.batch_rows;
        rc = nlsq__engine_init(e, pb, eopt);
    }
    return rc;
}

/* ------------------------------------------------------------------ helpers */

static double max_abs(size_t p, const double *v)
{
    double m = 0.0;
    for (size_t j = 0; j < p; j++) if (fabs(v[j]) > m) m = fabs(v[j]);
    return m;
}

static size_t ceil_div_u64(uint64_t a, uint64_t b) { return (size_t)(a / b + (a % b != 0)); }

/* One mini-batch: gradient and cost over the blocks perm[first .. first+n). */
static int batch_grad(nlsq__engine *e, adam_plan *pl, nlsq__adam_state *st, size_t first,
                      size_t n, double *cost, size_t *rows, int *bad)
{
    const size_t p = pl->p;
    memcpy(pl->tmp, pl->perm + first, n * sizeof(size_t));
    sort_small(pl->tmp, n);
    memset(pl->g, 0, p * sizeof(double));
    *cost = 0.0;
    *rows = 0;
    *bad = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && pl->tmp[j] == pl->tmp[j - 1] + 1) j++;
        size_t a = pl->tmp[i] * pl->B, b = pl->tmp[j - 1] * pl->B + pl->B;
        if (b > pl->m) b = pl->m;
        nlsq__acc acc = {.Jtr = pl->gp};
        int rc = nlsq__engine_pass(e, st->x, NLSQ__PASS_GRAD, a, b, &acc);
        st->grad_rows += b - a;
        if (rc) return rc;
        if (acc.n_nonfinite_r || acc.n_nonfinite_J) *bad = 1;
        *cost += acc.cost;
        *rows += b - a;
        for (size_t c = 0; c < p; c++) pl->g[c] += pl->gp[c];
        i = j;
    }
    return 0;
}

/* Unscaled value of a cost-like quantity of the state (scaled by 4^k). */
static double unscale2(const nlsq__adam_state *st, double v) { return ldexp(v, -2 * st->scale_exp); }

static void fill_counters(nlsq_result *res, const nlsq__adam_state *st, size_t m)
{
    if (!res) return;
    res->iterations = st->epoch;
    res->n_jac = ceil_div_u64(st->grad_rows, m);
    res->n_eval = ceil_div_u64(st->cost_rows, m);
    res->n_nonfinite = st->n_nonfinite;
    res->initial_cost = unscale2(st, st->initial_cost);
}

/* Full pass at x in mode (GRAD or NORMAL or COST); JtJ/Jtr into buffers. */
static int full_pass(nlsq__engine *e, nlsq__adam_state *st, const double *x, int mode,
                     double *JtJ, double *Jtr, nlsq__acc *acc)
{
    *acc = (nlsq__acc){.JtJ = JtJ, .Jtr = Jtr};
    int rc = nlsq__engine_pass(e, x, mode, 0, e->pb->n_rows, acc);
    if (mode == NLSQ__PASS_COST) st->cost_rows += e->pb->n_rows;
    else st->grad_rows += e->pb->n_rows;
    return rc;
}

/* s_j = min(s_j, sqrt(2 f0 / (J^T J)_jj)): see "Normalisation" above. */
static void cap_scales(adam_plan *pl, const double *JtJ, double f0)
{
    const size_t p = pl->p;
    for (size_t j = 0; j < p; j++) {
        double a = JtJ[j * p + j];
        if (pl->s[j] == 0.0 || !(a > 0) || !isfinite(a) || !(f0 > 0)) continue;
        double c = sqrt(2.0 * f0 / a);
        if (c < pl->s[j]) pl->s[j] = c;
    }
}

/* ------------------------------------------------------------------ the run */

/* How a step of the run goes on: to the next step, to the final pass at the
 * returned point (status in R->status), or to the exit without one. */
enum { RUN_ON = 0, RUN_FINAL, RUN_ABORT };

/* One run's working set. */
typedef struct adam_run {
    nlsq__engine *e;
    const nlsq_options *opt;
    const nlsq__adam_args *args;
    nlsq__adam_state *st;
    nlsq_result *res;
    double *x;               /* the caller's x: the best point so far, always */
    adam_plan pl;
    double *JtJ, *Jtr;       /* p*p + p, one allocation: full-pass sums */
    int status;
} adam_run;

static void run_close(adam_run *R)
{
    nlsq__engine_set_scale(R->e, 0);   /* the engine is the caller's again */
    nlsq__free(R->e->al, R->JtJ);
    plan_free(R->e->al, &R->pl);
}

/* Initialisation: the projected start point (a fresh run), the batch plan and
 * the full-pass buffers.  0 or the status (nothing evaluated yet). */
static int run_open(adam_run *R)
{
    const nlsq_problem *pb = R->e->pb;
    const size_t p = R->e->p;
    nlsq__adam_state *st = R->st;
    if (!st->started) {
        for (size_t j = 0; j < p; j++) {
            double lo = pb->lower ? pb->lower[j] : -INFINITY;
            double hi = pb->upper ? pb->upper[j] : INFINITY;
            double v = R->x[j] < lo ? lo : R->x[j] > hi ? hi : R->x[j];
            st->x0[j] = st->x[j] = st->best_x[j] = v;
        }
    }
    /* x holds the best point from here on, whatever happens. */
    memcpy(R->x, st->best_x, p * sizeof(double));
    int rc = plan_init(R->e, R->opt, st->x0, &R->pl);
    if (rc) return nlsq__finish(R->res, rc, "cannot allocate the Adam batch plan");
    R->JtJ = nlsq__calloc(R->e->al, p * p + p, sizeof(double));
    if (!R->JtJ)
        return nlsq__finish(R->res, NLSQ_ENOMEM, "cannot allocate Adam buffers (p = %zu)", p);
    R->Jtr = R->JtJ + p * p;
    return 0;
}

/* The start pass at x0: diag(J^T J) caps the scales.  A fresh run also
 * takes its initial cost and gradient there and seeds the shuffle; a resumed
 * one checks that the checkpoint's batch plan is this one.  RUN_ON or
 * RUN_ABORT. */
static int run_start(adam_run *R)
{
    nlsq__adam_state *st = R->st;
    const size_t p = R->e->p;
    nlsq__acc acc;
    nlsq__engine_set_scale(R->e, st->started ? st->scale_exp : 0);
    int rc = full_pass(R->e, st, st->x0, NLSQ__PASS_NORMAL, R->JtJ, R->Jtr, &acc);
    if (!rc && !st->started && !acc.n_nonfinite_r && !acc.n_nonfinite_J &&
        nlsq__engine_autoscale(R->e, &acc) != 0)   /* r^2 out of range: redo it scaled */
        rc = full_pass(R->e, st, st->x0, NLSQ__PASS_NORMAL, R->JtJ, R->Jtr, &acc);
    if (rc) {
        R->status = nlsq__finish(R->res, rc, "callback failed at the start point (chunk at row "
                                 "%zu)", R->e->callback_row);
        return RUN_ABORT;
    }
    if (st->started) {
        cap_scales(&R->pl, R->JtJ, st->initial_cost);
        if (st->seed == R->opt->adam.seed && st->block_rows == R->pl.B &&
            st->batch_blocks == R->pl.k)
            return RUN_ON;
        R->status = nlsq__finish(R->res, NLSQ_ECHECKPOINT, "checkpoint was written with another "
                                 "Adam batch plan (seed, block rows %zu, blocks per batch %zu; "
                                 "now %zu, %zu)", st->block_rows, st->batch_blocks, R->pl.B,
                                 R->pl.k);
        return RUN_ABORT;
    }
    if (acc.n_nonfinite_r || acc.n_nonfinite_J) {
        R->status = nlsq__finish(R->res, NLSQ_ENONFINITE, "non-finite %s at the start point",
                                 acc.n_nonfinite_r ? "residuals" : "Jacobian");
        return RUN_ABORT;
    }
    int sums_ok = isfinite(acc.cost);
    for (size_t j = 0; j < p && sums_ok; j++)
        sums_ok = isfinite(R->Jtr[j]) && isfinite(R->JtJ[j * p + j]);
    if (!sums_ok) {
        R->status = nlsq__finish(R->res, NLSQ_ENONFINITE, "the cost or J^T J overflows at the "
                                 "start point (residuals or Jacobian entries too large: rescale)");
        return RUN_ABORT;
    }
    st->scale_exp = R->e->scale_exp;
    st->initial_cost = acc.cost;
    st->initial_gnorm = max_abs(p, R->Jtr);
    cap_scales(&R->pl, R->JtJ, st->initial_cost);
    st->best_est = st->ref_est = st->initial_cost;
    nlsq__xoshiro_seed(st->rng, R->opt->adam.seed);
    st->seed = R->opt->adam.seed;
    st->block_rows = R->pl.B;
    st->batch_blocks = R->pl.k;
    st->lr_factor = 1.0;
    st->started = 1;
    return RUN_ON;
}

/* The stopping rule before an epoch (adam_policy.c).  RUN_ON or RUN_FINAL. */
static int run_stop_rule(adam_run *R)
{
    switch (nlsq__adam_stop(R->opt, R->st, R->args->epoch_cap)) {
    case NLSQ__ADAM_PLATEAU:
        R->status = NLSQ_CONVERGED_ADAM;
        return RUN_FINAL;
    case NLSQ__ADAM_NO_PROGRESS:
        R->status = nlsq__finish(R->res, NLSQ_MAX_ITER, "Adam made no progress in %zu epochs: "
                                 "no epoch improved on the start (try a smaller adam.lr)",
                                 R->st->epoch);
        return RUN_FINAL;
    case NLSQ__ADAM_EPOCH_CAP:
        R->status = NLSQ_MAX_ITER;
        return RUN_FINAL;
    default:
        return RUN_ON;
    }
}

/* The epoch's block order: a Fisher-Yates shuffle of 0 .. nb-1. */
static void epoch_shuffle(adam_plan *pl, uint64_t rng[4])
{
    for (size_t i = 0; i < pl->nb; i++) pl->perm[i] = i;
    for (size_t i = pl->nb; i > 1; i--) {
        size_t j = (size_t)rng_below(rng, (uint64_t)i);
        size_t t = pl->perm[i - 1];
        pl->perm[i - 1] = pl->perm[j];
        pl->perm[j] = t;
    }
}

/* One Adam step from the batch gradient pl->g over `rows` of the m rows:
 * moments in normalised units, bias correction, the step, projection onto
 * the box.  Returns max |estimated full gradient|. */
static double moment_step(adam_run *R, size_t rows)
{
    const nlsq_options *opt = R->opt;
    nlsq__adam_state *st = R->st;
    adam_plan *pl = &R->pl;
    const double b1 = opt->adam.beta1, b2 = opt->adam.beta2, eps = opt->adam.eps;
    st->step++;
    const double t = (double)st->step;
    const double lr = nlsq__adam_lr(opt, pl->n_batches, st->lr_factor, st->step);
    const double c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t);
    const double gs = (double)pl->m / (double)rows;
    double gmax = 0.0;
    for (size_t j = 0; j < pl->p; j++) {
        double gx = gs * pl->g[j];
        if (fabs(gx) > gmax) gmax = fabs(gx);
        if (pl->s[j] == 0.0) continue;
        double gu = gx * pl->s[j];
        st->m1[j] = b1 * st->m1[j] + (1.0 - b1) * gu;
        st->v[j] = b2 * st->v[j] + (1.0 - b2) * gu * gu;
        double mh = st->m1[j] / c1, vh = st->v[j] / c2;
        double xn = st->x[j] - lr * pl->s[j] * mh / (sqrt(vh) + eps);
        if (xn < pl->lo[j]) xn = pl->lo[j];
        if (xn > pl->hi[j]) xn = pl->hi[j];
        if (isfinite(xn)) st->x[j] = xn;
    }
    return gmax;
}

/* One epoch: shuffle, then per batch its gradient and an Adam step (a batch
 * with non-finite values is skipped).  *est: the epoch estimate, *gmax: the
 * last step's.  RUN_ON, RUN_FINAL (no finite batch) or RUN_ABORT. */
static int run_epoch(adam_run *R, double *est, double *gmax)
{
    adam_plan *pl = &R->pl;
    nlsq__adam_state *st = R->st;
    epoch_shuffle(pl, st->rng);
    *est = 0.0;
    *gmax = 0.0;
    size_t n_good = 0;
    for (size_t bi = 0; bi < pl->n_batches; bi++) {
        size_t first = bi * pl->k, n = pl->nb - first < pl->k ? pl->nb - first : pl->k;
        double bc;
        size_t rows;
        int bad;
        int rc = batch_grad(R->e, pl, st, first, n, &bc, &rows, &bad);
        if (rc) {
            R->status = nlsq__finish(R->res, rc, "callback failed in epoch %zu (chunk at row %zu); "
                                     "x is the best point so far", st->epoch + 1,
                                     R->e->callback_row);
            return RUN_ABORT;
        }
        *est += bc;
        if (bad) { st->n_nonfinite++; continue; }
        n_good++;
        *gmax = moment_step(R, rows);
    }
    st->epoch++;
    if (n_good) return RUN_ON;
    R->status = nlsq__finish(R->res, NLSQ_ENONFINITE, "every batch of epoch %zu had non-finite "
                             "residuals or Jacobian; x is the best point so far", st->epoch);
    return RUN_FINAL;
}

/* After an epoch: the plateau rule's counter and decay, the best point, the
 * log line, the progress callback and the checkpoint.  RUN_ON, RUN_FINAL (the
 * user stopped) or RUN_ABORT (the checkpoint could not be written). */
static int run_epoch_end(adam_run *R, double est, double gmax)
{
    const nlsq_options *opt = R->opt;
    nlsq__adam_state *st = R->st;
    const size_t p = R->e->p, m = R->pl.m;
    if (isnan(est)) est = INFINITY;
    nlsq__adam_plateau(opt, st, est);
    if (est < st->best_est) {
        st->best_est = est;
        memcpy(st->best_x, st->x, p * sizeof(double));
        memcpy(R->x, st->x, p * sizeof(double));
    }
    double lr_next = nlsq__adam_lr(opt, R->pl.n_batches, st->lr_factor, st->step + 1);
    double est_u = unscale2(st, est), gmax_u = unscale2(st, gmax);
    nlsq__log(opt, 0, "adam %4zu  estimate %.10e  |g| %.3e  lr %.3e  plateau %zu",
              st->epoch, est_u, gmax_u, lr_next, st->bad_epochs);
    if (opt->progress) {
        nlsq_progress_info info = {NLSQ_PHASE_ADAM, st->epoch, est_u, gmax_u, lr_next,
                                   nlsq__now() - R->args->t_start,
                                   ceil_div_u64(st->cost_rows, m),
                                   ceil_div_u64(st->grad_rows, m), st->best_x};
        if (opt->progress(opt->progress_ctx, &info) != 0) {
            R->status = nlsq__finish(R->res, NLSQ_EUSER_STOP, "stopped by the progress callback "
                                     "at epoch %zu", st->epoch);
            return RUN_FINAL;
        }
    }
    if (opt->checkpoint_path && opt->checkpoint_every && st->epoch % opt->checkpoint_every == 0) {
        int rc = nlsq__checkpoint_save_adam(R->e, opt, R->args->solver, st, R->res);
        if (rc) {
            R->status = rc;   /* the reason is in res->message */
            return RUN_ABORT;
        }
    }
    return RUN_ON;
}

/* The returned point: the best by epoch estimate, but the start point when a
 * full pass does not find it better.  Writes x, *cost, *gnorm and
 * *have_normal (J^T J at x in R->JtJ).  RUN_ON or RUN_ABORT. */
static int final_point(adam_run *R, double *cost, double *gnorm, int *have_normal)
{
    nlsq__adam_state *st = R->st;
    const size_t p = R->e->p;
    const int mode = R->args->final_mode;
    int at_start = memcmp(st->best_x, st->x0, p * sizeof(double)) == 0;
    nlsq__acc acc;
    *cost = st->initial_cost;
    *gnorm = st->initial_gnorm;
    *have_normal = 0;
    if (!at_start || mode == NLSQ__PASS_NORMAL) {
        int rc = full_pass(R->e, st, st->best_x, mode, R->JtJ, R->Jtr, &acc);
        if (rc) {
            R->status = nlsq__finish(R->res, rc, "callback failed in the final pass (chunk at "
                                     "row %zu)", R->e->callback_row);
            return RUN_ABORT;
        }
        int finite = !(acc.n_nonfinite_r || acc.n_nonfinite_J);
        if (finite && (at_start || acc.cost <= st->initial_cost)) {
            *cost = acc.cost;
            *gnorm = mode == NLSQ__PASS_COST ? NAN : max_abs(p, R->Jtr);
            *have_normal = mode == NLSQ__PASS_NORMAL;
        } else {
            nlsq__log(R->opt, 0, "adam: best point (full cost %.10e) not better than the start "
                      "(%.10e): returning the start point", unscale2(st, acc.cost),
                      unscale2(st, st->initial_cost));
            at_start = 1;
        }
    }
    memcpy(R->x, at_start ? st->x0 : st->best_x, p * sizeof(double));
    if (mode == NLSQ__PASS_NORMAL && !*have_normal) {
        int rc = full_pass(R->e, st, R->x, mode, R->JtJ, R->Jtr, &acc);
        if (rc || acc.n_nonfinite_r || acc.n_nonfinite_J) {
            R->status = nlsq__finish(R->res, rc ? rc : NLSQ_ENONFINITE, "final Jacobian pass "
                                     "failed (row %zu)", R->e->callback_row);
            return RUN_ABORT;
        }
        *have_normal = 1;
    }
    if (mode == NLSQ__PASS_COST && at_start) *gnorm = st->initial_gnorm;
    return RUN_ON;
}

/* The result at the returned point (and the covariance from its J^T J). */
static int run_result(adam_run *R, double cost, double gnorm, int have_normal)
{
    const nlsq_problem *pb = R->e->pb;
    nlsq_result *res = R->res;
    int status = R->status;
    const nlsq__adam_state *st = R->st;
    R->st->cost = cost;
    nlsq__finish(res, status, NULL);
    if (res) {
        res->cost = unscale2(st, cost);
        res->grad_norm = unscale2(st, gnorm);
        nlsq__result_dof(res, pb, R->e->n_obs, res->cost);
        res->n_active = 0;
        for (size_t j = 0; j < R->e->p; j++)
            if (R->x[j] <= R->pl.lo[j] || R->x[j] >= R->pl.hi[j]) res->n_active++;
        if (res->covariance && have_normal && status >= 0) {
            int rc = nlsq__covariance_at(pb, R->opt, R->e->al, R->x, R->JtJ, NULL, cost, R->e->n_obs,
                                         res->covariance, res);
            if (rc) status = nlsq__finish(res, rc, "covariance: eigen-decomposition failed");
            else if (R->opt->absolute_sigma) nlsq__unscale_cov(R->e->p, st->scale_exp, res->covariance);
        }
    }
    fill_counters(res, R->st, R->pl.m);
    run_close(R);
    return status;
}

/* An error without a usable final pass: x = best point; its cost is known
 * only when it is the start point. */
static int run_abort(adam_run *R)
{
    nlsq__adam_state *st = R->st;
    const size_t p = R->e->p;
    memcpy(R->x, st->best_x, p * sizeof(double));
    int at_start = memcmp(st->best_x, st->x0, p * sizeof(double)) == 0;
    st->cost = at_start && st->started ? st->initial_cost : NAN;
    if (R->res) {
        R->res->cost = unscale2(st, st->cost);
        R->res->grad_norm = at_start && st->started ? unscale2(st, st->initial_gnorm) : NAN;
    }
    fill_counters(R->res, st, R->pl.m);
    run_close(R);
    return R->status;
}

int nlsq__adam_run(nlsq__engine *e, const nlsq_options *opt, double *x, nlsq_result *res,
                   nlsq__adam_state *st, const nlsq__adam_args *args)
{
    adam_run R = {e, opt, args, st, res, x, {0}, NULL, NULL, NLSQ_MAX_ITER};
    int rc = run_open(&R);
    if (rc) {
        run_close(&R);
        return rc;
    }
    int flow = run_start(&R);
    if (flow == RUN_ON && res) res->initial_cost = unscale2(st, st->initial_cost);
    while (flow == RUN_ON) {
        double est, gmax;
        flow = run_stop_rule(&R);
        if (flow == RUN_ON) flow = run_epoch(&R, &est, &gmax);
        if (flow == RUN_ON) flow = run_epoch_end(&R, est, gmax);
    }
    double cost, gnorm;
    int have_normal;
    if (flow == RUN_FINAL) flow = final_point(&R, &cost, &gnorm, &have_normal);
    return flow == RUN_ABORT ? run_abort(&R) : run_result(&R, cost, gnorm, have_normal);
}

/* ------------------------------------------------------------------ public */

int nlsq__adam_solve(const nlsq_problem *pb, const nlsq_options *opt_in, double *x,
                     nlsq_result *res, nlsq__adam_state *resume)
{
    double t0 = nlsq__now();
    nlsq_options defaults;
    const nlsq_options *opt;
    int rc0 = nlsq__begin(pb, opt_in, &defaults, &opt, x != NULL, "x", resume ? NULL : x, res);
    if (rc0) return rc0;

    nlsq_options eopt;
    nlsq__engine e;
    int rc = nlsq__adam_engine_init(&e, &eopt, pb, opt);
    if (rc) return nlsq__finish(res, rc, "cannot allocate chunk buffers");
    nlsq__adam_state local, *st = resume;
    if (!st) {
        if (nlsq__adam_state_init(e.al, pb->n_params, &local) != 0) {
            nlsq__engine_free(&e);
            return nlsq__finish(res, NLSQ_ENOMEM, "cannot allocate the Adam state");
        }
        st = &local;
    }
    nlsq__adam_args args = {opt->adam.epochs, NLSQ__SOLVER_ADAM,
                            res && res->covariance ? NLSQ__PASS_NORMAL : NLSQ__PASS_GRAD, t0};
    int status = nlsq__adam_run(&e, opt, x, res, st, &args);
    if (!resume) nlsq__adam_state_free(e.al, &local);
    nlsq__engine_report(&e, res);
    nlsq__engine_free(&e);
    nlsq__single_phase(res, NLSQ_PHASE_ADAM, t0);
    return status;
}

int nlsq_adam(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res)
{
    return nlsq__adam_solve(pb, opt, x, res, NULL);
}
