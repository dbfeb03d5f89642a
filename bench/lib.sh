# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run).

# bench_openblas_best [keep]: every program of a bench (collm, its peer, the
# sgemm reference) at OpenBLAS's best kernels for this CPU: the AVX-512 ones
# (SkylakeX) where the CPU has AVX-512, also over an inherited narrower
# OPENBLAS_CORETYPE (some machines set Haswell machine-wide, which halves
# OpenBLAS's rate on an AVX-512 CPU; OpenBLAS 0.3.21 does not know Zen 5).
# "keep" leaves the inherited value (an AVX2-only run). BENCH_OPENBLAS_CORETYPE=X
# pins another core name. Idle OpenMP threads (the peers') sleep.
bench_openblas_best() {
  if [ -n "${BENCH_OPENBLAS_CORETYPE:-}" ]; then
    case $BENCH_OPENBLAS_CORETYPE in
      *[!A-Za-z0-9]*) echo "bench: BENCH_OPENBLAS_CORETYPE='$BENCH_OPENBLAS_CORETYPE' is not an OpenBLAS core name" >&2
                      return 1 ;;
    esac
    export OPENBLAS_CORETYPE=$BENCH_OPENBLAS_CORETYPE
  elif [ "${1:-}" != keep ] && grep -q avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX
  fi
  export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
  echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset (OpenBLAS detects the CPU)}"
}

# bench_ml1m_paths: the defaults of the scripts that work on the ML-1M
# recipe's checkpoint, each overridable from the environment: BUILD (build),
# SHARED (../shared, or COLLM_SHARED), DATA (ML-1M there), CKPT
# ($BUILD/ml1m.gguf), W (the recipe's work directory: WORK, or
# $BUILD/ml1m-work), THREADS (2); and BIN, the binary of BUILD. Run from the
# repository root.
# shellcheck disable=SC2034  # (W, BIN: read by the scripts that source this)
bench_ml1m_paths() {
  BUILD=${BUILD:-build}
  SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
  DATA=${DATA:-$SHARED/data/ml-1m}
  CKPT=${CKPT:-$BUILD/ml1m.gguf}
  W=${WORK:-$BUILD/ml1m-work}
  THREADS=${THREADS:-2}
  BIN=$BUILD/collm
}

# bench_fusion_part_files FIT_JSON: the model files of a recipe checkpoint's
# fused parts in W (after bench_ml1m_paths), in the order fit-score lists them
# (FIT_JSON: `collm fit-score --dry-run --json`): part 0 the checkpoint's own
# encoder (cf.gguf), then each extra as bench/ml1m.sh wrote it (fuse.gguf for
# the first of FUSE_KIND, fuse-KIND.gguf for the others). Sets the array
# part_files; a missing file is a one-line error naming it.
bench_fusion_part_files() {
  local kinds k
  mapfile -t kinds < <("${PYTHON:-/usr/bin/python3}" -c 'import json,sys; [print(e["kind"]) for e in json.load(open(sys.argv[1]))["extras"]]' "$1")
  part_files=("$W/cf.gguf")
  for ((k = 0; k < ${#kinds[@]}; k++)); do
    if [ "$k" = 0 ]; then part_files+=("$W/fuse.gguf"); else part_files+=("$W/fuse-${kinds[$k]}.gguf"); fi
  done
  for k in "${!part_files[@]}"; do
    [ -f "${part_files[$k]}" ] || { echo "$(basename "$0" .sh): part $k's model ${part_files[$k]} not found" >&2; return 1; }
  done
}

# bench_speed_base_model W: the model the speed benches train (the PyTorch
# peer's shape: Llama, Llama-2 vocabulary, d 256, 4 layers, 4 heads, n_ff 688,
# seed 1) in W/base.gguf, made once (BIN and SHARED set by the caller).
bench_speed_base_model() {
  [ -f "$1/base.gguf" ] && return 0
  "$BIN" init-model --arch llama --vocab-from "$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" \
    --n-embd 256 --n-layer 4 --n-head 4 --n-head-kv 4 --n-ff 688 --seed 1 --out "$1/base.gguf" >/dev/null
}

# bench_print_kernels: the kernels collm runs (its ISA after COLLM_ISA) and
# OpenBLAS's core (after OPENBLAS_CORETYPE), from `collm version --json`,
# so an emulated AVX2 run is visible in the bench's output (BIN set by the caller).
bench_print_kernels() {
  "$BIN" version --json | "${PYTHON:-/usr/bin/python3}" -c 'import json, sys; d = json.load(sys.stdin); print("collm kernels:", d["kernels"] + ", OpenBLAS at", d["blas_core"])'
}
