/* nlsq_xpcs_start: D0 and gamma_dot_0 from lag-averaged data.
 *
 * 1. recovers_rates: noise-free data of the lag-only model (alpha = beta = 0,
 *    zero offsets: then c2 depends on |i - j| only and the start's model is
 *    exact), 8 angles, N = 300, D0 = 3e4 and gamma_dot_0 = 2e-3 (both far from
 *    the fixed start 1e4 / 5e-4): the estimates within 2 % (the grid's
 *    last step), contrast and offset within 5e-3 of the truth.
 * 2. given_values_stay: entries of phys that are not NAN are kept exactly;
 *    NULL model or x -> NLSQ_EINVAL.
 * 3. unseen_shear_kept: static-like data (gamma_dot_0 = 1e-6, the shear
 *    phase never reaches 0.5 over the window): gamma_dot_0 stays at the
 *    given start value instead of the search's.
 * 4. fewer_passes: the spec's truth (alpha, beta, offsets non-zero), noise
 *    0.01, N = 250: the LM from the rate start reaches the cost of the LM
 *    from the fixed start (to 1e-6 relative or lower) with fewer passes. */

#include "common_xpcs.h"

#define P 8

typedef struct fixture {
    double phi[P];
    double *d;
    nlsq_xpcs_model *m;
} fixture;

static void make(fixture *f, size_t n, const double phys[7], double noise)
{
    nlsq_xpcs_synth_spec s;
    nlsq_xpcs_synth_spec_default(&s);
    s.n_frames = n;
    s.n_angles = P;
    s.float32 = 0;
    s.noise_sigma = noise;
    s.seed = 5;
    memcpy(s.params, phys, sizeof s.params);
    f->d = malloc(sizeof(double) * P * n * n);
    assert_non_null(f->d);
    char err[256];
    for (size_t a = 0; a < P; a++) {
        f->phi[a] = (double)a * 360.0 / P;
        assert_int_equal(nlsq_xpcs_synth_rows(&s, a, 0, n, f->d + a * n * n, err, sizeof err), 0);
    }
    nlsq_xpcs_source src = tc_mem_source(P, n, f->phi, f->d);
    nlsq_xpcs_config cfg = tc_config(s.q, s.gap, s.dt);
    cfg.triangle = NLSQ_XPCS_FULL;
    cfg.include_diagonal = 1;
    f->m = NULL;
    assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &f->m, err, sizeof err), 0);
}

static void unmake(fixture *f)
{
    nlsq_xpcs_model_free(f->m);
    free(f->d);
}

static void recovers_rates(void **st)
{
    (void)st;
    const double truth[7] = {3e4, 0, 0, 2e-3, 0, 0, 0};
    fixture f;
    make(&f, 300, truth, 0.0);
    double x[7 + 2 * P];
    assert_int_equal(nlsq_xpcs_start(f.m, NULL, NULL, x, NULL, 0), 0);
    assert_true(fabs(x[0] / truth[0] - 1) < 0.02);
    assert_true(fabs(x[3] / truth[3] - 1) < 0.02);
    for (size_t a = 0; a < P; a++) {
        double u = 2 * 3.14159265358979323846 * (double)a / P;
        assert_true(fabs(x[7 + 2 * a] - (0.25 + 0.05 * sin(u))) < 5e-3);
        assert_true(fabs(x[8 + 2 * a] - (1.0 + 0.01 * cos(u))) < 5e-3);
    }
    unmake(&f);
}

static void given_values_stay(void **st)
{
    (void)st;
    const double truth[7] = {3e4, 0, 0, 2e-3, 0, 0, 0};
    fixture f;
    make(&f, 120, truth, 0.0);
    double x[7 + 2 * P], phys[7] = {1234.5, NAN, NAN, NAN, NAN, NAN, NAN};
    assert_int_equal(nlsq_xpcs_start(f.m, phys, NULL, x, NULL, 0), 0);
    assert_true(x[0] == 1234.5);
    phys[0] = NAN;
    phys[3] = 7e-4;
    assert_int_equal(nlsq_xpcs_start(f.m, phys, NULL, x, NULL, 0), 0);
    assert_true(x[3] == 7e-4);
    assert_int_equal(nlsq_xpcs_start(NULL, NULL, NULL, x, NULL, 0), NLSQ_EINVAL);
    assert_int_equal(nlsq_xpcs_start(f.m, NULL, NULL, NULL, NULL, 0), NLSQ_EINVAL);
    unmake(&f);
}

static void unseen_shear_kept(void **st)
{
    (void)st;
    const double truth[7] = {3e4, 0, 0, 1e-6, 0, 0, 0};
    fixture f;
    make(&f, 150, truth, 0.0);
    double x[7 + 2 * P];
    assert_int_equal(nlsq_xpcs_start(f.m, NULL, NULL, x, NULL, 0), 0);
    assert_true(x[3] == 5e-4);   /* the fixed start's value, not the search's */
    unmake(&f);
}

static void fit_from(nlsq_xpcs_model *m, double *x, nlsq_result *res)
{
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    nlsq_options o;
    nlsq_options_init(&o);
    o.n_threads = 2;
    memset(res, 0, sizeof *res);
    nlsq_lm(&pb, &o, x, res);
}

static void fewer_passes(void **st)
{
    (void)st;
    nlsq_xpcs_synth_spec s;
    nlsq_xpcs_synth_spec_default(&s);
    fixture f;
    make(&f, 250, s.params, 0.01);
    double xr[7 + 2 * P], xf[7 + 2 * P];
    nlsq_result rr, rf;
    assert_int_equal(nlsq_xpcs_start(f.m, NULL, NULL, xr, NULL, 0), 0);
    assert_int_equal(nlsq_xpcs_initial_guess(f.m, NULL, xf, NULL, 0), 0);
    fit_from(f.m, xr, &rr);
    fit_from(f.m, xf, &rf);
    assert_true(rr.status > 0 && rf.status > 0);
    assert_true(rr.cost <= rf.cost * (1 + 1e-6));
    assert_true(rr.n_jac + rr.n_eval < rf.n_jac + rf.n_eval);
    unmake(&f);
}

TC_MAIN(cmocka_unit_test(recovers_rates), cmocka_unit_test(given_values_stay),
        cmocka_unit_test(unseen_shear_kept), cmocka_unit_test(fewer_passes))
