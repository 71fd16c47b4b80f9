/* nlsq_xpcs_global_start: starts that find the global minimum.
 *
 * Data: the synthetic truth of nlsq_xpcs_synth_spec_default (D0 2e4, alpha
 * -0.2, D_offset 100, gamma_dot_0 1e-3, beta 0.2, gamma_dot_offset 1e-4,
 * phi0 3), noise 0.01, N = 120 frames, dt 2 ms, in memory, upper triangle.
 *
 * 1. bad_starts_land: 6 angles, two seeds, the two bad starts of issue 14
 *    (D0 1000, alpha 0.5, gamma_dot_0 0.02, beta -0.5, phi0 -6; and D0 5e4,
 *    gamma_dot_0 5e-3): the local fit (nlsq_lm from nlsq_xpcs_initial_guess)
 *    from start a ends away from the truth (some parameter beyond 4 sigma or
 *    chi2/dof >= 1.1: the trap is real on these data); from the global start
 *    every physical parameter ends within 4 sigma of the truth with chi2/dof
 *    < 1.1.
 * 2. mirror_is_ambiguous: 4 angles 90 degrees apart, where phi0 -> -phi0 is
 *    an exact symmetry of the model, phi0 = 8 (with 4 angles the default 3
 *    degrees leave phi0 nearly undetermined: |sin 3| = 0.05 scales the shear
 *    of two angles; the fit then flags phi0 undetermined instead) (checked: the full cost at x and at x
 *    with phi0 negated agree to 1e-12): the stage reports the ambiguity, the
 *    alternative is the mirror (phi0 of opposite sign, same |phi0| and D0 to
 *    1e-3 relative).
 * 3. threads_do_not_matter: the start is bitwise the same with 1 and 3 threads.
 * 4. bad_arguments: NULL model / x / result, negative threads -> NLSQ_EINVAL.
 * 5. grid_scores_are_the_model: the grid's cost of a point (global_grid.c:
 *    g1 from physics.h per entry, contrast and offset per angle by linfit.h)
 *    equals half the sum of squares of data minus nlsq_xpcs_model_g2 (the
 *    public slow path) at the contrasts and offsets it returns, to 1e-10; those
 *    are the least-squares ones (moving any one by 1e-4 raises the cost); and
 *    the factorised sweep's cost of grid points equals the direct score of the
 *    same points to 1e-12.
 * 6. mirror_check_after_fit: after the full fit from the global start,
 *    nlsq_xpcs_mirror_check reports the phi0 mirror with 4 angles 90 degrees
 *    apart (phi0 = 30 inside bounds widened to +-45, determined to a few
 *    degrees; the full cost at the
 *    mirror equals the fit's, checked in 2.) and not with 6 angles 60 degrees apart (phi0 = 20), where the
 *    full cost at the mirror is above the fit's by more than s^2 / 2 (delta
 *    chi2 > 1 on all rows, computed here from all rows). */
#include "common_xpcs.h"
#include "xpcs/global_grid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N 200
#define MAXP 6

typedef struct fixture {
    double phi[MAXP], truth[7];
    double *d;
    nlsq_xpcs_model *m;
    nlsq_problem pb;
} fixture;

static void make(fixture *f, size_t P, uint64_t seed, double phi0)
{
    nlsq_xpcs_synth_spec s;
    nlsq_xpcs_synth_spec_default(&s);
    s.n_frames = N;
    s.n_angles = P;
    s.float32 = 0;
    s.dt = 2e-3;
    s.seed = seed;
    s.params[6] = phi0;
    memcpy(f->truth, s.params, sizeof f->truth);
    f->d = malloc(sizeof(double) * P * N * N);
    assert_non_null(f->d);
    char err[256];
    for (size_t a = 0; a < P; a++) {
        f->phi[a] = (double)a * 360.0 / (double)P;
        assert_int_equal(nlsq_xpcs_synth_rows(&s, a, 0, N, f->d + a * N * N, err, sizeof err), 0);
    }
    nlsq_xpcs_source src = tc_mem_source(P, N, f->phi, f->d);
    nlsq_xpcs_config cfg = tc_config(s.q, s.gap, s.dt);
    f->m = tc_model(&src, &cfg);
    assert_int_equal(nlsq_xpcs_model_problem(f->m, &f->pb), 0);
}

static void unmake(fixture *f)
{
    nlsq_xpcs_model_free(f->m);
    free(f->d);
}

/* The full LM from x (1 thread, at most 2000 iterations), its covariance
 * into cov (p x p); the status (usable: checked). */
static int full_fit(fixture *f, double *x, double *cov, nlsq_result *res)
{
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = 1;
    opt.max_iter = 2000;
    memset(res, 0, sizeof *res);
    res->covariance = cov;
    int st = nlsq_lm(&f->pb, &opt, x, res);
    assert_true(st >= 0 || st == NLSQ_STALLED);
    return st;
}

/* The full LM from x; 1 when every physical parameter is within 4 sigma of
 * the truth and chi2/dof < 1.1. */
static int fit_lands(fixture *f, double *x)
{
    size_t p = f->pb.n_params;
    double *cov = malloc(sizeof(double) * p * p);
    assert_non_null(cov);
    nlsq_result res;
    int st = full_fit(f, x, cov, &res);
    int ok = res.reduced_chi2 < 1.1;
    for (size_t q = 0; q < 7; q++) {
        double sig = sqrt(cov[q * p + q]);
        if (!(fabs(x[q] - f->truth[q]) <= 4.0 * sig)) ok = 0;
    }
    if (!ok) {
        print_message("  fit from the start: %s, chi2/dof %.4f, x =", nlsq_status_name(st),
                      res.reduced_chi2);
        for (size_t q = 0; q < 7; q++)
            print_message(" %.4g (%+.1f sigma)", x[q], (x[q] - f->truth[q]) / sqrt(cov[q * p + q]));
        print_message("\n");
    }
    free(cov);
    return ok;
}

static void bad_starts_land(void **st)
{
    (void)st;
    const double a[7] = {1000, 0.5, NAN, 0.02, -0.5, NAN, -6};
    const double b[7] = {5e4, NAN, NAN, 5e-3, NAN, NAN, NAN};
    const double *starts[2] = {a, b};
    for (uint64_t seed = 1; seed <= 2; seed++) {
        fixture f;
        make(&f, 6, seed, 3.0);
        double x[7 + 2 * 6];
        assert_int_equal(nlsq_xpcs_initial_guess(f.m, a, x, NULL, 0), 0);
        assert_false(fit_lands(&f, x));
        for (int k = 0; k < 2; k++) {
            nlsq_xpcs_global_options go = {0, 0, 1};
            nlsq_xpcs_global_result g;
            assert_int_equal(nlsq_xpcs_global_start(f.m, starts[k], &go, x, &g), 0);
            assert_true(g.n_grid > 1000 && g.n_refined >= 6);
            assert_true(fit_lands(&f, x));
        }
        unmake(&f);
    }
}

static double full_cost(fixture *f, const double *x)
{
    size_t n = f->pb.n_rows;
    double *r = malloc(sizeof(double) * n), c = 0.0;
    assert_non_null(r);
    assert_int_equal(f->pb.eval(f->pb.ctx, x, 0, n, r, NULL, NULL), 0);   /* env NULL: private tables */
    for (size_t t = 0; t < n; t++) c += 0.5 * r[t] * r[t];
    free(r);
    return c;
}

static void mirror_is_ambiguous(void **st)
{
    (void)st;
    fixture f;
    make(&f, 4, 3, 8.0);
    double x[7 + 2 * 4], y[7 + 2 * 4];
    nlsq_xpcs_global_result g;
    assert_int_equal(nlsq_xpcs_global_start(f.m, NULL, NULL, x, &g), 0);
    print_message("  %s; phi0 %.6g, alt %.6g\n", g.message, x[6], g.alt[6]);
    assert_int_equal(g.ambiguous, 1);
    assert_non_null(strstr(g.message, "phi0"));
    assert_true(g.alt[6] * x[6] < 0);
    assert_true(fabs(fabs(g.alt[6]) - fabs(x[6])) <= 1e-3 * fabs(x[6]));
    assert_true(fabs(g.alt[0] - x[0]) <= 1e-3 * x[0]);
    /* the symmetry itself, on all rows */
    memcpy(y, x, sizeof x);
    y[6] = -x[6];
    double c1 = full_cost(&f, x), c2 = full_cost(&f, y);
    assert_true(fabs(c1 - c2) <= 1e-12 * c1);
    unmake(&f);
}

static void threads_do_not_matter(void **st)
{
    (void)st;
    fixture f;
    make(&f, 6, 4, 3.0);
    const double b[7] = {5e4, NAN, NAN, 5e-3, NAN, NAN, NAN};
    double x1[7 + 12], x3[7 + 12];
    nlsq_xpcs_global_options go = {8192, 3, 1};
    nlsq_xpcs_global_result g1, g3;
    assert_int_equal(nlsq_xpcs_global_start(f.m, b, &go, x1, &g1), 0);
    go.n_threads = 3;
    assert_int_equal(nlsq_xpcs_global_start(f.m, b, &go, x3, &g3), 0);
    assert_memory_equal(x1, x3, sizeof x1);
    assert_true(g1.sample_cost == g3.sample_cost);
    assert_true(g1.sample_rows <= 8192 && g1.sample_rows > 4096);
    unmake(&f);
}

static void bad_arguments(void **st)
{
    (void)st;
    fixture f;
    make(&f, 4, 5, 3.0);
    double x[7 + 8];
    nlsq_xpcs_global_result g;
    nlsq_xpcs_global_options go = {0, 0, -1};
    assert_int_equal(nlsq_xpcs_global_start(NULL, NULL, NULL, x, &g), NLSQ_EINVAL);
    assert_int_equal(nlsq_xpcs_global_start(f.m, NULL, NULL, NULL, &g), NLSQ_EINVAL);
    assert_int_equal(nlsq_xpcs_global_start(f.m, NULL, NULL, x, NULL), NLSQ_EINVAL);
    assert_int_equal(nlsq_xpcs_global_start(f.m, NULL, &go, x, &g), NLSQ_EINVAL);
    unmake(&f);
}

/* Half the sum of squares of the grid entries' data minus the model's g2 at x. */
static double entries_cost(const fixture *f, const gs_grid *g, const double *x)
{
    double c = 0.0;
    for (size_t a = 0; a < g->v.P; a++)
        for (size_t t = g->first[a]; t < g->first[a + 1]; t++) {
            double d = g->y[t] + g->mean[a] - nlsq_xpcs_model_g2(f->m, x, a, g->ei[t], g->ej[t]);
            c += 0.5 * d * d;
        }
    return c;
}

static void grid_scores_are_the_model(void **st)
{
    (void)st;
    fixture f;
    const size_t P = 6, p = 7 + 2 * P;
    make(&f, P, 6, 3.0);
    size_t R = f.pb.n_rows / P, start[6], len = 300;
    for (size_t a = 0; a < P; a++) start[a] = a * R + (a * 997) % (R - len);
    gs_grid g;
    assert_int_equal(nlsq__xpcs_gg_init(&g, f.m, start, P, len, 1000, NULL, 0), 0);
    assert_true(g.S > 800 && g.S <= 1001);
    double x[7 + 12], y[7 + 12];
    memcpy(x, f.truth, sizeof f.truth);
    x[4] = 0.35;   /* somewhere else than the truth */
    x[6] = -20.0;
    double c = nlsq__xpcs_gg_score(&g, x), ref = entries_cost(&f, &g, x);
    print_message("  grid score %.12g, model %.12g\n", c, ref);
    assert_true(fabs(c - ref) <= 1e-10 * ref);
    for (size_t q = 7; q < p; q++) {   /* least squares: any move costs */
        memcpy(y, x, sizeof x);
        y[q] += 1e-4;
        assert_true(entries_cost(&f, &g, y) > ref);
        y[q] -= 2e-4;
        assert_true(entries_cost(&f, &g, y) > ref);
    }
    double *cost = malloc(sizeof(double) * g.total);
    assert_non_null(cost);
    size_t picks[4], n_picks = 0;
    assert_int_equal(nlsq__xpcs_gg_search(&g, cost, 4, picks, &n_picks), 0);
    assert_int_equal(n_picks, 4);
    for (size_t k = 0; k < g.total; k += 97) {
        nlsq__xpcs_gg_point(&g, k, x);
        double d = nlsq__xpcs_gg_score(&g, x);
        assert_true(fabs(d - cost[k]) <= 1e-12 * d);
    }
    for (size_t k = 1; k < n_picks; k++) assert_true(cost[picks[k]] >= cost[picks[k - 1]]);
    free(cost);
    nlsq__xpcs_gg_free(&g);
    unmake(&f);
}

/* The full fit from the global start: x, its standard errors and s^2. */
static double fit_from_global(fixture *f, double *x, double *err)
{
    size_t p = f->pb.n_params;
    nlsq_xpcs_global_result g;
    assert_int_equal(nlsq_xpcs_global_start(f->m, NULL, NULL, x, &g), 0);
    double *cov = malloc(sizeof(double) * p * p);
    assert_non_null(cov);
    nlsq_result res;
    int rc = full_fit(f, x, cov, &res);
    print_message("  fit: %s after %zu iterations\n", nlsq_status_name(rc), res.iterations);
    for (size_t q = 0; q < p; q++) err[q] = sqrt(cov[q * p + q]);
    free(cov);
    return res.reduced_chi2;
}

/* phi0's bounds widened to [-45, 45] (the default [-10, 10] would hold a
 * phi0 of 20 or 30 at its bound). */
static void wide_phi0(fixture *f)
{
    size_t p = f->pb.n_params;
    double lo[7 + 12], hi[7 + 12];
    memcpy(lo, f->pb.lower, sizeof(double) * p);
    memcpy(hi, f->pb.upper, sizeof(double) * p);
    lo[6] = -45.0;
    hi[6] = 45.0;
    assert_int_equal(nlsq_xpcs_model_set_bounds(f->m, lo, hi), 0);
    assert_int_equal(nlsq_xpcs_model_problem(f->m, &f->pb), 0);
}

static void mirror_check_after_fit(void **st)
{
    (void)st;
    fixture f;
    double x[7 + 12], err[7 + 12], y[7 + 12];
    make(&f, 4, 3, 30.0);
    wide_phi0(&f);
    fit_from_global(&f, x, err);
    print_message("  4 angles: phi0 %.6g +- %.3g\n", x[6], err[6]);
    nlsq_xpcs_global_result c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nlsq_xpcs_mirror_check(f.m, x, err, NULL, &c), 0);
    print_message("  4 angles: %s\n", c.message);
    assert_int_equal(c.ambiguous, 1);
    assert_true(c.alt[6] == -x[6] && c.alt[0] == x[0]);
    assert_true(fabs(c.delta_chi2) < 1e-6);
    unmake(&f);

    make(&f, 6, 1, 20.0);
    wide_phi0(&f);
    double s2 = fit_from_global(&f, x, err);
    memset(&c, 0, sizeof c);
    assert_int_equal(nlsq_xpcs_mirror_check(f.m, x, err, NULL, &c), 0);
    assert_int_equal(c.ambiguous, 0);
    memcpy(y, x, sizeof x);
    y[6] = -x[6];
    double d = 2.0 * (full_cost(&f, y) - full_cost(&f, x)) / s2;
    print_message("  6 angles: phi0 %.4g +- %.2g, all-rows delta chi2 of the mirror %.4g\n", x[6],
                  err[6], d);
    assert_true(d > 1.0);
    assert_int_equal(nlsq_xpcs_mirror_check(NULL, x, err, NULL, &c), NLSQ_EINVAL);
    unmake(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_starts_land),
        cmocka_unit_test(mirror_is_ambiguous),
        cmocka_unit_test(threads_do_not_matter),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(grid_scores_are_the_model),
        cmocka_unit_test(mirror_check_after_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
