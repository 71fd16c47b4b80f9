/*
 * nlsq_mpi.h - run one nlsq solve over the processes of an MPI communicator.
 *
 * Optional component (CMake option NLSQ_MPI, library nlsq_mpi): the core
 * library has no MPI dependency; it only sees the reduce callback of
 * nlsq_options.dist (see nlsq_distributed in nlsq.h).  This header fills that
 * callback from a communicator:
 *
 *     MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
 *     nlsq_options opt;
 *     nlsq_options_init(&opt);
 *     nlsq_mpi_ctx *mc;
 *     nlsq_mpi_attach(&opt, MPI_COMM_WORLD, pb.n_rows, 4096, &mc);
 *     nlsq_lm(&pb, &opt, x, &res);     // every rank, same x0 and options
 *     nlsq_mpi_detach(mc, &opt);
 *     MPI_Finalize();
 *
 * Every rank evaluates only its own rows [row_begin, row_end); J^T J, J^T r
 * and the cost of each pass are summed over the ranks by the reduce below,
 * and every rank continues with the same totals, so every rank returns the
 * same status, x, cost and covariance, bitwise.
 *
 * The reduce (nlsq_mpi_reduce): gather every rank's buffer to rank 0
 * (MPI_Igather, in pieces of at most 64 Ki doubles), add them there in rank
 * order 0, 1, ..., size-1, broadcast the sum (MPI_Ibcast).  No MPI_Allreduce:
 * its summation order is up to the MPI library and may depend on message
 * timing.  Hence:
 *   - repeated runs with the same number of processes and the same row
 *     partition are bitwise identical (whatever the threads per process);
 *   - runs with different process counts agree to rounding (the partial sums
 *     are grouped differently), typically 1e-12 relative or better.
 *
 * Errors.
 *   - Errors of the problem on one rank (callback failure, NaN/Inf rows) travel
 *     in the reduce buffer (see nlsq.h): every rank returns the same status at
 *     the same pass.
 *   - MPI errors: the duplicated communicator uses MPI_ERRORS_RETURN.  A rank
 *     whose MPI call fails, that waits longer than the timeout (if set), or
 *     that sees another rank leave (below) stops taking part ("broken"): its
 *     reduce returns nonzero, so its solve returns NLSQ_EDISTRIBUTED, and it
 *     tells every other rank with a small point-to-point "leave" message; a
 *     rank waiting in a reduce that the leaver never joined gives up on it and
 *     returns NLSQ_EDISTRIBUTED too.  No rank waits forever as long as
 *     point-to-point messages still get through; when they do not (the MPI
 *     library itself is broken), set nlsq_mpi_set_abort_on_error() to call
 *     MPI_Abort instead (Open MPI also ends the whole job when a process dies).
 *   - A rank that leaves the solve early for a reason the other ranks cannot
 *     see (an allocation failure before the first pass, a checkpoint write
 *     error on the root, a progress callback that stops on one rank only)
 *     returns its own status; the others return NLSQ_EDISTRIBUTED as soon as
 *     the leaver calls nlsq_mpi_detach (or exits: mpirun then ends the job),
 *     or after the timeout.  So after a solve fails, call nlsq_mpi_detach
 *     before any other communication on the communicator.
 *   - After a rank is broken its context stays broken (every later reduce
 *     fails at once, without MPI); detach it and attach a new one.
 *
 * Threads: the reduce is called from the thread that called the solver
 * (never from the solver's worker threads).  Initialise MPI with at least
 * MPI_THREAD_FUNNELED (MPI_THREAD_SERIALIZED if that is not the main thread).
 *
 * Conventions: as in nlsq.h (status codes, no printing).  A context must not
 * be used by two solves at once.  The library keeps no process policy: it
 * never initialises or finalises MPI, never touches stdio, exit handlers or
 * the environment; a program decides those (fit_xpcs_mpi:
 * examples/fit_xpcs_backend_mpi.c).  Its only process-wide object is the MPI
 * attribute key under which each parent communicator's leave channel is
 * cached (created at the first attach).  See docs/mpi.md.
 */
#ifndef NLSQ_MPI_H
#define NLSQ_MPI_H

#include <mpi.h>
#include <stdint.h>

#include "nlsq.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nlsq_mpi_ctx nlsq_mpi_ctx;   /* opaque */

/** Rows of `rank` (of `size`) in the default partition: the rows are cut into
 *  B = ceil(n_rows / block_rows) blocks of block_rows rows (0 means 1), and
 *  rank r gets blocks [floor(B r / size), floor(B (r+1) / size)), i.e. whole
 *  blocks, contiguous, in rank order, counts differing by at most one block.
 *  A rank may get no rows (B < size). */
NLSQ_API void nlsq_mpi_partition(size_t n_rows, size_t block_rows, int size, int rank,
                                 size_t *row_begin, size_t *row_end);

/** Collective over comm.  Duplicates comm (MPI_ERRORS_RETURN on the
 *  duplicate), takes this rank's rows from nlsq_mpi_partition, checks that
 *  every rank passed the same n_rows, and fills opt->dist (reduce, ctx, rows,
 *  is_root = rank 0).  Other fields of opt are not touched.  Returns 0, or the
 *  same error on every rank: NLSQ_EINVAL (NULL argument, MPI not initialised,
 *  n_rows different between ranks), NLSQ_ENOMEM (on any rank),
 *  NLSQ_EDISTRIBUTED (MPI failed).  *out: the context, NULL on error. */
NLSQ_API int nlsq_mpi_attach(nlsq_options *opt, MPI_Comm comm, size_t n_rows,
                             size_t block_rows, nlsq_mpi_ctx **out);

/** As nlsq_mpi_attach with this rank's own rows [row_begin, row_end) (possibly
 *  empty).  The ranges of all ranks must be disjoint and cover [0, n_rows)
 *  (checked; NLSQ_EINVAL on every rank otherwise); they need not follow rank
 *  order. */
NLSQ_API int nlsq_mpi_attach_range(nlsq_options *opt, MPI_Comm comm, size_t n_rows,
                                   size_t row_begin, size_t row_end, nlsq_mpi_ctx **out);

/** Fill opt->dist from ctx again (e.g. after nlsq_options_init on a new
 *  options struct).  NULL ctx: zero opt->dist (one process). */
NLSQ_API void nlsq_mpi_options(nlsq_mpi_ctx *ctx, nlsq_options *opt);

/** Local (never waits for other ranks): tells the other ranks that this one
 *  takes no part in further reduces of ctx, frees the duplicated communicator
 *  and ctx, and zeroes opt->dist when opt is not NULL and points at ctx.  NULL
 *  ctx is a no-op. */
NLSQ_API void nlsq_mpi_detach(nlsq_mpi_ctx *ctx, nlsq_options *opt);

/** The reduce installed in opt->dist: replaces buf (n doubles, same n on
 *  every rank) by the element-wise sum over the ranks, computed on rank 0 in
 *  rank order and broadcast, so identical on every rank.  Collective; usable
 *  directly for other deterministic sums (or, with each rank writing only its
 *  own slot of a zeroed buffer, as an exact all-gather).  Returns 0, or
 *  NLSQ_EDISTRIBUTED (ctx broken; see the header comment). */
NLSQ_API int nlsq_mpi_reduce(void *ctx, double *buf, size_t n);

NLSQ_API int    nlsq_mpi_rank(const nlsq_mpi_ctx *ctx);
NLSQ_API int    nlsq_mpi_size(const nlsq_mpi_ctx *ctx);
NLSQ_API void   nlsq_mpi_rows(const nlsq_mpi_ctx *ctx, size_t *row_begin, size_t *row_end);
/** The duplicated communicator (valid until detach). */
NLSQ_API MPI_Comm nlsq_mpi_comm(const nlsq_mpi_ctx *ctx);

/** Seconds a reduce may wait for the other ranks before this rank gives up
 *  (broken, NLSQ_EDISTRIBUTED); 0 (the default) = no limit.  It bounds the
 *  wait for the slowest rank's share of a pass, so it must exceed the time of
 *  the slowest pass.  Local setting. */
NLSQ_API void nlsq_mpi_set_timeout(nlsq_mpi_ctx *ctx, double seconds);
/** 1: when this rank becomes broken, call MPI_Abort(comm, NLSQ_EDISTRIBUTED)
 *  instead of returning (for when MPI itself may not deliver the leave
 *  messages); 0 (default): return NLSQ_EDISTRIBUTED. */
NLSQ_API void nlsq_mpi_set_abort_on_error(nlsq_mpi_ctx *ctx, int on);

/** 0 while the context works; otherwise NLSQ_EDISTRIBUTED, with a one-line
 *  reason in nlsq_mpi_message. */
NLSQ_API int         nlsq_mpi_broken(const nlsq_mpi_ctx *ctx);
NLSQ_API const char *nlsq_mpi_message(const nlsq_mpi_ctx *ctx);

typedef struct nlsq_mpi_stats {
    uint64_t n_reduce;     /* reduces completed */
    uint64_t n_doubles;    /* doubles reduced (per rank) */
    double   wait_s;       /* seconds inside nlsq_mpi_reduce (waiting + summing) */
} nlsq_mpi_stats;
NLSQ_API void nlsq_mpi_get_stats(const nlsq_mpi_ctx *ctx, nlsq_mpi_stats *st);

/* ------------------------------------------------------------------------ */
/* XPCS (only when nlsq_mpi was built with NLSQ_BUILD_XPCS; include           */
/* nlsq_xpcs.h for the types)                                                */
/* ------------------------------------------------------------------------ */

struct nlsq_xpcs_model;
struct nlsq_xpcs_config;

/** nlsq_xpcs_start over the ranks of ctx (its reduce and row ranges), each
 *  rank reading only the sample rows of its own range: the same start on
 *  every rank, equal to the one-process start to rounding.  cfg: unused
 *  (the model carries its config; may be NULL).  Collective; returns 0 or
 *  the same error on every rank (NLSQ_ECALLBACK when a read failed on any
 *  rank), with one line on why in err (may be NULL; err_size bytes): the
 *  read failure on the rank where it happened, "a data read failed on
 *  another process" on the others.  The excluded (non-finite) entries over
 *  all ranks are what a solve reports: nlsq_xpcs_model_n_rows - res.n_obs. */
NLSQ_API int nlsq_mpi_xpcs_initial_guess(nlsq_mpi_ctx *ctx, struct nlsq_xpcs_model *m,
                                         const struct nlsq_xpcs_config *cfg,
                                         const double *phys, double *x, char *err,
                                         size_t err_size);

#ifdef __cplusplus
}
#endif
#endif /* NLSQ_MPI_H */
