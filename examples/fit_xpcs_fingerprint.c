/*
 * fit_xpcs_fingerprint.c - what a fit_xpcs checkpoint is bound to (see
 * fit_xpcs_fingerprint.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "fit_xpcs_fingerprint.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *fit_xpcs_fingerprint(const fit_xpcs_args *a, nlsq_xpcs_file *f,
                           const nlsq_xpcs_selection *sel, const nlsq_xpcs_config *cfg,
                           const nlsq_problem *pb, char *err, size_t es)
{
    uint64_t h;
    if (nlsq_xpcs_data_digest(f, sel, &h, err, es) != 0) return NULL;
    struct stat st;
    long long fsize = stat(a->input, &st) == 0 ? (long long)st.st_size : -1;
    size_t cap = 1024 + 26 * sel->n_angles;
    char *t = malloc(cap);
    if (!t) {
        snprintf(err, es, "out of memory for the checkpoint fingerprint");
        return NULL;
    }
    size_t o = (size_t)snprintf(t, cap,
        "fit_xpcs checkpoint fingerprint 1\nq=%.17g\n"
        "frames=%zu:%zu\ndt=%.17g\ngap=%.17g\nsigma=%.17g\nk0=%zu\nmode=%s\nmethod=%s\n"
        "triangle=%s\ninclude_diagonal=%d\nrows=%zu\nparameters=%zu\nangles=%zu\nphi=",
        cfg->q, sel->first_frame, sel->last_frame, cfg->dt,
        cfg->mode == NLSQ_XPCS_LAMINAR ? cfg->gap : 0.0, cfg->sigma, cfg->k0,
        cfg->mode == NLSQ_XPCS_STATIC ? "static" : "laminar", a->method,
        cfg->triangle == NLSQ_XPCS_FULL ? "full" : "upper", cfg->include_diagonal,
        pb->n_rows, pb->n_params, sel->n_angles);
    for (size_t k = 0; k < sel->n_angles && o < cap; k++)
        o += (size_t)snprintf(t + o, cap - o, "%s%.17g", k ? "," : "", sel->phi[k]);
    /* the data last: a setting that differs is named before the digest */
    if (o < cap) snprintf(t + o, cap - o, "\nfile size=%lld\ndata digest=%016llx\n", fsize,
                          (unsigned long long)h);
    return t;
}

/* The value of key in text ("key=value\n" lines), into v (size vs). */
static int value_of(const char *text, size_t n, const char *key, size_t klen, char *v, size_t vs)
{
    for (const char *l = text; l < text + n;) {
        const char *nl = memchr(l, '\n', (size_t)(text + n - l));
        size_t len = nl ? (size_t)(nl - l) : (size_t)(text + n - l);
        if (len > klen && !memcmp(l, key, klen) && l[klen] == '=') {
            snprintf(v, vs, "%.*s", (int)(len - klen - 1), l + klen + 1);
            return 0;
        }
        l += len + 1;
    }
    return -1;
}

int fit_xpcs_fingerprint_check(const char *resume, const char *mine, char *err, size_t es)
{
    char *stored = malloc(NLSQ_CHECKPOINT_TAG_MAX);
    size_t n = 0;
    nlsq_result res;
    memset(&res, 0, sizeof res);
    if (!stored) {
        snprintf(err, es, "--resume %s: out of memory", resume);
        return -1;
    }
    if (nlsq_checkpoint_tag(resume, stored, NLSQ_CHECKPOINT_TAG_MAX, &n, &res) != 0) {
        snprintf(err, es, "--resume %s: %s", resume, res.message);
        free(stored);
        return -1;
    }
    int rc = 0;
    size_t mlen = strlen(mine);
    if (n != mlen || memcmp(stored, mine, n) != 0) {
        rc = -1;
        snprintf(err, es, "--resume %s: the checkpoint was written %s", resume,
                 n ? "for another fit" : "without a fingerprint of its data (an older fit_xpcs?)");
        for (const char *l = mine; n && *l;) {   /* name the first setting that differs */
            const char *eq = strchr(l, '='), *nl = strchr(l, '\n');
            if (!nl) break;
            char here[256], there[256];
            if (eq && eq < nl) {
                size_t klen = (size_t)(eq - l);
                snprintf(here, sizeof here, "%.*s", (int)(nl - eq - 1), eq + 1);
                if (value_of(stored, n, l, klen, there, sizeof there) != 0) snprintf(there, sizeof there, "(none)");
                if (strcmp(here, there) != 0) {
                    snprintf(err, es, "--resume %s: the checkpoint was written for %.*s = %s; "
                             "this fit has %s", resume, (int)klen, l, there, here);
                    break;
                }
            }
            l = nl + 1;
        }
    }
    free(stored);
    return rc;
}
