#!/usr/bin/env bash
# Unit tests never read the clock (issue 8: tests that asserted on elapsed
# time failed under the sanitizers and on busy machines); timings live in
# bench/ (bench/unit_timings.c has the ones that were assertions). Fails on
# any clock call in tests/test_*.c. Prints "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh" no_clock
for f in tests/test_*.c; do
  hits=$(grep -nE 'clock_gettime|clock\(\)|CLOCKS_PER_SEC|gettimeofday|time\(NULL\)|timespec_get' "$f")
  check "$f reads no clock${hits:+: $hits}" [ -z "$hits" ]
done
check "bench/unit_timings.c holds the moved timings" grep -q "the old unit test wanted" bench/unit_timings.c
finish
