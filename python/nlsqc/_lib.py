"""The C side: declarations of nlsq.h for cffi (ABI mode) and library loading.

The declarations below mirror include/nlsq.h field by field (tests compare
their sizes and offsets with the C compiler's).  Every struct handed to C is
allocated NLSQC_PAD bytes larger than declared and zeroed, so that fields a
newer library appends (the header's convention: new fields go at the end and
0 means "default") read as zeros and writes land in owned memory.

Where the libraries come from (first that exists):
  1. NLSQC_LIBDIR: folders (os.pathsep-separated) holding libnlsq.so and
     libnlsq_xpcs.so;
  2. the build tree when the package is used from a source checkout:
     <repo>/build/src and <repo>/build/src/xpcs (PYTHONPATH=python);
  3. the system loader: libnlsq.so.0 / libnlsq.so on LD_LIBRARY_PATH or in
     the linker cache (an installed nlsq).
"""
import os

from cffi import FFI

NLSQC_PAD = 1024

CDEF = r"""
typedef struct nlsq_eval_env {
    int         at_prepared;
    const void *state;
    void       *scratch;
    size_t      scratch_bytes;
    size_t      worker;
    char       *msg;
    size_t      msg_size;
    size_t     *n_obs;
} nlsq_eval_env;

typedef int (*nlsq_eval_fn)(void *ctx, const double *x, size_t row0, size_t nrows,
                            double *r, double *J, const nlsq_eval_env *env);
typedef int (*nlsq_prepare_fn)(void *ctx, const double *x, void *state,
                               char *msg, size_t msg_size);
typedef size_t (*nlsq_pattern_fn)(void *ctx, size_t row0, size_t nrows, size_t *cols, size_t *k);
typedef struct nlsq_normal_sums {
    double *JtJ;
    double *Jtr;
    double  rr;
    double  rmax;
    size_t  n_obs;
} nlsq_normal_sums;
typedef int (*nlsq_normal_fn)(void *ctx, const double *x, size_t u0, size_t nu,
                              nlsq_normal_sums *out, const nlsq_eval_env *env);

typedef struct nlsq_problem {
    size_t n_params;
    size_t n_rows;
    nlsq_eval_fn eval;
    void *ctx;
    const double *lower, *upper;
    nlsq_pattern_fn pattern;
    int jac_col_major;
    int jacobian;
    const double *fd_scale;
    const char *const *param_names;
    nlsq_prepare_fn prepare;
    size_t prepare_bytes;
    size_t scratch_bytes;
    nlsq_normal_fn normal;
    size_t normal_units;
} nlsq_problem;

typedef struct nlsq_allocator {
    void *(*alloc_fn)(void *ctx, size_t size);
    void  (*free_fn)(void *ctx, void *ptr);
    void *ctx;
} nlsq_allocator;

typedef struct nlsq_distributed {
    int  (*reduce)(void *ctx, double *buf, size_t n);
    void *ctx;
    size_t row_begin, row_end;
    int    is_root;
} nlsq_distributed;

typedef struct nlsq_progress_info {
    int    phase;
    size_t iteration;
    double cost;
    double grad_norm;
    double lambda;
    double elapsed;
    size_t n_eval, n_jac;
    const double *x;
} nlsq_progress_info;

typedef struct nlsq_adam_options {
    double lr, beta1, beta2, eps;
    size_t epochs, batch_rows, block_rows;
    uint64_t seed;
    double plateau_rtol;
    size_t patience;
} nlsq_adam_options;

typedef struct nlsq_hybrid_options {
    size_t adam_epochs;
} nlsq_hybrid_options;

typedef struct nlsq_options {
    double ftol, xtol, gtol;
    size_t max_iter;
    double lambda0;
    int    trial_jacobian;
    double step_bound;
    int    accumulator;
    size_t chunk_rows;
    size_t memory_budget;
    int    n_threads;
    int    absolute_sigma;
    double cov_rcond;
    int    loss;
    double f_scale;
    nlsq_adam_options adam;
    nlsq_hybrid_options hybrid;
    const char *checkpoint_path;
    size_t checkpoint_every;
    const void *checkpoint_tag;
    size_t checkpoint_tag_size;
    int (*progress)(void *ctx, const nlsq_progress_info *info); void *progress_ctx;
    void (*log)(void *ctx, int level, const char *msg);         void *log_ctx;
    int verbose;
    nlsq_allocator allocator;
    nlsq_distributed dist;
} nlsq_options;

typedef struct nlsq_phase_stats {
    int    phase;
    size_t iterations;
    size_t n_eval, n_jac;
    double cost;
    double seconds;
} nlsq_phase_stats;

typedef struct nlsq_result {
    int    status;
    double cost;
    double grad_norm;
    size_t iterations;
    size_t n_eval;
    size_t n_jac;
    double *covariance;
    double initial_cost;
    double reduced_chi2;
    double seconds;
    size_t n_rows;
    size_t n_nonfinite;
    size_t rank;
    size_t n_active;
    size_t n_phases;
    nlsq_phase_stats phases[3];
    char   message[256];
    size_t n_fixed;
    size_t n_undetermined;
    int    callback_status;
    size_t n_obs;
    size_t n_free;
    double dof;
} nlsq_result;

typedef int (*nlsq_model_fn)(void *ctx, const double *theta, size_t n, const double *xdata,
                             double *f, double *dfdtheta);

typedef struct nlsq_curve_problem {
    size_t n_params;
    size_t n_points;
    size_t xdim;
    const double *xdata;
    const double *ydata;
    const double *sigma;
    nlsq_model_fn model;
    void *ctx;
    int analytic_jacobian;
    const double *lower, *upper;
    const double *sigma_cov;
    const char *const *param_names;
} nlsq_curve_problem;

typedef struct nlsq_fit_stats {
    double chi2, reduced_chi2, r_squared, aic, bic;
    size_t dof, n_points;
} nlsq_fit_stats;

int nlsq_curve_fit(const nlsq_curve_problem *cp, const nlsq_options *opt, double *theta,
                   double *cov, nlsq_fit_stats *stats, nlsq_result *res);
const char *nlsq_status_string(int status);
const char *nlsq_status_name(int status);
void nlsq_options_init(nlsq_options *opt);
int nlsq_validate(const nlsq_problem *pb, const nlsq_options *opt, const double *x0,
                  char *msg, size_t msg_size);
int nlsq_lm(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res);
int nlsq_adam(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res);
int nlsq_hybrid(const nlsq_problem *pb, const nlsq_options *opt, double *x, nlsq_result *res);
int nlsq_covariance(const nlsq_problem *pb, const nlsq_options *opt, const double *x,
                    double *cov, nlsq_result *res);
size_t nlsq_param_flags(const nlsq_problem *pb, const double *x, const double *cov,
                        unsigned *flags);
const char *nlsq_param_flags_name(unsigned flags);
int nlsq_correlation(size_t p, const double *cov, double *corr);
"""

ffi = FFI()
ffi.cdef(CDEF)

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))


def _candidates(stem, build_sub):
    env = os.environ.get("NLSQC_LIBDIR")
    if env:
        return [os.path.join(d, "lib%s.so" % stem) for d in env.split(os.pathsep) if d]
    out = [os.path.join(_REPO, "build", build_sub, "lib%s.so" % stem)]
    out += ["lib%s.so.0" % stem, "lib%s.so" % stem]
    return out


def _open(stem, build_sub):
    errors = []
    for path in _candidates(stem, build_sub):
        if os.sep in path and not os.path.exists(path):
            errors.append("%s: no such file" % path)
            continue
        try:
            return ffi.dlopen(path)
        except OSError as e:
            errors.append(str(e))
    raise OSError("nlsqc: cannot load lib%s (set NLSQC_LIBDIR to the folder that holds it): %s"
                  % (stem, "; ".join(errors)))


lib = _open("nlsq", "src")


def new(ctype):
    """A zeroed C struct of type ctype with NLSQC_PAD spare bytes after it."""
    size = ffi.sizeof(ctype) + NLSQC_PAD
    buf = ffi.new("char[]", size)
    return ffi.cast(ctype + " *", buf), buf
