/*
 * hybrid.c - Adam warm-up, then chunked LM to convergence, then the covariance.
 *
 * Phase 1 (NLSQ_PHASE_ADAM): nlsq__adam_run from x, epoch cap
 *   hybrid.adam_epochs, stopping earlier on its plateau rule (adam.c).  Its
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
 * One engine serves both phases, with chunks of at most adam.batch_rows rows
 * (nlsq__adam_engine_init), so full costs from both phases are comparable
 * bitwise.
 *
 * Checkpoints: phase 1 writes Adam checkpoints of solver hybrid; phase 2
 * runs nlsq__lm_run with its state's `hybrid` pointing to the phase-2 record,
 * so nlsq__checkpoint_save_lm writes hybrid checkpoints (phase-1 statistics,
 * the start point and the phase-2 start point, then the LM state).  The
 * solver is a header field of the file; nlsq_resume continues in the right
 * phase.
 */
#include "nlsq_internal.h"

#include <math.h>
#include <string.h>

/* One hybrid solve's working set (the engine points to eopt: keep in place). */
typedef struct hybrid_run {
    const nlsq_problem *pb;
    const nlsq_options *opt;
    nlsq_result *res;
    double *x;               /* the caller's x: the best point so far */
    double t0;
    nlsq_options eopt;
    nlsq__engine e;
    double *vec;             /* 3p, one allocation: d2 (LM scaling), x0, x_lm0 */
    nlsq__hybrid_ctx hc;
    nlsq__lm_state lst;
} hybrid_run;

/* Phase 1: Adam from x, or from the checkpoint's Adam state.  Fills the
 * phase-1 statistics, x0, the initial cost and the LM start point (x, x_lm0,
 * lm0_cost).  Returns 0 to go on to phase 2, else 1 with *status: the solve
 * ends with phase 1's result. */
static int phase1(hybrid_run *H, nlsq__adam_state *resumed, int *status)
{
    const nlsq_allocator *al = H->e.al;
    const size_t p = H->pb->n_params;
    nlsq__hybrid_ctx *hc = &H->hc;
    nlsq__adam_state own, *as = resumed ? resumed : &own;
    if (!resumed && nlsq__adam_state_init(al, p, &own) != 0) {
        *status = nlsq__finish(H->res, NLSQ_ENOMEM, "cannot allocate the Adam state");
        return 1;
    }
    nlsq_result r1;
    nlsq__result_reset(&r1, H->pb->n_rows);
    r1.covariance = NULL;
    nlsq__adam_args args = {H->opt->hybrid.adam_epochs, NLSQ__SOLVER_HYBRID, NLSQ__PASS_COST,
                            H->t0};
    int s1 = nlsq__adam_run(&H->e, H->opt, H->x, &r1, as, &args);
    hc->phase1 = (nlsq_phase_stats){NLSQ_PHASE_ADAM, r1.iterations, r1.n_eval, r1.n_jac,
                                    r1.cost, nlsq__now() - H->t0};
    hc->phase1_nonfinite = r1.n_nonfinite;
    int stop = s1 == NLSQ_EUSER_STOP || (s1 < 0 && s1 != NLSQ_ENONFINITE) || !as->started;
    if (stop) {
        /* x is phase 1's best point (or the start point). */
        if (H->res) {
            double *cov = H->res->covariance;
            *H->res = r1;
            H->res->covariance = cov;
            H->res->n_phases = 1;
            H->res->phases[0] = hc->phase1;
            H->res->seconds = nlsq__now() - H->t0;
        }
        *status = s1;
    } else {
        double *x0 = H->vec + p, *x_lm0 = H->vec + 2 * p;
        memcpy(x0, as->x0, p * sizeof(double));
        hc->initial_cost = as->initial_cost;   /* phase 1's units, as is as->cost */
        hc->scale_exp = as->scale_exp;
        if (as->cost <= hc->initial_cost) {
            hc->lm0_cost = as->cost;
        } else {
            /* Guard: phase 1 did not improve on the start (by full cost). */
            nlsq__log(H->opt, 0, "hybrid: phase 1 ended at cost %.10e > start %.10e; LM starts "
                      "from the start point", r1.cost, r1.initial_cost);
            memcpy(H->x, x0, p * sizeof(double));
            hc->lm0_cost = hc->initial_cost;
        }
        memcpy(x_lm0, H->x, p * sizeof(double));
        nlsq__log(H->opt, 0, "hybrid: phase 1 (Adam) %s after %zu epochs, cost %.10e -> %.10e",
                  nlsq_status_name(s1), r1.iterations, r1.initial_cost,
                  ldexp(hc->lm0_cost, -2 * hc->scale_exp));
    }
    if (!resumed) nlsq__adam_state_free(al, &own);
    return stop;
}

/* Resume in phase 2: the phase-1 record and the LM state of the checkpoint. */
static void phase2_resume(hybrid_run *H, const nlsq__ckpt *ck)
{
    const size_t p = H->pb->n_params;
    if (H->e.chunk_rows != ck->chunk_rows)
        nlsq__log(H->opt, 0, "resume: chunk size %zu differs from the checkpoint's %zu",
                  H->e.chunk_rows, ck->chunk_rows);
    memcpy(H->vec + p, ck->hy.x0, p * sizeof(double));
    memcpy(H->vec + 2 * p, ck->hy.x_lm0, p * sizeof(double));
    memcpy(H->x, ck->x, p * sizeof(double));
    memcpy(H->vec, ck->lm.d2, p * sizeof(double));
    H->hc = ck->hy;
    H->lst = ck->lm;
    H->lst.d2 = H->vec;
}

/* The result of a solve that reached phase 2: LM's, with the phase-1
 * statistics added, never worse than the LM start point. */
static void hybrid_result(hybrid_run *H, const nlsq_result *r2, int status, double cost,
                          double gnorm, double lm_seconds)
{
    nlsq_result *res = H->res;
    const nlsq__hybrid_ctx *hc = &H->hc;
    double *cov = res->covariance;
    *res = *r2;
    res->covariance = cov;
    res->status = status;
    res->cost = cost;
    res->grad_norm = gnorm;
    res->initial_cost = ldexp(hc->initial_cost, -2 * hc->scale_exp);
    res->iterations = hc->phase1.iterations + r2->iterations;
    res->n_eval = hc->phase1.n_eval + r2->n_eval;
    res->n_jac = hc->phase1.n_jac + r2->n_jac;
    res->n_nonfinite = hc->phase1_nonfinite + r2->n_nonfinite;
    nlsq__result_dof(res, H->pb, r2->n_obs, cost);
    res->phases[0] = hc->phase1;
    res->phases[1] = (nlsq_phase_stats){NLSQ_PHASE_LM, r2->iterations, r2->n_eval, r2->n_jac,
                                        r2->cost, lm_seconds};
    res->n_phases = 2;
    if (cov && (status >= 0 || status == NLSQ_STALLED)) {
        res->phases[2] = (nlsq_phase_stats){NLSQ_PHASE_COVARIANCE, 0, 0, 0, cost, 0.0};
        res->n_phases = 3;
    }
    res->seconds = nlsq__now() - H->t0;
}

/* Phase 2 (and 3): LM from x in phase 1's units (a fresh phase 2), its
 * checkpoints hybrid ones.  The guard compares costs in phase 1's units, where
 * they are finite whatever the caller's scale. */
static int phase2(hybrid_run *H, int fresh)
{
    const size_t p = H->pb->n_params;
    nlsq__hybrid_ctx *hc = &H->hc;
    const double *x_lm0 = H->vec + 2 * p;
    hc->x0 = H->vec + p;
    hc->x_lm0 = x_lm0;
    H->lst.hybrid = hc;
    if (fresh) H->lst.scale_exp = hc->scale_exp;
    nlsq_result r2;
    nlsq__result_reset(&r2, H->pb->n_rows);
    r2.covariance = H->res ? H->res->covariance : NULL;
    double t2 = nlsq__now();
    int status = nlsq__lm_run(&H->e, H->opt, H->x, &r2, &H->lst, H->t0);
    double t2_end = nlsq__now();
    double cost = r2.cost, gnorm = r2.grad_norm;
    if (!(ldexp(H->lst.cost, 2 * (hc->scale_exp - H->lst.scale_exp)) <= hc->lm0_cost)) {
        /* LM failed before or without improving on its start: never return a
         * point worse than the best one evaluated. */
        memcpy(H->x, x_lm0, p * sizeof(double));
        cost = ldexp(hc->lm0_cost, -2 * hc->scale_exp);
        gnorm = NAN;
    }
    if (H->res) hybrid_result(H, &r2, status, cost, gnorm, t2_end - t2);
    return status;
}

int nlsq__hybrid_solve(const nlsq_problem *pb, const nlsq_options *opt_in, double *x,
                       nlsq_result *res, nlsq__ckpt *ck)
{
    hybrid_run H;
    memset(&H, 0, sizeof H);
    H.t0 = nlsq__now();
    nlsq_options defaults;
    int rc = nlsq__begin(pb, opt_in, &defaults, &H.opt, x != NULL, "x", ck ? NULL : x, res);
    if (rc) return rc;
    H.pb = pb;
    H.res = res;
    H.x = x;
    rc = nlsq__adam_engine_init(&H.e, &H.eopt, pb, H.opt);
    if (rc) return nlsq__finish(res, rc, "cannot allocate chunk buffers");
    int status;
    H.vec = nlsq__calloc(H.e.al, 3 * pb->n_params, sizeof(double));
    H.lst.d2 = H.vec;
    if (!H.vec) {
        status = nlsq__finish(res, NLSQ_ENOMEM, "cannot allocate the hybrid workspace");
    } else if (ck && ck->phase != NLSQ_PHASE_ADAM) {
        phase2_resume(&H, ck);
        status = phase2(&H, 0);
    } else if (phase1(&H, ck ? &ck->adam : NULL, &status) == 0) {
        status = phase2(&H, 1);
    }
    nlsq__free(H.e.al, H.vec);
    nlsq__engine_report(&H.e, res);
    nlsq__engine_free(&H.e);
    return status;
}

int nlsq_hybrid(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res)
{
    return nlsq__hybrid_solve(pb, opt, x, res, NULL);
}
