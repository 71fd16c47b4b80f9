/* Fits y = a exp(-b t) + c through the installed library; exit 0 on success. */
#include <math.h>
#include <stdio.h>
#include <nlsq.h>

static int eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                const nlsq_eval_env *env)
{
    (void)env;
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        double t = 1e-3 * (double)(row0 + i), e = exp(-x[1] * t);
        r[i] = x[0] * e + x[2] - (3.0 * exp(-2.0 * t) + 0.5);
        if (J) { J[3 * i] = e; J[3 * i + 1] = -x[0] * t * e; J[3 * i + 2] = 1.0; }
    }
    return 0;
}

int main(void)
{
    nlsq_problem pb = {.n_params = 3, .n_rows = 5000, .eval = eval};
    nlsq_options opt;
    nlsq_options_init(&opt);
    double x[3] = {1, 1, 0};
    nlsq_result res = {0};
    int st = nlsq_lm(&pb, &opt, x, &res);
    printf("nlsq %s: %s a=%.6f b=%.6f c=%.6f\n", NLSQ_VERSION_STRING, nlsq_status_name(st), x[0], x[1], x[2]);
    return (st > 0 && fabs(x[0] - 3) < 1e-6 && fabs(x[1] - 2) < 1e-6 && fabs(x[2] - 0.5) < 1e-6) ? 0 : 1;
}
