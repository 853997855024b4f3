"""Calibration of exact vs 1-probe force spread on trained heads ensembles (K=3 and 4), per-frame rho."""
import json, time, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(1)
import numpy as np
from mfal.bench.kinds import split_teacher_frames, calibration_of
from mfal.model import MFEnsemble
from mfal.train.config import TrainConfig
from mfal.train.ensemble import EnsembleConfig, train_ensemble
from mfal.uncertainty import score_candidates
res = {}
for seed in (0, 1, 2):
    data = split_teacher_frames(16, 8, 20)
    cfg = TrainConfig(epochs=1, batch_size=4, patience=None, device="cpu", pretrained_version="0.3.0")
    test = [f.get_structure() for f in data["test"]]
    results = train_ensemble(data["train"], data["val"], cfg, EnsembleConfig(k=4, bootstrap=True, kind="heads"), seed=seed)
    ens = MFEnsemble([r.model for r in results])
    for fp in (None, 1, 2):
        t0 = time.process_time()
        sc = score_candidates(ens, test, cfg.fidelities, force_probes=fp, seed=seed)
        cal = calibration_of(sc, data["test"])
        res[f"seed{seed}_probes{fp}"] = {"cpu_s": round(time.process_time() - t0, 2), **{f: {k: cal[f][k] for k in ("rho", "miscalibration_area", "coverage_1sigma", "mean_force_std_max", "mean_max_force_error") if k in cal[f]} for f in cal}}
        print(f"seed{seed} probes={fp}", json.dumps(res[f"seed{seed}_probes{fp}"]), flush=True)
json.dump(res, open("probes_calib.json", "w"), indent=1)
