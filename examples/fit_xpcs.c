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

typedef struct args {
    const char *input;
    double dt, gap, q;
    int have_dt, have_gap;
    size_t first, last;          /* last = SIZE_MAX: to the end */
    int have_frames;
    int mode, triangle, include_diagonal;
    const char *method;
    int n_threads;
    int json;
    const char *output;
    double sigma;
    size_t max_iter;
    double budget_mib;
    double init[NLSQ_XPCS_N_PHYS];
    size_t k0;
    int progress;
} args;

static void usage(FILE *fp)
{
    fprintf(fp,
        "usage: fit_xpcs INPUT.h5 --dt SECONDS --gap ANGSTROM [--q Q] [--frames FIRST:LAST]\n"
        "                [--mode laminar|static] [--method lm|adam|hybrid]\n"
        "                [--triangle upper|full] [--threads N] [--json] [--output RESULT.h5]\n"
        "                [--sigma S] [--max-iter N] [--memory-budget MIB] [--include-diagonal]\n"
        "                [--init NAME=VALUE]... [--k0 K] [--progress]\n"
        "  NAME: D0 alpha D_offset gamma_dot_0 beta gamma_dot_offset phi0\n"
        "  exit: 0 converged, 1 not converged, 2 bad usage or bad input\n");
}

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

/* Strict parsers: the whole string, finite values only. */
static int parse_double(const char *s, double *v)
{
    char *end;
    if (!s || !*s) return -1;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

static int parse_size(const char *s, size_t *v)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return -1;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9') return -1;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || x > SIZE_MAX) return -1;
    *v = (size_t)x;
    return 0;
}

static int phys_index(const char *name)
{
    for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++)
        if (strcmp(name, nlsq_xpcs_param_name(k)) == 0) return (int)k;
    return -1;
}

static int parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof *a);
    a->q = NAN;
    a->last = SIZE_MAX;
    a->mode = NLSQ_XPCS_LAMINAR;
    a->triangle = NLSQ_XPCS_UPPER;
    a->method = "lm";
    a->sigma = 0.01;
    a->max_iter = 200;
    a->budget_mib = 256;
    for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++) a->init[k] = NAN;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0) {
            if (arg[0] == '-' && arg[1] != '\0') return bad_usage("unknown option '%s'", arg);
            if (a->input) return bad_usage("more than one input file ('%s', '%s')", a->input, arg);
            a->input = arg;
            continue;
        }
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nl >= sizeof name) return bad_usage("unknown option '%s'", arg);
        memcpy(name, arg, nl);
        name[nl] = '\0';
        if (eq) val = eq + 1;

        /* flags without a value */
        if (!strcmp(name, "--json") || !strcmp(name, "--include-diagonal") ||
            !strcmp(name, "--progress") || !strcmp(name, "--help")) {
            if (val) return bad_usage("option %s takes no value", name);
            if (!strcmp(name, "--json")) a->json = 1;
            else if (!strcmp(name, "--include-diagonal")) a->include_diagonal = 1;
            else if (!strcmp(name, "--progress")) a->progress = 1;
            else { usage(stdout); exit(0); }
            continue;
        }
        static const char *const with_value[] = {
            "--dt", "--gap", "--q", "--frames", "--mode", "--method", "--triangle",
            "--threads", "--output", "--sigma", "--max-iter", "--memory-budget", "--init",
            "--k0"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            if (!strcmp(name, with_value[k])) known = 1;
        if (!known) return bad_usage("unknown option '%s'", name);
        if (!val) {
            if (i + 1 >= argc) return bad_usage("option %s needs a value", name);
            val = argv[++i];
        }

        if (!strcmp(name, "--dt")) {
            if (parse_double(val, &a->dt) || !(a->dt > 0))
                return bad_usage("--dt must be a positive number of seconds, not '%s'", val);
            a->have_dt = 1;
        } else if (!strcmp(name, "--gap")) {
            if (parse_double(val, &a->gap) || !(a->gap > 0))
                return bad_usage("--gap must be a positive number of Angstrom, not '%s'", val);
            a->have_gap = 1;
        } else if (!strcmp(name, "--q")) {
            if (parse_double(val, &a->q) || !(a->q > 0))
                return bad_usage("--q must be a positive number (1/Angstrom), not '%s'", val);
        } else if (!strcmp(name, "--frames")) {
            const char *colon = strchr(val, ':');
            char first[32];
            if (!colon || (size_t)(colon - val) >= sizeof first)
                return bad_usage("--frames must be FIRST:LAST (inclusive), not '%s'", val);
            memcpy(first, val, (size_t)(colon - val));
            first[colon - val] = '\0';
            if (parse_size(first, &a->first))
                return bad_usage("--frames: bad first frame in '%s'", val);
            if (colon[1] == '\0') a->last = SIZE_MAX;
            else if (parse_size(colon + 1, &a->last))
                return bad_usage("--frames: bad last frame in '%s'", val);
            if (a->last < a->first)
                return bad_usage("--frames: last frame before the first in '%s'", val);
            a->have_frames = 1;
        } else if (!strcmp(name, "--mode")) {
            if (!strcmp(val, "laminar")) a->mode = NLSQ_XPCS_LAMINAR;
            else if (!strcmp(val, "static")) a->mode = NLSQ_XPCS_STATIC;
            else return bad_usage("--mode must be laminar or static, not '%s'", val);
        } else if (!strcmp(name, "--method")) {
            if (strcmp(val, "lm") && strcmp(val, "adam") && strcmp(val, "hybrid"))
                return bad_usage("--method must be lm, adam or hybrid, not '%s'", val);
            a->method = val;
        } else if (!strcmp(name, "--triangle")) {
            if (!strcmp(val, "upper")) a->triangle = NLSQ_XPCS_UPPER;
            else if (!strcmp(val, "full")) a->triangle = NLSQ_XPCS_FULL;
            else return bad_usage("--triangle must be upper or full, not '%s'", val);
        } else if (!strcmp(name, "--threads")) {
            size_t t;
            if (parse_size(val, &t) || t > 4096)
                return bad_usage("--threads must be an integer 0..4096 (0 = all cores), not '%s'", val);
            a->n_threads = (int)t;
        } else if (!strcmp(name, "--output")) {
            if (!*val) return bad_usage("--output needs a file name");
            a->output = val;
        } else if (!strcmp(name, "--sigma")) {
            if (parse_double(val, &a->sigma) || !(a->sigma > 0))
                return bad_usage("--sigma must be a positive number, not '%s'", val);
        } else if (!strcmp(name, "--max-iter")) {
            if (parse_size(val, &a->max_iter) || a->max_iter == 0)
                return bad_usage("--max-iter must be a positive integer, not '%s'", val);
        } else if (!strcmp(name, "--memory-budget")) {
            if (parse_double(val, &a->budget_mib) || a->budget_mib < 0 || a->budget_mib > 1e9)
                return bad_usage("--memory-budget must be a number of MiB >= 0, not '%s'", val);
        } else if (!strcmp(name, "--k0")) {
            if (parse_size(val, &a->k0) || a->k0 > ((size_t)1 << 40))
                return bad_usage("--k0 must be a non-negative integer, not '%s'", val);
        } else if (!strcmp(name, "--init")) {
            const char *e2 = strchr(val, '=');
            char pname[64];
            if (!e2 || (size_t)(e2 - val) >= sizeof pname)
                return bad_usage("--init must be NAME=VALUE, not '%s'", val);
            memcpy(pname, val, (size_t)(e2 - val));
            pname[e2 - val] = '\0';
            int k = phys_index(pname);
            if (k < 0) return bad_usage("--init: unknown parameter '%s'", pname);
            if (parse_double(e2 + 1, &a->init[k]))
                return bad_usage("--init %s: bad value '%s'", pname, e2 + 1);
        }
    }
    if (!a->input) return bad_usage("no input file");
    if (!a->have_dt) return bad_usage("--dt SECONDS is required");
    if (!a->have_gap && a->mode == NLSQ_XPCS_LAMINAR)
        return bad_usage("--gap ANGSTROM is required (laminar mode)");
    if (a->mode == NLSQ_XPCS_STATIC)
        for (int k = 3; k < NLSQ_XPCS_N_PHYS; k++)
            if (!isnan(a->init[k]))
                return bad_usage("--init %s: the static model has no shear parameters",
                                 nlsq_xpcs_param_name((size_t)k));
    return 0;
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
    args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
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
