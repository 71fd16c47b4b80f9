/*
 * gsl_xpcs - the XPCS benchmark of bench_xpcs fitted with GSL's large-scale
 * nonlinear least squares, gsl_multilarge_nlinear (a peer to compare nlsq
 * with).
 *
 * LICENSE: this file links GSL, which is GPL.  It is an optional benchmark
 * program only (built when pkg-config finds gsl, never installed); GSL is
 * never linked into the nlsq libraries.  See bench/peers/CMakeLists.txt.
 *
 * Same problem as bench_xpcs: the benchmark data of docs/xpcs-model.md generated in memory
 * through nlsq_xpcs_synth_rows (bench_xpcs_common.h; float32, same seed), the
 * same rows (full triangle with the diagonal, or --triangle upper), the same
 * start x0 (nlsq_xpcs_initial_guess on an nlsq model over the same data: the
 * benchmark's physical start with the data-driven contrast/offset init).  nlsq is
 * linked for data generation and x0 only; the fit is GSL's.
 *
 * Solver: gsl_multilarge_nlinear_trust with the LM subproblem
 * (gsl_multilarge_nlinear_trs_lm), More scaling (D_jj = running max of
 * sqrt((J^T J)_jj)), Cholesky solver on the normal equations; GSL's default
 * parameters otherwise.  GSL does not support bounds: the fit is unbounded
 * (the optimum is interior).  GSL's driver holds f (m doubles) and f_trial
 * (m doubles) in memory: its RSS grows with m.
 *
 * Stopping (1e-8 each, "in the spirit" of nlsq's ftol/xtol/gtol): GSL's own
 * gsl_multilarge_nlinear_test (xtol: |dx_i| <= xtol (xtol + |x_i|); gtol:
 * max_i |g_i| max(|x_i|, 1) <= gtol max(cost, 1)); GSL 2.7 has no ftol test
 * (its code is #if 0), so this program adds the one nlsq uses: after each
 * accepted step, stop when the largest reduction the Gauss-Newton model
 * predicts, 0.5 g^T (J^T J)^-1 g, is <= ftol * cost (computed on the
 * diagonally scaled 53 x 53 normal matrix).  --gsl-tests-only drops it.
 *
 * Callbacks - the sparse ones GSL's multilarge interface allows:
 *   f : every residual r = (c2 - g2) / sigma into GSL's m-vector;
 *   df: CblasTrans: v = J^T u and, when GSL asks, J^T J, accumulated per
 *       matrix-row span as the 9 x 9 block of the rows' columns (7 physical +
 *       that angle's contrast and offset) and scattered into the 53 x 53
 *       matrix; CblasNoTrans: v = J u (m-vector; unused by LM).
 *   The model is written here independently from the formulas of docs/xpcs-model.md
 *   (xpcs-model.md "Forward model"): per x, tables of the cumulative
 *   trapezoids CD, CG of D_k, G_k and of their derivatives w.r.t. (amplitude,
 *   exponent, offset), structure of arrays; per row, two square roots, one
 *   exp, one sin/cos pair.  On x86_64 with glibc's libmvec the callbacks run
 *   AVX2 + FMA kernels (four columns at a time, libmvec exp/sin/cos; chosen
 *   at run time, --no-simd for the scalar libm code, which also does the
 *   diagonal and row tails).
 *   Threads: GSL itself is single-threaded; both callbacks are parallelised
 *   here with pthreads over work items of 16 matrix rows (--threads, default
 *   all online cores), each thread accumulating its own 53 x 53 J^T J.
 *   Symmetric pairs: like nlsq's model (its default since 37ecb13), with the
 *   full triangle each pair (i, j), (j, i) of the symmetric c2 is one row
 *   weighted by sqrt(2) (the diagonal weight 1): the same cost, J^T J and
 *   J^T r at half the rows and half GSL's m-vectors; --literal-full evaluates
 *   both triangles row by row (as nlsq does with the same option).
 *
 * usage: gsl_xpcs [--json] [--threads N] [--scale F | --frames N] [--triangle full|upper]
 *                 [--repeat R] [--max-iter K] [--file PATH] [--literal-full]
 *                 [--gsl-tests-only] [--no-simd] ...
 *        (the options of bench_xpcs; --method is not available)
 */
#define _GNU_SOURCE
#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_multilarge_nlinear.h>
#include <gsl/gsl_vector.h>
#include <gsl/gsl_version.h>

#include "bench_xpcs_common.h"

#define NPH 7          /* physical parameters */
#define KB 9           /* columns per row: 7 + contrast + offset */
#define ITEM_ROWS 16   /* matrix rows per work item */
#define MAX_THREADS 256

/* Model constants (docs/xpcs-model.md) */
#define DG_FLOOR 1e-10
#define G1_FLOOR 1e-10
#define I_EPS2 1e-12
#define EXP_MIN (-700.0)
#define SINC_SMALL 1e-4
#define SINC_DS_SERIES 0.05   /* series for sinc' below this */

/* Callback passes of one fit and the seconds spent inside the callbacks. */
typedef struct pass_counts {
    size_t n_f, n_jtj, n_jtu, n_ju;
    double f_s, df_s;
} pass_counts;

typedef struct peer {
    size_t P, n, R, m, p;       /* angles, frames, rows per angle, rows, params */
    int upper;                  /* rows j >= i only (else all j) */
    int merged;                 /* rows j > i stand for (i, j) and (j, i): weight sqrt(2) */
    int simd;                   /* AVX2 + FMA kernels (libmvec exp/sin/cos) */
    const float *c2;            /* P x n x n */
    const double *phi;          /* P degrees */
    double A, B, eps, dt, inv_sigma;
    size_t k0;
    int threads;
    /* per-x tables, structure of arrays: C and dC/d(amplitude, exponent, offset) */
    double *CD, *CG, *dD[3], *dG[3];
    double *mem;
    pass_counts c;              /* of the current fit */
} peer;

/* ------------------------------------------------------------------------ */
/* Model                                                                     */
/* ------------------------------------------------------------------------ */

/* Cumulative trapezoid (index units) of f_k = max(amp ts_k^ex + off, floor)
 * and of its derivatives w.r.t. (amp, ex, off) (zero where floored). */
static void make_table(const peer *pc, double amp, double ex, double off, double *C,
                       double *const dC[3])
{
    double fp = 0, dp0 = 0, dp1 = 0, dp2 = 0;
    for (size_t k = 0; k < pc->n; k++) {
        double t = (double)(k + pc->k0) * pc->dt;
        double ts = t > pc->eps ? t : pc->eps;
        double lt = log(ts);
        double pw = pow(ts, ex);
        double raw = amp * pw + off;
        double f, d0, d1, d2;
        if (raw > DG_FLOOR) { f = raw; d0 = pw; d1 = amp * pw * lt; d2 = 1.0; }
        else { f = DG_FLOOR; d0 = d1 = d2 = 0.0; }
        if (k == 0) {
            C[0] = dC[0][0] = dC[1][0] = dC[2][0] = 0.0;
        } else {
            C[k] = C[k - 1] + 0.5 * (fp + f);
            dC[0][k] = dC[0][k - 1] + 0.5 * (dp0 + d0);
            dC[1][k] = dC[1][k - 1] + 0.5 * (dp1 + d1);
            dC[2][k] = dC[2][k - 1] + 0.5 * (dp2 + d2);
        }
        fp = f; dp0 = d0; dp1 = d1; dp2 = d2;
    }
}

static void peer_tables(peer *pc, const double *x)
{
    make_table(pc, x[0], x[1], x[2], pc->CD, pc->dD);
    make_table(pc, x[3], x[4], x[5], pc->CG, pc->dG);
}

/* sinc(x) = sin x / x (series below 1e-4, as docs/xpcs-model.md) */
static inline double sinc(double x)
{
    if (fabs(x) < SINC_SMALL) { double x2 = x * x; return 1.0 - x2 / 6.0 + x2 * x2 / 120.0; }
    return sin(x) / x;
}

/* sinc and its derivative (series where the closed form cancels) */
static inline void sinc_deriv(double x, double *s, double *ds)
{
    double ax = fabs(x), x2 = x * x;
    if (ax < SINC_SMALL) {
        *s = 1.0 - x2 / 6.0 + x2 * x2 / 120.0;
        *ds = x * (-1.0 / 3.0 + x2 / 30.0);
        return;
    }
    double sn = sin(x), cs = cos(x), inv = 1.0 / x;
    *s = sn * inv;
    if (ax < SINC_DS_SERIES)
        *ds = x * (-1.0 / 3.0 + x2 * (1.0 / 30.0 + x2 * (-1.0 / 840.0 + x2 / 45360.0)));
    else
        *ds = (cs - *s) * inv;   /* (x cos x - sin x) / x^2 */
}

/* Row range of matrix row i: first column and residual index. */
static inline size_t row_j0(const peer *pc, size_t i) { return pc->upper ? i : 0; }
static inline size_t row_index(const peer *pc, size_t a, size_t i)
{
    size_t n = pc->n;
    return a * pc->R + (pc->upper ? i * (2 * n - i + 1) / 2 : i * n);
}

/* What one (angle, matrix row) needs. */
typedef struct rowctx {
    const float *y;             /* c2 row i of angle a (n values) */
    size_t i, j0;
    double con, off, bc, Bdc;   /* Bdc = B d(cos)/d(phi0) */
    double is_diag, is_off;     /* 1/sigma on the diagonal, w/sigma elsewhere */
    double CDi, CGi, dDi[3], dGi[3];
} rowctx;

static void row_setup(const peer *pc, const double *x, size_t a, size_t i, rowctx *rc)
{
    const size_t n = pc->n;
    const double arg = (x[6] - pc->phi[a]) * BX_PI / 180.0;
    rc->y = pc->c2 + (a * n + i) * n;
    rc->i = i;
    rc->j0 = row_j0(pc, i);
    rc->con = x[NPH + 2 * a];
    rc->off = x[NPH + 2 * a + 1];
    rc->bc = pc->B * cos(arg);
    rc->Bdc = -pc->B * sin(arg) * BX_PI / 180.0;
    rc->is_diag = pc->inv_sigma;
    rc->is_off = pc->merged ? pc->inv_sigma * M_SQRT2 : pc->inv_sigma;
    rc->CDi = pc->CD[i];
    rc->CGi = pc->CG[i];
    for (int t = 0; t < 3; t++) { rc->dDi[t] = pc->dD[t][i]; rc->dGi[t] = pc->dG[t][i]; }
}

/* Residuals of columns [jb, je) of the row into out[j - j0]. */
static void residual_span(const peer *pc, const rowctx *rc, size_t jb, size_t je, double *out)
{
    const double A = pc->A, *CD = pc->CD, *CG = pc->CG;
    for (size_t j = jb; j < je; j++) {
        const double is = j == rc->i ? rc->is_diag : rc->is_off;
        double yj = (double)rc->y[j];
        if (!isfinite(yj)) { out[j - rc->j0] = 0.0; continue; }
        double dd = rc->CDi - CD[j], dg = rc->CGi - CG[j];
        double e = -A * sqrt(dd * dd + I_EPS2);
        if (e < EXP_MIN) e = EXP_MIN;
        double s = sinc(rc->bc * sqrt(dg * dg + I_EPS2));
        double g1 = exp(e) * s * s;
        if (!(g1 > G1_FLOOR)) g1 = G1_FLOOR;
        out[j - rc->j0] = (yj - (rc->off + rc->con * g1 * g1)) * is;
    }
}

enum { JOB_F, JOB_JTJ, JOB_JTU, JOB_JU };

/* Jacobian rows of columns [jb, je) of the row (columns of J: 7 physical,
 * contrast_a, offset_a).  kind JOB_JTJ / JOB_JTU: h (upper 9 x 9, JTJ only)
 * += J^T J and gl += J^T u, u the m-vector at the row's residual indices
 * (u[j - j0]); JOB_JU: out[j - j0] = J row . uk (uk: the 9 entries of the
 * p-vector u). */
static void jacobian_span(const peer *pc, const rowctx *rc, size_t jb, size_t je, int kind,
                          const double *u, const double *uk, double *out, double h[KB][KB],
                          double gl[KB])
{
    const double A = pc->A, bc = rc->bc, con = rc->con;
    const double *CD = pc->CD, *CG = pc->CG;
    for (size_t j = jb; j < je; j++) {
        const double is = j == rc->i ? rc->is_diag : rc->is_off;
        double jr[KB];
        if (!isfinite((double)rc->y[j])) {
            if (kind == JOB_JU) out[j - rc->j0] = 0.0;
            continue;
        }
        double dd = rc->CDi - CD[j], dg = rc->CGi - CG[j];
        double ID = sqrt(dd * dd + I_EPS2), IG = sqrt(dg * dg + I_EPS2);
        double inv_IDIG = 1.0 / (ID * IG);   /* one division for 1/ID and 1/IG */
        double e = -A * ID;
        int clamp = e < EXP_MIN;
        if (clamp) e = EXP_MIN;
        double gd = exp(e), s, ds;
        sinc_deriv(bc * IG, &s, &ds);
        double graw = gd * s * s;
        int floor_ = !(graw > G1_FLOOR);
        double g1 = floor_ ? G1_FLOOR : graw;
        if (floor_) {
            for (int k = 0; k < NPH; k++) jr[k] = 0.0;
        } else {
            double dr_dg1 = -2.0 * con * g1 * is;
            if (clamp) {
                jr[0] = jr[1] = jr[2] = 0.0;
            } else {
                double w = dr_dg1 * graw * (-A) * dd * (IG * inv_IDIG);
                for (int t = 0; t < 3; t++) jr[t] = w * (rc->dDi[t] - pc->dD[t][j]);
            }
            double dr_dPhi = dr_dg1 * gd * 2.0 * s * ds;
            double w2 = dr_dPhi * bc * dg * (ID * inv_IDIG);
            for (int t = 0; t < 3; t++) jr[3 + t] = w2 * (rc->dGi[t] - pc->dG[t][j]);
            jr[6] = dr_dPhi * rc->Bdc * IG;
        }
        jr[7] = -g1 * g1 * is;
        jr[8] = -is;
        if (kind == JOB_JU) {
            double v = 0.0;
            for (int k = 0; k < KB; k++) v += jr[k] * uk[k];
            out[j - rc->j0] = v;
            continue;
        }
        double uj = u[j - rc->j0];
        for (int k = 0; k < KB; k++) gl[k] += jr[k] * uj;
        if (kind == JOB_JTJ)
            for (int k = 0; k < KB; k++) {
                double jk = jr[k];
                for (int l = k; l < KB; l++) h[k][l] += jk * jr[l];
            }
    }
}

/* ------------------------------------------------------------------------ */
/* AVX2 + FMA: four columns at a time, exp/sin/cos from glibc's libmvec      */
/* ------------------------------------------------------------------------ */

#ifdef PEER_HAVE_MVEC
#include <immintrin.h>

#define AVX __attribute__((target("avx2,fma")))
/* libmvec's AVX2 variants (x86_64 vector function ABI, glibc >= 2.22) */
AVX __m256d _ZGVdN4v_exp(__m256d x);
AVX __m256d _ZGVdN4v_sin(__m256d x);
AVX __m256d _ZGVdN4v_cos(__m256d x);

static int have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* What both kernels start from for columns j .. j+3: the data y (float32
 * as double), its finiteness mask, dd = CD_i - CD_j and dg = CG_i - CG_j,
 * and ID = sqrt(dd^2 + eps), IG = sqrt(dg^2 + eps). */
typedef struct vpair {
    __m256d y, fin, dd, dg, ID, IG;
} vpair;

AVX static inline __attribute__((always_inline)) void pair4(const peer *pc, const rowctx *rc,
                                                            size_t j, __m256d vCDi, __m256d vCGi,
                                                            __m256d veps, vpair *v)
{
    v->y = _mm256_cvtps_pd(_mm_loadu_ps(rc->y + j));
    v->fin = _mm256_cmp_pd(_mm256_sub_pd(v->y, v->y), _mm256_setzero_pd(), _CMP_EQ_OQ);
    v->dd = _mm256_sub_pd(vCDi, _mm256_loadu_pd(pc->CD + j));
    v->dg = _mm256_sub_pd(vCGi, _mm256_loadu_pd(pc->CG + j));
    v->ID = _mm256_sqrt_pd(_mm256_fmadd_pd(v->dd, v->dd, veps));
    v->IG = _mm256_sqrt_pd(_mm256_fmadd_pd(v->dg, v->dg, veps));
}

AVX static inline __m256d vabs(__m256d v) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), v); }

AVX static inline void hsum4(__m256d v, double *out)
{
    __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
    lo = _mm_add_pd(lo, hi);
    lo = _mm_add_sd(lo, _mm_unpackhi_pd(lo, lo));
    *out += _mm_cvtsd_f64(lo);
}

/* Residuals of columns [jb, je) (vector body, scalar tail). */
AVX static void residual_span_avx2(const peer *pc, const rowctx *rc, size_t jb, size_t je,
                                   double *out)
{
    const __m256d vnegA = _mm256_set1_pd(-pc->A), veps = _mm256_set1_pd(I_EPS2);
    const __m256d vmin = _mm256_set1_pd(EXP_MIN), vfloor = _mm256_set1_pd(G1_FLOOR);
    const __m256d vbc = _mm256_set1_pd(rc->bc), vCDi = _mm256_set1_pd(rc->CDi);
    const __m256d vCGi = _mm256_set1_pd(rc->CGi), vcon = _mm256_set1_pd(rc->con);
    const __m256d voff = _mm256_set1_pd(rc->off), vis = _mm256_set1_pd(rc->is_off);
    const __m256d vsmall = _mm256_set1_pd(SINC_SMALL), one = _mm256_set1_pd(1.0);
    const __m256d c6 = _mm256_set1_pd(-1.0 / 6.0), c120 = _mm256_set1_pd(1.0 / 120.0);
    size_t j = jb;
    for (; j + 4 <= je; j += 4) {
        vpair v;
        pair4(pc, rc, j, vCDi, vCGi, veps, &v);
        __m256d y = v.y, fin = v.fin, ID = v.ID, IG = v.IG;
        __m256d gd = _ZGVdN4v_exp(_mm256_max_pd(_mm256_mul_pd(vnegA, ID), vmin));
        __m256d x = _mm256_mul_pd(vbc, IG), x2 = _mm256_mul_pd(x, x);
        __m256d s = _mm256_div_pd(_ZGVdN4v_sin(x), x);
        __m256d ser = _mm256_fmadd_pd(x2, _mm256_fmadd_pd(x2, c120, c6), one);
        s = _mm256_blendv_pd(s, ser, _mm256_cmp_pd(vabs(x), vsmall, _CMP_LT_OQ));
        __m256d g1 = _mm256_mul_pd(gd, _mm256_mul_pd(s, s));
        g1 = _mm256_blendv_pd(vfloor, g1, _mm256_cmp_pd(g1, vfloor, _CMP_GT_OQ));
        __m256d g2 = _mm256_fmadd_pd(vcon, _mm256_mul_pd(g1, g1), voff);
        __m256d r = _mm256_mul_pd(_mm256_sub_pd(y, g2), vis);
        _mm256_storeu_pd(out + (j - rc->j0), _mm256_and_pd(r, fin));
    }
    residual_span(pc, rc, j, je, out);
}

/* J^T u (and J^T J when h) over columns [jb, je) (vector body, scalar tail). */
AVX static void jacobian_span_avx2(const peer *pc, const rowctx *rc, size_t jb, size_t je,
                                   int kind, const double *u, double h[KB][KB], double gl[KB])
{
    const __m256d vnegA = _mm256_set1_pd(-pc->A), veps = _mm256_set1_pd(I_EPS2);
    const __m256d vmin = _mm256_set1_pd(EXP_MIN), vfloor = _mm256_set1_pd(G1_FLOOR);
    const __m256d vbc = _mm256_set1_pd(rc->bc), vBdc = _mm256_set1_pd(rc->Bdc);
    const __m256d vCDi = _mm256_set1_pd(rc->CDi), vCGi = _mm256_set1_pd(rc->CGi);
    const __m256d vcon = _mm256_set1_pd(rc->con);
    const __m256d vsmall = _mm256_set1_pd(SINC_SMALL), vdss = _mm256_set1_pd(SINC_DS_SERIES);
    const __m256d one = _mm256_set1_pd(1.0), two = _mm256_set1_pd(2.0);
    const __m256d c6 = _mm256_set1_pd(-1.0 / 6.0), c120 = _mm256_set1_pd(1.0 / 120.0);
    const __m256d d3 = _mm256_set1_pd(-1.0 / 3.0), d30 = _mm256_set1_pd(1.0 / 30.0);
    const __m256d d840 = _mm256_set1_pd(-1.0 / 840.0), d45360 = _mm256_set1_pd(1.0 / 45360.0);
    const __m256d vminus_is = _mm256_set1_pd(-rc->is_off);
    __m256d vdDi[3], vdGi[3];
    for (int t = 0; t < 3; t++) {
        vdDi[t] = _mm256_set1_pd(rc->dDi[t]);
        vdGi[t] = _mm256_set1_pd(rc->dGi[t]);
    }
    __m256d acc[KB * (KB + 1) / 2], ga[KB];
    for (int k = 0; k < KB * (KB + 1) / 2; k++) acc[k] = _mm256_setzero_pd();
    for (int k = 0; k < KB; k++) ga[k] = _mm256_setzero_pd();
    size_t j = jb;
    for (; j + 4 <= je; j += 4) {
        vpair v;
        pair4(pc, rc, j, vCDi, vCGi, veps, &v);
        __m256d fin = v.fin, dd = v.dd, dg = v.dg, ID = v.ID, IG = v.IG;
        __m256d inv_IDIG = _mm256_div_pd(one, _mm256_mul_pd(ID, IG));
        __m256d e = _mm256_mul_pd(vnegA, ID);
        __m256d clamp = _mm256_cmp_pd(e, vmin, _CMP_LT_OQ);
        __m256d gd = _ZGVdN4v_exp(_mm256_max_pd(e, vmin));
        __m256d x = _mm256_mul_pd(vbc, IG), x2 = _mm256_mul_pd(x, x), ax = vabs(x);
        __m256d inv = _mm256_div_pd(one, x);
        __m256d s = _mm256_mul_pd(_ZGVdN4v_sin(x), inv);
        __m256d ds = _mm256_mul_pd(_mm256_sub_pd(_ZGVdN4v_cos(x), s), inv);
        __m256d small = _mm256_cmp_pd(ax, vsmall, _CMP_LT_OQ);
        s = _mm256_blendv_pd(s, _mm256_fmadd_pd(x2, _mm256_fmadd_pd(x2, c120, c6), one), small);
        __m256d ds7 = _mm256_mul_pd(x, _mm256_fmadd_pd(x2, _mm256_fmadd_pd(x2,
                          _mm256_fmadd_pd(x2, d45360, d840), d30), d3));
        __m256d ds3 = _mm256_mul_pd(x, _mm256_fmadd_pd(x2, d30, d3));
        ds = _mm256_blendv_pd(ds, ds7, _mm256_cmp_pd(ax, vdss, _CMP_LT_OQ));
        ds = _mm256_blendv_pd(ds, ds3, small);
        __m256d graw = _mm256_mul_pd(gd, _mm256_mul_pd(s, s));
        __m256d live = _mm256_cmp_pd(graw, vfloor, _CMP_GT_OQ);   /* not floored */
        __m256d g1 = _mm256_blendv_pd(vfloor, graw, live);
        __m256d dr_dg1 = _mm256_mul_pd(_mm256_mul_pd(vcon, g1), _mm256_mul_pd(two, vminus_is));
        __m256d w = _mm256_mul_pd(_mm256_mul_pd(dr_dg1, graw),
                                  _mm256_mul_pd(_mm256_mul_pd(vnegA, dd), _mm256_mul_pd(IG, inv_IDIG)));
        __m256d wD = _mm256_and_pd(_mm256_andnot_pd(clamp, w), _mm256_and_pd(live, fin));
        __m256d dr_dPhi = _mm256_mul_pd(_mm256_mul_pd(dr_dg1, gd), _mm256_mul_pd(two, _mm256_mul_pd(s, ds)));
        dr_dPhi = _mm256_and_pd(dr_dPhi, _mm256_and_pd(live, fin));
        __m256d w2 = _mm256_mul_pd(_mm256_mul_pd(dr_dPhi, vbc), _mm256_mul_pd(dg, _mm256_mul_pd(ID, inv_IDIG)));
        __m256d jr[KB];
        for (int t = 0; t < 3; t++) {
            jr[t] = _mm256_mul_pd(wD, _mm256_sub_pd(vdDi[t], _mm256_loadu_pd(pc->dD[t] + j)));
            jr[3 + t] = _mm256_mul_pd(w2, _mm256_sub_pd(vdGi[t], _mm256_loadu_pd(pc->dG[t] + j)));
        }
        jr[6] = _mm256_mul_pd(dr_dPhi, _mm256_mul_pd(vBdc, IG));
        jr[7] = _mm256_and_pd(_mm256_mul_pd(_mm256_mul_pd(g1, g1), vminus_is), fin);
        jr[8] = _mm256_and_pd(vminus_is, fin);
        __m256d uu = _mm256_and_pd(_mm256_loadu_pd(u + (j - rc->j0)), fin);
        for (int k = 0; k < KB; k++) ga[k] = _mm256_fmadd_pd(jr[k], uu, ga[k]);
        if (kind == JOB_JTJ) {
            int q = 0;
            for (int k = 0; k < KB; k++)
                for (int l = k; l < KB; l++, q++) acc[q] = _mm256_fmadd_pd(jr[k], jr[l], acc[q]);
        }
    }
    for (int k = 0; k < KB; k++) hsum4(ga[k], &gl[k]);
    if (kind == JOB_JTJ) {
        int q = 0;
        for (int k = 0; k < KB; k++)
            for (int l = k; l < KB; l++, q++) hsum4(acc[q], &h[k][l]);
    }
    jacobian_span(pc, rc, j, je, kind, u, NULL, NULL, h, gl);
}
#else
static int have_avx2(void) { return 0; }
#endif

/* One matrix row: residuals. */
static void residual_row(const peer *pc, const double *x, size_t a, size_t i, double *out)
{
    rowctx rc;
    row_setup(pc, x, a, i, &rc);
#ifdef PEER_HAVE_MVEC
    if (pc->simd) {
        size_t jb = rc.j0;
        if (pc->merged) { residual_span(pc, &rc, jb, jb + 1, out); jb++; }   /* diagonal */
        residual_span_avx2(pc, &rc, jb, pc->n, out);
        return;
    }
#endif
    residual_span(pc, &rc, rc.j0, pc->n, out);
}

/* One matrix row: J^T u, J^T J (kind JOB_JTU / JOB_JTJ) or J u (JOB_JU). */
static void jacobian_row(const peer *pc, const double *x, size_t a, size_t i, int kind,
                         const double *u, const double *uk, double *out, double h[KB][KB],
                         double gl[KB])
{
    rowctx rc;
    row_setup(pc, x, a, i, &rc);
#ifdef PEER_HAVE_MVEC
    if (pc->simd && kind != JOB_JU) {
        size_t jb = rc.j0;
        if (pc->merged) { jacobian_span(pc, &rc, jb, jb + 1, kind, u, uk, out, h, gl); jb++; }
        jacobian_span_avx2(pc, &rc, jb, pc->n, kind, u, h, gl);
        return;
    }
#endif
    jacobian_span(pc, &rc, rc.j0, pc->n, kind, u, uk, out, h, gl);
}

/* ------------------------------------------------------------------------ */
/* Parallel passes                                                           */
/* ------------------------------------------------------------------------ */

typedef struct job {
    const peer *pc;
    const double *x;
    int kind;
    const double *u;       /* JTJ/JTU: m-vector; JU: p-vector */
    double *out;           /* F: f; JU: v (m-vectors) */
    atomic_size_t next;
    size_t n_items, items_per_angle;
    double *acc;           /* per thread: p*p (JTJ) + p (J^T u) */
} job;

typedef struct worker_arg { job *jb; int t; } worker_arg;

static void *worker(void *v)
{
    worker_arg *wa = v;
    job *jb = wa->jb;
    const peer *pc = jb->pc;
    const size_t p = pc->p;
    double *H = jb->acc ? jb->acc + (size_t)wa->t * (p * p + p) : NULL;
    double *G = H ? H + p * p : NULL;
    for (;;) {
        size_t it = atomic_fetch_add(&jb->next, 1);
        if (it >= jb->n_items) break;
        size_t a = it / jb->items_per_angle;
        size_t i0 = (it % jb->items_per_angle) * ITEM_ROWS;
        size_t i1 = i0 + ITEM_ROWS < pc->n ? i0 + ITEM_ROWS : pc->n;
        if (jb->kind == JOB_F) {
            for (size_t i = i0; i < i1; i++)
                residual_row(pc, jb->x, a, i, jb->out + row_index(pc, a, i));
            continue;
        }
        size_t cols[KB];
        for (int k = 0; k < NPH; k++) cols[k] = (size_t)k;
        cols[NPH] = NPH + 2 * a;
        cols[NPH + 1] = NPH + 2 * a + 1;
        if (jb->kind == JOB_JU) {
            double uk[KB];
            for (int k = 0; k < KB; k++) uk[k] = jb->u[cols[k]];
            for (size_t i = i0; i < i1; i++)
                jacobian_row(pc, jb->x, a, i, JOB_JU, NULL, uk, jb->out + row_index(pc, a, i),
                             NULL, NULL);
            continue;
        }
        double h[KB][KB], gl[KB];
        memset(h, 0, sizeof h);
        memset(gl, 0, sizeof gl);
        for (size_t i = i0; i < i1; i++)
            jacobian_row(pc, jb->x, a, i, jb->kind, jb->u + row_index(pc, a, i), NULL, NULL, h,
                         gl);
        for (int k = 0; k < KB; k++) {
            G[cols[k]] += gl[k];
            if (jb->kind == JOB_JTJ)
                for (int l = k; l < KB; l++) H[cols[k] * p + cols[l]] += h[k][l];
        }
    }
    return NULL;
}

/* One pass over all rows with nthreads threads (the caller is thread 0). */
static int run_pass(job *jb)
{
    const peer *pc = jb->pc;
    int nt = pc->threads < 1 ? 1 : pc->threads;
    if (nt > MAX_THREADS) nt = MAX_THREADS;
    jb->items_per_angle = (pc->n + ITEM_ROWS - 1) / ITEM_ROWS;
    jb->n_items = pc->P * jb->items_per_angle;
    atomic_init(&jb->next, 0);
    pthread_t tid[MAX_THREADS];
    worker_arg wa[MAX_THREADS];
    int started = 0;
    for (int t = 1; t < nt; t++) {
        wa[t].jb = jb;
        wa[t].t = t;
        if (pthread_create(&tid[t], NULL, worker, &wa[t]) != 0) break;
        started = t;
    }
    wa[0].jb = jb;
    wa[0].t = 0;
    worker(&wa[0]);
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
    return started + 1;
}

/* ------------------------------------------------------------------------ */
/* GSL callbacks                                                             */
/* ------------------------------------------------------------------------ */

static void get_x(const gsl_vector *xv, double *x)
{
    for (size_t k = 0; k < xv->size; k++) x[k] = gsl_vector_get(xv, k);
}

/* The start of a callback's pass at xv: x read, the peer's tables built
 * (timed: the returned start time), jb zeroed and aimed at them. */
static double pass_begin(peer *pc, const gsl_vector *xv, double *x, job *jb)
{
    get_x(xv, x);
    double t0 = bx_now();
    peer_tables(pc, x);
    memset(jb, 0, sizeof *jb);
    jb->pc = pc;
    jb->x = x;
    return t0;
}

static int cb_f(const gsl_vector *xv, void *params, gsl_vector *f)
{
    peer *pc = params;
    double x[NPH + 2 * 4096];
    if (f->stride != 1 || xv->size > sizeof x / sizeof x[0]) return GSL_EINVAL;
    job jb;
    double t0 = pass_begin(pc, xv, x, &jb);
    jb.kind = JOB_F;
    jb.out = f->data;
    run_pass(&jb);
    pc->c.n_f++;
    pc->c.f_s += bx_now() - t0;
    return GSL_SUCCESS;
}

static int cb_df(CBLAS_TRANSPOSE_t TransJ, const gsl_vector *xv, const gsl_vector *u,
                 void *params, gsl_vector *v, gsl_matrix *JTJ)
{
    peer *pc = params;
    const size_t p = pc->p;
    double x[NPH + 2 * 4096];
    if (xv->size > sizeof x / sizeof x[0]) return GSL_EINVAL;
    job jb;
    double t0 = pass_begin(pc, xv, x, &jb);
    if (TransJ == CblasNoTrans) {           /* v = J u, u: p-vector */
        if (v->stride != 1) return GSL_EINVAL;
        double *uu = malloc(sizeof(double) * p);
        if (!uu) return GSL_ENOMEM;
        get_x(u, uu);
        jb.kind = JOB_JU;
        jb.u = uu;
        jb.out = v->data;
        run_pass(&jb);
        free(uu);
        pc->c.n_ju++;
        pc->c.df_s += bx_now() - t0;
        return GSL_SUCCESS;
    }
    /* v = J^T u (u: m-vector), and J^T J when asked */
    if (u->stride != 1) return GSL_EINVAL;
    int nt = pc->threads < 1 ? 1 : (pc->threads > MAX_THREADS ? MAX_THREADS : pc->threads);
    jb.acc = calloc((size_t)nt * (p * p + p), sizeof(double));
    if (!jb.acc) return GSL_ENOMEM;
    jb.kind = JTJ ? JOB_JTJ : JOB_JTU;
    jb.u = u->data;
    int used = run_pass(&jb);
    for (size_t k = 0; k < p; k++) {
        double g = 0.0;
        for (int t = 0; t < used; t++) g += jb.acc[(size_t)t * (p * p + p) + p * p + k];
        gsl_vector_set(v, k, g);
    }
    if (JTJ) {
        for (size_t k = 0; k < p; k++)
            for (size_t l = k; l < p; l++) {
                double s = 0.0;
                for (int t = 0; t < used; t++) s += jb.acc[(size_t)t * (p * p + p) + k * p + l];
                gsl_matrix_set(JTJ, k, l, s);
                gsl_matrix_set(JTJ, l, k, s);
            }
        pc->c.n_jtj++;
    } else {
        pc->c.n_jtu++;
    }
    free(jb.acc);
    pc->c.df_s += bx_now() - t0;
    return GSL_SUCCESS;
}

/* Largest reduction the Gauss-Newton model predicts, 0.5 g^T (J^T J)^-1 g,
 * on the diagonally scaled normal matrix; NAN when it is not positive
 * definite. */
static double gn_pred(const gsl_matrix *JTJ, const gsl_vector *g)
{
    size_t p = g->size;
    gsl_matrix *S = gsl_matrix_alloc(p, p);
    gsl_vector *d = gsl_vector_alloc(p), *gs = gsl_vector_alloc(p), *y = gsl_vector_alloc(p);
    double pred = NAN;
    if (!S || !d || !gs || !y) goto out;
    for (size_t k = 0; k < p; k++) {
        double a = gsl_matrix_get(JTJ, k, k);
        gsl_vector_set(d, k, a > 0 ? 1.0 / sqrt(a) : 1.0);
    }
    for (size_t k = 0; k < p; k++) {
        gsl_vector_set(gs, k, gsl_vector_get(g, k) * gsl_vector_get(d, k));
        for (size_t l = 0; l < p; l++)
            gsl_matrix_set(S, k, l,
                           gsl_matrix_get(JTJ, k, l) * gsl_vector_get(d, k) * gsl_vector_get(d, l));
    }
    if (gsl_linalg_cholesky_decomp1(S) != GSL_SUCCESS) goto out;
    if (gsl_linalg_cholesky_solve(S, gs, y) != GSL_SUCCESS) goto out;
    double dot;
    gsl_blas_ddot(gs, y, &dot);
    pred = 0.5 * dot;
out:
    gsl_matrix_free(S);
    gsl_vector_free(d);
    gsl_vector_free(gs);
    gsl_vector_free(y);
    return pred;
}

/* c2[a][i][j] == c2[a][j][i] everywhere (NaN pairs included)? */
static int symmetric(const float *c2, size_t P, size_t n)
{
    for (size_t a = 0; a < P; a++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++) {
                float x = c2[(a * n + i) * n + j], y = c2[(a * n + j) * n + i];
                if (!(x == y || (isnan(x) && isnan(y)))) return 0;
            }
    return 1;
}

/* ------------------------------------------------------------------------ */

typedef struct fit_out {
    double fit_s, cost0, cost;
    size_t iterations;
    pass_counts c;
    int info;              /* 1 xtol, 2 gtol, 3 ftol (GN prediction), 0 limit, -1 no progress, -2 error */
    const char *why;
} fit_out;

static const char *info_name(int info)
{
    switch (info) {
    case 1: return "CONVERGED_XTOL";
    case 2: return "CONVERGED_GTOL";
    case 3: return "CONVERGED_FTOL";
    case 0: return "MAX_ITER";
    case -1: return "NO_PROGRESS";
    default: return "ERROR";
    }
}
/* The run's state, shared by the stages of main.  The stages keep the old
 * order and timing boundaries: the initial guess is timed alone (start_point),
 * and each fit's wall time spans exactly workspace allocation, GSL init, the
 * iterations, the covariance and freeing the workspace (fit_once). */
typedef struct run_state {
    bx_args a;
    int gsl_tests_only, no_simd, threads;
    bx_data d;
    long rss_data, rss_before;
    size_t p, m, rows;          /* parameters, observations, GSL problem rows */
    double *x0, *x, *sigma, *times, t_init;
    fit_out *runs;
    peer pc;
    gsl_multilarge_nlinear_fdf fdf;
    gsl_multilarge_nlinear_parameters par;
    gsl_matrix *covar;
} run_state;

/* Our own flags first, then the options shared with bench_xpcs.  Returns -1
 * to go on, else the exit code (0 after --help). */
static int parse_options(int argc, char **argv, run_state *s)
{
    int ac = 0;
    char **av = malloc(sizeof(char *) * ((size_t)argc + 1));
    if (!av) return 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--gsl-tests-only")) { s->gsl_tests_only = 1; continue; }
        if (!strcmp(argv[i], "--no-simd")) { s->no_simd = 1; continue; }
        av[ac++] = argv[i];
    }
    av[ac] = NULL;
    int rc = bx_parse_args(ac, av, &s->a);
    free(av);
    if (rc) {
        if (rc < 0)
            printf("  gsl_xpcs only: --gsl-tests-only (GSL's xtol/gtol tests, no ftol test),\n"
                   "                 --no-simd (scalar libm callbacks instead of AVX2 + libmvec)\n");
        return rc < 0 ? 0 : rc;
    }
    if (strcmp(s->a.method, "lm") != 0) {
        fprintf(stderr, "gsl_xpcs: only --method lm (GSL trust region, LM subproblem)\n");
        return 2;
    }
    return -1;
}

/* x0 from an nlsq model over the same in-memory data (nlsq's start code
 * only; the fit is GSL's); allocates the per-run arrays.  0 or 1. */
static int start_point(run_state *s)
{
    nlsq_xpcs_model *model = NULL;
    int streamed = 0;
    if (bx_model_create(&s->a, &s->d, &model, &streamed) != 0) { bx_data_free(&s->d); return 1; }
    size_t p = nlsq_xpcs_model_n_params(model), m = nlsq_xpcs_model_n_rows(model);
    s->p = p;
    s->m = m;
    s->x0 = malloc(sizeof(double) * p);
    s->x = malloc(sizeof(double) * p);
    s->sigma = malloc(sizeof(double) * p);
    s->runs = calloc((size_t)s->a.repeat, sizeof *s->runs);
    s->times = malloc(sizeof(double) * (size_t)s->a.repeat);
    if (!s->x0 || !s->x || !s->sigma || !s->runs || !s->times) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    double t_init = bx_now();
    if (bx_start(&s->a, model, s->d.P, s->x0) != 0) return 1;
    s->t_init = bx_now() - t_init;
    nlsq_xpcs_model_free(model);
    if (bx_rows(s->d.N, s->d.P, s->a.triangle) != m) {
        fprintf(stderr, "gsl_xpcs: row count mismatch (%zu vs %zu)\n", m,
                bx_rows(s->d.N, s->d.P, s->a.triangle));
        return 1;
    }
    return 0;
}

/* The callbacks' problem description and x tables.  0 or 1. */
static int peer_setup(run_state *s)
{
    peer *pc = &s->pc;
    const bx_data *d = &s->d;
    memset(pc, 0, sizeof *pc);
    pc->P = d->P;
    pc->n = d->N;
    pc->merged = s->a.triangle == NLSQ_XPCS_FULL && !s->a.literal_full &&
                 symmetric(d->data32, d->P, d->N);
    pc->upper = s->a.triangle == NLSQ_XPCS_UPPER || pc->merged;
    pc->R = pc->upper ? d->N * (d->N + 1) / 2 : d->N * d->N;
    pc->m = pc->P * pc->R;   /* rows of GSL's problem; m = observations */
    s->rows = pc->m;
    pc->p = s->p;
    pc->c2 = d->data32;
    pc->phi = d->phi;
    pc->dt = d->dt;
    pc->k0 = d->file ? d->sel.first_frame : 0;
    pc->A = d->q * d->q * d->dt / 2.0;
    pc->B = d->q * d->gap * d->dt / (2.0 * BX_PI);
    pc->eps = d->dt / 2 > 1e-8 ? d->dt / 2 : 1e-8;
    pc->inv_sigma = 1.0 / 0.01;
    pc->threads = s->threads;
    pc->mem = malloc(sizeof(double) * 8 * d->N);
    if (!pc->mem) { fprintf(stderr, "out of memory\n"); return 1; }
    pc->CD = pc->mem;
    pc->CG = pc->mem + d->N;
    for (int t = 0; t < 3; t++) {
        pc->dD[t] = pc->mem + (size_t)(2 + t) * d->N;
        pc->dG[t] = pc->mem + (size_t)(5 + t) * d->N;
    }
    pc->simd = !s->no_simd && have_avx2();
    return 0;
}

/* GSL's driver: trust region, LM subproblem, More scaling, Cholesky. */
static void solver_setup(run_state *s)
{
    s->fdf = (gsl_multilarge_nlinear_fdf){.f = cb_f, .df = cb_df, .fvv = NULL, .n = s->rows,
                                          .p = s->p, .params = &s->pc};
    s->par = gsl_multilarge_nlinear_default_parameters();
    s->par.trs = gsl_multilarge_nlinear_trs_lm;
    s->par.scale = gsl_multilarge_nlinear_scale_more;
    s->par.solver = gsl_multilarge_nlinear_solver_cholesky;
    s->covar = gsl_matrix_alloc(s->p, s->p);
}

/* Iterate until a stopping test, the iteration limit or an error: GSL's
 * xtol/gtol tests, then (unless --gsl-tests-only) nlsq's ftol test on the
 * Gauss-Newton predicted reduction. */
static void iterate(const run_state *s, gsl_multilarge_nlinear_workspace *w, fit_out *F)
{
    const double xtol = s->a.xtol, gtol = s->a.gtol, ftol = s->a.ftol;
    while (F->info == 0 && F->iterations < s->a.max_iter) {
        int st = gsl_multilarge_nlinear_iterate(w);
        if (st == GSL_ENOPROG) { F->info = -1; F->why = "15 consecutive rejected steps"; break; }
        if (st != GSL_SUCCESS) { F->info = -2; F->why = gsl_strerror(st); break; }
        F->iterations++;
        int info = 0;
        if (gsl_multilarge_nlinear_test(xtol, gtol, ftol, &info, w) == GSL_SUCCESS && info) {
            F->info = info;
            F->why = info == 1 ? "GSL xtol test" : "GSL gtol test";
            break;
        }
        if (!s->gsl_tests_only) {
            double fnn = gsl_blas_dnrm2(w->f), cost = 0.5 * fnn * fnn;
            double pr = gn_pred(w->JTJ, w->g);
            if (isfinite(pr) && pr <= ftol * cost) {
                F->info = 3;
                F->why = "Gauss-Newton predicted reduction <= ftol * cost";
                break;
            }
        }
    }
}

/* sigma = sqrt(diag(s^2 (J^T J)^-1)) at the solution (GSL: (J^T J)^-1) and
 * x from the workspace. */
static void solution(run_state *s, gsl_multilarge_nlinear_workspace *w, const fit_out *F)
{
    const size_t p = s->p;
    int cst = gsl_multilarge_nlinear_covar(s->covar, w);
    double s2 = 2.0 * F->cost / (double)(s->m - p);
    for (size_t k = 0; k < p; k++) {
        double v = cst == GSL_SUCCESS ? gsl_matrix_get(s->covar, k, k) * s2 : NAN;
        s->sigma[k] = (isfinite(v) && v >= 0) ? sqrt(v) : NAN;
    }
    for (size_t k = 0; k < p; k++) s->x[k] = gsl_vector_get(w->x, k);
}

/* One timed fit from x0 into runs[r].  0, or 1 when GSL's workspace cannot
 * be allocated (the program exits 1). */
static int fit_once(run_state *s, int r)
{
    fit_out *F = &s->runs[r];
    peer *pc = &s->pc;
    pc->c = (pass_counts){0};
    double t = bx_now();
    gsl_multilarge_nlinear_workspace *w =
        gsl_multilarge_nlinear_alloc(gsl_multilarge_nlinear_trust, &s->par, s->rows, s->p);
    if (!w) { fprintf(stderr, "gsl_xpcs: gsl_multilarge_nlinear_alloc failed\n"); return 1; }
    gsl_vector_view xv0 = gsl_vector_view_array(s->x0, s->p);
    int st = gsl_multilarge_nlinear_init(&xv0.vector, &s->fdf, w);
    double fn = gsl_blas_dnrm2(w->f);
    F->cost0 = 0.5 * fn * fn;
    F->info = 0;
    F->why = "iteration limit";
    if (st != GSL_SUCCESS) { F->info = -2; F->why = gsl_strerror(st); }
    iterate(s, w, F);
    fn = gsl_blas_dnrm2(w->f);
    F->cost = 0.5 * fn * fn;
    solution(s, w, F);
    gsl_multilarge_nlinear_free(w);
    F->fit_s = bx_now() - t;
    s->times[r] = F->fit_s;
    F->c = pc->c;
    return 0;
}

/* What the report prints beside the last fit. */
typedef struct summary {
    double fit_med, rows_s, eval_rows_s, zphys, zco, red;
    long hwm;
} summary;

static summary summarise(const run_state *s)
{
    const fit_out *F = &s->runs[s->a.repeat - 1];
    summary u;
    double passes = (double)(F->c.n_jtj + F->c.n_jtu + F->c.n_f + F->c.n_ju);
    u.fit_med = bx_median(s->times, (size_t)s->a.repeat);
    u.rows_s = (double)s->m * passes / F->fit_s;
    u.eval_rows_s = (double)s->rows * passes / F->fit_s;
    u.hwm = bx_status_kib("VmHWM");
    u.zphys = bx_max_abs_z(s->x, s->d.truth, s->sigma, s->p, 1);
    u.zco = bx_max_abs_z(s->x, s->d.truth, s->sigma, s->p, 0);
    u.red = 2.0 * F->cost / (double)(s->m - s->p);
    return u;
}

static void report_json(const run_state *s, const summary *u)
{
    const fit_out *F = &s->runs[s->a.repeat - 1];
    const bx_data *d = &s->d;
    printf("{\"program\":\"gsl_xpcs\",\"solver\":\"gsl\",\"gsl_version\":\"%s\",\"method\":\"lm\"",
           GSL_VERSION);
    printf(",\"source\":\"%s\",\"streamed\":0", d->file ? "file" : "memory");
    printf(",\"simd\":%d", s->pc.simd);
    printf(",\"threads\":%d,\"N\":%zu,\"P\":%zu,\"m\":%zu,\"rows\":%zu,\"merged\":%d,\"p\":%zu"
           ",\"triangle\":\"%s\"", s->threads, d->N, d->P, s->m, s->rows, s->pc.merged, s->p,
           s->a.triangle == NLSQ_XPCS_UPPER ? "upper" : "full");
    bx_json_settings(stdout, &s->a, d->gen_s);
    bx_json_kv(stdout, "init_s", s->t_init);
    bx_json_kv(stdout, "fit_s", F->fit_s);
    bx_json_kv(stdout, "fit_s_median", u->fit_med);
    printf(",");
    bx_json_array(stdout, "fit_s_all", s->times, (size_t)s->a.repeat);
    printf(",\"iterations\":%zu,\"n_jac\":%zu,\"n_eval\":%zu,\"n_jtu\":%zu,\"n_ju\":%zu",
           F->iterations, F->c.n_jtj, F->c.n_f, F->c.n_jtu, F->c.n_ju);
    bx_json_kv(stdout, "rows_per_s", u->rows_s);
    bx_json_kv(stdout, "eval_rows_per_s", u->eval_rows_s);
    bx_json_kv(stdout, "f_callback_s", F->c.f_s);
    bx_json_kv(stdout, "df_callback_s", F->c.df_s);
    bx_json_memory(stdout, u->hwm, s->rss_data, s->rss_before);
    printf(",\"status\":\"%s\",\"stop\":\"%s\",\"ftol_test\":%d", info_name(F->info), F->why,
           !s->gsl_tests_only);
    bx_json_kv(stdout, "initial_cost", F->cost0);
    bx_json_kv(stdout, "cost", F->cost);
    bx_json_kv(stdout, "reduced_chi2", u->red);
    bx_json_kv(stdout, "max_abs_z_phys", u->zphys);
    bx_json_kv(stdout, "max_abs_z_contrast_offset", u->zco);
    bx_json_vectors_end(stdout, s->x0, s->x, s->sigma, d->truth, s->p);
}

static void report_text(const run_state *s, const summary *u)
{
    const fit_out *F = &s->runs[s->a.repeat - 1];
    const bx_data *d = &s->d;
    const size_t njac = F->c.n_jtj + F->c.n_jtu + F->c.n_ju;
    printf("%-34s GSL %s gsl_multilarge_nlinear (trust region, LM, More scaling, Cholesky)\n",
           "solver", GSL_VERSION);
    printf("%-34s %zu angles x %zu x %zu = %zu observations, %zu parameters\n", "problem", d->P,
           d->N, d->N, s->m, s->p);
    printf("%-34s %zu%s\n", "problem rows", s->rows,
           s->pc.merged ? " (symmetric pairs merged, weight sqrt(2))" : "");
    printf("%-34s %.3f s (%s)\n", d->file ? "open + load file" : "data generation", d->gen_s,
           "float32, in memory");
    printf("%-34s %.3f s (nlsq_xpcs_initial_guess, not in the fit time)\n", "initial guess",
           s->t_init);
    printf("%-34s %.3f s (incl. covariance)\n", "fit wall time", F->fit_s);
    if (s->a.repeat > 1)
        printf("%-34s %.3f s over %d fits\n", "fit wall time, median", u->fit_med, s->a.repeat);
    printf("%-34s %zu (accepted steps)\n", "iterations", F->iterations);
    printf("%-34s %zu with J^T J + %zu residuals only (+ %zu J^T u, %zu J u)\n",
           "passes (n_jac + n_eval)", F->c.n_jtj, F->c.n_f, F->c.n_jtu, F->c.n_ju);
    printf("%-34s %.3f M observations/s (%.3f M problem rows/s)\n", "rows/s per pass",
           u->rows_s / 1e6, u->eval_rows_s / 1e6);
    printf("%-34s f %.3f s (%.3f s/pass), df %.3f s (%.3f s/pass); GSL itself %.3f s\n",
           "time in the callbacks", F->c.f_s, F->c.n_f ? F->c.f_s / (double)F->c.n_f : NAN, F->c.df_s,
           njac ? F->c.df_s / (double)njac : NAN, F->fit_s - F->c.f_s - F->c.df_s);
    printf("%-34s %.1f MiB (RSS %.1f MiB with the data, %.1f MiB before the fit)\n",
           "peak RSS (VmHWM)", bx_mib(u->hwm), bx_mib(s->rss_data), bx_mib(s->rss_before));
    printf("%-34s %s (%s)\n", "status", info_name(F->info), F->why);
    printf("%-34s %.10e -> %.10e (reduced chi2 %.6f)\n", "cost", F->cost0, F->cost, u->red);
    printf("\n");
    bx_print_params(stdout, s->x0, s->x, d->truth, s->sigma, s->p);
}

/* The fits, each reported on one line with --repeat; 1 when one ended in a
 * GSL error, 0 otherwise; -2 when the workspace could not be allocated. */
static int fit_all(run_state *s)
{
    int worst = 0;
    for (int r = 0; r < s->a.repeat; r++) {
        if (fit_once(s, r) != 0) return -2;
        const fit_out *F = &s->runs[r];
        if (F->info == -2) {
            worst = 1;
            fprintf(stderr, "gsl_xpcs: fit %d: %s\n", r + 1, F->why);
        }
        if (!s->a.json && !s->a.quiet && s->a.repeat > 1)
            printf("  fit %d/%d: %.3f s, %zu iterations, %zu + %zu passes, cost %.10e, %s\n", r + 1,
                   s->a.repeat, F->fit_s, F->iterations, F->c.n_jtj, F->c.n_f, F->cost,
                   info_name(F->info));
    }
    return worst;
}

int main(int argc, char **argv)
{
    static run_state s;   /* zeroed */
    int rc = parse_options(argc, argv, &s);
    if (rc >= 0) return rc;
    gsl_set_error_handler_off();
    s.threads = bx_threads(&s.a);
    if (bx_data_ready(&s.a, 1, &s.d, &s.rss_data) != 0) return 1;
    if (start_point(&s) != 0 || peer_setup(&s) != 0) return 1;
    s.rss_before = bx_status_kib("VmRSS");
    solver_setup(&s);
    if (!s.a.json && !s.a.quiet)
        printf("gsl_xpcs: GSL %s multilarge trust/LM, %zu angles x %zu x %zu (%s), m = %zu (%zu rows%s), "
               "p = %zu, %d callback thread%s, %s kernels\n",
               GSL_VERSION, s.d.P, s.d.N, s.d.N,
               s.a.triangle == NLSQ_XPCS_UPPER ? "upper triangle" : "full", s.m, s.rows,
               s.pc.merged ? ": symmetric pairs merged" : "", s.p, s.threads,
               s.threads == 1 ? "" : "s", s.pc.simd ? "AVX2 + libmvec" : "scalar libm");
    int worst = fit_all(&s);
    if (worst < 0) return 1;
    summary u = summarise(&s);
    if (s.a.json) report_json(&s, &u);
    else report_text(&s, &u);
    gsl_matrix_free(s.covar);
    free(s.pc.mem);
    free(s.x0); free(s.x); free(s.sigma); free(s.runs); free(s.times);
    bx_data_free(&s.d);
    return worst;
}
