/*
 * xpcs_output.c - fit_xpcs reports: table, JSON, HDF5 result file, fitted
 * c2 rows (see xpcs_output.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "xpcs_output.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XO_PI 3.14159265358979323846

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

void xpcs_print_table(FILE *fp, const xpcs_report *r)
{
    const fit_xpcs_args *a = r->args;
    const nlsq_xpcs_selection *sel = r->sel;
    size_t P = r->P, np = r->np;
    fprintf(fp, "fit_xpcs: %s\n", a->input);
    fprintf(fp, "  q = %.6g 1/A, %zu angle%s, frames %zu..%zu (N = %zu), %s mode, %s triangle%s\n",
            sel->q, P, P == 1 ? "" : "s", sel->first_frame, sel->last_frame, r->N, mode_name(r),
            triangle_name(r), a->include_diagonal ? " + diagonal" : "");
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
        fprintf(fp, "\n  %5s %10s %12s %-12s %12s %-12s\n", "angle", "phi [deg]", "contrast",
                "+-", "offset", "+-");
        for (size_t k = 0; k < P; k++)
            fprintf(fp, "  %5zu %10.4f %12.8f %-12s %12.8f %-12s\n", k, sel->phi[k],
                    r->x[np + 2 * k], fmt_err(r->err[np + 2 * k], b1, sizeof b1),
                    r->x[np + 2 * k + 1], fmt_err(r->err[np + 2 * k + 1], b2, sizeof b2));
    }
    if (r->have_truth)
        fprintf(fp, "\n  truth: synthetic file (group nlsq_synth); dev/sigma = (value - truth) / sigma\n");
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                       */
/* ------------------------------------------------------------------------ */

static void json_num(FILE *fp, double v)
{
    if (isfinite(v)) fprintf(fp, "%.17g", v);
    else fputs("null", fp);
}

static void json_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(fp, "\\%c", *c);
        else if (*c == '\n') fputs("\\n", fp);
        else if (*c == '\t') fputs("\\t", fp);
        else if (*c < 0x20 || *c == 0x7f) fprintf(fp, "\\u%04x", *c);
        else fputc(*c, fp);
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

void xpcs_print_json(FILE *fp, const xpcs_report *r)
{
    const fit_xpcs_args *a = r->args;
    size_t P = r->P, np = r->np;
    fputs("{\"status\": ", fp);
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
    fprintf(fp, ", \"iterations\": %zu, \"seconds\": ", r->iterations);
    json_num(fp, r->seconds);
    fputs(", \"file\": ", fp);
    json_str(fp, a->input);
    fprintf(fp, ", \"mode\": \"%s\", \"method\": \"%s\", \"triangle\": \"%s\", \"q\": ",
            mode_name(r), a->method, triangle_name(r));
    json_num(fp, r->sel->q);
    fprintf(fp, ", \"frames\": [%zu, %zu], \"phi\": ", r->sel->first_frame, r->sel->last_frame);
    json_array(fp, r->sel->phi, P);
    fputs(", \"params\": {", fp);
    for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++) {
        fprintf(fp, "%s\"%s\": ", k ? ", " : "", nlsq_xpcs_param_name(k));
        json_num(fp, xpcs_report_phys(r, k));
    }
    fputs("}, \"errors\": {", fp);
    for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++) {
        fprintf(fp, "%s\"%s\": ", k ? ", " : "", nlsq_xpcs_param_name(k));
        json_num(fp, xpcs_report_phys_err(r, k));
    }
    fputs("}, \"fixed\": [", fp);
    for (size_t k = np; k < NLSQ_XPCS_N_PHYS; k++)
        fprintf(fp, "%s\"%s\"", k > np ? ", " : "", nlsq_xpcs_param_name(k));
    fputc(']', fp);
    static const char *const arrays[4] = {"contrast", "offset", "contrast_errors", "offset_errors"};
    for (int t = 0; t < 4; t++) {
        fprintf(fp, ", \"%s\": ", arrays[t]);
        json_angles(fp, r, t);
    }
    if (r->have_truth) {
        fputs(", \"truth\": {\"params\": {", fp);
        for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++) {
            fprintf(fp, "%s\"%s\": ", k ? ", " : "", nlsq_xpcs_param_name(k));
            json_num(fp, r->truth_phys[k]);
        }
        fputc('}', fp);
        if (r->truth_contrast && r->truth_offset) {
            fputs(", \"contrast\": ", fp);
            json_array(fp, r->truth_contrast, P);
            fputs(", \"offset\": ", fp);
            json_array(fp, r->truth_offset, P);
        }
        /* deviations (value - truth) / sigma, null where sigma is undetermined */
        fputs(", \"deviation_sigmas\": {\"params\": {", fp);
        for (size_t k = 0; k < np; k++) {
            fprintf(fp, "%s\"%s\": ", k ? ", " : "", nlsq_xpcs_param_name(k));
            json_num(fp, deviation(r->x[k], r->truth_phys[k], r->err[k]));
        }
        fputc('}', fp);
        if (r->truth_contrast && r->truth_offset) {
            for (int t = 0; t < 2; t++) {
                fprintf(fp, ", \"%s\": [", t ? "offset" : "contrast");
                const double *tv = t ? r->truth_offset : r->truth_contrast;
                for (size_t k = 0; k < P; k++) {
                    size_t idx = np + 2 * k + (size_t)t;
                    if (k) fputs(", ", fp);
                    json_num(fp, deviation(r->x[idx], tv[k], r->err[idx]));
                }
                fputc(']', fp);
            }
        }
        fputs("}}", fp);
    }
    if (a->resume) {
        fputs(", \"resumed_from\": ", fp);
        json_str(fp, a->resume);
    }
    fputs("}\n", fp);
}

/* ------------------------------------------------------------------------ */
/* Fitted c2 rows                                                             */
/* ------------------------------------------------------------------------ */

#define G_FLOOR 1e-10      /* floor of D_k, G_k and g1 (spec) */
#define G_EPS2 1e-12       /* inside the sqrt of I_D, I_G */
#define G_EXP_CLAMP (-700.0)

static void cum_table(const nlsq_xpcs_config *cfg, size_t n, double amp, double ex, double off,
                      double *C)
{
    const double dt = cfg->dt, eps = dt / 2 > 1e-8 ? dt / 2 : 1e-8;
    double fprev = 0;
    for (size_t k = 0; k < n; k++) {
        double t = (double)(k + cfg->k0) * dt;
        double ts = t > eps ? t : eps;
        double raw = amp * pow(ts, ex) + off;
        double f = raw > G_FLOOR ? raw : G_FLOOR;
        C[k] = k == 0 ? 0.0 : C[k - 1] + (fprev + f) / 2;
        fprev = f;
    }
}

int xpcs_g2_init(xpcs_g2 *g, const nlsq_xpcs_config *cfg, size_t n, const double *x)
{
    memset(g, 0, sizeof *g);
    g->n = n;
    g->laminar = cfg->mode == NLSQ_XPCS_LAMINAR;
    g->A = cfg->q * cfg->q * cfg->dt / 2.0;
    g->B = g->laminar ? cfg->q * cfg->gap * cfg->dt / (2.0 * XO_PI) : 0.0;
    g->CD = malloc(sizeof(double) * (n ? n : 1) * (g->laminar ? 2 : 1));
    if (!g->CD) return -1;
    cum_table(cfg, n, x[0], x[1], x[2], g->CD);
    if (g->laminar) {
        g->CG = g->CD + n;
        cum_table(cfg, n, x[3], x[4], x[5], g->CG);
    }
    return 0;
}

void xpcs_g2_row(const xpcs_g2 *g, double phi_deg, double phi0, double contrast, double offset,
                 size_t i, size_t j0, size_t ncols, double *out)
{
    double bc = g->laminar ? g->B * cos((phi0 - phi_deg) * XO_PI / 180.0) : 0.0;
    for (size_t c = 0; c < ncols; c++) {
        size_t j = j0 + c;
        double dCd = g->CD[i] - g->CD[j];
        double e = -g->A * sqrt(dCd * dCd + G_EPS2);
        if (!(e >= G_EXP_CLAMP)) e = G_EXP_CLAMP;
        double g1 = exp(e);
        if (g->laminar) {
            double dCg = g->CG[i] - g->CG[j];
            double ph = bc * sqrt(dCg * dCg + G_EPS2);
            double s;
            if (fabs(ph) < 1e-4) {
                double x2 = ph * ph;
                s = 1.0 - x2 / 6.0 + x2 * x2 / 120.0;
            } else {
                s = sin(ph) / ph;
            }
            g1 *= s * s;
        }
        if (!(g1 > G_FLOOR)) g1 = G_FLOOR;
        out[c] = offset + contrast * g1 * g1;
    }
}

void xpcs_g2_free(xpcs_g2 *g)
{
    free(g->CD);
    g->CD = g->CG = NULL;
}
