/* linalg.c - the library's only calls into BLAS and LAPACK (see linalg.h).
 *
 * Each wrapper is a single call with the layout and triangle its callers
 * always used, plus the translation of LAPACKE's status to linalg.h's codes.
 * Nothing here allocates except LAPACKE's own work arrays, whose failure
 * comes back as NLSQ__LA_NOMEM.
 */
#include "linalg.h"

#include <cblas.h>
#include <lapacke.h>

_Static_assert(sizeof(lapack_int) == sizeof(int), "the seam passes int work arrays to LAPACK");

static int status_of(lapack_int info)
{
    if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
        return NLSQ__LA_NOMEM;
    if (info < 0) return NLSQ__LA_BADARG;
    return (int)info;
}

void nlsq__la_gemv_t(size_t n, size_t k, const double *J, const double *r, double beta,
                     double *y)
{
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)k, 1.0, J, (int)k, r, 1, beta, y, 1);
}

void nlsq__la_syrk_t(size_t n, size_t k, const double *J, double beta, double *C)
{
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n, 1.0, J, (int)k, beta, C,
                (int)k);
}

void nlsq__la_trsv_lower(size_t n, const double *L, double *r)
{
    cblas_dtrsv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, (int)n, L, (int)n, r, 1);
}

void nlsq__la_trsm_lower(size_t n, size_t p, const double *L, double *B)
{
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)n, (int)p,
                1.0, L, (int)n, B, (int)p);
}

int nlsq__la_cholesky(char uplo, size_t n, double *M)
{
    return status_of(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, uplo, (lapack_int)n, M, (lapack_int)n));
}

int nlsq__la_cholesky_solve(size_t n, const double *U, double *b)
{
    return status_of(LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'U', (lapack_int)n, 1, U, (lapack_int)n,
                                    b, 1));
}

int nlsq__la_sym_eigen(size_t n, double *C, double *w)
{
    return status_of(LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, C, (lapack_int)n,
                                    w));
}

size_t nlsq__la_qr_nb(size_t n) { return n < 32 ? n : 32; }

int nlsq__la_qr_fold(size_t m, size_t n, double *R, double *B, size_t ldb, double *T,
                     double *work)
{
    if (m == 0) return 0;
    const lapack_int nb = (lapack_int)nlsq__la_qr_nb(n);
    return status_of(LAPACKE_dtpqrt_work(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)n, 0, nb,
                                         R, (lapack_int)n, B, (lapack_int)ldb, T, nb, work));
}

size_t nlsq__la_lstsq_work(size_t n) { return 33 * (n ? n : 1); }

int nlsq__la_lstsq(size_t m, size_t n, double *M, double *b, double *work)
{
    return status_of(LAPACKE_dgels_work(LAPACK_COL_MAJOR, 'N', (lapack_int)m, (lapack_int)n, 1,
                                        M, (lapack_int)m, b, (lapack_int)m, work,
                                        (lapack_int)nlsq__la_lstsq_work(n)));
}

int nlsq__la_svd(size_t m, size_t n, double *M, double *s, double *Vt, double *superb)
{
    return status_of(LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'A', (lapack_int)m, (lapack_int)n, M,
                                    (lapack_int)n, s, NULL, 1, Vt, (lapack_int)n, superb));
}

int nlsq__la_cholesky_rcond(size_t n, const double *U, double anorm, double *rcond,
                            double *work, int *iwork)
{
    return status_of(LAPACKE_dpocon_work(LAPACK_ROW_MAJOR, 'U', (lapack_int)n, U,
                                         (lapack_int)n, anorm, rcond, work, iwork));
}
