// Deterministic random numbers: xoshiro256** seeded through splitmix64.
// Every consumer owns its own collm_rng (no global state).
#ifndef COLLM_RNG_H
#define COLLM_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} collm_rng;

void collm_rng_seed(collm_rng *rng, uint64_t seed);
uint64_t collm_rng_next(collm_rng *rng);
// Uniform in [0, 1).
double collm_rng_uniform(collm_rng *rng);
// Uniform integer in [0, n).
uint64_t collm_rng_below(collm_rng *rng, uint64_t n);
// Standard normal (Box-Muller).
double collm_rng_normal(collm_rng *rng);
// Fisher-Yates shuffle of an int32 array.
void collm_rng_shuffle_i32(collm_rng *rng, int32_t *a, int64_t n);

#endif
