/*
 * test_xpcs_layouts.c - files laid out as the APS 8-ID-I pipeline writes
 * them (docs/xpcs.md "Input files"), written here with the HDF5 C API, read
 * with nlsq_xpcs and fitted with nlsq_lm.
 *
 * Every file has a q-phi partition of 3 q x 5 phi (phi 10, 55, 100, 160,
 * 220 degrees: not symmetric, so the sign of phi0 is identified); the
 * matrices of the fitted q (0.01) carry the laminar-flow model of a known
 * truth plus noise (nlsq_xpcs_synth_rows), those of a decoy q (0.005) other
 * data.  Variants:
 *   lzf          every matrix LZF-compressed, chunks (N, N) as boost_corr
 *   filter       another compression: LZ4 (32004, Debian's hdf5-filter-plugin,
 *                loaded by HDF5 from its plugin folder) or deflate (gzip)
 *   empty bin    APS-U: bin (q 0.01, phi 160) empty, so the labels in
 *                processed_bins are compressed and go through
 *                dynamic_index_mapping; the file holds 4 angles at q 0.01
 *   transposed   APS-U: map_names ("phi", "q"), axes swapped
 *   subset       APS old: qphi_bin_to_process lists the 10 bins that have
 *                a matrix, out of order, shape (M,) or (M, 1)
 *   lower        matrices stored in the lower triangle
 *   dt           frame_time (or exposure_period) * stride * average stored
 * Checks: the angles reported are exactly those the file holds; dt read
 * from the file; every physical parameter within 4 sigma of the truth.
 * Storage that is not data (never written, virtual with a missing source,
 * missing or short external file, all NaN, a filter HDF5 lacks) is refused
 * with one line naming the dataset.
 */

#include "common_h5.h"

#include "common_xpcs.h"

static char *tmp_path(const char *name) { return tc_tmp_name("test_xpcs_layouts_", name); }

static void put(hid_t fid, const char *name, int rank, const hsize_t *dims, hid_t ftype,
                const double *data)
{
    tc_h5_put(fid, name, rank, dims, ftype, H5T_NATIVE_DOUBLE, data);
}

#define NQ 3
#define NPHI 5
#define NFR 100
#define TARGET_IQ 1
#define DECOY_IQ 0
#define EMPTY_IPHI 3
#define LZF_ID 32000

static const double k_q[NQ] = {0.005, 0.01, 0.02};
static const double k_phi[NPHI] = {10, 55, 100, 160, 220};
static const double k_truth[7] = {2.0e4, -0.2, 100.0, 1.0e-3, 0.2, 1e-4, 3.0};
static const double k_dt = 0.02, k_gap = 2e6;

typedef struct variant {
    int layout;       /* NLSQ_XPCS_LAYOUT_APS_U or _APS_OLD */
    int lzf, lower, empty_bin, transposed, subset, bins_col, store_dt;
    int filter;       /* besides lzf: an HDF5 filter id (0 none), chunks (N, N) */
} variant;

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */

static void put1(hid_t fid, const char *name, size_t n, hid_t ftype, const double *data)
{
    hsize_t d = n;
    put(fid, name, 1, &d, ftype, data);
}

/* Fixed-length strings, as h5py writes a list of bytes. */
static void put_names(hid_t fid, const char *name, const char *a, const char *b)
{
    char buf[2][8] = {{0}};
    snprintf(buf[0], sizeof buf[0], "%s", a);
    snprintf(buf[1], sizeof buf[1], "%s", b);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 8);
    hsize_t two = 2;
    hid_t sp = H5Screate_simple(1, &two, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(fid, name, t, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0 && H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp);
    H5Tclose(t);
}

/* The synthetic spec of the fitted q (angles = the phi held there). */
static nlsq_xpcs_synth_spec target_spec(const double *phi, size_t n_angles, double q)
{
    nlsq_xpcs_synth_spec s = tc_synth_spec(NFR, n_angles, 42);
    s.phi = phi;
    s.q = q;
    s.gap = k_gap;
    s.dt = k_dt;
    memcpy(s.params, k_truth, sizeof k_truth);
    return s;
}

/* Matrix of angle a of spec s: the upper (or lower) triangle of the full
 * rows, the other triangle zero; float32; LZF with chunks (N, N) if lzf. */
static void put_matrix(hid_t fid, const char *name, const nlsq_xpcs_synth_spec *s, size_t a,
                       const variant *v)
{
    double *m = malloc(sizeof(double) * NFR * NFR);
    char err[256];
    assert_non_null(m);
    assert_int_equal(nlsq_xpcs_synth_rows(s, a, 0, NFR, m, err, sizeof err), 0);
    for (size_t i = 0; i < NFR; i++)
        for (size_t j = 0; j < NFR; j++)
            if (v->lower ? j > i : j < i) m[i * NFR + j] = 0.0;
    hsize_t dims[2] = {NFR, NFR};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (v->lzf || v->filter) {
        assert_true(H5Pset_chunk(dcpl, 2, dims) >= 0);
        if (v->filter == H5Z_FILTER_DEFLATE) assert_true(H5Pset_deflate(dcpl, 4) >= 0);
        else assert_true(H5Pset_filter(dcpl, v->lzf ? LZF_ID : (H5Z_filter_t)v->filter,
                                       H5Z_FLAG_OPTIONAL, 0, NULL) >= 0);
    }
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(fid, name, H5T_IEEE_F32LE, sp, lcpl, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m) >= 0);
    if (v->lzf || v->filter) /* really compressed (the zero triangle at least shrinks) */
        assert_true(H5Dget_storage_size(d) < (hsize_t)NFR * NFR * 4 * 3 / 4);
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    free(m);
}

/* The frame time as three factors whose product is k_dt. */
static void put_dt(hid_t fid, const variant *v)
{
    double ft = k_dt / 6, stride = 2, avg = 3;
    if (v->layout == NLSQ_XPCS_LAYOUT_APS_U) {
        put1(fid, "entry/instrument/detector_1/frame_time", 1, H5T_IEEE_F64LE, &ft);
        put1(fid, "xpcs/twotime/config/stride_frame", 1, H5T_STD_I64LE, &stride);
        put1(fid, "xpcs/twotime/config/avg_frame", 1, H5T_STD_I64LE, &avg);
    } else {   /* (1, 1) arrays, as the old files store scalars */
        hsize_t one[2] = {1, 1};
        put(fid, "measurement/instrument/detector/exposure_period", 2, one, H5T_IEEE_F64LE, &ft);
        put(fid, "xpcs/stride_frames", 2, one, H5T_STD_U64LE, &stride);
        put(fid, "xpcs/avg_frames", 2, one, H5T_STD_U64LE, &avg);
    }
}

/* The matrices of the file, in processing order: (iq, iphi) pairs, the
 * target q's angles first, decoys after, out of natural order on purpose. */
static size_t bin_order(const variant *v, size_t *iq, size_t *iphi)
{
    size_t m = 0;
    static const size_t order[NPHI] = {2, 0, 4, 1, 3};
    for (size_t t = 0; t < NPHI; t++) {
        if (v->empty_bin && order[t] == EMPTY_IPHI) continue;
        iq[m] = TARGET_IQ;
        iphi[m++] = order[t];
    }
    for (size_t p = 0; p < NPHI; p++) {
        iq[m] = DECOY_IQ;
        iphi[m++] = p;
    }
    return m;
}

/* APS-U partition: value lists, map_names, num_pts, the mapping of the
 * compressed labels; returns the label of each (iq, iphi) in *label. */
static void put_apsu_qmap(hid_t fid, const variant *v, size_t label[NQ][NPHI])
{
    double map[NQ * NPHI], npts[2];
    size_t nl = 0;
    for (size_t iq = 0; iq < NQ; iq++)
        for (size_t ip = 0; ip < NPHI; ip++) {
            label[iq][ip] = 0;
            if (v->empty_bin && iq == TARGET_IQ && ip == EMPTY_IPHI) continue;
            size_t nat = v->transposed ? ip * NQ + iq : iq * NPHI + ip;
            map[nl++] = (double)nat;
        }
    /* labels follow the natural index order: label l <-> map[l - 1] */
    for (size_t l = 0; l < nl; l++) {
        size_t nat = (size_t)map[l];
        size_t iq = v->transposed ? nat % NQ : nat / NPHI, ip = v->transposed ? nat / NQ : nat % NPHI;
        label[iq][ip] = l + 1;
    }
    put1(fid, "xpcs/qmap/dynamic_v_list_dim0", v->transposed ? NPHI : NQ, H5T_IEEE_F64LE,
         v->transposed ? k_phi : k_q);
    put1(fid, "xpcs/qmap/dynamic_v_list_dim1", v->transposed ? NQ : NPHI, H5T_IEEE_F64LE,
         v->transposed ? k_q : k_phi);
    put_names(fid, "xpcs/qmap/map_names", v->transposed ? "phi" : "q", v->transposed ? "q" : "phi");
    npts[0] = v->transposed ? NPHI : NQ;
    npts[1] = v->transposed ? NQ : NPHI;
    put1(fid, "xpcs/qmap/dynamic_num_pts", 2, H5T_STD_I64LE, npts);
    put1(fid, "xpcs/qmap/dynamic_index_mapping", nl, H5T_STD_I64LE, map);
}

/* APS old lists: every bin (natural order m = iq * NPHI + iphi), 1 x M. */
static void put_old_lists(hid_t fid)
{
    double ql[NQ * NPHI], pl[NQ * NPHI];
    for (size_t m = 0; m < NQ * NPHI; m++) {
        ql[m] = k_q[m / NPHI];
        pl[m] = k_phi[m % NPHI];
    }
    hsize_t dims[2] = {1, NQ * NPHI};
    put(fid, "xpcs/dqlist", 2, dims, H5T_IEEE_F64LE, ql);
    put(fid, "xpcs/dphilist", 2, dims, H5T_IEEE_F64LE, pl);
}

/* The bin list of the matrices (processed_bins / qphi_bin_to_process). */
static void put_bins(hid_t fid, const variant *v, const double *bins, size_t m)
{
    if (v->layout == NLSQ_XPCS_LAYOUT_APS_U) {
        put1(fid, "xpcs/twotime/processed_bins", m, H5T_STD_I64LE, bins);
    } else if (v->bins_col) {
        hsize_t dims[2] = {m, 1};
        put(fid, "xpcs/qphi_bin_to_process", 2, dims, H5T_STD_U64LE, bins);
    } else {
        put1(fid, "xpcs/qphi_bin_to_process", m, H5T_STD_U64LE, bins);
    }
}

/* Write a file of variant v; the truth spec's angles go to held_phi. */
static size_t write_variant(const char *path, const variant *v, double *held_phi)
{
    size_t iq[2 * NPHI], iphi[2 * NPHI], label[NQ][NPHI], na = 0;
    size_t m = bin_order(v, iq, iphi);
    double bins[2 * NPHI], decoy_phi[NPHI];
    for (size_t k = 0; k < m; k++)
        if (iq[k] == TARGET_IQ) held_phi[na++] = k_phi[iphi[k]];
    memcpy(decoy_phi, k_phi, sizeof decoy_phi);
    nlsq_xpcs_synth_spec st = target_spec(held_phi, na, k_q[TARGET_IQ]);
    nlsq_xpcs_synth_spec sd = target_spec(decoy_phi, NPHI, k_q[DECOY_IQ]);
    sd.params[0] = 5e3;   /* other dynamics: a decoy fitted by mistake would show */
    sd.seed = 99;

    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(fid >= 0);
    if (v->layout == NLSQ_XPCS_LAYOUT_APS_U) put_apsu_qmap(fid, v, label);
    else put_old_lists(fid);
    const char *fmt = v->layout == NLSQ_XPCS_LAYOUT_APS_U ? "xpcs/twotime/correlation_map/c2_%05zu"
                                                           : "exchange/C2T_all/g2_%05zu";
    size_t ta = 0;
    for (size_t k = 0; k < m; k++) {
        char name[96];
        snprintf(name, sizeof name, fmt, k + 1);
        int target = iq[k] == TARGET_IQ;
        put_matrix(fid, name, target ? &st : &sd, target ? ta++ : iphi[k], v);
        bins[k] = v->layout == NLSQ_XPCS_LAYOUT_APS_U ? (double)label[iq[k]][iphi[k]]
                                                      : (double)(iq[k] * NPHI + iphi[k] + 1);
    }
    if (v->layout == NLSQ_XPCS_LAYOUT_APS_U || v->subset) put_bins(fid, v, bins, m);
    if (v->store_dt) put_dt(fid, v);
    assert_true(H5Fclose(fid) >= 0);
    return na;
}

/* ------------------------------------------------------------------------ */
/* Reading and fitting                                                       */
/* ------------------------------------------------------------------------ */

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fit q = 0.01 of path; the selection must hold exactly the na angles
 * held_phi; every physical parameter within 4 sigma of the truth. */
static void fit_and_check(const char *path, const double *held_phi, size_t na, int dt_stored)
{
    nlsq_xpcs_file *f = NULL;
    char err[512], src[512];
    int rc = nlsq_xpcs_open(path, &f, err, sizeof err);
    if (rc != 0) fail_msg("open: %s", err);
    double dt = 0;
    rc = nlsq_xpcs_file_dt(f, &dt, src, sizeof src);
    if (dt_stored) {
        assert_int_equal(rc, 0);
        assert_true(fabs(dt - k_dt) <= 1e-12 * k_dt);
    } else {
        assert_int_equal(rc, NLSQ_XPCS_EFORMAT);
        assert_true(isnan(dt) && strstr(src, "no '/") != NULL);
        dt = k_dt;
    }
    nlsq_xpcs_selection sel;
    rc = nlsq_xpcs_select(f, 0.0101, 0, SIZE_MAX, &sel, err, sizeof err);
    if (rc != 0) fail_msg("select: %s", err);
    assert_true(sel.q == k_q[TARGET_IQ]);
    double want[NPHI];
    memcpy(want, held_phi, na * sizeof *want);
    qsort(want, na, sizeof *want, dbl_cmp);
    assert_int_equal(sel.n_angles, na);
    for (size_t a = 0; a < na; a++) assert_true(sel.phi[a] == want[a]);
    assert_int_equal(nlsq_xpcs_check_data(f, &sel, err, sizeof err), 0);

    nlsq_xpcs_source source;
    assert_int_equal(nlsq_xpcs_file_source(f, &sel, &source), 0);
    nlsq_xpcs_config cfg = tc_config(sel.q, k_gap, dt);
    nlsq_xpcs_model *m = NULL;
    rc = nlsq_xpcs_model_create(&source, &cfg, &m, err, sizeof err);
    if (rc != 0) fail_msg("model: %s", err);
    size_t p = nlsq_xpcs_model_n_params(m);
    double *x = malloc(p * sizeof *x), *cov = malloc(p * p * sizeof *cov);
    assert_non_null(x);
    assert_non_null(cov);
    assert_int_equal(nlsq_xpcs_initial_guess(m, NULL, x, NULL, 0), 0);
    nlsq_result res;
    assert_true(tc_xpcs_lm(m, 2, x, cov, &res) > 0);
    double worst = 0;
    print_message("    %s: %zu angles, chi2/dof %.4f, %zu iterations\n", path, na,
                  2 * res.cost / (double)(res.n_rows - p), res.iterations);
    for (size_t k = 0; k < 7; k++) {
        double sd = sqrt(cov[k * p + k]), dev = (x[k] - k_truth[k]) / sd;
        print_message("    %-18s %14.6g +- %-10.3g truth %-10g dev %+.2f sigma\n",
                      nlsq_xpcs_param_name(k), x[k], sd, k_truth[k], dev);
        worst = isfinite(dev) && fabs(dev) > worst ? fabs(dev) : isfinite(dev) ? worst : INFINITY;
    }
    assert_true(worst < 4.0);
    free(x);
    free(cov);
    nlsq_xpcs_model_free(m);
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
}

static void run_variant(const char *name, const variant *v, size_t expect_angles)
{
    const char *path = tmp_path(name);
    double held[NPHI];
    if (v->lzf) assert_int_equal(nlsq_xpcs_register_filters(), 0);   /* to write LZF here */
    size_t na = write_variant(path, v, held);
    assert_int_equal(na, expect_angles);
    fit_and_check(path, held, na, v->store_dt);
    remove(path);
}

/* ------------------------------------------------------------------------ */
/* Tests: layouts that fit                                                   */
/* ------------------------------------------------------------------------ */

static void apsu_lzf_dt(void **state)
{
    (void)state;
    variant v = {.layout = NLSQ_XPCS_LAYOUT_APS_U, .lzf = 1, .store_dt = 1};
    run_variant("apsu_lzf.h5", &v, NPHI);
}

/* Filters HDF5 gets elsewhere: LZ4 from Debian's plugin folder (no
 * HDF5_PLUGIN_PATH), deflate built in. */
static void other_filters(void **state)
{
    (void)state;
    if (H5Zfilter_avail(32004) <= 0) fail_msg("LZ4 plugin missing: run scripts/deps.sh (hdf5-filter-plugin)");
    variant v = {.layout = NLSQ_XPCS_LAYOUT_APS_U, .filter = 32004, .empty_bin = 1, .store_dt = 1};
    run_variant("apsu_lz4.h5", &v, NPHI - 1);
    variant w = {.layout = NLSQ_XPCS_LAYOUT_APS_OLD, .filter = H5Z_FILTER_DEFLATE, .subset = 1};
    run_variant("old_gzip.h5", &w, NPHI);
}

static void apsu_empty_bin(void **state)
{
    (void)state;
    variant v = {.layout = NLSQ_XPCS_LAYOUT_APS_U, .empty_bin = 1, .store_dt = 1};
    run_variant("apsu_empty.h5", &v, NPHI - 1);
}

static void apsu_transposed_lower(void **state)
{
    (void)state;
    variant v = {.layout = NLSQ_XPCS_LAYOUT_APS_U, .empty_bin = 1, .transposed = 1, .lower = 1};
    run_variant("apsu_transposed.h5", &v, NPHI - 1);
}

static void old_subset(void **state)
{
    (void)state;
    variant v = {.layout = NLSQ_XPCS_LAYOUT_APS_OLD, .subset = 1, .store_dt = 1};
    run_variant("old_subset.h5", &v, NPHI);
    variant w = {.layout = NLSQ_XPCS_LAYOUT_APS_OLD, .subset = 1, .bins_col = 1, .lzf = 1};
    run_variant("old_subset_col.h5", &w, NPHI);
}

/* Lower-triangle storage reads exactly as upper storage. */
static void lower_equals_upper(void **state)
{
    (void)state;
    variant up = {.layout = NLSQ_XPCS_LAYOUT_APS_U}, lo = up;
    lo.lower = 1;
    const char *pu = tmp_path("upper.h5"), *pl = tmp_path("lower.h5");
    double held[NPHI];
    write_variant(pu, &up, held);
    write_variant(pl, &lo, held);
    nlsq_xpcs_file *fu = NULL, *fl = NULL;
    char err[512];
    assert_int_equal(nlsq_xpcs_open(pu, &fu, err, sizeof err), 0);
    assert_int_equal(nlsq_xpcs_open(pl, &fl, err, sizeof err), 0);
    nlsq_xpcs_selection su, sl;
    assert_int_equal(nlsq_xpcs_select(fu, 0.01, 7, 90, &su, err, sizeof err), 0);
    assert_int_equal(nlsq_xpcs_select(fl, 0.01, 7, 90, &sl, err, sizeof err), 0);
    const size_t n = 84, rows = 13;
    double *a = malloc(n * rows * sizeof *a), *b = malloc(n * rows * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    for (size_t r0 = 0; r0 < n; r0 += rows) {
        size_t nr = n - r0 < rows ? n - r0 : rows;
        assert_int_equal(nlsq_xpcs_read_rows(fu, &su, 2, r0, nr, a, err, sizeof err), 0);
        assert_int_equal(nlsq_xpcs_read_rows(fl, &sl, 2, r0, nr, b, err, sizeof err), 0);
        assert_memory_equal(a, b, nr * n * sizeof *a);
        for (size_t i = 0; i < nr * n; i++) assert_true(a[i] > 0.5);   /* never the zero triangle */
    }
    free(a);
    free(b);
    nlsq_xpcs_selection_free(&su);
    nlsq_xpcs_selection_free(&sl);
    nlsq_xpcs_close(fu);
    nlsq_xpcs_close(fl);
    remove(pu);
    remove(pl);
}

/* ------------------------------------------------------------------------ */
/* Tests: what is refused                                                    */
/* ------------------------------------------------------------------------ */

static void expect_open_fail(const char *path, const char *s1, const char *s2)
{
    nlsq_xpcs_file *f = NULL;
    char err[512] = "";
    int rc = nlsq_xpcs_open(path, &f, err, sizeof err);
    assert_int_equal(rc, NLSQ_XPCS_EFORMAT);
    assert_null(f);
    print_message("    %s\n", err);
    if (!strstr(err, s1) || (s2 && !strstr(err, s2))) fail_msg("message lacks '%s': %s", s1, err);
    assert_null(strchr(err, '\n'));
}

/* A minimal APS-U file with one 8 x 8 matrix made by make(). */
static void one_matrix_file(const char *path, void (*make)(hid_t fid, const char *name, void *),
                            void *ctx)
{
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(fid >= 0);
    double q = 0.01, phi = 0, bin = 1;
    put1(fid, "xpcs/qmap/dynamic_v_list_dim0", 1, H5T_IEEE_F64LE, &q);
    put1(fid, "xpcs/qmap/dynamic_v_list_dim1", 1, H5T_IEEE_F64LE, &phi);
    put1(fid, "xpcs/twotime/processed_bins", 1, H5T_STD_I64LE, &bin);
    hid_t g = H5Gcreate2(fid, "xpcs/twotime/correlation_map", H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    H5Gclose(g);
    make(fid, "xpcs/twotime/correlation_map/c2_00001", ctx);
    assert_true(H5Fclose(fid) >= 0);
}

/* An 8 x 8 float32 dataset with creation properties dcpl, written with data
 * unless data is NULL. */
static void create8(hid_t fid, const char *name, hid_t dcpl, const double *data)
{
    hsize_t dims[2] = {8, 8};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(fid, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    if (data) assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
}

static void make_unwritten(hid_t fid, const char *name, void *ctx)
{
    (void)ctx;
    create8(fid, name, H5P_DEFAULT, NULL);
}

static void make_virtual(hid_t fid, const char *name, void *ctx)
{
    hsize_t dims[2] = {8, 8};
    hid_t sp = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_virtual(dcpl, sp, (const char *)ctx, "/c2", sp) >= 0);
    create8(fid, name, dcpl, NULL);
    H5Pclose(dcpl);
    H5Sclose(sp);
}

static void make_external(hid_t fid, const char *name, void *ctx)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_external(dcpl, (const char *)ctx, 0, 8 * 8 * 4) >= 0);
    create8(fid, name, dcpl, NULL);
    H5Pclose(dcpl);
}

static void make_nan(hid_t fid, const char *name, void *ctx)
{
    (void)ctx;
    double m[64];
    for (int i = 0; i < 64; i++) m[i] = (i % 9 == 0) ? 1.0 : NAN;   /* only the diagonal */
    create8(fid, name, H5P_DEFAULT, m);
}

static size_t pass_filter(unsigned flags, size_t ncd, const unsigned cd[], size_t nbytes,
                          size_t *buf_size, void **buf)
{
    (void)flags, (void)ncd, (void)cd, (void)buf_size, (void)buf;
    return nbytes;
}

#define TEST_FILTER_ID 32767
static const H5Z_class2_t test_filter = {H5Z_CLASS_T_VERS, (H5Z_filter_t)TEST_FILTER_ID, 1, 1,
                                         "nlsq test filter", NULL, NULL, pass_filter};

static void make_filtered(hid_t fid, const char *name, void *ctx)
{
    (void)ctx;
    double m[64];
    for (int i = 0; i < 64; i++) m[i] = 1.0;
    hsize_t dims[2] = {8, 8};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 2, dims) >= 0);
    assert_true(H5Pset_filter(dcpl, TEST_FILTER_ID, H5Z_FLAG_MANDATORY, 0, NULL) >= 0);
    create8(fid, name, dcpl, m);
    H5Pclose(dcpl);
}

static void not_data_refused(void **state)
{
    (void)state;
    const char *path = tmp_path("notdata.h5");
    const char *c2 = "xpcs/twotime/correlation_map/c2_00001";

    one_matrix_file(path, make_unwritten, NULL);
    expect_open_fail(path, "never written", c2);

    one_matrix_file(path, make_virtual, tmp_path("no_such_source.h5"));
    expect_open_fail(path, "virtual", c2);

    const char *raw = tmp_path("ext.raw");
    remove(raw);
    one_matrix_file(path, make_external, (void *)raw);
    expect_open_fail(path, "missing", c2);
    FILE *fp = fopen(raw, "wb");   /* 100 of the 256 bytes */
    assert_non_null(fp);
    for (int i = 0; i < 100; i++) fputc(0, fp);
    fclose(fp);
    expect_open_fail(path, "fewer than", c2);
    remove(raw);

    assert_true(H5Zregister(&test_filter) >= 0);
    one_matrix_file(path, make_filtered, NULL);
    assert_true(H5Zunregister(TEST_FILTER_ID) >= 0);
    expect_open_fail(path, "filter 32767", c2);

    /* all NaN off the diagonal: opens, then refused by the data check */
    one_matrix_file(path, make_nan, NULL);
    nlsq_xpcs_file *f = NULL;
    char err[512];
    assert_int_equal(nlsq_xpcs_open(path, &f, err, sizeof err), 0);
    nlsq_xpcs_selection sel;
    assert_int_equal(nlsq_xpcs_select(f, NAN, 0, SIZE_MAX, &sel, err, sizeof err), 0);
    assert_int_equal(nlsq_xpcs_check_data(f, &sel, err, sizeof err), NLSQ_XPCS_EFORMAT);
    print_message("    %s\n", err);
    assert_non_null(strstr(err, c2));
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
    remove(path);
}

/* A fresh empty-bin APS-U file at path with dataset name replaced: by n
 * integers (vals), or by two strings (s0, s1) when vals is NULL. */
static void with_replaced(const char *path, const char *name, const double *vals, size_t n,
                          const char *s0, const char *s1)
{
    double held[NPHI];
    variant v = {.layout = NLSQ_XPCS_LAYOUT_APS_U, .empty_bin = 1};
    write_variant(path, &v, held);
    hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(fid >= 0 && H5Ldelete(fid, name, H5P_DEFAULT) >= 0);
    if (vals) put1(fid, name, n, H5T_STD_I64LE, vals);
    else put_names(fid, name, s0, s1);
    assert_true(H5Fclose(fid) >= 0);
}

/* Bad partitions: num_pts disagreeing, labels beyond the mapping, (x, y) maps. */
static void bad_partitions(void **state)
{
    (void)state;
    const char *path = tmp_path("badpart.h5");
    const double npts[2] = {NQ, NPHI + 1}, map[3] = {0, 1, 2};
    with_replaced(path, "xpcs/qmap/dynamic_num_pts", npts, 2, NULL, NULL);
    expect_open_fail(path, "dynamic_num_pts", NULL);
    /* 3 labels, but processed_bins uses up to 14 */
    with_replaced(path, "xpcs/qmap/dynamic_index_mapping", map, 3, NULL, NULL);
    expect_open_fail(path, "processed_bins", "1..3");
    with_replaced(path, "xpcs/qmap/map_names", NULL, 0, "x", "y");
    expect_open_fail(path, "not (q, phi)", NULL);
    remove(path);
}

TC_MAIN(cmocka_unit_test(apsu_lzf_dt), cmocka_unit_test(other_filters),
        cmocka_unit_test(apsu_empty_bin), cmocka_unit_test(apsu_transposed_lower),
        cmocka_unit_test(old_subset), cmocka_unit_test(lower_equals_upper),
        cmocka_unit_test(not_data_refused), cmocka_unit_test(bad_partitions))
