// Kernel-selection settings read from the environment: debugging and
// benchmarking knobs, never needed for a correct or fast run. One table
// (env.c) names each setting's values, so the readers below and
// collm_check_environment() (include/collm/threadpool.h) agree on them.
#ifndef COLLM_CORE_ENV_H
#define COLLM_CORE_ENV_H

typedef enum {
    COLLM_ENV_ISA,  // COLLM_ISA: native | baseline | x86-64-v3 | avx2 (= x86-64-v3)
    COLLM_ENV_GEMM, // COLLM_GEMM: auto | blas | own
    COLLM_ENV_QMM,  // COLLM_QMM: auto | dot | rows | sgemm
} collm_env_setting;

// Values, in the order of the table: the index a reader gets.
enum { COLLM_ENV_ISA_NATIVE, COLLM_ENV_ISA_BASELINE, COLLM_ENV_ISA_V3, COLLM_ENV_ISA_AVX2 };
enum { COLLM_ENV_GEMM_AUTO, COLLM_ENV_GEMM_BLAS, COLLM_ENV_GEMM_OWN };
enum { COLLM_ENV_QMM_AUTO, COLLM_ENV_QMM_DOT, COLLM_ENV_QMM_ROWS, COLLM_ENV_QMM_SGEMM };

// The index of the setting's value in its list; 0 (the default) when it is
// unset, empty or not one of them (collm_check_environment reports that).
// Reads the environment on every call: callers cache. Safe from any thread
// while nothing calls setenv.
int collm_env_setting_value(collm_env_setting s);

#endif
