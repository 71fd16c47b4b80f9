/*
 * nlsq_fnv1a.h - FNV-1a 64 (private, not installed): the checksum of
 * checkpoint files (checkpoint.c) and the data digest of nlsq_xpcs
 * (xpcs/digest.c).  Header-only, static: each library carries its own copy
 * of this one definition and exports nothing.
 */
#ifndef NLSQ_FNV1A_H
#define NLSQ_FNV1A_H

#include <stddef.h>
#include <stdint.h>

#define NLSQ__FNV_OFFSET 0xcbf29ce484222325ULL

/* h folded with the n bytes at data (start from NLSQ__FNV_OFFSET). */
static inline uint64_t nlsq__fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *c = data;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#endif /* NLSQ_FNV1A_H */
