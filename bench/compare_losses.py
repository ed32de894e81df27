"""Compares the per-step losses of two `llamac run --metrics` files (JSON
Lines: step, loss, lr, grad_norm, tokens_per_s, ...), e.g. the same plan on
--device cuda and --device cpu (scripts/gpu-check.sh, stage e2e). Passes when
both have the same steps (and --steps of them, if given), the same learning
rates, finite losses, and the largest relative loss difference is at most
--rtol. Gradient norms are reported, not checked (--check-grad-norm to check
them with the same tolerance). Unlike test/e2e/close_losses.py it reports the
largest difference over all steps instead of stopping at the first one over
the tolerance. Plain Python.

  compare_losses.py RUN.jsonl REFERENCE.jsonl [--rtol 1e-4] [--steps N]
                    [--check-grad-norm] [--quiet]

The last line is one summary: "PASS|FAIL: loss max rel diff ...".
"""
import argparse
import json
import math
import sys


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def rel(x, y):
    return abs(x - y) / max(abs(y), 1e-12)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("reference")
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--steps", type=int, help="expected number of steps")
    p.add_argument("--check-grad-norm", action="store_true")
    p.add_argument("--quiet", action="store_true", help="print the summary only")
    a = p.parse_args()
    try:
        run, ref = rows(a.run), rows(a.reference)
    except (OSError, ValueError) as e:
        print("FAIL: cannot read the metrics: %s" % e)
        return 1
    if a.steps is not None and (len(run) != a.steps or len(ref) != a.steps):
        print("FAIL: expected %d steps, got %d (%s) and %d (%s)"
              % (a.steps, len(run), a.run, len(ref), a.reference))
        return 1
    if len(run) != len(ref) or not run:
        print("FAIL: %d steps in %s, %d in %s" % (len(run), a.run, len(ref), a.reference))
        return 1
    worst = {"loss": (0.0, None), "grad_norm": (0.0, None)}
    problems = []
    for r, q in zip(run, ref):
        if r["step"] != q["step"]:
            problems.append("step %s vs %s" % (r["step"], q["step"]))
            break
        if not math.isclose(r["lr"], q["lr"], rel_tol=1e-6):
            problems.append("step %s: lr %r vs %r" % (q["step"], r["lr"], q["lr"]))
        for key in worst:
            x, y = r.get(key), q.get(key)
            if x is None or y is None:
                continue
            if not (math.isfinite(x) and math.isfinite(y)):
                problems.append("step %s: %s %r vs %r" % (q["step"], key, x, y))
                continue
            d = rel(x, y)
            if d > worst[key][0] or worst[key][1] is None:
                worst[key] = (d, q["step"])
        if not a.quiet:
            print("step %4d loss %.8f reference %.8f rel %.2e   grad_norm %.6f reference %.6f"
                  % (q["step"], r["loss"], q["loss"], rel(r["loss"], q["loss"]),
                     r.get("grad_norm", float("nan")), q.get("grad_norm", float("nan"))))
    loss_d, loss_step = worst["loss"]
    gn_d, gn_step = worst["grad_norm"]
    ok = not problems and loss_d <= a.rtol
    if a.check_grad_norm and gn_d > a.rtol:
        ok = False
    for msg in problems:
        print("problem: " + msg)
    print("%s: loss max rel diff %.1e at step %s (tol %.0e), %d steps; grad_norm %.1e%s"
          % ("PASS" if ok else "FAIL", loss_d, loss_step, a.rtol, len(run), gn_d,
             "" if a.check_grad_norm else " (unchecked)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
