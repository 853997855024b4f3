"""Fixtures for the uncertainty tests: small ensembles of MFCHGNet warm-started from pretrained CHGNet 0.3.0."""

from __future__ import annotations

import copy

import pytest
import torch


@pytest.fixture(scope="session")
def mf_base():
    """MFCHGNet warm-started from CHGNet 0.3.0 (components EMRC, fidelities lf/hf); do not modify."""
    from mfal.model import MFCHGNet

    return MFCHGNet.from_pretrained("0.3.0")


@pytest.fixture(scope="session")
def cells(lifepo4):
    """Two small cells: rattled rock-salt FeO (8 atoms) and rattled LiFePO4 (28 atoms)."""
    from pymatgen.core import Lattice, Structure

    feo = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.33), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    feo.perturb(0.08, min_distance=0.02, seed=7)
    cell = lifepo4.copy()
    cell.perturb(0.05, seed=11)
    return [feo, cell]


@pytest.fixture(scope="session")
def shared_ensemble(mf_base):
    """K = 3 readout ensemble (shared trunk, noisy heads)."""
    from mfal.model import readout_ensemble

    return readout_ensemble(mf_base, 3, seed=3, noise=0.05)


@pytest.fixture(scope="session")
def independent_members(mf_base):
    """Two members whose trunks differ (as after independent training): no shared-trunk fast path."""
    gen = torch.Generator().manual_seed(0)
    members = []
    for _ in range(2):
        member = copy.deepcopy(mf_base)
        with torch.no_grad():
            for name, param in member.named_parameters():
                if name.startswith(("fidelity_embedding", "fidelity_columns", "readouts")):
                    param.add_(0.05 * torch.randn(param.shape, generator=gen))
        members.append(member)
    return members
