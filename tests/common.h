/*
 * common.h - what the tests share: the cmocka includes, a temporary folder,
 * whole-file reads and writes, deterministic noise, comparison helpers, strict solver options and the
 * XPCS-like g2 test problem.
 *
 * Header-only (static inline: a test that uses a part pays for that part
 * only, and one that does not gets no unused-function warning).  Include it
 * first in a test, after any feature macro such as _GNU_SOURCE.  The XPCS
 * fixtures are in common_xpcs.h, the HDF5 ones in common_h5.h.
 *
 * Nothing here weakens a test: the helpers are the very code the tests
 * carried each on their own, in one place.
 */
#ifndef NLSQ_TESTS_COMMON_H
#define NLSQ_TESTS_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlsq.h"

/* Generated files go here (tests/CMakeLists.txt sets the build folder). */
#ifndef NLSQ_TEST_TMPDIR
#define NLSQ_TEST_TMPDIR "/tmp"
#endif

/* NLSQ_TEST_TMPDIR/name into buf (n bytes). */
static inline void tc_tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", NLSQ_TEST_TMPDIR, name);
}

/* NLSQ_TEST_TMPDIR/<prefix><name> in one of 8 static buffers used in turn
 * (so a few paths can be held at once). */
static inline char *tc_tmp_name(const char *prefix, const char *name)
{
    static char buf[8][1024];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s%s", NLSQ_TEST_TMPDIR, prefix, name);
    return p;
}

/* ------------------------------------------------------------ files */

/* The bytes of the file at path, NUL-terminated (so text can be searched),
 * their count in *len (len may be NULL); NULL if it cannot be opened or
 * memory runs out.  The caller frees. */
static inline void *tc_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = b ? fread(b, 1, (size_t)(n > 0 ? n : 0), fp) : 0;
    fclose(fp);
    if (!b) return NULL;
    b[got] = '\0';
    if (len) *len = got;
    return b;
}

/* path holds exactly the n bytes at data (which must be written). */
static inline void tc_write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n) assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* A cmocka fixture for a test that writes one temporary file: the test's
 * initial state is the file's name, the test gets its path
 * (NLSQ_TEST_TMPDIR/name) as *state, and the file is removed after the
 * test, passed or failed: TC_FILE_TEST(test_fn, "name"). */
static inline int tc_file_setup(void **state)
{
    char *path = malloc(strlen(NLSQ_TEST_TMPDIR) + strlen(*state) + 2);
    if (!path) return -1;
    sprintf(path, "%s/%s", NLSQ_TEST_TMPDIR, (const char *)*state);
    *state = path;
    return 0;
}

static inline int tc_file_teardown(void **state)
{
    remove(*state);
    free(*state);
    return 0;
}

#define TC_FILE_TEST(fn, name) \
    cmocka_unit_test_prestate_setup_teardown(fn, tc_file_setup, tc_file_teardown, (void *)(name))

/* ------------------------------------------------------------ noise */

/* splitmix64: a well-mixed 64-bit hash of z. */
static inline uint64_t tc_splitmix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Deterministic pseudo-noise in [-0.5, 0.5) from a row index. */
static inline double tc_uniform_noise(uint64_t i)
{
    return (double)(tc_splitmix64(i) >> 11) * 0x1.0p-53 - 0.5;
}

/* Deterministic N(0, 1) noise per row (splitmix64 + Box-Muller). */
static inline double tc_gauss_noise(uint64_t i)
{
    double u1 = ((double)(tc_splitmix64(2 * i) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((double)(tc_splitmix64(2 * i + 1) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------------ comparisons */

/* |a - b| relative to the larger magnitude (0 when both are 0). */
static inline double tc_rel_diff(double a, double b)
{
    double s = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return s > 0 ? fabs(a - b) / s : 0.0;
}

/* inv = A^-1 for a 3 x 3 row-major A, by cofactors (the closed-form
 * references of the covariance tests). */
static inline void tc_inv3(const double *A, double *inv)
{
    double c[9];
    c[0] = A[4] * A[8] - A[5] * A[7]; c[1] = A[2] * A[7] - A[1] * A[8]; c[2] = A[1] * A[5] - A[2] * A[4];
    c[3] = A[5] * A[6] - A[3] * A[8]; c[4] = A[0] * A[8] - A[2] * A[6]; c[5] = A[2] * A[3] - A[0] * A[5];
    c[6] = A[3] * A[7] - A[4] * A[6]; c[7] = A[1] * A[6] - A[0] * A[7]; c[8] = A[0] * A[4] - A[1] * A[3];
    double det = A[0] * c[0] + A[1] * c[3] + A[2] * c[6];
    for (int k = 0; k < 9; k++) inv[k] = c[k] / det;
}

/* Defaults with tight tolerances, 500 iterations, one thread. */
static inline void tc_strict_options(nlsq_options *opt)
{
    nlsq_options_init(opt);
    opt->ftol = opt->xtol = opt->gtol = 1e-15;
    opt->max_iter = 500;
    opt->n_threads = 1;
}

/* tc_strict_options as a value. */
static inline nlsq_options tc_strict(void)
{
    nlsq_options o;
    tc_strict_options(&o);
    return o;
}

/* The run settings of tests that try every solver on one problem: n_threads
 * threads, chunks of chunk_rows rows (0: keep o's), Adam for adam_epochs
 * epochs and the hybrid's Adam phase for hybrid_adam_epochs (short phases:
 * these tests check what a run does, not where Adam ends). */
static inline void tc_short_runs(nlsq_options *o, int n_threads, size_t chunk_rows,
                                 size_t adam_epochs, size_t hybrid_adam_epochs)
{
    o->n_threads = n_threads;
    if (chunk_rows) o->chunk_rows = chunk_rows;
    o->adam.epochs = adam_epochs;
    o->hybrid.adam_epochs = hybrid_adam_epochs;
}

/* main() of a test program: the listed cmocka tests as one group, e.g.
 * TC_MAIN(cmocka_unit_test(test_a), cmocka_unit_test(test_b)). */
#define TC_MAIN(...)                                              \
    int main(void)                                                \
    {                                                             \
        const struct CMUnitTest tc_tests_[] = {__VA_ARGS__};      \
        return cmocka_run_group_tests(tc_tests_, NULL, NULL);     \
    }

/* For a main() that builds its list of tests at run time: tests[*n] = fn
 * named name with that initial state, then *n + 1. */
static inline void tc_add_test(struct CMUnitTest *tests, size_t *n, const char *name,
                               CMUnitTestFunction fn, void *initial_state)
{
    tests[*n] = (struct CMUnitTest){name, fn, NULL, NULL, initial_state};
    (*n)++;
}

typedef int (*tc_solver_fn)(const nlsq_problem *, const nlsq_options *, double *, nlsq_result *);

/* solve from x0 with 1 thread and with n_threads threads (the rest of the
 * options o's): status, x and cost must be bitwise equal.  The two results
 * go to r1 and r2 (NULL: not wanted), the two x to x1 and x2 (p entries). */
static inline void tc_expect_threads_bitwise(tc_solver_fn solve, const nlsq_problem *pb,
                                             const nlsq_options *o, const double *x0,
                                             int n_threads, double *x1, double *x2,
                                             nlsq_result *r1, nlsq_result *r2)
{
    size_t p = pb->n_params;
    nlsq_result a = {0}, b = {0};
    nlsq_options o1 = *o, on = *o;
    o1.n_threads = 1;
    on.n_threads = n_threads;
    memcpy(x1, x0, p * sizeof *x1);
    memcpy(x2, x0, p * sizeof *x2);
    int s1 = solve(pb, &o1, x1, &a), sn = solve(pb, &on, x2, &b);
    assert_int_equal(s1, sn);
    assert_memory_equal(x1, x2, p * sizeof *x1);
    assert_memory_equal(&a.cost, &b.cost, sizeof a.cost);
    if (r1) *r1 = a;
    if (r2) *r2 = b;
}

/* ------------------------------------------------------------ the g2 problem */

/* XPCS-like g2 = c0 + beta exp(-2 D0 q^2 t^alpha), x = (D0, alpha, beta, c0),
 * rows k * nt + it: q = 0.002 (k + 1), lags t = 1e-3 * 1e6^(it / (nt - 1));
 * data from the truth TC_G2_TRUE with 0.01 N(0, 1) noise, and the box the
 * tests fit in. */
static const double TC_G2_TRUE[4] = {1.2e4, 0.85, 0.3, 1.0};
static const double TC_G2_LO[4] = {10.0, 0.3, 0.0, 0.5};
static const double TC_G2_HI[4] = {1e6, 2.0, 1.0, 1.5};

/* Residuals (and, when J is not NULL, the n x 4 row-major Jacobian) of rows
 * [row0, row0 + n) with nt lags per q. */
static inline void tc_g2_rows(size_t nt, const double *x, size_t row0, size_t n, double *r,
                              double *J)
{
    for (size_t i = 0; i < n; i++) {
        size_t row = row0 + i, k = row / nt, it = row % nt;
        double q = 0.002 * (double)(k + 1), q2 = q * q;
        double t = 1e-3 * pow(1e6, (double)it / (double)(nt - 1));
        double ta = pow(t, x[1]);
        double e = exp(-2.0 * x[0] * q2 * ta);
        double y = TC_G2_TRUE[3] +
                   TC_G2_TRUE[2] * exp(-2.0 * TC_G2_TRUE[0] * q2 * pow(t, TC_G2_TRUE[1])) +
                   0.01 * tc_gauss_noise(row);
        r[i] = x[3] + x[2] * e - y;
        if (J) {
            double *Ji = J + 4 * i;
            Ji[0] = x[2] * e * (-2.0 * q2 * ta);
            Ji[1] = x[2] * e * (-2.0 * x[0] * q2 * ta * log(t));
            Ji[2] = e;
            Ji[3] = 1.0;
        }
    }
}

#endif
