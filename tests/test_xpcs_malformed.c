/*
 * test_xpcs_malformed.c - the XPCS reader and writer on bad input.
 *
 * Every malformed file class must give the right negative code, a non-empty
 * one-line message (naming the file, and the dataset where there is one), no
 * crash and no leaked HDF5 handle (H5Fget_obj_count back to 0; the test also
 * runs under ASan + LSan).
 */
#include "common.h"

#include "common_h5.h"

#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"

/* Open must fail with code; the message must name the file and hold the
 * given fragments (NULL: none). */
static char *tmp_path(const char *name) { return tc_tmp_name("test_xpcs_malformed_", name); }

static void expect_open_fail(const char *path, int code, const char *frag1, const char *frag2)
{
    nlsq_xpcs_file *f = (nlsq_xpcs_file *)(uintptr_t)1;
    char err[512];
    memset(err, 0, sizeof err);
    int rc = nlsq_xpcs_open(path, &f, err, sizeof err);
    if (getenv("NLSQ_TEST_VERBOSE")) printf("    [%d] %s\n", rc, err);
    if (rc != code) fail_msg("%s: expected %d, got %d (%s)", path, code, rc, err);
    assert_null(f);
    assert_true(err[0] != '\0');
    assert_null(strchr(err, '\n'));
    if (!strstr(err, path)) fail_msg("message does not name the file: %s", err);
    if (frag1 && !strstr(err, frag1)) fail_msg("message lacks '%s': %s", frag1, err);
    if (frag2 && !strstr(err, frag2)) fail_msg("message lacks '%s': %s", frag2, err);
    /* the same without a message buffer, and with a tiny one */
    assert_int_equal(nlsq_xpcs_open(path, &f, NULL, 0), code);
    char tiny[8];
    assert_int_equal(nlsq_xpcs_open(path, &f, tiny, sizeof tiny), code);
    assert_true(strlen(tiny) < sizeof tiny);
    tc_assert_no_h5_objects();
}

/* ------------------------------------------------------------------------ */
/* File builders                                                             */
/* ------------------------------------------------------------------------ */

static hid_t new_file(const char *path)
{
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(fid >= 0);
    return fid;
}

/* A chunked dataset of any (huge) shape with no data written. */
static void put_empty_chunked(hid_t fid, const char *name, int rank, const hsize_t *dims,
                              hid_t ftype)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[H5S_MAX_RANK];
    for (int i = 0; i < rank; i++) chunk[i] = dims[i] < 64 ? dims[i] : 64;
    assert_true(H5Pset_chunk(dcpl, rank, chunk) >= 0);
    hid_t d = H5Dcreate2(fid, name, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Pclose(lcpl);
}

static void put_matrix(hid_t fid, const char *name, size_t rows, size_t cols)
{
    double *m = calloc(rows * cols, sizeof *m);
    assert_non_null(m);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = i; j < cols; j++) m[i * cols + j] = 1.0 + (double)(i + j) * 1e-3;
    hsize_t dims[2] = {rows, cols};
    tc_h5_put(fid, name, 2, dims, H5T_IEEE_F32LE, H5T_NATIVE_DOUBLE, m);
    free(m);
}

static void put_group(hid_t fid, const char *name)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(fid, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    H5Gclose(g);
    H5Pclose(lcpl);
}

/* APS-U lists: nq q values, np phi values, nb bins (as doubles, stored as
 * float64 so that non-integers can be tested). */
static void put_apsu_lists(hid_t fid, size_t nq, size_t np, const double *bins, size_t nb)
{
    double q[8], phi[8];
    for (size_t i = 0; i < 8; i++) {
        q[i] = 0.01 * (double)(i + 1);
        phi[i] = 30.0 * (double)i;
    }
    hsize_t dq = nq, dp = np, db = nb;
    if (nq) tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim0", 1, &dq, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, q);
    if (np) tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim1", 1, &dp, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, phi);
    if (nb) tc_h5_put(fid, "xpcs/twotime/processed_bins", 1, &db, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, bins);
}

/* A valid APS-U file: 1 q, 2 phi, 2 bins, N x N. */
static void write_valid_apsu(const char *path, size_t N)
{
    hid_t fid = new_file(path);
    const double bins[2] = {1, 2};
    put_apsu_lists(fid, 1, 2, bins, 2);
    put_matrix(fid, "xpcs/twotime/correlation_map/c2_00001", N, N);
    put_matrix(fid, "xpcs/twotime/correlation_map/c2_00002", N, N);
    assert_true(H5Fclose(fid) >= 0);
}

/* Closes fid (the file at path), then expect_open_fail of path. */
static void close_expect_fail(hid_t fid, const char *path, int code, const char *frag1,
                              const char *frag2)
{
    assert_true(H5Fclose(fid) >= 0);
    expect_open_fail(path, code, frag1, frag2);
}

static void copy_prefix(const char *from, const char *to, long nbytes)
{
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    char *buf = malloc((size_t)nbytes);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)nbytes, in), (size_t)nbytes);
    fclose(in);
    tc_write_bytes(to, buf, (size_t)nbytes);
    free(buf);
}

static long file_size(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Not a usable file                                                         */
/* ------------------------------------------------------------------------ */

static void test_missing_directory_empty_text(void **state)
{
    (void)state;
    const char *path = tmp_path("does_not_exist.h5");
    remove(path);
    expect_open_fail(path, NLSQ_XPCS_EFILE, NULL, NULL);
    expect_open_fail(NLSQ_TEST_TMPDIR, NLSQ_XPCS_EFILE, "directory", NULL);

    path = tmp_path("empty.h5");
    tc_write_bytes(path, "", 0);
    expect_open_fail(path, NLSQ_XPCS_EFILE, "empty", NULL);
    remove(path);

    path = tmp_path("text.h5");
    const char *text = "this is not an HDF5 file\n1 2 3\n";
    tc_write_bytes(path, text, strlen(text));
    expect_open_fail(path, NLSQ_XPCS_EFILE, "not an HDF5 file", NULL);
    remove(path);

    path = tmp_path("random.h5");
    unsigned char junk[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1664525u + 1013904223u;
        junk[i] = (unsigned char)(x >> 24);
    }
    tc_write_bytes(path, junk, sizeof junk);
    expect_open_fail(path, NLSQ_XPCS_EFILE, NULL, NULL);
    /* the HDF5 signature followed by junk */
    memcpy(junk, "\211HDF\r\n\032\n", 8);
    tc_write_bytes(path, junk, sizeof junk);
    expect_open_fail(path, NLSQ_XPCS_EFILE, NULL, NULL);
    remove(path);
}

static void test_truncated(void **state)
{
    (void)state;
    const char *good = tmp_path("good.h5"), *bad = tmp_path("truncated.h5");
    write_valid_apsu(good, 60);
    long n = file_size(good);
    assert_true(n > 4000);
    const long cuts[4] = {n / 2, n - 1, 600, 40};
    for (int c = 0; c < 4; c++) {
        copy_prefix(good, bad, cuts[c]);
        nlsq_xpcs_file *f = NULL;
        char err[512] = "";
        int rc = nlsq_xpcs_open(bad, &f, err, sizeof err);
        if (rc == 0) {
            /* if the library accepts the prefix, reading must still fail cleanly */
            nlsq_xpcs_selection sel;
            rc = nlsq_xpcs_select(f, NAN, 0, SIZE_MAX, &sel, err, sizeof err);
            double *out = malloc(60 * 60 * sizeof *out);
            assert_non_null(out);
            if (rc == 0) rc = nlsq_xpcs_read_rows(f, &sel, 1, 0, 60, out, err, sizeof err);
            free(out);
            nlsq_xpcs_selection_free(&sel);
            nlsq_xpcs_close(f);
            if (rc == 0) fail_msg("truncated file (%ld of %ld bytes) read without error", cuts[c], n);
        }
        if (getenv("NLSQ_TEST_VERBOSE")) printf("    [%d] %s\n", rc, err);
        assert_true(rc == NLSQ_XPCS_EFILE || rc == NLSQ_XPCS_EFORMAT);
        assert_true(err[0] != '\0');
        assert_non_null(strstr(err, bad));
        tc_assert_no_h5_objects();
    }
    remove(good);
    remove(bad);
}

/* ------------------------------------------------------------------------ */
/* HDF5 but not the layouts                                                  */
/* ------------------------------------------------------------------------ */

static void test_unrecognised_layout(void **state)
{
    const char *path = *state;
    hid_t fid = new_file(path);
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "not recognised", NULL);

    fid = new_file(path);
    put_group(fid, "xpcs/twotime");   /* no correlation_map */
    hsize_t d = 3;
    double v[3] = {1, 2, 3};
    tc_h5_put(fid, "xpcs/dqlist", 1, &d, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v);
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "not recognised", NULL);

    /* correlation_map is a dataset, not a group */
    fid = new_file(path);
    const double bins[1] = {1};
    put_apsu_lists(fid, 1, 1, bins, 1);
    tc_h5_put(fid, "xpcs/twotime/correlation_map", 1, &d, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v);
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "xpcs/twotime/correlation_map", "not a group");
}

static void test_missing_datasets(void **state)
{
    const char *path = *state;
    const double bins[2] = {1, 2};
    /* APS-U without processed_bins, without dim0, without dim1 */
    for (int which = 0; which < 3; which++) {
        hid_t fid = new_file(path);
        put_apsu_lists(fid, which == 0 ? 0 : 1, which == 1 ? 0 : 2, bins, which == 2 ? 0 : 2);
        put_matrix(fid, "xpcs/twotime/correlation_map/c2_00001", 5, 5);
        put_matrix(fid, "xpcs/twotime/correlation_map/c2_00002", 5, 5);
        assert_true(H5Fclose(fid) >= 0);
        const char *name = which == 0 ? "xpcs/qmap/dynamic_v_list_dim0"
                           : which == 1 ? "xpcs/qmap/dynamic_v_list_dim1"
                                        : "xpcs/twotime/processed_bins";
        expect_open_fail(path, NLSQ_XPCS_EFORMAT, name, "missing");
    }
    /* APS old without dphilist */
    hid_t fid = new_file(path);
    hsize_t dm[2] = {1, 1};
    double q = 0.01;
    tc_h5_put(fid, "xpcs/dqlist", 2, dm, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &q);
    put_matrix(fid, "exchange/C2T_all/c2_00001", 5, 5);
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "xpcs/dphilist", "missing");
}

static void test_empty_groups(void **state)
{
    const char *path = *state;
    const double bins[1] = {1};
    hid_t fid = new_file(path);
    put_apsu_lists(fid, 1, 1, bins, 1);
    put_group(fid, "xpcs/twotime/correlation_map");
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "xpcs/twotime/correlation_map", "empty");

    fid = new_file(path);
    hsize_t dm[2] = {1, 1};
    double q = 0.01, phi = 0;
    tc_h5_put(fid, "xpcs/dqlist", 2, dm, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &q);
    tc_h5_put(fid, "xpcs/dphilist", 2, dm, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &phi);
    put_group(fid, "exchange/C2T_all");
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "exchange/C2T_all", "empty");

    /* empty lists */
    fid = new_file(path);
    hsize_t zero = 0, one = 1;
    tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim0", 1, &zero, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, NULL);
    tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim1", 1, &one, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &phi);
    tc_h5_put(fid, "xpcs/twotime/processed_bins", 1, &one, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, bins);
    put_matrix(fid, "xpcs/twotime/correlation_map/c2_00001", 5, 5);
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "dynamic_v_list_dim0", "empty");
}

/* ------------------------------------------------------------------------ */
/* Bad matrices                                                              */
/* ------------------------------------------------------------------------ */

static void apsu_with_third(const char *path, void (*third)(hid_t fid, const char *name))
{
    hid_t fid = new_file(path);
    const double bins[3] = {1, 2, 3};
    put_apsu_lists(fid, 1, 3, bins, 3);
    put_matrix(fid, "xpcs/twotime/correlation_map/c2_00001", 100, 100);
    put_matrix(fid, "xpcs/twotime/correlation_map/c2_00002", 100, 100);
    third(fid, "xpcs/twotime/correlation_map/c2_00003");
    assert_true(H5Fclose(fid) >= 0);
}

static void third_nonsquare(hid_t fid, const char *name) { put_matrix(fid, name, 100, 99); }
static void third_smaller(hid_t fid, const char *name) { put_matrix(fid, name, 50, 50); }
static void third_rank3(hid_t fid, const char *name)
{
    hsize_t d[3] = {2, 3, 3};
    put_empty_chunked(fid, name, 3, d, H5T_IEEE_F32LE);
}
static void third_rank1(hid_t fid, const char *name)
{
    double v[4] = {1, 2, 3, 4};
    hsize_t d = 4;
    tc_h5_put(fid, name, 1, &d, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v);
}
static void third_scalar(hid_t fid, const char *name)
{
    double v = 1;
    tc_h5_put(fid, name, 0, NULL, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}
static void third_zero(hid_t fid, const char *name)
{
    hsize_t d[2] = {0, 0};
    tc_h5_put(fid, name, 2, d, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, NULL);
}
static void third_string(hid_t fid, const char *name)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 4);
    hsize_t d[2] = {2, 2};
    tc_h5_put(fid, name, 2, d, t, t, "abcdefghijklmnop");
    H5Tclose(t);
}
static void third_compound(hid_t fid, const char *name)
{
    typedef struct { double re, im; } cplx;
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(cplx));
    H5Tinsert(t, "re", offsetof(cplx, re), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "im", offsetof(cplx, im), H5T_NATIVE_DOUBLE);
    cplx v[4] = {{1, 0}, {2, 0}, {3, 0}, {4, 0}};
    hsize_t d[2] = {2, 2};
    tc_h5_put(fid, name, 2, d, t, t, v);
    H5Tclose(t);
}
static void third_group(hid_t fid, const char *name) { put_group(fid, name); }
static void third_dangling(hid_t fid, const char *name)
{
    assert_true(H5Lcreate_soft("/nowhere/at/all", fid, name, H5P_DEFAULT, H5P_DEFAULT) >= 0);
}
static void third_external(hid_t fid, const char *name)
{
    assert_true(H5Lcreate_external("no_such_file_xyz.h5", "/m", fid, name, H5P_DEFAULT,
                                   H5P_DEFAULT) >= 0);
}
static void third_huge(hid_t fid, const char *name)
{
    hsize_t d[2] = {(hsize_t)1 << 31, (hsize_t)1 << 31};   /* 2^62 elements, 2^65 bytes */
    put_empty_chunked(fid, name, 2, d, H5T_IEEE_F32LE);
}
static void third_huger(hid_t fid, const char *name)
{
    hsize_t d[2] = {(hsize_t)1 << 40, (hsize_t)1 << 40};   /* 2^80 elements */
    put_empty_chunked(fid, name, 2, d, H5T_IEEE_F32LE);
}

static void test_bad_matrices(void **state)
{
    const char *path = *state;
    const char *key = "xpcs/twotime/correlation_map/c2_00003";
    struct {
        void (*fn)(hid_t, const char *);
        const char *frag;
    } cases[] = {
        {third_nonsquare, "100 x 99, expected square"},
        {third_smaller, "50 x 50"},
        {third_rank3, "rank 3"},
        {third_rank1, "rank 1"},
        {third_scalar, key},
        {third_zero, "0 x 0"},
        {third_string, "not numeric"},
        {third_compound, "not numeric"},
        {third_group, "is a group, not a dataset"},
        {third_dangling, "cannot be opened"},
        {third_external, "cannot be opened"},
        {third_huge, "too large"},
        {third_huger, "too large"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        apsu_with_third(path, cases[c].fn);
        expect_open_fail(path, NLSQ_XPCS_EFORMAT, key, cases[c].frag);
    }
}

/* ------------------------------------------------------------------------ */
/* Bad lists                                                                 */
/* ------------------------------------------------------------------------ */

static void test_bins_out_of_range(void **state)
{
    const char *path = *state;
    /* 2 q x 3 phi = bins 1..6 */
    const double bad[5] = {0, 7, -1, 2.5, NAN};
    for (int c = 0; c < 5; c++) {
        double bins[2] = {1, bad[c]};
        hid_t fid = new_file(path);
        put_apsu_lists(fid, 2, 3, bins, 2);
        put_matrix(fid, "xpcs/twotime/correlation_map/c2_00001", 5, 5);
        put_matrix(fid, "xpcs/twotime/correlation_map/c2_00002", 5, 5);
        close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "processed_bins", NULL);
    }
    /* bin count differs from the matrix count */
    double bins[3] = {1, 2, 3};
    hid_t fid = new_file(path);
    put_apsu_lists(fid, 2, 3, bins, 3);
    put_matrix(fid, "xpcs/twotime/correlation_map/c2_00001", 5, 5);
    put_matrix(fid, "xpcs/twotime/correlation_map/c2_00002", 5, 5);
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "3 bins", "2 matrices");
}

/* A new APS old file at path: dqlist of nq values q, dphilist of nphi
 * values phi, n_mat 5 x 5 matrices.  The caller closes it. */
static hid_t aps_old_lists(const char *path, hsize_t nq, const double *q, hsize_t nphi,
                           const double *phi, int n_mat)
{
    hid_t fid = new_file(path);
    const hsize_t dq[2] = {1, nq}, dphi[2] = {1, nphi};
    tc_h5_put(fid, "xpcs/dqlist", 2, dq, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, q);
    tc_h5_put(fid, "xpcs/dphilist", 2, dphi, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, phi);
    for (int k = 1; k <= n_mat; k++) {
        char name[64];
        snprintf(name, sizeof name, "exchange/C2T_all/c2_%05d", k);
        put_matrix(fid, name, 5, 5);
    }
    return fid;
}

static void test_bad_lists(void **state)
{
    const char *path = *state;
    double q[3] = {0.01, 0.01, 0.01}, phi[3] = {0, 10, 20};
    /* dqlist and dphilist of different lengths */
    hid_t fid = aps_old_lists(path, 2, q, 3, phi, 2);
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "xpcs/dqlist", "xpcs/dphilist");
    /* pairs listed differ from the matrices stored */
    fid = aps_old_lists(path, 3, q, 3, phi, 2);
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "3 (q, phi) pairs", "2 matrices");
    /* a NaN q */
    q[1] = NAN;
    fid = aps_old_lists(path, 3, q, 3, phi, 3);
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "xpcs/dqlist", "non-finite");

    /* string-typed q list */
    fid = new_file(path);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 4);
    hsize_t d1 = 1;
    tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim0", 1, &d1, t, t, "0.01");
    H5Tclose(t);
    phi[0] = 0;
    tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim1", 1, &d1, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, phi);
    double b = 1;
    tc_h5_put(fid, "xpcs/twotime/processed_bins", 1, &d1, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &b);
    put_matrix(fid, "xpcs/twotime/correlation_map/c2_00001", 5, 5);
    close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "dynamic_v_list_dim0", "not numeric");

    /* lists whose element count overflows or is implausible */
    const hsize_t huge2[2] = {(hsize_t)1 << 40, (hsize_t)1 << 40};
    const hsize_t huge1[1] = {(hsize_t)1 << 40};
    for (int c = 0; c < 2; c++) {
        fid = new_file(path);
        put_empty_chunked(fid, "xpcs/twotime/processed_bins", c ? 1 : 2, c ? huge1 : huge2,
                          H5T_STD_I64LE);
        double one = 0.01;
        tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim0", 1, &d1, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &one);
        tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim1", 1, &d1, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &one);
        put_matrix(fid, "xpcs/twotime/correlation_map/c2_00001", 5, 5);
        close_expect_fail(fid, path, NLSQ_XPCS_EFORMAT, "processed_bins", "large");
    }
}

/* ------------------------------------------------------------------------ */
/* Reads that fail after a good open                                         */
/* ------------------------------------------------------------------------ */

#define BROKEN_FILTER_ID 300   /* 256..511: reserved for testing */

static size_t broken_filter(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[],
                            size_t nbytes, size_t *buf_size, void **buf)
{
    (void)cd_nelmts;
    (void)cd_values;
    (void)buf_size;
    (void)buf;
    return (flags & H5Z_FLAG_REVERSE) ? 0 : nbytes;   /* writes fine, never decodes */
}

static void test_read_failure(void **state)
{
    (void)state;
    const H5Z_class2_t cls = {H5Z_CLASS_T_VERS, BROKEN_FILTER_ID, 1, 1, "broken", NULL, NULL,
                              broken_filter};
    assert_true(H5Zregister(&cls) >= 0);
    const char *path = tmp_path("filter.h5");
    hid_t fid = new_file(path);
    const double bins[1] = {1};
    put_apsu_lists(fid, 1, 1, bins, 1);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hsize_t d[2] = {20, 20}, ch[2] = {10, 10};
    hid_t sp = H5Screate_simple(2, d, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, ch);
    assert_true(H5Pset_filter(dcpl, BROKEN_FILTER_ID, H5Z_FLAG_MANDATORY, 0, NULL) >= 0);
    hid_t ds = H5Dcreate2(fid, "xpcs/twotime/correlation_map/c2_00001", H5T_IEEE_F64LE, sp, lcpl,
                          dcpl, H5P_DEFAULT);
    assert_true(ds >= 0);
    double v[400];
    for (int i = 0; i < 400; i++) v[i] = i;
    assert_true(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Pclose(lcpl);
    assert_true(H5Fclose(fid) >= 0);

    nlsq_xpcs_file *f = NULL;
    char err[512];
    assert_int_equal(nlsq_xpcs_open(path, &f, err, sizeof err), 0);
    nlsq_xpcs_selection sel;
    assert_int_equal(nlsq_xpcs_select(f, NAN, 0, SIZE_MAX, &sel, err, sizeof err), 0);
    double out[400];
    for (size_t r0 = 0; r0 < 20; r0 += 7) {
        err[0] = '\0';
        int rc = nlsq_xpcs_read_rows(f, &sel, 0, r0, 3, out, err, sizeof err);
        assert_int_equal(rc, NLSQ_XPCS_EFILE);
        assert_non_null(strstr(err, "xpcs/twotime/correlation_map/c2_00001"));
        assert_non_null(strstr(err, path));
    }
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
    tc_assert_no_h5_objects();
    H5Zunregister(BROKEN_FILTER_ID);
    remove(path);
}

/* ------------------------------------------------------------------------ */
/* API misuse                                                                */
/* ------------------------------------------------------------------------ */

static void test_api_misuse(void **state)
{
    (void)state;
    char err[256];
    nlsq_xpcs_file *f = NULL;
    assert_int_equal(nlsq_xpcs_open(NULL, &f, err, sizeof err), NLSQ_EINVAL);
    assert_true(err[0] != '\0');
    assert_int_equal(nlsq_xpcs_open("x.h5", NULL, err, sizeof err), NLSQ_EINVAL);
    nlsq_xpcs_close(NULL);
    assert_int_equal(nlsq_xpcs_layout_of(NULL), NLSQ_XPCS_LAYOUT_UNKNOWN);
    assert_int_equal(nlsq_xpcs_n_matrices(NULL), 0);
    assert_int_equal(nlsq_xpcs_n_frames(NULL), 0);
    assert_int_equal(nlsq_xpcs_matrix_info(NULL, 0, NULL, NULL), NLSQ_EINVAL);
    nlsq_xpcs_selection sel;
    assert_int_equal(nlsq_xpcs_select(NULL, 0.01, 0, SIZE_MAX, &sel, err, sizeof err), NLSQ_EINVAL);
    nlsq_xpcs_selection_free(NULL);

    const char *path = tmp_path("valid.h5");
    write_valid_apsu(path, 10);
    assert_int_equal(nlsq_xpcs_open(path, &f, err, sizeof err), 0);
    assert_int_equal(nlsq_xpcs_select(f, 0.01, 0, SIZE_MAX, NULL, err, sizeof err), NLSQ_EINVAL);
    assert_int_equal(nlsq_xpcs_select(f, INFINITY, 0, SIZE_MAX, &sel, err, sizeof err), NLSQ_EINVAL);
    assert_int_equal(nlsq_xpcs_select(f, 0.01, 0, 10, &sel, err, sizeof err), NLSQ_XPCS_ERANGE);
    assert_non_null(strstr(err, path));
    assert_int_equal(nlsq_xpcs_select(f, 0.01, 2, SIZE_MAX, &sel, err, sizeof err), 0);
    double out[100];
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 0, 0, 1, NULL, err, sizeof err), NLSQ_EINVAL);
    assert_int_equal(nlsq_xpcs_read_rows(NULL, &sel, 0, 0, 1, out, err, sizeof err), NLSQ_EINVAL);
    assert_int_equal(nlsq_xpcs_read_rows(f, NULL, 0, 0, 1, out, err, sizeof err), NLSQ_EINVAL);
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 0, 0, 9, out, err, sizeof err), NLSQ_XPCS_ERANGE);
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 0, SIZE_MAX, 2, out, err, sizeof err),
                     NLSQ_XPCS_ERANGE);
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 0, 1, SIZE_MAX, out, err, sizeof err),
                     NLSQ_XPCS_ERANGE);
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 5, 0, 1, out, err, sizeof err), NLSQ_XPCS_ERANGE);
    /* a selection tampered with (window past the file) */
    nlsq_xpcs_selection bad = sel;
    bad.last_frame = 10;
    assert_int_equal(nlsq_xpcs_read_rows(f, &bad, 0, 0, 1, out, err, sizeof err), NLSQ_XPCS_ERANGE);
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 0, 0, 8, out, err, sizeof err), 0);
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
    tc_assert_no_h5_objects();
    remove(path);
}

static void test_writer_errors(void **state)
{
    (void)state;
    char err[256];
    nlsq_xpcs_synth_spec s;
    const char *path = tmp_path("synth_bad.h5");

    nlsq_xpcs_synth_spec_default(&s);
    assert_int_equal(nlsq_xpcs_synth_write(NULL, &s, err, sizeof err), NLSQ_EINVAL);
    assert_int_equal(nlsq_xpcs_synth_write(path, NULL, err, sizeof err), NLSQ_EINVAL);
    nlsq_xpcs_synth_spec_default(NULL);

    for (int c = 0; c < 9; c++) {
        nlsq_xpcs_synth_spec_default(&s);
        s.n_frames = 10;
        s.n_angles = 2;
        switch (c) {
        case 0: s.layout = 7; break;
        case 1: s.n_frames = 0; break;
        case 2: s.n_angles = 0; break;
        case 3: s.q = 0; break;
        case 4: s.dt = -1; break;
        case 5: s.noise_sigma = -0.1; break;
        case 6: s.params[2] = NAN; break;
        case 7: s.n_frames = SIZE_MAX / 2; break;
        case 8: s.n_extra_q = SIZE_MAX; break;
        }
        err[0] = '\0';
        assert_int_equal(nlsq_xpcs_synth_write(path, &s, err, sizeof err), NLSQ_EINVAL);
        assert_true(err[0] != '\0');
    }
    nlsq_xpcs_synth_spec_default(&s);
    s.n_frames = 10;
    s.n_angles = 2;
    assert_int_equal(nlsq_xpcs_synth_write(NLSQ_TEST_TMPDIR, &s, err, sizeof err), NLSQ_XPCS_EFILE);
    assert_non_null(strstr(err, NLSQ_TEST_TMPDIR));
    assert_int_equal(
        nlsq_xpcs_synth_write(NLSQ_TEST_TMPDIR "/no/such/dir/x.h5", &s, err, sizeof err),
        NLSQ_XPCS_EFILE);
    assert_true(err[0] != '\0');
    assert_int_equal(nlsq_xpcs_synth_write(path, &s, NULL, 0), 0);
    tc_assert_no_h5_objects();
    remove(path);
}

TC_MAIN(cmocka_unit_test(test_missing_directory_empty_text), cmocka_unit_test(test_truncated),
        TC_FILE_TEST(test_unrecognised_layout, "test_xpcs_malformed_nolayout.h5"),
        TC_FILE_TEST(test_missing_datasets, "test_xpcs_malformed_missing.h5"),
        TC_FILE_TEST(test_empty_groups, "test_xpcs_malformed_emptygroup.h5"),
        TC_FILE_TEST(test_bad_matrices, "test_xpcs_malformed_badmatrix.h5"),
        TC_FILE_TEST(test_bins_out_of_range, "test_xpcs_malformed_bins.h5"),
        TC_FILE_TEST(test_bad_lists, "test_xpcs_malformed_lists.h5"),
        cmocka_unit_test(test_read_failure), cmocka_unit_test(test_api_misuse),
        cmocka_unit_test(test_writer_errors))
