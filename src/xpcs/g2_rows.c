/*
 * g2_rows.c - model g2 for blocks of matrix rows (nlsq_xpcs_g2_rows_* in
 * nlsq_xpcs.h): the fitted c2 of a report or a plot.
 *
 * Creation builds the tables CD_k, CG_k of the parameter point once (O(n),
 * physics.h) and each angle's shear constant; an entry then costs O(1):
 * physics.h's g2 of one entry, the same function the synthetic writer and
 * nlsq_xpcs_model_g2 use.  The object is read-only after creation.
 */
#include "nlsq_xpcs.h"
#include "physics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct nlsq_xpcs_g2_rows {
    nlsq__xpcs_geom geom;
    size_t P, np;
    double *CD, *CG;     /* n each (CG NULL: static) */
    double *bc;          /* P: B cos(phi0 - phi_a) */
    double *con, *off;   /* P each */
    double *mem;
};

static int config_ok(const nlsq_xpcs_config *cfg)
{
    if (cfg->mode != NLSQ_XPCS_LAMINAR && cfg->mode != NLSQ_XPCS_STATIC) return 0;
    int lam = cfg->mode == NLSQ_XPCS_LAMINAR;
    return cfg->q >= NLSQ_XPCS_Q_MIN && cfg->q <= NLSQ_XPCS_Q_MAX &&
           cfg->dt >= NLSQ_XPCS_DT_MIN && cfg->dt <= NLSQ_XPCS_DT_MAX &&
           (!lam || (cfg->gap >= NLSQ_XPCS_GAP_MIN && cfg->gap <= NLSQ_XPCS_GAP_MAX));
}

int nlsq_xpcs_g2_rows_create(const nlsq_xpcs_config *cfg, size_t n, size_t n_angles,
                             const double *phi, const double *x, nlsq_xpcs_g2_rows **out)
{
    if (out) *out = NULL;
    if (!cfg || !phi || !x || !out || n == 0 || n_angles == 0 || !config_ok(cfg) ||
        n > SIZE_MAX / (2 * sizeof(double)) || n_angles > SIZE_MAX / (4 * sizeof(double)))
        return NLSQ_EINVAL;
    const int lam = cfg->mode == NLSQ_XPCS_LAMINAR;
    const size_t np = lam ? NLSQ_XPCS_N_PHYS : 3;
    for (size_t k = 0; k < np + 2 * n_angles; k++)
        if (!isfinite(x[k])) return NLSQ_EINVAL;
    for (size_t a = 0; a < n_angles; a++)
        if (!isfinite(phi[a])) return NLSQ_EINVAL;
    nlsq_xpcs_g2_rows *g = calloc(1, sizeof *g);
    if (!g) return NLSQ_ENOMEM;
    g->mem = malloc(sizeof(double) * (2 * n + 3 * n_angles));
    if (!g->mem) {
        free(g);
        return NLSQ_ENOMEM;
    }
    nlsq__xpcs_geom_init(&g->geom, cfg->q, cfg->gap, cfg->dt, cfg->k0, n, lam);
    g->P = n_angles;
    g->np = np;
    g->CD = g->mem;
    g->CG = lam ? g->mem + n : NULL;
    g->bc = g->mem + 2 * n;
    g->con = g->bc + n_angles;
    g->off = g->con + n_angles;
    nlsq__xpcs_tables(&g->geom, x, g->CD, NULL, g->CG, NULL);
    for (size_t a = 0; a < n_angles; a++) {
        g->bc[a] = 0.0;
        if (lam) nlsq__xpcs_angle(g->geom.B, x[6], phi[a], &g->bc[a], NULL);
        g->con[a] = x[np + 2 * a];
        g->off[a] = x[np + 2 * a + 1];
    }
    *out = g;
    return 0;
}

int nlsq_xpcs_g2_rows_eval(const nlsq_xpcs_g2_rows *g, size_t a, size_t row0, size_t nrows,
                           size_t col0, size_t ncols, double *out)
{
    const size_t n = g ? g->geom.n : 0;
    if (!g || !out || a >= g->P || row0 > n || nrows > n - row0 || col0 > n ||
        ncols > n - col0)
        return NLSQ_EINVAL;
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++)
            out[r * ncols + c] = nlsq__xpcs_g2_entry(&g->geom, g->CD, g->CG, g->bc[a],
                                                     g->con[a], g->off[a], row0 + r, col0 + c);
    return 0;
}

void nlsq_xpcs_g2_rows_free(nlsq_xpcs_g2_rows *g)
{
    if (!g) return;
    free(g->mem);
    free(g);
}
