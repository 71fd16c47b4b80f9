/* libFuzzer harness: structure-aware fuzzing of the XPCS reader's metadata
 * path (nlsq_xpcs_open / _select / _read_rows / _close), and optionally a
 * model built on what was read.
 *
 * The input bytes are not an HDF5 file: they are decisions.  Each decision
 * reads one byte (0 once the input is exhausted) and byte value 0 always
 * means "the valid default", so the empty input builds a valid APS-U file and
 * every mutation is one byte away from it.  The harness writes a small HDF5
 * file with the HDF5 C API into /tmp/fuzz_xpcs_<pid>.h5, choosing:
 *   - the layout: APS-U, APS old, both groups, or neither;
 *   - the q / phi / bin lists: present or not, dtype (float64, float32,
 *     int32, uint8, string, compound), rank (1, 1 x n, n x 1, scalar, 3-D),
 *     length (0 included) and values (NaN, +-Inf, 0, negative, duplicates,
 *     huge, non-integer and out-of-range bins);
 *   - the matrix group: a group, a dataset, or missing; 0..8 links with
 *     names in several styles (c2_00001, c2_1, mixed, digit runs longer than
 *     any integer), each a dataset, a group, a dangling / internal soft link,
 *     an external link, a hard link or a committed datatype;
 *   - each matrix dataset: rank, dims (0, non-square, one mismatched N,
 *     huge declared dims with chunked storage and no data), dtype (float32,
 *     float64, int16, uint8, string), contiguous or chunked, data clean or
 *     sprinkled with NaN/Inf;
 *   - extra groups, datasets and attributes (which the reader must ignore).
 * Then it opens the file, checks the queries, selects a fuzzed q and frame
 * window, reads fuzzed row blocks of every selected angle and closes.
 *
 * Oracles (abort() on violation): every call returns 0 or a documented
 * negative code with a non-empty one-line message; open fails => *out is
 * NULL; select's result is consistent (angles share the chosen q, phi
 * ascending, indices in range, window inside the file, window errors exactly
 * when the window is bad); read_rows returns ERANGE exactly when the rows are
 * outside the window; for clean data the rows equal the stored upper triangle
 * mirrored (value by value, matrix identified from the data); for files that
 * are valid by construction the (q, phi) of each matrix are the ones
 * written; no HDF5 object is left open after close (H5Fget_obj_count).
 * ASan/UBSan/LSan watch memory.
 *
 * Out of scope: HDF5's own byte-level parser (the file is always written by
 * libhdf5, so it is well formed at the HDF5 level).  Bugs in libhdf5's
 * decoding of corrupted files are libhdf5's; tests/test_xpcs_malformed.c and
 * tests/test_faults.c cover truncated and random-byte files at the API level.
 */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nlsq.h"
#include "nlsq_xpcs.h"

#define MAXM 12       /* matrix links (>= the largest default nq * np) */
#define MAXL 12       /* list entries */

typedef struct reader { const uint8_t *d; size_t n, at; } reader;

static unsigned take(reader *r) { return r->at < r->n ? r->d[r->at++] : 0u; }

/* A small count: default def; otherwise 0..max. */
static size_t take_count(reader *r, size_t def, size_t max)
{
    unsigned b = take(r);
    if (b == 0) return def;
    return (size_t)(b - 1) % (max + 1);
}

static char path_buf[64], ext_buf[64];
static int verbose;    /* FUZZ_XPCS_VERBOSE=1: one line per call */

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "fuzz_xpcs_reader: check failed at line %d: %s\n",      \
                    __LINE__, #cond);                                                \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static void check_msg(int rc, const char *err)
{
    if (rc == 0) return;
    CHECK(rc == NLSQ_EINVAL || rc == NLSQ_ENOMEM || rc == NLSQ_XPCS_EFILE ||
          rc == NLSQ_XPCS_EFORMAT || rc == NLSQ_XPCS_ERANGE);
    CHECK(err[0] != '\0');
    CHECK(strchr(err, '\n') == NULL);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */

static hid_t lcpl_inter(void)
{
    hid_t l = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(l, 1);
    return l;
}

/* A group at path (groups made on the way). */
static void make_group(hid_t fid, const char *path)
{
    hid_t lc = lcpl_inter();
    hid_t g = H5Gcreate2(fid, path, lc, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) H5Gclose(g);
    H5Pclose(lc);
}

/* An empty 1-D dataset of n elements of type at path (groups made on the
 * way): a dataset where the reader expects something else. */
static void make_dataset(hid_t fid, const char *path, hid_t type, hsize_t n)
{
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t lc = lcpl_inter();
    hid_t d = H5Dcreate2(fid, path, type, sp, lc, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) H5Dclose(d);
    H5Pclose(lc);
    H5Sclose(sp);
}

/* dtype codes shared by lists and matrices */
enum { T_F64, T_F32, T_I32, T_U8, T_I16, T_STR, T_CMPD, T_N };

static hid_t file_type(int t)
{
    switch (t) {
    case T_F32: return H5Tcopy(H5T_IEEE_F32LE);
    case T_I32: return H5Tcopy(H5T_STD_I32LE);
    case T_U8:  return H5Tcopy(H5T_STD_U8LE);
    case T_I16: return H5Tcopy(H5T_STD_I16BE);
    case T_STR: { hid_t s = H5Tcopy(H5T_C_S1); H5Tset_size(s, 8); return s; }
    case T_CMPD: {
        hid_t c = H5Tcreate(H5T_COMPOUND, 2 * sizeof(double));
        H5Tinsert(c, "re", 0, H5T_NATIVE_DOUBLE);
        H5Tinsert(c, "im", sizeof(double), H5T_NATIVE_DOUBLE);
        return c;
    }
    default:    return H5Tcopy(H5T_IEEE_F64LE);
    }
}

/* A list dataset holding vals[0..len) (converted by HDF5 from double where
 * the type is numeric; strings and compounds get filler bytes). */
static void write_list(reader *r, hid_t fid, const char *name, const double *vals, size_t len,
                       int *clean)
{
    int dtype = (int)(take(r) % T_N);
    if (take(r) % 4 == 3) dtype = T_F64;          /* bias towards valid */
    unsigned shape = take(r) % 6;                  /* 0: n; 1: 1 x n; 2: n x 1; 3: scalar; 4: 1x1xn; 5: n, chunked, unwritten */
    if (dtype != T_F64 || shape == 3 || shape == 5) *clean = 0;
    hsize_t dims[3] = {len, 1, 1};
    int rank = 1;
    if (shape == 1) { rank = 2; dims[0] = 1; dims[1] = len; }
    if (shape == 2) { rank = 2; dims[0] = len; dims[1] = 1; }
    if (shape == 4) { rank = 3; dims[0] = 1; dims[1] = 1; dims[2] = len; }
    hid_t sp = shape == 3 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t ft = file_type(dtype);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (shape == 5 && len > 0) {
        hsize_t ch = len;
        H5Pset_chunk(dcpl, 1, &ch);
    }
    hid_t lc = lcpl_inter();
    hid_t d = H5Dcreate2(fid, name, ft, sp, lc, dcpl, H5P_DEFAULT);
    if (d >= 0 && shape != 5 && len > 0) {
        if (dtype == T_STR || dtype == T_CMPD) {
            size_t sz = H5Tget_size(ft);
            unsigned char *buf = calloc(len, sz);
            if (buf) {
                for (size_t i = 0; i < len * sz; i++) buf[i] = (unsigned char)('0' + i % 10);
                H5Dwrite(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
                free(buf);
            }
        } else {
            H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
        }
    }
    if (d >= 0) H5Dclose(d);
    H5Pclose(lc);
    H5Pclose(dcpl);
    H5Tclose(ft);
    H5Sclose(sp);
}

/* Values of a list: default def(k), with per-entry mutations. */
static size_t make_values(reader *r, double *v, size_t def_len, double (*def)(size_t), int *clean)
{
    size_t len = take_count(r, def_len, MAXL);
    if (len != def_len) *clean = 0;
    for (size_t k = 0; k < len; k++) {
        v[k] = def(k);
        unsigned b = take(r);
        if (b < 200) continue;
        *clean = 0;
        switch (b % 10) {
        case 0: v[k] = NAN; break;
        case 1: v[k] = INFINITY; break;
        case 2: v[k] = -INFINITY; break;
        case 3: v[k] = 0.0; break;
        case 4: v[k] = -v[k]; break;
        case 5: v[k] = k ? v[k - 1] : v[k]; break;      /* duplicate */
        case 6: v[k] = 1e300; break;
        case 7: v[k] += 0.5; break;                      /* non-integer bin */
        case 8: v[k] = (double)(b % 40); break;          /* out-of-range bin */
        default: v[k] = 4294967297.0; break;
        }
    }
    return len;
}

static double def_q(size_t k) { return 0.01 * (double)(k + 1); }
static double def_phi(size_t k) { return 30.0 * (double)k; }
static double def_bin(size_t k) { return (double)(k + 1); }

/* The clean value of entry (i, j), i <= j, of the matrix with identity id;
 * exact in every numeric dtype used (0..250). */
static double clean_value(unsigned id, size_t i, size_t j)
{
    return (double)((id * 37u + (unsigned)(i * 7 + j * 3)) % 251u);
}

typedef struct matinfo {
    int written;       /* a numeric dataset written with clean data */
    unsigned id;
} matinfo;

/* A matrix dataset named name. */
static void write_matrix(reader *r, hid_t fid, const char *name, size_t N, unsigned id,
                         matinfo *mi, int *clean)
{
    int dtype = T_F32;
    unsigned b = take(r);
    if (b >= 192) { dtype = (int)(b % T_N); *clean = 0; }
    else if (b >= 96) dtype = T_F64;
    unsigned shape = take(r);
    int rank = 2;
    hsize_t dims[3] = {N, N, 2};
    int chunked = 0, unwritten = 0, dirty = 0;
    if (shape >= 200) {
        *clean = 0;
        switch (shape % 8) {
        case 0: rank = 1; break;
        case 1: rank = 3; break;
        case 2: rank = 0; break;
        case 3: dims[1] = N + 1; break;
        case 4: dims[0] = dims[1] = N + 1 + shape % 3; break;  /* differs from the others */
        case 5: dims[0] = dims[1] = 0; break;
        case 6: dims[0] = dims[1] = (hsize_t)1 << (8 + shape % 33); chunked = unwritten = 1; break;
        default: dims[1] = 0; break;
        }
    }
    unsigned st = take(r);
    if (st % 3 == 1) chunked = 1;
    if (st >= 224) dirty = 1;                 /* NaN/Inf sprinkled */
    if (st % 17 == 16) unwritten = 1, chunked = 1;

    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t ft = file_type(dtype);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked && rank > 0) {
        hsize_t ch[3];
        int ok = 1;
        for (int k = 0; k < rank; k++) {
            if (dims[k] == 0) ok = 0;
            ch[k] = dims[k] < 16 ? dims[k] : 16;
        }
        if (ok) H5Pset_chunk(dcpl, rank, ch);
        else unwritten = 0, chunked = 0;
    }
    hid_t lc = lcpl_inter();
    hid_t d = H5Dcreate2(fid, name, ft, sp, lc, dcpl, H5P_DEFAULT);
    size_t count = 1;
    for (int k = 0; k < rank; k++) count *= (size_t)dims[k];
    if (d >= 0 && !unwritten && count > 0 && count <= 4096) {
        if (dtype == T_STR || dtype == T_CMPD) {
            size_t sz = H5Tget_size(ft);
            unsigned char *buf = calloc(count, sz);
            if (buf) {
                H5Dwrite(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
                free(buf);
            }
        } else {
            double *buf = calloc(count, sizeof *buf);
            if (buf) {
                size_t cols = rank >= 2 ? (size_t)dims[1] : count;
                for (size_t e = 0; e < count; e++) {
                    size_t i = (e / cols) % (rank >= 2 ? (size_t)dims[0] : 1), j = e % cols;
                    /* upper triangle meaningful, lower triangle junk (as APS) */
                    buf[e] = j >= i ? clean_value(id, i, j) : 250.0 - (double)(e % 7);
                    if (dirty && (e * 2654435761u + id) % 5 == 0)
                        buf[e] = (e % 3 == 0) ? NAN : (e % 3 == 1) ? INFINITY : -INFINITY;
                }
                H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
                free(buf);
            }
        }
    }
    if (d >= 0 && rank == 2 && dims[0] == N && dims[1] == N && !unwritten && !dirty &&
        dtype != T_STR && dtype != T_CMPD && N > 0 && N * N <= 4096) {
        mi->written = 1;
        mi->id = id;
    }
    if (d >= 0 && unwritten && rank == 2 && dims[0] == dims[1]) {
        mi->written = 2;        /* fill value 0 everywhere */
        mi->id = id;
    }
    if (dirty) *clean = 0;
    if (d >= 0) H5Dclose(d);
    H5Pclose(lc);
    H5Pclose(dcpl);
    H5Tclose(ft);
    H5Sclose(sp);
}

/* The link number k in group gpath: what it is, and its name. */
static void write_link(reader *r, hid_t fid, const char *gpath, size_t k, size_t N,
                       char names[MAXM + 1][96], matinfo *mi, int *clean)
{
    unsigned ns = take(r), kind = take(r);
    char *name = names[k];
    unsigned num = (unsigned)k + 1;
    if (ns < 200) snprintf(name, 96, "%s/c2_%05u", gpath, num);
    else {
        *clean = 0;
        switch (ns % 6) {
        case 0: snprintf(name, 96, "%s/c2_%u", gpath, num); break;
        case 1: snprintf(name, 96, "%s/C2T_%u", gpath, num); break;
        case 2: snprintf(name, 96, "%s/c2_%s%u", gpath, "000000000000000000000000000", num); break;
        case 3: snprintf(name, 96, "%s/c2_99999999999999999999999%u", gpath, num); break;
        case 4: snprintf(name, 96, "%s/x%u_c2", gpath, num); break;
        default: snprintf(name, 96, "%s/c2_%05u", gpath, (unsigned)(ns % 3)); break;  /* may collide */
        }
    }
    if (kind < 200) {
        write_matrix(r, fid, name, N, (unsigned)k, mi, clean);
        return;
    }
    *clean = 0;
    hid_t lc = lcpl_inter();
    switch (kind % 7) {
    case 0: { hid_t g = H5Gcreate2(fid, name, lc, H5P_DEFAULT, H5P_DEFAULT); if (g >= 0) H5Gclose(g); break; }
    case 1: H5Lcreate_soft("/nowhere/at/all", fid, name, lc, H5P_DEFAULT); break;
    case 2: if (k > 0) H5Lcreate_soft(names[0], fid, name, lc, H5P_DEFAULT); break;
    case 3: H5Lcreate_external(ext_buf, "/m", fid, name, lc, H5P_DEFAULT); break;
    case 4: if (k > 0) H5Lcreate_hard(fid, names[0], fid, name, lc, H5P_DEFAULT); break;
    case 5: { hid_t t = H5Tcopy(H5T_NATIVE_INT); H5Tcommit2(fid, name, t, lc, H5P_DEFAULT, H5P_DEFAULT); H5Tclose(t); break; }
    default: H5Lcreate_soft(name, fid, name, lc, H5P_DEFAULT); break;   /* a link to itself */
    }
    H5Pclose(lc);
}

typedef struct built {
    int layout;                  /* the layout the harness meant to write */
    int clean;                   /* valid by construction */
    size_t N, n_mat;
    double q[MAXM + 1], phi[MAXM + 1];   /* expected per matrix, in link order, when clean */
    matinfo mi[MAXM + 1];
} built;

static void build_file(reader *r, built *b)
{
    hid_t fid = H5Fcreate(path_buf, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (fid < 0) abort();
    memset(b, 0, sizeof *b);
    b->clean = 1;
    unsigned lay = take(r) % 8;     /* 0..4 APS-U, 5 old, 6 both, 7 neither */
    int apsu = lay <= 4 || lay == 6, old = lay == 5 || lay == 6;
    if (lay >= 6) b->clean = 0;
    b->layout = apsu ? NLSQ_XPCS_LAYOUT_APS_U : old ? NLSQ_XPCS_LAYOUT_APS_OLD : 0;
    b->N = 1 + take_count(r, 7, 23);          /* 1..24, default 8 */

    double ql[MAXL + 1], pl[MAXL + 1], bl[MAXL + 1];
    if (apsu) {
        size_t nq = 1 + take_count(r, 1, 2), np = 1 + take_count(r, 2, 3);   /* default 2 x 3 */
        size_t lq = make_values(r, ql, nq, def_q, &b->clean);
        size_t lp = make_values(r, pl, np, def_phi, &b->clean);
        size_t nb = nq * np;
        size_t lb = make_values(r, bl, nb, def_bin, &b->clean);
        unsigned present = take(r);
        if (present >= 240) b->clean = 0;
        if (present != 240) write_list(r, fid, "xpcs/qmap/dynamic_v_list_dim0", ql, lq, &b->clean);
        if (present != 241) write_list(r, fid, "xpcs/qmap/dynamic_v_list_dim1", pl, lp, &b->clean);
        if (present != 242) write_list(r, fid, "xpcs/twotime/processed_bins", bl, lb, &b->clean);
        size_t nm = take_count(r, nb, MAXM);
        if (nm != nb) b->clean = 0;
        unsigned g = take(r);
        if (g >= 240) {
            b->clean = 0;
            make_dataset(fid, "xpcs/twotime/correlation_map", H5T_NATIVE_DOUBLE, 1);
        } else {
            make_group(fid, "xpcs/twotime/correlation_map");
            char names[MAXM + 1][96];
            for (size_t k = 0; k < nm; k++)
                write_link(r, fid, "xpcs/twotime/correlation_map", k, b->N, names, &b->mi[k],
                           &b->clean);
        }
        b->n_mat = nm;
        if (b->clean)
            for (size_t k = 0; k < nm; k++) {
                size_t bi = (size_t)bl[k] - 1;
                b->q[k] = ql[bi / np];
                b->phi[k] = pl[bi % np];
            }
    }
    if (old) {
        size_t nm = take_count(r, 3, MAXM);
        size_t lq = make_values(r, ql, nm, def_q, &b->clean);
        size_t lp = make_values(r, pl, nm, def_phi, &b->clean);
        write_list(r, fid, "xpcs/dqlist", ql, lq, &b->clean);
        write_list(r, fid, "xpcs/dphilist", pl, lp, &b->clean);
        size_t nk = take_count(r, nm, MAXM);
        if (nk != nm) b->clean = 0;
        make_group(fid, "exchange/C2T_all");
        char names[MAXM + 1][96];
        for (size_t k = 0; k < nk; k++)
            write_link(r, fid, "exchange/C2T_all", k, b->N, names, &b->mi[k], &b->clean);
        if (!apsu) {
            b->n_mat = nk;
            for (size_t k = 0; k < nk && k < lq && k < lp; k++) {
                b->q[k] = ql[k];
                b->phi[k] = pl[k];
            }
        }
    }
    /* extras the reader must ignore: groups, datasets, attributes */
    unsigned ex = take(r);
    if (ex & 1) make_group(fid, "measurement/instrument/detector");
    if (ex & 2) {
        hsize_t big = (hsize_t)1 << 40;
        hid_t sp = H5Screate_simple(1, &big, NULL);
        hid_t a = H5Acreate2(fid, "huge_attribute_dims", H5T_NATIVE_DOUBLE, sp,
                             H5P_DEFAULT, H5P_DEFAULT);
        /* a 2^40-element attribute cannot be created (64 KiB limit): fine */
        if (a >= 0) H5Aclose(a);
        H5Sclose(sp);
        hsize_t n3 = 3;
        sp = H5Screate_simple(1, &n3, NULL);
        double v[3] = {NAN, INFINITY, -1e308};
        a = H5Acreate2(fid, "dt", H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) { H5Awrite(a, H5T_NATIVE_DOUBLE, v); H5Aclose(a); }
        H5Sclose(sp);
    }
    if (ex & 4) make_dataset(fid, "xpcs/twotime/extra_dataset", H5T_NATIVE_INT, 5);
    if (H5Fclose(fid) < 0) abort();
    CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

static double take_q(reader *r, const nlsq_xpcs_file *f)
{
    unsigned b = take(r);
    size_t nm = nlsq_xpcs_n_matrices(f);
    double q = NAN;
    switch (b % 8) {
    case 0: nlsq_xpcs_matrix_info(f, (size_t)(b / 8) % nm, &q, NULL); return q;
    case 1: return NAN;
    case 2: nlsq_xpcs_matrix_info(f, (size_t)(b / 8) % nm, &q, NULL); return q * (1 + 1e-12);
    case 3: return -0.01;
    case 4: return INFINITY;
    case 5: return 0.0;
    case 6: return 1e300;
    default: return 0.001 * (double)(b / 8);
    }
}

static size_t take_frame(reader *r, size_t n, size_t def)
{
    unsigned b = take(r);
    if (b == 0) return def;
    switch (b % 4) {
    case 0: return SIZE_MAX;
    case 1: return n;                 /* one past the end */
    case 2: return SIZE_MAX - 1;
    default: return (size_t)(b / 4) % (n + 2);
    }
}

static void check_rows(const built *b, const nlsq_xpcs_selection *sel, size_t a, size_t row0,
                       size_t nrows, size_t n, const double *out)
{
    size_t k = sel->matrix[a];
    /* which link wrote matrix k: when clean, the links are c2_00001.. in
     * order, so k is the link index; else identify by the data (id = k is
     * only an assumption when clean) */
    if (!b->clean || k > MAXM || !b->mi[k].written) return;
    const matinfo *mi = &b->mi[k];
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < n; c++) {
            size_t i = sel->first_frame + row0 + r, j = sel->first_frame + c;
            double want = mi->written == 2 ? 0.0
                          : i <= j ? clean_value(mi->id, i, j) : clean_value(mi->id, j, i);
            if (out[r * n + c] != want) {
                fprintf(stderr, "matrix %zu, row %zu col %zu: read %.17g, stored %.17g\n", k, i,
                        j, out[r * n + c], want);
                abort();
            }
        }
}

/* A matrix the builder left unwritten (storage never allocated): the reader
 * refuses such a file at open, naming the dataset (HDF5 would answer zeros). */
static int any_unwritten(const built *b)
{
    for (size_t k = 0; k < b->n_mat && k <= MAXM; k++)
        if (b->mi[k].written == 2) return 1;
    return 0;
}

/* One input's run over an opened file: the byte reader, what the builder
 * wrote, the file, its counts and the error buffer every call fills.  The
 * stages below check one API each; the oracle (CHECK) is the same as when
 * they were one function. */
typedef struct session {
    reader *r;
    const built *b;
    nlsq_xpcs_file *f;
    size_t nm, n;               /* matrices, frames */
    char err[256];
} session;

/* Layout, type and every matrix's (q, phi): as built when the file is clean. */
static void check_matrices(session *s)
{
    const built *b = s->b;
    nlsq_xpcs_file *f = s->f;
    size_t nm = nlsq_xpcs_n_matrices(f), n = nlsq_xpcs_n_frames(f);
    s->nm = nm;
    s->n = n;
    CHECK(nm > 0 && n > 0);
    int lay = nlsq_xpcs_layout_of(f);
    CHECK(lay == NLSQ_XPCS_LAYOUT_APS_U || lay == NLSQ_XPCS_LAYOUT_APS_OLD);
    CHECK(nlsq_xpcs_is_float32(f) == 0 || nlsq_xpcs_is_float32(f) == 1);
    for (size_t k = 0; k < nm; k++) {
        double q = NAN, phi = NAN;
        CHECK(nlsq_xpcs_matrix_info(f, k, &q, &phi) == 0);
        CHECK(isfinite(q) && isfinite(phi));
        if (b->clean) {
            CHECK(lay == b->layout && nm == b->n_mat && n == b->N);
            CHECK(q == b->q[k] && phi == b->phi[k]);
        }
    }
    CHECK(nlsq_xpcs_matrix_info(f, nm, NULL, NULL) == NLSQ_XPCS_ERANGE);
}

/* A successful selection: a valid window, angles of the file in phi order
 * at one q, the nearest q to the one asked. */
static void check_selection(const session *s, const nlsq_xpcs_selection *sel, double qr,
                            size_t first, size_t elast)
{
    nlsq_xpcs_file *f = s->f;
    const size_t nm = s->nm;
    CHECK(sel->n_angles >= 1 && sel->n_angles <= nm);
    CHECK(sel->first_frame == first && sel->last_frame == elast);
    for (size_t a = 0; a < sel->n_angles; a++) {
        double q, phi;
        CHECK(sel->matrix[a] < nm);
        CHECK(nlsq_xpcs_matrix_info(f, sel->matrix[a], &q, &phi) == 0);
        CHECK(phi == sel->phi[a]);
        CHECK(fabs(q - sel->q) <= 1e-9 * fmax(fabs(q), fabs(sel->q)));
        if (a) CHECK(sel->phi[a - 1] <= sel->phi[a]);
    }
    if (!isnan(qr) && isfinite(qr)) {
        /* the nearest q: no matrix is strictly nearer */
        for (size_t k = 0; k < nm; k++) {
            double q;
            nlsq_xpcs_matrix_info(f, k, &q, NULL);
            CHECK(!(fabs(q - qr) < fabs(sel->q - qr)));
        }
    }
}

/* A selection from fuzzed (q, first, last); 0 with *sel filled, or -1 when
 * the reader refused it (checked to refuse for the right reason). */
static int select_round(session *s, nlsq_xpcs_selection *sel)
{
    const size_t n = s->n;
    double qr = take_q(s->r, s->f);
    size_t first = take_frame(s->r, n, 0), last = take_frame(s->r, n, SIZE_MAX);
    memset(s->err, 'x', sizeof s->err);
    int rc = nlsq_xpcs_select(s->f, qr, first, last, sel, s->err, sizeof s->err);
    check_msg(rc, s->err);
    if (verbose)
        fprintf(stderr, "select(%g, %zu, %zu): %d %s\n", qr, first, last, rc, rc ? s->err : "");
    size_t elast = last == SIZE_MAX ? n - 1 : last;
    int window_bad = first > elast || elast >= n;
    if (rc == 0) {
        CHECK(!window_bad);
        check_selection(s, sel, qr, first, elast);
        return 0;
    }
    CHECK(sel->matrix == NULL && sel->phi == NULL && sel->n_angles == 0);
    if (isinf(qr)) CHECK(rc == NLSQ_EINVAL);
    else if (!isnan(qr)) CHECK(window_bad && rc == NLSQ_XPCS_ERANGE);
    return -1;
}

/* read_rows over fuzzed row ranges of every angle and one past the last:
 * out-of-range requests refused, the others read as built. */
static void read_rows_round(session *s, const nlsq_xpcs_selection *sel)
{
    size_t w = sel->last_frame - sel->first_frame + 1;
    for (size_t a = 0; a < sel->n_angles + 1; a++) {
        unsigned b0 = take(s->r), b1 = take(s->r);
        size_t row0 = b0 == 0 ? 0 : (size_t)(b0 - 1) % (w + 2);
        size_t nrows = b1 == 0 ? w : (size_t)(b1 - 1) % (w + 2);
        if (b1 == 255) nrows = SIZE_MAX;
        if (nrows != SIZE_MAX && nrows > (((size_t)1 << 16) / w)) continue;   /* bounded memory */
        size_t cnt = nrows == SIZE_MAX ? 1 : nrows * w;
        double *out = malloc((cnt ? cnt : 1) * sizeof *out);
        if (!out) abort();
        memset(s->err, 'x', sizeof s->err);
        int rc = nlsq_xpcs_read_rows(s->f, sel, a, row0, nrows, out, s->err, sizeof s->err);
        check_msg(rc, s->err);
        if (verbose)
            fprintf(stderr, "read_rows(%zu, %zu, %zu): %d %s\n", a, row0, nrows, rc,
                    rc ? s->err : "");
        int bad = a >= sel->n_angles || row0 > w || nrows > w - row0;
        if (bad) CHECK(rc == NLSQ_XPCS_ERANGE);
        else {
            CHECK(rc == 0 || rc == NLSQ_XPCS_EFILE || rc == NLSQ_ENOMEM);
            if (rc == 0) check_rows(s->b, sel, a, row0, nrows, w, out);
        }
        free(out);
    }
}

/* One residual + Jacobian pass through the model's pattern at x: problem
 * rows n_obs entries, or fewer when symmetric pairs of the full triangle are
 * merged (2 observations a row then, counted in env->n_obs). */
static void model_pass(nlsq_xpcs_model *m, const nlsq_xpcs_selection *sel, const double *x,
                       size_t p, size_t n_obs)
{
    double *rv = malloc(64 * sizeof *rv), *J = malloc(64 * p * sizeof *J);
    size_t *cols = malloc(p * sizeof *cols);
    if (!rv || !J || !cols) abort();
    nlsq_problem pb;
    CHECK(nlsq_xpcs_model_problem(m, &pb) == 0);
    size_t rows = pb.n_rows, counted = 0;
    CHECK(rows >= 1 && rows <= n_obs);
    for (size_t r0 = 0; r0 < rows;) {
        size_t k = 0, want = rows - r0 < 64 ? rows - r0 : 64;
        size_t got = pb.pattern(pb.ctx, r0, want, cols, &k);
        CHECK(got >= 1 && got <= want && k >= 1 && k <= p);
        char why[NLSQ_CALLBACK_MSG_SIZE] = "";
        size_t obs = got;
        const nlsq_eval_env env = {.msg = why, .msg_size = sizeof why, .n_obs = &obs};
        if (pb.eval(pb.ctx, x, r0, got, rv, J, &env) != 0) {
            CHECK(why[0] != '\0');   /* a failing eval says why */
            break;
        }
        CHECK(obs <= 2 * got);
        counted += obs;
        /* data are 0..250 or non-finite (excluded): with a plausible q the
         * residuals and Jacobian are finite */
        if (sel->q > 1e-6 && sel->q < 10)
            for (size_t i = 0; i < got; i++) {
                CHECK(isfinite(rv[i]));
                for (size_t j = 0; j < k; j++) CHECK(isfinite(J[i * k + j]));
            }
        r0 += got;
    }
    CHECK(nlsq_xpcs_model_n_excluded(m) <= n_obs);
    CHECK(counted <= n_obs);
    free(rv);
    free(J);
    free(cols);
}

/* A model over the selection (small windows only): create, start point,
 * one residual + Jacobian pass through the pattern. */
static void model_round(session *s, const nlsq_xpcs_selection *sel)
{
    size_t w = sel->last_frame - sel->first_frame + 1;
    unsigned mb = take(s->r);
    if (!(mb < 160 && w <= 24)) return;
    nlsq_xpcs_source src;
    CHECK(nlsq_xpcs_file_source(s->f, sel, &src) == 0);
    nlsq_xpcs_config cfg;
    nlsq_xpcs_config_init(&cfg);
    cfg.mode = (mb & 1) ? NLSQ_XPCS_STATIC : NLSQ_XPCS_LAMINAR;
    cfg.triangle = (mb & 2) ? NLSQ_XPCS_FULL : NLSQ_XPCS_UPPER;
    cfg.include_diagonal = (mb & 4) != 0;
    cfg.q = sel->q;
    cfg.gap = 2e6;
    cfg.dt = 1e-3;
    cfg.k0 = sel->first_frame;
    cfg.memory_budget = (mb & 8) ? 0 : (size_t)1 << 20;   /* streamed or cached */
    nlsq_xpcs_model *m = NULL;
    memset(s->err, 'x', sizeof s->err);
    int rc = nlsq_xpcs_model_create(&src, &cfg, &m, s->err, sizeof s->err);
    if (rc != 0) {
        CHECK(m == NULL && s->err[0] != '\0');
        return;
    }
    size_t p = nlsq_xpcs_model_n_params(m), n_obs = nlsq_xpcs_model_n_rows(m);
    double *x = malloc(p * sizeof *x);
    if (!x) abort();
    int g = nlsq_xpcs_initial_guess(m, NULL, x, NULL, 0);
    CHECK(g == 0 || g == NLSQ_ECALLBACK);
    if (g == 0) {
        for (size_t j = 0; j < p; j++) CHECK(isfinite(x[j]));
        model_pass(m, sel, x, p, n_obs);
    }
    free(x);
    nlsq_xpcs_model_free(m);
}

static void exercise(reader *r, const built *b)
{
    session s = {.r = r, .b = b, .f = (nlsq_xpcs_file *)(uintptr_t)1};
    memset(s.err, 'x', sizeof s.err);
    int rc = nlsq_xpcs_open(path_buf, &s.f, s.err, sizeof s.err);
    check_msg(rc, s.err);
    if (verbose) fprintf(stderr, "open: %d %s (clean %d)\n", rc, rc ? s.err : "", b->clean);
    if (rc != 0) {
        CHECK(s.f == NULL);
        /* a file valid by construction opens, unless it holds unwritten storage */
        CHECK(!b->clean || b->n_mat == 0 || any_unwritten(b));
        CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
        return;
    }
    CHECK(s.f != NULL);
    CHECK(!b->clean || !any_unwritten(b));   /* unwritten storage is never read as data */
    check_matrices(&s);
    for (int round = 0; round < 2; round++) {
        nlsq_xpcs_selection sel;
        if (select_round(&s, &sel) != 0) continue;
        read_rows_round(&s, &sel);
        model_round(&s, &sel);
        nlsq_xpcs_selection_free(&sel);
        CHECK(sel.matrix == NULL && sel.phi == NULL);
    }
    nlsq_xpcs_close(s.f);
    CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("FUZZ_TMPDIR") ? getenv("FUZZ_TMPDIR") : "/tmp";
    snprintf(path_buf, sizeof path_buf, "%.40s/fuzz_xpcs_%ld.h5", dir, (long)getpid());
    snprintf(ext_buf, sizeof ext_buf, "fuzz_xpcs_%ld_missing_external.h5", (long)getpid());
    verbose = getenv("FUZZ_XPCS_VERBOSE") != NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);      /* the harness's own calls may fail on purpose */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0};
    built b;
    build_file(&r, &b);
    exercise(&r, &b);
    remove(path_buf);
    return 0;
}
