"""Compares the metrics (JSON Lines) of a run with those of a reference run
of the same model and global batch under another layout: same steps and
learning rates, losses and gradient norms equal within a relative tolerance
(fp32 reduction-order noise, DESIGN.md A4). Plain Python.

  close_losses.py RUN.jsonl REFERENCE.jsonl STEPS [--rtol 1e-5] [--keys loss,grad_norm]
"""
import argparse
import json
import sys


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("reference")
    p.add_argument("steps", type=int)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--keys", default="loss,grad_norm",
                   help="comma-separated metrics to compare")
    a = p.parse_args()
    run, ref = rows(a.run), rows(a.reference)
    if len(run) != a.steps or len(ref) != a.steps:
        print("expected %d steps, got %d and %d" % (a.steps, len(run), len(ref)))
        return 1
    worst = 0.0
    for r, q in zip(run, ref):
        if r["step"] != q["step"] or r["lr"] != q["lr"]:
            print("step %s: step/lr %s/%s differ from %s/%s" %
                  (q["step"], r["step"], r["lr"], q["step"], q["lr"]))
            return 1
        for key in a.keys.split(","):
            x, y = r[key], q[key]
            rel = abs(x - y) / max(abs(y), 1e-12)
            worst = max(worst, rel)
            print("step %d %s %.8f reference %.8f" % (q["step"], key, x, y))
            if rel > a.rtol:
                print("step %d: %s %r differs from %r by %.3g (> %g)" %
                      (q["step"], key, x, y, rel, a.rtol))
                return 1
    what = ("losses and gradient norms" if a.keys == "loss,grad_norm"
            else a.keys.replace(",", ", "))
    print("%d steps, %s within %g of the reference: OK" % (a.steps, what, a.rtol))
    return 0


if __name__ == "__main__":
    sys.exit(main())
