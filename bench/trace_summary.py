#!/usr/bin/env python3
"""Where one step's time goes, from a trace of `llamac run --trace`
(runtime/exec/Trace.h; with --device cuda every op timed between CUDA events
on the device). Plain Python.

  trace_summary.py TRACE.json [--step N] [--top 12]

Prints, for step N (default: the last), the step's span, the busy time of
the compute lane, and the ops grouped by name: calls, total ms, share of
the compute lane's busy time, and by category (GEMM: linear*, attention,
optimizer: adamw / global_norm / all_finite / clip*, collectives, the rest).
"""
import argparse
import collections
import json
import sys

GROUPS = (
    ("GEMM", lambda n: n.startswith("linear")),
    ("attention", lambda n: n.startswith("attention")),
    ("optimizer", lambda n: n in ("adamw", "global_norm", "sum_squares", "all_finite",
                                  "clip_coef", "clip_by_value", "lr_schedule", "sqrt")),
    ("collectives", lambda n: n in ("all_reduce", "all_gather", "reduce_scatter", "send",
                                    "recv", "bucket_all_reduce_start", "bucket_all_reduce_wait")),
)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("trace")
    p.add_argument("--step", type=int, default=0)
    p.add_argument("--top", type=int, default=12)
    a = p.parse_args()
    events = [e for e in json.load(open(a.trace))["traceEvents"] if e.get("ph") == "X"]
    steps = sorted({e["args"]["step"] for e in events if "step" in e.get("args", {})})
    if not steps:
        print("no steps in the trace")
        return 1
    step = a.step or steps[-1]
    mine = [e for e in events if e.get("args", {}).get("step") == step]
    span = [e for e in mine if e["name"] == "step" and e["tid"] == 2]
    ops = [e for e in mine if e["tid"] in (0, 1) and e.get("cat") in ("kernel", "comm")
           and e["name"] != "agree_on_failure"]
    if not ops:
        print("no ops in step %d" % step)
        return 1
    busy = sum(e["dur"] for e in ops)
    by = collections.defaultdict(lambda: [0, 0.0])
    for e in ops:
        by[e["name"]][0] += 1
        by[e["name"]][1] += e["dur"]
    span_ms = span[0]["dur"] / 1e3 if span else float("nan")
    print("step %d: span %.2f ms, ops busy %.2f ms (%d ops)" % (step, span_ms, busy / 1e3, len(ops)))
    print("%-28s %6s %10s %7s" % ("op", "calls", "ms", "share"))
    for name, (calls, dur) in sorted(by.items(), key=lambda kv: -kv[1][1])[: a.top]:
        print("%-28s %6d %10.3f %6.1f%%" % (name, calls, dur / 1e3, 100 * dur / busy))
    groups = collections.OrderedDict((g, 0.0) for g, _ in GROUPS)
    groups["other"] = 0.0
    for name, (_, dur) in by.items():
        for g, match in GROUPS:
            if match(name):
                groups[g] += dur
                break
        else:
            groups["other"] += dur
    print("by category: " + ", ".join("%s %.1f%%" % (g, 100 * d / busy) for g, d in groups.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
