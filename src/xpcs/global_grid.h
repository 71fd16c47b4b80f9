/*
 * global_grid.h - the coarse grid of the XPCS global start (private;
 * global_grid.c, used by global_start.c).
 *
 * On a few thousand data entries (every k-th finite off-diagonal entry of
 * the global start's sample blocks) every point of a grid over the physical
 * parameters is scored by its cost with each angle's contrast and offset
 * solved linearly (linfit.h): D0 and gamma_dot_0 at half-decade steps
 * between their bounds, alpha {-1 .. 1 by 0.5}, beta {-0.5, 0, 0.5}, phi0 at
 * four points across its bounds (both signs), D_offset and gamma_dot_offset
 * 0.  g1 = max(g1d sinc^2, floor) of physics.h factorises into a part of
 * the D table (g1d) and a part of the G table and phi0 (sinc), so each
 * entry's exp is taken once per D table and its sin once per (G table,
 * phi0), and a grid point costs a multiply and three sums per entry.
 */
#ifndef NLSQ_XPCS_GLOBAL_GRID_H
#define NLSQ_XPCS_GLOBAL_GRID_H

#include "model_view.h"

#define GG_DIMS 5   /* D0, alpha, gamma_dot_0, beta, phi0 */

typedef struct gs_grid {
    nlsq__xpcs_view v;
    size_t n[GG_DIMS], total;      /* values per dimension; points */
    double val[GG_DIMS][16];
    size_t S;                      /* entries */
    size_t *first;                 /* P + 1: angle a's entries [first[a], first[a + 1]) */
    size_t *ei, *ej;               /* S: each entry's frames */
    double *y;                     /* S: data minus the angle's mean */
    double *mean;                  /* P: the angle's mean */
    char *err;                     /* gg_init's: where a read failure says why */
    size_t err_size;
} gs_grid;

/* The entries of the sample blocks (n_blocks blocks of len problem rows from
 * global row start[b], each inside one angle, in angle order), about `want`
 * of them, and the grid's axes.  0, NLSQ_ENOMEM or NLSQ_ECALLBACK (a read
 * failed: one line on why into err, err_size bytes).  gg_free frees (also
 * after a failure). */
NLSQ__XPCS_HIDDEN int nlsq__xpcs_gg_init(gs_grid *g, nlsq_xpcs_model *m, const size_t *start,
                                         size_t n_blocks, size_t len, size_t want, char *err,
                                         size_t err_size);
NLSQ__XPCS_HIDDEN void nlsq__xpcs_gg_free(gs_grid *g);

/* The physical point x (np values) given: each angle's contrast and offset
 * into x (p values), the cost (half the sum of squares over the entries)
 * returned.  NAN without entries. */
NLSQ__XPCS_HIDDEN double nlsq__xpcs_gg_score(const gs_grid *g, double *x);

/* Every grid point's cost into cost (g->total values, grid order: the last
 * dimension fastest); the best `want` points, at most one per neighbourhood
 * of the grid (indices within 1 in every dimension), into picks.  0 or
 * NLSQ_ENOMEM. */
NLSQ__XPCS_HIDDEN int nlsq__xpcs_gg_search(const gs_grid *g, double *cost, size_t want,
                                           size_t *picks, size_t *n_picks);

/* Grid point idx's physical values into x (np values; offsets 0). */
NLSQ__XPCS_HIDDEN void nlsq__xpcs_gg_point(const gs_grid *g, size_t idx, double *x);

#endif
