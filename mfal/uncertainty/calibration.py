"""Calibration of an uncertainty score against true errors, and the per-structure force errors it is judged on.

One module for the campaign (``evaluate`` step) and the science benchmark. Units: forces and their errors eV/Å.
:class:`CalibrationStats` is the one result type; new measures (e.g. miscalibration area, coverage) are added
as optional fields, so callers that read ``rho`` and ``n`` keep working.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mfal.errors import DataError

#: fewest finite (score, error) pairs for which a rank correlation is reported
MIN_POINTS = 3


class CalibrationStats(BaseModel):
    """How well a predicted std ranks the true errors of the same structures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rho: float | None = Field(
        None,
        description="Spearman rank correlation of predicted std vs true error (1 = perfect ranking); None with "
        f"fewer than {MIN_POINTS} finite pairs or a constant input",
    )
    n: int = Field(0, ge=0, description="number of finite (predicted std, true error) pairs used")


def _finite_pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise DataError(f"x and y differ in shape: {x.shape} vs {y.shape}")
    x, y = x.reshape(-1), y.reshape(-1)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman rank correlation of ``x`` and ``y`` over finite pairs; None when fewer than 3 pairs or a
    constant input."""
    from scipy.stats import spearmanr

    x, y = _finite_pairs(x, y)
    if x.size < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def calibration_stats(predicted_std: Sequence[float], true_error: Sequence[float]) -> CalibrationStats:
    """Calibration of ``predicted_std`` (e.g. force_std_max, eV/Å) against ``true_error`` (same units) for the
    same structures; non-finite pairs are dropped. Raises DataError if the two lengths differ."""
    x, _ = _finite_pairs(predicted_std, true_error)
    return CalibrationStats(rho=spearman_rho(predicted_std, true_error), n=int(x.size))


def calibration_rho(predicted_std: Sequence[float], true_error: Sequence[float]) -> float | None:
    """Calibration of an uncertainty score: Spearman ρ of predicted std vs true error (1 = perfect ranking).

    Same as ``calibration_stats(predicted_std, true_error).rho``.
    """
    return spearman_rho(predicted_std, true_error)


def _force_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=float)
    true = np.asarray(true, dtype=float)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 3:
        raise DataError(f"forces must both be [n_atoms, 3]: predicted {pred.shape}, true {true.shape}")
    if pred.shape[0] == 0:
        raise DataError("forces of a structure with no atoms have no error")
    return pred, true


def max_force_error(pred_forces: np.ndarray, true_forces: np.ndarray) -> float:
    """Largest per-atom force error of one structure: max over atoms of ``|F_pred - F_true|`` (eV/Å).

    Pairs with the ``force_std_max`` score. Raises DataError unless both are ``[n_atoms, 3]`` with n_atoms ≥ 1.
    """
    pred, true = _force_pair(pred_forces, true_forces)
    return float(np.linalg.norm(pred - true, axis=1).max())


def mean_force_error(pred_forces: np.ndarray, true_forces: np.ndarray) -> float:
    """Force MAE of one structure: mean absolute force-component error over atoms and x, y, z (eV/Å).

    Pairs with the ``force_std_mean`` score; the same convention as the trainer's force MAE. Raises DataError
    unless both are ``[n_atoms, 3]`` with n_atoms ≥ 1.
    """
    pred, true = _force_pair(pred_forces, true_forces)
    return float(np.abs(pred - true).mean())
