/* The XPCS model's normal-equation callback (nlsq.h nlsq_normal_fn) and the
 * engine's use of it.
 *
 * 1. Sums against rows: the problem's `normal` over every unit, in calls of
 *    ragged sizes, against J^T J, J^T r, sum r^2, max |r| and the
 *    observation count formed here from `eval`'s rows (plain loops): J^T J
 *    to 1e-12 of sqrt(A_ii A_jj), J^T r to 1e-12 of its largest entry, the
 *    cost to 1e-13, max |r| and the count exactly (the residuals are the
 *    same numbers).  Merged full triangle with the diagonal and a NaN pair,
 *    the upper triangle without the diagonal, a point where the exp clamp
 *    and the g1 floor are active and |Phi| passes 2.
 * 2. A fit with the callback against the same fit without it (pb.normal
 *    NULL: every row through eval): the same iterations, cost to 1e-12,
 *    parameters to 1e-8 of their sigma; with the callback, 1 and 3 threads
 *    bitwise the same.
 * 3. A callback whose sums are not finite on some units: the engine takes
 *    those units' rows through eval instead, and the fit is the one without
 *    the callback (to rounding).
 * (Skipped where the CPU has no AVX2: the model then has no callback.) */

#include "common_xpcs.h"

#define P 4
#define N 61

static double *make_data(void)
{
    nlsq_xpcs_synth_spec s = tc_synth_spec(N, P, 5);
    s.dt = 2e-2;
    s.float32 = 0;
    double *d = malloc(sizeof(double) * P * N * N);
    assert_non_null(d);
    char err[256];
    for (size_t a = 0; a < P; a++)
        assert_int_equal(nlsq_xpcs_synth_rows(&s, a, 0, N, d + a * N * N, err, sizeof err), 0);
    d[2 * N * N + 5 * N + 11] = d[2 * N * N + 11 * N + 5] = NAN;   /* a symmetric NaN pair */
    return d;
}

static const double k_phi[P] = {0, 40, 95, 150};

static nlsq_xpcs_model *model_of(const double *d, int full, int diag)
{
    nlsq_xpcs_source src = tc_mem_source(P, N, k_phi, d);
    nlsq_xpcs_config cfg = tc_config(0.01, 2e6, 2e-2);
    cfg.triangle = full ? NLSQ_XPCS_FULL : NLSQ_XPCS_UPPER;
    cfg.include_diagonal = diag;
    return tc_model(&src, &cfg);
}

typedef struct sums {
    double A[64 * 64], g[64], rr, rmax;
    size_t obs;
} sums;

/* The sums through eval, row by row. */
static void sums_of_rows(const nlsq_problem *pb, const double *x, const nlsq_eval_env *env0,
                         sums *s)
{
    const size_t p = pb->n_params;
    memset(s, 0, sizeof *s);
    double r[256], J[256 * 9];
    size_t cols[64];
    for (size_t row = 0; row < pb->n_rows;) {
        size_t k = 0, want = pb->n_rows - row < 256 ? pb->n_rows - row : 256;
        size_t got = pb->pattern(pb->ctx, row, want, cols, &k);
        assert_true(got > 0 && k == 9);
        size_t obs = got;
        nlsq_eval_env env = *env0;
        env.n_obs = &obs;
        assert_int_equal(pb->eval(pb->ctx, x, row, got, r, J, &env), 0);
        for (size_t t = 0; t < got; t++) {
            s->rr += r[t] * r[t];
            s->rmax = fmax(s->rmax, fabs(r[t]));
            for (size_t u = 0; u < k; u++) {
                s->g[cols[u]] += J[u * got + t] * r[t];
                for (size_t v = u; v < k; v++) s->A[cols[u] * p + cols[v]] += J[u * got + t] * J[v * got + t];
            }
        }
        s->obs += obs;
        row += got;
    }
}

/* The sums through the callback, units in calls of 1, 2, 3, ... 40, 1, ... */
static void sums_of_normal(const nlsq_problem *pb, const double *x, const nlsq_eval_env *env,
                           sums *s)
{
    memset(s, 0, sizeof *s);
    static double A[64 * 64], g[64];
    size_t step = 1;
    for (size_t u = 0; u < pb->normal_units; u += step, step = step % 40 + 1) {
        size_t nu = pb->normal_units - u < step ? pb->normal_units - u : step;
        memset(A, 0, sizeof A);
        memset(g, 0, sizeof g);
        nlsq_normal_sums o = {A, g, 0.0, 0.0, 0};
        assert_int_equal(pb->normal(pb->ctx, x, u, nu, &o, env), 0);
        for (size_t k = 0; k < 64 * 64; k++) s->A[k] += A[k];
        for (size_t k = 0; k < 64; k++) s->g[k] += g[k];
        s->rr += o.rr;
        s->rmax = fmax(s->rmax, o.rmax);
        s->obs += o.n_obs;
    }
}

static void compare_at(nlsq_xpcs_model *m, const double *x, const char *what)
{
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    assert_non_null(pb.normal);
    assert_int_equal(pb.n_rows % pb.normal_units, 0);
    void *state = malloc(pb.prepare_bytes);
    assert_non_null(state);
    char msg[NLSQ_CALLBACK_MSG_SIZE] = "";
    assert_int_equal(pb.prepare(pb.ctx, x, state, msg, sizeof msg), 0);
    nlsq_eval_env env = {.at_prepared = 1, .state = state, .msg = msg, .msg_size = sizeof msg};
    static sums a, b;
    sums_of_rows(&pb, x, &env, &a);
    sums_of_normal(&pb, x, &env, &b);
    const size_t p = pb.n_params;
    double dA = 0, dg = 0, gmax = 0;
    for (size_t u = 0; u < p; u++) {
        gmax = fmax(gmax, fabs(a.g[u]));
        for (size_t v = u; v < p; v++) {
            double sc = sqrt(a.A[u * p + u] * a.A[v * p + v]);
            if (sc > 0) dA = fmax(dA, fabs(a.A[u * p + v] - b.A[u * p + v]) / sc);
            else assert_true(b.A[u * p + v] == 0.0);
        }
    }
    for (size_t u = 0; u < p; u++) dg = fmax(dg, fabs(a.g[u] - b.g[u]) / gmax);
    double dc = fabs(a.rr - b.rr) / a.rr;
    printf("  %-34s J^T J %.1e, J^T r %.1e, cost %.1e, max|r| %.17g / %.17g, obs %zu / %zu\n",
           what, dA, dg, dc, a.rmax, b.rmax, a.obs, b.obs);
    assert_true(dA <= 1e-12);
    assert_true(dg <= 1e-12);
    assert_true(dc <= 1e-13);
    assert_true(a.rmax == b.rmax);
    assert_true(a.obs == b.obs);
    free(state);
}

/* The model's problem in *pb; 0 (the model freed) where it has no normal
 * callback (no AVX2 on this CPU). */
static int has_normal(nlsq_xpcs_model *m, nlsq_problem *pb)
{
    nlsq_xpcs_model_problem(m, pb);
    if (pb->normal) return 1;
    printf("  no normal-equation callback (no AVX2): skipped\n");
    nlsq_xpcs_model_free(m);
    return 0;
}

static void start_of(nlsq_xpcs_model *m, double *x)
{
    char err[256] = "";
    assert_int_equal(nlsq_xpcs_start(m, NULL, NULL, x, err, sizeof err), 0);
}

static void test_sums_against_rows(void **st)
{
    (void)st;
    double *d = make_data();
    double x[7 + 2 * P];
    struct { int full, diag; const char *name; } cases[] = {
        {1, 1, "full merged, diagonal, NaN pair"},
        {0, 0, "upper, no diagonal"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nlsq_xpcs_model *m = model_of(d, cases[c].full, cases[c].diag);
        nlsq_problem pb;
        if (!has_normal(m, &pb)) break;
        start_of(m, x);
        compare_at(m, x, cases[c].name);
        if (c == 0) {
            x[0] *= 3e4;   /* exp(-A I_D) at its -700 clamp far from the diagonal */
            x[6] += 40;    /* shear: sinc's zeros, |Phi| past 2 */
            x[3] *= 50;
            compare_at(m, x, "clamp, floor, large Phi");
        }
        nlsq_xpcs_model_free(m);
    }
    free(d);
}

/* pb->normal wrapped: units from 100 on get NaN sums */
typedef struct wrap {
    nlsq_problem pb;
} wrap;

static int nan_normal(void *ctx, const double *x, size_t u0, size_t nu, nlsq_normal_sums *out,
                      const nlsq_eval_env *env)
{
    const wrap *w = ctx;
    int rc = w->pb.normal(w->pb.ctx, x, u0, nu, out, env);
    if (u0 + nu > 100) out->rr = NAN;
    return rc;
}

static int wrap_eval(void *ctx, const double *x, size_t row0, size_t nrows, double *r, double *J,
                     const nlsq_eval_env *env)
{
    const wrap *w = ctx;
    return w->pb.eval(w->pb.ctx, x, row0, nrows, r, J, env);
}

static size_t wrap_pattern(void *ctx, size_t row0, size_t nrows, size_t *cols, size_t *k)
{
    const wrap *w = ctx;
    return w->pb.pattern(w->pb.ctx, row0, nrows, cols, k);
}

static int wrap_prepare(void *ctx, const double *x, void *state, char *msg, size_t msg_size)
{
    const wrap *w = ctx;
    return w->pb.prepare(w->pb.ctx, x, state, msg, msg_size);
}

static int fit(const nlsq_problem *pb, int threads, double *x, nlsq_result *res, double *cov)
{
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = threads;
    opt.chunk_rows = 300;   /* several chunks per slot */
    memset(res, 0, sizeof *res);
    res->covariance = cov;
    return nlsq_lm(pb, &opt, x, res);
}

static void test_fit_with_and_without(void **st)
{
    (void)st;
    enum { p = 7 + 2 * P };
    double *d = make_data();
    nlsq_xpcs_model *m = model_of(d, 1, 1);
    nlsq_problem pb;
    if (!has_normal(m, &pb)) {
        free(d);
        return;
    }
    double x0[p], xa[p], xb[p], xc[p], xd[p], cov[p * p];
    start_of(m, x0);
    nlsq_result ra, rb, rc, rd;
    memcpy(xa, x0, sizeof x0);
    memcpy(xb, x0, sizeof x0);
    memcpy(xc, x0, sizeof x0);
    memcpy(xd, x0, sizeof x0);
    assert_true(fit(&pb, 1, xa, &ra, cov) >= 0);
    assert_true(fit(&pb, 3, xb, &rb, NULL) >= 0);
    nlsq_problem rows = pb;
    rows.normal = NULL;
    rows.normal_units = 0;
    assert_true(fit(&rows, 2, xc, &rc, NULL) >= 0);
    wrap w = {pb};
    nlsq_problem nanp = pb;
    nanp.ctx = &w;
    nanp.eval = wrap_eval;
    nanp.pattern = wrap_pattern;
    nanp.prepare = wrap_prepare;
    nanp.normal = nan_normal;
    assert_true(fit(&nanp, 2, xd, &rd, NULL) >= 0);
    printf("  with: %zu it, cost %.17g; rows: %zu it, cost %.17g; NaN units: %zu it, cost %.17g\n",
           ra.iterations, ra.cost, rc.iterations, rc.cost, rd.iterations, rd.cost);
    assert_int_equal(ra.status, rc.status);
    assert_int_equal(ra.iterations, rc.iterations);
    assert_int_equal(rd.iterations, rc.iterations);
    assert_true(ra.cost == rb.cost);
    assert_memory_equal(xa, xb, sizeof xa);
    assert_true(fabs(ra.cost - rc.cost) <= 1e-12 * rc.cost);
    assert_true(fabs(rd.cost - rc.cost) <= 1e-12 * rc.cost);
    double worst = 0, worst_d = 0;
    for (size_t k = 0; k < p; k++) {
        double sg = sqrt(cov[k * p + k]);
        worst = fmax(worst, fabs(xa[k] - xc[k]) / sg);
        worst_d = fmax(worst_d, fabs(xd[k] - xc[k]) / sg);
    }
    printf("  parameters, with against rows: %.1e sigma; NaN units against rows: %.1e sigma\n",
           worst, worst_d);
    assert_true(worst <= 1e-8);
    assert_true(worst_d <= 1e-8);
    assert_int_equal(ra.n_obs, rc.n_obs);
    nlsq_xpcs_model_free(m);
    free(d);
}

TC_MAIN(cmocka_unit_test(test_sums_against_rows), cmocka_unit_test(test_fit_with_and_without))
