/* adam.c - mini-batch Adam (placeholder until the Adam issue lands). */
#include "nlsq_internal.h"

int nlsq_adam(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res)
{
    (void)opt; (void)x;
    nlsq__result_reset(res, pb ? pb->n_rows : 0);
    return nlsq__finish(res, NLSQ_ENOTIMPL, "nlsq_adam is not implemented yet");
}
