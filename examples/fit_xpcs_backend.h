/* fit_xpcs_backend.h - what differs between fit_xpcs (one process) and
 * fit_xpcs_mpi (the same fit over MPI ranks): one struct of hooks that the
 * stages of fit_xpcs.c call.  Chosen at link time: each command links one
 * file that defines fit_xpcs_backend_start (fit_xpcs: _start.c, the serial
 * hooks of fit_xpcs_backend_serial.c; fit_xpcs_mpi: _mpi.c; fit_xpcs_test:
 * _test.c); in-process callers (fit_xpcs_embed.c) pass NULL to
 * fit_xpcs_main, i.e. the serial hooks.
 *
 * A backend owns its state (self); nothing here is global, so two serial
 * backends may run at the same time. */
#ifndef FIT_XPCS_BACKEND_H
#define FIT_XPCS_BACKEND_H

#include <stddef.h>

#include "nlsq.h"
#include "nlsq_xpcs.h"

typedef struct fit_xpcs_backend {
    void *self;   /* the backend's state, or NULL */
    int rank;     /* this process's rank; only rank 0 writes files */
    /** Adjust the model's configuration before it is created (MPI: several
     *  ranks stream the data, so that each reads only its own rows). */
    void (*model_config)(void *self, nlsq_xpcs_config *cfg);
    /** The start point (nlsq_xpcs_start's contract, its line on a failure in
     *  err; MPI: from each rank's rows, the same on every rank). */
    int (*initial_guess)(void *self, nlsq_xpcs_model *m, const nlsq_xpcs_config *cfg,
                         const double *phys, double *x, char *err, size_t err_size);
    /** Last word on the solver options (MPI: the reduce over the ranks). */
    void (*solver_options)(void *self, nlsq_options *opt);
    /** End of the command: returns the exit status to use (MPI: finalises,
     *  or aborts the job when this rank failed alone). */
    int (*finish)(void *self, int exit_code);
} fit_xpcs_backend;

/** The one-process hooks (no process policy: safe in-process). */
void fit_xpcs_backend_serial(fit_xpcs_backend *b);

/** The command's backend, set up for this process (the one linked in):
 *  may consume arguments of *argc / *argv (MPI_Init).  Returns 0, or nonzero
 *  when the process cannot run (a message has been printed). */
int fit_xpcs_backend_start(fit_xpcs_backend *b, int *argc, char ***argv);

#endif
