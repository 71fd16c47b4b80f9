/*
 * fit_xpcs_args.c - the command line of fit_xpcs (see fit_xpcs_args.h).
 *
 * Options take "--name value" or "--name=value".  No printing, no exit, no
 * allocation, no global state: safe to call from a fuzzer.
 */
#include "fit_xpcs_args.h"
#include "nlsq.h"        /* NLSQ_MAX_THREADS: the library's limits */
#include "nlsq_xpcs.h"   /* NLSQ_XPCS_Q_MIN ... */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const phys_names[FIT_XPCS_N_PHYS] = {
    "D0", "alpha", "D_offset", "gamma_dot_0", "beta", "gamma_dot_offset", "phi0"};

const char *fit_xpcs_usage_text(void)
{
    return
        "usage: fit_xpcs INPUT.h5 --gap ANGSTROM [--dt SECONDS] [--q Q|all] [--frames FIRST:LAST]\n"
        "                [--mode laminar|static] [--method lm|adam|hybrid]\n"
        "                [--triangle upper|full] [--threads N] [--json] [--output RESULT.h5]\n"
        "                [--save-fit] [--plot PREFIX] [--plot-angles I,J,...]\n"
        "                [--checkpoint FILE] [--checkpoint-every N] [--resume FILE]\n"
        "                [--sigma S] [--max-iter N] [--memory-budget MIB] [--include-diagonal]\n"
        "                [--init NAME=VALUE]... [--k0 K] [--progress] [--help]\n"
        "                [--errors default|robust] [--profile NAME[,NAME...]|physical]\n"
        "  NAME: D0 alpha D_offset gamma_dot_0 beta gamma_dot_offset phi0\n"
        "  --dt SECONDS          frame time; default: the one the file stores\n"
        "  --q Q|all             the q nearest Q, or every q in turn (a JSON array)\n"
        "  --config FILE.yaml    a homodyne configuration; the command line overrides it\n"
        "  --frames FIRST:LAST   inclusive frame window (FIRST: = to the end)\n"
        "  --output RESULT.h5    write the results to an HDF5 file (--save-fit: also\n"
        "                        the fitted c2 and the residuals per angle)\n"
        "  --plot PREFIX         PNG images PREFIX_angleK.png and PREFIX_g2.png\n"
        "  --plot-angles LIST    0-based angle indices (default: first, middle, last)\n"
        "  --checkpoint FILE     save the solver state every --checkpoint-every\n"
        "                        iterations (default 5)\n"
        "  --resume FILE         continue a killed fit (give the same input and options)\n"
        "  --errors default|robust  error bars: s^2 (J^T J)^-1 (default, independent\n"
        "                        errors) or the cluster-robust sandwich over frames\n"
        "  --profile NAMES       profile-likelihood intervals (comma-separated names,\n"
        "                        or 'physical' for all physical parameters)\n"
        "  exit: 0 converged, 1 not converged, 2 bad usage or bad input\n"
        "  see docs/xpcs.md\n";
}

int fit_xpcs_param_index(const char *name)
{
    if (!name) return -1;
    for (int k = 0; k < FIT_XPCS_N_PHYS; k++)
        if (strcmp(name, phys_names[k]) == 0) return k;
    return -1;
}

void fit_xpcs_args_free(fit_xpcs_args *a)
{
    (void)a; /* nothing is allocated */
}

/* One line into err: the message, " (try --help)", control characters (from
 * argv) replaced so that the line stays one line. */
static int usage_error(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int usage_error(char *err, size_t err_size, const char *fmt, ...)
{
    if (err && err_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < err_size)
            snprintf(err + n, err_size - (size_t)n, " (try --help)");
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    }
    return FIT_XPCS_ARGS_USAGE;
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

/* A number in [lo, hi]: the library's physical ranges (nlsq_xpcs.h). */
static int parse_in_range(const char *s, double lo, double hi, double *v)
{
    double x;
    if (parse_double(s, &x) || !(x >= lo && x <= hi)) return -1;
    *v = x;
    return 0;
}

static int range_error(char *err, size_t err_size, const char *flag, const char *unit, double lo,
                       double hi, const char *val)
{
    return usage_error(err, err_size, "%s must be a number of %s in [%g, %g], not '%.200s'", flag,
                       unit, lo, hi, val);
}

static int parse_size(const char *s, size_t *v)
{
    if (!s || !*s) return -1;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9') return -1;
    if (strlen(s) > 19) return -1;   /* beyond any sane count; avoids overflow */
    errno = 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || x > SIZE_MAX) return -1;
    *v = (size_t)x;
    return 0;
}

/* Copy s[0..n) into buf (size bsz); -1 when it does not fit. */
static int copy_prefix(char *buf, size_t bsz, const char *s, size_t n)
{
    if (n >= bsz) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

static int parse_plot_angles(const char *val, fit_xpcs_args *a, char *err, size_t err_size)
{
    size_t n = 0;
    const char *s = val;
    if (!*s) return usage_error(err, err_size, "--plot-angles needs a list of angle indices");
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char num[24];
        size_t v;
        if (copy_prefix(num, sizeof num, s, len) || parse_size(num, &v) || v > 1000000)
            return usage_error(err, err_size,
                               "--plot-angles must be comma-separated angle indices (0, 1, ...), not '%s'",
                               val);
        for (size_t k = 0; k < n; k++)
            if (a->plot_angles[k] == v)
                return usage_error(err, err_size, "--plot-angles: angle %zu is listed twice", v);
        if (n == FIT_XPCS_MAX_PLOT_ANGLES)
            return usage_error(err, err_size, "--plot-angles: at most %d angles",
                               FIT_XPCS_MAX_PLOT_ANGLES);
        a->plot_angles[n++] = v;
        if (!comma) break;
        s = comma + 1;
    }
    a->n_plot_angles = n;
    return 0;
}

/* --profile NAME[,NAME...] or --profile physical (all physical parameters). */
static int parse_profile(const char *val, fit_xpcs_args *a, char *err, size_t err_size)
{
    if (!strcmp(val, "physical")) {
        a->profile_mask = (1u << FIT_XPCS_N_PHYS) - 1;
        a->profile_physical = 1;
        return 0;
    }
    const char *s = val;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char nm[32];
        int k = copy_prefix(nm, sizeof nm, s, len) ? -1 : fit_xpcs_param_index(nm);
        if (k < 0)
            return usage_error(err, err_size, "--profile: '%.200s' is not a list of parameter "
                               "names (D0 alpha D_offset gamma_dot_0 beta gamma_dot_offset phi0) "
                               "or 'physical'", val);
        a->profile_mask |= 1u << k;
        if (!comma) return 0;
        s = comma + 1;
    }
}

/* --errors and --profile. */
static int parse_uncertainty_option(const char *name, const char *val, fit_xpcs_args *a,
                                    char *err, size_t err_size)
{
    if (!strcmp(name, "--errors")) {
        if (!strcmp(val, "default")) a->errors = FIT_XPCS_ERRORS_DEFAULT;
        else if (!strcmp(val, "robust")) a->errors = FIT_XPCS_ERRORS_ROBUST;
        else return usage_error(err, err_size, "--errors must be default or robust, not '%.200s'",
                                val);
        return 0;
    }
    if (!strcmp(name, "--profile")) return parse_profile(val, a, err, err_size);
    return 0;
}

int fit_xpcs_parse_args(int argc, char **argv, fit_xpcs_args *a, char *err, size_t err_size)
{
    if (err && err_size > 0) err[0] = '\0';
    if (!a) return usage_error(err, err_size, "internal error: no argument struct");
    memset(a, 0, sizeof *a);
    a->q = NAN;
    a->gap = NAN;
    a->last = SIZE_MAX;
    a->mode = 0;        /* laminar */
    a->triangle = 0;    /* upper */
    a->method = "lm";
    a->sigma = 0.01;
    a->max_iter = 0;   /* the library's default, NLSQ_ITER_AUTO */
    a->budget_mib = 256;
    a->checkpoint_every = 5;
    for (int k = 0; k < FIT_XPCS_N_PHYS; k++) a->init[k] = a->lower[k] = a->upper[k] = NAN;
    if (argc < 0 || (argc > 0 && !argv)) return usage_error(err, err_size, "no arguments");

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!arg) return usage_error(err, err_size, "missing argument %d", i);
        if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0) {
            if (arg[0] == '-' && arg[1] != '\0')
                return usage_error(err, err_size, "unknown option '%.200s'", arg);
            if (!*arg) return usage_error(err, err_size, "empty argument");
            if (a->input)
                return usage_error(err, err_size, "more than one input file ('%.200s', '%.200s')",
                                   a->input, arg);
            a->input = arg;
            continue;
        }
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        if (copy_prefix(name, sizeof name, arg, nl))
            return usage_error(err, err_size, "unknown option '%.60s...'", arg);
        if (eq) val = eq + 1;

        /* flags without a value */
        if (!strcmp(name, "--json") || !strcmp(name, "--include-diagonal") ||
            !strcmp(name, "--progress") || !strcmp(name, "--help") ||
            !strcmp(name, "--save-fit")) {
            if (val) return usage_error(err, err_size, "option %s takes no value", name);
            if (!strcmp(name, "--json")) a->json = 1;
            else if (!strcmp(name, "--include-diagonal")) a->include_diagonal = 1;
            else if (!strcmp(name, "--progress")) a->progress = 1;
            else if (!strcmp(name, "--save-fit")) a->save_fit = 1;
            else return FIT_XPCS_ARGS_HELP;
            continue;
        }
        static const char *const with_value[] = {
            "--dt", "--gap", "--q", "--frames", "--mode", "--method", "--triangle",
            "--threads", "--output", "--sigma", "--max-iter", "--memory-budget", "--init",
            "--k0", "--checkpoint", "--checkpoint-every", "--resume", "--plot",
            "--plot-angles", "--errors", "--profile", "--config"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            if (!strcmp(name, with_value[k])) known = 1;
        if (!known) return usage_error(err, err_size, "unknown option '%s'", name);
        if (!val) {
            if (i + 1 >= argc || !argv[i + 1])
                return usage_error(err, err_size, "option %s needs a value", name);
            val = argv[++i];
        }

        if (!strcmp(name, "--config")) {
            if (!*val) return usage_error(err, err_size, "--config needs a YAML file name");
            a->config = val;
        } else if (!strcmp(name, "--dt")) {
            if (parse_in_range(val, NLSQ_XPCS_DT_MIN, NLSQ_XPCS_DT_MAX, &a->dt))
                return range_error(err, err_size, name, "seconds", NLSQ_XPCS_DT_MIN,
                                   NLSQ_XPCS_DT_MAX, val);
            a->have_dt = 1;
        } else if (!strcmp(name, "--gap")) {
            if (parse_in_range(val, NLSQ_XPCS_GAP_MIN, NLSQ_XPCS_GAP_MAX, &a->gap))
                return range_error(err, err_size, name, "Angstrom", NLSQ_XPCS_GAP_MIN,
                                   NLSQ_XPCS_GAP_MAX, val);
            a->have_gap = 1;
        } else if (!strcmp(name, "--q") && !strcmp(val, "all")) {
            a->q_all = 1;
            a->q = NAN;
        } else if (!strcmp(name, "--q")) {
            a->q_all = 0;
            if (parse_in_range(val, NLSQ_XPCS_Q_MIN, NLSQ_XPCS_Q_MAX, &a->q))
                return range_error(err, err_size, name, "1/Angstrom (or all)", NLSQ_XPCS_Q_MIN,
                                   NLSQ_XPCS_Q_MAX, val);
        } else if (!strcmp(name, "--frames")) {
            const char *colon = strchr(val, ':');
            char first[32];
            if (!colon || copy_prefix(first, sizeof first, val, (size_t)(colon - val)))
                return usage_error(err, err_size,
                                   "--frames must be FIRST:LAST (inclusive), not '%.200s'", val);
            if (parse_size(first, &a->first))
                return usage_error(err, err_size, "--frames: bad first frame in '%.200s'", val);
            if (colon[1] == '\0') a->last = SIZE_MAX;
            else if (parse_size(colon + 1, &a->last) || a->last == SIZE_MAX)
                return usage_error(err, err_size, "--frames: bad last frame in '%.200s'", val);
            if (a->last < a->first)
                return usage_error(err, err_size,
                                   "--frames: last frame before the first in '%.200s'", val);
            a->have_frames = 1;
        } else if (!strcmp(name, "--mode")) {
            a->have_mode = 1;
            if (!strcmp(val, "laminar")) a->mode = 0;
            else if (!strcmp(val, "static")) a->mode = 1;
            else return usage_error(err, err_size,
                                    "--mode must be laminar or static, not '%.200s'", val);
        } else if (!strcmp(name, "--method")) {
            if (!strcmp(val, "lm")) a->method = "lm";
            else if (!strcmp(val, "adam")) a->method = "adam";
            else if (!strcmp(val, "hybrid")) a->method = "hybrid";
            else return usage_error(err, err_size,
                                    "--method must be lm, adam or hybrid, not '%.200s'", val);
        } else if (!strcmp(name, "--triangle")) {
            if (!strcmp(val, "upper")) a->triangle = 0;
            else if (!strcmp(val, "full")) a->triangle = 1;
            else return usage_error(err, err_size,
                                    "--triangle must be upper or full, not '%.200s'", val);
        } else if (!strcmp(name, "--threads")) {
            size_t t;
            if (parse_size(val, &t) || t > NLSQ_MAX_THREADS)   /* the library's limit */
                return usage_error(err, err_size,
                                   "--threads must be an integer 0..%d (0 = all cores), not '%.200s'",
                                   NLSQ_MAX_THREADS, val);
            a->n_threads = (int)t;
        } else if (!strcmp(name, "--output")) {
            if (!*val) return usage_error(err, err_size, "--output needs a file name");
            a->output = val;
        } else if (!strcmp(name, "--sigma")) {
            if (parse_in_range(val, NLSQ_XPCS_SIGMA_MIN, NLSQ_XPCS_SIGMA_MAX, &a->sigma))
                return range_error(err, err_size, name, "(data units)", NLSQ_XPCS_SIGMA_MIN,
                                   NLSQ_XPCS_SIGMA_MAX, val);
        } else if (!strcmp(name, "--max-iter")) {
            if (parse_size(val, &a->max_iter) || a->max_iter == 0 || a->max_iter > 100000000)
                return usage_error(err, err_size,
                                   "--max-iter must be a positive integer, not '%.200s'", val);
        } else if (!strcmp(name, "--memory-budget")) {
            if (parse_double(val, &a->budget_mib) || a->budget_mib < 0 || a->budget_mib > 1e9)
                return usage_error(err, err_size,
                                   "--memory-budget must be a number of MiB >= 0, not '%.200s'", val);
        } else if (!strcmp(name, "--k0")) {
            if (parse_size(val, &a->k0) || a->k0 > ((size_t)1 << 40))
                return usage_error(err, err_size,
                                   "--k0 must be a non-negative integer, not '%.200s'", val);
        } else if (!strcmp(name, "--init")) {
            const char *e2 = strchr(val, '=');
            char pname[64];
            if (!e2 || copy_prefix(pname, sizeof pname, val, (size_t)(e2 - val)))
                return usage_error(err, err_size, "--init must be NAME=VALUE, not '%.200s'", val);
            int k = fit_xpcs_param_index(pname);
            if (k < 0) return usage_error(err, err_size, "--init: unknown parameter '%s'", pname);
            if (parse_double(e2 + 1, &a->init[k]))
                return usage_error(err, err_size, "--init %s: bad value '%.200s'", pname, e2 + 1);
        } else if (!strcmp(name, "--checkpoint")) {
            if (!*val) return usage_error(err, err_size, "--checkpoint needs a file name");
            a->checkpoint = val;
        } else if (!strcmp(name, "--checkpoint-every")) {
            if (parse_size(val, &a->checkpoint_every) || a->checkpoint_every == 0 ||
                a->checkpoint_every > 100000000)
                return usage_error(err, err_size,
                                   "--checkpoint-every must be a positive integer, not '%.200s'", val);
            a->have_checkpoint_every = 1;
        } else if (!strcmp(name, "--resume")) {
            if (!*val) return usage_error(err, err_size, "--resume needs a file name");
            a->resume = val;
        } else if (!strcmp(name, "--plot")) {
            if (!*val) return usage_error(err, err_size, "--plot needs a file name prefix");
            a->plot = val;
        } else if (!strcmp(name, "--plot-angles")) {
            int rc = parse_plot_angles(val, a, err, err_size);
            if (rc) return rc;
        } else {
            int rc = parse_uncertainty_option(name, val, a, err, err_size);
            if (rc) return rc;
        }
    }
    /* with --config the file fills what the command line left out first */
    return a->config ? FIT_XPCS_ARGS_OK : fit_xpcs_args_check(a, err, err_size);
}

int fit_xpcs_args_check(fit_xpcs_args *a, char *err, size_t err_size)
{
    if (!a->input) return usage_error(err, err_size, "no input file");
    if (!a->have_gap && a->mode == 0)
        return usage_error(err, err_size, "--gap ANGSTROM is required (laminar mode)");
    if (a->mode == 1)
        for (int k = 3; k < FIT_XPCS_N_PHYS; k++)
            if (!isnan(a->init[k]))
                return usage_error(err, err_size,
                                   "--init %s: the static model has no shear parameters",
                                   phys_names[k]);
    if (a->mode == 1 && a->profile_physical) a->profile_mask &= 7u;
    if (a->mode == 1 && (a->profile_mask & ~7u))
        return usage_error(err, err_size, "--profile: the static model has no shear parameters");
    if (a->q_all && (a->plot || a->checkpoint || a->resume))
        return usage_error(err, err_size, "--q all fits several q: it takes no %s",
                           a->plot ? "--plot" : a->checkpoint ? "--checkpoint" : "--resume");
    if (a->save_fit && !a->output)
        return usage_error(err, err_size, "--save-fit needs --output RESULT.h5");
    if (a->n_plot_angles && !a->plot)
        return usage_error(err, err_size, "--plot-angles needs --plot PREFIX");
    if (a->have_checkpoint_every && !a->checkpoint)
        return usage_error(err, err_size, "--checkpoint-every needs --checkpoint FILE");
    return FIT_XPCS_ARGS_OK;
}
