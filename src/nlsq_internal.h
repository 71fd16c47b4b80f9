/*
 * nlsq_internal.h - private interface shared by the solvers.
 *
 * Where things happen:
 *   accumulate.c  the chunk loop: evaluates chunks through the user callback
 *                 (eval_chunk) and forms J^T J, J^T r and the cost (one "pass").
 *   step.c        the damped Gauss-Newton step of one LM iteration (Cholesky).
 *   damping.c     the LM damping / trust-radius / scaling policy.
 *   lm.c          the Levenberg-Marquardt skeleton (named steps, stopping tests).
 *   covariance.c  s^2 (J^T J)^-1, scaled and rank-aware.
 *   adam.c        the mini-batch Adam solver.
 *   adam_policy.c Adam's learning-rate schedule and plateau rule.
 *   hybrid.c      Adam -> LM -> covariance.
 *   checkpoint.c  atomic save/load of solver state.
 *   callback.c    the calls into the problem: prepare once per point, eval with
 *                 each worker's scratch and message buffer, the first failure.
 *   fdjac.c       finite-difference Jacobian blocks for residual-only callbacks.
 *   options.c     defaults, validation, status strings, allocator, logging.
 *   linalg.c      the only calls into BLAS/LAPACK (linalg.h).
 *
 * Nothing here is exported from the shared library.
 */
#ifndef NLSQ_INTERNAL_H
#define NLSQ_INTERNAL_H

#include "nlsq.h"

#include <stdarg.h>
#include <stddef.h>

#define NLSQ_HIDDEN __attribute__((visibility("hidden")))

/* ---------------- allocation (routes through opt->allocator) ------------- */
NLSQ_HIDDEN void *nlsq__malloc(const nlsq_allocator *a, size_t n);
NLSQ_HIDDEN void *nlsq__calloc(const nlsq_allocator *a, size_t count, size_t size);
NLSQ_HIDDEN void  nlsq__free(const nlsq_allocator *a, void *p);
/* count * size with overflow check; returns 0 and sets *out, or -1 */
NLSQ_HIDDEN int   nlsq__mul_size(size_t count, size_t size, size_t *out);

/* ---------------- logging / time ----------------------------------------- */
NLSQ_HIDDEN void   nlsq__log(const nlsq_options *opt, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
NLSQ_HIDDEN double nlsq__now(void);   /* monotonic seconds */

/* ---------------- results ------------------------------------------------- */
/* Degrees of freedom: the observations n_obs (summed by a pass over all
 * rows: nlsq__engine.n_obs) minus the parameters that are not fixed (lower
 * == upper holds a parameter: it is no parameter of the fit).  NAN when
 * n_obs is 0 (no pass over all rows yet). */
static inline size_t nlsq__n_free(const nlsq_problem *pb)
{
    size_t n_fixed = 0;
    for (size_t j = 0; pb->lower && pb->upper && j < pb->n_params; j++)
        n_fixed += pb->lower[j] == pb->upper[j];
    return pb->n_params - n_fixed;
}
static inline double nlsq__dof(const nlsq_problem *pb, size_t n_obs)
{
    return n_obs ? (double)n_obs - (double)nlsq__n_free(pb) : (0.0 / 0.0);
}
/* A held solve's cost below the minimum's by more than rounding (1e-9 of
 * it): the minimum was not one (nlsq_interval's and the bootstrap test's
 * better_min). */
static inline int nlsq__below_min(double cost, double cost_min)
{
    return cost < cost_min - 1e-9 * cost_min;
}
/* res->n_obs, n_free, dof and reduced_chi2 = 2 cost / dof (NAN when dof <= 0
 * or unknown).  res may be NULL. */
NLSQ_HIDDEN void nlsq__result_dof(nlsq_result *res, const nlsq_problem *pb, size_t n_obs,
                                  double cost);
/* Zero a result but keep the caller's covariance pointer. */
NLSQ_HIDDEN void nlsq__result_reset(nlsq_result *res, size_t m);
/* The start of every public entry point: *opt = opt_in, or the defaults (in
 * *defaults) when it is NULL; res reset; a NULL pointer among the `what`
 * arguments (have_args == 0) or an invalid problem/options (x0 validated when
 * not NULL) ends the call with NLSQ_EINVAL.  Returns 0 or that status. */
NLSQ_HIDDEN int nlsq__begin(const nlsq_problem *pb, const nlsq_options *opt_in,
                            nlsq_options *defaults, const nlsq_options **opt, int have_args,
                            const char *what, const double *x0, nlsq_result *res);

/* The LM iteration limit of opt for p parameters: opt->max_iter, or
 * 100 (p + 1) for NLSQ_ITER_AUTO (nlsq.h). */
NLSQ_HIDDEN size_t nlsq__max_iter(const nlsq_options *opt, size_t p);
/* res->seconds and res->phases[0] for a one-phase solve that started at t0. */
NLSQ_HIDDEN void nlsq__single_phase(nlsq_result *res, int phase, double t0);
NLSQ_HIDDEN int  nlsq__finish(nlsq_result *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------- the accumulation engine -------------------------------- */

typedef enum nlsq__pass_mode {
    NLSQ__PASS_COST = 0,     /* residuals only: cost */
    NLSQ__PASS_GRAD = 1,     /* cost and J^T r (no J^T J) */
    NLSQ__PASS_NORMAL = 2    /* cost, J^T r and J^T J */
} nlsq__pass_mode;

/* One pass's sums.  JtJ is p*p, full symmetric (both triangles) on output. */
typedef struct nlsq__acc {
    double *JtJ;            /* p*p, NULL allowed for COST/GRAD passes */
    double *Jtr;            /* p,   NULL allowed for COST passes */
    double cost;            /* 0.5 sum rho(r^2); +INFINITY if any r non-finite */
    size_t n_rows;          /* rows summed */
    size_t n_obs;           /* observations of those rows (nlsq_eval_env.n_obs) */
    size_t n_nonfinite_r;   /* rows with non-finite residual */
    size_t n_nonfinite_J;   /* rows with non-finite Jacobian entries */
    double rmax;            /* max |r_i| over the finite rows (scaled units) */
    /* The QR accumulator (engine qr): R (NLSQ__R_SIZE(p) doubles, NULL: not
     * wanted) gets the column-major (p+1) x (p+1) upper triangular factor of
     * [J r]: R[i + j (p+1)] for i <= j; its last column is Q^T r (rows 0..p-1)
     * and +-||r - J (J^+ r)|| (row p).  has_R: 1 when the pass filled it
     * (a NORMAL pass of a QR engine); JtJ and Jtr are then R^T R and R^T Q^T r. */
    double *R;
    int    has_R;
    int    switched;        /* AUTO switched to QR in this pass, which was then
                               evaluated twice (count it twice) */
} nlsq__acc;

#define NLSQ__R_SIZE(p) (((p) + 1) * ((p) + 1))

/* The calls into the problem (callback.c; nlsq.h "Callbacks"). */
typedef struct nlsq__call_rec nlsq__call_rec;   /* one worker's failure record */
typedef struct nlsq__calls {
    const nlsq_problem *pb;
    const nlsq_allocator *al;
    size_t n_workers;
    size_t stride;            /* doubles of one worker's scratch */
    double *scratch;          /* n_workers * stride, or NULL */
    nlsq__call_rec *recs;     /* n_workers */
    double *x_prepared;       /* p: the point of the last successful prepare */
    int have_prepared;
    void *state;              /* prepare_bytes, or NULL */
    int status;               /* the kept failure: the callback's value (0: none), */
    size_t row;               /* its first row, */
    char msg[NLSQ_CALLBACK_MSG_SIZE];   /* and its message */
} nlsq__calls;
/* Allocate for n_workers workers (0 or NLSQ_ENOMEM; free in any case). */
NLSQ_HIDDEN int  nlsq__calls_init(nlsq__calls *c, const nlsq_problem *pb,
                                  const nlsq_allocator *al, size_t n_workers);
NLSQ_HIDDEN void nlsq__calls_free(nlsq__calls *c);
/* Start of a pass: forget the workers' failures of the last one. */
NLSQ_HIDDEN void nlsq__calls_begin(nlsq__calls *c);
/* prepare at x unless x is the prepared point: 0, NLSQ_ECALLBACK or NLSQ_ENOMEM. */
NLSQ_HIDDEN int  nlsq__calls_prepare(nlsq__calls *c, const double *x);
/* eval of rows [row0, row0 + n) by worker `worker`; at_prepared: x is the
 * pass's (prepared) point; n_obs: NULL, or where the rows' observation count
 * goes (n unless the callback says otherwise).  0, NLSQ_ECALLBACK or
 * NLSQ_ENOMEM. */
NLSQ_HIDDEN int  nlsq__calls_eval(nlsq__calls *c, size_t worker, int at_prepared,
                                  const double *x, size_t row0, size_t n, double *r,
                                  double *J, size_t *n_obs);
/* pb->normal of units [u0, u0 + nu) at the pass's prepared point x by worker
 * `worker` into *out; 0, NLSQ_ECALLBACK or NLSQ_ENOMEM (recorded as eval's
 * failures are, at row u0). */
NLSQ_HIDDEN int  nlsq__calls_normal(nlsq__calls *c, size_t worker, const double *x, size_t u0,
                                    size_t nu, nlsq_normal_sums *out);
/* After a failed pass: keep the failure of the lowest row (status, row, msg). */
NLSQ_HIDDEN void nlsq__calls_settle(nlsq__calls *c);
/* res->callback_status and the message of the kept failure, if any. */
NLSQ_HIDDEN void nlsq__calls_report(const nlsq__calls *c, nlsq_result *res);

/* Finite-difference Jacobians (fdjac.c) for problems with jacobian != 0:
 * scratch for n_workers workers and chunks of at most chunk rows. */
typedef struct nlsq__fd nlsq__fd;
NLSQ_HIDDEN int  nlsq__fd_init(nlsq__fd **out, nlsq__calls *calls, const nlsq_allocator *al,
                               size_t n_workers, size_t chunk);
NLSQ_HIDDEN void nlsq__fd_free(nlsq__fd *fd, const nlsq_allocator *al);
/* The user's eval of rows [row0, row0 + n) into r and, when J is not NULL,
 * the differenced block over the k columns cols[] (NULL: 0 .. k-1) in the
 * problem's layout, using worker `worker`'s scratch; x is the pass's point.
 * Returns 0 or nlsq__calls_eval's code. */
NLSQ_HIDDEN int  nlsq__fd_eval(nlsq__fd *fd, size_t worker, const double *x, size_t row0,
                               size_t n, const size_t *cols, size_t k, double *r, double *J,
                               size_t *n_obs);

typedef struct nlsq__slot nlsq__slot;     /* per-slot partial sums */
typedef struct nlsq__worker nlsq__worker; /* per-thread chunk buffers */

typedef struct nlsq__engine {
    const nlsq_problem *pb;
    const nlsq_options *opt;
    const nlsq_allocator *al;
    size_t p;
    size_t chunk_rows;       /* max rows per callback */
    size_t n_threads;        /* workers actually used (>= 1) */
    size_t n_slots;          /* fixed partition of any row range; independent of threads */
    nlsq__slot *slots;
    nlsq__worker *workers;
    int    loss;
    double f_scale;
    size_t callback_row;     /* first row of a failing callback (diagnostics) */
    nlsq__calls calls;       /* prepare, scratch, the callbacks' failures */
    int    avx2;             /* the CPU runs the AVX2+FMA small-k kernel */
    double *dist_buf;        /* packed sums for opt->dist.reduce, or NULL */
    nlsq__fd *fd;            /* finite differences (pb->jacobian != 0), or NULL */
    int    blas_held;        /* engine_free must end the single-threaded BLAS */
    struct nlsq__pool *pool; /* the n_threads - 1 helper threads of every pass, or NULL */
    int    qr;               /* NORMAL passes fold a QR factor (NLSQ_ACCUM_QR, or
                                AUTO after it switched); never reset by a pass */
    int    accum_auto;       /* NLSQ_ACCUM_AUTO: switch qr on when a NORMAL pass
                                finds J^T J ill-conditioned (nlsq__engine_pass) */
    double *Rsum;            /* NLSQ__R_SIZE(p): the slots' factors merged, or NULL */
    double *auto_work;       /* AUTO: p*p + 3p doubles and p ints for the test */
    size_t n_obs;            /* observations counted by the last pass over all rows
                                (0: none yet); the rows' count, whatever x */
    int    scale_exp;        /* residuals and Jacobian are multiplied by 2^scale_exp
                                as they leave the callback (0: untouched); sums,
                                cost and f_scale are then in scaled units */
} nlsq__engine;

/* Prepare buffers for problem pb under options opt.  Returns 0 or NLSQ_ENOMEM
 * / NLSQ_EINVAL.  pb and opt must outlive the engine. */
NLSQ_HIDDEN int  nlsq__engine_init(nlsq__engine *e, const nlsq_problem *pb,
                                   const nlsq_options *opt);
/* Sum over rows [row_begin, row_end) at x.  Returns 0 or NLSQ_ECALLBACK /
 * NLSQ_ENOMEM.  Non-finite residuals are not an error here: they are counted
 * and make out->cost infinite.  Bitwise identical for any thread count. */
NLSQ_HIDDEN int  nlsq__engine_pass(nlsq__engine *e, const double *x, int mode,
                                   size_t row_begin, size_t row_end, nlsq__acc *out);
NLSQ_HIDDEN void nlsq__engine_free(nlsq__engine *e);
/* The callbacks' failure (status, message) into res: call before freeing. */
static inline void nlsq__engine_report(const nlsq__engine *e, nlsq_result *res)
{
    nlsq__calls_report(&e->calls, res);
}
/* Scale-free arithmetic: after a pass whose largest residual (out->rmax) lies
 * outside [2^-200, 2^200], multiply the engine's scale by the power of two
 * 2^k that brings it to [1, 2) and return k (0: nothing changed; then also
 * when every residual is zero or the pass saw no finite one).  Sums of a
 * later pass are 4^k times the unscaled ones, the cost included; the caller
 * redoes the pass and rescales what it kept from earlier ones. */
NLSQ_HIDDEN int  nlsq__engine_autoscale(nlsq__engine *e, const nlsq__acc *out);
/* Set the engine's scale to 2^k (f_scale follows); 0 gives the caller's
 * units back.  A run resumed from a checkpoint sets the scale it saved. */
NLSQ_HIDDEN void nlsq__engine_set_scale(nlsq__engine *e, int k);
/* The largest |scale_exp| a checkpoint may carry (residuals from the smallest
 * subnormal to DBL_MAX need less than 1100). */
#define NLSQ__SCALE_EXP_MAX 4096

/* Persistent worker threads (pool.c).  create starts up to n_threads
 * threads (fewer when the system refuses: nlsq__pool_size), NLSQ_ENOMEM when
 * it cannot allocate; run calls fn(arg, t) for t = 0 .. n_tasks - 1, task 0
 * on the caller, task t on the same pool thread every run, and returns when
 * all are done; free stops and joins the threads.  One run at a time. */
typedef struct nlsq__pool nlsq__pool;
NLSQ_HIDDEN int    nlsq__pool_create(const nlsq_allocator *al, size_t n_threads, nlsq__pool **out);
NLSQ_HIDDEN size_t nlsq__pool_size(const nlsq__pool *pl);
NLSQ_HIDDEN void   nlsq__pool_run(nlsq__pool *pl, size_t n_tasks, void (*fn)(void *, size_t),
                                  void *arg);
NLSQ_HIDDEN void   nlsq__pool_free(nlsq__pool *pl);

/* BLAS single-threaded while any engine lives (blas_threads.c): begin
 * returns 1 when it must be matched by end(1), end(0) does nothing. */
NLSQ_HIDDEN int  nlsq__blas_single_begin(void);
NLSQ_HIDDEN void nlsq__blas_single_end(int held);

/* ---------------- linear algebra helpers --------------------------------- */

/* Solve (A + lambda * diag(d2)) dx = -g restricted to free[j] != 0 (others get
 * dx = 0).  A is p*p symmetric (full).  With R (a QR engine's factor, see
 * nlsq__acc; NULL: none) the same step is the least-squares solution of
 * [R; sqrt(lambda) D] dx = [-Q^T r; 0] (Householder QR, cond(J), not its
 * square) and A and g are not read.  work: nlsq__step_work(p) doubles.  Raises
 * lambda (reported back) until the factorisation succeeds; returns 0,
 * NLSQ_ENOMEM or NLSQ_ESINGULAR. */
NLSQ_HIDDEN int nlsq__damped_step(size_t p, const double *A, const double *g, const double *R,
                                  const double *d2, const unsigned char *free_,
                                  double *lambda, double *dx, double *work);
NLSQ_HIDDEN size_t nlsq__step_work(size_t p);

/* Rank-aware covariance from A = J^T J (p*p full).  scale is s^2 (1 for
 * absolute sigma).  Writes cov (p*p); returns 0 or an error; *rank set. */
NLSQ_HIDDEN int nlsq__covariance_from_normal(size_t p, const double *A, double scale,
                                             double rcond, const nlsq_allocator *al,
                                             double *cov, size_t *rank);

/* Steps 1-3 of that rule (covariance.c): C = S A S (p*p full A) decomposed
 * into C (eigenvectors, C[j * p + k] = V_jk), w (eigenvalues; 0 for the
 * directions the cut removes), S (p, 0 for a zero column), undet (p: the
 * zero columns and the parameters that load on a cut direction) and *rank.
 * Returns 0 or an error. */
NLSQ_HIDDEN int nlsq__normal_basis(size_t p, const double *A, double rcond, double *C,
                                   double *w, double *S, unsigned char *undet, size_t *rank);

/* The covariance from a factor F (m x q, row-major) with J^T J = F^T F: the SVD of
 * the column-scaled F; the default rcond (0) cuts singular values below
 * q * DBL_EPSILON of the largest (the factor's precision). */
NLSQ_HIDDEN int nlsq__covariance_from_factor(size_t m, size_t q, const double *F, double scale,
                                             double rcond, const nlsq_allocator *al,
                                             double *cov, size_t *rank);

/* The covariance step at a solution x with A = J^T J (p*p full), or the QR
 * factor R when not NULL (nlsq__acc.R; A is then not read), and cost:
 * flags (fixed, at a bound, undetermined), s^2 = 2 cost / dof (nlsq__dof of
 * n_obs observations), the covariance with fixed rows/columns 0 into cov (p*p).  res
 * (may be NULL) gets rank, n_fixed, n_undetermined and the undetermined
 * parameters in its message.
 * Returns 0 or an error. */
NLSQ_HIDDEN int nlsq__covariance_at(const nlsq_problem *pb, const nlsq_options *opt,
                                    const nlsq_allocator *al, const double *x, const double *A,
                                    const double *R, double cost, size_t n_obs, double *cov,
                                    nlsq_result *res);

/* nlsq_covariance_robust into cov, and from the same pass into cov_wild
 * the covariance a wild bootstrap with row weights w_a + w_b reproduces:
 * B = sum_c S_c S_c^T, the cell term of two-cluster rows not subtracted.
 * robust.c. */
NLSQ_HIDDEN int nlsq__covariance_robust_wild(const nlsq_problem *pb, const nlsq_options *opt,
                                             const nlsq_clusters *cl, const double *x,
                                             double *cov, double *cov_wild, nlsq_result *res);
/* The engine's rows per chunk when opt->chunk_rows is 0 (before a memory
 * budget lowers it): 2^17 / p, within [256, 65536].  accumulate.c. */
NLSQ_HIDDEN size_t nlsq__default_chunk(size_t p);

/* The parameters that are not fixed (lower != upper) into idx (p entries):
 * returns their number q.  free_block: A (p*p) over them into Ar (q*q). */
NLSQ_HIDDEN size_t nlsq__free_params(const nlsq_problem *pb, size_t *idx);
NLSQ_HIDDEN void nlsq__free_block(size_t p, const double *A, const size_t *idx, size_t q,
                                  double *Ar);

/* The pieces of nlsq__covariance_at.  Inverse: scale * A^-1 over the
 * non-fixed parameters by the rank rule (fixed rows/columns 0) into cov,
 * *rank set.  Flags: the width rule on a finished covariance (undetermined:
 * +INFINITY / NAN), and res's rank, n_fixed, n_undetermined, message. */
NLSQ_HIDDEN int nlsq__inverse_free(const nlsq_problem *pb, const nlsq_options *opt,
                                   const nlsq_allocator *al, const double *A, const double *R,
                                   double scale, double *cov, size_t *rank);
NLSQ_HIDDEN int nlsq__flag_covariance(const nlsq_problem *pb, const nlsq_allocator *al,
                                      const double *x, double *cov, size_t rank,
                                      nlsq_result *res);

/* ---------------- LM driver (lm.c) ---------------------------------------- */

/* Everything needed to continue an LM run exactly where it stopped: with the
 * same x, this state and the same problem, the next iterations are bitwise
 * those of an uninterrupted run. */
typedef struct nlsq__lm_state {
    size_t iteration;       /* iterations done (accepted or rejected) */
    double lambda, nu;      /* damping and its growth factor */
    double delta;           /* trust radius for ||D dx|| (0: set from step_bound) */
    size_t n_eval, n_jac;   /* passes so far */
    double *d2;             /* p: running max of diag(J^T J) (Moré scaling) */
    int    has_d2;          /* 0: initialise d2 from the first J^T J */
    double initial_cost;    /* scaled units (engine scale_exp) */
    int    scale_exp;       /* the engine scale the state is in (d2, delta and
                               costs scaled by 4^k, 2^k, 4^k); a run starts the
                               engine at it */
    /* not state: who runs it, and what it returned */
    double cost;            /* out: the cost at x when the run ended, in units of
                               scale_exp (INFINITY or NAN: no valid pass) */
    const struct nlsq__hybrid_ctx *hybrid;  /* phase 2 of this hybrid solve (its
                                               checkpoints are hybrid ones), or
                                               NULL: a plain LM run */
} nlsq__lm_state;

/* ---------------- LM damping policy (damping.c) --------------------------- */
NLSQ_HIDDEN double nlsq__scaled_norm(size_t p, const double *d2, const double *v);
/* D^2 = running max of diag(A); the trust radius grows with it. */
NLSQ_HIDDEN void nlsq__damp_scale(size_t p, const double *A, nlsq__lm_state *st);
/* lambda0 and the first trust radius (when the state has none). */
NLSQ_HIDDEN void nlsq__damp_start(nlsq__lm_state *st, const nlsq_options *opt, size_t p,
                                  const double *x);
/* The damped step inside the trust radius; st->lambda set to the lambda used.
 * R: the QR factor or NULL (nlsq__damped_step).  tmp: p doubles, work:
 * nlsq__step_work(p).  0 or the step solver's error. */
NLSQ_HIDDEN int nlsq__damp_step(size_t p, const double *A, const double *g, const double *R,
                                const unsigned char *free_, nlsq__lm_state *st, double *dx,
                                double *tmp, double *work);
/* Trust radius after a trial with gain ratio rho and scaled step length snorm. */
NLSQ_HIDDEN void nlsq__damp_ratio(nlsq__lm_state *st, double ratio, double snorm);
NLSQ_HIDDEN void nlsq__damp_accepted(nlsq__lm_state *st, double ratio);
/* The quadratic model predicts no reduction for the step (pred <= 0: it is
 * too long for the model to be evaluated): the radius shrinks below it. */
NLSQ_HIDDEN void nlsq__damp_unmodelled(nlsq__lm_state *st, double snorm);
/* Raise the damping; 0 when it overflowed (no step left to try). */
NLSQ_HIDDEN int  nlsq__damp_rejected(nlsq__lm_state *st);

/* A covariance computed from J^T J in engine units 2^k (absolute sigma: no
 * s^2 factor to cancel the scale) brought to the caller's: times 4^k. */
NLSQ_HIDDEN void nlsq__unscale_cov(size_t p, int k, double *cov);

/* Run LM on engine e from x until a stop.  st: in/out state (iteration
 * counters continue from it).  Fills res (cost, grad_norm, counters, status,
 * message) and, when res->covariance is set, the covariance.  Returns status. */
NLSQ_HIDDEN int nlsq__lm_run(nlsq__engine *e, const nlsq_options *opt, double *x,
                             nlsq_result *res, nlsq__lm_state *st, double t_start);

/* Write an LM checkpoint (checkpoint.c).  Returns 0, or NLSQ_EIO / NLSQ_ENOMEM
 * with the reason in res (nlsq__finish). */
NLSQ_HIDDEN int nlsq__checkpoint_save_lm(const nlsq__engine *e, const nlsq_options *opt,
                                         const double *x, const nlsq__lm_state *st,
                                         nlsq_result *res);

/* ---------------- full data covariance for curve fits (whiten.c) --------- */
/* L (n*n, allocated from al) with C = L L^T from the lower triangle of C.
 * Returns 0, NLSQ_EINVAL (non-finite, not positive definite) or NLSQ_ENOMEM
 * with a reason in msg. */
NLSQ_HIDDEN int nlsq__whiten_init(const nlsq_allocator *al, size_t n, const double *C,
                                  double **L_out, char *msg, size_t msg_size);
/* r <- L^-1 r (n), and J <- L^-1 J (n x p row-major) when J is not NULL. */
NLSQ_HIDDEN void nlsq__whiten_apply(const double *L, size_t n, size_t p, double *r, double *J);
/* Total sum of squares of y about its generalised mean, in the whitened
 * metric; NAN when scratch cannot be allocated. */
NLSQ_HIDDEN double nlsq__whiten_ss_tot(const nlsq_allocator *al, const double *L, size_t n,
                                       const double *y);

/* ---------------- robust loss -------------------------------------------- */
/* For z = r^2: rho(z), rho'(z), rho''(z) with f_scale applied (scipy's
 * convention: C^2 rho0(z/C^2)). */
NLSQ_HIDDEN void nlsq__loss_eval(int loss, double f_scale, double z,
                                 double *rho, double *d1, double *d2);

/* ======================================================================== */
/* Adam, hybrid and checkpoints (adam.c, hybrid.c, checkpoint.c)            */
/* ======================================================================== */

/* Which public solver a checkpoint belongs to. */
enum { NLSQ__SOLVER_LM = NLSQ_SOLVER_LM, NLSQ__SOLVER_ADAM = NLSQ_SOLVER_ADAM,
       NLSQ__SOLVER_HYBRID = NLSQ_SOLVER_HYBRID };

/* Everything needed to continue an Adam run exactly where it stopped (at an
 * epoch boundary): with this state and the same problem and options, the next
 * epochs are bitwise those of an uninterrupted run.  The vectors share one
 * allocation (nlsq__adam_state_init). */
typedef struct nlsq__adam_state {
    int      started;        /* 0: the start pass has not been done yet */
    size_t   epoch;          /* epochs done */
    uint64_t step;           /* Adam steps done (t of the bias correction) */
    uint64_t rng[4];         /* xoshiro256** state for the next epoch's shuffle */
    double   lr_factor;      /* plateau decay multiplier: 1, 1/2, 1/4, ... */
    size_t   bad_epochs;     /* consecutive epochs without relative progress */
    double   best_est;       /* epoch estimate that made best_x the best point */
    double   ref_est;        /* estimate of the last epoch with progress */
    double   initial_cost;   /* full cost at x0 */
    double   initial_gnorm;  /* max |J^T r| at x0 */
    uint64_t grad_rows;      /* rows through GRAD/NORMAL passes (n_jac = ceil(/m)) */
    uint64_t cost_rows;      /* rows through COST passes (n_eval = ceil(/m)) */
    size_t   n_nonfinite;    /* batches skipped for non-finite values */
    int      scale_exp;      /* the engine scale of the state's costs and moments
                                (set by the start pass; a resumed run starts at it) */
    double   cost;           /* out, not state: full cost at the returned point in
                                the state's units (NAN: unknown) */
    /* the batch plan the state belongs to (checked on resume) */
    uint64_t seed;
    size_t   block_rows, batch_blocks;
    /* p each */
    double  *x;              /* current iterate */
    double  *x0;             /* projected start point */
    double  *m1, *v;         /* Adam moments (normalised units) */
    double  *best_x;         /* best end-of-epoch point by epoch estimate */
} nlsq__adam_state;

NLSQ_HIDDEN int  nlsq__adam_state_init(const nlsq_allocator *al, size_t p, nlsq__adam_state *st);
NLSQ_HIDDEN void nlsq__adam_state_free(const nlsq_allocator *al, nlsq__adam_state *st);

/* Engine for Adam: like nlsq__engine_init, but with chunks of at most
 * adam.batch_rows rows (memory O(batch_rows * p)).  eopt receives a copy of
 * opt that the engine points to: it must outlive the engine. */
NLSQ_HIDDEN int nlsq__adam_engine_init(nlsq__engine *e, nlsq_options *eopt,
                                       const nlsq_problem *pb, const nlsq_options *opt);

typedef struct nlsq__adam_args {
    size_t epoch_cap;        /* NLSQ_MAX_ITER after this many epochs */
    int    solver;           /* NLSQ__SOLVER_ADAM or _HYBRID (checkpoint tag) */
    int    final_mode;       /* pass at the returned point: NLSQ__PASS_COST/GRAD/NORMAL */
    double t_start;
} nlsq__adam_args;

/* Run Adam on engine e from x (st->started == 0) or from st.  On return x is
 * the best point (never worse than the start by full cost) and res holds
 * cost, grad_norm (GRAD/NORMAL final pass), counters, status; res->covariance
 * is filled when set and final_mode is NORMAL. */
NLSQ_HIDDEN int nlsq__adam_run(nlsq__engine *e, const nlsq_options *opt, double *x,
                               nlsq_result *res, nlsq__adam_state *st,
                               const nlsq__adam_args *args);

/* Adam's policy (adam_policy.c): the learning rate of step t (from 1) for
 * an epoch of n_batches batches and plateau factor lr_factor; the plateau
 * counter and decay after an epoch with estimate est; the stop rule checked
 * before each epoch. */
enum { NLSQ__ADAM_GO_ON = 0, NLSQ__ADAM_PLATEAU, NLSQ__ADAM_NO_PROGRESS, NLSQ__ADAM_EPOCH_CAP };
NLSQ_HIDDEN double nlsq__adam_lr(const nlsq_options *opt, size_t n_batches, double lr_factor,
                                 uint64_t t);
NLSQ_HIDDEN void   nlsq__adam_plateau(const nlsq_options *opt, nlsq__adam_state *st, double est);
NLSQ_HIDDEN int    nlsq__adam_stop(const nlsq_options *opt, const nlsq__adam_state *st,
                                   size_t epoch_cap);

/* nlsq_adam, optionally continuing from a loaded state (NULL: fresh). */
NLSQ_HIDDEN int nlsq__adam_solve(const nlsq_problem *pb, const nlsq_options *opt, double *x,
                                 nlsq_result *res, nlsq__adam_state *resume);

/* What a hybrid checkpoint of phase 2 records besides the LM state.
 * nlsq_hybrid runs nlsq__lm_run with lm_state.hybrid pointing here, and
 * nlsq__checkpoint_save_lm then writes a hybrid checkpoint (phase LM). */
typedef struct nlsq__hybrid_ctx {
    const double *x0;        /* p: the hybrid start point (projected) */
    const double *x_lm0;     /* p: where phase 2 started */
    double initial_cost;     /* full cost at x0 (units of scale_exp) */
    double lm0_cost;         /* full cost at x_lm0 (units of scale_exp) */
    int    scale_exp;        /* phase 1's engine scale; phase 2 starts at it */
    nlsq_phase_stats phase1;
    size_t phase1_nonfinite;
} nlsq__hybrid_ctx;

/* A loaded checkpoint (checkpoint.c); vectors in one allocation. */
typedef struct nlsq__ckpt {
    int    solver, phase;    /* NLSQ__SOLVER_*, NLSQ_PHASE_ADAM or NLSQ_PHASE_LM */
    size_t p;
    nlsq__adam_state adam;   /* phase ADAM (started = 1) */
    nlsq__lm_state lm;       /* phase LM; lm.d2 points into the allocation */
    double *x;               /* phase LM: the LM point */
    size_t chunk_rows;       /* engine chunk the state was computed with */
    nlsq__hybrid_ctx hy;     /* solver HYBRID, phase LM (x0, x_lm0 owned here) */
    void  *block;
} nlsq__ckpt;

/* nlsq_hybrid, optionally continuing from a loaded checkpoint (NULL: fresh). */
NLSQ_HIDDEN int nlsq__hybrid_solve(const nlsq_problem *pb, const nlsq_options *opt, double *x,
                                   nlsq_result *res, nlsq__ckpt *resume);

/* Write an Adam (solver ADAM or HYBRID, phase ADAM) checkpoint.  0, or
 * NLSQ_EIO / NLSQ_ENOMEM with the reason in res (nlsq__finish). */
NLSQ_HIDDEN int nlsq__checkpoint_save_adam(const nlsq__engine *e, const nlsq_options *opt,
                                           int solver, const nlsq__adam_state *st,
                                           nlsq_result *res);


#endif
