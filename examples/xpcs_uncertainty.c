/*
 * xpcs_uncertainty.c - see xpcs_uncertainty.h.
 */
#include "xpcs_uncertainty.h"

#include "nlsq_xpcs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The cluster-robust covariance over the model's frame clusters at x into
 * cov (p*p); res gets the library's message. */
static int robust_cov(nlsq_xpcs_model *m, const nlsq_problem *pb, const nlsq_options *opt,
                      const double *x, double *cov, nlsq_result *res)
{
    nlsq_clusters cl;
    memset(res, 0, sizeof *res);
    int rc = nlsq_xpcs_model_clusters(m, &cl);
    return rc ? rc : nlsq_covariance_robust(pb, opt, &cl, x, cov, res);
}

/* V_rob / V_mod of one parameter, or 0 where it is not a finite positive
 * number (either variance undetermined). */
static double variance_ratio(double v_rob, double v_mod)
{
    double q = v_rob / v_mod;
    return isfinite(q) && q > 0 ? q : 0.0;
}

/* Where c_j is undefined (j undetermined at that point: the shear valley,
 * where the profile of a shear parameter may start and end), the direction
 * the profile moves along is a flat one of J^T J, and its V_rob / V_mod
 * (a ratio of the sandwich's and the model's curvature along it) is not
 * available from the two covariances.  Without it the threshold stayed K^2
 * (no widening) and 0 of 31 valley fits covered; the median of the
 * physical parameters' ratios at the same point is the noise's inflation
 * where it can be measured (1 / 1 sigma: 17-29 on seed 1 of the corr
 * scenario, shear and diffusion alike). */
double xpcs_threshold_ratio(const double *rob, size_t rs, const double *mod, size_t ms,
                            size_t np, size_t j)
{
    double c = variance_ratio(rob[j * rs], mod[j * ms]);
    if (c > 0) return c;
    double v[FIT_XPCS_RATIO_MAX];
    size_t n = 0;
    for (size_t k = 0; k < np && k < FIT_XPCS_RATIO_MAX; k++) {
        double q = variance_ratio(rob[k * rs], mod[k * ms]);
        if (q > 0) {   /* insertion sort */
            size_t i = n++;
            for (; i > 0 && v[i - 1] > q; i--) v[i] = v[i - 1];
            v[i] = q;
        }
    }
    return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int xpcs_robust_covariance(nlsq_xpcs_model *m, const nlsq_problem *pb, const nlsq_options *opt,
                           const double *x, double *cov, double *ratio, size_t np, char *err,
                           size_t err_size)
{
    const size_t p = pb->n_params;
    double model_var[FIT_XPCS_RATIO_MAX];
    for (size_t k = 0; k < np && k < FIT_XPCS_RATIO_MAX; k++) model_var[k] = cov[k * p + k];
    nlsq_result res;
    int rc = robust_cov(m, pb, opt, x, cov, &res);
    if (rc != 0) {
        snprintf(err, err_size, "--errors robust: %s",
                 res.message[0] ? res.message : nlsq_status_string(rc));
        return -1;
    }
    /* robust / model variance of each physical parameter at the fit: the
     * profile threshold's first round (see xpcs_profiles); 1 where no
     * physical parameter has one */
    for (size_t k = 0; ratio && k < np && k < FIT_XPCS_RATIO_MAX; k++) {
        double q = xpcs_threshold_ratio(cov, p + 1, model_var, 1, np, k);
        ratio[k] = q > 0 ? q : 1.0;
    }
    return 0;
}

/* The robust threshold at a profile end (nlsq_profile_adjust). */
typedef struct robust_threshold {
    nlsq_xpcs_model *m;
    const nlsq_problem *pb;
    const nlsq_options *opt;
    double level;
    size_t np;      /* physical parameters */
    double *cov;    /* 2 p*p: the model and the robust covariance at the end */
} robust_threshold;

/* delta = level^2 c_j at the held point x_end (xpcs_threshold_ratio), all
 * parameters free there; unchanged where no ratio is defined. */
static int robust_delta(void *ctx, size_t j, int side, const double *x_end, double *delta)
{
    (void)side;
    robust_threshold *t = ctx;
    const size_t p = t->pb->n_params;
    nlsq_result res;
    memset(&res, 0, sizeof res);
    int rc = nlsq_covariance(t->pb, t->opt, x_end, t->cov, &res);
    if (rc == 0) rc = robust_cov(t->m, t->pb, t->opt, x_end, t->cov + p * p, &res);
    if (rc != 0) return rc;
    double c = xpcs_threshold_ratio(t->cov + p * p, p + 1, t->cov, p + 1, t->np, j);
    if (c > 0) *delta = t->level * t->level * c;
    return 0;
}

/* The bootstrap threshold at a profile end (nlsq_profile_adjust): the
 * erf(K / sqrt 2) quantile of D's replicates at the held point (the rule
 * beside nlsq_profile_bootstrap: a test inversion), over the model's frame
 * clusters with --errors robust, over single rows without. */
typedef struct boot_threshold {
    const nlsq_problem *pb;
    const nlsq_options *opt;
    const nlsq_clusters *cl;   /* NULL: rows */
    double level, s2;
    size_t n_boot;
    double *dstar;             /* n_boot */
} boot_threshold;

/* The prob quantile of n sorted replicates as a Monte Carlo test reads it:
 * the k-th smallest of n exchangeable draws is exceeded by a new one with
 * probability 1 - k / (n + 1), so the quantile sits at position h = prob
 * (n + 1), linear between order statistics (Hyndman and Fan's type 6; the
 * same convention as the p-value (1 + #{D* >= D}) / (1 + n)).  numpy's
 * default, h = prob (n - 1) + 1, is biased low at 2 sigma: with 40
 * replicates its expected point is chi2_1's 93.5 % one (gamma_dot_0's
 * 2-sigma coverage on independent noise: 91 of 100 seeds with either
 * rule, docs/uncertainties.md "A test inversion"). */
static double sorted_quantile(const double *v, size_t n, double prob)
{
    double h = prob * (double)(n + 1);
    if (h <= 1.0) return v[0];
    if (h >= (double)n) return v[n - 1];
    size_t i = (size_t)h;   /* 1 <= i < n: between v[i - 1] and v[i] */
    return v[i - 1] + (h - (double)i) * (v[i] - v[i - 1]);
}

/* The bootstrap's clusters: the model's frames with --errors robust (into
 * *cl, *use = cl), none (single rows, *use = NULL) without.  0, or -1 with
 * one line in err naming the option. */
static int rule_clusters(const xpcs_profile_rule *rule, nlsq_clusters *cl,
                         const nlsq_clusters **use, const char *option, char *err,
                         size_t err_size)
{
    *use = NULL;
    if (!rule->robust_m) return 0;
    if (nlsq_xpcs_model_clusters(rule->robust_m, cl) != 0) {
        snprintf(err, err_size, "%s: the model has no frame clusters", option);
        return -1;
    }
    *use = cl;
    return 0;
}

static int boot_delta(void *ctx, size_t j, int side, const double *x_end, double *delta)
{
    (void)side;
    boot_threshold *t = ctx;
    /* one stream per parameter: the same weights at every end and round */
    nlsq_profile_boot bo = {.n_boot = t->n_boot, .seed = FIT_XPCS_BOOT_SEED + j,
                            .clusters = t->cl, .s2 = t->s2};
    int rc = nlsq_profile_bootstrap(t->pb, t->opt, &bo, x_end, j, t->dstar, NULL, NULL);
    if (rc) return rc;
    /* The quantile as it is, also (nearly) 0: at held points where the
     * replicates' free fits barely move x_j (on the shear history's floor,
     * at a bound) every t but the fit's rejects, and nlsq_profile's rounds
     * bracket the end between that point and the last one that passed.  An
     * earlier rule kept the old threshold there, which left the interval
     * wider than the set the test accepts (corrprofile seeds 4, 5, 14:
     * the truth inside, rejected by --test; docs/uncertainties.md). */
    *delta = sorted_quantile(t->dstar, t->n_boot, erf(t->level / sqrt(2.0)));
    return 0;
}

/* The warning line when a profile's or a test's solve went below the fit's
 * cost (better_min): what ("profile", "test") of parameter k, and the result
 * that is not valid. */
static void warn_lower_cost(const char *what, size_t k, const char *result)
{
    fprintf(stderr, "fit_xpcs: warning: the %s of %s found a lower cost than the fit: the fit "
            "did not end at the minimum, its %s is not valid\n", what,
            nlsq_xpcs_param_name(k), result);
}

/* The profile threshold.  Without misspecification 2 (C_j(t) - C_min) / s^2
 * is asymptotically chi2 with 1 degree of freedom, hence delta = level^2.
 * When the errors are not independent (frame-shared noise) the same
 * statistic is asymptotically c chi2_1 with c = V_rob,jj / V_mod,jj, V_rob
 * the sandwich (robust) variance of the parameter and V_mod = s^2 (J^T J)^-1
 * its model variance: the profile's curvature is the model's, the spread of
 * the estimate is the sandwich's.  So with --errors robust the threshold is
 * delta = level^2 c (the first-order adjustment of a likelihood-ratio test
 * under a misspecified or composite likelihood); for a linear model the
 * interval is then exactly the robust error bar, and the profile keeps its
 * asymmetry where the model is nonlinear.
 * Where c is evaluated: the interval's end t is where the test of H0:
 * theta_j = t just rejects, and a test of H0 estimates its nuisance under
 * H0 (the score / LR test uses the restricted fit).  So c is taken at the
 * held point at each end (theta_j = t, the others fitted; both covariances
 * there with all parameters free), not at the fit.  That matters twice:
 * along the shear parameters c changes over one error bar (the model is not
 * linear there), and where the fit lies in the shear valley (beta -> 0,
 * gamma_dot_offset at its bound, docs/uncertainties.md) the shear
 * parameters are undetermined at the fit, so c does not exist there at all,
 * while at the ends, out of the valley, it does.  The end depends on c and
 * c on the end: start with c at the fit, find the end, take c at its held
 * point and search again when c moved by more than 10 %, at most 3 searches
 * per end (nlsq_profile_adjust).  Where c_j is undefined at a point (j
 * undetermined there) it is the median of the physical parameters' c there
 * (xpcs_threshold_ratio); 1 where no parameter has one. */
int xpcs_profiles(const nlsq_problem *pb, const nlsq_options *opt, const double *x,
                  unsigned mask, size_t np, const xpcs_profile_rule *rule, nlsq_interval *iv,
                  char *err, size_t err_size)
{
    const size_t p = pb->n_params;
    const double level = rule->level;
    robust_threshold rt = {.m = rule->robust_m, .pb = pb, .opt = opt, .level = level, .np = np};
    nlsq_clusters cl;
    boot_threshold bt = {.pb = pb, .opt = opt, .level = level, .s2 = rule->s2,
                         .n_boot = rule->n_boot};
    nlsq_profile_adjust adj = {.fn = robust_delta, .ctx = &rt};
    if (rule->n_boot) {
        adj = (nlsq_profile_adjust){.fn = boot_delta, .ctx = &bt, .max_rounds = 5};
        if (rule_clusters(rule, &cl, &bt.cl, "--boot", err, err_size) != 0) return -1;
        if (!(bt.dstar = malloc(rule->n_boot * sizeof(double)))) {
            snprintf(err, err_size, "--boot: out of memory (%zu replicates)",
                     rule->n_boot);
            return -1;
        }
    } else if (rule->robust_m && !(rt.cov = malloc(2 * p * p * sizeof(double)))) {
        snprintf(err, err_size, "--profile: out of memory (%zu parameters)", p);
        return -1;
    }
    const int adjust = rule->n_boot || rule->robust_m;
    int rc = 0;
    for (size_t k = 0; k < np && rc == 0; k++) {
        if (!(mask & (1u << k))) continue;
        if (pb->lower && pb->upper && pb->lower[k] == pb->upper[k]) continue;
        double delta = level * level *
                       (rule->ratio && k < FIT_XPCS_RATIO_MAX ? rule->ratio[k] : 1.0);
        rc = nlsq_profile(pb, opt, x, k, delta, adjust ? &adj : NULL, &iv[k]);
        if (rc != 0)
            snprintf(err, err_size, "--profile %s: %s", nlsq_xpcs_param_name(k),
                     nlsq_status_string(rc));
        else if (iv[k].better_min)
            warn_lower_cost("profile", k, "interval");
    }
    free(rt.cov);
    free(bt.dstar);
    return rc ? -1 : 0;
}

int xpcs_tests(const nlsq_problem *pb, const nlsq_options *opt, const double *x,
               const double *values, size_t np, const xpcs_profile_rule *rule, xpcs_test *out,
               char *err, size_t err_size)
{
    const size_t B = rule->n_boot ? rule->n_boot : FIT_XPCS_TEST_BOOT;
    nlsq_clusters cl;
    nlsq_profile_boot bo = {.n_boot = B, .s2 = rule->s2};
    if (rule_clusters(rule, &cl, &bo.clusters, "--test", err, err_size) != 0) return -1;
    double *dstar = malloc(B * sizeof(double));
    if (!dstar) {
        snprintf(err, err_size, "--test: out of memory (%zu replicates)", B);
        return -1;
    }
    int rc = 0;
    for (size_t k = 0; k < np && rc == 0; k++) {
        if (isnan(values[k])) continue;
        if (pb->lower && pb->upper && pb->lower[k] == pb->upper[k]) {
            snprintf(err, err_size, "--test %s: the parameter is held", nlsq_xpcs_param_name(k));
            rc = -1;
            break;
        }
        if ((pb->lower && values[k] < pb->lower[k]) || (pb->upper && values[k] > pb->upper[k])) {
            snprintf(err, err_size, "--test %s=%.17g: outside the parameter's bounds [%g, %g]",
                     nlsq_xpcs_param_name(k), values[k], pb->lower ? pb->lower[k] : -INFINITY,
                     pb->upper ? pb->upper[k] : INFINITY);
            rc = -1;
            break;
        }
        bo.seed = FIT_XPCS_BOOT_SEED + k;   /* the stream --boot's profile uses */
        rc = nlsq_profile_test(pb, opt, &bo, x, k, values[k], &out[k].res, dstar);
        if (rc != 0) {
            snprintf(err, err_size, "--test %s=%.17g: %s", nlsq_xpcs_param_name(k), values[k],
                     nlsq_status_string(rc));
            break;
        }
        if (out[k].res.better_min) warn_lower_cost("test", k, "p-value");
        out[k].done = 1;
        out[k].value = values[k];
        out[k].n_boot = B;
        out[k].q1 = sorted_quantile(dstar, B, erf(1.0 / sqrt(2.0)));
        out[k].q2 = sorted_quantile(dstar, B, erf(2.0 / sqrt(2.0)));
    }
    free(dstar);
    return rc ? -1 : 0;
}
