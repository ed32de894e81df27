"""Overlap evidence from a `llamac run --trace` file of a data-parallel run
with gradient buckets. Two findings per step:

- posted: the first bucket_all_reduce_start (lane 1, the main thread posting
  a bucket to the communication thread) comes before the backward pass ends,
  i.e. before the first optimizer kernel (lr_schedule, global_norm,
  sum_squares, all_finite, adamw) on the compute lane. That is the plan's
  order and must hold in every step.
- running: the communication thread's first "bucket_all_reduce" (lane 3)
  begins before the backward pass ends. That depends on the OS scheduling
  the thread; on an oversubscribed machine (a 2-core CI box running two
  ranks and two communication threads) it can wake late, so it must hold in
  at least one step, and the count is printed.

Plain Python.

  check_overlap.py TRACE.json --steps N
"""
import argparse
import json
import sys

OPTIMIZER = {"lr_schedule", "global_norm", "sum_squares", "all_finite", "adamw"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--steps", type=int, required=True)
    a = ap.parse_args()
    events = [e for e in json.load(open(a.trace))["traceEvents"] if e.get("ph") == "X"]
    ok, posted, running = True, 0, 0
    for step in range(1, a.steps + 1):
        mine = [e for e in events if e.get("args", {}).get("step") == step]
        buckets = sorted(e["ts"] for e in mine
                         if e["tid"] == 3 and e["name"] == "bucket_all_reduce")
        starts = sorted(e["ts"] for e in mine
                        if e["tid"] == 1 and e["name"] == "bucket_all_reduce_start")
        optimizer = sorted(e["ts"] for e in mine
                           if e["tid"] == 0 and e["name"] in OPTIMIZER)
        span = [e for e in mine if e["tid"] == 2 and e["name"] == "step"]
        if not buckets or not starts or not optimizer or not span:
            print("step %d: missing bucket, start, optimizer or step events" % step)
            ok = False
            continue
        t0 = span[0]["ts"]
        post, first, end = starts[0] - t0, buckets[0] - t0, optimizer[0] - t0
        print("step %d: %d bucket all-reduces, the first posted at +%.0f us, "
              "running at +%.0f us, the backward pass ends at +%.0f us: %s"
              % (step, len(buckets), post, first, end,
                 "overlap" if first < end else
                 "posted early, ran late" if post < end else "NOT POSTED EARLY"))
        posted += post < end
        running += first < end
    ok = ok and posted == a.steps and running >= 1
    print("posted before the backward pass ends in %d of %d steps, running "
          "during it in %d: %s" % (posted, a.steps, running, "OK" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
