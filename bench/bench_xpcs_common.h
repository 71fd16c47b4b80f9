/*
 * bench_xpcs_common.h - pieces shared by bench/bench_xpcs.c (nlsq) and
 * bench/peers/gsl_xpcs.c (the GSL peer), so that both programs fit exactly the
 * same data from exactly the same start point and report the same fields.
 *
 *   - the benchmark problem of docs/xpcs-model.md ("The 23M-point
 *     benchmark problem"): nlsq_xpcs_synth_spec_default, with N scaled by
 *     sqrt(F) for --scale F (m ~ F * 23,046,023);
 *   - in-memory generation through nlsq_xpcs_synth_rows (the rows a synthetic
 *     file would give, float32), one angle per worker thread;
 *   - the truth vector (7 physical + contrast/offset per angle), peak RSS,
 *     timing, the parameter table and JSON helpers.
 *
 * Header-only (static functions, all marked unused so that a program may use
 * a subset under -Werror).  MIT, like the rest of the project: nothing here
 * touches GSL.
 */
#ifndef BENCH_XPCS_COMMON_H
#define BENCH_XPCS_COMMON_H

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nlsq.h"
#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"

#define BX_UNUSED __attribute__((unused))
#define BX_PI 3.14159265358979323846
#define BX_FULL_FRAMES 1001   /* N of the full-size benchmark */

BX_UNUSED static double bx_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads): on a shared machine a
 * steadier measure of work than wall time. */
BX_UNUSED static double bx_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A field of /proc/self/status in KiB ("VmHWM", "VmRSS"), or -1. */
BX_UNUSED static long bx_status_kib(const char *field)
{
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return -1;
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = strtol(line + fl + 1, NULL, 10);
            break;
        }
    }
    fclose(fp);
    return v;
}

BX_UNUSED static double bx_mib(long kib) { return kib < 0 ? NAN : (double)kib / 1024.0; }

/* Frames for a size factor F: N = round(1001 sqrt(F)), at least 2. */
BX_UNUSED static size_t bx_frames_for_scale(double F)
{
    double n = floor(BX_FULL_FRAMES * sqrt(F) + 0.5);
    return n < 2 ? 2 : (size_t)n;
}

BX_UNUSED static int bx_online_cores(void)
{
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

/* Truth: phys (7), then contrast_a, offset_a per angle (docs/xpcs-model.md formulas, which
 * are also the synthetic writer's defaults). */
BX_UNUSED static void bx_truth_from_spec(const nlsq_xpcs_synth_spec *s, double *truth)
{
    memcpy(truth, s->params, sizeof(double) * NLSQ_XPCS_N_PHYS);
    for (size_t a = 0; a < s->n_angles; a++) {
        double u = 2 * BX_PI * (double)a / (double)s->n_angles;
        truth[NLSQ_XPCS_N_PHYS + 2 * a] = s->contrast ? s->contrast[a] : 0.25 + 0.05 * sin(u);
        truth[NLSQ_XPCS_N_PHYS + 2 * a + 1] = s->offset ? s->offset[a] : 1.0 + 0.01 * cos(u);
    }
}

/* ------------------------------------------------------------------------ */
/* In-memory generation                                                      */
/* ------------------------------------------------------------------------ */

typedef struct bx_gen_job {
    const nlsq_xpcs_synth_spec *s;
    float *data;            /* P * N * N */
    atomic_size_t next;     /* next angle to generate */
    atomic_int failed;
    char err[256];
} bx_gen_job;

BX_UNUSED static void *bx_gen_worker(void *arg)
{
    bx_gen_job *job = arg;
    size_t N = job->s->n_frames, P = job->s->n_angles;
    double *buf = malloc(sizeof(double) * N * N);
    if (!buf) { atomic_store(&job->failed, 1); return NULL; }
    for (;;) {
        size_t a = atomic_fetch_add(&job->next, 1);
        if (a >= P || atomic_load(&job->failed)) break;
        char err[256] = "";
        if (nlsq_xpcs_synth_rows(job->s, a, 0, N, buf, err, sizeof err) != 0) {
            if (!atomic_exchange(&job->failed, 1)) snprintf(job->err, sizeof job->err, "%s", err);
            break;
        }
        float *d = job->data + a * N * N;
        for (size_t k = 0; k < N * N; k++) d[k] = (float)buf[k];
    }
    free(buf);
    return NULL;
}

/* Generate the P full N x N float32 matrices of synthetic spec s (angle-major) with up
 * to `threads` threads (one angle at a time each).  Returns the data (free())
 * or NULL with a message on stderr. */
BX_UNUSED static float *bx_generate(const nlsq_xpcs_synth_spec *s, int threads)
{
    size_t N = s->n_frames, P = s->n_angles;
    float *data = malloc(sizeof(float) * P * N * N);
    if (!data) { fprintf(stderr, "out of memory for %zu x %zu x %zu floats\n", P, N, N); return NULL; }
    bx_gen_job job;
    memset(&job, 0, sizeof job);
    job.s = s;
    job.data = data;
    atomic_init(&job.next, 0);
    atomic_init(&job.failed, 0);
    if (threads < 1) threads = 1;
    if ((size_t)threads > P) threads = (int)P;
    pthread_t tid[64];
    if (threads > 64) threads = 64;
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[started], NULL, bx_gen_worker, &job) == 0) started++;
    bx_gen_worker(&job);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    if (atomic_load(&job.failed)) {
        fprintf(stderr, "data generation failed: %s\n", job.err[0] ? job.err : "out of memory");
        free(data);
        return NULL;
    }
    return data;
}

/* Read every selected matrix of an open file into P * N * N floats (angle
 * order of the selection), rows in blocks.  NULL on failure (message on
 * stderr).  Used by the GSL peer, which needs the data in memory. */
BX_UNUSED static float *bx_load_file(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel)
{
    size_t N = sel->last_frame - sel->first_frame + 1, P = sel->n_angles;
    size_t blk = ((size_t)8 << 20) / (sizeof(double) * N);
    if (blk < 1) blk = 1;
    if (blk > N) blk = N;
    float *data = malloc(sizeof(float) * P * N * N);
    double *buf = malloc(sizeof(double) * blk * N);
    if (!data || !buf) {
        fprintf(stderr, "out of memory loading %zu x %zu x %zu values\n", P, N, N);
        free(data); free(buf);
        return NULL;
    }
    for (size_t a = 0; a < P; a++)
        for (size_t r0 = 0; r0 < N; r0 += blk) {
            size_t nr = N - r0 < blk ? N - r0 : blk;
            char err[512] = "";
            int rc = nlsq_xpcs_read_rows(f, sel, a, r0, nr, buf, err, sizeof err);
            if (rc != 0) {
                fprintf(stderr, "reading rows: %s\n", err[0] ? err : nlsq_xpcs_status_string(rc));
                free(data); free(buf);
                return NULL;
            }
            float *d = data + a * N * N + r0 * N;
            for (size_t k = 0; k < nr * N; k++) d[k] = (float)buf[k];
        }
    free(buf);
    return data;
}

/* ------------------------------------------------------------------------ */
/* Statistics and output                                                     */
/* ------------------------------------------------------------------------ */

BX_UNUSED static int bx_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

BX_UNUSED static double bx_median(const double *v, size_t n)
{
    if (n == 0) return NAN;
    double *c = malloc(sizeof(double) * n);
    if (!c) return NAN;
    memcpy(c, v, sizeof(double) * n);
    qsort(c, n, sizeof(double), bx_cmp_double);
    double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    free(c);
    return m;
}

/* Name of parameter k of the 7 + 2P vector into buf. */
BX_UNUSED static const char *bx_param_label(size_t k, char *buf, size_t size)
{
    if (k < NLSQ_XPCS_N_PHYS) snprintf(buf, size, "%s", nlsq_xpcs_param_name(k));
    else snprintf(buf, size, "%s_%zu", (k - NLSQ_XPCS_N_PHYS) % 2 ? "offset" : "contrast",
                  (k - NLSQ_XPCS_N_PHYS) / 2);
    return buf;
}

/* z = (value - truth) / sigma (NAN when sigma is not finite or 0). */
BX_UNUSED static double bx_z(double v, double t, double s)
{
    return (isfinite(s) && s > 0) ? (v - t) / s : NAN;
}

/* max |z| over the physical (phys = 1) or the contrast/offset (phys = 0)
 * parameters; NAN if none is defined. */
BX_UNUSED static double bx_max_abs_z(const double *x, const double *truth, const double *sigma,
                                     size_t p, int phys)
{
    double mz = NAN;
    size_t k0 = phys ? 0 : NLSQ_XPCS_N_PHYS, k1 = phys ? NLSQ_XPCS_N_PHYS : p;
    for (size_t k = k0; k < k1; k++) {
        double z = fabs(bx_z(x[k], truth[k], sigma[k]));
        if (isfinite(z) && !(z <= mz)) mz = z;
    }
    return mz;
}

/* The parameter table: value, truth, sigma, z for every parameter. */
BX_UNUSED static void bx_print_params(FILE *fp, const double *x0, const double *x,
                                      const double *truth, const double *sigma, size_t p)
{
    fprintf(fp, "%-18s %15s %15s %15s %12s %9s\n", "parameter", "start", "fitted", "truth", "sigma",
            "z");
    for (size_t k = 0; k < p; k++) {
        char name[40];
        double z = bx_z(x[k], truth[k], sigma[k]);
        fprintf(fp, "%-18s %15.8g %15.8g %15.8g %12.4g %9.3f\n", bx_param_label(k, name, sizeof name),
                x0[k], x[k], truth[k], sigma[k], z);
        if (k + 1 == NLSQ_XPCS_N_PHYS) fprintf(fp, "%.*s\n", 89, "------------------------------"
                                              "------------------------------------------------"
                                              "----------------------------------------------");
    }
    fprintf(fp, "max |z|: physical %.3f, contrasts/offsets %.3f\n",
            bx_max_abs_z(x, truth, sigma, p, 1), bx_max_abs_z(x, truth, sigma, p, 0));
}

BX_UNUSED static void bx_json_num(FILE *fp, double v)
{
    if (isfinite(v)) fprintf(fp, "%.17g", v);
    else fprintf(fp, "null");
}

BX_UNUSED static void bx_json_array(FILE *fp, const char *key, const double *v, size_t n)
{
    fprintf(fp, "\"%s\":[", key);
    for (size_t k = 0; k < n; k++) {
        if (k) fputc(',', fp);
        bx_json_num(fp, v[k]);
    }
    fputc(']', fp);
}

/* "key":value, (the comma before unless first) */
BX_UNUSED static void bx_json_kv(FILE *fp, const char *key, double v)
{
    fprintf(fp, ",\"%s\":", key);
    bx_json_num(fp, v);
}


/* ------------------------------------------------------------------------ */
/* Command line (the same options for both programs)                         */
/* ------------------------------------------------------------------------ */

typedef struct bx_args {
    int json, quiet;
    int threads;            /* 0 = all online cores */
    double scale;           /* size factor F: N = round(1001 sqrt(F)) */
    size_t frames;          /* 0 = from scale */
    const char *file;       /* NULL = generate in memory */
    double budget_mib;      /* model cache budget in file mode (MiB) */
    double q, dt, gap;      /* file mode: q request (NAN = the only q), dt, L */
    int triangle;           /* NLSQ_XPCS_FULL (benchmark) or NLSQ_XPCS_UPPER */
    const char *method;     /* lm | hybrid (nlsq only) */
    int repeat;
    size_t max_iter;
    unsigned long long seed;
    int spec_start;         /* 1: contrast 0.3 / offset 1.0 instead of the data-driven init */
    int fixed_start;        /* 1: the spec's fixed physical start (D0 1e4, gamma_dot_0 5e-4), else
                               D0 and gamma_dot_0 from the data (nlsq_xpcs_start) */
    double ftol, xtol, gtol;/* stopping tolerances (1e-8 each) */
    int literal_full;       /* full triangle: evaluate (i,j) and (j,i) separately
                               instead of each symmetric pair once with weight sqrt(2) */
} bx_args;

BX_UNUSED static void bx_usage(FILE *fp, const char *prog)
{
    fprintf(fp,
        "usage: %s [--json] [--threads N] [--scale F | --frames N] [--triangle full|upper]\n"
        "          [--method lm|hybrid] [--repeat R] [--max-iter K] [--seed S] [--spec-start]\n"
        "          [--fixed-start]\n"
        "          [--ftol T] [--xtol T] [--gtol T] [--literal-full]\n"
        "          [--file PATH [--memory-budget MIB] [--q Q] [--dt S] [--gap L]] [--quiet]\n"
        "  Fits the 23M-point XPCS benchmark of xpcs-model.md (23 angles, N = 1001, both\n"
        "  triangles with the diagonal: m = 23 N^2).  --scale F scales N by sqrt(F)\n"
        "  (m ~ F x 23,046,023); --file reads an xpcs_synth file instead (nlsq: streamed\n"
        "  through the reader with a model cache of --memory-budget MiB, default 64).\n"
        "  --literal-full: evaluate both triangles row by row (default: each symmetric\n"
        "  pair once, weight sqrt(2): same cost and normal equations, half the rows).\n"
        "  Start: D0 and gamma_dot_0 from the data (nlsq_xpcs_start); --fixed-start:\n"
        "  the benchmark's physical start (D0 1e4, gamma_dot_0 5e-4).\n"
        "  --threads 0 = all online cores (default).  Exit: 0 ok, 1 fit failed, 2 usage.\n",
        prog);
}

BX_UNUSED static int bx_bad(const char *prog, const char *what, const char *val)
{
    fprintf(stderr, "%s: bad %s '%s' (try --help)\n", prog, what, val ? val : "");
    return 2;
}

/* Option o's value v as a whole number in [lo, hi] into *out: 0, or bx_bad's
 * exit code. */
BX_UNUSED static int bx_whole(const char *prog, const char *o, const char *v, long lo, long hi,
                              size_t *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) return bx_bad(prog, o, v);
    *out = (size_t)n;
    return 0;
}

/* Option o's value v as a double > 0 into *out: 0, or bx_bad's exit code. */
BX_UNUSED static int bx_positive(const char *prog, const char *o, const char *v, double *out)
{
    char *end;
    *out = strtod(v, &end);
    return *end || !(*out > 0) ? bx_bad(prog, o, v) : 0;
}

/* The JSON line's pieces both programs print: the stopping tolerances and
 * the data time; the memory; the vectors, which end the line. */
BX_UNUSED static void bx_json_settings(FILE *fp, const bx_args *a, double gen_s)
{
    bx_json_kv(fp, "ftol", a->ftol);
    bx_json_kv(fp, "xtol", a->xtol);
    bx_json_kv(fp, "gtol", a->gtol);
    bx_json_kv(fp, "gen_s", gen_s);
}

BX_UNUSED static void bx_json_memory(FILE *fp, long hwm_kib, long rss_data_kib, long rss_before_kib)
{
    bx_json_kv(fp, "peak_rss_mib", bx_mib(hwm_kib));
    bx_json_kv(fp, "rss_data_mib", bx_mib(rss_data_kib));
    bx_json_kv(fp, "rss_before_fit_mib", bx_mib(rss_before_kib));
}

BX_UNUSED static void bx_json_vectors_end(FILE *fp, const double *x0, const double *x,
                                          const double *sigma, const double *truth, size_t p)
{
    const char *const keys[4] = {"x0", "params", "sigma", "truth"};
    const double *const v[4] = {x0, x, sigma, truth};
    for (int k = 0; k < 4; k++) {
        fputc(',', fp);
        bx_json_array(fp, keys[k], v[k], p);
    }
    fputs("}\n", fp);
}

/* 0, or the exit code (2 bad usage; -1 for --help, already printed). */
BX_UNUSED static int bx_parse_args(int argc, char **argv, bx_args *a)
{
    const char *prog = argv[0];
    memset(a, 0, sizeof *a);
    a->threads = 0;
    a->scale = 1.0;
    a->budget_mib = 64;
    a->q = NAN;
    a->dt = 1e-3;
    a->gap = 2e6;
    a->triangle = NLSQ_XPCS_FULL;
    a->method = "lm";
    a->repeat = 1;
    a->max_iter = NLSQ_ITER_AUTO;
    a->seed = 42;
    a->ftol = a->xtol = a->gtol = 1e-8;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--json")) { a->json = 1; continue; }
        if (!strcmp(o, "--quiet")) { a->quiet = 1; continue; }
        if (!strcmp(o, "--spec-start")) { a->spec_start = 1; continue; }
        if (!strcmp(o, "--fixed-start")) { a->fixed_start = 1; continue; }
        if (!strcmp(o, "--literal-full")) { a->literal_full = 1; continue; }
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) { bx_usage(stdout, prog); return -1; }
        if (i + 1 >= argc) return bx_bad(prog, "option (missing value?)", o);
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(o, "--threads")) {
            long t = strtol(v, &end, 10);
            if (*end || t < 0 || t > 4096) return bx_bad(prog, "--threads", v);
            a->threads = (int)t;
        } else if (!strcmp(o, "--scale")) {
            double f;
            const char *slash = strchr(v, '/');
            if (slash) {   /* "1/16" */
                double num = strtod(v, &end), den;
                if (end != slash) return bx_bad(prog, "--scale", v);
                den = strtod(slash + 1, &end);
                if (*end || !(den > 0)) return bx_bad(prog, "--scale", v);
                f = num / den;
            } else {
                f = strtod(v, &end);
                if (*end) return bx_bad(prog, "--scale", v);
            }
            if (!(f > 0 && f <= 64)) return bx_bad(prog, "--scale", v);
            a->scale = f;
        } else if (!strcmp(o, "--frames")) {
            if (bx_whole(prog, o, v, 2, 100000, &a->frames)) return 2;
        } else if (!strcmp(o, "--file")) {
            a->file = v;
        } else if (!strcmp(o, "--memory-budget")) {
            a->budget_mib = strtod(v, &end);
            if (*end || !(a->budget_mib >= 0)) return bx_bad(prog, "--memory-budget", v);
        } else if (!strcmp(o, "--q")) {
            if (bx_positive(prog, o, v, &a->q)) return 2;
        } else if (!strcmp(o, "--dt")) {
            if (bx_positive(prog, o, v, &a->dt)) return 2;
        } else if (!strcmp(o, "--gap")) {
            if (bx_positive(prog, o, v, &a->gap)) return 2;
        } else if (!strcmp(o, "--triangle")) {
            if (!strcmp(v, "full")) a->triangle = NLSQ_XPCS_FULL;
            else if (!strcmp(v, "upper")) a->triangle = NLSQ_XPCS_UPPER;
            else return bx_bad(prog, "--triangle", v);
        } else if (!strcmp(o, "--method")) {
            if (strcmp(v, "lm") && strcmp(v, "hybrid")) return bx_bad(prog, "--method", v);
            a->method = v;
        } else if (!strcmp(o, "--repeat")) {
            size_t r;
            if (bx_whole(prog, o, v, 1, 1000, &r)) return 2;
            a->repeat = (int)r;
        } else if (!strcmp(o, "--max-iter")) {
            if (bx_whole(prog, o, v, 1, LONG_MAX, &a->max_iter)) return 2;
        } else if (!strcmp(o, "--ftol") || !strcmp(o, "--xtol") || !strcmp(o, "--gtol")) {
            double t = strtod(v, &end);
            if (*end || !(t >= 0 && t < 1)) return bx_bad(prog, o, v);
            if (o[2] == 'f') a->ftol = t;
            else if (o[2] == 'x') a->xtol = t;
            else a->gtol = t;
        } else if (!strcmp(o, "--seed")) {
            a->seed = strtoull(v, &end, 10);
            if (*end) return bx_bad(prog, "--seed", v);
        } else {
            return bx_bad(prog, "option", o);
        }
    }
    return 0;
}

BX_UNUSED static int bx_threads(const bx_args *a)
{
    return a->threads > 0 ? a->threads : bx_online_cores();
}

/* ------------------------------------------------------------------------ */
/* The data: generated (the benchmark problem) or from a file                                 */
/* ------------------------------------------------------------------------ */

typedef struct bx_data {
    nlsq_xpcs_synth_spec spec;   /* generated mode */
    size_t N, P;
    double q, gap, dt;
    double *phi;                 /* P degrees */
    double *truth;               /* 7 + 2P */
    int have_truth;
    float *data32;               /* P N N (generated, or loaded by the peer) */
    nlsq_xpcs_file *file;        /* file mode */
    nlsq_xpcs_selection sel;
    double gen_s;                /* generation / open (+ load) seconds */
} bx_data;

BX_UNUSED static void bx_data_free(bx_data *d)
{
    free(d->phi);
    free(d->truth);
    free(d->data32);
    if (d->file) {
        nlsq_xpcs_selection_free(&d->sel);
        nlsq_xpcs_close(d->file);
    }
    memset(d, 0, sizeof *d);
}

/* Set up the data.  load_all: in file mode also read every value into data32
 * (the GSL peer); otherwise the file stays open for a streaming source.
 * Returns 0 or prints a message and returns nonzero. */
BX_UNUSED static int bx_data_setup(const bx_args *a, int load_all, bx_data *d)
{
    memset(d, 0, sizeof *d);
    double t0 = bx_now();
    if (!a->file) {
        nlsq_xpcs_synth_spec_default(&d->spec);
        d->spec.n_frames = a->frames ? a->frames : bx_frames_for_scale(a->scale);
        d->spec.seed = a->seed;
        d->N = d->spec.n_frames;
        d->P = d->spec.n_angles;
        d->q = d->spec.q;
        d->gap = d->spec.gap;
        d->dt = d->spec.dt;
        d->phi = malloc(sizeof(double) * d->P);
        d->truth = malloc(sizeof(double) * (NLSQ_XPCS_N_PHYS + 2 * d->P));
        if (!d->phi || !d->truth) { fprintf(stderr, "out of memory\n"); return 1; }
        for (size_t k = 0; k < d->P; k++) d->phi[k] = (double)k * 360.0 / (double)d->P;
        bx_truth_from_spec(&d->spec, d->truth);
        d->have_truth = 1;
        d->data32 = bx_generate(&d->spec, bx_threads(a));
        if (!d->data32) return 1;
    } else {
        char err[512] = "";
        int rc = nlsq_xpcs_open(a->file, &d->file, err, sizeof err);
        if (rc == 0) rc = nlsq_xpcs_select(d->file, a->q, 0, SIZE_MAX, &d->sel, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "%s\n", err[0] ? err : nlsq_xpcs_status_string(rc));
            return 1;
        }
        d->N = d->sel.last_frame - d->sel.first_frame + 1;
        d->P = d->sel.n_angles;
        d->q = d->sel.q;
        d->gap = a->gap;
        d->dt = a->dt;
        d->phi = malloc(sizeof(double) * d->P);
        d->truth = malloc(sizeof(double) * (NLSQ_XPCS_N_PHYS + 2 * d->P));
        if (!d->phi || !d->truth) { fprintf(stderr, "out of memory\n"); return 1; }
        memcpy(d->phi, d->sel.phi, sizeof(double) * d->P);
        double *con = malloc(sizeof(double) * d->P), *off = malloc(sizeof(double) * d->P);
        if (con && off &&
            nlsq_xpcs_read_truth(d->file, d->truth, con, off, d->P, err, sizeof err) == 0) {
            /* the truth is stored in file order of phi; the selection is phi
             * ascending: map through the matrix indices */
            for (size_t k = 0; k < d->P; k++) {
                size_t fk = d->sel.matrix[k] % d->P;
                d->truth[NLSQ_XPCS_N_PHYS + 2 * k] = con[fk];
                d->truth[NLSQ_XPCS_N_PHYS + 2 * k + 1] = off[fk];
            }
            d->have_truth = 1;
        } else {
            for (size_t k = 0; k < NLSQ_XPCS_N_PHYS + 2 * d->P; k++) d->truth[k] = NAN;
        }
        free(con);
        free(off);
        if (load_all) {
            d->data32 = bx_load_file(d->file, &d->sel);
            if (!d->data32) return 1;
        }
    }
    d->gen_s = bx_now() - t0;
    return 0;
}

/* bx_data_setup, then the resident memory with the data (VmRSS, KiB): 0, or
 * nonzero with d freed. */
BX_UNUSED static int bx_data_ready(const bx_args *a, int load_all, bx_data *d, long *rss_kib)
{
    if (bx_data_setup(a, load_all, d) != 0) {
        bx_data_free(d);
        return 1;
    }
    *rss_kib = bx_status_kib("VmRSS");
    return 0;
}

/* Observations the benchmark fits: full triangle N^2 per angle, upper
 * N(N+1)/2 (diagonal included in both, as docs/xpcs-model.md counts m).  With merged
 * symmetric pairs the problem has the upper triangle's rows for the full
 * triangle's observations. */
BX_UNUSED static size_t bx_rows(size_t N, size_t P, int triangle)
{
    return P * (triangle == NLSQ_XPCS_FULL ? N * N : N * (N + 1) / 2);
}

/* The nlsq model over the data: in memory when d->data32 is set (used in
 * place), else the open file through the reader, cached if it fits
 * --memory-budget and streamed otherwise.  *streamed tells which. */
BX_UNUSED static int bx_model_create(const bx_args *a, bx_data *d, nlsq_xpcs_model **m,
                                     int *streamed)
{
    nlsq_xpcs_source src;
    memset(&src, 0, sizeof src);
    char err[512] = "";
    int rc;
    nlsq_xpcs_config cfg;
    nlsq_xpcs_config_init(&cfg);
    cfg.mode = NLSQ_XPCS_LAMINAR;
    cfg.triangle = a->triangle;
    cfg.include_diagonal = 1;   /* m = 23 N^2 as docs/xpcs-model.md counts it */
    cfg.q = d->q;
    cfg.gap = d->gap;
    cfg.dt = d->dt;
    cfg.k0 = d->file ? d->sel.first_frame : 0;
    cfg.sigma = 0.01;
    cfg.literal_full = a->literal_full;
    *streamed = 0;
    if (d->data32) {
        src.n_angles = d->P;
        src.n = d->N;
        src.phi = d->phi;
        src.kind = NLSQ_XPCS_SOURCE_MEMORY;
        src.u.memory.data32 = d->data32;
    } else {
        rc = nlsq_xpcs_file_source(d->file, &d->sel, &src);
        if (rc != 0) {
            fprintf(stderr, "file source: %s\n", nlsq_xpcs_status_string(rc));
            return 1;
        }
        cfg.memory_budget = (size_t)(a->budget_mib * 1048576.0);
    }
    rc = nlsq_xpcs_model_create(&src, &cfg, m, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "model: %s\n", err[0] ? err : nlsq_xpcs_status_string(rc));
        return 1;
    }
    if (!d->data32) {
        /* the model caches its problem rows (one value per merged pair) when
         * they fit the budget, and streams them otherwise */
        nlsq_problem pb;
        nlsq_xpcs_model_problem(*m, &pb);
        *streamed = pb.n_rows * (nlsq_xpcs_is_float32(d->file) ? 4 : 8) > cfg.memory_budget;
    }
    return 0;
}

/* x0: D0 and gamma_dot_0 from the data (nlsq_xpcs_start; with
 * --fixed-start the benchmark's physical start), the rest of the benchmark's
 * physical start, contrast/offset from the data-driven linear fit, or
 * 0.3 / 1.0 with --spec-start.  Both programs start from this x0. */
BX_UNUSED static int bx_start(const bx_args *a, nlsq_xpcs_model *m, size_t P, double *x0)
{
    int rc = a->fixed_start ? nlsq_xpcs_initial_guess(m, NULL, x0, NULL, 0) : nlsq_xpcs_start(m, NULL, NULL, x0, NULL, 0);
    if (rc != 0) {
        fprintf(stderr, "initial guess: %s\n", nlsq_xpcs_status_string(rc));
        return 1;
    }
    if (a->spec_start)
        for (size_t k = 0; k < P; k++) {
            x0[NLSQ_XPCS_N_PHYS + 2 * k] = 0.3;
            x0[NLSQ_XPCS_N_PHYS + 2 * k + 1] = 1.0;
        }
    return 0;
}

#endif /* BENCH_XPCS_COMMON_H */
