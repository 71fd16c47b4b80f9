/* blas_threads.c - BLAS runs single-threaded inside a solve.
 *
 * The engine's workers are the only parallelism of a solve: each evaluates
 * its own chunks and calls BLAS on them (dsyrk, dgemv), so a multithreaded
 * BLAS would start its own threads under every worker and oversubscribe the
 * cores (with OpenBLAS's threads on, a 103-parameter dense pass ran slower on
 * 2 workers than on 1).  The engine calls nlsq__blas_single_begin at init and
 * nlsq__blas_single_end at free: while any solve of the process runs, BLAS
 * has one thread; when the last one ends, the setting the caller had before
 * the first one began is put back.
 *
 * The thread count is the BLAS library's process-wide state, so the count of
 * running solves is too (one counter under a mutex): solves that overlap in
 * time on several threads all run with one BLAS thread (their results do not
 * depend on how they overlap), and the caller's setting is restored once,
 * by the last.  A caller that changes the BLAS threads while its own solve
 * runs gets its change overwritten at the end.
 *
 * Only OpenBLAS has such a switch.  Its functions are declared weak, so the
 * library links and runs with any other CBLAS, where both calls do nothing.
 */
#include "nlsq_internal.h"

#include <pthread.h>

extern int openblas_get_num_threads(void) __attribute__((weak));
extern void openblas_set_num_threads(int n) __attribute__((weak));

static pthread_mutex_t blas_mu = PTHREAD_MUTEX_INITIALIZER;
static int blas_running;    /* solves between begin and end */
static int blas_saved;      /* the caller's setting before the first of them */

int nlsq__blas_single_begin(void)
{
    if (!openblas_get_num_threads || !openblas_set_num_threads) return 0;
    pthread_mutex_lock(&blas_mu);
    if (blas_running++ == 0) {
        blas_saved = openblas_get_num_threads();
        if (blas_saved > 1) openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&blas_mu);
    return 1;
}

void nlsq__blas_single_end(int held)
{
    if (!held) return;
    pthread_mutex_lock(&blas_mu);
    if (--blas_running == 0 && blas_saved > 1) openblas_set_num_threads(blas_saved);
    pthread_mutex_unlock(&blas_mu);
}
