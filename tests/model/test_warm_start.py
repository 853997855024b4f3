"""Warm start: every fidelity of MFCHGNet.from_pretrained reproduces chgnet's pretrained CHGNet 0.3.0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfal.errors import ConfigError
from mfal.model import MFCHGNet


@pytest.fixture(scope="module")
def rattled_lifepo4(lifepo4):
    structure = lifepo4.copy()
    structure.perturb(0.05, seed=3)
    return structure


@pytest.fixture(scope="module")
def reference(chgnet_030, rattled_lifepo4):
    return chgnet_030.predict_structure(rattled_lifepo4, task="efsm")


@pytest.mark.parametrize("components", ["EMRC", "MR"])
def test_every_fidelity_reproduces_pretrained(components, rattled_lifepo4, reference):
    """Mixed batch (one copy per fidelity) through forward with chgnet's differentiable backward: same numbers."""
    model = MFCHGNet.from_pretrained("0.3.0", components=components)
    graphs = model.graphs([rattled_lifepo4, rattled_lifepo4])
    pred = model.forward(graphs, torch.tensor([1, 2]), task="efsm", create_graph=True)
    for i in range(2):
        assert abs(float(pred["e"][i]) - float(reference["e"])) <= 1e-5  # eV/atom
        np.testing.assert_allclose(pred["f"][i].numpy(), reference["f"], atol=1e-5)  # eV/Å
        np.testing.assert_allclose(pred["s"][i].numpy(), reference["s"], atol=1e-5)  # GPa
        np.testing.assert_allclose(pred["m"][i].numpy(), reference["m"], atol=1e-5)  # μB


def test_predict_matches_pretrained_within_float32_rounding(mf_pretrained, rattled_lifepo4, reference):
    """predict() uses the cheaper non-differentiable backward: forces agree to float32 rounding."""
    for fidelity in mf_pretrained.fidelities:
        pred = mf_pretrained.predict(rattled_lifepo4, fidelity)
        assert abs(pred["e"] - float(reference["e"])) <= 1e-5
        np.testing.assert_allclose(pred["f"], reference["f"], atol=1e-4)
        np.testing.assert_allclose(pred["s"], reference["s"], atol=1e-3)
        np.testing.assert_allclose(pred["m"], reference["m"], atol=1e-5)
        assert pred["f"].shape == (28, 3) and pred["s"].shape == (3, 3) and pred["m"].shape == (28,)


def test_three_fidelities_warm_start_and_isolation(rattled_lifepo4, reference, perturb_fidelity_params):
    """3 fidelities: all equal pretrained at start; perturbing one fidelity's own parameters moves only it."""
    model = MFCHGNet.from_pretrained(fidelities=("lf", "mf", "hf"), magnetic_fidelities=("mf", "hf"))
    graphs = model.graphs([rattled_lifepo4] * 3)
    fid = torch.tensor([1, 2, 3])
    before = model.forward(graphs, fid, task="ef")
    np.testing.assert_allclose(before["e"].numpy(), float(reference["e"]), atol=1e-5)
    perturb_fidelity_params(model, "mf")
    after = model.forward(graphs, fid, task="ef")
    assert abs(float(after["e"][1] - before["e"][1])) > 1e-3  # mf moved
    for i in (0, 2):  # lf and hf untouched, also inside a mixed batch
        assert float(after["e"][i]) == pytest.approx(float(before["e"][i]), abs=1e-6)
        np.testing.assert_allclose(after["f"][i].numpy(), before["f"][i].numpy(), atol=1e-5)


def test_from_scratch_and_model_args_rebuild(lifepo4):
    model = MFCHGNet(
        fidelities=("lf", "hf"),
        components="EMRC",
        n_conv=2,
        atom_fea_dim=16,
        bond_fea_dim=16,
        angle_fea_dim=16,
        mlp_hidden_dims=(16,),
        atom_conv_hidden_dim=16,
        bond_conv_hidden_dim=16,
    )
    rebuilt = MFCHGNet(**model.model_args)
    rebuilt.load_state_dict(model.state_dict())
    a = model.predict(lifepo4, "lf", task="ef")
    b = rebuilt.predict(lifepo4, "lf", task="ef")
    assert a["e"] == b["e"] and np.isfinite(a["f"]).all()
    assert set(model.model_args) >= {"fidelities", "components", "magnetic_fidelities", "n_conv"}


@pytest.mark.parametrize("bad", ["EX", "EE", "emrc"])
def test_invalid_components_rejected(bad):
    with pytest.raises(ConfigError, match="E.*M.*R.*C"):
        MFCHGNet(components=bad)
