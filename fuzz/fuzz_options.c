/* libFuzzer harness: options and problem validation, then a short solve.
 *
 * The input bytes choose every field that a caller can get wrong: p, m,
 * bounds (including NaN, inf, lo > hi), the start point, tolerances, chunk
 * size, memory budget, threads, loss, Adam settings and which solver runs.
 * Whatever they hold, the library must return a status (never crash, never
 * hang: m and max_iter are capped so one input runs in milliseconds), keep x
 * finite when the start was finite, and free what it allocated. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nlsq.h"

typedef struct reader { const uint8_t *d; size_t n, at; } reader;

static uint64_t take_u64(reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | (r->at < r->n ? r->d[r->at++] : 0);
    return v;
}

static double take_double(reader *r)
{
    uint8_t sel = r->at < r->n ? r->d[r->at++] : 0;
    static const double special[] = {0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, INFINITY, -INFINITY,
                                     NAN, 1e-8, 0.5, 100.0, -5.0, 2.0, 1e-15, 3.0};
    if (sel < 128) return special[sel % 16];
    uint64_t b = take_u64(r);
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

typedef struct fctx { size_t p; int fail_at; int calls; int nan_mode; int col_major; } fctx;

/* r_i = sum_j x_j^2 t^j - y(t) with t in [0, 1]: smooth, p-dimensional */
static int eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                const nlsq_eval_env *env)
{
    (void)env;
    fctx *c = ctx;
    if (c->fail_at && ++c->calls == c->fail_at) return 1;
    for (size_t i = 0; i < n; i++) {
        double t = (double)(row0 + i) / 64.0, tp = 1.0, v = 0.0;
        for (size_t j = 0; j < c->p; j++) {
            v += x[j] * x[j] * tp;
            if (J) J[c->col_major ? j * n + i : i * c->p + j] = 2.0 * x[j] * tp;
            tp *= t;
        }
        r[i] = v - cos(t);
        if (c->nan_mode == 1 && row0 + i == 3) r[i] = NAN;
        if (c->nan_mode == 2 && J && row0 + i == 5) J[c->col_major ? i : i * c->p] = INFINITY;
        if (c->nan_mode == 3 && fabs(x[0]) > 2.0) r[i] = NAN;
    }
    return 0;
}

static size_t pattern(void *ctx, size_t row0, size_t nrows, size_t *cols, size_t *k)
{
    fctx *c = ctx;
    (void)row0;
    for (size_t j = 0; j < c->p; j++) cols[j] = j;
    *k = c->p;
    return nrows;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0};
    fctx c = {0};
    c.p = take_u64(&r) % 9;                     /* 0 .. 8, 0 is invalid */
    size_t m = take_u64(&r) % 300;              /* 0 .. 299 */
    c.fail_at = (int)(take_u64(&r) % 40);
    c.nan_mode = (int)(take_u64(&r) % 4);
    uint8_t flags = r.at < r.n ? r.d[r.at++] : 0;

    double x[8] = {0}, lo[8], hi[8], cov[64];
    for (size_t j = 0; j < 8; j++) {
        x[j] = take_double(&r);
        lo[j] = (flags & 1) ? take_double(&r) : -INFINITY;
        hi[j] = (flags & 1) ? take_double(&r) : INFINITY;
    }
    nlsq_problem pb = {.n_params = c.p, .n_rows = m, .eval = (flags & 2) ? NULL : eval, .ctx = &c,
                       .lower = (flags & 1) ? lo : NULL, .upper = (flags & 1) ? hi : NULL,
                       .pattern = (flags & 4) ? pattern : NULL,
                       .jac_col_major = (flags >> 6) & 1};
    c.col_major = pb.jac_col_major;
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.ftol = take_double(&r);
    opt.xtol = take_double(&r);
    opt.gtol = take_double(&r);
    opt.max_iter = take_u64(&r) % 30;
    opt.lambda0 = take_double(&r);
    opt.step_bound = take_double(&r);
    opt.chunk_rows = take_u64(&r) % 70;
    opt.memory_budget = take_u64(&r) % 5000;
    opt.n_threads = (int)(take_u64(&r) % 4) - 1;
    opt.loss = (int)(take_u64(&r) % 6) - 1;
    opt.f_scale = take_double(&r);
    opt.absolute_sigma = (int)(take_u64(&r) % 2);
    opt.cov_rcond = take_double(&r);
    opt.adam.lr = take_double(&r);
    opt.adam.epochs = take_u64(&r) % 4;
    opt.adam.batch_rows = take_u64(&r) % 100;
    opt.hybrid.adam_epochs = take_u64(&r) % 3;

    char msg[160];
    int valid = nlsq_validate(&pb, &opt, x, msg, sizeof msg);
    if (valid != 0 && valid != NLSQ_EINVAL) abort();
    if (valid != 0 && msg[0] == '\0') abort();            /* an error must say why */

    nlsq_result res = {0};
    res.covariance = (flags & 8) ? cov : NULL;
    int which = (flags >> 4) % 3;
    int st = which == 0 ? nlsq_lm(&pb, &opt, x, &res)
           : which == 1 ? nlsq_adam(&pb, &opt, x, &res) : nlsq_hybrid(&pb, &opt, x, &res);
    if (st != res.status) abort();
    if (valid != 0 && st != NLSQ_EINVAL) abort();          /* invalid input is never solved */
    if (nlsq_status_string(st) == NULL) abort();
    return 0;
}
