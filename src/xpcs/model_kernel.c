/*
 * model_kernel.c - the XPCS model's inner loop, four entries at a time.
 *
 * For each entry (i, j) of a segment (see model_kernel.h), exactly the docs/xpcs-model.md
 * forward model:
 *     dCd = CD_i - CD_j,  I_D = sqrt(dCd^2 + 1e-12),  g1d = exp(max(-A I_D, -700))
 *     dCg = CG_i - CG_j,  I_G = sqrt(dCg^2 + 1e-12),  Phi = bc I_G
 *     g1 = max(g1d sinc(Phi)^2, 1e-10),  g2 = offset + contrast g1^2
 *     r = w (c2 - g2) / sigma      (0, with a zero Jacobian row, where c2 is NaN/Inf)
 * and its analytic derivatives (zero where the -700 clamp or the 1e-10 floor
 * is active).
 *
 * The AVX2+FMA version computes four entries per step with its own exp and
 * sin/cos polynomials: gcc turns a loop over sin() and cos() into calls of the
 * scalar sincos(), which never vectorise.  exp: Cody-Waite reduction by ln 2
 * and a degree-13 Taylor polynomial (|r| <= 0.35, error < 1 ulp-ish); sin and
 * cos: reduction by pi/2 in three parts and Taylor polynomials to degree 17/18
 * on |r| <= pi/4 (truncation < 1e-19); a vector whose four |Phi| are all
 * below 2 (most of them) takes sinc and sinc' from their own Taylor
 * polynomials instead (no reduction, no division).  Lanes with
 * |Phi| > 1e5, where the three-part reduction loses accuracy, are redone
 * with libm.  A segment tail
 * shorter than four entries goes through the same vector code on padded
 * copies, so an entry's result never depends on its position in a segment.
 * It works in tiles of XK_TILE entries and two stages: first, over the whole
 * tile, what does not depend on the angle (I_D, I_G, exp, -A dCd), then the
 * angle's part (sin/cos of Phi, g1, r, J).  One entry's chain of sqrt, exp
 * and sin/cos is long; loops of independent short iterations let the CPU
 * overlap them.  Every operation is the one of the one-stage kernel it
 * replaced, in the same order: r and J are bitwise unchanged.
 * The portable version uses libm and the formulas as written above.
 */
#include "model_kernel.h"
#include "physics.h"

#include <math.h>
#include <string.h>

#define XK_SINC_SERIES NLSQ__XPCS_SINC_SERIES
#define XK_SINC_TAYLOR NLSQ__XPCS_SINC_TAYLOR
#define XK_FLOOR NLSQ__XPCS_G1_FLOOR
#define XK_CLAMP NLSQ__XPCS_EXP_CLAMP
#define XK_EPS2 NLSQ__XPCS_EPS2
#define XK_TILE 64         /* entries per stage of the AVX2 kernel */

/* ------------------------------------------------------------------ portable */

static void sinc_and_derivative(double x, int deriv, double *s, double *ds)
{
    double ax = fabs(x), x2 = x * x;
    if (ax < XK_SINC_SERIES) {
        *s = 1.0 - x2 / 6.0 + x2 * x2 / 120.0;
        *ds = x * (-1.0 / 3.0 + x2 / 30.0);
        return;
    }
    double sn = sin(x);
    *s = sn / x;
    if (!deriv) { *ds = 0.0; return; }
    if (ax < XK_SINC_TAYLOR)
        *ds = x * (-1.0 / 3.0 + x2 * (1.0 / 30.0 + x2 * (-1.0 / 840.0 +
                   x2 * (1.0 / 45360.0 - x2 / 3991680.0))));
    else
        *ds = (x * cos(x) - sn) / x2;
}

static void segment_portable(const xk_seg *s, double ws_diag, const xk_tab *T, size_t i,
                             size_t j0, size_t len, const float *y32, const double *y64,
                             double *r, double *J, size_t ld)
{
    const int lam = s->laminar;
    const size_t np = lam ? 7 : 3;
    for (size_t t = 0; t < len; t++) {
        size_t j = j0 + t;
        const double ws = j == i ? ws_diag : s->ws;
        double y = y32 ? (double)y32[t] : y64[t];
        if (!isfinite(y)) {
            r[t] = 0.0;
            if (J) for (size_t c = 0; c < np + 2; c++) J[c * ld + t] = 0.0;
            continue;
        }
        double dCd = T->CD[i] - T->CD[j];
        double ID = sqrt(dCd * dCd + XK_EPS2);
        double e = -s->A * ID;
        int clampD = !(e >= XK_CLAMP);
        if (clampD) e = XK_CLAMP;
        double g1d = exp(e);
        double sinc = 1.0, dsinc = 0.0, IG = 0.0, dCg = 0.0;
        if (lam) {
            dCg = T->CG[i] - T->CG[j];
            IG = sqrt(dCg * dCg + XK_EPS2);
            sinc_and_derivative(s->bc * IG, J != NULL, &sinc, &dsinc);
        }
        double g1raw = g1d * sinc * sinc;
        int floor_ = !(g1raw > XK_FLOOR);
        double g1 = floor_ ? XK_FLOOR : g1raw;
        double g2 = s->off + s->con * g1 * g1;
        r[t] = ws * (y - g2);
        if (!J) continue;
        double f = floor_ ? 0.0 : -ws * s->con * 2.0 * g1;
        double wD = clampD ? 0.0 : f * g1raw * (-s->A) * dCd / ID;
        for (int q = 0; q < 3; q++) J[q * ld + t] = wD * (T->dCD[q][i] - T->dCD[q][j]);
        if (lam) {
            double fp = f * g1d * 2.0 * sinc * dsinc;
            double w2 = fp * s->bc * dCg / IG;
            for (int q = 0; q < 3; q++) J[(3 + q) * ld + t] = w2 * (T->dCG[q][i] - T->dCG[q][j]);
            J[6 * ld + t] = fp * s->Bdc * IG;
        }
        J[np * ld + t] = -ws * g1 * g1;
        J[(np + 1) * ld + t] = -ws;
    }
}

/* ------------------------------------------------------------------- AVX2 */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define XK_HAVE_AVX2 1
#define XK_AVX __attribute__((target("avx2,fma"), always_inline)) static inline

XK_AVX __m256d v(double c) { return _mm256_set1_pd(c); }

XK_AVX __m256d blend(__m256d mask, __m256d if_true, __m256d if_false)
{
    return _mm256_blendv_pd(if_false, if_true, mask);
}

/* Constants stored as four copies (32-byte aligned), so that an FMA or a
 * multiplication takes them straight from memory: a broadcast per use was
 * about a sixth of the kernel's instructions (the loop needs more than the
 * 16 vector registers, so the compiler re-broadcast them every step). */
typedef double xk_q4[4] __attribute__((aligned(32)));
#define Q4(c) {c, c, c, c}

XK_AVX __m256d ld4(const xk_q4 c) { return _mm256_load_pd(c); }

/* c[0] x^(n-1) + ... + c[n-1] by Horner's rule, one FMA per coefficient
 * (the polynomials of exp_pd and sincos_pd; n is a compile-time constant,
 * so the loop unrolls into the same FMAs). */
XK_AVX __m256d horner(__m256d x, const xk_q4 *c, int n)
{
    __m256d p = ld4(c[0]);
    for (int k = 1; k < n; k++) p = _mm256_fmadd_pd(p, x, ld4(c[k]));
    return p;
}

/* Taylor coefficients, highest degree first. */
static const xk_q4 k_exp_c[14] = {
    Q4(1.0 / 6227020800.0), Q4(1.0 / 479001600.0), Q4(1.0 / 39916800.0), Q4(1.0 / 3628800.0),
    Q4(1.0 / 362880.0), Q4(1.0 / 40320.0), Q4(1.0 / 5040.0), Q4(1.0 / 720.0), Q4(1.0 / 120.0),
    Q4(1.0 / 24.0), Q4(1.0 / 6.0), Q4(0.5), Q4(1.0), Q4(1.0)};              /* 1/13! .. 1/0! */
static const xk_q4 k_sin_c[8] = {
    Q4(1.0 / 355687428096000.0), Q4(-1.0 / 1307674368000.0), Q4(1.0 / 6227020800.0),
    Q4(-1.0 / 39916800.0), Q4(1.0 / 362880.0), Q4(-1.0 / 5040.0), Q4(1.0 / 120.0),
    Q4(-1.0 / 6.0)};                                                      /* 1/17! .. */
static const xk_q4 k_cos_c[9] = {
    Q4(1.0 / 6402373705728000.0), Q4(-1.0 / 20922789888000.0), Q4(1.0 / 87178291200.0),
    Q4(-1.0 / 479001600.0), Q4(1.0 / 3628800.0), Q4(-1.0 / 40320.0), Q4(1.0 / 720.0),
    Q4(-1.0 / 24.0), Q4(0.5)};                                            /* 1/18! .. 1/2! */
/* sinc's series (small |x|) and sinc' Taylor polynomial (|x| < SINC_TAYLOR) */
static const xk_q4 k_sinc_c[3] = {Q4(1.0 / 120.0), Q4(-1.0 / 6.0), Q4(1.0)};
static const xk_q4 k_dsinc_s[2] = {Q4(1.0 / 30.0), Q4(-1.0 / 3.0)};
static const xk_q4 k_dsinc_t[5] = {Q4(-1.0 / 3991680.0), Q4(1.0 / 45360.0), Q4(-1.0 / 840.0),
                                   Q4(1.0 / 30.0), Q4(-1.0 / 3.0)};
/* |x| below XK_SINC_POLY in every lane of a vector: sinc and sinc' by their
 * Taylor polynomials in x^2 (no range reduction, no division; truncation
 * below 1e-18 there, rounding ~1e-16 relative, like sin(x)/x) */
#define XK_SINC_POLY 2.0
static const xk_q4 k_sinc_p[12] = {                 /* (-1)^k / (2k+1)!, k = 11 .. 0 */
    Q4(-1.0 / 25852016738884976640000.0), Q4(1.0 / 51090942171709440000.0),
    Q4(-1.0 / 121645100408832000.0), Q4(1.0 / 355687428096000.0), Q4(-1.0 / 1307674368000.0),
    Q4(1.0 / 6227020800.0), Q4(-1.0 / 39916800.0), Q4(1.0 / 362880.0), Q4(-1.0 / 5040.0),
    Q4(1.0 / 120.0), Q4(-1.0 / 6.0), Q4(1.0)};
static const xk_q4 k_dsinc_p[11] = {     /* sinc'(x) / x: (-1)^(m+1) (2m+2) / (2m+3)!, m = 10 .. 0 */
    Q4(-22.0 / 25852016738884976640000.0), Q4(20.0 / 51090942171709440000.0),
    Q4(-18.0 / 121645100408832000.0), Q4(16.0 / 355687428096000.0),
    Q4(-14.0 / 1307674368000.0), Q4(12.0 / 6227020800.0), Q4(-10.0 / 39916800.0),
    Q4(8.0 / 362880.0), Q4(-6.0 / 5040.0), Q4(4.0 / 120.0), Q4(-2.0 / 6.0)};
static const xk_q4 k_poly = Q4(XK_SINC_POLY);
static const xk_q4 k_one = Q4(1.0), k_two = Q4(2.0), k_sign = Q4(-0.0), k_inf = Q4(INFINITY);
static const xk_q4 k_floor = Q4(XK_FLOOR), k_clamp = Q4(XK_CLAMP), k_big = Q4(1e5);
static const xk_q4 k_series = Q4(XK_SINC_SERIES), k_taylor = Q4(XK_SINC_TAYLOR);
static const xk_q4 k_log2e = Q4(1.4426950408889634074), k_2_pi = Q4(0.63661977236758134308);
static const xk_q4 k_ln2[2] = {Q4(6.93147180369123816490e-01), Q4(1.90821492927058770002e-10)};
static const xk_q4 k_pi_2[3] = {Q4(1.57079632673412561417e+00), Q4(6.07710050630396597660e-11),
                                Q4(2.02226624871116645580e-21)};

/* exp(x) for x in [-708, 0] */
XK_AVX __m256d exp_pd(__m256d x)
{
    __m256d n = _mm256_round_pd(_mm256_mul_pd(x, ld4(k_log2e)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, ld4(k_ln2[0]), x);
    r = _mm256_fnmadd_pd(n, ld4(k_ln2[1]), r);
    __m256d p = horner(r, k_exp_c, 14);
    __m256i e = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n));
    e = _mm256_slli_epi64(_mm256_add_epi64(e, _mm256_set1_epi64x(1023)), 52);
    return _mm256_mul_pd(p, _mm256_castsi256_pd(e));
}

/* sin and cos of x, |x| <= 1e5 (other lanes are fixed by the caller) */
XK_AVX void sincos_pd(__m256d x, __m256d *so, __m256d *co)
{
    __m256d q = _mm256_round_pd(_mm256_mul_pd(x, ld4(k_2_pi)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(q, ld4(k_pi_2[0]), x);
    r = _mm256_fnmadd_pd(q, ld4(k_pi_2[1]), r);
    r = _mm256_fnmadd_pd(q, ld4(k_pi_2[2]), r);
    __m256d r2 = _mm256_mul_pd(r, r);
    __m256d ps = horner(r2, k_sin_c, 8);
    ps = _mm256_fmadd_pd(_mm256_mul_pd(ps, r2), r, r);  /* r + r^3 (...) */
    __m256d pc = horner(r2, k_cos_c, 9);
    pc = _mm256_fnmadd_pd(pc, r2, ld4(k_one));          /* 1 - r^2 (...) */
    __m256i qi = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(q));
    __m256i one = _mm256_set1_epi64x(1), two = _mm256_set1_epi64x(2);
    __m256d swap = _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(qi, one), one));
    __m256d negs = _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(qi, two), two));
    __m256d negc = _mm256_castsi256_pd(
        _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_add_epi64(qi, one), two), two));
    __m256d sign = ld4(k_sign);
    __m256d s = blend(swap, pc, ps), c = blend(swap, ps, pc);
    *so = _mm256_xor_pd(s, _mm256_and_pd(negs, sign));
    *co = _mm256_xor_pd(c, _mm256_and_pd(negc, sign));
}

/* sinc(x) and, when deriv, its derivative (the three branches of
 * sinc_and_derivative), given 1/x = ibc iIG; lanes with |x| > 1e5 redone
 * with libm.  The series of the small-|x| branches are evaluated only when a
 * lane takes them (the blends pick the same values either way). */
XK_AVX void sinc4_closed(__m256d x, __m256d ax, __m256d invx, int deriv, __m256d *sinc,
                         __m256d *dsinc)
{
    __m256d sn, cs;
    sincos_pd(x, &sn, &cs);
    if (__builtin_expect(_mm256_movemask_pd(_mm256_cmp_pd(ax, ld4(k_big), _CMP_GT_OQ)), 0)) {
        double xs[4], ss[4], cc[4];
        _mm256_storeu_pd(xs, x);
        _mm256_storeu_pd(ss, sn);
        _mm256_storeu_pd(cc, cs);
        for (int l = 0; l < 4; l++)
            if (fabs(xs[l]) > 1e5) { ss[l] = sin(xs[l]); cc[l] = cos(xs[l]); }
        sn = _mm256_loadu_pd(ss);
        cs = _mm256_loadu_pd(cc);
    }
    __m256d sc = _mm256_mul_pd(sn, invx);
    __m256d small = _mm256_cmp_pd(ax, ld4(k_series), _CMP_LT_OQ);
    __m256d mid = _mm256_cmp_pd(ax, ld4(k_taylor), _CMP_LT_OQ);
    const int any_mid = _mm256_movemask_pd(mid);   /* small implies mid */
    __m256d x2 = any_mid ? _mm256_mul_pd(x, x) : sc;
    *sinc = any_mid ? blend(small, horner(x2, k_sinc_c, 3), sc) : sc;
    if (!deriv) return;
    __m256d d_closed = _mm256_mul_pd(_mm256_sub_pd(cs, sc), invx);   /* (x cos x - sin x) / x^2 */
    if (!any_mid) { *dsinc = d_closed; return; }
    __m256d d_series = _mm256_mul_pd(x, horner(x2, k_dsinc_s, 2));
    __m256d d_taylor = _mm256_mul_pd(x, horner(x2, k_dsinc_t, 5));
    *dsinc = blend(small, d_series, blend(mid, d_taylor, d_closed));
}

/* sinc(x) and, when deriv, sinc'(x): lanes with |x| < XK_SINC_POLY from the
 * Taylor polynomials, the others from sinc4_closed (given 1/x = ibc iIG).
 * Lane by lane, so that an entry's value never depends on its neighbours in
 * the vector; only a vector with lanes on both sides computes both. */
XK_AVX void sinc4(__m256d x, __m256d ibc, __m256d iIG, int deriv, __m256d *sinc, __m256d *dsinc)
{
    const __m256d ax = _mm256_andnot_pd(ld4(k_sign), x);
    const __m256d in = _mm256_cmp_pd(ax, ld4(k_poly), _CMP_LT_OQ);
    const int pm = _mm256_movemask_pd(in);
    __m256d ps = ld4(k_one), pd = _mm256_setzero_pd();
    if (pm) {
        __m256d x2 = _mm256_mul_pd(x, x);
        ps = horner(x2, k_sinc_p, 12);
        if (deriv) pd = _mm256_mul_pd(x, horner(x2, k_dsinc_p, 11));
        if (pm == 15) { *sinc = ps; if (deriv) *dsinc = pd; return; }
    }
    sinc4_closed(x, ax, _mm256_mul_pd(ibc, iIG), deriv, sinc, dsinc);
    if (!pm) return;
    *sinc = blend(in, ps, *sinc);
    if (deriv) *dsinc = blend(in, pd, *dsinc);
}

/* The j-indexed table entries of four consecutive entries (pointers at j,
 * or at padded copies for a segment's last partial vector) and the scalar
 * i-indexed ones of the segment's matrix row. */
typedef struct jview {
    const double *CD, *CG, *dD[3], *dG[3];
} jview;

typedef struct iconst {
    double CD, CG, dD[3], dG[3];
} iconst;

/* Angle-independent factors of a tile (XK_TILE entries, four at a time),
 * in the order of xk_pairs.f. */
typedef struct pair_tile {
    double f[XK_NPF][XK_TILE];
} pair_tile;

/* Where stage 2 reads a tile's pair factors: a pair_tile or the cache. */
typedef struct pair_view {
    const double *f[XK_NPF];
} pair_view;

/* Stage 1, four entries: the factors that do not depend on the angle, into
 * f[q] (f[2] unused in static mode). */
XK_AVX void pairs4(const xk_seg *s, const iconst *ci, const jview *V, double *const f[XK_NPF])
{
    __m256d dCd = _mm256_sub_pd(v(ci->CD), _mm256_loadu_pd(V->CD));
    __m256d D = _mm256_sqrt_pd(_mm256_fmadd_pd(dCd, dCd, v(XK_EPS2)));
    __m256d e = _mm256_mul_pd(v(-s->A), D);
    __m256d clampD = _mm256_cmp_pd(e, v(XK_CLAMP), _CMP_NGE_UQ);  /* !(e >= -700) */
    _mm256_storeu_pd(f[0], exp_pd(blend(clampD, v(XK_CLAMP), e)));
    _mm256_storeu_pd(f[1], D);
    if (s->laminar) {
        __m256d dCg = _mm256_sub_pd(v(ci->CG), _mm256_loadu_pd(V->CG));
        _mm256_storeu_pd(f[2], _mm256_sqrt_pd(_mm256_fmadd_pd(dCg, dCg, v(XK_EPS2))));
    }
}

/* The row weights of four entries: ws, -ws and -2 ws contrast, lane by lane
 * (the diagonal entry's lane has its own weight). */
typedef struct wvec {
    __m256d ws, nws, f2;
} wvec;

XK_AVX void wvec_of(const xk_seg *s, __m256d ws, wvec *W)
{
    W->ws = ws;
    W->nws = _mm256_xor_pd(ws, v(-0.0));
    W->f2 = _mm256_mul_pd(_mm256_mul_pd(v(-2.0), ws), v(s->con));   /* (-2 ws) con */
}

/* A segment's constants as vectors (an operation reads them from memory;
 * no broadcast per step): -A, bc, 1/bc, B dcos, contrast, offset, and row
 * i's table entries. */
typedef struct aconst {
    __m256d mA, bc, ibc, Bdc, con, off;
    __m256d CD, CG, dD[3], dG[3];
} aconst;

/* One entry's forward model, four lanes: g1 and g2 from the pair factors gd
 * (the exp), IG and 1/I_G, the residual r = ws (y - g2) (0 where y is not
 * finite), and with jac the factors every derivative shares: f = -2 ws con
 * g1 (0 under the g1 floor) and, laminar, fp = f gd 2 sinc sinc'.  The row
 * kernel (angle4) and the normal-equation kernel (nangle4) both take their
 * values from here, so the two paths compute an entry the same way. */
typedef struct entry4 {
    __m256d valid, g1raw, g1sq, r, f, fp;
} entry4;

XK_AVX void entry4_of(const aconst *K, __m256d ws, __m256d f2, __m256d gd, __m256d IG,
                      __m256d iIG, __m256d y, const int lam, const int jac, entry4 *e)
{
    e->valid = _mm256_cmp_pd(_mm256_andnot_pd(ld4(k_sign), y), ld4(k_inf), _CMP_LT_OQ);
    __m256d sinc = ld4(k_one), dsinc = _mm256_setzero_pd();
    if (lam) sinc4(_mm256_mul_pd(K->bc, IG), K->ibc, iIG, jac, &sinc, &dsinc);
    e->g1raw = _mm256_mul_pd(gd, _mm256_mul_pd(sinc, sinc));
    __m256d above = _mm256_cmp_pd(e->g1raw, ld4(k_floor), _CMP_GT_OQ);
    __m256d g1 = blend(above, e->g1raw, ld4(k_floor));
    e->g1sq = _mm256_mul_pd(g1, g1);
    __m256d g2 = _mm256_fmadd_pd(K->con, e->g1sq, K->off);
    e->r = _mm256_and_pd(e->valid, _mm256_mul_pd(ws, _mm256_sub_pd(y, g2)));
    if (!jac) return;
    e->f = _mm256_and_pd(_mm256_and_pd(e->valid, above), _mm256_mul_pd(f2, g1));
    if (lam)
        e->fp = _mm256_mul_pd(_mm256_mul_pd(e->f, gd),
                              _mm256_mul_pd(ld4(k_two), _mm256_mul_pd(sinc, dsinc)));
}

/* Stage 2, four entries of one angle from their pair factors (at P + pt)
 * and their j-indexed tables (at V + vt): r[0..3] and J[c * ld + 0..3].
 * One division serves 1/I_D, 1/I_G and 1/Phi = (1/bc) (1/I_G).  lam and
 * jac are constants where the loops below call it (each combination its
 * own loop, without tests inside). */
XK_AVX void angle4(const aconst *K, const wvec *W, const jview *V, size_t vt,
                   const pair_view *P, size_t pt, __m256d y, double *r, double *J, size_t ld,
                   const int lam, const int jac)
{
    __m256d gd = _mm256_loadu_pd(P->f[0] + pt), ID = _mm256_loadu_pd(P->f[1] + pt);
    __m256d IG = _mm256_setzero_pd(), iIG = _mm256_setzero_pd(), iID;
    if (lam) {
        IG = _mm256_loadu_pd(P->f[2] + pt);
        __m256d q = _mm256_div_pd(ld4(k_one), _mm256_mul_pd(ID, IG));
        iID = _mm256_mul_pd(IG, q);
        iIG = _mm256_mul_pd(ID, q);
    } else {
        iID = _mm256_div_pd(ld4(k_one), ID);
    }
    entry4 e;
    entry4_of(K, W->ws, W->f2, gd, IG, iIG, y, lam, jac, &e);
    _mm256_storeu_pd(r, e.r);
    if (!jac) return;

    const size_t np = lam ? 7 : 3;
    __m256d mAd = _mm256_mul_pd(K->mA, _mm256_sub_pd(K->CD, _mm256_loadu_pd(V->CD + vt)));
    __m256d clampD = _mm256_cmp_pd(_mm256_mul_pd(K->mA, ID), ld4(k_clamp), _CMP_NGE_UQ);
    __m256d wD = _mm256_mul_pd(_mm256_mul_pd(e.f, e.g1raw), _mm256_mul_pd(mAd, iID));
    wD = _mm256_andnot_pd(clampD, wD);
    for (int q = 0; q < 3; q++)
        _mm256_storeu_pd(J + q * ld,
                         _mm256_mul_pd(wD, _mm256_sub_pd(K->dD[q], _mm256_loadu_pd(V->dD[q] + vt))));
    if (lam) {
        __m256d dCg = _mm256_sub_pd(K->CG, _mm256_loadu_pd(V->CG + vt));
        __m256d w2 = _mm256_mul_pd(_mm256_mul_pd(e.fp, K->bc), _mm256_mul_pd(dCg, iIG));
        for (int q = 0; q < 3; q++)
            _mm256_storeu_pd(J + (3 + q) * ld,
                             _mm256_mul_pd(w2, _mm256_sub_pd(K->dG[q], _mm256_loadu_pd(V->dG[q] + vt))));
        _mm256_storeu_pd(J + 6 * ld, _mm256_mul_pd(_mm256_mul_pd(e.fp, K->Bdc), IG));
    }
    _mm256_storeu_pd(J + np * ld, _mm256_and_pd(e.valid, _mm256_mul_pd(W->nws, e.g1sq)));
    _mm256_storeu_pd(J + (np + 1) * ld, _mm256_and_pd(e.valid, W->nws));
}

/* Padded copies of a segment's last partial vector (entries t .. len - 1,
 * the last one repeated) and their view. */
typedef struct tail4 {
    double CD[4], CG[4], dD[3][4], dG[3][4], y[4], r[4], J[9 * 4];
    jview V;
} tail4;

static void tail_fill(const xk_tab *T, size_t j0, size_t t, size_t len, const float *y32,
                      const double *y64, tail4 *tl)
{
    for (int l = 0; l < 4; l++) {
        size_t tt = t + (size_t)l < len ? t + (size_t)l : len - 1, j = j0 + tt;
        tl->CD[l] = T->CD[j];
        tl->CG[l] = T->CG ? T->CG[j] : 0.0;
        for (int q = 0; q < 3; q++) {
            tl->dD[q][l] = T->dCD[q][j];
            tl->dG[q][l] = T->CG ? T->dCG[q][j] : 0.0;
        }
        tl->y[l] = (y32 || y64) ? (y32 ? (double)y32[tt] : y64[tt]) : 0.0;
    }
    tl->V = (jview){tl->CD, tl->CG, {tl->dD[0], tl->dD[1], tl->dD[2]},
                    {tl->dG[0], tl->dG[1], tl->dG[2]}};
}

static inline void view_at(const xk_tab *T, size_t j, jview *V)
{
    V->CD = T->CD + j;
    V->CG = T->CG ? T->CG + j : NULL;
    for (int q = 0; q < 3; q++) {
        V->dD[q] = T->dCD[q] + j;
        V->dG[q] = T->CG ? T->dCG[q] + j : NULL;
    }
}

static inline void iconst_of(const xk_tab *T, size_t i, iconst *ci)
{
    *ci = (iconst){T->CD[i], T->CG ? T->CG[i] : 0.0,
                   {T->dCD[0][i], T->dCD[1][i], T->dCD[2][i]}, {0.0, 0.0, 0.0}};
    if (T->CG)
        for (int q = 0; q < 3; q++) ci->dG[q] = T->dCG[q][i];
}

/* Stage 1 over entries t0 .. t0 + n - 1 of a segment (n <= XK_TILE) into
 * f[q][0 .. n - 1] (written through a copy for the last partial vector). */
__attribute__((target("avx2,fma")))
static void pairs_run(const xk_seg *s, const xk_tab *T, const iconst *ci, size_t j0, size_t t0,
                      size_t n, size_t len, double *const f[XK_NPF], tail4 *tl)
{
    const size_t full = n & ~(size_t)3, nf = s->laminar ? XK_NPF : 2;
    jview V;
    for (size_t t = 0; t < full; t += 4) {
        view_at(T, j0 + t0 + t, &V);
        double *const ft[XK_NPF] = {f[0] + t, f[1] + t, nf > 2 ? f[2] + t : NULL};
        pairs4(s, ci, &V, ft);
    }
    if (full == n) return;
    double w[XK_NPF][4];
    double *const fw[XK_NPF] = {w[0], w[1], w[2]};
    tail_fill(T, j0, t0 + full, len, NULL, NULL, tl);
    pairs4(s, ci, &tl->V, fw);
    for (size_t q = 0; q < nf; q++)
        for (size_t l = 0; full + l < n; l++) f[q][full + l] = w[q][l];
}

/* Stage 2 over the whole vectors of a tile: entries t0 .. t0 + full - 1,
 * tables at V (entry t0), pair factors at pv (entry t0). */
XK_AVX void angle_loop(const aconst *K, const wvec *W, const jview *V, const pair_view *pv,
                       size_t t0, size_t full, const float *y32, const double *y64, double *r,
                       double *J, size_t ld, const int lam, const int jac, const int f32)
{
    for (size_t t = 0; t < full; t += 4) {
        const size_t o = t0 + t;
        __m256d y = f32 ? _mm256_cvtps_pd(_mm_loadu_ps(y32 + o)) : _mm256_loadu_pd(y64 + o);
        angle4(K, &W[t != 0], V, t, pv, t, y, r + o, jac ? J + o : NULL, ld, lam, jac);
    }
}

/* angle_loop with (laminar, Jacobian, float32 data) as constants. */
__attribute__((target("avx2,fma")))
static void angle_run(const aconst *K, const wvec *W, const jview *V, const pair_view *pv,
                      size_t t0, size_t full, const float *y32, const double *y64, double *r,
                      double *J, size_t ld, int lam)
{
#define XK_RUN(l, j, f) angle_loop(K, W, V, pv, t0, full, y32, y64, r, J, ld, l, j, f)
    if (lam) {
        if (J) { if (y32) XK_RUN(1, 1, 1); else XK_RUN(1, 1, 0); }
        else   { if (y32) XK_RUN(1, 0, 1); else XK_RUN(1, 0, 0); }
    } else {
        if (J) { if (y32) XK_RUN(0, 1, 1); else XK_RUN(0, 1, 0); }
        else   { if (y32) XK_RUN(0, 0, 1); else XK_RUN(0, 0, 0); }
    }
#undef XK_RUN
}

/* Entries t0 .. t0 + n - 1 of the segment (n <= XK_TILE): stage 1 over the
 * whole tile (or its factors from the cache, pc not NULL), then stage 2, so
 * that each loop's iterations are independent and overlap (one entry's chain
 * of sqrt, exp and sin/cos is long).  W[0]: the weights of the tile's first
 * four entries, W[1]: of the others. */
__attribute__((target("avx2,fma")))
static void tile_avx2(const xk_seg *s, const aconst *K, const wvec *W, const xk_tab *T,
                      const iconst *ci, const pair_view *pc, size_t j0, size_t t0, size_t n,
                      size_t len, const float *y32, const double *y64, double *r, double *J,
                      size_t ld, tail4 *tl)
{
    pair_tile P;
    pair_view pv;
    for (int q = 0; q < XK_NPF; q++) pv.f[q] = pc ? (pc->f[q] ? pc->f[q] + t0 : NULL) : P.f[q];
    if (!pc) {
        double *const f[XK_NPF] = {P.f[0], P.f[1], P.f[2]};
        pairs_run(s, T, ci, j0, t0, n, len, f, tl);
    }
    const int lam = s->laminar;
    const size_t full = n & ~(size_t)3, k = (lam ? 7 : 3) + 2;
    jview V;
    view_at(T, j0 + t0, &V);
    angle_run(K, W, &V, &pv, t0, full, y32, y64, r, J, ld, lam);
    if (full == n) return;
    tail_fill(T, j0, t0 + full, len, y32, y64, tl);
    angle4(K, &W[full != 0], &tl->V, 0, &pv, full, _mm256_loadu_pd(tl->y), tl->r,
           J ? tl->J : NULL, 4, lam, J != NULL);
    for (size_t l = 0; full + l < n; l++) {
        r[t0 + full + l] = tl->r[l];
        if (J)
            for (size_t c = 0; c < k; c++) J[c * ld + t0 + full + l] = tl->J[c * 4 + l];
    }
}

/* The segment's constants as vectors. */
XK_AVX void aconst_of(const xk_seg *s, const iconst *ci, aconst *K)
{
    K->mA = v(-s->A);
    K->bc = v(s->bc);
    K->ibc = v(1.0 / s->bc);   /* inf for bc = 0: Phi = 0 takes the series */
    K->Bdc = v(s->Bdc);
    K->con = v(s->con);
    K->off = v(s->off);
    K->CD = v(ci->CD);
    K->CG = v(ci->CG);
    for (int q = 0; q < 3; q++) {
        K->dD[q] = v(ci->dD[q]);
        K->dG[q] = v(ci->dG[q]);
    }
}

/* Index of entry (i, j >= i) in the pair factors' layout. */
static inline size_t pair_index(size_t n, size_t i, size_t j)
{
    return i * (2 * n - i + 1) / 2 + (j - i);
}

__attribute__((target("avx2,fma")))
static void segment_avx2(const xk_seg *s, double ws_diag, const xk_tab *T, const xk_pairs *pf,
                         size_t i, size_t j0, size_t len, const float *y32, const double *y64,
                         double *r, double *J, size_t ld)
{
    /* W[0] and W[1]: every tile's first vector and the rest; the first tile
     * of a segment starting on the diagonal: Wd and W[1] */
    wvec W[2], Wd[2];
    wvec_of(s, v(s->ws), &W[1]);
    W[0] = Wd[1] = W[1];
    wvec_of(s, _mm256_set_pd(s->ws, s->ws, s->ws, ws_diag), &Wd[0]);
    iconst ci;
    iconst_of(T, i, &ci);
    aconst K;
    aconst_of(s, &ci, &K);
    pair_view cache, *pc = NULL;
    if (pf && j0 >= i) {
        size_t u = pair_index(pf->n, i, j0);
        for (int q = 0; q < XK_NPF; q++) cache.f[q] = pf->f[q] ? pf->f[q] + u : NULL;
        pc = &cache;
    }
    tail4 tl;
    for (size_t t0 = 0; t0 < len; t0 += XK_TILE) {
        size_t n = len - t0 < XK_TILE ? len - t0 : XK_TILE;
        tile_avx2(s, &K, t0 == 0 && j0 == i ? Wd : W, T, &ci, pc, j0, t0, n, len, y32, y64, r,
                  J, ld, &tl);
    }
}

/* ------------------------------------------------ normal-equation sums */

/* The laminar model's J^T J, J^T r and sum r^2 over entries (i, j >= i) of
 * every angle, pair by pair (model_kernel.h xk_normal_segment).  Row (a, i, j)
 * of J is [A_a uD, B_a uG, C_a, c7_a, c8_a] with uD = dCD_i - dCD_j and
 * uG = dCG_i - dCG_j (3 each) the same for every angle: the physical 7 x 7
 * block and J^T r's physical part are sums over the pairs of
 * (sum_a A_a^2) uD uD^T, (sum_a A_a B_a) uD uG^T, ... (six sums over the
 * angles per pair); the products with the contrast, offset and r columns
 * are per angle.  The
 * values are those of the row kernel (angle4), operation for operation;
 * only the order of the sums differs. */
#define XK_NS 6      /* per-pair sums over the angles: AA BB AB AC BC CC */
#define XK_NANG 27   /* per angle: columns 0..6 x (c7, c8, r), then c7c7 c7c8 c7r c8c8 c8r rr */
#define XK_NPH 28    /* physical block: DD 6, D6 3, GG 6, G6 3, DG 9, 66 */

typedef struct ntile {
    double gd[XK_TILE], IG[XK_TILE], iIG[XK_TILE], u[XK_TILE], v[XK_TILE], ws[XK_TILE];
    double dD[3][XK_TILE], dG[3][XK_TILE];
    double S[XK_NS][XK_TILE];   /* lane by lane over the angles */
    double c[6][XK_TILE];       /* one angle: A, B, C (col 6), c7, c8, r */
} __attribute__((aligned(32))) ntile;

struct xk_nsum {
    size_t P;
    aconst *K;                  /* P: each angle's constants (row i's part per segment) */
    __m256d (*ang)[XK_NANG];    /* P */
    __m256d ph[XK_NPH], rmax;
};

XK_AVX __m256d ldN(const double *p) { return _mm256_load_pd(p); }

/* Stage P, four entries at tile offset t: the angle-independent factors
 * (u = -A dCd / I_D, 0 under the exp clamp; v = dCg / I_G; one division). */
XK_AVX void npair4(const aconst *K, const jview *V, size_t vt, const pair_view *Pv, size_t pt,
                   __m256d ws, ntile *N, size_t t)
{
    __m256d gd = _mm256_loadu_pd(Pv->f[0] + pt), ID = _mm256_loadu_pd(Pv->f[1] + pt);
    __m256d IG = _mm256_loadu_pd(Pv->f[2] + pt);
    __m256d q = _mm256_div_pd(ld4(k_one), _mm256_mul_pd(ID, IG));
    __m256d iID = _mm256_mul_pd(IG, q), iIG = _mm256_mul_pd(ID, q);
    __m256d mAd = _mm256_mul_pd(K->mA, _mm256_sub_pd(K->CD, _mm256_loadu_pd(V->CD + vt)));
    __m256d clampD = _mm256_cmp_pd(_mm256_mul_pd(K->mA, ID), ld4(k_clamp), _CMP_NGE_UQ);
    _mm256_store_pd(N->u + t, _mm256_andnot_pd(clampD, _mm256_mul_pd(mAd, iID)));
    _mm256_store_pd(N->v + t, _mm256_mul_pd(_mm256_sub_pd(K->CG, _mm256_loadu_pd(V->CG + vt)), iIG));
    _mm256_store_pd(N->gd + t, gd);
    _mm256_store_pd(N->IG + t, IG);
    _mm256_store_pd(N->iIG + t, iIG);
    _mm256_store_pd(N->ws + t, ws);
    for (int k = 0; k < 3; k++) {
        _mm256_store_pd(N->dD[k] + t, _mm256_sub_pd(K->dD[k], _mm256_loadu_pd(V->dD[k] + vt)));
        _mm256_store_pd(N->dG[k] + t, _mm256_sub_pd(K->dG[k], _mm256_loadu_pd(V->dG[k] + vt)));
    }
    for (int k = 0; k < XK_NS; k++) _mm256_store_pd(N->S[k] + t, _mm256_setzero_pd());
}

/* Stage A, four entries of one angle (constants K, data y): the row's values
 * into N->c, their products into the sums over the angles; returns |r|. */
XK_AVX __m256d nangle4(const aconst *K, ntile *N, size_t t, __m256d y)
{
    const __m256d ws = ldN(N->ws + t), gd = ldN(N->gd + t), IG = ldN(N->IG + t);
    const __m256d f2 = _mm256_mul_pd(_mm256_mul_pd(v(-2.0), ws), K->con);   /* as wvec_of */
    entry4 e;
    entry4_of(K, ws, f2, gd, IG, ldN(N->iIG + t), y, 1, 1, &e);
    __m256d a = _mm256_mul_pd(_mm256_mul_pd(e.f, e.g1raw), ldN(N->u + t));
    __m256d b = _mm256_mul_pd(_mm256_mul_pd(e.fp, K->bc), ldN(N->v + t));
    __m256d c = _mm256_mul_pd(_mm256_mul_pd(e.fp, K->Bdc), IG);
    __m256d nws = _mm256_xor_pd(ws, ld4(k_sign));
    const __m256d r = e.r;
    const __m256d col[6] = {a, b, c, _mm256_and_pd(e.valid, _mm256_mul_pd(nws, e.g1sq)),
                            _mm256_and_pd(e.valid, nws), r};
    for (int k = 0; k < 6; k++) _mm256_store_pd(N->c[k] + t, col[k]);
    const __m256d x[XK_NS] = {a, b, a, a, b, c}, y2[XK_NS] = {a, b, b, c, c, c};
    for (int k = 0; k < XK_NS; k++)
        _mm256_store_pd(N->S[k] + t, _mm256_fmadd_pd(x[k], y2[k], ldN(N->S[k] + t)));
    return _mm256_andnot_pd(ld4(k_sign), r);
}

/* One angle's products over the tile's nv entries (a multiple of 4) into
 * acc[XK_NANG]: columns 0..2 (A uD), 3..5 (B uG), 6 (C) times (c7, c8, r),
 * then the (c7, c8, r) products. */
__attribute__((target("avx2,fma")))
static void nsweep(const ntile *N, size_t nv, __m256d *acc)
{
    for (int g = 0; g < 2; g++) {   /* D (A, uD) and G (B, uG) */
        const double(*u)[XK_TILE] = g ? N->dG : N->dD;
        __m256d s[9];
        for (int k = 0; k < 9; k++) s[k] = acc[9 * g + k];
        for (size_t t = 0; t < nv; t += 4) {
            __m256d a = ldN(N->c[g] + t);
            __m256d w[3] = {_mm256_mul_pd(a, ldN(N->c[3] + t)), _mm256_mul_pd(a, ldN(N->c[4] + t)),
                            _mm256_mul_pd(a, ldN(N->c[5] + t))};
            for (int q = 0; q < 3; q++) {
                __m256d uq = ldN(u[q] + t);
                for (int k = 0; k < 3; k++) s[3 * q + k] = _mm256_fmadd_pd(uq, w[k], s[3 * q + k]);
            }
        }
        for (int k = 0; k < 9; k++) acc[9 * g + k] = s[k];
    }
    __m256d s[9];
    for (int k = 0; k < 9; k++) s[k] = acc[18 + k];
    for (size_t t = 0; t < nv; t += 4) {
        __m256d c = ldN(N->c[2] + t), c7 = ldN(N->c[3] + t), c8 = ldN(N->c[4] + t);
        __m256d r = ldN(N->c[5] + t);
        const __m256d x[9] = {c, c, c, c7, c7, c7, c8, c8, r}, y[9] = {c7, c8, r, c7, c8, r, c8, r, r};
        for (int k = 0; k < 9; k++) s[k] = _mm256_fmadd_pd(x[k], y[k], s[k]);
    }
    for (int k = 0; k < 9; k++) acc[18 + k] = s[k];
}

/* The physical block of the tile's nv entries from their sums over the
 * angles, into ph[XK_NPH]. */
__attribute__((target("avx2,fma")))
static void nphys(const ntile *N, size_t nv, __m256d *ph)
{
    for (int g = 0; g < 2; g++) {   /* DD, D6 from (AA, AC); GG, G6 from (BB, BC) */
        const double(*u)[XK_TILE] = g ? N->dG : N->dD;
        const double *Sx = N->S[g], *S6 = N->S[3 + g];
        __m256d s[9];
        for (int k = 0; k < 9; k++) s[k] = ph[9 * g + k];
        for (size_t t = 0; t < nv; t += 4) {
            __m256d uq[3] = {ldN(u[0] + t), ldN(u[1] + t), ldN(u[2] + t)};
            __m256d sx = ldN(Sx + t), s6 = ldN(S6 + t);
            for (int q = 0, k = 0; q < 3; q++) {
                __m256d w = _mm256_mul_pd(sx, uq[q]);
                for (int q2 = q; q2 < 3; q2++, k++) s[k] = _mm256_fmadd_pd(w, uq[q2], s[k]);
                s[6 + q] = _mm256_fmadd_pd(s6, uq[q], s[6 + q]);
            }
        }
        for (int k = 0; k < 9; k++) ph[9 * g + k] = s[k];
    }
    __m256d s[10];
    for (int k = 0; k < 10; k++) s[k] = ph[18 + k];
    for (size_t t = 0; t < nv; t += 4) {   /* DG from AB, 66 from CC */
        __m256d sab = ldN(N->S[2] + t);
        for (int q = 0; q < 3; q++) {
            __m256d w = _mm256_mul_pd(sab, ldN(N->dD[q] + t));
            for (int q2 = 0; q2 < 3; q2++)
                s[3 * q + q2] = _mm256_fmadd_pd(w, ldN(N->dG[q2] + t), s[3 * q + q2]);
        }
        s[9] = _mm256_add_pd(s[9], ldN(N->S[5] + t));
    }
    for (int k = 0; k < 10; k++) ph[18 + k] = s[k];
}

/* Stage P over a tile: entries t0 .. t0 + n - 1 of the segment (tables from
 * j0; the pair factors computed here, once for every angle), lanes past n
 * weighted 0. */
__attribute__((target("avx2,fma")))
static void ntile_pairs(const xk_nsum *A, const xk_seg *s, double ws_diag, const xk_tab *T,
                        const iconst *ci, size_t i, size_t j0, size_t t0, size_t n, size_t len,
                        ntile *N, tail4 *tl)
{
    pair_tile Pt;
    const pair_view pv = {{Pt.f[0], Pt.f[1], Pt.f[2]}};
    double *const pf[XK_NPF] = {Pt.f[0], Pt.f[1], Pt.f[2]};
    pairs_run(s, T, ci, j0, t0, n, len, pf, tl);
    const size_t full = n & ~(size_t)3;
    jview V;
    view_at(T, j0 + t0, &V);
    for (size_t t = 0; t < full; t += 4) {
        __m256d ws = v(s->ws);
        if (j0 + t0 + t == i) ws = _mm256_set_pd(s->ws, s->ws, s->ws, ws_diag);
        npair4(&A->K[0], &V, t, &pv, t, ws, N, t);
    }
    if (full == n) return;
    double f[XK_NPF][4], w[4];
    for (size_t l = 0; l < 4; l++) {
        size_t tt = full + l < n ? full + l : n - 1;
        for (int q = 0; q < XK_NPF; q++) f[q][l] = pv.f[q][tt];
        w[l] = full + l >= n ? 0.0 : j0 + t0 + full + l == i ? ws_diag : s->ws;
    }
    tail_fill(T, j0, t0 + full, len, NULL, NULL, tl);
    const pair_view pf4 = {{f[0], f[1], f[2]}};
    npair4(&A->K[0], &tl->V, 0, &pf4, 0, _mm256_loadu_pd(w), N, full);
}

/* Stage A and the products of every angle over a tile of n entries (at t0
 * of the segment), then the tile's physical block. */
__attribute__((target("avx2,fma")))
static void ntile_angles(xk_nsum *A, size_t t0, size_t n, const float *const *y32,
                         const double *const *y64, ntile *N)
{
    const size_t full = n & ~(size_t)3, nv = (n + 3) & ~(size_t)3;
    __m256d rmax = A->rmax;
    for (size_t a = 0; a < A->P; a++) {
        const aconst *K = &A->K[a];
        for (size_t t = 0; t < full; t += 4) {
            const size_t o = t0 + t;
            __m256d y = y32 ? _mm256_cvtps_pd(_mm_loadu_ps(y32[a] + o)) : _mm256_loadu_pd(y64[a] + o);
            rmax = _mm256_max_pd(rmax, nangle4(K, N, t, y));
        }
        if (full < n) {
            double yy[4] = {0.0, 0.0, 0.0, 0.0};
            for (size_t l = 0; full + l < n; l++)
                yy[l] = y32 ? (double)y32[a][t0 + full + l] : y64[a][t0 + full + l];
            rmax = _mm256_max_pd(rmax, nangle4(K, N, full, _mm256_loadu_pd(yy)));
        }
        nsweep(N, nv, A->ang[a]);
    }
    A->rmax = rmax;
    nphys(N, nv, A->ph);
}

__attribute__((target("avx2,fma")))
static void normal_segment_avx2(xk_nsum *A, const xk_seg *segs, double ws_diag,
                                const xk_tab *T, size_t i, size_t j0, size_t len,
                                const float *const *y32, const double *const *y64)
{
    iconst ci;
    iconst_of(T, i, &ci);
    for (size_t a = 0; a < A->P; a++) aconst_of(&segs[a], &ci, &A->K[a]);
    ntile N;
    tail4 tl;
    for (size_t t0 = 0; t0 < len; t0 += XK_TILE) {
        size_t n = len - t0 < XK_TILE ? len - t0 : XK_TILE;
        ntile_pairs(A, &segs[0], ws_diag, T, &ci, i, j0, t0, n, len, &N, &tl);
        ntile_angles(A, t0, n, y32, y64, &N);
    }
}

/* Lanes of an accumulator, in a fixed order. */
static double lanes(const __m256d *x)
{
    double d[4];
    memcpy(d, x, sizeof d);
    return (d[0] + d[1]) + (d[2] + d[3]);
}

static void nsum_finish_avx2(const xk_nsum *A, double *JtJ, double *Jtr, size_t p, double *rr,
                             double *rmax)
{
    static const unsigned char dd[6][2] = {{0, 0}, {0, 1}, {0, 2}, {1, 1}, {1, 2}, {2, 2}};
    for (int g = 0; g < 2; g++) {
        const size_t o = 3 * (size_t)g;
        for (int k = 0; k < 6; k++) JtJ[(o + dd[k][0]) * p + o + dd[k][1]] += lanes(&A->ph[9 * g + k]);
        for (size_t q = 0; q < 3; q++) JtJ[(o + q) * p + 6] += lanes(&A->ph[9 * g + 6 + q]);
    }
    for (size_t q = 0; q < 3; q++)
        for (size_t q2 = 0; q2 < 3; q2++) JtJ[q * p + 3 + q2] += lanes(&A->ph[18 + 3 * q + q2]);
    JtJ[6 * p + 6] += lanes(&A->ph[27]);
    double s = 0.0;
    for (size_t a = 0; a < A->P; a++) {
        const __m256d *g = A->ang[a];
        const size_t cc = 7 + 2 * a, co = cc + 1;
        for (size_t q = 0; q < 7; q++) {
            JtJ[q * p + cc] += lanes(&g[3 * q]);
            JtJ[q * p + co] += lanes(&g[3 * q + 1]);
            Jtr[q] += lanes(&g[3 * q + 2]);
        }
        JtJ[cc * p + cc] += lanes(&g[21]);
        JtJ[cc * p + co] += lanes(&g[22]);
        Jtr[cc] += lanes(&g[23]);
        JtJ[co * p + co] += lanes(&g[24]);
        Jtr[co] += lanes(&g[25]);
        s += lanes(&g[26]);
    }
    *rr = s;
    double m[4];
    memcpy(m, &A->rmax, sizeof m);
    *rmax = fmax(fmax(m[0], m[1]), fmax(m[2], m[3]));
}

__attribute__((target("avx2,fma")))
static void pairs_fill_avx2(const xk_seg *s, const xk_tab *T, const xk_pairs *pf)
{
    const size_t n = pf->n;
    tail4 tl;
    for (size_t i = 0; i < n; i++) {
        iconst ci;
        iconst_of(T, i, &ci);
        const size_t u = pair_index(n, i, i), len = n - i;
        for (size_t t0 = 0; t0 < len; t0 += XK_TILE) {
            size_t m = len - t0 < XK_TILE ? len - t0 : XK_TILE;
            double *const f[XK_NPF] = {pf->f[0] + u + t0, pf->f[1] + u + t0,
                                       pf->f[2] ? pf->f[2] + u + t0 : NULL};
            pairs_run(s, T, &ci, i, t0, m, len, f, &tl);
        }
    }
}
#endif

size_t xk_nsum_bytes(size_t P)
{
#ifdef XK_HAVE_AVX2
    return sizeof(xk_nsum) + P * (sizeof(aconst) + XK_NANG * sizeof(__m256d));
#else
    (void)P;
    return 0;
#endif
}

xk_nsum *xk_nsum_init(void *mem, size_t P)
{
#ifdef XK_HAVE_AVX2
    memset(mem, 0, xk_nsum_bytes(P));
    xk_nsum *A = mem;
    A->P = P;
    A->K = (aconst *)(A + 1);
    A->ang = (__m256d(*)[XK_NANG])(A->K + P);
    return A;
#else
    (void)mem;
    (void)P;
    return NULL;
#endif
}

void xk_normal_segment(xk_nsum *A, const xk_seg *segs, double ws_diag, const xk_tab *T, size_t i,
                       size_t j0, size_t len, const float *const *y32, const double *const *y64)
{
#ifdef XK_HAVE_AVX2
    normal_segment_avx2(A, segs, ws_diag, T, i, j0, len, y32, y64);
#else
    (void)A; (void)segs; (void)ws_diag; (void)T; (void)i; (void)j0; (void)len;
    (void)y32; (void)y64;
#endif
}

void xk_nsum_finish(const xk_nsum *A, double *JtJ, double *Jtr, size_t p, double *rr,
                    double *rmax)
{
#ifdef XK_HAVE_AVX2
    nsum_finish_avx2(A, JtJ, Jtr, p, rr, rmax);
#else
    (void)A; (void)JtJ; (void)Jtr; (void)p;
    *rr = *rmax = 0.0;
#endif
}

size_t xk_pairs_len(size_t n)
{
    return n % 2 == 0 ? (n / 2) * (n + 1) + 3 : n * ((n + 1) / 2) + 3;
}

void xk_pairs_fill(const xk_seg *s, const xk_tab *T, const xk_pairs *pf)
{
    const size_t len = xk_pairs_len(pf->n);
    for (int q = 0; q < XK_NPF; q++)   /* the padding: read, never used */
        for (size_t k = len - 3; pf->f[q] && k < len; k++) pf->f[q][k] = 1.0;
#ifdef XK_HAVE_AVX2
    pairs_fill_avx2(s, T, pf);
#else
    (void)s;
    (void)T;
#endif
}

int xk_cpu_avx2(void)
{
#ifdef XK_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

void xk_segment_pairs(int avx2, const xk_seg *s, double ws_diag, const xk_tab *T,
                      const xk_pairs *pf, size_t i, size_t j0, size_t len, const float *y32,
                      const double *y64, double *r, double *J, size_t ld)
{
#ifdef XK_HAVE_AVX2
    if (avx2) {
        segment_avx2(s, ws_diag, T, pf, i, j0, len, y32, y64, r, J, ld);
        return;
    }
#endif
    (void)avx2;
    (void)pf;
    segment_portable(s, ws_diag, T, i, j0, len, y32, y64, r, J, ld);
}

void xk_segment(int avx2, const xk_seg *s, const xk_tab *T, size_t i, size_t j0, size_t len,
                const float *y32, const double *y64, double *r, double *J, size_t ld)
{
    xk_segment_pairs(avx2, s, s->ws, T, NULL, i, j0, len, y32, y64, r, J, ld);
}
