/* bench_engine: the accumulation engine against its floor.
 *
 * One "pass" = evaluate every row with its Jacobian and form J^T J, J^T r.
 * The callback is as cheap as possible (fills J and r from a small table), so
 * what is timed is the library's chunk loop and accumulation.
 *   floor   : a plain loop in this file, same chunks, the same fill, then
 *             cblas_dsyrk + cblas_dgemv per chunk, single thread.
 *   dense   : nlsq_covariance-style pass through the library, 1 thread and
 *             n_threads threads (no sparsity hint).
 *   sparse  : the same rows declared through the pattern callback with k of
 *             p columns per row group (k x k accumulation).
 * Timed with nlsq_lm limited to 0 iterations (one Jacobian pass), best of R.
 *
 * usage: bench_engine [--rows M] [--params P] [--k K] [--chunk C] [--threads T]
 *                     [--repeat R] [--only dense|sparse]
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nlsq.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct ctx { size_t p, k, group; double table[64]; } ctx;

static void fill_rows(const ctx *c, size_t row0, size_t n, size_t ncol, double *r, double *J)
{
    for (size_t i = 0; i < n; i++) {
        size_t g = row0 + i;
        r[i] = c->table[g & 63] * 1e-3;
        if (J) {
            double *Ji = J + i * ncol;
            for (size_t a = 0; a < ncol; a++) Ji[a] = c->table[(g + a) & 63];
        }
    }
}

/* dense: every row has p columns (zeros outside the group's k when k < p) */
static int eval_dense(void *vc, const double *x, size_t row0, size_t n, double *r, double *J,
                      const nlsq_eval_env *env)
{
    (void)env;
    (void)x;
    fill_rows(vc, row0, n, ((ctx *)vc)->p, r, J);
    return 0;
}

static size_t pattern(void *vc, size_t row0, size_t nrows, size_t *cols, size_t *k)
{
    const ctx *c = vc;
    size_t g = row0 / c->group, end = (g + 1) * c->group;
    size_t n = end - row0 < nrows ? end - row0 : nrows;
    size_t groups = (c->p - 7) / 2;           /* 7 shared + 2 per group, like XPCS */
    size_t gi = groups ? g % groups : 0;
    for (size_t a = 0; a < 7 && a < c->k; a++) cols[a] = a;
    size_t kk = c->k < 7 ? c->k : 7;
    if (c->k > 7) { cols[kk++] = 7 + 2 * gi; cols[kk++] = 8 + 2 * gi; }
    *k = kk;
    return n;
}

static int eval_sparse(void *vc, const double *x, size_t row0, size_t n, double *r, double *J,
                       const nlsq_eval_env *env)
{
    (void)env;
    (void)x;
    const ctx *c = vc;
    fill_rows(c, row0, n, c->k, r, J);
    return 0;
}

static double pass_time(const nlsq_problem *pb, int threads, size_t chunk, int repeat)
{
    nlsq_options o;
    nlsq_options_init(&o);
    o.max_iter = 0;
    o.n_threads = threads;
    o.chunk_rows = chunk;
    o.gtol = 0;   /* never converged at the start: exactly one Jacobian pass */
    double best = INFINITY;
    double *x = calloc(pb->n_params, sizeof *x);
    for (int k = 0; k < repeat; k++) {
        nlsq_result res = {0};
        double t = now();
        nlsq_lm(pb, &o, x, &res);
        t = now() - t;
        if (res.n_jac != 1) { fprintf(stderr, "unexpected: %zu passes\n", res.n_jac); exit(1); }
        if (t < best) best = t;
    }
    free(x);
    return best;
}

static double floor_time(const ctx *c, size_t m, size_t chunk, int repeat)
{
    size_t p = c->p;
    double *J = malloc(chunk * p * sizeof *J), *r = malloc(chunk * sizeof *r);
    double *A = calloc(p * p, sizeof *A), *g = calloc(p, sizeof *g);
    double best = INFINITY;
    for (int k = 0; k < repeat; k++) {
        double t = now();
        memset(A, 0, p * p * sizeof *A);
        for (size_t row = 0; row < m; row += chunk) {
            size_t n = m - row < chunk ? m - row : chunk;
            fill_rows(c, row, n, p, r, J);
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)p, (int)n, 1.0, J, (int)p, 1.0, A, (int)p);
            cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)p, 1.0, J, (int)p, r, 1, 1.0, g, 1);
        }
        t = now() - t;
        if (t < best) best = t;
    }
    free(J); free(r); free(A); free(g);
    return best;
}

int main(int argc, char **argv)
{
    size_t m = 4000000, p = 53, k = 9, chunk = 2048;
    int threads = 2, repeat = 3;
    const char *only = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows")) m = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--params")) p = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--k")) k = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--chunk")) chunk = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];   /* dense | sparse */
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (p < 9 || k > p || k < 1) { fprintf(stderr, "need p >= 9, 1 <= k <= p\n"); return 2; }
    ctx c = {p, k, 1001 * 1001, {0}};
    for (int i = 0; i < 64; i++) c.table[i] = sin(0.37 * i + 0.1);

    nlsq_problem dense = {.n_params = p, .n_rows = m, .eval = eval_dense, .ctx = &c};
    nlsq_problem sparse = dense;
    sparse.eval = eval_sparse;
    sparse.pattern = pattern;

    int do_dense = strcmp(only, "sparse") != 0, do_sparse = strcmp(only, "dense") != 0;
    double tf = do_dense ? floor_time(&c, m, chunk, repeat) : NAN;
    double td1 = do_dense ? pass_time(&dense, 1, chunk, repeat) : NAN;
    double tdt = do_dense ? pass_time(&dense, threads, chunk, repeat) : NAN;
    double ts1 = do_sparse ? pass_time(&sparse, 1, chunk, repeat) : NAN;
    double tst = do_sparse ? pass_time(&sparse, threads, chunk, repeat) : NAN;
    printf("rows %zu, p %zu, k %zu, chunk %zu, best of %d\n", m, p, k, chunk, repeat);
    printf("%-34s %9s %12s %10s\n", "pass", "seconds", "Mrows/s", "vs floor");
    printf("%-34s %9.4f %12.1f %10.2f\n", "floor: fill + dsyrk + dgemv (1 thr)", tf, m / tf / 1e6, 1.0);
    printf("%-34s %9.4f %12.1f %10.2f\n", "nlsq dense, 1 thread", td1, m / td1 / 1e6, td1 / tf);
    printf("%-34s %9.4f %12.1f %10.2f\n", "nlsq dense, threads", tdt, m / tdt / 1e6, tdt / tf);
    printf("%-34s %9.4f %12.1f %10.2f\n", "nlsq sparse k cols, 1 thread", ts1, m / ts1 / 1e6, ts1 / tf);
    printf("%-34s %9.4f %12.1f %10.2f\n", "nlsq sparse k cols, threads", tst, m / tst / 1e6, tst / tf);
    return 0;
}
