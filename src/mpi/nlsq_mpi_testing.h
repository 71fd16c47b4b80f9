/* nlsq_mpi_testing.h - fault injection for the MPI tests (tests/mpi).
 *
 * Only in test builds: nlsq_mpi.c compiled with NLSQ_MPI_TESTING, i.e. the
 * library nlsq_mpi_testing that tests/mpi link (src/mpi/CMakeLists.txt);
 * the installed nlsq_mpi has no such symbol. */
#ifndef NLSQ_MPI_TESTING_H
#define NLSQ_MPI_TESTING_H

#include "nlsq_mpi.h"

/** Make this rank's reduce number `at_reduce` (0-based count of reduces on
 *  ctx) fail as if MPI returned an error (kind 1), or sleep `arg` seconds
 *  first (kind 2: a stalled rank, for timeout tests).  kind 0 clears. */
void nlsq_mpi_inject_fault(nlsq_mpi_ctx *ctx, int kind, uint64_t at_reduce, double arg);

#endif
