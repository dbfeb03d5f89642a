#!/usr/bin/env bash
# The collm demo: the whole pipeline on a synthetic dataset, in a few minutes
# on 2 cores. Everything goes to build/demo/.
#   synth data -> MF -> a small Llama (Llama-2 vocabulary) -> stage 1 (full
#   fine-tuning, text only) -> stage 2 (FECE mapping, ID slots) -> AUC/UAUC
#   -> Faiss index -> top-10 for a user.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${COLLM_BIN:-build/collm}
SHARED=${COLLM_SHARED:-../shared}
OUT=build/demo
VOCAB=$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1. synthetic dataset (planted user/item factors, genre-word titles)"
$BIN synth --users 300 --items 400 --seed 1 --out $OUT/data

step "2. matrix factorisation (the collaborative model)"
$BIN train-cf --model mf --data $OUT/data --out $OUT/mf.gguf --dim 8 --lr 1e-2 --weight-decay 1e-4 --batch 1024 --max-epochs 300 --patience 30
$BIN eval-cf --cf $OUT/mf.gguf --data $OUT/data --split valid

step "3. a small Llama with the Llama-2 vocabulary"
$BIN init-model --arch llama --vocab-from "$VOCAB" --n-embd 128 --n-layer 2 --n-head 4 --n-head-kv 4 --n-ff 344 --seed 1 --out $OUT/base.gguf

step "4. stage 1: text-only prompts, every LLM weight trains"
$BIN train --stage 1 --full --base $OUT/base.gguf --data $OUT/data --out $OUT/stage1.gguf \
  --lr 1e-3 --batch 16 --steps-per-epoch 40 --max-epochs 4 --patience 2 --warmup-steps 20 --eval-rows 400 --seed 42

step "5. stage 2: ID slots filled by the FECE mapping of the MF vectors (joint with the LLM: a small model must learn to read them)"
$BIN train --stage 2 --train-llm --init-from $OUT/stage1.gguf --cf $OUT/mf.gguf --data $OUT/data --out $OUT/stage2.gguf \
  --lr 1e-3 --batch 16 --steps-per-epoch 40 --max-epochs 8 --patience 3 --warmup-steps 20 --eval-rows 400 --seed 42

step "6. AUC / UAUC on the valid split"
$BIN eval --ckpt $OUT/stage2.gguf --data $OUT/data --split valid

if $BIN --help | grep -q '^  index'; then
  step "7. Faiss index over the item vectors"
  $BIN index --ckpt $OUT/stage2.gguf --factory Flat --out $OUT/items.faiss
  step "8. top-10 for user 7: Faiss candidates, re-ranked by the LLM"
  $BIN recommend --ckpt $OUT/stage2.gguf --index $OUT/items.faiss --data $OUT/data --user 7 --k 10 --candidates 50
fi
