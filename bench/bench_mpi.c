/*
 * bench_mpi - the XPCS benchmark fit over MPI ranks (nlsq_mpi).
 *
 *   mpirun -np R bench_mpi [--threads T] [--scale S] [--method lm|hybrid]
 *                          [--file F.h5 [--upper]] [--json]
 *
 * In memory (default): the 23M-point benchmark problem of docs/xpcs-model.md (23 angles,
 * N = 1001, both triangles with the diagonal: m = 23 N^2 = 23,046,023 rows,
 * p = 53; --scale S multiplies N^2 by S).  The rows are split over the ranks
 * in whole matrix rows (blocks of N fit rows), and each rank generates only
 * the matrix rows it owns, with nlsq_xpcs_synth_rows (the rows an xpcs_synth
 * file would give), stored as float32, and serves them to a streaming model
 * through a read callback that refuses any other row.
 * --file F.h5: the same fit on a file written by xpcs_synth, read through the
 * reader, streaming (memory_budget 0): each rank reads only its rows
 * (--upper: fit the upper triangle with the diagonal instead).
 *
 * Start: nlsq_mpi_xpcs_initial_guess (its pass timed as init_s).  Fit:
 * nlsq_lm (or nlsq_hybrid), default options, with the covariance.
 * Reported by rank 0: data generation seconds, init_s, fit seconds,
 * iterations, passes, rows/s per pass, reduces and the seconds spent in them
 * on rank 0, peak RSS (VmHWM) of every rank, status, cost and a digest of x.
 *
 * Fair comparisons on a 2-core machine: 1 process x 2 threads against
 * 2 processes x 1 thread, both under mpirun --bind-to none.
 *
 * Without MPI (NLSQ_MPI off) this program is a stub that says so.
 */
#ifndef NLSQ_BENCH_WITH_MPI
#include <stdio.h>

int main(void)
{
    fputs("bench_mpi: built without MPI (configure with -DNLSQ_MPI=ON)\n", stderr);
    return 2;
}
#else
#define _GNU_SOURCE
#include "nlsq.h"
#include "nlsq_mpi.h"
#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') { v = strtol(line + n + 1, NULL, 10); break; }
    fclose(f);
    return v;
}

/* This rank's matrix rows of every angle, float32: angle a's rows
 * [i0[a], i1[a]) at data + off[a]. */
typedef struct rank_rows {
    size_t n, P;
    size_t *i0, *i1, *off;
    float *data;
} rank_rows;

static int rows_read(void *ctx, size_t a, size_t row0, size_t nrows, double *out)
{
    const rank_rows *rr = ctx;
    if (a >= rr->P || row0 < rr->i0[a] || row0 + nrows > rr->i1[a]) return -1;   /* not ours */
    const float *s = rr->data + rr->off[a] + (row0 - rr->i0[a]) * rr->n;
    for (size_t k = 0; k < nrows * rr->n; k++) out[k] = (double)s[k];
    return 0;
}

static int usage(void)
{
    fputs("usage: mpirun -np R bench_mpi [--threads T] [--scale S] [--method lm|hybrid]\n"
          "                              [--file F.h5 [--upper]] [--json]\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    int threads = 1, json = 0, upper = 0;
    double scale = 1.0;
    const char *method = "lm", *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--method") && i + 1 < argc) method = argv[++i];
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--upper")) upper = 1;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else { if (rank == 0) usage(); MPI_Finalize(); return 2; }
    }
    if (threads < 1 || !(scale > 0) || (strcmp(method, "lm") && strcmp(method, "hybrid")) ||
        (upper && !file)) {
        if (rank == 0) usage();
        MPI_Finalize();
        return 2;
    }

    nlsq_xpcs_synth_spec sp;
    nlsq_xpcs_synth_spec_default(&sp);
    char err[512] = "";
    nlsq_xpcs_file *f = NULL;
    nlsq_xpcs_selection sel;
    memset(&sel, 0, sizeof sel);
    nlsq_xpcs_source src;
    memset(&src, 0, sizeof src);
    rank_rows rr;
    memset(&rr, 0, sizeof rr);
    size_t n, P;
    double t_data = 0;
    if (file) {
        int rc = nlsq_xpcs_open(file, &f, err, sizeof err);
        if (rc == 0) rc = nlsq_xpcs_select(f, NAN, 0, SIZE_MAX, &sel, err, sizeof err);
        if (rc == 0) rc = nlsq_xpcs_file_source(f, &sel, &src);
        if (rc != 0) {
            fprintf(stderr, "bench_mpi: rank %d: %s\n", rank, err);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        n = src.n;
        P = src.n_angles;
    } else {
        sp.n_frames = (size_t)llround(1001.0 * sqrt(scale));
        n = sp.n_frames;
        P = sp.n_angles;
    }
    nlsq_xpcs_config cfg;
    nlsq_xpcs_config_init(&cfg);
    cfg.triangle = upper ? NLSQ_XPCS_UPPER : NLSQ_XPCS_FULL;
    cfg.include_diagonal = 1;
    cfg.q = file ? sel.q : sp.q;
    cfg.gap = sp.gap;
    cfg.dt = sp.dt;
    cfg.k0 = file ? sel.first_frame : sp.k0;
    cfg.memory_budget = 0;   /* stream: a rank reads only the rows it evaluates */
    nlsq_xpcs_model *model = NULL;
    nlsq_problem pb;
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = threads;
    nlsq_mpi_ctx *mc = NULL;
    size_t m, rb, re;
    if (file) {
        /* A file's matrices are symmetric: the model presents each pair
         * once, weighted (m = its rows, observations = both triangles).  Streaming
         * reads nothing at creation. */
        if (nlsq_xpcs_model_create(&src, &cfg, &model, err, sizeof err) != 0) {
            fprintf(stderr, "bench_mpi: %s\n", err);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        nlsq_xpcs_model_problem(model, &pb);
        m = pb.n_rows;
        if (nlsq_mpi_attach(&opt, MPI_COMM_WORLD, m, 4096, &mc) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
        nlsq_mpi_rows(mc, &rb, &re);
    } else {
        /* A read callback is not known to be symmetric: both triangles are
         * evaluated, n^2 rows per angle; whole matrix rows per rank. */
        const size_t rows_per_angle = n * n;
        m = P * rows_per_angle;
        if (nlsq_mpi_attach(&opt, MPI_COMM_WORLD, m, n, &mc) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
        nlsq_mpi_rows(mc, &rb, &re);
        /* generate this rank's matrix rows only */
        double t0 = now_s();
        rr.n = n;
        rr.P = P;
        rr.i0 = calloc(P, sizeof(size_t));
        rr.i1 = calloc(P, sizeof(size_t));
        rr.off = calloc(P, sizeof(size_t));
        size_t total = 0;
        for (size_t a = 0; a < P; a++) {
            size_t lo = a * rows_per_angle, hi = lo + rows_per_angle;
            size_t b = rb > lo ? rb : lo, e = re < hi ? re : hi;
            if (e > b) {
                rr.i0[a] = (b - lo) / n;
                rr.i1[a] = (e - lo + n - 1) / n;
            }
            rr.off[a] = total;
            total += (rr.i1[a] - rr.i0[a]) * n;
        }
        rr.data = malloc(sizeof(float) * (total ? total : 1));
        double *buf = malloc(sizeof(double) * 64 * n);
        if (!rr.data || !buf) MPI_Abort(MPI_COMM_WORLD, 1);
        for (size_t a = 0; a < P; a++)
            for (size_t i = rr.i0[a]; i < rr.i1[a]; i += 64) {
                size_t k = rr.i1[a] - i < 64 ? rr.i1[a] - i : 64;
                if (nlsq_xpcs_synth_rows(&sp, a, i, k, buf, err, sizeof err) != 0) {
                    fprintf(stderr, "bench_mpi: %s\n", err);
                    MPI_Abort(MPI_COMM_WORLD, 1);
                }
                float *dst = rr.data + rr.off[a] + (i - rr.i0[a]) * n;
                for (size_t q = 0; q < k * n; q++) dst[q] = (float)buf[q];
            }
        free(buf);
        static double phi[64];
        for (size_t a = 0; a < P && a < 64; a++)
            phi[a] = sp.phi ? sp.phi[a] : (double)a * 360.0 / (double)P;
        src.n_angles = P;
        src.n = n;
        src.phi = phi;
        src.kind = NLSQ_XPCS_SOURCE_READ;
        src.u.read.fn = rows_read;
        src.u.read.ctx = &rr;
        src.u.read.thread_safe = 1;
        src.u.read.float32 = 1;
        t_data = now_s() - t0;
        if (nlsq_xpcs_model_create(&src, &cfg, &model, err, sizeof err) != 0) {
            fprintf(stderr, "bench_mpi: %s\n", err);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        nlsq_xpcs_model_problem(model, &pb);
        if (pb.n_rows != m) {
            fprintf(stderr, "bench_mpi: the model has %zu rows, expected %zu\n", pb.n_rows, m);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    long rss_data = status_kib("VmRSS");
    const size_t p = pb.n_params;
    double *x = malloc(sizeof(double) * p), *cov = malloc(sizeof(double) * p * p);

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_s();
    int rc = nlsq_mpi_xpcs_initial_guess(mc, model, &cfg, NULL, x, err, sizeof err);
    double t_init = now_s() - t0;
    if (rc != 0) {
        fprintf(stderr, "bench_mpi: initial guess: %s\n", err[0] ? err : nlsq_status_string(rc));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    nlsq_mpi_stats st0;
    nlsq_mpi_get_stats(mc, &st0);

    nlsq_result res;
    memset(&res, 0, sizeof res);
    res.covariance = cov;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = now_s();
    int status = !strcmp(method, "hybrid") ? nlsq_hybrid(&pb, &opt, x, &res)
                                           : nlsq_lm(&pb, &opt, x, &res);
    double t_fit = now_s() - t0;
    size_t n_excl = res.n_obs ? nlsq_xpcs_model_n_rows(model) - res.n_obs : 0;   /* all ranks */
    nlsq_mpi_stats st;
    nlsq_mpi_get_stats(mc, &st);

    long hwm = status_kib("VmHWM");
    long *hwms = malloc(sizeof(long) * (size_t)size);
    MPI_Gather(&hwm, 1, MPI_LONG, hwms, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    long rss_d = rss_data, *rssd = malloc(sizeof(long) * (size_t)size);
    MPI_Gather(&rss_d, 1, MPI_LONG, rssd, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    double t_data_max = 0;
    MPI_Reduce(&t_data, &t_data_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);

    if (rank == 0) {
        uint64_t h = 1469598103934665603ULL;
        const unsigned char *c = (const unsigned char *)x;
        for (size_t k = 0; k < sizeof(double) * p; k++) h = (h ^ c[k]) * 1099511628211ULL;
        double passes = (double)(res.n_jac + res.n_eval);
        double rows_s = passes * (double)m / t_fit;
        long hwm_max = 0;
        for (int r = 0; r < size; r++) if (hwms[r] > hwm_max) hwm_max = hwms[r];
        if (json) {
            printf("{\"ranks\":%d,\"threads\":%d,\"source\":\"%s\",\"m\":%zu,\"n_obs\":%zu,\"p\":%zu,"
                   "\"method\":\"%s\",\"data_s\":%.3f,\"init_s\":%.3f,\"fit_s\":%.3f,"
                   "\"iterations\":%zu,\"n_jac\":%zu,\"n_eval\":%zu,\"rows_per_s\":%.4g,"
                   "\"reduces\":%llu,\"reduce_s\":%.3f,\"vmhwm_mib\":[",
                   size, threads, file ? "file" : "memory", m, nlsq_xpcs_model_n_rows(model), p, method,
                   t_data_max, t_init,
                   t_fit, res.iterations, res.n_jac, res.n_eval, rows_s,
                   (unsigned long long)(st.n_reduce - st0.n_reduce), st.wait_s - st0.wait_s);
            for (int r = 0; r < size; r++) printf("%s%.1f", r ? "," : "", (double)hwms[r] / 1024.0);
            printf("],\"status\":\"%s\",\"cost\":%.17g,\"n_excluded\":%zu,\"x_digest\":\"%016llx\","
                   "\"x\":[", nlsq_status_name(status), res.cost, n_excl, (unsigned long long)h);
            for (size_t k = 0; k < p; k++) printf("%s%.17g", k ? "," : "", x[k]);
            printf("]}\n");
        } else {
            printf("bench_mpi: %d rank%s x %d thread%s, %s data, m = %zu rows (%zu observations),"
                   " p = %zu, %s\n", size, size == 1 ? "" : "s", threads, threads == 1 ? "" : "s",
                   file ? "file (streamed)" : "in-memory (streamed, own rows only)", m,
                   nlsq_xpcs_model_n_rows(model), p, method);
            printf("  data %.2f s (slowest rank), start point %.2f s, fit %.2f s: %s, %zu iterations,"
                   " %zu + %zu passes, %.3g rows/s per pass\n", t_data_max, t_init, t_fit,
                   nlsq_status_name(status), res.iterations, res.n_jac, res.n_eval, rows_s);
            printf("  reduces during the fit: %llu, %.3f s on rank 0 (waiting included)\n",
                   (unsigned long long)(st.n_reduce - st0.n_reduce), st.wait_s - st0.wait_s);
            printf("  peak RSS (VmHWM) per rank:");
            for (int r = 0; r < size; r++) printf(" %.1f", (double)hwms[r] / 1024.0);
            printf(" MiB (after the data: ");
            for (int r = 0; r < size; r++) printf("%s%.1f", r ? " " : "", (double)rssd[r] / 1024.0);
            printf(" MiB)\n  cost %.12g, x digest %016llx, D0 %.10g, alpha %.10g\n", res.cost,
                   (unsigned long long)h, x[0], x[1]);
        }
    }
    free(hwms);
    free(rssd);
    free(x);
    free(cov);
    nlsq_mpi_detach(mc, &opt);
    nlsq_xpcs_model_free(model);
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
    free(rr.i0);
    free(rr.i1);
    free(rr.off);
    free(rr.data);
    MPI_Finalize();
    return status >= 0 ? 0 : 1;
}
#endif
