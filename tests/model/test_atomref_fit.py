"""The per-fidelity AtomRef refit (C) on few HF frames: a round-0 campaign or a small real set often labels one
composition only, and the refit must not scramble the elements it cannot tell apart."""

from __future__ import annotations

import numpy as np
import torch


def test_one_composition_moves_the_atomref_only_along_that_composition(mf_pretrained, lifepo4):
    """Frames of LiFePO4 only: the fitted row reproduces their energy, and the change of the row is parallel to
    the LiFePO4 composition (minimum-norm correction of the pretrained row), so a Mn-substituted cell still gets
    the pretrained split between Li, Fe, P and O plus the same offset."""
    model = mf_pretrained
    row = model.fidelities.index("hf")
    before = model.atom_ref.detach().clone()[row]
    lf_before = model.atom_ref.detach().clone()[model.fidelities.index("lf")]
    z = np.array([site.specie.Z for site in lifepo4])
    frac = np.bincount(z - 1, minlength=94) / len(z)
    target = float(frac @ before.numpy()) + 0.5  # the label is 0.5 eV/atom above the prior
    model.fit_composition([lifepo4, lifepo4.copy()], [target, target], "hf")
    after = model.atom_ref.detach()[row]
    np.testing.assert_allclose(float(frac @ after.numpy()), target, atol=1e-5)  # the label is reproduced
    delta = (after - before).numpy()
    cols = np.flatnonzero(frac)
    cos = delta[cols] @ frac[cols] / (np.linalg.norm(delta[cols]) * np.linalg.norm(frac[cols]))
    assert cos > 0.999  # parallel to the composition: no arbitrary reshuffle between Li, Fe, P and O
    assert np.all(delta[np.setdiff1d(np.arange(94), cols)] == 0)  # Mn and every absent element untouched
    assert torch.equal(model.atom_ref[model.fidelities.index("lf")], lf_before)  # C: the LF row is its own
