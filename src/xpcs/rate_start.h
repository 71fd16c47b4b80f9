/*
 * rate_start.h - decay and shear rates from lag-averaged data (private;
 * rate_start.c).  See nlsq_xpcs_start in nlsq_xpcs.h.
 */
#ifndef NLSQ_XPCS_RATE_START_H
#define NLSQ_XPCS_RATE_START_H

#include <stddef.h>

#define RS_BINS 48

/* Lag-binned means of one model's data: per angle a and bin b, the mean lag
 * tau[a * RS_BINS + b] (frames), the mean c2 y[...] and the count w[...]. */
typedef struct rs_bins {
    size_t P;
    const double *phi;          /* P, degrees */
    double A, B;                /* q^2 dt / 2; q gap dt / (2 pi) (0: static) */
    double *tau, *y, *w;
} rs_bins;

/* The bin of lag tau >= 1 among n frames. */
__attribute__((visibility("hidden"))) size_t nlsq__xpcs_rs_bin_of(size_t tau, size_t n);

/* D0 (phys[0]) and gamma_dot_0 (phys[3], laminar only) minimising the binned
 * squared misfit of c2 = offset_a + contrast_a g1^2 with the other physical
 * parameters as given in phys (contrast, offset: per-angle linear least
 * squares), over log grids inside [lo, hi] refined three times; phys is
 * changed only where the misfit is lower than at the given values. */
__attribute__((visibility("hidden"))) void nlsq__xpcs_rs_search(const rs_bins *b, const double *lo,
                                                     const double *hi, double *phys);

#endif
