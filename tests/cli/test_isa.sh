#!/usr/bin/env bash
# The portable kernels: the kernel-level and model tests again with
# COLLM_ISA=baseline, so the SSE2 path of src/core/ops.c (what a CPU without
# AVX2 runs) is checked against the same references as the AVX2 path.
. "$(dirname "$0")/lib.sh" isa
BUILD=${BUILD:-build}
for t in test_ops test_ops_blocked test_model test_llm_train test_trainable; do
  out=$(COLLM_ISA=baseline "$BUILD/tests/$t" 2>&1); rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  check "$t under COLLM_ISA=baseline: $line (exit $rc)" [ "$rc" -eq 0 ]
  check "$t ran checks" sh -c "[ '${line%% passed*}' -gt 0 ] 2>/dev/null"
done
check "test_ops reports baseline kernels" sh -c "COLLM_ISA=baseline '$BUILD/tests/test_ops' | grep -q '^kernels: baseline$'"
finish
