/*
 * linalg.h - the one door to BLAS and LAPACK (private).
 *
 * src/linalg.c is the only file of the library that includes cblas.h or
 * lapacke.h; everything else calls these wrappers.  Matrices are row-major
 * unless a function says otherwise, dimensions are size_t (the wrappers
 * narrow them to the BLAS integer type), and LAPACK's status is returned as
 *     0                 success,
 *     > 0               LAPACK's numerical info (not positive definite at
 *                       that leading minor, no convergence, ...),
 *     NLSQ__LA_NOMEM    LAPACKE could not allocate its work or transpose,
 *     NLSQ__LA_BADARG   an argument LAPACK refused (a bug, not data).
 * The calls are exactly the ones the library made before the seam existed
 * (same routine, layout and triangle), so results are bitwise unchanged.
 */
#ifndef NLSQ_LINALG_H
#define NLSQ_LINALG_H

#include <stddef.h>

#define NLSQ__LA_NOMEM  (-1000)
#define NLSQ__LA_BADARG (-1001)

/* ----- BLAS kernels of the normal-equation accumulator (accumulate.c) ---- */
/* y = J^T r + beta y for a row-major n x k block J. */
void nlsq__la_gemv_t(size_t n, size_t k, const double *J, const double *r, double beta,
                     double *y);
/* Upper triangle of C (k x k) = J^T J + beta C for a row-major n x k block J. */
void nlsq__la_syrk_t(size_t n, size_t k, const double *J, double beta, double *C);

/* ----- triangular solves with a lower factor L (n x n) (whiten.c) -------- */
/* r <- L^-1 r */
void nlsq__la_trsv_lower(size_t n, const double *L, double *r);
/* B <- L^-1 B for a row-major n x p block B */
void nlsq__la_trsm_lower(size_t n, size_t p, const double *L, double *B);

/* ----- Cholesky ----------------------------------------------------------- */
/* M (n x n) = U^T U in its upper triangle (uplo 'U') or L L^T in its lower
 * triangle (uplo 'L'); the other triangle is not referenced. */
int nlsq__la_cholesky(char uplo, size_t n, double *M);
/* b <- (U^T U)^-1 b with the upper factor U from nlsq__la_cholesky('U'). */
int nlsq__la_cholesky_solve(size_t n, const double *U, double *b);

/* ----- symmetric eigen-decomposition -------------------------------------- */
/* C (n x n, upper triangle read) = V diag(w) V^T: w ascending, V's columns
 * (C[i * n + k] = V_ik) overwrite C. */
int nlsq__la_sym_eigen(size_t n, double *C, double *w);

#endif
