"""score_atoms / train_atoms points of `mfal bench scale --preset full` (same run_point subprocesses)."""
import json

from mfal.bench.scale import PRESETS, _subprocess_point, fit_exponent

p = PRESETS["full"]
rows = []
for n_atoms in p["atoms"]:
    rows.append(_subprocess_point({"k": 4, "threads": 1, "kind": None, "what": "score_atoms", "n_atoms": n_atoms, "n": p["atoms_cells"]}, 1800))
    print(json.dumps({k: rows[-1][k] for k in ("n_atoms", "cpu_s", "wall_s", "rss_peak_mb")}), flush=True)
print("exponent cpu", fit_exponent([r["n_atoms"] for r in rows], [r["cpu_s"] / r["n"] for r in rows]))
print("exponent wall", fit_exponent([r["n_atoms"] for r in rows], [r["wall_s"] / r["n"] for r in rows]))
json.dump(rows, open("scale_atoms_points.json", "w"))
