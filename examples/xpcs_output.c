/*
 * xpcs_output.c - fit_xpcs reports: table, JSON, HDF5 result file, fitted
 * c2 rows (see xpcs_output.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "xpcs_output.h"
#include "xpcs_uncertainty.h"
#include "safe_io.h"
#include "utf8_text.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Report helpers                                                             */
/* ------------------------------------------------------------------------ */

double xpcs_report_phys(const xpcs_report *r, size_t k)
{
    return k < r->np ? r->x[k] : 0.0;
}

double xpcs_report_phys_err(const xpcs_report *r, size_t k)
{
    return k < r->np ? r->err[k] : 0.0;
}

/* (value - truth) / sigma, NAN when sigma is undetermined or zero. */
static double deviation(double v, double truth, double sigma)
{
    if (!isfinite(v) || !isfinite(truth) || !isfinite(sigma) || !(sigma > 0)) return NAN;
    return (v - truth) / sigma;
}

static const char *mode_name(const xpcs_report *r)
{
    return r->args->mode == NLSQ_XPCS_STATIC ? "static" : "laminar";
}

static const char *triangle_name(const xpcs_report *r)
{
    return r->args->triangle == NLSQ_XPCS_FULL ? "full" : "upper";
}

/* ------------------------------------------------------------------------ */
/* Table                                                                      */
/* ------------------------------------------------------------------------ */

/* An error bar for the table: "undetermined" when not finite. */
static const char *fmt_err(double e, char *buf, size_t size)
{
    if (isfinite(e)) snprintf(buf, size, "%.4g", e);
    else snprintf(buf, size, "undetermined");
    return buf;
}

static const char *fmt_dev(double d, char *buf, size_t size)
{
    if (isfinite(d)) snprintf(buf, size, "%+.2f", d);
    else snprintf(buf, size, "-");
    return buf;
}

/* Profile-likelihood intervals: value, [lower, upper], -/+ errors; nothing
 * when none was computed (--profile undetermined, none undetermined). */
static void table_intervals(FILE *fp, const xpcs_report *r)
{
    size_t shown = 0, undet = 0;
    for (size_t k = 0; r->intervals && k < r->p; k++) {
        shown += r->intervals[k].n_solves > 0;
        undet += r->intervals[k].n_solves > 0 && r->flags && (r->flags[k] & NLSQ_PARAM_UNDETERMINED);
    }
    if (!shown) return;
    double lvl = r->args->profile_level;
    if (r->args->boot)   /* each end's threshold the quantile of its replicates */
        fprintf(fp, "\n  profile-likelihood %g-sigma intervals (thresholds from %zu bootstrap "
                "replicates at each end: a test inversion):\n", lvl, r->args->boot);
    else if (r->args->errors == FIT_XPCS_ERRORS_ROBUST)
        fprintf(fp, "\n  profile-likelihood %g-sigma intervals (delta chi2 = %g V_rob / V_mod at "
                "each end, in units of s^2):\n", lvl, lvl * lvl);
    else
        fprintf(fp, "\n  profile-likelihood %g-sigma intervals (delta chi2 = %g in units of "
                "s^2):\n", lvl, lvl * lvl);
    fprintf(fp, "  %-18s %15s   %15s %15s   %-11s %-11s %s\n", "parameter", "value", "lower",
            "upper", "-error", "+error", "solves");
    for (size_t k = 0; k < r->p; k++) {
        const nlsq_interval *iv = &r->intervals[k];
        if (!iv->n_solves) continue;
        char nm[32];
        xpcs_fit_param_name(r->np, k, nm, sizeof nm);
        fprintf(fp, "  %-18s %15.8g   %15.8g%s %15.8g%s %-11.4g %-11.4g %zu\n", nm, r->x[k],
                iv->lower, iv->lower_open ? "*" : " ", iv->upper, iv->upper_open ? "*" : " ",
                r->x[k] - iv->lower, iv->upper - r->x[k], iv->n_solves);
    }
    fprintf(fp, "  (* at a bound: the interval goes on beyond it)\n");
    if (undet)
        fprintf(fp, "  (an undetermined parameter has no finite error bar: its interval is its "
                "error bar)\n");
}

/* How many --test results r holds (the table, JSON and result file skip
 * their section at 0). */
static size_t tests_done(const xpcs_report *r)
{
    size_t n = 0;
    for (size_t k = 0; r->tests && k < r->np; k++) n += r->tests[k].done;
    return n;
}

/* --test: D, its bootstrap p-value and the 1- and 2-sigma verdicts. */
static void table_tests(FILE *fp, const xpcs_report *r)
{
    for (size_t k = 0, n = 0; r->tests && k < r->np; k++) {
        const xpcs_test *t = &r->tests[k];
        if (!t->done) continue;
        if (!n++)
            fprintf(fp, "\n  bootstrap tests (%zu replicates; D = 2 (C_held - C_min) / s^2, "
                    "inside the K-sigma interval when D <= q_K):\n", t->n_boot);
        fprintf(fp, "  %s = %.8g: D %.4g, p-value %.3g, q_1 %.4g (%s), q_2 %.4g (%s)\n",
                nlsq_xpcs_param_name(k), t->value, t->res.D, t->res.p_value, t->q1,
                t->res.D <= t->q1 ? "inside" : "outside", t->q2,
                t->res.D <= t->q2 ? "inside" : "outside");
    }
}

void xpcs_print_table(FILE *fp, const xpcs_report *r)
{
    const fit_xpcs_args *a = r->args;
    const nlsq_xpcs_selection *sel = r->sel;
    size_t P = r->P, np = r->np;
    fprintf(fp, "fit_xpcs: %s\n", a->input);
    fprintf(fp, "  q = %.6g 1/A, %zu angle%s, frames %zu..%zu (N = %zu), %s mode, %s triangle%s\n",
            sel->q, P, P == 1 ? "" : "s", sel->first_frame, sel->last_frame, r->N, mode_name(r),
            triangle_name(r), a->include_diagonal ? " + diagonal" : "");
    fprintf(fp, "  dt = %.10g s (%s)\n", r->cfg->dt, r->dt_source ? r->dt_source : "");
    fprintf(fp, "  method %s: %s (%s)%s%s\n", a->method, nlsq_status_name(r->status), r->message,
            a->resume ? ", resumed from " : "", a->resume ? a->resume : "");
    fprintf(fp, "  %zu iterations, %.3f s, %zu rows (%zu excluded), %zu parameters\n",
            r->iterations, r->seconds, r->n_rows, r->n_excluded, r->p);
    fprintf(fp, "  cost %.10g, chi2/dof %.6f (dof %.0f)\n\n", r->cost, r->reduced_chi2, r->dof);
    char b1[32], b2[32], b3[32], b4[32];
    if (r->have_truth) {
        fprintf(fp, "  %-18s %15s   %-12s %15s %9s   %s\n", "parameter", "value", "+- 1 sigma",
                "truth", "dev/sigma", "unit");
        for (size_t k = 0; k < np; k++)
            fprintf(fp, "  %-18s %15.8g   %-12s %15.8g %9s   %s\n", nlsq_xpcs_param_name(k),
                    r->x[k], fmt_err(r->err[k], b1, sizeof b1), r->truth_phys[k],
                    fmt_dev(deviation(r->x[k], r->truth_phys[k], r->err[k]), b2, sizeof b2),
                    nlsq_xpcs_param_unit(k));
    } else {
        fprintf(fp, "  %-18s %15s   %-12s %s\n", "parameter", "value", "+- 1 sigma", "unit");
        for (size_t k = 0; k < np; k++)
            fprintf(fp, "  %-18s %15.8g   %-12s %s\n", nlsq_xpcs_param_name(k), r->x[k],
                    fmt_err(r->err[k], b1, sizeof b1), nlsq_xpcs_param_unit(k));
    }
    if (np < NLSQ_XPCS_N_PHYS) fprintf(fp, "  (static mode: no shear parameters)\n");
    int tc = r->have_truth && r->truth_contrast && r->truth_offset;
    if (tc) {
        fprintf(fp, "\n  %5s %10s %12s %-12s %12s %9s %12s %-12s %12s %9s\n", "angle", "phi [deg]",
                "contrast", "+-", "truth", "dev/sigma", "offset", "+-", "truth", "dev/sigma");
        for (size_t k = 0; k < P; k++) {
            double c = r->x[np + 2 * k], o = r->x[np + 2 * k + 1];
            double ce = r->err[np + 2 * k], oe = r->err[np + 2 * k + 1];
            fprintf(fp, "  %5zu %10.4f %12.8f %-12s %12.8f %9s %12.8f %-12s %12.8f %9s\n", k,
                    sel->phi[k], c, fmt_err(ce, b1, sizeof b1), r->truth_contrast[k],
                    fmt_dev(deviation(c, r->truth_contrast[k], ce), b2, sizeof b2), o,
                    fmt_err(oe, b3, sizeof b3), r->truth_offset[k],
                    fmt_dev(deviation(o, r->truth_offset[k], oe), b4, sizeof b4));
        }
    } else {
        fprintf(fp, "\n  %5s %10s %12s %-12s %12s %s\n", "angle", "phi [deg]", "contrast",
                "+-", "offset", "+-");
        for (size_t k = 0; k < P; k++)
            fprintf(fp, "  %5zu %10.4f %12.8f %-12s %12.8f %s\n", k, sel->phi[k],
                    r->x[np + 2 * k], fmt_err(r->err[np + 2 * k], b1, sizeof b1),
                    r->x[np + 2 * k + 1], fmt_err(r->err[np + 2 * k + 1], b2, sizeof b2));
    }
    if (r->have_truth)
        fprintf(fp, "\n  truth: synthetic file (group nlsq_synth); dev/sigma = (value - truth) / sigma\n");
    if (r->args->errors == FIT_XPCS_ERRORS_ROBUST)
        fprintf(fp, "  errors: robust (cluster sandwich over the %zu frames; docs/uncertainties.md)\n",
                r->N);
    if (r->global && !r->global->n_grid)   /* local start, the fit's mirror as good */
        fprintf(fp, "  start: local; AMBIGUOUS: %s\n", r->global->message);
    else if (r->global)
        fprintf(fp, "  start: global (%zu grid points, %zu LM solves on %zu sample rows, %.2f s)%s%s\n",
                r->global->n_grid, r->global->n_refined, r->global->sample_rows,
                r->global->seconds, r->global->ambiguous ? "; AMBIGUOUS: " : "",
                r->global->ambiguous ? r->global->message : "");
    table_intervals(fp, r);
    table_tests(fp, r);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                       */
/* ------------------------------------------------------------------------ */

static void json_num(FILE *fp, double v)
{
    if (isfinite(v)) fprintf(fp, "%.17g", v);
    else fputs("null", fp);
}

/* A JSON string: valid UTF-8 whatever the bytes (utf8_text.h: a byte that
 * is not UTF-8 becomes \u00XX). */
static void json_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *c = (const unsigned char *)s; *c;) {
        size_t k = utf8_sequence_length(c);
        if (k > 1) fwrite(c, 1, k, fp);
        else if (k == 0 || *c < 0x20 || *c == 0x7f) {
            if (*c == '\n') fputs("\\n", fp);
            else if (*c == '\t') fputs("\\t", fp);
            else fprintf(fp, "\\u%04x", *c);
        } else if (*c == '"' || *c == '\\') fprintf(fp, "\\%c", *c);
        else fputc(*c, fp);
        c += k ? k : 1;
    }
    fputc('"', fp);
}

static void json_array(FILE *fp, const double *v, size_t n)
{
    fputc('[', fp);
    for (size_t k = 0; k < n; k++) {
        if (k) fputs(", ", fp);
        json_num(fp, v[k]);
    }
    fputc(']', fp);
}

/* {"D0": v[0], ...} over the first n physical parameters. */
static void json_phys(FILE *fp, const double *v, size_t n)
{
    fputc('{', fp);
    for (size_t k = 0; k < n; k++) {
        fprintf(fp, "%s\"%s\": ", k ? ", " : "", nlsq_xpcs_param_name(k));
        json_num(fp, v[k]);
    }
    fputc('}', fp);
}

/* Per-angle array t: 0 contrast, 1 offset, 2 contrast errors, 3 offset errors. */
static void json_angles(FILE *fp, const xpcs_report *r, int t)
{
    fputc('[', fp);
    for (size_t k = 0; k < r->P; k++) {
        size_t idx = r->np + 2 * k + (size_t)(t % 2);
        if (k) fputs(", ", fp);
        json_num(fp, t < 2 ? r->x[idx] : r->err[idx]);
    }
    fputc(']', fp);
}

/* The profile threshold's kind, as the JSON's intervals_threshold. */
static const char *threshold_kind(const fit_xpcs_args *a)
{
    return a->boot ? "bootstrap" : a->errors == FIT_XPCS_ERRORS_ROBUST ? "robust" : "chi2";
}

/* "flags": {name: "free" | "fixed" | "at_lower" | ... } over the fit vector. */
static void json_uncertainty(FILE *fp, const xpcs_report *r)
{
    fprintf(fp, ", \"errors_kind\": \"%s\"",
            r->args->errors == FIT_XPCS_ERRORS_ROBUST ? "robust" : "default");
    if (r->intervals) {
        fputs(", \"intervals_level\": ", fp);
        json_num(fp, r->args->profile_level);
        fprintf(fp, ", \"intervals_threshold\": \"%s\", \"intervals_boot\": %zu",
                threshold_kind(r->args), r->args->boot);
        static const char *const key[3] = {"intervals", "intervals_open", "intervals_delta"};
        for (int t = 0; t < 3; t++) {
            fprintf(fp, ", \"%s\": {", key[t]);
            for (size_t k = 0, n = 0; k < r->p; k++) {
                const nlsq_interval *iv = &r->intervals[k];
                if (!iv->n_solves) continue;
                char nm[32];
                xpcs_fit_param_name(r->np, k, nm, sizeof nm);
                fprintf(fp, "%s\"%s\": [", n++ ? ", " : "", nm);
                if (t == 1) fprintf(fp, "%s, %s]", iv->lower_open ? "true" : "false",
                                    iv->upper_open ? "true" : "false");
                else {   /* the ends, or the threshold each was found for */
                    json_num(fp, t ? iv->delta_lower : iv->lower);
                    fputs(", ", fp);
                    json_num(fp, t ? iv->delta_upper : iv->upper);
                    fputc(']', fp);
                }
            }
            fputc('}', fp);
        }
    }
    const size_t n_tests = tests_done(r);
    if (n_tests) fputs(", \"tests\": {", fp);
    for (size_t k = 0, n = 0; n_tests && k < r->np; k++) {
        const xpcs_test *t = &r->tests[k];
        if (!t->done) continue;
        fprintf(fp, "%s\"%s\": {\"value\": ", n++ ? ", " : "", nlsq_xpcs_param_name(k));
        const double v[5] = {t->value, t->res.D, t->res.p_value, t->q1, t->q2};
        static const char *const key[5] = {"", "D", "p_value", "q_1sigma", "q_2sigma"};
        for (int i = 0; i < 5; i++) {
            if (i) fprintf(fp, ", \"%s\": ", key[i]);
            json_num(fp, v[i]);
        }
        fprintf(fp, ", \"n_boot\": %zu, \"n_solves\": %zu}", t->n_boot, t->res.n_solves);
    }
    if (n_tests) fputc('}', fp);
    if (!r->flags) return;
    fputs(", \"flags\": {", fp);
    for (size_t k = 0; k < r->p; k++) {
        char nm[32];
        xpcs_fit_param_name(r->np, k, nm, sizeof nm);
        fprintf(fp, "%s\"%s\": \"%s\"", k ? ", " : "", nm, nlsq_param_flags_name(r->flags[k]));
    }
    fputc('}', fp);
}

/* "start": the global start stage ({"kind": "local"} without it; a local
 * start whose fit's phi0 mirror fits as well has n_grid 0); with an
 * ambiguity, the other minimum's physical parameters and the message. */
static void json_start(FILE *fp, const xpcs_report *r)
{
    const nlsq_xpcs_global_result *g = r->global;
    if (!g || !g->n_grid) {
        fputs(", \"start\": {\"kind\": \"local\"", fp);
    } else {
        fprintf(fp, ", \"start\": {\"kind\": \"global\", \"grid_points\": %zu, \"solves\": %zu, "
                "\"sample_rows\": %zu, \"sample_cost\": ", g->n_grid, g->n_refined, g->sample_rows);
        json_num(fp, g->sample_cost);
        fputs(", \"seconds\": ", fp);
        json_num(fp, g->seconds);
    }
    if (!g) {
        fputc('}', fp);
        return;
    }
    fprintf(fp, ", \"ambiguous\": %s", g->ambiguous ? "true" : "false");
    if (g->ambiguous) {
        fputs(", \"delta_chi2\": ", fp);
        json_num(fp, g->delta_chi2);
        fputs(", \"alternative\": ", fp);
        json_phys(fp, g->alt, r->np);
        fputs(", \"ambiguity\": ", fp);
        json_str(fp, g->message);
    }
    fputc('}', fp);
}

/* How the run ended: status, cost, counts, time and the solver phases. */
static void json_run(FILE *fp, const xpcs_report *r)
{
    fputs("\"status\": ", fp);
    json_str(fp, nlsq_status_name(r->status));
    fprintf(fp, ", \"status_code\": %d, \"message\": ", r->status);
    json_str(fp, r->message);
    fputs(", \"cost\": ", fp);
    json_num(fp, r->cost);
    fputs(", \"reduced_chi2\": ", fp);
    json_num(fp, r->reduced_chi2);
    fprintf(fp, ", \"n_rows\": %zu, \"n_excluded\": %zu, \"n_params\": %zu, \"dof\": ", r->n_rows,
            r->n_excluded, r->p);
    json_num(fp, r->dof);
    fprintf(fp, ", \"iterations\": %zu, \"n_eval\": %zu, \"n_jac\": %zu, \"seconds\": ",
            r->iterations, r->n_eval, r->n_jac);
    json_num(fp, r->seconds);
    fputs(", \"phases\": [", fp);
    for (size_t k = 0; k < r->n_phases && k < 3; k++) {
        const nlsq_phase_stats *ph = &r->phases[k];
        fprintf(fp, "%s{\"phase\": \"%s\", \"iterations\": %zu, \"n_eval\": %zu, \"n_jac\": %zu, "
                "\"cost\": ", k ? ", " : "",
                ph->phase == NLSQ_PHASE_ADAM ? "adam" : ph->phase == NLSQ_PHASE_LM ? "lm" : "covariance",
                ph->iterations, ph->n_eval, ph->n_jac);
        json_num(fp, ph->cost);
        fputs(", \"seconds\": ", fp);
        json_num(fp, ph->seconds);
        fputc('}', fp);
    }
    fputc(']', fp);
}

/* What was fitted: the file, the model and the selection. */
static void json_selection(FILE *fp, const xpcs_report *r)
{
    const fit_xpcs_args *a = r->args;
    fputs(", \"file\": ", fp);
    json_str(fp, a->input);
    fprintf(fp, ", \"mode\": \"%s\", \"method\": \"%s\", \"triangle\": \"%s\", \"q\": ",
            mode_name(r), a->method, triangle_name(r));
    json_num(fp, r->sel->q);
    fputs(", \"dt\": ", fp);
    json_num(fp, r->cfg->dt);
    fputs(", \"dt_source\": ", fp);
    json_str(fp, r->dt_source ? r->dt_source : "");
    fprintf(fp, ", \"frames\": [%zu, %zu], \"phi\": ", r->sel->first_frame, r->sel->last_frame);
    json_array(fp, r->sel->phi, r->P);
}

/* The fitted values: physical parameters (0 when fixed), their errors, the
 * names not fitted, and the per-angle contrast and offset. */
static void json_values(FILE *fp, const xpcs_report *r)
{
    double v[NLSQ_XPCS_N_PHYS], e[NLSQ_XPCS_N_PHYS];
    for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++) {
        v[k] = xpcs_report_phys(r, k);
        e[k] = xpcs_report_phys_err(r, k);
    }
    fputs(", \"params\": ", fp);
    json_phys(fp, v, NLSQ_XPCS_N_PHYS);
    fputs(", \"errors\": ", fp);
    json_phys(fp, e, NLSQ_XPCS_N_PHYS);
    /* not fitted: held by --config (lower == upper), and the shear
     * parameters in static mode */
    fputs(", \"fixed\": [", fp);
    for (size_t k = 0, n = 0; k < NLSQ_XPCS_N_PHYS; k++)
        if (k >= r->np || (r->args->lower[k] == r->args->upper[k]))
            fprintf(fp, "%s\"%s\"", n++ ? ", " : "", nlsq_xpcs_param_name(k));
    fputc(']', fp);
    static const char *const arrays[4] = {"contrast", "offset", "contrast_errors", "offset_errors"};
    for (int t = 0; t < 4; t++) {
        fprintf(fp, ", \"%s\": ", arrays[t]);
        json_angles(fp, r, t);
    }
}

/* "truth" of a synthetic file, and the deviations (value - truth) / sigma,
 * null where sigma is undetermined. */
static void json_truth(FILE *fp, const xpcs_report *r)
{
    const size_t P = r->P, np = r->np;
    int per_angle = r->truth_contrast && r->truth_offset;
    fputs(", \"truth\": {\"params\": ", fp);
    json_phys(fp, r->truth_phys, NLSQ_XPCS_N_PHYS);
    if (per_angle) {
        fputs(", \"contrast\": ", fp);
        json_array(fp, r->truth_contrast, P);
        fputs(", \"offset\": ", fp);
        json_array(fp, r->truth_offset, P);
    }
    double dev[NLSQ_XPCS_N_PHYS] = {0};
    for (size_t k = 0; k < np; k++) dev[k] = deviation(r->x[k], r->truth_phys[k], r->err[k]);
    fputs(", \"deviation_sigmas\": {\"params\": ", fp);
    json_phys(fp, dev, np);
    for (int t = 0; per_angle && t < 2; t++) {
        fprintf(fp, ", \"%s\": [", t ? "offset" : "contrast");
        const double *tv = t ? r->truth_offset : r->truth_contrast;
        for (size_t k = 0; k < P; k++) {
            size_t idx = np + 2 * k + (size_t)t;
            if (k) fputs(", ", fp);
            json_num(fp, deviation(r->x[idx], tv[k], r->err[idx]));
        }
        fputc(']', fp);
    }
    fputs("}}", fp);
}

void xpcs_print_json_object(FILE *fp, const xpcs_report *r)
{
    fputc('{', fp);
    json_run(fp, r);
    json_selection(fp, r);
    json_values(fp, r);
    if (r->have_truth) json_truth(fp, r);
    json_uncertainty(fp, r);
    json_start(fp, r);
    if (r->args->resume) {
        fputs(", \"resumed_from\": ", fp);
        json_str(fp, r->args->resume);
    }
    fputc('}', fp);
}

void xpcs_print_json(FILE *fp, const xpcs_report *r)
{
    xpcs_print_json_object(fp, r);
    fputc('\n', fp);
}

/* ------------------------------------------------------------------------ */
/* HDF5 result file                                                           */
/* ------------------------------------------------------------------------ */

/* All helpers return a negative value on failure (HDF5 style). */

static herr_t attr_raw(hid_t obj, const char *name, hid_t type, hid_t space, const void *v)
{
    hid_t at = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (at < 0) return -1;
    herr_t e = H5Awrite(at, type, v);
    H5Aclose(at);
    return e;
}

static herr_t attr_double(hid_t obj, const char *name, double v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    herr_t e = attr_raw(obj, name, H5T_NATIVE_DOUBLE, sp, &v);
    H5Sclose(sp);
    return e;
}

static herr_t attr_int(hid_t obj, const char *name, long long v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    herr_t e = attr_raw(obj, name, H5T_NATIVE_LLONG, sp, &v);
    H5Sclose(sp);
    return e;
}

static hid_t vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

/* A UTF-8 string attribute (invalid bytes repaired as in utf8_text.h). */
static herr_t attr_str(hid_t obj, const char *name, const char *v)
{
    char *fixed = utf8_repaired(v ? v : "");
    if (!fixed) return -1;
    hid_t t = vlen_str_type(), sp = H5Screate(H5S_SCALAR);
    const char *p = fixed;
    herr_t e = attr_raw(obj, name, t, sp, &p);
    H5Sclose(sp);
    H5Tclose(t);
    free(fixed);
    return e;
}

static herr_t attr_doubles(hid_t obj, const char *name, const double *v, size_t n)
{
    hsize_t d = n;
    hid_t sp = H5Screate_simple(1, &d, NULL);
    herr_t e = attr_raw(obj, name, H5T_NATIVE_DOUBLE, sp, v);
    H5Sclose(sp);
    return e;
}

static herr_t attr_strs(hid_t obj, const char *name, const char *const *v, size_t n)
{
    hsize_t d = n;
    hid_t t = vlen_str_type(), sp = H5Screate_simple(1, &d, NULL);
    herr_t e = attr_raw(obj, name, t, sp, v);
    H5Sclose(sp);
    H5Tclose(t);
    return e;
}

/* A dataset of rank 0 (dims NULL), 1 or 2, float64, written at once; returns
 * the open dataset (caller closes) or < 0. */
static hid_t dset_doubles(hid_t loc, const char *name, int rank, const hsize_t *dims,
                          const double *v)
{
    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    if (sp < 0) return -1;
    hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    if (ds < 0) return -1;
    if (H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
        H5Dclose(ds);
        return -1;
    }
    return ds;
}

static herr_t put_doubles(hid_t loc, const char *name, size_t n, const double *v)
{
    hsize_t d = n;
    hid_t ds = dset_doubles(loc, name, 1, &d, v);
    if (ds < 0) return -1;
    return H5Dclose(ds);
}

static herr_t put_strs(hid_t loc, const char *name, const char *const *v, size_t n)
{
    hsize_t d = n;
    hid_t t = vlen_str_type(), sp = H5Screate_simple(1, &d, NULL);
    hid_t ds = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = ds < 0 ? -1 : H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Tclose(t);
    return e;
}

/* The p parameter names of the fit vector ("D0", ..., "contrast_0",
 * "offset_0", ...), in one malloc'ed block. */
static char **param_names(const xpcs_report *r)
{
    size_t p = r->p;
    char **names = malloc(p * sizeof(char *) + p * 32);
    if (!names) return NULL;
    char *txt = (char *)(names + p);
    for (size_t k = 0; k < p; k++) {
        names[k] = txt + 32 * k;
        xpcs_fit_param_name(r->np, k, names[k], 32);
    }
    return names;
}

size_t xpcs_row_block(size_t N, size_t doubles)
{
    size_t B = doubles / (N ? N : 1);
    if (B < 1) B = 1;
    if (B > 64) B = 64;
    if (B > N) B = N;
    return B;
}

int xpcs_report_read_rows(const xpcs_report *r, size_t a, size_t i0, size_t nr, double *data,
                          const char *what, char *err, size_t es)
{
    char rerr[256] = "";
    if (nlsq_xpcs_read_rows(r->file, r->sel, a, i0, nr, data, rerr, sizeof rerr) == 0) return 0;
    snprintf(err, es, "%s: %s", what, rerr);
    return -1;
}

/* What write_fit streams through: the open groups, the dataset space and
 * creation properties shared by every angle, and B rows of buffers. */
typedef struct fit_writer {
    const xpcs_report *r;
    nlsq_xpcs_g2_rows *g;
    hid_t gcf, gcr, fsp, dcpl;
    size_t B;
    double *data, *fit;
    float *f32, *r32;
} fit_writer;

/* Rows i0..i0+nr-1 of both datasets: the model, and (data - model) / sigma. */
static int write_fit_block(fit_writer *w, hid_t df, hid_t dr, size_t i0, size_t nr)
{
    const size_t N = w->r->N;
    const double sigma = w->r->cfg->sigma;
    for (size_t k = 0; k < nr * N; k++) {
        w->f32[k] = (float)w->fit[k];
        w->r32[k] = (float)((w->data[k] - w->fit[k]) / sigma);
    }
    hsize_t start[2] = {i0, 0}, cnt[2] = {nr, N};
    hid_t msp = H5Screate_simple(2, cnt, NULL);
    int ok = msp >= 0 &&
             H5Sselect_hyperslab(w->fsp, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0 &&
             H5Dwrite(df, H5T_NATIVE_FLOAT, msp, w->fsp, H5P_DEFAULT, w->f32) >= 0 &&
             H5Dwrite(dr, H5T_NATIVE_FLOAT, msp, w->fsp, H5P_DEFAULT, w->r32) >= 0;
    if (msp >= 0) H5Sclose(msp);
    return ok ? 0 : -1;
}

/* /fit/c2_fit/angle_a and /fit/c2_residual/angle_a: 0; 1 when the input
 * could not be read (err says why); -1 on an HDF5 error. */
static int write_fit_angle(fit_writer *w, size_t a, char *err, size_t es)
{
    const xpcs_report *r = w->r;
    const size_t N = r->N;
    char name[32];
    snprintf(name, sizeof name, "angle_%03zu", a);
    hid_t df = H5Dcreate2(w->gcf, name, H5T_IEEE_F32LE, w->fsp, H5P_DEFAULT, w->dcpl, H5P_DEFAULT);
    hid_t dr = H5Dcreate2(w->gcr, name, H5T_IEEE_F32LE, w->fsp, H5P_DEFAULT, w->dcpl, H5P_DEFAULT);
    int ok = df >= 0 && dr >= 0, rc = 0;
    hid_t both[2] = {df, dr};
    for (int k = 0; ok && k < 2; k++)
        ok = attr_double(both[k], "phi", r->sel->phi[a]) >= 0 &&
             attr_int(both[k], "angle_index", (long long)a) >= 0;
    for (size_t i0 = 0; ok && i0 < N; i0 += w->B) {
        size_t nr = N - i0 < w->B ? N - i0 : w->B;
        if (xpcs_report_read_rows(r, a, i0, nr, w->data, "reading rows for /fit", err, es) != 0) {
            rc = 1;
            break;
        }
        nlsq_xpcs_g2_rows_eval(w->g, a, i0, nr, 0, N, w->fit);   /* in range by construction */
        ok = write_fit_block(w, df, dr, i0, nr) == 0;
    }
    if (df >= 0) H5Dclose(df);
    if (dr >= 0) H5Dclose(dr);
    return rc ? rc : ok ? 0 : -1;
}

/* /fit's groups, attributes and the dataset layout shared by every angle:
 * N x N float32, chunks of whole row blocks, gzip. */
static int open_fit_groups(hid_t fid, fit_writer *w)
{
    const xpcs_report *r = w->r;
    hid_t gfit = H5Gcreate2(fid, "fit", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (gfit < 0) return -1;
    int ok = attr_double(gfit, "sigma", r->cfg->sigma) >= 0 &&
             attr_str(gfit, "c2_fit", "model g2 at the fitted parameters, full N x N matrix") >= 0 &&
             attr_str(gfit, "c2_residual", "(c2_data - c2_fit) / sigma, full N x N matrix "
                                           "(NaN where the data are not finite)") >= 0 &&
             attr_int(gfit, "first_frame", (long long)r->sel->first_frame) >= 0;
    if (ok) {
        w->gcf = H5Gcreate2(gfit, "c2_fit", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        w->gcr = H5Gcreate2(gfit, "c2_residual", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = w->gcf >= 0 && w->gcr >= 0;
    }
    H5Gclose(gfit);
    if (!ok) return -1;
    hsize_t dims[2] = {r->N, r->N}, chunk[2] = {w->B, r->N};
    if (chunk[1] > 16384) chunk[1] = 16384;
    w->fsp = H5Screate_simple(2, dims, NULL);
    w->dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (w->fsp < 0 || w->dcpl < 0 || H5Pset_chunk(w->dcpl, 2, chunk) < 0 ||
        H5Pset_shuffle(w->dcpl) < 0 || H5Pset_deflate(w->dcpl, 4) < 0)
        return -1;
    return 0;
}

/* /fit/c2_fit/angle_KKK and /fit/c2_residual/angle_KKK, row block by row
 * block (~8 MiB of float64 per buffer). */
static int write_fit(hid_t fid, const xpcs_report *r, char *err, size_t es)
{
    const size_t N = r->N;
    fit_writer w = {.r = r, .gcf = -1, .gcr = -1, .fsp = -1, .dcpl = -1};
    w.B = xpcs_row_block(N, (size_t)1 << 20);
    w.data = malloc(sizeof(double) * w.B * N);
    w.fit = malloc(sizeof(double) * w.B * N);
    w.f32 = malloc(sizeof(float) * w.B * N);
    w.r32 = malloc(sizeof(float) * w.B * N);
    int grc = nlsq_xpcs_g2_rows_create(r->cfg, N, r->P, r->sel->phi, r->x, &w.g);
    int rc = -1;
    if (grc != 0) {
        snprintf(err, es, "writing /fit: the model rows: %s", nlsq_xpcs_status_string(grc));
    } else if (!w.data || !w.fit || !w.f32 || !w.r32) {
        snprintf(err, es, "out of memory writing /fit (N = %zu)", N);
    } else {
        rc = open_fit_groups(fid, &w);
        for (size_t a = 0; rc == 0 && a < r->P; a++) rc = write_fit_angle(&w, a, err, es);
        if (rc < 0) snprintf(err, es, "HDF5 error writing /fit");
    }
    if (w.dcpl >= 0) H5Pclose(w.dcpl);
    if (w.fsp >= 0) H5Sclose(w.fsp);
    if (w.gcr >= 0) H5Gclose(w.gcr);
    if (w.gcf >= 0) H5Gclose(w.gcf);
    nlsq_xpcs_g2_rows_free(w.g);
    free(w.data);
    free(w.fit);
    free(w.f32);
    free(w.r32);
    return rc ? -1 : 0;
}

/* /intervals and /intervals_delta: p x 2 each (NaN where not profiled),
 * with the level, the threshold's kind and B as attributes of the first. */
static int write_intervals(hid_t fid, const xpcs_report *r, char **names)
{
    double *iv = malloc(sizeof(double) * 4 * r->p);
    if (!iv) return -1;
    for (size_t k = 0; k < r->p; k++) {
        const nlsq_interval *in = &r->intervals[k];
        int have = in->n_solves > 0;
        iv[2 * k] = have ? in->lower : NAN;
        iv[2 * k + 1] = have ? in->upper : NAN;
        iv[2 * r->p + 2 * k] = have ? in->delta_lower : NAN;
        iv[2 * r->p + 2 * k + 1] = have ? in->delta_upper : NAN;
    }
    hsize_t dims[2] = {r->p, 2};
    int rc = 0;
    for (int t = 0; t < 2 && rc == 0; t++) {
        hid_t ds = dset_doubles(fid, t ? "intervals_delta" : "intervals", 2, dims,
                                iv + 2 * r->p * (size_t)t);
        if (ds < 0 || attr_strs(ds, "parameter_order", (const char *const *)names, r->p) < 0)
            rc = -1;
        else if (t == 0 && (attr_str(ds, "definition", "profile likelihood: the t where 2 (C_j(t) "
                                     "- C_min) / s^2 <= delta, delta at each end in "
                                     "/intervals_delta; NaN: not profiled") < 0 ||
                            attr_double(ds, "level", r->args->profile_level) < 0 ||
                            attr_str(ds, "threshold", threshold_kind(r->args)) < 0 ||
                            attr_int(ds, "boot", (long long)r->args->boot) < 0))
            rc = -1;
        else if (t == 1 && attr_str(ds, "definition", "the threshold delta (units of s^2) each "
                                    "end of /intervals was found for") < 0)
            rc = -1;
        if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    }
    free(iv);
    return rc;
}

/* /tests: p x 5 (value, D, p_value, q_1sigma, q_2sigma; NaN where not
 * tested), as the JSON's "tests". */
static int write_tests(hid_t fid, const xpcs_report *r, char **names)
{
    double *v = malloc(sizeof(double) * 5 * r->p);
    if (!v) return -1;
    size_t B = 0;
    for (size_t k = 0; k < r->p; k++) {
        const xpcs_test *t = k < r->np ? &r->tests[k] : NULL;
        int have = t && t->done;
        const double row[5] = {have ? t->value : NAN, have ? t->res.D : NAN,
                               have ? t->res.p_value : NAN, have ? t->q1 : NAN,
                               have ? t->q2 : NAN};
        memcpy(v + 5 * k, row, sizeof row);
        if (have) B = t->n_boot;
    }
    static const char *const cols[5] = {"value", "D", "p_value", "q_1sigma", "q_2sigma"};
    hsize_t dims[2] = {r->p, 5};
    hid_t ds = dset_doubles(fid, "tests", 2, dims, v);
    free(v);
    int rc = ds < 0 || attr_strs(ds, "parameter_order", (const char *const *)names, r->p) < 0 ||
             attr_strs(ds, "columns", cols, 5) < 0 || attr_int(ds, "n_boot", (long long)B) < 0
             ? -1 : 0;
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    return rc;
}

/* /flags: p strings, the nlsq_param_flags_name of each fit-vector entry;
 * /intervals and /tests when there are any. */
static int write_uncertainty(hid_t fid, const xpcs_report *r, char **names)
{
    if (attr_str(fid, "errors", r->args->errors == FIT_XPCS_ERRORS_ROBUST ? "robust" : "default") < 0)
        return -1;
    if (r->intervals && write_intervals(fid, r, names) < 0) return -1;
    if (tests_done(r) && write_tests(fid, r, names) < 0) return -1;
    if (!r->flags) return 0;
    const char **fl = malloc(sizeof(char *) * r->p);
    if (!fl) return -1;
    for (size_t k = 0; k < r->p; k++) fl[k] = nlsq_param_flags_name(r->flags[k]);
    int rc = put_strs(fid, "flags", fl, r->p) < 0 ? -1 : 0;
    hid_t ds = rc == 0 ? H5Dopen2(fid, "flags", H5P_DEFAULT) : -1;
    if (ds < 0 || attr_strs(ds, "parameter_order", (const char *const *)names, r->p) < 0 ||
        H5Dclose(ds) < 0)
        rc = -1;
    free(fl);
    return rc;
}

/* Root attributes: what was fitted, and how the run ended. */
static int write_root_attrs(hid_t fid, const xpcs_report *r)
{
    const fit_xpcs_args *a = r->args;
    if (attr_str(fid, "program", "fit_xpcs") < 0 || attr_int(fid, "format_version", 1) < 0 ||
        attr_str(fid, "input", a->input) < 0 ||
        attr_str(fid, "layout", nlsq_xpcs_layout_of(r->file) == NLSQ_XPCS_LAYOUT_APS_OLD
                                    ? "APS old" : "APS-U") < 0 ||
        attr_int(fid, "first_frame", (long long)r->sel->first_frame) < 0 ||
        attr_int(fid, "last_frame", (long long)r->sel->last_frame) < 0 ||
        attr_int(fid, "n_frames", (long long)r->N) < 0 ||
        attr_double(fid, "dt", r->cfg->dt) < 0 ||
        attr_str(fid, "dt_source", r->dt_source ? r->dt_source : "") < 0 ||
        attr_double(fid, "cost", r->cost) < 0 ||
        attr_double(fid, "reduced_chi2", r->reduced_chi2) < 0 ||
        attr_int(fid, "n_rows", (long long)r->n_rows) < 0 ||
        attr_int(fid, "n_excluded", (long long)r->n_excluded) < 0 ||
        attr_int(fid, "n_params", (long long)r->p) < 0 || attr_double(fid, "dof", r->dof) < 0 ||
        attr_int(fid, "iterations", (long long)r->iterations) < 0 ||
        attr_str(fid, "status", nlsq_status_name(r->status)) < 0 ||
        attr_int(fid, "status_code", r->status) < 0 || attr_str(fid, "message", r->message) < 0 ||
        attr_double(fid, "seconds", r->seconds) < 0 || attr_str(fid, "method", a->method) < 0 ||
        attr_str(fid, "mode", mode_name(r)) < 0 ||
        attr_str(fid, "triangle", triangle_name(r)) < 0 ||
        attr_int(fid, "include_diagonal", a->include_diagonal) < 0 ||
        attr_str(fid, "resumed_from", a->resume ? a->resume : "") < 0)
        return -1;
    return 0;
}

/* The fit vector: q, phi, names, values, sigmas, the covariance and the
 * per-angle contrast and offset; tmp holds p * p + 4 P doubles. */
static int write_fit_vector(hid_t fid, const xpcs_report *r, char **names, double *tmp)
{
    const size_t p = r->p, P = r->P, np = r->np;
    hid_t ds;
    if ((ds = dset_doubles(fid, "q", 0, NULL, &r->sel->q)) < 0 || attr_str(ds, "unit", "1/A") < 0 ||
        H5Dclose(ds) < 0)
        return -1;
    if (put_doubles(fid, "phi", P, r->sel->phi) < 0 || put_strs(fid, "names", (const char *const *)names, p) < 0 ||
        put_doubles(fid, "values", p, r->x) < 0 || put_doubles(fid, "sigmas", p, r->err) < 0)
        return -1;
    hid_t dsp = H5Dopen2(fid, "phi", H5P_DEFAULT);
    if (dsp < 0 || attr_str(dsp, "unit", "degrees") < 0 || H5Dclose(dsp) < 0) return -1;
    for (size_t k = 0; k < p * p; k++) tmp[k] = r->cov ? r->cov[k] : NAN;
    hsize_t dc[2] = {p, p};
    if ((ds = dset_doubles(fid, "covariance", 2, dc, tmp)) < 0 ||
        attr_strs(ds, "parameter_order", (const char *const *)names, p) < 0 ||
        attr_int(ds, "available", r->cov != NULL) < 0 ||
        attr_str(ds, "definition", "2 cost / dof (J^T J)^-1, dof = observations used - free parameters (not fixed)") < 0 ||
        H5Dclose(ds) < 0)
        return -1;
    double *con = tmp, *off = tmp + P, *ces = tmp + 2 * P, *oes = tmp + 3 * P;
    for (size_t k = 0; k < P; k++) {
        con[k] = r->x[np + 2 * k];
        off[k] = r->x[np + 2 * k + 1];
        ces[k] = r->err[np + 2 * k];
        oes[k] = r->err[np + 2 * k + 1];
    }
    if (put_doubles(fid, "contrast", P, con) < 0 || put_doubles(fid, "offset", P, off) < 0 ||
        put_doubles(fid, "contrast_sigma", P, ces) < 0 || put_doubles(fid, "offset_sigma", P, oes) < 0)
        return -1;
    return 0;
}

/* /params: one scalar per physical parameter (unit, sigma, fixed). */
static int write_params(hid_t g, const xpcs_report *r, int unused)
{
    (void)unused;
    for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++) {
        double v = xpcs_report_phys(r, k);
        hid_t ds;
        if ((ds = dset_doubles(g, nlsq_xpcs_param_name(k), 0, NULL, &v)) < 0 ||
            attr_str(ds, "unit", nlsq_xpcs_param_unit(k)) < 0 ||
            attr_double(ds, "sigma", xpcs_report_phys_err(r, k)) < 0 ||
            attr_int(ds, "fixed", k >= r->np) < 0 || H5Dclose(ds) < 0)
            return -1;
    }
    return 0;
}

/* /options: the command line that produced this file. */
static int write_options(hid_t g, const xpcs_report *r, int save_fit)
{
    const fit_xpcs_args *a = r->args;
    char frames[64];
    if (a->have_frames && a->last != SIZE_MAX) snprintf(frames, sizeof frames, "%zu:%zu", a->first, a->last);
    else if (a->have_frames) snprintf(frames, sizeof frames, "%zu:", a->first);
    else frames[0] = '\0';
    if (attr_double(g, "dt", a->have_dt ? a->dt : NAN) < 0 || attr_double(g, "gap", a->have_gap ? a->gap : NAN) < 0 ||
        attr_double(g, "q", a->q) < 0 || attr_str(g, "frames", frames) < 0 ||
        attr_str(g, "mode", mode_name(r)) < 0 || attr_str(g, "method", a->method) < 0 ||
        attr_str(g, "triangle", triangle_name(r)) < 0 ||
        attr_int(g, "include_diagonal", a->include_diagonal) < 0 ||
        attr_int(g, "threads", a->n_threads) < 0 || attr_double(g, "sigma", a->sigma) < 0 ||
        attr_int(g, "max_iter", (long long)a->max_iter) < 0 ||
        attr_double(g, "memory_budget_mib", a->budget_mib) < 0 ||
        attr_int(g, "k0", (long long)a->k0) < 0 ||
        attr_doubles(g, "init", a->init, NLSQ_XPCS_N_PHYS) < 0 ||
        attr_str(g, "checkpoint", a->checkpoint ? a->checkpoint : "") < 0 ||
        attr_int(g, "checkpoint_every", (long long)a->checkpoint_every) < 0 ||
        attr_str(g, "resume", a->resume ? a->resume : "") < 0 ||
        attr_int(g, "save_fit", save_fit) < 0)
        return -1;
    return 0;
}

/* /truth (synthetic files): the physical parameters, and per angle when known. */
static int write_truth(hid_t g, const xpcs_report *r, int unused)
{
    (void)unused;
    if (put_doubles(g, "params", NLSQ_XPCS_N_PHYS, r->truth_phys) < 0) return -1;
    if (r->truth_contrast && r->truth_offset &&
        (put_doubles(g, "contrast", r->P, r->truth_contrast) < 0 ||
         put_doubles(g, "offset", r->P, r->truth_offset) < 0))
        return -1;
    return 0;
}

/* A new group `name` under fid filled by fill(g, r, arg); the group is
 * closed whatever happens. */
static int write_group(hid_t fid, const char *name, int (*fill)(hid_t, const xpcs_report *, int),
                       const xpcs_report *r, int arg)
{
    hid_t g = H5Gcreate2(fid, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    int rc = fill(g, r, arg);
    H5Gclose(g);
    return rc;
}

static int write_all(hid_t fid, const xpcs_report *r, int save_fit, char *err, size_t es)
{
    const size_t p = r->p, P = r->P;
    char **names = param_names(r);
    double *tmp = malloc(sizeof(double) * (p * p + 4 * P + 2 * p + 16));
    int rc = -1;
    if (!names || !tmp) {
        snprintf(err, es, "out of memory");
        goto out;
    }
    if (write_root_attrs(fid, r) < 0 || write_fit_vector(fid, r, names, tmp) < 0 ||
        write_group(fid, "params", write_params, r, 0) < 0 ||
        write_group(fid, "options", write_options, r, save_fit) < 0 ||
        (r->have_truth && write_group(fid, "truth", write_truth, r, 0) < 0) ||
        write_uncertainty(fid, r, names) < 0) {
        snprintf(err, es, "HDF5 error while writing the result");
        goto out;
    }
    if (save_fit && write_fit(fid, r, err, es) != 0) goto out;
    rc = 0;
out:
    free(names);
    free(tmp);
    return rc;
}

/* The system's reason in HDF5's current error stack (its file drivers
 * record "..., error message = 'No space left on device', ..."), for the one
 * line; "HDF5 error" when there is none. */
static herr_t os_error_cb(unsigned n, const H5E_error2_t *e, void *ctx)
{
    (void)n;
    const char *k = e && e->desc ? strstr(e->desc, "error message = '") : NULL;
    if (!k) return 0;
    k += strlen("error message = '");
    const char *end = strchr(k, '\'');
    size_t len = end ? (size_t)(end - k) : strlen(k);
    if (len > 120) len = 120;
    memcpy(ctx, k, len);
    ((char *)ctx)[len] = '\0';
    return 1;
}

static const char *h5_reason(char *buf, size_t size)
{
    snprintf(buf, size, "HDF5 error");
    if (size > 121) H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, os_error_cb, buf);
    return buf;
}

int xpcs_result_open(xpcs_result_file *rf, const char *path, char *err, size_t es)
{
    char why[128];
    size_t n = strlen(path) + 16;
    rf->path = path;
    rf->fid = -1;
    rf->tmp = malloc(n);
    if (!rf->tmp) {
        snprintf(err, es, "--output %s: out of memory", path);
        return -1;
    }
    int fd = safe_temp_create(path, rf->tmp, n);
    if (fd < 0) {
        snprintf(err, es, "--output %s: cannot create a temporary next to it: %s", path,
                 strerror(errno));
        free(rf->tmp);
        rf->tmp = NULL;
        return -1;
    }
    close(fd);   /* HDF5 opens it again by name (the name is ours: mkstemp) */
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    rf->fid = H5Fcreate(rf->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (rf->fid < 0)
        snprintf(err, es, "--output %s: cannot create '%s': %s", path, rf->tmp,
                 h5_reason(why, sizeof why));
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    if (rf->fid >= 0) return 0;
    unlink(rf->tmp);
    free(rf->tmp);
    rf->tmp = NULL;
    return -1;
}

int xpcs_result_add(xpcs_result_file *rf, const char *group, const xpcs_report *r, int save_fit,
                    char *err, size_t es)
{
    char e2[400] = "", why[128];
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t loc = group ? H5Gcreate2(rf->fid, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : rf->fid;
    int rc = -1;
    if (loc < 0) snprintf(e2, sizeof e2, "cannot create group '%s': %s", group, h5_reason(why, sizeof why));
    else rc = write_all(loc, r, save_fit, e2, sizeof e2);
    if (group && loc >= 0 && H5Gclose(loc) < 0 && rc == 0) rc = -1;
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    if (rc != 0) snprintf(err, es, "--output %s: %s", rf->path, e2);
    return rc;
}

int xpcs_result_close(xpcs_result_file *rf, int commit, char *err, size_t es)
{
    char why[128];
    int rc = 0;
    if (!rf->tmp) return -1;
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* a failed close (disk full while flushing) leaves the file open in
     * HDF5; fit_xpcs calls H5dont_atexit so that HDF5 does not close it
     * again at exit */
    if (H5Fclose(rf->fid) < 0 && commit) {
        snprintf(err, es, "--output %s: cannot finish '%s': %s", rf->path, rf->tmp,
                 h5_reason(why, sizeof why));
        rc = -1;
    }
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    if (rc != 0 || !commit) unlink(rf->tmp);
    else rc = safe_commit("--output", rf->tmp, rf->path, err, es);
    free(rf->tmp);
    rf->tmp = NULL;
    rf->fid = -1;
    return commit ? rc : 0;
}

int xpcs_write_result(const char *path, const xpcs_report *r, int save_fit, char *err, size_t es)
{
    xpcs_result_file rf;
    if (xpcs_result_open(&rf, path, err, es) != 0) return -1;
    int ok = xpcs_result_add(&rf, NULL, r, save_fit, err, es) == 0;
    int rc = xpcs_result_close(&rf, ok, err, es);
    return ok ? rc : -1;
}
