/* mpi_internal.h - state shared by nlsq_mpi.c and nlsq_mpi_xpcs.c. */
#ifndef NLSQ_MPI_INTERNAL_H
#define NLSQ_MPI_INTERNAL_H

#include "nlsq_mpi.h"

/* The command-line helpers' process-wide state (one per process, as MPI). */
typedef struct nlsq__mpi_cli {
    int inited;          /* nlsq_mpi_cli_init ran */
    int we_init;         /* and called MPI_Init itself */
    int rank, size;
    nlsq_mpi_ctx *ctx;   /* the command's context, or NULL */
    size_t n_excluded;
    int have_excluded;
} nlsq__mpi_cli;

extern nlsq__mpi_cli nlsq__mpi_cli_state;

/* Rows per block of the command's partition. */
#define NLSQ__MPI_CLI_BLOCK_ROWS ((size_t)4096)

#endif
