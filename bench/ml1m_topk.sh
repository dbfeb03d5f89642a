#!/usr/bin/env bash
# Top-K on ML-1M valid for a checkpoint of bench/ml1m.sh (issue 10): a Flat
# Faiss index over the checkpoint's item vectors, the re-ranking weights
# (lambda, popularity) fitted on valid_small and stored in the checkpoint,
# then eval-topk over every valid user (encoder order, retrieval order, LLM
# re-rank, fused, default), as a table and one JSON line.
#   usage: CKPT=build/ml1m.gguf bench/ml1m_topk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_ml1m_paths
INDEX=${INDEX:-${CKPT%.gguf}.faiss}
N=${CANDIDATES:-100}
make -s BUILD="$BUILD" "$BIN"
t0=$(date +%s)
$BIN index --ckpt "$CKPT" --factory Flat --out "$INDEX" --threads "$THREADS" >&2
$BIN fit-fusion --ckpt "$CKPT" --index "$INDEX" --data "$DATA" --split valid_small --candidates "$N" --threads "$THREADS" >&2
$BIN eval-topk --ckpt "$CKPT" --index "$INDEX" --data "$DATA" --split valid --candidates "$N" --threads "$THREADS" >&2
$BIN eval-topk --ckpt "$CKPT" --index "$INDEX" --data "$DATA" --split valid --candidates "$N" --threads "$THREADS" --json
echo "[$(( $(date +%s) - t0 ))s] top-K done" >&2
