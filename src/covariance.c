/* covariance.c - s^2 (J^T J)^-1, scaled and rank-aware.
 *
 * Rule (documented in docs/api.md):
 *  1. A = J^T J is scaled to unit diagonal, C = S A S with S = diag(A_jj^-1/2).
 *     A parameter whose column is zero (A_jj = 0) is undetermined.
 *  2. C = V diag(w) V^T (dsyevd, through linalg.c).  Eigenvalues w_k <= rcond * w_max
 *     (rcond = cov_rcond, default p * DBL_EPSILON) span the numerically
 *     undetermined directions.
 *  3. A parameter with a loading |V_jk| > 1e-4 on any undetermined direction
 *     is undetermined: its variance is +INFINITY and its covariances NAN,
 *     never a falsely small number.
 *  4. Everything else is S V diag(1/w) V^T S * s^2 over the kept directions.
 * With the QR accumulator's factor (J = Q R) step 2 is the SVD of R S
 * (w = squared singular values), never forming J^T J; the default cut is
 * then the factor's precision, singular values <= q eps s_max
 * (nlsq__covariance_from_factor).
 */
#include "nlsq_internal.h"
#include "linalg.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Steps 2-3 on a decomposition of C: eigenvalues w (p), eigenvectors V
 * (row-major, V[j * p + k] = V_jk), S (0 for a zero column: such a column's
 * row and column of C were the identity's) and undet (zero columns marked).
 * Sets w_k = 0 for the cut directions, marks the parameters that load on
 * them, and sets *rank (kept directions, zero columns not counted). */
static void cut_rule(size_t p, const double *V, double *w, const double *S,
                     unsigned char *undet, double rcond, size_t *rank)
{
    double wmax = 0.0;
    for (size_t k = 0; k < p; k++) if (w[k] > wmax) wmax = w[k];
    size_t r = 0;
    for (size_t k = 0; k < p; k++) {
        if (w[k] > rcond * wmax && wmax > 0) { r++; continue; }
        w[k] = 0.0;
        for (size_t j = 0; j < p; j++)
            if (fabs(V[j * p + k]) > 1e-4) undet[j] = 1;
    }
    /* Columns forced to identity do not count toward the rank. */
    for (size_t j = 0; j < p; j++) if (S[j] == 0.0 && r > 0) r--;
    *rank = r;
}

/* Step 4 after cut_rule: S V diag(1/w) V^T S * scale over w_k > 0, and
 * +INFINITY / NAN for the undetermined parameters. */
static void assemble(size_t p, const double *V, const double *w, const double *S,
                     const unsigned char *undet, double scale, double *tmp, double *cov)
{
    for (size_t i = 0; i < p; i++) {
        for (size_t k = 0; k < p; k++) tmp[k] = w[k] > 0 ? V[i * p + k] / w[k] : 0.0;
        for (size_t j = i; j < p; j++) {
            double sum = 0.0;
            for (size_t k = 0; k < p; k++) sum += tmp[k] * V[j * p + k];
            double v = sum * S[i] * S[j] * scale;
            if (undet[i] || undet[j]) v = (i == j) ? INFINITY : NAN;
            cov[i * p + j] = v;
            cov[j * p + i] = v;
        }
    }
}

static int lapack_rc(int info)
{
    if (info == NLSQ__LA_NOMEM) return NLSQ_ENOMEM;
    return info < 0 ? NLSQ_EINVAL : NLSQ_ESINGULAR;
}

int nlsq__normal_basis(size_t p, const double *A, double rcond, double *C, double *w,
                       double *S, unsigned char *undet, size_t *rank)
{
    if (rcond <= 0) rcond = (double)p * DBL_EPSILON;
    memset(undet, 0, p);
    for (size_t j = 0; j < p; j++) {
        double d = A[j * p + j];
        if (d > 0 && isfinite(d)) S[j] = 1.0 / sqrt(d);
        else { S[j] = 0.0; undet[j] = 1; }
    }
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < p; j++)
            C[i * p + j] = undet[i] || undet[j] ? (i == j ? 1.0 : 0.0) : A[i * p + j] * S[i] * S[j];

    int info = nlsq__la_sym_eigen(p, C, w);
    if (info) return lapack_rc(info);
    cut_rule(p, C, w, S, undet, rcond, rank);
    return 0;
}

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
    int rc = nlsq__normal_basis(p, A, rcond, C, w, S, undet, rank);
    if (!rc) assemble(p, C, w, S, undet, scale, tmp, cov);
    nlsq__free(al, C);
    nlsq__free(al, undet);
    return rc;
}

/* The same from the QR factor: F (m x q, row-major) with J^T J = F^T F over
 * the q parameters.  C = (F S)^T (F S): its eigenvectors are the right
 * singular vectors of F S and its eigenvalues the squared singular values
 * (SVD, no J^T J formed).  A zero column gets a unit row of its own, which
 * makes its row and column of C the identity's, as in the normal path.  The
 * default cut is the factor's precision: singular values <= q eps s_max,
 * i.e. eigenvalues <= (q eps)^2 w_max; an explicit rcond applies to the
 * eigenvalues, as in the normal path. */
int nlsq__covariance_from_factor(size_t m, size_t q, const double *F, double scale,
                                 double rcond, const nlsq_allocator *al, double *cov,
                                 size_t *rank)
{
    const size_t mr = m + q;
    double *G = nlsq__calloc(al, mr * q + q * q + 5 * q, sizeof(double));
    unsigned char *undet = nlsq__calloc(al, q, 1);
    if (!G || !undet) {
        nlsq__free(al, G);
        nlsq__free(al, undet);
        return NLSQ_ENOMEM;
    }
    double *Vt = G + mr * q, *w = Vt + q * q, *S = w + q, *tmp = S + q, *sup = tmp + q;
    if (rcond <= 0) rcond = ((double)q * DBL_EPSILON) * ((double)q * DBL_EPSILON);
    for (size_t j = 0; j < q; j++) {
        double d = 0.0;
        for (size_t i = 0; i < m; i++) d += F[i * q + j] * F[i * q + j];
        if (d > 0 && isfinite(d)) S[j] = 1.0 / sqrt(d);
        else { S[j] = 0.0; undet[j] = 1; G[(m + j) * q + j] = 1.0; }
        for (size_t i = 0; i < m && S[j] > 0; i++) G[i * q + j] = F[i * q + j] * S[j];
    }
    int info = nlsq__la_svd(mr, q, G, w, Vt, sup), rc = info ? lapack_rc(info) : 0;
    if (!rc) {
        for (size_t k = 0; k < q; k++) w[k] *= w[k];
        for (size_t j = 0; j < q; j++)   /* V[j * q + k] = Vt[k * q + j], into G */
            for (size_t k = 0; k < q; k++) G[j * q + k] = Vt[k * q + j];
        cut_rule(q, G, w, S, undet, rcond, rank);
        assemble(q, G, w, S, undet, scale, tmp, cov);
    }
    nlsq__free(al, G);
    nlsq__free(al, undet);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Per-parameter flags and the covariance at a solution                      */
/* ------------------------------------------------------------------------ */
/*
 * Rule (docs/api.md "Per-parameter flags"):
 *  - fixed (lower == upper): not a parameter of the fit.  Its row and column
 *    of the covariance are 0, and it does not count in the degrees of
 *    freedom (nlsq__dof).  The others' covariance is that of the problem
 *    without it (J^T J with its row and column dropped).
 *  - undetermined: the rank rule above over the non-fixed parameters, or a
 *    finite 1-sigma error larger than the width of its (finite) box: the data
 *    do not place it anywhere inside its bounds.  This relative test catches
 *    directions that the eigenvalue cut keeps (a parameter pinned at a bound
 *    with a column 1e-14 of the others', sigma 1e14; a contrast in [0, 1]
 *    with sigma 9.6).  Variance +INFINITY, covariances NAN.
 *  - at_lower / at_upper: x_j on that bound (also for undetermined ones).
 */

const char *nlsq_param_flags_name(unsigned flags)
{
    if (flags & NLSQ_PARAM_FIXED) return "fixed";
    if (flags & NLSQ_PARAM_UNDETERMINED) {
        if (flags & NLSQ_PARAM_AT_LOWER) return "undetermined_at_lower";
        if (flags & NLSQ_PARAM_AT_UPPER) return "undetermined_at_upper";
        return "undetermined";
    }
    if (flags & NLSQ_PARAM_AT_LOWER) return "at_lower";
    if (flags & NLSQ_PARAM_AT_UPPER) return "at_upper";
    return "free";
}

static double bound_of(const double *b, size_t j, double inf) { return b ? b[j] : inf; }

/* " (undetermined: x[3], x[7])" appended to the message, as far as it fits. */
static void message_undetermined(nlsq_result *res, size_t p, const unsigned *flags)
{
    size_t len = strlen(res->message), cap = sizeof res->message;
    const char *sep = " (undetermined: ";
    int any = 0;
    for (size_t j = 0; j < p; j++) {
        if (!(flags[j] & NLSQ_PARAM_UNDETERMINED)) continue;
        char item[40];
        int n = snprintf(item, sizeof item, "%sx[%zu]", any ? ", " : sep, j);
        if (n < 0 || len + (size_t)n + 6 >= cap) {
            if (len + 5 < cap) { memcpy(res->message + len, ", ...", 6); len += 5; }
            break;
        }
        memcpy(res->message + len, item, (size_t)n + 1);
        len += (size_t)n;
        any = 1;
    }
    if (any && len + 1 < cap) { res->message[len++] = ')'; res->message[len] = '\0'; }
}

/* Flags that need no linear algebra: fixed and on a bound. */
static size_t bound_flags(const nlsq_problem *pb, const double *x, unsigned *flags)
{
    size_t n_fixed = 0;
    for (size_t j = 0; j < pb->n_params; j++) {
        double lo = bound_of(pb->lower, j, -INFINITY), hi = bound_of(pb->upper, j, INFINITY);
        flags[j] = 0;
        if (lo == hi) { flags[j] = NLSQ_PARAM_FIXED; n_fixed++; continue; }
        if (x[j] <= lo) flags[j] |= NLSQ_PARAM_AT_LOWER;
        if (x[j] >= hi) flags[j] |= NLSQ_PARAM_AT_UPPER;
    }
    return n_fixed;
}

/* The width rule and the undetermined markers on a finished covariance:
 * a non-fixed parameter with variance +INFINITY, or a finite one above the
 * squared width of its finite box, gets variance +INFINITY and NAN
 * covariances.  Returns the number of undetermined parameters. */
static size_t width_rule(const nlsq_problem *pb, double *cov, unsigned *flags)
{
    const size_t p = pb->n_params;
    size_t n_undet = 0;
    for (size_t j = 0; j < p; j++) {
        if (flags[j] & NLSQ_PARAM_FIXED) continue;
        double v = cov[j * p + j];
        double width = bound_of(pb->upper, j, INFINITY) - bound_of(pb->lower, j, -INFINITY);
        int undet = v == INFINITY || (isfinite(v) && isfinite(width) && v > width * width);
        if (!undet) continue;
        flags[j] |= NLSQ_PARAM_UNDETERMINED;
        n_undet++;
        for (size_t b = 0; b < p; b++) {
            if (flags[b] & NLSQ_PARAM_FIXED) continue;
            cov[j * p + b] = cov[b * p + j] = (b == j) ? INFINITY : NAN;
        }
    }
    return n_undet;
}

/* The non-fixed columns idx[0 .. q) of the QR factor R ((p+1)^2,
 * column-major) as a row-major p x q block, and its covariance. */
static int inverse_from_factor(size_t p, const double *R, const size_t *idx, size_t q,
                               double scale, double rcond, const nlsq_allocator *al, double *cr,
                               size_t *rank)
{
    double *F = nlsq__calloc(al, p * q + 1, sizeof(double));
    if (!F) return NLSQ_ENOMEM;
    for (size_t a = 0; a < q; a++)
        for (size_t i = 0; i <= idx[a]; i++) F[i * q + a] = R[i + idx[a] * (p + 1)];
    int rc = nlsq__covariance_from_factor(p, q, F, scale, rcond, al, cr, rank);
    nlsq__free(al, F);
    return rc;
}

size_t nlsq__free_params(const nlsq_problem *pb, size_t *idx)
{
    size_t q = 0;
    for (size_t j = 0; j < pb->n_params; j++)
        if (!(pb->lower && pb->upper && pb->lower[j] == pb->upper[j])) idx[q++] = j;
    return q;
}

void nlsq__free_block(size_t p, const double *A, const size_t *idx, size_t q, double *Ar)
{
    for (size_t a = 0; a < q; a++)
        for (size_t b = 0; b < q; b++) Ar[a * q + b] = A[idx[a] * p + idx[b]];
}

int nlsq__inverse_free(const nlsq_problem *pb, const nlsq_options *opt,
                       const nlsq_allocator *al, const double *A, const double *R,
                       double scale, double *cov, size_t *rank)
{
    const size_t p = pb->n_params;
    size_t *idx = nlsq__calloc(al, p, sizeof(size_t));
    if (!idx) return NLSQ_ENOMEM;
    const size_t q = nlsq__free_params(pb, idx);
    double *Ar = nlsq__calloc(al, 2 * q * q + 1, sizeof(double));
    if (!Ar) { nlsq__free(al, idx); return NLSQ_ENOMEM; }
    double *cr = Ar + q * q;
    if (!R) nlsq__free_block(p, A, idx, q, Ar);
    *rank = 0;
    int rc = 0;
    if (q && R) rc = inverse_from_factor(p, R, idx, q, scale, opt->cov_rcond, al, cr, rank);
    else if (q) rc = nlsq__covariance_from_normal(q, Ar, scale, opt->cov_rcond, al, cr, rank);
    if (!rc) {
        memset(cov, 0, p * p * sizeof(double));
        for (size_t a = 0; a < q; a++)
            for (size_t b = 0; b < q; b++) cov[idx[a] * p + idx[b]] = cr[a * q + b];
    }
    nlsq__free(al, Ar);
    nlsq__free(al, idx);
    return rc;
}

int nlsq__flag_covariance(const nlsq_problem *pb, const nlsq_allocator *al, const double *x,
                          double *cov, size_t rank, nlsq_result *res)
{
    unsigned *flags = nlsq__calloc(al, pb->n_params, sizeof(unsigned));
    if (!flags) return NLSQ_ENOMEM;
    size_t n_fixed = bound_flags(pb, x, flags);
    size_t n_undet = width_rule(pb, cov, flags);
    if (res) {
        res->rank = rank;
        res->n_fixed = n_fixed;
        res->n_undetermined = n_undet;
        if (n_undet) message_undetermined(res, pb->n_params, flags);
    }
    nlsq__free(al, flags);
    return 0;
}

size_t nlsq_param_flags(const nlsq_problem *pb, const double *x, const double *cov,
                        unsigned *flags)
{
    if (!pb || !x || !flags) return 0;
    const size_t p = pb->n_params;
    bound_flags(pb, x, flags);
    size_t n = 0;
    for (size_t j = 0; cov && j < p; j++)
        if (!(flags[j] & NLSQ_PARAM_FIXED) && cov[j * p + j] == INFINITY) {
            flags[j] |= NLSQ_PARAM_UNDETERMINED;
            n++;
        }
    return n;
}

int nlsq__covariance_at(const nlsq_problem *pb, const nlsq_options *opt,
                        const nlsq_allocator *al, const double *x, const double *A,
                        const double *R, double cost, size_t n_obs, double *cov,
                        nlsq_result *res)
{
    double dof = nlsq__dof(pb, n_obs);
    double s2 = opt->absolute_sigma ? 1.0 : (dof > 0 ? 2.0 * cost / dof : NAN);
    size_t rank = 0;
    int rc = nlsq__inverse_free(pb, opt, al, A, R, s2, cov, &rank);
    return rc ? rc : nlsq__flag_covariance(pb, al, x, cov, rank, res);
}
