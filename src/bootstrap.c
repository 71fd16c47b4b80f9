/* bootstrap.c - the distribution of the profile statistic at a held point,
 * by a wild (cluster) bootstrap: the threshold of a test-inversion interval.
 *
 * Rule (nlsq.h, nlsq_profile_bootstrap; docs/api.md "Bootstrap threshold"):
 * the profile interval at K sigma is the set of t where a test of
 * H0: x_j = t accepts.  Its statistic D(t) = 2 (C_j(t) - C_min) / s^2 is
 * asymptotically chi2_1 (times V_rob / V_mod under correlated errors), but
 * where the model is far from linear over the interval (the XPCS shear
 * valley) its distribution is not, and a threshold from the asymptotics
 * can over-cover (docs/uncertainties.md "A test inversion").  Its own distribution under H0 is drawn here from data made
 * at the held point x_h (H0's restricted fit: the test's null, as a score
 * or LR test estimates its nuisance under H0):
 *   y*_i = f_i(x_h) + m_i e_i,   e = y - f(x_h), the restricted residuals,
 * in residual form r*_i(x) = r_i(x) + (m_i - 1) r_i(x_h) (r_i = +-(f_i - y_i)
 * / sigma_i: either sign gives the same).  The Jacobian is the problem's.
 * The weights: m_i = w_(id_a) (+ w_(id_b) for a row of two clusters), w
 * Rademacher per cluster, or per row without clusters: the replicate's
 * errors keep every row's scale and the correlation inside a cluster, and
 * rows of different clusters stay independent.  With two clusters per row
 * E[m_i m_k] is the number of clusters rows i and k share: pairs that share
 * one are reproduced, but a row's own variance comes twice (E m_i^2 = 2)
 * where the sandwich counts it once.  So D* is too wide by V_wild / V_rob
 * (nlsq__covariance_robust_wild: the sandwich without the subtracted cells,
 * from the sandwich's own pass), to
 * first order, which kappa_j = V_rob,jj / V_wild,jj undoes (about 1/2 for
 * independent errors, c / (c + 1) when the clusters inflate the variance c
 * times).  D* uses the fit's s^2, not the replicate's (which the weights
 * inflate as well).
 * Each replicate's D* is found the way nlsq_profile_test finds the data's
 * D (test_held below): the replicate's minimum by a free solve from x_h
 * (its truth), then the held cost at x_j = t by the same two ways from
 * that minimum, the path and the jump.  A bootstrap must draw the
 * statistic as it is computed: a single held solve from x_h (the first
 * design) is not how D is found, and on the curved XPCS shear valley it
 * stops above the held minimum that the path from the replicate's own fit
 * reaches (corrprofile seeds 9 and 65, gamma_dot_0 held at the truth: on 9
 * and 13 of 40 replicates, by up to 50 in cost; the free minima the same on
 * 79 of 80), so D* was larger than D's law: the 1-sigma quantiles are now
 * 0.63 of those (median over 100 seeds), the coverage 82 -> 62 %
 * (docs/uncertainties.md "A test inversion").
 * The weights come from a counter hash of (seed, b, cluster): the same at
 * every t, so the threshold moves smoothly along the profile.
 */
#include "nlsq_internal.h"
#include "nlsq_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NLSQ__BOOT_CACHE_ROWS ((size_t)1 << 23)

typedef struct boot {
    const nlsq_problem *pb;     /* the caller's */
    const nlsq_clusters *cl;    /* NULL: rows */
    const double *xh;           /* the held point: the replicates' truth */
    const double *rh_all;       /* n_rows residuals at xh, or NULL: computed per chunk */
    const signed char *m1_all;  /* n_rows m_i - 1 of replicate b (with rh_all), or NULL */
    double *wc;                 /* n_clusters: replicate b's cluster weights (with cl) */
    uint64_t seed;
    size_t b;                   /* the replicate */
    size_t user_bytes;          /* the caller's scratch, rounded up to doubles */
    size_t chunk;
} boot;

/* Rademacher weight of cluster (or row) c in replicate b. */
static double weight(const boot *B, size_t c)
{
    uint64_t st = (B->seed ^ (UINT64_C(0xD1B54A32D192ED03) * (uint64_t)(B->b + 1))) +
                  UINT64_C(0x9E3779B97F4A7C15) * (uint64_t)c;
    return nlsq__splitmix64(&st) >> 63 ? 1.0 : -1.0;
}

/* m_i of a row of clusters a and b (b NLSQ_NO_CLUSTER: a alone) in
 * the replicate B->b; NaN for an id out of range (the callback's error). */
static double row_weight(const boot *B, size_t a, size_t b)
{
    const size_t G = B->cl->n_clusters;
    if (a >= G || (b != NLSQ_NO_CLUSTER && b >= G)) return NAN;
    return b != NLSQ_NO_CLUSTER && b != a ? B->wc[a] + B->wc[b] : B->wc[a];
}

/* Replicate B->b's m_i - 1 of rows row0 .. row0 + n - 1 into m1 (-3 to 1:
 * exact, so a row is the same whether its multiplier was cached or formed
 * here); ida and idb hold n cluster ids. */
static int boot_m1(const boot *B, size_t row0, size_t n, signed char *m1, size_t *ida,
                   size_t *idb)
{
    if (!B->cl) {
        for (size_t i = 0; i < n; i++) m1[i] = (signed char)(weight(B, row0 + i) - 1.0);
        return 0;
    }
    if (B->cl->ids(B->cl->ctx, row0, n, ida, idb) != 0) return NLSQ_ECALLBACK;
    for (size_t i = 0; i < n; i++) {
        double m = row_weight(B, ida[i], idb[i]);
        if (isnan(m)) return NLSQ_ECALLBACK;
        m1[i] = (signed char)(m - 1.0);
    }
    return 0;
}

/* The replicate's rows: the caller's at x, plus (m_i - 1) times its
 * residuals at x_h.  Without the caches both are formed here, unprepared,
 * in this worker's scratch: rh, then the ids, then the multipliers. */
static int boot_eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                     const nlsq_eval_env *env)
{
    const boot *B = ctx;
    const nlsq_problem *pb = B->pb;
    nlsq_eval_env e = *env;
    char *mine = (char *)env->scratch + B->user_bytes;
    e.scratch = pb->scratch_bytes ? env->scratch : NULL;
    e.scratch_bytes = pb->scratch_bytes;
    int rc = pb->eval(pb->ctx, x, row0, n, r, J, &e);
    if (rc) return rc;
    const double *rh = B->rh_all ? B->rh_all + row0 : (const double *)mine;
    const signed char *m1 = B->m1_all ? B->m1_all + row0 : NULL;
    if (!B->rh_all) {
        e.at_prepared = 0;
        e.state = NULL;
        e.n_obs = NULL;
        rc = pb->eval(pb->ctx, B->xh, row0, n, (double *)mine, NULL, &e);
        if (rc) return rc;
    }
    if (!m1) {
        size_t *ida = (size_t *)(mine + B->chunk * sizeof(double));
        signed char *m1_here = (signed char *)(ida + 2 * B->chunk);
        rc = boot_m1(B, row0, n, m1_here, ida, ida + B->chunk);
        if (rc) return rc;
        m1 = m1_here;
    }
    for (size_t i = 0; i < n; i++) r[i] += (double)m1[i] * rh[i];
    return 0;
}

/* The residuals at xh of all rows into rh (one pass, prepared at xh). */
static int boot_cache(const nlsq_problem *pb, const nlsq_allocator *al, size_t chunk,
                      const double *xh, double *rh)
{
    nlsq__calls calls;
    int rc = nlsq__calls_init(&calls, pb, al, 1);
    if (!rc) {
        nlsq__calls_begin(&calls);
        rc = nlsq__calls_prepare(&calls, xh);
    }
    for (size_t row = 0; !rc && row < pb->n_rows; row += chunk) {
        size_t n = pb->n_rows - row < chunk ? pb->n_rows - row : chunk;
        rc = nlsq__calls_eval(&calls, 0, 1, xh, row, n, rh + row, NULL, NULL);
    }
    nlsq__calls_free(&calls);
    return rc;
}

/* Replicate b's m_i - 1 of every row into m1.  Without it every
 * evaluation asks the clusters' ids of its rows again, a fifth of a
 * replicate's time on the XPCS model. */
static int boot_multipliers(const boot *B, size_t n_rows, signed char *m1)
{
    enum { PIECE = 256 };
    size_t ida[PIECE], idb[PIECE];
    int rc = 0;
    for (size_t row = 0; !rc && row < n_rows; row += PIECE) {
        size_t n = n_rows - row < PIECE ? n_rows - row : PIECE;
        rc = boot_m1(B, row, n, m1 + row, ida, idb);
    }
    return rc;
}

/* The caller's prepare and pattern, with the caller's ctx. */
static int boot_prepare(void *ctx, const double *x, void *state, char *msg, size_t msg_size)
{
    const boot *B = ctx;
    return B->pb->prepare(B->pb->ctx, x, state, msg, msg_size);
}

static size_t boot_pattern(void *ctx, size_t row0, size_t nrows, size_t *cols, size_t *k)
{
    const boot *B = ctx;
    return B->pb->pattern(B->pb->ctx, row0, nrows, cols, k);
}

/* The chunk the solves will use (the engine's rule without a memory
 * budget, which can only lower it): the replicate's scratch is sized by it. */
static size_t boot_chunk(const nlsq_options *opt, size_t p, size_t m)
{
    size_t chunk = opt->chunk_rows ? opt->chunk_rows : nlsq__default_chunk(p);
    return chunk > m ? m : chunk;
}

/* opt for the solves here: no checkpoints or progress, and ftol such that
 * costs about C_min = s^2 dof / 2 are good to 1e-3 of s^2 / 2, D's unit
 * (as nlsq_profile's). */
static nlsq_options solve_options(const nlsq_options *opt, size_t n_rows)
{
    nlsq_options o = *opt;
    o.checkpoint_path = NULL;
    o.progress = NULL;
    double ftol = 1e-3 / (double)(n_rows > 1 ? n_rows : 1);
    if (ftol < 1e-14) ftol = 1e-14;
    if (ftol < o.ftol) o.ftol = ftol;
    return o;
}

/* pb's bounds into lo, hi (p each; +-INFINITY where it has none), x_j held
 * at t. */
static void held_bounds(const nlsq_problem *pb, size_t j, double t, double *lo, double *hi)
{
    for (size_t k = 0; k < pb->n_params; k++) {
        lo[k] = pb->lower ? pb->lower[k] : -INFINITY;
        hi[k] = pb->upper ? pb->upper[k] : INFINITY;
    }
    lo[j] = hi[j] = t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* kappa_j = V_rob,jj / V_wild,jj at x_h (1 without two-cluster rows: the
 * two agree), or the median of the free parameters' ratios where j has
 * none; 1 when none has. */
static int boot_kappa(const nlsq_problem *pb, const nlsq_options *opt, const nlsq_clusters *cl,
                      const double *xh, size_t j, double *kappa)
{
    const size_t p = pb->n_params;
    const nlsq_allocator *al = &opt->allocator;
    *kappa = 1.0;
    if (!cl) return 0;
    double *mem = nlsq__calloc(al, 2 * p * p + p, sizeof(double));
    if (!mem) return NLSQ_ENOMEM;
    double *vr = mem, *vw = mem + p * p, *q = mem + 2 * p * p;
    int rc = nlsq__covariance_robust_wild(pb, opt, cl, xh, vr, vw, NULL);
    if (!rc) {
        size_t n = 0;
        double own = NAN;
        for (size_t k = 0; k < p; k++) {
            double v = vr[k * p + k] / vw[k * p + k];
            if (!(isfinite(v) && v > 0)) continue;
            if (k == j) own = v;
            q[n++] = v;
        }
        if (isfinite(own)) {
            *kappa = own;
        } else if (n > 0) {
            qsort(q, n, sizeof *q, cmp_double);
            *kappa = n % 2 ? q[n / 2] : 0.5 * (q[n / 2 - 1] + q[n / 2]);
        }
    }
    nlsq__free(al, mem);
    return rc;
}

/* The held solve at x_j = t, the lower cost of two ways there (into x):
 * along the profile path from x_hat in NLSQ__TEST_STEPS steps, each held
 * solve started from the last one moved along the path's tangent (the
 * covariance's Cov_kj / Cov_jj first, then the secant of the last two): a
 * single step from x_hat can land where a curved valley's floor stops the
 * solve (the XPCS shear valley: D = 3126 there against D < 1 on the path),
 * a probe at 1 % of the way first where the covariance gives no tangent;
 * and from x_hat with x_j = t alone. */
#define NLSQ__TEST_STEPS 4

typedef struct held_path {
    nlsq_problem held;         /* pb with x_j held (lo, hi) */
    const nlsq_options *o;
    double *lo, *hi, *tg;      /* p each */
    size_t j, *solves;
} held_path;

/* One LM solve from x (into x), counted in *solves: r its result, cov (may
 * be NULL) its covariance, NaN where the solve gives none (a replicate's
 * buffer is reused).  0, or the solve's error: STALLED is a usable cost, as
 * in profile.c. */
static int lm_solve(const nlsq_problem *pb, const nlsq_options *o, double *x, double *cov,
                    nlsq_result *r, size_t *solves)
{
    for (size_t k = 0; cov && k < pb->n_params * pb->n_params; k++) cov[k] = NAN;
    memset(r, 0, sizeof *r);
    r->covariance = cov;
    int st = nlsq_lm(pb, o, x, r);
    ++*solves;
    return st < 0 && st != NLSQ_STALLED ? st : 0;
}

static int held_solve(held_path *H, double t, double *x, double *cost)
{
    H->lo[H->j] = H->hi[H->j] = x[H->j] = t;
    nlsq_result r;
    int rc = lm_solve(&H->held, H->o, x, NULL, &r, H->solves);
    if (!rc) *cost = r.cost;
    return rc;
}

static int test_held(held_path *H, const double *x_hat, const double *cov, double t, double *x,
                     double *x2, double *cost)
{
    const size_t p = H->held.n_params, j = H->j;
    const double cjj = cov[j * p + j], x0 = x_hat[j];
    const int tangent = isfinite(cjj) && cjj > 0;
    for (size_t k = 0; k < p; k++) {
        double v = cov[k * p + j] / cjj;
        H->tg[k] = tangent && isfinite(v) ? v : 0.0;
    }
    memcpy(x, x_hat, p * sizeof(double));
    double c1 = INFINITY, c2 = INFINITY, t_prev = x0;
    int rc = 0;
    /* without a tangent (x_j undetermined at x_hat) a probe gives the first
     * secant, as in nlsq_profile: 1 % of its first step 0.1 max(|x_j|,
     * 1e-3), at most 1 % of the way (the XPCS shear valley is that narrow:
     * gamma_dot_0 + gamma_dot_offset fixed to 1 % of either) */
    const double probe = fmin(1e-3 * fmax(fabs(x0), 1e-3), 0.01 * fabs(t - x0));
    for (int step = tangent; step <= NLSQ__TEST_STEPS && !rc; step++) {
        double tk = step == NLSQ__TEST_STEPS ? t
                    : step ? x0 + (t - x0) * step / NLSQ__TEST_STEPS
                           : x0 + (t > x0 ? probe : -probe);
        memcpy(x2, x, p * sizeof(double));   /* the last solution: the next secant's base */
        for (size_t k = 0; k < p; k++) {
            if (k == j || H->lo[k] == H->hi[k]) continue;
            double v = x[k] + H->tg[k] * (tk - t_prev);
            x[k] = v < H->lo[k] ? H->lo[k] : v > H->hi[k] ? H->hi[k] : v;
        }
        rc = held_solve(H, tk, x, &c1);
        for (size_t k = 0; !rc && k < p && tk != t_prev; k++)
            H->tg[k] = (x[k] - x2[k]) / (tk - t_prev);
        t_prev = tk;
    }
    if (!rc) {
        memcpy(x2, x_hat, p * sizeof(double));
        rc = held_solve(H, t, x2, &c2);
    }
    if (!rc && c2 < c1) memcpy(x, x2, p * sizeof(double));
    *cost = c1 < c2 ? c1 : c2;
    return rc;
}

/* The replicates' workspace: bounds of the held problem, the work points,
 * the path's tangent, the replicate's covariance, the cluster weights and,
 * when it fits, the residuals at xh. */
typedef struct boot_mem {
    double *lo, *hi, *x, *x2, *xm, *tg, *cov, *wc, *rh;
    signed char *m1;
} boot_mem;

/* One replicate: D*_b (before kappa), found as nlsq_profile_test finds the
 * data's D: the free solve from x_h (the replicate's truth) gives C*_min and
 * its covariance; C*_j(t) is the lowest cost of test_held's two ways to
 * x_j = t from that minimum (the path, and x_j = t alone) and of a held
 * solve from x_h itself; where that ends below C*_min, the free solve again
 * from there.  The third way is the first design's: alone it stops high on
 * a curved valley, but where the path ends on the XPCS shear history's
 * floor it does not (beta held on the corrprofile files without it: D* in
 * the thousands on up to a third of a seed's replicates), and D measures
 * the held minimum, so the lowest cost found is the best estimate of it. */
static int replicate(const nlsq_problem *rp, held_path *H, const nlsq_options *o_full,
                     const double *xh, boot_mem *bm, double s2, double *d)
{
    const size_t p = rp->n_params;
    nlsq_result r;
    memcpy(bm->xm, xh, p * sizeof(double));
    int rc = lm_solve(rp, o_full, bm->xm, bm->cov, &r, H->solves);
    if (rc) return rc;
    double c_min = r.cost, c_held;
    rc = test_held(H, bm->xm, bm->cov, xh[H->j], bm->x, bm->x2, &c_held);
    double c3 = INFINITY;
    if (!rc) {
        memcpy(bm->x2, xh, p * sizeof(double));
        rc = held_solve(H, xh[H->j], bm->x2, &c3);
    }
    if (rc) return rc;
    if (c3 < c_held) {
        c_held = c3;
        memcpy(bm->x, bm->x2, p * sizeof(double));
    }
    if (c_held < c_min) {
        rc = lm_solve(rp, o_full, bm->x, NULL, &r, H->solves);
        if (rc) return rc;
        if (r.cost < c_min) c_min = r.cost;
    }
    double dd = 2.0 * (c_held - c_min) / s2;
    *d = dd > 0 ? dd : 0.0;
    return 0;
}

static void boot_mem_free(const nlsq_allocator *al, boot_mem *bm)
{
    nlsq__free(al, bm->lo);
    nlsq__free(al, bm->wc);
    nlsq__free(al, bm->rh);
    nlsq__free(al, bm->m1);
}

static int boot_mem_alloc(const nlsq_allocator *al, const nlsq_problem *pb,
                          const nlsq_clusters *cl, boot_mem *bm)
{
    const size_t p = pb->n_params;
    memset(bm, 0, sizeof *bm);
    bm->lo = nlsq__calloc(al, 6 * p + p * p, sizeof(double));
    if (!bm->lo) return NLSQ_ENOMEM;
    bm->hi = bm->lo + p;
    bm->x = bm->hi + p;
    bm->x2 = bm->x + p;
    bm->xm = bm->x2 + p;
    bm->tg = bm->xm + p;
    bm->cov = bm->tg + p;
    if (cl && !(bm->wc = nlsq__calloc(al, cl->n_clusters, sizeof(double)))) return NLSQ_ENOMEM;
    /* a cache of 9 bytes a row up to NLSQ__BOOT_CACHE_ROWS rows (72 MiB):
     * the residuals at xh and a replicate's multipliers; beyond that (or
     * when it cannot be had) every chunk evaluates its rows at xh again and
     * forms the multipliers again: memory stays bounded by the chunk */
    if (pb->n_rows <= NLSQ__BOOT_CACHE_ROWS) {
        bm->rh = nlsq__calloc(al, pb->n_rows, sizeof(double));
        if (bm->rh) bm->m1 = nlsq__calloc(al, pb->n_rows, 1);
    }
    return 0;
}

int nlsq_profile_bootstrap(const nlsq_problem *pb, const nlsq_options *opt_in,
                           const nlsq_profile_boot *bo, const double *x_held, size_t j,
                           double *dstar, double *kappa, size_t *n_solves)
{
    nlsq_options defaults;
    const nlsq_options *opt;
    int rc = nlsq__begin(pb, opt_in, &defaults, &opt, bo && x_held && dstar,
                         "bo, x_held or dstar", x_held, NULL);
    if (rc) return rc;
    const size_t p = pb->n_params;
    const nlsq_clusters *cl = bo->clusters;
    if (j >= p || bo->n_boot < 2 || !(bo->s2 > 0) || !isfinite(bo->s2)) return NLSQ_EINVAL;
    if (pb->lower && pb->upper && pb->lower[j] == pb->upper[j]) return NLSQ_EINVAL;
    if (cl && (!cl->ids || cl->n_clusters < 2)) return NLSQ_EINVAL;
    if (opt->dist.reduce) return NLSQ_ENOTIMPL;
    const nlsq_allocator *al = &opt->allocator;
    size_t solves = 0;
    double kap = 1.0;
    boot_mem bm;
    rc = boot_mem_alloc(al, pb, cl, &bm);
    if (!rc) rc = boot_kappa(pb, opt, cl, x_held, j, &kap);
    if (rc) {
        boot_mem_free(al, &bm);
        return rc;
    }
    boot B = {.pb = pb, .cl = cl, .xh = x_held, .wc = bm.wc, .seed = bo->seed,
              .user_bytes = (pb->scratch_bytes + sizeof(double) - 1) / sizeof(double) *
                            sizeof(double),
              .chunk = boot_chunk(opt, p, pb->n_rows)};
    if (bm.rh) {
        rc = boot_cache(pb, al, B.chunk, x_held, bm.rh);
        B.rh_all = bm.rh;
    }
    nlsq_options o = solve_options(opt, pb->n_rows);
    o.chunk_rows = B.chunk;
    /* The held solves at most 10 (p + 1) iterations each, as the
     * profile's (one that creeps along a curved valley longer gives an
     * upper bound, D* too large); the free solve opt's limit (stopped early,
     * its cost makes D* too small) */
    nlsq_options o_held = o;
    const size_t mi = nlsq__max_iter(&o, p), cap = 10 * (p + 1);
    if (mi == 0 || mi > cap) o_held.max_iter = cap;
    nlsq_problem rp = *pb;   /* the replicate: bounds, sizes and names kept */
    rp.eval = boot_eval;
    rp.ctx = &B;
    rp.prepare = pb->prepare ? boot_prepare : NULL;
    rp.pattern = pb->pattern ? boot_pattern : NULL;
    rp.normal = NULL;
    rp.normal_units = 0;
    rp.scratch_bytes = B.user_bytes + B.chunk * (sizeof(double) + 2 * sizeof(size_t) + 1);
    held_bounds(pb, j, x_held[j], bm.lo, bm.hi);
    held_path H = {.held = rp, .o = &o_held, .lo = bm.lo, .hi = bm.hi, .tg = bm.tg, .j = j,
                   .solves = &solves};
    H.held.lower = bm.lo;
    H.held.upper = bm.hi;
    for (size_t b = 0; b < bo->n_boot && !rc; b++) {
        B.b = b;
        for (size_t c = 0; cl && c < cl->n_clusters; c++) bm.wc[c] = weight(&B, c);
        B.m1_all = NULL;
        if (B.rh_all && bm.m1) {
            rc = boot_multipliers(&B, pb->n_rows, bm.m1);
            B.m1_all = bm.m1;
        }
        if (!rc) rc = replicate(&rp, &H, &o, x_held, &bm, bo->s2, &dstar[b]);
        if (!rc) dstar[b] *= kap;
    }
    boot_mem_free(al, &bm);
    if (!rc) qsort(dstar, bo->n_boot, sizeof *dstar, cmp_double);
    if (kappa) *kappa = kap;
    if (n_solves) *n_solves = solves;
    return rc;
}

int nlsq_profile_test(const nlsq_problem *pb, const nlsq_options *opt_in,
                      const nlsq_profile_boot *bo, const double *x_hat, size_t j, double t,
                      nlsq_profile_test_result *out, double *dstar)
{
    nlsq_options defaults;
    const nlsq_options *opt;
    int rc = nlsq__begin(pb, opt_in, &defaults, &opt, bo && x_hat && out && dstar,
                         "bo, x_hat, out or dstar", x_hat, NULL);
    if (rc) return rc;
    const size_t p = pb->n_params;
    memset(out, 0, sizeof *out);
    if (j >= p || !isfinite(t) || (pb->lower && t < pb->lower[j]) ||
        (pb->upper && t > pb->upper[j]) || bo->n_boot < 2)
        return NLSQ_EINVAL;
    if (pb->lower && pb->upper && pb->lower[j] == pb->upper[j]) return NLSQ_EINVAL;
    const nlsq_allocator *al = &opt->allocator;
    double *mem = nlsq__calloc(al, p * p + 6 * p, sizeof(double));
    if (!mem) return NLSQ_ENOMEM;
    double *cov = mem, *lo = cov + p * p, *hi = lo + p, *xm = hi + p, *x = xm + p, *x2 = x + p;
    double *tg = x2 + p;
    nlsq_options o = solve_options(opt, pb->n_rows);
    /* the minimum again to D's precision, its covariance the held start's path */
    memcpy(xm, x_hat, p * sizeof(double));
    nlsq_result r;
    rc = lm_solve(pb, &o, xm, cov, &r, &out->n_solves);
    double s2 = bo->s2 > 0 ? bo->s2 : 2.0 * r.cost / r.dof, c_held = 0.0;
    if (!rc && !(s2 > 0 && isfinite(s2))) rc = NLSQ_EINVAL;
    held_bounds(pb, j, t, lo, hi);
    held_path H = {.held = *pb, .o = &o, .lo = lo, .hi = hi, .tg = tg, .j = j,
                   .solves = &out->n_solves};
    H.held.lower = lo;
    H.held.upper = hi;
    if (!rc) rc = test_held(&H, xm, cov, t, x, x2, &c_held);
    if (!rc) {
        out->cost_min = r.cost;
        out->cost_held = c_held;
        out->s2 = s2;
        out->D = 2.0 * (c_held - r.cost) / s2;
        out->better_min = nlsq__below_min(c_held, r.cost);
        nlsq_profile_boot b2 = *bo;
        b2.s2 = s2;
        size_t ns = 0;
        rc = nlsq_profile_bootstrap(pb, opt, &b2, x, j, dstar, &out->kappa, &ns);
        out->n_solves += ns;
    }
    if (!rc) {
        size_t above = 0;
        for (size_t b = 0; b < bo->n_boot; b++) above += dstar[b] >= out->D;
        out->p_value = (double)(above + 1) / (double)(bo->n_boot + 1);
    }
    nlsq__free(al, mem);
    return rc;
}
