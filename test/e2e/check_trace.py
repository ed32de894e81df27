"""Checks a trace of `llamac run --trace` (runtime/exec/Trace.h) against the
Trace Event Format and what the run did. Plain Python.

  check_trace.py TRACE.json --rank R --steps N [--kernels linear,adamw]
                 [--all-reduce]

Checks: the file is one JSON object with traceEvents, displayTimeUnit "ms"
and metadata (rank R); the process is named "rank R" and the lanes 0-2
"compute", "collectives", "host"; every complete event has pid R, ts >= 0,
dur >= 0, and within each lane starts no earlier than the previous one;
each step 1..N has a "step" span and a "data" event on the host lane, and
the same number of kernel events on the compute lane, all inside the span;
each of --kernels runs in every step; with --all-reduce, every step has
all_reduce events on the collectives lane (cat "comm", grid_axes,
reduction, bytes > 0) and none elsewhere.
"""
import argparse
import collections
import json
import sys

LANES = {0: "compute", 1: "collectives", 2: "host"}


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("trace")
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--kernels", default="")
    p.add_argument("--all-reduce", action="store_true")
    a = p.parse_args()

    with open(a.trace) as f:
        trace = json.load(f)
    if trace.get("displayTimeUnit") != "ms":
        fail("displayTimeUnit is %r" % trace.get("displayTimeUnit"))
    if trace.get("metadata", {}).get("rank") != a.rank:
        fail("metadata.rank is %r" % trace.get("metadata", {}).get("rank"))
    events = trace["traceEvents"]

    names = {(e["name"], e["tid"]): e["args"]["name"]
             for e in events if e["ph"] == "M" and "name" in e["args"]}
    if names.get(("process_name", 0)) != "rank %d" % a.rank:
        fail("process_name is %r" % names.get(("process_name", 0)))
    for tid, lane in LANES.items():
        if names.get(("thread_name", tid)) != lane:
            fail("lane %d is named %r" % (tid, names.get(("thread_name", tid))))

    complete = [e for e in events if e["ph"] == "X"]
    last = {}
    for e in complete:
        if e["pid"] != a.rank:
            fail("event with pid %r: %s" % (e["pid"], e))
        if e["ts"] < 0 or e["dur"] < 0:
            fail("negative time: %s" % e)
        if e["ts"] < last.get(e["tid"], 0.0):
            fail("lane %d goes back in time at %s" % (e["tid"], e))
        last[e["tid"]] = e["ts"]

    steps = list(range(1, a.steps + 1))
    spans = {e["args"]["step"]: e for e in complete
             if e["tid"] == 2 and e["name"] == "step"}
    if sorted(spans) != steps:
        fail("step spans for steps %s" % sorted(spans))
    data = sorted(e["args"]["step"] for e in complete
                  if e["tid"] == 2 and e["name"] == "data")
    if data != steps:
        fail("data events for steps %s" % data)

    kernels = [e for e in complete if e["tid"] == 0]
    per_step = collections.Counter(e["args"]["step"] for e in kernels)
    if sorted(per_step) != steps or len(set(per_step.values())) != 1:
        fail("kernel events per step: %s" % dict(per_step))
    for e in kernels:
        span = spans[e["args"]["step"]]
        if (e["ts"] < span["ts"] - 1e-3 or
                e["ts"] + e["dur"] > span["ts"] + span["dur"] + 1e-3):
            fail("kernel outside its step's span: %s" % e)
        if e["cat"] != "kernel" or "loc" not in e["args"]:
            fail("kernel event without cat or loc: %s" % e)
    for name in filter(None, a.kernels.split(",")):
        got = sorted({e["args"]["step"] for e in kernels if e["name"] == name})
        if got != steps:
            fail("%s runs in steps %s" % (name, got))

    reduces = [e for e in complete if e["name"] == "all_reduce"]
    if a.all_reduce:
        for e in reduces:
            args = e["args"]
            if (e["tid"] != 1 or e["cat"] != "comm" or
                    args.get("bytes", 0) <= 0 or "grid_axes" not in args or
                    "reduction" not in args):
                fail("all_reduce event: %s" % e)
        got = sorted({e["args"]["step"] for e in reduces})
        if got != steps:
            fail("all_reduce in steps %s" % got)
    elif reduces:
        fail("%d all_reduce events in a single-rank run" % len(reduces))

    print("rank %d: %d steps, %d kernel events per step, %d all_reduce events"
          ": OK" % (a.rank, a.steps, per_step[1], len(reduces)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
