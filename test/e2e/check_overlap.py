"""Overlap evidence from a `llamac run --trace` file of a data-parallel run
with gradient buckets: the communication thread's first bucket all-reduce
(lane 3, "bucket_all_reduce") starts before the backward pass ends, i.e.
before the first optimizer kernel (lr_schedule, global_norm, sum_squares,
all_finite, adamw) starts on the compute lane, in most steps (all but one
at most: on an oversubscribed machine, such as a 2-core CI box running
several ranks, the thread can occasionally wake late). Plain Python.

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
    ok, overlapped = True, 0
    for step in range(1, a.steps + 1):
        mine = [e for e in events if e.get("args", {}).get("step") == step]
        buckets = sorted(e["ts"] for e in mine
                         if e["tid"] == 3 and e["name"] == "bucket_all_reduce")
        optimizer = sorted(e["ts"] for e in mine
                           if e["tid"] == 0 and e["name"] in OPTIMIZER)
        span = [e for e in mine if e["tid"] == 2 and e["name"] == "step"]
        if not buckets or not optimizer or not span:
            print("step %d: missing bucket, optimizer or step events" % step)
            ok = False
            continue
        t0 = span[0]["ts"]
        first, end = buckets[0] - t0, optimizer[0] - t0
        overlap = first < end
        print("step %d: %d bucket all-reduces, the first starts at +%.0f us, "
              "the backward pass ends at +%.0f us: %s"
              % (step, len(buckets), first, end, "overlap" if overlap else "NO OVERLAP"))
        overlapped += overlap
    ok = ok and overlapped >= max(1, a.steps - 1)
    print("overlap in %d of %d steps: %s" % (overlapped, a.steps, "OK" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
