/*
 * fit_xpcs_paths.h - fit_xpcs's files checked before any work (safe_io.h
 * has the rules): the inputs are INPUT.h5 and --resume FILE; the outputs
 * --output, --checkpoint (which may be the --resume file: a resumed fit
 * keeps saving there) and the --plot files.  No output may be an input or
 * another output.
 */
#ifndef FIT_XPCS_PATHS_H
#define FIT_XPCS_PATHS_H

#include <stddef.h>

#include "fit_xpcs_args.h"

/* --output and --checkpoint: before the input is opened.  0, or -1 with one
 * line in err. */
int fit_xpcs_check_outputs(const fit_xpcs_args *a, char *err, size_t es);

/* The --plot files of the chosen angles (and PREFIX_g2.png): once the
 * angles are known, before the fit.  0, or -1 with one line in err. */
int fit_xpcs_check_plot_files(const fit_xpcs_args *a, const size_t *angles, size_t n_angles,
                              char *err, size_t es);

#endif /* FIT_XPCS_PATHS_H */
