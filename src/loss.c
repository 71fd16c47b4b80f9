/* loss.c - robust loss functions rho(z), z = r^2, as scipy.optimize.least_squares
 * defines them, with f_scale C: rho(z) = C^2 rho0(z / C^2), so
 * rho'(z) = rho0'(z/C^2) and rho''(z) = rho0''(z/C^2) / C^2. */
#include "nlsq_internal.h"

#include <math.h>

void nlsq__loss_eval(int loss, double f_scale, double z, double *rho, double *d1, double *d2)
{
    double c2 = f_scale * f_scale;
    double u = z / c2, r0, r1, r2;
    switch (loss) {
    case NLSQ_LOSS_SOFT_L1: {
        double t = 1.0 + u, s = sqrt(t);
        r0 = 2.0 * (s - 1.0);
        r1 = 1.0 / s;
        r2 = -0.5 / (t * s);
        break;
    }
    case NLSQ_LOSS_HUBER:
        if (u <= 1.0) { r0 = u; r1 = 1.0; r2 = 0.0; }
        else { double s = sqrt(u); r0 = 2.0 * s - 1.0; r1 = 1.0 / s; r2 = -0.5 / (u * s); }
        break;
    case NLSQ_LOSS_CAUCHY:
        r0 = log1p(u);
        r1 = 1.0 / (1.0 + u);
        r2 = -r1 * r1;
        break;
    case NLSQ_LOSS_ARCTAN:
        r0 = atan(u);
        r1 = 1.0 / (1.0 + u * u);
        r2 = -2.0 * u * r1 * r1;
        break;
    default:
        r0 = u; r1 = 1.0; r2 = 0.0;
        break;
    }
    *rho = c2 * r0;
    *d1 = r1;
    *d2 = r2 / c2;
}
