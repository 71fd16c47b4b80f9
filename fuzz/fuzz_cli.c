/* libFuzzer harness: the fit_xpcs command line (examples/fit_xpcs_args.c).
 *
 * The input is split at NUL bytes into argv[1..] (argv[0] = "fit_xpcs", at
 * most 64 arguments; a trailing piece without NUL counts too).  Whatever
 * the arguments, fit_xpcs_parse_args must return OK, HELP or USAGE without
 * crashing, and:
 *   - USAGE: err is one non-empty line (no control characters), NUL-
 *     terminated inside err_size, also for tiny buffers and err = NULL;
 *   - OK: every field is consistent (input set, dt, gap (laminar mode), q
 *     (or NaN) and sigma inside the library's ranges of nlsq_xpcs.h, first <=
 *     last, threads 0..NLSQ_MAX_THREADS,
 *     method one of lm/adam/hybrid, init values NaN or finite, plot angles
 *     distinct, --save-fit only with --output, ...), and every string field
 *     points into argv (the parser keeps pointers, never copies);
 *   - the same arguments give the same result (bitwise) and the same code
 *     whatever the size of err.
 * ASan/UBSan watch memory and undefined behaviour. */
#define _POSIX_C_SOURCE 200809L   /* strnlen */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit_xpcs_args.h"
#include "nlsq.h"
#include "nlsq_xpcs.h"

#define MAX_ARGS 64

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_cli: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* p is NULL or points inside one of the argv strings. */
static int in_argv(const char *p, int argc, char *const *argv)
{
    if (!p) return 1;
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (p >= argv[i] && p <= argv[i] + n) return 1;
    }
    return 0;
}

static void check_line(const char *err, size_t size)
{
    size_t n = strnlen(err, size);
    CHECK(n < size);                         /* NUL-terminated inside the buffer */
    for (size_t i = 0; i < n; i++) CHECK((unsigned char)err[i] >= 0x20 && err[i] != 0x7f);
}

/* One input's run: the private copy of the bytes, the argv split from it,
 * the first parse's result and message.  The stages below share it. */
typedef struct cli_run {
    char *buf;                  /* argv strings must be NUL-terminated and writable */
    char prog[sizeof "fit_xpcs"];
    char *argv[MAX_ARGS + 2];
    int argc;
    fit_xpcs_args a;
    char err[256];
    int rc;
} cli_run;

/* Split the input at NUL bytes into argv[1..]; 0, or -1 when out of memory. */
static int split_args(cli_run *c, const uint8_t *data, size_t size)
{
    c->buf = malloc(size + 1);
    if (!c->buf) return -1;
    memcpy(c->buf, data, size);
    c->buf[size] = '\0';
    memcpy(c->prog, "fit_xpcs", sizeof c->prog);
    char *buf = c->buf;
    int argc = 0;
    c->argv[argc++] = c->prog;
    size_t start = 0;
    for (size_t i = 0; i <= size && argc <= MAX_ARGS; i++) {
        if (i == size || buf[i] == '\0') {
            if (i == size && start == size && size > 0 && buf[size - 1] == '\0') break;
            c->argv[argc++] = buf + start;
            start = i + 1;
        }
    }
    c->argv[argc] = NULL;
    if (size == 0) argc = 1;
    c->argc = argc;
    return 0;
}

/* An accepted command line: every field consistent and inside the library's
 * ranges (nlsq_xpcs.h: what the parser accepts, the model accepts), string
 * fields pointing into argv. */
static void check_ok_fields(const cli_run *c)
{
    const fit_xpcs_args *a = &c->a;
    const int argc = c->argc;
    char *const *argv = c->argv;
    CHECK(c->err[0] == '\0');
    /* with --config the input and the gap may come from the file: the
     * cross-option checks then wait for it (fit_xpcs_args_check) */
    if (a->config) CHECK(!a->input || (a->input[0] != '\0' && in_argv(a->input, argc, argv)));
    else CHECK(a->input && a->input[0] != '\0' && in_argv(a->input, argc, argv));
    /* --dt is optional (the file stores dt); when given, in range */
    CHECK(!a->have_dt || (a->dt >= NLSQ_XPCS_DT_MIN && a->dt <= NLSQ_XPCS_DT_MAX));
    CHECK(a->mode == 0 || a->mode == 1);
    if (a->mode == 0 && !a->config) CHECK(a->have_gap);
    CHECK(!a->have_gap || (a->gap >= NLSQ_XPCS_GAP_MIN && a->gap <= NLSQ_XPCS_GAP_MAX));
    CHECK(isnan(a->q) || (a->q >= NLSQ_XPCS_Q_MIN && a->q <= NLSQ_XPCS_Q_MAX));
    CHECK(a->first <= a->last);
    CHECK(a->triangle == 0 || a->triangle == 1);
    CHECK(a->include_diagonal == 0 || a->include_diagonal == 1);
    CHECK(a->method && (!strcmp(a->method, "lm") || !strcmp(a->method, "adam") ||
                        !strcmp(a->method, "hybrid")));
    CHECK(a->n_threads >= 0 && a->n_threads <= NLSQ_MAX_THREADS);
    CHECK(a->sigma >= NLSQ_XPCS_SIGMA_MIN && a->sigma <= NLSQ_XPCS_SIGMA_MAX);
    CHECK(a->max_iter <= 100000000);   /* 0: the library's default (NLSQ_ITER_AUTO) */
    CHECK(isfinite(a->budget_mib) && a->budget_mib >= 0 && a->budget_mib <= 1e9);
    for (int k = 0; k < FIT_XPCS_N_PHYS; k++) CHECK(isnan(a->init[k]) || isfinite(a->init[k]));
    if (a->mode == 1)
        for (int k = 3; k < FIT_XPCS_N_PHYS; k++) CHECK(isnan(a->init[k]));
    CHECK(in_argv(a->output, argc, argv) && (!a->output || a->output[0]));
    CHECK(in_argv(a->checkpoint, argc, argv) && (!a->checkpoint || a->checkpoint[0]));
    CHECK(in_argv(a->resume, argc, argv) && (!a->resume || a->resume[0]));
    CHECK(in_argv(a->plot, argc, argv) && (!a->plot || a->plot[0]));
}

/* Cross-option rules: checked by the parser, or with --config by
 * fit_xpcs_args_check once the file has filled in (here: nothing). */
static void check_ok_cross(const cli_run *c)
{
    const fit_xpcs_args *a = &c->a;
    fit_xpcs_args cc = *a;
    char cerr[256];
    int cross = !a->config || fit_xpcs_args_check(&cc, cerr, sizeof cerr) == FIT_XPCS_ARGS_OK;
    if (cross && a->save_fit) CHECK(a->output != NULL);
    CHECK(a->n_plot_angles <= FIT_XPCS_MAX_PLOT_ANGLES);
    if (cross && a->n_plot_angles) CHECK(a->plot != NULL);
    for (size_t i = 0; i < a->n_plot_angles; i++)
        for (size_t j = 0; j < i; j++) CHECK(a->plot_angles[i] != a->plot_angles[j]);
    CHECK(a->checkpoint_every >= 1);
    if (cross && a->have_checkpoint_every) CHECK(a->checkpoint != NULL);
}

/* The same arguments again: the same struct, bit for bit (the parser memsets
 * it first, so padding compares equal too) and the same message; other
 * buffer sizes: same code, message a prefix of the full one. */
static void check_repeatable(cli_run *c)
{
    fit_xpcs_args b;
    char err2[256];
    memset(err2, 'y', sizeof err2);
    int rc2 = fit_xpcs_parse_args(c->argc, c->argv, &b, err2, sizeof err2);
    CHECK(rc2 == c->rc);
    CHECK(strcmp(c->err, err2) == 0);
    if (c->rc == FIT_XPCS_ARGS_OK) CHECK(memcmp(&c->a, &b, sizeof c->a) == 0);

    CHECK(fit_xpcs_parse_args(c->argc, c->argv, &b, NULL, 0) == c->rc);
    CHECK(fit_xpcs_parse_args(c->argc, c->argv, &b, err2, 0) == c->rc);
    for (size_t small = 1; small <= 9; small += 4) {
        char tiny[16];
        memset(tiny, 'z', sizeof tiny);
        CHECK(fit_xpcs_parse_args(c->argc, c->argv, &b, tiny, small) == c->rc);
        check_line(tiny, small);
        CHECK(strncmp(tiny, c->err, strlen(tiny)) == 0);
        for (size_t i = small; i < sizeof tiny; i++) CHECK(tiny[i] == 'z');   /* no overrun */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cli_run c;
    if (split_args(&c, data, size) != 0) return 0;
    memset(c.err, 'x', sizeof c.err);
    c.rc = fit_xpcs_parse_args(c.argc, c.argv, &c.a, c.err, sizeof c.err);
    CHECK(c.rc == FIT_XPCS_ARGS_OK || c.rc == FIT_XPCS_ARGS_HELP || c.rc == FIT_XPCS_ARGS_USAGE);
    check_line(c.err, sizeof c.err);
    if (c.rc == FIT_XPCS_ARGS_USAGE) CHECK(c.err[0] != '\0');
    if (c.rc == FIT_XPCS_ARGS_HELP) CHECK(fit_xpcs_usage(NULL, 0) > 0);
    if (c.rc == FIT_XPCS_ARGS_OK) {
        check_ok_fields(&c);
        check_ok_cross(&c);
    }
    check_repeatable(&c);
    fit_xpcs_args_free(&c.a);
    free(c.buf);
    return 0;
}
