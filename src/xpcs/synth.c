/*
 * synth.c - synthetic APS 8-ID-I files (part 2 of nlsq_xpcs.h).
 *
 * Matrices: for each q index u = 0..n_extra_q (q_u = q (1 + 0.5 u); u = 0 is
 * the requested q, the others are decoys) and each angle p, one N x N matrix
 * of g2 (docs/xpcs-model.md "Forward model", computed by physics.h) plus Gaussian noise in
 * the upper triangle (j >= i, diagonal included), zeros below.  Key order is
 * (u, p): matrix m = u * P + p is key c2_%05zu (m + 1); for APS-U it is bin
 * m + 1 (all bins processed, dim0 = the q_u, dim1 = the phi_p); for APS old
 * dqlist / dphilist hold (q_u, phi_p) in the same order.
 *
 * Noise: row i of matrix (u, p) draws its normals, j = i..N-1 in order, from a
 * stream seeded by (seed, u, p, i), so the file does not depend on how rows
 * are blocked.  With frame_share > 0 a part of the variance is shared by
 * frames: u_f, one normal per frame of each matrix from the matrix's own
 * stream, enters its entry (i, j) as sqrt(frame_share / 2) (u_i + u_j).  Rows are generated and written in blocks of at most 128 rows
 * (hyperslab writes of the block's columns [r0, N)); datasets are chunked
 * (at most 128 x 128) with fill value 0, so chunks wholly below the diagonal
 * are never written and take no space.
 */
#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"
#include "xpcs_common.h"
#include "xpcs_filters.h"

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNTH_CHUNK 128
#define SYNTH_BLOCK_BYTES ((size_t)16 << 20)

void nlsq_xpcs_synth_spec_default(nlsq_xpcs_synth_spec *s)
{
    if (!s) return;
    memset(s, 0, sizeof *s);
    s->layout = NLSQ_XPCS_LAYOUT_APS_U;
    s->float32 = 1;
    s->n_frames = 1001;
    s->n_angles = 23;
    s->phi = NULL;
    s->q = 0.01;
    s->gap = 2e6;
    s->dt = 1e-3;
    s->k0 = 0;
    s->static_mode = 0;
    s->params[0] = 2.0e4;   /* D0 */
    s->params[1] = -0.2;    /* alpha */
    s->params[2] = 100.0;   /* D_offset */
    s->params[3] = 1.0e-3;  /* gamma_dot_0 */
    s->params[4] = 0.2;     /* beta */
    s->params[5] = 1e-4;    /* gamma_dot_offset */
    s->params[6] = 3.0;     /* phi0 */
    s->contrast = NULL;
    s->offset = NULL;
    s->noise_sigma = 0.01;
    s->seed = 42;
    s->n_extra_q = 0;
}

static int all_finite(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

static int check_spec(const char *path, const nlsq_xpcs_synth_spec *s, char *err, size_t es)
{
    const char *why = NULL;
    if (s->layout != NLSQ_XPCS_LAYOUT_APS_OLD && s->layout != NLSQ_XPCS_LAYOUT_APS_U)
        why = "layout must be APS old or APS-U";
    else if (s->n_frames < 1)
        why = "n_frames must be >= 1";
    else if (s->n_frames > SIZE_MAX / sizeof(double) / s->n_frames)
        why = "n_frames too large";
    else if (s->n_angles < 1)
        why = "n_angles must be >= 1";
    else if (s->n_extra_q >= 1000000 || s->n_angles > 100000000 ||
             (s->n_extra_q + 1) * s->n_angles > 10000000)
        why = "too many matrices";
    else if (!(isfinite(s->q) && s->q > 0))
        why = "q must be finite and > 0";
    else if (!(isfinite(s->dt) && s->dt > 0))
        why = "dt must be finite and > 0";
    else if (!isfinite(s->gap))
        why = "gap must be finite";
    else if (!(isfinite(s->noise_sigma) && s->noise_sigma >= 0))
        why = "noise_sigma must be finite and >= 0";
    else if (!(s->frame_share >= 0 && s->frame_share <= 1))
        why = "frame_share must be in [0, 1]";
    else if (s->empty_bin && s->empty_angle >= s->n_angles)
        why = "empty_angle must be one of the angles";
    else if (s->empty_bin && s->n_angles * (s->n_extra_q + 1) < 2)
        why = "an empty bin needs another bin with a matrix";
    else if (!all_finite(s->params, NLSQ_XPCS_N_PHYS))
        why = "physical parameters must be finite";
    else if (s->phi && !all_finite(s->phi, s->n_angles))
        why = "phi must be finite";
    else if (s->contrast && !all_finite(s->contrast, s->n_angles))
        why = "contrast must be finite";
    else if (s->offset && !all_finite(s->offset, s->n_angles))
        why = "offset must be finite";
    if (why) {
        xpcs__err(err, es, "%s: invalid synthetic spec: %s", path, why);
        return NLSQ_EINVAL;
    }
    return 0;
}

/* A small dataset from a native buffer. */
static int write_small(hid_t fid, hid_t lcpl, const char *name, int rank, const hsize_t *dims,
                       hid_t ftype, hid_t mtype, const void *data)
{
    int ok = 0;
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    if (sp < 0) return -1;
    hid_t d = H5Dcreate2(fid, name, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        ok = H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
        ok = (H5Dclose(d) >= 0) && ok;
    }
    H5Sclose(sp);
    return ok ? 0 : -1;
}

/* Angle p's phi (degrees), contrast and offset: given, or the defaults. */
static void synth_angle(const nlsq_xpcs_synth_spec *s, size_t p, double *phi, double *con,
                        double *off)
{
    double x = 2 * NLSQ__XPCS_PI * (double)p / (double)s->n_angles;
    *phi = s->phi ? s->phi[p] : (double)p * 360.0 / (double)s->n_angles;
    *con = s->contrast ? s->contrast[p] : 0.25 + 0.05 * sin(x);
    *off = s->offset ? s->offset[p] : 1.0 + 0.01 * cos(x);
}

/* Stored (upper-triangle) row i of matrix (q index u, angle p): g2 plus
 * noise for j = i .. N-1 into out[j - i].  The noise of a row comes from its
 * own stream, seeded by (seed, u, p, i), so rows can be made in any order. */
/* The frame noise u_f of matrix (q index u, angle p): N values from its own
 * stream, seeded by (seed, u, p, all ones) so that it is no row's stream;
 * NULL when frame_share is 0.  The caller frees it. */
static double *frame_noise(const nlsq_xpcs_synth_spec *s, int *nomem)
{
    *nomem = 0;
    if (!(s->frame_share > 0) || !(s->noise_sigma > 0)) return NULL;
    double *fu = malloc(s->n_frames * sizeof *fu);
    if (!fu) *nomem = 1;
    return fu;
}

static void frame_noise_fill(const nlsq_xpcs_synth_spec *s, size_t u, size_t p, double *fu)
{
    if (!fu) return;
    xpcs__rng rng;
    xpcs__rng_seed(&rng, xpcs__mix_seed(s->seed, u, p, UINT64_MAX));
    for (size_t f = 0; f < s->n_frames; f++) fu[f] = xpcs__rng_normal(&rng);
}

/* The model geometry of q index u's q. */
static void synth_geom(const nlsq_xpcs_synth_spec *s, double qu, nlsq__xpcs_geom *g)
{
    nlsq__xpcs_geom_init(g, qu, s->gap, s->dt, s->k0, s->n_frames, !s->static_mode);
}

/* CD and (laminar) CG of the truth (the same for every q). */
static void synth_tables(const nlsq_xpcs_synth_spec *s, double *CD, double *CG)
{
    nlsq__xpcs_geom geo;
    synth_geom(s, s->q, &geo);
    nlsq__xpcs_tables(&geo, s->params, CD, NULL, CG, NULL);
}

static void synth_upper_row(const nlsq_xpcs_synth_spec *s, const double *CD, const double *CG,
                            const double *fu, double qu, double phi, double con, double off,
                            size_t u, size_t p, size_t i, double *out)
{
    const double a_sh = fu ? sqrt(s->frame_share / 2) : 0.0;
    const double b_ind = fu ? sqrt(1.0 - s->frame_share) : 1.0;
    const size_t N = s->n_frames;
    nlsq__xpcs_geom geo;
    synth_geom(s, qu, &geo);
    double bc = 0.0;
    if (geo.laminar) nlsq__xpcs_angle(geo.B, s->params[6], phi, &bc, NULL);
    xpcs__rng rng;
    xpcs__rng_seed(&rng, xpcs__mix_seed(s->seed, u, p, i));
    for (size_t j = i; j < N; j++) {
        double g = nlsq__xpcs_g2_entry(&geo, CD, CG, bc, con, off, i, j);
        if (s->noise_sigma > 0) {
            double z = b_ind * xpcs__rng_normal(&rng);
            if (fu) z += a_sh * (fu[i] + fu[j]);
            g += s->noise_sigma * z;
        }
        out[j - i] = g;
    }
}

typedef struct synth_ctx {
    const nlsq_xpcs_synth_spec *s;
    size_t N, P;
    const double *CD, *CG;
    const double *fu;   /* frame noise (N), or NULL */
    double *buf;        /* block_rows x N */
    size_t block_rows;
} synth_ctx;

/* One matrix: q index u, angle p, values into dataset dname. */
static int write_matrix(const synth_ctx *c, hid_t fid, hid_t lcpl, const char *dname,
                        size_t u, size_t p, double qu, double phi, double contrast,
                        double offset)
{
    const nlsq_xpcs_synth_spec *s = c->s;
    const size_t N = c->N;
    hsize_t dims[2] = {N, N};
    /* LZF as the beamline writes it: one (N, N) chunk, kept in the chunk
     * cache while the row blocks are written (compressed once, on close) */
    hsize_t cn = s->lzf ? N : (N < SYNTH_CHUNK ? N : SYNTH_CHUNK), chunk[2] = {cn, cn};
    hid_t sp = -1, dcpl = -1, dapl = -1, d = -1, fs = -1, ms = -1;
    int ok = 0;
    double zero = 0.0;

    sp = H5Screate_simple(2, dims, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (sp < 0 || dcpl < 0 || dapl < 0 || H5Pset_chunk(dcpl, 2, chunk) < 0 ||
        H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &zero) < 0)
        goto done;
    if (s->lzf && (H5Pset_filter(dcpl, XPCS_LZF_FILTER_ID, H5Z_FLAG_OPTIONAL, 0, NULL) < 0 ||
                   H5Pset_chunk_cache(dapl, 521, (size_t)(cn * cn * 8), 1.0) < 0))
        goto done;
    d = H5Dcreate2(fid, dname, s->float32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE, sp, lcpl, dcpl,
                   dapl);
    if (d < 0) goto done;
    fs = H5Dget_space(d);
    if (fs < 0) goto done;

    for (size_t r0 = 0; r0 < N; r0 += c->block_rows) {
        size_t nr = N - r0 < c->block_rows ? N - r0 : c->block_rows;
        size_t w = N - r0;   /* columns [r0, N) */
        for (size_t r = 0; r < nr; r++) {
            size_t i = r0 + r;
            double *row = c->buf + r * w;
            for (size_t j = r0; j < i; j++) row[j - r0] = 0.0;
            synth_upper_row(s, c->CD, c->CG, c->fu, qu, phi, contrast, offset, u, p, i,
                            row + (i - r0));
        }
        hsize_t start[2] = {r0, r0}, count[2] = {nr, w};
        ms = H5Screate_simple(2, count, NULL);
        if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, c->buf) < 0)
            goto done;
        H5Sclose(ms);
        ms = -1;
    }
    ok = 1;
done:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0 && H5Dclose(d) < 0) ok = 0;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (dapl >= 0) H5Pclose(dapl);
    if (sp >= 0) H5Sclose(sp);
    return ok ? 0 : -1;
}

/* Is natural bin m (q index m / P, angle m % P) written?  Not the empty bin. */
static int bin_written(const nlsq_xpcs_synth_spec *s, size_t m)
{
    return !(s->empty_bin && m == s->empty_angle);
}

/* The partition: the q and phi lists, and which bin each matrix is.  lab
 * (M values) is scratch.  APS-U: labels 1..Mw over the written bins in
 * natural order, dynamic_index_mapping = their natural indices; APS old:
 * every bin listed, qphi_bin_to_process when a bin is empty.  *what names
 * the dataset being written (for a failure message). */
static int write_partition(hid_t fid, hid_t lcpl, const nlsq_xpcs_synth_spec *s, const double *qv,
                           const double *phi, const double *qlist, const double *plist,
                           long long *lab, const char **what)
{
    const size_t P = s->n_angles, NQ = s->n_extra_q + 1, M = NQ * P;
    size_t Mw = 0;
    for (size_t m = 0; m < M; m++)
        if (bin_written(s, m)) lab[Mw++] = (long long)m;   /* natural indices written */
    hsize_t dq = NQ, dp = P, dw = Mw, dm[2] = {1, M}, d2 = 2;
    if (s->layout != NLSQ_XPCS_LAYOUT_APS_U) {
        if ((*what = "xpcs/dqlist", write_small(fid, lcpl, *what, 2, dm, H5T_IEEE_F64LE,
                                                H5T_NATIVE_DOUBLE, qlist)) < 0 ||
            (*what = "xpcs/dphilist", write_small(fid, lcpl, *what, 2, dm, H5T_IEEE_F64LE,
                                                  H5T_NATIVE_DOUBLE, plist)) < 0)
            return -1;
        if (!s->empty_bin) return 0;
        for (size_t w = 0; w < Mw; w++) lab[w] += 1;   /* 1-based bins */
        *what = "xpcs/qphi_bin_to_process";
        return write_small(fid, lcpl, *what, 1, &dw, H5T_STD_I64LE, H5T_NATIVE_LLONG, lab);
    }
    long long npts[2] = {(long long)NQ, (long long)P};
    if ((*what = "xpcs/qmap/dynamic_v_list_dim0",
         write_small(fid, lcpl, *what, 1, &dq, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, qv)) < 0 ||
        (*what = "xpcs/qmap/dynamic_v_list_dim1",
         write_small(fid, lcpl, *what, 1, &dp, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, phi)) < 0 ||
        (*what = "xpcs/qmap/dynamic_num_pts",
         write_small(fid, lcpl, *what, 1, &d2, H5T_STD_I64LE, H5T_NATIVE_LLONG, npts)) < 0 ||
        (*what = "xpcs/qmap/dynamic_index_mapping",
         write_small(fid, lcpl, *what, 1, &dw, H5T_STD_I64LE, H5T_NATIVE_LLONG, lab)) < 0)
        return -1;
    for (size_t w = 0; w < Mw; w++) lab[w] = (long long)w + 1;   /* compressed labels */
    *what = "xpcs/twotime/processed_bins";
    return write_small(fid, lcpl, *what, 1, &dw, H5T_STD_I64LE, H5T_NATIVE_LLONG, lab);
}

/* The frame time, as the beamline stores it: frame time * stride * average. */
static int write_dt(hid_t fid, hid_t lcpl, const nlsq_xpcs_synth_spec *s, const char **what)
{
    static const char *const dt_apsu[3] = {"entry/instrument/detector_1/frame_time",
                                           "xpcs/twotime/config/stride_frame",
                                           "xpcs/twotime/config/avg_frame"};
    static const char *const dt_old[3] = {"measurement/instrument/detector/exposure_period",
                                          "xpcs/stride_frames", "xpcs/avg_frames"};
    const char *const *names = s->layout == NLSQ_XPCS_LAYOUT_APS_U ? dt_apsu : dt_old;
    const double vals[3] = {s->dt, 1.0, 1.0};
    hsize_t d1 = 1;
    for (int k = 0; k < 3; k++) {
        *what = names[k];
        if (write_small(fid, lcpl, *what, 1, &d1, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &vals[k]) < 0)
            return -1;
    }
    return 0;
}

/* The per-file arrays of nlsq_xpcs_synth_write. */
typedef struct synth_arrays {
    double *phi, *con, *off;   /* P: the angles' phi, contrast, offset */
    double *CD, *CG;           /* N: the truth's tables (CG NULL: static) */
    double *qv;                /* NQ: the q values, requested then decoys */
    double *qlist, *plist;     /* M: (q, phi) of every bin in natural order */
    long long *bins;           /* M: scratch for the partition */
} synth_arrays;

static void arrays_free(synth_arrays *a)
{
    free(a->phi);
    free(a->con);
    free(a->off);
    free(a->CD);
    free(a->CG);
    free(a->qv);
    free(a->qlist);
    free(a->plist);
    free(a->bins);
}

/* Allocate and fill the arrays: 0 or NLSQ_ENOMEM. */
static int arrays_make(const nlsq_xpcs_synth_spec *s, synth_arrays *a)
{
    const size_t N = s->n_frames, P = s->n_angles, NQ = s->n_extra_q + 1, M = NQ * P;
    memset(a, 0, sizeof *a);
    a->phi = malloc(P * sizeof *a->phi);
    a->con = malloc(P * sizeof *a->con);
    a->off = malloc(P * sizeof *a->off);
    a->CD = malloc(N * sizeof *a->CD);
    a->CG = s->static_mode ? NULL : malloc(N * sizeof *a->CG);
    a->qv = malloc(NQ * sizeof *a->qv);
    a->qlist = malloc(M * sizeof *a->qlist);
    a->plist = malloc(M * sizeof *a->plist);
    a->bins = malloc(M * sizeof *a->bins);
    if (!a->phi || !a->con || !a->off || !a->CD || (!s->static_mode && !a->CG) || !a->qv ||
        !a->qlist || !a->plist || !a->bins)
        return NLSQ_ENOMEM;
    for (size_t p = 0; p < P; p++) synth_angle(s, p, &a->phi[p], &a->con[p], &a->off[p]);
    for (size_t u = 0; u < NQ; u++) a->qv[u] = s->q * (1.0 + 0.5 * (double)u);
    for (size_t m = 0; m < M; m++) {
        a->qlist[m] = a->qv[m / P];
        a->plist[m] = a->phi[m % P];
    }
    synth_tables(s, a->CD, a->CG);
    return 0;
}

/* The truth, for fit_xpcs and tests to compare with. */
static int write_truth(hid_t fid, hid_t lcpl, const nlsq_xpcs_synth_spec *s,
                       const synth_arrays *a, const char **what)
{
    static const char *const names[4] = {"nlsq_synth/params", "nlsq_synth/phi",
                                         "nlsq_synth/contrast", "nlsq_synth/offset"};
    const double *vals[4] = {s->params, a->phi, a->con, a->off};
    for (int k = 0; k < 4; k++) {
        hsize_t d = k == 0 ? NLSQ_XPCS_N_PHYS : s->n_angles;
        *what = names[k];
        if (write_small(fid, lcpl, *what, 1, &d, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, vals[k]) < 0)
            return -1;
    }
    return 0;
}

/* Every written bin's matrix (names into dname).  0; 1 when the dataset
 * *what failed. */
static int write_matrices(const synth_ctx *c, hid_t fid, hid_t lcpl, const synth_arrays *a,
                          double *fu, char *dname, size_t dsize, const char **what)
{
    const nlsq_xpcs_synth_spec *s = c->s;
    const size_t P = s->n_angles, M = (s->n_extra_q + 1) * P;
    const char *group = s->layout == NLSQ_XPCS_LAYOUT_APS_U ? "xpcs/twotime/correlation_map"
                                                             : "exchange/C2T_all";
    for (size_t m = 0, w = 0; m < M; m++) {
        if (!bin_written(s, m)) continue;
        snprintf(dname, dsize, "%s/c2_%05zu", group, ++w);
        *what = dname;
        size_t u = m / P, p = m % P;
        frame_noise_fill(s, u, p, fu);
        if (write_matrix(c, fid, lcpl, dname, u, p, a->qv[u], a->phi[p], a->con[p], a->off[p]) < 0)
            return 1;
    }
    return 0;
}

/* The whole file (the caller holds the HDF5 lock).  0 or NLSQ_XPCS_EFILE
 * (err set; no file left behind). */
static int write_file(const char *path, const synth_ctx *c, const synth_arrays *a, double *fu,
                      char *err, size_t es)
{
    const nlsq_xpcs_synth_spec *s = c->s;
    const char *what = "the file";
    char dname[96];
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (fid < 0) {
        xpcs__err(err, es, "%s: cannot create the file", path);
        return NLSQ_XPCS_EFILE;
    }
    int bad = 0;   /* -1: writing `what` failed; 1: the matrix dataset `what` failed */
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) bad = -1;
    if (!bad && write_partition(fid, lcpl, s, a->qv, a->phi, a->qlist, a->plist, a->bins,
                                &what) < 0)
        bad = -1;
    if (!bad) bad = write_matrices(c, fid, lcpl, a, fu, dname, sizeof dname, &what);
    if (!bad && write_dt(fid, lcpl, s, &what) < 0) bad = -1;
    if (!bad && write_truth(fid, lcpl, s, a, &what) < 0) bad = -1;
    if (lcpl >= 0) H5Pclose(lcpl);
    if (!bad) {
        what = "the file";
        int closed = H5Fclose(fid) >= 0;
        fid = -1;
        if (closed) return 0;
        bad = -1;
    }
    if (bad == 1) xpcs__err(err, es, "%s: writing dataset '%s' failed", path, what);
    else xpcs__err(err, es, "%s: writing '%s' failed", path, what);
    if (fid >= 0) H5Fclose(fid);
    remove(path);   /* no partial file */
    return NLSQ_XPCS_EFILE;
}

int nlsq_xpcs_synth_write(const char *path, const nlsq_xpcs_synth_spec *s, char *err,
                          size_t es)
{
    if (err && es) err[0] = '\0';
    if (!path || !s) {
        xpcs__err(err, es, "nlsq_xpcs_synth_write: NULL %s", path ? "spec" : "path");
        return NLSQ_EINVAL;
    }
    int rc = check_spec(path, s, err, es);
    if (rc < 0) return rc;
    synth_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    c.N = s->n_frames;
    c.P = s->n_angles;
    c.block_rows = SYNTH_BLOCK_BYTES / sizeof(double) / c.N;
    if (c.block_rows > SYNTH_CHUNK) c.block_rows = SYNTH_CHUNK;
    if (c.block_rows < 1) c.block_rows = 1;
    synth_arrays a;
    int fu_nomem;
    double *fu = frame_noise(s, &fu_nomem);
    c.buf = malloc(c.block_rows * c.N * sizeof *c.buf);
    if (arrays_make(s, &a) != 0 || fu_nomem || !c.buf) {
        xpcs__err(err, es, "%s: out of memory", path);
        rc = NLSQ_ENOMEM;
    } else {
        c.CD = a.CD;
        c.CG = a.CG;
        c.fu = fu;
        nlsq__xpcs_h5_lock();
        if (s->lzf) nlsq__xpcs_filters_register();   /* on failure the dataset creation says so */
        H5E_auto2_t efunc = NULL;
        void *edata = NULL;
        int esaved = H5Eget_auto2(H5E_DEFAULT, &efunc, &edata) >= 0;
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        rc = write_file(path, &c, &a, fu, err, es);
        if (esaved) H5Eset_auto2(H5E_DEFAULT, efunc, edata);
        nlsq__xpcs_h5_unlock();
    }
    arrays_free(&a);
    free(c.buf);
    free(fu);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* In memory: the rows a file would give                                     */
/* ------------------------------------------------------------------------ */

int nlsq_xpcs_synth_rows(const nlsq_xpcs_synth_spec *s, size_t a, size_t row0, size_t nrows,
                         double *out, char *err, size_t es)
{
    if (err && es) err[0] = '\0';
    if (!s || !out) {
        xpcs__err(err, es, "nlsq_xpcs_synth_rows: NULL argument");
        return NLSQ_EINVAL;
    }
    int rc = check_spec("(memory)", s, err, es);
    if (rc < 0) return rc;
    const size_t N = s->n_frames, P = s->n_angles;
    if (a >= P || row0 > N || nrows > N - row0) {
        xpcs__err(err, es, "nlsq_xpcs_synth_rows: angle %zu / rows [%zu, +%zu) out of range", a,
                  row0, nrows);
        return NLSQ_XPCS_ERANGE;
    }
    double *CD = malloc(N * sizeof *CD), *CG = s->static_mode ? NULL : malloc(N * sizeof *CG);
    double *up = malloc(N * sizeof *up);
    int fu_nomem;
    double *fu = frame_noise(s, &fu_nomem);
    if (!CD || (!s->static_mode && !CG) || !up || fu_nomem) {
        free(CD); free(CG); free(up); free(fu);
        xpcs__err(err, es, "nlsq_xpcs_synth_rows: out of memory");
        return NLSQ_ENOMEM;
    }
    frame_noise_fill(s, 0, a, fu);
    synth_tables(s, CD, CG);
    double phi, con, off;
    synth_angle(s, a, &phi, &con, &off);
    /* Full row i: j >= i from upper row i, j < i from upper row j (column i).
     * Walk upper rows 0 .. row0+nrows-1 once; scatter each into the output,
     * rounded to float32 as a float32 file stores it. */
    for (size_t i = 0; i < row0 + nrows; i++) {
        synth_upper_row(s, CD, CG, fu, s->q, phi, con, off, 0, a, i, up + i);
        if (s->float32)
            for (size_t j = i; j < N; j++) up[j] = (double)(float)up[j];
        if (i >= row0) {
            double *row = out + (i - row0) * N;
            for (size_t j = i; j < N; j++) row[j] = up[j];
        }
        /* column i of the output rows below i: full[r][i] = upper[i][r] for r > i */
        size_t r_lo = i + 1 > row0 ? i + 1 : row0;
        for (size_t r = r_lo; r < row0 + nrows; r++) out[(r - row0) * N + i] = up[r];
    }
    free(CD);
    free(CG);
    free(up);
    free(fu);
    return 0;
}
