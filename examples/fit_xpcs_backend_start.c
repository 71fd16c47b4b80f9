/* fit_xpcs_backend_start.c - fit_xpcs's backend: one process, no process
 * policy (fit_xpcs_backend.h).  fit_xpcs_mpi links fit_xpcs_backend_mpi.c
 * instead, fit_xpcs_test fit_xpcs_backend_test.c. */
#include "fit_xpcs_backend.h"

int fit_xpcs_backend_start(fit_xpcs_backend *b, int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fit_xpcs_backend_serial(b);
    return 0;
}
