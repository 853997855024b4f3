"""Warm-started member spread after 1 epoch: member_noise 0 (old) vs default; independent vs heads; wall."""

import json
import time
import warnings

warnings.filterwarnings("ignore")
import torch

torch.set_num_threads(1)
import mfal.train.ensemble as E
from mfal.train.config import TrainConfig
from mfal.train.ensemble import DegenerateEnsembleError, EnsembleConfig, train_ensemble
from mfal.train.example import load_builtin

fr = load_builtin()
lf = [f for f in fr if f.fidelity == "lf"]
hf = [f for f in fr if f.fidelity == "hf"]
train, val = lf[:8] + hf[:4], lf[40:42] + hf[20:22]
cfg = TrainConfig(epochs=1, batch_size=4, patience=None, device="cpu", eval_batch_size=8)
out = {}
for name, ens in [
    ("old_noise0", EnsembleConfig(k=3, bootstrap=True, member_noise=0.0, min_spread=0.0)),
    ("new_default", EnsembleConfig(k=3, bootstrap=True)),
    ("heads", EnsembleConfig(k=3, bootstrap=True, kind="heads")),
]:
    t0 = time.perf_counter()
    c0 = time.process_time()
    spreads = []
    orig = E.check_ensemble

    def spy(*a, **kw):
        s = orig(*a, **kw)
        spreads.append(s)
        return s

    E.check_ensemble = spy
    try:
        res = train_ensemble(train, val, cfg, ens, seed=0)
        err = None
    except DegenerateEnsembleError as e:
        err = str(e)
    E.check_ensemble = orig
    out[name] = {
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(time.process_time() - c0, 1),
        "probe_spread": spreads,
        "error": err,
    }
    print(name, out[name], flush=True)
json.dump(out, open("./spread.json", "w"), indent=1)
