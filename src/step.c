/* step.c - the damped Gauss-Newton step of one Levenberg-Marquardt iteration.
 *
 * Solves (A + lambda * diag(d2)) dx = -g on the free parameters, where
 * A = J^T J and g = J^T r.  The system is solved in the scaled variables
 * y = sqrt(d2) * dx, where it reads (S A S + lambda I) y = -S g with
 * S = diag(1/sqrt(d2)): its diagonal is close to 1 + lambda, which keeps the
 * Cholesky factorisation (dpotrf/dpotrs through linalg.c) well conditioned.  When the
 * factorisation fails (A not positive definite to working precision, e.g.
 * duplicated columns and lambda tiny), lambda is raised tenfold and the solve
 * retried; the caller sees the lambda actually used.
 */
#include "nlsq_internal.h"
#include "linalg.h"

#include <math.h>
#include <string.h>

int nlsq__damped_step(size_t p, const double *A, const double *g,
                      const double *d2, const unsigned char *free_,
                      double *lambda, double *dx, double *work)
{
    double *M = work;            /* nf x nf */
    double *y = work + p * p;    /* nf */
    size_t nf = 0;
    for (size_t j = 0; j < p; j++) if (free_[j]) nf++;
    memset(dx, 0, p * sizeof(double));
    if (nf == 0) return 0;

    for (int attempt = 0; attempt < 40; attempt++) {
        /* Build the scaled, damped matrix over the free set (row-major). */
        size_t a = 0;
        for (size_t i = 0; i < p; i++) {
            if (!free_[i]) continue;
            double si = 1.0 / sqrt(d2[i]);
            size_t b = 0;
            for (size_t j = 0; j < p; j++) {
                if (!free_[j]) continue;
                double sj = 1.0 / sqrt(d2[j]);
                M[a * nf + b] = A[i * p + j] * si * sj;
                b++;
            }
            M[a * nf + a] += *lambda;
            y[a] = -g[i] * si;
            a++;
        }
        int info = nlsq__la_cholesky('U', nf, M);
        if (info == 0) {
            info = nlsq__la_cholesky_solve(nf, M, y);
            int ok = info == 0;
            for (size_t t = 0; ok && t < nf; t++) ok = isfinite(y[t]);
            if (ok) {
                a = 0;
                for (size_t j = 0; j < p; j++)
                    if (free_[j]) dx[j] = y[a++] / sqrt(d2[j]);
                return 0;
            }
        }
        if (info == NLSQ__LA_NOMEM) return NLSQ_ENOMEM;
        if (info < 0) return NLSQ_ESINGULAR;   /* bad argument: a bug, not data */
        *lambda = *lambda > 0 ? *lambda * 10.0 : 1e-12;
        if (!isfinite(*lambda)) break;
    }
    return NLSQ_ESINGULAR;
}
