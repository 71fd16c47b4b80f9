/*
 * xpcs_plot.h - PNG figures of a finished fit (fit_xpcs --plot PREFIX).
 *
 * For each chosen angle K: PREFIX_angleKKK.png with three panels (data c2,
 * fitted c2, residual (data - fit) / sigma), each with a colour bar labelled
 * with its limits; time t1 runs to the right, t2 upwards, both from the
 * window's first to its last frame time.  Plus PREFIX_g2.png: g2 versus lag
 * (the mean along the diagonals of data and fit) for every chosen angle, on a
 * log lag axis.
 *
 * Memory is bounded: the matrices are streamed row block by row block and
 * block-averaged into at most 500 x 500 bins per panel (N <= 500: one bin per
 * entry, drawn enlarged); only one angle is held at a time.  Text is drawn
 * with a built-in 5 x 7 bitmap font.  libpng is the only dependency and is
 * linked into the command only.
 */
#ifndef XPCS_PLOT_H
#define XPCS_PLOT_H

#include <stddef.h>

#include "xpcs_output.h"

/** Write the figures.  angles: n_angles distinct angle indices (< r->P).
 *  0, or nonzero with one line in err. */
int xpcs_plot(const char *prefix, const xpcs_report *r, const size_t *angles, size_t n_angles,
              char *err, size_t err_size);

/** 1 when built with libpng (else xpcs_plot only reports that it is not). */
int xpcs_plot_available(void);

/** The default angles: first, middle and last (distinct), into out (3);
 *  returns how many. */
size_t xpcs_plot_default_angles(size_t n_total, size_t *out);

/** The file of one figure: PREFIX_angleKKK.png for angle K, PREFIX_g2.png
 *  for angle = (size_t)-1.  0, or -1 when it does not fit in buf. */
int xpcs_plot_file_name(char *buf, size_t size, const char *prefix, size_t angle);

#endif /* XPCS_PLOT_H */
