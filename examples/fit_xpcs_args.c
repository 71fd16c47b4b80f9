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
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const phys_names[FIT_XPCS_N_PHYS] = {
    "D0", "alpha", "D_offset", "gamma_dot_0", "beta", "gamma_dot_offset", "phi0"};

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

/* val = HEAD SEP TAIL: HEAD into buf (size bsz); returns TAIL, or NULL when
 * there is no SEP or HEAD does not fit. */
static const char *split_at(const char *val, char sep, char *buf, size_t bsz)
{
    const char *at = strchr(val, sep);
    if (!at || copy_prefix(buf, bsz, val, (size_t)(at - val))) return NULL;
    return at + 1;
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

/* --profile ITEM[,ITEM...]: each item a physical parameter's name,
 * 'physical' (all of them) or 'undetermined' (those the fit flags
 * undetermined: chosen after the fit, xpcs_profile_selection). */
static int parse_profile(const char *val, fit_xpcs_args *a, char *err, size_t err_size)
{
    const char *s = val;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char nm[32];
        if (copy_prefix(nm, sizeof nm, s, len)) nm[0] = '\0';   /* too long: no name */
        int k = fit_xpcs_param_index(nm);
        if (k < 0 && !strcmp(nm, "physical")) {
            a->profile_mask = (1u << FIT_XPCS_N_PHYS) - 1;
            a->profile_physical = 1;
        } else if (k < 0 && !strcmp(nm, "undetermined")) {
            a->profile_undetermined = 1;
        } else if (k < 0) {
            return usage_error(err, err_size, "--profile: '%.200s' is not a list of parameter "
                               "names (D0 alpha D_offset gamma_dot_0 beta gamma_dot_offset phi0), "
                               "'physical' or 'undetermined'", val);
        } else {
            a->profile_mask |= 1u << k;
        }
        if (!comma) return 0;
        s = comma + 1;
    }
}

/* ------------------------------------------------------------------------ */
/* The option table: every option once, with its value, its help line and   */
/* what it sets.  The parser and the --help text both read it.             */
/* ------------------------------------------------------------------------ */

typedef enum opt_kind {
    OPT_FLAG,     /* no value: int field = 1 */
    OPT_HELP,     /* no value: FIT_XPCS_ARGS_HELP */
    OPT_NAME,     /* a non-empty string (a file name): const char * field */
    OPT_RANGE,    /* a number in the library's range [lo, hi] of unit `what`: double field */
    OPT_REAL,     /* a number in [lo, hi], described by `what`: double field */
    OPT_COUNT,    /* an integer in [lo, hi], described by `what`: size_t field */
    OPT_CHOICE,   /* one of the words of `what` ("a|b|c"): int field = its index */
    OPT_CUSTOM    /* the handler fn */
} opt_kind;

#define NO_FIELD ((size_t)-1)

typedef struct opt_def opt_def;
typedef int (*opt_fn)(const opt_def *o, const char *val, fit_xpcs_args *a, char *err,
                      size_t err_size);

struct opt_def {
    const char *name;      /* "--dt" */
    const char *metavar;   /* "SECONDS"; NULL: takes no value */
    const char *help;      /* the --help line ('\n': a continuation line) */
    opt_kind kind;
    size_t field;          /* offsetof the target in fit_xpcs_args */
    size_t have;           /* offsetof an int set to 1 when given, or NO_FIELD */
    double lo, hi;         /* OPT_RANGE, OPT_REAL, OPT_COUNT */
    const char *what;      /* unit, description, choices or "needs" text (per kind) */
    opt_fn fn;             /* OPT_CUSTOM */
};

static void *field_of(fit_xpcs_args *a, size_t off)
{
    return (char *)a + off;
}

/* "a|b|c": the index of val among the words, or -1. */
static int choice_index(const char *choices, const char *val)
{
    int k = 0;
    for (const char *s = choices;; k++) {
        const char *bar = strchr(s, '|');
        size_t len = bar ? (size_t)(bar - s) : strlen(s);
        if (strlen(val) == len && !strncmp(s, val, len)) return k;
        if (!bar) return -1;
        s = bar + 1;
    }
}

/* "--mode must be laminar or static, not 'x'" from "laminar|static". */
static int choice_error(const opt_def *o, const char *val, char *err, size_t err_size)
{
    char list[128] = "";
    size_t n = 0;
    for (const char *s = o->what; *s && n + 8 < sizeof list; s++) {
        if (*s != '|') { list[n++] = *s; continue; }
        const char *sep = strchr(s + 1, '|') ? ", " : " or ";
        n += (size_t)snprintf(list + n, sizeof list - n, "%s", sep);
    }
    list[n] = '\0';
    return usage_error(err, err_size, "%s must be %s, not '%.200s'", o->name, list, val);
}

static int opt_q(const opt_def *o, const char *val, fit_xpcs_args *a, char *err, size_t es)
{
    a->q_all = !strcmp(val, "all");
    a->q = NAN;
    if (a->q_all) return 0;
    if (parse_in_range(val, o->lo, o->hi, &a->q))
        return range_error(err, es, o->name, o->what, o->lo, o->hi, val);
    return 0;
}

static int opt_frames(const opt_def *o, const char *val, fit_xpcs_args *a, char *err, size_t es)
{
    (void)o;
    char first[32];
    const char *last = split_at(val, ':', first, sizeof first);
    if (!last)
        return usage_error(err, es, "--frames must be FIRST:LAST (inclusive), not '%.200s'", val);
    if (parse_size(first, &a->first))
        return usage_error(err, es, "--frames: bad first frame in '%.200s'", val);
    if (*last == '\0') a->last = SIZE_MAX;
    else if (parse_size(last, &a->last) || a->last == SIZE_MAX)
        return usage_error(err, es, "--frames: bad last frame in '%.200s'", val);
    if (a->last < a->first)
        return usage_error(err, es, "--frames: last frame before the first in '%.200s'", val);
    a->have_frames = 1;
    return 0;
}

static int opt_method(const opt_def *o, const char *val, fit_xpcs_args *a, char *err, size_t es)
{
    static const char *const names[] = {"lm", "adam", "hybrid"};
    int k = choice_index(o->what, val);
    if (k < 0) return choice_error(o, val, err, es);
    a->method = names[k];
    return 0;
}

static int opt_threads(const opt_def *o, const char *val, fit_xpcs_args *a, char *err, size_t es)
{
    size_t t;
    if (parse_size(val, &t) || t > NLSQ_MAX_THREADS)   /* the library's limit */
        return usage_error(err, es, "%s must be an integer 0..%d (0 = all cores), not '%.200s'",
                           o->name, NLSQ_MAX_THREADS, val);
    a->n_threads = (int)t;
    return 0;
}

/* --init / --test NAME=VALUE: a physical parameter's value into init or test. */
static int opt_init(const opt_def *o, const char *val, fit_xpcs_args *a, char *err, size_t es)
{
    char pname[64];
    const char *value = split_at(val, '=', pname, sizeof pname);
    if (!value) return usage_error(err, es, "%s must be NAME=VALUE, not '%.200s'", o->name, val);
    int k = fit_xpcs_param_index(pname);
    if (k < 0) return usage_error(err, es, "%s: unknown parameter '%s'", o->name, pname);
    double *dst = field_of(a, o->field);   /* init or test: FIT_XPCS_N_PHYS values */
    if (parse_double(value, &dst[k]) || !isfinite(dst[k]))
        return usage_error(err, es, "%s %s: bad value '%.200s'", o->name, pname, value);
    return 0;
}

static int opt_plot_angles(const opt_def *o, const char *val, fit_xpcs_args *a, char *err,
                           size_t es)
{
    (void)o;
    return parse_plot_angles(val, a, err, es);
}

static int opt_profile(const opt_def *o, const char *val, fit_xpcs_args *a, char *err, size_t es)
{
    (void)o;
    return parse_profile(val, a, err, es);
}

#define F(member) offsetof(fit_xpcs_args, member)
#define PHYS(lo, hi, unit) lo, hi, unit, NULL

static const opt_def options[] = {
    {"--config", "FILE.yaml", "a homodyne configuration; the command line overrides it",
     OPT_NAME, F(config), NO_FIELD, 0, 0, "a YAML file name", NULL},
    {"--gap", "ANGSTROM", "the gap L (required in laminar mode)", OPT_RANGE, F(gap), F(have_gap),
     PHYS(NLSQ_XPCS_GAP_MIN, NLSQ_XPCS_GAP_MAX, "Angstrom")},
    {"--dt", "SECONDS", "frame time; default: the one the file stores", OPT_RANGE, F(dt),
     F(have_dt), PHYS(NLSQ_XPCS_DT_MIN, NLSQ_XPCS_DT_MAX, "seconds")},
    {"--q", "Q|all", "the q nearest Q, or every q in turn (a JSON array)", OPT_CUSTOM, 0,
     NO_FIELD, NLSQ_XPCS_Q_MIN, NLSQ_XPCS_Q_MAX, "1/Angstrom (or all)", opt_q},
    {"--frames", "FIRST:LAST", "inclusive frame window (FIRST: = to the end)", OPT_CUSTOM, 0,
     NO_FIELD, 0, 0, NULL, opt_frames},
    {"--mode", "laminar|static", "the model (default laminar)", OPT_CHOICE, F(mode), F(have_mode),
     0, 0, "laminar|static", NULL},
    {"--method", "lm|adam|hybrid", "the solver (default lm)", OPT_CUSTOM, 0, NO_FIELD, 0, 0,
     "lm|adam|hybrid", opt_method},
    {"--triangle", "upper|full", "which entries are rows of the fit (default upper)", OPT_CHOICE,
     F(triangle), NO_FIELD, 0, 0, "upper|full", NULL},
    {"--include-diagonal", NULL, "also fit the diagonal", OPT_FLAG, F(include_diagonal),
     NO_FIELD, 0, 0, NULL, NULL},
    {"--threads", "N", "worker threads (0 = all cores)", OPT_CUSTOM, 0, NO_FIELD, 0, 0, NULL,
     opt_threads},
    {"--json", NULL, "one JSON object on stdout instead of the table", OPT_FLAG, F(json),
     NO_FIELD, 0, 0, NULL, NULL},
    {"--output", "RESULT.h5", "write the results to an HDF5 file", OPT_NAME, F(output), NO_FIELD,
     0, 0, "a file name", NULL},
    {"--save-fit", NULL, "with --output: also the fitted c2 and the residuals per angle",
     OPT_FLAG, F(save_fit), NO_FIELD, 0, 0, NULL, NULL},
    {"--plot", "PREFIX", "PNG images PREFIX_angleK.png and PREFIX_g2.png", OPT_NAME, F(plot),
     NO_FIELD, 0, 0, "a file name prefix", NULL},
    {"--plot-angles", "I,J,...", "0-based angle indices (default: first, middle, last)",
     OPT_CUSTOM, 0, NO_FIELD, 0, 0, NULL, opt_plot_angles},
    {"--checkpoint", "FILE", "save the solver state every --checkpoint-every iterations",
     OPT_NAME, F(checkpoint), NO_FIELD, 0, 0, "a file name", NULL},
    {"--checkpoint-every", "N", "with --checkpoint (default 5)", OPT_COUNT, F(checkpoint_every),
     F(have_checkpoint_every), 1, 100000000, "a positive integer", NULL},
    {"--resume", "FILE", "continue a killed fit (give the same input and options)", OPT_NAME,
     F(resume), NO_FIELD, 0, 0, "a file name", NULL},
    {"--sigma", "S", "residual scale (default 0.01)", OPT_RANGE, F(sigma), NO_FIELD,
     PHYS(NLSQ_XPCS_SIGMA_MIN, NLSQ_XPCS_SIGMA_MAX, "(data units)")},
    {"--max-iter", "N", "iteration limit (default: the library's)", OPT_COUNT, F(max_iter),
     NO_FIELD, 1, 100000000, "a positive integer", NULL},
    {"--memory-budget", "MIB", "memory to cache the data (default 256)", OPT_REAL,
     F(budget_mib), NO_FIELD, 0, 1e9, "a number of MiB >= 0", NULL},
    {"--init", "NAME=VALUE", "start value of a physical parameter (repeatable)", OPT_CUSTOM,
     F(init), NO_FIELD, 0, 0, NULL, opt_init},
    {"--k0", "K", "frame index of the file's frame 0 (default 0)", OPT_COUNT, F(k0), NO_FIELD, 0,
     (double)((size_t)1 << 40), "a non-negative integer", NULL},
    {"--errors", "default|robust", "error bars: s^2 (J^T J)^-1 (default, independent\n"
     "errors) or the cluster-robust sandwich over frames", OPT_CHOICE, F(errors), NO_FIELD, 0, 0,
     "default|robust", NULL},
    {"--profile", "NAMES", "profile-likelihood intervals (comma-separated names,\n"
     "'physical' for all physical parameters, 'undetermined' for\n"
     "those the fit flags undetermined: their only error bar)", OPT_CUSTOM, 0, NO_FIELD, 0, 0, NULL,
     opt_profile},
    {"--profile-level", "K", "--profile intervals of K sigma: delta chi2 = K^2 (default 1)",
     OPT_REAL, F(profile_level), NO_FIELD, 0.1, 10, "a number of sigmas in [0.1, 10]", NULL},
    {"--boot", "B", "wild-bootstrap replicates (frame clusters with --errors\n"
     "robust): --profile thresholds from B replicates at each end\n"
     "(a test inversion, for parameters the data barely determine;\n"
     "about 7 B solves per end and round); --test's distribution\n"
     "(default 0 = off; --test: 100)", OPT_COUNT, F(boot), NO_FIELD, 0, 100000,
     "0 or an integer in [10, 100000]", NULL},
    {"--test", "NAME=VALUE", "bootstrap test of NAME = VALUE after the fit: the\n"
     "profile statistic and its p-value (repeatable)", OPT_CUSTOM, F(test), NO_FIELD, 0, 0,
     NULL, opt_init},
    {"--start", "auto|local|global", "local: the fit from the --init values and the data's\n"
     "start; global: a coarse search on a row sample before the fit; auto (default):\n"
     "global when an --init value is given, else local", OPT_CHOICE, F(start), NO_FIELD, 0, 0,
     "auto|local|global", NULL},
    {"--progress", NULL, "one line per iteration on stderr", OPT_FLAG, F(progress), NO_FIELD, 0, 0,
     NULL, NULL},
    {"--help", NULL, "this text", OPT_HELP, 0, NO_FIELD, 0, 0, NULL, NULL},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

#undef F
#undef PHYS

static const opt_def *find_option(const char *name)
{
    for (size_t k = 0; k < N_OPTIONS; k++)
        if (!strcmp(name, options[k].name)) return &options[k];
    return NULL;
}

/* Apply option o with value val (o takes a value). */
static int apply_option(const opt_def *o, const char *val, fit_xpcs_args *a, char *err, size_t es)
{
    size_t z;
    int k;
    switch (o->kind) {
    case OPT_NAME:
        if (!*val) return usage_error(err, es, "%s needs %s", o->name, o->what);
        *(const char **)field_of(a, o->field) = val;
        break;
    case OPT_RANGE:
        if (parse_in_range(val, o->lo, o->hi, field_of(a, o->field)))
            return range_error(err, es, o->name, o->what, o->lo, o->hi, val);
        break;
    case OPT_REAL:
        if (parse_in_range(val, o->lo, o->hi, field_of(a, o->field)))
            return usage_error(err, es, "%s must be %s, not '%.200s'", o->name, o->what, val);
        break;
    case OPT_COUNT:
        if (parse_size(val, &z) || (double)z < o->lo || (double)z > o->hi)
            return usage_error(err, es, "%s must be %s, not '%.200s'", o->name, o->what, val);
        *(size_t *)field_of(a, o->field) = z;
        break;
    case OPT_CHOICE:
        if ((k = choice_index(o->what, val)) < 0) return choice_error(o, val, err, es);
        *(int *)field_of(a, o->field) = k;
        break;
    case OPT_CUSTOM:
        return o->fn(o, val, a, err, es);
    default:
        return usage_error(err, es, "internal error: option %s", o->name);
    }
    if (o->have != NO_FIELD) *(int *)field_of(a, o->have) = 1;
    return 0;
}

size_t fit_xpcs_usage(char *buf, size_t size)
{
    size_t n = 0;
#define PUT(...)                                                                   \
    do {                                                                           \
        int w_ = snprintf(buf ? buf + (n < size ? n : size) : NULL,                \
                          buf && n < size ? size - n : 0, __VA_ARGS__);            \
        if (w_ > 0) n += (size_t)w_;                                               \
    } while (0)
    PUT("usage: fit_xpcs INPUT.h5 --gap ANGSTROM [OPTION]...   (static mode: no --gap)\n");
    PUT("  options take --name VALUE or --name=VALUE\n");
    for (size_t k = 0; k < N_OPTIONS; k++) {
        const opt_def *o = &options[k];
        char head[48];
        snprintf(head, sizeof head, "%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        PUT("  %-22s", head);
        if (strlen(head) > 22) PUT("\n  %-22s", "");
        for (const char *h = o->help; *h;) {
            const char *nl = strchr(h, '\n');
            int len = nl ? (int)(nl - h) : (int)strlen(h);
            PUT(" %.*s\n", len, h);
            if (!nl) break;
            PUT("  %-22s", "");
            h = nl + 1;
        }
    }
    PUT("  NAME: D0 alpha D_offset gamma_dot_0 beta gamma_dot_offset phi0\n");
    PUT("  exit: 0 converged, 1 not converged, 2 bad usage or bad input\n");
    PUT("  see docs/xpcs.md\n");
#undef PUT
    return n;
}

static void set_defaults(fit_xpcs_args *a)
{
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
    a->profile_level = 1.0;
    a->checkpoint_every = 5;
    for (int k = 0; k < FIT_XPCS_N_PHYS; k++) a->init[k] = a->test[k] = a->lower[k] = a->upper[k] = NAN;
}

/* An argument that is not an option: the input file. */
static int take_input(const char *arg, fit_xpcs_args *a, char *err, size_t es)
{
    if (arg[0] == '-' && arg[1] != '\0')
        return usage_error(err, es, "unknown option '%.200s'", arg);
    if (!*arg) return usage_error(err, es, "empty argument");
    if (a->input)
        return usage_error(err, es, "more than one input file ('%.200s', '%.200s')", a->input,
                           arg);
    a->input = arg;
    return 0;
}

int fit_xpcs_parse_args(int argc, char **argv, fit_xpcs_args *a, char *err, size_t err_size)
{
    if (err && err_size > 0) err[0] = '\0';
    if (!a) return usage_error(err, err_size, "internal error: no argument struct");
    set_defaults(a);
    if (argc < 0 || (argc > 0 && !argv)) return usage_error(err, err_size, "no arguments");
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int rc;
        if (!arg) return usage_error(err, err_size, "missing argument %d", i);
        if (strncmp(arg, "--", 2) != 0 || strcmp(arg, "--") == 0) {
            if ((rc = take_input(arg, a, err, err_size))) return rc;
            continue;
        }
        char name[64];
        const char *eq = strchr(arg, '=');
        const char *val = eq ? eq + 1 : NULL;
        if (copy_prefix(name, sizeof name, arg, eq ? (size_t)(eq - arg) : strlen(arg)))
            return usage_error(err, err_size, "unknown option '%.60s...'", arg);
        const opt_def *o = find_option(name);
        if (!o) return usage_error(err, err_size, "unknown option '%s'", name);
        if (!o->metavar) {   /* a flag */
            if (val) return usage_error(err, err_size, "option %s takes no value", name);
            if (o->kind == OPT_HELP) return FIT_XPCS_ARGS_HELP;
            *(int *)field_of(a, o->field) = 1;
            continue;
        }
        if (!val) {
            if (i + 1 >= argc || !argv[i + 1])
                return usage_error(err, err_size, "option %s needs a value", name);
            val = argv[++i];
        }
        if ((rc = apply_option(o, val, a, err, err_size))) return rc;
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
    int tests = 0;
    for (int k = 0; k < FIT_XPCS_N_PHYS; k++) {
        if (isnan(a->test[k])) continue;
        if (a->mode == 1 && k >= 3)
            return usage_error(err, err_size, "--test %s: the static model has no shear "
                               "parameters", phys_names[k]);
        tests++;
    }
    if (a->boot > 0 && a->boot < 10)
        return usage_error(err, err_size, "--boot must be 0 or an integer in [10, 100000], "
                           "not %zu", a->boot);
    if (a->boot && !a->profile_mask && !a->profile_undetermined && !tests)
        return usage_error(err, err_size, "--boot needs --profile NAMES or --test NAME=VALUE");
    if (a->save_fit && !a->output)
        return usage_error(err, err_size, "--save-fit needs --output RESULT.h5");
    if (a->n_plot_angles && !a->plot)
        return usage_error(err, err_size, "--plot-angles needs --plot PREFIX");
    if (a->have_checkpoint_every && !a->checkpoint)
        return usage_error(err, err_size, "--checkpoint-every needs --checkpoint FILE");
    return FIT_XPCS_ARGS_OK;
}
