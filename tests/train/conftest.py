"""Fixtures of the training tests: the built-in LiFePO4 frames with SURROGATE teacher labels (LF = CHGNet 0.2.0
without moments, HF = CHGNet 0.3.0 with moments) shipped in mfal/data."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def teacher_frames():
    """All built-in frames (LF and HF), in file order: LF frames first, then HF frames."""
    from mfal.train.example import load_builtin

    return load_builtin("lifepo4_teacher")


@pytest.fixture(scope="session")
def lf_frames(teacher_frames):
    return [f for f in teacher_frames if f.fidelity == "lf"]


@pytest.fixture(scope="session")
def hf_frames(teacher_frames):
    return [f for f in teacher_frames if f.fidelity == "hf"]


@pytest.fixture(scope="session")
def pretrained_mf():
    """MF-CHGNet (EMRC) warm-started from pretrained CHGNet 0.3.0 (read-only use in tests)."""
    from mfal.model import MFCHGNet

    return MFCHGNet.from_pretrained("0.3.0", fidelities=("lf", "hf"), components="EMRC")
