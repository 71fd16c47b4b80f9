/*
 * fit_xpcs - fit the laminar-flow (or static) XPCS model to the two-time
 * correlation matrices of one q in an APS 8-ID-I HDF5 file.
 *
 *   fit_xpcs INPUT.h5 --gap ANGSTROM [--dt SECONDS] [--q Q|all] [--frames FIRST:LAST]
 *            [--mode laminar|static] [--method lm|adam|hybrid]
 *            [--triangle upper|full] [--threads N] [--json] [--output RESULT.h5]
 *   extras:  [--save-fit] [--plot PREFIX] [--plot-angles I,J,...]
 *            [--checkpoint FILE] [--checkpoint-every N] [--resume FILE]
 *            [--sigma S] [--max-iter N] [--memory-budget MIB] [--include-diagonal]
 *            [--init NAME=VALUE]... [--k0 K] [--progress] [--help]
 *
 * The command runs in stages: parse (fit_xpcs_args.c, pure; fuzzed on its
 * own), open (the input, the frame time), then per selected q: check, build
 * (model, bounds, start point), solve, statistics, report (the table, JSON
 * and HDF5 result file by xpcs_output.c, the PNG figures by xpcs_plot.c).
 * What differs over MPI ranks is one struct of hooks, fit_xpcs_backend.h
 * (fit_xpcs_backend_serial.c or _mpi.c, linked in); main() is
 * fit_xpcs_main.c.  No global state: every stage gets the call's streams.  docs/xpcs.md documents every option, the JSON
 * keys, the result file layout and the figures.
 *
 * Options take "--name value" or "--name=value".  --frames FIRST:LAST is
 * inclusive and relative to the file's frame 0 (FIRST: = to the end); --k0 is
 * the frame index of the file's frame 0 (t_k = (k + k0 + FIRST) dt; 0 unless
 * the acquisition says otherwise).  --gap is not needed in static mode.
 * --init sets a physical start value (names as in the JSON; repeatable).
 *
 * Synthetic files (xpcs_synth) carry the truth they were made from: the
 * table then adds "truth" and "dev/sigma" columns, the JSON a "truth" object.
 *
 * Checkpoints: --checkpoint FILE saves the solver state every
 * --checkpoint-every iterations (5); --resume FILE continues a killed fit
 * (same input and options) and ends bitwise where the uninterrupted fit
 * would have; it keeps checkpointing to FILE unless --checkpoint names
 * another.
 *
 * Statistics are the library's: non-finite data entries are excluded by the
 * model (zero residual and Jacobian row, no observation), so the solver
 * counts dof = observations used - free parameters (res.n_obs, res.dof),
 * reduced_chi2 = 2 cost / dof and the covariance 2 cost/dof (J^T J)^-1; the
 * errors are the square roots of its diagonal (null where undetermined) and
 * n_excluded is the model's observations minus those used.
 *
 * Static mode fits D0, alpha, D_offset only; the JSON still has all 7 keys in
 * "params" and "errors": the shear parameters are reported as fixed at 0
 * (no shear) with error 0, and listed in the extra key "fixed".
 *
 * --json prints one JSON object on stdout (keys of docs/api.md plus the
 * extras "message", "mode", "method", "triangle", "n_excluded", "dof",
 * "fixed", "file", "frames", and "truth" / "resumed_from" when they apply);
 * otherwise a readable table.  Exit code: 0 converged, 1 ran but did not
 * converge (or the method failed), 2 bad usage or bad input (or an output
 * that could not be written), with one line on stderr.
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include "nlsq.h"
#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"
#include "fit_xpcs_args.h"
#include "fit_xpcs_backend.h"
#include "xpcs_output.h"
#include "xpcs_plot.h"
#include "xpcs_start.h"
#include "xpcs_uncertainty.h"
#include "fit_xpcs_paths.h"
#include "fit_xpcs_fingerprint.h"
#include "safe_io.h"
#include "fit_xpcs.h"
#include "xpcs_config.h"

#include <hdf5.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_CONVERGED 0
#define EXIT_NOT_CONVERGED 1
#define EXIT_BAD_INPUT 2

/* One call of the command: where its output goes and its backend. */
typedef struct fit_run {
    FILE *out;                      /* results (table or JSON) */
    FILE *msgs;                     /* the one-line messages */
    const fit_xpcs_backend *be;
} fit_run;

/* One line on msgs, "fit_xpcs: " + the message + tail: control characters
 * (from file names, argv or library messages) are replaced by '?' so that
 * the message stays one line.  Returns EXIT_BAD_INPUT. */
static int fail(const fit_run *run, const char *tail, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(const fit_run *run, const char *tail, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *c = buf; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    fprintf(run->msgs, "fit_xpcs: %s%s\n", buf, tail);
    return EXIT_BAD_INPUT;
}
#define bad_input(run, ...) fail(run, "", __VA_ARGS__)
#define bad_usage(run, ...) fail(run, " (try --help)", __VA_ARGS__)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct progress_ctx {
    int print;          /* 1: a line per iteration (--progress); 2: one line kept
                           up to date (stderr is a terminal) */
    int shown;          /* a terminal line is on screen */
} progress_ctx;

static int progress_cb(void *ctx, const nlsq_progress_info *info)
{
    progress_ctx *pc = ctx;
    fprintf(stderr, "%sfit_xpcs: %s %4zu  cost %.10e  |g| %.3e  %s %.3e  %.2f s%s",
            pc->print == 2 ? "\r" : "", info->phase == NLSQ_PHASE_ADAM ? "epoch" : "iter ",
            info->iteration, info->cost, info->grad_norm,
            info->phase == NLSQ_PHASE_ADAM ? "lr" : "lambda", info->lambda, info->elapsed,
            pc->print == 2 ? "" : "\n");
    if (pc->print == 2) {
        fflush(stderr);
        pc->shown = 1;
    }
    return 0;
}

/* The solver recorded in a checkpoint file (nlsq_checkpoint_info): 1 LM,
 * 2 Adam, 3 hybrid; 0 when unreadable (nlsq_resume then reports why). */
static int checkpoint_solver(const char *path)
{
    nlsq_checkpoint_summary info;
    return nlsq_checkpoint_info(path, &info, NULL) == 0 ? info.solver : 0;
}

/* The synthetic truth, mapped to the selection's angles.  The writer stores
 * contrast/offset in the file order of the angles of one q; the selection
 * lists its matrices phi-ascending, so selected angle k is truth entry j
 * where j counts the matrices of the selected q in file order up to
 * sel->matrix[k].  Returns 1 when the file carries a truth that fits. */
static int read_truth(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel, double *phys,
                      double *con, double *off)
{
    size_t P = sel->n_angles, M = nlsq_xpcs_n_matrices(f);
    double *tc = malloc(sizeof(double) * P), *to = malloc(sizeof(double) * P);
    int ok = 0;
    if (tc && to && nlsq_xpcs_read_truth(f, phys, tc, to, P, NULL, 0) == 0) {
        ok = 1;
        for (size_t k = 0; k < P && ok; k++) {
            size_t j = 0, found = 0;
            for (size_t mi = 0; mi < M; mi++) {
                double q, phi;
                if (nlsq_xpcs_matrix_info(f, mi, &q, &phi) != 0) break;
                if (q != sel->q) continue;
                if (mi == sel->matrix[k]) { found = 1; break; }
                j++;
            }
            if (!found || j >= P) ok = 0;
            else { con[k] = tc[j]; off[k] = to[j]; }
        }
        if (!ok) {  /* the physical truth still holds; per-angle truth unknown */
            for (size_t k = 0; k < P; k++) con[k] = off[k] = NAN;
            ok = 2;
        }
    } else if (nlsq_xpcs_read_truth(f, phys, NULL, NULL, 0, NULL, 0) == 0) {
        /* per-angle truth of another angle count (a synthetic file with an
         * empty bin): the physical truth alone */
        for (size_t k = 0; k < P; k++) con[k] = off[k] = NAN;
        ok = 2;
    }
    free(tc);
    free(to);
    return ok;
}

/* Is phi (degrees) inside [lo, hi], modulo 360? */
static int phi_in_range(double phi, double lo, double hi)
{
    double d = fmod(phi - lo, 360.0);
    if (d < 0) d += 360.0;
    return hi - lo >= 360.0 || d <= hi - lo;
}

static int dbl_cmp(const void *x, const void *y)
{
    double u = *(const double *)x, v = *(const double *)y;
    return (u > v) - (u < v);
}

/* The distinct q of the file, ascending (same rule as nlsq_xpcs_select:
 * equal to 1e-9 relative).  *nq of them in a malloc'ed array, or NULL. */
static double *distinct_q(const nlsq_xpcs_file *f, size_t *nq)
{
    size_t M = nlsq_xpcs_n_matrices(f), n = 0;
    double *q = malloc((M ? M : 1) * sizeof *q);
    if (!q) return NULL;
    for (size_t k = 0; k < M; k++) nlsq_xpcs_matrix_info(f, k, &q[k], NULL);
    qsort(q, M, sizeof *q, dbl_cmp);
    for (size_t k = 0; k < M; k++)
        if (n == 0 || fabs(q[k] - q[n - 1]) > 1e-9 * fmax(fabs(q[k]), fabs(q[n - 1]))) q[n++] = q[k];
    *nq = n;
    return q;
}

/* ------------------------------------------------------------------------ */
/* Stage "open": the input file, its frames and frame time                   */
/* ------------------------------------------------------------------------ */

/* What a fit of one selection needs besides the selection. */
typedef struct fit_job {
    const fit_run *run;
    fit_xpcs_args *a;
    nlsq_xpcs_file *f;
    double dt;                  /* resolve_dt */
    char dt_source[512];
    xpcs_result_file *rf;       /* --q all: the result file (group per q; NULL: --output alone) */
    const char *group;          /* its group for this q */
} fit_job;

/* The frame time: the file's (docs/xpcs.md, "Input files"), or --dt.  When
 * both exist and differ by more than 1e-6 relative, --dt is used and one
 * warning line is printed.  job->dt_source gets where dt came from.  0, or
 * EXIT_BAD_INPUT (message printed) when neither exists. */
static int resolve_dt(fit_job *job)
{
    const fit_xpcs_args *a = job->a;
    double fdt = NAN;
    char fsrc[384];
    int have_file = nlsq_xpcs_file_dt(job->f, &fdt, fsrc, sizeof fsrc) == 0;
    if (!a->have_dt && !have_file)
        return bad_input(job->run, "%s: no frame time: %s; give --dt SECONDS", a->input, fsrc);
    if (!a->have_dt) {
        job->dt = fdt;
        snprintf(job->dt_source, sizeof job->dt_source, "%s", fsrc);
        return 0;
    }
    job->dt = a->dt;
    if (have_file && fabs(a->dt - fdt) > 1e-6 * fabs(fdt)) {
        fprintf(stderr, "fit_xpcs: warning: --dt %.10g differs from the file's dt %.10g; "
                "using --dt\n", a->dt, fdt);
        snprintf(job->dt_source, sizeof job->dt_source, "--dt (the file's %.17g differs)", fdt);
    } else {
        snprintf(job->dt_source, sizeof job->dt_source,
                 have_file ? "--dt (equal to the file's)" : "--dt");
    }
    return 0;
}

/* --resume: the checkpoint exists and is of --method.  0 or EXIT_BAD_INPUT. */
static int check_resume(const fit_run *run, const fit_xpcs_args *a)
{
    static const char *const solver_names[4] = {"", "lm", "adam", "hybrid"};
    char perr[512];
    FILE *probe = safe_open_input("--resume", a->resume, perr, sizeof perr);
    if (!probe) return bad_input(run, "%s", perr);
    fclose(probe);
    int sv = checkpoint_solver(a->resume);
    if (sv && strcmp(solver_names[sv], a->method) != 0)
        return bad_usage(run, "--resume %s: the checkpoint is of --method %s, not %s", a->resume,
                         solver_names[sv], a->method);
    return 0;
}

/* Open the input, check --frames against it, find dt.  0, or EXIT_BAD_INPUT
 * (printed; nothing left open). */
static int open_input(fit_job *job)
{
    const fit_xpcs_args *a = job->a;
    char err[512] = "";
    int rc = nlsq_xpcs_open(a->input, &job->f, err, sizeof err);
    if (rc != 0) return bad_input(job->run, "%s", err[0] ? err : nlsq_xpcs_status_string(rc));
    size_t nf = nlsq_xpcs_n_frames(job->f);
    if (a->have_frames && (a->first >= nf || (a->last != SIZE_MAX && a->last >= nf))) {
        if (a->last == SIZE_MAX)
            rc = bad_input(job->run, "%s: --frames %zu: is outside the file's frames 0..%zu",
                           a->input, a->first, nf ? nf - 1 : 0);
        else
            rc = bad_input(job->run, "%s: --frames %zu:%zu is outside the file's frames 0..%zu",
                           a->input, a->first, a->last, nf ? nf - 1 : 0);
    } else {
        rc = resolve_dt(job);
    }
    if (rc != 0) {
        nlsq_xpcs_close(job->f);
        job->f = NULL;
    }
    return rc;
}

/* Select q (nearest q_request) and, with phi ranges (--config
 * phi_filtering), keep only the angles inside one.  0, or EXIT_BAD_INPUT
 * (printed; sel freed). */
static int select_q(const fit_job *job, double q_request, nlsq_xpcs_selection *sel)
{
    const fit_xpcs_args *a = job->a;
    char err[512] = "";
    int rc = nlsq_xpcs_select(job->f, q_request, a->first, a->last, sel, err, sizeof err);
    if (rc != 0) return bad_input(job->run, "%s", err[0] ? err : nlsq_xpcs_status_string(rc));
    if (!a->n_phi_ranges) return 0;
    size_t w = 0;
    for (size_t i = 0; i < sel->n_angles; i++) {
        int keep = 0;
        for (size_t r = 0; r < a->n_phi_ranges && !keep; r++)
            keep = phi_in_range(sel->phi[i], a->phi_ranges[r][0], a->phi_ranges[r][1]);
        if (keep) {
            sel->phi[w] = sel->phi[i];
            sel->matrix[w++] = sel->matrix[i];
        }
    }
    sel->n_angles = w;
    if (w > 0) return 0;
    double q = sel->q;
    nlsq_xpcs_selection_free(sel);
    return bad_input(job->run, "%s: no angle of q = %g lies in phi_filtering.target_ranges of %s",
                     a->input, q, a->config);
}

/* ------------------------------------------------------------------------ */
/* One selection: check, build, solve, statistics, report                     */
/* ------------------------------------------------------------------------ */

/* Everything one fit holds; freed by fit_state_free. */
typedef struct fit_state {
    const fit_job *job;
    const fit_run *run;
    const fit_xpcs_args *a;
    const nlsq_xpcs_selection *sel;
    size_t plot_def[3], n_plot;
    const size_t *plot_angles;
    nlsq_xpcs_config cfg;
    nlsq_xpcs_model *m;
    size_t p, np, P, N;
    double *x, *cov, *errs, *truth_con, *truth_off;
    unsigned *flags;
    nlsq_interval *intervals;
    xpcs_test tests[FIT_XPCS_N_PHYS];   /* --test */
    int have_tests;
    nlsq_xpcs_global_result gstart;
    int gstart_ran;             /* the global start stage ran (--start global) */
    char *fingerprint;
    nlsq_problem pb;
    nlsq_options opt;
    progress_ctx pctx;
    const char *ckpt;           /* the checkpoint file written, or NULL */
    nlsq_result res;
    int status, have_cov;
    double seconds;
    size_t m_rows, n_excl;
    double dof;                 /* the library's: observations used - free parameters */
} fit_state;

static void fit_state_free(fit_state *s)
{
    void *owned[] = {s->fingerprint, s->intervals, s->flags, s->x, s->cov, s->errs,
                     s->truth_con, s->truth_off};
    for (size_t k = 0; k < sizeof owned / sizeof owned[0]; k++) free(owned[k]);
    nlsq_xpcs_model_free(s->m);
}

/* Stage "check": q in range, the plot angles exist, the plot files can be
 * written, the data are readable.  0 or EXIT_BAD_INPUT (printed). */
static int check_selection(fit_state *s)
{
    const fit_xpcs_args *a = s->a;
    const nlsq_xpcs_selection *sel = s->sel;
    char err[512] = "";
    if (!(sel->q >= NLSQ_XPCS_Q_MIN && sel->q <= NLSQ_XPCS_Q_MAX))   /* a value from the file */
        return bad_input(s->run, "%s: the file's q list gives q = %g 1/A, outside [%g, %g]",
                         a->input, sel->q, NLSQ_XPCS_Q_MIN, NLSQ_XPCS_Q_MAX);
    for (size_t k = 0; k < a->n_plot_angles; k++)
        if (a->plot_angles[k] >= sel->n_angles) {
            size_t bad = a->plot_angles[k], na = sel->n_angles;
            return bad_usage(s->run,
                             "--plot-angles: angle %zu does not exist (q = %g has %zu angles: 0..%zu)",
                             bad, sel->q, na, na ? na - 1 : 0);
        }
    s->n_plot = a->n_plot_angles;
    s->plot_angles = a->plot_angles;
    if (a->plot && !s->n_plot) {
        s->n_plot = xpcs_plot_default_angles(sel->n_angles, s->plot_def);
        s->plot_angles = s->plot_def;
    }
    if (fit_xpcs_check_plot_files(a, s->plot_angles, s->n_plot, err, sizeof err) != 0)
        return bad_input(s->run, "%s", err);
    if (nlsq_xpcs_check_data(s->job->f, sel, err, sizeof err) != 0)
        return bad_input(s->run, "%s", err);
    return 0;
}

/* Stage "build" (1): the model of the selection and the result buffers. */
static int build_model(fit_state *s)
{
    const fit_xpcs_args *a = s->a;
    const nlsq_xpcs_selection *sel = s->sel;
    char err[512] = "";
    nlsq_xpcs_source src;
    int rc = nlsq_xpcs_file_source(s->job->f, sel, &src);
    if (rc != 0)
        return bad_input(s->run, "%s: cannot read the selected matrices (%s)", a->input,
                         nlsq_xpcs_status_string(rc));
    nlsq_xpcs_config *cfg = &s->cfg;
    nlsq_xpcs_config_init(cfg);
    cfg->mode = a->mode;
    cfg->triangle = a->triangle;
    cfg->include_diagonal = a->include_diagonal;
    cfg->q = sel->q;
    cfg->gap = a->have_gap ? a->gap : NAN;
    cfg->dt = s->job->dt;
    cfg->k0 = a->k0 + sel->first_frame;
    cfg->sigma = a->sigma;
    cfg->memory_budget = (size_t)(a->budget_mib * 1048576.0);
    s->run->be->model_config(s->run->be->self, cfg);
    rc = nlsq_xpcs_model_create(&src, cfg, &s->m, err, sizeof err);
    if (rc != 0)
        return bad_input(s->run, "%s: %s", a->input, err[0] ? err : nlsq_xpcs_status_string(rc));
    size_t p = s->p = nlsq_xpcs_model_n_params(s->m);
    s->np = a->mode == NLSQ_XPCS_STATIC ? 3 : 7;
    s->P = sel->n_angles;
    s->N = sel->last_frame - sel->first_frame + 1;
    s->x = malloc(sizeof(double) * p);
    s->cov = malloc(sizeof(double) * p * p);
    s->errs = malloc(sizeof(double) * p);
    s->truth_con = malloc(sizeof(double) * s->P);
    s->truth_off = malloc(sizeof(double) * s->P);
    s->flags = calloc(p, sizeof(unsigned));
    if (!s->x || !s->cov || !s->errs || !s->truth_con || !s->truth_off || !s->flags)
        return bad_input(s->run, "out of memory (%zu parameters)", p);
    return 0;
}

/* Bounds of --config (parameter_space.bounds, held parameters) over the
 * model's defaults lo/hi, set on the model; then --init inside them.  0, or
 * EXIT_BAD_INPUT (printed). */
static int apply_bounds(fit_state *s, double *lo, double *hi)
{
    const fit_xpcs_args *a = s->a;
    nlsq_xpcs_default_bounds(s->m, lo, hi);
    for (size_t k = 0; k < s->np; k++) {
        if (!isnan(a->lower[k])) lo[k] = a->lower[k];
        if (!isnan(a->upper[k])) hi[k] = a->upper[k];
        if (lo[k] > hi[k])
            return bad_input(s->run, "%s: bounds of %s: min %g > max %g",
                             a->config ? a->config : "", nlsq_xpcs_param_name(k), lo[k], hi[k]);
    }
    if (nlsq_xpcs_model_set_bounds(s->m, lo, hi) != 0)
        return bad_input(s->run, "cannot set the bounds");
    int oob = -1;
    for (size_t k = 0; k < s->np; k++)
        if (!isnan(a->init[k]) && (a->init[k] < lo[k] || a->init[k] > hi[k])) oob = (int)k;
    if (oob >= 0)
        return bad_usage(s->run, "--init %s=%g is outside the bounds [%g, %g]",
                         nlsq_xpcs_param_name((size_t)oob), a->init[oob], lo[oob], hi[oob]);
    return 0;
}

/* Stage "build" (2): the bounds and the start point. */
static int start_point(fit_state *s)
{
    double *lo = malloc(sizeof(double) * s->p), *hi = malloc(sizeof(double) * s->p);
    int rc = !lo || !hi ? bad_input(s->run, "out of memory (%zu parameters)", s->p)
                        : apply_bounds(s, lo, hi);
    free(lo);
    free(hi);
    if (rc != 0) return rc;
    const fit_xpcs_backend *be = s->run->be;
    char err[512] = "";
    rc = be->initial_guess(be->self, s->m, &s->cfg, s->a->init, s->x, err, sizeof err);
    if (rc == 0 &&   /* --start global|local (xpcs_start.h) */
        (rc = xpcs_start_stage(s->m, s->a, s->x, s->run->msgs, &s->gstart, &s->gstart_ran)) != 0)
        snprintf(err, sizeof err, "%s", s->gstart.message);
    if (rc != 0)
        return bad_input(s->run, "%s: initial guess failed: %s", s->a->input,
                         err[0] ? err : nlsq_xpcs_status_string(rc));
    return 0;
}

/* Checkpoints: --checkpoint FILE, or keep saving to the --resume file so
 * that a resumed fit killed again can be resumed again; bound to this data
 * and these settings (fit_xpcs_fingerprint.h). */
static int checkpoint_options(fit_state *s)
{
    const fit_xpcs_args *a = s->a;
    char err[512] = "";
    s->ckpt = a->checkpoint ? a->checkpoint : a->resume;
    if (!s->ckpt) return 0;
    s->opt.checkpoint_path = s->ckpt;
    s->opt.checkpoint_every = a->checkpoint_every;
    s->fingerprint = fit_xpcs_fingerprint(a, s->job->f, s->sel, &s->cfg, &s->pb, err, sizeof err);
    if (!s->fingerprint) return bad_input(s->run, "%s: %s", a->input, err);
    if (a->resume && fit_xpcs_fingerprint_check(a->resume, s->fingerprint, err, sizeof err))
        return bad_input(s->run, "%s", err);
    s->opt.checkpoint_tag = s->fingerprint;
    s->opt.checkpoint_tag_size = strlen(s->fingerprint);
    return 0;
}

/* Stage "build" (3): the problem and the solver options: threads,
 * iterations, progress, checkpoints, and the backend's last word. */
static int solver_options(fit_state *s)
{
    const fit_xpcs_args *a = s->a;
    nlsq_options *opt = &s->opt;
    nlsq_xpcs_model_problem(s->m, &s->pb);
    nlsq_options_init(opt);
    opt->n_threads = a->n_threads;
    if (a->max_iter) opt->max_iter = a->max_iter;
    /* progress: with --progress, a line per iteration; else, when stderr is
     * a terminal, one line kept up to date (and ended after the fit) */
    s->pctx.print = a->progress ? 1 : (s->run->msgs == stderr && isatty(STDERR_FILENO) ? 2 : 0);
    if (s->pctx.print) {
        opt->progress = progress_cb;
        opt->progress_ctx = &s->pctx;
    }
    int rc = checkpoint_options(s);
    if (rc == 0) s->run->be->solver_options(s->run->be->self, opt);
    return rc;
}

/* The solve's failures that are bad input, not "not converged".  0 or
 * EXIT_BAD_INPUT (printed). */
static int solve_errors(const fit_state *s)
{
    const fit_xpcs_args *a = s->a;
    const char *msg = s->res.message[0] ? s->res.message : nlsq_status_string(s->status);
    if (s->status == NLSQ_ECALLBACK && s->res.callback_status != 0)   /* the model's words first */
        return bad_input(s->run, "%s", msg);
    if (a->resume && (s->status == NLSQ_EIO || s->status == NLSQ_ECHECKPOINT))
        return bad_input(s->run,
                         "--resume %s: %s (give the same input and options as the interrupted fit)",
                         a->resume, msg);
    if (s->status == NLSQ_EIO && s->ckpt)
        return bad_input(s->run, "--checkpoint %s: %s", s->ckpt, msg);
    if (s->status == NLSQ_EINVAL)   /* the problem the input and options make is invalid */
        return bad_input(s->run, "%s: %s", a->input, msg);
    return 0;
}

/* Stage "solve": the method (or the resume), and the covariance (Adam does
 * not fill it: computed at the end point). */
static int solve(fit_state *s)
{
    const fit_xpcs_args *a = s->a;
    size_t p = s->p;
    memset(&s->res, 0, sizeof s->res);
    for (size_t k = 0; k < p * p; k++) s->cov[k] = NAN;
    s->res.covariance = s->cov;
    double t0 = now_s();
    if (a->resume) s->status = nlsq_resume(&s->pb, &s->opt, a->resume, s->x, &s->res);
    else if (!strcmp(a->method, "adam")) s->status = nlsq_adam(&s->pb, &s->opt, s->x, &s->res);
    else if (!strcmp(a->method, "hybrid")) s->status = nlsq_hybrid(&s->pb, &s->opt, s->x, &s->res);
    else s->status = nlsq_lm(&s->pb, &s->opt, s->x, &s->res);
    if (s->pctx.shown) fputc('\n', stderr);
    if (s->status >= 0 || s->status == NLSQ_STALLED) {
        int filled = 0;
        for (size_t k = 0; k < p && !filled; k++)
            if (!isnan(s->cov[k * p + k])) filled = 1;
        if (!filled) {   /* its degrees of freedom are those of the same rows */
            nlsq_result cres;
            memset(&cres, 0, sizeof cres);
            filled = nlsq_covariance(&s->pb, &s->opt, s->x, s->cov, &cres) >= 0;
            if (filled && !s->res.n_obs) {
                s->res.n_obs = cres.n_obs;
                s->res.n_free = cres.n_free;
                s->res.dof = cres.dof;
                s->res.reduced_chi2 = cres.dof > 0 ? 2.0 * s->res.cost / cres.dof : NAN;
            }
        }
        s->have_cov = filled;
    }
    s->seconds = now_s() - t0;
    return solve_errors(s);
}

/* Stage "statistics": the library's degrees of freedom and scaled
 * covariance (or the robust one), the errors, the flags, the profile
 * intervals. */
static int statistics(fit_state *s)
{
    const fit_xpcs_args *a = s->a;
    size_t p = s->p;
    char err[512] = "";
    s->m_rows = nlsq_xpcs_model_n_rows(s->m);
    /* the observations the model's rows declared in the solver's passes
     * (none when no pass over all rows ended: the model's own count) */
    s->n_excl = s->res.n_obs ? s->m_rows - s->res.n_obs : nlsq_xpcs_model_n_excluded(s->m);
    s->dof = s->res.dof;
    if (s->dof < 0)   /* fewer usable data than free parameters: bad input, not "not converged" */
        return bad_input(s->run, "%s: only %zu usable data points (%zu, of which %zu not finite) "
                         "for %zu free parameters", a->input, s->res.n_obs, s->m_rows,
                         s->n_excl, s->res.n_free);
    int cov_ok = s->have_cov && s->dof > 0;
    double ratio[FIT_XPCS_RATIO_MAX];   /* robust / model variances: the profile threshold */
    int robust = cov_ok && a->errors == FIT_XPCS_ERRORS_ROBUST;
    if (robust && xpcs_robust_covariance(s->m, &s->pb, &s->opt, s->x, s->cov, ratio, s->np, err,
                                         sizeof err) != 0)
        return bad_input(s->run, "%s: %s", a->input, err);
    for (size_t k = 0; k < p; k++) {
        double v = cov_ok ? s->cov[k * p + k] : NAN;
        s->errs[k] = (isfinite(v) && v >= 0) ? sqrt(v) : NAN;
    }
    if (cov_ok && xpcs_flags_and_warning(&s->pb, s->x, s->cov, s->flags, s->np, p) < 0)
        return bad_input(s->run, "out of memory (%zu parameters)", p);
    /* a STALLED fit is usable (a flat valley); its profile shows how flat.
     * --profile undetermined with nothing undetermined profiles nothing:
     * "intervals" is then empty */
    unsigned mask = xpcs_profile_selection(a->profile_mask, a->profile_undetermined,
                                           cov_ok ? s->flags : NULL, s->np);
    /* the threshold's rule, for --profile and --test alike */
    const xpcs_profile_rule rule = {.level = a->profile_level, .robust_m = robust ? s->m : NULL,
                                    .ratio = robust ? ratio : NULL, .n_boot = a->boot,
                                    .s2 = s->res.reduced_chi2};
    if ((a->profile_mask || a->profile_undetermined) &&
        (s->status > 0 || s->status == NLSQ_STALLED)) {
        s->intervals = calloc(p, sizeof *s->intervals);
        if (!s->intervals) return bad_input(s->run, "out of memory (%zu parameters)", p);
        if (mask && xpcs_profiles(&s->pb, &s->opt, s->x, mask, s->np, &rule, s->intervals, err,
                                  sizeof err) != 0)
            return bad_input(s->run, "%s: %s", a->input, err);
    } else if (a->profile_mask || a->profile_undetermined) {
        /* not at a minimum (the iteration limit) or no result: a profile
         * measures the cost's rise from the minimum, so there is none */
        fprintf(stderr, "fit_xpcs: warning: --profile skipped: the fit did not end at a minimum "
                "(%s)\n", nlsq_status_name(s->status));
    }
    for (size_t k = 0; k < s->np; k++) s->have_tests |= !isnan(a->test[k]);
    /* a fit stopped at its limit is usable here: the test solves the
     * minimum again itself (under the same limit: where its held solves
     * end lower, xpcs_tests warns that the p-value is not valid) */
    if (s->have_tests && !(cov_ok && (s->status >= 0 || s->status == NLSQ_STALLED))) {
        s->have_tests = 0;
        fprintf(stderr, "fit_xpcs: warning: --test skipped: the fit has no usable result (%s)\n",
                nlsq_status_name(s->status));
    }
    if (s->have_tests) {
        if (xpcs_tests(&s->pb, &s->opt, s->x, a->test, s->np, &rule, s->tests, err,
                       sizeof err) != 0)
            return bad_input(s->run, "%s: %s", a->input, err);
    }
    return 0;
}

/* The report of the fit (xpcs_output.h), truth included when the file has
 * one. */
static void fill_report(fit_state *s, xpcs_report *r)
{
    int cov_ok = s->have_cov && s->dof > 0;
    const nlsq_result *res = &s->res;
    *r = (xpcs_report){
        .args = s->a, .file = s->job->f, .sel = s->sel, .cfg = &s->cfg,
        .dt_source = s->job->dt_source, .p = s->p, .np = s->np, .P = s->P, .N = s->N,
        .x = s->x, .err = s->errs, .cov = cov_ok ? s->cov : NULL, .status = s->status,
        .message = res->message[0] ? res->message : nlsq_status_string(s->status),
        .cost = res->cost, .reduced_chi2 = res->reduced_chi2,
        .dof = s->dof, .seconds = s->seconds, .n_rows = s->m_rows, .n_excluded = s->n_excl,
        .iterations = res->iterations, .n_eval = res->n_eval, .n_jac = res->n_jac,
        .n_phases = res->n_phases, .flags = cov_ok ? s->flags : NULL,
        .intervals = s->intervals, .tests = s->have_tests ? s->tests : NULL, .global = s->gstart_ran || s->gstart.ambiguous ? &s->gstart : NULL};
    memcpy(r->phases, res->phases, sizeof r->phases);
    int truth = read_truth(s->job->f, s->sel, r->truth_phys, s->truth_con, s->truth_off);
    r->have_truth = truth != 0;
    r->truth_contrast = truth == 1 ? s->truth_con : NULL;
    r->truth_offset = truth == 1 ? s->truth_off : NULL;
}

/* Stage "report": the table or JSON on out, the result file, the figures.
 * Returns the fit's exit code. */
static int report(fit_state *s)
{
    const fit_job *job = s->job;
    const fit_xpcs_args *a = s->a;
    FILE *out = s->run->out;
    char err[512] = "";
    xpcs_report r;
    fill_report(s, &r);
    if (a->json && job->rf) xpcs_print_json_object(out, &r);   /* an element of the array */
    else if (a->json) xpcs_print_json(out, &r);
    else xpcs_print_table(out, &r);
    if (job->rf && xpcs_result_add(job->rf, job->group, &r, a->save_fit, err, sizeof err) != 0)
        return bad_input(s->run, "%s", err);
    if (!job->rf && a->output && xpcs_write_result(a->output, &r, a->save_fit, err, sizeof err) != 0)
        return bad_input(s->run, "%s", err);
    if (a->plot && xpcs_plot(a->plot, &r, s->plot_angles, s->n_plot, err, sizeof err) != 0)
        return bad_input(s->run, "%s", err);
    return s->status > 0 ? EXIT_CONVERGED : EXIT_NOT_CONVERGED;
}

/* Fit one selection (one q, all its angles) and report it.  Returns the
 * exit code of this fit (one line on msgs for exit 2). */
static int fit_selection(const fit_job *job, const nlsq_xpcs_selection *sel)
{
    fit_state s;
    memset(&s, 0, sizeof s);
    s.job = job;
    s.run = job->run;
    s.a = job->a;
    s.sel = sel;
    int rc = check_selection(&s);
    if (!rc) rc = build_model(&s);
    if (!rc) rc = start_point(&s);
    if (!rc) rc = solver_options(&s);
    if (!rc) rc = solve(&s);
    if (!rc) rc = statistics(&s);
    if (!rc) xpcs_start_check(s.m, s.a, s.x, s.errs, s.run->msgs, &s.gstart, s.gstart_ran);
    if (!rc) rc = report(&s);
    fit_state_free(&s);
    return rc;
}

/* --q all: every q of the file in turn, with the same options; a JSON array
 * (or one table per q) and one group per q ("q_000", ... ascending q) in
 * --output.  One fit's memory at a time.  Exit code: 2 at the first q that
 * cannot be fitted (nothing is written then), else 1 when a fit did not
 * converge, else 0. */
static int fit_every_q(fit_job *job)
{
    const fit_run *run = job->run;
    char err[512] = "";
    size_t nq = 0;
    double *qs = distinct_q(job->f, &nq);
    if (!qs) return bad_input(run, "out of memory");
    xpcs_result_file rf;
    if (job->a->output && xpcs_result_open(&rf, job->a->output, err, sizeof err) != 0) {
        free(qs);
        return bad_input(run, "%s", err);
    }
    job->rf = job->a->output ? &rf : NULL;
    int worst = EXIT_CONVERGED;
    if (job->a->json) fputc('[', run->out);
    for (size_t k = 0; k < nq && worst != EXIT_BAD_INPUT; k++) {
        char group[32];
        snprintf(group, sizeof group, "q_%03zu", k);
        job->group = group;
        nlsq_xpcs_selection sel;
        if (select_q(job, qs[k], &sel) != 0) {
            worst = EXIT_BAD_INPUT;
            break;
        }
        if (job->a->json && k > 0) fputs(", ", run->out);
        int e = fit_selection(job, &sel);
        nlsq_xpcs_selection_free(&sel);
        if (e == EXIT_BAD_INPUT || (e == EXIT_NOT_CONVERGED && worst == EXIT_CONVERGED)) worst = e;
        if (!job->a->json && k + 1 < nq) fputc('\n', run->out);
    }
    if (job->a->json && worst != EXIT_BAD_INPUT) fputs("]\n", run->out);
    if (job->rf && xpcs_result_close(&rf, worst != EXIT_BAD_INPUT, err, sizeof err) != 0 &&
        worst != EXIT_BAD_INPUT)
        worst = bad_input(run, "%s", err);
    job->rf = NULL;
    free(qs);
    return worst;
}

/* ------------------------------------------------------------------------ */
/* The command                                                                */
/* ------------------------------------------------------------------------ */

/* The results are output too: a failed write is not success.  stdout is
 * closed (safe_io.c); another stream is flushed and left to its owner. */
static int close_output(FILE *out, char *err, size_t es)
{
    if (out == stdout) return safe_close_stdout(err, es);
    if (fflush(out) == 0 && !ferror(out)) return 0;
    snprintf(err, es, "cannot write the results");
    return -1;
}

/* The command once its arguments are complete (a by value: its strings
 * belong to argv or to the --config store, both alive during the call). */
static int fit_with_args(const fit_run *run, fit_xpcs_args a)
{
    char err[512] = "";
    if (a.plot && !xpcs_plot_available())
        return bad_usage(run, "--plot: this fit_xpcs was built without libpng");
    if (fit_xpcs_check_outputs(&a, err, sizeof err) != 0) return bad_input(run, "%s", err);
    if (run->be->rank != 0) a.output = a.plot = NULL;   /* only rank 0 writes files */
    if (a.resume && check_resume(run, &a) != 0) return EXIT_BAD_INPUT;
    fit_job job;
    memset(&job, 0, sizeof job);
    job.run = run;
    job.a = &a;
    if (open_input(&job) != 0) return EXIT_BAD_INPUT;
    int exit_code;
    if (a.q_all) {
        exit_code = fit_every_q(&job);
    } else {
        nlsq_xpcs_selection sel;
        memset(&sel, 0, sizeof sel);
        exit_code = select_q(&job, a.q, &sel) != 0 ? EXIT_BAD_INPUT : fit_selection(&job, &sel);
        nlsq_xpcs_selection_free(&sel);
    }
    nlsq_xpcs_close(job.f);
    /* the results on stdout are output too: a failed write is not success */
    if (exit_code != EXIT_BAD_INPUT && close_output(run->out, err, sizeof err) != 0)
        exit_code = bad_input(run, "%s", err);
    return exit_code;
}

/* --help: the usage text on out. */
static int print_usage(const fit_run *run)
{
    char err[512];
    size_t n = fit_xpcs_usage(NULL, 0);
    char *text = malloc(n + 1);
    if (!text) return bad_input(run, "out of memory");
    fit_xpcs_usage(text, n + 1);
    fputs(text, run->out);
    free(text);
    return close_output(run->out, err, sizeof err) ? bad_input(run, "%s", err) : EXIT_CONVERGED;
}

void fit_xpcs_process_init(void)
{
    /* files: safe_io.h (standard descriptors, the umask); HDF5 does not
     * close files again at exit (a close that failed on a full disk would
     * crash there) */
    safe_io_init();
    H5dont_atexit();
}

int fit_xpcs_main(int argc, char **argv, FILE *out, FILE *msgs, const fit_xpcs_backend *be)
{
    fit_xpcs_backend serial;
    if (!be) {
        fit_xpcs_backend_serial(&serial);
        be = &serial;
    }
    const fit_run run = {out, msgs, be};
    /* HDF5 never prints (every failure is our one line): this thread's
     * default error stack */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fit_xpcs_args a;
    char perr[512];
    int rc = fit_xpcs_parse_args(argc, argv, &a, perr, sizeof perr);
    if (rc == FIT_XPCS_ARGS_HELP) return print_usage(&run);
    if (rc != FIT_XPCS_ARGS_OK) {
        fprintf(msgs, "fit_xpcs: %s\n", perr);
        return EXIT_BAD_INPUT;
    }
    if (!a.config) return fit_with_args(&run, a);
    /* --config: the file fills what the command line left out */
    xpcs_config_store store;
    if (xpcs_config_apply(a.config, &a, &store, perr, sizeof perr) != 0)
        rc = bad_input(&run, "%s", perr);
    else if (fit_xpcs_args_check(&a, perr, sizeof perr) != FIT_XPCS_ARGS_OK)
        rc = (fprintf(msgs, "fit_xpcs: %s\n", perr), EXIT_BAD_INPUT);
    else
        rc = fit_with_args(&run, a);
    xpcs_config_store_free(&store);
    return rc;
}
