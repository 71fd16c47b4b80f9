/*
 * xpcs_synth - write a synthetic APS 8-ID-I two-time correlation file.
 *
 *   xpcs_synth OUT.h5 [--layout aps-u|aps-old] [--frames N] [--angles P]
 *              [--q Q] [--gap L] [--dt DT] [--k0 K] [--noise S] [--seed K]
 *              [--frame-share F]   (F of the noise variance shared by frames)
 *              [--float64] [--extra-q K] [--static]
 *              [--lzf]             (LZF, one (N, N) chunk per matrix, as the beamline)
 *              [--empty-angle K]   (angle K of the first q has no matrix: a masked bin)
 *              [--D0 v] [--alpha v] [--D_offset v] [--gamma_dot_0 v]
 *              [--beta v] [--gamma_dot_offset v] [--phi0 v]
 *
 * Defaults: the 23M-point benchmark problem of docs/xpcs-model.md (23 angles, N = 1001,
 * q = 0.01, L = 2e6, dt = 1e-3, noise 0.01, seed 42, APS-U, float32).
 * Options take "--name value" or "--name=value".  Prints one summary line;
 * exit 0 on success, 1 if writing failed, 2 on bad usage.
 */
#include "nlsq_xpcs.h"
#include "nlsq_xpcs_synth.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const phys_names[NLSQ_XPCS_N_PHYS] = {
    "D0", "alpha", "D_offset", "gamma_dot_0", "beta", "gamma_dot_offset", "phi0"};

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: xpcs_synth OUT.h5 [--layout aps-u|aps-old] [--frames N] [--angles P]\n"
            "                  [--q Q] [--gap L] [--dt DT] [--k0 K] [--noise S] [--seed K]\n"
            "                  [--frame-share F]\n"
            "                  [--float64] [--extra-q K] [--static] [--lzf] [--empty-angle K]\n"
            "                  [--D0 v] [--alpha v] [--D_offset v] [--gamma_dot_0 v]\n"
            "                  [--beta v] [--gamma_dot_offset v] [--phi0 v]\n");
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "xpcs_synth: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try --help)\n");
    return 2;
}

static int parse_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || x > UINT64_MAX) return -1;
    *v = (uint64_t)x;
    return 0;
}

static int parse_size(const char *s, size_t *v)
{
    uint64_t x;
    if (parse_u64(s, &x) < 0 || x > SIZE_MAX) return -1;
    *v = (size_t)x;
    return 0;
}

static int takes_value(const char *opt)
{
    static const char *const opts[] = {"layout", "frames", "angles", "extra-q", "k0",
                                       "seed", "q", "gap", "dt", "noise", "frame-share",
                                       "empty-angle"};
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
        if (strcmp(opt, opts[k]) == 0) return 1;
    for (int k = 0; k < NLSQ_XPCS_N_PHYS; k++)
        if (strcmp(opt, phys_names[k]) == 0) return 1;
    return 0;
}

/* Option `name` (--NAME, one that takes_value) set to val: 0, or the exit
 * code 2 after one line on stderr. */
static int set_option(nlsq_xpcs_synth_spec *sp, const char *name, const char *val)
{
    const char *opt = name + 2;
    int ok = 0;
    if (strcmp(opt, "layout") == 0) {
        ok = 1;
        if (strcmp(val, "aps-u") == 0) sp->layout = NLSQ_XPCS_LAYOUT_APS_U;
        else if (strcmp(val, "aps-old") == 0) sp->layout = NLSQ_XPCS_LAYOUT_APS_OLD;
        else return bad("--layout must be aps-u or aps-old, not '%s'", val);
    } else if (strcmp(opt, "frames") == 0) {
        ok = parse_size(val, &sp->n_frames) == 0 && sp->n_frames >= 1;
    } else if (strcmp(opt, "angles") == 0) {
        ok = parse_size(val, &sp->n_angles) == 0 && sp->n_angles >= 1;
    } else if (strcmp(opt, "empty-angle") == 0) {
        ok = parse_size(val, &sp->empty_angle) == 0;
        sp->empty_bin = 1;
    } else if (strcmp(opt, "extra-q") == 0) {
        ok = parse_size(val, &sp->n_extra_q) == 0;
    } else if (strcmp(opt, "k0") == 0) {
        ok = parse_size(val, &sp->k0) == 0;
    } else if (strcmp(opt, "seed") == 0) {
        ok = parse_u64(val, &sp->seed) == 0;
    } else if (strcmp(opt, "q") == 0) {
        ok = parse_double(val, &sp->q) == 0 && sp->q > 0;
    } else if (strcmp(opt, "gap") == 0) {
        ok = parse_double(val, &sp->gap) == 0;
    } else if (strcmp(opt, "dt") == 0) {
        ok = parse_double(val, &sp->dt) == 0 && sp->dt > 0;
    } else if (strcmp(opt, "frame-share") == 0) {
        ok = parse_double(val, &sp->frame_share) == 0 && sp->frame_share >= 0 && sp->frame_share <= 1;
    } else if (strcmp(opt, "noise") == 0) {
        ok = parse_double(val, &sp->noise_sigma) == 0 && sp->noise_sigma >= 0;
    } else {
        for (int k = 0; k < NLSQ_XPCS_N_PHYS; k++)
            if (strcmp(opt, phys_names[k]) == 0) ok = parse_double(val, &sp->params[k]) == 0;
    }
    return ok ? 0 : bad("bad value '%s' for %s", val, name);
}

int main(int argc, char **argv)
{
    nlsq_xpcs_synth_spec s;
    const char *out = NULL;
    nlsq_xpcs_synth_spec_default(&s);

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (out) return bad("unexpected argument '%s'", arg);
            out = arg;
            continue;
        }
        /* split --name=value */
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (len >= sizeof name) return bad("unknown option '%s'", arg);
        memcpy(name, arg, len);
        name[len] = '\0';
        const char *opt = name + 2;

        /* flags */
        if (strcmp(opt, "float64") == 0 || strcmp(opt, "static") == 0 || strcmp(opt, "lzf") == 0) {
            if (eq) return bad("option '--%s' takes no value", opt);
            if (opt[0] == 'f') s.float32 = 0;
            else if (opt[0] == 'l') s.lzf = 1;
            else s.static_mode = 1;
            continue;
        }
        if (!takes_value(opt)) return bad("unknown option '%s'", name);
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc) return bad("option '%s' needs a value", name);
            val = argv[++i];
        }

        int e = set_option(&s, name, val);
        if (e) return e;
    }
    if (!out) return bad("missing output file OUT.h5");

    char err[512];
    int rc = nlsq_xpcs_synth_write(out, &s, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "xpcs_synth: %s\n", err[0] ? err : "writing failed");
        return rc == NLSQ_EINVAL ? 2 : 1;
    }
    size_t nq = s.n_extra_q + 1;
    printf("%s: %s, %zu q x %zu angles, %zu x %zu %s, q = %g, gap = %g, dt = %g, %s, "
           "noise %g, seed %" PRIu64 "\n",
           out, s.layout == NLSQ_XPCS_LAYOUT_APS_U ? "APS-U" : "APS old", nq, s.n_angles,
           s.n_frames, s.n_frames, s.float32 ? "float32" : "float64", s.q, s.gap, s.dt,
           s.static_mode ? "static" : "laminar", s.noise_sigma, s.seed);
    return 0;
}
