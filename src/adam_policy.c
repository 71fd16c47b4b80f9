/*
 * adam_policy.c - Adam's learning-rate schedule and plateau (stopping) rule.
 *
 * Learning-rate schedule: linear warm-up, then reduce-on-plateau:
 *     lr(t) = adam.lr * f * min(1, t / W),   W = min(1000, batches per epoch),
 * t the step count from 1; f starts at 1 and halves each time the plateau
 * counter (below) reaches a multiple of max(1, adam.patience / 2).
 *
 * Plateau rule, on epoch estimates.  The epoch estimate is the sum of the
 * batch costs of the epoch (each taken at the point the batch's gradient was
 * computed): every row counts exactly once, so it estimates the full cost
 * along the epoch's path at no extra pass.  (A fixed monitor subset of row
 * blocks was tried and dropped: when rows are ordered by the design, as in
 * XPCS files, a few contiguous blocks are not representative and their
 * optimum is biased.)  An epoch makes progress when its estimate is below
 * ref * (1 - adam.plateau_rtol), ref being the estimate of the last epoch
 * that made progress (the full cost at the start at first), so a slow steady
 * decrease adds up and counts.  After adam.patience consecutive epochs
 * without progress the run stops with NLSQ_CONVERGED_ADAM (adam.patience = 0:
 * no plateau stop) - unless no epoch ever improved on the start, which is a
 * failure to make progress (too large a learning rate, typically), reported
 * as NLSQ_MAX_ITER with a message, never as convergence; the epoch cap gives
 * NLSQ_MAX_ITER.
 */
#include "nlsq_internal.h"

double nlsq__adam_lr(const nlsq_options *opt, size_t n_batches, double lr_factor, uint64_t t)
{
    const size_t warmup = n_batches < 1000 ? n_batches : 1000;
    double w = t < (uint64_t)warmup ? (double)t / (double)warmup : 1.0;
    return opt->adam.lr * lr_factor * w;
}

void nlsq__adam_plateau(const nlsq_options *opt, nlsq__adam_state *st, double est)
{
    const size_t decay_every = opt->adam.patience >= 2 ? opt->adam.patience / 2 : 1;
    if (est < st->ref_est * (1.0 - opt->adam.plateau_rtol)) {
        st->ref_est = est;
        st->bad_epochs = 0;
    } else {
        st->bad_epochs++;
        if (st->bad_epochs % decay_every == 0) st->lr_factor *= 0.5;
    }
}

int nlsq__adam_stop(const nlsq_options *opt, const nlsq__adam_state *st, size_t epoch_cap)
{
    if (opt->adam.patience > 0 && st->bad_epochs >= opt->adam.patience)
        return st->best_est < st->initial_cost ? NLSQ__ADAM_PLATEAU : NLSQ__ADAM_NO_PROGRESS;
    return st->epoch >= epoch_cap ? NLSQ__ADAM_EPOCH_CAP : NLSQ__ADAM_GO_ON;
}
