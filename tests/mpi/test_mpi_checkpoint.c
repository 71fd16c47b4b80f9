/* test_mpi_checkpoint - checkpoints under MPI: only rank 0 writes, every rank
 * resumes from that one file.
 *
 * For LM, Adam and hybrid: a run over the ranks is stopped by the progress
 * callback (at the same iteration on every rank, since every rank sees the
 * same progress) with a checkpoint every iteration/epoch.  Each rank names a
 * different checkpoint path; afterwards only rank 0's file exists.  Then every
 * rank resumes from rank 0's file: the result is bitwise the same on every
 * rank and bitwise equal to an uninterrupted run over the ranks (the core's
 * promise for a resume with the same options), and equal to the one-process
 * result to rounding. */
#include "mpi_test_util.h"

#include <unistd.h>

typedef struct stop_ctx {
    size_t at;
    int phase;
} stop_ctx;

static int stop_at(void *ctx, const nlsq_progress_info *info)
{
    const stop_ctx *s = ctx;
    return info->phase == s->phase && info->iteration >= s->at;
}

static void path_for(char *out, size_t size, const char *solver, int rank)
{
    snprintf(out, size, "%s/mpi_ck_%s_np%d_r%d.bin", NLSQ_TEST_TMPDIR, solver, g_size, rank);
}

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);
    /* LM iteration 4; Adam epoch 2; hybrid: LM iteration 3 of its phase 2 */
    const size_t stop_iter[3] = {4, 2, 3};
    const int stop_phase[3] = {NLSQ_PHASE_LM, NLSQ_PHASE_ADAM, NLSQ_PHASE_LM};

    for (int which = 0; which < 3; which++) {
        const char *name = tu_solver_name[which];
        char mine[512], root[512];
        path_for(mine, sizeof mine, name, g_rank);
        path_for(root, sizeof root, name, 0);
        unlink(mine);
        MPI_Barrier(MPI_COMM_WORLD);

        /* uninterrupted, over the ranks, and in one process */
        nlsq_options o;
        tu_options(&o);
        tu_run full, one;
        tu_solve(which, &o, NULL, &one);
        nlsq_mpi_ctx *mc;
        CHECK(nlsq_mpi_attach(&o, MPI_COMM_WORLD, TM, 1000, &mc) == 0, "attach");
        tu_solve(which, &o, NULL, &full);
        nlsq_mpi_detach(mc, &o);

        /* interrupted, with a checkpoint every iteration */
        stop_ctx sc = {stop_iter[which], stop_phase[which]};
        tu_options(&o);
        o.checkpoint_path = mine;
        o.checkpoint_every = 1;
        o.progress = stop_at;
        o.progress_ctx = &sc;
        CHECK(nlsq_mpi_attach(&o, MPI_COMM_WORLD, TM, 1000, &mc) == 0, "attach");
        tu_run cut;
        tu_solve(which, &o, NULL, &cut);
        nlsq_mpi_detach(mc, &o);
        CHECK(cut.status == NLSQ_EUSER_STOP, "%s: interrupted run: %s", name,
              nlsq_status_name(cut.status));
        MPI_Barrier(MPI_COMM_WORLD);
        int exists = access(mine, F_OK) == 0;
        CHECK(exists == (g_rank == 0), "%s: rank %d's checkpoint file %s", name, g_rank,
              exists ? "exists" : "is missing");

        /* every rank resumes from rank 0's file */
        tu_options(&o);
        CHECK(nlsq_mpi_attach(&o, MPI_COMM_WORLD, TM, 1000, &mc) == 0, "attach");
        nlsq_problem pb = {.n_params = TP, .n_rows = TM, .eval = tu_eval};
        tu_run res;
        memset(&res, 0, sizeof res);
        for (int k = 0; k < TP * TP; k++) res.cov[k] = NAN;
        res.res.covariance = res.cov;
        res.status = nlsq_resume(&pb, &o, root, res.x, &res.res);
        nlsq_mpi_detach(mc, &o);
        CHECK(res.status == full.status, "%s: resumed %s, uninterrupted %s", name,
              nlsq_status_name(res.status), nlsq_status_name(full.status));
        CHECK(memcmp(res.x, full.x, sizeof res.x) == 0, "%s: resumed x != uninterrupted x", name);
        CHECK(res.res.cost == full.res.cost, "%s: resumed cost %.17g != %.17g", name,
              res.res.cost, full.res.cost);
        if (which != TU_ADAM)
            CHECK(memcmp(res.cov, full.cov, sizeof res.cov) == 0, "%s: covariance differs", name);
        CHECK(res.res.iterations == full.res.iterations, "%s: iterations %zu vs %zu", name,
              res.res.iterations, full.res.iterations);
        uint64_t d = tu_fnv(tu_fnv(tu_fnv(0, res.x, sizeof res.x), &res.res.cost, sizeof res.res.cost),
                            &res.status, sizeof res.status);
        CHECK(tu_all_same(d), "%s: ranks disagree after resume", name);
        double dx = 0;
        for (int q = 0; q < TP; q++) {
            double e = tu_rel(res.x[q], one.x[q], 1.0 + fabs(one.x[q]));
            if (e > dx) dx = e;
        }
        CHECK(dx <= 1e-9, "%s: resumed x differs from one process by %.3g", name, dx);
        if (g_rank == 0)
            printf("  %-6s stopped at %zu (%s), only rank 0 wrote; resumed on every rank: %s, "
                   "bitwise = uninterrupted, x rel.diff vs 1 process %.2e\n",
                   name, stop_iter[which], nlsq_status_name(cut.status),
                   nlsq_status_name(res.status), dx);
        MPI_Barrier(MPI_COMM_WORLD);
        if (g_rank == 0) unlink(root);
    }
    return tu_finish("test_mpi_checkpoint");
}
