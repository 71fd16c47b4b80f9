/*
 * fit_xpcs - fit the laminar-flow (or static) XPCS model to the two-time
 * correlation matrices of one q in an APS 8-ID-I HDF5 file.
 *
 *   fit_xpcs INPUT.h5 --dt SECONDS --gap ANGSTROM [--q Q] [--frames FIRST:LAST]
 *            [--mode laminar|static] [--method lm|adam|hybrid]
 *            [--triangle upper|full] [--threads N] [--json] [--output RESULT.h5]
 *   extras:  [--sigma S] [--max-iter N] [--memory-budget MIB] [--include-diagonal]
 *            [--init NAME=VALUE]... [--k0 K] [--progress] [--help]
 *
 * Options take "--name value" or "--name=value".  --frames FIRST:LAST is
 * inclusive and relative to the file's frame 0 (FIRST: = to the end); --k0 is
 * the frame index of the file's frame 0 (t_k = (k + k0 + FIRST) dt; 0 unless
 * the acquisition says otherwise).  --gap is not needed in static mode.
 * --init sets a physical start value (names as in the JSON; repeatable).
 *
 * Statistics.  Non-finite data entries are excluded by the model (zero
 * residual and Jacobian row) but are still rows of the problem, so the
 * solver's s^2 = 2 cost / (m - p) counts them.  This program uses the true
 * degrees of freedom dof = m - n_excluded - p:
 *     reduced_chi2 = 2 cost / dof,
 *     covariance  = solver covariance * (m - p) / dof   (= 2 cost/dof (J^T J)^-1),
 * and errors are the square roots of the diagonal (null where undetermined).
 *
 * Static mode fits D0, alpha, D_offset only; the JSON still has all 7 keys in
 * "params" and "errors": the shear parameters are reported as fixed at 0
 * (no shear) with error 0, and listed in the extra key "fixed".
 *
 * --json prints one JSON object on stdout (keys of docs/api.md plus the
 * extras "message", "mode", "method", "triangle", "n_excluded", "dof",
 * "fixed", "file"); otherwise a readable table.  Exit code: 0 converged,
 * 1 ran but did not converge (or the method failed), 2 bad usage or bad
 * input, with one line on stderr.
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include "nlsq.h"
#include "nlsq_xpcs.h"
#include "fit_xpcs_args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_CONVERGED 0
#define EXIT_NOT_CONVERGED 1
#define EXIT_BAD_INPUT 2

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fit_xpcs: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try --help)\n");
    return EXIT_BAD_INPUT;
}

static int bad_input(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_input(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fit_xpcs: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    return EXIT_BAD_INPUT;
}

/* ------------------------------------------------------------------------ */
/* Output helpers                                                             */
/* ------------------------------------------------------------------------ */

static void json_num(double v)
{
    if (isfinite(v)) printf("%.17g", v);
    else printf("null");
}

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') printf("\\%c", *c);
        else if (*c == '\n') printf("\\n");
        else if (*c == '\t') printf("\\t");
        else if (*c < 0x20) printf("\\u%04x", *c);
        else putchar(*c);
    }
    putchar('"');
}

/* An error bar for the table: "undetermined" when not finite. */
static const char *fmt_err(double e, char *buf, size_t size)
{
    if (isfinite(e)) snprintf(buf, size, "%.4g", e);
    else snprintf(buf, size, "undetermined");
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int progress_cb(void *ctx, const nlsq_progress_info *info)
{
    (void)ctx;
    fprintf(stderr, "fit_xpcs: %s %4zu  cost %.10e  |g| %.3e  %s %.3e  %.2f s\n",
            info->phase == NLSQ_PHASE_ADAM ? "epoch" : "iter ", info->iteration,
            info->cost, info->grad_norm, info->phase == NLSQ_PHASE_ADAM ? "lr" : "lambda",
            info->lambda, info->elapsed);
    return 0;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    fit_xpcs_args a;
    char perr[512];
    int rc = fit_xpcs_parse_args(argc, argv, &a, perr, sizeof perr);
    if (rc == FIT_XPCS_ARGS_HELP) {
        fputs(fit_xpcs_usage_text(), stdout);
        return EXIT_CONVERGED;
    }
    if (rc != FIT_XPCS_ARGS_OK) {
        fprintf(stderr, "fit_xpcs: %s\n", perr);
        return EXIT_BAD_INPUT;
    }
    if (a.checkpoint || a.resume || a.plot)
        return bad_input("--checkpoint, --resume and --plot are not yet supported");
    if (a.output)
        return bad_input("--output %s: writing results to HDF5 is not yet supported", a.output);

    char err[512] = "";
    nlsq_xpcs_file *f = NULL;
    rc = nlsq_xpcs_open(a.input, &f, err, sizeof err);
    if (rc != 0)
        return bad_input("%s", err[0] ? err : nlsq_xpcs_status_string(rc));

    size_t nf = nlsq_xpcs_n_frames(f);
    if (a.have_frames && (a.first >= nf || (a.last != SIZE_MAX && a.last >= nf))) {
        nlsq_xpcs_close(f);
        if (a.last == SIZE_MAX)
            return bad_input("%s: --frames %zu: is outside the file's frames 0..%zu",
                             a.input, a.first, nf ? nf - 1 : 0);
        return bad_input("%s: --frames %zu:%zu is outside the file's frames 0..%zu",
                         a.input, a.first, a.last, nf ? nf - 1 : 0);
    }

    nlsq_xpcs_selection sel;
    memset(&sel, 0, sizeof sel);
    rc = nlsq_xpcs_select(f, a.q, a.first, a.last, &sel, err, sizeof err);
    if (rc != 0) {
        nlsq_xpcs_close(f);
        return bad_input("%s", err[0] ? err : nlsq_xpcs_status_string(rc));
    }

    nlsq_xpcs_source src;
    nlsq_xpcs_model *m = NULL;
    double *x = NULL, *cov = NULL;
    int exit_code = EXIT_BAD_INPUT;

    rc = nlsq_xpcs_file_source(f, &sel, &src);
    if (rc != 0) {
        bad_input("%s: cannot read the selected matrices (%s)", a.input, nlsq_xpcs_status_string(rc));
        goto done;
    }
    nlsq_xpcs_config cfg;
    nlsq_xpcs_config_init(&cfg);
    cfg.mode = a.mode;
    cfg.triangle = a.triangle;
    cfg.include_diagonal = a.include_diagonal;
    cfg.q = sel.q;
    cfg.gap = a.have_gap ? a.gap : NAN;
    cfg.dt = a.dt;
    cfg.k0 = a.k0 + sel.first_frame;
    cfg.sigma = a.sigma;
    cfg.memory_budget = (size_t)(a.budget_mib * 1048576.0);
    rc = nlsq_xpcs_model_create(&src, &cfg, &m, err, sizeof err);
    if (rc != 0) {
        bad_input("%s: %s", a.input, err[0] ? err : nlsq_xpcs_status_string(rc));
        goto done;
    }

    size_t p = nlsq_xpcs_model_n_params(m), np = a.mode == NLSQ_XPCS_STATIC ? 3 : 7;
    size_t P = sel.n_angles;
    x = malloc(sizeof(double) * p);
    cov = malloc(sizeof(double) * p * p);
    if (!x || !cov) {
        bad_input("out of memory (%zu parameters)", p);
        goto done;
    }
    {
        double *lo = malloc(sizeof(double) * p), *hi = malloc(sizeof(double) * p);
        if (!lo || !hi) {
            free(lo);
            free(hi);
            bad_input("out of memory (%zu parameters)", p);
            goto done;
        }
        nlsq_xpcs_default_bounds(m, lo, hi);
        int oob = -1;
        for (size_t k = 0; k < np; k++)
            if (!isnan(a.init[k]) && (a.init[k] < lo[k] || a.init[k] > hi[k])) oob = (int)k;
        if (oob >= 0) {
            bad_usage("--init %s=%g is outside the bounds [%g, %g]", nlsq_xpcs_param_name((size_t)oob),
                      a.init[oob], lo[oob], hi[oob]);
            free(lo);
            free(hi);
            goto done;
        }
        free(lo);
        free(hi);
    }
    rc = nlsq_xpcs_initial_guess(m, a.init, x);
    if (rc != 0) {
        const char *le = nlsq_xpcs_model_last_error(m);
        bad_input("%s: initial guess failed: %s", a.input, le[0] ? le : nlsq_xpcs_status_string(rc));
        goto done;
    }

    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = a.n_threads;
    opt.max_iter = a.max_iter;
    if (a.progress) opt.progress = progress_cb;

    nlsq_result res;
    memset(&res, 0, sizeof res);
    for (size_t k = 0; k < p * p; k++) cov[k] = NAN;
    res.covariance = cov;
    double t0 = now_s();
    int status;
    if (!strcmp(a.method, "adam")) status = nlsq_adam(&pb, &opt, x, &res);
    else if (!strcmp(a.method, "hybrid")) status = nlsq_hybrid(&pb, &opt, x, &res);
    else status = nlsq_lm(&pb, &opt, x, &res);
    int have_cov = 0;
    if (status >= 0) {
        /* nlsq_lm / nlsq_hybrid fill the covariance; Adam does not */
        int filled = 0;
        for (size_t k = 0; k < p && !filled; k++)
            if (!isnan(cov[k * p + k])) filled = 1;
        if (!filled) {
            nlsq_result cres;
            memset(&cres, 0, sizeof cres);
            filled = nlsq_covariance(&pb, &opt, x, cov, &cres) >= 0;
        }
        have_cov = filled;
    }
    double seconds = now_s() - t0;

    const char *le = nlsq_xpcs_model_last_error(m);
    if (status == NLSQ_ECALLBACK && le[0]) {
        bad_input("%s", le);
        goto done;
    }

    size_t m_rows = nlsq_xpcs_model_n_rows(m), n_excl = nlsq_xpcs_model_n_excluded(m);
    double dof = (double)m_rows - (double)n_excl - (double)p;
    double cost = res.cost;
    double red = dof > 0 ? 2.0 * cost / dof : NAN;
    /* The solver scaled by 2 cost / (m - p); rescale to 2 cost / dof. */
    double cscale = ((double)m_rows - (double)p) / dof;
    double *errs = malloc(sizeof(double) * p);
    if (!errs) {
        bad_input("out of memory");
        goto done;
    }
    for (size_t k = 0; k < p; k++) {
        double v = have_cov && dof > 0 ? cov[k * p + k] * cscale : NAN;
        errs[k] = (isfinite(v) && v >= 0) ? sqrt(v) : NAN;
    }

    if (a.json) {
        printf("{\"status\": ");
        json_str(nlsq_status_name(status));
        printf(", \"status_code\": %d, \"message\": ", status);
        json_str(res.message[0] ? res.message : nlsq_status_string(status));
        printf(", \"cost\": ");
        json_num(cost);
        printf(", \"reduced_chi2\": ");
        json_num(red);
        printf(", \"n_rows\": %zu, \"n_excluded\": %zu, \"n_params\": %zu, \"dof\": ",
               m_rows, n_excl, p);
        json_num(dof);
        printf(", \"iterations\": %zu, \"seconds\": ", res.iterations);
        json_num(seconds);
        printf(", \"file\": ");
        json_str(a.input);
        printf(", \"mode\": \"%s\", \"method\": \"%s\", \"triangle\": \"%s\", \"q\": ",
               a.mode == NLSQ_XPCS_STATIC ? "static" : "laminar", a.method,
               a.triangle == NLSQ_XPCS_FULL ? "full" : "upper");
        json_num(sel.q);
        printf(", \"phi\": [");
        for (size_t k = 0; k < P; k++) {
            if (k) printf(", ");
            json_num(sel.phi[k]);
        }
        printf("], \"params\": {");
        for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++) {
            printf("%s\"%s\": ", k ? ", " : "", nlsq_xpcs_param_name(k));
            json_num(k < np ? x[k] : 0.0);
        }
        printf("}, \"errors\": {");
        for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++) {
            printf("%s\"%s\": ", k ? ", " : "", nlsq_xpcs_param_name(k));
            json_num(k < np ? errs[k] : 0.0);
        }
        printf("}, \"fixed\": [");
        for (size_t k = np; k < NLSQ_XPCS_N_PHYS; k++)
            printf("%s\"%s\"", k > np ? ", " : "", nlsq_xpcs_param_name(k));
        const char *arrays[4] = {"contrast", "offset", "contrast_errors", "offset_errors"};
        printf("]");
        for (int t = 0; t < 4; t++) {
            printf(", \"%s\": [", arrays[t]);
            for (size_t k = 0; k < P; k++) {
                size_t idx = np + 2 * k + (size_t)(t % 2);
                if (k) printf(", ");
                json_num(t < 2 ? x[idx] : errs[idx]);
            }
            printf("]");
        }
        printf("}\n");
    } else {
        printf("fit_xpcs: %s\n", a.input);
        printf("  q = %.6g 1/A, %zu angle%s, frames %zu..%zu (N = %zu), %s mode, %s triangle%s\n",
               sel.q, P, P == 1 ? "" : "s", sel.first_frame, sel.last_frame,
               sel.last_frame - sel.first_frame + 1,
               a.mode == NLSQ_XPCS_STATIC ? "static" : "laminar",
               a.triangle == NLSQ_XPCS_FULL ? "full" : "upper",
               a.include_diagonal ? " + diagonal" : "");
        printf("  method %s: %s (%s)\n", a.method, nlsq_status_name(status),
               res.message[0] ? res.message : nlsq_status_string(status));
        printf("  %zu iterations, %.3f s, %zu rows (%zu excluded), %zu parameters\n",
               res.iterations, seconds, m_rows, n_excl, p);
        printf("  cost %.10g, chi2/dof %.6f (dof %.0f)\n\n", cost, red, dof);
        printf("  %-18s %15s   %-12s %s\n", "parameter", "value", "+- 1 sigma", "unit");
        char b1[32], b2[32];
        for (size_t k = 0; k < np; k++)
            printf("  %-18s %15.8g   %-12s %s\n", nlsq_xpcs_param_name(k), x[k],
                   fmt_err(errs[k], b1, sizeof b1), nlsq_xpcs_param_unit(k));
        if (np < NLSQ_XPCS_N_PHYS) printf("  (static mode: no shear parameters)\n");
        printf("\n  %5s %10s %12s %-12s %12s %-12s\n", "angle", "phi [deg]", "contrast",
               "+-", "offset", "+-");
        for (size_t k = 0; k < P; k++)
            printf("  %5zu %10.4f %12.8f %-12s %12.8f %-12s\n", k, sel.phi[k], x[np + 2 * k],
                   fmt_err(errs[np + 2 * k], b1, sizeof b1), x[np + 2 * k + 1],
                   fmt_err(errs[np + 2 * k + 1], b2, sizeof b2));
    }
    free(errs);
    exit_code = status > 0 ? EXIT_CONVERGED : EXIT_NOT_CONVERGED;

done:
    free(x);
    free(cov);
    nlsq_xpcs_model_free(m);
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
    return exit_code;
}
