/*
 * fit_xpcs_paths.c - fit_xpcs's files checked before any work (see
 * fit_xpcs_paths.h and safe_io.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "fit_xpcs_paths.h"

#include "safe_io.h"
#include "xpcs_plot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILES (2 + FIT_XPCS_MAX_PLOT_ANGLES + 3)

/* The files met so far: inputs first, then each output once checked. */
typedef struct file_set {
    safe_input f[MAX_FILES];
    size_t n;
} file_set;

static void inputs_of(const fit_xpcs_args *a, file_set *s)
{
    s->n = 0;
    s->f[s->n++] = (safe_input){"input", a->input};
    if (a->resume) s->f[s->n++] = (safe_input){"--resume", a->resume};
}

/* Check one output against the set (the same name or the same file), then
 * add it; skip_resume: the output may be the --resume file. */
static int check_one(file_set *s, const char *flag, const char *path, int skip_resume,
                     char *err, size_t es)
{
    safe_input others[MAX_FILES];
    size_t n = 0;
    for (size_t k = 0; k < s->n; k++) {
        if (skip_resume && !strcmp(s->f[k].flag, "--resume")) continue;
        if (!strcmp(s->f[k].path, path)) {
            snprintf(err, es, "%s %s: is also the %s file", flag, path, s->f[k].flag);
            return -1;
        }
        others[n++] = s->f[k];
    }
    if (safe_check_output(flag, path, others, n, err, es) != 0) return -1;
    if (s->n < MAX_FILES) s->f[s->n++] = (safe_input){flag, path};
    return 0;
}

static int check_outputs(const fit_xpcs_args *a, file_set *s, char *err, size_t es)
{
    inputs_of(a, s);
    if (a->output && check_one(s, "--output", a->output, 0, err, es)) return -1;
    if (a->checkpoint && check_one(s, "--checkpoint", a->checkpoint, 1, err, es)) return -1;
    return 0;
}

int fit_xpcs_check_outputs(const fit_xpcs_args *a, char *err, size_t es)
{
    file_set s;
    return check_outputs(a, &s, err, es);
}

int fit_xpcs_check_plot_files(const fit_xpcs_args *a, const size_t *angles, size_t n_angles,
                              char *err, size_t es)
{
    if (!a->plot) return 0;
    file_set s;
    if (check_outputs(a, &s, err, es)) return -1;
    size_t len = strlen(a->plot) + 32;
    char *names = malloc(len * (n_angles + 1));
    if (!names) {
        snprintf(err, es, "--plot %s: out of memory", a->plot);
        return -1;
    }
    int rc = 0;
    for (size_t k = 0; k <= n_angles && rc == 0; k++) {
        char *name = names + k * len;
        xpcs_plot_file_name(name, len, a->plot, k < n_angles ? angles[k] : (size_t)-1);
        rc = check_one(&s, "--plot", name, 0, err, es);
    }
    free(names);
    return rc;
}
