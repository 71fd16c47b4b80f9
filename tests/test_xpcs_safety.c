/*
 * test_xpcs_safety.c - fit_xpcs never destroys an input, never reports lost
 * output as success, and says what went wrong in one line (issue 15;
 * docs/reliability.md, "Files").
 *
 * Each test runs the built fit_xpcs (FIT_XPCS_EXE) as a child on a small
 * synthetic file in a private temporary folder and asserts: the exit code,
 * exactly one line on stderr starting "fit_xpcs: ", the inputs byte for byte
 * unchanged, special files still special, and no temporary left behind.
 *
 *   output_is_input      --output / --checkpoint / --plot naming the input
 *                        (by name, symbolic link, hard link) or the --resume
 *                        file, and two outputs naming one file: exit 2
 *   output_not_regular   --output / --checkpoint / --plot on a FIFO, a folder,
 *                        a socket and a character device (mknod; skipped with a
 *                        message where not permitted): exit 2, node kept
 *   output_dir_checked   --output naming a folder, or in a missing folder:
 *                        exit 2 before the fit (nothing on stdout)
 *   resume_fifo          --resume on a FIFO: exit 2 within seconds (no hang)
 *   stdout_lost          --json > /dev/full and with stdout closed: exit 2
 *   full_filesystem      --output (+ --save-fit), --plot, --checkpoint on a
 *                        full tmpfs, and --output on a read-only one (mount;
 *                        skipped with a message where not permitted): exit 2,
 *                        one line (no HDF5 / libpng lines), no temporary, no
 *                        crash
 *   json_utf8            --json on a file whose name is not UTF-8: the output
 *                        is valid UTF-8 (checked with the C library's own
 *                        decoder, mbrtowc in C.UTF-8) and the bad bytes are
 *                        \u00XX
 *   too_few_rows         static mode, 4 frames, 1 angle (6 rows, 5 free
 *                        parameters) with 2 entries NaN: exit 2 naming the
 *                        usable count (was 1, "not converged")
 *   absurd_file_q        a file whose q list says 1e300: exit 2 at once
 *   locked_truncated     the input held open for writing by another process
 *                        (HDF5 file locking; skipped when
 *                        HDF5_USE_FILE_LOCKING=FALSE) and a truncated copy:
 *                        each its own message (both were "damaged or
 *                        truncated")
 *   checkpoint_bound     a checkpoint resumed against another gap, sigma,
 *                        frame window, or another file of the same shape:
 *                        exit 2 naming what differs (was: resumed
 *                        silently); the same settings resume
 */
#define _GNU_SOURCE
#include "common_xpcs.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <wchar.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"

#include <hdf5.h>

#ifndef FIT_XPCS_EXE
#error "FIT_XPCS_EXE must be defined (tests/CMakeLists.txt)"
#endif

#define GOOD_FRAMES 60       /* frames of the synthetic input */
static char dir[512];        /* private temporary folder */
static char good[600];       /* synthetic input: 60 frames, 3 angles */

static void pathf(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* ------------------------------------------------------------------------ */
/* Running fit_xpcs                                                           */
/* ------------------------------------------------------------------------ */

typedef struct outcome {
    int code;             /* exit code, -1 when killed by a signal */
    int sig;
    double seconds;
    char err[4096];       /* stderr */
    size_t n_out;         /* stdout bytes (when captured) */
} outcome;

enum { OUT_FILE, OUT_FULL, OUT_CLOSED };

/* Run fit_xpcs GOOD --dt 0.01 --gap 2e6 <args...> (NULL-terminated); stdout
 * to a file, /dev/full or closed.  A run longer than 20 s is killed. */
static void run_fit(int out_mode, outcome *o, ...)
{
    char outp[600], errp[600];
    pathf(outp, sizeof outp, "stdout.txt");
    pathf(errp, sizeof errp, "stderr.txt");
    const char *argv[40] = {FIT_XPCS_EXE, good, "--dt", "0.01", "--gap", "2e6"};
    int argc = 6;
    va_list ap;
    va_start(ap, o);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL && argc < 38;) argv[argc++] = s;
    va_end(ap);
    argv[argc] = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fo = out_mode == OUT_FULL ? open("/dev/full", O_WRONLY)
                                      : open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fe < 0 || fo < 0) _exit(127);
        dup2(fe, 2);
        dup2(fo, 1);
        if (out_mode == OUT_CLOSED) close(1);
        close(fe);
        close(fo);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    for (int waited = 0;; waited++) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) break;
        if (waited > 2000) {     /* 20 s: a hang */
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        usleep(10000);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    o->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    o->code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    o->sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    o->err[0] = '\0';
    FILE *fp = fopen(errp, "rb");
    if (fp) {
        size_t n = fread(o->err, 1, sizeof o->err - 1, fp);
        o->err[n] = '\0';
        fclose(fp);
    }
    struct stat sb;
    o->n_out = out_mode == OUT_FILE && stat(outp, &sb) == 0 ? (size_t)sb.st_size : 0;
}

/* exit 2, one stderr line "fit_xpcs: ...", optionally containing `want` */
static void expect_refusal(const outcome *o, const char *what, const char *want)
{
    size_t lines = 0, n = strlen(o->err);
    for (size_t i = 0; i < n; i++) lines += o->err[i] == '\n';
    print_message("  %-40s exit %d  %.*s\n", what, o->code, (int)(n ? n - 1 : 0), o->err);
    if (o->sig) fail_msg("%s: killed by signal %d", what, o->sig);
    if (o->code != 2) fail_msg("%s: exit %d, want 2", what, o->code);
    if (lines != 1 || o->err[n - 1] != '\n' || strncmp(o->err, "fit_xpcs: ", 10) != 0)
        fail_msg("%s: want one stderr line, got %zu: %s", what, lines, o->err);
    if (want && !strstr(o->err, want)) fail_msg("%s: message lacks '%s': %s", what, want, o->err);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                      */
/* ------------------------------------------------------------------------ */

/* Is path byte for byte the saved copy? */
static int unchanged(const char *path, const unsigned char *copy, size_t n)
{
    size_t m = 0;
    unsigned char *b = tc_slurp(path, &m);
    int same = b && m == n && memcmp(b, copy, n) == 0;
    free(b);
    return same;
}

/* No "*.tmp.*" file in folder d. */
static int no_temporaries(const char *d)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q '\\.tmp\\.'", d);
    return system(cmd) != 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/xpcs_safety_XXXXXX", NLSQ_TEST_TMPDIR);
    if (!mkdtemp(dir)) return -1;
    pathf(good, sizeof good, "good.h5");
    return 0;
}

/* A fresh input for each test (a test that fails may have destroyed it). */
/* The synthetic file of these tests: n_frames frames, n_angles angles, dt
 * 0.01 (the dt fit_xpcs is given: no warning line), the other defaults. */
static nlsq_xpcs_synth_spec spec_of(size_t n_frames, size_t n_angles)
{
    nlsq_xpcs_synth_spec s;
    nlsq_xpcs_synth_spec_default(&s);
    s.n_frames = n_frames;
    s.n_angles = n_angles;
    s.dt = 0.01;
    return s;
}

static int fresh_input(void **state)
{
    (void)state;
    unlink(good);
    /* with dt 0.01: every parameter determined (no warning line; at 40 frames D0
     * runs to its bound and D_offset follows it) */
    nlsq_xpcs_synth_spec s = spec_of(GOOD_FRAMES, 3);
    char err[512];
    return nlsq_xpcs_synth_write(good, &s, err, sizeof err) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                      */
/* ------------------------------------------------------------------------ */

static void output_is_input(void **state)
{
    (void)state;
    size_t n = 0;
    unsigned char *copy = tc_slurp(good, &n);
    assert_non_null(copy);
    char sym[600], hard[600], ck[600], ck2[600], prefix[600];
    pathf(sym, sizeof sym, "sym.h5");
    pathf(hard, sizeof hard, "hard.h5");
    pathf(ck, sizeof ck, "ck.bin");
    pathf(ck2, sizeof ck2, "ck2.bin");
    pathf(prefix, sizeof prefix, "plot");
    assert_int_equal(symlink(good, sym), 0);
    assert_int_equal(link(good, hard), 0);
    outcome o;
    run_fit(OUT_FILE, &o, "--output", good, NULL);
    expect_refusal(&o, "--output = the input", "input");
    run_fit(OUT_FILE, &o, "--output", sym, NULL);
    expect_refusal(&o, "--output = a symbolic link to the input", "same file");
    run_fit(OUT_FILE, &o, "--output", hard, NULL);
    expect_refusal(&o, "--output = a hard link to the input", "same file");
    run_fit(OUT_FILE, &o, "--checkpoint", good, NULL);
    expect_refusal(&o, "--checkpoint = the input", "input");
    run_fit(OUT_FILE, &o, "--checkpoint", hard, "--output", ck, NULL);
    expect_refusal(&o, "--checkpoint = a hard link to the input", "same file");
    /* the --plot files: PREFIX_g2.png as a link to the input */
    char g2[620];
    snprintf(g2, sizeof g2, "%s_g2.png", prefix);
    assert_int_equal(symlink(good, g2), 0);
    run_fit(OUT_FILE, &o, "--plot", prefix, NULL);
    expect_refusal(&o, "--plot file = a link to the input", "same file");
    assert_int_equal(o.n_out, 0);                 /* refused before the fit */
    unlink(g2);
    /* the --resume file is an input too; two outputs may not share a file */
    FILE *fp = fopen(ck2, "wb");
    assert_non_null(fp);
    fputs("not a checkpoint", fp);
    fclose(fp);
    run_fit(OUT_FILE, &o, "--resume", ck2, "--output", ck2, NULL);
    expect_refusal(&o, "--output = the --resume file", "--resume");
    run_fit(OUT_FILE, &o, "--output", ck, "--checkpoint", ck, NULL);
    expect_refusal(&o, "--output = --checkpoint", "--output");
    assert_true(unchanged(good, copy, n));
    assert_true(unchanged(sym, copy, n));
    assert_true(no_temporaries(dir));
    unlink(sym);
    unlink(hard);
    unlink(ck2);
    free(copy);
}

/* A Unix socket bound at path (the descriptor is closed; the node stays). */
static int make_socket(const char *path)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return -1;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a.sun_path) {
        close(s);
        return -1;
    }
    strcpy(a.sun_path, path);
    int rc = bind(s, (struct sockaddr *)&a, sizeof a);
    close(s);
    return rc;
}

static void output_not_regular(void **state)
{
    (void)state;
    char fifo[600], sub[600], sock[600], dev[600], prefix[600], g2[620];
    pathf(fifo, sizeof fifo, "fifo");
    pathf(sub, sizeof sub, "folder");
    pathf(sock, sizeof sock, "sock");
    pathf(dev, sizeof dev, "null_device");
    pathf(prefix, sizeof prefix, "p");
    snprintf(g2, sizeof g2, "%s_g2.png", prefix);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    int have_sock = make_socket(sock) == 0;
    int have_dev = mknod(dev, S_IFCHR | 0644, makedev(1, 3)) == 0;   /* like /dev/null */
    if (!have_dev) print_message("  (mknod not permitted here: the device case is skipped)\n");
    if (!have_sock) print_message("  (no Unix socket here: the socket case is skipped)\n");
    const char *flags[2] = {"--output", "--checkpoint"};
    outcome o;
    for (int f = 0; f < 2; f++) {
        char what[80];
        snprintf(what, sizeof what, "%s on a FIFO", flags[f]);
        run_fit(OUT_FILE, &o, flags[f], fifo, NULL);
        expect_refusal(&o, what, "FIFO");
        snprintf(what, sizeof what, "%s on a folder", flags[f]);
        run_fit(OUT_FILE, &o, flags[f], sub, NULL);
        expect_refusal(&o, what, "directory");
        if (have_sock) {
            snprintf(what, sizeof what, "%s on a socket", flags[f]);
            run_fit(OUT_FILE, &o, flags[f], sock, NULL);
            expect_refusal(&o, what, "socket");
        }
        if (have_dev) {
            snprintf(what, sizeof what, "%s on a character device", flags[f]);
            run_fit(OUT_FILE, &o, flags[f], dev, NULL);
            expect_refusal(&o, what, "device");
        }
    }
    assert_int_equal(mkfifo(g2, 0644), 0);
    run_fit(OUT_FILE, &o, "--plot", prefix, NULL);
    expect_refusal(&o, "--plot file on a FIFO", "FIFO");
    struct stat sb;
    assert_int_equal(stat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    assert_int_equal(stat(g2, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    assert_int_equal(stat(sub, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    if (have_sock) {
        assert_int_equal(stat(sock, &sb), 0);
        assert_true(S_ISSOCK(sb.st_mode));
    }
    if (have_dev) {
        assert_int_equal(stat(dev, &sb), 0);
        assert_true(S_ISCHR(sb.st_mode));
    }
    assert_true(no_temporaries(dir));
    unlink(fifo);
    unlink(g2);
    unlink(sock);
    unlink(dev);
    rmdir(sub);
}

static void output_dir_checked(void **state)
{
    (void)state;
    char out[600];
    pathf(out, sizeof out, "no_such_folder/result.h5");
    outcome o;
    run_fit(OUT_FILE, &o, "--output", dir, NULL);
    expect_refusal(&o, "--output naming a folder", "directory");
    assert_int_equal(o.n_out, 0);     /* before the fit: no table printed */
    run_fit(OUT_FILE, &o, "--output", out, NULL);
    expect_refusal(&o, "--output in a missing folder", "cannot create");
    assert_int_equal(o.n_out, 0);     /* before the fit: no table printed */
    pathf(out, sizeof out, "no_such_folder/ck");
    run_fit(OUT_FILE, &o, "--checkpoint", out, NULL);
    expect_refusal(&o, "--checkpoint in a missing folder", "cannot create");
    assert_int_equal(o.n_out, 0);
}

static void resume_fifo(void **state)
{
    (void)state;
    char fifo[600];
    pathf(fifo, sizeof fifo, "resume_fifo");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    outcome o;
    run_fit(OUT_FILE, &o, "--resume", fifo, NULL);
    expect_refusal(&o, "--resume on a FIFO", "FIFO");
    assert_true(o.seconds < 10);
    unlink(fifo);
}

static void stdout_lost(void **state)
{
    (void)state;
    outcome o;
    run_fit(OUT_FULL, &o, "--json", NULL);
    expect_refusal(&o, "--json > /dev/full", "standard output");
    run_fit(OUT_FULL, &o, NULL);
    expect_refusal(&o, "table > /dev/full", "standard output");
    run_fit(OUT_CLOSED, &o, "--json", NULL);
    expect_refusal(&o, "--json with stdout closed", "standard output");
    /* a failed stdout does not lose the result file */
    char out[600];
    pathf(out, sizeof out, "kept.h5");
    run_fit(OUT_FULL, &o, "--output", out, NULL);
    expect_refusal(&o, "--output, stdout on /dev/full", "standard output");
    struct stat sb;
    assert_int_equal(stat(out, &sb), 0);
    unlink(out);
}

/* A small tmpfs at d (mount(2) needs privileges): 0 mounted, -1 not. */
static int mount_small(const char *d, const char *opts, unsigned long flags)
{
    if (mkdir(d, 0755) != 0 && errno != EEXIST) return -1;
    return mount("tmpfs", d, "tmpfs", flags, opts);
}

/* Fill the file system at d, then free `spare` bytes (a write that starts
 * and fails half-way). */
static void fill_up(const char *d, off_t spare)
{
    char p[700];
    snprintf(p, sizeof p, "%s/filler", d);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    char block[1024];
    memset(block, 0x5a, sizeof block);
    off_t size = 0;
    while (write(fd, block, sizeof block) == (ssize_t)sizeof block) size += (off_t)sizeof block;
    assert_int_equal(ftruncate(fd, size > spare ? size - spare : 0), 0);
    close(fd);
}

static void full_filesystem(void **state)
{
    (void)state;
    char mnt[600], out[700], prefix[700], ck[700];
    pathf(mnt, sizeof mnt, "small_fs");
    if (mount_small(mnt, "size=64k", 0) != 0) {
        print_message("  SKIPPED: cannot mount a small tmpfs here (%s): full and read-only "
                      "file systems not tested\n", strerror(errno));
        skip();
    }
    snprintf(out, sizeof out, "%s/result.h5", mnt);
    snprintf(prefix, sizeof prefix, "%s/plot", mnt);
    snprintf(ck, sizeof ck, "%s/ck.bin", mnt);
    outcome o[5];
    fill_up(mnt, 0);        /* full: not even a temporary can be made */
    run_fit(OUT_FILE, &o[0], "--output", out, NULL);
    /* --start local: from the default start the fit takes iterations to checkpoint */
    run_fit(OUT_FILE, &o[2], "--checkpoint", ck, "--checkpoint-every", "1", "--start", "local",
            NULL);
    fill_up(mnt, 8192);     /* room for the start of the file only */
    run_fit(OUT_FILE, &o[4], "--output", out, "--save-fit", NULL);
    run_fit(OUT_FILE, &o[1], "--plot", prefix, NULL);
    int tmp_ok = no_temporaries(mnt);
    struct stat sb;
    int out_absent = stat(out, &sb) != 0;
    /* read-only */
    umount2(mnt, MNT_DETACH);
    int ro = mount_small(mnt, "size=64k", MS_RDONLY) == 0;
    if (ro) run_fit(OUT_FILE, &o[3], "--output", out, NULL);
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
    expect_refusal(&o[0], "--output on a full disk", "--output");
    expect_refusal(&o[4], "--output --save-fit on a nearly full disk", "--output");
    expect_refusal(&o[1], "--plot on a full disk", "--plot");
    expect_refusal(&o[2], "--checkpoint on a full disk", "--checkpoint");
    if (ro) expect_refusal(&o[3], "--output on a read-only disk", "cannot create");
    assert_true(tmp_ok);
    assert_true(out_absent);
}

/* Is b[0..n) valid UTF-8 by the C library's decoder? */
static int valid_utf8(const char *b, size_t n)
{
    if (!setlocale(LC_CTYPE, "C.UTF-8")) return -1;
    mbstate_t st;
    memset(&st, 0, sizeof st);
    for (size_t i = 0; i < n;) {
        wchar_t wc;
        size_t k = mbrtowc(&wc, b + i, n - i, &st);
        if (k == (size_t)-1 || k == (size_t)-2) return 0;
        if (wc >= 0xD800 && wc <= 0xDFFF) return 0;
        i += k ? k : 1;
    }
    setlocale(LC_CTYPE, "C");
    return 1;
}

static void json_utf8(void **state)
{
    (void)state;
    char name[600], outp[600];
    pathf(name, sizeof name, "caf\xe9_\xff\xc0\xaf.h5");   /* Latin-1 e-acute, then junk */
    assert_int_equal(link(good, name), 0);
    char keep[600];
    snprintf(keep, sizeof keep, "%s", good);
    snprintf(good, sizeof good, "%s", name);
    outcome o;
    run_fit(OUT_FILE, &o, "--json", NULL);
    snprintf(good, sizeof good, "%s", keep);
    unlink(name);
    print_message("  exit %d %s\n", o.code, o.err);
    assert_int_equal(o.code, 0);
    pathf(outp, sizeof outp, "stdout.txt");
    size_t n = 0;
    unsigned char *b = tc_slurp(outp, &n);
    assert_non_null(b);
    int v = valid_utf8((const char *)b, n);
    if (v < 0) {
        free(b);
        print_message("  SKIPPED: no C.UTF-8 locale to check with\n");
        skip();
    }
    assert_int_equal(v, 1);
    b[n] = '\0';
    assert_non_null(strstr((char *)b, "caf\\u00e9_\\u00ff\\u00c0\\u00af.h5\""));
    free(b);
}

/* Set entries (i, j) of the first matrix of the file to NaN. */
static void poison(const char *path, const size_t (*ij)[2], size_t n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t ds = H5Dopen2(f, "xpcs/twotime/correlation_map/c2_00001", H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t fs = H5Dget_space(ds);
    hsize_t one[2] = {1, 1};
    hid_t ms = H5Screate_simple(2, one, NULL);
    double nan = NAN;
    for (size_t k = 0; k < n; k++) {
        hsize_t at[2] = {ij[k][0], ij[k][1]};
        assert_true(H5Sselect_hyperslab(fs, H5S_SELECT_SET, at, NULL, one, NULL) >= 0);
        assert_true(H5Dwrite(ds, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, &nan) >= 0);
    }
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
    H5Fclose(f);
}

static void too_few_rows(void **state)
{
    (void)state;
    nlsq_xpcs_synth_spec s = spec_of(4, 1);
    s.static_mode = 1;
    unlink(good);
    tc_synth_write(good, &s);
    outcome o;
    run_fit(OUT_FILE, &o, "--mode", "static", NULL);      /* 6 rows, 5 parameters: fits */
    print_message("  clean file: exit %d\n", o.code);
    assert_true(o.code == 0 || o.code == 1);
    const size_t ij[2][2] = {{0, 1}, {1, 3}};
    poison(good, ij, 2);
    run_fit(OUT_FILE, &o, "--mode", "static", NULL);
    expect_refusal(&o, "4 usable entries for 5 parameters", "usable");
}

static void absurd_file_q(void **state)
{
    (void)state;
    nlsq_xpcs_synth_spec s = spec_of(8, 1);
    s.q = 1e300;
    unlink(good);
    tc_synth_write(good, &s);
    outcome o;
    run_fit(OUT_FILE, &o, NULL);
    expect_refusal(&o, "a file with q = 1e300", "q");
    assert_true(o.seconds < 5);
}

static void locked_truncated(void **state)
{
    (void)state;
    /* truncated: the first 3000 bytes */
    size_t n = 0;
    unsigned char *b = tc_slurp(good, &n);
    assert_non_null(b);
    assert_true(n > 3000);
    char cut[600];
    pathf(cut, sizeof cut, "cut.h5");
    tc_write_bytes(cut, b, 3000);
    free(b);
    char keep[600];
    snprintf(keep, sizeof keep, "%s", good);
    snprintf(good, sizeof good, "%s", cut);
    outcome o;
    run_fit(OUT_FILE, &o, NULL);
    snprintf(good, sizeof good, "%s", keep);
    expect_refusal(&o, "a truncated input", "truncated (3000 of the");
    unlink(cut);

    const char *env = getenv("HDF5_USE_FILE_LOCKING");
    if (env && (!strcmp(env, "FALSE") || !strcmp(env, "0"))) {
        print_message("  SKIPPED (locked): HDF5_USE_FILE_LOCKING=%s\n", env);
        return;
    }
    /* locked: a child holds the file open for writing until told to stop */
    int ready[2], stop[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(stop), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        hid_t f = H5Fopen(good, H5F_ACC_RDWR, H5P_DEFAULT);
        char c = f >= 0 ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1) _exit(1);
        if (read(stop[0], &c, 1) < 0) _exit(1);
        if (f >= 0) H5Fclose(f);
        _exit(0);
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    if (c == 'y') run_fit(OUT_FILE, &o, NULL);
    assert_int_equal(write(stop[1], "x", 1), 1);
    int st;
    waitpid(pid, &st, 0);
    close(ready[0]); close(ready[1]); close(stop[0]); close(stop[1]);
    assert_int_equal(c, 'y');
    expect_refusal(&o, "an input locked by a writer", "locked by another process");
}

static void checkpoint_bound(void **state)
{
    (void)state;
    char ck[600], other[600];
    pathf(ck, sizeof ck, "bound.ck");
    pathf(other, sizeof other, "other.h5");
    nlsq_xpcs_synth_spec s = spec_of(GOOD_FRAMES, 3);
    s.seed = 777;                 /* same shape and settings, other data */
    unlink(other);
    tc_synth_write(other, &s);
    outcome o;
    unlink(ck);
    run_fit(OUT_FILE, &o, "--checkpoint", ck, "--checkpoint-every", "1", "--max-iter", "3",
            "--start", "local", NULL);   /* local: more than 3 iterations from the default start */
    assert_int_equal(o.code, 1);  /* stopped by --max-iter, checkpoint left */
    struct stat sb;
    assert_int_equal(stat(ck, &sb), 0);
    run_fit(OUT_FILE, &o, "--resume", ck, "--gap", "3e6", NULL);
    expect_refusal(&o, "resume with another gap", "gap = 2000000; this fit has 3000000");
    run_fit(OUT_FILE, &o, "--resume", ck, "--sigma", "0.02", NULL);
    expect_refusal(&o, "resume with another sigma", "sigma = 0.01");
    run_fit(OUT_FILE, &o, "--resume", ck, "--frames", "0:38", NULL);
    char want[64];
    snprintf(want, sizeof want, "frames = 0:%d; this fit has 0:38", GOOD_FRAMES - 1);
    expect_refusal(&o, "resume with another frame window", want);
    char keep[600];
    snprintf(keep, sizeof keep, "%s", good);
    snprintf(good, sizeof good, "%s", other);
    run_fit(OUT_FILE, &o, "--resume", ck, NULL);
    snprintf(good, sizeof good, "%s", keep);
    expect_refusal(&o, "resume against other data, same shape", "data digest");
    run_fit(OUT_FILE, &o, "--resume", ck, NULL);
    print_message("  same input and settings: exit %d %s\n", o.code, o.err);
    assert_int_equal(o.code, 0);
    unlink(ck);
    unlink(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(output_is_input, fresh_input),
        cmocka_unit_test_setup(output_not_regular, fresh_input),
        cmocka_unit_test_setup(output_dir_checked, fresh_input),
        cmocka_unit_test_setup(resume_fifo, fresh_input),
        cmocka_unit_test_setup(stdout_lost, fresh_input),
        cmocka_unit_test_setup(full_filesystem, fresh_input),
        cmocka_unit_test_setup(json_utf8, fresh_input),
        cmocka_unit_test_setup(too_few_rows, fresh_input),
        cmocka_unit_test_setup(absurd_file_q, fresh_input),
        cmocka_unit_test_setup(locked_truncated, fresh_input),
        cmocka_unit_test_setup(checkpoint_bound, fresh_input),
    };
    return cmocka_run_group_tests_name("xpcs_safety", tests, setup, teardown);
}
