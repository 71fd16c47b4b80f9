/*
 * global_grid.c - the coarse grid of the XPCS global start (global_grid.h).
 */
#include "global_grid.h"
#include "linfit.h"
#include "physics.h"
#include "xpcs_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const size_t k_dim_param[GG_DIMS] = {0, 1, 3, 4, 6};

/* ---- axes ------------------------------------------------------------------ */

/* Half-decade steps from lo to hi (lo <= 0: from hi / 1e4), at most 13. */
static size_t log_axis(double lo, double hi, double *out)
{
    if (!(hi > 0) || !isfinite(hi)) return 0;
    double l = lo > 0 ? lo : hi * 1e-4;
    if (!(hi > l)) { out[0] = hi; return 1; }
    size_t n = (size_t)(2.0 * log10(hi / l) + 0.5) + 1;
    n = n < 2 ? 2 : (n > 13 ? 13 : n);
    for (size_t k = 0; k < n; k++) out[k] = l * pow(hi / l, (double)k / (double)(n - 1));
    return n;
}

/* The listed values clamped into [lo, hi], repeats dropped. */
static size_t list_axis(const double *vals, size_t n, double lo, double hi, double *out)
{
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        double v = xpcs__clamp(vals[k], lo, hi);
        if (m == 0 || v != out[m - 1]) out[m++] = v;
    }
    return m;
}

static void axes_init(gs_grid *g)
{
    static const double alphas[] = {-1.0, -0.5, 0.0, 0.5, 1.0}, betas[] = {-0.5, 0.0, 0.5};
    const double *lo = g->v.lower, *hi = g->v.upper;
    g->n[0] = log_axis(lo[0], hi[0], g->val[0]);
    g->n[1] = list_axis(alphas, 5, lo[1], hi[1], g->val[1]);
    g->n[2] = g->n[3] = g->n[4] = 1;              /* static: no shear */
    if (g->v.np == NLSQ_XPCS_N_PHYS) {
        g->n[2] = log_axis(lo[3], hi[3], g->val[2]);
        g->n[3] = list_axis(betas, 3, lo[4], hi[4], g->val[3]);
        double quarter[4];
        int finite = isfinite(lo[6]) && isfinite(hi[6]);
        for (int k = 0; k < 4; k++)
            quarter[k] = finite ? lo[6] + (k + 0.5) * (hi[6] - lo[6]) / 4.0 : -7.5 + 5.0 * k;
        g->n[4] = list_axis(quarter, 4, lo[6], hi[6], g->val[4]);
    }
    g->total = 1;
    for (int d = 0; d < GG_DIMS; d++) g->total *= g->n[d];
}

/* Grid point idx -> its per-dimension indices (ix may be NULL) and the
 * physical values (x may be NULL). */
static void point_of(const gs_grid *g, size_t idx, size_t *ix, double *x)
{
    const double *lo = g->v.lower, *hi = g->v.upper;
    for (size_t q = 0; x && q < g->v.np; q++) x[q] = xpcs__clamp(0.0, lo[q], hi[q]);
    for (int d = GG_DIMS - 1; d >= 0; d--) {
        size_t k = idx % g->n[d];
        idx /= g->n[d];
        if (ix) ix[d] = k;
        if (x && k_dim_param[d] < g->v.np) x[k_dim_param[d]] = g->val[d][k];
    }
}

void nlsq__xpcs_gg_point(const gs_grid *g, size_t idx, double *x) { point_of(g, idx, NULL, x); }

/* ---- entries --------------------------------------------------------------- */

void nlsq__xpcs_gg_free(gs_grid *g)
{
    free(g->first);
    free(g->ei);
    free(g->ej);
    free(g->y);
    free(g->mean);
    memset(g, 0, sizeof *g);
}

/* Keep every stride-th finite off-diagonal entry of the blocks (the
 * diagonal's weight differs), each angle's data shifted by its mean. */
static int entries_fill(gs_grid *g, nlsq_xpcs_model *m, const size_t *start, size_t n_blocks,
                        size_t len, size_t stride, size_t cap, double *y, size_t *ii, size_t *jj)
{
    const size_t R = g->v.R;
    size_t count = 0;
    for (size_t b = 0; b < n_blocks; b++) {
        size_t a = start[b] / R;
        int rc = nlsq__xpcs_model_fetch(m, a, start[b] % R, len, y, ii, jj, g->err,
                                        g->err_size);
        if (rc != 0) return rc == NLSQ_ENOMEM ? NLSQ_ENOMEM : NLSQ_ECALLBACK;
        for (size_t t = 0; t < len; t++, count++) {
            if (count % stride || ii[t] == jj[t] || !isfinite(y[t]) || g->S >= cap)
                continue;
            g->ei[g->S] = ii[t];
            g->ej[g->S] = jj[t];
            g->y[g->S++] = y[t];
        }
        g->first[a + 1] = g->S;
    }
    for (size_t a = 0; a < g->v.P; a++) {
        if (g->first[a + 1] < g->first[a]) g->first[a + 1] = g->first[a];   /* no block */
        double s = 0.0;
        for (size_t t = g->first[a]; t < g->first[a + 1]; t++) s += g->y[t];
        size_t k = g->first[a + 1] - g->first[a];
        g->mean[a] = k ? s / (double)k : 0.0;
        for (size_t t = g->first[a]; t < g->first[a + 1]; t++) g->y[t] -= g->mean[a];
    }
    return 0;
}

int nlsq__xpcs_gg_init(gs_grid *g, nlsq_xpcs_model *m, const size_t *start, size_t n_blocks,
                       size_t len, size_t want, char *err, size_t err_size)
{
    memset(g, 0, sizeof *g);
    g->err = err;
    g->err_size = err_size;
    nlsq__xpcs_model_view(m, &g->v);
    axes_init(g);
    size_t rows = n_blocks * len, stride = want && rows > want ? (rows + want - 1) / want : 1;
    size_t cap = rows / stride + 1;
    g->first = calloc(g->v.P + 1, sizeof(size_t));
    g->ei = malloc(sizeof(size_t) * cap);
    g->ej = malloc(sizeof(size_t) * cap);
    g->y = malloc(sizeof(double) * cap);
    g->mean = malloc(sizeof(double) * g->v.P);
    double *y = malloc(sizeof(double) * len);
    size_t *ij = malloc(sizeof(size_t) * 2 * len);
    int rc = g->first && g->ei && g->ej && g->y && g->mean && y && ij ? 0 : NLSQ_ENOMEM;
    if (rc == 0) rc = entries_fill(g, m, start, n_blocks, len, stride, cap, y, ij, ij + len);
    free(y);
    free(ij);
    return rc;
}

/* ---- cost -------------------------------------------------------------------- */

/* Angle a's contrast and offset for the entries' u (S values) into x; half
 * the sum of squares returned. */
static double angle_fit(const gs_grid *g, size_t a, const double *u, double *x)
{
    xpcs__lsum s = {0, 0, 0, 0, 0, 0};
    for (size_t t = g->first[a]; t < g->first[a + 1]; t++) {
        double w = u[t], d = g->y[t];
        s.n += 1.0;
        s.u += w;
        s.y += d;
        s.uu += w * w;
        s.uy += w * d;
        s.yy += d * d;
    }
    size_t ic = g->v.np + 2 * a;
    if (s.n < 1) {   /* no entries: nothing to fit, nothing to pay */
        x[ic] = xpcs__clamp(0.0, g->v.lower[ic], g->v.upper[ic]);
        x[ic + 1] = xpcs__clamp(1.0, g->v.lower[ic + 1], g->v.upper[ic + 1]);
        return 0.0;
    }
    return 0.5 * xpcs__linfit(&s, g->mean[a], g->v.lower + ic, g->v.upper + ic, 0.0, &x[ic],
                              &x[ic + 1]);
}

double nlsq__xpcs_gg_score(const gs_grid *g, double *x)
{
    const size_t n = g->v.n;
    const nlsq__xpcs_geom *geo = g->v.geom;
    if (g->S == 0) return NAN;
    double *CD = malloc(sizeof(double) * (2 * n + g->S));
    if (!CD) return NAN;
    double *CG = CD + n, *u = CG + n;
    nlsq__xpcs_tables(geo, x, CD, NULL, CG, NULL);
    for (size_t a = 0; a < g->v.P; a++) {
        double bc = 0.0;
        if (geo->laminar) nlsq__xpcs_angle(geo->B, x[6], g->v.phi[a], &bc, NULL);
        for (size_t t = g->first[a]; t < g->first[a + 1]; t++) {
            size_t i = g->ei[t], j = g->ej[t];
            nlsq__xpcs_g1 e;
            nlsq__xpcs_g1_entry(geo->A, bc, geo->laminar, CD[i] - CD[j],
                                geo->laminar ? CG[i] - CG[j] : 0.0, 0, &e);
            u[t] = e.g1 * e.g1;
        }
    }
    double f = 0.0;
    for (size_t a = 0; a < g->v.P; a++) f += angle_fit(g, a, u, x);
    free(CD);
    return f;
}

/* ---- the grid ------------------------------------------------------------------ */

typedef struct gg_rank { double f; size_t idx; } gg_rank;

static int rank_cmp(const void *pa, const void *pb)
{
    const gg_rank *a = pa, *b = pb;
    if (a->f < b->f) return -1;
    if (a->f > b->f) return 1;
    return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

/* The best `want` points of cost, at most one per neighbourhood. */
static int pick(const gs_grid *g, const double *cost, size_t want, size_t *picks, size_t *n_picks)
{
    gg_rank *rk = malloc(sizeof(gg_rank) * g->total);
    if (!rk) return NLSQ_ENOMEM;
    for (size_t c = 0; c < g->total; c++) {
        rk[c].f = isfinite(cost[c]) ? cost[c] : HUGE_VAL;
        rk[c].idx = c;
    }
    qsort(rk, g->total, sizeof *rk, rank_cmp);
    size_t ix[GG_DIMS], jx[GG_DIMS];
    *n_picks = 0;
    for (size_t c = 0; c < g->total && *n_picks < want && rk[c].f < HUGE_VAL; c++) {
        point_of(g, rk[c].idx, ix, NULL);
        int near = 0;
        for (size_t q = 0; q < *n_picks && !near; q++) {
            point_of(g, picks[q], jx, NULL);
            near = 1;
            for (int d = 0; d < GG_DIMS; d++)
                if (ix[d] + 1 < jx[d] || jx[d] + 1 < ix[d]) near = 0;
        }
        if (!near) picks[(*n_picks)++] = rk[c].idx;
    }
    free(rk);
    return 0;
}

/* g1d of every entry at each D table (i0, i1): ED[(i0 n1 + i1) S + t]. */
static void d_factors(const gs_grid *g, double *tab, double *ED)
{
    const nlsq__xpcs_geom *geo = g->v.geom;
    double off = xpcs__clamp(0.0, g->v.lower[2], g->v.upper[2]);
    for (size_t d = 0; d < g->n[0] * g->n[1]; d++) {
        nlsq__xpcs_cumulative(geo, g->val[0][d / g->n[1]], g->val[1][d % g->n[1]], off, tab, NULL);
        for (size_t t = 0; t < g->S; t++) {
            nlsq__xpcs_g1 e;
            nlsq__xpcs_g1_entry(geo->A, 0.0, 0, tab[g->ei[t]] - tab[g->ej[t]], 0.0, 0, &e);
            ED[d * g->S + t] = e.g1d;
        }
    }
}

/* sinc^2 of every entry at the G table in tab and phi0 (1 in static mode). */
static void g_factors(const gs_grid *g, const double *tab, double phi0, double *SG)
{
    const nlsq__xpcs_geom *geo = g->v.geom;
    for (size_t a = 0; a < g->v.P; a++) {
        double bc = 0.0;
        if (geo->laminar) nlsq__xpcs_angle(geo->B, phi0, g->v.phi[a], &bc, NULL);
        for (size_t t = g->first[a]; t < g->first[a + 1]; t++) {
            if (!geo->laminar) { SG[t] = 1.0; continue; }
            nlsq__xpcs_g1 e;   /* its sinc does not depend on the D difference */
            nlsq__xpcs_g1_entry(geo->A, bc, 1, 0.0, tab[g->ei[t]] - tab[g->ej[t]], 0, &e);
            SG[t] = e.sinc * e.sinc;
        }
    }
}

/* The cost of every D table at the G factors SG: cost[base + d * stride].
 * u = max(g1d sinc^2, floor)^2, as nlsq__xpcs_g1_entry composes it. */
static void d_sweep(const gs_grid *g, const double *ED, const double *SG, double *u,
                    double *xs, double *cost, size_t base, size_t stride)
{
    for (size_t d = 0; d < g->n[0] * g->n[1]; d++) {
        const double *e = ED + d * g->S;
        for (size_t t = 0; t < g->S; t++) {
            double r = e[t] * SG[t];
            r = r > NLSQ__XPCS_G1_FLOOR ? r : NLSQ__XPCS_G1_FLOOR;
            u[t] = r * r;
        }
        double f = 0.0;
        for (size_t a = 0; a < g->v.P; a++) f += angle_fit(g, a, u, xs);
        cost[base + d * stride] = f;
    }
}

int nlsq__xpcs_gg_search(const gs_grid *g, double *cost, size_t want, size_t *picks,
                         size_t *n_picks)
{
    const size_t n = g->v.n, S = g->S, nd = g->n[0] * g->n[1];
    const size_t ngp = g->n[2] * g->n[3] * g->n[4];   /* (G table, phi0) points */
    double *tab = malloc(sizeof(double) * (n + (nd + 2) * S + g->v.np + 2 * g->v.P));
    if (!tab) return NLSQ_ENOMEM;
    double *ED = tab + n, *SG = ED + nd * S, *u = SG + S, *xs = u + S;
    d_factors(g, tab, ED);
    const nlsq__xpcs_geom *geo = g->v.geom;
    double off = g->v.np > 5 ? xpcs__clamp(0.0, g->v.lower[5], g->v.upper[5]) : 0.0;
    for (size_t k = 0; k < ngp; k++) {   /* k = (i2 n3 + i3) n4 + i4 */
        size_t i4 = k % g->n[4], i23 = k / g->n[4];
        if (geo->laminar && i4 == 0)
            nlsq__xpcs_cumulative(geo, g->val[2][i23 / g->n[3]], g->val[3][i23 % g->n[3]], off,
                                  tab, NULL);
        g_factors(g, tab, geo->laminar ? g->val[4][i4] : 0.0, SG);
        d_sweep(g, ED, SG, u, xs, cost, k, ngp);
    }
    free(tab);
    return pick(g, cost, want, picks, n_picks);
}
