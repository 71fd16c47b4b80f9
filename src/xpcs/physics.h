/*
 * physics.h - the XPCS forward model of docs/xpcs-model.md, written once
 * (private; physics.c).
 *
 *   constants       pi and the model's numerical floors, one name each (the
 *                   vector kernel, model_kernel.c, uses the same ones)
 *   geometry        A = q^2 dt / 2, B = q L dt / (2 pi), the time floor eps,
 *                   and per angle B cos(phi0 - phi) and its phi0 derivative
 *   tables          the cumulative trapezoids CD_k, CG_k ("Forward model")
 *                   and their derivatives w.r.t. (amplitude, exponent,
 *                   offset) ("Jacobian")
 *   entry           g1 at one entry from the table differences (inline: the
 *                   model's start point and the row evaluator run it per entry)
 *   scalar reference g2 at one entry with its analytic gradient w.r.t. every
 *                   parameter of the entry (7 or 3 physical, contrast,
 *                   offset): the definition the vector kernel is tested
 *                   against (tests/test_xpcs_physics.c)
 *
 * Every function is either static inline or hidden with an nlsq__xpcs_
 * prefix: no symbol of this file leaves the library.
 */
#ifndef NLSQ_XPCS_PHYSICS_H
#define NLSQ_XPCS_PHYSICS_H

#include <math.h>
#include <stddef.h>

/* ------------------------------------------------------------------------ */
/* Constants (docs/xpcs-model.md "Forward model": the floors are part of the */
/* model)                                                                    */
/* ------------------------------------------------------------------------ */

#define NLSQ__XPCS_PI          3.14159265358979323846
#define NLSQ__XPCS_DG_FLOOR    1e-10      /* floor of D_k and G_k */
#define NLSQ__XPCS_G1_FLOOR    1e-10      /* floor of g1 */
#define NLSQ__XPCS_EPS2        1e-12      /* under the square root of I_D, I_G */
#define NLSQ__XPCS_EXP_CLAMP   (-700.0)   /* lower clamp of the exponent -A I_D */
#define NLSQ__XPCS_SINC_SERIES 1e-4       /* |x| below: sinc by 1 - x^2/6 + x^4/120 */
#define NLSQ__XPCS_SINC_TAYLOR 0.1        /* |x| below: sinc' by its Taylor series
                                             (the closed form cancels there) */
#define NLSQ__XPCS_T_EPS_MIN   1e-8       /* times kept >= max(dt / 2, this) */

#if defined(__GNUC__)
#define NLSQ__XPCS_HIDDEN __attribute__((visibility("hidden")))
#else
#define NLSQ__XPCS_HIDDEN
#endif

/* ------------------------------------------------------------------------ */
/* Geometry                                                                  */
/* ------------------------------------------------------------------------ */

/** The constants of one model (one q, gap, dt and frame window). */
typedef struct nlsq__xpcs_geom {
    double A;        /* q^2 dt / 2 */
    double B;        /* q L dt / (2 pi); 0 in static mode */
    double dt, eps;  /* frame time; time floor max(dt / 2, 1e-8) */
    size_t k0, n;    /* frame index of row 0; frames */
    int laminar;     /* 7 physical parameters (else 3: static) */
} nlsq__xpcs_geom;

NLSQ__XPCS_HIDDEN void nlsq__xpcs_geom_init(nlsq__xpcs_geom *g, double q, double gap,
                                            double dt, size_t k0, size_t n, int laminar);

/** Shear constants of angle phi_a (degrees) at flow direction phi0:
 *  *bc = B cos((phi0 - phi_a) pi / 180), *bdc = d(*bc) / d phi0 (per degree;
 *  may be NULL).  0 in static mode (B = 0). */
static inline void nlsq__xpcs_angle(double B, double phi0, double phi_a, double *bc,
                                    double *bdc)
{
    double arg = (phi0 - phi_a) * NLSQ__XPCS_PI / 180.0;
    *bc = B * cos(arg);
    if (bdc) *bdc = B * (-sin(arg) * NLSQ__XPCS_PI / 180.0);
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                    */
/* ------------------------------------------------------------------------ */

/** C[k], k < g->n: the cumulative trapezoid (index units) of
 *  f_k = max(amp ts_k^ex + off, DG_FLOOR), ts_k = max((k + k0) dt, eps); when
 *  dC is not NULL also its derivatives w.r.t. (amp, ex, off) at
 *  dC[t * n + k] (zero where the floor is active). */
NLSQ__XPCS_HIDDEN void nlsq__xpcs_cumulative(const nlsq__xpcs_geom *g, double amp, double ex,
                                             double off, double *C, double *dC);

/** The tables of physical parameters phys (7, or 3 in static mode): CD and
 *  (laminar) CG, n values each; dCD, dCG (3 n each, may be NULL).  CG and dCG
 *  are unused in static mode. */
NLSQ__XPCS_HIDDEN void nlsq__xpcs_tables(const nlsq__xpcs_geom *g, const double *phys,
                                         double *CD, double *dCD, double *CG, double *dCG);

/* ------------------------------------------------------------------------ */
/* One entry                                                                 */
/* ------------------------------------------------------------------------ */

/** sinc(x) = sin(x)/x as the model defines it, and (when ds != NULL) the
 *  derivative of that definition (the series' derivative below
 *  SINC_SERIES). */
static inline double nlsq__xpcs_sinc(double x, double *ds)
{
    double ax = fabs(x), x2 = x * x;
    if (ax < NLSQ__XPCS_SINC_SERIES) {
        if (ds) *ds = x * (-1.0 / 3.0 + x2 / 30.0);
        return 1.0 - x2 / 6.0 + x2 * x2 / 120.0;
    }
    double sn = sin(x);
    if (ds) {
        if (ax < NLSQ__XPCS_SINC_TAYLOR)
            *ds = x * (-1.0 / 3.0 + x2 * (1.0 / 30.0 + x2 * (-1.0 / 840.0 +
                       x2 * (1.0 / 45360.0 - x2 / 3991680.0))));
        else
            *ds = (x * cos(x) - sn) / x2;
    }
    return sn / x;
}

/** g1 of one entry and the pieces its derivatives need. */
typedef struct nlsq__xpcs_g1 {
    double g1;       /* max(g1raw, G1_FLOOR) */
    double g1raw;    /* g1d sinc(Phi)^2 */
    double g1d;      /* exp(max(-A I_D, EXP_CLAMP)) */
    double sinc, dsinc;   /* sinc(Phi) and sinc'(Phi) (dsinc only with deriv) */
    double ID, IG;   /* sqrt(dCd^2 + EPS2), sqrt(dCg^2 + EPS2) (IG 0: static) */
    int floor;       /* the g1 floor is active */
    int clampD;      /* the exponent clamp is active */
} nlsq__xpcs_g1;

/** g1 at an entry whose table differences are dCd = CD_i - CD_j and
 *  dCg = CG_i - CG_j (unused when !laminar), bc = B cos(...) of its angle;
 *  deriv: also sinc'(Phi). */
static inline void nlsq__xpcs_g1_entry(double A, double bc, int laminar, double dCd,
                                       double dCg, int deriv, nlsq__xpcs_g1 *g)
{
    double ID = sqrt(dCd * dCd + NLSQ__XPCS_EPS2);
    double e = -A * ID;
    g->clampD = !(e >= NLSQ__XPCS_EXP_CLAMP);
    if (g->clampD) e = NLSQ__XPCS_EXP_CLAMP;
    double g1d = exp(e);
    double g1s = 1.0;
    g->sinc = 1.0;
    g->dsinc = 0.0;
    g->IG = 0.0;
    if (laminar) {
        double IG = sqrt(dCg * dCg + NLSQ__XPCS_EPS2);
        double s = nlsq__xpcs_sinc(bc * IG, deriv ? &g->dsinc : NULL);
        g1s = s * s;
        g->sinc = s;
        g->IG = IG;
    }
    double g1raw = g1d * g1s;
    g->floor = !(g1raw > NLSQ__XPCS_G1_FLOOR);
    g->g1 = g->floor ? NLSQ__XPCS_G1_FLOOR : g1raw;
    g->g1raw = g1raw;
    g->g1d = g1d;
    g->ID = ID;
}

/** g2 = offset + contrast g1^2 at entry (i, j) of an angle (bc from
 *  nlsq__xpcs_angle) from the tables CD, CG (CG unused when static). */
static inline double nlsq__xpcs_g2_entry(const nlsq__xpcs_geom *g, const double *CD,
                                         const double *CG, double bc, double contrast,
                                         double offset, size_t i, size_t j)
{
    nlsq__xpcs_g1 e;
    nlsq__xpcs_g1_entry(g->A, bc, g->laminar, CD[i] - CD[j],
                        g->laminar ? CG[i] - CG[j] : 0.0, 0, &e);
    return offset + contrast * e.g1 * e.g1;
}

/* ------------------------------------------------------------------------ */
/* The scalar reference                                                      */
/* ------------------------------------------------------------------------ */

/** Tables of one parameter point, with derivatives (as nlsq__xpcs_tables). */
typedef struct nlsq__xpcs_tabset {
    const double *CD, *CG;     /* n each (CG NULL: static) */
    const double *dCD, *dCG;   /* 3 n each, [t * n + k] */
} nlsq__xpcs_tabset;

/** g2 of angle phi_a (degrees) at entry (i, j) for physical parameters phys
 *  (7, or 3 in static mode; the tables T are phys's), contrast and offset;
 *  grad (may be NULL): dg2 / d(phys..., contrast, offset), np + 2 values in
 *  the pattern's column order.  docs/xpcs-model.md "Forward model" and
 *  "Jacobian": every derivative analytic, zero through an active floor or
 *  clamp. */
NLSQ__XPCS_HIDDEN double nlsq__xpcs_g2_ref(const nlsq__xpcs_geom *g, const nlsq__xpcs_tabset *T,
                                           const double *phys, double phi_a, double contrast,
                                           double offset, size_t i, size_t j, double *grad);

#endif /* NLSQ_XPCS_PHYSICS_H */
