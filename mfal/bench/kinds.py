"""Independent members vs a shared-trunk heads ensemble, trained and scored by the campaign's own functions.

Both kinds are trained by :func:`mfal.train.ensemble.train_ensemble` on the same built-in teacher frames (SURROGATE
labels: LF = CHGNet 0.2.0, HF = CHGNet 0.3.0 with moments) and scored by :func:`mfal.uncertainty.score_candidates`
on held-out frames of both fidelities. Reported per kind: training and scoring wall / CPU seconds (side by side in
one run) and the calibration of ``force_std_max`` against the true max-over-atoms force error of each held-out
frame at its fidelity (:func:`mfal.uncertainty.calibration.calibration_stats`: Spearman ρ, ...).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

KINDS = ("independent", "heads")


def campaign_scorer(ensemble: Any) -> dict[str, Any]:
    """The ``score_candidates`` options a campaign scores ``ensemble`` with by default
    (``CampaignEnsemble.scorer_for``: force_spread, force_probes)."""
    from mfal.campaign.config import CampaignEnsemble

    return CampaignEnsemble().scorer_for(ensemble)


def split_teacher_frames(n_lf: int = 16, n_hf: int = 8, n_test: int = 12) -> dict[str, list]:
    """Train / val / test frames of the built-in set (48 LF, 24 HF on the first 24 LF structures).

    Train: HF frames of structures 0..n_hf-1 and LF frames of structures 24..24+n_lf-1; val: one frame per
    fidelity; test: both fidelities of the held-out structures after the validation ones (never trained on).
    """
    from mfal.train.example import load_builtin

    frames = load_builtin("lifepo4_teacher")
    lf = [f for f in frames if f.fidelity == frames[0].fidelity]
    hf = [f for f in frames if f.fidelity != frames[0].fidelity]
    n_hf = min(n_hf, len(hf) - 2)
    n_lf = min(n_lf, len(lf) - len(hf) - 1)
    test_hi = min(n_hf + 1 + n_test, len(hf))
    return {
        "train": lf[len(hf) : len(hf) + n_lf] + hf[:n_hf],
        "val": [lf[-1], hf[n_hf]],
        "test": lf[n_hf + 1 : test_hi] + hf[n_hf + 1 : test_hi],
    }


def calibration_of(scores: dict, test: list) -> dict[str, dict[str, Any]]:
    """Per fidelity: calibration of force_std_max (eV/Å) vs the true max force error (eV/Å) of the test frames
    labeled at that fidelity; ``scores`` from score_candidates on all test structures."""
    from mfal.uncertainty.calibration import calibration_stats

    out: dict[str, dict[str, Any]] = {}
    for fid, sc in scores.items():
        idx = [i for i, f in enumerate(test) if f.fidelity == fid]
        if not idx:
            continue
        std = sc.array("force_std_max")[idx]
        err = [
            float(np.linalg.norm(sc.forces_of(i) - np.asarray(test[i].forces, dtype=float), axis=1).max())
            for i in idx
        ]
        stats = calibration_stats(std, err)
        row = stats.model_dump() if hasattr(stats, "model_dump") else dict(vars(stats))
        row["mean_force_std_max"] = float(np.mean(std))
        row["mean_max_force_error"] = float(np.mean(err))
        out[fid] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
    return out


def compare_kinds(
    *,
    k: int = 4,
    epochs: int = 1,
    n_lf: int = 16,
    n_hf: int = 8,
    n_test: int = 12,
    seed: int = 0,
    pretrained_version: str = "0.3.0",
    out_dir: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train both kinds (K = ``k``, bootstrap, ``epochs``) and score the held-out frames with each.

    Returns (report, ensembles): report per kind has train/score wall+CPU s and calibration per fidelity, plus
    ``heads_over_independent_train`` / ``_score`` wall ratios; ensembles maps kind -> MFEnsemble.
    """
    from mfal.model import MFEnsemble
    from mfal.train.config import TrainConfig
    from mfal.train.ensemble import EnsembleConfig, train_ensemble
    from mfal.uncertainty import score_candidates

    data = split_teacher_frames(n_lf, n_hf, n_test)
    cfg = TrainConfig(
        epochs=epochs, batch_size=4, patience=None, device="cpu", pretrained_version=pretrained_version
    )
    test_structures = [f.get_structure() for f in data["test"]]
    report: dict[str, Any] = {
        "frames": {key: len(v) for key, v in data.items()},
        "k": k,
        "epochs": epochs,
        "labels": "SURROGATE teacher (LF CHGNet 0.2.0, HF CHGNet 0.3.0)",
    }
    ensembles: dict[str, Any] = {}
    for kind in KINDS:
        ens_cfg = EnsembleConfig(k=k, bootstrap=True, kind=kind)
        w0, c0 = time.perf_counter(), time.process_time()
        results = train_ensemble(
            data["train"],
            data["val"],
            cfg,
            ens_cfg,
            seed=seed,
            out_dir=None if out_dir is None else f"{out_dir}/{kind}",
        )
        train_wall, train_cpu = time.perf_counter() - w0, time.process_time() - c0
        ensemble = MFEnsemble([r.model for r in results])
        w0, c0 = time.perf_counter(), time.process_time()
        scores = score_candidates(
            ensemble, test_structures, cfg.fidelities, **campaign_scorer(ensemble), seed=seed
        )
        score_wall, score_cpu = time.perf_counter() - w0, time.process_time() - c0
        ensembles[kind] = ensemble
        report[kind] = {
            "shared_trunk": ensemble.shared_trunk,
            "train_wall_s": round(train_wall, 2),
            "train_cpu_s": round(train_cpu, 2),
            "score_wall_s": round(score_wall, 2),
            "score_cpu_s": round(score_cpu, 2),
            "calibration": calibration_of(scores, data["test"]),
        }
        logger.info("compare kinds: %s done", kind)
    for what in ("train", "score"):
        for clock in ("wall", "cpu"):
            report[f"heads_over_independent_{what}_{clock}"] = round(
                report["heads"][f"{what}_{clock}_s"] / report["independent"][f"{what}_{clock}_s"], 3
            )
    return report, ensembles
