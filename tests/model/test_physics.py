"""Physics of the MF model with non-trivial fidelity parameters: forces = -dE/dx, rotation and permutation
invariance (real pretrained weights plus perturbed per-fidelity E/M/R parameters, 8-atom FeO cell)."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation


@pytest.fixture(scope="module")
def mf_model(_mf_pretrained, perturb_fidelity_params):
    import copy

    model = copy.deepcopy(_mf_pretrained)
    perturb_fidelity_params(model, "hf", seed=1)
    perturb_fidelity_params(model, "lf", seed=2)
    return model


def _total_energy(model, structure, fidelity):
    return model.predict(structure, fidelity, task="e")["e"] * len(structure)


@pytest.mark.parametrize("fidelity", ["lf", "hf"])
def test_forces_are_minus_energy_gradient(mf_model, feo_cell, fidelity):
    pred = mf_model.predict(feo_cell, fidelity, task="ef")
    h = 5e-3  # Å
    for atom, axis in [(0, 0), (3, 1), (6, 2)]:
        energies = []
        for sign in (+1, -1):
            displaced = feo_cell.copy()
            shift = np.zeros(3)
            shift[axis] = sign * h
            displaced.translate_sites([atom], shift, frac_coords=False, to_unit_cell=False)
            energies.append(_total_energy(mf_model, displaced, fidelity))
        numeric = -(energies[0] - energies[1]) / (2 * h)  # eV/Å
        assert numeric == pytest.approx(float(pred["f"][atom, axis]), abs=5e-3 + 1e-2 * abs(numeric))
    assert np.abs(pred["f"]).max() > 0.05  # a rattled cell has non-trivial forces


def test_rotation_invariance(mf_model, feo_cell):
    rot = Rotation.from_euler("xyz", [0.3, -1.1, 0.7]).as_matrix()
    rotated = Structure(Lattice(feo_cell.lattice.matrix @ rot.T), feo_cell.species, feo_cell.frac_coords)
    a = mf_model.predict(feo_cell, "hf")
    b = mf_model.predict(rotated, "hf")
    assert b["e"] == pytest.approx(a["e"], abs=1e-5)
    np.testing.assert_allclose(b["f"], a["f"] @ rot.T, atol=1e-4)
    np.testing.assert_allclose(b["s"], rot @ a["s"] @ rot.T, atol=1e-3)
    np.testing.assert_allclose(b["m"], a["m"], atol=1e-4)


def test_permutation_invariance(mf_model, feo_cell):
    perm = np.random.default_rng(0).permutation(len(feo_cell))
    permuted = Structure(feo_cell.lattice, [feo_cell.species[i] for i in perm], feo_cell.frac_coords[perm])
    a = mf_model.predict(feo_cell, "lf")
    b = mf_model.predict(permuted, "lf")
    assert b["e"] == pytest.approx(a["e"], abs=1e-5)
    np.testing.assert_allclose(b["f"], a["f"][perm], atol=1e-4)
    np.testing.assert_allclose(b["m"], a["m"][perm], atol=1e-4)


def test_fidelities_differ_after_perturbation(mf_model, feo_cell):
    """Sanity for the tests above: the two fidelities really are different functions here."""
    lf, hf = mf_model.predict(feo_cell, "lf"), mf_model.predict(feo_cell, "hf")
    assert abs(lf["e"] - hf["e"]) > 1e-3
