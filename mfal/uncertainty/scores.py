"""Ensemble uncertainty scores per structure from member predictions, and their calibration (pure numpy).

``calibration_rho``/``spearman_rho`` are re-exported from :mod:`mfal.uncertainty.calibration`.
Units: force std eV/Å, energy std eV/atom, magmom std μB. :func:`calibrate_scores` multiplies each score by the
fitted scale of its quantity (:data:`SCORE_QUANTITY`) and keeps the raw value as ``<name>_raw``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mfal.errors import ConfigError
from mfal.uncertainty.calibration import calibration_rho, spearman_rho

__all__ = [
    "SCORE_NAMES",
    "CALIBRATED_QUANTITIES",
    "SCORE_QUANTITY",
    "calibrate_scores",
    "calibration_rho",
    "check_score_name",
    "ensemble_scores",
    "raw_scores",
    "scores_from_prediction",
    "spearman_rho",
]

#: score names a trust window may use
SCORE_NAMES: tuple[str, ...] = ("force_std_max", "force_std_mean", "energy_std", "magmom_std_max")
#: quantities with a fitted scale per fidelity: forces (eV/Å), energy (eV/atom), moments (μB)
CALIBRATED_QUANTITIES: tuple[str, ...] = ("forces", "energy", "moments")
#: the quantity whose scale calibrates each score
SCORE_QUANTITY: dict[str, str] = {
    "force_std_max": "forces",
    "force_std_mean": "forces",
    "energy_std": "energy",
    "magmom_std_max": "moments",
}
#: suffix of the uncalibrated copy of a score
RAW_SUFFIX = "_raw"


def calibrate_scores(
    scores: Mapping[str, Sequence[float]], scale: Mapping[str, float]
) -> dict[str, list[float]]:
    """``scores`` (score name -> per-structure values) with each known score multiplied by ``scale`` of its
    quantity (:data:`SCORE_QUANTITY`; a missing quantity scales by 1) and the raw values kept as
    ``<name>_raw``. Already calibrated input (a ``<name>_raw`` present) is recalibrated from the raw values."""
    out: dict[str, list[float]] = {}
    for name, values in scores.items():
        if name.endswith(RAW_SUFFIX):
            continue
        raw = np.asarray(scores.get(name + RAW_SUFFIX, values), dtype=float)
        if name in SCORE_QUANTITY:
            s = float(scale.get(SCORE_QUANTITY[name], 1.0))
            out[name] = (raw * s).tolist()
            out[name + RAW_SUFFIX] = raw.tolist()
        else:
            out[name] = raw.tolist()
    return out


def raw_scores(scores: Mapping[str, Sequence[float]], name: str) -> np.ndarray:
    """The uncalibrated values of score ``name`` (``<name>_raw`` when present, else ``name``)."""
    return np.asarray(scores.get(name + RAW_SUFFIX, scores[name]), dtype=float)


def ensemble_scores(
    energies: np.ndarray,
    forces: Sequence[np.ndarray],
    nsites: Sequence[int],
    magmoms: Sequence[np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Scores of ``n`` structures from ``k`` ensemble members.

    Args:
        energies: ``[k, n]`` total energies (eV).
        forces: per structure ``[k, n_atoms, 3]`` forces (eV/Å).
        nsites: atoms per structure.
        magmoms: per structure ``[k, n_atoms]`` moments (μB) or None.

    Returns:
        ``force_std_max`` / ``force_std_mean`` (eV/Å; std over members of each force component, norm per atom,
        max / mean over atoms), ``energy_std`` (eV/atom), ``magmom_std_max`` (μB; zeros when no moments).
    """
    energies = np.asarray(energies, dtype=float)
    if energies.ndim != 2:
        raise ValueError(f"energies must be [k, n], got shape {energies.shape}")
    n = energies.shape[1]
    if len(forces) != n or len(nsites) != n:
        raise ValueError(f"{len(forces)} force arrays / {len(nsites)} nsites for {n} structures")
    f_max = np.zeros(n)
    f_mean = np.zeros(n)
    m_max = np.zeros(n)
    for i, f in enumerate(forces):
        f = np.asarray(f, dtype=float)  # [k, n_atoms, 3]
        per_atom = np.linalg.norm(f.std(axis=0), axis=-1)  # [n_atoms]
        f_max[i] = per_atom.max() if per_atom.size else 0.0
        f_mean[i] = per_atom.mean() if per_atom.size else 0.0
        if magmoms is not None and magmoms[i] is not None:
            m = np.asarray(magmoms[i], dtype=float)
            m_max[i] = m.std(axis=0).max() if m.size else 0.0
    e_std = energies.std(axis=0) / np.maximum(np.asarray(nsites, dtype=float), 1.0)
    return {"force_std_max": f_max, "force_std_mean": f_mean, "energy_std": e_std, "magmom_std_max": m_max}


def scores_from_prediction(
    pred: Mapping[str, Any], nsites: Sequence[int], *, energy_per_atom: bool = True
) -> dict[str, np.ndarray]:
    """Scores from an ``MFEnsemble.predict_with_uncertainty`` result (one fidelity).

    Accepts per-structure lists or arrays for ``force_std_max``, ``force_std_mean`` (eV/Å), ``energy_std``
    (eV/atom as MFEnsemble gives it for intensive models; eV per cell when ``energy_per_atom=False``, divided by
    ``nsites`` here) and optional ``magmoms_std`` (μB; ``magmom_std_max`` is 0 without it).
    """
    n = len(nsites)
    out: dict[str, np.ndarray] = {}
    for key in ("force_std_max", "force_std_mean"):
        if key not in pred:
            raise ValueError(f"ensemble prediction lacks {key!r}; has {sorted(pred)}")
        out[key] = np.asarray(pred[key], dtype=float).reshape(n)
    e_std = np.asarray(pred.get("energy_std", np.zeros(n)), dtype=float).reshape(n)
    out["energy_std"] = e_std if energy_per_atom else e_std / np.maximum(np.asarray(nsites, dtype=float), 1.0)
    mstd = pred.get("magmoms_std")
    m_max = np.zeros(n)
    if mstd is not None:
        for i, m in enumerate(mstd):
            if m is not None and np.size(m):
                m_max[i] = float(np.max(np.abs(np.asarray(m, dtype=float))))
    out["magmom_std_max"] = m_max
    return out


def check_score_name(name: str) -> str:
    """Return ``name`` if it is a known score, else raise ConfigError listing the known ones."""
    if name not in SCORE_NAMES:
        raise ConfigError(f"score={name!r} not in {list(SCORE_NAMES)}")
    return name
