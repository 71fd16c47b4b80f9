/*
 * xpcs_uncertainty.c - see xpcs_uncertainty.h.
 */
#include "xpcs_uncertainty.h"

#include "nlsq_xpcs.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void xpcs_fit_param_name(size_t np, size_t k, char *buf, size_t size)
{
    if (k < np) snprintf(buf, size, "%s", nlsq_xpcs_param_name(k));
    else snprintf(buf, size, "%s_%zu", (k - np) % 2 ? "offset" : "contrast", (k - np) / 2);
}

int xpcs_flags_and_warning(const nlsq_problem *pb, const double *x, const double *cov,
                           unsigned *flags, size_t np, size_t p)
{
    size_t n = nlsq_param_flags(pb, x, cov, flags);
    if (n == 0) return 0;
    /* one line, at most ~400 characters of names */
    char line[512];
    size_t len = 0, shown = 0;
    for (size_t k = 0; k < p; k++) {
        if (!(flags[k] & NLSQ_PARAM_UNDETERMINED)) continue;
        char nm[40];
        xpcs_fit_param_name(np, k, nm, sizeof nm);
        if (len + strlen(nm) + 3 > 400) break;
        len += (size_t)snprintf(line + len, sizeof line - len, "%s%s", shown ? ", " : "", nm);
        shown++;
    }
    fprintf(stderr, "fit_xpcs: warning: %zu parameter%s undetermined by the data (no finite "
            "error bar; the profile interval, --profile undetermined, is %s bar): %s%s\n", n,
            n == 1 ? "" : "s", n == 1 ? "its" : "their", line, shown < n ? ", ..." : "");
    return (int)n;
}

/* An undetermined parameter has no linearised error bar (an infinite or
 * meaningless Wald sigma), but its profile interval is defined: the profile
 * likelihood does not depend on how the model is parametrised. */
unsigned xpcs_profile_selection(unsigned named, int undetermined, const unsigned *flags,
                                size_t np)
{
    unsigned mask = named;
    for (size_t k = 0; undetermined && flags && k < np && k < 32; k++)
        if (flags[k] & NLSQ_PARAM_UNDETERMINED) mask |= 1u << k;
    return mask;
}

int xpcs_robust_covariance(nlsq_xpcs_model *m, const nlsq_problem *pb, const nlsq_options *opt,
                           const double *x, double *cov, double *ratio, size_t np, char *err,
                           size_t err_size)
{
    const size_t p = pb->n_params;
    double model_var[FIT_XPCS_RATIO_MAX];
    for (size_t k = 0; k < np && k < FIT_XPCS_RATIO_MAX; k++) model_var[k] = cov[k * p + k];
    nlsq_clusters cl;
    nlsq_result res;
    memset(&res, 0, sizeof res);
    int rc = nlsq_xpcs_model_clusters(m, &cl);
    if (rc == 0) rc = nlsq_covariance_robust(pb, opt, &cl, x, cov, &res);
    if (rc != 0) {
        snprintf(err, err_size, "--errors robust: %s",
                 res.message[0] ? res.message : nlsq_status_string(rc));
        return -1;
    }
    /* robust / model variance of each physical parameter: the factor by which
     * a profile's threshold widens under the same misspecification (see
     * xpcs_profiles); 1 where either is not a finite positive number */
    for (size_t k = 0; ratio && k < np && k < FIT_XPCS_RATIO_MAX; k++) {
        double q = cov[k * p + k] / model_var[k];
        ratio[k] = isfinite(q) && q > 0 ? q : 1.0;
    }
    return 0;
}

/* The profile threshold.  Without misspecification 2 (C_j(t) - C_min) / s^2
 * is asymptotically chi2 with 1 degree of freedom, hence delta = level^2.
 * When the errors are not independent (frame-shared noise) the same
 * statistic is asymptotically (V_rob / V_mod) chi2_1, with V_rob the
 * sandwich (robust) variance of the parameter and V_mod = s^2 (J^T J)^-1
 * its model variance: the profile's curvature is the model's, the spread of
 * the estimate is the sandwich's.  So with --errors robust the threshold is
 * delta = level^2 V_rob / V_mod (the first-order adjustment of a profile
 * under a misspecified or composite likelihood); for a linear model the
 * interval is then exactly the robust error bar, and the profile keeps its
 * asymmetry where the model is nonlinear. */
int xpcs_profiles(const nlsq_problem *pb, const nlsq_options *opt, const double *x,
                  unsigned mask, size_t np, double level, const double *ratio, nlsq_interval *iv,
                  char *err, size_t err_size)
{
    for (size_t k = 0; k < np; k++) {
        if (!(mask & (1u << k))) continue;
        if (pb->lower && pb->upper && pb->lower[k] == pb->upper[k]) continue;
        double delta = level * level * (ratio && k < FIT_XPCS_RATIO_MAX ? ratio[k] : 1.0);
        int rc = nlsq_profile(pb, opt, x, k, delta, &iv[k]);
        if (rc != 0) {
            snprintf(err, err_size, "--profile %s: %s", nlsq_xpcs_param_name(k),
                     nlsq_status_string(rc));
            return -1;
        }
        if (iv[k].better_min)
            fprintf(stderr, "fit_xpcs: warning: the profile of %s found a lower cost than the "
                    "fit: the fit did not end at the minimum, its interval is not valid\n",
                    nlsq_xpcs_param_name(k));
    }
    return 0;
}
