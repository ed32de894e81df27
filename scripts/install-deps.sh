#!/usr/bin/env bash
# Installs every Debian 12 package llamac needs to build, test and run.
# Idempotent: packages already present are skipped; safe to re-run.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache git
  # compiler: MLIR/LLVM 22 (lit, FileCheck and not come with llvm-22-tools)
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools
  # runtime: BLAS, MPI, tokenizer, plan files, JSON, CLI
  libopenblas-dev libopenmpi-dev openmpi-bin
  libsentencepiece-dev sentencepiece
  libflatbuffers-dev flatbuffers-compiler
  nlohmann-json3-dev libcli11-dev
  # tests: GoogleTest, the PyTorch reference (run with /usr/bin/python3)
  libgtest-dev python3 python3-torch python3-numpy
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
