/*
 * floor_xpcs - the floor of one Gauss-Newton pass over the 23M-point XPCS
 * benchmark: a hand-written, fused pass that forms everything one LM
 * iteration needs - every residual, the 9 non-zero Jacobian entries of every
 * row (7 physical + that angle's contrast and offset), the 23 9 x 9 blocks of
 * J^T J, J^T r and the cost - with nothing else: no callbacks, no row
 * buffers in memory, no generality.  A solver's fit time divided by this
 * pass time says how many "floor passes" the fit costs.
 *
 * What makes it a floor:
 *   - symmetric pairs pre-merged: each (i, j), (j, i) of the symmetric c2
 *     once with weight sqrt(2) (the diagonal with 1), as nlsq and the GSL
 *     peer do: the same cost and normal equations at half the rows;
 *   - pair-major: per (i, j) the angle-independent work - the two integrals
 *     I_D and I_G, the square roots, exp(-A I_D), the derivative-table
 *     differences - is computed once for all 23 angles; per angle only the
 *     shear sinc (one sin/cos pair), g1, g2 and the nine entries remain;
 *   - fused: a tile of 64 entries of one angle goes from the kernel into an
 *     L1-resident 10-column tile (9 Jacobian columns + r) and straight into
 *     register-blocked 3 x 4 products (12 accumulators), never to memory;
 *   - AVX2 + FMA with glibc's libmvec (exp, sin, cos four at a time), like
 *     the GSL peer, and pthreads over matrix rows (per-thread sums).
 *
 * Same data and point as bench_xpcs (bench_xpcs_common.h: the spec's problem
 * in memory as float32, x0 = nlsq_xpcs_initial_guess).  --check also forms
 * the same sums through the nlsq model's row callback and prints the
 * largest relative differences (cost, J^T r, J^T J): the floor computes the
 * right thing.
 *
 * usage: floor_xpcs [--threads T] [--repeat R] [--scale F | --frames N] [--check] [--json]
 *        (R passes are timed, the median reported)
 */
#define _GNU_SOURCE
#include "bench_xpcs_common.h"

#include <immintrin.h>

#define KB 9                 /* Jacobian columns of a row */
#define NC 12                /* tile columns: 9 J, r, 2 zero */
#define TILE 64              /* entries per tile (a multiple of 8) */
#define NSUM 55              /* upper triangle of (J | r)^T (J | r): 45 + 9 + 1 */
#define ROWS_PER_ITEM 2
#define MAXT 64
#define AVX __attribute__((target("avx2,fma")))

/* libmvec's AVX2 variants (x86_64 vector function ABI) */
AVX __m256d _ZGVdN4v_exp(__m256d x);
AVX __m256d _ZGVdN4v_sin(__m256d x);
AVX __m256d _ZGVdN4v_cos(__m256d x);

typedef struct floor_pb {
    size_t n, P;
    double A, B;
    double ws_off, ws_diag;
    const float *y;          /* P n n */
    double *CD, *CG, *dD[3], *dG[3];   /* tables at x, n each */
    double *bc, *Bdc, *con, *off;      /* per angle */
} floor_pb;

/* Sums of one angle: index of (c, d), c <= d <= 9 (9 = r) */
static int sum_index(int c, int d)
{
    return c * 10 - c * (c - 1) / 2 + (d - c);
}

/* --------------------------------------------------------------- tables */

/* Cumulative trapezoid of f_k = max(amp t^ex + off, 1e-10), t = max(k dt, eps),
 * and of its derivatives w.r.t. (amp, ex, off) (zero where floored). */
static void trapezoid(size_t n, double dt, double amp, double ex, double off, double *C,
                      double *const dC[3])
{
    double eps = dt / 2 > 1e-8 ? dt / 2 : 1e-8, prev = 0, dprev[3] = {0, 0, 0};
    for (size_t k = 0; k < n; k++) {
        double t = (double)k * dt, ts = t > eps ? t : eps, pw = pow(ts, ex);
        double f = amp * pw + off, df[3] = {pw, amp * pw * log(ts), 1.0};
        if (!(f > 1e-10)) { f = 1e-10; df[0] = df[1] = df[2] = 0.0; }
        C[k] = k ? C[k - 1] + 0.5 * (prev + f) : 0.0;
        for (int q = 0; q < 3; q++) dC[q][k] = k ? dC[q][k - 1] + 0.5 * (dprev[q] + df[q]) : 0.0;
        prev = f;
        for (int q = 0; q < 3; q++) dprev[q] = df[q];
    }
}

static void floor_setup(floor_pb *F, const double *x, double q, double gap, double dt)
{
    trapezoid(F->n, dt, x[0], x[1], x[2], F->CD, F->dD);
    trapezoid(F->n, dt, x[3], x[4], x[5], F->CG, F->dG);
    F->A = q * q * dt / 2;
    F->B = q * gap * dt / (2 * BX_PI);
    for (size_t a = 0; a < F->P; a++) {
        double u = (x[6] - (double)a * 360.0 / (double)F->P) * BX_PI / 180.0;
        F->bc[a] = F->B * cos(u);
        F->Bdc[a] = -F->B * sin(u) * BX_PI / 180.0;
        F->con[a] = x[7 + 2 * a];
        F->off[a] = x[8 + 2 * a];
    }
}

/* --------------------------------------------------------------- the pass */

/* The angle-independent part of a tile (entries (i, j0 .. j0 + len - 1)). */
typedef struct tile_pairs {
    double ID[TILE], IG[TILE], gd[TILE], wD[TILE], uG[TILE], ws[TILE];
    double dD[3][TILE], dG[3][TILE];
    double live[TILE];       /* all-ones bit pattern unless the exp clamp is active */
} tile_pairs;

AVX static void pairs_tile(const floor_pb *F, size_t i, size_t j0, size_t len, tile_pairs *tp)
{
    const __m256d eps = _mm256_set1_pd(1e-12), negA = _mm256_set1_pd(-F->A);
    const __m256d lo = _mm256_set1_pd(-700.0);
    for (size_t t = 0; t < TILE; t += 4) {
        size_t j = j0 + t;
        if (t >= len) j = j0;                  /* padding lanes: a valid entry, zero weight */
        __m256d dd = _mm256_sub_pd(_mm256_set1_pd(F->CD[i]), _mm256_loadu_pd(F->CD + j));
        __m256d dg = _mm256_sub_pd(_mm256_set1_pd(F->CG[i]), _mm256_loadu_pd(F->CG + j));
        __m256d ID = _mm256_sqrt_pd(_mm256_fmadd_pd(dd, dd, eps));
        __m256d IG = _mm256_sqrt_pd(_mm256_fmadd_pd(dg, dg, eps));
        __m256d e = _mm256_mul_pd(negA, ID);
        __m256d ok = _mm256_cmp_pd(e, lo, _CMP_GE_OQ);
        _mm256_storeu_pd(tp->ID + t, ID);
        _mm256_storeu_pd(tp->IG + t, IG);
        _mm256_storeu_pd(tp->gd + t, _ZGVdN4v_exp(_mm256_max_pd(e, lo)));
        _mm256_storeu_pd(tp->wD + t, _mm256_and_pd(ok, _mm256_div_pd(_mm256_mul_pd(negA, dd), ID)));
        _mm256_storeu_pd(tp->uG + t, _mm256_div_pd(dg, IG));
        for (int q = 0; q < 3; q++) {
            _mm256_storeu_pd(tp->dD[q] + t, _mm256_sub_pd(_mm256_set1_pd(F->dD[q][i]),
                                                          _mm256_loadu_pd(F->dD[q] + j)));
            _mm256_storeu_pd(tp->dG[q] + t, _mm256_sub_pd(_mm256_set1_pd(F->dG[q][i]),
                                                          _mm256_loadu_pd(F->dG[q] + j)));
        }
    }
    for (size_t t = 0; t < TILE; t++) {
        size_t j = j0 + t;
        tp->ws[t] = t >= len ? 0.0 : j == i ? F->ws_diag : F->ws_off;
    }
}

/* One angle's tile: T[c * TILE + t] for the 9 columns and r (column 9). */
AVX static void angle_tile(const floor_pb *F, size_t a, size_t i, size_t j0, size_t len,
                           const tile_pairs *tp, double *T)
{
    const __m256d bc = _mm256_set1_pd(F->bc[a]), Bdc = _mm256_set1_pd(F->Bdc[a]);
    const __m256d con = _mm256_set1_pd(F->con[a]), off = _mm256_set1_pd(F->off[a]);
    const __m256d one = _mm256_set1_pd(1.0), two = _mm256_set1_pd(2.0), fl = _mm256_set1_pd(1e-10);
    const __m256d sgn = _mm256_set1_pd(-0.0), zero = _mm256_setzero_pd();
    const float *y = F->y + (a * F->n + i) * F->n + j0;
    for (size_t t = 0; t < TILE; t += 4) {
        __m256d yv;
        if (t + 4 <= len) yv = _mm256_cvtps_pd(_mm_loadu_ps(y + t));
        else {
            double yy[4];
            for (size_t l = 0; l < 4; l++) yy[l] = t + l < len ? (double)y[t + l] : 0.0;
            yv = _mm256_loadu_pd(yy);
        }
        __m256d fin = _mm256_cmp_pd(_mm256_andnot_pd(sgn, yv), _mm256_set1_pd(INFINITY), _CMP_LT_OQ);
        __m256d ws = _mm256_and_pd(fin, _mm256_loadu_pd(tp->ws + t));
        __m256d IG = _mm256_loadu_pd(tp->IG + t), gd = _mm256_loadu_pd(tp->gd + t);
        __m256d x = _mm256_mul_pd(bc, IG), x2 = _mm256_mul_pd(x, x);
        __m256d ax = _mm256_andnot_pd(sgn, x);
        __m256d inv = _mm256_div_pd(one, x);
        __m256d sn = _ZGVdN4v_sin(x), cs = _ZGVdN4v_cos(x);
        __m256d s = _mm256_mul_pd(sn, inv);
        __m256d ds = _mm256_mul_pd(_mm256_sub_pd(cs, s), inv);
        __m256d small = _mm256_cmp_pd(ax, _mm256_set1_pd(1e-4), _CMP_LT_OQ);
        __m256d mid = _mm256_cmp_pd(ax, _mm256_set1_pd(0.1), _CMP_LT_OQ);
        __m256d sser = _mm256_fmadd_pd(x2, _mm256_fmadd_pd(x2, _mm256_set1_pd(1.0 / 120), _mm256_set1_pd(-1.0 / 6)), one);
        __m256d d3 = _mm256_mul_pd(x, _mm256_fmadd_pd(x2, _mm256_set1_pd(1.0 / 30), _mm256_set1_pd(-1.0 / 3)));
        __m256d p = _mm256_fmadd_pd(x2, _mm256_set1_pd(-1.0 / 3991680), _mm256_set1_pd(1.0 / 45360));
        p = _mm256_fmadd_pd(x2, p, _mm256_set1_pd(-1.0 / 840));
        p = _mm256_fmadd_pd(x2, p, _mm256_set1_pd(1.0 / 30));
        p = _mm256_fmadd_pd(x2, p, _mm256_set1_pd(-1.0 / 3));
        s = _mm256_blendv_pd(s, sser, small);
        ds = _mm256_blendv_pd(_mm256_blendv_pd(ds, _mm256_mul_pd(x, p), mid), d3, small);
        __m256d graw = _mm256_mul_pd(gd, _mm256_mul_pd(s, s));
        __m256d live = _mm256_cmp_pd(graw, fl, _CMP_GT_OQ);
        __m256d g1 = _mm256_blendv_pd(fl, graw, live), g1s = _mm256_mul_pd(g1, g1);
        __m256d r = _mm256_mul_pd(ws, _mm256_sub_pd(yv, _mm256_fmadd_pd(con, g1s, off)));
        r = _mm256_and_pd(fin, r);
        /* dr/dg1 = -2 ws con g1 (0 where floored) */
        __m256d f = _mm256_and_pd(live, _mm256_mul_pd(_mm256_mul_pd(ws, con), _mm256_mul_pd(_mm256_set1_pd(-2.0), g1)));
        __m256d aD = _mm256_mul_pd(_mm256_mul_pd(f, graw), _mm256_loadu_pd(tp->wD + t));
        __m256d fp = _mm256_mul_pd(_mm256_mul_pd(f, gd), _mm256_mul_pd(two, _mm256_mul_pd(s, ds)));
        __m256d aG = _mm256_mul_pd(_mm256_mul_pd(fp, bc), _mm256_loadu_pd(tp->uG + t));
        for (int q = 0; q < 3; q++) {
            _mm256_store_pd(T + q * TILE + t, _mm256_mul_pd(aD, _mm256_loadu_pd(tp->dD[q] + t)));
            _mm256_store_pd(T + (3 + q) * TILE + t, _mm256_mul_pd(aG, _mm256_loadu_pd(tp->dG[q] + t)));
        }
        _mm256_store_pd(T + 6 * TILE + t, _mm256_mul_pd(_mm256_mul_pd(fp, Bdc), IG));
        _mm256_store_pd(T + 7 * TILE + t, _mm256_sub_pd(zero, _mm256_mul_pd(ws, g1s)));
        _mm256_store_pd(T + 8 * TILE + t, _mm256_sub_pd(zero, ws));
        _mm256_store_pd(T + 9 * TILE + t, r);
    }
}

/* acc[k] += sum_t T[rows[k/4]][t] * T[cols[k%4]][t] for a 3 x 4 block */
AVX static inline void block34(const double *T, const int rows[3], const int cols[4], __m256d *out)
{
    __m256d s[12];
    for (int k = 0; k < 12; k++) s[k] = _mm256_setzero_pd();
    const double *R0 = T + rows[0] * TILE, *R1 = T + rows[1] * TILE, *R2 = T + rows[2] * TILE;
    const double *C0 = T + cols[0] * TILE, *C1 = T + cols[1] * TILE;
    const double *C2 = T + cols[2] * TILE, *C3 = T + cols[3] * TILE;
    for (size_t t = 0; t < TILE; t += 4) {
        __m256d c0 = _mm256_load_pd(C0 + t), c1 = _mm256_load_pd(C1 + t);
        __m256d c2 = _mm256_load_pd(C2 + t), c3 = _mm256_load_pd(C3 + t);
        __m256d r0 = _mm256_load_pd(R0 + t);
        s[0] = _mm256_fmadd_pd(r0, c0, s[0]); s[1] = _mm256_fmadd_pd(r0, c1, s[1]);
        s[2] = _mm256_fmadd_pd(r0, c2, s[2]); s[3] = _mm256_fmadd_pd(r0, c3, s[3]);
        __m256d r1 = _mm256_load_pd(R1 + t);
        s[4] = _mm256_fmadd_pd(r1, c0, s[4]); s[5] = _mm256_fmadd_pd(r1, c1, s[5]);
        s[6] = _mm256_fmadd_pd(r1, c2, s[6]); s[7] = _mm256_fmadd_pd(r1, c3, s[7]);
        __m256d r2 = _mm256_load_pd(R2 + t);
        s[8] = _mm256_fmadd_pd(r2, c0, s[8]); s[9] = _mm256_fmadd_pd(r2, c1, s[9]);
        s[10] = _mm256_fmadd_pd(r2, c2, s[10]); s[11] = _mm256_fmadd_pd(r2, c3, s[11]);
    }
    for (int k = 0; k < 12; k++) out[k] = _mm256_add_pd(out[k], s[k]);
}

/* The 3 x 4 blocks covering the upper triangle of columns 0..9 (+ r.r) */
static const int k_rows[6][3] = {{0, 1, 2}, {0, 1, 2}, {0, 1, 2}, {3, 4, 5}, {3, 4, 5}, {6, 7, 8}};
static const int k_cols[6][4] = {{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11},
                                 {3, 4, 5, 6}, {7, 8, 9, 10}, {6, 7, 8, 9}};

/* Per-thread sums: per angle the 6 blocks' 72 vectors and r.r */
typedef struct thread_acc {
    __m256d *blk;            /* P * 73 */
} thread_acc;

AVX static void tile_products(const double *T, __m256d *blk)
{
    for (int b = 0; b < 6; b++) block34(T, k_rows[b], k_cols[b], blk + 12 * b);
    __m256d rr = blk[72];
    for (size_t t = 0; t < TILE; t += 4) {
        __m256d r = _mm256_load_pd(T + 9 * TILE + t);
        rr = _mm256_fmadd_pd(r, r, rr);
    }
    blk[72] = rr;
}

typedef struct floor_job {
    const floor_pb *F;
    atomic_size_t next;
    __m256d *acc[MAXT];
} floor_job;

typedef struct floor_arg { floor_job *job; int t; } floor_arg;

AVX static void *floor_worker(void *arg)
{
    floor_arg *fa = arg;
    floor_job *job = fa->job;
    const floor_pb *F = job->F;
    __m256d *acc = job->acc[fa->t];
    tile_pairs tp;
    double *T = aligned_alloc(32, sizeof(double) * NC * TILE);
    if (!T) return NULL;
    memset(T, 0, sizeof(double) * NC * TILE);   /* columns 10, 11 stay zero */
    const size_t n = F->n;
    for (;;) {
        size_t i0 = atomic_fetch_add(&job->next, ROWS_PER_ITEM);
        if (i0 >= n) break;
        for (size_t i = i0; i < i0 + ROWS_PER_ITEM && i < n; i++)
            for (size_t j0 = i; j0 < n; j0 += TILE) {
                size_t len = n - j0 < TILE ? n - j0 : TILE;
                pairs_tile(F, i, j0, len, &tp);
                for (size_t a = 0; a < F->P; a++) {
                    angle_tile(F, a, i, j0, len, &tp, T);
                    tile_products(T, acc + a * 73);
                }
            }
    }
    free(T);
    return NULL;
}

static double hsum(__m256d v)
{
    double d[4];
    memcpy(d, &v, sizeof d);
    return (d[0] + d[1]) + (d[2] + d[3]);
}

/* One pass: JtJ (p x p, full), Jtr (p), cost. */
static int floor_pass(const floor_pb *F, int threads, double *JtJ, double *Jtr, double *cost)
{
    const size_t P = F->P, p = 7 + 2 * P;
    floor_job job;
    job.F = F;
    atomic_init(&job.next, 0);
    if (threads > MAXT) threads = MAXT;
    for (int t = 0; t < threads; t++) {
        job.acc[t] = aligned_alloc(32, sizeof(__m256d) * 73 * P);
        if (!job.acc[t]) return 1;
        memset(job.acc[t], 0, sizeof(__m256d) * 73 * P);
    }
    pthread_t tid[MAXT];
    floor_arg fa[MAXT];
    for (int t = 0; t < threads; t++) {
        fa[t].job = &job;
        fa[t].t = t;
        if (t > 0 && pthread_create(&tid[t], NULL, floor_worker, &fa[t]) != 0) return 1;
    }
    floor_worker(&fa[0]);
    for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
    /* reduce: per angle the 55 sums, scattered into the 53-parameter system */
    memset(JtJ, 0, sizeof(double) * p * p);
    memset(Jtr, 0, sizeof(double) * p);
    double rr = 0;
    for (size_t a = 0; a < P; a++) {
        double S[NSUM];
        memset(S, 0, sizeof S);
        for (int t = 0; t < threads; t++) {
            const __m256d *blk = job.acc[t] + a * 73;
            for (int b = 0; b < 6; b++)
                for (int k = 0; k < 12; k++) {
                    int c = k_rows[b][k / 4], d = k_cols[b][k % 4];
                    if (d < c || d > 9) continue;   /* lower triangle, zero columns */
                    S[sum_index(c, d)] += hsum(blk[12 * b + k]);
                }
            S[sum_index(9, 9)] += hsum(blk[72]);
        }
        size_t col[KB] = {0, 1, 2, 3, 4, 5, 6, 7 + 2 * a, 8 + 2 * a};
        for (int c = 0; c < KB; c++) {
            Jtr[col[c]] += S[sum_index(c, 9)];
            for (int d = c; d < KB; d++) {
                JtJ[col[c] * p + col[d]] += S[sum_index(c, d)];
                if (d != c) JtJ[col[d] * p + col[c]] += S[sum_index(c, d)];
            }
        }
        rr += S[sum_index(9, 9)];
    }
    *cost = 0.5 * rr;
    for (int t = 0; t < threads; t++) free(job.acc[t]);
    return 0;
}

/* --------------------------------------------------------------- check */

/* The same sums through the nlsq model's row callback (one thread, plain
 * loops): the largest relative differences of cost, J^T r and J^T J. */
static int check_against_model(nlsq_xpcs_model *m, const double *x, const double *JtJ,
                               const double *Jtr, double cost, double out[3])
{
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    const size_t p = pb.n_params, chunk = 4096;
    double *r = malloc(sizeof(double) * chunk), *J = malloc(sizeof(double) * chunk * KB);
    double *A = calloc(p * p, sizeof(double)), *g = calloc(p, sizeof(double));
    size_t cols[64];
    double c = 0;
    int rc = 0;
    if (!r || !J || !A || !g || p > 64) rc = 1;
    for (size_t row = 0; row < pb.n_rows && rc == 0;) {
        size_t k = 0, want = pb.n_rows - row < chunk ? pb.n_rows - row : chunk;
        size_t got = pb.pattern(pb.ctx, row, want, cols, &k);
        if (got == 0 || k != KB || pb.eval(pb.ctx, x, row, got, r, J, NULL) != 0) { rc = 1; break; }
        for (size_t t = 0; t < got; t++) {
            c += 0.5 * r[t] * r[t];
            for (size_t u = 0; u < KB; u++) {
                double ju = J[u * got + t];
                g[cols[u]] += ju * r[t];
                for (size_t v = 0; v < KB; v++) A[cols[u] * p + cols[v]] += ju * J[v * got + t];
            }
        }
        row += got;
    }
    double dg = 0, gmax = 0, dA = 0;
    for (size_t u = 0; u < p && rc == 0; u++) {
        if (fabs(g[u]) > gmax) gmax = fabs(g[u]);
        for (size_t v = 0; v < p; v++) {
            double s = sqrt(A[u * p + u] * A[v * p + v]);
            double d = s > 0 ? fabs(JtJ[u * p + v] - A[u * p + v]) / s : 0;
            if (d > dA) dA = d;
        }
    }
    for (size_t u = 0; u < p && rc == 0; u++)
        if (fabs(Jtr[u] - g[u]) / gmax > dg) dg = fabs(Jtr[u] - g[u]) / gmax;
    out[0] = fabs(cost - c) / c;
    out[1] = dg;
    out[2] = dA;
    free(r); free(J); free(A); free(g);
    return rc;
}

/* --------------------------------------------------------------- main */

AVX static int cpu_ok(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int main(int argc, char **argv)
{
    int check = 0;
    char **av = malloc(sizeof(char *) * (size_t)(argc + 1));
    int ac = 0;
    if (!av) return 1;
    for (int k = 0; k < argc; k++) {
        if (!strcmp(argv[k], "--check")) check = 1;
        else av[ac++] = argv[k];
    }
    av[ac] = NULL;
    bx_args a;
    int rc = bx_parse_args(ac, av, &a);
    if (rc) { free(av); return rc < 0 ? 0 : rc; }
    free(av);
    if (a.file || a.triangle != NLSQ_XPCS_FULL || a.literal_full) {
        fprintf(stderr, "floor_xpcs: only the in-memory full-triangle benchmark (merged pairs)\n");
        return 2;
    }
    if (!cpu_ok()) { fprintf(stderr, "floor_xpcs: needs AVX2 + FMA\n"); return 1; }
    int threads = bx_threads(&a);
    bx_data d;
    if (bx_data_setup(&a, 0, &d) != 0) { bx_data_free(&d); return 1; }
    nlsq_xpcs_model *m = NULL;
    int streamed = 0;
    if (bx_model_create(&a, &d, &m, &streamed) != 0) { bx_data_free(&d); return 1; }
    const size_t P = d.P, n = d.N, p = 7 + 2 * P;
    double *x = malloc(sizeof(double) * p), *JtJ = malloc(sizeof(double) * p * p);
    double *Jtr = malloc(sizeof(double) * p), *times = malloc(sizeof(double) * (size_t)a.repeat);
    double *tabs = malloc(sizeof(double) * (8 * n + 4 * P));
    if (!x || !JtJ || !Jtr || !times || !tabs || bx_start(&a, m, P, x) != 0) return 1;
    floor_pb F;
    F.n = n;
    F.P = P;
    F.ws_diag = 1.0 / 0.01;
    F.ws_off = sqrt(2.0) / 0.01;
    F.y = d.data32;
    F.CD = tabs; F.CG = tabs + n;
    for (int q = 0; q < 3; q++) { F.dD[q] = tabs + (2 + q) * n; F.dG[q] = tabs + (5 + q) * n; }
    F.bc = tabs + 8 * n; F.Bdc = F.bc + P; F.con = F.Bdc + P; F.off = F.con + P;
    double cost = 0, cpu = bx_cpu();
    for (int r = 0; r < a.repeat; r++) {
        double t0 = bx_now();
        floor_setup(&F, x, d.q, d.gap, d.dt);   /* the O(n) tables are part of a pass */
        if (floor_pass(&F, threads, JtJ, Jtr, &cost) != 0) { fprintf(stderr, "floor_xpcs: out of memory\n"); return 1; }
        times[r] = bx_now() - t0;
    }
    cpu = (bx_cpu() - cpu) / a.repeat;
    double med = bx_median(times, (size_t)a.repeat), lo = times[0];
    for (int r = 1; r < a.repeat; r++) if (times[r] < lo) lo = times[r];
    double diff[3] = {NAN, NAN, NAN};
    if (check && check_against_model(m, x, JtJ, Jtr, cost, diff) != 0) {
        fprintf(stderr, "floor_xpcs: the check pass through the model failed\n");
        return 1;
    }
    size_t mobs = nlsq_xpcs_model_n_rows(m), rows = P * n * (n + 1) / 2;
    if (a.json) {
        printf("{\"program\":\"floor_xpcs\",\"threads\":%d,\"N\":%zu,\"P\":%zu,\"m\":%zu,\"rows\":%zu",
               threads, n, P, mobs, rows);
        bx_json_kv(stdout, "pass_s", med);
        bx_json_kv(stdout, "pass_s_min", lo);
        bx_json_kv(stdout, "pass_cpu_s", cpu);
        printf(",\"passes\":%d", a.repeat);
        bx_json_kv(stdout, "cost", cost);
        if (check) {
            bx_json_kv(stdout, "check_cost_rel", diff[0]);
            bx_json_kv(stdout, "check_jtr_rel", diff[1]);
            bx_json_kv(stdout, "check_jtj_rel", diff[2]);
        }
        bx_json_kv(stdout, "peak_rss_mib", bx_mib(bx_status_kib("VmHWM")));
        printf("}\n");
    } else {
        printf("floor_xpcs: %zu angles x %zu x %zu, m = %zu (%zu merged rows), %d thread%s\n",
               P, n, n, mobs, rows, threads, threads == 1 ? "" : "s");
        printf("%-28s %.4f s median, %.4f s min over %d passes\n", "fused pass (J^T J, J^T r, cost)",
               med, lo, a.repeat);
        printf("%-28s %.4f s per pass (all threads)\n", "CPU time", cpu);
        printf("%-28s %.10e\n", "cost at x0", cost);
        if (check)
            printf("%-28s cost %.2e, J^T r %.2e, J^T J %.2e (relative)\n", "against the nlsq model",
                   diff[0], diff[1], diff[2]);
    }
    free(x); free(JtJ); free(Jtr); free(times); free(tabs);
    nlsq_xpcs_model_free(m);
    bx_data_free(&d);
    return 0;
}
