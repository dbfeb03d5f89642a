#!/usr/bin/env bash
# Catalogues beyond one exact index (bench/index_scale.c, docs/scaling.md):
# compressed Faiss factory strings (IVF-PQ, OPQ + IVF-PQ) in 1 and K shards
# against an exact Flat index on a synthetic clustered catalogue (1,000
# centres, d=64): build time, index bytes, resident memory added, recall@100
# on a sample of queries, single-query latency (top 100, one thread), peak
# resident memory of the process.
#   usage: bench/index_scale.sh [BUILD dir, default build]
#   ITEMS (default 1000000; 10000000 wants ~5.2 GB for Flat and a minute or
#   two per configuration on 2 cores), NLIST (1024), PQ (16: bytes per item),
#   SHARDS (4), QUERIES (200), TRAIN_MAX (100000), BUILD_THREADS (2: Faiss
#   threads while building; queries use one), CONFIGS (default below: Flat
#   first, it is the exact reference), REF (a file caching the exact top 100
#   of the queries between runs, so that the configurations can run as
#   separate, shorter invocations: default a temporary file).
# Each configuration is one process, killed after LIMIT seconds (default 60:
# the machine is shared), so one slow configuration does not hold the rest.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-${1:-build}}
ITEMS=${ITEMS:-1000000}
NLIST=${NLIST:-1024}
PQ=${PQ:-16}
SHARDS=${SHARDS:-4}
QUERIES=${QUERIES:-200}
TRAIN_MAX=${TRAIN_MAX:-100000}
LIMIT=${LIMIT:-60}
BUILD_THREADS=${BUILD_THREADS:-2}
make -s BUILD="$BUILD" "$BUILD/bench/index_scale"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
REF=${REF:-$out/ref}
CONFIGS=${CONFIGS:-"Flat:1 IVF$NLIST,Flat:1 IVF$NLIST,PQ$PQ:1 IVF$NLIST,PQ$PQ:$SHARDS OPQ$PQ,IVF$NLIST,PQ$PQ:1"}
echo "load before: $(cat /proc/loadavg); $ITEMS items, d=64, $QUERIES queries, nprobe 32"
for c in $CONFIGS; do
  factory=${c%:*}; shards=${c##*:}
  timeout "$LIMIT" "$BUILD/bench/index_scale" "$ITEMS" 64 "$factory" "$shards" 32 "$QUERIES" "$out/ix.faiss" "$TRAIN_MAX" \
    "$BUILD_THREADS" "$REF" \
    2>/dev/null || echo "{\"factory\":\"$factory\",\"shards\":$shards,\"error\":\"failed or over ${LIMIT}s\"}"
  rm -f "$out"/ix.faiss*
done
echo "load after:  $(cat /proc/loadavg)"
