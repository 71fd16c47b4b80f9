/*
 * nlsq_mpi_xpcs.c - the XPCS start point over MPI ranks (nlsq_mpi.h, part
 * "XPCS").
 *
 * nlsq_xpcs_initial_guess reads a sample of every angle's rows (blocks of
 * 4096 rows, every stride-th, at most ~64k rows per angle); under MPI each
 * rank must read only its own rows.  This file computes the same start point
 * from the model's public interface:
 *   - the physical part does not depend on the data (the defaults or phys[],
 *     clamped into the bounds): it is taken from nlsq_xpcs_initial_guess on a
 *     tiny in-memory model (1 angle, 2 frames) with the same config and the
 *     same physical bounds, so the rule stays the library's;
 *   - contrast/offset of angle a: the linear least squares y ~ off + con u
 *     with u = g1^2 over the finite entries of the same sample of rows.  A
 *     row's residual is w (y - off - con u) / sigma, w = 1 or sqrt(2) (a
 *     merged symmetric pair), so three residual-only evaluations at
 *     (con, off) = (0, 0), (1, 0), (0, 1) give r0 = w y / s, r1 = w (y - u) / s,
 *     r2 = w (y - 1) / s, hence w / s = r0 - r2, y = r0 / (r0 - r2) and
 *     u = (r0 - r1) / (r0 - r2).  An excluded (non-finite) entry gives
 *     r0 = r1 = r2 = 0, which no finite entry does.  Each rank sums S, Su, Sy,
 *     Suu, Suy per angle over its share of the sample, y shifted by its own
 *     first finite value; the ranks' sums are exchanged (nlsq_mpi_reduce on a
 *     buffer where each rank fills its own slot: an exact all-gather) and
 *     combined in rank order with the shift of the first rank that has data
 *     for the angle, which is the one-process shift.  The formulas are those
 *     of nlsq_xpcs_initial_guess (src/xpcs/model.c), and so is the sample:
 *     keep the two in step;
 *   - the excluded count (in observations, as the model counts them): the
 *     problem's n_obs minus the observations w^2 of the rows with finite data,
 *     summed over all ranks (r0 and r2 on every row of this rank).
 */
#define _POSIX_C_SOURCE 200809L
#include "nlsq_mpi.h"
#include "nlsq_xpcs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GUESS_CHUNK 4096
enum { F_ENOMEM, F_ECALLBACK, F_EINVAL, F_INCL, F_HDR };
enum { G_S, G_U, G_Y, G_UU, G_UY, G_SH, G_N };

static double clampd(double v, double lo, double hi)
{
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return v;
}

/* The physical start of nlsq_xpcs_initial_guess (data-independent). */
static int physical_start(const nlsq_problem *pb, const nlsq_xpcs_config *cfg, size_t np,
                          const double *phys, double *x)
{
    static const double phi0[1] = {0.0};
    static const double data[4] = {1.0, 1.0, 1.0, 1.0};
    nlsq_xpcs_source src;
    memset(&src, 0, sizeof src);
    src.n_angles = 1;
    src.n = 2;
    src.phi = phi0;
    src.data64 = data;
    nlsq_xpcs_config tc = *cfg;
    nlsq_xpcs_model *t = NULL;
    int rc = nlsq_xpcs_model_create(&src, &tc, &t, NULL, 0);
    if (rc != 0) return rc;
    double lo[NLSQ_XPCS_N_PHYS + 2], hi[NLSQ_XPCS_N_PHYS + 2], xt[NLSQ_XPCS_N_PHYS + 2];
    nlsq_xpcs_default_bounds(t, lo, hi);
    for (size_t q = 0; q < np; q++) {
        if (pb->lower) lo[q] = pb->lower[q];
        if (pb->upper) hi[q] = pb->upper[q];
    }
    rc = nlsq_xpcs_model_set_bounds(t, lo, hi);
    if (rc == 0) rc = nlsq_xpcs_initial_guess(t, phys, xt);
    if (rc == 0) memcpy(x, xt, sizeof(double) * np);
    nlsq_xpcs_model_free(t);
    return rc;
}

/* The library's sample of an angle's R rows: blocks of B rows, every
 * stride-th block (nlsq_xpcs_initial_guess). */
static void sample_rule(size_t R, size_t *B, size_t *period)
{
    size_t b = R < 4096 ? R : 4096;
    size_t n_blocks = (R + b - 1) / b, stride = (n_blocks + 15) / 16;
    *B = b;
    *period = b * stride;
}

int nlsq_mpi_xpcs_initial_guess(nlsq_mpi_ctx *ctx, struct nlsq_xpcs_model *m,
                                const struct nlsq_xpcs_config *cfg, const double *phys,
                                double *x, size_t *n_excluded)
{
    if (!ctx || !m || !cfg || !x) return NLSQ_EINVAL;
    nlsq_problem pb;
    if (nlsq_xpcs_model_problem(m, &pb) != 0) return NLSQ_EINVAL;
    const size_t p = pb.n_params, np = cfg->mode == NLSQ_XPCS_STATIC ? 3 : NLSQ_XPCS_N_PHYS;
    const size_t P = (p - np) / 2, R = P ? pb.n_rows / P : 0;
    const int size = nlsq_mpi_size(ctx), rank = nlsq_mpi_rank(ctx);
    size_t rb, re;
    nlsq_mpi_rows(ctx, &rb, &re);
    size_t B = 1, period = 1;
    sample_rule(R, &B, &period);

    /* Buffers; the status of everything local travels in the reduce, so a
     * failure on one rank is every rank's failure. */
    size_t nbuf = F_HDR + (size_t)size * P * G_N;
    double *buf = calloc(nbuf, sizeof(double));
    double *r0 = malloc(sizeof(double) * GUESS_CHUNK), *r1 = malloc(sizeof(double) * GUESS_CHUNK);
    double *r2 = malloc(sizeof(double) * GUESS_CHUNK);
    double *xe = malloc(sizeof(double) * p);
    size_t *cols = malloc(sizeof(size_t) * p);
    int local = 0;
    if (!buf || !r0 || !r1 || !r2 || !xe || !cols) local = NLSQ_ENOMEM;
    else if (P == 0 || np + 2 * P != p || R * P != pb.n_rows || nlsq_mpi_size(ctx) < 1)
        local = NLSQ_EINVAL;
    else {
        size_t cb, ce;
        nlsq_mpi_rows(ctx, &cb, &ce);
        (void)cb;
        if (ce > pb.n_rows) local = NLSQ_EINVAL;   /* ctx attached to another problem */
    }
    if (!local) {
        int rc = physical_start(&pb, cfg, np, phys, x);
        if (rc != 0) local = rc == NLSQ_ENOMEM ? NLSQ_ENOMEM : NLSQ_EINVAL;
    }
    double *mine = local ? NULL : buf + F_HDR + (size_t)rank * P * G_N;
    double included = 0;   /* observations with finite data */
    if (!local) {
        memcpy(xe, x, sizeof(double) * np);
        for (size_t q = np; q < p; q++) xe[q] = 0.0;
        for (size_t row = rb; row < re && !local;) {
            size_t want = re - row < GUESS_CHUNK ? re - row : GUESS_CHUNK, k = 0;
            size_t n = pb.pattern(pb.ctx, row, want, cols, &k);
            if (n == 0 || n > want || k != np + 2) { local = NLSQ_ECALLBACK; break; }
            const size_t a = (cols[np] - np) / 2, ic = np + 2 * a, io = ic + 1;
            if (pb.eval(pb.ctx, xe, row, n, r0, NULL, NULL) != 0) { local = NLSQ_ECALLBACK; break; }
            xe[io] = 1.0;
            int e2 = pb.eval(pb.ctx, xe, row, n, r2, NULL, NULL);
            xe[io] = 0.0;
            if (e2 != 0) { local = NLSQ_ECALLBACK; break; }
            for (size_t t = 0; t < n; t++)
                if (r0[t] != 0.0 || r2[t] != 0.0) {
                    double w = (r0[t] - r2[t]) * cfg->sigma;
                    included += (double)llround(w * w);
                }
            /* this chunk's rows of the sample, in contiguous runs */
            const size_t l0 = row - a * R;
            double *g = mine + a * G_N;
            for (size_t t = 0; t < n && !local;) {
                size_t l = l0 + t, in_blk = l % period;
                if (in_blk >= B) { t += period - in_blk < n - t ? period - in_blk : n - t; continue; }
                size_t run = B - in_blk < n - t ? B - in_blk : n - t;
                xe[ic] = 1.0;
                int e1 = pb.eval(pb.ctx, xe, row + t, run, r1 + t, NULL, NULL);
                xe[ic] = 0.0;
                if (e1 != 0) { local = NLSQ_ECALLBACK; break; }
                for (size_t q = t; q < t + run; q++) {
                    if (r0[q] == 0.0 && r2[q] == 0.0) continue;   /* excluded */
                    double ws = r0[q] - r2[q];
                    double y = r0[q] / ws, u = (r0[q] - r1[q]) / ws;
                    if (g[G_S] == 0.0) g[G_SH] = y;
                    y -= g[G_SH];
                    g[G_S] += 1;
                    g[G_U] += u;
                    g[G_Y] += y;
                    g[G_UU] += u * u;
                    g[G_UY] += u * y;
                }
                t += run;
            }
            row += n;
        }
    }
    /* First agree on the status (a small buffer every rank has), then
     * exchange the sums. */
    double hdr[F_HDR] = {0, 0, 0, 0};
    if (local == NLSQ_ENOMEM) hdr[F_ENOMEM] = 1;
    else if (local == NLSQ_ECALLBACK) hdr[F_ECALLBACK] = 1;
    else if (local) hdr[F_EINVAL] = 1;
    hdr[F_INCL] = included;
    int rc = nlsq_mpi_reduce(ctx, hdr, F_HDR);
    if (rc == 0) {
        if (hdr[F_ENOMEM] > 0) rc = NLSQ_ENOMEM;
        else if (hdr[F_ECALLBACK] > 0) rc = NLSQ_ECALLBACK;
        else if (hdr[F_EINVAL] > 0) rc = NLSQ_EINVAL;
    }
    if (rc == 0) rc = nlsq_mpi_reduce(ctx, buf + F_HDR, nbuf - F_HDR);
    if (rc == 0) {
        for (size_t a = 0; a < P; a++) {
            double S = 0, Sx = 0, Sy = 0, Sxx = 0, Sxy = 0, sh = 0;
            int have = 0;
            for (int r = 0; r < size; r++) {
                const double *g = buf + F_HDR + ((size_t)r * P + a) * G_N;
                if (g[G_S] == 0.0) continue;
                if (!have) { sh = g[G_SH]; have = 1; }
                double d = g[G_SH] - sh;       /* re-shift this rank's y sums */
                S += g[G_S];
                Sx += g[G_U];
                Sy += g[G_Y] + g[G_S] * d;
                Sxx += g[G_UU];
                Sxy += g[G_UY] + g[G_U] * d;
            }
            size_t ic = np + 2 * a, io = ic + 1;
            double lo_c = pb.lower ? pb.lower[ic] : -INFINITY, hi_c = pb.upper ? pb.upper[ic] : INFINITY;
            double lo_o = pb.lower ? pb.lower[io] : -INFINITY, hi_o = pb.upper ? pb.upper[io] : INFINITY;
            double con, off;
            if (S < 1) {
                con = 0.3;
                off = 1.0;
            } else {
                double mx = Sx / S, my = Sy / S;
                double vxx = Sxx / S - mx * mx, vxy = Sxy / S - mx * my;
                if (vxx > 1e-14 * (Sxx / S) && vxx > 0) con = vxy / vxx;
                else con = 0.3;   /* g1 constant over the angle: contrast not identifiable */
                con = clampd(con, lo_c, hi_c);
                off = my - con * mx + sh;
            }
            x[ic] = clampd(con, lo_c, hi_c);
            x[io] = clampd(off, lo_o, hi_o);
        }
        double n_obs = (double)(pb.n_obs ? pb.n_obs : pb.n_rows);
        if (n_excluded) *n_excluded = (size_t)(n_obs - hdr[F_INCL]);
    }
    free(buf);
    free(r0);
    free(r1);
    free(r2);
    free(xe);
    free(cols);
    return rc;
}
