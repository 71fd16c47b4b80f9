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
 * The command line is parsed by fit_xpcs_args.c (pure; fuzzed on its own);
 * the table, JSON and HDF5 result file are written by xpcs_output.c, the PNG
 * figures by xpcs_plot.c.  docs/xpcs.md documents every option, the JSON
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
 * another.  The environment variable FIT_XPCS_TEST_ITER_DELAY_MS (a test
 * hook) sleeps that long after every iteration.
 *
 * Statistics.  Non-finite data entries are excluded by the model (zero
 * residual and Jacobian row) but are still rows of the problem, so the
 * solver's s^2 = 2 cost / (m - p) counts them.  This program uses the true
 * degrees of freedom dof = m - n_excluded - p:
 *     reduced_chi2 = 2 cost / dof,
 *     covariance  = solver covariance * (m - p) / dof   (= 2 cost/dof (J^T J)^-1),
 * and errors are the square roots of the diagonal (null where undetermined).
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
#include "fit_xpcs_args.h"
#ifdef FIT_XPCS_MPI   /* fit_xpcs_mpi: the same command over MPI ranks, docs/mpi.md */
#include "nlsq_mpi.h"
#endif
#include "xpcs_output.h"
#include "xpcs_plot.h"
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

/* Where the one-line messages go: stderr for the command, the caller's
 * stream for fit_xpcs_main's other callers (fit_xpcs_embed.c, which runs one
 * call at a time). */
static FILE *msg_stream;

/* One line on stderr, "fit_xpcs: " + the message + tail: control characters
 * (from file names, argv or library messages) are replaced by '?' so that
 * the message stays one line. */
static void one_line(const char *tail, const char *fmt, va_list ap)
{
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    for (char *c = buf; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    fprintf(msg_stream ? msg_stream : stderr, "fit_xpcs: %s%s\n", buf, tail);
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    one_line(" (try --help)", fmt, ap);
    va_end(ap);
    return EXIT_BAD_INPUT;
}

static int bad_input(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_input(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    one_line("", fmt, ap);
    va_end(ap);
    return EXIT_BAD_INPUT;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct progress_ctx {
    int print;          /* 1: a line per iteration (--progress); 2: one line kept
                           up to date (stderr is a terminal) */
    long delay_ms;      /* test hook: FIT_XPCS_TEST_ITER_DELAY_MS */
    int shown;          /* a terminal line is on screen */
} progress_ctx;

static int progress_cb(void *ctx, const nlsq_progress_info *info)
{
    progress_ctx *pc = ctx;
    if (pc->print)
        fprintf(stderr, "%sfit_xpcs: %s %4zu  cost %.10e  |g| %.3e  %s %.3e  %.2f s%s",
                pc->print == 2 ? "\r" : "",
                info->phase == NLSQ_PHASE_ADAM ? "epoch" : "iter ", info->iteration,
                info->cost, info->grad_norm, info->phase == NLSQ_PHASE_ADAM ? "lr" : "lambda",
                info->lambda, info->elapsed, pc->print == 2 ? "" : "\n");
    if (pc->print == 2) {
        fflush(stderr);
        pc->shown = 1;
    }
    if (pc->delay_ms > 0) {
        struct timespec ts = {pc->delay_ms / 1000, (pc->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* The solver recorded in a checkpoint file (header field at byte 16, see
 * src/checkpoint.c): 1 LM, 2 Adam, 3 hybrid; 0 when unreadable (nlsq_resume
 * then reports why). */
static int checkpoint_solver(const char *path)
{
    char err[8];
    FILE *fp = safe_open_input("--resume", path, err, sizeof err);
    if (!fp) return 0;
    unsigned char h[20];
    size_t n = fread(h, 1, sizeof h, fp);
    fclose(fp);
    if (n != sizeof h || memcmp(h, "NLSQCKP", 8) != 0) return 0;
    uint32_t v;
    memcpy(&v, h + 16, sizeof v);
    return v >= 1 && v <= 3 ? (int)v : 0;
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

/* The frame time: the file's (docs/xpcs.md, "Input files"), or --dt.  When
 * both exist and differ by more than 1e-6 relative, --dt is used and one
 * warning line is printed.  source gets where dt came from.  0, or
 * EXIT_BAD_INPUT (message printed) when neither exists. */
static int resolve_dt(const fit_xpcs_args *a, nlsq_xpcs_file *f, double *dt, char *source,
                      size_t size)
{
    double fdt = NAN;
    char fsrc[384];
    int have_file = nlsq_xpcs_file_dt(f, &fdt, fsrc, sizeof fsrc) == 0;
    if (!a->have_dt && !have_file)
        return bad_input("%s: no frame time: %s; give --dt SECONDS", a->input, fsrc);
    if (!a->have_dt) {
        *dt = fdt;
        snprintf(source, size, "%s", fsrc);
        return 0;
    }
    *dt = a->dt;
    if (have_file && fabs(a->dt - fdt) > 1e-6 * fabs(fdt)) {
        fprintf(stderr, "fit_xpcs: warning: --dt %.10g differs from the file's dt %.10g; "
                "using --dt\n", a->dt, fdt);
        snprintf(source, size, "--dt (the file's %.17g differs)", fdt);
    } else {
        snprintf(source, size, have_file ? "--dt (equal to the file's)" : "--dt");
    }
    return 0;
}

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

/* Bounds of --config (parameter_space.bounds, held parameters) over the
 * model's defaults lo/hi, set on the model.  0, or EXIT_BAD_INPUT (printed). */
static int apply_bounds(const fit_xpcs_args *a, nlsq_xpcs_model *m, size_t np, double *lo,
                        double *hi)
{
    for (size_t k = 0; k < np; k++) {
        if (!isnan(a->lower[k])) lo[k] = a->lower[k];
        if (!isnan(a->upper[k])) hi[k] = a->upper[k];
        if (lo[k] > hi[k])
            return bad_input("%s: bounds of %s: min %g > max %g", a->config ? a->config : "",
                             nlsq_xpcs_param_name(k), lo[k], hi[k]);
    }
    return nlsq_xpcs_model_set_bounds(m, lo, hi) == 0 ? 0 : bad_input("cannot set the bounds");
}

/* Is phi (degrees) inside [lo, hi], modulo 360? */
static int phi_in_range(double phi, double lo, double hi)
{
    double d = fmod(phi - lo, 360.0);
    if (d < 0) d += 360.0;
    return hi - lo >= 360.0 || d <= hi - lo;
}

/* Select q (nearest q_request) and, with phi ranges (--config
 * phi_filtering), keep only the angles inside one.  0, or EXIT_BAD_INPUT
 * (printed; sel freed). */
static int select_q(const fit_xpcs_args *a, nlsq_xpcs_file *f, double q_request,
                    nlsq_xpcs_selection *sel)
{
    char err[512] = "";
    int rc = nlsq_xpcs_select(f, q_request, a->first, a->last, sel, err, sizeof err);
    if (rc != 0) return bad_input("%s", err[0] ? err : nlsq_xpcs_status_string(rc));
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
    return bad_input("%s: no angle of q = %g lies in phi_filtering.target_ranges of %s", a->input,
                     q, a->config);
}

/* What a fit of one selection needs besides the selection. */
typedef struct fit_job {
    fit_xpcs_args *a;
    nlsq_xpcs_file *f;
    FILE *out;
    double dt;                  /* resolve_dt */
    const char *dt_source;
    xpcs_result_file *rf;       /* --q all: the result file (group per q; NULL: --output alone) */
    const char *group;          /* its group for this q */
} fit_job;

/* Fit one selection (one q, all its angles) and report it: the table or
 * the JSON object on out, the result file, the figures.  Returns the exit
 * code of this fit (one line on stderr for exit 2). */
static int fit_selection(const fit_job *job, const nlsq_xpcs_selection *sel)
{
    fit_xpcs_args *a = job->a;
    nlsq_xpcs_file *f = job->f;
    FILE *out = job->out;
    char err[512] = "", perr[512];
    int rc;
    if (!(sel->q >= NLSQ_XPCS_Q_MIN && sel->q <= NLSQ_XPCS_Q_MAX))   /* a value from the file */
        return bad_input("%s: the file's q list gives q = %g 1/A, outside [%g, %g]", a->input,
                         sel->q, NLSQ_XPCS_Q_MIN, NLSQ_XPCS_Q_MAX);
    for (size_t k = 0; k < a->n_plot_angles; k++)
        if (a->plot_angles[k] >= sel->n_angles) {
            size_t bad = a->plot_angles[k], na = sel->n_angles;
            return bad_usage("--plot-angles: angle %zu does not exist (q = %g has %zu angles: 0..%zu)",
                             bad, sel->q, na, na ? na - 1 : 0);
        }

    size_t plot_def[3], n_plot = a->n_plot_angles;
    const size_t *plot_angles = a->plot_angles;
    if (a->plot && !n_plot) {
        n_plot = xpcs_plot_default_angles(sel->n_angles, plot_def);
        plot_angles = plot_def;
    }
    if (fit_xpcs_check_plot_files(a, plot_angles, n_plot, perr, sizeof perr) != 0)
        return bad_input("%s", perr);

    if (nlsq_xpcs_check_data(f, sel, err, sizeof err) != 0) return bad_input("%s", err);

    nlsq_xpcs_source src;
    nlsq_xpcs_model *m = NULL;
    double *x = NULL, *cov = NULL, *errs = NULL, *truth_con = NULL, *truth_off = NULL;
    unsigned *flags = NULL;
    nlsq_interval *intervals = NULL;
    char *fingerprint = NULL;
    int exit_code = EXIT_BAD_INPUT;
    size_t P = sel->n_angles, N = sel->last_frame - sel->first_frame + 1;

    rc = nlsq_xpcs_file_source(f, sel, &src);
    if (rc != 0) {
        bad_input("%s: cannot read the selected matrices (%s)", a->input, nlsq_xpcs_status_string(rc));
        goto done;
    }
    nlsq_xpcs_config cfg;
    nlsq_xpcs_config_init(&cfg);
    cfg.mode = a->mode;
    cfg.triangle = a->triangle;
    cfg.include_diagonal = a->include_diagonal;
    cfg.q = sel->q;
    cfg.gap = a->have_gap ? a->gap : NAN;
    cfg.dt = job->dt;
    cfg.k0 = a->k0 + sel->first_frame;
    cfg.sigma = a->sigma;
    cfg.memory_budget = (size_t)(a->budget_mib * 1048576.0);
#ifdef FIT_XPCS_MPI
    nlsq_mpi_cli_xpcs_config(&cfg);    /* several ranks: stream, each reads its own rows */
#endif
    rc = nlsq_xpcs_model_create(&src, &cfg, &m, err, sizeof err);
    if (rc != 0) {
        bad_input("%s: %s", a->input, err[0] ? err : nlsq_xpcs_status_string(rc));
        goto done;
    }

    size_t p = nlsq_xpcs_model_n_params(m), np = a->mode == NLSQ_XPCS_STATIC ? 3 : 7;
    x = malloc(sizeof(double) * p);
    cov = malloc(sizeof(double) * p * p);
    errs = malloc(sizeof(double) * p);
    truth_con = malloc(sizeof(double) * P);
    truth_off = malloc(sizeof(double) * P);
    flags = calloc(p, sizeof(unsigned));
    if (!x || !cov || !errs || !truth_con || !truth_off || !flags) {
        bad_input("out of memory (%zu parameters)", p);
        goto done;
    }
    {
        double *lo = malloc(sizeof(double) * p), *hi = malloc(sizeof(double) * p);
        if (!lo || !hi) {
            free(lo);
            free(hi);
            bad_input("out of memory (%zu parameters)", p);
            goto done;
        }
        nlsq_xpcs_default_bounds(m, lo, hi);
        if (apply_bounds(a, m, np, lo, hi) != 0) {
            free(lo);
            free(hi);
            goto done;
        }
        int oob = -1;
        for (size_t k = 0; k < np; k++)
            if (!isnan(a->init[k]) && (a->init[k] < lo[k] || a->init[k] > hi[k])) oob = (int)k;
        if (oob >= 0) {
            bad_usage("--init %s=%g is outside the bounds [%g, %g]", nlsq_xpcs_param_name((size_t)oob),
                      a->init[oob], lo[oob], hi[oob]);
            free(lo);
            free(hi);
            goto done;
        }
        free(lo);
        free(hi);
    }
#ifdef FIT_XPCS_MPI
    rc = nlsq_mpi_cli_xpcs_initial_guess(m, &cfg, a->init, x);   /* from each rank's rows */
#else
    rc = nlsq_xpcs_initial_guess(m, a->init, x);
#endif
    if (rc != 0) {
        const char *le = nlsq_xpcs_model_last_error(m);
        bad_input("%s: initial guess failed: %s", a->input, le[0] ? le : nlsq_xpcs_status_string(rc));
        goto done;
    }

    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = a->n_threads;
    if (a->max_iter) opt.max_iter = a->max_iter;
#ifdef FIT_XPCS_MPI
    nlsq_mpi_cli_options(&opt);        /* this rank's rows, reduce over MPI_COMM_WORLD */
#endif
    /* progress: with --progress, a line per iteration; else, when stderr is
     * a terminal, one line kept up to date (and ended after the fit) */
    progress_ctx pctx = {a->progress ? 1 : (msg_stream == stderr && isatty(STDERR_FILENO) ? 2 : 0), 0, 0};
    {
        const char *d = getenv("FIT_XPCS_TEST_ITER_DELAY_MS");
        if (d && *d) pctx.delay_ms = strtol(d, NULL, 10);
        if (pctx.delay_ms < 0 || pctx.delay_ms > 10000) pctx.delay_ms = 0;
    }
    if (pctx.print || pctx.delay_ms > 0) {
        opt.progress = progress_cb;
        opt.progress_ctx = &pctx;
    }
    /* Checkpoints: --checkpoint FILE, or keep saving to the --resume file so
     * that a resumed fit killed again can be resumed again. */
    const char *ckpt = a->checkpoint ? a->checkpoint : a->resume;
    if (ckpt) {
        opt.checkpoint_path = ckpt;
        opt.checkpoint_every = a->checkpoint_every;
        /* bound to this data and these settings (fit_xpcs_fingerprint.h) */
        fingerprint = fit_xpcs_fingerprint(a, f, sel, &cfg, &pb, err, sizeof err);
        if (!fingerprint) {
            bad_input("%s: %s", a->input, err);
            goto done;
        }
        if (a->resume && fit_xpcs_fingerprint_check(a->resume, fingerprint, err, sizeof err)) {
            bad_input("%s", err);
            goto done;
        }
        opt.checkpoint_tag = fingerprint;
        opt.checkpoint_tag_size = strlen(fingerprint);
    }

    nlsq_result res;
    memset(&res, 0, sizeof res);
    for (size_t k = 0; k < p * p; k++) cov[k] = NAN;
    res.covariance = cov;
    double t0 = now_s();
    int status;
    if (a->resume) status = nlsq_resume(&pb, &opt, a->resume, x, &res);
    else if (!strcmp(a->method, "adam")) status = nlsq_adam(&pb, &opt, x, &res);
    else if (!strcmp(a->method, "hybrid")) status = nlsq_hybrid(&pb, &opt, x, &res);
    else status = nlsq_lm(&pb, &opt, x, &res);
    if (pctx.shown) fputc('\n', stderr);
    int have_cov = 0;
    if (status >= 0 || status == NLSQ_STALLED) {
        /* nlsq_lm / nlsq_hybrid fill the covariance; Adam does not */
        int filled = 0;
        for (size_t k = 0; k < p && !filled; k++)
            if (!isnan(cov[k * p + k])) filled = 1;
        if (!filled) {
            nlsq_result cres;
            memset(&cres, 0, sizeof cres);
            filled = nlsq_covariance(&pb, &opt, x, cov, &cres) >= 0;
        }
        have_cov = filled;
    }
    double seconds = now_s() - t0;

    const char *le = nlsq_xpcs_model_last_error(m);
    if (status == NLSQ_ECALLBACK && le[0]) {
        bad_input("%s", le);
        goto done;
    }
    if (a->resume && (status == NLSQ_EIO || status == NLSQ_ECHECKPOINT)) {
        bad_input("--resume %s: %s (give the same input and options as the interrupted fit)",
                  a->resume, res.message[0] ? res.message : nlsq_status_string(status));
        goto done;
    }
    if (status == NLSQ_EIO && ckpt) {
        bad_input("--checkpoint %s: %s", ckpt,
                  res.message[0] ? res.message : nlsq_status_string(status));
        goto done;
    }

    if (status == NLSQ_EINVAL) {   /* the problem the input and options make is invalid */
        bad_input("%s: %s", a->input, res.message[0] ? res.message : nlsq_status_string(status));
        goto done;
    }
    size_t m_rows = nlsq_xpcs_model_n_rows(m), n_excl = nlsq_xpcs_model_n_excluded(m);
#ifdef FIT_XPCS_MPI
    n_excl = nlsq_mpi_cli_xpcs_n_excluded(m);   /* over all ranks */
#endif
    /* fixed parameters (lower == upper) are not parameters of the fit */
    size_t p_free = p - res.n_fixed;
    double dof = (double)m_rows - (double)n_excl - (double)p_free;
    if (dof < 0) {   /* fewer usable data than free parameters: bad input, not "not converged" */
        bad_input("%s: only %zu usable data points (%zu, of which %zu not finite) for %zu free "
                  "parameters", a->input, m_rows - n_excl, m_rows, n_excl, p_free);
        goto done;
    }
    /* The solver scaled by 2 cost / (m - p_free); rescale to 2 cost / dof. */
    double cscale = ((double)m_rows - (double)p_free) / dof;
    if (have_cov && dof > 0)
        for (size_t k = 0; k < p * p; k++) cov[k] *= cscale;
    if (have_cov && dof > 0 && a->errors == FIT_XPCS_ERRORS_ROBUST &&
        xpcs_robust_covariance(m, &pb, &opt, x, cov, err, sizeof err) != 0) {
        bad_input("%s: %s", a->input, err);
        goto done;
    }
    for (size_t k = 0; k < p; k++) {
        double v = have_cov && dof > 0 ? cov[k * p + k] : NAN;
        errs[k] = (isfinite(v) && v >= 0) ? sqrt(v) : NAN;
    }

    if (have_cov && dof > 0 && xpcs_flags_and_warning(&pb, x, cov, flags, np, p) < 0) {
        bad_input("out of memory (%zu parameters)", p);
        goto done;
    }

    if (a->profile_mask && status > 0) {
        intervals = calloc(p, sizeof *intervals);
        if (!intervals) {
            bad_input("out of memory (%zu parameters)", p);
            goto done;
        }
        if (xpcs_profiles(&pb, &opt, x, a->profile_mask, np, intervals, err, sizeof err) != 0) {
            bad_input("%s: %s", a->input, err);
            goto done;
        }
    }

    xpcs_report r;
    memset(&r, 0, sizeof r);
    r.flags = have_cov && dof > 0 ? flags : NULL;
    r.intervals = intervals;
    r.args = a;
    r.file = f;
    r.sel = sel;
    r.cfg = &cfg;
    r.dt_source = job->dt_source;
    r.p = p;
    r.np = np;
    r.P = P;
    r.N = N;
    r.x = x;
    r.err = errs;
    r.cov = have_cov && dof > 0 ? cov : NULL;
    r.status = status;
    r.message = res.message[0] ? res.message : nlsq_status_string(status);
    r.cost = res.cost;
    r.reduced_chi2 = dof > 0 ? 2.0 * res.cost / dof : NAN;
    r.dof = dof;
    r.seconds = seconds;
    r.n_rows = m_rows;
    r.n_excluded = n_excl;
    r.iterations = res.iterations;
    r.n_eval = res.n_eval;
    r.n_jac = res.n_jac;
    r.n_phases = res.n_phases;
    memcpy(r.phases, res.phases, sizeof r.phases);
    int truth = read_truth(f, sel, r.truth_phys, truth_con, truth_off);
    r.have_truth = truth != 0;
    r.truth_contrast = truth == 1 ? truth_con : NULL;
    r.truth_offset = truth == 1 ? truth_off : NULL;

    if (a->json && job->rf) xpcs_print_json_object(out, &r);   /* an element of the array */
    else if (a->json) xpcs_print_json(out, &r);
    else xpcs_print_table(out, &r);
    exit_code = status > 0 ? EXIT_CONVERGED : EXIT_NOT_CONVERGED;
    if (job->rf && xpcs_result_add(job->rf, job->group, &r, a->save_fit, err, sizeof err) != 0) {
        exit_code = bad_input("%s", err);
        goto done;
    }
    if (!job->rf && a->output &&
        xpcs_write_result(a->output, &r, a->save_fit, err, sizeof err) != 0) {
        exit_code = bad_input("%s", err);
        goto done;
    }
    if (a->plot && xpcs_plot(a->plot, &r, plot_angles, n_plot, err, sizeof err) != 0) {
        exit_code = bad_input("%s", err);
        goto done;
    }

done:
    free(fingerprint);
    free(intervals);
    free(flags);
    free(x);
    free(cov);
    free(errs);
    free(truth_con);
    free(truth_off);
    nlsq_xpcs_model_free(m);
    return exit_code;
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

/* --q all: every q of the file in turn, with the same options; a JSON array
 * (or one table per q) and one group per q ("q_000", ... ascending q) in
 * --output.  One fit's memory at a time.  Exit code: 2 at the first q that
 * cannot be fitted (nothing is written then), else 1 when a fit did not
 * converge, else 0. */
static int fit_every_q(fit_job *job)
{
    char err[512] = "";
    size_t nq = 0;
    double *qs = distinct_q(job->f, &nq);
    if (!qs) return bad_input("out of memory");
    xpcs_result_file rf;
    if (job->a->output && xpcs_result_open(&rf, job->a->output, err, sizeof err) != 0) {
        free(qs);
        return bad_input("%s", err);
    }
    job->rf = job->a->output ? &rf : NULL;
    int worst = EXIT_CONVERGED;
    if (job->a->json) fputc('[', job->out);
    for (size_t k = 0; k < nq && worst != EXIT_BAD_INPUT; k++) {
        char group[32];
        snprintf(group, sizeof group, "q_%03zu", k);
        job->group = group;
        nlsq_xpcs_selection sel;
        if (select_q(job->a, job->f, qs[k], &sel) != 0) {
            worst = EXIT_BAD_INPUT;
            break;
        }
        if (job->a->json && k > 0) fputs(", ", job->out);
        int e = fit_selection(job, &sel);
        nlsq_xpcs_selection_free(&sel);
        if (e == EXIT_BAD_INPUT || (e == EXIT_NOT_CONVERGED && worst == EXIT_CONVERGED)) worst = e;
        if (!job->a->json && k + 1 < nq) fputc('\n', job->out);
    }
    if (job->a->json && worst != EXIT_BAD_INPUT) fputs("]\n", job->out);
    if (job->rf && xpcs_result_close(&rf, worst != EXIT_BAD_INPUT, err, sizeof err) != 0 &&
        worst != EXIT_BAD_INPUT)
        worst = bad_input("%s", err);
    job->rf = NULL;
    free(qs);
    return worst;
}

static int fit_with_args(fit_xpcs_args a, FILE *out);

int fit_xpcs_main(int argc, char **argv, FILE *out, FILE *msgs)
{
    msg_stream = msgs;
#ifdef FIT_XPCS_MPI
    nlsq_mpi_cli_init(&argc, &argv);   /* MPI_Init; only rank 0 prints; finalize at exit */
#endif
    /* files: safe_io.h; HDF5 never prints (every failure is our one line)
     * and does not close files again at exit (a close that failed on a full
     * disk would crash there) */
    safe_io_init();
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fit_xpcs_args a;
    char perr[512];
    int rc = fit_xpcs_parse_args(argc, argv, &a, perr, sizeof perr);
    if (rc == FIT_XPCS_ARGS_HELP) {
        size_t n = fit_xpcs_usage(NULL, 0);
        char *text = malloc(n + 1);
        if (!text) return bad_input("out of memory");
        fit_xpcs_usage(text, n + 1);
        fputs(text, out);
        free(text);
        return close_output(out, perr, sizeof perr) ? bad_input("%s", perr) : EXIT_CONVERGED;
    }
    if (rc != FIT_XPCS_ARGS_OK) {
        fprintf(msgs, "fit_xpcs: %s\n", perr);
        return EXIT_BAD_INPUT;
    }
    if (!a.config) return fit_with_args(a, out);
    /* --config: the file fills what the command line left out */
    xpcs_config_store store;
    if (xpcs_config_apply(a.config, &a, &store, perr, sizeof perr) != 0) {
        xpcs_config_store_free(&store);
        return bad_input("%s", perr);
    }
    if (fit_xpcs_args_check(&a, perr, sizeof perr) != FIT_XPCS_ARGS_OK) {
        xpcs_config_store_free(&store);
        fprintf(msgs, "fit_xpcs: %s\n", perr);
        return EXIT_BAD_INPUT;
    }
    rc = fit_with_args(a, out);
    xpcs_config_store_free(&store);
    return rc;
}

/* The command once its arguments are complete (a by value: its strings
 * belong to argv or to the --config store, both alive during the call). */
static int fit_with_args(fit_xpcs_args a, FILE *out)
{
    char perr[512];
    int rc;
    if (a.plot && !xpcs_plot_available())
        return bad_usage("--plot: this fit_xpcs was built without libpng");
    if (fit_xpcs_check_outputs(&a, perr, sizeof perr) != 0) return bad_input("%s", perr);
#ifdef FIT_XPCS_MPI
    if (nlsq_mpi_cli_rank() != 0) a.output = a.plot = NULL;   /* only rank 0 writes files */
#endif
    if (a.resume) {
        static const char *const solver_names[4] = {"", "lm", "adam", "hybrid"};
        FILE *probe = safe_open_input("--resume", a.resume, perr, sizeof perr);
        if (!probe) return bad_input("%s", perr);
        fclose(probe);
        int sv = checkpoint_solver(a.resume);
        if (sv && strcmp(solver_names[sv], a.method) != 0)
            return bad_usage("--resume %s: the checkpoint is of --method %s, not %s", a.resume,
                             solver_names[sv], a.method);
    }

    char err[512] = "";
    nlsq_xpcs_file *f = NULL;
    rc = nlsq_xpcs_open(a.input, &f, err, sizeof err);
    if (rc != 0)
        return bad_input("%s", err[0] ? err : nlsq_xpcs_status_string(rc));

    size_t nf = nlsq_xpcs_n_frames(f);
    if (a.have_frames && (a.first >= nf || (a.last != SIZE_MAX && a.last >= nf))) {
        nlsq_xpcs_close(f);
        if (a.last == SIZE_MAX)
            return bad_input("%s: --frames %zu: is outside the file's frames 0..%zu",
                             a.input, a.first, nf ? nf - 1 : 0);
        return bad_input("%s: --frames %zu:%zu is outside the file's frames 0..%zu",
                         a.input, a.first, a.last, nf ? nf - 1 : 0);
    }

    fit_job job = {&a, f, out, NAN, NULL, NULL, NULL};
    char dt_source[512];
    if (resolve_dt(&a, f, &job.dt, dt_source, sizeof dt_source) != 0) {
        nlsq_xpcs_close(f);
        return EXIT_BAD_INPUT;
    }
    job.dt_source = dt_source;
    int exit_code;
    if (a.q_all) {
        exit_code = fit_every_q(&job);
    } else {
        nlsq_xpcs_selection sel;
        memset(&sel, 0, sizeof sel);
        exit_code = select_q(&a, f, a.q, &sel) != 0 ? EXIT_BAD_INPUT : fit_selection(&job, &sel);
        nlsq_xpcs_selection_free(&sel);
    }
    nlsq_xpcs_close(f);
    /* the results on stdout are output too: a failed write is not success */
    if (exit_code != EXIT_BAD_INPUT && close_output(out, err, sizeof err) != 0)
        exit_code = bad_input("%s", err);
    return exit_code;
}

#ifndef FIT_XPCS_EMBED
int main(int argc, char **argv)
{
    return fit_xpcs_main(argc, argv, stdout, stderr);
}
#endif
