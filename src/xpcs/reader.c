/*
 * reader.c - APS 8-ID-I two-time correlation files (part 1 of nlsq_xpcs.h).
 *
 * nlsq_xpcs_open discovers the layout ("APS-U" first, then "APS old"), reads
 * the small q / phi / bin lists, lists the matrix datasets in natural key
 * order and checks every matrix (numeric type, rank 2, square, one common N,
 * N * N * 8 bytes representable).  nlsq_xpcs_read_rows serves row blocks of
 * the rebuilt full matrix (full = half + half^T, diagonal halved, i.e. the
 * stored upper triangle mirrored) with two rectangular hyperslab reads:
 *
 *   upper part  rows [R0, R1), columns [R0, E)   -> out columns >= row0
 *   lower part  rows [F, R1-1), columns [R0, R1) -> transposed into out
 *               columns < the row (the stored column of each row)
 *
 * where F is the window's first frame, E = F + n and [R0, R1) the absolute
 * rows asked for; the lower triangle of the file is never used.  Memory per
 * call: one (row0 + nrows) x nrows scratch block, O(nrows * n).
 *
 * Every public function silences HDF5's automatic error printing for its own
 * calls (saved and restored) and holds one process-wide lock while it uses
 * HDF5 (the serial HDF5 library is not thread-safe).
 */
#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"
#include "xpcs_common.h"
#include "xpcs_filters.h"
#include "xpcs_file.h"

#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Lists (q, phi, bins) longer than this are rejected as implausible. */
#define XPCS_LIST_MAX   ((size_t)1 << 24)
/* Matrices (links in the c2 group) above this count are rejected. */
#define XPCS_KEYS_MAX   ((size_t)1 << 20)
/* Chunk cache of the open matrix dataset. */
#define XPCS_CACHE_BYTES ((size_t)16 << 20)
#define XPCS_CACHE_SLOTS 12421



/* ------------------------------------------------------------------------ */
/* HDF5 lock and error silencing                                             */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t xpcs_h5_mutex = PTHREAD_MUTEX_INITIALIZER;

void nlsq__xpcs_h5_lock(void) { pthread_mutex_lock(&xpcs_h5_mutex); }
void nlsq__xpcs_h5_unlock(void) { pthread_mutex_unlock(&xpcs_h5_mutex); }

typedef struct quiet {
    H5E_auto2_t func;
    void *data;
    int saved;
} quiet;

static void quiet_begin(quiet *s)
{
    nlsq__xpcs_h5_lock();
    s->func = NULL;
    s->data = NULL;
    s->saved = H5Eget_auto2(H5E_DEFAULT, &s->func, &s->data) >= 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_end(quiet *s)
{
    if (s->saved) H5Eset_auto2(H5E_DEFAULT, s->func, s->data);
    nlsq__xpcs_h5_unlock();
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id >= 0) fn(*id);
    *id = -1;
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static char *dup_str(const char *s)
{
    size_t len = strlen(s);
    char *d = malloc(len + 1);
    if (d) memcpy(d, s, len + 1);
    return d;
}

/* 1 if every component of the '/'-separated path exists as a link. */
int nlsq__xpcs_path_exists(hid_t loc, const char *path)
{
    char buf[512];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            htri_t e = H5Lexists(loc, buf, H5P_DEFAULT);
            buf[i] = c;
            if (e <= 0) return 0;
        }
    }
    return 1;
}

/* Natural order: digit runs compare as numbers ("c2_9" < "c2_10"). */
static int natural_cmp(const char *a, const char *b)
{
    const char *a0 = a, *b0 = b;
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t la = 0, lb = 0;
            while (a[la] >= '0' && a[la] <= '9') la++;
            while (b[lb] >= '0' && b[lb] <= '9') lb++;
            if (la != lb) return la < lb ? -1 : 1;
            int c = memcmp(a, b, la);
            if (c) return c;
            a += la;
            b += lb;
        } else {
            if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++;
            b++;
        }
    }
    if (*a || *b) return *a ? 1 : -1;
    return strcmp(a0, b0);
}

static int natural_cmp_qsort(const void *x, const void *y)
{
    return natural_cmp(*(char *const *)x, *(char *const *)y);
}

void nlsq__xpcs_free_names(char **names, size_t n)
{
    if (!names) return;
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Total element count of a dataspace (0 for a null space), with overflow
 * detection: returns -1 on overflow or error. */
static int space_count(hid_t space, int *rank_out, hsize_t *dims, size_t *count)
{
    H5S_class_t cls = H5Sget_simple_extent_type(space);
    if (cls == H5S_NO_CLASS) return -1;
    if (cls == H5S_NULL) {
        *rank_out = 0;
        *count = 0;
        return 0;
    }
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0 || rank > H5S_MAX_RANK) return -1;
    if (H5Sget_simple_extent_dims(space, dims, NULL) < 0) return -1;
    size_t c = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] > (hsize_t)SIZE_MAX) return -1;
        size_t d = (size_t)dims[i];
        if (d != 0 && c > SIZE_MAX / d) return -1;
        c *= d;
    }
    *rank_out = rank;
    *count = c;
    return 0;
}

/* Open a dataset by path, telling a dangling link or a group from a dataset. */
int nlsq__xpcs_open_dataset(nlsq_xpcs_file *f, const char *dpath, hid_t *out, char *err, size_t es)
{
    *out = -1;
    hid_t o = H5Oopen(f->fid, dpath, H5P_DEFAULT);
    if (o < 0) {
        xpcs__err(err, es, "%s: '%s' cannot be opened (broken or external link?)", f->path,
                  dpath);
        return NLSQ_XPCS_EFORMAT;
    }
    H5I_type_t type = H5Iget_type(o);
    H5Oclose(o);
    if (type != H5I_DATASET) {
        xpcs__err(err, es, "%s: '%s' is a %s, not a dataset", f->path, dpath,
                  type == H5I_GROUP ? "group" : type == H5I_DATATYPE ? "named datatype" : "non-dataset object");
        return NLSQ_XPCS_EFORMAT;
    }
    *out = H5Dopen2(f->fid, dpath, H5P_DEFAULT);
    if (*out < 0) {
        xpcs__err(err, es, "%s: dataset '%s' cannot be opened", f->path, dpath);
        return NLSQ_XPCS_EFORMAT;
    }
    return 0;
}

/* Open dataset dpath (*d) and its type (*t), and require a numeric one: 0,
 * or < 0 with the reason in err; the caller closes *d and *t either way. */
static int open_numeric(nlsq_xpcs_file *f, const char *dpath, hid_t *d, hid_t *t, char *err,
                        size_t es)
{
    int rc = nlsq__xpcs_open_dataset(f, dpath, d, err, es);
    if (rc < 0) return rc;
    *t = H5Dget_type(*d);
    H5T_class_t cls = *t >= 0 ? H5Tget_class(*t) : H5T_NO_CLASS;
    if (cls == H5T_INTEGER || cls == H5T_FLOAT) return 0;
    xpcs__err(err, es, "%s: dataset '%s' is not numeric", f->path, dpath);
    return NLSQ_XPCS_EFORMAT;
}

/* Read a small numeric list (any rank, flattened) as doubles. */
int nlsq__xpcs_read_list(nlsq_xpcs_file *f, const char *dpath, double **out, size_t *count,
                     int require_finite, char *err, size_t es)
{
    hid_t d = -1, t = -1, s = -1;
    int rc = 0, rank = 0;
    hsize_t dims[H5S_MAX_RANK];
    size_t c = 0;
    double *buf = NULL;

    *out = NULL;
    *count = 0;
    if (!nlsq__xpcs_path_exists(f->fid, dpath)) {
        xpcs__err(err, es, "%s: missing dataset '%s'", f->path, dpath);
        return NLSQ_XPCS_EFORMAT;
    }
    if ((rc = open_numeric(f, dpath, &d, &t, err, es)) < 0) goto done;
    s = H5Dget_space(d);
    if (s < 0 || space_count(s, &rank, dims, &c) < 0 || c > XPCS_LIST_MAX) {
        xpcs__err(err, es, "%s: dataset '%s' has an invalid or implausibly large shape",
                  f->path, dpath);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    if (c == 0) {
        xpcs__err(err, es, "%s: dataset '%s' is empty", f->path, dpath);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    if ((rc = nlsq__xpcs_filter_check(d, f->path, dpath, err, es)) < 0) goto done;
    buf = malloc(c * sizeof *buf);
    if (!buf) {
        xpcs__err(err, es, "%s: out of memory reading '%s'", f->path, dpath);
        rc = NLSQ_ENOMEM;
        goto done;
    }
    if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        xpcs__err(err, es, "%s: cannot read dataset '%s' (file damaged?)", f->path, dpath);
        rc = NLSQ_XPCS_EFILE;
        goto done;
    }
    if (require_finite) {
        for (size_t i = 0; i < c; i++) {
            if (!isfinite(buf[i])) {
                xpcs__err(err, es, "%s: dataset '%s' holds a non-finite value at index %zu",
                          f->path, dpath, i);
                rc = NLSQ_XPCS_EFORMAT;
                goto done;
            }
        }
    }
    *out = buf;
    *count = c;
    buf = NULL;
done:
    free(buf);
    close_id(&s, H5Sclose);
    close_id(&t, H5Tclose);
    close_id(&d, H5Dclose);
    return rc;
}

/* Link names of a group, natural order; only "c2_*" names when there are
 * any, else every link. */
int nlsq__xpcs_list_keys(nlsq_xpcs_file *f, const char *gpath, char ***names_out, size_t *n_out,
                     char *err, size_t es)
{
    hid_t g = -1;
    H5G_info_t info;
    char **names = NULL;
    size_t n = 0, n_c2 = 0;
    int rc = 0;

    *names_out = NULL;
    *n_out = 0;
    g = H5Gopen2(f->fid, gpath, H5P_DEFAULT);
    if (g < 0) {
        xpcs__err(err, es, "%s: '%s' is not a group", f->path, gpath);
        return NLSQ_XPCS_EFORMAT;
    }
    if (H5Gget_info(g, &info) < 0) {
        xpcs__err(err, es, "%s: cannot list group '%s'", f->path, gpath);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    if (info.nlinks == 0) {
        xpcs__err(err, es, "%s: group '%s' is empty (no matrices)", f->path, gpath);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    if (info.nlinks > XPCS_KEYS_MAX) {
        xpcs__err(err, es, "%s: group '%s' holds %llu links: too many", f->path, gpath,
                  (unsigned long long)info.nlinks);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    names = calloc((size_t)info.nlinks, sizeof *names);
    if (!names) {
        rc = NLSQ_ENOMEM;
        xpcs__err(err, es, "%s: out of memory", f->path);
        goto done;
    }
    for (hsize_t i = 0; i < info.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0,
                                         H5P_DEFAULT);
        if (len <= 0 || len > 4096) {
            xpcs__err(err, es, "%s: cannot list group '%s'", f->path, gpath);
            rc = NLSQ_XPCS_EFORMAT;
            goto done;
        }
        char *nm = malloc((size_t)len + 1);
        if (!nm) {
            rc = NLSQ_ENOMEM;
            xpcs__err(err, es, "%s: out of memory", f->path);
            goto done;
        }
        names[n++] = nm;
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nm, (size_t)len + 1,
                               H5P_DEFAULT) < 0) {
            xpcs__err(err, es, "%s: cannot list group '%s'", f->path, gpath);
            rc = NLSQ_XPCS_EFORMAT;
            goto done;
        }
        if (strncmp(nm, "c2_", 3) == 0) n_c2++;
    }
    if (n_c2 > 0 && n_c2 < n) { /* keep the c2_* names only */
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            if (strncmp(names[i], "c2_", 3) == 0) names[w++] = names[i];
            else free(names[i]);
        }
        n = w;
    }
    qsort(names, n, sizeof *names, natural_cmp_qsort);
    *names_out = names;
    *n_out = n;
    names = NULL;
done:
    if (names) nlsq__xpcs_free_names(names, n);
    close_id(&g, H5Gclose);
    return rc;
}

/* Check one matrix dataset: numeric, rank 2, square, size representable.
 * Returns its N and whether it is float32. */
static int check_matrix(nlsq_xpcs_file *f, const char *dpath, size_t *n_out, int *f32,
                        char *err, size_t es)
{
    hid_t d = -1, t = -1, s = -1;
    int rc = 0, rank = 0;
    hsize_t dims[H5S_MAX_RANK];

    if ((rc = open_numeric(f, dpath, &d, &t, err, es)) < 0) goto done;
    *f32 = H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) <= 4;
    if ((rc = nlsq__xpcs_filter_check(d, f->path, dpath, err, es)) < 0) goto done;
    s = H5Dget_space(d);
    if (s < 0 || H5Sget_simple_extent_type(s) != H5S_SIMPLE) {
        xpcs__err(err, es, "%s: dataset '%s' has no 2-D shape", f->path, dpath);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    rank = H5Sget_simple_extent_ndims(s);
    if (rank != 2) {
        xpcs__err(err, es, "%s: dataset '%s' has rank %d, expected a 2-D N x N matrix",
                  f->path, dpath, rank);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    if (H5Sget_simple_extent_dims(s, dims, NULL) < 0) {
        xpcs__err(err, es, "%s: cannot read the shape of dataset '%s'", f->path, dpath);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    if (dims[0] != dims[1]) {
        xpcs__err(err, es, "%s: dataset '%s' is %llu x %llu, expected square", f->path, dpath,
                  (unsigned long long)dims[0], (unsigned long long)dims[1]);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    if (dims[0] == 0) {
        xpcs__err(err, es, "%s: dataset '%s' is empty (0 x 0)", f->path, dpath);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    if (dims[0] > (hsize_t)SIZE_MAX || (size_t)dims[0] > SIZE_MAX / sizeof(double) / (size_t)dims[0]) {
        xpcs__err(err, es, "%s: dataset '%s' is %llu x %llu: too large (size overflows)",
                  f->path, dpath, (unsigned long long)dims[0], (unsigned long long)dims[1]);
        rc = NLSQ_XPCS_EFORMAT;
        goto done;
    }
    *n_out = (size_t)dims[0];
    rc = nlsq__xpcs_check_storage(f, d, dpath, err, es);
done:
    close_id(&s, H5Sclose);
    close_id(&t, H5Tclose);
    close_id(&d, H5Dclose);
    return rc;
}

/* Dataset paths "group/key" from key names (consumes keys on success). */
int nlsq__xpcs_make_paths(nlsq_xpcs_file *f, const char *gpath, char **keys, size_t n,
                      char *err, size_t es)
{
    f->name = calloc(n, sizeof *f->name);
    if (!f->name) goto oom;
    f->n_mat = n;   /* so that file_free frees the names made so far on failure */
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(gpath) + 1 + strlen(keys[i]) + 1;
        f->name[i] = malloc(len);
        if (!f->name[i]) goto oom;
        snprintf(f->name[i], len, "%s/%s", gpath, keys[i]);
    }
    return 0;
oom:
    xpcs__err(err, es, "%s: out of memory", f->path);
    return NLSQ_ENOMEM;
}

static void file_free(nlsq_xpcs_file *f)
{
    if (!f) return;
    close_id(&f->dset, H5Dclose);
    close_id(&f->fid, H5Fclose);
    nlsq__xpcs_free_names(f->name, f->n_mat);
    free(f->q);
    free(f->phi);
    free(f->tri);
    free(f->path);
    free(f);
}

/* ------------------------------------------------------------------------ */
/* Public: open / close / queries                                            */
/* ------------------------------------------------------------------------ */

/* A readable, non-empty regular file at path?  0 or NLSQ_XPCS_EFILE (err
 * says why), before HDF5 sees it. */
static int probe_path(const char *path, char *err, size_t es)
{
    struct stat st;
    const char *why = NULL;
    if (stat(path, &st) != 0) why = strerror(errno);
    else if (S_ISDIR(st.st_mode)) why = "is a directory";
    else if (!S_ISREG(st.st_mode)) why = "not a regular file";
    else if (st.st_size == 0) why = "empty file (not HDF5)";
    if (!why) {
        FILE *probe = fopen(path, "rb");
        if (!probe) why = strerror(errno);
        else fclose(probe);
    }
    if (!why) return 0;
    xpcs__err(err, es, "%s: cannot open: %s", path, why);
    return NLSQ_XPCS_EFILE;
}

/* The layout of the open file and its matrix list. */
static int discover(nlsq_xpcs_file *f, char *err, size_t es)
{
    if (nlsq__xpcs_path_exists(f->fid, XPCS_APSU_GROUP)) {
        f->layout = NLSQ_XPCS_LAYOUT_APS_U;
        return nlsq__xpcs_discover_apsu(f, err, es);
    }
    if (nlsq__xpcs_path_exists(f->fid, XPCS_OLD_GROUP)) {
        f->layout = NLSQ_XPCS_LAYOUT_APS_OLD;
        return nlsq__xpcs_discover_old(f, err, es);
    }
    xpcs__err(err, es, "%s: layout not recognised: no '%s' (APS-U) and no '%s' (APS old)",
              f->path, XPCS_APSU_GROUP, XPCS_OLD_GROUP);
    return NLSQ_XPCS_EFORMAT;
}

/* Every matrix checked (check_matrix), one size N for all; f->n, f->f32. */
static int check_matrices(nlsq_xpcs_file *f, char *err, size_t es)
{
    for (size_t k = 0; k < f->n_mat; k++) {
        size_t n = 0;
        int f32 = 0;
        int rc = check_matrix(f, f->name[k], &n, &f32, err, es);
        if (rc < 0) return rc;
        if (k == 0) {
            f->n = n;
            f->f32 = f32;
        } else if (n != f->n) {
            xpcs__err(err, es,
                      "%s: dataset '%s' is %zu x %zu but '%s' is %zu x %zu (all matrices must "
                      "have the same size)",
                      f->path, f->name[k], n, n, f->name[0], f->n, f->n);
            return NLSQ_XPCS_EFORMAT;
        } else {
            f->f32 = f->f32 && f32;
        }
    }
    return 0;
}

int nlsq_xpcs_open(const char *path, nlsq_xpcs_file **out, char *err, size_t es)
{
    if (err && es) err[0] = '\0';
    if (out) *out = NULL;
    if (!path || !out) {
        xpcs__err(err, es, "nlsq_xpcs_open: NULL %s", path ? "output pointer" : "path");
        return NLSQ_EINVAL;
    }
    int rc = probe_path(path, err, es);
    if (rc != 0) return rc;
    nlsq_xpcs_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = dup_str(path))) {
        free(f);
        xpcs__err(err, es, "%s: out of memory", path);
        return NLSQ_ENOMEM;
    }
    f->fid = -1;
    f->dset = -1;

    quiet qs;
    quiet_begin(&qs);
    nlsq__xpcs_filters_register();   /* on failure the filter check names the filter */
    f->fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f->fid < 0) {
        nlsq__xpcs_open_failed(path, err, es);   /* locked, truncated, damaged, not HDF5 */
        rc = NLSQ_XPCS_EFILE;
    }
    if (rc == 0) rc = discover(f, err, es);
    if (rc == 0) {
        nlsq__xpcs_read_dt(f);
        f->tri = calloc(f->n_mat, 1);   /* XPCS_TRI_UNKNOWN until first read */
        if (!f->tri) {
            xpcs__err(err, es, "%s: out of memory", path);
            rc = NLSQ_ENOMEM;
        }
    }
    if (rc == 0) rc = check_matrices(f, err, es);
    if (rc < 0) {
        file_free(f);
        quiet_end(&qs);
        return rc;
    }
    quiet_end(&qs);
    *out = f;
    return 0;
}

void nlsq_xpcs_close(nlsq_xpcs_file *f)
{
    quiet qs;
    if (!f) return;
    quiet_begin(&qs);
    file_free(f);
    quiet_end(&qs);
}

int nlsq_xpcs_layout_of(const nlsq_xpcs_file *f)
{
    return f ? f->layout : NLSQ_XPCS_LAYOUT_UNKNOWN;
}

size_t nlsq_xpcs_n_matrices(const nlsq_xpcs_file *f) { return f ? f->n_mat : 0; }

int nlsq_xpcs_matrix_info(const nlsq_xpcs_file *f, size_t k, double *q, double *phi)
{
    if (!f) return NLSQ_EINVAL;
    if (k >= f->n_mat) return NLSQ_XPCS_ERANGE;
    if (q) *q = f->q[k];
    if (phi) *phi = f->phi[k];
    return 0;
}

size_t nlsq_xpcs_n_frames(const nlsq_xpcs_file *f) { return f ? f->n : 0; }

int nlsq_xpcs_is_float32(const nlsq_xpcs_file *f) { return f ? f->f32 : 0; }

/* ------------------------------------------------------------------------ */
/* Public: selection                                                         */
/* ------------------------------------------------------------------------ */

static int same_q(double a, double b)
{
    return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b));
}

/* Distinct q values in first-seen order, as "a, b, c" into buf. */
static void format_q_list(const nlsq_xpcs_file *f, char *buf, size_t size)
{
    size_t used = 0, shown = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < f->n_mat; k++) {
        int seen = 0;
        for (size_t j = 0; j < k && !seen; j++) seen = same_q(f->q[j], f->q[k]);
        if (seen) continue;
        if (shown == 16) {
            if (used + 5 < size) {
                memcpy(buf + used, ", ...", 6);
                used += 5;
            }
            break;
        }
        int w = snprintf(buf + used, size - used, "%s%g", shown ? ", " : "", f->q[k]);
        if (w < 0 || (size_t)w >= size - used) break;
        used += (size_t)w;
        shown++;
    }
}

typedef struct phi_idx {
    double phi;
    size_t k;
} phi_idx;

static int phi_idx_cmp(const void *x, const void *y)
{
    const phi_idx *a = x, *b = y;
    if (a->phi != b->phi) return a->phi < b->phi ? -1 : 1;
    return a->k < b->k ? -1 : (a->k > b->k);
}

int nlsq_xpcs_select(const nlsq_xpcs_file *f, double q_request, size_t first_frame,
                     size_t last_frame, nlsq_xpcs_selection *sel, char *err, size_t es)
{
    if (err && es) err[0] = '\0';
    if (sel) memset(sel, 0, sizeof *sel);
    if (!f || !sel) {
        xpcs__err(err, es, "nlsq_xpcs_select: NULL %s", f ? "selection" : "file");
        return NLSQ_EINVAL;
    }
    if (f->n_mat == 0 || f->n == 0) {
        xpcs__err(err, es, "%s: no matrices", f->path);
        return NLSQ_XPCS_EFORMAT;
    }
    if (isinf(q_request)) {
        xpcs__err(err, es, "%s: requested q is infinite", f->path);
        return NLSQ_EINVAL;
    }
    /* the q nearest the request */
    double qsel = f->q[0];
    if (isnan(q_request)) {
        for (size_t k = 1; k < f->n_mat; k++) {
            if (!same_q(f->q[k], qsel)) {
                char list[512];
                format_q_list(f, list, sizeof list);
                xpcs__err(err, es, "%s: the file holds several q (%s); choose one", f->path,
                          list);
                return NLSQ_XPCS_ERANGE;
            }
        }
    } else {
        double best = fabs(f->q[0] - q_request);
        for (size_t k = 1; k < f->n_mat; k++) {
            double dist = fabs(f->q[k] - q_request);
            if (dist < best) {
                best = dist;
                qsel = f->q[k];
            }
        }
    }
    /* frames */
    if (last_frame == SIZE_MAX) last_frame = f->n - 1;
    if (first_frame > last_frame || last_frame >= f->n) {
        xpcs__err(err, es, "%s: frame window [%zu, %zu] is not inside the %zu frames [0, %zu]",
                  f->path, first_frame, last_frame, f->n, f->n - 1);
        return NLSQ_XPCS_ERANGE;
    }
    /* matrices of that q, phi ascending */
    size_t na = 0;
    for (size_t k = 0; k < f->n_mat; k++) na += same_q(f->q[k], qsel);
    phi_idx *pi = malloc(na * sizeof *pi);
    sel->matrix = malloc(na * sizeof *sel->matrix);
    sel->phi = malloc(na * sizeof *sel->phi);
    if (!pi || !sel->matrix || !sel->phi) {
        free(pi);
        nlsq_xpcs_selection_free(sel);
        xpcs__err(err, es, "%s: out of memory", f->path);
        return NLSQ_ENOMEM;
    }
    size_t w = 0;
    for (size_t k = 0; k < f->n_mat; k++) {
        if (same_q(f->q[k], qsel)) {
            pi[w].phi = f->phi[k];
            pi[w].k = k;
            w++;
        }
    }
    qsort(pi, na, sizeof *pi, phi_idx_cmp);
    for (size_t a = 0; a < na; a++) {
        sel->matrix[a] = pi[a].k;
        sel->phi[a] = pi[a].phi;
    }
    free(pi);
    sel->q = qsel;
    sel->n_angles = na;
    sel->first_frame = first_frame;
    sel->last_frame = last_frame;
    return 0;
}

void nlsq_xpcs_selection_free(nlsq_xpcs_selection *sel)
{
    if (!sel) return;
    free(sel->matrix);
    free(sel->phi);
    sel->matrix = NULL;
    sel->phi = NULL;
    sel->n_angles = 0;
}

/* ------------------------------------------------------------------------ */
/* Public: row blocks                                                        */
/* ------------------------------------------------------------------------ */

static hid_t get_dataset(nlsq_xpcs_file *f, size_t k)
{
    if (f->dset >= 0 && f->dset_k == k) return f->dset;
    close_id(&f->dset, H5Dclose);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl < 0) return -1;
    H5Pset_chunk_cache(dapl, XPCS_CACHE_SLOTS, XPCS_CACHE_BYTES, H5D_CHUNK_CACHE_W0_DEFAULT);
    f->dset = H5Dopen2(f->fid, f->name[k], dapl);
    H5Pclose(dapl);
    f->dset_k = k;
    return f->dset;
}

/* Is the file on disk shorter than the end of the HDF5 address space?  (The
 * open file's descriptor when the driver gives one, else the path.) */
static int file_truncated(const nlsq_xpcs_file *f)
{
    haddr_t eoa = 0;
    if (H5Fget_eoa(f->fid, &eoa) < 0) return 0;
    struct stat st;
    void *handle = NULL;
    int have = 0;
    if (H5Fget_vfd_handle(f->fid, H5P_DEFAULT, &handle) >= 0 && handle)
        have = fstat(*(int *)handle, &st) == 0;
    if (!have) have = stat(f->path, &st) == 0;
    return have && (haddr_t)st.st_size < eoa;
}

/* Read stored block rows [r0, r0 + nr), columns [c0, c0 + nc) of d into
 * memory of shape (mrows x mcols) at (mr0, mc0), as doubles.  -1 on failure. */
static int read_block_as(hid_t mt, hid_t d, hid_t fs, size_t r0, size_t c0, size_t nr,
                         size_t nc, void *mem, size_t mrows, size_t mcols, size_t mr0,
                         size_t mc0);

static int read_block(hid_t d, hid_t fs, size_t r0, size_t c0, size_t nr, size_t nc, double *mem,
                      size_t mrows, size_t mcols, size_t mr0, size_t mc0)
{
    return read_block_as(H5T_NATIVE_DOUBLE, d, fs, r0, c0, nr, nc, mem, mrows, mcols, mr0, mc0);
}

/* read_block with memory type mt (doubles or floats) */
static int read_block_as(hid_t mt, hid_t d, hid_t fs, size_t r0, size_t c0, size_t nr,
                         size_t nc, void *mem, size_t mrows, size_t mcols, size_t mr0,
                         size_t mc0)
{
    hsize_t fstart[2] = {r0, c0}, count[2] = {nr, nc};
    hsize_t mdims[2] = {mrows, mcols}, mstart[2] = {mr0, mc0};
    hid_t ms = H5Screate_simple(2, mdims, NULL);
    int ok = ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, fstart, NULL, count, NULL) >= 0 &&
             H5Sselect_hyperslab(ms, H5S_SELECT_SET, mstart, NULL, count, NULL) >= 0 &&
             H5Dread(d, mt, ms, fs, H5P_DEFAULT, mem) >= 0;
    if (ms >= 0) H5Sclose(ms);
    return ok ? 0 : -1;
}

/* Rows [row0, row0 + nrows) of the window [F, F + n) of a matrix stored in
 * its upper triangle h (full[r][c] = h[min][max]):
 *   upper part  stored rows [R0, R0+nrows), columns [R0, F+n) -> out columns >= row0
 *   lower part  stored rows [F, R0+nrows-1), columns [R0, R0+nrows), transposed
 *               into out columns < each row
 * With lower storage L (full[r][c] = L[max][min]) the roles swap:
 *   lower part  stored rows [R0, R0+nrows), columns [F, R0+nrows-1) -> out directly
 *   upper part  stored rows [R0, F+n), columns [R0, R0+nrows), transposed
 * tmp holds at least n * nrows values. */
static int read_window_rows(hid_t d, hid_t fs, int tri, size_t F, size_t n, size_t row0,
                            size_t nrows, double *out, double *tmp)
{
    const size_t R0 = F + row0, nabove = row0 + nrows - 1, nright = n - row0;
    if (tri == XPCS_TRI_LOWER) {
        if (nabove > 0 && read_block(d, fs, R0, F, nrows, nabove, out, nrows, n, 0, 0) < 0)
            return -1;
        if (read_block(d, fs, R0, R0, nright, nrows, tmp, nright, nrows, 0, 0) < 0) return -1;
        for (size_t cc = 0; cc < nright; cc++)   /* full[R0+r][R0+cc] = L[R0+cc][R0+r], cc >= r */
            for (size_t r = 0; r <= cc && r < nrows; r++) out[r * n + row0 + cc] = tmp[cc * nrows + r];
        return 0;
    }
    if (read_block(d, fs, R0, R0, nrows, nright, out, nrows, n, 0, row0) < 0) return -1;
    if (nabove > 0) {
        if (read_block(d, fs, F, R0, nabove, nrows, tmp, nabove, nrows, 0, 0) < 0) return -1;
        for (size_t c = 0; c < nabove; c++) {
            const double *src = tmp + c * nrows;
            size_t rstart = c >= row0 ? c - row0 + 1 : 0;   /* rows with c < row0 + r */
            for (size_t r = rstart; r < nrows; r++) out[r * n + c] = src[r];
        }
    }
    return 0;
}

/* The upper part of rows [row0, row0 + nrows) of the window: row r's
 * columns [row0, n) at out[r * (n - row0) + (c - row0)] (the entries left of
 * each row's diagonal come from the other stored triangle: not data), as
 * floats (f32) or doubles.  One read of the stored rows (upper storage) or
 * columns (lower storage) of the block: row blocks that follow the file's
 * chunk rows read each chunk once.  tmp holds at least n * nrows doubles. */
static int read_window_upper(hid_t d, hid_t fs, int tri, size_t F, size_t n, size_t row0,
                             size_t nrows, int f32, void *out, double *tmp)
{
    const size_t R0 = F + row0, nright = n - row0, es = f32 ? sizeof(float) : sizeof(double);
    const hid_t mt = f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    if (tri != XPCS_TRI_LOWER)
        return read_block_as(mt, d, fs, R0, R0, nrows, nright, out, nrows, nright, 0, 0);
    if (read_block_as(mt, d, fs, R0, R0, nright, nrows, tmp, nright, nrows, 0, 0) < 0) return -1;
    for (size_t r = 0; r < nrows; r++)   /* full[R0+r][R0+cc] = L[R0+cc][R0+r] */
        for (size_t cc = 0; cc < nright; cc++)
            memcpy((char *)out + (r * nright + cc) * es, (const char *)tmp + (cc * nrows + r) * es,
                   es);
    return 0;
}

/* upper_only: 0 full rows (doubles), 1 upper rows as doubles, 2 as floats */
static int read_rows_impl(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel, size_t a,
                          size_t row0, size_t nrows, int upper_only, void *out, char *err,
                          size_t es);

int nlsq_xpcs_read_rows(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel, size_t a,
                        size_t row0, size_t nrows, double *out, char *err, size_t es)
{
    return read_rows_impl(f, sel, a, row0, nrows, 0, out, err, es);
}

int nlsq__xpcs_read_upper_rows(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel, size_t a,
                          size_t row0, size_t nrows, int f32, void *out, char *err, size_t es)
{
    return read_rows_impl(f, sel, a, row0, nrows, f32 ? 2 : 1, out, err, es);
}

/* The request of read_rows_impl against the file and the selection: 0 with
 * the window's frame count in *n, or the error with one line in err. */
static int check_rows_request(const nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel, size_t a,
                              size_t row0, size_t nrows, const void *out, size_t *n,
                              char *err, size_t es)
{
    if (!f || !sel || (!out && nrows > 0)) {
        xpcs__err(err, es, "nlsq_xpcs_read_rows: NULL argument");
        return NLSQ_EINVAL;
    }
    if (a >= sel->n_angles || !sel->matrix || sel->matrix[a] >= f->n_mat) {
        xpcs__err(err, es, "%s: angle %zu is not in the selection (%zu angles)", f->path, a,
                  sel->n_angles);
        return NLSQ_XPCS_ERANGE;
    }
    if (sel->first_frame > sel->last_frame || sel->last_frame >= f->n) {
        xpcs__err(err, es, "%s: selection frame window [%zu, %zu] is not inside [0, %zu]",
                  f->path, sel->first_frame, sel->last_frame, f->n - 1);
        return NLSQ_XPCS_ERANGE;
    }
    *n = sel->last_frame - sel->first_frame + 1;
    if (row0 > *n || nrows > *n - row0) {
        xpcs__err(err, es, "%s: rows [%zu, %zu + %zu) are not inside the %zu-frame window",
                  f->path, row0, row0, nrows, *n);
        return NLSQ_XPCS_ERANGE;
    }
    return 0;
}

static int read_rows_impl(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel, size_t a,
                          size_t row0, size_t nrows, int upper_only, void *out, char *err,
                          size_t es)
{
    if (err && es) err[0] = '\0';
    size_t n;
    int rc = check_rows_request(f, sel, a, row0, nrows, out, &n, err, es);
    if (rc != 0 || nrows == 0) return rc;

    const size_t k = sel->matrix[a];
    const size_t R0 = sel->first_frame + row0;
    hid_t fs = -1;
    quiet qs;

    /* scratch: at most n x nrows (n is N^2-safe) */
    double *tmp = malloc(n * nrows * sizeof *tmp);
    if (!tmp) {
        xpcs__err(err, es, "%s: out of memory reading '%s'", f->path, f->name[k]);
        return NLSQ_ENOMEM;
    }

    quiet_begin(&qs);
    hid_t d = get_dataset(f, k);
    if (d < 0) {
        xpcs__err(err, es, "%s: cannot open dataset '%s'", f->path, f->name[k]);
        rc = NLSQ_XPCS_EFILE;
        goto done;
    }
    if (file_truncated(f)) {
        /* HDF5 would return fill values (zeros) past the end of a file that
         * shrank after it was opened: that is not data */
        xpcs__err(err, es, "%s: the file is shorter than its HDF5 metadata says "
                  "(truncated or changed while open)", f->path);
        rc = NLSQ_XPCS_EFILE;
        goto done;
    }
    if (f->tri[k] == XPCS_TRI_UNKNOWN) {
        int t = nlsq__xpcs_probe_triangle(d, f->n);
        if (t == NLSQ_ENOMEM) {
            xpcs__err(err, es, "%s: out of memory reading '%s'", f->path, f->name[k]);
            rc = NLSQ_ENOMEM;
            goto done;
        }
        if (t < 0) goto read_fail;
        f->tri[k] = (unsigned char)t;
    }
    fs = H5Dget_space(d);
    if (fs < 0 || (upper_only ? read_window_upper(d, fs, f->tri[k], sel->first_frame, n, row0,
                                                  nrows, upper_only == 2, out, tmp)
                              : read_window_rows(d, fs, f->tri[k], sel->first_frame, n, row0,
                                                 nrows, out, tmp)) < 0)
        goto read_fail;
    goto done;

read_fail:
    xpcs__err(err, es, "%s: cannot read rows %zu..%zu of dataset '%s' (file damaged?)",
              f->path, R0, R0 + nrows - 1, f->name[k]);
    rc = NLSQ_XPCS_EFILE;
done:
    close_id(&fs, H5Sclose);
    quiet_end(&qs);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Public: stored dt; matrices that hold data                                */
/* ------------------------------------------------------------------------ */

int nlsq_xpcs_file_dt(const nlsq_xpcs_file *f, double *dt, char *source, size_t size)
{
    if (source && size) source[0] = '\0';
    if (!f || !dt) return NLSQ_EINVAL;
    *dt = f->dt;
    if (source && size) snprintf(source, size, "%s", f->dt_source);
    return isnan(f->dt) ? NLSQ_XPCS_EFORMAT : 0;
}

/* Does angle a hold a finite non-zero entry above the diagonal of the window?
 * 1 yes, 0 no, < 0 error (message in err). */
static int angle_has_data(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel, size_t a,
                          double *buf, size_t block, char *err, size_t es)
{
    const size_t n = sel->last_frame - sel->first_frame + 1;
    for (size_t r0 = 0; r0 + 1 < n; r0 += block) {
        size_t nr = n - r0 < block ? n - r0 : block;
        int rc = nlsq_xpcs_read_rows(f, sel, a, r0, nr, buf, err, es);
        if (rc < 0) return rc;
        for (size_t r = 0; r < nr; r++)
            for (size_t c = r0 + r + 1; c < n; c++) {
                double v = buf[r * n + c];
                if (isfinite(v) && v != 0.0) return 1;
            }
    }
    return 0;
}

int nlsq_xpcs_check_data(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel, char *err,
                         size_t es)
{
    if (err && es) err[0] = '\0';
    if (!f || !sel || (sel->n_angles && !sel->matrix)) {
        xpcs__err(err, es, "nlsq_xpcs_check_data: NULL argument");
        return NLSQ_EINVAL;
    }
    if (sel->first_frame > sel->last_frame || sel->last_frame >= f->n) {
        xpcs__err(err, es, "%s: selection frame window [%zu, %zu] is not inside [0, %zu]",
                  f->path, sel->first_frame, sel->last_frame, f->n ? f->n - 1 : 0);
        return NLSQ_XPCS_ERANGE;
    }
    const size_t n = sel->last_frame - sel->first_frame + 1, block = 64;
    double *buf = malloc(block * n * sizeof *buf);
    if (!buf) {
        xpcs__err(err, es, "%s: out of memory", f->path);
        return NLSQ_ENOMEM;
    }
    int rc = 0;
    for (size_t a = 0; a < sel->n_angles && rc == 0; a++) {
        int has = angle_has_data(f, sel, a, buf, block, err, es);
        if (has < 0) rc = has;
        else if (has == 0 && n > 1) {
            xpcs__err(err, es, "%s: dataset '%s' holds no finite non-zero value above the "
                      "diagonal in frames %zu..%zu (all NaN or zero: not data)", f->path,
                      f->name[sel->matrix[a]], sel->first_frame, sel->last_frame);
            rc = NLSQ_XPCS_EFORMAT;
        }
    }
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The truth of synthetic files                                              */
/* ------------------------------------------------------------------------ */

int nlsq_xpcs_read_truth(nlsq_xpcs_file *f, double *phys, double *contrast, double *offset,
                         size_t n_angles, char *err, size_t es)
{
    if (err && es) err[0] = '\0';
    if (!f || !phys) {
        xpcs__err(err, es, "nlsq_xpcs_read_truth: NULL argument");
        return NLSQ_EINVAL;
    }
    static const char *names[4] = {"nlsq_synth/params", "nlsq_synth/contrast",
                                   "nlsq_synth/offset", NULL};
    double *dst[3] = {phys, contrast, offset};
    size_t want[3] = {7, n_angles, n_angles};
    int rc = 0;
    quiet q;
    quiet_begin(&q);   /* takes the HDF5 lock */
    if (!nlsq__xpcs_path_exists(f->fid, "nlsq_synth")) {
        xpcs__err(err, es, "%s: no synthetic truth in the file", f->path);
        rc = NLSQ_XPCS_EFORMAT;
    }
    for (int k = 0; rc == 0 && names[k]; k++) {
        if (!dst[k]) continue;
        double *buf = NULL;
        size_t c = 0;
        rc = nlsq__xpcs_read_list(f, names[k], &buf, &c, 1, err, es);
        if (rc == 0 && c != want[k]) {
            xpcs__err(err, es, "%s: '%s' holds %zu values, expected %zu", f->path, names[k], c,
                      want[k]);
            rc = NLSQ_XPCS_EFORMAT;
        }
        if (rc == 0) memcpy(dst[k], buf, c * sizeof *buf);
        free(buf);
    }
    quiet_end(&q);
    return rc;
}
