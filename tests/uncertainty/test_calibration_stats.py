"""Miscalibration area, 1σ/2σ coverage and the fitted scale: the measures a calibrated spread is judged on
(seeded Gaussian samples, no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mfal.errors import DataError
from mfal.uncertainty.calibration import (
    HALF_NORMAL_MEDIAN,
    SCALE_RANGE,
    CalibrationStats,
    calibration_stats,
    coverage,
    fit_scale,
    miscalibration_area,
)
from mfal.uncertainty.scores import calibrate_scores, raw_scores


def _gaussian(n: int, seed: int, factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """σ log-uniform in [0.01, 0.3]; errors |N(0, (factor·σ)²)| (factor > 1: σ under-dispersed)."""
    rng = np.random.default_rng(seed)
    sigma = np.exp(rng.uniform(np.log(0.01), np.log(0.3), n))
    return sigma, np.abs(rng.normal(0.0, factor * sigma))


def test_area_is_zero_for_calibrated_and_large_for_ten_times_under_dispersed():
    sigma, err = _gaussian(20_000, seed=1)
    assert miscalibration_area(sigma, err) < 0.01
    s = calibration_stats(sigma, err)
    assert s.coverage_1sigma == pytest.approx(0.683, abs=0.01)
    assert s.coverage_2sigma == pytest.approx(0.954, abs=0.01)
    sigma, err = _gaussian(20_000, seed=2, factor=10.0)
    bad = calibration_stats(sigma, err)
    assert bad.miscalibration_area > 0.35  # 0.5 is the worst possible
    assert bad.coverage_1sigma < 0.1 and bad.coverage_2sigma < 0.2
    # signed errors measure the same as their magnitudes
    assert miscalibration_area(sigma, -err) == pytest.approx(bad.miscalibration_area)


def test_coverage_counts_errors_within_k_sigma():
    assert coverage([1.0, 1.0, 1.0, 1.0], [0.5, 1.0, 1.5, 2.5], 1.0) == 0.5
    assert coverage([1.0, 1.0, 1.0, 1.0], [0.5, 1.0, 1.5, 2.5], 2.0) == 0.75
    assert coverage([0.0, 0.0], [0.0, 0.1], 2.0) == 0.5  # σ = 0 covers only a zero error
    assert coverage([1.0], [0.5], 1.0) is None


@pytest.mark.parametrize("factor", [20.0, 30.0, 40.0])
@pytest.mark.parametrize("method", ["median", "ml"])
def test_fit_scale_recovers_a_known_under_dispersion(factor, method):
    sigma, err = _gaussian(400, seed=int(factor), factor=factor)
    s = fit_scale(sigma, err, method=method)
    assert s == pytest.approx(factor, rel=0.2)
    # after scaling the spread is calibrated
    assert miscalibration_area(s * sigma, err) < 0.06
    assert calibration_stats(sigma, err, scale_applied=s).miscalibration_area < 0.06


def test_fit_scale_is_robust_to_a_wild_frame():
    sigma, err = _gaussian(50, seed=5, factor=25.0)
    err[0] = 1e3  # one unphysical candidate
    assert fit_scale(sigma, err) == pytest.approx(25.0, rel=0.3)
    assert fit_scale(sigma, err, method="ml") > 100  # what the squared ratio would say


def test_tiny_n_and_zero_sigma_guards():
    assert fit_scale([], []) == 1.0
    assert fit_scale([0.01], [0.3]) == 1.0  # one pair: the prior
    assert fit_scale([0.01], [0.3], prior=7.0) == 7.0  # ... or the previous round's scale
    assert fit_scale([0.0, 0.0, 1e-15], [0.2, 0.3, 0.1], prior=3.0) == 3.0  # σ ≈ 0 carries no scale
    two = fit_scale([0.01, 0.01], [0.3 * HALF_NORMAL_MEDIAN] * 2)  # ŝ = 30 from two pairs, shrunk toward 1
    assert 1.0 < two < 30.0 and two == pytest.approx(30.0 ** (2 / 3), rel=1e-6)
    many = fit_scale([0.01] * 200, [0.3 * HALF_NORMAL_MEDIAN] * 200)
    assert many == pytest.approx(30.0, rel=0.02)  # shrinkage fades with n
    assert fit_scale([0.01, 0.02], [0.0, 0.0]) == pytest.approx(SCALE_RANGE[0] ** (2 / 3))  # ŝ clipped, never 0
    assert fit_scale([0.01] * 1000, [0.0] * 1000) >= SCALE_RANGE[0]
    assert fit_scale([1e-9] * 3, [10.0] * 3, prior=SCALE_RANGE[1]) == pytest.approx(SCALE_RANGE[1])
    assert fit_scale([0.01, 0.02], [0.1, 0.2], prior=float("nan")) > 0
    with pytest.raises(DataError, match=">= 0"):
        fit_scale([-0.1, 0.1], [0.1, 0.1])
    with pytest.raises(DataError, match="method"):
        fit_scale([0.1, 0.1], [0.1, 0.1], method="mean")  # type: ignore[arg-type]


def test_stats_defined_from_two_pairs_rho_from_three_and_json_has_no_nan():
    empty = calibration_stats([], [])
    assert empty == CalibrationStats(n=0) and empty.scale is None and empty.miscalibration_area is None
    one = calibration_stats([0.1], [0.2])
    assert one.n == 1 and one.coverage_1sigma is None and one.scale is None
    two = calibration_stats([0.1, 0.2], [0.05, 0.5])
    assert two.rho is None and two.n == 2
    assert two.coverage_1sigma == 0.5 and two.coverage_2sigma == 0.5
    assert two.miscalibration_area is not None and two.scale is not None
    three = calibration_stats([0.1, 0.2, 0.3], [0.1, 0.3, 0.2], scale_applied=2.0)
    assert three.rho == pytest.approx(0.5) and three.scale_applied == 2.0
    # constant inputs, zero σ, non-finite values: null in JSON, never NaN
    weird = calibration_stats([0.0, 0.0, 0.0, np.nan], [0.0, 0.0, 0.0, 1.0])
    text = weird.model_dump_json()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["rho"] is None
    assert CalibrationStats.model_validate_json(text) == weird
    assert CalibrationStats(rho=float("nan"), n=3).rho is None
    for s in (empty, one, two, three):
        assert "NaN" not in s.model_dump_json()


def test_calibrate_scores_keeps_raw_and_scales_by_quantity():
    raw = {"force_std_max": [0.01, 0.02], "force_std_mean": [0.005, 0.01], "energy_std": [0.001, 0.002],
           "magmom_std_max": [0.1, 0.0]}  # fmt: skip
    cal = calibrate_scores(raw, {"forces": 30.0, "energy": 5.0, "moments": 2.0})
    assert cal["force_std_max"] == pytest.approx([0.3, 0.6]) and cal["force_std_max_raw"] == [0.01, 0.02]
    assert cal["force_std_mean"] == pytest.approx([0.15, 0.3])
    assert cal["energy_std"] == pytest.approx([0.005, 0.01]) and cal["magmom_std_max"] == pytest.approx([0.2, 0.0])
    again = calibrate_scores(cal, {"forces": 10.0})  # recalibrated from the raw values, not compounded
    assert again["force_std_max"] == pytest.approx([0.1, 0.2]) and again["energy_std"] == pytest.approx([0.001, 0.002])
    assert list(raw_scores(again, "force_std_max")) == [0.01, 0.02]
    assert list(raw_scores(raw, "force_std_max")) == [0.01, 0.02]


def test_median_scale_is_near_the_best_area_for_max_atom_force_errors():
    """The campaign's force error is the largest per-atom error norm of a cell: for a perfectly calibrated
    ensemble (per-component Gaussian errors) the median scale reaches the smallest area any scale can, while the
    Gaussian ML (RMS) scale does not; that smallest area is well above 0 (≈ 0.15 for 8 atoms)."""
    rng = np.random.default_rng(0)
    sig = np.exp(rng.uniform(np.log(0.005), np.log(0.05), (3000, 8)))  # σ per atom (norm of the component std)
    e = rng.normal(size=(3000, 8, 3)) * (sig[..., None] / np.sqrt(3))
    err, smax = np.linalg.norm(e, axis=-1).max(axis=1), sig.max(axis=1)
    best = min(miscalibration_area(g * smax, err) for g in np.exp(np.linspace(np.log(0.5), np.log(3), 80)))
    s = fit_scale(smax, err)
    assert miscalibration_area(s * smax, err) < best + 0.01
    assert miscalibration_area(fit_scale(smax, err, method="ml") * smax, err) > best + 0.02
    assert 0.1 < best < 0.2
