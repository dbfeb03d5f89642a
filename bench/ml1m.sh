#!/usr/bin/env bash
# The ML-1M recipe (issues 4 and 9): from ../shared/data/ml-1m to a trained
# CoLLM checkpoint and its valid_small / valid AUC and UAUC, on 2 cores in
# under an hour. Steps:
#   1. the collaborative encoder: MF with user and item biases (mfbias,
#      d = 64 + 2; docs/encoders.md), early-stopped on valid AUC. Its biases
#      carry most of what predicts a rating of 4+ on this split (valid AUC
#      0.735 alone vs plain MF's 0.676); folded into the vectors, they reach
#      the LLM through the slots and retrieval unchanged. Plain MF is trained
#      too, only as the reference figure of the JSON line (mf_valid_*);
#   2. a small Llama made by init-model: d=256, 4 layers, 4 heads, n_ff 688,
#      with the Llama-2 SentencePiece vocabulary of
#      testvectors/tokenizer/ggml-vocab-llama-spm.gguf (Vicuna-7B's, the LLM
#      of CoLLM, method.md §3.2: "▁Yes" = 3869, the legacy "<unk>" pieces);
#   3. stage 1: every LLM weight trains on the text-only (tallrec) prompt (a
#      randomly initialised model learns nothing through LoRA);
#   4. stage 2: the FECE mapping trains on the collm prompt with one slot per
#      history item (<ItemIDList>), the LLM frozen;
#   5. joint stage: mapping and LLM together at a low rate;
#   6. score fusion: `collm fit-score --with din.gguf,sasrec.gguf,lightgcn.gguf,ctx.gguf`
#      fits the weights of
#        score = LLM logit + w · mfbias + v1 · DIN + v2 · SASRec + v3 · LightGCN + v4 · ctx
#      by AUC on valid_small and stores them, and the three models themselves,
#      in the checkpoint, so eval and every scorer use them (all weights 0
#      would mean the LLM alone). DIN (target-aware attention over the
#      history) ranks cold users best; on valid mfbias + DIN's standardised sum
#      reaches AUC 0.742 against 0.735 and 0.731 alone (README, "Score
#      fusion"). SASRec and LightGCN add within-user ranking: on seed 0 valid
#      UAUC 0.6932 against 0.6875 with DIN alone, AUC 0.7446 against 0.7427
#      (README, "Fusing SASRec and LightGCN too"). ctx, the context-feature
#      model (src/cf/ctx.c: history beyond train, cold users and items, train
#      like rates, genres, release year; fitted on valid_small), adds what no
#      ids-only encoder sees (docs/encoders.md, "Context features"). FUSE_KIND (a comma
#      list, up to four train-cf kinds; default din,sasrec,lightgcn,ctx) picks
#      them: the first is trained into $W/fuse.gguf, the others into
#      $W/fuse-KIND.gguf.
#   8. refit (REFIT=1, the default): the checkpoint as selected and measured
#      above is kept as $W/selected.gguf; then every fused encoder is refit on
#      train + valid (`collm train-cf --refit-from M --train-split train,valid`:
#      M's options, seed and best epoch count, no evaluation; ctx keeps its
#      fitted weights and counts valid's rows in its statistics) and stored in
#      $OUT with the weights fitted above (`collm fit-score --keep-weights`),
#      so the encoders that score the period after valid have seen the period
#      just before it. The LLM and its mfbias slots stay as trained. Every
#      figure of the JSON line is the selected checkpoint's (selected_checkpoint;
#      on valid, $OUT's
#      fused encoders are in-sample, and collm eval says so). What the refit
#      buys one period earlier: bench/refit.sh (valid cut by time).
# Model selection on (a prefix of) valid_small only; the test split is never read.
# valid_rest_auc / valid_rest_uauc: valid's 5,201 rows outside valid_small,
# which no fitted weight (fit-score, ctx) saw; written to $W/valid_rest.tsv.
# STEPS (default 100) and S1/S2/S3_EPOCHS shrink the run for a smoke test;
# SEED (default 0) shifts every seed of the run (encoders 2023+SEED, base
# model 1+SEED, LLM training 42+SEED) for the mean ± sd over seeds;
# BATCH_ORDER (grouped, the default, or shuffled) is the --batch-order of
# stage 1 and the joint stage, where grouped batches run each user's common
# prompt once (stage 1 twice as fast) and the recipe's figures hold; stage 2,
# the LLM frozen, gains nothing from them and keeps shuffled batches
# (docs/speed.md, "Grouped batches");
# TRAIN_ONLY=1 stops after step 5 (the checkpoint of the recipe's shape, no
# fit-score and no evaluation: what the speed benches need, bench/topk.sh).
#   usage: OUT=build/ml1m.gguf bench/ml1m.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
OUT=${OUT:-$BUILD/ml1m.gguf}
W=${WORK:-$BUILD/ml1m-work}
BIN=$BUILD/collm
DATA=${DATA:-$SHARED/data/ml-1m}
THREADS=${THREADS:-2}
SEED=${SEED:-0}
EVAL_ROWS=${EVAL_ROWS:-2000}
mkdir -p "$W" "$(dirname "$OUT")"
make -s BUILD="$BUILD" "$BIN"
t0=$(date +%s)
log() { echo "[$(( $(date +%s) - t0 ))s] $*" >&2; }

CF_KIND=${CF_KIND:-mfbias}
log "1. collaborative encoder ($CF_KIND) and the plain-MF reference"
$BIN train-cf --model "$CF_KIND" --data "$DATA" --out "$W/cf.gguf" --threads "$THREADS" --seed $((2023 + SEED)) 2>&1 | tail -n 1 >&2
FUSE_KIND=${FUSE_KIND:-din,sasrec,lightgcn,ctx}
IFS=, read -r -a fuse_kinds <<<"$FUSE_KIND"
fuse_files=()
for i in "${!fuse_kinds[@]}"; do
  if [ "$i" = 0 ]; then fuse_files+=("$W/fuse.gguf"); else fuse_files+=("$W/fuse-${fuse_kinds[$i]}.gguf"); fi
done
fuse_with=$(IFS=,; echo "${fuse_files[*]}")
if [ "${TRAIN_ONLY:-0}" != 1 ]; then # the reference and the fused encoders serve steps 6-7 only
  $BIN train-cf --model mf --data "$DATA" --out "$W/mf.gguf" --threads "$THREADS" --seed $((2023 + SEED)) 2>&1 | tail -n 1 >&2
  for i in "${!fuse_kinds[@]}"; do
    $BIN train-cf --model "${fuse_kinds[$i]}" --data "$DATA" --out "${fuse_files[$i]}" --threads "$THREADS" --seed $((2023 + SEED)) 2>&1 | tail -n 1 >&2
  done
fi
log "2. base model"
$BIN init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" --n-embd 256 \
  --n-layer 4 --n-head 4 --n-head-kv 4 --n-ff 688 --seed $((1 + SEED)) --out "$W/base.gguf" >&2
common=(--data "$DATA" --batch 32 --steps-per-epoch "${STEPS:-100}" --eval-rows "$EVAL_ROWS" --threads "$THREADS" --seed $((42 + SEED)))
order=(--batch-order "${BATCH_ORDER:-grouped}")
log "3. stage 1 (full fine-tuning, text only)"
$BIN train --stage 1 --full --base "$W/base.gguf" --out "$W/stage1.gguf" "${common[@]}" "${order[@]}" \
  --max-epochs ${S1_EPOCHS:-2} --patience 1 --lr 1e-3 --warmup-steps 50 --weight-decay 0.01 >&2
log "4. stage 2 (FECE mapping, history item slots)"
$BIN train --stage 2 --init-from "$W/stage1.gguf" --cf "$W/cf.gguf" --template collm_movie_ids --out "$W/stage2.gguf" \
  "${common[@]}" --max-epochs ${S2_EPOCHS:-3} --patience 2 --lr 1e-3 --warmup-steps 50 >&2
log "5. joint stage (mapping + LLM, low rate)"
$BIN train --stage 2 --train-llm --init-from "$W/stage2.gguf" --cf "$W/cf.gguf" --template collm_movie_ids --out "$OUT" \
  "${common[@]}" "${order[@]}" --max-epochs ${S3_EPOCHS:-16} --patience 3 --lr 3e-4 --warmup-steps 20 >&2
if [ "${TRAIN_ONLY:-0}" = 1 ]; then
  log "TRAIN_ONLY=1: checkpoint $OUT (no fit-score, no evaluation)"
  exit 0
fi
log "6. score fusion (weights fitted on valid_small, $FUSE_KIND stored in the checkpoint)"
fit=$($BIN fit-score --ckpt "$OUT" --data "$DATA" --split valid_small --with "$fuse_with" --json --threads "$THREADS")
echo "$fit" | cut -c1-400 >&2
log "7. evaluation"
small=$($BIN eval --ckpt "$OUT" --data "$DATA" --split valid_small --json --threads "$THREADS")
valid=$($BIN eval --ckpt "$OUT" --data "$DATA" --split valid --json --threads "$THREADS")
# valid's rows outside valid_small: no weight of the fusion (nor ctx) was fitted on them
awk -F'\t' 'NR == FNR { if (FNR > 1) seen[$0] = 1; next } FNR == 1 || !($0 in seen)' \
  "$DATA/valid_small.tsv" "$DATA/valid.tsv" >"$W/valid_rest.tsv"
rest=$($BIN eval --ckpt "$OUT" --data "$DATA" --split "$W/valid_rest.tsv" --json --threads "$THREADS")
mf=$($BIN eval-cf --cf "$W/mf.gguf" --data "$DATA" --split valid --json --threads "$THREADS")
cf=$($BIN eval-cf --cf "$W/cf.gguf" --data "$DATA" --split valid --json --threads "$THREADS")
fuse=$($BIN eval-cf --cf "$W/fuse.gguf" --data "$DATA" --split valid --json --threads "$THREADS")
fuse_ws=$(echo "$fit" | grep -o '"extras":\[[^]]*\]' | grep -o '"weight":[^,}]*' | cut -d: -f2 | paste -s -d, -)
fuse_w=${fuse_ws%%,*}
fuse_each=
for i in "${!fuse_kinds[@]}"; do # each fused encoder alone on valid
  e=$(if [ "$i" = 0 ]; then echo "$fuse"; else $BIN eval-cf --cf "${fuse_files[$i]}" --data "$DATA" --split valid --json --threads "$THREADS"; fi)
  fuse_each+="${fuse_each:+,}{\"kind\":\"${fuse_kinds[$i]}\",\"valid_auc\":$(echo "$e" | grep -o '"auc":[^,}]*' | head -n 1 | cut -d: -f2),\"valid_uauc\":$(echo "$e" | grep -o '"uauc":[^,}]*' | head -n 1 | cut -d: -f2)}"
done
refit_secs=0 refit=false
if [ "${REFIT:-1}" = 1 ]; then
  refit=true
  log "8. refit of the fused encoders on train + valid, stored in $OUT with the fitted weights ($W/selected.gguf: as selected)"
  t_refit=$(date +%s)
  cp "$OUT" "$W/selected.gguf"
  refit_files=()
  for f in "${fuse_files[@]}"; do
    $BIN train-cf --refit-from "$f" --data "$DATA" --train-split train,valid --out "${f%.gguf}-refit.gguf" \
      --threads "$THREADS" --quiet
    refit_files+=("${f%.gguf}-refit.gguf")
  done
  $BIN fit-score --ckpt "$OUT" --data "$DATA" --split valid_small --with "$(IFS=,; echo "${refit_files[*]}")" \
    --keep-weights --json --threads "$THREADS" | cut -c1-200 >&2
  refit_secs=$(( $(date +%s) - t_refit ))
fi
secs=$(( $(date +%s) - t0 ))
get() { echo "$1" | grep -o "\"$2\":[^,}]*" | head -n 1 | cut -d: -f2; }
echo "{\"valid_small_auc\":$(get "$small" auc),\"valid_small_uauc\":$(get "$small" uauc),\"valid_auc\":$(get "$valid" auc),\"valid_uauc\":$(get "$valid" uauc),\"valid_auc_warm\":$(get "$valid" auc_warm),\"valid_auc_cold\":$(get "$valid" auc_cold),\"valid_rest_auc\":$(get "$rest" auc),\"valid_rest_uauc\":$(get "$rest" uauc),\"mf_valid_auc\":$(get "$mf" auc),\"mf_valid_uauc\":$(get "$mf" uauc),\"cf_kind\":\"$CF_KIND\",\"cf_valid_auc\":$(get "$cf" auc),\"cf_valid_uauc\":$(get "$cf" uauc),\"cf_weight\":$(get "$fit" cf_weight),\"fuse_kind\":\"$FUSE_KIND\",\"fuse_weight\":${fuse_w:-null},\"fuse_weights\":[${fuse_ws}],\"fuse_each\":[${fuse_each}],\"fuse_valid_auc\":$(get "$fuse" auc),\"fuse_valid_uauc\":$(get "$fuse" uauc),\"llm_valid_small_auc\":$(get "$fit" llm_auc),\"llm_valid_small_uauc\":$(get "$fit" llm_uauc),\"prompts_per_second\":$(get "$valid" prompts_per_second),\"seed\":$SEED,\"refit\":$refit,\"refit_seconds\":$refit_secs,\"seconds\":$secs,\"checkpoint\":\"$OUT\",\"selected_checkpoint\":\"$(if $refit; then echo "$W/selected.gguf"; else echo "$OUT"; fi)\"}"
