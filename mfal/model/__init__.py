"""Multi-fidelity CHGNet model, ensemble, checkpoints, ASE calculator."""

from __future__ import annotations

from mfal.model.calculator import MFCHGNetCalculator
from mfal.model.ensemble import MFEnsemble, load_ensemble, readout_ensemble
from mfal.model.mfchgnet import MFCHGNet, file_sha256, validate_components

__all__ = [
    "MFCHGNet",
    "MFCHGNetCalculator",
    "MFEnsemble",
    "file_sha256",
    "load_ensemble",
    "readout_ensemble",
    "validate_components",
]
