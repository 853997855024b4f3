"""Calibration of an uncertainty score against true errors, and the per-structure force errors it is judged on.

One module for the campaign (``evaluate`` step) and the science benchmark. Units: those of the quantity (forces
and their errors eV/Å, energies eV/atom, moments μB). :class:`CalibrationStats` is the one result type (ρ,
miscalibration area, 1σ/2σ coverage, fitted scale); :func:`fit_scale` is the per-fidelity multiplicative
recalibration of an ensemble spread. :func:`atom_calibration_stats` judges forces per atom and component (signed
component errors vs the per-component member std), the statistic whose Gaussian reference is exact; the
max-over-atoms pair (``force_std_max`` vs :func:`max_force_error`) has an area floor of ≈ 0.15 even for a perfect
ensemble (docs/uncertainty.md). Optional fields are None, never NaN, so the JSON stays strict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mfal.errors import DataError

#: fewest finite (score, error) pairs for which a rank correlation is reported
MIN_POINTS = 3
#: fewest finite pairs for miscalibration area, coverage and a fitted scale
MIN_FIT_POINTS = 2
#: quantile levels p of the miscalibration curve (uncertainty-toolbox uses 100 levels in [0, 1])
N_LEVELS = 100
#: a predicted std at or below this (in the quantity's unit) carries no scale information (dropped in fit_scale)
SIGMA_FLOOR = 1e-12
#: pseudo-pairs of the prior scale in fit_scale's shrinkage (log-space weighted mean)
PRIOR_WEIGHT = 1.0
#: fitted scales are clipped to this range
SCALE_RANGE = (1e-2, 1e4)
#: median of |z| for z ~ N(0, 1): Φ⁻¹(0.75)
HALF_NORMAL_MEDIAN = 0.6744897501960817

ScaleMethod = Literal["median", "ml"]


class CalibrationStats(BaseModel):
    """How well a predicted std (σ) ranks and sizes the true errors of the same structures.

    ``rho`` judges the ranking only; ``miscalibration_area`` and the coverages judge the size of
    ``scale_applied``·σ, read as the std of a zero-mean Gaussian error; ``scale`` is the multiplicative factor
    for the raw σ fitted on these pairs (:func:`fit_scale`). All are None (never NaN) when too few pairs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rho: float | None = Field(
        None,
        description="Spearman rank correlation of predicted std vs true error (1 = perfect ranking); None with "
        f"fewer than {MIN_POINTS} finite pairs or a constant input",
    )
    n: int = Field(0, ge=0, description="number of finite (predicted std, true error) pairs used")
    miscalibration_area: float | None = Field(
        None,
        ge=0,
        le=0.5,
        description="area between observed and expected fraction of |error| <= z_p·σ over quantile levels "
        "p in [0, 1], z_p = Φ⁻¹((1+p)/2) (Gaussian; 0 = calibrated, 0.5 = worst); None below "
        f"{MIN_FIT_POINTS} pairs",
    )
    coverage_1sigma: float | None = Field(
        None, ge=0, le=1, description="fraction of |error| <= 1σ (Gaussian: 0.683); None below 2 pairs"
    )
    coverage_2sigma: float | None = Field(
        None, ge=0, le=1, description="fraction of |error| <= 2σ (Gaussian: 0.954); None below 2 pairs"
    )
    scale: float | None = Field(
        None,
        gt=0,
        description="fitted multiplicative scale s for the raw σ (s·σ calibrated; fit_scale, shrunk toward "
        "scale_applied); None below 2 pairs",
    )
    scale_applied: float = Field(
        1.0, gt=0, description="scale the raw σ carried when these measures were taken (1 = uncalibrated)"
    )

    @field_validator("rho", "miscalibration_area", "coverage_1sigma", "coverage_2sigma", "scale", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        return None if v is not None and not np.isfinite(float(v)) else v  # JSON never holds NaN


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


def _std_error(predicted_std: Sequence[float], true_error: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Finite pairs with σ >= 0 and |error| (negative σ is a DataError)."""
    sigma, err = _finite_pairs(predicted_std, true_error)
    if np.any(sigma < 0):
        raise DataError(f"predicted std must be >= 0, got min {sigma.min():.3g}")
    return sigma, np.abs(err)


def coverage(predicted_std: Sequence[float], true_error: Sequence[float], k: float) -> float | None:
    """Fraction of finite pairs with ``|error| <= k·σ`` (a σ of 0 covers only an error of 0); None below 2."""
    sigma, err = _std_error(predicted_std, true_error)
    if sigma.size < MIN_FIT_POINTS:
        return None
    return float(np.mean(err <= k * sigma))


def miscalibration_area(predicted_std: Sequence[float], true_error: Sequence[float]) -> float | None:
    """Miscalibration area of σ for |error| (Tran et al. 2020; uncertainty-toolbox ``miscalibration_area``
    with ``prop_type="interval"``): for quantile levels p on [0, 1] the expected fraction of errors inside the
    central Gaussian interval ±z_p·σ, z_p = Φ⁻¹((1+p)/2), is p; the area is ∫|observed(p) − p| dp (trapezoid
    over :data:`N_LEVELS` levels). 0 = calibrated, → 0.5 for σ far too small or too large. None below 2 pairs.
    """
    from scipy.stats import norm

    sigma, err = _std_error(predicted_std, true_error)
    if sigma.size < MIN_FIT_POINTS:
        return None
    p = np.linspace(0.0, 1.0, N_LEVELS)
    z = norm.ppf(0.5 + p / 2)  # z[0] = 0, z[-1] = inf
    with np.errstate(invalid="ignore"):  # 0·inf for σ = 0 at p = 1
        inside = err[None, :] <= z[:, None] * sigma[None, :]
    observed = inside.mean(axis=1)
    observed[-1] = 1.0  # every finite error lies inside the p = 1 interval
    diff = np.abs(observed - p)
    return float(np.sum((diff[1:] + diff[:-1]) / 2 * np.diff(p)))


def fit_scale(
    predicted_std: Sequence[float],
    true_error: Sequence[float],
    *,
    prior: float = 1.0,
    method: ScaleMethod = "median",
    prior_weight: float = PRIOR_WEIGHT,
) -> float:
    """Multiplicative scale s so that s·σ is calibrated for |error| (same units as σ: eV/Å, eV/atom, μB).

    Model: error = s·σ·z with z ~ N(0, 1). ``method="ml"`` is the maximum-likelihood estimate for signed or
    absolute Gaussian errors, ŝ² = mean((e/σ)²). For the campaign's quantities (the largest per-atom force
    error vs ``force_std_max``, |ΔE| vs ``energy_std``, the largest |Δm| vs ``magmom_std_max``) a few wild frames
    dominate squared ratios, so the default ``method="median"`` uses the robust equivalent ŝ =
    median(|e|/σ) / Φ⁻¹(0.75) (the same value for Gaussian errors; it makes the ±0.674·s·σ interval hold
    half of the errors). For ``force_std_max`` = norm of the per-component std, E[(|e_atom|/σ_atom)²] = s² per
    atom for any anisotropic Gaussian, so the same scale applies to the per-atom norms.

    Guards: pairs that are non-finite or have σ <= :data:`SIGMA_FLOOR` carry no scale and are dropped; with
    fewer than 2 pairs left the result is ``prior`` (1, or the previous round's scale); otherwise ŝ is shrunk
    toward ``prior`` in log space with ``prior_weight`` pseudo-pairs, log s = (n log ŝ + w log prior)/(n + w);
    the result is clipped to :data:`SCALE_RANGE`. A zero error everywhere gives the lower clip.
    """
    lo, hi = SCALE_RANGE
    prior = float(np.clip(prior, lo, hi)) if np.isfinite(prior) and prior > 0 else 1.0
    sigma, err = _std_error(predicted_std, true_error)
    keep = sigma > SIGMA_FLOOR
    sigma, err = sigma[keep], err[keep]
    n = sigma.size
    if n < MIN_FIT_POINTS:
        return prior
    ratio = err / sigma
    if method == "ml":
        est = float(np.sqrt(np.mean(ratio**2)))
    elif method == "median":
        est = float(np.median(ratio)) / HALF_NORMAL_MEDIAN
    else:
        raise DataError(f"fit_scale: method={method!r} not in ['median', 'ml']")
    est = float(np.clip(est, lo, hi))
    log_s = (n * np.log(est) + prior_weight * np.log(prior)) / (n + prior_weight)
    return float(np.clip(np.exp(log_s), lo, hi))


def calibration_stats(
    predicted_std: Sequence[float],
    true_error: Sequence[float],
    *,
    scale_applied: float = 1.0,
    method: ScaleMethod = "median",
) -> CalibrationStats:
    """Calibration of ``scale_applied``·``predicted_std`` (raw σ, e.g. force_std_max eV/Å) against
    ``true_error`` (same units) for the same structures; non-finite pairs are dropped.

    ``rho`` (scale-free), ``miscalibration_area`` and the 1σ/2σ coverages are of the σ as used
    (``scale_applied``·σ); ``scale`` is :func:`fit_scale` of the raw σ, shrunk toward ``scale_applied``. Raises
    DataError if the two lengths differ or a σ is negative.
    """
    sigma, err = _std_error(predicted_std, true_error)
    used = sigma * scale_applied
    n = int(sigma.size)
    fit = n >= MIN_FIT_POINTS
    return CalibrationStats(
        rho=spearman_rho(sigma, err),
        n=n,
        miscalibration_area=miscalibration_area(used, err),
        coverage_1sigma=coverage(used, err, 1.0),
        coverage_2sigma=coverage(used, err, 2.0),
        scale=fit_scale(sigma, err, prior=scale_applied, method=method) if fit else None,
        scale_applied=scale_applied,
    )


def atom_calibration_stats(
    predicted_std_xyz: np.ndarray | Sequence[Sequence[float]],
    error_xyz: np.ndarray | Sequence[Sequence[float]],
    *,
    scale_applied: float = 1.0,
    method: ScaleMethod = "median",
) -> CalibrationStats:
    """Calibration of per-atom force spreads: ``predicted_std_xyz`` ``[n_atoms, 3]`` raw member std of each
    force component (eV/Å; atoms of many structures stacked) against ``error_xyz`` ``[n_atoms, 3]`` signed
    component errors F_pred − F_label (eV/Å).

    Miscalibration area, 1σ/2σ coverage and ``scale`` are over the 3·n_atoms components (|e_c| vs
    ``scale_applied``·σ_c: for Gaussian component errors the half-normal reference is exact, so a perfect
    ensemble has area ≈ 0); ``n`` counts components. ``rho`` ranks atoms: Spearman ρ of the per-atom spread
    norm ‖σ_atom‖ vs the per-atom error norm ‖e_atom‖ (the quantity the max-atom score is made of). Atoms with a
    non-finite value are dropped. Raises DataError unless both are ``[n_atoms, 3]`` of equal shape.
    """
    sigma = np.asarray(predicted_std_xyz, dtype=float)
    err = np.asarray(error_xyz, dtype=float)
    if sigma.size == 0 and err.size == 0:
        sigma, err = sigma.reshape(0, 3), err.reshape(0, 3)
    if sigma.shape != err.shape or sigma.ndim != 2 or sigma.shape[1] != 3:
        raise DataError(f"per-atom std and error must both be [n_atoms, 3]: {sigma.shape} vs {err.shape}")
    ok = np.isfinite(sigma).all(axis=1) & np.isfinite(err).all(axis=1)
    sigma, err = sigma[ok], err[ok]
    st = calibration_stats(sigma.ravel(), err.ravel(), scale_applied=scale_applied, method=method)
    rho = spearman_rho(np.linalg.norm(sigma, axis=1), np.linalg.norm(err, axis=1))
    return st.model_copy(update={"rho": rho})


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


def force_component_errors(pred_forces: np.ndarray, true_forces: np.ndarray) -> np.ndarray:
    """Signed force-component errors ``F_pred - F_true`` of one structure, ``[n_atoms, 3]`` eV/Å (pairs with
    the per-component member std in :func:`atom_calibration_stats`). Raises DataError unless both are
    ``[n_atoms, 3]`` with n_atoms ≥ 1."""
    pred, true = _force_pair(pred_forces, true_forces)
    return pred - true


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
