/*
 * linfit.h - one angle's contrast and offset by least squares (private).
 *
 * The model is linear in each angle's contrast c and offset o:
 * c2 = o + c u with u = g1^2 at the physical point.  Given the sums of an
 * angle's entries, the straight line y ~ o + c u is solved with c first
 * (cov(u, y) / var(u)) and clamped into its bounds, then the offset best for
 * that c (mean y - c mean u), clamped.  Used by the data-driven start
 * (start.c) and the global start's grid (global_grid.c): written once.
 */
#ifndef NLSQ_XPCS_LINFIT_H
#define NLSQ_XPCS_LINFIT_H

#include "xpcs_common.h"

/* Sums over one angle's entries of 1, u, y, u^2, u y and y^2, with y already
 * shifted by the caller (y - sh, sh about the mean: the cancellation in the
 * variances stays small). */
typedef struct xpcs__lsum {
    double n, u, y, uu, uy, yy;
} xpcs__lsum;

/* Contrast and offset of s (n >= 1) into *c, *o, clamped into [lo[0],
 * hi[0]] and [lo[1], hi[1]]; c_flat where u is constant over the entries (c
 * not identifiable), sh the shift taken off the y sums.  Returns the sum of
 * squared residuals at (c, o) (needs s->yy; >= 0). */
static inline double xpcs__linfit(const xpcs__lsum *s, double sh, const double *lo,
                                  const double *hi, double c_flat, double *c, double *o)
{
    double S = s->n, mx = s->u / S, my = s->y / S;
    double vxx = s->uu / S - mx * mx, vxy = s->uy / S - mx * my;
    double con = c_flat;
    if (vxx > 1e-14 * (s->uu / S) && vxx > 0) con = vxy / vxx;
    con = xpcs__clamp(con, lo[0], hi[0]);
    double off = xpcs__clamp(my - con * mx + sh, lo[1], hi[1]);
    *c = con;
    *o = off;
    double d = off - sh;   /* the offset in the shifted units */
    double f = s->yy - 2.0 * con * s->uy - 2.0 * d * s->y + con * con * s->uu +
               2.0 * con * d * s->u + d * d * S;
    return f > 0 ? f : 0.0;
}

#endif
