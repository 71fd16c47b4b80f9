/*
 * layout.c - which matrix of an APS 8-ID-I file is which (q, phi), and the
 * frame time dt, in the two layouts the beamline's pipeline writes.
 *
 * APS-U (NeXus-style results of boost_corr):
 *   xpcs/qmap/dynamic_v_list_dim0, _dim1   the values along the two axes of
 *                                          the dynamic partition
 *   xpcs/qmap/map_names                    the axes' names, ("q", "phi") or
 *                                          ("phi", "q"); optional
 *   xpcs/qmap/dynamic_num_pts              (n_dim0, n_dim1); optional
 *   xpcs/qmap/dynamic_index_mapping        the compressed bins: entry b-1 is
 *                                          the flattened index i0 * n_dim1 + i1
 *                                          of label b (empty bins have no
 *                                          label); optional: identity
 *   xpcs/twotime/processed_bins            the label of each matrix, 1-based
 *   xpcs/twotime/correlation_map/c2_*      the matrices, in processing order
 *   dt = /entry/instrument/detector_1/frame_time
 *        * /xpcs/twotime/config/stride_frame * /xpcs/twotime/config/avg_frame
 *
 * APS old:
 *   xpcs/dqlist, xpcs/dphilist             q and phi of every dynamic bin
 *   xpcs/qphi_bin_to_process               the 1-based bins that have a
 *                                          matrix, (M,) or (M, 1); optional:
 *                                          all bins
 *   exchange/C2T_all/<key>                 the matrices, in processing order
 *   dt = /measurement/instrument/detector/exposure_period
 *        * /xpcs/stride_frames * /xpcs/avg_frames
 *
 * In both layouts the k-th matrix in natural key order (c2_00001, c2_00002,
 * ...) is the k-th entry of the bin list: the writer numbers the matrices in
 * the order of that list.
 */
#define _POSIX_C_SOURCE 200809L   /* strcasecmp, strnlen */
#include "xpcs_file.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define APSU_QLIST   "xpcs/qmap/dynamic_v_list_dim0"
#define APSU_PHLIST  "xpcs/qmap/dynamic_v_list_dim1"
#define APSU_NAMES   "xpcs/qmap/map_names"
#define APSU_NUMPTS  "xpcs/qmap/dynamic_num_pts"
#define APSU_MAPPING "xpcs/qmap/dynamic_index_mapping"
#define APSU_BINS    "xpcs/twotime/processed_bins"
#define OLD_QLIST    "xpcs/dqlist"
#define OLD_PHLIST   "xpcs/dphilist"
#define OLD_BINS     "xpcs/qphi_bin_to_process"

#define NAME_MAX_LEN 32

/* ------------------------------------------------------------------------ */
/* map_names: two short strings, fixed-length or variable-length             */
/* ------------------------------------------------------------------------ */

static int read_vlen_names(hid_t d, hid_t sp, size_t n, char out[][NAME_MAX_LEN])
{
    char **v = calloc(n, sizeof *v);
    hid_t mt = H5Tcopy(H5T_C_S1);
    int ok = v && mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 &&
             H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
    for (size_t i = 0; ok && i < n; i++)
        snprintf(out[i], NAME_MAX_LEN, "%s", v[i] ? v[i] : "");
    if (ok) {
#if H5_VERSION_GE(1, 12, 0)
        H5Treclaim(mt, sp, H5P_DEFAULT, v);
#else
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
#endif
    }
    if (mt >= 0) H5Tclose(mt);
    free(v);
    return ok ? 0 : -1;
}

static int read_fixed_names(hid_t d, hid_t ft, size_t n, char out[][NAME_MAX_LEN])
{
    size_t sz = H5Tget_size(ft);
    if (sz == 0 || sz > 4096) return -1;
    char *raw = calloc(n, sz);
    hid_t mt = H5Tcopy(ft);
    int ok = raw && mt >= 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0;
    for (size_t i = 0; ok && i < n; i++) {
        size_t len = strnlen(raw + i * sz, sz);
        if (len >= NAME_MAX_LEN) len = NAME_MAX_LEN - 1;
        memcpy(out[i], raw + i * sz, len);
        out[i][len] = '\0';
        while (len > 0 && out[i][len - 1] == ' ') out[i][--len] = '\0';   /* space padding */
    }
    if (mt >= 0) H5Tclose(mt);
    free(raw);
    return ok ? 0 : -1;
}

/* The two axis names; 1 when found, 0 when the dataset is absent, < 0 on error. */
static int read_map_names(nlsq_xpcs_file *f, char names[2][NAME_MAX_LEN], char *err, size_t es)
{
    if (!nlsq__xpcs_path_exists(f->fid, APSU_NAMES)) return 0;
    hid_t d = -1, t = -1, sp = -1;
    int rc = nlsq__xpcs_open_dataset(f, APSU_NAMES, &d, err, es);
    if (rc < 0) return rc;
    t = H5Dget_type(d);
    sp = H5Dget_space(d);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (t < 0 || H5Tget_class(t) != H5T_STRING || n != 2) {
        xpcs__err(err, es, "%s: '%s' must hold two strings (the names of the two axes)", f->path,
                  APSU_NAMES);
        rc = NLSQ_XPCS_EFORMAT;
    } else {
        int r = H5Tis_variable_str(t) > 0 ? read_vlen_names(d, sp, 2, names)
                                         : read_fixed_names(d, t, 2, names);
        rc = r < 0 ? NLSQ_XPCS_EFORMAT : 1;
        if (r < 0) xpcs__err(err, es, "%s: cannot read '%s'", f->path, APSU_NAMES);
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Dclose(d);
    return rc;
}

/* Which axis is q: 0 or 1 (from map_names; 0 when they are absent). */
static int apsu_q_axis(nlsq_xpcs_file *f, int *q_axis, char *err, size_t es)
{
    char names[2][NAME_MAX_LEN];
    int rc = read_map_names(f, names, err, es);
    *q_axis = 0;
    if (rc <= 0) return rc;
    if (!strcasecmp(names[0], "q") && !strcasecmp(names[1], "phi")) return 0;
    if (!strcasecmp(names[0], "phi") && !strcasecmp(names[1], "q")) {
        *q_axis = 1;
        return 0;
    }
    xpcs__err(err, es,
              "%s: '%s' is (\"%s\", \"%s\"): the two-time bins are not (q, phi) bins, which "
              "this fit needs", f->path, APSU_NAMES, names[0], names[1]);
    return NLSQ_XPCS_EFORMAT;
}

/* ------------------------------------------------------------------------ */
/* Integer lists                                                             */
/* ------------------------------------------------------------------------ */

/* Entry k of list v (dataset dpath) as an integer in [lo, hi]. */
static int list_int(nlsq_xpcs_file *f, const char *dpath, const double *v, size_t k, double lo,
                    double hi, size_t *out, char *err, size_t es)
{
    double b = v[k];
    if (b != floor(b) || b < lo || b > hi) {
        xpcs__err(err, es, "%s: '%s'[%zu] = %g is not an integer in %.0f..%.0f", f->path, dpath,
                  k, b, lo, hi);
        return NLSQ_XPCS_EFORMAT;
    }
    *out = (size_t)b;
    return 0;
}

/* A zeroed table of n elements of size bytes (at least one element), or
 * NULL with the out-of-memory line in err (the caller returns NLSQ_ENOMEM). */
static void *layout_alloc(nlsq_xpcs_file *f, size_t n, size_t size, char *err, size_t es)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) xpcs__err(err, es, "%s: out of memory", f->path);
    return p;
}

/* No value of the m labels (each in [0, range)) twice. */
static int labels_distinct(nlsq_xpcs_file *f, const char *dpath, const size_t *lab, size_t m,
                           size_t range, char *err, size_t es)
{
    unsigned char *seen = layout_alloc(f, range, 1, err, es);
    if (!seen) return NLSQ_ENOMEM;
    int rc = 0;
    for (size_t k = 0; k < m && rc == 0; k++) {
        if (seen[lab[k]]) {
            xpcs__err(err, es, "%s: '%s' lists bin %zu twice", f->path, dpath, lab[k] + 1);
            rc = NLSQ_XPCS_EFORMAT;
        }
        seen[lab[k]] = 1;
    }
    free(seen);
    return rc;
}

/* The keys of group gpath paired one to one with nb bins: same count. */
static int keys_for_bins(nlsq_xpcs_file *f, const char *gpath, const char *bins_path, size_t nb,
                         const char *noun, char ***keys, size_t *nk, char *err, size_t es)
{
    int rc = nlsq__xpcs_list_keys(f, gpath, keys, nk, err, es);
    if (rc < 0) return rc;
    if (*nk != nb) {
        xpcs__err(err, es, "%s: '%s' lists %zu %s but '%s' holds %zu matrices", f->path,
                  bins_path, nb, noun, gpath, *nk);
        return NLSQ_XPCS_EFORMAT;
    }
    return 0;
}

static int alloc_qphi(nlsq_xpcs_file *f, size_t n, char *err, size_t es)
{
    f->q = malloc(n * sizeof *f->q);
    f->phi = malloc(n * sizeof *f->phi);
    if (f->q && f->phi) return 0;
    xpcs__err(err, es, "%s: out of memory", f->path);
    return NLSQ_ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* APS-U                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct apsu_lists {
    double *v0, *v1, *map, *bins;
    size_t n0, n1, nmap, nb;
} apsu_lists;

static void apsu_lists_free(apsu_lists *L)
{
    free(L->v0);
    free(L->v1);
    free(L->map);
    free(L->bins);
}

/* dynamic_num_pts, when stored, must match the two value lists. */
static int apsu_check_num_pts(nlsq_xpcs_file *f, const apsu_lists *L, char *err, size_t es)
{
    if (!nlsq__xpcs_path_exists(f->fid, APSU_NUMPTS)) return 0;
    double *np = NULL;
    size_t c = 0;
    int rc = nlsq__xpcs_read_list(f, APSU_NUMPTS, &np, &c, 1, err, es);
    if (rc == 0 && (c != 2 || np[0] != (double)L->n0 || np[1] != (double)L->n1)) {
        xpcs__err(err, es, "%s: '%s' is (%g, %g) but the axes hold %zu and %zu values", f->path,
                  APSU_NUMPTS, c > 0 ? np[0] : NAN, c > 1 ? np[1] : NAN, L->n0, L->n1);
        rc = NLSQ_XPCS_EFORMAT;
    }
    free(np);
    return rc;
}

static int apsu_read_lists(nlsq_xpcs_file *f, apsu_lists *L, char *err, size_t es)
{
    int rc;
    if ((rc = nlsq__xpcs_read_list(f, APSU_QLIST, &L->v0, &L->n0, 1, err, es)) < 0) return rc;
    if ((rc = nlsq__xpcs_read_list(f, APSU_PHLIST, &L->v1, &L->n1, 1, err, es)) < 0) return rc;
    if ((rc = apsu_check_num_pts(f, L, err, es)) < 0) return rc;
    if (nlsq__xpcs_path_exists(f->fid, APSU_MAPPING) &&
        (rc = nlsq__xpcs_read_list(f, APSU_MAPPING, &L->map, &L->nmap, 1, err, es)) < 0)
        return rc;
    return nlsq__xpcs_read_list(f, APSU_BINS, &L->bins, &L->nb, 1, err, es);
}

/* The flattened (natural) index of each matrix's label. */
static int apsu_natural(nlsq_xpcs_file *f, const apsu_lists *L, size_t *nat, char *err, size_t es)
{
    /* n0, n1 <= 2^24, so their product is exact in a double and a size_t */
    const size_t total = L->n0 * L->n1, nlab = L->map ? L->nmap : total;
    int rc = 0;
    if (L->map) {   /* the mapping's entries must be distinct flattened indices */
        size_t *m = layout_alloc(f, L->nmap, sizeof *m, err, es);
        if (!m) return NLSQ_ENOMEM;
        for (size_t k = 0; k < L->nmap && rc == 0; k++)
            rc = list_int(f, APSU_MAPPING, L->map, k, 0, (double)total - 1, &m[k], err, es);
        if (rc == 0) rc = labels_distinct(f, APSU_MAPPING, m, L->nmap, total, err, es);
        free(m);
        if (rc < 0) return rc;
    }
    for (size_t k = 0; k < L->nb && rc == 0; k++) {
        size_t b;
        rc = list_int(f, APSU_BINS, L->bins, k, 1, (double)nlab, &b, err, es);
        if (rc == 0) nat[k] = L->map ? (size_t)L->map[b - 1] : b - 1;
    }
    if (rc == 0) rc = labels_distinct(f, APSU_BINS, nat, L->nb, total, err, es);
    return rc;
}

int nlsq__xpcs_discover_apsu(nlsq_xpcs_file *f, char *err, size_t es)
{
    apsu_lists L;
    memset(&L, 0, sizeof L);
    char **keys = NULL;
    size_t nk = 0, *nat = NULL;
    int q_axis = 0, rc;

    if ((rc = apsu_q_axis(f, &q_axis, err, es)) < 0) goto done;
    if ((rc = apsu_read_lists(f, &L, err, es)) < 0) goto done;
    if ((rc = keys_for_bins(f, XPCS_APSU_GROUP, APSU_BINS, L.nb, "bins", &keys, &nk, err, es)) < 0)
        goto done;
    if (!(nat = layout_alloc(f, nk, sizeof *nat, err, es))) {
        rc = NLSQ_ENOMEM;
        goto done;
    }
    if ((rc = apsu_natural(f, &L, nat, err, es)) < 0) goto done;
    if ((rc = nlsq__xpcs_make_paths(f, XPCS_APSU_GROUP, keys, nk, err, es)) < 0) goto done;
    if ((rc = alloc_qphi(f, nk, err, es)) < 0) goto done;
    for (size_t k = 0; k < nk; k++) {
        size_t i0 = nat[k] / L.n1, i1 = nat[k] % L.n1;
        f->q[k] = q_axis == 0 ? L.v0[i0] : L.v1[i1];
        f->phi[k] = q_axis == 0 ? L.v1[i1] : L.v0[i0];
    }
    rc = 0;
done:
    apsu_lists_free(&L);
    free(nat);
    nlsq__xpcs_free_names(keys, nk);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* APS old                                                                   */
/* ------------------------------------------------------------------------ */

int nlsq__xpcs_discover_old(nlsq_xpcs_file *f, char *err, size_t es)
{
    double *ql = NULL, *pl = NULL, *bins = NULL;
    size_t nq = 0, np = 0, nb = 0, nk = 0, *idx = NULL;
    char **keys = NULL;
    int rc;

    if ((rc = nlsq__xpcs_read_list(f, OLD_QLIST, &ql, &nq, 1, err, es)) < 0) goto done;
    if ((rc = nlsq__xpcs_read_list(f, OLD_PHLIST, &pl, &np, 1, err, es)) < 0) goto done;
    if (nq != np) {
        xpcs__err(err, es, "%s: '%s' has %zu values but '%s' has %zu", f->path, OLD_QLIST, nq,
                  OLD_PHLIST, np);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    int have_bins = nlsq__xpcs_path_exists(f->fid, OLD_BINS);
    if (have_bins && (rc = nlsq__xpcs_read_list(f, OLD_BINS, &bins, &nb, 1, err, es)) < 0) goto done;
    if (!have_bins) nb = nq;
    if ((rc = keys_for_bins(f, XPCS_OLD_GROUP, have_bins ? OLD_BINS : OLD_QLIST, nb,
                            have_bins ? "bins" : "(q, phi) pairs", &keys, &nk, err, es)) < 0)
        goto done;
    if (!(idx = layout_alloc(f, nk, sizeof *idx, err, es))) {
        rc = NLSQ_ENOMEM;
        goto done;
    }
    for (size_t k = 0; k < nk && rc == 0; k++) {
        size_t b = k + 1;
        if (have_bins) rc = list_int(f, OLD_BINS, bins, k, 1, (double)nq, &b, err, es);
        idx[k] = b - 1;
    }
    if (rc == 0 && have_bins) rc = labels_distinct(f, OLD_BINS, idx, nk, nq, err, es);
    if (rc < 0) goto done;
    if ((rc = nlsq__xpcs_make_paths(f, XPCS_OLD_GROUP, keys, nk, err, es)) < 0) goto done;
    if ((rc = alloc_qphi(f, nk, err, es)) < 0) goto done;
    for (size_t k = 0; k < nk; k++) {
        f->q[k] = ql[idx[k]];
        f->phi[k] = pl[idx[k]];
    }
    rc = 0;
done:
    free(ql);
    free(pl);
    free(bins);
    free(idx);
    nlsq__xpcs_free_names(keys, nk);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* dt                                                                        */
/* ------------------------------------------------------------------------ */

static const char *const apsu_dt_paths[3] = {
    "entry/instrument/detector_1/frame_time", "xpcs/twotime/config/stride_frame",
    "xpcs/twotime/config/avg_frame"};
static const char *const old_dt_paths[3] = {
    "measurement/instrument/detector/exposure_period", "xpcs/stride_frames", "xpcs/avg_frames"};

void nlsq__xpcs_read_dt(nlsq_xpcs_file *f)
{
    const char *const *paths =
        f->layout == NLSQ_XPCS_LAYOUT_APS_U ? apsu_dt_paths : old_dt_paths;
    double v[3], dt = 1.0;
    f->dt = NAN;
    for (int k = 0; k < 3; k++) {
        double *buf = NULL;
        size_t c = 0;
        char e[8];
        if (!nlsq__xpcs_path_exists(f->fid, paths[k])) {
            snprintf(f->dt_source, sizeof f->dt_source, "the file has no '/%s'", paths[k]);
            return;
        }
        int rc = nlsq__xpcs_read_list(f, paths[k], &buf, &c, 1, e, sizeof e);
        int ok = rc == 0 && c == 1 && buf[0] > 0 && isfinite(buf[0]);
        if (ok) v[k] = buf[0];
        free(buf);
        if (!ok) {
            snprintf(f->dt_source, sizeof f->dt_source,
                     "the file's '/%s' is not one positive number", paths[k]);
            return;
        }
        dt *= v[k];
    }
    if (!isfinite(dt) || !(dt > 0)) {
        snprintf(f->dt_source, sizeof f->dt_source, "the file's dt is not a positive number");
        return;
    }
    f->dt = dt;
    snprintf(f->dt_source, sizeof f->dt_source, "file: /%s (%.17g) * /%s (%.17g) * /%s (%.17g)",
             paths[0], v[0], paths[1], v[1], paths[2], v[2]);
}
