#!/usr/bin/env bash
# The ML-1M recipe (issue 4): from ../shared/data/ml-1m to a trained CoLLM
# checkpoint and its valid_small / valid AUC and UAUC, on 2 cores in under an
# hour. Steps:
#   1. MF (d=256) with the tuned defaults of train-cf (lr 1e-2, wd 1e-4),
#      early-stopped on valid AUC;
#   2. a small Llama made by init-model: d=256, 4 layers, 4 heads, n_ff 688,
#      with the Llama-2 SentencePiece vocabulary of
#      testvectors/tokenizer/ggml-vocab-llama-spm.gguf. Why this vocabulary:
#      it is the tokenizer of Vicuna-7B, the LLM of CoLLM (method.md §3.2), so
#      prompts tokenize exactly as in the paper ("▁Yes" = 3869, the legacy
#      "<unk>" pieces); the 512-token vocabularies split titles into many
#      more tokens and Qwen2's 152k-row embedding would dominate memory;
#   3. stage 1: every LLM weight trains on the text-only (tallrec) prompt (a
#      randomly initialised model learns nothing through LoRA);
#   4. stage 2: the FECE mapping trains on the collm prompt with one slot per
#      history item (<ItemIDList>), the LLM frozen;
#   5. joint stage: mapping and LLM together at a low rate.
# Model selection on (a prefix of) valid_small only; the test split is never read.
#   usage: OUT=build/ml1m.gguf bench/ml1m.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
OUT=${OUT:-$BUILD/ml1m.gguf}
W=${WORK:-$BUILD/ml1m-work}
BIN=$BUILD/collm
DATA=$SHARED/data/ml-1m
THREADS=${THREADS:-2}
EVAL_ROWS=${EVAL_ROWS:-2000}
mkdir -p "$W" "$(dirname "$OUT")"
make -s BUILD="$BUILD" "$BIN"
t0=$(date +%s)
log() { echo "[$(( $(date +%s) - t0 ))s] $*" >&2; }

log "1. MF"
$BIN train-cf --model mf --data "$DATA" --out "$W/mf.gguf" --threads "$THREADS" 2>&1 | tail -n 1 >&2
log "2. base model"
$BIN init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" --n-embd 256 \
  --n-layer 4 --n-head 4 --n-head-kv 4 --n-ff 688 --seed 1 --out "$W/base.gguf" >&2
common=(--data "$DATA" --batch 32 --steps-per-epoch 100 --eval-rows "$EVAL_ROWS" --threads "$THREADS" --seed 42)
log "3. stage 1 (full fine-tuning, text only)"
$BIN train --stage 1 --full --base "$W/base.gguf" --out "$W/stage1.gguf" "${common[@]}" \
  --max-epochs ${S1_EPOCHS:-2} --patience 1 --lr 1e-3 --warmup-steps 50 --weight-decay 0.01 >&2
log "4. stage 2 (FECE mapping, history item slots)"
$BIN train --stage 2 --init-from "$W/stage1.gguf" --cf "$W/mf.gguf" --template collm_movie_ids --out "$W/stage2.gguf" \
  "${common[@]}" --max-epochs ${S2_EPOCHS:-3} --patience 2 --lr 1e-3 --warmup-steps 50 >&2
log "5. joint stage (mapping + LLM, low rate)"
$BIN train --stage 2 --train-llm --init-from "$W/stage2.gguf" --cf "$W/mf.gguf" --template collm_movie_ids --out "$OUT" \
  "${common[@]}" --max-epochs ${S3_EPOCHS:-8} --patience 3 --lr 3e-4 --warmup-steps 20 >&2
log "6. evaluation"
small=$($BIN eval --ckpt "$OUT" --data "$DATA" --split valid_small --json --threads "$THREADS")
valid=$($BIN eval --ckpt "$OUT" --data "$DATA" --split valid --json --threads "$THREADS")
mf=$($BIN eval-cf --cf "$W/mf.gguf" --data "$DATA" --split valid --json --threads "$THREADS")
secs=$(( $(date +%s) - t0 ))
get() { echo "$1" | grep -o "\"$2\":[^,}]*" | head -n 1 | cut -d: -f2; }
echo "{\"valid_small_auc\":$(get "$small" auc),\"valid_small_uauc\":$(get "$small" uauc),\"valid_auc\":$(get "$valid" auc),\"valid_uauc\":$(get "$valid" uauc),\"valid_auc_warm\":$(get "$valid" auc_warm),\"valid_auc_cold\":$(get "$valid" auc_cold),\"mf_valid_auc\":$(get "$mf" auc),\"mf_valid_uauc\":$(get "$mf" uauc),\"prompts_per_second\":$(get "$valid" prompts_per_second),\"seconds\":$secs,\"checkpoint\":\"$OUT\"}"
