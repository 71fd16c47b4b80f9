/*
 * test_faults.c - fault injection beyond tests/test_lm_core.c and
 * tests/test_alloc_fail.c (see docs/reliability.md for the whole table).
 *
 * Numerical faults (core library, every solver where it applies):
 *  nonfinite_start     NaN / +Inf / -Inf residuals (all rows or one row) and
 *                      NaN / Inf Jacobian entries at the start point, for LM,
 *                      Adam, hybrid and nlsq_covariance: NLSQ_ENONFINITE, x
 *                      bitwise the start, a message naming the fault
 *  nonfinite_transient NaN residuals on one pass in the middle of a run (the
 *                      k-th pass, k = 2..7): same answer as the clean run,
 *                      the rejected pass counted in res.n_nonfinite
 *  nonfinite_persistent from the k-th pass on every residual (or Jacobian)
 *                      is NaN: the solve stops with x = the best point
 *                      evaluated (bitwise), cost(x) = res.cost, the
 *                      non-finite passes counted
 *  rank_deficient      duplicated column in a nonlinear model, p identical
 *                      columns, an all-zero Jacobian: converged, same cost as
 *                      the reduced model, undetermined variances +INF
 *  p_vs_m              p > m: NLSQ_EINVAL for every entry point; p == m:
 *                      exact solution, reduced_chi2 NaN, covariance NaN
 *                      (scaled) or finite (absolute_sigma)
 *  zero_rows           half the rows identically zero: same x / cost as the
 *                      compact problem; all rows zero: CONVERGED_ZERO at x0
 *  scales              residuals scaled by 1e+-100, 1e+-150, parameters by
 *                      1e+-150: the same parameters (relative 1e-10), cost
 *                      scaled by s^2, same covariance; residuals so large
 *                      that the cost overflows: LM, hybrid and Adam fit as
 *                      unscaled (cost reported +inf), the covariance a clear
 *                      error, no "converged"
 *  pinned_bounds       lower == upper for one / all parameters, optimum
 *                      outside the box, start outside the box: pinned values
 *                      bitwise kept, the rest equal to the reduced fit
 * XPCS (when built with the XPCS library):
 *  xpcs_singular_start the benchmark's start point (alpha = beta = 0) makes the
 *                      D0 / D_offset and gamma_dot_0 / gamma_dot_offset
 *                      columns identical: covariance there has rank <= p-2
 *                      with +INF variances, and LM from there still finds
 *                      the truth
 *  xpcs_alloc_fail     the k-th malloc/calloc/realloc of the XPCS library
 *                      (reader, model, start point) fails, for every k, via
 *                      the linker's --wrap (no LD_PRELOAD, no glibc hooks):
 *                      a negative status, no crash, nothing leaked, no HDF5
 *                      object left open; the solver's own allocations on the
 *                      XPCS problem through opt.allocator likewise
 *  xpcs_bad_paths      a path through a regular file (ENOTDIR), a FIFO,
 *                      /dev/null, a symlink loop, a name longer than
 *                      PATH_MAX, "", permission denied (skipped when running
 *                      as root, which bypasses permissions; the ENOTDIR case
 *                      covers "cannot be opened" there): NLSQ_XPCS_EFILE
 *  xpcs_bytes          random bytes of 1..100000 bytes, the HDF5 signature
 *                      followed by junk, and a valid file truncated at 40
 *                      offsets (every 1/32 of the file plus small ones), for
 *                      both layouts: EFILE/EFORMAT on open or read, never 0
 *  xpcs_shrunk_on_disk a file truncated on disk after a successful open:
 *                      read_rows reports NLSQ_XPCS_EFILE
 *  xpcs_attributes     attributes of odd types / sizes on the root, groups
 *                      and matrices are ignored (the reader reads none)
 */
#define _GNU_SOURCE          /* mkfifo, symlink, truncate */
#include "common.h"

#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* A configurable test problem                                               */
/*   y_k = 2.5 exp(-1.3 t_k) + 0.4 + 0.02 noise(k),  t_k = 5 k / n_data      */
/*   EXP3:  r = s (a exp(-b t) + c - y)              p = 3                    */
/*   DUP:   r = s (a exp(-b t) + c + c' - y)         p = 4 (c, c' duplicate)  */
/*   SAME4: r = s ((x0 + x1 + x2 + x3) t - y)        p = 4, one direction     */
/*   CONST: r = s (1 + 0 x - y)                      p = 3, J = 0             */
/* with parameters used as x / ps, and rows padded with zero rows.            */
/* ------------------------------------------------------------------------ */

enum { K_EXP3, K_DUP, K_SAME4, K_CONST };
enum {
    F_NONE,
    F_NAN_R_ALL,     /* every residual NaN on every pass */
    F_INF_R_ROW,     /* row 17: +Inf residual */
    F_NINF_R_ROW,    /* row 17: -Inf residual */
    F_NAN_J,         /* every Jacobian entry of column 1 NaN */
    F_INF_J_ROW,     /* row 17, column 0: +Inf Jacobian */
    F_NAN_R_ONCE,    /* pass number `after` only: NaN residuals */
    F_NAN_R_AFTER,   /* from pass `after` on: NaN residuals at every point not
                        evaluated before (a NaN wall around the points seen) */
    F_NAN_J_AFTER,   /* from pass `after` on: NaN Jacobian at every point whose
                        Jacobian was not formed before (finite residuals) */
    F_NAN_R_BELOW    /* residuals NaN where b < `wall` */
};

typedef struct fp {
    int kind;
    size_t m;            /* rows, padding included */
    int pad;             /* 1: odd rows are zero rows (n_data = m / 2) */
    int all_zero;        /* every row zero */
    double s, ps;
    int fault;
    long after;
    double wall;
    /* tracking, valid with one thread and one chunk per pass */
    long n_calls;
    size_t n_seen;
    double seen[64][4];  /* points evaluated (F_NAN_R_AFTER) / with J (F_NAN_J_AFTER) before `after` */
    double best_cost;
    double best_x[4];
} fp;

static size_t fp_p(const fp *c) { return (c->kind == K_EXP3 || c->kind == K_CONST) ? 3 : 4; }

static fp fp_make(int kind, size_t m)
{
    fp c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.m = m;
    c.s = 1.0;
    c.ps = 1.0;
    c.best_cost = INFINITY;
    return c;
}

static int fp_eval(void *vctx, const double *xs, size_t row0, size_t n, double *r, double *J,
                   const nlsq_eval_env *env)
{
    (void)env;
    fp *c = vctx;
    const size_t p = fp_p(c);
    long call = ++c->n_calls;
    double x[4];
    for (size_t j = 0; j < p; j++) x[j] = xs[j] / c->ps;
    const size_t n_data = c->pad ? c->m / 2 : c->m;
    int known = 0;
    if (c->fault == F_NAN_R_AFTER || (c->fault == F_NAN_J_AFTER && J)) {
        for (size_t q = 0; q < c->n_seen && !known; q++)
            known = memcmp(c->seen[q], xs, p * sizeof(double)) == 0;
        if (call < c->after && !known && c->n_seen < 64 && row0 == 0)
            memcpy(c->seen[c->n_seen++], xs, p * sizeof(double));
        if (call < c->after) known = 1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t row = row0 + i;
        double *Ji = J ? J + i * p : NULL;
        if (Ji) memset(Ji, 0, p * sizeof *Ji);
        if (c->all_zero || (c->pad && (row & 1))) {
            r[i] = 0.0;
            continue;
        }
        size_t k = c->pad ? row / 2 : row;
        double t = 5.0 * (double)k / (double)n_data;
        double y = 2.5 * exp(-1.3 * t) + 0.4 + 0.02 * tc_uniform_noise(k);
        double v;
        const double g = c->s / c->ps;   /* d r / d x_scaled = s / ps * d model / d x */
        switch (c->kind) {
        case K_DUP: {
            double e = exp(-x[1] * t);
            v = x[0] * e + x[2] + x[3];
            if (Ji) { Ji[0] = g * e; Ji[1] = -g * x[0] * t * e; Ji[2] = g; Ji[3] = g; }
            break;
        }
        case K_SAME4:
            v = (x[0] + x[1] + x[2] + x[3]) * t;
            if (Ji) for (size_t j = 0; j < 4; j++) Ji[j] = g * t;
            break;
        case K_CONST:
            v = 1.0;
            break;
        default: {
            double e = exp(-x[1] * t);
            v = x[0] * e + x[2];
            if (Ji) { Ji[0] = g * e; Ji[1] = -g * x[0] * t * e; Ji[2] = g; }
            break;
        }
        }
        r[i] = c->s * (v - y);
        switch (c->fault) {
        case F_NAN_R_ALL: r[i] = NAN; break;
        case F_INF_R_ROW: if (row == 17) r[i] = INFINITY; break;
        case F_NINF_R_ROW: if (row == 17) r[i] = -INFINITY; break;
        case F_NAN_J: if (Ji) Ji[1] = NAN; break;
        case F_INF_J_ROW: if (Ji && row == 17) Ji[0] = INFINITY; break;
        case F_NAN_R_ONCE: if (call == c->after) r[i] = NAN; break;
        case F_NAN_R_AFTER: if (!known) r[i] = NAN; break;
        case F_NAN_J_AFTER: if (Ji && !known) Ji[1] = NAN; break;
        case F_NAN_R_BELOW: if (x[1] < c->wall) r[i] = NAN; break;
        default: break;
        }
    }
    if (row0 == 0 && n == c->m) {        /* a whole pass: track the best finite point */
        double f = 0.0;
        for (size_t i = 0; i < n; i++) f += r[i] * r[i];
        f *= 0.5;
        if (isfinite(f) && f < c->best_cost) {
            c->best_cost = f;
            memcpy(c->best_x, xs, p * sizeof(double));
        }
    }
    return 0;
}

/* 0.5 sum r^2 at x, no faults (long double for a reference independent of
 * the library's summation order). */
static double fp_cost(const fp *c0, const double *x)
{
    fp c = *c0;
    c.fault = F_NONE;
    double r[256];
    long double s = 0;
    for (size_t r0 = 0; r0 < c.m; r0 += 256) {
        size_t n = c.m - r0 < 256 ? c.m - r0 : 256;
        fp_eval(&c, x, r0, n, r, NULL, NULL);
        for (size_t i = 0; i < n; i++) s += (long double)r[i] * r[i];
    }
    return (double)(0.5L * s);
}

static const double x0_exp3[3] = {1.0, 0.5, 0.0};
static const double x0_dup[4] = {1.0, 0.5, 0.0, 0.0};

typedef struct fit {
    int status;
    double x[4], cov[16];
    nlsq_result res;
} fit;

static fit run_fit(tc_solver_fn solve, fp *c, const nlsq_options *opt_in, const double *x0,
                   const double *lo, const double *hi)
{
    fit o;
    memset(&o, 0, sizeof o);
    size_t p = fp_p(c);
    nlsq_problem pb = {.n_params = p, .n_rows = c->m, .eval = fp_eval, .ctx = c, .lower = lo, .upper = hi};
    nlsq_options opt = *opt_in;
    memcpy(o.x, x0, p * sizeof(double));
    o.res.covariance = o.cov;
    for (size_t k = 0; k < 16; k++) o.cov[k] = -12345.0;
    o.status = solve(&pb, &opt, o.x, &o.res);
    assert_int_equal(o.status, o.res.status);
    return o;
}

static int lm_solver(const nlsq_problem *pb, const nlsq_options *o, double *x, nlsq_result *r)
{
    return nlsq_lm(pb, o, x, r);
}

/* The fault-free fit the fault cases are compared with: LM with opt on the
 * plain K_EXP3 problem of m rows from x0_exp3, which must converge. */
static fit exp3_reference(const nlsq_options *opt, size_t m)
{
    fp c = fp_make(K_EXP3, m);
    fit o = run_fit(lm_solver, &c, opt, x0_exp3, NULL, NULL);
    assert_true(o.status > 0);
    return o;
}
static int adam_solver(const nlsq_problem *pb, const nlsq_options *o, double *x, nlsq_result *r)
{
    return nlsq_adam(pb, o, x, r);
}
static int hybrid_solver(const nlsq_problem *pb, const nlsq_options *o, double *x, nlsq_result *r)
{
    return nlsq_hybrid(pb, o, x, r);
}
/* nlsq_covariance as a "solver" (x is not changed). */
static int cov_solver(const nlsq_problem *pb, const nlsq_options *o, double *x, nlsq_result *r)
{
    double cov[16];
    return nlsq_covariance(pb, o, x, cov, r);
}

static const struct { tc_solver_fn fn; const char *name; } solvers[4] = {
    {lm_solver, "lm"}, {adam_solver, "adam"}, {hybrid_solver, "hybrid"}, {cov_solver, "covariance"},
};

static int n_cases;   /* fault cases exercised by this program (printed at the end) */
static int n_known;   /* cases that hit a known library bug (docs/reliability.md) */

/* A check for a library bug reported in docs/reliability.md ("Library bugs
 * found").  B1-B6 are fixed, so every such check is a regression test and
 * fails the run; NLSQ_FAULTS_STRICT=0 in the environment only reports them
 * (for bisecting an old library). */
static int known_bug(int ok, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int known_bug(int ok, const char *id, const char *fmt, ...)
{
    if (ok) return 1;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    const char *strict = getenv("NLSQ_FAULTS_STRICT");
    if (!strict || strcmp(strict, "0") != 0) fail_msg("library bug %s: %s", id, buf);
    print_message("  KNOWN LIBRARY BUG %s: %s\n", id, buf);
    n_known++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* (1) non-finite at the start                                               */
/* ------------------------------------------------------------------------ */

static void test_nonfinite_start(void **state)
{
    (void)state;
    /* each fault, and the word its message must contain */
    static const struct { const char *name; int fault; const char *word; } faults[] = {
        {"NaN residuals, all rows", F_NAN_R_ALL, "residuals"},
        {"+Inf residual, one row", F_INF_R_ROW, "residuals"},
        {"-Inf residual, one row", F_NINF_R_ROW, "residuals"},
        {"NaN Jacobian column", F_NAN_J, "Jacobian"},
        {"+Inf Jacobian, one entry", F_INF_J_ROW, "Jacobian"},
    };
    for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++)
        for (int s = 0; s < 4; s++)
            for (int th = 1; th <= 2; th++) {
                fp c = fp_make(K_EXP3, 400);
                c.fault = faults[f].fault;
                nlsq_options opt = tc_strict();
                tc_short_runs(&opt, th, 64, 3, 2);
                fit o = run_fit(solvers[s].fn, &c, &opt, x0_exp3, NULL, NULL);
                if (o.status != NLSQ_ENONFINITE)
                    fail_msg("%s, %s: status %d (%s), expected NLSQ_ENONFINITE", faults[f].name,
                             solvers[s].name, o.status, o.res.message);
                assert_memory_equal(o.x, x0_exp3, sizeof x0_exp3);
                assert_true(o.res.message[0] != '\0');
                if (s != 3 && !strstr(o.res.message, faults[f].word))
                    fail_msg("%s, %s: message does not say '%s': %s", faults[f].name,
                             solvers[s].name, faults[f].word, o.res.message);
                if (th == 1)
                    print_message("  %-26s %-10s -> %s: %s\n", faults[f].name, solvers[s].name,
                                  nlsq_status_name(o.status), o.res.message);
                n_cases++;
            }
}

/* ------------------------------------------------------------------------ */
/* (2) NaN on one pass in the middle                                         */
/* ------------------------------------------------------------------------ */

static void test_nonfinite_transient(void **state)
{
    (void)state;
    nlsq_options opt = tc_strict();
    opt.chunk_rows = 1000;     /* one chunk per pass: pass number = call number */
    fit ref = exp3_reference(&opt, 1000);
    assert_true(fabs(ref.x[1] - 1.3) < 0.02);
    for (long k = 2; k <= 7; k++) {
        fp c = fp_make(K_EXP3, 1000);
        c.fault = F_NAN_R_ONCE;
        c.after = k;
        fit o = run_fit(lm_solver, &c, &opt, x0_exp3, NULL, NULL);
        print_message("  NaN on pass %ld: %s, %zu it, %zu non-finite, b = %.17g (clean %.17g)\n", k,
                      nlsq_status_name(o.status), o.res.iterations, o.res.n_nonfinite, o.x[1],
                      ref.x[1]);
        assert_true(o.status > 0);
        assert_true(o.res.n_nonfinite >= 1);
        for (int j = 0; j < 3; j++)
            if (!(tc_rel_diff(o.x[j], ref.x[j]) <= 1e-8))
                fail_msg("pass %ld: x[%d] = %.17g, clean %.17g", k, j, o.x[j], ref.x[j]);
        assert_true(tc_rel_diff(o.res.cost, ref.res.cost) <= 1e-12);
        n_cases++;
    }
}

/* ------------------------------------------------------------------------ */
/* (3) NaN from some pass on, for ever                                       */
/* ------------------------------------------------------------------------ */

static void test_nonfinite_persistent(void **state)
{
    (void)state;
    nlsq_options opt = tc_strict();
    opt.chunk_rows = 1000;
    fit clean = exp3_reference(&opt, 1000);
    int n_converged_status = 0;
    for (int mode = 0; mode < 2; mode++)
        for (long k = 2; k <= 9; k++) {
            fp c = fp_make(K_EXP3, 1000);
            c.fault = mode == 0 ? F_NAN_R_AFTER : F_NAN_J_AFTER;
            c.after = k;
            fit o = run_fit(lm_solver, &c, &opt, x0_exp3, NULL, NULL);
            print_message("  NaN %s from pass %ld: %s (%s), %zu it, %zu non-finite, cost %.17g\n",
                          mode ? "Jacobian" : "residuals", k, nlsq_status_name(o.status),
                          o.res.message, o.res.iterations, o.res.n_nonfinite, o.res.cost);
            for (int j = 0; j < 3; j++) assert_true(isfinite(o.x[j]));
            /* x is the best point evaluated, its cost is res.cost */
            assert_true(tc_rel_diff(o.res.cost, fp_cost(&c, o.x)) <= 1e-12);
            assert_true(o.res.cost <= fp_cost(&c, x0_exp3) * (1 + 1e-12));
            if (mode == 0) {
                assert_memory_equal(o.x, c.best_x, 3 * sizeof(double));
                assert_true(tc_rel_diff(o.res.cost, c.best_cost) <= 1e-13);
            } else {
                /* B4 (fixed): an accepted trial point (finite, lower cost)
                 * whose Jacobian is non-finite was given up for the previous
                 * point and forgotten.  Two points whose costs tie to
                 * rounding may be ranked differently by this test's plain
                 * sum and the library's, hence the cost comparison. */
                known_bug(memcmp(o.x, c.best_x, 3 * sizeof(double)) == 0 ||
                              tc_rel_diff(o.res.cost, c.best_cost) <= 1e-13, "B4",
                          "NaN Jacobian from pass %ld: returned cost %.17g, best point "
                          "evaluated %.17g", k, o.res.cost, c.best_cost);
            }
            /* the solver must not silently claim convergence with NaN walls
             * all around: either an error, or the non-finite passes are
             * reported in res.n_nonfinite */
            if (o.status >= 0 && o.res.n_nonfinite == 0) {
                /* the wall came up after the solve had converged: the clean answer */
                assert_true(o.status > 0);
                for (int j = 0; j < 3; j++) assert_true(tc_rel_diff(o.x[j], clean.x[j]) <= 1e-8);
            } else if (o.status >= 0) {
                n_converged_status++;
                /* B2: a positive ("converged") status although the run was
                 * stopped by non-finite trial points, not by a small step */
                known_bug(o.status <= 0, "B2",
                          "NaN %s from pass %ld: status %s after %zu non-finite passes",
                          mode ? "Jacobian" : "residuals", k, nlsq_status_name(o.status),
                          o.res.n_nonfinite);
            } else {
                assert_int_equal(o.status, NLSQ_ENONFINITE);
            }
            n_cases++;
        }
    print_message("  %d of 16 persistent-NaN runs stopped by the wall returned a non-negative "
                  "status\n", n_converged_status);

    /* Adam and hybrid: NaN residuals from pass k on */
    for (int s = 1; s <= 2; s++)
        for (long k = 2; k <= 5; k++) {
            fp c = fp_make(K_EXP3, 1000);
            c.fault = F_NAN_R_AFTER;
            c.after = k;
            opt.chunk_rows = 100;
            opt.adam.batch_rows = 200;
            opt.adam.epochs = 5;
            opt.hybrid.adam_epochs = 3;
            fit o = run_fit(solvers[s].fn, &c, &opt, x0_exp3, NULL, NULL);
            print_message("  %s, NaN from call %ld: %s (%s), %zu non-finite\n", solvers[s].name, k,
                          nlsq_status_name(o.status), o.res.message, o.res.n_nonfinite);
            for (int j = 0; j < 3; j++) assert_true(isfinite(o.x[j]));
            assert_true(o.res.message[0] != '\0');
            assert_true(o.res.n_nonfinite >= 1);
            if (s == 1) assert_int_equal(o.status, NLSQ_ENONFINITE);
            else if (o.status != NLSQ_ENONFINITE)
                known_bug(0, "B2", "hybrid, NaN residuals from call %ld: status %s after %zu "
                          "non-finite passes", k, nlsq_status_name(o.status), o.res.n_nonfinite);
            /* x is a point no worse than the start */
            assert_true(fp_cost(&c, o.x) <= fp_cost(&c, x0_exp3));
            n_cases++;
        }
}

/* ------------------------------------------------------------------------ */
/* (4) rank-deficient J^T J                                                  */
/* ------------------------------------------------------------------------ */

static void test_rank_deficient(void **state)
{
    (void)state;
    nlsq_options opt = tc_strict();
    fit r3 = exp3_reference(&opt, 500);

    /* duplicated column in a nonlinear model, 1 and 2 threads */
    for (int th = 1; th <= 2; th++) {
        opt.n_threads = th;
        fp dup = fp_make(K_DUP, 500);
        fit d = run_fit(lm_solver, &dup, &opt, x0_dup, NULL, NULL);
        print_message("  duplicated column (%d thr): %s, %zu it, rank %zu, c + c' = %.17g "
                      "(reduced %.17g), var = %g %g %g %g\n", th, nlsq_status_name(d.status),
                      d.res.iterations, d.res.rank, d.x[2] + d.x[3], r3.x[2], d.cov[0], d.cov[5],
                      d.cov[10], d.cov[15]);
        assert_true(d.status > 0);
        assert_true(tc_rel_diff(d.res.cost, r3.res.cost) <= 1e-12);
        assert_true(tc_rel_diff(d.x[0], r3.x[0]) <= 1e-8);
        assert_true(tc_rel_diff(d.x[1], r3.x[1]) <= 1e-8);
        assert_true(fabs(d.x[2] + d.x[3] - r3.x[2]) <= 1e-8);
        assert_int_equal(d.res.rank, 3);
        assert_true(isinf(d.cov[10]) && d.cov[10] > 0);
        assert_true(isinf(d.cov[15]) && d.cov[15] > 0);
        assert_true(isfinite(d.cov[0]) && d.cov[0] > 0);
        assert_true(tc_rel_diff(d.cov[0], r3.cov[0] * (500.0 - 3) / (500.0 - 4)) <= 1e-6);
        n_cases++;
    }
    opt.n_threads = 1;

    /* four identical columns: rank 1 */
    {
        fp same = fp_make(K_SAME4, 300);
        const double x0[4] = {0.1, 0.2, 0.3, 0.4};
        fit o = run_fit(lm_solver, &same, &opt, x0, NULL, NULL);
        print_message("  4 identical columns: %s, rank %zu, sum %.17g\n",
                      nlsq_status_name(o.status), o.res.rank, o.x[0] + o.x[1] + o.x[2] + o.x[3]);
        assert_true(o.status > 0);
        assert_int_equal(o.res.rank, 1);
        for (int j = 0; j < 4; j++) {
            assert_true(isfinite(o.x[j]));
            assert_true(isinf(o.cov[5 * j]) && o.cov[5 * j] > 0);
        }
        /* the 1-parameter least-squares slope through the origin */
        long double sty = 0, stt = 0;
        for (size_t k = 0; k < 300; k++) {
            double t = 5.0 * (double)k / 300.0;
            double y = 2.5 * exp(-1.3 * t) + 0.4 + 0.02 * tc_uniform_noise(k);
            sty += (long double)t * y;
            stt += (long double)t * t;
        }
        assert_true(tc_rel_diff(o.x[0] + o.x[1] + o.x[2] + o.x[3], (double)(sty / stt)) <= 1e-10);
        n_cases++;
    }

    /* all-zero Jacobian: nothing to fit; converged at x0, nothing determined */
    {
        fp cst = fp_make(K_CONST, 300);
        fit o = run_fit(lm_solver, &cst, &opt, x0_exp3, NULL, NULL);
        print_message("  zero Jacobian: %s, %zu it, rank %zu\n", nlsq_status_name(o.status),
                      o.res.iterations, o.res.rank);
        assert_true(o.status > 0);
        assert_memory_equal(o.x, x0_exp3, sizeof x0_exp3);
        assert_int_equal(o.res.rank, 0);
        for (int j = 0; j < 3; j++) assert_true(isinf(o.cov[4 * j]) && o.cov[4 * j] > 0);
        n_cases++;
    }
}

/* ------------------------------------------------------------------------ */
/* (5) p > m, p == m                                                         */
/* ------------------------------------------------------------------------ */

static void test_p_vs_m(void **state)
{
    (void)state;
    nlsq_options opt = tc_strict();
    /* p > m: rejected by every entry point, callback never called */
    for (size_t m = 0; m < 3; m++)
        for (int s = 0; s < 4; s++) {
            fp c = fp_make(K_EXP3, m);
            fit o = run_fit(solvers[s].fn, &c, &opt, x0_exp3, NULL, NULL);
            assert_int_equal(o.status, NLSQ_EINVAL);
            assert_int_equal(c.n_calls, 0);
            assert_memory_equal(o.x, x0_exp3, sizeof x0_exp3);
            assert_true(o.res.message[0] != '\0');
            n_cases++;
        }
    /* p == m: interpolation */
    for (int abs_sigma = 0; abs_sigma <= 1; abs_sigma++) {
        fp c = fp_make(K_EXP3, 3);
        opt.absolute_sigma = abs_sigma;
        const double x0[3] = {2.0, 1.0, 0.5};
        fit o = run_fit(lm_solver, &c, &opt, x0, NULL, NULL);
        print_message("  p == m (absolute_sigma %d): %s, cost %.3g, reduced_chi2 %g, var0 %g\n",
                      abs_sigma, nlsq_status_name(o.status), o.res.cost, o.res.reduced_chi2,
                      o.cov[0]);
        assert_true(o.status > 0);
        assert_true(o.res.cost <= 1e-20);
        assert_true(isnan(o.res.reduced_chi2));
        for (int j = 0; j < 3; j++) {
            if (abs_sigma) assert_true(isfinite(o.cov[4 * j]) && o.cov[4 * j] > 0);
            else assert_false(isfinite(o.cov[4 * j]));  /* s^2 = 2 cost / 0: never a number */
        }
        n_cases++;
    }
}

/* ------------------------------------------------------------------------ */
/* (6) zero rows                                                             */
/* ------------------------------------------------------------------------ */

static void test_zero_rows(void **state)
{
    (void)state;
    nlsq_options opt = tc_strict();
    opt.absolute_sigma = 1;      /* (J^T J)^-1: zero rows change nothing */
    fp compact = fp_make(K_EXP3, 800);
    fit a = run_fit(lm_solver, &compact, &opt, x0_exp3, NULL, NULL);
    for (int th = 1; th <= 2; th++) {
        opt.n_threads = th;
        fp padded = fp_make(K_EXP3, 1600);
        padded.pad = 1;
        fit b = run_fit(lm_solver, &padded, &opt, x0_exp3, NULL, NULL);
        print_message("  every other row zero (%d thr): %s, x = %.17g %.17g %.17g\n", th,
                      nlsq_status_name(b.status), b.x[0], b.x[1], b.x[2]);
        assert_true(a.status > 0 && b.status > 0);
        for (int j = 0; j < 3; j++) assert_true(tc_rel_diff(a.x[j], b.x[j]) <= 1e-10);
        assert_true(tc_rel_diff(a.res.cost, b.res.cost) <= 1e-12);
        for (int k = 0; k < 9; k++) assert_true(tc_rel_diff(a.cov[k], b.cov[k]) <= 1e-8);
        assert_int_equal(b.res.n_rows, 1600);
        assert_true(tc_rel_diff(b.res.reduced_chi2, 2 * b.res.cost / (1600.0 - 3)) <= 1e-14);
        n_cases++;
    }
    opt.n_threads = 1;
    for (int s = 0; s < 3; s++) {
        fp zero = fp_make(K_EXP3, 500);
        zero.all_zero = 1;
        fit z = run_fit(solvers[s].fn, &zero, &opt, x0_exp3, NULL, NULL);
        print_message("  all rows zero, %s: %s\n", solvers[s].name, nlsq_status_name(z.status));
        assert_true(z.status >= 0);
        if (s == 0) assert_int_equal(z.status, NLSQ_CONVERGED_ZERO);
        assert_memory_equal(z.x, x0_exp3, sizeof x0_exp3);
        assert_true(z.res.cost == 0.0);
        n_cases++;
    }
}

/* ------------------------------------------------------------------------ */
/* (7) huge and tiny scales                                                  */
/* ------------------------------------------------------------------------ */

static void test_scales(void **state)
{
    (void)state;
    nlsq_options opt = tc_strict();
    fit ref = exp3_reference(&opt, 1000);
    static const double scales[][2] = {
        {1e150, 1}, {1e-150, 1}, {1e100, 1}, {1e-100, 1}, {1, 1e150}, {1, 1e-150}, {1e75, 1e-75},
    };
    for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++)
        for (int s = 0; s < 3; s += 2) {        /* LM and hybrid */
            fp c = fp_make(K_EXP3, 1000);
            c.s = scales[k][0];
            c.ps = scales[k][1];
            double x0[3];
            for (int j = 0; j < 3; j++) x0[j] = x0_exp3[j] * c.ps;
            nlsq_options o2 = opt;
            o2.hybrid.adam_epochs = 2;
            fit o = run_fit(solvers[s].fn, &c, &o2, x0, NULL, NULL);
            double worst = 0;
            for (int j = 0; j < 3; j++) {
                double d = fabs(o.x[j] / c.ps - ref.x[j]) / fmax(fabs(ref.x[j]), 1e-300);
                if (d > worst) worst = d;
            }
            /* x[2] (c) is ~0.4: relative is fine */
            double cr = o.res.cost / (c.s * c.s);
            print_message("  residuals x %g, parameters x %g, %s: %s, %zu it, max rel. dx %.2g, "
                          "cost / s^2 %.17g (ref %.17g)\n", c.s, c.ps, solvers[s].name,
                          nlsq_status_name(o.status), o.res.iterations, worst, cr, ref.res.cost);
            n_cases++;
            for (int j = 0; j < 3; j++) assert_true(isfinite(o.x[j]));
            assert_true(o.status > 0);
            /* B1: the xtol test adds the unscaled xtol to a norm scaled by
             * sqrt(diag J^T J): with tiny residuals it fires at once */
            if (!known_bug(worst <= 1e-10, "B1",
                           "residuals x %g, parameters x %g, %s: stopped with %s after %zu "
                           "iterations, parameters off by %.2g (relative)", c.s, c.ps,
                           solvers[s].name, nlsq_status_name(o.status), o.res.iterations, worst))
                continue;
            assert_true(tc_rel_diff(cr, ref.res.cost) <= 1e-10);
            /* covariance of x / ps: cov / ps^2 */
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) {
                    double v = o.cov[a * 3 + b] / (c.ps * c.ps), w = ref.cov[a * 3 + b];
                    if (!(fabs(v - w) <= 1e-7 * sqrt(ref.cov[a * 4] * ref.cov[b * 4])))
                        fail_msg("scale %g/%g: cov[%d][%d] %.17g, unscaled %.17g", c.s, c.ps, a, b,
                                 v, w);
                }
        }

    /* residuals so large that 0.5 sum r^2 overflows (|r| ~ 1e160): the
     * solver must not report convergence at an infinite cost */
    for (int s = 0; s < 4; s++) {
        fp c = fp_make(K_EXP3, 1000);
        c.s = 1e160;
        nlsq_options o2 = opt;
        o2.adam.epochs = 2;
        o2.hybrid.adam_epochs = 2;
        fit o = run_fit(solvers[s].fn, &c, &o2, x0_exp3, NULL, NULL);
        print_message("  cost overflow (|r| ~ 1e160), %s: %s (%s), cost %g\n", solvers[s].name,
                      nlsq_status_name(o.status), o.res.message, o.res.cost);
        for (int j = 0; j < 3; j++) assert_true(isfinite(o.x[j]));
        n_cases++;
        if (s == 0 || s == 2) {
            /* LM (and the hybrid's phases) work in power-of-two scaled units:
             * the fit is the unscaled one; only the reported cost (above
             * DBL_MAX) is +inf */
            assert_true(o.status > 0);
            for (int j = 0; j < 3; j++) assert_true(tc_rel_diff(o.x[j], ref.x[j]) <= 1e-9);
            assert_true(isinf(o.res.cost));
            continue;
        }
        if (s == 1) {
            /* Adam too: the same epochs as on the unscaled problem (only
             * adam.eps sees the scale) */
            fp u = fp_make(K_EXP3, 1000);
            fit a = run_fit(adam_solver, &u, &o2, x0_exp3, NULL, NULL);
            double worst = 0;
            for (int j = 0; j < 3; j++) worst = fmax(worst, tc_rel_diff(o.x[j], a.x[j]));
            print_message("  adam unscaled: %s, max rel. dx %.2g\n", nlsq_status_name(a.status),
                          worst);
            assert_int_equal(o.status, a.status);
            assert_true(worst <= 1e-6);
            assert_true(isinf(o.res.cost));
            continue;
        }
        known_bug(o.status < 0 || (s == 3 && o.status == 0), "B3", "%s: status %s (%s) with cost %g",
                  solvers[s].name, nlsq_status_name(o.status), nlsq_status_string(o.status),
                  o.res.cost);
    }
}

/* ------------------------------------------------------------------------ */
/* (8) bounds that pin parameters                                            */
/* ------------------------------------------------------------------------ */

/* The 2-parameter fit a exp(-b0 t) + c for a fixed b0, by linear least
 * squares (long double normal equations). */
static void fit_fixed_b(size_t m, double b0, double *a, double *c)
{
    long double s11 = 0, s12 = 0, s22 = 0, r1 = 0, r2 = 0;
    for (size_t k = 0; k < m; k++) {
        double t = 5.0 * (double)k / (double)m;
        double y = 2.5 * exp(-1.3 * t) + 0.4 + 0.02 * tc_uniform_noise(k);
        long double e = expl(-(long double)b0 * t);
        s11 += e * e; s12 += e; s22 += 1; r1 += e * y; r2 += y;
    }
    long double det = s11 * s22 - s12 * s12;
    *a = (double)((r1 * s22 - s12 * r2) / det);
    *c = (double)((s11 * r2 - s12 * r1) / det);
}

static void test_pinned_bounds(void **state)
{
    (void)state;
    nlsq_options opt = tc_strict();
    opt.adam.epochs = 5;
    opt.hybrid.adam_epochs = 3;
    const size_t m = 600;
    double a_ref, c_ref;
    fit_fixed_b(m, 1.0, &a_ref, &c_ref);

    /* b pinned at 1.0 (truth 1.3): LM and hybrid give the 2-parameter fit;
     * Adam keeps b exactly */
    const double lo[3] = {-INFINITY, 1.0, -INFINITY}, hi[3] = {INFINITY, 1.0, INFINITY};
    for (int s = 0; s < 3; s++)
        for (int th = 1; th <= 2; th++) {
            fp c = fp_make(K_EXP3, m);
            opt.n_threads = th;
            const double x0[3] = {1.0, 1.0, 0.0};
            fit o = run_fit(solvers[s].fn, &c, &opt, x0, lo, hi);
            print_message("  b pinned at 1, %s (%d thr): %s, a = %.17g (%.17g), c = %.17g (%.17g), "
                          "n_active %zu\n", solvers[s].name, th, nlsq_status_name(o.status), o.x[0],
                          a_ref, o.x[2], c_ref, o.res.n_active);
            assert_true(o.status >= 0);
            assert_true(o.x[1] == 1.0);
            assert_int_equal(o.res.n_active, 1);
            if (s != 1) {
                assert_true(o.status > 0);
                assert_true(tc_rel_diff(o.x[0], a_ref) <= 1e-9);
                assert_true(tc_rel_diff(o.x[2], c_ref) <= 1e-9);
            }
            n_cases++;
        }
    opt.n_threads = 1;

    /* a start outside the pinned value: projected onto it */
    {
        fp c = fp_make(K_EXP3, m);
        const double x0[3] = {1.0, 7.0, 0.0};
        fit o = run_fit(lm_solver, &c, &opt, x0, lo, hi);
        assert_true(o.status > 0);
        assert_true(o.x[1] == 1.0);
        assert_true(tc_rel_diff(o.x[0], a_ref) <= 1e-9);
        n_cases++;
    }

    /* everything pinned: nothing moves, converged, no trial pass */
    for (int s = 0; s < 3; s++) {
        fp c = fp_make(K_EXP3, m);
        const double plo[3] = {2.0, 1.5, 0.25}, phi_[3] = {2.0, 1.5, 0.25};
        const double x0[3] = {2.0, 1.5, 0.25};
        fit o = run_fit(solvers[s].fn, &c, &opt, x0, plo, phi_);
        print_message("  all pinned, %s: %s, %zu it, n_eval %zu\n", solvers[s].name,
                      nlsq_status_name(o.status), o.res.iterations, o.res.n_eval);
        assert_true(o.status >= 0);
        assert_memory_equal(o.x, x0, sizeof x0);
        assert_int_equal(o.res.n_active, 3);
        if (s == 0) {
            assert_true(o.status > 0);
            assert_int_equal(o.res.iterations, 0);
        }
        n_cases++;
    }

    /* the optimum outside the box (b <= 1.0 with truth 1.3): b ends on the
     * bound and the rest equals the pinned fit */
    {
        fp c = fp_make(K_EXP3, m);
        const double blo[3] = {-INFINITY, 0.0, -INFINITY}, bhi[3] = {INFINITY, 1.0, INFINITY};
        const double x0[3] = {1.0, 0.5, 0.0};
        fit o = run_fit(lm_solver, &c, &opt, x0, blo, bhi);
        print_message("  optimum outside the box: %s, b = %.17g, a = %.17g (%.17g)\n",
                      nlsq_status_name(o.status), o.x[1], o.x[0], a_ref);
        assert_true(o.status > 0);
        assert_true(o.x[1] == 1.0);
        assert_int_equal(o.res.n_active, 1);
        assert_true(tc_rel_diff(o.x[0], a_ref) <= 1e-8);
        assert_true(tc_rel_diff(o.x[2], c_ref) <= 1e-8);
        n_cases++;
    }
}

#ifdef NLSQ_HAVE_XPCS

/* ======================================================================== */
/* XPCS                                                                      */
/* ======================================================================== */
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>

#include "common_xpcs.h"

static const double k_phi4[4] = {10.0, 55.0, 100.0, 160.0};

/* NLSQ_TEST_TMPDIR/test_faults_<pid>_<name>, in one of 16 buffers used in
 * turn (a test holds at most 9 at once). */
static const char *tmp_name(const char *name)
{
    static char buf[16][512];
    static int slot;
    char *p = buf[slot++ % 16];
    snprintf(p, sizeof buf[0], "%s/test_faults_%ld_%s", NLSQ_TEST_TMPDIR, (long)getpid(), name);
    return p;
}

static void synth_spec(nlsq_xpcs_synth_spec *s, int layout, int f32, size_t N)
{
    nlsq_xpcs_synth_spec_default(s);
    s->layout = layout;
    s->float32 = f32;
    s->n_frames = N;
    s->n_angles = 4;
    s->phi = k_phi4;
    s->dt = 2e-2;
    s->seed = 7;
}

static void write_synth(const char *path, int layout, int f32, size_t N)
{
    nlsq_xpcs_synth_spec s;
    synth_spec(&s, layout, f32, N);
    char err[512] = "";
    int rc = nlsq_xpcs_synth_write(path, &s, err, sizeof err);
    if (rc) fail_msg("synth_write %s: %d %s", path, rc, err);
}

static void assert_no_h5_objects(void)
{
    assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

/* ------------------------------------------------------------------------ */
/* (9) the benchmark's start point: identical columns                             */
/* ------------------------------------------------------------------------ */

static void test_xpcs_singular_start(void **state)
{
    (void)state;
    nlsq_xpcs_synth_spec s;
    synth_spec(&s, NLSQ_XPCS_LAYOUT_APS_U, 0, 80);
    const size_t N = s.n_frames, P = s.n_angles;
    double *c2 = malloc(sizeof(double) * P * N * N);
    assert_non_null(c2);
    char err[512];
    for (size_t a = 0; a < P; a++)
        assert_int_equal(nlsq_xpcs_synth_rows(&s, a, 0, N, c2 + a * N * N, err, sizeof err), 0);
    nlsq_xpcs_source src = tc_mem_source(P, N, k_phi4, c2);
    nlsq_xpcs_config cfg = tc_config(s.q, s.gap, s.dt);
    nlsq_xpcs_model *m = NULL;
    assert_int_equal(nlsq_xpcs_model_create(&src, &cfg, &m, err, sizeof err), 0);
    size_t p = nlsq_xpcs_model_n_params(m);
    double x[7 + 8], cov[15 * 15];
    assert_int_equal(p, 15);
    assert_int_equal(nlsq_xpcs_initial_guess(m, NULL, x, NULL, 0), 0);
    assert_true(x[1] == 0.0 && x[4] == 0.0);   /* alpha = beta = 0 */
    nlsq_problem pb;
    assert_int_equal(nlsq_xpcs_model_problem(m, &pb), 0);
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = 2;
    nlsq_result res;
    memset(&res, 0, sizeof res);
    int st = nlsq_covariance(&pb, &opt, x, cov, &res);
    print_message("  covariance at the benchmark start: status %d, rank %zu of %zu; var D0 %g, "
                  "D_offset %g, gamma_dot_0 %g, gamma_dot_offset %g\n", st, res.rank, p, cov[0],
                  cov[2 * p + 2], cov[3 * p + 3], cov[5 * p + 5]);
    assert_int_equal(st, 0);
    assert_true(res.rank <= p - 2);
    const size_t undet[4] = {0, 2, 3, 5};
    for (int k = 0; k < 4; k++) {
        double v = cov[undet[k] * p + undet[k]];
        assert_true(isinf(v) && v > 0);
    }
    /* LM from that singular start: converges to the truth */
    memset(&res, 0, sizeof res);
    res.covariance = cov;
    st = nlsq_lm(&pb, &opt, x, &res);
    print_message("  LM from the singular start: %s, %zu it, chi2/dof %.5f, D0 %.6g (truth %g), "
                  "alpha %.4g (%g), rank %zu\n", nlsq_status_name(st), res.iterations,
                  res.reduced_chi2, x[0], s.params[0], x[1], s.params[1], res.rank);
    assert_true(st > 0);
    assert_true(fabs(res.reduced_chi2 - 1.0) < 0.1);
    assert_true(res.rank == p);
    for (int k = 0; k < 7; k++) {
        double z = (x[k] - s.params[k]) / sqrt(cov[k * p + k]);
        if (!(fabs(z) < 5)) fail_msg("parameter %d: %.6g, truth %.6g, z %.2f", k, x[k], s.params[k], z);
    }
    nlsq_xpcs_model_free(m);
    free(c2);
    n_cases += 2;
}

/* ------------------------------------------------------------------------ */
/* (10) allocation failures in the XPCS path, via ld --wrap                  */
/* ------------------------------------------------------------------------ */

/* With -Wl,--wrap=malloc,... (tests/CMakeLists.txt) every call to malloc,
 * calloc, realloc and free from this program's objects and from the static
 * nlsq / nlsq_xpcs libraries goes through these wrappers; calls made inside
 * libhdf5 and libc do not.  While armed they count allocations, fail the
 * fail_at-th one, and track the blocks allocated so that leaks are seen
 * independently of LSan. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *ptr, size_t n);
void __real_free(void *ptr);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *ptr, size_t n);
void __wrap_free(void *ptr);

#define WRAP_MAX_LIVE 16384
static pthread_mutex_t wrap_mu = PTHREAD_MUTEX_INITIALIZER;
static int wrap_armed;
static long wrap_calls, wrap_fail_at, wrap_failed;
static void *wrap_live[WRAP_MAX_LIVE];
static size_t wrap_n_live, wrap_overflow;

static int wrap_should_fail(void)   /* with wrap_mu held */
{
    wrap_calls++;
    if (wrap_calls == wrap_fail_at) { wrap_failed++; return 1; }
    return 0;
}

static void wrap_track(void *p)
{
    if (!p) return;
    if (wrap_n_live < WRAP_MAX_LIVE) wrap_live[wrap_n_live++] = p;
    else wrap_overflow++;
}

static void wrap_untrack(void *p)
{
    for (size_t i = wrap_n_live; i-- > 0;)
        if (wrap_live[i] == p) {
            wrap_live[i] = wrap_live[--wrap_n_live];
            return;
        }
}

void *__wrap_malloc(size_t n)
{
    if (!__atomic_load_n(&wrap_armed, __ATOMIC_ACQUIRE)) return __real_malloc(n);
    pthread_mutex_lock(&wrap_mu);
    void *p = wrap_should_fail() ? NULL : __real_malloc(n);
    wrap_track(p);
    pthread_mutex_unlock(&wrap_mu);
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (!__atomic_load_n(&wrap_armed, __ATOMIC_ACQUIRE)) return __real_calloc(n, size);
    pthread_mutex_lock(&wrap_mu);
    void *p = wrap_should_fail() ? NULL : __real_calloc(n, size);
    wrap_track(p);
    pthread_mutex_unlock(&wrap_mu);
    return p;
}

void *__wrap_realloc(void *ptr, size_t n)
{
    if (!__atomic_load_n(&wrap_armed, __ATOMIC_ACQUIRE)) return __real_realloc(ptr, n);
    pthread_mutex_lock(&wrap_mu);
    void *p = NULL;
    if (!wrap_should_fail()) {
        p = __real_realloc(ptr, n);
        if (p) {
            if (ptr) wrap_untrack(ptr);
            wrap_track(p);
        }
    }
    pthread_mutex_unlock(&wrap_mu);
    return p;
}

void __wrap_free(void *ptr)
{
    if (ptr && __atomic_load_n(&wrap_armed, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&wrap_mu);
        wrap_untrack(ptr);
        pthread_mutex_unlock(&wrap_mu);
    }
    __real_free(ptr);
}

static void wrap_arm(long fail_at)
{
    pthread_mutex_lock(&wrap_mu);
    wrap_calls = wrap_failed = 0;
    wrap_fail_at = fail_at;
    wrap_n_live = wrap_overflow = 0;
    pthread_mutex_unlock(&wrap_mu);
    __atomic_store_n(&wrap_armed, 1, __ATOMIC_RELEASE);
}

static void wrap_disarm(void) { __atomic_store_n(&wrap_armed, 0, __ATOMIC_RELEASE); }

/* The whole fit path of fit_xpcs on one file; every step's status checked
 * by the caller.  Returns 0 or the first negative status; *stage says where. */
typedef struct path_cfg {
    const char *path;
    int stream;          /* memory_budget 1 byte: streamed rows */
    int method;          /* 0 lm, 1 hybrid */
} path_cfg;

static int xpcs_fit_path(const path_cfg *pc, const char **stage, char *err, size_t es,
                         double *x_out, size_t *p_out)
{
    nlsq_xpcs_file *f = NULL;
    nlsq_xpcs_selection sel;
    nlsq_xpcs_model *m = NULL;
    memset(&sel, 0, sizeof sel);
    *p_out = 0;
    int rc;
    *stage = "open";
    if ((rc = nlsq_xpcs_open(pc->path, &f, err, es)) != 0) goto out;
    *stage = "select";
    if ((rc = nlsq_xpcs_select(f, NAN, 2, SIZE_MAX, &sel, err, es)) != 0) goto out;
    *stage = "read_rows";
    {
        double rows[3 * 64];
        size_t w = sel.last_frame - sel.first_frame + 1;
        if (w > 64) w = 64;
        if ((rc = nlsq_xpcs_read_rows(f, &sel, 1, 5, 3, rows, err, es)) != 0) goto out;
    }
    nlsq_xpcs_source src;
    *stage = "file_source";
    if ((rc = nlsq_xpcs_file_source(f, &sel, &src)) != 0) goto out;
    nlsq_xpcs_config cfg = tc_config(sel.q, 2e6, 2e-2);
    cfg.k0 = sel.first_frame;
    if (pc->stream) cfg.memory_budget = 1;
    *stage = "model_create";
    if ((rc = nlsq_xpcs_model_create(&src, &cfg, &m, err, es)) != 0) goto out;
    size_t p = nlsq_xpcs_model_n_params(m);
    *p_out = p;
    *stage = "initial_guess";
    if ((rc = nlsq_xpcs_initial_guess(m, NULL, x_out, err, es)) != 0) goto out;
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = 1;
    opt.max_iter = 3;
    opt.adam.epochs = 2;
    opt.hybrid.adam_epochs = 1;
    opt.adam.batch_rows = 2000;
    nlsq_result res;
    memset(&res, 0, sizeof res);
    double cov[15 * 15];
    res.covariance = cov;
    *stage = pc->method ? "nlsq_hybrid" : "nlsq_lm";
    rc = pc->method ? nlsq_hybrid(&pb, &opt, x_out, &res) : nlsq_lm(&pb, &opt, x_out, &res);
    if (rc > 0) rc = 0;
    if (rc < 0) snprintf(err, es, "%s", res.message);   /* the model's words first */
out:
    nlsq_xpcs_model_free(m);
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
    return rc;
}

static void test_xpcs_alloc_fail(void **state)
{
    (void)state;
    const char *path_u = tmp_name("alloc_apsu.h5");
    const char *path_o = tmp_name("alloc_old.h5");
    write_synth(path_u, NLSQ_XPCS_LAYOUT_APS_U, 1, 24);
    write_synth(path_o, NLSQ_XPCS_LAYOUT_APS_OLD, 0, 24);
    const path_cfg cfgs[4] = {
        {path_u, 0, 0}, {path_u, 1, 0}, {path_o, 1, 1}, {path_o, 0, 1},
    };
    /* is the wrapper linked in?  (a build without --wrap skips) */
    wrap_arm(0);
    void *volatile probe = malloc(16);
    long seen = wrap_calls;
    free(probe);
    wrap_disarm();
    if (seen == 0) {
        print_message("  SKIPPED: built without -Wl,--wrap=malloc (see tests/CMakeLists.txt)\n");
        skip();
    }
    for (int c = 0; c < 4; c++) {
        const char *stage = "";
        char err[512];
        double x[15];
        size_t p = 0;
        /* the reference run */
        wrap_arm(0);
        int rc = xpcs_fit_path(&cfgs[c], &stage, err, sizeof err, x, &p);
        long total = wrap_calls;
        size_t leaked = wrap_n_live;
        wrap_disarm();
        if (rc) fail_msg("reference run: %s: %d %s", stage, rc, err);
        assert_int_equal(leaked, 0);
        long n_enomem = 0, n_callback = 0, n_bugs = 0;
        for (long k = 1; k <= total; k++) {
            err[0] = '\0';
            wrap_arm(k);
            rc = xpcs_fit_path(&cfgs[c], &stage, err, sizeof err, x, &p);
            wrap_disarm();
            long failed = wrap_failed;
            size_t live = wrap_n_live;
            assert_int_equal(failed, 1);
            assert_int_equal(wrap_overflow, 0);
            assert_no_h5_objects();
            if (rc == 0) {
                /* a failure the library recovered from (e.g. a private table
                 * instead of a cached one): must be invisible */
                continue;
            }
            if (!(rc == NLSQ_ENOMEM || rc == NLSQ_ECALLBACK))
                fail_msg("%s, allocation %ld of %ld failed in %s: status %d (%s)", cfgs[c].path, k,
                         total, stage, rc, err);
            if (rc == NLSQ_ENOMEM) n_enomem++;
            else n_callback++;
            if (err[0] == '\0' && strcmp(stage, "file_source") != 0)
                fail_msg("allocation %ld failed in %s: status %d without a message", k, stage, rc);
            if (rc == NLSQ_ECALLBACK && !strstr(err, "memory"))
                fail_msg("allocation %ld failed in %s: ECALLBACK does not say 'memory': %s", k,
                         stage, err);
            for (size_t j = 0; j < p; j++) assert_true(isfinite(x[j]));
            if (live != 0) {
                n_bugs++;
                known_bug(0, "B6", "allocation %ld of %ld failed in %s (%s): %zu block(s) leaked",
                          k, total, stage, err, live);
                /* release them, so that LSan reports only new leaks */
                for (size_t i = 0; i < live; i++) __real_free(wrap_live[i]);
            }
        }
        print_message("  %s, %s, %s: %ld allocations, each failed once: %ld NLSQ_ENOMEM, %ld "
                      "NLSQ_ECALLBACK (model eval), %ld leaking\n",
                      c < 2 ? "APS-U float32" : "APS old float64", cfgs[c].stream ? "streamed" : "cached",
                      cfgs[c].method ? "hybrid" : "lm", total, n_enomem, n_callback, n_bugs);
        assert_true(total > 20);
        n_cases += (int)total;
    }
    remove(path_u);
    remove(path_o);
}

/* ------------------------------------------------------------------------ */
/* (11) paths that cannot be opened                                          */
/* ------------------------------------------------------------------------ */

static void expect_efile(const char *path, const char *frag)
{
    nlsq_xpcs_file *f = (nlsq_xpcs_file *)(uintptr_t)1;
    char err[512] = "";
    int rc = nlsq_xpcs_open(path, &f, err, sizeof err);
    print_message("    [%d] %.160s\n", rc, err);
    if (rc != NLSQ_XPCS_EFILE) fail_msg("%.200s: status %d (%s), expected NLSQ_XPCS_EFILE", path, rc, err);
    assert_null(f);
    assert_true(err[0] != '\0');
    assert_null(strchr(err, '\n'));
    if (frag && !strstr(err, frag)) fail_msg("message lacks '%s': %s", frag, err);
    assert_no_h5_objects();
    n_cases++;
}

static void test_xpcs_bad_paths(void **state)
{
    (void)state;
    char sub[600];
    const char *plain = tmp_name("plain.txt");
    FILE *fh = fopen(plain, "w");
    assert_non_null(fh);
    fputs("not hdf5\n", fh);
    fclose(fh);
    snprintf(sub, sizeof sub, "%s/x.h5", plain);
    expect_efile(sub, "Not a directory");

    const char *fifo = tmp_name("fifo.h5");
    remove(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    expect_efile(fifo, "not a regular file");
    remove(fifo);

    expect_efile("/dev/null", "not a regular file");
    expect_efile("", NULL);
    expect_efile(NLSQ_TEST_TMPDIR, "directory");

    const char *loop_a = tmp_name("loop_a.h5");
    const char *loop_b = tmp_name("loop_b.h5");
    remove(loop_a);
    remove(loop_b);
    assert_int_equal(symlink(loop_b, loop_a), 0);
    assert_int_equal(symlink(loop_a, loop_b), 0);
    expect_efile(loop_a, "symbolic links");
    remove(loop_a);
    remove(loop_b);

    const char *dangling = tmp_name("dangling.h5");
    remove(dangling);
    assert_int_equal(symlink("/nonexistent/nowhere.h5", dangling), 0);
    expect_efile(dangling, "No such file");
    remove(dangling);

    char *longp = malloc(PATH_MAX + 100);
    assert_non_null(longp);
    memset(longp, 'a', PATH_MAX + 99);
    longp[0] = '/';
    longp[PATH_MAX + 99] = '\0';
    expect_efile(longp, NULL);   /* ENAMETOOLONG; the message is cut at the path */
    free(longp);

    /* a symlink to a valid file opens (the positive control) */
    const char *good = tmp_name("good.h5");
    const char *link_good = tmp_name("link_good.h5");
    write_synth(good, NLSQ_XPCS_LAYOUT_APS_U, 1, 10);
    remove(link_good);
    assert_int_equal(symlink(good, link_good), 0);
    nlsq_xpcs_file *f = NULL;
    char err[512];
    assert_int_equal(nlsq_xpcs_open(link_good, &f, err, sizeof err), 0);
    nlsq_xpcs_close(f);
    remove(link_good);

    /* permission denied: root bypasses file permissions, so the check is
     * meaningless there (the ENOTDIR case above covers an unreadable path) */
    const char *noperm = tmp_name("noperm.h5");
    write_synth(noperm, NLSQ_XPCS_LAYOUT_APS_U, 1, 10);
    assert_int_equal(chmod(noperm, 0), 0);
    if (geteuid() == 0 || access(noperm, R_OK) == 0)
        print_message("  permission denied: SKIPPED (running as root, which bypasses file "
                      "permissions)\n");
    else
        expect_efile(noperm, "Permission denied");
    chmod(noperm, 0600);
    remove(noperm);
    remove(good);
    remove(plain);
}

/* ------------------------------------------------------------------------ */
/* (12) random bytes and truncated files                                     */
/* ------------------------------------------------------------------------ */

/* Open, select, read every row of every angle: returns 0 if everything
 * worked, else the first status (message in err). */
static int read_everything(const char *path, char *err, size_t es)
{
    nlsq_xpcs_file *f = NULL;
    int rc = nlsq_xpcs_open(path, &f, err, es);
    if (rc) return rc;
    nlsq_xpcs_selection sel;
    rc = nlsq_xpcs_select(f, NAN, 0, SIZE_MAX, &sel, err, es);
    if (rc == 0) {
        size_t n = sel.last_frame - sel.first_frame + 1;
        double *out = malloc(n * n * sizeof *out);
        assert_non_null(out);
        for (size_t a = 0; a < sel.n_angles && rc == 0; a++)
            rc = nlsq_xpcs_read_rows(f, &sel, a, 0, n, out, err, es);
        free(out);
        double phys[7];
        if (rc == 0) {
            int t = nlsq_xpcs_read_truth(f, phys, NULL, NULL, 0, err, es);
            if (t != 0 && t != NLSQ_XPCS_EFORMAT) rc = t;
        }
    }
    nlsq_xpcs_selection_free(&sel);
    nlsq_xpcs_close(f);
    return rc;
}

static void test_xpcs_bytes(void **state)
{
    (void)state;
    const char *path = tmp_name("bytes.h5"), *good = tmp_name("bytes_good.h5");
    const size_t sizes[] = {1, 7, 8, 511, 512, 4096, 100000};
    size_t maxn = 100000 + 4096;
    unsigned char *buf = malloc(maxn);
    assert_non_null(buf);
    int n_random = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int variant = 0; variant < 5; variant++) {
            size_t n = sizes[si];
            for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(tc_splitmix64(i * 31 + si * 7 + (uint64_t)variant) >> 56);
            /* variant 1..4: the HDF5 signature at 0, 512, 1024, 2048 (where
             * libhdf5 looks for a superblock) followed by junk */
            size_t off = variant == 0 ? SIZE_MAX : variant == 1 ? 0 : (size_t)256 << variant;
            if (off != SIZE_MAX && off + 8 <= n) memcpy(buf + off, "\211HDF\r\n\032\n", 8);
            else if (variant) continue;
            tc_write_bytes(path, buf, n);
            char err[512] = "";
            int rc = read_everything(path, err, sizeof err);
            if (rc != NLSQ_XPCS_EFILE && rc != NLSQ_XPCS_EFORMAT)
                fail_msg("%zu random bytes (signature at %zu): status %d (%s)", n, off, rc, err);
            assert_true(err[0] != '\0');
            assert_no_h5_objects();
            n_random++;
        }
    print_message("  %d random-byte files: EFILE / EFORMAT\n", n_random);
    n_cases += n_random;

    /* truncations of valid files of both layouts */
    int n_trunc = 0;
    for (int lay = 1; lay <= 2; lay++) {
        write_synth(good, lay, lay == 1, 40);
        FILE *fh = fopen(good, "rb");
        assert_non_null(fh);
        fseek(fh, 0, SEEK_END);
        long size = ftell(fh);
        fseek(fh, 0, SEEK_SET);
        unsigned char *all = malloc((size_t)size);
        assert_non_null(all);
        assert_int_equal(fread(all, 1, (size_t)size, fh), (size_t)size);
        fclose(fh);
        long cuts[48];
        int nc = 0;
        for (int k = 1; k < 32; k++) cuts[nc++] = size * k / 32;
        const long small[] = {1, 8, 40, 96, 200, 512, 1000, 2048, 4096};
        for (size_t k = 0; k < sizeof small / sizeof small[0]; k++)
            if (small[k] < size) cuts[nc++] = small[k];
        cuts[nc++] = size - 1;
        for (int k = 0; k < nc; k++) {
            tc_write_bytes(path, all, (size_t)cuts[k]);
            char err[512] = "";
            int rc = read_everything(path, err, sizeof err);
            if (rc != NLSQ_XPCS_EFILE && rc != NLSQ_XPCS_EFORMAT)
                fail_msg("%s truncated to %ld of %ld bytes: status %d (%s)",
                         lay == 1 ? "APS-U" : "APS old", cuts[k], size, rc, err);
            if (!strstr(err, path)) fail_msg("message does not name the file: %s", err);
            assert_no_h5_objects();
            n_trunc++;
        }
        free(all);
    }
    print_message("  %d truncated files: EFILE / EFORMAT, no handle left open\n", n_trunc);
    n_cases += n_trunc;
    free(buf);
    remove(path);
    remove(good);
}

/* ------------------------------------------------------------------------ */
/* (13) the file shrinks on disk after a successful open                     */
/* ------------------------------------------------------------------------ */

static void test_xpcs_shrunk_on_disk(void **state)
{
    const char *path = *state;   /* removed after the test (TC_FILE_TEST) */
    int n_silent = 0, n_tried = 0;
    for (int lay = 1; lay <= 2; lay++) {
        write_synth(path, lay, 0, 200);
        nlsq_xpcs_file *f = NULL;
        char err[512] = "";
        assert_int_equal(nlsq_xpcs_open(path, &f, err, sizeof err), 0);
        nlsq_xpcs_selection sel;
        assert_int_equal(nlsq_xpcs_select(f, NAN, 0, SIZE_MAX, &sel, err, sizeof err), 0);
        size_t n = 200;
        double *before = malloc(n * n * sizeof *before), *after = malloc(n * n * sizeof *after);
        assert_non_null(before);
        assert_non_null(after);
        size_t a = sel.n_angles - 1;   /* the last matrix: stored at the end of the file */
        assert_int_equal(nlsq_xpcs_read_rows(f, &sel, a, 0, n, before, err, sizeof err), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(truncate(path, st.st_size / 2), 0);
        /* a fresh dataset handle: another angle, then back */
        assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 0, 0, 1, after, err, sizeof err) <= 0, 1);
        err[0] = '\0';
        int rc = nlsq_xpcs_read_rows(f, &sel, a, 0, n, after, err, sizeof err);
        int same = rc == 0 && memcmp(before, after, n * n * sizeof *after) == 0;
        size_t zeros = 0;
        if (rc == 0)
            for (size_t i = 0; i < n * n; i++) zeros += after[i] == 0.0;
        print_message("  %s, %lld -> %lld bytes after open: read_rows %d (%s)%s, %zu of %zu "
                      "values now 0\n", lay == 1 ? "APS-U" : "APS old", (long long)st.st_size,
                      (long long)st.st_size / 2, rc, err, same ? ", data unchanged" : "",
                      zeros, n * n);
        assert_true(rc == 0 || rc == NLSQ_XPCS_EFILE);
        if (rc != 0) assert_non_null(strstr(err, path));
        /* B5: HDF5's sec2 driver returns zeros past the end of the file, and
         * the reader passes them on as data */
        if (!known_bug(rc != 0 || same, "B5",
                       "%s: file shrank after open, read_rows returned %zu zeros as data "
                       "without an error", lay == 1 ? "APS-U" : "APS old", zeros))
            n_silent++;
        n_tried++;
        free(before);
        free(after);
        nlsq_xpcs_selection_free(&sel);
        nlsq_xpcs_close(f);
        assert_no_h5_objects();
        n_cases++;
    }
    (void)n_silent;
    (void)n_tried;
}

/* ------------------------------------------------------------------------ */
/* (14) attributes are ignored                                               */
/* ------------------------------------------------------------------------ */

static void add_attrs(hid_t obj)
{
    if (H5Aexists(obj, "q") > 0) return;      /* reached twice */
    hid_t sp = H5Screate(H5S_SCALAR);
    double nanv = NAN;
    hid_t a = H5Acreate2(obj, "q", H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    H5Awrite(a, H5T_NATIVE_DOUBLE, &nanv);
    H5Aclose(a);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 5);
    a = H5Acreate2(obj, "dt", st, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    H5Awrite(a, st, "abcde");
    H5Aclose(a);
    H5Tclose(st);
    H5Sclose(sp);
    hsize_t big = 8000;             /* 64000 bytes: close to the compact limit */
    sp = H5Screate_simple(1, &big, NULL);
    double *v = calloc(big, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < big; i++) v[i] = i % 3 ? INFINITY : -1e308;
    a = H5Acreate2(obj, "frames", H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    H5Awrite(a, H5T_NATIVE_DOUBLE, v);
    H5Aclose(a);
    free(v);
    H5Sclose(sp);
    hsize_t zero = 0;                /* an empty attribute */
    sp = H5Screate_simple(1, &zero, NULL);
    a = H5Acreate2(obj, "empty", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

/* Attributes on the root, on the layout groups and on every matrix. */
static void add_all_attrs(hid_t fid)
{
    add_attrs(fid);
    static const char *const groups[] = {"xpcs", "exchange", "xpcs/twotime/correlation_map",
                                         "exchange/C2T_all"};
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        char part[64];
        int exists = 1;
        for (const char *c = groups[g]; exists; c++) {     /* every component must exist */
            if (*c == '/' || *c == '\0') {
                snprintf(part, sizeof part, "%.*s", (int)(c - groups[g]), groups[g]);
                exists = H5Lexists(fid, part, H5P_DEFAULT) > 0;
            }
            if (!*c) break;
        }
        if (!exists) continue;
        hid_t gid = H5Gopen2(fid, groups[g], H5P_DEFAULT);
        assert_true(gid >= 0);
        add_attrs(gid);
        H5G_info_t info;
        assert_true(H5Gget_info(gid, &info) >= 0);
        for (hsize_t k = 0; k < info.nlinks; k++) {
            char name[256];
            assert_true(H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, k, name,
                                           sizeof name, H5P_DEFAULT) > 0);
            hid_t o = H5Oopen(gid, name, H5P_DEFAULT);
            assert_true(o >= 0);
            add_attrs(o);
            H5Oclose(o);
        }
        H5Gclose(gid);
    }
}

static void test_xpcs_attributes(void **state)
{
    const char *path = *state;   /* removed after the test (TC_FILE_TEST) */
    for (int lay = 1; lay <= 2; lay++) {
        write_synth(path, lay, 1, 30);
        double before[30 * 30], after[30 * 30];
        char err[512];
        nlsq_xpcs_file *f = NULL;
        nlsq_xpcs_selection sel;
        assert_int_equal(nlsq_xpcs_open(path, &f, err, sizeof err), 0);
        assert_int_equal(nlsq_xpcs_select(f, NAN, 0, SIZE_MAX, &sel, err, sizeof err), 0);
        assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 2, 0, 30, before, err, sizeof err), 0);
        nlsq_xpcs_selection_free(&sel);
        nlsq_xpcs_close(f);

        hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        assert_true(fid >= 0);
        add_all_attrs(fid);
        H5Fclose(fid);

        assert_int_equal(nlsq_xpcs_open(path, &f, err, sizeof err), 0);
        assert_int_equal(nlsq_xpcs_select(f, NAN, 0, SIZE_MAX, &sel, err, sizeof err), 0);
        assert_int_equal(nlsq_xpcs_read_rows(f, &sel, 2, 0, 30, after, err, sizeof err), 0);
        assert_memory_equal(before, after, sizeof before);
        nlsq_xpcs_selection_free(&sel);
        nlsq_xpcs_close(f);
        assert_no_h5_objects();
        n_cases++;
    }
}

#endif

static void test_summary(void **state)
{
    (void)state;
    print_message("  %d fault cases exercised, %d hit a known library bug\n", n_cases, n_known);
    assert_true(n_cases > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nonfinite_start),
        cmocka_unit_test(test_nonfinite_transient),
        cmocka_unit_test(test_nonfinite_persistent),
        cmocka_unit_test(test_rank_deficient),
        cmocka_unit_test(test_p_vs_m),
        cmocka_unit_test(test_zero_rows),
        cmocka_unit_test(test_scales),
        cmocka_unit_test(test_pinned_bounds),
#ifdef NLSQ_HAVE_XPCS
        cmocka_unit_test(test_xpcs_singular_start),
        cmocka_unit_test(test_xpcs_alloc_fail),
        cmocka_unit_test(test_xpcs_bad_paths),
        cmocka_unit_test(test_xpcs_bytes),
        TC_FILE_TEST(test_xpcs_shrunk_on_disk, "test_faults_shrunk.h5"),
        TC_FILE_TEST(test_xpcs_attributes, "test_faults_attrs.h5"),
#endif
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
