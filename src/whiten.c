/* whiten.c - a full covariance of the data for nlsq_curve_fit (scipy's 2-D sigma).
 *
 * With C = L L^T (Cholesky, lower), the generalised least-squares cost
 * (f - y)^T C^-1 (f - y) is |L^-1 (f - y)|^2: residuals and Jacobian rows are
 * "whitened" by a forward substitution with L.  L^-1 mixes rows, so the
 * curve fit evaluates all n points as one chunk when C is given; C already
 * holds n^2 doubles, so that costs no more memory than the caller spent.
 */
#include "nlsq_internal.h"
#include "linalg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int nlsq__whiten_init(const nlsq_allocator *al, size_t n, const double *C, double **L_out,
                      char *msg, size_t msg_size)
{
    *L_out = NULL;
    size_t nn;
    if (nlsq__mul_size(n, n, &nn) != 0 || n > (size_t)INT32_MAX) {
        snprintf(msg, msg_size, "sigma_cov: n = %zu too large", n);
        return NLSQ_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j <= i; j++)
            if (!isfinite(C[i * n + j])) {
                snprintf(msg, msg_size, "sigma_cov[%zu][%zu] is not finite", i, j);
                return NLSQ_EINVAL;
            }
    double *L = nlsq__malloc(al, nn * sizeof(double));
    if (!L) {
        snprintf(msg, msg_size, "out of memory for the Cholesky factor of sigma_cov");
        return NLSQ_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) L[i * n + j] = j <= i ? C[i * n + j] : 0.0;
    int info = nlsq__la_cholesky('L', n, L);
    if (info != 0) {
        nlsq__free(al, L);
        if (info > 0) {
            snprintf(msg, msg_size, "sigma_cov is not positive definite (leading minor %d)", (int)info);
            return NLSQ_EINVAL;
        }
        snprintf(msg, msg_size, "Cholesky factorisation of sigma_cov failed (%d)", (int)info);
        return info == NLSQ__LA_NOMEM ? NLSQ_ENOMEM : NLSQ_EINVAL;
    }
    *L_out = L;
    return 0;
}

void nlsq__whiten_apply(const double *L, size_t n, size_t p, double *r, double *J)
{
    nlsq__la_trsv_lower(n, L, r);
    if (J) nlsq__la_trsm_lower(n, p, L, J);
}

double nlsq__whiten_ss_tot(const nlsq_allocator *al, const double *L, size_t n, const double *y)
{
    /* GLS mean ybar = (1^T C^-1 y) / (1^T C^-1 1); SS_tot = |L^-1 (y - ybar 1)|^2 */
    double *w = nlsq__calloc(al, 2 * n, sizeof(double));
    if (!w) return NAN;
    double *yw = w, *ow = w + n;
    memcpy(yw, y, n * sizeof(double));
    for (size_t i = 0; i < n; i++) ow[i] = 1.0;
    nlsq__whiten_apply(L, n, 1, yw, NULL);
    nlsq__whiten_apply(L, n, 1, ow, NULL);
    double oy = 0.0, oo = 0.0;
    for (size_t i = 0; i < n; i++) {
        oy += ow[i] * yw[i];
        oo += ow[i] * ow[i];
    }
    const double ybar = oy / oo;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = yw[i] - ybar * ow[i];
        s += d * d;
    }
    nlsq__free(al, w);
    return s;
}
