#!/usr/bin/env bash
# Prefill tokens/s of collm and llama.cpp's llama-bench on the same GGUF files,
# F32, F16, Q8_0, Q4_0, Q4_K, Q6_K, 64/256/512-token prompts, 2 threads.
# The model: a random Llama made by `collm init-model` (768-d, 4 layers, 12
# heads, n_ff 2048, the Llama-2 vocabulary, 77 M parameters, F32), then
# quantised with the peer's `llama-quantize --pure` (every matrix in the type).
# ROUNDS alternating rounds (collm, then llama-bench, per type); in each, both
# warm up once and give the best of REPS runs per length (on a shared machine
# the best run is the one least disturbed); the table shows the medians over
# rounds and collm / llama.cpp.
# collm runs build/bench/prefill (full forward, logits of the last row only,
# as llama-bench's pp test); llama-bench runs -p 64,256,512 -n 0 -r REPS
# (the best of its samples_ts).
#   usage: bench/quant_speed.sh            (ROUNDS=3 REPS=3 THREADS=2 TYPES="F32 ..." WORK=build/bench/quant)
# Needs the peer built once: ../shared/peers/llama.cpp/build.sh build/peers/llama.cpp
# ISA: both sides use the best kernels of this CPU (the peer is built
# -DGGML_NATIVE=ON). What an AVX2-only CPU runs: COLLM_ISA=x86-64-v3 caps collm
# at its AVX2 kernels (no AVX-512 VNNI tiles) and OpenBLAS at Haswell (the
# script sets OPENBLAS_CORETYPE=Haswell unless given), and PEER defaults to
# $BUILD/peers/llama.cpp-avx2, a second copy of the peer configured like
# build.sh but with -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON
# -DGGML_F16C=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF (and the AVX512_* off):
#   COLLM_ISA=x86-64-v3 bench/quant_speed.sh
# The first line of output says which kernels and peer were used.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
PEER_ISA=native
case "${COLLM_ISA:-}" in
  x86-64-v3 | avx2) PEER_ISA=avx2; PEER=${PEER:-$BUILD/peers/llama.cpp-avx2}; export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell} ;;
esac
PEER=${PEER:-$BUILD/peers/llama.cpp}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
TYPES=${TYPES:-F32 F16 Q8_0 Q4_0 Q4_K Q6_K}
WORK=${WORK:-$BUILD/bench/quant}
[ -x "$PEER/bin/llama-bench" ] || { echo "quant_speed: $PEER/bin/llama-bench missing: run $SHARED/peers/llama.cpp/build.sh $PEER" >&2; exit 1; }
make -s BUILD="$BUILD" "$BUILD/collm" "$BUILD/bench/prefill"
mkdir -p "$WORK"
export LD_LIBRARY_PATH="$PEER/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ ! -f "$WORK/m-F32.gguf" ]; then
  "$BUILD/collm" init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" \
    --n-embd 768 --n-layer 4 --n-head 12 --n-ff 2048 --seed 1 --out "$WORK/m-F32.gguf" >/dev/null
fi
QUANTIZE=$PEER/bin/llama-quantize # the AVX2 peer may have only llama-bench: the same files from the native one
[ -x "$QUANTIZE" ] || QUANTIZE=$BUILD/peers/llama.cpp/bin/llama-quantize
for t in $TYPES; do
  [ "$t" = F32 ] || [ -f "$WORK/m-$t.gguf" ] || "$QUANTIZE" --pure "$WORK/m-F32.gguf" "$WORK/m-$t.gguf" "$t" 2 \
    >"$WORK/quantize-$t.log" 2>&1
done
# collm at OpenBLAS's best kernels for this CPU (bench/lib.sh); under COLLM_ISA=x86-64-v3
# the Haswell kernels set above stay
. bench/lib.sh
if [ "$PEER_ISA" = native ]; then bench_openblas_best >/dev/null; else bench_openblas_best keep >/dev/null; fi
RAW="$WORK/raw.tsv"
: >"$RAW"
echo "collm: COLLM_ISA=${COLLM_ISA:-unset} OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; llama.cpp: $PEER"
echo "load before: $(cat /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  for t in $TYPES; do
    "$BUILD/bench/prefill" --model "$WORK/m-$t.gguf" --threads "$THREADS" --reps "$REPS" --lengths 64,256,512 2>/dev/null | tee "$WORK/prefill-$t.log" |
      awk -v t="$t" -v r="$r" '$1 ~ /^pp[0-9]+$/ && $3 == "tok/s" { sub("pp", "", $1); print "collm\t" t "\t" $1 "\t" r "\t" $2 }' >>"$RAW"
    "$PEER/bin/llama-bench" -m "$WORK/m-$t.gguf" -p 64,256,512 -n 0 -r "$REPS" -t "$THREADS" -o json 2>/dev/null |
      /usr/bin/python3 -c '
import json, sys
for e in json.load(sys.stdin):
    print("llama.cpp\t%s\t%d\t%s\t%.1f" % (sys.argv[1], e["n_prompt"], sys.argv[2], max(e.get("samples_ts") or [e["avg_ts"]])))' "$t" "$r" >>"$RAW"
  done
done
echo "load after:  $(cat /proc/loadavg)"
echo "collm $(grep -m1 '^kernels: ' "$WORK/prefill-${TYPES%% *}.log")"
/usr/bin/python3 - "$RAW" "$TYPES" "$THREADS" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
med = {}
for who, t, n, r, v in rows:
    med.setdefault((who, t, int(n)), []).append(float(v))
print("prefill tokens/s, median over rounds of the best of each round's runs (%s threads); ratio = collm / llama.cpp" % sys.argv[3])
print("%-6s %6s %12s %12s %7s" % ("type", "tokens", "collm", "llama.cpp", "ratio"))
for t in sys.argv[2].split():
    for n in (64, 256, 512):
        a, b = med.get(("collm", t, n)), med.get(("llama.cpp", t, n))
        if not a or not b: continue
        ma, mb = statistics.median(a), statistics.median(b)
        print("%-6s %6d %12.1f %12.1f %7.2f" % (t, n, ma, mb, ma / mb))
PY
