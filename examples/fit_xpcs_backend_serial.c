/* fit_xpcs_backend_serial.c - fit_xpcs in one process (fit_xpcs_backend.h):
 * the library's own start point and excluded count, nothing to reduce. */
#include "fit_xpcs_backend.h"

static void serial_model_config(void *self, nlsq_xpcs_config *cfg)
{
    (void)self;
    (void)cfg;
}

static int serial_initial_guess(void *self, nlsq_xpcs_model *m, const nlsq_xpcs_config *cfg,
                                const double *phys, double *x, char *err, size_t err_size)
{
    (void)self;
    (void)cfg;
    return nlsq_xpcs_start(m, phys, NULL, x, err, err_size);
}

static void serial_solver_options(void *self, nlsq_options *opt)
{
    (void)self;
    (void)opt;
}

static int serial_finish(void *self, int exit_code)
{
    (void)self;
    return exit_code;
}

void fit_xpcs_backend_serial(fit_xpcs_backend *b)
{
    *b = (fit_xpcs_backend){.model_config = serial_model_config,
                            .initial_guess = serial_initial_guess,
                            .solver_options = serial_solver_options,
                            .finish = serial_finish};
}
