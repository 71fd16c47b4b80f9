/*
 * digest.c - nlsq_xpcs_data_digest: a 64-bit digest of the selected data
 * (part 1 of nlsq_xpcs.h), what an application binds a checkpoint to
 * (fit_xpcs's checkpoint fingerprint).
 *
 * FNV-1a 64 (nlsq_fnv1a.h) over every selected matrix row as
 * nlsq_xpcs_read_rows returns it (float64, angle by angle, rows in order):
 * the value depends on the data in the window only, not on the file's name,
 * layout, chunking or compression, nor on the block size used here.
 */
#include "nlsq_xpcs.h"
#include "nlsq_fnv1a.h"
#include "xpcs_file.h"

#include <stdlib.h>

#define DIGEST_ROWS 64

int nlsq_xpcs_data_digest(nlsq_xpcs_file *f, const nlsq_xpcs_selection *sel, uint64_t *digest,
                          char *err, size_t es)
{
    if (err && es) err[0] = '\0';
    if (!f || !sel || !digest || sel->first_frame > sel->last_frame) {
        xpcs__err(err, es, "nlsq_xpcs_data_digest: NULL argument or empty frame window");
        return NLSQ_EINVAL;
    }
    const size_t n = sel->last_frame - sel->first_frame + 1;
    double *buf = n <= SIZE_MAX / sizeof(double) / DIGEST_ROWS
                  ? malloc(sizeof(double) * DIGEST_ROWS * n) : NULL;
    if (!buf) {
        xpcs__err(err, es, "%s: out of memory for the data digest", f->path);
        return NLSQ_ENOMEM;
    }
    uint64_t h = NLSQ__FNV_OFFSET;
    int rc = 0;
    for (size_t a = 0; a < sel->n_angles && rc == 0; a++)
        for (size_t r0 = 0; r0 < n && rc == 0; r0 += DIGEST_ROWS) {
            size_t nr = n - r0 < DIGEST_ROWS ? n - r0 : DIGEST_ROWS;
            rc = nlsq_xpcs_read_rows(f, sel, a, r0, nr, buf, err, es);
            if (rc == 0) h = nlsq__fnv1a(h, buf, sizeof(double) * nr * n);
        }
    free(buf);
    if (rc == 0) *digest = h;
    return rc;
}
