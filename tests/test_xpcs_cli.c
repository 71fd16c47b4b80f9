/*
 * test_xpcs_cli.c - the fit_xpcs command line, end to end.
 *
 * Runs the built xpcs_synth and fit_xpcs binaries (paths from CMake:
 * FIT_XPCS_EXE, XPCS_SYNTH_EXE) as child processes on small synthetic files
 * (N <= 120 frames, 4 angles) in a private temporary folder.
 *
 *   help_and_exit_codes  --help exits 0; a converged fit 0; --max-iter 1 gives
 *                        1 (not converged), with --profile one warning line
 *                        and no intervals; bad input 2
 *   bad_command_lines    23 bad command lines (control characters in file
 *                        names too): each exit 2, stdout empty, exactly
 *                        one line on stderr starting "fit_xpcs: "
 *   parse_args_direct    fit_xpcs_parse_args (linked in): defaults, both
 *                        option forms, --help, usage errors, one-line err
 *   json_keys            --json parses (a tiny JSON validator below) and holds
 *                        every api.md key, 7 params/errors, P-long arrays
 *   truth                synthetic file: table has the truth column, JSON the
 *                        "truth" object; the same file without the nlsq_synth
 *                        group (a "real" file) prints neither
 *   checkpoint_resume    --checkpoint, SIGKILL after the first checkpoint
 *                        appears, --resume: JSON params/errors/contrast/offset/
 *                        cost/iterations byte-identical to an uninterrupted
 *                        run (%.17g: equal text = equal bits)
 *   output_file          --output (+ --save-fit): the HDF5 layout of
 *                        docs/xpcs.md via the HDF5 C API (values equal the
 *                        JSON), h5dump reads it, h5py reads it (skipped when
 *                        /usr/bin/python3 has no h5py), no temp file left
 *   plots                --plot: PNG files exist, PNG signature, IHDR size
 *   g2_rows_match_model  nlsq_xpcs_g2_rows (the O(1)-per-entry fitted c2 used
 *                        by --save-fit and --plot) equals nlsq_xpcs_model_g2
 *                        (laminar and static, k0 != 0)
 *   profile_undetermined --profile undetermined: only the parameter the fit
 *                        flags undetermined gets an interval, holding the
 *                        estimate, its ends checked by held nlsq_lm fits
 *   profile_undetermined_none  nothing undetermined: nothing profiled
 *   threshold_ratio      the robust profile threshold's factor: V_rob / V_mod
 *                        where defined, else the median of the defined ones
 */
#define _GNU_SOURCE
#include "common_xpcs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "fit_xpcs_args.h"
#include "nlsq_xpcs.h"
#include "xpcs_output.h"
#include "xpcs_uncertainty.h"

#ifndef NLSQ_TEST_TMPDIR
#define NLSQ_TEST_TMPDIR "/tmp"
#endif
#ifndef FIT_XPCS_EXE
#error "FIT_XPCS_EXE must be defined (tests/CMakeLists.txt)"
#endif
#ifndef XPCS_SYNTH_EXE
#error "XPCS_SYNTH_EXE must be defined (tests/CMakeLists.txt)"
#endif

static char dir[512];          /* private temporary folder */
static char synth_h5[600];     /* laminar synthetic file with truth, N = 120, 4 angles */
static char real_h5[600];      /* the same without the truth group */

static void pathf(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* ------------------------------------------------------------------------ */
/* Running a child                                                            */
/* ------------------------------------------------------------------------ */

typedef struct run_out {
    int exit_code;       /* -1 when killed by a signal */
    int signal;
    char *out, *err;     /* stdout / stderr text (malloc'ed) */
} run_out;

static pid_t spawn(char *const argv[], const char *out_path, const char *err_path,
                   const char *env_name, const char *env_value)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(127);
        dup2(fo, 1);
        dup2(fe, 2);
        close(fo);
        close(fe);
        if (env_name) setenv(env_name, env_value, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void collect(pid_t pid, const char *out_path, const char *err_path, run_out *r)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    r->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    r->out = tc_slurp(out_path, NULL);
    r->err = tc_slurp(err_path, NULL);
    if (!r->out) r->out = strdup("");
    if (!r->err) r->err = strdup("");
}

/* Run argv (NULL-terminated; argv[0] the program), capturing both streams. */
static void run(char *const argv[], run_out *r)
{
    char o[600], e[600];
    pathf(o, sizeof o, "stdout.txt");
    pathf(e, sizeof e, "stderr.txt");
    pid_t pid = spawn(argv, o, e, NULL, NULL);
    assert_true(pid > 0);
    collect(pid, o, e, r);
}

/* run, which must end with exit code `code` (else the test fails, showing
 * the command's stderr). */
static void run_expect(char *const argv[], int code, run_out *r)
{
    run(argv, r);
    if (r->exit_code != code)
        fail_msg("%s %s: exit code %d, expected %d; stderr: %s", argv[0], argv[1] ? argv[1] : "",
                 r->exit_code, code, r->err ? r->err : "");
}

static void run_free(run_out *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

/* ------------------------------------------------------------------------ */
/* A tiny JSON validator / lookup                                             */
/* ------------------------------------------------------------------------ */

typedef struct jp { const char *s; int ok; } jp;

static void j_ws(jp *p) { while (*p->s == ' ' || *p->s == '\n' || *p->s == '\t' || *p->s == '\r') p->s++; }
static void j_value(jp *p);

static void j_string(jp *p)
{
    if (*p->s != '"') { p->ok = 0; return; }
    p->s++;
    while (*p->s && *p->s != '"') {
        if ((unsigned char)*p->s < 0x20) { p->ok = 0; return; }
        if (*p->s == '\\') {
            p->s++;
            if (*p->s == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (!isxdigit((unsigned char)p->s[k])) { p->ok = 0; return; }
                p->s += 4;
            } else if (!strchr("\"\\/bfnrt", *p->s) || !*p->s) { p->ok = 0; return; }
        }
        p->s++;
    }
    if (*p->s != '"') { p->ok = 0; return; }
    p->s++;
}

static void j_number(jp *p)
{
    const char *s = p->s;
    if (*s == '-') s++;
    if (!isdigit((unsigned char)*s)) { p->ok = 0; return; }
    if (*s == '0') s++;
    else while (isdigit((unsigned char)*s)) s++;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s)) { p->ok = 0; return; }
        while (isdigit((unsigned char)*s)) s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!isdigit((unsigned char)*s)) { p->ok = 0; return; }
        while (isdigit((unsigned char)*s)) s++;
    }
    p->s = s;
}

static void j_value(jp *p)
{
    j_ws(p);
    if (!p->ok) return;
    char c = *p->s;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        p->s++;
        j_ws(p);
        if (*p->s == close) { p->s++; return; }
        for (;;) {
            if (c == '{') {
                j_ws(p);
                j_string(p);
                j_ws(p);
                if (!p->ok || *p->s != ':') { p->ok = 0; return; }
                p->s++;
            }
            j_value(p);
            if (!p->ok) return;
            j_ws(p);
            if (*p->s == ',') { p->s++; continue; }
            if (*p->s == close) { p->s++; return; }
            p->ok = 0;
            return;
        }
    } else if (c == '"') {
        j_string(p);
    } else if (!strncmp(p->s, "null", 4)) {
        p->s += 4;
    } else if (!strncmp(p->s, "true", 4)) {
        p->s += 4;
    } else if (!strncmp(p->s, "false", 5)) {
        p->s += 5;
    } else {
        j_number(p);
    }
}

/* 1 when s is exactly one JSON value (plus white space). */
static int json_valid(const char *s)
{
    jp p = {s, 1};
    j_value(&p);
    j_ws(&p);
    return p.ok && *p.s == '\0';
}

/* The raw text of the value at a dotted path ("truth.params.D0") in a valid
 * JSON object, copied into buf; 0 when absent. */
static int json_get(const char *s, const char *path, char *buf, size_t size)
{
    jp p = {s, 1};
    char key[128];
    const char *dot = strchr(path, '.');
    size_t kl = dot ? (size_t)(dot - path) : strlen(path);
    if (kl >= sizeof key) return 0;
    memcpy(key, path, kl);
    key[kl] = '\0';
    j_ws(&p);
    if (*p.s != '{') return 0;
    p.s++;
    for (;;) {
        j_ws(&p);
        if (*p.s != '"') return 0;
        const char *k0 = p.s + 1;
        j_string(&p);
        if (!p.ok) return 0;
        size_t len = (size_t)(p.s - 1 - k0);
        j_ws(&p);
        if (*p.s != ':') return 0;
        p.s++;
        j_ws(&p);
        const char *v0 = p.s;
        j_value(&p);
        if (!p.ok) return 0;
        if (len == kl && !memcmp(k0, key, kl)) {
            size_t vl = (size_t)(p.s - v0);
            if (dot) {
                char *sub = strndup(v0, vl);
                int r = sub && json_get(sub, dot + 1, buf, size);
                free(sub);
                return r;
            }
            if (vl >= size) return 0;
            memcpy(buf, v0, vl);
            buf[vl] = '\0';
            return 1;
        }
        j_ws(&p);
        if (*p.s == ',') { p.s++; continue; }
        return 0;
    }
}

/* Elements of a JSON array text (top level commas). */
static size_t json_array_len(const char *a)
{
    if (a[0] != '[') return 0;
    if (a[1] == ']') return 0;
    size_t n = 1;
    int depth = 0;
    for (const char *c = a + 1; *c; c++) {
        if (*c == '[' || *c == '{') depth++;
        else if (*c == ']' || *c == '}') { if (depth-- == 0) break; }
        else if (*c == ',' && depth == 0) n++;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                   */
/* ------------------------------------------------------------------------ */

static int run_quiet(char *const argv[])
{
    run_out r;
    char o[600], e[600];
    pathf(o, sizeof o, "setup_out.txt");
    pathf(e, sizeof e, "setup_err.txt");
    pid_t pid = spawn(argv, o, e, NULL, NULL);
    if (pid <= 0) return -1;
    collect(pid, o, e, &r);
    int rc = r.exit_code;
    if (rc != 0) fprintf(stderr, "setup: %s failed (%d): %s\n", argv[0], rc, r.err);
    run_free(&r);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/xpcs_cli_%ld", NLSQ_TEST_TMPDIR, (long)getpid());
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
    pathf(synth_h5, sizeof synth_h5, "synth.h5");
    pathf(real_h5, sizeof real_h5, "real.h5");
    char *synth[] = {XPCS_SYNTH_EXE, synth_h5, "--frames", "120", "--angles", "4", "--dt", "0.02",
                     NULL};
    if (run_quiet(synth)) return -1;
    char *synth2[] = {XPCS_SYNTH_EXE, real_h5, "--frames", "120", "--angles", "4", "--dt", "0.02",
                      "--layout", "aps-old", NULL};
    if (run_quiet(synth2)) return -1;
    /* a "real" file: drop the truth group */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(real_h5, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return -1;
    herr_t e = H5Ldelete(f, "nlsq_synth", H5P_DEFAULT);
    H5Fclose(f);
    return e < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (getenv("XPCS_CLI_KEEP")) return 0;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* --start local: the synthetic file's 4 angles are 90 degrees apart, where the
 * default global start rightly warns that phi0 and -phi0 fit equally well
 * (tests/test_xpcs_global.c, the xpcs_badstart test); these tests want a
 * silent stderr */
#define FIT_BASE FIT_XPCS_EXE, synth_h5, "--dt", "0.02", "--gap", "2e6", "--threads", "2", \
    "--start", "local"

/* ------------------------------------------------------------------------ */
/* Tests                                                                      */
/* ------------------------------------------------------------------------ */

static void help_and_exit_codes(void **state)
{
    (void)state;
    run_out r;
    char *help[] = {FIT_XPCS_EXE, "--help", NULL};
    run_expect(help, 0, &r);
    assert_non_null(strstr(r.out, "usage: fit_xpcs"));
    assert_non_null(strstr(r.out, "--checkpoint"));
    assert_string_equal(r.err, "");
    run_free(&r);

    char *ok[] = {FIT_BASE, NULL};
    run_expect(ok, 0, &r);
    assert_non_null(strstr(r.out, "CONVERGED"));
    run_free(&r);

    char *one[] = {FIT_BASE, "--max-iter", "1", "--json", NULL};
    run_expect(one, 1, &r);
    assert_true(json_valid(r.out));
    char buf[64];
    assert_true(json_get(r.out, "status", buf, sizeof buf));
    assert_string_equal(buf, "\"MAX_ITER\"");
    run_free(&r);
    /* --profile on that fit: no intervals, and one warning line says why */
    char *oneprof[] = {FIT_BASE, "--max-iter", "1", "--json", "--profile", "D0", NULL};
    run_expect(oneprof, 1, &r);
    assert_null(strstr(r.out, "\"intervals\""));
    assert_string_equal(r.err, "fit_xpcs: warning: --profile skipped: the fit did not end at a "
                               "minimum (MAX_ITER)\n");
    run_free(&r);
    /* --test on it: the test's own solve of the minimum keeps the limit and
     * its held solves end lower (D < 0): one warning line says so */
    char *onetest[] = {FIT_BASE, "--max-iter", "1", "--json", "--test", "D0=21000", "--boot",
                       "10", NULL};
    run_expect(onetest, 1, &r);
    assert_true(json_get(r.out, "tests.D0.D", buf, sizeof buf));
    assert_true(atof(buf) < 0.0);
    assert_string_equal(r.err, "fit_xpcs: warning: the test of D0 found a lower cost than the "
                               "fit: the fit did not end at the minimum, its p-value is not "
                               "valid\n");
    run_free(&r);

    char missing[600];
    pathf(missing, sizeof missing, "no_such_file.h5");
    char *bad[] = {FIT_XPCS_EXE, missing, "--dt", "0.02", "--gap", "2e6", NULL};
    run_expect(bad, 2, &r);
    assert_int_equal(count_char(r.err, '\n'), 1);
    assert_non_null(strstr(r.err, "no_such_file.h5"));
    run_free(&r);
}

static void bad_command_lines(void **state)
{
    (void)state;
    char ck[600], outdir[600], nlname[600];
    pathf(ck, sizeof ck, "nonexistent.ckpt");
    pathf(nlname, sizeof nlname, "new\nline\033[31m.h5");   /* control characters in a name */
    pathf(outdir, sizeof outdir, "no/such/dir/out.h5");
    /* each row: arguments after the program, NULL-terminated */
    char *lines[][12] = {
        {NULL},                                                        /* nothing */
        {synth_h5, "--gap", "2e6", "--dt", NULL},                      /* --dt without value */
        {synth_h5, "--dt", "0.02", NULL},                              /* laminar needs --gap */
        {synth_h5, "--dt", "-1", "--gap", "2e6", NULL},
        {synth_h5, "--dt", "nan", "--gap", "2e6", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--bogus", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--method", "newton", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--frames", "10:5", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--frames", "0:500", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--json=yes", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--init", "D0", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--save-fit", NULL},   /* needs --output */
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--plot-angles", "0,1", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--checkpoint-every", "0", "--checkpoint", ck, NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--resume", ck, NULL},  /* missing checkpoint */
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--output", outdir, NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--plot", "/no/such/dir/p", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--plot", ck, "--plot-angles", "0,9", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--plot-angles", "1,1", "--plot", ck, NULL},
        {synth_h5, synth_h5, "--dt", "0.02", "--gap", "2e6", NULL},
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--threads", NULL},
        {nlname, "--dt", "0.02", "--gap", "2e6", NULL},                  /* missing, odd name */
        {synth_h5, "--dt", "0.02", "--gap", "2e6", "--output", nlname, "--save-fit", "--frames", "0:0", NULL},
    };
    size_t n = sizeof lines / sizeof lines[0];
    assert_true(n >= 10);
    for (size_t k = 0; k < n; k++) {
        char *argv[16];
        size_t c = 0;
        argv[c++] = FIT_XPCS_EXE;
        for (size_t t = 0; lines[k][t] && c < 15; t++) argv[c++] = lines[k][t];
        argv[c] = NULL;
        run_out r;
        run(argv, &r);
        if (r.exit_code != 2 || count_char(r.err, '\n') != 1 || strncmp(r.err, "fit_xpcs: ", 10) ||
            r.out[0])
            fail_msg("bad command line %zu: exit %d, stderr '%s', stdout '%s'", k, r.exit_code,
                     r.err, r.out);
        run_free(&r);
    }
}

static void parse_args_direct(void **state)
{
    (void)state;
    fit_xpcs_args a;
    char err[256];
    char *ok[] = {"fit_xpcs", "in.h5", "--dt=0.5", "--gap", "3", "--frames", "2:", "--method",
                  "hybrid", "--plot", "p", "--plot-angles", "3,0", "--checkpoint", "c",
                  "--checkpoint-every=7", NULL};
    assert_int_equal(fit_xpcs_parse_args(16, ok, &a, err, sizeof err), FIT_XPCS_ARGS_OK);
    assert_string_equal(a.input, "in.h5");
    assert_true(a.dt == 0.5 && a.gap == 3.0);
    assert_int_equal(a.first, 2);
    assert_true(a.last == SIZE_MAX);
    assert_string_equal(a.method, "hybrid");
    assert_int_equal(a.n_plot_angles, 2);
    assert_int_equal(a.plot_angles[0], 3);
    assert_int_equal(a.checkpoint_every, 7);
    assert_true(isnan(a.q));
    assert_int_equal(a.max_iter, 0);   /* the library default, 100 (p + 1) */
    fit_xpcs_args_free(&a);

    char *help[] = {"fit_xpcs", "--help", "--bogus", NULL};
    assert_int_equal(fit_xpcs_parse_args(3, help, &a, err, sizeof err), FIT_XPCS_ARGS_HELP);

    char *bad[] = {"fit_xpcs", "in.h5", "--dt", "1", "--gap", "1", "--mode", "x\ny", NULL};
    assert_int_equal(fit_xpcs_parse_args(8, bad, &a, err, sizeof err), FIT_XPCS_ARGS_USAGE);
    assert_null(strchr(err, '\n'));
    assert_non_null(strstr(err, "--mode"));
    /* tiny and absent error buffers */
    assert_int_equal(fit_xpcs_parse_args(8, bad, &a, err, 4), FIT_XPCS_ARGS_USAGE);
    assert_true(strlen(err) <= 3);
    assert_int_equal(fit_xpcs_parse_args(8, bad, &a, NULL, 0), FIT_XPCS_ARGS_USAGE);
    assert_int_equal(fit_xpcs_parse_args(0, NULL, &a, err, sizeof err), FIT_XPCS_ARGS_USAGE);
}

static const char *const api_keys[] = {
    "status", "status_code", "cost", "reduced_chi2", "n_rows", "n_params", "iterations",
    "seconds", "q", "phi", "params", "errors", "contrast", "offset", "contrast_errors",
    "offset_errors", "message", "mode", "method", "triangle", "n_excluded", "dof", "fixed",
    "file", "frames"};
static const char *const phys[7] = {"D0", "alpha", "D_offset", "gamma_dot_0", "beta",
                                    "gamma_dot_offset", "phi0"};

static void json_keys(void **state)
{
    (void)state;
    run_out r;
    char *argv[] = {FIT_BASE, "--json", NULL};
    run_expect(argv, 0, &r);
    assert_true(json_valid(r.out));
    assert_int_equal(count_char(r.out, '\n'), 1);
    char buf[4096], path[64];
    for (size_t k = 0; k < sizeof api_keys / sizeof api_keys[0]; k++)
        if (!json_get(r.out, api_keys[k], buf, sizeof buf)) fail_msg("JSON key %s missing", api_keys[k]);
    for (int k = 0; k < 7; k++) {
        snprintf(path, sizeof path, "params.%s", phys[k]);
        assert_true(json_get(r.out, path, buf, sizeof buf));
        assert_true(isfinite(strtod(buf, NULL)));
        snprintf(path, sizeof path, "errors.%s", phys[k]);
        assert_true(json_get(r.out, path, buf, sizeof buf));
    }
    const char *arrays[] = {"phi", "contrast", "offset", "contrast_errors", "offset_errors"};
    for (int k = 0; k < 5; k++) {
        assert_true(json_get(r.out, arrays[k], buf, sizeof buf));
        assert_int_equal(json_array_len(buf), 4);
    }
    assert_true(json_get(r.out, "n_params", buf, sizeof buf));
    assert_string_equal(buf, "15");
    assert_true(json_get(r.out, "status_code", buf, sizeof buf));
    assert_true(atoi(buf) > 0);
    run_free(&r);
}

static void truth(void **state)
{
    (void)state;
    run_out r;
    char *table[] = {FIT_BASE, NULL};
    run_expect(table, 0, &r);
    assert_non_null(strstr(r.out, "truth"));
    assert_non_null(strstr(r.out, "dev/sigma"));
    run_free(&r);

    char *json[] = {FIT_BASE, "--json", NULL};
    run_expect(json, 0, &r);
    assert_true(json_valid(r.out));
    char buf[2048];
    assert_true(json_get(r.out, "truth.params.D0", buf, sizeof buf));
    assert_true(strtod(buf, NULL) == 2e4);
    assert_true(json_get(r.out, "truth.params.phi0", buf, sizeof buf));
    assert_true(strtod(buf, NULL) == 3.0);
    assert_true(json_get(r.out, "truth.contrast", buf, sizeof buf));
    assert_int_equal(json_array_len(buf), 4);
    assert_true(json_get(r.out, "truth.offset", buf, sizeof buf));
    assert_int_equal(json_array_len(buf), 4);
    /* the fit is good: every physical parameter within 5 sigma of the truth */
    for (int k = 0; k < 7; k++) {
        char path[64];
        snprintf(path, sizeof path, "truth.deviation_sigmas.params.%s", phys[k]);
        assert_true(json_get(r.out, path, buf, sizeof buf));
        if (strcmp(buf, "null") != 0 && fabs(strtod(buf, NULL)) > 5)
            fail_msg("%s deviates by %s sigma", phys[k], buf);
    }
    run_free(&r);

    char *real_table[] = {FIT_XPCS_EXE, real_h5, "--dt", "0.02", "--gap", "2e6", NULL};
    run_expect(real_table, 0, &r);
    assert_null(strstr(r.out, "truth"));
    assert_non_null(strstr(r.out, "+- 1 sigma"));
    run_free(&r);
    char *real_json[] = {FIT_XPCS_EXE, real_h5, "--dt", "0.02", "--gap", "2e6", "--json", NULL};
    run_expect(real_json, 0, &r);
    assert_true(json_valid(r.out));
    assert_false(json_get(r.out, "truth", buf, sizeof buf));
    run_free(&r);
}

static void checkpoint_resume(void **state)
{
    (void)state;
    char ck[600], o[600], e[600];
    pathf(ck, sizeof ck, "fit.ckpt");
    pathf(o, sizeof o, "ck_out.txt");
    pathf(e, sizeof e, "ck_err.txt");
    unlink(ck);

    run_out full;
    char *plain[] = {FIT_BASE, "--json", NULL};
    run_expect(plain, 0, &full);
    char it[32];
    assert_true(json_get(full.out, "iterations", it, sizeof it));
    assert_true(atoi(it) > 4);   /* long enough to be interrupted after checkpoint 1 */

    /* slowed down (fit_xpcs_test, the command with its test hooks: a sleep
     * per iteration) so that the kill lands between the first checkpoint
     * (iteration 2) and the end */
    char *ckargs[] = {FIT_BASE, "--json", "--checkpoint", ck, "--checkpoint-every", "2", NULL};
    ckargs[0] = FIT_XPCS_TEST_EXE;
    pid_t pid = spawn(ckargs, o, e, "FIT_XPCS_TEST_ITER_DELAY_MS", "150");
    assert_true(pid > 0);
    struct stat st;
    int seen = 0;
    for (int t = 0; t < 30000 && !seen; t++) {   /* up to 30 s */
        if (stat(ck, &st) == 0) seen = 1;
        else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    kill(pid, SIGKILL);
    run_out killed;
    collect(pid, o, e, &killed);
    assert_true(seen);
    assert_int_equal(killed.signal, SIGKILL);   /* really interrupted */
    assert_string_equal(killed.out, "");
    run_free(&killed);

    run_out resumed;
    char *resume[] = {FIT_BASE, "--json", "--resume", ck, NULL};
    run_expect(resume, 0, &resumed);
    assert_true(json_valid(resumed.out));
    char rf[700];
    assert_true(json_get(resumed.out, "resumed_from", rf, sizeof rf));

    const char *same[] = {"params", "errors", "contrast", "offset", "contrast_errors",
                          "offset_errors", "cost", "reduced_chi2", "iterations", "status"};
    char a[4096], b[4096];
    for (size_t k = 0; k < sizeof same / sizeof same[0]; k++) {
        assert_true(json_get(full.out, same[k], a, sizeof a));
        assert_true(json_get(resumed.out, same[k], b, sizeof b));
        if (strcmp(a, b) != 0) fail_msg("resumed %s differs: %s vs %s", same[k], a, b);
    }
    run_free(&resumed);

    /* the checkpoint is of --method lm: resuming it as adam is a usage error */
    char *wrong[] = {FIT_BASE, "--resume", ck, "--method", "adam", NULL};
    run_expect(wrong, 2, &resumed);
    assert_int_equal(count_char(resumed.err, '\n'), 1);
    run_free(&resumed);
    /* another problem (static mode: 11 parameters, not 15) */
    char *other[] = {FIT_BASE, "--resume", ck, "--mode", "static", NULL};
    run_expect(other, 2, &resumed);
    assert_int_equal(count_char(resumed.err, '\n'), 1);
    run_free(&resumed);
    run_free(&full);
}


/* ---- --output ---------------------------------------------------------- */

static double read_scalar_attr(hid_t obj, const char *name)
{
    double v = NAN;
    hid_t at = H5Aopen(obj, name, H5P_DEFAULT);
    if (at >= 0) {
        H5Aread(at, H5T_NATIVE_DOUBLE, &v);
        H5Aclose(at);
    }
    return v;
}

static void read_str_attr(hid_t obj, const char *name, char *buf, size_t size)
{
    buf[0] = '\0';
    hid_t at = H5Aopen(obj, name, H5P_DEFAULT);
    assert_true(at >= 0);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *s = NULL;
    assert_true(H5Aread(at, t, &s) >= 0);
    snprintf(buf, size, "%s", s ? s : "");
    hid_t sp = H5Aget_space(at);
    H5Dvlen_reclaim(t, sp, H5P_DEFAULT, &s);
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(at);
}

static void read_doubles(hid_t f, const char *name, double *v, size_t n)
{
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t sp = H5Dget_space(ds);
    assert_int_equal((size_t)H5Sget_simple_extent_npoints(sp), n);
    H5Sclose(sp);
    assert_true(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds);
}

static int no_temp_files(void)
{
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp\\.\\|\\.probe\\.'", dir);
    return system(cmd) != 0;
}

static void output_file(void **state)
{
    (void)state;
    char out[600];
    pathf(out, sizeof out, "result.h5");
    unlink(out);
    run_out r;
    char *argv[] = {FIT_BASE, "--json", "--output", out, "--save-fit", NULL};
    run_expect(argv, 0, &r);
    assert_true(json_valid(r.out));
    assert_true(no_temp_files());

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    char buf[4096], jb[4096], path[96];
    /* root attributes == JSON */
    read_str_attr(f, "status", buf, sizeof buf);
    assert_true(json_get(r.out, "status", jb, sizeof jb));
    assert_true(strlen(jb) == strlen(buf) + 2 && !strncmp(jb + 1, buf, strlen(buf)));
    assert_true(json_get(r.out, "cost", jb, sizeof jb));
    assert_true(read_scalar_attr(f, "cost") == strtod(jb, NULL));
    assert_true(json_get(r.out, "reduced_chi2", jb, sizeof jb));
    assert_true(read_scalar_attr(f, "reduced_chi2") == strtod(jb, NULL));
    assert_true(read_scalar_attr(f, "n_rows") == 4.0 * 120 * 119 / 2);
    assert_true(read_scalar_attr(f, "n_excluded") == 0);
    assert_true(read_scalar_attr(f, "status_code") > 0);
    assert_true(read_scalar_attr(f, "first_frame") == 0 && read_scalar_attr(f, "last_frame") == 119);
    const char *strs[] = {"method", "mode", "triangle", "input"};
    const char *want[] = {"lm", "laminar", "upper", synth_h5};
    for (int k = 0; k < 4; k++) {
        read_str_attr(f, strs[k], buf, sizeof buf);
        assert_string_equal(buf, want[k]);
    }
    const char *rattrs[] = {"dof", "iterations", "seconds"};
    for (int k = 0; k < 3; k++) assert_true(isfinite(read_scalar_attr(f, rattrs[k])));
    /* /params/<name>: value and sigma == JSON */
    for (int k = 0; k < 7; k++) {
        char pp[64];
        snprintf(pp, sizeof pp, "params/%s", phys[k]);
        double v;
        read_doubles(f, pp, &v, 1);
        snprintf(path, sizeof path, "params.%s", phys[k]);
        assert_true(json_get(r.out, path, jb, sizeof jb));
        assert_true(v == strtod(jb, NULL));
        hid_t ds = H5Dopen2(f, pp, H5P_DEFAULT);
        snprintf(path, sizeof path, "errors.%s", phys[k]);
        assert_true(json_get(r.out, path, jb, sizeof jb));
        assert_true(read_scalar_attr(ds, "sigma") == strtod(jb, NULL));
        read_str_attr(ds, "unit", buf, sizeof buf);
        assert_string_equal(buf, nlsq_xpcs_param_unit((size_t)k));
        H5Dclose(ds);
    }
    /* vectors */
    double values[15], sigmas[15], cov[15 * 15], con[4], off[4], phi[4], q;
    read_doubles(f, "values", values, 15);
    read_doubles(f, "sigmas", sigmas, 15);
    read_doubles(f, "covariance", cov, 225);
    read_doubles(f, "contrast", con, 4);
    read_doubles(f, "offset", off, 4);
    read_doubles(f, "contrast_sigma", con, 4);
    read_doubles(f, "offset_sigma", off, 4);
    read_doubles(f, "phi", phi, 4);
    read_doubles(f, "q", &q, 1);
    assert_true(q == 0.01);
    for (int k = 0; k < 15; k++) assert_true(fabs(sqrt(cov[k * 15 + k]) - sigmas[k]) <= 1e-12 * sigmas[k]);
    read_doubles(f, "contrast", con, 4);
    assert_true(json_get(r.out, "contrast", jb, sizeof jb));
    assert_true(con[0] == strtod(jb + 1, NULL));
    assert_true(values[7] == con[0]);
    {
        hid_t ds = H5Dopen2(f, "names", H5P_DEFAULT);
        assert_true(ds >= 0);
        H5Dclose(ds);
        ds = H5Dopen2(f, "covariance", H5P_DEFAULT);
        hid_t at = H5Aopen(ds, "parameter_order", H5P_DEFAULT);
        assert_true(at >= 0);
        hid_t sp = H5Aget_space(at);
        assert_int_equal(H5Sget_simple_extent_npoints(sp), 15);
        H5Sclose(sp);
        H5Aclose(at);
        H5Dclose(ds);
    }
    /* /options */
    hid_t g = H5Gopen2(f, "options", H5P_DEFAULT);
    assert_true(g >= 0);
    assert_true(read_scalar_attr(g, "dt") == 0.02);
    assert_true(read_scalar_attr(g, "gap") == 2e6);
    assert_true(read_scalar_attr(g, "threads") == 2);
    H5Gclose(g);
    /* /fit: float32 N x N, chunked + deflate; residual ~ N(0, 1) off the diagonal */
    static float res[120 * 120], fit[120 * 120];
    for (int a = 0; a < 4; a++) {
        char dn[64];
        snprintf(dn, sizeof dn, "fit/c2_residual/angle_%03d", a);
        hid_t ds = H5Dopen2(f, dn, H5P_DEFAULT);
        assert_true(ds >= 0);
        hid_t t = H5Dget_type(ds);
        assert_true(H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 4);
        H5Tclose(t);
        hid_t sp = H5Dget_space(ds);
        hsize_t d[2];
        assert_int_equal(H5Sget_simple_extent_dims(sp, d, NULL), 2);
        assert_true(d[0] == 120 && d[1] == 120);
        H5Sclose(sp);
        hid_t pl = H5Dget_create_plist(ds);
        assert_int_equal(H5Pget_layout(pl), H5D_CHUNKED);
        int deflate = 0;
        for (int k = 0; k < H5Pget_nfilters(pl); k++) {
            unsigned flags;
            size_t ne = 0;
            if (H5Pget_filter2(pl, (unsigned)k, &flags, &ne, NULL, 0, NULL, NULL) == H5Z_FILTER_DEFLATE)
                deflate = 1;
        }
        assert_true(deflate);
        H5Pclose(pl);
        assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, res) >= 0);
        H5Dclose(ds);
        snprintf(dn, sizeof dn, "fit/c2_fit/angle_%03d", a);
        ds = H5Dopen2(f, dn, H5P_DEFAULT);
        assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, fit) >= 0);
        H5Dclose(ds);
        double s1 = 0, s2 = 0;
        size_t n = 0;
        for (int i = 0; i < 120; i++)
            for (int j = i + 1; j < 120; j++) {
                s1 += res[i * 120 + j];
                s2 += (double)res[i * 120 + j] * res[i * 120 + j];
                n++;
                assert_true(fit[i * 120 + j] == fit[j * 120 + i]);   /* symmetric */
                assert_true(fit[i * 120 + j] > 0.5f && fit[i * 120 + j] < 1.6f);
            }
        double mean = s1 / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
        if (fabs(mean) > 0.1 || sd < 0.9 || sd > 1.1) fail_msg("angle %d residual mean %g sd %g", a, mean, sd);
    }
    H5Fclose(f);
    run_free(&r);

    /* h5dump reads it */
    if (H5DUMP_EXE[0] && access(H5DUMP_EXE, X_OK) == 0) {
        char *dump[] = {H5DUMP_EXE, "-H", out, NULL};
        run_expect(dump, 0, &r);
        assert_non_null(strstr(r.out, "c2_residual"));
        assert_non_null(strstr(r.out, "parameter_order"));
        run_free(&r);
    } else {
        fprintf(stderr, "output_file: no h5dump, that part skipped\n");
    }

    /* h5py reads it (skipped without python3-h5py) */
    char *probe[] = {PYTHON3_EXE, "-c", "import h5py", NULL};
    int have_h5py = access(PYTHON3_EXE, X_OK) == 0;
    if (have_h5py) {
        run(probe, &r);
        have_h5py = r.exit_code == 0;
        run_free(&r);
    }
    if (have_h5py) {
        char *py[] = {PYTHON3_EXE, "-c",
            "import sys, h5py, numpy as np\n"
            "f = h5py.File(sys.argv[1], 'r')\n"
            "names = [n.decode() if isinstance(n, bytes) else n for n in f['names'][:]]\n"
            "assert names[:7] == ['D0','alpha','D_offset','gamma_dot_0','beta','gamma_dot_offset','phi0'], names\n"
            "assert names[7] == 'contrast_0' and names[8] == 'offset_0'\n"
            "assert f['covariance'].shape == (15, 15)\n"
            "assert len(f['covariance'].attrs['parameter_order']) == 15\n"
            "for k in names[:7]:\n"
            "    d = f['params'][k]\n"
            "    assert d.shape == () and 'unit' in d.attrs and 'sigma' in d.attrs\n"
            "    assert d[()] == f['values'][names.index(k)]\n"
            "for k in ('contrast','offset','contrast_sigma','offset_sigma','phi'):\n"
            "    assert f[k].shape == (4,), k\n"
            "a = f.attrs\n"
            "for k in ('cost','reduced_chi2','n_rows','n_excluded','dof','iterations','status',"
            "'status_code','seconds','method','mode','triangle','input','first_frame','last_frame'):\n"
            "    assert k in a, k\n"
            "assert a['status'].startswith('CONVERGED')\n"
            "assert f['options'].attrs['dt'] == 0.02\n"
            "r = f['fit/c2_residual/angle_001'][:]\n"
            "assert r.shape == (120, 120) and r.dtype == np.float32\n"
            "assert f['fit/c2_fit/angle_001'].compression == 'gzip'\n"
            "iu = np.triu_indices(120, 1)\n"
            "assert abs(r[iu].std() - 1) < 0.1\n"
            "print('h5py OK')\n",
            out, NULL};
        run(py, &r);
        if (r.exit_code != 0) fail_msg("h5py check failed: %s", r.err);
        assert_non_null(strstr(r.out, "h5py OK"));
        run_free(&r);
    } else {
        fprintf(stderr, "output_file: /usr/bin/python3 has no h5py, that part skipped\n");
    }

    /* without --save-fit: no /fit; static mode: all 7 /params, shear fixed */
    char out2[600];
    pathf(out2, sizeof out2, "result_static.h5");
    char *st[] = {FIT_XPCS_EXE, synth_h5, "--dt", "0.02", "--mode", "static", "--output", out2, NULL};
    run(st, &r);
    assert_true(r.exit_code == 0 || r.exit_code == 1);
    run_free(&r);
    f = H5Fopen(out2, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Lexists(f, "fit", H5P_DEFAULT) == 0);
    assert_true(H5Lexists(f, "params/phi0", H5P_DEFAULT) > 0);
    hid_t ds = H5Dopen2(f, "params/phi0", H5P_DEFAULT);
    assert_true(read_scalar_attr(ds, "fixed") == 1);
    H5Dclose(ds);
    H5Fclose(f);
    assert_true(no_temp_files());
}


/* ---- --plot ------------------------------------------------------------ */

/* A valid-looking PNG: signature, IHDR first (8-bit RGB), IEND last; its size. */
static void check_png(const char *path, unsigned *w, unsigned *h)
{
    size_t n = 0;
    unsigned char *b = tc_slurp(path, &n);
    if (!b) fail_msg("%s: missing", path);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    assert_true(n > 8 + 25 + 12);
    assert_memory_equal(b, sig, 8);
    assert_memory_equal(b + 8, "\0\0\0\rIHDR", 8);   /* length 13, type IHDR */
    *w = (unsigned)b[16] << 24 | (unsigned)b[17] << 16 | (unsigned)b[18] << 8 | b[19];
    *h = (unsigned)b[20] << 24 | (unsigned)b[21] << 16 | (unsigned)b[22] << 8 | b[23];
    assert_int_equal(b[24], 8);   /* bit depth */
    assert_int_equal(b[25], 2);   /* colour type RGB */
    assert_memory_equal(b + n - 12, iend, 12);
    free(b);
}

static void plots(void **state)
{
    (void)state;
    char prefix[600], path[700];
    pathf(prefix, sizeof prefix, "fig");
    run_out r;
    char *argv[] = {FIT_BASE, "--plot", prefix, "--plot-angles", "3,1", NULL};
    run(argv, &r);
    if (r.exit_code == 2 && strstr(r.err, "without libpng")) {
        run_free(&r);
        skip();
    }
    assert_int_equal(r.exit_code, 0);
    run_free(&r);
    unsigned w, h;
    const char *names[] = {"_angle003.png", "_angle001.png"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s%s", prefix, names[k]);
        check_png(path, &w, &h);
        /* three panels of 360 px (N = 120 enlarged 3x) plus labels */
        assert_true(w >= 3 * 360 && w <= 4000);
        assert_true(h >= 360 && h <= 1200);
    }
    snprintf(path, sizeof path, "%s_g2.png", prefix);
    check_png(path, &w, &h);
    assert_true(w == 1000 && h == 640);
    snprintf(path, sizeof path, "%s_angle000.png", prefix);
    assert_true(access(path, F_OK) != 0);   /* not asked for */

    /* default angles: first, middle, last */
    pathf(prefix, sizeof prefix, "figdef");
    char *def[] = {FIT_BASE, "--plot", prefix, "--json", NULL};
    run_expect(def, 0, &r);
    assert_true(json_valid(r.out));   /* plotting prints nothing on stdout */
    assert_string_equal(r.err, "");
    run_free(&r);
    const char *defs[] = {"_angle000.png", "_angle002.png", "_angle003.png", "_g2.png"};
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s%s", prefix, defs[k]);
        check_png(path, &w, &h);
    }
    snprintf(path, sizeof path, "%s_angle001.png", prefix);
    assert_true(access(path, F_OK) != 0);
    assert_true(no_temp_files());
}

/* ---- fitted c2 rows ---------------------------------------------------- */

static void g2_rows_match_model(void **state)
{
    (void)state;
    enum { N = 40, P = 3 };
    static double data[P * N * N];
    for (size_t k = 0; k < P * N * N; k++) data[k] = 1.1;
    double phis[P] = {10, 95, 200};
    for (int mode = 0; mode < 2; mode++) {
        nlsq_xpcs_source src = tc_mem_source(P, N, phis, data);
        nlsq_xpcs_config cfg = tc_config(0.01, 2e6, 0.02);
        cfg.mode = mode;
        cfg.k0 = 7;
        nlsq_xpcs_model *m = tc_model(&src, &cfg);
        size_t np = mode ? 3 : 7, p = nlsq_xpcs_model_n_params(m);
        double x[7 + 2 * P] = {2e4, -0.2, 100, 1e-3, 0.2, 1e-4, 3.0};
        if (mode) x[2] = 100;
        for (size_t a = 0; a < P; a++) {
            x[np + 2 * a] = 0.2 + 0.05 * (double)a;
            x[np + 2 * a + 1] = 1.0 + 0.01 * (double)a;
        }
        assert_int_equal(p, np + 2 * P);
        nlsq_xpcs_g2_rows *g = NULL;
        assert_int_equal(nlsq_xpcs_g2_rows_create(&cfg, N, P, phis, x, &g), 0);
        double row[N];
        for (size_t a = 0; a < P; a++)
            for (size_t i = 0; i < N; i += 3) {
                assert_int_equal(nlsq_xpcs_g2_rows_eval(g, a, i, 1, 0, N, row), 0);
                for (size_t j = 0; j < N; j++) {
                    double ref = nlsq_xpcs_model_g2(m, x, a, i, j);
                    if (!(fabs(row[j] - ref) <= 1e-13 * fabs(ref)))
                        fail_msg("mode %d angle %zu (%zu, %zu): %.17g vs model %.17g", mode, a, i,
                                 j, row[j], ref);
                }
            }
        assert_int_equal(nlsq_xpcs_g2_rows_eval(g, P, 0, 1, 0, N, row), NLSQ_EINVAL);
        assert_int_equal(nlsq_xpcs_g2_rows_eval(g, 0, N - 1, 2, 0, N, row), NLSQ_EINVAL);
        nlsq_xpcs_g2_rows_free(g);
        nlsq_xpcs_model_free(m);
    }
}

/* ------------------------------------------------------------------------ */
/* dt from the file (docs/xpcs.md "Input files")                             */
/* ------------------------------------------------------------------------ */

/* A copy of src at dst with the dataset name deleted. */
static void copy_without(const char *src, const char *dst, const char *name)
{
    size_t len = 0;
    char *bytes = tc_slurp(src, &len);
    assert_non_null(bytes);
    tc_write_bytes(dst, bytes, len);
    free(bytes);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    assert_true(H5Fclose(f) >= 0);
}

static void dt_from_file(void **state)
{
    (void)state;
    run_out a, b, c;
    char pa[4096], pb[4096], buf[512];
    /* no --dt: the file's 0.02, and the same fit as with --dt 0.02 */
    char *nodt[] = {FIT_XPCS_EXE, synth_h5, "--gap", "2e6", "--threads", "2", "--json",
                    "--start", "local", NULL};
    char *withdt[] = {FIT_BASE, "--json", NULL};
    run(nodt, &a);
    run(withdt, &b);
    assert_int_equal(a.exit_code, 0);
    assert_string_equal(a.err, "");
    assert_true(json_get(a.out, "dt", buf, sizeof buf) && strtod(buf, NULL) == 0.02);
    assert_true(json_get(a.out, "dt_source", buf, sizeof buf));
    assert_non_null(strstr(buf, "frame_time"));
    assert_true(json_get(a.out, "params", pa, sizeof pa) && json_get(b.out, "params", pb, sizeof pb));
    assert_string_equal(pa, pb);
    assert_true(json_get(b.out, "dt_source", buf, sizeof buf));
    assert_string_equal(buf, "\"--dt (equal to the file's)\"");
    /* --dt differing: used, one warning line */
    char *other[] = {FIT_XPCS_EXE, real_h5, "--gap", "2e6", "--threads", "2", "--json", "--dt",
                     "0.021", "--start", "local", NULL};
    run(other, &c);
    assert_true(c.exit_code == 0 || c.exit_code == 1);
    assert_int_equal(count_char(c.err, '\n'), 1);
    assert_non_null(strstr(c.err, "warning: --dt 0.021 differs from the file's dt 0.02"));
    assert_true(json_get(c.out, "dt", buf, sizeof buf) && strtod(buf, NULL) == 0.021);
    run_free(&a);
    run_free(&b);
    run_free(&c);
    /* neither: exit 2 naming what is missing (both layouts) */
    const char *srcs[2] = {synth_h5, real_h5};
    const char *gone[2] = {"entry/instrument/detector_1/frame_time", "xpcs/avg_frames"};
    for (int k = 0; k < 2; k++) {
        char nodt_h5[600];
        pathf(nodt_h5, sizeof nodt_h5, "nodt.h5");
        copy_without(srcs[k], nodt_h5, gone[k]);
        char *none[] = {FIT_XPCS_EXE, nodt_h5, "--gap", "2e6", "--json", NULL};
        run_expect(none, 2, &a);
        assert_string_equal(a.out, "");
        assert_int_equal(count_char(a.err, '\n'), 1);
        assert_non_null(strstr(a.err, gone[k]));
        assert_non_null(strstr(a.err, "--dt"));
        print_message("    %s", a.err);
        run_free(&a);
        remove(nodt_h5);
    }
}

/* --q all: every q in turn, one JSON element and one result group per q,
 * each equal to the fit of that q alone. */
static void q_all(void **state)
{
    (void)state;
    char multi[600], res[600], buf[8192], one[8192], key[32];
    pathf(multi, sizeof multi, "multi.h5");
    pathf(res, sizeof res, "multi_fit.h5");
    char *synth[] = {XPCS_SYNTH_EXE, multi, "--frames", "100", "--angles", "5", "--dt", "0.02",
                     "--extra-q", "2", NULL};
    assert_int_equal(run_quiet(synth), 0);
    run_out all, single;
    char *argv[] = {FIT_XPCS_EXE, multi, "--gap", "2e6", "--threads", "2", "--q", "all",
                    "--json", "--output", res, NULL};
    run_expect(argv, 0, &all);
    assert_string_equal(all.err, "");
    assert_int_equal(count_char(all.out, '\n'), 1);
    assert_int_equal(all.out[0], '[');
    assert_int_equal(json_array_len(all.out), 3);
    const char *qs[3] = {"0.01", "0.015", "0.02"};
    hid_t f = H5Fopen(res, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    for (int k = 0; k < 3; k++) {
        /* element k: the k-th top-level object of the array */
        const char *o = all.out + 1;
        for (int t = 0; t < k; t++) {
            int depth = 0;
            for (; *o && !(depth == 0 && *o == ','); o++) depth += (*o == '{') - (*o == '}');
            o += 2;
        }
        assert_true(json_get(o, "q", buf, sizeof buf));
        assert_true(fabs(strtod(buf, NULL) - strtod(qs[k], NULL)) < 1e-12);
        assert_true(json_get(o, "params", buf, sizeof buf));
        char *alone[] = {FIT_XPCS_EXE, multi, "--gap", "2e6", "--threads", "2", "--q",
                         (char *)qs[k], "--json", NULL};
        run(alone, &single);
        assert_true(json_get(single.out, "params", one, sizeof one));
        assert_string_equal(buf, one);
        run_free(&single);
        double q = 0;
        snprintf(key, sizeof key, "q_%03d/q", k);
        read_doubles(f, key, &q, 1);
        assert_true(fabs(q - strtod(qs[k], NULL)) < 1e-12);
    }
    H5Fclose(f);
    run_free(&all);
    char *bad[] = {FIT_XPCS_EXE, multi, "--gap", "2e6", "--q", "all", "--plot", res, NULL};
    run_expect(bad, 2, &all);
    assert_non_null(strstr(all.err, "--q all"));
    run_free(&all);
}

/* Files as the beamline writes them (xpcs_synth --lzf --empty-angle, both
 * layouts) fit with no --dt: exit 0, exactly the angles held, every
 * parameter within 4 sigma of the truth. */
static void beamline_like(void **state)
{
    (void)state;
    static const char *const layouts[2] = {"aps-u", "aps-old"};
    for (int l = 0; l < 2; l++) {
        char h5[600], buf[4096], key[96];
        pathf(h5, sizeof h5, "beamline.h5");
        char *synth[] = {XPCS_SYNTH_EXE, h5, "--frames", "150", "--angles", "5", "--dt", "0.02",
                         "--extra-q", "1", "--lzf", "--empty-angle", "2", "--layout",
                         (char *)layouts[l], NULL};
        assert_int_equal(run_quiet(synth), 0);
        run_out r;
        char *argv[] = {FIT_XPCS_EXE, h5, "--gap", "2e6", "--q", "0.01", "--json", "--threads",
                        "2", NULL};
        run_expect(argv, 0, &r);
        assert_true(json_get(r.out, "phi", buf, sizeof buf));
        assert_string_equal(buf, "[0, 72, 216, 288]");   /* 144 is the empty bin */
        for (int k = 0; k < 7; k++) {
            snprintf(key, sizeof key, "truth.deviation_sigmas.params.%s", phys[k]);
            assert_true(json_get(r.out, key, buf, sizeof buf));
            double dev = strtod(buf, NULL);
            if (!(fabs(dev) < 4)) fail_msg("%s %s: %s sigma from the truth", layouts[l], phys[k], buf);
        }
        run_free(&r);
        remove(h5);
    }
}

/* ------------------------------------------------------------------------ */
/* --config FILE.yaml: a homodyne configuration                              */
/* ------------------------------------------------------------------------ */

/* A homodyne-style configuration for synth_h5 (keys of the homodyne
 * laminar-flow template, with keys this program ignores mixed in); extra is
 * appended under initial_parameters. */
static void write_yaml(const char *path, const char *dt, const char *extra)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "metadata:\n  config_version: \"2.1\"\n  analysis_mode: \"laminar_flow\"\n"
            "analysis_mode: \"laminar_flow\"\n"
            "analyzer_parameters:\n  dt: %s\n  start_frame: 11\n  end_frame: 110\n"
            "  scattering:\n    wavevector_q: 0.0101\n"
            "  geometry:\n    stator_rotor_gap: 2000000  # 200 microns\n"
            "experimental_data:\n  file_path: \"%s\"\n  cache_compression: true\n"
            "phi_filtering:\n  enabled: true\n  target_ranges:\n"
            "    - min_angle: -20.0\n      max_angle: 200.0\n      description: \"three\"\n"
            "    - {min_angle: 250, max_angle: 290}\n"
            "initial_parameters:\n"
            "  parameter_names: [\"D0\", \"alpha\", \"D_offset\", \"gamma_dot_t0\", \"beta\",\n"
            "                    \"gamma_dot_t_offset\", \"phi_0\"]\n"
            "  values: [15000.0, -0.1, 0.0, 0.002, 0.1, 0.0, 1.0]\n"
            "  units: [\"A^2/s\", \"-\"]\n%s"
            "parameter_space:\n  bounds:\n"
            "    - name: D0\n      min: 100.0\n      max: 100000.0\n      type: TruncatedNormal\n"
            "optimization:\n  mcmc: {enabled: true, num_samples: 4000}\n",
            dt, synth_h5, extra);
    assert_int_equal(fclose(fp), 0);
}

static void config_file(void **state)
{
    (void)state;
    char yaml[600], buf[4096], pb[4096];
    pathf(yaml, sizeof yaml, "homodyne.yaml");
    run_out c, f;
    /* the configuration and the equivalent flags: the same fit */
    write_yaml(yaml, "0.02", "");
    char *cfg[] = {FIT_XPCS_EXE, "--config", yaml, "--threads", "2", "--json", "--start", "local",
                   NULL};
    char *flags[] = {FIT_XPCS_EXE, synth_h5, "--dt", "0.02", "--gap", "2e6", "--q", "0.0101",
                     "--frames", "10:109", "--init", "D0=15000", "--init", "alpha=-0.1",
                     "--init", "D_offset=0", "--init", "gamma_dot_0=0.002", "--init", "beta=0.1",
                     "--init", "gamma_dot_offset=0", "--init", "phi0=1", "--threads", "2",
                     "--json", "--start", "local", NULL};
    run(cfg, &c);
    run(flags, &f);
    assert_int_equal(c.exit_code, 0);
    assert_int_equal(f.exit_code, 0);
    assert_string_equal(c.err, "");
    assert_true(json_get(c.out, "params", buf, sizeof buf) && json_get(f.out, "params", pb, sizeof pb));
    assert_string_equal(buf, pb);
    assert_true(json_get(c.out, "frames", buf, sizeof buf));
    assert_string_equal(buf, "[10, 109]");
    assert_true(json_get(c.out, "phi", buf, sizeof buf));
    assert_int_equal(json_array_len(buf), 4);
    double dof_free = 0;
    assert_true(json_get(f.out, "dof", buf, sizeof buf));
    dof_free = strtod(buf, NULL);
    run_free(&c);
    run_free(&f);

    /* the command line overrides the file */
    char *over[] = {FIT_XPCS_EXE, "--config", yaml, "--frames", "0:99", "--threads", "2", "--json",
                    "--start", "local", NULL};
    run(over, &c);
    assert_true(json_get(c.out, "frames", buf, sizeof buf));
    assert_string_equal(buf, "[0, 99]");
    run_free(&c);

    /* a held parameter: its value, not counted as free (dof + 1); one phi range fewer */
    write_yaml(yaml, "0.02", "  fixed_parameters: {gamma_dot_t_offset: 0.0001}\n");
    run_expect(cfg, 0, &c);
    assert_true(json_get(c.out, "params.gamma_dot_offset", buf, sizeof buf));
    assert_true(strtod(buf, NULL) == 1e-4);
    assert_true(json_get(c.out, "dof", buf, sizeof buf));
    assert_true(strtod(buf, NULL) == dof_free + 1);
    assert_true(json_get(c.out, "fixed", buf, sizeof buf));
    assert_string_equal(buf, "[\"gamma_dot_offset\"]");
    run_free(&c);

    /* a wrong type names the key path; a YAML syntax error its line */
    write_yaml(yaml, "fast", "");
    run_expect(cfg, 2, &c);
    assert_int_equal(count_char(c.err, '\n'), 1);
    assert_non_null(strstr(c.err, "analyzer_parameters.dt: expected a number, not 'fast'"));
    run_free(&c);
    write_yaml(yaml, "[0.02", "");
    run_expect(cfg, 2, &c);
    assert_int_equal(count_char(c.err, '\n'), 1);
    assert_non_null(strstr(c.err, "line "));
    print_message("    %s", c.err);
    run_free(&c);
}


/* ------------------------------------------------------------------------ */
/* --profile undetermined                                                     */
/* ------------------------------------------------------------------------ */

/* Up to n numbers of a JSON array text into v; how many were read. */
static size_t json_doubles(const char *a, double *v, size_t n)
{
    size_t k = 0;
    const char *c = a + (*a == '[');
    while (k < n) {
        char *end;
        double d = strtod(c, &end);
        if (end == c) break;
        v[k++] = d;
        for (c = end; *c == ' ' || *c == ','; c++) {}
    }
    return k;
}

/* The profile's definition, checked without nlsq_profile: 2 (C_j(t) - C_min)
 * / s^2 at x_j = t, C_j(t) from held fits (nlsq_lm with lower_j = upper_j)
 * that walk from x_hat to t in 8 steps, each started where the last ended
 * (a continuation, not the profile's secant / regula falsi). */
static double held_rise(nlsq_xpcs_model *m, const double *x_hat, size_t j, double t,
                        double cmin, double s2)
{
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    size_t p = pb.n_params;
    double lo[32], hi[32], x[32];
    assert_true(p <= 32);
    nlsq_xpcs_default_bounds(m, lo, hi);
    memcpy(x, x_hat, p * sizeof x[0]);
    nlsq_options opt;
    nlsq_options_init(&opt);
    opt.n_threads = 2;
    opt.ftol = 1e-12;
    nlsq_result res;
    for (int step = 1; step <= 8; step++) {
        x[j] = lo[j] = hi[j] = x_hat[j] + (t - x_hat[j]) * step / 8.0;
        assert_int_equal(nlsq_xpcs_model_set_bounds(m, lo, hi), 0);
        memset(&res, 0, sizeof res);
        int rc = nlsq_lm(&pb, &opt, x, &res);
        if (rc < 0 && rc != NLSQ_STALLED) fail_msg("held fit at %g: %s", x[j], res.message);
    }
    nlsq_xpcs_default_bounds(m, lo, hi);
    assert_int_equal(nlsq_xpcs_model_set_bounds(m, lo, hi), 0);
    return 2.0 * (res.cost - cmin) / s2;
}

/* The fit of a --json output as a fit vector (7 physical, then contrast and
 * offset per angle) and the model of its file (default bounds, sigma). */
static nlsq_xpcs_model *fit_vector(const char *json, const char *path, double gap, double dt,
                                   tc_xfile *xf, double *x, size_t *p)
{
    char buf[4096], key[64];
    for (int k = 0; k < 7; k++) {
        snprintf(key, sizeof key, "params.%s", phys[k]);
        assert_true(json_get(json, key, buf, sizeof buf));
        x[k] = strtod(buf, NULL);
    }
    double con[8], off[8];
    assert_true(json_get(json, "contrast", buf, sizeof buf));
    size_t P = json_doubles(buf, con, 8);
    assert_true(json_get(json, "offset", buf, sizeof buf));
    assert_int_equal(json_doubles(buf, off, 8), P);
    for (size_t a = 0; a < P; a++) {
        x[7 + 2 * a] = con[a];
        x[8 + 2 * a] = off[a];
    }
    tc_xfile_open(xf, path, NAN, 0);
    nlsq_xpcs_config cfg = tc_xfile_config(xf, gap, dt);
    nlsq_xpcs_model *m = tc_model(&xf->src, &cfg);
    *p = nlsq_xpcs_model_n_params(m);
    assert_int_equal(*p, 7 + 2 * P);
    return m;
}

/* Cost of the model at x (sum of squared residuals / 2). */
static double model_cost(nlsq_xpcs_model *m, const double *x)
{
    nlsq_problem pb;
    nlsq_xpcs_model_problem(m, &pb);
    double *r = malloc(pb.n_rows * sizeof(double)), c = 0.0;
    assert_non_null(r);
    assert_int_equal(pb.eval(pb.ctx, x, 0, pb.n_rows, r, NULL, NULL), 0);
    for (size_t i = 0; i < pb.n_rows; i++) c += 0.5 * r[i] * r[i];
    free(r);
    return c;
}

#define PU_INIT "--init", "D0=2e4", "--init", "alpha=-0.2", "--init", "D_offset=100", \
    "--init", "gamma_dot_0=1e-3", "--init", "beta=0.2", "--init", "gamma_dot_offset=1e-4", \
    "--init", "phi0=3"

/* --profile undetermined on a file whose fit leaves a parameter undetermined
 * (80 frames, 3 angles, seed 1, fitted from the truth: beta's 1-sigma error
 * is wider than its box [-2, 2]): exactly the undetermined physical
 * parameters get an interval (K = 2), it holds the estimate, and each end
 * meets the profile's definition by held fits of our own: 2 (C - C_min) /
 * s^2 = K^2 at a closed end (to 2 %), <= K^2 at an open one (a bound). */
static void profile_undetermined(void **state)
{
    (void)state;
    char path[600], res_h5[600], buf[4096], key[64];
    pathf(path, sizeof path, "undet.h5");
    pathf(res_h5, sizeof res_h5, "undet_result.h5");
    char *synth[] = {XPCS_SYNTH_EXE, path, "--frames", "80", "--angles", "3", "--dt", "2e-3",
                     "--seed", "1", "--float64", NULL};
    assert_int_equal(run_quiet(synth), 0);
    char *fit[] = {FIT_XPCS_EXE, path, "--dt", "2e-3", "--gap", "2e6", "--threads", "2",
                   "--start", "local", PU_INIT, "--json", "--profile", "undetermined",
                   "--profile-level", "2", "--output", res_h5, NULL};
    run_out r;
    run_expect(fit, 0, &r);
    assert_true(json_valid(r.out));
    assert_non_null(strstr(r.err, "undetermined by the data"));
    assert_non_null(strstr(r.err, "the profile interval, --profile undetermined, is"));
    tc_xfile xf;
    double x[32], cost, dof;
    size_t p;
    nlsq_xpcs_model *m = fit_vector(r.out, path, 2e6, 2e-3, &xf, x, &p);
    assert_true(json_get(r.out, "cost", buf, sizeof buf));
    cost = strtod(buf, NULL);
    assert_true(json_get(r.out, "dof", buf, sizeof buf));
    dof = strtod(buf, NULL);
    /* our model is the command's: the same cost at the same point */
    assert_true(fabs(model_cost(m, x) - cost) <= 1e-9 * cost);
    double s2 = 2.0 * cost / dof;
    double file_iv[64], file_dl[64];   /* /intervals, /intervals_delta: p x 2, NaN where not profiled */
    hid_t rf = H5Fopen(res_h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(rf >= 0 && 2 * p <= 64);
    read_doubles(rf, "intervals", file_iv, 2 * p);
    read_doubles(rf, "intervals_delta", file_dl, 2 * p);
    hid_t ids = H5Dopen2(rf, "intervals", H5P_DEFAULT);
    assert_true(ids >= 0);
    assert_true(read_scalar_attr(ids, "level") == 2.0);
    read_str_attr(ids, "threshold", buf, sizeof buf);
    assert_string_equal(buf, "chi2");
    read_str_attr(ids, "definition", buf, sizeof buf);
    assert_non_null(strstr(buf, "<= delta"));
    H5Dclose(ids);
    assert_true(H5Lexists(rf, "tests", H5P_DEFAULT) == 0);   /* no --test: no /tests */
    H5Fclose(rf);
    for (size_t k = 2 * 7; k < 2 * p; k++) assert_true(isnan(file_iv[k]));   /* contrasts, offsets */
    int n_undet = 0;
    for (int k = 0; k < 7; k++) {
        snprintf(key, sizeof key, "flags.%s", phys[k]);
        assert_true(json_get(r.out, key, buf, sizeof buf));
        int undet = !strncmp(buf, "\"undetermined", 13);
        n_undet += undet;
        snprintf(key, sizeof key, "intervals.%s", phys[k]);
        int have = json_get(r.out, key, buf, sizeof buf);
        if (have != undet) fail_msg("%s: flag %s, interval %s", phys[k], undet ? "undetermined" :
                                    "determined", have ? buf : "none");
        if (!undet) {
            assert_true(isnan(file_iv[2 * k]) && isnan(file_iv[2 * k + 1]));
            continue;
        }
        double iv[2];
        int open[2];
        assert_int_equal(json_doubles(buf, iv, 2), 2);
        assert_true(file_iv[2 * k] == iv[0] && file_iv[2 * k + 1] == iv[1]);
        snprintf(key, sizeof key, "intervals_open.%s", phys[k]);
        assert_true(json_get(r.out, key, buf, sizeof buf));
        open[0] = !strncmp(buf, "[true", 5);
        open[1] = strstr(buf, ", true]") != NULL;
        double dl[2];   /* default errors: the threshold is level^2 at both ends */
        snprintf(key, sizeof key, "intervals_delta.%s", phys[k]);
        assert_true(json_get(r.out, key, buf, sizeof buf));
        assert_int_equal(json_doubles(buf, dl, 2), 2);
        assert_true(dl[0] == 4.0 && dl[1] == 4.0);
        assert_true(file_dl[2 * k] == 4.0 && file_dl[2 * k + 1] == 4.0);
        print_message("    %s = %.6g undetermined: 2-sigma profile [%.6g%s, %.6g%s]\n", phys[k],
                      x[k], iv[0], open[0] ? "*" : "", iv[1], open[1] ? "*" : "");
        assert_true(iv[0] <= x[k] && x[k] <= iv[1] && iv[0] < iv[1]);
        for (int e = 0; e < 2; e++) {
            double rise = held_rise(m, x, (size_t)k, iv[e], cost, s2);
            print_message("      held fit at %.6g: 2 (C - C_min) / s^2 = %.4f\n", iv[e], rise);
            if (open[e]) assert_true(rise <= 4.0 * 1.02);
            else assert_true(fabs(rise - 4.0) <= 0.02 * 4.0);
        }
    }
    if (n_undet == 0)
        fail_msg("no physical parameter undetermined: this test needs a fit that leaves one "
                 "undetermined (did the synthetic noise change? pick another seed)");
    nlsq_xpcs_model_free(m);
    tc_xfile_close(&xf);
    run_free(&r);
    remove(path);
    remove(res_h5);
}

/* With nothing undetermined, --profile undetermined profiles nothing (an
 * empty "intervals", no table section); named parameters are profiled as
 * before, alone. */
static void profile_undetermined_none(void **state)
{
    (void)state;
    char buf[4096];
    run_out r;
    char *fit[] = {FIT_BASE, "--json", "--profile", "undetermined", NULL};
    run_expect(fit, 0, &r);
    assert_null(strstr(r.out, "undetermined"));   /* no flag says it */
    assert_true(json_get(r.out, "intervals", buf, sizeof buf));
    assert_string_equal(buf, "{}");
    run_free(&r);
    char *both[] = {FIT_BASE, "--json", "--profile", "undetermined,D0", NULL};
    run_expect(both, 0, &r);
    assert_true(json_get(r.out, "intervals.D0", buf, sizeof buf));
    assert_true(json_get(r.out, "intervals", buf, sizeof buf));
    assert_int_equal(count_char(buf, '['), 1);   /* D0 only */
    run_free(&r);
    fit_xpcs_args a;
    char err[256];
    char *ok[] = {"fit_xpcs", "in.h5", "--gap", "1", "--profile", "undetermined,D0", NULL};
    assert_int_equal(fit_xpcs_parse_args(6, ok, &a, err, sizeof err), FIT_XPCS_ARGS_OK);
    assert_true(a.profile_undetermined == 1 && a.profile_mask == 1u);
    char *bad[] = {"fit_xpcs", "in.h5", "--gap", "1", "--profile", "undetermined,bogus", NULL};
    assert_int_equal(fit_xpcs_parse_args(6, bad, &a, err, sizeof err), FIT_XPCS_ARGS_USAGE);
    assert_non_null(strstr(err, "'undetermined'"));
    char *table[] = {FIT_BASE, "--profile", "undetermined", NULL};
    run_expect(table, 0, &r);
    assert_null(strstr(r.out, "profile-likelihood"));
    assert_string_equal(r.err, "");
    run_free(&r);
}

/* --test and --boot on the synthetic file (independent noise, default
 * errors: a wild bootstrap over single rows).  At t = the fit's D0, D = 0
 * and the p-value 1; at t = the upper end of D0's 2-sigma profile interval
 * (D0's profile is lopsided here: +2.58 sigma), D = 4 to 1 % (the test's
 * held solve, a continuation from the fit, against the profile's root
 * search).  The statistic is then close to chi2_1, so the bootstrap's 68.3 %
 * and 95.4 % points are 1 and 4 within 3 standard errors of 100
 * replicates' quantile ([0.45, 1.6] and [1.9, 7]).  With --profile D0 --boot
 * the ends' thresholds (intervals_delta) are such quantiles, and each end is
 * where the profile without --boot reaches that threshold: sqrt(delta)
 * times the distance of the plain 1-sigma end, to 10 %.  Usage errors:
 * --boot below 10, --boot with neither --profile nor --test, an unknown
 * --test name, a --test value outside the parameter's bounds. */
static void boot_test(void **state)
{
    (void)state;
    char buf[4096], arg[2][128];
    double v[2], w[2];
    run_out r;
    char *fit[] = {FIT_BASE, "--json", "--profile", "D0", "--profile-level", "2", NULL};
    run_expect(fit, 0, &r);
    assert_true(json_get(r.out, "params.D0", buf, sizeof buf));
    double d0 = strtod(buf, NULL);
    assert_true(json_get(r.out, "intervals.D0", buf, sizeof buf));
    assert_int_equal(json_doubles(buf, v, 2), 2);
    run_free(&r);
    snprintf(arg[0], sizeof arg[0], "D0=%.17g", d0);
    snprintf(arg[1], sizeof arg[1], "D0=%.17g", v[1]);
    char res_h5[600];
    pathf(res_h5, sizeof res_h5, "boot_result.h5");
    for (int k = 0; k < 2; k++) {
        char *t[] = {FIT_BASE, "--json", "--test", arg[k], "--boot", "100", "--output", res_h5,
                     NULL};
        run_expect(t, 0, &r);
        assert_true(json_get(r.out, "tests.D0.D", buf, sizeof buf));
        double D = strtod(buf, NULL);
        assert_true(json_get(r.out, "tests.D0.p_value", buf, sizeof buf));
        double pv = strtod(buf, NULL);
        assert_true(json_get(r.out, "tests.D0.q_1sigma", buf, sizeof buf));
        double q1 = strtod(buf, NULL);
        assert_true(json_get(r.out, "tests.D0.q_2sigma", buf, sizeof buf));
        double q2 = strtod(buf, NULL);
        if (k == 0) {
            assert_true(D >= 0 && D < 1e-6);
            assert_true(pv == 1.0);
        } else if (!(fabs(D - 4.0) < 0.04)) {
            fail_msg("D = %g at the 2-sigma profile end, not 4", D);
        }
        if (!(q1 > 0.45 && q1 < 1.6 && q2 > 1.9 && q2 < 7.0))
            fail_msg("bootstrap quantiles %g, %g: not chi2_1's 1, 4", q1, q2);
        /* the result file's /tests: D0's row as the JSON, the others NaN */
        double tv[5 * 32];
        hid_t rf = H5Fopen(res_h5, H5F_ACC_RDONLY, H5P_DEFAULT);
        assert_true(rf >= 0);
        hid_t ds = H5Dopen2(rf, "tests", H5P_DEFAULT);
        assert_true(ds >= 0);
        hid_t sp = H5Dget_space(ds);
        size_t nt = (size_t)H5Sget_simple_extent_npoints(sp);
        H5Sclose(sp);
        assert_true(nt % 5 == 0 && nt <= 5 * 32);
        assert_true(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, tv) >= 0);
        assert_true(read_scalar_attr(ds, "n_boot") == 100.0);
        H5Dclose(ds);
        H5Fclose(rf);
        assert_true(tv[0] == strtod(arg[k] + 3, NULL) && tv[1] == D && tv[2] == pv &&
                    tv[3] == q1 && tv[4] == q2);
        for (size_t i = 5; i < nt; i++) assert_true(isnan(tv[i]));
        run_free(&r);
    }
    remove(res_h5);
    char *plain[] = {FIT_BASE, "--json", "--profile", "D0", NULL};
    run_expect(plain, 0, &r);
    assert_true(json_get(r.out, "intervals.D0", buf, sizeof buf));
    assert_int_equal(json_doubles(buf, w, 2), 2);
    run_free(&r);
    char *prof[] = {FIT_BASE, "--json", "--profile", "D0", "--boot", "40", NULL};
    run_expect(prof, 0, &r);
    assert_true(json_get(r.out, "intervals_delta.D0", buf, sizeof buf));
    assert_int_equal(json_doubles(buf, v, 2), 2);
    assert_true(v[0] > 0.45 && v[0] < 1.6 && v[1] > 0.45 && v[1] < 1.6);
    double dl = sqrt(v[0]) * (d0 - w[0]), du = sqrt(v[1]) * (w[1] - d0);
    assert_true(json_get(r.out, "intervals.D0", buf, sizeof buf));
    assert_int_equal(json_doubles(buf, v, 2), 2);
    if (!(fabs(d0 - v[0] - dl) < 0.1 * dl && fabs(v[1] - d0 - du) < 0.1 * du))
        fail_msg("interval [%g, %g] around %g: not %g below, %g above", v[0], v[1], d0, dl, du);
    run_free(&r);
    char *few[] = {FIT_BASE, "--test", "D0=2e4", "--boot", "5", NULL};
    run_expect(few, 2, &r);
    assert_non_null(strstr(r.err, "--boot must be 0 or an integer in [10, 100000]"));
    run_free(&r);
    char *alone[] = {FIT_BASE, "--boot", "40", NULL};
    run_expect(alone, 2, &r);
    assert_non_null(strstr(r.err, "--boot needs --profile NAMES or --test NAME=VALUE"));
    run_free(&r);
    char *bogus[] = {FIT_BASE, "--test", "bogus=1", NULL};
    run_expect(bogus, 2, &r);
    assert_non_null(strstr(r.err, "--test: unknown parameter 'bogus'"));
    run_free(&r);
    char *outside[] = {FIT_BASE, "--test", "beta=5", NULL};
    run_expect(outside, 2, &r);
    assert_non_null(strstr(r.err, "--test beta=5: outside the parameter's bounds [-2, 2]"));
    run_free(&r);
}

/* The robust profile threshold's factor (xpcs_threshold_ratio): V_rob / V_mod
 * of the parameter where defined, else the median of the defined ones. */
static void threshold_ratio(void **state)
{
    (void)state;
    /* 3 x 3 diagonals (stride 4): ratios 2, undefined (inf / inf), 8 */
    const double rob[9] = {4, 0, 0, 0, INFINITY, 0, 0, 0, 16};
    const double mod[9] = {2, 0, 0, 0, INFINITY, 0, 0, 0, 2};
    assert_true(xpcs_threshold_ratio(rob, 4, mod, 4, 3, 0) == 2.0);
    assert_true(xpcs_threshold_ratio(rob, 4, mod, 4, 3, 2) == 8.0);
    assert_true(xpcs_threshold_ratio(rob, 4, mod, 4, 3, 1) == 5.0);   /* median of 2, 8 */
    /* vectors (stride 1): 3, NAN, 1, 7 -> median of 1, 3, 7 */
    const double r4[4] = {6, NAN, 1, 14}, m4[4] = {2, 1, 1, 2};
    assert_true(xpcs_threshold_ratio(r4, 1, m4, 1, 4, 1) == 3.0);
    const double none[2] = {INFINITY, -1}, one[2] = {1, 1};
    assert_true(xpcs_threshold_ratio(none, 1, one, 1, 2, 0) == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_and_exit_codes),
        cmocka_unit_test(bad_command_lines),
        cmocka_unit_test(parse_args_direct),
        cmocka_unit_test(json_keys),
        cmocka_unit_test(truth),
        cmocka_unit_test(checkpoint_resume),
        cmocka_unit_test(output_file),
        cmocka_unit_test(plots),
        cmocka_unit_test(g2_rows_match_model),
        cmocka_unit_test(dt_from_file),
        cmocka_unit_test(q_all),
        cmocka_unit_test(config_file),
        cmocka_unit_test(beamline_like),
        cmocka_unit_test(profile_undetermined),
        cmocka_unit_test(profile_undetermined_none),
        cmocka_unit_test(threshold_ratio),
        cmocka_unit_test(boot_test),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
