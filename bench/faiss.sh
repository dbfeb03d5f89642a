#!/usr/bin/env bash
# Retrieval benchmark (bench/faiss_bench.c): Flat vs HNSW32 vs IVF on a
# synthetic clustered catalogue, d=64, 1000 single-query searches for the
# top 100 on 1 and 2 threads; build time, latency mean/p50/p99, recall@100
# against an exact sgemm top-100.
#   usage: bench/faiss.sh [BUILD dir, default build]
#   ITEMS (default 200000; 1000000 is the full-size run, ~10+ min on 2 cores:
#   the HNSW build dominates), NLIST (default 1024 for 200k; use 4096 for 1M),
#   DIM (64), QUERIES (1000), THREADS (1,2).
# Run on an idle machine.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-${1:-build}}
ITEMS=${ITEMS:-200000}
NLIST=${NLIST:-1024}
make -s BUILD="$BUILD" "$BUILD/bench/faiss_bench"
# Same OpenMP setting the collm binary gives itself (src/cli/main.c re-execs
# with it): idle OpenMP threads sleep. libgomp reads it at load time only.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
echo "load before: $(cat /proc/loadavg)"
"$BUILD/bench/faiss_bench" --items "$ITEMS" --dim "${DIM:-64}" --queries "${QUERIES:-1000}" --k 100 \
  --nlist "$NLIST" --threads "${THREADS:-1,2}"
echo "load after:  $(cat /proc/loadavg)"
