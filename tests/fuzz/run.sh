#!/usr/bin/env bash
# Runs each libFuzzer harness of build-fuzz/ for SECONDS on its corpus, one
# after another: tests/fuzz/corpus/NAME (committed seeds and former crashes,
# read only) plus build-fuzz/corpus/NAME (what the fuzzer finds, kept between
# runs). Prints per harness: execs, exec/s, corpus size, and the crash if any
# (the input is saved in build-fuzz/artifacts/). Exits 1 if any harness crashed.
#   tests/fuzz/run.sh SECONDS NAME...
set -u
cd "$(dirname "$0")/../.."
secs=${1:?usage: run.sh SECONDS NAME...}; shift
export COLLM_SHARED=${COLLM_SHARED:-$(cd .. && pwd)/shared}
# Big allocations asked for by a malformed file must reach the library's own
# "out of memory" path (as without ASan); libFuzzer still reports a single
# malloc above -malloc_limit_mb (default: the 2 GB RSS limit) as a finding.
export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
declare -A max_len=([gguf]=16384 [dataset]=4096 [tokenizer]=2048 [http]=2048)
status=0
for name in "$@"; do
  bin=build-fuzz/fuzz/fuzz_$name
  mkdir -p "build-fuzz/corpus/$name" build-fuzz/artifacts
  log=build-fuzz/fuzz_$name.log
  "$bin" -max_total_time="$secs" -max_len="${max_len[$name]:-4096}" -timeout=20 -rss_limit_mb=2048 \
         -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$name-" \
         "build-fuzz/corpus/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(find "build-fuzz/corpus/$name" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $name: ${execs:-?} execs, ${rate:-?} exec/s, ${secs} s, corpus $units new, 0 crashes"
  else
    status=1
    art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "fuzz $name: CRASH after ${execs:-?} execs (exit $rc); input: ${art:-see $log}"
    grep -E -m 3 'ERROR: |runtime error|fuzz: |==ERROR' "$log" | sed 's/^/  /'
  fi
done
exit $status
