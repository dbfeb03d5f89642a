#!/usr/bin/env bash
# Training and scoring throughput of the issue's reference shape: a Llama with
# d=256, 4 layers, 4 heads, n_ff 688 (Llama-2 vocabulary), ML-1M prompts
# (stage 1 / tallrec: ~161 tokens on average), batch 32, full fine-tuning.
# Peer: a PyTorch 1.13 CPU implementation of the same model on this machine
# class: ~29 samples/s full fine-tuning, ~47 samples/s inference (issue 4).
# Also reports the share of CPU time spent in OpenBLAS sgemm (perf, when
# available). Run on an idle machine.
#   usage: bench/train_speed.sh   (BUILD=build, STEPS=30)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
STEPS=${STEPS:-30}
BIN=$BUILD/collm
WORK=$BUILD/bench/train_speed
mkdir -p "$WORK"
make -s BUILD="$BUILD" "$BIN"
DATA=$SHARED/data/ml-1m
[ -f "$WORK/base.gguf" ] || "$BIN" init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" \
  --n-embd 256 --n-layer 4 --n-head 4 --n-head-kv 4 --n-ff 688 --seed 1 --out "$WORK/base.gguf" >/dev/null
echo "load before: $(cat /proc/loadavg)"
run() { # stage-1 full fine-tuning: 2 epochs of STEPS steps; the second epoch is the steady state
  "$BIN" train --stage 1 --full --base "$WORK/base.gguf" --data "$DATA" --out "$WORK/s1.gguf" --batch 32 \
    --steps-per-epoch "$STEPS" --max-epochs 2 --patience 5 --eval-rows 1024 --eval-batch 32 --threads 2 --quiet \
    --log "$WORK/log.jsonl" >/dev/null
}
if command -v perf >/dev/null 2>&1 && perf record -q -o "$WORK/perf.data" true 2>/dev/null; then
  perf record -q -o "$WORK/perf.data" -- bash -c "$(declare -f run); BIN=$BIN WORK=$WORK DATA=$DATA STEPS=$STEPS run" 2>/dev/null
  gemm=$(perf report -i "$WORK/perf.data" --no-children --sort symbol -g none 2>/dev/null |
         awk '/%/ && /sgemm|gemm_/ {gsub("%","",$1); s+=$1} END {printf "%.1f", s}')
else
  run; gemm="n/a"
fi
echo "load after:  $(cat /proc/loadavg)"
python3 - "$WORK/log.jsonl" "$gemm" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
last = rows[-1]
train = last["samples_per_second"]
infer = 1024 / last["eval_seconds"]
print(f"training   {train:7.1f} samples/s   PyTorch 1.13 CPU 29   ratio {train/29:.2f}x   (target >= 3x)")
print(f"scoring    {infer:7.1f} prompts/s   PyTorch 1.13 CPU 47   ratio {infer/47:.2f}x")
print(f"GEMM share {sys.argv[2]} % of CPU samples (OpenBLAS sgemm kernels and packing)")
PY
