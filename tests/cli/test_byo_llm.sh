#!/usr/bin/env bash
# "Bring your own LLM": GGUF files that are valid but do not describe a
# model collm can run (edited with gguf_edit.py) must be refused by every
# command that loads a base, in one line that names the file and the problem.
. "$(dirname "$0")/lib.sh" byo_llm
T=$TMP
rm -rf "$T" && mkdir -p "$T"
EDIT="python3 $(dirname "$0")/gguf_edit.py"
S=$SHARED/models/stories260K.gguf # 512 tokens, 512 embedding rows

run "$BIN" synth --users 40 --items 60 --seed 5 --out "$T/data"
train=(train --stage 1 --lora-rank 4 --data "$T/data" --batch 8 --steps-per-epoch 1 --max-epochs 1 --eval-rows 8
       --warmup-steps 0 --threads 1)

# a tokenizer larger than the embedding (another model's vocabulary, vocab_size
# kept at the rows): its ids past 511 have no embedding row
run $EDIT "$S" "$T/bigvocab.gguf" --take tokenizer. "$SHARED/models/llama-2-tiny-random.gguf" --set llama.vocab_size u32 512
expect_error "train: tokenizer larger than token_embd" "bigvocab.gguf: the tokenizer has 32000 tokens but the model only 512" \
  "$BIN" "${train[@]}" --base "$T/bigvocab.gguf" --out "$T/never.gguf"
check "train: nothing written" [ ! -e "$T/never.gguf" ]
check "info: not a base (tokenizer larger than token_embd)" \
  grep -q "base model: no: the tokenizer has 32000 tokens but token_embd.weight only 512 rows" <("$BIN" info "$T/bigvocab.gguf")

# partial RoPE (rope.dimension_count 4 < head_dim 8): llama.cpp refuses such a
# llama file ("invalid n_rot"); collm ran it and wrote logits nothing checks
run $EDIT "$S" "$T/rope4.gguf" --set llama.rope.dimension_count u32 4
expect_error "logits: partial RoPE" "rope4.gguf: llama needs rope.dimension_count == head_dim \\(4 != 8\\)" \
  "$BIN" logits --model "$T/rope4.gguf" --tokens "1 2 3" --out "$T/never.f32"
check "logits: nothing written" [ ! -e "$T/never.f32" ]

# `collm info` runs the loader's header checks: it said "base model: yes" for
# files every command then refused (hyper-parameters that disagree with each
# other or with the tensors)
run $EDIT "$S" "$T/nhkv3.gguf" --set llama.attention.head_count_kv u32 3
run $EDIT "$S" "$T/wide.gguf" --set llama.feed_forward_length u32 128
check "info: n_head_kv not dividing n_head is no base" \
  grep -q "base model: no: .*nhkv3.gguf: n_head 8 is not a multiple of n_head_kv 3" <("$BIN" info "$T/nhkv3.gguf")
check "info: n_ff against the tensor shapes is no base" \
  grep -q "base model: no: .*wide.gguf: tensor 'blk.0.ffn_gate.weight' has shape \[64, 172, 1, 1\], expected \[64, 128\]" \
  <("$BIN" info "$T/wide.gguf")
check "info: the model itself is a base" grep -q "base model: yes: llama, 5 layers" <("$BIN" info "$S")
expect_error "train: n_ff against the tensor shapes" "wide.gguf: tensor 'blk.0.ffn_gate.weight' has shape" \
  "$BIN" "${train[@]}" --base "$T/wide.gguf" --out "$T/never.gguf"

# float hyper-parameters that are no numbers: a NaN, negative or zero RoPE base
# silently ran as 10000, an infinite rms epsilon gave all-zero logits
for v in nan -5 0 inf; do
  run $EDIT "$S" "$T/base.gguf" --set llama.rope.freq_base f32 "$v"
  expect_error "logits: rope.freq_base $v" "base.gguf: llama.rope.freq_base = .* must be finite and > 0" \
    "$BIN" logits --model "$T/base.gguf" --tokens "1 2 3" --out "$T/never.f32"
done
run $EDIT "$S" "$T/eps.gguf" --set llama.attention.layer_norm_rms_epsilon f32 inf
expect_error "logits: rms epsilon inf" "eps.gguf: rms epsilon inf must be finite and > 0" \
  "$BIN" logits --model "$T/eps.gguf" --tokens "1 2 3" --out "$T/never.f32"
check "logits: nothing written" [ ! -e "$T/never.f32" ]

# RoPE scaling as llama.cpp reads it: a factor without a type key is linear
# scaling (collm ran it unscaled), the older rope.scale_linear key too; type
# "none" or a factor of 1 does not scale
run $EDIT "$S" "$T/factor.gguf" --set llama.rope.scaling.factor f32 4
expect_error "logits: rope.scaling.factor without a type" \
  "factor.gguf: RoPE scaling \\(llama.rope.scaling.type 'linear', factor 4\\) is not supported" \
  "$BIN" logits --model "$T/factor.gguf" --tokens "1 2 3" --out "$T/never.f32"
run $EDIT "$S" "$T/factor.gguf" --set llama.rope.scale_linear f32 2
expect_error "logits: rope.scale_linear" "factor.gguf: RoPE scaling .*factor 2\\) is not supported" \
  "$BIN" logits --model "$T/factor.gguf" --tokens "1 2 3" --out "$T/never.f32"
run $EDIT "$S" "$T/factor.gguf" --set llama.rope.scaling.factor u32 4
expect_error "logits: rope.scaling.factor not a float" "factor.gguf: key 'llama.rope.scaling.factor' has type u32" \
  "$BIN" logits --model "$T/factor.gguf" --tokens "1 2 3" --out "$T/never.f32"
check "logits: nothing written" [ ! -e "$T/never.f32" ]
"$BIN" logits --model "$S" --tokens "1 2 3" --out "$T/plain.f32" >/dev/null 2>&1
for edit in "--set llama.rope.scaling.factor f32 4 --set llama.rope.scaling.type str none" \
            "--set llama.rope.scaling.factor f32 1"; do
  run $EDIT "$S" "$T/factor.gguf" $edit
  "$BIN" logits --model "$T/factor.gguf" --tokens "1 2 3" --out "$T/factor.f32" >/dev/null 2>&1
  check "logits: no scaling ($edit)" cmp -s "$T/plain.f32" "$T/factor.f32"
done

# a key of the wrong type: the file named once ("f.gguf: f.gguf: key ..." before)
run $EDIT "$S" "$T/keytype.gguf" --set llama.block_count str x
expect_error "logits: block_count a string" "^collm logits: [^ ]*keytype.gguf: key 'llama.block_count' has type str" \
  "$BIN" logits --model "$T/keytype.gguf" --tokens "1 2 3" --out "$T/never.f32"
run $EDIT "$S" "$T/keytype.gguf" --set llama.attention.layer_norm_rms_epsilon str x
expect_error "logits: rms epsilon a string" "^collm logits: [^ ]*keytype.gguf: key 'llama.attention.layer_norm_rms_epsilon' has type str" \
  "$BIN" logits --model "$T/keytype.gguf" --tokens "1 2 3" --out "$T/never.f32"

# an --out that is an input: the command overwrote what it reads (the
# checkpoint by its adapter, the model by raw logits, the vocabulary's model by
# a random one); now refused before anything is written
run "$BIN" "${train[@]}" --base "$S" --out "$T/ck.gguf"
cp "$T/ck.gguf" "$T/ck_copy.gguf"; cp "$S" "$T/model.gguf"
expect_error "export-lora --out = --ckpt" "--out .*ck_copy.gguf is the --ckpt file" \
  "$BIN" export-lora --ckpt "$T/ck_copy.gguf" --out "$T/ck_copy.gguf"
check "export-lora: the checkpoint kept" cmp -s "$T/ck.gguf" "$T/ck_copy.gguf"
expect_error "export-lora --out = --base" "--out .*model.gguf is the --base file" \
  "$BIN" export-lora --ckpt "$T/ck.gguf" --base "$T/model.gguf" --out "$T/model.gguf"
expect_error "logits --out = --model" "--out .*model.gguf is the --model file" \
  "$BIN" logits --model "$T/model.gguf" --tokens "1 2" --out "$T/model.gguf"
expect_error "logits --out = --ckpt" "--out .*ck_copy.gguf is the --ckpt file" \
  "$BIN" logits --ckpt "$T/ck_copy.gguf" --tokens "1 2" --out "$T/ck_copy.gguf"
expect_error "init-model --out = --vocab-from" "--out .*model.gguf is the --vocab-from file" \
  "$BIN" init-model --arch llama --vocab-from "$T/model.gguf" --n-embd 16 --n-layer 1 --n-head 2 --n-ff 32 \
  --out "$T/model.gguf"
check "the model kept" cmp -s "$S" "$T/model.gguf"
check "the checkpoint kept" cmp -s "$T/ck.gguf" "$T/ck_copy.gguf"
# the base a checkpoint finds by its stored path (no --base given) is an input too
cp "$S" "$T/stored_base.gguf"
run "$BIN" "${train[@]}" --base "$T/stored_base.gguf" --out "$T/ck_stored.gguf"
expect_error "export-lora --out = the stored base" "stored_base.gguf is the checkpoint's base model" \
  "$BIN" export-lora --ckpt "$T/ck_stored.gguf" --out "$T/stored_base.gguf"
check "the stored base kept" cmp -s "$S" "$T/stored_base.gguf"
# and the adapter written elsewhere reads back as a llama.cpp LoRA adapter
"$BIN" export-lora --ckpt "$T/ck.gguf" --out "$T/adapter.gguf" >/dev/null 2>&1
check "export-lora" [ -s "$T/adapter.gguf" ]
"$BIN" info "$T/adapter.gguf" >"$T/adapter.txt" 2>&1
check "adapter: adapter.type lora" grep -q 'adapter.type .*"lora"' "$T/adapter.txt"
check "adapter: lora_a {in, r}" grep -Eq '^ *blk\.0\.attn_q\.weight\.lora_a +F32 +\[64, 4\]' "$T/adapter.txt"

finish
