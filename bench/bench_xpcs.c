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

int main(int argc, char **argv)
{
    bx_args a;
    int rc = bx_parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    int threads = bx_threads(&a);

    bx_data d;
    long rss_data;
    if (bx_data_ready(&a, 0, &d, &rss_data) != 0) return 1;

    nlsq_xpcs_model *m = NULL;
    int streamed = 0;
    double t_model = bx_now();
    if (bx_model_create(&a, &d, &m, &streamed) != 0) { bx_data_free(&d); return 1; }
    t_model = bx_now() - t_model;
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    /* mrows: observations (m of docs/xpcs-model.md); prows: rows of the problem */
    size_t p = pb.n_params, mrows = nlsq_xpcs_model_n_rows(m), prows = pb.n_rows;
    int merged = prows != mrows;

    double *x0 = malloc(sizeof(double) * p), *x = malloc(sizeof(double) * p);
    double *cov = malloc(sizeof(double) * p * p), *sigma = malloc(sizeof(double) * p);
    run *runs = calloc((size_t)a.repeat, sizeof *runs);
    double *times = malloc(sizeof(double) * (size_t)a.repeat);
    if (!x0 || !x || !cov || !sigma || !runs || !times) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    double t_init = bx_now();
    if (bx_start(&a, m, d.P, x0) != 0) return 1;
    t_init = bx_now() - t_init;
    long rss_before = bx_status_kib("VmRSS");

    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = threads;
    opt.max_iter = a.max_iter;
    opt.ftol = a.ftol;
    opt.xtol = a.xtol;
    opt.gtol = a.gtol;
    int hybrid = !strcmp(a.method, "hybrid");

    if (!a.json && !a.quiet)
        printf("bench_xpcs: %s, %zu angles x %zu x %zu (%s triangle%s, diagonal included), "
               "m = %zu (%zu problem rows%s), p = %zu, %d thread%s, data %s\n",
               method_name(&a), d.P, d.N, d.N, a.triangle == NLSQ_XPCS_FULL ? "full" : "upper",
               a.triangle == NLSQ_XPCS_FULL ? "s" : "", mrows, prows,
               merged ? ": symmetric pairs merged" : "", p, threads, threads == 1 ? "" : "s",
               d.file ? (streamed ? "streamed from the file" : "cached from the file")
                      : "in memory (float32)");

    int worst = 0;
    for (int r = 0; r < a.repeat; r++) {
        memcpy(x, x0, sizeof(double) * p);
        run *R = &runs[r];
        memset(&R->res, 0, sizeof R->res);
        R->res.covariance = cov;
        double t = bx_now(), c = bx_cpu();
        if (hybrid) nlsq_hybrid(&pb, &opt, x, &R->res);
        else nlsq_lm(&pb, &opt, x, &R->res);
        R->fit_s = bx_now() - t;
        R->fit_cpu_s = bx_cpu() - c;
        times[r] = R->fit_s;
        if (R->res.status < 0) {
            worst = 1;
            fprintf(stderr, "bench_xpcs: fit %d: %s (%s)\n", r + 1,
                    nlsq_status_name(R->res.status), R->res.message);
        }
        if (!a.json && !a.quiet && a.repeat > 1)
            printf("  fit %d/%d: %.3f s, %zu iterations, %zu + %zu passes, cost %.10e, %s\n", r + 1,
                   a.repeat, R->fit_s, R->res.iterations, R->res.n_jac, R->res.n_eval, R->res.cost,
                   nlsq_status_name(R->res.status));
    }
    /* the last fit's x and covariance are reported */
    for (size_t k = 0; k < p; k++) {
        double v = cov[k * p + k];
        sigma[k] = (isfinite(v) && v >= 0) ? sqrt(v) : NAN;
    }
    const nlsq_result *res = &runs[a.repeat - 1].res;
    double fit_med = bx_median(times, (size_t)a.repeat);
    double passes = (double)(res->n_jac + res->n_eval);
    double rows_s = (double)mrows * passes / runs[a.repeat - 1].fit_s;
    double eval_rows_s = (double)prows * passes / runs[a.repeat - 1].fit_s;
    long hwm = bx_status_kib("VmHWM");
    double zphys = bx_max_abs_z(x, d.truth, sigma, p, 1), zco = bx_max_abs_z(x, d.truth, sigma, p, 0);

    if (a.json) {
        printf("{\"program\":\"bench_xpcs\",\"solver\":\"nlsq\",\"method\":\"%s\"", a.method);
        printf(",\"source\":\"%s\",\"streamed\":%d", d.file ? "file" : "memory", streamed);
        printf(",\"threads\":%d,\"N\":%zu,\"P\":%zu,\"m\":%zu,\"rows\":%zu,\"merged\":%d,\"p\":%zu"
               ",\"triangle\":\"%s\"", threads, d.N, d.P, mrows, prows, merged, p,
               a.triangle == NLSQ_XPCS_FULL ? "full" : "upper");
        bx_json_settings(stdout, &a, d.gen_s);
        bx_json_kv(stdout, "model_s", t_model);
        bx_json_kv(stdout, "init_s", t_init);
        bx_json_kv(stdout, "fit_s", runs[a.repeat - 1].fit_s);
        bx_json_kv(stdout, "fit_s_median", fit_med);
        bx_json_kv(stdout, "fit_cpu_s", runs[a.repeat - 1].fit_cpu_s);
        printf(",");
        bx_json_array(stdout, "fit_s_all", times, (size_t)a.repeat);
        printf(",\"iterations\":%zu,\"n_jac\":%zu,\"n_eval\":%zu", res->iterations, res->n_jac,
               res->n_eval);
        bx_json_kv(stdout, "rows_per_s", rows_s);
        bx_json_kv(stdout, "eval_rows_per_s", eval_rows_s);
        bx_json_memory(stdout, hwm, rss_data, rss_before);
        printf(",\"status\":\"%s\"", nlsq_status_name(res->status));
        bx_json_kv(stdout, "initial_cost", res->initial_cost);
        bx_json_kv(stdout, "cost", res->cost);
        bx_json_kv(stdout, "reduced_chi2", res->reduced_chi2);
        bx_json_kv(stdout, "max_abs_z_phys", zphys);
        bx_json_kv(stdout, "max_abs_z_contrast_offset", zco);
        if (hybrid) {
            printf(",\"phases\":[");
            for (size_t k = 0; k < res->n_phases; k++)
                printf("%s{\"phase\":\"%s\",\"iterations\":%zu,\"n_eval\":%zu,\"n_jac\":%zu,"
                       "\"cost\":%.17g,\"seconds\":%.6f}", k ? "," : "", phase_name(res->phases[k].phase),
                       res->phases[k].iterations, res->phases[k].n_eval, res->phases[k].n_jac,
                       res->phases[k].cost, res->phases[k].seconds);
            printf("]");
        }
        bx_json_vectors_end(stdout, x0, x, sigma, d.truth, p);
    } else {
        printf("%-34s %s\n", "solver", hybrid ? "nlsq_hybrid (Adam -> LM)" : "nlsq_lm");
        printf("%-34s %zu angles x %zu x %zu = %zu observations, %zu parameters\n", "problem",
               d.P, d.N, d.N, mrows, p);
        printf("%-34s %zu%s\n", "problem rows", prows,
               merged ? " (symmetric pairs merged, weight sqrt(2))" : "");
        printf("%-34s %.3f s (%s)\n", d.file ? "open file" : "data generation", d.gen_s,
               d.file ? (streamed ? "streamed" : "cached at model creation") : "float32, in memory");
        printf("%-34s %.3f s\n", "model creation", t_model);
        printf("%-34s %.3f s (not in the fit time)\n", "initial guess", t_init);
        printf("%-34s %.3f s (initial guess + the last fit: the GSL peer's start is the same work)\n",
               "start + fit", t_init + runs[a.repeat - 1].fit_s);
        printf("%-34s %.3f s%s\n", "fit wall time", runs[a.repeat - 1].fit_s,
               a.repeat > 1 ? "" : " (incl. covariance)");
        if (a.repeat > 1) printf("%-34s %.3f s over %d fits\n", "fit wall time, median", fit_med, a.repeat);
        printf("%-34s %.3f s (all threads)\n", "fit CPU time", runs[a.repeat - 1].fit_cpu_s);
        printf("%-34s %zu\n", "iterations", res->iterations);
        printf("%-34s %zu with Jacobian + %zu residuals only\n", "passes (n_jac + n_eval)",
               res->n_jac, res->n_eval);
        if (hybrid)
            for (size_t k = 0; k < res->n_phases; k++)
                printf("%-34s %-10s: %zu it, %zu + %zu passes, %.3f s, cost %.10e\n", "",
                       phase_name(res->phases[k].phase), res->phases[k].iterations, res->phases[k].n_jac,
                       res->phases[k].n_eval, res->phases[k].seconds, res->phases[k].cost);
        printf("%-34s %.3f M observations/s (%.3f M problem rows/s)\n", "rows/s per pass",
               rows_s / 1e6, eval_rows_s / 1e6);
        printf("%-34s %.1f MiB (RSS %.1f MiB with the data, %.1f MiB before the fit)\n",
               "peak RSS (VmHWM)", bx_mib(hwm), bx_mib(rss_data), bx_mib(rss_before));
        printf("%-34s %s (%s)\n", "status", nlsq_status_name(res->status), res->message);
        printf("%-34s %.10e -> %.10e (reduced chi2 %.6f)\n", "cost", res->initial_cost, res->cost,
               res->reduced_chi2);
        printf("\n");
        bx_print_params(stdout, x0, x, d.truth, sigma, p);
    }

    free(x0); free(x); free(cov); free(sigma); free(runs); free(times);
    nlsq_xpcs_model_free(m);
    bx_data_free(&d);
    return worst;
}
