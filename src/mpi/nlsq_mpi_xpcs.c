/*
 * nlsq_mpi_xpcs.c - the XPCS start point over MPI ranks (nlsq_mpi.h, part
 * "XPCS").
 *
 * The start is the library's own (nlsq_xpcs_start): it is made of sums over
 * a sample of rows, so each rank sums over the sample rows of its own range
 * and the library adds the ranks' sums through the same distributed reduce
 * the solvers use (opt.dist as nlsq_mpi_options fills it); its read
 * failures come back as a line in err on every rank.  (The excluded
 * entries over all ranks are counted by the solve itself: res.n_obs.)
 */
#define _POSIX_C_SOURCE 200809L
#include "nlsq_mpi.h"
#include "nlsq_xpcs.h"

#include <stdio.h>

int nlsq_mpi_xpcs_initial_guess(nlsq_mpi_ctx *ctx, struct nlsq_xpcs_model *m,
                                const struct nlsq_xpcs_config *cfg, const double *phys,
                                double *x, char *err, size_t err_size)
{
    (void)cfg;   /* the model carries its config */
    if (!ctx || !m || !x) {
        if (err && err_size) snprintf(err, err_size, "start point: no context, model or x");
        return NLSQ_EINVAL;
    }
    nlsq_options opt;
    nlsq_options_init(&opt);
    nlsq_mpi_options(ctx, &opt);
    return nlsq_xpcs_start(m, phys, &opt.dist, x, err, err_size);
}
