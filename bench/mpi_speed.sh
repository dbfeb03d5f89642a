#!/usr/bin/env bash
# The MPI engine's overhead on one machine (docs/scaling.md): stage 1 full
# fine-tuning of the recipe-shaped model (Llama, Llama-2 vocabulary 32,000,
# d 256, 4 layers, 4 heads, n_ff 688: 19.5 M parameters) on ML-1M prompts,
# global batch BATCH, as 1 rank x 2 threads and as 2 ranks x 1 thread on the
# same 2 cores, alternating for ROUNDS rounds. samples/s is the last epoch's
# (the first one warms up) from the training log, which rank 0 writes. The
# figure shows the engine's cost (gradient allreduce, sharded evaluation,
# two processes' memory traffic), not a speedup: the cores are the same.
#   usage: bench/mpi_speed.sh      env: BUILD=build ROUNDS=2 BATCH=32 STEPS=6 EPOCHS=2 ROWS=4000
# ROWS: the first ROWS training rows (a copy of the dataset folder in a temp
# dir), so that encoding the prompts does not dominate the run.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-2}; BATCH=${BATCH:-32}; STEPS=${STEPS:-6}; EPOCHS=${EPOCHS:-2}; ROWS=${ROWS:-4000}
SHARED=${COLLM_SHARED:-../shared}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T/data"
for f in items.tsv valid_small.tsv; do cp "$SHARED/data/ml-1m/$f" "$T/data/"; done
[ -f "$SHARED/data/ml-1m/item_noun.txt" ] && cp "$SHARED/data/ml-1m/item_noun.txt" "$T/data/"
head -n $((ROWS + 1)) "$SHARED/data/ml-1m/train.tsv" >"$T/data/train.tsv"
"$BUILD/collm" init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" \
  --n-embd 256 --n-layer 4 --n-head 4 --n-ff 688 --seed 1 --out "$T/base.gguf" >/dev/null
args=(train --stage 1 --full --base "$T/base.gguf" --data "$T/data" --batch "$BATCH" --steps-per-epoch "$STEPS"
      --max-epochs "$EPOCHS" --patience 100 --eval-rows 64 --warmup-steps 5 --quiet)
last_sps() { tail -n 1 "$1" | sed -E 's/.*"samples_per_second":([0-9.]+).*/\1/'; }
# the last epoch's seconds in the gradient allreduce: on the rank that came
# last (the transfer and copies) and the others' extra wait (load imbalance)
last_comm() { tail -n 1 "$1" | sed -E 's/.*"train_seconds":([0-9.]+).*"allreduce_seconds":([0-9.]+),"allreduce_wait_seconds":([0-9.]+),"allreduce_mb_per_step":([0-9.]+).*/train \1 s, allreduce \2 s + wait \3 s, \4 MB a step/'; }
echo "load before: $(cat /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  "$BUILD/collm" "${args[@]}" --threads 2 --out "$T/one.gguf" >/dev/null
  one=$(last_sps "$T/one.gguf.log.jsonl")
  mpirun -np 2 --oversubscribe --bind-to none "$BUILD/collm" "${args[@]}" --threads 1 --out "$T/two.gguf" >/dev/null
  two=$(last_sps "$T/two.gguf.log.jsonl")
  echo "round $r: 1 rank x 2 threads $one samples/s; 2 ranks x 1 thread $two samples/s ($(last_comm "$T/two.gguf.log.jsonl")); ratio $(echo "$two / $one" | bc -l | cut -c1-5)"
done
echo "load after:  $(cat /proc/loadavg)"
