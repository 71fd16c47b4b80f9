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

/* One run's state, filled stage by stage by main: parse, source (file or
 * this rank's generated rows), model and MPI attach, start, fit (timed),
 * gather, report (rank 0), free. */
typedef struct mpi_bench {
    int rank, size;
    int threads, json, upper, status;
    double scale;
    const char *method, *file;
    nlsq_xpcs_synth_spec sp;
    char err[512];
    nlsq_xpcs_file *f;
    nlsq_xpcs_selection sel;
    nlsq_xpcs_source src;
    rank_rows rr;
    double phi[64];
    nlsq_xpcs_config cfg;
    nlsq_xpcs_model *model;
    nlsq_problem pb;
    nlsq_options opt;
    nlsq_mpi_ctx *mc;
    size_t n, P, m, rb, re, p, n_excl;
    double t_data, t_data_max, t_init, t_fit;
    long rss_data;
    long *hwms, *rssd;
    double *x, *cov;
    nlsq_mpi_stats st0, st;
    nlsq_result res;
} mpi_bench;

/* Returns 0, or 2 for a bad command line (the caller prints the usage). */
static int parse_args(mpi_bench *b, int argc, char **argv)
{
    b->threads = 1;
    b->scale = 1.0;
    b->method = "lm";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) b->threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc) b->scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--method") && i + 1 < argc) b->method = argv[++i];
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) b->file = argv[++i];
        else if (!strcmp(argv[i], "--upper")) b->upper = 1;
        else if (!strcmp(argv[i], "--json")) b->json = 1;
        else return 2;
    }
    if (b->threads < 1 || !(b->scale > 0) || (strcmp(b->method, "lm") && strcmp(b->method, "hybrid")) ||
        (b->upper && !b->file))
        return 2;
    return 0;
}

/* The sizes n, P (and with --file the open file's source), then the model
 * configuration and the solver options. */
static void open_source(mpi_bench *b)
{
    nlsq_xpcs_synth_spec_default(&b->sp);
    if (b->file) {
        int rc = nlsq_xpcs_open(b->file, &b->f, b->err, sizeof b->err);
        if (rc == 0) rc = nlsq_xpcs_select(b->f, NAN, 0, SIZE_MAX, &b->sel, b->err, sizeof b->err);
        if (rc == 0) rc = nlsq_xpcs_file_source(b->f, &b->sel, &b->src);
        if (rc != 0) {
            fprintf(stderr, "bench_mpi: rank %d: %s\n", b->rank, b->err);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        b->n = b->src.n;
        b->P = b->src.n_angles;
    } else {
        b->sp.n_frames = (size_t)llround(1001.0 * sqrt(b->scale));
        b->n = b->sp.n_frames;
        b->P = b->sp.n_angles;
    }
    nlsq_xpcs_config_init(&b->cfg);
    b->cfg.triangle = b->upper ? NLSQ_XPCS_UPPER : NLSQ_XPCS_FULL;
    b->cfg.include_diagonal = 1;
    b->cfg.q = b->file ? b->sel.q : b->sp.q;
    b->cfg.gap = b->sp.gap;
    b->cfg.dt = b->sp.dt;
    b->cfg.k0 = b->file ? b->sel.first_frame : b->sp.k0;
    b->cfg.memory_budget = 0;   /* stream: a rank reads only the rows it evaluates */
    nlsq_options_init(&b->opt);
    b->opt.n_threads = b->threads;
}

static void create_model(mpi_bench *b)
{
    if (nlsq_xpcs_model_create(&b->src, &b->cfg, &b->model, b->err, sizeof b->err) != 0) {
        fprintf(stderr, "bench_mpi: %s\n", b->err);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    nlsq_xpcs_model_problem(b->model, &b->pb);
}

/* A file's matrices are symmetric: the model presents each pair once,
 * weighted (m = its rows, observations = both triangles).  Streaming reads
 * nothing at creation. */
static void setup_file(mpi_bench *b)
{
    create_model(b);
    b->m = b->pb.n_rows;
    if (nlsq_mpi_attach(&b->opt, MPI_COMM_WORLD, b->m, 4096, &b->mc) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
    nlsq_mpi_rows(b->mc, &b->rb, &b->re);
}

/* This rank's matrix rows [i0[a], i1[a]) of every angle a for its fit rows
 * [rb, re), and the float32 store for them. */
static void layout_rank_rows(mpi_bench *b)
{
    rank_rows *rr = &b->rr;
    size_t n = b->n, P = b->P, rows_per_angle = n * n;
    rr->n = n;
    rr->P = P;
    rr->i0 = calloc(P, sizeof(size_t));
    rr->i1 = calloc(P, sizeof(size_t));
    rr->off = calloc(P, sizeof(size_t));
    if (!rr->i0 || !rr->i1 || !rr->off) MPI_Abort(MPI_COMM_WORLD, 1);
    size_t total = 0;
    for (size_t a = 0; a < P; a++) {
        size_t lo = a * rows_per_angle, hi = lo + rows_per_angle;
        size_t s = b->rb > lo ? b->rb : lo, e = b->re < hi ? b->re : hi;
        if (e > s) {
            rr->i0[a] = (s - lo) / n;
            rr->i1[a] = (e - lo + n - 1) / n;
        }
        rr->off[a] = total;
        total += (rr->i1[a] - rr->i0[a]) * n;
    }
    rr->data = malloc(sizeof(float) * (total ? total : 1));
}

/* Generate this rank's matrix rows only, 64 at a time. */
static void generate_rank_rows(mpi_bench *b)
{
    rank_rows *rr = &b->rr;
    size_t n = b->n;
    double *buf = malloc(sizeof(double) * 64 * n);
    if (!rr->data || !buf) MPI_Abort(MPI_COMM_WORLD, 1);
    for (size_t a = 0; a < b->P; a++)
        for (size_t i = rr->i0[a]; i < rr->i1[a]; i += 64) {
            size_t k = rr->i1[a] - i < 64 ? rr->i1[a] - i : 64;
            if (nlsq_xpcs_synth_rows(&b->sp, a, i, k, buf, b->err, sizeof b->err) != 0) {
                fprintf(stderr, "bench_mpi: %s\n", b->err);
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
            float *dst = rr->data + rr->off[a] + (i - rr->i0[a]) * n;
            for (size_t q = 0; q < k * n; q++) dst[q] = (float)buf[q];
        }
    free(buf);
}

/* The read callback source serving this rank's rows. */
static void memory_source(mpi_bench *b)
{
    for (size_t a = 0; a < b->P && a < 64; a++)
        b->phi[a] = b->sp.phi ? b->sp.phi[a] : (double)a * 360.0 / (double)b->P;
    b->src.n_angles = b->P;
    b->src.n = b->n;
    b->src.phi = b->phi;
    b->src.kind = NLSQ_XPCS_SOURCE_READ;
    b->src.u.read.fn = rows_read;
    b->src.u.read.ctx = &b->rr;
    b->src.u.read.thread_safe = 1;
    b->src.u.read.float32 = 1;
}

/* A read callback is not known to be symmetric: both triangles are
 * evaluated, n^2 rows per angle; whole matrix rows per rank.  data_s times
 * the layout, the generation and the source (not the model creation). */
static void setup_memory(mpi_bench *b)
{
    b->m = b->P * (b->n * b->n);
    if (nlsq_mpi_attach(&b->opt, MPI_COMM_WORLD, b->m, b->n, &b->mc) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
    nlsq_mpi_rows(b->mc, &b->rb, &b->re);
    double t0 = now_s();
    layout_rank_rows(b);
    generate_rank_rows(b);
    memory_source(b);
    b->t_data = now_s() - t0;
    create_model(b);
    if (b->pb.n_rows != b->m) {
        fprintf(stderr, "bench_mpi: the model has %zu rows, expected %zu\n", b->pb.n_rows, b->m);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

/* The start point (init_s: the initial-guess pass alone, after a barrier). */
static void start_point(mpi_bench *b)
{
    b->rss_data = status_kib("VmRSS");
    b->p = b->pb.n_params;
    b->x = malloc(sizeof(double) * b->p);
    b->cov = malloc(sizeof(double) * b->p * b->p);
    if (!b->x || !b->cov) {
        fputs("bench_mpi: out of memory\n", stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_s();
    int rc = nlsq_mpi_xpcs_initial_guess(b->mc, b->model, &b->cfg, NULL, b->x, b->err, sizeof b->err);
    b->t_init = now_s() - t0;
    if (rc != 0) {
        fprintf(stderr, "bench_mpi: initial guess: %s\n", b->err[0] ? b->err : nlsq_status_string(rc));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    nlsq_mpi_get_stats(b->mc, &b->st0);
}

/* The fit (fit_s: the solver call alone, after a barrier). */
static void fit(mpi_bench *b)
{
    memset(&b->res, 0, sizeof b->res);
    b->res.covariance = b->cov;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_s();
    b->status = !strcmp(b->method, "hybrid") ? nlsq_hybrid(&b->pb, &b->opt, b->x, &b->res)
                                             : nlsq_lm(&b->pb, &b->opt, b->x, &b->res);
    b->t_fit = now_s() - t0;
    b->n_excl = b->res.n_obs ? nlsq_xpcs_model_n_rows(b->model) - b->res.n_obs : 0;   /* all ranks */
    nlsq_mpi_get_stats(b->mc, &b->st);
}

/* Every rank's peak RSS and RSS after the data, the slowest data setup. */
static void gather(mpi_bench *b)
{
    long hwm = status_kib("VmHWM"), rss_d = b->rss_data;
    b->hwms = malloc(sizeof(long) * (size_t)b->size);
    b->rssd = malloc(sizeof(long) * (size_t)b->size);
    if (!b->hwms || !b->rssd) {
        fputs("bench_mpi: out of memory\n", stderr);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Gather(&hwm, 1, MPI_LONG, b->hwms, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    MPI_Gather(&rss_d, 1, MPI_LONG, b->rssd, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    b->t_data_max = 0;
    MPI_Reduce(&b->t_data, &b->t_data_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
}

static void report_json(const mpi_bench *b, uint64_t h, double rows_s)
{
    const nlsq_result *res = &b->res;
    printf("{\"ranks\":%d,\"threads\":%d,\"source\":\"%s\",\"m\":%zu,\"n_obs\":%zu,\"p\":%zu,"
           "\"method\":\"%s\",\"data_s\":%.3f,\"init_s\":%.3f,\"fit_s\":%.3f,"
           "\"iterations\":%zu,\"n_jac\":%zu,\"n_eval\":%zu,\"rows_per_s\":%.4g,"
           "\"reduces\":%llu,\"reduce_s\":%.3f,\"vmhwm_mib\":[",
           b->size, b->threads, b->file ? "file" : "memory", b->m, nlsq_xpcs_model_n_rows(b->model), b->p,
           b->method, b->t_data_max, b->t_init,
           b->t_fit, res->iterations, res->n_jac, res->n_eval, rows_s,
           (unsigned long long)(b->st.n_reduce - b->st0.n_reduce), b->st.wait_s - b->st0.wait_s);
    for (int r = 0; r < b->size; r++) printf("%s%.1f", r ? "," : "", (double)b->hwms[r] / 1024.0);
    printf("],\"status\":\"%s\",\"cost\":%.17g,\"n_excluded\":%zu,\"x_digest\":\"%016llx\","
           "\"x\":[", nlsq_status_name(b->status), res->cost, b->n_excl, (unsigned long long)h);
    for (size_t k = 0; k < b->p; k++) printf("%s%.17g", k ? "," : "", b->x[k]);
    printf("]}\n");
}

static void report_text(const mpi_bench *b, uint64_t h, double rows_s)
{
    const nlsq_result *res = &b->res;
    int size = b->size, threads = b->threads;
    printf("bench_mpi: %d rank%s x %d thread%s, %s data, m = %zu rows (%zu observations),"
           " p = %zu, %s\n", size, size == 1 ? "" : "s", threads, threads == 1 ? "" : "s",
           b->file ? "file (streamed)" : "in-memory (streamed, own rows only)", b->m,
           nlsq_xpcs_model_n_rows(b->model), b->p, b->method);
    printf("  data %.2f s (slowest rank), start point %.2f s, fit %.2f s: %s, %zu iterations,"
           " %zu + %zu passes, %.3g rows/s per pass\n", b->t_data_max, b->t_init, b->t_fit,
           nlsq_status_name(b->status), res->iterations, res->n_jac, res->n_eval, rows_s);
    printf("  reduces during the fit: %llu, %.3f s on rank 0 (waiting included)\n",
           (unsigned long long)(b->st.n_reduce - b->st0.n_reduce), b->st.wait_s - b->st0.wait_s);
    printf("  peak RSS (VmHWM) per rank:");
    for (int r = 0; r < size; r++) printf(" %.1f", (double)b->hwms[r] / 1024.0);
    printf(" MiB (after the data: ");
    for (int r = 0; r < size; r++) printf("%s%.1f", r ? " " : "", (double)b->rssd[r] / 1024.0);
    printf(" MiB)\n  cost %.12g, x digest %016llx, D0 %.10g, alpha %.10g\n", res->cost,
           (unsigned long long)h, b->x[0], b->x[1]);
}

/* Rank 0's report: a digest of x's bytes, rows/s per pass, JSON or text. */
static void report(const mpi_bench *b)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *c = (const unsigned char *)b->x;
    for (size_t k = 0; k < sizeof(double) * b->p; k++) h = (h ^ c[k]) * 1099511628211ULL;
    double passes = (double)(b->res.n_jac + b->res.n_eval);
    double rows_s = passes * (double)b->m / b->t_fit;
    if (b->json) report_json(b, h, rows_s);
    else report_text(b, h, rows_s);
}

static void bench_free(mpi_bench *b)
{
    free(b->hwms);
    free(b->rssd);
    free(b->x);
    free(b->cov);
    nlsq_mpi_detach(b->mc, &b->opt);
    nlsq_xpcs_model_free(b->model);
    nlsq_xpcs_selection_free(&b->sel);
    nlsq_xpcs_close(b->f);
    free(b->rr.i0);
    free(b->rr.i1);
    free(b->rr.off);
    free(b->rr.data);
}

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    mpi_bench b;
    memset(&b, 0, sizeof b);
    b.size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &b.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &b.size);
    if (parse_args(&b, argc, argv) != 0) {
        if (b.rank == 0) usage();
        MPI_Finalize();
        return 2;
    }
    open_source(&b);
    if (b.file) setup_file(&b);
    else setup_memory(&b);
    start_point(&b);
    fit(&b);
    gather(&b);
    if (b.rank == 0) report(&b);
    bench_free(&b);
    MPI_Finalize();
    return b.status >= 0 ? 0 : 1;
}
#endif
