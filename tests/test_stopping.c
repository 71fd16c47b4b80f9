/* test_stopping.c - a CONVERGED status only at a stationary point; scale-free
 * arithmetic; row counts near SIZE_MAX.
 *
 *  far_starts       ten classic unconstrained problems (Moré, Garbow and
 *                   Hillstrom 1981) from x0, 10 x0 and 100 x0 at the default
 *                   options: whenever nlsq_lm says CONVERGED, the returned
 *                   point is checked here, independently of the library (own
 *                   Jacobian, own Householder QR in long double): every
 *                   residual exactly zero, or max cosine between r and a
 *                   column of J <= 1e-6, or the Gauss-Newton step predicts a
 *                   relative cost reduction <= 1e-8, or that step is <= 1e-6
 *                   of x in the norm scaled by the columns of J at x.  The
 *                   library's own thresholds are 1e3-1e4 times tighter.
 *  jacobians        the analytic Jacobians here vs central differences
 *  scale_invariance residuals times 10^k, k = -200 ... 200: the same status
 *                   and parameters (1e-9 relative) as unscaled, the cost
 *                   scaled by 10^2k where that is representable, a finite
 *                   covariance equal to the unscaled one (1e-7 relative);
 *                   nlsq_curve_fit with sigma 1e170 and 1e-170 the same.
 *  zero_only_exact  CONVERGED_ZERO for an exactly solvable problem; never
 *                   for residuals that are tiny but not zero
 *  size_max_rows    n_rows = SIZE_MAX (and SIZE_MAX - 1): rows are evaluated
 *                   (the callback is called and its failure reported), no
 *                   CONVERGED_ZERO from a pass that saw no row
 */
#include "common.h"

#define MAXP 4
#define MAXM 16

typedef struct mgh {
    const char *name;
    size_t p, m;
    double x0[MAXP];
    void (*f)(const double *x, double *r, double *J);   /* J row-major m x p, may be NULL */
} mgh;

/* ---------------------------------------------------------------- problems */

static void rosenbrock(const double *x, double *r, double *J)
{
    r[0] = 10.0 * (x[1] - x[0] * x[0]);
    r[1] = 1.0 - x[0];
    if (J) { J[0] = -20.0 * x[0]; J[1] = 10.0; J[2] = -1.0; J[3] = 0.0; }
}

static void freudenstein_roth(const double *x, double *r, double *J)
{
    double y = x[1];
    r[0] = -13.0 + x[0] + ((5.0 - y) * y - 2.0) * y;
    r[1] = -29.0 + x[0] + ((y + 1.0) * y - 14.0) * y;
    if (J) {
        J[0] = 1.0; J[1] = 10.0 * y - 3.0 * y * y - 2.0;
        J[2] = 1.0; J[3] = 3.0 * y * y + 2.0 * y - 14.0;
    }
}

static void powell_badly_scaled(const double *x, double *r, double *J)
{
    r[0] = 1e4 * x[0] * x[1] - 1.0;
    r[1] = exp(-x[0]) + exp(-x[1]) - 1.0001;
    if (J) { J[0] = 1e4 * x[1]; J[1] = 1e4 * x[0]; J[2] = -exp(-x[0]); J[3] = -exp(-x[1]); }
}

static void brown_badly_scaled(const double *x, double *r, double *J)
{
    r[0] = x[0] - 1e6;
    r[1] = x[1] - 2e-6;
    r[2] = x[0] * x[1] - 2.0;
    if (J) { J[0] = 1; J[1] = 0; J[2] = 0; J[3] = 1; J[4] = x[1]; J[5] = x[0]; }
}

static void beale(const double *x, double *r, double *J)
{
    static const double y[3] = {1.5, 2.25, 2.625};
    for (int i = 0; i < 3; i++) {
        double t = pow(x[1], i + 1);
        r[i] = y[i] - x[0] * (1.0 - t);
        if (J) { J[2 * i] = -(1.0 - t); J[2 * i + 1] = x[0] * (i + 1) * pow(x[1], i); }
    }
}

static void helical_valley(const double *x, double *r, double *J)
{
    const double tpi = 2.0 * 3.14159265358979323846;
    double th = atan2(x[1], x[0]) / tpi;    /* MGH's branch up to whole turns */
    if (th < -0.25) th += 1.0;
    double q = x[0] * x[0] + x[1] * x[1], s = sqrt(q);
    r[0] = 10.0 * (x[2] - 10.0 * th);
    r[1] = 10.0 * (s - 1.0);
    r[2] = x[2];
    if (J) {
        J[0] = 100.0 * x[1] / (tpi * q); J[1] = -100.0 * x[0] / (tpi * q); J[2] = 10.0;
        J[3] = 10.0 * x[0] / s; J[4] = 10.0 * x[1] / s; J[5] = 0.0;
        J[6] = 0.0; J[7] = 0.0; J[8] = 1.0;
    }
}

static void powell_singular(const double *x, double *r, double *J)
{
    const double s5 = sqrt(5.0), s10 = sqrt(10.0);
    double a = x[1] - 2.0 * x[2], b = x[0] - x[3];
    r[0] = x[0] + 10.0 * x[1];
    r[1] = s5 * (x[2] - x[3]);
    r[2] = a * a;
    r[3] = s10 * b * b;
    if (J) {
        double j[16] = {1, 10, 0, 0,  0, 0, s5, -s5,  0, 2 * a, -4 * a, 0,
                        2 * s10 * b, 0, 0, -2 * s10 * b};
        memcpy(J, j, sizeof j);
    }
}

static void meyer(const double *x, double *r, double *J)
{
    static const double y[16] = {34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744,
                                 8261, 7030, 6005, 5147, 4427, 3820, 3307, 2872};
    for (int i = 0; i < 16; i++) {
        double t = 45.0 + 5.0 * (i + 1), d = t + x[2], e = exp(x[1] / d);
        r[i] = x[0] * e - y[i];
        if (J) { J[3 * i] = e; J[3 * i + 1] = x[0] * e / d; J[3 * i + 2] = -x[0] * e * x[1] / (d * d); }
    }
}

static void box3d(const double *x, double *r, double *J)
{
    for (int i = 0; i < 10; i++) {
        double t = 0.1 * (i + 1), e1 = exp(-t * x[0]), e2 = exp(-t * x[1]);
        double c = exp(-t) - exp(-10.0 * t);
        r[i] = e1 - e2 - x[2] * c;
        if (J) { J[3 * i] = -t * e1; J[3 * i + 1] = t * e2; J[3 * i + 2] = -c; }
    }
}

static void jennrich_sampson(const double *x, double *r, double *J)
{
    for (int i = 0; i < 10; i++) {
        double k = i + 1, e1 = exp(k * x[0]), e2 = exp(k * x[1]);
        r[i] = 2.0 + 2.0 * k - (e1 + e2);
        if (J) { J[2 * i] = -k * e1; J[2 * i + 1] = -k * e2; }
    }
}

static void bard(const double *x, double *r, double *J)
{
    static const double y[15] = {0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39,
                                 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39};
    for (int i = 0; i < 15; i++) {
        double u = i + 1, v = 15 - i, w = u < v ? u : v, d = v * x[1] + w * x[2];
        r[i] = y[i] - (x[0] + u / d);
        if (J) { J[3 * i] = -1.0; J[3 * i + 1] = u * v / (d * d); J[3 * i + 2] = u * w / (d * d); }
    }
}

static void kowalik_osborne(const double *x, double *r, double *J)
{
    static const double y[11] = {.1957, .1947, .1735, .1600, .0844, .0627, .0456, .0342,
                                 .0323, .0235, .0246};
    static const double u[11] = {4, 2, 1, .5, .25, .167, .125, .1, .0833, .0714, .0625};
    for (int i = 0; i < 11; i++) {
        double n = u[i] * u[i] + u[i] * x[1], d = u[i] * u[i] + u[i] * x[2] + x[3];
        r[i] = y[i] - x[0] * n / d;
        if (J) {
            J[4 * i] = -n / d; J[4 * i + 1] = -x[0] * u[i] / d;
            J[4 * i + 2] = x[0] * n * u[i] / (d * d); J[4 * i + 3] = x[0] * n / (d * d);
        }
    }
}

static const mgh problems[] = {
    {"Rosenbrock", 2, 2, {-1.2, 1}, rosenbrock},
    {"Freudenstein-Roth", 2, 2, {0.5, -2}, freudenstein_roth},
    {"Powell badly scaled", 2, 2, {0, 1}, powell_badly_scaled},
    {"Brown badly scaled", 2, 3, {1, 1}, brown_badly_scaled},
    {"Beale", 2, 3, {1, 1}, beale},
    {"Helical valley", 3, 3, {-1, 0, 0}, helical_valley},
    {"Powell singular", 4, 4, {3, -1, 0, 1}, powell_singular},
    {"Meyer", 3, 16, {0.02, 4000, 250}, meyer},
    {"Box 3D", 3, 10, {0, 10, 20}, box3d},
    {"Jennrich-Sampson", 2, 10, {0.3, 0.4}, jennrich_sampson},
    {"Bard", 3, 15, {1, 1, 1}, bard},
    {"Kowalik-Osborne", 4, 11, {0.25, 0.39, 0.415, 0.39}, kowalik_osborne},
};
#define N_PROBLEMS (sizeof problems / sizeof problems[0])

typedef struct pctx {
    const mgh *pr;
    double scale;        /* residuals and Jacobian times this */
    long calls;
} pctx;

static int eval(void *vc, const double *x, size_t row0, size_t n, double *r, double *J,
                const nlsq_eval_env *env)
{
    (void)env;
    pctx *c = vc;
    const mgh *pr = c->pr;
    double rr[MAXM], JJ[MAXM * MAXP];
    pr->f(x, rr, J ? JJ : NULL);
    for (size_t i = 0; i < n; i++) {
        r[i] = rr[row0 + i] * c->scale;
        for (size_t j = 0; J && j < pr->p; j++) J[i * pr->p + j] = JJ[(row0 + i) * pr->p + j] * c->scale;
    }
    c->calls++;
    return 0;
}

static int fit(const mgh *pr, double scale, const double *x0, double *x, nlsq_result *res,
               double *cov)
{
    pctx c = {pr, scale, 0};
    nlsq_problem pb = {.n_params = pr->p, .n_rows = pr->m, .eval = eval, .ctx = &c};
    nlsq_options o;
    nlsq_options_init(&o);
    o.n_threads = 1;
    memcpy(x, x0, pr->p * sizeof(double));
    memset(res, 0, sizeof *res);
    res->covariance = cov;
    return nlsq_lm(&pb, &o, x, res);
}

/* ------------------------------------------------- independent stationarity */

/* Least squares J dx = -r by Householder QR in long double (m x p, m >= p,
 * nonzero columns scaled to unit norm first, zero columns left out); dx
 * unscaled; a direction whose R diagonal is negligible gets no step. */
static void gauss_newton_ld(size_t m, size_t p0, const double *J, const double *r,
                            const long double *cn, long double *dx0)
{
    long double A[MAXM][MAXP + 1], dx[MAXP];
    size_t col[MAXP], p = 0;
    for (size_t j = 0; j < p0; j++) {
        dx0[j] = 0;
        if (cn[j] > 0) col[p++] = j;   /* zero columns: no gradient, no step */
    }
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < p; j++) A[i][j] = (long double)J[i * p0 + col[j]] / cn[col[j]];
        A[i][p] = -(long double)r[i];
    }
    for (size_t k = 0; k < p; k++) {
        long double s = 0;
        for (size_t i = k; i < m; i++) s += A[i][k] * A[i][k];
        long double a = sqrtl(s);
        if (a == 0) continue;
        if (A[k][k] > 0) a = -a;
        long double v0 = A[k][k] - a;
        long double vv = s - A[k][k] * A[k][k] + v0 * v0;   /* ||v||^2 */
        for (size_t j = k + 1; j <= p; j++) {
            long double d = v0 * A[k][j];
            for (size_t i = k + 1; i < m; i++) d += A[i][k] * A[i][j];
            d = 2 * d / vv;
            A[k][j] -= d * v0;
            for (size_t i = k + 1; i < m; i++) A[i][j] -= d * A[i][k];
        }
        A[k][k] = a;
    }
    long double rmax = 0;
    for (size_t k = 0; k < p; k++) if (fabsl(A[k][k]) > rmax) rmax = fabsl(A[k][k]);
    for (size_t k = p; k-- > 0;) {
        if (!(fabsl(A[k][k]) > 1e-15L * rmax)) { dx[k] = 0; continue; }   /* minimum-norm-ish */
        long double t = A[k][p];
        for (size_t j = k + 1; j < p; j++) t -= A[k][j] * dx[j];
        dx[k] = t / A[k][k];
    }
    for (size_t j = 0; j < p; j++) dx0[col[j]] = dx[j] / cn[col[j]];
}

/* Is x stationary by the checks of the file comment?  why: a description. */
static int stationary(const mgh *pr, const double *x, char *why, size_t wsz)
{
    const size_t m = pr->m, p = pr->p;
    double r[MAXM], J[MAXM * MAXP];
    long double cn[MAXP];
    pr->f(x, r, J);
    long double rr = 0;
    int all_zero = 1;
    for (size_t i = 0; i < m; i++) { rr += (long double)r[i] * r[i]; all_zero &= r[i] == 0.0; }
    if (all_zero) { snprintf(why, wsz, "r == 0"); return 1; }
    double cmax = 0;
    for (size_t j = 0; j < p; j++) {
        long double g = 0, c2 = 0;
        for (size_t i = 0; i < m; i++) { g += (long double)J[i * p + j] * r[i]; c2 += (long double)J[i * p + j] * J[i * p + j]; }
        cn[j] = sqrtl(c2);   /* long double: a column of 1e-281 does not vanish */
        if (c2 > 0) { double c = (double)(fabsl(g) / (sqrtl(c2) * sqrtl(rr))); if (c > cmax) cmax = c; }
    }
    long double dx[MAXP], lin = 0, dn = 0, xn = 0;
    gauss_newton_ld(m, p, J, r, cn, dx);
    for (size_t i = 0; i < m; i++) {
        long double t = r[i];
        for (size_t j = 0; j < p; j++) t += (long double)J[i * p + j] * dx[j];
        lin += t * t;
    }
    for (size_t j = 0; j < p; j++) { dn += dx[j] * dx[j] * cn[j] * cn[j]; xn += (long double)x[j] * x[j] * cn[j] * cn[j]; }
    double pred = (double)((rr - lin) / rr), step = (double)sqrtl(dn / xn);
    snprintf(why, wsz, "cos %.1e, GN reduction %.1e, GN step %.1e", cmax, pred, step);
    return cmax <= 1e-6 || pred <= 1e-8 || step <= 1e-6;
}

static void test_jacobians(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_PROBLEMS; k++) {
        const mgh *pr = &problems[k];
        double x[MAXP], r[MAXM], J[MAXM * MAXP], rp[MAXM], rm[MAXM];
        for (size_t j = 0; j < pr->p; j++) x[j] = pr->x0[j] * 1.1 + 0.05;
        pr->f(x, r, J);
        for (size_t j = 0; j < pr->p; j++) {
            double h = 1e-6 * (fabs(x[j]) + 1e-3), s = x[j];
            x[j] = s + h; pr->f(x, rp, NULL);
            x[j] = s - h; pr->f(x, rm, NULL);
            x[j] = s;
            for (size_t i = 0; i < pr->m; i++) {
                double fd = (rp[i] - rm[i]) / (2 * h), a = J[i * pr->p + j];
                if (!(fabs(fd - a) <= 1e-5 * (fabs(a) + fabs(fd)) + 1e-7))
                    fail_msg("%s: dr%zu/dx%zu analytic %.10g, differences %.10g", pr->name, i, j, a, fd);
            }
        }
    }
}

static void test_far_starts(void **state)
{
    (void)state;
    int n_conv = 0, n_other = 0;
    for (size_t k = 0; k < N_PROBLEMS; k++) {
        const mgh *pr = &problems[k];
        for (int f = 0; f < 3; f++) {
            double mult = f == 0 ? 1 : f == 1 ? 10 : 100, x0[MAXP], x[MAXP];
            for (size_t j = 0; j < pr->p; j++) x0[j] = pr->x0[j] * mult;
            if (f > 0 && pr->x0[0] == 0 && pr->x0[pr->p - 1] == 0) continue;
            nlsq_result res;
            int st = fit(pr, 1.0, x0, x, &res, NULL);
            char why[160];
            int stat = stationary(pr, x, why, sizeof why);
            print_message("  %-20s %3gx0: %-15s %5zu it, 2 cost %.6e  (%s)\n", pr->name, mult,
                          nlsq_status_name(st), res.iterations, 2 * res.cost, why);
            if (st > 0) {
                n_conv++;
                if (!stat)
                    fail_msg("%s from %g x0: %s at a point that is not stationary (%s)", pr->name,
                             mult, nlsq_status_name(st), why);
            } else {
                n_other++;
                assert_true(st == NLSQ_MAX_ITER || st == NLSQ_STALLED);
                assert_true(res.message[0] != '\0');
            }
            for (size_t j = 0; j < pr->p; j++) assert_true(isfinite(x[j]));
        }
    }
    print_message("  %d converged (every one stationary), %d stopped otherwise\n", n_conv, n_other);
    assert_true(n_conv >= 20);
}

/* ------------------------------------------------------------ scale */

static void test_scale_invariance(void **state)
{
    (void)state;
    const mgh *set[] = {&problems[7], &problems[10], &problems[11]};   /* Meyer, Bard, Kowalik-Osborne */
    for (size_t q = 0; q < 3; q++) {
        const mgh *pr = set[q];
        double xr[MAXP], cr[MAXP * MAXP];
        nlsq_result ref;
        int sr = fit(pr, 1.0, pr->x0, xr, &ref, cr);
        assert_true(sr > 0);
        for (int e = -200; e <= 200; e += 25) {
            double s = pow(10.0, e), x[MAXP], cov[MAXP * MAXP];
            nlsq_result res;
            int st = fit(pr, s, pr->x0, x, &res, cov);
            double worst = 0;
            for (size_t j = 0; j < pr->p; j++) {
                double d = fabs(x[j] - xr[j]) / fabs(xr[j]);
                if (d > worst) worst = d;
            }
            print_message("  %-16s residuals x 1e%+04d: %-15s %3zu it, max rel dx %.1e, cost/s^2 "
                          "%.12e\n", pr->name, e, nlsq_status_name(st), res.iterations, worst,
                          res.cost / s / s);
            assert_int_equal(st, sr);
            assert_true(worst <= 1e-9);
            if (fabs(2.0 * e) < 300) assert_true(fabs(res.cost / s / s - ref.cost) <= 1e-9 * ref.cost);
            for (size_t j = 0; j < pr->p * pr->p; j++)
                if (!(fabs(cov[j] - cr[j]) <= 1e-7 * sqrt(cr[(j / pr->p) * (pr->p + 1)] *
                                                          cr[(j % pr->p) * (pr->p + 1)])))
                    fail_msg("%s 1e%d: cov[%zu] %.10g, unscaled %.10g", pr->name, e, j, cov[j], cr[j]);
        }
    }
}

/* nlsq_curve_fit: y = a exp(-b t) + c with sigma 1e170 / 1e-170 / 1. */
static int cf_model(void *ctx, const double *theta, size_t n, const double *xd, double *f,
                    double *J)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        double t = xd[i], e = exp(-theta[1] * t);
        f[i] = theta[0] * e + theta[2];
        if (J) { J[3 * i] = e; J[3 * i + 1] = -theta[0] * t * e; J[3 * i + 2] = 1.0; }
    }
    return 0;
}

static void test_curve_fit_sigma(void **state)
{
    (void)state;
    double t[40], y[40], sig[40];
    for (int i = 0; i < 40; i++) {
        t[i] = 0.1 * i;
        y[i] = 2.5 * exp(-1.3 * t[i]) + 0.4 + 0.02 * sin(7.0 * i);
    }
    double ref[3] = {0}, refc[9];
    int ref_st = 0;
    const double sigmas[] = {1.0, 1e170, 1e-170, 1e200};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 40; i++) sig[i] = sigmas[k];
        nlsq_curve_problem cp;
        memset(&cp, 0, sizeof cp);
        cp.n_params = 3; cp.n_points = 40; cp.xdim = 1; cp.xdata = t; cp.ydata = y; cp.sigma = sig;
        cp.model = cf_model;
        cp.analytic_jacobian = 1;
        double th[3] = {1, 1, 0}, cov[9];
        nlsq_options o;
        nlsq_options_init(&o);
        o.absolute_sigma = 0;
        nlsq_result res;
        memset(&res, 0, sizeof res);
        int st = nlsq_curve_fit(&cp, &o, th, cov, NULL, &res);
        print_message("  curve_fit sigma %g: %s, %zu it, theta %.12g %.12g %.12g\n", sigmas[k],
                      nlsq_status_name(st), res.iterations, th[0], th[1], th[2]);
        if (k == 0) { memcpy(ref, th, sizeof th); memcpy(refc, cov, sizeof cov); ref_st = st; assert_true(st > 0); continue; }
        assert_int_equal(st, ref_st);
        for (int j = 0; j < 3; j++) assert_true(fabs(th[j] - ref[j]) <= 1e-9 * fabs(ref[j]));
        for (int j = 0; j < 9; j++) assert_true(fabs(cov[j] - refc[j]) <= 1e-7 * sqrt(refc[(j / 3) * 4] * refc[(j % 3) * 4]));
    }
}

/* ------------------------------------------------------------ zero */

static void line_exact(const double *x, double *r, double *J)
{
    for (int i = 0; i < 4; i++) {
        r[i] = x[0] * i + x[1] - (2.0 * i + 1.0);
        if (J) { J[2 * i] = i; J[2 * i + 1] = 1.0; }
    }
}

static void test_zero_only_exact(void **state)
{
    (void)state;
    const mgh exact = {"line", 2, 4, {0.5, 0.25}, line_exact};
    double x[MAXP];
    nlsq_result res;
    int st = fit(&exact, 1.0, exact.x0, x, &res, NULL);
    print_message("  exact line: %s, x = %.17g %.17g\n", nlsq_status_name(st), x[0], x[1]);
    assert_true(st > 0);
    if (st == NLSQ_CONVERGED_ZERO) assert_true(res.cost == 0.0);
    /* tiny but nonzero residuals (Meyer times 1e-300): never CONVERGED_ZERO */
    st = fit(&problems[7], 1e-300, problems[7].x0, x, &res, NULL);
    print_message("  Meyer x 1e-300: %s after %zu iterations\n", nlsq_status_name(st), res.iterations);
    assert_true(st != NLSQ_CONVERGED_ZERO);
    assert_true(res.iterations > 0);
}

/* ------------------------------------------------------------ SIZE_MAX rows */

static int fail_eval(void *vc, const double *x, size_t row0, size_t n, double *r, double *J,
                     const nlsq_eval_env *env)
{
    (void)env;
    (void)x; (void)row0; (void)r; (void)J; (void)n;
    ((pctx *)vc)->calls++;
    return 1;
}

static void test_size_max_rows(void **state)
{
    (void)state;
    const size_t ms[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2 + 1};
    for (int k = 0; k < 3; k++)
        for (int threads = 1; threads <= 2; threads++) {
            pctx c = {NULL, 1.0, 0};
            nlsq_problem pb = {.n_params = 2, .n_rows = ms[k], .eval = fail_eval, .ctx = &c};
            nlsq_options o;
            nlsq_options_init(&o);
            o.n_threads = threads;
            double x[2] = {1, 2};
            nlsq_result res;
            memset(&res, 0, sizeof res);
            int st = nlsq_lm(&pb, &o, x, &res);
            print_message("  n_rows %zu, %d thread(s): %s after %ld callback(s)\n", ms[k], threads,
                          nlsq_status_name(st), c.calls);
            assert_true(c.calls >= 1);
            assert_int_equal(st, NLSQ_ECALLBACK);
            double cov[4];
            c.calls = 0;
            st = nlsq_covariance(&pb, &o, x, cov, &res);
            assert_true(c.calls >= 1);
            assert_int_equal(st, NLSQ_ECALLBACK);
        }
}

TC_MAIN(cmocka_unit_test(test_jacobians), cmocka_unit_test(test_far_starts),
        cmocka_unit_test(test_scale_invariance), cmocka_unit_test(test_curve_fit_sigma),
        cmocka_unit_test(test_zero_only_exact), cmocka_unit_test(test_size_max_rows))
