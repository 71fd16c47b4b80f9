/*
 * model.c - the XPCS laminar-flow (and static) two-time correlation model as
 * an nlsq_problem (part 3 of nlsq_xpcs.h).
 *
 * Rows.  Global row index -> (angle a, frame i, frame j).  Rows of one angle
 * are contiguous, angles in order.  Inside one angle, matrix row i's entries
 * come in ascending j:
 *   upper: j > i           (j >= i with include_diagonal)   R = n(n-1)/2 (n(n+1)/2)
 *   full : j != i, all j   (all j with include_diagonal)    R = n(n-1)   (n^2)
 * The pattern callback cuts every row range at the next angle boundary, so a
 * chunk never straddles two angles, and names the columns 0..np-1 (physical),
 * np + 2a (contrast_a), np + 2a + 1 (offset_a).
 *
 * Symmetric pairs.  c2 is symmetric (a file's full matrix is rebuilt from its
 * upper triangle; in-memory data are checked at creation), so with triangle
 * "full" the entries (i, j) and (j, i) are the same observation twice.  The
 * model then presents each pair once, weighted by sqrt(2): cost, J^T J and
 * J^T r are those of the full triangle, at half the work, and eval's
 * observation count (nlsq_eval_env.n_obs) still counts both triangles for
 * the degrees of freedom: 2 a merged pair, 1 the diagonal, 0 an entry whose
 * data are not finite (excluded).  Internally the rows are then the upper
 * triangle's (upper_rows).
 *
 * Forward model: exactly xpcs-model.md "Forward model", evaluated by
 * model_kernel.c segment by segment (contiguous j of one matrix row), the
 * Jacobian block written column-major (jac_col_major).  Per parameter point
 * the O(n * 7) tables CD_k, CG_k and their derivatives (structure of arrays)
 * are computed once, by the problem's prepare callback, into the state the
 * library owns for the solve (nlsq.h "Callbacks"); every eval at that point
 * reads them.  An eval at a point that was not prepared (finite differences
 * asked of this analytic model) computes its own tables in its worker's
 * scratch; a direct call without an env, in a private allocation.
 *
 * Pair factors.  Every angle's entry (i, j) shares exp(-A I_D), I_D and I_G
 * (the angle enters through Phi = B cos(phi0 - phi_a) I_G only), so prepare
 * also computes them once per point for the whole upper triangle
 * (model_kernel.h, 24 n(n+1)/2 bytes) and the kernel reads them instead of
 * doing the square roots and the exponential for each angle: the same
 * numbers, bitwise, as without.  Kept with the AVX2 kernel when they fit in
 * config.memory_budget and the model has no normal-equation callback (below);
 * unprepared points and segments left of the diagonal (literal full
 * triangle) compute them per segment.
 *
 * Normal-equation callback (nlsq.h nlsq_normal_fn).  For the laminar model on
 * in-memory data with the AVX2 kernel, the problem's Jacobian passes go
 * through model_normal: unit u is local row u of every angle (one entry
 * (i, j) of all P angles), and model_kernel.c forms the entry's pair factors
 * and table differences once for the P angles and the physical block of
 * J^T J from six sums over the angles per pair (xk_normal_segment).  The
 * same values as eval's rows, summed in another order.  Such a model keeps
 * no pair factors (m->pairs 0): only residual-only passes would read them.
 *
 * Start point: start.c, through model_view.h (sizes, bounds, and the data
 * of local rows with their (i, j)).
 *
 * Data: in-memory sources are used in place; other sources are cached at
 * creation in row order (n_rows values, float32 when the source says so) if
 * that fits config.memory_budget, else streamed.  A file source whose rows
 * are the upper triangle's (upper, or full with merged pairs) streams in
 * blocks of 128 matrix rows (stream.c): each block's upper part is one HDF5
 * read, blocks are read ahead by a reader thread into buffers that fit the
 * budget, so a pass reads every stored chunk once while the workers compute.
 * Other streamed sources read, per eval, the matrix rows the range needs (in
 * blocks of at most STREAM_BLOCK_BYTES), calls serialised by a mutex unless
 * the source is thread safe.  Non-finite data
 * give residual 0 and a zero Jacobian row and are counted once (at creation,
 * or, streaming, the first time each matrix row is read).
 */
#include "nlsq_xpcs.h"
#include "model_kernel.h"
#include "model_view.h"
#include "physics.h"
#include "stream.h"
#include "xpcs_common.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_BLOCK_BYTES ((size_t)4 << 20)
#define CACHE_FILL_BYTES   ((size_t)8 << 20)

enum { DATA_MEM32, DATA_MEM64, DATA_CACHE32, DATA_CACHE64, DATA_STREAM, DATA_BLOCKS };
#define STREAM_BLOCK_ROWS 128   /* rows of a streamed block: the chunk rows of xpcs_synth files */

typedef struct xtab {
    double *CD, *CG;            /* n each (CG NULL in static mode) */
    double *dCD, *dCG;          /* 3n each, [t * n + k] (structure of arrays) */
    double *mem;                /* tab_doubles(m) doubles the pointers lie in */
} xtab;

/* The source as the model reads it: the public tagged union flattened once
 * at creation (the members of the other kinds NULL / 0). */
typedef struct xsrc {
    size_t n_angles, n;
    const double *phi;
    int (*read)(void *ctx, size_t a, size_t row0, size_t nrows, double *out);
    void *ctx;
    int thread_safe, float32, symmetric;
    const float *data32;
    const double *data64;
    nlsq_xpcs_file *file;
    const nlsq_xpcs_selection *sel;
} xsrc;

struct nlsq_xpcs_model {
    xsrc src;
    nlsq_xpcs_config cfg;
    size_t P, n, np, n_params;
    size_t R;                   /* rows per angle (internal: merged pairs count once) */
    size_t n_rows;              /* rows of the nlsq_problem */
    size_t n_obs;               /* observations (both triangles when merged) */
    int sym;                    /* full triangle presented as weighted upper pairs */
    int upper_rows;             /* internal rows are the upper triangle's */
    double ws_off, ws_diag;     /* row weight / sigma: off-diagonal, diagonal */
    int avx2;                   /* the kernel's AVX2 path */
    int pairs;                  /* prepare keeps the pair factors (pair_doubles) */
    int laminar;
    double A, B, eps;           /* geom's, for the evaluation loop */
    nlsq__xpcs_geom geom;       /* the physics constants (physics.h) */
    double *phi;                /* P, degrees */
    double *lower, *upper;
    int data_mode;
    float *c32;                 /* cache, n_rows */
    double *c64;
    size_t n_excl_fixed;        /* counted at creation */
    atomic_size_t n_excl_stream;
    atomic_size_t n_seen;       /* matrix rows counted (streaming), after their count */
    atomic_uchar *seen;         /* P * n matrix rows counted (streaming) */
    xs_stream *blocks;          /* DATA_BLOCKS: row blocks read ahead (stream.c) */
    pthread_mutex_t read_mu;    /* serialises a non-thread-safe source */
    pthread_mutex_t err_mu;
    char stream_error[256];     /* the reader thread's last failure, handed to the
                                   eval that meets it (cut to its message buffer) */
};

/* ------------------------------------------------------------------------ */
/* Names, status strings                                                      */
/* ------------------------------------------------------------------------ */

static const char *const k_names[NLSQ_XPCS_N_PHYS] = {
    "D0", "alpha", "D_offset", "gamma_dot_0", "beta", "gamma_dot_offset", "phi0"};
static const char *const k_units[NLSQ_XPCS_N_PHYS] = {
    "A^2/s", "-", "A^2/s", "1/s", "-", "1/s", "degrees"};
static const double k_default_start[NLSQ_XPCS_N_PHYS] = {
    1e4, 0.0, 0.0, 5e-4, 0.0, 0.0, 0.0};
static const double k_lower[NLSQ_XPCS_N_PHYS] = {100.0, -2.0, -1e5, 1e-6, -2.0, -0.1, -10.0};
static const double k_upper[NLSQ_XPCS_N_PHYS] = {1e5, 2.0, 1e5, 0.5, 2.0, 0.1, 10.0};

const char *nlsq_xpcs_param_name(size_t k) { return k < NLSQ_XPCS_N_PHYS ? k_names[k] : "?"; }
const char *nlsq_xpcs_param_unit(size_t k) { return k < NLSQ_XPCS_N_PHYS ? k_units[k] : "?"; }

const char *nlsq_xpcs_status_string(int status)
{
    switch (status) {
    case NLSQ_XPCS_EFILE:   return "cannot open the file (missing, unreadable or not HDF5)";
    case NLSQ_XPCS_EFORMAT: return "file layout not recognised (missing dataset, bad shape, rank or type)";
    case NLSQ_XPCS_ERANGE:  return "q, angle or frame range not in the file";
    default:                return nlsq_status_string(status);
    }
}

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || err_size == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

void nlsq_xpcs_config_init(nlsq_xpcs_config *c)
{
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->mode = NLSQ_XPCS_LAMINAR;
    c->triangle = NLSQ_XPCS_UPPER;
    c->include_diagonal = 0;
    c->q = NAN;
    c->gap = NAN;
    c->dt = NAN;
    c->k0 = 0;
    c->sigma = 0.01;
    c->memory_budget = (size_t)256 << 20;
}

/* ------------------------------------------------------------------------ */
/* File source                                                                */
/* ------------------------------------------------------------------------ */

int nlsq_xpcs_file_source(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel,
                          nlsq_xpcs_source *src)
{
    if (!f || !sel || !src || sel->n_angles == 0 || !sel->phi ||
        sel->last_frame < sel->first_frame)
        return NLSQ_EINVAL;
    memset(src, 0, sizeof *src);
    src->kind = NLSQ_XPCS_SOURCE_FILE;
    src->n_angles = sel->n_angles;
    src->n = sel->last_frame - sel->first_frame + 1;
    src->phi = sel->phi;
    src->u.file.f = f;
    src->u.file.sel = sel;
    return 0;
}

/* The public source checked and flattened into *s.  0 or NLSQ_EINVAL (err
 * says why). */
static int source_flatten(const nlsq_xpcs_source *in, xsrc *s, char *err, size_t es)
{
    memset(s, 0, sizeof *s);
    s->n_angles = in->n_angles;
    s->n = in->n;
    s->phi = in->phi;
    const char *why = NULL;
    switch (in->kind) {
    case NLSQ_XPCS_SOURCE_MEMORY:
        s->data32 = in->u.memory.data32;
        s->data64 = in->u.memory.data64;
        if (!s->data32 == !s->data64) why = "a memory source needs exactly one of data32, data64";
        break;
    case NLSQ_XPCS_SOURCE_READ:
        s->read = in->u.read.fn;
        s->ctx = in->u.read.ctx;
        s->thread_safe = in->u.read.thread_safe != 0;
        s->float32 = in->u.read.float32 != 0;
        s->symmetric = in->u.read.symmetric != 0;
        if (!s->read) why = "a read source without a read function";
        break;
    case NLSQ_XPCS_SOURCE_FILE:
        s->file = in->u.file.f;
        s->sel = in->u.file.sel;
        s->symmetric = 1;   /* rebuilt from one triangle */
        if (!s->file || !s->sel) why = "a file source without a file or a selection";
        else s->float32 = nlsq_xpcs_is_float32(s->file) ? 1 : 0;
        break;
    default:
        set_err(err, es, "model: unknown source kind %d", in->kind);
        return NLSQ_EINVAL;
    }
    if (!why && (s->n_angles == 0 || s->n == 0 || !s->phi))
        why = "the source has no angles or no frames";
    if (why) {
        set_err(err, es, "model: %s", why);
        return NLSQ_EINVAL;
    }
    for (size_t a = 0; a < s->n_angles; a++)
        if (!isfinite(s->phi[a])) {
            set_err(err, es, "model: angle %zu is not finite", a);
            return NLSQ_EINVAL;
        }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Row mapping                                                                */
/* ------------------------------------------------------------------------ */

static int is_upper(const nlsq_xpcs_model *m) { return m->upper_rows; }

/* Observations an entry (i, j) of the internal rows stands for. */
static size_t obs_of(const nlsq_xpcs_model *m, size_t i, size_t j)
{
    return m->sym && i != j ? 2 : 1;
}

/* Local index (inside one angle) of the first row of matrix row i. */
static size_t row_start(const nlsq_xpcs_model *m, size_t i)
{
    size_t n = m->n;
    int d = m->cfg.include_diagonal != 0;
    if (is_upper(m))
        return d ? i * (2 * n - i + 1) / 2 : i * (2 * n - i - 1) / 2;
    return i * (d ? n : n - 1);
}

/* Local row index -> (i, j). */
static void local_to_ij(const nlsq_xpcs_model *m, size_t l, size_t *pi, size_t *pj)
{
    size_t n = m->n;
    int d = m->cfg.include_diagonal != 0;
    if (!is_upper(m)) {
        size_t len = d ? n : n - 1;
        size_t i = l / len, r = l % len;
        *pi = i;
        *pj = d ? r : (r < i ? r : r + 1);
        return;
    }
    size_t s = d ? 0 : 1;
    double c = (double)(2 * n + 1 - 2 * s);
    double disc = c * c - 8.0 * (double)l;
    if (disc < 0) disc = 0;
    double est = (c - sqrt(disc)) / 2.0;
    size_t i = est > 0 ? (size_t)est : 0;
    if (i >= n) i = n - 1;
    while (i > 0 && row_start(m, i) > l) i--;
    while (i + 1 < n && row_start(m, i + 1) <= l) i++;
    *pi = i;
    *pj = i + s + (l - row_start(m, i));
}

static inline void next_ij(const nlsq_xpcs_model *m, size_t *pi, size_t *pj)
{
    size_t i = *pi, j = *pj + 1, n = m->n;
    int d = m->cfg.include_diagonal != 0;
    if (is_upper(m)) {
        if (j >= n) { i++; j = d ? i : i + 1; }
    } else {
        if (!d && j == i) j++;
        if (j >= n) { i++; j = 0; if (!d && j == i) j++; }
    }
    *pi = i;
    *pj = j;
}

/* Is column j part of the fit's rows of matrix row i? */
static inline int in_fit(const nlsq_xpcs_model *m, size_t i, size_t j)
{
    if (i == j) return m->cfg.include_diagonal != 0;
    return is_upper(m) ? j > i : 1;
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                     */
/* ------------------------------------------------------------------------ */

/* Doubles of one point's tables: C and 3 dC per function. */
static size_t tab_doubles(const nlsq_xpcs_model *m) { return (m->laminar ? 8 : 4) * m->n; }

/* T's tables laid out in mem (tab_doubles(m) doubles). */
static void tab_view(const nlsq_xpcs_model *m, double *mem, xtab *T)
{
    const size_t n = m->n;
    T->mem = mem;
    T->CD = mem;
    T->dCD = mem + n;
    T->CG = m->laminar ? mem + 4 * n : NULL;
    T->dCG = m->laminar ? mem + 5 * n : NULL;
}

static int tab_alloc(const nlsq_xpcs_model *m, xtab *T)
{
    double *mem = malloc(sizeof(double) * tab_doubles(m));
    if (!mem) return NLSQ_ENOMEM;
    tab_view(m, mem, T);
    return 0;
}

/* Doubles of one point's pair factors (model_kernel.h), after the tables in
 * the prepared state: 0 unless m->pairs. */
static size_t pair_doubles(const nlsq_xpcs_model *m)
{
    return m->pairs ? (m->laminar ? 3 : 2) * xk_pairs_len(m->n) : 0;
}

/* The kernel's view of T, and of the pair factors at pmem (NULL: none). */
static const xk_pairs *kernel_view(const nlsq_xpcs_model *m, const xtab *T, double *pmem,
                                   xk_tab *kt, xk_pairs *pf)
{
    const size_t n = m->n, len = xk_pairs_len(n);
    *kt = (xk_tab){T->CD, T->CG, {T->dCD, T->dCD + n, T->dCD + 2 * n},
                   {T->dCG, T->dCG ? T->dCG + n : NULL, T->dCG ? T->dCG + 2 * n : NULL}};
    if (!m->pairs || !pmem) return NULL;
    *pf = (xk_pairs){{pmem, pmem + len, m->laminar ? pmem + 2 * len : NULL}, n};
    return pf;
}

static void tab_compute(const nlsq_xpcs_model *m, const double *x, xtab *T, int derivs)
{
    nlsq__xpcs_tables(&m->geom, x, T->CD, derivs ? T->dCD : NULL, T->CG, derivs ? T->dCG : NULL);
}

/* nlsq_prepare_fn: the tables of x, with derivatives, into the solve's state,
 * then (m->pairs) the pair factors of every entry, shared by all angles
 * (prepare_bytes = tab_doubles(m) + pair_doubles(m) doubles). */
static int model_prepare(void *ctx, const double *x, void *state, char *msg, size_t msg_size)
{
    (void)msg;
    (void)msg_size;
    const nlsq_xpcs_model *m = ctx;
    xtab T;
    tab_view(m, state, &T);
    tab_compute(m, x, &T, 1);
    xk_tab kt;
    xk_pairs pf;
    const xk_seg s = {.A = m->A, .laminar = m->laminar};
    if (kernel_view(m, &T, (double *)state + tab_doubles(m), &kt, &pf))
        xk_pairs_fill(&s, &kt, &pf);
    return 0;
}

/* The tables an eval at x reads: the prepared ones, else computed in the
 * worker's scratch, else (a direct call without env) in *own, which the
 * caller frees.  0 or NLSQ_ENOMEM. */
static int eval_tables(const nlsq_xpcs_model *m, const double *x, const nlsq_eval_env *env,
                       xtab *T, double **own)
{
    *own = NULL;
    if (env && env->at_prepared && env->state) {
        tab_view(m, (double *)env->state, T);   /* read only from here on */
        return 0;
    }
    if (env && env->scratch && env->scratch_bytes >= sizeof(double) * tab_doubles(m)) {
        tab_view(m, env->scratch, T);
    } else {
        if (tab_alloc(m, T) != 0) return NLSQ_ENOMEM;
        *own = T->mem;
    }
    tab_compute(m, x, T, 1);
    return 0;
}

/* A failing eval's line for the result (nlsq_eval_env.msg). */
static void eval_msg(const nlsq_eval_env *env, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void eval_msg(const nlsq_eval_env *env, const char *fmt, ...)
{
    if (!env || !env->msg || env->msg_size == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(env->msg, env->msg_size, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Pointwise model                                                            */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Data access                                                                */
/* ------------------------------------------------------------------------ */

/* Matrix rows [row0, row0 + nrows) of angle a; on failure the reason in msg
 * (msg_size bytes). */
static int source_read(nlsq_xpcs_model *m, size_t a, size_t row0, size_t nrows, double *out,
                       char *msg, size_t msg_size)
{
    int rc;
    if (m->src.file) {
        char err[256] = "";
        pthread_mutex_lock(&m->read_mu);
        rc = nlsq_xpcs_read_rows(m->src.file, m->src.sel, a, row0, nrows, out, err, sizeof err);
        pthread_mutex_unlock(&m->read_mu);
        if (rc != 0)
            set_err(msg, msg_size, "%s", err[0] ? err : nlsq_xpcs_status_string(rc));
        return rc != 0 ? (rc < 0 ? rc : NLSQ_ECALLBACK) : 0;
    }
    if (!m->src.thread_safe) pthread_mutex_lock(&m->read_mu);
    rc = m->src.read(m->src.ctx, a, row0, nrows, out);
    if (!m->src.thread_safe) pthread_mutex_unlock(&m->read_mu);
    if (rc != 0) {
        set_err(msg, msg_size, "reading rows %zu..%zu of angle %zu failed (source status %d)",
                row0, row0 + nrows - 1, a, rc);
        return NLSQ_ECALLBACK;
    }
    return 0;
}

static size_t count_row_excluded(const nlsq_xpcs_model *m, size_t i, const double *row)
{
    size_t c = 0;
    for (size_t j = 0; j < m->n; j++)
        if (in_fit(m, i, j) && !isfinite(row[j])) c += obs_of(m, i, j);
    return c;
}

/* Matrix rows per read block. */
static size_t block_rows(const nlsq_xpcs_model *m)
{
    size_t b = STREAM_BLOCK_BYTES / (sizeof(double) * m->n);
    return b ? b : 1;
}

/* Streamed row blocks (DATA_BLOCKS, stream.c): the upper part of 128 matrix
 * rows of one angle per block, one HDF5 read each, read ahead by the
 * stream's reader thread.  A float32 file's blocks hold floats, as stored
 * (no conversion in HDF5, half the bytes; the kernel widens them exactly as
 * it does a float32 cache), other files' doubles. */

/* Size of one value of a streamed block. */
static size_t block_elem(const nlsq_xpcs_model *m)
{
    return m->src.float32 ? sizeof(float) : sizeof(double);
}

/* Value k of a streamed block. */
static inline double block_value(const nlsq_xpcs_model *m, const void *d, size_t k)
{
    return m->src.float32 ? (double)((const float *)d)[k] : ((const double *)d)[k];
}

/* xs_read_fn: rows [r0, r0 + nr) of angle a; counts the non-finite entries
 * of rows read for the first time. */
static int block_read(void *ctx, size_t a, size_t r0, size_t nr, void *out)
{
    nlsq_xpcs_model *m = ctx;
    char err[256] = "";
    int rc = nlsq__xpcs_read_upper_rows(m->src.file, m->src.sel, a, r0, nr, m->src.float32, out,
                                        err, sizeof err);
    if (rc != 0) {
        /* this may be the reader thread: the eval that meets the failed
         * block takes the message from here (stream_failed) */
        pthread_mutex_lock(&m->err_mu);
        snprintf(m->stream_error, sizeof m->stream_error, "%s",
                 err[0] ? err : nlsq_xpcs_status_string(rc));
        pthread_mutex_unlock(&m->err_mu);
        return rc == NLSQ_ENOMEM ? rc : NLSQ_ECALLBACK;
    }
    const size_t w = m->n - r0;
    for (size_t q = 0; q < nr; q++) {
        size_t i = r0 + q, c = 0;
        if (atomic_exchange(&m->seen[a * m->n + i], 1)) continue;
        for (size_t j = i; j < m->n; j++)
            if (in_fit(m, i, j) && !isfinite(block_value(m, out, q * w + (j - r0))))
                c += obs_of(m, i, j);
        if (c) atomic_fetch_add(&m->n_excl_stream, c);
        atomic_fetch_add(&m->n_seen, 1);
    }
    return 0;
}

/* The block a walk over rows holds (one per eval or fetch call). */
typedef struct held_block {
    const void *d;
    size_t a, i0, rows;
} held_block;

/* Data of entry (i, j >= i) of angle a (a float or a double: block_elem),
 * from the block holding row i (taken when the walk enters it, the previous
 * one given back).  NULL when the read failed (*rc set). */
static const void *block_entry(nlsq_xpcs_model *m, held_block *h, size_t a, size_t i, size_t j,
                               int *rc)
{
    if (!h->d || h->a != a || i < h->i0 || i >= h->i0 + h->rows) {
        if (h->d) nlsq__xs_release(m->blocks, h->a, h->i0);
        h->a = a;
        h->rows = nlsq__xs_block_rows(m->blocks);
        h->d = nlsq__xs_acquire(m->blocks, a, i, &h->i0, rc);
        if (!h->d) return NULL;
    }
    return (const char *)h->d + ((i - h->i0) * (m->n - h->i0) + (j - h->i0)) * block_elem(m);
}

static void block_done(nlsq_xpcs_model *m, held_block *h)
{
    if (h->d) nlsq__xs_release(m->blocks, h->a, h->i0);
    h->d = NULL;
}

/* The reason a streamed block could not be had (status rc) into msg. */
static void stream_failed(nlsq_xpcs_model *m, int rc, char *msg, size_t msg_size)
{
    pthread_mutex_lock(&m->err_mu);
    if (m->stream_error[0]) set_err(msg, msg_size, "%s", m->stream_error);
    else set_err(msg, msg_size, "streamed c2 block unavailable (%s)", nlsq_status_name(rc));
    pthread_mutex_unlock(&m->err_mu);
}

/* Data of rows [l0, l0 + nrows) of angle a (local indices) into out; on
 * failure the reason in msg (msg_size bytes). */
static int fetch(nlsq_xpcs_model *m, size_t a, size_t l0, size_t nrows, double *out, char *msg,
                 size_t msg_size)
{
    size_t i, j, n = m->n;
    size_t g0 = a * m->R + l0;
    switch (m->data_mode) {
    case DATA_CACHE32:
        for (size_t t = 0; t < nrows; t++) out[t] = (double)m->c32[g0 + t];
        return 0;
    case DATA_CACHE64:
        memcpy(out, m->c64 + g0, sizeof(double) * nrows);
        return 0;
    case DATA_MEM32: {
        const float *d = m->src.data32 + a * n * n;
        local_to_ij(m, l0, &i, &j);
        for (size_t t = 0; t < nrows; t++, next_ij(m, &i, &j)) out[t] = (double)d[i * n + j];
        return 0;
    }
    case DATA_MEM64: {
        const double *d = m->src.data64 + a * n * n;
        local_to_ij(m, l0, &i, &j);
        for (size_t t = 0; t < nrows; t++, next_ij(m, &i, &j)) out[t] = d[i * n + j];
        return 0;
    }
    case DATA_BLOCKS: {
        held_block h = {NULL, 0, 0, 0};
        int rc = 0;
        local_to_ij(m, l0, &i, &j);
        for (size_t t = 0; t < nrows; t++, next_ij(m, &i, &j)) {
            const void *y = block_entry(m, &h, a, i, j, &rc);
            if (!y) break;
            out[t] = block_value(m, y, 0);
        }
        block_done(m, &h);
        if (rc) stream_failed(m, rc, msg, msg_size);
        return rc;
    }
    default:
        break;
    }
    /* streaming */
    size_t il, jl;
    local_to_ij(m, l0, &i, &j);
    local_to_ij(m, l0 + nrows - 1, &il, &jl);
    size_t maxb = block_rows(m);
    size_t span = il - i + 1;
    size_t cap = span < maxb ? span : maxb;
    double *buf = malloc(sizeof(double) * cap * n);
    if (!buf) {
        set_err(msg, msg_size, "out of memory reading %zu rows of %zu frames", cap, n);
        return NLSQ_ENOMEM;
    }
    size_t ib = 0, nb = 0;
    for (size_t t = 0; t < nrows; t++, next_ij(m, &i, &j)) {
        if (nb == 0 || i >= ib + nb) {
            ib = i;
            nb = il - i + 1;
            if (nb > cap) nb = cap;
            int rc = source_read(m, a, ib, nb, buf, msg, msg_size);
            if (rc != 0) { free(buf); return rc; }
            for (size_t q = 0; q < nb; q++) {
                size_t mr = a * n + ib + q;
                if (!atomic_exchange(&m->seen[mr], 1)) {
                    size_t c = count_row_excluded(m, ib + q, buf + q * n);
                    if (c) atomic_fetch_add(&m->n_excl_stream, c);
                    atomic_fetch_add(&m->n_seen, 1);
                }
            }
        }
        out[t] = buf[(i - ib) * n + j];
    }
    free(buf);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Problem callbacks                                                          */
/* ------------------------------------------------------------------------ */

static size_t model_pattern(void *ctx, size_t row0, size_t nrows, size_t *cols, size_t *k)
{
    const nlsq_xpcs_model *m = ctx;
    if (nrows == 0 || row0 >= m->n_rows) return 0;
    size_t a = row0 / m->R;
    size_t left = (a + 1) * m->R - row0;
    size_t np = m->np;
    for (size_t q = 0; q < np; q++) cols[q] = q;
    cols[np] = np + 2 * a;
    cols[np + 1] = np + 2 * a + 1;
    *k = np + 2;
    return nrows < left ? nrows : left;
}

/* Per (x, angle) constants of the kernel. */
static void seg_consts(const nlsq_xpcs_model *m, const double *x, size_t a, xk_seg *s)
{
    s->A = m->A;
    s->laminar = m->laminar;
    s->con = x[m->np + 2 * a];
    s->off = x[m->np + 2 * a + 1];
    s->bc = 0.0;
    s->Bdc = 0.0;
    if (m->laminar) nlsq__xpcs_angle(m->B, x[6], m->phi[a], &s->bc, &s->Bdc);
}

/* Observations of a segment of len entries (i, j..) of one matrix row, its
 * data y32 or y64: the entries whose data are finite (the others are
 * excluded), 2 each for merged pairs.  The scan is skipped when the model
 * knows it has no excluded entry: data counted at creation, or streamed data
 * once every matrix row was counted (its count is added before n_seen). */
static size_t segment_obs(const nlsq_xpcs_model *m, size_t i, size_t j, size_t len,
                          const float *y32, const double *y64)
{
    const size_t d = j == i && len > 1;   /* the diagonal leads a longer segment */
    size_t bad0 = 0, bad = 0;
    int known = (m->data_mode != DATA_STREAM && m->data_mode != DATA_BLOCKS) ||
                (atomic_load(&m->n_seen) == m->P * m->n && atomic_load(&m->n_excl_stream) == 0);
    if (!known || m->n_excl_fixed)
        for (size_t t = 0; t < len; t++) {
            size_t b = !isfinite(y32 ? (double)y32[t] : y64[t]);
            if (t < d) bad0 += b;
            else bad += b;
        }
    return (d ? obs_of(m, i, i) * (1 - bad0) : 0) + obs_of(m, i, j + d) * (len - d - bad);
}

/* The data of the segment starting at entry (i, j), local row l of angle a,
 * into *y32 or *y64 (both NULL when a streamed block could not be had, *rc
 * set); rs: where DATA_STREAM's eval fetched them (the segment's r). */
static void segment_data(nlsq_xpcs_model *m, held_block *hb, size_t a, size_t l, size_t i,
                         size_t j, const double *rs, const float **y32, const double **y64,
                         int *rc)
{
    const size_t n = m->n;
    switch (m->data_mode) {
    case DATA_CACHE32: *y32 = m->c32 + a * m->R + l; break;
    case DATA_CACHE64: *y64 = m->c64 + a * m->R + l; break;
    case DATA_MEM32: *y32 = m->src.data32 + a * n * n + i * n + j; break;
    case DATA_MEM64: *y64 = m->src.data64 + a * n * n + i * n + j; break;
    case DATA_BLOCKS: {
        const void *d = block_entry(m, hb, a, i, j, rc);
        if (m->src.float32) *y32 = d;
        else *y64 = d;
        break;
    }
    default: *y64 = rs; break;
    }
}

/* Rows [row0, row0 + nrows).  J (when not NULL) is (np + 2) x nrows
 * column-major in the pattern's column order, so a Jacobian range must lie
 * inside one angle (the pattern callback guarantees it); residual-only ranges
 * may span angles.  The range is cut into segments of one matrix row with
 * contiguous j (the diagonal entry, whose weight differs, first in its own).
 * env->n_obs gets the observations of the rows (segment_obs). */
static int model_eval(void *ctx, const double *x, size_t row0, size_t nrows,
                      double *r, double *J, const nlsq_eval_env *env)
{
    nlsq_xpcs_model *m = ctx;
    if (nrows == 0) return 0;
    if (row0 >= m->n_rows || nrows > m->n_rows - row0) {
        eval_msg(env, "model: rows %zu + %zu outside the %zu rows", row0, nrows, m->n_rows);
        return 1;
    }
    if (J && row0 / m->R != (row0 + nrows - 1) / m->R) {
        eval_msg(env, "model: a Jacobian range spans two angles (row %zu)", row0);
        return 1;
    }
    xtab tab, *T = &tab;
    double *own;
    if (eval_tables(m, x, env, T, &own) != 0) {
        eval_msg(env, "out of memory for the model tables");
        return NLSQ_ENOMEM;
    }
    const size_t n = m->n;
    char *msg = env ? env->msg : NULL;
    const size_t msg_size = env ? env->msg_size : 0;
    xk_tab kt;
    xk_pairs pmem;
    const int prepared = env && env->at_prepared && env->state;
    const xk_pairs *pf = kernel_view(m, T, prepared ? (double *)env->state + tab_doubles(m) : NULL,
                                     &kt, &pmem);
    int rc = 0;
    size_t done = 0, obs = 0;
    size_t *want_obs = env ? env->n_obs : NULL;
    held_block hb = {NULL, 0, 0, 0};
    while (done < nrows && rc == 0) {
        size_t g = row0 + done;
        size_t a = g / m->R, l = g % m->R;
        size_t seg = m->R - l;
        if (seg > nrows - done) seg = nrows - done;
        /* streamed data land in r first; the kernel reads them from there */
        if (m->data_mode == DATA_STREAM) {
            int fr = fetch(m, a, l, seg, r + done, msg, msg_size);
            if (fr != 0) { rc = fr == NLSQ_ENOMEM ? NLSQ_ENOMEM : 1; break; }
        }
        xk_seg sc;
        seg_consts(m, x, a, &sc);
        size_t i, j;
        local_to_ij(m, l, &i, &j);
        for (size_t t = 0; t < seg;) {
            /* the run of contiguous j in matrix row i: left of the diagonal
             * (literal full triangle), or from j >= i on (the diagonal, with
             * its own weight, the kernel's first entry) */
            size_t len = j < i ? i - j : n - j;
            if (len > seg - t) len = seg - t;
            sc.ws = m->ws_off;
            size_t o = done + t;
            const float *y32 = NULL;
            const double *y64 = NULL;
            segment_data(m, &hb, a, l + t, i, j, r + o, &y32, &y64, &rc);
            if (!y32 && !y64) {
                stream_failed(m, rc, msg, msg_size);
                rc = rc == NLSQ_ENOMEM ? NLSQ_ENOMEM : 1;
                break;
            }
            if (want_obs) obs += segment_obs(m, i, j, len, y32, y64);
            xk_segment_pairs(m->avx2, &sc, m->ws_diag, &kt, pf, i, j, len, y32, y64, r + o,
                             J ? J + o : NULL, nrows);
            t += len;
            j += len - 1;          /* the segment's last entry, then the next one */
            next_ij(m, &i, &j);
        }
        done += seg;
    }
    block_done(m, &hb);
    free(own);
    if (want_obs && rc == 0) *want_obs = obs;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Normal-equation callback (nlsq.h nlsq_normal_fn)                           */
/* ------------------------------------------------------------------------ */

/* Does the model form its Jacobian passes' sums itself: the laminar model on
 * the AVX2 kernel, rows of the upper triangle (merged pairs or upper), the
 * caller's data in memory.  Not a file's data: streamed blocks are read in
 * row order, and a cached fit must stay bitwise the streamed one
 * (docs/reliability.md), which the sums in another order would not be. */
static int normal_ok(const nlsq_xpcs_model *m)
{
    return m->avx2 && m->laminar && m->upper_rows && m->n_rows == m->P * m->R &&
           (m->data_mode == DATA_MEM32 || m->data_mode == DATA_MEM64);
}

/* The buffers of one model_normal call: the sums (32-byte aligned), each
 * angle's constants and data pointers. */
typedef struct nbufs {
    void *sums;
    xk_seg *segs;
    const float **y32;
    const double **y64;
} nbufs;

static void nbufs_free(nbufs *b)
{
    free(b->sums);
    free(b->segs);
    free(b->y32);
    free(b->y64);
}

static int nbufs_alloc(size_t P, nbufs *b)
{
    size_t bytes = (xk_nsum_bytes(P) + 31) & ~(size_t)31;
    b->sums = aligned_alloc(32, bytes);
    b->segs = malloc(P * sizeof *b->segs);
    b->y32 = malloc(P * sizeof *b->y32);
    b->y64 = malloc(P * sizeof *b->y64);
    if (b->sums && b->segs && b->y32 && b->y64) return 0;
    nbufs_free(b);
    return NLSQ_ENOMEM;
}

/* nlsq_normal_fn: unit u is local row u of every angle (entry (i, j) of the
 * upper triangle, all P angles: the kernel's pair factors and table
 * differences are formed once for them, xk_normal_segment). */
static int model_normal(void *ctx, const double *x, size_t u0, size_t nu, nlsq_normal_sums *out,
                        const nlsq_eval_env *env)
{
    nlsq_xpcs_model *m = ctx;
    if (u0 >= m->R || nu > m->R - u0) {
        eval_msg(env, "model: units %zu + %zu outside the %zu", u0, nu, m->R);
        return 1;
    }
    xtab tab;
    double *own;
    nbufs b = {NULL, NULL, NULL, NULL};
    if (eval_tables(m, x, env, &tab, &own) != 0 || nbufs_alloc(m->P, &b) != 0) {
        free(own);
        eval_msg(env, "out of memory for the model's normal-equation sums");
        return NLSQ_ENOMEM;
    }
    xk_tab kt;
    xk_pairs pmem;
    kernel_view(m, &tab, NULL, &kt, &pmem);   /* no pair factors kept (m->pairs 0) */
    xk_nsum *A = xk_nsum_init(b.sums, m->P);
    for (size_t a = 0; a < m->P; a++) {
        seg_consts(m, x, a, &b.segs[a]);
        b.segs[a].ws = m->ws_off;
    }
    size_t i, j, obs = 0;
    local_to_ij(m, u0, &i, &j);
    held_block hb = {NULL, 0, 0, 0};
    for (size_t t = 0; t < nu;) {
        size_t len = m->n - j < nu - t ? m->n - j : nu - t;
        for (size_t a = 0; a < m->P; a++) {
            int rc = 0;
            b.y32[a] = NULL;
            b.y64[a] = NULL;
            segment_data(m, &hb, a, u0 + t, i, j, NULL, &b.y32[a], &b.y64[a], &rc);
            obs += segment_obs(m, i, j, len, b.y32[a], b.y64[a]);
        }
        const int f32 = b.y32[0] != NULL;
        xk_normal_segment(A, b.segs, m->ws_diag, &kt, i, j, len, f32 ? b.y32 : NULL,
                          f32 ? NULL : b.y64);
        t += len;
        j += len - 1;
        next_ij(m, &i, &j);
    }
    xk_nsum_finish(A, out->JtJ, out->Jtr, m->n_params, &out->rr, &out->rmax);
    out->n_obs = obs;
    nbufs_free(&b);
    free(own);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                   */
/* ------------------------------------------------------------------------ */

static int mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* Read every matrix row once and store the fit's entries in row order. */
static int fill_cache(nlsq_xpcs_model *m, char *err, size_t err_size)
{
    size_t n = m->n;
    size_t maxb = CACHE_FILL_BYTES / (sizeof(double) * n);
    if (maxb == 0) maxb = 1;
    if (maxb > n) maxb = n;
    double *buf = malloc(sizeof(double) * maxb * n);
    if (!buf) {
        set_err(err, err_size, "out of memory reading c2 rows (%zu frames)", n);
        return NLSQ_ENOMEM;
    }
    size_t excl = 0;
    for (size_t a = 0; a < m->P; a++) {
        for (size_t ib = 0; ib < n; ib += maxb) {
            size_t nb = n - ib < maxb ? n - ib : maxb;
            int rc = source_read(m, a, ib, nb, buf, err, err_size);
            if (rc != 0) {
                free(buf);
                return rc;
            }
            for (size_t q = 0; q < nb; q++) {
                size_t i = ib + q;
                const double *row = buf + q * n;
                size_t g = a * m->R + row_start(m, i);
                for (size_t j = 0; j < n; j++) {
                    if (!in_fit(m, i, j)) continue;
                    double v = row[j];
                    if (!isfinite(v)) excl += obs_of(m, i, j);
                    if (m->c32) m->c32[g++] = (float)v;
                    else m->c64[g++] = v;
                }
            }
        }
    }
    free(buf);
    m->n_excl_fixed = excl;
    return 0;
}

/* Is every angle's matrix symmetric, entry for entry (NaN where NaN)?  A
 * file's full matrix is rebuilt from its upper triangle, so it always is;
 * in-memory data are checked; other read functions are not assumed to be. */
static int source_symmetric(const xsrc *src)
{
    if (!src->data32 && !src->data64) return src->symmetric;   /* a file, or the caller's word */
    const size_t n = src->n;
    for (size_t a = 0; a < src->n_angles; a++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++) {
                size_t u = a * n * n + i * n + j, l = a * n * n + j * n + i;
                double x = src->data32 ? (double)src->data32[u] : src->data64[u];
                double y = src->data32 ? (double)src->data32[l] : src->data64[l];
                if (!(x == y || (isnan(x) && isnan(y)))) return 0;
            }
    return 1;
}

static void count_mem_excluded(nlsq_xpcs_model *m)
{
    size_t n = m->n, excl = 0;
    for (size_t a = 0; a < m->P; a++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                if (!in_fit(m, i, j)) continue;
                size_t o = a * n * n + i * n + j;
                double v = m->src.data32 ? (double)m->src.data32[o] : m->src.data64[o];
                if (!isfinite(v)) excl += obs_of(m, i, j);
            }
    m->n_excl_fixed = excl;
}

/* The streamed blocks of a file source: as many 128-row blocks as the memory
 * budget holds, at least 4 (two workers each holding one while the next
 * ones are read), at most 64. */
static int stream_start(nlsq_xpcs_model *m)
{
    size_t rows = STREAM_BLOCK_ROWS < m->n ? STREAM_BLOCK_ROWS : m->n;
    size_t per = rows * m->n * block_elem(m);
    size_t nbuf = m->cfg.memory_budget / per;
    if (nbuf < 4) nbuf = 4;
    if (nbuf > 64) nbuf = 64;
    return nlsq__xs_create(m->P, m->n, rows, block_elem(m), nbuf, 1, block_read, m, &m->blocks);
}

/* cfg's mode, triangle and physical ranges (nlsq_xpcs.h).  0 or NLSQ_EINVAL. */
static int config_check(const nlsq_xpcs_config *cfg, char *err, size_t err_size)
{
    if (cfg->mode != NLSQ_XPCS_LAMINAR && cfg->mode != NLSQ_XPCS_STATIC) {
        set_err(err, err_size, "model: unknown mode %d", cfg->mode);
        return NLSQ_EINVAL;
    }
    if (cfg->triangle != NLSQ_XPCS_UPPER && cfg->triangle != NLSQ_XPCS_FULL) {
        set_err(err, err_size, "model: unknown triangle %d", cfg->triangle);
        return NLSQ_EINVAL;
    }
    /* the physical ranges of nlsq_xpcs.h (NaN fails every comparison) */
    const struct { const char *name, *unit; double v, lo, hi; int used; } range[4] = {
        {"q", "1/A", cfg->q, NLSQ_XPCS_Q_MIN, NLSQ_XPCS_Q_MAX, 1},
        {"dt", "s", cfg->dt, NLSQ_XPCS_DT_MIN, NLSQ_XPCS_DT_MAX, 1},
        {"the gap", "A", cfg->gap, NLSQ_XPCS_GAP_MIN, NLSQ_XPCS_GAP_MAX,
         cfg->mode == NLSQ_XPCS_LAMINAR},
        {"sigma", "", cfg->sigma, NLSQ_XPCS_SIGMA_MIN, NLSQ_XPCS_SIGMA_MAX, 1}};
    for (int k = 0; k < 4; k++)
        if (range[k].used && !(range[k].v >= range[k].lo && range[k].v <= range[k].hi)) {
            set_err(err, err_size, "model: %s = %g %s is outside [%g, %g]", range[k].name,
                    range[k].v, range[k].unit, range[k].lo, range[k].hi);
            return NLSQ_EINVAL;
        }
    return 0;
}

/* The model's row counts: rows per angle R, problem rows, observations. */
typedef struct row_counts {
    size_t R, n_rows, n_obs;
    int sym;
} row_counts;

static int count_rows(const xsrc *src, const nlsq_xpcs_config *cfg, row_counts *c, char *err,
                      size_t err_size)
{
    size_t n = src->n, P = src->n_angles, nn;
    int d = cfg->include_diagonal != 0;
    if (!mul_ok(n, n, &nn)) {
        set_err(err, err_size, "model: %zu frames is too many", n);
        return NLSQ_EINVAL;
    }
    /* n(n+1)/2 or n(n-1)/2 without overflow */
    size_t R_up = d ? (n % 2 == 0 ? (n / 2) * (n + 1) : n * ((n + 1) / 2))
                    : (n % 2 == 0 ? (n / 2) * (n - 1) : n * ((n - 1) / 2));
    size_t R_full = d ? nn : nn - n;
    c->sym = cfg->triangle == NLSQ_XPCS_FULL && !cfg->literal_full && source_symmetric(src);
    c->R = (cfg->triangle == NLSQ_XPCS_UPPER || c->sym) ? R_up : R_full;
    size_t R_obs = cfg->triangle == NLSQ_XPCS_UPPER ? R_up : R_full;
    if (c->R == 0 || !mul_ok(c->R, P, &c->n_rows) || !mul_ok(R_obs, P, &c->n_obs) ||
        !mul_ok(nn, P, &nn)) {
        set_err(err, err_size, "model: no rows to fit (%zu angles, %zu frames)", P, n);
        return NLSQ_EINVAL;
    }
    return 0;
}

static int create_nomem(const nlsq_xpcs_model *m, char *err, size_t err_size)
{
    set_err(err, err_size, "model: out of memory (%zu rows)", m->n_rows);
    return NLSQ_ENOMEM;
}

/* Where the data come from: in place, a cache filled now, or streamed.
 * 0 or an error (err set). */
static int data_setup(nlsq_xpcs_model *m, char *err, size_t err_size)
{
    if (m->src.data32 || m->src.data64) {
        m->data_mode = m->src.data32 ? DATA_MEM32 : DATA_MEM64;
        count_mem_excluded(m);
        return 0;
    }
    int f32 = m->src.float32;
    size_t bytes;
    if (mul_ok(m->n_rows, f32 ? sizeof(float) : sizeof(double), &bytes) &&
        bytes <= m->cfg.memory_budget) {
        m->data_mode = f32 ? DATA_CACHE32 : DATA_CACHE64;
        if (f32) m->c32 = malloc(bytes);
        else m->c64 = malloc(bytes);
        if (!m->c32 && !m->c64) return create_nomem(m, err, err_size);
        return fill_cache(m, err, err_size);
    }
    m->data_mode = m->src.file && m->upper_rows ? DATA_BLOCKS : DATA_STREAM;
    m->seen = malloc(sizeof(atomic_uchar) * m->P * m->n);
    if (!m->seen) return create_nomem(m, err, err_size);
    for (size_t q = 0; q < m->P * m->n; q++) atomic_init(&m->seen[q], 0);
    if (m->data_mode == DATA_BLOCKS && stream_start(m) != 0) return create_nomem(m, err, err_size);
    return 0;
}

int nlsq_xpcs_model_create(const nlsq_xpcs_source *source, const nlsq_xpcs_config *cfg,
                           nlsq_xpcs_model **out, char *err, size_t err_size)
{
    if (out) *out = NULL;
    if (!source || !cfg || !out) {
        set_err(err, err_size, "nlsq_xpcs_model_create: NULL argument");
        return NLSQ_EINVAL;
    }
    xsrc src;
    row_counts rc_;
    int rc = config_check(cfg, err, err_size);
    if (rc == 0) rc = source_flatten(source, &src, err, err_size);
    if (rc == 0) rc = count_rows(&src, cfg, &rc_, err, err_size);
    if (rc != 0) return rc;
    size_t n = src.n, P = src.n_angles;
    size_t np = cfg->mode == NLSQ_XPCS_STATIC ? 3 : NLSQ_XPCS_N_PHYS;

    nlsq_xpcs_model *m = calloc(1, sizeof *m);
    if (!m) {
        set_err(err, err_size, "model: out of memory");
        return NLSQ_ENOMEM;
    }
    m->src = src;
    m->cfg = *cfg;
    m->P = P;
    m->n = n;
    m->np = np;
    m->n_params = np + 2 * P;
    m->R = rc_.R;
    m->n_rows = rc_.n_rows;
    m->n_obs = rc_.n_obs;
    m->sym = rc_.sym;
    m->upper_rows = cfg->triangle == NLSQ_XPCS_UPPER || m->sym;
    m->ws_diag = 1.0 / cfg->sigma;
    m->ws_off = (m->sym ? sqrt(2.0) : 1.0) / cfg->sigma;
    m->avx2 = xk_cpu_avx2();
    /* the pair factors: with the AVX2 kernel, when they fit in the budget */
    m->pairs = m->avx2 && xk_pairs_len(n) <= cfg->memory_budget / (3 * sizeof(double));
    m->laminar = cfg->mode == NLSQ_XPCS_LAMINAR;
    nlsq__xpcs_geom_init(&m->geom, cfg->q, cfg->gap, cfg->dt, cfg->k0, n, m->laminar);
    m->A = m->geom.A;
    m->B = m->geom.B;
    m->eps = m->geom.eps;
    atomic_init(&m->n_excl_stream, 0);
    atomic_init(&m->n_seen, 0);
    pthread_mutex_init(&m->read_mu, NULL);
    pthread_mutex_init(&m->err_mu, NULL);
    m->phi = malloc(sizeof(double) * P);
    m->lower = malloc(sizeof(double) * m->n_params);
    m->upper = malloc(sizeof(double) * m->n_params);
    rc = m->phi && m->lower && m->upper ? 0 : create_nomem(m, err, err_size);
    if (rc == 0) {
        memcpy(m->phi, src.phi, sizeof(double) * P);
        m->src.phi = m->phi;
        nlsq_xpcs_default_bounds(m, m->lower, m->upper);
        rc = data_setup(m, err, err_size);
    }
    if (rc != 0) {
        nlsq_xpcs_model_free(m);
        return rc;
    }
    /* With the normal-equation callback the Jacobian passes form each entry's
     * pair factors once for all angles themselves: a cache of them would
     * serve only residual-only passes, at its 24 n(n+1)/2 bytes and a pass
     * over the triangle per point (the same values either way). */
    if (normal_ok(m)) m->pairs = 0;
    *out = m;
    return 0;
}

void nlsq_xpcs_model_free(nlsq_xpcs_model *m)
{
    if (!m) return;
    nlsq__xs_free(m->blocks);   /* first: its reader thread reads through m */
    free(m->phi);
    free(m->lower);
    free(m->upper);
    free(m->c32);
    free(m->c64);
    free(m->seen);
    pthread_mutex_destroy(&m->read_mu);
    pthread_mutex_destroy(&m->err_mu);
    free(m);
}

size_t nlsq_xpcs_model_n_params(const nlsq_xpcs_model *m) { return m ? m->n_params : 0; }
size_t nlsq_xpcs_model_n_rows(const nlsq_xpcs_model *m) { return m ? m->n_obs : 0; }

size_t nlsq_xpcs_model_n_excluded(const nlsq_xpcs_model *m)
{
    if (!m) return 0;
    if (m->data_mode == DATA_STREAM || m->data_mode == DATA_BLOCKS)
        return atomic_load(&((nlsq_xpcs_model *)m)->n_excl_stream);
    return m->n_excl_fixed;
}

int nlsq_xpcs_model_problem(nlsq_xpcs_model *m, nlsq_problem *pb)
{
    if (!m || !pb) return NLSQ_EINVAL;
    memset(pb, 0, sizeof *pb);
    pb->n_params = m->n_params;
    pb->n_rows = m->n_rows;
    pb->eval = model_eval;
    pb->prepare = model_prepare;
    pb->prepare_bytes = sizeof(double) * (tab_doubles(m) + pair_doubles(m));
    pb->scratch_bytes = sizeof(double) * tab_doubles(m);   /* tables of unprepared points */
    pb->pattern = model_pattern;
    pb->ctx = m;
    pb->lower = m->lower;
    pb->upper = m->upper;
    pb->jac_col_major = 1;
    if (normal_ok(m)) {
        pb->normal = model_normal;
        pb->normal_units = m->R;
    }
    return 0;
}

/* Clusters for the robust covariance: entry (a, i, j) belongs to frames i
 * and j (one range of n frames shared by every angle), the diagonal to frame
 * i only. */
static int model_cluster_ids(void *ctx, size_t row0, size_t nrows, size_t *ia, size_t *ib)
{
    const nlsq_xpcs_model *m = ctx;
    if (row0 >= m->n_rows || nrows > m->n_rows - row0) return 1;
    size_t i = 0, j = 0, l = row0 % m->R;   /* one division per call, not per row */
    local_to_ij(m, l, &i, &j);
    for (size_t t = 0; t < nrows; t++) {
        ia[t] = i;
        ib[t] = j == i ? NLSQ_NO_CLUSTER : j;
        if (++l == m->R) {
            l = 0;
            local_to_ij(m, 0, &i, &j);
        } else {
            next_ij(m, &i, &j);
        }
    }
    return 0;
}

int nlsq_xpcs_model_clusters(nlsq_xpcs_model *m, nlsq_clusters *cl)
{
    if (!m || !cl) return NLSQ_EINVAL;
    cl->n_clusters = m->n;
    cl->ids = model_cluster_ids;
    cl->ctx = m;
    return 0;
}

void nlsq_xpcs_default_bounds(const nlsq_xpcs_model *m, double *lower, double *upper)
{
    if (!m) return;
    for (size_t q = 0; q < m->np; q++) {
        if (lower) lower[q] = k_lower[q];
        if (upper) upper[q] = k_upper[q];
    }
    for (size_t a = 0; a < m->P; a++) {
        if (lower) { lower[m->np + 2 * a] = 0.0; lower[m->np + 2 * a + 1] = 0.5; }
        if (upper) { upper[m->np + 2 * a] = 1.0; upper[m->np + 2 * a + 1] = 1.5; }
    }
}

int nlsq_xpcs_model_set_bounds(nlsq_xpcs_model *m, const double *lower, const double *upper)
{
    if (!m || !lower || !upper) return NLSQ_EINVAL;
    for (size_t q = 0; q < m->n_params; q++)
        if (isnan(lower[q]) || isnan(upper[q]) || lower[q] > upper[q]) return NLSQ_EINVAL;
    memcpy(m->lower, lower, sizeof(double) * m->n_params);
    memcpy(m->upper, upper, sizeof(double) * m->n_params);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The start point's view (model_view.h; the start itself is start.c's)      */
/* ------------------------------------------------------------------------ */

void nlsq__xpcs_model_view(const nlsq_xpcs_model *m, nlsq__xpcs_view *v)
{
    v->P = m->P;
    v->n = m->n;
    v->np = m->np;
    v->R = m->R;
    v->sym = m->sym;
    v->phi = m->phi;
    v->lower = m->lower;
    v->upper = m->upper;
    v->defaults = k_default_start;
    v->geom = &m->geom;
}

int nlsq__xpcs_model_fetch(nlsq_xpcs_model *m, size_t a, size_t l0, size_t nrows, double *y,
                           size_t *ii, size_t *jj, char *msg, size_t msg_size)
{
    if (a >= m->P || l0 > m->R || nrows > m->R - l0) return NLSQ_EINVAL;
    int rc = fetch(m, a, l0, nrows, y, msg, msg_size);
    if (rc != 0) return rc;
    size_t i, j;
    local_to_ij(m, l0, &i, &j);
    for (size_t t = 0; t < nrows; t++, next_ij(m, &i, &j)) {
        ii[t] = i;
        jj[t] = j;
    }
    return 0;
}

double nlsq_xpcs_model_g2(const nlsq_xpcs_model *m, const double *x,
                          size_t a, size_t i, size_t j)
{
    if (!m || !x || a >= m->P || i >= m->n || j >= m->n) return NAN;
    xtab T;
    memset(&T, 0, sizeof T);
    if (tab_alloc(m, &T) != 0) return NAN;
    tab_compute(m, x, &T, 0);
    double bc = 0.0;
    if (m->laminar) nlsq__xpcs_angle(m->B, x[6], m->phi[a], &bc, NULL);
    double g2 = nlsq__xpcs_g2_entry(&m->geom, T.CD, T.CG, bc, x[m->np + 2 * a],
                                    x[m->np + 2 * a + 1], i, j);
    free(T.mem);
    return g2;
}
