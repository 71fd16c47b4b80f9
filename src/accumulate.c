/* accumulate.c - one pass over the rows: evaluate chunks, form J^T J, J^T r, cost.
 *
 * A pass over rows [row_begin, row_end) is split into n_slots contiguous
 * slots.  The split depends only on the row range, the chunk size and p, never
 * on the number of threads; each slot is walked chunk by chunk in row order
 * into its own partial sums, and the slots are added in slot order at the end.
 * Threads take whole slots, so the result is bitwise identical for any thread
 * count.
 *
 * Per chunk (eval_chunk):  the callback fills r (n) and J (n x p, or n x k
 * over the k columns of a sparse pattern); rows are reweighted for a robust
 * loss; then
 *     cost += 0.5 sum rho(r_i^2)        Neumaier-compensated
 *     J^T r += ...                     dgemv (dense) or a k-vector scattered
 *     J^T J += J^T J (upper triangle)  dsyrk (dense) or k x k scattered
 * Blocks of at most NLSQ_SMALL_K columns (sparse patterns such as XPCS's 9 of
 * 53, or small dense problems) skip BLAS, whose packing dominates at that
 * width: the chunk is transposed and the k(k+1)/2 + k dot products are taken
 * with 4-wide vectors (small_normal); gradient-only passes (Adam) use the
 * same kernel and keep its J^T r.
 *
 * A problem with a normal-equation callback (nlsq.h nlsq_normal_fn) forms
 * the sums of its LM Jacobian passes itself (normal_pass says when): the
 * pass then walks its units [0, normal_units) through the same slots and
 * chunks, and a chunk whose sums are not finite is redone row by row.
 */
#define _POSIX_C_SOURCE 200809L
#include "nlsq_internal.h"
#include "linalg.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define NLSQ_MAX_SLOTS 32
/* dist_buf: [ENOMEM count, ECALLBACK count, other-error count, cost, rows,
 * non-finite r rows, non-finite J rows, max |r| (summed over processes: an
 * upper bound within a factor of their number, enough for its two uses, the
 * zero test and the choice of a power-of-two scale), observations], then J^T r (p), then
 * upper J^T J */
#define DIST_HEADER 9
#define NLSQ_SMALL_K 16
#define NLSQ_SLOT_BYTES_CAP ((size_t)256 << 20)  /* all slots' J^T J together */

struct nlsq__slot {
    double *JtJ;           /* p*p, upper triangle used */
    double *Jtr;           /* p */
    double sum, comp;      /* Neumaier sum of 0.5 rho(r^2) */
    double rmax;           /* max |r_i| over finite residuals */
    size_t n_rows, n_obs, n_bad_r, n_bad_J;
    double *R;             /* QR engines: (p+1)^2, the slot's factor (NLSQ__R_SIZE) */
};

struct nlsq__worker {
    double *r;             /* chunk_rows */
    double *J;             /* chunk_rows * p */
    size_t *cols;          /* p */
    double *local;         /* p*p (sparse k x k block) */
    double *localg;        /* p */
    double *T;             /* KMAXP x SUB: a transposed sub-block of J and r */
    double *Jrow;          /* chunk_rows * p: row-major copy of a column-major block */
    double *B;             /* QR engines: chunk_rows x (p+1) column-major [J r] */
    double *qrT, *qrW;     /* QR engines: nb (p+1) each, the fold's scratch */
};

/* ------------------------------------------------------- small-k kernel */

/* C (k x k, upper triangle, overwritten) = J^T J, g (k) = J^T r for a
 * row-major n x k block J (k <= NLSQ_SMALL_K).
 *
 * The block is walked in sub-blocks of SUB rows: each is transposed into T
 * (columns of J, then r, then zero columns up to a multiple of 4; SUB rows
 * each), which stays in L1 (a column-major block is read in place instead,
 * SUB_CM rows at a time while that many are left), and every (a, b >= a)
 * column product is accumulated in two 4-wide accumulators (even and odd
 * groups of 4 rows).
 * The AVX2+FMA version works in register blocks of 3 x 4 products
 * (block34_rows: 7 loads serve 12 FMAs, twelve independent chains hide the
 * FMA latency).  The order of the sums depends on n and k only, so the
 * result is the same whatever thread runs it.  The AVX2+FMA version is
 * chosen at run time when the CPU has it; the portable version sums in the
 * same order without FMA. */
#define SUB 64
#define SUB_CM 256   /* rows a column-major block is read in place at a time (avx2) */
#define KMAXP (((NLSQ_SMALL_K + 1 + 3) / 4) * 4 + 4)   /* padded column count */

/* Sub-block of a column-major block (column a at J + a * ld): copy, no transpose. */
static size_t copy_sub_cm(size_t nb, size_t k, const double *J, size_t ld, const double *r,
                          double *T)
{
    const size_t kc = k + 1, kp = ((kc + 3) / 4) * 4;
    const size_t nbp = (nb + 7) & ~(size_t)7;
    for (size_t a = 0; a < k; a++) {
        memcpy(T + a * SUB, J + a * ld, nb * sizeof(double));
        for (size_t i = nb; i < nbp; i++) T[a * SUB + i] = 0.0;
    }
    memcpy(T + k * SUB, r, nb * sizeof(double));
    for (size_t i = nb; i < nbp; i++) T[k * SUB + i] = 0.0;
    for (size_t a = kc; a < kp; a++) memset(T + a * SUB, 0, nbp * sizeof(double));
    return nbp;
}

static size_t transpose_sub(size_t nb, size_t k, const double *J, const double *r, double *T)
{
    const size_t kc = k + 1, kp = ((kc + 3) / 4) * 4;
    const size_t nbp = (nb + 7) & ~(size_t)7;
    for (size_t i = 0; i < nb; i++) {
        const double *Ji = J + i * k;
        for (size_t a = 0; a < k; a++) T[a * SUB + i] = Ji[a];
    }
    for (size_t a = 0; a < k; a++)
        for (size_t i = nb; i < nbp; i++) T[a * SUB + i] = 0.0;
    memcpy(T + k * SUB, r, nb * sizeof(double));
    for (size_t i = nb; i < nbp; i++) T[k * SUB + i] = 0.0;
    for (size_t a = kc; a < kp; a++) memset(T + a * SUB, 0, nbp * sizeof(double));
    return nbp;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NLSQ_HAVE_AVX2_KERNEL 1
static const double zeros[SUB_CM];   /* a padding column */
/* The AVX2 kernel's register blocks: 3 columns a x 4 columns b (12
 * accumulators, 3 + 1 registers of loads: 7 loads per 12 FMAs), a-blocks
 * a0 = 0, 3, 6 ... and b-groups from a0 in steps of 4 up to column k (r), so
 * every (a, b >= a) product lies in exactly one block.  Each product keeps
 * two accumulators, rows 8t .. 8t+3 and 8t+4 .. 8t+7, each walked in its own
 * loop (12 live registers, not 24): the sums and their order are exactly
 * those of the kernel with one (a, 4 b) group at a time it replaced. */
#define NLSQ_SMALL_BLOCKS 24

/* One register block over rows i0, i0 + 8, ...: the products of columns
 * a0 .. a0 + 2 with the nb (2, 3 or 4: a constant at each call) columns from
 * b0 on; accumulator 4 a + b of acc.  A block whose last columns are all
 * padding (past r) runs with a smaller nb: the same sums, fewer FMAs. */
__attribute__((target("avx2,fma"), always_inline))
static inline void block3n_rows(const double *const *base, size_t a0, size_t b0, size_t i0,
                                size_t nbp, __m256d *acc, int nb)
{
    const double *A0 = base[a0], *A1 = base[a0 + 1], *A2 = base[a0 + 2];
    const double *B[4] = {base[b0], base[b0 + 1], base[b0 + 2], base[b0 + 3]};
    __m256d s[12];
    for (int q = 0; q < 12; q++) s[q] = acc[q];
    for (size_t i = i0; i < nbp; i += 8) {
        __m256d x0 = _mm256_loadu_pd(A0 + i), x1 = _mm256_loadu_pd(A1 + i), x2 = _mm256_loadu_pd(A2 + i);
        for (int b = 0; b < nb; b++) {
            __m256d y = _mm256_loadu_pd(B[b] + i);
            s[b] = _mm256_fmadd_pd(x0, y, s[b]);
            s[4 + b] = _mm256_fmadd_pd(x1, y, s[4 + b]);
            s[8 + b] = _mm256_fmadd_pd(x2, y, s[8 + b]);
        }
    }
    for (int q = 0; q < 12; q++) acc[q] = s[q];
}

__attribute__((target("avx2,fma")))
static void block34_rows(const double *const *base, size_t a0, size_t b0, size_t kc, size_t i0,
                         size_t nbp, __m256d *acc)
{
    if (kc - b0 >= 4) block3n_rows(base, a0, b0, i0, nbp, acc, 4);
    else if (kc - b0 == 3) block3n_rows(base, a0, b0, i0, nbp, acc, 3);
    else block3n_rows(base, a0, b0, i0, nbp, acc, 2);
}

__attribute__((target("avx2,fma")))
static void small_normal_avx2(size_t n, size_t k, const double *J, int cm, const double *r,
                              double *T, double *C, double *g)
{
    const size_t kc = k + 1;
    __m256d acc[NLSQ_SMALL_BLOCKS][2][12];
    size_t nblk = 0;
    for (size_t a0 = 0; a0 < k; a0 += 3)
        for (size_t b0 = a0; b0 < kc; b0 += 4, nblk++)
            for (int q = 0; q < 12; q++) acc[nblk][0][q] = acc[nblk][1][q] = _mm256_setzero_pd();
    for (size_t i0 = 0; i0 < n;) {
        /* column-major input and a full sub-block: read the columns in place
         * (column a at J + a * n + i0, r as column k), SUB_CM rows at a time
         * while that many are left (the accumulators' loads and stores and
         * the block set-up once per SUB_CM rows, not per SUB; every
         * accumulator still takes its rows in row order, so the sums are
         * those of any sub-block length); otherwise a copy in T */
        const size_t step = cm && n - i0 >= SUB_CM ? SUB_CM : SUB;
        size_t nb = n - i0 < step ? n - i0 : step;
        const double *base[KMAXP + 4];
        size_t nbp;
        if (cm && nb == step) {
            nbp = step;
            for (size_t a = 0; a < k; a++) base[a] = J + a * n + i0;
            base[k] = r + i0;
        } else {
            nbp = cm ? copy_sub_cm(nb, k, J + i0, n, r + i0, T)
                     : transpose_sub(nb, k, J + i0 * k, r + i0, T);
            for (size_t a = 0; a <= k; a++) base[a] = T + a * SUB;
        }
        for (size_t a = kc; a < KMAXP + 4; a++) base[a] = zeros;   /* padding columns */
        size_t bl = 0;
        for (size_t a0 = 0; a0 < k; a0 += 3)
            for (size_t b0 = a0; b0 < kc; b0 += 4, bl++) {
                block34_rows(base, a0, b0, kc, 0, nbp, acc[bl][0]);   /* rows 8t .. 8t + 3 */
                block34_rows(base, a0, b0, kc, 4, nbp, acc[bl][1]);   /* rows 8t + 4 .. 8t + 7 */
            }
        i0 += nb;
    }
    size_t bl = 0;
    for (size_t a0 = 0; a0 < k; a0 += 3)
        for (size_t b0 = a0; b0 < kc; b0 += 4, bl++)
            for (size_t q = 0; q < 12; q++) {
                size_t a = a0 + q / 4, b = b0 + q % 4;
                if (a >= k || b < a || b >= kc) continue;
                double v[4];
                _mm256_storeu_pd(v, _mm256_add_pd(acc[bl][0][q], acc[bl][1][q]));
                double sum = (v[0] + v[1]) + (v[2] + v[3]);
                if (b < k) C[a * k + b] = sum;
                else g[a] = sum;
            }
}
#endif

static void small_normal_portable(size_t n, size_t k, const double *J, int cm, const double *r,
                                  double *T, double *C, double *g)
{
    const size_t kc = k + 1, kp = ((kc + 3) / 4) * 4;
    double acc[NLSQ_SMALL_K + 1][KMAXP][2][4];
    memset(acc, 0, sizeof acc);
    for (size_t i0 = 0; i0 < n; i0 += SUB) {
        size_t nb = n - i0 < SUB ? n - i0 : SUB;
        size_t nbp = cm ? copy_sub_cm(nb, k, J + i0, n, r + i0, T)
                        : transpose_sub(nb, k, J + i0 * k, r + i0, T);
        for (size_t a = 0; a < k; a++) {
            const double *ta = T + a * SUB;
            for (size_t b = a; b < kp; b++) {
                const double *tb = T + b * SUB;
                double *s = acc[a][b][0], *u = acc[a][b][1];
                for (size_t i = 0; i < nbp; i += 8)
                    for (int l = 0; l < 4; l++) {
                        s[l] += ta[i + l] * tb[i + l];
                        u[l] += ta[i + 4 + l] * tb[i + 4 + l];
                    }
            }
        }
    }
    for (size_t a = 0; a < k; a++)
        for (size_t b = a; b < kc; b++) {
            double v[4];
            for (int l = 0; l < 4; l++) v[l] = acc[a][b][0][l] + acc[a][b][1][l];
            double s = (v[0] + v[1]) + (v[2] + v[3]);
            if (b < k) C[a * k + b] = s;
            else g[a] = s;
        }
}

static void small_normal(int avx2, size_t n, size_t k, const double *J, int cm, const double *r,
                         double *T, double *C, double *g)
{
#ifdef NLSQ_HAVE_AVX2_KERNEL
    if (avx2) { small_normal_avx2(n, k, J, cm, r, T, C, g); return; }
#endif
    (void)avx2;
    small_normal_portable(n, k, J, cm, r, T, C, g);
}

/* sum of r_i^2 in a fixed order (4 interleaved partial sums) */
static double sum_squares(size_t n, const double *r)
{
    double s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++) s[l] += r[i + l] * r[i + l];
    for (; i < n; i++) s[i & 3] += r[i] * r[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* sum_squares(n, r), and the largest |r_i| among the finite residuals into
 * *rmax: the chunk's two scans of every pass.  The AVX2 version does both in
 * one read of r, its sum sum_squares's operation for operation (no FMA: the
 * four partial sums are its four lanes); this portable one reads r twice,
 * calling sum_squares itself.  A maximum does not depend on its order. */
static double squares_and_max_portable(size_t n, const double *r, double *rmax)
{
    double m[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        double a = fabs(r[i]);
        a = a <= DBL_MAX ? a : 0.0;   /* Inf, NaN: not counted */
        m[i & 3] = a > m[i & 3] ? a : m[i & 3];
    }
    *rmax = fmax(fmax(m[0], m[1]), fmax(m[2], m[3]));
    return sum_squares(n, r);
}

#ifdef NLSQ_HAVE_AVX2_KERNEL
__attribute__((target("avx2,fma")))
static double squares_and_max_avx2(size_t n, const double *r, double *rmax)
{
    __m256d s = _mm256_setzero_pd(), m = _mm256_setzero_pd();
    const __m256d absmask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    const __m256d big = _mm256_set1_pd(DBL_MAX);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_loadu_pd(r + i);
        s = _mm256_add_pd(s, _mm256_mul_pd(v, v));
        __m256d a = _mm256_and_pd(v, absmask);
        a = _mm256_and_pd(a, _mm256_cmp_pd(a, big, _CMP_LE_OQ));   /* Inf, NaN -> 0 */
        m = _mm256_max_pd(a, m);
    }
    double sl[4], ml[4];
    _mm256_storeu_pd(sl, s);
    _mm256_storeu_pd(ml, m);
    for (; i < n; i++) {
        sl[i & 3] += r[i] * r[i];
        double a = fabs(r[i]);
        if (a > ml[0] && a <= DBL_MAX) ml[0] = a;
    }
    *rmax = fmax(fmax(ml[0], ml[1]), fmax(ml[2], ml[3]));
    return (sl[0] + sl[1]) + (sl[2] + sl[3]);
}
#endif

static double squares_and_max(int avx2, size_t n, const double *r, double *rmax)
{
#ifdef NLSQ_HAVE_AVX2_KERNEL
    if (avx2) return squares_and_max_avx2(n, r, rmax);
#endif
    (void)avx2;
    return squares_and_max_portable(n, r, rmax);
}

/* r (n) and J (n*k, NULL allowed) times s, a power of two */
static void scale_chunk(double s, size_t n, size_t k, double *r, double *J)
{
    for (size_t i = 0; i < n; i++) r[i] *= s;
    if (J)
        for (size_t i = 0; i < n * k; i++) J[i] *= s;
}

int nlsq__engine_autoscale(nlsq__engine *e, const nlsq__acc *out)
{
    double rmax = out->rmax;
    if (!(rmax > 0) || !(rmax <= DBL_MAX)) return 0;
    if (rmax >= 0x1p-200 && rmax <= 0x1p200) return 0;
    int k = -ilogb(rmax);
    nlsq__engine_set_scale(e, e->scale_exp + k);
    return k;
}

void nlsq__engine_set_scale(nlsq__engine *e, int k)
{
    e->scale_exp = k;
    e->f_scale = ldexp(e->opt->f_scale, k);
}

/* ------------------------------------------------------------------ setup */

static size_t online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* Chunk rows and slots of the engine: chunk about 1 MiB of Jacobian rows by
 * default (memory_budget caps it per worker); slots a fixed partition, a
 * function of (m, chunk, p) only.  Returns 0 or NLSQ_EINVAL (p*p overflows). */
size_t nlsq__default_chunk(size_t p)
{
    size_t chunk = ((size_t)1 << 17) / p;
    if (chunk < 256) chunk = 256;
    if (chunk > 65536) chunk = 65536;
    return chunk;
}

static int plan_chunks(nlsq__engine *e, size_t threads)
{
    const nlsq_options *opt = e->opt;
    const size_t p = e->p, m = e->pb->n_rows;
    size_t chunk = opt->chunk_rows ? opt->chunk_rows : nlsq__default_chunk(p);
    if (opt->memory_budget > 0) {
        size_t per_row = (p + 1) * sizeof(double);
        size_t cap = opt->memory_budget / per_row;   /* per worker: see nlsq.h */
        if (cap < 1) cap = 1;
        if (chunk > cap) chunk = cap;
    }
    if (chunk > m) chunk = m;
    e->chunk_rows = chunk;
    size_t slots = m / chunk + (m % chunk != 0);   /* no wrap for m near SIZE_MAX */
    if (slots > NLSQ_MAX_SLOTS) slots = NLSQ_MAX_SLOTS;
    size_t pp;
    if (nlsq__mul_size(p, p, &pp) != 0) return NLSQ_EINVAL;
    while (slots > 1 && pp > NLSQ_SLOT_BYTES_CAP / sizeof(double) / slots) slots /= 2;
    if (slots < 1) slots = 1;
    e->n_slots = slots;
    e->n_threads = threads < slots ? threads : slots;
    return 0;
}

/* A worker's chunk buffers (and the QR block when the engine may fold). */
static int worker_alloc(nlsq__engine *e, nlsq__worker *w, int qr)
{
    const size_t p = e->p, chunk = e->chunk_rows;
    size_t nJ, nB;
    if (nlsq__mul_size(chunk, p, &nJ) != 0 || nlsq__mul_size(chunk, p + 1, &nB) != 0) return -1;
    w->r = nlsq__calloc(e->al, chunk, sizeof(double));
    w->J = nlsq__calloc(e->al, nJ, sizeof(double));
    w->cols = nlsq__calloc(e->al, p, sizeof(size_t));
    w->local = nlsq__calloc(e->al, p * p, sizeof(double));
    w->localg = nlsq__calloc(e->al, p, sizeof(double));
    w->T = nlsq__calloc(e->al, (size_t)KMAXP * SUB, sizeof(double));
    if (!w->r || !w->J || !w->cols || !w->local || !w->localg || !w->T) return -1;
    if (e->pb->jac_col_major && !(w->Jrow = nlsq__calloc(e->al, nJ, sizeof(double)))) return -1;
    if (!qr) return 0;
    w->B = nlsq__calloc(e->al, nB, sizeof(double));
    w->qrT = nlsq__calloc(e->al, nlsq__la_qr_nb(p + 1) * (p + 1), sizeof(double));
    w->qrW = nlsq__calloc(e->al, nlsq__la_qr_nb(p + 1) * (p + 1), sizeof(double));
    return w->B && w->qrT && w->qrW ? 0 : -1;
}

/* Slots, workers and the QR / AUTO buffers. */
static int engine_buffers(nlsq__engine *e, int qr)
{
    const size_t p = e->p, pp = p * p;
    e->slots = nlsq__calloc(e->al, e->n_slots, sizeof *e->slots);
    e->workers = nlsq__calloc(e->al, e->n_threads, sizeof *e->workers);
    if (!e->slots || !e->workers) return -1;
    for (size_t s = 0; s < e->n_slots; s++) {
        e->slots[s].JtJ = nlsq__calloc(e->al, pp, sizeof(double));
        e->slots[s].Jtr = nlsq__calloc(e->al, p, sizeof(double));
        if (!e->slots[s].JtJ || !e->slots[s].Jtr) return -1;
        if (qr && !(e->slots[s].R = nlsq__calloc(e->al, NLSQ__R_SIZE(p), sizeof(double))))
            return -1;
    }
    for (size_t t = 0; t < e->n_threads; t++)
        if (worker_alloc(e, &e->workers[t], qr) != 0) return -1;
    if (qr && !(e->Rsum = nlsq__calloc(e->al, NLSQ__R_SIZE(p), sizeof(double)))) return -1;
    if (e->accum_auto &&
        !(e->auto_work = nlsq__calloc(e->al, pp + 3 * p + (p * sizeof(int) + 7) / 8 + 1,
                                      sizeof(double))))
        return -1;
    return 0;
}

int nlsq__engine_init(nlsq__engine *e, const nlsq_problem *pb, const nlsq_options *opt)
{
    memset(e, 0, sizeof *e);
    e->pb = pb;
    e->opt = opt;
    e->al = &opt->allocator;
    e->p = pb->n_params;
    e->loss = opt->loss;
    e->f_scale = opt->f_scale;
#ifdef NLSQ_HAVE_AVX2_KERNEL
    __builtin_cpu_init();
    e->avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    size_t threads = opt->n_threads > 0 ? (size_t)opt->n_threads : online_cores();
    if (plan_chunks(e, threads) != 0) return NLSQ_EINVAL;
    e->qr = opt->accumulator == NLSQ_ACCUM_QR;
    e->accum_auto = opt->accumulator == NLSQ_ACCUM_AUTO && !opt->dist.reduce;
    if (opt->dist.reduce) {
        e->dist_buf = nlsq__calloc(e->al, DIST_HEADER + e->p + e->p * (e->p + 1) / 2,
                                   sizeof(double));
        if (!e->dist_buf) return NLSQ_ENOMEM;
    }
    if (engine_buffers(e, e->qr || e->accum_auto) != 0) goto nomem;
    if (nlsq__calls_init(&e->calls, pb, e->al, e->n_threads) != 0) goto nomem;
    if (pb->jacobian != NLSQ_JAC_ANALYTIC &&
        nlsq__fd_init(&e->fd, &e->calls, e->al, e->n_threads, e->chunk_rows) != 0) goto nomem;
    if (e->n_threads > 1 && nlsq__pool_create(e->al, e->n_threads - 1, &e->pool) != 0) goto nomem;
    e->blas_held = nlsq__blas_single_begin();   /* the workers are the parallelism */
    return 0;
nomem:
    nlsq__engine_free(e);
    return NLSQ_ENOMEM;
}

void nlsq__engine_free(nlsq__engine *e)
{
    if (!e) return;
    nlsq__pool_free(e->pool);   /* first: its threads are idle between passes */
    e->pool = NULL;
    if (e->slots) {
        for (size_t s = 0; s < e->n_slots; s++) {
            nlsq__free(e->al, e->slots[s].JtJ);
            nlsq__free(e->al, e->slots[s].Jtr);
            nlsq__free(e->al, e->slots[s].R);
        }
        nlsq__free(e->al, e->slots);
    }
    if (e->workers) {
        for (size_t t = 0; t < e->n_threads; t++) {
            nlsq__worker *w = &e->workers[t];
            double *bufs[] = {w->r, w->J, w->local, w->localg, w->T, w->Jrow, w->B, w->qrT,
                              w->qrW};
            for (size_t b = 0; b < sizeof bufs / sizeof bufs[0]; b++) nlsq__free(e->al, bufs[b]);
            nlsq__free(e->al, w->cols);
        }
        nlsq__free(e->al, e->workers);
    }
    nlsq__free(e->al, e->dist_buf);
    nlsq__free(e->al, e->Rsum);
    nlsq__free(e->al, e->auto_work);
    nlsq__fd_free(e->fd, e->al);
    nlsq__calls_free(&e->calls);
    e->fd = NULL;
    e->dist_buf = e->Rsum = e->auto_work = NULL;
    e->slots = NULL;
    e->workers = NULL;
    nlsq__blas_single_end(e->blas_held);
    e->blas_held = 0;
}

/* ------------------------------------------------------------ one chunk */

static inline void neumaier_add(double *sum, double *comp, double v)
{
    double t = *sum + v;
    if (fabs(*sum) >= fabs(v)) *comp += (*sum - t) + v;
    else *comp += (v - t) + *sum;
    *sum = t;
}

/* Are the k x k block and k-vector a chunk left in w->local / w->localg
 * finite?  (Their diagonal and vector: a non-finite product reaches both.) */
static int small_sums_finite(const nlsq__worker *w, size_t k)
{
    for (size_t a = 0; a < k; a++)
        if (!isfinite(w->local[a * k + a]) || !isfinite(w->localg[a])) return 0;
    return 1;
}

/* Add a small-kernel k x k block and k-vector into the slot's p x p sums. */
static void scatter_small(nlsq__slot *s, const nlsq__worker *w, size_t p, size_t k, int sparse,
                          int with_JtJ)
{
    const size_t *c = w->cols;
    for (size_t a = 0; a < k; a++) {
        size_t ca = sparse ? c[a] : a;
        s->Jtr[ca] += w->localg[a];
        if (!with_JtJ) continue;
        const double *lr = w->local + a * k;
        double *cr = s->JtJ + ca * p;
        for (size_t b = a; b < k; b++) cr[sparse ? c[b] : b] += lr[b];
    }
}

/* The sparse pattern of rows [row0, row0+n): columns into w->cols, *k of
 * them; returns the rows it covers (<= n), or 0 for a bad pattern. */
static size_t chunk_pattern(const nlsq_problem *pb, nlsq__worker *w, size_t p, size_t row0,
                            size_t n, size_t *k)
{
    size_t kk = 0;
    size_t got = pb->pattern(pb->ctx, row0, n, w->cols, &kk);
    if (got == 0 || got > n || kk == 0 || kk > p) return 0;
    for (size_t a = 0; a < kk; a++)
        if (w->cols[a] >= p || (a > 0 && w->cols[a] <= w->cols[a - 1])) return 0;
    *k = kk;
    return got;
}

/* Fast path (plain least squares, at most NLSQ_SMALL_K columns): one kernel
 * call gives J^T J and J^T r; a non-finite entry anywhere shows up in sum r^2
 * or in diag(J^T J) / J^T r, and only then are rows inspected (returns 0: the
 * careful path must run). */
static int fast_chunk(nlsq__engine *e, nlsq__worker *w, nlsq__slot *s, int mode, size_t n,
                      size_t k, const double *J, double rr)
{
    const double *r = w->r;
    if (!isfinite(rr)) return 0;
    if (mode == NLSQ__PASS_COST) {
        neumaier_add(&s->sum, &s->comp, 0.5 * rr);
        return 1;
    }
    small_normal(e->avx2, n, k, J, e->pb->jac_col_major, r, w->T, w->local, w->localg);
    if (!small_sums_finite(w, k)) return 0;
    neumaier_add(&s->sum, &s->comp, 0.5 * rr);
    scatter_small(s, w, e->p, k, e->pb->pattern != NULL, mode == NLSQ__PASS_NORMAL);
    return 1;
}

/* The cost of a chunk with finite residuals; with a robust loss, scipy's
 * reweighting J <- sqrt(rho' + 2 z rho'') J, r <- rho'/that * r (J may be
 * NULL: cost only). */
static void chunk_cost(nlsq__engine *e, nlsq__slot *s, size_t n, size_t k, double *r, double *J)
{
    if (e->loss == NLSQ_LOSS_LINEAR) {
        neumaier_add(&s->sum, &s->comp, 0.5 * sum_squares(n, r));
        return;
    }
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        double rho, d1, d2, z = r[i] * r[i];
        nlsq__loss_eval(e->loss, e->f_scale, z, &rho, &d1, &d2);
        acc += rho;
        if (J) {
            double js = d1 + 2.0 * z * d2;
            if (js < 2.220446049250313e-16) js = 2.220446049250313e-16;
            js = sqrt(js);
            r[i] *= d1 / js;
            double *row = J + i * k;
            for (size_t a = 0; a < k; a++) row[a] *= js;
        }
    }
    neumaier_add(&s->sum, &s->comp, 0.5 * acc);
}

/* J^T r (and J^T J for NORMAL) of a finite row-major n x k block into slot s. */
static void chunk_normal(nlsq__engine *e, nlsq__worker *w, nlsq__slot *s, int mode, size_t n,
                         size_t k, const double *J)
{
    const size_t p = e->p;
    const double *r = w->r;
    const int sparse = e->pb->pattern != NULL;
    if (k <= NLSQ_SMALL_K) {   /* NORMAL or GRAD: the kernel gives J^T r as well */
        small_normal(e->avx2, n, k, J, 0, r, w->T, w->local, w->localg);
        scatter_small(s, w, p, k, sparse, mode == NLSQ__PASS_NORMAL);
    } else if (!sparse) {
        nlsq__la_gemv_t(n, p, J, r, 1.0, s->Jtr);
        if (mode == NLSQ__PASS_NORMAL) nlsq__la_syrk_t(n, p, J, 1.0, s->JtJ);
    } else {
        const size_t *c = w->cols;
        nlsq__la_gemv_t(n, k, J, r, 0.0, w->localg);
        for (size_t a = 0; a < k; a++) s->Jtr[c[a]] += w->localg[a];
        if (mode == NLSQ__PASS_NORMAL) {
            nlsq__la_syrk_t(n, k, J, 0.0, w->local);
            for (size_t a = 0; a < k; a++) {
                const double *lr = w->local + a * k;
                double *cr = s->JtJ + c[a] * p;
                for (size_t b = a; b < k; b++) cr[c[b]] += lr[b];
            }
        }
    }
}

/* The QR accumulator: [J r] of a finite row-major n x k block becomes a
 * column-major n x (p+1) block (a sparse pattern's k columns placed among
 * zero ones: QR works on dense columns) and is folded into the slot's factor
 * by Householder reflections (nlsq__la_qr_fold), chunk after chunk in row
 * order.  J^T J is never formed.  0 or NLSQ_ESINGULAR (LAPACK refused). */
static int chunk_qr(nlsq__engine *e, nlsq__worker *w, nlsq__slot *s, size_t n, size_t k,
                    const double *J)
{
    const size_t p = e->p;
    const size_t *c = e->pb->pattern ? w->cols : NULL;
    double *B = w->B;
    if (c) memset(B, 0, n * p * sizeof(double));
    for (size_t a = 0; a < k; a++) {
        double *col = B + (c ? c[a] : a) * n;
        for (size_t i = 0; i < n; i++) col[i] = J[i * k + a];
    }
    memcpy(B + p * n, w->r, n * sizeof(double));
    return nlsq__la_qr_fold(n, p + 1, s->R, B, n, w->qrT, w->qrW) ? NLSQ_ESINGULAR : 0;
}

/* The careful path: counts non-finite rows, applies the loss, then the sums
 * (row-major blocks) or, for a NORMAL pass of a QR engine, the fold.
 * Returns 0 or an error code. */
static int careful_chunk(nlsq__engine *e, nlsq__worker *w, nlsq__slot *s, int mode, size_t n,
                         size_t k, double *J)
{
    double *r = w->r;
    if (J && e->pb->jac_col_major) {
        double *Jr = w->Jrow;
        for (size_t i = 0; i < n; i++)
            for (size_t a = 0; a < k; a++) Jr[i * k + a] = J[a * n + i];
        J = Jr;
    }
    size_t bad_r = 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(r[i])) bad_r++;
    if (bad_r) {
        s->n_bad_r += bad_r;
        return 0;   /* nothing else from this chunk is meaningful */
    }
    chunk_cost(e, s, n, k, r, J);
    if (mode == NLSQ__PASS_COST) return 0;
    for (size_t i = 0; i < n * k; i++)
        if (!isfinite(J[i])) {
            s->n_bad_J += 1;
            return 0;
        }
    if (e->qr && mode == NLSQ__PASS_NORMAL) return chunk_qr(e, w, s, n, k, J);
    chunk_normal(e, w, s, mode, n, k, J);
    return 0;
}

/* Evaluate rows [row0, row0+n) (n <= chunk) and add them to slot s.
 * Returns the rows done, or an error code. */
static int eval_chunk(nlsq__engine *e, nlsq__worker *w, nlsq__slot *s,
                      const double *x, int mode, size_t row0, size_t n)
{
    const nlsq_problem *pb = e->pb;
    size_t k = e->p;
    const int sparse = pb->pattern != NULL;
    if (sparse && (n = chunk_pattern(pb, w, e->p, row0, n, &k)) == 0) return NLSQ_ECALLBACK;
    double *J = mode == NLSQ__PASS_COST ? NULL : w->J;
    const size_t wi = (size_t)(w - e->workers);
    size_t obs = n;
    int cb = e->fd ? nlsq__fd_eval(e->fd, wi, x, row0, n, sparse ? w->cols : NULL, k, w->r, J, &obs)
                   : nlsq__calls_eval(&e->calls, wi, 1, x, row0, n, w->r, J, &obs);
    if (cb != 0) return cb;   /* the record is the worker's (callback.c) */
    s->n_rows += n;
    s->n_obs += obs;   /* integers: the same total in any order */
    if (e->scale_exp) scale_chunk(ldexp(1.0, e->scale_exp), n, k, w->r, J);
    double rmax, rr = squares_and_max(e->avx2, n, w->r, &rmax);
    if (rmax > s->rmax) s->rmax = rmax;
    const int fold = e->qr && mode == NLSQ__PASS_NORMAL;
    if (e->loss == NLSQ_LOSS_LINEAR && !fold && (mode == NLSQ__PASS_COST || k <= NLSQ_SMALL_K) &&
        fast_chunk(e, w, s, mode, n, k, J, rr))
        return (int)n;
    int rc = careful_chunk(e, w, s, mode, n, k, J);
    return rc ? rc : (int)n;
}

/* ------------------------------------------- the problem's normal sums */

/* Does this pass go through pb->normal (nlsq.h nlsq_normal_fn): a NORMAL
 * pass of the normal-equation accumulator over every row, plain least
 * squares, analytic Jacobian, one process, residuals not scaled up (the
 * callback's unscaled sums of tiny residuals would underflow; huge ones
 * overflow to inf, and those chunks are redone row by row). */
static int normal_pass(const nlsq__engine *e, int mode, size_t row_begin, size_t row_end)
{
    const nlsq_problem *pb = e->pb;
    return pb->normal && mode == NLSQ__PASS_NORMAL && !e->qr && e->loss == NLSQ_LOSS_LINEAR &&
           !e->fd && !e->opt->dist.reduce && e->scale_exp <= 0 && row_begin == 0 &&
           row_end == pb->n_rows;
}

/* Units [u0, u0 + nu) into slot s: the problem's sums (scaled by
 * 2^(2 scale_exp), exact) when they are finite; otherwise their rows again,
 * group by group, through eval, whose careful path counts what is not
 * finite.  Returns nu or an error code. */
static int normal_chunk(nlsq__engine *e, nlsq__worker *w, nlsq__slot *s, const double *x,
                        size_t u0, size_t nu)
{
    const nlsq_problem *pb = e->pb;
    const size_t p = e->p, U = pb->normal_units, G = pb->n_rows / U;
    memset(w->local, 0, p * p * sizeof(double));
    memset(w->localg, 0, p * sizeof(double));
    nlsq_normal_sums out = {w->local, w->localg, 0.0, 0.0, 0};
    int cb = nlsq__calls_normal(&e->calls, (size_t)(w - e->workers), x, u0, nu, &out);
    if (cb != 0) return cb;
    if (!(isfinite(out.rr) && isfinite(out.rmax) && small_sums_finite(w, p))) {
        for (size_t g = 0; g < G; g++)
            for (size_t row = g * U + u0, end = row + nu; row < end;) {
                int got = eval_chunk(e, w, s, x, NLSQ__PASS_NORMAL, row, end - row);
                if (got < 0) return got;
                row += (size_t)got;
            }
        return (int)nu;
    }
    const double sc = ldexp(1.0, 2 * e->scale_exp), rmax = ldexp(out.rmax, e->scale_exp);
    s->n_rows += nu * G;
    s->n_obs += out.n_obs;
    if (rmax > s->rmax) s->rmax = rmax;
    neumaier_add(&s->sum, &s->comp, 0.5 * (out.rr * sc));
    if (sc != 1.0)   /* a power of two: the products are those the sums had */
        for (size_t a = 0; a < p; a++) {
            w->localg[a] *= sc;
            for (size_t b = a; b < p; b++) w->local[a * p + b] *= sc;
        }
    scatter_small(s, w, p, p, 0, 1);
    return (int)nu;
}

/* ------------------------------------------------------------ slots, threads */

typedef struct pass_job {
    nlsq__engine *e;
    const double *x;
    int mode;
    int units;              /* the pass walks pb->normal's units, not rows */
    size_t row_begin, n_total, n_slots_used;
    atomic_size_t next_slot;
    atomic_int failed;      /* first error code, 0 if none */
} pass_job;

static void slot_reset(nlsq__slot *s, size_t p, int mode)
{
    s->sum = s->comp = s->rmax = 0.0;
    s->n_rows = s->n_obs = s->n_bad_r = s->n_bad_J = 0;
    if (mode != NLSQ__PASS_COST) memset(s->Jtr, 0, p * sizeof(double));
    if (mode == NLSQ__PASS_NORMAL) memset(s->JtJ, 0, p * p * sizeof(double));
    if (mode == NLSQ__PASS_NORMAL && s->R) memset(s->R, 0, NLSQ__R_SIZE(p) * sizeof(double));
}

static int run_slot(pass_job *job, nlsq__worker *w, size_t si)
{
    nlsq__engine *e = job->e;
    nlsq__slot *s = &e->slots[si];
    size_t a = job->row_begin + (size_t)(((unsigned __int128)job->n_total * si) / job->n_slots_used);
    size_t b = job->row_begin + (size_t)(((unsigned __int128)job->n_total * (si + 1)) / job->n_slots_used);
    slot_reset(s, e->p, job->mode);
    for (size_t row = a; row < b;) {
        if (atomic_load_explicit(&job->failed, memory_order_relaxed)) return 0;
        size_t n = b - row < e->chunk_rows ? b - row : e->chunk_rows;
        int got = job->units ? normal_chunk(e, w, s, job->x, row, n)
                             : eval_chunk(e, w, s, job->x, job->mode, row, n);
        if (got < 0) return got;
        row += (size_t)got;
    }
    return 0;
}

/* Task t of a pass (pool.c): slots in the order they are taken. */
static void worker_loop(void *arg, size_t t)
{
    pass_job *job = arg;
    nlsq__worker *w = &job->e->workers[t];
    for (;;) {
        size_t si = atomic_fetch_add(&job->next_slot, 1);
        if (si >= job->n_slots_used) break;
        int rc = run_slot(job, w, si);
        if (rc < 0) {
            int expected = 0;
            atomic_compare_exchange_strong(&job->failed, &expected, rc);
            break;
        }
    }
}

/* The QR engine's total of a NORMAL pass: the slots' factors folded into
 * e->Rsum in slot order (a fixed order: bitwise the same for any thread
 * count), copied to out->R when asked; the upper triangles of J^T J = R^T R
 * and J^T r = R^T (Q^T r) for the callers that use the normal equations.
 * 0 or NLSQ_ESINGULAR. */
static int merge_factors(nlsq__engine *e, size_t n_used, nlsq__acc *out)
{
    const size_t p = e->p, q = p + 1;
    const double *R = e->Rsum;
    memset(e->Rsum, 0, q * q * sizeof(double));
    for (size_t si = 0; si < n_used; si++)
        if (nlsq__la_qr_fold(q, q, e->Rsum, e->slots[si].R, q, e->workers[0].qrT,
                             e->workers[0].qrW) != 0)
            return NLSQ_ESINGULAR;
    for (size_t j = 0; j < p; j++) {
        const double *cj = R + j * q, *cr = R + p * q;
        for (size_t i = 0; out->JtJ && i <= j; i++) {
            const double *ci = R + i * q;
            double t = 0.0;
            for (size_t l = 0; l <= i; l++) t += ci[l] * cj[l];
            out->JtJ[i * p + j] = t;
        }
        double g = 0.0;
        for (size_t l = 0; l <= j; l++) g += cj[l] * cr[l];
        if (out->Jtr) out->Jtr[j] = g;
    }
    if (out->R) memcpy(out->R, e->Rsum, q * q * sizeof(double));
    out->has_R = 1;
    return 0;
}

/* Sum over rows [row_begin, row_end) of this process (all of them unless
 * opt->dist.reduce is set) into out; returns 0 or an error code. */
static int local_pass(nlsq__engine *e, const double *x, int mode,
                      size_t row_begin, size_t row_end, nlsq__acc *out)
{
    const size_t p = e->p;
    pass_job job;
    memset(&job, 0, sizeof job);
    job.e = e;
    job.x = x;
    job.mode = mode;
    job.row_begin = row_begin;
    job.n_total = row_end > row_begin ? row_end - row_begin : 0;
    job.units = normal_pass(e, mode, row_begin, row_end);
    if (job.units) job.n_total = e->pb->normal_units;   /* row_begin is 0 */
    size_t want = job.n_total / e->chunk_rows + (job.n_total % e->chunk_rows != 0);
    job.n_slots_used = want < e->n_slots ? want : e->n_slots;
    atomic_init(&job.next_slot, 0);
    atomic_init(&job.failed, 0);

    /* the point is prepared once, here, before any worker starts; the calling
     * thread works too; a pool smaller than asked (threads the system
     * refused) just means fewer workers */
    nlsq__calls_begin(&e->calls);
    int failed = job.n_slots_used ? nlsq__calls_prepare(&e->calls, x) : 0;
    if (!failed) {
        size_t nt = e->n_threads < job.n_slots_used ? e->n_threads : job.n_slots_used;
        size_t np = nlsq__pool_size(e->pool) + 1;
        nlsq__pool_run(e->pool, nt < np ? nt : np, worker_loop, &job);
        failed = atomic_load(&job.failed);
    }
    if (failed) {
        nlsq__calls_settle(&e->calls);
        if (e->calls.status) e->callback_row = e->calls.row;
        return failed;
    }

    /* Fixed-order reduction of the slots. */
    double sum = 0.0, comp = 0.0;
    out->n_rows = out->n_obs = out->n_nonfinite_r = out->n_nonfinite_J = 0;
    out->rmax = 0.0;
    if (mode != NLSQ__PASS_COST && out->Jtr) memset(out->Jtr, 0, p * sizeof(double));
    if (mode == NLSQ__PASS_NORMAL && out->JtJ) memset(out->JtJ, 0, p * p * sizeof(double));
    for (size_t si = 0; si < job.n_slots_used; si++) {
        const nlsq__slot *s = &e->slots[si];
        neumaier_add(&sum, &comp, s->sum);
        neumaier_add(&sum, &comp, s->comp);
        out->n_rows += s->n_rows;
        out->n_obs += s->n_obs;
        out->n_nonfinite_r += s->n_bad_r;
        out->n_nonfinite_J += s->n_bad_J;
        if (s->rmax > out->rmax) out->rmax = s->rmax;
        if (mode != NLSQ__PASS_COST && out->Jtr)
            for (size_t j = 0; j < p; j++) out->Jtr[j] += s->Jtr[j];
        if (mode == NLSQ__PASS_NORMAL && out->JtJ)
            for (size_t i = 0; i < p; i++)
                for (size_t j = i; j < p; j++) out->JtJ[i * p + j] += s->JtJ[i * p + j];
    }
    out->cost = sum + comp;
    out->has_R = 0;
    return e->qr && mode == NLSQ__PASS_NORMAL ? merge_factors(e, job.n_slots_used, out) : 0;
}

/* Several processes: pack this process's sums (or its error), let the
 * transport add them up, unpack the totals.  Every process gets the same
 * numbers, hence the same status. */
static int dist_combine(nlsq__engine *e, int mode, int local_rc, nlsq__acc *out)
{
    const size_t p = e->p, nJ = mode == NLSQ__PASS_NORMAL ? p * (p + 1) / 2 : 0;
    const size_t ng = mode != NLSQ__PASS_COST ? p : 0, n = DIST_HEADER + ng + nJ;
    double *b = e->dist_buf;
    memset(b, 0, n * sizeof(double));
    if (local_rc == NLSQ_ENOMEM) b[0] = 1;
    else if (local_rc == NLSQ_ECALLBACK) b[1] = 1;
    else if (local_rc != 0) b[2] = 1;
    else {
        b[3] = out->cost;
        b[4] = (double)out->n_rows;
        b[5] = (double)out->n_nonfinite_r;
        b[6] = (double)out->n_nonfinite_J;
        b[7] = out->rmax;
        b[8] = (double)out->n_obs;   /* exact up to 2^53 */
        for (size_t j = 0; j < ng; j++) b[DIST_HEADER + j] = out->Jtr ? out->Jtr[j] : 0.0;
        size_t t = DIST_HEADER + ng;
        for (size_t i = 0; i < p && nJ; i++)
            for (size_t j = i; j < p; j++) b[t++] = out->JtJ ? out->JtJ[i * p + j] : 0.0;
    }
    if (e->opt->dist.reduce(e->opt->dist.ctx, b, n) != 0) return NLSQ_EDISTRIBUTED;
    if (b[0] > 0) return NLSQ_ENOMEM;
    if (b[1] > 0) return NLSQ_ECALLBACK;
    if (b[2] > 0) return NLSQ_EDISTRIBUTED;
    out->cost = b[3];
    out->n_rows = (size_t)b[4];
    out->n_nonfinite_r = (size_t)b[5];
    out->n_nonfinite_J = (size_t)b[6];
    out->rmax = b[7];
    out->n_obs = (size_t)b[8];
    for (size_t j = 0; j < ng; j++) if (out->Jtr) out->Jtr[j] = b[DIST_HEADER + j];
    size_t t = DIST_HEADER + ng;
    for (size_t i = 0; i < p && nJ; i++)
        for (size_t j = i; j < p; j++, t++) if (out->JtJ) out->JtJ[i * p + j] = b[t];
    return 0;
}

/* NLSQ_ACCUM_AUTO's test on the upper triangle of A = J^T J: the
 * reciprocal condition number (1-norm, LAPACK dpocon) of the column-scaled
 * C = S A S (unit diagonal; S = diag(A)^-1/2 over the nonzero columns, a
 * zero column is undetermined whatever the accumulator), from its Cholesky
 * factor.  Ill-conditioned: below NLSQ_AUTO_RCOND, or no Cholesky factor at
 * all.  rcond(C) ~ 1 / cond(J S)^2, so 1e-10 means cond(J S) above ~1e5: the
 * normal equations then keep at most ~6 of the ~16 digits the QR keeps ~11 of. */
#define NLSQ_AUTO_RCOND 1e-10
static int ill_conditioned(nlsq__engine *e, const double *A)
{
    const size_t p = e->p;
    double *C = e->auto_work, *work = C + p * p;
    int *iwork = (int *)(work + 3 * p);
    size_t q = 0;
    for (size_t j = 0; j < p; j++) q += A[j * p + j] > 0;
    double anorm = 0.0;
    for (size_t i = 0, a = 0; i < p; i++) {
        if (!(A[i * p + i] > 0)) continue;
        for (size_t j = 0, b = 0; j < p; j++) {
            if (!(A[j * p + j] > 0)) continue;
            double v = i <= j ? A[i * p + j] : A[j * p + i];
            C[a * q + b++] = v / (sqrt(A[i * p + i]) * sqrt(A[j * p + j]));
        }
        a++;
    }
    for (size_t j = 0; j < q; j++) {   /* 1-norm: largest column sum */
        double t = 0.0;
        for (size_t i = 0; i < q; i++) t += fabs(C[i * q + j]);
        if (t > anorm) anorm = t;
    }
    if (q == 0 || nlsq__la_cholesky('U', q, C) != 0) return 1;
    double rcond = 0.0;
    if (nlsq__la_cholesky_rcond(q, C, anorm, &rcond, work, iwork) != 0) return 1;
    return !(rcond >= NLSQ_AUTO_RCOND);
}

int nlsq__engine_pass(nlsq__engine *e, const double *x, int mode,
                      size_t row_begin, size_t row_end, nlsq__acc *out)
{
    const size_t p = e->p;
    if (row_end > e->pb->n_rows || row_begin >= row_end) return NLSQ_EINVAL;
    int rc;
    out->switched = 0;
    if (e->opt->dist.reduce) {
        size_t lb = row_begin > e->opt->dist.row_begin ? row_begin : e->opt->dist.row_begin;
        size_t le = row_end < e->opt->dist.row_end ? row_end : e->opt->dist.row_end;
        rc = local_pass(e, x, mode, lb, le > lb ? le : lb, out);
        rc = dist_combine(e, mode, rc, out);
    } else {
        rc = local_pass(e, x, mode, row_begin, row_end, out);
        if (!rc && e->accum_auto && !e->qr && mode == NLSQ__PASS_NORMAL && out->JtJ &&
            !out->n_nonfinite_r && !out->n_nonfinite_J && ill_conditioned(e, out->JtJ)) {
            e->qr = 1;   /* for the rest of the engine's life; this pass again */
            out->switched = 1;
            nlsq__log(e->opt, 0, "accumulator: J^T J ill-conditioned (rcond < %g): QR from now on",
                      NLSQ_AUTO_RCOND);
            rc = local_pass(e, x, mode, row_begin, row_end, out);
        }
    }
    if (rc) return rc;
    if (row_begin == 0 && row_end == e->pb->n_rows) e->n_obs = out->n_obs;
    if (mode == NLSQ__PASS_NORMAL && out->JtJ)
        for (size_t i = 0; i < p; i++)
            for (size_t j = 0; j < i; j++) out->JtJ[i * p + j] = out->JtJ[j * p + i];
    /* Finite residuals whose squares overflow make the sum inf (or inf - inf
     * = NaN in the compensation): either way the point is unusable. */
    if (out->n_nonfinite_r || !isfinite(out->cost)) out->cost = INFINITY;
    return 0;
}
