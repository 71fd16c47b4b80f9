/*
 * xpcs_uncertainty.c - see xpcs_uncertainty.h.
 */
#include "xpcs_uncertainty.h"

#include "nlsq_xpcs.h"

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
    fprintf(stderr, "fit_xpcs: warning: %zu parameter%s undetermined by the data (error "
            "bar infinite): %s%s\n", n, n == 1 ? "" : "s", line, shown < n ? ", ..." : "");
    return (int)n;
}

int xpcs_robust_covariance(nlsq_xpcs_model *m, const nlsq_problem *pb, const nlsq_options *opt,
                           const double *x, double *cov, char *err, size_t err_size)
{
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
    return 0;
}

int xpcs_profiles(const nlsq_problem *pb, const nlsq_options *opt, const double *x,
                  unsigned mask, size_t np, double level, nlsq_interval *iv, char *err,
                  size_t err_size)
{
    for (size_t k = 0; k < np; k++) {
        if (!(mask & (1u << k))) continue;
        if (pb->lower && pb->upper && pb->lower[k] == pb->upper[k]) continue;
        int rc = nlsq_profile(pb, opt, x, k, level * level, &iv[k]);
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
