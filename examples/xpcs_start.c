/*
 * xpcs_start.c - see xpcs_start.h.
 */
#include "xpcs_start.h"

#include <math.h>
#include <string.h>

int xpcs_start_stage(nlsq_xpcs_model *m, const fit_xpcs_args *a, double *x, FILE *msgs,
               nlsq_xpcs_global_result *g, int *ran)
{
    *ran = 0;
    int given = 0;
    for (int k = 0; k < FIT_XPCS_N_PHYS; k++) given |= !isnan(a->init[k]);
    if (a->start == FIT_XPCS_START_LOCAL || (a->start == FIT_XPCS_START_AUTO && !given) ||
        a->resume)
        return 0;   /* x: the backend's start */
    nlsq_xpcs_global_options go = {0, 0, a->n_threads};
    int rc = nlsq_xpcs_global_start(m, a->init, &go, x, g);
    if (rc != 0) return rc;
    *ran = 1;
    if (a->progress)   /* the table and the JSON always say it */
        fprintf(msgs, "fit_xpcs: global start: %zu grid points, %zu LM solves on %zu sample rows, "
            "%.2f s\n", g->n_grid, g->n_refined, g->sample_rows, g->seconds);
    if (g->ambiguous) fprintf(msgs, "fit_xpcs: warning: %s\n", g->message);
    return 0;
}

void xpcs_start_check(nlsq_xpcs_model *m, const fit_xpcs_args *a, const double *x,
                      const double *err, FILE *msgs, nlsq_xpcs_global_result *g, int ran)
{
    if (a->start == FIT_XPCS_START_LOCAL) return;   /* the fit from the given start, no more */
    if (!ran) memset(g, 0, sizeof *g);   /* n_grid 0: no stage */
    nlsq_xpcs_global_options go = {0, 0, a->n_threads};
    nlsq_xpcs_global_result c = *g;
    c.ambiguous = 0;
    /* advisory: a failed check (a read error) leaves the stage's report */
    if (nlsq_xpcs_mirror_check(m, x, err, &go, &c) != 0 || !c.ambiguous) return;
    if (!g->ambiguous || strcmp(g->message, c.message)) fprintf(msgs, "fit_xpcs: warning: %s\n", c.message);
    *g = c;
}
