#!/usr/bin/env bash
# Replays the committed fuzz corpora (tests/fuzz/corpus/NAME: seeds and every
# input that once crashed a harness) through each harness without libFuzzer
# ($BUILD/fuzz/replay_NAME), so a fixed crash stays fixed in every build,
# ASan/UBSan included. Prints "N passed, N failed" (one check per harness).
set -u
BIN=${COLLM_BIN:-build/collm}
FUZZ=$(dirname "$BIN")/fuzz
pass=0; fail=0
for corpus in tests/fuzz/corpus/*/; do
  name=$(basename "$corpus")
  out=$("$FUZZ/replay_$name" "$corpus" 2>&1); rc=$?
  n=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) passed, 0 failed$/\1/p')
  if [ "$rc" -eq 0 ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    printf '%s\n' "$out" | tail -n 15 >&2
    echo "FAIL: replay of tests/fuzz/corpus/$name (exit $rc)" >&2
  fi
done
echo "$pass passed, $fail failed"
