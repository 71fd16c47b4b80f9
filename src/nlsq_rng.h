/*
 * nlsq_rng.h - the random stream of the project (private, not installed):
 * xoshiro256** seeded through splitmix64, for Adam's batch shuffle (adam.c)
 * and the synthetic XPCS data (xpcs/xpcs_common.h).  Header-only, static:
 * each library carries its own copy of this one definition and exports
 * nothing.  The streams are part of the results (same seed, same bits), so
 * these functions never change.
 */
#ifndef NLSQ_RNG_H
#define NLSQ_RNG_H

#include <stdint.h>

/* The next splitmix64 output of *state (advanced). */
static inline uint64_t nlsq__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* xoshiro256** state s from a 64-bit seed: four splitmix64 outputs. */
static inline void nlsq__xoshiro_seed(uint64_t s[4], uint64_t seed)
{
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++) s[i] = nlsq__splitmix64(&sm);
}

static inline uint64_t nlsq__rotl64(uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }

/* The next xoshiro256** output (s advanced). */
static inline uint64_t nlsq__xoshiro_next(uint64_t s[4])
{
    const uint64_t result = nlsq__rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = nlsq__rotl64(s[3], 45);
    return result;
}

#endif /* NLSQ_RNG_H */
