/*
 * test_xpcs_model.c - the XPCS model (part 3 of nlsq_xpcs.h) against an
 * independent, naive implementation of xpcs-model.md written below (direct
 * loops, every C_k recomputed from its definition, no tables).
 *
 * Tests (cmocka):
 *   g2_values        nlsq_xpcs_model_g2 and the eval residuals vs the naive
 *                    model (laminar, static, k0 > 0, D and G floors active,
 *                    the -700 clamp, tiny Phi on the sinc series branch),
 *                    1e-12 relative
 *   jacobian_fd      analytic Jacobian blocks vs central finite differences
 *                    at several points (floors, small-Phi branch, static)
 *   pattern          chunks never straddle two angles, columns are right
 *   row_mapping      upper/full triangle, diagonal in/out: counts and the
 *                    (angle, i, j) order of the rows
 *   nan_excluded     NaN/Inf data: residual 0, Jacobian row 0, counted
 *   streaming        read-function source, cached (float64/float32) and
 *                    streamed (tiny memory budget): bitwise the same as the
 *                    in-memory source; exclusions counted while streaming
 *   threads          concurrent evals at alternating parameter points
 *                    (the table cache) agree bitwise with serial evals
 *   initial_guess    contrast/offset recovered exactly on noise-free data
 *   bad_config       invalid configurations are refused with a message
 */

#include <pthread.h>

#include "common_xpcs.h"

#include "xpcs_reference.h"

/* ======================================================================== */
/* Test cases                                                                */
/* ======================================================================== */

typedef struct tcase {
    const char *name;
    int static_mode, triangle, diag;
    size_t P, n, k0;
    double q, gap, dt;
    double phys[7];
    double phi[4];
} tcase;

static const tcase k_cases[] = {
    {"laminar", 0, NLSQ_XPCS_UPPER, 0, 3, 24, 0, 0.01, 2e6, 1e-2,
     {2e4, -0.2, 100, 1e-3, 0.2, 1e-4, 3.0}, {0, 70, 200, 0}},
    {"laminar_k0_full_diag", 0, NLSQ_XPCS_FULL, 1, 2, 20, 7, 0.01, 2e6, 1e-2,
     {2e4, -0.2, 100, 1e-3, 0.2, 1e-4, -4.0}, {15, 100, 0, 0}},
    {"static_k0", 1, NLSQ_XPCS_UPPER, 0, 2, 22, 3, 0.01, 2e6, 1e-2,
     {2e4, -0.2, 100, 0, 0, 0, 0}, {10, 190, 0, 0}},
    /* D = (k + 30) - 50.5 and G = 1e-6 (k + 30) - 4.05e-5: both floors active
     * on the first frames (never within a finite-difference step of them) */
    {"floors", 0, NLSQ_XPCS_UPPER, 0, 3, 40, 30, 1.0, 2e6, 1e-3,
     {1e3, 1.0, -50.5, 1e-3, 1.0, -4.05e-5, -2.0}, {5, 60, 130, 0}},
    /* Phi < 5e-5 everywhere: the sinc series branch only */
    {"tiny_phi", 0, NLSQ_XPCS_UPPER, 1, 2, 24, 0, 0.01, 2e6, 1e-2,
     {2e4, -0.2, 100, 1e-9, 0.0, 5e-10, 1.0}, {20, 80, 0, 0}},
    /* Phi from ~1e-6 to ~7e-4: crosses the series threshold 1e-4 */
    {"series_edge", 0, NLSQ_XPCS_UPPER, 0, 2, 24, 0, 0.01, 2e6, 1e-2,
     {2e4, -0.2, 100, 1e-6, 0.0, 0.0, 0.5}, {0, 45, 0, 0}},
    /* A * I_D > 700 off the diagonal: the exp clamp and the g1 floor */
    {"clamp700", 0, NLSQ_XPCS_FULL, 0, 2, 16, 0, 1.0, 2e6, 1e-2,
     {1e5, 0.0, 100, 1e-3, 0.2, 1e-4, 3.0}, {30, 250, 0, 0}},
};
#define N_CASES (sizeof k_cases / sizeof k_cases[0])

static size_t np_of(const tcase *c) { return c->static_mode ? 3 : 7; }

static void fill_x(const tcase *c, double *x)
{
    size_t np = np_of(c);
    for (size_t k = 0; k < np; k++) x[k] = c->phys[k];
    for (size_t a = 0; a < c->P; a++) {
        x[np + 2 * a] = 0.2 + 0.05 * (double)a;
        x[np + 2 * a + 1] = 1.0 + 0.01 * (double)a;
    }
}

static ref_model ref_of(const tcase *c)
{
    ref_model rm = {c->q, c->gap, c->dt, c->k0, c->static_mode};
    return rm;
}

static double ref_g2_x(const tcase *c, const double *x, size_t a, size_t i, size_t j)
{
    ref_model rm = ref_of(c);
    size_t np = np_of(c);
    double p[7] = {0, 0, 0, 0, 0, 0, 0};
    for (size_t k = 0; k < np; k++) p[k] = x[k];
    return ref_g2(&rm, p, c->phi[a], x[np + 2 * a], x[np + 2 * a + 1], i, j);
}

/* P x n x n matrices of the naive g2 at x (each entry from scratch). */
static double *ref_data(const tcase *c, const double *x)
{
    size_t n = c->n;
    double *d = malloc(sizeof(double) * c->P * n * n);
    assert_non_null(d);
    for (size_t a = 0; a < c->P; a++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                d[(a * n + i) * n + j] = ref_g2_x(c, x, a, i, j);
    return d;
}

static nlsq_xpcs_config config_of(const tcase *c)
{
    nlsq_xpcs_config cfg = tc_config(c->q, c->gap, c->dt);
    cfg.mode = c->static_mode ? NLSQ_XPCS_STATIC : NLSQ_XPCS_LAMINAR;
    cfg.triangle = c->triangle;
    cfg.include_diagonal = c->diag;
    cfg.k0 = c->k0;
    return cfg;
}

/* pb.eval with the Jacobian block returned row-major (nrows x k) whatever
 * layout the problem declares (the model writes column-major). */
static int eval_rm(const nlsq_problem *pb, const double *x, size_t row0, size_t nrows,
                   double *r, double *J)
{
    if (!J || !pb->jac_col_major) return pb->eval(pb->ctx, x, row0, nrows, r, J, NULL);
    size_t cols[64], k = 0;
    pb->pattern(pb->ctx, row0, nrows, cols, &k);
    double *cm = malloc(sizeof(double) * nrows * k);
    if (!cm) return 1;
    int rc = pb->eval(pb->ctx, x, row0, nrows, r, cm, NULL);
    for (size_t i = 0; i < nrows; i++)
        for (size_t a = 0; a < k; a++) J[i * k + a] = cm[a * nrows + i];
    free(cm);
    return rc;
}

static nlsq_xpcs_model *make_model(const tcase *c, const nlsq_xpcs_source *src,
                                   size_t budget)
{
    nlsq_xpcs_config cfg = config_of(c);
    cfg.memory_budget = budget;
    cfg.literal_full = 1;   /* these tests enumerate the full triangle's rows one by one;
                               merged symmetric pairs are checked in test_xpcs_fast.c */
    nlsq_xpcs_model *m = NULL;
    char err[256] = "";
    int rc = nlsq_xpcs_model_create(src, &cfg, &m, err, sizeof err);
    if (rc != 0) fail_msg("%s: model_create: %d %s", c->name, rc, err);
    assert_non_null(m);
    return m;
}

static nlsq_xpcs_source mem_source(const tcase *c, const double *d64, const float *d32)
{
    nlsq_xpcs_source s = tc_mem_source(c->P, c->n, c->phi, d64);
    s.u.memory.data32 = d32;
    return s;
}

/* (i, j) of the rows of one angle, by plain enumeration. */
static size_t enum_rows(int triangle, int diag, size_t n, size_t *ii, size_t *jj)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int take = (i == j) ? diag : (triangle == NLSQ_XPCS_UPPER ? j > i : 1);
            if (!take) continue;
            if (ii) { ii[c] = i; jj[c] = j; }
            c++;
        }
    return c;
}

/* A case set up: x its point (fill_x), d the naive g2 at x plus `offset`
 * sin(t) at entry t, m the model over d (256 MiB budget). */
typedef struct case_fx {
    const tcase *c;
    double x[7 + 8];
    double *d;
    nlsq_xpcs_source src;
    nlsq_xpcs_model *m;
} case_fx;

/* fn on every case of k_cases, set up with that offset and freed after. */
static void for_each_case(void (*fn)(case_fx *), double offset)
{
    for (size_t ci = 0; ci < N_CASES; ci++) {
        case_fx f;
        f.c = &k_cases[ci];
        fill_x(f.c, f.x);
        f.d = ref_data(f.c, f.x);
        for (size_t t = 0; t < f.c->P * f.c->n * f.c->n; t++) f.d[t] += offset * sin((double)t);
        f.src = mem_source(f.c, f.d, NULL);
        f.m = make_model(f.c, &f.src, (size_t)256 << 20);
        fn(&f);
        nlsq_xpcs_model_free(f.m);
        free(f.d);
    }
}

/* ======================================================================== */
/* (a) values                                                                */
/* ======================================================================== */

static void g2_values_case(case_fx *f)
{
    const tcase *c = f->c;
    const double *x = f->x, *d = f->d;
    nlsq_xpcs_model *m = f->m;
    size_t n = c->n, np = np_of(c);
    assert_int_equal(nlsq_xpcs_model_n_params(m), np + 2 * c->P);
    /* slow path, every entry */
    double worst = 0;
    for (size_t a = 0; a < c->P; a++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                double ref = d[(a * n + i) * n + j];
                double got = nlsq_xpcs_model_g2(m, x, a, i, j);
                double rel = fabs(got - ref) / fabs(ref);
                if (rel > worst) worst = rel;
            }
    if (worst > 1e-12) fail_msg("%s: g2 relative error %g", c->name, worst);
    /* eval residuals: data = naive g2, so r * sigma = ref - model */
    nlsq_problem pb;
    assert_int_equal(nlsq_xpcs_model_problem(m, &pb), 0);
    double *r = malloc(sizeof(double) * pb.n_rows);
    assert_non_null(r);
    assert_int_equal(pb.eval(pb.ctx, x, 0, pb.n_rows, r, NULL, NULL), 0);
    size_t R = pb.n_rows / c->P;
    size_t *ii = malloc(sizeof(size_t) * R), *jj = malloc(sizeof(size_t) * R);
    assert_int_equal(enum_rows(c->triangle, c->diag, n, ii, jj), R);
    worst = 0;
    for (size_t a = 0; a < c->P; a++)
        for (size_t l = 0; l < R; l++) {
            double ref = d[(a * n + ii[l]) * n + jj[l]];
            double rel = fabs(r[a * R + l] * 0.01) / fabs(ref);
            if (rel > worst) worst = rel;
        }
    if (worst > 1e-12) fail_msg("%s: residual relative error %g", c->name, worst);
    free(ii);
    free(jj);
    free(r);
}

static void test_g2_values(void **state)
{
    (void)state;
    for_each_case(g2_values_case, 0.0);
}

/* ======================================================================== */
/* (b) Jacobian vs finite differences                                        */
/* ======================================================================== */

static const double k_fd_scale[7] = {1e3, 0.1, 10, 1e-4, 0.1, 1e-5, 1.0};

static double fd_check_model(const tcase *c, nlsq_xpcs_model *m, const double *x0)
{
    nlsq_problem pb;
    assert_int_equal(nlsq_xpcs_model_problem(m, &pb), 0);
    size_t R = pb.n_rows / c->P, np = np_of(c), k = np + 2;
    double *J = malloc(sizeof(double) * R * k);
    double *rp = malloc(sizeof(double) * R), *rm_ = malloc(sizeof(double) * R);
    double *r0 = malloc(sizeof(double) * R);
    double x[7 + 8];
    double worst = 0;
    assert_true(J && rp && rm_ && r0);
    for (size_t a = 0; a < c->P; a++) {
        size_t cols[16], kk = 0;
        size_t got = pb.pattern(pb.ctx, a * R, R, cols, &kk);
        assert_int_equal(got, R);
        assert_int_equal(kk, k);
        assert_int_equal(eval_rm(&pb, x0, a * R, R, r0, J), 0);
        for (size_t q = 0; q < k; q++) {
            size_t col = cols[q];
            double s = col < np ? k_fd_scale[col] : (((col - np) % 2) ? 1.0 : 0.1);
            /* step: the brief's 1e-6 (|x| + s), enlarged for columns whose
             * effect on r is tiny (else roundoff hides them) up to 1e-4
             * (|x| + s): h aims at a change of ~1e-5 of the residual scale */
            double an_max = 0;
            for (size_t l = 0; l < R; l++)
                if (fabs(J[l * k + q]) > an_max) an_max = fabs(J[l * k + q]);
            double rscale = (fabs(x0[np + 2 * a]) + fabs(x0[np + 2 * a + 1]) + 1) / 0.01;
            double h = 1e-6 * (fabs(x0[col]) + s);
            double hmax = 1e-4 * (fabs(x0[col]) + s);
            if (x0[col] != 0 && hmax > 0.1 * fabs(x0[col])) hmax = 0.1 * fabs(x0[col]);
            if (an_max > 0 && 1e-5 * rscale / an_max > h) h = 1e-5 * rscale / an_max;
            if (an_max == 0 || h > hmax) h = hmax;
            memcpy(x, x0, sizeof(double) * pb.n_params);
            x[col] = x0[col] + h;
            assert_int_equal(pb.eval(pb.ctx, x, a * R, R, rp, NULL, NULL), 0);
            x[col] = x0[col] - h;
            assert_int_equal(pb.eval(pb.ctx, x, a * R, R, rm_, NULL, NULL), 0);
            /* roundoff floor of the central difference: residuals carry
             * absolute rounding errors of about eps * (|offset| + |contrast|)
             * / sigma, amplified by 1 / h */
            double con = fabs(x0[np + 2 * a]), off = fabs(x0[np + 2 * a + 1]);
            double noise = 8 * 2.220446049250313e-16 * (con + off + 1) / 0.01 / h;
            double colmax = 0, errmax = 0;
            for (size_t l = 0; l < R; l++) {
                double fd = (rp[l] - rm_[l]) / (2 * h);
                double an = J[l * k + q];
                if (fabs(an) > colmax) colmax = fabs(an);
                if (fabs(fd) > colmax) colmax = fabs(fd);
                if (fabs(fd - an) > errmax) errmax = fabs(fd - an);
            }
            double raw = colmax > 0 ? errmax / colmax : errmax;
            if (getenv("FD_DEBUG")) print_message("    a%zu col%zu colmax %.3e raw %.2e noise/colmax %.2e\n", a, col, colmax, raw, noise/colmax);
            if (raw > worst) worst = raw;
            errmax = errmax > noise ? errmax - noise : 0;
            double rel = colmax > 0 ? errmax / colmax : errmax;
            if (colmax == 0 && errmax > 0)
                fail_msg("%s: column %zu zero analytically, FD %g", c->name, col, errmax);
            if (rel > 1e-6)
                fail_msg("%s: angle %zu column %zu: |J - FD| / max|J| = %g (max|J| %g)",
                         c->name, a, col, rel, colmax);
        }
    }
    free(J);
    free(rp);
    free(rm_);
    free(r0);
    return worst;
}

static void jacobian_fd_case(case_fx *f)
{
    const tcase *c = f->c;
    double w = fd_check_model(c, f->m, f->x);
    /* a second point: perturbed physical parameters */
    size_t np = np_of(c);
    for (size_t q = 0; q < np; q++) f->x[q] *= (q % 2) ? 0.97 : 1.03;
    if (!c->static_mode && c->phys[3] > 1e-8) f->x[6] += 1.5;
    double w2 = fd_check_model(c, f->m, f->x);
    print_message("  %-22s worst |J-FD|/max|J| (before the roundoff allowance) %.1e %.1e\n", c->name, w, w2);
}

static void test_jacobian_fd(void **state)
{
    (void)state;
    for_each_case(jacobian_fd_case, 0.003);   /* data away from the model: residuals not ~0 */
}

/* ======================================================================== */
/* (c) pattern and row mapping                                               */
/* ======================================================================== */

static void pattern_case(case_fx *f)
{
    const tcase *c = f->c;
    const double *x = f->x;
    nlsq_xpcs_model *m = f->m;
    nlsq_problem pb;
    assert_int_equal(nlsq_xpcs_model_problem(m, &pb), 0);
    size_t np = np_of(c), R = pb.n_rows / c->P;
    assert_int_equal(R * c->P, pb.n_rows);
    assert_ptr_equal(pb.ctx, m);
    assert_non_null(pb.lower);
    assert_non_null(pb.upper);
    assert_int_equal(pb.n_params, np + 2 * c->P);
    size_t chunks[] = {1, 7, 100, R - 1, R, R + 5, pb.n_rows};
    for (size_t s = 0; s < sizeof chunks / sizeof chunks[0]; s++) {
        size_t ch = chunks[s] ? chunks[s] : 1;
        size_t row = 0, calls = 0;
        while (row < pb.n_rows) {
            size_t cols[16], k = 0;
            size_t want = ch < pb.n_rows - row ? ch : pb.n_rows - row;
            size_t got = pb.pattern(pb.ctx, row, want, cols, &k);
            size_t a = row / R;
            size_t left = (a + 1) * R - row;
            assert_true(got >= 1);
            assert_int_equal(got, want < left ? want : left);
            assert_int_equal((row + got - 1) / R, a);
            assert_int_equal(k, np + 2);
            for (size_t q = 0; q < np; q++) assert_int_equal(cols[q], q);
            assert_int_equal(cols[np], np + 2 * a);
            assert_int_equal(cols[np + 1], np + 2 * a + 1);
            row += got;
            calls++;
        }
        assert_int_equal(row, pb.n_rows);
        (void)calls;
    }
    size_t cols[16], k = 0;
    assert_int_equal(pb.pattern(pb.ctx, pb.n_rows, 1, cols, &k), 0);
    /* a Jacobian request across an angle boundary is refused */
    if (c->P > 1) {
        double *r = malloc(sizeof(double) * 2), *J = malloc(sizeof(double) * 2 * (np + 2));
        assert_int_not_equal(pb.eval(pb.ctx, x, R - 1, 2, r, J, NULL), 0);
        assert_int_equal(pb.eval(pb.ctx, x, R - 1, 2, r, NULL, NULL), 0);
        free(r);
        free(J);
    }
    /* default bounds (docs/xpcs-model.md) */
    for (size_t q = 0; q < np; q++) assert_true(pb.lower[q] < pb.upper[q]);
    assert_true(pb.lower[0] == 100 && pb.upper[0] == 1e5);
    assert_true(pb.lower[np] == 0 && pb.upper[np] == 1);
    assert_true(pb.lower[np + 1] == 0.5 && pb.upper[np + 1] == 1.5);
    if (!c->static_mode) {
        assert_true(pb.lower[6] == -10 && pb.upper[6] == 10);
        assert_true(pb.lower[3] == 1e-6 && pb.upper[3] == 0.5);
    }
}

static void test_pattern(void **state)
{
    (void)state;
    for_each_case(pattern_case, 0.0);
    for (size_t k = 0; k < NLSQ_XPCS_N_PHYS; k++) {
        assert_non_null(nlsq_xpcs_param_name(k));
        assert_non_null(nlsq_xpcs_param_unit(k));
    }
    assert_string_equal(nlsq_xpcs_param_name(3), "gamma_dot_0");
    assert_string_equal(nlsq_xpcs_param_name(6), "phi0");
    assert_non_null(nlsq_xpcs_status_string(NLSQ_XPCS_EFORMAT));
    assert_non_null(nlsq_xpcs_status_string(12345));
}

static double code_ij(size_t a, size_t i, size_t j) { return (double)(a * 1000000 + i * 1000 + j + 1); }

typedef struct code_src { size_t n; long calls; } code_src;

/* Rows of a "matrix" whose entry encodes (a, i, j): i * 4096 + j + a * 2^26. */
static int code_read(void *ctx, size_t a, size_t row0, size_t nrows, double *out)
{
    code_src *cs = ctx;
    for (size_t r = 0; r < nrows; r++)
        for (size_t j = 0; j < cs->n; j++)
            out[r * cs->n + j] = (double)((row0 + r) * 4096 + j) + (double)a * 67108864.0;
    cs->calls++;
    return 0;
}

static void test_row_mapping(void **state)
{
    (void)state;
    /* small n: every mode, order and counts, in-memory source */
    for (size_t n = 1; n <= 7; n++)
        for (int tri = 0; tri < 2; tri++)
            for (int diag = 0; diag < 2; diag++) {
                tcase c = k_cases[2];   /* static, 2 angles */
                c.n = n;
                c.P = 3;
                c.phi[2] = 300;
                c.triangle = tri;
                c.diag = diag;
                c.k0 = 0;
                size_t P = c.P;
                double *d = malloc(sizeof(double) * P * n * n);
                for (size_t a = 0; a < P; a++)
                    for (size_t i = 0; i < n; i++)
                        for (size_t j = 0; j < n; j++) d[(a * n + i) * n + j] = code_ij(a, i, j);
                nlsq_xpcs_source src = mem_source(&c, d, NULL);
                nlsq_xpcs_config cfg = config_of(&c);
                cfg.sigma = 1.0;
                nlsq_xpcs_model *m = NULL;
                int rc = nlsq_xpcs_model_create(&src, &cfg, &m, NULL, 0);
                size_t expect = tri == NLSQ_XPCS_UPPER ? (diag ? n * (n + 1) / 2 : n * (n - 1) / 2)
                                                       : (diag ? n * n : n * (n - 1));
                if (expect == 0) {
                    assert_int_equal(rc, NLSQ_EINVAL);
                    assert_null(m);
                    free(d);
                    continue;
                }
                assert_int_equal(rc, 0);
                assert_int_equal(nlsq_xpcs_model_n_rows(m), P * expect);
                nlsq_problem pb;
                nlsq_xpcs_model_problem(m, &pb);
                double x[3 + 6] = {2e4, -0.2, 100, 0, 0, 0, 0, 0, 0};   /* contrast 0, offset 0 */
                double *r = malloc(sizeof(double) * pb.n_rows);
                /* residuals in odd-sized pieces (spanning angles) */
                for (size_t row = 0; row < pb.n_rows; row += 5) {
                    size_t nr = pb.n_rows - row < 5 ? pb.n_rows - row : 5;
                    assert_int_equal(pb.eval(pb.ctx, x, row, nr, r + row, NULL, NULL), 0);
                }
                size_t *ii = malloc(sizeof(size_t) * expect), *jj = malloc(sizeof(size_t) * expect);
                assert_int_equal(enum_rows(tri, diag, n, ii, jj), expect);
                for (size_t a = 0; a < P; a++)
                    for (size_t l = 0; l < expect; l++)
                        assert_true(r[a * expect + l] == code_ij(a, ii[l], jj[l]));
                free(ii);
                free(jj);
                free(r);
                nlsq_xpcs_model_free(m);
                free(d);
            }

    /* large n through a streamed read source: sampled rows, and long ranges
     * spanning several read blocks */
    const size_t n = 2000;
    for (int tri = 0; tri < 2; tri++)
        for (int diag = 0; diag < 2; diag++) {
            double phi[2] = {0, 90};
            code_src cs = {n, 0};
            nlsq_xpcs_source src = {.kind = NLSQ_XPCS_SOURCE_READ, .n_angles = 2, .n = n,
                                    .phi = phi, .u.read = {.fn = code_read, .ctx = &cs}};
            nlsq_xpcs_config cfg;
            nlsq_xpcs_config_init(&cfg);
            cfg.mode = NLSQ_XPCS_STATIC;
            cfg.triangle = tri;
            cfg.include_diagonal = diag;
            cfg.q = 0.01;
            cfg.dt = 1e-3;
            cfg.sigma = 1.0;
            cfg.memory_budget = 0;
            nlsq_xpcs_model *m = NULL;
            assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &m, NULL, 0), 0);
            nlsq_problem pb;
            nlsq_xpcs_model_problem(m, &pb);
            size_t R = tri == NLSQ_XPCS_UPPER ? (diag ? n * (n + 1) / 2 : n * (n - 1) / 2)
                                              : (diag ? n * n : n * (n - 1));
            assert_int_equal(pb.n_rows, 2 * R);
            /* expected (i, j) of local row l by walking the rows */
            size_t *start = malloc(sizeof(size_t) * (n + 1));
            size_t acc = 0;
            for (size_t i = 0; i < n; i++) {
                start[i] = acc;
                acc += tri == NLSQ_XPCS_UPPER ? (diag ? n - i : n - 1 - i) : (diag ? n : n - 1);
            }
            start[n] = acc;
            assert_int_equal(acc, R);
            double x[3 + 4] = {2e4, -0.2, 100, 0, 0, 0, 0};
            uint64_t s = 12345;
            for (int t = 0; t < 3000; t++) {
                size_t l;
                if (t < 8) {
                    size_t fixed[8] = {0, 1, n - 2, n - 1, n, R / 2, R - 2, R - 1};
                    l = fixed[t] < R ? fixed[t] : R - 1;
                } else {
                    s = s * 6364136223846793005ull + 1442695040888963407ull;
                    l = (size_t)((s >> 20) % R);
                }
                size_t a = (size_t)(t % 2);
                double v;
                assert_int_equal(pb.eval(pb.ctx, x, a * R + l, 1, &v, NULL, NULL), 0);
                size_t i = 0;
                while (start[i + 1] <= l) i++;
                size_t off = l - start[i], j;
                if (tri == NLSQ_XPCS_UPPER) j = i + (diag ? 0 : 1) + off;
                else j = diag ? off : (off < i ? off : off + 1);
                double want = (double)(i * 4096 + j) + (double)a * 67108864.0;
                if (v != want)
                    fail_msg("tri %d diag %d row %zu: got %.0f want (%zu,%zu)", tri, diag, l, v, i, j);
            }
            /* the last 60000 rows of angle 1 at once (many matrix rows) */
            size_t span = 60000;
            double *r = malloc(sizeof(double) * span);
            long calls0 = cs.calls;
            assert_int_equal(pb.eval(pb.ctx, x, 2 * R - span, span, r, NULL, NULL), 0);
            if (tri == NLSQ_XPCS_UPPER) assert_true(cs.calls - calls0 >= 2);   /* > 1 block */
            for (size_t t = 0; t < span; t++) {
                size_t l = R - span + t, i;
                size_t lo = 0, hi = n;   /* binary search for the matrix row */
                while (hi - lo > 1) {
                    size_t mid = (lo + hi) / 2;
                    if (start[mid] <= l) lo = mid; else hi = mid;
                }
                i = lo;
                size_t off = l - start[i], j;
                if (tri == NLSQ_XPCS_UPPER) j = i + (diag ? 0 : 1) + off;
                else j = diag ? off : (off < i ? off : off + 1);
                assert_true(r[t] == (double)(i * 4096 + j) + 67108864.0);
            }
            free(r);
            free(start);
            nlsq_xpcs_model_free(m);
        }
}

/* ======================================================================== */
/* (d) NaN data                                                              */
/* ======================================================================== */

static void test_nan_excluded(void **state)
{
    (void)state;
    const size_t bad[][3] = {{0, 2, 5}, {0, 7, 3}, {1, 4, 4}, {2, 0, 23}, {2, 11, 12}, {1, 9, 1}};
    const size_t nbad = sizeof bad / sizeof bad[0];
    for (int tri = 0; tri < 2; tri++)
        for (int diag = 0; diag < 2; diag++) {
            tcase c = k_cases[0];
            c.triangle = tri;
            c.diag = diag;
            double x[7 + 6];
            fill_x(&c, x);
            double *d = ref_data(&c, x);
            size_t n = c.n;
            size_t want_excl = 0;
            for (size_t b = 0; b < nbad; b++) {
                size_t a = bad[b][0], i = bad[b][1], j = bad[b][2];
                d[(a * n + i) * n + j] = (b % 3 == 2) ? INFINITY : NAN;
                if (i == j ? diag : (tri == NLSQ_XPCS_UPPER ? j > i : 1)) want_excl++;
            }
            nlsq_xpcs_source src = mem_source(&c, d, NULL);
            nlsq_xpcs_model *m = make_model(&c, &src, (size_t)256 << 20);
            assert_int_equal(nlsq_xpcs_model_n_excluded(m), want_excl);
            nlsq_problem pb;
            nlsq_xpcs_model_problem(m, &pb);
            size_t R = pb.n_rows / c.P, k = 9;
            size_t *ii = malloc(sizeof(size_t) * R), *jj = malloc(sizeof(size_t) * R);
            enum_rows(tri, diag, n, ii, jj);
            double *r = malloc(sizeof(double) * R), *J = malloc(sizeof(double) * R * k);
            size_t zero_rows = 0;
            for (size_t a = 0; a < c.P; a++) {
                assert_int_equal(eval_rm(&pb, x, a * R, R, r, J), 0);
                for (size_t l = 0; l < R; l++) {
                    int isbad = !isfinite(d[(a * n + ii[l]) * n + jj[l]]);
                    int allzero = r[l] == 0.0;
                    for (size_t q = 0; q < k; q++) allzero = allzero && J[l * k + q] == 0.0;
                    assert_true(isfinite(r[l]));
                    if (isbad) {
                        assert_true(allzero);
                        zero_rows++;
                    } else {
                        /* the offset column is -1/sigma on every valid row */
                        assert_true(J[l * k + 8] == -1.0 / 0.01);
                    }
                }
            }
            assert_int_equal(zero_rows, want_excl);
            free(r);
            free(J);
            free(ii);
            free(jj);
            nlsq_xpcs_model_free(m);
            free(d);
        }
}

/* ======================================================================== */
/* (e) streaming vs cached vs in memory                                      */
/* ======================================================================== */

typedef struct arr_src {
    const double *d64;
    const float *d32;
    size_t n;
    long calls;
    int busy;       /* detects concurrent calls to a non-thread-safe source */
    int overlap;
} arr_src;

static int arr_read(void *ctx, size_t a, size_t row0, size_t nrows, double *out)
{
    arr_src *s = ctx;
    if (__atomic_exchange_n(&s->busy, 1, __ATOMIC_SEQ_CST)) s->overlap = 1;
    size_t n = s->n;
    for (size_t t = 0; t < nrows * n; t++) {
        size_t o = (a * n + row0) * n + t;
        out[t] = s->d32 ? (double)s->d32[o] : s->d64[o];
    }
    __atomic_fetch_add(&s->calls, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->busy, 0, __ATOMIC_SEQ_CST);
    return 0;
}

static nlsq_xpcs_source arr_source(const tcase *c, arr_src *as, int f32)
{
    nlsq_xpcs_source s = {.kind = NLSQ_XPCS_SOURCE_READ, .n_angles = c->P, .n = c->n,
                          .phi = c->phi,
                          .u.read = {.fn = arr_read, .ctx = as, .float32 = f32, .thread_safe = 0}};
    return s;
}

/* All residuals and all Jacobian blocks (chunks of `chunk` rows through the
 * pattern) of a model into r (n_rows) and J (n_rows * k). */
static void full_eval(nlsq_xpcs_model *m, const double *x, size_t chunk, double *r, double *J)
{
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    size_t row = 0;
    while (row < pb.n_rows) {
        size_t cols[16], k = 0;
        size_t want = chunk < pb.n_rows - row ? chunk : pb.n_rows - row;
        size_t got = pb.pattern(pb.ctx, row, want, cols, &k);
        assert_true(got >= 1);
        assert_int_equal(eval_rm(&pb, x, row, got, r + row, J + row * k), 0);
        row += got;
    }
}

static void test_streaming(void **state)
{
    (void)state;
    for (int tri = 0; tri < 2; tri++)
        for (int f32 = 0; f32 < 2; f32++) {
            tcase c = k_cases[0];
            c.triangle = tri;
            c.diag = tri;   /* upper without, full with the diagonal */
            double x[7 + 6];
            fill_x(&c, x);
            double *d = ref_data(&c, x);
            size_t N3 = c.P * c.n * c.n;
            for (size_t t = 0; t < N3; t++) d[t] += 0.01 * sin(1.7 * (double)t);
            d[5] = NAN;
            d[c.n * c.n + 3 * c.n + 9] = NAN;
            d[2 * c.n * c.n + 10 * c.n + 4] = NAN;
            float *d32 = malloc(sizeof(float) * N3);
            for (size_t t = 0; t < N3; t++) d32[t] = (float)d[t];
            nlsq_xpcs_source smem = mem_source(&c, f32 ? NULL : d, f32 ? d32 : NULL);
            arr_src a1 = {f32 ? NULL : d, f32 ? d32 : NULL, c.n, 0, 0, 0};
            arr_src a2 = a1;
            nlsq_xpcs_source scache = arr_source(&c, &a1, f32);
            nlsq_xpcs_source sstream = arr_source(&c, &a2, f32);
            nlsq_xpcs_model *mm = make_model(&c, &smem, (size_t)256 << 20);
            nlsq_xpcs_model *mc = make_model(&c, &scache, (size_t)256 << 20);
            nlsq_xpcs_model *ms = make_model(&c, &sstream, 1);
            size_t cache_calls = (size_t)a1.calls;
            assert_true(cache_calls >= 1);            /* read at creation */
            assert_int_equal(a2.calls, 0);            /* streaming reads lazily */
            size_t excl = nlsq_xpcs_model_n_excluded(mm);
            assert_true(excl >= 1);
            assert_int_equal(nlsq_xpcs_model_n_excluded(mc), excl);
            size_t m_rows = nlsq_xpcs_model_n_rows(mm), k = 9;
            double *r[3], *J[3];
            for (int v = 0; v < 3; v++) {
                r[v] = malloc(sizeof(double) * m_rows);
                J[v] = malloc(sizeof(double) * m_rows * k);
            }
            full_eval(mm, x, 1000000, r[0], J[0]);
            full_eval(mc, x, 37, r[1], J[1]);
            full_eval(ms, x, 37, r[2], J[2]);
            assert_int_equal((size_t)a1.calls, cache_calls);   /* no reads after creation */
            assert_true(a2.calls > 0);
            assert_int_equal(nlsq_xpcs_model_n_excluded(ms), excl);
            for (int v = 1; v < 3; v++) {
                assert_memory_equal(r[0], r[v], sizeof(double) * m_rows);
                assert_memory_equal(J[0], J[v], sizeof(double) * m_rows * k);
            }
            /* a second pass counts nothing twice */
            full_eval(ms, x, 1000, r[2], J[2]);
            assert_int_equal(nlsq_xpcs_model_n_excluded(ms), excl);
            assert_memory_equal(r[0], r[2], sizeof(double) * m_rows);
            for (int v = 0; v < 3; v++) {
                free(r[v]);
                free(J[v]);
            }
            nlsq_xpcs_model_free(mm);
            nlsq_xpcs_model_free(mc);
            nlsq_xpcs_model_free(ms);
            free(d32);
            free(d);
        }
}

/* ======================================================================== */
/* (f) concurrent evaluation                                                 */
/* ======================================================================== */

typedef struct thr_job {
    nlsq_xpcs_model *m;
    const double *xs[2];
    double *r[2], *J[2];
    size_t tid, nthr;
    int fail;
} thr_job;

static void *thr_main(void *arg)
{
    thr_job *jb = arg;
    nlsq_problem pb;
    nlsq_xpcs_model_problem(jb->m, &pb);
    size_t k = 9;
    /* rows interleaved by chunk among the threads; alternate the two points */
    for (int rep = 0; rep < 6; rep++) {
        size_t row = 0, chunk_id = 0;
        while (row < pb.n_rows) {
            size_t cols[16], kk = 0;
            size_t want = 23 < pb.n_rows - row ? 23 : pb.n_rows - row;
            size_t got = pb.pattern(pb.ctx, row, want, cols, &kk);
            if (chunk_id % jb->nthr == jb->tid) {
                int v = (int)((chunk_id + (size_t)rep) % 2);
                if (eval_rm(&pb, jb->xs[v], row, got, jb->r[v] + row, jb->J[v] + row * k))
                    jb->fail = 1;
            }
            row += got;
            chunk_id++;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    tcase c = k_cases[0];
    double x1[7 + 6], x2[7 + 6];
    fill_x(&c, x1);
    fill_x(&c, x2);
    x2[0] *= 1.1;
    x2[4] += 0.05;
    x2[6] -= 1.0;
    double *d = ref_data(&c, x1);
    arr_src as = {d, NULL, c.n, 0, 0, 0};
    nlsq_xpcs_source src = arr_source(&c, &as, 0);
    nlsq_xpcs_model *m = make_model(&c, &src, 1);   /* streamed, serialised source */
    size_t mr = nlsq_xpcs_model_n_rows(m), k = 9;
    double *rs[2], *Js[2], *rp[2], *Jp[2];
    for (int v = 0; v < 2; v++) {
        rs[v] = malloc(sizeof(double) * mr);
        Js[v] = malloc(sizeof(double) * mr * k);
        rp[v] = calloc(mr, sizeof(double));
        Jp[v] = calloc(mr * k, sizeof(double));
    }
    full_eval(m, x1, 23, rs[0], Js[0]);
    full_eval(m, x2, 23, rs[1], Js[1]);
    enum { NT = 4 };
    pthread_t th[NT];
    thr_job jobs[NT];
    for (size_t t = 0; t < NT; t++) {
        jobs[t] = (thr_job){m, {x1, x2}, {rp[0], rp[1]}, {Jp[0], Jp[1]}, t, NT, 0};
        assert_int_equal(pthread_create(&th[t], NULL, thr_main, &jobs[t]), 0);
    }
    for (size_t t = 0; t < NT; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(jobs[t].fail, 0);
    }
    assert_int_equal(as.overlap, 0);   /* the model serialised the source */
    for (int v = 0; v < 2; v++) {
        assert_memory_equal(rs[v], rp[v], sizeof(double) * mr);
        assert_memory_equal(Js[v], Jp[v], sizeof(double) * mr * k);
        free(rs[v]);
        free(Js[v]);
        free(rp[v]);
        free(Jp[v]);
    }
    nlsq_xpcs_model_free(m);
    free(d);
}

/* ======================================================================== */
/* (g) initial guess                                                         */
/* ======================================================================== */

static void test_initial_guess(void **state)
{
    (void)state;
    const double start[7] = {1e4, 0, 0, 5e-4, 0, 0, 0};
    for (int variant = 0; variant < 3; variant++) {
        tcase c = k_cases[variant == 2 ? 2 : 0];
        double x[7 + 6], g[7 + 6];
        size_t np = np_of(&c);
        for (size_t q = 0; q < np; q++) c.phys[q] = variant == 1 ? k_cases[0].phys[q] : start[q];
        fill_x(&c, x);
        double *d = ref_data(&c, x);
        d[7] = NAN;   /* ignored */
        nlsq_xpcs_source src = mem_source(&c, d, NULL);
        nlsq_xpcs_model *m = make_model(&c, &src, (size_t)256 << 20);
        double phys[7] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN};
        if (variant == 1) memcpy(phys, c.phys, sizeof phys);
        assert_int_equal(nlsq_xpcs_initial_guess(m, variant == 1 ? phys : NULL, g, NULL, 0), 0);
        for (size_t q = 0; q < np; q++) assert_true(g[q] == x[q]);
        for (size_t q = np; q < np + 2 * c.P; q++)
            if (fabs(g[q] - x[q]) > 1e-9) fail_msg("variant %d param %zu: %.12g vs %.12g", variant, q, g[q], x[q]);
        nlsq_xpcs_model_free(m);
        free(d);
    }
    /* out-of-bounds contrast is clamped: data with contrast 1.6 */
    tcase c = k_cases[0];
    memcpy(c.phys, start, sizeof start);
    double x[7 + 6], g[7 + 6];
    fill_x(&c, x);
    x[7] = 1.6;
    double *d = ref_data(&c, x);
    nlsq_xpcs_source src = mem_source(&c, d, NULL);
    nlsq_xpcs_model *m = make_model(&c, &src, (size_t)256 << 20);
    assert_int_equal(nlsq_xpcs_initial_guess(m, NULL, g, NULL, 0), 0);
    assert_true(g[7] == 1.0);
    assert_true(g[8] >= 0.5 && g[8] <= 1.5);
    nlsq_xpcs_model_free(m);
    free(d);
}

/* ======================================================================== */
/* bad configurations                                                        */
/* ======================================================================== */

static void test_bad_config(void **state)
{
    (void)state;
    tcase c = k_cases[0];
    double x[7 + 6];
    fill_x(&c, x);
    double d[3 * 24 * 24];
    memset(d, 0, sizeof d);
    nlsq_xpcs_source src = mem_source(&c, d, NULL);
    nlsq_xpcs_config cfg;
    nlsq_xpcs_model *m = NULL;
    char err[256];
    for (int t = 0; t < 11; t++) {
        nlsq_xpcs_source s = src;
        cfg = config_of(&c);
        switch (t) {
        case 0: cfg.q = NAN; break;
        case 1: cfg.dt = 0; break;
        case 2: cfg.gap = -1; break;
        case 3: cfg.sigma = 0; break;
        case 4: cfg.mode = 7; break;
        case 5: cfg.triangle = 3; break;
        case 6: s.n_angles = 0; break;
        case 7: s.u.memory.data64 = NULL; break;
        case 8: cfg.dt = INFINITY; break;
        case 9: s.kind = NLSQ_XPCS_SOURCE_READ; break;   /* a read source without fn */
        case 10: s.kind = 0; break;                      /* no kind */
        }
        err[0] = 0;
        m = (nlsq_xpcs_model *)&err;   /* must be reset to NULL */
        assert_int_equal(nlsq_xpcs_model_create(&s, &cfg, &m, err, sizeof err), NLSQ_EINVAL);
        assert_null(m);
        assert_true(strlen(err) > 0);
    }
    /* static mode does not need the gap */
    cfg = config_of(&c);
    cfg.mode = NLSQ_XPCS_STATIC;
    cfg.gap = NAN;
    assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &m, err, sizeof err), 0);
    assert_int_equal(nlsq_xpcs_model_n_params(m), 3 + 2 * 3);
    double lo[9], hi[9];
    nlsq_xpcs_default_bounds(m, lo, hi);
    lo[0] = 10;
    assert_int_equal(nlsq_xpcs_model_set_bounds(m, lo, hi), 0);
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    assert_true(pb.lower[0] == 10);
    lo[1] = 5;
    assert_int_equal(nlsq_xpcs_model_set_bounds(m, lo, hi), NLSQ_EINVAL);
    nlsq_xpcs_model_free(m);
    nlsq_xpcs_model_free(NULL);
}

TC_MAIN(cmocka_unit_test(test_g2_values), cmocka_unit_test(test_jacobian_fd),
        cmocka_unit_test(test_pattern), cmocka_unit_test(test_row_mapping),
        cmocka_unit_test(test_nan_excluded), cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_threads), cmocka_unit_test(test_initial_guess),
        cmocka_unit_test(test_bad_config))
