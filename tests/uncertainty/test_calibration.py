"""calibration_stats / force errors: Spearman ρ with the point count, None below 3 points, eV/Å errors."""

from __future__ import annotations

import numpy as np
import pytest

from mfal.errors import DataError
from mfal.uncertainty import (
    CalibrationStats,
    calibration_rho,
    calibration_stats,
    max_force_error,
    mean_force_error,
)


def test_rho_and_n():
    stats = calibration_stats([0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 5.0])
    assert stats.rho == pytest.approx(1.0) and stats.n == 4
    assert calibration_stats([1, 2, 3, 4], [4, 3, 2, 1]).rho == pytest.approx(-1.0)
    assert calibration_rho([0.1, 0.2, 0.3], [3, 1, 2]) == calibration_stats([0.1, 0.2, 0.3], [3, 1, 2]).rho


def test_none_below_three_points_or_constant_and_non_finite_dropped():
    two = calibration_stats([0.1, 0.2], [1.0, 2.0])  # two pairs: no ρ (area, coverage, scale are defined)
    assert two.rho is None and two.n == 2
    assert calibration_stats([], []) == CalibrationStats(rho=None, n=0)
    assert calibration_stats([1, 1, 1], [1, 2, 3]).rho is None
    stats = calibration_stats([0.1, np.nan, 0.3, 0.2, 0.5], [1.0, 2.0, np.inf, 1.5, 3.0])
    assert stats.n == 3 and stats.rho == pytest.approx(1.0)
    with pytest.raises(DataError, match="differ in shape"):
        calibration_stats([0.1, 0.2, 0.3], [1.0, 2.0])


def test_stats_are_json_able_and_frozen():
    stats = calibration_stats([0.1, 0.2, 0.3], [0.3, 0.1, 0.2])
    assert CalibrationStats.model_validate_json(stats.model_dump_json()) == stats
    assert CalibrationStats.model_validate({"rho": None, "n": 0}).rho is None
    with pytest.raises(ValueError):
        CalibrationStats(rho=0.5, n=3, unknown=1)


def test_force_errors_in_ev_per_angstrom():
    true = np.zeros((2, 3))
    pred = np.array([[0.3, 0.4, 0.0], [0.0, 0.0, 0.1]])
    assert max_force_error(pred, true) == pytest.approx(0.5)  # per-atom norm |(0.3, 0.4, 0)|
    assert mean_force_error(pred, true) == pytest.approx(0.8 / 6)  # component MAE
    with pytest.raises(DataError, match=r"\[n_atoms, 3\]"):
        max_force_error(pred, np.zeros((3, 3)))
    with pytest.raises(DataError, match="no atoms"):
        mean_force_error(np.zeros((0, 3)), np.zeros((0, 3)))
