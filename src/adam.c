/*
 * adam.c - mini-batch Adam over shuffled row blocks (memory O(batch_rows * p)).
 *
 * Batches.  The m rows are cut into nb = ceil(m / B) blocks of B rows
 * (B = adam_block_rows, 0: the engine chunk, which for Adam is at most
 * adam_batch_rows; B is clamped to adam_batch_rows).  A mini-batch is
 * k = adam_batch_rows / B (>= 1) consecutive blocks of the epoch's order; the
 * order is a Fisher-Yates shuffle of 0..nb-1 drawn each epoch from a
 * xoshiro256** generator seeded (through splitmix64) with opt->seed, so every
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
 * their norm), so adam_lr is a fraction of each parameter's scale per step
 * and one learning rate fits D0 ~ 1e4 and phi0 ~ 1 alike, also when a
 * parameter's bounds are far wider than its effect (XPCS's gamma_dot_offset
 * in [-0.1, 0.1] acts on the scale of 1e-4).  The start pass forms
 * diag(J^T J) anyway; a resumed run recomputes it at x0 (one extra pass).
 * Bounds: x is projected onto the box after every step (every evaluated point
 * is feasible).
 *
 * Learning-rate schedule: linear warm-up, then reduce-on-plateau:
 *     lr(t) = adam_lr * f * min(1, t / W),   W = min(1000, batches per epoch),
 * t the step count from 1; f starts at 1 and halves each time the plateau
 * counter (below) reaches a multiple of max(1, adam_patience / 2).
 *
 * Plateau rule, on epoch estimates.  The epoch estimate is the sum of the
 * batch costs of the epoch (each taken at the point the batch's gradient was
 * computed): every row counts exactly once, so it estimates the full cost
 * along the epoch's path at no extra pass.  (A fixed monitor subset of row
 * blocks was tried and dropped: when rows are ordered by the design, as in
 * XPCS files, a few contiguous blocks are not representative and their
 * optimum is biased.)  An epoch makes progress when its estimate is below
 * ref * (1 - adam_plateau_rtol), ref being the estimate of the last epoch
 * that made progress (the full cost at the start at first), so a slow steady
 * decrease adds up and counts.  After adam_patience consecutive epochs
 * without progress the run stops with NLSQ_CONVERGED_ADAM (adam_patience = 0:
 * no plateau stop) - unless no epoch ever improved on the start, which is a
 * failure to make progress (too large a learning rate, typically), reported
 * as NLSQ_MAX_ITER with a message, never as convergence; the epoch cap gives
 * NLSQ_MAX_ITER.
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

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ RNG */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(uint64_t s[4], uint64_t seed)
{
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&sm);
}

static uint64_t rotl64(uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4])   /* xoshiro256** */
{
    const uint64_t result = rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, n), n >= 1, without modulo bias. */
static uint64_t rng_below(uint64_t s[4], uint64_t n)
{
    const uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = xoshiro_next(s); while (v >= lim);
    return v % n;
}

/* ------------------------------------------------------------------ plan */

typedef struct adam_plan {
    size_t m, p;
    size_t B, nb, k, n_batches, warmup, decay_every;
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
    size_t B = opt->adam_block_rows ? opt->adam_block_rows : e->chunk_rows;
    if (B > opt->adam_batch_rows) B = opt->adam_batch_rows;
    if (B > pl->m) B = pl->m;
    if (B < 1) B = 1;
    pl->B = B;
    pl->nb = pl->m / B + (pl->m % B != 0);
    pl->k = opt->adam_batch_rows / B;
    if (pl->k < 1) pl->k = 1;
    if (pl->k > pl->nb) pl->k = pl->nb;
    pl->n_batches = pl->nb / pl->k + (pl->nb % pl->k != 0);
    pl->warmup = pl->n_batches < 1000 ? pl->n_batches : 1000;
    pl->decay_every = opt->adam_patience >= 2 ? opt->adam_patience / 2 : 1;

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
    if (rc == 0 && e->chunk_rows > opt->adam_batch_rows) {
        /* Chunks never larger than a batch: memory O(batch_rows * p). */
        nlsq__engine_free(e);
        eopt->chunk_rows = opt->adam_batch_rows;
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

static double lr_at(const nlsq_options *opt, const adam_plan *pl, const nlsq__adam_state *st,
                    uint64_t t)
{
    double w = t < (uint64_t)pl->warmup ? (double)t / (double)pl->warmup : 1.0;
    return opt->adam_lr * st->lr_factor * w;
}

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
        nlsq__acc acc = {NULL, pl->gp, 0, 0, 0, 0, 0};
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

static void fill_counters(nlsq_result *res, const nlsq__adam_state *st, size_t m)
{
    if (!res) return;
    res->iterations = st->epoch;
    res->n_jac = ceil_div_u64(st->grad_rows, m);
    res->n_eval = ceil_div_u64(st->cost_rows, m);
    res->n_nonfinite = st->n_nonfinite;
    res->initial_cost = st->initial_cost;
}

/* Full pass at x in mode (GRAD or NORMAL or COST); JtJ/Jtr into buffers. */
static int full_pass(nlsq__engine *e, nlsq__adam_state *st, const double *x, int mode,
                     double *JtJ, double *Jtr, nlsq__acc *acc)
{
    *acc = (nlsq__acc){JtJ, Jtr, 0, 0, 0, 0, 0};
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

int nlsq__adam_run(nlsq__engine *e, const nlsq_options *opt, double *x, nlsq_result *res,
                   nlsq__adam_state *st, const nlsq__adam_args *args)
{
    const nlsq_problem *pb = e->pb;
    const nlsq_allocator *al = e->al;
    const size_t p = e->p, m = pb->n_rows;
    const double b1 = opt->adam_beta1, b2 = opt->adam_beta2, eps = opt->adam_eps;
    int status = NLSQ_MAX_ITER, rc;
    adam_plan pl;
    double *JtJ = NULL;     /* p*p + p: final pass buffers */
    double *Jtr;

    if (!st->started) {
        for (size_t j = 0; j < p; j++) {
            double lo = pb->lower ? pb->lower[j] : -INFINITY;
            double hi = pb->upper ? pb->upper[j] : INFINITY;
            double v = x[j] < lo ? lo : x[j] > hi ? hi : x[j];
            st->x0[j] = st->x[j] = st->best_x[j] = v;
        }
    }
    /* x holds the best point from here on, whatever happens. */
    memcpy(x, st->best_x, p * sizeof(double));

    rc = plan_init(e, opt, st->x0, &pl);
    if (rc) return nlsq__finish(res, rc, "cannot allocate the Adam batch plan");
    JtJ = nlsq__calloc(al, p * p + p, sizeof(double));
    if (!JtJ) {
        plan_free(al, &pl);
        return nlsq__finish(res, NLSQ_ENOMEM, "cannot allocate Adam buffers (p = %zu)", p);
    }
    Jtr = JtJ + p * p;

    if (st->started) {
        /* the curvature caps of the scales, as at the start */
        nlsq__acc acc;
        rc = full_pass(e, st, st->x0, NLSQ__PASS_NORMAL, JtJ, Jtr, &acc);
        if (rc) {
            status = nlsq__finish(res, rc, "callback failed at the start point (chunk at row %zu)",
                                  e->callback_row);
            goto out_nopass;
        }
        cap_scales(&pl, JtJ, st->initial_cost);
        if (st->seed != opt->seed || st->block_rows != pl.B || st->batch_blocks != pl.k) {
            status = nlsq__finish(res, NLSQ_ECHECKPOINT,
                                  "checkpoint was written with another Adam batch plan "
                                  "(seed, block rows %zu, blocks per batch %zu; now %zu, %zu)",
                                  st->block_rows, st->batch_blocks, pl.B, pl.k);
            goto out_nopass;
        }
    } else {
        /* --- start: full pass at x0 (gradient, and diag(J^T J) for the scales) --- */
        nlsq__acc acc;
        rc = full_pass(e, st, st->x0, NLSQ__PASS_NORMAL, JtJ, Jtr, &acc);
        if (rc) {
            status = nlsq__finish(res, rc, "callback failed at the start point (chunk at row %zu)",
                                  e->callback_row);
            goto out_nopass;
        }
        if (acc.n_nonfinite_r || acc.n_nonfinite_J) {
            status = nlsq__finish(res, NLSQ_ENONFINITE, "non-finite %s at the start point",
                                  acc.n_nonfinite_r ? "residuals" : "Jacobian");
            goto out_nopass;
        }
        int sums_ok = isfinite(acc.cost);
        for (size_t j = 0; j < p && sums_ok; j++)
            sums_ok = isfinite(Jtr[j]) && isfinite(JtJ[j * p + j]);
        if (!sums_ok) {
            status = nlsq__finish(res, NLSQ_ENONFINITE, "the cost or J^T J overflows at the start "
                                  "point (residuals or Jacobian entries too large: rescale)");
            goto out_nopass;
        }
        st->initial_cost = acc.cost;
        st->initial_gnorm = max_abs(p, Jtr);
        cap_scales(&pl, JtJ, st->initial_cost);
        st->best_est = st->ref_est = st->initial_cost;
        rng_seed(st->rng, opt->seed);
        st->seed = opt->seed;
        st->block_rows = pl.B;
        st->batch_blocks = pl.k;
        st->lr_factor = 1.0;
        st->started = 1;
    }
    if (res) res->initial_cost = st->initial_cost;

    for (;;) {
        if (opt->adam_patience > 0 && st->bad_epochs >= opt->adam_patience) {
            if (st->best_est < st->initial_cost) {
                status = NLSQ_CONVERGED_ADAM;
            } else {
                status = nlsq__finish(res, NLSQ_MAX_ITER, "Adam made no progress in %zu epochs: no "
                                      "epoch improved on the start (try a smaller adam_lr)",
                                      st->epoch);
            }
            break;
        }
        if (st->epoch >= args->epoch_cap) { status = NLSQ_MAX_ITER; break; }

        /* --- one epoch: shuffle the blocks, walk the batches --- */
        for (size_t i = 0; i < pl.nb; i++) pl.perm[i] = i;
        for (size_t i = pl.nb; i > 1; i--) {
            size_t j = (size_t)rng_below(st->rng, (uint64_t)i);
            size_t t = pl.perm[i - 1]; pl.perm[i - 1] = pl.perm[j]; pl.perm[j] = t;
        }
        double est = 0.0, gmax = 0.0;
        size_t n_good = 0;
        for (size_t bi = 0; bi < pl.n_batches; bi++) {
            size_t first = bi * pl.k, n = pl.nb - first < pl.k ? pl.nb - first : pl.k;
            double bc;
            size_t rows;
            int bad;
            rc = batch_grad(e, &pl, st, first, n, &bc, &rows, &bad);
            if (rc) {
                status = nlsq__finish(res, rc, "callback failed in epoch %zu (chunk at row %zu); "
                                      "x is the best point so far", st->epoch + 1, e->callback_row);
                goto out_nopass;
            }
            est += bc;
            if (bad) { st->n_nonfinite++; continue; }
            n_good++;
            st->step++;
            const double t = (double)st->step;
            const double lr = lr_at(opt, &pl, st, st->step);
            const double c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t);
            const double gs = (double)m / (double)rows;
            gmax = 0.0;
            for (size_t j = 0; j < p; j++) {
                double gx = gs * pl.g[j];
                if (fabs(gx) > gmax) gmax = fabs(gx);
                if (pl.s[j] == 0.0) continue;
                double gu = gx * pl.s[j];
                st->m1[j] = b1 * st->m1[j] + (1.0 - b1) * gu;
                st->v[j] = b2 * st->v[j] + (1.0 - b2) * gu * gu;
                double mh = st->m1[j] / c1, vh = st->v[j] / c2;
                double xn = st->x[j] - lr * pl.s[j] * mh / (sqrt(vh) + eps);
                if (xn < pl.lo[j]) xn = pl.lo[j];
                if (xn > pl.hi[j]) xn = pl.hi[j];
                if (isfinite(xn)) st->x[j] = xn;
            }
        }
        st->epoch++;
        if (n_good == 0) {
            status = nlsq__finish(res, NLSQ_ENONFINITE, "every batch of epoch %zu had non-finite "
                                  "residuals or Jacobian; x is the best point so far", st->epoch);
            break;
        }

        /* --- plateau counter, learning-rate decay, best point --- */
        if (isnan(est)) est = INFINITY;
        if (est < st->ref_est * (1.0 - opt->adam_plateau_rtol)) {
            st->ref_est = est;
            st->bad_epochs = 0;
        } else {
            st->bad_epochs++;
            if (st->bad_epochs % pl.decay_every == 0) st->lr_factor *= 0.5;
        }
        if (est < st->best_est) {
            st->best_est = est;
            memcpy(st->best_x, st->x, p * sizeof(double));
            memcpy(x, st->x, p * sizeof(double));
        }

        double lr_next = lr_at(opt, &pl, st, st->step + 1);
        nlsq__log(opt, 0, "adam %4zu  estimate %.10e  |g| %.3e  lr %.3e  plateau %zu",
                  st->epoch, est, gmax, lr_next, st->bad_epochs);
        if (opt->progress) {
            nlsq_progress_info info = {NLSQ_PHASE_ADAM, st->epoch, est, gmax, lr_next,
                                       nlsq__now() - args->t_start,
                                       ceil_div_u64(st->cost_rows, m),
                                       ceil_div_u64(st->grad_rows, m), st->best_x};
            if (opt->progress(opt->progress_ctx, &info) != 0) {
                status = nlsq__finish(res, NLSQ_EUSER_STOP, "stopped by the progress callback "
                                      "at epoch %zu", st->epoch);
                break;
            }
        }
        if (opt->checkpoint_path && opt->checkpoint_every &&
            st->epoch % opt->checkpoint_every == 0) {
            rc = nlsq__checkpoint_save_adam(e, opt, args->solver, st, res);
            if (rc) {
                status = rc;   /* the reason is in res->message */
                goto out_nopass;
            }
        }
    }

    /* --- the returned point: best by epoch estimate, never worse than the start --- */
    {
        int mode = args->final_mode;
        int at_start = memcmp(st->best_x, st->x0, p * sizeof(double)) == 0;
        double cost = st->initial_cost, gnorm = st->initial_gnorm;
        int have_normal = 0;
        if (!at_start || mode == NLSQ__PASS_NORMAL) {
            nlsq__acc acc;
            rc = full_pass(e, st, st->best_x, mode, JtJ, Jtr, &acc);
            if (rc) {
                status = nlsq__finish(res, rc, "callback failed in the final pass (chunk at row %zu)",
                                      e->callback_row);
                goto out_nopass;
            }
            int finite = !(acc.n_nonfinite_r || acc.n_nonfinite_J);
            if (finite && (at_start || acc.cost <= st->initial_cost)) {
                cost = acc.cost;
                gnorm = mode == NLSQ__PASS_COST ? NAN : max_abs(p, Jtr);
                have_normal = mode == NLSQ__PASS_NORMAL;
            } else {
                nlsq__log(opt, 0, "adam: best point (full cost %.10e) not better than the start "
                          "(%.10e): returning the start point", acc.cost, st->initial_cost);
                at_start = 1;
            }
        }
        memcpy(x, at_start ? st->x0 : st->best_x, p * sizeof(double));
        if (mode == NLSQ__PASS_NORMAL && !have_normal) {
            nlsq__acc acc;
            rc = full_pass(e, st, x, mode, JtJ, Jtr, &acc);
            if (rc || acc.n_nonfinite_r || acc.n_nonfinite_J) {
                status = nlsq__finish(res, rc ? rc : NLSQ_ENONFINITE,
                                      "final Jacobian pass failed (row %zu)", e->callback_row);
                goto out_nopass;
            }
            have_normal = 1;
        }
        if (mode == NLSQ__PASS_COST && at_start) gnorm = st->initial_gnorm;
        nlsq__finish(res, status, NULL);
        if (res) {
            res->cost = cost;
            res->grad_norm = gnorm;
            double dof = nlsq__dof(pb);
            res->reduced_chi2 = dof > 0 ? 2.0 * cost / dof : NAN;
            res->n_active = 0;
            for (size_t j = 0; j < p; j++)
                if (x[j] <= pl.lo[j] || x[j] >= pl.hi[j]) res->n_active++;
            if (res->covariance && have_normal && status >= 0) {
                rc = nlsq__covariance_at(pb, opt, al, x, JtJ, cost, res->covariance, res);
                if (rc) status = nlsq__finish(res, rc, "covariance: eigen-decomposition failed");
            }
        }
        fill_counters(res, st, m);
        nlsq__free(al, JtJ);
        plan_free(al, &pl);
        return status;
    }

out_nopass:
    /* Error without a usable final pass: x = best point; its cost is known
     * only when it is the start point. */
    memcpy(x, st->best_x, p * sizeof(double));
    if (res) {
        int at_start = memcmp(st->best_x, st->x0, p * sizeof(double)) == 0;
        res->cost = at_start && st->started ? st->initial_cost : NAN;
        res->grad_norm = at_start && st->started ? st->initial_gnorm : NAN;
    }
    fill_counters(res, st, m);
    nlsq__free(al, JtJ);
    plan_free(al, &pl);
    return status;
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
    nlsq__adam_args args = {opt->adam_epochs, NLSQ__SOLVER_ADAM,
                            res && res->covariance ? NLSQ__PASS_NORMAL : NLSQ__PASS_GRAD, t0};
    int status = nlsq__adam_run(&e, opt, x, res, st, &args);
    if (!resume) nlsq__adam_state_free(e.al, &local);
    nlsq__engine_free(&e);
    nlsq__single_phase(res, NLSQ_PHASE_ADAM, t0);
    return status;
}

int nlsq_adam(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res)
{
    return nlsq__adam_solve(pb, opt, x, res, NULL);
}
