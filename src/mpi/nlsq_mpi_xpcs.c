/*
 * nlsq_mpi_xpcs.c - the XPCS start point over MPI ranks (nlsq_mpi.h, part
 * "XPCS").
 *
 * The start is the library's own (nlsq_xpcs_start): it is made of sums over
 * a sample of rows, so each rank sums over the sample rows of its own range
 * and the library adds the ranks' sums through the same distributed reduce
 * the solvers use (opt.dist as nlsq_mpi_options fills it).  The excluded
 * count: each rank counts the non-finite entries of its rows
 * (nlsq_xpcs_model_count_excluded), and the counts are added by one more
 * reduce, with the rank's status beside it so that every rank returns the
 * same status.
 */
#define _POSIX_C_SOURCE 200809L
#include "nlsq_mpi.h"
#include "nlsq_xpcs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int nlsq_mpi_xpcs_initial_guess(nlsq_mpi_ctx *ctx, struct nlsq_xpcs_model *m,
                                const struct nlsq_xpcs_config *cfg, const double *phys,
                                double *x, size_t *n_excluded)
{
    (void)cfg;   /* the model carries its config */
    if (!ctx || !m || !x) return NLSQ_EINVAL;
    nlsq_options opt;
    nlsq_options_init(&opt);
    nlsq_mpi_options(ctx, &opt);
    int rc = nlsq_xpcs_start(m, phys, &opt.dist, x);
    if (rc != 0 || !n_excluded) return rc;
    size_t mine = 0;
    int local = nlsq_xpcs_model_count_excluded(m, opt.dist.row_begin, opt.dist.row_end, &mine);
    double buf[3] = {(double)mine, local == NLSQ_ENOMEM, local != 0 && local != NLSQ_ENOMEM};
    rc = nlsq_mpi_reduce(ctx, buf, 3);
    if (rc != 0) return rc;
    if (buf[1] > 0) return NLSQ_ENOMEM;
    if (buf[2] > 0) return NLSQ_ECALLBACK;
    *n_excluded = (size_t)buf[0];
    return 0;
}
