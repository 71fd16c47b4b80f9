/* fit_xpcs_backend_mpi.c - fit_xpcs over MPI ranks (fit_xpcs_mpi,
 * fit_xpcs_backend.h, docs/mpi.md). */
#include "fit_xpcs_backend.h"
#include "nlsq_mpi.h"

static void mpi_model_config(void *self, nlsq_xpcs_config *cfg)
{
    (void)self;
    nlsq_mpi_cli_xpcs_config(cfg);
}

static int mpi_initial_guess(void *self, nlsq_xpcs_model *m, const nlsq_xpcs_config *cfg,
                             const double *phys, double *x)
{
    (void)self;
    return nlsq_mpi_cli_xpcs_initial_guess(m, cfg, phys, x);
}

static void mpi_solver_options(void *self, nlsq_options *opt)
{
    (void)self;
    nlsq_mpi_cli_options(opt);
}

static size_t mpi_n_excluded(void *self, const nlsq_xpcs_model *m)
{
    (void)self;
    return nlsq_mpi_cli_xpcs_n_excluded(m);
}

static int mpi_finish(void *self, int exit_code)
{
    (void)self;
    return exit_code;
}

int fit_xpcs_backend_start(fit_xpcs_backend *b, int *argc, char ***argv)
{
    *b = (fit_xpcs_backend){NULL, nlsq_mpi_cli_init(argc, argv), mpi_model_config,
                            mpi_initial_guess, mpi_solver_options, mpi_n_excluded, mpi_finish};
    return 0;
}
