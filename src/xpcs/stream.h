/*
 * stream.h - row blocks of the XPCS data read ahead by a reader thread
 * (private; stream.c).
 *
 * The data of a streamed model are cut into blocks: angle a, matrix rows
 * [b * rows, (b + 1) * rows), the upper part of each row (columns from the
 * block's first row on).  Blocks are numbered in the model's row order,
 * k = a * n_blocks + b.  A fixed set of buffers (the memory budget) holds
 * blocks; nlsq__xs_acquire returns one, reading it if no one has, and asks the
 * reader thread to read the next ones ahead, so that the HDF5 reads of a
 * pass overlap the evaluation of the rows before them and every block is
 * read once per pass when the workers walk the rows in order.
 */
#ifndef NLSQ_XPCS_STREAM_H
#define NLSQ_XPCS_STREAM_H

#include <stddef.h>

#define XS_HIDDEN __attribute__((visibility("hidden")))

/* Fill out with block (a, b): rows [r0, r0 + nr), each of n - r0 values
 * (row q at value q * (n - r0); values of the stream's elem_size bytes:
 * floats or doubles, as the caller chose).  0 or an nlsq status; may be
 * called from the reader thread and any worker, never two at a time. */
typedef int (*xs_read_fn)(void *ctx, size_t a, size_t r0, size_t nr, void *out);

typedef struct xs_stream xs_stream;

/* n_buffers >= 2 buffers of block_rows * n values of elem_size bytes.
 * threaded: start the reader thread (without it, or when it cannot start,
 * blocks are read by the workers that need them).  0 or NLSQ_ENOMEM. */
XS_HIDDEN int nlsq__xs_create(size_t n_angles, size_t n, size_t block_rows, size_t elem_size,
                              size_t n_buffers, int threaded, xs_read_fn read, void *ctx,
                              xs_stream **out);
XS_HIDDEN void nlsq__xs_free(xs_stream *s);

/* Block of angle a holding matrix row i: its data (row i0 = first row of the
 * block, stride n - i0), held until nlsq__xs_release.  NULL with *rc set when the
 * read failed (*rc from the read function) or no buffer is free. */
XS_HIDDEN const void *nlsq__xs_acquire(xs_stream *s, size_t a, size_t i, size_t *i0, int *rc);
XS_HIDDEN void nlsq__xs_release(xs_stream *s, size_t a, size_t i);

XS_HIDDEN size_t nlsq__xs_block_rows(const xs_stream *s);

#endif
