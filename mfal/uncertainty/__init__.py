"""Per-fidelity ensemble uncertainty: scoring candidates, scores from member predictions, calibration."""

from __future__ import annotations

from mfal.uncertainty.calibration import (
    CalibrationStats,
    atom_calibration_stats,
    calibration_rho,
    calibration_stats,
    coverage,
    fit_scale,
    force_component_errors,
    max_force_error,
    mean_force_error,
    miscalibration_area,
    spearman_rho,
)
from mfal.uncertainty.scores import (
    SCORE_NAMES,
    SCORE_QUANTITY,
    calibrate_scores,
    check_score_name,
    ensemble_scores,
    raw_scores,
    scores_from_prediction,
)
from mfal.uncertainty.scoring import FidelityScores, score_candidates

__all__ = [
    "SCORE_NAMES",
    "SCORE_QUANTITY",
    "CalibrationStats",
    "FidelityScores",
    "atom_calibration_stats",
    "calibrate_scores",
    "calibration_rho",
    "calibration_stats",
    "check_score_name",
    "coverage",
    "ensemble_scores",
    "fit_scale",
    "force_component_errors",
    "max_force_error",
    "mean_force_error",
    "miscalibration_area",
    "raw_scores",
    "score_candidates",
    "scores_from_prediction",
    "spearman_rho",
]
