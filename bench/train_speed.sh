#!/usr/bin/env bash
# Training and scoring speed: collm against the PyTorch peer
# (../shared/peers/torch, PyTorch 1.13 from Debian: `scripts/setup.sh --bench`)
# on the same model and the same tokens, in one run, alternating (ROUNDS
# rounds: sgemm, collm, peer). The model is the peer's: Llama, Llama-2
# vocabulary (32,000), d 256, 4 layers, 4 heads, n_ff 688, untied head read at
# the "Yes" row only; ML-1M prompts encoded once by `collm encode`, which the
# peer reads. Three tasks, BATCH prompts per step:
#   stage 1  full fine-tuning on text-only prompts (AdamW, clip 1.0);
#   stage 2  FECE mapping (256 -> 2560 -> 256) on prompts with ID slots, the
#            LLM frozen, backward to the slots (CF vectors: an MF of dim 256);
#   scoring  the first EVAL_ROWS valid_small prompts, forward only.
# collm's figures come from its training log (the second epoch of STEPS steps:
# steady state; scoring = EVAL_ROWS / that epoch's evaluation seconds); the
# peer's from its JSON lines (WARM untimed steps, then STEPS). Also printed:
# cblas_sgemm 2048^3 GFLOP/s (build/bench/sgemm, same threads, the better of a
# probe at the start and one at the end of the same round)
# and the useful GFLOP/s of collm's stage 1: samples/s x the FLOPs its samples
# took as computed (3 x the log's forward_gflop_per_sample: a run a prompt
# shares with an earlier prompt of its batch, computed once, is counted once),
# and their ratio to sgemm. The peer's share is its samples/s x the FLOPs of a
# whole prompt (below), all of which it computes. Ends with one JSON line of medians over the
# rounds: collm_stage1 peer_stage1 ratio_stage1 collm_stage2 peer_stage2
# ratio_stage2 collm_scoring peer_scoring ratio_scoring useful_gflops
# sgemm_gflops fraction_of_sgemm, and peer_fraction_of_sgemm (the peer's
# stage-1 useful GFLOP/s over the same sgemm: 3x the peer asks collm for three
# times that share).
# S1_ORDER (default grouped, as bench/ml1m.sh trains stage 1) is collm's
# stage-1 --batch-order: grouped batches hold one user's rows with one history
# side by side and run their common prompt once (docs/speed.md, "Grouped
# batches"); S1_ORDER=shuffled measures plain shuffled batches. The peer takes
# its batches as it always has.
#
# FLOPs of one whole prompt of T tokens (collm_llm_trainer_forward_flops counts
# the same for the rows and keys it computes) (2 per multiply-add; W = the matrix
# weights of a layer, C(Q+2KV) + QC + 3CF; causal attention 4·hd per
# query-key pair per head): forward = 3 layers x (2W·T + 2Q·T(T+1)) + the last
# layer's keys over T rows (2C·KV·T), its attention at the last row with the
# values folded behind it (scores 2Q·T, each head's weighted sum of the T
# normalised inputs 2·H·C·T, then Wv 2QC), everything else at the last row
# only (2(CQ + QC + 3CF)) + the answer row (2C). Stage 1 = 3 x forward
# (backward: inputs and weights). Stage 2 = forward + the input gradients
# from the first slot row on (rows before it do not depend on the slots;
# attention backward 2 x its forward) + the FECE MLP (3 x 2 x 2 x 256 x 2560
# per slot). Scoring = forward. Norms, RoPE, SwiGLU and the optimizer are
# not counted: they are not the work, only its cost. (Before the fold, the
# last layer's values were projected at every row: 2C·KV·T more, and 2Q·T
# in place of 2·H·C·T + 2QC.)
#
# Run on an idle machine. Defaults are the measurement; tiny settings for a
# smoke test: ROUNDS=1 STEPS=2 WARM=1 ROWS=2000 EVAL_ROWS=64.
#   usage: bench/train_speed.sh
#   env:   BUILD=build ROUNDS=3 STEPS=20 WARM=2 BATCH=32 EVAL_ROWS=1024 ROWS=0 (0 = every training row)
#          THREADS=2 VARIANT=packedtrim (the peer's fastest: packed, last layer at the last rows)
#          PYTHON=/usr/bin/python3 (Debian's, with python3-torch) PEER=../shared/peers/torch/torch_collm.py
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
ROUNDS=${ROUNDS:-3} STEPS=${STEPS:-20} WARM=${WARM:-2} BATCH=${BATCH:-32} EVAL_ROWS=${EVAL_ROWS:-1024} ROWS=${ROWS:-0}
THREADS=${THREADS:-2} VARIANT=${VARIANT:-packedtrim} S1_ORDER=${S1_ORDER:-grouped}
PYTHON=${PYTHON:-/usr/bin/python3}
PEER=${PEER:-$SHARED/peers/torch/torch_collm.py}
BIN=$BUILD/collm
W=$BUILD/bench/train_speed
DATA=$SHARED/data/ml-1m
[ -f "$PEER" ] || { echo "train_speed: the peer $PEER is missing" >&2; exit 1; }
"$PYTHON" -c "import torch" 2>/dev/null || { echo "train_speed: $PYTHON has no torch: run scripts/setup.sh --bench" >&2; exit 1; }
make -s BUILD="$BUILD" "$BIN" "$BUILD/bench/sgemm"
mkdir -p "$W"
W=$(cd "$W" && pwd) # absolute: the peer runs inside it
# every program at OpenBLAS's best kernels for this CPU; the peer's idle threads sleep
. bench/lib.sh
bench_openblas_best
bench_print_kernels

bench_speed_base_model "$W"
# (the CF vectors only feed the slots: their quality does not change the work)
[ -f "$W/mf.gguf" ] || "$BIN" train-cf --model mf --data "$DATA" --out "$W/mf.gguf" --dim 256 --max-epochs 1 \
  --threads "$THREADS" >/dev/null 2>"$W/train-cf.err" || { cat "$W/train-cf.err" >&2; exit 1; }
stamp="rows=$ROWS eval_rows=$EVAL_ROWS"
if [ "$(cat "$W/peer/stamp" 2>/dev/null)" != "$stamp" ]; then
  "$BIN" encode --base "$W/base.gguf" --cf "$W/mf.gguf" --data "$DATA" --out "$W/peer" --rows "$ROWS" \
    --eval-rows "$EVAL_ROWS" --threads "$THREADS" >/dev/null
  echo "$stamp" >"$W/peer/stamp"
fi

# collm: two epochs of STEPS steps, the second read from the log
collm_train() { # stage out eval_rows extra...
  local stage=$1 out=$2 eval_rows=$3; shift 3
  rm -f "$out" "$out".*
  "$BIN" train --stage "$stage" --base "$W/base.gguf" --data "$DATA" --out "$out" --batch "$BATCH" \
    --steps-per-epoch "$STEPS" --max-epochs 2 --patience 5 --warmup-steps 1 --eval-rows "$eval_rows" \
    --eval-batch "$BATCH" --threads "$THREADS" --quiet "$@" >/dev/null
}

echo "collm vs PyTorch peer: $ROUNDS rounds, $STEPS steps of $BATCH, scoring $EVAL_ROWS prompts, $THREADS threads"
echo "load before: $(cat /proc/loadavg)"
: >"$W/rounds.jsonl"
for r in $(seq 1 "$ROUNDS"); do
  sg=$("$BUILD/bench/sgemm" --threads "$THREADS")
  collm_train 1 "$W/s1.gguf" "$EVAL_ROWS" --full --batch-order "$S1_ORDER"
  collm_train 2 "$W/s2.gguf" "$BATCH" --cf "$W/mf.gguf"
  peer=$(cd "$W" && "$PYTHON" "$PEER" --dir peer --what "s1:$VARIANT,s2:$VARIANT,eval:$VARIANT" --steps "$STEPS" \
           --warm "$WARM" --batch "$BATCH" --eval_rows "$EVAL_ROWS" --threads "$THREADS" 2>"$W/peer.err") ||
    { echo "train_speed: the peer failed:" >&2; tail -5 "$W/peer.err" >&2; exit 1; }
  sg2=$("$BUILD/bench/sgemm" --threads "$THREADS")
  "$PYTHON" - "$W" "$sg" "$peer" "$EVAL_ROWS" "$sg2" >>"$W/rounds.jsonl" <<'PY'
import json, sys
w, peer, eval_rows = sys.argv[1], sys.argv[3], int(sys.argv[4])
# the round's ceiling: the better of the probes before collm and after the peer
# (the machine's speed drifts within a round; a slow moment must not lower it)
sg = max((json.loads(a) for a in (sys.argv[2], sys.argv[5])), key=lambda d: d["sgemm_gflops"])
last = lambda path: [json.loads(l) for l in open(path)][-1]
s1, s2 = last(w + "/s1.gguf.log.jsonl"), last(w + "/s2.gguf.log.jsonl")
p = {d["task"]: d for d in map(json.loads, peer.split("\n")) if "task" in d}
print(json.dumps({"sgemm": sg["sgemm_gflops"], "collm_stage1": s1["samples_per_second"],
                  "collm_stage1_gflop": 3 * s1["forward_gflop_per_sample"],
                  "collm_stage2": s2["samples_per_second"], "collm_scoring": eval_rows / s1["eval_seconds"],
                  "peer_stage1": p["s1"]["samples_per_s"], "peer_stage2": p["s2"]["samples_per_s"],
                  "peer_scoring": p["eval"]["prompts_per_s"]}))
PY
  tail -1 "$W/rounds.jsonl" | sed "s/^/round $r: /"
done
echo "load after:  $(cat /proc/loadavg)"

"$PYTHON" - "$W" "$EVAL_ROWS" <<'PY'
import json, statistics, sys
w, eval_rows = sys.argv[1], int(sys.argv[2])
C, Q, KV, F, L, H = 256, 256, 256, 688, 4, 4
Wl = C * (Q + 2 * KV) + Q * C + 3 * C * F  # matrix weights of one layer

def forward(T):
    last = 2 * C * KV * T + 2 * Q * T + 2 * H * C * T + 2 * Q * C + 2 * (C * Q + Q * C + 3 * C * F)
    return (L - 1) * (2 * Wl * T + 2 * Q * T * (T + 1)) + last + 2 * C

def stage2(T, s0, n_slots):  # forward + input gradients from the first slot row s0 on + the FECE MLP
    k = T - s0
    # the last layer: keys' input gradients at k rows; the attention's (dP, dQ, dK, the values' dX) over T keys
    last = 2 * C * KV * k + 2 * (C * Q + Q * C + 3 * C * F) + 2 * Q * C + 4 * Q * T + 4 * H * C * T
    bwd = (L - 1) * (2 * Wl * k + 4 * Q * (T * (T + 1) - s0 * (s0 + 1))) + last
    return forward(T) + bwd + 3 * 2 * 2 * 256 * 2560 * n_slots

def prompts(name, n=None):
    out = []
    for line in open(f"{w}/peer/{name}"):
        head = line.split("|")[0].split()
        slots = [int(s) for s in head[2].split(",")] if len(head) > 2 else []
        out.append((int(head[1]), slots))
        if n and len(out) == n: break
    return out

mean = lambda xs: sum(xs) / len(xs)
flop1 = mean([3 * forward(T) for T, _ in prompts("s1_train.txt")])
flop2 = mean([stage2(T, min(s), len(s)) for T, s in prompts("s2_train.txt")])
flop_e = mean([forward(T) for T, _ in prompts("s1_vs.txt", eval_rows)])
rounds = [json.loads(l) for l in open(w + "/rounds.jsonl")]
for r in rounds:
    for t in ("stage1", "stage2", "scoring"): r["ratio_" + t] = r["collm_" + t] / r["peer_" + t]
    # collm's useful work is what it computed (its log: forward FLOPs per sample
    # as computed, shared runs not counted; backward twice the forward as in flop1)
    r["useful_gflops"] = r["collm_stage1"] * r["collm_stage1_gflop"]
    r["fraction_of_sgemm"] = r["useful_gflops"] / r["sgemm"]
    r["peer_fraction_of_sgemm"] = r["peer_stage1"] * flop1 / 1e9 / r["sgemm"]
med = lambda k: statistics.median(r[k] for r in rounds)
print(f"\nmedians over {len(rounds)} rounds (useful MFLOP per sample: stage 1 {flop1 / 1e6:.0f}, "
      f"stage 2 {flop2 / 1e6:.0f}, scoring {flop_e / 1e6:.0f}):")
for t, unit, flop in (("stage1", "samples/s", flop1), ("stage2", "samples/s", flop2), ("scoring", "prompts/s", flop_e)):
    c, p = med("collm_" + t), med("peer_" + t)
    print(f"  {t:8s} collm {c:7.1f} {unit}  peer {p:7.1f}  ratio {med('ratio_' + t):.2f}x   "
          f"useful GFLOP/s collm {c * flop / 1e9:6.1f}  peer {p * flop / 1e9:6.1f}")
print(f"  (the useful GFLOP/s above count a whole prompt's FLOPs per sample; collm's stage 1 computed "
      f"{1e3 * med('collm_stage1_gflop'):.0f} MFLOP a sample, {100 * med('collm_stage1_gflop') * 1e9 / flop1:.0f}% of "
      f"them: its runs shared within a batch)")
print(f"  sgemm 2048^3 {med('sgemm'):.1f} GFLOP/s; collm stage 1 computed {med('useful_gflops'):.1f} GFLOP/s "
      f"= {100 * med('fraction_of_sgemm'):.0f}% of it")
print(f"  the peer's stage 1 is {100 * med('peer_fraction_of_sgemm'):.0f}% of that sgemm: 3x the peer, computing "
      f"whole prompts, would be {300 * med('peer_fraction_of_sgemm'):.0f}% of it")
keys = ["collm_stage1", "peer_stage1", "ratio_stage1", "collm_stage2", "peer_stage2", "ratio_stage2", "collm_scoring",
        "peer_scoring", "ratio_scoring", "useful_gflops"]
out = {k: round(med(k), 4) for k in keys}
out["sgemm_gflops"] = round(med("sgemm"), 4)
out["fraction_of_sgemm"] = round(med("fraction_of_sgemm"), 4)
out["peer_fraction_of_sgemm"] = round(med("peer_fraction_of_sgemm"), 4)
print(json.dumps(out))
PY
