"""Per-fidelity ensemble uncertainty: scoring candidates, scores from member predictions, calibration."""

from __future__ import annotations

from mfal.uncertainty.calibration import (
    CalibrationStats,
    calibration_rho,
    calibration_stats,
    max_force_error,
    mean_force_error,
    spearman_rho,
)
from mfal.uncertainty.scores import SCORE_NAMES, check_score_name, ensemble_scores, scores_from_prediction
from mfal.uncertainty.scoring import FidelityScores, score_candidates

__all__ = [
    "SCORE_NAMES",
    "CalibrationStats",
    "FidelityScores",
    "calibration_rho",
    "calibration_stats",
    "check_score_name",
    "ensemble_scores",
    "max_force_error",
    "mean_force_error",
    "score_candidates",
    "scores_from_prediction",
    "spearman_rho",
]
