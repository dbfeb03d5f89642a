#!/usr/bin/env bash
# The collm demo: the whole pipeline on a synthetic dataset built so that the
# point of CoLLM shows in a couple of minutes on 2 cores. Everything goes to
# build/demo/.
#   The data: users and items with planted latent factors, and titles that say
#   how likeable an item is ("The Dreadful ..." .. "The Brilliant ..."); 40 % of
#   the items appear only when the valid period starts, so MF has never seen
#   them (cold), while their titles still say what they are.
#   synth -> MF -> a small Llama (Llama-2 vocabulary) -> stage 1 (text only)
#   -> stage 2 (ID slots from MF, joint with the LLM) -> MF vs LLM on valid
#   (all / warm / cold rows) -> Faiss index -> top-10 for a user.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${COLLM_BIN:-build/collm}
SHARED=${COLLM_SHARED:-../shared}
OUT=build/demo
VOCAB=$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }
get() { grep -o "\"$2\":[^,}]*" "$1" | head -n 1 | cut -d: -f2; }
t0=$(date +%s)

step "1. synthetic dataset: 300 users, 400 items; titles carry how likeable an item is; 40 % of the items are new in valid"
$BIN synth --users 300 --items 400 --seed 1 --new-items 0.4 --title-quality --item-bias 3 --scale 1.5 --out $OUT/data
sed -n '3,7p' $OUT/data/items.tsv

step "2. matrix factorisation (the collaborative model)"
$BIN train-cf --model mf --data $OUT/data --out $OUT/mf.gguf --dim 8 --lr 1e-2 --weight-decay 1e-4 --batch 1024 \
  --max-epochs 300 --patience 30 --seed 1 2>&1 | tail -n 1
$BIN eval-cf --cf $OUT/mf.gguf --data $OUT/data --split valid --json >$OUT/mf.json

step "3. a small Llama with the Llama-2 vocabulary (random weights: everything it knows, it learns here)"
$BIN init-model --arch llama --vocab-from "$VOCAB" --n-embd 128 --n-layer 2 --n-head 4 --n-head-kv 4 --n-ff 344 --seed 1 --out $OUT/base.gguf

step "4. stage 1: text-only prompts (history titles + target title), every LLM weight trains"
$BIN train --stage 1 --full --base $OUT/base.gguf --data $OUT/data --out $OUT/stage1.gguf \
  --lr 3e-3 --batch 16 --steps-per-epoch 40 --max-epochs 4 --patience 4 --warmup-steps 10 --eval-rows 300 --seed 42

step "5. stage 2: ID slots filled by the FECE mapping of the MF vectors, jointly with the LLM"
$BIN train --stage 2 --train-llm --init-from $OUT/stage1.gguf --cf $OUT/mf.gguf --data $OUT/data --out $OUT/stage2.gguf \
  --lr 1e-3 --batch 16 --steps-per-epoch 40 --max-epochs 3 --patience 3 --warmup-steps 10 --eval-rows 300 --seed 42

step "6. valid split: MF vs the LLM path (slots + text)"
$BIN eval --ckpt $OUT/stage2.gguf --data $OUT/data --split valid --json >$OUT/llm.json
M=$OUT/mf.json L=$OUT/llm.json
printf '%-6s %7s   %8s %8s\n' "" rows "MF" "LLM"
printf '%-6s %7s   %8.4f %8.4f\n' "AUC" "$(get $M n)" "$(get $M auc)" "$(get $L auc)"
printf '%-6s %7s   %8.4f %8.4f\n' "UAUC" "" "$(get $M uauc)" "$(get $L uauc)"
printf '%-6s %7s   %8.4f %8.4f   (user and item seen in train)\n' "warm" "$(get $M n_warm)" "$(get $M auc_warm)" "$(get $L auc_warm)"
printf '%-6s %7s   %8.4f %8.4f   (new user or item: MF has only its initial vector)\n' "cold" "$(get $M n_cold)" "$(get $M auc_cold)" "$(get $L auc_cold)"

if $BIN --help | grep -q '^  index'; then
  step "7. Faiss index over the item vectors"
  $BIN index --ckpt $OUT/stage2.gguf --factory Flat --out $OUT/items.faiss
  step "8. user 7: 50 Faiss candidates re-ranked by the LLM; the top 10 and the last 5"
  $BIN recommend --ckpt $OUT/stage2.gguf --index $OUT/items.faiss --data $OUT/data --user 7 --k 50 --candidates 50 \
    >$OUT/rec.txt
  sed -n '1,12p' $OUT/rec.txt
  echo "   ..."
  tail -n 5 $OUT/rec.txt
fi
printf '\ndemo: %d s\n' $(($(date +%s) - t0))
