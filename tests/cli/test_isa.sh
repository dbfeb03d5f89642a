#!/usr/bin/env bash
# The other kernel paths: the kernel-level and model tests again with
# COLLM_ISA=baseline, so the SSE2 path of src/core/ops.c (what a CPU without
# AVX2 runs) is checked against the same references as the default path, and
# with COLLM_ISA=x86-64-v3 (the AVX2 path; the default on an AVX-512 CPU is v4).
. "$(dirname "$0")/lib.sh" isa
BUILD=${BUILD:-build}
for isa in baseline x86-64-v3; do
  for t in test_ops test_ops_blocked test_model test_llm_train test_trainable; do
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
finish
