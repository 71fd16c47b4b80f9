/* fit_xpcs_main.c - main() of fit_xpcs and fit_xpcs_mpi: the process's
 * setup and backend (fit_xpcs_backend.h, the one linked in), then the command on
 * stdout and stderr (fit_xpcs.c). */
#include "fit_xpcs.h"
#include "fit_xpcs_backend.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    fit_xpcs_process_init();
    fit_xpcs_backend be;
    if (fit_xpcs_backend_start(&be, &argc, &argv) != 0) return 2;
    int rc = fit_xpcs_main(argc, argv, stdout, stderr, &be);
    return be.finish(be.self, rc);
}
