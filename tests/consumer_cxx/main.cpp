// Fits y = a exp(-b t) + c through the installed library from C++17, the
// model a lambda reached through the ctx pointer; exit 0 on success.
#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

#include <nlsq.h>

namespace {

struct Model {
    std::function<void(const double *x, double t, double &f, double *grad)> f;
};

int eval(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
         const nlsq_eval_env *env)
{
    (void)env;
    const auto &m = *static_cast<const Model *>(ctx);
    for (size_t i = 0; i < n; i++) {
        const double t = 1e-3 * static_cast<double>(row0 + i);
        double f = 0.0;
        m.f(x, t, f, J ? J + 3 * i : nullptr);
        r[i] = f - (3.0 * std::exp(-2.0 * t) + 0.5);
    }
    return 0;
}

}  // namespace

int main()
{
    Model model{[](const double *x, double t, double &f, double *g) {
        const double e = std::exp(-x[1] * t);
        f = x[0] * e + x[2];
        if (g) { g[0] = e; g[1] = -x[0] * t * e; g[2] = 1.0; }
    }};
    nlsq_problem pb{};
    pb.n_params = 3;
    pb.n_rows = 5000;
    pb.eval = eval;
    pb.ctx = &model;
    nlsq_options opt;
    nlsq_options_init(&opt);
    std::vector<double> x{1.0, 1.0, 0.0}, cov(9);
    nlsq_result res{};
    res.covariance = cov.data();
    const int st = nlsq_lm(&pb, &opt, x.data(), &res);
    std::printf("nlsq %s from C++17: %s a=%.6f b=%.6f c=%.6f\n", NLSQ_VERSION_STRING,
                nlsq_status_name(st), x[0], x[1], x[2]);
    const bool ok = st > 0 && std::fabs(x[0] - 3) < 1e-6 && std::fabs(x[1] - 2) < 1e-6 &&
                    std::fabs(x[2] - 0.5) < 1e-6;
    return ok ? 0 : 1;
}
