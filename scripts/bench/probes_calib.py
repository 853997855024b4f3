"""Exact member forces vs the force-probe sketch (``ensemble.force_probes``) on trained K=4 heads ensembles.

Three training seeds on the built-in teacher frames (SURROGATE labels), scored by the campaign's
``score_candidates`` on 10 LF + 10 HF held-out frames; per fidelity: Spearman rho, miscalibration area,
1-sigma coverage and the mean force_std_max (eV/Å) vs the mean true max force error (eV/Å), plus scoring CPU s.
Run: ``PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/bench/probes_calib.py`` (writes probes_calib.json).
"""

import json
import time
import warnings

import torch

from mfal.bench.kinds import calibration_of, split_teacher_frames
from mfal.model import MFEnsemble
from mfal.train.config import TrainConfig
from mfal.train.ensemble import EnsembleConfig, train_ensemble
from mfal.uncertainty import score_candidates

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
KEYS = ("rho", "miscalibration_area", "coverage_1sigma", "mean_force_std_max", "mean_max_force_error")

res = {}
for seed in (0, 1, 2):
    data = split_teacher_frames(16, 8, 20)
    cfg = TrainConfig(epochs=1, batch_size=4, patience=None, device="cpu", pretrained_version="0.3.0")
    test = [f.get_structure() for f in data["test"]]
    ens_cfg = EnsembleConfig(k=4, bootstrap=True, kind="heads")
    ens = MFEnsemble([r.model for r in train_ensemble(data["train"], data["val"], cfg, ens_cfg, seed=seed)])
    for fp in (None, 1, 2):
        t0 = time.process_time()
        sc = score_candidates(ens, test, cfg.fidelities, force_probes=fp, seed=seed)
        cal = calibration_of(sc, data["test"])
        row = {"cpu_s": round(time.process_time() - t0, 2)}
        row.update({f: {k: cal[f][k] for k in KEYS if k in cal[f]} for f in cal})
        res[f"seed{seed}_probes{fp}"] = row
        print(f"seed{seed} probes={fp}", json.dumps(row), flush=True)
with open("probes_calib.json", "w") as fh:
    json.dump(res, fh, indent=1)
