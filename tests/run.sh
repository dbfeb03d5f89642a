#!/usr/bin/env bash
# Runs every test binary in $BUILD/tests (and the CLI tests in tests/cli/*.sh),
# sums their "N passed, N failed" lines, and exits non-zero on any failure.
# COLLM_TESTS="test_core test_serve.sh ..." runs only the tests named there
# (file names without the folder), e.g. the threaded subset under `make tsan`.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export COLLM_SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
export COLLM_TEST_TMP=${COLLM_TEST_TMP:-$BUILD/test-tmp}
export COLLM_BIN=${COLLM_BIN:-$BUILD/collm}
if [ ! -d "$COLLM_SHARED/models" ] || [ ! -d "$COLLM_SHARED/data" ]; then
  echo "tests: shared test data not found at $COLLM_SHARED (expected ../shared next to the repository; set COLLM_SHARED)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
mkdir -p "$COLLM_TEST_TMP"
passed=0; failed=0; broken=()
for t in "$BUILD"/tests/test_* tests/cli/test_*.sh; do
  [ -e "$t" ] || continue
  case "$t" in *.d|*.o) continue;; esac
  if [ -n "${COLLM_TESTS:-}" ] && [[ " $COLLM_TESTS " != *" ${t##*/} "* ]]; then continue; fi
  start=$(date +%s%N)
  if [[ "$t" == *.sh ]]; then out=$(bash "$t" 2>&1); rc=$?; else out=$("$t" 2>&1); rc=$?; fi
  ms=$(( ($(date +%s%N) - start) / 1000000 )); secs="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -z "$line" ]; then
    echo "$out" | tail -n 20
    echo "BROKEN $t (exit $rc, no summary line)"; broken+=("$t"); failed=$((failed + 1)); continue
  fi
  p=${line%% passed*}; f=${line#*, }; f=${f%% failed}
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
    printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed' | tail -n 30
    [ "$f" -eq 0 ] && { failed=$((failed + 1)); }
    echo "FAILED $t: $line (exit $rc, ${secs}s)"; broken+=("$t")
  else
    echo "ok     $t: $line (${secs}s)"
  fi
done
echo "----"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
