/* test_mpi_solvers - nlsq_lm, nlsq_adam, nlsq_hybrid and nlsq_covariance
 * over MPI ranks (run under mpirun -np 2 and -np 3) against the same solve in
 * one process:
 *   - status, iterations equal; x, cost, covariance equal to 1e-9 relative
 *     (covariance entries relative to sqrt(c_ii c_jj));
 *   - every rank returns bitwise the same result (digests compared);
 *   - a second attach + solve, and a solve with 2 threads per rank, are
 *     bitwise equal to the first;
 *   - a caller-given uneven partition (nlsq_mpi_attach_range, one rank may
 *     have no rows) gives the same result to rounding.
 * With a file argument rank 0 writes "solver digest" lines to it, so that
 * tests/mpi/run_twice.cmake can check that separate runs are bitwise equal. */
#include "mpi_test_util.h"

static void dist_solve(int which, int threads, int custom, tu_run *out)
{
    nlsq_options o;
    tu_options(&o);
    o.n_threads = threads;
    nlsq_mpi_ctx *mc = NULL;
    int rc;
    if (!custom) {
        rc = nlsq_mpi_attach(&o, MPI_COMM_WORLD, TM, 1000, &mc);
    } else {
        /* weights size-1, ..., 1, 0 for ranks 0..size-1 (the last rank gets
         * nothing), cut at arbitrary rows, given in reverse rank order */
        size_t W = (size_t)g_size * (size_t)(g_size - 1) / 2, acc = 0, b = 0, e = 0;
        for (int r = g_size - 1; r >= 0; r--) {
            size_t w = (size_t)(g_size - 1 - r);
            size_t rb = W ? (size_t)TM * acc / W : 0;
            acc += w;
            size_t re = W ? (size_t)TM * acc / W : TM;
            if (r == g_rank) { b = rb; e = re; }
        }
        if (g_size == 1) { b = 0; e = TM; }
        rc = nlsq_mpi_attach_range(&o, MPI_COMM_WORLD, TM, b, e, &mc);
    }
    CHECK(rc == 0, "attach: %d", rc);
    tu_solve(which, &o, NULL, out);
    CHECK(nlsq_mpi_broken(mc) == 0, "broken: %s", nlsq_mpi_message(mc));
    nlsq_mpi_detach(mc, &o);
    CHECK(o.dist.reduce == NULL, "detach did not clear opt->dist");
}

static void compare(const char *what, const tu_run *a, const tu_run *ref, int with_cov, double tol)
{
    CHECK(a->status == ref->status, "%s: status %d vs %d", what, a->status, ref->status);
    CHECK(a->res.iterations == ref->res.iterations, "%s: iterations %zu vs %zu", what,
          a->res.iterations, ref->res.iterations);
    double dx = 0;
    for (int k = 0; k < TP; k++) {
        double d = tu_rel(a->x[k], ref->x[k], 1.0 + fabs(ref->x[k]));
        if (d > dx) dx = d;
    }
    double dc = tu_rel(a->res.cost, ref->res.cost, 0);
    double dv = with_cov ? tu_cov_rel(a->cov, ref->cov, TP) : 0.0;
    CHECK(dx <= tol, "%s: x differs by %.3g", what, dx);
    CHECK(dc <= tol, "%s: cost differs by %.3g", what, dc);
    CHECK(dv <= tol, "%s: covariance differs by %.3g", what, dv);
    if (g_rank == 0)
        printf("  %-26s %-15s cost %.15g  rel.diff vs 1 process: x %.2e cost %.2e cov %.2e\n",
               what, nlsq_status_name(a->status), a->res.cost, dx, dc, dv);
}

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);
    FILE *dig = NULL;
    if (argc > 1 && g_rank == 0) dig = fopen(argv[1], "w");

    for (int which = 0; which < 3; which++) {
        const char *name = tu_solver_name[which];
        int with_cov = which != TU_ADAM;
        tu_run ref, a, b, t2, cu;
        nlsq_options o;
        tu_options(&o);
        tu_solve(which, &o, NULL, &ref);   /* one process, all rows */

        dist_solve(which, 1, 0, &a);
        dist_solve(which, 1, 0, &b);
        dist_solve(which, 2, 0, &t2);
        dist_solve(which, 1, 1, &cu);
        char what[64];
        snprintf(what, sizeof what, "%s, blocks of 1000", name);
        compare(what, &a, &ref, with_cov, 1e-9);
        snprintf(what, sizeof what, "%s, uneven ranges", name);
        compare(what, &cu, &ref, with_cov, 1e-9);

        uint64_t da = tu_digest(&a);
        CHECK(da == tu_digest(&b), "%s: repeated attach+solve not bitwise equal", name);
        CHECK(da == tu_digest(&t2), "%s: 2 threads per rank not bitwise equal to 1", name);
        CHECK(tu_all_same(da), "%s: ranks disagree (blocks)", name);
        CHECK(tu_all_same(tu_digest(&cu)), "%s: ranks disagree (uneven ranges)", name);
        if (dig) fprintf(dig, "%s %016llx\n", name, (unsigned long long)da);
    }

    /* nlsq_covariance alone, at a point that is not the solution */
    {
        nlsq_problem pb = {.n_params = TP, .n_rows = TM, .eval = tu_eval};
        const double x[TP] = {2.4, 1.25, 0.41, 0.09};
        double cref[TP * TP], cd[TP * TP];
        nlsq_options o;
        tu_options(&o);
        int s1 = nlsq_covariance(&pb, &o, x, cref, NULL);
        nlsq_mpi_ctx *mc;
        CHECK(nlsq_mpi_attach(&o, MPI_COMM_WORLD, TM, 777, &mc) == 0, "attach");
        int s2 = nlsq_covariance(&pb, &o, x, cd, NULL);
        nlsq_mpi_detach(mc, &o);
        CHECK(s1 == s2, "covariance status %d vs %d", s2, s1);
        double dv = tu_cov_rel(cd, cref, TP);
        CHECK(dv <= 1e-9, "covariance differs by %.3g", dv);
        CHECK(tu_all_same(tu_fnv(0, cd, sizeof cd)), "covariance: ranks disagree");
        if (g_rank == 0) printf("  %-26s rel.diff vs 1 process: %.2e\n", "covariance", dv);
        if (dig) fprintf(dig, "covariance %016llx\n", (unsigned long long)tu_fnv(0, cd, sizeof cd));
    }

    /* attach checks: n_rows must agree; ranges must tile [0, n_rows) */
    {
        nlsq_options o;
        tu_options(&o);
        nlsq_mpi_ctx *mc = NULL;
        int rc = nlsq_mpi_attach(&o, MPI_COMM_WORLD, (size_t)(TM + (g_rank == g_size - 1)), 10, &mc);
        CHECK(rc == (g_size > 1 ? NLSQ_EINVAL : 0), "different n_rows: %d", rc);
        nlsq_mpi_detach(mc, &o);
        size_t b, e;
        nlsq_mpi_partition(TM, 10, g_size, g_rank, &b, &e);
        if (g_rank == 0 && e > b) e--;   /* a hole when size > 1 (or a short cover when 1) */
        rc = nlsq_mpi_attach_range(&o, MPI_COMM_WORLD, TM, b, e, &mc);
        CHECK(rc == NLSQ_EINVAL, "hole in the ranges: %d", rc);
        CHECK(mc == NULL, "ctx on error");
        CHECK(o.dist.reduce == NULL, "opt->dist filled on error");
    }
    /* the default partition: whole blocks, contiguous, in rank order */
    {
        size_t at = 0;
        for (int r = 0; r < 5; r++) {
            size_t b, e;
            nlsq_mpi_partition(10007, 100, 5, r, &b, &e);
            CHECK(b == at && (b % 100 == 0) && (e % 100 == 0 || e == 10007), "partition %d", r);
            at = e;
        }
        CHECK(at == 10007, "partition does not cover");
        size_t b, e;
        nlsq_mpi_partition(3, 1, 5, 4, &b, &e);
        CHECK(b == 2 && e == 3, "partition of 3 rows over 5 ranks, last: [%zu, %zu)", b, e);
        nlsq_mpi_partition(3, 1, 5, 0, &b, &e);
        CHECK(b == 0 && e == 0, "partition of 3 rows over 5 ranks, first: [%zu, %zu)", b, e);
    }
    if (dig) fclose(dig);
    return tu_finish("test_mpi_solvers");
}
