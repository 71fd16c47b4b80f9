/*
 * nlsq_xpcs.h - XPCS two-time correlation data and the laminar-flow model.
 *
 * Two parts:
 *   1. the reader: opens APS 8-ID-I HDF5 files ("APS old" and "APS-U"
 *      layouts), lists q and phi, selects the q nearest a requested value and
 *      serves row blocks of the rebuilt full c2 matrices (full = half +
 *      half^T, diagonal halved) in bounded memory;
 *   2. the model: builds an nlsq_problem whose rows are the (angle, i, j)
 *      entries of the selected matrices and whose residuals are
 *      (c2 - g2) / sigma, with an analytic Jacobian and a sparse column
 *      pattern (each row touches the 7 physical columns plus its angle's
 *      contrast and offset).
 * Synthetic data (files and rows made from given parameters, with the truth
 * they were made from) are in nlsq_xpcs_synth.h, for tests and benchmarks.
 *
 * Conventions: as in nlsq.h.  Every function returns 0 or a negative status
 * (the nlsq_status codes, plus the NLSQ_XPCS_E* codes below); errors write
 * one line to `err` (when not NULL) naming the file and the dataset.  Objects
 * are opaque, created and freed by the library; one object must not be used
 * from two threads at once, except that the nlsq_problem built by
 * nlsq_xpcs_model_problem may be evaluated concurrently on disjoint rows (the
 * solvers do so).  HDF5 is used through its C API; the library never prints
 * HDF5's error stack (it is silenced during the library's own calls).
 */
#ifndef NLSQ_XPCS_H
#define NLSQ_XPCS_H

#include "nlsq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reader / model error codes (besides NLSQ_EINVAL, NLSQ_ENOMEM, ...). */
#define NLSQ_XPCS_EFILE   (-20)  /* cannot open: missing, unreadable, not HDF5 */
#define NLSQ_XPCS_EFORMAT (-21)  /* layout not recognised, missing dataset, bad shape/rank/type */
#define NLSQ_XPCS_ERANGE  (-22)  /* q, angle or frame range not in the file */

/** Message for any status code, XPCS codes included (never NULL). */
NLSQ_API const char *nlsq_xpcs_status_string(int status);

/* ------------------------------------------------------------------------ */
/* 1. Reader                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum nlsq_xpcs_layout {
    NLSQ_XPCS_LAYOUT_UNKNOWN = 0,
    NLSQ_XPCS_LAYOUT_APS_OLD = 1,  /* xpcs/dqlist, xpcs/dphilist, exchange/C2T_all/<key> */
    NLSQ_XPCS_LAYOUT_APS_U   = 2   /* xpcs/qmap/..., xpcs/twotime/processed_bins, .../correlation_map/c2_* */
} nlsq_xpcs_layout;

typedef struct nlsq_xpcs_file nlsq_xpcs_file;   /* opaque */

/** Open a file read-only and discover its layout and matrix list.
 *  On success *out owns the HDF5 handles; free it with nlsq_xpcs_close. */
NLSQ_API int  nlsq_xpcs_open(const char *path, nlsq_xpcs_file **out, char *err, size_t err_size);
NLSQ_API void nlsq_xpcs_close(nlsq_xpcs_file *f);     /* NULL is a no-op */

/** Make the compression filters the library carries known to this process's
 *  HDF5: LZF (filter 32000, the filter of the APS 8-ID-I writer), unless an
 *  LZF filter is already available (registered by the application or loaded
 *  as a plugin).  nlsq_xpcs_open calls it; call it yourself before writing
 *  LZF-compressed datasets with the HDF5 API.  Other filters (LZ4, bzip2,
 *  bitshuffle, ...) come from HDF5 plugins (docs/xpcs.md).  Changes HDF5's
 *  process-wide filter table (idempotent); thread-safe with the library's
 *  other calls.  Returns 0, or NLSQ_XPCS_EFILE when HDF5 refused the
 *  registration. */
NLSQ_API int  nlsq_xpcs_register_filters(void);

NLSQ_API int    nlsq_xpcs_layout_of(const nlsq_xpcs_file *f);   /* an nlsq_xpcs_layout */
NLSQ_API size_t nlsq_xpcs_n_matrices(const nlsq_xpcs_file *f);  /* (q, phi) matrices in the file */
/** q and phi (degrees) of matrix k (k < n_matrices), in file order. */
NLSQ_API int    nlsq_xpcs_matrix_info(const nlsq_xpcs_file *f, size_t k, double *q, double *phi);
NLSQ_API size_t nlsq_xpcs_n_frames(const nlsq_xpcs_file *f);    /* N of the N x N matrices */
/** 1 if the matrices are stored as float32, 0 for float64. */
NLSQ_API int    nlsq_xpcs_is_float32(const nlsq_xpcs_file *f);

/** The frame time stored in the file (seconds between the frames of the
 *  matrices): APS-U frame_time * stride_frame * avg_frame, APS old
 *  exposure_period * stride_frames * avg_frames (docs/xpcs.md).  Returns 0
 *  with *dt, or NLSQ_XPCS_EFORMAT (*dt = NAN) when the file does not store
 *  it.  source (may be NULL): one line, where dt came from (the datasets and
 *  their values) or what is missing. */
NLSQ_API int    nlsq_xpcs_file_dt(const nlsq_xpcs_file *f, double *dt, char *source, size_t size);

/** A selection: the matrices of one q (all its phi), and a frame window. */
typedef struct nlsq_xpcs_selection {
    double q;             /* the q selected (nearest the request) */
    size_t n_angles;      /* matrices with that q */
    size_t *matrix;       /* n_angles matrix indices, phi ascending (library-owned) */
    double *phi;          /* n_angles angles in degrees (library-owned) */
    size_t first_frame;   /* frame window [first_frame, last_frame] inclusive */
    size_t last_frame;
} nlsq_xpcs_selection;

/** Select the q nearest q_request (any q when q_request is NAN and the file
 *  holds one q; NLSQ_XPCS_ERANGE if NAN and several) and frames
 *  [first, last] (last = SIZE_MAX: to the end).  Fills sel; free its arrays
 *  with nlsq_xpcs_selection_free. */
NLSQ_API int  nlsq_xpcs_select(const nlsq_xpcs_file *f, double q_request,
                               size_t first_frame, size_t last_frame,
                               nlsq_xpcs_selection *sel, char *err, size_t err_size);
NLSQ_API void nlsq_xpcs_selection_free(nlsq_xpcs_selection *sel);

/** Rows [row0, row0 + nrows) of the rebuilt full matrix of selected angle a,
 *  restricted to the frame window (row and column indices are relative to
 *  first_frame; n = last - first + 1 columns per row), into out (nrows * n,
 *  row-major, float64).  Uses HDF5 hyperslab reads of the stored upper
 *  triangle (or of the lower one, for a matrix found on its first read to
 *  be stored there); memory used is O(nrows * n). */
NLSQ_API int  nlsq_xpcs_read_rows(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel,
                                  size_t a, size_t row0, size_t nrows, double *out,
                                  char *err, size_t err_size);

/** Check that every selected matrix holds data in the frame window: a
 *  finite, non-zero value above the diagonal.  Reads row blocks of each
 *  matrix until one is found (the first block, for real data); a matrix of
 *  NaN or zeros only is read whole and refused: NLSQ_XPCS_EFORMAT with one
 *  line naming the dataset.  (Unallocated, virtual-without-source and
 *  missing external storage are refused earlier, by nlsq_xpcs_open.) */
NLSQ_API int  nlsq_xpcs_check_data(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel,
                                   char *err, size_t err_size);
/** A 64-bit digest of the selected data: FNV-1a 64 over every selected row
 *  as nlsq_xpcs_read_rows returns it (float64, angle by angle, rows in
 *  order); the same data in the window give the same digest whatever the
 *  file's name, layout or storage.  For binding a checkpoint to its data
 *  (nlsq_options.checkpoint_tag).  One pass over the data; memory: 64 rows.
 *  0 with *digest set, or NLSQ_EINVAL / NLSQ_ENOMEM / nlsq_xpcs_read_rows's
 *  errors with one line in err. */
NLSQ_API int  nlsq_xpcs_data_digest(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel,
                                    uint64_t *digest, char *err, size_t err_size);

/* ------------------------------------------------------------------------ */
/* 2. Model                                                                  */
/* ------------------------------------------------------------------------ */

#define NLSQ_XPCS_N_PHYS 7
/** Names and units of the 7 physical parameters, in order. */
NLSQ_API const char *nlsq_xpcs_param_name(size_t k);
NLSQ_API const char *nlsq_xpcs_param_unit(size_t k);

typedef enum { NLSQ_XPCS_LAMINAR = 0, NLSQ_XPCS_STATIC = 1 } nlsq_xpcs_mode;
typedef enum { NLSQ_XPCS_UPPER = 0, NLSQ_XPCS_FULL = 1 } nlsq_xpcs_triangle;

/** Where the model's c2 rows come from: kind names which member of the
 *  union u is used (the others are ignored). */
typedef enum nlsq_xpcs_source_kind {
    NLSQ_XPCS_SOURCE_MEMORY = 1,   /* arrays in memory, used in place */
    NLSQ_XPCS_SOURCE_READ   = 2,   /* a read function */
    NLSQ_XPCS_SOURCE_FILE   = 3    /* an open file's selection (nlsq_xpcs_file_source) */
} nlsq_xpcs_source_kind;

typedef struct nlsq_xpcs_source {
    int kind;              /* nlsq_xpcs_source_kind */
    size_t n_angles, n;    /* angles, frames in the window */
    const double *phi;     /* n_angles angles in degrees */
    union {
        /* MEMORY: c2 of angle a at data[a * n * n + i * n + j], exactly one of
         * data32 / data64 not NULL; must outlive every model built on it.
         * Symmetry is checked at creation. */
        struct {
            const float  *data32;
            const double *data64;
        } memory;
        /* READ: fn(ctx, a, row0, nrows, out) writes rows [row0, row0+nrows)
         * of the full n x n matrix of angle a (float64, row-major, nrows * n)
         * and returns 0 (nonzero: a failed read).  Must be safe to call
         * concurrently for different rows when the model is used from several
         * threads, unless thread_safe == 0 (the model then serialises the
         * calls).  float32: 1 when the values are float32 numbers (exactly
         * representable as float): the model then caches them as float32
         * (half the memory).  symmetric: 1 promises c2[a][i][j] ==
         * c2[a][j][i] (NaN where NaN), so that triangle "full" may merge
         * symmetric pairs (nlsq_xpcs_config.literal_full); nothing is assumed
         * without it. */
        struct {
            int (*fn)(void *ctx, size_t a, size_t row0, size_t nrows, double *out);
            void *ctx;
            int thread_safe;
            int float32;
            int symmetric;
        } read;
        /* FILE: rows from nlsq_xpcs_read_rows(f, sel, ...), calls serialised;
         * f and *sel must outlive every model built on the source.  A file's
         * matrices are symmetric by construction. */
        struct {
            nlsq_xpcs_file *f;
            const nlsq_xpcs_selection *sel;
        } file;
    } u;
} nlsq_xpcs_source;

/** A source reading from an open file's selection (serialised HDF5 access). */
NLSQ_API int nlsq_xpcs_file_source(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel,
                                   nlsq_xpcs_source *src);

/** Ranges accepted for q, dt, gap and sigma (nlsq_xpcs_model_create refuses
 *  values outside with NLSQ_EINVAL, naming the value; fit_xpcs takes its
 *  flag limits from here).  Wide on purpose: they only keep out values no
 *  measurement has (1e300, 1e-300), which otherwise "converge" at iteration
 *  0 with every parameter undetermined. */
#define NLSQ_XPCS_Q_MIN     1e-8    /* 1/A */
#define NLSQ_XPCS_Q_MAX     1e2
#define NLSQ_XPCS_DT_MIN    1e-12   /* s */
#define NLSQ_XPCS_DT_MAX    1e6
#define NLSQ_XPCS_GAP_MIN   1e-3    /* A */
#define NLSQ_XPCS_GAP_MAX   1e15
#define NLSQ_XPCS_SIGMA_MIN 1e-30
#define NLSQ_XPCS_SIGMA_MAX 1e30

typedef struct nlsq_xpcs_config {
    int    mode;           /* nlsq_xpcs_mode (laminar) */
    int    triangle;       /* nlsq_xpcs_triangle (upper) */
    int    include_diagonal; /* 0 */
    double q, gap, dt;     /* required, in [NLSQ_XPCS_Q_MIN, NLSQ_XPCS_Q_MAX] etc.
                              (gap: laminar mode only) */
    size_t k0;             /* frame index of row 0 (selection's first_frame) */
    double sigma;          /* residual scale (0.01) */
    size_t memory_budget;  /* bytes to cache c2 (float32 when stored so); larger
                              data is streamed row block by row block (256 MiB) */
    int    literal_full;   /* triangle full: 0 (default) presents each symmetric pair
                              (i, j), (j, i) once with weight sqrt(2) when the data
                              are symmetric (always for files), which gives the same
                              cost and normal equations at half the work, eval
                              declaring 2 observations a pair (nlsq_eval_env.n_obs);
                              1 evaluates both
                              triangles row by row */
} nlsq_xpcs_config;

NLSQ_API void nlsq_xpcs_config_init(nlsq_xpcs_config *c);

typedef struct nlsq_xpcs_model nlsq_xpcs_model;   /* opaque */

/** Build a model over src (src is copied; the data it points to must outlive
 *  the model).  Parameter vector: 7 physical (static mode: 3), then
 *  contrast_0, offset_0, contrast_1, offset_1, ... */
NLSQ_API int  nlsq_xpcs_model_create(const nlsq_xpcs_source *src, const nlsq_xpcs_config *cfg,
                                     nlsq_xpcs_model **out, char *err, size_t err_size);
NLSQ_API void nlsq_xpcs_model_free(nlsq_xpcs_model *m);

NLSQ_API size_t nlsq_xpcs_model_n_params(const nlsq_xpcs_model *m);
/** Observations in the fit: matrix entries, before exclusion of non-finite
 *  ones.  The nlsq_problem may have fewer rows: with merged symmetric pairs
 *  (triangle full) each row stands for two entries.  After a solve,
 *  res.n_obs is this less the excluded entries (over all processes). */
NLSQ_API size_t nlsq_xpcs_model_n_rows(const nlsq_xpcs_model *m);
/** Entries excluded because the data were NaN/Inf (counted on the first pass
 *  over the data, or at creation when cached; this process's reads only).
 *  The problem's eval declares no observation for them (nlsq_eval_env.n_obs),
 *  so the solver's res.n_obs, dof and scaled covariance leave them out. */
NLSQ_API size_t nlsq_xpcs_model_n_excluded(const nlsq_xpcs_model *m);

/** Fill pb (eval, pattern, ctx, n_params, n_rows, bounds from the model's
 *  bound arrays, jac_col_major = 1; eval declares each row's observations in
 *  env->n_obs: 2 a merged pair, 0 an excluded entry; prepare, prepare_bytes and scratch_bytes: the point's tables are
 *  built once per point in the solve's state, nlsq.h "Callbacks"; normal and
 *  normal_units = rows per angle for the laminar model on in-memory data
 *  with the AVX2 kernel, nlsq.h nlsq_normal_fn, else NULL).  The
 *  model keeps no per-point state, so several solves may use one model at
 *  once.  pb is valid while m lives. */
NLSQ_API int  nlsq_xpcs_model_problem(nlsq_xpcs_model *m, nlsq_problem *pb);

/** Clusters for nlsq_covariance_robust: the entry (a, i, j) belongs to the
 *  frames i and j of the window (n_clusters = n frames, one range shared by
 *  all angles; a diagonal entry to frame i alone).  This is the two-way
 *  clustering of a two-time matrix by its row and column frames, with the
 *  row and column of one frame the same cluster, so that errors shared by a
 *  frame (in every angle, along its row and its column) are allowed.  cl is
 *  valid while m lives; the ids callback is reentrant.  Returns 0 or
 *  NLSQ_EINVAL. */
NLSQ_API int  nlsq_xpcs_model_clusters(nlsq_xpcs_model *m, nlsq_clusters *cl);

/** Default bounds (docs/xpcs-model.md) into lower/upper (n_params each); the model
 *  keeps its own copy which callers may override with nlsq_xpcs_model_set_bounds. */
NLSQ_API void nlsq_xpcs_default_bounds(const nlsq_xpcs_model *m, double *lower, double *upper);
NLSQ_API int  nlsq_xpcs_model_set_bounds(nlsq_xpcs_model *m, const double *lower, const double *upper);

/** The start point, from a spread-out sample of the data: at most 16 blocks
 *  of 4096 rows per angle, the same rows for every caller.  Physical values:
 *  phys's (phys may be NULL; NAN entries mean "from the data or the
 *  default"), clamped into the model's bounds.  D0 and gamma_dot_0, unless
 *  given, from the data: the sample averaged at equal lag |i - j|
 *  (log-spaced bins) is matched by the lag-only model of the other start
 *  values (with the defaults alpha = beta = 0 and zero offsets: g1 =
 *  exp(-A D0 tau) sinc^2(B cos(phi0 - phi_a) gamma_dot_0 tau)) with
 *  per-angle contrast and offset, on log grids inside the bounds (a rate too
 *  small to show over the longest lag keeps its default); the other
 *  physical values are the defaults of docs/xpcs-model.md.  Then per angle
 *  contrast and offset by linear least squares of c2 against g1^2 at that
 *  physical start (contrast 0.3 where g1 is constant over the sample;
 *  contrast 0.3 and offset 1 for an angle without finite data), clamped.
 *  x: n_params values.
 *
 *  dist (may be NULL: this process has all rows): several processes each
 *  holding the problem rows [dist->row_begin, dist->row_end) compute the
 *  start together, each reading only the sample rows of its range, with the
 *  sums added by dist->reduce (the hook the solvers use, e.g. filled by
 *  nlsq_mpi_options); every process gets the same x and the same status.
 *  Collective then: every process must call it.  Deterministic.  Returns 0,
 *  NLSQ_EINVAL (NULL, an infinite phys value), NLSQ_ENOMEM, NLSQ_ECALLBACK
 *  (a data read failed) or NLSQ_EDISTRIBUTED (the reduce failed).  err (may
 *  be NULL; err_size bytes, NUL-terminated, "" on success) gets one line on
 *  why: the read failure naming the file/dataset on the process where it
 *  happened, "a data read failed on another process" (or "out of memory on
 *  another process") on the others.  On the 23M benchmark the LM needs 5
 *  passes from it instead of 13 + 3 from the fixed start. */
NLSQ_API int  nlsq_xpcs_start(nlsq_xpcs_model *m, const double *phys,
                              const nlsq_distributed *dist, double *x, char *err,
                              size_t err_size);

/** nlsq_xpcs_start on one process without the rate search: D0 and
 *  gamma_dot_0 from phys or the fixed defaults of docs/xpcs-model.md (the
 *  benchmark's singular start).  For checks and comparisons.  Same returns
 *  and err. */
NLSQ_API int  nlsq_xpcs_initial_guess(nlsq_xpcs_model *m, const double *phys, double *x,
                                      char *err, size_t err_size);

/** Global start stage (docs/api.md "nlsq_xpcs_global_start"): a start point
 *  in the global minimum's basin, for a local fit (nlsq_lm) on all rows.
 *  On a fixed-size, deterministic sample of rows (blocks of about one matrix
 *  row, spread through every angle): a coarse grid of the physical
 *  parameters (D0 and gamma_dot_0 at half-decade steps between their bounds,
 *  alpha in {-1, -0.5, 0, 0.5, 1}, beta in {-0.5, 0, 0.5}, phi0 at four points
 *  across its bounds, both signs; D_offset = gamma_dot_offset = 0, all clamped
 *  into the model's bounds), each point scored with the per-angle contrast
 *  and offset solved linearly (on about 4096 entries of the sample); then
 *  nlsq_lm on the sample, D_offset and gamma_dot_offset held at 0, from the
 *  phys values (defaults for the rest) and the best n_refine grid points
 *  (one per grid neighbourhood), the best end carried on when still moving,
 *  and from the best end point with phi0 mirrored; x = the end point of
 *  lowest sample cost (n_params values, feasible; its offsets 0).
 *  Ambiguity: when another end point's cost is statistically the same on all
 *  rows (sample chi2 difference times rows / sample rows below 1) while a
 *  physical parameter differs by more than 2 all-rows sigmas, res->ambiguous
 *  is 1, res->alt holds that point's physical parameters and res->message
 *  says which parameter (four angles 90 degrees apart: phi0 and -phi0 fit
 *  equally, the model is symmetric).
 *  Memory: O(grid entries + grid points + n_params^2) besides nlsq_lm's
 *  workspace on the sample; independent of the data size.  Deterministic:
 *  no random numbers or timing in the choice; the result does not depend
 *  on n_threads.  Threads: the model may not be used by another call at the
 *  same time (as for any solve on it).  opt: NULL or zero fields for the
 *  defaults.  Returns 0, NLSQ_EINVAL (bad arguments, a model without
 *  angles), NLSQ_ENOMEM, or NLSQ_ECALLBACK (a data read failed, or no end
 *  point could be evaluated); on an error res->message says why (a read
 *  failure naming the file/dataset). */
typedef struct nlsq_xpcs_global_options {
    size_t sample_rows;   /* rows of the sample (0: 16384) */
    size_t n_refine;      /* grid points refined by LM (0: 6; at most 6) */
    int    n_threads;     /* threads of the LM solves on the sample (0: all cores) */
} nlsq_xpcs_global_options;

typedef struct nlsq_xpcs_global_result {
    size_t n_grid;        /* grid points scored */
    size_t n_refined;     /* LM solves on the sample */
    size_t sample_rows;   /* rows of the sample */
    double sample_cost;   /* cost of x on the sample */
    double seconds;       /* wall time of the stage (reported only, never used) */
    int    ambiguous;     /* 1: another minimum fits as well (see above) */
    double alt[NLSQ_XPCS_N_PHYS]; /* its physical parameters (when ambiguous) */
    double delta_chi2;    /* its estimated chi2 above x's on all rows (when ambiguous) */
    char   message[256];  /* one line: what was done, or the ambiguity */
} nlsq_xpcs_global_result;

NLSQ_API int nlsq_xpcs_global_start(nlsq_xpcs_model *m, const double *phys,
                                    const nlsq_xpcs_global_options *opt, double *x,
                                    nlsq_xpcs_global_result *res);

/** After the full fit from the global start: is the fitted point x's phi0
 *  mirror (phi0 -> -phi0, every other value kept) as good?  The stage itself
 *  compares sample minima; a fit can end at a phi0 its sample did not
 *  resolve (four angles 90 degrees apart, phi0 a few sigmas from 0).  When
 *  phi0 differs from -phi0 by more than 2 sigmas (err: the fit's standard
 *  errors, n_params values) and the mirror's chi2 on the stage's sample,
 *  scaled to all rows, is less than 1 above x's (or below), res gets the
 *  ambiguity (ambiguous 1, alt, delta_chi2, message; its other fields are
 *  kept); otherwise res is untouched.  Two residual passes over the sample
 *  (opt->sample_rows as for the stage).  Returns 0, NLSQ_EINVAL (NULL
 *  argument), NLSQ_ENOMEM or NLSQ_ECALLBACK (a data read failed; res->message
 *  then says why). */
NLSQ_API int nlsq_xpcs_mirror_check(nlsq_xpcs_model *m, const double *x, const double *err,
                                    const nlsq_xpcs_global_options *opt,
                                    nlsq_xpcs_global_result *res);

/** g2 of angle a at frames (i, j) for parameters x (slow path, for checks:
 *  O(n) per call; for whole rows use nlsq_xpcs_g2_rows). */
NLSQ_API double nlsq_xpcs_model_g2(const nlsq_xpcs_model *m, const double *x,
                                   size_t a, size_t i, size_t j);

/** Model g2 of blocks of rows (the fitted c2 of a report or a plot), O(n)
 *  set-up then O(1) per entry.  Needs no model and no data: cfg (mode, q,
 *  gap, dt, k0; other fields unused), n frames, n_angles angles phi
 *  (degrees) and the fit vector x (np physical values, 7 or 3 in static
 *  mode, then contrast and offset of each angle: np + 2 n_angles values).
 *  create copies what it needs (phi and x may be freed after it) and returns
 *  0, NLSQ_EINVAL (NULL, n or n_angles 0, unknown mode, q, dt or, laminar,
 *  gap outside the NLSQ_XPCS_*_MIN..MAX ranges, a non-finite x or phi) or
 *  NLSQ_ENOMEM; *out is then NULL.  eval writes g2 of angle a, rows
 *  [row0, row0 + nrows), columns [col0, col0 + ncols) of the window, to
 *  out[r * ncols + c] (row-major), the values nlsq_xpcs_model_g2 gives;
 *  NLSQ_EINVAL for NULL or a block outside the n x n matrix or a >= n_angles.
 *  The object is read-only after creation: eval may run concurrently from
 *  several threads on one object.  free(NULL) is a no-op. */
typedef struct nlsq_xpcs_g2_rows nlsq_xpcs_g2_rows;   /* opaque */
NLSQ_API int  nlsq_xpcs_g2_rows_create(const nlsq_xpcs_config *cfg, size_t n, size_t n_angles,
                                       const double *phi, const double *x,
                                       nlsq_xpcs_g2_rows **out);
NLSQ_API int  nlsq_xpcs_g2_rows_eval(const nlsq_xpcs_g2_rows *g, size_t a, size_t row0,
                                     size_t nrows, size_t col0, size_t ncols, double *out);
NLSQ_API void nlsq_xpcs_g2_rows_free(nlsq_xpcs_g2_rows *g);

#ifdef __cplusplus
}
#endif
#endif /* NLSQ_XPCS_H */
