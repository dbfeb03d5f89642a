#!/usr/bin/env bash
# collm fit-score: the weight w of score = llm + w * cf fitted by AUC on a split
# and stored in the checkpoint, which eval then uses: eval's AUC on that split
# equals the grid's best; --dry-run leaves the file byte-identical; a stage-1
# checkpoint (no CF tables) and bad arguments are clear errors.
. "$(dirname "$0")/lib.sh" fit_score
VOCAB=$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf
rm -rf "${TMP:?}"/*
run() { "$@" >"$TMP/log" 2>&1 || { echo "setup failed: $*" >&2; tail -3 "$TMP/log" >&2; echo "$pass passed, $((fail + 1)) failed"; exit 1; }; }
run "$BIN" synth --users 60 --items 120 --seed 1 --out "$TMP/data"
run "$BIN" train-cf --model mfbias --data "$TMP/data" --out "$TMP/cf.gguf" --dim 10 --max-epochs 8 --threads 2
run "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 48 --seed 1 --out "$TMP/base.gguf"
run "$BIN" train --stage 2 --base "$TMP/base.gguf" --cf "$TMP/cf.gguf" --data "$TMP/data" --out "$TMP/ckpt.gguf" \
  --lr 1e-2 --batch 8 --steps-per-epoch 3 --max-epochs 1 --eval-rows 16 --threads 2
run "$BIN" train --stage 1 --full --base "$TMP/base.gguf" --data "$TMP/data" --out "$TMP/s1.gguf" \
  --lr 1e-2 --batch 8 --steps-per-epoch 2 --max-epochs 1 --eval-rows 16 --threads 2
CK="$TMP/ckpt.gguf"; D="$TMP/data"
get() { python3 -c "import json,sys; print(json.load(open('$1'))$2)"; }

before=$("$BIN" eval --ckpt "$CK" --data "$D" --split valid_small --json --threads 1)
cp "$CK" "$TMP/copy.gguf"
"$BIN" fit-score --ckpt "$CK" --data "$D" --dry-run --json --threads 1 >"$TMP/dry.json" 2>"$TMP/err"; rc=$?
check "fit-score --dry-run exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
check "--dry-run leaves the checkpoint byte-identical" cmp -s "$CK" "$TMP/copy.gguf"
check "--dry-run: grid starts at w=0 with the LLM's own AUC" python3 -c "
import json,sys; r=json.load(open('$TMP/dry.json')); e=json.loads('''$before''')
sys.exit(0 if r['grid'][0]['w']==0 and abs(r['grid'][0]['auc']-e['auc'])<1e-6 and r['stored'] is False else 1)"
check "the chosen w has the grid's best AUC" python3 -c "
import json,sys; r=json.load(open('$TMP/dry.json')); best=max(g['auc'] for g in r['grid'])
sys.exit(0 if abs(r['auc']-best)<1e-12 and [g for g in r['grid'] if g['w']==r['cf_weight']][0]['auc']==best else 1)"

"$BIN" fit-score --ckpt "$CK" --data "$D" --json --threads 1 >"$TMP/fit.json" 2>"$TMP/err"; rc=$?
check "fit-score exits 0 ($(head -c 200 "$TMP/err"))" [ "$rc" -eq 0 ]
w=$(get "$TMP/fit.json" "['cf_weight']")
after=$("$BIN" eval --ckpt "$CK" --data "$D" --split valid_small --json --threads 1)
check "eval now scores llm + w*cf (w=$w): its AUC is the fitted one" python3 -c "
import json,sys; r=json.load(open('$TMP/fit.json')); e=json.loads('''$after''')
sys.exit(0 if abs(e['auc']-r['auc'])<1e-6 else 1)"
check "the fitted checkpoint differs from the original only by the key" sh -c "! cmp -s '$CK' '$TMP/copy.gguf'"
"$BIN" info "$CK" >"$TMP/info" 2>&1
check "collm info shows collm.score.cf_weight" grep -q "collm.score.cf_weight" "$TMP/info"
# refitting is idempotent: the same w
"$BIN" fit-score --ckpt "$CK" --data "$D" --json --threads 1 >"$TMP/fit2.json" 2>/dev/null
check "refit gives the same w" [ "$(get "$TMP/fit2.json" "['cf_weight']")" = "$w" ]

expect_error "stage-1 checkpoint has no CF tables" 'no collaborative tables' "$BIN" fit-score --ckpt "$TMP/s1.gguf" --data "$D" --threads 1
expect_error "missing --data" 'data' "$BIN" fit-score --ckpt "$CK"
expect_error "bad --batch" 'batch' "$BIN" fit-score --ckpt "$CK" --data "$D" --batch 0
expect_error "not a checkpoint" 'base.gguf' "$BIN" fit-score --ckpt "$TMP/base.gguf" --data "$D"
finish
