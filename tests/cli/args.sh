# shellcheck shell=bash disable=SC2154
# Sourced by the CLI tests (lib.sh, test_resume.sh).
# args_without OPT: the array args less OPT and its value, into the array a (a test that adds
# the option under test to a shared argument list: collm refuses an option given twice)
args_without() {
  a=(); local skip=0 x
  for x in "${args[@]}"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    if [ "$x" = "$1" ]; then skip=1; continue; fi
    a+=("$x")
  done
}
