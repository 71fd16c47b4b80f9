/*
 * nist_problems.h - the 27 NIST StRD nonlinear regression models and their
 * analytic Jacobians, for tests/test_nist.c.
 *
 * Every model is  f(x; b)  for one observation: x points at the predictor(s)
 * of that row (x[0]; Nelson also x[1]), b at the p parameters b1..bp (b[0] is
 * b1).  The function returns f and, when g is not NULL, writes df/db_j to
 * g[0..p-1].  The residual used by the test is r = f - y, so the Jacobian row
 * is exactly g.  The formulas are the ones in the "Model:" section of each
 * .dat file; only the functional form is written here, every number (start
 * points, certified values, data) is read from the files.
 *
 * Include this header from exactly one translation unit (all static).
 */
#ifndef NIST_PROBLEMS_H
#define NIST_PROBLEMS_H

#include <math.h>
#include <stddef.h>

typedef double (*nist_model_fn)(const double *b, const double *x, double *g);

#define NIST_PI 3.141592653589793238462643383279

/* ---- Exponential class: y = b1*(1-exp[-b2*x])  (Misra1a, BoxBOD) -------- */
static double nist_m_misra1a(const double *b, const double *x, double *g)
{
    const double e = exp(-b[1] * x[0]);
    if (g) {
        g[0] = 1.0 - e;
        g[1] = b[0] * x[0] * e;
    }
    return b[0] * (1.0 - e);
}

/* ---- Misra1b: y = b1 * (1-(1+b2*x/2)**(-2)) ------------------------------ */
static double nist_m_misra1b(const double *b, const double *x, double *g)
{
    const double u = 1.0 + b[1] * x[0] / 2.0;
    const double u2 = 1.0 / (u * u);
    if (g) {
        g[0] = 1.0 - u2;
        g[1] = b[0] * x[0] * u2 / u;
    }
    return b[0] * (1.0 - u2);
}

/* ---- Misra1c: y = b1 * (1-(1+2*b2*x)**(-.5)) ----------------------------- */
static double nist_m_misra1c(const double *b, const double *x, double *g)
{
    const double u = 1.0 + 2.0 * b[1] * x[0];
    const double s = 1.0 / sqrt(u);
    if (g) {
        g[0] = 1.0 - s;
        g[1] = b[0] * x[0] * s / u;
    }
    return b[0] * (1.0 - s);
}

/* ---- Misra1d: y = b1*b2*x*((1+b2*x)**(-1)) ------------------------------- */
static double nist_m_misra1d(const double *b, const double *x, double *g)
{
    const double u = 1.0 + b[1] * x[0];
    if (g) {
        g[0] = b[1] * x[0] / u;
        g[1] = b[0] * x[0] / (u * u);
    }
    return b[0] * b[1] * x[0] / u;
}

/* ---- Chwirut1/2: y = exp[-b1*x]/(b2+b3*x) -------------------------------- */
static double nist_m_chwirut(const double *b, const double *x, double *g)
{
    const double e = exp(-b[0] * x[0]);
    const double d = b[1] + b[2] * x[0];
    if (g) {
        g[0] = -x[0] * e / d;
        g[1] = -e / (d * d);
        g[2] = -x[0] * e / (d * d);
    }
    return e / d;
}

/* ---- Lanczos1-3: y = b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x) ------- */
static double nist_m_lanczos(const double *b, const double *x, double *g)
{
    double f = 0.0;
    for (int k = 0; k < 3; k++) {
        const double e = exp(-b[2 * k + 1] * x[0]);
        f += b[2 * k] * e;
        if (g) {
            g[2 * k] = e;
            g[2 * k + 1] = -b[2 * k] * x[0] * e;
        }
    }
    return f;
}

/* ---- Gauss1-3: y = b1*exp(-b2*x) + b3*exp(-(x-b4)**2/b5**2)
 *                                  + b6*exp(-(x-b7)**2/b8**2) -------------- */
static double nist_m_gauss(const double *b, const double *x, double *g)
{
    const double e1 = exp(-b[1] * x[0]);
    double f = b[0] * e1;
    if (g) {
        g[0] = e1;
        g[1] = -b[0] * x[0] * e1;
    }
    for (int k = 0; k < 2; k++) {
        const double a = b[2 + 3 * k], c = b[3 + 3 * k], w = b[4 + 3 * k];
        const double t = x[0] - c;
        const double e = exp(-t * t / (w * w));
        f += a * e;
        if (g) {
            g[2 + 3 * k] = e;
            g[3 + 3 * k] = a * e * 2.0 * t / (w * w);
            g[4 + 3 * k] = a * e * 2.0 * t * t / (w * w * w);
        }
    }
    return f;
}

/* ---- DanWood: y = b1*x**b2 ----------------------------------------------- */
static double nist_m_danwood(const double *b, const double *x, double *g)
{
    const double xp = pow(x[0], b[1]);
    if (g) {
        g[0] = xp;
        g[1] = b[0] * xp * log(x[0]);
    }
    return b[0] * xp;
}

/* ---- Rational: (b1 + b2 x + ... + b_{nn} x^{nn-1}) / (1 + b x + ...) ------
 * nn numerator coefficients, nd denominator coefficients (without the 1). */
static double nist_rational(const double *b, double x, int nn, int nd, double *g)
{
    double num = 0.0, den = 1.0, xp = 1.0;
    for (int k = 0; k < nn; k++) {
        num += b[k] * xp;
        xp *= x;
    }
    xp = x;
    for (int k = 0; k < nd; k++) {
        den += b[nn + k] * xp;
        xp *= x;
    }
    if (g) {
        xp = 1.0;
        for (int k = 0; k < nn; k++) {
            g[k] = xp / den;
            xp *= x;
        }
        xp = x;
        for (int k = 0; k < nd; k++) {
            g[nn + k] = -num * xp / (den * den);
            xp *= x;
        }
    }
    return num / den;
}

/* Kirby2: y = (b1 + b2*x + b3*x**2) / (1 + b4*x + b5*x**2) */
static double nist_m_kirby2(const double *b, const double *x, double *g)
{
    return nist_rational(b, x[0], 3, 2, g);
}

/* Hahn1, Thurber: y = (b1+b2*x+b3*x**2+b4*x**3) / (1+b5*x+b6*x**2+b7*x**3) */
static double nist_m_cubic_cubic(const double *b, const double *x, double *g)
{
    return nist_rational(b, x[0], 4, 3, g);
}

/* ---- Nelson: log[y] = b1 - b2*x1 * exp[-b3*x2]  (response already log y) - */
static double nist_m_nelson(const double *b, const double *x, double *g)
{
    const double e = exp(-b[2] * x[1]);
    if (g) {
        g[0] = 1.0;
        g[1] = -x[0] * e;
        g[2] = b[1] * x[0] * x[1] * e;
    }
    return b[0] - b[1] * x[0] * e;
}

/* ---- MGH17: y = b1 + b2*exp[-x*b4] + b3*exp[-x*b5] ----------------------- */
static double nist_m_mgh17(const double *b, const double *x, double *g)
{
    const double e4 = exp(-x[0] * b[3]);
    const double e5 = exp(-x[0] * b[4]);
    if (g) {
        g[0] = 1.0;
        g[1] = e4;
        g[2] = e5;
        g[3] = -b[1] * x[0] * e4;
        g[4] = -b[2] * x[0] * e5;
    }
    return b[0] + b[1] * e4 + b[2] * e5;
}

/* ---- MGH09: y = b1*(x**2+x*b2) / (x**2+x*b3+b4) -------------------------- */
static double nist_m_mgh09(const double *b, const double *x, double *g)
{
    const double t = x[0];
    const double num = t * t + t * b[1];
    const double den = t * t + t * b[2] + b[3];
    if (g) {
        g[0] = num / den;
        g[1] = b[0] * t / den;
        g[2] = -b[0] * num * t / (den * den);
        g[3] = -b[0] * num / (den * den);
    }
    return b[0] * num / den;
}

/* ---- Rat42: y = b1 / (1+exp[b2-b3*x]) ------------------------------------ */
static double nist_m_rat42(const double *b, const double *x, double *g)
{
    const double e = exp(b[1] - b[2] * x[0]);
    const double d = 1.0 + e;
    if (g) {
        g[0] = 1.0 / d;
        g[1] = -b[0] * e / (d * d);
        g[2] = b[0] * x[0] * e / (d * d);
    }
    return b[0] / d;
}

/* ---- MGH10: y = b1 * exp[b2/(x+b3)] -------------------------------------- */
static double nist_m_mgh10(const double *b, const double *x, double *g)
{
    const double s = x[0] + b[2];
    const double e = exp(b[1] / s);
    if (g) {
        g[0] = e;
        g[1] = b[0] * e / s;
        g[2] = -b[0] * e * b[1] / (s * s);
    }
    return b[0] * e;
}

/* ---- Eckerle4: y = (b1/b2) * exp[-0.5*((x-b3)/b2)**2] -------------------- */
static double nist_m_eckerle4(const double *b, const double *x, double *g)
{
    const double t = (x[0] - b[2]) / b[1];
    const double e = exp(-0.5 * t * t);
    if (g) {
        g[0] = e / b[1];
        g[1] = b[0] * e * (t * t - 1.0) / (b[1] * b[1]);
        g[2] = b[0] * e * t / (b[1] * b[1]);
    }
    return b[0] / b[1] * e;
}

/* ---- Rat43: y = b1 / ((1+exp[b2-b3*x])**(1/b4)) -------------------------- */
static double nist_m_rat43(const double *b, const double *x, double *g)
{
    const double e = exp(b[1] - b[2] * x[0]);
    const double d = 1.0 + e;
    const double q = pow(d, -1.0 / b[3]);          /* d^(-1/b4) */
    if (g) {
        g[0] = q;
        g[1] = -b[0] * q * e / (d * b[3]);
        g[2] = b[0] * q * x[0] * e / (d * b[3]);
        g[3] = b[0] * q * log(d) / (b[3] * b[3]);
    }
    return b[0] * q;
}

/* ---- Bennett5: y = b1 * (b2+x)**(-1/b3) ---------------------------------- */
static double nist_m_bennett5(const double *b, const double *x, double *g)
{
    const double u = b[1] + x[0];
    const double q = pow(u, -1.0 / b[2]);
    if (g) {
        g[0] = q;
        g[1] = -b[0] * q / (b[2] * u);
        g[2] = b[0] * q * log(u) / (b[2] * b[2]);
    }
    return b[0] * q;
}

/* ---- ENSO: y = b1 + b2*cos(2*pi*x/12) + b3*sin(2*pi*x/12)
 *                  + b5*cos(2*pi*x/b4) + b6*sin(2*pi*x/b4)
 *                  + b8*cos(2*pi*x/b7) + b9*sin(2*pi*x/b7) ------------------ */
static double nist_m_enso(const double *b, const double *x, double *g)
{
    const double a0 = 2.0 * NIST_PI * x[0] / 12.0;
    const double a4 = 2.0 * NIST_PI * x[0] / b[3];
    const double a7 = 2.0 * NIST_PI * x[0] / b[6];
    const double c0 = cos(a0), s0 = sin(a0);
    const double c4 = cos(a4), s4 = sin(a4);
    const double c7 = cos(a7), s7 = sin(a7);
    if (g) {
        g[0] = 1.0;
        g[1] = c0;
        g[2] = s0;
        /* d a4 / d b4 = -a4 / b4 */
        g[3] = (b[4] * s4 - b[5] * c4) * a4 / b[3];
        g[4] = c4;
        g[5] = s4;
        g[6] = (b[7] * s7 - b[8] * c7) * a7 / b[6];
        g[7] = c7;
        g[8] = s7;
    }
    return b[0] + b[1] * c0 + b[2] * s0 + b[4] * c4 + b[5] * s4
         + b[7] * c7 + b[8] * s7;
}

/* ---- Roszman1: y = b1 - b2*x - arctan[b3/(x-b4)]/pi ---------------------- */
static double nist_m_roszman1(const double *b, const double *x, double *g)
{
    const double d = x[0] - b[3];
    if (g) {
        const double q = NIST_PI * (d * d + b[2] * b[2]);
        g[0] = 1.0;
        g[1] = -x[0];
        g[2] = -d / q;
        g[3] = -b[2] / q;
    }
    return b[0] - b[1] * x[0] - atan(b[2] / d) / NIST_PI;
}

/* ------------------------------------------------------------------------ */
/* The table: file stem, number of parameters, number of predictors, model,
 * and NIST's level of difficulty (for the report only).                     */
/* ------------------------------------------------------------------------ */
typedef struct nist_problem_def {
    const char *name;       /* file is NLSQ_NIST_DIR/<name>.dat */
    size_t p;               /* parameters b1..bp */
    size_t nx;              /* predictor columns after y */
    nist_model_fn model;
    const char *difficulty;
} nist_problem_def;

static const nist_problem_def nist_problem_defs[] = {
    {"Misra1a",  2, 1, nist_m_misra1a,     "lower"},
    {"Chwirut2", 3, 1, nist_m_chwirut,     "lower"},
    {"Chwirut1", 3, 1, nist_m_chwirut,     "lower"},
    {"Lanczos3", 6, 1, nist_m_lanczos,     "lower"},
    {"Gauss1",   8, 1, nist_m_gauss,       "lower"},
    {"Gauss2",   8, 1, nist_m_gauss,       "lower"},
    {"DanWood",  2, 1, nist_m_danwood,     "lower"},
    {"Misra1b",  2, 1, nist_m_misra1b,     "lower"},
    {"Kirby2",   5, 1, nist_m_kirby2,      "average"},
    {"Hahn1",    7, 1, nist_m_cubic_cubic, "average"},
    {"Nelson",   3, 2, nist_m_nelson,      "average"},
    {"MGH17",    5, 1, nist_m_mgh17,       "average"},
    {"Lanczos1", 6, 1, nist_m_lanczos,     "average"},
    {"Lanczos2", 6, 1, nist_m_lanczos,     "average"},
    {"Gauss3",   8, 1, nist_m_gauss,       "average"},
    {"Misra1c",  2, 1, nist_m_misra1c,     "average"},
    {"Misra1d",  2, 1, nist_m_misra1d,     "average"},
    {"Roszman1", 4, 1, nist_m_roszman1,    "average"},
    {"ENSO",     9, 1, nist_m_enso,        "average"},
    {"MGH09",    4, 1, nist_m_mgh09,       "higher"},
    {"Thurber",  7, 1, nist_m_cubic_cubic, "higher"},
    {"BoxBOD",   2, 1, nist_m_misra1a,     "higher"},
    {"Rat42",    3, 1, nist_m_rat42,       "higher"},
    {"MGH10",    3, 1, nist_m_mgh10,       "higher"},
    {"Eckerle4", 3, 1, nist_m_eckerle4,    "higher"},
    {"Rat43",    4, 1, nist_m_rat43,       "higher"},
    {"Bennett5", 3, 1, nist_m_bennett5,    "higher"},
};

#define NIST_N_PROBLEMS (sizeof nist_problem_defs / sizeof nist_problem_defs[0])

#endif /* NIST_PROBLEMS_H */
