/*
 * xpcs_uncertainty.h - fit_xpcs's error bars beyond the default covariance:
 * per-parameter flags and the warning line (docs/uncertainties.md).
 *
 * Like xpcs_output.c these belong to the command: the library computes flags,
 * robust covariances and profile intervals; this file names them after the
 * XPCS parameters and decides what the user is told.
 */
#ifndef XPCS_UNCERTAINTY_H
#define XPCS_UNCERTAINTY_H

#include <stddef.h>

#include "nlsq.h"
#include "nlsq_xpcs.h"

/** Name of fit-vector entry k (np physical parameters first, then contrast_a,
 *  offset_a per angle) into buf. */
void xpcs_fit_param_name(size_t np, size_t k, char *buf, size_t size);

/** flags (p entries) from nlsq_param_flags at the solution; when some
 *  parameters are undetermined, one warning line on stderr naming them.
 *  Returns the number of undetermined parameters. */
int xpcs_flags_and_warning(const nlsq_problem *pb, const double *x, const double *cov,
                           unsigned *flags, size_t np, size_t p);

/** --errors robust: replace cov (p*p) with the cluster-robust covariance
 *  over the model's frame clusters at x.  0, or nonzero with one line in
 *  err. */
int xpcs_robust_covariance(nlsq_xpcs_model *m, const nlsq_problem *pb, const nlsq_options *opt,
                           const double *x, double *cov, char *err, size_t err_size);

/** --profile: the 1-sigma profile-likelihood interval of every physical
 *  parameter k < np with bit k of mask, at level sigmas (delta chi2 =
 *  level^2), into iv[k] (iv: p entries, zeroed by
 *  the caller; n_solves 0 = not profiled).  A profile that finds a lower
 *  cost than the fit's prints one warning line on stderr.  0, or nonzero
 *  with one line in err. */
int xpcs_profiles(const nlsq_problem *pb, const nlsq_options *opt, const double *x,
                  unsigned mask, size_t np, double level, nlsq_interval *iv, char *err,
                  size_t err_size);

#endif /* XPCS_UNCERTAINTY_H */
