/*
 * xpcs_file.h - the open XPCS file, shared by the reader's files (private,
 * not installed).
 *
 *   reader.c   open/close, selection, row blocks, the helpers below
 *   layout.c   the two layouts: which matrix is which (q, phi), dt
 *   storage.c  storage that is not data: unallocated, virtual with a
 *              missing source, external files missing or short; the
 *              triangle a matrix is stored in
 *
 * Every helper is called with the HDF5 lock held and HDF5's error printing
 * silenced; errors are one line into err naming the file and the dataset.
 */
#ifndef NLSQ_XPCS_FILE_H
#define NLSQ_XPCS_FILE_H

#include <hdf5.h>
#include <stddef.h>

#include "nlsq_xpcs.h"
#include "xpcs_common.h"

#define XPCS_APSU_GROUP "xpcs/twotime/correlation_map"
#define XPCS_OLD_GROUP  "exchange/C2T_all"

/* How a matrix is stored (decided on its first read, storage.c). */
enum { XPCS_TRI_UNKNOWN = 0, XPCS_TRI_UPPER = 1, XPCS_TRI_LOWER = 2 };

struct nlsq_xpcs_file {
    char *path;        /* as given, for messages */
    hid_t fid;
    int layout;
    size_t n_mat;
    char **name;       /* n_mat dataset paths */
    double *q, *phi;   /* n_mat each */
    unsigned char *tri;/* n_mat XPCS_TRI_* */
    size_t n;          /* N */
    int f32;
    hid_t dset;        /* cached open matrix dataset, or -1 */
    size_t dset_k;
    double dt;         /* frame time stored in the file, NAN when not stored */
    char dt_source[384]; /* where dt came from, or what is missing */
};

/* reader.c */
XPCS__HIDDEN int  nlsq__xpcs_path_exists(hid_t loc, const char *path);
XPCS__HIDDEN int  nlsq__xpcs_open_dataset(nlsq_xpcs_file *f, const char *dpath, hid_t *out, char *err,
                                     size_t es);
/* A small numeric list (any rank, flattened) as doubles; require_finite. */
XPCS__HIDDEN int  nlsq__xpcs_read_list(nlsq_xpcs_file *f, const char *dpath, double **out,
                                  size_t *count, int require_finite, char *err, size_t es);
/* Link names of a group in natural order ("c2_*" only when there are any). */
XPCS__HIDDEN int  nlsq__xpcs_list_keys(nlsq_xpcs_file *f, const char *gpath, char ***names_out,
                                  size_t *n_out, char *err, size_t es);
/* f->name[k] = "gpath/keys[k]"; sets f->n_mat. */
XPCS__HIDDEN int  nlsq__xpcs_make_paths(nlsq_xpcs_file *f, const char *gpath, char **keys, size_t n,
                                   char *err, size_t es);
XPCS__HIDDEN void nlsq__xpcs_free_names(char **names, size_t n);

/* layout.c: fill f->name, f->q, f->phi, f->n_mat; and f->dt, f->dt_source */
XPCS__HIDDEN int  nlsq__xpcs_discover_apsu(nlsq_xpcs_file *f, char *err, size_t es);
XPCS__HIDDEN int  nlsq__xpcs_discover_old(nlsq_xpcs_file *f, char *err, size_t es);
XPCS__HIDDEN void nlsq__xpcs_read_dt(nlsq_xpcs_file *f);

/* open_failure.c: the one line for a failed H5Fopen (call right after it,
 * inside the reader's HDF5 lock): locked by a writer, truncated (sizes
 * named), damaged, not HDF5. */
XPCS__HIDDEN void nlsq__xpcs_open_failed(const char *path, char *err, size_t es);

/* storage.c */
/* 0, or NLSQ_XPCS_EFORMAT when dataset d holds no data of its own. */
XPCS__HIDDEN int  nlsq__xpcs_check_storage(nlsq_xpcs_file *f, hid_t d, const char *dpath, char *err,
                                      size_t es);
/* XPCS_TRI_UPPER or XPCS_TRI_LOWER for the N x N matrix d (reads rows 0 and
 * N-1); negative on a read error. */
XPCS__HIDDEN int  nlsq__xpcs_probe_triangle(hid_t d, size_t n);

#endif /* NLSQ_XPCS_FILE_H */
