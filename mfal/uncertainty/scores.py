"""Ensemble uncertainty scores per structure from member predictions (pure numpy).

``calibration_rho``/``spearman_rho`` are re-exported from :mod:`mfal.uncertainty.calibration`.
Units: force std eV/Å, energy std eV/atom, magmom std μB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mfal.errors import ConfigError
from mfal.uncertainty.calibration import calibration_rho, spearman_rho

__all__ = [
    "SCORE_NAMES",
    "calibration_rho",
    "check_score_name",
    "ensemble_scores",
    "scores_from_prediction",
    "spearman_rho",
]

#: score names a trust window may use
SCORE_NAMES: tuple[str, ...] = ("force_std_max", "force_std_mean", "energy_std", "magmom_std_max")


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
