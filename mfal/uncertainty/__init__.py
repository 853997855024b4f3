"""Per-fidelity ensemble uncertainty scores and calibration (pure numpy)."""

from __future__ import annotations

from mfal.uncertainty.scores import (
    SCORE_NAMES,
    calibration_rho,
    ensemble_scores,
    scores_from_prediction,
    spearman_rho,
)

__all__ = ["SCORE_NAMES", "calibration_rho", "ensemble_scores", "scores_from_prediction", "spearman_rho"]
