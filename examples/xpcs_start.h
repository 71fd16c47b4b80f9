/*
 * xpcs_start.h - fit_xpcs's start stage (--start global|local).
 *
 * global (the default): nlsq_xpcs_global_start (a coarse search over the
 * physical parameters on a row sample, LM from the best candidates, the
 * --init values and the data-driven start among them), and a warning line
 * when two minima fit equally well (docs/xpcs.md, docs/uncertainties.md);
 * the line about the stage goes to the message stream only with --progress
 * (an error must stay one line on stderr): the table and the JSON always
 * carry it.  local: the backend's start (nlsq_xpcs_start: the --init
 * values, D0 and gamma_dot_0 from the data unless given).
 */
#ifndef XPCS_START_H
#define XPCS_START_H

#include <stdio.h>

#include "fit_xpcs_args.h"
#include "nlsq_xpcs.h"

/** The start point x (n_params values) for the fit, after the backend's
 *  (nlsq_xpcs_start) is in x: kept with --start local or --resume, else
 *  replaced by the global stage's.  g: filled when the global stage ran
 *  (*ran = 1).  Returns the library's status (0 or < 0). */
int xpcs_start_stage(nlsq_xpcs_model *m, const fit_xpcs_args *a, double *x, FILE *msgs,
               nlsq_xpcs_global_result *g, int *ran);

/** After the fit (when the global stage ran): the fitted point's phi0 mirror
 *  checked on the stage's sample (nlsq_xpcs_mirror_check); when it fits as
 *  well, g carries that ambiguity (JSON, table) and a warning line goes to
 *  msgs (unless the stage's own warning said it).  err: the fit's standard
 *  errors. */
void xpcs_start_check(nlsq_xpcs_model *m, const fit_xpcs_args *a, const double *x,
                      const double *err, FILE *msgs, nlsq_xpcs_global_result *g, int ran);

#endif
