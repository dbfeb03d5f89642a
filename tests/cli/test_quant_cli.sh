#!/usr/bin/env bash
# A quantised base model end to end: stage-1 LoRA training on a llama.cpp
# Q4_K_M file (the base stays frozen and quantised), `collm logits --ckpt`
# applying the checkpoint's LoRA (beside the quantised weights; folded into
# an F32 base), stage 1 then stage 2 from it, and the clear refusal of full
# fine-tuning on a quantised base.
. "$(dirname "$0")/lib.sh" quant
BIN=${COLLM_BIN:-build/collm}
SHARED=${COLLM_SHARED:-../shared}
T=${COLLM_TEST_TMP:-build/test-tmp}/quant
rm -rf "$T" && mkdir -p "$T"
Q="$SHARED/testvectors/quant/models/llama-256-Q4_K_M.gguf"
toks="1 403 407 261 378 432"

"$BIN" synth --users 30 --items 40 --seed 5 --out "$T/data" >/dev/null 2>&1
check "synth" [ $? -eq 0 ]
common=(--data "$T/data" --batch 4 --steps-per-epoch 3 --max-epochs 1 --patience 5 --eval-rows 16 --warmup-steps 1
        --threads 2 --quiet)
"$BIN" train --stage 1 --base "$Q" --lora-rank 4 --lora-targets q,v,down "${common[@]}" --out "$T/s1.gguf" >"$T/s1.log" 2>&1
check "stage 1 LoRA on a Q4_K_M base (exit $?)" [ -s "$T/s1.gguf" ]
"$BIN" logits --model "$Q" --tokens "$toks" --out "$T/base.f32" >/dev/null 2>&1
check "logits of the base" [ $? -eq 0 ]
"$BIN" logits --ckpt "$T/s1.gguf" --tokens "$toks" --out "$T/lora.f32" >/dev/null 2>&1
check "logits --ckpt" [ $? -eq 0 ]
/usr/bin/python3 - "$T/base.f32" "$T/lora.f32" <<'PY'
import sys, numpy as np
a, b = (np.fromfile(p, dtype=np.float32) for p in sys.argv[1:3])
d = np.abs(a - b).max()
sys.exit(0 if a.shape == b.shape == (6 * 512,) and 1e-6 < d < 1.0 else 1)
PY
check "--ckpt logits differ from the base's by the trained adapter" [ $? -eq 0 ]
out=$("$BIN" logits --model "$Q" --ckpt "$T/s1.gguf" --tokens "$toks" --out "$T/x.f32" 2>&1); rc=$?
check "--model with --ckpt refused" [ $rc -eq 1 ]
check "--model with --ckpt: message" grep -q "give one of --model and --ckpt" <<<"$out"

# stage 2 from the stage-1 checkpoint: the quantised base keeps the stage-1 adapter beside it
"$BIN" train-cf --model mf --data "$T/data" --out "$T/mf.gguf" --dim 8 --max-epochs 3 >/dev/null 2>&1
check "train-cf" [ $? -eq 0 ]
"$BIN" train --stage 2 --init-from "$T/s1.gguf" --cf "$T/mf.gguf" "${common[@]}" --out "$T/s2.gguf" >"$T/s2.log" 2>&1
check "stage 2 on the quantised base (exit $?)" [ -s "$T/s2.gguf" ]
out=$("$BIN" train --stage 2 --base "$Q" --cf "$T/mf.gguf" --train-llm "${common[@]}" --out "$T/s2full.gguf" 2>&1); rc=$?
check "--train-llm on a quantised base refused (exit $rc)" [ $rc -ne 0 ]
check "--train-llm refusal says why" grep -q "quantised and stays frozen" <<<"$out"
check "no checkpoint from the refused run" [ ! -e "$T/s2full.gguf" ]
finish
