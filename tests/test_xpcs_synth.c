/* The in-memory generator (nlsq_xpcs_synth_rows) must give exactly the rows
 * that a file written by nlsq_xpcs_synth_write gives back through the reader,
 * and the file must carry the truth it was generated from. */
#include "common_xpcs.h"

#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"

static void path_in_tmp(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", NLSQ_TEST_TMPDIR, name);
}

static void check_layout(int layout, int float32)
{
    char path[512], err[256];
    path_in_tmp(path, sizeof path, float32 ? "synth_rows32.h5" : "synth_rows64.h5");
    nlsq_xpcs_synth_spec s = tc_synth_spec(37, 3, 99);
    s.layout = layout;
    s.float32 = float32;
    s.n_extra_q = 1;
    tc_synth_write(path, &s);

    nlsq_xpcs_file *f = tc_open(path);
    nlsq_xpcs_selection sel;
    assert_int_equal(nlsq_xpcs_select(f, s.q, 0, SIZE_MAX, &sel, err, sizeof err), 0);
    assert_int_equal(sel.n_angles, 3);
    const size_t N = s.n_frames;
    double *a_file = malloc(N * N * sizeof(double)), *a_mem = malloc(N * N * sizeof(double));
    assert_non_null(a_file);
    assert_non_null(a_mem);
    for (size_t a = 0; a < 3; a++) {
        assert_int_equal(nlsq_xpcs_read_rows(f, &sel, a, 0, N, a_file, err, sizeof err), 0);
        /* whole matrix at once, and in uneven blocks */
        assert_int_equal(nlsq_xpcs_synth_rows(&s, a, 0, N, a_mem, err, sizeof err), 0);
        assert_memory_equal(a_file, a_mem, N * N * sizeof(double));
        for (size_t r0 = 0; r0 < N; r0 += 10) {
            size_t nr = N - r0 < 10 ? N - r0 : 10;
            assert_int_equal(nlsq_xpcs_synth_rows(&s, a, r0, nr, a_mem, err, sizeof err), 0);
            assert_memory_equal(a_file + r0 * N, a_mem, nr * N * sizeof(double));
        }
    }
    double phys[7], con[3], off[3];
    assert_int_equal(nlsq_xpcs_read_truth(f, phys, con, off, 3, err, sizeof err), 0);
    for (int k = 0; k < 7; k++) assert_true(phys[k] == s.params[k]);
    for (int a = 0; a < 3; a++) {
        double x = 2 * 3.14159265358979323846 * a / 3.0;
        assert_true(fabs(con[a] - (0.25 + 0.05 * sin(x))) < 1e-15);
        assert_true(fabs(off[a] - (1.0 + 0.01 * cos(x))) < 1e-15);
    }
    /* wrong count -> EFORMAT, named */
    assert_int_equal(nlsq_xpcs_read_truth(f, phys, con, off, 5, err, sizeof err), NLSQ_XPCS_EFORMAT);
    assert_non_null(strstr(err, "contrast"));
    free(a_file);
    free(a_mem);
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
    remove(path);
}

static void test_rows_match_file_apsu32(void **st) { (void)st; check_layout(NLSQ_XPCS_LAYOUT_APS_U, 1); }
static void test_rows_match_file_old64(void **st) { (void)st; check_layout(NLSQ_XPCS_LAYOUT_APS_OLD, 0); }

static void test_bad_args(void **st)
{
    (void)st;
    char err[256];
    nlsq_xpcs_synth_spec s;
    nlsq_xpcs_synth_spec_default(&s);
    s.n_frames = 10;
    s.n_angles = 2;
    double buf[100];
    assert_int_equal(nlsq_xpcs_synth_rows(&s, 2, 0, 1, buf, err, sizeof err), NLSQ_XPCS_ERANGE);
    assert_int_equal(nlsq_xpcs_synth_rows(&s, 0, 5, 6, buf, err, sizeof err), NLSQ_XPCS_ERANGE);
    assert_int_equal(nlsq_xpcs_synth_rows(NULL, 0, 0, 1, buf, err, sizeof err), NLSQ_EINVAL);
    s.dt = -1;
    assert_true(nlsq_xpcs_synth_rows(&s, 0, 0, 1, buf, err, sizeof err) < 0);
    assert_true(err[0] != '\0');
}

TC_MAIN(cmocka_unit_test(test_rows_match_file_apsu32),
        cmocka_unit_test(test_rows_match_file_old64), cmocka_unit_test(test_bad_args))
