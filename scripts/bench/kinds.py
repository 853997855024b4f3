"""Reduced side-by-side run of bench model's scorer section: both kinds trained, scored, calibrated."""

import contextlib
import io
import json
import time
import warnings

warnings.filterwarnings("ignore")
import torch

torch.set_num_threads(1)
from chgnet.model import CHGNet

from mfal.bench.kinds import compare_kinds
from mfal.bench.model import _rattled_cells, scorer_timing

t0 = time.perf_counter()
report, ens = compare_kinds(k=4, epochs=1, n_lf=8, n_hf=4, n_test=10, seed=0)
print(json.dumps(report), flush=True)
with contextlib.redirect_stdout(io.StringIO()):
    chg = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
cells = _rattled_cells(4, seed=0, amplitudes=(0.02, 0.2))
timing = scorer_timing(cells, chg, ens, repeats=2)
print(json.dumps(timing), flush=True)
json.dump(
    {"kinds": report, "scorer": timing, "wall_s": time.perf_counter() - t0},
    open("./kinds.json", "w"),
    indent=1,
)
