"""Shared fixtures. Tests use real components: pretrained CHGNet weights from the chgnet wheel,
real VASP/CP2K outputs under tests/test_data/, real maggma stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
TEST_DATA = Path(__file__).parent / "test_data"


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("MFAL_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def test_data() -> Path:
    """Folder of real reference calculations copied into the repo (see its README)."""
    return TEST_DATA


@pytest.fixture(scope="session")
def lifepo4():
    """The 28-atom olivine LiFePO4 cell that ships with pymatgen."""
    from mfal.explore.structures import lifepo4_structure

    return lifepo4_structure()
