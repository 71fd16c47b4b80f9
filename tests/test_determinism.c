/*
 * test_determinism.c - the same inputs give bitwise the same outputs: across
 * repeated runs, across 1, 2 and 3 threads, and between the library and the
 * fit_xpcs command.
 *
 *  library_xpcs   an XPCS fit of a synthetic HDF5 file through the reader,
 *                 the file source and the model (cached and streamed data),
 *                 with nlsq_lm, nlsq_adam and nlsq_hybrid: x, cost,
 *                 covariance, iterations and pass counts identical bit for
 *                 bit over 2 runs x 3 thread counts (and cached == streamed)
 *  cli_json       fit_xpcs --json on the same file, 2 runs x threads 1, 2, 3
 *                 (with --start global: the global stage included): stdout
 *                 identical byte for byte once the wall-time fields
 *                 "seconds" are blanked; with --start local the printed
 *                 parameters equal (%.17g round trip) those of the library
 *                 run with the same options
 *
 * tests/test_lm_core.c (determinism) covers the core solver on a plain
 * problem with other chunk sizes.
 */
#define _GNU_SOURCE
#include "common.h"

#include <sys/wait.h>
#include <unistd.h>

#ifdef NLSQ_HAVE_XPCS
#include "common_xpcs.h"
#endif

#ifdef NLSQ_HAVE_XPCS

#define NF 60
#define NA 4
#define NP (7 + 2 * NA)

static const double k_phi[NA] = {10.0, 55.0, 100.0, 160.0};
static char path[512];

static void make_file(void)
{
    snprintf(path, sizeof path, "%s/test_determinism_%ld.h5", NLSQ_TEST_TMPDIR, (long)getpid());
    nlsq_xpcs_synth_spec s = tc_synth_spec(NF, NA, 99);
    s.phi = k_phi;
    s.dt = 2e-2;
    tc_synth_write(path, &s);
}

typedef struct run_out {
    int status;
    double x[NP], cov[NP * NP];
    double cost;
    size_t iterations, n_eval, n_jac;
} run_out;

/* The fit fit_xpcs does (default options, max_iter 200), through the
 * library; method 0 lm, 1 adam, 2 hybrid. */
static void lib_fit(int method, int threads, int stream, run_out *o)
{
    memset(o, 0, sizeof *o);
    tc_xfile xf;
    tc_xfile_open(&xf, path, NAN, 0);
    nlsq_xpcs_config cfg = tc_xfile_config(&xf, 2e6, 2e-2);
    if (stream) cfg.memory_budget = 1;
    nlsq_xpcs_model *m = tc_model(&xf.src, &cfg);
    assert_int_equal(nlsq_xpcs_model_n_params(m), NP);
    assert_int_equal(nlsq_xpcs_start(m, NULL, NULL, o->x, NULL, 0), 0);
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    nlsq_options opt;
    nlsq_options_init(&opt);
    tc_short_runs(&opt, threads, 0, 4, 2);
    opt.max_iter = 200;
    opt.adam.batch_rows = 1500;
    nlsq_result res = {0};
    for (size_t k = 0; k < NP * NP; k++) o->cov[k] = NAN;
    res.covariance = o->cov;
    o->status = method == 0 ? nlsq_lm(&pb, &opt, o->x, &res)
              : method == 1 ? nlsq_adam(&pb, &opt, o->x, &res)
                            : nlsq_hybrid(&pb, &opt, o->x, &res);
    o->cost = res.cost;
    o->iterations = res.iterations;
    o->n_eval = res.n_eval;
    o->n_jac = res.n_jac;
    nlsq_xpcs_model_free(m);
    tc_xfile_close(&xf);
}

static void test_library_xpcs(void **state)
{
    (void)state;
    make_file();
    static const char *const names[3] = {"lm", "adam", "hybrid"};
    for (int method = 0; method < 3; method++) {
        run_out ref, o;
        lib_fit(method, 1, 0, &ref);
        print_message("  %-6s 1 thread, cached: %s, %zu it, cost %.17g, D0 %.17g\n", names[method],
                      nlsq_status_name(ref.status), ref.iterations, ref.cost, ref.x[0]);
        assert_true(ref.status >= 0);
        int runs = 0;
        for (int stream = 0; stream <= 1; stream++)
            for (int threads = 1; threads <= 3; threads++)
                for (int rep = 0; rep < 2; rep++) {
                    if (!stream && threads == 1 && rep == 0) continue;   /* ref itself */
                    if (method != 0 && stream) continue;                /* streamed: LM only */
                    lib_fit(method, threads, stream, &o);
                    runs++;
                    if (o.status != ref.status || o.iterations != ref.iterations ||
                        o.n_eval != ref.n_eval || o.n_jac != ref.n_jac ||
                        memcmp(o.x, ref.x, sizeof o.x) != 0 ||
                        memcmp(&o.cost, &ref.cost, sizeof o.cost) != 0 ||
                        memcmp(o.cov, ref.cov, sizeof o.cov) != 0) {
                        size_t j = 0;
                        while (j < NP && o.x[j] == ref.x[j]) j++;
                        fail_msg("%s, %d threads, %s, run %d: differs from 1 thread / cached "
                                 "(status %d/%d, it %zu/%zu, cost %.17g/%.17g, first x diff at %zu)",
                                 names[method], threads, stream ? "streamed" : "cached", rep + 1,
                                 o.status, ref.status, o.iterations, ref.iterations, o.cost,
                                 ref.cost, j);
                    }
                }
        print_message("  %-6s %d more runs (threads 1..3, repeated%s): bitwise identical\n",
                      names[method], runs, method == 0 ? ", cached and streamed" : "");
    }
    remove(path);
}

/* ------------------------------------------------------------------------ */

static int run_cli(int threads, const char *start, char *out, size_t size)
{
    char tbuf[16];
    snprintf(tbuf, sizeof tbuf, "%d", threads);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(NLSQ_FIT_XPCS_EXE, NLSQ_FIT_XPCS_EXE, path, "--dt", "2e-2", "--gap", "2e6",
              "--threads", tbuf, "--json", "--start", start, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(p[0], out + n, size - 1 - n)) > 0) n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Blank every value of "seconds" (wall times: the fit's and each phase's):
 * "seconds": 0.123 -> "seconds": _ */
static void blank_seconds(char *s)
{
    for (char *k = strstr(s, "\"seconds\":"); k; k = strstr(k + 1, "\"seconds\":")) {
        char *v = k + strlen("\"seconds\":");
        while (*v == ' ') v++;
        char *e = v;
        while (*e && *e != ',' && *e != '}') e++;
        memmove(v + 1, e, strlen(e) + 1);
        *v = '_';
    }
}

/* The number after "key": in the JSON text, after "within": when given. */
static double json_number(const char *s, const char *within, const char *key)
{
    char pat[64];
    if (within) {
        snprintf(pat, sizeof pat, "\"%s\":", within);
        s = strstr(s, pat);
        if (!s) fail_msg("no %s in the JSON output", within);
    }
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *k = strstr(s, pat);
    if (!k) fail_msg("no %s in the JSON output", key);
    return strtod(k + strlen(pat), NULL);
}

static void test_cli_json(void **state)
{
    (void)state;
    make_file();
    static char ref[1 << 16], out[1 << 16];
    int rc0 = run_cli(1, "local", ref, sizeof ref);
    print_message("  fit_xpcs --json --threads 1 --start local: exit %d, %zu bytes\n", rc0,
                  strlen(ref));
    assert_true(rc0 == 0 || rc0 == 1);
    assert_true(strlen(ref) > 100);
    /* the parameters equal the library's (same options) */
    run_out lib;
    lib_fit(0, 1, 0, &lib);
    static const char *const pn[7] = {"D0", "alpha", "D_offset", "gamma_dot_0", "beta",
                                      "gamma_dot_offset", "phi0"};
    for (int k = 0; k < 7; k++) {
        double v = json_number(ref, "params", pn[k]);
        if (memcmp(&v, &lib.x[k], sizeof v) != 0)
            fail_msg("fit_xpcs %s = %.17g, library %.17g", pn[k], v, lib.x[k]);
    }
    double cost = json_number(ref, NULL, "cost");
    assert_memory_equal(&cost, &lib.cost, sizeof cost);
    rc0 = run_cli(1, "global", ref, sizeof ref);
    assert_true(rc0 == 0 || rc0 == 1);
    blank_seconds(ref);
    int runs = 0;
    for (int threads = 1; threads <= 3; threads++)
        for (int rep = 0; rep < 2; rep++) {
            if (threads == 1 && rep == 0) continue;
            int rc = run_cli(threads, "global", out, sizeof out);
            assert_int_equal(rc, rc0);
            blank_seconds(out);
            if (strcmp(out, ref) != 0) {
                size_t i = 0;
                while (out[i] && out[i] == ref[i]) i++;
                fail_msg("--threads %d run %d: JSON differs at byte %zu: ...%.60s... vs ...%.60s...",
                         threads, rep + 1, i, out + (i > 20 ? i - 20 : 0), ref + (i > 20 ? i - 20 : 0));
            }
            runs++;
        }
    print_message("  %d more fit_xpcs --json runs (threads 1..3, repeated): identical output; "
                  "parameters and cost equal the library's bit for bit\n", runs);
    remove(path);
}

#else
static void test_library_xpcs(void **state)
{
    (void)state;
    print_message("  SKIPPED: needs the XPCS library\n");
    skip();
}
static void test_cli_json(void **state)
{
    (void)state;
    skip();
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_xpcs),
        cmocka_unit_test(test_cli_json),
    };
    return cmocka_run_group_tests_name("determinism", tests, NULL, NULL);
}
