/*
 * storage.c - storage that is not data, and the triangle a matrix is stored
 * in (part of the reader; see xpcs_file.h).
 *
 * HDF5 answers a read of storage that holds no data with the fill value
 * (zeros) and no error: a dataset never written, a virtual dataset whose
 * source file or dataset is missing, an external raw file that is missing or
 * shorter than the dataset.  Such a matrix would be fitted as zeros, so
 * nlsq__xpcs_check_storage refuses it when the file is opened, naming the dataset.
 *
 * The beamline stores the upper triangle of each c2 matrix (numpy.triu), the
 * lower triangle zero.  A writer that stores the lower triangle instead is
 * told apart by nlsq__xpcs_probe_triangle from two stored rows: with upper
 * storage row 0 holds data off the diagonal and row N-1 does not; with lower
 * storage the opposite.  A fully stored (symmetric) matrix reads as upper.
 * "Data" is a finite non-zero value; a matrix with neither row holding data
 * is taken as upper (nlsq_xpcs_check_data then tells whether it holds any).
 */
#define _POSIX_C_SOURCE 200809L   /* strdup, dirname, off_t */
#include "xpcs_file.h"

#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A path of an external or source file, resolved as HDF5 does by default:
 * absolute as is, else relative to the HDF5 file's folder, else to the
 * working directory.  Returns 1 with *st filled when the file exists. */
static int stat_near(const char *h5path, const char *name, struct stat *st, char *buf,
                     size_t size)
{
    if (name[0] == '/') {
        snprintf(buf, size, "%s", name);
        return stat(buf, st) == 0;
    }
    char *copy = strdup(h5path);
    if (copy) {
        snprintf(buf, size, "%s/%s", dirname(copy), name);
        free(copy);
        if (stat(buf, st) == 0) return 1;
    }
    snprintf(buf, size, "%s", name);
    return stat(buf, st) == 0;
}

/* External raw files: each must exist and hold its segment. */
static int check_external(nlsq_xpcs_file *f, hid_t dcpl, const char *dpath, char *err, size_t es)
{
    int n = H5Pget_external_count(dcpl);
    for (int i = 0; i < n; i++) {
        char name[1024] = "", where[2048];
        off_t offset = 0;
        hsize_t size = 0;
        struct stat st;
        if (H5Pget_external(dcpl, (unsigned)i, sizeof name, name, &offset, &size) < 0) {
            xpcs__err(err, es, "%s: dataset '%s': cannot read its external file list", f->path,
                      dpath);
            return NLSQ_XPCS_EFORMAT;
        }
        if (!stat_near(f->path, name, &st, where, sizeof where)) {
            xpcs__err(err, es, "%s: dataset '%s' is stored in the external file '%s', which is "
                      "missing", f->path, dpath, name);
            return NLSQ_XPCS_EFORMAT;
        }
        if (size != H5F_UNLIMITED && (unsigned long long)st.st_size <
                                         (unsigned long long)offset + (unsigned long long)size) {
            xpcs__err(err, es, "%s: dataset '%s': its external file '%s' has %lld bytes, "
                      "fewer than the %llu it should hold from offset %lld", f->path, dpath,
                      name, (long long)st.st_size, (unsigned long long)size, (long long)offset);
            return NLSQ_XPCS_EFORMAT;
        }
    }
    return 0;
}

/* Does dataset dname exist in file fname (resolved near the HDF5 file; "."
 * is the file itself)? */
static int source_exists(nlsq_xpcs_file *f, const char *fname, const char *dname)
{
    if (strcmp(fname, ".") == 0) return nlsq__xpcs_path_exists(f->fid, dname[0] == '/' ? dname + 1 : dname);
    char where[2048];
    struct stat st;
    if (!stat_near(f->path, fname, &st, where, sizeof where)) return 0;
    hid_t sf = H5Fopen(where, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (sf < 0) return 0;
    int ok = nlsq__xpcs_path_exists(sf, dname[0] == '/' ? dname + 1 : dname);
    H5Fclose(sf);
    return ok;
}

/* Virtual datasets: every mapping's source file and dataset must exist. */
static int check_virtual(nlsq_xpcs_file *f, hid_t dcpl, const char *dpath, char *err, size_t es)
{
    size_t n = 0;
    if (H5Pget_virtual_count(dcpl, &n) < 0) n = 0;
    for (size_t i = 0; i < n; i++) {
        char fname[1024] = "", dname[1024] = "";
        if (H5Pget_virtual_filename(dcpl, i, fname, sizeof fname) < 0 ||
            H5Pget_virtual_dsetname(dcpl, i, dname, sizeof dname) < 0 ||
            !source_exists(f, fname, dname)) {
            xpcs__err(err, es, "%s: dataset '%s' is virtual and its source '%s' in file '%s' "
                      "is missing", f->path, dpath, dname, fname);
            return NLSQ_XPCS_EFORMAT;
        }
    }
    return 0;
}

int nlsq__xpcs_check_storage(nlsq_xpcs_file *f, hid_t d, const char *dpath, char *err, size_t es)
{
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl < 0) return 0;
    H5D_layout_t lay = H5Pget_layout(dcpl);
    int rc = 0;
    if (lay == H5D_VIRTUAL) {
        rc = check_virtual(f, dcpl, dpath, err, es);
    } else if (H5Pget_external_count(dcpl) > 0) {
        rc = check_external(f, dcpl, dpath, err, es);
    } else {
        H5D_space_status_t status;
        if (H5Dget_space_status(d, &status) >= 0 && status == H5D_SPACE_STATUS_NOT_ALLOCATED) {
            xpcs__err(err, es, "%s: dataset '%s' was never written (no storage allocated)",
                      f->path, dpath);
            rc = NLSQ_XPCS_EFORMAT;
        }
    }
    H5Pclose(dcpl);
    return rc;
}

/* Does stored row r (columns other than r) of the n x n dataset d hold data?
 * 1 yes, 0 no, -1 read error. */
static int row_has_data(hid_t d, size_t n, size_t r, double *buf)
{
    hid_t fs = H5Dget_space(d), ms = -1;
    hsize_t start[2] = {r, 0}, count[2] = {1, n}, mcount = n;
    int rc = -1;
    if (fs >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
        (ms = H5Screate_simple(1, &mcount, NULL)) >= 0 &&
        H5Dread(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, buf) >= 0) {
        rc = 0;
        for (size_t j = 0; j < n && !rc; j++)
            if (j != r && isfinite(buf[j]) && buf[j] != 0.0) rc = 1;
    }
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

int nlsq__xpcs_probe_triangle(hid_t d, size_t n)
{
    if (n < 2) return XPCS_TRI_UPPER;
    double *buf = malloc(n * sizeof *buf);
    if (!buf) return NLSQ_ENOMEM;
    int first = row_has_data(d, n, 0, buf);
    int last = first < 0 ? -1 : row_has_data(d, n, n - 1, buf);
    free(buf);
    if (first < 0 || last < 0) return -1;
    return !first && last ? XPCS_TRI_LOWER : XPCS_TRI_UPPER;
}
