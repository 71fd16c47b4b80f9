/*
 * xpcs_reference.h - a naive, independent implementation of the XPCS forward
 * model of xpcs-model.md (direct loops, no tables shared with src/xpcs), and
 * a seeded Gaussian generator, for the model and fit tests.
 */
#ifndef NLSQ_TESTS_XPCS_REFERENCE_H
#define NLSQ_TESTS_XPCS_REFERENCE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define REF_FN static inline __attribute__((unused))

#define REF_PI 3.14159265358979323846

typedef struct ref_model {
    double q, gap, dt;
    size_t k0;
    int static_mode;
} ref_model;

REF_FN double ref_f(const ref_model *rm, double amp, double ex, double off, size_t k)
{
    double eps = rm->dt / 2 > 1e-8 ? rm->dt / 2 : 1e-8;
    double t = (double)(k + rm->k0) * rm->dt;
    double ts = t > eps ? t : eps;
    double v = amp * pow(ts, ex) + off;
    return v > 1e-10 ? v : 1e-10;
}

/* C[k] = C[k-1] + (f_{k-1} + f_k) / 2, C[0] = 0, recomputed from scratch. */
REF_FN double ref_C(const ref_model *rm, double amp, double ex, double off, size_t k)
{
    double C = 0.0;
    for (size_t kk = 1; kk <= k; kk++)
        C = C + (ref_f(rm, amp, ex, off, kk - 1) + ref_f(rm, amp, ex, off, kk)) / 2;
    return C;
}

REF_FN double ref_sinc(double x)
{
    if (fabs(x) < 1e-4) return 1.0 - x * x / 6.0 + x * x * x * x / 120.0;
    return sin(x) / x;
}

/* g1 at (i, j) for physical parameters p[7] and angle phi (degrees). */
REF_FN double ref_g1(const ref_model *rm, const double *p, double phi, size_t i, size_t j)
{
    double CDi = ref_C(rm, p[0], p[1], p[2], i), CDj = ref_C(rm, p[0], p[1], p[2], j);
    double ID = sqrt((CDi - CDj) * (CDi - CDj) + 1e-12);
    double A = rm->q * rm->q * rm->dt / 2.0;
    double e = -A * ID;
    if (e < -700.0) e = -700.0;
    double g1 = exp(e);
    if (!rm->static_mode) {
        double CGi = ref_C(rm, p[3], p[4], p[5], i), CGj = ref_C(rm, p[3], p[4], p[5], j);
        double IG = sqrt((CGi - CGj) * (CGi - CGj) + 1e-12);
        double B = rm->q * rm->gap * rm->dt / (2.0 * REF_PI);
        double Phi = B * cos((p[6] - phi) * REF_PI / 180.0) * IG;
        double s = ref_sinc(Phi);
        g1 *= s * s;
    }
    return g1 > 1e-10 ? g1 : 1e-10;
}

REF_FN double ref_g2(const ref_model *rm, const double *p, double phi, double contrast,
                     double offset, size_t i, size_t j)
{
    double g1 = ref_g1(rm, p, phi, i, j);
    return offset + contrast * g1 * g1;
}

/* Full matrices (P x n x n, both triangles and the diagonal) of g2 for the
 * parameter vector x (physical, then contrast/offset per angle), computed
 * with row tables of C built by the naive per-k recomputation above (O(n^2)
 * per C row would be too slow; C_k itself is still recomputed from its
 * definition, once per k). */
REF_FN void ref_matrices(const ref_model *rm, const double *x, size_t P, const double *phi,
                         size_t n, double *out, double *CD, double *CG)
{
    size_t np = rm->static_mode ? 3 : 7;
    double p[7] = {x[0], x[1], x[2], 0, 0, 0, 0};
    if (!rm->static_mode)
        for (int k = 3; k < 7; k++) p[k] = x[k];
    for (size_t k = 0; k < n; k++) {
        CD[k] = ref_C(rm, p[0], p[1], p[2], k);
        CG[k] = rm->static_mode ? 0 : ref_C(rm, p[3], p[4], p[5], k);
    }
    double A = rm->q * rm->q * rm->dt / 2.0;
    double B = rm->q * rm->gap * rm->dt / (2.0 * REF_PI);
    for (size_t a = 0; a < P; a++) {
        double con = x[np + 2 * a], off = x[np + 2 * a + 1];
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                double ID = sqrt((CD[i] - CD[j]) * (CD[i] - CD[j]) + 1e-12);
                double e = -A * ID;
                if (e < -700.0) e = -700.0;
                double g1 = exp(e);
                if (!rm->static_mode) {
                    double IG = sqrt((CG[i] - CG[j]) * (CG[i] - CG[j]) + 1e-12);
                    double Phi = B * cos((p[6] - phi[a]) * REF_PI / 180.0) * IG;
                    double s = ref_sinc(Phi);
                    g1 *= s * s;
                }
                if (g1 < 1e-10) g1 = 1e-10;
                out[(a * n + i) * n + j] = off + con * g1 * g1;
            }
    }
}

/* splitmix64 + Box-Muller. */
typedef struct ref_rng { uint64_t s; int have; double spare; } ref_rng;

REF_FN uint64_t ref_rng_u64(ref_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

REF_FN double ref_rng_uniform(ref_rng *r)   /* (0, 1) */
{
    return ((double)(ref_rng_u64(r) >> 11) + 0.5) / 9007199254740992.0;
}

REF_FN double ref_rng_gauss(ref_rng *r)
{
    if (r->have) { r->have = 0; return r->spare; }
    double u1 = ref_rng_uniform(r), u2 = ref_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    r->spare = rad * sin(2.0 * REF_PI * u2);
    r->have = 1;
    return rad * cos(2.0 * REF_PI * u2);
}

#endif
