#!/usr/bin/env bash
# llamac's CPU backend against PyTorch eager (test/e2e/torch_llama.py) on the
# same model, weights, tokens and optimizer, each with the same number of
# threads. Prints tokens/s, step time and peak memory (max RSS) of both and
# their ratio. Builds nothing.
#
#   bench/cpu_vs_torch.sh [--threads N] [--steps N] [--warmup N]
#                         [--repeat R] [--keep DIR]
#
# The model is the `small` preset (hidden 256, 4 layers, 8 heads, 4 kv heads,
# intermediate 688, vocab 4096, untied), seq_len 256, global batch 8, fp32,
# AdamW with clipping. torch_llama.py make-case writes the HF weights, the
# config and a synthetic token stream; llamac trains the preset from those
# weights (--init), so both runs compute the same losses. The first --warmup
# steps of each run are not timed. With --repeat R the runs alternate R times
# and the median run of each side is reported.
#
# Environment: LLAMAC_BUILD (a build directory with bin/llamac; default
# build/ in the repository, else ../build beside it); TORCH_PYTHON (default
# /usr/bin/python3, Debian's python3-torch).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
threads=2 steps=10 warmup=2 repeat=1 keep=""
while [ $# -gt 0 ]; do
  case "$1" in
  --threads) threads="$2"; shift 2 ;;
  --steps) steps="$2"; shift 2 ;;
  --warmup) warmup="$2"; shift 2 ;;
  --repeat) repeat="$2"; shift 2 ;;
  --keep) keep="$2"; shift 2 ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "cpu_vs_torch.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

build="${LLAMAC_BUILD:-}"
if [ -z "$build" ]; then
  for candidate in "$root/build" "$root/../build"; do
    if [ -x "$candidate/bin/llamac" ]; then build="$candidate"; break; fi
  done
fi
build="${build:-$root/build}"
llamac="$build/bin/llamac"
python="${TORCH_PYTHON:-/usr/bin/python3}"
if [ ! -x "$llamac" ]; then
  echo "cpu_vs_torch.sh: no llamac at $llamac; build it or set LLAMAC_BUILD" >&2
  exit 1
fi
if ! "$python" -c "import torch" 2>/dev/null; then
  echo "cpu_vs_torch.sh: $python cannot import torch (apt install python3-torch, or set TORCH_PYTHON)" >&2
  exit 1
fi
if [ ! -x /usr/bin/time ]; then
  echo "cpu_vs_torch.sh: /usr/bin/time is needed for the peak memory (apt install time)" >&2
  exit 1
fi

if [ -n "$keep" ]; then
  work="$keep"
  mkdir -p "$work"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi

seq_len=256 batch=8 total=$((warmup + steps))
opt_flags=(--lr 3e-4 --weight-decay 0.1 --clip-grad-norm 1.0)

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs," \
  "$(lscpu | sed -n 's/^Thread(s) per core: *//p') thread(s) per core"
echo "llamac: $(cd "$build" && pwd)/bin/llamac | torch: $("$python" -c 'import torch; print(torch.__version__)') ($python)"
echo "config: small preset, seq_len $seq_len, global batch $batch, fp32, AdamW;" \
  "$threads threads each; $steps timed steps after $warmup warmup"

# 1. Weights, config and tokens (enough for every step without wrapping).
"$python" "$root/test/e2e/torch_llama.py" make-case --out "$work/case" \
  --hidden 256 --intermediate 688 --heads 8 --kv-heads 4 --layers 4 \
  --vocab 4096 --num-tokens $((total * batch * (seq_len + 1) + 1)) --seed 1

# llamac takes its thread count from --threads once the driver has it, else
# from the environment; both libraries read OMP_NUM_THREADS and
# OPENBLAS_NUM_THREADS, and torch_llama.py calls torch.set_num_threads.
thread_flag=()
if "$llamac" train --help 2>&1 | grep -q -- "--threads"; then
  thread_flag=(--threads "$threads")
fi
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"

# Busy jiffies of all CPUs, to tell how much of the machine other processes
# used during a run.
busy_jiffies() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# 2. The runs. Each writes <name>-<i>.jsonl, .time (GNU time -v) and .busy.
run() {
  local name="$1" i="$2"
  shift 2
  local before after
  before=$(busy_jiffies)
  /usr/bin/time -v -o "$work/$name-$i.time" "$@"
  after=$(busy_jiffies)
  echo $((after - before)) >"$work/$name-$i.busy"
}
for i in $(seq "$repeat"); do
  echo "run $i/$repeat: llamac" >&2
  run llamac "$i" "$llamac" train small --seq-len "$seq_len" \
    --global-batch-size "$batch" "${opt_flags[@]}" --data "$work/case/data.tok" \
    --init "$work/case/init.safetensors" --steps "$total" \
    --metrics "$work/llamac-$i.jsonl" -q "${thread_flag[@]}"
  echo "run $i/$repeat: PyTorch eager" >&2
  run torch "$i" "$python" "$root/test/e2e/torch_llama.py" reference \
    --config "$work/case/config.json" --init "$work/case/init.safetensors" \
    --data "$work/case/data.tok" --steps "$total" --seq-len "$seq_len" \
    --global-batch "$batch" "${opt_flags[@]}" --threads "$threads" --time \
    >"$work/torch-$i.jsonl"
done

# 3. The table.
"$python" - "$work" "$repeat" "$warmup" $((seq_len * batch)) "$(nproc)" \
  "$(getconf CLK_TCK)" <<'EOF'
import json, re, statistics, sys

work, repeat, warmup, tokens, ncpu, hz = sys.argv[1], *map(int, sys.argv[2:])

def summary(name, i):
    rows = [json.loads(l) for l in open("%s/%s-%d.jsonl" % (work, name, i)) if l.strip()]
    if name == "llamac":
        secs = [tokens / r["tokens_per_s"] for r in rows]
    else:
        secs = [r["seconds"] for r in rows]
    timed = secs[warmup:]
    gnu = open("%s/%s-%d.time" % (work, name, i)).read()
    field = lambda key: float(re.search(key + r":\s*([\d.:]+)", gnu).group(1))
    wall = gnu_wall(re.search(r"Elapsed \(wall clock\) time.*: ([\d:.]+)", gnu).group(1))
    own = field(r"User time \(seconds\)") + field(r"System time \(seconds\)")
    busy = int(open("%s/%s-%d.busy" % (work, name, i)).read()) / hz
    return {"tok_s": tokens * len(timed) / sum(timed),
            "step_ms": 1000 * statistics.median(timed),
            "rss_mib": field(r"Maximum resident set size \(kbytes\)") / 1024,
            "loss0": rows[0]["loss"],
            "others": max(0.0, busy - own) / (wall * ncpu)}

def gnu_wall(text):
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds

def median_run(name):
    runs = sorted((summary(name, i) for i in range(1, repeat + 1)),
                  key=lambda r: r["tok_s"])
    return runs[(len(runs) - 1) // 2]

l, t = median_run("llamac"), median_run("torch")
print()
print("| | llamac (CPU backend) | PyTorch eager |")
print("|---|---:|---:|")
print("| tokens/s | {:,.0f} | {:,.0f} |".format(l["tok_s"], t["tok_s"]))
print("| step time, median (ms) | {:,.0f} | {:,.0f} |".format(l["step_ms"], t["step_ms"]))
print("| peak memory, max RSS (MiB) | {:,.0f} | {:,.0f} |".format(l["rss_mib"], t["rss_mib"]))
print("| loss after step 1 | {:.4f} | {:.4f} |".format(l["loss0"], t["loss0"]))
print()
print("ratio llamac / PyTorch eager: {:.2f}x tokens/s".format(l["tok_s"] / t["tok_s"]))
if abs(l["loss0"] - t["loss0"]) > 1e-3 * abs(t["loss0"]):
    print("WARNING: the first losses differ; the two runs did not train the same model")
busiest = max(l["others"], t["others"])
if busiest > 0.05:
    print("WARNING: other processes used up to {:.0%} of the CPUs during a run; "
          "numbers are noisy".format(busiest))
EOF
