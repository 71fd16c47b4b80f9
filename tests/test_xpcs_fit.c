/*
 * test_xpcs_fit.c - parameter recovery with the core solver (nlsq_lm) on
 * small synthetic XPCS data.
 *
 * Data are generated here with the naive reference model of xpcs-model.md
 * (written again below, independently of src/xpcs/model.c) and a seeded
 * Gaussian RNG: truth = the benchmark truth of docs/xpcs-model.md, noise sd 0.01, symmetric
 * matrices (upper-triangle noise mirrored, as the reader rebuilds them).
 *
 * Two deliberate departures from the 23M-point benchmark, to keep the test
 * small AND well posed:
 *  - dt = 2e-2 (not 1e-3): with only N = 120 frames, dt = 1e-3 barely
 *    resolves the decay and the shear, and the 7 physical parameters are
 *    then nearly undetermined;
 *  - angles 10, 55, 100, 160 degrees, not p * 360 / P.  With the equally
 *    spaced set, phi -> -phi permutes the angles, and since contrast and
 *    offset are free per angle, (phi0, contrast_p, offset_p) and (-phi0,
 *    contrast_{P-p}, offset_{P-p}) give exactly the same g2: the sign of
 *    phi0 is then not identifiable and LM may legitimately find -phi0.
 *
 * Tests (cmocka):
 *   recover_laminar   from the benchmark's start (D0 1e4, alpha 0, ...) and the
 *                     data-driven contrast/offset start: converged, every
 *                     parameter within 4 sigma of the truth, chi2/dof ~ 1
 *   threads_bitwise   the same fit with 1 and 2 threads: identical x
 *   full_triangle     both triangles: the same minimiser (the full cost is
 *                     twice the upper one), errors smaller by sqrt(2)
 *   recover_static    static mode (3 physical parameters)
 *   nan_dof           NaN entries: excluded, fit unaffected
 *   file_roundtrip    synthetic HDF5 file (nlsq_xpcs_synth_write) -> reader
 *                     -> file source, cached and streamed: same fit
 */

#include "common_xpcs.h"

#include "xpcs_reference.h"

/* ======================================================================== */
/* Problem set-up                                                            */
/* ======================================================================== */

#define P_ANG 4
#define N_FR 120

static const double k_truth[7] = {2.0e4, -0.2, 100.0, 1.0e-3, 0.2, 1e-4, 3.0};
static const double k_phi[P_ANG] = {10.0, 55.0, 100.0, 160.0};

typedef struct fit_data {
    ref_model rm;
    size_t n, P;
    double phi[P_ANG];
    double truth[7 + 2 * P_ANG];
    double *c2;           /* P * n * n */
} fit_data;

static void make_data(fit_data *fd, int static_mode, uint64_t seed)
{
    memset(fd, 0, sizeof *fd);
    fd->rm = (ref_model){0.01, 2e6, 2e-2, 0, static_mode};
    fd->n = N_FR;
    fd->P = P_ANG;
    memcpy(fd->phi, k_phi, sizeof k_phi);
    size_t np = static_mode ? 3 : 7, n = fd->n;
    for (size_t k = 0; k < np; k++) fd->truth[k] = k_truth[k];
    for (size_t p = 0; p < fd->P; p++) {
        double u = 2.0 * REF_PI * (double)p / (double)fd->P;
        fd->truth[np + 2 * p] = 0.25 + 0.05 * sin(u);
        fd->truth[np + 2 * p + 1] = 1.0 + 0.01 * cos(u);
    }
    fd->c2 = malloc(sizeof(double) * fd->P * n * n);
    double *CD = malloc(sizeof(double) * n), *CG = malloc(sizeof(double) * n);
    assert_true(fd->c2 && CD && CG);
    ref_matrices(&fd->rm, fd->truth, fd->P, fd->phi, n, fd->c2, CD, CG);
    ref_rng rng = {seed, 0, 0};
    for (size_t p = 0; p < fd->P; p++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = i; j < n; j++) {
                double e = 0.01 * ref_rng_gauss(&rng);
                fd->c2[(p * n + i) * n + j] += e;
                if (j != i) fd->c2[(p * n + j) * n + i] = fd->c2[(p * n + i) * n + j];
            }
    free(CD);
    free(CG);
}

typedef struct fit_out {
    int status;
    size_t p, n_rows, n_excl;
    double x[7 + 2 * P_ANG];
    double err[7 + 2 * P_ANG];
    double red_chi2;
    size_t iterations;
} fit_out;

static void run_fit(const fit_data *fd, int triangle, int n_threads, fit_out *o)
{
    nlsq_xpcs_source src = tc_mem_source(fd->P, fd->n, fd->phi, fd->c2);
    nlsq_xpcs_config cfg = tc_config(fd->rm.q, fd->rm.gap, fd->rm.dt);
    cfg.mode = fd->rm.static_mode ? NLSQ_XPCS_STATIC : NLSQ_XPCS_LAMINAR;
    cfg.triangle = triangle;
    cfg.k0 = fd->rm.k0;
    nlsq_xpcs_model *m = tc_model(&src, &cfg);
    size_t p = nlsq_xpcs_model_n_params(m);
    memset(o, 0, sizeof *o);
    o->p = p;
    assert_int_equal(nlsq_xpcs_initial_guess(m, NULL, o->x, NULL, 0), 0);
    double *cov = malloc(sizeof(double) * p * p);
    assert_non_null(cov);
    nlsq_result res;
    o->status = tc_xpcs_lm(m, n_threads, o->x, cov, &res);
    o->n_rows = nlsq_xpcs_model_n_rows(m);
    o->n_excl = nlsq_xpcs_model_n_excluded(m);
    o->iterations = res.iterations;
    /* dof without the excluded (zero) rows; rescale the solver's s^2 */
    double dof = (double)o->n_rows - (double)o->n_excl - (double)p;
    o->red_chi2 = 2 * res.cost / dof;
    double scale = ((double)o->n_rows - (double)p) / dof;
    for (size_t k = 0; k < p; k++) o->err[k] = sqrt(cov[k * p + k] * scale);
    print_message("  status %s, %zu iterations, cost %.6f, chi2/dof %.5f, %zu rows (%zu excluded)\n",
                  nlsq_status_name(o->status), res.iterations, res.cost, o->red_chi2,
                  o->n_rows, o->n_excl);
    free(cov);
    nlsq_xpcs_model_free(m);
}

static void check_recovery(const fit_data *fd, const fit_out *o)
{
    static const char *const cnames[2] = {"contrast", "offset"};
    size_t np = fd->rm.static_mode ? 3 : 7;
    int bad = 0;
    if (o->status <= 0) fail_msg("fit did not converge: status %d (%s)", o->status,
                                 nlsq_status_name(o->status));
    for (size_t k = 0; k < o->p; k++) {
        double z = (o->x[k] - fd->truth[k]) / o->err[k];
        char name[32];
        if (k < np) snprintf(name, sizeof name, "%s", nlsq_xpcs_param_name(k));
        else snprintf(name, sizeof name, "%s_%zu", cnames[(k - np) % 2], (k - np) / 2);
        print_message("    %-18s %14.7g +- %-11.4g truth %-11.6g z %+.2f\n", name, o->x[k],
                      o->err[k], fd->truth[k], z);
        if (!(fabs(z) <= 4.0)) bad = 1;
    }
    if (bad) fail_msg("a parameter is more than 4 sigma from the truth");
    if (!(fabs(o->red_chi2 - 1.0) < 0.1)) fail_msg("chi2/dof = %g", o->red_chi2);
}

/* ======================================================================== */
/* Tests                                                                     */
/* ======================================================================== */

/* The data of a test (cmocka state): make_data with the mode and seed of a
 * data_spec given as the test's initial state, freed after the test. */
typedef struct data_spec {
    int static_mode;
    uint64_t seed;
} data_spec;

static int data_setup(void **state)
{
    const data_spec *ds = *state;
    fit_data *fd = malloc(sizeof *fd);
    if (!fd) return -1;
    make_data(fd, ds->static_mode, ds->seed);
    *state = fd;
    return 0;
}

static int data_teardown(void **state)
{
    fit_data *fd = *state;
    free(fd->c2);
    free(fd);
    return 0;
}

/* A cmocka test named name: fn over the data of that mode and seed. */
#define DATA_TEST(name, fn, static_mode, seed) \
    {name, fn, data_setup, data_teardown, &(data_spec){static_mode, seed}}

/* Recovery of the truth (laminar flow: seed 20240611, static: seed 99). */
static void test_recover(void **state)
{
    const fit_data *fd = *state;
    fit_out o;
    run_fit(fd, NLSQ_XPCS_UPPER, 2, &o);
    assert_int_equal(o.n_rows, P_ANG * N_FR * (N_FR - 1) / 2);
    assert_int_equal(o.p, (fd->rm.static_mode ? 3 : 7) + 2 * P_ANG);
    check_recovery(fd, &o);
}

static void test_threads_bitwise(void **state)
{
    const fit_data *fd = *state;
    fit_out o1, o2;
    run_fit(fd, NLSQ_XPCS_UPPER, 1, &o1);
    run_fit(fd, NLSQ_XPCS_UPPER, 2, &o2);
    assert_int_equal(o1.status, o2.status);
    assert_int_equal(o1.iterations, o2.iterations);
    assert_memory_equal(o1.x, o2.x, sizeof(double) * o1.p);
}

static void test_full_triangle(void **state)
{
    const fit_data *fd = *state;
    fit_out ou, of;
    run_fit(fd, NLSQ_XPCS_UPPER, 2, &ou);
    run_fit(fd, NLSQ_XPCS_FULL, 2, &of);
    assert_true(ou.status > 0 && of.status > 0);
    assert_int_equal(of.n_rows, 2 * ou.n_rows);
    check_recovery(fd, &ou);
    for (size_t k = 0; k < ou.p; k++) {
        /* same minimiser: within a small fraction of the error bar */
        double d = fabs(ou.x[k] - of.x[k]) / ou.err[k];
        if (d > 1e-3) fail_msg("parameter %zu: upper %.10g full %.10g (%.2g sigma)", k, ou.x[k], of.x[k], d);
        /* every measurement counted twice: errors shrink by sqrt(2) */
        double ratio = ou.err[k] / of.err[k];
        if (fabs(ratio - sqrt(2.0)) > 0.01)
            fail_msg("parameter %zu: error ratio upper/full %.4f", k, ratio);
    }
}

static void test_nan_dof(void **state)
{
    fit_data *fd = *state;
    size_t n = fd->n, want = 0;
    /* knock out 300 upper-triangle entries (and their mirror images) */
    ref_rng rng = {5, 0, 0};
    for (int t = 0; t < 300; t++) {
        size_t p = (size_t)(ref_rng_u64(&rng) % P_ANG);
        size_t i = (size_t)(ref_rng_u64(&rng) % n), j = (size_t)(ref_rng_u64(&rng) % n);
        if (i == j) continue;
        if (i > j) { size_t s = i; i = j; j = s; }
        if (isnan(fd->c2[(p * n + i) * n + j])) continue;
        fd->c2[(p * n + i) * n + j] = NAN;
        fd->c2[(p * n + j) * n + i] = NAN;
        want++;
    }
    fit_out o;
    run_fit(fd, NLSQ_XPCS_UPPER, 2, &o);
    assert_int_equal(o.n_excl, want);
    check_recovery(fd, &o);
}

static void test_file_roundtrip(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/test_xpcs_fit_roundtrip.h5", NLSQ_TEST_TMPDIR);
    nlsq_xpcs_synth_spec s = tc_synth_spec(80, P_ANG, 11);
    s.phi = k_phi;
    s.dt = 2e-2;
    tc_synth_write(path, &s);
    tc_xfile xf;
    tc_xfile_open(&xf, path, NAN, 0);
    assert_int_equal(xf.sel.n_angles, P_ANG);
    assert_int_equal(xf.src.n, 80);
    double xs[2][7 + 2 * P_ANG];
    int st[2];
    for (int v = 0; v < 2; v++) {
        nlsq_xpcs_config cfg = tc_xfile_config(&xf, s.gap, s.dt);
        cfg.memory_budget = v ? 1 : cfg.memory_budget;   /* v = 1: streamed */
        nlsq_xpcs_model *m = tc_model(&xf.src, &cfg);
        char e[256] = "x";
        assert_int_equal(nlsq_xpcs_initial_guess(m, NULL, xs[v], e, sizeof e), 0);
        assert_string_equal(e, "");   /* success: an empty line */
        nlsq_result res;
        st[v] = tc_xpcs_lm(m, 2, xs[v], NULL, &res);
        print_message("  %s: status %s, %zu iterations, chi2/dof %.5f, D0 %.6g phi0 %.4g\n",
                      v ? "streamed" : "cached", nlsq_status_name(st[v]), res.iterations,
                      res.reduced_chi2, xs[v][0], xs[v][6]);
        assert_true(st[v] > 0);
        assert_true(fabs(res.reduced_chi2 - 1.0) < 0.1);
        nlsq_xpcs_model_free(m);
    }
    assert_memory_equal(xs[0], xs[1], sizeof xs[0]);
    tc_xfile_close(&xf);
    remove(path);
}

TC_MAIN(DATA_TEST("recover_laminar", test_recover, 0, 20240611),
        DATA_TEST("threads_bitwise", test_threads_bitwise, 0, 777),
        DATA_TEST("full_triangle", test_full_triangle, 0, 4242),
        DATA_TEST("recover_static", test_recover, 1, 99),
        DATA_TEST("nan_dof", test_nan_dof, 0, 31337), cmocka_unit_test(test_file_roundtrip))
