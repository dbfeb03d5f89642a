#!/usr/bin/env bash
# bench/auc.py, the AUC and UAUC the bench scripts compute from score files
# (bench/encoder_fusion.sh, bench/llm_value.sh): a hand-computed case with
# ties and a user with one label only, then collm's own figures (eval-cf's
# C implementation, src/data/metrics.c) on a trained model's score file to
# 1e-12; bench/llm_value.sh's one-line errors for a missing checkpoint and
# for no encoders.
set -u
. "$(dirname "$0")/lib.sh" bench_metrics
PY=${COLLM_PYTHON:-/usr/bin/python3}
# u1: scores 0.1 (0), 0.4 (1), 0.4 (0), 0.8 (1): pairs (pos > neg) 0.4>0.1, 0.8>0.1, 0.8>0.4, tie 0.4=0.4 -> 3.5/4
# u2: 0.3 (1), 0.2 (0): 1; u3: one label only, left out of the UAUC. All rows: positives 0.4 0.8 0.3 0.9,
# negatives 0.1 0.4 0.2 -> pairs won 1+0.5+1 (0.4), 3 (0.8), 1+0+1 (0.3), 3 (0.9) = 10.5 of 12
printf 'uid\tiid\tlabel\tscore\n1\t1\t0\t0.1\n1\t2\t1\t0.4\n1\t3\t0\t0.4\n1\t4\t1\t0.8\n2\t5\t1\t0.3\n2\t6\t0\t0.2\n3\t7\t1\t0.9\n' >"$TMP/hand.tsv"
check "hand-computed AUC 10.5/12, UAUC (3.5/4 + 1)/2" "$PY" -c "
import sys; sys.path.insert(0, 'bench')
from auc import auc, read_scores, uauc
u, i, y, s = read_scores('$TMP/hand.tsv')
assert abs(auc(y, s) - 10.5 / 12) < 1e-15, auc(y, s)
assert abs(uauc(u, y, s) - (3.5 / 4 + 1) / 2) < 1e-15, uauc(u, y, s)"
"$BIN" synth --users 60 --items 80 --seed 9 --out "$TMP/data" >/dev/null
"$BIN" train-cf --model mfbias --data "$TMP/data" --out "$TMP/mfb.gguf" --max-epochs 3 >/dev/null 2>&1
json=$("$BIN" eval-cf --cf "$TMP/mfb.gguf" --data "$TMP/data" --split valid --json --scores "$TMP/mfb.tsv" 2>&1)
check "auc.py = collm eval-cf ($json)" "$PY" -c "
import json, sys; sys.path.insert(0, 'bench')
from auc import auc, read_scores, uauc
d = json.loads(sys.argv[1]); u, i, y, s = read_scores('$TMP/mfb.tsv')
assert abs(auc(y, s) - d['auc']) < 1e-12 and abs(uauc(u, y, s) - d['uauc']) < 1e-12, (auc(y, s), uauc(u, y, s))" "$json"
expect_error "llm_value: no checkpoint" "^llm_value: no checkpoint $TMP/none.gguf" \
  env CKPT="$TMP/none.gguf" WORK="$TMP" bench/llm_value.sh
touch "$TMP/fake.gguf"
expect_error "llm_value: no encoders" "^llm_value: no encoders in $TMP/empty" \
  env CKPT="$TMP/fake.gguf" WORK="$TMP/empty" bench/llm_value.sh
finish
