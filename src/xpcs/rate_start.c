/*
 * rate_start.c - D0 and gamma_dot_0 from lag-averaged data, for a start
 * point the LM needs few iterations from.
 *
 * With the other physical parameters at the start's values (alpha = beta =
 * 0, offsets 0 by default) the model depends on the lag tau = |i - j| only:
 *     I_D = D0 tau,  I_G = gamma_dot_0 tau,  Phi_a = B cos(phi0 - phi_a) I_G,
 *     g1 = exp(-A I_D) sinc(Phi_a)^2,  c2 = offset_a + contrast_a g1^2,
 * so the data averaged over entries of equal lag (binned in log tau) carry
 * all the information: per candidate (D0, gamma_dot_0) the per-angle
 * contrast and offset follow by weighted linear least squares and the
 * misfit is a sum over P x RS_BINS points.  A log grid (24 x 24) inside the
 * bounds, then three local 5 x 5 grids of shrinking step, pick the pair;
 * from there the full LM fit needs a third of the passes the spec's fixed
 * start needs on the 23M benchmark.  A rate too small to show over the
 * longest lag (shear phase B gamma_dot_0 tau_max < 0.5, decay A D0 tau_max
 * < 0.05) is not seen by lag averages: the given value is kept.  (General D(t), G(t) would need more
 * than lag averages: the start only has to be in the right basin.)
 */
#include "rate_start.h"
#include "physics.h"

#include <math.h>

#define RS_SEEN 0.5   /* shear phase B gamma_dot_0 tau_max below which shear is not seen */

size_t nlsq__xpcs_rs_bin_of(size_t tau, size_t n)
{
    if (n < 3) return 0;
    size_t b = (size_t)(log((double)tau) / log((double)(n - 1)) * (RS_BINS - 1) + 0.5);
    return b < RS_BINS ? b : RS_BINS - 1;
}

/* The binned misfit at phys (per-angle linear contrast/offset). */
static double misfit(const rs_bins *b, const double *phys)
{
    double total = 0.0;
    for (size_t a = 0; a < b->P; a++) {
        double c;
        nlsq__xpcs_angle(b->B, phys[6], b->phi[a], &c, NULL);
        double S = 0, Sx = 0, Sy = 0, Sxx = 0, Sxy = 0, Syy = 0;
        for (size_t k = 0; k < RS_BINS; k++) {
            size_t q = a * RS_BINS + k;
            double w = b->w[q];
            if (!(w > 0)) continue;
            double t = b->tau[q], s = nlsq__xpcs_sinc(c * phys[3] * t, NULL);
            double g1 = exp(-b->A * phys[0] * t) * s * s, u = g1 * g1, y = b->y[q];
            S += w; Sx += w * u; Sy += w * y; Sxx += w * u * u; Sxy += w * u * y; Syy += w * y * y;
        }
        if (!(S > 0)) continue;
        double vxx = Sxx - Sx * Sx / S, vxy = Sxy - Sx * Sy / S, vyy = Syy - Sy * Sy / S;
        total += vxx > 1e-300 ? vyy - vxy * vxy / vxx : vyy;
    }
    return total;
}

/* Best of the (nd x ng) log grid centred at (d, g) with log steps (sd, sg),
 * clipped to the bounds; updates phys when better than *best. */
static void grid(const rs_bins *b, const double *lo, const double *hi, int laminar, double d,
                 double g, double sd, double sg, int half, double *phys, double *best)
{
    double p[7];
    for (int k = 0; k < 7; k++) p[k] = phys[k];
    for (int i = -half; i <= half; i++) {
        p[0] = d * exp(sd * i);
        if (p[0] < lo[0] || p[0] > hi[0]) continue;
        for (int j = laminar ? -half : 0; j <= (laminar ? half : 0); j++) {
            p[3] = g * exp(sg * j);
            if (laminar && (p[3] < lo[3] || p[3] > hi[3])) continue;
            double f = misfit(b, p);
            if (f < *best) {
                *best = f;
                phys[0] = p[0];
                phys[3] = p[3];
            }
        }
    }
}

void nlsq__xpcs_rs_search(const rs_bins *b, const double *lo, const double *hi, double *phys)
{
    const int laminar = b->B != 0.0;
    const double given_d = phys[0], given_g = phys[3];
    double best = misfit(b, phys);
    if (!(lo[0] > 0) || !(hi[0] > lo[0]) || (laminar && (!(lo[3] > 0) || !(hi[3] > lo[3])))) return;
    double sd = log(hi[0] / lo[0]) / 23.0, sg = laminar ? log(hi[3] / lo[3]) / 23.0 : 0.0;
    double cd = sqrt(lo[0] * hi[0]), cg = laminar ? sqrt(lo[3] * hi[3]) : phys[3];
    /* the coarse grid: 24 x 24 points spanning the bounds (centred, half-steps) */
    double d0 = cd * exp(-11.5 * sd), g0 = laminar ? cg * exp(-11.5 * sg) : cg;
    double p[7];
    for (int k = 0; k < 7; k++) p[k] = phys[k];
    for (int i = 0; i < 24; i++)
        for (int j = 0; j < (laminar ? 24 : 1); j++) {
            p[0] = d0 * exp(sd * i);
            p[3] = laminar ? g0 * exp(sg * j) : phys[3];
            double f = misfit(b, p);
            if (f < best) { best = f; phys[0] = p[0]; phys[3] = p[3]; }
        }
    for (int round = 0; round < 3; round++) {
        sd /= 2.5;
        sg /= 2.5;
        grid(b, lo, hi, laminar, phys[0], phys[3], sd, sg, 2, phys, &best);
    }
    /* A rate whose effect over the longest lag is small is not seen by lag
     * averages (contrast and offset absorb it): keep the given value there
     * rather than send the fit to a basin without shear or decay. */
    double tmax = 0.0;
    for (size_t q = 0; q < b->P * RS_BINS; q++)
        if (b->w[q] > 0 && b->tau[q] > tmax) tmax = b->tau[q];
    if (laminar && b->B * phys[3] * tmax < RS_SEEN) phys[3] = given_g;
    if (b->A * phys[0] * tmax < RS_SEEN / 10) phys[0] = given_d;
}
