/*
 * fit_xpcs_fingerprint.h - what a fit_xpcs checkpoint is bound to.
 *
 * The fingerprint is text, one "key=value" line each: a digest of the data
 * the fit reads (FNV-1a 64 over every selected matrix row as read, in order:
 * one extra pass over the data, made only with --checkpoint or --resume),
 * the file's size, q, the angles, the frame window, dt, gap, sigma, k0,
 * mode, method, triangle, include_diagonal and the problem size (rows,
 * parameters).  It is stored as the checkpoint's tag (nlsq_options
 * .checkpoint_tag; the library refuses a resume with another tag) and
 * compared line by line before a resume, so that the refusal names what
 * differs.  The input's name is not part of it: a copied or renamed file
 * with the same data resumes.
 */
#ifndef FIT_XPCS_FINGERPRINT_H
#define FIT_XPCS_FINGERPRINT_H

#include <stddef.h>

#include "fit_xpcs_args.h"
#include "nlsq.h"
#include "nlsq_xpcs.h"

/* The fingerprint (malloc'ed text), or NULL with one line in err. */
char *fit_xpcs_fingerprint(const fit_xpcs_args *a, nlsq_xpcs_file *f,
                           const nlsq_xpcs_selection *sel, const nlsq_xpcs_config *cfg,
                           const nlsq_problem *pb, char *err, size_t es);

/* Compare the --resume file's stored tag with mine.  0 when they are equal;
 * else -1 with one line in err naming the first setting that differs (or
 * the library's reason when the file cannot be read). */
int fit_xpcs_fingerprint_check(const char *resume, const char *mine, char *err, size_t es);

#endif /* FIT_XPCS_FINGERPRINT_H */
