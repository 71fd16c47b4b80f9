/* The fast XPCS model path.
 *
 * 1. Merged symmetric pairs: with triangle "full" and symmetric data the
 *    model presents each pair once with weight sqrt(2).  Against literal
 *    full-triangle rows (config.literal_full = 1): the same cost, J^T J and
 *    J^T r (through nlsq_covariance with absolute sigma, i.e. (J^T J)^-1), the
 *    same fit, and the observations counted (env->n_obs) over both
 *    triangles, the NaN pair out.  Non-symmetric in-memory data are never
 *    merged.  A start point whose data read fails says why in its err.
 * 2. The kernel: the AVX2+FMA path (own exp and sin/cos polynomials) against
 *    the portable libm path on segments that cover the series branches of
 *    sinc, the -700 clamp, the 1e-10 floor, |Phi| > 1e5 (libm fallback), NaN
 *    data and ragged tails: residuals to 1e-13 relative, Jacobian to 1e-11 of
 *    each column's scale.  (Skipped where the CPU has no AVX2.) */

#include "common_xpcs.h"
#include "xpcs/model_kernel.h"

#define P 3
#define N 70

static double *make_data(int symmetric)
{
    nlsq_xpcs_synth_spec s;
    nlsq_xpcs_synth_spec_default(&s);
    s.n_frames = N;
    s.n_angles = P;
    s.dt = 2e-2;
    s.float32 = 0;
    s.seed = 11;
    double *d = malloc(sizeof(double) * P * N * N);
    char err[256];
    for (size_t a = 0; a < P; a++)
        assert_int_equal(nlsq_xpcs_synth_rows(&s, a, 0, N, d + a * N * N, err, sizeof err), 0);
    d[1 * N * N + 4 * N + 9] = d[1 * N * N + 9 * N + 4] = NAN;   /* a symmetric NaN pair */
    if (!symmetric) d[2 * N * N + 3 * N + 7] += 1e-3;
    return d;
}

static nlsq_xpcs_model *model_of(const double *d, const double *phi, int literal)
{
    nlsq_xpcs_source src = tc_mem_source(P, N, phi, d);
    nlsq_xpcs_config cfg = tc_config(0.01, 2e6, 2e-2);
    cfg.triangle = NLSQ_XPCS_FULL;
    cfg.literal_full = literal;
    nlsq_xpcs_model *m = NULL;
    char err[256];
    assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &m, err, sizeof err), 0);
    return m;
}

static void test_merged_equals_literal(void **st)
{
    (void)st;
    const double phi[P] = {10, 55, 100};
    double *d = make_data(1);
    nlsq_xpcs_model *mm = model_of(d, phi, 0), *ml = model_of(d, phi, 1);
    nlsq_problem pm, pl;
    nlsq_xpcs_model_problem(mm, &pm);
    nlsq_xpcs_model_problem(ml, &pl);
    assert_int_equal(pm.n_rows * 2, pl.n_rows);               /* merged: half the rows */
    assert_int_equal(nlsq_xpcs_model_n_rows(mm), nlsq_xpcs_model_n_rows(ml));
    assert_int_equal(nlsq_xpcs_model_n_excluded(mm), 2);     /* the NaN pair: 2 observations */
    assert_int_equal(nlsq_xpcs_model_n_excluded(ml), 2);

    const size_t p = pm.n_params;
    double x[13];
    assert_int_equal(nlsq_xpcs_initial_guess(mm, NULL, x, NULL, 0), 0);
    x[0] = 1.5e4; x[1] = -0.1; x[2] = 50; x[3] = 8e-4; x[4] = 0.1; x[5] = 5e-5; x[6] = 2.0;
    nlsq_options o;
    nlsq_options_init(&o);
    o.absolute_sigma = 1;
    double cm[13 * 13], cl[13 * 13];
    nlsq_result rm = {0}, rl = {0};
    assert_int_equal(nlsq_covariance(&pm, &o, x, cm, &rm), 0);
    assert_int_equal(nlsq_covariance(&pl, &o, x, cl, &rl), 0);
    /* on the correlation scale |d_ij| / sqrt(c_ii c_jj): J^T J is
     * ill-conditioned here, so tiny entries of its inverse carry the
     * rounding of the large ones */
    double worst = 0;
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < p; j++) {
            double e = fabs(cm[i * p + j] - cl[i * p + j]) / sqrt(cl[i * p + i] * cl[j * p + j]);
            if (e > worst) worst = e;
        }
    printf("  merged vs literal: cost %.15g / %.15g, |grad| %.6e / %.6e, "
           "(J^T J)^-1 max diff (correlation scale) %.1e\n",
           rm.cost, rl.cost, rm.grad_norm, rl.grad_norm, worst);
    assert_true(fabs(rm.cost - rl.cost) <= 1e-12 * rl.cost);
    assert_true(fabs(rm.grad_norm - rl.grad_norm) <= 1e-9 * rl.grad_norm);
    assert_true(worst < 1e-8);
    /* the observations its rows declared: both triangles, the NaN pair out */
    assert_int_equal(rm.n_obs, pl.n_rows - 2);
    assert_int_equal(rl.n_obs, pl.n_rows - 2);
    assert_true(rm.dof == (double)(pl.n_rows - 2 - p));

    /* the fit, with the s^2-scaled covariance */
    double xm[13], xl[13], sm[169], sl[169];
    memcpy(xm, x, sizeof xm);
    memcpy(xl, x, sizeof xl);
    nlsq_options_init(&o);
    rm = (nlsq_result){0};
    rl = (nlsq_result){0};
    rm.covariance = sm;
    rl.covariance = sl;
    assert_true(nlsq_lm(&pm, &o, xm, &rm) > 0);
    assert_true(nlsq_lm(&pl, &o, xl, &rl) > 0);
    for (size_t k = 0; k < p; k++) {
        assert_true(fabs(xm[k] - xl[k]) <= 1e-6 * sqrt(sl[k * p + k]));
        assert_true(fabs(sm[k * p + k] - sl[k * p + k]) <= 1e-6 * sl[k * p + k]);
    }
    assert_true(fabs(rm.reduced_chi2 - rl.reduced_chi2) <= 1e-9 * rl.reduced_chi2);
    printf("  fit: %zu / %zu iterations, passes %zu / %zu, reduced chi2 %.6f / %.6f\n",
           rm.iterations, rl.iterations, rm.n_eval + rm.n_jac, rl.n_eval + rl.n_jac,
           rm.reduced_chi2, rl.reduced_chi2);
    nlsq_xpcs_model_free(mm);
    nlsq_xpcs_model_free(ml);

    /* non-symmetric data: never merged */
    double *d2 = make_data(0);
    nlsq_xpcs_model *mn = model_of(d2, phi, 0);
    nlsq_problem pn;
    nlsq_xpcs_model_problem(mn, &pn);
    assert_int_equal(pn.n_rows, pl.n_rows);
    nlsq_xpcs_model_free(mn);
    free(d2);
    free(d);
}

/* a read-callback source over an in-memory array */
static int read_rows_cb(void *ctx, size_t a, size_t row0, size_t nrows, double *out)
{
    const double *d = ctx;
    memcpy(out, d + a * N * N + row0 * N, nrows * N * sizeof(double));
    return 0;
}

/* a read-callback source whose angle 2 cannot be read (status 5) */
static int read_fails_cb(void *ctx, size_t a, size_t row0, size_t nrows, double *out)
{
    return a == 2 ? 5 : read_rows_cb(ctx, a, row0, nrows, out);
}

/* The start points' read failures come back as a line in their err (and
 * the global start's res.message), with NLSQ_ECALLBACK; success leaves "". */
static void test_start_read_error_message(void **st)
{
    (void)st;
    const double phi[P] = {10, 55, 100};
    double *d = make_data(1);
    nlsq_xpcs_source src = {.kind = NLSQ_XPCS_SOURCE_READ, .n_angles = P, .n = N, .phi = phi,
                            .u.read = {.fn = read_fails_cb, .ctx = d, .thread_safe = 1}};
    nlsq_xpcs_config cfg = tc_config(0.01, 2e6, 2e-2);
    cfg.memory_budget = 0;   /* streamed: nothing is read at creation */
    char err[256] = "";
    nlsq_xpcs_model *m = NULL;
    assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &m, err, sizeof err), 0);
    double x[13];
    const char *want = "of angle 2 failed (source status 5)";
    assert_int_equal(nlsq_xpcs_start(m, NULL, NULL, x, err, sizeof err), NLSQ_ECALLBACK);
    printf("  nlsq_xpcs_start: %s\n", err);
    assert_non_null(strstr(err, want));
    err[0] = '\0';
    assert_int_equal(nlsq_xpcs_initial_guess(m, NULL, x, err, sizeof err), NLSQ_ECALLBACK);
    assert_non_null(strstr(err, want));
    nlsq_xpcs_global_result gr;
    assert_int_equal(nlsq_xpcs_global_start(m, NULL, NULL, x, &gr), NLSQ_ECALLBACK);
    printf("  nlsq_xpcs_global_start: %s\n", gr.message);
    assert_non_null(strstr(gr.message, want));
    assert_int_equal(nlsq_xpcs_start(m, NULL, NULL, NULL, err, sizeof err), NLSQ_EINVAL);
    assert_true(err[0] != '\0');
    nlsq_xpcs_model_free(m);
    /* readable: "" */
    src.u.read.fn = read_rows_cb;
    assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &m, err, sizeof err), 0);
    err[0] = 'x';
    assert_int_equal(nlsq_xpcs_start(m, NULL, NULL, x, err, sizeof err), 0);
    assert_string_equal(err, "");
    nlsq_xpcs_model_free(m);
    free(d);
}

static void test_read_source_symmetric_flag(void **st)
{
    (void)st;
    const double phi[P] = {10, 55, 100};
    double *d = make_data(1);
    nlsq_xpcs_source src = {.kind = NLSQ_XPCS_SOURCE_READ, .n_angles = P, .n = N, .phi = phi,
                            .u.read = {.fn = read_rows_cb, .ctx = d, .thread_safe = 1}};
    nlsq_xpcs_config cfg = tc_config(0.01, 2e6, 2e-2);
    cfg.triangle = NLSQ_XPCS_FULL;
    char err[256];
    nlsq_xpcs_model *m0 = NULL, *m1 = NULL, *mm = model_of(d, phi, 0);
    assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &m0, err, sizeof err), 0);
    src.u.read.symmetric = 1;
    assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &m1, err, sizeof err), 0);
    nlsq_problem p0, p1, pm;
    nlsq_xpcs_model_problem(m0, &p0);
    nlsq_xpcs_model_problem(m1, &p1);
    nlsq_xpcs_model_problem(mm, &pm);
    assert_int_equal(p1.n_rows * 2, p0.n_rows);    /* promised: merged pairs */
    /* the merged read source gives the in-memory model's residuals exactly */
    double x[13];
    assert_int_equal(nlsq_xpcs_initial_guess(mm, NULL, x, NULL, 0), 0);
    double *r1 = malloc(sizeof(double) * p1.n_rows), *rm = malloc(sizeof(double) * pm.n_rows);
    assert_int_equal(p1.eval(p1.ctx, x, 0, p1.n_rows, r1, NULL, NULL), 0);
    assert_int_equal(pm.eval(pm.ctx, x, 0, pm.n_rows, rm, NULL, NULL), 0);
    assert_int_equal(p1.n_rows, pm.n_rows);
    assert_memory_equal(r1, rm, sizeof(double) * p1.n_rows);
    free(r1);
    free(rm);
    nlsq_xpcs_model_free(m0);
    nlsq_xpcs_model_free(m1);
    nlsq_xpcs_model_free(mm);
    free(d);
}

/* tables from a physical point, structure of arrays */
static void tables(const double *ph, double dt, size_t n, double *CD, double *CG, double *dD,
                   double *dG)
{
    for (int f = 0; f < 2; f++) {
        double amp = ph[3 * f], ex = ph[3 * f + 1], off = ph[3 * f + 2];
        double *C = f ? CG : CD, *dC = f ? dG : dD, prev = 0, dprev[3] = {0, 0, 0};
        for (size_t k = 0; k < n; k++) {
            double t = (double)k * dt, ts = t > dt / 2 ? t : dt / 2;
            double pw = pow(ts, ex), raw = amp * pw + off, v = raw > 1e-10 ? raw : 1e-10;
            double df[3] = {raw > 1e-10 ? pw : 0, raw > 1e-10 ? amp * pw * log(ts) : 0,
                            raw > 1e-10 ? 1 : 0};
            C[k] = k ? C[k - 1] + (prev + v) / 2 : 0;
            for (int q = 0; q < 3; q++) {
                dC[q * n + k] = k ? dC[q * n + k - 1] + (dprev[q] + df[q]) / 2 : 0;
                dprev[q] = df[q];
            }
            prev = v;
        }
    }
}

static void test_kernel_avx2_vs_portable(void **st)
{
    (void)st;
    if (!xk_cpu_avx2()) {
        printf("  no AVX2+FMA on this CPU: kernel comparison skipped\n");
        return;
    }
    enum { n = 300 };
    static double CD[n], CG[n], dD[3 * n], dG[3 * n], y[n], r1[n], r2[n], J1[9 * n], J2[9 * n];
    struct { const char *name; double ph[6]; double A, bc; } cases[] = {
        {"typical", {2e4, -0.2, 100, 1e-3, 0.2, 1e-4}, 0.01 * 0.01 * 1e-3 / 2, 3.0},
        {"tiny Phi (series)", {2e4, -0.2, 100, 1e-9, 0.0, 0.0}, 5e-8, 1e-2},
        {"Phi near 0.1 and 1e-4", {2e4, -0.2, 100, 1e-4, 0.0, 0.0}, 5e-8, 0.3},
        {"large Phi > 1e5 (libm)", {2e4, -0.2, 100, 5.0, 0.0, 0.0}, 5e-8, 1e3},
        {"clamp -700", {1e9, 0.0, 0, 1e-3, 0.2, 1e-4}, 1.0, 3.0},
        {"floor 1e-10", {2e6, 0.0, 0, 1e-3, 0.2, 1e-4}, 5e-5, 3.0},
        {"bc = 0", {2e4, -0.2, 100, 1e-3, 0.2, 1e-4}, 5e-8, 0.0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tables(cases[c].ph, 1e-3, n, CD, CG, dD, dG);
        for (size_t j = 0; j < n; j++) y[j] = 1.0 + 0.2 * exp(-(double)j / 50.0) + 0.01 * sin(j);
        y[17] = NAN;
        y[40] = INFINITY;
        xk_tab T = {CD, CG, {dD, dD + n, dD + 2 * n}, {dG, dG + n, dG + 2 * n}};
        xk_seg s = {cases[c].A, cases[c].bc, -0.3, 0.25, 1.01, 141.4, 1};
        double wr = 0, wj = 0;
        for (size_t i = 0; i < 60; i += 7)
            for (size_t len = 1; len <= 23; len += 11) {
                size_t j0 = i + 1 + (len % 5);
                for (size_t t = 0; j0 + t + len <= n && t < 200; t += 97) {
                    size_t jj = j0 + t;
                    xk_segment(1, &s, &T, i, jj, len, NULL, y + jj, r1, J1, len);
                    xk_segment(0, &s, &T, i, jj, len, NULL, y + jj, r2, J2, len);
                    for (size_t q = 0; q < len; q++) {
                        double e = fabs(r1[q] - r2[q]) / (fabs(r2[q]) + 1e-30);
                        if (!(e <= wr)) wr = e;
                    }
                    for (size_t col = 0; col < 9; col++) {
                        double sc = 0;
                        for (size_t q = 0; q < len; q++) sc = fmax(sc, fabs(J2[col * len + q]));
                        for (size_t q = 0; q < len; q++) {
                            double e = fabs(J1[col * len + q] - J2[col * len + q]) / (sc + 1e-300);
                            if (sc > 0 && !(e <= wj)) wj = e;
                            if (sc == 0) assert_true(J1[col * len + q] == 0.0);
                        }
                    }
                }
            }
        printf("  %-24s residual max rel diff %.1e, Jacobian max diff/column scale %.1e\n",
               cases[c].name, wr, wj);
        assert_true(wr <= 1e-13);
        assert_true(wj <= 1e-11);
    }
    /* NaN / Inf data: residual and Jacobian row exactly zero on both paths */
    xk_seg s = {5e-8, 3.0, -0.3, 0.25, 1.01, 100, 1};
    xk_tab T = {CD, CG, {dD, dD + n, dD + 2 * n}, {dG, dG + n, dG + 2 * n}};
    for (int path = 0; path < 2; path++) {
        xk_segment(path, &s, &T, 3, 15, 6, NULL, y + 15, r1, J1, 6);
        assert_true(r1[2] == 0.0);
        for (size_t col = 0; col < 9; col++) assert_true(J1[col * 6 + 2] == 0.0);
    }
}

TC_MAIN(cmocka_unit_test(test_merged_equals_literal),
        cmocka_unit_test(test_read_source_symmetric_flag),
        cmocka_unit_test(test_start_read_error_message),
        cmocka_unit_test(test_kernel_avx2_vs_portable))
