/* test_mpi_xpcs - the XPCS model over MPI ranks, read from an HDF5 file.
 *
 * Rank 0 writes a small synthetic file; every rank opens it read-only and
 * builds a streaming model (memory_budget 0) over a source that records
 * which matrix rows it reads and turns a fixed pattern of entries into NaN
 * (excluded data).  Checks:
 *   - the start point of nlsq_mpi_xpcs_initial_guess equals the one-process
 *     one (same function on MPI_COMM_SELF) and nlsq_xpcs_start to
 *     rounding, and its excluded count equals the cached model's; also on a
 *     matrix large enough for the library to sample rows, with merged
 *     symmetric pairs (weighted rows) and NaN on and off the diagonal;
 *   - LM over the ranks equals the one-process fit (cached model) to 1e-9
 *     relative in cost, and in x to 1e-9 relative or 1e-4 of its standard
 *     error; the covariance to 1e-4 only: this small
 *     problem is nearly singular (shear undetermined, D0 and D_offset
 *     correlated; condition ~1e20) and its inverse amplifies rounding (the
 *     well-conditioned problem of test_mpi_solvers checks 1e-9);
 *   - hybrid: its Adam mini-batches restricted to each rank's rows; along
 *     this problem's flat valley the trajectory parts at rounding level, so
 *     only the cost is compared (1e-4);
 *   - every rank returns bitwise the same result;
 *   - each rank read only matrix rows that hold some of its own fit rows, and
 *     all of them.
 */
#include "mpi_test_util.h"
#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"

#include <unistd.h>

typedef struct cnt_src {
    nlsq_xpcs_file *f;
    const nlsq_xpcs_selection *sel;
    size_t n, P;
    unsigned char *seen;   /* P * n: matrix rows read */
    size_t fail_angle;     /* reads of this angle fail (SIZE_MAX: none) */
} cnt_src;

static int nan_entry(size_t a, size_t i, size_t j) { return (i * 7 + j * 3 + a) % 101 == 0; }

static int cnt_read(void *ctx, size_t a, size_t row0, size_t nrows, double *out)
{
    cnt_src *c = ctx;
    if (a == c->fail_angle) return 7;
    int rc = nlsq_xpcs_read_rows(c->f, c->sel, a, row0, nrows, out, NULL, 0);
    if (rc != 0) return rc;
    for (size_t t = 0; t < nrows; t++) {
        c->seen[a * c->n + row0 + t] = 1;
        for (size_t j = 0; j < c->n; j++)
            if (nan_entry(a, row0 + t, j)) out[t * c->n + j] = NAN;
    }
    return 0;
}

/* The largest |a - b| in units of b's standard error (the diagonal of the
 * covariance cov); parameters the covariance does not determine are left out. */
static double max_sigma(const double *a, const double *b, const double *cov, size_t n)
{
    double w = 0;
    for (size_t k = 0; k < n; k++) {
        double se = sqrt(cov[k * n + k]);
        if (!(se > 0) || !isfinite(se)) continue;
        double d = fabs(a[k] - b[k]) / se;
        if (!(d <= w)) w = d;
    }
    return w;
}

/* Upper triangle without diagonal: local row of matrix row i's first entry. */
static size_t row_start(size_t n, size_t i) { return i * (2 * n - i - 1) / 2; }

static double max_rel(const double *a, const double *b, size_t n)
{
    double w = 0;
    for (size_t k = 0; k < n; k++) {
        double d = tu_rel(a[k], b[k], 1e-12 + fabs(b[k]));
        if (d > w) w = d;
    }
    return w;
}

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);
    char path[512];
    snprintf(path, sizeof path, "%s/mpi_xpcs_np%d.h5", NLSQ_TEST_TMPDIR, g_size);
    nlsq_xpcs_synth_spec sp;
    nlsq_xpcs_synth_spec_default(&sp);
    sp.n_frames = 150;
    sp.n_angles = 4;
    sp.seed = 11;
    /* a shear strong enough to be seen in 150 frames (phase ~3 at the
     * longest lag): with the default 1e-3 the shear parameters and phi0 are
     * barely determined and the LM ends in a flat valley, where runs parted
     * at rounding level are not comparable */
    sp.params[3] = 1e-2;
    if (g_rank == 0) {
        char err[256] = "";
        int rc = nlsq_xpcs_synth_write(path, &sp, err, sizeof err);
        CHECK(rc == 0, "synth: %s", err);
    }
    MPI_Barrier(MPI_COMM_WORLD);

    nlsq_xpcs_file *f = NULL;
    nlsq_xpcs_selection sel;
    memset(&sel, 0, sizeof sel);
    char err[256] = "";
    int rc = nlsq_xpcs_open(path, &f, err, sizeof err);
    CHECK(rc == 0, "open: %s", err);
    if (rc == 0) rc = nlsq_xpcs_select(f, NAN, 0, SIZE_MAX, &sel, err, sizeof err);
    CHECK(rc == 0, "select: %s", err);
    if (rc != 0) return tu_finish("test_mpi_xpcs");
    const size_t n = sel.last_frame - sel.first_frame + 1, P = sel.n_angles;

    cnt_src cs_mpi = {f, &sel, n, P, calloc(P * n, 1), SIZE_MAX};
    cnt_src cs_one = {f, &sel, n, P, calloc(P * n, 1), SIZE_MAX};
    nlsq_xpcs_source src;
    memset(&src, 0, sizeof src);
    src.n_angles = P;
    src.n = n;
    src.phi = sel.phi;
    src.kind = NLSQ_XPCS_SOURCE_READ;
    src.u.read.fn = cnt_read;
    src.u.read.thread_safe = 0;
    src.u.read.float32 = nlsq_xpcs_is_float32(f);

    nlsq_xpcs_config cfg;
    nlsq_xpcs_config_init(&cfg);
    cfg.q = sel.q;
    cfg.gap = sp.gap;
    cfg.dt = sp.dt;
    cfg.k0 = sel.first_frame;

    /* one process: cached model */
    nlsq_xpcs_model *m1 = NULL, *md = NULL;
    src.u.read.ctx = &cs_one;
    rc = nlsq_xpcs_model_create(&src, &cfg, &m1, err, sizeof err);
    CHECK(rc == 0, "model (cached): %s", err);
    /* over the ranks: streaming */
    nlsq_xpcs_config cfg_s = cfg;
    cfg_s.memory_budget = 0;
    src.u.read.ctx = &cs_mpi;
    rc = nlsq_xpcs_model_create(&src, &cfg_s, &md, err, sizeof err);
    CHECK(rc == 0, "model (streaming): %s", err);
    if (!m1 || !md) return tu_finish("test_mpi_xpcs");

    nlsq_problem pb1, pbd;
    nlsq_xpcs_model_problem(m1, &pb1);
    nlsq_xpcs_model_problem(md, &pbd);
    const size_t p = pb1.n_params, m = pb1.n_rows, R = m / P;
    double *x0lib = malloc(sizeof(double) * p), *x0one = malloc(sizeof(double) * p);
    double *x0 = malloc(sizeof(double) * p);

    /* start points */
    CHECK(nlsq_xpcs_start(m1, NULL, NULL, x0lib, NULL, 0) == 0, "library guess");
    nlsq_options o;
    nlsq_options_init(&o);
    o.n_threads = 1;
    o.chunk_rows = 256;
    nlsq_mpi_ctx *self = NULL, *mc = NULL;
    CHECK(nlsq_mpi_attach(&o, MPI_COMM_SELF, m, 1, &self) == 0, "attach self");
    char e1[256] = "", e2[256] = "";
    CHECK(nlsq_mpi_xpcs_initial_guess(self, m1, &cfg, NULL, x0one, e1, sizeof e1) == 0,
          "guess, 1 rank: %s", e1);
    nlsq_mpi_detach(self, &o);
    CHECK(nlsq_mpi_attach(&o, MPI_COMM_WORLD, m, 97, &mc) == 0, "attach");
    CHECK(nlsq_mpi_xpcs_initial_guess(mc, md, &cfg_s, NULL, x0, e2, sizeof e2) == 0,
          "guess, ranks: %s", e2);
    CHECK(e1[0] == '\0' && e2[0] == '\0', "messages on success: '%s' '%s'", e1, e2);
    double g1 = max_rel(x0, x0one, p), g2 = max_rel(x0one, x0lib, p);
    CHECK(g1 <= 1e-9, "start point over the ranks vs one rank: %.3g", g1);
    CHECK(g2 <= 1e-9, "start point vs nlsq_xpcs_start: %.3g", g2);
    const size_t excl = nlsq_xpcs_model_n_excluded(m1);   /* cached: counted at creation */
    CHECK(excl > 0, "the data have no excluded entries");
    CHECK(tu_all_same(tu_fnv(0, x0, sizeof(double) * p)), "start point: ranks disagree");
    if (g_rank == 0)
        printf("  %zu angles x %zu frames, m = %zu rows, p = %zu; start point rel.diff: "
               "vs 1 rank %.2e, vs nlsq_xpcs_start %.2e; %zu entries excluded\n",
               P, n, m, p, g1, g2, excl);

    for (int which = 0; which < 2; which++) {
        const int solver = which == 0 ? TU_LM : TU_HYBRID;
        double *xs = malloc(sizeof(double) * p), *xd = malloc(sizeof(double) * p);
        double *cs = malloc(sizeof(double) * p * p), *cd = malloc(sizeof(double) * p * p);
        nlsq_result rs, rd;
        memset(&rs, 0, sizeof rs);
        memset(&rd, 0, sizeof rd);
        rs.covariance = cs;
        rd.covariance = cd;
        nlsq_options o1;
        nlsq_options_init(&o1);
        o1.n_threads = 1;
        o1.hybrid.adam_epochs = 2;
        o1.adam.batch_rows = 512;
        nlsq_options od = o1;
        nlsq_mpi_options(mc, &od);
        memcpy(xs, x0one, sizeof(double) * p);
        memcpy(xd, x0, sizeof(double) * p);
        int s1 = solver == TU_LM ? nlsq_lm(&pb1, &o1, xs, &rs) : nlsq_hybrid(&pb1, &o1, xs, &rs);
        int sd = solver == TU_LM ? nlsq_lm(&pbd, &od, xd, &rd) : nlsq_hybrid(&pbd, &od, xd, &rd);
        double dx = max_rel(xd, xs, p), dc = tu_rel(rd.cost, rs.cost, 0);
        double dv = tu_cov_rel(cd, cs, p);
        /* the observations: the streamed model's rows summed over the
         * ranks = the cached model's in one process, the NaN entries out */
        CHECK(rd.n_obs == rs.n_obs && rs.n_obs == nlsq_xpcs_model_n_rows(m1) - excl &&
              rd.dof == rs.dof && rd.dof == (double)rd.n_obs - (double)p,
              "%s: observations %zu over the ranks, %zu in one process, expected %zu - %zu",
              tu_solver_name[solver], rd.n_obs, rs.n_obs, nlsq_xpcs_model_n_rows(m1), excl);
        if (solver == TU_LM) {
            /* condition ~1e20 (below): along the undetermined directions no
             * reduction is measurable, and the gradient there is not below
             * gtol, so an honest LM may end NLSQ_STALLED rather than converged */
            CHECK(s1 == sd && (s1 > 0 || s1 == NLSQ_STALLED), "lm: status %s vs %s",
                  nlsq_status_name(sd), nlsq_status_name(s1));
            /* x: where the minimum is this flat (D0 and D_offset nearly
             * collinear), runs parted at rounding level stop at points that
             * differ far below the error bars but above 1e-9 relative */
            double ds = max_sigma(xd, xs, cs, p);
            CHECK((dx <= 1e-9 || ds <= 1e-4) && dc <= 1e-9, "lm: x %.3g (%.3g sigma) cost %.3g",
                  dx, ds, dc);
            /* J^T J of this small problem has condition ~1e20 (undetermined
             * shear, D0 ~ D_offset): its inverse amplifies the rounding */
            CHECK(dv <= 1e-4, "lm: covariance %.3g", dv);
        } else {
            /* mini-batch Adam, then LM along a flat valley: the trajectories
             * part at the rounding level; the minimum found is as good */
            CHECK((s1 >= 0 || s1 == NLSQ_STALLED) && (sd >= 0 || sd == NLSQ_STALLED),
                  "hybrid: status %s vs %s", nlsq_status_name(sd), nlsq_status_name(s1));
            CHECK(dc <= 1e-4, "hybrid: cost %.3g", dc);
        }
        uint64_t h = tu_fnv(tu_fnv(tu_fnv(0, xd, sizeof(double) * p), cd, sizeof(double) * p * p),
                            &rd.cost, sizeof rd.cost);
        CHECK(tu_all_same(h), "%s: ranks disagree", tu_solver_name[solver]);
        if (g_rank == 0)
            printf("  %-6s %s, %zu iterations, cost %.12g; rel.diff vs 1 process: x %.2e cost "
                   "%.2e cov %.2e\n", tu_solver_name[solver], nlsq_status_name(sd), rd.iterations,
                   rd.cost, dx, dc, dv);
        free(xs); free(xd); free(cs); free(cd);
    }

    /* what did this rank read? */
    size_t rb, re;
    nlsq_mpi_rows(mc, &rb, &re);
    size_t own = 0, read = 0, stray = 0, missed = 0;
    for (size_t a = 0; a < P; a++)
        for (size_t i = 0; i < n; i++) {
            size_t g0 = a * R + row_start(n, i), g1e = g0 + (n - 1 - i);
            int mine = g1e > g0 && g0 < re && g1e > rb;
            int was = cs_mpi.seen[a * n + i];
            own += mine;
            read += was;
            if (was && !mine) stray++;
            if (mine && !was) missed++;
        }
    CHECK(stray == 0, "rank %d read %zu matrix rows outside its rows [%zu, %zu)", g_rank, stray, rb, re);
    CHECK(missed == 0, "rank %d never read %zu of its matrix rows", g_rank, missed);
    unsigned long long tot[2] = {read, P * n}, sum[2];
    MPI_Reduce(tot, sum, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("  matrix rows read: rank 0 %zu of %zu (the rows holding its fit rows: %zu); all "
               "ranks together %llu (%zu rows hold fit rows; a row split between two ranks is "
               "read by both)\n", read, P * n, own, sum[0], P * (n - 1));

    /* a read that fails (the last angle's rows): every rank returns
     * ECALLBACK with a line, the rank whose read failed naming it, the
     * others saying it failed on another process */
    cs_mpi.fail_angle = P - 1;
    char ef[256] = "", want[64];
    snprintf(want, sizeof want, "of angle %zu failed", P - 1);
    int rf = nlsq_mpi_xpcs_initial_guess(mc, md, &cfg_s, NULL, x0, ef, sizeof ef);
    int named = strstr(ef, want) != NULL, other = strstr(ef, "another process") != NULL, n_named = 0;
    CHECK(rf == NLSQ_ECALLBACK && named + other == 1, "failing read: %s, '%s'",
          nlsq_status_name(rf), ef);
    MPI_Allreduce(&named, &n_named, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    CHECK(n_named >= 1, "no rank named the failing read");
    if (g_rank == 0) printf("  failing read: %d rank(s) name it; rank 0: '%s'\n", n_named, ef);
    cs_mpi.fail_angle = SIZE_MAX;

    nlsq_mpi_detach(mc, NULL);

    /* The start point on a bigger matrix (the library samples blocks of
     * rows) with merged symmetric pairs (full triangle with the diagonal,
     * symmetric in-memory data: off-diagonal rows weigh sqrt(2), diagonal
     * rows 1) and NaN entries (symmetric, some on the diagonal). */
    {
        nlsq_xpcs_synth_spec s2 = sp;
        s2.n_frames = 400;
        s2.n_angles = 2;
        const size_t n2 = s2.n_frames, P2 = s2.n_angles;
        float *d = malloc(sizeof(float) * P2 * n2 * n2);
        double *row = malloc(sizeof(double) * n2);
        for (size_t a = 0; a < P2; a++)
            for (size_t i = 0; i < n2; i++) {
                CHECK(nlsq_xpcs_synth_rows(&s2, a, i, 1, row, err, sizeof err) == 0, "synth rows");
                for (size_t j = 0; j < n2; j++) d[(a * n2 + i) * n2 + j] = (float)row[j];
            }
        for (size_t a = 0; a < P2; a++)
            for (size_t i = 0; i < n2; i++)
                for (size_t j = i; j < n2; j++)
                    if ((i * 13 + j * 7 + a) % 211 == 0) {
                        d[(a * n2 + i) * n2 + j] = NAN;
                        d[(a * n2 + j) * n2 + i] = NAN;
                    }
        double phi2[2] = {0.0, 180.0};
        nlsq_xpcs_source s2src = {.kind = NLSQ_XPCS_SOURCE_MEMORY, .n_angles = P2, .n = n2,
                                  .phi = phi2, .u.memory.data32 = d};
        nlsq_xpcs_config c2 = cfg;
        c2.triangle = NLSQ_XPCS_FULL;
        c2.include_diagonal = 1;
        c2.k0 = 0;
        nlsq_xpcs_model *m2 = NULL;
        CHECK(nlsq_xpcs_model_create(&s2src, &c2, &m2, err, sizeof err) == 0, "model 2: %s", err);
        if (m2) {
            nlsq_problem pb2;
            nlsq_xpcs_model_problem(m2, &pb2);
            const size_t obs2 = nlsq_xpcs_model_n_rows(m2);
            CHECK(obs2 == P2 * n2 * n2 && pb2.n_rows == P2 * n2 * (n2 + 1) / 2,
                  "merged pairs expected: %zu rows, %zu observations", pb2.n_rows, obs2);
            double *xl = malloc(sizeof(double) * pb2.n_params), *xm = malloc(sizeof(double) * pb2.n_params);
            CHECK(nlsq_xpcs_start(m2, NULL, NULL, xl, NULL, 0) == 0, "library guess 2");
            nlsq_options o2;
            nlsq_options_init(&o2);
            nlsq_mpi_ctx *mc2 = NULL;
            CHECK(nlsq_mpi_attach(&o2, MPI_COMM_WORLD, pb2.n_rows, 1000, &mc2) == 0, "attach 2");
            CHECK(nlsq_mpi_xpcs_initial_guess(mc2, m2, &c2, NULL, xm, NULL, 0) == 0, "guess 2");
            const size_t ex2 = nlsq_xpcs_model_n_excluded(m2);   /* in memory: at creation */
            /* the observations the rows declare (merged pairs 2, excluded
             * entries 0), summed over the ranks' rows by dist.reduce: the
             * one-process count, and every rank has it */
            size_t p2 = pb2.n_params;
            double *cv = malloc(sizeof(double) * p2 * p2);
            nlsq_result rdist = {0}, rone = {0};
            nlsq_options o1;
            nlsq_options_init(&o1);
            CHECK(cv && nlsq_covariance(&pb2, &o2, xm, cv, &rdist) == 0, "distributed covariance");
            CHECK(cv && nlsq_covariance(&pb2, &o1, xm, cv, &rone) == 0, "one-process covariance");
            CHECK(rdist.n_obs == obs2 - ex2 && rone.n_obs == rdist.n_obs,
                  "observations: %zu over the ranks, %zu in one process, expected %zu - %zu",
                  rdist.n_obs, rone.n_obs, obs2, ex2);
            CHECK(rdist.dof == (double)(obs2 - ex2) - (double)rdist.n_free &&
                  rdist.reduced_chi2 == 2.0 * rdist.cost / rdist.dof,
                  "dof %.0f, reduced chi2 %.17g", rdist.dof, rdist.reduced_chi2);
            CHECK(tu_all_same((uint64_t)rdist.n_obs), "observation counts differ over ranks");
            free(cv);
            nlsq_mpi_detach(mc2, &o2);
            double g3 = max_rel(xm, xl, pb2.n_params);
            CHECK(g3 <= 1e-9, "sampled start point vs nlsq_xpcs_start: %.3g", g3);
            CHECK(ex2 > 0, "no excluded observations in the data");
            CHECK(tu_all_same(tu_fnv(0, xm, sizeof(double) * pb2.n_params)), "guess 2: ranks disagree");
            if (g_rank == 0)
                printf("  %zu angles x %zu frames, full + diagonal as %zu merged rows (%zu "
                       "observations), sampled start point rel.diff vs nlsq_xpcs_start "
                       "%.2e; %zu observations excluded, %zu counted over the ranks\n", P2, n2,
                       pb2.n_rows, obs2, g3, ex2, rdist.n_obs);
            free(xl);
            free(xm);
        }
        nlsq_xpcs_model_free(m2);
        free(d);
        free(row);
    }
    nlsq_xpcs_model_free(m1);
    nlsq_xpcs_model_free(md);
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
    free(cs_mpi.seen);
    free(cs_one.seen);
    free(x0lib);
    free(x0one);
    free(x0);
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) unlink(path);
    return tu_finish("test_mpi_xpcs");
}
