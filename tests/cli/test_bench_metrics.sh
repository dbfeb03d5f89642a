#!/usr/bin/env bash
# bench/auc.py, the AUC and UAUC the bench scripts compute from score files
# (bench/encoder_fusion.sh, bench/llm_value.sh): a hand-computed case with
# ties and a user with one label only, then collm's own figures (eval-cf's
# C implementation, src/data/metrics.c) on a trained model's score file to
# 1e-12; bench/llm_value.sh's one-line errors for a missing checkpoint and
# for no encoders; bench/ml1m_seeds.sh's table (mean ± sd over the seeds of
# each model alone and of the recipe's JSON lines) on two made-up seeds, and
# its one-line errors for a seed file or a training log it cannot read;
# bench/genre_titles.sh's rewritten titles on hand-made items (a year, none,
# no genres, the padding row) and its errors for a missing file or column;
# bench/fusion_objective.sh's error for a work directory without a
# recipe checkpoint; bench/fusion_parts.py (the LLM's score is the fused one
# less the weighted parts; fit-score's ascent on hand-made parts: one that
# orders the rows perfectly gets the grid's smallest non-zero weight, one
# that orders them backwards 0) and bench/seed_ensemble.sh's errors for no
# fusion_objective.sh output, a seed that is not a number and a part's
# model file missing; bench/item_drift.py's item rates by hand (the
# valid_small rows earlier than the scored row, weighted train rows) and its
# error without fusion_objective.sh's output;
# bench/grouped_share.py: prompts that share nothing compute all of their
# FLOPs, two prompts that differ in their last token only share all but it
# (the share by hand: one copy of the first 4 positions, then position 4
# twice), and its error for prompts that do not match the rows.
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
expect_error "fusion_objective: no checkpoint" "^fusion_objective: no checkpoint $TMP/selected.gguf" \
  env WORK="$TMP" bench/fusion_objective.sh
# bench/fusion_parts.py on hand-made score files: valid = 4 rows, the first two in valid_small
F=$TMP/fparts; mkdir -p "$F/fusion-objective" "$F/data"
printf 'uid\tiid\tlabel\ttimestamp\this\tnot_cold\n' >"$F/hdr"
{ cat "$F/hdr"; printf '1\t1\t1\t10\t0\t1\n1\t2\t0\t11\t0\t0\n2\t3\t1\t12\t0\t1\n2\t4\t0\t13\t0\t1\n'; } >"$F/data/valid.tsv"
{ cat "$F/hdr"; printf '1\t1\t1\t10\t0\t1\n1\t2\t0\t11\t0\t0\n'; } >"$F/data/valid_small.tsv"
echo '{"cf_weight": 2, "extras": [{"kind": "din", "weight": 0.5}]}' >"$F/fusion-objective/fit.json"
scores() { printf 'uid\tiid\tlabel\tscore\n1\t1\t1\t%s\n1\t2\t0\t%s\n2\t3\t1\t%s\n2\t4\t0\t%s\n' "$@"; }
scores 0.5 0.25 0.5 0.25 >"$F/fusion-objective/part0.tsv"
scores -1 1 -1 1 >"$F/fusion-objective/part1.tsv"
# fused = llm + 2·part0 + 0.5·part1 with llm = 0 everywhere
scores 0.5 1 0.5 1 >"$F/fusion-objective/fused.tsv"
check "fusion_parts.py: the LLM's score and fit-score's ascent by hand" "$PY" -c "
import sys; sys.path.insert(0, 'bench')
from fusion_parts import Parts
F = Parts('$F/fusion-objective', '$F/data')
assert (F.llm == 0).all(), F.llm  # (the values exact in binary: ties stay ties)
assert F.small.tolist() == [True, True, False, False] and F.cold.tolist() == [False, True, False, False]
assert F.kinds == ['cf', 'din'] and F.stored == [2, 0.5]
assert F.ascend_auc() == [0.05, 0.0], F.ascend_auc()"
# bench/item_drift.py: an item's rate over train plus valid_small's rows strictly earlier than the
# scored row (g = 1/2, 5 pseudo-rows): row 0 (item 1, t 10) not its own small row: (0 + 2.5) / 6;
# row 1 (item 2): (1 + 2.5) / 6; row 2 (item 1, t 12) takes row 0's like: (0 + 1 + 2.5) / 7; item 4 none: 2.5 / 5
check "item_drift.py: the earlier-small rate by hand" "$PY" -c "
import sys; sys.path.insert(0, 'bench')
import numpy as np
from types import SimpleNamespace
from item_drift import earlier_small_rate, item_rates
p = SimpleNamespace(small=np.array([True, True, False, False]), iid=np.array([1, 2, 1, 4]), y=np.array([1, 0, 0, 0]))
r = earlier_small_rate(p, np.array([10, 11, 12, 13]), np.array([1, 2]), np.array([0, 1]), 0.5)
assert np.allclose(r, [2.5 / 6, 3.5 / 6, 3.5 / 7, 0.5], rtol=0, atol=1e-15), r
w = item_rates(np.array([1, 1, 2]), np.array([1, 0, 1]), np.array([1.0, 3.0, 1.0]), 3, 0.5)
assert np.allclose(w, [0.5, 3.5 / 9, 3.5 / 6], rtol=0, atol=1e-15), w"
expect_error "item_drift: no fusion_objective.sh output" \
  "^item_drift: no $TMP/fusion-objective/fit.json \\(run WORK=$TMP bench/fusion_objective.sh first\\)$" "$PY" bench/item_drift.py "$TMP"
expect_error "seed_ensemble: no fusion_objective.sh output" \
  "^seed_ensemble: no $TMP/fusion-objective/fit.json \\(run WORK=$TMP bench/fusion_objective.sh first\\)$" \
  env WORK="$TMP" bench/seed_ensemble.sh
expect_error "seed_ensemble: a seed that is not a number" "^seed_ensemble: SEEDS holds 'x1', not a whole number" \
  env WORK="$F" SEEDS="2024 x1" bench/seed_ensemble.sh
expect_error "seed_ensemble: a part's model missing" "^seed_ensemble: part 0's model $F/cf.gguf not found$" \
  env WORK="$F" bench/seed_ensemble.sh
expect_error "llm_value: no checkpoint" "^llm_value: no checkpoint $TMP/none.gguf" \
  env CKPT="$TMP/none.gguf" WORK="$TMP" bench/llm_value.sh
touch "$TMP/fake.gguf"
expect_error "llm_value: no encoders" "^llm_value: no encoders in $TMP/empty" \
  env CKPT="$TMP/fake.gguf" WORK="$TMP/empty" bench/llm_value.sh
# bench/ml1m_seeds.sh on two seeds already run: their JSON lines made up here,
# their work folders holding an mfbias model each (as the recipe's cf.gguf)
for sd in 0 1; do
  mkdir -p "$TMP/seeds/work$sd"
  "$BIN" train-cf --model mfbias --data "$TMP/data" --out "$TMP/seeds/work$sd/cf.gguf" --max-epochs 2 --seed $((5 + sd)) \
    >/dev/null 2>&1
  echo "{\"seed\":$sd,\"valid_auc\":0.7$((sd * 2)),\"valid_uauc\":0.6,\"valid_auc_warm\":0.8,\"valid_auc_cold\":0.5,\"seconds\":$((100 + 20 * sd))}" \
    >"$TMP/seeds/seed$sd.json"
done
a0=$("$BIN" eval-cf --cf "$TMP/seeds/work0/cf.gguf" --data "$TMP/data" --split valid --json | grep -o '"auc":[0-9.]*' | cut -d: -f2)
a1=$("$BIN" eval-cf --cf "$TMP/seeds/work1/cf.gguf" --data "$TMP/data" --split valid --json | grep -o '"auc":[0-9.]*' | cut -d: -f2)
SEEDS="0 1" OUTDIR="$TMP/seeds" BUILD=$(dirname "$BIN") DATA="$TMP/data" bench/ml1m_seeds.sh >"$TMP/seeds.out" 2>&1
rc=$?
check "ml1m_seeds.sh: runs on seeds already run (rc $rc: $(tail -c 300 "$TMP/seeds.out"))" [ "$rc" -eq 0 ]
want=$("$PY" -c "import statistics as s, sys; v = [float(x) for x in sys.argv[1:]]; print(f'{s.mean(v):.4f} ± {s.stdev(v):.4f}')" "$a0" "$a1")
check "ml1m_seeds.sh: mfbias alone is the mean ± sd of its two eval-cf AUCs ($want)" \
  grep -qF "| mfbias (the slots' encoder) | $want |" "$TMP/seeds.out"
check "ml1m_seeds.sh: the recipe's row from the JSON lines (0.70, 0.72: 0.7100 ± 0.0141; 110 ± 14 s)" \
  grep -qF "| CoLLM, the recipe (bench/ml1m.sh) | 0.7100 ± 0.0141 | 0.6000 ± 0.0000 | 0.8000 ± 0.0000 | 0.5000 ± 0.0000 | 110 ± 14 (all stages) |" \
  "$TMP/seeds.out"
check "ml1m_seeds.sh: no row for models it does not have" bash -c "! grep -q '^| DIN' '$TMP/seeds.out'"
# bad input: a seed file that is not the recipe's JSON line, a model without its training log
cp "$TMP/seeds/seed1.json" "$TMP/seed1.keep"
printf 'train: out of memory\n' >"$TMP/seeds/seed1.json"
expect_error "ml1m_seeds: a seed file without its JSON line" \
  "^ml1m_seeds: $TMP/seeds/seed1.json does not end with bench/ml1m.sh's JSON line" \
  env SEEDS="0 1" OUTDIR="$TMP/seeds" BUILD="$(dirname "$BIN")" DATA="$TMP/data" bench/ml1m_seeds.sh
mv "$TMP/seed1.keep" "$TMP/seeds/seed1.json"
mv "$TMP/seeds/work1/cf.gguf.log.jsonl" "$TMP/cf.log.keep"
expect_error "ml1m_seeds: a model without its training log" "^ml1m_seeds: $TMP/seeds/work1/cf.gguf has no training log" \
  env SEEDS="0 1" OUTDIR="$TMP/seeds" BUILD="$(dirname "$BIN")" DATA="$TMP/data" bench/ml1m_seeds.sh
echo 'not json' >"$TMP/seeds/work1/cf.gguf.log.jsonl"
expect_error "ml1m_seeds: a training log that is not JSON lines" "^ml1m_seeds: $TMP/seeds/work1/cf.gguf.log.jsonl is not a training log" \
  env SEEDS="0 1" OUTDIR="$TMP/seeds" BUILD="$(dirname "$BIN")" DATA="$TMP/data" bench/ml1m_seeds.sh
mv "$TMP/cf.log.keep" "$TMP/seeds/work1/cf.gguf.log.jsonl"
# bench/genre_titles.sh: genres before a final "(YYYY)", at the end otherwise; rows without genres as they are
G=$TMP/gshared/data/ml-1m; mkdir -p "$G"
printf 'iid\tmovie_id\tgenres\n1\t10\tComedy|Crime\n2\t20\tDrama\n3\t30\t\n' >"$G/item_map.tsv"
printf 'iid\ttitle\n0\t\n1\tSting, The (1973)\n2\tNo Year\n3\tPlain (1990)\n4\tUnmapped (2000)\n' >"$G/items.tsv"
for f in train valid valid_small; do printf 'uid\tiid\tlabel\n' >"$G/$f.tsv"; done
printf 'iid\ttitle\n0\t\n1\tSting, The [Comedy, Crime] (1973)\n2\tNo Year [Drama]\n3\tPlain (1990)\n4\tUnmapped (2000)\n' >"$TMP/g.want"
check "genre_titles.sh: titles with genres" bash -c \
  "COLLM_SHARED='$TMP/gshared' SCRATCH='$TMP/gout' PREPARE_ONLY=1 bench/genre_titles.sh 2>/dev/null && cmp '$TMP/gout/items.tsv' '$TMP/g.want' && [ -L '$TMP/gout/train.tsv' ]"
printf 'iid\tmovie_id\n1\t10\n' >"$G/item_map.tsv"
expect_error "genre_titles: no genres column" "^genre_titles: $G/item_map.tsv has no third column 'genres'" \
  env COLLM_SHARED="$TMP/gshared" SCRATCH="$TMP/gout2" PREPARE_ONLY=1 bench/genre_titles.sh
rm "$G/items.tsv"
expect_error "genre_titles: a missing file" "^genre_titles: $G/items.tsv is missing" \
  env COLLM_SHARED="$TMP/gshared" SCRATCH="$TMP/gout2" PREPARE_ONLY=1 bench/genre_titles.sh
# bench/grouped_share.py
printf 'uid\tiid\tlabel\ttimestamp\this\n1\t1\t1\t1\t0\n2\t2\t0\t2\t0\n3\t3\t1\t3\t0\n' >"$TMP/gs.tsv"
printf '1 5 |1 2 3 4 5\n0 5 |2 2 3 4 5\n1 5 |3 2 3 4 5\n' >"$TMP/gs1.txt"
check "grouped_share.py: nothing shared, every FLOP computed" bash -c \
  "[ \"\$('$PY' bench/grouped_share.py '$TMP/gs1.txt' '$TMP/gs.tsv' | cut -d, -f4-)\" = ' \"shuffled\": 1.0, \"grouped\": 1.0}' ]"
printf 'uid\tiid\tlabel\ttimestamp\this\n1\t1\t1\t1\t0\n1\t2\t0\t2\t0\n' >"$TMP/gs2.tsv"
printf '1 5 |1 2 3 4 5\n0 5 |1 2 3 4 6\n' >"$TMP/gs2.txt"
check "grouped_share.py: two prompts sharing 4 of 5 positions" "$PY" -c "
import json, subprocess
C, Q, KV, F, L, H = 256, 256, 256, 688, 4, 4
W = C * (Q + 2 * KV) + Q * C + 3 * C * F
last = 2 * Q * 5 + 2 * H * C * 5 + 2 * Q * C + 2 * (C * Q + Q * C + 3 * C * F) + 2 * C  # the last row of a prompt
row = lambda t: (L - 1) * (2 * W + 4 * Q * (t + 1)) + 2 * C * KV  # position t in every layer but the last, its key there
whole = sum(row(t) for t in range(5)) + last
done = sum(row(t) for t in range(4)) + 2 * (row(4) + last)
d = json.loads(subprocess.check_output(['$PY', 'bench/grouped_share.py', '$TMP/gs2.txt', '$TMP/gs2.tsv']))
assert d['groups'] == 1 and d['shuffled'] == round(done / (2 * whole), 4) < 1, (d, done / (2 * whole))
assert d['grouped'] == d['shuffled'], d"
expect_error "grouped_share.py: prompts not for these rows" "^grouped_share: 3 prompts for 2 rows of $TMP/gs2.tsv" \
  "$PY" bench/grouped_share.py "$TMP/gs1.txt" "$TMP/gs2.tsv"
# bench/profile_steady.py on a hand-made `perf script` of two threads sampled at 10 Hz (5 samples a thread
# in a half second): half second 0 tokenises (left out), 1 holds the first update, a burst of three
# samples 0.02 s apart and one more at 0.8 s (left out: the window opens after the burst's half
# second; the 0.8 s sample is the second update), 2-4 are the steps (the worker misses its sample at
# 1.75 s: one gap of a period), 5 is as full as a step's but comes after the last update (left out).
# Kept: 29 of the 30 samples they could hold; products 25 of them (the main thread 4, 4, 3 and the
# worker 5, 4, 5); idle 0.1 s of 2.4 s of sampled thread time; the products' rate
# 50 / (29/30 x 25/29 x 100) = 0.6 of the sgemm rate.
"$PY" - "$TMP/perf.txt" <<'PY'
import sys
out = []
def sample(tid, t, *frames):
    out.append(f"{tid} {t:.6f}: \n" + "".join(f"\t{0x1000 + k:x} {f}+0x10 (/x/libcollm.so.0)\n" for k, f in enumerate(frames)) + "\n")
for k in range(5):
    sample(1, 0.1 * k, "collm_tok_spm_encode", "collm_encode", "main")
    sample(2, 0.1 * k + 0.05, "gemm_micro_rows", "worker_main")
for t in (0.5, 0.52, 0.54):
    sample(1, t, "collm_ops_adam_update_v4", "optim_task", "collm_optim_step_fused", "main")
sample(1, 0.8, "optim_task", "main")
for k in range(5):
    sample(2, 0.55 + 0.1 * k, "gemm_micro_rows", "worker_main")
for b in (2, 3, 4):
    for k in range(5):
        t = 0.5 * b + 0.1 * k
        leaf = "collm_ops_swiglu_forward_v3" if k == 0 else "optim_task" if (b, k) == (4, 4) else "gemm_micro_rows"
        sample(1, t, leaf, "fused_ffn_task", "pool_run", "main")
        if (b, k) != (3, 2):
            sample(2, t + 0.05, "gemm_micro_rows", "worker_main")
for k in range(5):
    sample(1, 2.5 + 0.1 * k, "collm_ops_axpy_v3", "main")
    sample(2, 2.55 + 0.1 * k, "gemm_micro_rows", "worker_main")
open(sys.argv[1], "w").write("".join(out))
PY
check "profile_steady.py: busy 29/30, products 25/29, idle 1/24, products at 0.6 of sgemm" "$PY" -c "
import json, subprocess
out = subprocess.check_output(['$PY', 'bench/profile_steady.py', '$TMP/perf.txt', '2', '10', '50', '100'], text=True)
d = json.loads(out.splitlines()[-1])
ok = lambda k, v: abs(d[k] - round(v, 4)) < 1e-12 or print(k, d[k], v)
assert ok('busy', 29 / 30) and ok('gemm', 25 / 29) and ok('idle', 1 / 24), out
assert ok('fraction_of_sgemm', 0.5) and ok('products_of_sgemm', 0.6), out
assert d['passes'] == {'collm_ops_swiglu_forward_v3': round(3 / 29, 4), 'optim_task': round(1 / 29, 4)}, d
assert d['busy_window'] == d['busy'], d  # every half second of the steps was steady"
sed 's/optim/other/g' "$TMP/perf.txt" >"$TMP/perf-noopt.txt"
expect_error "profile_steady.py: not a training run" "^profile_steady: no sample of the optimizer" \
  "$PY" bench/profile_steady.py "$TMP/perf-noopt.txt" 2 10
printf 'not perf output\n' >"$TMP/perf-bad.txt"
expect_error "profile_steady.py: not perf script output" "^profile_steady: $TMP/perf-bad.txt: not a" \
  "$PY" bench/profile_steady.py "$TMP/perf-bad.txt" 2 10
expect_error "profile_step.sh: a bad STEPS" "^profile_step: STEPS='x' is not a positive integer" env STEPS=x bench/profile_step.sh
expect_error "profile_step.sh: HZ 0" "^profile_step: HZ='0' is not a positive integer" env HZ=0 bench/profile_step.sh
expect_error "profile_steady.py: no threads" "^profile_steady: THREADS 0, HZ 10 and the rates must be positive" \
  "$PY" bench/profile_steady.py "$TMP/perf.txt" 0 10
expect_error "row_features.py: no fusion_objective.sh output" "^row_features: $TMP/nowork/fusion-objective/fit.json not found" \
  "$PY" bench/row_features.py "$TMP/nowork"
finish
