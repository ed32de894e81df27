#!/usr/bin/env bash
# The default workflow on a fresh Debian 12 machine, with no download:
#   dependencies -> build -> tokenizer -> data -> compile -> train
# The corpus is the license texts every Debian system ships in
# /usr/share/common-licenses (package base-files, ~240 KB of English).
#   bash scripts/quickstart.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
out="$root/out/quickstart"

bash "$root/scripts/install-deps.sh"
cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" --target llamac
llamac="$build/bin/llamac"

# A fresh run each time: the previous quickstart's checkpoints are replaced.
rm -rf "$out/checkpoints"
mkdir -p "$out"
mapfile -t corpus < <(find /usr/share/common-licenses -maxdepth 1 -type f | sort)
"$llamac" tokenizer train "${corpus[@]}" --vocab-size 512 -o "$out/tokenizer.model"
"$llamac" data prepare --tokenizer "$out/tokenizer.model" "${corpus[@]}" -o "$out/corpus.tok"
"$llamac" compile mini --seq-len 128 --global-batch-size 8 \
  --lr 1e-3 --min-lr 1e-4 --warmup-steps 20 --decay-steps 600 \
  --weight-decay 0.1 --clip-grad-norm 1.0 -o "$out/mini.llx"
"$llamac" inspect "$out/mini.llx"
"$llamac" run "$out/mini.llx" --data "$out/corpus.tok" --steps 600 \
  --metrics "$out/metrics.jsonl" \
  --save-dir "$out/checkpoints" --save-every 300 --keep 2 "$@"
echo "quickstart: tokenizer, data, plan, metrics and an HF-format checkpoint"
echo "            ($out/checkpoints/latest) are in $out"
