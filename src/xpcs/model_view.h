/*
 * model_view.h - what the start point (start.c) sees of a model (private;
 * defined in model.c): its sizes, angles, bounds and physics constants, and
 * its data by local row with each row's (i, j).
 */
#ifndef NLSQ_XPCS_MODEL_VIEW_H
#define NLSQ_XPCS_MODEL_VIEW_H

#include "nlsq_xpcs.h"
#include "physics.h"

typedef struct nlsq__xpcs_view {
    size_t P, n, np;            /* angles, frames, physical parameters (7 or 3) */
    size_t R;                   /* problem rows per angle (angle a: rows [a R, (a + 1) R)) */
    int sym;                    /* rows are merged symmetric pairs (i != j: 2 observations) */
    const double *phi;          /* P, degrees */
    const double *lower, *upper;   /* the model's bounds (np + 2 P) */
    const double *defaults;     /* the physical start of docs/xpcs-model.md (7) */
    const nlsq__xpcs_geom *geom;
} nlsq__xpcs_view;

NLSQ__XPCS_HIDDEN void nlsq__xpcs_model_view(const nlsq_xpcs_model *m, nlsq__xpcs_view *v);

/* The data of angle a's local rows [l0, l0 + nrows) into y, and each row's
 * matrix entry (i, j) into ii, jj.  0, NLSQ_ENOMEM or another nonzero
 * status (a read failed: one line on why into msg, msg_size bytes). */
NLSQ__XPCS_HIDDEN int nlsq__xpcs_model_fetch(nlsq_xpcs_model *m, size_t a, size_t l0,
                                             size_t nrows, double *y, size_t *ii, size_t *jj,
                                             char *msg, size_t msg_size);

#endif
