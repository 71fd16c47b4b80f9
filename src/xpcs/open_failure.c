/*
 * open_failure.c - why H5Fopen refused a file, in the reader's one line.
 *
 * Read from HDF5's error stack right after the failure (the stack is the
 * calling thread's; the reader holds its HDF5 lock): a file that another
 * process holds open for writing (HDF5 file locking), a file shorter than
 * its superblock says (truncated: the stored and actual sizes named), or a
 * file that is not HDF5 at all / otherwise damaged.
 */
#include "xpcs_common.h"
#include "xpcs_file.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>

typedef struct why {
    int locked, truncated;
    char desc[160];     /* the "truncated file: eof = ..." record */
} why;

static herr_t visit(unsigned n, const H5E_error2_t *e, void *ctx)
{
    (void)n;
    why *w = ctx;
    if (e->min_num == H5E_CANTLOCKFILE) w->locked = 1;
    if (e->min_num == H5E_TRUNCATED) {
        w->truncated = 1;
        snprintf(w->desc, sizeof w->desc, "%s", e->desc ? e->desc : "");
    }
    return 0;
}

void nlsq__xpcs_open_failed(const char *path, char *err, size_t es)
{
    why w = {0, 0, ""};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, visit, &w);
    if (w.locked) {
        xpcs__err(err, es, "%s: cannot open: locked by another process that has it open for "
                  "writing (HDF5 file locking); wait until the writer closes it", path);
        return;
    }
    if (w.truncated) {
        unsigned long long eof = 0, stored = 0;
        const char *a = strstr(w.desc, "eof = "), *b = strstr(w.desc, "stored_eof = ");
        if (a && b && sscanf(a, "eof = %llu", &eof) == 1 && sscanf(b, "stored_eof = %llu", &stored) == 1)
            xpcs__err(err, es, "%s: cannot open: truncated (%llu of the %llu bytes its HDF5 "
                      "superblock announces)", path, eof, stored);
        else
            xpcs__err(err, es, "%s: cannot open: truncated (shorter than its HDF5 superblock "
                      "announces)", path);
        return;
    }
#if H5_VERSION_GE(1, 12, 0)
    htri_t is = H5Fis_accessible(path, H5P_DEFAULT);
#else
    htri_t is = H5Fis_hdf5(path);
#endif
    if (is > 0) xpcs__err(err, es, "%s: cannot open: damaged HDF5 file", path);
    else xpcs__err(err, es, "%s: cannot open: not an HDF5 file", path);
}
