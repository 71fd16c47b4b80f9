/* report.c - a plain-text fit report and the correlation matrix.
 *
 * nlsq_report writes, for a problem, its solution x and the solver's result:
 *
 *   status        the status sentence and its name (and the result's message
 *                 when it says more)
 *   iterations    iterations, passes (residual-only + Jacobian), seconds
 *   cost          final and initial cost
 *   reduced chi2  and the degrees of freedom behind it
 *   one line per parameter: name (param_names, else x[j]), value, standard
 *                 error (sqrt of the covariance diagonal; "-" without one or
 *                 for a fixed parameter),
 *                 relative error, flags (nlsq_param_flags: free, fixed,
 *                 at_lower, at_upper, undetermined ...)
 *   the largest correlations: pairs of free, determined parameters with
 *                 |r| >= 0.5, largest first, at most NLSQ_REPORT_MAX_CORR
 *
 * The largest pairs are found by repeated selection (at most 10 scans of the
 * p^2 / 2 pairs), so the report allocates only the p flags.
 */
#include "nlsq_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NLSQ_REPORT_MAX_CORR 10
#define NLSQ_REPORT_MIN_CORR 0.5

int nlsq_correlation(size_t p, const double *cov, double *corr)
{
    if (!cov || !corr || p == 0 || cov == corr) return NLSQ_EINVAL;
    for (size_t i = 0; i < p; i++) {
        const double vi = cov[i * p + i];
        for (size_t j = 0; j < p; j++) {
            const double vj = cov[j * p + j];
            if (!(vi > 0 && vi < INFINITY && vj > 0 && vj < INFINITY)) corr[i * p + j] = NAN;
            else if (i == j) corr[i * p + j] = 1.0;
            else corr[i * p + j] = cov[i * p + j] / (sqrt(vi) * sqrt(vj));
        }
    }
    return 0;
}

static double corr_of(const double *cov, size_t p, size_t i, size_t j)
{
    const double vi = cov[i * p + i], vj = cov[j * p + j];
    if (!(vi > 0 && vi < INFINITY && vj > 0 && vj < INFINITY)) return NAN;
    return cov[i * p + j] / (sqrt(vi) * sqrt(vj));
}

/* Pair after (pi, pj) in the order |r| descending, then (i, j) ascending;
 * returns 0 when there is none with |r| >= NLSQ_REPORT_MIN_CORR. */
static int next_pair(const double *cov, size_t p, double prev, size_t pi, size_t pj,
                     size_t *oi, size_t *oj, double *ov)
{
    int found = 0;
    double best = 0.0;
    for (size_t i = 0; i < p; i++)
        for (size_t j = i + 1; j < p; j++) {
            const double a = fabs(corr_of(cov, p, i, j));
            if (!(a >= NLSQ_REPORT_MIN_CORR)) continue;
            /* strictly after the previous pair in the order */
            if (prev >= 0 && (a > prev || (a == prev && (i < pi || (i == pi && j <= pj))))) continue;
            if (found && a <= best) continue;
            found = 1;
            best = a;
            *oi = i;
            *oj = j;
            *ov = corr_of(cov, p, i, j);
        }
    return found;
}

static const char *param_name(const nlsq_problem *pb, size_t j, char *buf, size_t n)
{
    if (pb->param_names && pb->param_names[j]) return pb->param_names[j];
    snprintf(buf, n, "x[%zu]", j);
    return buf;
}

static void write_parameters(FILE *out, const nlsq_problem *pb, const double *x, const double *cov,
                             const unsigned *flags)
{
    const size_t p = pb->n_params;
    fprintf(out, "parameters:\n  %-16s %16s %12s %9s  %s\n", "name", "value", "std error",
            "rel err", "flags");
    for (size_t j = 0; j < p; j++) {
        char nb[32], eb[32] = "-", rb[32] = "-";
        if (cov && !(flags[j] & NLSQ_PARAM_FIXED)) {
            const double v = cov[j * p + j];
            const double se = v >= 0 ? sqrt(v) : NAN;
            snprintf(eb, sizeof eb, "%.5g", se);
            if (x[j] != 0 && isfinite(se)) snprintf(rb, sizeof rb, "%.3g%%", 100.0 * se / fabs(x[j]));
        }
        fprintf(out, "  %-16s %16.9g %12s %9s  %s\n", param_name(pb, j, nb, sizeof nb), x[j], eb, rb,
                nlsq_param_flags_name(flags[j]));
    }
}

static void write_correlations(FILE *out, const nlsq_problem *pb, const double *cov)
{
    const size_t p = pb->n_params;
    size_t i = 0, j = 0, count = 0;
    double prev = -1.0, r = 0.0;
    fprintf(out, "largest correlations (|r| >= %.1f):", NLSQ_REPORT_MIN_CORR);
    while (count < NLSQ_REPORT_MAX_CORR && next_pair(cov, p, prev, i, j, &i, &j, &r)) {
        char na[32], nb[32];
        fprintf(out, "\n  %-16s %-16s %+.4f", param_name(pb, i, na, sizeof na),
                param_name(pb, j, nb, sizeof nb), r);
        prev = fabs(r);
        count++;
    }
    fprintf(out, "%s\n", count ? "" : " none");
}

static int write_report(FILE *out, const nlsq_problem *pb, const double *x, const nlsq_result *res,
                        const nlsq_fit_stats *stats);

int nlsq_report(FILE *out, const nlsq_problem *pb, const double *x, const nlsq_result *res)
{
    return write_report(out, pb, x, res, NULL);
}

int nlsq_curve_report(FILE *out, const nlsq_curve_problem *cp, const double *theta,
                      const nlsq_result *res, const nlsq_fit_stats *stats)
{
    if (!cp) return NLSQ_EINVAL;
    nlsq_problem pb = {.n_params = cp->n_params, .n_rows = cp->n_points, .lower = cp->lower,
                       .upper = cp->upper, .param_names = cp->param_names};
    return write_report(out, &pb, theta, res, stats);
}

static int write_report(FILE *out, const nlsq_problem *pb, const double *x, const nlsq_result *res,
                        const nlsq_fit_stats *stats)
{
    if (!out || !pb || !x || !res || pb->n_params == 0) return NLSQ_EINVAL;
    const size_t p = pb->n_params;
    unsigned *flags = calloc(p, sizeof *flags);
    if (!flags) return NLSQ_ENOMEM;
    const double *cov = res->status >= 0 || res->status == NLSQ_STALLED ? res->covariance : NULL;
    nlsq_param_flags(pb, x, cov, flags);

    fprintf(out, "status:        %s (%s)\n", nlsq_status_string(res->status),
            nlsq_status_name(res->status));
    if (res->message[0] && strcmp(res->message, nlsq_status_string(res->status)) != 0)
        fprintf(out, "message:       %s\n", res->message);
    fprintf(out, "iterations:    %zu (passes: %zu residual-only, %zu with Jacobian; %.3g s)\n",
            res->iterations, res->n_eval, res->n_jac, res->seconds);
    fprintf(out, "cost:          %.10g (start %.10g)\n", res->cost, res->initial_cost);
    fprintf(out, "reduced chi2:  %.6g (dof %.0f: %zu observations, %zu free parameters)\n",
            res->reduced_chi2, res->dof, res->n_obs, res->n_free);
    if (stats && (res->status >= 0 || res->status == NLSQ_STALLED))
        fprintf(out, "chi2:          %.10g (dof %zu), R^2 %.8g, AIC %.6g, BIC %.6g\n", stats->chi2,
                stats->dof, stats->r_squared, stats->aic, stats->bic);
    write_parameters(out, pb, x, cov, flags);
    if (cov) write_correlations(out, pb, cov);
    free(flags);
    return fflush(out) == 0 && !ferror(out) ? 0 : NLSQ_EIO;
}
