/*
 * nlsq_xpcs_synth.h - synthetic XPCS data for tests, benchmarks and
 * demonstrations (library nlsq_xpcs): APS 8-ID-I files of either layout
 * written from given physical parameters with Gaussian noise, the same rows
 * in memory, and the truth a synthetic file carries.  Not needed to fit
 * measured data (nlsq_xpcs.h).
 *
 * Conventions: as in nlsq_xpcs.h (0 or a negative status; one line into
 * err when not NULL).  nlsq_xpcs_synth_write and nlsq_xpcs_synth_rows keep
 * no state and may run in several threads at once (file writes are
 * serialised with the library's other HDF5 calls); nlsq_xpcs_read_truth
 * uses an open file, one thread at a time as in nlsq_xpcs.h.
 */
#ifndef NLSQ_XPCS_SYNTH_H
#define NLSQ_XPCS_SYNTH_H

#include <stdint.h>

#include "nlsq_xpcs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Synthetic writer                                                          */
/* ------------------------------------------------------------------------ */

typedef struct nlsq_xpcs_synth_spec {
    int    layout;         /* NLSQ_XPCS_LAYOUT_APS_OLD or _APS_U */
    int    float32;        /* store float32 (1) or float64 (0) */
    size_t n_frames;       /* N */
    size_t n_angles;       /* P; phi_p = p * 360 / P unless phi != NULL */
    const double *phi;     /* NULL or P angles in degrees */
    double q, gap, dt;     /* q [1/A], L [A], dt [s] */
    size_t k0;             /* first frame index */
    int    static_mode;    /* 1: no shear (parameters 3..6 ignored) */
    double params[7];      /* physical truth (order of docs/xpcs-model.md) */
    const double *contrast;/* NULL or P values (default 0.25 + 0.05 sin(2 pi p/P)) */
    const double *offset;  /* NULL or P values (default 1 + 0.01 cos(2 pi p/P)) */
    double noise_sigma;    /* Gaussian noise sd (0.01) */
    uint64_t seed;         /* noise seed */
    size_t n_extra_q;      /* extra q values written as decoys (q * (1 + 0.5 k)) */
    double frame_share;    /* fraction in [0, 1] of the noise variance shared by
                              frames (0): entry (i, j) gets noise_sigma *
                              (sqrt(frame_share / 2) (u_i + u_j) + sqrt(1 -
                              frame_share) z_ij), u_f one standard normal per
                              frame of each matrix (independent between angles),
                              z_ij independent; the off-diagonal variance stays
                              noise_sigma^2 */
    int    lzf;            /* 1: matrices LZF-compressed, one (N, N) chunk each, as the
                              beamline writes them (nlsq_xpcs_register_filters) */
    int    empty_bin;      /* 1: the bin (first q, angle empty_angle) holds no matrix, as
                              when a mask leaves it empty: APS-U labels are then
                              compressed (dynamic_index_mapping), APS old lists the
                              others in xpcs/qphi_bin_to_process */
    size_t empty_angle;
} nlsq_xpcs_synth_spec;

/** Synthetic files also carry the truth they were generated from, in the group
 *  "nlsq_synth": datasets params (7), phi, contrast and offset (P each, for
 *  the first q).  Real beamline files have no such group. */

/** The 23M-point benchmark problem of docs/xpcs-model.md (23 angles, N = 1001, APS-U, float32). */
NLSQ_API void nlsq_xpcs_synth_spec_default(nlsq_xpcs_synth_spec *s);
/** Write a file (upper triangle filled, lower zero, as APS does), with the
 *  frame time stored as the beamline stores it (frame_time or
 *  exposure_period = dt, stride and average 1), and for APS-U the partition's
 *  dynamic_index_mapping (no empty bin) and dynamic_num_pts.  Memory
 *  O(N^2) per matrix is not needed: rows are generated and written in blocks. */
NLSQ_API int  nlsq_xpcs_synth_write(const char *path, const nlsq_xpcs_synth_spec *s,
                                    char *err, size_t err_size);

/** Rows [row0, row0 + nrows) of the rebuilt full (symmetric) matrix of angle a
 *  at the problem's first q, exactly as a file written by nlsq_xpcs_synth_write
 *  and read back by nlsq_xpcs_read_rows would give them (same noise, rounded
 *  to float32 when s->float32), into out (nrows * N, float64).  Cost
 *  O((row0 + nrows) * N): meant for filling memory once, in order. */
NLSQ_API int  nlsq_xpcs_synth_rows(const nlsq_xpcs_synth_spec *s, size_t a, size_t row0,
                                   size_t nrows, double *out, char *err, size_t err_size);

/** The truth stored by the synthetic writer: phys (7 values), and contrast /
 *  offset (n_angles values each, file order of phi; may be NULL).  Returns 0,
 *  NLSQ_XPCS_EFORMAT when the file holds no truth (a real measurement), or an
 *  error. */
NLSQ_API int  nlsq_xpcs_read_truth(nlsq_xpcs_file *f, double *phys, double *contrast,
                                   double *offset, size_t n_angles, char *err, size_t err_size);

#ifdef __cplusplus
}
#endif
#endif /* NLSQ_XPCS_SYNTH_H */
