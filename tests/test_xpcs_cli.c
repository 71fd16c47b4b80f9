/*
 * test_xpcs_cli.c - the fit_xpcs command line, end to end.
 *
 * Runs the built xpcs_synth and fit_xpcs binaries (paths from CMake:
 * FIT_XPCS_EXE, XPCS_SYNTH_EXE) as child processes on small synthetic files
 * (N <= 120 frames, 4 angles) in a private temporary folder.
 *
 *   help_and_exit_codes  --help exits 0; a converged fit 0; --max-iter 1 gives
 *                        1 (not converged); bad input 2
 *   bad_command_lines    14 bad command lines: each exit 2, stdout empty,
 *                        exactly one line on stderr starting "fit_xpcs: "
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
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

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

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = b ? fread(b, 1, (size_t)(n > 0 ? n : 0), fp) : 0;
    fclose(fp);
    if (!b) return NULL;
    b[got] = '\0';
    if (len) *len = got;
    return b;
}

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
    r->out = slurp(out_path, NULL);
    r->err = slurp(err_path, NULL);
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

#define FIT_BASE FIT_XPCS_EXE, synth_h5, "--dt", "0.02", "--gap", "2e6", "--threads", "2"

/* ------------------------------------------------------------------------ */
/* Tests                                                                      */
/* ------------------------------------------------------------------------ */

static void help_and_exit_codes(void **state)
{
    (void)state;
    run_out r;
    char *help[] = {FIT_XPCS_EXE, "--help", NULL};
    run(help, &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "usage: fit_xpcs"));
    assert_non_null(strstr(r.out, "--checkpoint"));
    assert_string_equal(r.err, "");
    run_free(&r);

    char *ok[] = {FIT_BASE, NULL};
    run(ok, &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "CONVERGED"));
    run_free(&r);

    char *one[] = {FIT_BASE, "--max-iter", "1", "--json", NULL};
    run(one, &r);
    assert_int_equal(r.exit_code, 1);
    assert_true(json_valid(r.out));
    char buf[64];
    assert_true(json_get(r.out, "status", buf, sizeof buf));
    assert_string_equal(buf, "\"MAX_ITER\"");
    run_free(&r);

    char missing[600];
    pathf(missing, sizeof missing, "no_such_file.h5");
    char *bad[] = {FIT_XPCS_EXE, missing, "--dt", "0.02", "--gap", "2e6", NULL};
    run(bad, &r);
    assert_int_equal(r.exit_code, 2);
    assert_int_equal(count_char(r.err, '\n'), 1);
    assert_non_null(strstr(r.err, "no_such_file.h5"));
    run_free(&r);
}

static void bad_command_lines(void **state)
{
    (void)state;
    char ck[600], outdir[600];
    pathf(ck, sizeof ck, "nonexistent.ckpt");
    pathf(outdir, sizeof outdir, "no/such/dir/out.h5");
    /* each row: arguments after the program, NULL-terminated */
    char *lines[][12] = {
        {NULL},                                                        /* nothing */
        {synth_h5, "--gap", "2e6", NULL},                              /* no --dt */
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
    assert_int_equal(a.max_iter, 200);
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
    run(argv, &r);
    assert_int_equal(r.exit_code, 0);
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
    run(table, &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "truth"));
    assert_non_null(strstr(r.out, "dev/sigma"));
    run_free(&r);

    char *json[] = {FIT_BASE, "--json", NULL};
    run(json, &r);
    assert_int_equal(r.exit_code, 0);
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
    run(real_table, &r);
    assert_int_equal(r.exit_code, 0);
    assert_null(strstr(r.out, "truth"));
    assert_non_null(strstr(r.out, "+- 1 sigma"));
    run_free(&r);
    char *real_json[] = {FIT_XPCS_EXE, real_h5, "--dt", "0.02", "--gap", "2e6", "--json", NULL};
    run(real_json, &r);
    assert_int_equal(r.exit_code, 0);
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
    run(plain, &full);
    assert_int_equal(full.exit_code, 0);
    char it[32];
    assert_true(json_get(full.out, "iterations", it, sizeof it));
    assert_true(atoi(it) > 4);   /* long enough to be interrupted after checkpoint 1 */

    /* slowed down (test hook: a sleep per iteration) so that the kill lands
     * between the first checkpoint (iteration 2) and the end */
    char *ckargs[] = {FIT_BASE, "--json", "--checkpoint", ck, "--checkpoint-every", "2", NULL};
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
    run(resume, &resumed);
    assert_int_equal(resumed.exit_code, 0);
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
    run(wrong, &resumed);
    assert_int_equal(resumed.exit_code, 2);
    assert_int_equal(count_char(resumed.err, '\n'), 1);
    run_free(&resumed);
    /* another problem (static mode: 11 parameters, not 15) */
    char *other[] = {FIT_BASE, "--resume", ck, "--mode", "static", NULL};
    run(other, &resumed);
    assert_int_equal(resumed.exit_code, 2);
    assert_int_equal(count_char(resumed.err, '\n'), 1);
    run_free(&resumed);
    run_free(&full);
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
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
