"""Asserts that a metrics JSONL has N steps and that the loss fell: the mean
of the last 5 steps is at least 10% below the first step's loss."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
assert len(rows) == n, "expected %d steps, got %d" % (n, len(rows))
for key in ("step", "loss", "lr", "grad_norm", "tokens_per_s"):
    assert key in rows[0], "metrics lack '%s'" % key
first = rows[0]["loss"]
last = sum(r["loss"] for r in rows[-5:]) / 5
ok = last < 0.9 * first
print("loss fell from %.4f to %.4f: %s" % (first, last, "OK" if ok else "NO"))
sys.exit(0 if ok else 1)
