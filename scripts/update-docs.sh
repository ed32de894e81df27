#!/usr/bin/env bash
# Regenerates docs/generated/ (dialect and pass references) from the .td
# files: bash scripts/update-docs.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
cmake --build "$build" --target mlir-doc
mkdir -p "$root/docs/generated"
cp "$build"/docs/llamac/*.md "$root/docs/generated/"
echo "updated $(ls "$root/docs/generated" | wc -l) files in docs/generated"
