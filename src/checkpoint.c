/* checkpoint.c - atomic save/load of solver state (placeholder until the checkpoint issue lands). */
#include "nlsq_internal.h"

int nlsq__checkpoint_save_lm(const nlsq__engine *e, const nlsq_options *opt,
                             const double *x, const nlsq__lm_state *st)
{
    (void)e; (void)opt; (void)x; (void)st;
    return NLSQ_ENOTIMPL;
}

int nlsq_resume(const nlsq_problem *pb, const nlsq_options *opt,
                const char *checkpoint_file, double *x, nlsq_result *res)
{
    (void)opt; (void)checkpoint_file; (void)x;
    nlsq__result_reset(res, pb ? pb->n_rows : 0);
    return nlsq__finish(res, NLSQ_ENOTIMPL, "checkpoints are not implemented yet");
}
