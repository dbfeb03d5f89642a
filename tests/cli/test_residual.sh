#!/usr/bin/env bash
# collm train --residual W (stage 2 trained on the encoder's residual): the
# loss sees LLM logit + W * cf, with the training rows' cf in sample
# (--residual-folds 0) or out of fold; the validation and every later score
# of the checkpoint are llm + W * cf row by row (its stored score weight is
# W); the settings are recorded; bad values are clear errors.
. "$(dirname "$0")/lib.sh" residual
rm -rf "${TMP:?}"/*
run "$BIN" synth --users 60 --items 120 --seed 1 --out "$TMP/data"
D="$TMP/data"
run "$BIN" train-cf --model mfbias --data "$D" --out "$TMP/cf.gguf" --dim 10 --max-epochs 8 --threads 2
run "$BIN" init-model --arch llama --vocab-from "$VOCAB" --n-embd 32 --n-layer 1 --n-head 2 --n-head-kv 2 --n-ff 48 --seed 1 --out "$TMP/base.gguf"
n_train=$(($(wc -l <"$D/train.tsv") - 1))
W=1.5
# one step over every training row at a vanishing rate (no LoRA, so no
# dropout): the logged loss is the mean BCE of the untrained LLM's logits
# plus the offset, which the test recomputes from independently scored parts
one_step() { # OUT FOLDS
  "$BIN" train --stage 2 --base "$TMP/base.gguf" --cf "$TMP/cf.gguf" --data "$D" --out "$TMP/$1.gguf" --lora-rank 0 \
    --lr 1e-30 --warmup-lr 1e-30 --min-lr 0 --weight-decay 0 --batch "$n_train" --steps-per-epoch 1 --max-epochs 1 \
    --eval-rows 40 --threads 2 --residual $W --residual-folds "$2" >"$TMP/$1.out" 2>"$TMP/$1.err"
}
one_step ins 0; rc=$?
check "train --residual $W --residual-folds 0 exits 0 ($(tail -c 200 "$TMP/ins.err"))" [ "$rc" -eq 0 ]
one_step oof 3; rc=$?
check "train --residual $W --residual-folds 3 exits 0 ($(tail -c 200 "$TMP/oof.err"))" [ "$rc" -eq 0 ]
"$BIN" info "$TMP/oof.gguf" >"$TMP/info" 2>&1
check "the checkpoint records the residual weight" grep -Eq "collm.train.residual_weight +f32 +1.5" "$TMP/info"
check "the checkpoint records the folds" grep -Eq "collm.train.residual_folds +u32 +3" "$TMP/info"
check "the checkpoint's score weight is the residual weight" grep -Eq "collm.score.cf_weight +f32 +1.5" "$TMP/info"
# the parts, each scored on its own: the LLM alone (the score weight removed) and the encoder
python3 tests/cli/gguf_edit.py "$TMP/ins.gguf" "$TMP/llm.gguf" --del collm.score.cf_weight
for s in train valid_small; do
  "$BIN" eval --ckpt "$TMP/llm.gguf" --data "$D" --split $s --threads 1 --scores "$TMP/llm-$s.tsv" >/dev/null 2>&1
  "$BIN" eval-cf --cf "$TMP/cf.gguf" --data "$D" --split $s --threads 1 --scores "$TMP/cf-$s.tsv" >/dev/null 2>&1
done
"$BIN" eval --ckpt "$TMP/ins.gguf" --data "$D" --split valid_small --threads 1 --scores "$TMP/fused.tsv" >/dev/null 2>&1
cat >"$TMP/bce.py" <<PY
import json, math, sys
col = lambda f, c: [float(l.split('\t')[c]) for l in open(f).read().splitlines()[1:]]
def bce(z, y): return max(z, 0) - z * y + math.log1p(math.exp(-abs(z)))
def auc(s, y):
    pos = [a for a, b in zip(s, y) if b]; neg = [a for a, b in zip(s, y) if not b]
    return sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
L, C, Y = col('$TMP/llm-train.tsv', 3), col('$TMP/cf-train.tsv', 3), col('$TMP/llm-train.tsv', 2)
log = lambda name: json.loads(open('$TMP/%s.gguf.log.jsonl' % name).readline())
with_off = sum(bce(l + $W * c, y) for l, c, y in zip(L, C, Y)) / len(Y)
without = sum(bce(l, y) for l, y in zip(L, Y)) / len(Y)
PY
check "in sample: the logged loss is mean BCE(llm + W*cf) over the training rows" python3 -c "
exec(open('$TMP/bce.py').read()); got = log('ins')['loss']
sys.exit(0 if len(L) == $n_train and abs(got - with_off) < 1e-4 and abs(got - without) > 1e-2 else 1)"
check "out of fold: the logged loss differs from the in-sample one (other offsets)" python3 -c "
exec(open('$TMP/bce.py').read()); sys.exit(0 if abs(log('oof')['loss'] - with_off) > 1e-3 else 1)"
check "validation: the logged AUC is that of llm + W*cf on the first 40 rows" python3 -c "
exec(open('$TMP/bce.py').read())
l, c, y = col('$TMP/llm-valid_small.tsv', 3)[:40], col('$TMP/cf-valid_small.tsv', 3)[:40], col('$TMP/llm-valid_small.tsv', 2)[:40]
sys.exit(0 if abs(log('ins')['valid_auc'] - auc([a + $W * b for a, b in zip(l, c)], y)) < 1e-6 else 1)"
check "eval: every row's score is llm + W*cf" python3 -c "
exec(open('$TMP/bce.py').read())
l, c, f = col('$TMP/llm-valid_small.tsv', 3), col('$TMP/cf-valid_small.tsv', 3), col('$TMP/fused.tsv', 3)
sys.exit(0 if len(f) == len(l) > 0 and max(abs(a - (b + $W * d)) for a, b, d in zip(f, l, c)) < 1e-4 else 1)"
grep -q "out of fold on train" "$TMP/oof.err"
check "the run says where its offsets come from" [ $? -eq 0 ]

common=(--base "$TMP/base.gguf" --data "$D" --out "$TMP/bad.gguf" --batch 8 --steps-per-epoch 1 --max-epochs 1 --threads 1)
expect_error "--residual on stage 1" "needs --stage 2" "$BIN" train --stage 1 --full "${common[@]}" --residual 1
expect_error "a negative --residual" "residual" "$BIN" train --stage 2 --cf "$TMP/cf.gguf" "${common[@]}" --residual -1
expect_error "--residual-folds beyond 100" "residual-folds" "$BIN" train --stage 2 --cf "$TMP/cf.gguf" "${common[@]}" --residual 1 --residual-folds 101
finish
