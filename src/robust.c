/* robust.c - the cluster-robust (sandwich) covariance A^-1 B A^-1.
 *
 * Rule (documented in docs/api.md "Cluster-robust covariance"):
 *   g_i = J_i^T r_i, the gradient of row i's half square (with a robust loss:
 *         the reweighted J and r, so that g_i is the row's loss gradient and
 *         A the Gauss-Newton matrix, as for the ordinary covariance);
 *   every row belongs to one or two clusters, id_a and id_b (NLSQ_NO_CLUSTER
 *   or id_b == id_a: one);
 *   S_c = sum of g_i over the rows that belong to cluster c;
 *   B   = sum_c S_c S_c^T - sum over two-cluster rows of g_i g_i^T.
 * One-way clustering is B = sum_c S_c S_c^T.  With two clusters per row,
 * B counts every pair of rows that share a cluster once: when the two ids
 * come from disjoint ranges (row clusters, column clusters) it is Cameron,
 * Gelbach and Miller's B_row + B_col - B_cell with rows as the cells; when
 * they share one range (the frames i and j of a two-time entry) it also
 * counts the pairs (i, j), (k, i) that share frame i as row of one and
 * column of the other.
 *   Small-sample correction: B *= G / (G - 1) * (n - 1) / (n - p_free), G
 *   the clusters that hold at least one row, n the observations (Stata's
 *   one-way factor; for two ids per row G counts both kinds together).
 *   B can be indefinite (the subtracted cells): the negative eigenvalues of
 *   the covariance are set to 0 (Cameron, Gelbach and Miller 2011, section
 *   2.3), in the coordinates where A is the identity (sand_meat), so the
 *   result is positive semi-definite whatever the parameters' units.
 * A^-1 is the pseudo-inverse over the directions covariance.c's rank rule
 * keeps (sand_basis); parameters that load on a cut direction end
 * +INFINITY / NAN, fixed ones (lower == upper) 0.
 *
 * One pass over the rows at x, chunk by chunk through the user callback
 * (prepared once at x, one worker's scratch: callback.c), single-threaded:
 * memory O(chunk * p + n_clusters * p + p^2).
 */
#include "nlsq_internal.h"
#include "linalg.h"

#include <float.h>
#include <math.h>
#include <string.h>

typedef struct rob {
    const nlsq_problem *pb;
    const nlsq_options *opt;
    const nlsq_allocator *al;
    const nlsq_clusters *cl;
    size_t p, chunk;
    double *A, *Bcell, *S;      /* p*p, p*p, n_clusters * p */
    double *r, *J, *g;          /* chunk, chunk * p, p */
    size_t *cols, *ida, *idb;   /* p, chunk, chunk */
    unsigned char *used;        /* n_clusters */
    double cost;
    size_t bad_row;
    size_t n_obs;          /* observations of the rows evaluated (nlsq_eval_env.n_obs) */
    nlsq__calls calls;          /* prepare, one worker's scratch, the failure */
} rob;

static void rob_free(rob *w)
{
    const nlsq_allocator *al = w->al;
    nlsq__free(al, w->A);
    nlsq__free(al, w->Bcell);
    nlsq__free(al, w->S);
    nlsq__free(al, w->r);
    nlsq__free(al, w->J);
    nlsq__free(al, w->g);
    nlsq__free(al, w->cols);
    nlsq__free(al, w->ida);
    nlsq__free(al, w->idb);
    nlsq__free(al, w->used);
    nlsq__calls_free(&w->calls);
}

static int rob_alloc(rob *w)
{
    const size_t p = w->p, G = w->cl->n_clusters;
    size_t nS, nJ;
    if (nlsq__mul_size(G, p, &nS) || nlsq__mul_size(w->chunk, p, &nJ)) return NLSQ_EINVAL;
    w->A = nlsq__calloc(w->al, p * p, sizeof(double));
    w->Bcell = nlsq__calloc(w->al, p * p, sizeof(double));
    w->S = nlsq__calloc(w->al, nS, sizeof(double));
    w->r = nlsq__calloc(w->al, w->chunk, sizeof(double));
    w->J = nlsq__calloc(w->al, nJ, sizeof(double));
    w->g = nlsq__calloc(w->al, p, sizeof(double));
    w->cols = nlsq__calloc(w->al, p, sizeof(size_t));
    w->ida = nlsq__calloc(w->al, w->chunk, sizeof(size_t));
    w->idb = nlsq__calloc(w->al, w->chunk, sizeof(size_t));
    w->used = nlsq__calloc(w->al, G, 1);
    if (!w->A || !w->Bcell || !w->S || !w->r || !w->J || !w->g || !w->cols || !w->ida ||
        !w->idb || !w->used)
        return NLSQ_ENOMEM;
    return nlsq__calls_init(&w->calls, w->pb, w->al, 1);
}

/* Row i of a chunk (n rows, k columns) into sums: A, S of its clusters, the
 * cell term.  jr(a) is d r_i / d x_cols[a] after the loss reweighting. */
static void add_row(rob *w, size_t k, const double *Ji, size_t stride, double ri, size_t ca,
                    size_t cb)
{
    const size_t p = w->p;
    for (size_t a = 0; a < k; a++) {
        double ja = Ji[a * stride];
        w->g[a] = ja * ri;
        double *Arow = w->A + w->cols[a] * p;
        for (size_t b = 0; b < k; b++) Arow[w->cols[b]] += ja * Ji[b * stride];
    }
    double *Sa = w->S + ca * p;
    for (size_t a = 0; a < k; a++) Sa[w->cols[a]] += w->g[a];
    w->used[ca] = 1;
    if (cb == NLSQ_NO_CLUSTER || cb == ca) return;
    double *Sb = w->S + cb * p;
    for (size_t a = 0; a < k; a++) Sb[w->cols[a]] += w->g[a];
    w->used[cb] = 1;
    for (size_t a = 0; a < k; a++)
        for (size_t b = 0; b < k; b++) w->Bcell[w->cols[a] * p + w->cols[b]] += w->g[a] * w->g[b];
}

/* Rows [row0, row0 + n): evaluate, reweight for the loss, add.  Returns the
 * rows done (> 0) or an error. */
static long rob_chunk(rob *w, const double *x, size_t row0, size_t n)
{
    const nlsq_problem *pb = w->pb;
    size_t k = w->p;
    if (pb->pattern) {
        size_t got = pb->pattern(pb->ctx, row0, n, w->cols, &k);
        if (got == 0 || got > n || k == 0 || k > w->p) return NLSQ_ECALLBACK;
        for (size_t a = 0; a < k; a++)
            if (w->cols[a] >= w->p || (a > 0 && w->cols[a] <= w->cols[a - 1])) return NLSQ_ECALLBACK;
        n = got;
    } else {
        for (size_t a = 0; a < k; a++) w->cols[a] = a;
    }
    size_t obs = n;
    int cb = nlsq__calls_eval(&w->calls, 0, 1, x, row0, n, w->r, w->J, &obs);
    if (cb != 0) { w->bad_row = row0; return cb; }
    w->n_obs += obs;
    if (w->cl->ids(w->cl->ctx, row0, n, w->ida, w->idb) != 0) { w->bad_row = row0; return NLSQ_ECALLBACK; }
    const int cm = pb->jac_col_major != 0;
    for (size_t i = 0; i < n; i++) {
        double ri = w->r[i], *Ji = cm ? w->J + i : w->J + i * k;
        size_t stride = cm ? n : 1;
        size_t ca = w->ida[i], cbid = w->idb[i];
        if (ca >= w->cl->n_clusters || (cbid != NLSQ_NO_CLUSTER && cbid >= w->cl->n_clusters)) {
            w->bad_row = row0 + i;
            return NLSQ_ECALLBACK;
        }
        if (!isfinite(ri)) { w->bad_row = row0 + i; return NLSQ_ENONFINITE; }
        double z = ri * ri;
        if (w->opt->loss != NLSQ_LOSS_LINEAR) {
            double rho, d1, d2;
            nlsq__loss_eval(w->opt->loss, w->opt->f_scale, z, &rho, &d1, &d2);
            double js = d1 + 2.0 * z * d2;
            js = sqrt(js < DBL_EPSILON ? DBL_EPSILON : js);
            for (size_t a = 0; a < k; a++) Ji[a * stride] *= js;
            ri *= d1 / js;
            w->cost += 0.5 * rho;
        } else {
            w->cost += 0.5 * z;
        }
        for (size_t a = 0; a < k; a++)
            if (!isfinite(Ji[a * stride])) { w->bad_row = row0 + i; return NLSQ_ENONFINITE; }
        add_row(w, k, Ji, stride, ri, ca, cbid);
    }
    return (long)n;
}

/* The sandwich in A's whitened basis.  Over the q non-fixed parameters idx,
 * A = S U diag(w) U^T S (nlsq__normal_basis: the covariance's scaling, cut
 * and loading rule), so A^+ = T T^T with T = S U_kept diag(w_kept)^-1/2
 * (q x r) and A^+ B A^+ = T M T^T, M = T^T B T the meat in coordinates where
 * A is the identity.  M is formed from the projected cluster sums, z_c =
 * T^T S_c (the cell term, a sum of single rows, projected as T^T Bcell T),
 * not from B formed in the parameters' units: a direction of A near the
 * cut carries 1/w_k^2 in the sandwich, and that B loses in rounding what the
 * projection keeps.  (Before, A^-1 B A^-1 was multiplied
 * out in those units over the determined parameters only: when the cut made
 * some parameters undetermined, dropping their rows of A^+ left the others'
 * sandwich without the terms that cancel, e.g. a contrast's robust error
 * 0.24 for 0.005 at a fit in the XPCS shear valley.)  M's negative
 * eigenvalues (B is indefinite with the cell term subtracted) are set to 0:
 * in these coordinates that is clipping the covariance itself.  Writes cov
 * (p*p: fixed rows 0, undetermined diagonal +INFINITY for the width rule to
 * finish) and *rank. */
typedef struct sand {
    size_t q, r;
    size_t *idx;                /* q non-fixed parameters */
    double *U, *ev, *Sc;        /* q*q, q, q: the basis */
    double *T, *M, *V, *z, *tmp;    /* q*r, r*r, r*r, r, q*r */
    unsigned char *undet;       /* q */
} sand;

static void sand_free(const nlsq_allocator *al, sand *s)
{
    nlsq__free(al, s->idx);
    nlsq__free(al, s->U);
    nlsq__free(al, s->T);
    nlsq__free(al, s->undet);
}

static int sand_basis(rob *w, sand *s, size_t *rank)
{
    const size_t p = w->p;
    const nlsq_problem *pb = w->pb;
    s->idx = nlsq__calloc(w->al, p, sizeof(size_t));
    s->undet = nlsq__calloc(w->al, p, 1);
    s->U = nlsq__calloc(w->al, 2 * p * p + 2 * p, sizeof(double));
    if (!s->idx || !s->undet || !s->U) return NLSQ_ENOMEM;
    const size_t q = s->q = nlsq__free_params(pb, s->idx);
    double *Ar = s->U + p * p;
    s->ev = Ar + p * p;
    s->Sc = s->ev + p;
    nlsq__free_block(p, w->A, s->idx, q, Ar);
    int rc = q ? nlsq__normal_basis(q, Ar, w->opt->cov_rcond, s->U, s->ev, s->Sc, s->undet, rank)
               : 0;
    if (rc) return rc;
    for (size_t k = 0; k < q; k++) s->r += s->ev[k] > 0;
    const size_t r = s->r;
    s->T = nlsq__calloc(w->al, 2 * q * r + 2 * r * r + r + 1, sizeof(double));
    if (!s->T) return NLSQ_ENOMEM;
    s->M = s->T + q * r;
    s->V = s->M + r * r;
    s->z = s->V + r * r;
    s->tmp = s->z + r;
    for (size_t a = 0; a < q; a++)
        for (size_t k = 0, t = 0; k < q; k++)
            if (s->ev[k] > 0) s->T[a * r + t++] = s->Sc[a] * s->U[a * q + k] / sqrt(s->ev[k]);
    return 0;
}

/* M = factor * T^T (sum_c S_c S_c^T - Bcell) T (without - Bcell when
 * !sub_cells: the wild bootstrap's), negative eigenvalues set to 0. */
static int sand_meat(const rob *w, sand *s, double factor, int sub_cells)
{
    const size_t p = w->p, q = s->q, r = s->r;
    double *M = s->M, *T = s->T;
    memset(M, 0, r * r * sizeof(double));
    for (size_t c = 0; c < w->cl->n_clusters; c++) {
        if (!w->used[c]) continue;
        const double *Sc = w->S + c * p;
        for (size_t t = 0; t < r; t++) {
            double v = 0.0;
            for (size_t a = 0; a < q; a++) v += T[a * r + t] * Sc[s->idx[a]];
            s->z[t] = v;
        }
        for (size_t t = 0; t < r; t++)
            for (size_t u = 0; u < r; u++) M[t * r + u] += s->z[t] * s->z[u];
    }
    for (size_t a = 0; a < q; a++)          /* tmp = Bcell T */
        for (size_t t = 0; t < r; t++) {
            double v = 0.0;
            for (size_t b = 0; b < q; b++) v += w->Bcell[s->idx[a] * p + s->idx[b]] * T[b * r + t];
            s->tmp[a * r + t] = v;
        }
    for (size_t t = 0; t < r; t++)
        for (size_t u = 0; u < r; u++) {
            double v = 0.0;
            for (size_t a = 0; a < q; a++) v += T[a * r + t] * s->tmp[a * r + u];
            M[t * r + u] = (M[t * r + u] - (sub_cells ? v : 0.0)) * factor;
        }
    for (size_t t = 0; t < r; t++)      /* exactly symmetric for the eigensolver */
        for (size_t u = 0; u < t; u++) M[t * r + u] = M[u * r + t] = 0.5 * (M[t * r + u] + M[u * r + t]);
    double *V = s->V;
    memcpy(V, M, r * r * sizeof(double));
    int info = r ? nlsq__la_sym_eigen(r, V, s->z) : 0;
    if (info) return info == NLSQ__LA_NOMEM ? NLSQ_ENOMEM : NLSQ_ESINGULAR;
    for (size_t t = 0; t < r; t++)
        for (size_t u = 0; u < r; u++) {
            double v = 0.0;
            for (size_t e = 0; e < r; e++)
                if (s->z[e] > 0) v += V[t * r + e] * s->z[e] * V[u * r + e];
            M[t * r + u] = v;
        }
    return 0;
}

/* cov = T M T^T on the non-fixed parameters, 0 on the fixed ones, and
 * +INFINITY on the diagonal of those the loading rule made undetermined. */
static void sand_cov(const rob *w, const sand *s, double *cov)
{
    const size_t p = w->p, q = s->q, r = s->r;
    memset(cov, 0, p * p * sizeof(double));
    for (size_t a = 0; a < q; a++)          /* tmp = T M */
        for (size_t u = 0; u < r; u++) {
            double v = 0.0;
            for (size_t t = 0; t < r; t++) v += s->T[a * r + t] * s->M[t * r + u];
            s->tmp[a * r + u] = v;
        }
    for (size_t a = 0; a < q; a++)
        for (size_t b = 0; b <= a; b++) {
            double v = 0.0;
            for (size_t u = 0; u < r; u++) v += s->tmp[a * r + u] * s->T[b * r + u];
            cov[s->idx[a] * p + s->idx[b]] = cov[s->idx[b] * p + s->idx[a]] = v;
        }
    for (size_t a = 0; a < q; a++)
        if (s->undet[a]) cov[s->idx[a] * p + s->idx[a]] = INFINITY;
}

/* The covariance from the pass's sums: the sandwich, then the flags; with
 * cov_wild also the same without the cell term, on the same basis (its
 * flags not reported in res). */
static int rob_covariance(rob *w, double factor, const double *x, double *cov, double *cov_wild,
                          nlsq_result *res)
{
    size_t rank = 0;
    sand sw;
    memset(&sw, 0, sizeof sw);
    int rc = sand_basis(w, &sw, &rank);
    for (int wild = 0; !rc && wild <= (cov_wild != NULL); wild++) {
        double *c = wild ? cov_wild : cov;
        rc = sand_meat(w, &sw, factor, !wild);
        if (!rc) {
            sand_cov(w, &sw, c);
            rc = nlsq__flag_covariance(w->pb, w->al, x, c, rank, wild ? NULL : res);
        }
    }
    sand_free(w->al, &sw);
    return rc;
}

static int rob_pass(rob *w, const double *x)
{
    const size_t m = w->pb->n_rows;
    nlsq__calls_begin(&w->calls);
    int rc = nlsq__calls_prepare(&w->calls, x);
    if (rc) return rc;
    for (size_t row = 0; row < m;) {
        size_t n = m - row < w->chunk ? m - row : w->chunk;
        long got = rob_chunk(w, x, row, n);
        if (got < 0) return (int)got;
        row += (size_t)got;
    }
    return 0;
}

static int robust_run(const nlsq_problem *pb, const nlsq_options *opt_in,
                      const nlsq_clusters *cl, const double *x, double *cov, double *cov_wild,
                      nlsq_result *res)
{
    nlsq_options defaults;
    const nlsq_options *opt;
    int rc0 = nlsq__begin(pb, opt_in, &defaults, &opt, x && cov && cl, "x, cov or clusters", x, res);
    if (rc0) return rc0;
    if (!cl->ids || cl->n_clusters < 2)
        return nlsq__finish(res, NLSQ_EINVAL, "clusters: need an ids callback and n_clusters >= 2");
    if (opt->dist.reduce)
        return nlsq__finish(res, NLSQ_ENOTIMPL, "the robust covariance runs in one process");
    rob w;
    memset(&w, 0, sizeof w);
    w.pb = pb;
    w.opt = opt;
    w.al = &opt->allocator;
    w.cl = cl;
    w.p = pb->n_params;
    w.chunk = opt->chunk_rows ? opt->chunk_rows : 4096;
    if (w.chunk > pb->n_rows) w.chunk = pb->n_rows;
    const size_t p = w.p;
    int rc = rob_alloc(&w);
    if (rc) {
        rob_free(&w);
        return nlsq__finish(res, rc, "cannot allocate the robust covariance "
                            "workspace (%zu clusters x %zu parameters)", cl->n_clusters, p);
    }
    rc = rob_pass(&w, x);
    int status;
    if (rc) {
        status = nlsq__finish(res, rc, "robust covariance pass failed (row %zu)", w.bad_row);
        nlsq__calls_settle(&w.calls);
        nlsq__calls_report(&w.calls, res);
        goto out;
    }
    for (size_t a = 0; a < p; a++)       /* A was summed over the k x k blocks: full already */
        for (size_t b = 0; b < a; b++) w.A[a * p + b] = w.A[b * p + a];
    size_t G = 0;
    for (size_t c = 0; c < cl->n_clusters; c++) G += w.used[c];
    double n = (double)w.n_obs, dof = nlsq__dof(pb, w.n_obs);
    double factor = G > 1 && dof > 0 ? (double)G / (double)(G - 1) * (n - 1.0) / dof : NAN;
    if (!isfinite(factor)) {
        status = nlsq__finish(res, NLSQ_EINVAL, "robust covariance: needs more observations than "
                              "free parameters and two clusters with rows (%zu observations, "
                              "%zu clusters with rows)", w.n_obs, G);
        goto out;
    }
    status = nlsq__finish(res, 0, "robust covariance computed at x (%zu clusters)", G);
    rc = rob_covariance(&w, factor, x, cov, cov_wild, res);
    if (rc == NLSQ_ENOMEM) {
        status = nlsq__finish(res, rc, "robust covariance: out of memory forming the sandwich "
                              "(%zu parameters)", p);
        goto out;
    } else if (rc) {
        status = nlsq__finish(res, rc, "robust covariance: the sandwich's eigensolver failed");
        goto out;
    }
    if (res) {
        res->cost = w.cost;
        res->n_jac = 1;
        nlsq__result_dof(res, pb, w.n_obs, w.cost);
    }
out:
    rob_free(&w);
    return status;
}

int nlsq_covariance_robust(const nlsq_problem *pb, const nlsq_options *opt,
                           const nlsq_clusters *cl, const double *x, double *cov,
                           nlsq_result *res)
{
    return robust_run(pb, opt, cl, x, cov, NULL, res);
}

/* What a wild bootstrap whose row weight is w_a + w_b (E w^2 = 1, the
 * clusters' weights independent) reproduces: E[(sum_i m_i g_i)(...)^T] =
 * sum_c S_c S_c^T, the cells of two-cluster rows counted twice where the
 * sandwich counts them once (bootstrap.c); from the sandwich's own pass. */
int nlsq__covariance_robust_wild(const nlsq_problem *pb, const nlsq_options *opt,
                                 const nlsq_clusters *cl, const double *x, double *cov,
                                 double *cov_wild, nlsq_result *res)
{
    return robust_run(pb, opt, cl, x, cov, cov_wild, res);
}
