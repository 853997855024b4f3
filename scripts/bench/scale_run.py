"""Reduced `bench scale` run (points of the quick preset, 1 cell per size), most informative points first."""

import json
import sys

from mfal.bench.scale import _subprocess_point

common = {"k": 4, "threads": 1, "kind": sys.argv[1] if len(sys.argv) > 1 else None}
points = [{**common, "what": "score_atoms", "n_atoms": a, "n": 1} for a in (28, 112, 224, 448)]
points += [
    {**common, "what": "throughput", "n": 16, "batch": 16},
    {**common, "what": "candidates", "n": 100, "batch": 50},
]
points += [{**common, "what": "train_atoms", "n_atoms": a, "n": 1} for a in (28, 112, 224, 448)]
points += [{**common, "what": "candidates", "n": 1000, "batch": 50}]
out = open("./scale_points.jsonl", "a")
for p in points:
    try:
        r = _subprocess_point(p, 7200)
    except Exception as e:
        r = {**p, "error": str(e)}
    out.write(json.dumps(r) + "\n")
    out.flush()
