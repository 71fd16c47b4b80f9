/* hybrid.c - Adam warm-up, LM, covariance (placeholder until the hybrid issue lands). */
#include "nlsq_internal.h"

int nlsq_hybrid(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res)
{
    (void)opt; (void)x;
    nlsq__result_reset(res, pb ? pb->n_rows : 0);
    return nlsq__finish(res, NLSQ_ENOTIMPL, "nlsq_hybrid is not implemented yet");
}
