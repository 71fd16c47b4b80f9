/* The XPCS physics module (src/xpcs/physics.h): the one scalar reference of
 * docs/xpcs-model.md, and the model's evaluation checked against it.
 *
 * 1. reference_gradient_fd: the reference's analytic gradient w.r.t. every
 *    parameter (7 physical or 3 static, contrast, offset) against central
 *    differences of the reference's value (tables rebuilt at each shifted
 *    point), at random parameter points and entries away from the floors
 *    and the series switch.
 * 2. tables_closed_form: with alpha = beta = 0 the trapezoids are exact:
 *    CD_k = (D0 + D_offset) k, dCD/dD0 = k, dCD/dalpha = D0 sum ln ts,
 *    and the floor: a negative D gives CD_k = 1e-10 k with zero derivatives.
 * 3. model_matches_reference: the model's residuals and Jacobian (whatever
 *    kernel the CPU runs) against the reference, entry by entry, at random
 *    parameter points, for the upper triangle, the literal full triangle
 *    with the diagonal, the merged full triangle (sqrt(2) weights) and the
 *    static mode; also nlsq_xpcs_model_g2.
 * 4. g2_rows_match_reference: nlsq_xpcs_g2_rows (the public O(1)-per-entry
 *    rows) equals the reference on a block of rows and columns, laminar and
 *    static; its argument errors.
 */

#include "common_xpcs.h"
#include "xpcs/physics.h"

static uint64_t rng_state = 0x1234567887654321ULL;

static double urand(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}

static double between(double lo, double hi) { return lo + (hi - lo) * urand(); }

/* A random physical point inside the default bounds where no floor is active
 * (D and G stay positive over any window). */
static void random_phys(double *phys)
{
    phys[0] = between(2e3, 5e4);
    phys[1] = between(-0.5, 0.5);
    phys[2] = between(1.0, 200.0);
    phys[3] = between(2e-4, 5e-3);
    phys[4] = between(-0.5, 0.5);
    phys[5] = between(0.0, 1e-4);
    phys[6] = between(-5.0, 5.0);
}

typedef struct tabs {
    double *CD, *CG, *dCD, *dCG;
    nlsq__xpcs_tabset set;
} tabs;

static void tabs_make(tabs *t, const nlsq__xpcs_geom *g, const double *phys)
{
    size_t n = g->n;
    t->CD = malloc(sizeof(double) * n);
    t->CG = malloc(sizeof(double) * n);
    t->dCD = malloc(sizeof(double) * 3 * n);
    t->dCG = malloc(sizeof(double) * 3 * n);
    assert_non_null(t->CD);
    assert_non_null(t->CG);
    assert_non_null(t->dCD);
    assert_non_null(t->dCG);
    nlsq__xpcs_tables(g, phys, t->CD, t->dCD, t->CG, t->dCG);
    t->set.CD = t->CD;
    t->set.CG = g->laminar ? t->CG : NULL;
    t->set.dCD = t->dCD;
    t->set.dCG = g->laminar ? t->dCG : NULL;
}

static void tabs_free(tabs *t)
{
    free(t->CD);
    free(t->CG);
    free(t->dCD);
    free(t->dCG);
}

/* g2 of the reference at parameters v (np physical, contrast, offset). */
static double ref_value(const nlsq__xpcs_geom *g, const double *v, size_t np, double phi,
                        size_t i, size_t j)
{
    tabs t;
    tabs_make(&t, g, v);
    double g2 = nlsq__xpcs_g2_ref(g, &t.set, v, phi, v[np], v[np + 1], i, j, NULL);
    tabs_free(&t);
    return g2;
}

static void test_reference_gradient_fd(void **state)
{
    (void)state;
    const double typical[9] = {1e4, 0.3, 50, 1e-3, 0.3, 1e-4, 3.0, 0.3, 1.0};
    size_t checked = 0;
    for (int lam = 0; lam < 2; lam++) {
        nlsq__xpcs_geom g;
        nlsq__xpcs_geom_init(&g, 0.01, 2e6, 1e-3, 3, 80, lam);
        size_t np = lam ? 7 : 3;
        for (int point = 0; point < 40; point++) {
            double phys[7], v[9];
            random_phys(phys);
            memcpy(v, phys, sizeof(double) * np);
            v[np] = between(0.1, 0.5);
            v[np + 1] = between(0.9, 1.1);
            double phi = between(0.0, 360.0);
            size_t i = (size_t)(urand() * 80), j = (size_t)(urand() * 80);
            if (i == j) j = (i + 7) % 80;
            tabs t;
            tabs_make(&t, &g, v);
            double grad[9];
            double g2 = nlsq__xpcs_g2_ref(&g, &t.set, v, phi, v[np], v[np + 1], i, j, grad);
            double bc = 0.0;
            if (lam) nlsq__xpcs_angle(g.B, v[6], phi, &bc, NULL);
            double Phi = bc * sqrt(pow(t.CG[i] - t.CG[j], 2) + NLSQ__XPCS_EPS2);
            double g1 = sqrt((g2 - v[np + 1]) / v[np]);
            tabs_free(&t);
            /* away from the series switch and the floors, where g2 is smooth */
            if (lam && fabs(Phi) < 1e-3) continue;
            if (!(g1 > 1e-6)) continue;
            for (size_t k = 0; k < np + 2; k++) {
                size_t tk = k < np ? k : 7 + (k - np);
                double h = 1e-6 * (fabs(v[k]) + typical[tk]);
                double vp[9], vm[9];
                memcpy(vp, v, sizeof vp);
                memcpy(vm, v, sizeof vm);
                vp[k] += h;
                vm[k] -= h;
                double fd = (ref_value(&g, vp, np, phi, i, j) - ref_value(&g, vm, np, phi, i, j)) /
                            (2 * h);
                double tol = 1e-6 * fabs(grad[k]) + 1e-14 / h;
                if (!(fabs(fd - grad[k]) <= tol))
                    fail_msg("mode %s point %d (%zu, %zu) d/dp%zu: analytic %.10g, "
                             "differences %.10g", lam ? "laminar" : "static", point, i, j, k,
                             grad[k], fd);
                checked++;
            }
        }
    }
    assert_true(checked > 400);
}

static void test_tables_closed_form(void **state)
{
    (void)state;
    const size_t n = 50, k0 = 2;
    const double dt = 0.01;
    nlsq__xpcs_geom g;
    nlsq__xpcs_geom_init(&g, 0.01, 2e6, dt, k0, n, 1);
    double phys[7] = {3e3, 0.0, 40.0, 2e-3, 0.0, 5e-4, 0.0};
    tabs t;
    tabs_make(&t, &g, phys);
    double slog = 0.0;   /* trapezoid of ln ts_k */
    for (size_t k = 0; k < n; k++) {
        double ts = (double)(k + k0) * dt;
        if (k > 0) slog += (log((double)(k + k0 - 1) * dt) + log(ts)) / 2;
        assert_true(fabs(t.CD[k] - 3040.0 * (double)k) <= 1e-12 * 3040.0 * (double)(k + 1));
        assert_true(fabs(t.CG[k] - 2.5e-3 * (double)k) <= 1e-15 * (double)(k + 1));
        assert_true(fabs(t.dCD[k] - (double)k) <= 1e-13 * (double)(k + 1));
        assert_true(fabs(t.dCD[n + k] - 3e3 * slog) <= 1e-11 * (3e3 * fabs(slog) + 1));
        assert_true(fabs(t.dCD[2 * n + k] - (double)k) <= 1e-13 * (double)(k + 1));
        assert_true(fabs(t.dCG[k] - (double)k) <= 1e-13 * (double)(k + 1));
    }
    tabs_free(&t);
    double neg[7] = {1e3, 0.0, -2e3, 1e-3, 0.0, 0.0, 0.0};   /* D = -1000 < 0: floored */
    tabs_make(&t, &g, neg);
    for (size_t k = 0; k < n; k++) {
        assert_true(fabs(t.CD[k] - NLSQ__XPCS_DG_FLOOR * (double)k) <= 1e-24 * (double)(k + 1));
        for (size_t q = 0; q < 3; q++) assert_true(t.dCD[q * n + k] == 0.0);
    }
    tabs_free(&t);
}

/* ---- the model against the reference ------------------------------------ */

enum { NF = 45, NA = 3 };

typedef struct variant {
    int mode, triangle, diag, literal;
} variant;

/* Does the model's row walk visit (i, j), and with which weight (per sigma)? */
static int visits(const variant *v, size_t i, size_t j, double *w)
{
    int merged = v->triangle == NLSQ_XPCS_FULL && !v->literal;
    int upper = v->triangle == NLSQ_XPCS_UPPER || merged;
    if (i == j && !v->diag) return 0;
    if (upper && j < i) return 0;
    *w = merged && i != j ? sqrt(2.0) : 1.0;
    return 1;
}

static void check_variant(const variant *v, const double *data, const double *phis)
{
    nlsq_xpcs_source src = tc_mem_source(NA, NF, phis, data);
    nlsq_xpcs_config cfg = tc_config(0.012, 1.5e6, 2e-3);
    cfg.mode = v->mode;
    cfg.triangle = v->triangle;
    cfg.include_diagonal = v->diag;
    cfg.literal_full = v->literal;
    cfg.k0 = 5;
    cfg.sigma = 0.02;
    nlsq_xpcs_model *m = NULL;
    char err[256];
    assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &m, err, sizeof err), 0);
    nlsq_problem pb;
    assert_int_equal(nlsq_xpcs_model_problem(m, &pb), 0);
    const int lam = v->mode == NLSQ_XPCS_LAMINAR;
    const size_t np = lam ? 7 : 3, R = pb.n_rows / NA;
    nlsq__xpcs_geom g;
    nlsq__xpcs_geom_init(&g, cfg.q, cfg.gap, cfg.dt, cfg.k0, NF, lam);
    double *r = malloc(sizeof(double) * R), *J = malloc(sizeof(double) * R * (np + 2));
    assert_non_null(r);
    assert_non_null(J);
    for (int point = 0; point < 6; point++) {
        double x[7 + 2 * NA];
        random_phys(x);
        if (point == 5) x[0] = 1e5;   /* one point with entries on the g1 floor */
        for (size_t a = 0; a < NA; a++) {
            x[np + 2 * a] = between(0.1, 0.5);
            x[np + 2 * a + 1] = between(0.9, 1.1);
        }
        tabs t;
        tabs_make(&t, &g, x);
        for (size_t a = 0; a < NA; a++) {
            assert_int_equal(pb.eval(pb.ctx, x, a * R, R, r, J, NULL), 0);
            size_t row = 0;
            for (size_t i = 0; i < NF; i++)
                for (size_t j = 0; j < NF; j++) {
                    double w;
                    if (!visits(v, i, j, &w)) continue;
                    assert_true(row < R);
                    double grad[9], ws = w / cfg.sigma, y = data[a * NF * NF + i * NF + j];
                    double g2 = nlsq__xpcs_g2_ref(&g, &t.set, x, phis[a], x[np + 2 * a],
                                                  x[np + 2 * a + 1], i, j, grad);
                    double rr = ws * (y - g2);
                    if (!(fabs(r[row] - rr) <= 1e-13 * ws * (fabs(y) + fabs(g2))))
                        fail_msg("residual angle %zu (%zu, %zu): %.17g, reference %.17g", a, i,
                                 j, r[row], rr);
                    for (size_t c = 0; c < np + 2; c++) {
                        double jr = -ws * grad[c], jg = J[c * R + row];
                        if (!(fabs(jg - jr) <= 1e-11 * fabs(jr) + 1e-300))
                            fail_msg("Jacobian angle %zu (%zu, %zu) column %zu: %.17g, "
                                     "reference %.17g", a, i, j, c, jg, jr);
                    }
                    if (row % 7 == 0) {
                        double m2 = nlsq_xpcs_model_g2(m, x, a, i, j);
                        assert_true(fabs(m2 - g2) <= 1e-15 * fabs(g2));
                    }
                    row++;
                }
            assert_int_equal(row, R);
        }
        tabs_free(&t);
    }
    free(r);
    free(J);
    nlsq_xpcs_model_free(m);
}

static void test_model_matches_reference(void **state)
{
    (void)state;
    static double data[NA * NF * NF];
    for (size_t a = 0; a < NA; a++)
        for (size_t i = 0; i < NF; i++)
            for (size_t j = i; j < NF; j++) {
                double y = 1.0 + 0.3 * urand();
                data[a * NF * NF + i * NF + j] = data[a * NF * NF + j * NF + i] = y;
            }
    const double phis[NA] = {12.0, 95.0, 250.0};
    const variant vs[] = {
        {NLSQ_XPCS_LAMINAR, NLSQ_XPCS_UPPER, 0, 0},
        {NLSQ_XPCS_LAMINAR, NLSQ_XPCS_FULL, 1, 1},
        {NLSQ_XPCS_LAMINAR, NLSQ_XPCS_FULL, 1, 0},
        {NLSQ_XPCS_STATIC, NLSQ_XPCS_UPPER, 1, 0},
    };
    for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) check_variant(&vs[k], data, phis);
}

static void test_g2_rows_match_reference(void **state)
{
    (void)state;
    const double phis[NA] = {3.0, 170.0, 301.0};
    for (int mode = 0; mode < 2; mode++) {
        nlsq_xpcs_config cfg;
        nlsq_xpcs_config_init(&cfg);
        cfg.mode = mode;
        cfg.q = 0.008;
        cfg.gap = 3e6;
        cfg.dt = 1e-3;
        cfg.k0 = 4;
        const int lam = mode == NLSQ_XPCS_LAMINAR;
        const size_t np = lam ? 7 : 3;
        double x[7 + 2 * NA];
        random_phys(x);
        for (size_t a = 0; a < NA; a++) {
            x[np + 2 * a] = between(0.1, 0.5);
            x[np + 2 * a + 1] = between(0.9, 1.1);
        }
        nlsq_xpcs_g2_rows *g = NULL;
        assert_int_equal(nlsq_xpcs_g2_rows_create(&cfg, NF, NA, phis, x, &g), 0);
        nlsq__xpcs_geom geo;
        nlsq__xpcs_geom_init(&geo, cfg.q, cfg.gap, cfg.dt, cfg.k0, NF, lam);
        tabs t;
        tabs_make(&t, &geo, x);
        double out[8 * 30];
        for (size_t a = 0; a < NA; a++) {
            assert_int_equal(nlsq_xpcs_g2_rows_eval(g, a, 3, 8, 10, 30, out), 0);
            for (size_t r = 0; r < 8; r++)
                for (size_t c = 0; c < 30; c++) {
                    double ref = nlsq__xpcs_g2_ref(&geo, &t.set, x, phis[a], x[np + 2 * a],
                                                   x[np + 2 * a + 1], 3 + r, 10 + c, NULL);
                    assert_true(out[r * 30 + c] == ref);
                }
        }
        assert_int_equal(nlsq_xpcs_g2_rows_eval(g, NA, 0, 1, 0, 1, out), NLSQ_EINVAL);
        assert_int_equal(nlsq_xpcs_g2_rows_eval(g, 0, NF - 1, 2, 0, 1, out), NLSQ_EINVAL);
        assert_int_equal(nlsq_xpcs_g2_rows_eval(g, 0, 0, 1, 1, NF, out), NLSQ_EINVAL);
        tabs_free(&t);
        nlsq_xpcs_g2_rows_free(g);
        nlsq_xpcs_g2_rows *bad = (nlsq_xpcs_g2_rows *)&g;
        x[np] = NAN;
        assert_int_equal(nlsq_xpcs_g2_rows_create(&cfg, NF, NA, phis, x, &bad), NLSQ_EINVAL);
        assert_null(bad);
        x[np] = 0.3;
        cfg.q = NAN;
        assert_int_equal(nlsq_xpcs_g2_rows_create(&cfg, NF, NA, phis, x, &bad), NLSQ_EINVAL);
        assert_int_equal(nlsq_xpcs_g2_rows_create(NULL, NF, NA, phis, x, &bad), NLSQ_EINVAL);
    }
    nlsq_xpcs_g2_rows_free(NULL);
}

TC_MAIN(cmocka_unit_test(test_reference_gradient_fd),
        cmocka_unit_test(test_tables_closed_form),
        cmocka_unit_test(test_model_matches_reference),
        cmocka_unit_test(test_g2_rows_match_reference))
