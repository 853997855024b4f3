"""Training of multi-fidelity CHGNet and its baselines: datasets, masked losses, trainer, ensembles.

Public API::

    from mfal.train import TrainConfig, train_model, train_ensemble, evaluate
    result = train_model(frames_train, frames_val, TrainConfig(mode="mf", components="EMRC"), out_dir="run")
"""

from __future__ import annotations

from mfal.train.data import Batch, FrameDataset, check_frames
from mfal.train.loss import LossConfig, LossWeights, MFLoss
from mfal.train.trainer import (
    METRIC_KEYS,
    TLConfig,
    TrainConfig,
    TrainResult,
    build_model,
    evaluate,
    load_train_state,
    result_summary,
    train_ensemble,
    train_model,
    train_on_datasets,
)

__all__ = [
    "METRIC_KEYS",
    "Batch",
    "FrameDataset",
    "LossConfig",
    "LossWeights",
    "MFLoss",
    "TLConfig",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "check_frames",
    "evaluate",
    "load_train_state",
    "result_summary",
    "train_ensemble",
    "train_model",
    "train_on_datasets",
]
