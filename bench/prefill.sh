#!/usr/bin/env bash
# Prefill throughput vs llama.cpp (shared/testvectors/README.md §3.2-3.3):
# builds the 58 M-parameter random Llama (512-d, 8 layers, 8 heads, n_ff 1376,
# Llama-2 vocabulary, untied output, F32) with `collm init-model`, then runs
# build/bench/prefill for 64/128/256-token prompts on 2 threads together with
# a cblas_sgemm 2048^3 measurement. Run on an idle machine (both cores).
#   usage: bench/prefill.sh [BUILD dir, default build]
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-${1:-build}}
SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
THREADS=${THREADS:-2}
REPS=${REPS:-5}
make -s BUILD="$BUILD" "$BUILD/collm" "$BUILD/bench/prefill"
MODEL=$BUILD/bench/llama-512d-8l.gguf
if [ ! -f "$MODEL" ]; then
  "$BUILD/collm" init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" \
    --n-embd 512 --n-layer 8 --n-head 8 --n-head-kv 8 --n-ff 1376 --n-ctx 2048 --seed 20250220 --out "$MODEL"
fi
# every program at OpenBLAS's best kernels for this CPU (bench/lib.sh)
. bench/lib.sh
bench_openblas_best
echo "load before: $(cat /proc/loadavg)"
"$BUILD/bench/prefill" --model "$MODEL" --threads "$THREADS" --reps "$REPS" --lengths 64,128,256
echo "load after:  $(cat /proc/loadavg)"
