#!/usr/bin/env bash
# Recompiles the committed plans of bench/plans (scripts/gpu-check.sh runs
# them on a GPU machine, where no MLIR is available to compile them). Run it
# after a change to the compiler or the plan format, and commit the result:
# test/Tools/bench-plans.test fails while a committed plan differs from what
# llamac compile makes of it. Compilation is deterministic (same bytes for
# the same compiler and flags).
#
#   bench/plans/regen.sh [--llamac PATH] [--out DIR] [--list]
#
# --out: write the plans there instead of beside this script (the lit test
# compares such a copy with the committed files). --list: print the plan
# names and exit.
#
# Environment: LLAMAC_BUILD (a build directory with the compiler: bin/llamac;
# default build/ in the repository, else ../build beside it).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
llamac="" out="$here" list=0
while [ $# -gt 0 ]; do
  case "$1" in
  --llamac) llamac="$2"; shift 2 ;;
  --out) out="$2"; shift 2 ;;
  --list) list=1; shift ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "regen.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# name | llamac compile arguments. Keep bench/plans/README.md in step.
plans=(
  # The end-to-end check (CPU vs CUDA losses): the `small` preset (hidden 256,
  # 4 layers, 8 heads / 4 kv heads, vocab 4096, untied), 8 x 256 tokens.
  "small-fp32.llx|small --seq-len 256 --global-batch-size 8"
  "small-bf16.llx|small --seq-len 256 --global-batch-size 8 --precision bf16"
  # The benchmark against PyTorch: TinyLlama-1.1B, bf16 compute with fp32
  # master weights and AdamW, 8 x 2048 tokens in one microbatch (about 36 GiB
  # of device memory: 24 GiB arena, 12 GiB weights and moments).
  "tinyllama-bf16.llx|tinyllama-1.1b --seq-len 2048 --global-batch-size 8 --micro-batch-size 8 --precision bf16"
  # The out-of-memory error: Llama-2 70B needs ~1 TiB for its weights and
  # AdamW state alone, more than any one GPU has (the plan file is 1.8 MB).
  "oom-llama2-70b.llx|llama2-70b --seq-len 128 --global-batch-size 1"
)

if [ "$list" = 1 ]; then
  for p in "${plans[@]}"; do echo "${p%%|*}"; done
  exit 0
fi

if [ -z "$llamac" ]; then
  build="${LLAMAC_BUILD:-}"
  if [ -z "$build" ]; then
    for candidate in "$root/build" "$root/../build"; do
      if [ -x "$candidate/bin/llamac" ]; then build="$candidate"; break; fi
    done
  fi
  llamac="${build:-$root/build}/bin/llamac"
fi
if ! "$llamac" compile --help >/dev/null 2>&1; then
  echo "regen.sh: $llamac cannot compile (a build with the compiler is needed;" \
    "set LLAMAC_BUILD or pass --llamac)" >&2
  exit 1
fi

mkdir -p "$out"
for p in "${plans[@]}"; do
  name="${p%%|*}"
  read -r -a args <<<"${p#*|}"
  "$llamac" compile "${args[@]}" -o "$out/$name" >/dev/null
  echo "$out/$name: $(stat -c %s "$out/$name") bytes (llamac compile ${args[*]})"
done
