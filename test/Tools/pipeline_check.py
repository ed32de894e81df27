"""Independent checks of `llamac compile --report` output for pipeline
stages. Plain Python.

  pipeline_check.py split REPORT
      From the report's unit costs (embedding, layers, head), tries every
      contiguous split of the layers into the report's stages (each stage
      at least one layer, the embedding on the first, the head on the last)
      and checks that the chosen one (the stages' first layers) has the
      smallest slowest stage; prints both.
  pipeline_check.py arena-smaller A B
      Checks that the largest stage arena of report A is smaller than B's.
"""
import itertools
import re
import sys


def parse(path):
    units, stages, arena = None, [], []
    for line in open(path):
        if line.strip().startswith("unit costs"):
            units = [float(v) for v in re.findall(r"=([0-9.]+)", line)]
        m = re.match(r"\s+(\d+)\s+(embedding \+ )?layers? (\d+)(?:-(\d+))?", line)
        if m and units is not None:
            stages.append(int(m.group(3)))
            arena.append(int(line.split()[-1]))
    return units, stages, arena


def worst(units, firsts):
    layers = units[1:-1]
    bounds = list(firsts) + [len(layers)]
    costs = []
    for s in range(len(firsts)):
        c = sum(layers[bounds[s]:bounds[s + 1]])
        if s == 0:
            c += units[0]
        if s == len(firsts) - 1:
            c += units[-1]
        costs.append(c)
    return max(costs)


def main():
    if sys.argv[1] == "split":
        units, firsts, _ = parse(sys.argv[2])
        L, P = len(units) - 2, len(firsts)
        best = min((worst(units, (0,) + c), (0,) + c)
                   for c in itertools.combinations(range(1, L), P - 1))
        chosen = worst(units, firsts)
        ok = chosen <= best[0] * (1 + 1e-9)
        print("chosen first layers %s: slowest stage %.3f us; best %s: %.3f us; "
              "equal layers %s: %.3f us: %s"
              % (firsts, chosen, list(best[1]), best[0],
                 [L * s // P for s in range(P)],
                 worst(units, [L * s // P for s in range(P)]),
                 "OK" if ok else "FAIL"))
        return 0 if ok else 1
    a, b = max(parse(sys.argv[2])[2]), max(parse(sys.argv[3])[2])
    ok = a < b
    print("largest stage arena %d < %d bytes (%.0f%%): %s"
          % (a, b, 100.0 * a / b, "OK" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
