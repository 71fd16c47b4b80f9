/*
 * xpcs_common.h - private helpers of the XPCS module (not installed).
 *
 *   xpcs__err          one-line error message into a caller buffer
 *   nlsq__xpcs_h5_lock      one process-wide lock around HDF5 calls (the serial
 *                      HDF5 library is not thread-safe; reader.c owns it)
 *   xpcs__rng_*        deterministic xoshiro256** stream seeded by splitmix64,
 *                      Box-Muller normal deviates
 *
 * The forward model itself is physics.h's.
 *
 * Everything is static inline (or hidden), so including this header costs
 * nothing in a file that uses only part of it.
 */
#ifndef NLSQ_XPCS_COMMON_H
#define NLSQ_XPCS_COMMON_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nlsq_rng.h"
#include "physics.h"

#if defined(__GNUC__)
#define XPCS__HIDDEN __attribute__((visibility("hidden")))
#define XPCS__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define XPCS__HIDDEN
#define XPCS__PRINTF(a, b)
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/** Format one line into err (when err != NULL and size > 0); truncates. */
static inline void xpcs__err(char *err, size_t size, const char *fmt, ...) XPCS__PRINTF(3, 4);
static inline void xpcs__err(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    if (!err || size == 0) return;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* HDF5 serialisation (defined in reader.c)                                  */
/* ------------------------------------------------------------------------ */

/* Not recursive: every public reader/writer function takes it, so never call
 * one of them while holding it. */
XPCS__HIDDEN void nlsq__xpcs_h5_lock(void);
XPCS__HIDDEN void nlsq__xpcs_h5_unlock(void);

/* The upper part of rows [row0, row0 + nrows) of angle a's full matrix in the
 * selection's frame window (n frames): row r's columns [row0, n) at
 * out[r * (n - row0) + (c - row0)], floats (f32 != 0: for a float32 file,
 * read as stored) or doubles; only entries c >= row0 + r are data.
 * nlsq_xpcs_read_rows' checks and errors.  For the model's streamed row
 * blocks: a block that follows the file's chunk rows reads each chunk once. */
struct nlsq_xpcs_file;
struct nlsq_xpcs_selection;
XPCS__HIDDEN int nlsq__xpcs_read_upper_rows(struct nlsq_xpcs_file *f,
                                       const struct nlsq_xpcs_selection *sel, size_t a,
                                       size_t row0, size_t nrows, int f32, void *out,
                                       char *err, size_t es);

/* v clamped into [lo, hi] (NaN stays NaN). */
static inline double xpcs__clamp(double v, double lo, double hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ------------------------------------------------------------------------ */
/* Random numbers                                                            */
/* ------------------------------------------------------------------------ */

/** A seed for the stream of (seed, a, b, c), e.g. (seed, q index, angle, row). */
static inline uint64_t xpcs__mix_seed(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t s = seed;
    uint64_t h = nlsq__splitmix64(&s);
    s = h ^ a; h = nlsq__splitmix64(&s);
    s = h ^ b; h = nlsq__splitmix64(&s);
    s = h ^ c; h = nlsq__splitmix64(&s);
    return h;
}

typedef struct xpcs__rng {
    uint64_t s[4];
    int has_spare;
    double spare;
} xpcs__rng;

static inline void xpcs__rng_seed(xpcs__rng *r, uint64_t seed)
{
    nlsq__xoshiro_seed(r->s, seed);
    r->has_spare = 0;
    r->spare = 0.0;
}


/** xoshiro256** */
static inline uint64_t xpcs__rng_next(xpcs__rng *r)
{
    return nlsq__xoshiro_next(r->s);
}

/** Uniform in [0, 1). */
static inline double xpcs__rng_uniform(xpcs__rng *r)
{
    return (double)(xpcs__rng_next(r) >> 11) * 0x1.0p-53;
}

/** Standard normal deviate (Box-Muller, both values used). */
static inline double xpcs__rng_normal(xpcs__rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = 1.0 - xpcs__rng_uniform(r);   /* (0, 1] */
    double u2 = xpcs__rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    r->spare = rad * sin(2.0 * NLSQ__XPCS_PI * u2);
    r->has_spare = 1;
    return rad * cos(2.0 * NLSQ__XPCS_PI * u2);
}

#endif /* NLSQ_XPCS_COMMON_H */
