/*
 * model_kernel.h - the inner loop of the XPCS model (private).
 *
 * One call evaluates a segment of one angle's matrix row i: the entries
 * (i, j) for j = j0 .. j0 + len - 1, contiguous in j.  Residuals go to r[t],
 * and when J is not NULL the Jacobian block is written column-major:
 * d r_t / d (column c) at J[c * ld + t], columns in the pattern's order
 * (np physical, then contrast, then offset).
 */
#ifndef NLSQ_XPCS_MODEL_KERNEL_H
#define NLSQ_XPCS_MODEL_KERNEL_H

#include <stddef.h>

#define XK_HIDDEN __attribute__((visibility("hidden")))
/* The external names carry the library prefix (nlsq-prefixed symbols only). */
#define xk_segment  nlsq__xpcs_xk_segment
#define xk_cpu_avx2 nlsq__xpcs_xk_cpu_avx2
#define xk_pairs_len  nlsq__xpcs_xk_pairs_len
#define xk_pairs_fill nlsq__xpcs_xk_pairs_fill
#define xk_segment_pairs nlsq__xpcs_xk_segment_pairs

/* Per-x tables, structure of arrays (n values each). */
typedef struct xk_tab {
    const double *CD, *CG;           /* cumulative trapezoids of D and G (CG NULL: static) */
    const double *dCD[3], *dCG[3];   /* their derivatives w.r.t. (amplitude, exponent, offset) */
} xk_tab;

/* Per (x, angle, weight) constants. */
typedef struct xk_seg {
    double A;          /* q^2 dt / 2 */
    double bc;         /* B cos((phi0 - phi_a) pi/180) */
    double Bdc;        /* B d cos / d phi0 (degrees) */
    double con, off;   /* contrast_a, offset_a */
    double ws;         /* row weight / sigma (sqrt(2)/sigma for merged symmetric pairs) */
    int laminar;       /* 7 physical parameters, else 3 */
} xk_seg;

/* y: data as stored (exactly one of y32 / y64 is not NULL, stride 1). */
XK_HIDDEN void xk_segment(int avx2, const xk_seg *s, const xk_tab *T, size_t i, size_t j0,
                          size_t len, const float *y32, const double *y64, double *r,
                          double *J, size_t ld);

/* Pair factors: the angle-independent part of entry (i, j >= i), computed
 * once per point for every angle: f[0] = exp(max(-A I_D, -700)), f[1] = I_D
 * and in laminar mode f[2] = I_G (NULL in static mode).  Layout: the upper triangle with the
 * diagonal in row order, entry (i, j) at i (2n - i + 1) / 2 + (j - i);
 * xk_pairs_len(n) doubles per array (3 of padding: the kernel's last vector
 * of four may read past the last entry). */
#define XK_NPF 3
typedef struct xk_pairs {
    double *f[XK_NPF];
    size_t n;                        /* frames */
} xk_pairs;

XK_HIDDEN size_t xk_pairs_len(size_t n);

/* Fill the pair factors of the point T's tables are of (s->A, s->laminar;
 * AVX2 path only: call it only where xk_cpu_avx2() is 1). */
XK_HIDDEN void xk_pairs_fill(const xk_seg *s, const xk_tab *T, const xk_pairs *pf);

/* xk_segment reading the pair factors of entries j >= i from pf (computed at
 * the same point as T): bitwise the same result, without the per-angle
 * square roots and exp.  pf NULL, or the portable path: the factors are
 * computed here.  The diagonal entry (j0 == i: the segment's first) has
 * weight ws_diag instead of s->ws, so that a matrix row's diagonal and the
 * entries right of it are one segment (xk_segment: s->ws for all). */
XK_HIDDEN void xk_segment_pairs(int avx2, const xk_seg *s, double ws_diag, const xk_tab *T,
                                const xk_pairs *pf, size_t i, size_t j0, size_t len,
                                const float *y32, const double *y64, double *r, double *J,
                                size_t ld);

/* Normal-equation sums of the laminar model over every angle, pair by pair
 * (AVX2 path only: call them only where xk_cpu_avx2() is 1).  An xk_nsum
 * lives in xk_nsum_bytes(P) bytes, 32-byte aligned, made ready (zero) by
 * xk_nsum_init.  xk_normal_segment adds entries (i, j0 .. j0 + len - 1),
 * j0 >= i, of the P angles: segs[a] angle a's constants (segs[a].ws the
 * weight of every entry but the diagonal's, ws_diag), y32[a] or y64[a] its
 * data at entry (i, j0).  The pair factors are formed here, once for the P
 * angles.  The values are xk_segment_pairs's, the sums in another order.  xk_nsum_finish adds
 * the sums into JtJ (p x p row-major, upper triangle; physical columns
 * 0..6, angle a's contrast and offset 7 + 2a, 8 + 2a) and Jtr, and sets
 * *rr = sum r^2 and *rmax = max |r|. */
#define xk_nsum_bytes  nlsq__xpcs_xk_nsum_bytes
#define xk_nsum_init   nlsq__xpcs_xk_nsum_init
#define xk_normal_segment nlsq__xpcs_xk_normal_segment
#define xk_nsum_finish nlsq__xpcs_xk_nsum_finish
typedef struct xk_nsum xk_nsum;
XK_HIDDEN size_t xk_nsum_bytes(size_t P);
XK_HIDDEN xk_nsum *xk_nsum_init(void *mem, size_t P);
XK_HIDDEN void xk_normal_segment(xk_nsum *A, const xk_seg *segs, double ws_diag, const xk_tab *T,
                                 size_t i, size_t j0, size_t len, const float *const *y32,
                                 const double *const *y64);
XK_HIDDEN void xk_nsum_finish(const xk_nsum *A, double *JtJ, double *Jtr, size_t p, double *rr,
                              double *rmax);

/* 1 when the CPU runs the AVX2+FMA kernel. */
XK_HIDDEN int xk_cpu_avx2(void);

#endif
