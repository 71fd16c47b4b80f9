/* covariance.c - s^2 (J^T J)^-1, scaled and rank-aware.
 *
 * Rule (documented in docs/api.md):
 *  1. A = J^T J is scaled to unit diagonal, C = S A S with S = diag(A_jj^-1/2).
 *     A parameter whose column is zero (A_jj = 0) is undetermined.
 *  2. C = V diag(w) V^T (LAPACKE dsyevd).  Eigenvalues w_k <= rcond * w_max
 *     (rcond = cov_rcond, default p * DBL_EPSILON) span the numerically
 *     undetermined directions.
 *  3. A parameter with a loading |V_jk| > 1e-4 on any undetermined direction
 *     is undetermined: its variance is +INFINITY and its covariances NAN,
 *     never a falsely small number.
 *  4. Everything else is S V diag(1/w) V^T S * s^2 over the kept directions.
 */
#include "nlsq_internal.h"

#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

int nlsq__covariance_from_normal(size_t p, const double *A, double scale,
                                 double rcond, const nlsq_allocator *al,
                                 double *cov, size_t *rank)
{
    double *C = nlsq__calloc(al, p * p + 3 * p, sizeof(double));
    unsigned char *undet = nlsq__calloc(al, p, 1);
    if (!C || !undet) {
        nlsq__free(al, C);
        nlsq__free(al, undet);
        return NLSQ_ENOMEM;
    }
    double *w = C + p * p, *S = w + p, *tmp = S + p;
    if (rcond <= 0) rcond = (double)p * DBL_EPSILON;

    for (size_t j = 0; j < p; j++) {
        double d = A[j * p + j];
        if (d > 0 && isfinite(d)) S[j] = 1.0 / sqrt(d);
        else { S[j] = 0.0; undet[j] = 1; }
    }
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < p; j++)
            C[i * p + j] = undet[i] || undet[j] ? (i == j ? 1.0 : 0.0) : A[i * p + j] * S[i] * S[j];

    int rc = 0;
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)p, C, (lapack_int)p, w);
    if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR) {
        rc = NLSQ_ENOMEM;
        goto out;
    }
    if (info != 0) { rc = info < 0 ? NLSQ_EINVAL : NLSQ_ESINGULAR; goto out; }

    double wmax = 0.0;
    for (size_t k = 0; k < p; k++) if (w[k] > wmax) wmax = w[k];
    size_t r = 0;
    for (size_t k = 0; k < p; k++) {
        int keep = w[k] > rcond * wmax && wmax > 0;
        if (keep) { r++; continue; }
        for (size_t j = 0; j < p; j++)
            if (fabs(C[j * p + k]) > 1e-4) undet[j] = 1;
    }
    /* Columns forced to identity above do not count toward the rank. */
    for (size_t j = 0; j < p; j++) if (S[j] == 0.0 && r > 0) r--;
    *rank = r;

    for (size_t i = 0; i < p; i++) {
        for (size_t k = 0; k < p; k++)
            tmp[k] = (w[k] > rcond * wmax && wmax > 0) ? C[i * p + k] / w[k] : 0.0;
        for (size_t j = i; j < p; j++) {
            double s = 0.0;
            for (size_t k = 0; k < p; k++) s += tmp[k] * C[j * p + k];
            double v = s * S[i] * S[j] * scale;
            if (undet[i] || undet[j]) v = (i == j) ? INFINITY : NAN;
            cov[i * p + j] = v;
            cov[j * p + i] = v;
        }
    }
out:
    nlsq__free(al, C);
    nlsq__free(al, undet);
    return rc;
}
