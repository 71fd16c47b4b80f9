/* options.c - defaults, validation, status messages, allocator and logging. */
#define _POSIX_C_SOURCE 200809L
#include "nlsq_internal.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

size_t nlsq__max_iter(const nlsq_options *opt, size_t p)
{
    return opt->max_iter == NLSQ_ITER_AUTO ? 100 * (p + 1) : opt->max_iter;
}

void nlsq_options_init(nlsq_options *opt)
{
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    /* NIST StRD at these defaults: 53 of 54 solved, 51 at LRE >= 6
     * (docs/accuracy.md); the 23M XPCS fit needs 16 passes. */
    opt->ftol = 1e-13;
    opt->xtol = 1e-10;
    opt->gtol = 1e-10;
    opt->max_iter = NLSQ_ITER_AUTO;
    opt->lambda0 = 1e-3;
    opt->step_bound = 1.0;
    opt->trial_jacobian = 1;
    opt->chunk_rows = 0;
    opt->memory_budget = 0;
    opt->n_threads = 0;
    opt->absolute_sigma = 0;
    opt->cov_rcond = 0.0;
    opt->accumulator = NLSQ_ACCUM_NORMAL;
    opt->loss = NLSQ_LOSS_LINEAR;
    opt->f_scale = 1.0;
    opt->adam.lr = 1e-2;
    opt->adam.beta1 = 0.9;
    opt->adam.beta2 = 0.999;
    opt->adam.eps = 1e-8;
    opt->adam.epochs = 100;
    opt->adam.batch_rows = (size_t)1 << 14;
    opt->adam.block_rows = 0;
    opt->adam.seed = 12345;
    opt->adam.plateau_rtol = 1e-4;
    opt->adam.patience = 5;
    opt->hybrid.adam_epochs = 20;
    opt->checkpoint_path = NULL;
    opt->checkpoint_every = 10;
    opt->checkpoint_tag = NULL;
    opt->checkpoint_tag_size = 0;
}

/* ------------------------------------------------------------------ status */

static const struct { int code; const char *name, *text; } status_table[] = {
    {NLSQ_CONVERGED_FTOL, "CONVERGED_FTOL", "converged: relative reduction of the cost below ftol"},
    {NLSQ_CONVERGED_XTOL, "CONVERGED_XTOL", "converged: relative step size below xtol"},
    {NLSQ_CONVERGED_GTOL, "CONVERGED_GTOL", "converged: scaled gradient below gtol"},
    {NLSQ_CONVERGED_ZERO, "CONVERGED_ZERO", "converged: the cost is zero"},
    {NLSQ_CONVERGED_ADAM, "CONVERGED_ADAM", "converged: Adam reached its plateau"},
    {NLSQ_MAX_ITER, "MAX_ITER", "stopped: iteration limit reached (result usable)"},
    {NLSQ_EINVAL, "EINVAL", "error: invalid problem or options"},
    {NLSQ_ENOMEM, "ENOMEM", "error: out of memory"},
    {NLSQ_ECALLBACK, "ECALLBACK", "error: the residual callback reported a failure"},
    {NLSQ_ENONFINITE, "ENONFINITE", "error: non-finite residuals or Jacobian"},
    {NLSQ_ESINGULAR, "ESINGULAR", "error: linear algebra failure (singular system)"},
    {NLSQ_EUSER_STOP, "EUSER_STOP", "stopped by the progress callback"},
    {NLSQ_EIO, "EIO", "error: checkpoint file could not be written or read"},
    {NLSQ_ENOTIMPL, "ENOTIMPL", "error: not implemented in this build"},
    {NLSQ_ECHECKPOINT, "ECHECKPOINT", "error: checkpoint file invalid or for another problem"},
    {NLSQ_EDISTRIBUTED, "EDISTRIBUTED", "error: the distributed reduce failed"},
    {NLSQ_STALLED, "STALLED", "stopped: no progress possible at working precision, not at a "
                              "stationary point (result usable, not converged)"},
};

const char *nlsq_status_string(int status)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (status_table[i].code == status) return status_table[i].text;
    return "unknown status code";
}

const char *nlsq_status_name(int status)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (status_table[i].code == status) return status_table[i].name;
    return "UNKNOWN";
}

/* --------------------------------------------------------------- allocator */

void *nlsq__malloc(const nlsq_allocator *a, size_t n)
{
    if (n == 0) n = 1;
    if (a && a->alloc_fn) return a->alloc_fn(a->ctx, n);
    return malloc(n);
}

void *nlsq__calloc(const nlsq_allocator *a, size_t count, size_t size)
{
    size_t n;
    if (nlsq__mul_size(count, size, &n) != 0) return NULL;
    void *p = nlsq__malloc(a, n);
    if (p) memset(p, 0, n ? n : 1);
    return p;
}

void nlsq__free(const nlsq_allocator *a, void *p)
{
    if (!p) return;
    if (a && a->free_fn) a->free_fn(a->ctx, p);
    else free(p);
}

int nlsq__mul_size(size_t count, size_t size, size_t *out)
{
    if (size != 0 && count > SIZE_MAX / size) return -1;
    *out = count * size;
    return 0;
}

/* ------------------------------------------------------------ log and time */

void nlsq__log(const nlsq_options *opt, int level, const char *fmt, ...)
{
    if (!opt || !opt->log || opt->verbose <= level) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    opt->log(opt->log_ctx, level, buf);
}

double nlsq__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nlsq__result_reset(nlsq_result *res, size_t m)
{
    if (!res) return;
    double *cov = res->covariance;
    memset(res, 0, sizeof *res);
    res->covariance = cov;
    res->cost = NAN;
    res->grad_norm = NAN;
    res->initial_cost = NAN;
    res->reduced_chi2 = NAN;
    res->dof = NAN;
    res->n_rows = m;
}

void nlsq__result_dof(nlsq_result *res, const nlsq_problem *pb, size_t n_obs, double cost)
{
    if (!res) return;
    double dof = nlsq__dof(pb, n_obs);
    res->n_obs = n_obs;
    res->n_free = nlsq__n_free(pb);
    res->dof = dof;
    res->reduced_chi2 = dof > 0 ? 2.0 * cost / dof : NAN;
}

int nlsq__begin(const nlsq_problem *pb, const nlsq_options *opt_in, nlsq_options *defaults,
                const nlsq_options **opt, int have_args, const char *what, const double *x0,
                nlsq_result *res)
{
    if (!opt_in) { nlsq_options_init(defaults); opt_in = defaults; }
    *opt = opt_in;
    nlsq__result_reset(res, pb ? pb->n_rows : 0);
    if (!have_args) return nlsq__finish(res, NLSQ_EINVAL, "%s is NULL", what);
    char msg[160];
    if (nlsq_validate(pb, opt_in, x0, msg, sizeof msg) != 0)
        return nlsq__finish(res, NLSQ_EINVAL, "%s", msg);
    return 0;
}

void nlsq__single_phase(nlsq_result *res, int phase, double t0)
{
    if (!res) return;
    res->seconds = nlsq__now() - t0;
    res->n_phases = 1;
    res->phases[0] = (nlsq_phase_stats){phase, res->iterations, res->n_eval, res->n_jac,
                                        res->cost, res->seconds};
}

int nlsq__finish(nlsq_result *res, int status, const char *fmt, ...)
{
    if (res) {
        res->status = status;
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(res->message, sizeof res->message, fmt, ap);
            va_end(ap);
        } else if (res->message[0] == '\0') {
            snprintf(res->message, sizeof res->message, "%s", nlsq_status_string(status));
        }
    }
    return status;
}

/* -------------------------------------------------------------- validation */

#define FAIL(...) do { if (msg && msg_size) snprintf(msg, msg_size, __VA_ARGS__); return NLSQ_EINVAL; } while (0)

int nlsq_validate(const nlsq_problem *pb, const nlsq_options *opt,
                  const double *x0, char *msg, size_t msg_size)
{
    if (msg && msg_size) msg[0] = '\0';
    if (!pb) FAIL("problem is NULL");
    if (!opt) FAIL("options are NULL");
    if (pb->n_params == 0) FAIL("n_params is 0");
    if (!pb->eval) FAIL("eval callback is NULL");
    if (pb->prepare_bytes && !pb->prepare) FAIL("prepare_bytes is set but prepare is NULL");
    if (pb->n_rows == 0) FAIL("n_rows is 0");
    if (pb->normal && (pb->normal_units == 0 || pb->n_rows % pb->normal_units != 0))
        FAIL("normal_units (%zu) must divide n_rows (%zu)", pb->normal_units, pb->n_rows);
    if (pb->n_rows < pb->n_params)
        FAIL("fewer rows (%zu) than parameters (%zu)", pb->n_rows, pb->n_params);
    if (pb->jac_col_major != 0 && pb->jac_col_major != 1) FAIL("jac_col_major must be 0 or 1");
    if (pb->jacobian != NLSQ_JAC_ANALYTIC && pb->jacobian != NLSQ_JAC_FORWARD &&
        pb->jacobian != NLSQ_JAC_CENTRAL)
        FAIL("jacobian must be NLSQ_JAC_ANALYTIC, NLSQ_JAC_FORWARD or NLSQ_JAC_CENTRAL");
    for (size_t j = 0; pb->fd_scale && j < pb->n_params; j++)
        if (!(pb->fd_scale[j] > 0) || !isfinite(pb->fd_scale[j]))
            FAIL("fd_scale[%zu] = %g: must be finite and > 0", j, pb->fd_scale[j]);
    size_t pp;
    if (nlsq__mul_size(pb->n_params, pb->n_params, &pp) != 0 ||
        nlsq__mul_size(pp, sizeof(double), &pp) != 0)
        FAIL("n_params %zu too large", pb->n_params);
    for (size_t j = 0; j < pb->n_params; j++) {
        double lo = pb->lower ? pb->lower[j] : -INFINITY;
        double hi = pb->upper ? pb->upper[j] : INFINITY;
        if (isnan(lo) || isnan(hi)) FAIL("bound %zu is NaN", j);
        if (lo > hi) FAIL("lower[%zu] = %g > upper[%zu] = %g", j, lo, j, hi);
        if (lo == INFINITY || hi == -INFINITY) FAIL("bounds of parameter %zu are empty", j);
        if (x0) {
            if (!isfinite(x0[j])) FAIL("start x[%zu] is not finite", j);
        }
    }
    if (!(opt->ftol >= 0) || !(opt->xtol >= 0) || !(opt->gtol >= 0) ||
        !isfinite(opt->ftol) || !isfinite(opt->xtol) || !isfinite(opt->gtol))
        FAIL("ftol, xtol and gtol must be finite and >= 0");
    if (opt->ftol == 0 && opt->xtol == 0 && opt->gtol == 0 && opt->max_iter == 0)
        FAIL("no stopping rule: tolerances and max_iter all 0");
    if (!(opt->lambda0 > 0) || !isfinite(opt->lambda0)) FAIL("lambda0 must be > 0");
    if (!(opt->step_bound > 0) || !isfinite(opt->step_bound)) FAIL("step_bound must be > 0");
    if (opt->n_threads < 0 || opt->n_threads > NLSQ_MAX_THREADS)
        FAIL("n_threads must be in 0..%d", NLSQ_MAX_THREADS);
    if (!(opt->cov_rcond >= 0) || !(opt->cov_rcond < 1)) FAIL("cov_rcond must be in [0, 1)");
    if (opt->accumulator < NLSQ_ACCUM_NORMAL || opt->accumulator > NLSQ_ACCUM_AUTO)
        FAIL("unknown accumulator %d", opt->accumulator);
    if (opt->accumulator == NLSQ_ACCUM_QR && opt->dist.reduce)
        FAIL("accumulator QR cannot be summed across processes (dist.reduce): use NORMAL");
    if (opt->loss < NLSQ_LOSS_LINEAR || opt->loss > NLSQ_LOSS_ARCTAN) FAIL("unknown loss %d", opt->loss);
    if (!(opt->f_scale > 0) || !isfinite(opt->f_scale)) FAIL("f_scale must be > 0");
    if (!(opt->adam.lr > 0) || !isfinite(opt->adam.lr)) FAIL("adam.lr must be > 0");
    if (!(opt->adam.beta1 >= 0 && opt->adam.beta1 < 1)) FAIL("adam.beta1 must be in [0, 1)");
    if (!(opt->adam.beta2 >= 0 && opt->adam.beta2 < 1)) FAIL("adam.beta2 must be in [0, 1)");
    if (!(opt->adam.eps > 0) || !isfinite(opt->adam.eps)) FAIL("adam.eps must be > 0");
    if (opt->adam.batch_rows == 0) FAIL("adam.batch_rows must be > 0");
    if (!(opt->adam.plateau_rtol >= 0) || !isfinite(opt->adam.plateau_rtol))
        FAIL("adam.plateau_rtol must be >= 0");
    {
        int n = (opt->allocator.alloc_fn != NULL) + (opt->allocator.free_fn != NULL);
        if (n == 1) FAIL("allocator: give alloc_fn and free_fn, or neither");
    }
    if (opt->checkpoint_path && opt->checkpoint_path[0] == '\0') FAIL("checkpoint_path is empty");
    if (opt->checkpoint_tag_size > NLSQ_CHECKPOINT_TAG_MAX ||
        (opt->checkpoint_tag_size && !opt->checkpoint_tag))
        FAIL("checkpoint_tag: NULL or more than %d bytes", NLSQ_CHECKPOINT_TAG_MAX);
    if (opt->dist.reduce && (opt->dist.row_begin > opt->dist.row_end || opt->dist.row_end > pb->n_rows))
        FAIL("dist rows [%zu, %zu) not inside [0, %zu)", opt->dist.row_begin, opt->dist.row_end,
             pb->n_rows);
    return 0;
}
