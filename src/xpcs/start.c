/*
 * start.c - the one XPCS start point (nlsq_xpcs_start and
 * nlsq_xpcs_initial_guess in nlsq_xpcs.h), serial or over processes.
 *
 * The start is computed from sums over a spread-out sample of every angle's
 * rows (blocks of SAMPLE_BLOCK problem rows, every stride-th, at most about
 * SAMPLE_BLOCKS blocks per angle), so that processes that each hold a range
 * of rows compute it together: each process sums over the sample rows of its
 * own range, and the sums are added by the distributed reduce (the
 * nlsq_distributed hook the solvers use), so every process gets the same
 * start.  Two stages:
 *
 *   1. the rates (nlsq_xpcs_start only): per angle and log-lag bin, the sums
 *      of lag, c2 and count (the diagonal left out); then rate_start.c's grid
 *      search for D0 and gamma_dot_0 on the bin means (the physical values the
 *      caller gave are kept);
 *   2. contrast and offset: per angle the sums of u, y, u^2, u y and the
 *      count, u = g1^2 at the physical start (physics.h), y = c2 minus the
 *      angle's mean from stage 1 (a shift for accuracy, the same on every
 *      process); then the linear least squares y ~ offset + contrast u.
 *
 * Every reduce buffer starts with two status slots (out of memory, a read
 * failed), so a failure on one process is every process's failure; every
 * process makes the same reduce calls.  Without a reduce (dist NULL) the
 * process has all rows.
 */
#include "nlsq_xpcs.h"
#include "linfit.h"
#include "model_view.h"
#include "physics.h"
#include "rate_start.h"
#include "xpcs_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_BLOCK  4096
#define SAMPLE_BLOCKS 16
#define START_CONTRAST 0.3   /* when the contrast cannot be identified */
#define START_OFFSET   1.0   /* an angle without finite data */

enum { ST_NOMEM, ST_READ, ST_HDR };
enum { LS_S, LS_U, LS_Y, LS_UU, LS_UY, LS_N };

typedef struct start_ctx {
    nlsq_xpcs_model *m;
    nlsq__xpcs_view v;
    const nlsq_distributed *dist;
    size_t rb, re;              /* this process's problem rows */
    size_t chunk, period;       /* the sample: blocks of chunk rows every period rows */
    double *y;                  /* chunk values */
    size_t *ii, *jj;            /* chunk entries */
    char *err;                  /* the caller's line on a failure (err_size bytes) */
    size_t err_size;
} start_ctx;

typedef void (*visit_fn)(void *ctx, size_t a, size_t i, size_t j, double y);

/* The finite sample entries of angle a among this process's rows. */
static int sample_walk(start_ctx *sc, size_t a, visit_fn visit, void *ctx)
{
    const size_t R = sc->v.R, g0 = a * R;
    for (size_t l0 = 0; l0 < R; l0 += sc->period) {
        size_t lo = g0 + l0, hi = g0 + (R - l0 < sc->chunk ? R : l0 + sc->chunk);
        if (lo < sc->rb) lo = sc->rb;
        if (hi > sc->re) hi = sc->re;
        if (hi <= lo) continue;
        size_t lb = lo - g0, le = hi - g0;
        int rc = nlsq__xpcs_model_fetch(sc->m, a, lb, le - lb, sc->y, sc->ii, sc->jj, sc->err,
                                        sc->err_size);
        if (rc != 0) return rc == NLSQ_ENOMEM ? NLSQ_ENOMEM : NLSQ_ECALLBACK;
        for (size_t t = 0; t < le - lb; t++)
            if (isfinite(sc->y[t])) visit(ctx, a, sc->ii[t], sc->jj[t], sc->y[t]);
    }
    return 0;
}

/* buf[0..n) summed over the processes, local status in its header; the
 * status every process agrees on, with a line on why in sc->err (the read
 * failure's own line where it happened, which process failed elsewhere). */
static int reduce(const start_ctx *sc, double *buf, size_t n, int local)
{
    buf[ST_NOMEM] = local == NLSQ_ENOMEM ? 1.0 : 0.0;
    buf[ST_READ] = local != 0 && local != NLSQ_ENOMEM ? 1.0 : 0.0;
    if (sc->dist && sc->dist->reduce && sc->dist->reduce(sc->dist->ctx, buf, n) != 0) {
        xpcs__err(sc->err, sc->err_size, "start point: the distributed reduce failed");
        return NLSQ_EDISTRIBUTED;
    }
    if (buf[ST_NOMEM] > 0) {
        xpcs__err(sc->err, sc->err_size, "start point: out of memory%s",
                  local == NLSQ_ENOMEM ? "" : " on another process");
        return NLSQ_ENOMEM;
    }
    if (buf[ST_READ] > 0 && local == 0)
        xpcs__err(sc->err, sc->err_size, "start point: a data read failed on another process");
    return buf[ST_READ] > 0 ? NLSQ_ECALLBACK : 0;
}

/* ---- stage 1: lag bins ---------------------------------------------------- */

typedef struct bins_ctx {
    size_t n;
    double *tau, *y, *w;   /* P * RS_BINS sums */
} bins_ctx;

static void bins_visit(void *ctx, size_t a, size_t i, size_t j, double y)
{
    bins_ctx *b = ctx;
    if (i == j) return;
    size_t tau = j > i ? j - i : i - j, q = a * RS_BINS + nlsq__xpcs_rs_bin_of(tau, b->n);
    b->tau[q] += (double)tau;
    b->y[q] += y;
    b->w[q] += 1.0;
}

/* The lag-bin sums (buf: ST_HDR + 3 P RS_BINS), reduced; then *mean_y (P:
 * each angle's mean c2 off the diagonal, 0 without data) and, when search,
 * D0 and gamma_dot_0 into p (given entries of phys kept). */
static int stage_rates(start_ctx *sc, double *buf, const double *phys, int search, double *p,
                       double *mean_y)
{
    const size_t P = sc->v.P, nb = P * RS_BINS;
    bins_ctx b = {sc->v.n, buf + ST_HDR, buf + ST_HDR + nb, buf + ST_HDR + 2 * nb};
    int local = 0;
    for (size_t a = 0; a < P && local == 0; a++) local = sample_walk(sc, a, bins_visit, &b);
    int rc = reduce(sc, buf, ST_HDR + 3 * nb, local);
    if (rc != 0) return rc;
    for (size_t a = 0; a < P; a++) {
        double sy = 0, sw = 0;
        for (size_t k = 0; k < RS_BINS; k++) {
            size_t q = a * RS_BINS + k;
            sy += b.y[q];
            sw += b.w[q];
            if (b.w[q] > 0) { b.tau[q] /= b.w[q]; b.y[q] /= b.w[q]; }
        }
        mean_y[a] = sw > 0 ? sy / sw : 0.0;
    }
    if (!search) return 0;
    rs_bins rb = {P, sc->v.phi, sc->v.geom->A, sc->v.geom->B, b.tau, b.y, b.w};
    double lo[NLSQ_XPCS_N_PHYS] = {0}, hi[NLSQ_XPCS_N_PHYS] = {0}, given[NLSQ_XPCS_N_PHYS];
    for (size_t q = 0; q < sc->v.np; q++) {
        lo[q] = sc->v.lower[q];
        hi[q] = sc->v.upper[q];
    }
    memcpy(given, p, sizeof given);
    nlsq__xpcs_rs_search(&rb, lo, hi, p);
    for (size_t q = 0; q < sc->v.np; q++)   /* what the caller gave stays */
        if (phys && !isnan(phys[q])) p[q] = given[q];
    return 0;
}

/* ---- stage 2: contrast and offset ---------------------------------------- */

typedef struct ls_ctx {
    const nlsq__xpcs_geom *g;
    const double *CD, *CG, *bc, *shift;   /* tables at the physical start; per angle */
    double *sums;                          /* P * LS_N */
} ls_ctx;

static void ls_visit(void *ctx, size_t a, size_t i, size_t j, double y)
{
    ls_ctx *c = ctx;
    nlsq__xpcs_g1 e;
    nlsq__xpcs_g1_entry(c->g->A, c->bc[a], c->g->laminar, c->CD[i] - c->CD[j],
                        c->g->laminar ? c->CG[i] - c->CG[j] : 0.0, 0, &e);
    double u = e.g1 * e.g1, d = y - c->shift[a], *s = c->sums + a * LS_N;
    s[LS_S] += 1;
    s[LS_U] += u;
    s[LS_Y] += d;
    s[LS_UU] += u * u;
    s[LS_UY] += u * d;
}

/* Contrast and offset of angle a from its sums (y shifted by sh), clamped
 * (linfit.h). */
static void ls_solve(const start_ctx *sc, size_t a, const double *s, double sh, double *x)
{
    size_t ic = sc->v.np + 2 * a, io = ic + 1;
    double con = START_CONTRAST, off = START_OFFSET;
    if (s[LS_S] >= 1) {
        xpcs__lsum ls = {s[LS_S], s[LS_U], s[LS_Y], s[LS_UU], s[LS_UY], 0.0};
        xpcs__linfit(&ls, sh, sc->v.lower + ic, sc->v.upper + ic, START_CONTRAST, &con, &off);
    }
    x[ic] = xpcs__clamp(con, sc->v.lower[ic], sc->v.upper[ic]);
    x[io] = xpcs__clamp(off, sc->v.lower[io], sc->v.upper[io]);
}

/* The sums at the physical start p (buf: ST_HDR + LS_N P; tab: 2 n + P),
 * reduced, then contrast and offset into x. */
static int stage_linear(start_ctx *sc, double *buf, double *tab, const double *p,
                        const double *mean_y, double *x)
{
    const size_t P = sc->v.P, n = sc->v.n;
    const nlsq__xpcs_geom *g = sc->v.geom;
    ls_ctx c = {g, tab, tab + n, tab + 2 * n, mean_y, buf + ST_HDR};
    nlsq__xpcs_tables(g, p, tab, NULL, tab + n, NULL);
    for (size_t a = 0; a < P; a++) {
        tab[2 * n + a] = 0.0;
        if (g->laminar) nlsq__xpcs_angle(g->B, p[6], sc->v.phi[a], &tab[2 * n + a], NULL);
    }
    int local = 0;
    for (size_t a = 0; a < P && local == 0; a++) local = sample_walk(sc, a, ls_visit, &c);
    int rc = reduce(sc, buf, ST_HDR + LS_N * P, local);
    if (rc != 0) return rc;
    for (size_t a = 0; a < P; a++) ls_solve(sc, a, c.sums + a * LS_N, mean_y[a], x);
    return 0;
}

/* ---- the start ------------------------------------------------------------ */

/* The physical values: phys's, NAN meaning the default, clamped into the
 * bounds; NLSQ_EINVAL for an infinite one. */
static int physical_start(const nlsq__xpcs_view *v, const double *phys, double *p)
{
    for (size_t q = 0; q < NLSQ_XPCS_N_PHYS; q++) p[q] = v->defaults[q];
    for (size_t q = 0; q < v->np; q++) {
        double val = (phys && !isnan(phys[q])) ? phys[q] : v->defaults[q];
        if (!isfinite(val)) return NLSQ_EINVAL;
        p[q] = xpcs__clamp(val, v->lower[q], v->upper[q]);
    }
    return 0;
}

static int start(nlsq_xpcs_model *m, const double *phys, int search,
                 const nlsq_distributed *dist, double *x, char *err, size_t err_size)
{
    xpcs__err(err, err_size, "%s", "");
    if (!m || !x) {
        xpcs__err(err, err_size, "start point: no model or no x");
        return NLSQ_EINVAL;
    }
    start_ctx sc;
    memset(&sc, 0, sizeof sc);
    sc.m = m;
    sc.err = err;
    sc.err_size = err_size;
    nlsq__xpcs_model_view(m, &sc.v);
    sc.dist = dist && dist->reduce ? dist : NULL;
    sc.rb = sc.dist ? dist->row_begin : 0;
    sc.re = sc.dist ? dist->row_end : sc.v.P * sc.v.R;
    double p[NLSQ_XPCS_N_PHYS];
    if (sc.rb > sc.re || physical_start(&sc.v, phys, p) != 0) {
        xpcs__err(err, err_size, "start point: %s", sc.rb > sc.re ? "reversed row range"
                                                                  : "an infinite given value");
        return NLSQ_EINVAL;
    }
    sc.chunk = sc.v.R < SAMPLE_BLOCK ? sc.v.R : SAMPLE_BLOCK;
    size_t n_blocks = (sc.v.R + sc.chunk - 1) / sc.chunk;
    sc.period = sc.chunk * ((n_blocks + SAMPLE_BLOCKS - 1) / SAMPLE_BLOCKS);
    const size_t P = sc.v.P, n = sc.v.n;
    size_t nbuf = ST_HDR + (3 * RS_BINS > LS_N ? 3 * RS_BINS : LS_N) * P;
    double *buf = calloc(nbuf + P + 2 * n + P + sc.chunk, sizeof(double));
    size_t *ij = malloc(sizeof(size_t) * 2 * sc.chunk);
    double hdr[ST_HDR] = {0, 0};
    int rc = reduce(&sc, hdr, ST_HDR, buf && ij ? 0 : NLSQ_ENOMEM);   /* everyone has buffers */
    if (rc == 0) {
        double *mean_y = buf + nbuf, *tab = mean_y + P;
        sc.y = tab + 2 * n + P;
        sc.ii = ij;
        sc.jj = ij + sc.chunk;
        rc = stage_rates(&sc, buf, phys, search, p, mean_y);
        if (rc == 0) {
            memset(buf, 0, sizeof(double) * nbuf);
            memcpy(x, p, sizeof(double) * sc.v.np);
            rc = stage_linear(&sc, buf, tab, p, mean_y, x);
        }
    }
    free(buf);
    free(ij);
    return rc;
}

int nlsq_xpcs_start(nlsq_xpcs_model *m, const double *phys, const nlsq_distributed *dist,
                    double *x, char *err, size_t err_size)
{
    return start(m, phys, 1, dist, x, err, err_size);
}

int nlsq_xpcs_initial_guess(nlsq_xpcs_model *m, const double *phys, double *x, char *err,
                            size_t err_size)
{
    return start(m, phys, 0, NULL, x, err, err_size);
}
