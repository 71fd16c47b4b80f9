/*
 * physics.c - the XPCS forward model's tables and its scalar reference
 * (physics.h; docs/xpcs-model.md "Forward model" and "Jacobian").
 */
#include "physics.h"

#include <string.h>

void nlsq__xpcs_geom_init(nlsq__xpcs_geom *g, double q, double gap, double dt, size_t k0,
                          size_t n, int laminar)
{
    memset(g, 0, sizeof *g);
    g->A = q * q * dt / 2.0;
    g->B = laminar ? q * gap * dt / (2.0 * NLSQ__XPCS_PI) : 0.0;
    g->dt = dt;
    g->eps = dt / 2 > NLSQ__XPCS_T_EPS_MIN ? dt / 2 : NLSQ__XPCS_T_EPS_MIN;
    g->k0 = k0;
    g->n = n;
    g->laminar = laminar != 0;
}

void nlsq__xpcs_cumulative(const nlsq__xpcs_geom *g, double amp, double ex, double off,
                           double *C, double *dC)
{
    const size_t n = g->n;
    double fprev = 0, dprev[3] = {0, 0, 0};
    for (size_t k = 0; k < n; k++) {
        double t = (double)(k + g->k0) * g->dt;
        double ts = t > g->eps ? t : g->eps;
        double pw = pow(ts, ex);
        double raw = amp * pw + off;
        int above = raw > NLSQ__XPCS_DG_FLOOR;
        double f = above ? raw : NLSQ__XPCS_DG_FLOOR;
        C[k] = k == 0 ? 0.0 : C[k - 1] + (fprev + f) / 2;
        fprev = f;
        if (!dC) continue;
        double df[3] = {0.0, 0.0, 0.0};
        if (above) {
            df[0] = pw;
            df[1] = amp * pw * log(ts);
            df[2] = 1.0;
        }
        for (size_t t3 = 0; t3 < 3; t3++) {
            dC[t3 * n + k] = k == 0 ? 0.0 : dC[t3 * n + k - 1] + (dprev[t3] + df[t3]) / 2;
            dprev[t3] = df[t3];
        }
    }
}

void nlsq__xpcs_tables(const nlsq__xpcs_geom *g, const double *phys, double *CD, double *dCD,
                       double *CG, double *dCG)
{
    nlsq__xpcs_cumulative(g, phys[0], phys[1], phys[2], CD, dCD);
    if (g->laminar) nlsq__xpcs_cumulative(g, phys[3], phys[4], phys[5], CG, dCG);
}

/* g2 = offset + contrast g1^2 with g1 = max(g1d sinc(Phi)^2, floor),
 * g1d = exp(max(-A I_D, clamp)), Phi = bc I_G:
 *   dg2/dg1raw = 2 contrast g1           (0 where the floor is active)
 *   dg1raw/dCD_diff = g1raw (-A) dCd / I_D   (0 where the clamp is active)
 *   dg1raw/dCG_diff = g1d 2 sinc sinc' bc dCg / I_G
 *   dg1raw/dphi0    = g1d 2 sinc sinc' I_G d(bc)/dphi0
 * and a table difference's derivative is the difference of the tables'
 * derivatives. */
double nlsq__xpcs_g2_ref(const nlsq__xpcs_geom *g, const nlsq__xpcs_tabset *T,
                         const double *phys, double phi_a, double contrast, double offset,
                         size_t i, size_t j, double *grad)
{
    const int lam = g->laminar;
    const size_t n = g->n, np = lam ? 7 : 3;
    double bc = 0.0, bdc = 0.0;
    if (lam) nlsq__xpcs_angle(g->B, phys[6], phi_a, &bc, &bdc);
    double dCd = T->CD[i] - T->CD[j], dCg = lam ? T->CG[i] - T->CG[j] : 0.0;
    nlsq__xpcs_g1 e;
    nlsq__xpcs_g1_entry(g->A, bc, lam, dCd, dCg, grad != NULL, &e);
    double g2 = offset + contrast * e.g1 * e.g1;
    if (!grad) return g2;
    double f = e.floor ? 0.0 : 2.0 * contrast * e.g1;
    double wD = e.clampD ? 0.0 : f * e.g1raw * (-g->A) * dCd / e.ID;
    for (size_t q = 0; q < 3; q++) grad[q] = wD * (T->dCD[q * n + i] - T->dCD[q * n + j]);
    if (lam) {
        double fp = f * e.g1d * 2.0 * e.sinc * e.dsinc;
        double wG = fp * bc * dCg / e.IG;
        for (size_t q = 0; q < 3; q++)
            grad[3 + q] = wG * (T->dCG[q * n + i] - T->dCG[q * n + j]);
        grad[6] = fp * bdc * e.IG;
    }
    grad[np] = e.g1 * e.g1;
    grad[np + 1] = 1.0;
    return g2;
}
