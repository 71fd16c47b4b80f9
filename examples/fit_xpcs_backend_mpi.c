/* fit_xpcs_backend_mpi.c - fit_xpcs over MPI ranks (fit_xpcs_mpi;
 * fit_xpcs_backend.h, docs/mpi.md): the process policy of the command, which
 * the library nlsq_mpi leaves to its caller.
 *
 *   - start: MPI_Init_thread (FUNNELED) unless MPI is up already; on ranks
 *     other than 0, stdout and stderr go to /dev/null unless the environment
 *     sets NLSQ_MPI_ALL_OUTPUT=1; NLSQ_MPI_TIMEOUT=seconds sets the reduce
 *     timeout (nlsq_mpi_set_timeout) of the command's context;
 *   - the model streams its data when there are several ranks
 *     (memory_budget = 0: a rank that cached would read every row at
 *     creation; streaming, each eval reads the rows it is asked for, i.e.
 *     this rank's);
 *   - the context is attached over MPI_COMM_WORLD at the start point (the
 *     first moment the number of rows is known; blocks of 4096 rows) and
 *     reused by the solve; the start point is nlsq_mpi_xpcs_initial_guess's
 *     (over all ranks, a read failure's line on every rank), the excluded
 *     count the solve's (res.n_obs, summed over the ranks);
 *   - finish: detach, then MPI_Finalize when the command succeeded or every
 *     rank went through the solve (a context that is not broken completed
 *     every reduce this rank took part in; a rank that left early made the
 *     others' contexts broken), MPI_Abort (with the exit status) otherwise,
 *     so that a rank failing alone before the solve ends the job instead of
 *     leaving the others waiting.  A rank other than 0 waits a moment
 *     (ABORT_GRACE_S) before its MPI_Abort: when every rank fails the same
 *     way (a missing input file), rank 0 - the one whose stderr is shown -
 *     has time to say why before another rank's abort ends the job; rank 0's
 *     own abort ends the wait at once. */
#define _POSIX_C_SOURCE 200809L
#include "fit_xpcs_backend.h"
#include "nlsq_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCK_ROWS ((size_t)4096)   /* rows per block of the command's partition */
#define ABORT_GRACE_S 2                /* seconds a rank other than 0 waits before MPI_Abort */

typedef struct mpi_backend {
    int we_init;          /* this program called MPI_Init */
    int rank, size;
    double timeout;       /* NLSQ_MPI_TIMEOUT, 0: none */
    nlsq_mpi_ctx *ctx;    /* the command's context, or NULL */
} mpi_backend;

static void mpi_model_config(void *self, nlsq_xpcs_config *cfg)
{
    const mpi_backend *s = self;
    if (s->size > 1) cfg->memory_budget = 0;
}

static int mpi_initial_guess(void *self, nlsq_xpcs_model *m, const nlsq_xpcs_config *cfg,
                             const double *phys, double *x, char *err, size_t err_size)
{
    mpi_backend *s = self;
    if (!s->we_init) return nlsq_xpcs_start(m, phys, NULL, x, err, err_size);
    if (!s->ctx) {
        nlsq_options tmp;
        nlsq_options_init(&tmp);
        nlsq_problem pb;
        nlsq_xpcs_model_problem(m, &pb);
        int rc = nlsq_mpi_attach(&tmp, MPI_COMM_WORLD, pb.n_rows, BLOCK_ROWS, &s->ctx);
        if (rc != 0) return rc;
        nlsq_mpi_set_timeout(s->ctx, s->timeout);
    }
    return nlsq_mpi_xpcs_initial_guess(s->ctx, m, cfg, phys, x, err, err_size);
}

static void mpi_solver_options(void *self, nlsq_options *opt)
{
    const mpi_backend *s = self;
    if (s->ctx) nlsq_mpi_options(s->ctx, opt);   /* this rank's rows, the reduce */
}

static int mpi_finish(void *self, int exit_code)
{
    mpi_backend *s = self;
    fflush(stdout);
    fflush(stderr);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && s->we_init) {
        int clean = exit_code == 0 || (s->ctx && !nlsq_mpi_broken(s->ctx));
        nlsq_mpi_detach(s->ctx, NULL);
        s->ctx = NULL;
        if (clean || s->size <= 1) {
            MPI_Finalize();
        } else {
            if (s->rank != 0) nanosleep(&(struct timespec){ABORT_GRACE_S, 0}, NULL);
            MPI_Abort(MPI_COMM_WORLD, exit_code != 0 ? exit_code : 1);
        }
    }
    free(s);
    return exit_code;
}

int fit_xpcs_backend_start(fit_xpcs_backend *b, int *argc, char ***argv)
{
    mpi_backend *s = calloc(1, sizeof *s);
    if (!s) {
        fputs("fit_xpcs: out of memory\n", stderr);
        return -1;
    }
    s->size = 1;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        s->we_init = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS;
    }
    if (inited || s->we_init) {
        MPI_Comm_rank(MPI_COMM_WORLD, &s->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &s->size);
    }
    const char *all = getenv("NLSQ_MPI_ALL_OUTPUT");
    if (s->rank != 0 && !(all && !strcmp(all, "1"))) {
        if (!freopen("/dev/null", "w", stdout)) {}
        if (!freopen("/dev/null", "w", stderr)) {}
    }
    const char *t = getenv("NLSQ_MPI_TIMEOUT");
    if (t && *t) s->timeout = strtod(t, NULL);
    *b = (fit_xpcs_backend){s, s->rank, mpi_model_config, mpi_initial_guess,
                            mpi_solver_options, mpi_finish};
    return 0;
}
