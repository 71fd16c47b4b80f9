/*
 * xpcs_output.h - what fit_xpcs reports: the readable table, the JSON object,
 * the HDF5 result file (--output; its fitted c2 rows come from the
 * library's nlsq_xpcs_g2_rows).
 *
 * These belong to the command, not to the XPCS library: the library reads
 * data and builds the problem; how a fit is reported is the command's
 * business (and the HDF5 result layout is documented in docs/xpcs.md).
 */
#ifndef XPCS_OUTPUT_H
#define XPCS_OUTPUT_H

#include <stdio.h>

#include "fit_xpcs_args.h"
#include "nlsq.h"
#include "nlsq_xpcs.h"
#include "xpcs_uncertainty.h"

/** Everything known about one finished fit. */
typedef struct xpcs_report {
    const fit_xpcs_args *args;          /* the command line */
    nlsq_xpcs_file *file;               /* the open input (for --save-fit / plots) */
    const nlsq_xpcs_selection *sel;     /* q, angles, frame window */
    const nlsq_xpcs_config *cfg;        /* model configuration used (cfg->dt: the dt fitted) */
    const char *dt_source;              /* where cfg->dt came from (one line) */
    size_t p;                           /* parameters in the fit vector */
    size_t np;                          /* physical parameters fitted: 7 or 3 (static) */
    size_t P;                           /* angles */
    size_t N;                           /* frames in the window */
    const double *x;                    /* p values: physical, then contrast_k, offset_k */
    const double *err;                  /* p 1-sigma errors, NAN = undetermined */
    const double *cov;                  /* p x p covariance scaled to dof, or NULL */
    int status;                         /* nlsq status */
    const char *message;                /* one line */
    double cost, reduced_chi2, dof, seconds;
    size_t n_rows, n_excluded, iterations;
    size_t n_eval, n_jac;               /* full passes without / with Jacobian */
    size_t n_phases;                    /* per solver phase (Adam, LM): res.phases */
    nlsq_phase_stats phases[3];
    int have_truth;                     /* the file carries the synthetic truth */
    double truth_phys[NLSQ_XPCS_N_PHYS];
    const double *truth_contrast;       /* P values in selection order (or NULL) */
    const double *truth_offset;
    /* uncertainties (docs/uncertainties.md) */
    const unsigned *flags;              /* p nlsq_param_flag bits, or NULL (no covariance) */
    const nlsq_interval *intervals;     /* p profile intervals (n_solves 0: not computed), or NULL */
    const xpcs_test *tests;             /* np --test results (done 0: none), or NULL */
    const nlsq_xpcs_global_result *global; /* the global start stage, or NULL (--start local) */
} xpcs_report;

/** Value of physical parameter k (k < 7) in the report: fitted, or 0 when fixed
 *  (static mode, shear parameters). */
double xpcs_report_phys(const xpcs_report *r, size_t k);
/** Its error: fitted error (NAN = undetermined) or 0 when fixed. */
double xpcs_report_phys_err(const xpcs_report *r, size_t k);

/** Rows per block when streaming the N x N matrix of one angle: about
 *  `doubles` float64 values per block, 1 to 64 rows, at most N. */
size_t xpcs_row_block(size_t N, size_t doubles);
/** Rows i0 .. i0+nr-1 of angle a of the report's input into data (nr x N);
 *  0, or -1 with "WHAT: the reader's reason" in err. */
int xpcs_report_read_rows(const xpcs_report *r, size_t a, size_t i0, size_t nr, double *data,
                          const char *what, char *err, size_t err_size);

void xpcs_print_table(FILE *fp, const xpcs_report *r);
void xpcs_print_json(FILE *fp, const xpcs_report *r);

/** Write the HDF5 result file (layout in docs/xpcs.md) to a temporary name
 *  next to path, then rename it.  save_fit: also /fit/c2_fit and
 *  /fit/c2_residual, computed row block by row block.  0, or nonzero with one
 *  line in err. */
/** The same, step by step, for several fits in one file (fit_xpcs --q all):
 *  open a temporary next to path; add a report at the root (group NULL) or
 *  in a new group; close: commit (rename over path) or, commit 0, discard.
 *  0, or nonzero with one line in err. */
typedef struct xpcs_result_file {
    const char *path;
    char *tmp;
    int64_t fid;        /* hid_t */
} xpcs_result_file;
int xpcs_result_open(xpcs_result_file *rf, const char *path, char *err, size_t err_size);
int xpcs_result_add(xpcs_result_file *rf, const char *group, const xpcs_report *r, int save_fit,
                    char *err, size_t err_size);
int xpcs_result_close(xpcs_result_file *rf, int commit, char *err, size_t err_size);
/** One JSON object, no newline (xpcs_print_json adds one). */
void xpcs_print_json_object(FILE *fp, const xpcs_report *r);

int xpcs_write_result(const char *path, const xpcs_report *r, int save_fit,
                      char *err, size_t err_size);

#endif /* XPCS_OUTPUT_H */
