/*
 * decay_cos_problem.h - the 4-parameter test problem that the distributed
 * tests share (tests/test_distributed.c with threads as ranks,
 * tests/mpi/mpi_test_util.h over MPI), so both fit the same rows.
 *
 * Row i, t = 1e-4 i: data y(t) = 2.5 exp(-1.3 t) + 0.4 cos(3 t) + 0.1
 * + 1e-3 sin(91 t); model x0 exp(-x1 t) + x2 cos(3 t) + x3.  No cmocka: the
 * MPI tests include it too.
 */
#ifndef NLSQ_TESTS_DECAY_COS_PROBLEM_H
#define NLSQ_TESTS_DECAY_COS_PROBLEM_H

#include <math.h>
#include <stddef.h>

/* Residual of row `row` into *r and, when J4 is not NULL, its Jacobian row
 * (4 entries) into J4. */
static inline void tc_decay_cos_row(const double *x, size_t row, double *r, double *J4)
{
    double t = 1e-4 * (double)row;
    double y = 2.5 * exp(-1.3 * t) + 0.4 * cos(3.0 * t) + 0.1 + 1e-3 * sin(91.0 * t);
    double e = exp(-x[1] * t);
    *r = x[0] * e + x[2] * cos(3.0 * t) + x[3] - y;
    if (J4) {
        J4[0] = e;
        J4[1] = -x[0] * t * e;
        J4[2] = cos(3.0 * t);
        J4[3] = 1.0;
    }
}

#endif
