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

/** Most physical parameters a ratio array holds (the laminar model's 7). */
#define FIT_XPCS_RATIO_MAX 7

/** --errors robust: replace cov (p*p, the model covariance on entry) with
 *  the cluster-robust covariance over the model's frame clusters at x; with
 *  ratio non-NULL, ratio[k] = robust / model variance of physical parameter
 *  k < np (1 where not finite; np <= FIT_XPCS_RATIO_MAX are written).  0, or
 *  nonzero with one line in err. */
int xpcs_robust_covariance(nlsq_xpcs_model *m, const nlsq_problem *pb, const nlsq_options *opt,
                           const double *x, double *cov, double *ratio, size_t np, char *err,
                           size_t err_size);

/** The robust threshold's factor c of parameter j (delta = K^2 c): V_rob /
 *  V_mod from the variances rob[k * rs] and mod[k * ms] (k < np: a
 *  covariance's diagonal with stride p + 1, or a vector with stride 1);
 *  where that is not a finite positive number, the median of the defined
 *  ratios of the np physical parameters (xpcs_uncertainty.c says why); 0
 *  when none is defined. */
double xpcs_threshold_ratio(const double *rob, size_t rs, const double *mod, size_t ms,
                            size_t np, size_t j);

/** --profile's selection: bit k (k < np) for each physical parameter to
 *  profile: the named ones (mask `named`), and with `undetermined` every one
 *  whose flag (nlsq_param_flags) has NLSQ_PARAM_UNDETERMINED; flags NULL (no
 *  covariance, hence no flags) adds none.  0 = nothing to profile. */
unsigned xpcs_profile_selection(unsigned named, int undetermined, const unsigned *flags,
                                size_t np);

/** --profile: the profile-likelihood interval of every physical
 *  parameter k < np with bit k of mask, at level sigmas (delta chi2 =
 *  level^2), into iv[k] (iv: p entries, zeroed by the caller; n_solves 0 =
 *  not profiled).  With robust_m non-NULL (--errors robust, the fit's
 *  model) the threshold is level^2 V_rob / V_mod, first with ratio[k] (the
 *  fit's, from xpcs_robust_covariance; NULL: 1), then with the ratio at the
 *  held point of each end (the rule beside xpcs_profiles,
 *  docs/uncertainties.md).  A profile that finds a lower cost than the
 *  fit's prints one warning line on stderr.  0, or nonzero with one line in
 *  err. */
int xpcs_profiles(const nlsq_problem *pb, const nlsq_options *opt, const double *x,
                  unsigned mask, size_t np, double level, nlsq_xpcs_model *robust_m,
                  const double *ratio, nlsq_interval *iv, char *err, size_t err_size);

#endif /* XPCS_UNCERTAINTY_H */
