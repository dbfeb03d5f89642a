#!/usr/bin/env bash
# MF benchmark on ml-1m: (1) bench/mf_bench.c times one training epoch, the
# scoring of valid and the evaluator, on 1 and 2 threads; (2) one full
# `collm train-cf` run with the default settings (lr 1e-2, wd 1e-4, batch
# 2048, patience 20) until early stop, printing epochs, seconds and the best
# valid AUC/UAUC, then `collm eval-cf` on valid and valid_small.
#   usage: bench/mf.sh [BUILD dir, default build]   (DATA=..., THREADS=2)
# Run on an idle machine; the full run takes ~10-20 s on 2 cores.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-${1:-build}}
DATA=${DATA:-$(cd .. && pwd)/shared/data/ml-1m}
THREADS=${THREADS:-2}
OUT=${OUT:-$BUILD/bench-tmp}
mkdir -p "$OUT"
make -s BUILD="$BUILD" "$BUILD/bench/mf_bench" "$BUILD/collm"
echo "load before: $(cat /proc/loadavg)"
"$BUILD/bench/mf_bench" --data "$DATA" --epochs 10 --threads 1,2

echo "== full training (defaults), $THREADS threads"
start=$(date +%s.%N)
"$BUILD/collm" train-cf --model mf --data "$DATA" --out "$OUT/mf.gguf" --threads "$THREADS" 2>"$OUT/train.log"
end=$(date +%s.%N)
grep -E '^train-cf: [0-9]+ epochs' "$OUT/train.log"
awk -v s="$start" -v e="$end" 'BEGIN { printf "wall (load + train + save): %.1f s\n", e - s }'
for split in valid valid_small; do
  echo "eval-cf $split: $("$BUILD/collm" eval-cf --cf "$OUT/mf.gguf" --data "$DATA" --split "$split" --json)"
done
echo "load after:  $(cat /proc/loadavg)"
