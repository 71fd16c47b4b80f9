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

/* ----- QR (the TSQR accumulator, step.c, covariance.c) -------------------
 * Column-major, since the QR accumulator builds its own blocks. */
/* Block size of nlsq__la_qr_fold for n columns; T and work hold
 * nlsq__la_qr_nb(n) * n doubles each. */
size_t nlsq__la_qr_nb(size_t n);
/* Fold the m rows of B (m x n, leading dimension ldb) into the upper
 * triangular R (n x n, leading dimension n): [R; B] = Q [R'; 0], R <- R'
 * (LAPACK dtpqrt).  B is overwritten (Householder vectors). */
int nlsq__la_qr_fold(size_t m, size_t n, double *R, double *B, size_t ldb, double *T,
                     double *work);
/* Least squares min ||M y - b|| for M (m x n, m >= n, full column rank,
 * leading dimension m), by Householder QR (dgels): y in b[0 .. n).  M and b
 * are overwritten; work: nlsq__la_lstsq_work(n) doubles.  > 0: M is rank
 * deficient (a zero diagonal in its R). */
size_t nlsq__la_lstsq_work(size_t n);
int nlsq__la_lstsq(size_t m, size_t n, double *M, double *b, double *work);
/* Singular values s (n, descending) and right singular vectors of a
 * row-major m x n matrix M (m >= n): Vt (n x n, row-major, row k = v_k).
 * M is overwritten; superb: n doubles of scratch. */
int nlsq__la_svd(size_t m, size_t n, double *M, double *s, double *Vt, double *superb);
/* Reciprocal condition number (1-norm) of a symmetric positive definite
 * matrix from its Cholesky factor U (nlsq__la_cholesky('U'), row-major) and
 * its 1-norm anorm (dpocon).  work: 3n doubles, iwork: n ints. */
int nlsq__la_cholesky_rcond(size_t n, const double *U, double anorm, double *rcond,
                            double *work, int *iwork);

#endif
