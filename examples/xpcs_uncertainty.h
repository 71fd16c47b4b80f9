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

/** How --profile's threshold is set. */
typedef struct xpcs_profile_rule {
    double level;               /* K sigma */
    nlsq_xpcs_model *robust_m;  /* --errors robust: the fit's model (frame clusters); NULL */
    const double *ratio;        /* robust / model variances at the fit (NULL: 1) */
    size_t n_boot;              /* --boot B, 0: off */
    double s2;                  /* with n_boot: the fit's s^2 (its reduced chi2) */
} xpcs_profile_rule;

/** --test's replicates without --boot. */
#define FIT_XPCS_TEST_BOOT 100

/** Seed of the bootstrap's weights for parameter j: FIT_XPCS_BOOT_SEED + j. */
#define FIT_XPCS_BOOT_SEED UINT64_C(0x6E6C73710000)

/** --profile: the profile-likelihood interval of every physical
 *  parameter k < np with bit k of mask, at rule->level = K sigmas (delta
 *  chi2 = K^2), into iv[k] (iv: p entries, zeroed by the caller; n_solves 0
 *  = not profiled).  With rule->robust_m (--errors robust, the fit's model)
 *  the threshold is K^2 V_rob / V_mod, first with rule->ratio[k] (the
 *  fit's, from xpcs_robust_covariance), then with the ratio at the held
 *  point of each end (the rule beside xpcs_profiles, docs/uncertainties.md).
 *  With rule->n_boot (--boot) the first round is the same and each
 *  end's threshold is then the erf(K / sqrt 2) quantile of n_boot
 *  bootstrap replicates of the statistic at its held point
 *  (nlsq_profile_bootstrap; frame clusters with robust_m, single rows
 *  without), at most 4 searches per end.  A profile that finds a lower
 *  cost than the fit's prints one warning line on stderr.  0, or nonzero
 *  with one line in err. */
int xpcs_profiles(const nlsq_problem *pb, const nlsq_options *opt, const double *x,
                  unsigned mask, size_t np, const xpcs_profile_rule *rule, nlsq_interval *iv,
                  char *err, size_t err_size);

/** One --test NAME=VALUE: nlsq_profile_test's result and the thresholds
 *  of the 1- and 2-sigma test-inversion intervals (quantiles of D*). */
typedef struct xpcs_test {
    int done;                       /* 1: tested */
    double value;                   /* t */
    nlsq_profile_test_result res;
    double q1, q2;                  /* erf(1 / sqrt 2), erf(2 / sqrt 2) quantiles of D* */
    size_t n_boot;
} xpcs_test;

/** --test: for each physical parameter k < np with values[k] not NAN, the
 *  bootstrap test of x_k = values[k] at the fit x (nlsq_profile_test with
 *  rule->n_boot replicates, FIT_XPCS_TEST_BOOT when 0, frame clusters with
 *  rule->robust_m, s^2 = rule->s2) into out[k] (np entries, zeroed by the
 *  caller).  0, or nonzero with one line in err. */
int xpcs_tests(const nlsq_problem *pb, const nlsq_options *opt, const double *x,
               const double *values, size_t np, const xpcs_profile_rule *rule, xpcs_test *out,
               char *err, size_t err_size);

#endif /* XPCS_UNCERTAINTY_H */
