// LoRA adapters (method.md §6.1): for a frozen projection W (out, in),
//   y = x·W^T + s · dropout(x)·A^T·B^T,   A (r, in), B (out, r), s = alpha / r.
// Init as peft 0.4: A kaiming-uniform(a=√5) → U(±1/sqrt(in)), B = 0.
// Targets are any of the seven projections of a Llama block.
#ifndef COLLM_LORA_H
#define COLLM_LORA_H

#include "collm/version.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif


typedef enum {
    COLLM_LORA_Q = 0,
    COLLM_LORA_K,
    COLLM_LORA_V,
    COLLM_LORA_O,
    COLLM_LORA_GATE,
    COLLM_LORA_UP,
    COLLM_LORA_DOWN,
    COLLM_LORA_N_TARGETS
} collm_lora_target;

// The llama.cpp tensor name stem of each target ("attn_q", ..., "ffn_down").
COLLM_API const char *collm_lora_target_gguf_name(collm_lora_target t);
// Parses "q,v" / "q,k,v,o,gate,up,down" into a bit mask; -1 on an unknown name.
COLLM_API int collm_lora_parse_targets(const char *list, unsigned *mask);

#ifdef __cplusplus
}
#endif

#endif
