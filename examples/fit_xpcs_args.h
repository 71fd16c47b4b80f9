/*
 * fit_xpcs_args.h - command-line parsing of fit_xpcs, split out of the
 * command so that it can be tested and fuzzed on its own.
 *
 * Every option is listed once, in the table of fit_xpcs_args.c: its value,
 * its help line and what it sets; the parser and the --help text read it.
 *
 * fit_xpcs_parse_args() is pure: it does not print, exit, allocate or keep
 * any state; `out` holds pointers into argv (which must outlive it) and
 * fixed-size arrays.  fit_xpcs_args_free() exists for symmetry and future
 * use; it is a no-op today and may be called on any parsed (or zeroed)
 * struct.
 *
 * Return value:
 *   FIT_XPCS_ARGS_OK    (0) parsed; *out is complete and consistent
 *   FIT_XPCS_ARGS_HELP  (1) --help was given (before any error): the caller
 *                           prints fit_xpcs_usage() and exits 0
 *   FIT_XPCS_ARGS_USAGE (2) bad command line: err holds one line (no newline,
 *                           control characters replaced by '?', ends with
 *                           " (try --help)"), truncated to err_size - 1.
 * err may be NULL or err_size 0.
 */
#ifndef FIT_XPCS_ARGS_H
#define FIT_XPCS_ARGS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FIT_XPCS_ARGS_OK 0
#define FIT_XPCS_ARGS_HELP 1
#define FIT_XPCS_ARGS_USAGE 2

#define FIT_XPCS_N_PHYS 7             /* = NLSQ_XPCS_N_PHYS */
#define FIT_XPCS_MAX_PLOT_ANGLES 64   /* entries in --plot-angles */
#define FIT_XPCS_MAX_PHI_RANGES 64    /* phi_filtering.target_ranges of --config */

typedef struct fit_xpcs_args {
    const char *input;          /* INPUT.h5 (required) */
    double dt;                  /* --dt SECONDS (> 0); default: the file's */
    double gap;                 /* --gap ANGSTROM (> 0; required in laminar mode) */
    double q;                   /* --q Q (1/A, > 0); NAN = the file's only q */
    int q_all;                  /* --q all: every q of the file in turn */
    int have_dt, have_gap;
    size_t first, last;         /* --frames FIRST:LAST inclusive; last = SIZE_MAX: to the end */
    int have_frames;
    int mode;                   /* nlsq_xpcs_mode: 0 laminar, 1 static */
    int triangle;               /* nlsq_xpcs_triangle: 0 upper, 1 full */
    int include_diagonal;       /* --include-diagonal */
    const char *method;         /* "lm", "adam" or "hybrid" (static string or argv) */
    int n_threads;              /* --threads N (0 = all cores) */
    int json;                   /* --json */
    const char *output;         /* --output RESULT.h5, or NULL */
    int save_fit;               /* --save-fit (needs --output) */
    double sigma;               /* --sigma S (> 0), default 0.01 */
    size_t max_iter;            /* --max-iter N (> 0); 0: the library default, 100 (p + 1) */
    double budget_mib;          /* --memory-budget MIB (>= 0), default 256 */
    double init[FIT_XPCS_N_PHYS]; /* --init NAME=VALUE; NAN = default */
    size_t k0;                  /* --k0 K */
    int progress;               /* --progress */
    const char *checkpoint;     /* --checkpoint FILE, or NULL */
    size_t checkpoint_every;    /* --checkpoint-every N (> 0), default 5 */
    int have_checkpoint_every;
    const char *resume;         /* --resume FILE, or NULL */
    const char *plot;           /* --plot PREFIX, or NULL */
    size_t n_plot_angles;       /* 0 = default (first, middle, last angle) */
    size_t plot_angles[FIT_XPCS_MAX_PLOT_ANGLES]; /* --plot-angles LIST (0-based, distinct) */
    /* uncertainties (docs/uncertainties.md) */
    int errors;                 /* --errors: FIT_XPCS_ERRORS_DEFAULT or _ROBUST */
    unsigned profile_mask;      /* --profile NAME[,NAME...] | physical: bit k = physical
                                   parameter k gets a profile-likelihood interval */
    int profile_physical;       /* --profile physical (static mode: the 3 it fits) */
    int profile_undetermined;   /* --profile undetermined: also every physical parameter
                                   the fit flags undetermined (xpcs_profile_selection) */
    double profile_level;       /* --profile-level K: K-sigma intervals, delta chi2 = K^2 (1) */
    size_t boot;                /* --boot B: wild-bootstrap replicates; with --profile each
                                   end's threshold from them at its held point (a test
                                   inversion); 0 = off (--test: 100) */
    double test[FIT_XPCS_N_PHYS]; /* --test NAME=VALUE: H0 NAME = VALUE; NAN = none */
    int start;                  /* --start: FIT_XPCS_START_AUTO (default), _LOCAL or _GLOBAL */
    /* --config FILE.yaml (xpcs_config.c): a homodyne configuration fills what
     * the command line leaves out; these come from it only */
    const char *config;
    int have_mode;              /* --mode given */
    double lower[FIT_XPCS_N_PHYS], upper[FIT_XPCS_N_PHYS]; /* bounds; NAN = default;
                                   lower == upper: the parameter is held */
    size_t n_phi_ranges;        /* phi_filtering.target_ranges: fit only these angles */
    double phi_ranges[FIT_XPCS_MAX_PHI_RANGES][2];   /* [min, max] degrees */
} fit_xpcs_args;

#define FIT_XPCS_ERRORS_DEFAULT 0   /* s^2 (J^T J)^-1: independent errors */
#define FIT_XPCS_ERRORS_ROBUST 1    /* cluster-robust sandwich over frames */
#define FIT_XPCS_START_AUTO 0       /* global when an --init value is given, else local */
#define FIT_XPCS_START_LOCAL 1      /* the fit from the --init values only */
#define FIT_XPCS_START_GLOBAL 2     /* nlsq_xpcs_global_start, then the fit */

int fit_xpcs_parse_args(int argc, char **argv, fit_xpcs_args *out, char *err, size_t err_size);
/** The checks across options (input given, --gap in laminar mode, ...), run by
 *  fit_xpcs_parse_args unless --config was given: then the caller runs them
 *  once the configuration has filled in.  FIT_XPCS_ARGS_OK or _USAGE. */
int fit_xpcs_args_check(fit_xpcs_args *a, char *err, size_t err_size);
void fit_xpcs_args_free(fit_xpcs_args *a);

/** The --help text (several lines, ends with a newline), generated from the
 *  option table of fit_xpcs_args.c, written into buf like snprintf: at most
 *  size bytes with the NUL; returns the full length (buf may be NULL with
 *  size 0 to learn it). */
size_t fit_xpcs_usage(char *buf, size_t size);

/** Index of a physical parameter name (D0 alpha D_offset gamma_dot_0 beta
 *  gamma_dot_offset phi0), or -1. */
int fit_xpcs_param_index(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* FIT_XPCS_ARGS_H */
