/*
 * bench_xpcs - nlsq on the 23M-point XPCS benchmark of
 * docs/xpcs-model.md ("The 23M-point benchmark problem").
 *
 * Data: 23 angles x N x N (N = 1001), both triangles with the diagonal, so
 * m = 23 N^2 = 23,046,023 residuals and p = 53 parameters; q 0.01, L 2e6,
 * dt 1e-3, truth of docs/xpcs-model.md, Gaussian noise 0.01 with a fixed seed (42, the
 * synthetic writer's default).  The matrices are generated in memory as
 * float32 through nlsq_xpcs_synth_rows (exactly the rows an xpcs_synth file
 * would give) and fitted through an in-memory source (data32, float32 = 1),
 * or, with --file, read from such a file through the reader (streamed when
 * they do not fit --memory-budget, default 64 MiB: RSS stays flat).
 *
 * Start: the benchmark's physical start, contrast/offset from the data-driven
 * linear fit of nlsq_xpcs_initial_guess (its pass is timed separately as
 * init_s) - the GSL peer (bench/peers/gsl_xpcs.c) starts from the same x0.
 * Fit: nlsq_lm (or nlsq_hybrid with --method hybrid), default options
 * (ftol = xtol = gtol = 1e-8), with the covariance.  With the full triangle
 * the model by default presents each symmetric pair (i, j), (j, i) once with
 * weight sqrt(2) (same cost and normal equations, half the rows: the problem
 * has P N (N+1)/2 rows for m = P N^2 observations); --literal-full evaluates
 * both triangles row by row.
 *
 * Reported: data generation seconds (separately), fit wall seconds,
 * iterations, passes (n_jac with Jacobian, n_eval residuals only), peak RSS
 * (VmHWM, MiB; per process: run one fit per process to measure it per run),
 * rows/s per pass = m (n_jac + n_eval) / fit seconds (m = observations; the
 * JSON also has eval_rows_per_s over the problem's rows), status, cost, and the
 * 53 parameters against the truth with sigma and z = (value - truth)/sigma.
 * --repeat R fits R times from the same x0 and reports each fit and the
 * median; --json prints one line.
 *
 * usage: bench_xpcs --help
 */
#define _GNU_SOURCE   /* sysconf, clock_gettime */
#include "bench_xpcs_common.h"

typedef struct run {
    nlsq_result res;
    double fit_s, fit_cpu_s;
} run;

/* One benchmark run's state, filled stage by stage by main: parse, set up
 * the data and the model, start, fit (timed), summarize, report. */
typedef struct bench {
    bx_args a;
    int threads, streamed, merged, hybrid, worst;
    bx_data d;
    long rss_data, rss_before, hwm;
    nlsq_xpcs_model *m;
    nlsq_problem pb;
    nlsq_options opt;
    /* mrows: observations (m of docs/xpcs-model.md); prows: rows of the problem */
    size_t p, mrows, prows;
    double *x0, *x, *cov, *sigma, *times;
    run *runs;
    double t_model, t_init;
    /* summary of the last fit (its x and covariance are reported) */
    const nlsq_result *res;
    double fit_s, fit_cpu_s, fit_med, rows_s, eval_rows_s, zphys, zco;
} bench;

static const char *method_name(const bx_args *a) { return a->method; }

static const char *phase_name(int phase)
{
    switch (phase) {
    case NLSQ_PHASE_LM: return "LM";
    case NLSQ_PHASE_ADAM: return "Adam";
    case NLSQ_PHASE_COVARIANCE: return "covariance";
    default: return "?";
    }
}

/* Data (generated or opened, timed inside bx_data_ready as gen_s), then the
 * model (its creation timed as model_s) and the problem's sizes. */
static int bench_setup(bench *b)
{
    if (bx_data_ready(&b->a, 0, &b->d, &b->rss_data) != 0) return 1;
    b->t_model = bx_now();
    if (bx_model_create(&b->a, &b->d, &b->m, &b->streamed) != 0) { bx_data_free(&b->d); return 1; }
    b->t_model = bx_now() - b->t_model;
    nlsq_xpcs_model_problem(b->m, &b->pb);
    b->p = b->pb.n_params;
    b->mrows = nlsq_xpcs_model_n_rows(b->m);
    b->prows = b->pb.n_rows;
    b->merged = b->prows != b->mrows;
    return 0;
}

static int bench_alloc(bench *b)
{
    size_t p = b->p;
    b->x0 = malloc(sizeof(double) * p);
    b->x = malloc(sizeof(double) * p);
    b->cov = malloc(sizeof(double) * p * p);
    b->sigma = malloc(sizeof(double) * p);
    b->runs = calloc((size_t)b->a.repeat, sizeof *b->runs);
    b->times = malloc(sizeof(double) * (size_t)b->a.repeat);
    if (!b->x0 || !b->x || !b->cov || !b->sigma || !b->runs || !b->times) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    return 0;
}

/* The start point x0; its pass is timed as init_s, not in the fit time. */
static int bench_start(bench *b)
{
    b->t_init = bx_now();
    if (bx_start(&b->a, b->m, b->d.P, b->x0) != 0) return 1;
    b->t_init = bx_now() - b->t_init;
    b->rss_before = bx_status_kib("VmRSS");
    return 0;
}

static void bench_options(bench *b)
{
    nlsq_options_init(&b->opt);
    b->opt.n_threads = b->threads;
    b->opt.max_iter = b->a.max_iter;
    b->opt.ftol = b->a.ftol;
    b->opt.xtol = b->a.xtol;
    b->opt.gtol = b->a.gtol;
    b->hybrid = !strcmp(b->a.method, "hybrid");
}

static void print_header(const bench *b)
{
    const bx_args *a = &b->a;
    const bx_data *d = &b->d;
    printf("bench_xpcs: %s, %zu angles x %zu x %zu (%s triangle%s, diagonal included), "
           "m = %zu (%zu problem rows%s), p = %zu, %d thread%s, data %s\n",
           method_name(a), d->P, d->N, d->N, a->triangle == NLSQ_XPCS_FULL ? "full" : "upper",
           a->triangle == NLSQ_XPCS_FULL ? "s" : "", b->mrows, b->prows,
           b->merged ? ": symmetric pairs merged" : "", b->p, b->threads, b->threads == 1 ? "" : "s",
           d->file ? (b->streamed ? "streamed from the file" : "cached from the file")
                   : "in memory (float32)");
}

/* Fit r from x0: the timed region is the solver call alone (wall and CPU). */
static void bench_fit(bench *b, int r)
{
    memcpy(b->x, b->x0, sizeof(double) * b->p);
    run *R = &b->runs[r];
    memset(&R->res, 0, sizeof R->res);
    R->res.covariance = b->cov;
    double t = bx_now(), c = bx_cpu();
    if (b->hybrid) nlsq_hybrid(&b->pb, &b->opt, b->x, &R->res);
    else nlsq_lm(&b->pb, &b->opt, b->x, &R->res);
    R->fit_s = bx_now() - t;
    R->fit_cpu_s = bx_cpu() - c;
    b->times[r] = R->fit_s;
    if (R->res.status < 0) {
        b->worst = 1;
        fprintf(stderr, "bench_xpcs: fit %d: %s (%s)\n", r + 1,
                nlsq_status_name(R->res.status), R->res.message);
    }
    if (!b->a.json && !b->a.quiet && b->a.repeat > 1)
        printf("  fit %d/%d: %.3f s, %zu iterations, %zu + %zu passes, cost %.10e, %s\n", r + 1,
               b->a.repeat, R->fit_s, R->res.iterations, R->res.n_jac, R->res.n_eval, R->res.cost,
               nlsq_status_name(R->res.status));
}

/* The last fit's x and covariance are reported: sigma, rates, peak RSS, z. */
static void bench_summary(bench *b)
{
    size_t p = b->p;
    for (size_t k = 0; k < p; k++) {
        double v = b->cov[k * p + k];
        b->sigma[k] = (isfinite(v) && v >= 0) ? sqrt(v) : NAN;
    }
    const run *last = &b->runs[b->a.repeat - 1];
    b->res = &last->res;
    b->fit_s = last->fit_s;
    b->fit_cpu_s = last->fit_cpu_s;
    b->fit_med = bx_median(b->times, (size_t)b->a.repeat);
    double passes = (double)(b->res->n_jac + b->res->n_eval);
    b->rows_s = (double)b->mrows * passes / b->fit_s;
    b->eval_rows_s = (double)b->prows * passes / b->fit_s;
    b->hwm = bx_status_kib("VmHWM");
    b->zphys = bx_max_abs_z(b->x, b->d.truth, b->sigma, p, 1);
    b->zco = bx_max_abs_z(b->x, b->d.truth, b->sigma, p, 0);
}

static void report_json_phases(const nlsq_result *res)
{
    printf(",\"phases\":[");
    for (size_t k = 0; k < res->n_phases; k++)
        printf("%s{\"phase\":\"%s\",\"iterations\":%zu,\"n_eval\":%zu,\"n_jac\":%zu,"
               "\"cost\":%.17g,\"seconds\":%.6f}", k ? "," : "", phase_name(res->phases[k].phase),
               res->phases[k].iterations, res->phases[k].n_eval, res->phases[k].n_jac,
               res->phases[k].cost, res->phases[k].seconds);
    printf("]");
}

static void report_json(const bench *b)
{
    const bx_args *a = &b->a;
    const nlsq_result *res = b->res;
    printf("{\"program\":\"bench_xpcs\",\"solver\":\"nlsq\",\"method\":\"%s\"", a->method);
    printf(",\"source\":\"%s\",\"streamed\":%d", b->d.file ? "file" : "memory", b->streamed);
    printf(",\"threads\":%d,\"N\":%zu,\"P\":%zu,\"m\":%zu,\"rows\":%zu,\"merged\":%d,\"p\":%zu"
           ",\"triangle\":\"%s\"", b->threads, b->d.N, b->d.P, b->mrows, b->prows, b->merged, b->p,
           a->triangle == NLSQ_XPCS_FULL ? "full" : "upper");
    bx_json_settings(stdout, a, b->d.gen_s);
    bx_json_kv(stdout, "model_s", b->t_model);
    bx_json_kv(stdout, "init_s", b->t_init);
    bx_json_kv(stdout, "fit_s", b->fit_s);
    bx_json_kv(stdout, "fit_s_median", b->fit_med);
    bx_json_kv(stdout, "fit_cpu_s", b->fit_cpu_s);
    printf(",");
    bx_json_array(stdout, "fit_s_all", b->times, (size_t)a->repeat);
    printf(",\"iterations\":%zu,\"n_jac\":%zu,\"n_eval\":%zu", res->iterations, res->n_jac,
           res->n_eval);
    bx_json_kv(stdout, "rows_per_s", b->rows_s);
    bx_json_kv(stdout, "eval_rows_per_s", b->eval_rows_s);
    bx_json_memory(stdout, b->hwm, b->rss_data, b->rss_before);
    printf(",\"status\":\"%s\"", nlsq_status_name(res->status));
    bx_json_kv(stdout, "initial_cost", res->initial_cost);
    bx_json_kv(stdout, "cost", res->cost);
    bx_json_kv(stdout, "reduced_chi2", res->reduced_chi2);
    bx_json_kv(stdout, "max_abs_z_phys", b->zphys);
    bx_json_kv(stdout, "max_abs_z_contrast_offset", b->zco);
    if (b->hybrid) report_json_phases(res);
    bx_json_vectors_end(stdout, b->x0, b->x, b->sigma, b->d.truth, b->p);
}

/* The text report's timing lines: data, model, start, fit. */
static void report_text_times(const bench *b)
{
    const bx_data *d = &b->d;
    int repeat = b->a.repeat;
    printf("%-34s %.3f s (%s)\n", d->file ? "open file" : "data generation", d->gen_s,
           d->file ? (b->streamed ? "streamed" : "cached at model creation") : "float32, in memory");
    printf("%-34s %.3f s\n", "model creation", b->t_model);
    printf("%-34s %.3f s (not in the fit time)\n", "initial guess", b->t_init);
    printf("%-34s %.3f s (initial guess + the last fit: the GSL peer's start is the same work)\n",
           "start + fit", b->t_init + b->fit_s);
    printf("%-34s %.3f s%s\n", "fit wall time", b->fit_s, repeat > 1 ? "" : " (incl. covariance)");
    if (repeat > 1) printf("%-34s %.3f s over %d fits\n", "fit wall time, median", b->fit_med, repeat);
    printf("%-34s %.3f s (all threads)\n", "fit CPU time", b->fit_cpu_s);
}

static void report_text(const bench *b)
{
    const nlsq_result *res = b->res;
    printf("%-34s %s\n", "solver", b->hybrid ? "nlsq_hybrid (Adam -> LM)" : "nlsq_lm");
    printf("%-34s %zu angles x %zu x %zu = %zu observations, %zu parameters\n", "problem",
           b->d.P, b->d.N, b->d.N, b->mrows, b->p);
    printf("%-34s %zu%s\n", "problem rows", b->prows,
           b->merged ? " (symmetric pairs merged, weight sqrt(2))" : "");
    report_text_times(b);
    printf("%-34s %zu\n", "iterations", res->iterations);
    printf("%-34s %zu with Jacobian + %zu residuals only\n", "passes (n_jac + n_eval)",
           res->n_jac, res->n_eval);
    if (b->hybrid)
        for (size_t k = 0; k < res->n_phases; k++)
            printf("%-34s %-10s: %zu it, %zu + %zu passes, %.3f s, cost %.10e\n", "",
                   phase_name(res->phases[k].phase), res->phases[k].iterations, res->phases[k].n_jac,
                   res->phases[k].n_eval, res->phases[k].seconds, res->phases[k].cost);
    printf("%-34s %.3f M observations/s (%.3f M problem rows/s)\n", "rows/s per pass",
           b->rows_s / 1e6, b->eval_rows_s / 1e6);
    printf("%-34s %.1f MiB (RSS %.1f MiB with the data, %.1f MiB before the fit)\n",
           "peak RSS (VmHWM)", bx_mib(b->hwm), bx_mib(b->rss_data), bx_mib(b->rss_before));
    printf("%-34s %s (%s)\n", "status", nlsq_status_name(res->status), res->message);
    printf("%-34s %.10e -> %.10e (reduced chi2 %.6f)\n", "cost", res->initial_cost, res->cost,
           res->reduced_chi2);
    printf("\n");
    bx_print_params(stdout, b->x0, b->x, b->d.truth, b->sigma, b->p);
}

static void bench_free(bench *b)
{
    free(b->x0); free(b->x); free(b->cov); free(b->sigma); free(b->runs); free(b->times);
    nlsq_xpcs_model_free(b->m);
    bx_data_free(&b->d);
}

int main(int argc, char **argv)
{
    bench b;
    memset(&b, 0, sizeof b);
    int rc = bx_parse_args(argc, argv, &b.a);
    if (rc) return rc < 0 ? 0 : rc;
    b.threads = bx_threads(&b.a);
    if (bench_setup(&b) != 0) return 1;
    if (bench_alloc(&b) != 0 || bench_start(&b) != 0) { bench_free(&b); return 1; }
    bench_options(&b);
    if (!b.a.json && !b.a.quiet) print_header(&b);
    for (int r = 0; r < b.a.repeat; r++) bench_fit(&b, r);
    bench_summary(&b);
    if (b.a.json) report_json(&b);
    else report_text(&b);
    bench_free(&b);
    return b.worst;
}
