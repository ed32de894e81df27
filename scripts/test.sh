#!/usr/bin/env bash
# Configures, builds and runs every test (lit suites + GoogleTest units), then
# the CUDA backend's code under AddressSanitizer on the CPU simulator
# (scripts/sim-asan.sh, counted as one test; LLAMAC_SIM_ASAN=0 skips it):
#   bash scripts/test.sh [BUILD_DIR]
# Ends with one summary line "llamac tests: N passed, M failed".
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"

cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target llamac llamac-opt
log="$(mktemp)"
set +e
cmake --build "$build" --target check-llamac 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# lit's summary: "  Passed: 12 (100.00%)" or, aligned, "  Passed : 12 (...)".
count() {
  (grep -E "^\s*$1\s*:" "$log" || true) |
    sed -E 's/^[^:]*:\s*([0-9]+).*/\1/' | awk '{s+=$1} END {print s+0}'
}
passed=$(count Passed)
failed=$(count Failed)
skipped=$(count Skipped)
rm -f "$log"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
if [ "${LLAMAC_SIM_ASAN:-1}" != 0 ]; then
  if bash "$root/scripts/sim-asan.sh" "$build"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    status=1
  fi
fi
echo "llamac tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
