#!/usr/bin/env bash
# Installs what collm's build and test suite need on Debian (bookworm) when it
# is missing: libraries and headers are checked with dpkg, the commands the CLI
# tests call (tests/cli/*.sh: curl, python3, cmp, od, awk, ...) with
# `command -v`, so a python3 from elsewhere on PATH counts as present. The Python
# binding's test (tests/cli/test_python.sh) runs Debian's /usr/bin/python3 with python3-numpy.
# Needs root (apt-get) or sudo only when something is missing; otherwise
# prints the command to run and fails. Benchmarks (bench/) also want `wrk`,
# gnuplot, bc, python3-torch, BLIS and perf: `scripts/setup.sh --bench`.
set -eu
# clang + libclang-rt-14-dev (bookworm's clang 14: libFuzzer and the sanitizer
# runtimes) build the fuzz harnesses (`make fuzz`). OpenMPI (libopenmpi-dev,
# openmpi-bin) is optional for the build: with it, `mpirun -np N collm train`
# runs data parallel (docs/scaling.md) and tests/cli/test_mpi.sh runs instead of skipping.
packages=(build-essential libopenblas-dev liblapack-dev libfaiss-dev libmicrohttpd-dev libcjson-dev libxxhash-dev libgomp1 pkg-config python3
          python3-numpy python3-yaml clang libclang-rt-14-dev
          libopenmpi-dev openmpi-bin)
# command -> Debian package providing it
commands=(curl:curl python3:python3 cmp:diffutils od:coreutils awk:mawk)
# --bench: bench/train_speed.sh runs the PyTorch peer (../shared/peers/torch) with Debian's PyTorch 1.13;
# bench/gemm_shapes measures BLIS (libblis4, loaded with dlopen) beside OpenBLAS and collm's GEMM;
# bench/profile_step.sh samples a training step with perf (linux-perf)
[ "${1:-}" = "--bench" ] && commands+=(wrk:wrk gnuplot:gnuplot-nox bc:bc perf:linux-perf) && packages+=(python3-torch libblis4)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for cp in "${commands[@]}"; do
  command -v "${cp%%:*}" >/dev/null 2>&1 || missing+=("${cp#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
else SUDO=; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}"
