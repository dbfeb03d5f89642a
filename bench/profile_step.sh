#!/usr/bin/env bash
# Where collm's stage-1 training step spends its time (issue 11): the
# threads' busy share, the matrix products' share of it, every other pass,
# the threads' idle gaps and the rate the products run at against the
# sgemm 2048^3 rate of the same run. The figures of docs/speed.md's
# profiles come from this script.
#
# It trains stage 1 as bench/train_speed.sh does (the peer's model, grouped
# batches of BATCH, two epochs of STEPS steps, THREADS threads) with a
# frame-pointer build of collm (FP_BUILD) under `perf record -F HZ -g`, then
# bench/profile_steady.py keeps the steady half seconds (the start, the
# epoch ends and the end fall out) and prints the breakdown and one JSON
# line. The useful GFLOP/s are the run's own (its log's second epoch:
# samples/s x 3 x the forward GFLOP a sample computed), the sgemm rate the
# better of a probe before and one after it (build/bench/sgemm).
#
# OpenBLAS's core is chosen as in train_speed.sh (BENCH_OPENBLAS_CORETYPE);
# collm's kernels follow COLLM_ISA. On an AVX-512 host the AVX2 code path is
#   BENCH_OPENBLAS_CORETYPE=Haswell COLLM_ISA=x86-64-v3 bench/profile_step.sh
# Run on an idle machine (perf wants root, or perf_event_paranoid <= 1).
#   usage: bench/profile_step.sh
#   env:   BUILD=build FP_BUILD=build-fp STEPS=60 BATCH=32 THREADS=2 HZ=999 S1_ORDER=grouped
#          PYTHON=/usr/bin/python3
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build} FP_BUILD=${FP_BUILD:-build-fp}
SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
STEPS=${STEPS:-60} BATCH=${BATCH:-32} THREADS=${THREADS:-2} HZ=${HZ:-999} S1_ORDER=${S1_ORDER:-grouped}
PYTHON=${PYTHON:-/usr/bin/python3}
for v in STEPS BATCH THREADS HZ; do
  case ${!v} in '' | *[!0-9]* | 0*) echo "profile_step: $v='${!v}' is not a positive integer" >&2; exit 1 ;; esac
done
command -v perf >/dev/null 2>&1 || { echo "profile_step: perf is missing: run scripts/setup.sh --bench" >&2; exit 1; }
make -s BUILD="$BUILD" "$BUILD/collm" "$BUILD/bench/sgemm"
make -s BUILD="$FP_BUILD" OPT="-O2 -mtune=native -fno-omit-frame-pointer" "$FP_BUILD/collm"
BIN=$FP_BUILD/collm
W=$BUILD/bench/train_speed # the model train_speed.sh trains (made here when missing)
P=$BUILD/bench/profile_step
mkdir -p "$W" "$P"
. bench/lib.sh
bench_openblas_best
bench_speed_base_model "$W"
bench_print_kernels

sg1=$("$BUILD/bench/sgemm" --threads "$THREADS")
rm -f "$P/s1.gguf" "$P"/s1.gguf.*
perf record -q -F "$HZ" -g -o "$P/perf.data" -- "$BIN" train --stage 1 --full --batch-order "$S1_ORDER" \
  --base "$W/base.gguf" --data "$SHARED/data/ml-1m" --out "$P/s1.gguf" --batch "$BATCH" --steps-per-epoch "$STEPS" \
  --max-epochs 2 --patience 5 --warmup-steps 1 --eval-rows 64 --eval-batch "$BATCH" --threads "$THREADS" --quiet \
  >/dev/null 2>"$P/perf.err" || { echo "profile_step: the profiled run failed:" >&2; tail -5 "$P/perf.err" >&2; exit 1; }
sg2=$("$BUILD/bench/sgemm" --threads "$THREADS")
perf script -i "$P/perf.data" -F tid,time,ip,sym >"$P/perf.txt" 2>"$P/script.err" ||
  { echo "profile_step: perf script failed:" >&2; tail -3 "$P/script.err" >&2; exit 1; }
rates=$("$PYTHON" - "$P/s1.gguf.log.jsonl" "$sg1" "$sg2" <<'PY'
import json, sys
s1 = [json.loads(l) for l in open(sys.argv[1])][-1]  # the second epoch
sg = max(json.loads(a).get("sgemm_gflops") or 0 for a in sys.argv[2:4])
if not sg > 0:
    sys.exit("profile_step: the sgemm probe gave no rate")
print(s1["samples_per_second"] * 3 * s1["forward_gflop_per_sample"], sg)
PY
)
# shellcheck disable=SC2086  # (two numbers)
"$PYTHON" bench/profile_steady.py "$P/perf.txt" "$THREADS" "$HZ" $rates
