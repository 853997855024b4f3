"""Exact member forces vs last-layer contrasts (``ensemble.force_spread``) vs the force-probe sketch
(``ensemble.force_probes``) on trained K=4 heads ensembles.

Three training seeds on the built-in teacher frames (SURROGATE labels), scored by the campaign's
``score_candidates`` on the held-out frames (both fidelities). Per fidelity and scorer: Spearman rho of
force_std_max vs the true max force error, the miscalibration area and 1-sigma coverage of the raw spread and of
the spread scaled the way the campaign scales it (``fit_scale`` on one half of the frames, applied to the other
half, both ways: a scale fitted on frames it is not judged on), the same per atom and component
(``atom_calibration_stats``), the mean force_std_max (eV/Å) vs the mean true max force error (eV/Å), and scoring
CPU s. Run: ``PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/bench/probes_calib.py [OUT.json]``.
"""

import json
import sys
import time
import warnings

import numpy as np
import torch

from mfal.bench.kinds import calibration_of, split_teacher_frames
from mfal.model import MFEnsemble
from mfal.train.config import TrainConfig
from mfal.train.ensemble import EnsembleConfig, train_ensemble
from mfal.uncertainty import score_candidates
from mfal.uncertainty.calibration import atom_calibration_stats, calibration_stats, fit_scale

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
KEYS = ("rho", "miscalibration_area", "coverage_1sigma", "mean_force_std_max", "mean_max_force_error")
SCORERS = (("exact", None), ("last_layer", None), ("exact", 1), ("exact", 2))


def cross_fitted(sigmas: list, errs: list, stats) -> dict:
    """Area / 1σ coverage of σ scaled by a scale fitted (median rule, no prior) on the other half of the items
    (even/odd frames, both ways); ``sigmas``/``errs`` per frame (a number, or [n_i, 3] per atom and component)."""
    halves = [[i for i in range(len(sigmas)) if i % 2 == h] for h in (0, 1)]
    areas, covs = [], []
    for fit, judge in (halves, halves[::-1]):
        cat = lambda xs, ii: np.concatenate([np.ravel(xs[i]) for i in ii])  # noqa: E731
        scale = fit_scale(cat(sigmas, fit), cat(errs, fit), prior_weight=0.0)
        st = stats(sigmas, errs, judge, scale)
        areas.append(st.miscalibration_area)
        covs.append(st.coverage_1sigma)
    return {"area_scaled": round(float(np.mean(areas)), 4), "coverage_1sigma_scaled": round(float(np.mean(covs)), 4)}


def max_stats(sigmas, errs, ii, scale):
    return calibration_stats([sigmas[i] for i in ii], [errs[i] for i in ii], scale_applied=scale)


def atom_stats(sigmas, errs, ii, scale):
    return atom_calibration_stats(
        np.concatenate([sigmas[i] for i in ii]), np.concatenate([errs[i] for i in ii]), scale_applied=scale
    )


res = {}
for seed in (0, 1, 2):
    data = split_teacher_frames(16, 8, 20)
    cfg = TrainConfig(epochs=1, batch_size=4, patience=None, device="cpu", pretrained_version="0.3.0")
    test = [f.get_structure() for f in data["test"]]
    ens_cfg = EnsembleConfig(k=4, bootstrap=True, kind="heads")
    ens = MFEnsemble([r.model for r in train_ensemble(data["train"], data["val"], cfg, ens_cfg, seed=seed)])
    for spread, fp in SCORERS:
        t0 = time.process_time()
        sc = score_candidates(ens, test, cfg.fidelities, force_probes=fp, seed=seed, force_spread=spread)
        row = {"cpu_s": round(time.process_time() - t0, 2)}
        cal = calibration_of(sc, data["test"])
        for fid in cal:
            idx = [i for i, f in enumerate(data["test"]) if f.fidelity == fid]
            std = sc[fid].array("force_std_max")[idx]
            err_max = np.array(
                [np.linalg.norm(sc[fid].forces_of(i) - np.asarray(data["test"][i].forces), axis=1).max() for i in idx]
            )
            r = {k: cal[fid][k] for k in KEYS if k in cal[fid]}
            r.update(cross_fitted(list(std), list(err_max), max_stats))
            sx = [np.asarray(sc[fid].forces_std_xyz[i]) for i in idx]
            ex = [sc[fid].forces_of(i) - np.asarray(data["test"][i].forces) for i in idx]
            r["rho_atoms"] = round(atom_calibration_stats(np.concatenate(sx), np.concatenate(ex)).rho, 4)
            r.update({f"{k}_atoms": v for k, v in cross_fitted(sx, ex, atom_stats).items()})
            row[fid] = r
        tag = "last_layer" if spread == "last_layer" else f"probes{fp}"
        res[f"seed{seed}_{tag}"] = row
        print(f"seed{seed} {tag}", json.dumps(row), flush=True)
with open(sys.argv[1] if len(sys.argv) > 1 else "probes_calib.json", "w") as fh:
    json.dump(res, fh, indent=1)
