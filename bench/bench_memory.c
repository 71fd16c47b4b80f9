/*
 * bench_memory.c - memory use of nlsq_lm does not grow with the number of rows.
 *
 * The rows are computed on the fly, nothing is stored:
 *     t_i = 10 i / m,   y_i = 2.5 exp(-0.7 t_i) + 0.3 + 0.05 noise(i)
 *     r_i = a exp(-b t_i) + c - y_i
 * where noise(i) in [-0.5, 0.5) is a hash of i (splitmix64), so the data are
 * the same on every run and machine.  The program fits (a, b, c) from
 * (1, 0.1, 0) and prints m, iterations, passes over the rows, seconds, cost,
 * the parameters and the peak resident set size (VmHWM from /proc/self/status)
 * before and after the fit.
 *
 * Usage: bench_memory M [THREADS] [CHUNK_ROWS]
 *   M           number of rows (1e7 notation accepted)
 *   THREADS     n_threads (default 1; 0 = all online cores)
 *   CHUNK_ROWS  chunk_rows (default 0 = automatic)
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlsq.h"

typedef struct bench_ctx {
    size_t m;
} bench_ctx;

static double hash_noise(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53 - 0.5;
}

static int bench_eval(void *vctx, const double *x, size_t row0, size_t n, double *r, double *J,
                      const nlsq_eval_env *env)
{
    (void)env;
    const bench_ctx *c = vctx;
    const double scale = 10.0 / (double)c->m;
    for (size_t k = 0; k < n; k++) {
        size_t i = row0 + k;
        double t = scale * (double)i;
        double y = 2.5 * exp(-0.7 * t) + 0.3 + 0.05 * hash_noise(i);
        double e = exp(-x[1] * t);
        r[k] = x[0] * e + x[2] - y;
        if (J) {
            J[3 * k] = e;
            J[3 * k + 1] = -x[0] * t * e;
            J[3 * k + 2] = 1.0;
        }
    }
    return 0;
}

/* VmHWM (peak resident set) in KiB, or -1. */
static long vm_hwm_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end != '\0' || !(v >= 1) || v > 1e15 || v != floor(v)) return -1;
    *out = (size_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    size_t m = 0, chunk = 0;
    int threads = 1;
    if (argc < 2 || argc > 4 || parse_size(argv[1], &m) != 0) {
        fprintf(stderr, "usage: %s M [THREADS] [CHUNK_ROWS]   (M >= 3 rows, e.g. 1e7)\n", argv[0]);
        return 2;
    }
    if (argc > 2) {
        char *end;
        long t = strtol(argv[2], &end, 10);
        if (*end != '\0' || t < 0 || t > 1024) {
            fprintf(stderr, "%s: THREADS must be in 0..1024\n", argv[0]);
            return 2;
        }
        threads = (int)t;
    }
    if (argc > 3 && parse_size(argv[3], &chunk) != 0) {
        fprintf(stderr, "%s: CHUNK_ROWS must be a positive integer\n", argv[0]);
        return 2;
    }

    bench_ctx ctx = {m};
    nlsq_problem pb = {.n_params = 3, .n_rows = m, .eval = bench_eval, .ctx = &ctx};
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = threads;
    opt.chunk_rows = chunk;
    double x[3] = {1.0, 0.1, 0.0};
    double cov[9];
    nlsq_result res;
    memset(&res, 0, sizeof res);
    res.covariance = cov;

    long hwm0 = vm_hwm_kib();
    int st = nlsq_lm(&pb, &opt, x, &res);
    long hwm1 = vm_hwm_kib();

    printf("m           %zu\n", m);
    printf("threads     %d\n", threads);
    printf("status      %s (%s)\n", nlsq_status_name(st), res.message);
    printf("iterations  %zu\n", res.iterations);
    printf("passes      %zu (%zu residual-only, %zu with Jacobian)\n", res.n_eval + res.n_jac,
           res.n_eval, res.n_jac);
    printf("seconds     %.3f\n", res.seconds);
    printf("cost        %.10e\n", res.cost);
    printf("params      a = %.10f  b = %.10f  c = %.10f\n", x[0], x[1], x[2]);
    printf("errors      %.3e %.3e %.3e\n", sqrt(cov[0]), sqrt(cov[4]), sqrt(cov[8]));
    printf("VmHWM       %.2f MiB (%.2f MiB before the fit)\n", hwm1 / 1024.0, hwm0 / 1024.0);
    return st >= 0 ? 0 : 1;
}
