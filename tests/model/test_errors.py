"""Bad input: unknown fidelities, elements out of range, isolated atoms -> clear errors naming the frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from mfal.errors import DataError
from mfal.fidelity import UnknownFidelityError


def test_unknown_fidelity_lists_known(_mf_pretrained, feo_cell):
    model = _mf_pretrained
    with pytest.raises(UnknownFidelityError, match=r"'xf'.*\['lf', 'hf'\]"):
        model.predict(feo_cell, "xf")
    graphs = model.graphs([feo_cell])
    with pytest.raises(UnknownFidelityError, match=r"\['lf', 'hf'\]"):
        model.forward(graphs, torch.tensor([3]))
    with pytest.raises(UnknownFidelityError):
        model.fidelity_only_parameters("HF")


def test_element_outside_range_names_frame(_mf_pretrained):
    structure = Structure(Lattice.cubic(3.0), ["Fe", "Am"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(DataError, match=r"frame-7.*Am.*1\.\.94"):
        _mf_pretrained.graphs([structure], names=["frame-7"])


def test_isolated_atom_names_frame(_mf_pretrained, feo_cell):
    lonely = Structure(Lattice.cubic(20.0), ["Fe", "O", "Li"], [[0, 0, 0], [0.09, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(DataError, match=r"structure 1: .*isolated.*6 Å"):
        _mf_pretrained.graphs([feo_cell, lonely])


def test_mixed_batch_equals_separate(_mf_pretrained, perturb_fidelity_params, feo_cell):
    """A mixed-fidelity batch gives the same numbers as single-fidelity calls (no silent mix-up)."""
    import copy

    model = copy.deepcopy(_mf_pretrained)
    perturb_fidelity_params(model, "lf")
    graphs = model.graphs([feo_cell, feo_cell])
    mixed = model.forward(graphs, torch.tensor([2, 1]), task="ef")
    hf = model.forward(graphs[:1], "hf", task="ef")
    lf = model.forward(graphs[1:], "lf", task="ef")
    assert float(mixed["e"][0]) == pytest.approx(float(hf["e"][0]), abs=1e-6)
    assert float(mixed["e"][1]) == pytest.approx(float(lf["e"][0]), abs=1e-6)
    assert abs(float(mixed["e"][0] - mixed["e"][1])) > 1e-4
    np.testing.assert_allclose(mixed["f"][1].numpy(), lf["f"][0].numpy(), atol=1e-5)
