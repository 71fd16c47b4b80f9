/* test_mpi_failure - a failure on one rank ends the solve on every rank, in
 * bounded time (ctest's TIMEOUT guards against hangs; each case also checks
 * its own wall time):
 *   1. the callback fails on one rank (each rank in turn): NLSQ_ECALLBACK on
 *      every rank, at the same pass, with bitwise the same x;
 *   2. NaN rows that only one rank evaluates: every rank sees them (LM
 *      rejects those steps) and the result equals the one-process result;
 *   3. a simulated MPI failure in one rank's reduce: NLSQ_EDISTRIBUTED on
 *      every rank (the leave messages), every context broken;
 *   4. one rank stalls in a reduce longer than the others' timeout:
 *      NLSQ_EDISTRIBUTED on every rank;
 *   5. one rank fails before its first pass (its allocator refuses): it
 *      returns NLSQ_ENOMEM and detaches; the others return NLSQ_EDISTRIBUTED
 *      (the core cannot tell them the reason: see docs/mpi.md);
 *   6. afterwards a new context on the same communicator works normally.
 */
#include "mpi_test_util.h"
#include "nlsq_mpi_testing.h"   /* nlsq_mpi_inject_fault: test builds only */

#define BOUND_S 30.0   /* each case must end within this (it takes < 1 s) */

static void *fail_alloc(void *ctx, size_t size) { (void)ctx; (void)size; return NULL; }
static void plain_free(void *ctx, void *p) { (void)ctx; free(p); }

static nlsq_mpi_ctx *attach(nlsq_options *o)
{
    nlsq_mpi_ctx *mc = NULL;
    int rc = nlsq_mpi_attach(o, MPI_COMM_WORLD, TM, 1000, &mc);
    CHECK(rc == 0, "attach: %d", rc);
    return mc;
}

/* tu_solve of LM into a; returns the seconds it took. */
static double timed_lm(const nlsq_options *o, tu_eval_ctx *ec, tu_run *a)
{
    double t0 = tu_now();
    tu_solve(TU_LM, o, ec, a);
    return tu_now() - t0;
}

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);

    /* 1. callback failure on rank k (at its 3rd eval call) */
    for (int k = 0; k < g_size; k++) {
        nlsq_options o;
        tu_options(&o);
        nlsq_mpi_ctx *mc = attach(&o);
        tu_eval_ctx ec = {0};
        if (g_rank == k) ec.fail_at = 3;
        tu_run a;
        double dt = timed_lm(&o, &ec, &a);
        CHECK(a.status == NLSQ_ECALLBACK, "callback failure on rank %d: status %s", k,
              nlsq_status_name(a.status));
        CHECK(tu_all_same(tu_fnv(tu_fnv(0, a.x, sizeof a.x), &a.status, sizeof a.status)),
              "callback failure on rank %d: ranks disagree", k);
        CHECK(dt < BOUND_S, "took %.1f s", dt);
        CHECK(!nlsq_mpi_broken(mc), "context broken by a callback failure");
        nlsq_mpi_detach(mc, &o);
        if (g_rank == 0) printf("  callback failure on rank %d: every rank %s (%.3f s)\n", k,
                                nlsq_status_name(a.status), dt);
    }

    /* 2. NaN rows in the last 500 rows (the last rank's) once x[1] > 1.2 */
    for (int which = 0; which < 2; which++) {
        tu_eval_ctx ec = {0};
        ec.nan_begin = TM - 500;
        ec.nan_end = TM;
        ec.nan_x1 = 1.2;
        nlsq_options o;
        tu_options(&o);
        tu_run ref, a;
        tu_solve(which == 0 ? TU_LM : TU_HYBRID, &o, &ec, &ref);
        nlsq_mpi_ctx *mc = attach(&o);
        tu_solve(which == 0 ? TU_LM : TU_HYBRID, &o, &ec, &a);
        nlsq_mpi_detach(mc, &o);
        CHECK(a.status == ref.status, "NaN rows: status %s vs %s", nlsq_status_name(a.status),
              nlsq_status_name(ref.status));
        CHECK(a.res.n_nonfinite == ref.res.n_nonfinite, "NaN rows: %zu vs %zu rejected passes",
              a.res.n_nonfinite, ref.res.n_nonfinite);
        double dx = 0;
        for (int q = 0; q < TP; q++) {
            double d = tu_rel(a.x[q], ref.x[q], 1.0 + fabs(ref.x[q]));
            if (d > dx) dx = d;
        }
        CHECK(dx <= 1e-9, "NaN rows: x differs by %.3g", dx);
        CHECK(tu_all_same(tu_digest(&a)), "NaN rows: ranks disagree");
        if (g_rank == 0)
            printf("  NaN rows on the last rank (%s): %s, %zu passes rejected, x rel.diff %.2e\n",
                   which == 0 ? "lm" : "hybrid", nlsq_status_name(a.status), a.res.n_nonfinite, dx);
    }

    /* 3. simulated MPI failure in rank k's reduce number 5 */
    for (int k = 0; k < g_size && g_size > 1; k++) {
        nlsq_options o;
        tu_options(&o);
        nlsq_mpi_ctx *mc = attach(&o);
        if (g_rank == k) nlsq_mpi_inject_fault(mc, 1, 5, 0.0);
        tu_run a;
        double dt = timed_lm(&o, NULL, &a);
        CHECK(a.status == NLSQ_EDISTRIBUTED, "MPI failure on rank %d: status %s", k,
              nlsq_status_name(a.status));
        CHECK(nlsq_mpi_broken(mc) == NLSQ_EDISTRIBUTED, "context not broken");
        CHECK(dt < BOUND_S, "took %.1f s", dt);
        if (g_rank == 0)
            printf("  MPI failure on rank %d: every rank %s (%.3f s); rank 0: %s\n", k,
                   nlsq_status_name(a.status), dt, nlsq_mpi_message(mc));
        nlsq_mpi_detach(mc, &o);
    }

    /* 4. rank k stalls 3 s in reduce number 4; the others wait at most 0.5 s */
    if (g_size > 1) {
        int k = g_size - 1;
        nlsq_options o;
        tu_options(&o);
        nlsq_mpi_ctx *mc = attach(&o);
        if (g_rank == k) nlsq_mpi_inject_fault(mc, 2, 4, 3.0);
        else nlsq_mpi_set_timeout(mc, 0.5);
        tu_run a;
        double dt = timed_lm(&o, NULL, &a);
        CHECK(a.status == NLSQ_EDISTRIBUTED, "stalled rank %d: status %s", k,
              nlsq_status_name(a.status));
        CHECK(dt < (g_rank == k ? 3.0 : 0.0) + BOUND_S, "took %.1f s", dt);
        CHECK(g_rank == k || dt < 3.0, "rank %d waited %.2f s for the stalled rank", g_rank, dt);
        if (g_rank == 0)
            printf("  rank %d stalled 3 s, timeout 0.5 s elsewhere: rank 0 %s after %.2f s: %s\n",
                   k, nlsq_status_name(a.status), dt, nlsq_mpi_message(mc));
        nlsq_mpi_detach(mc, &o);
    }

    /* 5. allocation failure before the first pass on rank k */
    if (g_size > 1) {
        int k = 1 % g_size;
        nlsq_options o;
        tu_options(&o);
        nlsq_mpi_ctx *mc = attach(&o);
        if (g_rank == k) {
            o.allocator.alloc_fn = fail_alloc;
            o.allocator.free_fn = plain_free;
        }
        tu_run a;
        double t0 = tu_now();
        tu_solve(TU_LM, &o, NULL, &a);
        nlsq_mpi_detach(mc, &o);   /* what tells the others */
        double dt = tu_now() - t0;
        int want = g_rank == k ? NLSQ_ENOMEM : NLSQ_EDISTRIBUTED;
        CHECK(a.status == want, "allocation failure on rank %d: status %s", k,
              nlsq_status_name(a.status));
        CHECK(dt < BOUND_S, "took %.1f s", dt);
        if (g_rank == 0)
            printf("  allocation failure before the first pass on rank %d: it %s, the others %s"
                   " (%.3f s)\n", k, nlsq_status_name(NLSQ_ENOMEM), nlsq_status_name(a.status), dt);
    }

    /* 6. a new context works after all that */
    {
        nlsq_options o;
        tu_options(&o);
        tu_run ref, a;
        tu_solve(TU_LM, &o, NULL, &ref);
        nlsq_mpi_ctx *mc = attach(&o);
        tu_solve(TU_LM, &o, NULL, &a);
        nlsq_mpi_detach(mc, &o);
        CHECK(a.status == ref.status && fabs(a.res.cost - ref.res.cost) <= 1e-9 * ref.res.cost,
              "after the failures: %s cost %.17g vs %.17g", nlsq_status_name(a.status), a.res.cost,
              ref.res.cost);
        CHECK(tu_all_same(tu_digest(&a)), "after the failures: ranks disagree");
    }
    return tu_finish("test_mpi_failure");
}
