"""Fixtures for the model tests: the real pretrained CHGNet 0.3.0 weights from the chgnet wheel."""

from __future__ import annotations

import copy

import pytest
import torch
from pymatgen.core import Lattice, Structure


@pytest.fixture(scope="session")
def chgnet_030():
    """chgnet's own pretrained CHGNet 0.3.0 (reference for warm-start equivalence)."""
    from chgnet.model import CHGNet

    return CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)


@pytest.fixture(scope="session")
def _mf_pretrained():
    from mfal.model import MFCHGNet

    return MFCHGNet.from_pretrained("0.3.0")


@pytest.fixture
def mf_pretrained(_mf_pretrained):
    """A fresh copy (tests may modify it) of MFCHGNet warm-started from CHGNet 0.3.0, components EMRC."""
    return copy.deepcopy(_mf_pretrained)


def _perturb_fidelity_params(model, fidelity: str, scale: float = 0.05, seed: int = 0) -> None:
    """Give the fidelity-only parameters of ``fidelity`` random non-zero values (as after MF training)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, view in model.fidelity_only_parameters(fidelity).items():
            if name.startswith("atom_ref"):
                continue
            view.add_(scale * torch.randn(view.shape, generator=gen))


@pytest.fixture(scope="session")
def perturb_fidelity_params():
    """Function (model, fidelity, scale=0.05, seed=0) giving a fidelity's own parameters random values."""
    return _perturb_fidelity_params


@pytest.fixture(scope="session")
def feo_cell() -> Structure:
    """8-atom rock-salt FeO cell, rattled (small and cheap; Fe moments from the magnetic head)."""
    structure = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.33), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    structure.perturb(0.08, min_distance=0.02, seed=7)
    return structure
