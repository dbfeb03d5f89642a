# Shared by the CLI tests: paths, counters and the two checks. Source it
# with `. "$(dirname "$0")/lib.sh" NAME`; TMP is then a fresh-enough scratch
# folder for that test. Finish with `finish`, which prints "N passed, N failed".
BIN=${COLLM_BIN:-build/collm}
SHARED=${COLLM_SHARED:-../shared}
TMP=${COLLM_TEST_TMP:-build/test-tmp}/$1
DATA="$SHARED/data/ml-1m"
VOCAB="$SHARED/testvectors/tokenizer/ggml-vocab-llama-spm.gguf" # the real Llama-2 vocabulary, for tiny models
mkdir -p "$TMP"
pass=0; fail=0
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what" >&2; fi; }
# expect_error WHAT PATTERN CMD...: exit status 1, one line on stderr matching PATTERN
expect_error() {
  local what=$1 pattern=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?
  check "$what: exit 1 (got $rc)" [ "$rc" -eq 1 ]
  check "$what: one stderr line" [ "$(wc -l <"$TMP/err")" -eq 1 ]
  check "$what: message matches '$pattern' ($(head -c 300 "$TMP/err"))" grep -Eq -e "$pattern" "$TMP/err"
  # a test's command line that repeats an option (a shared array plus the
  # option under test) is refused for that alone, which a loose pattern
  # (--batch) would take for the check it means to make
  case $pattern in *"given twice"*) ;; *)
    check "$what: not refused for an option given twice" sh -c "! grep -q 'given twice' '$TMP/err'" ;;
  esac
}
. "$(dirname "${BASH_SOURCE[0]}")/args.sh"
# run CMD...: a setup step; when it fails, the test stops here as failed (the tail of its log on stderr)
run() { "$@" >"$TMP/log" 2>&1 || { echo "setup failed: $*" >&2; tail -3 "$TMP/log" >&2; echo "$pass passed, $((fail + 1)) failed"; exit 1; }; }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; }
# served_port ERRFILE [TRIES]: after `collm serve --port 0 ... 2>ERRFILE &`, waits (0.1 s a try,
# default 100) for its "serving on http://127.0.0.1:PORT" line; sets PORT (empty if it never came)
served_port() {
  PORT=
  for _ in $(seq 1 "${2:-100}"); do
    PORT=$(sed -nE 's/^serving on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$1"); [ -n "$PORT" ] && break; sleep 0.1
  done
}
