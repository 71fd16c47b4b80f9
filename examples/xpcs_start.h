/*
 * xpcs_start.h - fit_xpcs's start stage (--start auto|local|global).
 *
 * global: nlsq_xpcs_global_start (a coarse search over the physical
 * parameters on a row sample, LM on the sample from the best candidates and
 * the --init values), and a warning line when two minima fit equally well
 * (docs/xpcs.md); the line about the stage goes to the message stream only
 * with --progress (an error must stay one line on stderr): the table and the
 * JSON always carry it.  local: the backend's start (nlsq_xpcs_start: the
 * --init values, D0 and gamma_dot_0 from the data unless given).  auto (the
 * default): global when an --init value is given (a guess that may lie in
 * another basin), else local (the data-driven start: on the 23M benchmark
 * its fit takes 4 iterations).  After the fit, except with local, the
 * fitted phi0's mirror is checked (nlsq_xpcs_mirror_check).
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

/** After the fit (not with --start local): the fitted point's phi0 mirror
 *  checked on the stage's sample rows (nlsq_xpcs_mirror_check); when it fits
 *  as well, g carries that ambiguity (JSON, table; n_grid 0 when the stage
 *  did not run) and a warning line goes to msgs (unless the stage's own
 *  warning said it).  err: the fit's standard errors. */
void xpcs_start_check(nlsq_xpcs_model *m, const fit_xpcs_args *a, const double *x,
                      const double *err, FILE *msgs, nlsq_xpcs_global_result *g, int ran);

#endif
