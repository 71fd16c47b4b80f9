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

/* nlsq_lm over the problem of model m with the default options and n_threads
 * threads, from x (the fit is left there); res is zeroed first and given cov
 * (NULL: no covariance).  Returns the status. */
static inline int tc_xpcs_lm(nlsq_xpcs_model *m, int n_threads, double *x, double *cov,
                             nlsq_result *res)
{
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = n_threads;
    memset(res, 0, sizeof *res);
    res->covariance = cov;
    return nlsq_lm(&pb, &opt, x, res);
}

/* The defaults of nlsq_xpcs_synth_spec_default with n_frames frames, n_angles
 * angles and the noise seed. */
static inline nlsq_xpcs_synth_spec tc_synth_spec(size_t n_frames, size_t n_angles, uint64_t seed)
{
    nlsq_xpcs_synth_spec s = {0};
    nlsq_xpcs_synth_spec_default(&s);
    s.n_frames = n_frames;
    s.n_angles = n_angles;
    s.seed = seed;
    return s;
}

/* nlsq_xpcs_synth_write of spec s to path, which must succeed. */
static inline void tc_synth_write(const char *path, const nlsq_xpcs_synth_spec *s)
{
    char err[512] = "";
    int rc = nlsq_xpcs_synth_write(path, s, err, sizeof err);
    if (rc != 0) fail_msg("nlsq_xpcs_synth_write %s: %d: %s", path, rc, err);
}

/* nlsq_xpcs_open of path, which must succeed. */
static inline nlsq_xpcs_file *tc_open(const char *path)
{
    nlsq_xpcs_file *f = NULL;
    char err[512] = "";
    int rc = nlsq_xpcs_open(path, &f, err, sizeof err);
    if (rc != 0) fail_msg("nlsq_xpcs_open %s: %d: %s", path, rc, err);
    return f;
}

/* nlsq_xpcs_select of f (q nearest q, frames first..last), which must
 * succeed. */
static inline void tc_select(const nlsq_xpcs_file *f, double q, size_t first, size_t last,
                             nlsq_xpcs_selection *sel)
{
    char err[512] = "";
    int rc = nlsq_xpcs_select(f, q, first, last, sel, err, sizeof err);
    if (rc != 0) fail_msg("nlsq_xpcs_select: %d: %s", rc, err);
}

/* An XPCS file opened, one q selected (all its angles, frames from `first`)
 * and the file source over that selection. */
typedef struct tc_xfile {
    nlsq_xpcs_file *f;
    nlsq_xpcs_selection sel;
    nlsq_xpcs_source src;
} tc_xfile;

/* Opens path, selects q (NAN: the file's first) from frame `first` to the
 * end and makes the file source; every step must succeed. */
static inline void tc_xfile_open(tc_xfile *x, const char *path, double q, size_t first)
{
    memset(x, 0, sizeof *x);
    x->f = tc_open(path);
    tc_select(x->f, q, first, SIZE_MAX, &x->sel);
    assert_int_equal(nlsq_xpcs_file_source(x->f, &x->sel, &x->src), 0);
}

/* The config of the selection: its q, its first frame as k0, gap and dt. */
static inline nlsq_xpcs_config tc_xfile_config(const tc_xfile *x, double gap, double dt)
{
    nlsq_xpcs_config cfg = tc_config(x->sel.q, gap, dt);
    cfg.k0 = x->sel.first_frame;
    return cfg;
}

static inline void tc_xfile_close(tc_xfile *x)
{
    nlsq_xpcs_selection_free(&x->sel);
    nlsq_xpcs_close(x->f);
    x->f = NULL;
}

#endif
