"""The schedule a pipeline stage really ran, from a `llamac run --trace`
file: the compute lane's kernels of one step in time order, folded into
tasks (F<k> / B<k>: the forward or backward of microbatch k, from the
events' microbatch and phase), and the number of send and recv transfers on
the collectives lane. Plain Python.

  check_pipeline_trace.py TRACE.json --step N
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--step", type=int, required=True)
    a = ap.parse_args()
    data = json.load(open(a.trace))
    events = sorted((e for e in data["traceEvents"]
                     if e.get("ph") == "X" and e.get("args", {}).get("step") == a.step),
                    key=lambda e: e["ts"])
    tasks = []
    for e in events:
        args = e["args"]
        if e["tid"] != 0 or "phase" not in args:
            continue
        task = ("F" if args["phase"] == "forward" else "B") + str(args["microbatch"])
        if not tasks or tasks[-1] != task:
            tasks.append(task)
    sends = sum(1 for e in events if e["tid"] == 1 and e["name"] == "send")
    recvs = sum(1 for e in events if e["tid"] == 1 and e["name"] == "recv")
    rank = data.get("metadata", {}).get("rank", "?")
    print("rank %s step %d: %s; %d recv, %d send" % (rank, a.step, " ".join(tasks), recvs, sends))
    return 0 if tasks else 1


if __name__ == "__main__":
    sys.exit(main())
