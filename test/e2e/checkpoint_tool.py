"""Helpers of the checkpoint e2e tests, written from the checkpoint layout
(runtime/exec/Checkpoint.h, safetensors), not from llamac's code. Plain
Python, no third-party modules.

  make-tokens:  a llamac token file of a noisy repeating pattern
  same-losses:  the metrics of several runs (e.g. before and after a resume)
                equal an uninterrupted run's bit for bit
  check-latest: DIR/latest names a complete, readable checkpoint
  shapes:       name and shape of every weight of a checkpoint directory
  finite:       every weight and moment of a checkpoint directory is finite
  scale-log:    the loss_scale / skipped sequence of a metrics file
  tail-close:   the last N steps of a resumed run equal the uninterrupted
                run's within a relative tolerance (another layout resumed)
  crash:        SIGKILLs `llamac run --save-every 1` repeatedly (while a save
                is in progress, and at random times), checks the checkpoint
                that `latest` names after every kill, resumes until the run
                is complete, and compares every loss with a straight run
"""
import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time

TOKEN_MAGIC = b"LLAMACTK"
DTYPE_BYTES = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I32": 4, "I64": 8}


def make_tokens(a):
    rng = random.Random(a.seed)
    toks = [(i * 7 + (i // 11)) % a.vocab if rng.random() > 0.2
            else rng.randrange(a.vocab) for i in range(a.count)]
    with open(a.out, "wb") as f:
        f.write(TOKEN_MAGIC + struct.pack("<IIQQ", 1, 2, a.vocab, len(toks)))
        f.write(struct.pack("<%dH" % len(toks), *toks))
    return 0


def read_metrics(path):
    """Rows by step; a last line cut short by a kill is skipped."""
    rows = {}
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            rows[row["step"]] = row
    return rows


def compare_rows(reference, runs):
    """Every row of every run equals the reference row of its step exactly
    (the values are float32 losses printed with full precision, so equal
    JSON numbers are equal bits). Returns (steps compared, mismatches)."""
    seen, bad = set(), []
    for run in runs:
        for step, row in run.items():
            ref = reference.get(step)
            if ref is None:
                bad.append("step %d is not in the reference run" % step)
                continue
            for key in ("loss", "grad_norm", "lr"):
                if row[key] != ref[key]:
                    bad.append("step %d %s: %r != %r" % (step, key, row[key], ref[key]))
            seen.add(step)
    return seen, bad


def same_losses(a):
    reference = read_metrics(a.reference)
    runs = [read_metrics(p) for p in a.runs]
    seen, bad = compare_rows(reference, runs)
    for step in sorted(seen):
        print("step %d loss %r" % (step, reference[step]["loss"]))
    for b in bad:
        print("MISMATCH " + b)
    missing = sorted(set(reference) - seen)
    if missing:
        print("MISSING steps %s" % missing)
    ok = not bad and not missing
    print("%d steps, losses bit-identical to the uninterrupted run: %s"
          % (len(seen), "OK" if ok else "FAIL"))
    return 0 if ok else 1


def check_safetensors(path):
    """Header and sizes of a safetensors file; returns {name: (dtype, shape)}."""
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) >= 8, "%s: shorter than a header" % path
    (n,) = struct.unpack("<Q", data[:8])
    assert 8 + n <= len(data), "%s: header beyond the end" % path
    header = json.loads(data[8:8 + n])
    tensors, end = {}, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        count = 1
        for d in info["shape"]:
            count *= d
        assert e - b == count * DTYPE_BYTES[info["dtype"]], "%s: %s size" % (path, name)
        end = max(end, e)
        tensors[name] = (info["dtype"], info["shape"])
    assert 8 + n + end == len(data), "%s: %d bytes, expected %d" % (path, len(data), 8 + n + end)
    return tensors


def check_latest(ckpt_dir):
    """The checkpoint `latest` names: complete and consistent. Returns its
    step."""
    with open(os.path.join(ckpt_dir, "latest")) as f:
        name = f.read()
    assert name.endswith("\n") and name.startswith("step-"), repr(name)
    path = os.path.join(ckpt_dir, name.strip())
    state = json.load(open(os.path.join(path, "trainer_state.json")))
    assert int(name.strip()[5:]) == state["step"] == state["data_position"], state
    json.load(open(os.path.join(path, "config.json")))
    weights = check_safetensors(os.path.join(path, "model.safetensors"))
    moments = check_safetensors(os.path.join(path, "optimizer.safetensors"))
    for w, (dtype, shape) in weights.items():
        assert dtype == "F32", w
        for suffix in (".exp_avg", ".exp_avg_sq"):
            assert moments.get(w + suffix) == (dtype, shape), w + suffix
    assert len(moments) == 2 * len(weights)
    return state["step"]


def check_latest_cmd(a):
    step = check_latest(a.dir)
    print("latest: step %d, complete" % step)
    return 0


def crash(a):
    rng = random.Random(a.seed)
    base = [a.llamac, "run", a.plan, "--data", a.data, "--steps", str(a.steps),
            "--save-dir", a.dir, "--save-every", "1", "--keep", "2", "-q"]
    runs, mid_save, kills = [], 0, 0
    for k in range(a.kills + 1):
        resume = os.path.exists(os.path.join(a.dir, "latest"))
        if not resume and os.path.isdir(a.dir):
            # The first save was killed before it was published: nothing to
            # resume (llamac says so); start afresh as a user would.
            subprocess.run(["rm", "-rf", a.dir], check=True)
        metrics = os.path.join(a.work, "run-%d.jsonl" % k)
        cmd = base + ["--metrics", metrics] + (["--resume"] if resume else [])
        if k == a.kills:  # the last run completes
            subprocess.run(cmd, check=True)
            runs.append(read_metrics(metrics))
            break
        p = subprocess.Popen(cmd)
        tmp_prefix = ".tmp-step-"
        tmp_suffix = "-%d" % p.pid
        deadline = time.time() + 120
        if k % 2 == 0:
            # Kill while this process's save is in progress.
            while p.poll() is None and time.time() < deadline:
                names = os.listdir(a.dir) if os.path.isdir(a.dir) else []
                if any(n.startswith(tmp_prefix) and n.endswith(tmp_suffix) for n in names):
                    time.sleep(rng.uniform(0, a.max_delay))
                    break
                time.sleep(0.0005)
        else:
            # Kill at a random time after its first step: in a step, in a
            # save, in pruning.
            while p.poll() is None and time.time() < deadline:
                if read_metrics(metrics):
                    time.sleep(rng.uniform(0, a.max_random))
                    break
                time.sleep(0.001)
        if p.poll() is not None:
            print("run %d finished before it was killed" % k)
            runs.append(read_metrics(metrics))
            break
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        kills += 1
        names = os.listdir(a.dir) if os.path.isdir(a.dir) else []
        if any(n.startswith(tmp_prefix) and n.endswith(tmp_suffix) for n in names):
            mid_save += 1
        runs.append(read_metrics(metrics))
        if os.path.exists(os.path.join(a.dir, "latest")):
            check_latest(a.dir)
    final = check_latest(a.dir)
    print("kills %d (%d during a save), latest usable after every kill: OK"
          % (kills, mid_save))
    print("final checkpoint at step %d of %d: %s"
          % (final, a.steps, "OK" if final == a.steps else "FAIL"))
    reference = read_metrics(a.reference)
    seen, bad = compare_rows(reference, runs)
    for b in bad:
        print("MISMATCH " + b)
    print("%d steps across %d runs, losses bit-identical to the "
          "uninterrupted run: %s" % (len(seen), len(runs), "OK" if not bad else "FAIL"))
    if mid_save < 1:
        print("FAIL: no kill landed during a save")
    ok = final == a.steps and not bad and mid_save >= 1 and len(seen) == a.steps
    return 0 if ok else 1


def shapes(a):
    weights = check_safetensors(os.path.join(a.dir, "model.safetensors"))
    moments = check_safetensors(os.path.join(a.dir, "optimizer.safetensors"))
    for name in sorted(weights):
        dtype, shape = weights[name]
        assert moments.get(name + ".exp_avg") == (dtype, shape), name
        print("%s %s" % (name, shape))
    return 0


def finite(a):
    bad, count = [], 0
    for fname in ("model.safetensors", "optimizer.safetensors"):
        path = os.path.join(a.dir, fname)
        check_safetensors(path)
        with open(path, "rb") as f:
            data = f.read()
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        for name, info in header.items():
            if name == "__metadata__":
                continue
            assert info["dtype"] == "F32", name
            b, e = info["data_offsets"]
            values = struct.unpack("<%df" % ((e - b) // 4), data[8 + n + b:8 + n + e])
            count += len(values)
            if any(v != v or v in (float("inf"), float("-inf")) for v in values):
                bad.append(name)
    for name in bad:
        print("NOT FINITE " + name)
    print("%d values, %s" % (count, "all finite" if not bad else "%d tensors not finite" % len(bad)))
    return 0 if not bad else 1


def scale_log(a):
    """Prints the scale sequence and checks it against GradScaler's
    recurrence (hysteresis 1, growth interval beyond the run): a skipped
    step halves the next step's scale (not below 1), a finite step keeps
    it."""
    rows = read_metrics(a.metrics)
    steps = sorted(rows)
    skipped = [s for s in steps if rows[s]["skipped"]]
    print("skipped steps: %s" % (",".join(str(s) for s in skipped) or "none"))
    bad = []
    for s, t in zip(steps, steps[1:]):
        now, nxt = rows[s]["loss_scale"], rows[t]["loss_scale"]
        want = max(1.0, now / 2) if rows[s]["skipped"] else now
        if nxt != want:
            bad.append("step %d: scale %g after %g (%s), expected %g"
                       % (t, nxt, now, "skipped" if rows[s]["skipped"] else "finite", want))
    for s in steps:
        print("step %d scale %g%s" % (s, rows[s]["loss_scale"],
                                      " skipped" if rows[s]["skipped"] else ""))
    for b in bad:
        print("MISMATCH " + b)
    print("scale recurrence: %s" % ("OK" if not bad else "FAIL"))
    return 0 if not bad else 1


def tail_close(a):
    run, ref = read_metrics(a.run), read_metrics(a.reference)
    steps = sorted(run)
    if len(steps) != a.steps or any(s not in ref for s in steps):
        print("expected %d resumed steps that the reference has, got %s"
              % (a.steps, steps))
        return 1
    for step in steps:
        for key in ("loss", "grad_norm"):
            x, y = run[step][key], ref[step][key]
            rel = abs(x - y) / max(abs(y), 1e-12)
            print("step %d %s %.8f reference %.8f" % (step, key, x, y))
            if rel > a.rtol or run[step]["lr"] != ref[step]["lr"]:
                print("step %d: %s differs by %.3g (> %g)" % (step, key, rel, a.rtol))
                return 1
    print("%d resumed steps within %g of the uninterrupted run: OK"
          % (a.steps, a.rtol))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-tokens")
    m.add_argument("out")
    m.add_argument("--vocab", type=int, required=True)
    m.add_argument("--count", type=int, default=20000)
    m.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("same-losses")
    s.add_argument("reference")
    s.add_argument("runs", nargs="+")
    c = sub.add_parser("check-latest")
    c.add_argument("dir")
    h = sub.add_parser("shapes")
    h.add_argument("dir")
    fi = sub.add_parser("finite")
    fi.add_argument("dir")
    sl = sub.add_parser("scale-log")
    sl.add_argument("metrics")
    t = sub.add_parser("tail-close")
    t.add_argument("run")
    t.add_argument("reference")
    t.add_argument("steps", type=int)
    t.add_argument("--rtol", type=float, default=1e-5)
    k = sub.add_parser("crash")
    for flag in ("--llamac", "--plan", "--data", "--dir", "--work", "--reference"):
        k.add_argument(flag, required=True)
    k.add_argument("--steps", type=int, default=20)
    k.add_argument("--kills", type=int, default=6)
    k.add_argument("--seed", type=int, default=1)
    k.add_argument("--max-delay", type=float, default=0.002,
                   help="most seconds between seeing a save start and the kill")
    k.add_argument("--max-random", type=float, default=0.3,
                   help="most seconds between the first step and a random kill")
    a = ap.parse_args()
    return {"make-tokens": make_tokens, "same-losses": same_losses,
            "check-latest": check_latest_cmd, "crash": crash, "shapes": shapes,
            "finite": finite, "scale-log": scale_log,
            "tail-close": tail_close}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
