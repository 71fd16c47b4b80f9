/*
 * test_xpcs_uncertainty.c - the XPCS pieces of the uncertainty work.
 *
 *  frame_noise   synthetic noise with frame_share = 0.5 (N = 300, 2 angles):
 *                off-diagonal variance sigma^2 (+-10 %); entries (i, j) and
 *                (i, k) of one matrix share sigma^2 * frame_share / 2 (+-0.1),
 *                and the two angles share nothing (|corr| < 0.05); the file
 *                gives the same rows as the in-memory generator
 *  clusters      nlsq_xpcs_model_clusters over an upper triangle with and
 *                without the diagonal, asked in uneven pieces across the
 *                angles: row r's ids (i, j) are the frames of its entry,
 *                checked through the residual (c2[a][i][j] - g2(i, j)) /
 *                sigma that the model's eval gives for row r
 */

#include "common_xpcs.h"

static void spec_small(nlsq_xpcs_synth_spec *s, size_t N, size_t P)
{
    nlsq_xpcs_synth_spec_default(s);
    s->n_frames = N;
    s->n_angles = P;
    s->float32 = 0;
    s->seed = 7;
}

static void test_frame_noise(void **state)
{
    (void)state;
    const size_t N = 300;
    nlsq_xpcs_synth_spec s, s0;
    spec_small(&s, N, 2);
    s.frame_share = 0.5;
    s0 = s;
    s0.noise_sigma = 0.0;
    double *e = malloc(2 * N * N * sizeof(double)), *g = malloc(N * N * sizeof(double));
    assert_non_null(e);
    assert_non_null(g);
    char err[256];
    for (size_t a = 0; a < 2; a++) {
        assert_int_equal(nlsq_xpcs_synth_rows(&s, a, 0, N, e + a * N * N, err, sizeof err), 0);
        assert_int_equal(nlsq_xpcs_synth_rows(&s0, a, 0, N, g, err, sizeof err), 0);
        for (size_t k = 0; k < N * N; k++) e[a * N * N + k] -= g[k];
    }
    double v = 0, c = 0, n = 0, rs = 0, nr = 0;
    for (size_t i = 0; i < N; i++)
        for (size_t j = i + 1; j < N; j++) {
            v += e[i * N + j] * e[i * N + j];
            c += e[i * N + j] * e[N * N + i * N + j];
            n += 1;
            if (j + 1 < N) {   /* (i, j) and (i, j + 1) share frame i */
                rs += e[i * N + j] * e[i * N + j + 1];
                nr += 1;
            }
        }
    double s2 = s.noise_sigma * s.noise_sigma;
    print_message("  frame_share 0.5: variance / sigma^2 = %.3f, same row %.3f, across angles %.3f\n",
                  v / n / s2, rs / nr / s2, c / n / s2);
    assert_true(fabs(v / n / s2 - 1.0) < 0.1);
    assert_true(fabs(rs / nr / s2 - 0.25) < 0.1);
    assert_true(fabs(c / n / s2) < 0.05);

    /* the file holds the same rows */
    char path[512];
    snprintf(path, sizeof path, "%s/frame_noise.h5", NLSQ_TEST_TMPDIR);
    s.n_frames = 40;
    assert_int_equal(nlsq_xpcs_synth_write(path, &s, err, sizeof err), 0);
    nlsq_xpcs_file *f = NULL;
    assert_int_equal(nlsq_xpcs_open(path, &f, err, sizeof err), 0);
    nlsq_xpcs_selection sel;
    assert_int_equal(nlsq_xpcs_select(f, s.q, 0, SIZE_MAX, &sel, err, sizeof err), 0);
    assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 1, 0, 40, e, err, sizeof err), 0);
    assert_int_equal(nlsq_xpcs_synth_rows(&s, 1, 0, 40, g, err, sizeof err), 0);
    assert_memory_equal(e, g, 40 * 40 * sizeof(double));
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
    remove(path);
    s.frame_share = 1.5;
    assert_int_equal(nlsq_xpcs_synth_write(path, &s, err, sizeof err), NLSQ_EINVAL);
    free(e);
    free(g);
}

static void check_clusters(int diagonal)
{
    const size_t N = 20, P = 2;
    nlsq_xpcs_synth_spec s;
    spec_small(&s, N, P);
    double *data = malloc(P * N * N * sizeof(double)), phi[2];
    assert_non_null(data);
    char err[256];
    for (size_t a = 0; a < P; a++) {
        assert_int_equal(nlsq_xpcs_synth_rows(&s, a, 0, N, data + a * N * N, err, sizeof err), 0);
        phi[a] = 180.0 * (double)a;
    }
    nlsq_xpcs_source src = tc_mem_source(P, N, phi, data);
    nlsq_xpcs_config cfg = tc_config(s.q, s.gap, s.dt);
    cfg.include_diagonal = diagonal;
    nlsq_xpcs_model *m = NULL;
    assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &m, err, sizeof err), 0);
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    nlsq_clusters cl;
    assert_int_equal(nlsq_xpcs_model_clusters(m, &cl), 0);
    assert_int_equal(cl.n_clusters, N);
    size_t p = pb.n_params, R = pb.n_rows;
    assert_int_equal(R, P * (diagonal ? N * (N + 1) / 2 : N * (N - 1) / 2));
    double *x = malloc(p * sizeof(double)), *r = malloc(R * sizeof(double));
    size_t *ia = malloc(R * sizeof(size_t)), *ib = malloc(R * sizeof(size_t));
    assert_true(x && r && ia && ib);
    assert_int_equal(nlsq_xpcs_initial_guess(m, s.params, x, NULL, 0), 0);
    assert_int_equal(pb.eval(pb.ctx, x, 0, R, r, NULL, NULL), 0);
    /* in uneven pieces, as the robust pass asks */
    for (size_t r0 = 0; r0 < R; r0 += 37) {
        size_t n = R - r0 < 37 ? R - r0 : 37;
        assert_int_equal(cl.ids(cl.ctx, r0, n, ia + r0, ib + r0), 0);
    }
    size_t seen_diag = 0;
    for (size_t row = 0; row < R; row++) {
        size_t a = row / (R / P), i = ia[row], j = ib[row] == NLSQ_NO_CLUSTER ? i : ib[row];
        assert_true(i < N && j < N && i <= j);
        seen_diag += i == j;
        double ref = (data[a * N * N + i * N + j] - nlsq_xpcs_model_g2(m, x, a, i, j)) / cfg.sigma;
        if (fabs(r[row] - ref) > 1e-9 * fmax(1.0, fabs(ref)))
            fail_msg("row %zu: ids (%zu, %zu), residual %.17g, entry's %.17g", row, i, j, r[row], ref);
    }
    assert_int_equal(seen_diag, diagonal ? P * N : 0);
    free(x);
    free(r);
    free(ia);
    free(ib);
    nlsq_xpcs_model_free(m);
    free(data);
}

static void test_clusters(void **state)
{
    (void)state;
    check_clusters(1);
    check_clusters(0);
}

TC_MAIN(cmocka_unit_test(test_frame_noise), cmocka_unit_test(test_clusters))
