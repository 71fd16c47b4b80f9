/* fdjac.c - finite-difference Jacobians for problems whose eval fills only r.
 *
 * When a problem sets `jacobian` to NLSQ_JAC_FORWARD or NLSQ_JAC_CENTRAL, the
 * engine (accumulate.c) calls nlsq__fd_eval instead of the user's eval.  For a
 * residual-only request it is the user's eval; when a Jacobian block is
 * wanted it evaluates r at x, then each of the block's k columns (the sparse
 * pattern's columns, else all p) from residuals of the same rows at
 * perturbed points:
 *
 *   step        h_j = c * max(|x_j|, s_j) with s_j = fd_scale[j]; without
 *               fd_scale h_j = c * |x_j| (c when x_j = 0), MINPACK's rule,
 *               c = sqrt(DBL_EPSILON) (forward) or cbrt(DBL_EPSILON) (central)
 *   forward     (r(x + h e_j) - r(x)) / h, or the backward difference when
 *               x_j + h is above the upper bound and x_j - h is not below the
 *               lower one
 *   central     (r(x + h e_j) - r(x - h e_j)) / (2 h) when both points lie in
 *               the bounds
 *   otherwise   one-sided towards the side with more room R, step d =
 *               min(h, R / 2) (forward: min(h, R)); central uses the
 *               second-order three-point formula through r(x), r(x + s d e_j),
 *               r(x + 2 s d e_j); a parameter with no room (lower == upper)
 *               gets a zero column
 *
 * so eval is never called outside the bounds.  The steps actually used are
 * (x_j + h) - x_j, exact in floating point.  One Jacobian chunk of k columns
 * costs 1 + k (forward) or 1 + 2 k (central) residual evaluations of the
 * chunk.  Each engine worker has its own scratch (p + 2 * chunk doubles), so a
 * chunk's block depends only on x and the rows: the sums stay bitwise the same
 * for any thread count.  The perturbed points were never prepared: eval sees
 * them with env->at_prepared 0 (nlsq.h "Callbacks").
 */
#include "nlsq_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

struct nlsq__fd {
    const nlsq_problem *pb;
    nlsq__calls *calls;       /* the engine's: eval goes through it */
    size_t chunk;             /* rows per chunk at most */
    size_t n_workers;
    double *scratch;          /* n_workers blocks of p + 2 * chunk doubles */
};

int nlsq__fd_init(nlsq__fd **out, nlsq__calls *calls, const nlsq_allocator *al,
                  size_t n_workers, size_t chunk)
{
    *out = NULL;
    const nlsq_problem *pb = calls->pb;
    size_t per, total;
    if (nlsq__mul_size(chunk, 2, &per) != 0 || per > SIZE_MAX - pb->n_params) return NLSQ_ENOMEM;
    per += pb->n_params;
    if (nlsq__mul_size(per, n_workers, &total) != 0) return NLSQ_ENOMEM;
    nlsq__fd *fd = nlsq__calloc(al, 1, sizeof *fd);
    if (!fd) return NLSQ_ENOMEM;
    fd->scratch = nlsq__calloc(al, total, sizeof(double));
    if (!fd->scratch) {
        nlsq__free(al, fd);
        return NLSQ_ENOMEM;
    }
    fd->pb = pb;
    fd->calls = calls;
    fd->chunk = chunk;
    fd->n_workers = n_workers;
    *out = fd;
    return 0;
}

void nlsq__fd_free(nlsq__fd *fd, const nlsq_allocator *al)
{
    if (!fd) return;
    nlsq__free(al, fd->scratch);
    nlsq__free(al, fd);
}

/* One column's points: offsets d1 (and d2 for a two-point rule) from x_j and
 * the weights: one point, (r(x + d1 e_j) - r(x)) w1; two, w0 r(x) + w1 r(x + d1
 * e_j) + w2 r(x + d2 e_j), or (r(x + d1 e_j) - r(x + d2 e_j)) w1 when central. */
typedef struct fd_rule {
    int n_evals;              /* 0 (zero column), 1 or 2 */
    int central;              /* the two-sided rule: (r1 - r2) * w1 */
    double d1, d2, w0, w1, w2;
} fd_rule;

static fd_rule column_rule(int mode, double t, double lo, double hi, double scale)
{
    fd_rule q = {0, 0, 0, 0, 0, 0, 0};
    const double c = mode == NLSQ_JAC_CENTRAL ? cbrt(DBL_EPSILON) : sqrt(DBL_EPSILON);
    const double h = c * (scale > 0 ? fmax(fabs(t), scale) : t != 0.0 ? fabs(t) : 1.0);
    if (mode == NLSQ_JAC_CENTRAL && t - h >= lo && t + h <= hi) {
        q.n_evals = 2;
        q.central = 1;
        q.d1 = (t + h) - t;
        q.d2 = (t - h) - t;
        q.w1 = 1.0 / (q.d1 - q.d2);
        q.w2 = -q.w1;
        return q;
    }
    if (mode == NLSQ_JAC_FORWARD && (t + h <= hi || t - h >= lo)) {
        q.n_evals = 1;
        q.d1 = t + h <= hi ? (t + h) - t : (t - h) - t;
        q.w1 = 1.0 / q.d1;
        return q;
    }
    const double room_hi = hi - t, room_lo = t - lo;
    const double s = room_hi >= room_lo ? 1.0 : -1.0, room = s > 0 ? room_hi : room_lo;
    const double d = fmin(h, mode == NLSQ_JAC_CENTRAL ? 0.5 * room : room);
    const double d1 = (t + s * d) - t;
    if (!(d > 0) || d1 == 0.0) return q;              /* no room: zero column */
    if (mode == NLSQ_JAC_FORWARD) {
        q.n_evals = 1;
        q.d1 = d1;
        q.w1 = 1.0 / d1;
        return q;
    }
    double x2 = fmin(fmax(t + 2.0 * d1, lo), hi);
    const double d2 = x2 - t;
    if (d2 == d1) return q;
    /* derivative at 0 of the parabola through (0, r0), (d1, r1), (d2, r2) */
    q.n_evals = 2;
    q.d1 = d1;
    q.d2 = d2;
    q.w0 = -(d1 + d2) / (d1 * d2);
    q.w1 = d2 / (d1 * (d2 - d1));
    q.w2 = -d1 / (d2 * (d2 - d1));
    return q;
}

int nlsq__fd_eval(nlsq__fd *fd, size_t worker, const double *x, size_t row0, size_t n,
                  const size_t *cols, size_t k, double *r, double *J, size_t *n_obs)
{
    const nlsq_problem *pb = fd->pb;
    int rc = nlsq__calls_eval(fd->calls, worker, 1, x, row0, n, r, NULL, n_obs);
    if (rc != 0 || !J) return rc;
    if (worker >= fd->n_workers || n > fd->chunk) return NLSQ_EINVAL;

    const size_t p = pb->n_params;
    double *th = fd->scratch + worker * (p + 2 * fd->chunk), *f1 = th + p, *f2 = f1 + n;
    memcpy(th, x, p * sizeof(double));
    const int cm = pb->jac_col_major;
    for (size_t a = 0; a < k; a++) {
        const size_t j = cols ? cols[a] : a;
        const double lo = pb->lower ? pb->lower[j] : -INFINITY;
        const double hi = pb->upper ? pb->upper[j] : INFINITY;
        const fd_rule q = column_rule(pb->jacobian, x[j], lo, hi, pb->fd_scale ? pb->fd_scale[j] : 0.0);
        if (q.n_evals >= 1) {
            th[j] = x[j] + q.d1;
            rc = nlsq__calls_eval(fd->calls, worker, 0, th, row0, n, f1, NULL, NULL);
        }
        if (rc == 0 && q.n_evals == 2) {
            th[j] = x[j] + q.d2;
            rc = nlsq__calls_eval(fd->calls, worker, 0, th, row0, n, f2, NULL, NULL);
        }
        th[j] = x[j];
        if (rc != 0) return rc;
        const size_t stride = cm ? 1 : k;
        double *col = cm ? J + a * n : J + a;
        for (size_t i = 0; i < n; i++) {
            double v = 0.0;
            if (q.central) v = (f1[i] - f2[i]) * q.w1;
            else if (q.n_evals == 1) v = (f1[i] - r[i]) * q.w1;
            else if (q.n_evals == 2) v = q.w0 * r[i] + q.w1 * f1[i] + q.w2 * f2[i];
            col[i * stride] = v;
        }
    }
    return 0;
}
