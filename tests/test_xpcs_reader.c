/*
 * test_xpcs_reader.c - the XPCS HDF5 reader and the synthetic writer.
 *
 * Files of both layouts are written here through the HDF5 C API with known
 * values (upper triangle h[i][j] = base + i + j / 1000, lower triangle 0), then
 * read back: layout detection, q / phi / bin mapping, q selection, frame
 * windows, the full-matrix rebuild and row blocks of every size.  The writer
 * is checked against an independent scalar g2 (noise 0) and its noise stream.
 */
#include "common.h"

#include "common_h5.h"
#include "common_xpcs.h"

#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"
#include "xpcs/xpcs_common.h"

/* ------------------------------------------------------------------------ */
/* Writing test files directly                                               */
/* ------------------------------------------------------------------------ */

static char *tmp_path(const char *name) { return tc_tmp_name("test_xpcs_reader_", name); }

static hid_t new_file(const char *path)
{
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(fid >= 0);
    return fid;
}

static double hval(double base, size_t i, size_t j) { return base + (double)i + (double)j / 1000; }

/* An N x N matrix: upper triangle hval, lower 0. */
static void put_matrix(hid_t fid, const char *name, size_t N, hid_t ftype, double base)
{
    double *m = calloc(N * N, sizeof *m);
    assert_non_null(m);
    for (size_t i = 0; i < N; i++)
        for (size_t j = i; j < N; j++) m[i * N + j] = hval(base, i, j);
    hsize_t dims[2] = {N, N};
    tc_h5_put(fid, name, 2, dims, ftype, H5T_NATIVE_DOUBLE, m);
    free(m);
}

/* The value the reader must return at full (i, j) for a matrix of base,
 * stored as float64 (kind 0), float32 (1) or an integer type (2). */
static double expect_full(double base, size_t i, size_t j, int kind)
{
    double v = i <= j ? hval(base, i, j) : hval(base, j, i);
    return kind == 1 ? (double)(float)v : kind == 2 ? trunc(v) : v;
}

/* APS-U test file: q [0.005 0.01 0.02], phi [90 0 270 180], bins [6 5 8 2 7];
 * key k has base 1000 (k + 1). */
static const double U_Q[3] = {0.005, 0.01, 0.02};
static const double U_PHI[4] = {90, 0, 270, 180};
static const long long U_BINS[5] = {6, 5, 8, 2, 7};

static void write_apsu(const char *path, size_t N, hid_t ftype)
{
    hid_t fid = new_file(path);
    hsize_t d3 = 3, d4 = 4, d5 = 5;
    tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim0", 1, &d3, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, U_Q);
    tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim1", 1, &d4, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, U_PHI);
    tc_h5_put(fid, "xpcs/twotime/processed_bins", 1, &d5, H5T_STD_I64LE, H5T_NATIVE_LLONG, U_BINS);
    /* created out of order on purpose: the reader sorts keys */
    const int order[5] = {3, 0, 4, 1, 2};
    for (int t = 0; t < 5; t++) {
        char name[128];
        int k = order[t];
        snprintf(name, sizeof name, "xpcs/twotime/correlation_map/c2_%05d", k + 1);
        put_matrix(fid, name, N, ftype, 1000.0 * (k + 1));
    }
    assert_true(H5Fclose(fid) >= 0);
}

/* Read the whole window of angle a with one call. */
static double *read_all(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel, size_t a)
{
    size_t n = sel->last_frame - sel->first_frame + 1;
    double *out = malloc(n * n * sizeof *out);
    char err[256];
    assert_non_null(out);
    int rc = nlsq_xpcs_read_rows(f, sel, a, 0, n, out, err, sizeof err);
    if (rc != 0) fail_msg("read_rows: %d %s", rc, err);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

static void test_apsu_layout_bins_values(void **state)
{
    (void)state;
    const char *path = tmp_path("apsu.h5");
    const size_t N = 20;
    write_apsu(path, N, H5T_IEEE_F32LE);

    nlsq_xpcs_file *f = tc_open(path);
    assert_int_equal(nlsq_xpcs_layout_of(f), NLSQ_XPCS_LAYOUT_APS_U);
    assert_int_equal(nlsq_xpcs_n_matrices(f), 5);
    assert_int_equal(nlsq_xpcs_n_frames(f), N);
    assert_int_equal(nlsq_xpcs_is_float32(f), 1);

    /* bin b: q index (b-1)/4, phi index (b-1)%4 */
    const double eq[5] = {0.01, 0.01, 0.01, 0.005, 0.01};
    const double ephi[5] = {0, 90, 180, 0, 270};
    for (size_t k = 0; k < 5; k++) {
        double q = -1, phi = -1;
        assert_int_equal(nlsq_xpcs_matrix_info(f, k, &q, &phi), 0);
        assert_true(q == eq[k]);
        assert_true(phi == ephi[k]);
    }
    assert_int_equal(nlsq_xpcs_matrix_info(f, 5, NULL, NULL), NLSQ_XPCS_ERANGE);

    nlsq_xpcs_selection sel;
    tc_select(f, 0.012, 0, SIZE_MAX, &sel);
    assert_true(sel.q == 0.01);
    assert_int_equal(sel.n_angles, 4);
    assert_int_equal(sel.first_frame, 0);
    assert_int_equal(sel.last_frame, N - 1);
    const size_t em[4] = {0, 1, 2, 4};
    const double ep[4] = {0, 90, 180, 270};
    for (size_t a = 0; a < 4; a++) {
        assert_int_equal(sel.matrix[a], em[a]);
        assert_true(sel.phi[a] == ep[a]);
        double *full = read_all(f, &sel, a);
        double base = 1000.0 * (double)(em[a] + 1);
        for (size_t i = 0; i < N; i++)
            for (size_t j = 0; j < N; j++) {
                assert_true(full[i * N + j] == expect_full(base, i, j, 1));
                assert_true(full[i * N + j] == full[j * N + i]);   /* symmetric */
            }
        free(full);
    }
    nlsq_xpcs_selection_free(&sel);
    assert_null(sel.matrix);
    nlsq_xpcs_selection_free(&sel);   /* twice is fine */

    /* nearest of several; q with no processed bin (0.02) is not offered */
    tc_select(f, 0.006, 0, SIZE_MAX, &sel);
    assert_true(sel.q == 0.005);
    assert_int_equal(sel.n_angles, 1);
    assert_int_equal(sel.matrix[0], 3);
    nlsq_xpcs_selection_free(&sel);
    tc_select(f, 0.1, 0, SIZE_MAX, &sel);
    assert_true(sel.q == 0.01);
    nlsq_xpcs_selection_free(&sel);

    /* NAN with several q: ERANGE naming the q values */
    char err[512] = "";
    int rc = nlsq_xpcs_select(f, NAN, 0, SIZE_MAX, &sel, err, sizeof err);
    assert_int_equal(rc, NLSQ_XPCS_ERANGE);
    assert_non_null(strstr(err, "0.01"));
    assert_non_null(strstr(err, "0.005"));
    assert_non_null(strstr(err, path));
    assert_null(sel.matrix);
    nlsq_xpcs_selection_free(&sel);

    nlsq_xpcs_close(f);
    tc_assert_no_h5_objects();
    remove(path);
}

static void test_aps_old_float64_and_natural_keys(void **state)
{
    (void)state;
    const char *path = tmp_path("old.h5");
    const size_t N = 15, M = 11;
    /* 11 pairs: keys c2_1 .. c2_11 (not zero padded: natural order needed);
     * q 0.01 for k < 5 (phi descending), else 0.02 */
    double q[11], phi[11];
    for (size_t k = 0; k < M; k++) {
        q[k] = k < 5 ? 0.01 : 0.02;
        phi[k] = k < 5 ? 40.0 - 10.0 * (double)k : -50.0 + 10.0 * (double)k;
    }
    hid_t fid = new_file(path);
    hsize_t dm[2] = {1, M};
    tc_h5_put(fid, "xpcs/dqlist", 2, dm, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, q);
    tc_h5_put(fid, "xpcs/dphilist", 2, dm, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, phi);
    for (size_t k = 0; k < M; k++) {
        char name[64];
        snprintf(name, sizeof name, "exchange/C2T_all/c2_%zu", k + 1);
        put_matrix(fid, name, N, H5T_IEEE_F64LE, 1000.0 * (double)(k + 1));
    }
    assert_true(H5Fclose(fid) >= 0);

    nlsq_xpcs_file *f = tc_open(path);
    assert_int_equal(nlsq_xpcs_layout_of(f), NLSQ_XPCS_LAYOUT_APS_OLD);
    assert_int_equal(nlsq_xpcs_n_matrices(f), M);
    assert_int_equal(nlsq_xpcs_is_float32(f), 0);
    for (size_t k = 0; k < M; k++) {
        double qq, pp;
        assert_int_equal(nlsq_xpcs_matrix_info(f, k, &qq, &pp), 0);
        assert_true(qq == q[k] && pp == phi[k]);
    }

    nlsq_xpcs_selection sel;
    tc_select(f, 0.019, 0, SIZE_MAX, &sel);
    assert_true(sel.q == 0.02);
    assert_int_equal(sel.n_angles, 6);
    for (size_t a = 0; a < 6; a++) {
        assert_int_equal(sel.matrix[a], 5 + a);   /* phi ascending: 0, 10, ..., 50 */
        assert_true(sel.phi[a] == 10.0 * (double)a);
        double *full = read_all(f, &sel, a);
        double base = 1000.0 * (double)(sel.matrix[a] + 1);   /* key c2_<k+1> */
        for (size_t i = 0; i < N; i++)
            for (size_t j = 0; j < N; j++) assert_true(full[i * N + j] == expect_full(base, i, j, 0));
        free(full);
    }
    nlsq_xpcs_selection_free(&sel);

    tc_select(f, 0.0, 0, SIZE_MAX, &sel);
    assert_true(sel.q == 0.01);
    assert_int_equal(sel.n_angles, 5);
    for (size_t a = 0; a < 5; a++) assert_int_equal(sel.matrix[a], 4 - a);
    nlsq_xpcs_selection_free(&sel);

    nlsq_xpcs_close(f);
    tc_assert_no_h5_objects();
    remove(path);
}

/* One q only: NAN selects it.  Frame windows and row blocks of every size. */
static void check_windows(hid_t ftype, int kind, int layout_old)
{
    const int f32 = kind == 1;
    const char *path = tmp_path("window.h5");
    const size_t N = 23;
    hid_t fid = new_file(path);
    if (layout_old) {
        double q[2] = {0.003, 0.003}, phi[2] = {10, -10};
        hsize_t dm[2] = {1, 2};
        tc_h5_put(fid, "xpcs/dqlist", 2, dm, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, q);
        tc_h5_put(fid, "xpcs/dphilist", 2, dm, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, phi);
        put_matrix(fid, "exchange/C2T_all/c2_00001", N, ftype, 1000);
        put_matrix(fid, "exchange/C2T_all/c2_00002", N, ftype, 2000);
    } else {
        double q[1] = {0.003}, phi[2] = {10, -10};
        int bins[2] = {1, 2};
        hsize_t d1 = 1, d2 = 2;
        tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim0", 1, &d1, H5T_IEEE_F32LE, H5T_NATIVE_DOUBLE, q);
        tc_h5_put(fid, "xpcs/qmap/dynamic_v_list_dim1", 1, &d2, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, phi);
        tc_h5_put(fid, "xpcs/twotime/processed_bins", 1, &d2, H5T_STD_I32LE, H5T_NATIVE_INT, bins);
        put_matrix(fid, "xpcs/twotime/correlation_map/c2_00001", N, ftype, 1000);
        put_matrix(fid, "xpcs/twotime/correlation_map/c2_00002", N, ftype, 2000);
    }
    assert_true(H5Fclose(fid) >= 0);

    nlsq_xpcs_file *f = tc_open(path);
    assert_int_equal(nlsq_xpcs_is_float32(f), f32);
    nlsq_xpcs_selection sel;
    char err[512];

    /* frame window errors */
    assert_int_equal(nlsq_xpcs_select(f, NAN, 5, 4, &sel, err, sizeof err), NLSQ_XPCS_ERANGE);
    assert_true(err[0] != '\0');
    assert_int_equal(nlsq_xpcs_select(f, NAN, 0, N, &sel, err, sizeof err), NLSQ_XPCS_ERANGE);
    assert_int_equal(nlsq_xpcs_select(f, NAN, N, SIZE_MAX, &sel, err, sizeof err),
                     NLSQ_XPCS_ERANGE);

    tc_select(f, NAN, 3, 17, &sel);
    assert_int_equal(sel.n_angles, 2);
    assert_true(fabs(sel.q - 0.003) < 1e-9);
    assert_true(sel.phi[0] == -10 && sel.phi[1] == 10);
    assert_int_equal(sel.matrix[0], 1);
    const size_t F = 3, n = 15;
    double *block = malloc(n * n * sizeof *block);
    assert_non_null(block);
    for (size_t a = 0; a < 2; a++) {
        double base = a == 0 ? 2000 : 1000;
        double *full = read_all(f, &sel, a);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                assert_true(full[i * n + j] == expect_full(base, F + i, F + j, kind));
        /* blocks of every size, from every start, equal the whole read */
        for (size_t nr = 1; nr <= n; nr++) {
            for (size_t r0 = 0; r0 + nr <= n; r0 += (nr > 3 ? nr : 1)) {
                for (size_t t = 0; t < nr * n; t++) block[t] = -1;
                int rc = nlsq_xpcs_read_rows(f, &sel, a, r0, nr, block, err, sizeof err);
                if (rc != 0) fail_msg("read_rows(%zu, %zu): %s", r0, nr, err);
                assert_memory_equal(block, full + r0 * n, nr * n * sizeof *block);
            }
        }
        free(full);
    }
    /* out of range rows / angle */
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 0, 10, 6, block, err, sizeof err),
                     NLSQ_XPCS_ERANGE);
    assert_true(err[0] != '\0');
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 2, 0, 1, block, err, sizeof err),
                     NLSQ_XPCS_ERANGE);
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 0, 15, 0, block, err, sizeof err), 0);
    free(block);
    nlsq_xpcs_selection_free(&sel);

    /* one frame */
    tc_select(f, 0.003, 7, 7, &sel);
    double one = 0;
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 1, 0, 1, &one, err, sizeof err), 0);
    assert_true(one == expect_full(1000, 7, 7, kind));
    nlsq_xpcs_selection_free(&sel);

    nlsq_xpcs_close(f);
    tc_assert_no_h5_objects();
    remove(path);
}

static void test_windows_blocks_f32_apsu(void **s) { (void)s; check_windows(H5T_IEEE_F32LE, 1, 0); }
static void test_windows_blocks_f64_apsu(void **s) { (void)s; check_windows(H5T_IEEE_F64LE, 0, 0); }
static void test_windows_blocks_f32_old(void **s) { (void)s; check_windows(H5T_IEEE_F32BE, 1, 1); }
static void test_windows_blocks_int_old(void **s) { (void)s; check_windows(H5T_STD_I32LE, 2, 1); }

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */
/* ------------------------------------------------------------------------ */

/* Independent scalar forward model, straight from docs/xpcs-model.md. */
static double ref_g2(const nlsq_xpcs_synth_spec *s, double q, double phi, double contrast,
                     double offset, size_t i, size_t j)
{
    const double *x = s->params;
    double eps = fmax(s->dt / 2, 1e-8);
    double cdi = 0, cdj = 0, cgi = 0, cgj = 0, cd = 0, cg = 0, dprev = 0, gprev = 0;
    size_t kmax = i > j ? i : j;
    for (size_t k = 0; k <= kmax; k++) {
        double t = (double)(k + s->k0) * s->dt;
        double ts = t > eps ? t : eps;
        double D = fmax(x[0] * pow(ts, x[1]) + x[2], 1e-10);
        double G = fmax(x[3] * pow(ts, x[4]) + x[5], 1e-10);
        if (k > 0) {
            cd += (dprev + D) / 2;
            cg += (gprev + G) / 2;
        }
        dprev = D;
        gprev = G;
        if (k == i) { cdi = cd; cgi = cg; }
        if (k == j) { cdj = cd; cgj = cg; }
    }
    double A = q * q * s->dt / 2;
    double B = q * s->gap * s->dt / (2 * NLSQ__XPCS_PI);
    double g1 = exp(fmax(-A * sqrt((cdi - cdj) * (cdi - cdj) + 1e-12), -700));
    if (!s->static_mode) {
        double ph = B * cos((x[6] - phi) * NLSQ__XPCS_PI / 180) * sqrt((cgi - cgj) * (cgi - cgj) + 1e-12);
        double sc = fabs(ph) < 1e-4 ? 1 - ph * ph / 6 + ph * ph * ph * ph / 120 : sin(ph) / ph;
        g1 *= sc * sc;
    }
    g1 = fmax(g1, 1e-10);
    return offset + contrast * g1 * g1;
}

static void test_spec_default(void **state)
{
    (void)state;
    nlsq_xpcs_synth_spec s;
    memset(&s, 0xff, sizeof s);
    nlsq_xpcs_synth_spec_default(&s);
    assert_int_equal(s.layout, NLSQ_XPCS_LAYOUT_APS_U);
    assert_int_equal(s.float32, 1);
    assert_int_equal(s.n_frames, 1001);
    assert_int_equal(s.n_angles, 23);
    assert_null(s.phi);
    assert_null(s.contrast);
    assert_null(s.offset);
    assert_true(s.q == 0.01 && s.gap == 2e6 && s.dt == 1e-3 && s.k0 == 0);
    assert_int_equal(s.static_mode, 0);
    const double truth[7] = {2.0e4, -0.2, 100, 1.0e-3, 0.2, 1e-4, 3.0};
    for (int k = 0; k < 7; k++) assert_true(s.params[k] == truth[k]);
    assert_true(s.noise_sigma == 0.01);
    assert_true(s.seed == 42);
    assert_int_equal(s.n_extra_q, 0);
}

static void roundtrip(int layout, int f32, int static_mode, size_t k0, int custom)
{
    const char *path = tmp_path("synth.h5");
    nlsq_xpcs_synth_spec s;
    nlsq_xpcs_synth_spec_default(&s);
    const double phi_c[3] = {-20, 5, 60}, con_c[3] = {0.1, 0.2, 0.3}, off_c[3] = {0.9, 1.0, 1.1};
    s.layout = layout;
    s.float32 = f32;
    s.n_frames = 40;
    s.n_angles = 3;
    s.n_extra_q = 2;
    s.noise_sigma = 0;
    s.static_mode = static_mode;
    s.k0 = k0;
    s.params[0] = 1e6;   /* strong decay over 40 frames */
    s.gap = 2e7;
    if (custom) {
        s.phi = phi_c;
        s.contrast = con_c;
        s.offset = off_c;
    }
    char err[512];
    int rc = nlsq_xpcs_synth_write(path, &s, err, sizeof err);
    if (rc != 0) fail_msg("synth_write: %s", err);
    tc_assert_no_h5_objects();

    nlsq_xpcs_file *f = NULL;
    rc = nlsq_xpcs_open(path, &f, err, sizeof err);
    if (rc != 0) fail_msg("open: %s", err);
    assert_int_equal(nlsq_xpcs_layout_of(f), layout);
    assert_int_equal(nlsq_xpcs_n_matrices(f), 9);
    assert_int_equal(nlsq_xpcs_n_frames(f), 40);
    assert_int_equal(nlsq_xpcs_is_float32(f), f32);

    const double tol = f32 ? 1e-6 : 1e-12;
    double gmin = 1e9, gmax = -1e9;
    for (int u = 0; u < 3; u++) {
        double qu = s.q * (1 + 0.5 * u);
        nlsq_xpcs_selection sel;
        tc_select(f, qu * 1.01, 0, SIZE_MAX, &sel);
        assert_true(fabs(sel.q - qu) < 1e-15);
        assert_int_equal(sel.n_angles, 3);
        for (size_t p = 0; p < 3; p++) {
            double ph = custom ? phi_c[p] : 120.0 * (double)p;
            double con = custom ? con_c[p] : 0.25 + 0.05 * sin(2 * NLSQ__XPCS_PI * (double)p / 3);
            double off = custom ? off_c[p] : 1.0 + 0.01 * cos(2 * NLSQ__XPCS_PI * (double)p / 3);
            assert_true(fabs(sel.phi[p] - ph) < 1e-12);
            assert_int_equal(sel.matrix[p], (size_t)u * 3 + p);
            double *full = read_all(f, &sel, p);
            for (size_t i = 0; i < 40; i++)
                for (size_t j = 0; j < 40; j++) {
                    double g = ref_g2(&s, qu, ph, con, off, i, j);
                    double v = full[i * 40 + j];
                    if (fabs(v - g) > tol)
                        fail_msg("q %d angle %zu (%zu,%zu): %.9g vs %.9g", u, p, i, j, v, g);
                    gmin = fmin(gmin, v);
                    gmax = fmax(gmax, v);
                }
            free(full);
        }
        nlsq_xpcs_selection_free(&sel);
    }
    assert_true(gmax - gmin > 0.05);   /* the data are not flat */
    nlsq_xpcs_close(f);
    tc_assert_no_h5_objects();
    remove(path);
}

static void test_roundtrip_apsu_f32(void **s) { (void)s; roundtrip(NLSQ_XPCS_LAYOUT_APS_U, 1, 0, 0, 0); }
static void test_roundtrip_apsu_f64(void **s) { (void)s; roundtrip(NLSQ_XPCS_LAYOUT_APS_U, 0, 0, 5, 1); }
static void test_roundtrip_old_f32(void **s) { (void)s; roundtrip(NLSQ_XPCS_LAYOUT_APS_OLD, 1, 0, 0, 1); }
static void test_roundtrip_old_f64_static(void **s) { (void)s; roundtrip(NLSQ_XPCS_LAYOUT_APS_OLD, 0, 1, 2, 0); }

/* Raw stored matrix through HDF5 directly. */
static double *raw_matrix(const char *path, const char *name, size_t N)
{
    double *m = malloc(N * N * sizeof *m);
    assert_non_null(m);
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(fid >= 0);
    hid_t d = H5Dopen2(fid, name, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m) >= 0);
    H5Dclose(d);
    H5Fclose(fid);
    return m;
}

/* Noise: stored = g2 + sigma * N(0,1) from the stream seeded by (seed, u, p, i);
 * lower triangle zero; deterministic for a seed; N > 128 crosses write blocks. */
static void test_writer_noise(void **state)
{
    (void)state;
    const char *path = tmp_path("noise.h5"), *path2 = tmp_path("noise2.h5");
    const size_t N = 150;
    nlsq_xpcs_synth_spec s;
    nlsq_xpcs_synth_spec_default(&s);
    s.n_frames = N;
    s.n_angles = 2;
    s.float32 = 0;
    s.seed = 7;
    s.noise_sigma = 0.01;
    char err[512];
    assert_int_equal(nlsq_xpcs_synth_write(path, &s, err, sizeof err), 0);
    assert_int_equal(nlsq_xpcs_synth_write(path2, &s, err, sizeof err), 0);

    const char *name = "xpcs/twotime/correlation_map/c2_00002";   /* angle 1 */
    double *m = raw_matrix(path, name, N), *m2 = raw_matrix(path2, name, N);
    assert_memory_equal(m, m2, N * N * sizeof *m);
    double sum = 0, sum2 = 0;
    size_t cnt = 0;
    double con = 0.25 + 0.05 * sin(NLSQ__XPCS_PI), off = 1.0 + 0.01 * cos(NLSQ__XPCS_PI);
    for (size_t i = 0; i < N; i++) {
        xpcs__rng rng;
        xpcs__rng_seed(&rng, xpcs__mix_seed(7, 0, 1, i));
        for (size_t j = 0; j < N; j++) {
            double v = m[i * N + j];
            if (j < i) {
                assert_true(v == 0.0);
                continue;
            }
            double e = v - ref_g2(&s, s.q, 180.0, con, off, i, j);
            double z = 0.01 * xpcs__rng_normal(&rng);
            if (fabs(e - z) > 1e-12) fail_msg("(%zu,%zu): noise %.6g vs stream %.6g", i, j, e, z);
            sum += e;
            sum2 += e * e;
            cnt++;
        }
    }
    double mean = sum / (double)cnt, sd = sqrt(sum2 / (double)cnt - mean * mean);
    assert_true(fabs(mean) < 5e-4);
    assert_true(fabs(sd - 0.01) < 5e-4);
    free(m2);

    s.seed = 8;
    assert_int_equal(nlsq_xpcs_synth_write(path2, &s, err, sizeof err), 0);
    m2 = raw_matrix(path2, name, N);
    assert_true(memcmp(m, m2, N * N * sizeof *m) != 0);
    free(m);
    free(m2);
    tc_assert_no_h5_objects();
    remove(path);
    remove(path2);
}

TC_MAIN(cmocka_unit_test(test_apsu_layout_bins_values),
        cmocka_unit_test(test_aps_old_float64_and_natural_keys),
        cmocka_unit_test(test_windows_blocks_f32_apsu),
        cmocka_unit_test(test_windows_blocks_f64_apsu),
        cmocka_unit_test(test_windows_blocks_f32_old),
        cmocka_unit_test(test_windows_blocks_int_old), cmocka_unit_test(test_spec_default),
        cmocka_unit_test(test_roundtrip_apsu_f32), cmocka_unit_test(test_roundtrip_apsu_f64),
        cmocka_unit_test(test_roundtrip_old_f32), cmocka_unit_test(test_roundtrip_old_f64_static),
        cmocka_unit_test(test_writer_noise))
