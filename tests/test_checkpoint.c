/*
 * test_checkpoint.c - checkpoints and nlsq_resume.
 *
 *   stop_resume_*    the progress callback stops the solve at iteration/epoch
 *                    k (LM; Adam; hybrid in phase 1 and in phase 2); nlsq_resume
 *                    from the last checkpoint ends bitwise where an
 *                    uninterrupted run ends (x, cost, status, iterations);
 *                    nlsq_checkpoint_info names the solver, phase, p, m and
 *                    iteration of the file
 *   scaled_resume    the same with residuals x 1e-200 and x 1e200 (the engine
 *                    works at a power-of-two scale, 2^scale_exp, which the
 *                    checkpoint records): still bitwise, for LM, Adam and
 *                    both hybrid phases
 *   kill_resume      fork(): the child fits with a checkpoint every iteration
 *                    and raises SIGKILL on itself from the progress callback at
 *                    iteration k; the parent resumes from the file the child
 *                    left and compares with an uninterrupted run (bitwise);
 *                    LM, Adam and hybrid (killed in phase 2), 1 and 2 threads
 *   file_format      header fields (version 3, solver, phase, p, m) and
 *                    nlsq_checkpoint_info, no "<path>.tmp" left
 *   old_versions     an LM and an Adam checkpoint rewritten in format
 *                    version 1 (no tag field) and 2 (tag) resume bitwise as
 *                    version 3 does; version 4 and 0: NLSQ_ECHECKPOINT
 *                    naming the version
 *   corrupted        a flipped byte (header, payload, checksum) and a truncated
 *                    or empty file -> NLSQ_ECHECKPOINT, from nlsq_resume and
 *                    nlsq_checkpoint_info (also a header claiming p = 2^40
 *                    under a valid checksum); another problem
 *                    (different p, m or bounds) -> NLSQ_ECHECKPOINT; a missing
 *                    file -> NLSQ_EIO; Adam batch settings changed ->
 *                    NLSQ_ECHECKPOINT
 *   write_error      checkpoint_path in a missing folder: the solve returns
 *                    NLSQ_EIO with x = the best point so far
 *   special_files    checkpoint_path on a FIFO: NLSQ_EIO, the FIFO is kept;
 *                    nlsq_resume of a FIFO returns NLSQ_EIO at once (no hang);
 *                    another solve's "<path>.tmp" is never touched and no
 *                    temporary of ours is left (temporaries are unique)
 *   tag              opt->checkpoint_tag: stored (format version 3), read back
 *                    by nlsq_checkpoint_tag, required byte for byte by
 *                    nlsq_resume (another tag, no tag, a tag against an
 *                    untagged file: NLSQ_ECHECKPOINT); a flipped tag byte
 *                    fails the checksum
 */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ the problem */

/* XPCS-like g2 = c0 + beta exp(-2 D0 q^2 t^alpha), 4 q x 2000 lags. */
#define NQ 4
#define NT 2000

static double g_scale = 1.0;   /* residuals and Jacobian times this (scaled_resume) */

static int eval_g2(void *ctx, const double *x, size_t row0, size_t n, double *r, double *J,
                   const nlsq_eval_env *env)
{
    (void)env;
    (void)ctx;
    const double s = g_scale;   /* exact: the scaled rows are s times the plain ones */
    tc_g2_rows(NT, x, row0, n, r, J);
    for (size_t i = 0; i < n; i++) r[i] *= s;
    for (size_t i = 0; J && i < 4 * n; i++) J[i] *= s;
    return 0;
}

static const double POOR[4] = {2e5, 0.3, 0.1, 1.2};

static nlsq_problem g2_problem(void)
{
    return (nlsq_problem){.n_params = 4, .n_rows = NQ * NT, .eval = eval_g2, .lower = TC_G2_LO,
                          .upper = TC_G2_HI};
}

static nlsq_options base_opts(int threads)
{
    nlsq_options o;
    nlsq_options_init(&o);
    o.n_threads = threads;
    o.chunk_rows = 256;             /* several slots per pass: threads matter */
    o.adam.batch_rows = 1024;
    o.adam.block_rows = 256;
    o.adam.epochs = 30;
    o.hybrid.adam_epochs = 3;       /* a short warm-up: phase 2 has iterations */
    o.ftol = o.xtol = 1e-12;
    o.checkpoint_every = 1;
    return o;
}

enum { S_LM, S_ADAM, S_HYBRID };
static const char *solver_name[] = {"LM", "Adam", "hybrid"};
static tc_solver_fn solver_of(int s) { return s == S_LM ? nlsq_lm : s == S_ADAM ? nlsq_adam : nlsq_hybrid; }

/* ------------------------------------------------------------ callbacks */

typedef struct stopper {
    int phase;               /* phase to stop in */
    size_t at;               /* iteration / epoch */
    int kill;                /* 1: raise SIGKILL instead of returning 1 */
    size_t calls;
} stopper;

static int stop_cb(void *ctx, const nlsq_progress_info *info)
{
    stopper *s = ctx;
    s->calls++;
    if (info->phase == s->phase && info->iteration == s->at) {
        if (s->kill) raise(SIGKILL);
        return 1;
    }
    return 0;
}

/* solver from POOR with options o and a stopper (phase, at, kill) as the
 * progress callback; returns the status (NLSQ_EUSER_STOP when it stopped; a
 * kill does not return). */
static int run_stopped(int solver, const nlsq_problem *pb, const nlsq_options *o, int phase,
                       size_t at, int kill)
{
    nlsq_options os = *o;
    stopper s = {phase, at, kill, 0};
    os.progress = stop_cb;
    os.progress_ctx = &s;
    double x[4];
    memcpy(x, POOR, sizeof x);
    nlsq_result r = {0};
    return solver_of(solver)(pb, &os, x, &r);
}

static void reference(int solver, int threads, double x[4], nlsq_result *r)
{
    nlsq_problem pb = g2_problem();
    nlsq_options o = base_opts(threads);
    memcpy(x, POOR, 4 * sizeof(double));
    memset(r, 0, sizeof *r);
    solver_of(solver)(&pb, &o, x, r);
}

static void expect_same(const char *what, const double *xr, const nlsq_result *rr,
                        const double *x, const nlsq_result *r)
{
    printf("%-34s uninterrupted %-14s cost %.17g (%zu it) | resumed %-14s cost %.17g (%zu it)\n",
           what, nlsq_status_name(rr->status), rr->cost, rr->iterations,
           nlsq_status_name(r->status), r->cost, r->iterations);
    assert_int_equal(r->status, rr->status);
    assert_memory_equal(x, xr, 4 * sizeof(double));
    assert_memory_equal(&r->cost, &rr->cost, sizeof(double));
    assert_int_equal(r->iterations, rr->iterations);
    assert_true(r->initial_cost == rr->initial_cost);
}

/* ------------------------------------------------------------ stop / resume */

static void stop_and_resume(int solver, int phase, size_t at, const char *file)
{
    nlsq_problem pb = g2_problem();
    double xr[4];
    nlsq_result rr;
    reference(solver, 1, xr, &rr);
    assert_true(rr.status >= 0);

    const char *path = tc_tmp_name("", file);
    remove(path);
    nlsq_options o = base_opts(1);
    o.checkpoint_path = path;
    o.checkpoint_every = phase == NLSQ_PHASE_ADAM ? 2 : 1;
    assert_int_equal(run_stopped(solver, &pb, &o, phase, at, 0), NLSQ_EUSER_STOP);

    /* what the file holds, without a problem */
    nlsq_checkpoint_summary info;
    assert_int_equal(nlsq_checkpoint_info(path, &info, NULL), 0);
    assert_int_equal(info.solver, solver == S_LM ? NLSQ_SOLVER_LM
                                  : solver == S_ADAM ? NLSQ_SOLVER_ADAM : NLSQ_SOLVER_HYBRID);
    assert_int_equal(info.phase, phase);
    assert_int_equal(info.version, 3);
    assert_int_equal(info.n_params, 4);
    assert_int_equal(info.n_rows, NQ * NT);
    assert_int_equal(info.tag_size, 0);
    /* the last checkpoint before the stop at `at` */
    assert_int_equal(info.iteration, (at - 1) / o.checkpoint_every * o.checkpoint_every);
    if (g_scale == 1.0) assert_int_equal(info.scale_exp, 0);
    else assert_true(info.scale_exp * (g_scale < 1 ? 1 : -1) > 600);   /* 1e+-200 ~ 2^+-664 */

    /* resume with the same options, without the stopping callback */
    double y[4] = {0, 0, 0, 0};
    nlsq_result r2 = {0};
    nlsq_resume(&pb, &o, path, y, &r2);
    char what[96];
    snprintf(what, sizeof what, "%s stopped (%s %zu):", solver_name[solver],
             phase == NLSQ_PHASE_LM ? "LM it" : "epoch", at);
    expect_same(what, xr, &rr, y, &r2);
    if (solver == S_HYBRID) {
        assert_int_equal(r2.n_phases, rr.n_phases);
        assert_int_equal(r2.phases[0].iterations, rr.phases[0].iterations);
        assert_int_equal(r2.phases[1].iterations, rr.phases[1].iterations);
    }
    remove(path);
}

/* Where the stop_resume tests stop: solver, phase, iteration, file. */
typedef struct stop_case {
    int solver, phase;
    size_t at;
    const char *file;
} stop_case;

static const stop_case k_stops[4] = {
    {S_LM, NLSQ_PHASE_LM, 5, "ck_lm.bin"},
    {S_ADAM, NLSQ_PHASE_ADAM, 5, "ck_adam.bin"},
    {S_HYBRID, NLSQ_PHASE_ADAM, 3, "ck_hyb1.bin"},   /* hybrid, in its Adam phase */
    {S_HYBRID, NLSQ_PHASE_LM, 4, "ck_hyb2.bin"},     /* hybrid, in its LM phase */
};

/* The stop of the test's state (a stop_case), then the resume. */
static void test_stop_resume(void **state)
{
    const stop_case *c = *state;
    stop_and_resume(c->solver, c->phase, c->at, c->file);
}

/* Every stop again with residuals and Jacobian scaled by 1e-200 and 1e200. */
static void test_scaled_resume(void **state)
{
    (void)state;
    static const double scales[] = {1e-200, 1e200};
    for (size_t k = 0; k < 2; k++) {
        g_scale = scales[k];
        for (size_t c = 0; c < 4; c++)
            stop_and_resume(k_stops[c].solver, k_stops[c].phase, k_stops[c].at, k_stops[c].file);
    }
    g_scale = 1.0;
}

/* ------------------------------------------------------------ SIGKILL */

static void kill_and_resume(int solver, int phase, size_t at, int threads, const char *file)
{
    nlsq_problem pb = g2_problem();
    double xr[4];
    nlsq_result rr;
    reference(solver, threads, xr, &rr);

    const char *path = tc_tmp_name("", file);
    remove(path);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        nlsq_options o = base_opts(threads);
        o.checkpoint_path = path;
        run_stopped(solver, &pb, &o, phase, at, 1);
        _exit(3);                                   /* not reached when killed */
    }
    int wst = 0;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFSIGNALED(wst));
    assert_int_equal(WTERMSIG(wst), SIGKILL);

    nlsq_options o = base_opts(threads);
    o.checkpoint_path = path;                      /* goes on writing checkpoints */
    double y[4] = {0, 0, 0, 0};
    nlsq_result r2 = {0};
    nlsq_resume(&pb, &o, path, y, &r2);
    char what[96];
    snprintf(what, sizeof what, "%s killed (%s %zu, %d thr):", solver_name[solver],
             phase == NLSQ_PHASE_LM ? "LM it" : "epoch", at, threads);
    expect_same(what, xr, &rr, y, &r2);
    remove(path);
}

static void test_kill_resume(void **state)
{
    (void)state;
    kill_and_resume(S_LM, NLSQ_PHASE_LM, 6, 1, "ck_kill_lm.bin");
    kill_and_resume(S_ADAM, NLSQ_PHASE_ADAM, 4, 1, "ck_kill_adam.bin");
    kill_and_resume(S_HYBRID, NLSQ_PHASE_LM, 3, 1, "ck_kill_hyb.bin");
    kill_and_resume(S_HYBRID, NLSQ_PHASE_LM, 3, 2, "ck_kill_hyb2.bin");
    kill_and_resume(S_ADAM, NLSQ_PHASE_ADAM, 4, 2, "ck_kill_adam2.bin");
}

/* ------------------------------------------------------------ file helpers */

/* Run solver until stopped at `at`, leaving a checkpoint in path. */
static void make_checkpoint(int solver, int phase, size_t at, const char *path)
{
    nlsq_problem pb = g2_problem();
    nlsq_options o = base_opts(1);
    o.checkpoint_path = path;
    assert_int_equal(run_stopped(solver, &pb, &o, phase, at, 0), NLSQ_EUSER_STOP);
}

/* How many "<name>.tmp.*" files are in the temporary folder. */
static int temporaries_of(const char *name)
{
    DIR *d = opendir(NLSQ_TEST_TMPDIR);
    if (!d) return -1;
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s.tmp.", name);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static void test_file_format(void **state)
{
    (void)state;
    const char *path = tc_tmp_name("", "ck_format.bin");
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    const struct { int solver, phase; uint32_t want_solver; } cases[] = {
        {S_LM, NLSQ_PHASE_LM, 1}, {S_ADAM, NLSQ_PHASE_ADAM, 2},
        {S_HYBRID, NLSQ_PHASE_ADAM, 3}, {S_HYBRID, NLSQ_PHASE_LM, 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        remove(path);
        make_checkpoint(cases[c].solver, cases[c].phase, 3, path);
        size_t n = 0;
        unsigned char *b = tc_slurp(path, &n);
        assert_non_null(b);
        assert_true(n > 64);
        assert_memory_equal(b, "NLSQCKP", 8);
        uint32_t version, solver, phase;
        uint64_t p, m, payload;
        memcpy(&version, b + 8, 4);
        memcpy(&solver, b + 16, 4);
        memcpy(&phase, b + 20, 4);
        memcpy(&p, b + 24, 8);
        memcpy(&m, b + 32, 8);
        memcpy(&payload, b + 48, 8);
        assert_int_equal(version, 3);
        assert_int_equal(solver, cases[c].want_solver);
        assert_int_equal(phase, (uint32_t)cases[c].phase);
        assert_int_equal(p, 4);
        assert_int_equal(m, NQ * NT);
        uint64_t tag_size;
        memcpy(&tag_size, b + 56, 8);
        assert_int_equal(tag_size, 0);
        assert_int_equal(payload + 72, n);
        nlsq_checkpoint_summary info;
        assert_int_equal(nlsq_checkpoint_info(path, &info, NULL), 0);
        assert_int_equal(info.solver, (int)solver);
        assert_int_equal(info.phase, (int)phase);
        assert_int_equal(info.n_params, p);
        assert_int_equal(info.n_rows, m);
        struct stat sb;
        assert_int_not_equal(stat(tmp, &sb), 0);     /* no temporary left behind */
        assert_int_equal(temporaries_of("ck_format.bin"), 0);
        free(b);
    }
    remove(path);
}

static int resume_status(const nlsq_problem *pb, const nlsq_options *o, const char *path)
{
    double y[4] = {0, 0, 0, 0};
    nlsq_result r = {0};
    int st = nlsq_resume(pb, o, path, y, &r);
    assert_int_equal(st, r.status);
    if (st < 0) assert_true(r.message[0] != '\0');
    return st;
}

/* FNV-1a 64, the checksum of the format (src/checkpoint.c). */
static uint64_t fnv1a64(const unsigned char *b, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A version 3 file (no tag, scale_exp the last 8 payload bytes: LM and Adam
 * checkpoints) rewritten as `version` (1: no tag-size field; 2: that field
 * and the tag); n_out set.  The caller frees. */
static unsigned char *downgrade(const unsigned char *b, size_t n, uint32_t version,
                                const char *tag, size_t *n_out)
{
    uint64_t payload;
    memcpy(&payload, b + 48, 8);
    assert_int_equal(payload + 72, n);
    size_t T = version == 2 ? strlen(tag) : 0, head = version == 2 ? 64 + T : 56;
    uint64_t np = payload - 8;                    /* without scale_exp */
    unsigned char *o = malloc(head + np + 8);
    assert_non_null(o);
    memcpy(o, b, 56);
    memcpy(o + 8, &version, 4);
    memcpy(o + 48, &np, 8);
    if (version == 2) {
        uint64_t t = T;
        memcpy(o + 56, &t, 8);
        memcpy(o + 64, tag, T);
    }
    memcpy(o + head, b + 64, np);
    uint64_t h = fnv1a64(o, head + np);
    memcpy(o + head + np, &h, 8);
    *n_out = head + np + 8;
    return o;
}

static void test_old_versions(void **state)
{
    (void)state;
    const char *path = tc_tmp_name("", "ck_v3.bin"), *old = tc_tmp_name("", "ck_old.bin");
    nlsq_problem pb = g2_problem();
    static const char tag[] = "data=x";
    for (int solver = S_LM; solver <= S_ADAM; solver++) {
        int phase = solver == S_LM ? NLSQ_PHASE_LM : NLSQ_PHASE_ADAM;
        remove(path);
        make_checkpoint(solver, phase, 4, path);
        nlsq_options o = base_opts(1);
        double x3[4] = {0, 0, 0, 0};
        nlsq_result r3 = {0};
        assert_true(nlsq_resume(&pb, &o, path, x3, &r3) >= 0);
        size_t n = 0;
        unsigned char *b = tc_slurp(path, &n);
        assert_non_null(b);
        for (uint32_t v = 1; v <= 2; v++) {
            size_t n_old;
            unsigned char *ob = downgrade(b, n, v, tag, &n_old);
            tc_write_bytes(old, ob, n_old);
            free(ob);
            nlsq_checkpoint_summary info;
            assert_int_equal(nlsq_checkpoint_info(old, &info, NULL), 0);
            assert_int_equal(info.version, v);
            assert_int_equal(info.scale_exp, 0);
            assert_int_equal(info.tag_size, v == 2 ? strlen(tag) : 0);
            nlsq_options ov = o;
            ov.checkpoint_tag = v == 2 ? tag : NULL;
            ov.checkpoint_tag_size = v == 2 ? strlen(tag) : 0;
            double x[4] = {0, 0, 0, 0};
            nlsq_result r = {0};
            assert_true(nlsq_resume(&pb, &ov, old, x, &r) >= 0);
            char what[64];
            snprintf(what, sizeof what, "%s from format version %u:", solver_name[solver], v);
            expect_same(what, x3, &r3, x, &r);
        }
        /* versions this library does not know */
        for (uint32_t v = 0; v <= 4; v += 4) {
            memcpy(b + 8, &v, 4);
            uint64_t h = fnv1a64(b, n - 8);
            memcpy(b + n - 8, &h, 8);
            tc_write_bytes(old, b, n);
            nlsq_result r = {0};
            double x[4] = {0, 0, 0, 0};
            assert_int_equal(nlsq_resume(&pb, &o, old, x, &r), NLSQ_ECHECKPOINT);
            assert_non_null(strstr(r.message, "unsupported format version"));
            nlsq_checkpoint_summary info;
            assert_int_equal(nlsq_checkpoint_info(old, &info, &r), NLSQ_ECHECKPOINT);
        }
        free(b);
    }
    remove(path);
    remove(old);
}

/* nlsq_checkpoint_info refuses a damaged file: NLSQ_ECHECKPOINT, *info zeroed. */
static void expect_info_refused(const char *file)
{
    nlsq_checkpoint_summary info;
    memset(&info, 0xff, sizeof info);
    nlsq_result r = {0};
    assert_int_equal(nlsq_checkpoint_info(file, &info, &r), NLSQ_ECHECKPOINT);
    assert_int_equal(info.solver, 0);
    assert_int_equal(info.n_params, 0);
    assert_true(strstr(r.message, "checkpoint") != NULL);
}

static void test_corrupted(void **state)
{
    (void)state;
    const char *path = tc_tmp_name("", "ck_good.bin"), *bad = tc_tmp_name("", "ck_bad.bin");
    nlsq_problem pb = g2_problem();
    nlsq_options o = base_opts(1);

    for (int solver = S_LM; solver <= S_HYBRID; solver++) {
        remove(path);
        make_checkpoint(solver, solver == S_ADAM ? NLSQ_PHASE_ADAM : NLSQ_PHASE_LM, 3, path);
        size_t n = 0;
        unsigned char *b = tc_slurp(path, &n);
        assert_non_null(b);
        assert_true(resume_status(&pb, &o, path) >= 0);       /* intact: fine */

        /* one flipped byte anywhere: header, payload, checksum */
        size_t where[] = {0, 9, 17, 30, 50, 64, n / 2, n - 20, n - 1};
        for (size_t k = 0; k < sizeof where / sizeof where[0]; k++) {
            b[where[k]] ^= 0x10;
            tc_write_bytes(bad, b, n);
            assert_int_equal(resume_status(&pb, &o, bad), NLSQ_ECHECKPOINT);
            expect_info_refused(bad);
            b[where[k]] ^= 0x10;
        }
        /* truncated, empty */
        size_t cut[] = {n - 1, n - 8, n / 2, 60, 8, 0};
        for (size_t k = 0; k < sizeof cut / sizeof cut[0]; k++) {
            tc_write_bytes(bad, b, cut[k]);
            assert_int_equal(resume_status(&pb, &o, bad), NLSQ_ECHECKPOINT);
            expect_info_refused(bad);
        }
        /* a consistent checksum over a header that claims p = 2^40: refused
         * before anything of that size is allocated */
        unsigned char *big = malloc(n);
        assert_non_null(big);
        memcpy(big, b, n);
        uint64_t huge = (uint64_t)1 << 40;
        memcpy(big + 24, &huge, 8);
        uint64_t h = fnv1a64(big, n - 8);
        memcpy(big + n - 8, &h, 8);
        tc_write_bytes(bad, big, n);
        free(big);
        expect_info_refused(bad);
        assert_int_equal(resume_status(&pb, &o, bad), NLSQ_ECHECKPOINT);
        /* another problem: p, m, bounds */
        nlsq_problem other = pb;
        other.n_params = 3;
        assert_int_equal(resume_status(&other, &o, path), NLSQ_ECHECKPOINT);
        other = pb;
        other.n_rows = pb.n_rows - 1;
        assert_int_equal(resume_status(&other, &o, path), NLSQ_ECHECKPOINT);
        other = pb;
        double hi2[4] = {1e6, 2.0, 1.0, 2.0};
        other.upper = hi2;
        assert_int_equal(resume_status(&other, &o, path), NLSQ_ECHECKPOINT);
        other.upper = NULL;
        assert_int_equal(resume_status(&other, &o, path), NLSQ_ECHECKPOINT);
        if (solver == S_ADAM) {
            nlsq_options o2 = o;
            o2.adam.batch_rows = 2048;                    /* another batch plan */
            assert_int_equal(resume_status(&pb, &o2, path), NLSQ_ECHECKPOINT);
            o2 = o;
            o2.adam.seed = 1;
            assert_int_equal(resume_status(&pb, &o2, path), NLSQ_ECHECKPOINT);
        }
        free(b);
    }
    /* missing file */
    const char *missing = tc_tmp_name("", "no_such_checkpoint.bin");
    remove(missing);
    assert_int_equal(resume_status(&pb, &o, missing), NLSQ_EIO);
    /* a folder is not a checkpoint file either */
    assert_true(resume_status(&pb, &o, NLSQ_TEST_TMPDIR) < 0);
    remove(path);
    remove(bad);
}

static void test_write_error(void **state)
{
    (void)state;
    const char *path = tc_tmp_name("", "no_such_dir/ck.bin");
    nlsq_problem pb = g2_problem();
    for (int solver = S_LM; solver <= S_HYBRID; solver++) {
        nlsq_options o = base_opts(1);
        o.checkpoint_path = path;
        double x[4];
        memcpy(x, POOR, sizeof x);
        nlsq_result r = {0};
        int st = solver_of(solver)(&pb, &o, x, &r);
        assert_int_equal(st, NLSQ_EIO);
        for (int j = 0; j < 4; j++) assert_true(isfinite(x[j]));
        for (int j = 0; j < 4; j++) assert_true(x[j] >= TC_G2_LO[j] && x[j] <= TC_G2_HI[j]);
    }
}

static void test_special_files(void **state)
{
    (void)state;
    const char *fifo = tc_tmp_name("", "ck_fifo"), *path = tc_tmp_name("", "ck_shared.bin");
    char other_tmp[600];
    snprintf(other_tmp, sizeof other_tmp, "%s.tmp", path);
    remove(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    nlsq_problem pb = g2_problem();
    nlsq_options o = base_opts(1);
    double x[4];
    nlsq_result r = {0};
    /* a FIFO is never replaced by a checkpoint */
    o.checkpoint_path = fifo;
    memcpy(x, POOR, sizeof x);
    assert_int_equal(nlsq_lm(&pb, &o, x, &r), NLSQ_EIO);
    assert_non_null(strstr(r.message, "not a regular file"));
    struct stat sb;
    assert_int_equal(stat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    /* resuming from a FIFO returns at once (a blocking open would hang:
     * the alarm fails the test instead) */
    alarm(20);
    assert_int_equal(resume_status(&pb, &o, fifo), NLSQ_EIO);
    alarm(0);
    /* another solve's temporary (the old fixed name "<path>.tmp") is left
     * alone, and ours are unique and removed */
    FILE *fp = fopen(other_tmp, "wb");
    assert_non_null(fp);
    fputs("another process's temporary", fp);
    fclose(fp);
    o.checkpoint_path = path;
    memcpy(x, POOR, sizeof x);
    assert_true(nlsq_lm(&pb, &o, x, &r) > 0);
    size_t n = 0;
    unsigned char *b = tc_slurp(other_tmp, &n);
    assert_non_null(b);
    assert_int_equal(n, strlen("another process's temporary"));
    assert_memory_equal(b, "another process's temporary", n);
    free(b);
    assert_int_equal(temporaries_of("ck_shared.bin"), 0);
    assert_true(resume_status(&pb, &o, path) >= 0);
    remove(other_tmp);
    remove(path);
    remove(fifo);
}

static void test_tag(void **state)
{
    (void)state;
    const char *path = tc_tmp_name("", "ck_tag.bin"), *plain = tc_tmp_name("", "ck_notag.bin"),
               *bad = tc_tmp_name("", "ck_tag_bad.bin");
    nlsq_problem pb = g2_problem();
    nlsq_options o = base_opts(1);
    static const char tag[] = "file=a.h5 dt=0.01";
    o.checkpoint_path = path;
    o.checkpoint_tag = tag;
    o.checkpoint_tag_size = sizeof tag - 1;
    assert_int_equal(run_stopped(S_LM, &pb, &o, NLSQ_PHASE_LM, 3, 0), NLSQ_EUSER_STOP);
    nlsq_result r = {0};
    size_t n = 0;
    unsigned char *b = tc_slurp(path, &n);
    assert_non_null(b);
    uint32_t version;
    memcpy(&version, b + 8, 4);
    assert_int_equal(version, 3);
    /* read back */
    char got[64] = "";
    size_t len = 0;
    assert_int_equal(nlsq_checkpoint_tag(path, got, sizeof got, &len, &r), 0);
    assert_int_equal(len, sizeof tag - 1);
    assert_memory_equal(got, tag, len);
    /* the same tag resumes; another, none: refused */
    assert_true(resume_status(&pb, &o, path) >= 0);
    nlsq_options o2 = o;
    o2.checkpoint_path = NULL;
    static const char other[] = "file=a.h5 dt=0.02";
    o2.checkpoint_tag = other;
    o2.checkpoint_tag_size = sizeof other - 1;
    double y[4] = {0, 0, 0, 0};
    nlsq_result r2 = {0};
    assert_int_equal(nlsq_resume(&pb, &o2, path, y, &r2), NLSQ_ECHECKPOINT);
    assert_non_null(strstr(r2.message, "tag differs"));
    o2.checkpoint_tag = NULL;
    o2.checkpoint_tag_size = 0;
    assert_int_equal(resume_status(&pb, &o2, path), NLSQ_ECHECKPOINT);
    /* a flipped tag byte: checksum */
    b[64 + 3] ^= 0x01;
    tc_write_bytes(bad, b, n);
    assert_int_equal(resume_status(&pb, &o, bad), NLSQ_ECHECKPOINT);
    free(b);
    /* an untagged file against a tag */
    remove(plain);
    make_checkpoint(S_LM, NLSQ_PHASE_LM, 3, plain);
    assert_int_equal(nlsq_checkpoint_tag(plain, got, sizeof got, &len, &r), 0);
    assert_int_equal(len, 0);
    assert_int_equal(resume_status(&pb, &o, plain), NLSQ_ECHECKPOINT);
    remove(path);
    remove(plain);
    remove(bad);
}

#define STOP_TEST(name, k) {name, test_stop_resume, NULL, NULL, (void *)&k_stops[k]}

TC_MAIN(STOP_TEST("stop_resume_lm", 0), STOP_TEST("stop_resume_adam", 1),
        STOP_TEST("stop_resume_hybrid_phase1", 2), STOP_TEST("stop_resume_hybrid_phase2", 3),
        cmocka_unit_test(test_scaled_resume),
        cmocka_unit_test(test_old_versions),
        cmocka_unit_test(test_kill_resume),
        cmocka_unit_test(test_file_format),
        cmocka_unit_test(test_corrupted),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_special_files),
        cmocka_unit_test(test_tag))
