// Kernel-selection settings from the environment (see core/env.h).
#include "core/env.h"

#include "collm/error.h"
#include "collm/threadpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENV_MAX_VALUES 5

static const struct {
    const char *name;
    const char *values[ENV_MAX_VALUES]; // [0]: the default; NULL-terminated
} settings[] = {
    [COLLM_ENV_ISA] = {"COLLM_ISA", {"native", "baseline", "x86-64-v3", "avx2", NULL}},
    [COLLM_ENV_GEMM] = {"COLLM_GEMM", {"auto", "blas", "own", NULL}},
    [COLLM_ENV_QMM] = {"COLLM_QMM", {"auto", "dot", "rows", "sgemm", NULL}},
};

// Index of the value, 0 when unset or empty, -1 when unknown.
static int lookup(collm_env_setting s) {
    const char *v = getenv(settings[s].name);
    if (!v || !*v) return 0;
    for (int i = 0; i < ENV_MAX_VALUES && settings[s].values[i]; i++)
        if (strcmp(v, settings[s].values[i]) == 0) return i;
    return -1;
}

int collm_env_setting_value(collm_env_setting s) {
    int i = lookup(s);
    return i < 0 ? 0 : i;
}

int collm_check_environment(void) {
    for (int s = 0; s < (int)(sizeof settings / sizeof settings[0]); s++) {
        if (lookup((collm_env_setting)s) >= 0) continue;
        char list[128] = "";
        for (int i = 0; i < ENV_MAX_VALUES && settings[s].values[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", settings[s].values[i]);
        return collm_error(COLLM_ERR_ARG, "%s='%.64s' is not one of: %s (a kernel-selection setting; unset it for %s)",
                           settings[s].name, getenv(settings[s].name), list, settings[s].values[0]);
    }
    return COLLM_OK;
}
