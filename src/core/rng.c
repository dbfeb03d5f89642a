// xoshiro256** (Blackman & Vigna), seeded by splitmix64.
#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void collm_rng_seed(collm_rng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t collm_rng_next(collm_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double collm_rng_uniform(collm_rng *rng) { return (double)(collm_rng_next(rng) >> 11) * 0x1.0p-53; }

uint64_t collm_rng_below(collm_rng *rng, uint64_t n) {
    if (n == 0) return 0;
    // rejection sampling: unbiased
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = collm_rng_next(rng);
    while (x >= limit);
    return x % n;
}

double collm_rng_normal(collm_rng *rng) {
    double u1 = collm_rng_uniform(rng);
    double u2 = collm_rng_uniform(rng);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void collm_rng_shuffle_i32(collm_rng *rng, int32_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)collm_rng_below(rng, (uint64_t)i + 1);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
