#!/usr/bin/env bash
# The CUDA backend's code under AddressSanitizer, on the CPU simulator (the
# CPU side of compute-sanitizer's memcheck): builds the simulator's targets
# with -fsanitize=address in BUILD_DIR/sim-asan (runtime only, no MLIR, no
# CUDA toolkit needed), then runs the conformance suite on the kernels and
# short `llamac-cudasim run --device cuda` jobs: fp32 and bf16 on one rank
# (CUDA graphs, --trace), and under mpirun dp x tp with gradient buckets and
# a 2-stage pipeline. Every device allocation is a heap block, so a kernel
# that reads or writes past a buffer, a use after cudaFree, or a stray host
# pointer stops the run with ASan's report.
#
#   bash scripts/sim-asan.sh [BUILD_DIR]      (default: build)
#
# Ends with "sim asan: OK" (exit 0) or "sim asan: FAILED (...)" (exit 1).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}/sim-asan"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLLAMAC_ENABLE_COMPILER=OFF -DLLAMAC_ENABLE_CUDA=OFF "${launcher[@]}" \
  -DCMAKE_CXX_FLAGS="-fsanitize=address -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address" >/dev/null
cmake --build "$build" --target CudaSimConformanceTests llamac-cudasim

# Leaks are not the point here (MPI's own allocations would drown them).
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "sim asan: FAILED ($1; its output is above)"; exit 1; }

"$build/unittests/CudaSimConformanceTests" --gtest_brief=1 || fail "the conformance suite"

# The plans need the compiler: the main build's llamac when there is one,
# else the committed plans are not small enough to simulate, so only the
# conformance suite runs.
llamac="${LLAMAC:-$root/build/bin/llamac}"
[ -x "$llamac" ] || llamac="$(dirname "$build")/bin/llamac"
if ! "$llamac" compile --help >/dev/null 2>&1; then
  echo "sim asan: OK (conformance suite only: no llamac with the compiler for the runs)"
  exit 0
fi
sim="$build/bin/llamac-cudasim"
python3 - "$work/data.tok" <<'PY'
import random, struct, sys
random.seed(7)
n = 4096
toks = [random.randrange(256) for _ in range(n)]
open(sys.argv[1], "wb").write(b"LLAMACTK" + struct.pack("<IIQQ", 1, 2, 256, n) + struct.pack("<%dH" % n, *toks))
PY
run() { echo "\$ $*"; "$@" >"$work/out" 2>&1 || { cat "$work/out"; fail "$*"; }; }
run "$llamac" compile tiny --seq-len 16 --global-batch-size 2 -o "$work/f32.llx"
run "$llamac" compile tiny --seq-len 16 --global-batch-size 2 --precision bf16 -o "$work/bf16.llx"
run "$sim" run "$work/f32.llx" --data "$work/data.tok" --steps 3 --device cuda -q
run "$sim" run "$work/bf16.llx" --data "$work/data.tok" --steps 3 --device cuda --trace "$work/t.json" -q
if command -v mpirun >/dev/null && "$sim" run --help 2>/dev/null | grep -q -- --device; then
  mpirun=(mpirun --allow-run-as-root --oversubscribe)
  run "$llamac" compile tiny --seq-len 16 --global-batch-size 4 --dp 2 --tp 2 --bucket-cap-mb 0.05 \
    --first-bucket-mb 0.05 -o "$work/dptp.llx"
  run "$llamac" compile tiny --seq-len 16 --global-batch-size 4 --pp 2 --microbatches 2 -o "$work/pp2.llx"
  run env OMP_NUM_THREADS=1 "${mpirun[@]}" -np 4 "$sim" run "$work/dptp.llx" --data "$work/data.tok" \
    --steps 2 --device cuda -q
  run env OMP_NUM_THREADS=1 "${mpirun[@]}" -np 2 "$sim" run "$work/pp2.llx" --data "$work/data.tok" \
    --steps 2 --device cuda --save-dir "$work/ckpt" -q
fi
echo "sim asan: OK"
