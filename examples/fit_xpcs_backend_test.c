/* fit_xpcs_backend_test.c - the serial backend plus the test hooks, linked
 * only into fit_xpcs_test (built with the tests, never installed).
 *
 * FIT_XPCS_TEST_ITER_DELAY_MS=N in the environment (0 < N <= 10000): sleep N
 * ms after every iteration (a slow fit that tests/test_xpcs_cli.c can kill
 * between two checkpoints).  The command's own progress callback, if any,
 * still runs first. */
#define _POSIX_C_SOURCE 200809L   /* nanosleep */
#include "fit_xpcs_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct test_hooks {
    long delay_ms;
    nlsq_progress_fn progress;   /* the command's */
    void *progress_ctx;
} test_hooks;

static int delayed_progress(void *ctx, const nlsq_progress_info *info)
{
    test_hooks *t = ctx;
    int rc = t->progress ? t->progress(t->progress_ctx, info) : 0;
    struct timespec ts = {t->delay_ms / 1000, (t->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return rc;
}

static void test_solver_options(void *self, nlsq_options *opt)
{
    test_hooks *t = self;
    if (t->delay_ms <= 0) return;
    t->progress = opt->progress;
    t->progress_ctx = opt->progress_ctx;
    opt->progress = delayed_progress;
    opt->progress_ctx = t;
}

static int test_finish(void *self, int exit_code)
{
    free(self);
    return exit_code;
}

int fit_xpcs_backend_start(fit_xpcs_backend *b, int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fit_xpcs_backend_serial(b);
    test_hooks *t = calloc(1, sizeof *t);
    if (!t) {
        fputs("fit_xpcs: out of memory\n", stderr);
        return -1;
    }
    const char *d = getenv("FIT_XPCS_TEST_ITER_DELAY_MS");
    if (d && *d) t->delay_ms = strtol(d, NULL, 10);
    if (t->delay_ms < 0 || t->delay_ms > 10000) t->delay_ms = 0;
    b->self = t;
    b->solver_options = test_solver_options;
    b->finish = test_finish;
    return 0;
}
