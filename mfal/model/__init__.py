"""Multi-fidelity CHGNet model, ensemble, checkpoints, ASE calculator."""

from __future__ import annotations

from mfal.model.mfchgnet import MFCHGNet, file_sha256, validate_components

__all__ = ["MFCHGNet", "file_sha256", "validate_components"]
