#!/usr/bin/env bash
# The GPU machine's check, in one run of under 8 minutes: builds the runtime
# with CUDA from this working tree, runs the CUDA conformance suite (and
# compute-sanitizer on a few of its cases), compares CUDA with CPU losses on
# the committed plans, and benchmarks TinyLlama-1.1B against PyTorch. Run it
# from the repository root on the GPU machine, with the dependencies packed
# by scripts/gpu-pack-deps.sh carried along in .gpu-deps:
#
#   OUT=/some/dir bash scripts/gpu-check.sh
#
# Stages (a failing stage is recorded and the next ones still run; each has a
# time limit, and all together stay within GPU_CHECK_BUDGET seconds: a stage
# that would not fit is skipped and says so):
#   build        cmake (runtime only, CUDA on, sm_90a, .gpu-deps as prefix) +
#                ninja llamac CudaConformanceTests [llamac-cuda-bench]
#   conformance  build-gpu/unittests/CudaConformanceTests; then
#                compute-sanitizer --tool memcheck on a few cases
#   e2e          bench/plans/small-{fp32,bf16}.llx, 20 steps on --device cuda
#                and on --device cpu, per-step losses compared
#                (bench/compare_losses.py: rtol 1e-4 fp32, 2e-2 bf16)
#   bench        llamac on bench/plans/tinyllama-bf16.llx (12 steps, median
#                tokens/s after the first 2) against bench/torch_tinyllama.py
#                eager and torch.compile (same model, batch, seq, AdamW);
#                before those, llamac-cuda-bench (AdamW vs copy bandwidth) if
#                it was built
#   profile      3 steps of the same plan with --trace (each op timed between
#                CUDA events, no graph): bench/trace_summary.py's table of
#                where the step's time goes, in $OUT/bench/profile.txt (last
#                in the budget: rerun with GPU_CHECK_STAGES=profile if cut)
# At the end one table (stage | result | figures) is printed and written to
# $OUT/summary.txt; every command's output is in $OUT/logs. Exit status 1 when
# a stage failed.
#
# Environment:
#   OUT                   where results go (default /tmp/gpu-check)
#   GPU_CHECK_STAGES      comma-separated subset of build,conformance,e2e,bench,
#                         profile (default: all)
#   GPU_CHECK_BUDGET      seconds for the whole run (default 470; 1500 with
#                         GPU_CHECK_DEVICE=cpu)
#   GPU_CHECK_JOBS        ninja -j (default: nproc)
#   GPU_CHECK_CMAKE_ARGS  extra configure arguments (word-split)
#   GPU_CHECK_BUILD_TARGETS  ninja targets (default: llamac
#                         CudaConformanceTests, and llamac-cuda-bench if the
#                         build has it)
#   GPU_CHECK_DEPS        the dependency prefix (default .gpu-deps)
#   GPU_CHECK_SANITIZER_FILTER  gtest filter for compute-sanitizer (default:
#                         up to 8 tests, one per name: Suite.Name/<first param>)
#   GPU_CHECK_DEVICE      cuda (default), or cpu: a dry run of the plumbing on
#                         a machine without a GPU: no build (LLAMAC_BUILD is
#                         used as it is), the e2e stage runs cpu against cpu,
#                         the benchmark runs the small plan and --tiny torch
#   LLAMAC_BUILD          build directory (default build-gpu; with
#                         GPU_CHECK_DEVICE=cpu: build/, else ../build)
#   GPU_CHECK_CONFORMANCE_BIN  the gtest binary of the conformance stage
#                         (default $LLAMAC_BUILD/unittests/CudaConformanceTests)
#   TORCH_PYTHON          python with torch (default python3)
set -uo pipefail

case "${1:-}" in
"") ;;
-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
*) echo "gpu-check.sh: takes no arguments (settings are environment variables; see --help)" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 1
out="${OUT:-/tmp/gpu-check}"
device="${GPU_CHECK_DEVICE:-cuda}"
# The CPU dry run is slow where it runs (2 cores): more time.
budget="${GPU_CHECK_BUDGET:-$([ "$device" = cpu ] && echo 1500 || echo 470)}"
stages=",${GPU_CHECK_STAGES:-build,conformance,e2e,bench,profile},"
jobs="${GPU_CHECK_JOBS:-$(nproc)}"
python="${TORCH_PYTHON:-python3}"
case "$device" in
cuda | cpu) ;;
*) echo "gpu-check.sh: GPU_CHECK_DEVICE must be cuda or cpu, not $device" >&2; exit 2 ;;
esac
if [ "$device" = cpu ]; then
  build="${LLAMAC_BUILD:-}"
  if [ -z "$build" ]; then
    for candidate in "$root/build" "$root/../build"; do
      if [ -x "$candidate/bin/llamac" ]; then build="$candidate"; break; fi
    done
  fi
  build="${build:-$root/build}"
else
  build="${LLAMAC_BUILD:-$root/build-gpu}"
fi
llamac="$build/bin/llamac"
deps="${GPU_CHECK_DEPS:-$root/.gpu-deps}"
mkdir -p "$out/logs" "$out/e2e" "$out/bench" || exit 1
: >"$out/summary.tsv"
SECONDS=0

# --- helpers ----------------------------------------------------------------------
say() { echo "[gpu-check $(printf '%3d' "$SECONDS")s] $*"; }
want() { [[ "$stages" == *",$1,"* ]]; }
# record STAGE RESULT FIGURES: one row of the summary table.
record() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$out/summary.tsv"
  say "$1: $2${3:+ ($3)}"
}
failed=0
fail() { failed=1; record "$@"; }
# outcome STAGE STATUS FIGURES: PASS on 0, SKIP when `limited` found no time
# left (125), else FAIL with the reason.
outcome() {
  case "$2" in
  0) record "$1" PASS "$3" ;;
  125) record "$1" SKIP "out of time${3:+; $3}" ;;
  *) fail "$1" FAIL "$(why "$2")${3:+: $3}" ;;
  esac
}

# The carried libraries (libopenblas needs libgfortran at run time) for the
# commands that use them; not for python, which has its own.
with_deps() {
  if [ -d "$deps/lib" ]; then
    LD_LIBRARY_PATH="$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"
  else
    "$@"
  fi
}

# limited NAME LIMIT CMD...: runs CMD with its output in logs/NAME.log under
# `timeout` of LIMIT seconds or what is left of the budget (20 s kept for
# `timeout -k` and the summary). Returns CMD's status, 124 on timeout, 125
# when under 15 s were left (not run).
limit_used=0 limit_clamped=0
limited() {
  local name="$1" limit="$2" left
  shift 2
  left=$((budget - 20 - SECONDS))
  limit_clamped=0
  if [ "$left" -lt "$limit" ]; then limit="$left" limit_clamped=1; fi
  limit_used="$limit"
  if [ "$limit" -lt 15 ]; then
    echo "not run: ${left}s of the budget left" >"$out/logs/$name.log"
    return 125
  fi
  say "$name (limit ${limit}s): $*"
  echo "\$ $*" >"$out/logs/$name.log"
  timeout -k 10 "$limit" "$@" >>"$out/logs/$name.log" 2>&1
}
# why STATUS: a word for a failed `limited`.
why() {
  case "$1" in
  124 | 137) echo "timeout after ${limit_used}s$([ "$limit_clamped" = 1 ] && echo ", the rest of the budget")" ;;
  125) echo "skipped (out of time)" ;;
  *) echo "exit $1" ;;
  esac
}
tail_of() { grep -v -e '^\s*$' -e '^\$ ' "$out/logs/$1.log" 2>/dev/null | tail -1 | cut -c1-110; }

# --device for llamac run: the flag if this llamac has it; CPU runs without it
# on a llamac that predates it.
device_flag() {
  if "$llamac" run --help 2>/dev/null | grep -q -- '--device'; then
    echo "--device $1"
  elif [ "$1" != cpu ]; then
    return 1
  fi
}

# plan_shape PLAN: "vocab global_batch seq micro flops_per_token" from llamac inspect.
plan_shape() {
  with_deps "$llamac" inspect "$1" 2>/dev/null | awk '
    /^model /  { for (i = 1; i <= NF; i++) if ($i == "vocab") v = $(i + 1) }
    /^batch /  { g = $3; s = $6; sub(",", "", s); m = $8; sub(",", "", m) }
    /^flops /  { f = $2 }
    END { if (v && g && s) print v, g, s, (m ? m : g), (f ? f : 0); else exit 1 }'
}

# --- the machine ----------------------------------------------------------------------
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null) ($(git status --porcelain 2>/dev/null | wc -l) changed files)"
  echo "host: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
    "$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null || uname -sr), glibc $(ldd --version 2>/dev/null | head -1 | awk '{print $NF}')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
  command -v nvcc >/dev/null && nvcc --version | tail -2 | head -1
  [ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null && /usr/local/cuda/bin/nvcc --version | tail -2 | head -1
  echo "cmake: $(cmake --version 2>/dev/null | head -1), ninja $(ninja --version 2>/dev/null), $(gcc --version 2>/dev/null | head -1)"
  echo "python: $("$python" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1)"
} >"$out/env.txt" 2>&1
say "device $device, build $build, output $out, budget ${budget}s"
sed 's/^/  /' "$out/env.txt"

# --- 1. build -------------------------------------------------------------------------------
if want build && [ "$device" = cuda ]; then
  ok=1
  if [ -f "$deps/unpack.sh" ]; then
    if ! bash "$deps/unpack.sh" >"$out/logs/unpack.log" 2>&1; then
      fail build FAIL "$deps/unpack.sh failed: $(tail_of unpack)"
      ok=0
    fi
    prefix_args=("-DCMAKE_PREFIX_PATH=$deps")
  else
    say "no .gpu-deps (scripts/gpu-pack-deps.sh, carried as .gpu-deps): the system's packages must do"
    prefix_args=()
  fi
  nvcc="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  read -r -a extra <<<"${GPU_CHECK_CMAKE_ARGS:-}"
  if [ "$ok" = 1 ]; then
    limited configure 120 cmake -G Ninja -S "$root" -B "$build" -DLLAMAC_ENABLE_COMPILER=OFF \
      -DLLAMAC_ENABLE_MPI=OFF -DLLAMAC_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
      "-DCMAKE_CUDA_COMPILER=$nvcc" "${prefix_args[@]}" "${extra[@]}"
    rc=$?
    if [ "$rc" != 0 ]; then
      outcome build "$rc" "configure: $(grep -m1 -A2 'CMake Error\|llamac:' "$out/logs/configure.log" | tr '\n' ' ' | cut -c1-150)"
      ok=0
    fi
  fi
  if [ "$ok" = 1 ]; then
    read -r -a targets <<<"${GPU_CHECK_BUILD_TARGETS:-llamac CudaConformanceTests}"
    if [ -z "${GPU_CHECK_BUILD_TARGETS:-}" ] &&
      ninja -C "$build" -t query llamac-cuda-bench >/dev/null 2>&1; then
      targets+=(llamac-cuda-bench)
    fi
    start=$SECONDS
    with_deps limited build 330 ninja -C "$build" -j"$jobs" "${targets[@]}"
    rc=$?
    if [ "$rc" = 0 ]; then
      record build PASS "${targets[*]} in $((SECONDS - start))s (-j$jobs)"
    else
      outcome build "$rc" "after $((SECONDS - start))s: $(grep -m1 -E 'error|FAILED' "$out/logs/build.log" | cut -c1-140)"
    fi
  fi
elif want build; then
  record build "n/a" "GPU_CHECK_DEVICE=cpu: using $build as it is"
fi

# --- 2. conformance -----------------------------------------------------------------------
if want conformance; then
  bin="${GPU_CHECK_CONFORMANCE_BIN:-$build/unittests/CudaConformanceTests}"
  if [ ! -x "$bin" ]; then
    fail conformance FAIL "no $bin"
  else
    rm -f "$out/conformance.json"
    with_deps limited conformance 120 "$bin" --gtest_brief=1 "--gtest_output=json:$out/conformance.json"
    rc=$?
    counts="$(python3 - "$out/conformance.json" <<'EOF' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
tests = [t for s in d.get("testsuites", []) for t in s.get("testsuite", [])]
skipped = sum(1 for t in tests if t.get("result") == "SKIPPED")
failed = sum(1 for t in tests if t.get("failures"))
print("%d tests: %d passed, %d failed, %d skipped, %d disabled; %s" % (
    len(tests), len(tests) - failed - skipped, failed, skipped, d.get("disabled", 0), d.get("time", "")))
EOF
)"
    [ -n "$counts" ] || counts="no JSON report: $(tail_of conformance)"
    # On the GPU machine every case must run: all skipped means no GPU seen.
    if [ "$rc" = 0 ] && [ "$device" = cuda ] && [[ "$counts" =~ ^[0-9]+\ tests:\ 0\ passed ]]; then
      rc=1 counts="nothing ran (no GPU seen?): $counts"
    fi
    outcome conformance "$rc" "$counts"

    sanitizer="$(command -v compute-sanitizer || true)"
    for candidate in "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer; do
      [ -z "$sanitizer" ] && [ -x "$candidate" ] && sanitizer="$candidate"
    done
    if [ -z "$sanitizer" ]; then
      record sanitizer "n/a" "no compute-sanitizer"
    elif [ "$device" != cuda ]; then
      record sanitizer "n/a" "GPU_CHECK_DEVICE=cpu"
    else
      filter="${GPU_CHECK_SANITIZER_FILTER:-}"
      if [ -z "$filter" ]; then
        # One test per name, up to 8: the first instance of each
        # parameterized test (Suite.Name/param), the first test of a suite.
        filter="$(with_deps "$bin" --gtest_list_tests 2>/dev/null | awk '
          /^[^ ]/ { suite = $1; next }
          /^  [^ ]/ {
            base = suite $1; sub(/\/[^\/.]*$/, "", base)
            if (!(base in seen) && n < 8) { seen[base] = 1; printf "%s%s%s", (n++ ? ":" : ""), suite, $1 }
          }')"
      fi
      with_deps limited sanitizer 75 "$sanitizer" --tool memcheck --error-exitcode 99 \
        --print-limit 20 "$bin" "--gtest_filter=${filter:-*}"
      rc=$?
      summary="$(grep -m1 -o 'ERROR SUMMARY: [0-9]* errors\{0,1\}' "$out/logs/sanitizer.log")"
      ran="$(grep -c '^\[ RUN      \]' "$out/logs/sanitizer.log")"
      passed="$(grep -c '^\[       OK \]' "$out/logs/sanitizer.log")"
      chosen=$(($(printf '%s' "$filter" | tr -cd ':' | wc -c) + 1))
      figures="memcheck on $chosen tests ($passed/$ran run OK): ${summary:-no ERROR SUMMARY (cut short)}"
      [ "$rc" = 0 ] && [ "$passed" = 0 ] && rc=1 figures="nothing ran: $figures"
      outcome sanitizer "$rc" "$figures"
    fi
  fi
fi

# --- 3. e2e: CUDA vs CPU losses ---------------------------------------------------------------
e2e_steps=20
e2e_limit=60 # per run; 16 cores run the CPU side in ~5 s
[ "$device" = cpu ] && e2e_limit=240
if want e2e; then
  if [ "$device" = cuda ]; then sides=(cuda cpu); else sides=(cpu cpu); fi
  shape="$(plan_shape bench/plans/small-fp32.llx)"
  if [ ! -x "$llamac" ]; then
    fail e2e FAIL "no $llamac"
  elif [ -z "$shape" ]; then
    fail e2e FAIL "llamac inspect bench/plans/small-fp32.llx failed"
  else
    read -r vocab gbs seq _ _ <<<"$shape"
    tokens="$out/e2e/small.tok"
    python3 bench/torch_tinyllama.py --write-tokens "$tokens" --vocab "$vocab" \
      --num-tokens $((e2e_steps * gbs * (seq + 1) + 1)) >"$out/logs/e2e-tokens.log" 2>&1 ||
      fail e2e FAIL "token file: $(tail_of e2e-tokens)"
    for precision in fp32 bf16; do
      plan="bench/plans/small-$precision.llx"
      rtol=1e-4
      [ "$precision" = bf16 ] && rtol=2e-2
      ok=1
      rm -f "$out/e2e/$precision"-*.jsonl
      for i in 0 1; do
        side="${sides[$i]}" tag="a"
        [ "$i" = 1 ] && tag="b"
        threads=()
        [ "$side" = cpu ] && threads=(--threads "$(nproc)")
        if ! flag="$(device_flag "$side")"; then
          fail "e2e $precision" FAIL "this llamac has no --device"
          ok=0
          break
        fi
        # shellcheck disable=SC2086 # $flag is "--device X" or empty
        with_deps limited "e2e-$precision-$side-$tag" "$e2e_limit" "$llamac" run "$plan" $flag \
          --data "$tokens" --steps "$e2e_steps" --metrics "$out/e2e/$precision-$side-$tag.jsonl" \
          -q "${threads[@]}"
        rc=$?
        if [ "$rc" != 0 ]; then
          outcome "e2e $precision" "$rc" "$side run: $(tail_of "e2e-$precision-$side-$tag")"
          ok=0
          break
        fi
      done
      [ "$ok" = 1 ] || continue
      python3 bench/compare_losses.py "$out/e2e/$precision-${sides[0]}-a.jsonl" \
        "$out/e2e/$precision-${sides[1]}-b.jsonl" --rtol "$rtol" --steps "$e2e_steps" \
        >"$out/logs/e2e-$precision-compare.log" 2>&1
      rc=$?
      line="$(tail -1 "$out/logs/e2e-$precision-compare.log")"
      figures="${sides[0]} vs ${sides[1]}: ${line#*: }"
      outcome "e2e $precision" "$rc" "$figures"
    done
    # Bad input on a GPU: a plan larger than the GPU's memory is refused with
    # what it needs and what is free (Executor::checkDeviceFits).
    if [ "$device" = cuda ]; then
      with_deps limited e2e-oom 60 "$llamac" run bench/plans/oom-llama2-70b.llx \
        --device cuda --data "$tokens" --steps 1 -q
      rc=$?
      msg="$(grep -o 'out of device memory: the plan needs.*' "$out/logs/e2e-oom.log" | cut -c1-110)"
      if [ "$rc" = 1 ] && [ -n "$msg" ]; then
        record "oom error" PASS "$msg"
      else
        fail "oom error" FAIL "exit $rc, expected 1 and the memory message: $(tail_of e2e-oom)"
      fi
    fi
  fi
fi

# --- 4. benchmark -----------------------------------------------------------------------------
if want bench; then
  if [ "$device" = cuda ]; then
    plan=bench/plans/tinyllama-bf16.llx steps=12 torch_args=(--device cuda --steps 10 --warmup 3)
  else # plumbing only: the small plan and the --tiny torch model, on the CPU
    plan=bench/plans/small-bf16.llx steps=4 torch_args=(--device cpu --tiny --steps 3 --warmup 1)
  fi
  shape="$(plan_shape "$plan")"
  if [ ! -x "$llamac" ] || [ -z "$shape" ]; then
    fail "bench llamac" FAIL "no $llamac, or llamac inspect $plan failed"
  else
    read -r vocab gbs seq micro flops <<<"$shape"
    tokens="$out/bench/tokens.tok"
    python3 bench/torch_tinyllama.py --write-tokens "$tokens" --vocab "$vocab" \
      --num-tokens $((gbs * (seq + 1) * 4 + 1)) >"$out/logs/bench-tokens.log" 2>&1
    threads=()
    [ "$device" = cpu ] && threads=(--threads "$(nproc)")
    rm -f "$out/bench/llamac.jsonl" "$out/bench"/torch-*.json
    if flag="$(device_flag "$device")"; then
      # shellcheck disable=SC2086
      with_deps limited bench-llamac 150 "$llamac" run "$plan" $flag --data "$tokens" \
        --steps "$steps" --metrics "$out/bench/llamac.jsonl" "${threads[@]}"
      rc=$?
    else
      echo "this llamac has no --device" >"$out/logs/bench-llamac.log"
      rc=1
    fi
    figures="$(python3 - "$out/bench/llamac.jsonl" "$flops" "$gbs" "$seq" "$micro" <<'EOF' 2>/dev/null
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
flops, gbs, seq, micro = float(sys.argv[2]), *sys.argv[3:]
timed = rows[2:] if len(rows) > 2 else rows
tps = statistics.median(r["tokens_per_s"] for r in timed)
mfu = (statistics.median(r["mfu"] for r in timed) if all("mfu" in r for r in timed)
       else tps * flops / 989e12)
print("%.0f tokens/s, MFU %.1f%% (median of steps %d-%d; batch %s x %s, micro %s; loss %.3f -> %.3f)"
      % (tps, 100 * mfu, timed[0]["step"], timed[-1]["step"], gbs, seq, micro,
         rows[0]["loss"], rows[-1]["loss"]))
EOF
)"
    [ "$rc" = 0 ] && [ -z "$figures" ] && rc=1
    outcome "bench llamac" "$rc" "${figures:-$(tail_of bench-llamac)}"

    # The memory-bound figure: AdamW's achieved bandwidth against a
    # device-to-device copy, measured by the CUDA backend's own tool if built.
    if [ "$device" != cuda ]; then
      record "bench bandwidth" "n/a" "GPU_CHECK_DEVICE=cpu"
    elif [ -x "$build/bin/llamac-cuda-bench" ]; then
      with_deps limited cuda-bench 60 "$build/bin/llamac-cuda-bench"
      rc=$?
      cp "$out/logs/cuda-bench.log" "$out/bench/cuda-bench.txt" 2>/dev/null
      figures="$(grep -iE 'adamw|copy|GB/s' "$out/logs/cuda-bench.log" | tail -2 | tr -s ' \n' ' ' | cut -c1-160)"
      outcome "bench bandwidth" "$rc" "${figures:-$(tail_of cuda-bench)}"
    else
      record "bench bandwidth" "n/a" "no $build/bin/llamac-cuda-bench"
    fi

    for mode in eager compile; do
      compile=()
      limit=100
      [ "$mode" = compile ] && compile=(--compile) && limit=200
      limited "bench-torch-$mode" "$limit" "$python" bench/torch_tinyllama.py "${torch_args[@]}" \
        --batch "$micro" --seq-len "$seq" "${compile[@]}" --json "$out/bench/torch-$mode.json"
      rc=$?
      figures="$(python3 - "$out/bench/torch-$mode.json" <<'EOF' 2>/dev/null
import json, sys
r = json.load(open(sys.argv[1]))
if "skipped" in r:
    print("skipped: " + r["skipped"])
else:
    mem = " peak %.1f GiB," % r["peak_mem_gib"] if r.get("peak_mem_gib") else ""
    print("%.0f tokens/s, MFU %.1f%% (median of %d steps;%s %s %s, AdamW %s, warmup %.0fs, torch %s)"
          % (r["tokens_per_s"], 100 * r["mfu"], r["steps"], mem, r["precision"],
             r.get("bf16_mode") or "", r["adamw"], r["warmup_s"], r["torch"]))
EOF
)"
      [ "$rc" = 0 ] && [ -z "$figures" ] && rc=1
      if [ "$rc" = 0 ] && [[ "$figures" == skipped:* ]]; then
        record "bench torch $mode" SKIP "${figures#skipped: }"
      else
        outcome "bench torch $mode" "$rc" "${figures:-$(tail_of "bench-torch-$mode")}"
      fi
    done
    # The ratios of the same run: llamac's tokens/s over PyTorch's.
    ratios="$(python3 - "$out/bench/llamac.jsonl" "$out/bench/torch-eager.json" \
      "$out/bench/torch-compile.json" <<'EOF' 2>/dev/null
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
timed = rows[2:] if len(rows) > 2 else rows
ours = statistics.median(r["tokens_per_s"] for r in timed)
out = []
for name, path in (("eager", sys.argv[2]), ("torch.compile", sys.argv[3])):
    try:
        r = json.load(open(path))
        out.append("%.2fx %s" % (ours / r["tokens_per_s"], name))
    except Exception:
        out.append("no %s figure" % name)
print("llamac tokens/s over PyTorch's: " + ", ".join(out))
EOF
)"
    if [ -n "$ratios" ]; then
      record "bench ratio" "-" "$ratios"
    fi
  fi
fi

# --- 5. profile: where a step's time goes ------------------------------------------------------
if want profile; then
  if [ "$device" = cuda ]; then
    plan=bench/plans/tinyllama-bf16.llx
  else
    plan=bench/plans/small-bf16.llx
  fi
  shape="$(plan_shape "$plan")"
  if [ ! -x "$llamac" ] || [ -z "$shape" ] || ! flag="$(device_flag "$device")"; then
    fail "profile" FAIL "no $llamac, or llamac inspect $plan failed"
  else
    read -r vocab gbs seq micro flops <<<"$shape"
    tokens="$out/bench/tokens.tok"
    [ -f "$tokens" ] || python3 bench/torch_tinyllama.py --write-tokens "$tokens" --vocab "$vocab" \
      --num-tokens $((gbs * (seq + 1) * 4 + 1)) >"$out/logs/profile-tokens.log" 2>&1
    rm -f "$out/bench/trace.json"
    # shellcheck disable=SC2086
    with_deps limited profile 120 "$llamac" run "$plan" $flag --data "$tokens" --steps 3 \
      --trace "$out/bench/trace.json" -q
    rc=$?
    python3 bench/trace_summary.py "$out/bench/trace.json" --top 15 >"$out/bench/profile.txt" 2>&1 || rc=${rc/#0/1}
    figures="$(grep '^by category' "$out/bench/profile.txt" | cut -c1-150)"
    [ "$rc" = 0 ] && [ -z "$figures" ] && rc=1
    outcome "profile" "$rc" "${figures:-$(tail_of profile)}"
  fi
fi

# --- 6. summary -----------------------------------------------------------------------------
# Very long logs are cut to their head and tail, so that $OUT stays small.
for f in "$out"/logs/*.log; do
  if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 2000000 ]; then
    { head -c 200000 "$f"; printf '\n... [cut by gpu-check.sh] ...\n'; tail -c 800000 "$f"; } >"$f.cut"
    mv "$f.cut" "$f"
  fi
done
{
  echo "gpu-check ($device) $(head -1 "$out/env.txt" | cut -d' ' -f2-), $(sed -n 's/^commit: //p' "$out/env.txt"), ${SECONDS}s"
  grep -m1 -E 'H100|H200|A100|NVIDIA' "$out/env.txt" || true
  awk -F'\t' '
    { s[NR] = $1; r[NR] = $2; f[NR] = $3; if (length($1) > w1) w1 = length($1); if (length($2) > w2) w2 = length($2) }
    END {
      if (w1 < 5) w1 = 5; if (w2 < 6) w2 = 6
      printf "%-" w1 "s | %-" w2 "s | %s\n", "stage", "result", "figures"
      line = ""; for (i = 0; i < w1 + w2 + 40; i++) line = line "-"; print line
      for (i = 1; i <= NR; i++) printf "%-" w1 "s | %-" w2 "s | %s\n", s[i], r[i], f[i]
    }' "$out/summary.tsv"
} >"$out/summary.txt"
echo
cat "$out/summary.txt"
exit "$failed"
