"""Training of multi-fidelity CHGNet and its baselines: datasets, masked losses, trainer, ensembles.

Public API::

    from mfal.train import TrainConfig, train_model, train_ensemble, evaluate
    result = train_model(frames_train, frames_val, TrainConfig(mode="mf", components="EMRC"), out_dir="run")
    members = train_ensemble(frames_train, frames_val, TrainConfig(), EnsembleConfig(k=3), out_dir="ens", seed=0)

Modules: ``config`` (TrainConfig), ``data`` (graphs + labels), ``loss``, ``build`` (starting model), ``atomref``,
``loop`` (stages, epochs, early stop), ``state`` (train_state.pt), ``evaluate``, ``trainer`` (one run),
``ensemble`` (K members), ``split`` (structure-wise splits), ``run`` (``mfal train`` YAML).
"""

from __future__ import annotations

from mfal.train.data import Batch, FrameDataset, check_frames
from mfal.train.ensemble import EnsembleConfig, train_ensemble
from mfal.train.loss import LossConfig, LossWeights, MFLoss
from mfal.train.split import assign_splits, split_frames
from mfal.train.trainer import (
    METRIC_KEYS,
    TLConfig,
    TrainConfig,
    TrainResult,
    build_model,
    evaluate,
    load_train_state,
    result_summary,
    train_model,
    train_on_datasets,
)

__all__ = [
    "METRIC_KEYS",
    "Batch",
    "EnsembleConfig",
    "FrameDataset",
    "LossConfig",
    "LossWeights",
    "MFLoss",
    "TLConfig",
    "TrainConfig",
    "TrainResult",
    "assign_splits",
    "build_model",
    "check_frames",
    "evaluate",
    "load_train_state",
    "result_summary",
    "split_frames",
    "train_ensemble",
    "train_model",
    "train_on_datasets",
]
