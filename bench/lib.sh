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
