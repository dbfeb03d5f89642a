#!/usr/bin/env bash
# The other kernel paths: the kernel-level and model tests again with
# COLLM_ISA=baseline, so the SSE2 path of src/core/ops.c (what a CPU without
# AVX2 runs) is checked against the same references as the default path, and
# with COLLM_ISA=x86-64-v3 (the AVX2 path; the default on an AVX-512 CPU is v4).
. "$(dirname "$0")/lib.sh" isa
BUILD=${BUILD:-build}
for isa in baseline x86-64-v3; do
  for t in test_ops test_ops_blocked test_model test_llm_train test_trainable test_quant; do
    out=$(COLLM_ISA=$isa "$BUILD/tests/$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    check "$t under COLLM_ISA=$isa: $line (exit $rc)" [ "$rc" -eq 0 ]
    check "$t ran checks" sh -c "[ '${line%% passed*}' -gt 0 ] 2>/dev/null"
  done
done
check "test_ops reports baseline kernels" sh -c "COLLM_ISA=baseline '$BUILD/tests/test_ops' | grep -q '^kernels: baseline$'"
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  check "test_ops reports x86-64-v3 kernels" sh -c "COLLM_ISA=x86-64-v3 '$BUILD/tests/test_ops' | grep -q '^kernels: x86-64-v3$'"
fi
check "test_quant reports scalar dots" sh -c "COLLM_ISA=baseline '$BUILD/tests/test_quant' | grep -q '^quant dot kernels: scalar$'"
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo; then
  # x86-64-v3 caps the quantised kernels at AVX2 (the CI machine's level): no tiled kernel
  check "test_quant reports AVX2 dots under x86-64-v3" sh -c "COLLM_ISA=x86-64-v3 '$BUILD/tests/test_quant' | grep -q '^quant dot kernels: avx2$'"
fi
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  # avx2 is the same cap as x86-64-v3, for the GEMM kernels as for the quantised ones
  out=$(COLLM_ISA=avx2 "$BUILD/tests/test_ops" 2>&1); rc=$?
  check "test_ops under COLLM_ISA=avx2 (exit $rc)" [ "$rc" -eq 0 ]
  check "test_ops reports x86-64-v3 kernels under COLLM_ISA=avx2" grep -q '^kernels: x86-64-v3$' <<<"$out"
fi

# A kernel-selection setting with a value the kernels do not know would
# silently run the default: the CLI refuses it before any work, naming the
# setting and its values; every known value (and an empty one) is accepted.
BIN=${COLLM_BIN:-$BUILD/collm}
for bad in "COLLM_ISA=avx512:native, baseline, x86-64-v3, avx2" "COLLM_GEMM=fast:auto, blas, own" \
           "COLLM_QMM=tiles:auto, dot, rows, sgemm" "COLLM_GEMM=Blas:auto, blas, own"; do
  setting=${bad%%:*} values=${bad#*:}
  out=$(env "$setting" "$BIN" version 2>&1); rc=$?
  check "$setting refused (exit $rc)" [ "$rc" -eq 1 ]
  check "$setting: the error names it and the values" grep -qF "collm version: ${setting%%=*}='${setting#*=}' is not one of: $values" <<<"$out"
  check "$setting: no version printed" bash -c '! grep -q "^collm [0-9]" <<<"$1"' _ "$out"
done
for good in COLLM_ISA=native COLLM_ISA=baseline COLLM_ISA=x86-64-v3 COLLM_ISA=avx2 COLLM_ISA= COLLM_GEMM=auto \
            COLLM_GEMM=blas COLLM_GEMM=own COLLM_QMM=auto COLLM_QMM=dot COLLM_QMM=rows COLLM_QMM=sgemm; do
  check "$good accepted" sh -c "env '$good' '$BIN' version | grep -q '^collm [0-9]'"
done

# A user's OPENBLAS_CORETYPE naming kernels the CPU lacks is replaced (with a
# warning) instead of ending in SIGILL: SapphireRapids needs AMX.
SHARED=${COLLM_SHARED:-../shared}
if ! grep -q amx_tile /proc/cpuinfo; then
  out=$(OPENBLAS_CORETYPE=SapphireRapids "$BIN" logits --model "$SHARED/testvectors/quant/models/llama-256-Q8_0-pure.gguf" \
        --tokens "1 403 407" --out "${COLLM_TEST_TMP:-build/test-tmp}/isa-logits.f32" --threads 1 2>&1); rc=$?
  check "bad OPENBLAS_CORETYPE: runs (exit $rc)" [ "$rc" -eq 0 ]
  # the first of SapphireRapids' features (src/cli/main.c) this CPU lacks: amx-tile on
  # an AVX-512 CPU, avx512f on an AVX2 one (cpuinfo spells them with underscores)
  lacks=amx-tile
  for f in amx-tile avx512bf16 avx512vl avx512bw avx512f; do
    grep -qw "$(sed 's/-/_/; s/avx512bf16/avx512_bf16/' <<<"$f")" /proc/cpuinfo || lacks=$f
  done
  check "bad OPENBLAS_CORETYPE: warns that it needs $lacks" \
    grep -q "warning: OPENBLAS_CORETYPE=SapphireRapids needs $lacks, which this CPU lacks" <<<"$out"
  out=$(COLLM_NO_REEXEC=1 OPENBLAS_CORETYPE=SapphireRapids "$BIN" logits --model "$SHARED/testvectors/quant/models/llama-256-Q8_0-pure.gguf" \
        --tokens "1 403 407" --out "${COLLM_TEST_TMP:-build/test-tmp}/isa-logits.f32" --threads 1 2>&1); rc=$?
  check "bad OPENBLAS_CORETYPE under COLLM_NO_REEXEC: runs (exit $rc)" [ "$rc" -eq 0 ]
fi
finish
