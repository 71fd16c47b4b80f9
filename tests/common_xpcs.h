/*
 * common_xpcs.h - XPCS fixtures the tests share (on top of common.h): an
 * in-memory source over caller-owned data and a model configuration.
 */
#ifndef NLSQ_TESTS_COMMON_XPCS_H
#define NLSQ_TESTS_COMMON_XPCS_H

#include "common.h"
#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"

/* A source over n_angles matrices of n x n doubles at data64 (angle-major),
 * angles phi (degrees); everything else zero.  Nothing is copied. */
static inline nlsq_xpcs_source tc_mem_source(size_t n_angles, size_t n, const double *phi,
                                             const double *data64)
{
    return (nlsq_xpcs_source){.kind = NLSQ_XPCS_SOURCE_MEMORY, .n_angles = n_angles, .n = n,
                              .phi = phi, .u.memory.data64 = data64};
}

/* The defaults of nlsq_xpcs_config_init with q (1/A), gap (A) and dt (s). */
static inline nlsq_xpcs_config tc_config(double q, double gap, double dt)
{
    nlsq_xpcs_config cfg;
    nlsq_xpcs_config_init(&cfg);
    cfg.q = q;
    cfg.gap = gap;
    cfg.dt = dt;
    return cfg;
}

/* nlsq_xpcs_model_create of src and cfg, which must succeed. */
static inline nlsq_xpcs_model *tc_model(const nlsq_xpcs_source *src, const nlsq_xpcs_config *cfg)
{
    nlsq_xpcs_model *m = NULL;
    char err[256] = "";
    int rc = nlsq_xpcs_model_create(src, cfg, &m, err, sizeof err);
    if (rc != 0) fail_msg("nlsq_xpcs_model_create: %d: %s", rc, err);
    return m;
}

#endif
