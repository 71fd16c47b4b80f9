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
 *
 * With the QR accumulator's factor R (J = Q R, and Q^T r beside it) the same
 * step is the least-squares solution of the stacked system
 *     [ R S        ]       [ -Q^T r ]
 *     [ sqrt(lambda) I ] y = [   0    ]
 * over the free columns, by Householder QR (dgels): its normal equations are
 * the system above, but it is solved at the condition number of J S, not its
 * square, so a Jacobian with cond(J) ~ 1e8 still gives a step with ~8 digits.
 */
#include "nlsq_internal.h"
#include "linalg.h"

#include <math.h>
#include <string.h>

size_t nlsq__step_work(size_t p)
{
    return 2 * p * p + 3 * p + nlsq__la_lstsq_work(p) + 1;
}

/* The scaled, damped normal matrix over the free set (row-major), its
 * Cholesky factor and the solve: y = -(S A S + lambda I)^-1 S g. */
static int normal_solve(size_t p, const double *A, const double *g, const double *d2,
                        const unsigned char *free_, size_t nf, double lambda, double *M,
                        double *y)
{
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
        M[a * nf + a] += lambda;
        y[a] = -g[i] * si;
        a++;
    }
    int info = nlsq__la_cholesky('U', nf, M);
    return info == 0 ? nlsq__la_cholesky_solve(nf, M, y) : info;
}

/* The same y from the factor R ((p+1) x (p+1) column-major, Q^T r in its
 * last column): the stacked (p + nf) x nf least-squares problem (column-major
 * in M), then y from its solution. */
static int qr_solve(size_t p, const double *R, const double *d2, const unsigned char *free_,
                    size_t nf, double lambda, double *M, double *y)
{
    const size_t q = p + 1, m = p + nf;
    double *b = M + m * nf, *lw = b + m;
    memset(M, 0, m * nf * sizeof(double));
    const double sl = sqrt(lambda);
    for (size_t j = 0, a = 0; j < p; j++) {
        if (!free_[j]) continue;
        const double sj = 1.0 / sqrt(d2[j]);
        for (size_t i = 0; i <= j; i++) M[a * m + i] = R[i + j * q] * sj;
        M[a * m + p + a] = sl;
        a++;
    }
    for (size_t i = 0; i < p; i++) b[i] = -R[i + p * q];
    memset(b + p, 0, nf * sizeof(double));
    int info = nlsq__la_lstsq(m, nf, M, b, lw);
    if (info == 0) memcpy(y, b, nf * sizeof(double));
    return info;
}

int nlsq__damped_step(size_t p, const double *A, const double *g, const double *R,
                      const double *d2, const unsigned char *free_,
                      double *lambda, double *dx, double *work)
{
    double *M = work;                             /* the matrix of either solve */
    double *y = work + nlsq__step_work(p) - p;    /* nf */
    size_t nf = 0;
    for (size_t j = 0; j < p; j++) if (free_[j]) nf++;
    memset(dx, 0, p * sizeof(double));
    if (nf == 0) return 0;

    for (int attempt = 0; attempt < 40; attempt++) {
        int info = R ? qr_solve(p, R, d2, free_, nf, *lambda, M, y)
                     : normal_solve(p, A, g, d2, free_, nf, *lambda, M, y);
        int ok = info == 0;
        for (size_t t = 0; ok && t < nf; t++) ok = isfinite(y[t]);
        if (ok) {
            for (size_t j = 0, a = 0; j < p; j++)
                if (free_[j]) dx[j] = y[a++] / sqrt(d2[j]);
            return 0;
        }
        if (info == NLSQ__LA_NOMEM) return NLSQ_ENOMEM;
        if (info < 0) return NLSQ_ESINGULAR;   /* bad argument: a bug, not data */
        *lambda = *lambda > 0 ? *lambda * 10.0 : 1e-12;
        if (!isfinite(*lambda)) break;
    }
    return NLSQ_ESINGULAR;
}
