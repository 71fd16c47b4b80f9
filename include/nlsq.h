/*
 * nlsq.h - memory-bounded nonlinear least squares.
 *
 * Minimise  cost(x) = 0.5 * sum_i rho(r_i(x)^2)  over x in R^p, optionally
 * inside a box lower <= x <= upper, where the m residuals r_i are produced by a
 * user callback over row ranges.  The m x p Jacobian is never stored: the
 * library walks the rows in chunks of at most `chunk_rows` rows, asks the
 * callback for each chunk's residuals and Jacobian rows, and accumulates
 * J^T J (p x p), J^T r (p) and the cost.  Memory is O(threads * chunk_rows * p
 * + p^2) whatever m is.
 *
 * Conventions for every function in this header:
 *  - Ownership: the library never keeps a pointer that the caller passed after
 *    the call returns, and never frees caller memory.  Buffers the caller
 *    provides (x, covariance) are written in place.
 *  - Thread safety: there is no global mutable state.  Distinct calls on
 *    distinct problems/options/results may run concurrently.  One solve uses
 *    up to `n_threads` threads internally and calls `eval` concurrently on
 *    disjoint row ranges when n_threads > 1 (`prepare` on the calling thread
 *    before them: see "Callbacks" above nlsq_problem).
 *  - Errors: every function returns a status code; none calls exit() or
 *    abort(), none prints unless the caller installs a log callback.  On error
 *    x still holds the best point found (the start point if nothing better).
 *
 * License: MIT (see LICENSE).
 */
#ifndef NLSQ_H
#define NLSQ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(NLSQ_SHARED_BUILD)
#define NLSQ_API __declspec(dllexport)
#elif defined(__GNUC__)
#define NLSQ_API __attribute__((visibility("default")))
#else
#define NLSQ_API
#endif

#define NLSQ_VERSION_MAJOR 0
#define NLSQ_VERSION_MINOR 1
#define NLSQ_VERSION_PATCH 0
#define NLSQ_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

/** Solver outcome.  > 0 converged (x is stationary to the tolerances),
 *  0 stopped by a limit (result usable), < 0 error (x is still the best point
 *  found).  NLSQ_STALLED is the one negative code whose result is usable like
 *  NLSQ_MAX_ITER's: the solver could not make progress, x is not claimed
 *  stationary, the covariance is filled when asked for. */
typedef enum nlsq_status {
    NLSQ_CONVERGED_FTOL  = 1,   /**< relative cost reduction below ftol */
    NLSQ_CONVERGED_XTOL  = 2,   /**< relative step below xtol */
    NLSQ_CONVERGED_GTOL  = 3,   /**< scaled (projected) gradient below gtol */
    NLSQ_CONVERGED_ZERO  = 4,   /**< cost is exactly zero (perfect fit) */
    NLSQ_CONVERGED_ADAM  = 5,   /**< Adam stopped on its plateau rule */
    NLSQ_MAX_ITER        = 0,   /**< iteration / epoch / pass limit reached */
    NLSQ_EINVAL          = -1,  /**< invalid problem or options */
    NLSQ_ENOMEM          = -2,  /**< an allocation failed */
    NLSQ_ECALLBACK       = -3,  /**< eval returned nonzero */
    NLSQ_ENONFINITE      = -4,  /**< NaN/Inf residuals or Jacobian that could not be avoided */
    NLSQ_ESINGULAR       = -5,  /**< linear algebra failed beyond recovery */
    NLSQ_EUSER_STOP      = -6,  /**< the progress callback asked to stop */
    NLSQ_EIO             = -7,  /**< checkpoint file could not be written/read */
    NLSQ_ENOTIMPL        = -8,  /**< feature not available in this build */
    NLSQ_ECHECKPOINT     = -9,  /**< checkpoint file invalid or for another problem */
    NLSQ_EDISTRIBUTED    = -10, /**< the distributed reduce (e.g. MPI) failed */
    NLSQ_STALLED         = -11  /**< no step changes x at working precision (or the
                                     damping overflowed) and x is not stationary to
                                     the tolerances: usable, not converged */
} nlsq_status;

/** A static, human-readable sentence for a status code (never NULL). */
NLSQ_API const char *nlsq_status_string(int status);
/** Short symbolic name of a status code, e.g. "CONVERGED_FTOL" (never NULL). */
NLSQ_API const char *nlsq_status_name(int status);

/* ------------------------------------------------------------------------ */
/* Problem                                                                   */
/* ------------------------------------------------------------------------ */

/** The largest message a callback may leave in nlsq_eval_env.msg (and the
 *  prepare callback in its msg), terminating NUL included. */
#define NLSQ_CALLBACK_MSG_SIZE 128

/** What the library hands every eval call besides the rows.  Valid during the
 *  call only; never NULL when the library makes the call. */
typedef struct nlsq_eval_env {
    int         at_prepared; /* 1: x is the point `prepare` last succeeded on (its
                                state is `state`); 0: no prepare, or another
                                point (finite differences' x + h e_j) */
    const void *state;       /* with at_prepared: the prepare_bytes bytes prepare
                                wrote for x (NULL when prepare_bytes is 0);
                                otherwise NULL */
    void       *scratch;     /* this worker's scratch_bytes bytes, aligned for
                                double, NULL when scratch_bytes is 0.  No other
                                call running at the same time sees them; they
                                keep what the worker's previous call left, for
                                the whole solve */
    size_t      scratch_bytes;
    size_t      worker;      /* the calling worker, 0 .. n_threads - 1 */
    char       *msg;         /* msg_size (NLSQ_CALLBACK_MSG_SIZE) bytes, "" on
                                entry: a failing call may write a NUL-terminated
                                line here; the library puts it in res->message */
    size_t      msg_size;
    size_t     *n_obs;       /* the observations the rows carry, for the degrees of
                                freedom (res->n_obs): nrows on entry (one each); a
                                problem whose rows are not one observation each
                                stores their number here: 0 for an excluded row
                                (residual and Jacobian row 0), w for a row that
                                stands for w equal observations (its residual
                                scaled by sqrt(w)).  It must depend on the rows
                                only, not on x.  NULL on the calls whose count
                                is not used (finite differences' points
                                x + h e_j): then write nothing */
} nlsq_eval_env;

/** Rows [row0, row0 + nrows) of the residual vector at parameters x.
 *  r: nrows residuals, always filled.
 *  J: NULL, or nrows x n_params row-major, filled with d r_i / d x_j.
 *     When the problem has a `pattern` callback, J is instead nrows x k
 *     row-major over the k columns that `pattern` returned for this chunk, in
 *     that order.  With jac_col_major set, the same block is stored
 *     column-major: d r_i / d x_(column a) at J[a * nrows + i].
 *  env: the prepared state, this worker's scratch and a message buffer (see
 *     nlsq_eval_env and "Callbacks" in the problem below).
 *  Returns 0, or nonzero to stop the solve: NLSQ_ENOMEM when the callback
 *  could not allocate what it needs (reported as NLSQ_ENOMEM), any other
 *  nonzero value reported as NLSQ_ECALLBACK; the value itself is kept in
 *  res->callback_status and what the call wrote to env->msg in res->message.
 *  nrows never exceeds the chunk size in the options.  With more than one
 *  thread the library calls it concurrently on disjoint row ranges. */
typedef int (*nlsq_eval_fn)(void *ctx, const double *x,
                            size_t row0, size_t nrows,
                            double *r, double *J, const nlsq_eval_env *env);

/** Optional per-point preparation.  Called with a point x before any eval
 *  at x (see "Callbacks" below): writes what every row needs at x (tables,
 *  factorisations) to state (prepare_bytes bytes owned by the library,
 *  aligned for double, NULL when prepare_bytes is 0).  Returns 0, or nonzero
 *  to stop the solve as eval's codes do (msg: msg_size bytes, "" on entry,
 *  for a line on why). */
typedef int (*nlsq_prepare_fn)(void *ctx, const double *x, void *state,
                               char *msg, size_t msg_size);

/** Optional sparse column pattern.  Called with a row range [row0, row0 +
 *  nrows); writes to cols[] the k (1 <= k <= n_params) distinct, ascending
 *  column indices that rows row0 .. row0 + n - 1 may have non-zero Jacobian
 *  entries in, stores k in *k, and returns n, the number of leading rows of the
 *  range the pattern holds for (1 <= n <= nrows).  The library then asks eval
 *  for exactly those n rows with an n x k Jacobian block.  Must be a pure
 *  function of its arguments (it is called again for the same rows, and from
 *  several threads).  Returning 0 or an invalid k is reported as
 *  NLSQ_ECALLBACK. */
typedef size_t (*nlsq_pattern_fn)(void *ctx, size_t row0, size_t nrows,
                                  size_t *cols, size_t *k);

/** What an nlsq_normal_fn adds up for its rows (docs/api.md "Normal-equation
 *  callback").  JtJ, Jtr: the library's, zero on entry; the other members
 *  0 on entry, set by the callback. */
typedef struct nlsq_normal_sums {
    double *JtJ;    /* n_params x n_params row-major: add the upper triangle
                       (row <= column) of J^T J of the rows; the rest is not read */
    double *Jtr;    /* n_params: add J^T r */
    double  rr;     /* sum of r_i^2 over the rows */
    double  rmax;   /* largest |r_i| */
    size_t  n_obs;  /* the rows' observations, as eval's env->n_obs counts them */
} nlsq_normal_sums;

/** Optional: the normal-equation sums of a group of rows, formed by the
 *  problem (a model whose rows share factors forms J^T J from them instead of
 *  handing out rows).  The rows are seen as n_rows / normal_units groups of
 *  normal_units rows; unit u stands for the rows u, u + normal_units,
 *  u + 2 normal_units, ...  The call covers units [u0, u0 + nu) (nu never
 *  exceeds the chunk size) and must add exactly what eval's r and J of those
 *  rows give, up to rounding (same point, same env->state: it is called
 *  after prepare like eval).  Used instead of eval on the Levenberg-Marquardt
 *  Jacobian passes of plain least squares (linear loss, normal-equation
 *  accumulator, analytic Jacobian, one process, residuals not scaled up
 *  because they were below ~2^-200); every other pass, and a call whose
 *  sums are not finite, goes through eval.  Returns 0 or nonzero
 *  as eval does.  Called concurrently on disjoint unit ranges. */
typedef int (*nlsq_normal_fn)(void *ctx, const double *x, size_t u0, size_t nu,
                              nlsq_normal_sums *out, const nlsq_eval_env *env);

/** Who forms the Jacobian (nlsq_problem.jacobian). */
typedef enum nlsq_jacobian {
    NLSQ_JAC_ANALYTIC = 0,  /**< eval fills J when asked (the default) */
    NLSQ_JAC_FORWARD  = 1,  /**< eval fills only r; forward differences */
    NLSQ_JAC_CENTRAL  = 2   /**< eval fills only r; central differences */
} nlsq_jacobian;

/* Callbacks (eval, prepare, pattern): the contract.
 *  - Order: each pass over rows at a point x first calls prepare(ctx, x, ...)
 *    on the solver's calling thread, unless the previous prepare of this solve
 *    succeeded on the same x (bit for bit): prepare runs exactly once per
 *    distinct point in a row of passes, never while an eval of the solve
 *    runs, and adds no pass.  Then eval runs on the rows, concurrently on
 *    disjoint ranges with several threads, each call with env->at_prepared
 *    and env->state when its x is that point.  With finite differences, eval
 *    also sees points x + h e_j that were never prepared (at_prepared 0): it
 *    must then work from x alone (its scratch is the place for that).
 *    nlsq_covariance_robust makes the same calls on one thread.
 *  - Ownership: the library allocates the prepared state (prepare_bytes) once
 *    per solve and each worker's scratch (scratch_bytes) once per solve per
 *    worker, through opt->allocator, zeroed, and frees them when the solve
 *    returns; the callbacks never free them or keep pointers to them.  The
 *    state is read-only to eval.  ctx is the caller's: the library never
 *    touches it, and prepare may keep per-point data there only if the
 *    caller never runs two solves on one ctx at the same time.
 *  - Errors: a nonzero return of prepare or eval stops the solve (NLSQ_ENOMEM
 *    when it was NLSQ_ENOMEM, else NLSQ_ECALLBACK); res->callback_status gets
 *    the value returned (the failing call of lowest row when several threads
 *    failed; 0 when no callback returned nonzero, e.g. an invalid pattern),
 *    and what the call wrote to its msg buffer begins res->message.  Under
 *    opt->dist, only the process whose callback failed has them; every
 *    process returns the same status. */
typedef struct nlsq_problem {
    size_t n_params;                /* p */
    size_t n_rows;                  /* m, may exceed what fits in memory */
    nlsq_eval_fn eval;
    void *ctx;
    const double *lower, *upper;    /* NULL, or p bounds each (+-INFINITY allowed) */
    nlsq_pattern_fn pattern;        /* NULL (dense rows), or the sparse pattern */
    int jac_col_major;              /* 0: J is nrows x k row-major (the default);
                                       1: J is k x nrows column-major, column a at
                                       J + a * nrows (what a vectorised model writes) */
    /* --- finite differences (docs/api.md "Finite differences") --- */
    int jacobian;                   /* an nlsq_jacobian.  FORWARD / CENTRAL: eval is
                                       always called with J == NULL; the library
                                       differences residuals chunk by chunk, only the
                                       pattern's columns when there is a pattern, never
                                       outside the bounds.  Column j uses the step
                                       h_j = c max(|x_j|, fd_scale_j), or without
                                       fd_scale c |x_j| (c when x_j = 0), with
                                       c = sqrt(DBL_EPSILON) (forward) or
                                       cbrt(DBL_EPSILON) (central).  A
                                       Jacobian pass then costs 1 + k (forward) or
                                       1 + 2 k (central) residual evaluations per chunk
                                       of k columns.  eval must be reentrant as always
                                       with n_threads > 1; it also sees points x + h e_j. */
    const double *fd_scale;         /* NULL (steps relative to |x_j|), or p finite
                                       typical magnitudes > 0: the smallest |x_j| a
                                       step is taken relative to (set it for
                                       parameters that may pass through 0) */
    /* --- reporting --- */
    const char *const *param_names; /* NULL, or p NUL-terminated names (nlsq_report);
                                       read during calls only, never kept */
    /* --- callbacks: preparation, scratch (see "Callbacks" above the struct) --- */
    nlsq_prepare_fn prepare;        /* NULL, or called once per point before eval */
    size_t prepare_bytes;           /* bytes of the state prepare writes (0: none) */
    size_t scratch_bytes;           /* bytes of each worker's scratch (0: none) */
    /* --- optional normal-equation callback (nlsq_normal_fn) --- */
    nlsq_normal_fn normal;          /* NULL: rows through eval only */
    size_t normal_units;            /* with normal: units per group; must divide n_rows */
} nlsq_problem;

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/** Custom allocator (both functions, or neither).  The library routes its
 *  own allocations through it (workspaces, chunk buffers, checkpoints);
 *  LAPACKE's and OpenBLAS's internal workspaces and thread stacks still use
 *  the C library (a LAPACKE out-of-memory is reported as NLSQ_ENOMEM).
 *  alloc_fn(ctx, size) must return memory aligned for double; free_fn(ctx,
 *  NULL) must be a no-op.  The library never reallocates. */
typedef struct nlsq_allocator {
    void *(*alloc_fn)(void *ctx, size_t size);
    void  (*free_fn)(void *ctx, void *ptr);
    void *ctx;
} nlsq_allocator;

/** Distributed accumulation over several processes (nlsq_mpi fills this in
 *  from an MPI communicator; any transport works).  When reduce is not NULL,
 *  each pass evaluates on this process only the rows of [row_begin, row_end)
 *  that fall in the range the pass covers, then calls reduce(ctx, buf, n):
 *  it must replace buf (n doubles, the same layout on every process) with the
 *  element-wise sum over all processes, identical on every process and in an
 *  order that does not depend on message timing, and return 0 (nonzero:
 *  NLSQ_EDISTRIBUTED on every process that sees it).  Errors on one process
 *  (callback, non-finite rows, allocation during a pass) travel in buf, so
 *  every process returns the same status.  Every process must call the same
 *  solver with the same options and start point.  Only the process with
 *  is_root set writes checkpoints; all read them on resume. */
typedef struct nlsq_distributed {
    int  (*reduce)(void *ctx, double *buf, size_t n);
    void *ctx;
    size_t row_begin, row_end;   /* this process's rows */
    int    is_root;
} nlsq_distributed;

/** Solver phase reported to the progress callback. */
typedef enum nlsq_phase {
    NLSQ_PHASE_LM = 1,
    NLSQ_PHASE_ADAM = 2,
    NLSQ_PHASE_COVARIANCE = 3
} nlsq_phase;

/** What the progress callback sees after each LM iteration that goes on (not
 *  after the one that ends the solve) or each Adam epoch. */
typedef struct nlsq_progress_info {
    int    phase;          /* an nlsq_phase */
    size_t iteration;      /* LM iteration or Adam epoch, from 1 */
    double cost;           /* best full cost so far (Adam: epoch mean estimate) */
    double grad_norm;      /* max_j |(J^T r)_j| (Adam: of the last batch) */
    double lambda;         /* LM damping, or Adam learning rate */
    double elapsed;        /* seconds since the solve started */
    size_t n_eval, n_jac;  /* passes so far */
    const double *x;       /* current best point, p values, valid during the call */
} nlsq_progress_info;

/** Progress callback: return 0 to go on, nonzero to stop cleanly (the solve
 *  returns NLSQ_EUSER_STOP with the best point in x). */
typedef int (*nlsq_progress_fn)(void *ctx, const nlsq_progress_info *info);

/** Log callback: level 0 = info, 1 = debug.  msg is a NUL-terminated line
 *  without trailing newline, valid only during the call. */
typedef void (*nlsq_log_fn)(void *ctx, int level, const char *msg);

/** Robust loss rho(z), z = r^2, as scipy.optimize.least_squares defines them
 *  (with f_scale).  NLSQ_LOSS_LINEAR is ordinary least squares. */
typedef enum nlsq_loss {
    NLSQ_LOSS_LINEAR = 0,
    NLSQ_LOSS_SOFT_L1 = 1,
    NLSQ_LOSS_HUBER = 2,
    NLSQ_LOSS_CAUCHY = 3,
    NLSQ_LOSS_ARCTAN = 4
} nlsq_loss;

/** The largest checkpoint_tag_size accepted. */
#define NLSQ_CHECKPOINT_TAG_MAX 65536

/** The largest n_threads accepted (programs take their limit from here). */
#define NLSQ_MAX_THREADS 1024

/** nlsq_options.max_iter: 100 (p + 1) LM iterations for p parameters. */
#define NLSQ_ITER_AUTO ((size_t)-1)

/** Adam's options (nlsq_adam, and phase 1 of nlsq_hybrid): nlsq_options.adam.
 *  Parameters are normalised by the bounds' width where both are finite,
 *  else by |x0_j| (1 when x0_j = 0).  Learning-rate schedule: linear warm-up
 *  over the first min(1000, batches per epoch) steps, then reduce-on-plateau:
 *  the rate halves each time the count of consecutive epochs without progress
 *  reaches a multiple of max(1, patience / 2).  Progress: the epoch estimate
 *  (sum of the epoch's batch costs, every row once) drops below
 *  (1 - plateau_rtol) times that of the last epoch with progress; patience
 *  epochs without progress stop the run with NLSQ_CONVERGED_ADAM (0: never).
 *  A batch is batch_rows / block_rows whole blocks of contiguous rows, the
 *  block order reshuffled each epoch from `seed`.  See docs/api.md. */
typedef struct nlsq_adam_options {
    double lr;              /* learning rate in normalised parameter units (1e-2) */
    double beta1;           /* 0.9 */
    double beta2;           /* 0.999 */
    double eps;             /* 1e-8 */
    size_t epochs;          /* maximum epochs (100) */
    size_t batch_rows;      /* rows per mini-batch (1 << 14) */
    size_t block_rows;      /* rows per shuffled row block; 0 = chunk size
                               (at most batch_rows) */
    uint64_t seed;          /* RNG seed for batch order (12345) */
    double plateau_rtol;    /* relative improvement that counts as progress (1e-4) */
    size_t patience;        /* epochs without progress before stopping (5) */
} nlsq_adam_options;

/** nlsq_hybrid's own options: nlsq_options.hybrid.  Phase 1 is Adam with
 *  nlsq_options.adam, phase 2 LM with the common and LM options. */
typedef struct nlsq_hybrid_options {
    size_t adam_epochs;     /* epoch cap of phase 1 (20) */
} nlsq_hybrid_options;

/** nlsq_options.accumulator: how a pass with Jacobian (LM, covariance) sums
 *  the rows.  See docs/accuracy.md for the choice. */
typedef enum nlsq_accumulator {
    NLSQ_ACCUM_NORMAL = 0, /**< J^T J and J^T r: fast; squares cond(J) */
    NLSQ_ACCUM_QR = 1,     /**< chunked Householder QR (TSQR): R and Q^T r, never
                                J^T J; slower per row (docs/accuracy.md: ~1.5-3x
                                NORMAL's accumulation for 30-53 dense columns,
                                ~10x or more against its small-k kernel) */
    NLSQ_ACCUM_AUTO = 2    /**< NORMAL until a pass finds the column-scaled J^T J
                                ill-conditioned (reciprocal condition < 1e-10,
                                cond(J) > ~1e5), then QR for the rest of the solve */
} nlsq_accumulator;

/** Options.  Always start from nlsq_options_init(); then change fields. */
typedef struct nlsq_options {
    /* --- stopping (LM) --- */
    double ftol;            /* converged when the Gauss-Newton step predicts a
                               cost reduction <= ftol * cost (1e-13) */
    double xtol;            /* converged when the Gauss-Newton step is <= xtol
                               ||D x|| in the scaled norm (1e-10) */
    double gtol;            /* converged when the max cosine between r and any
                               free column of J is <= gtol (1e-10) */
    size_t max_iter;        /* LM iterations (accepted or not); NLSQ_ITER_AUTO
                               (the default): 100 (p + 1) for p parameters */

    /* --- LM damping --- */
    double lambda0;         /* initial damping relative to diag scaling (1e-3) */
    int    trial_jacobian;  /* 1: after an accepted step the trial pass also forms
                               J^T J, J^T r, so an accepted step costs one pass, not
                               two (a first rejection costs a Jacobian pass); 0: trial
                               passes are residual-only.  Iterates are the same (1) */
    double step_bound;      /* initial trust radius for the scaled step ||D dx||,
                               as a multiple of ||D x0|| (or absolute when x0 = 0);
                               MINPACK's "factor" (1) */

    /* --- linear algebra (LM and covariance) --- */
    int    accumulator;     /* an nlsq_accumulator (NLSQ_ACCUM_NORMAL).  Memory
                               stays O(chunk p + p^2): QR and AUTO give each
                               worker a second chunk-sized block ([J r],
                               not counted in memory_budget) and each slot a
                               (p+1)^2 factor.  QR with opt->dist.reduce is
                               refused (EINVAL), AUTO stays NORMAL there */

    /* --- chunking, memory, threads --- */
    size_t chunk_rows;      /* rows per chunk; 0 = automatic (about 1 MiB of J) */
    size_t memory_budget;   /* bytes for one worker's chunk buffers (J and r); the
                               total is n_threads times this (per thread, so that
                               the chunk size, hence the result, does not depend
                               on the thread count); 0 = none */
    int    n_threads;       /* worker threads; 0 = all online cores;
                               at most NLSQ_MAX_THREADS */

    /* --- covariance --- */
    int    absolute_sigma;  /* 1: covariance = (J^T J)^-1, no s^2 scaling (0) */
    double cov_rcond;       /* relative eigenvalue cut-off of the scaled J^T J;
                               0 = p * DBL_EPSILON */

    /* --- robust loss (LM and Adam) --- */
    int    loss;            /* an nlsq_loss (NLSQ_LOSS_LINEAR) */
    double f_scale;         /* soft margin between inlier and outlier residuals (1) */

    /* --- Adam and hybrid (nlsq_adam, nlsq_hybrid) --- */
    nlsq_adam_options adam;
    nlsq_hybrid_options hybrid;

    /* --- checkpoints --- */
    const char *checkpoint_path; /* NULL = none; the string is read, not kept */
    size_t checkpoint_every;     /* iterations/epochs between checkpoints (10);
                                    0 = none.  Written atomically (a unique
                                    path.tmp.XXXXXX, fsync, rename); a path
                                    that is not a regular file is never
                                    replaced (docs/api.md "Checkpoints") */
    const void *checkpoint_tag;  /* NULL = none: bytes (at most
                                    NLSQ_CHECKPOINT_TAG_MAX) stored in every
                                    checkpoint and required, byte for byte,
                                    by nlsq_resume: the caller's fingerprint
                                    of its data and settings.  Read during
                                    the call only */
    size_t checkpoint_tag_size;  /* bytes of checkpoint_tag (0) */

    /* --- callbacks --- */
    nlsq_progress_fn progress; void *progress_ctx;
    nlsq_log_fn      log;      void *log_ctx;
    int              verbose;  /* 0: no log lines, 1: one per iteration, 2: debug */
    nlsq_allocator   allocator; /* all NULL = malloc/free */

    /* --- several processes (see nlsq_distributed; zeroed = one process) --- */
    nlsq_distributed dist;
} nlsq_options;

/** Fill opt with the defaults documented above.  Never fails. */
NLSQ_API void nlsq_options_init(nlsq_options *opt);

/** Check a problem and options without solving.  Returns 0 or NLSQ_EINVAL;
 *  when msg is not NULL, writes a one-line reason (at most msg_size bytes,
 *  NUL-terminated). */
NLSQ_API int nlsq_validate(const nlsq_problem *pb, const nlsq_options *opt,
                           const double *x0, char *msg, size_t msg_size);

/* ------------------------------------------------------------------------ */
/* Result                                                                    */
/* ------------------------------------------------------------------------ */

/** Per-phase statistics (nlsq_hybrid fills one per phase; LM and Adam fill
 *  phases[0]). */
typedef struct nlsq_phase_stats {
    int    phase;          /* an nlsq_phase, 0 = unused slot */
    size_t iterations;
    size_t n_eval, n_jac;
    double cost;           /* full cost at the end of the phase */
    double seconds;
} nlsq_phase_stats;

/** Per-parameter flags (bits), see nlsq_param_flags(); 0 = free. */
enum nlsq_param_flag {
    NLSQ_PARAM_FIXED = 1,         /**< lower == upper: held, not a parameter of the fit:
                                       covariance row/column 0, not in the degrees of freedom */
    NLSQ_PARAM_AT_LOWER = 2,      /**< x_j == lower_j at the solution */
    NLSQ_PARAM_AT_UPPER = 4,      /**< x_j == upper_j at the solution */
    NLSQ_PARAM_UNDETERMINED = 8   /**< the data do not determine it (rank rule, or a 1-sigma
                                       error wider than its box; docs/api.md): variance
                                       +INFINITY, covariances NAN */
};
/** A static name for a flags value (never NULL): "free", "fixed", "at_lower",
 *  "at_upper", "undetermined", "undetermined_at_lower", "undetermined_at_upper". */
NLSQ_API const char *nlsq_param_flags_name(unsigned flags);
/** The flags of each parameter at a solution x (p values) from a covariance
 *  the library computed there (cov: p*p, or NULL: no UNDETERMINED flags):
 *  FIXED where lower == upper, AT_LOWER / AT_UPPER where x sits on a bound,
 *  UNDETERMINED where the variance is +INFINITY (the library's rank and box
 *  rules, docs/api.md).  Writes flags (p entries); returns the number of
 *  undetermined parameters, or 0 when an argument is NULL.  Pure. */
NLSQ_API size_t nlsq_param_flags(const nlsq_problem *pb, const double *x, const double *cov,
                                 unsigned *flags);

typedef struct nlsq_result {
    int    status;        /* an nlsq_status */
    double cost;          /* 0.5 * sum r_i^2 at the returned x (with a robust
                             loss: 0.5 * sum rho(r_i^2)) */
    double grad_norm;     /* max_j |(J^T r)_j| at the returned x */
    size_t iterations;
    size_t n_eval;        /* full passes over the rows without Jacobian */
    size_t n_jac;         /* full passes over the rows with Jacobian */
    double *covariance;   /* NULL, or a caller-owned p*p buffer the solver fills
                             with the scaled covariance s^2 (J^T J)^-1, s^2 =
                             reduced_chi2 (below), or with absolute_sigma the
                             unscaled (J^T J)^-1; the rows and columns of fixed
                             parameters are 0; NAN when dof <= 0 (scaled) */
    /* --- extensions --- */
    double initial_cost;  /* cost at the start point */
    double reduced_chi2;  /* s^2 = 2 cost / dof (the covariance's scale); NAN when
                             dof <= 0 or unknown */
    double seconds;       /* wall time of the solve */
    size_t n_rows;        /* m */
    size_t n_nonfinite;   /* trial passes rejected for NaN/Inf residuals */
    size_t rank;          /* numerical rank used for the covariance (0 if none) */
    size_t n_active;      /* parameters on a bound at the solution */
    size_t n_phases;
    nlsq_phase_stats phases[3];
    char   message[256];  /* one line on what happened, e.g. the failing row; it ends
                             with "(undetermined: x[j], ...)" when some are; when a
                             callback failed it begins with the callback's message */
    /* --- filled with the covariance (status >= 0, covariance not NULL) --- */
    size_t n_fixed;        /* parameters with lower == upper */
    size_t n_undetermined; /* parameters with +INFINITY variance (NLSQ_PARAM_UNDETERMINED) */
    /* --- callbacks --- */
    int    callback_status; /* the nonzero value a prepare or eval call returned when
                               it stopped the solve (0: none did); see "Callbacks" */
    /* --- degrees of freedom (set when a pass over all rows was completed) --- */
    size_t n_obs;         /* observations used: the sum over all rows (and all
                             processes) of what eval stored in env->n_obs (n_rows
                             when it stores nothing); 0: no pass over all rows */
    size_t n_free;        /* parameters of the fit: not fixed (lower != upper) */
    double dof;           /* n_obs - n_free (an integer; may be <= 0); NAN when
                             n_obs is 0 */
} nlsq_result;

/* ------------------------------------------------------------------------ */
/* Solvers                                                                   */
/* ------------------------------------------------------------------------ */

/* x: start point in, solution out (always the best point found, even on error).
 * res: filled on every return (may be NULL when not wanted).
 * Return value == res->status. */

/** Levenberg-Marquardt on the chunk-accumulated normal equations, with bounds
 *  handled by an active-set projection; fills res->covariance when non-NULL. */
NLSQ_API int nlsq_lm    (const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res);
/** Adam over shuffled mini-batches of row blocks (bounded memory per batch). */
NLSQ_API int nlsq_adam  (const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res);
/** Adam warm-up, then LM to convergence, then the covariance. */
NLSQ_API int nlsq_hybrid(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res);

/** Continue a solve from a checkpoint file written with opt->checkpoint_path.
 *  The problem must be the same (p, m and bounds are checked). */
NLSQ_API int nlsq_resume(const nlsq_problem *pb, const nlsq_options *opt,
                         const char *checkpoint_file, double *x, nlsq_result *res);

/** The public solver that wrote a checkpoint (nlsq_checkpoint_summary.solver). */
typedef enum nlsq_solver_kind {
    NLSQ_SOLVER_LM = 1,
    NLSQ_SOLVER_ADAM = 2,
    NLSQ_SOLVER_HYBRID = 3
} nlsq_solver_kind;

/** What a checkpoint file holds (nlsq_checkpoint_info). */
typedef struct nlsq_checkpoint_summary {
    int      solver;       /* an nlsq_solver_kind: what nlsq_resume continues */
    int      phase;        /* an nlsq_phase where it continues: NLSQ_PHASE_LM or
                              NLSQ_PHASE_ADAM (a hybrid checkpoint has either) */
    unsigned version;      /* the file's format version (1 to 3) */
    size_t   n_params;     /* p of the problem it was written for */
    size_t   n_rows;       /* m of that problem */
    size_t   iteration;    /* LM iterations (phase LM) or Adam epochs (phase Adam) done */
    size_t   tag_size;     /* bytes of its tag (0: none; nlsq_checkpoint_tag reads it) */
    int      scale_exp;    /* residuals were multiplied by 2^scale_exp (0: unscaled;
                              format version 3 records it, older files read 0) */
} nlsq_checkpoint_summary;

/** Describe a checkpoint file without a problem: fills *info.  Reads and
 *  checks the file as nlsq_resume does (regular file, without blocking;
 *  magic, version, byte order, sizes, checksum, payload layout and values),
 *  but not against a problem: nlsq_resume still checks p, m, the bounds and
 *  the tag.  Returns 0, NLSQ_EIO, NLSQ_ECHECKPOINT, NLSQ_ENOMEM or
 *  NLSQ_EINVAL (NULL file or info), with the reason in res->message (res may
 *  be NULL); on error *info is zeroed.  Thread-safe; allocates with malloc. */
NLSQ_API int nlsq_checkpoint_info(const char *checkpoint_file, nlsq_checkpoint_summary *info,
                                  nlsq_result *res);

/** The tag stored in a checkpoint (opt->checkpoint_tag when it was written):
 *  copies min(tag size, buf_size) bytes into buf and sets *tag_size (0: no
 *  tag).  Reads and checks the file as nlsq_resume does (regular file,
 *  without blocking; magic, sizes, checksum), so a caller can name what
 *  differs before resuming.  Returns 0, NLSQ_EIO, NLSQ_ECHECKPOINT,
 *  NLSQ_ENOMEM or NLSQ_EINVAL, with the reason in res->message (res may be
 *  NULL).  Thread-safe; allocates with malloc. */
NLSQ_API int nlsq_checkpoint_tag(const char *checkpoint_file, void *buf, size_t buf_size,
                                 size_t *tag_size, nlsq_result *res);

/** Covariance s^2 (J^T J)^-1 at x (one Jacobian pass), written to cov (p*p):
 *  s^2 = 2 cost / dof over the observations that pass counted (res->n_obs,
 *  res->dof, res->reduced_chi2), or (J^T J)^-1 with absolute_sigma.
 *  Undetermined parameters get +INFINITY variance and NAN covariances (see
 *  docs/api.md for the rank rule).  Returns 0 on success (res->status is
 *  then 0 too, with the message "covariance computed"), or an error.  res may
 *  be NULL. */
NLSQ_API int nlsq_covariance(const nlsq_problem *pb, const nlsq_options *opt,
                             const double *x, double *cov, nlsq_result *res);

/* ------------------------------------------------------------------------ */
/* Cluster-robust covariance                                                 */
/* ------------------------------------------------------------------------ */

#define NLSQ_NO_CLUSTER ((size_t)-1)

/** Clusters of rows whose errors may be correlated.  ids(ctx, row0, nrows,
 *  id_a, id_b) writes for each row of [row0, row0 + nrows) the cluster(s) it
 *  belongs to: id_a[i] < n_clusters, and id_b[i] < n_clusters or
 *  NLSQ_NO_CLUSTER (one cluster; id_b == id_a counts as one too).  Returns 0,
 *  or nonzero (reported as NLSQ_ECALLBACK).  Called from one thread, rows in
 *  order, after eval on the same rows; nrows never exceeds the chunk size.
 *  Two ids from disjoint ranges (row clusters 0..R-1, column clusters
 *  R..R+C-1) give Cameron-Gelbach-Miller two-way clustering with single rows
 *  as the intersection cells; two ids from one range (the frames i and j of
 *  a two-time entry) also count pairs that share a frame as row of one and
 *  column of the other. */
typedef int (*nlsq_cluster_fn)(void *ctx, size_t row0, size_t nrows, size_t *id_a,
                               size_t *id_b);
typedef struct nlsq_clusters {
    size_t n_clusters;     /* >= 2 */
    nlsq_cluster_fn ids;
    void *ctx;
} nlsq_clusters;

/** Cluster-robust (sandwich) covariance at x, written to cov (p*p):
 *  A^-1 B A^-1 with A = J^T J and B = sum_c S_c S_c^T - sum_(two-cluster rows)
 *  g_i g_i^T, g_i = J_i^T r_i, S_c the sum of g_i over the rows of cluster c,
 *  times G / (G - 1) * (n - 1) / (n - p_free) (G clusters with rows, n
 *  the observations the rows declared, res->n_obs); A^-1 is the
 *  pseudo-inverse over the directions nlsq_covariance's rank rule keeps, the
 *  product formed where A is the identity, and negative eigenvalues of the
 *  result set to 0 there (docs/api.md).  No s^2 factor:
 *  absolute_sigma is ignored.  Valid when rows of different clusters have
 *  independent errors, whatever the correlation inside a cluster; it needs
 *  many clusters (tens at least).  Fixed parameters get 0, undetermined ones
 *  +INFINITY / NAN (the flags' rules).  One pass with Jacobian, single
 *  threaded, memory O(chunk * p + n_clusters * p + p^2); not with
 *  opt->dist (NLSQ_ENOTIMPL).  res (may be NULL) gets status, message, cost,
 *  rank, n_fixed, n_undetermined, n_obs, n_free, dof.  Returns 0 or an error: NLSQ_EINVAL (NULL
 *  arguments, n_clusters < 2, no ids callback, no degrees of freedom, rows in
 *  fewer than two clusters), NLSQ_ECALLBACK (eval or ids
 *  failed, an id out of range), NLSQ_ENONFINITE, NLSQ_ENOMEM.  Thread
 *  safety and ownership as for every function here. */
NLSQ_API int nlsq_covariance_robust(const nlsq_problem *pb, const nlsq_options *opt,
                                    const nlsq_clusters *cl, const double *x, double *cov,
                                    nlsq_result *res);

/* ------------------------------------------------------------------------ */
/* Profile-likelihood intervals                                              */
/* ------------------------------------------------------------------------ */

/** A profile-likelihood interval of one parameter. */
typedef struct nlsq_interval {
    double lower, upper;   /* where the profiled chi2 has risen by delta (or a bound) */
    int lower_open;        /* 1: the rise was not reached before the parameter's lower
                              bound (lower is that bound), or within the search */
    int upper_open;        /* the same above */
    double x_min;          /* the parameter at the minimum (x_hat refined by one solve) */
    double cost_min;       /* cost there */
    size_t n_solves;       /* LM solves made (the minimum's included) */
    int better_min;        /* 1: a profile solve found a cost below cost_min: x_hat was
                              not the minimum and the interval is not valid */
    double delta_lower;    /* the threshold the lower end was found for (delta, or the
                              last one the adjustment gave) */
    double delta_upper;    /* the same for the upper end */
    int rounds_lower;      /* searches of the lower end (1 without adjustment) */
    int rounds_upper;      /* the same for the upper end */
} nlsq_interval;

/** A threshold that depends on where the profile ends.  fn(ctx, j, side,
 *  x_end, delta) is called once an end is found: side -1 (lower) or +1
 *  (upper), x_end the held point there (p values, read only, valid during
 *  the call: x_j = the end, the other parameters minimising the cost; at a
 *  bound the solve there; after the step limit the farthest solve inside),
 *  *delta the threshold that end was searched for.  It sets *delta to the
 *  threshold q that applies at x_end (>= 0 and finite; leaving it unchanged
 *  is allowed) and returns 0, or nonzero to stop (NLSQ_ECALLBACK).  The
 *  interval is then where D(t) <= q(t), its end the first point going out
 *  from x_hat where that fails: when q and D at the end differ by more than
 *  rtol (relative to q) the end is searched again (for q while every point
 *  so far passed, else between the nearest failing point and the farthest
 *  passing one before it), at most max_rounds searches per end in all
 *  (docs/api.md "Profile-likelihood intervals").
 *  Use: a misspecification adjustment evaluated at the restricted fit, as
 *  fit_xpcs's robust threshold K^2 V_rob,jj / V_mod,jj
 *  (docs/uncertainties.md).  Called from the thread that called
 *  nlsq_profile, which it may call library functions from (nlsq_covariance,
 *  nlsq_covariance_robust) on the same problem. */
typedef int (*nlsq_profile_delta_fn)(void *ctx, size_t j, int side, const double *x_end,
                                     double *delta);
typedef struct nlsq_profile_adjust {
    nlsq_profile_delta_fn fn;  /* NULL: delta fixed */
    void *ctx;
    double rtol;               /* 0: 0.1 */
    int max_rounds;            /* searches per end, 0: 3 */
} nlsq_profile_adjust;

/** Profile-likelihood interval of parameter j around the minimum x_hat (p
 *  values, e.g. what nlsq_lm returned): the set of t where
 *    2 (C_j(t) - C_min) / s^2 <= delta,
 *  C_j(t) the cost minimised over the other parameters with x_j = t (an LM
 *  solve with lower_j = upper_j = t, warm-started on the profile path),
 *  s^2 = 2 C_min / dof (res.dof of the solve at x_hat; 1 with absolute_sigma).  delta = 1 gives
 *  the 1-sigma interval, 4 the 2-sigma one; for a linear model it is exactly
 *  x_j -+ sqrt(delta) sigma_j.  Each end takes typically 2-4 solves (a
 *  bracketed root search along the predicted profile path), at most 24
 *  steps of one solve (two when a start on the path ends outside, one more
 *  probe where the covariance gives no path tangent, one to re-test an
 *  outside verdict that looks like a jump); the solves use opt (with ftol
 *  tightened so that the costs are good to 1e-3 of the rise, at most
 *  10 (p + 1) iterations each, and no checkpoints or progress callback), so
 *  memory is bounded as in nlsq_lm.
 *  adj (may be NULL: delta for both ends) makes the threshold depend on the
 *  held point at each end (nlsq_profile_adjust): delta is then the first
 *  round's; out->delta_lower / delta_upper say what each end was found for.
 *  Bounds are respected: an end that would lie beyond a bound is that bound
 *  with *_open set.  x_hat is not modified.  Returns 0 or NLSQ_EINVAL (NULL
 *  arguments, j >= p, j fixed, delta not > 0, no degrees of freedom),
 *  NLSQ_ECALLBACK (adj->fn failed or gave a delta < 0 or not finite), or a solve's
 *  error.  Thread safety and ownership as for nlsq_lm. */
NLSQ_API int nlsq_profile(const nlsq_problem *pb, const nlsq_options *opt, const double *x_hat,
                          size_t j, double delta, const nlsq_profile_adjust *adj,
                          nlsq_interval *out);

/** The distribution of the profile statistic at a held point, by a wild
 *  (cluster) bootstrap: the threshold of a test-inversion interval
 *  (docs/api.md "Bootstrap threshold"). */
typedef struct nlsq_profile_boot {
    size_t n_boot;                  /* replicates B, >= 2 (tens: the K-sigma quantile) */
    uint64_t seed;                  /* the weights' stream: the same seed draws the same
                                       weights at every held point (common random numbers) */
    const nlsq_clusters *clusters;  /* NULL: every row its own cluster */
    double s2;                      /* the scale of D: s^2 of the fit, 2 C_min / dof */
} nlsq_profile_boot;

/** Replicates of D = 2 (C_j(t) - C_min) / s^2 under H0: x_j = t, at the
 *  held point x_held (p values: x_j = t, the others minimising the cost with
 *  x_j held, e.g. nlsq_profile_adjust's x_end).  Replicate b has the
 *  residuals r_b(x) = r(x) + (m_i - 1) r_i(x_held): the data y* = f(x_held)
 *  + m_i (y - f(x_held)), with m_i = w_a (one cluster), w_a + w_b (two) or
 *  w_i (no clusters), w Rademacher (+-1) drawn per cluster from
 *  (seed, b).  Each replicate's statistic is found as nlsq_profile_test
 *  finds the data's: a free solve from x_held gives C*_min and its
 *  covariance, then C*_held is the lowest cost of the held path from that
 *  minimum (4 held solves along the covariance's tangent, then secants; a
 *  probe first where there is none), of one held solve from it with x_j = t
 *  alone and of one held solve from x_held (a free solve again from the
 *  held point where that ends lower): 7 or 8 solves a replicate;
 *  D*_b = kappa_j 2 (C*_held - C*_min) / s2,
 *  where kappa_j = V_rob,jj / V_wild,jj at x_held undoes what the weights
 *  w_a + w_b add: they reproduce the covariance of rows that share a
 *  cluster, but count each two-cluster row twice (kappa_j = 1 with one
 *  cluster per row; where V_rob,jj / V_wild,jj is not defined, the median
 *  of the free parameters' ratios).  The solves use opt (no checkpoints or
 *  progress, ftol tightened as in nlsq_profile; the normal callback is not
 *  used).  Up to 2^23 rows the residuals at x_held are evaluated once and
 *  kept with a replicate's m_i - 1 (9 bytes a row; clusters->ids asked once
 *  per row and replicate); beyond that, or where that memory cannot be had,
 *  eval is called at x and at x_held for every chunk (twice the work of a
 *  solve on pb) and ids for every chunk.  The call at x_held is unprepared
 *  (at_prepared 0): eval must work from x alone there, as with finite
 *  differences.  Memory as in nlsq_lm plus, per worker, 3 values and a
 *  byte per chunk row, and that cache.
 *  dstar: n_boot values, written sorted ascending; kappa, n_solves (may be
 *  NULL): kappa_j and the solves made.  The K-sigma threshold is the
 *  erf(K / sqrt 2) quantile of dstar.  Returns 0 or NLSQ_EINVAL (NULL
 *  arguments, j >= p, j fixed, n_boot < 2, s2 not > 0, n_clusters < 2
 *  with clusters), NLSQ_ENOTIMPL (opt->dist), a solve's error, or one of
 *  nlsq_covariance_robust's.  Thread safety and ownership as for nlsq_lm. */
NLSQ_API int nlsq_profile_bootstrap(const nlsq_problem *pb, const nlsq_options *opt,
                                    const nlsq_profile_boot *bo, const double *x_held, size_t j,
                                    double *dstar, double *kappa, size_t *n_solves);

/** What nlsq_profile_test found. */
typedef struct nlsq_profile_test_result {
    double D;          /* 2 (C_j(t) - C_min) / s2, the statistic at t */
    double p_value;    /* (1 + #{D*_b >= D}) / (1 + n_boot): small rejects x_j = t */
    double cost_min;   /* C_min (x_hat refined by one solve) */
    double cost_held;  /* C_j(t) */
    double s2;         /* the scale used: bo->s2, or 2 C_min / dof when that is 0 */
    double kappa;      /* nlsq_profile_bootstrap's kappa_j */
    size_t n_solves;   /* LM solves made */
    int better_min;    /* 1: the held solve found a cost below cost_min: x_hat was not the
                          minimum (e.g. a fit stopped at its iteration limit, whose limit the
                          minimum's solve here keeps), D < 0 and the test is not valid (as
                          nlsq_interval's better_min) */
} nlsq_profile_test_result;

/** The bootstrap test of H0: x_j = t around the minimum x_hat: C_min from
 *  one solve from x_hat, C_j(t) the lower cost of two ways to x_j = t held:
 *  a continuation from x_hat along the profile path in 4 held solves (the
 *  covariance's tangent, then the secant of the last two; a small probe
 *  first where the covariance gives none) and one solve from x_hat with
 *  x_j = t alone (neither is sure to find the held minimum on a curved
 *  valley), D = 2 (C_j(t) - C_min) / s2, and D's replicates
 *  at that held point (nlsq_profile_bootstrap, into dstar: bo->n_boot
 *  values, sorted).  t lies in the K-sigma test-inversion interval when D
 *  is at most the erf(K / sqrt 2) quantile of dstar.  bo->s2 = 0 takes s^2
 *  from the minimum's solve.  Returns 0 or NLSQ_EINVAL (NULL arguments,
 *  j >= p, j fixed, t not finite or outside j's bounds, n_boot < 2), a
 *  solve's error or nlsq_profile_bootstrap's.  Thread safety and ownership
 *  as for nlsq_lm. */
NLSQ_API int nlsq_profile_test(const nlsq_problem *pb, const nlsq_options *opt,
                               const nlsq_profile_boot *bo, const double *x_hat, size_t j,
                               double t, nlsq_profile_test_result *out, double *dstar);

/* ------------------------------------------------------------------------ */
/* Curve fitting (scipy.optimize.curve_fit)                                  */
/* ------------------------------------------------------------------------ */

/** Model y = f(x; theta) at n points.
 *  theta:    p parameters.
 *  xdata:    n * xdim values; point i is xdata[i*xdim .. i*xdim + xdim - 1].
 *  f:        n values to fill with f(x_i; theta), always.
 *  dfdtheta: NULL, or n x p row-major to fill with d f(x_i; theta) / d theta_j.
 *            Never non-NULL unless the problem sets analytic_jacobian.
 *  Returns 0, or nonzero to stop the fit (reported as NLSQ_ECALLBACK).
 *  n never exceeds the chunk size of the options.  With n_threads != 1 the
 *  library calls it concurrently from several threads on disjoint point
 *  ranges (and, with finite differences, at different theta): it must be
 *  reentrant for a shared ctx, or the caller sets opt->n_threads = 1. */
typedef int (*nlsq_model_fn)(void *ctx, const double *theta, size_t n,
                             const double *xdata, double *f, double *dfdtheta);

/** A curve-fitting problem over data arrays (all read only, never copied,
 *  never kept after the call). */
typedef struct nlsq_curve_problem {
    size_t n_params;          /* p >= 1 */
    size_t n_points;          /* n >= p */
    size_t xdim;              /* values per point in xdata, >= 1 */
    const double *xdata;      /* n * xdim finite values, point-major */
    const double *ydata;      /* n finite values */
    const double *sigma;      /* NULL (all 1), or n finite standard deviations > 0 */
    nlsq_model_fn model;
    void *ctx;                /* passed to model unchanged */
    int analytic_jacobian;    /* 1: model fills dfdtheta; 0: finite differences */
    const double *lower, *upper; /* NULL, or p bounds each (+-INFINITY allowed) */
    /* --- extensions --- */
    const double *sigma_cov;  /* NULL, or the n x n covariance of ydata (row-major,
                                 symmetric positive definite; only the lower
                                 triangle is read), scipy's 2-D sigma: residuals
                                 are whitened, r = L^-1 (f - y) with C = L L^T.
                                 Excludes sigma.  The fit then evaluates the
                                 model over all n points in one chunk (C already
                                 holds n^2 doubles) on one thread, and allocates
                                 n^2 doubles for L */
    const char *const *param_names; /* NULL, or p names (nlsq_curve_report) */
} nlsq_curve_problem;

/** Goodness of fit at the returned theta, with r_i = (f(x_i; theta) - y_i) /
 *  sigma_i (sigma_i = 1 when sigma is NULL) and w_i = 1 / sigma_i^2:
 *    chi2         = sum_i r_i^2   (plain squares, whatever opt->loss is)
 *    dof          = n - p
 *    reduced_chi2 = chi2 / dof                      (NAN when dof == 0)
 *    r_squared    = 1 - chi2 / SS_tot,  SS_tot = sum_i w_i (y_i - ybar)^2,
 *                   ybar = sum_i w_i y_i / sum_i w_i: the weighted R^2, which
 *                   is the usual 1 - SS_res/SS_tot when sigma is NULL (NAN
 *                   when SS_tot == 0)
 *    aic          = n ln(chi2 / n) + 2 p
 *    bic          = n ln(chi2 / n) + p ln(n)
 *  (AIC/BIC for independent Gaussian errors up to an additive constant that
 *  depends only on n and sigma, as lmfit reports them; -INFINITY when chi2 ==
 *  0.)  Only differences of aic (or bic) between models fitted to the same
 *  data and sigma are meaningful. */
typedef struct nlsq_fit_stats {
    double chi2, reduced_chi2, r_squared, aic, bic;
    size_t dof, n_points;
} nlsq_fit_stats;

/** Fit theta so that f(x_i; theta) matches y_i, as scipy.optimize.curve_fit:
 *  minimises 0.5 * sum_i rho(r_i^2) with r_i = (f(x_i; theta) - y_i) / sigma_i
 *  (rho from opt->loss, identity by default) with nlsq_lm, over the same
 *  chunked, memory-bounded passes (the Jacobian is never stored).
 *
 *  theta: p start values in, the best point found out (also on error).
 *  cov:   NULL, or a caller-owned p*p buffer (row-major) filled when the
 *         returned status is >= 0 with
 *           opt->absolute_sigma == 0 (default): (J^T J)^-1 * chi2 / (n - p),
 *           opt->absolute_sigma == 1:           (J^T J)^-1,
 *         J the Jacobian of the r_i at theta: scipy's pcov in both cases.
 *         With n == p and absolute_sigma == 0 every entry is +INFINITY (as in
 *         scipy).  Undetermined parameters get +INFINITY variance and NAN
 *         covariances (the rank rule of nlsq_covariance) where scipy would
 *         return a pseudo-inverse.  A parameter at an active bound is not
 *         treated specially (as in scipy).  With a robust loss, J and chi2 are
 *         scipy's: the reweighted Jacobian and 2 * cost.
 *  stats: NULL, or filled (see nlsq_fit_stats) when the returned status is
 *         >= 0; otherwise its doubles are NAN (n_points, dof still set).
 *         With a robust loss, chi2 costs one more residual-only pass.
 *  res:   NULL, or filled as by nlsq_lm; res->covariance is ignored on input
 *         and equals cov on return.
 *  opt:   NULL for nlsq_options_init() defaults.  opt->absolute_sigma selects
 *         the covariance scaling above; opt->loss / opt->f_scale apply.
 *
 *  Jacobian: with analytic_jacobian the model's dfdtheta is used.  Otherwise
 *  column j is a finite difference with h_j = cbrt(DBL_EPSILON) * max(1,
 *  |theta_j|): the central difference (f(theta + h_j e_j) - f(theta - h_j
 *  e_j)) / (2 h_j) when both points lie inside the bounds, else the
 *  second-order one-sided three-point formula (-3 f(theta) + 4 f(theta + s d
 *  e_j) - f(theta + 2 s d e_j)) / (2 s d) towards the side s with more room R,
 *  d = min(h_j, R / 2); a parameter with lower == upper gets a zero column.
 *  The model is thus never evaluated outside the bounds.  It costs 2 p extra
 *  model evaluations per Jacobian pass; this is the problem-level
 *  NLSQ_JAC_CENTRAL with fd_scale 1, its scratch (p + 2 * chunk
 *  doubles per worker thread) allocated with the solver's buffers from
 *  opt->allocator.
 *
 *  Thread safety: no global state; concurrent fits on distinct problems are
 *  safe.  See nlsq_model_fn for the calls into the model.
 *  Errors: NLSQ_EINVAL (NULL problem, model, xdata, ydata or theta; p == 0;
 *  n < p; xdim == 0; n * xdim overflowing; non-finite xdata or ydata; a sigma
 *  that is <= 0 or not finite; and everything nlsq_validate rejects),
 *  NLSQ_ECALLBACK (the model returned nonzero), NLSQ_ENOMEM, and the other
 *  nlsq_lm statuses.  Returns the status (== res->status). */
NLSQ_API int nlsq_curve_fit(const nlsq_curve_problem *cp, const nlsq_options *opt,
                            double *theta, double *cov, nlsq_fit_stats *stats,
                            nlsq_result *res);

/* ------------------------------------------------------------------------ */
/* Reports                                                                   */
/* ------------------------------------------------------------------------ */

/** Correlation matrix of a p x p covariance: corr_ij = cov_ij / sqrt(cov_ii
 *  cov_jj), 1 on the diagonal; NAN in the rows and columns of parameters
 *  whose variance is not finite and > 0 (fixed or undetermined ones).  corr
 *  (p*p) must not be cov.  Returns 0, or NLSQ_EINVAL (NULL, p == 0, corr ==
 *  cov).  Pure; no allocation. */
NLSQ_API int nlsq_correlation(size_t p, const double *cov, double *corr);

/** Write a plain-text report of a solve to out: the status in words, the
 *  message, iterations and passes, cost, reduced chi2 and degrees of freedom,
 *  one line per parameter (its name from pb->param_names or "x[j]", value,
 *  standard error and relative error from res->covariance when set and the
 *  status is >= 0, flags as nlsq_param_flags names them) and the pairs of
 *  parameters with the largest correlations (|r| >= 0.5, at most 10).  x is
 *  the solution (p values), res the solver's result.  The format is for
 *  people, not parsers: it may change.  Allocates p flags with malloc.
 *  Returns 0, NLSQ_EINVAL (a NULL argument), NLSQ_ENOMEM, or NLSQ_EIO when
 *  writing or flushing out failed.  Thread safety: as for any FILE *. */
NLSQ_API int nlsq_report(FILE *out, const nlsq_problem *pb, const double *x,
                         const nlsq_result *res);

/** nlsq_report for nlsq_curve_fit: names from cp->param_names, bounds from
 *  cp, and, when stats is not NULL and the status >= 0, a line with chi2, dof,
 *  R^2, AIC and BIC.  Same returns. */
NLSQ_API int nlsq_curve_report(FILE *out, const nlsq_curve_problem *cp, const double *theta,
                               const nlsq_result *res, const nlsq_fit_stats *stats);

#ifdef __cplusplus
}
#endif
#endif /* NLSQ_H */
