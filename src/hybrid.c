/*
 * hybrid.c - Adam warm-up, then chunked LM to convergence, then the covariance.
 *
 * Phase 1 (NLSQ_PHASE_ADAM): nlsq__adam_run from x, epoch cap
 *   hybrid_adam_epochs, stopping earlier on its plateau rule (adam.c).  Its
 *   returned point is never worse than the start by full cost (it ends with
 *   one residual-only full pass at its best point).
 * Guard: if phase 1 ends with a full cost that is not <= the cost at the
 *   start, phase 2 starts from the start point.
 * Phase 2 (NLSQ_PHASE_LM): nlsq__lm_run (lm.c) from that point, fresh LM
 *   state.  LM only moves on accepted steps that strictly decrease the cost
 *   (a rejected trial step leaves x, the cost and J^T J as they were and
 *   raises the damping), so a rejected first Gauss-Newton step cannot be
 *   reported as convergence at the rejected point.
 * Phase 3 (NLSQ_PHASE_COVARIANCE): when res->covariance is set, nlsq__lm_run
 *   computes it from the J^T J of its final pass: no extra pass; its time is
 *   inside phase 2's seconds.  phases[2] records it with zero passes.
 * Result: never worse than the best point evaluated by a full pass (start,
 *   phase-1 point, LM iterates); x always holds that point, also on errors.
 *   res->iterations, n_eval, n_jac are the sums over the phases.
 *
 * One engine serves both phases, with chunks of at most adam_batch_rows rows
 * (nlsq__adam_engine_init), so full costs from both phases are comparable
 * bitwise.
 *
 * Checkpoints: phase 1 writes Adam checkpoints tagged hybrid; phase 2 runs
 * nlsq__lm_run with a copy of the options whose progress hook is
 * nlsq__hybrid_progress_hook (forwarding to the user's callback) and whose
 * progress_ctx is the phase-2 context, which nlsq__checkpoint_save_lm
 * recognises to write a hybrid checkpoint (phase-1 statistics, the start
 * point and the phase-2 start point, then the LM state).  nlsq_resume then
 * continues in the right phase.
 */
#include "nlsq_internal.h"

#include <math.h>
#include <string.h>

int nlsq__hybrid_progress_hook(void *ctx, const nlsq_progress_info *info)
{
    const nlsq__hybrid_ctx *h = ctx;
    return h->user_progress ? h->user_progress(h->user_ctx, info) : 0;
}

int nlsq__hybrid_solve(const nlsq_problem *pb, const nlsq_options *opt_in, double *x,
                       nlsq_result *res, nlsq__ckpt *ck)
{
    double t0 = nlsq__now();
    nlsq_options defaults;
    const nlsq_options *opt;
    int rc0 = nlsq__begin(pb, opt_in, &defaults, &opt, x != NULL, "x", ck ? NULL : x, res);
    if (rc0) return rc0;

    const size_t p = pb->n_params, m = pb->n_rows;
    nlsq_options eopt;
    nlsq__engine e;
    int rc = nlsq__adam_engine_init(&e, &eopt, pb, opt);
    if (rc) return nlsq__finish(res, rc, "cannot allocate chunk buffers");
    const nlsq_allocator *al = e.al;

    /* d2 (LM scaling), x0, x_lm0 */
    double *vec = nlsq__calloc(al, 3 * p, sizeof(double));
    nlsq__adam_state ast;
    memset(&ast, 0, sizeof ast);
    int own_ast = 0;
    int status;
    if (!vec) {
        status = nlsq__finish(res, NLSQ_ENOMEM, "cannot allocate the hybrid workspace");
        goto out;
    }
    double *d2 = vec, *x0 = vec + p, *x_lm0 = vec + 2 * p;

    nlsq__hybrid_ctx hc;
    memset(&hc, 0, sizeof hc);
    nlsq__lm_state lst;
    memset(&lst, 0, sizeof lst);
    lst.d2 = d2;

    if (!ck || ck->phase == NLSQ_PHASE_ADAM) {
        /* ---------------- phase 1: Adam warm-up ---------------- */
        nlsq__adam_state *as = ck ? &ck->adam : &ast;
        if (!ck) {
            if (nlsq__adam_state_init(al, p, &ast) != 0) {
                status = nlsq__finish(res, NLSQ_ENOMEM, "cannot allocate the Adam state");
                goto out;
            }
            own_ast = 1;
        }
        nlsq_result r1;
        nlsq__result_reset(&r1, m);
        r1.covariance = NULL;
        nlsq__adam_args args = {opt->hybrid_adam_epochs, NLSQ__SOLVER_HYBRID, NLSQ__PASS_COST, t0};
        int s1 = nlsq__adam_run(&e, opt, x, &r1, as, &args);
        hc.phase1 = (nlsq_phase_stats){NLSQ_PHASE_ADAM, r1.iterations, r1.n_eval, r1.n_jac,
                                       r1.cost, nlsq__now() - t0};
        hc.phase1_nonfinite = r1.n_nonfinite;
        if (s1 == NLSQ_EUSER_STOP || (s1 < 0 && s1 != NLSQ_ENONFINITE) || !as->started) {
            /* Stop here: x is phase 1's best point (or the start point). */
            if (res) {
                double *cov = res->covariance;
                *res = r1;
                res->covariance = cov;
                res->n_phases = 1;
                res->phases[0] = hc.phase1;
                res->seconds = nlsq__now() - t0;
            }
            status = s1;
            goto out;
        }
        memcpy(x0, as->x0, p * sizeof(double));
        hc.initial_cost = as->initial_cost;
        if (r1.cost <= hc.initial_cost) {
            hc.lm0_cost = r1.cost;
        } else {
            /* Guard: phase 1 did not improve on the start (by full cost). */
            nlsq__log(opt, 0, "hybrid: phase 1 ended at cost %.10e > start %.10e; LM starts "
                      "from the start point", r1.cost, hc.initial_cost);
            memcpy(x, x0, p * sizeof(double));
            hc.lm0_cost = hc.initial_cost;
        }
        memcpy(x_lm0, x, p * sizeof(double));
        nlsq__log(opt, 0, "hybrid: phase 1 (Adam) %s after %zu epochs, cost %.10e -> %.10e",
                  nlsq_status_name(s1), r1.iterations, hc.initial_cost, hc.lm0_cost);
        if (own_ast) { nlsq__adam_state_free(al, &ast); own_ast = 0; }
    } else {
        /* ---------------- resume in phase 2 ---------------- */
        if (e.chunk_rows != ck->chunk_rows)
            nlsq__log(opt, 0, "resume: chunk size %zu differs from the checkpoint's %zu",
                      e.chunk_rows, ck->chunk_rows);
        memcpy(x0, ck->hy.x0, p * sizeof(double));
        memcpy(x_lm0, ck->hy.x_lm0, p * sizeof(double));
        memcpy(x, ck->x, p * sizeof(double));
        memcpy(d2, ck->lm.d2, p * sizeof(double));
        hc = ck->hy;
        lst = ck->lm;
        lst.d2 = d2;
    }
    hc.x0 = x0;
    hc.x_lm0 = x_lm0;
    hc.user_progress = opt->progress;
    hc.user_ctx = opt->progress_ctx;

    /* ---------------- phase 2: LM to convergence (+ phase 3) ---------------- */
    nlsq_options lopt = *opt;
    lopt.progress = nlsq__hybrid_progress_hook;
    lopt.progress_ctx = &hc;
    nlsq_result r2;
    nlsq__result_reset(&r2, m);
    r2.covariance = res ? res->covariance : NULL;
    double t2 = nlsq__now();
    int s2 = nlsq__lm_run(&e, &lopt, x, &r2, &lst, t0);
    double t2_end = nlsq__now();

    double cost = r2.cost, gnorm = r2.grad_norm;
    if (!(cost <= hc.lm0_cost)) {
        /* LM failed before or without improving on its start: never return a
         * point worse than the best one evaluated. */
        memcpy(x, x_lm0, p * sizeof(double));
        cost = hc.lm0_cost;
        gnorm = NAN;
    }
    status = s2;
    if (res) {
        double *cov = res->covariance;
        *res = r2;
        res->covariance = cov;
        res->status = status;
        res->cost = cost;
        res->grad_norm = gnorm;
        res->initial_cost = hc.initial_cost;
        res->iterations = hc.phase1.iterations + r2.iterations;
        res->n_eval = hc.phase1.n_eval + r2.n_eval;
        res->n_jac = hc.phase1.n_jac + r2.n_jac;
        res->n_nonfinite = hc.phase1_nonfinite + r2.n_nonfinite;
        double dof = nlsq__dof(pb);
        res->reduced_chi2 = dof > 0 ? 2.0 * cost / dof : NAN;
        res->phases[0] = hc.phase1;
        res->phases[1] = (nlsq_phase_stats){NLSQ_PHASE_LM, r2.iterations, r2.n_eval, r2.n_jac,
                                            r2.cost, t2_end - t2};
        res->n_phases = 2;
        if (cov && (status >= 0 || status == NLSQ_STALLED)) {
            res->phases[2] = (nlsq_phase_stats){NLSQ_PHASE_COVARIANCE, 0, 0, 0, cost, 0.0};
            res->n_phases = 3;
        }
        res->seconds = nlsq__now() - t0;
    }

out:
    if (own_ast) nlsq__adam_state_free(al, &ast);
    nlsq__free(al, vec);
    nlsq__engine_free(&e);
    return status;
}

int nlsq_hybrid(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res)
{
    return nlsq__hybrid_solve(pb, opt, x, res, NULL);
}
