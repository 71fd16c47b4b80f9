/* mpi_test_util.h - shared bits of the tests/mpi programs (plain C, exit
 * code 0 = pass): a check macro, digests, the agreement of all ranks, and a
 * small 4-parameter problem (the one of tests/test_distributed.c). */
#ifndef NLSQ_MPI_TEST_UTIL_H
#define NLSQ_MPI_TEST_UTIL_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#endif

#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nlsq.h"
#include "nlsq_mpi.h"

#include "../decay_cos_problem.h"   /* the rows test_distributed.c fits too */

static int g_rank, g_size, g_fail;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            g_fail++;                                                                     \
            fprintf(stderr, "rank %d: CHECK failed at %s:%d: %s: ", g_rank, __FILE__,     \
                    __LINE__, #cond);                                                     \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

static inline void tu_init(int *argc, char ***argv)
{
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    setvbuf(stdout, NULL, _IOLBF, 0);
}

/* All ranks: 0 if every rank passed.  Rank 0 prints the verdict. */
static inline int tu_finish(const char *name)
{
    int total = 0;
    MPI_Allreduce(&g_fail, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0) printf("%s, %d processes: %s (%d failed checks)\n", name, g_size,
                            total ? "FAIL" : "PASS", total);
    MPI_Finalize();
    return total ? 1 : 0;
}

static inline double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline uint64_t tu_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    if (h == 0) h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ULL;
    return h;
}

/* 1 when v is the same on every rank. */
static inline int tu_all_same(uint64_t v)
{
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)g_size);
    MPI_Allgather(&v, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    int same = 1;
    for (int r = 0; r < g_size; r++) same &= all[r] == v;
    free(all);
    return same;
}

/* |a - b| relative to scale (scale <= 0: to |b|); exact equality when both
 * are not finite the same way. */
static inline double tu_rel(double a, double b, double scale)
{
    if (a == b || (isnan(a) && isnan(b))) return 0.0;
    if (!isfinite(a) || !isfinite(b)) return INFINITY;
    double s = scale > 0 ? scale : fabs(b);
    return s > 0 ? fabs(a - b) / s : fabs(a - b);
}

/* Largest relative difference of a covariance, entry (i,j) relative to
 * sqrt(c_ii c_jj) of the reference. */
static inline double tu_cov_rel(const double *a, const double *b, size_t p)
{
    double worst = 0;
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < p; j++) {
            double s = sqrt(fabs(b[i * p + i] * b[j * p + j]));
            double d = tu_rel(a[i * p + j], b[i * p + j], s);
            if (d > worst) worst = d;
        }
    return worst;
}

/* ------------------------------------------------------------- the problem */

#define TP 4
#define TM 30011   /* prime: uneven shares */

typedef struct tu_eval_ctx {
    int fail_at;          /* > 0: this process's eval fails on its fail_at-th call */
    int calls;
    size_t nan_begin, nan_end;   /* rows that give NaN while x[1] > nan_x1 */
    double nan_x1;
} tu_eval_ctx;

static inline int tu_eval(void *vctx, const double *x, size_t row0, size_t n, double *r,
                          double *J, const nlsq_eval_env *env)
{
    (void)env;
    tu_eval_ctx *c = vctx;
    if (c && c->fail_at > 0 && ++c->calls == c->fail_at) return 1;
    for (size_t i = 0; i < n; i++) {
        size_t row = row0 + i;
        tc_decay_cos_row(x, row, &r[i], J ? J + 4 * i : NULL);
        if (c && row >= c->nan_begin && row < c->nan_end && x[1] > c->nan_x1) r[i] = NAN;
    }
    return 0;
}

enum { TU_LM, TU_ADAM, TU_HYBRID };
static const char *const tu_solver_name[3] = {"lm", "adam", "hybrid"};

static inline void tu_options(nlsq_options *o)
{
    nlsq_options_init(o);
    o->n_threads = 1;
    o->chunk_rows = 1000;
    o->adam.epochs = 4;
    o->hybrid.adam_epochs = 2;
}

typedef struct tu_run {
    int status;
    double x[TP], cov[TP * TP];
    nlsq_result res;
} tu_run;

static inline void tu_solve(int which, const nlsq_options *o, tu_eval_ctx *ec, tu_run *out)
{
    nlsq_problem pb = {.n_params = TP, .n_rows = TM, .eval = tu_eval, .ctx = ec};
    const double x0[TP] = {1, 1, 0, 0};
    memcpy(out->x, x0, sizeof x0);
    memset(&out->res, 0, sizeof out->res);
    for (int k = 0; k < TP * TP; k++) out->cov[k] = NAN;
    out->res.covariance = out->cov;
    if (which == TU_LM) out->status = nlsq_lm(&pb, o, out->x, &out->res);
    else if (which == TU_ADAM) out->status = nlsq_adam(&pb, o, out->x, &out->res);
    else out->status = nlsq_hybrid(&pb, o, out->x, &out->res);
}

/* Digest of what must be bitwise equal: status, x, cost, covariance, counts. */
static inline uint64_t tu_digest(const tu_run *r)
{
    uint64_t h = tu_fnv(0, &r->status, sizeof r->status);
    h = tu_fnv(h, r->x, sizeof r->x);
    h = tu_fnv(h, &r->res.cost, sizeof r->res.cost);
    h = tu_fnv(h, r->cov, sizeof r->cov);
    h = tu_fnv(h, &r->res.iterations, sizeof r->res.iterations);
    h = tu_fnv(h, &r->res.n_jac, sizeof r->res.n_jac);
    return h;
}

#endif
